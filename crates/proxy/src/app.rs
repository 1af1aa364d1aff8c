//! Puts the rooms together: the supervisor with the command-line streams, REGISTER
//! (`-R`), the server, the banner, and a graceful shutdown on SIGINT/SIGTERM.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::admin::health::{Health, Phase};
use crate::admin::server::AdminHandle;
use crate::config::{Config, CurrentConfig};
use crate::relay::{Stream, StreamRegistry};
use crate::server::access::AccessControl;
use crate::server::register::Registrar;
use crate::server::{self, listener, media_udp, ServerContext};
use crate::supervisor::{Origin, Supervisor};
use crate::tasks::Tasks;
use crate::webrtc::WebRtcHandle;

/// Why the proxy could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Bind(#[from] listener::BindError),
    #[error(transparent)]
    HttpBind(#[from] listener::HttpBindError),
    #[error("cannot open UDP media sockets: {0}")]
    Media(std::io::Error),
    #[error(transparent)]
    Demo(#[from] crate::demo::DemoError),
    #[error("duplicate stream name {0:?}")]
    DuplicateStream(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
    #[error(transparent)]
    WebRtc(#[from] crate::webrtc::WebRtcError),
    #[error("path {0:?}: back-end TLS: {1}")]
    PathTls(String, String),
}

/// How long shutdown waits for back ends to answer TEARDOWN, and then for the
/// last tasks to end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Runs the proxy until SIGINT or SIGTERM: binds, builds the server's state,
/// starts the admin port, publishes the streams, serves, then shuts down.
pub async fn run(config: Config) -> Result<(), AppError> {
    // Refused before anything binds: an open admin port needs a token.
    if let Some(a) = &config.admin {
        crate::admin::check_listen(a.listen, a.token.as_deref())?;
    }
    // Watched from the start: a SIGTERM during start-up is a stop, not a kill.
    let mut signals = StopSignals::new(config.config_file.is_some());
    let tasks = Tasks::new();
    let health = Arc::new(Health::new());
    let mut bound = bind(&config)?;
    // What REGISTER, the admin API and the reloader share: reloads update it.
    let current = Arc::new(CurrentConfig::new(config.clone()));
    let ctx = server_context(&config, &current, &bound, &tasks)?;
    // Before the streams: the port answers (or the bind fails) before any
    // source dials, and before the "Play this stream" lines; not ready yet.
    // WebRTC (WHEP) before the streams too, so that its URLs are in the banner.
    let webrtc = start_webrtc(&config, &ctx, &health).await?;
    let admin = start_admin(&config, &current, &ctx, &tasks, &health, webrtc.as_ref()).await?;
    publish_streams(&config, &ctx, &bound, webrtc.as_ref())?;
    print_ports(&config, &ctx, &bound, webrtc.as_ref());

    let accepting = tasks.child();
    let open = server::serve(&ctx, std::mem::take(&mut bound.listeners), &accepting);
    let reloader = start_housekeeping(&config, current, &ctx);
    health.set(Phase::Serving);

    let first = signals.next().await;
    // Not ready at once, and the ports closed: nothing new comes in.
    health.set(Phase::Draining);
    accepting.cancel();
    reloader.cancel();
    let webrtc_viewers = webrtc.as_ref().map(|w| w.viewers.clone());
    drain(
        &ctx,
        &open,
        webrtc_viewers.as_deref(),
        config.drain_timeout,
        first,
        &mut signals,
    )
    .await;
    tokio::select! {
        () = shut_down(&ctx, admin, webrtc) => {}
        s = signals.next() => warn!("{s} while shutting down: exiting at once"),
    }
    Ok(())
}

/// What [`bind`] opened: the listeners, their ports and the UDP media sockets.
struct Bound {
    listeners: server::Listeners,
    /// The plain RTSP port (`None` with `--tls-only`).
    port: Option<u16>,
    /// The dedicated RTSP-over-HTTP port.
    http_port: Option<u16>,
    tls_port: Option<u16>,
    media_v4: Option<server::UdpPair>,
    media_v6: Option<server::UdpPair>,
    /// The `rtsps://` back ends' client configuration of the command line.
    backend_tls: Arc<rustls::ClientConfig>,
}

/// Reads the certificates first (a bad file is named before anything else
/// happens), then binds the ports and the media sockets.
fn bind(config: &Config) -> Result<Bound, AppError> {
    let acceptor = match &config.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(crate::tls::server_config(
            &t.cert, &t.key,
        )?)),
        None => None,
    };
    let backend_tls = crate::tls::client_config(&config.defaults.backend_tls)?;
    if config.defaults.backend_tls.insecure {
        warn!("--backend-tls-insecure: the certificates of rtsps:// back ends are not verified; anyone on the path can read and change their streams");
    }
    let tls_only = config.tls.as_ref().is_some_and(|t| t.only);
    let (mut plain, port) = if tls_only {
        (Vec::new(), None)
    } else {
        let (l, p) = listener::bind_with_fallback(&config.bind_addresses, config.rtsp_port)?;
        (l, Some(p))
    };
    // The dedicated RTSP-over-HTTP port is plain text: none with --tls-only.
    let (http_listeners, http_port) = match port {
        Some(p) => listener::bind_http_port(&config.bind_addresses, config.http_port, p)?,
        None => (Vec::new(), None),
    };
    plain.extend(http_listeners);
    let tls_port = config.tls.as_ref().map(|t| t.port);
    let tls_listeners = match tls_port {
        Some(p) => listener::bind_tls(&config.bind_addresses, p)?,
        None => Vec::new(),
    };
    let wants_v4 = config.bind_addresses.iter().any(|a| a.is_ipv4());
    let wants_v6 = config.bind_addresses.iter().any(|a| a.is_ipv6());
    let media_v4 = if wants_v4 {
        Some(media_udp::bind_pair(false, 0).map_err(AppError::Media)?)
    } else {
        None
    };
    let media_v6 = if wants_v6 {
        media_udp::bind_pair(true, 0).ok()
    } else {
        None
    };
    Ok(Bound {
        listeners: server::Listeners {
            plain,
            tls: tls_listeners,
            acceptor,
        },
        port,
        http_port,
        tls_port,
        media_v4,
        media_v6,
        backend_tls,
    })
}

/// The server's shared state: sessions, limits, multicast, the supervisor,
/// REGISTER and client authentication; every task owned by `tasks`.
fn server_context(
    config: &Config,
    current: &Arc<CurrentConfig>,
    bound: &Bound,
    tasks: &Tasks,
) -> Result<Arc<ServerContext>, AppError> {
    let streams = Arc::new(StreamRegistry::new());
    // Multicast goes out of the IPv4 media sockets (one more pair when the
    // server listens on IPv6 only).
    let multicast = match config.multicast {
        Some(m) => {
            let pair = match &bound.media_v4 {
                Some(p) => p.clone(),
                None => media_udp::bind_pair(false, 0).map_err(AppError::Media)?,
            };
            Some(server::multicast::Multicast::new(m, pair).map_err(AppError::Media)?)
        }
        None => None,
    };
    let mut ctx = ServerContext::new(
        streams.clone(),
        bound.media_v4.clone(),
        bound.media_v6.clone(),
        config.session_timeout,
    )
    .with_session_limits(config.session_limits);
    ctx.tasks = tasks.clone();
    ctx.sessions_from_any_address = config.sessions_from_any_address;
    ctx.max_connections_per_address = config.max_connections_per_address;
    ctx.trusted_proxies = config.trusted_proxies.clone();
    if let Some(m) = multicast {
        m.set_tasks(tasks);
        ctx = ctx.with_multicast(m);
    }
    ctx.supervisor =
        Arc::new(Supervisor::new(streams, config.max_registered).with_tasks(tasks.clone()));
    if config.register {
        let mut registrar = Registrar::new(
            current.clone(),
            advertised_ip(config),
            bound.port,
            bound.tls_port,
        );
        registrar.backend_tls = Some(bound.backend_tls.clone());
        ctx.register = Some(registrar);
        ctx.register_auth = AccessControl::new(config.register_users.clone(), false);
    }
    ctx.client_auth = AccessControl::new(config.client_users.clone(), config.client_basic_in_clear);
    ctx.supervisor.set_backend_tls(
        config.defaults.backend_tls.clone(),
        bound.backend_tls.clone(),
    );
    Ok(Arc::new(ctx))
}

/// Starts the WebRTC (WHEP) listener and its UDP media socket
/// (`--webrtc-listen`), if asked for.
async fn start_webrtc(
    config: &Config,
    ctx: &Arc<ServerContext>,
    health: &Arc<Health>,
) -> Result<Option<WebRtcHandle>, AppError> {
    let Some((w, listen)) = config.webrtc.as_ref().and_then(|w| Some((w, w.listen?))) else {
        return Ok(None);
    };
    let tls = match (w.https, &config.tls) {
        (false, _) => None,
        (true, Some(t)) => Some(crate::tls::server_config(&t.cert, &t.key)?),
        (true, None) => return Err(crate::webrtc::WebRtcError::HttpsWithoutCertificate.into()),
    };
    let admin_token = config.admin.as_ref().and_then(|a| a.token.clone());
    Ok(Some(
        crate::webrtc::start(w, listen, ctx.clone(), health.clone(), tls, admin_token).await?,
    ))
}

/// Starts the admin port (`--admin`), if asked for, and says where it is; its
/// `/readyz` reports `health`.
async fn start_admin(
    config: &Config,
    current: &Arc<CurrentConfig>,
    ctx: &Arc<ServerContext>,
    tasks: &Tasks,
    health: &Arc<Health>,
    webrtc: Option<&WebRtcHandle>,
) -> Result<Option<AdminHandle>, AppError> {
    let Some(a) = &config.admin else {
        return Ok(None);
    };
    let state = crate::admin::server::AdminState {
        streams: ctx.streams.clone(),
        supervisor: ctx.supervisor.clone(),
        history: crate::admin::history::History::new(),
        token: a.token.clone(),
        control: Some(crate::admin::server::Control {
            ctx: ctx.clone(),
            config: current.clone(),
        }),
        health: health.clone(),
        webrtc: webrtc.map(|w| (w.viewers.clone(), w.addr.port())),
    };
    let handle = crate::admin::server::start(a.listen, state, tasks).await?;
    eprintln!(
        "(Admin port: metrics on http://{0}/metrics, status on http://{0}/v1/paths, dashboard on http://{0}/{1}; probes on http://{0}/healthz and http://{0}/readyz.)",
        handle.addr,
        if a.token.is_some() { " (a token is needed but for the probes)" } else { "" }
    );
    Ok(Some(handle))
}

/// Prints the banner and publishes every stream (command-line URLs, the config
/// file's paths, the demo), each with its "Play this stream" lines.
fn publish_streams(
    config: &Config,
    ctx: &ServerContext,
    bound: &Bound,
    webrtc: Option<&WebRtcHandle>,
) -> Result<(), AppError> {
    eprintln!(
        "rtsp-proxy {} (a live555ProxyServer-compatible RTSP proxy)",
        env!("CARGO_PKG_VERSION")
    );
    eprintln!();
    let host = advertised_ip(config);
    let whep_base = webrtc.map(|w| {
        let ip = if w.addr.ip().is_unspecified() {
            host
        } else {
            w.addr.ip()
        };
        let scheme = if w.https { "https" } else { "http" };
        format!(
            "{scheme}://{}",
            std::net::SocketAddr::new(ip, w.addr.port())
        )
    });
    // One line per URL the stream is served on: plain RTSP, then RTSPS, then
    // the WebRTC viewer page and its WHEP endpoint.
    let play_lines = |name: &str| {
        for url in crate::server::play_urls::play_urls(host, bound.port, bound.tls_port, name) {
            eprintln!("\tPlay this stream using the URL: {url}");
        }
        if let Some(base) = &whep_base {
            eprintln!("\tWatch it in a browser: {base}/{name}/ (WHEP: {base}/{name}/whep)");
        }
    };
    let supervisor = &ctx.supervisor;
    for (url, name) in config.urls.iter().zip(config.stream_names()) {
        supervisor
            .add_spec(&name, config.path_spec(url), Origin::CommandLine)
            .map_err(|_| AppError::DuplicateStream(name.clone()))?;
        eprintln!(
            "RTSP stream, proxying the stream \"{}\"",
            rtsp::url::redact(url)
        );
        play_lines(&name);
    }
    for (name, spec) in &config.paths {
        supervisor
            .add_spec(name, spec.clone(), Origin::Config)
            .map_err(|e| match e {
                crate::supervisor::AddError::Tls(t) => AppError::PathTls(name.clone(), t),
                _ => AppError::DuplicateStream(name.clone()),
            })?;
        eprintln!(
            "RTSP stream \"{name}\" (config file), proxying the stream \"{}\"{}",
            spec.redacted_source(),
            if spec.options.on_demand {
                " on demand"
            } else {
                ""
            }
        );
        play_lines(name);
    }
    if config.demo {
        let stream = Stream::with_cache(
            crate::demo::STREAM_NAME,
            config.defaults.keyframe_cache_bytes,
        );
        stream.set_tasks(&ctx.tasks);
        if !ctx.streams.insert(stream.clone()) {
            return Err(AppError::DuplicateStream(crate::demo::STREAM_NAME.into()));
        }
        crate::demo::spawn(stream, &ctx.tasks)?;
        eprintln!("Built-in demo stream (H.264 test pattern)");
        play_lines(crate::demo::STREAM_NAME);
    }
    Ok(())
}

/// The banner's closing lines: REGISTER, tunnelling, RTSPS, multicast and client
/// login.
fn print_ports(config: &Config, ctx: &ServerContext, bound: &Bound, webrtc: Option<&WebRtcHandle>) {
    if let (true, Some(p)) = (config.register, bound.port.or(bound.tls_port)) {
        eprintln!("(We handle incoming \"REGISTER\" requests on port {p})");
    }
    // A packaged config file ships with no path: say what the proxy waits for.
    if let Some(file) = config.config_file.as_ref().filter(|_| {
        config.urls.is_empty() && config.paths.is_empty() && !config.demo && !config.register
    }) {
        eprintln!(
            "(No stream yet: add a [paths.NAME] table to {}; the file is read again when it changes.)",
            file.display()
        );
    }
    eprintln!();
    // live555's wording; tunnels are accepted on the RTSP port in any case.
    if let Some(port) = bound.port {
        match bound.http_port {
            Some(p) => eprintln!("(We use port {p} for optional RTSP-over-HTTP tunneling.)"),
            None => eprintln!(
                "(RTSP-over-HTTP tunneling is not available on a port of its own; the RTSP port {port} accepts it.)"
            ),
        }
    }
    if let Some(w) = webrtc {
        eprintln!(
            "(Browsers watch with WebRTC: WHEP and viewer pages on {}://{}, media on UDP {}.)",
            if w.https { "https" } else { "http" },
            w.addr,
            w.udp
        );
    }
    if let Some(tls_port) = bound.tls_port {
        eprintln!(
            "(RTSPS, RTSP over TLS, is accepted on port {tls_port}; RTSP-over-HTTP tunneling inside TLS too.)"
        );
    }
    if let Some(m) = config.multicast {
        eprintln!(
            "(Multicast to clients that ask for it: groups from {}/{}, ports from {}, TTL {}.)",
            m.network, m.prefix_len, m.port, m.ttl
        );
    }
    if ctx.client_auth.is_some() {
        eprintln!(
            "(Clients must log in: {} user(s), Digest{}.)",
            config.client_users.len(),
            if config.client_basic_in_clear {
                " or Basic"
            } else {
                "; Basic over TLS only"
            }
        );
    }
}

/// The tasks that keep the proxy tidy while it serves: the once-a-second
/// ticker (stream statistics, streams whose source gave up; it goes on while
/// draining) and the config file's reloader. Returns the reloader's owner,
/// stopped when the drain starts (no reload adds a path then).
fn start_housekeeping(
    config: &Config,
    current: Arc<CurrentConfig>,
    ctx: &Arc<ServerContext>,
) -> Tasks {
    let ticker_ctx = ctx.clone();
    ctx.tasks.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let now = Instant::now();
            for s in ticker_ctx.streams.all() {
                s.tick(now);
            }
            ticker_ctx.reap_streams();
        }
    });
    let reloader = ctx.tasks.child();
    if let Some(file) = config.config_file.clone() {
        reloader.spawn(crate::reload::watch(ctx.clone(), file, current));
    }
    reloader
}

/// The drain: the ports are closed already and `/readyz` says 503 (and WHEP
/// refuses new viewers); the clients that are playing go on until `timeout`,
/// until none is left (no client connection in `open`, no session, no
/// WebRTC viewer), or until a second SIGTERM or SIGINT, whichever comes
/// first.
async fn drain(
    ctx: &ServerContext,
    open: &listener::OpenConnections,
    webrtc: Option<&crate::webrtc::http::Viewers>,
    timeout: Duration,
    signal: &'static str,
    signals: &mut StopSignals,
) {
    let viewers = || webrtc.map_or(0, crate::webrtc::http::Viewers::count);
    let clients = || open.open() + ctx.sessions.len() + viewers();
    if timeout.is_zero() || clients() == 0 {
        info!("{signal}: shutting down");
        return;
    }
    warn!(
        "{signal}: draining: no new client is accepted; {} client connection(s), {} session(s) and {} WebRTC viewer(s) go on for up to {} s (a second SIGTERM or SIGINT stops at once)",
        open.open(),
        ctx.sessions.len(),
        viewers(),
        timeout.as_secs_f64()
    );
    let deadline = tokio::time::Instant::now() + timeout;
    let mut poll = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                info!("drain timeout over; shutting down");
                return;
            }
            s = signals.next() => {
                warn!("{s} while draining: shutting down at once");
                return;
            }
            _ = poll.tick() => if clients() == 0 {
                info!("drained: no client left; shutting down");
                return;
            },
        }
    }
}

/// After the drain: closes every client, tears the back ends down (TEARDOWN,
/// within [`SHUTDOWN_GRACE`]), stops the admin port (it answered during the
/// drain), then cancels every task left and waits for them.
async fn shut_down(ctx: &ServerContext, admin: Option<AdminHandle>, webrtc: Option<WebRtcHandle>) {
    ctx.close_all();
    for s in ctx.streams.all() {
        s.close_all();
    }
    ctx.supervisor.shutdown(SHUTDOWN_GRACE).await;
    if let Some(a) = admin {
        a.stop();
    }
    if let Some(w) = webrtc {
        w.stop();
    }
    let left = ctx.tasks.wait(SHUTDOWN_GRACE).await;
    if left > 0 {
        warn!("{left} task(s) still running after the shutdown grace; exiting anyway");
    }
}

/// SIGTERM and SIGINT, each of which [`StopSignals::next`] returns; SIGHUP is
/// the config reloader's when there is a config file (`reloads`), else logged
/// and ignored (its default action would stop the proxy).
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
    /// SIGINT can be watched.
    #[cfg(unix)]
    interrupt: bool,
    reloads: bool,
}

impl StopSignals {
    fn new(reloads: bool) -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let term = signal(SignalKind::terminate())
                .map_err(|e| warn!("cannot watch SIGTERM: {e}"))
                .ok();
            // SIGHUP must never stop the proxy, as its default action would:
            // with a config file the reloader (reload::watch) subscribes to
            // it, otherwise it is subscribed here, logged and ignored (one
            // subscription per process).
            let hangup = if reloads {
                None
            } else {
                signal(SignalKind::hangup()).ok()
            };
            StopSignals {
                term,
                hangup,
                interrupt: true,
                reloads,
            }
        }
        #[cfg(not(unix))]
        StopSignals { reloads }
    }

    /// Waits for the next SIGTERM or SIGINT; returns its name.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        loop {
            let term = async {
                match self.term.as_mut() {
                    Some(t) => t.recv().await,
                    None => std::future::pending().await,
                }
            };
            let hangup = async {
                match self.hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = tokio::signal::ctrl_c(), if self.interrupt => match r {
                    Ok(()) => return "SIGINT",
                    Err(e) => {
                        warn!("cannot watch SIGINT: {e}");
                        self.interrupt = false;
                    }
                },
                Some(()) = term => return "SIGTERM",
                r = hangup => match r {
                    Some(()) if self.reloads => {}
                    Some(()) => warn!("SIGHUP: nothing to reload (the configuration is the command line; give a file with --config)"),
                    None => self.hangup = None,
                },
            }
        }
        #[cfg(not(unix))]
        {
            let _ = self.reloads;
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

/// The address printed in the "Play this stream" URLs: as live555, the first IPv4
/// address of an interface that is up and not loopback; 127.0.0.1 when there is
/// none (or when the server is bound to loopback only).
fn advertised_ip(config: &Config) -> IpAddr {
    let explicit: Vec<IpAddr> = config
        .bind_addresses
        .iter()
        .copied()
        .filter(|a| !a.is_unspecified())
        .collect();
    if let Some(first) = explicit.first() {
        return *first;
    }
    first_interface_ipv4()
        .map(IpAddr::V4)
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

#[cfg(unix)]
fn first_interface_ipv4() -> Option<Ipv4Addr> {
    use nix::net::if_::InterfaceFlags;
    nix::ifaddrs::getifaddrs().ok()?.find_map(|ifa| {
        let up = ifa.flags.contains(InterfaceFlags::IFF_UP);
        let loopback = ifa.flags.contains(InterfaceFlags::IFF_LOOPBACK);
        let v4 = ifa.address.as_ref()?.as_sockaddr_in()?.ip();
        (up && !loopback).then_some(v4)
    })
}

#[cfg(not(unix))]
fn first_interface_ipv4() -> Option<Ipv4Addr> {
    None
}
