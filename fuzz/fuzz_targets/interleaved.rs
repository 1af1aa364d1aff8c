//! Feeds bytes through the connection reader's framing, the way the proxy's
//! two RTSP readers use it:
//! - the back-end reader (`source/backend_driver.rs`): `rtsp::interleaved::split_frame`
//!   takes whole `$` frames first, `rtsp::parse_frame` the rest; any error ends
//!   the connection;
//! - the client reader (`server/connection.rs`, `rtsp_loop`): `parse_frame`
//!   only; a recoverable error is answered and reading goes on, a fatal one
//!   ends the connection.
//!
//! The first byte picks the limits (default, the back-end reader's, tiny) and
//! seeds the chunk sizes; the rest is the byte stream, framed once whole and
//! once delivered in chunks of 1 to 64 bytes. Checks:
//! - whole and chunked framing yield the same sequence of frames and errors,
//!   with one documented exception: a bad message may fail earlier in
//!   pieces, before its end is known, with a fatal error (a start line
//!   rejected before the head is complete, a body over `max_body` not all
//!   here yet), where the whole buffer skips it (recoverable error) or fails
//!   it otherwise (head too large); when the whole stream is still waiting
//!   for the rest of that message, it must be bad once its head and body end;
//! - `parse_frame` never returns an interleaved frame `split_frame` left
//!   (the driver relies on it), and `Ok(None)` is stable without new bytes;
//! - what stays buffered after framing is below the documented bound:
//!   an incomplete message (`max_head_bytes + max_body`) or an incomplete `$`
//!   frame (`4 + MAX_PAYLOAD`), so the last-resort guard of `rtsp_loop`
//!   (`max_head_bytes + max_body + 4 + MAX_PAYLOAD`) never fires.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rtsp::interleaved::{split_frame, MAX_PAYLOAD};
use rtsp::{parse_frame, Frame, Limits, ParseError};

#[derive(Debug, PartialEq)]
enum Event {
    Frame(Frame),
    Error(ParseError),
}

#[derive(Clone, Copy, PartialEq)]
enum Reader {
    /// `source/backend_driver.rs`: split_frame, then parse_frame; errors are fatal.
    Backend,
    /// `server/connection.rs`: parse_frame; recoverable errors go on.
    Client,
}

struct Framer {
    reader: Reader,
    limits: Limits,
    buf: BytesMut,
    events: Vec<Event>,
    closed: bool,
}

impl Framer {
    fn new(reader: Reader, limits: Limits) -> Framer {
        Framer {
            reader,
            limits,
            buf: BytesMut::new(),
            events: Vec::new(),
            closed: false,
        }
    }

    fn bound(&self) -> usize {
        (self.limits.max_head_bytes + self.limits.max_body).max(4 + MAX_PAYLOAD)
    }

    fn feed(&mut self, chunk: &[u8]) {
        if self.closed {
            return;
        }
        self.buf.extend_from_slice(chunk);
        self.drain();
        if !self.closed {
            assert!(
                self.buf.len() < self.bound(),
                "{} bytes left buffered, bound {}",
                self.buf.len(),
                self.bound()
            );
            let guard = self.limits.max_head_bytes + self.limits.max_body + 4 + MAX_PAYLOAD;
            assert!(self.buf.len() <= guard);
        }
    }

    fn drain(&mut self) {
        loop {
            if self.reader == Reader::Backend {
                if let Some((channel, payload)) = split_frame(&mut self.buf) {
                    assert!(payload.len() <= MAX_PAYLOAD);
                    self.events.push(Event::Frame(Frame::Interleaved {
                        channel,
                        payload: payload.freeze(),
                    }));
                    continue;
                }
            }
            let before = self.buf.len();
            match parse_frame(&mut self.buf, &self.limits) {
                Ok(Some(frame)) => {
                    assert!(self.buf.len() < before, "a frame without progress");
                    if self.reader == Reader::Backend {
                        assert!(
                            !matches!(frame, Frame::Interleaved { .. }),
                            "parse_frame took a $ frame split_frame left"
                        );
                    }
                    self.events.push(Event::Frame(frame));
                }
                Ok(None) => {
                    let kept = self.buf.clone();
                    assert!(matches!(parse_frame(&mut self.buf, &self.limits), Ok(None)));
                    assert_eq!(self.buf, kept, "Ok(None) is stable");
                    return;
                }
                Err(e) => {
                    let recoverable = e.recoverable;
                    let _ = e.status();
                    self.events.push(Event::Error(e));
                    if !recoverable {
                        assert!(self.buf.is_empty(), "a fatal error clears the buffer");
                    }
                    if self.reader == Reader::Backend || !recoverable {
                        self.closed = true;
                        return;
                    }
                    assert!(
                        self.buf.len() < before,
                        "recoverable error without progress"
                    );
                }
            }
        }
    }
}

fn first_difference(a: &[Event], b: &[Event]) -> Option<usize> {
    (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i))
}

/// Chunk sizes from a small xorshift seeded by the input.
fn chunks(data: &[u8], seed: u8) -> Vec<&[u8]> {
    let mut state = u32::from(seed) | 0x100;
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = if seed & 0x80 != 0 {
            1
        } else {
            (state % 64) as usize + 1
        };
        let (head, tail) = rest.split_at(size.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let limits = match control % 3 {
        0 => Limits::default(),
        // The back-end reader's limits.
        1 => Limits {
            max_body: 256 * 1024,
            ..Limits::default()
        },
        _ => Limits {
            max_start_line: 64,
            max_headers: 4,
            max_head_bytes: 256,
            max_body: 64,
        },
    };
    for reader in [Reader::Backend, Reader::Client] {
        let mut whole = Framer::new(reader, limits.clone());
        whole.feed(stream);
        let mut chunked = Framer::new(reader, limits.clone());
        for chunk in chunks(stream, control) {
            chunked.feed(chunk);
        }
        match first_difference(&whole.events, &chunked.events) {
            None => {
                assert_eq!(whole.closed, chunked.closed);
                if !whole.closed {
                    assert_eq!(whole.buf, chunked.buf, "same bytes left over");
                }
            }
            Some(i) => {
                // The one documented difference: a bad message can fail
                // earlier in pieces, before its end is known (a start line
                // rejected early, a body over `max_body` not yet all here),
                // and then ends the connection (fatal error), where the whole
                // buffer lets it be skipped (recoverable error) or fails it
                // for another reason (too large a head).
                match (whole.events.get(i), chunked.events.get(i)) {
                    (Some(Event::Error(w)), Some(Event::Error(c))) => {
                        assert!(
                            !c.recoverable,
                            "whole and chunked framing disagree at {i}: {w:?} / {c:?}"
                        );
                        assert_eq!(chunked.events.len(), i + 1);
                        assert!(chunked.closed);
                    }
                    // The whole stream is still waiting for the rest of the
                    // message the pieces failed on: once it is there, the
                    // message must turn out bad too.
                    (None, Some(Event::Error(c))) if !c.recoverable && !whole.closed => {
                        // End its head (if it has not ended) and give it a body.
                        let mut probe = whole.buf.clone();
                        probe.extend_from_slice(b"\r\n\r\n");
                        probe.resize(probe.len() + whole.limits.max_body, b'x');
                        let completed = parse_frame(&mut probe, &whole.limits);
                        assert!(
                            completed.is_err(),
                            "a message rejected in pieces is good whole: {completed:?}\n\
                             whole: {:?}\nchunked: {:?}\nwaiting: {:?}",
                            whole.events,
                            chunked.events,
                            whole.buf
                        );
                        assert_eq!(chunked.events.len(), i + 1);
                    }
                    (w, c) => panic!(
                        "whole and chunked framing disagree at {i}: {w:?} / {c:?}\n\
                         whole: {:?}\nchunked: {:?}\nleft: {:?} / {:?}",
                        whole.events, chunked.events, whole.buf, chunked.buf
                    ),
                }
            }
        }
    }
});
