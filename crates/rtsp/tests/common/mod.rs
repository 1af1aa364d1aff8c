//! Shared helpers: reading the capture files of `tests/data/captures`.

#![allow(dead_code)]

use bytes::BytesMut;
use rtsp::{parse_frame, Frame, Limits, ParseError};

pub const GST_TCP: &str = include_str!("../../../../tests/data/captures/gst-rtsp-server-tcp.txt");
pub const GST_UDP: &str = include_str!("../../../../tests/data/captures/gst-rtsp-server-udp.txt");
pub const LIVE555_FRONTEND: &str =
    include_str!("../../../../tests/data/captures/live555-proxy-frontend-udp.txt");
pub const LIVE555_BACKEND_LOG: &str =
    include_str!("../../../../tests/data/captures/live555-proxy-backend-verbose.log");

/// All `>>>`/`<<<` capture files, by name.
pub const CAPTURES: [(&str, &str); 3] = [
    ("gst-rtsp-server-tcp", GST_TCP),
    ("gst-rtsp-server-udp", GST_UDP),
    ("live555-proxy-frontend-udp", LIVE555_FRONTEND),
];

/// Which way a captured message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Request,
    Response,
}

/// Line ending used when rebuilding a message head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eol {
    Crlf,
    Lf,
}

impl Eol {
    fn as_str(self) -> &'static str {
        match self {
            Eol::Crlf => "\r\n",
            Eol::Lf => "\n",
        }
    }
}

/// One captured message: its direction, head lines (no line ends) and body
/// bytes exactly as captured.
#[derive(Clone, Debug)]
pub struct Captured {
    pub dir: Dir,
    pub head: Vec<String>,
    pub body: Vec<u8>,
}

impl Captured {
    /// The message bytes with the head lines ended by `eol` (the body is kept
    /// as captured: its length is what Content-Length says).
    pub fn bytes(&self, eol: Eol) -> Vec<u8> {
        let mut out = String::new();
        for line in &self.head {
            out.push_str(line);
            out.push_str(eol.as_str());
        }
        out.push_str(eol.as_str());
        let mut out = out.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }

    /// The value of a header line of the capture (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.iter().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Splits a capture file into its messages. A block runs from a `>>> request`
/// or `<<< response` line to the next marker line (`>>> `, `<<< `, `--- `);
/// the blank separator line before the next marker is not part of it. Line
/// ends inside the head may be CRLF or LF.
pub fn messages(file: &str) -> Vec<Captured> {
    let mut out = Vec::new();
    let mut current: Option<(Dir, String)> = None;
    let mut flush = |current: &mut Option<(Dir, String)>| {
        if let Some((dir, mut text)) = current.take() {
            // Drop the blank separator line.
            if text.ends_with('\n') {
                text.pop();
            }
            out.push(split_block(dir, &text));
        }
    };
    for line in file.split_inclusive('\n') {
        let marker = line.trim_end();
        if marker == ">>> request" || marker == "<<< response" {
            flush(&mut current);
            let dir = if marker.starts_with(">>>") {
                Dir::Request
            } else {
                Dir::Response
            };
            current = Some((dir, String::new()));
        } else if line.starts_with("--- ") {
            flush(&mut current);
        } else if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
        }
    }
    flush(&mut current);
    out
}

fn split_block(dir: Dir, text: &str) -> Captured {
    let mut head = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        offset += line.len();
        let l = line.trim_end_matches('\n').trim_end_matches('\r');
        if l.is_empty() {
            break;
        }
        head.push(l.to_owned());
    }
    Captured {
        dir,
        head,
        body: text.as_bytes()[offset.min(text.len())..].to_vec(),
    }
}

/// The interleaved bytes noted at the end of the TCP capture (hex).
pub fn interleaved_hex(file: &str) -> Vec<u8> {
    let line = file
        .lines()
        .find(|l| l.starts_with("--- interleaved"))
        .expect("no interleaved line");
    let hex = line.rsplit(' ').next().unwrap().trim();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// Parses everything in `input` with the given limits, stopping at need-more
/// or at an unrecoverable error.
pub fn parse_all(input: &[u8], limits: &Limits) -> (Vec<Result<Frame, ParseError>>, BytesMut) {
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    loop {
        let before = buf.len();
        match parse_frame(&mut buf, limits) {
            Ok(Some(f)) => {
                assert!(buf.len() < before, "a frame must consume bytes");
                out.push(Ok(f));
            }
            Ok(None) => break,
            Err(e) => {
                let fatal = !e.recoverable;
                if !fatal {
                    assert!(buf.len() < before, "a recoverable error must consume bytes");
                }
                out.push(Err(e));
                if fatal {
                    break;
                }
            }
        }
    }
    (out, buf)
}

/// Deterministic xorshift64* generator for the robustness tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
