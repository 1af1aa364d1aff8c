//! The connection a request came on ([`ConnContext`]) and how an answer goes
//! out on it ([`send`]: the headers every response carries). Below the request
//! handlers (`handler.rs`, `register.rs`), which both answer through it.

use std::net::SocketAddr;
use std::time::SystemTime;

use bytes::Bytes;
use rtsp::Response;

use super::ServerContext;
use crate::conn_out::ConnOut;

/// What the handler needs to know about the connection a request came on.
#[derive(Clone)]
pub struct ConnContext {
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub out: ConnOut,
    /// RTSP-over-HTTP: every track must be interleaved.
    pub tunnelled: bool,
    /// RTSP over TLS: URLs we give out are `rtsps://`, media stays interleaved.
    pub secure: bool,
}

/// Adds the headers every response carries and queues it on the connection.
pub fn send(ctx: &ServerContext, conn: &ConnContext, cseq: Option<&str>, mut resp: Response) {
    conn.out.send_control(finish(ctx, cseq, &mut resp));
}

fn finish(ctx: &ServerContext, cseq: Option<&str>, resp: &mut Response) -> Bytes {
    let mut headers = rtsp::Headers::new();
    if let Some(c) = cseq {
        headers.set("CSeq", c);
    }
    headers.set("Date", rtsp::date::format_date(SystemTime::now()));
    headers.set("Server", ctx.server_name.as_str());
    for (k, v) in resp.headers.iter() {
        headers.append(k, v);
    }
    resp.headers = headers;
    resp.to_bytes()
}
