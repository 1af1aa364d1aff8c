//! The server's UDP media sockets: one RTP/RTCP port pair per address family,
//! shared by every UDP client (the client's address tells them apart).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tracing::{debug, warn};

use super::ServerContext;

/// Send buffer of the media sockets: fan-out to many clients needs room.
const SEND_BUFFER: usize = 4 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct UdpPair {
    pub rtp: Arc<UdpSocket>,
    pub rtcp: Arc<UdpSocket>,
    pub rtp_port: u16,
    pub rtcp_port: u16,
}

fn bind_one(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    let _ = s.set_send_buffer_size(SEND_BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Binds an even/odd port pair on the unspecified address of a family, starting
/// at `first` (0 = any ephemeral pair).
pub fn bind_pair(ipv6: bool, first: u16) -> std::io::Result<UdpPair> {
    let ip: IpAddr = if ipv6 {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    let mut last_err = None;
    for attempt in 0..200u16 {
        let rtp_port = if first == 0 {
            // Let the kernel pick, then insist on an even port with a free successor.
            let probe = bind_one(SocketAddr::new(ip, 0))?;
            let p = probe.local_addr()?.port();
            drop(probe);
            p & !1
        } else {
            match first.checked_add(attempt * 2) {
                Some(p) => p & !1,
                None => break,
            }
        };
        if rtp_port == 0 {
            continue;
        }
        let rtp = match bind_one(SocketAddr::new(ip, rtp_port)) {
            Ok(s) => s,
            Err(e) => {
                last_err = Some(e);
                continue;
            }
        };
        let rtcp = match bind_one(SocketAddr::new(ip, rtp_port + 1)) {
            Ok(s) => s,
            Err(e) => {
                last_err = Some(e);
                continue;
            }
        };
        return Ok(UdpPair {
            rtp: Arc::new(UdpSocket::from_std(rtp)?),
            rtcp: Arc::new(UdpSocket::from_std(rtcp)?),
            rtp_port,
            rtcp_port: rtp_port + 1,
        });
    }
    Err(last_err.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::AddrInUse, "no free UDP port pair")
    }))
}

/// Reads clients' RTCP (receiver reports): each one keeps its session alive.
pub async fn receive_rtcp(ctx: Arc<ServerContext>, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; 2048];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let from = normalize(from);
                if !rtp::rtcp::is_valid_compound(&buf[..n]) {
                    continue;
                }
                if let Some(s) = ctx.sessions.by_rtcp_addr(&from) {
                    super::session::lock(&s).last_activity = Instant::now();
                }
            }
            Err(e) => {
                // ICMP port unreachable from a vanished client shows up here on Linux.
                debug!("RTCP receive: {e}");
                if !is_transient(&e) {
                    warn!("RTCP socket failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// Clients may send RTP (or NAT keep-alives) to our RTP port: read and drop them
/// so the socket's receive queue never fills.
pub async fn drain_rtp(socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; 2048];
    loop {
        if let Err(e) = socket.recv_from(&mut buf).await {
            if !is_transient(&e) {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::WouldBlock
    )
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
pub fn normalize(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}
