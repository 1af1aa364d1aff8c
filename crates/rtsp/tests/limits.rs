//! Every parser limit: the error kind, the status to answer with, the CSeq,
//! and whether the connection can go on.

mod common;

use bytes::BytesMut;
use common::parse_all;
use rtsp::{parse_frame, Frame, Limits, ParseError, ParseErrorKind};

const NEXT: &[u8] = b"OPTIONS * RTSP/1.0\r\nCSeq: 99\r\n\r\n";

fn first_error(input: &[u8], limits: &Limits) -> (ParseError, BytesMut) {
    let mut buf = BytesMut::from(input);
    match parse_frame(&mut buf, limits) {
        Err(e) => (e, buf),
        other => panic!("expected an error, got {other:?}"),
    }
}

fn assert_next_parses(rest: BytesMut) {
    let (frames, left) = parse_all(&rest, &Limits::default());
    assert_eq!(frames.len(), 1);
    assert!(matches!(&frames[0], Ok(Frame::Request(r)) if r.cseq() == Some(99)));
    assert!(left.is_empty());
}

#[test]
fn defaults() {
    let l = Limits::default();
    assert_eq!(
        (
            l.max_start_line,
            l.max_headers,
            l.max_head_bytes,
            l.max_body
        ),
        (4096, 64, 16 * 1024, 64 * 1024)
    );
}

#[test]
fn start_line_too_long_with_complete_head_is_recoverable() {
    let mut input = format!(
        "DESCRIBE rtsp://h/{} RTSP/1.0\r\nCSeq: 3\r\n\r\n",
        "a".repeat(5000)
    )
    .into_bytes();
    input.extend_from_slice(NEXT);
    let (e, rest) = first_error(&input, &Limits::default());
    assert_eq!(e.kind, ParseErrorKind::StartLineTooLong);
    assert_eq!(e.status(), 414);
    assert_eq!(e.cseq, Some(3));
    assert!(e.recoverable);
    assert_next_parses(rest);
}

#[test]
fn start_line_exactly_at_limit_is_fine() {
    let limits = Limits::default();
    let prefix = "DESCRIBE rtsp://h/";
    let suffix = " RTSP/1.0";
    let pad = limits.max_start_line - prefix.len() - suffix.len();
    let input = format!("{prefix}{}{suffix}\r\nCSeq: 1\r\n\r\n", "a".repeat(pad));
    let (frames, _) = parse_all(input.as_bytes(), &limits);
    assert!(matches!(&frames[0], Ok(Frame::Request(_))));
    let input = format!("{prefix}{}{suffix}\r\nCSeq: 1\r\n\r\n", "a".repeat(pad + 1));
    let (e, _) = first_error(input.as_bytes(), &limits);
    assert_eq!(e.kind, ParseErrorKind::StartLineTooLong);
}

#[test]
fn endless_start_line_is_fatal() {
    let limits = Limits::default();
    let mut input = b"DESCRIBE rtsp://h/".to_vec();
    // Longer than the start line limit but within the head limit: wait.
    input.resize(limits.max_start_line + 100, b'a');
    let mut buf = BytesMut::from(&input[..]);
    assert_eq!(parse_frame(&mut buf, &limits), Ok(None));
    assert_eq!(buf.len(), input.len());
    // Reaching the head limit with no line end: give up.
    input.resize(limits.max_head_bytes, b'a');
    let (e, rest) = first_error(&input, &limits);
    assert_eq!(e.kind, ParseErrorKind::StartLineTooLong);
    assert_eq!(e.status(), 414);
    assert_eq!(e.cseq, None);
    assert!(!e.recoverable);
    assert!(rest.is_empty());
}

#[test]
fn too_many_headers_is_recoverable() {
    let limits = Limits::default();
    let mut input = b"OPTIONS * RTSP/1.0\r\nCSeq: 8\r\n".to_vec();
    for i in 0..limits.max_headers {
        input.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    input.extend_from_slice(b"\r\n");
    input.extend_from_slice(NEXT);
    let (e, rest) = first_error(&input, &limits);
    assert_eq!(e.kind, ParseErrorKind::TooManyHeaders);
    assert_eq!(e.status(), 400);
    assert_eq!(e.cseq, Some(8));
    assert!(e.recoverable);
    assert_next_parses(rest);

    // Exactly at the limit is fine.
    let mut input = b"OPTIONS * RTSP/1.0\r\nCSeq: 8\r\n".to_vec();
    for i in 1..limits.max_headers {
        input.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    input.extend_from_slice(b"\r\n");
    let (frames, _) = parse_all(&input, &limits);
    assert!(matches!(&frames[0], Ok(Frame::Request(r)) if r.headers.len() == limits.max_headers));
}

#[test]
fn head_too_large_is_fatal() {
    let limits = Limits::default();
    let mut input = b"OPTIONS * RTSP/1.0\r\nCSeq: 4\r\n".to_vec();
    while input.len() < limits.max_head_bytes {
        input.extend_from_slice(
            b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        );
    }
    let (e, rest) = first_error(&input, &limits);
    assert_eq!(e.kind, ParseErrorKind::HeadTooLarge);
    assert_eq!(e.status(), 400);
    assert_eq!(e.cseq, Some(4));
    assert!(!e.recoverable);
    assert!(rest.is_empty());
}

#[test]
fn head_size_boundary() {
    let limits = Limits {
        max_head_bytes: 100,
        ..Limits::default()
    };
    let make = |total: usize| {
        let start = "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX: ";
        let end = "\r\n\r\n";
        format!(
            "{start}{}{end}",
            "a".repeat(total - start.len() - end.len())
        )
    };
    let ok = make(100);
    assert_eq!(ok.len(), 100);
    let (frames, _) = parse_all(ok.as_bytes(), &limits);
    assert!(matches!(&frames[0], Ok(Frame::Request(_))));
    // One byte more: even though the head end is in the buffer, it is past
    // the limit.
    let (e, _) = first_error(make(101).as_bytes(), &limits);
    assert_eq!(e.kind, ParseErrorKind::HeadTooLarge);
    assert!(!e.recoverable);
    assert_eq!(e.cseq, Some(1));
}

#[test]
fn body_too_large_not_buffered_is_fatal() {
    let input = b"ANNOUNCE rtsp://h/s RTSP/1.0\r\nCSeq: 5\r\nContent-Length: 70000\r\n\r\nv=0\r\n";
    let (e, rest) = first_error(input, &Limits::default());
    assert_eq!(e.kind, ParseErrorKind::BodyTooLarge { declared: 70000 });
    assert_eq!(e.status(), 413);
    assert_eq!(e.cseq, Some(5));
    assert!(!e.recoverable);
    assert!(rest.is_empty());

    let input = b"ANNOUNCE rtsp://h/s RTSP/1.0\r\nCSeq: 5\r\nContent-Length: 99999999999999999999999\r\n\r\n";
    let (e, _) = first_error(input, &Limits::default());
    assert_eq!(
        e.kind,
        ParseErrorKind::BodyTooLarge {
            declared: usize::MAX
        }
    );
}

#[test]
fn body_too_large_but_present_is_consumed() {
    let limits = Limits {
        max_body: 4,
        ..Limits::default()
    };
    let mut input =
        b"SET_PARAMETER rtsp://h/s RTSP/1.0\r\nCSeq: 6\r\nContent-Length: 10\r\n\r\n0123456789"
            .to_vec();
    input.extend_from_slice(NEXT);
    let (e, rest) = first_error(&input, &limits);
    assert_eq!(e.kind, ParseErrorKind::BodyTooLarge { declared: 10 });
    assert_eq!(e.status(), 413);
    assert!(e.recoverable);
    assert_next_parses(rest);
}

#[test]
fn body_at_limit_is_fine() {
    let limits = Limits {
        max_body: 10,
        ..Limits::default()
    };
    let input =
        b"SET_PARAMETER rtsp://h/s RTSP/1.0\r\nCSeq: 6\r\nContent-Length: 10\r\n\r\n0123456789";
    let (frames, rest) = parse_all(input, &limits);
    assert!(matches!(&frames[0], Ok(Frame::Request(r)) if r.body.len() == 10));
    assert!(rest.is_empty());
}

#[test]
fn bad_message_waits_for_its_body_then_is_consumed() {
    let msg = b"SET_PARAMETER rtsp://h/s RTSP/1.0\r\nCSeq: 7\r\nBroken header\r\nContent-Length: 5\r\n\r\nhello";
    let mut buf = BytesMut::from(&msg[..msg.len() - 2]);
    assert_eq!(parse_frame(&mut buf, &Limits::default()), Ok(None));
    buf.extend_from_slice(&msg[msg.len() - 2..]);
    buf.extend_from_slice(NEXT);
    let e = parse_frame(&mut buf, &Limits::default()).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::BadHeader);
    assert_eq!(e.cseq, Some(7));
    assert!(e.recoverable);
    assert_next_parses(buf);
}

#[test]
fn cseq_is_reported_for_every_kind_when_readable() {
    let cases: [(&[u8], ParseErrorKind); 3] = [
        (
            b"OPTIONS * RTSP/1.0\r\n\tfolded-without-field\r\nCSeq: 11\r\n\r\n",
            ParseErrorKind::BadHeader,
        ),
        (
            b"OPTIONS * RTSP/1.0\r\nCSeq: 11\r\nBad\x01: x\r\n\r\n",
            ParseErrorKind::BadHeader,
        ),
        (
            b"garbage line\r\nCSeq: 11\r\n\r\n",
            ParseErrorKind::BadStartLine,
        ),
    ];
    for (input, kind) in cases {
        let (e, rest) = first_error(input, &Limits::default());
        assert_eq!(e.kind, kind, "{:?}", String::from_utf8_lossy(input));
        assert_eq!(e.cseq, Some(11));
        assert!(e.recoverable);
        assert!(rest.is_empty());
    }
}

#[test]
fn unknown_method_and_newer_version_parse() {
    let (frames, _) = parse_all(
        b"FLY rtsp://h/s RTSP/1.0\r\nCSeq: 1\r\n\r\nOPTIONS * RTSP/2.0\r\nCSeq: 2\r\n\r\n",
        &Limits::default(),
    );
    assert!(
        matches!(&frames[0], Ok(Frame::Request(r)) if r.method == rtsp::Method::Extension("FLY".into()))
    );
    assert!(
        matches!(&frames[1], Ok(Frame::Request(r)) if r.version == rtsp::Version::Other("RTSP/2.0".into()))
    );
}
