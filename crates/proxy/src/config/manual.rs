//! The manual: `--help` (text that reads like a man page) and `--man` (the same
//! document as roff, committed as `doc/rtsp-proxy.1`), both rendered from one
//! [`document`], whose OPTIONS come from [`super::cli::option_groups`].
//!
//! After changing an option or the text, regenerate the committed page with
//!
//! ```sh
//! cargo run -q -p rtsp-proxy -- --man > doc/rtsp-proxy.1
//! ```
//!
//! (a unit test fails while it is stale).

use std::fmt::Write as _;

use super::cli::{option_groups, subcommand_synopsis, synopsis};
use super::{DEFAULT_RTSP_PORT, DEFAULT_STREAM_PREFIX};

/// One piece of a section.
enum Block {
    /// A paragraph, wrapped.
    Para(String),
    /// Lines shown as they are (commands).
    Literal(Vec<String>),
    /// A command synopsis: wrapped between its bracketed groups, continued lines
    /// indented.
    Synopsis(String),
    /// A term and its description (an option, a signal, an exit status).
    Item(String, String),
    /// A sub-heading.
    Sub(String),
}

/// A titled section (NAME, SYNOPSIS...).
struct Section {
    title: &'static str,
    blocks: Vec<Block>,
}

fn para(text: &str) -> Block {
    Block::Para(text.to_owned())
}

fn item(term: &str, text: &str) -> Block {
    Block::Item(term.to_owned(), text.to_owned())
}

/// The manual of `program`.
fn document(program: &str) -> Vec<Section> {
    let mut options = vec![para(
        "Options come before the URLs, as in live555ProxyServer; a value is the \
         next argument (-p 8554, never -p8554 or --port=8554); only the second \
         character of a short option counts (-verbose is -v); the last of a \
         repeated option wins unless it is said to be repeatable.",
    )];
    for (title, list) in option_groups() {
        if list.is_empty() {
            continue;
        }
        options.push(Block::Sub(title.to_owned()));
        for (names, help) in list {
            options.push(Block::Item(names.to_owned(), help));
        }
    }
    vec![
        Section {
            title: "NAME",
            blocks: vec![para(&format!(
                "{program} - RTSP proxy server: reads each back-end stream once and relays it to any number of RTSP clients"
            ))],
        },
        Section {
            title: "SYNOPSIS",
            blocks: vec![
                Block::Synopsis(synopsis(program)),
                Block::Synopsis(subcommand_synopsis(program)),
            ],
        },
        Section {
            title: "DESCRIPTION",
            blocks: vec![
                para(&format!(
                    "{program} is a drop-in successor to live555ProxyServer: the same command \
                     line, stream names and port fallback. It connects to each back end \
                     (an IP camera, an encoder, another RTSP server or another {program}) \
                     once, whatever the number of clients, and relays its RTP packets as \
                     they came (only SSRC, sequence number and timestamp are rewritten), \
                     so every codec passes through."
                )),
                para(
                    "Clients play over RTP/UDP, RTP interleaved in RTSP/TCP, RTSP over HTTP \
                     tunnels or RTSPS. They keep their sessions across back-end outages: \
                     when the back end returns, the sequence numbers go on by one and the \
                     timestamps advance by the time that passed. A back end nobody watches \
                     is paused after --linger seconds and resumed by the next client.",
                ),
                para(&format!(
                    "After start-up the proxy prints, on stderr, one \"Play this stream \
                     using the URL\" line per stream. Then stderr carries the log (--log-format). \
                     By default the RTSP port is {DEFAULT_RTSP_PORT}."
                )),
            ],
        },
        Section {
            title: "OPTIONS",
            blocks: options,
        },
        Section {
            title: "STREAM NAMES",
            blocks: vec![para(&format!(
                "One URL is served as rtsp://<host>:<port>/{DEFAULT_STREAM_PREFIX}, several as \
                 {DEFAULT_STREAM_PREFIX}-1 ... {DEFAULT_STREAM_PREFIX}-N in argument order; -e \
                 changes the prefix. Streams registered with REGISTER are named by the \
                 registering back end or registeredProxyStream-N. The demo stream is demo."
            ))],
        },
        Section {
            title: "LOGS",
            blocks: vec![
                para(
                    "Log lines go to stderr (the journal under systemd). By default: warnings \
                     and errors; -v adds proxy events, -V every back-end RTSP message. \
                     RUST_LOG (tracing's filter syntax, e.g. RUST_LOG=rtsp_proxy=debug) \
                     overrides both.",
                ),
                para(
                    "Each change of a stream's back end is one line \"path state changed\" \
                     with stream=<name> and state=described, playing, paused, resumed, lost \
                     or back (lost and back are warnings, shown without -v; lost has \
                     reason=, back has down_s=).",
                ),
                para(
                    "--log-format json writes each log line as one JSON object (timestamp, \
                     level, message, stream, state... side by side). The start-up \
                     banner (the stream URLs, as live555 prints them) stays plain text.",
                ),
            ],
        },
        Section {
            title: "SIGNALS",
            blocks: vec![
                item(
                    "SIGINT, SIGTERM",
                    "drain, then shut down: /readyz answers 503 at once, the RTSP ports close and WHEP offers get 503; the clients and WebRTC viewers that play go on for --drain-timeout (default 30 s; less once none is left; 0: no drain), then their sessions are closed, the back ends get TEARDOWN (waiting at most 3 s) and the process exits 0. A second SIGINT or SIGTERM stops at once",
                ),
                item(
                    "SIGHUP",
                    "reload (systemctl reload); never stops the proxy; with only a command line there is nothing to reload and it is logged",
                ),
            ],
        },
        Section {
            title: "EXIT STATUS",
            blocks: vec![
                item("0", "shut down by a signal, or --help, --man, --version; a subcommand that succeeded"),
                item(
                    "1",
                    "a usage error (the message and the usage on stderr), or the proxy cannot start (no port, bad certificate...); a subcommand that failed",
                ),
            ],
        },
        Section {
            title: "FILES",
            blocks: vec![
                item(
                    "/etc/rtsp-proxy/rtsp-proxy.toml",
                    "the configuration file of the Debian package's service (--config; read again when it changes, or on SIGHUP); it ships with no stream",
                ),
                item(
                    "/etc/default/rtsp-proxy",
                    "environment of the service (mode 600): the cameras' passwords (password_env in the configuration) and extra options (RTSP_PROXY_ARGS)",
                ),
                item(
                    "/usr/lib/systemd/system/rtsp-proxy.service",
                    "the hardened systemd unit (DynamicUser; reload by SIGHUP; TimeoutStopSec above the drain timeout)",
                ),
            ],
        },
        Section {
            title: "EXAMPLES",
            blocks: vec![
                para("Proxy one camera; clients play rtsp://<host>/proxyStream:"),
                Block::Literal(vec![format!("{program} rtsp://admin:secret@camera.local/stream1")]),
                para("Two cameras on port 8554, back-end media over TCP, clients must log in:"),
                Block::Literal(vec![format!(
                    "{program} -t -p 8554 -C viewer s3cret rtsp://cam1/a rtsp://cam2/a"
                )]),
                para("An edge proxy relaying an origin proxy, JSON logs:"),
                Block::Literal(vec![format!(
                    "{program} -p 8554 --log-format json rtsp://origin:8554/proxyStream"
                )]),
                para("A camera that registers itself:"),
                Block::Literal(vec![
                    format!("{program} -R -p 8554"),
                    format!("{program} register proxy 8554 rtsp://camera.local/stream1 cam1"),
                ]),
            ],
        },
        Section {
            title: "SEE ALSO",
            blocks: vec![para(
                "live555ProxyServer(1), ffplay(1), gst-launch-1.0(1), systemd.service(5), \
                 systemd.exec(5); README.md of the source tree (deployment, systemd unit).",
            )],
        },
    ]
}

/// Width of `--help`'s lines.
const WIDTH: usize = 79;

/// `text` wrapped at [`WIDTH`], each line indented by `indent` spaces.
fn wrap(out: &mut String, text: &str, indent: usize) {
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent + line.len() + 1 + word.len() > WIDTH {
            let _ = writeln!(out, "{:indent$}{line}", "");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let _ = writeln!(out, "{:indent$}{line}", "");
    }
}

/// The words of a synopsis: split at spaces outside `[...]` and `<...>`.
fn synopsis_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut depth = 0i32;
    for c in text.chars() {
        match c {
            '[' | '<' => depth += 1,
            ']' | '>' => depth -= 1,
            ' ' if depth <= 0 => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                continue;
            }
            _ => {}
        }
        word.push(c);
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// A synopsis as lines of at most `width` characters (but for a longer group), the
/// continued ones indented by `hang` spaces.
fn synopsis_lines(text: &str, width: usize, hang: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in synopsis_words(text) {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
            line = " ".repeat(hang);
        } else if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    lines.push(line);
    lines
}

/// `--help`: the manual as text.
#[must_use]
pub fn help(program: &str) -> String {
    let mut out = String::new();
    for (i, section) in document(program).into_iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "{}", section.title);
        let mut first = true;
        for block in section.blocks {
            match block {
                Block::Para(text) => {
                    if !first {
                        out.push('\n');
                    }
                    wrap(&mut out, &text, 4);
                }
                Block::Literal(lines) => {
                    for line in lines {
                        let _ = writeln!(out, "        {line}");
                    }
                }
                Block::Synopsis(text) => {
                    for line in synopsis_lines(&text, WIDTH - 4, 8) {
                        let _ = writeln!(out, "    {line}");
                    }
                }
                Block::Item(term, text) => {
                    let _ = writeln!(out, "    {term}");
                    wrap(&mut out, &text, 10);
                }
                Block::Sub(title) => {
                    out.push('\n');
                    let _ = writeln!(out, "  {title}");
                }
            }
            first = false;
        }
    }
    out
}

/// Text made safe for roff: backslashes and hyphens escaped, and a line that would
/// start with a control character (`.` or `'`) protected.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// `--man`: the manual page, in roff (`man -l doc/rtsp-proxy.1`).
#[must_use]
pub fn man_page() -> String {
    let program = "rtsp-proxy";
    let mut out = String::new();
    let _ = writeln!(
        out,
        ".\\\" Generated by `rtsp-proxy --man` from crates/proxy/src/config/{{cli,manual}}.rs; do not edit."
    );
    let _ = writeln!(
        out,
        ".TH RTSP\\-PROXY 1 \"\" \"rtsp\\-proxy {}\" \"User Commands\"",
        roff(env!("CARGO_PKG_VERSION"))
    );
    for section in document(program) {
        let _ = writeln!(out, ".SH {}", section.title);
        for block in section.blocks {
            match block {
                Block::Para(text) => {
                    let _ = writeln!(out, ".PP\n{}", roff(&text));
                }
                Block::Literal(lines) => {
                    out.push_str(".PP\n.nf\n");
                    for line in lines {
                        let _ = writeln!(out, "{}", roff(&line));
                    }
                    out.push_str(".fi\n");
                }
                Block::Synopsis(text) => {
                    out.push_str(".PP\n.nf\n");
                    for line in synopsis_lines(&text, 72, 8) {
                        let _ = writeln!(out, "{}", roff(&line));
                    }
                    out.push_str(".fi\n");
                }
                Block::Item(term, text) => {
                    let _ = writeln!(out, ".TP\n\\fB{}\\fR\n{}", roff(&term), roff(&text));
                }
                Block::Sub(title) => {
                    let _ = writeln!(out, ".SS \"{}\"", roff(&title));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed page, from the repository root.
    const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../doc/rtsp-proxy.1");

    #[test]
    fn committed_man_page_is_up_to_date() {
        let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
        assert!(
            committed == man_page(),
            "doc/rtsp-proxy.1 is stale; regenerate it with:\n  cargo run -q -p rtsp-proxy -- --man > doc/rtsp-proxy.1"
        );
    }

    #[test]
    fn help_and_man_page_list_every_option_of_the_table() {
        let help = help("rtsp-proxy");
        let man = man_page();
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "STREAM NAMES",
            "LOGS",
            "SIGNALS",
            "EXIT STATUS",
            "FILES",
            "EXAMPLES",
            "SEE ALSO",
        ] {
            assert!(
                help.contains(&format!("\n{section}\n")) || help.starts_with(section),
                "{section}"
            );
            assert!(man.contains(&format!(".SH {section}\n")), "{section}");
        }
        for (title, options) in option_groups() {
            if !options.is_empty() {
                assert!(help.contains(&format!("\n  {title}\n")), "{title}");
                assert!(man.contains(&format!(".SS \"{}\"", roff(title))), "{title}");
            }
            for (names, _) in options {
                assert!(help.contains(&format!("\n    {names}\n")), "{names}");
                assert!(man.contains(&format!("\\fB{}\\fR", roff(names))), "{names}");
            }
        }
        for line in help.lines() {
            assert!(line.len() <= WIDTH, "too long: {line}");
        }
        // The synopsis is wrapped between its groups, nothing lost.
        let wrapped = synopsis_lines(&synopsis("rtsp-proxy"), 75, 8);
        assert!(wrapped.len() > 1);
        assert_eq!(
            wrapped
                .iter()
                .map(|l| l.trim())
                .collect::<Vec<_>>()
                .join(" "),
            synopsis("rtsp-proxy")
        );
        assert!(help.starts_with("NAME\n    rtsp-proxy - "));
    }

    #[test]
    fn roff_is_escaped() {
        assert_eq!(roff("--tls-cert a\\b"), "\\-\\-tls\\-cert a\\eb");
        assert_eq!(roff(".hidden"), "\\&.hidden");
        assert_eq!(roff("'quote"), "\\&'quote");
        // No line of the page starts with a stray control character.
        for line in man_page().lines() {
            if let Some(rest) = line.strip_prefix('.') {
                let request = rest.split_whitespace().next().unwrap_or("");
                assert!(
                    ["\\\"", "TH", "SH", "SS", "PP", "TP", "nf", "fi"].contains(&request),
                    "{line}"
                );
            }
        }
    }
}
