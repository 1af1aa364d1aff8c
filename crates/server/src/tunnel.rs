//! RTSP-over-HTTP tunnelling on the RTSP port (Apple's scheme, as live555 accepts
//! it): a GET connection carries everything we send, a POST connection with the
//! same `x-sessioncookie` carries the client's requests, base64-encoded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use rtsp::tunnel::Base64Decoder;
use rtsp::{Frame, Method, Request, Response, Version};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::handler::ConnContext;
use super::ServerContext;
use crate::conn_out::ConnOut;

/// Open tunnels at most; more GETs are refused.
const MAX_TUNNELS: usize = 4096;
/// Longest cookie we accept.
const MAX_COOKIE: usize = 256;
/// Decoded request chunks in flight from a POST to its GET.
const INPUT_DEPTH: usize = 64;
/// The first message of a connection must arrive within this long of its byte
/// stream's start (`Accepted::at`).
pub const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(15);

/// A tunnel's GET half: where its requests go, its connection, and the client
/// address both halves must come from.
struct GetHalf {
    input: mpsc::Sender<Bytes>,
    out: ConnOut,
    peer: std::net::IpAddr,
}

/// GET halves waiting for (or fed by) POST halves, by cookie.
#[derive(Default)]
pub struct TunnelTable {
    inner: Mutex<HashMap<String, GetHalf>>,
}

impl TunnelTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, GetHalf>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes the tunnel of `cookie` if it still belongs to `out`.
    pub fn remove(&self, cookie: &str, out: &ConnOut) {
        let mut map = self.lock();
        if map.get(cookie).is_some_and(|g| g.out.same(out)) {
            map.remove(cookie);
        }
    }
}

/// How a connection starts.
pub enum Start {
    Rtsp,
    HttpGet {
        cookie: String,
    },
    HttpPost {
        cookie: String,
    },
    /// Another HTTP request: answer this and close.
    HttpOther(Bytes),
    Closed,
}

fn http_response(status: u16) -> Response {
    let mut r = Response::new(status);
    r.version = Version::Http10;
    r.headers
        .set("Date", rtsp::date::format_date(SystemTime::now()));
    r
}

/// Reads the first message head and tells an HTTP tunnel half from plain RTSP.
/// For RTSP the bytes stay in `buf`; for HTTP the head is consumed. The head
/// must be there within [`FIRST_MESSAGE_TIMEOUT`] of `started`.
pub async fn classify<R: AsyncRead + Unpin>(
    ctx: &ServerContext,
    rd: &mut R,
    buf: &mut BytesMut,
    started: tokio::time::Instant,
) -> Start {
    let deadline = started + FIRST_MESSAGE_TIMEOUT;
    let head_end = loop {
        // Skip blank lines before the first message, like the RTSP parser does.
        let skip = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
        let _ = buf.split_to(skip);
        if buf.first() == Some(&b'$') {
            return Start::Rtsp;
        }
        if let Some(pos) = find_head_end(buf) {
            break pos;
        }
        if buf.len() > ctx.limits.max_head_bytes {
            // Let the RTSP parser produce the proper error.
            return Start::Rtsp;
        }
        match tokio::time::timeout_at(deadline, rd.read_buf(buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Start::Closed,
            Ok(Ok(_)) => {}
        }
    };
    let first_line_end = buf.iter().position(|b| *b == b'\n').unwrap_or(head_end);
    let first_line = String::from_utf8_lossy(&buf[..first_line_end]);
    let is_http = first_line
        .trim_end()
        .rsplit(' ')
        .next()
        .is_some_and(|v| v.starts_with("HTTP/"));
    if !is_http {
        return Start::Rtsp;
    }
    // Parse only the head: a tunnel POST announces a huge Content-Length and then
    // streams its body forever, so the body must not be waited for.
    let head = buf.split_to(head_end);
    let mut head_only = BytesMut::with_capacity(head.len());
    for line in head[..].split(|b| *b == b'\n') {
        let text = String::from_utf8_lossy(line);
        if text
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("content-length")
        {
            continue;
        }
        head_only.extend_from_slice(line);
        head_only.extend_from_slice(b"\n");
    }
    head_only.extend_from_slice(b"\r\n");
    let req: Request = match rtsp::parse_frame(&mut head_only, &ctx.limits) {
        Ok(Some(Frame::Request(r))) => r,
        _ => return Start::HttpOther(http_response(400).to_bytes()),
    };
    let cookie = req
        .header("x-sessioncookie")
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty() && c.len() <= MAX_COOKIE);
    match (&req.method, cookie) {
        (Method::Get, Some(cookie)) => Start::HttpGet { cookie },
        (Method::Post, Some(cookie)) => Start::HttpPost { cookie },
        (Method::Options, _) => {
            let mut r = http_response(200);
            r.headers.set("Access-Control-Allow-Origin", "*");
            r.headers
                .set("Access-Control-Allow-Methods", "POST, GET, OPTIONS");
            r.headers.set(
                "Access-Control-Allow-Headers",
                "x-sessioncookie, Pragma, Cache-Control",
            );
            r.headers.set("Access-Control-Max-Age", "1728000");
            Start::HttpOther(r.to_bytes())
        }
        _ => Start::HttpOther(
            http_response(405)
                .with_header("Allow", "GET, POST, OPTIONS")
                .to_bytes(),
        ),
    }
}

/// Position just past the blank line ending the head, if present.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Registers the GET half and answers it. Returns where its requests will arrive.
pub fn open_get(
    ctx: &ServerContext,
    conn: &ConnContext,
    cookie: &str,
) -> Option<mpsc::Receiver<Bytes>> {
    let (tx, rx) = mpsc::channel(INPUT_DEPTH);
    {
        let mut map = ctx.tunnels.lock();
        if map.len() >= MAX_TUNNELS && !map.contains_key(cookie) {
            conn.out.send_control(http_response(503).to_bytes());
            return None;
        }
        // A cookie in use by an open GET is not taken over (live555 lets a
        // second GET replace the first); a closed one's cookie may be reused.
        if map.get(cookie).is_some_and(|g| !g.out.is_closed()) {
            debug!(peer = %conn.peer, "HTTP tunnel GET with a cookie already in use; refused");
            conn.out.send_control(http_response(403).to_bytes());
            return None;
        }
        map.insert(
            cookie.to_string(),
            GetHalf {
                input: tx,
                out: conn.out.clone(),
                peer: conn.peer.ip().to_canonical(),
            },
        );
    }
    let mut r = http_response(200);
    r.headers.set("Cache-Control", "no-cache");
    r.headers.set("Pragma", "no-cache");
    r.headers
        .set("Content-Type", "application/x-rtsp-tunnelled");
    conn.out.send_control(r.to_bytes());
    debug!(peer = %conn.peer, "HTTP tunnel GET opened");
    Some(rx)
}

/// Whether a POST from `post` may feed the GET opened from `get` (the same
/// client, unless sessions may roam between addresses).
fn post_may_join(get: std::net::IpAddr, post: std::net::IpAddr, roaming: bool) -> bool {
    roaming || get == post.to_canonical()
}

/// Feeds the POST half's decoded body to its GET half until either side closes.
pub async fn pump_post<R: AsyncRead + Unpin>(
    ctx: &Arc<ServerContext>,
    conn: &ConnContext,
    cookie: &str,
    rd: &mut R,
    mut buf: BytesMut,
) {
    let target = ctx
        .tunnels
        .lock()
        .get(cookie)
        .map(|g| (g.input.clone(), g.out.clone(), g.peer));
    let Some((tx, get_out, get_peer)) = target else {
        // No GET with that cookie (or it is this very connection): refuse and close.
        conn.out.send_control(http_response(404).to_bytes());
        return;
    };
    if get_out.same(&conn.out) {
        conn.out.send_control(http_response(405).to_bytes());
        return;
    }
    // Both halves come from one client: a POST from elsewhere that knows (or
    // guessed) a victim's cookie does not get to speak in its tunnel.
    if !post_may_join(get_peer, conn.peer.ip(), ctx.sessions_from_any_address) {
        if ctx
            .foreign_tunnel_warnings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .should_log(std::time::Instant::now())
        {
            warn!(
                peer = %conn.peer,
                "HTTP tunnel POST from another address than its GET: 403 \
                 (--sessions-from-any-address allows it)"
            );
        }
        conn.out.send_control(http_response(403).to_bytes());
        return;
    }
    debug!(peer = %conn.peer, "HTTP tunnel POST attached");
    let mut decoder = Base64Decoder::new();
    let idle = ctx.session_timeout * 2;
    loop {
        if !buf.is_empty() {
            let mut decoded = BytesMut::new();
            if decoder.push(&buf, &mut decoded).is_err() {
                debug!(peer = %conn.peer, "bad base64 in tunnel POST; closing");
                return;
            }
            buf.clear();
            if !decoded.is_empty() && tx.send(decoded.freeze()).await.is_err() {
                return;
            }
        }
        tokio::select! {
            r = tokio::time::timeout(idle, rd.read_buf(&mut buf)) => match r {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            },
            _ = get_out.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_halves_of_a_tunnel_come_from_one_address() {
        let a: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        let b: std::net::IpAddr = "192.0.2.2".parse().unwrap();
        let mapped: std::net::IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert!(post_may_join(a, a, false));
        assert!(
            post_may_join(a, mapped, false),
            "an IPv4-mapped address is the same client"
        );
        assert!(!post_may_join(a, b, false));
        assert!(post_may_join(a, b, true), "--sessions-from-any-address");
    }
}
