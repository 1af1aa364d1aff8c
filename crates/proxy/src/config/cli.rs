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
//!   `rtsps://` (case-sensitive). `rtsps://` back ends are then refused: TLS is not
//!   implemented yet, and a TLS URL is never dialled in plain text.
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
//! `-T`, `-R`, `-U` and `-C` are parsed with live555's rules and then refused with a
//! message saying so, so that such an option is never silently ignored.
//!
//! Long options (checked before the one-character rule): `--verbose`, `--debug` /
//! `--verbose-rtsp`, `--tcp`, `--port N`, `--user U P`, `--prefix S`, `--max-gap N`,
//! `--demo`, `--linger S`, `--response-timeout S`, `--udp-timeout S`,
//! `--reconnect-min S`, `--reconnect-max S`, `--bind ADDR` (repeatable),
//! `--keyframe-cache MIB` (0..=256, 0 turns it off), `--backend-multicast`,
//! `--multicast-range CIDR` (inside 224.0.0.0/4), `--multicast-ttl N` (1..=255)
//! and `--multicast-port EVEN-PORT` (the last two need the range), `--help`
//! (also `-h`) and `--version`. The timing options take seconds with an optional
//! fraction (`0.5`), at most one day.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::value;
use super::{
    BackendTransport, Config, DEFAULT_INTER_PACKET_GAP_SECS, DEFAULT_LINGER, DEFAULT_RECONNECT_MAX,
    DEFAULT_RECONNECT_MIN, DEFAULT_RESPONSE_TIMEOUT, DEFAULT_RTSP_PORT, DEFAULT_STREAM_PREFIX,
    DEFAULT_UDP_FALLBACK_TIMEOUT, DEMO_STREAM_NAME, MAX_STREAM_PREFIX_CHARS,
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
    /// Print the version and exit successfully (`--version`).
    Version,
}

/// A command line that cannot be run. Like live555, the caller prints it (the message,
/// then the usage text) to stderr and exits with status 1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_usage_error(.message.as_deref(), .program))]
pub struct UsageError {
    /// What is wrong, when there is more to say than the usage text. `None` for a
    /// bare usage error (such as no arguments at all).
    pub message: Option<String>,
    /// The program name shown in the usage text.
    pub program: String,
}

fn render_usage_error(message: Option<&str>, program: &str) -> String {
    match message {
        Some(message) => format!("{message}\n{}", usage(program)),
        None => usage(program),
    }
}

/// live555's message for `-U` without `-R`.
pub const REGISTER_AUTH_WITHOUT_REGISTER: &str =
    "The '-U <username-for-REGISTER> <password-for-REGISTER>' option can be used only with -R";
/// live555's message for `-t` together with `-T`.
pub const TCP_AND_HTTP_TUNNEL: &str = "The -t and -T options cannot both be used!";
/// The fork's message for an `-e` value that is empty or too long.
pub const INVALID_STREAM_PREFIX: &str = "Invalid stream-name prefix (must be 1..50 characters)";

/// The usage text: live555's synopsis line, then every option with its long form.
#[must_use]
pub fn usage(program: &str) -> String {
    let mut text = format!(
        "Usage: {program} [-v|-V] [-t|-T <http-port>] [-p <rtspServer-port>] [-u <username> <password>] \
         [-R] [-U <username-for-REGISTER> <password-for-REGISTER>] [-D <max-inter-packet-gap-time>] \
         [-e <stream-name-prefix>] [-C <client-username> <client-password>] <rtsp-url-1> ... <rtsp-url-n>\n"
    );
    let secs = |d: Duration| format!("{}", d.as_secs_f64());
    let options: Vec<(&str, String)> = vec![
        ("-v, --verbose", "log proxy events".into()),
        ("-V, --debug, --verbose-rtsp", "also log every back-end RTSP request and response".into()),
        ("-t, --tcp", "receive back-end media over the back end's RTSP TCP connection".into()),
        ("-T <http-port>", "back end through RTSP-over-HTTP tunnelling (not supported in this version)".into()),
        ("-p, --port <port>", format!("RTSP port to listen on (default {DEFAULT_RTSP_PORT})")),
        ("-u, --user <username> <password>", "credentials for the back ends".into()),
        ("-R", "accept REGISTER/DEREGISTER requests (not supported in this version)".into()),
        ("-U <username> <password>", "credentials required for REGISTER (not supported in this version)".into()),
        (
            "-D, --max-gap <seconds>",
            format!(
                "reset a playing back end that sent no packet for this long (default {DEFAULT_INTER_PACKET_GAP_SECS}, 0 = off)"
            ),
        ),
        (
            "-e, --prefix <prefix>",
            format!("stream-name prefix, 1..{MAX_STREAM_PREFIX_CHARS} characters (default {DEFAULT_STREAM_PREFIX})"),
        ),
        ("-C <username> <password>", "credentials required from clients (not supported in this version)".into()),
        ("--demo", format!("also serve a built-in test pattern as stream \"{DEMO_STREAM_NAME}\"")),
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
        ("--bind <address>", "address to listen on, repeatable (default 0.0.0.0 and ::)".into()),
        (
            "--keyframe-cache <MiB>",
            format!(
                "per stream, keep the packets since the last H.264/H.265/MPEG-TS keyframe so new clients get a picture at once; 0 turns it off (default {})",
                crate::relay::gop_cache::DEFAULT_CACHE_BYTES >> 20
            ),
        ),
        ("--backend-multicast", "ask the back ends for multicast first (else only when they refuse unicast or announce multicast)".into()),
        ("--multicast-range <cidr>", "serve multicast to clients that ask for it, groups from this IPv4 range (e.g. 239.255.42.0/24; default off)".into()),
        ("--multicast-ttl <n>", format!("TTL of multicast sent to clients, 1..255 (default {DEFAULT_MULTICAST_TTL})")),
        ("--multicast-port <port>", format!("even RTP port of a multicast stream's first track; track k gets port+2k (default {DEFAULT_MULTICAST_PORT})")),
        ("-h, --help", "print this help".into()),
        ("--version", "print the version".into()),
    ];
    text.push_str("Options (before the URLs; values are separate arguments):\n");
    for (names, help) in options {
        let _ = writeln!(text, "  {names:<34} {help}");
    }
    text.push_str(
        "Streams are named <prefix> for one URL, <prefix>-1 ... <prefix>-N for several.\n",
    );
    text
}

/// Parses the command line (`args` excludes the program name).
///
/// # Errors
///
/// A [`UsageError`] for anything live555ProxyServer would answer with its usage text,
/// for the long options' own checks, and for the recognised but unsupported options
/// `-T`, `-R`, `-U` and `-C`.
pub fn parse_args(program: &str, args: &[String]) -> Result<CliOutcome, UsageError> {
    Parser::new(program, args).run()
}

/// Largest `--keyframe-cache`, in MiB.
const MAX_KEYFRAME_CACHE_MIB: usize = 256;

/// Options recognised from live555 that this version does not implement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unsupported {
    HttpTunnel,
    Register,
    RegisterAuth,
    ClientAuth,
}

impl Unsupported {
    fn message(self) -> String {
        let option = match self {
            Unsupported::HttpTunnel => {
                "-T <http-port> option (RTSP-over-HTTP tunnelling to the back end)"
            }
            Unsupported::Register => "-R option (REGISTER/DEREGISTER requests)",
            Unsupported::RegisterAuth => {
                "-U <username-for-REGISTER> <password-for-REGISTER> option"
            }
            Unsupported::ClientAuth => {
                "-C <client-username> <client-password> option (client authentication)"
            }
        };
        format!("The {option} is recognised but not supported in this version of rtsp-proxy")
    }
}

struct Parser<'a> {
    program: &'a str,
    args: &'a [String],
    /// Index of the next argument to read.
    pos: usize,
    config: Config,
    /// `-t` was given.
    tcp: bool,
    /// `-T` was given.
    http_tunnel: bool,
    /// `-R` was given.
    register: bool,
    /// `-U` was given at least once.
    register_auth: bool,
    /// Unsupported options in the order they first appeared.
    unsupported: Vec<Unsupported>,
    /// `--bind` addresses, in order, without duplicates.
    bind: Vec<IpAddr>,
    /// `--reconnect-max` was given.
    reconnect_max_explicit: bool,
    /// `--backend-multicast` was given.
    backend_multicast: bool,
    /// `--multicast-range` (network, prefix length), `--multicast-ttl` and
    /// `--multicast-port` as given.
    multicast_range: Option<(Ipv4Addr, u8)>,
    multicast_ttl: Option<u8>,
    multicast_port: Option<u16>,
}

impl<'a> Parser<'a> {
    fn new(program: &'a str, args: &'a [String]) -> Self {
        Parser {
            program,
            args,
            pos: 0,
            config: Config::default(),
            tcp: false,
            http_tunnel: false,
            register: false,
            register_auth: false,
            unsupported: Vec::new(),
            bind: Vec::new(),
            reconnect_max_explicit: false,
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
                self.port_value(arg, "an", "HTTP port number")?;
                self.http_tunnel = true;
                self.note_unsupported(Unsupported::HttpTunnel);
            }
            Some('p') => self.rtsp_port(arg)?,
            Some('u') => self.backend_credentials(arg)?,
            Some('U') => {
                self.two_values(arg)?;
                self.register_auth = true;
                self.note_unsupported(Unsupported::RegisterAuth);
            }
            Some('R') => {
                self.register = true;
                self.note_unsupported(Unsupported::Register);
            }
            Some('D') => self.inter_packet_gap(arg)?,
            Some('e') => self.stream_prefix(arg)?,
            Some('C') => {
                self.two_values(arg)?;
                self.note_unsupported(Unsupported::ClientAuth);
            }
            Some('h') => return Ok(Some(CliOutcome::Help)),
            _ => return Err(self.error(format!("Unknown option \"{arg}\""))),
        }
        Ok(None)
    }

    /// A `--name` option.
    fn long_option(&mut self, arg: &str, name: &str) -> Result<Option<CliOutcome>, UsageError> {
        match name {
            "verbose" => self.config.verbosity = 1,
            "debug" | "verbose-rtsp" => self.config.verbosity = 2,
            "tcp" => self.tcp = true,
            "port" => self.rtsp_port(arg)?,
            "user" => self.backend_credentials(arg)?,
            "prefix" => self.stream_prefix(arg)?,
            "max-gap" => self.inter_packet_gap(arg)?,
            "demo" => self.config.demo = true,
            "linger" => self.config.linger = self.duration(arg, true)?,
            "response-timeout" => self.config.response_timeout = self.duration(arg, false)?,
            "udp-timeout" => self.config.udp_fallback_timeout = self.duration(arg, false)?,
            "reconnect-min" => self.config.reconnect_min = self.duration(arg, false)?,
            "keyframe-cache" => {
                let text = self.checked_value(arg, "a size in MiB")?;
                self.config.keyframe_cache_bytes = match text.parse::<usize>() {
                    Ok(mib) if mib <= MAX_KEYFRAME_CACHE_MIB => mib << 20,
                    _ => {
                        return Err(self.error(format!(
                            "Invalid size \"{text}\" for {arg} (must be a whole number of MiB, 0 to {MAX_KEYFRAME_CACHE_MIB})"
                        )))
                    }
                };
            }
            "reconnect-max" => {
                self.config.reconnect_max = self.duration(arg, false)?;
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
            "backend-multicast" => self.backend_multicast = true,
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
            "multicast-port" => {
                let text = self.checked_value(arg, "an even port number (2..65534)")?;
                let port = value::port(text).filter(|p| p % 2 == 0 && *p < u16::MAX);
                let port = port.ok_or_else(|| {
                    self.error(format!(
                        "Invalid port \"{text}\" for {arg} (must be even, 2..65534)"
                    ))
                })?;
                self.multicast_port = Some(port);
            }
            "help" => return Ok(Some(CliOutcome::Help)),
            "version" => return Ok(Some(CliOutcome::Version)),
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
        let urls = self.args.get(self.pos..).unwrap_or_default();
        if urls.is_empty() && !self.register && !self.config.demo {
            return Err(if self.args.is_empty() {
                UsageError {
                    message: None,
                    program: self.program.to_owned(),
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
        // Refused rather than dialled in plain text on port 322: a TLS URL must
        // never be served without TLS.
        if let Some(url) = urls.iter().find(|u| u.starts_with("rtsps://")) {
            return Err(self.error(format!(
                "\"{}\": rtsps:// back ends (RTSP over TLS) are not supported in this version of rtsp-proxy",
                rtsp::url::redact(url)
            )));
        }
        if self.register_auth && !self.register {
            return Err(self.error(REGISTER_AUTH_WITHOUT_REGISTER.to_owned()));
        }
        if self.tcp && self.http_tunnel {
            return Err(self.error(TCP_AND_HTTP_TUNNEL.to_owned()));
        }
        if let Some(first) = self.unsupported.first() {
            return Err(self.error(first.message()));
        }

        if self.config.reconnect_max < self.config.reconnect_min {
            if self.reconnect_max_explicit {
                return Err(self.error(format!(
                    "--reconnect-max ({} s) must not be less than --reconnect-min ({} s)",
                    self.config.reconnect_max.as_secs_f64(),
                    self.config.reconnect_min.as_secs_f64()
                )));
            }
            self.config.reconnect_max = self.config.reconnect_min;
        }
        if self.tcp && self.backend_multicast {
            return Err(self.error(
                "-t (media over TCP) and --backend-multicast cannot be combined".to_owned(),
            ));
        }
        if self.tcp {
            self.config.backend_transport = BackendTransport::Tcp;
        }
        if self.backend_multicast {
            self.config.backend_transport = BackendTransport::Multicast;
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

    fn rtsp_port(&mut self, arg: &str) -> Result<(), UsageError> {
        self.config.rtsp_port = self.port_value(arg, "a", "port number")?;
        self.config.rtsp_port_explicit = true;
        Ok(())
    }

    fn backend_credentials(&mut self, arg: &str) -> Result<(), UsageError> {
        let (username, password) = self.two_values(arg)?;
        self.config.backend_credentials = Some(rtsp::auth::Credentials {
            username: username.to_owned(),
            password: password.to_owned(),
        });
        Ok(())
    }

    fn inter_packet_gap(&mut self, arg: &str) -> Result<(), UsageError> {
        let text = self.checked_value(arg, "a number of seconds (0 turns the check off)")?;
        let secs = value::whole_seconds(text).ok_or_else(|| {
            self.error(format!(
                "Invalid number of seconds \"{text}\" for {arg} (must be a whole number, 0 = off)"
            ))
        })?;
        self.config.inter_packet_gap = (secs > 0).then(|| Duration::from_secs(u64::from(secs)));
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

    fn note_unsupported(&mut self, option: Unsupported) {
        if !self.unsupported.contains(&option) {
            self.unsupported.push(option);
        }
    }

    fn error(&self, message: String) -> UsageError {
        UsageError {
            message: Some(message),
            program: self.program.to_owned(),
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
    fn one_url_with_defaults() {
        let config = run(&[URL]);
        assert_eq!(config.urls, [URL]);
        assert_eq!(config.stream_names(), ["proxyStream"]);
        assert_eq!(config.rtsp_port, 554);
        assert!(!config.rtsp_port_explicit);
        assert_eq!(config.verbosity, 0);
        assert_eq!(config.backend_transport, BackendTransport::Udp);
        assert_eq!(config.inter_packet_gap, Some(Duration::from_secs(10)));
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
        assert_eq!(config.backend_transport, BackendTransport::Tcp);
        assert_eq!(config.rtsp_port, 9554);
        assert!(config.rtsp_port_explicit);
        let credentials = config.backend_credentials.as_ref().expect("credentials");
        assert_eq!(
            (credentials.username.as_str(), credentials.password.as_str()),
            ("admin", "p@ss word")
        );
        assert_eq!(config.inter_packet_gap, Some(Duration::from_secs(5)));
        assert_eq!(config.urls, [URL, "rtsp://cam/x"]);
        assert_eq!(config.stream_names(), ["cams/front-1", "cams/front-2"]);
    }

    #[test]
    fn only_the_second_character_counts() {
        assert_eq!(run(&["-verbose", URL]).verbosity, 1);
        assert_eq!(run(&["-Very", URL]).verbosity, 2);
        assert_eq!(run(&["-tcp", URL]).backend_transport, BackendTransport::Tcp);
        assert_eq!(run(&["-port", "8554", URL]).rtsp_port, 8554);
        assert_eq!(run(&["-Dx", "0", URL]).inter_packet_gap, None);
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
            config.backend_credentials.map(|c| c.username),
            Some("b".to_owned())
        );
        assert_eq!(
            run(&["-D", "0", "-D", "7", URL]).inter_packet_gap,
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
    fn inter_packet_gap_values() {
        assert_eq!(run(&["-D", "0", URL]).inter_packet_gap, None);
        assert_eq!(
            run(&["-D", "4294967295", URL]).inter_packet_gap,
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
        let credentials = config.backend_credentials.expect("credentials");
        assert_eq!(
            (credentials.username.as_str(), credentials.password.as_str()),
            ("-weird", "-p")
        );
        assert_eq!(config.rtsp_port, 554);
        let empty = run(&["-u", "", "", URL])
            .backend_credentials
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
        assert_eq!(run(&[URL]).keyframe_cache_bytes, 4 << 20);
        assert_eq!(
            run(&["--keyframe-cache", "16", URL]).keyframe_cache_bytes,
            16 << 20
        );
        assert_eq!(run(&["--keyframe-cache", "0", URL]).keyframe_cache_bytes, 0);
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
            run(&["--backend-multicast", URL]).backend_transport,
            BackendTransport::Multicast
        );
        assert_eq!(
            fail_message(&["--backend-multicast", "-t", URL]),
            "-t (media over TCP) and --backend-multicast cannot be combined"
        );
    }

    #[test]
    fn url_rules() {
        assert_eq!(
            fail_message(&["rtsps://user:secret@host/a"]),
            "\"rtsps://host/a\": rtsps:// back ends (RTSP over TLS) are not supported in this version of rtsp-proxy",
            "refused, never dialled in plain text, and the password is not printed"
        );
        assert_eq!(
            fail_message(&[URL, "rtsps://host/b"]),
            "\"rtsps://host/b\": rtsps:// back ends (RTSP over TLS) are not supported in this version of rtsp-proxy"
        );
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
    fn unsupported_options_are_parsed_then_refused() {
        let tunnel = "The -T <http-port> option (RTSP-over-HTTP tunnelling to the back end) is recognised but not supported in this version of rtsp-proxy";
        let register = "The -R option (REGISTER/DEREGISTER requests) is recognised but not supported in this version of rtsp-proxy";
        let client = "The -C <client-username> <client-password> option (client authentication) is recognised but not supported in this version of rtsp-proxy";
        assert_eq!(fail_message(&["-T", "80", URL]), tunnel);
        assert_eq!(
            fail_message(&["-R"]),
            register,
            "-R needs no URL, but is refused"
        );
        assert_eq!(fail_message(&["-R", "-U", "a", "b"]), register);
        assert_eq!(fail_message(&["-C", "viewer", "secret", URL]), client);
        assert_eq!(
            fail_message(&["-C", "viewer", "secret", "-R", URL]),
            client,
            "the first one given is named"
        );
        // live555's own value checks still come first.
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
        assert_eq!(config.backend_transport, BackendTransport::Tcp);
        assert_eq!(config.rtsp_port, 8554);
        assert!(config.rtsp_port_explicit);
        assert_eq!(
            config.backend_credentials.map(|c| (c.username, c.password)),
            Some(("u".into(), "p".into()))
        );
        assert_eq!(config.stream_prefix, "cam");
        assert_eq!(config.inter_packet_gap, None);
        assert!(config.demo);
        assert_eq!(config.linger, Duration::ZERO);
        assert_eq!(config.response_timeout, Duration::from_millis(2500));
        assert_eq!(config.udp_fallback_timeout, Duration::from_secs(1));
        assert_eq!(config.reconnect_min, Duration::from_millis(500));
        assert_eq!(config.reconnect_max, Duration::from_secs(60));
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
    fn reconnect_bounds() {
        assert_eq!(
            fail_message(&["--reconnect-min", "10", "--reconnect-max", "5", URL]),
            "--reconnect-max (5 s) must not be less than --reconnect-min (10 s)"
        );
        let config = run(&["--reconnect-min", "45", URL]);
        assert_eq!(
            (config.reconnect_min, config.reconnect_max),
            (Duration::from_secs(45), Duration::from_secs(45))
        );
        let equal = run(&["--reconnect-min", "5", "--reconnect-max", "5", URL]);
        assert_eq!(equal.reconnect_max, Duration::from_secs(5));
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
            "-C <username>",
            "--demo",
            "--linger",
            "--response-timeout",
            "--udp-timeout",
            "--reconnect-min",
            "--reconnect-max",
            "--bind",
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
            "--linger",
            "--user",
            "0",
            "65536",
            "é",
            "\u{0}",
            "",
            "rtsp://x",
            "rtsps://y",
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
}
