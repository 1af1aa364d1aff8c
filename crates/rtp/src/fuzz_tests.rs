//! Deterministic pseudo-random robustness tests: every parser and the continuity
//! rewriter are fed random and mutated packets and must never panic, and what they
//! return must stay within the buffer.

use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::packet::{is_rtcp, parse_rtp, set_sequence, set_ssrc, set_timestamp, write_header};
use crate::rtcp::{
    build_bye, build_receiver_report, build_sender_report, bye_ssrcs, is_valid_compound, packets,
    receiver_report_ssrcs, report_blocks, sender_reports, ReceptionStats, ReportBlock, SenderInfo,
};
use crate::{h264, h265, TrackContinuity};

/// xorshift64*: small, deterministic, good enough to shake parsers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// Flip, overwrite, truncate or extend a valid buffer.
    fn mutate(&mut self, mut b: Vec<u8>) -> Vec<u8> {
        for _ in 0..1 + self.below(4) {
            match self.below(5) {
                0 if !b.is_empty() => {
                    let i = self.below(b.len());
                    b[i] ^= 1 << self.below(8);
                }
                1 if !b.is_empty() => {
                    let i = self.below(b.len());
                    b[i] = self.next() as u8;
                }
                2 => {
                    let n = self.below(b.len() + 1);
                    b.truncate(n);
                }
                3 => {
                    let n = self.below(16);
                    let extra = self.bytes(n);
                    b.extend_from_slice(&extra);
                }
                _ => {
                    // Interesting values in the length-ish positions.
                    if b.len() > 3 {
                        let i = self.below(4);
                        b[i] = [0x00, 0xff, 0x7f, 0x80, 0x1f, 0xbf][self.below(6)];
                    }
                }
            }
        }
        b
    }
}

fn valid_rtp(rng: &mut Rng) -> Vec<u8> {
    let mut b = BytesMut::new();
    let seq = rng.next() as u16;
    write_header(
        &mut b,
        rng.below(2) == 1,
        96,
        seq,
        rng.next() as u32,
        rng.next() as u32,
    );
    let mut v = b.to_vec();
    let cc = rng.below(3);
    v[0] |= cc as u8;
    v.extend(rng.bytes(4 * cc));
    if rng.below(2) == 1 {
        v[0] |= 0x10;
        let words = rng.below(3);
        v.extend_from_slice(&[0xbe, 0xde, 0, words as u8]);
        v.extend(rng.bytes(4 * words));
    }
    let n = rng.below(64);
    v.extend(rng.bytes(n));
    if rng.below(2) == 1 {
        v[0] |= 0x20;
        let pad = 1 + rng.below(4);
        v.resize(v.len() + pad - 1, 0);
        v.push(pad as u8);
    }
    v
}

fn valid_rtcp(rng: &mut Rng) -> Vec<u8> {
    let mut out = BytesMut::new();
    match rng.below(3) {
        0 => {
            let block = ReportBlock {
                ssrc: rng.next() as u32,
                fraction_lost: rng.next() as u8,
                cumulative_lost: rng.next() as u32,
                highest_seq: rng.next() as u32,
                jitter: rng.next() as u32,
                lsr: rng.next() as u32,
                dlsr: rng.next() as u32,
            };
            let blocks = vec![block; rng.below(4)];
            build_receiver_report(&mut out, rng.next() as u32, &blocks, "fuzz@host");
        }
        1 => {
            let info = SenderInfo {
                ssrc: rng.next() as u32,
                ntp: rng.next(),
                rtp_timestamp: rng.next() as u32,
                packet_count: rng.next() as u32,
                octet_count: rng.next() as u32,
            };
            build_sender_report(&mut out, &info, "cname");
        }
        _ => build_bye(&mut out, rng.next() as u32),
    }
    if rng.below(2) == 1 {
        build_bye(&mut out, 1);
    }
    out.to_vec()
}

fn check_rtp(buf: &[u8]) {
    if let Ok(h) = parse_rtp(buf) {
        assert!(h.payload_offset >= 12);
        assert!(h.payload_offset + h.payload_len <= buf.len());
        assert_eq!(h.payload(buf).len(), h.payload_len);
        let _ = h264::is_keyframe(h.payload(buf));
        let _ = h265::is_keyframe(h.payload(buf));
    }
    let _ = is_rtcp(buf);
    let mut copy = buf.to_vec();
    set_sequence(&mut copy, 1);
    set_timestamp(&mut copy, 2);
    set_ssrc(&mut copy, 3);
    assert_eq!(copy.len(), buf.len());
}

fn check_rtcp(buf: &[u8]) {
    let n = packets(buf).count();
    assert!(n <= crate::rtcp::MAX_COMPOUND_PACKETS);
    for p in packets(buf) {
        assert!(p.body.len() <= buf.len());
    }
    let _ = sender_reports(buf);
    assert!(bye_ssrcs(buf).len() <= buf.len() / 4);
    assert!(receiver_report_ssrcs(buf).len() <= n);
    assert!(report_blocks(buf).len() <= buf.len() / 24);
    let valid = is_valid_compound(buf);
    if valid {
        assert!(buf.len() >= 8 && buf.len() & 3 == 0);
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let len = rng.below(200);
        let mut b = rng.bytes(len);
        if rng.below(2) == 1 && !b.is_empty() {
            b[0] = 0x80 | (b[0] & 0x3f); // version 2 half of the time
        }
        check_rtp(&b);
        check_rtcp(&b);
        let _ = h264::split_annex_b(&b);
        let _ = h264::is_keyframe(&b);
        let _ = h265::is_keyframe(&b);
    }
}

#[test]
fn mutated_packets_never_panic() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..20_000 {
        let rtp = valid_rtp(&mut rng);
        assert!(parse_rtp(&rtp).is_ok(), "generator makes valid RTP");
        let m = rng.mutate(rtp);
        check_rtp(&m);

        let rtcp = valid_rtcp(&mut rng);
        assert!(is_valid_compound(&rtcp), "builders make valid compounds");
        let m = rng.mutate(rtcp);
        check_rtcp(&m);
    }
}

#[test]
fn annex_b_split_never_loses_bounds() {
    let mut rng = Rng(42);
    for _ in 0..5_000 {
        // Bytes biased towards 0 and 1 so that start codes are frequent.
        let len = rng.below(300);
        let b: Vec<u8> = (0..len)
            .map(|_| match rng.below(4) {
                0 | 1 => 0,
                2 => 1,
                _ => rng.next() as u8,
            })
            .collect();
        let total: usize = h264::split_annex_b(&b).iter().map(|n| n.len()).sum();
        assert!(total <= b.len());
        for nal in h264::split_annex_b(&b) {
            assert!(!nal.is_empty());
            assert_ne!(nal.last(), Some(&0));
            let mut out = Vec::new();
            let max = 3 + rng.below(50);
            h264::packetize(nal, max, &mut out);
            assert!(out.iter().all(|p| p.len() <= max));
        }
    }
}

#[test]
fn continuity_with_hostile_input_never_panics_and_keeps_ssrc() {
    let mut rng = Rng(7);
    let t0 = Instant::now();
    let mut c = TrackContinuity::new(90_000, 0xfeed, 0, 0);
    let mut stats = ReceptionStats::new(90_000);
    let mut t = t0;
    for i in 0..20_000u32 {
        t += Duration::from_micros(rng.below(50_000) as u64);
        let buf = if rng.below(3) == 0 {
            let v = valid_rtp(&mut rng);
            rng.mutate(v)
        } else {
            valid_rtp(&mut rng)
        };
        let mut pkt = buf.clone();
        // Half the packets from a small set of SSRCs with nearby sequence numbers.
        if rng.below(2) == 0 && pkt.len() >= 12 {
            set_ssrc(&mut pkt, 1 + rng.below(2) as u32);
            set_sequence(&mut pkt, (i as u16).wrapping_add(rng.below(200) as u16));
        }
        if let Ok(h) = parse_rtp(&pkt) {
            stats.on_rtp(&h, t);
        }
        let before = pkt.clone();
        match c.rewrite_rtp(&mut pkt, t) {
            Ok(h) => {
                assert_eq!(h.ssrc, 0xfeed);
                assert_eq!(parse_rtp(&pkt).map(|p| p.ssrc), Ok(0xfeed));
            }
            Err(_) => assert_eq!(pkt, before),
        }
        if rng.below(100) == 0 {
            c.source_reset();
        }
        if rng.below(50) == 0 {
            let _ = stats.report_block(t);
            let _ = c.rtptime_at(t);
            let _ = c.map_timestamp(1, rng.next() as u32);
        }
    }
}
