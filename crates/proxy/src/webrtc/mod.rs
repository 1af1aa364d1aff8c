//! Browsers watch too: WebRTC playback of every path with WHEP (the IETF
//! WebRTC-HTTP egress protocol).
//!
//! - [`http`]: the HTTP listener (`--webrtc-listen`): `POST /<path>/whep`
//!   (offer in, answer out, `201` with a `Location`), `PATCH` (trickled
//!   candidates) and `DELETE` on that location, `OPTIONS` with CORS, and the
//!   viewer page `GET /<path>/`.
//! - [`session`]: one viewer as a sans-IO state machine around str0m's `Rtc`
//!   (ICE-lite, DTLS-SRTP, RTP mode), [`codecs`]: which tracks a browser can
//!   take, [`fragment`]: H.264 cut to the WebRTC packet size, [`stun`]: the
//!   ICE ufrag of a STUN request.
//! - [`driver`]: the tokio glue, one UDP socket for every session
//!   (`--webrtc-udp`) and one task per viewer.
//!
//! A viewer is one more subscriber of the stream's relay (a
//! [`crate::relay::Sink::WebRtc`] per track with a bounded queue): it counts
//! in the source's demand (an on-demand path starts for it), gets the keyframe
//! cache first, and sees the relay's continuous SSRC space, so back-end
//! restarts and pauses do not end its session.

pub mod codecs;
pub mod driver;
pub mod fragment;
pub mod http;
pub mod session;
pub mod stun;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use crate::admin::health::Health;
use crate::server::ServerContext;

/// Default UDP address of WebRTC media.
pub const DEFAULT_UDP: &str = "0.0.0.0:8189";
pub const DEFAULT_MAX_VIEWERS: usize = 500;
pub const DEFAULT_MAX_VIEWERS_PER_PATH: usize = 100;
/// A session that has not connected (ICE and DTLS) by then is freed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// `--webrtc-*` and `[webrtc]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebRtcConfig {
    /// The HTTP (WHEP and viewer page) address; `None`: WebRTC is off.
    pub listen: Option<SocketAddr>,
    /// The one UDP socket of every session's media.
    pub udp: SocketAddr,
    /// Addresses announced as host candidates besides the one the browser's
    /// HTTP request came to (a NAT's or a Kubernetes service's).
    pub candidates: Vec<IpAddr>,
    pub max_viewers: usize,
    pub max_viewers_per_path: usize,
    /// HTTPS with the RTSPS certificate (`--tls-cert`/`--tls-key`).
    pub https: bool,
}

impl WebRtcConfig {
    /// Nothing set yet (`listen` missing): the defaults.
    pub fn off() -> WebRtcConfig {
        WebRtcConfig {
            listen: None,
            udp: DEFAULT_UDP
                .parse()
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 8189))),
            candidates: Vec::new(),
            max_viewers: DEFAULT_MAX_VIEWERS,
            max_viewers_per_path: DEFAULT_MAX_VIEWERS_PER_PATH,
            https: false,
        }
    }
}

/// Why WebRTC could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebRtcError {
    #[error("cannot listen for WebRTC (WHEP) on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "--webrtc-https (https in [webrtc]) needs the RTSPS certificate: --tls-cert and --tls-key"
    )]
    HttpsWithoutCertificate,
    #[error("cannot bind the WebRTC UDP port {addr}: {source}")]
    Udp {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The running WebRTC side; [`WebRtcHandle::stop`] ends it.
pub struct WebRtcHandle {
    /// The HTTP address (the port resolved).
    pub addr: SocketAddr,
    /// Served over TLS.
    pub https: bool,
    /// The UDP address (the port resolved).
    pub udp: SocketAddr,
    pub viewers: Arc<http::Viewers>,
    tasks: Vec<JoinHandle<Option<()>>>,
}

impl WebRtcHandle {
    pub fn stop(self) {
        self.viewers.end_all();
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Binds the HTTP and UDP ports and starts serving (HTTPS with `tls`).
/// `bearer` (the admin token) is taken on a WHEP POST besides the users'
/// Basic credentials; new viewers are refused (503) once `health` says the
/// proxy drains.
pub async fn start(
    config: &WebRtcConfig,
    listen: SocketAddr,
    ctx: Arc<ServerContext>,
    health: Arc<Health>,
    tls: Option<Arc<rustls::ServerConfig>>,
    bearer: Option<String>,
) -> Result<WebRtcHandle, WebRtcError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| WebRtcError::Listen {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().unwrap_or(listen);
    let socket = bind_media_socket(config.udp).map_err(|source| WebRtcError::Udp {
        addr: config.udp,
        source,
    })?;
    let udp = socket.local_addr().unwrap_or(config.udp);
    let socket = Arc::new(socket);
    let demux = Arc::new(driver::Demux::default());
    let tasks = ctx.tasks.clone();
    let viewers = Arc::new(http::Viewers::new(
        config.clone(),
        udp.port(),
        socket.clone(),
        demux.clone(),
        ctx,
        bearer,
        health,
    ));
    let receiver = tasks.spawn(driver::receive_loop(socket, demux));
    let https = tls.is_some();
    let tls = tls.map(|t| {
        let mut t = (*t).clone();
        t.alpn_protocols = vec![b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(t))
    });
    let server = tasks.spawn(http::serve(listener, viewers.clone(), tls));
    tracing::info!(%addr, %udp, https, "WebRTC (WHEP) listening");
    Ok(WebRtcHandle {
        https,
        addr,
        udp,
        viewers,
        tasks: vec![receiver, server],
    })
}

/// Receive buffer asked for the one media socket of every session: every
/// viewer's STUN, DTLS and RTCP come in on it, and nothing reads it while the
/// runtime sends a keyframe to every viewer. With the default (about 200 KiB)
/// it overflowed from some 250 viewers on loopback: handshakes and consent
/// checks were lost (ICE/DTLS not connected, ICE disconnected).
const UDP_RECV_BUFFER: usize = 4 << 20;

/// The media socket, bound with [`UDP_RECV_BUFFER`] (the kernel may grant
/// less: `net.core.rmem_max`).
fn bind_media_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    let _ = s.set_recv_buffer_size(UDP_RECV_BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}
