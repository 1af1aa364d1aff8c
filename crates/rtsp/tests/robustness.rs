//! Hostile input never panics, never loops, and whatever parses re-encodes
//! to an equal message. Deterministic pseudo-random inputs: random bytes,
//! RTSP-flavoured token soup, mutations and truncations of real captures.

mod common;

use bytes::BytesMut;
use common::*;
use rtsp::header::{public, range::Range, rtp_info, session::SessionHeader, transport::Transport};
use rtsp::{auth, parse_frame, tunnel, url, Frame, Headers, Limits, Request, Response};

const VOCAB: &[&str] = &[
    "OPTIONS",
    "DESCRIBE",
    "SETUP",
    "PLAY",
    "GET",
    "POST",
    " ",
    "  ",
    "\t",
    "\r\n",
    "\n",
    "\r",
    "\r\n\r\n",
    "\n\n",
    ":",
    ": ",
    "CSeq",
    "Content-Length",
    "Content-Type",
    "application/x-rtsp-tunnelled",
    "x-sessioncookie",
    "Transport",
    "RTSP/1.0",
    "RTSP/",
    "HTTP/1.1",
    "HTTP/1.0",
    "RTSP/1.0 200 OK",
    "rtsp://h/s",
    "*",
    "$",
    "\0",
    "\u{7f}",
    "\u{ff}",
    "0",
    "1",
    "5",
    "65535",
    "99999999999999999999",
    "-",
    "+",
    "\"",
    ";",
    ",",
    "=",
    "é",
];

/// Limits for re-parsing an encoded message: encoding may grow the head
/// (invalid UTF-8 becomes 3-byte U+FFFD, `Name:v` gains a space).
fn relaxed(limits: &Limits) -> Limits {
    Limits {
        max_start_line: limits.max_start_line * 4 + 64,
        max_headers: limits.max_headers * 2,
        max_head_bytes: limits.max_head_bytes * 4 + 64,
        max_body: limits.max_body,
    }
}

fn without_length(h: &Headers) -> Vec<(String, String)> {
    h.iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("Content-Length"))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

fn same_request(a: &Request, b: &Request) -> bool {
    a.method == b.method
        && a.uri == b.uri
        && a.version == b.version
        && a.body == b.body
        && without_length(&a.headers) == without_length(&b.headers)
}

fn same_response(a: &Response, b: &Response) -> bool {
    a.version == b.version
        && a.status == b.status
        && a.reason == b.reason
        && a.body == b.body
        && without_length(&a.headers) == without_length(&b.headers)
}

/// Parses everything, checking progress and the re-encode property.
/// Returns the number of messages that parsed.
fn check(input: &[u8], limits: &Limits) -> usize {
    let mut parsed = 0;
    let mut buf = BytesMut::from(input);
    for _ in 0..=input.len() {
        let before = buf.len();
        match parse_frame(&mut buf, limits) {
            Ok(Some(frame)) => {
                assert!(buf.len() < before);
                let bytes = match &frame {
                    Frame::Request(r) => r.to_bytes(),
                    Frame::Response(r) => r.to_bytes(),
                    Frame::Interleaved { payload, .. } => {
                        assert!(payload.len() <= rtsp::interleaved::MAX_PAYLOAD);
                        continue;
                    }
                };
                let mut again = BytesMut::from(&bytes[..]);
                let reparsed = parse_frame(&mut again, &relaxed(limits))
                    .unwrap_or_else(|e| panic!("re-parse failed {e:?}: {bytes:?}"))
                    .unwrap_or_else(|| panic!("re-parse incomplete: {bytes:?}"));
                assert!(again.is_empty(), "re-parse left {again:?}");
                parsed += 1;
                match (&frame, &reparsed) {
                    (Frame::Request(a), Frame::Request(b)) => {
                        assert!(same_request(a, b), "{a:?} vs {b:?}")
                    }
                    (Frame::Response(a), Frame::Response(b)) => {
                        assert!(same_response(a, b), "{a:?} vs {b:?}")
                    }
                    _ => panic!("kind changed: {frame:?} vs {reparsed:?}"),
                }
            }
            Ok(None) => return parsed,
            Err(e) => {
                assert!(matches!(e.status(), 400 | 413 | 414));
                if !e.recoverable {
                    assert!(buf.is_empty());
                    return parsed;
                }
                assert!(buf.len() < before);
            }
        }
    }
    panic!("parser did not terminate");
}

fn small_limits() -> Limits {
    Limits {
        max_start_line: 40,
        max_headers: 4,
        max_head_bytes: 120,
        max_body: 16,
    }
}

fn random_bytes(rng: &mut Rng, max: usize) -> Vec<u8> {
    let len = rng.below(max);
    (0..len).map(|_| rng.next() as u8).collect()
}

fn token_soup(rng: &mut Rng, max_tokens: usize) -> Vec<u8> {
    let n = rng.below(max_tokens);
    let mut out = Vec::new();
    for _ in 0..n {
        out.extend_from_slice(VOCAB[rng.below(VOCAB.len())].as_bytes());
    }
    out
}

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        let pos = rng.below(v.len() + 1);
        match rng.below(4) {
            0 if pos < v.len() => v[pos] = rng.next() as u8,
            1 => v.insert(pos, VOCAB[rng.below(VOCAB.len())].as_bytes()[0]),
            2 if pos < v.len() => {
                v.remove(pos);
            }
            _ => {
                let tok = VOCAB[rng.below(VOCAB.len())].as_bytes();
                v.splice(pos..pos, tok.iter().copied());
            }
        }
    }
    v
}

fn all_capture_messages() -> Vec<Vec<u8>> {
    CAPTURES
        .iter()
        .flat_map(|(_, f)| messages(f))
        .flat_map(|m| [m.bytes(Eol::Crlf), m.bytes(Eol::Lf)])
        .collect()
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3000 {
        let input = random_bytes(&mut rng, 400);
        check(&input, &Limits::default());
        check(&input, &small_limits());
    }
}

#[test]
fn token_soup_never_panics_and_round_trips() {
    let mut rng = Rng(42);
    let mut parsed = 0;
    for _ in 0..6000 {
        let input = token_soup(&mut rng, 60);
        parsed += check(&input, &Limits::default());
        check(&input, &small_limits());
    }
    assert!(parsed > 50, "only {parsed} messages parsed");
}

#[test]
fn mutated_captures_never_panic_and_round_trip() {
    let msgs = all_capture_messages();
    let mut rng = Rng(7);
    let mut parsed = 0;
    for _ in 0..4000 {
        let base = &msgs[rng.below(msgs.len())];
        let input = mutate(&mut rng, base);
        parsed += check(&input, &Limits::default());
        check(&input, &small_limits());
    }
    assert!(parsed > 1000, "only {parsed} messages parsed");
}

#[test]
fn truncated_and_chunked_captures() {
    let msgs = all_capture_messages();
    let mut rng = Rng(1234);
    for m in &msgs {
        for cut in (0..m.len()).step_by(3) {
            check(&m[..cut], &Limits::default());
            check(&m[..cut], &small_limits());
        }
        // Random chunking gives the same frames as the whole buffer.
        let mut stream = m.clone();
        stream.extend_from_slice(m);
        let (whole, _) = parse_all(&stream, &Limits::default());
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        let mut pos = 0;
        while pos < stream.len() {
            let n = 1 + rng.below(50);
            let end = (pos + n).min(stream.len());
            buf.extend_from_slice(&stream[pos..end]);
            pos = end;
            while let Some(f) = parse_frame(&mut buf, &Limits::default()).unwrap() {
                frames.push(Ok(f));
            }
        }
        assert_eq!(frames, whole);
    }
}

#[test]
fn header_parsers_never_panic() {
    let mut rng = Rng(99);
    let transports = [
        r#"RTP/AVP;unicast;client_port=40000-40001;server_port=49464-49465;ssrc=C6841965;mode="PLAY""#,
        "RTP/AVP/TCP;unicast;interleaved=0-1",
        "RTP/AVP;multicast;destination=232.1.1.1;port=5000-5001;ttl=16",
    ];
    for _ in 0..5000 {
        let soup = String::from_utf8_lossy(&token_soup(&mut rng, 20)).into_owned();
        let base = transports[rng.below(transports.len())];
        let mutated = String::from_utf8_lossy(&mutate(&mut rng, base.as_bytes())).into_owned();
        for s in [&soup, &mutated] {
            if let Ok(t) = Transport::parse(s) {
                let _ = t.to_string();
            }
            let _ = Transport::parse_list(s);
            if let Ok(sh) = SessionHeader::parse(s) {
                assert_eq!(SessionHeader::parse(&sh.to_string()).unwrap(), sh);
            }
            if let Ok(r) = Range::parse(s) {
                let _ = r.to_string();
            }
            let infos = rtp_info::parse_list(s);
            let _ = rtp_info::format_list(&infos);
            let _ = public::parse_methods(s);
            let _ = public::supports(s, "PLAY");
            let _ = auth::parse_challenges(s);
            if let Some(a) = auth::parse_digest_authorization(s) {
                let _ = auth::verify_digest(&a, "PLAY", "x");
            }
            let mut client = auth::ClientAuth::new(auth::Credentials::new("u", "p"));
            if client.on_unauthorized([s.as_str()]) {
                assert!(client.authorization("PLAY", "rtsp://h/").is_some());
            }
            if let Ok(u) = url::RtspUrl::parse(s) {
                assert_eq!(
                    url::RtspUrl::parse(&u.to_string()).map(|v| v.host),
                    Ok(u.host.clone())
                );
            }
            let _ = url::redact(s);
            let _ = url::resolve_control(s, s);
        }
    }
}

#[test]
fn base64_decoder_on_garbage() {
    let mut rng = Rng(5);
    for _ in 0..3000 {
        let input = random_bytes(&mut rng, 64);
        let mut d = tunnel::Base64Decoder::new();
        let mut out = BytesMut::new();
        for chunk in input.chunks(1 + rng.below(5)) {
            if d.push(chunk, &mut out).is_err() {
                break;
            }
            assert!(d.pending() <= 3);
        }
        assert!(out.len() <= input.len());
    }
}
