//! The front-end RTSP server: listeners (IPv4 and IPv6, live555's port fallback),
//! connections (RTSP, interleaved media, RTSP-over-HTTP tunnelling), sessions and
//! the shared UDP media sockets.

pub mod access;
pub mod client_sessions;
pub mod conn_out;
mod connection;
pub mod handler;
pub mod listener;
pub mod media_udp;
pub mod multicast;
pub mod play_urls;
pub mod proxy_header;
pub mod register;
mod reply;
pub mod slots;
pub mod target;
mod tunnel;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tracing::info;

pub use client_sessions::SessionTable;
pub use media_udp::UdpPair;
use relay::StreamRegistry;
use supervisor::Supervisor;
use tasks::Tasks;

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
    /// Who may watch (`-C`); `None`: everyone.
    pub client_auth: Option<access::AccessControl>,
    /// A session may be used from any address, not only the one that created it
    /// (`--sessions-from-any-address`, for clients behind a changing NAT).
    pub sessions_from_any_address: bool,
    /// Requests for a session from another address than the one that created
    /// it are warned about at most every 10 s ...
    pub foreign_session_warnings: std::sync::Mutex<net::log_text::Throttle>,
    /// ... and so are tunnel POSTs from another address than their GET's.
    pub foreign_tunnel_warnings: std::sync::Mutex<net::log_text::Throttle>,
    /// Connections one client address may hold at once
    /// (`--max-connections-per-address`).
    pub max_connections_per_address: usize,
    /// Peers whose connections start with a PROXY protocol header
    /// (`--trusted-proxy`); see [`proxy_header`].
    pub trusted_proxies: proxy_header::TrustedProxies,
    /// Connections closed for their PROXY header (or its absence) are warned
    /// about at most every 10 s, each kind of reason on its own.
    pub proxy_header_warnings:
        std::sync::Mutex<[net::log_text::Throttle; proxy_header::WARNING_KINDS]>,
    /// The streams that have a source (command line, REGISTER), publishing them in
    /// `streams`.
    pub supervisor: Arc<Supervisor>,
    /// REGISTER/DEREGISTER are accepted (`-R`).
    pub register: Option<register::Registrar>,
    /// Who may REGISTER/DEREGISTER (`-U`); `None`: anyone (within the allow-list).
    pub register_auth: Option<access::AccessControl>,
    /// Multicast to clients (`--multicast-range`); None answers multicast 461.
    pub multicast: Option<Arc<multicast::Multicast>>,
    /// The owner of the server's tasks (connections, receive loops, reaper).
    pub tasks: Tasks,
}

impl ServerContext {
    pub fn new(
        streams: Arc<StreamRegistry>,
        media_v4: Option<UdpPair>,
        media_v6: Option<UdpPair>,
        session_timeout: Duration,
    ) -> ServerContext {
        ServerContext {
            sessions: SessionTable::default(),
            media_v4,
            media_v6,
            tunnels: tunnel::TunnelTable::default(),
            limits: rtsp::Limits::default(),
            session_timeout,
            server_name: net::SOFTWARE.to_owned(),
            client_auth: None,
            sessions_from_any_address: false,
            foreign_session_warnings: Default::default(),
            foreign_tunnel_warnings: Default::default(),
            max_connections_per_address: slots::DEFAULT_CONNECTIONS_PER_ADDRESS,
            trusted_proxies: Default::default(),
            proxy_header_warnings: Default::default(),
            supervisor: Arc::new(Supervisor::new(
                streams.clone(),
                supervisor::DEFAULT_MAX_REGISTERED,
            )),
            streams,
            register: None,
            register_auth: None,
            multicast: None,
            tasks: Tasks::new(),
        }
    }

    /// Removes a stream of the supervisor: its client sessions are closed (the
    /// playing ones and the others), its source is stopped (TEARDOWN) and new
    /// requests for it get 404. False if there is no such stream.
    pub fn remove_stream(&self, name: &str) -> bool {
        let Some(stream) = self.streams.get(name) else {
            return false;
        };
        if self.supervisor.origin(name).is_none() {
            return false;
        }
        self.supervisor.remove(name);
        for id in self.sessions.of_stream(&stream) {
            if let Some(s) = self.sessions.remove(&id) {
                info!(session = %id, stream = %name, "stream removed; client session closed");
                if let Some(c) = client_sessions::lock(&s).conn.clone() {
                    c.close();
                }
            }
        }
        true
    }

    /// Removes the streams whose source gave up (a registered back end that may
    /// not be redialled lost its connection).
    pub fn reap_streams(&self) {
        for name in self.supervisor.finished() {
            self.remove_stream(&name);
        }
    }

    /// Serves multicast to clients that ask for it.
    /// The context with these per-client session limits (before
    /// [`ServerContext::with_multicast`]: the table is replaced).
    pub fn with_session_limits(mut self, limits: client_sessions::SessionLimits) -> ServerContext {
        self.sessions = SessionTable::with_limits(limits);
        self
    }

    pub fn with_multicast(mut self, multicast: Arc<multicast::Multicast>) -> ServerContext {
        self.sessions.set_multicast(multicast.clone());
        self.multicast = Some(multicast);
        self
    }

    /// The UDP media sockets for a client address of this family.
    pub fn media_for(&self, ip: IpAddr) -> Option<&UdpPair> {
        match ip.to_canonical() {
            IpAddr::V4(_) => self.media_v4.as_ref(),
            IpAddr::V6(_) => self.media_v6.as_ref(),
        }
    }

    /// Removes sessions that sent no request and no RTCP for the session timeout.
    pub fn expire_sessions(&self, now: Instant) {
        for id in self.sessions.expired(now, self.session_timeout) {
            if let Some(s) = self.sessions.remove(&id) {
                info!(session = %id, "client session timed out");
                if let Some(c) = client_sessions::lock(&s).conn.clone() {
                    c.close();
                }
            }
        }
    }

    /// Closes every session (shutdown).
    pub fn close_all(&self) {
        for id in self.sessions.all_ids() {
            if let Some(s) = self.sessions.remove(&id) {
                if let Some(c) = client_sessions::lock(&s).conn.clone() {
                    c.close();
                }
            }
        }
    }
}

/// The server's bound listening sockets.
#[derive(Default)]
pub struct Listeners {
    /// Plain RTSP (and RTSP-over-HTTP).
    pub plain: Vec<TcpListener>,
    /// RTSP over TLS, with the acceptor holding the server's certificate.
    pub tls: Vec<TcpListener>,
    pub acceptor: Option<tokio_rustls::TlsAcceptor>,
}

/// Starts the server on already bound listeners: the accept loops as tasks of
/// `accepting` (cancelling it closes the ports at once, the connections go on),
/// everything else (connections, RTCP receive, RTP drain, the session reaper)
/// as tasks of `ctx.tasks`. Returns the count of open client connections.
pub fn serve(
    ctx: &Arc<ServerContext>,
    listeners: Listeners,
    accepting: &Tasks,
) -> listener::OpenConnections {
    for pair in [ctx.media_v4.clone(), ctx.media_v6.clone()]
        .into_iter()
        .flatten()
    {
        ctx.tasks
            .spawn(media_udp::receive_rtcp(ctx.clone(), pair.rtcp.clone()));
        ctx.tasks.spawn(media_udp::drain_rtp(pair.rtp.clone()));
    }
    let reaper = ctx.clone();
    ctx.tasks.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tick.tick().await;
            reaper.expire_sessions(Instant::now());
        }
    });
    // One connection count for every port.
    let open =
        slots::ConnectionSlots::new(listener::MAX_CONNECTIONS, ctx.max_connections_per_address);
    for l in listeners.plain {
        accepting.spawn(listener::accept_loop(ctx.clone(), l, None, open.clone()));
    }
    if let Some(acceptor) = listeners.acceptor {
        for l in listeners.tls {
            let task = listener::accept_loop(ctx.clone(), l, Some(acceptor.clone()), open.clone());
            accepting.spawn(task);
        }
    }
    open
}
