//! `rtsp-bench floor`: the cost of fan-out with nothing else in the way.
//!
//! One sender thread (pinned like the proxy) generates the same synthetic
//! packets as the source and sends each one to N local UDP sockets, and one
//! receiver thread (pinned like the load) reads them with the load's receive
//! code. Two modes:
//!
//! - `sendmmsg`: one `sendmmsg` per packet, one message per client.
//! - `gso`: per frame, one message per client carrying a whole train of
//!   packets with a `UDP_SEGMENT` control message (segment = packet size);
//!   all clients in one `sendmmsg`. Trains are cut where a packet is shorter
//!   than the segment size (the STAP-A, the last packet) and at 64 segments /
//!   64 KB. If the kernel refuses GSO the sender says so and falls back to
//!   `sendmmsg` per packet.
//!
//! The sender's CPU time over the measured window (from
//! `/proc/self/task/<tid>/stat`, as the proxy's is read) divided by the packets
//! the receiver got in that window is the floor.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::gen::{FrameBuf, Generator, Workload};
use crate::probe::instant_at;
use crate::probe::now_ns;
use crate::procstat;
use crate::stats::{describe, summarize, ClientStats, Summary};
use crate::sys;
use crate::udp_receive::receive_udp;

/// How the sender fans out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One `sendmmsg` per packet across all clients.
    Sendmmsg,
    /// One GSO train per frame per client, all clients in one `sendmmsg`.
    Gso,
}

impl Mode {
    /// `sendmmsg` / `gso`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Sendmmsg => "sendmmsg",
            Mode::Gso => "gso",
        }
    }
}

/// What the floor does.
#[derive(Clone, Debug)]
pub struct FloorConfig {
    /// Fan-out mode.
    pub mode: Mode,
    /// Receiving sockets.
    pub clients: usize,
    /// The stream.
    pub workload: Workload,
    /// Measured window, Unix ns.
    pub window: (u64, u64),
    /// CPU of the sender thread.
    pub sender_cpu: Option<usize>,
    /// CPU of the receiver thread.
    pub receiver_cpu: Option<usize>,
    /// Receive buffer of each socket.
    pub rcvbuf: usize,
}

const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;
const MAX_SEGMENTS: usize = 64;
const MAX_TRAIN_BYTES: usize = 65_000;

#[derive(Debug, Default)]
struct SenderResult {
    cpu_ticks: u64,
    cpu_ns: u64,
    core: (f64, f64),
    wall_s: f64,
    datagrams: u64,
    syscalls: u64,
    gso_fallback: Option<String>,
    errors: u64,
}

/// Runs the floor and gives the summary (also printed).
pub fn run(cfg: FloorConfig) -> Result<Summary, String> {
    cfg.workload.validate()?;
    let mut socks = Vec::with_capacity(cfg.clients);
    let mut dests = Vec::with_capacity(cfg.clients);
    for _ in 0..cfg.clients {
        let s = sys::udp_receiver(0, cfg.rcvbuf).map_err(|e| format!("receiver socket: {e}"))?;
        match s.local_addr().map_err(|e| e.to_string())? {
            SocketAddr::V4(a) => dests.push(a),
            SocketAddr::V6(_) => return Err("unexpected IPv6 socket".into()),
        }
        socks.push(s);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let window = cfg.window;
    let max_packet = cfg.workload.packet_size + 64;
    let pps = cfg.workload.packets_per_second();
    let receiver_cpu = cfg.receiver_cpu;
    let receiver = thread::Builder::new()
        .name("floor-rx".into())
        .spawn(move || -> Result<Vec<ClientStats>, String> {
            if let Some(c) = receiver_cpu {
                sys::pin_current_thread(c).map_err(|e| format!("pin receiver to CPU {c}: {e}"))?;
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, async move {
                let end = instant_at(window.1) + Duration::from_millis(200);
                let window_s = (window.1 - window.0) as f64 / 1e9;
                let mut handles = Vec::new();
                for s in socks {
                    handles.push(tokio::task::spawn_local(async move {
                        let mut st =
                            ClientStats::new(window, (pps * window_s * 1.2) as usize + 1024);
                        st.play_sent_ns = Some(now_ns());
                        match tokio::net::UdpSocket::from_std(s) {
                            Ok(s) => {
                                if let Err(e) =
                                    receive_udp(&s, None, &mut st, end, max_packet).await
                                {
                                    st.error = Some(e.to_string());
                                }
                            }
                            Err(e) => st.error = Some(e.to_string()),
                        }
                        st
                    }));
                }
                let mut out = Vec::new();
                for h in handles {
                    if let Ok(st) = h.await {
                        out.push(st);
                    }
                }
                Ok(out)
            })
        })
        .map_err(|e| e.to_string())?;

    let scfg = cfg.clone();
    let stop2 = stop.clone();
    let sender = thread::Builder::new()
        .name("floor-tx".into())
        .spawn(move || sender(&scfg, &dests, &stop2))
        .map_err(|e| e.to_string())?;

    let sent = sender.join().map_err(|_| "sender panicked".to_string())??;
    stop.store(true, Ordering::SeqCst);
    let mut stats = receiver
        .join()
        .map_err(|_| "receiver panicked".to_string())??;
    let window_s = (window.1 - window.0) as f64 / 1e9;
    let mut s = summarize(&mut stats, cfg.clients, window_s);
    let ticks_s = sent.cpu_ticks as f64 / procstat::ticks_per_second();
    let cpu_s = sent.cpu_ns as f64 / 1e9;
    let packets = s.get("packets").unwrap_or(0.0);
    let bytes = s.get("bytes").unwrap_or(0.0);
    s.set("cpu_s", cpu_s);
    s.set("cpu_ticks_s", ticks_s);
    s.set("cpu_threads", 1.0);
    s.set("core_busy_share", sent.core.0);
    s.set("core_steal_share", sent.core.1);
    s.set("cpu_wall_s", sent.wall_s);
    s.set("cpu_share", cpu_s / sent.wall_s.max(1e-9));
    s.set("cpu_us_per_pkt", cpu_s * 1e6 / packets.max(1.0));
    s.set("cpu_us_per_kb", cpu_s * 1e6 / (bytes / 1000.0).max(1e-9));
    s.set("datagrams_sent", sent.datagrams as f64);
    s.set("send_syscalls", sent.syscalls as f64);
    s.set("send_errors", sent.errors as f64);
    s.set(
        "gso_fallback",
        if sent.gso_fallback.is_some() {
            1.0
        } else {
            0.0
        },
    );
    println!(
        "floor: {} to {} UDP sockets (measured {:.1} s){}",
        cfg.mode.name(),
        cfg.clients,
        window_s,
        match &sent.gso_fallback {
            Some(why) =>
                format!(" -- GSO REFUSED by the kernel ({why}), fell back to sendmmsg per packet"),
            None => String::new(),
        }
    );
    println!(
        "sender CPU: {:.3} s in {:.2} s ({:.1} %), {:.3} us per delivered packet, {:.3} us per KB; {} datagrams in {} syscalls",
        cpu_s,
        sent.wall_s,
        100.0 * cpu_s / sent.wall_s.max(1e-9),
        cpu_s * 1e6 / packets.max(1.0),
        cpu_s * 1e6 / (bytes / 1000.0).max(1e-9),
        sent.datagrams,
        sent.syscalls
    );
    print!("{}", describe(&s));
    if let Some(why) = sent.gso_fallback {
        s.errors.push(format!("GSO refused by the kernel: {why}"));
    }
    Ok(s)
}

/// `sendmmsg` of prepared messages, all of them (partial sends resumed).
fn send_all(fd: i32, msgs: &mut [libc::mmsghdr], res: &mut SenderResult) -> io::Result<()> {
    let mut done = 0;
    while done < msgs.len() {
        // SAFETY: the messages point to live buffers prepared by the caller.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                msgs[done..].as_mut_ptr(),
                (msgs.len() - done) as libc::c_uint,
                0,
            )
        };
        res.syscalls += 1;
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::ECONNREFUSED) => {
                    // Skip the message that failed, as a proxy would drop it.
                    res.errors += 1;
                    done += 1;
                    continue;
                }
                _ => return Err(e),
            }
        }
        done += n as usize;
    }
    Ok(())
}

fn sender(
    cfg: &FloorConfig,
    dests: &[SocketAddrV4],
    stop: &AtomicBool,
) -> Result<SenderResult, String> {
    if let Some(c) = cfg.sender_cpu {
        sys::pin_current_thread(c).map_err(|e| format!("pin sender to CPU {c}: {e}"))?;
    }
    let sock =
        Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(|e| e.to_string())?;
    sock.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).into())
        .map_err(|e| e.to_string())?;
    sys::set_sndbuf(&sock, 8 << 20);
    let sock: UdpSocket = sock.into();
    let fd = sock.as_raw_fd();
    let n = dests.len();
    let names: Vec<libc::sockaddr_in> = dests
        .iter()
        .map(|a| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: a.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            },
            sin_zero: [0; 8],
        })
        .collect();
    // SAFETY: all-zero is a valid value of these plain C structs.
    let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { mem::zeroed() }; n];
    let mut iov: libc::iovec = unsafe { mem::zeroed() };
    // One UDP_SEGMENT control message, shared by every message (the kernel only reads it).
    let cmsg_space = unsafe { libc::CMSG_SPACE(mem::size_of::<u16>() as u32) } as usize;
    let mut cmsg_buf = vec![0u64; cmsg_space.div_ceil(8)];
    let seg = cfg.workload.packet_size as u16;
    unsafe {
        let mut h: libc::msghdr = mem::zeroed();
        h.msg_control = cmsg_buf.as_mut_ptr() as *mut libc::c_void;
        h.msg_controllen = cmsg_space as _;
        let c = libc::CMSG_FIRSTHDR(&h);
        (*c).cmsg_level = SOL_UDP;
        (*c).cmsg_type = UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, seg);
    }

    let mut gen = Generator::new(
        cfg.workload.clone(),
        rand::random(),
        rand::random(),
        rand::random(),
    );
    let mut fb = FrameBuf::default();
    let mut res = SenderResult::default();
    let mut mode = cfg.mode;
    let pid = std::process::id();
    let tid = procstat::gettid();
    let sample = || {
        (
            procstat::thread_cpu(pid, tid)
                .map(|c| c.total())
                .unwrap_or(0),
            procstat::thread_schedstat_ns(pid, tid).unwrap_or(0),
            Instant::now(),
            cfg.sender_cpu
                .and_then(procstat::cpu_busy)
                .unwrap_or_default(),
        )
    };
    let mut start: Option<(u64, u64, Instant, procstat::CoreTicks)> = None;
    let epoch = Instant::now();
    let mut frame: u32 = 0;
    // Stops by itself a little after the window even if the receiver side hangs.
    let hard_end = instant_at(cfg.window.1) + Duration::from_secs(5);
    loop {
        if stop.load(Ordering::Relaxed) || Instant::now() > hard_end.into_std() {
            return Err("floor sender stopped before the end of the window".into());
        }
        let due = epoch + cfg.workload.frame_offset(u64::from(frame));
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        let t = now_ns();
        if start.is_none() && t >= cfg.window.0 {
            start = Some(sample());
        }
        if t >= cfg.window.1 {
            let end = sample();
            let (c0, n0, i0, k0) = start.unwrap_or(end);
            res.cpu_ticks = end.0 - c0;
            res.cpu_ns = end.1 - n0;
            res.wall_s = (end.2 - i0).as_secs_f64();
            res.core = end.3.shares_since(&k0);
            return Ok(res);
        }
        gen.build(frame, &mut fb);
        frame += 1;
        if mode == Mode::Gso {
            fb.stamp_all(now_ns());
            let mut i = 0;
            let mut refused = None;
            while i < fb.packets.len() {
                // A train: full-size packets, ended by a shorter one or the limits.
                let first = fb.packets[i];
                let mut j = i;
                let mut bytes = 0;
                while j < fb.packets.len() {
                    let p = fb.packets[j];
                    if j > i && (j - i >= MAX_SEGMENTS || bytes + p.len > MAX_TRAIN_BYTES) {
                        break;
                    }
                    bytes += p.len;
                    j += 1;
                    if p.len < cfg.workload.packet_size {
                        break;
                    }
                }
                iov.iov_base = fb.data[first.start..].as_ptr() as *mut libc::c_void;
                iov.iov_len = bytes;
                let segs = j - i;
                for (m, name) in msgs.iter_mut().zip(&names) {
                    m.msg_hdr.msg_name = name as *const _ as *mut libc::c_void;
                    m.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_in>() as u32;
                    m.msg_hdr.msg_iov = &mut iov;
                    m.msg_hdr.msg_iovlen = 1;
                    if segs > 1 {
                        m.msg_hdr.msg_control = cmsg_buf.as_mut_ptr() as *mut libc::c_void;
                        m.msg_hdr.msg_controllen = cmsg_space as _;
                    } else {
                        m.msg_hdr.msg_control = std::ptr::null_mut();
                        m.msg_hdr.msg_controllen = 0;
                    }
                }
                match send_all(fd, &mut msgs, &mut res) {
                    Ok(()) => res.datagrams += (segs * n) as u64,
                    Err(e) if segs > 1 && res.datagrams == 0 => {
                        refused = Some(e.to_string());
                        break;
                    }
                    Err(e) => return Err(format!("sendmmsg with GSO: {e}")),
                }
                i = j;
            }
            if let Some(why) = refused {
                eprintln!("floor: the kernel refused UDP GSO ({why}); falling back to sendmmsg per packet");
                res.gso_fallback = Some(why);
                mode = Mode::Sendmmsg;
            } else {
                continue;
            }
        }
        // sendmmsg per packet (also the GSO fallback, for the frame it failed on).
        let first_ns = now_ns();
        for k in 0..fb.packets.len() {
            let ts = if k == 0 { first_ns } else { now_ns() };
            fb.stamp(k, ts, first_ns);
            let p = fb.packets[k];
            iov.iov_base = fb.data[p.start..].as_ptr() as *mut libc::c_void;
            iov.iov_len = p.len;
            for (m, name) in msgs.iter_mut().zip(&names) {
                m.msg_hdr.msg_name = name as *const _ as *mut libc::c_void;
                m.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_in>() as u32;
                m.msg_hdr.msg_iov = &mut iov;
                m.msg_hdr.msg_iovlen = 1;
                m.msg_hdr.msg_control = std::ptr::null_mut();
                m.msg_hdr.msg_controllen = 0;
            }
            send_all(fd, &mut msgs, &mut res).map_err(|e| format!("sendmmsg: {e}"))?;
            res.datagrams += n as u64;
        }
    }
}
