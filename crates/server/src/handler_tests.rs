//! Sans-IO tests of the request handler: requests parsed from wire text, handled
//! against an in-memory [`ServerContext`], and the queued responses parsed back
//! from the connection's outgoing queue, exactly as a client would read them.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtsp::header::rtp_info;
use rtsp::header::session::SessionHeader;
use rtsp::header::transport::{Cast, ChannelRange, LowerTransport, PortRange, Transport};
use rtsp::{Frame, Limits, Request, Response};

use super::*;
use crate::media_udp::{self, UdpPair};
use relay::{Stream, StreamRegistry};

use crate::conn_out::{ConnOutReceiver, OutItem};

const SDP_2_TRACKS: &str = "v=0\r\n\
o=- 1 1 IN IP4 192.0.2.10\r\n\
s=cam\r\n\
t=0 0\r\n\
m=video 0 RTP/AVP 96\r\n\
a=rtpmap:96 H264/90000\r\n\
a=fmtp:96 packetization-mode=1\r\n\
a=control:trackID=0\r\n\
m=audio 0 RTP/AVP 97\r\n\
a=rtpmap:97 MPEG4-GENERIC/48000/2\r\n\
a=control:trackID=1\r\n";

const SDP_OTHER_TRACKS: &str = "v=0\r\nm=video 0 RTP/AVP 26\r\n";

const TIMEOUT: Duration = Duration::from_secs(65);
const BACKEND_SSRC: u32 = 0x0102_0304;
const CAM: &str = "rtsp://127.0.0.1:8554/cam";

fn described(name: &str, sdp_text: &str) -> Arc<Stream> {
    let stream = Stream::new(name);
    stream.set_presentation(sdp::parse(sdp_text).expect("test SDP parses"));
    stream
}

struct Fixture {
    ctx: Arc<ServerContext>,
    cam: Arc<Stream>,
    t0: Instant,
}

/// A server with stream "cam" (2 tracks), "other" (2 tracks), "idle" (never
/// described) and the given media sockets.
fn fixture_with(media_v4: Option<UdpPair>) -> Fixture {
    let registry = Arc::new(StreamRegistry::new());
    let cam = described("cam", SDP_2_TRACKS);
    assert!(registry.insert(cam.clone()));
    assert!(registry.insert(described("other", SDP_2_TRACKS)));
    assert!(registry.insert(Stream::new("idle")));
    let ctx = Arc::new(ServerContext::new(registry, media_v4, None, TIMEOUT));
    Fixture {
        ctx,
        cam,
        t0: Instant::now(),
    }
}

fn fixture() -> Fixture {
    fixture_with(None)
}

/// One client connection: its context for the handler and the writer's end of its
/// queue.
struct Client {
    conn: ConnContext,
    rx: ConnOutReceiver,
    cseq: u32,
    /// Sender reports queued right after a PLAY response (channel, packet).
    sender_reports: Vec<(u8, Bytes)>,
}

impl Client {
    fn new(local: &str, peer: &str, tunnelled: bool) -> Client {
        let (out, rx) = ConnOut::new(256);
        let conn = ConnContext {
            local: local.parse().expect("local address"),
            peer: peer.parse().expect("peer address"),
            out,
            tunnelled,
            secure: false,
        };
        Client {
            conn,
            rx,
            cseq: 0,
            sender_reports: Vec::new(),
        }
    }

    fn v4() -> Client {
        Client::new("127.0.0.1:8554", "127.0.0.1:50000", false)
    }

    /// Handles raw request text and returns the one response it queued.
    fn raw(&mut self, f: &Fixture, text: &str, now: Instant) -> Response {
        handle(&f.ctx, &self.conn, &parse_request(text), now);
        let resp = self.response();
        // A PLAY may be followed by one RTCP sender report per track with media.
        while let Some(item) = self.rx.try_recv() {
            self.rx.done(&item);
            match item {
                OutItem::Media { header, payload }
                    if header[1] % 2 == 1 && !rtp::rtcp::sender_reports(&payload).is_empty() =>
                {
                    self.sender_reports.push((header[1], payload));
                }
                _ => panic!("exactly one response (and sender reports) queued per request"),
            }
        }
        resp
    }

    /// Sends `METHOD uri` with a fresh CSeq and `headers`; checks the CSeq echo.
    fn send(
        &mut self,
        f: &Fixture,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        now: Instant,
    ) -> Response {
        self.cseq += 1;
        let mut text = format!("{method} {uri} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
        for (k, v) in headers {
            text.push_str(&format!("{k}: {v}\r\n"));
        }
        text.push_str("\r\n");
        let resp = self.raw(f, &text, now);
        assert_eq!(resp.cseq(), Some(self.cseq), "CSeq echoed");
        assert!(resp.header("Date").is_some(), "every response has a Date");
        assert!(resp
            .header("Server")
            .is_some_and(|s| s.starts_with("rtsp-proxy/")));
        resp
    }

    fn setup(
        &mut self,
        f: &Fixture,
        uri: &str,
        transport: &str,
        session: Option<&str>,
    ) -> Response {
        let mut headers = vec![("Transport", transport)];
        if let Some(s) = session {
            headers.push(("Session", s));
        }
        self.send(f, "SETUP", uri, &headers, f.t0)
    }

    /// The next queued item, which must be a response.
    fn response(&mut self) -> Response {
        let item = self.rx.try_recv();
        if let Some(item) = &item {
            self.rx.done(item);
        }
        match item {
            Some(OutItem::Control(bytes)) => parse_response(bytes),
            Some(OutItem::Media { header, .. }) => panic!(
                "media on channel {} where a response was expected",
                header[1]
            ),
            Some(OutItem::MediaBatch { channel, .. }) => {
                panic!("media on channel {channel} where a response was expected")
            }
            None => panic!("no response queued"),
        }
    }

    /// Everything queued: responses as `None`, media as `Some((channel, payload))`.
    fn drain(&mut self) -> Vec<Option<(u8, Bytes)>> {
        let mut items = Vec::new();
        while let Some(item) = self.rx.try_recv() {
            self.rx.done(&item);
            match item {
                OutItem::Control(_) => items.push(None),
                OutItem::Media { header, payload } => items.push(Some((header[1], payload))),
                OutItem::MediaBatch {
                    channel, packets, ..
                } => items.extend(packets.iter().map(|p| Some((channel, p.clone())))),
            }
        }
        items
    }

    fn media(&mut self) -> Vec<(u8, Bytes)> {
        let items = self.drain();
        assert!(items.iter().all(Option::is_some), "only media expected");
        items.into_iter().flatten().collect()
    }
}

fn parse_request(text: &str) -> Request {
    let mut buf = BytesMut::from(text.as_bytes());
    match rtsp::parse_frame(&mut buf, &Limits::default()) {
        Ok(Some(Frame::Request(r))) => r,
        other => panic!("test request did not parse: {other:?}"),
    }
}

fn parse_response(bytes: Bytes) -> Response {
    let mut buf = BytesMut::from(&bytes[..]);
    match rtsp::parse_frame(&mut buf, &Limits::default()) {
        Ok(Some(Frame::Response(r))) => {
            assert!(buf.is_empty(), "one response per control item");
            r
        }
        other => panic!("queued bytes are not a response: {other:?}"),
    }
}

fn session_id(resp: &Response) -> String {
    let v = resp.header("Session").expect("Session header");
    SessionHeader::parse(v).expect("valid Session header").id
}

fn transport(resp: &Response) -> Transport {
    Transport::parse(resp.header("Transport").expect("Transport header")).expect("valid Transport")
}

fn rtp_packet(seq: u16, ts: u32) -> BytesMut {
    let mut b = BytesMut::new();
    rtp::packet::write_header(&mut b, false, 96, seq, ts, BACKEND_SSRC);
    b.extend_from_slice(b"media");
    b
}

fn seq_of(pkt: &[u8]) -> u16 {
    rtp::packet::parse_rtp(pkt).expect("RTP").sequence
}

/// SETUP of both tracks of "cam" over interleaved TCP, then PLAY; returns the
/// session id. The responses are consumed.
fn play_both(f: &Fixture, c: &mut Client) -> String {
    let s1 = c.setup(f, &format!("{CAM}/track1"), "RTP/AVP/TCP;unicast", None);
    assert_eq!(s1.status, 200);
    let id = session_id(&s1);
    let s2 = c.setup(
        f,
        &format!("{CAM}/track2"),
        "RTP/AVP/TCP;unicast",
        Some(&id),
    );
    assert_eq!(s2.status, 200);
    let p = c.send(f, "PLAY", CAM, &[("Session", &id)], f.t0);
    assert_eq!(p.status, 200);
    id
}

// ---------------------------------------------------------------- OPTIONS, DESCRIBE

#[test]
fn options_lists_the_public_methods() {
    let f = fixture();
    let mut c = Client::v4();
    let r = c.send(&f, "OPTIONS", "*", &[], f.t0);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Public"), Some(PUBLIC));
    let r = c.send(&f, "OPTIONS", CAM, &[], f.t0);
    assert_eq!(r.status, 200);
    // A large CSeq is echoed as sent.
    let r = c.raw(&f, "OPTIONS * RTSP/1.0\r\nCSeq: 4294967295\r\n\r\n", f.t0);
    assert_eq!(r.header("CSeq"), Some("4294967295"));
}

#[test]
fn describe_serves_the_sdp_with_our_control_urls() {
    let f = fixture();
    let mut c = Client::v4();
    let r = c.send(&f, "DESCRIBE", CAM, &[("Accept", "application/sdp")], f.t0);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Base"), Some("rtsp://127.0.0.1:8554/cam/"));
    assert_eq!(r.header("Content-Type"), Some("application/sdp"));
    let body = std::str::from_utf8(&r.body).expect("SDP is text");
    assert_eq!(
        r.header("Content-Length"),
        Some(body.len().to_string().as_str())
    );
    let controls: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("a=control:"))
        .collect();
    assert_eq!(
        controls,
        vec!["a=control:*", "a=control:track1", "a=control:track2"]
    );
    assert!(body.contains("a=rtpmap:96 H264/90000"));
    assert!(
        !body.contains("trackID="),
        "the back end's control names are not served"
    );
    assert!(body.contains(&format!(
        "o=- {} 1 IN IP4 127.0.0.1",
        f.cam.sdp_session_id()
    )));
    // The SDP we serve parses back to the same tracks.
    let served = sdp::parse(body).expect("served SDP parses");
    assert!(served.same_tracks(&f.cam.presentation().expect("presentation")));
    // A trailing slash names the same stream.
    assert_eq!(
        c.send(&f, "DESCRIBE", &format!("{CAM}/"), &[], f.t0).status,
        200
    );
}

#[test]
fn describe_content_base_uses_the_address_the_client_connected_to() {
    let f = fixture();
    let mut c = Client::new("[::1]:554", "[::1]:40000", false);
    let r = c.send(&f, "DESCRIBE", "rtsp://[::1]:554/cam", &[], f.t0);
    assert_eq!(r.header("Content-Base"), Some("rtsp://[::1]:554/cam/"));
    assert!(std::str::from_utf8(&r.body)
        .expect("text")
        .contains("c=IN IP6 ::"));
    let mut c = Client::new("[::ffff:10.1.2.3]:8554", "[::ffff:10.1.2.4]:40000", false);
    let r = c.send(&f, "DESCRIBE", "rtsp://10.1.2.3:8554/cam", &[], f.t0);
    assert_eq!(r.header("Content-Base"), Some("rtsp://10.1.2.3:8554/cam/"));
}

#[test]
fn describe_of_unknown_things_is_404() {
    let f = fixture();
    let mut c = Client::v4();
    for uri in [
        "rtsp://127.0.0.1:8554/nosuch",
        "rtsp://127.0.0.1:8554/cam/track1",
        "rtsp://127.0.0.1:8554/",
        "*",
    ] {
        let r = c.send(&f, "DESCRIBE", uri, &[], f.t0);
        assert_eq!(r.status, 404, "{uri}");
        assert!(r.body.is_empty());
    }
}

#[test]
fn describe_and_setup_before_the_backend_answered_are_503() {
    let f = fixture();
    let mut c = Client::v4();
    let r = c.send(&f, "DESCRIBE", "rtsp://127.0.0.1:8554/idle", &[], f.t0);
    assert_eq!(r.status, 503);
    assert!(r.header("Retry-After").is_some());
    let r = c.setup(
        &f,
        "rtsp://127.0.0.1:8554/idle/track1",
        "RTP/AVP/TCP;unicast",
        None,
    );
    assert_eq!(r.status, 503);
    assert!(f.ctx.sessions.is_empty());
}

// ---------------------------------------------------------------- SETUP

#[test]
fn interleaved_setup_of_both_tracks_in_one_session() {
    let f = fixture();
    let mut c = Client::v4();
    let r1 = c.setup(&f, &format!("{CAM}/track1"), "RTP/AVP/TCP;unicast", None);
    assert_eq!(r1.status, 200);
    let session = r1.header("Session").expect("Session");
    assert!(session.ends_with(";timeout=65"), "{session}");
    let id = session_id(&r1);
    assert!(id.len() >= 16, "session ids are not guessable: {id}");
    let t1 = transport(&r1);
    assert_eq!(t1.lower, LowerTransport::Tcp);
    assert_eq!(
        t1.interleaved,
        Some(ChannelRange {
            rtp: 0,
            rtcp: Some(1)
        })
    );
    assert_eq!(t1.ssrc, f.cam.track_ssrc(0));
    assert!(t1.ssrc.is_some());

    let r2 = c.setup(
        &f,
        &format!("{CAM}/track2"),
        "RTP/AVP/TCP;unicast",
        Some(&id),
    );
    assert_eq!(r2.status, 200);
    assert_eq!(session_id(&r2), id, "same session");
    let t2 = transport(&r2);
    assert_eq!(
        t2.interleaved,
        Some(ChannelRange {
            rtp: 2,
            rtcp: Some(3)
        })
    );
    assert_eq!(t2.ssrc, f.cam.track_ssrc(1));
    assert_eq!(f.ctx.sessions.len(), 1);
    // Set up, not playing: no demand yet.
    assert_eq!(f.cam.players(), 0);
}

#[test]
fn interleaved_setup_honours_the_clients_channels() {
    let f = fixture();
    let mut c = Client::v4();
    let r1 = c.setup(
        &f,
        &format!("{CAM}/track1"),
        "RTP/AVP/TCP;unicast;interleaved=6-7",
        None,
    );
    assert_eq!(
        transport(&r1).interleaved,
        Some(ChannelRange {
            rtp: 6,
            rtcp: Some(7)
        })
    );
    let id = session_id(&r1);
    // Channels already used by the other track of the session are refused.
    let clash = c.setup(
        &f,
        &format!("{CAM}/track2"),
        "RTP/AVP/TCP;unicast;interleaved=7-8",
        Some(&id),
    );
    assert_eq!(clash.status, 461);
    // With no channels given the first free pair is picked.
    let r2 = c.setup(
        &f,
        &format!("{CAM}/track2"),
        "RTP/AVP/TCP;unicast",
        Some(&id),
    );
    assert_eq!(
        transport(&r2).interleaved,
        Some(ChannelRange {
            rtp: 0,
            rtcp: Some(1)
        })
    );
    // A single channel gets the next one for RTCP.
    let mut c2 = Client::v4();
    let r = c2.setup(
        &f,
        &format!("{CAM}/track1"),
        "RTP/AVP/TCP;unicast;interleaved=4",
        None,
    );
    assert_eq!(
        transport(&r).interleaved,
        Some(ChannelRange {
            rtp: 4,
            rtcp: Some(5)
        })
    );
}

#[test]
fn interleaved_tracks_of_a_session_share_one_connection() {
    let f = fixture();
    let mut c = Client::v4();
    let id = session_id(&c.setup(&f, &format!("{CAM}/track1"), "RTP/AVP/TCP;unicast", None));
    let mut c2 = Client::v4();
    let r = c2.setup(
        &f,
        &format!("{CAM}/track2"),
        "RTP/AVP/TCP;unicast",
        Some(&id),
    );
    assert_eq!(r.status, 455);
}

#[test]
fn setup_of_unknown_tracks_and_aggregates_is_refused() {
    let f = fixture();
    let mut c = Client::v4();
    let tcp = "RTP/AVP/TCP;unicast";
    assert_eq!(c.setup(&f, &format!("{CAM}/track9"), tcp, None).status, 404);
    assert_eq!(c.setup(&f, &format!("{CAM}/track0"), tcp, None).status, 404);
    assert_eq!(
        c.setup(&f, "rtsp://127.0.0.1:8554/nosuch/track1", tcp, None)
            .status,
        404
    );
    assert_eq!(
        c.setup(&f, CAM, tcp, None).status,
        459,
        "aggregate SETUP of a 2-track stream"
    );
    assert!(
        f.ctx.sessions.is_empty(),
        "no session left behind by a refused SETUP"
    );
}

#[test]
fn aggregate_setup_of_a_single_track_stream_is_its_track() {
    let f = fixture();
    assert!(f.ctx.streams.insert(described("one", SDP_OTHER_TRACKS)));
    let mut c = Client::v4();
    let r = c.setup(&f, "rtsp://127.0.0.1:8554/one", "RTP/AVP/TCP;unicast", None);
    assert_eq!(r.status, 200);
    let one = f.ctx.streams.get("one").expect("stream");
    assert_eq!(transport(&r).ssrc, one.track_ssrc(0));
}

#[test]
fn setup_in_a_session_of_another_stream_is_459() {
    let f = fixture();
    let mut c = Client::v4();
    let id = session_id(&c.setup(&f, &format!("{CAM}/track1"), "RTP/AVP/TCP;unicast", None));
    let r = c.setup(
        &f,
        "rtsp://127.0.0.1:8554/other/track2",
        "RTP/AVP/TCP;unicast",
        Some(&id),
    );
    assert_eq!(r.status, 459);
    assert_eq!(f.ctx.sessions.len(), 1);
}

#[test]
fn setup_with_an_unknown_session_is_454() {
    let f = fixture();
    let mut c = Client::v4();
    let r = c.setup(
        &f,
        &format!("{CAM}/track1"),
        "RTP/AVP/TCP;unicast",
        Some("0123456789ABCDEF"),
    );
    assert_eq!(r.status, 454);
    assert!(f.ctx.sessions.is_empty());
}

#[test]
fn unsupported_transports_are_461() {
    let f = fixture();
    let mut c = Client::v4();
    let uri = format!("{CAM}/track1");
    for t in [
        "RTP/AVP;multicast;client_port=5000-5001",
        "RTP/AVP/TCP;multicast;interleaved=0-1",
        "RTP/SAVP;unicast;client_port=5000-5001",
        "RTP/SAVP/TCP;unicast;interleaved=0-1",
        "RAW/RAW/UDP;unicast;client_port=5000-5001",
        "RTP/AVP;unicast",
        "RTP/AVP;unicast;client_port=0-1",
        "RTP/AVP/SCTP;unicast",
        "",
    ] {
        let r = c.setup(&f, &uri, t, None);
        assert_eq!(r.status, 461, "Transport: {t}");
        assert!(r.header("Session").is_none());
    }
    // No Transport header at all.
    assert_eq!(c.send(&f, "SETUP", &uri, &[], f.t0).status, 461);
    assert!(f.ctx.sessions.is_empty());
    // The first supported offer of a list wins.
    let r = c.setup(
        &f,
        &uri,
        "RTP/SAVP;unicast;client_port=5000-5001, RTP/AVP/TCP;unicast;interleaved=2-3",
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        transport(&r).interleaved,
        Some(ChannelRange {
            rtp: 2,
            rtcp: Some(3)
        })
    );
}

#[test]
fn udp_setup_without_media_sockets_is_461_and_leaves_no_session() {
    let f = fixture();
    let mut c = Client::v4();
    let r = c.setup(
        &f,
        &format!("{CAM}/track1"),
        "RTP/AVP;unicast;client_port=5000-5001",
        None,
    );
    assert_eq!(r.status, 461);
    assert!(r.header("Session").is_none());
    assert!(
        f.ctx.sessions.is_empty(),
        "a refused SETUP must not create a session"
    );
    // Among alternatives, the interleaved one is taken instead.
    let r = c.setup(
        &f,
        &format!("{CAM}/track1"),
        "RTP/AVP;unicast;client_port=5000-5001,RTP/AVP/TCP;unicast",
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(transport(&r).lower, LowerTransport::Tcp);
}

#[test]
fn a_tunnelled_connection_gets_interleaved_whatever_it_asks() {
    let f = fixture();
    let mut c = Client::new("127.0.0.1:8554", "127.0.0.1:50000", true);
    let r = c.setup(
        &f,
        &format!("{CAM}/track1"),
        "RTP/AVP;unicast;client_port=5000-5001",
        None,
    );
    assert_eq!(r.status, 200);
    let t = transport(&r);
    assert_eq!(t.lower, LowerTransport::Tcp);
    assert_eq!(
        t.interleaved,
        Some(ChannelRange {
            rtp: 0,
            rtcp: Some(1)
        })
    );
    assert_eq!(t.client_port, None);
    assert_eq!(t.server_port, None);
}

// ---------------------------------------------------------------- PLAY, PAUSE

#[test]
fn play_needs_a_session() {
    let f = fixture();
    let mut c = Client::v4();
    assert_eq!(c.send(&f, "PLAY", CAM, &[], f.t0).status, 454);
    assert_eq!(
        c.send(&f, "PLAY", CAM, &[("Session", "DEADBEEFDEADBEEF")], f.t0)
            .status,
        454
    );
    assert_eq!(c.send(&f, "PAUSE", CAM, &[], f.t0).status, 454);
    assert_eq!(c.send(&f, "TEARDOWN", CAM, &[], f.t0).status, 454);
    assert_eq!(f.cam.players(), 0);
}

#[test]
fn play_answers_rtp_info_before_any_media() {
    let f = fixture();
    let mut c = Client::v4();
    let id = session_id(&c.setup(&f, &format!("{CAM}/track1"), "RTP/AVP/TCP;unicast", None));
    let id2 = session_id(&c.setup(
        &f,
        &format!("{CAM}/track2"),
        "RTP/AVP/TCP;unicast",
        Some(&id),
    ));
    assert_eq!(id, id2);
    // The back end already runs for someone else.
    f.cam.push_rtp(0, rtp_packet(100, 1000), f.t0);

    c.cseq += 1;
    let text = format!(
        "PLAY {CAM} RTSP/1.0\r\nCSeq: {}\r\nSession: {id}\r\nRange: npt=10-\r\n\r\n",
        c.cseq
    );
    handle(&f.ctx, &c.conn, &parse_request(&text), f.t0);
    // The very next packets, right after the PLAY.
    f.cam.push_rtp(0, rtp_packet(101, 4000), f.t0);
    f.cam.push_rtp(1, rtp_packet(7, 1024), f.t0);

    let first = c.rx.try_recv().expect("response queued");
    c.rx.done(&first);
    let OutItem::Control(bytes) = first else {
        panic!("media before the PLAY response")
    };
    let r = parse_response(bytes);
    assert_eq!(r.status, 200);
    assert_eq!(r.cseq(), Some(c.cseq));
    assert_eq!(session_id(&r), id);
    assert_eq!(
        r.header("Range"),
        Some("npt=0.000-"),
        "a live stream starts now whatever was asked"
    );
    let raw_info = r.header("RTP-Info").expect("RTP-Info");
    assert!(
        raw_info.starts_with("url=rtsp://127.0.0.1:8554/cam/track1;seq="),
        "{raw_info}"
    );
    assert!(
        raw_info.contains(",url=rtsp://127.0.0.1:8554/cam/track2;seq="),
        "{raw_info}"
    );
    let infos = rtp_info::parse_list(raw_info);
    assert_eq!(infos.len(), 2);
    assert_eq!(infos[0].url, "rtsp://127.0.0.1:8554/cam/track1");
    assert_eq!(infos[1].url, "rtsp://127.0.0.1:8554/cam/track2");
    assert!(infos.iter().all(|i| i.seq.is_some() && i.rtptime.is_some()));

    let media = c.media();
    assert_eq!(media.len(), 3);
    // The video track had media: its sender report comes at once, before any
    // packet, and agrees with RTP-Info. The audio track had none yet: no report.
    assert_eq!(media[0].0, 1, "sender report on video's RTCP channel");
    let srs = rtp::rtcp::sender_reports(&media[0].1);
    assert_eq!(srs.len(), 1);
    assert_eq!(Some(srs[0].rtp_timestamp), infos[0].rtptime);
    assert_eq!(Some(srs[0].ssrc), f.cam.track_ssrc(0));
    let media = &media[1..];
    assert_eq!(media[0].0, 0);
    assert_eq!(media[1].0, 2);
    assert_eq!(
        Some(seq_of(&media[0].1)),
        infos[0].seq,
        "RTP-Info seq is the first packet's"
    );
    assert_eq!(Some(seq_of(&media[1].1)), infos[1].seq);
    assert_eq!(f.cam.players(), 1);
    assert_eq!(*f.cam.watch_demand().borrow(), 1);
}

#[test]
fn play_of_one_set_up_track_lists_only_that_track() {
    let f = fixture();
    let mut c = Client::v4();
    let id = session_id(&c.setup(&f, &format!("{CAM}/track2"), "RTP/AVP/TCP;unicast", None));
    let r = c.send(&f, "PLAY", CAM, &[("Session", &id)], f.t0);
    let infos = rtp_info::parse_list(r.header("RTP-Info").expect("RTP-Info"));
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].url, "rtsp://127.0.0.1:8554/cam/track2");
    // A PLAY whose URL names another stream is refused.
    assert_eq!(
        c.send(
            &f,
            "PLAY",
            "rtsp://127.0.0.1:8554/other",
            &[("Session", &id)],
            f.t0
        )
        .status,
        404
    );
}

#[test]
fn pause_stops_delivery_and_play_resumes_it() {
    let f = fixture();
    let mut c = Client::v4();
    let id = session_id(&c.setup(&f, &format!("{CAM}/track1"), "RTP/AVP/TCP;unicast", None));
    assert_eq!(
        c.send(&f, "PAUSE", CAM, &[("Session", &id)], f.t0).status,
        455,
        "PAUSE in Ready"
    );

    assert_eq!(
        c.send(&f, "PLAY", CAM, &[("Session", &id)], f.t0).status,
        200
    );
    f.cam.push_rtp(0, rtp_packet(1, 0), f.t0);
    assert_eq!(c.media().len(), 1);

    let r = c.send(&f, "PAUSE", CAM, &[("Session", &id)], f.t0);
    assert_eq!(r.status, 200);
    assert_eq!(session_id(&r), id);
    assert_eq!(f.cam.players(), 0);
    f.cam.push_rtp(0, rtp_packet(2, 3000), f.t0);
    assert!(c.media().is_empty(), "nothing while paused");
    // PAUSE twice is fine.
    assert_eq!(
        c.send(&f, "PAUSE", CAM, &[("Session", &id)], f.t0).status,
        200
    );

    let r = c.send(&f, "PLAY", CAM, &[("Session", &id)], f.t0);
    assert_eq!(r.status, 200);
    assert_eq!(
        c.sender_reports.len(),
        1,
        "a sender report right after the resume"
    );
    let infos = rtp_info::parse_list(r.header("RTP-Info").expect("RTP-Info"));
    f.cam.push_rtp(0, rtp_packet(3, 6000), f.t0);
    let media = c.media();
    assert_eq!(media.len(), 1);
    assert_eq!(Some(seq_of(&media[0].1)), infos[0].seq);
    assert_eq!(f.cam.players(), 1);
}

#[test]
fn a_track_added_to_a_playing_session_starts_at_once() {
    let f = fixture();
    let mut c = Client::v4();
    let id = session_id(&c.setup(&f, &format!("{CAM}/track1"), "RTP/AVP/TCP;unicast", None));
    assert_eq!(
        c.send(&f, "PLAY", CAM, &[("Session", &id)], f.t0).status,
        200
    );
    // Changing the transport of a playing track is refused.
    let r = c.setup(
        &f,
        &format!("{CAM}/track1"),
        "RTP/AVP/TCP;unicast;interleaved=8-9",
        Some(&id),
    );
    assert_eq!(r.status, 455);
    let r = c.setup(
        &f,
        &format!("{CAM}/track2"),
        "RTP/AVP/TCP;unicast",
        Some(&id),
    );
    assert_eq!(r.status, 200);
    f.cam.push_rtp(0, rtp_packet(1, 0), f.t0);
    f.cam.push_rtp(1, rtp_packet(1, 0), f.t0);
    let channels: Vec<u8> = c.media().iter().map(|(ch, _)| *ch).collect();
    assert_eq!(channels, vec![0, 2]);
    assert_eq!(f.cam.players(), 1);
}

/// The queued items after a request: the first must be its response (returned
/// with the number of media items that follow it).
fn response_then_media(c: &mut Client) -> (Response, usize) {
    let first = c.rx.try_recv().expect("something queued");
    c.rx.done(&first);
    let OutItem::Control(bytes) = first else {
        panic!("media queued before the response")
    };
    (parse_response(bytes), c.drain().len())
}

/// Found by the `handler` fuzz target: a SETUP that adds a track to a playing
/// session, and a TEARDOWN of one of its tracks, restart delivery, which queued
/// a sender report and the replay of the cached GOP before the answer, so the
/// client got media on channels it had not been told about yet.
#[test]
fn tracks_changed_while_playing_are_answered_before_any_media() {
    let f = fixture();
    let mut c = Client::v4();
    // The back end runs: a keyframe is cached and both tracks have a timing.
    let mut idr = BytesMut::new();
    rtp::packet::write_header(&mut idr, true, 96, 100, 1000, BACKEND_SSRC);
    idr.extend_from_slice(&[0x65, 0x88, 0x80, 0x40]);
    f.cam.push_rtp(0, idr, f.t0);
    f.cam.push_rtp(1, rtp_packet(7, 1024), f.t0);

    let id = session_id(&c.setup(&f, &format!("{CAM}/track1"), "RTP/AVP/TCP;unicast", None));
    let play = format!("PLAY {CAM} RTSP/1.0\r\nCSeq: 10\r\nSession: {id}\r\n\r\n");
    handle(&f.ctx, &c.conn, &parse_request(&play), f.t0);
    let (resp, media) = response_then_media(&mut c);
    assert_eq!((resp.status, resp.cseq()), (200, Some(10)));
    assert!(media > 0, "the PLAY got the cached keyframe");

    let setup = format!(
        "SETUP {CAM}/track2 RTSP/1.0\r\nCSeq: 11\r\nSession: {id}\r\n\
         Transport: RTP/AVP/TCP;unicast;interleaved=2-3\r\n\r\n"
    );
    handle(&f.ctx, &c.conn, &parse_request(&setup), f.t0);
    let (resp, media) = response_then_media(&mut c);
    assert_eq!((resp.status, resp.cseq()), (200, Some(11)));
    assert!(resp
        .header("Transport")
        .is_some_and(|t| t.contains("interleaved=2-3")));
    assert!(media > 0, "delivery restarted with both tracks");

    let teardown = format!("TEARDOWN {CAM}/track1 RTSP/1.0\r\nCSeq: 12\r\nSession: {id}\r\n\r\n");
    handle(&f.ctx, &c.conn, &parse_request(&teardown), f.t0);
    let (resp, media) = response_then_media(&mut c);
    assert_eq!((resp.status, resp.cseq()), (200, Some(12)));
    assert!(media > 0, "delivery restarted with the remaining track");
    assert_eq!(f.cam.players(), 1);
}

// ---------------------------------------------------------------- TEARDOWN

#[test]
fn teardown_of_one_track_keeps_the_session() {
    let f = fixture();
    let mut c = Client::v4();
    let id = play_both(&f, &mut c);
    let r = c.send(
        &f,
        "TEARDOWN",
        &format!("{CAM}/track1"),
        &[("Session", &id)],
        f.t0,
    );
    assert_eq!(r.status, 200);
    assert_eq!(session_id(&r), id);
    assert_eq!(f.ctx.sessions.len(), 1);
    assert_eq!(f.cam.players(), 1, "still playing the other track");
    f.cam.push_rtp(0, rtp_packet(1, 0), f.t0);
    f.cam.push_rtp(1, rtp_packet(1, 0), f.t0);
    let channels: Vec<u8> = c.media().iter().map(|(ch, _)| *ch).collect();
    assert_eq!(channels, vec![2], "only the remaining track is delivered");
    // The session still answers.
    assert_eq!(
        c.send(&f, "GET_PARAMETER", CAM, &[("Session", &id)], f.t0)
            .status,
        200
    );
}

#[test]
fn teardown_of_the_last_track_or_the_aggregate_ends_the_session() {
    let f = fixture();
    let mut c = Client::v4();
    let id = play_both(&f, &mut c);
    let r = c.send(&f, "TEARDOWN", CAM, &[("Session", &id)], f.t0);
    assert_eq!(r.status, 200);
    assert!(f.ctx.sessions.is_empty());
    assert_eq!(f.cam.players(), 0);
    assert_eq!(*f.cam.watch_demand().borrow(), 0);
    f.cam.push_rtp(0, rtp_packet(1, 0), f.t0);
    assert!(c.media().is_empty());
    for m in ["PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER", "OPTIONS"] {
        assert_eq!(
            c.send(&f, m, CAM, &[("Session", &id)], f.t0).status,
            454,
            "{m} after TEARDOWN"
        );
    }

    // One track only: tearing it down ends the session too.
    let id = session_id(&c.setup(&f, &format!("{CAM}/track2"), "RTP/AVP/TCP;unicast", None));
    let r = c.send(
        &f,
        "TEARDOWN",
        &format!("{CAM}/track2"),
        &[("Session", &id)],
        f.t0,
    );
    assert_eq!(r.status, 200);
    assert!(f.ctx.sessions.is_empty());
}

#[test]
fn teardown_of_another_streams_url_is_refused() {
    let f = fixture();
    let mut c = Client::v4();
    let id = play_both(&f, &mut c);
    let r = c.send(
        &f,
        "TEARDOWN",
        "rtsp://127.0.0.1:8554/other",
        &[("Session", &id)],
        f.t0,
    );
    assert_eq!(r.status, 404);
    assert_eq!(f.ctx.sessions.len(), 1);
    assert_eq!(f.cam.players(), 1);
}

// ---------------------------------------------------------------- protocol rules

#[test]
fn protocol_errors() {
    let f = fixture();
    let mut c = Client::v4();

    let r = c.raw(&f, "OPTIONS * RTSP/2.0\r\nCSeq: 1\r\n\r\n", f.t0);
    assert_eq!(r.status, 505);
    assert_eq!(r.cseq(), Some(1));

    for text in [
        "OPTIONS * RTSP/1.0\r\n\r\n",
        "OPTIONS * RTSP/1.0\r\nCSeq: x1\r\n\r\n",
        "OPTIONS * RTSP/1.0\r\nCSeq: 12345678901\r\n\r\n",
    ] {
        let r = c.raw(&f, text, f.t0);
        assert_eq!(r.status, 400, "{text:?}");
        assert!(r.header("CSeq").is_none());
    }

    let r = c.send(
        &f,
        "OPTIONS",
        "*",
        &[
            ("Require", "implicit-play"),
            ("Proxy-Require", "gzipped-messages"),
        ],
        f.t0,
    );
    assert_eq!(r.status, 551);
    assert_eq!(
        r.header("Unsupported"),
        Some("implicit-play, gzipped-messages")
    );

    for m in ["ANNOUNCE", "RECORD", "REDIRECT"] {
        let r = c.send(&f, m, CAM, &[], f.t0);
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("Allow"), Some(PUBLIC));
    }
    let r = c.send(&f, "FROBNICATE", CAM, &[], f.t0);
    assert_eq!(r.status, 501);

    // Parameters: allowed on the server, a stream, or a session; nothing settable.
    assert_eq!(c.send(&f, "GET_PARAMETER", "*", &[], f.t0).status, 200);
    assert_eq!(c.send(&f, "GET_PARAMETER", CAM, &[], f.t0).status, 200);
    assert_eq!(
        c.send(
            &f,
            "GET_PARAMETER",
            "rtsp://127.0.0.1:8554/nosuch",
            &[],
            f.t0
        )
        .status,
        404
    );
    let id = session_id(&c.setup(&f, &format!("{CAM}/track1"), "RTP/AVP/TCP;unicast", None));
    let r = c.send(&f, "GET_PARAMETER", CAM, &[("Session", &id)], f.t0);
    assert_eq!(r.status, 200);
    assert_eq!(session_id(&r), id);

    let set = |c: &mut Client, body: &str| {
        let text = format!(
            "SET_PARAMETER {CAM} RTSP/1.0\r\nCSeq: 77\r\nSession: {id}\r\nContent-Type: text/parameters\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        c.raw(&f, &text, f.t0)
    };
    let r = set(&mut c, "volume: 10\r\n");
    assert_eq!(r.status, 451);
    assert_eq!(session_id(&r), id);
    assert_eq!(
        set(&mut c, "\r\n").status,
        200,
        "an empty SET_PARAMETER is a keep-alive"
    );
}

// ---------------------------------------------------------------- session lifetime

#[test]
fn idle_sessions_expire_and_stop_delivery() {
    let f = fixture();
    let mut c = Client::v4();
    let id = play_both(&f, &mut c);
    f.ctx.expire_sessions(f.t0 + Duration::from_secs(60));
    assert_eq!(f.ctx.sessions.len(), 1, "not yet");
    f.ctx.expire_sessions(f.t0 + Duration::from_secs(66));
    assert!(f.ctx.sessions.get(&id).is_none());
    assert_eq!(f.cam.players(), 0);
    f.cam.push_rtp(0, rtp_packet(1, 0), f.t0);
    assert!(c.media().is_empty());
    assert!(
        c.conn.out.is_closed(),
        "an interleaved session's connection is closed with it"
    );
}

#[test]
fn any_request_with_the_session_header_keeps_it_alive() {
    let f = fixture();
    let mut c = Client::v4();
    let id = play_both(&f, &mut c);
    let later = f.t0 + Duration::from_secs(50);
    assert_eq!(
        c.send(&f, "OPTIONS", "*", &[("Session", &id)], later)
            .status,
        200
    );
    f.ctx.expire_sessions(f.t0 + Duration::from_secs(66));
    assert!(f.ctx.sessions.get(&id).is_some());
    f.ctx.expire_sessions(later + Duration::from_secs(66));
    assert!(f.ctx.sessions.get(&id).is_none());
    // A request without the header does not count.
    let f = fixture();
    let mut c = Client::v4();
    let id = play_both(&f, &mut c);
    assert_eq!(c.send(&f, "OPTIONS", "*", &[], later).status, 200);
    f.ctx.expire_sessions(f.t0 + Duration::from_secs(66));
    assert!(f.ctx.sessions.get(&id).is_none());
}

#[test]
fn interleaved_rtcp_keeps_the_sessions_of_its_connection_alive() {
    let f = fixture();
    let mut c = Client::v4();
    let id = play_both(&f, &mut c);
    let mut other = Client::v4();
    let other_id = play_both(&f, &mut other);
    let later = f.t0 + Duration::from_secs(50);
    f.ctx.sessions.touch_connection(&c.conn.out, later);
    f.ctx.expire_sessions(f.t0 + Duration::from_secs(66));
    assert!(f.ctx.sessions.get(&id).is_some());
    assert!(
        f.ctx.sessions.get(&other_id).is_none(),
        "the other connection sent nothing"
    );
    assert!(!c.conn.out.is_closed());
    assert!(other.conn.out.is_closed());
    assert_eq!(f.cam.players(), 1);
}

#[test]
fn changed_backend_tracks_close_playing_sessions() {
    let f = fixture();
    let mut c = Client::v4();
    let id = play_both(&f, &mut c);
    assert_eq!(
        f.cam
            .set_presentation(sdp::parse(SDP_OTHER_TRACKS).expect("sdp")),
        relay::PresentationChange::TracksChanged
    );
    assert!(f.ctx.sessions.get(&id).is_none());
    assert!(c.conn.out.is_closed());
    assert_eq!(f.cam.players(), 0);
}

#[test]
fn a_ready_session_of_an_old_generation_cannot_play() {
    let f = fixture();
    let mut c = Client::v4();
    let id = session_id(&c.setup(&f, &format!("{CAM}/track1"), "RTP/AVP/TCP;unicast", None));
    f.cam
        .set_presentation(sdp::parse(SDP_OTHER_TRACKS).expect("sdp"));
    let r = c.send(&f, "PLAY", CAM, &[("Session", &id)], f.t0);
    assert_eq!(r.status, 454);
    assert!(f.ctx.sessions.is_empty());
    assert_eq!(f.cam.players(), 0);
}

/// Over TLS media stays on the connection even with UDP sockets at hand: a
/// UDP-only SETUP is 461 (the client retries over TCP), alternatives give TCP.
#[tokio::test]
async fn a_secure_connection_never_gets_udp() {
    let pair = media_udp::bind_pair(false, 0).expect("local UDP pair");
    let f = fixture_with(Some(pair));
    let mut c = Client::v4();
    c.conn.secure = true;
    let r = c.send(&f, "DESCRIBE", CAM, &[], f.t0);
    assert_eq!(
        r.header("Content-Base"),
        Some("rtsps://127.0.0.1:8554/cam/")
    );
    let udp = "RTP/AVP;unicast;client_port=5000-5001";
    let r = c.setup(&f, &format!("{CAM}/track1"), udp, None);
    assert_eq!(r.status, 461);
    assert!(f.ctx.sessions.is_empty());
    let either = format!("{udp},RTP/AVP/TCP;unicast;interleaved=4-5");
    let r = c.setup(&f, &format!("{CAM}/track1"), &either, None);
    assert_eq!(r.status, 200);
    let t = transport(&r);
    assert_eq!(t.lower, LowerTransport::Tcp);
    assert_eq!(
        t.interleaved,
        Some(ChannelRange {
            rtp: 4,
            rtcp: Some(5)
        })
    );
    // The same offers on a plain connection get UDP.
    let mut plain = Client::v4();
    let r = plain.setup(&f, &format!("{CAM}/track1"), &either, None);
    assert_eq!(transport(&r).lower, LowerTransport::Udp);
}

// ---------------------------------------------------------------- UDP

#[tokio::test]
async fn udp_setup_indexes_the_clients_rtcp_address() {
    let pair = media_udp::bind_pair(false, 0).expect("local UDP pair");
    let (rtp_port, rtcp_port) = (pair.rtp_port, pair.rtcp_port);
    let f = fixture_with(Some(pair));
    let mut c = Client::v4();
    // The client asks for media elsewhere: it goes to the address it came from.
    let r = c.setup(
        &f,
        &format!("{CAM}/track1"),
        "RTP/AVP;unicast;destination=192.0.2.99;client_port=5000-5001",
        None,
    );
    assert_eq!(r.status, 200);
    let id = session_id(&r);
    let t = transport(&r);
    assert_eq!(t.lower, LowerTransport::Udp);
    assert_eq!(t.destination.as_deref(), Some("127.0.0.1"));
    assert_eq!(t.source.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        t.client_port,
        Some(PortRange {
            rtp: 5000,
            rtcp: Some(5001)
        })
    );
    assert_eq!(
        t.server_port,
        Some(PortRange {
            rtp: rtp_port,
            rtcp: Some(rtcp_port)
        })
    );
    assert_eq!(rtp_port % 2, 0);
    assert_eq!(t.ssrc, f.cam.track_ssrc(0));

    // A single client port: RTCP on the next one.
    let r2 = c.setup(
        &f,
        &format!("{CAM}/track2"),
        "RTP/AVP;unicast;client_port=6000",
        Some(&id),
    );
    assert_eq!(
        transport(&r2).client_port,
        Some(PortRange {
            rtp: 6000,
            rtcp: Some(6001)
        })
    );

    let found = |port: u16| {
        let addr: SocketAddr = SocketAddr::new([127, 0, 0, 1].into(), port);
        f.ctx
            .sessions
            .by_rtcp_addr(&addr)
            .map(|s| client_sessions::lock(&s).id.clone())
    };
    assert_eq!(found(5001), Some(id.clone()));
    assert_eq!(found(6001), Some(id.clone()));
    assert_eq!(found(5000), None, "RTP ports are not RTCP addresses");
    assert_eq!(
        f.ctx
            .sessions
            .by_rtcp_addr(&"192.0.2.99:5001".parse().expect("addr"))
            .map(|_| ()),
        None
    );

    // A UDP session is not tied to the connection.
    assert!(f.ctx.sessions.on_connection(&c.conn.out).is_empty());

    // An IPv6 client has no IPv6 media socket here.
    let mut v6 = Client::new("[::1]:8554", "[::1]:40000", false);
    let r = v6.setup(
        &f,
        "rtsp://[::1]:8554/cam/track1",
        "RTP/AVP;unicast;client_port=5000-5001",
        None,
    );
    assert_eq!(r.status, 461);
    assert_eq!(f.ctx.sessions.len(), 1);

    // A re-SETUP with new ports forgets the old RTCP address.
    let r3 = c.setup(
        &f,
        &format!("{CAM}/track1"),
        "RTP/AVP;unicast;client_port=7000-7001",
        Some(&id),
    );
    assert_eq!(r3.status, 200);
    assert_eq!(found(7001), Some(id.clone()));
    assert_eq!(
        found(5001),
        None,
        "the old address is no longer the session's"
    );
    assert_eq!(found(6001), Some(id.clone()));

    // A per-track TEARDOWN forgets that track's address only.
    let r4 = c.send(
        &f,
        "TEARDOWN",
        &format!("{CAM}/track2"),
        &[("Session", &id)],
        f.t0,
    );
    assert_eq!(r4.status, 200);
    assert_eq!(found(6001), None);
    assert_eq!(found(7001), Some(id.clone()));

    assert_eq!(
        c.send(&f, "TEARDOWN", CAM, &[("Session", &id)], f.t0)
            .status,
        200
    );
    assert_eq!(found(7001), None, "the index goes with the session");
}

#[tokio::test]
async fn udp_play_answers_rtp_info() {
    let pair = media_udp::bind_pair(false, 0).expect("local UDP pair");
    let f = fixture_with(Some(pair));
    let mut c = Client::v4();
    let id = session_id(&c.setup(
        &f,
        &format!("{CAM}/track2"),
        "RTP/AVP;unicast;client_port=5000-5001",
        None,
    ));
    let r = c.send(&f, "PLAY", CAM, &[("Session", &id)], f.t0);
    assert_eq!(r.status, 200);
    let infos = rtp_info::parse_list(r.header("RTP-Info").expect("RTP-Info"));
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].url, "rtsp://127.0.0.1:8554/cam/track2");
    assert_eq!(f.cam.players(), 1);
    // Expiry of a UDP session does not touch the RTSP connection.
    f.ctx.expire_sessions(f.t0 + Duration::from_secs(66));
    assert!(f.ctx.sessions.is_empty());
    assert_eq!(f.cam.players(), 0);
    assert!(!c.conn.out.is_closed());
}

/// UDP SETUPs racing the session reaper: the handler must never hold a session's
/// lock while it waits for the session table (the reaper holds the table while it
/// locks each session).
#[test]
fn udp_setup_and_the_reaper_do_not_deadlock() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pair = {
        let _guard = rt.enter();
        media_udp::bind_pair(false, 0).expect("local UDP pair")
    };
    let f = Arc::new(fixture_with(Some(pair)));
    let mut first = Client::v4();
    let id = session_id(&first.setup(
        &f,
        &format!("{CAM}/track1"),
        "RTP/AVP;unicast;client_port=5000-5001",
        None,
    ));

    let (done_tx, done_rx) = mpsc::channel();
    let setups = {
        let f = f.clone();
        let done = done_tx.clone();
        thread::spawn(move || {
            let mut c = Client::v4();
            for _ in 0..20_000 {
                let r = c.setup(
                    &f,
                    &format!("{CAM}/track1"),
                    "RTP/AVP;unicast;client_port=5000-5001",
                    Some(&id),
                );
                assert_eq!(r.status, 200);
            }
            let _ = done.send(());
        })
    };
    let reaper = {
        let f = f.clone();
        thread::spawn(move || {
            for _ in 0..20_000 {
                f.ctx.expire_sessions(f.t0);
                f.ctx.sessions.touch_connection(&ConnOut::new(1).0, f.t0);
            }
            let _ = done_tx.send(());
        })
    };
    for _ in 0..2 {
        done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("SETUP and the reaper deadlocked");
    }
    setups.join().expect("setup thread");
    reaper.join().expect("reaper thread");
}

/// The fixture's server with `-C viewer s3cret`.
fn fixture_with_login() -> Fixture {
    let f = fixture();
    let registry = f.ctx.streams.clone();
    let mut ctx = ServerContext::new(registry, None, None, TIMEOUT);
    ctx.client_auth = access::AccessControl::new(
        vec![rtsp::auth::Credentials::new("viewer", "s3cret")],
        false,
    );
    Fixture {
        ctx: Arc::new(ctx),
        ..f
    }
}

/// What a client answers to `challenge` for `method uri`.
fn login(challenge: &Response, user: &str, pass: &str, method: &str, uri: &str) -> String {
    let mut client = rtsp::auth::ClientAuth::new(rtsp::auth::Credentials::new(user, pass));
    assert!(client.on_unauthorized(challenge.headers.get_all("WWW-Authenticate")));
    client.authorization(method, uri).expect("Authorization")
}

#[test]
fn with_client_users_everything_but_options_needs_a_login_checked_first() {
    let f = fixture_with_login();
    let mut c = Client::v4();
    let options = c.send(&f, "OPTIONS", CAM, &[], f.t0);
    assert_eq!(options.status, 200, "OPTIONS is open");
    let challenge = c.send(&f, "DESCRIBE", CAM, &[], f.t0);
    assert_eq!(challenge.status, 401);
    assert!(challenge
        .header("WWW-Authenticate")
        .is_some_and(|v| v.starts_with("Digest realm=\"rtsp-proxy\"")));
    // Before the stream or session lookup: strangers learn nothing.
    let unknown = c.send(&f, "DESCRIBE", "rtsp://127.0.0.1:8554/nosuch", &[], f.t0);
    assert_eq!(unknown.status, 401);
    let no_session = c.send(&f, "PLAY", CAM, &[("Session", "DEADBEEF")], f.t0);
    assert_eq!(no_session.status, 401);

    let auth = login(&challenge, "viewer", "s3cret", "DESCRIBE", CAM);
    let described = c.send(&f, "DESCRIBE", CAM, &[("Authorization", &auth)], f.t0);
    assert_eq!(described.status, 200);
    let unknown = c.send(
        &f,
        "DESCRIBE",
        "rtsp://127.0.0.1:8554/nosuch",
        &[(
            "Authorization",
            &login(
                &challenge,
                "viewer",
                "s3cret",
                "DESCRIBE",
                "rtsp://127.0.0.1:8554/nosuch",
            ),
        )],
        f.t0,
    );
    assert_eq!(unknown.status, 404, "logged in, the stream is looked up");
    let wrong = login(&challenge, "viewer", "guess", "DESCRIBE", CAM);
    let refused = c.send(&f, "DESCRIBE", CAM, &[("Authorization", &wrong)], f.t0);
    assert_eq!(refused.status, 401);
    let basic = rtsp::auth::basic_authorization(&rtsp::auth::Credentials::new("viewer", "s3cret"));
    let refused = c.send(&f, "DESCRIBE", CAM, &[("Authorization", &basic)], f.t0);
    assert_eq!(refused.status, 401, "Basic needs TLS");
    let mut tls = Client::v4();
    tls.conn.secure = true;
    let over_tls = tls.send(&f, "DESCRIBE", CAM, &[("Authorization", &basic)], f.t0);
    assert_eq!(over_tls.status, 200, "Basic over TLS");
    assert!(over_tls
        .header("Content-Base")
        .is_some_and(|b| b.starts_with("rtsps://")));

    // A whole session with the login, keep-alive after the nonce expired included.
    let track = format!("{CAM}/track1");
    let auth = login(&challenge, "viewer", "s3cret", "SETUP", &track);
    let setup = c.send(
        &f,
        "SETUP",
        &track,
        &[
            ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1"),
            ("Authorization", &auth),
        ],
        f.t0,
    );
    assert_eq!(setup.status, 200);
    let session = SessionHeader::parse(setup.header("Session").expect("Session"))
        .expect("session header")
        .id;
    let later = f.t0 + access::NONCE_LIFETIME + Duration::from_secs(10);
    let keepalive = login(&challenge, "viewer", "s3cret", "GET_PARAMETER", CAM);
    let alive = c.send(
        &f,
        "GET_PARAMETER",
        CAM,
        &[("Session", &session), ("Authorization", &keepalive)],
        later,
    );
    assert_eq!(alive.status, 200, "an old nonce keeps a session alive");
    let new_setup = login(&challenge, "viewer", "s3cret", "SETUP", &track);
    let stale = c.send(
        &f,
        "SETUP",
        &track,
        &[
            ("Transport", "RTP/AVP/TCP;unicast;interleaved=2-3"),
            ("Authorization", &new_setup),
        ],
        later,
    );
    assert_eq!(stale.status, 401, "an old nonce opens nothing new");
    assert!(stale
        .header("WWW-Authenticate")
        .is_some_and(|v| v.ends_with("stale=TRUE")));
}
// ---------------------------------------------------------------- REGISTER, DEREGISTER

mod register_requests {
    use super::*;
    use crate::access::AccessControl;
    use crate::register::{RegisterAllow, RegisterSettings, Registrar};
    use rtsp::auth::{ClientAuth, Credentials};
    use source::{BackendTransport, Connector, SourceSettings};
    use supervisor::path_spec::{PathSpec, SourceOptions};
    use supervisor::{Origin, Supervisor, DEFAULT_MAX_REGISTERED};

    /// What `-R` asks of the configuration (`config::Config` in the binary):
    /// the `--register-allow` list and `--max-registered`; no keyframe cache.
    struct Options {
        register_allow: Vec<RegisterAllow>,
        max_registered: usize,
    }

    impl RegisterSettings for Options {
        fn allows(&self, host: &str, peer: IpAddr) -> bool {
            self.register_allow
                .iter()
                .any(|rule| rule.allows(host, peer))
        }

        fn source_settings(
            &self,
            url: &str,
            interleaved: bool,
            connector: Connector,
        ) -> SourceSettings {
            let options = SourceOptions {
                keyframe_cache_bytes: 0,
                ..SourceOptions::default()
            };
            let mut settings = PathSpec::new(url, options).settings(None);
            if interleaved {
                settings.transport = BackendTransport::Tcp;
            }
            settings.connector = connector;
            settings
        }

        fn keyframe_cache_bytes(&self) -> usize {
            0
        }
    }

    /// Nothing listens there: registered sources just retry in the background.
    const BACKEND: &str = "rtsp://127.0.0.1:9/live";

    /// The usual fixture with `-R` (and `-U reg pw` when `auth`).
    fn fixture(config: Options, auth: bool) -> Fixture {
        let registry = Arc::new(StreamRegistry::new());
        let cam = described("cam", SDP_2_TRACKS);
        assert!(registry.insert(cam.clone()));
        let mut ctx = ServerContext::new(registry.clone(), None, None, TIMEOUT);
        ctx.supervisor = Arc::new(Supervisor::new(registry, config.max_registered));
        ctx.register = Some(Registrar::new(
            Arc::new(config),
            "127.0.0.1".parse().unwrap(),
            Some(8554),
            None,
        ));
        if auth {
            ctx.register_auth = AccessControl::new(vec![Credentials::new("reg", "pw")], false);
        }
        Fixture {
            ctx: Arc::new(ctx),
            cam,
            t0: Instant::now(),
        }
    }

    fn register_config() -> Options {
        Options {
            register_allow: vec![RegisterAllow::Peer],
            max_registered: DEFAULT_MAX_REGISTERED,
        }
    }

    fn request(method: &str, url: &str, transport: Option<&str>) -> String {
        let mut text = format!("{method} {url} RTSP/1.0\r\nCSeq: 7\r\n");
        if let Some(t) = transport {
            text.push_str(&format!("Transport: {t}\r\n"));
        }
        text.push_str("\r\n");
        text
    }

    /// Handles `text`, returning the response and whether the connection is to be
    /// handed over.
    fn exchange(f: &Fixture, c: &mut Client, text: &str) -> (Response, bool) {
        let next = handle(&f.ctx, &c.conn, &parse_request(text), f.t0);
        let resp = c.response();
        assert!(c.rx.try_recv().is_none(), "one response");
        (resp, matches!(next, Next::HandOver(_)))
    }

    fn status(f: &Fixture, c: &mut Client, text: &str) -> u16 {
        exchange(f, c, text).0.status
    }

    fn from(peer: &str) -> Client {
        Client::new("127.0.0.1:8554", peer, false)
    }

    #[test]
    fn without_dash_r_register_is_405_and_not_public() {
        let f = super::fixture();
        let mut c = Client::v4();
        let r = c.raw(&f, &request("REGISTER", BACKEND, None), f.t0);
        assert_eq!(r.status, 405);
        assert_eq!(r.header("Allow"), Some(PUBLIC));
        let r = c.raw(
            &f,
            &request("DEREGISTER", BACKEND, Some("proxy_url_suffix=cam")),
            f.t0,
        );
        assert_eq!(r.status, 405);
        let r = c.send(&f, "OPTIONS", "*", &[], f.t0);
        assert_eq!(r.header("Public"), Some(PUBLIC));
    }

    #[tokio::test]
    async fn register_names_streams_and_refuses_duplicates() {
        let f = fixture(register_config(), false);
        let mut c = Client::v4();
        let r = c.send(&f, "OPTIONS", "*", &[], f.t0);
        assert_eq!(r.header("Public"), Some(PUBLIC_WITH_REGISTER));
        assert!(PUBLIC_WITH_REGISTER.ends_with(", REGISTER, DEREGISTER"));

        let (r, handover) = exchange(
            &f,
            &mut c,
            &request(
                "REGISTER",
                BACKEND,
                Some("preferred_delivery_protocol=udp; proxy_url_suffix=cams/a"),
            ),
        );
        assert_eq!((r.status, handover), (200, false));
        assert_eq!(r.cseq(), Some(7));
        assert!(r.header("Date").is_some());
        assert!(f.ctx.streams.get("cams/a").is_some());
        assert_eq!(
            f.ctx.supervisor.origin("cams/a"),
            Some(Origin::Registered {
                by: "127.0.0.1".parse().unwrap()
            })
        );
        for taken in ["cams/a", "cam"] {
            let (r, _) = exchange(
                &f,
                &mut c,
                &request(
                    "REGISTER",
                    BACKEND,
                    Some(&format!("proxy_url_suffix={taken}")),
                ),
            );
            assert_eq!(
                (r.status, r.reason.as_str()),
                (451, "Invalid parameter"),
                "{taken}"
            );
        }
        for bad in ["", "a b", "../x", "a?b"] {
            let t = format!("proxy_url_suffix={bad}");
            assert_eq!(
                status(&f, &mut c, &request("REGISTER", BACKEND, Some(&t))),
                451,
                "{bad:?}"
            );
        }
        for k in 1..=2 {
            assert_eq!(status(&f, &mut c, &request("REGISTER", BACKEND, None)), 200);
            assert!(f
                .ctx
                .streams
                .get(&format!("registeredProxyStream-{k}"))
                .is_some());
        }
        assert_eq!(f.ctx.supervisor.registered(), 3);
        // A URL we cannot dial.
        for url in ["http://127.0.0.1/x", "rtsp://[::1/x", "garbage"] {
            assert_eq!(
                status(&f, &mut c, &request("REGISTER", url, None)),
                400,
                "{url}"
            );
        }
        assert_eq!(f.ctx.supervisor.registered(), 3);
    }

    #[tokio::test]
    async fn the_allow_list_decides_what_is_dialled() {
        let f = fixture(register_config(), false);
        let mut c = from("192.0.2.10:40000");
        let t = Some("proxy_url_suffix=x");
        for url in [
            "rtsp://127.0.0.1/x",
            "rtsp://192.0.2.11/x",
            "rtsp://cam.example/x",
        ] {
            assert_eq!(
                status(&f, &mut c, &request("REGISTER", url, t)),
                403,
                "{url}"
            );
        }
        assert!(f.ctx.streams.get("x").is_none());
        assert_eq!(
            status(
                &f,
                &mut c,
                &request("REGISTER", "rtsp://192.0.2.10:8554/x", t)
            ),
            200
        );

        let config = Options {
            register_allow: vec![
                RegisterAllow::Network {
                    address: "10.0.0.0".parse().unwrap(),
                    prefix: 8,
                },
                RegisterAllow::Host("cam.example".to_owned()),
            ],
            ..register_config()
        };
        let f = fixture(config, false);
        let mut c = from("192.0.2.10:40000");
        assert_eq!(
            status(
                &f,
                &mut c,
                &request(
                    "REGISTER",
                    "rtsp://192.0.2.10/a",
                    Some("proxy_url_suffix=a")
                )
            ),
            403,
            "peer is not in this list"
        );
        assert_eq!(
            status(
                &f,
                &mut c,
                &request("REGISTER", "rtsp://10.9.8.7/b", Some("proxy_url_suffix=b"))
            ),
            200
        );
        assert_eq!(
            status(
                &f,
                &mut c,
                &request(
                    "REGISTER",
                    "rtsp://CAM.example/c",
                    Some("proxy_url_suffix=c")
                )
            ),
            200
        );
    }

    #[tokio::test]
    async fn reuse_connection_hands_the_connection_over_after_the_200() {
        let f = fixture(register_config(), false);
        let mut c = from("192.0.2.10:40000");
        // Outside the allow-list: still accepted, nobody is dialled (the stream is
        // added by the connection once it is handed over).
        let (r, handover) = exchange(
            &f,
            &mut c,
            &request("REGISTER", "rtsp://10.0.0.5/live", Some("reuse_connection; preferred_delivery_protocol=interleaved; proxy_url_suffix=nat")),
        );
        assert_eq!((r.status, handover), (200, true));
        assert!(f.ctx.streams.get("nat").is_none(), "added once handed over");

        let mut tunnelled = Client::new("127.0.0.1:8554", "192.0.2.10:40001", true);
        let (r, handover) = exchange(
            &f,
            &mut tunnelled,
            &request(
                "REGISTER",
                "rtsp://192.0.2.10/live",
                Some("reuse_connection; proxy_url_suffix=t"),
            ),
        );
        assert_eq!((r.status, handover), (461, false));

        // A connection that carries a session cannot be handed over.
        let mut player = Client::v4();
        let s = player.setup(&f, &format!("{CAM}/track1"), "RTP/AVP/TCP;unicast", None);
        assert_eq!(s.status, 200);
        let (r, handover) = exchange(
            &f,
            &mut player,
            &request(
                "REGISTER",
                "rtsp://127.0.0.1/live",
                Some("reuse_connection; proxy_url_suffix=s"),
            ),
        );
        assert_eq!((r.status, handover), (455, false));
    }

    #[tokio::test]
    async fn at_most_max_registered_streams() {
        let f = fixture(
            Options {
                max_registered: 2,
                ..register_config()
            },
            false,
        );
        let mut c = Client::v4();
        assert_eq!(status(&f, &mut c, &request("REGISTER", BACKEND, None)), 200);
        assert_eq!(status(&f, &mut c, &request("REGISTER", BACKEND, None)), 200);
        assert_eq!(status(&f, &mut c, &request("REGISTER", BACKEND, None)), 453);
        assert!(f.ctx.streams.get("registeredProxyStream-3").is_none());
        assert!(f.ctx.streams.get("cam").is_some(), "others untouched");
        let deregister = request(
            "DEREGISTER",
            BACKEND,
            Some("proxy_url_suffix=registeredProxyStream-1"),
        );
        assert_eq!(status(&f, &mut c, &deregister), 200);
        assert_eq!(status(&f, &mut c, &request("REGISTER", BACKEND, None)), 200);
        assert!(
            f.ctx.streams.get("registeredProxyStream-3").is_some(),
            "the counter is not reused"
        );
    }

    #[tokio::test]
    async fn dash_u_guards_register_and_deregister_with_digest() {
        let f = fixture(register_config(), true);
        let mut c = Client::v4();
        let text = request("REGISTER", BACKEND, Some("proxy_url_suffix=cam9"));
        let (r, _) = exchange(&f, &mut c, &text);
        assert_eq!(r.status, 401);
        let challenge: Vec<&str> = r.headers.get_all("WWW-Authenticate").collect();
        assert!(challenge[0].starts_with("Digest "), "{challenge:?}");
        assert!(f.ctx.streams.get("cam9").is_none());

        let mut wrong = ClientAuth::new(Credentials::new("reg", "nope"));
        assert!(wrong.on_unauthorized(challenge.iter().copied()));
        let mut req = parse_request(&text);
        req.headers.set(
            "Authorization",
            wrong.authorization("REGISTER", BACKEND).unwrap(),
        );
        let _ = handle(&f.ctx, &c.conn, &req, f.t0);
        assert_eq!(c.response().status, 401);

        let mut auth = ClientAuth::new(Credentials::new("reg", "pw"));
        assert!(auth.on_unauthorized(challenge.iter().copied()));
        req.headers.set(
            "Authorization",
            auth.authorization("REGISTER", BACKEND).unwrap(),
        );
        let _ = handle(&f.ctx, &c.conn, &req, f.t0);
        assert_eq!(c.response().status, 200);
        assert!(f.ctx.streams.get("cam9").is_some());

        // DEREGISTER needs it too (live555 lets anyone DEREGISTER)...
        let text = request("DEREGISTER", BACKEND, Some("proxy_url_suffix=cam9"));
        assert_eq!(status(&f, &mut c, &text), 401);
        assert!(f.ctx.streams.get("cam9").is_some());
        // ...and then works from any address.
        let mut elsewhere = from("192.0.2.99:5000");
        let mut req = parse_request(&text);
        req.headers.set(
            "Authorization",
            auth.authorization("DEREGISTER", BACKEND).unwrap(),
        );
        let _ = handle(&f.ctx, &elsewhere.conn, &req, f.t0);
        assert_eq!(elsewhere.response().status, 200);
        assert!(f.ctx.streams.get("cam9").is_none());
    }

    #[tokio::test]
    async fn deregister_closes_the_sessions_and_removes_the_stream() {
        let f = fixture(register_config(), false);
        let mut c = Client::v4();
        let reg = request("REGISTER", BACKEND, Some("proxy_url_suffix=reg1"));
        assert_eq!(status(&f, &mut c, &reg), 200);
        let stream = f.ctx.streams.get("reg1").expect("registered");
        stream.set_presentation(sdp::parse(SDP_2_TRACKS).unwrap());
        let mut player = Client::v4();
        let url = "rtsp://127.0.0.1:8554/reg1";
        let s = player.setup(&f, &format!("{url}/track1"), "RTP/AVP/TCP;unicast", None);
        assert_eq!(s.status, 200);
        let p = player.send(&f, "PLAY", url, &[("Session", &session_id(&s))], f.t0);
        assert_eq!(p.status, 200);
        let mut idle = Client::new("127.0.0.1:8554", "127.0.0.1:50001", false);
        let s = idle.setup(&f, &format!("{url}/track2"), "RTP/AVP/TCP;unicast", None);
        assert_eq!(s.status, 200, "a session that never plays");
        assert_eq!(f.ctx.sessions.len(), 2);

        for bad in [
            request("DEREGISTER", BACKEND, None),
            request(
                "DEREGISTER",
                BACKEND,
                Some("preferred_delivery_protocol=udp"),
            ),
            request("DEREGISTER", BACKEND, Some("proxy_url_suffix=nosuch")),
            request("DEREGISTER", BACKEND, Some("proxy_url_suffix=cam")),
        ] {
            let (r, _) = exchange(&f, &mut c, &bad);
            assert_eq!(
                (r.status, r.reason.as_str()),
                (451, "Invalid parameter"),
                "{bad}"
            );
        }
        assert!(
            f.ctx.streams.get("cam").is_some(),
            "command-line streams stay"
        );
        let dereg = request("DEREGISTER", BACKEND, Some("proxy_url_suffix=reg1"));
        let mut stranger = from("192.0.2.99:5000");
        assert_eq!(
            status(&f, &mut stranger, &dereg),
            403,
            "without -U: only the registering address"
        );
        assert!(f.ctx.streams.get("reg1").is_some());

        assert_eq!(status(&f, &mut c, &dereg), 200);
        assert!(f.ctx.streams.get("reg1").is_none());
        assert_eq!(f.ctx.sessions.len(), 0, "its sessions are closed");
        assert!(player.conn.out.is_closed() && idle.conn.out.is_closed());
        let r = c.send(&f, "DESCRIBE", url, &[], f.t0);
        assert_eq!(r.status, 404);
        assert_eq!(status(&f, &mut c, &dereg), 451, "gone");
        // The name is free again.
        assert_eq!(status(&f, &mut c, &reg), 200);
        let _ = &f.cam;
    }
}

// ---------------------------------------------------------------- multicast

/// A fixture serving multicast from `range`/`len` (ports from 30000, TTL 4).
fn multicast_fixture(range: &str, len: u8) -> Fixture {
    let pair = media_udp::bind_pair(false, 0).expect("local UDP pair");
    let registry = Arc::new(StreamRegistry::new());
    let cam = described("cam", SDP_2_TRACKS);
    assert!(registry.insert(cam.clone()));
    assert!(registry.insert(described("other", SDP_2_TRACKS)));
    let cfg = crate::multicast::MulticastConfig {
        network: range.parse().expect("range"),
        prefix_len: len,
        ttl: 4,
        port: 30000,
    };
    let mc = crate::multicast::Multicast::new(cfg, pair.clone()).expect("multicast");
    let ctx = ServerContext::new(registry, Some(pair), None, TIMEOUT).with_multicast(mc);
    Fixture {
        ctx: Arc::new(ctx),
        cam,
        t0: Instant::now(),
    }
}

#[tokio::test]
async fn multicast_clients_of_a_stream_share_its_groups() {
    let f = multicast_fixture("239.255.42.0", 24);
    let mut a = Client::v4();
    let mut b = Client::new("127.0.0.1:8554", "127.0.0.1:50002", false);
    let ra = a.setup(&f, &format!("{CAM}/track1"), "RTP/AVP;multicast", None);
    assert_eq!(ra.status, 200);
    let ta = transport(&ra);
    assert_eq!(ta.cast, Some(Cast::Multicast));
    assert_eq!(ta.destination.as_deref(), Some("239.255.42.0"));
    assert_eq!(
        ta.port,
        Some(PortRange {
            rtp: 30000,
            rtcp: Some(30001)
        })
    );
    assert_eq!(ta.ttl, Some(4));
    assert_eq!(ta.client_port, None);
    // A client naming its own destination, port and TTL gets ours all the same.
    let rb = b.setup(
        &f,
        &format!("{CAM}/track1"),
        "RTP/AVP;multicast;destination=198.51.100.7;port=4000-4001;ttl=127",
        None,
    );
    assert_eq!(rb.status, 200);
    let tb = transport(&rb);
    assert_eq!(
        (tb.destination, tb.port, tb.ttl),
        (ta.destination.clone(), ta.port, ta.ttl)
    );
    let id_a = session_id(&ra);
    let id_b = session_id(&rb);
    let ra2 = a.setup(
        &f,
        &format!("{CAM}/track2"),
        "RTP/AVP;multicast",
        Some(&id_a),
    );
    assert_eq!(
        transport(&ra2).port,
        Some(PortRange {
            rtp: 30002,
            rtcp: Some(30003)
        })
    );
    assert_eq!(transport(&ra2).destination, ta.destination);
    // Another stream gets another address.
    let mut c = Client::v4();
    let rc = c.setup(
        &f,
        "rtsp://127.0.0.1:8554/other/track1",
        "RTP/AVP;multicast",
        None,
    );
    assert_eq!(transport(&rc).destination.as_deref(), Some("239.255.42.1"));

    // Both play: each counts in the back end's demand; RTP-Info per track.
    let pa = a.send(&f, "PLAY", CAM, &[("Session", &id_a)], f.t0);
    assert_eq!(pa.status, 200);
    assert_eq!(
        rtp_info::parse_list(pa.header("RTP-Info").unwrap()).len(),
        2
    );
    assert_eq!(
        b.send(&f, "PLAY", CAM, &[("Session", &id_b)], f.t0).status,
        200
    );
    assert_eq!(
        f.cam.players(),
        2,
        "multicast clients are the demand, not the group"
    );
    // Pause one, tear the other down: nobody plays.
    assert_eq!(
        a.send(&f, "PAUSE", CAM, &[("Session", &id_a)], f.t0).status,
        200
    );
    assert_eq!(f.cam.players(), 1);
    assert_eq!(
        b.send(&f, "TEARDOWN", CAM, &[("Session", &id_b)], f.t0)
            .status,
        200
    );
    assert_eq!(f.cam.players(), 0);
    // Resume: the group starts again.
    assert_eq!(
        a.send(&f, "PLAY", CAM, &[("Session", &id_a)], f.t0).status,
        200
    );
    assert_eq!(f.cam.players(), 1);
    f.ctx.expire_sessions(f.t0 + Duration::from_secs(66));
    assert_eq!(f.cam.players(), 0);
    assert!(f.ctx.sessions.is_empty());
}

#[tokio::test]
async fn multicast_refusals() {
    let f = multicast_fixture("239.255.42.9", 32);
    let mut a = Client::v4();
    // Multicast is UDP only, and never over a tunnel.
    let r = a.setup(
        &f,
        &format!("{CAM}/track1"),
        "RTP/AVP/TCP;multicast;interleaved=0-1",
        None,
    );
    assert_eq!(r.status, 461);
    let mut t = Client::new("127.0.0.1:8554", "127.0.0.1:50004", true);
    let r = t.setup(&f, &format!("{CAM}/track1"), "RTP/AVP;multicast", None);
    assert_eq!(r.status, 461);
    // One session is all multicast or all unicast.
    let r = a.setup(&f, &format!("{CAM}/track1"), "RTP/AVP;multicast", None);
    assert_eq!(r.status, 200);
    let id = session_id(&r);
    let r = a.setup(
        &f,
        &format!("{CAM}/track2"),
        "RTP/AVP;unicast;client_port=5000-5001",
        Some(&id),
    );
    assert_eq!(r.status, 461);
    let mut u = Client::v4();
    let r = u.setup(
        &f,
        &format!("{CAM}/track1"),
        "RTP/AVP;unicast;client_port=5000-5001",
        None,
    );
    let uid = session_id(&r);
    let r = u.setup(
        &f,
        &format!("{CAM}/track2"),
        "RTP/AVP;multicast",
        Some(&uid),
    );
    assert_eq!(r.status, 461);
    // The range holds one address: a second stream is refused with 453...
    let mut c = Client::v4();
    let r = c.setup(
        &f,
        "rtsp://127.0.0.1:8554/other/track1",
        "RTP/AVP;multicast",
        None,
    );
    assert_eq!(r.status, 453);
    // ...until the first stream's last multicast client is gone.
    assert_eq!(
        a.send(&f, "TEARDOWN", CAM, &[("Session", &id)], f.t0)
            .status,
        200
    );
    let r = c.setup(
        &f,
        "rtsp://127.0.0.1:8554/other/track1",
        "RTP/AVP;multicast",
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(transport(&r).destination.as_deref(), Some("239.255.42.9"));
}

#[tokio::test]
async fn receiver_reports_on_the_group_keep_multicast_sessions_alive() {
    let f = multicast_fixture("239.255.42.0", 24);
    let mut a = Client::v4();
    let mut b = Client::new("127.0.0.1:8554", "192.0.2.9:50000", false);
    let ida = session_id(&a.setup(&f, &format!("{CAM}/track1"), "RTP/AVP;multicast", None));
    let idb = session_id(&b.setup(&f, &format!("{CAM}/track1"), "RTP/AVP;multicast", None));
    let mc = f.ctx.multicast.clone().expect("multicast");
    // A report from 127.0.0.1 on the group: only that client's session lives on.
    mc.touch(
        "cam",
        "127.0.0.1".parse().unwrap(),
        f.t0 + Duration::from_secs(30),
    );
    mc.touch(
        "other",
        "192.0.2.9".parse().unwrap(),
        f.t0 + Duration::from_secs(30),
    );
    f.ctx.expire_sessions(f.t0 + Duration::from_secs(66));
    assert!(f.ctx.sessions.get(&ida).is_some());
    assert!(f.ctx.sessions.get(&idb).is_none(), "no report of its own");
    f.ctx.expire_sessions(f.t0 + Duration::from_secs(96));
    assert!(f.ctx.sessions.is_empty());
}

#[test]
fn a_session_answers_only_the_address_that_created_it() {
    let f = fixture();
    let mut owner = Client::v4();
    let s = owner.setup(
        &f,
        &format!("{CAM}/track1"),
        "RTP/AVP/TCP;unicast;interleaved=0-1",
        None,
    );
    assert_eq!(s.status, 200);
    let id = session_id(&s);
    // Same address, another connection: fine (a player may reconnect).
    let mut again = Client::new("127.0.0.1:8554", "127.0.0.1:50009", false);
    assert_eq!(
        again
            .send(&f, "GET_PARAMETER", CAM, &[("Session", &id)], f.t0)
            .status,
        200
    );
    // Another address cannot PLAY, PAUSE, TEARDOWN or SETUP into it.
    let mut stranger = Client::new("127.0.0.1:8554", "192.0.2.66:40000", false);
    for method in ["PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER"] {
        let r = stranger.send(&f, method, CAM, &[("Session", &id)], f.t0);
        assert_eq!(r.status, 454, "{method}");
    }
    let r = stranger.setup(
        &f,
        &format!("{CAM}/track2"),
        "RTP/AVP/TCP;unicast;interleaved=2-3",
        Some(&id),
    );
    assert_eq!(r.status, 454);
    assert!(
        f.ctx.sessions.get(&id).is_some(),
        "the owner's session is intact"
    );

    // With --sessions-from-any-address it may.
    let registry = f.ctx.streams.clone();
    let mut ctx = ServerContext::new(registry, None, None, TIMEOUT);
    ctx.sessions_from_any_address = true;
    let g = Fixture {
        ctx: Arc::new(ctx),
        cam: f.cam.clone(),
        t0: f.t0,
    };
    let mut owner = Client::v4();
    let s = owner.setup(
        &g,
        &format!("{CAM}/track1"),
        "RTP/AVP/TCP;unicast;interleaved=0-1",
        None,
    );
    let id = session_id(&s);
    let mut roaming = Client::new("127.0.0.1:8554", "192.0.2.66:40000", false);
    assert_eq!(
        roaming
            .send(&g, "GET_PARAMETER", CAM, &[("Session", &id)], g.t0)
            .status,
        200
    );
}

#[test]
fn one_connection_cannot_fill_the_session_table() {
    let f = fixture();
    let mut c = Client::v4();
    let mut refused = 0;
    for _ in 0..(crate::client_sessions::DEFAULT_SESSIONS_PER_CONNECTION + 10) {
        let r = c.setup(&f, &format!("{CAM}/track1"), "RTP/AVP/TCP;unicast", None);
        if r.status == 453 {
            refused += 1;
        }
    }
    assert_eq!(refused, 10);
    assert_eq!(
        f.ctx.sessions.len(),
        crate::client_sessions::DEFAULT_SESSIONS_PER_CONNECTION
    );
    // Another connection of the same address still gets one.
    let mut other = Client::new("127.0.0.1:8554", "127.0.0.1:50010", false);
    assert_eq!(
        other
            .setup(&f, &format!("{CAM}/track1"), "RTP/AVP/TCP;unicast", None)
            .status,
        200
    );
}
