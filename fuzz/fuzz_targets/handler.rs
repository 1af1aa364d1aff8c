//! Feeds arbitrary requests, several in sequence on one connection, to the
//! server's request handler (`rtsp_proxy::server::handler::handle`), as
//! `rtsp_loop` in `server/connection.rs` does: the input is framed with
//! `rtsp::parse_frame`; each request goes to `handle`, each parse error gets the
//! loop's own answer (`handler::send` with the error's status and CSeq), and a
//! fatal error ends the connection.
//!
//! The server has stream `cam` (two tracks, H.264 + AAC, one packet of media
//! each), `other` (one track) and `idle` (never described), a UDP media socket
//! pair on IPv4, and, when the first byte is odd, client authentication (user
//! `user`, password `pass`, Basic allowed in clear). The text `@S@` in the
//! input stands for the session id the server gave last, so SETUP, PLAY,
//! PAUSE, GET_PARAMETER and TEARDOWN sequences on one session are reachable.
//!
//! Checks, per request: exactly one response is queued (only RTCP sender
//! reports and the GOP replay of a PLAY may follow it, never precede it, on
//! interleaved channels that a SETUP answer gave out), it parses as one RTSP
//! response with a Date and a Server header, it echoes the request's CSeq (a request without a valid one
//! gets 400 without CSeq), a successful SETUP names a session and a transport,
//! a successful DESCRIBE carries an SDP that parses. At the end every session
//! expires. Nothing panics.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rtsp::auth::Credentials;
use rtsp::header::session::SessionHeader;
use rtsp::header::transport::Transport;
use rtsp::{parse_frame, Frame, Limits, Method, Request, Response};
use rtsp_proxy::relay::{Stream, StreamRegistry};
use rtsp_proxy::server::conn_out::{ConnOut, ConnOutReceiver, OutItem};
use rtsp_proxy::sdp;
use rtsp_proxy::server::access::AccessControl;
use rtsp_proxy::server::handler::{self, ConnContext};
use rtsp_proxy::server::{media_udp, ServerContext, UdpPair};

const CAM_SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=cam\r\nt=0 0\r\n\
m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n\
a=control:trackID=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\n\
a=control:trackID=1\r\n";
const OTHER_SDP: &str = "v=0\r\nm=video 0 RTP/AVP 26\r\n";
const TIMEOUT: Duration = Duration::from_secs(65);
const PLACEHOLDER: &[u8] = b"@S@";
const MAX_REQUESTS: usize = 64;

/// The UDP media sockets, bound once (tokio sockets need a runtime to be
/// created; nothing here drives it, so no task ever runs).
fn media() -> Option<UdpPair> {
    static MEDIA: OnceLock<(tokio::runtime::Runtime, Option<UdpPair>)> = OnceLock::new();
    MEDIA
        .get_or_init(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let pair = {
                let _guard = rt.enter();
                media_udp::bind_pair(false, 0).ok()
            };
            (rt, pair)
        })
        .1
        .clone()
}

fn context(auth: bool, t0: Instant) -> Arc<ServerContext> {
    let registry = Arc::new(StreamRegistry::new());
    let cam = Stream::new("cam");
    cam.set_presentation(sdp::parse(CAM_SDP).expect("CAM_SDP"));
    for track in 0..2 {
        let mut pkt = BytesMut::new();
        rtp::packet::write_header(&mut pkt, true, 96 + track as u8, 100, 1000, 0x0102_0304);
        pkt.extend_from_slice(&[0x65, 0x88, 0x80, 0x40]);
        cam.push_rtp(track, pkt, t0);
    }
    let other = Stream::new("other");
    other.set_presentation(sdp::parse(OTHER_SDP).expect("OTHER_SDP"));
    assert!(registry.insert(cam));
    assert!(registry.insert(other));
    assert!(registry.insert(Stream::new("idle")));
    let mut ctx = ServerContext::new(registry, media(), None, TIMEOUT);
    if auth {
        ctx.client_auth = AccessControl::new(vec![Credentials::new("user", "pass")], true);
    }
    Arc::new(ctx)
}

/// The interleaved channels our SETUP answers gave out on this connection.
#[derive(Default)]
struct Channels {
    rtp: Vec<u8>,
    rtcp: Vec<u8>,
}

impl Channels {
    fn learn(&mut self, resp: &Response) {
        let Some(t) = resp
            .header("Transport")
            .and_then(|v| Transport::parse(v).ok())
        else {
            return;
        };
        if let Some(c) = t.interleaved {
            self.rtp.push(c.rtp);
            self.rtcp.extend(c.rtcp);
        }
    }
}

/// The one response queued for a request (sender reports may follow it).
fn response(rx: &mut ConnOutReceiver, channels: &mut Channels) -> Response {
    let mut responses = Vec::new();
    while let Some(item) = rx.try_recv() {
        rx.done(&item);
        match item {
            OutItem::Control(bytes) => {
                let resp = parse_response(&bytes);
                // A SETUP answer's channels may carry media right after it
                // (a track added to a playing session).
                if resp.status == 200 {
                    channels.learn(&resp);
                }
                responses.push(resp);
            }
            // After a PLAY response: sender reports and the replay of the
            // cached GOP, on channels a SETUP answer gave out.
            OutItem::Media { header, payload } => {
                assert!(!responses.is_empty(), "media before the response");
                assert!(
                    !rtp::rtcp::sender_reports(&payload).is_empty(),
                    "single media items after a response are sender reports"
                );
                assert!(
                    channels.rtcp.contains(&header[1]),
                    "SR on channel {}",
                    header[1]
                );
            }
            OutItem::MediaBatch {
                channel, packets, ..
            } => {
                assert!(!responses.is_empty(), "media before the response");
                assert!(channels.rtp.contains(&channel), "RTP on channel {channel}");
                for p in packets.iter() {
                    rtp::packet::parse_rtp(p).expect("replayed packets are RTP");
                }
            }
        }
    }
    assert_eq!(responses.len(), 1, "exactly one response per request");
    responses.pop().expect("one response")
}

fn parse_response(bytes: &Bytes) -> Response {
    let mut buf = BytesMut::from(&bytes[..]);
    match parse_frame(&mut buf, &Limits::default()) {
        Ok(Some(Frame::Response(r))) => {
            assert!(buf.is_empty(), "one response per control item");
            assert!(r.header("Date").is_some(), "every response has a Date");
            assert!(r.header("Server").is_some(), "every response has a Server");
            assert!((100..=599).contains(&r.status));
            r
        }
        other => panic!("queued bytes are not one response: {other:?}"),
    }
}

/// The CSeq the handler accepts: 1 to 10 decimal digits.
fn valid_cseq(req: &Request) -> Option<&str> {
    req.header("CSeq")
        .filter(|c| !c.is_empty() && c.len() <= 10 && c.bytes().all(|b| b.is_ascii_digit()))
}

fn check(req: &Request, resp: &Response) {
    match valid_cseq(req) {
        Some(c) => assert_eq!(resp.header("CSeq"), Some(c), "CSeq echoed"),
        None => {
            assert_eq!(resp.status, 400, "a request without a valid CSeq gets 400");
            assert_eq!(resp.header("CSeq"), None);
        }
    }
    if resp.status != 200 {
        return;
    }
    match req.method {
        Method::Setup => {
            let session = resp.header("Session").expect("SETUP 200 has a Session");
            SessionHeader::parse(session).expect("our Session header parses");
            assert!(
                resp.header("Transport").is_some(),
                "SETUP 200 has a Transport"
            );
        }
        Method::Describe => {
            let text = std::str::from_utf8(&resp.body).expect("SDP is UTF-8");
            let p = sdp::parse(text).expect("our SDP parses");
            assert!(!p.tracks.is_empty());
        }
        _ => {}
    }
}

fn substitute(buf: &BytesMut, id: &str) -> BytesMut {
    let mut out = BytesMut::with_capacity(buf.len());
    let mut rest = &buf[..];
    while let Some(at) = rest
        .windows(PLACEHOLDER.len())
        .position(|w| w == PLACEHOLDER)
    {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(id.as_bytes());
        rest = &rest[at + PLACEHOLDER.len()..];
    }
    out.extend_from_slice(rest);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let t0 = Instant::now();
    let ctx = context(flags & 1 == 1, t0);
    let (out, mut rx) = ConnOut::new(256);
    let conn = ConnContext {
        local: SocketAddr::from(([127, 0, 0, 1], 8554)),
        peer: SocketAddr::from(([127, 0, 0, 1], 50000)),
        out,
        tunnelled: flags & 2 != 0,
        secure: flags & 4 != 0,
    };
    let mut buf = BytesMut::from(input);
    let mut now = t0;
    let mut channels = Channels::default();
    for _ in 0..MAX_REQUESTS {
        now += Duration::from_secs(1);
        ctx.expire_sessions(now);
        match parse_frame(&mut buf, &ctx.limits) {
            Ok(Some(Frame::Request(req))) => {
                let _ = handler::pending_stream(&ctx, &req);
                handler::handle(&ctx, &conn, &req, now);
                let resp = response(&mut rx, &mut channels);
                check(&req, &resp);
                if let Some(id) = resp
                    .header("Session")
                    .and_then(|v| SessionHeader::parse(v).ok())
                {
                    buf = substitute(&buf, &id.id);
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                let cseq = e.cseq.map(|c| c.to_string());
                handler::send(
                    &ctx,
                    &conn,
                    cseq.as_deref(),
                    Response::new(e.status()).with_header("Allow", handler::PUBLIC),
                );
                let resp = response(&mut rx, &mut channels);
                assert_eq!(resp.status, e.status());
                assert_eq!(resp.header("CSeq"), cseq.as_deref());
                if !e.recoverable {
                    break;
                }
            }
        }
    }
    ctx.expire_sessions(now + TIMEOUT * 2);
    assert!(ctx.sessions.is_empty(), "every session expires");
    ctx.close_all();
});
