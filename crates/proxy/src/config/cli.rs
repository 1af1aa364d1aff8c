//! The command line, parsed with live555ProxyServer's rules.
//!
//! ```text
//! rtsp-proxy [-v|-V] [-t|-T <http-port>] [-p <rtspServer-port>] [-u <username> <password>]
//!            [-R] [-U <username-for-REGISTER> <password-for-REGISTER>]
//!            [-D <max-inter-packet-gap-time>] [-e <stream-name-prefix>]
//!            [-C <client-username> <client-password>] <rtsp-url-1> ... <rtsp-url-n>
//! ```
//!
//! Rules (live555's):
//! - Options come before the URLs. Parsing stops at the first argument that does not
//!   start with `-`; every argument from there on must start with `rtsp://` or
//!   `rtsps://` (case-sensitive). An `rtsps://` back end is never dialled in plain
//!   text, nor tunnelled with `-T` (a message of its own).
//! - Only the second character of a short option counts: `-verbose` is `-v`.
//! - Values are separate arguments (`-p9554` is `-p` without its value). The values of
//!   `-p`, `-T` and `-D` must be present and must not start with `-`; `-p` and `-T` are
//!   ports (1..=65535), `-D` is a whole number of seconds (0 turns the check off).
//!   `-u`, `-U` and `-C` take the next two arguments as they are. `-e` takes the next
//!   argument as it is, which must be 1..=50 characters.
//! - A repeated option: the last one wins.
//! - At least one URL is needed, unless `-R` (or `--demo`) is given.
//!
//! Numbers must be plain decimal digits (live555's `sscanf` would also take `5abc`).
//! `-T <http-port>` reaches the back ends through RTSP-over-HTTP tunnels and implies
//! interleaved (TCP) media, as in live555. `-C` users accumulate (a repeated user
//! name takes the later password).
//!
//! `-R` accepts REGISTER/DEREGISTER; `-U <user> <password>` (repeatable, needs `-R`)
//! makes both need Digest authentication as one of those users. With `-R`:
//! `--max-registered N` (default 64) bounds the registered streams and
//! `--register-allow <peer|ip|cidr|host>` (repeatable; default `peer`) says which
//! back-end URLs may be registered.
//!
//! `rtsp-proxy register ...` and `rtsp-proxy deregister ...` as the first argument
//! are the client subcommands (see [`super::subcommand`]).
//!
//! Long options (checked before the one-character rule): `--verbose`, `--debug` /
//! `--verbose-rtsp`, `--tcp`, `--port N`, `--user U P`, `--prefix S`, `--max-gap N`,
//! `--demo`, `--linger S`, `--drain-timeout S`, `--response-timeout S`, `--udp-timeout S`,
//! `--reconnect-min S`, `--reconnect-max S`, `--bind ADDR` (repeatable),
//! `--keyframe-cache MIB` (0..=256, 0 turns it off), `--http-port N` (the dedicated
//! RTSP-over-HTTP port for clients; 0 turns it off; by default live555's 80, else
//! 8000, else 8080, else none), `--client-user U P` (`-C`, repeatable),
//! `--client-basic`, `--max-registered N`, `--register-allow RULE` (repeatable),
//! the `--tls-*` and `--backend-tls-*` options, `--backend-multicast`,
//! `--multicast-range CIDR` (inside 224.0.0.0/4), `--multicast-ttl N` (1..=255)
//! and `--multicast-port EVEN-PORT` (the last two need the range), `--help`
//! (also `-h`) and `--version`. The timing options take seconds with an optional
//! fraction (`0.5`), at most one day.
//!
//! TLS (see [`crate::tls`]): `--tls-cert PEM` and `--tls-key PEM` (together) also
//! serve RTSP over TLS on `--tls-port N` (default 322); `--tls-only` (needs them)
//! turns the plain RTSP port off. `rtsps://` back ends are verified against the
//! system's roots plus `--backend-tls-ca PEM`, or accepted by the SHA-256
//! fingerprint of their certificate (`--backend-tls-fingerprint HEX`,
//! repeatable, 64 hex digits with or without `:`), or not verified at all
//! (`--backend-tls-insecure`, which goes with neither of the other two).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::value;
use super::{
    Config, HttpPort, LogFormat, PathTransport, RegisterAllow, ServerTls, DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_LINGER, DEFAULT_MAX_GAP_SECS, DEFAULT_MAX_REGISTERED, DEFAULT_RECONNECT_MAX,
    DEFAULT_RECONNECT_MIN, DEFAULT_RESPONSE_TIMEOUT, DEFAULT_RTSP_PORT, DEFAULT_STREAM_PREFIX,
    DEFAULT_TLS_PORT, DEFAULT_UDP_FALLBACK_TIMEOUT, DEMO_STREAM_NAME, MAX_MAX_REGISTERED,
    MAX_STREAM_PREFIX_CHARS,
};
use super::{MulticastConfig, DEFAULT_MULTICAST_PORT, DEFAULT_MULTICAST_TTL};

/// What the command line asks for.
// Built once at start-up, so the size of `Run` does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum CliOutcome {
    /// Run the proxy with this configuration.
    Run(Config),
    /// Print [`usage`] to stdout and exit successfully (`--help`, `-h`).
    Help,
    /// Print the manual page (roff) to stdout and exit successfully (`--man`).
    Man,
    /// Print the version and exit successfully (`--version`).
    Version,
    /// Send REGISTER or DEREGISTER to a proxy (`rtsp-proxy register|deregister ...`).
    Register(super::subcommand::RegisterCommand),
    /// Print the usage of a subcommand to stdout and exit successfully.
    RegisterHelp(super::subcommand::Kind),
}

/// A command line that cannot be run. Like live555, the caller prints it (the message,
/// then the usage text) to stderr and exits with status 1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_usage_error(.message.as_deref(), .program, .subcommand))]
pub struct UsageError {
    /// What is wrong, when there is more to say than the usage text. `None` for a
    /// bare usage error (such as no arguments at all).
    pub message: Option<String>,
    /// The program name shown in the usage text.
    pub program: String,
    /// The error is about this subcommand's arguments: its usage is shown instead.
    pub subcommand: Option<super::subcommand::Kind>,
}

fn render_usage_error(
    message: Option<&str>,
    program: &str,
    subcommand: &Option<super::subcommand::Kind>,
) -> String {
    let text = match subcommand {
        Some(kind) => super::subcommand::usage(program, *kind),
        None => usage(program),
    };
    match message {
        Some(message) => format!("{message}\n{text}"),
        None => text,
    }
}

/// live555's message for `-U` without `-R`.
pub const REGISTER_AUTH_WITHOUT_REGISTER: &str =
    "The '-U <username-for-REGISTER> <password-for-REGISTER>' option can be used only with -R";
/// live555's message for `-t` together with `-T`.
pub const TCP_AND_HTTP_TUNNEL: &str = "The -t and -T options cannot both be used!";
/// The fork's message for an `-e` value that is empty or too long.
pub const INVALID_STREAM_PREFIX: &str = "Invalid stream-name prefix (must be 1..50 characters)";

/// live555's synopsis line (without `Usage: `), the first line of [`usage`].
#[must_use]
pub fn synopsis(program: &str) -> String {
    format!(
        "{program} [-v|-V] [-t|-T <http-port>] [-p <rtspServer-port>] [-u <username> <password>] \
         [-R] [-U <username-for-REGISTER> <password-for-REGISTER>] [-D <max-inter-packet-gap-time>] \
         [-e <stream-name-prefix>] [-C <client-username> <client-password>] <rtsp-url-1> ... <rtsp-url-n>"
    )
}

/// The synopsis of the client subcommands.
#[must_use]
pub fn subcommand_synopsis(program: &str) -> String {
    format!("{program} register|deregister [-u <user> <password>] [-t] [--reuse-connection] <proxy-host> <proxy-port> <rtsp-URL> [<proxy-URL-suffix>]")
}

/// One topic of the options: its title and its `(names, help)` pairs.
pub type OptionGroup = (&'static str, Vec<(&'static str, String)>);

/// Every option of the proxy, by topic: the one table that [`usage`], `--help`
/// ([`super::manual::help`]) and the manual page ([`super::manual::man_page`])
/// are rendered from. A new option goes here, in its topic (a topic without
/// options is not shown).
#[must_use]
pub fn option_groups() -> Vec<OptionGroup> {
    let secs = |d: Duration| format!("{}", d.as_secs_f64());
    vec![
        (
            "live555ProxyServer options",
            vec![
                ("-v, --verbose", "log proxy events: one line per change of a stream's back end (described, playing, paused, resumed, lost, back), clients' sessions".into()),
                ("-V, --debug, --verbose-rtsp", "also log every back-end RTSP request and response (credentials hidden)".into()),
                ("-t, --tcp", "receive back-end media over the back end's RTSP TCP connection".into()),
                ("-T <http-port>", "reach the back ends through RTSP-over-HTTP tunnels on this port of their host (media over TCP)".into()),
                ("-p, --port <port>", format!("RTSP port to listen on (default {DEFAULT_RTSP_PORT})")),
                ("-u, --user <username> <password>", "credentials for the back ends".into()),
                (
                    "-D, --max-gap <seconds>",
                    format!(
                        "reset a playing back end that sent no packet for this long (default {DEFAULT_MAX_GAP_SECS}, 0 = off)"
                    ),
                ),
                (
                    "-e, --prefix <prefix>",
                    format!("stream-name prefix, 1..{MAX_STREAM_PREFIX_CHARS} characters (default {DEFAULT_STREAM_PREFIX})"),
                ),
            ],
        ),
        (
            "Back ends",
            vec![
                (
                    "--linger <seconds>",
                    format!("keep the back end playing this long after the last client left (default {})", secs(DEFAULT_LINGER)),
                ),
                (
                    "--response-timeout <seconds>",
                    format!("give up on a back-end RTSP response after this long (default {})", secs(DEFAULT_RESPONSE_TIMEOUT)),
                ),
                (
                    "--udp-timeout <seconds>",
                    format!(
                        "use TCP when no UDP packet arrives this long after PLAY (default {})",
                        secs(DEFAULT_UDP_FALLBACK_TIMEOUT)
                    ),
                ),
                (
                    "--reconnect-min <seconds>",
                    format!("first delay before reconnecting to a back end (default {})", secs(DEFAULT_RECONNECT_MIN)),
                ),
                (
                    "--reconnect-max <seconds>",
                    format!("longest delay between reconnect attempts (default {})", secs(DEFAULT_RECONNECT_MAX)),
                ),
                ("--backend-tls-ca <pem>", "trust these CA certificates for rtsps:// back ends, besides the system's; a back end's own self-signed certificate in it is trusted too (name and dates checked)".into()),
                ("--backend-tls-fingerprint <sha256>", "accept the rtsps:// back end whose certificate has this SHA-256 fingerprint (repeatable)".into()),
                ("--backend-tls-insecure", "accept any rtsps:// back-end certificate (unsafe)".into()),
            ],
        ),
        (
            "Clients and TLS",
            vec![
                ("--bind <address>", "address to listen on, repeatable (default 0.0.0.0 and ::)".into()),
                (
                    "--http-port <port>",
                    "extra port for clients' RTSP-over-HTTP tunnels, 0 = none (default: the first of 80, 8000, 8080 that is free)".into(),
                ),
                (
                    "-C, --client-user <user> <password>",
                    "clients must log in (Digest; repeat for more users; OPTIONS is open)".into(),
                ),
                (
                    "--client-basic",
                    "also accept Basic authentication without TLS (it shows the password on the wire)".into(),
                ),
                (
                    "--max-connections-per-address <n>",
                    format!(
                        "connections one client address may hold, of {} in all (default {})",
                        crate::server::listener::MAX_CONNECTIONS,
                        crate::server::slots::DEFAULT_CONNECTIONS_PER_ADDRESS
                    ),
                ),
                (
                    "--trusted-proxy <cidr>",
                    "a load balancer (address or network, repeatable) whose connections start with a PROXY protocol header (v1 or v2) carrying the client's address, used for the per-address limits, sessions, logs and the API; a PROXY header from any other peer is refused".into(),
                ),
                (
                    "--max-sessions-per-address <n>",
                    format!("sessions one client address may hold (default {})", crate::server::client_sessions::DEFAULT_SESSIONS_PER_ADDRESS),
                ),
                (
                    "--max-sessions-per-connection <n>",
                    format!("sessions one connection may create (default {})", crate::server::client_sessions::DEFAULT_SESSIONS_PER_CONNECTION),
                ),
                (
                    "--sessions-from-any-address",
                    "let a session be used from another address than the one that created it (clients behind a changing NAT); by default that gets 454".into(),
                ),
                (
                    "--keyframe-cache <MiB>",
                    format!(
                        "per stream, keep the packets since the last H.264/H.265/MPEG-TS keyframe so new clients get a picture at once; 0 turns it off (default {})",
                        crate::relay::keyframe_cache::DEFAULT_CACHE_BYTES >> 20
                    ),
                ),
                ("--tls-cert <pem> --tls-key <pem>", "also serve RTSP over TLS (rtsps://) with this certificate chain and key".into()),
                ("--tls-port <port>", format!("port of RTSP over TLS (default {DEFAULT_TLS_PORT})")),
                ("--tls-only", "serve RTSP over TLS only: no plain RTSP port".into()),
            ],
        ),
        (
            "REGISTER (back ends that ask to be proxied)",
            vec![
                ("-R", "accept REGISTER/DEREGISTER requests (back ends that ask to be proxied)".into()),
                ("-U <username> <password>", "a user who may REGISTER/DEREGISTER (Digest; repeatable; needs -R)".into()),
                (
                    "--max-registered <n>",
                    format!("with -R: at most this many registered streams (default {DEFAULT_MAX_REGISTERED})"),
                ),
                (
                    "--register-allow <rule>",
                    "with -R: back-end URLs that may be registered: peer (the registering address), an IP, a CIDR or a host name; repeatable (default peer)".into(),
                ),
            ],
        ),
        (
            "Multicast",
            vec![
                ("--backend-multicast", "ask the back ends for multicast first (else only when they refuse unicast or announce multicast)".into()),
                ("--multicast-range <cidr>", "serve multicast to clients that ask for it, groups from this IPv4 range (e.g. 239.255.42.0/24; default off)".into()),
                ("--multicast-ttl <n>", format!("TTL of multicast sent to clients, 1..255 (default {DEFAULT_MULTICAST_TTL})")),
                ("--multicast-port <port>", format!("even RTP port of a multicast stream's first track; track k gets port+2k (default {DEFAULT_MULTICAST_PORT})")),
            ],
        ),
        (
            "WebRTC (browsers watch with WHEP)",
            vec![
                (
                    "--webrtc-listen <addr:port>",
                    "serve WHEP (POST /<path>/whep) and a viewer page (/<path>/) to browsers on this HTTP address (default off)".into(),
                ),
                (
                    "--webrtc-udp <addr:port>",
                    format!("the one UDP port of every WebRTC session's media (default {})", crate::webrtc::DEFAULT_UDP),
                ),
                (
                    "--webrtc-candidate <ip>",
                    "announce this address as a host candidate too (the address a NAT or a Kubernetes service gives; repeatable)".into(),
                ),
                (
                    "--webrtc-https",
                    "serve the WebRTC port over HTTPS with the RTSPS certificate (--tls-cert, --tls-key)".into(),
                ),
                (
                    "--webrtc-max-viewers <n>",
                    format!("WebRTC viewers in all (default {})", crate::webrtc::DEFAULT_MAX_VIEWERS),
                ),
                (
                    "--webrtc-max-viewers-per-path <n>",
                    format!("WebRTC viewers of one path (default {})", crate::webrtc::DEFAULT_MAX_VIEWERS_PER_PATH),
                ),
            ],
        ),
        (
            "Logging and administration",
            vec![
                (
                    "--config <file>",
                    "TOML config file: server settings, named paths (options given here win; reloaded on SIGHUP and when it changes)".into(),
                ),
                (
                    "--drain-timeout <seconds>",
                    format!(
                        "on SIGTERM or SIGINT: not ready (/readyz), no new client, the playing ones go on this long, then TEARDOWN and exit; 0 stops at once, and so does a second signal (default {})",
                        secs(DEFAULT_DRAIN_TIMEOUT)
                    ),
                ),
                ("--log-format <text|json>", "log lines as text (default) or as one JSON object per line; the start-up banner stays text".into()),
                ("--admin <addr:port>", "serve Prometheus metrics (/metrics), a JSON status API (/v1/paths), a dashboard (/) and the probes /healthz and /readyz on this HTTP address; loopback unless a token is set".into()),
                ("--admin-token <token>", "admin requests but the probes (/healthz, /readyz) must carry \"Authorization: Bearer <token>\" (401 otherwise)".into()),
                ("--admin-token-file <path>", "the same, the token read from this file (its first line)".into()),
                ("--demo", format!("also serve a built-in test pattern as stream \"{DEMO_STREAM_NAME}\"")),
                ("-h, --help", "print this help".into()),
                ("--man", "print the manual page (roff) to stdout".into()),
                ("--version", "print the version".into()),
            ],
        ),
    ]
}

/// The usage text printed with a usage error: live555's synopsis line, then every
/// option with its long form, by topic.
#[must_use]
pub fn usage(program: &str) -> String {
    let mut text = format!("Usage: {}\n", synopsis(program));
    text.push_str("Options (before the URLs; values are separate arguments):\n");
    for (title, options) in option_groups() {
        if options.is_empty() {
            continue;
        }
        let _ = writeln!(text, " {title}:");
        for (names, help) in options {
            let _ = writeln!(text, "  {names:<34} {help}");
        }
    }
    text.push_str(
        "Streams are named <prefix> for one URL, <prefix>-1 ... <prefix>-N for several.\n",
    );
    let _ = writeln!(
        text,
        "Client subcommands: {} (see {program} register --help)",
        subcommand_synopsis(program)
    );
    let _ = writeln!(text, "The full manual: {program} --help");
    text
}

/// Parses the command line (`args` excludes the program name).
///
/// # Errors
///
/// A [`UsageError`] for anything live555ProxyServer would answer with its usage text,
/// and for the long options' own checks.
pub fn parse_args(program: &str, args: &[String]) -> Result<CliOutcome, UsageError> {
    if let Some(kind) = args
        .first()
        .and_then(|a| super::subcommand::Kind::from_word(a))
    {
        return match super::subcommand::parse(kind, &args[1..]) {
            Ok(super::subcommand::Parsed::Command(c)) => Ok(CliOutcome::Register(c)),
            Ok(super::subcommand::Parsed::Help(k)) => Ok(CliOutcome::RegisterHelp(k)),
            Err(e) => Err(UsageError {
                message: Some(e.message),
                program: program.to_owned(),
                subcommand: Some(e.kind),
            }),
        };
    }
    Parser::new(program, args, Config::default()).run()
}

/// Parses the command line on top of `base` (the config file's settings): every
/// option given replaces what `base` says (`-C`, `-U` add users).
///
/// # Errors
///
/// As [`parse_args`].
pub fn parse_args_onto(
    program: &str,
    args: &[String],
    base: Config,
) -> Result<CliOutcome, UsageError> {
    Parser::new(program, args, base).run()
}

/// Largest `--keyframe-cache`, in MiB.
const MAX_KEYFRAME_CACHE_MIB: usize = 256;

struct Parser<'a> {
    program: &'a str,
    args: &'a [String],
    /// Index of the next argument to read.
    pos: usize,
    config: Config,
    /// `-t` was given.
    tcp: bool,
    /// `-T <http-port>` was given.
    http_tunnel: Option<u16>,
    /// `-R` was given.
    register: bool,
    /// `-U` was given at least once.
    register_auth: bool,
    /// `--bind` addresses, in order, without duplicates.
    bind: Vec<IpAddr>,
    /// `--reconnect-max` was given.
    reconnect_max_explicit: bool,
    /// The `--tls-*` options as given.
    tls: TlsArgs,
    /// `--register-allow` entries, in order.
    register_allow: Vec<RegisterAllow>,
    /// `--trusted-proxy` entries (over the file's `trusted_proxies` if any).
    trusted_proxies: super::TrustedProxies,
    /// The first REGISTER-only long option given (`--max-registered`...), to say it
    /// needs `-R`.
    register_option: Option<String>,
    /// `--admin` and `--admin-token[-file]`: put on `config.admin` (over the
    /// file's `[admin]`) at the end.
    admin_listen: Option<std::net::SocketAddr>,
    admin_token: Option<String>,
    /// `--backend-multicast` was given.
    backend_multicast: bool,
    /// `--multicast-range` (network, prefix length), `--multicast-ttl` and
    /// `--multicast-port` as given.
    multicast_range: Option<(Ipv4Addr, u8)>,
    multicast_ttl: Option<u8>,
    multicast_port: Option<u16>,
}

/// The `--tls-*` options as given, checked together in [`Parser::finish_tls`].
#[derive(Default)]
struct TlsArgs {
    cert: Option<String>,
    key: Option<String>,
    port: Option<u16>,
    only: bool,
}

impl<'a> Parser<'a> {
    fn new(program: &'a str, args: &'a [String], base: Config) -> Self {
        let register = base.register;
        Parser {
            program,
            args,
            pos: 0,
            config: base,
            tcp: false,
            http_tunnel: None,
            register,
            register_auth: false,
            bind: Vec::new(),
            reconnect_max_explicit: false,
            tls: TlsArgs::default(),
            register_allow: Vec::new(),
            trusted_proxies: super::TrustedProxies::default(),
            register_option: None,
            admin_listen: None,
            admin_token: None,
            backend_multicast: false,
            multicast_range: None,
            multicast_ttl: None,
            multicast_port: None,
        }
    }

    fn run(mut self) -> Result<CliOutcome, UsageError> {
        while let Some(arg) = self.args.get(self.pos) {
            if !arg.starts_with('-') {
                break;
            }
            self.pos += 1;
            let outcome = match arg.strip_prefix("--") {
                Some(name) => self.long_option(arg, name)?,
                None => self.short_option(arg)?,
            };
            if let Some(outcome) = outcome {
                return Ok(outcome);
            }
        }
        self.finish()
    }

    /// One live555 option: only the second character counts.
    fn short_option(&mut self, arg: &str) -> Result<Option<CliOutcome>, UsageError> {
        match arg.chars().nth(1) {
            Some('v') => self.config.verbosity = 1,
            Some('V') => self.config.verbosity = 2,
            Some('t') => self.tcp = true,
            Some('T') => {
                self.http_tunnel = Some(self.port_value(arg, "an", "HTTP port number")?);
            }
            Some('p') => self.rtsp_port(arg)?,
            Some('u') => self.backend_credentials(arg)?,
            Some('U') => {
                let (username, password) = self.two_values(arg)?;
                self.register_auth = true;
                self.config
                    .register_users
                    .push(rtsp::auth::Credentials::new(username, password));
            }
            Some('R') => self.register = true,
            Some('D') => self.max_gap(arg)?,
            Some('e') => self.stream_prefix(arg)?,
            Some('C') => self.client_user(arg)?,
            Some('h') => return Ok(Some(CliOutcome::Help)),
            _ => return Err(self.error(format!("Unknown option \"{arg}\""))),
        }
        Ok(None)
    }

    /// A `--name` option.
    fn long_option(&mut self, arg: &str, name: &str) -> Result<Option<CliOutcome>, UsageError> {
        match name {
            "verbose" => self.config.verbosity = 1,
            "config" => {
                let path = self.checked_value(arg, "a TOML config file")?;
                self.config.config_file = Some(path.into());
            }
            "debug" | "verbose-rtsp" => self.config.verbosity = 2,
            "tcp" => self.tcp = true,
            "port" => self.rtsp_port(arg)?,
            "user" => self.backend_credentials(arg)?,
            "prefix" => self.stream_prefix(arg)?,
            "max-gap" => self.max_gap(arg)?,
            "demo" => self.config.demo = true,
            "client-user" => self.client_user(arg)?,
            "client-basic" => self.config.client_basic_in_clear = true,
            "sessions-from-any-address" => self.config.sessions_from_any_address = true,
            "max-connections-per-address" => {
                let text = self.checked_value(arg, "a number of connections")?;
                let max = crate::server::listener::MAX_CONNECTIONS;
                self.config.max_connections_per_address = value::digits(text)
                    .and_then(|d| d.parse::<usize>().ok())
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| {
                        self.error(format!(
                            "Invalid number \"{text}\" for {arg} (must be 1..{max})"
                        ))
                    })?;
            }
            "max-sessions-per-address" | "max-sessions-per-connection" => {
                let text = self.checked_value(arg, "a number of sessions")?;
                let n = value::digits(text)
                    .and_then(|d| d.parse::<usize>().ok())
                    .filter(|n| (1..=crate::server::client_sessions::MAX_SESSIONS).contains(n))
                    .ok_or_else(|| {
                        self.error(format!(
                            "Invalid number \"{text}\" for {arg} (must be 1..{})",
                            crate::server::client_sessions::MAX_SESSIONS
                        ))
                    })?;
                if name == "max-sessions-per-address" {
                    self.config.session_limits.per_address = n;
                } else {
                    self.config.session_limits.per_connection = n;
                }
            }
            "linger" => self.config.defaults.linger = self.duration(arg, true)?,
            "drain-timeout" => self.config.drain_timeout = self.duration(arg, true)?,
            "response-timeout" => {
                self.config.defaults.response_timeout = self.duration(arg, false)?
            }
            "udp-timeout" => self.config.defaults.udp_timeout = self.duration(arg, false)?,
            "reconnect-min" => self.config.defaults.reconnect_min = self.duration(arg, false)?,
            "keyframe-cache" => {
                let text = self.checked_value(arg, "a size in MiB")?;
                self.config.defaults.keyframe_cache_bytes = match text.parse::<usize>() {
                    Ok(mib) if mib <= MAX_KEYFRAME_CACHE_MIB => mib << 20,
                    _ => {
                        return Err(self.error(format!(
                            "Invalid size \"{text}\" for {arg} (must be a whole number of MiB, 0 to {MAX_KEYFRAME_CACHE_MIB})"
                        )))
                    }
                };
            }
            "reconnect-max" => {
                self.config.defaults.reconnect_max = self.duration(arg, false)?;
                self.reconnect_max_explicit = true;
            }
            "bind" => {
                let text = self.checked_value(arg, "an IP address")?;
                let address = value::ip_address(text).ok_or_else(|| {
                    self.error(format!("Invalid IP address \"{text}\" for {arg}"))
                })?;
                if !self.bind.contains(&address) {
                    self.bind.push(address);
                }
            }
            "http-port" => {
                let text = self.checked_value(arg, "a port number (0 turns it off)")?;
                self.config.http_port = match value::port_or_zero(text) {
                    Some(0) => HttpPort::Off,
                    Some(port) => HttpPort::Fixed(port),
                    None => {
                        return Err(self.error(format!(
                            "Invalid port number \"{text}\" for {arg} (must be 0..65535, 0 = none)"
                        )))
                    }
                };
            }
            "max-registered" => {
                let text = self.checked_value(arg, "a number of streams")?;
                self.config.max_registered = value::digits(text)
                    .and_then(|d| d.parse::<usize>().ok())
                    .filter(|&n| (1..=MAX_MAX_REGISTERED).contains(&n))
                    .ok_or_else(|| {
                        self.error(format!(
                            "Invalid number \"{text}\" for {arg} (must be 1..{MAX_MAX_REGISTERED})"
                        ))
                    })?;
                self.register_option.get_or_insert_with(|| arg.to_owned());
            }
            "register-allow" => {
                let text =
                    self.checked_value(arg, "peer, an IP address, a CIDR network or a host name")?;
                let rule = super::parse_register_allow(text).ok_or_else(|| {
                    self.error(format!(
                        "Invalid rule \"{text}\" for {arg} (must be peer, an IP address, a CIDR network such as 10.0.0.0/8, or a host name)"
                    ))
                })?;
                if !self.register_allow.contains(&rule) {
                    self.register_allow.push(rule);
                }
                self.register_option.get_or_insert_with(|| arg.to_owned());
            }
            "trusted-proxy" => {
                let text = self.checked_value(arg, "an IP address or a CIDR network")?;
                if super::value::ip_network(text)
                    .map(|(a, p)| self.trusted_proxies.insert(a, p))
                    .is_none()
                {
                    return Err(self.error(format!(
                        "Invalid address \"{text}\" for {arg} (must be an IP address or a CIDR network such as 10.0.0.0/8)"
                    )));
                }
            }
            "admin" | "admin-token" | "admin-token-file" => self.admin_option(arg, name)?,
            "backend-multicast" => self.backend_multicast = true,
            "multicast-range" | "multicast-ttl" | "multicast-port" => {
                self.multicast_option(arg, name)?
            }
            "log-format" => {
                let text = self.checked_value(arg, "a log format (text or json)")?;
                self.config.log_format = LogFormat::parse(text).ok_or_else(|| {
                    self.error(format!(
                        "Invalid log format \"{text}\" for {arg} (must be text or json)"
                    ))
                })?;
            }
            "help" => return Ok(Some(CliOutcome::Help)),
            "man" => return Ok(Some(CliOutcome::Man)),
            "version" => return Ok(Some(CliOutcome::Version)),
            "tls-cert"
            | "tls-key"
            | "tls-port"
            | "tls-only"
            | "backend-tls-ca"
            | "backend-tls-fingerprint"
            | "backend-tls-insecure" => self.tls_option(arg, name)?,
            "webrtc-listen"
            | "webrtc-udp"
            | "webrtc-candidate"
            | "webrtc-https"
            | "webrtc-max-viewers"
            | "webrtc-max-viewers-per-path" => self.webrtc_option(arg, name)?,
            _ => {
                let hint = match name.split_once('=') {
                    Some((option, value)) => {
                        format!(" (option values are separate arguments: --{option} {value})")
                    }
                    None => String::new(),
                };
                return Err(self.error(format!("Unknown option \"{arg}\"{hint}")));
            }
        }
        Ok(None)
    }

    /// After the options: the URLs, then the checks on option combinations.
    fn finish(mut self) -> Result<CliOutcome, UsageError> {
        self.finish_admin()?;
        self.finish_webrtc()?;
        let urls = self.args.get(self.pos..).unwrap_or_default();
        if urls.is_empty()
            && !self.register
            && !self.config.demo
            && self.config.config_file.is_none()
        {
            return Err(if self.args.is_empty() {
                UsageError {
                    message: None,
                    program: self.program.to_owned(),
                    subcommand: None,
                }
            } else {
                self.error(
                    "No back-end URL given (at least one rtsp:// or rtsps:// URL is needed)"
                        .to_owned(),
                )
            });
        }
        for url in urls {
            if !url.starts_with("rtsp://") && !url.starts_with("rtsps://") {
                let hint = if url.starts_with('-') {
                    " (options must come before the URLs)"
                } else {
                    ""
                };
                return Err(
                    self.error(format!("\"{url}\" is not an rtsp:// or rtsps:// URL{hint}"))
                );
            }
        }
        if self.http_tunnel.is_some() {
            if let Some(url) = urls.iter().find(|u| u.starts_with("rtsps://")) {
                return Err(self.error(format!(
                    "\"{}\": rtsps:// back ends cannot be reached through an HTTP tunnel (-T): RTSP over TLS is not tunnelled",
                    rtsp::url::redact(url)
                )));
            }
        }
        if self.register_auth && !self.register {
            return Err(self.error(REGISTER_AUTH_WITHOUT_REGISTER.to_owned()));
        }
        if let (Some(option), false) = (&self.register_option, self.register) {
            return Err(self.error(format!("The {option} option can be used only with -R")));
        }
        if self.tcp && self.http_tunnel.is_some() {
            return Err(self.error(TCP_AND_HTTP_TUNNEL.to_owned()));
        }
        self.finish_tls()?;

        if self.config.defaults.reconnect_max < self.config.defaults.reconnect_min {
            if self.reconnect_max_explicit {
                return Err(self.error(format!(
                    "--reconnect-max ({} s) must not be less than --reconnect-min ({} s)",
                    self.config.defaults.reconnect_max.as_secs_f64(),
                    self.config.defaults.reconnect_min.as_secs_f64()
                )));
            }
            self.config.defaults.reconnect_max = self.config.defaults.reconnect_min;
        }
        if (self.tcp || self.http_tunnel.is_some()) && self.backend_multicast {
            return Err(self.error(
                "-t or -T (media over TCP) and --backend-multicast cannot be combined".to_owned(),
            ));
        }
        // -T forces interleaved media (inside the tunnel), as in live555; a
        // tunnel of `[defaults]` stays one under -t or --backend-multicast.
        let transport = &mut self.config.defaults.transport;
        let tunnelled = matches!(transport, PathTransport::Http { .. });
        if let Some(port) = self.http_tunnel {
            *transport = PathTransport::Http { port };
        } else if self.tcp && !tunnelled {
            *transport = PathTransport::Tcp;
        }
        if self.backend_multicast && !tunnelled {
            *transport = PathTransport::Multicast;
        }
        match self.multicast_range {
            Some((network, prefix_len)) => {
                self.config.multicast = Some(MulticastConfig {
                    network,
                    prefix_len,
                    ttl: self.multicast_ttl.unwrap_or(DEFAULT_MULTICAST_TTL),
                    port: self.multicast_port.unwrap_or(DEFAULT_MULTICAST_PORT),
                });
            }
            None => {
                let orphan = match (self.multicast_ttl, self.multicast_port) {
                    (Some(_), _) => Some("--multicast-ttl"),
                    (None, Some(_)) => Some("--multicast-port"),
                    (None, None) => None,
                };
                if let Some(arg) = orphan {
                    return Err(self.error(format!("{arg} needs --multicast-range")));
                }
            }
        }
        if !self.bind.is_empty() {
            self.config.bind_addresses = std::mem::take(&mut self.bind);
        }
        self.config.register = self.register;
        if !self.trusted_proxies.is_empty() {
            self.config.trusted_proxies = std::mem::take(&mut self.trusted_proxies);
        }
        if !self.register_allow.is_empty() {
            self.config.register_allow = std::mem::take(&mut self.register_allow);
        }
        self.config.urls = urls.to_vec();
        if self.config.demo
            && self
                .config
                .stream_names()
                .iter()
                .any(|name| name == DEMO_STREAM_NAME)
        {
            return Err(self.error(format!(
                "The stream name \"{DEMO_STREAM_NAME}\" is used by --demo; choose another prefix with -e"
            )));
        }
        Ok(CliOutcome::Run(self.config))
    }

    /// `--admin` and `--admin-token` over the config file's `[admin]`: the
    /// command line's address and token win; a token alone needs an address
    /// from somewhere.
    fn finish_admin(&mut self) -> Result<(), UsageError> {
        if let Some(listen) = self.admin_listen.take() {
            let token = self.config.admin.take().and_then(|a| a.token);
            self.config.admin = Some(super::AdminConfig { listen, token });
        }
        if let Some(token) = self.admin_token.take() {
            match &mut self.config.admin {
                Some(a) => a.token = Some(token),
                None => {
                    return Err(self.error(
                        "--admin-token and --admin-token-file need --admin <addr:port> (or [admin] listen in the config file)".to_owned(),
                    ))
                }
            }
        }
        Ok(())
    }

    /// An admin token: not empty, printable ASCII without spaces (it goes in an
    /// HTTP header).
    fn admin_token_value(&self, arg: &str, token: &str) -> Result<String, UsageError> {
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(self.error(format!(
                "The {arg} token must be printable ASCII without spaces, and not empty"
            )));
        }
        Ok(token.to_owned())
    }

    /// `--admin`, `--admin-token`, `--admin-token-file` (the last arm).
    fn admin_option(&mut self, arg: &str, name: &str) -> Result<(), UsageError> {
        match name {
            "admin" => {
                let text = self.checked_value(arg, "an address and port (127.0.0.1:9090)")?;
                let addr = text.parse::<std::net::SocketAddr>().map_err(|_| {
                self.error(format!(
                    "Invalid address \"{text}\" for {arg} (must be an IP address and a port, such as 127.0.0.1:9090 or [::1]:9090)"
                ))
            })?;
                self.admin_listen = Some(addr);
            }
            "admin-token" => {
                let text = self.checked_value(arg, "a token")?.to_owned();
                self.admin_token = Some(self.admin_token_value(arg, &text)?);
            }
            _ => {
                let path = self
                    .checked_value(arg, "a file holding the token")?
                    .to_owned();
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| self.error(format!("Cannot read {arg} \"{path}\": {e}")))?;
                let first = text.lines().next().unwrap_or("").trim().to_owned();
                self.admin_token = Some(self.admin_token_value(arg, &first)?);
            }
        }
        Ok(())
    }

    /// `--multicast-range`, `--multicast-ttl`, `--multicast-port` (the last arm).
    fn multicast_option(&mut self, arg: &str, name: &str) -> Result<(), UsageError> {
        match name {
            "multicast-range" => {
                let text =
                    self.checked_value(arg, "an IPv4 multicast range such as 239.255.42.0/24")?;
                let range = value::multicast_range(text).ok_or_else(|| {
                self.error(format!(
                    "Invalid multicast range \"{text}\" for {arg} (must be an IPv4 address/prefix inside 224.0.0.0/4, outside 224.0.0.0/24)"
                ))
            })?;
                self.multicast_range = Some(range);
            }
            "multicast-ttl" => {
                let text = self.checked_value(arg, "a TTL (1..255)")?;
                let ttl = text
                    .parse::<u8>()
                    .ok()
                    .filter(|t| *t > 0 && text.bytes().all(|b| b.is_ascii_digit()));
                let ttl = ttl.ok_or_else(|| {
                    self.error(format!("Invalid TTL \"{text}\" for {arg} (must be 1..255)"))
                })?;
                self.multicast_ttl = Some(ttl);
            }
            _ => {
                let text = self.checked_value(arg, "an even port number (2..65534)")?;
                let port = value::port(text).filter(|p| p % 2 == 0 && *p < u16::MAX);
                let port = port.ok_or_else(|| {
                    self.error(format!(
                        "Invalid port \"{text}\" for {arg} (must be even, 2..65534)"
                    ))
                })?;
                self.multicast_port = Some(port);
            }
        }
        Ok(())
    }

    /// One `--tls-*` or `--backend-tls-*` option.
    /// The `--webrtc-*` options. `--webrtc-listen` turns WebRTC on; the others
    /// need it (or `[webrtc]` in the config file), checked when the config is
    /// built (`finish_webrtc`).
    fn webrtc_option(&mut self, arg: &str, name: &str) -> Result<(), UsageError> {
        let addr = |this: &Self, text: &str| {
            text.parse::<std::net::SocketAddr>().map_err(|_| {
                this.error(format!(
                    "Invalid address \"{text}\" for {arg} (must be an IP address and a port, such as 0.0.0.0:8889)"
                ))
            })
        };
        let count = |this: &Self, text: &str| {
            value::digits(text)
                .and_then(|d| d.parse::<usize>().ok())
                .filter(|n| (1..=100_000).contains(n))
                .ok_or_else(|| {
                    this.error(format!(
                        "Invalid number \"{text}\" for {arg} (must be 1..100000)"
                    ))
                })
        };
        match name {
            "webrtc-listen" => {
                let text = self.checked_value(arg, "an address and port (0.0.0.0:8889)")?;
                let listen = addr(self, text)?;
                self.webrtc_config().listen = Some(listen);
            }
            "webrtc-udp" => {
                let text = self.checked_value(arg, "an address and port (0.0.0.0:8189)")?;
                let udp = addr(self, text)?;
                self.webrtc_config().udp = udp;
            }
            "webrtc-candidate" => {
                let text = self.checked_value(arg, "an IP address")?;
                let ip = text
                    .parse::<IpAddr>()
                    .ok()
                    .filter(|ip| !ip.is_unspecified() && !ip.is_multicast())
                    .ok_or_else(|| {
                        self.error(format!(
                            "Invalid address \"{text}\" for {arg} (must be a unicast IP address)"
                        ))
                    })?;
                let w = self.webrtc_config();
                if !w.candidates.contains(&ip) {
                    w.candidates.push(ip);
                }
            }
            "webrtc-https" => self.webrtc_config().https = true,
            "webrtc-max-viewers" => {
                let text = self.checked_value(arg, "a number of viewers")?;
                let n = count(self, text)?;
                self.webrtc_config().max_viewers = n;
            }
            _ => {
                let text = self.checked_value(arg, "a number of viewers")?;
                let n = count(self, text)?;
                self.webrtc_config().max_viewers_per_path = n;
            }
        }
        Ok(())
    }

    fn webrtc_config(&mut self) -> &mut crate::webrtc::WebRtcConfig {
        self.config
            .webrtc
            .get_or_insert_with(crate::webrtc::WebRtcConfig::off)
    }

    /// WebRTC options without a listen address (`--webrtc-listen` or the file's
    /// `[webrtc] listen`) would do nothing: refused.
    fn finish_webrtc(&mut self) -> Result<(), UsageError> {
        if self
            .config
            .webrtc
            .as_ref()
            .is_some_and(|w| w.listen.is_none())
        {
            return Err(self.error(
                "--webrtc-udp, --webrtc-candidate, --webrtc-https and --webrtc-max-viewers* need --webrtc-listen <addr:port> (or [webrtc] listen in the config file)".to_owned(),
            ));
        }
        Ok(())
    }

    fn tls_option(&mut self, arg: &str, name: &str) -> Result<(), UsageError> {
        match name {
            "tls-cert" => {
                self.tls.cert = Some(
                    self.checked_value(arg, "a PEM certificate file")?
                        .to_owned(),
                )
            }
            "tls-key" => {
                self.tls.key = Some(
                    self.checked_value(arg, "a PEM private key file")?
                        .to_owned(),
                )
            }
            "tls-port" => self.tls.port = Some(self.port_value(arg, "a", "port number")?),
            "tls-only" => self.tls.only = true,
            "backend-tls-ca" => {
                let path = self.checked_value(arg, "a PEM file of CA certificates")?;
                self.config.defaults.backend_tls.ca_file = Some(path.into());
            }
            "backend-tls-fingerprint" => {
                let text = self.checked_value(arg, "a SHA-256 fingerprint")?;
                let fp = crate::tls::Fingerprint::parse(text).map_err(|e| {
                    self.error(format!("Invalid fingerprint \"{text}\" for {arg}: {e}"))
                })?;
                if !self.config.defaults.backend_tls.fingerprints.contains(&fp) {
                    self.config.defaults.backend_tls.fingerprints.push(fp);
                }
            }
            _ => self.config.defaults.backend_tls.insecure = true,
        }
        Ok(())
    }

    /// The TLS options' combinations.
    fn finish_tls(&mut self) -> Result<(), UsageError> {
        let tls = std::mem::take(&mut self.tls);
        let trust = &self.config.defaults.backend_tls;
        if trust.insecure && (trust.ca_file.is_some() || !trust.fingerprints.is_empty()) {
            return Err(self.error(
                "--backend-tls-insecure accepts any certificate: it cannot be combined with --backend-tls-ca or --backend-tls-fingerprint".to_owned(),
            ));
        }
        let (cert, key) = match (tls.cert, tls.key) {
            (Some(cert), Some(key)) => (cert, key),
            (None, None) => {
                let given = [(tls.only, "--tls-only"), (tls.port.is_some(), "--tls-port")];
                if let Some((_, option)) = given.iter().find(|(on, _)| *on) {
                    return Err(self.error(format!("{option} needs --tls-cert and --tls-key")));
                }
                return Ok(());
            }
            _ => {
                return Err(self.error(
                    "--tls-cert and --tls-key go together (a PEM certificate chain and its private key)".to_owned(),
                ))
            }
        };
        let port = tls.port.unwrap_or(DEFAULT_TLS_PORT);
        if !tls.only && port == self.config.rtsp_port {
            return Err(self.error(format!(
                "--tls-port {port} is the RTSP port too; choose another one (or --tls-only)"
            )));
        }
        self.config.tls = Some(ServerTls {
            cert: cert.into(),
            key: key.into(),
            port,
            only: tls.only,
        });
        Ok(())
    }

    fn rtsp_port(&mut self, arg: &str) -> Result<(), UsageError> {
        self.config.rtsp_port = self.port_value(arg, "a", "port number")?;
        self.config.rtsp_port_explicit = true;
        Ok(())
    }

    fn backend_credentials(&mut self, arg: &str) -> Result<(), UsageError> {
        let (username, password) = self.two_values(arg)?;
        self.config.defaults.credentials = Some(rtsp::auth::Credentials {
            username: username.to_owned(),
            password: password.to_owned(),
        });
        Ok(())
    }

    /// `-C`/`--client-user`: one more user clients may log in as (a repeated user
    /// name takes the later password).
    fn client_user(&mut self, arg: &str) -> Result<(), UsageError> {
        let (username, password) = self.two_values(arg)?;
        if username.is_empty() || username.contains(':') || username.chars().any(char::is_control) {
            return Err(self.error(format!(
                "Invalid user name \"{username}\" for {arg} (must be non-empty, without ':' or control characters)"
            )));
        }
        let users = &mut self.config.client_users;
        users.retain(|u| u.username != username);
        users.push(rtsp::auth::Credentials::new(username, password));
        Ok(())
    }

    fn max_gap(&mut self, arg: &str) -> Result<(), UsageError> {
        let text = self.checked_value(arg, "a number of seconds (0 turns the check off)")?;
        let secs = value::whole_seconds(text).ok_or_else(|| {
            self.error(format!(
                "Invalid number of seconds \"{text}\" for {arg} (must be a whole number, 0 = off)"
            ))
        })?;
        self.config.defaults.max_gap = (secs > 0).then(|| Duration::from_secs(u64::from(secs)));
        Ok(())
    }

    fn stream_prefix(&mut self, arg: &str) -> Result<(), UsageError> {
        let prefix = self
            .next_value()
            .ok_or_else(|| self.error(format!("The {arg} option needs a stream-name prefix")))?;
        let length = prefix.chars().count();
        if length == 0 || length > MAX_STREAM_PREFIX_CHARS {
            return Err(self.error(INVALID_STREAM_PREFIX.to_owned()));
        }
        if prefix.chars().any(char::is_control) {
            return Err(self.error(
                "Invalid stream-name prefix (must not contain control characters)".to_owned(),
            ));
        }
        prefix.clone_into(&mut self.config.stream_prefix);
        Ok(())
    }

    /// The value of `-p`/`-T`/`--port`: present, not starting with `-`, 1..=65535.
    fn port_value(&mut self, arg: &str, article: &str, noun: &str) -> Result<u16, UsageError> {
        let text = self.checked_value(arg, &format!("{article} {noun} (1..65535)"))?;
        value::port(text).ok_or_else(|| {
            self.error(format!(
                "Invalid {noun} \"{text}\" for {arg} (must be 1..65535)"
            ))
        })
    }

    /// The value of a timing option, in seconds.
    fn duration(&mut self, arg: &str, zero_allowed: bool) -> Result<Duration, UsageError> {
        let text = self.checked_value(arg, "a number of seconds")?;
        let limit = value::MAX_DURATION_SECS;
        value::seconds(text).filter(|d| zero_allowed || !d.is_zero()).ok_or_else(|| {
            let range = if zero_allowed { "0 or more" } else { "more than 0" };
            self.error(format!("Invalid number of seconds \"{text}\" for {arg} (must be {range} and at most {limit})"))
        })
    }

    /// The next argument as the value of `arg`, with live555's `-p` rule: it must exist
    /// and must not start with `-`.
    fn checked_value(&mut self, arg: &str, what: &str) -> Result<&'a str, UsageError> {
        match self.args.get(self.pos) {
            Some(text) if !text.starts_with('-') => {
                self.pos += 1;
                Ok(text)
            }
            _ => Err(self.error(format!("The {arg} option needs {what}"))),
        }
    }

    /// The next two arguments, taken as they are (`-u`, `-U`, `-C`, `--user`).
    fn two_values(&mut self, arg: &str) -> Result<(&'a str, &'a str), UsageError> {
        match (self.args.get(self.pos), self.args.get(self.pos + 1)) {
            (Some(first), Some(second)) => {
                self.pos += 2;
                Ok((first, second))
            }
            _ => Err(self.error(format!(
                "The {arg} option needs two arguments: <username> <password>"
            ))),
        }
    }

    /// The next argument, taken as it is.
    fn next_value(&mut self) -> Option<&'a str> {
        let text = self.args.get(self.pos)?;
        self.pos += 1;
        Some(text)
    }

    fn error(&self, message: String) -> UsageError {
        UsageError {
            message: Some(message),
            program: self.program.to_owned(),
            subcommand: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const URL: &str = "rtsp://127.0.0.1:554/test.264";

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn run(list: &[&str]) -> Config {
        match parse_args("rtsp-proxy", &args(list)) {
            Ok(CliOutcome::Run(config)) => config,
            other => panic!("{list:?}: expected a configuration, got {other:?}"),
        }
    }

    /// The error's message (`None` for a bare usage error).
    fn fail(list: &[&str]) -> Option<String> {
        match parse_args("rtsp-proxy", &args(list)) {
            Err(error) => error.message,
            Ok(outcome) => panic!("{list:?}: expected a usage error, got {outcome:?}"),
        }
    }

    fn fail_message(list: &[&str]) -> String {
        fail(list).unwrap_or_else(|| panic!("{list:?}: expected a message"))
    }

    #[test]
    fn trusted_proxies() {
        assert!(run(&[URL]).trusted_proxies.is_empty(), "none by default");
        let c = run(&[
            "--trusted-proxy",
            "10.0.0.5",
            "--trusted-proxy",
            "192.168.0.0/16",
            "--trusted-proxy",
            "[fd00::1]",
            URL,
        ]);
        for trusted in ["10.0.0.5", "192.168.7.8", "fd00::1", "::ffff:10.0.0.5"] {
            assert!(
                c.trusted_proxies.contains(trusted.parse().unwrap()),
                "{trusted}"
            );
        }
        for other in ["10.0.0.6", "192.169.0.1", "fd00::2"] {
            assert!(
                !c.trusted_proxies.contains(other.parse().unwrap()),
                "{other}"
            );
        }
        for bad in ["10.0.0.0/33", "lb.local", "10.0.0.0/", "::1/129"] {
            assert!(
                fail_message(&["--trusted-proxy", bad, URL])
                    .starts_with(&format!("Invalid address \"{bad}\" for --trusted-proxy")),
                "{bad}"
            );
        }
    }

    #[test]
    fn webrtc_options() {
        assert!(run(&[URL]).webrtc.is_none());
        let w = run(&[
            "--webrtc-candidate",
            "203.0.113.7",
            "--webrtc-listen",
            "0.0.0.0:8889",
            "--webrtc-max-viewers",
            "20",
            URL,
        ])
        .webrtc
        .expect("webrtc");
        assert_eq!(w.listen, Some("0.0.0.0:8889".parse().unwrap()));
        assert_eq!(w.udp, crate::webrtc::DEFAULT_UDP.parse().unwrap());
        assert_eq!(w.candidates, vec!["203.0.113.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(w.max_viewers, 20);
        assert!(!w.https);
        let w = run(&["--webrtc-listen", "0.0.0.0:8889", "--webrtc-https", URL]).webrtc;
        assert!(w.expect("webrtc").https);
        assert!(fail_message(&["--webrtc-udp", "0.0.0.0:1", URL]).contains("need --webrtc-listen"));
        assert!(fail_message(&["--webrtc-listen", "x", URL]).contains("Invalid address"));
        assert!(fail_message(&[
            "--webrtc-listen",
            "0.0.0.0:1",
            "--webrtc-candidate",
            "0.0.0.0",
            URL
        ])
        .contains("unicast"));
        assert!(fail_message(&[
            "--webrtc-listen",
            "0.0.0.0:1",
            "--webrtc-max-viewers",
            "0",
            URL
        ])
        .contains("1..100000"));
    }

    #[test]
    fn admin_options() {
        let config = run(&[URL]);
        assert!(config.admin.is_none());
        let config = run(&["--admin-token", "s3cret", "--admin", "127.0.0.1:9090", URL]);
        let admin = config.admin.expect("admin");
        assert_eq!(admin.listen, "127.0.0.1:9090".parse().unwrap());
        assert_eq!(admin.token.as_deref(), Some("s3cret"));
        let config = run(&["--admin", "[::1]:9090", URL]);
        let admin = config.admin.expect("admin");
        assert_eq!(
            (admin.listen, admin.token),
            ("[::1]:9090".parse().unwrap(), None)
        );
        assert!(fail_message(&["--admin-token", "x", URL]).contains("need --admin"));
        let dir = std::env::temp_dir().join(format!("rtsp-proxy-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let path = file.to_str().unwrap();
        let config = run(&["--admin", "127.0.0.1:1", "--admin-token-file", path, URL]);
        assert_eq!(config.admin.unwrap().token.as_deref(), Some("from-file"));
        std::fs::write(&file, "\n").unwrap();
        assert!(
            fail_message(&["--admin-token-file", path, URL]).contains("not be empty")
                || fail_message(&["--admin-token-file", path, URL]).contains("not empty")
        );
        let _ = std::fs::remove_dir_all(&dir);
        assert!(fail_message(&["--admin", "localhost", URL]).contains("Invalid address"));
        assert!(fail_message(&["--admin"]).contains("needs an address"));
        assert!(fail_message(&["--admin-token", "a b", URL]).contains("printable ASCII"));
        assert!(
            fail_message(&["--admin-token-file", "/nonexistent/t", URL]).contains("Cannot read")
        );
    }

    #[test]
    fn one_url_with_defaults() {
        let config = run(&[URL]);
        assert_eq!(config.urls, [URL]);
        assert_eq!(config.stream_names(), ["proxyStream"]);
        assert_eq!(config.rtsp_port, 554);
        assert!(!config.rtsp_port_explicit);
        assert_eq!(config.verbosity, 0);
        assert_eq!(config.defaults.transport, PathTransport::Auto);
        assert_eq!(config.defaults.max_gap, Some(Duration::from_secs(10)));
        assert!(!config.demo);
    }

    #[test]
    fn all_live555_options() {
        let config = run(&[
            "-V",
            "-t",
            "-p",
            "9554",
            "-u",
            "admin",
            "p@ss word",
            "-D",
            "5",
            "-e",
            "cams/front",
            URL,
            "rtsp://cam/x",
        ]);
        assert_eq!(config.verbosity, 2);
        assert_eq!(config.defaults.transport, PathTransport::Tcp);
        assert_eq!(config.rtsp_port, 9554);
        assert!(config.rtsp_port_explicit);
        let credentials = config.defaults.credentials.as_ref().expect("credentials");
        assert_eq!(
            (credentials.username.as_str(), credentials.password.as_str()),
            ("admin", "p@ss word")
        );
        assert_eq!(config.defaults.max_gap, Some(Duration::from_secs(5)));
        assert_eq!(config.urls, [URL, "rtsp://cam/x"]);
        assert_eq!(config.stream_names(), ["cams/front-1", "cams/front-2"]);
    }

    #[test]
    fn only_the_second_character_counts() {
        assert_eq!(run(&["-verbose", URL]).verbosity, 1);
        assert_eq!(run(&["-Very", URL]).verbosity, 2);
        assert_eq!(run(&["-tcp", URL]).defaults.transport, PathTransport::Tcp);
        assert_eq!(run(&["-port", "8554", URL]).rtsp_port, 8554);
        assert_eq!(run(&["-Dx", "0", URL]).defaults.max_gap, None);
        assert_eq!(run(&["-east", "x", URL]).stream_prefix, "x");
    }

    #[test]
    fn last_repeated_option_wins() {
        assert_eq!(run(&["-v", "-V", URL]).verbosity, 2);
        assert_eq!(run(&["-V", "-v", URL]).verbosity, 1);
        assert_eq!(run(&["-p", "1000", "-p", "2000", URL]).rtsp_port, 2000);
        assert_eq!(run(&["-e", "a", "-e", "b", URL]).stream_prefix, "b");
        let config = run(&["-u", "a", "1", "-u", "b", "2", URL]);
        assert_eq!(
            config.defaults.credentials.map(|c| c.username),
            Some("b".to_owned())
        );
        assert_eq!(
            run(&["-D", "0", "-D", "7", URL]).defaults.max_gap,
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn port_values() {
        assert_eq!(run(&["-p", "1", URL]).rtsp_port, 1);
        assert_eq!(run(&["-p", "65535", URL]).rtsp_port, 65535);
        for bad in ["0", "65536", "abc", "9554abc", "+9554", ""] {
            let message = fail_message(&["-p", bad, URL]);
            assert_eq!(
                message,
                format!("Invalid port number \"{bad}\" for -p (must be 1..65535)"),
                "{bad:?}"
            );
        }
        assert_eq!(
            fail_message(&["-p"]),
            "The -p option needs a port number (1..65535)"
        );
        assert_eq!(
            fail_message(&["-p", "-v", URL]),
            "The -p option needs a port number (1..65535)"
        );
        assert_eq!(
            fail_message(&["-p", "-1", URL]),
            "The -p option needs a port number (1..65535)"
        );
    }

    #[test]
    fn glued_values_are_not_accepted() {
        // "-p9554" is "-p" whose value would be the URL.
        assert_eq!(
            fail_message(&["-p9554", URL]),
            format!("Invalid port number \"{URL}\" for -p9554 (must be 1..65535)")
        );
        assert_eq!(
            fail_message(&["-p9554"]),
            "The -p9554 option needs a port number (1..65535)"
        );
        assert!(fail_message(&["-D10", URL]).starts_with("Invalid number of seconds"));
    }

    #[test]
    fn max_gap_values() {
        assert_eq!(run(&["-D", "0", URL]).defaults.max_gap, None);
        assert_eq!(
            run(&["-D", "4294967295", URL]).defaults.max_gap,
            Some(Duration::from_secs(u64::from(u32::MAX)))
        );
        for bad in ["4294967296", "1.5", "x", "+1"] {
            assert!(fail_message(&["-D", bad, URL])
                .starts_with(&format!("Invalid number of seconds \"{bad}\" for -D")));
        }
        assert_eq!(
            fail_message(&["-D", "-5", URL]),
            "The -D option needs a number of seconds (0 turns the check off)"
        );
        assert_eq!(
            fail_message(&["-D"]),
            "The -D option needs a number of seconds (0 turns the check off)"
        );
    }

    #[test]
    fn two_value_options_take_arguments_as_they_are() {
        let config = run(&["-u", "-weird", "-p", URL]);
        let credentials = config.defaults.credentials.expect("credentials");
        assert_eq!(
            (credentials.username.as_str(), credentials.password.as_str()),
            ("-weird", "-p")
        );
        assert_eq!(config.rtsp_port, 554);
        let empty = run(&["-u", "", "", URL])
            .defaults
            .credentials
            .expect("credentials");
        assert_eq!((empty.username.as_str(), empty.password.as_str()), ("", ""));
        for option in ["-u", "-U", "-C", "--user"] {
            let expected =
                format!("The {option} option needs two arguments: <username> <password>");
            assert_eq!(fail_message(&[option, "only-one"]), expected);
            assert_eq!(fail_message(&[option]), expected);
        }
    }

    #[test]
    fn stream_prefix_rules() {
        let fifty = "x".repeat(50);
        assert_eq!(run(&["-e", &fifty, URL]).stream_prefix, fifty);
        assert_eq!(
            run(&["-e", "é".repeat(50).as_str(), URL])
                .stream_prefix
                .chars()
                .count(),
            50
        );
        assert_eq!(run(&["-e", "-dash", URL]).stream_prefix, "-dash");
        assert_eq!(fail_message(&["-e", "", URL]), INVALID_STREAM_PREFIX);
        assert_eq!(
            fail_message(&["-e", &"x".repeat(51), URL]),
            INVALID_STREAM_PREFIX
        );
        assert_eq!(fail_message(&["--prefix", "", URL]), INVALID_STREAM_PREFIX);
        assert_eq!(
            fail_message(&["-e"]),
            "The -e option needs a stream-name prefix"
        );
        assert_eq!(
            fail_message(&["-e", "a\nb", URL]),
            "Invalid stream-name prefix (must not contain control characters)"
        );
        let config = run(&["-e", "cams/front", URL]);
        assert_eq!(config.stream_names(), ["cams/front"]);
    }

    #[test]
    fn stream_names_for_one_two_three_urls() {
        assert_eq!(run(&[URL]).stream_names(), ["proxyStream"]);
        assert_eq!(
            run(&[URL, URL]).stream_names(),
            ["proxyStream-1", "proxyStream-2"]
        );
        assert_eq!(
            run(&[URL, URL, URL]).stream_names(),
            ["proxyStream-1", "proxyStream-2", "proxyStream-3"]
        );
    }

    #[test]
    fn keyframe_cache_size() {
        assert_eq!(run(&[URL]).defaults.keyframe_cache_bytes, 4 << 20);
        assert_eq!(
            run(&["--keyframe-cache", "16", URL])
                .defaults
                .keyframe_cache_bytes,
            16 << 20
        );
        assert_eq!(
            run(&["--keyframe-cache", "0", URL])
                .defaults
                .keyframe_cache_bytes,
            0
        );
        for bad in ["257", "-1", "1.5", "lots"] {
            let msg = fail_message(&["--keyframe-cache", bad, URL]);
            if bad.starts_with('-') {
                assert_eq!(msg, "The --keyframe-cache option needs a size in MiB");
            } else {
                assert_eq!(
                    msg,
                    format!("Invalid size \"{bad}\" for --keyframe-cache (must be a whole number of MiB, 0 to 256)")
                );
            }
        }
    }

    #[test]
    fn multicast_options() {
        assert_eq!(run(&[URL]).multicast, None);
        let m = run(&["--multicast-range", "239.255.42.0/24", URL])
            .multicast
            .unwrap();
        assert_eq!(
            (m.network, m.prefix_len, m.ttl, m.port),
            (Ipv4Addr::new(239, 255, 42, 0), 24, 16, 20000)
        );
        let m = run(&[
            "--multicast-ttl",
            "1",
            "--multicast-port",
            "30000",
            "--multicast-range",
            "232.1.2.3/32",
            URL,
        ])
        .multicast
        .unwrap();
        assert_eq!(
            (m.network, m.prefix_len, m.ttl, m.port),
            (Ipv4Addr::new(232, 1, 2, 3), 32, 1, 30000)
        );
        // Host bits are cleared.
        let m = run(&["--multicast-range", "239.255.42.77/24", URL])
            .multicast
            .unwrap();
        assert_eq!(m.network, Ipv4Addr::new(239, 255, 42, 0));
        for bad in [
            "10.0.0.0/8",
            "239.255.42.0",
            "239.255.42.0/33",
            "224.0.0.0/24",
            "224.0.0.0/3",
            "x/24",
            "239.255.42.0/",
            "::/0",
            "239.255.42.0/-1",
        ] {
            let msg = fail_message(&["--multicast-range", bad, URL]);
            assert!(
                msg.starts_with(&format!("Invalid multicast range \"{bad}\"")),
                "{bad}: {msg}"
            );
        }
        for bad in ["0", "256", "x", "+5"] {
            let msg = fail_message(&[
                "--multicast-range",
                "239.1.0.0/16",
                "--multicast-ttl",
                bad,
                URL,
            ]);
            assert_eq!(
                msg,
                format!("Invalid TTL \"{bad}\" for --multicast-ttl (must be 1..255)")
            );
        }
        for bad in ["0", "20001", "65536", "65535", "p"] {
            let msg = fail_message(&[
                "--multicast-range",
                "239.1.0.0/16",
                "--multicast-port",
                bad,
                URL,
            ]);
            assert_eq!(
                msg,
                format!("Invalid port \"{bad}\" for --multicast-port (must be even, 2..65534)")
            );
        }
        assert_eq!(
            fail_message(&["--multicast-ttl", "4", URL]),
            "--multicast-ttl needs --multicast-range"
        );
        assert_eq!(
            fail_message(&["--multicast-port", "4000", URL]),
            "--multicast-port needs --multicast-range"
        );
        assert_eq!(
            fail_message(&["--multicast-range", "-t", URL]),
            "The --multicast-range option needs an IPv4 multicast range such as 239.255.42.0/24"
        );
    }

    #[test]
    fn backend_multicast() {
        assert_eq!(
            run(&["--backend-multicast", URL]).defaults.transport,
            PathTransport::Multicast
        );
        assert_eq!(
            fail_message(&["--backend-multicast", "-t", URL]),
            "-t or -T (media over TCP) and --backend-multicast cannot be combined"
        );
    }

    #[test]
    fn url_rules() {
        assert_eq!(
            run(&["rtsps://user:secret@host/a"]).urls,
            ["rtsps://user:secret@host/a"]
        );
        assert_eq!(run(&[URL, "rtsps://host/b"]).urls, [URL, "rtsps://host/b"]);
        for bad in [
            "RTSP://host/a",
            "http://host/a",
            "rtsp:/host",
            "host",
            "",
            " rtsp://host",
        ] {
            assert_eq!(
                fail_message(&[bad]),
                format!("\"{bad}\" is not an rtsp:// or rtsps:// URL"),
                "{bad:?}"
            );
        }
        assert_eq!(
            fail_message(&[URL, "garbage"]),
            "\"garbage\" is not an rtsp:// or rtsps:// URL"
        );
    }

    #[test]
    fn options_after_urls_are_rejected() {
        assert_eq!(
            fail_message(&[URL, "-v"]),
            "\"-v\" is not an rtsp:// or rtsps:// URL (options must come before the URLs)"
        );
        assert_eq!(
            fail_message(&["-v", URL, "-p", "9554"]),
            "\"-p\" is not an rtsp:// or rtsps:// URL (options must come before the URLs)"
        );
        // A non-option stops option parsing, so a later "--help" is a bad URL, not help.
        assert!(fail_message(&[URL, "--help"]).contains("options must come before the URLs"));
    }

    #[test]
    fn a_url_is_required() {
        assert_eq!(fail(&[]), None, "no arguments: bare usage, like live555");
        assert_eq!(
            fail_message(&["-v"]),
            "No back-end URL given (at least one rtsp:// or rtsps:// URL is needed)"
        );
        let demo = run(&["--demo"]);
        assert!(demo.demo);
        assert!(demo.urls.is_empty());
        assert!(demo.stream_names().is_empty());
    }

    #[test]
    fn unknown_options() {
        assert_eq!(fail_message(&["-", URL]), "Unknown option \"-\"");
        assert_eq!(fail_message(&["-x", URL]), "Unknown option \"-x\"");
        assert_eq!(fail_message(&["-P", "9554", URL]), "Unknown option \"-P\"");
        assert_eq!(fail_message(&["--", URL]), "Unknown option \"--\"");
        assert_eq!(
            fail_message(&["--frobnicate", URL]),
            "Unknown option \"--frobnicate\""
        );
        assert_eq!(
            fail_message(&["--port=9554", URL]),
            "Unknown option \"--port=9554\" (option values are separate arguments: --port 9554)"
        );
        // A leading "--" is a long option first: "--verbose" is not "-" + "-".
        assert_eq!(run(&["--verbose", URL]).verbosity, 1);
        assert_eq!(fail_message(&["--v", URL]), "Unknown option \"--v\"");
    }

    #[test]
    fn live555_combination_messages() {
        assert_eq!(
            fail_message(&["-U", "user", "pass", URL]),
            REGISTER_AUTH_WITHOUT_REGISTER
        );
        assert_eq!(fail_message(&["-t", "-T", "80", URL]), TCP_AND_HTTP_TUNNEL);
        assert_eq!(fail_message(&["-T", "80", "-t", URL]), TCP_AND_HTTP_TUNNEL);
        assert_eq!(
            fail_message(&["--tcp", "-T", "8000", URL]),
            TCP_AND_HTTP_TUNNEL
        );
        assert_eq!(
            REGISTER_AUTH_WITHOUT_REGISTER,
            "The '-U <username-for-REGISTER> <password-for-REGISTER>' option can be used only with -R"
        );
        assert_eq!(
            TCP_AND_HTTP_TUNNEL,
            "The -t and -T options cannot both be used!"
        );
        assert_eq!(
            INVALID_STREAM_PREFIX,
            "Invalid stream-name prefix (must be 1..50 characters)"
        );
    }

    #[test]
    fn register_options() {
        let plain = run(&[URL]);
        assert!(!plain.register);
        let config = run(&["-R"]);
        assert!(config.register, "-R needs no URL");
        assert!(config.urls.is_empty());
        assert!(config.register_users.is_empty());
        assert_eq!(config.max_registered, 64);
        assert_eq!(config.register_allow, [RegisterAllow::Peer]);
        let config = run(&[
            "-R",
            "-U",
            "cam",
            "pw 1",
            "-U",
            "ops",
            "-x",
            "--max-registered",
            "3",
            "--register-allow",
            "10.0.0.0/8",
            "--register-allow",
            "peer",
            "--register-allow",
            "10.0.0.0/8",
            URL,
        ]);
        assert!(config.register);
        assert_eq!(
            config
                .register_users
                .iter()
                .map(|c| (c.username.as_str(), c.password.as_str()))
                .collect::<Vec<_>>(),
            [("cam", "pw 1"), ("ops", "-x")],
            "-U adds a user each time, values taken as they are"
        );
        assert_eq!(config.max_registered, 3);
        assert_eq!(
            config.register_allow,
            [
                RegisterAllow::Network {
                    address: "10.0.0.0".parse().unwrap(),
                    prefix: 8
                },
                RegisterAllow::Peer
            ]
        );
        assert_eq!(
            fail_message(&["-U", "a"]),
            "The -U option needs two arguments: <username> <password>"
        );
        assert_eq!(
            fail_message(&["--max-registered", "5", URL]),
            "The --max-registered option can be used only with -R"
        );
        assert_eq!(
            fail_message(&["--register-allow", "peer", URL]),
            "The --register-allow option can be used only with -R"
        );
        for bad in ["0", "10001", "x", "1.5"] {
            assert_eq!(
                fail_message(&["-R", "--max-registered", bad]),
                format!("Invalid number \"{bad}\" for --max-registered (must be 1..10000)")
            );
        }
        assert!(fail_message(&["-R", "--register-allow", "10.0.0.0/40"])
            .starts_with("Invalid rule \"10.0.0.0/40\" for --register-allow"));
    }

    #[test]
    fn http_tunnel_to_the_back_end() {
        let config = run(&[URL]);
        assert_eq!(config.defaults.transport, PathTransport::Auto);
        let config = run(&["-T", "8080", URL]);
        assert_eq!(
            config.defaults.transport,
            PathTransport::Http { port: 8080 },
            "-T forces interleaved media, inside the tunnel"
        );
        assert_eq!(
            run(&["-Tunnel", "80", "-T", "81", URL]).defaults.transport,
            PathTransport::Http { port: 81 }
        );
        assert_eq!(
            fail_message(&["-T", "80", "rtsps://user:secret@cam/a"]),
            "\"rtsps://cam/a\": rtsps:// back ends cannot be reached through an HTTP tunnel (-T): RTSP over TLS is not tunnelled"
        );
        assert_eq!(
            fail_message(&["-T", "0", URL]),
            "Invalid HTTP port number \"0\" for -T (must be 1..65535)"
        );
        assert_eq!(
            fail_message(&["-T", URL]),
            format!("Invalid HTTP port number \"{URL}\" for -T (must be 1..65535)")
        );
        assert_eq!(
            fail_message(&["-T"]),
            "The -T option needs an HTTP port number (1..65535)"
        );
        assert_eq!(
            fail_message(&["-T", "80", "bad"]),
            "\"bad\" is not an rtsp:// or rtsps:// URL"
        );
    }

    #[test]
    fn client_users_accumulate_and_a_repeated_name_takes_the_later_password() {
        let config = run(&[
            "-C",
            "viewer",
            "one",
            "--client-user",
            "admin",
            "x y",
            "-C",
            "viewer",
            "two",
            URL,
        ]);
        let users: Vec<(&str, &str)> = config
            .client_users
            .iter()
            .map(|u| (u.username.as_str(), u.password.as_str()))
            .collect();
        assert_eq!(users, [("admin", "x y"), ("viewer", "two")]);
        assert!(!config.client_basic_in_clear);
        assert!(run(&["--client-basic", "-C", "a", "b", URL]).client_basic_in_clear);
        assert!(run(&[URL]).client_users.is_empty());
        assert_eq!(
            fail_message(&["-C", "viewer"]),
            "The -C option needs two arguments: <username> <password>"
        );
        assert_eq!(
            fail_message(&["-C", "a:b", "pw", URL]),
            "Invalid user name \"a:b\" for -C (must be non-empty, without ':' or control characters)"
        );
        assert_eq!(
            fail_message(&["--client-user", "", "pw", URL]),
            "Invalid user name \"\" for --client-user (must be non-empty, without ':' or control characters)"
        );
    }

    #[test]
    fn dedicated_http_port_for_clients() {
        assert_eq!(run(&[URL]).http_port, HttpPort::Fallback);
        assert_eq!(
            run(&["--http-port", "8000", URL]).http_port,
            HttpPort::Fixed(8000)
        );
        assert_eq!(run(&["--http-port", "0", URL]).http_port, HttpPort::Off);
        assert_eq!(
            run(&["--http-port", "0", "--http-port", "9000", URL]).http_port,
            HttpPort::Fixed(9000)
        );
        for bad in ["65536", "x", "80x"] {
            assert_eq!(
                fail_message(&["--http-port", bad, URL]),
                format!(
                    "Invalid port number \"{bad}\" for --http-port (must be 0..65535, 0 = none)"
                )
            );
        }
        assert_eq!(
            fail_message(&["--http-port", "-1", URL]),
            "The --http-port option needs a port number (0 turns it off)"
        );
        assert_eq!(
            fail_message(&["--http-port"]),
            "The --http-port option needs a port number (0 turns it off)"
        );
    }

    #[test]
    fn long_forms() {
        let config = run(&[
            "--debug",
            "--tcp",
            "--port",
            "8554",
            "--user",
            "u",
            "p",
            "--prefix",
            "cam",
            "--max-gap",
            "0",
            "--demo",
            "--linger",
            "0",
            "--response-timeout",
            "2.5",
            "--udp-timeout",
            "1",
            "--reconnect-min",
            "0.5",
            "--reconnect-max",
            "60",
            "--bind",
            "127.0.0.1",
            "--bind",
            "[::1]",
            "--bind",
            "127.0.0.1",
            URL,
        ]);
        assert_eq!(config.verbosity, 2);
        assert_eq!(config.defaults.transport, PathTransport::Tcp);
        assert_eq!(config.rtsp_port, 8554);
        assert!(config.rtsp_port_explicit);
        assert_eq!(
            config
                .defaults
                .credentials
                .map(|c| (c.username, c.password)),
            Some(("u".into(), "p".into()))
        );
        assert_eq!(config.stream_prefix, "cam");
        assert_eq!(config.defaults.max_gap, None);
        assert!(config.demo);
        assert_eq!(config.defaults.linger, Duration::ZERO);
        assert_eq!(
            config.defaults.response_timeout,
            Duration::from_millis(2500)
        );
        assert_eq!(config.defaults.udp_timeout, Duration::from_secs(1));
        assert_eq!(config.defaults.reconnect_min, Duration::from_millis(500));
        assert_eq!(config.defaults.reconnect_max, Duration::from_secs(60));
        assert_eq!(
            config.bind_addresses,
            [
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST)
            ]
        );
        assert_eq!(config.session_timeout, Duration::from_secs(65));
        assert_eq!(run(&["--verbose-rtsp", URL]).verbosity, 2);
    }

    #[test]
    fn long_option_values_are_checked() {
        assert_eq!(
            fail_message(&["--port", "0", URL]),
            "Invalid port number \"0\" for --port (must be 1..65535)"
        );
        assert_eq!(
            fail_message(&["--port"]),
            "The --port option needs a port number (1..65535)"
        );
        assert_eq!(
            fail_message(&["--linger", "-1", URL]),
            "The --linger option needs a number of seconds"
        );
        assert_eq!(
            fail_message(&["--linger", "x", URL]),
            "Invalid number of seconds \"x\" for --linger (must be 0 or more and at most 86400)"
        );
        for option in [
            "--response-timeout",
            "--udp-timeout",
            "--reconnect-min",
            "--reconnect-max",
        ] {
            assert_eq!(
                fail_message(&[option, "0", URL]),
                format!("Invalid number of seconds \"0\" for {option} (must be more than 0 and at most 86400)")
            );
            assert!(fail_message(&[option, "86401", URL]).starts_with("Invalid number of seconds"));
        }
        assert_eq!(
            fail_message(&["--bind", "localhost", URL]),
            "Invalid IP address \"localhost\" for --bind"
        );
        assert_eq!(
            fail_message(&["--bind", URL]),
            format!("Invalid IP address \"{URL}\" for --bind")
        );
        assert_eq!(
            fail_message(&["--bind"]),
            "The --bind option needs an IP address"
        );
    }

    #[test]
    fn tls_options() {
        let config = run(&[URL]);
        assert_eq!(config.tls, None);
        assert_eq!(
            config.defaults.backend_tls,
            crate::tls::BackendTrust::default()
        );

        let tls = run(&["--tls-cert", "c.pem", "--tls-key", "k.pem", URL])
            .tls
            .expect("tls");
        assert_eq!(
            (tls.cert.to_str(), tls.key.to_str(), tls.port, tls.only),
            (Some("c.pem"), Some("k.pem"), 322, false)
        );
        let tls = run(&[
            "--tls-only",
            "--tls-port",
            "8322",
            "--tls-key",
            "k",
            "--tls-cert",
            "c",
            URL,
        ])
        .tls
        .expect("tls");
        assert_eq!((tls.port, tls.only), (8322, true));
        let tls = run(&[
            "-p",
            "322",
            "--tls-only",
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
            URL,
        ])
        .tls
        .expect("tls-only may use the RTSP port's number");
        assert_eq!(tls.port, 322);

        let together =
            "--tls-cert and --tls-key go together (a PEM certificate chain and its private key)";
        assert_eq!(fail_message(&["--tls-cert", "c", URL]), together);
        assert_eq!(fail_message(&["--tls-key", "k", URL]), together);
        assert_eq!(
            fail_message(&["--tls-only", URL]),
            "--tls-only needs --tls-cert and --tls-key"
        );
        assert_eq!(
            fail_message(&["--tls-port", "8322", URL]),
            "--tls-port needs --tls-cert and --tls-key"
        );
        assert_eq!(
            fail_message(&[
                "-p",
                "8554",
                "--tls-port",
                "8554",
                "--tls-cert",
                "c",
                "--tls-key",
                "k",
                URL
            ]),
            "--tls-port 8554 is the RTSP port too; choose another one (or --tls-only)"
        );
        assert_eq!(
            fail_message(&["--tls-cert"]),
            "The --tls-cert option needs a PEM certificate file"
        );
        assert_eq!(
            fail_message(&["--tls-key", "-v", URL]),
            "The --tls-key option needs a PEM private key file"
        );
        assert_eq!(
            fail_message(&["--tls-port", "0", URL]),
            "Invalid port number \"0\" for --tls-port (must be 1..65535)"
        );
        assert_eq!(
            fail_message(&["--tls-port"]),
            "The --tls-port option needs a port number (1..65535)"
        );
        assert_eq!(
            fail_message(&["--tls-foo", URL]),
            "Unknown option \"--tls-foo\""
        );
    }

    #[test]
    fn backend_tls_options() {
        let hex = "AB".repeat(32);
        let colons = vec!["ab"; 32].join(":");
        let ones = "01".repeat(32);
        let config = run(&[
            "--backend-tls-ca",
            "ca.pem",
            "--backend-tls-fingerprint",
            &hex,
            "--backend-tls-fingerprint",
            &colons,
            "--backend-tls-fingerprint",
            &ones,
            "rtsps://cam/x",
        ]);
        let trust = config.defaults.backend_tls;
        assert_eq!(
            trust.ca_file.as_deref().and_then(|p| p.to_str()),
            Some("ca.pem")
        );
        assert_eq!(
            trust.fingerprints,
            [
                crate::tls::Fingerprint([0xab; 32]),
                crate::tls::Fingerprint([1; 32])
            ],
            "the same pin twice is kept once"
        );
        assert!(!trust.insecure);
        assert!(
            run(&["--backend-tls-insecure", "rtsps://cam/x"])
                .defaults
                .backend_tls
                .insecure
        );

        assert_eq!(
            fail_message(&["--backend-tls-fingerprint", "abcd", URL]),
            "Invalid fingerprint \"abcd\" for --backend-tls-fingerprint: not a SHA-256 fingerprint (64 hex digits, optionally in pairs separated by ':')"
        );
        assert_eq!(
            fail_message(&["--backend-tls-fingerprint"]),
            "The --backend-tls-fingerprint option needs a SHA-256 fingerprint"
        );
        assert_eq!(
            fail_message(&["--backend-tls-ca"]),
            "The --backend-tls-ca option needs a PEM file of CA certificates"
        );
        let both = "--backend-tls-insecure accepts any certificate: it cannot be combined with --backend-tls-ca or --backend-tls-fingerprint";
        assert_eq!(
            fail_message(&[
                "--backend-tls-insecure",
                "--backend-tls-fingerprint",
                &hex,
                URL
            ]),
            both
        );
        assert_eq!(
            fail_message(&["--backend-tls-ca", "ca.pem", "--backend-tls-insecure", URL]),
            both
        );
    }

    #[test]
    fn reconnect_bounds() {
        assert_eq!(
            fail_message(&["--reconnect-min", "10", "--reconnect-max", "5", URL]),
            "--reconnect-max (5 s) must not be less than --reconnect-min (10 s)"
        );
        let config = run(&["--reconnect-min", "45", URL]);
        assert_eq!(
            (config.defaults.reconnect_min, config.defaults.reconnect_max),
            (Duration::from_secs(45), Duration::from_secs(45))
        );
        let equal = run(&["--reconnect-min", "5", "--reconnect-max", "5", URL]);
        assert_eq!(equal.defaults.reconnect_max, Duration::from_secs(5));
    }

    #[test]
    fn demo_stream_name_cannot_be_taken() {
        assert_eq!(
            fail_message(&["--demo", "-e", "demo", URL]),
            "The stream name \"demo\" is used by --demo; choose another prefix with -e"
        );
        assert_eq!(
            run(&["--demo", "-e", "demo", URL, URL]).stream_names(),
            ["demo-1", "demo-2"]
        );
        assert_eq!(run(&["-e", "demo", URL]).stream_names(), ["demo"]);
    }

    #[test]
    fn help_and_version() {
        assert!(matches!(
            parse_args("p", &args(&["--help"])),
            Ok(CliOutcome::Help)
        ));
        assert!(matches!(
            parse_args("p", &args(&["-h"])),
            Ok(CliOutcome::Help)
        ));
        assert!(matches!(
            parse_args("p", &args(&["-help"])),
            Ok(CliOutcome::Help)
        ));
        assert!(matches!(
            parse_args("p", &args(&["-v", "--help", "nonsense"])),
            Ok(CliOutcome::Help)
        ));
        assert!(matches!(
            parse_args("p", &args(&["--version"])),
            Ok(CliOutcome::Version)
        ));
        // An earlier error wins over a later --help.
        assert!(parse_args("p", &args(&["-x", "--help"])).is_err());
    }

    #[test]
    fn usage_text_lists_every_option() {
        let text = usage("live555ProxyServer");
        assert!(text.starts_with(
            "Usage: live555ProxyServer [-v|-V] [-t|-T <http-port>] [-p <rtspServer-port>] [-u <username> <password>] [-R] [-U <username-for-REGISTER> <password-for-REGISTER>] [-D <max-inter-packet-gap-time>] [-e <stream-name-prefix>] [-C <client-username> <client-password>] <rtsp-url-1> ... <rtsp-url-n>\n"
        ));
        for option in [
            "-v, --verbose",
            "-V, --debug, --verbose-rtsp",
            "-t, --tcp",
            "-T <http-port>",
            "-p, --port",
            "-u, --user",
            "-R ",
            "-U <username>",
            "-D, --max-gap",
            "-e, --prefix",
            "-C, --client-user <user> <password>",
            "--client-basic",
            "--demo",
            "--linger",
            "--response-timeout",
            "--udp-timeout",
            "--reconnect-min",
            "--reconnect-max",
            "--bind",
            "--http-port <port>",
            "--tls-cert <pem> --tls-key <pem>",
            "--tls-port",
            "--tls-only",
            "--backend-tls-ca",
            "--backend-tls-fingerprint",
            "--backend-tls-insecure",
            "--max-registered",
            "--register-allow",
            "--backend-multicast",
            "--multicast-range",
            "--multicast-ttl",
            "--multicast-port",
            "-h, --help",
            "--version",
        ] {
            assert!(text.contains(&format!("  {option}")), "{option}");
        }
        assert!(text.contains("(default 554)"));
        assert!(text.contains("(default proxyStream)"));
        assert!(text.contains("(default 10, 0 = off)"));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn log_format() {
        assert_eq!(run(&[URL]).log_format, LogFormat::Text);
        assert_eq!(
            run(&["--log-format", "json", URL]).log_format,
            LogFormat::Json
        );
        assert_eq!(
            run(&["--log-format", "json", "--log-format", "text", URL]).log_format,
            LogFormat::Text
        );
        assert_eq!(
            fail_message(&["--log-format", "JSON", URL]),
            "Invalid log format \"JSON\" for --log-format (must be text or json)"
        );
        assert_eq!(
            fail_message(&["--log-format", URL]),
            format!("Invalid log format \"{URL}\" for --log-format (must be text or json)")
        );
        assert_eq!(
            fail_message(&["--log-format"]),
            "The --log-format option needs a log format (text or json)"
        );
        assert!(usage("p").contains("  --log-format <text|json>"));
    }

    #[test]
    fn man_page_option() {
        assert!(matches!(
            parse_args("p", &args(&["--man"])),
            Ok(CliOutcome::Man)
        ));
        assert!(matches!(
            parse_args("p", &args(&["-v", "--man", URL])),
            Ok(CliOutcome::Man)
        ));
    }

    #[test]
    fn usage_error_display() {
        let error = parse_args("prog", &args(&["-x"])).expect_err("unknown option");
        assert_eq!(
            error.to_string(),
            format!("Unknown option \"-x\"\n{}", usage("prog"))
        );
        let bare = parse_args("prog", &[]).expect_err("no arguments");
        assert_eq!(bare.to_string(), usage("prog"));
    }

    #[test]
    fn hostile_arguments_never_panic() {
        let pieces = [
            "-",
            "--",
            "-p",
            "-T",
            "-D",
            "-u",
            "-U",
            "-C",
            "-e",
            "-R",
            "-t",
            "--port",
            "--bind",
            "--http-port",
            "--linger",
            "--user",
            "0",
            "65536",
            "é",
            "\u{0}",
            "",
            "rtsp://x",
            "rtsps://y",
            "--tls-cert",
            "--tls-only",
            "--backend-tls-fingerprint",
            "--backend-tls-insecure",
            "--demo",
            "-h",
            "x=y",
            "--port=1",
            "-é",
        ];
        let mut state: u32 = 12345;
        for _ in 0..5000 {
            let mut list = Vec::new();
            for _ in 0..(state % 7) {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                list.push(pieces[(state >> 16) as usize % pieces.len()].to_owned());
            }
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let _ = parse_args("p", &list);
        }
    }

    #[test]
    fn drain_timeout() {
        assert_eq!(run(&[URL]).drain_timeout, DEFAULT_DRAIN_TIMEOUT);
        assert_eq!(
            run(&["--drain-timeout", "4.5", URL]).drain_timeout,
            Duration::from_millis(4500)
        );
        assert_eq!(
            run(&["--drain-timeout", "0", URL]).drain_timeout,
            Duration::ZERO
        );
        assert_eq!(
            fail_message(&["--drain-timeout", "x", URL]),
            "Invalid number of seconds \"x\" for --drain-timeout (must be 0 or more and at most 86400)"
        );
    }
}
