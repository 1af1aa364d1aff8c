//! Per-track RTP continuity: clients see one stream with a stable SSRC, sequence
//! numbers that go on by one and timestamps that follow wall-clock time, whatever the
//! back end does (reconnects, reboots, SSRC changes, sequence jumps).
//!
//! The output space is `out = in + offset` (modulo 2^16 for sequence numbers, 2^32 for
//! timestamps). The offsets are chosen when a back-end *mapping* starts (first packet,
//! after [`TrackContinuity::source_reset`], on an SSRC change, on a sequence jump) and
//! stay fixed while the back end's packets follow each other normally, so losses stay
//! visible as gaps, reordering stays reordering, and the back end's sender reports can
//! be mapped with the same timestamp offset.

use std::time::Instant;

use rand::Rng;

use crate::packet::{parse_rtp, set_sequence, set_ssrc, set_timestamp, RtpError, RtpHeader};
use crate::rtcp::{clock_ticks, SenderInfo};

/// A forward sequence step larger than this is a jump (RFC 3550 A.1 MAX_DROPOUT).
pub const MAX_DROPOUT: u16 = 3000;
/// A packet at most this far behind the highest sequence number is reordered, not a
/// jump (RFC 3550 A.1 MAX_MISORDER).
pub const MAX_MISORDER: u16 = 100;
/// Within one mapping, an output timestamp this many seconds behind the projection
/// reference is a timestamp jump (the reference follows it); smaller steps back are
/// B-frame reordering (the reference stays).
const TS_BACKWARD_JUMP_SECS: u64 = 2;

/// How a packet relates to a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Same SSRC, 1..=MAX_DROPOUT ahead of the highest sequence number.
    Forward(u16),
    /// Same SSRC, a duplicate or up to MAX_MISORDER behind, and not before the mapping.
    Late,
    /// Same SSRC, up to MAX_MISORDER behind, but older than the mapping's first packet.
    BeforeStart,
    /// Another SSRC, or a sequence jump.
    Foreign,
}

/// The offsets for one back-end session (one input SSRC and sequence space).
#[derive(Clone, Copy, Debug)]
struct Mapping {
    in_ssrc: u32,
    seq_offset: u16,
    ts_offset: u32,
    /// Highest input sequence number seen.
    max_in_seq: u16,
    /// How far `max_in_seq` advanced since the first packet of the mapping (saturating).
    span: u32,
    /// Input sequence number of the mapping's first packet.
    first_in_seq: u16,
}

impl Mapping {
    fn classify(&self, ssrc: u32, seq: u16) -> Class {
        if ssrc != self.in_ssrc {
            return Class::Foreign;
        }
        let ahead = seq.wrapping_sub(self.max_in_seq);
        if (1..=MAX_DROPOUT).contains(&ahead) {
            return Class::Forward(ahead);
        }
        let behind = self.max_in_seq.wrapping_sub(seq);
        if behind > MAX_MISORDER {
            Class::Foreign
        } else if u32::from(behind) > self.span {
            Class::BeforeStart
        } else {
            Class::Late
        }
    }
}

/// What was last forwarded in output space.
#[derive(Clone, Copy, Debug)]
struct LastOut {
    /// Highest output sequence number forwarded.
    seq: u16,
    /// Projection reference: the highest output timestamp of the current run (see
    /// [`TrackContinuity::last_packet`]) ...
    ts: u32,
    /// ... and the arrival time of the first packet that carried it.
    arrival: Instant,
}

/// The continuity rewriter of one track, for the whole life of a proxied stream.
///
/// Every back-end RTP packet of the track goes through [`rewrite_rtp`](Self::rewrite_rtp)
/// once, before fan-out:
///
/// - the output SSRC never changes;
/// - the first packet ever gets `first_seq` / `first_ts`;
/// - while the back end's packets follow each other (same SSRC, at most
///   [`MAX_DROPOUT`] ahead or [`MAX_MISORDER`] behind the highest sequence number),
///   sequence numbers and timestamps are shifted by fixed offsets: losses stay gaps,
///   reordering stays reordering, timestamp jumps of the source pass through;
/// - after [`source_reset`](Self::source_reset), on an SSRC change or on a sequence
///   jump, the next packet is *re-based*: its sequence number is the last one plus
///   one and its timestamp the last one plus the wall-clock time elapsed (at least one
///   tick); the offsets are then fixed again for the new mapping.
///
/// Late packets of the mapping that was just replaced (mid-stream SSRC change or
/// sequence jump) are still forwarded with that mapping's offsets, so they arrive as
/// late packets rather than causing another re-base, as long as that makes them at
/// most [`MAX_MISORDER`] behind the highest sequence number forwarded; later than
/// that they are refused with [`RtpError::BeforeRebase`]. Late packets of the
/// current mapping that are older than its first packet can't be given an unused
/// sequence number; they are refused with [`RtpError::BeforeRebase`] too. So every
/// packet forwarded is either new (ahead of the highest sequence number forwarded)
/// or at most [`MAX_MISORDER`] behind it.
#[derive(Clone, Debug)]
pub struct TrackContinuity {
    clock_rate: u32,
    ssrc: u32,
    first_seq: u16,
    first_ts: u32,
    current: Option<Mapping>,
    previous: Option<Mapping>,
    last: Option<LastOut>,
    /// The back end is paused: every packet is dropped until [`Self::release`].
    held: bool,
    /// Until the next re-base: packets up to [`MAX_DROPOUT`] before this input
    /// sequence number (the back end's announced start) are dropped.
    start_gate: Option<u16>,
    packets_sent: u32,
    octets_sent: u32,
}

impl TrackContinuity {
    /// A rewriter whose output stream has SSRC `out_ssrc` and starts at `first_seq` /
    /// `first_ts`, for a track with an RTP clock of `clock_rate` Hz.
    pub fn new(clock_rate: u32, out_ssrc: u32, first_seq: u16, first_ts: u32) -> Self {
        TrackContinuity {
            clock_rate,
            ssrc: out_ssrc,
            first_seq,
            first_ts,
            current: None,
            previous: None,
            last: None,
            held: false,
            start_gate: None,
            packets_sent: 0,
            octets_sent: 0,
        }
    }

    /// A rewriter with a random non-zero SSRC and random initial sequence number and
    /// timestamp (RFC 3550 section 5.1).
    pub fn with_random_base(clock_rate: u32) -> Self {
        let mut rng = rand::thread_rng();
        let ssrc = rng.gen_range(1..=u32::MAX);
        TrackContinuity::new(clock_rate, ssrc, rng.gen(), rng.gen())
    }

    /// The output SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The RTP clock rate of the track, in Hz.
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// The back-end SSRC currently mapped, if any (none before the first packet and
    /// after [`source_reset`](Self::source_reset) until the next packet).
    pub fn input_ssrc(&self) -> Option<u32> {
        self.current.map(|m| m.in_ssrc)
    }

    /// Rewrite a back-end RTP packet in place: SSRC set to ours, sequence number and
    /// timestamp mapped into our space. `now` is the packet's arrival time.
    ///
    /// Returns the rewritten header. On error the packet is left unmodified and must be
    /// dropped: it is not valid RTP, or it is a late packet from before the current
    /// mapping ([`RtpError::BeforeRebase`]).
    pub fn rewrite_rtp(&mut self, pkt: &mut [u8], now: Instant) -> Result<RtpHeader, RtpError> {
        let hdr = parse_rtp(pkt)?;
        if self.held {
            return Err(RtpError::Held {
                sequence: hdr.sequence,
            });
        }
        if let (None, Some(start)) = (self.current, self.start_gate) {
            if (1..=MAX_DROPOUT).contains(&start.wrapping_sub(hdr.sequence)) {
                return Err(RtpError::BeforeStart {
                    sequence: hdr.sequence,
                    start,
                });
            }
        }
        let class = self
            .current
            .map_or(Class::Foreign, |m| m.classify(hdr.ssrc, hdr.sequence));
        let (out_seq, out_ts) = match (class, self.current.as_mut()) {
            (Class::Forward(ahead), Some(m)) => {
                m.max_in_seq = hdr.sequence;
                m.span = m.span.saturating_add(u32::from(ahead));
                let out_seq = hdr.sequence.wrapping_add(m.seq_offset);
                let out_ts = hdr.timestamp.wrapping_add(m.ts_offset);
                self.advance(out_seq, out_ts, now);
                (out_seq, out_ts)
            }
            (Class::Late, Some(m)) => (
                hdr.sequence.wrapping_add(m.seq_offset),
                hdr.timestamp.wrapping_add(m.ts_offset),
            ),
            _ => {
                let late_of_previous = self
                    .previous
                    .filter(|p| p.classify(hdr.ssrc, hdr.sequence) == Class::Late);
                if let Some(p) = late_of_previous {
                    let out_seq = hdr.sequence.wrapping_add(p.seq_offset);
                    // Late in our output too, or dropped: once the current
                    // mapping has gone far on, the old offsets would give a
                    // number clients take for a jump ahead (or reuse one).
                    let behind = self.next_seq().wrapping_sub(1).wrapping_sub(out_seq);
                    if behind > MAX_MISORDER {
                        return Err(RtpError::BeforeRebase {
                            sequence: hdr.sequence,
                        });
                    }
                    (out_seq, hdr.timestamp.wrapping_add(p.ts_offset))
                } else if class == Class::BeforeStart {
                    return Err(RtpError::BeforeRebase {
                        sequence: hdr.sequence,
                    });
                } else {
                    self.rebase(&hdr, now)
                }
            }
        };

        set_ssrc(pkt, self.ssrc);
        set_sequence(pkt, out_seq);
        set_timestamp(pkt, out_ts);
        self.packets_sent = self.packets_sent.wrapping_add(1);
        // payload_len <= pkt.len(); an RTP packet is far below 4 GiB.
        self.octets_sent = self
            .octets_sent
            .wrapping_add(u32::try_from(hdr.payload_len).unwrap_or(u32::MAX));
        Ok(RtpHeader {
            sequence: out_seq,
            timestamp: out_ts,
            ssrc: self.ssrc,
            ..hdr
        })
    }

    /// Record a forwarded in-order packet: highest sequence number, and the timestamp
    /// projection reference.
    fn advance(&mut self, out_seq: u16, out_ts: u32, now: Instant) {
        let Some(last) = self.last.as_mut() else {
            // A mapping always comes with a `last`; nothing sensible to do otherwise.
            return;
        };
        last.seq = out_seq;
        let step = out_ts.wrapping_sub(last.ts) as i32;
        let jump_back =
            u64::from(step.unsigned_abs()) > TS_BACKWARD_JUMP_SECS * u64::from(self.clock_rate);
        if step > 0 || jump_back {
            last.ts = out_ts;
            last.arrival = now;
        }
    }

    /// Start a new mapping at `hdr`; returns its output sequence number and timestamp.
    fn rebase(&mut self, hdr: &RtpHeader, now: Instant) -> (u16, u32) {
        let (out_seq, out_ts) = match self.last {
            Some(last) => {
                let elapsed =
                    clock_ticks(self.clock_rate, now.saturating_duration_since(last.arrival));
                (
                    last.seq.wrapping_add(1),
                    last.ts.wrapping_add(elapsed.max(1)),
                )
            }
            None => (self.first_seq, self.first_ts),
        };
        self.previous = self.current.take();
        self.start_gate = None;
        self.current = Some(Mapping {
            in_ssrc: hdr.ssrc,
            seq_offset: out_seq.wrapping_sub(hdr.sequence),
            ts_offset: out_ts.wrapping_sub(hdr.timestamp),
            max_in_seq: hdr.sequence,
            span: 0,
            first_in_seq: hdr.sequence,
        });
        self.last = Some(LastOut {
            seq: out_seq,
            ts: out_ts,
            arrival: now,
        });
        (out_seq, out_ts)
    }

    /// The back-end session was lost or re-established: the next packet starts a new
    /// mapping (whatever its SSRC and sequence number), and sender reports are not
    /// mapped until then.
    pub fn source_reset(&mut self) {
        self.current = None;
        self.previous = None;
        self.held = false;
        self.start_gate = None;
    }

    /// The back end was paused: the current mapping ends, and every packet is
    /// refused ([`RtpError::Held`]) until [`release`](Self::release). Whatever the
    /// back end does to its SSRC, sequence numbers and timestamps while paused, the
    /// first packet after the release is re-based as after a reconnect: sequence
    /// number the last one plus one, timestamp advanced by the wall-clock time that
    /// passed, which is what [`next_seq`](Self::next_seq) and
    /// [`rtptime_at`](Self::rtptime_at) announced meanwhile.
    pub fn hold(&mut self) {
        self.current = None;
        self.previous = None;
        self.start_gate = None;
        self.held = true;
    }

    /// The back end is asked to play again: packets are accepted from now on, the
    /// next one re-bases (see [`hold`](Self::hold)). Does nothing when not held.
    pub fn release(&mut self) {
        self.held = false;
    }

    /// Whether packets are being refused (between [`hold`](Self::hold) and
    /// [`release`](Self::release)).
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// The back end announced (RTP-Info `seq`) that the first packet of its new PLAY
    /// has input sequence number `start`. Packets up to [`MAX_DROPOUT`] before it
    /// were sent before that PLAY: until the next re-base they are refused
    /// ([`RtpError::BeforeStart`]). If the current mapping itself started on such a
    /// packet, it is ended and the next packet at or after `start` re-bases. An
    /// announcement far from the packets (a camera's bogus RTP-Info) changes
    /// nothing.
    pub fn expect_start(&mut self, start: u16) {
        match self.current {
            Some(m) if (1..=MAX_DROPOUT).contains(&start.wrapping_sub(m.first_in_seq)) => {
                self.current = None;
                self.previous = None;
                self.start_gate = Some(start);
            }
            Some(_) => {}
            None => self.start_gate = Some(start),
        }
    }

    /// The sequence number the next forwarded new packet will carry (for RTP-Info).
    pub fn next_seq(&self) -> u16 {
        self.last
            .map_or(self.first_seq, |last| last.seq.wrapping_add(1))
    }

    /// Our timestamp projected to `now`: the reference output timestamp plus the
    /// wall-clock time since its arrival (for RTP-Info and synthesized sender reports).
    /// Before any packet: `first_ts`.
    pub fn rtptime_at(&self, now: Instant) -> u32 {
        self.last.map_or(self.first_ts, |last| {
            last.ts.wrapping_add(clock_ticks(
                self.clock_rate,
                now.saturating_duration_since(last.arrival),
            ))
        })
    }

    /// Map a back-end timestamp (from a sender report of `in_ssrc`) into our space;
    /// `None` if `in_ssrc` is not the back-end SSRC currently mapped.
    pub fn map_timestamp(&self, in_ssrc: u32, in_ts: u32) -> Option<u32> {
        self.current
            .filter(|m| m.in_ssrc == in_ssrc)
            .map(|m| in_ts.wrapping_add(m.ts_offset))
    }

    /// A back-end sender report rewritten for our clients: our SSRC, the back end's
    /// NTP time (its wall clock, for lip sync), its RTP timestamp mapped into our
    /// space, and our packet and octet counts. `None` if `sr` is not from the back-end
    /// SSRC currently mapped.
    pub fn map_sender_report(&self, sr: &SenderInfo) -> Option<SenderInfo> {
        Some(SenderInfo {
            ssrc: self.ssrc,
            ntp: sr.ntp,
            rtp_timestamp: self.map_timestamp(sr.ssrc, sr.rtp_timestamp)?,
            packet_count: self.packets_sent,
            octet_count: self.octets_sent,
        })
    }

    /// Packets forwarded so far (modulo 2^32), for sender reports.
    pub fn packets_sent(&self) -> u32 {
        self.packets_sent
    }

    /// Payload octets forwarded so far (modulo 2^32), for sender reports.
    pub fn octets_sent(&self) -> u32 {
        self.octets_sent
    }

    /// The timestamp projection reference: the highest output timestamp forwarded in
    /// the current run and the arrival time of the first packet that carried it
    /// (timestamps a little behind it, such as B-frames, don't move it; a step back of
    /// more than two seconds, a source timestamp jump, does). `None` before any packet.
    pub fn last_packet(&self) -> Option<(u32, Instant)> {
        self.last.map(|last| (last.ts, last.arrival))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::write_header;
    use bytes::BytesMut;
    use std::time::Duration;

    const OUT_SSRC: u32 = 0x5eed_0001;

    fn pkt(ssrc: u32, seq: u16, ts: u32, payload: usize) -> BytesMut {
        let mut b = BytesMut::new();
        write_header(&mut b, false, 96, seq, ts, ssrc);
        b.resize(12 + payload, 0xab);
        b
    }

    /// Rewrite one packet and return its output (seq, ts), checking the SSRC and that
    /// the returned header matches the bytes.
    fn fwd(c: &mut TrackContinuity, ssrc: u32, seq: u16, ts: u32, at: Instant) -> (u16, u32) {
        let mut p = pkt(ssrc, seq, ts, 10);
        let h = c.rewrite_rtp(&mut p, at).expect("forwarded");
        let parsed = parse_rtp(&p).unwrap();
        assert_eq!(h, parsed);
        assert_eq!(h.ssrc, c.ssrc());
        assert_eq!(&p[12..], &[0xab; 10]);
        (h.sequence, h.timestamp)
    }

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn first_packet_takes_the_initial_values_then_offsets_hold() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(90_000, OUT_SSRC, 1000, 50_000);
        assert_eq!(c.next_seq(), 1000);
        assert_eq!(c.rtptime_at(t0), 50_000);
        assert_eq!(c.last_packet(), None);
        assert_eq!(c.input_ssrc(), None);

        assert_eq!(fwd(&mut c, 0xaaaa, 30_000, 7_000_000, t0), (1000, 50_000));
        assert_eq!(c.input_ssrc(), Some(0xaaaa));
        assert_eq!(
            fwd(&mut c, 0xaaaa, 30_001, 7_003_600, ms(t0, 40)),
            (1001, 53_600)
        );
        // Gap of 4 lost packets: kept as a gap.
        assert_eq!(
            fwd(&mut c, 0xaaaa, 30_006, 7_021_600, ms(t0, 240)),
            (1006, 71_600)
        );
        // Largest forward step that is still normal flow.
        assert_eq!(
            fwd(&mut c, 0xaaaa, 30_006 + MAX_DROPOUT, 7_025_200, ms(t0, 280)),
            (1006 + MAX_DROPOUT, 75_200)
        );
        assert_eq!(c.next_seq(), 1007 + MAX_DROPOUT);
        assert_eq!(c.packets_sent(), 4);
        assert_eq!(c.octets_sent(), 40);
        assert_eq!(c.last_packet(), Some((75_200, ms(t0, 280))));
    }

    #[test]
    fn reordering_and_duplicates_keep_offsets() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(8000, OUT_SSRC, 10, 0);
        fwd(&mut c, 1, 500, 1000, t0);
        fwd(&mut c, 1, 501, 1160, ms(t0, 20));
        assert_eq!(fwd(&mut c, 1, 503, 1480, ms(t0, 60)), (13, 480));
        // 502 arrives late: same offsets, does not move the highest seq.
        assert_eq!(fwd(&mut c, 1, 502, 1320, ms(t0, 61)), (12, 320));
        assert_eq!(c.next_seq(), 14);
        // Duplicate.
        assert_eq!(fwd(&mut c, 1, 503, 1480, ms(t0, 62)), (13, 480));
        assert_eq!(c.next_seq(), 14);
        // Reference unchanged by late packets.
        assert_eq!(c.last_packet(), Some((480, ms(t0, 60))));
        assert_eq!(fwd(&mut c, 1, 504, 1640, ms(t0, 80)), (14, 640));
        assert_eq!(c.packets_sent(), 6);
    }

    #[test]
    fn maximal_reordering_is_late_beyond_is_a_jump() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(90_000, OUT_SSRC, 0, 0);
        fwd(&mut c, 1, 1000, 0, t0);
        for s in 1001..=1200u16 {
            fwd(&mut c, 1, s, u32::from(s) * 10, t0);
        }
        // 100 behind the highest: late, same offsets.
        assert_eq!(fwd(&mut c, 1, 1100, 11_000, ms(t0, 1)).0, 100);
        assert_eq!(c.next_seq(), 201);
        // 101 behind: a jump backwards -> re-base, seq continues by one.
        let (s, ts) = fwd(&mut c, 1, 1099, 10_990, ms(t0, 1000));
        assert_eq!(s, 201);
        assert_eq!(ts, 12_000 + 90_000);
        assert_eq!(c.next_seq(), 202);
    }

    #[test]
    fn input_wraparound_is_normal_flow() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(90_000, OUT_SSRC, 100, 1000);
        let ts0 = u32::MAX - 3600;
        assert_eq!(fwd(&mut c, 9, 65534, ts0, t0), (100, 1000));
        assert_eq!(
            fwd(&mut c, 9, 65535, ts0.wrapping_add(1800), ms(t0, 20)),
            (101, 2800)
        );
        assert_eq!(
            fwd(&mut c, 9, 0, ts0.wrapping_add(3600), ms(t0, 40)),
            (102, 4600)
        );
        assert_eq!(
            fwd(&mut c, 9, 1, ts0.wrapping_add(5400), ms(t0, 60)),
            (103, 6400)
        );
        // Reordered across the wrap.
        assert_eq!(
            fwd(&mut c, 9, 65535, ts0.wrapping_add(1800), ms(t0, 61)),
            (101, 2800)
        );
        assert_eq!(c.map_timestamp(9, ts0), Some(1000));
        assert_eq!(c.next_seq(), 104);
    }

    #[test]
    fn output_wraparound() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(90_000, OUT_SSRC, 65534, u32::MAX - 1000);
        assert_eq!(fwd(&mut c, 9, 10, 0, t0), (65534, u32::MAX - 1000));
        assert_eq!(fwd(&mut c, 9, 11, 3000, ms(t0, 33)), (65535, 1999));
        assert_eq!(c.next_seq(), 0);
        assert_eq!(fwd(&mut c, 9, 12, 6000, ms(t0, 66)), (0, 4999));
        // Re-base right at the wrap.
        c.source_reset();
        let (s, ts) = fwd(&mut c, 10, 40_000, 123, ms(t0, 1066));
        assert_eq!(s, 1);
        assert_eq!(ts, 4999 + 90_000);
        // And a late packet from before the wrap in the first mapping is not mapped now.
        assert_eq!(c.map_timestamp(9, 0), None);
    }

    #[test]
    fn source_reset_rebases_on_wall_clock() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(90_000, OUT_SSRC, 500, 10_000);
        for i in 0..10u16 {
            fwd(
                &mut c,
                0x1111,
                2000 + i,
                900_000 + 3000 * u32::from(i),
                ms(t0, 33 * u64::from(i)),
            );
        }
        assert_eq!(c.next_seq(), 510);
        assert_eq!(c.last_packet(), Some((37_000, ms(t0, 297))));
        c.source_reset();
        assert_eq!(c.map_timestamp(0x1111, 900_000), None);
        assert_eq!(c.input_ssrc(), None);
        // Still projects from the last packet while the back end is away.
        assert_eq!(c.rtptime_at(ms(t0, 1297)), 37_000 + 90_000);
        assert_eq!(c.next_seq(), 510);

        // The camera comes back 2.5 s later with new SSRC, seq and ts bases.
        let back = ms(t0, 297 + 2500);
        assert_eq!(
            fwd(&mut c, 0x2222, 7, 4_000_000_000, back),
            (510, 37_000 + 225_000)
        );
        assert_eq!(c.input_ssrc(), Some(0x2222));
        assert_eq!(
            fwd(
                &mut c,
                0x2222,
                8,
                4_000_003_000,
                back + Duration::from_millis(33)
            ),
            (511, 37_000 + 225_000 + 3000)
        );
        assert_eq!(c.map_timestamp(0x2222, 4_000_000_000), Some(262_000));
        assert_eq!(c.map_timestamp(0x1111, 900_000), None);
        assert_eq!(c.ssrc(), OUT_SSRC);
    }

    #[test]
    fn reset_with_same_ssrc_and_continuous_seq_still_rebases() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(1000, OUT_SSRC, 0, 0);
        fwd(&mut c, 5, 100, 100, t0);
        fwd(&mut c, 5, 101, 110, ms(t0, 10));
        c.source_reset();
        // Same SSRC, next seq, a timestamp far away: re-based on wall clock (1 kHz).
        assert_eq!(fwd(&mut c, 5, 102, 999_999, ms(t0, 510)), (2, 10 + 500));
    }

    #[test]
    fn rebase_advances_at_least_one_tick() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(90_000, OUT_SSRC, 0, 5000);
        fwd(&mut c, 1, 10, 0, t0);
        c.source_reset();
        assert_eq!(fwd(&mut c, 2, 10, 0, t0), (1, 5001));
        c.source_reset();
        // Arrival "before" the previous one (synthetic clock): still +1.
        let t1 = t0.checked_sub(Duration::from_secs(1)).unwrap_or(t0);
        assert_eq!(fwd(&mut c, 3, 10, 0, t1), (2, 5002));
        c.source_reset();
        // Sub-tick elapsed time rounds to 0 -> +1; 1.5 tick rounds to 2.
        assert_eq!(
            fwd(&mut c, 4, 10, 0, t1 + Duration::from_nanos(100)),
            (3, 5003)
        );
        c.source_reset();
        let t2 = t1 + Duration::from_nanos(100) + Duration::from_nanos(16_667);
        assert_eq!(fwd(&mut c, 5, 10, 0, t2), (4, 5005));
    }

    #[test]
    fn rebase_after_long_outage_wraps_timestamp() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(90_000, OUT_SSRC, 0, 1);
        fwd(&mut c, 1, 0, 0, t0);
        c.source_reset();
        // 13.5 hours: 90000 * 48600 = 4_374_000_000 ticks, wraps modulo 2^32.
        let later = t0 + Duration::from_secs(48_600);
        let expected = 1u32.wrapping_add((4_374_000_000u64 % (1 << 32)) as u32);
        assert_eq!(fwd(&mut c, 2, 0, 0, later), (1, expected));
    }

    #[test]
    fn ssrc_change_without_reset_rebases() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(48_000, OUT_SSRC, 0, 0);
        for i in 0..5u16 {
            fwd(
                &mut c,
                0xa,
                100 + i,
                960 * u32::from(i),
                ms(t0, 20 * u64::from(i)),
            );
        }
        // New SSRC 100 ms after the last packet, sequence space overlapping the old one.
        assert_eq!(fwd(&mut c, 0xb, 102, 77, ms(t0, 180)), (5, 3840 + 4800));
        assert_eq!(
            fwd(&mut c, 0xb, 103, 77 + 960, ms(t0, 200)),
            (6, 3840 + 5760)
        );
        assert_eq!(c.map_timestamp(0xb, 77), Some(8640));
        assert_eq!(c.map_timestamp(0xa, 0), None);
        assert_eq!(c.input_ssrc(), Some(0xb));
    }

    #[test]
    fn late_packets_of_the_replaced_mapping_keep_its_offsets() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(90_000, OUT_SSRC, 0, 0);
        for i in [0u16, 1, 2, 4] {
            fwd(
                &mut c,
                0xa,
                1000 + i,
                3000 * u32::from(i),
                ms(t0, 33 * u64::from(i)),
            );
        }
        assert_eq!(fwd(&mut c, 0xb, 50, 0, ms(t0, 165)), (5, 12_000 + 2970));
        // Packet 1003 of the old source shows up late: old offsets, no re-base.
        assert_eq!(fwd(&mut c, 0xa, 1003, 9000, ms(t0, 166)), (3, 9000));
        assert_eq!(c.input_ssrc(), Some(0xb));
        assert_eq!(fwd(&mut c, 0xb, 51, 3000, ms(t0, 198)), (6, 17_970));
        assert_eq!(c.next_seq(), 7);
        // The old source coming back for real (ahead of its old max) is a re-base.
        assert_eq!(fwd(&mut c, 0xa, 1005, 15_000, ms(t0, 231)).0, 7);
        assert_eq!(c.input_ssrc(), Some(0xa));
    }

    /// Found by the `continuity` fuzz target: once the current mapping had gone
    /// more than half the sequence space on, a late packet of the replaced one got
    /// an output number that clients read as a jump far ahead.
    #[test]
    fn late_packets_of_the_replaced_mapping_are_dropped_once_too_old() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(90_000, OUT_SSRC, 0, 0);
        for seq in 1000..1004u16 {
            fwd(&mut c, 0xa, seq, 0, t0);
        }
        // A new source: re-based at 4; it then runs on by steps of 2999.
        assert_eq!(fwd(&mut c, 0xb, 5000, 0, t0).0, 4);
        let late = |c: &mut TrackContinuity, seq: u16| {
            let mut p = pkt(0xa, seq, 0, 10);
            let before = p.clone();
            let r = c.rewrite_rtp(&mut p, t0).map(|h| h.sequence);
            if r.is_err() {
                assert_eq!(p, before, "a refused packet is left unmodified");
            }
            r
        };
        // Right after the switch, the old source's late packet keeps its number.
        assert_eq!(late(&mut c, 1002), Ok(2));
        let mut seq = 5000u16;
        for _ in 0..12 {
            seq = seq.wrapping_add(2999);
            fwd(&mut c, 0xb, seq, 0, t0);
        }
        let highest = c.next_seq().wrapping_sub(1);
        assert_eq!(highest, 4 + 12 * 2999);
        // Now output 1 would be 35 991 behind the highest: refused, not re-based.
        assert_eq!(
            late(&mut c, 1001),
            Err(RtpError::BeforeRebase { sequence: 1001 })
        );
        assert_eq!(c.input_ssrc(), Some(0xb));
        assert_eq!(c.next_seq(), highest.wrapping_add(1));

        // The limit is MAX_MISORDER behind the highest number forwarded.
        let mut c = TrackContinuity::new(90_000, OUT_SSRC, 0, 0);
        fwd(&mut c, 0xa, 10, 0, t0);
        fwd(&mut c, 0xa, 11, 0, t0);
        assert_eq!(fwd(&mut c, 0xb, 500, 0, t0).0, 2);
        for i in 1..MAX_MISORDER {
            fwd(&mut c, 0xb, 500 + i, 0, t0);
        }
        // Highest is 2 + 99 = 101: output 1 is exactly 100 behind, still late;
        // output 0 would be 101 behind.
        assert_eq!(c.next_seq(), 102);
        assert_eq!(late(&mut c, 11), Ok(1));
        assert_eq!(
            late(&mut c, 10),
            Err(RtpError::BeforeRebase { sequence: 10 })
        );
    }

    #[test]
    fn sequence_jumps_rebase_and_late_packets_of_the_old_run_are_kept() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(90_000, OUT_SSRC, 0, 0);
        fwd(&mut c, 1, 100, 0, t0);
        fwd(&mut c, 1, 102, 6000, ms(t0, 66));
        // Forward jump beyond MAX_DROPOUT, same SSRC: re-based, continuing by one.
        let jump = 102 + MAX_DROPOUT + 1;
        assert_eq!(fwd(&mut c, 1, jump, 9000, ms(t0, 99)), (3, 6000 + 2970));
        assert_eq!(fwd(&mut c, 1, jump + 1, 12_000, ms(t0, 132)), (4, 11_970));
        // 101 arrives very late: belongs to the replaced run.
        assert_eq!(fwd(&mut c, 1, 101, 3000, ms(t0, 133)), (1, 3000));
        assert_eq!(c.next_seq(), 5);
        // map_timestamp uses the current run.
        assert_eq!(c.map_timestamp(1, 9000), Some(8970));
    }

    #[test]
    fn packet_older_than_the_new_mapping_is_refused() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(90_000, OUT_SSRC, 0, 0);
        fwd(&mut c, 1, 10, 0, t0);
        fwd(&mut c, 1, 11, 10, t0);
        c.source_reset();
        fwd(&mut c, 2, 500, 0, ms(t0, 100));
        fwd(&mut c, 2, 502, 20, ms(t0, 120));
        // 501 is after the mapping start: fine (fills the gap).
        assert_eq!(fwd(&mut c, 2, 501, 10, ms(t0, 121)).0, 3);
        // 499 is older than the first packet of the mapping: its output seq (1) was
        // already used by the previous session.
        let mut p = pkt(2, 499, 0, 10);
        let before = p.clone();
        assert_eq!(
            c.rewrite_rtp(&mut p, ms(t0, 122)),
            Err(RtpError::BeforeRebase { sequence: 499 })
        );
        assert_eq!(p, before);
        assert_eq!(c.packets_sent(), 5);
        assert_eq!(c.next_seq(), 5);
        assert_eq!(fwd(&mut c, 2, 503, 30, ms(t0, 130)).0, 5);
    }

    #[test]
    fn timestamp_jump_alone_passes_through() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(90_000, OUT_SSRC, 0, 0);
        fwd(&mut c, 1, 0, 1000, t0);
        fwd(&mut c, 1, 1, 4000, ms(t0, 33));
        // The camera jumps its timestamp; the sequence is continuous.
        assert_eq!(
            fwd(&mut c, 1, 2, 2_000_000_000, ms(t0, 66)),
            (2, 1_999_999_000)
        );
        assert_eq!(c.map_timestamp(1, 1000), Some(0));
        assert_eq!(c.last_packet(), Some((1_999_999_000, ms(t0, 66))));
        // And back down by far more than two seconds: the reference follows.
        assert_eq!(fwd(&mut c, 1, 3, 7000, ms(t0, 99)), (3, 6000));
        assert_eq!(c.last_packet(), Some((6000, ms(t0, 99))));
        assert_eq!(c.rtptime_at(ms(t0, 199)), 6000 + 9000);
    }

    #[test]
    fn b_frames_do_not_move_the_projection_reference() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(90_000, OUT_SSRC, 0, 0);
        // Decode order I0 P3 B1 B2 P6 (timestamps in frames of 3600).
        let frames = [0u32, 3, 1, 2, 6];
        for (i, f) in frames.iter().enumerate() {
            fwd(&mut c, 1, i as u16, 3600 * f, ms(t0, 40 * i as u64));
        }
        assert_eq!(c.last_packet(), Some((6 * 3600, ms(t0, 160))));
        // Several packets of one frame: the first arrival is kept.
        fwd(&mut c, 1, 5, 6 * 3600, ms(t0, 170));
        assert_eq!(c.last_packet(), Some((6 * 3600, ms(t0, 160))));
        c.source_reset();
        // Re-base from the highest timestamp: the new IDR comes after every frame sent.
        let (_, ts) = fwd(&mut c, 2, 0, 0, ms(t0, 200));
        assert_eq!(ts, 6 * 3600 + 3600);
    }

    #[test]
    fn rtptime_projection() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(90_000, OUT_SSRC, 0, 777);
        assert_eq!(c.rtptime_at(t0), 777);
        fwd(&mut c, 1, 0, 0, t0);
        assert_eq!(c.rtptime_at(t0), 777);
        assert_eq!(c.rtptime_at(ms(t0, 1000)), 90_777);
        assert_eq!(c.rtptime_at(ms(t0, 11)), 777 + 990);
        // `now` before the reference: no negative projection.
        let earlier = t0.checked_sub(Duration::from_secs(1)).unwrap_or(t0);
        assert_eq!(c.rtptime_at(earlier), 777);
        // Wraps modulo 2^32.
        let mut w = TrackContinuity::new(90_000, OUT_SSRC, 0, u32::MAX);
        fwd(&mut w, 1, 0, 0, t0);
        assert_eq!(w.rtptime_at(ms(t0, 1000)), 89_999);
    }

    #[test]
    fn invalid_packet_is_refused_and_leaves_state_alone() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(90_000, OUT_SSRC, 0, 0);
        let mut bad = vec![0x40u8; 20];
        let copy = bad.clone();
        assert!(matches!(
            c.rewrite_rtp(&mut bad, t0),
            Err(RtpError::BadVersion { .. })
        ));
        assert_eq!(bad, copy);
        assert!(c.rewrite_rtp(&mut [], t0).is_err());
        assert_eq!(c.packets_sent(), 0);
        assert_eq!(c.next_seq(), 0);
        assert_eq!(c.last_packet(), None);
    }

    #[test]
    fn octets_count_payload_only() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(90_000, OUT_SSRC, 0, 0);
        // Padded packet with a CSRC: only the payload counts.
        let mut p = vec![0xa1, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 9, 9, 9, 9];
        p.extend_from_slice(&[1, 2, 3, 4, 5, 0, 2]);
        let h = c.rewrite_rtp(&mut p, t0).unwrap();
        assert_eq!(h.payload_len, 5);
        assert_eq!(c.octets_sent(), 5);
        assert_eq!(&p[8..12], &OUT_SSRC.to_be_bytes());
        assert_eq!(&p[12..16], &[9, 9, 9, 9]); // CSRC untouched
    }

    #[test]
    fn sender_report_mapping() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(90_000, OUT_SSRC, 0, 1_000_000);
        let sr = SenderInfo {
            ssrc: 0xcafe,
            ntp: 0xe000_0000_8000_0000,
            rtp_timestamp: 50_000,
            packet_count: 999,
            octet_count: 99_999,
        };
        assert_eq!(c.map_sender_report(&sr), None);
        fwd(&mut c, 0xcafe, 1, 40_000, t0);
        let m = c.map_sender_report(&sr).unwrap();
        assert_eq!(m.ssrc, OUT_SSRC);
        assert_eq!(m.ntp, sr.ntp);
        assert_eq!(m.rtp_timestamp, 1_010_000);
        assert_eq!((m.packet_count, m.octet_count), (1, 10));
        assert_eq!(c.map_sender_report(&SenderInfo { ssrc: 1, ..sr }), None);
    }

    #[test]
    fn many_resets_keep_one_continuous_sequence() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::with_random_base(90_000);
        assert_ne!(c.ssrc(), 0);
        let mut expected_seq = c.next_seq();
        let mut last_ts: Option<u32> = None;
        let mut t = t0;
        let mut lcg = 12345u32;
        for session in 0..50u32 {
            lcg = lcg.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let (ssrc, seq0, ts0) = (lcg | 1, (lcg >> 8) as u16, lcg.rotate_left(7));
            for i in 0..20u32 {
                t += Duration::from_millis(40);
                let (s, ts) = fwd(
                    &mut c,
                    ssrc,
                    seq0.wrapping_add(i as u16),
                    ts0.wrapping_add(3600 * i),
                    t,
                );
                assert_eq!(s, expected_seq, "session {session} packet {i}");
                expected_seq = expected_seq.wrapping_add(1);
                if let Some(prev) = last_ts {
                    assert_eq!(ts.wrapping_sub(prev), 3600, "session {session} packet {i}");
                }
                last_ts = Some(ts);
            }
            if session % 2 == 0 {
                c.source_reset();
            }
        }
        assert_eq!(c.packets_sent(), 1000);
    }

    fn refused(c: &mut TrackContinuity, ssrc: u32, seq: u16, ts: u32, at: Instant) -> RtpError {
        let mut p = pkt(ssrc, seq, ts, 10);
        let before = p.clone();
        let e = c.rewrite_rtp(&mut p, at).expect_err("refused");
        assert_eq!(p, before, "a refused packet is left as it was");
        e
    }

    /// A live back end that keeps its SSRC and sequence numbers across PAUSE/PLAY
    /// but restarts its timestamps (GStreamer in suspend-mode reset): clients see
    /// what RTP-Info announced, the sequence going on by one and the timestamp
    /// advanced by the wall-clock time of the pause.
    #[test]
    fn resume_after_pause_rebases_like_a_reconnect() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(90_000, OUT_SSRC, 100, 1_000);
        for i in 0..10u16 {
            fwd(
                &mut c,
                0xcafe,
                5000 + i,
                3_000_000 + 3600 * u32::from(i),
                ms(t0, 40 * u64::from(i)),
            );
        }
        assert_eq!(c.next_seq(), 110);
        c.hold();
        assert!(c.is_held());
        // In flight when PAUSE took effect: dropped, even though they follow on.
        assert_eq!(
            refused(&mut c, 0xcafe, 5010, 3_036_000, ms(t0, 400)),
            RtpError::Held { sequence: 5010 }
        );
        assert_eq!(
            c.map_timestamp(0xcafe, 3_000_000),
            None,
            "no SR mapping while paused"
        );
        // A new client's PLAY 10 s later is answered from the projection.
        let play = ms(t0, 10_360);
        let (announced_seq, announced_ts) = (c.next_seq(), c.rtptime_at(play));
        assert_eq!(
            (announced_seq, announced_ts),
            (110, 1_000 + 32_400 + 900_000)
        );
        c.release();
        assert!(!c.is_held());
        // The back end resumes 50 ms later with the same SSRC, seq 5011 (it skipped
        // one) and its timestamps restarted near zero.
        let first = ms(t0, 10_410);
        let (seq, ts) = fwd(&mut c, 0xcafe, 5011, 17, first);
        assert_eq!(
            seq, announced_seq,
            "the first packet carries the announced seq"
        );
        assert_eq!(
            ts,
            announced_ts + 4_500,
            "and the announced time plus 50 ms"
        );
        assert_eq!(
            fwd(&mut c, 0xcafe, 5012, 3_617, ms(t0, 10_450)),
            (111, ts + 3600)
        );
        assert_eq!(c.map_timestamp(0xcafe, 17), Some(ts));
    }

    #[test]
    fn packets_before_the_announced_start_are_dropped() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(8_000, OUT_SSRC, 0, 0);
        fwd(&mut c, 7, 200, 0, t0);
        fwd(&mut c, 7, 201, 160, ms(t0, 20));
        c.hold();
        c.release();
        // RTP-Info said the new PLAY starts at seq 260.
        c.expect_start(260);
        assert_eq!(
            refused(&mut c, 7, 259, 9_000, ms(t0, 1000)),
            RtpError::BeforeStart {
                sequence: 259,
                start: 260
            }
        );
        assert_eq!(
            refused(&mut c, 7, 202, 320, ms(t0, 1000)),
            RtpError::BeforeStart {
                sequence: 202,
                start: 260
            }
        );
        assert_eq!(fwd(&mut c, 7, 260, 50_000, ms(t0, 1020)), (2, 160 + 8_000));
        // Reordering after the start is normal flow again.
        assert_eq!(fwd(&mut c, 7, 262, 50_320, ms(t0, 1060)), (4, 160 + 8_320));
        assert_eq!(fwd(&mut c, 7, 261, 50_160, ms(t0, 1061)), (3, 160 + 8_160));
    }

    #[test]
    fn an_announced_start_after_the_current_mapping_began_rebases_again() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(1_000, OUT_SSRC, 0, 0);
        fwd(&mut c, 1, 10, 0, t0);
        c.source_reset();
        // A stale packet slipped in before the PLAY answer and started a mapping...
        assert_eq!(fwd(&mut c, 1, 11, 10, ms(t0, 500)), (1, 500));
        // ...which the answer's RTP-Info (start 40) shows was from before the PLAY.
        c.expect_start(40);
        assert_eq!(
            refused(&mut c, 1, 12, 20, ms(t0, 510)),
            RtpError::BeforeStart {
                sequence: 12,
                start: 40
            }
        );
        assert_eq!(fwd(&mut c, 1, 40, 90_000, ms(t0, 600)), (2, 600));
    }

    #[test]
    fn an_announced_start_that_the_mapping_already_covers_changes_nothing() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(1_000, OUT_SSRC, 0, 0);
        // Packets of the new PLAY arrive before its answer (UDP).
        assert_eq!(fwd(&mut c, 1, 40, 7_000, t0), (0, 0));
        assert_eq!(fwd(&mut c, 1, 41, 7_010, ms(t0, 10)), (1, 10));
        c.expect_start(40);
        assert_eq!(fwd(&mut c, 1, 42, 7_020, ms(t0, 20)), (2, 20));
        // A camera whose RTP-Info is far from its packets (bogus): ignored too.
        c.expect_start(30_000);
        assert_eq!(fwd(&mut c, 1, 43, 7_030, ms(t0, 30)), (3, 30));
        c.source_reset();
        c.expect_start(0);
        assert_eq!(fwd(&mut c, 2, 43_000, 1, ms(t0, 1_030)), (4, 1_030));
    }

    #[test]
    fn source_reset_ends_a_hold() {
        let t0 = Instant::now();
        let mut c = TrackContinuity::new(1_000, OUT_SSRC, 0, 0);
        fwd(&mut c, 1, 10, 0, t0);
        c.hold();
        c.source_reset();
        assert!(!c.is_held());
        assert_eq!(fwd(&mut c, 9, 1, 1, ms(t0, 100)), (1, 100));
    }
}
