//! REGISTER and DEREGISTER (`-R`): back ends that ask the proxy to proxy them, as
//! live555ProxyServer accepts them, without its holes.
//!
//! Wire format (live555's): the request URL is the back-end URL to pull;
//! `Transport: [reuse_connection; ]preferred_delivery_protocol=<udp|interleaved>[; proxy_url_suffix=<name>]`
//! ([`parse_transport`]). The stream is named `proxy_url_suffix`, or
//! `registeredProxyStream-<k>` (k counts from 1). The 200 (CSeq, Date) is queued
//! before the work is done.
//!
//! Rules, in order:
//! 1. `-U` users: REGISTER *and* DEREGISTER need Digest (live555 lets anyone
//!    DEREGISTER). Checked first, so a stranger learns nothing about names.
//! 2. REGISTER: the URL must parse with a scheme the connector dials (else 400);
//!    a suffix must be a usable stream name and free (else `451 Invalid parameter`);
//!    at most `--max-registered` registered streams (else 453, logged); the URL's
//!    host must match `--register-allow` (default: an IP literal equal to the
//!    registering address), else 403, logged, and nobody is dialled. With
//!    `reuse_connection` nobody is dialled at first: a URL outside the allow-list is
//!    accepted, but its stream is never redialled (it is removed once that
//!    connection is gone, so the back end can register again).
//! 3. `reuse_connection` needs a plain connection with no sessions of its own: over
//!    an HTTP tunnel it is 461, with sessions 455. Any byte stream (TCP, TLS) can
//!    be handed over.
//! 4. DEREGISTER: needs `proxy_url_suffix` naming a registered stream, else 451
//!    (live555 answers 200 to a DEREGISTER without suffix and uses up a counter
//!    value). Without `-U`, only the address that registered a stream may
//!    deregister it (403 otherwise). It closes the stream's client sessions, stops
//!    its source (TEARDOWN) and removes it (DESCRIBE then gets 404).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rtsp::url::RtspUrl;
use rtsp::{Method, Request, Response};
use tracing::{info, warn};

use super::reply::{send, ConnContext};
use super::ServerContext;
use source::connector::{Connector, Handover};
use source::SourceSettings;
use supervisor::{AddError, Origin};

/// Name prefix of registered streams without `proxy_url_suffix` (live555's).
pub const DEFAULT_NAME_PREFIX: &str = "registeredProxyStream";
/// Longest stream name a REGISTER may ask for, in bytes.
pub const MAX_NAME_LEN: usize = 200;

/// What the connection does after a request was handled.
#[derive(Debug)]
pub enum Next {
    /// Read the next request.
    Continue,
    /// REGISTER with `reuse_connection` was answered 200: once that answer is
    /// written, the connection stops being a server connection and becomes the
    /// RTSP channel of the registered stream's source.
    HandOver(Box<Pending>),
}

/// What REGISTER takes from the configuration layer above the server, which
/// knows the `--register-allow` list and the back-end defaults.
pub trait RegisterSettings: Send + Sync {
    /// Whether a back end whose URL has this `host` (as
    /// [`rtsp::url::RtspUrl::host`]) may be registered and dialled, asked by `peer`.
    fn allows(&self, host: &str, peer: IpAddr) -> bool;
    /// The settings of a back end that registered itself at `url`: as a
    /// command-line one, with media over TCP when it asked for `interleaved`
    /// (or the proxy runs with `-t`), reached through `connector` (never
    /// through `-T`, as in live555).
    fn source_settings(&self, url: &str, interleaved: bool, connector: Connector)
        -> SourceSettings;
    /// Bytes of keyframe cache of a registered stream.
    fn keyframe_cache_bytes(&self) -> usize;
}

/// One `--register-allow` entry: a back-end URL whose host it matches may be
/// registered (and dialled by the proxy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterAllow {
    /// `peer`: the host is an IP literal equal to the address the REGISTER came from.
    Peer,
    /// `<ip>` or `<ip>/<prefix>`: the host is an IP literal in this network.
    Network { address: IpAddr, prefix: u8 },
    /// A host name: the URL's host is this name (case-insensitive). The name is not
    /// resolved to compare addresses.
    Host(String),
}

impl RegisterAllow {
    /// Whether a URL with this host (as [`rtsp::url::RtspUrl::host`]: no brackets)
    /// may be registered by `peer`.
    #[must_use]
    pub fn allows(&self, host: &str, peer: IpAddr) -> bool {
        let ip = host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
        match self {
            RegisterAllow::Peer => ip == Some(peer.to_canonical()),
            RegisterAllow::Network { address, prefix } => {
                ip.is_some_and(|ip| net::in_network(ip, *address, *prefix))
            }
            RegisterAllow::Host(name) => {
                ip.is_none() && host.trim_end_matches('.').eq_ignore_ascii_case(name)
            }
        }
    }
}

impl std::fmt::Display for RegisterAllow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegisterAllow::Peer => f.write_str("peer"),
            RegisterAllow::Network { address, prefix } => write!(f, "{address}/{prefix}"),
            RegisterAllow::Host(name) => f.write_str(name),
        }
    }
}

/// What REGISTER needs besides the server: the settings registered sources are
/// built from, and where their "Play this stream" URLs point.
pub struct Registrar {
    config: Arc<dyn RegisterSettings>,
    counter: AtomicU64,
    play_host: IpAddr,
    play_port: Option<u16>,
    tls_port: Option<u16>,
    /// How `rtsps://` back ends are verified (set at start-up).
    pub backend_tls: Option<Arc<rustls::ClientConfig>>,
}

impl Registrar {
    /// `config` gives the allow-list, the back-end options (`-u`, `-t`, timeouts) and
    /// the keyframe cache size; `play_host` with `play_port` (plain RTSP) and
    /// `tls_port` (RTSPS) is printed in the "Play this stream" lines.
    pub fn new(
        config: Arc<dyn RegisterSettings>,
        play_host: IpAddr,
        play_port: Option<u16>,
        tls_port: Option<u16>,
    ) -> Registrar {
        Registrar {
            config,
            counter: AtomicU64::new(0),
            play_host,
            play_port,
            tls_port,
            backend_tls: None,
        }
    }
}

/// The parameters of a REGISTER's `Transport:` header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegisterTransport {
    pub reuse_connection: bool,
    pub interleaved: bool,
    pub suffix: Option<String>,
}

/// Parses REGISTER's `Transport:` as live555 does: split on `;`, leading spaces and
/// tabs skipped; `reuse_connection` exact; `preferred_delivery_protocol=udp` or
/// `=interleaved` (case-insensitive); `proxy_url_suffix=` takes the rest of its
/// parameter; anything else is ignored. No header: no reuse, UDP, no suffix.
#[must_use]
pub fn parse_transport(value: Option<&str>) -> RegisterTransport {
    let mut t = RegisterTransport::default();
    for param in value.unwrap_or("").split(';') {
        let param = param.trim_start_matches([' ', '\t']).trim_end();
        if param == "reuse_connection" {
            t.reuse_connection = true;
        } else if let Some((key, v)) = param.split_once('=') {
            if key.eq_ignore_ascii_case("preferred_delivery_protocol") {
                if v.eq_ignore_ascii_case("interleaved") {
                    t.interleaved = true;
                } else if v.eq_ignore_ascii_case("udp") {
                    t.interleaved = false;
                }
            } else if key == "proxy_url_suffix" {
                t.suffix = Some(v.to_owned());
            }
        }
    }
    t
}

/// Whether `name` may name a registered stream: 1..=200 printable ASCII bytes, no
/// space and none of `?#%;"\`, path segments separated by single `/` that are not
/// `.` or `..`.
#[must_use]
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"?#%;\"\\".contains(&b))
        && name
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// A REGISTER with `reuse_connection` that was answered 200: the connection that
/// carried it is to become its source's channel.
#[derive(Debug)]
pub struct Pending {
    name: String,
    settings: SourceSettings,
    origin: Origin,
}

fn invalid_parameter(why: &str) -> Response {
    tracing::debug!(status = 451, "{why}");
    let mut r = Response::new(451);
    // live555's phrase.
    r.reason = "Invalid parameter".to_owned();
    r
}

/// Handles REGISTER or DEREGISTER (`ctx.register` is set).
pub fn handle(
    ctx: &Arc<ServerContext>,
    conn: &ConnContext,
    req: &Request,
    cseq: Option<&str>,
    now: Instant,
) -> Next {
    let Some(registrar) = ctx.register.as_ref() else {
        send(ctx, conn, cseq, Response::new(405));
        return Next::Continue;
    };
    let method = req.method.as_str();
    if let Some(access) = &ctx.register_auth {
        if let Err(challenge) = access.check(req, conn.secure, false, now) {
            info!(peer = %conn.peer, "{method} refused: {}", challenge.refusal);
            send(ctx, conn, cseq, *challenge.response);
            return Next::Continue;
        }
    }
    let params = parse_transport(req.header("Transport"));
    if req.method == Method::Deregister {
        let resp = deregister(ctx, conn, &params);
        let ok = resp.status == 200;
        send(ctx, conn, cseq, resp);
        if ok {
            if let Some(name) = &params.suffix {
                ctx.remove_stream(name);
                eprintln!("No longer proxying the registered stream \"{name}\".");
            }
        }
        return Next::Continue;
    }
    match register(ctx, registrar, conn, req, &params) {
        Err(resp) => {
            send(ctx, conn, cseq, resp);
            Next::Continue
        }
        Ok(pending) => {
            send(ctx, conn, cseq, Response::new(200));
            if params.reuse_connection {
                Next::HandOver(Box::new(pending))
            } else {
                complete(ctx, pending);
                Next::Continue
            }
        }
    }
}

/// The checks of a REGISTER; the stream to add, or the refusal.
fn register(
    ctx: &ServerContext,
    registrar: &Registrar,
    conn: &ConnContext,
    req: &Request,
    params: &RegisterTransport,
) -> Result<Pending, Response> {
    let shown = rtsp::url::redact(&req.uri);
    let url = match RtspUrl::parse(&req.uri) {
        Ok(u) if Connector::supports_scheme(&u.scheme) => u,
        Ok(u) => {
            info!(peer = %conn.peer, "REGISTER of {shown} refused: {}:// back ends are not supported", u.scheme);
            return Err(Response::new(400));
        }
        Err(e) => {
            info!(peer = %conn.peer, "REGISTER of {shown:?} refused: {e}");
            return Err(Response::new(400));
        }
    };
    if let Some(name) = &params.suffix {
        if !valid_name(name) {
            return Err(invalid_parameter(
                "REGISTER with an unusable proxy_url_suffix",
            ));
        }
        if ctx.streams.get(name).is_some() {
            return Err(invalid_parameter("REGISTER of a stream name that exists"));
        }
    }
    if ctx.supervisor.registered_full() {
        warn!(peer = %conn.peer, "REGISTER of {shown} refused: already {} registered streams (--max-registered)", ctx.supervisor.registered());
        return Err(Response::new(453));
    }
    if params.reuse_connection && conn.tunnelled {
        info!(peer = %conn.peer, "REGISTER with reuse_connection over an HTTP tunnel refused");
        return Err(Response::new(461));
    }
    if params.reuse_connection && !ctx.sessions.on_connection(&conn.out).is_empty() {
        info!(peer = %conn.peer, "REGISTER with reuse_connection on a connection with sessions refused");
        return Err(Response::new(455));
    }
    let config = &registrar.config;
    let allowed = config.allows(&url.host, conn.peer.ip());
    if !allowed && !params.reuse_connection {
        warn!(peer = %conn.peer, "REGISTER of {shown} refused: its host is not allowed (--register-allow)");
        return Err(Response::new(403));
    }
    let name = match &params.suffix {
        Some(n) => n.clone(),
        None => loop {
            let k = registrar.counter.fetch_add(1, Ordering::Relaxed) + 1;
            let n = format!("{DEFAULT_NAME_PREFIX}-{k}");
            if ctx.streams.get(&n).is_none() {
                break n;
            }
        },
    };
    if !allowed {
        info!(stream = %name, "{shown}: its host is not in --register-allow; the stream is pulled over the registering connection only, and removed once it is gone");
    }
    let connector = Connector {
        handover: None,
        handover_only: !allowed,
        tls: registrar.backend_tls.clone(),
        ..Connector::default()
    };
    Ok(Pending {
        settings: config.source_settings(&req.uri, params.interleaved, connector),
        name,
        origin: Origin::Registered {
            by: conn.peer.ip().to_canonical(),
        },
    })
}

fn deregister(ctx: &ServerContext, conn: &ConnContext, params: &RegisterTransport) -> Response {
    let Some(name) = &params.suffix else {
        return invalid_parameter("DEREGISTER without proxy_url_suffix");
    };
    let Some(Origin::Registered { by }) = ctx.supervisor.origin(name) else {
        return invalid_parameter("DEREGISTER of a stream that was not registered");
    };
    if ctx.register_auth.is_none() && by != conn.peer.ip().to_canonical() {
        warn!(peer = %conn.peer, stream = %name, "DEREGISTER refused: the stream was registered from {by} (without -U only that address may deregister it)");
        return Response::new(403);
    }
    info!(peer = %conn.peer, stream = %name, "DEREGISTER");
    Response::new(200)
}

/// Adds the stream of an accepted REGISTER; `handed` is the connection it came on
/// when it asked for `reuse_connection`.
pub fn complete_with(
    ctx: &ServerContext,
    pending: Box<Pending>,
    handed: Option<source::connector::Channel>,
) {
    let mut pending = *pending;
    if let Some(channel) = handed {
        pending.settings.connector.handover = Some(Handover::new(channel));
    }
    complete(ctx, pending);
}

fn complete(ctx: &ServerContext, pending: Pending) {
    let Some(registrar) = ctx.register.as_ref() else {
        return;
    };
    let shown = rtsp::url::redact(&pending.settings.url);
    let cache = registrar.config.keyframe_cache_bytes();
    match ctx
        .supervisor
        .add(&pending.name, cache, pending.settings, pending.origin)
    {
        Ok(_) => {
            info!(stream = %pending.name, "registered back end {shown}");
            eprintln!("Proxying the registered back-end stream \"{shown}\".");
            for url in crate::play_urls::play_urls(
                registrar.play_host,
                registrar.play_port,
                registrar.tls_port,
                &pending.name,
            ) {
                eprintln!("\tPlay this stream using the URL: {url}");
            }
        }
        // Only when another REGISTER took the name or the last place meanwhile.
        Err(e @ (AddError::Duplicate(_) | AddError::TooManyRegistered(_) | AddError::Tls(_))) => {
            warn!(stream = %pending.name, "REGISTER of {shown} answered 200 but dropped: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_parameters_as_live555_reads_them() {
        assert_eq!(parse_transport(None), RegisterTransport::default());
        assert_eq!(
            parse_transport(Some("preferred_delivery_protocol=udp")),
            RegisterTransport::default()
        );
        assert_eq!(
            parse_transport(Some(
                "reuse_connection; preferred_delivery_protocol=interleaved; proxy_url_suffix=cam1"
            )),
            RegisterTransport {
                reuse_connection: true,
                interleaved: true,
                suffix: Some("cam1".into())
            }
        );
        let t = parse_transport(Some(
            "\tPreferred_Delivery_Protocol=INTERLEAVED;proxy_url_suffix=a=b/c ",
        ));
        assert!(t.interleaved && !t.reuse_connection);
        assert_eq!(
            t.suffix.as_deref(),
            Some("a=b/c"),
            "the rest of the parameter"
        );
        assert!(
            !parse_transport(Some("Reuse_Connection")).reuse_connection,
            "exact"
        );
        assert!(!parse_transport(Some("reuse_connection=1")).reuse_connection);
        assert_eq!(
            parse_transport(Some(
                "x=1; ; garbage;preferred_delivery_protocol=carrier-pigeon"
            )),
            RegisterTransport::default(),
            "unknown parameters and values are ignored"
        );
        assert_eq!(
            parse_transport(Some("proxy_url_suffix=")).suffix.as_deref(),
            Some("")
        );
    }

    #[test]
    fn stream_names() {
        for good in ["cam1", "cams/front", "a-b_c.d~e", "x".repeat(200).as_str()] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            "a b",
            "a?b",
            "a#b",
            "a%2F",
            "a;b",
            "/a",
            "a/",
            "a//b",
            "./a",
            "a/..",
            "\u{e9}",
            "a\tb",
            "x".repeat(201).as_str(),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
