//! The client subcommands `rtsp-proxy register` and `rtsp-proxy deregister`: the job
//! of live555's `registerRTSPStream`, with the same arguments.
//!
//! ```text
//! rtsp-proxy register [-u <user> <password>] [-t] [--reuse-connection]
//!                     <proxy-host> <proxy-port> <rtsp-URL-to-register> [<proxy-URL-suffix>]
//! rtsp-proxy deregister [-u <user> <password>]
//!                     <proxy-host> <proxy-port> [<rtsp-URL>] <proxy-URL-suffix>
//! ```
//!
//! `-u` answers the proxy's `-U` challenge; `-t` asks for interleaved media
//! (`preferred_delivery_protocol=interleaved`); `--reuse-connection` asks the proxy to
//! pull the stream over the connection that carried the REGISTER, which this command
//! then relays to the registered URL's host and port (a camera behind NAT). The run
//! itself is [`crate::register_client`].

use std::fmt::Write as _;

use rtsp::auth::Credentials;
use rtsp::url::RtspUrl;

use super::value;

/// Which request the subcommand sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Register,
    Deregister,
}

impl Kind {
    /// The subcommand named by a first argument.
    #[must_use]
    pub fn from_word(word: &str) -> Option<Kind> {
        match word {
            "register" => Some(Kind::Register),
            "deregister" => Some(Kind::Deregister),
            _ => None,
        }
    }

    /// The subcommand's word (also the method, in upper case).
    #[must_use]
    pub fn word(self) -> &'static str {
        match self {
            Kind::Register => "register",
            Kind::Deregister => "deregister",
        }
    }
}

/// A parsed `register`/`deregister` command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterCommand {
    pub kind: Kind,
    /// The proxy's host name or address.
    pub proxy_host: String,
    pub proxy_port: u16,
    /// The back-end URL (the request URL).
    pub url: String,
    /// The stream name asked for (`proxy_url_suffix`).
    pub suffix: Option<String>,
    /// For the proxy's `-U`.
    pub credentials: Option<Credentials>,
    /// `-t`: `preferred_delivery_protocol=interleaved`.
    pub interleaved: bool,
    /// `--reuse-connection`.
    pub reuse_connection: bool,
}

/// The usage text of a subcommand.
#[must_use]
pub fn usage(program: &str, kind: Kind) -> String {
    let mut text = String::new();
    match kind {
        Kind::Register => {
            let _ = writeln!(
                text,
                "Usage: {program} register [-u <username> <password>] [-t] [--reuse-connection] <proxy-host> <proxy-port> <rtsp-URL-to-register> [<proxy-URL-suffix>]"
            );
            text.push_str("Asks a proxy started with -R to proxy <rtsp-URL-to-register>, as rtsp://<proxy-host>:<proxy-port>/<proxy-URL-suffix>.\n");
        }
        Kind::Deregister => {
            let _ = writeln!(
                text,
                "Usage: {program} deregister [-u <username> <password>] <proxy-host> <proxy-port> [<rtsp-URL>] <proxy-URL-suffix>"
            );
            text.push_str("Asks a proxy started with -R to stop proxying the registered stream <proxy-URL-suffix>.\n");
        }
    }
    text.push_str("Options (before the arguments):\n");
    let mut options = vec![(
        "-u <username> <password>",
        "credentials for the proxy's -U (Digest)",
    )];
    if kind == Kind::Register {
        options.push(("-t", "ask for media interleaved on the RTSP connection"));
        options.push((
            "--reuse-connection",
            "the proxy pulls the stream over this very connection, which is relayed to the URL's host and port until either side closes (a camera behind NAT)",
        ));
    }
    options.push(("-h, --help", "print this help"));
    for (names, help) in options {
        let _ = writeln!(text, "  {names:<26} {help}");
    }
    text.push_str("Exit status: 0 when the proxy answers 200 OK, 1 otherwise.\n");
    text
}

/// What a subcommand's arguments ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Send this REGISTER or DEREGISTER.
    Command(RegisterCommand),
    /// Print the subcommand's usage and exit successfully.
    Help(Kind),
}

/// A subcommand's arguments that cannot be run: what is wrong (the command
/// line's `UsageError` shows it with the subcommand's usage).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgsError {
    pub kind: Kind,
    pub message: String,
}

/// Parses the arguments after the subcommand word.
///
/// # Errors
///
/// An [`ArgsError`] naming what is wrong.
pub fn parse(kind: Kind, args: &[String]) -> Result<Parsed, ArgsError> {
    let fail = |message: String| Err(ArgsError { kind, message });
    let mut pos = 0;
    let mut credentials = None;
    let mut interleaved = false;
    let mut reuse_connection = false;
    while let Some(arg) = args.get(pos) {
        if !arg.starts_with('-') {
            break;
        }
        pos += 1;
        match arg.as_str() {
            "-u" | "--user" => match (args.get(pos), args.get(pos + 1)) {
                (Some(user), Some(password)) => {
                    credentials = Some(Credentials::new(user.as_str(), password.as_str()));
                    pos += 2;
                }
                _ => {
                    return fail(format!(
                        "The {arg} option needs two arguments: <username> <password>"
                    ))
                }
            },
            "-t" | "--tcp" if kind == Kind::Register => interleaved = true,
            "--reuse-connection" if kind == Kind::Register => reuse_connection = true,
            "-h" | "--help" => return Ok(Parsed::Help(kind)),
            _ => return fail(format!("Unknown option \"{arg}\" for {}", kind.word())),
        }
    }
    let rest = &args[pos..];
    let (host, port, url, suffix) = match (kind, rest) {
        (Kind::Register, [h, p, u]) => (h, p, u.clone(), None),
        (Kind::Register, [h, p, u, s]) => (h, p, u.clone(), Some(s.clone())),
        (Kind::Deregister, [h, p, s]) if !s.contains("://") => {
            (h, p, String::new(), Some(s.clone()))
        }
        (Kind::Deregister, [_, _, _]) => {
            return fail("deregister needs the <proxy-URL-suffix> of the stream".to_owned())
        }
        (Kind::Deregister, [h, p, u, s]) => (h, p, u.clone(), Some(s.clone())),
        _ => return fail("Wrong number of arguments".to_owned()),
    };
    if host.is_empty() || host.starts_with('-') {
        return fail(format!("Invalid proxy host \"{host}\""));
    }
    let Some(proxy_port) = value::port(port) else {
        return fail(format!("Invalid proxy port \"{port}\" (must be 1..65535)"));
    };
    if let Some(s) = &suffix {
        let valid = !s.is_empty()
            && s.len() <= 200
            && !s.starts_with('/')
            && s.chars().all(|c| c.is_ascii_graphic() && c != ';');
        if !valid {
            return fail(format!(
                "Invalid proxy-URL-suffix \"{s}\" (printable characters, no spaces, no ';', not starting with '/')"
            ));
        }
    }
    let url = if url.is_empty() {
        // deregister without a URL: name the proxy's own URL of the stream.
        let h = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        format!(
            "rtsp://{h}:{proxy_port}/{}",
            suffix.as_deref().unwrap_or("")
        )
    } else {
        match RtspUrl::parse(&url) {
            Ok(_) => url,
            Err(e) => {
                return fail(format!(
                    "\"{}\" is not a usable rtsp:// URL: {e}",
                    rtsp::url::redact(&url)
                ))
            }
        }
    };
    Ok(Parsed::Command(RegisterCommand {
        kind,
        proxy_host: host.clone(),
        proxy_port,
        url,
        suffix,
        credentials,
        interleaved,
        reuse_connection,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::cli::{parse_args, CliOutcome};
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn command(list: &[&str]) -> RegisterCommand {
        match parse_args("rtsp-proxy", &args(list)) {
            Ok(CliOutcome::Register(c)) => c,
            other => panic!("{list:?}: {other:?}"),
        }
    }

    fn fail(list: &[&str]) -> String {
        match parse_args("rtsp-proxy", &args(list)) {
            Err(e) => e.message.unwrap_or_default(),
            Ok(other) => panic!("{list:?}: expected an error, got {other:?}"),
        }
    }

    #[test]
    fn register_like_register_rtsp_stream() {
        let c = command(&["register", "proxy.example", "8554", "rtsp://10.0.0.5/live"]);
        assert_eq!(
            c,
            RegisterCommand {
                kind: Kind::Register,
                proxy_host: "proxy.example".into(),
                proxy_port: 8554,
                url: "rtsp://10.0.0.5/live".into(),
                suffix: None,
                credentials: None,
                interleaved: false,
                reuse_connection: false,
            }
        );
        let c = command(&[
            "register",
            "-u",
            "reg",
            "pw",
            "-t",
            "--reuse-connection",
            "127.0.0.1",
            "9554",
            "rtsp://u:p@10.0.0.5:554/live",
            "cam1",
        ]);
        assert_eq!(c.suffix.as_deref(), Some("cam1"));
        assert_eq!(c.credentials, Some(Credentials::new("reg", "pw")));
        assert!(c.interleaved && c.reuse_connection);
        assert_eq!(c.url, "rtsp://u:p@10.0.0.5:554/live");
    }

    #[test]
    fn deregister_with_or_without_the_url() {
        let c = command(&["deregister", "127.0.0.1", "9554", "cam1"]);
        assert_eq!(c.kind, Kind::Deregister);
        assert_eq!(c.url, "rtsp://127.0.0.1:9554/cam1");
        assert_eq!(c.suffix.as_deref(), Some("cam1"));
        let c = command(&[
            "deregister",
            "-u",
            "a",
            "b",
            "::1",
            "9554",
            "rtsp://10.0.0.5/x",
            "cam1",
        ]);
        assert_eq!(c.url, "rtsp://10.0.0.5/x");
        assert_eq!(
            command(&["deregister", "::1", "9554", "c"]).url,
            "rtsp://[::1]:9554/c"
        );
        assert!(fail(&["deregister", "h", "1", "rtsp://10.0.0.5/x"])
            .starts_with("deregister needs the <proxy-URL-suffix>"));
        assert!(fail(&["deregister", "-t", "h", "1", "c"])
            .starts_with("Unknown option \"-t\" for deregister"));
    }

    #[test]
    fn bad_arguments() {
        assert_eq!(fail(&["register"]), "Wrong number of arguments");
        let e = parse_args("rtsp-proxy", &args(&["register"])).expect_err("usage");
        assert_eq!(
            e.to_string(),
            format!(
                "Wrong number of arguments\n{}",
                usage("rtsp-proxy", Kind::Register)
            ),
            "the subcommand's usage, not the proxy's"
        );
        assert!(fail(&["register", "h", "0", "rtsp://x/"]).starts_with("Invalid proxy port \"0\""));
        assert!(fail(&["register", "h", "1", "http://x/"])
            .starts_with("\"http://x/\" is not a usable rtsp:// URL"));
        assert!(
            fail(&["register", "h", "1", "rtsp://u:secret@x y/"]).contains("\"rtsp://x y/\""),
            "no password printed"
        );
        assert!(fail(&["register", "h", "1", "rtsp://x/", "a;b"])
            .starts_with("Invalid proxy-URL-suffix \"a;b\""));
        assert!(fail(&["register", "h", "1", "rtsp://x/", "/a"])
            .starts_with("Invalid proxy-URL-suffix"));
        assert!(fail(&["register", "-u", "a"]).starts_with("The -u option needs two arguments"));
        assert!(fail(&["register", "--frob", "h", "1", "rtsp://x/"])
            .starts_with("Unknown option \"--frob\""));
        assert!(matches!(
            parse_args("p", &args(&["register", "--help"])),
            Ok(CliOutcome::RegisterHelp(Kind::Register))
        ));
        assert!(usage("p", Kind::Register).contains("--reuse-connection"));
        assert!(!usage("p", Kind::Deregister).contains("--reuse-connection"));
    }
}
