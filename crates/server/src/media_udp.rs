//! The server's UDP media sockets: one RTP/RTCP port pair per address family,
//! shared by every UDP client (the client's address tells them apart).

use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tracing::{debug, warn};

use super::ServerContext;
use relay::udp_batch::GsoState;

/// Send buffer of the media sockets: fan-out to many clients needs room.
const SEND_BUFFER: usize = 4 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct UdpPair {
    pub rtp: Arc<UdpSocket>,
    pub rtcp: Arc<UdpSocket>,
    pub rtp_port: u16,
    pub rtcp_port: u16,
    /// Whether the RTP socket still takes GSO sends (batched fan-out).
    pub gso: Arc<GsoState>,
}

/// Binds an even/odd port pair on the unspecified address of a family, starting
/// at `first` (0 = any ephemeral pair).
pub fn bind_pair(ipv6: bool, first: u16) -> std::io::Result<UdpPair> {
    let buffers = net::Buffers {
        send: Some(SEND_BUFFER),
        recv: None,
    };
    let (rtp, rtcp, rtp_port) = net::bind_udp_pair(ipv6, first, buffers)?;
    Ok(UdpPair {
        rtp: Arc::new(UdpSocket::from_std(rtp)?),
        rtcp: Arc::new(UdpSocket::from_std(rtcp)?),
        rtp_port,
        rtcp_port: rtp_port + 1,
        gso: Arc::new(GsoState::new()),
    })
}

/// Reads clients' RTCP (receiver reports): each one keeps its session alive.
pub async fn receive_rtcp(ctx: Arc<ServerContext>, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; 2048];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let from = net::canonical(from);
                if !rtp::rtcp::is_valid_compound(&buf[..n]) {
                    continue;
                }
                if let Some(s) = ctx.sessions.by_rtcp_addr(&from) {
                    super::client_sessions::lock(&s).last_activity = Instant::now();
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
