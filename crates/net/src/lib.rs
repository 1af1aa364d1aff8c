//! What the back-end client (`source`) and the front end (`server`) share about
//! the network: socket helpers (UDP port-pair binding, multicast, address
//! normalisation, here), TLS configurations ([`tls`]), network text made safe
//! for log lines ([`log_text`]) and our name on the wire ([`SOFTWARE`]).

pub mod log_text;
pub mod tls;

/// `rtsp-proxy/<version>`: the `Server` header of our responses and the
/// `User-Agent` of our requests.
pub const SOFTWARE: &str = concat!("rtsp-proxy/", env!("CARGO_PKG_VERSION"));

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// A capped receive buffer is reported once per process.
static RECV_CAP_WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Socket buffer sizes to ask for (the kernel may grant less).
#[derive(Debug, Clone, Copy, Default)]
pub struct Buffers {
    pub send: Option<usize>,
    pub recv: Option<usize>,
}

/// A non-blocking UDP socket bound to `addr` (IPv6 sockets are IPv6-only).
pub fn bind_udp(addr: SocketAddr, buffers: Buffers) -> io::Result<std::net::UdpSocket> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    if let Some(n) = buffers.send {
        let _ = s.set_send_buffer_size(n);
    }
    if let Some(n) = buffers.recv {
        let _ = s.set_recv_buffer_size(n);
        // Linux reports twice what it granted; less than asked even so means
        // net.core.rmem_max capped it, and bursts (keyframes) may be lost.
        if let Ok(got) = s.recv_buffer_size() {
            if got < n && !RECV_CAP_WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(
                    "the kernel caps UDP receive buffers at {} KiB (asked {} KiB): raise net.core.rmem_max (sysctl) if back-end packets are lost in bursts",
                    got / 2 / 1024,
                    n / 1024
                );
            }
        }
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Binds an RTP/RTCP pair (even port, next odd port) on the unspecified address
/// of a family, starting at `first` (0: any ephemeral pair). Returns the RTP and
/// RTCP sockets and the RTP port.
pub fn bind_udp_pair(
    ipv6: bool,
    first: u16,
    buffers: Buffers,
) -> io::Result<(std::net::UdpSocket, std::net::UdpSocket, u16)> {
    let ip: IpAddr = if ipv6 {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    let mut last_err = None;
    for attempt in 0..200u16 {
        let rtp_port = if first == 0 {
            // Let the kernel pick, then insist on an even port with a free successor.
            let probe = bind_udp(SocketAddr::new(ip, 0), Buffers::default())?;
            probe.local_addr()?.port() & !1
        } else {
            match first.checked_add(attempt * 2) {
                Some(p) => p & !1,
                None => break,
            }
        };
        if rtp_port == 0 {
            continue;
        }
        match (
            bind_udp(SocketAddr::new(ip, rtp_port), buffers),
            bind_udp(SocketAddr::new(ip, rtp_port + 1), buffers),
        ) {
            (Ok(rtp), Ok(rtcp)) => return Ok((rtp, rtcp, rtp_port)),
            (Err(e), _) | (_, Err(e)) => last_err = Some(e),
        }
    }
    Err(last_err
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no free UDP port pair")))
}

/// A non-blocking UDP socket receiving the multicast `group` on `port`: bound to
/// the group address (so only that group's datagrams reach it) with
/// SO_REUSEADDR (other receivers on this host may share the port), joined
/// source-specific (`IP_ADD_SOURCE_MEMBERSHIP`) when `source` is given, else
/// any-source, on the interface the routing table chooses.
pub fn bind_multicast(
    group: Ipv4Addr,
    port: u16,
    source: Option<Ipv4Addr>,
    recv_buffer: usize,
) -> io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    let _ = s.set_recv_buffer_size(recv_buffer);
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::new(IpAddr::V4(group), port).into())?;
    match source {
        Some(src) => s.join_ssm_v4(&src, &group, &Ipv4Addr::UNSPECIFIED)?,
        None => s.join_multicast_v4(&group, &Ipv4Addr::UNSPECIFIED)?,
    }
    Ok(s.into())
}

/// An IPv4-mapped IPv6 socket address as the IPv4 one it is
/// ([`IpAddr::to_canonical`]); others unchanged.
pub fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// Whether `ip` is in the network `network/prefix` (both of one family).
#[must_use]
pub fn in_network(ip: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (ip, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_become_ipv4() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:554".parse().unwrap();
        assert_eq!(
            canonical(mapped),
            "127.0.0.1:554".parse::<SocketAddr>().unwrap()
        );
        let v6: SocketAddr = "[::1]:554".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }

    #[test]
    fn pairs_are_even_and_consecutive() {
        let (rtp, rtcp, port) = bind_udp_pair(false, 0, Buffers::default()).unwrap();
        assert_eq!(port % 2, 0);
        assert_eq!(rtp.local_addr().unwrap().port(), port);
        assert_eq!(rtcp.local_addr().unwrap().port(), port + 1);
    }
}
