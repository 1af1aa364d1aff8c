//! The WebRTC HTTP listener: WHEP and the viewer page, over our own accept
//! loop (bounded connections, header and connection timeouts, a bounded
//! body), and the table of running viewers with their limits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use axum::Extension;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tracing::info;

use crate::admin::health::{Health, Phase};
use crate::http_listener::{accept_loop, ConnAddrs, HttpLimits};

use super::codecs::Plan;
use super::driver::{self, Control, Demux, EndSignal, SessionIo};
use super::session::{Crypto, Viewer, ViewerCounters};
use super::{WebRtcConfig, HANDSHAKE_TIMEOUT};
use crate::relay::sink::ViewerQueue;
use crate::relay::Sink;
use crate::relay::{Availability, ClientInfo, ClientTransport, Closer};
use crate::server::ServerContext;

pub const MAX_CONNECTIONS: usize = 256;
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest SDP offer (or trickle fragment) accepted; browsers' are 3 to 8 KB.
pub const MAX_SDP: usize = 32 * 1024;
/// Relayed batches queued for one viewer (a frame or a socket read each):
/// the keyframe cache and a few seconds of stream while the handshake runs.
const VIEWER_QUEUE_BATCHES: usize = 2048;
/// How long a POST waits for a path's back end to be described (on-demand).
const DESCRIBE_WAIT: Duration = Duration::from_secs(10);
/// The page's own files.
const PAGE: &str = include_str!("viewer.html");

/// One running viewer, as the HTTP side knows it.
struct Entry {
    path: String,
    end: Arc<EndSignal>,
    control: mpsc::Sender<Control>,
    counters: Arc<Mutex<ViewerCounters>>,
}

/// WebRTC viewers of one path, for the admin port.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PathViewers {
    pub viewers: u64,
    pub counters: ViewerCounters,
}

/// Every running viewer, the limits, and what a new one needs.
pub struct Viewers {
    config: WebRtcConfig,
    udp_port: u16,
    socket: Arc<UdpSocket>,
    demux: Arc<Demux>,
    ctx: Arc<ServerContext>,
    /// The admin token (`--admin-token`): `Authorization: Bearer` with it
    /// lets a WHEP POST through where users are required (the dashboard's
    /// "watch" link and preview carry it).
    bearer: Option<String>,
    /// The proxy's phase: no new viewer once it drains.
    health: Arc<Health>,
    crypto: Crypto,
    sessions: Mutex<HashMap<String, Entry>>,
    /// Counters of viewers gone, per path (so totals never go down).
    ended: Mutex<HashMap<String, ViewerCounters>>,
}

impl Viewers {
    pub fn new(
        config: WebRtcConfig,
        udp_port: u16,
        socket: Arc<UdpSocket>,
        demux: Arc<Demux>,
        ctx: Arc<ServerContext>,
        bearer: Option<String>,
        health: Arc<Health>,
    ) -> Viewers {
        Viewers {
            config,
            udp_port,
            socket,
            demux,
            ctx,
            bearer,
            health,
            crypto: Crypto::new(),
            sessions: Mutex::new(HashMap::new()),
            ended: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Running viewers in all.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Viewers of `path` (running) and the counters of all its viewers so far.
    pub fn of_path(&self, path: &str) -> PathViewers {
        let mut out = PathViewers::default();
        if let Some(c) = self
            .ended
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
        {
            out.counters = *c;
        }
        for e in self.lock().values().filter(|e| e.path == path) {
            out.viewers += 1;
            add(
                &mut out.counters,
                &e.counters.lock().unwrap_or_else(|e| e.into_inner()),
            );
        }
        out
    }

    /// Ends every session (shutdown).
    pub fn end_all(&self) {
        for e in self.lock().values() {
            e.end.end();
        }
    }
}

fn add(total: &mut ViewerCounters, c: &ViewerCounters) {
    total.packets += c.packets;
    total.bytes += c.bytes;
    total.nacks += c.nacks;
    total.plis += c.plis;
    total.firs += c.firs;
    total.resent += c.resent;
    total.keyframe_replays += c.keyframe_replays;
}

/// Serves HTTP connections for ever (bounded as the admin port is).
pub async fn serve(
    listener: TcpListener,
    viewers: Arc<Viewers>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let tasks = viewers.ctx.tasks.clone();
    let app = axum::Router::new()
        .fallback(
            |State(viewers): State<Arc<Viewers>>,
             Extension(addrs): Extension<ConnAddrs>,
             req: Request<Body>| async move { handle(&viewers, addrs, req).await },
        )
        .with_state(viewers);
    let limits = HttpLimits {
        max_connections: MAX_CONNECTIONS,
        header_timeout: HEADER_TIMEOUT,
        connection_timeout: CONNECTION_TIMEOUT,
        label: "WebRTC port",
    };
    accept_loop(listener, app, limits, tls, tasks).await;
}

/// What a request asks for, from its method and path.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Page(&'a str),
    Offer(&'a str),
    Session(&'a str, &'a str),
    Preflight,
    Other,
}

fn route<'a>(method: &Method, path: &'a str) -> Route<'a> {
    if method == Method::OPTIONS {
        return Route::Preflight;
    }
    let path = path.strip_prefix('/').unwrap_or(path);
    if let Some(name) = path.strip_suffix("/whep") {
        return Route::Offer(name);
    }
    if let Some((name, token)) = path.rsplit_once("/whep/") {
        return Route::Session(name, token);
    }
    match path.strip_suffix('/') {
        Some(name) if !name.is_empty() => Route::Page(name),
        _ => Route::Other,
    }
}

async fn handle(viewers: &Arc<Viewers>, addrs: ConnAddrs, req: Request<Body>) -> Response<Body> {
    let ConnAddrs { peer, local } = addrs;
    let (parts, body) = req.into_parts();
    let path = percent_decode(parts.uri.path());
    let mut resp = match route(&parts.method, &path) {
        Route::Preflight => preflight(),
        Route::Page(name) if parts.method == Method::GET => page(viewers, name),
        Route::Offer(name) if parts.method == Method::POST => {
            let body = match axum::body::to_bytes(body, MAX_SDP).await {
                Ok(b) => b,
                Err(_) => {
                    return cors(text(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("the offer is over {MAX_SDP} bytes"),
                    ))
                }
            };
            offer(viewers, name, &parts.headers, &body, peer, local).await
        }
        Route::Session(name, token) if parts.method == Method::DELETE => {
            delete(viewers, name, token)
        }
        Route::Session(name, token) if parts.method == Method::PATCH => {
            let body = axum::body::to_bytes(body, MAX_SDP)
                .await
                .unwrap_or_default();
            trickle(viewers, name, token, &body)
        }
        Route::Other if parts.method == Method::GET => text(
            StatusCode::NOT_FOUND,
            "open /<path>/ to watch a path, or POST an SDP offer to /<path>/whep",
        ),
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here"),
    };
    resp = cors(resp);
    resp
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Body::from(msg.into() + "\n"));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn with_headers(
    mut r: Response<Body>,
    headers: &[(header::HeaderName, &'static str)],
) -> Response<Body> {
    for (name, value) in headers {
        r.headers_mut()
            .insert(name.clone(), HeaderValue::from_static(value));
    }
    r
}

/// CORS: a page on another origin may play (WHEP is meant to be embedded).
fn cors(r: Response<Body>) -> Response<Body> {
    with_headers(
        r,
        &[
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                "Location, ETag, Link, X-Left-Out",
            ),
        ],
    )
}

fn preflight() -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    with_headers(
        r,
        &[
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                "OPTIONS, GET, POST, PATCH, DELETE",
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "Authorization, Content-Type, If-Match",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "86400"),
            (
                header::HeaderName::from_static("accept-post"),
                "application/sdp",
            ),
        ],
    )
}

fn page(viewers: &Viewers, name: &str) -> Response<Body> {
    if viewers.ctx.streams.get(name).is_none() {
        return text(StatusCode::NOT_FOUND, format!("no path named {name:?}"));
    }
    let mut r = Response::new(Body::from(PAGE));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `%XX` in a path decoded (a stream name may hold spaces); invalid escapes
/// are kept as they are.
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `POST /<path>/whep`: a new viewer.
async fn offer(
    viewers: &Arc<Viewers>,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
    peer: SocketAddr,
    local: Option<SocketAddr>,
) -> Response<Body> {
    match admit_offer(viewers, name, headers, body, peer, local).await {
        Ok(r) | Err(r) => r,
    }
}

/// The steps of [`offer`]; a refusal is the response that says why.
#[allow(
    clippy::result_large_err,
    reason = "a refusal is the response itself, made once per offer"
)]
async fn admit_offer(
    viewers: &Arc<Viewers>,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
    peer: SocketAddr,
    local: Option<SocketAddr>,
) -> Result<Response<Body>, Response<Body>> {
    check_content_type(headers)?;
    authorize(viewers, name, headers, peer)?;
    if viewers.health.phase() == Phase::Draining {
        info!(%peer, path = %name, "WHEP offer refused: draining (shutting down)");
        return Err(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining (shutting down): no new viewer is accepted",
        ));
    }
    let Some(stream) = viewers.ctx.streams.get(name) else {
        return Err(text(
            StatusCode::NOT_FOUND,
            format!("no path named {name:?}"),
        ));
    };
    let Ok(offer) = std::str::from_utf8(body) else {
        return Err(text(StatusCode::BAD_REQUEST, "the offer is not UTF-8 text"));
    };
    check_viewer_limits(viewers, name)?;
    // An on-demand path connects now; a path still on its first attempt is
    // waited for.
    stream.want();
    if stream.availability() == Availability::Pending {
        stream.settled(DESCRIBE_WAIT).await;
    }
    let Some(presentation) = stream.presentation() else {
        return Err(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the camera of this path cannot be reached now",
        ));
    };
    let plan = Plan::of(&presentation);
    let left_out = plan.left_out.join(", ");
    if plan.is_empty() {
        let mut r = text(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("nothing of this path plays in a browser: the camera sends {left_out}"),
        );
        if let Ok(v) = HeaderValue::from_str(&left_out) {
            r.headers_mut().insert("X-Left-Out", v);
        }
        return Err(r);
    }
    let locals = local_candidates(&viewers.config, viewers.udp_port, local);
    let now = Instant::now();
    let (viewer, answer) = match Viewer::answer(offer, &plan, &locals, &viewers.crypto, now) {
        Ok(v) => v,
        Err(e) => {
            info!(%peer, path = %name, "WHEP offer refused: {e}");
            return Err(text(StatusCode::BAD_REQUEST, e.to_string()));
        }
    };
    if !left_out.is_empty() {
        info!(path = %name, "WebRTC viewers do not get: {left_out}");
    }
    let token = start_viewer(viewers, name, stream, viewer, peer, now)?;
    Ok(created(answer, name, &token, &left_out))
}

/// A WHEP offer is `Content-Type: application/sdp`.
#[allow(
    clippy::result_large_err,
    reason = "a refusal is the response itself, made once per offer"
)]
fn check_content_type(headers: &HeaderMap) -> Result<(), Response<Body>> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"))
    {
        return Err(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a WHEP offer is Content-Type: application/sdp",
        ));
    }
    Ok(())
}

/// Where users are required: the RTSP clients' users (Basic) or the admin
/// token (Bearer).
#[allow(
    clippy::result_large_err,
    reason = "a refusal is the response itself, made once per offer"
)]
fn authorize(
    viewers: &Viewers,
    name: &str,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<(), Response<Body>> {
    if let Some(auth) = &viewers.ctx.client_auth {
        let given = headers.get(header::AUTHORIZATION);
        let by_token = viewers
            .bearer
            .as_deref()
            .is_some_and(|t| crate::admin::token::bearer_ok(given.map(|v| v.as_bytes()), t));
        if !by_token {
            if let Err(refusal) = auth.check_basic(given.and_then(|v| v.to_str().ok())) {
                info!(%peer, path = %name, "WHEP offer refused: {refusal}");
                let mut r = text(
                    StatusCode::UNAUTHORIZED,
                    "log in as an RTSP client would (Basic) or with the admin token (Bearer)",
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"rtsp-proxy\""),
                );
                if viewers.bearer.is_some() {
                    r.headers_mut().append(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer realm=\"rtsp-proxy\""),
                    );
                }
                return Err(r);
            }
        }
    }
    Ok(())
}

/// The viewer limits, in all and per path.
#[allow(
    clippy::result_large_err,
    reason = "a refusal is the response itself, made once per offer"
)]
fn check_viewer_limits(viewers: &Viewers, name: &str) -> Result<(), Response<Body>> {
    {
        let sessions = viewers.lock();
        if sessions.len() >= viewers.config.max_viewers {
            return Err(text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the WebRTC viewer limit ({}) is reached",
                    viewers.config.max_viewers
                ),
            ));
        }
        let on_path = sessions.values().filter(|e| e.path == name).count();
        if on_path >= viewers.config.max_viewers_per_path {
            return Err(text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the WebRTC viewer limit of this path ({}) is reached",
                    viewers.config.max_viewers_per_path
                ),
            ));
        }
    }
    Ok(())
}

/// Subscribes the answered `viewer` to `stream` and starts its session task;
/// returns the session's token (its resource URL's last segment).
#[allow(
    clippy::result_large_err,
    reason = "a refusal is the response itself, made once per offer"
)]
fn start_viewer(
    viewers: &Arc<Viewers>,
    name: &str,
    stream: Arc<relay::Stream>,
    mut viewer: Viewer,
    peer: SocketAddr,
    now: Instant,
) -> Result<String, Response<Body>> {
    let id = stream.new_subscriber();
    let (queue, media) = ViewerQueue::new(VIEWER_QUEUE_BATCHES);
    let sinks: Vec<(usize, Sink)> = viewer
        .tracks()
        .into_iter()
        .map(|track| {
            (
                track,
                Sink::WebRtc {
                    queue: queue.clone(),
                    track,
                },
            )
        })
        .collect();
    let end = Arc::new(EndSignal::default());
    let closer: Closer = {
        let end = end.clone();
        Box::new(move || end.end())
    };
    if stream
        .play(
            id,
            stream.generation(),
            sinks,
            Arc::new(closer),
            now,
            |_| {},
        )
        .is_none()
    {
        return Err(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the stream's tracks changed; try again",
        ));
    }
    stream.set_client(
        id,
        ClientInfo {
            addr: peer,
            transport: ClientTransport::WebRtc,
            since: SystemTime::now(),
            udp_refused: Some(queue.drop_counter()),
            conn: None,
        },
    );
    let token = format!("{:032x}", rand::random::<u128>());
    let session = id;
    let datagrams = viewers.demux.add(session, viewer.local_ufrag());
    let (control_tx, control) = mpsc::channel(16);
    let counters = Arc::new(Mutex::new(ViewerCounters::default()));
    viewers.lock().insert(
        token.clone(),
        Entry {
            path: name.to_owned(),
            end: end.clone(),
            control: control_tx,
            counters: counters.clone(),
        },
    );
    let io = SessionIo {
        id: session,
        path: name.to_owned(),
        socket: viewers.socket.clone(),
        datagrams,
        media,
        control,
        end,
        handshake_timeout: HANDSHAKE_TIMEOUT,
        counters: counters.clone(),
        stream: stream.clone(),
    };
    info!(%peer, path = %name, session, "WebRTC viewer: answered");
    let task_viewers = viewers.clone();
    let task_token = token.clone();
    let path = name.to_owned();
    viewers.ctx.tasks.spawn(async move {
        driver::run_session(viewer, io).await;
        stream.stop(id);
        task_viewers.demux.remove(session);
        task_viewers.lock().remove(&task_token);
        let c = *counters.lock().unwrap_or_else(|e| e.into_inner());
        add(
            task_viewers
                .ended
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(path)
                .or_default(),
            &c,
        );
    });

    Ok(token)
}

/// `201 Created` with the answer, its `Location` and `ETag`, and the tracks
/// left out.
fn created(answer: String, name: &str, token: &str, left_out: &str) -> Response<Body> {
    let mut r = Response::new(Body::from(answer));
    *r.status_mut() = StatusCode::CREATED;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("/{}/whep/{token}", path_escape(name))) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{token}\"")) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(left_out) {
        if !left_out.is_empty() {
            h.insert("X-Left-Out", v);
        }
    }
    r
}

/// A path as it goes in a URL: what is not safe is `%XX`.
fn path_escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Our addresses for the browser: the configured ones, else the address its
/// HTTP request came to (it reached us there), else the UDP socket's own; all
/// with the WebRTC UDP port.
fn local_candidates(
    config: &WebRtcConfig,
    udp_port: u16,
    http_local: Option<SocketAddr>,
) -> Vec<SocketAddr> {
    let mut ips = Vec::new();
    if !config.udp.ip().is_unspecified() {
        ips.push(config.udp.ip());
    } else if let Some(l) = http_local.filter(|l| !l.ip().is_unspecified()) {
        ips.push(l.ip());
    }
    for ip in &config.candidates {
        if !ips.contains(ip) {
            ips.push(*ip);
        }
    }
    ips.into_iter()
        .map(|ip| SocketAddr::new(ip, udp_port))
        .collect()
}

/// The session `token` of path `name`, if it is running.
fn with_session<T>(
    viewers: &Viewers,
    name: &str,
    token: &str,
    f: impl FnOnce(&Entry) -> T,
) -> Option<T> {
    viewers.lock().get(token).filter(|e| e.path == name).map(f)
}

/// `DELETE` on a session's location: it ends.
fn delete(viewers: &Viewers, name: &str, token: &str) -> Response<Body> {
    match with_session(viewers, name, token, |e| e.end.end()) {
        Some(()) => text(StatusCode::OK, "ended"),
        None => text(StatusCode::NOT_FOUND, "no such WebRTC session"),
    }
}

/// `PATCH` with `application/trickle-ice-sdpfrag`: the browser's candidates.
fn trickle(viewers: &Viewers, name: &str, token: &str, body: &[u8]) -> Response<Body> {
    let Ok(frag) = std::str::from_utf8(body) else {
        return text(StatusCode::BAD_REQUEST, "the fragment is not UTF-8 text");
    };
    let lines: Vec<String> = frag
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("a=candidate:"))
        .take(64)
        .map(str::to_owned)
        .collect();
    match with_session(viewers, name, token, |e| {
        e.control.try_send(Control::Candidates(lines))
    }) {
        Some(_) => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        None => text(StatusCode::NOT_FOUND, "no such WebRTC session"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route(&Method::GET, "/cam/"), Route::Page("cam"));
        assert_eq!(route(&Method::GET, "/a/b/"), Route::Page("a/b"));
        assert_eq!(route(&Method::POST, "/a/b/whep"), Route::Offer("a/b"));
        assert_eq!(
            route(&Method::DELETE, "/a/whep/x1"),
            Route::Session("a", "x1")
        );
        assert_eq!(route(&Method::OPTIONS, "/a/whep"), Route::Preflight);
        assert_eq!(route(&Method::GET, "/"), Route::Other);
        assert_eq!(route(&Method::GET, "/cam"), Route::Other);
    }

    #[test]
    fn paths_are_decoded_and_escaped() {
        assert_eq!(percent_decode("/my%20cam/whep"), "/my cam/whep");
        assert_eq!(percent_decode("/100%/x%zz"), "/100%/x%zz");
        assert_eq!(path_escape("my cam/1"), "my%20cam/1");
    }

    #[test]
    fn candidates_come_from_the_config_or_the_http_connection() {
        let mut c = WebRtcConfig::off();
        let http = Some("127.0.0.1:8889".parse().unwrap());
        assert_eq!(
            local_candidates(&c, 8189, http),
            vec!["127.0.0.1:8189".parse().unwrap()]
        );
        c.candidates = vec!["203.0.113.7".parse().unwrap()];
        assert_eq!(
            local_candidates(&c, 8189, http),
            vec![
                "127.0.0.1:8189".parse().unwrap(),
                "203.0.113.7:8189".parse().unwrap()
            ]
        );
        c.udp = "10.0.0.2:9000".parse().unwrap();
        assert_eq!(
            local_candidates(&c, 9000, http)[0],
            "10.0.0.2:9000".parse().unwrap()
        );
    }
}
