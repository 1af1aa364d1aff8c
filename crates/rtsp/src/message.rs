//! RTSP messages: methods, versions, header lists, requests and responses,
//! and their encoding to wire bytes.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::util::parse_u32_digits;

/// An RTSP (or tunnelling HTTP) request method.
///
/// Method names are case-sensitive, as in RFC 2326: `options` is an
/// [`Method::Extension`], not [`Method::Options`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// `OPTIONS`
    Options,
    /// `DESCRIBE`
    Describe,
    /// `SETUP`
    Setup,
    /// `PLAY`
    Play,
    /// `PAUSE`
    Pause,
    /// `TEARDOWN`
    Teardown,
    /// `GET_PARAMETER`
    GetParameter,
    /// `SET_PARAMETER`
    SetParameter,
    /// `ANNOUNCE`
    Announce,
    /// `RECORD`
    Record,
    /// `REDIRECT`
    Redirect,
    /// `REGISTER` (live555 extension)
    Register,
    /// `DEREGISTER` (live555 extension)
    Deregister,
    /// HTTP `GET` (RTSP-over-HTTP tunnelling)
    Get,
    /// HTTP `POST` (RTSP-over-HTTP tunnelling)
    Post,
    /// Any other method, exactly as sent.
    Extension(String),
}

impl Method {
    /// The method name as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Options => "OPTIONS",
            Method::Describe => "DESCRIBE",
            Method::Setup => "SETUP",
            Method::Play => "PLAY",
            Method::Pause => "PAUSE",
            Method::Teardown => "TEARDOWN",
            Method::GetParameter => "GET_PARAMETER",
            Method::SetParameter => "SET_PARAMETER",
            Method::Announce => "ANNOUNCE",
            Method::Record => "RECORD",
            Method::Redirect => "REDIRECT",
            Method::Register => "REGISTER",
            Method::Deregister => "DEREGISTER",
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Extension(s) => s,
        }
    }

    /// Maps a method name to a [`Method`] (case-sensitive). Unknown names
    /// become [`Method::Extension`].
    pub fn parse(s: &str) -> Method {
        match s {
            "OPTIONS" => Method::Options,
            "DESCRIBE" => Method::Describe,
            "SETUP" => Method::Setup,
            "PLAY" => Method::Play,
            "PAUSE" => Method::Pause,
            "TEARDOWN" => Method::Teardown,
            "GET_PARAMETER" => Method::GetParameter,
            "SET_PARAMETER" => Method::SetParameter,
            "ANNOUNCE" => Method::Announce,
            "RECORD" => Method::Record,
            "REDIRECT" => Method::Redirect,
            "REGISTER" => Method::Register,
            "DEREGISTER" => Method::Deregister,
            "GET" => Method::Get,
            "POST" => Method::Post,
            other => Method::Extension(other.to_owned()),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The protocol version of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Version {
    /// `RTSP/1.0`
    Rtsp10,
    /// `HTTP/1.0` (tunnelling)
    Http10,
    /// `HTTP/1.1` (tunnelling)
    Http11,
    /// Any other well-formed version token, e.g. `RTSP/2.0`. A server answers
    /// such requests with 505 itself.
    Other(String),
}

impl Version {
    /// Parses a version token of the form `RTSP/<digits>.<digits>` or
    /// `HTTP/<digits>.<digits>` (case-sensitive). Returns `None` for anything
    /// else.
    pub fn parse(s: &str) -> Option<Version> {
        let rest = s
            .strip_prefix("RTSP/")
            .or_else(|| s.strip_prefix("HTTP/"))?;
        let (major, minor) = rest.split_once('.')?;
        let ok = |p: &str| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit());
        if !ok(major) || !ok(minor) {
            return None;
        }
        Some(match s {
            "RTSP/1.0" => Version::Rtsp10,
            "HTTP/1.0" => Version::Http10,
            "HTTP/1.1" => Version::Http11,
            other => Version::Other(other.to_owned()),
        })
    }

    /// The version token as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Version::Rtsp10 => "RTSP/1.0",
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
            Version::Other(s) => s,
        }
    }

    /// Whether this is an HTTP version (a tunnelling message).
    pub fn is_http(&self) -> bool {
        match self {
            Version::Http10 | Version::Http11 => true,
            Version::Rtsp10 => false,
            Version::Other(s) => s.starts_with("HTTP/"),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ordered list of header fields.
///
/// Lookups are case-insensitive on the name; the order and the spelling of
/// names are kept for encoding. Values are stored as given and returned
/// trimmed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<(String, String)>,
}

impl Headers {
    /// An empty header list.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of the first field called `name` (case-insensitive), trimmed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim_matches([' ', '\t']))
    }

    /// The values of all fields called `name` (case-insensitive), trimmed, in
    /// order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim_matches([' ', '\t']))
    }

    /// Replaces every field called `name` by one field with `value`. The new
    /// field takes the place of the first old one, or goes last.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self
            .fields
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(first) => {
                self.fields[first] = (name.to_owned(), value);
                let mut i = 0;
                self.fields.retain(|(n, _)| {
                    let keep = i == first || !n.eq_ignore_ascii_case(name);
                    i += 1;
                    keep
                });
            }
            None => self.fields.push((name.to_owned(), value)),
        }
    }

    /// Adds a field at the end, keeping existing fields of the same name.
    pub fn append(&mut self, name: &str, value: impl Into<String>) {
        self.fields.push((name.to_owned(), value.into()));
    }

    /// Removes every field called `name` (case-insensitive).
    pub fn remove(&mut self, name: &str) {
        self.fields.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Whether a field called `name` (case-insensitive) is present.
    pub fn contains(&self, name: &str) -> bool {
        self.fields
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// All fields in order, as `(name, value)` with the value as stored.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The `CSeq` value, when present and all digits.
    pub(crate) fn cseq(&self) -> Option<u32> {
        self.get("CSeq").and_then(parse_u32_digits)
    }

    /// Writes every field as `Name: value\r\n`. With `content_length`, the
    /// first `Content-Length` field is written with that value, the others
    /// are dropped, and one is added at the end if there was none.
    fn encode(&self, out: &mut BytesMut, content_length: Option<usize>) {
        let mut length_written = false;
        for (name, value) in &self.fields {
            if let Some(len) = content_length {
                if name.eq_ignore_ascii_case("Content-Length") {
                    if !length_written {
                        put_sanitized(out, name);
                        out.put_slice(b": ");
                        out.put_slice(len.to_string().as_bytes());
                        out.put_slice(b"\r\n");
                        length_written = true;
                    }
                    continue;
                }
            }
            put_sanitized(out, name);
            out.put_slice(b": ");
            put_sanitized(out, value);
            out.put_slice(b"\r\n");
        }
        if let (Some(len), false) = (content_length, length_written) {
            out.put_slice(b"Content-Length: ");
            out.put_slice(len.to_string().as_bytes());
            out.put_slice(b"\r\n");
        }
    }
}

/// Writes `s`, replacing CR and LF by spaces so that no caller-supplied text
/// can end a line early (header injection).
fn put_sanitized(out: &mut BytesMut, s: &str) {
    if s.bytes().any(|b| b == b'\r' || b == b'\n') {
        for b in s.bytes() {
            out.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
        }
    } else {
        out.put_slice(s.as_bytes());
    }
}

/// Writes the header block end and the body, with a `Content-Length` when the
/// body is not empty.
fn encode_tail(headers: &Headers, body: &Bytes, out: &mut BytesMut) {
    let content_length = (!body.is_empty()).then_some(body.len());
    headers.encode(out, content_length);
    out.put_slice(b"\r\n");
    out.put_slice(body);
}

/// An RTSP request (or a tunnelling HTTP request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The request URI, exactly as sent (may hold credentials when built by a
    /// caller: use [`crate::url::redact`] before logging).
    pub uri: String,
    /// The protocol version.
    pub version: Version,
    /// The header fields.
    pub headers: Headers,
    /// The body (empty when there is none).
    pub body: Bytes,
}

impl Request {
    /// A new `RTSP/1.0` request with no headers and no body.
    pub fn new(method: Method, uri: impl Into<String>) -> Self {
        Request {
            method,
            uri: uri.into(),
            version: Version::Rtsp10,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Builder form of [`Headers::set`].
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.set(name, value);
        self
    }

    /// The first value of header `name`, trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The `CSeq` number, when present and valid.
    pub fn cseq(&self) -> Option<u32> {
        self.headers.cseq()
    }

    /// Appends the wire form to `out`.
    ///
    /// When the body is not empty a `Content-Length` with its real length is
    /// written in place of any stale one. When the body is empty the headers
    /// are written as they are (an HTTP tunnelling `POST` carries a
    /// `Content-Length` with no body). CR and LF inside names and values are
    /// written as spaces.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(64 + self.uri.len() + self.body.len());
        out.put_slice(self.method.as_str().as_bytes());
        out.put_u8(b' ');
        put_sanitized(out, &self.uri);
        out.put_u8(b' ');
        out.put_slice(self.version.as_str().as_bytes());
        out.put_slice(b"\r\n");
        encode_tail(&self.headers, &self.body, out);
    }

    /// The wire form as one buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }
}

/// An RTSP response (or a tunnelling HTTP response).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The protocol version.
    pub version: Version,
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The header fields.
    pub headers: Headers,
    /// The body (empty when there is none).
    pub body: Bytes,
}

impl Response {
    /// A new `RTSP/1.0` response with the standard reason phrase, no headers
    /// and no body.
    pub fn new(status: u16) -> Self {
        Response {
            version: Version::Rtsp10,
            status,
            reason: reason_phrase(status).to_owned(),
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Builder form of [`Headers::set`].
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.set(name, value);
        self
    }

    /// Sets the body and its `Content-Type`.
    pub fn with_body(mut self, content_type: &str, body: impl Into<Bytes>) -> Self {
        self.headers.set("Content-Type", content_type);
        self.body = body.into();
        self
    }

    /// The first value of header `name`, trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The `CSeq` number, when present and valid.
    pub fn cseq(&self) -> Option<u32> {
        self.headers.cseq()
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Appends the wire form to `out`.
    ///
    /// When the body is not empty a `Content-Length` with its real length is
    /// written in place of any stale one. CR and LF inside the reason, names
    /// and values are written as spaces.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(64 + self.body.len());
        out.put_slice(self.version.as_str().as_bytes());
        out.put_u8(b' ');
        // Three digits always: a status above 999 is not representable.
        let status = self.status.min(999);
        out.put_slice(format!("{status:03}").as_bytes());
        out.put_u8(b' ');
        put_sanitized(out, &self.reason);
        out.put_slice(b"\r\n");
        encode_tail(&self.headers, &self.body, out);
    }

    /// The wire form as one buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }
}

/// The standard reason phrase of a status code: every RFC 2326 code and the
/// common HTTP ones. Unknown codes get a phrase for their class.
pub fn reason_phrase(status: u16) -> &'static str {
    known_reason(status).unwrap_or(match status {
        100..=199 => "Informational",
        200..=299 => "Success",
        300..=399 => "Redirection",
        400..=499 => "Client Error",
        500..=599 => "Server Error",
        _ => "Unknown",
    })
}

/// The phrase of a registered status code.
fn known_reason(status: u16) -> Option<&'static str> {
    Some(match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        250 => "Low on Storage Space",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Time-out",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        415 => "Unsupported Media Type",
        416 => "Requested Range Not Satisfiable",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Parameter Not Understood",
        452 => "Conference Not Found",
        453 => "Not Enough Bandwidth",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        456 => "Header Field Not Valid for Resource",
        457 => "Invalid Range",
        458 => "Parameter Is Read-Only",
        459 => "Aggregate operation not allowed",
        460 => "Only aggregate operation allowed",
        461 => "Unsupported transport",
        462 => "Destination unreachable",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Time-out",
        505 => "RTSP Version not supported",
        551 => "Option not supported",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_round_trip_and_case_sensitivity() {
        let all = [
            Method::Options,
            Method::Describe,
            Method::Setup,
            Method::Play,
            Method::Pause,
            Method::Teardown,
            Method::GetParameter,
            Method::SetParameter,
            Method::Announce,
            Method::Record,
            Method::Redirect,
            Method::Register,
            Method::Deregister,
            Method::Get,
            Method::Post,
        ];
        for m in all {
            assert_eq!(Method::parse(m.as_str()), m);
        }
        assert_eq!(
            Method::parse("options"),
            Method::Extension("options".into())
        );
        assert_eq!(Method::parse("FOO").as_str(), "FOO");
        assert_eq!(Method::GetParameter.to_string(), "GET_PARAMETER");
    }

    #[test]
    fn version_parse() {
        assert_eq!(Version::parse("RTSP/1.0"), Some(Version::Rtsp10));
        assert_eq!(Version::parse("HTTP/1.0"), Some(Version::Http10));
        assert_eq!(Version::parse("HTTP/1.1"), Some(Version::Http11));
        assert_eq!(
            Version::parse("RTSP/2.0"),
            Some(Version::Other("RTSP/2.0".into()))
        );
        assert_eq!(Version::parse("RTSP/1"), None);
        assert_eq!(Version::parse("RTSP/1."), None);
        assert_eq!(Version::parse("rtsp/1.0"), None);
        assert_eq!(Version::parse("SIP/2.0"), None);
        assert_eq!(Version::Rtsp10.to_string(), "RTSP/1.0");
        assert!(Version::Http11.is_http());
        assert!(!Version::Rtsp10.is_http());
        assert!(!Version::Other("RTSP/2.0".into()).is_http());
    }

    #[test]
    fn headers_case_insensitive_ordered() {
        let mut h = Headers::new();
        assert!(h.is_empty());
        h.append("CSeq", " 3 ");
        h.append("Transport", "a");
        h.append("transport", "b");
        assert_eq!(h.get("cseq"), Some("3"));
        assert_eq!(h.get_all("TRANSPORT").collect::<Vec<_>>(), vec!["a", "b"]);
        assert!(h.contains("TRANSPORT"));
        assert_eq!(h.len(), 3);

        h.set("TRANSPORT", "c");
        assert_eq!(h.get_all("transport").collect::<Vec<_>>(), vec!["c"]);
        // The replacement takes the place of the first old field.
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            vec![("CSeq", " 3 "), ("TRANSPORT", "c")]
        );
        h.set("Session", "x");
        assert_eq!(h.iter().last(), Some(("Session", "x")));
        h.remove("cseq");
        assert!(!h.contains("CSeq"));
        assert_eq!(h.get("missing"), None);
    }

    #[test]
    fn request_encode() {
        let req = Request::new(Method::Options, "rtsp://h/s")
            .with_header("CSeq", "1")
            .with_header("User-Agent", "t");
        assert_eq!(req.cseq(), Some(1));
        assert_eq!(
            &req.to_bytes()[..],
            b"OPTIONS rtsp://h/s RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: t\r\n\r\n"
        );
    }

    #[test]
    fn request_encode_body_replaces_stale_length() {
        let mut req = Request::new(Method::SetParameter, "*")
            .with_header("CSeq", "9")
            .with_header("Content-Length", "999")
            .with_header("Content-Type", "text/parameters");
        req.headers.append("content-length", "1");
        req.body = Bytes::from_static(b"abc");
        assert_eq!(
            &req.to_bytes()[..],
            &b"SET_PARAMETER * RTSP/1.0\r\nCSeq: 9\r\nContent-Length: 3\r\nContent-Type: text/parameters\r\n\r\nabc"[..]
        );
        // With no body the caller's Content-Length is kept (tunnel POST).
        let post = Request {
            version: Version::Http10,
            ..Request::new(Method::Post, "/s").with_header("Content-Length", "32767")
        };
        assert_eq!(
            &post.to_bytes()[..],
            b"POST /s HTTP/1.0\r\nContent-Length: 32767\r\n\r\n"
        );
    }

    #[test]
    fn encode_sanitizes_line_breaks() {
        let req =
            Request::new(Method::Options, "rtsp://h/\r\nX: y").with_header("A", "b\r\nInjected: 1");
        let bytes = req.to_bytes();
        assert_eq!(
            &bytes[..],
            b"OPTIONS rtsp://h/  X: y RTSP/1.0\r\nA: b  Injected: 1\r\n\r\n"
        );
    }

    #[test]
    fn response_encode() {
        let resp = Response::new(200)
            .with_header("CSeq", "2")
            .with_header("Content-Length", "5")
            .with_body("application/sdp", Bytes::from_static(b"v=0\r\n"));
        assert!(resp.is_success());
        assert_eq!(resp.header("content-type"), Some("application/sdp"));
        assert_eq!(
            &resp.to_bytes()[..],
            b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: 5\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n"
        );
        let r = Response::new(454);
        assert_eq!(r.reason, "Session Not Found");
        assert!(!r.is_success());
        assert_eq!(&r.to_bytes()[..], b"RTSP/1.0 454 Session Not Found\r\n\r\n");
    }

    #[test]
    fn reason_phrases() {
        assert_eq!(reason_phrase(200), "OK");
        assert_eq!(reason_phrase(413), "Request Entity Too Large");
        assert_eq!(reason_phrase(414), "Request-URI Too Large");
        assert_eq!(reason_phrase(461), "Unsupported transport");
        assert_eq!(reason_phrase(505), "RTSP Version not supported");
        assert_eq!(reason_phrase(551), "Option not supported");
        assert_eq!(reason_phrase(499), "Client Error");
        assert_eq!(reason_phrase(42), "Unknown");
    }
}
