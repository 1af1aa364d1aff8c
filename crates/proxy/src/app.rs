//! Puts the rooms together: the supervisor with the command-line streams, REGISTER
//! (`-R`), the server, the banner, and a graceful shutdown on SIGINT/SIGTERM.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::Config;
use crate::paths::PathSpec;
use crate::relay::{Stream, StreamRegistry};
use crate::server::auth::AccessControl;
use crate::server::register::Registrar;
use crate::server::{self, listener, media_udp, ServerContext};
use crate::supervisor::{Origin, Supervisor};

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

/// How long shutdown waits for back ends to answer TEARDOWN.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Runs the proxy until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), AppError> {
    let streams = Arc::new(StreamRegistry::new());
    // Refused before anything binds: an open admin port needs a token.
    if let Some(a) = &config.admin {
        crate::admin::check_listen(a.listen, a.token.as_deref())?;
    }

    // Certificates first (a bad file is named before anything else happens),
    // then the ports.
    let acceptor = match &config.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(crate::tls::server_config(
            &t.cert, &t.key,
        )?)),
        None => None,
    };
    let backend_tls = crate::tls::client_config(&config.backend_tls)?;
    if config.backend_tls.insecure {
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
    let listeners = server::Listeners {
        plain,
        tls: tls_listeners,
        acceptor,
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

    eprintln!(
        "rtsp-proxy {} (a live555ProxyServer-compatible RTSP proxy)",
        env!("CARGO_PKG_VERSION")
    );
    eprintln!();
    let host = advertised_ip(&config);

    // Multicast goes out of the IPv4 media sockets (one more pair when the
    // server listens on IPv6 only).
    let multicast = match config.multicast {
        Some(m) => {
            let pair = match &media_v4 {
                Some(p) => p.clone(),
                None => media_udp::bind_pair(false, 0).map_err(AppError::Media)?,
            };
            Some(server::multicast::Multicast::new(m, pair).map_err(AppError::Media)?)
        }
        None => None,
    };
    let mut ctx = ServerContext::new(streams.clone(), media_v4, media_v6, config.session_timeout)
        .with_session_limits(config.session_limits);
    ctx.sessions_from_any_address = config.sessions_from_any_address;
    ctx.max_connections_per_address = config.max_connections_per_address;
    if let Some(m) = multicast {
        ctx = ctx.with_multicast(m);
    }
    ctx.supervisor = Arc::new(Supervisor::new(streams.clone(), config.max_registered));
    if config.register {
        let mut registrar = Registrar::new(Arc::new(config.clone()), host, port, tls_port);
        registrar.backend_tls = Some(backend_tls.clone());
        ctx.register = Some(registrar);
        ctx.register_auth = AccessControl::new(config.register_users.clone(), false);
    }
    ctx.client_auth = AccessControl::new(config.client_users.clone(), config.client_basic_in_clear);
    let supervisor = ctx.supervisor.clone();
    let ctx = Arc::new(ctx);
    // WebRTC (WHEP) before the streams too, so that its URLs are in the banner.
    let webrtc = match config.webrtc.as_ref().and_then(|w| Some((w, w.listen?))) {
        Some((w, listen)) => {
            let tls = match (w.https, &config.tls) {
                (false, _) => None,
                (true, Some(t)) => Some(crate::tls::server_config(&t.cert, &t.key)?),
                (true, None) => {
                    return Err(crate::webrtc::WebRtcError::HttpsWithoutCertificate.into())
                }
            };
            Some(crate::webrtc::start(w, listen, ctx.clone(), tls).await?)
        }
        None => None,
    };
    let whep_base = webrtc.as_ref().map(|w| {
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
        for url in crate::net::play_urls(host, port, tls_port, name) {
            eprintln!("\tPlay this stream using the URL: {url}");
        }
        if let Some(base) = &whep_base {
            eprintln!("\tWatch it in a browser: {base}/{name}/ (WHEP: {base}/{name}/whep)");
        }
    };

    // Before the streams: the port answers (or the bind fails) before any
    // source dials, and before the "Play this stream" lines.
    let admin = match &config.admin {
        Some(a) => {
            let state = crate::admin::server::AdminState {
                streams: streams.clone(),
                supervisor: supervisor.clone(),
                history: crate::admin::history::History::new(),
                token: a.token.clone(),
                control: Some(crate::admin::server::Control {
                    ctx: ctx.clone(),
                    config: Arc::new(config.clone()),
                }),
                webrtc: webrtc.as_ref().map(|w| (w.viewers.clone(), w.addr.port())),
            };
            let handle = crate::admin::server::start(a.listen, state).await?;
            eprintln!(
                "(Admin port: metrics on http://{0}/metrics, status on http://{0}/v1/paths, dashboard on http://{0}/{1}.)",
                handle.addr,
                if a.token.is_some() { "; a token is needed" } else { "" }
            );
            Some(handle)
        }
        None => None,
    };

    supervisor.set_backend_tls(config.backend_tls.clone(), backend_tls.clone());
    for (url, name) in config.urls.iter().zip(config.stream_names()) {
        supervisor
            .add_spec(
                &name,
                PathSpec::from_config(&config, url),
                Origin::CommandLine,
            )
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
            if spec.on_demand { " on demand" } else { "" }
        );
        play_lines(name);
    }
    let mut demo_task = None;
    if config.demo {
        let stream = Stream::with_cache(crate::demo::STREAM_NAME, config.keyframe_cache_bytes);
        if !streams.insert(stream.clone()) {
            return Err(AppError::DuplicateStream(crate::demo::STREAM_NAME.into()));
        }
        demo_task = Some(crate::demo::spawn(stream)?);
        eprintln!("Built-in demo stream (H.264 test pattern)");
        play_lines(crate::demo::STREAM_NAME);
    }
    if let (true, Some(p)) = (config.register, port.or(tls_port)) {
        eprintln!("(We handle incoming \"REGISTER\" requests on port {p})");
    }
    eprintln!();
    // live555's wording; tunnels are accepted on the RTSP port in any case.
    if let Some(port) = port {
        match http_port {
            Some(p) => eprintln!("(We use port {p} for optional RTSP-over-HTTP tunneling.)"),
            None => eprintln!(
                "(RTSP-over-HTTP tunneling is not available on a port of its own; the RTSP port {port} accepts it.)"
            ),
        }
    }
    if let Some(w) = &webrtc {
        eprintln!(
            "(Browsers watch with WebRTC: WHEP and viewer pages on {}://{}, media on UDP {}.)",
            if w.https { "https" } else { "http" },
            w.addr,
            w.udp
        );
    }
    if let Some(tls_port) = tls_port {
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
    let server_task = tokio::spawn(server::serve(ctx.clone(), listeners));
    let ticker_ctx = ctx.clone();
    let ticker = tokio::spawn(async move {
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

    let reloader = config
        .config_file
        .clone()
        .map(|file| tokio::spawn(crate::reload::watch(ctx.clone(), file, config.clone())));

    wait_for_signal(reloader.is_some()).await;
    info!("shutting down");
    if let Some(r) = reloader {
        r.abort();
    }
    server_task.abort();
    ticker.abort();
    if let Some(a) = admin {
        a.stop();
    }
    if let Some(w) = webrtc {
        w.stop();
    }
    if let Some(t) = demo_task {
        t.abort();
    }
    ctx.close_all();
    for s in streams.all() {
        s.close_all();
    }
    supervisor.shutdown(SHUTDOWN_GRACE).await;
    Ok(())
}

/// Waits for SIGINT or SIGTERM. SIGHUP is the config reloader's when there is a
/// config file (`reloads`); without one it is logged and ignored.
async fn wait_for_signal(reloads: bool) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        // SIGHUP (systemctl reload) must never stop the proxy, as its default
        // action would.
        let mut hangup = signal(SignalKind::hangup()).ok();
        match signal(SignalKind::terminate()) {
            Ok(mut term) => loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return,
                    _ = term.recv() => return,
                    r = async {
                        match hangup.as_mut() {
                            Some(h) => h.recv().await,
                            None => std::future::pending().await,
                        }
                    } => match r {
                        Some(()) if reloads => {}
                        Some(()) => warn!("SIGHUP: nothing to reload (the configuration is the command line; give a file with --config)"),
                        None => hangup = None,
                    },
                }
            },
            Err(e) => {
                warn!("cannot watch SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
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
    // SAFETY: getifaddrs fills a linked list that we only read and then free with
    // freeifaddrs; every pointer is checked for null before use.
    unsafe {
        let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut list) != 0 {
            return None;
        }
        let mut found = None;
        let mut cur = list;
        while !cur.is_null() {
            let ifa = &*cur;
            let up = ifa.ifa_flags & (libc::IFF_UP as libc::c_uint) != 0;
            let loopback = ifa.ifa_flags & (libc::IFF_LOOPBACK as libc::c_uint) != 0;
            if up
                && !loopback
                && !ifa.ifa_addr.is_null()
                && i32::from((*ifa.ifa_addr).sa_family) == libc::AF_INET
            {
                let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                found = Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
                break;
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(list);
        found
    }
}

#[cfg(not(unix))]
fn first_interface_ipv4() -> Option<Ipv4Addr> {
    None
}
