//! Every request and response recorded from live555 and GStreamer parses,
//! field by field, whole, byte by byte, pipelined, mixed with interleaved
//! media, and re-encodes to an equal message.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use rtsp::header::{rtp_info, Range, SessionHeader, Transport};
use rtsp::{parse_frame, Frame, Limits, Method, Version};

fn parse_one(bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let frame = parse_frame(&mut buf, &Limits::default())
        .unwrap_or_else(|e| panic!("parse error {e:?} for {:?}", String::from_utf8_lossy(bytes)))
        .unwrap_or_else(|| panic!("incomplete: {:?}", String::from_utf8_lossy(bytes)));
    assert!(buf.is_empty(), "left over {:?}", buf);
    frame
}

fn reencode(frame: &Frame) -> Bytes {
    match frame {
        Frame::Request(r) => r.to_bytes(),
        Frame::Response(r) => r.to_bytes(),
        Frame::Interleaved { .. } => unreachable!(),
    }
}

#[test]
fn capture_files_are_read_correctly() {
    assert_eq!(messages(GST_TCP).len(), 10);
    assert_eq!(messages(GST_UDP).len(), 14);
    assert_eq!(messages(LIVE555_FRONTEND).len(), 14);
    for (name, file) in CAPTURES {
        for m in messages(file) {
            // Declared lengths match the captured bodies.
            let declared: usize = m.header("Content-Length").map_or(0, |v| v.parse().unwrap());
            assert_eq!(declared, m.body.len(), "{name}: {:?}", m.head[0]);
        }
    }
}

#[test]
fn every_captured_message_parses_with_crlf_and_bare_lf() {
    for (name, file) in CAPTURES {
        for m in messages(file) {
            for eol in [Eol::Crlf, Eol::Lf] {
                let frame = parse_one(&m.bytes(eol));
                let (headers, body) = match (&frame, m.dir) {
                    (Frame::Request(r), Dir::Request) => {
                        assert_eq!(r.version, Version::Rtsp10);
                        let (method, uri) = m.head[0].split_once(' ').unwrap();
                        assert_eq!(r.method.as_str(), method);
                        assert_eq!(format!("{} RTSP/1.0", r.uri), uri);
                        (&r.headers, &r.body)
                    }
                    (Frame::Response(r), Dir::Response) => {
                        assert_eq!(r.version, Version::Rtsp10);
                        assert_eq!((r.status, r.reason.as_str()), (200, "OK"));
                        assert!(r.is_success());
                        (&r.headers, &r.body)
                    }
                    other => panic!("{name}: wrong kind {other:?}"),
                };
                assert_eq!(headers.len(), m.head.len() - 1, "{name}");
                for line in &m.head[1..] {
                    let (n, v) = line.split_once(':').unwrap();
                    assert_eq!(headers.get(n), Some(v.trim()), "{name}: {line}");
                }
                assert_eq!(&body[..], &m.body[..]);
                assert!(headers.get("CSeq").is_some());

                // Re-encoding gives CRLF bytes that parse to the same value.
                let again = parse_one(&reencode(&frame));
                assert_eq!(again, frame, "{name}: re-encode");
                if eol == Eol::Crlf {
                    assert_eq!(
                        &reencode(&frame)[..],
                        &m.bytes(Eol::Crlf)[..],
                        "{name}: exact bytes"
                    );
                }
            }
        }
    }
}

#[test]
fn cseq_sequence_matches_requests_and_responses() {
    for (name, file) in CAPTURES {
        let frames: Vec<Frame> = messages(file)
            .iter()
            .map(|m| parse_one(&m.bytes(Eol::Crlf)))
            .collect();
        for pair in frames.chunks(2) {
            let [Frame::Request(req), Frame::Response(resp)] = pair else {
                panic!("{name}: not request/response pairs")
            };
            assert_eq!(req.cseq(), resp.cseq(), "{name}");
        }
        let methods: Vec<Method> = frames
            .iter()
            .filter_map(|f| match f {
                Frame::Request(r) => Some(r.method.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(methods[0], Method::Options);
        assert_eq!(methods[1], Method::Describe);
        assert!(methods.contains(&Method::Setup));
        assert!(methods.contains(&Method::Play));
    }
}

#[test]
fn describe_bodies() {
    let gst = messages(GST_TCP);
    let Frame::Response(resp) = parse_one(&gst[3].bytes(Eol::Crlf)) else {
        panic!()
    };
    assert_eq!(resp.header("Content-Type"), Some("application/sdp"));
    assert_eq!(
        resp.header("Content-Base"),
        Some("rtsp://127.0.0.1:31554/h264aac/")
    );
    assert_eq!(resp.body.len(), 844);
    assert!(resp.body.starts_with(b"v=0\r\n"));
    assert!(resp
        .body
        .ends_with(b"a=ssrc:3698642221 cname:user2166734468@host-5ebcdfb5\r\n"));

    let live = messages(LIVE555_FRONTEND);
    let Frame::Response(resp) = parse_one(&live[3].bytes(Eol::Lf)) else {
        panic!()
    };
    assert_eq!(resp.body.len(), 769);
    assert!(resp.body.ends_with(b"a=control:track2\r\n"));
    // GET_PARAMETER answered with a body and no trailing line end.
    let Frame::Response(resp) = parse_one(&live[11].bytes(Eol::Crlf)) else {
        panic!()
    };
    assert_eq!(&resp.body[..], b"2026.06.24");
}

#[test]
fn captured_transport_headers_round_trip() {
    let mut seen = 0;
    for (name, file) in CAPTURES {
        for m in messages(file) {
            if let Some(value) = m.header("Transport") {
                let t = Transport::parse(value).unwrap_or_else(|e| panic!("{name}: {value}: {e}"));
                assert_eq!(t.to_string(), value, "{name}");
                assert_eq!(Transport::parse_list(value).unwrap(), vec![t]);
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 12);

    let t = Transport::parse(r#"RTP/AVP/TCP;unicast;interleaved=2-3;ssrc=DC74CD2D;mode="PLAY""#)
        .unwrap();
    assert!(t.is_tcp());
    assert_eq!(t.interleaved.unwrap().rtp, 2);
    assert_eq!(t.ssrc, Some(0xDC74_CD2D));
    let t = Transport::parse(
        "RTP/AVP;unicast;destination=127.0.0.1;source=127.0.0.1;client_port=40002-40003;server_port=6972-6973",
    )
    .unwrap();
    assert_eq!(t.server_port.unwrap().rtcp, Some(6973));
}

#[test]
fn captured_session_headers() {
    let mut ids = Vec::new();
    for (_, file) in CAPTURES {
        for m in messages(file) {
            if let Some(v) = m.header("Session") {
                let s = SessionHeader::parse(v).unwrap();
                assert_eq!(s.to_string(), v);
                ids.push(s);
            }
        }
    }
    assert!(ids.contains(&SessionHeader {
        id: "2CF5DE32".into(),
        timeout: Some(65)
    }));
    assert!(ids.contains(&SessionHeader {
        id: "2CF5DE32".into(),
        timeout: None
    }));
    assert!(ids.contains(&SessionHeader {
        id: "eOPsLOC-c2f+SZ8M".into(),
        timeout: None
    }));
    let s = SessionHeader::parse("AXp85JhymTWnIsLS; timeout = 60").unwrap();
    assert_eq!((s.id.as_str(), s.timeout), ("AXp85JhymTWnIsLS", Some(60)));
}

#[test]
fn captured_rtp_info_and_range() {
    let mut seen = 0;
    for (name, file) in CAPTURES {
        for m in messages(file) {
            if let Some(v) = m.header("RTP-Info") {
                let infos = rtp_info::parse_list(v);
                assert_eq!(infos.len(), 2, "{name}");
                assert!(infos[0].url.ends_with("stream=0") || infos[0].url.ends_with("track1"));
                assert!(infos.iter().all(|i| i.seq.is_some() && i.rtptime.is_some()));
                // Same entries after formatting (the separator may differ).
                assert_eq!(rtp_info::parse_list(&rtp_info::format_list(&infos)), infos);
                seen += 1;
            }
            if let Some(v) = m.header("Range") {
                let r = Range::parse(v).unwrap();
                assert_eq!(r.to_string(), v);
            }
        }
    }
    assert_eq!(seen, 3);
    let live = messages(LIVE555_FRONTEND);
    let infos = rtp_info::parse_list(live[9].header("RTP-Info").unwrap());
    assert_eq!(infos[1].url, "rtsp://127.0.0.1:31555/proxyStream/track2");
    assert_eq!(infos[1].seq, Some(12560));
    assert_eq!(infos[1].rtptime, Some(3_937_445_394));
}

#[test]
fn public_headers() {
    let gst = messages(GST_UDP);
    let public = gst[1].header("Public").unwrap();
    assert!(rtsp::header::public::supports(public, "GET_PARAMETER"));
    assert!(rtsp::header::public::supports(public, "record"));
    let live = messages(LIVE555_FRONTEND);
    let public = live[1].header("Public").unwrap();
    assert_eq!(rtsp::header::public::parse_methods(public).len(), 8);
    assert!(!rtsp::header::public::supports(public, "RECORD"));
}

/// All messages of a file, one after the other, as a peer would send them.
fn stream_of(file: &str, eol: Eol) -> Vec<u8> {
    messages(file).iter().flat_map(|m| m.bytes(eol)).collect()
}

#[test]
fn pipelined_in_one_buffer() {
    for (name, file) in CAPTURES {
        for eol in [Eol::Crlf, Eol::Lf] {
            let expected: Vec<Frame> = messages(file)
                .iter()
                .map(|m| parse_one(&m.bytes(eol)))
                .collect();
            let (frames, rest) = parse_all(&stream_of(file, eol), &Limits::default());
            let frames: Vec<Frame> = frames.into_iter().map(Result::unwrap).collect();
            assert_eq!(frames, expected, "{name}");
            assert!(rest.is_empty());
        }
    }
}

#[test]
fn byte_by_byte_feeding() {
    for (name, file) in CAPTURES {
        for eol in [Eol::Crlf, Eol::Lf] {
            let stream = stream_of(file, eol);
            let (whole, _) = parse_all(&stream, &Limits::default());
            let mut buf = BytesMut::new();
            let mut frames = Vec::new();
            for &b in &stream {
                buf.extend_from_slice(&[b]);
                while let Some(f) = parse_frame(&mut buf, &Limits::default()).unwrap() {
                    frames.push(Ok(f));
                }
            }
            assert_eq!(frames, whole, "{name}");
            assert!(buf.is_empty());
        }
    }
}

#[test]
fn every_proper_prefix_needs_more() {
    for (name, file) in CAPTURES {
        for m in messages(file) {
            let bytes = m.bytes(Eol::Crlf);
            for cut in 0..bytes.len() {
                let mut buf = BytesMut::from(&bytes[..cut]);
                assert_eq!(
                    parse_frame(&mut buf, &Limits::default()),
                    Ok(None),
                    "{name}: prefix of {cut} bytes"
                );
            }
        }
    }
}

#[test]
fn interleaved_media_mixed_with_responses() {
    let msgs = messages(GST_TCP);
    let captured = interleaved_hex(GST_TCP);
    assert_eq!(captured.len(), 16);
    assert_eq!(&captured[..4], &rtsp::interleaved::header(2, 0x017f));
    let len = usize::from(u16::from_be_bytes([captured[2], captured[3]]));
    // The capture has the first 16 bytes; complete the payload.
    let mut frame = captured.clone();
    frame.resize(4 + len, 0xAB);

    let play_response = msgs[9].bytes(Eol::Crlf);
    let mut stream = play_response.clone();
    stream.extend_from_slice(&frame);
    stream.extend_from_slice(&frame);
    stream.extend_from_slice(b"RTSP/1.0 200 OK\r\nCSeq: 6\r\n\r\n");
    stream.extend_from_slice(&captured); // truncated frame at the end

    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in stream.chunks(7) {
        buf.extend_from_slice(chunk);
        while let Some(f) = parse_frame(&mut buf, &Limits::default()).unwrap() {
            frames.push(f);
        }
    }
    assert_eq!(frames.len(), 4);
    assert!(matches!(&frames[0], Frame::Response(r) if r.cseq() == Some(5)));
    for f in &frames[1..3] {
        let Frame::Interleaved { channel, payload } = f else {
            panic!("{f:?}")
        };
        assert_eq!(*channel, 2);
        assert_eq!(payload.len(), 0x017f);
        // RTP version 2, SSRC of the audio track (DC74CD2D in SETUP).
        assert_eq!(payload[0] >> 6, 2);
        assert_eq!(&payload[8..12], &[0xdc, 0x74, 0xcd, 0x2d]);
    }
    assert!(matches!(&frames[3], Frame::Response(r) if r.cseq() == Some(6)));
    // The truncated frame waits for the rest.
    assert_eq!(&buf[..], &captured[..]);
}

#[test]
fn live555_backend_log_messages_parse() {
    // In the -V log each message follows a marker and the next log line
    // comes right after it, so the parser must stop exactly at its end.
    let log = LIVE555_BACKEND_LOG;
    let mut requests = 0;
    let mut responses = 0;
    let mut pos = 0;
    while pos < log.len() {
        let rest = &log[pos..];
        let next_req = rest
            .find("Sending request: ")
            .map(|i| (i, i + "Sending request: ".len()));
        let next_resp = rest
            .find("Received a complete ")
            .map(|i| (i, i + rest[i..].find('\n').unwrap() + 1));
        let (start, is_req) = match (next_req, next_resp) {
            (Some(a), Some(b)) if a.0 < b.0 => (a.1, true),
            (Some(a), None) => (a.1, true),
            (_, Some(b)) => (b.1, false),
            (None, None) => break,
        };
        let mut buf = BytesMut::from(&log.as_bytes()[pos + start..]);
        let before = buf.len();
        let frame = parse_frame(&mut buf, &Limits::default()).unwrap().unwrap();
        match frame {
            Frame::Request(r) => {
                assert!(is_req);
                assert_eq!(
                    r.header("User-Agent"),
                    Some("ProxyRTSPClient (LIVE555 Streaming Media v2026.06.24)")
                );
                requests += 1;
            }
            Frame::Response(r) => {
                assert!(!is_req);
                assert!(r.is_success());
                if r.cseq() == Some(2) {
                    assert_eq!(r.body.len(), 834);
                }
                responses += 1;
            }
            Frame::Interleaved { .. } => panic!("interleaved in log"),
        }
        assert!(buf.starts_with(b"\n"), "message end mis-detected");
        pos += start + (before - buf.len());
    }
    assert_eq!((requests, responses), (4, 4));
}
