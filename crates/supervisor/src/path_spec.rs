//! The path model: one [`PathSpec`] per named stream with a source, produced by the
//! command line (`Config::path_spec`, in the config layer) and by the
//! config file alike (`config::file`), turned into [`SourceSettings`] in one
//! place ([`PathSpec::settings`]); [`diff`] of two sets of paths. A value type:
//! it imports neither the configuration nor the running server (the control
//! API that applies paths is `paths.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rtsp::auth::Credentials;

use source::{BackendTransport, SourceSettings};

/// Longest path name, in bytes.
pub const MAX_NAME_LEN: usize = 200;

/// How a path's source reaches its back end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathTransport {
    /// RTP over UDP, switching to TCP when UDP does not work (the default).
    Auto,
    /// RTP over UDP only (no switch to TCP).
    Udp,
    /// RTP interleaved on the RTSP TCP connection.
    Tcp,
    /// RTSP (and media) tunnelled over HTTP to this port of the back end's host.
    Http { port: u16 },
    /// Ask the back end for multicast first (`--backend-multicast`), then TCP.
    Multicast,
}

/// Default dead-stream detection interval (`-D`, `max_gap`), in seconds.
pub const DEFAULT_MAX_GAP_SECS: u32 = 10;
/// Default time the back end keeps playing after the last client left (`--linger`).
pub const DEFAULT_LINGER: Duration = Duration::from_secs(1);
/// Default back-end RTSP response timeout (`--response-timeout`).
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default wait for the first UDP packet after PLAY before falling back to TCP
/// (`--udp-timeout`).
pub const DEFAULT_UDP_FALLBACK_TIMEOUT: Duration = Duration::from_secs(4);
/// Default first back-end reconnect delay (`--reconnect-min`).
pub const DEFAULT_RECONNECT_MIN: Duration = Duration::from_secs(1);
/// Default longest back-end reconnect delay (`--reconnect-max`).
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(30);

/// A path's back-end settings, held once: the command line and `[defaults]`
/// write the defaults (`Config::defaults`), a path's own table overlays them
/// once (`config::file::SourcePart::overlay`), and the source's settings are
/// derived from the result ([`PathSpec::settings`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceOptions {
    pub transport: PathTransport,
    /// Used when the URL has none (`-u`, `user`/`password`).
    pub credentials: Option<Credentials>,
    pub response_timeout: Duration,
    pub udp_timeout: Duration,
    /// Dead-stream detection (`-D`, `max_gap`); `None`: off.
    pub max_gap: Option<Duration>,
    pub linger: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Keyframe cache bound in bytes (0: off).
    pub keyframe_cache_bytes: usize,
    /// Connect on the first client, close `linger` after the last one left.
    pub on_demand: bool,
    /// How an `rtsps://` back end is verified.
    pub backend_tls: net::tls::BackendTrust,
}

impl Default for SourceOptions {
    /// live555ProxyServer's defaults.
    fn default() -> Self {
        SourceOptions {
            transport: PathTransport::Auto,
            credentials: None,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            udp_timeout: DEFAULT_UDP_FALLBACK_TIMEOUT,
            max_gap: Some(Duration::from_secs(u64::from(DEFAULT_MAX_GAP_SECS))),
            linger: DEFAULT_LINGER,
            reconnect_min: DEFAULT_RECONNECT_MIN,
            reconnect_max: DEFAULT_RECONNECT_MAX,
            keyframe_cache_bytes: relay::keyframe_cache::DEFAULT_CACHE_BYTES,
            on_demand: false,
            backend_tls: net::tls::BackendTrust::default(),
        }
    }
}

/// Everything a path's source needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathSpec {
    /// Back-end URL (`rtsp://` or `rtsps://`; may hold credentials, never logged as is).
    pub source: String,
    /// The back-end settings (the defaults with the path's own keys on top).
    pub options: SourceOptions,
    /// The proxy is not ready (`/readyz`) while this path's back end is not up
    /// (`required = true` of a `[paths.NAME]` table).
    pub required: bool,
}

impl PathSpec {
    /// The spec of back end `source` with `options` (a command-line URL: the
    /// defaults as they are).
    #[must_use]
    pub fn new(source: &str, options: SourceOptions) -> PathSpec {
        PathSpec {
            source: source.to_owned(),
            options,
            required: false,
        }
    }

    /// Whether `other` differs from this spec in `required` at most: the
    /// source need not be touched.
    #[must_use]
    pub fn same_source(&self, other: &PathSpec) -> bool {
        PathSpec {
            required: other.required,
            ..self.clone()
        } == *other
    }

    /// The source URL with any password removed, for logs and listings.
    #[must_use]
    pub fn redacted_source(&self) -> String {
        rtsp::url::redact(&self.source)
    }

    /// The source settings, `rtsps://` back ends verified by `tls`.
    #[must_use]
    pub fn settings(&self, tls: Option<Arc<rustls::ClientConfig>>) -> SourceSettings {
        let o = &self.options;
        let user_agent = net::SOFTWARE.to_owned();
        let (transport, http_tunnel) = match o.transport {
            PathTransport::Auto | PathTransport::Udp => (BackendTransport::Udp, None),
            PathTransport::Tcp => (BackendTransport::Tcp, None),
            PathTransport::Multicast => (BackendTransport::Multicast, None),
            // A tunnel carries the media too.
            PathTransport::Http { port } => (
                BackendTransport::Tcp,
                Some(source::http_tunnel::TunnelSettings {
                    port,
                    credentials: o.credentials.clone(),
                    user_agent,
                }),
            ),
        };
        SourceSettings {
            url: self.source.clone(),
            credentials: o.credentials.clone(),
            transport,
            tcp_fallback: o.transport != PathTransport::Udp,
            on_demand: o.on_demand,
            response_timeout: o.response_timeout,
            udp_timeout: o.udp_timeout,
            max_gap: o.max_gap,
            linger: o.linger,
            reconnect_min: o.reconnect_min,
            reconnect_max: o.reconnect_max,
            connector: source::Connector {
                http_tunnel,
                tls,
                ..source::Connector::default()
            },
        }
    }
}

/// Why a path name is refused, or `None` when it is fine: 1 to [`MAX_NAME_LEN`]
/// bytes of letters, digits, `-`, `_`, `.`, `~` and `/` (segments separated by
/// one `/`, none empty, `.` or `..`), so that it is the path of an RTSP URL as is.
#[must_use]
pub fn name_error(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a path name cannot be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!("path name longer than {MAX_NAME_LEN} bytes"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '/')))
    {
        return Some(format!(
            "path name {name:?} has {c:?}, which cannot be in an RTSP URL path (use letters, digits, '-', '_', '.', '~' and '/')"
        ));
    }
    if name
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Some(format!(
            "path name {name:?} has an empty, '.' or '..' segment (or a leading or trailing '/')"
        ));
    }
    None
}

/// How two sets of paths differ, each list sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
}

impl Diff {
    /// Nothing to do.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

impl std::fmt::Display for Diff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        write!(
            f,
            "added: {}; changed: {}; removed: {}; unchanged: {}",
            list(&self.added),
            list(&self.changed),
            list(&self.removed),
            self.unchanged.len()
        )
    }
}

/// What turns `old` into `new`.
#[must_use]
pub fn diff(old: &BTreeMap<String, PathSpec>, new: &BTreeMap<String, PathSpec>) -> Diff {
    let mut d = Diff::default();
    for (name, spec) in new {
        match old.get(name) {
            None => d.added.push(name.clone()),
            Some(o) if o == spec => d.unchanged.push(name.clone()),
            Some(_) => d.changed.push(name.clone()),
        }
    }
    d.removed = old
        .keys()
        .filter(|n| !new.contains_key(*n))
        .cloned()
        .collect();
    d
}
