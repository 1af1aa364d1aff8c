//! Batched UDP fan-out: one batch of RTP packets (a frame, or what one socket read
//! produced) to every UDP client of a shared server socket in as few system calls
//! as the kernel allows.
//!
//! Every client gets identical bytes, so the packets' `iovec`s are built once and
//! shared by every client's message; only the destination differs. Runs of
//! packets of one size (the last may be shorter) go out as one GSO datagram train
//! (`UDP_SEGMENT`, as quinn-udp's `Transmit { segment_size }`), and all clients'
//! messages go out in one `sendmmsg`. Where the kernel refuses GSO (EIO, EINVAL:
//! no checksum offload on the route, an old kernel) the socket falls back to one
//! datagram per packet, still batched across clients, for good.
//!
//! The planning (runs, limits) is pure and unit-tested; [`send`] is the thin
//! unsafe layer over `sendmmsg`.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use socket2::SockAddr;

/// Most segments the kernel accepts in one GSO send (`UDP_MAX_SEGMENTS`).
pub const MAX_GSO_SEGMENTS: usize = 64;
/// Most bytes in one GSO send: a UDP datagram's payload limit, with room for the
/// IPv6 header.
pub const MAX_GSO_BYTES: usize = 65_000;
/// Most messages handed to one `sendmmsg` (`UIO_MAXIOV`).
const MAX_MMSG: usize = 1024;

/// A run of consecutive packets sent as one message: `len` packets from `start`,
/// with `segment` set when it is a GSO train of more than one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub start: usize,
    pub len: usize,
    /// The GSO segment size (every packet but the last has exactly this size).
    pub segment: Option<u16>,
}

/// Cuts `sizes` (packet lengths in order) into messages: GSO trains where `gso`
/// is on, else one message per packet.
pub fn plan(sizes: &[usize], gso: bool, out: &mut Vec<Run>) {
    out.clear();
    let mut i = 0;
    while i < sizes.len() {
        let size = sizes[i];
        let mut len = 1;
        let mut total = size;
        if gso && size > 0 && size <= usize::from(u16::MAX) {
            // Equal sizes go on; a shorter packet ends the train (it may be last).
            while let Some(&next) = sizes.get(i + len) {
                if len == MAX_GSO_SEGMENTS || total + next > MAX_GSO_BYTES || next > size {
                    break;
                }
                total += next;
                len += 1;
                if next < size {
                    break;
                }
            }
        }
        let segment = (len > 1).then_some(size as u16);
        out.push(Run {
            start: i,
            len,
            segment,
        });
        i += len;
    }
}

/// One UDP client of a shared socket.
#[derive(Debug, Clone)]
pub struct UdpDest {
    pub addr: SockAddr,
    /// Packets the kernel refused for this client.
    pub refused: Arc<AtomicU64>,
}

impl UdpDest {
    pub fn new(addr: SocketAddr, refused: Arc<AtomicU64>) -> UdpDest {
        UdpDest {
            addr: SockAddr::from(addr),
            refused,
        }
    }
}

/// What [`send`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendStats {
    /// `sendmmsg` calls made.
    pub calls: usize,
    /// Packets the kernel accepted (counted per client).
    pub sent: usize,
    /// Packets it refused (counted per client, and on each client's counter).
    pub refused: usize,
}

/// Whether a socket still tries GSO. One per server socket.
#[derive(Debug)]
pub struct GsoState {
    enabled: AtomicBool,
}

impl GsoState {
    pub fn new() -> GsoState {
        GsoState {
            enabled: AtomicBool::new(cfg!(target_os = "linux")),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    fn disable(&self) {
        if self.enabled.swap(false, Ordering::Relaxed) {
            tracing::info!(
                "the kernel refuses UDP GSO on a media socket; sending one datagram per packet"
            );
        }
    }
}

impl Default for GsoState {
    fn default() -> Self {
        GsoState::new()
    }
}

/// Reused buffers of [`send`] (one set per thread: no allocation per batch once
/// warm).
#[derive(Default)]
struct Scratch {
    sizes: Vec<usize>,
    runs: Vec<Run>,
    iovecs: Vec<libc::iovec>,
    /// One control buffer per run (its `UDP_SEGMENT` cmsg), shared by all clients,
    /// and the length used in each.
    controls: Vec<[u64; 4]>,
    control_lens: Vec<usize>,
    msgs: Vec<libc::mmsghdr>,
    /// Destination index of each message, and packets it carries.
    owners: Vec<(usize, usize)>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Sends `packets` to every one of `dests` through `socket`, without waiting: what
/// the kernel refuses (a full send buffer) is counted per client and dropped.
pub fn send(
    socket: &impl AsRawFd,
    gso: &GsoState,
    dests: &[UdpDest],
    packets: &[Bytes],
) -> SendStats {
    if dests.is_empty() || packets.is_empty() {
        return SendStats::default();
    }
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let first = send_with(&mut s, socket.as_raw_fd(), gso.enabled(), dests, packets);
        match first {
            Ok(stats) => stats,
            Err((done, stats)) => {
                // GSO refused: everything from the failed message on goes again,
                // one datagram per packet.
                gso.disable();
                let rest = resend_plain(&mut s, socket.as_raw_fd(), dests, packets, done);
                SendStats {
                    calls: stats.calls + rest.calls,
                    sent: stats.sent + rest.sent,
                    refused: stats.refused + rest.refused,
                }
            }
        }
    })
}

/// One pass. `Err((messages_done, stats))` when GSO was refused at a message.
fn send_with(
    s: &mut Scratch,
    fd: i32,
    gso: bool,
    dests: &[UdpDest],
    packets: &[Bytes],
) -> Result<SendStats, (usize, SendStats)> {
    let Scratch {
        sizes,
        runs,
        iovecs,
        controls,
        control_lens,
        msgs,
        owners,
    } = s;
    sizes.clear();
    sizes.extend(packets.iter().map(Bytes::len));
    plan(sizes, gso, runs);
    iovecs.clear();
    iovecs.extend(packets.iter().map(|p| libc::iovec {
        iov_base: p.as_ptr() as *mut libc::c_void,
        iov_len: p.len(),
    }));
    controls.clear();
    controls.resize(runs.len(), [0u64; 4]);
    control_lens.clear();
    for (run, buf) in runs.iter().zip(controls.iter_mut()) {
        control_lens.push(match run.segment {
            Some(seg) => write_segment_cmsg(buf, seg),
            None => 0,
        });
    }
    msgs.clear();
    owners.clear();
    for (d, dest) in dests.iter().enumerate() {
        for (r, run) in runs.iter().enumerate() {
            // SAFETY: an all-zero msghdr is a valid empty message.
            let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
            hdr.msg_name = dest.addr.as_ptr() as *mut libc::c_void;
            hdr.msg_namelen = dest.addr.len();
            hdr.msg_iov = iovecs[run.start..].as_ptr() as *mut libc::iovec;
            hdr.msg_iovlen = run.len as _;
            if control_lens[r] > 0 {
                hdr.msg_control = controls[r].as_ptr() as *mut libc::c_void;
                hdr.msg_controllen = control_lens[r] as _;
            }
            msgs.push(libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            });
            owners.push((d, run.len));
        }
    }
    let mut stats = SendStats::default();
    let mut next = 0;
    let mut errors_in_a_row = 0;
    while next < msgs.len() {
        let chunk = (msgs.len() - next).min(MAX_MMSG);
        stats.calls += 1;
        // SAFETY: `msgs[next..next + chunk]` are initialised headers whose
        // pointers (names, iovecs into `packets`, controls) outlive the call.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                msgs[next..].as_mut_ptr(),
                chunk as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n > 0 {
            for &(_, pkts) in &owners[next..next + n as usize] {
                stats.sent += pkts;
            }
            next += n as usize;
            errors_in_a_row = 0;
            continue;
        }
        let err = std::io::Error::last_os_error();
        let is_gso_refusal = matches!(err.raw_os_error(), Some(libc::EIO) | Some(libc::EINVAL))
            && msgs[next].msg_hdr.msg_controllen > 0;
        if is_gso_refusal {
            return Err((next, stats));
        }
        if err.kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        // The message at `next` was refused (full buffer, unreachable): count it
        // for its client and go on with the others. A buffer that stays full
        // refuses them all, without a system call each.
        let (d, pkts) = owners[next];
        dests[d].refused.fetch_add(pkts as u64, Ordering::Relaxed);
        stats.refused += pkts;
        next += 1;
        errors_in_a_row += 1;
        if err.kind() == std::io::ErrorKind::WouldBlock && errors_in_a_row >= 4 {
            for &(d, pkts) in &owners[next..] {
                dests[d].refused.fetch_add(pkts as u64, Ordering::Relaxed);
                stats.refused += pkts;
            }
            break;
        }
    }
    Ok(stats)
}

/// After a GSO refusal at message `done`: sends what remains without GSO.
fn resend_plain(
    s: &mut Scratch,
    fd: i32,
    dests: &[UdpDest],
    packets: &[Bytes],
    done: usize,
) -> SendStats {
    // Messages are laid out client by client, run by run: find where the failed
    // message's client and run begin in packet terms, and redo from there.
    let runs_per_dest = s.runs.len().max(1);
    let first_dest = done / runs_per_dest;
    let first_packet = s.runs.get(done % runs_per_dest).map_or(0, |r| r.start);
    let mut stats = SendStats::default();
    if first_dest < dests.len() {
        let head = &dests[first_dest..=first_dest];
        if let Ok(st) = send_with(s, fd, false, head, &packets[first_packet..]) {
            stats = st;
        }
        if first_dest + 1 < dests.len() {
            if let Ok(st) = send_with(s, fd, false, &dests[first_dest + 1..], packets) {
                stats.calls += st.calls;
                stats.sent += st.sent;
                stats.refused += st.refused;
            }
        }
    }
    stats
}

/// Writes a `SOL_UDP`/`UDP_SEGMENT` control message into `buf`; returns its length.
fn write_segment_cmsg(buf: &mut [u64; 4], segment: u16) -> usize {
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) } as usize;
    debug_assert!(space <= std::mem::size_of_val(buf));
    // SAFETY: `buf` is 8-byte aligned and large enough for one cmsghdr carrying a
    // u16 (CMSG_SPACE(2) is 24 on 64-bit Linux, `buf` is 32 bytes).
    unsafe {
        let mut hdr: libc::msghdr = std::mem::zeroed();
        hdr.msg_control = buf.as_mut_ptr() as *mut libc::c_void;
        hdr.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&hdr);
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = libc::UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut u16, segment);
    }
    space
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(sizes: &[usize], gso: bool) -> Vec<(usize, usize, Option<u16>)> {
        let mut out = Vec::new();
        plan(sizes, gso, &mut out);
        out.iter().map(|r| (r.start, r.len, r.segment)).collect()
    }

    #[test]
    fn a_frame_of_equal_packets_and_a_short_last_is_one_train() {
        let mut sizes = vec![1200; 16];
        sizes.push(500);
        assert_eq!(runs(&sizes, true), vec![(0, 17, Some(1200))]);
        assert_eq!(runs(&sizes, false).len(), 17);
        assert!(runs(&sizes, false)
            .iter()
            .all(|r| r.1 == 1 && r.2.is_none()));
    }

    #[test]
    fn a_shorter_packet_ends_a_train_and_a_longer_one_starts_a_new_one() {
        assert_eq!(
            runs(&[1200, 1200, 800, 1200, 1300, 1300], true),
            vec![(0, 3, Some(1200)), (3, 1, None), (4, 2, Some(1300))]
        );
        assert_eq!(runs(&[100], true), vec![(0, 1, None)]);
        assert_eq!(runs(&[], true), vec![]);
    }

    #[test]
    fn trains_stop_at_the_segment_limit() {
        let sizes = vec![100; 150];
        assert_eq!(
            runs(&sizes, true),
            vec![
                (0, 64, Some(100)),
                (64, 64, Some(100)),
                (128, 22, Some(100))
            ]
        );
    }

    #[test]
    fn trains_stop_at_the_datagram_limit() {
        // 60 000-byte packets: one per message; 20 000: three fit in 65 000.
        assert_eq!(
            runs(&[60_000, 60_000], true),
            vec![(0, 1, None), (1, 1, None)]
        );
        assert_eq!(
            runs(&[20_000; 5], true),
            vec![(0, 3, Some(20_000)), (3, 2, Some(20_000))]
        );
        for r in runs(&vec![1400; 200], true) {
            assert!(r.1 * 1400 <= MAX_GSO_BYTES && r.1 <= MAX_GSO_SEGMENTS);
        }
    }

    /// Real sockets on loopback: every client receives every packet, as separate
    /// datagrams of the original sizes, whether GSO is used or not.
    #[test]
    fn every_client_receives_every_packet_on_loopback() {
        for gso_on in [true, false] {
            let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            let receivers: Vec<std::net::UdpSocket> = (0..5)
                .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"))
                .collect();
            let refused = Arc::new(AtomicU64::new(0));
            let dests: Vec<UdpDest> = receivers
                .iter()
                .map(|r| UdpDest::new(r.local_addr().expect("addr"), refused.clone()))
                .collect();
            let mut packets: Vec<Bytes> = (0..9u8).map(|i| Bytes::from(vec![i; 1200])).collect();
            packets.push(Bytes::from(vec![9u8; 300]));
            let gso = GsoState::new();
            if !gso_on {
                gso.disable();
            }
            let stats = send(&sender, &gso, &dests, &packets);
            assert_eq!(stats.sent, 50, "gso={gso_on}: {stats:?}");
            assert_eq!(stats.refused, 0);
            assert_eq!(stats.calls, 1, "one system call for all clients");
            for r in &receivers {
                r.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                    .expect("timeout");
                let mut buf = [0u8; 2048];
                for (i, p) in packets.iter().enumerate() {
                    let n = r.recv(&mut buf).expect("datagram");
                    assert_eq!(&buf[..n], &p[..], "packet {i}");
                }
            }
            assert_eq!(refused.load(Ordering::Relaxed), 0);
        }
    }

    #[test]
    fn refused_messages_are_counted_for_their_client() {
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let good = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let (ok_count, bad_count) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        // An IPv6 destination on an IPv4 socket is refused by the kernel.
        let dests = vec![
            UdpDest::new("[::1]:9".parse().expect("addr"), bad_count.clone()),
            UdpDest::new(good.local_addr().expect("addr"), ok_count.clone()),
        ];
        let packets = vec![Bytes::from_static(&[1; 100]), Bytes::from_static(&[2; 100])];
        let stats = send(&sender, &GsoState::new(), &dests, &packets);
        assert_eq!((stats.sent, stats.refused), (2, 2), "{stats:?}");
        assert_eq!(bad_count.load(Ordering::Relaxed), 2);
        assert_eq!(ok_count.load(Ordering::Relaxed), 0);
        good.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .expect("timeout");
        let mut buf = [0u8; 256];
        assert_eq!(good.recv(&mut buf).expect("first"), 100);
        assert_eq!(good.recv(&mut buf).expect("second"), 100);
    }
}
