//! The proxy's configuration: one validated [`Config`], built from a command line that
//! is compatible with live555ProxyServer's (see [`cli`]), or a client subcommand
//! ([`subcommand`]: `register`, `deregister`).

pub mod cli;
mod current;
pub mod file;
pub mod manual;
pub mod subcommand;
mod value;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

pub use cli::{parse_args, usage, CliOutcome, UsageError};
pub use current::CurrentConfig;
pub use manual::{help, man_page};
// Settings owned by the layers below, which must not import config: config
// reads them (and `--help` their defaults) from there.
pub use crate::path_spec::{
    PathTransport, SourceOptions, DEFAULT_LINGER, DEFAULT_MAX_GAP_SECS, DEFAULT_RECONNECT_MAX,
    DEFAULT_RECONNECT_MIN, DEFAULT_RESPONSE_TIMEOUT, DEFAULT_UDP_FALLBACK_TIMEOUT,
};
pub use crate::server::listener::{HttpPort, DEFAULT_HTTP_PORTS};
pub use crate::server::multicast::{
    MulticastConfig, DEFAULT_MULTICAST_PORT, DEFAULT_MULTICAST_TTL,
};
pub use crate::server::proxy_header::TrustedProxies;
pub use crate::server::register::RegisterAllow;
pub use crate::source::BackendTransport;
pub use crate::supervisor::DEFAULT_MAX_REGISTERED;

/// Default front-end RTSP port (`-p`).
pub const DEFAULT_RTSP_PORT: u16 = 554;
/// Default stream-name prefix (`-e`).
pub const DEFAULT_STREAM_PREFIX: &str = "proxyStream";
/// Longest stream-name prefix accepted by `-e`, in characters.
pub const MAX_STREAM_PREFIX_CHARS: usize = 50;
/// How long playing clients go on after SIGTERM or SIGINT (`--drain-timeout`).
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Front-end RTSP session timeout (announced as `Session: <id>;timeout=65`).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(65);
/// Default port of RTSP over TLS for clients (`--tls-port`).
pub const DEFAULT_TLS_PORT: u16 = rtsp::url::RTSPS_DEFAULT_PORT;
/// Name of the built-in test-pattern stream served with `--demo`.
pub const DEMO_STREAM_NAME: &str = "demo";
/// Largest `--max-registered`.
pub const MAX_MAX_REGISTERED: usize = 10_000;

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event (the default).
    #[default]
    Text,
    /// One JSON object per line (tracing-subscriber's JSON formatter), for log
    /// collectors. The start-up banner stays plain text.
    Json,
}

impl LogFormat {
    /// `text` or `json`.
    #[must_use]
    pub fn parse(text: &str) -> Option<LogFormat> {
        match text {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// The validated configuration of one proxy process.
#[derive(Clone, Debug)]
pub struct Config {
    /// Log detail: 0 by default, 1 with `-v` (proxy events), 2 with `-V` (also every
    /// back-end RTSP request and response).
    pub verbosity: u8,
    /// How log lines are written to stderr (`--log-format`).
    pub log_format: LogFormat,
    /// The dedicated RTSP-over-HTTP port for clients (`--http-port`).
    pub http_port: HttpPort,
    /// Front-end RTSP port (`-p`, default 554).
    pub rtsp_port: u16,
    /// Whether the port was given with `-p`/`--port` (live555 falls back to 554 and then
    /// 8554 when a given port cannot be bound).
    pub rtsp_port_explicit: bool,
    /// Stream-name prefix (`-e`, 1..=50 characters, default `proxyStream`).
    pub stream_prefix: String,
    /// The back-end URLs, exactly as given (each starts with `rtsp://` or `rtsps://`).
    pub urls: Vec<String>,
    /// Also serve the built-in test pattern as stream [`DEMO_STREAM_NAME`] (`--demo`).
    pub demo: bool,
    /// Front-end session timeout: a client that shows no sign of life for this long
    /// loses its session.
    pub session_timeout: Duration,
    /// On SIGTERM or SIGINT, playing clients go on this long before the proxy
    /// closes them and exits (`--drain-timeout`, `[server] drain_timeout`; zero:
    /// at once).
    pub drain_timeout: Duration,
    /// Addresses the RTSP server listens on (`--bind`, repeatable; default `0.0.0.0` and
    /// `::`, like live555).
    pub bind_addresses: Vec<IpAddr>,
    /// Users clients must log in as (`-C`, repeatable); empty: no login.
    pub client_users: Vec<rtsp::auth::Credentials>,
    /// Basic authentication is accepted from clients on connections without TLS
    /// (`--client-basic`); Digest always is.
    pub client_basic_in_clear: bool,
    /// RTSP over TLS for clients (`--tls-cert`, `--tls-key`, `--tls-port`, `--tls-only`).
    pub tls: Option<ServerTls>,
    /// Accept REGISTER and DEREGISTER requests (`-R`).
    pub register: bool,
    /// Users that may REGISTER and DEREGISTER (`-U <user> <password>`, repeatable;
    /// needs `-R`). Empty: no authentication.
    pub register_users: Vec<rtsp::auth::Credentials>,
    /// At most this many registered streams at once (`--max-registered`).
    pub max_registered: usize,
    /// Which back-end URLs may be registered (`--register-allow`, repeatable); the
    /// default is [`RegisterAllow::Peer`] only.
    pub register_allow: Vec<RegisterAllow>,
    /// Every path's back-end settings unless its own table says otherwise:
    /// the built-in defaults, then `[defaults]`, then the command-line options
    /// (`-t`, `-T`, `-u`, `-D`, `--linger`, `--response-timeout`, ...).
    pub defaults: SourceOptions,
    /// The command line as given (without the program name), parsed again on top
    /// of the config file on reload.
    pub command_line: Vec<String>,
    /// The config file (`--config`), read again on reload.
    pub config_file: Option<PathBuf>,
    /// The config file's paths, resolved (`[paths.<name>]`), in name order.
    pub paths: std::collections::BTreeMap<String, crate::paths::PathSpec>,
    /// The admin HTTP listener (`[admin]`); `None`: off.
    pub admin: Option<AdminConfig>,
    /// Sessions one client address, and one connection, may hold
    /// (`--max-sessions-per-address`, `--max-sessions-per-connection`).
    pub session_limits: crate::server::client_sessions::SessionLimits,
    /// A session may be used from another address than the one that created it
    /// (`--sessions-from-any-address`).
    pub sessions_from_any_address: bool,
    /// Connections one client address may hold at once
    /// (`--max-connections-per-address`).
    pub max_connections_per_address: usize,
    /// Peers whose connections start with a PROXY protocol header carrying the
    /// client's address (`--trusted-proxy`, `[server] trusted_proxies`).
    pub trusted_proxies: TrustedProxies,
    /// Multicast to clients that ask for it; `None` (the default) answers their
    /// multicast SETUP with 461.
    pub multicast: Option<MulticastConfig>,
    /// WebRTC (WHEP) viewers (`--webrtc-listen`); `None` (the default): off.
    pub webrtc: Option<crate::webrtc::WebRtcConfig>,
}

/// The admin HTTP API (`[admin]` of the config file).
#[derive(Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Where it listens (loopback unless stated).
    pub listen: std::net::SocketAddr,
    /// Bearer token clients must present (`token`, `token_file`, `token_env`).
    pub token: Option<String>,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The server side of RTSP over TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTls {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key of the leaf.
    pub key: PathBuf,
    /// Port of RTSP over TLS (default [`DEFAULT_TLS_PORT`]).
    pub port: u16,
    /// No plain RTSP port (`--tls-only`).
    pub only: bool,
}

/// Parses a `--register-allow` entry ([`RegisterAllow`], the server's type): `peer`, an IP address (brackets allowed around IPv6), a CIDR
/// network, or a host name (letters, digits, `-` and `.`).
#[must_use]
pub fn parse_register_allow(text: &str) -> Option<RegisterAllow> {
    if text.eq_ignore_ascii_case("peer") {
        return Some(RegisterAllow::Peer);
    }
    let (addr_text, prefix_text) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    if value::ip_address(addr_text).is_some() {
        let (address, prefix) = value::ip_network(text)?;
        return Some(RegisterAllow::Network { address, prefix });
    }
    let name = text.trim_end_matches('.');
    let valid = prefix_text.is_none()
        && !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    valid.then(|| RegisterAllow::Host(name.to_ascii_lowercase()))
}

impl Default for Config {
    /// live555ProxyServer's defaults, with no URL.
    fn default() -> Self {
        Config {
            verbosity: 0,
            log_format: LogFormat::Text,
            http_port: HttpPort::Fallback,
            rtsp_port: DEFAULT_RTSP_PORT,
            rtsp_port_explicit: false,
            stream_prefix: DEFAULT_STREAM_PREFIX.to_owned(),
            urls: Vec::new(),
            demo: false,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            bind_addresses: vec![
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ],
            client_users: Vec::new(),
            client_basic_in_clear: false,
            tls: None,
            register: false,
            register_users: Vec::new(),
            max_registered: DEFAULT_MAX_REGISTERED,
            register_allow: vec![RegisterAllow::Peer],
            multicast: None,
            session_limits: crate::server::client_sessions::SessionLimits::default(),
            sessions_from_any_address: false,
            max_connections_per_address: crate::server::slots::DEFAULT_CONNECTIONS_PER_ADDRESS,
            trusted_proxies: TrustedProxies::default(),
            defaults: SourceOptions::default(),
            command_line: Vec::new(),
            config_file: None,
            paths: std::collections::BTreeMap::new(),
            admin: None,
            webrtc: None,
        }
    }
}

impl Config {
    /// The stream name of each URL, in order, as live555 names them: `<prefix>` when
    /// there is exactly one URL, `<prefix>-1` ... `<prefix>-N` when there are several.
    #[must_use]
    pub fn stream_names(&self) -> Vec<String> {
        stream_names(&self.stream_prefix, self.urls.len())
    }
}

/// Stream names for `count` URLs with the given prefix.
fn stream_names(prefix: &str, count: usize) -> Vec<String> {
    match count {
        0 => Vec::new(),
        1 => vec![prefix.to_owned()],
        _ => (1..=count).map(|n| format!("{prefix}-{n}")).collect(),
    }
}

impl Config {
    /// A command-line back end's path: the spec of `url` with every source
    /// option of the configuration's defaults as they are.
    #[must_use]
    pub fn path_spec(&self, url: &str) -> crate::path_spec::PathSpec {
        crate::path_spec::PathSpec::new(url, self.defaults.clone())
    }
}

/// REGISTER's settings are the configuration's: its `--register-allow` list,
/// its back-end options and keyframe cache.
impl crate::server::register::RegisterSettings for Config {
    fn allows(&self, host: &str, peer: IpAddr) -> bool {
        self.register_allow
            .iter()
            .any(|rule| rule.allows(host, peer))
    }

    fn source_settings(
        &self,
        url: &str,
        interleaved: bool,
        connector: crate::source::Connector,
    ) -> crate::source::SourceSettings {
        let mut settings = self.path_spec(url).settings(None);
        if interleaved || self.defaults.transport == PathTransport::Tcp {
            settings.transport = BackendTransport::Tcp;
        }
        settings.connector = connector;
        settings
    }

    fn keyframe_cache_bytes(&self) -> usize {
        self.defaults.keyframe_cache_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_urls(prefix: &str, count: usize) -> Config {
        Config {
            stream_prefix: prefix.to_owned(),
            urls: (0..count)
                .map(|n| format!("rtsp://127.0.0.1/{n}"))
                .collect(),
            ..Config::default()
        }
    }

    #[test]
    fn stream_names_follow_live555() {
        assert!(with_urls("proxyStream", 0).stream_names().is_empty());
        assert_eq!(with_urls("proxyStream", 1).stream_names(), ["proxyStream"]);
        assert_eq!(
            with_urls("proxyStream", 2).stream_names(),
            ["proxyStream-1", "proxyStream-2"]
        );
        assert_eq!(
            with_urls("proxyStream", 3).stream_names(),
            ["proxyStream-1", "proxyStream-2", "proxyStream-3"]
        );
        assert_eq!(with_urls("cams/front", 1).stream_names(), ["cams/front"]);
        assert_eq!(
            with_urls("cams/front", 2).stream_names(),
            ["cams/front-1", "cams/front-2"]
        );
    }

    #[test]
    fn register_allow_entries() {
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        let parse = |t: &str| parse_register_allow(t).unwrap_or_else(|| panic!("{t}"));
        assert_eq!(parse("peer"), RegisterAllow::Peer);
        assert!(parse("peer").allows("192.0.2.7", peer));
        assert!(parse("PEER").allows("::ffff:192.0.2.7", peer));
        assert!(!parse("peer").allows("192.0.2.8", peer));
        assert!(
            !parse("peer").allows("cam.example", peer),
            "names never match peer"
        );
        let net = parse("10.1.0.0/16");
        assert!(net.allows("10.1.200.3", peer));
        assert!(!net.allows("10.2.0.1", peer));
        assert!(!net.allows("::1", peer));
        assert!(parse("0.0.0.0/0").allows("203.0.113.9", peer));
        assert!(parse("192.0.2.9").allows("192.0.2.9", peer));
        assert!(!parse("192.0.2.9").allows("192.0.2.10", peer));
        assert!(parse("[2001:db8::]/32").allows("2001:db8:1::5", peer));
        assert!(!parse("2001:db8::/32").allows("2001:db9::5", peer));
        assert!(parse("::/0").allows("::1", peer));
        let host = parse("Cam-1.Example.");
        assert_eq!(host, RegisterAllow::Host("cam-1.example".into()));
        assert!(host.allows("CAM-1.example", peer));
        assert!(!host.allows("cam-2.example", peer));
        assert!(
            !parse("localhost").allows("127.0.0.1", peer),
            "no resolution"
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "a..b",
            "a_b",
            "host/8",
            "10.0.0.0/x",
            "-",
            "-a.b",
            "a b",
        ] {
            assert_eq!(parse_register_allow(bad), None, "{bad:?}");
        }
        assert_eq!(parse("10.1.0.0/16").to_string(), "10.1.0.0/16");
        assert_eq!(parse("192.0.2.9").to_string(), "192.0.2.9/32");
    }

    #[test]
    fn defaults() {
        let config = Config::default();
        assert_eq!(config.verbosity, 0);
        assert_eq!(config.defaults.transport, PathTransport::Auto);
        assert_eq!(config.http_port, HttpPort::Fallback);
        assert_eq!(config.rtsp_port, 554);
        assert!(!config.rtsp_port_explicit);
        assert!(config.defaults.credentials.is_none());
        assert_eq!(config.defaults.max_gap, Some(Duration::from_secs(10)));
        assert_eq!(config.stream_prefix, "proxyStream");
        assert!(!config.demo);
        assert_eq!(config.defaults.linger, Duration::from_secs(1));
        assert_eq!(config.defaults.response_timeout, Duration::from_secs(10));
        assert_eq!(config.defaults.udp_timeout, Duration::from_secs(4));
        assert_eq!(config.session_timeout, Duration::from_secs(65));
        assert_eq!(config.defaults.reconnect_min, Duration::from_secs(1));
        assert_eq!(config.defaults.reconnect_max, Duration::from_secs(30));
        assert!(!config.register);
        assert!(config.register_users.is_empty());
        assert_eq!(config.max_registered, 64);
        assert_eq!(config.register_allow, [RegisterAllow::Peer]);
        assert_eq!(config.multicast, None);
        assert_eq!(
            config.bind_addresses,
            [
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            ]
        );
    }
}
