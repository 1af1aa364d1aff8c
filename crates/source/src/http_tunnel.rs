//! The back end through an RTSP-over-HTTP tunnel (`-T <http-port>`), as
//! live555's RTSP client opens it (Apple's scheme):
//!
//! 1. a `GET` connection to the back end's host on the HTTP port, with a random
//!    `x-sessioncookie`; once it is answered `200`, it carries every RTSP
//!    response and all interleaved media, in clear;
//! 2. a `POST` connection with the same cookie, which gets no answer and carries
//!    every RTSP request, base64-encoded ([`Base64Writer`]).
//!
//! The URL's own port is ignored for both connections, as in live555. A `401` on
//! the `GET` is answered once with the back end's credentials (the URL's, else
//! `-u`), which then also go with the `POST`: some cameras protect the tunnel
//! itself, not only the RTSP requests in it.
//!
//! The request heads and the parsing of the `GET`'s answer are pure functions;
//! [`open`] does the I/O, each step bounded by the connect timeout.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use rand::distributions::Alphanumeric;
use rand::Rng;
use rtsp::auth::{ClientAuth, Credentials};
use rtsp::url::RtspUrl;
use rtsp::{Frame, Limits};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::channel::{dial_tcp, Carrier, Channel};
use super::failure::Failure;

/// Longest answer head to the `GET` we read.
pub const MAX_RESPONSE_HEAD: usize = 8 * 1024;
/// The `Content-Length` of the `POST`, as live555 sends it (and ignores it).
pub const POST_CONTENT_LENGTH: u32 = 32767;
/// Length of the session cookie (live555 sends 22 or 23 characters).
pub const COOKIE_LEN: usize = 24;
/// Most request bytes encoded per write: a multiple of 3, so that a request is
/// never padded in its middle however it is split.
const MAX_CHUNK: usize = 3 * 16 * 1024;

/// Why the `GET` of a tunnel was not answered as a tunnel.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GetAnswerError {
    #[error("the answer head is longer than {MAX_RESPONSE_HEAD} bytes")]
    TooLong,
    #[error("the answer is not HTTP ({0})")]
    NotHttp(String),
}

/// The answer to the tunnel's `GET` (its head only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetAnswer {
    pub status: u16,
    pub reason: String,
    /// The `WWW-Authenticate` values (of a 401).
    pub www_authenticate: Vec<String>,
}

/// A fresh random session cookie.
#[must_use]
pub fn new_cookie() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(COOKIE_LEN)
        .map(char::from)
        .collect()
}

/// The `host[:port]` of the `Host` header: the URL's host on the HTTP port.
#[must_use]
pub fn host_header(url: &RtspUrl, port: u16) -> String {
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    if port == 80 {
        host
    } else {
        format!("{host}:{port}")
    }
}

/// What identifies one tunnel to the server: the heads of its two halves are
/// built from it.
pub struct TunnelHalves<'a> {
    pub path: &'a str,
    /// The `Host` header ([`host_header`]).
    pub host: &'a str,
    pub cookie: &'a str,
    pub user_agent: &'a str,
}

impl TunnelHalves<'_> {
    /// The head of the `GET` that opens the tunnel's server-to-client half.
    #[must_use]
    pub fn get_request(&self, authorization: Option<&str>) -> String {
        self.head(
            "GET",
            "Accept: application/x-rtsp-tunnelled\r\n\
             Pragma: no-cache\r\n\
             Cache-Control: no-cache\r\n",
            authorization,
        )
    }

    /// The head of the `POST` that opens the tunnel's client-to-server half.
    #[must_use]
    pub fn post_request(&self, authorization: Option<&str>) -> String {
        self.head(
            "POST",
            &format!(
                "Content-Type: application/x-rtsp-tunnelled\r\n\
                 Pragma: no-cache\r\n\
                 Cache-Control: no-cache\r\n\
                 Content-Length: {POST_CONTENT_LENGTH}\r\n\
                 Expires: Sun, 9 Jan 1972 00:00:00 GMT\r\n"
            ),
            authorization,
        )
    }

    /// `method`'s head: the shared lines, then `specific` (CRLF-ended lines),
    /// then the credentials if any.
    fn head(&self, method: &str, specific: &str, authorization: Option<&str>) -> String {
        let TunnelHalves {
            path,
            host,
            cookie,
            user_agent,
        } = self;
        let mut head = format!(
            "{method} {path} HTTP/1.0\r\n\
             Host: {host}\r\n\
             User-Agent: {user_agent}\r\n\
             x-sessioncookie: {cookie}\r\n\
             {specific}"
        );
        if let Some(a) = authorization {
            head.push_str(&format!("Authorization: {a}\r\n"));
        }
        head.push_str("\r\n");
        head
    }
}

/// Parses the answer head to the `GET` from the start of `buf`. `Ok(None)`: not
/// complete yet. On success the head is consumed and what follows it (the
/// start of the RTSP stream) stays in `buf`.
pub fn parse_get_answer(buf: &mut BytesMut) -> Result<Option<GetAnswer>, GetAnswerError> {
    let limits = Limits {
        max_head_bytes: MAX_RESPONSE_HEAD,
        ..Limits::default()
    };
    match rtsp::parse_frame(buf, &limits) {
        Ok(None) if buf.len() > MAX_RESPONSE_HEAD => Err(GetAnswerError::TooLong),
        Ok(None) => Ok(None),
        Ok(Some(Frame::Response(r))) if r.version.is_http() => Ok(Some(GetAnswer {
            status: r.status,
            reason: r.reason.clone(),
            www_authenticate: r
                .headers
                .get_all("WWW-Authenticate")
                .map(str::to_owned)
                .collect(),
        })),
        Ok(Some(Frame::Response(r))) => Err(GetAnswerError::NotHttp(format!(
            "{} {} {}",
            r.version.as_str(),
            r.status,
            r.reason
        ))),
        Ok(Some(_)) => Err(GetAnswerError::NotHttp("no status line".into())),
        Err(e) if matches!(e.kind, rtsp::ParseErrorKind::HeadTooLarge) => {
            Err(GetAnswerError::TooLong)
        }
        Err(e) => Err(GetAnswerError::NotHttp(e.to_string())),
    }
}

/// The client-to-server half of a tunnel: every byte written is base64-encoded
/// onto the inner stream (the `POST` connection).
///
/// A write takes up to `MAX_CHUNK` (48 KiB) bytes and encodes them whole (so each RTSP
/// request written with one `write_all` is encoded on its own, as live555
/// clients do); encoded bytes the inner stream did not take yet are written
/// before anything new is accepted, and by `flush`/`shutdown`.
pub struct Base64Writer<W> {
    inner: W,
    /// Encoded bytes accepted but not written yet, from `written` on.
    pending: Vec<u8>,
    written: usize,
}

impl<W: AsyncWrite + Unpin> Base64Writer<W> {
    pub fn new(inner: W) -> Self {
        Base64Writer {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }

    /// Writes out what is pending.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Base64Writer<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let take = buf.len().min(MAX_CHUNK);
        this.pending = rtsp::tunnel::encode_base64(&buf[..take]).into_bytes();
        this.written = 0;
        // The bytes are accepted: what the socket does not take now goes out
        // with the next write or the flush.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(take))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// What [`open`] needs besides the URL.
#[derive(Clone, Debug)]
pub struct TunnelSettings {
    /// The HTTP port on the back end's host (`-T`).
    pub port: u16,
    /// Used for a 401 on the `GET` when the URL has none (`-u`).
    pub credentials: Option<Credentials>,
    pub user_agent: String,
}

/// Opens a tunnel to the host of `url` on `settings.port`, each step (connect,
/// write, the `GET`'s answer) within `timeout`.
pub async fn open(
    url: &RtspUrl,
    settings: &TunnelSettings,
    timeout: Duration,
) -> Result<Channel, Failure> {
    let host = host_header(url, settings.port);
    let path = url.path.as_str();
    let cookie = new_cookie();
    let halves = TunnelHalves {
        path,
        host: &host,
        cookie: &cookie,
        user_agent: &settings.user_agent,
    };
    let credentials = url
        .credentials
        .clone()
        .or_else(|| settings.credentials.clone());
    let mut auth: Option<ClientAuth> = None;
    // At most two GETs: one without, one with credentials.
    let mut tries = 0;
    let (get, buffered) = loop {
        tries += 1;
        let authorization = auth.as_mut().and_then(|a| a.authorization("GET", path));
        let head = halves.get_request(authorization.as_deref());
        let mut get = dial_tcp(url, settings.port, timeout).await?;
        write_within(&mut get, head.as_bytes(), timeout, "GET").await?;
        let mut buf = BytesMut::with_capacity(4096);
        let answer = read_get_answer(&mut get, &mut buf, timeout).await?;
        match answer.status {
            200 => break (get, buf),
            401 if tries == 1 => {
                let wants = match (&credentials, auth.is_some()) {
                    (Some(c), false) => {
                        let mut a = ClientAuth::new(c.clone());
                        let usable =
                            a.on_unauthorized(answer.www_authenticate.iter().map(String::as_str));
                        auth = Some(a);
                        usable
                    }
                    _ => false,
                };
                if !wants {
                    return Err(get_refused(&answer, settings.port, credentials.is_some()));
                }
            }
            _ => return Err(get_refused(&answer, settings.port, credentials.is_some())),
        }
    };
    let peer = get.peer_addr().map_err(Failure::lost)?;
    // The POST goes to the address the GET reached.
    let mut post = match tokio::time::timeout(timeout, TcpStream::connect(peer)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(Failure::Connect(format!(
                "HTTP tunnel POST connection to {peer}: {e}"
            )))
        }
        Err(_) => {
            return Err(Failure::Connect(format!(
                "HTTP tunnel POST connection to {peer}: timed out after {} s",
                timeout.as_secs()
            )))
        }
    };
    let _ = post.set_nodelay(true);
    let authorization = auth.as_mut().and_then(|a| a.authorization("POST", path));
    let head = halves.post_request(authorization.as_deref());
    write_within(&mut post, head.as_bytes(), timeout, "POST").await?;
    Ok(Channel {
        // The whole GET stream: its write half stays open (a half-close could
        // end the tunnel) and is never written to.
        reader: Box::new(get),
        writer: Box::new(Base64Writer::new(post)),
        peer,
        buffered,
        carrier: Carrier::HttpTunnel,
    })
}

/// A non-200 answer to the `GET` as a connect failure (the driver's log line
/// names the URL).
fn get_refused(answer: &GetAnswer, port: u16, had_credentials: bool) -> Failure {
    let hint = match (answer.status, had_credentials) {
        (401, false) => " (it wants credentials: -u or the URL's)",
        (401, true) => " (check -u or the URL's credentials)",
        (404, _) => " (no such path on the HTTP port)",
        _ => "",
    };
    Failure::Connect(format!(
        "the HTTP tunnel's GET on port {port} was answered {} {}{hint}",
        answer.status, answer.reason
    ))
}

async fn write_within(
    s: &mut TcpStream,
    bytes: &[u8],
    timeout: Duration,
    what: &str,
) -> Result<(), Failure> {
    match tokio::time::timeout(timeout, s.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure::Connect(format!(
            "sending the HTTP tunnel {what}: {e}"
        ))),
        Err(_) => Err(Failure::Connect(format!(
            "sending the HTTP tunnel {what}: timed out after {} s",
            timeout.as_secs()
        ))),
    }
}

/// Reads the `GET`'s answer head within `timeout`; what follows stays in `buf`.
async fn read_get_answer(
    s: &mut TcpStream,
    buf: &mut BytesMut,
    timeout: Duration,
) -> Result<GetAnswer, Failure> {
    let read = async {
        loop {
            match parse_get_answer(buf) {
                Ok(Some(a)) => return Ok(a),
                Ok(None) => {}
                Err(e) => {
                    return Err(Failure::Connect(format!(
                        "bad answer to the HTTP tunnel GET: {e}"
                    )))
                }
            }
            buf.reserve(2048);
            match s.read_buf(buf).await {
                Ok(0) => {
                    return Err(Failure::Connect(
                        "the back end closed the HTTP tunnel GET connection without answering"
                            .into(),
                    ))
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(Failure::Connect(format!(
                        "reading the answer to the HTTP tunnel GET: {e}"
                    )))
                }
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Connect(format!(
            "no answer to the HTTP tunnel GET within {} s",
            timeout.as_secs()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtsp::tunnel::Base64Decoder;
    use tokio::io::AsyncReadExt;

    fn url(s: &str) -> RtspUrl {
        RtspUrl::parse(s).expect("url")
    }

    #[test]
    fn cookies_are_long_random_and_header_safe() {
        let a = new_cookie();
        let b = new_cookie();
        assert_eq!(a.len(), COOKIE_LEN);
        assert!(a.len() >= 22);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn host_header_uses_the_http_port() {
        assert_eq!(host_header(&url("rtsp://cam:554/x"), 8080), "cam:8080");
        assert_eq!(host_header(&url("rtsp://cam/x"), 80), "cam");
        assert_eq!(host_header(&url("rtsp://[::1]:554/x"), 8000), "[::1]:8000");
    }

    #[test]
    fn get_head_is_live555s() {
        let head = TunnelHalves {
            path: "/live/ch0?x=1",
            host: "cam:8080",
            cookie: "0123456789abcdefABCDEF99",
            user_agent: "rtsp-proxy/1",
        }
        .get_request(None);
        assert_eq!(
            head,
            "GET /live/ch0?x=1 HTTP/1.0\r\n\
             Host: cam:8080\r\n\
             User-Agent: rtsp-proxy/1\r\n\
             x-sessioncookie: 0123456789abcdefABCDEF99\r\n\
             Accept: application/x-rtsp-tunnelled\r\n\
             Pragma: no-cache\r\n\
             Cache-Control: no-cache\r\n\r\n"
        );
        let with_auth = TunnelHalves {
            path: "/s",
            host: "h",
            cookie: "c",
            user_agent: "ua",
        }
        .get_request(Some("Basic dTpw"));
        assert!(with_auth.ends_with("Cache-Control: no-cache\r\nAuthorization: Basic dTpw\r\n\r\n"));
    }

    #[test]
    fn post_head_is_live555s() {
        let head = TunnelHalves {
            path: "/s",
            host: "h:80",
            cookie: "cookie",
            user_agent: "ua",
        }
        .post_request(None);
        assert_eq!(
            head,
            "POST /s HTTP/1.0\r\n\
             Host: h:80\r\n\
             User-Agent: ua\r\n\
             x-sessioncookie: cookie\r\n\
             Content-Type: application/x-rtsp-tunnelled\r\n\
             Pragma: no-cache\r\n\
             Cache-Control: no-cache\r\n\
             Content-Length: 32767\r\n\
             Expires: Sun, 9 Jan 1972 00:00:00 GMT\r\n\r\n"
        );
    }

    #[test]
    fn answer_200_leaves_the_rtsp_stream_in_the_buffer() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.0 200 OK\r\nServer: GStreamer RTSP server\r\nConnection: close\r\nCache-Control: no-store\r\nPragma: no-cache\r\nContent-Type: application/x-rtsp-tunnelled\r\n\r\nRTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n$\x00"[..],
        );
        let a = parse_get_answer(&mut buf)
            .expect("valid")
            .expect("complete");
        assert_eq!((a.status, a.reason.as_str()), (200, "OK"));
        assert!(a.www_authenticate.is_empty());
        assert_eq!(&buf[..], b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n$\x00");
    }

    #[test]
    fn answer_in_pieces() {
        let full = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-rtsp-tunnelled\r\n\r\n";
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(parse_get_answer(&mut buf), Ok(None), "cut at {cut}");
        }
        let mut buf = BytesMut::from(&full[..]);
        assert_eq!(
            parse_get_answer(&mut buf).expect("ok").map(|a| a.status),
            Some(200)
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn answer_401_carries_its_challenges() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"cam\", nonce=\"abc\"\r\nWWW-Authenticate: Basic realm=\"cam\"\r\nContent-Length: 5\r\n\r\nnope!"[..],
        );
        let a = parse_get_answer(&mut buf)
            .expect("valid")
            .expect("complete");
        assert_eq!(a.status, 401);
        assert_eq!(
            a.www_authenticate,
            ["Digest realm=\"cam\", nonce=\"abc\"", "Basic realm=\"cam\""]
        );
    }

    #[test]
    fn hostile_answers_are_refused() {
        // An RTSP server that does not tunnel.
        let mut buf = BytesMut::from(&b"RTSP/1.0 400 Bad Request\r\nCSeq: 0\r\n\r\n"[..]);
        assert!(matches!(
            parse_get_answer(&mut buf),
            Err(GetAnswerError::NotHttp(_))
        ));
        // An endless head.
        let mut buf = BytesMut::from(&b"HTTP/1.0 200 OK\r\n"[..]);
        buf.extend_from_slice(&b"X-Filler: yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\n".repeat(300));
        assert_eq!(parse_get_answer(&mut buf), Err(GetAnswerError::TooLong));
        // Garbage.
        let mut buf = BytesMut::from(&b"\x00\x01garbage\r\n\r\n"[..]);
        assert!(parse_get_answer(&mut buf).is_err());
    }

    fn decode(encoded: &[u8]) -> Vec<u8> {
        let mut d = Base64Decoder::new();
        let mut out = BytesMut::new();
        d.push(encoded, &mut out).expect("valid base64");
        assert_eq!(d.pending(), 0, "whole groups");
        out.to_vec()
    }

    /// Writes `pieces` (each with `write_all`, as the driver does) through a
    /// pipe that takes `capacity` bytes at a time, and returns what arrived.
    async fn through_pipe(pieces: Vec<Vec<u8>>, capacity: usize) -> Vec<u8> {
        let (a, mut b) = tokio::io::duplex(capacity);
        let writer = tokio::spawn(async move {
            let mut w = Base64Writer::new(a);
            for p in pieces {
                w.write_all(&p).await.expect("write");
                w.flush().await.expect("flush");
            }
            w.shutdown().await.expect("shutdown");
        });
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.expect("read");
        writer.await.expect("writer task");
        got
    }

    #[tokio::test]
    async fn partial_writes_lose_nothing() {
        let request = b"DESCRIBE rtsp://127.0.0.1:8554/s RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n".to_vec();
        for capacity in [1, 2, 3, 5, 7, 64, 4096] {
            let got = through_pipe(vec![request.clone()], capacity).await;
            assert_eq!(
                got,
                rtsp::tunnel::encode_base64(&request).into_bytes(),
                "capacity {capacity}"
            );
            assert_eq!(decode(&got), request);
        }
    }

    #[tokio::test]
    async fn every_request_is_encoded_on_its_own() {
        let pieces: Vec<Vec<u8>> = vec![
            b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n".to_vec(),
            b"$\x01\x00\x04\x80\xc9\x00\x01".to_vec(),
            b"PLAY rtsp://h/s RTSP/1.0\r\nCSeq: 3\r\n\r\n".to_vec(),
        ];
        let got = through_pipe(pieces.clone(), 3).await;
        let expected: String = pieces
            .iter()
            .map(|p| rtsp::tunnel::encode_base64(p))
            .collect();
        assert_eq!(String::from_utf8(got.clone()).expect("ascii"), expected);
        // Padding between requests is what live555 and GStreamer decode.
        assert_eq!(decode(&got), pieces.concat());
    }

    #[tokio::test]
    async fn large_writes_are_split_on_whole_groups() {
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let got = through_pipe(vec![big.clone()], 1000).await;
        assert_eq!(decode(&got), big);
        assert!(
            !got[..got.len() - 4].contains(&b'='),
            "no padding before the end of one write_all"
        );
    }

    #[tokio::test]
    async fn a_closed_post_is_an_error() {
        let (a, b) = tokio::io::duplex(16);
        drop(b);
        let mut w = Base64Writer::new(a);
        let r = async {
            w.write_all(b"OPTIONS * RTSP/1.0\r\n\r\n").await?;
            w.flush().await
        }
        .await;
        assert!(r.is_err());
    }

    /// A fake back end on loopback: answers the GET as `answers` says (one per
    /// GET connection), swallows the POST, and returns the heads it got.
    async fn fake_backend(
        answers: Vec<&'static str>,
    ) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let mut heads = Vec::new();
            let mut answers = answers.into_iter();
            loop {
                let Ok(Ok((mut s, _))) =
                    tokio::time::timeout(Duration::from_secs(2), listener.accept()).await
                else {
                    break;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                let is_get = head.starts_with("GET ");
                heads.push(head);
                if is_get {
                    if let Some(a) = answers.next() {
                        let _ = s.write_all(a.as_bytes()).await;
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            drop(s);
                        });
                    }
                } else {
                    break;
                }
            }
            heads
        });
        (port, task)
    }

    fn settings(port: u16, credentials: Option<Credentials>) -> TunnelSettings {
        TunnelSettings {
            port,
            credentials,
            user_agent: "test".into(),
        }
    }

    #[tokio::test]
    async fn opens_a_tunnel_ignoring_the_url_port() {
        let (port, task) = fake_backend(vec![
            "HTTP/1.0 200 OK\r\nContent-Type: application/x-rtsp-tunnelled\r\n\r\nRTSP/1.0",
        ])
        .await;
        let u = url("rtsp://127.0.0.1:1/cam?x=1");
        let mut ch = open(&u, &settings(port, None), Duration::from_secs(2))
            .await
            .expect("open");
        assert_eq!(ch.carrier, Carrier::HttpTunnel);
        assert_eq!(&ch.buffered[..], b"RTSP/1.0");
        ch.writer.write_all(b"OPTIONS").await.expect("write");
        ch.writer.flush().await.expect("flush");
        let heads = task.await.expect("task");
        assert_eq!(heads.len(), 2);
        assert!(
            heads[0].starts_with("GET /cam?x=1 HTTP/1.0\r\n"),
            "{}",
            heads[0]
        );
        assert!(
            heads[1].starts_with("POST /cam?x=1 HTTP/1.0\r\n"),
            "{}",
            heads[1]
        );
        let cookie = |h: &str| {
            h.lines()
                .find_map(|l| l.strip_prefix("x-sessioncookie: "))
                .map(str::to_owned)
        };
        assert!(cookie(&heads[0]).is_some());
        assert_eq!(cookie(&heads[0]), cookie(&heads[1]));
    }

    #[tokio::test]
    async fn a_refused_get_is_a_connect_failure_with_the_status() {
        let (port, _task) = fake_backend(vec!["HTTP/1.0 404 Not Found\r\n\r\n"]).await;
        let e = open(
            &url("rtsp://127.0.0.1/x"),
            &settings(port, None),
            Duration::from_secs(2),
        )
        .await
        .expect_err("refused");
        assert!(
            matches!(&e, Failure::Connect(m) if m.contains("404 Not Found")),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_401_on_the_get_is_answered_once_with_credentials() {
        let (port, task) = fake_backend(vec![
            "HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"cam\"\r\n\r\n",
            "HTTP/1.0 200 OK\r\n\r\n",
        ])
        .await;
        let creds = Credentials::new("u", "p");
        let ch = open(
            &url("rtsp://127.0.0.1/x"),
            &settings(port, Some(creds)),
            Duration::from_secs(2),
        )
        .await
        .expect("open after the 401");
        drop(ch);
        let heads = task.await.expect("task");
        assert_eq!(heads.len(), 3, "{heads:?}");
        assert!(!heads[0].contains("Authorization"));
        assert!(
            heads[1].contains("Authorization: Basic dTpw\r\n"),
            "{}",
            heads[1]
        );
        assert!(heads[2].starts_with("POST ") && heads[2].contains("Authorization: Basic"));

        let (port, _task) = fake_backend(vec![
            "HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"cam\"\r\n\r\n",
        ])
        .await;
        let e = open(
            &url("rtsp://127.0.0.1/x"),
            &settings(port, None),
            Duration::from_secs(2),
        )
        .await
        .expect_err("no credentials");
        assert!(
            e.to_string().contains("401") && e.to_string().contains("-u"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_silent_back_end_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let _hold = tokio::spawn(async move {
            let held = listener.accept().await;
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(held);
        });
        let e = open(
            &url("rtsp://127.0.0.1/x"),
            &settings(port, None),
            Duration::from_millis(300),
        )
        .await
        .expect_err("timeout");
        assert!(e.to_string().contains("no answer"), "{e}");
    }
}
