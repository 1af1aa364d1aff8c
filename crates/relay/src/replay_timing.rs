//! Retiming of a keyframe-cache replay for the one client that gets it.
//!
//! The cached packets carry the timestamps they were relayed with, the keyframe
//! up to a GOP old. A player anchors its clock on the first frame it receives:
//! handed a keyframe from seconds ago and then the live packets, an
//! ffmpeg-based player (mpv, ffplay) stays that far behind live for the whole
//! session, and a client that maps RTP time through the sender report sent at
//! PLAY (which ties the live edge to now) puts its first frame in the past.
//!
//! So a new client's copy of the replay is retimed to end at the live edge:
//! the newest cached frame keeps its timestamp (its remaining packets and the
//! frames after it arrive live, unchanged), and every older cached frame, in
//! its order, gets a timestamp [`REPLAY_FRAME_TICKS`] before the next one. The
//! decoder still gets the whole reference chain from the keyframe on, and the
//! player presents it at once (frames a clock tick apart) and then runs at the
//! live edge, as if it had connected directly; RTP-Info names the retimed
//! first packet, and the first sender report (the live edge at now) agrees
//! with it. Sequence numbers are not touched: the replay still runs straight
//! on into the live packets.
//!
//! Only packets whose timestamp changes are copied; the shared cached and live
//! packets are never written to. [`RetimedReplay`] keeps the last retimed copy
//! for the clients that join before the cache changes (a join storm, as when an
//! NVR reconnects all its clients, then costs one copy per frame, not one per
//! client).

use bytes::{Bytes, BytesMut};

/// Clock ticks between two retimed frames of a replay (at 90 kHz, 11 µs: a
/// 4 s GOP of 120 frames spans 1.3 ms).
pub const REPLAY_FRAME_TICKS: u32 = 1;

/// The replay `packets` (one track, oldest first, as the cache holds them)
/// retimed to end at the newest frame's timestamp, frames [`REPLAY_FRAME_TICKS`]
/// apart. Frames are ranked by timestamp (so B-frames keep their presentation
/// order); packets of one frame keep sharing one timestamp. A packet that is not
/// RTP (never in a cache) is passed on as it is.
pub fn retime_to_live_edge(packets: &[Bytes]) -> Vec<Bytes> {
    let timestamps: Vec<Option<u32>> = packets
        .iter()
        .map(|p| rtp::packet::parse_rtp(p).ok().map(|h| h.timestamp))
        .collect();
    let Some(origin) = timestamps.iter().flatten().next().copied() else {
        return packets.to_vec();
    };
    // Offsets from the first packet, signed (the cache holds at most seconds:
    // far within half the 32-bit timestamp range).
    let offset = |ts: u32| i64::from(ts.wrapping_sub(origin) as i32);
    let mut frames: Vec<i64> = timestamps.iter().flatten().map(|t| offset(*t)).collect();
    frames.sort_unstable();
    frames.dedup();
    let (newest, count) = match frames.last() {
        Some(n) => (*n, frames.len() as i64),
        None => return packets.to_vec(),
    };
    let step = i64::from(REPLAY_FRAME_TICKS);
    packets
        .iter()
        .zip(&timestamps)
        .map(|(pkt, ts)| {
            let Some(ts) = ts else {
                return pkt.clone();
            };
            let rank = frames.binary_search(&offset(*ts)).unwrap_or(0) as i64;
            // Never earlier than the frame's own timestamp: distinct frames are
            // at least a tick apart already.
            let retimed_offset = (newest - (count - 1 - rank) * step).max(offset(*ts));
            let retimed = origin.wrapping_add(retimed_offset as u32);
            if retimed == *ts {
                return pkt.clone();
            }
            let mut copy = BytesMut::from(&pkt[..]);
            rtp::packet::set_timestamp(&mut copy, retimed);
            copy.freeze()
        })
        .collect()
}

/// The last replay retimed, shared (as [`Bytes`] clones) by every client that
/// joins before the cache changes.
#[derive(Debug, Default)]
pub struct RetimedReplay {
    last: Option<(ReplayKey, Vec<Bytes>)>,
}

/// What a cached replay is: its length and its first and last packets'
/// sequence numbers and timestamps (a cache that changed differs in one of
/// them: packets are only ever appended, or the cache starts over at a new
/// keyframe, with new sequence numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReplayKey {
    packets: usize,
    first: (u16, u32),
    last: (u16, u32),
}

impl ReplayKey {
    fn of(packets: &[Bytes]) -> Option<ReplayKey> {
        let seq_ts = |p: &Bytes| {
            rtp::packet::parse_rtp(p)
                .ok()
                .map(|h| (h.sequence, h.timestamp))
        };
        Some(ReplayKey {
            packets: packets.len(),
            first: seq_ts(packets.first()?)?,
            last: seq_ts(packets.last()?)?,
        })
    }
}

impl RetimedReplay {
    /// `packets` (a cached replay) retimed by [`retime_to_live_edge`], or the
    /// copy made for the same replay before.
    pub fn retime(&mut self, packets: &[Bytes]) -> Vec<Bytes> {
        let Some(key) = ReplayKey::of(packets) else {
            return retime_to_live_edge(packets);
        };
        match &self.last {
            Some((k, retimed)) if *k == key => retimed.clone(),
            _ => {
                let retimed = retime_to_live_edge(packets);
                self.last = Some((key, retimed.clone()));
                retimed
            }
        }
    }

    /// Forgets the copy (the cache moved on: it would not be used again).
    pub fn clear(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(seq: u16, ts: u32) -> Bytes {
        let mut b = BytesMut::new();
        rtp::packet::write_header(&mut b, false, 96, seq, ts, 0x1234);
        b.extend_from_slice(&[seq as u8; 4]);
        b.freeze()
    }

    fn seq_ts(p: &Bytes) -> (u16, u32) {
        let h = rtp::packet::parse_rtp(p).expect("rtp");
        (h.sequence, h.timestamp)
    }

    #[test]
    fn a_gop_is_pressed_against_its_newest_frame() {
        // Keyframe in three packets, two P frames, 40 ms (3600 ticks) apart.
        let gop = [
            pkt(10, 1000),
            pkt(11, 1000),
            pkt(12, 1000),
            pkt(13, 4600),
            pkt(14, 8200),
            pkt(15, 8200),
        ];
        let out = retime_to_live_edge(&gop);
        let got: Vec<(u16, u32)> = out.iter().map(seq_ts).collect();
        assert_eq!(
            got,
            [
                (10, 8198),
                (11, 8198),
                (12, 8198),
                (13, 8199),
                (14, 8200),
                (15, 8200)
            ]
        );
        for (a, b) in gop.iter().zip(&out) {
            assert_eq!(a[8..], b[8..], "SSRC and payload untouched");
        }
        // The newest frame is not copied: it is the shared packet itself.
        assert_eq!(out[5].as_ptr(), gop[5].as_ptr());
        assert_ne!(out[0].as_ptr(), gop[0].as_ptr());
        assert_eq!(
            seq_ts(&gop[0]),
            (10, 1000),
            "the shared packet is unchanged"
        );
    }

    #[test]
    fn timestamps_wrapping_and_out_of_order_frames_keep_their_order() {
        // Wraps past 2^32; a B-frame (ts lower than the frame before it).
        let gop = [
            pkt(1, u32::MAX - 100),
            pkt(2, 7100),
            pkt(3, 3500),
            pkt(4, 14_300),
        ];
        let got: Vec<u32> = retime_to_live_edge(&gop)
            .iter()
            .map(|p| seq_ts(p).1)
            .collect();
        assert_eq!(got, [14_297, 14_299, 14_298, 14_300]);
    }

    #[test]
    fn joins_before_the_cache_changes_share_one_copy() {
        let mut memo = RetimedReplay::default();
        let gop = vec![pkt(1, 0), pkt(2, 3600)];
        let a = memo.retime(&gop);
        let b = memo.retime(&gop);
        assert_eq!(a[0].as_ptr(), b[0].as_ptr(), "the same copy");
        assert_eq!(seq_ts(&a[0]), (1, 3599));
        // A packet more: a new copy, retimed to the new newest frame.
        let mut grown = gop.clone();
        grown.push(pkt(3, 7200));
        let c = memo.retime(&grown);
        assert_ne!(c[0].as_ptr(), a[0].as_ptr());
        assert_eq!(seq_ts(&c[0]), (1, 7198));
        // Forgotten: the next join copies again.
        memo.clear();
        let d = memo.retime(&grown);
        assert_ne!(d[0].as_ptr(), c[0].as_ptr());
        assert_eq!(d, c);
        assert!(memo.retime(&[]).is_empty());
    }

    #[test]
    fn a_single_frame_and_an_empty_replay_are_left_as_they_are() {
        let one = [pkt(1, 500), pkt(2, 500)];
        let out = retime_to_live_edge(&one);
        assert_eq!(out, one);
        assert!(retime_to_live_edge(&[]).is_empty());
        let junk = [Bytes::from_static(b"x")];
        assert_eq!(retime_to_live_edge(&junk), junk);
    }
}
