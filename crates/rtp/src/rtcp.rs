//! RTCP (RFC 3550 section 6): compound packet iteration, sender report, receiver report
//! and BYE parsing, builders for the reports the proxy sends, NTP time helpers, and the
//! receiver statistics ([`ReceptionStats`], RFC 3550 appendix A.1, A.3 and A.8) for the
//! receiver reports sent to the back end.
//!
//! All parsing is bounded: at most [`MAX_COMPOUND_PACKETS`] packets are looked at in
//! one compound packet, and iteration stops at the first packet whose header or
//! length is invalid.

use bytes::{BufMut, BytesMut};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::packet::RtpHeader;

/// RTCP packet type: sender report.
pub const PT_SR: u8 = 200;
/// RTCP packet type: receiver report.
pub const PT_RR: u8 = 201;
/// RTCP packet type: source description.
pub const PT_SDES: u8 = 202;
/// RTCP packet type: goodbye.
pub const PT_BYE: u8 = 203;
/// RTCP packet type: application-defined.
pub const PT_APP: u8 = 204;

/// The most RTCP packets looked at in one compound packet.
pub const MAX_COMPOUND_PACKETS: usize = 64;

/// The most report blocks one RR can carry (5-bit count).
pub const MAX_REPORT_BLOCKS: usize = 31;

/// SDES item type of the canonical name.
const SDES_CNAME: u8 = 1;

/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// One RTCP packet inside a compound packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtcpPacket<'a> {
    /// The 5-bit count field (reception report count, source count or subtype).
    pub count: u8,
    /// The packet type (200 SR, 201 RR, 202 SDES, 203 BYE, 204 APP, ...).
    pub packet_type: u8,
    /// Whether the padding bit was set (the padding is not part of `body`).
    pub padded: bool,
    /// The bytes after the 4-byte common header, padding excluded.
    pub body: &'a [u8],
}

/// Iterator over the packets of a compound RTCP packet; see [`packets`].
#[derive(Clone, Debug)]
pub struct RtcpPackets<'a> {
    rest: &'a [u8],
    yielded: usize,
    malformed: bool,
}

impl RtcpPackets<'_> {
    /// Whether iteration stopped at a malformed packet (bad version, length past the
    /// end, bad padding) or at the packet count limit, rather than at the end of the
    /// buffer. Meaningful once the iterator returned `None`.
    pub fn stopped_early(&self) -> bool {
        self.malformed
    }
}

impl<'a> Iterator for RtcpPackets<'a> {
    type Item = RtcpPacket<'a>;

    fn next(&mut self) -> Option<RtcpPacket<'a>> {
        if self.rest.is_empty() || self.malformed {
            return None;
        }
        if self.yielded >= MAX_COMPOUND_PACKETS {
            self.malformed = true;
            return None;
        }
        match split_packet(self.rest) {
            Some((packet, rest)) => {
                self.rest = rest;
                self.yielded += 1;
                Some(packet)
            }
            None => {
                self.malformed = true;
                None
            }
        }
    }
}

/// Split the first RTCP packet off `buf`; `None` if its header is invalid.
fn split_packet(buf: &[u8]) -> Option<(RtcpPacket<'_>, &[u8])> {
    let header = buf.get(..4)?;
    if header[0] >> 6 != 2 {
        return None;
    }
    let padded = header[0] & 0x20 != 0;
    let count = header[0] & 0x1f;
    let packet_type = header[1];
    let size = (usize::from(u16::from_be_bytes([header[2], header[3]])) + 1) * 4;
    let packet = buf.get(..size)?;
    let mut body_end = size;
    if padded {
        let pad = usize::from(packet[size - 1]);
        if pad == 0 || pad > size - 4 {
            return None;
        }
        body_end -= pad;
    }
    Some((
        RtcpPacket {
            count,
            packet_type,
            padded,
            body: &packet[4..body_end],
        },
        &buf[size..],
    ))
}

/// Iterate over the RTCP packets of a compound packet. Stops at the end of the buffer,
/// at the first malformed packet, or after [`MAX_COMPOUND_PACKETS`] packets.
pub fn packets(buf: &[u8]) -> RtcpPackets<'_> {
    RtcpPackets {
        rest: buf,
        yielded: 0,
        malformed: false,
    }
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some((u64::from(be_u32(b, at)?) << 32) | u64::from(be_u32(b, at + 4)?))
}

/// The sender information of a sender report (RFC 3550 section 6.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderInfo {
    /// SSRC of the sender.
    pub ssrc: u32,
    /// Wall-clock time of the report, 64-bit NTP format.
    pub ntp: u64,
    /// The RTP timestamp corresponding to `ntp`.
    pub rtp_timestamp: u32,
    /// Packets sent since the start of transmission.
    pub packet_count: u32,
    /// Payload octets sent since the start of transmission.
    pub octet_count: u32,
}

impl SenderInfo {
    fn from_body(body: &[u8]) -> Option<SenderInfo> {
        Some(SenderInfo {
            ssrc: be_u32(body, 0)?,
            ntp: be_u64(body, 4)?,
            rtp_timestamp: be_u32(body, 12)?,
            packet_count: be_u32(body, 16)?,
            octet_count: be_u32(body, 20)?,
        })
    }
}

/// The sender information of every sender report in a compound packet (report blocks
/// are skipped). Packets before a malformed one are still returned.
pub fn sender_reports(buf: &[u8]) -> Vec<SenderInfo> {
    packets(buf)
        .filter(|p| p.packet_type == PT_SR)
        .filter_map(|p| SenderInfo::from_body(p.body))
        .collect()
}

/// The SSRCs said goodbye to in the BYE packets of a compound packet (each BYE's
/// source count is bounded by its length).
pub fn bye_ssrcs(buf: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    for p in packets(buf).filter(|p| p.packet_type == PT_BYE) {
        out.extend(
            p.body
                .chunks_exact(4)
                .take(usize::from(p.count))
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])),
        );
    }
    out
}

/// The SSRC of the reporter of every receiver report in a compound packet.
pub fn receiver_report_ssrcs(buf: &[u8]) -> Vec<u32> {
    packets(buf)
        .filter(|p| p.packet_type == PT_RR)
        .filter_map(|p| be_u32(p.body, 0))
        .collect()
}

/// RFC 3550 appendix A.2 validity check of a compound RTCP packet: every packet has
/// version 2, the lengths add up exactly to the buffer, the first packet is an SR or
/// RR, only the last packet may be padded, and there are at most
/// [`MAX_COMPOUND_PACKETS`] packets. In addition every SR and RR must be long enough
/// for its sender information and report blocks.
pub fn is_valid_compound(buf: &[u8]) -> bool {
    let mut iter = packets(buf);
    let mut first = true;
    let mut seen_padding = false;
    for p in iter.by_ref() {
        if first && !matches!(p.packet_type, PT_SR | PT_RR) {
            return false;
        }
        let needed = match p.packet_type {
            PT_SR => 24 + 24 * usize::from(p.count),
            PT_RR => 4 + 24 * usize::from(p.count),
            _ => 0,
        };
        if p.body.len() < needed {
            return false;
        }
        first = false;
        if seen_padding {
            // A padded packet that is not the last one.
            return false;
        }
        seen_padding = p.padded;
    }
    !first && !iter.stopped_early()
}

/// One reception report block (RFC 3550 section 6.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportBlock {
    /// SSRC of the source this block is about.
    pub ssrc: u32,
    /// Fraction of packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost, 24-bit two's complement (only the low 24 bits are sent).
    pub cumulative_lost: u32,
    /// Extended highest sequence number received (cycles << 16 | highest).
    pub highest_seq: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last SR received from the source (0 if none).
    pub lsr: u32,
    /// Delay since that SR, in 1/65536 s (0 if none).
    pub dlsr: u32,
}

impl ReportBlock {
    fn write(&self, out: &mut BytesMut) {
        out.put_u32(self.ssrc);
        out.put_u32((u32::from(self.fraction_lost) << 24) | (self.cumulative_lost & 0x00ff_ffff));
        out.put_u32(self.highest_seq);
        out.put_u32(self.jitter);
        out.put_u32(self.lsr);
        out.put_u32(self.dlsr);
    }

    /// Parse a 24-byte report block.
    fn parse(b: &[u8]) -> Option<ReportBlock> {
        let word1 = be_u32(b, 4)?;
        Some(ReportBlock {
            ssrc: be_u32(b, 0)?,
            fraction_lost: (word1 >> 24) as u8,
            cumulative_lost: word1 & 0x00ff_ffff,
            highest_seq: be_u32(b, 8)?,
            jitter: be_u32(b, 12)?,
            lsr: be_u32(b, 16)?,
            dlsr: be_u32(b, 20)?,
        })
    }
}

/// The report blocks of every SR and RR in a compound packet, with the SSRC of the
/// reporter (bounded by each packet's count and length).
pub fn report_blocks(buf: &[u8]) -> Vec<(u32, ReportBlock)> {
    let mut out = Vec::new();
    for p in packets(buf) {
        let blocks_at = match p.packet_type {
            PT_SR => 24,
            PT_RR => 4,
            _ => continue,
        };
        let (Some(reporter), Some(blocks)) = (be_u32(p.body, 0), p.body.get(blocks_at..)) else {
            continue;
        };
        out.extend(
            blocks
                .chunks_exact(24)
                .take(usize::from(p.count))
                .filter_map(ReportBlock::parse)
                .map(|b| (reporter, b)),
        );
    }
    out
}

/// Write an RTCP common header with the length field computed from `words_after`
/// (number of 32-bit words after the header).
fn put_common_header(out: &mut BytesMut, count: u8, packet_type: u8, words_after: usize) {
    out.put_u8(0x80 | (count & 0x1f));
    out.put_u8(packet_type);
    // Callers bound their sizes far below 65535 words.
    out.put_u16(u16::try_from(words_after).unwrap_or(u16::MAX));
}

/// Append an SDES packet with one chunk: `ssrc` and its CNAME item. The CNAME is cut
/// to 255 bytes (on a character boundary).
fn put_sdes_cname(out: &mut BytesMut, ssrc: u32, cname: &str) {
    let mut end = cname.len().min(255);
    while !cname.is_char_boundary(end) {
        end -= 1;
    }
    let name = &cname.as_bytes()[..end];
    // SSRC + type + length + text, then 1..=4 zero bytes: end of the item list and
    // padding to a 32-bit boundary.
    let items = 2 + name.len();
    let terminator = 4 - items % 4;
    let chunk_len = 4 + items + terminator;
    put_common_header(out, 1, PT_SDES, chunk_len / 4);
    out.put_u32(ssrc);
    out.put_u8(SDES_CNAME);
    out.put_u8(name.len() as u8);
    out.put_slice(name);
    out.put_bytes(0, terminator);
}

/// Append a compound RTCP packet: a receiver report from `reporter_ssrc` with
/// `blocks` (at most 31 are used), then an SDES with the CNAME.
pub fn build_receiver_report(
    out: &mut BytesMut,
    reporter_ssrc: u32,
    blocks: &[ReportBlock],
    cname: &str,
) {
    let blocks = &blocks[..blocks.len().min(MAX_REPORT_BLOCKS)];
    out.reserve(8 + 24 * blocks.len() + 12 + cname.len().min(255));
    put_common_header(out, blocks.len() as u8, PT_RR, 1 + 6 * blocks.len());
    out.put_u32(reporter_ssrc);
    for b in blocks {
        b.write(out);
    }
    put_sdes_cname(out, reporter_ssrc, cname);
}

/// Append a compound RTCP packet: a sender report with no report blocks, then an SDES
/// with the CNAME.
pub fn build_sender_report(out: &mut BytesMut, info: &SenderInfo, cname: &str) {
    out.reserve(28 + 12 + cname.len().min(255));
    put_common_header(out, 0, PT_SR, 6);
    out.put_u32(info.ssrc);
    out.put_u64(info.ntp);
    out.put_u32(info.rtp_timestamp);
    out.put_u32(info.packet_count);
    out.put_u32(info.octet_count);
    put_sdes_cname(out, info.ssrc, cname);
}

/// Append a compound RTCP packet announcing that `ssrc` leaves: an empty receiver
/// report (RFC 3550 requires a compound packet to start with SR or RR) followed by a
/// BYE for `ssrc`.
pub fn build_bye(out: &mut BytesMut, ssrc: u32) {
    out.reserve(16);
    put_common_header(out, 0, PT_RR, 1);
    out.put_u32(ssrc);
    put_common_header(out, 1, PT_BYE, 1);
    out.put_u32(ssrc);
}

/// 64-bit NTP timestamp (seconds since 1900 in the high 32 bits, binary fraction in
/// the low 32 bits) of a wall-clock time. Times before 1970 map to the Unix epoch.
/// The seconds wrap in 2036 as NTP era 1 requires.
pub fn ntp_from_system_time(t: SystemTime) -> u64 {
    let since_unix = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since_unix.as_secs().wrapping_add(NTP_UNIX_OFFSET_SECS);
    let frac = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The middle 32 bits of a 64-bit NTP timestamp, as used in the LSR field.
pub fn compact_ntp(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// `d` in units of 1/65536 second, saturating (the DLSR unit).
fn to_1_65536(d: Duration) -> u32 {
    let units = (d.as_nanos() << 16) / 1_000_000_000;
    u32::try_from(units).unwrap_or(u32::MAX)
}

/// `ntp` advanced by `d` (the seconds wrap as NTP timestamps do).
pub fn ntp_add(ntp: u64, d: Duration) -> u64 {
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    ntp.wrapping_add(d.as_secs() << 32).wrapping_add(frac)
}

/// `d` in units of a `clock_rate` Hz clock, rounded, modulo 2^32.
pub fn clock_ticks(clock_rate: u32, d: Duration) -> u32 {
    let ticks = (d.as_nanos() * u128::from(clock_rate) + 500_000_000) / 1_000_000_000;
    // Truncation is the intended modulo-2^32 wrap of RTP timestamps.
    ticks as u32
}

const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;

/// Receiver statistics about one back-end source, for the receiver reports the proxy
/// sends to the back end (RFC 3550 appendix A.1 sequence tracking, A.3 loss, A.8
/// jitter).
///
/// Feed it the headers of the packets as received from the back end (parse before
/// [`TrackContinuity::rewrite_rtp`](crate::TrackContinuity::rewrite_rtp) rewrites
/// them), and the back end's sender reports. A packet from a new SSRC restarts the
/// statistics for that source.
#[derive(Clone, Debug)]
pub struct ReceptionStats {
    clock_rate: u32,
    source: Option<SourceStats>,
    last_sr: Option<(u32 /*ssrc*/, u32 /*lsr*/, Instant)>,
}

#[derive(Clone, Debug)]
struct SourceStats {
    ssrc: u32,
    max_seq: u16,
    /// Sequence number wrap-arounds, shifted left by 16.
    cycles: u32,
    base_seq: u32,
    /// Sequence number (plus one) of the last packet of a large jump, for resync.
    bad_seq: Option<u16>,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Arrival time reference for the transit computation.
    epoch: Instant,
    transit: Option<u32>,
    /// Jitter scaled by 16 (A.8); 64 bits so hostile timestamps can't overflow it.
    jitter: u64,
}

impl SourceStats {
    fn new(ssrc: u32, seq: u16, arrival: Instant) -> SourceStats {
        SourceStats {
            ssrc,
            max_seq: seq,
            cycles: 0,
            base_seq: u32::from(seq),
            bad_seq: None,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            epoch: arrival,
            transit: None,
            jitter: 0,
        }
    }

    /// Restart sequence tracking at `seq` (A.1 init_seq).
    fn init_seq(&mut self, seq: u16) {
        self.max_seq = seq;
        self.cycles = 0;
        self.base_seq = u32::from(seq);
        self.bad_seq = None;
        self.received = 0;
        self.expected_prior = 0;
        self.received_prior = 0;
    }

    /// A.1 update_seq; returns whether the packet counts as received.
    fn update_seq(&mut self, seq: u16) -> bool {
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(1 << 16);
            }
            self.max_seq = seq;
        } else if udelta <= u16::MAX - MAX_MISORDER {
            // A large jump: accept it only when the next packet confirms it.
            if self.bad_seq == Some(seq) {
                self.init_seq(seq);
            } else {
                self.bad_seq = Some(seq.wrapping_add(1));
                return false;
            }
        }
        // Otherwise a duplicate or reordered packet: counted, max unchanged.
        self.received = self.received.wrapping_add(1);
        true
    }

    fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }
}

impl ReceptionStats {
    /// Statistics for a source with the given RTP clock rate (Hz).
    pub fn new(clock_rate: u32) -> Self {
        ReceptionStats {
            clock_rate,
            source: None,
            last_sr: None,
        }
    }

    /// Account for one RTP packet received from the back end at `arrival`.
    pub fn on_rtp(&mut self, hdr: &RtpHeader, arrival: Instant) {
        let source = match &mut self.source {
            Some(s) if s.ssrc == hdr.ssrc => s,
            slot => slot.insert(SourceStats::new(hdr.ssrc, hdr.sequence, arrival)),
        };
        if !source.update_seq(hdr.sequence) {
            return;
        }
        // A.8: transit time in timestamp units; the arrival clock's origin cancels out.
        let arrival_ts = clock_ticks(
            self.clock_rate,
            arrival.saturating_duration_since(source.epoch),
        );
        let transit = arrival_ts.wrapping_sub(hdr.timestamp);
        if let Some(prev) = source.transit {
            let d = u64::from((transit.wrapping_sub(prev) as i32).unsigned_abs());
            // jitter += |d| - jitter/16, in the scaled-by-16 representation. Bounded by
            // 16 * 2^31, and (jitter + 8) >> 4 <= jitter, so this neither overflows
            // nor underflows.
            source.jitter = source.jitter + d - ((source.jitter + 8) >> 4);
        }
        source.transit = Some(transit);
    }

    /// Remember a sender report from the back end (for LSR and DLSR).
    pub fn on_sender_report(&mut self, sr: &SenderInfo, arrival: Instant) {
        self.last_sr = Some((sr.ssrc, compact_ntp(sr.ntp), arrival));
    }

    /// The report block to send now about the current source, or `None` before any
    /// packet. Starts a new reporting interval (for the fraction lost).
    /// Packets lost so far (expected less received, never negative: duplicates
    /// do not make it go below zero), since the first packet or the last resync.
    pub fn cumulative_lost(&self) -> u64 {
        self.source.as_ref().map_or(0, |s| {
            let expected = s.extended_max().wrapping_sub(s.base_seq).wrapping_add(1);
            u64::from(expected.saturating_sub(s.received))
        })
    }

    pub fn report_block(&mut self, now: Instant) -> Option<ReportBlock> {
        let s = self.source.as_mut()?;
        let extended_max = s.extended_max();
        let expected = extended_max.wrapping_sub(s.base_seq).wrapping_add(1);
        let lost = i64::from(expected) - i64::from(s.received);
        let cumulative_lost = lost.clamp(-0x80_0000, 0x7f_ffff) as i32 as u32 & 0x00ff_ffff;

        let expected_interval = expected.wrapping_sub(s.expected_prior);
        let received_interval = s.received.wrapping_sub(s.received_prior);
        s.expected_prior = expected;
        s.received_prior = s.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };

        let (lsr, dlsr) = match self.last_sr {
            Some((ssrc, lsr, at)) if ssrc == s.ssrc => {
                (lsr, to_1_65536(now.saturating_duration_since(at)))
            }
            _ => (0, 0),
        };
        Some(ReportBlock {
            ssrc: s.ssrc,
            fraction_lost,
            cumulative_lost,
            highest_seq: extended_max,
            jitter: u32::try_from(s.jitter >> 4).unwrap_or(u32::MAX),
            lsr,
            dlsr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compound packet as GStreamer/live555 senders emit it: SR with one report
    /// block, then SDES with CNAME "user2166734468@host-5ebcdfb5" (the CNAME from
    /// captures/gst-rtsp-server-tcp.txt).
    fn sr_sdes_compound() -> Vec<u8> {
        let mut b = vec![
            0x81, 200, 0x00, 0x0c, // SR, RC=1, length 12 words
            0xdc, 0x74, 0xcd, 0x2d, // SSRC
            0xec, 0xb4, 0x5e, 0x57, // NTP seconds
            0x80, 0x00, 0x00, 0x00, // NTP fraction (0.5 s)
            0xf0, 0x7a, 0x99, 0x75, // RTP timestamp
            0x00, 0x00, 0x01, 0x2c, // packet count 300
            0x00, 0x01, 0x86, 0xa0, // octet count 100000
            // report block
            0x11, 0x22, 0x33, 0x44, 0x19, 0x00, 0x00, 0x05, 0x00, 0x01, 0x55, 0x8e, 0x00, 0x00,
            0x00, 0x20, 0x5e, 0x57, 0x80, 0x00, 0x00, 0x00, 0x40, 0x00,
        ];
        let cname = b"user2166734468@host-5ebcdfb5";
        // SDES: ssrc(4) + type(1) + len(1) + 28 + terminator -> 34 -> pad to 36
        b.extend_from_slice(&[0x81, 202, 0x00, 0x09, 0xdc, 0x74, 0xcd, 0x2d, 1, 28]);
        b.extend_from_slice(cname);
        b.extend_from_slice(&[0, 0]);
        b
    }

    #[test]
    fn parses_sr_sdes_compound() {
        let b = sr_sdes_compound();
        assert!(is_valid_compound(&b));
        let srs = sender_reports(&b);
        assert_eq!(
            srs,
            vec![SenderInfo {
                ssrc: 0xdc74cd2d,
                ntp: 0xecb4_5e57_8000_0000,
                rtp_timestamp: 4_034_566_517,
                packet_count: 300,
                octet_count: 100_000,
            }]
        );
        let blocks = report_blocks(&b);
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].0, 0xdc74cd2d);
        assert_eq!(
            blocks[0].1,
            ReportBlock {
                ssrc: 0x11223344,
                fraction_lost: 0x19,
                cumulative_lost: 5,
                highest_seq: 0x1558e,
                jitter: 32,
                lsr: 0x5e57_8000,
                dlsr: 0x4000,
            }
        );
        assert!(bye_ssrcs(&b).is_empty());
        assert!(receiver_report_ssrcs(&b).is_empty());
        let kinds: Vec<u8> = packets(&b).map(|p| p.packet_type).collect();
        assert_eq!(kinds, vec![PT_SR, PT_SDES]);
    }

    #[test]
    fn truncated_compound_keeps_complete_packets() {
        let b = sr_sdes_compound();
        // Cut inside the SDES: the SR is still reported, the compound is invalid.
        let cut = &b[..b.len() - 3];
        assert!(!is_valid_compound(cut));
        assert_eq!(sender_reports(cut).len(), 1);
        let mut it = packets(cut);
        assert_eq!(it.next().map(|p| p.packet_type), Some(PT_SR));
        assert_eq!(it.next(), None);
        assert!(it.stopped_early());
        // Cut inside the SR: nothing.
        assert!(sender_reports(&b[..20]).is_empty());
        assert!(!is_valid_compound(&b[..20]));
        // An SR whose declared length is too short for the sender info.
        let short_sr = [0x80, 200, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8];
        assert!(sender_reports(&short_sr).is_empty());
    }

    #[test]
    fn validity_rules() {
        let mut rr = BytesMut::new();
        build_receiver_report(&mut rr, 7, &[], "x");
        assert!(is_valid_compound(&rr));
        // Trailing garbage.
        let mut extra = rr.to_vec();
        extra.push(0);
        assert!(!is_valid_compound(&extra));
        // Must start with SR or RR.
        let bye_only = [0x81, PT_BYE, 0, 1, 0, 0, 0, 1];
        assert!(!is_valid_compound(&bye_only));
        assert_eq!(bye_ssrcs(&bye_only), vec![1]);
        // Wrong version.
        let mut v1 = rr.to_vec();
        v1[0] = 0x40;
        assert!(!is_valid_compound(&v1));
        assert!(receiver_report_ssrcs(&v1).is_empty());
        // Empty buffer.
        assert!(!is_valid_compound(&[]));
        // Padding on the first of two packets.
        let mut padded_first = vec![0xa0, PT_RR, 0, 1, 0, 0, 0, 4];
        padded_first.extend_from_slice(&[0x80, PT_RR, 0, 1, 0, 0, 0, 9]);
        assert!(!is_valid_compound(&padded_first));
        // Padding on the last packet is fine.
        let mut padded_last = vec![0x80, PT_RR, 0, 1, 0, 0, 0, 9];
        padded_last.extend_from_slice(&[0xa0, PT_RR, 0, 2, 0, 0, 0, 4, 0, 0, 0, 4]);
        assert!(is_valid_compound(&padded_last));
        assert_eq!(receiver_report_ssrcs(&padded_last), vec![9, 4]);
        // Padding count of zero or past the body.
        let bad_pad0 = [0xa0, PT_RR, 0, 1, 0, 0, 0, 0];
        assert!(!is_valid_compound(&bad_pad0));
        let bad_pad = [0xa0, PT_RR, 0, 1, 0, 0, 0, 5];
        assert!(!is_valid_compound(&bad_pad));
        assert!(receiver_report_ssrcs(&bad_pad).is_empty());
    }

    #[test]
    fn packet_count_is_bounded() {
        let mut b = Vec::new();
        b.extend_from_slice(&[0x80, PT_RR, 0, 1, 0, 0, 0, 1]);
        for _ in 0..MAX_COMPOUND_PACKETS + 10 {
            b.extend_from_slice(&[0x80, PT_APP, 0, 0]);
        }
        assert_eq!(packets(&b).count(), MAX_COMPOUND_PACKETS);
        assert!(!is_valid_compound(&b));
        let mut it = packets(&b);
        it.by_ref().for_each(drop);
        assert!(it.stopped_early());
    }

    #[test]
    fn receiver_report_round_trip() {
        let blocks = [
            ReportBlock {
                ssrc: 0xdeadbeef,
                fraction_lost: 12,
                cumulative_lost: 0x00ff_fffe, // -2, 24-bit
                highest_seq: 0x0003_0010,
                jitter: 77,
                lsr: 0x1234_5678,
                dlsr: 65536,
            },
            ReportBlock {
                ssrc: 2,
                fraction_lost: 0,
                cumulative_lost: 0xffff_ffff, // only 24 bits are sent
                highest_seq: 1,
                jitter: 0,
                lsr: 0,
                dlsr: 0,
            },
        ];
        let mut out = BytesMut::new();
        build_receiver_report(&mut out, 0xabcdef01, &blocks, "rtsp-proxy@host");
        assert!(is_valid_compound(&out));
        assert_eq!(out.len() % 4, 0);
        assert_eq!(receiver_report_ssrcs(&out), vec![0xabcdef01]);
        let parsed = report_blocks(&out);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0], (0xabcdef01, blocks[0]));
        assert_eq!(parsed[1].1.cumulative_lost, 0x00ff_ffff);
        // SDES chunk: CNAME present and terminated.
        let sdes = packets(&out).nth(1).unwrap();
        assert_eq!(sdes.packet_type, PT_SDES);
        assert_eq!(sdes.count, 1);
        assert_eq!(&sdes.body[..4], &0xabcdef01u32.to_be_bytes());
        assert_eq!(sdes.body[4], 1);
        assert_eq!(usize::from(sdes.body[5]), "rtsp-proxy@host".len());
        assert_eq!(&sdes.body[6..6 + 15], b"rtsp-proxy@host");
        assert!(sdes.body[21..].iter().all(|&b| b == 0));
        assert!(!sdes.body[21..].is_empty());
    }

    #[test]
    fn sdes_padding_for_every_cname_length() {
        for n in 0..=300usize {
            let cname: String = "c".repeat(n);
            let mut out = BytesMut::new();
            build_receiver_report(&mut out, 1, &[], &cname);
            assert!(is_valid_compound(&out), "cname length {n}");
            let sdes = packets(&out).nth(1).unwrap();
            let len = n.min(255);
            assert_eq!(usize::from(sdes.body[5]), len);
            // At least one zero byte after the item.
            assert_eq!(sdes.body[6 + len], 0);
        }
        // Multi-byte characters are cut on a boundary.
        let cname = "é".repeat(200); // 400 bytes
        let mut out = BytesMut::new();
        build_receiver_report(&mut out, 1, &[], &cname);
        let sdes = packets(&out).nth(1).unwrap();
        assert_eq!(sdes.body[5], 254);
        assert!(std::str::from_utf8(&sdes.body[6..6 + 254]).is_ok());
    }

    #[test]
    fn receiver_report_caps_block_count() {
        let block = ReportBlock {
            ssrc: 1,
            fraction_lost: 0,
            cumulative_lost: 0,
            highest_seq: 0,
            jitter: 0,
            lsr: 0,
            dlsr: 0,
        };
        let blocks = vec![block; 40];
        let mut out = BytesMut::new();
        build_receiver_report(&mut out, 9, &blocks, "n");
        assert!(is_valid_compound(&out));
        assert_eq!(report_blocks(&out).len(), MAX_REPORT_BLOCKS);
        assert_eq!(out[0] & 0x1f, 31);
    }

    #[test]
    fn sender_report_round_trip() {
        let info = SenderInfo {
            ssrc: 0x01020304,
            ntp: 0xe000_0001_4000_0000,
            rtp_timestamp: 0xfffffff0,
            packet_count: 12,
            octet_count: 3456,
        };
        let mut out = BytesMut::new();
        build_sender_report(&mut out, &info, "proxy");
        assert!(is_valid_compound(&out));
        assert_eq!(sender_reports(&out), vec![info]);
        assert!(report_blocks(&out).is_empty());
        assert_eq!(&out[..4], &[0x80, 200, 0, 6]);
        assert_eq!(packets(&out).count(), 2);
    }

    #[test]
    fn bye_round_trip_and_multi_source_bye() {
        let mut out = BytesMut::new();
        build_bye(&mut out, 0x55667788);
        assert!(is_valid_compound(&out));
        assert_eq!(bye_ssrcs(&out), vec![0x55667788]);
        assert_eq!(receiver_report_ssrcs(&out), vec![0x55667788]);

        // SR + BYE with two sources and a reason.
        let mut b = sr_sdes_compound();
        b.extend_from_slice(&[
            0x82, PT_BYE, 0, 4, 0, 0, 0, 1, 0, 0, 0, 2, 4, b'g', b'o', b'n',
        ]);
        b.extend_from_slice(&[b'e', 0, 0, 0]);
        assert!(is_valid_compound(&b));
        assert_eq!(bye_ssrcs(&b), vec![1, 2]);
        // Source count larger than the packet: bounded by the length.
        let lying = [0x9f, PT_BYE, 0, 1, 0, 0, 0, 3];
        assert_eq!(bye_ssrcs(&lying), vec![3]);
        // BYE with zero sources.
        assert!(bye_ssrcs(&[0x80, PT_BYE, 0, 0]).is_empty());
    }

    #[test]
    fn ntp_conversion() {
        assert_eq!(ntp_from_system_time(UNIX_EPOCH), NTP_UNIX_OFFSET_SECS << 32);
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 500_000_000);
        let ntp = ntp_from_system_time(t);
        assert_eq!(ntp >> 32, 1_700_000_000 + NTP_UNIX_OFFSET_SECS);
        assert_eq!(ntp & 0xffff_ffff, 0x8000_0000);
        let t = UNIX_EPOCH + Duration::new(0, 250_000_000);
        assert_eq!(ntp_from_system_time(t) & 0xffff_ffff, 0x4000_0000);
        // Before 1970: clamped.
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(ntp_from_system_time(before), NTP_UNIX_OFFSET_SECS << 32);
        // After 2036 the seconds wrap (NTP era 1).
        let era1 = UNIX_EPOCH + Duration::from_secs((1u64 << 32) - NTP_UNIX_OFFSET_SECS + 5);
        assert_eq!(ntp_from_system_time(era1) >> 32, 5);
        // Monotonic over a second.
        let a = ntp_from_system_time(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123));
        let b = ntp_from_system_time(UNIX_EPOCH + Duration::from_millis(1_700_000_000_124));
        assert!(b > a);
    }

    #[test]
    fn compact_ntp_takes_middle_bits() {
        assert_eq!(compact_ntp(0x1122_3344_5566_7788), 0x3344_5566);
        assert_eq!(compact_ntp(0), 0);
        assert_eq!(compact_ntp(u64::MAX), u32::MAX);
    }

    fn hdr(seq: u16, ts: u32, ssrc: u32) -> RtpHeader {
        RtpHeader {
            marker: false,
            payload_type: 96,
            sequence: seq,
            timestamp: ts,
            ssrc,
            payload_offset: 12,
            payload_len: 100,
        }
    }

    #[test]
    fn reception_stats_none_before_packets() {
        let mut s = ReceptionStats::new(90_000);
        assert_eq!(s.report_block(Instant::now()), None);
        s.on_sender_report(
            &SenderInfo {
                ssrc: 1,
                ntp: 0,
                rtp_timestamp: 0,
                packet_count: 0,
                octet_count: 0,
            },
            Instant::now(),
        );
        assert_eq!(s.report_block(Instant::now()), None);
    }

    #[test]
    fn reception_stats_loss_and_wrap() {
        let t0 = Instant::now();
        let mut s = ReceptionStats::new(8000);
        // 65530..=65535, 0..=9 with 3 lost (65534, 2, 3); 20 ms per packet of 160 ticks.
        let seqs: Vec<u16> = (65530u16..=65535).chain(0..10).collect();
        let mut sent = 0;
        for (i, &seq) in seqs.iter().enumerate() {
            if matches!(seq, 65534 | 2 | 3) {
                continue;
            }
            let at = t0 + Duration::from_millis(20 * i as u64);
            s.on_rtp(&hdr(seq, 1000 + 160 * i as u32, 42), at);
            sent += 1;
        }
        assert_eq!(sent, 13);
        let b = s.report_block(t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(b.ssrc, 42);
        assert_eq!(b.highest_seq, 0x0001_0009);
        assert_eq!(b.cumulative_lost, 3);
        assert_eq!(b.fraction_lost, (3 * 256 / 16) as u8);
        // Perfect pacing: no jitter.
        assert_eq!(b.jitter, 0);
        assert_eq!((b.lsr, b.dlsr), (0, 0));

        // Next interval: no loss -> fraction 0, cumulative unchanged.
        for i in 16..20u32 {
            let at = t0 + Duration::from_millis(20 * u64::from(i));
            s.on_rtp(&hdr((i - 6) as u16, 1000 + 160 * i, 42), at);
        }
        let b = s.report_block(t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(b.fraction_lost, 0);
        assert_eq!(b.cumulative_lost, 3);
        assert_eq!(b.highest_seq, 0x0001_000d);
        // No packets since the last report: fraction 0.
        let b = s.report_block(t0 + Duration::from_secs(3)).unwrap();
        assert_eq!(b.fraction_lost, 0);
    }

    #[test]
    fn reception_stats_duplicates_give_negative_loss() {
        let t0 = Instant::now();
        let mut s = ReceptionStats::new(90_000);
        for seq in [10u16, 11, 11, 12, 12] {
            s.on_rtp(&hdr(seq, 0, 5), t0);
        }
        let b = s.report_block(t0).unwrap();
        // Expected 3, received 5: -2 in 24-bit two's complement.
        assert_eq!(b.cumulative_lost, 0x00ff_fffe);
        assert_eq!(b.fraction_lost, 0);
    }

    #[test]
    fn reception_stats_jitter() {
        let t0 = Instant::now();
        let mut s = ReceptionStats::new(90_000);
        // Packets 40 ms apart in timestamp, arriving alternately 10 ms early / late.
        for i in 0..200u32 {
            let wobble: i64 = if i % 2 == 0 { 10 } else { -10 };
            let at_ms = 100 + 40 * i64::from(i) + wobble;
            let at = t0 + Duration::from_millis(at_ms as u64);
            s.on_rtp(&hdr(i as u16, 3600 * i, 9), at);
        }
        let b = s.report_block(t0 + Duration::from_secs(10)).unwrap();
        // |D| is 20 ms = 1800 ticks every packet; the estimate converges to 1800.
        assert!((1700..=1800).contains(&b.jitter), "jitter {}", b.jitter);
    }

    #[test]
    fn reception_stats_lsr_dlsr() {
        let t0 = Instant::now();
        let mut s = ReceptionStats::new(90_000);
        s.on_rtp(&hdr(1, 0, 77), t0);
        let sr = SenderInfo {
            ssrc: 77,
            ntp: 0x0000_1234_5678_0000,
            rtp_timestamp: 0,
            packet_count: 1,
            octet_count: 1,
        };
        s.on_sender_report(&sr, t0);
        let b = s.report_block(t0 + Duration::from_millis(1500)).unwrap();
        assert_eq!(b.lsr, 0x1234_5678);
        assert_eq!(b.dlsr, 98304); // 1.5 * 65536
                                   // An SR from another SSRC is not reported for this source.
        s.on_sender_report(&SenderInfo { ssrc: 78, ..sr }, t0);
        let b = s.report_block(t0).unwrap();
        assert_eq!((b.lsr, b.dlsr), (0, 0));
    }

    #[test]
    fn reception_stats_resync_and_new_ssrc() {
        let t0 = Instant::now();
        let mut s = ReceptionStats::new(90_000);
        for seq in 100..110u16 {
            s.on_rtp(&hdr(seq, 0, 1), t0);
        }
        // One stray packet far away is ignored...
        s.on_rtp(&hdr(30_000, 0, 1), t0);
        let b = s.report_block(t0).unwrap();
        assert_eq!(b.highest_seq, 109);
        assert_eq!(b.cumulative_lost, 0);
        // ...two consecutive ones re-synchronize.
        s.on_rtp(&hdr(40_000, 0, 1), t0);
        s.on_rtp(&hdr(40_001, 0, 1), t0);
        let b = s.report_block(t0).unwrap();
        assert_eq!(b.highest_seq, 40_001);
        assert_eq!(b.cumulative_lost, 0);
        // A new SSRC restarts the statistics.
        s.on_rtp(&hdr(7, 0, 2), t0);
        let b = s.report_block(t0).unwrap();
        assert_eq!(b.ssrc, 2);
        assert_eq!(b.highest_seq, 7);
        assert_eq!(b.cumulative_lost, 0);
    }

    #[test]
    fn clock_ticks_rounds_and_wraps() {
        assert_eq!(clock_ticks(90_000, Duration::from_secs(1)), 90_000);
        assert_eq!(clock_ticks(90_000, Duration::from_nanos(5_556)), 1); // 0.50004 tick
        assert_eq!(clock_ticks(90_000, Duration::from_nanos(5_555)), 0);
        assert_eq!(clock_ticks(8_000, Duration::from_millis(20)), 160);
        // 2^32 / 90000 s = 47721.858... s: wraps.
        let secs = 47_722u64;
        assert_eq!(
            clock_ticks(90_000, Duration::from_secs(secs)),
            (90_000u64 * secs % (1u64 << 32)) as u32
        );
        assert_eq!(clock_ticks(0, Duration::from_secs(100)), 0);
    }
}
