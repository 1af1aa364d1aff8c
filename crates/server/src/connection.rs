//! One front-end connection: reads requests (and interleaved RTCP), hands them
//! to the handler, and writes responses and interleaved media from its queue.
//!
//! The loop is generic over the connection's byte stream ([`ByteStream`]): plain
//! TCP, or TLS around it; the handler never learns which. A connection that starts
//! with an HTTP request is an RTSP-over-HTTP tunnel half (see [`super::tunnel`]),
//! whatever carries it.
//!
//! Handover (REGISTER with `reuse_connection`): when the handler answers
//! [`handler::Next::HandOver`], the read loop stops at once (bytes after the REGISTER
//! stay unparsed), the writer task writes what is queued (the 200) and gives its
//! write half back instead of closing it, and both halves, boxed, become the
//! [`Channel`] of the registered stream's source. Any [`ByteStream`] can be handed
//! over (TCP, TLS); an HTTP-tunnel half cannot (the handler refuses that).

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtsp::{Frame, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use super::handler::{self, ConnContext};
use super::register::{self, Pending};
use super::{tunnel, ServerContext};
use crate::conn_out::{ConnOut, ConnOutReceiver, OutItem, DEFAULT_QUEUE_PACKETS};
use source::connector::{Carrier, Channel};

/// A request must be complete within this long once its first byte arrived
/// (slow-loris guard).
pub const PARTIAL_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// A write that makes no progress for this long means the client is gone.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a request waits for a source's first back-end DESCRIBE.
pub const FIRST_DESCRIBE_WAIT: Duration = Duration::from_secs(10);
/// Responses a client may leave unread before its connection is closed.
pub const MAX_UNREAD_RESPONSES: usize = 256;
/// After the 200 to a REGISTER with `reuse_connection` is written, the source's
/// first request waits this long, as live555's does: a registering live555 server
/// turns the connection around once it has read the 200, and may lose a request
/// that arrives in the same segment.
pub const HANDOVER_DELAY: Duration = Duration::from_millis(100);
/// How long a session that never played outlives the connection that created it.
pub const ABANDONED_GRACE: Duration = Duration::from_secs(10);
/// Interleaved RTCP from a client refreshes its sessions at most this often.
const RTCP_TOUCH_EVERY: Duration = Duration::from_secs(1);
/// Items written per vectored write.
const WRITE_BATCH: usize = 64;
/// How long closing the write side may take: a TLS close_notify is a write too,
/// which a peer that stopped reading would hold up for ever.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// A client connection's byte stream, split into halves that a reader and a
/// writer task own. Every front-end carrier implements it.
pub trait ByteStream: Send + 'static {
    type Read: AsyncRead + Send + Unpin + 'static;
    type Write: AsyncWrite + Send + Unpin + 'static;
    fn split(self) -> (Self::Read, Self::Write);
}

impl ByteStream for TcpStream {
    type Read = OwnedReadHalf;
    type Write = OwnedWriteHalf;
    fn split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        self.into_split()
    }
}

/// RTSP over TLS: the halves share the TLS session (tokio's split).
impl ByteStream for tokio_rustls::server::TlsStream<TcpStream> {
    type Read = tokio::io::ReadHalf<Self>;
    type Write = tokio::io::WriteHalf<Self>;
    fn split(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self)
    }
}

/// What the listener knows about a connection besides its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Accepted {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// The connection is RTSP over TLS (`rtsps://`).
    pub secure: bool,
    /// When its byte stream started (accepted; for TLS, handshake done): the
    /// first message is due within [`tunnel::FIRST_MESSAGE_TIMEOUT`] of it.
    pub at: tokio::time::Instant,
}

pub async fn serve<S: ByteStream>(ctx: Arc<ServerContext>, stream: S, accepted: Accepted) {
    let peer = net::canonical(accepted.peer);
    let local = net::canonical(accepted.local);
    debug!(%peer, secure = accepted.secure, "connection opened");
    let (mut rd, wr) = stream.split();
    let (out, out_rx) = ConnOut::new(DEFAULT_QUEUE_PACKETS);
    let (release, release_rx) = tokio::sync::oneshot::channel();
    let writer = ctx
        .tasks
        .spawn(write_loop(wr, out_rx, out.clone(), release_rx, peer));
    let mut conn = ConnContext {
        local,
        peer,
        out: out.clone(),
        tunnelled: false,
        secure: accepted.secure,
    };
    let mut buf = BytesMut::with_capacity(4096);

    match tunnel::classify(&ctx, &mut rd, &mut buf, accepted.at).await {
        tunnel::Start::Rtsp => {
            if let Ok(Some(pending)) = rtsp_loop(&ctx, &conn, &mut rd, &mut buf, None).await {
                drop(conn);
                // Only the 200 is queued: the connection has no sessions.
                let _ = release.send(());
                match writer.await {
                    Ok(Some(Some(wr))) => {
                        out.close();
                        tokio::time::sleep(HANDOVER_DELAY).await;
                        debug!(%peer, "connection handed over to the registered stream's source");
                        let channel = Channel {
                            reader: Box::new(rd),
                            writer: Box::new(wr),
                            peer,
                            buffered: buf,
                            carrier: Carrier::Handed,
                        };
                        register::complete_with(&ctx, pending, Some(channel));
                    }
                    _ => {
                        out.close();
                        info!(%peer, "REGISTER with reuse_connection: the connection failed before the 200 was written; nothing registered");
                    }
                }
                return;
            }
        }
        tunnel::Start::HttpGet { cookie } => {
            conn.tunnelled = true;
            if let Some(input) = tunnel::open_get(&ctx, &conn, &cookie) {
                // (No handover here: REGISTER refuses reuse_connection when tunnelled.)
                let _ = rtsp_loop(&ctx, &conn, &mut rd, &mut buf, Some(input)).await;
                ctx.tunnels.remove(&cookie, &out);
            }
        }
        tunnel::Start::HttpPost { cookie } => {
            tunnel::pump_post(&ctx, &conn, &cookie, &mut rd, buf).await;
        }
        tunnel::Start::HttpOther(resp) => {
            out.send_control(resp);
        }
        tunnel::Start::Closed => {}
    }

    // Interleaved sessions die with their connection; UDP sessions that played
    // live on until their timeout, as in live555; UDP sessions it created that
    // never played (abandoned, or a client using a connection per request) may
    // be used from another connection for a short while, then expire.
    for id in ctx.sessions.on_connection(&out) {
        if ctx.sessions.remove(&id).is_some() {
            info!(session = %id, "client connection closed; session ended");
        }
    }
    ctx.sessions
        .abandon(&out, Instant::now(), ABANDONED_GRACE, ctx.session_timeout);
    // Let the writer flush queued responses (a final error answer), then stop it;
    // queued media is dropped.
    drop(conn);
    let flush = tokio::time::timeout(Duration::from_secs(2), async {
        while out.queued_control() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let _ = flush.await;
    out.close();
    let _ = writer.await;
    if out.fell_behind() {
        warn!(
            %peer,
            dropped = out.dropped(),
            "client connection closed: it did not keep up (its media queue overflowed \
             and stayed over half full for {} s)",
            crate::conn_out::FALL_BEHIND_LIMIT.as_secs()
        );
    }
    debug!(%peer, "connection closed");
}

/// Where a connection's RTSP bytes come from: its own socket, or (for the GET half
/// of an HTTP tunnel) the decoded POST bodies.
pub type TunnelInput = tokio::sync::mpsc::Receiver<bytes::Bytes>;

/// Reads and handles RTSP until the peer closes, a fatal parse error, a timeout or
/// a close request (`Ok(None)`, or `Err` when the connection should not linger), or
/// until a REGISTER hands the connection over (`Ok(Some(_))`, with the bytes after
/// it left in `buf`).
async fn rtsp_loop<R: AsyncRead + Unpin>(
    ctx: &Arc<ServerContext>,
    conn: &ConnContext,
    rd: &mut R,
    buf: &mut BytesMut,
    mut tunnel_input: Option<TunnelInput>,
) -> Result<Option<Box<Pending>>, ()> {
    let idle_timeout = ctx.session_timeout * 2;
    let mut partial_since: Option<Instant> = None;
    let mut last_touch: Option<Instant> = None;
    let mut sockbuf = BytesMut::with_capacity(4096);
    loop {
        // Handle everything complete in the buffer.
        loop {
            match rtsp::parse_frame(buf, &ctx.limits) {
                Ok(Some(Frame::Request(req))) => {
                    if conn.out.queued_control() >= MAX_UNREAD_RESPONSES {
                        debug!(peer = %conn.peer, "client does not read its responses; closing");
                        return Err(());
                    }
                    if let Some(stream) = handler::pending_stream(ctx, &req) {
                        // The proxy has just started and is still asking the back
                        // end: answer once it knows, rather than 503 at once.
                        tokio::select! {
                            _ = stream.settled(FIRST_DESCRIBE_WAIT) => {}
                            _ = conn.out.closed() => return Ok(None),
                        }
                    }
                    if let handler::Next::HandOver(p) =
                        handler::handle(ctx, conn, &req, Instant::now())
                    {
                        return Ok(Some(p));
                    }
                }
                Ok(Some(Frame::Interleaved { channel, .. })) => {
                    // Client RTCP on an odd channel: a receiver report keeps its
                    // sessions alive. Anything else from the client is ignored.
                    // At most once per second: a flood of such frames costs
                    // nothing but reading them.
                    if channel % 2 == 1 {
                        let now = Instant::now();
                        if last_touch
                            .is_none_or(|t| now.saturating_duration_since(t) >= RTCP_TOUCH_EVERY)
                        {
                            last_touch = Some(now);
                            ctx.sessions.touch_connection(&conn.out, now);
                        }
                    }
                }
                Ok(Some(Frame::Response(_))) => {}
                Ok(None) => break,
                Err(e) => {
                    debug!(peer = %conn.peer, "bad request: {e}");
                    let cseq = e.cseq.map(|c| c.to_string());
                    handler::send(
                        ctx,
                        conn,
                        cseq.as_deref(),
                        Response::new(e.status()).with_header("Allow", handler::public(ctx)),
                    );
                    if !e.recoverable {
                        return Err(());
                    }
                }
            }
        }
        if conn.out.is_closed() {
            return Ok(None);
        }
        partial_since = if buf.is_empty() {
            None
        } else {
            partial_since.or(Some(Instant::now()))
        };
        let wait = match partial_since {
            Some(t) => PARTIAL_REQUEST_TIMEOUT.saturating_sub(t.elapsed()),
            None => idle_timeout,
        };
        let read = async {
            match tunnel_input.as_mut() {
                // Tunnel GET half: requests arrive through the POST half; the GET
                // socket itself only tells us when the client goes away.
                Some(input) => tokio::select! {
                    chunk = input.recv() => match chunk {
                        Some(c) => { buf.extend_from_slice(&c); Ok(c.len()) }
                        None => Ok(0),
                    },
                    n = rd.read_buf(&mut sockbuf) => { sockbuf.clear(); n.map(|n| if n == 0 { 0 } else { usize::MAX }) }
                },
                None => rd.read_buf(buf).await,
            }
        };
        tokio::select! {
            r = tokio::time::timeout(wait, read) => match r {
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(None),
                Ok(Ok(_)) => {}
                Err(_) => {
                    debug!(peer = %conn.peer, "connection timed out (idle or incomplete request)");
                    return Err(());
                }
            },
            _ = conn.out.closed() => return Ok(None),
        }
        if buf.len()
            > ctx.limits.max_head_bytes + ctx.limits.max_body + 4 + rtsp::interleaved::MAX_PAYLOAD
        {
            // parse_frame bounds each message; this is a last-resort guard.
            return Err(());
        }
    }
}

/// What woke the writer.
enum Wake {
    Item(Option<OutItem>),
    /// The handover signal (`false`: its sender is gone, no handover).
    Release(bool),
}

/// Writes queued responses and media until the connection closes (then shuts the
/// write half down and returns `None`), or until `release` fires: then it writes
/// what is queued and returns the write half, open (`None` if that write failed).
async fn write_loop<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: ConnOutReceiver,
    out: ConnOut,
    mut release: tokio::sync::oneshot::Receiver<()>,
    peer: SocketAddr,
) -> Option<W> {
    let mut batch: Vec<OutItem> = Vec::with_capacity(WRITE_BATCH);
    let mut release_open = true;
    loop {
        let wake = tokio::select! {
            biased;
            item = rx.recv() => Wake::Item(item),
            _ = out.closed() => Wake::Item(None),
            r = &mut release, if release_open => Wake::Release(r.is_ok()),
        };
        let first = match wake {
            Wake::Release(false) => {
                release_open = false;
                continue;
            }
            Wake::Release(true) => {
                while let Some(i) = rx.try_recv() {
                    batch.push(i);
                }
                let res = write_items(&mut wr, &batch, WRITE_TIMEOUT).await;
                for item in batch.drain(..) {
                    rx.done(&item);
                }
                return res.ok().map(|()| wr);
            }
            Wake::Item(item) => item,
        };
        let Some(first) = first else { break };
        batch.push(first);
        // Closed (by the connection's end, which has flushed its responses
        // first, or by the relay for a client that fell behind): what is
        // queued is dropped, not trickled out to a client that reads slowly.
        if out.is_closed() {
            rx.done(&batch[0]);
            batch.clear();
            break;
        }
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Some(i) => batch.push(i),
                None => break,
            }
        }
        let res = tokio::select! {
            biased;
            r = write_items(&mut wr, &batch, WRITE_TIMEOUT) => r,
            _ = out.closed() => Err(std::io::ErrorKind::ConnectionAborted.into()),
        };
        for item in batch.drain(..) {
            rx.done(&item);
        }
        if let Err(e) = res {
            if e.kind() == std::io::ErrorKind::TimedOut {
                info!(
                    %peer,
                    "client connection closed: it read nothing for {} s",
                    WRITE_TIMEOUT.as_secs()
                );
            } else {
                debug!(%peer, "client write failed ({e}); closing connection");
            }
            out.close();
            break;
        }
    }
    // Account for media still queued so counters stay right, then close.
    while let Some(item) = rx.try_recv() {
        rx.done(&item);
    }
    let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, wr.shutdown()).await;
    None
}

/// Writes a batch with vectored writes, coping with partial writes. Fails when
/// one write makes no progress for `stall` (a slow but steady reader is not cut
/// off however long the whole batch takes).
async fn write_items<W: AsyncWrite + Unpin>(
    wr: &mut W,
    items: &[OutItem],
    stall: Duration,
) -> std::io::Result<()> {
    // The `$` headers of batched packets, made here (each connection has its own
    // channel numbers), then every part borrowed in order.
    let mut headers: Vec<[u8; 4]> = Vec::new();
    for item in items {
        if let OutItem::MediaBatch {
            channel, packets, ..
        } = item
        {
            headers.extend(packets.iter().map(|p| {
                // Packets over 65535 bytes never get into a batch (SinkSet).
                rtsp::interleaved::header(*channel, u16::try_from(p.len()).unwrap_or(u16::MAX))
            }));
        }
    }
    let mut parts: Vec<&[u8]> = Vec::with_capacity(items.len() * 2 + headers.len() * 2);
    let mut next_header = headers.iter();
    for item in items {
        match item {
            OutItem::Control(b) => parts.push(b),
            OutItem::Media { header, payload } => {
                parts.push(header);
                parts.push(payload);
            }
            OutItem::MediaBatch { packets, .. } => {
                for (p, h) in packets.iter().zip(next_header.by_ref()) {
                    parts.push(h);
                    parts.push(p);
                }
            }
        }
    }
    let (mut idx, mut off) = (0usize, 0usize);
    while idx < parts.len() {
        let slices: Vec<IoSlice<'_>> = std::iter::once(&parts[idx][off..])
            .chain(parts[idx + 1..].iter().copied())
            .take(256)
            .map(IoSlice::new)
            .collect();
        let mut n = match tokio::time::timeout(stall, wr.write_vectored(&slices)).await {
            Ok(r) => r?,
            Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 && idx < parts.len() {
            let left = parts[idx].len() - off;
            if n >= left {
                n -= left;
                idx += 1;
                off = 0;
            } else {
                off += n;
                n = 0;
            }
        }
    }
    // A TLS stream may keep the last records of a write that found the socket
    // full until it is flushed (for TCP this is a no-op).
    match tokio::time::timeout(stall, wr.flush()).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;

    /// Over TLS a write that finds the pipe full keeps its last records in the
    /// TLS session: they must still reach a slow reader without further writes.
    #[tokio::test]
    async fn everything_written_reaches_a_slow_tls_reader() {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
        let der = CertificateDer::from(cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(signing_key.serialize_der()));
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .expect("server config");
        let client = net::tls::client_config(&net::tls::BackendTrust {
            fingerprints: vec![net::tls::Fingerprint::of(&der)],
            ..Default::default()
        })
        .expect("client config");
        let (a, b) = tokio::io::duplex(512);
        let name = net::tls::server_name("localhost").expect("name");
        let (srv, cli) = tokio::join!(
            tokio_rustls::TlsAcceptor::from(Arc::new(server)).accept(a),
            tokio_rustls::TlsConnector::from(client).connect(name, b)
        );
        let (_srv_rd, mut srv_wr) = tokio::io::split(srv.expect("server handshake"));
        let mut cli = cli.expect("client handshake");
        let expected = 19 + 64 * 1004;
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 700];
            while got.len() < expected {
                match tokio::time::timeout(Duration::from_secs(3), cli.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            (got.len(), cli)
        });
        write_items(&mut srv_wr, &batch(), Duration::from_secs(5))
            .await
            .expect("written");
        // Nothing more is written; the writer stays open.
        let (got, _cli) = reader.await.expect("reader");
        assert_eq!(got, expected, "the whole batch arrived");
    }

    /// A peer that takes nothing: every write, flush and shutdown waits.
    struct Stuck;

    impl AsyncWrite for Stuck {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            std::task::Poll::Pending
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Pending
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Pending
        }
    }

    /// Closing a connection whose peer reads nothing (a TLS close_notify cannot
    /// go out) still ends its writer, so the connection's slot is given back.
    #[tokio::test]
    async fn the_writer_ends_even_when_closing_cannot_be_written() {
        let (out, rx) = ConnOut::new(16);
        let (_release, released) = tokio::sync::oneshot::channel();
        let writer = tokio::spawn(write_loop(
            Stuck,
            rx,
            out.clone(),
            released,
            SocketAddr::from(([127, 0, 0, 1], 1)),
        ));
        out.close();
        tokio::time::timeout(SHUTDOWN_TIMEOUT + Duration::from_secs(2), writer)
            .await
            .expect("the writer ends")
            .expect("no panic");
    }

    fn batch() -> Vec<OutItem> {
        let packets: Arc<[Bytes]> = (0..64).map(|_| Bytes::from(vec![7u8; 1000])).collect();
        vec![
            OutItem::Control(Bytes::from_static(b"RTSP/1.0 200 OK\r\n\r\n")),
            OutItem::MediaBatch {
                channel: 0,
                packets,
                bytes: 64_000,
            },
        ]
    }

    /// A reader that takes its time but keeps reading is not cut off, however
    /// long the whole batch takes; one that stops reading is, after the stall.
    #[tokio::test]
    async fn the_write_timeout_is_about_progress_not_the_whole_batch() {
        let items = batch();
        let (mut wr, mut rd) = tokio::io::duplex(1024);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            got
        });
        // 64 KB through a 1 KiB pipe at 1 KiB / 20 ms: about 1.3 s, stall 0.3 s.
        write_items(&mut wr, &items, Duration::from_millis(300))
            .await
            .expect("steady progress is no stall");
        drop(wr);
        let got = reader.await.expect("reader");
        assert_eq!(got.len(), 19 + 64 * 1004);
        assert_eq!(&got[19..23], &[b'$', 0, 0x03, 0xe8]);

        let (mut wr, _rd) = tokio::io::duplex(1024);
        let err = write_items(&mut wr, &items, Duration::from_millis(300))
            .await
            .expect_err("nobody reads");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }
}
