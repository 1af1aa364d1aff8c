//! The TOML config file (`rtsp-proxy --config <file>`): text in, a validated
//! [`FileModel`] out ([`parse`]), every error naming the line and the key.
//!
//! ```toml
//! [server]      # what the command line sets for the server (a command-line option wins)
//! [admin]       # the admin HTTP API: listen, token / token_file / token_env
//! [webrtc]      # browsers (WHEP): listen, udp, candidates, https, max_viewers, max_viewers_per_path
//! [defaults]    # every path's source settings (a command-line option wins)
//! [paths.NAME]  # one stream: source = "rtsp://...", and any [defaults] key (wins)
//! ```
//!
//! Secrets (`password_env`, `password_file`, `token_env`, `token_file`) are read by
//! [`FileModel::resolve_secrets`], the only part that looks outside the text.
//! How the model meets the command line is [`load`]'s business.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rtsp::auth::Credentials;
use serde::Deserialize;
use toml::Spanned;

use super::{value, AdminConfig, Config, HttpPort, RegisterAllow, ServerTls};
use crate::paths::{PathSpec, PathTransport, SourceOptions};

/// Largest `keyframe_cache`, in MiB (as `--keyframe-cache`).
const MAX_KEYFRAME_CACHE_MIB: i64 = 256;
/// Largest secret file read.
const MAX_SECRET_FILE: u64 = 4096;
/// Default admin port when `listen` gives none.
pub const DEFAULT_ADMIN_PORT: u16 = 9997;

/// What is wrong with a config file: where (line, 1-based; `None` when the file as
/// a whole), which key (`paths.cam.transport`) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.key.is_empty()) {
            (Some(l), false) => write!(f, "line {l}: {}: {}", self.key, self.message),
            (Some(l), true) => write!(f, "line {l}: {}", self.message),
            (None, false) => write!(f, "{}: {}", self.key, self.message),
            (None, true) => f.write_str(&self.message),
        }
    }
}

/// A config file that cannot be used: the file, then what [`ConfigError`] says
/// (`/etc/rtsp-proxy.toml:12: paths.cam.transport: ...`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{}", .file.display(), render_at(.error))]
pub struct FileError {
    pub file: PathBuf,
    pub error: ConfigError,
}

fn render_at(e: &ConfigError) -> String {
    match e.line {
        Some(l) => {
            let rest = ConfigError {
                line: None,
                ..e.clone()
            };
            format!(":{l}: {rest}")
        }
        None => format!(": {e}"),
    }
}

// ---- the raw shape (serde) ----

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    server: Option<RawServer>,
    admin: Option<RawAdmin>,
    webrtc: Option<RawWebRtc>,
    defaults: Option<RawSource>,
    paths: Option<BTreeMap<String, Spanned<RawSource>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    rtsp_port: Option<Spanned<i64>>,
    bind: Option<Vec<Spanned<String>>>,
    http_port: Option<Spanned<i64>>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    tls_port: Option<Spanned<i64>>,
    tls_only: Option<bool>,
    client_users: Option<Vec<Spanned<RawUser>>>,
    client_basic: Option<bool>,
    register: Option<bool>,
    register_users: Option<Vec<Spanned<RawUser>>>,
    max_registered: Option<Spanned<i64>>,
    register_allow: Option<Vec<Spanned<String>>>,
    trusted_proxies: Option<Vec<Spanned<String>>>,
    demo: Option<bool>,
    verbosity: Option<Spanned<i64>>,
    drain_timeout: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    user: Spanned<String>,
    password: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<Spanned<String>>,
    token: Option<Spanned<String>>,
    token_env: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWebRtc {
    listen: Option<Spanned<String>>,
    udp: Option<Spanned<String>>,
    candidates: Option<Vec<Spanned<String>>>,
    max_viewers: Option<Spanned<i64>>,
    max_viewers_per_path: Option<Spanned<i64>>,
    https: Option<bool>,
}

/// `[defaults]` and `[paths.NAME]` (only a path has `source`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSource {
    source: Option<Spanned<String>>,
    transport: Option<Spanned<String>>,
    http_port: Option<Spanned<i64>>,
    user: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    response_timeout: Option<Spanned<toml::Value>>,
    udp_timeout: Option<Spanned<toml::Value>>,
    max_gap: Option<Spanned<toml::Value>>,
    linger: Option<Spanned<toml::Value>>,
    reconnect_min: Option<Spanned<toml::Value>>,
    reconnect_max: Option<Spanned<toml::Value>>,
    keyframe_cache: Option<Spanned<i64>>,
    on_demand: Option<bool>,
    backend_tls_ca: Option<String>,
    backend_tls_fingerprints: Option<Vec<Spanned<String>>>,
    backend_tls_insecure: Option<bool>,
    /// `/readyz` waits for this path's back end (a path's own key).
    required: Option<Spanned<bool>>,
}

// ---- the validated model ----

/// A secret as written: inline, or where to read it.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Inline(String),
    Env(String),
    File(PathBuf),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Inline(_) => f.write_str("Inline(<redacted>)"),
            Secret::Env(v) => write!(f, "Env({v:?})"),
            Secret::File(p) => write!(f, "File({p:?})"),
        }
    }
}

/// A secret and where it was written (line, key), for errors while reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SecretAt {
    secret: Secret,
    line: usize,
    key: String,
}

/// A user with a password still to read.
#[derive(Clone, Debug, PartialEq, Eq)]
struct UserAt {
    user: String,
    password: SecretAt,
}

/// `[defaults]` or one path's settings: what was written, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourcePart {
    pub transport: Option<PathTransport>,
    user: Option<UserAt>,
    /// Resolved by [`FileModel::resolve_secrets`].
    pub credentials: Option<Credentials>,
    pub response_timeout: Option<Duration>,
    pub udp_timeout: Option<Duration>,
    /// `Some(None)`: `max_gap = 0`, off.
    pub max_gap: Option<Option<Duration>>,
    pub linger: Option<Duration>,
    pub reconnect_min: Option<Duration>,
    pub reconnect_max: Option<Duration>,
    pub keyframe_cache_bytes: Option<usize>,
    pub on_demand: Option<bool>,
    pub backend_tls: Option<crate::tls::BackendTrust>,
    /// `/readyz` waits for this path's back end (`[paths.NAME]` only).
    pub required: Option<bool>,
}

impl SourcePart {
    /// Writes the keys this table gives over `options` (the defaults below
    /// it); a `reconnect_max` left below `reconnect_min` rises to it.
    pub fn overlay(&self, options: &mut SourceOptions) {
        let o = options;
        if let Some(t) = self.transport {
            o.transport = t;
        }
        if self.credentials.is_some() {
            o.credentials = self.credentials.clone();
        }
        set(&mut o.response_timeout, self.response_timeout);
        set(&mut o.udp_timeout, self.udp_timeout);
        set(&mut o.max_gap, self.max_gap);
        set(&mut o.linger, self.linger);
        set(&mut o.reconnect_min, self.reconnect_min);
        set(&mut o.reconnect_max, self.reconnect_max);
        set(&mut o.keyframe_cache_bytes, self.keyframe_cache_bytes);
        set(&mut o.on_demand, self.on_demand);
        if let Some(t) = &self.backend_tls {
            o.backend_tls = t.clone();
        }
        if o.reconnect_max < o.reconnect_min {
            o.reconnect_max = o.reconnect_min;
        }
    }
}

/// `*slot = v` when a value was given.
fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

/// The validated file.
#[derive(Clone, Debug, Default)]
pub struct FileModel {
    raw_server: ServerPart,
    admin: Option<(SocketAddr, Option<SecretAt>)>,
    /// Resolved admin settings.
    pub admin_config: Option<AdminConfig>,
    /// `[webrtc]`, validated.
    pub webrtc: Option<crate::webrtc::WebRtcConfig>,
    pub defaults: SourcePart,
    /// Each path's source URL and settings.
    pub paths: BTreeMap<String, (String, SourcePart)>,
}

#[derive(Clone, Debug, Default)]
struct ServerPart {
    rtsp_port: Option<u16>,
    bind: Option<Vec<IpAddr>>,
    http_port: Option<HttpPort>,
    tls: Option<ServerTls>,
    client_users: Option<Vec<UserAt>>,
    client_users_resolved: Vec<Credentials>,
    client_basic: Option<bool>,
    register: Option<bool>,
    register_users: Option<Vec<UserAt>>,
    register_users_resolved: Vec<Credentials>,
    max_registered: Option<usize>,
    register_allow: Option<Vec<RegisterAllow>>,
    trusted_proxies: Option<super::TrustedProxies>,
    demo: Option<bool>,
    verbosity: Option<u8>,
    drain_timeout: Option<Duration>,
}

/// Line numbers and keys of one text.
struct Ctx<'a> {
    text: &'a str,
}

impl Ctx<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError {
            line: Some(self.line(span.start)),
            key: key.to_owned(),
            message: message.into(),
        })
    }

    /// The dotted key written at `offset`: the table header in force there, then
    /// the key on that line (best effort, for serde's own errors).
    fn key_at(&self, offset: usize) -> String {
        let end = offset.min(self.text.len());
        let before = &self.text[..end];
        let line_start = before.rfind('\n').map_or(0, |p| p + 1);
        let line_end = self.text[line_start..]
            .find('\n')
            .map_or(self.text.len(), |p| line_start + p);
        let line = self.text[line_start..line_end].trim();
        let key = if line.starts_with('[') {
            String::new()
        } else {
            line.split('=').next().unwrap_or("").trim().to_owned()
        };
        let table = before[..line_start]
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('['))
            .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
        match (table, key.is_empty()) {
            (Some(t), false) => format!("{t}.{key}"),
            (Some(t), true) => t,
            (None, _) => key,
        }
    }
}

/// Parses and validates a config file's text.
///
/// # Errors
///
/// The first problem, with its line and key: TOML syntax, an unknown key, a value
/// of the wrong type or out of range, a bad URL or path name, a password given two
/// ways.
pub fn parse(text: &str) -> Result<FileModel, ConfigError> {
    let ctx = Ctx { text };
    let raw: RawFile = toml::from_str(text).map_err(|e| ConfigError {
        line: e.span().map(|s| ctx.line(s.start)),
        key: e.span().map(|s| ctx.key_at(s.start)).unwrap_or_default(),
        message: e.message().trim().replace('\n', " "),
    })?;
    let mut model = FileModel::default();
    if let Some(s) = raw.server {
        model.raw_server = server(&ctx, s)?;
    }
    if let Some(a) = raw.admin {
        model.admin = Some(admin(&ctx, a)?);
    }
    if let Some(w) = raw.webrtc {
        model.webrtc = Some(webrtc(&ctx, w)?);
    }
    if let Some(d) = raw.defaults {
        if let Some(s) = &d.source {
            return ctx.err(
                s.span(),
                "defaults.source",
                "a source belongs in a [paths.NAME] table",
            );
        }
        if let Some(r) = &d.required {
            return ctx.err(
                r.span(),
                "defaults.required",
                "readiness waits for named paths: put required = true in their [paths.NAME] tables",
            );
        }
        model.defaults = source_part(&ctx, "defaults", d)?;
    }
    for (name, raw_path) in raw.paths.unwrap_or_default() {
        let span = raw_path.span();
        let key = format!("paths.{name}");
        if let Some(e) = crate::paths::name_error(&name) {
            return ctx.err(span, &key, e);
        }
        let mut raw_path = raw_path.into_inner();
        let Some(src) = raw_path.source.take() else {
            return ctx.err(span, &key, "no source (source = \"rtsp://...\")");
        };
        let url_key = format!("{key}.source");
        let url = src.get_ref().trim().to_owned();
        if let Err(e) = rtsp::url::RtspUrl::parse(&url) {
            return ctx.err(
                src.span(),
                &url_key,
                format!("not a valid rtsp:// or rtsps:// URL: {e}"),
            );
        }
        if !url.starts_with("rtsp://") && !url.starts_with("rtsps://") {
            return ctx.err(src.span(), &url_key, "must be an rtsp:// or rtsps:// URL");
        }
        let part = source_part(&ctx, &key, raw_path)?;
        if url.starts_with("rtsps://") && matches!(part.transport, Some(PathTransport::Http { .. }))
        {
            return ctx.err(
                src.span(),
                &url_key,
                "rtsps:// back ends cannot be reached through an HTTP tunnel",
            );
        }
        model.paths.insert(name, (url, part));
    }
    Ok(model)
}

fn port(ctx: &Ctx, v: &Spanned<i64>, key: &str, zero_ok: bool) -> Result<u16, ConfigError> {
    match u16::try_from(*v.get_ref()) {
        Ok(p) if p > 0 || zero_ok => Ok(p),
        _ => ctx.err(
            v.span(),
            key,
            format!(
                "{} is not a port number ({}..65535)",
                v.get_ref(),
                u8::from(!zero_ok)
            ),
        ),
    }
}

fn server(ctx: &Ctx, s: RawServer) -> Result<ServerPart, ConfigError> {
    let mut p = ServerPart::default();
    if let Some(v) = &s.rtsp_port {
        p.rtsp_port = Some(port(ctx, v, "server.rtsp_port", false)?);
    }
    if let Some(list) = &s.bind {
        let mut addrs = Vec::new();
        for a in list {
            let Some(ip) = value::ip_address(a.get_ref()) else {
                return ctx.err(
                    a.span(),
                    "server.bind",
                    format!("{:?} is not an IP address", a.get_ref()),
                );
            };
            if !addrs.contains(&ip) {
                addrs.push(ip);
            }
        }
        p.bind = Some(addrs);
    }
    if let Some(v) = &s.http_port {
        p.http_port = Some(match port(ctx, v, "server.http_port", true)? {
            0 => HttpPort::Off,
            n => HttpPort::Fixed(n),
        });
    }
    match (s.tls_cert, s.tls_key) {
        (Some(cert), Some(key)) => {
            let port_n = match &s.tls_port {
                Some(v) => port(ctx, v, "server.tls_port", false)?,
                None => super::DEFAULT_TLS_PORT,
            };
            p.tls = Some(ServerTls {
                cert: cert.into(),
                key: key.into(),
                port: port_n,
                only: s.tls_only.unwrap_or(false),
            });
        }
        (None, None) => {
            if let Some(v) = &s.tls_port {
                return ctx.err(v.span(), "server.tls_port", "needs tls_cert and tls_key");
            }
        }
        _ => {
            return Err(ConfigError {
                line: None,
                key: "server".into(),
                message: "tls_cert and tls_key go together".into(),
            })
        }
    }
    if let Some(users) = s.client_users {
        p.client_users = Some(users_of(ctx, "server.client_users", users)?);
    }
    p.client_basic = s.client_basic;
    p.register = s.register;
    if let Some(users) = s.register_users {
        p.register_users = Some(users_of(ctx, "server.register_users", users)?);
    }
    if let Some(v) = &s.max_registered {
        let n = *v.get_ref();
        if !(1..=super::MAX_MAX_REGISTERED as i64).contains(&n) {
            return ctx.err(
                v.span(),
                "server.max_registered",
                format!("must be 1..{}", super::MAX_MAX_REGISTERED),
            );
        }
        p.max_registered = usize::try_from(n).ok();
    }
    if let Some(v) = &s.drain_timeout {
        p.drain_timeout = Some(duration(ctx, v, "server.drain_timeout", true)?);
    }
    if let Some(list) = &s.register_allow {
        let mut entries = Vec::new();
        for e in list {
            let Some(a) = super::parse_register_allow(e.get_ref()) else {
                return ctx.err(
                    e.span(),
                    "server.register_allow",
                    format!(
                        "{:?} is not peer, an address, a network or a host name",
                        e.get_ref()
                    ),
                );
            };
            entries.push(a);
        }
        p.register_allow = Some(entries);
    }
    if let Some(list) = &s.trusted_proxies {
        let mut proxies = super::TrustedProxies::default();
        for e in list {
            if super::value::ip_network(e.get_ref())
                .map(|(a, p)| proxies.insert(a, p))
                .is_none()
            {
                return ctx.err(
                    e.span(),
                    "server.trusted_proxies",
                    format!("{:?} is not an IP address or a CIDR network", e.get_ref()),
                );
            }
        }
        p.trusted_proxies = Some(proxies);
    }
    p.demo = s.demo;
    if let Some(v) = &s.verbosity {
        match u8::try_from(*v.get_ref()) {
            Ok(n) if n <= 2 => p.verbosity = Some(n),
            _ => return ctx.err(v.span(), "server.verbosity", "must be 0, 1 or 2"),
        }
    }
    Ok(p)
}

fn users_of(
    ctx: &Ctx,
    key: &str,
    users: Vec<Spanned<RawUser>>,
) -> Result<Vec<UserAt>, ConfigError> {
    let mut out = Vec::new();
    for u in users {
        let span = u.span();
        let u = u.into_inner();
        let name = u.user.get_ref();
        if name.is_empty() || name.contains(':') || name.chars().any(char::is_control) {
            return ctx.err(
                u.user.span(),
                &format!("{key}.user"),
                "must be non-empty, without ':' or control characters",
            );
        }
        let Some(password) = secret(
            ctx,
            key,
            "password",
            u.password,
            u.password_env,
            u.password_file,
        )?
        else {
            return ctx.err(
                span,
                key,
                format!("user {name:?} has no password (password, password_env or password_file)"),
            );
        };
        out.push(UserAt {
            user: name.clone(),
            password,
        });
    }
    Ok(out)
}

/// One secret of `inline`, `env`, `file` (at most one given).
fn secret(
    ctx: &Ctx,
    table: &str,
    name: &str,
    inline: Option<Spanned<String>>,
    env: Option<Spanned<String>>,
    file: Option<Spanned<String>>,
) -> Result<Option<SecretAt>, ConfigError> {
    let given: Vec<(&str, Spanned<String>)> = [("", inline), ("_env", env), ("_file", file)]
        .into_iter()
        .filter_map(|(suffix, v)| v.map(|v| (suffix, v)))
        .collect();
    if given.len() > 1 {
        let names: Vec<String> = given.iter().map(|(s, _)| format!("{name}{s}")).collect();
        return ctx.err(
            given[1].1.span(),
            &format!("{table}.{name}{}", given[1].0),
            format!("give only one of {}", names.join(" and ")),
        );
    }
    let Some((suffix, v)) = given.into_iter().next() else {
        return Ok(None);
    };
    let key = format!("{table}.{name}{suffix}");
    let line = ctx.line(v.span().start);
    let text = v.into_inner();
    let secret = match suffix {
        "" => Secret::Inline(text),
        "_env" => {
            if text.is_empty() || text.contains('=') || text.contains('\0') {
                return Err(ConfigError {
                    line: Some(line),
                    key,
                    message: "not an environment variable name".into(),
                });
            }
            Secret::Env(text)
        }
        _ => Secret::File(text.into()),
    };
    Ok(Some(SecretAt { secret, line, key }))
}

fn duration(
    ctx: &Ctx,
    v: &Spanned<toml::Value>,
    key: &str,
    zero_ok: bool,
) -> Result<Duration, ConfigError> {
    let secs = match v.get_ref() {
        toml::Value::Integer(i) => *i as f64,
        toml::Value::Float(f) => *f,
        other => {
            return ctx.err(
                v.span(),
                key,
                format!("must be a number of seconds, not {}", other.type_str()),
            )
        }
    };
    let max = value::MAX_DURATION_SECS as f64;
    if !secs.is_finite() || secs < 0.0 || (secs == 0.0 && !zero_ok) || secs > max {
        let range = if zero_ok { "0 or more" } else { "more than 0" };
        return ctx.err(
            v.span(),
            key,
            format!("{secs} s: must be {range} and at most {max} seconds"),
        );
    }
    Ok(Duration::from_secs_f64(secs))
}

fn source_part(ctx: &Ctx, table: &str, r: RawSource) -> Result<SourcePart, ConfigError> {
    let mut p = SourcePart::default();
    let k = |name: &str| format!("{table}.{name}");
    if let Some(t) = &r.transport {
        p.transport = Some(match t.get_ref().as_str() {
            "auto" => PathTransport::Auto,
            "udp" => PathTransport::Udp,
            "tcp" => PathTransport::Tcp,
            "multicast" => PathTransport::Multicast,
            "http" => match &r.http_port {
                Some(v) => PathTransport::Http {
                    port: port(ctx, v, &k("http_port"), false)?,
                },
                None => {
                    return ctx.err(
                        t.span(),
                        &k("transport"),
                        "\"http\" needs http_port (the back end's RTSP-over-HTTP port)",
                    )
                }
            },
            other => {
                return ctx.err(
                    t.span(),
                    &k("transport"),
                    format!("unknown transport {other:?} (auto, udp, tcp, http or multicast)"),
                )
            }
        });
    }
    if let (Some(v), false) = (
        &r.http_port,
        matches!(p.transport, Some(PathTransport::Http { .. })),
    ) {
        return ctx.err(v.span(), &k("http_port"), "only with transport = \"http\"");
    }
    let password = secret(
        ctx,
        table,
        "password",
        r.password,
        r.password_env,
        r.password_file,
    )?;
    match (r.user, password) {
        (Some(u), Some(password)) => {
            p.user = Some(UserAt {
                user: u.into_inner(),
                password,
            })
        }
        (Some(u), None) => {
            p.user = Some(UserAt {
                user: u.get_ref().clone(),
                password: SecretAt {
                    secret: Secret::Inline(String::new()),
                    line: ctx.line(u.span().start),
                    key: k("password"),
                },
            })
        }
        (None, Some(s)) => {
            return Err(ConfigError {
                line: Some(s.line),
                key: s.key,
                message: "a password needs a user".into(),
            })
        }
        (None, None) => {}
    }
    if let Some(v) = &r.response_timeout {
        p.response_timeout = Some(duration(ctx, v, &k("response_timeout"), false)?);
    }
    if let Some(v) = &r.udp_timeout {
        p.udp_timeout = Some(duration(ctx, v, &k("udp_timeout"), false)?);
    }
    if let Some(v) = &r.max_gap {
        let d = duration(ctx, v, &k("max_gap"), true)?;
        p.max_gap = Some((!d.is_zero()).then_some(d));
    }
    if let Some(v) = &r.linger {
        p.linger = Some(duration(ctx, v, &k("linger"), true)?);
    }
    if let Some(v) = &r.reconnect_min {
        p.reconnect_min = Some(duration(ctx, v, &k("reconnect_min"), false)?);
    }
    if let Some(v) = &r.reconnect_max {
        p.reconnect_max = Some(duration(ctx, v, &k("reconnect_max"), false)?);
        if let (Some(min), Some(max)) = (p.reconnect_min, p.reconnect_max) {
            if max < min {
                return ctx.err(
                    v.span(),
                    &k("reconnect_max"),
                    "must not be less than reconnect_min",
                );
            }
        }
    }
    if let Some(v) = &r.keyframe_cache {
        let mib = *v.get_ref();
        if !(0..=MAX_KEYFRAME_CACHE_MIB).contains(&mib) {
            return ctx.err(
                v.span(),
                &k("keyframe_cache"),
                format!("{mib}: must be 0 to {MAX_KEYFRAME_CACHE_MIB} MiB"),
            );
        }
        p.keyframe_cache_bytes = usize::try_from(mib).ok().map(|m| m << 20);
    }
    p.on_demand = r.on_demand;
    p.required = r.required.map(Spanned::into_inner);
    if r.backend_tls_ca.is_some()
        || r.backend_tls_fingerprints.is_some()
        || r.backend_tls_insecure.is_some()
    {
        let mut trust = crate::tls::BackendTrust {
            ca_file: r.backend_tls_ca.map(PathBuf::from),
            insecure: r.backend_tls_insecure.unwrap_or(false),
            ..Default::default()
        };
        for f in r.backend_tls_fingerprints.unwrap_or_default() {
            match crate::tls::Fingerprint::parse(f.get_ref()) {
                Ok(fp) => trust.fingerprints.push(fp),
                Err(e) => {
                    return ctx.err(
                        f.span(),
                        &k("backend_tls_fingerprints"),
                        format!("{:?}: {e}", f.get_ref()),
                    )
                }
            }
        }
        if trust.insecure && (trust.ca_file.is_some() || !trust.fingerprints.is_empty()) {
            return Err(ConfigError { line: None, key: k("backend_tls_insecure"), message: "accepts any certificate: it cannot be combined with backend_tls_ca or backend_tls_fingerprints".into() });
        }
        p.backend_tls = Some(trust);
    }
    Ok(p)
}

fn admin(ctx: &Ctx, a: RawAdmin) -> Result<(SocketAddr, Option<SecretAt>), ConfigError> {
    let Some(listen) = &a.listen else {
        return Err(ConfigError {
            line: None,
            key: "admin.listen".into(),
            message: "missing: the admin API is off unless listen is set (e.g. \"127.0.0.1:9997\")"
                .into(),
        });
    };
    let text = listen.get_ref().trim();
    let addr = if let Ok(sa) = text.parse::<SocketAddr>() {
        sa
    } else if let Some(ip) = value::ip_address(text) {
        SocketAddr::new(ip, DEFAULT_ADMIN_PORT)
    } else if let Some(p) = value::port(text) {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p)
    } else {
        return ctx.err(
            listen.span(),
            "admin.listen",
            format!("{text:?} is not an address:port, an address or a port"),
        );
    };
    let token = secret(ctx, "admin", "token", a.token, a.token_env, a.token_file)?;
    Ok((addr, token))
}

/// `[webrtc]`: `listen` is needed (WebRTC is off without it).
fn webrtc(ctx: &Ctx, w: RawWebRtc) -> Result<crate::webrtc::WebRtcConfig, ConfigError> {
    let mut config = crate::webrtc::WebRtcConfig::off();
    let addr = |v: &Spanned<String>, key: &str| match v.get_ref().trim().parse::<SocketAddr>() {
        Ok(a) => Ok(a),
        Err(_) => ctx.err(
            v.span(),
            key,
            format!(
                "{:?} is not an address:port (such as \"0.0.0.0:8889\")",
                v.get_ref()
            ),
        ),
    };
    let Some(listen) = &w.listen else {
        return Err(ConfigError {
            line: None,
            key: "webrtc.listen".into(),
            message: "missing: WebRTC is off unless listen is set (e.g. \"0.0.0.0:8889\")".into(),
        });
    };
    config.listen = Some(addr(listen, "webrtc.listen")?);
    if let Some(udp) = &w.udp {
        config.udp = addr(udp, "webrtc.udp")?;
    }
    for c in w.candidates.iter().flatten() {
        match value::ip_address(c.get_ref().trim()) {
            Some(ip) if !ip.is_unspecified() && !ip.is_multicast() => {
                if !config.candidates.contains(&ip) {
                    config.candidates.push(ip);
                }
            }
            _ => {
                return ctx.err(
                    c.span(),
                    "webrtc.candidates",
                    format!("{:?} is not a unicast IP address", c.get_ref()),
                )
            }
        }
    }
    let count = |v: &Spanned<i64>, key: &str| match usize::try_from(*v.get_ref()) {
        Ok(n) if (1..=100_000).contains(&n) => Ok(n),
        _ => ctx.err(v.span(), key, "must be 1..100000"),
    };
    if let Some(n) = &w.max_viewers {
        config.max_viewers = count(n, "webrtc.max_viewers")?;
    }
    if let Some(n) = &w.max_viewers_per_path {
        config.max_viewers_per_path = count(n, "webrtc.max_viewers_per_path")?;
    }
    config.https = w.https.unwrap_or(false);
    Ok(config)
}

impl SecretAt {
    fn read(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
        let fail = |message: String| ConfigError {
            line: Some(self.line),
            key: self.key.clone(),
            message,
        };
        match &self.secret {
            Secret::Inline(s) => Ok(s.clone()),
            Secret::Env(var) => {
                env(var).ok_or_else(|| fail(format!("environment variable {var} is not set")))
            }
            Secret::File(path) => read_secret_file(path)
                .map_err(|e| fail(format!("cannot read {}: {e}", path.display()))),
        }
    }
}

/// A secret file's first line (without its line end), bounded in size.
fn read_secret_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_SECRET_FILE)
        .read_to_string(&mut text)?;
    Ok(text.lines().next().unwrap_or("").to_owned())
}

impl UserAt {
    fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Credentials, ConfigError> {
        Ok(Credentials::new(
            self.user.clone(),
            self.password.read(env)?,
        ))
    }
}

impl FileModel {
    /// Reads every password and token given by environment variable (`env`) or
    /// file.
    ///
    /// # Errors
    ///
    /// A variable not set, a file that cannot be read (line and key of where the
    /// secret was named).
    pub fn resolve_secrets(
        &mut self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let parts =
            std::iter::once(&mut self.defaults).chain(self.paths.values_mut().map(|(_, p)| p));
        for part in parts {
            if let Some(u) = &part.user {
                part.credentials = Some(u.resolve(env)?);
            }
        }
        let s = &mut self.raw_server;
        if let Some(users) = &s.client_users {
            s.client_users_resolved = users
                .iter()
                .map(|u| u.resolve(env))
                .collect::<Result<_, _>>()?;
        }
        if let Some(users) = &s.register_users {
            s.register_users_resolved = users
                .iter()
                .map(|u| u.resolve(env))
                .collect::<Result<_, _>>()?;
        }
        if let Some((listen, token)) = &self.admin {
            let token = match token {
                Some(t) => {
                    let v = t.read(env)?;
                    if v.is_empty() {
                        return Err(ConfigError {
                            line: Some(t.line),
                            key: t.key.clone(),
                            message: "the token is empty".into(),
                        });
                    }
                    Some(v)
                }
                None => None,
            };
            self.admin_config = Some(AdminConfig {
                listen: *listen,
                token,
            });
        }
        Ok(())
    }

    /// Puts `[server]` and `[defaults]` (and `[admin]`) on `config` (a default one:
    /// the command line is parsed on top of the result, so its options win).
    pub fn apply_globals(&self, config: &mut Config) {
        let s = &self.raw_server;
        if let Some(p) = s.rtsp_port {
            config.rtsp_port = p;
            config.rtsp_port_explicit = true;
        }
        if let Some(b) = &s.bind {
            config.bind_addresses = b.clone();
        }
        if let Some(h) = s.http_port {
            config.http_port = h;
        }
        if s.tls.is_some() {
            config.tls = s.tls.clone();
        }
        if s.client_users.is_some() {
            config.client_users = s.client_users_resolved.clone();
        }
        if let Some(b) = s.client_basic {
            config.client_basic_in_clear = b;
        }
        if let Some(r) = s.register {
            config.register = r;
        }
        if s.register_users.is_some() {
            config.register_users = s.register_users_resolved.clone();
        }
        if let Some(m) = s.max_registered {
            config.max_registered = m;
        }
        if let Some(a) = &s.register_allow {
            config.register_allow = a.clone();
        }
        if let Some(t) = &s.trusted_proxies {
            config.trusted_proxies = t.clone();
        }
        if let Some(d) = s.demo {
            config.demo = d;
        }
        if let Some(v) = s.verbosity {
            config.verbosity = v;
        }
        if let Some(d) = s.drain_timeout {
            config.drain_timeout = d;
        }
        config.admin = self.admin_config.clone();
        config.webrtc = self.webrtc.clone();
        self.defaults.overlay(&mut config.defaults);
    }

    /// Each path's spec: `config`'s source settings (the command line over
    /// `[defaults]`), then the path's own keys.
    #[must_use]
    pub fn path_specs(&self, config: &Config) -> BTreeMap<String, PathSpec> {
        self.paths
            .iter()
            .map(|(name, (url, p))| {
                let mut s = PathSpec::new(url, config.defaults.clone());
                p.overlay(&mut s.options);
                if let Some(r) = p.required {
                    s.required = r;
                }
                (name.clone(), s)
            })
            .collect()
    }
}

/// Why `--config <file>` with its command line cannot run the proxy.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read.
    #[error("{}: cannot read: {source}", .file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid (file, line, key and why).
    #[error(transparent)]
    File(#[from] FileError),
    /// The command line on top of the file is not valid.
    #[error(transparent)]
    CommandLine(#[from] super::UsageError),
    /// The command line asks for something else than running the proxy
    /// (`--help`, a subcommand).
    #[error("the command line does not run the proxy")]
    NotARun,
}

/// The whole configuration of `--config <file>` with command line `args`: the
/// built-in defaults, then the file's `[server]`, `[defaults]` and `[admin]`, then
/// the command-line options; the file's paths on top (a path's own keys win over
/// everything); names given twice (a path and a command-line stream) refused.
///
/// # Errors
///
/// The file cannot be read ([`LoadError::Read`]) or is not valid
/// ([`LoadError::File`]), or the command line is not
/// ([`LoadError::CommandLine`], [`LoadError::NotARun`]).
pub fn load(file: &Path, program: &str, args: &[String]) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(file).map_err(|source| LoadError::Read {
        file: file.to_owned(),
        source,
    })?;
    load_text(file, &text, program, args, &|v| std::env::var(v).ok())
}

/// [`load`] with the file's `text` and environment `env` given.
///
/// # Errors
///
/// As [`load`].
pub fn load_text(
    file: &Path,
    text: &str,
    program: &str,
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, LoadError> {
    let named = |error: ConfigError| FileError {
        file: file.to_owned(),
        error,
    };
    let mut model = parse(text).map_err(named)?;
    model.resolve_secrets(env).map_err(named)?;
    let mut base = Config::default();
    model.apply_globals(&mut base);
    let mut config = match super::cli::parse_args_onto(program, args, base)? {
        super::CliOutcome::Run(c) => c,
        _ => return Err(LoadError::NotARun),
    };
    let paths = model.path_specs(&config);
    let cli_names = config.stream_names();
    for (name, spec) in &paths {
        if let Some(mut e) = required_error(name, spec) {
            e.line = line_of_table(text, name);
            return Err(named(e).into());
        }
        if cli_names.contains(name) || (config.demo && name == super::DEMO_STREAM_NAME) {
            return Err(named(ConfigError {
                line: line_of_table(text, name),
                key: format!("paths.{name}"),
                message: format!("the name {name:?} is also a command-line stream"),
            })
            .into());
        }
    }
    config.paths = paths;
    config.config_file = Some(file.to_owned());
    config.command_line = args.to_vec();
    Ok(config)
}

/// One path from the keys of its table (`source = "rtsp://..."` and any
/// `[defaults]` key, as TOML text), resolved against the running `config` (its
/// source settings are the defaults) and the process environment: what the HTTP
/// API can call to validate a path exactly as the file does. Line numbers count
/// from the first line of `table`.
///
/// # Errors
///
/// A bad name, or anything [`parse`] and [`FileModel::resolve_secrets`] refuse.
pub fn parse_path(name: &str, table: &str, config: &Config) -> Result<PathSpec, ConfigError> {
    if let Some(e) = crate::paths::name_error(name) {
        return Err(ConfigError {
            line: None,
            key: format!("paths.{name}"),
            message: e,
        });
    }
    let text = format!("[paths.\"{name}\"]\n{table}");
    let shift = |mut e: ConfigError| {
        e.line = e.line.map(|l| l.saturating_sub(1)).filter(|&l| l > 0);
        e
    };
    let mut model = parse(&text).map_err(shift)?;
    model
        .resolve_secrets(&|v| std::env::var(v).ok())
        .map_err(shift)?;
    let spec = model
        .path_specs(config)
        .remove(name)
        .ok_or_else(|| ConfigError {
            line: None,
            key: format!("paths.{name}"),
            message: "no path".into(),
        })?;
    match required_error(name, &spec) {
        Some(e) => Err(e),
        None => Ok(spec),
    }
}

/// `required = true` on an on-demand path is refused: its back end is only
/// reached once a client asks, which a proxy that is not ready never gets.
fn required_error(name: &str, spec: &PathSpec) -> Option<ConfigError> {
    (spec.required && spec.options.on_demand).then(|| ConfigError {
        line: None,
        key: format!("paths.{name}.required"),
        message: "cannot go with on_demand = true (an on-demand back end is reached only once a client asks, and a proxy that is not ready gets none)".into(),
    })
}

/// The line of `[paths.NAME]` (best effort).
fn line_of_table(text: &str, name: &str) -> Option<usize> {
    let header = format!("[paths.{name}]");
    let quoted = format!("[paths.\"{name}\"]");
    text.lines()
        .position(|l| {
            let l = l.trim();
            l.starts_with(&header) || l.starts_with(&quoted)
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests;
