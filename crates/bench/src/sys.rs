//! Thin Linux helpers: UDP sockets with big buffers and kernel receive
//! timestamps, batched receive (`recvmmsg`), CPU affinity, signals.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use socket2::{Domain, Protocol, Socket, Type};

/// A non-blocking UDP socket on 127.0.0.1 with a receive buffer of about
/// `rcvbuf` bytes and `SO_TIMESTAMPNS` on. `port` 0 picks one.
pub fn udp_receiver(port: u16, rcvbuf: usize) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).into())?;
    set_rcvbuf(&s, rcvbuf);
    s.set_nonblocking(true)?;
    let on: libc::c_int = 1;
    // SAFETY: valid fd, option value is a c_int of the given size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &on as *const _ as *const libc::c_void,
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(s.into())
}

/// Sets SO_RCVBUF, forcing past `rmem_max` when allowed (root).
pub fn set_rcvbuf(s: &Socket, bytes: usize) {
    let v = bytes as libc::c_int;
    // SAFETY: valid fd, option value is a c_int.
    let forced = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &v as *const _ as *const libc::c_void,
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if forced != 0 {
        let _ = s.set_recv_buffer_size(bytes);
    }
}

/// Sets SO_SNDBUF, forcing past `wmem_max` when allowed (root).
pub fn set_sndbuf(s: &Socket, bytes: usize) {
    let v = bytes as libc::c_int;
    // SAFETY: valid fd, option value is a c_int.
    let forced = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUFFORCE,
            &v as *const _ as *const libc::c_void,
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if forced != 0 {
        let _ = s.set_send_buffer_size(bytes);
    }
}

/// An RTP/RTCP receiver pair on consecutive ports, RTP even.
pub fn udp_receiver_pair(rcvbuf: usize) -> io::Result<(UdpSocket, UdpSocket)> {
    for _ in 0..200 {
        let port = 2 * rand::random_range_u16(10_000, 30_000);
        let Ok(rtp) = udp_receiver(port, rcvbuf) else {
            continue;
        };
        let Ok(rtcp) = udp_receiver(port + 1, 64 * 1024) else {
            continue;
        };
        return Ok((rtp, rtcp));
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free UDP port pair",
    ))
}

mod rand {
    /// A random u16 in `lo..hi`.
    pub fn random_range_u16(lo: u16, hi: u16) -> u16 {
        use ::rand::Rng;
        ::rand::thread_rng().gen_range(lo..hi)
    }
}

/// Most datagrams read by one `recvmmsg`.
pub const BATCH: usize = 64;
const CMSG_SPACE: usize = 64;

/// Buffers for batched receive, reused call after call (no allocation per packet).
pub struct RecvBatch {
    slot: usize,
    bufs: Vec<u8>,
    iovecs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    cmsgs: Vec<[u64; CMSG_SPACE / 8]>,
    count: usize,
}

// The raw pointers only point into the batch's own vectors.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    /// Room for [`BATCH`] datagrams of up to `slot` bytes.
    pub fn new(slot: usize) -> Self {
        RecvBatch {
            slot,
            bufs: vec![0; slot * BATCH],
            // SAFETY: all-zero is a valid value of these plain C structs.
            iovecs: vec![unsafe { mem::zeroed() }; BATCH],
            msgs: vec![unsafe { mem::zeroed() }; BATCH],
            cmsgs: vec![[0; CMSG_SPACE / 8]; BATCH],
            count: 0,
        }
    }

    /// One non-blocking `recvmmsg` on `fd`: the number of datagrams read, or
    /// `WouldBlock` when there was none.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for i in 0..BATCH {
            self.iovecs[i] = libc::iovec {
                iov_base: self.bufs[i * self.slot..].as_mut_ptr() as *mut libc::c_void,
                iov_len: self.slot,
            };
            let h = &mut self.msgs[i].msg_hdr;
            h.msg_name = std::ptr::null_mut();
            h.msg_namelen = 0;
            h.msg_iov = &mut self.iovecs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.cmsgs[i].as_mut_ptr() as *mut libc::c_void;
            h.msg_controllen = CMSG_SPACE as _;
            h.msg_flags = 0;
            self.msgs[i].msg_len = 0;
        }
        // SAFETY: every pointer set above points into live buffers of the given sizes.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.count = 0;
            return Err(io::Error::last_os_error());
        }
        self.count = n as usize;
        Ok(self.count)
    }

    /// Datagram `i` of the last `recv`: bytes, kernel receive time (Unix ns)
    /// when the socket reported it, and whether it was truncated.
    pub fn get(&self, i: usize) -> (&[u8], Option<u64>, bool) {
        let m = &self.msgs[i];
        let len = (m.msg_len as usize).min(self.slot);
        let data = &self.bufs[i * self.slot..i * self.slot + len];
        let truncated = m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        let mut ts = None;
        // SAFETY: the control buffer was filled by the kernel for this message;
        // CMSG_* walk it within msg_controllen.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&m.msg_hdr);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let t: libc::timespec =
                        std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                    ts = Some(t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64);
                }
                c = libc::CMSG_NXTHDR(&m.msg_hdr, c);
            }
        }
        (data, ts, truncated)
    }
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity(0) is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Raises the soft open-files limit to the hard one (each client takes up to
/// three descriptors here and one or more in the proxy, which inherits it).
pub fn raise_nofile_limit() {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut l: libc::rlimit = mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Catches SIGINT, SIGTERM and SIGHUP: they only set a flag ([`interrupted`]),
/// so the caller can stop its children and exit.
pub fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            libc::signal(
                sig,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
}

/// Whether a caught signal arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
