//! Feeds a sequence of back-end RTP packets and control events through
//! `rtp::continuity::TrackContinuity::rewrite_rtp`, the per-track rewriter every
//! relayed packet goes through.
//!
//! Input: a few bytes choose the clock rate and the output's first sequence
//! number and timestamp; then a list of ops, each one byte and its arguments:
//! a raw packet (`u8` length prefix, then the bytes), a well-formed packet
//! built from compact fields (one of four SSRCs, a sequence and timestamp step,
//! a payload length), a time step, `source_reset`, `hold`/`release`,
//! `expect_start(seq)`.
//!
//! Checks the promises of the module docs:
//! - the output SSRC never changes; the rewritten bytes parse to the returned
//!   header, the payload is untouched; a refused packet is left unmodified and
//!   is not counted (`packets_sent`, `octets_sent`);
//! - the first packet ever gets `first_seq`/`first_ts`; a re-based packet
//!   (no mapping before it) gets `next_seq()` and the `rtptime_at(now)` that was
//!   announced (one tick more if no time passed);
//! - every packet is either new, one to `MAX_DROPOUT` ahead of the highest
//!   sequence number forwarded (and `next_seq()` follows it), or late, at most
//!   `MAX_MISORDER` behind it (never an old number presented as new);
//! - consecutive input (same SSRC, sequence + 1, nothing in between) gives
//!   strictly consecutive output sequence numbers and the same timestamp step;
//! - between `hold` and `release` every packet is refused with `Held`.
#![no_main]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rtp::continuity::{MAX_DROPOUT, MAX_MISORDER};
use rtp::packet::{parse_rtp, write_header};
use rtp::{RtpError, TrackContinuity};

const SSRCS: [u32; 4] = [0x1111_1111, 0x2222_2222, 0xdead_beef, 0];
const OUT_SSRC: u32 = 0x5eed_0001;

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes([
            self.u8()?,
            self.u8()?,
            self.u8()?,
            self.u8()?,
        ]))
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

/// The last new (not late) packet, while nothing happened since.
#[derive(Clone, Copy)]
struct LastNew {
    in_ssrc: u32,
    in_seq: u16,
    in_ts: u32,
    out_ts: u32,
}

struct Harness {
    c: TrackContinuity,
    first: (u16, u32),
    now: Instant,
    ever: bool,
    last_new: Option<LastNew>,
    /// Per synthetic SSRC: last sequence number and timestamp used.
    synth: [(u16, u32); 4],
}

impl Harness {
    fn packet(&mut self, mut pkt: Vec<u8>) {
        let original = pkt.clone();
        let input = parse_rtp(&original);
        let prev_next = self.c.next_seq();
        let had_mapping = self.c.input_ssrc().is_some();
        let held = self.c.is_held();
        let sent = (self.c.packets_sent(), self.c.octets_sent());
        let announced = self.c.rtptime_at(self.now);
        let last_ref = self.c.last_packet();
        let result = self.c.rewrite_rtp(&mut pkt, self.now);
        assert_eq!(self.c.ssrc(), OUT_SSRC);

        let out = match result {
            Err(e) => {
                assert_eq!(pkt, original, "a refused packet is left unmodified");
                assert_eq!((self.c.packets_sent(), self.c.octets_sent()), sent);
                assert_eq!(self.c.next_seq(), prev_next);
                if input.is_ok() && held {
                    assert!(matches!(e, RtpError::Held { .. }), "{e:?} while held");
                }
                if matches!(e, RtpError::Held { .. }) {
                    assert!(held);
                }
                return;
            }
            Ok(out) => out,
        };
        let input = input.expect("an accepted packet is valid RTP");
        assert!(!held, "nothing is forwarded while held");
        assert_eq!(out.ssrc, OUT_SSRC);
        let reparsed = parse_rtp(&pkt).expect("rewritten packet parses");
        assert_eq!(reparsed, out, "returned header is what the bytes say");
        assert_eq!(
            out.payload(&pkt),
            input.payload(&original),
            "payload untouched"
        );
        assert_eq!(
            (
                out.marker,
                out.payload_type,
                out.payload_offset,
                out.payload_len
            ),
            (
                input.marker,
                input.payload_type,
                input.payload_offset,
                input.payload_len
            )
        );
        assert_eq!(self.c.packets_sent(), sent.0.wrapping_add(1));
        assert_eq!(
            self.c.octets_sent(),
            sent.1.wrapping_add(input.payload_len as u32)
        );
        assert!(self.c.input_ssrc().is_some());

        if !self.ever {
            assert_eq!(
                (out.sequence, out.timestamp),
                self.first,
                "first packet ever"
            );
        }
        if !had_mapping {
            // A re-base: the next sequence number and the announced timestamp.
            assert_eq!(self.c.input_ssrc(), Some(input.ssrc));
            assert_eq!(out.sequence, prev_next, "re-based packet continues by one");
            if self.ever {
                let stalled = last_ref.is_some_and(|(ts, _)| ts == announced);
                let expected = announced.wrapping_add(u32::from(stalled));
                assert_eq!(
                    out.timestamp, expected,
                    "re-based timestamp follows the clock"
                );
            }
        }
        self.ever = true;

        let is_new = self.c.next_seq() != prev_next;
        let highest = prev_next.wrapping_sub(1);
        if is_new {
            let ahead = out.sequence.wrapping_sub(highest);
            assert!(
                (1..=MAX_DROPOUT).contains(&ahead) || !had_mapping,
                "new packet {ahead} ahead of the highest"
            );
            assert_eq!(self.c.next_seq(), out.sequence.wrapping_add(1));
            if let Some(prev) = self.last_new {
                if prev.in_ssrc == input.ssrc && prev.in_seq.wrapping_add(1) == input.sequence {
                    assert_eq!(out.sequence, prev_next, "consecutive in, consecutive out");
                    assert_eq!(
                        out.timestamp.wrapping_sub(prev.out_ts),
                        input.timestamp.wrapping_sub(prev.in_ts),
                        "same timestamp step"
                    );
                }
            }
            assert_eq!(
                self.c.map_timestamp(input.ssrc, input.timestamp),
                Some(out.timestamp),
                "sender reports map with the packets' offset"
            );
            self.last_new = Some(LastNew {
                in_ssrc: input.ssrc,
                in_seq: input.sequence,
                in_ts: input.timestamp,
                out_ts: out.timestamp,
            });
        } else {
            assert!(had_mapping, "a re-base always moves next_seq");
            let behind = highest.wrapping_sub(out.sequence);
            assert!(
                behind <= MAX_MISORDER,
                "late packet {behind} behind the highest forwarded"
            );
            if let Some(prev) = self.last_new {
                assert!(
                    !(prev.in_ssrc == input.ssrc && prev.in_seq.wrapping_add(1) == input.sequence),
                    "the next packet in order was taken as late"
                );
            }
        }
    }

    fn synthetic(&mut self, inp: &mut Input<'_>) -> Option<Vec<u8>> {
        let sel = inp.u8()?;
        let index = usize::from(sel & 3);
        let (seq, ts) = self.synth[index];
        let seq = match inp.u8()? {
            0x80 => inp.u16()?,
            d => seq.wrapping_add(d as i8 as u16),
        };
        let ts = match inp.u8()? {
            0xff => inp.u32()?,
            d => ts.wrapping_add(u32::from(d) * 300),
        };
        self.synth[index] = (seq, ts);
        let mut b = BytesMut::new();
        write_header(&mut b, sel & 0x80 != 0, 96, seq, ts, SSRCS[index]);
        b.resize(12 + usize::from(sel >> 2 & 0x1f), 0xab);
        Some(b.to_vec())
    }
}

fn run(data: &[u8]) -> Option<()> {
    let mut inp = Input(data);
    let clock_rate = [90_000, 48_000, 8_000, 1][usize::from(inp.u8()? & 3)];
    let first = (inp.u16()?, inp.u32()?);
    let mut h = Harness {
        c: TrackContinuity::new(clock_rate, OUT_SSRC, first.0, first.1),
        first,
        now: Instant::now(),
        ever: false,
        last_new: None,
        synth: [(1000, 0); 4],
    };
    assert_eq!(h.c.next_seq(), first.0);
    assert_eq!(h.c.rtptime_at(h.now), first.1);
    let mut ops = 0;
    while let Some(op) = inp.u8() {
        ops += 1;
        if ops > 4096 {
            break;
        }
        match op % 8 {
            0 => {
                let len = usize::from(inp.u8()?);
                let pkt = inp.take(len).to_vec();
                h.packet(pkt);
            }
            1..=3 => {
                let pkt = h.synthetic(&mut inp)?;
                h.packet(pkt);
            }
            4 => {
                let step = u64::from(inp.u8()?);
                h.now += Duration::from_millis(step * step);
            }
            5 => {
                h.c.source_reset();
                assert_eq!(h.c.input_ssrc(), None);
                assert!(!h.c.is_held());
                h.last_new = None;
            }
            6 => {
                if op & 0x80 == 0 {
                    h.c.hold();
                    assert!(h.c.is_held());
                    assert_eq!(h.c.input_ssrc(), None);
                } else {
                    h.c.release();
                    assert!(!h.c.is_held());
                }
                h.last_new = None;
            }
            _ => {
                let start = inp.u16()?;
                h.c.expect_start(start);
                h.last_new = None;
            }
        }
    }
    Some(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
