//! The admin HTTP server: an axum router over our own accept loop, so that it
//! is bounded: at most [`MAX_CONNECTIONS`] connections (more wait in the
//! kernel's backlog), [`HEADER_TIMEOUT`] to send a request head,
//! [`CONNECTION_TIMEOUT`] for a whole connection, request bodies of at most
//! [`MAX_BODY`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tracing::info;

use super::api::{ErrorBody, PathList, PathView};
use super::health::{Health, Readiness};
use super::history::{self, History};
use super::{check_listen, dashboard, metrics, token, AdminError};
use crate::config::CurrentConfig;
use crate::http_listener::{accept_loop, HttpLimits};
use crate::paths::{Applied, PathError};
use crate::relay::{Stream, StreamRegistry};
use crate::server::ServerContext;
use crate::supervisor::{Origin, Supervisor};
use crate::tasks::Tasks;

pub const MAX_CONNECTIONS: usize = 64;
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);
pub const MAX_BODY: usize = 64 * 1024;

/// What the handlers read.
pub struct AdminState {
    pub streams: Arc<StreamRegistry>,
    pub supervisor: Arc<Supervisor>,
    pub history: Arc<History>,
    pub token: Option<String>,
    /// What `PUT`/`DELETE /v1/paths/{name}` act on; `None`: read-only (405).
    pub control: Option<Control>,
    /// The phase `/readyz` reports.
    pub health: Arc<Health>,
    /// The WebRTC viewers (`--webrtc-listen`) and their HTTP port.
    pub webrtc: Option<(Arc<crate::webrtc::http::Viewers>, u16)>,
}

/// The running server and the configuration paths are validated against.
pub struct Control {
    pub ctx: Arc<ServerContext>,
    /// The configuration in force (updated by reloads): a path's defaults.
    pub config: Arc<CurrentConfig>,
}

/// The running admin port; [`AdminHandle::stop`] ends it (and so does
/// cancelling the tasks it was started with).
pub struct AdminHandle {
    pub addr: SocketAddr,
    tasks: Tasks,
}

impl AdminHandle {
    pub fn stop(self) {
        self.tasks.cancel();
    }
}

/// Checks the address, binds it and starts serving (and the bitrate sampler), as
/// tasks of a child of `owner`.
///
/// # Errors
///
/// A non-loopback address without a token, or the address cannot be bound.
pub async fn start(
    addr: SocketAddr,
    state: AdminState,
    owner: &Tasks,
) -> Result<AdminHandle, AdminError> {
    check_listen(addr, state.token.as_deref())?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| AdminError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    let state = Arc::new(state);
    let tasks = owner.child();
    tasks.spawn(history::run_sampler(
        state.history.clone(),
        state.streams.clone(),
    ));
    let app = router(state);
    tasks.spawn(accept_loop(
        listener,
        app,
        ADMIN_LIMITS,
        None,
        tasks.clone(),
    ));
    info!(%local, "admin port listening");
    Ok(AdminHandle { addr: local, tasks })
}

/// The routes, with the token check and the body limit.
pub fn router(state: Arc<AdminState>) -> Router {
    let api = Router::new()
        .route("/metrics", get(get_metrics))
        .route("/v1/paths", get(list_paths))
        .route(
            "/v1/paths/{*name}",
            get(get_path).put(put_path).delete(delete_path),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        // The dashboard page is a constant (no data in it): served without
        // the token, which its script asks for and sends with every fetch.
        .route("/", get(dashboard_page))
        // Probes carry no token; the answers tell nothing but up or not.
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(api)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The admin port's bounds.
const ADMIN_LIMITS: HttpLimits = HttpLimits {
    max_connections: MAX_CONNECTIONS,
    header_timeout: HEADER_TIMEOUT,
    connection_timeout: CONNECTION_TIMEOUT,
    label: "admin port",
};

fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorBody {
            error: message.into(),
        }),
    )
        .into_response()
}

async fn require_token(State(state): State<Arc<AdminState>>, req: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        if !token::bearer_ok(given, token) {
            let mut resp = json_error(
                StatusCode::UNAUTHORIZED,
                "this admin port needs \"Authorization: Bearer <token>\"",
            );
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rtsp-proxy admin\""),
            );
            return resp;
        }
    }
    next.run(req).await
}

async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "no such admin resource")
}

async fn healthz() -> Response {
    plain_text(StatusCode::OK, "ok\n".into())
}

async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    let readiness = state.health.readiness(&state.supervisor);
    let status = if readiness == Readiness::Ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    plain_text(status, readiness.text())
}

fn plain_text(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

async fn dashboard_page() -> Response {
    let mut resp = Html(dashboard::PAGE).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

async fn get_metrics(State(state): State<Arc<AdminState>>) -> Response {
    let streams = state.streams.all();
    let webrtc = match &state.webrtc {
        Some((viewers, _)) => streams
            .iter()
            .map(|s| (s.name().to_owned(), viewers.of_path(s.name())))
            .collect(),
        None => Vec::new(),
    };
    let snaps = streams.iter().map(|s| s.snapshot()).collect();
    let text = metrics::render_with_webrtc(snaps, metrics::Process::read(), webrtc);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(metrics::CONTENT_TYPE),
        )],
        text,
    )
        .into_response()
}

fn view(state: &AdminState, stream: &Stream) -> PathView {
    let name = stream.name();
    let mut view = PathView::new(
        stream.snapshot(),
        state.supervisor.source_url(name),
        state.history.rate(name),
        state.history.samples(name),
    );
    if let Some((viewers, port)) = &state.webrtc {
        let w = viewers.of_path(name);
        view.watch_port = Some(*port);
        view.watch_path = Some(format!("/{name}/"));
        view.webrtc = Some(super::api::WebRtcView {
            viewers: w.viewers,
            bytes_sent: w.counters.bytes,
            packets_sent: w.counters.packets,
            nacks: w.counters.nacks,
            plis: w.counters.plis,
            firs: w.counters.firs,
            resent_packets: w.counters.resent,
            keyframe_replays: w.counters.keyframe_replays,
        });
    }
    view
}

async fn list_paths(State(state): State<Arc<AdminState>>) -> Response {
    let mut paths: Vec<PathView> = state
        .streams
        .all()
        .iter()
        .map(|s| view(&state, s))
        .collect();
    paths.sort_by(|a, b| a.name.cmp(&b.name));
    Json(PathList { paths }).into_response()
}

async fn get_path(State(state): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    match state.streams.get(&name) {
        Some(s) => Json(view(&state, &s)).into_response(),
        None => json_error(StatusCode::NOT_FOUND, format!("no path named {name:?}")),
    }
}

/// `PUT /v1/paths/{name}`: adds or replaces a path at run time. The body is a
/// JSON object with the keys of a `[paths.NAME]` table of the config file,
/// validated exactly as the file is (`config::file::parse_path`). Runtime only:
/// nothing is written to the file; a restart forgets the change, and a reload
/// touches this path only if the file's own entry of that name changes.
async fn put_path(
    State(state): State<Arc<AdminState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let Some(control) = &state.control else {
        return json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "this admin port is read-only",
        );
    };
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e}"),
            )
        }
    };
    let table = match super::api::json_to_toml_table(&value) {
        Ok(t) => t,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e),
    };
    let spec = match crate::config::file::parse_path(&name, &table, &control.config.get()) {
        Ok(s) => s,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match crate::paths::apply(&control.ctx, &name, spec, Origin::Config) {
        Ok(applied) => {
            let status = match applied {
                Applied::Added => StatusCode::CREATED,
                Applied::Replaced | Applied::Unchanged => StatusCode::OK,
            };
            info!(path = %name, ?applied, "admin API: path put");
            match state.streams.get(&name) {
                Some(s) => (status, Json(view(&state, &s))).into_response(),
                None => json_error(StatusCode::INTERNAL_SERVER_ERROR, "the path vanished"),
            }
        }
        Err(e @ PathError::InvalidName(_)) => json_error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => json_error(StatusCode::CONFLICT, e.to_string()),
    }
}

/// `DELETE /v1/paths/{name}`: removes a configured path (of the file or of a
/// `PUT`) at run time: its clients are ended, its source torn down. Runtime
/// only, as `PUT`. Streams of the command line, REGISTER or the demo are not
/// the API's (409).
async fn delete_path(State(state): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    let Some(control) = &state.control else {
        return json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "this admin port is read-only",
        );
    };
    match crate::paths::remove(&control.ctx, &name, Origin::Config) {
        Ok(true) => {
            info!(path = %name, "admin API: path deleted");
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) if state.streams.get(&name).is_some() => json_error(
            StatusCode::CONFLICT,
            format!("{name:?} is the built-in demo, not a configured path"),
        ),
        Ok(false) => json_error(StatusCode::NOT_FOUND, format!("no path named {name:?}")),
        Err(e) => json_error(StatusCode::CONFLICT, e.to_string()),
    }
}
