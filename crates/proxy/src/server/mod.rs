//! The front-end RTSP server: listeners (IPv4 and IPv6, live555's port fallback),
//! connections (RTSP, interleaved media, RTSP-over-HTTP tunnelling), sessions and
//! the shared UDP media sockets.

mod connection;
pub mod handler;
pub mod listener;
pub mod media_udp;
pub mod multicast;
pub mod session;
pub mod target;
mod tunnel;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tracing::info;

use crate::relay::StreamRegistry;
pub use media_udp::UdpPair;
pub use session::SessionTable;

/// Everything the connections of the server share.
pub struct ServerContext {
    pub streams: Arc<StreamRegistry>,
    pub sessions: SessionTable,
    pub media_v4: Option<UdpPair>,
    pub media_v6: Option<UdpPair>,
    pub tunnels: tunnel::TunnelTable,
    pub limits: rtsp::Limits,
    pub session_timeout: Duration,
    /// `Server:` header and SDP `a=tool`.
    pub server_name: String,
    /// Multicast to clients (`--multicast-range`); None answers multicast 461.
    pub multicast: Option<Arc<multicast::Multicast>>,
}

impl ServerContext {
    pub fn new(
        streams: Arc<StreamRegistry>,
        media_v4: Option<UdpPair>,
        media_v6: Option<UdpPair>,
        session_timeout: Duration,
    ) -> ServerContext {
        ServerContext {
            streams,
            sessions: SessionTable::default(),
            media_v4,
            media_v6,
            tunnels: tunnel::TunnelTable::default(),
            limits: rtsp::Limits::default(),
            session_timeout,
            server_name: format!("rtsp-proxy/{}", env!("CARGO_PKG_VERSION")),
            multicast: None,
        }
    }

    /// Serves multicast to clients that ask for it.
    pub fn with_multicast(mut self, multicast: Arc<multicast::Multicast>) -> ServerContext {
        self.sessions.set_multicast(multicast.clone());
        self.multicast = Some(multicast);
        self
    }

    /// The UDP media sockets for a client address of this family.
    pub fn media_for(&self, ip: IpAddr) -> Option<&UdpPair> {
        match crate::net::canonical_ip(ip) {
            IpAddr::V4(_) => self.media_v4.as_ref(),
            IpAddr::V6(_) => self.media_v6.as_ref(),
        }
    }

    /// Removes sessions that sent no request and no RTCP for the session timeout.
    pub fn expire_sessions(&self, now: Instant) {
        for id in self.sessions.expired(now, self.session_timeout) {
            if let Some(s) = self.sessions.remove(&id) {
                info!(session = %id, "client session timed out");
                if let Some(c) = session::lock(&s).conn.clone() {
                    c.close();
                }
            }
        }
    }

    /// Closes every session (shutdown).
    pub fn close_all(&self) {
        for id in self.sessions.all_ids() {
            if let Some(s) = self.sessions.remove(&id) {
                if let Some(c) = session::lock(&s).conn.clone() {
                    c.close();
                }
            }
        }
    }
}

/// Runs the server on already bound listeners until the task is dropped.
pub async fn serve(ctx: Arc<ServerContext>, listeners: Vec<TcpListener>) {
    for pair in [ctx.media_v4.clone(), ctx.media_v6.clone()]
        .into_iter()
        .flatten()
    {
        tokio::spawn(media_udp::receive_rtcp(ctx.clone(), pair.rtcp.clone()));
        tokio::spawn(media_udp::drain_rtp(pair.rtp.clone()));
    }
    let reaper = ctx.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tick.tick().await;
            reaper.expire_sessions(Instant::now());
        }
    });
    let mut tasks = Vec::new();
    for l in listeners {
        tasks.push(tokio::spawn(listener::accept_loop(ctx.clone(), l)));
    }
    for t in tasks {
        let _ = t.await;
    }
}
