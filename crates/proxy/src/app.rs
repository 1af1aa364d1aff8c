//! Puts the rooms together: streams and their sources, the server, the banner,
//! and a graceful shutdown on SIGINT/SIGTERM.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::Config;
use crate::relay::{Stream, StreamRegistry};
use crate::server::{self, listener, media_udp, ServerContext};
use crate::source::{self, SourceSettings};

/// Why the proxy could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Bind(#[from] listener::BindError),
    #[error("cannot open UDP media sockets: {0}")]
    Media(std::io::Error),
    #[error(transparent)]
    Demo(#[from] crate::demo::DemoError),
    #[error("duplicate stream name {0:?}")]
    DuplicateStream(String),
}

/// How long shutdown waits for back ends to answer TEARDOWN.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Runs the proxy until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), AppError> {
    let streams = Arc::new(StreamRegistry::new());

    // Bind first: a port problem is reported before anything else happens.
    let (listeners, port) = listener::bind_with_fallback(&config.bind_addresses, config.rtsp_port)?;
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
    let url_of = |name: &str| {
        let h = match host {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        if port == 554 {
            format!("rtsp://{h}/{name}")
        } else {
            format!("rtsp://{h}:{port}/{name}")
        }
    };

    let mut sources = Vec::new();
    for (url, name) in config.urls.iter().zip(config.stream_names()) {
        let stream = Stream::with_cache(name.clone(), config.keyframe_cache_bytes);
        if !streams.insert(stream.clone()) {
            return Err(AppError::DuplicateStream(name));
        }
        let settings = SourceSettings {
            url: url.clone(),
            credentials: config.backend_credentials.clone(),
            transport: config.backend_transport,
            response_timeout: config.response_timeout,
            udp_timeout: config.udp_fallback_timeout,
            max_gap: config.inter_packet_gap,
            linger: config.linger,
            reconnect_min: config.reconnect_min,
            reconnect_max: config.reconnect_max,
            connector: source::connector::Connector::default(),
        };
        sources.push(source::spawn(stream, settings));
        eprintln!(
            "RTSP stream, proxying the stream \"{}\"",
            rtsp::url::redact(url)
        );
        eprintln!("\tPlay this stream using the URL: {}", url_of(&name));
    }
    let mut demo_task = None;
    if config.demo {
        let stream = Stream::with_cache(crate::demo::STREAM_NAME, config.keyframe_cache_bytes);
        if !streams.insert(stream.clone()) {
            return Err(AppError::DuplicateStream(crate::demo::STREAM_NAME.into()));
        }
        demo_task = Some(crate::demo::spawn(stream)?);
        eprintln!("Built-in demo stream (H.264 test pattern)");
        eprintln!(
            "\tPlay this stream using the URL: {}",
            url_of(crate::demo::STREAM_NAME)
        );
    }
    eprintln!();
    eprintln!("(RTSP-over-HTTP tunneling is accepted on port {port}.)");

    // Multicast goes out of the IPv4 media sockets (one more pair when the
    // server listens on IPv6 only).
    let multicast = match config.multicast {
        Some(m) => {
            let pair = match &media_v4 {
                Some(p) => p.clone(),
                None => media_udp::bind_pair(false, 0).map_err(AppError::Media)?,
            };
            let prefix = m.prefix_len;
            eprintln!(
                "(Multicast to clients that ask for it: groups from {}/{prefix}, ports from {}, TTL {}.)",
                m.network, m.port, m.ttl
            );
            Some(server::multicast::Multicast::new(m, pair).map_err(AppError::Media)?)
        }
        None => None,
    };
    let mut ctx = ServerContext::new(streams.clone(), media_v4, media_v6, config.session_timeout);
    if let Some(m) = multicast {
        ctx = ctx.with_multicast(m);
    }
    let ctx = Arc::new(ctx);
    let server_task = tokio::spawn(server::serve(ctx.clone(), listeners));
    let ticker_streams = streams.clone();
    let ticker = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let now = Instant::now();
            for s in ticker_streams.all() {
                s.tick(now);
            }
        }
    });

    wait_for_signal().await;
    info!("shutting down");
    server_task.abort();
    ticker.abort();
    if let Some(t) = demo_task {
        t.abort();
    }
    ctx.close_all();
    for s in streams.all() {
        s.close_all();
    }
    let stops: Vec<_> = sources
        .into_iter()
        .map(|s| tokio::spawn(s.shutdown(SHUTDOWN_GRACE)))
        .collect();
    for s in stops {
        let _ = s.await;
    }
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
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
