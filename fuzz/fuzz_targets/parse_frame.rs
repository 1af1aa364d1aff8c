//! Feeds arbitrary bytes to `rtsp::parse_frame`, whole and in chunks, with
//! the default and with tiny limits. Checks that the parser always makes
//! progress, and that every parsed message re-encodes to bytes that parse
//! back to the same message (Content-Length aside, which encoding rewrites).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rtsp::{parse_frame, Frame, Headers, Limits};

fn without_length(h: &Headers) -> Vec<(String, String)> {
    h.iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("Content-Length"))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// Limits for re-parsing an encoded message: encoding may grow the head
/// (invalid UTF-8 becomes 3-byte U+FFFD, `Name:v` gains a space).
fn relaxed(l: &Limits) -> Limits {
    Limits {
        max_start_line: l.max_start_line * 4 + 64,
        max_headers: l.max_headers * 2,
        max_head_bytes: l.max_head_bytes * 4 + 64,
        max_body: l.max_body,
    }
}

fn check_round_trip(frame: &Frame, limits: &Limits) {
    let bytes = match frame {
        Frame::Request(r) => r.to_bytes(),
        Frame::Response(r) => r.to_bytes(),
        Frame::Interleaved { payload, .. } => {
            assert!(payload.len() <= rtsp::interleaved::MAX_PAYLOAD);
            return;
        }
    };
    let mut buf = BytesMut::from(&bytes[..]);
    let again = match parse_frame(&mut buf, &relaxed(limits)) {
        Ok(Some(f)) => f,
        other => panic!("re-encoded message did not parse: {other:?}"),
    };
    assert!(buf.is_empty(), "re-encoded message left bytes");
    match (frame, &again) {
        (Frame::Request(a), Frame::Request(b)) => {
            assert_eq!(a.method, b.method);
            assert_eq!(a.uri, b.uri);
            assert_eq!(a.version, b.version);
            assert_eq!(a.body, b.body);
            assert_eq!(without_length(&a.headers), without_length(&b.headers));
        }
        (Frame::Response(a), Frame::Response(b)) => {
            assert_eq!(a.version, b.version);
            assert_eq!(a.status, b.status);
            assert_eq!(a.reason, b.reason);
            assert_eq!(a.body, b.body);
            assert_eq!(without_length(&a.headers), without_length(&b.headers));
        }
        _ => panic!("message kind changed on re-parse"),
    }
}

fn run(data: &[u8], limits: &Limits, chunk: usize) {
    let mut buf = BytesMut::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match parse_frame(&mut buf, limits) {
                Ok(Some(frame)) => {
                    assert!(buf.len() < before, "frame without progress");
                    check_round_trip(&frame, limits);
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = e.status();
                    if !e.recoverable {
                        assert!(buf.is_empty());
                        return;
                    }
                    assert!(buf.len() < before, "recoverable error without progress");
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let small = Limits {
        max_start_line: 64,
        max_headers: 4,
        max_head_bytes: 256,
        max_body: 64,
    };
    // The first byte picks a chunk size, so incremental paths are covered.
    let chunk = data.first().map_or(1, |&b| usize::from(b % 17) + 1);
    run(data, &Limits::default(), data.len());
    run(data, &Limits::default(), chunk);
    run(data, &small, chunk);
});
