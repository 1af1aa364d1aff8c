//! Text from the network made safe for a log line: wire messages logged at `-V`
//! keep one log line per message line, indented, with every control character
//! shown as an escape, so that a back end cannot forge log lines (a bare `\n` in
//! a header or body) or drive a terminal (ANSI escapes); and credentials are
//! hidden.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Header names whose values are never logged.
const SECRET_HEADERS: [&str; 2] = ["authorization", "proxy-authorization"];

/// One character as it may appear in a log: printable characters and tabs as
/// they are, anything else as `\r`, `\n` or `\u{..}`.
fn push_escaped(out: &mut String, c: char) {
    match c {
        '\r' => out.push_str("\\r"),
        '\n' => out.push_str("\\n"),
        '\\' => out.push_str("\\\\"),
        '\t' => out.push('\t'),
        c if c.is_control() => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

/// `text` on one line: every control character escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    out
}

/// An RTSP message for the log: split at its CRLFs, each line escaped and
/// prefixed with `  | `, secret header values replaced; trailing blank lines
/// dropped.
pub fn wire_message(text: &str) -> String {
    let text = text.trim_end_matches(['\r', '\n']);
    let mut out = String::with_capacity(text.len() + 64);
    for (i, line) in text.split("\r\n").enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str("  | ");
        let secret = line.split_once(':').is_some_and(|(name, _)| {
            SECRET_HEADERS.contains(&name.trim().to_ascii_lowercase().as_str())
        });
        match line.split_once(':') {
            Some((name, _)) if secret => {
                out.push_str(&escape(name));
                out.push_str(": <redacted>");
            }
            _ => {
                for c in line.chars() {
                    push_escaped(&mut out, c);
                }
            }
        }
    }
    out
}

/// Says yes at most once every 10 s: for warnings that a client can cause at
/// will (refused connections, requests for another address's session), so that
/// a flood of them does not flood the log.
#[derive(Debug, Default)]
pub struct Throttle {
    last: Option<Instant>,
}

impl Throttle {
    pub const PERIOD: Duration = Duration::from_secs(10);

    pub fn should_log(&mut self, now: Instant) -> bool {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < Self::PERIOD => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_make_a_line_of_their_own_or_reach_a_terminal() {
        let forged = "RTSP/1.0 200 OK\r\nCSeq: 2\r\nX-Note: a\n2026-12-02T00:00:00Z  WARN fake line\x1b[31m\r\n\r\nv=0\nbody\r\n\r\n";
        let shown = wire_message(forged);
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(
            lines,
            [
                "  | RTSP/1.0 200 OK",
                "  | CSeq: 2",
                "  | X-Note: a\\n2026-12-02T00:00:00Z  WARN fake line\\u{1b}[31m",
                "  | ",
                "  | v=0\\nbody",
            ]
        );
        assert!(shown.lines().all(|l| l.starts_with("  | ")));
        assert!(!shown.contains('\x1b'));
        assert_eq!(
            escape("a\rb\0c\u{7f}d\u{9b}e\\"),
            "a\\rb\\u{0}c\\u{7f}d\\u{9b}e\\\\"
        );
        assert_eq!(escape("tab\there é"), "tab\there é");
    }

    #[test]
    fn credentials_are_hidden() {
        let req = "DESCRIBE rtsp://cam/x RTSP/1.0\r\nCSeq: 3\r\nAuthorization: Digest username=\"admin\", response=\"abc\"\r\nproxy-authorization : Basic YTpi\r\n\r\n";
        let shown = wire_message(req);
        assert!(shown.contains("  | Authorization: <redacted>"), "{shown}");
        assert!(
            shown.contains("  | proxy-authorization : <redacted>"),
            "{shown}"
        );
        assert!(
            !shown.contains("admin") && !shown.contains("YTpi"),
            "{shown}"
        );
    }

    #[test]
    fn a_throttle_says_yes_once_per_period() {
        let t0 = Instant::now();
        let mut t = Throttle::default();
        assert!(t.should_log(t0));
        assert!(!t.should_log(t0 + Duration::from_secs(1)));
        assert!(!t.should_log(t0 + Duration::from_millis(9_999)));
        assert!(t.should_log(t0 + Throttle::PERIOD));
        assert!(!t.should_log(t0 + Throttle::PERIOD));
    }
}
