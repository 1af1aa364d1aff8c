//! What a receiver counts: per-client packet accounting (sequence loss, lost
//! frames, latencies) and the merged summary across clients.

use std::fmt::Write as _;

use crate::gen::read_probe;
use crate::probe::Probe;

/// p50, p99 and max of a sample set (nearest-rank percentiles).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Percentiles {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest sample.
    pub max: u64,
}

/// Nearest-rank percentile `p` (0..=100) of sorted samples; `None` when empty.
pub fn percentile_sorted(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Sorts `v` and gives its percentiles; `None` when empty.
pub fn percentiles(v: &mut [u64]) -> Option<Percentiles> {
    v.sort_unstable();
    Some(Percentiles {
        count: v.len(),
        p50: percentile_sorted(v, 50.0)?,
        p99: percentile_sorted(v, 99.0)?,
        max: *v.last()?,
    })
}

/// RTP sequence accounting with 16-bit wrap-around and reordering: loss is
/// expected (highest − lowest extended sequence + 1) minus received.
#[derive(Clone, Debug, Default)]
pub struct SeqTracker {
    started: bool,
    lowest: i64,
    highest: i64,
    received: u64,
    reordered: u64,
}

impl SeqTracker {
    /// Counts one packet.
    pub fn on_seq(&mut self, seq: u16) {
        self.received += 1;
        if !self.started {
            self.started = true;
            self.lowest = i64::from(seq);
            self.highest = self.lowest;
            return;
        }
        let delta = i64::from(seq.wrapping_sub(self.highest as u16) as i16);
        let ext = self.highest + delta;
        if ext > self.highest {
            self.highest = ext;
        } else {
            self.reordered += 1;
            self.lowest = self.lowest.min(ext);
        }
    }

    /// Packets received.
    #[allow(dead_code)] // used by the tests
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets expected from the lowest to the highest sequence seen.
    pub fn expected(&self) -> u64 {
        if self.started {
            (self.highest - self.lowest + 1) as u64
        } else {
            0
        }
    }

    /// Gaps in the sequence (duplicates make up for losses, as in RFC 3550).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    /// Packets that arrived after a later one.
    pub fn reordered(&self) -> u64 {
        self.reordered
    }
}

const RING: usize = 256;

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    used: bool,
    frame: u64,
    got: u32,
    /// Packets in the frame (index of the last packet + 1), 0 while unknown.
    expected: u32,
}

/// Lost-frame accounting: a frame (known by the probe's frame counter) is
/// complete when its last packet and all packets before it arrived. Counting
/// starts at the first packet with index 0 (the start of a frame); frames
/// are judged once a frame `RING` later arrived, or at [`FrameTracker::finish`].
#[derive(Clone, Debug)]
pub struct FrameTracker {
    slots: Vec<Slot>,
    start: Option<u64>,
    next_final: u64,
    highest: u64,
    complete: u64,
    lost: u64,
    late: u64,
}

impl Default for FrameTracker {
    fn default() -> Self {
        FrameTracker {
            slots: vec![Slot::default(); RING],
            start: None,
            next_final: 0,
            highest: 0,
            complete: 0,
            lost: 0,
            late: 0,
        }
    }
}

impl FrameTracker {
    /// Counts one packet of frame `frame`, index `index`, `last` if it ends the frame.
    pub fn on_packet(&mut self, frame: u32, index: u16, last: bool) {
        let frame = u64::from(frame);
        if self.start.is_none() {
            if index != 0 {
                return;
            }
            self.start = Some(frame);
            self.next_final = frame;
            self.highest = frame;
        }
        if frame < self.next_final {
            self.late += 1;
            return;
        }
        while frame >= self.next_final + RING as u64 {
            self.finalize(self.next_final);
            self.next_final += 1;
        }
        let slot = &mut self.slots[(frame % RING as u64) as usize];
        if !slot.used || slot.frame != frame {
            *slot = Slot {
                used: true,
                frame,
                got: 0,
                expected: 0,
            };
        }
        slot.got += 1;
        if last {
            slot.expected = u32::from(index) + 1;
        }
        self.highest = self.highest.max(frame);
    }

    fn is_complete(&self, frame: u64) -> bool {
        let s = &self.slots[(frame % RING as u64) as usize];
        s.used && s.frame == frame && s.expected > 0 && s.got >= s.expected
    }

    fn finalize(&mut self, frame: u64) {
        if self.is_complete(frame) {
            self.complete += 1;
        } else {
            self.lost += 1;
        }
        self.slots[(frame % RING as u64) as usize].used = false;
    }

    /// Judges every frame still open. The newest frame, when incomplete, is
    /// taken as cut by the end of the measurement and not counted.
    pub fn finish(&mut self) {
        if self.start.is_none() {
            return;
        }
        let mut end = self.highest;
        if !self.is_complete(end) {
            if end == 0 || end < self.next_final {
                return;
            }
            end -= 1;
        }
        while self.next_final <= end {
            self.finalize(self.next_final);
            self.next_final += 1;
        }
        self.start = None;
    }

    /// Complete frames so far.
    pub fn complete(&self) -> u64 {
        self.complete
    }

    /// Lost (incomplete or entirely missing) frames so far.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Packets of frames already judged.
    #[allow(dead_code)] // used by the tests
    pub fn late(&self) -> u64 {
        self.late
    }
}

/// Caps a nanosecond latency into the u32 sample store (4.29 s).
fn sample(ns: i128) -> u32 {
    ns.clamp(0, i128::from(u32::MAX)) as u32
}

/// Everything one client counted.
#[derive(Clone, Debug)]
pub struct ClientStats {
    /// Measured window, Unix ns: packets received in `[start, end)` are counted.
    pub window: (u64, u64),
    /// When PLAY was sent (Unix ns).
    pub play_sent_ns: Option<u64>,
    /// First RTP packet after PLAY (Unix ns).
    pub first_packet_ns: Option<u64>,
    /// First packet of a keyframe (probe index 0, keyframe flag) after PLAY.
    pub first_keyframe_ns: Option<u64>,
    /// RTP packets in the window.
    pub packets: u64,
    /// RTP bytes (header included) in the window.
    pub bytes: u64,
    /// Packets whose probe could not be read.
    pub no_probe: u64,
    /// RTCP packets received (whole run).
    pub rtcp: u64,
    /// Truncated datagrams.
    pub truncated: u64,
    /// Sequence accounting.
    pub seq: SeqTracker,
    /// Frame accounting.
    pub frames: FrameTracker,
    /// Per-packet latency samples, ns.
    pub packet_latency: Vec<u32>,
    /// Per-frame latency samples (marker packet receive − first packet send), ns.
    pub frame_latency: Vec<u32>,
    /// First sequence number announced by RTP-Info and the one that came.
    pub rtp_info_seq: Option<u16>,
    /// Sequence of the first packet received.
    pub first_seq: Option<u16>,
    /// Why the client failed, if it did.
    pub error: Option<String>,
}

impl ClientStats {
    /// Stats for a window, with room for `expected_packets` samples.
    pub fn new(window: (u64, u64), expected_packets: usize) -> Self {
        ClientStats {
            window,
            play_sent_ns: None,
            first_packet_ns: None,
            first_keyframe_ns: None,
            packets: 0,
            bytes: 0,
            no_probe: 0,
            rtcp: 0,
            truncated: 0,
            seq: SeqTracker::default(),
            frames: FrameTracker::default(),
            packet_latency: Vec::with_capacity(expected_packets),
            frame_latency: Vec::with_capacity(expected_packets / 8 + 16),
            rtp_info_seq: None,
            first_seq: None,
            error: None,
        }
    }

    /// Counts one RTP packet (whole packet) received at `recv_ns`.
    #[inline]
    pub fn on_rtp(&mut self, pkt: &[u8], recv_ns: u64) {
        if pkt.len() < 12 {
            self.no_probe += 1;
            return;
        }
        let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
        self.on_rtp_parts(seq, read_probe(pkt), pkt.len(), recv_ns);
    }

    /// Counts one RTP packet already parsed (by a WebRTC stack): its
    /// sequence number, its probe if the payload has one, and its size
    /// (header included), received at `recv_ns`.
    #[inline]
    pub fn on_rtp_parts(&mut self, seq: u16, probe: Option<Probe>, len: usize, recv_ns: u64) {
        if self.first_packet_ns.is_none() {
            self.first_packet_ns = Some(recv_ns);
            self.first_seq = Some(seq);
        }
        if self.first_keyframe_ns.is_none() {
            if let Some(p) = probe {
                if p.is_keyframe() && p.index == 0 {
                    self.first_keyframe_ns = Some(recv_ns);
                }
            }
        }
        if recv_ns < self.window.0 || recv_ns >= self.window.1 {
            return;
        }
        self.packets += 1;
        self.bytes += len as u64;
        self.seq.on_seq(seq);
        let Some(p) = probe else {
            self.no_probe += 1;
            return;
        };
        self.frames.on_packet(p.frame, p.index, p.is_last());
        if self.packet_latency.len() < 4_000_000 {
            self.packet_latency
                .push(sample(i128::from(recv_ns) - i128::from(p.send_ns)));
        }
        if p.is_last() && self.frame_latency.len() < 1_000_000 {
            self.frame_latency
                .push(sample(i128::from(recv_ns) - i128::from(p.frame_send_ns)));
        }
    }

    /// Ends the accounting (judges open frames).
    pub fn finish(&mut self) {
        self.frames.finish();
    }
}

/// Aggregated figures of many clients, as `key=value` pairs (numbers) in a fixed order.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Ordered figures.
    pub values: Vec<(String, f64)>,
    /// Client errors (first few).
    pub errors: Vec<String>,
}

impl Summary {
    /// Sets a figure.
    pub fn set(&mut self, key: &str, v: f64) {
        if let Some(e) = self.values.iter_mut().find(|(k, _)| k == key) {
            e.1 = v;
        } else {
            self.values.push((key.to_owned(), v));
        }
    }

    /// A figure.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// `key=value` lines.
    pub fn to_report(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.values {
            let _ = writeln!(s, "{k}={v}");
        }
        for e in &self.errors {
            let _ = writeln!(s, "#error={}", e.replace('\n', " "));
        }
        s
    }

    /// Parses [`Summary::to_report`] output.
    pub fn from_report(text: &str) -> Summary {
        let mut s = Summary::default();
        for line in text.lines() {
            if let Some(e) = line.strip_prefix("#error=") {
                s.errors.push(e.to_owned());
            } else if let Some((k, v)) = line.split_once('=') {
                if let Ok(v) = v.trim().parse::<f64>() {
                    s.values.push((k.trim().to_owned(), v));
                }
            }
        }
        s
    }

    fn set_pct(&mut self, prefix: &str, p: Option<Percentiles>, scale: f64) {
        let p = p.unwrap_or_default();
        self.set(&format!("{prefix}_n"), p.count as f64);
        let f = |v: u64| {
            if p.count == 0 {
                f64::NAN
            } else {
                v as f64 / scale
            }
        };
        self.set(&format!("{prefix}_p50"), f(p.p50));
        self.set(&format!("{prefix}_p99"), f(p.p99));
        self.set(&format!("{prefix}_max"), f(p.max));
    }
}

/// Merges the clients' stats into the summary figures (latencies in µs, start-up times in ms).
pub fn summarize(clients: &mut [ClientStats], requested: usize, window_s: f64) -> Summary {
    let mut s = Summary::default();
    for c in clients.iter_mut() {
        c.finish();
    }
    let ok: Vec<&ClientStats> = clients.iter().filter(|c| c.error.is_none()).collect();
    s.set("clients_requested", requested as f64);
    s.set("clients_ok", ok.len() as f64);
    s.set(
        "clients_failed",
        (clients.len() - ok.len()) as f64 + (requested - clients.len()) as f64,
    );
    s.set("window_s", window_s);
    let packets: u64 = clients.iter().map(|c| c.packets).sum();
    let bytes: u64 = clients.iter().map(|c| c.bytes).sum();
    s.set("packets", packets as f64);
    s.set("bytes", bytes as f64);
    s.set("packets_per_s", packets as f64 / window_s);
    s.set("mbit_per_s", bytes as f64 * 8.0 / window_s / 1e6);
    let per: Vec<u64> = clients.iter().map(|c| c.packets).collect();
    let n = per.len().max(1) as f64;
    s.set("packets_per_client_avg", packets as f64 / n);
    s.set(
        "packets_per_client_min",
        per.iter().copied().min().unwrap_or(0) as f64,
    );
    s.set(
        "packets_per_client_max",
        per.iter().copied().max().unwrap_or(0) as f64,
    );
    s.set("bytes_per_client_avg", bytes as f64 / n);
    let lost: u64 = clients.iter().map(|c| c.seq.lost()).sum();
    let expected: u64 = clients.iter().map(|c| c.seq.expected()).sum();
    s.set("seq_lost", lost as f64);
    s.set(
        "seq_lost_pct",
        if expected > 0 {
            lost as f64 * 100.0 / expected as f64
        } else {
            0.0
        },
    );
    s.set(
        "seq_lost_max_client",
        clients.iter().map(|c| c.seq.lost()).max().unwrap_or(0) as f64,
    );
    s.set(
        "clients_with_loss",
        clients.iter().filter(|c| c.seq.lost() > 0).count() as f64,
    );
    s.set(
        "reordered",
        clients.iter().map(|c| c.seq.reordered()).sum::<u64>() as f64,
    );
    let fc: u64 = clients.iter().map(|c| c.frames.complete()).sum();
    let fl: u64 = clients.iter().map(|c| c.frames.lost()).sum();
    s.set("frames_complete", fc as f64);
    s.set("frames_lost", fl as f64);
    s.set(
        "frames_lost_pct",
        if fc + fl > 0 {
            fl as f64 * 100.0 / (fc + fl) as f64
        } else {
            0.0
        },
    );
    s.set(
        "clients_with_lost_frames",
        clients.iter().filter(|c| c.frames.lost() > 0).count() as f64,
    );
    s.set(
        "no_probe",
        clients.iter().map(|c| c.no_probe).sum::<u64>() as f64,
    );
    s.set(
        "truncated",
        clients.iter().map(|c| c.truncated).sum::<u64>() as f64,
    );
    s.set(
        "rtcp_received",
        clients.iter().map(|c| c.rtcp).sum::<u64>() as f64,
    );
    s.set(
        "rtp_info_mismatch",
        clients
            .iter()
            .filter(|c| matches!((c.rtp_info_seq, c.first_seq), (Some(a), Some(b)) if a != b))
            .count() as f64,
    );

    let mut v: Vec<u64> = Vec::with_capacity(clients.iter().map(|c| c.packet_latency.len()).sum());
    for c in clients.iter() {
        v.extend(c.packet_latency.iter().map(|&x| u64::from(x)));
    }
    s.set_pct("pkt_lat_us", percentiles(&mut v), 1e3);
    v.clear();
    for c in clients.iter() {
        v.extend(c.frame_latency.iter().map(|&x| u64::from(x)));
    }
    s.set_pct("frame_lat_us", percentiles(&mut v), 1e3);
    drop(v);

    let since_play = |f: fn(&ClientStats) -> Option<u64>| -> Vec<u64> {
        clients
            .iter()
            .filter_map(|c| Some(f(c)?.saturating_sub(c.play_sent_ns?)))
            .collect()
    };
    let mut ttfp = since_play(|c| c.first_packet_ns);
    s.set(
        "first_packet_missing",
        (ok.len().saturating_sub(ttfp.len())) as f64,
    );
    s.set_pct("first_packet_ms", percentiles(&mut ttfp), 1e6);
    let mut ttfk = since_play(|c| c.first_keyframe_ns);
    s.set(
        "first_keyframe_missing",
        (ok.len().saturating_sub(ttfk.len())) as f64,
    );
    s.set_pct("first_keyframe_ms", percentiles(&mut ttfk), 1e6);
    s.errors = clients
        .iter()
        .filter_map(|c| c.error.clone())
        .take(5)
        .collect();
    s
}

/// Human-readable lines of a receiver summary.
pub fn describe(s: &Summary) -> String {
    let g = |k: &str| s.get(k).unwrap_or(f64::NAN);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "clients: {} ok, {} failed (of {})",
        g("clients_ok"),
        g("clients_failed"),
        g("clients_requested")
    );
    let _ = writeln!(
        o,
        "delivered: {} packets, {:.1} MB in {:.1} s ({:.0} packets/s, {:.1} Mbit/s); per client {:.0} packets (min {}, max {}), {:.2} MB",
        g("packets"),
        g("bytes") / 1e6,
        g("window_s"),
        g("packets_per_s"),
        g("mbit_per_s"),
        g("packets_per_client_avg"),
        g("packets_per_client_min"),
        g("packets_per_client_max"),
        g("bytes_per_client_avg") / 1e6
    );
    let _ = writeln!(
        o,
        "sequence loss: {} packets ({:.4} %), {} clients with loss, worst client {}; reordered {}",
        g("seq_lost"),
        g("seq_lost_pct"),
        g("clients_with_loss"),
        g("seq_lost_max_client"),
        g("reordered")
    );
    let _ = writeln!(
        o,
        "frames: {} complete, {} lost ({:.4} %), {} clients with lost frames",
        g("frames_complete"),
        g("frames_lost"),
        g("frames_lost_pct"),
        g("clients_with_lost_frames")
    );
    let _ = writeln!(
        o,
        "packet latency us: p50 {:.0}  p99 {:.0}  max {:.0}",
        g("pkt_lat_us_p50"),
        g("pkt_lat_us_p99"),
        g("pkt_lat_us_max")
    );
    let _ = writeln!(
        o,
        "frame latency us:  p50 {:.0}  p99 {:.0}  max {:.0}",
        g("frame_lat_us_p50"),
        g("frame_lat_us_p99"),
        g("frame_lat_us_max")
    );
    let _ = writeln!(
        o,
        "after PLAY, first packet ms: p50 {:.1}  p99 {:.1}  max {:.1};  first keyframe ms: p50 {:.1}  p99 {:.1}  max {:.1} ({} never)",
        g("first_packet_ms_p50"),
        g("first_packet_ms_p99"),
        g("first_packet_ms_max"),
        g("first_keyframe_ms_p50"),
        g("first_keyframe_ms_p99"),
        g("first_keyframe_ms_max"),
        g("first_keyframe_missing")
    );
    let extra = g("no_probe") + g("truncated") + g("rtp_info_mismatch");
    if extra > 0.0 {
        let _ = writeln!(
            o,
            "anomalies: {} packets without probe, {} truncated, {} clients whose first packet was not RTP-Info's seq",
            g("no_probe"),
            g("truncated"),
            g("rtp_info_mismatch")
        );
    }
    for e in &s.errors {
        let _ = writeln!(o, "client error: {e}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_data() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        let p = percentiles(&mut v).unwrap();
        assert_eq!((p.count, p.p50, p.p99, p.max), (100, 50, 99, 100));
        let mut one = vec![7];
        let p = percentiles(&mut one).unwrap();
        assert_eq!((p.p50, p.p99, p.max), (7, 7, 7));
        let mut v = vec![5, 1, 3, 2, 4, 1000, 6, 7, 8, 9];
        let p = percentiles(&mut v).unwrap();
        assert_eq!((p.p50, p.p99, p.max), (5, 1000, 1000));
        assert_eq!(percentiles(&mut []), None);
        assert_eq!(percentile_sorted(&[], 50.0), None);
        assert_eq!(percentile_sorted(&[1, 2, 3, 4], 0.0), Some(1));
    }

    #[test]
    fn seq_loss_across_wrap() {
        let mut t = SeqTracker::default();
        for s in [65533u16, 65534, 65535, 0, 1, 3, 4] {
            t.on_seq(s);
        }
        assert_eq!(t.expected(), 8);
        assert_eq!(t.received(), 7);
        assert_eq!(t.lost(), 1);
        assert_eq!(t.reordered(), 0);
    }

    #[test]
    fn seq_reordering_is_not_loss() {
        let mut t = SeqTracker::default();
        for s in [65534u16, 0, 65535, 1, 2] {
            t.on_seq(s);
        }
        assert_eq!(t.lost(), 0);
        assert_eq!(t.reordered(), 1);
        // A packet older than the first one extends the range backwards.
        let mut t = SeqTracker::default();
        for s in [10u16, 12, 9, 11] {
            t.on_seq(s);
        }
        assert_eq!((t.expected(), t.lost(), t.reordered()), (4, 0, 2));
        let mut t = SeqTracker::default();
        assert_eq!((t.expected(), t.lost()), (0, 0));
        t.on_seq(0);
        assert_eq!((t.expected(), t.lost()), (1, 0));
    }

    fn feed(t: &mut FrameTracker, frame: u32, n: u16, skip: &[u16]) {
        for i in 0..n {
            if !skip.contains(&i) {
                t.on_packet(frame, i, i + 1 == n);
            }
        }
    }

    #[test]
    fn lost_frames() {
        let mut t = FrameTracker::default();
        // Joined mid-frame 9: not counted.
        t.on_packet(9, 3, false);
        t.on_packet(9, 4, true);
        feed(&mut t, 10, 5, &[]);
        feed(&mut t, 11, 5, &[2]); // a middle packet missing
        feed(&mut t, 12, 5, &[4]); // the marker packet missing
                                   // frame 13 missing entirely
        feed(&mut t, 14, 5, &[]);
        feed(&mut t, 15, 3, &[]);
        t.finish();
        assert_eq!(t.complete(), 3, "10, 14, 15");
        assert_eq!(t.lost(), 3, "11, 12, 13");
    }

    #[test]
    fn reordered_frames_and_cut_at_the_end() {
        let mut t = FrameTracker::default();
        t.on_packet(0, 0, false);
        t.on_packet(1, 0, false); // frame 1 starts before frame 0 ends
        t.on_packet(0, 1, true);
        t.on_packet(1, 1, true);
        t.on_packet(2, 0, false); // cut by the end of the window
        t.finish();
        assert_eq!((t.complete(), t.lost()), (2, 0));
    }

    #[test]
    fn frames_judged_after_the_ring() {
        let mut t = FrameTracker::default();
        for f in 0..1000u32 {
            if f % 100 == 50 {
                feed(&mut t, f, 4, &[1]);
            } else {
                feed(&mut t, f, 4, &[]);
            }
        }
        assert!(t.complete() + t.lost() >= 1000 - RING as u64);
        t.finish();
        assert_eq!((t.complete(), t.lost()), (990, 10));
        t.on_packet(5, 0, true);
        assert_eq!(t.late(), 0, "finish resets; a new start is waited for");
    }

    #[test]
    fn client_stats_window_and_latency() {
        use crate::gen::{FrameBuf, Generator, Workload};
        let mut g = Generator::new(Workload::default(), 1, 100, 0);
        let mut f = FrameBuf::default();
        let mut c = ClientStats::new((1_000, 10_000_000), 16);
        c.play_sent_ns = Some(500);
        g.build(1, &mut f);
        f.stamp_all(400);
        c.on_rtp(f.packet(0), 900); // before the window
        assert_eq!(c.packets, 0);
        assert_eq!(c.first_packet_ns, Some(900));
        assert_eq!(c.first_keyframe_ns, None);
        for i in 1..f.packets.len() {
            c.on_rtp(f.packet(i), 2_000);
        }
        g.build(50, &mut f);
        f.stamp_all(3_000);
        for i in 0..f.packets.len() {
            c.on_rtp(f.packet(i), 5_000 + i as u64);
        }
        assert_eq!(c.first_keyframe_ns, Some(5_000));
        assert_eq!(c.seq.lost(), 0);
        let n = f.packets.len() as u64;
        assert_eq!(*c.frame_latency.last().unwrap() as u64, 2_000 + n - 1);
        let mut all = vec![c];
        let s = summarize(&mut all, 1, 1.0);
        // Frame 1 was joined mid-frame (not counted), frame 50 is complete.
        assert_eq!(s.get("frames_complete"), Some(1.0));
        assert_eq!(s.get("first_packet_ms_p50"), Some(400.0 / 1e6));
        let back = Summary::from_report(&s.to_report());
        assert_eq!(back.get("packets"), s.get("packets"));
        assert!(!describe(&s).is_empty());
    }
}
