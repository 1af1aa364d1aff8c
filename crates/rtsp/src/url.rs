//! `rtsp://` and `rtsps://` URLs: parsing with credentials, control URL
//! resolution, and redaction of credentials for logs.

use std::fmt;

use crate::auth::Credentials;

/// Longest URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 4096;

/// Default port of `rtsp://`.
pub const RTSP_DEFAULT_PORT: u16 = 554;
/// Default port of `rtsps://`.
pub const RTSPS_DEFAULT_PORT: u16 = 322;

/// Why a URL was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The URL is longer than [`MAX_URL_LEN`].
    #[error("URL too long")]
    TooLong,
    /// The URL holds whitespace or control characters.
    #[error("URL contains whitespace or control characters")]
    InvalidCharacter,
    /// There is no `scheme://`.
    #[error("URL has no scheme")]
    MissingScheme,
    /// The scheme is neither `rtsp` nor `rtsps`.
    #[error("unsupported URL scheme {0:?}")]
    UnsupportedScheme(String),
    /// The host is empty.
    #[error("URL has no host")]
    EmptyHost,
    /// The host has characters a host cannot have, or an IPv6 literal is
    /// malformed.
    #[error("malformed host in URL")]
    BadHost,
    /// The port is not a number from 0 to 65535.
    #[error("malformed port in URL")]
    BadPort,
    /// A `%` escape in the user information is malformed or does not decode
    /// to UTF-8.
    #[error("malformed percent-escape in URL credentials")]
    BadEscape,
}

/// A parsed `rtsp://` or `rtsps://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtspUrl {
    /// `rtsp` or `rtsps`, lowercase.
    pub scheme: String,
    /// The host, without brackets for IPv6 literals.
    pub host: String,
    /// The explicit port, if any.
    pub port: Option<u16>,
    /// Everything from the first `/` after the authority, query included;
    /// `/` when empty.
    pub path: String,
    /// Percent-decoded user information, if any.
    pub credentials: Option<Credentials>,
}

impl RtspUrl {
    /// Parses a URL. The scheme is matched case-insensitively. The user
    /// information is the text up to the last `@` before the first `/` after
    /// `//`; its first `:` separates user and password, and both are
    /// percent-decoded.
    pub fn parse(s: &str) -> Result<RtspUrl, UrlError> {
        let s = s.trim();
        if s.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        if s.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(UrlError::InvalidCharacter);
        }
        let (scheme, rest) = s.split_once("://").ok_or(UrlError::MissingScheme)?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "rtsp" && scheme != "rtsps" {
            return Err(UrlError::UnsupportedScheme(scheme));
        }

        let slash = rest.find('/').unwrap_or(rest.len());
        let (authority, path) = rest.split_at(slash);
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        // Without a path, a query or fragment may follow the host directly.
        let (hostport, path) = match hostport.find(['?', '#']) {
            Some(q) if path.is_empty() => (&hostport[..q], format!("/{}", &hostport[q..])),
            _ if path.is_empty() => (hostport, "/".to_owned()),
            _ => (hostport, path.to_owned()),
        };

        let credentials = match userinfo {
            Some(info) => {
                let (user, pass) = info.split_once(':').unwrap_or((info, ""));
                Some(Credentials {
                    username: percent_decode(user)?,
                    password: percent_decode(pass)?,
                })
            }
            None => None,
        };
        let (host, port) = parse_host_port(hostport)?;
        Ok(RtspUrl {
            scheme,
            host,
            port,
            path,
            credentials,
        })
    }

    /// The explicit port, or 554 for `rtsp` and 322 for `rtsps`.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(if self.scheme == "rtsps" {
            RTSPS_DEFAULT_PORT
        } else {
            RTSP_DEFAULT_PORT
        })
    }

    /// `host[:port]`, with brackets around IPv6 literals. The port is
    /// included only when the URL had one.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }
    }

    /// The host (no brackets) and port to connect to.
    pub fn connect_target(&self) -> (String, u16) {
        (self.host.clone(), self.port_or_default())
    }

    /// The full URL with no user information: what goes on the wire and in
    /// logs.
    pub fn without_credentials(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority(), self.path)
    }
}

impl fmt::Display for RtspUrl {
    /// Same as [`RtspUrl::without_credentials`]: credentials never appear.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.without_credentials())
    }
}

/// Splits `host[:port]` or `[v6][:port]`.
fn parse_host_port(s: &str) -> Result<(String, Option<u16>), UrlError> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(UrlError::BadHost)?;
        let valid = host.contains(':')
            && host.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'%' | b'-' | b'_')
            });
        if !valid {
            return Err(UrlError::BadHost);
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(UrlError::BadPort)?),
        };
        (host, port)
    } else {
        let (host, port) = match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        if host.is_empty() {
            return Err(UrlError::EmptyHost);
        }
        let valid = host.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'%'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                )
        });
        if !valid {
            return Err(UrlError::BadHost);
        }
        (host, port)
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(crate::util::parse_u16_digits(p).ok_or(UrlError::BadPort)?),
    };
    Ok((host.to_owned(), port))
}

/// Decodes `%XX` escapes; the result must be UTF-8.
fn percent_decode(s: &str) -> Result<String, UrlError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(UrlError::BadEscape)?;
            let hex = std::str::from_utf8(hex).map_err(|_| UrlError::BadEscape)?;
            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                return Err(UrlError::BadEscape);
            }
            out.push(u8::from_str_radix(hex, 16).map_err(|_| UrlError::BadEscape)?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlError::BadEscape)
}

/// Resolves an SDP `a=control:` value against a base URL, as ffmpeg does:
/// an absolute control (containing `://`) is used as is; `*` or an empty
/// control means the base itself; otherwise the control is appended to the
/// base with a `/` between them unless the base already ends with `/`.
pub fn resolve_control(base: &str, control: &str) -> String {
    let control = control.trim();
    if control.contains("://") {
        control.to_owned()
    } else if control.is_empty() || control == "*" {
        base.to_owned()
    } else if base.ends_with('/') {
        format!("{base}{control}")
    } else {
        format!("{base}/{control}")
    }
}

/// Removes the user information of every `scheme://user:pass@host` in `text`
/// (a URL or a log line holding URLs), for logging. Every URL the proxy prints
/// goes through here.
///
/// A URL runs from its scheme to the next whitespace (or the next URL's
/// scheme): passwords may hold `'`, `"`, `<`, `>` or `,`, so no such
/// character ends it. The user information ends at the last `@` before the
/// first `/`. Where an `@` also follows a `/` and the text before the last
/// `@` holds a `:` or another `@`, it is ambiguous (a password with a raw
/// `/`, or a path with an `@` after a port) and everything up to the last `@`
/// is hidden, shown as `<hidden>@`: a log line may lose a host, never a
/// password.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (before, after) = rest.split_at(pos + 3);
        out.push_str(before);
        let token_end = after.find(char::is_whitespace).unwrap_or(after.len());
        // The next URL inside the same token (`...,url=rtsp://...`) starts
        // at its scheme: just after the last character that cannot be part
        // of a scheme (which may be a multi-byte one).
        let end = match after[..token_end].find("://") {
            Some(next) => after[..next]
                .char_indices()
                .rfind(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
                .map_or(0, |(i, c)| i + c.len_utf8()),
            None => token_end,
        };
        out.push_str(&redact_one(&after[..end]));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// One URL after its `scheme://`, without its user information.
fn redact_one(url: &str) -> std::borrow::Cow<'_, str> {
    let Some(last_at) = url.rfind('@') else {
        return url.into();
    };
    let slash = url.find('/').unwrap_or(url.len());
    if last_at < slash {
        // The usual case: user information, then the host.
        return url[last_at + 1..].into();
    }
    // An '@' after the first '/': a path with an '@' when nothing before
    // that '@' could be a password (no ':' and no other '@').
    if !url[..last_at].contains([':', '@']) {
        return url.into();
    }
    format!("<hidden>@{}", &url[last_at + 1..]).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(u: &str, p: &str) -> Option<Credentials> {
        Some(Credentials {
            username: u.into(),
            password: p.into(),
        })
    }

    #[test]
    fn full_url_with_escaped_password() {
        let u = RtspUrl::parse("rtsp://user:p%40ss@host:8554/path?x=1").unwrap();
        assert_eq!(u.scheme, "rtsp");
        assert_eq!(u.host, "host");
        assert_eq!(u.port, Some(8554));
        assert_eq!(u.path, "/path?x=1");
        assert_eq!(u.credentials, creds("user", "p@ss"));
        assert_eq!(u.without_credentials(), "rtsp://host:8554/path?x=1");
        assert_eq!(u.to_string(), "rtsp://host:8554/path?x=1");
        assert_eq!(u.connect_target(), ("host".to_owned(), 8554));
    }

    /// Found by the `url` fuzz target (and `tests/robustness.rs`): a
    /// non-ASCII character just before a second URL's scheme in one token
    /// made `redact` slice inside that character and panic.
    #[test]
    fn redact_second_url_after_non_ascii_character() {
        assert_eq!(
            redact("rtsp://u:p@h/a\u{e9}rtsp://v:q@k/b"),
            "rtsp://h/a\u{e9}rtsp://k/b"
        );
        assert_eq!(
            redact("rtsp://h/x\u{fffd}rtsp://v:q@k/"),
            "rtsp://h/x\u{fffd}rtsp://k/"
        );
        assert_eq!(redact("a://\u{1f600}b://u:p@h"), "a://\u{1f600}b://h");
        for text in [
            "\u{e9}://\u{e9}://",
            "rtsp://\u{e9}\u{e9}://x",
            "://\u{10ffff}://@",
        ] {
            let _ = redact(text);
        }
    }

    #[test]
    fn raw_at_in_password_uses_last_at() {
        let u = RtspUrl::parse("rtsp://admin:p@ss@w0rd@10.0.0.5/Streaming/101").unwrap();
        assert_eq!(u.credentials, creds("admin", "p@ss@w0rd"));
        assert_eq!(u.host, "10.0.0.5");
        assert_eq!(u.path, "/Streaming/101");
        // An '@' after the first '/' belongs to the path.
        let u = RtspUrl::parse("rtsp://host/a@b").unwrap();
        assert_eq!(u.credentials, None);
        assert_eq!(u.path, "/a@b");
        // Only the first ':' splits user and password.
        let u = RtspUrl::parse("rtsp://u:a:b@h").unwrap();
        assert_eq!(u.credentials, creds("u", "a:b"));
        let u = RtspUrl::parse("rtsp://onlyuser@h").unwrap();
        assert_eq!(u.credentials, creds("onlyuser", ""));
    }

    #[test]
    fn ipv6_and_defaults() {
        let u = RtspUrl::parse("RTSP://[::1]:8554/live").unwrap();
        assert_eq!(u.scheme, "rtsp");
        assert_eq!(u.host, "::1");
        assert_eq!(u.port, Some(8554));
        assert_eq!(u.authority(), "[::1]:8554");
        assert_eq!(u.to_string(), "rtsp://[::1]:8554/live");
        assert_eq!(u.connect_target(), ("::1".to_owned(), 8554));

        let u = RtspUrl::parse("rtsps://[fe80::1%25eth0]").unwrap();
        assert_eq!(u.port_or_default(), 322);
        assert_eq!(u.path, "/");
        assert_eq!(u.to_string(), "rtsps://[fe80::1%25eth0]/");

        let u = RtspUrl::parse("rtsp://cam.local").unwrap();
        assert_eq!(u.port_or_default(), 554);
        assert_eq!(u.authority(), "cam.local");
        let u = RtspUrl::parse("rtsp://cam:/x").unwrap();
        assert_eq!(u.port, None);
        let u = RtspUrl::parse("rtsp://cam?x=1").unwrap();
        assert_eq!((u.host.as_str(), u.path.as_str()), ("cam", "/?x=1"));
    }

    #[test]
    fn errors() {
        assert_eq!(
            RtspUrl::parse("http://h/"),
            Err(UrlError::UnsupportedScheme("http".into()))
        );
        assert_eq!(RtspUrl::parse("rtsp:/h/"), Err(UrlError::MissingScheme));
        assert_eq!(RtspUrl::parse("rtsp:///x"), Err(UrlError::EmptyHost));
        assert_eq!(RtspUrl::parse("rtsp://u:p@/x"), Err(UrlError::EmptyHost));
        assert_eq!(RtspUrl::parse("rtsp://h:99999/"), Err(UrlError::BadPort));
        assert_eq!(RtspUrl::parse("rtsp://h:8a/"), Err(UrlError::BadPort));
        assert_eq!(RtspUrl::parse("rtsp://[::1/"), Err(UrlError::BadHost));
        assert_eq!(RtspUrl::parse("rtsp://[::1]x/"), Err(UrlError::BadPort));
        assert_eq!(RtspUrl::parse("rtsp://[host]/"), Err(UrlError::BadHost));
        assert_eq!(RtspUrl::parse("rtsp://::1/"), Err(UrlError::EmptyHost));
        assert_eq!(RtspUrl::parse("rtsp://a:1:2/"), Err(UrlError::BadPort));
        assert_eq!(
            RtspUrl::parse("rtsp://h h/"),
            Err(UrlError::InvalidCharacter)
        );
        assert_eq!(RtspUrl::parse("rtsp://u:%4@h/"), Err(UrlError::BadEscape));
        assert_eq!(RtspUrl::parse("rtsp://u:%zz@h/"), Err(UrlError::BadEscape));
        assert_eq!(RtspUrl::parse("rtsp://u:%ff@h/"), Err(UrlError::BadEscape));
        assert_eq!(
            RtspUrl::parse(&format!("rtsp://h/{}", "a".repeat(MAX_URL_LEN))),
            Err(UrlError::TooLong)
        );
    }

    #[test]
    fn resolve_control_cases() {
        let base = "rtsp://127.0.0.1:31554/h264aac/";
        assert_eq!(
            resolve_control(base, "stream=0"),
            "rtsp://127.0.0.1:31554/h264aac/stream=0"
        );
        assert_eq!(resolve_control(base, "*"), base);
        assert_eq!(resolve_control(base, ""), base);
        assert_eq!(
            resolve_control("rtsp://h/proxyStream", "track1"),
            "rtsp://h/proxyStream/track1"
        );
        assert_eq!(
            resolve_control("rtsp://h/s", "rtsp://other/s/trackID=1"),
            "rtsp://other/s/trackID=1"
        );
        assert_eq!(
            resolve_control("rtsp://h/s/", " trackID=2 "),
            "rtsp://h/s/trackID=2"
        );
    }

    /// Every character RFC 3986 allows in a URL (unreserved, gen-delims,
    /// sub-delims, '%'), and a few it does not, in user names and passwords,
    /// raw and percent-encoded, alone and in log lines: no password survives.
    #[test]
    fn redaction_hides_passwords_whatever_they_hold() {
        let mut chars: Vec<char> = ('a'..='c').chain('A'..='C').chain('0'..='2').collect();
        chars.extend("-._~:/?#[]@!$&'()*+,;=%\"<>{}|\\^`".chars());
        let mut checked = 0;
        for &c in &chars {
            for password in [
                format!("Pw{c}Xq"),
                format!("{c}PwXq"),
                format!("PwXq{c}"),
                format!("Pw%{:02X}Xq", c as u32),
            ] {
                for user in ["admin", "ad{c}min"] {
                    let user = user.replace("{c}", &c.to_string());
                    for host in ["cam.local", "192.0.2.7:8554", "[2001:db8::1]:554"] {
                        let url = format!("rtsp://{user}:{password}@{host}/Streaming/101");
                        for line in [
                            url.clone(),
                            format!("proxying the stream \"{url}\""),
                            format!("back end {url}: refused; retry in 1 s"),
                            format!("<{url}>, '{url}'"),
                        ] {
                            let shown = redact(&line);
                            checked += 1;
                            for secret in ["Pw", "PwXq", "Xq"] {
                                assert!(!shown.contains(secret), "{line:?} was shown as {shown:?}");
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 3000);
    }

    #[test]
    fn redact_strings() {
        assert_eq!(redact("rtsp://user:p@ss@host:554/x"), "rtsp://host:554/x");
        assert_eq!(redact("rtsp://host/a@b"), "rtsp://host/a@b");
        assert_eq!(
            redact("connect to rtsp://a:b@h1/x and rtsps://c@h2 failed"),
            "connect to rtsp://h1/x and rtsps://h2 failed"
        );
        assert_eq!(redact("no url here"), "no url here");
        assert_eq!(redact("weird ://u@"), "weird ://");
        // Quotes and brackets do not end a URL (a password may hold them).
        assert_eq!(
            redact("\"rtsp://user:it'sS3cret@host/x\""),
            "\"rtsp://host/x\""
        );
        assert_eq!(redact("<rtsp://u:a<b>c@h/x>"), "<rtsp://h/x>");
        // A raw '/' in the password: hidden up to the last '@'.
        assert_eq!(
            redact("rtsp://admin:pa/ss@cam/live"),
            "rtsp://<hidden>@cam/live"
        );
        assert_eq!(redact("rtsp://admin:p@ss/w@cam"), "rtsp://<hidden>@cam");
        // A path with an '@' and no user information keeps its host...
        assert_eq!(redact("rtsp://host/a@b"), "rtsp://host/a@b");
        // ...unless a port makes it look like a password.
        assert_eq!(redact("rtsp://host:554/a@b"), "rtsp://<hidden>@b");
        // A URL right after a non-ASCII character.
        assert_eq!(redact("h/s*0értsp://u:p@h/s"), "h/s*0értsp://h/s");
        assert_eq!(
            redact("rtsp://a:b@h/xérTSp://c:d@h2/y"),
            "rtsp://h/xérTSp://h2/y"
        );
        // Several URLs in one token (RTP-Info).
        assert_eq!(
            redact("RTP-Info: url=rtsp://u:p@h/t1;seq=1,url=rtsps://v:q@h/t2;seq=2"),
            "RTP-Info: url=rtsp://h/t1;seq=1,url=rtsps://h/t2;seq=2"
        );
    }
}
