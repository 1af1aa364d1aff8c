//! The keyframe (GOP) cache of one stream: the packets since the last keyframe,
//! so that a new client gets a decodable picture at once instead of waiting up to
//! a whole GOP for the back end's next keyframe.
//!
//! The first H.264, H.265 or MPEG-TS track is the *key track*: its cache restarts
//! at every packet that starts a keyframe (SPS/VPS or IDR/IRAP, whole, aggregated
//! or first fragment, parameter sets and the keyframe sharing a timestamp staying
//! together; for MPEG-TS a TS packet flagged random access).
//! The other tracks (audio) keep their packets since that keyframe arrived, so a
//! new client's tracks all start at the same moment. Packets are kept as they
//! were relayed (rewritten, shared [`Bytes`]), so replaying them gives a client a
//! sequence that runs straight on into the live packets.
//!
//! Bounded in bytes for the whole stream: a GOP that does not fit is not cached
//! (until the next keyframe). Streams without a key track cache nothing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Default bound of a stream's cache: a 2 s GOP at 8 Mbit/s, and room to spare.
pub const DEFAULT_CACHE_BYTES: usize = 4 * 1024 * 1024;
/// A cache whose keyframe is older than this is not replayed (a back end that
/// stopped sending: its last GOP is no picture of now).
const MAX_AGE: Duration = Duration::from_secs(10);

/// Codecs whose keyframes the cache recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCodec {
    H264,
    H265,
    /// MPEG-TS over RTP (RFC 2250, `MP2T`): a keyframe starts where a TS packet's
    /// adaptation field sets the random-access indicator.
    Mp2t,
}

impl KeyCodec {
    /// From an SDP encoding name (`H264`, `H265`, any case).
    pub fn from_encoding(encoding: Option<&str>) -> Option<KeyCodec> {
        match encoding?.to_ascii_uppercase().as_str() {
            "H264" => Some(KeyCodec::H264),
            "H265" | "HEVC" => Some(KeyCodec::H265),
            "MP2T" => Some(KeyCodec::Mp2t),
            _ => None,
        }
    }

    /// Whether an RTP payload starts a keyframe.
    pub fn starts_keyframe(self, payload: &[u8]) -> bool {
        match self {
            KeyCodec::H264 => rtp::h264::is_keyframe(payload),
            KeyCodec::H265 => rtp::h265::is_keyframe(payload),
            KeyCodec::Mp2t => ts_random_access(payload),
        }
    }
}

/// Whether any 188-byte TS packet of an RTP payload has an adaptation field
/// with the random-access indicator set (what encoders mark keyframes with).
fn ts_random_access(payload: &[u8]) -> bool {
    payload.chunks_exact(188).any(|ts| {
        // sync byte; adaptation_field_control 2 or 3; a non-empty field whose
        // flags byte has random_access_indicator (0x40).
        ts[0] == 0x47 && ts[3] & 0x20 != 0 && ts[4] > 0 && ts[5] & 0x40 != 0
    })
}

#[derive(Debug, Default)]
struct TrackCache {
    packets: VecDeque<(Bytes, Instant)>,
    bytes: usize,
}

impl TrackCache {
    fn push(&mut self, pkt: Bytes, at: Instant) {
        self.bytes += pkt.len();
        self.packets.push_back((pkt, at));
    }

    fn clear(&mut self) {
        self.packets.clear();
        self.bytes = 0;
    }

    /// Drops packets that arrived before `anchor`.
    fn trim_before(&mut self, anchor: Instant) {
        while let Some((p, at)) = self.packets.front() {
            if *at >= anchor {
                break;
            }
            self.bytes -= p.len();
            self.packets.pop_front();
        }
    }
}

/// The cache of one stream.
#[derive(Debug)]
pub struct GopCache {
    key: Option<(usize, KeyCodec)>,
    tracks: Vec<TrackCache>,
    /// Arrival and RTP timestamp of the cached keyframe's first packet; None while
    /// nothing is cached (before the first keyframe, after a reset, after the
    /// bound was passed).
    anchor: Option<(Instant, u32)>,
    max_bytes: usize,
}

impl GopCache {
    /// A cache for tracks of these encodings; `max_bytes` 0 turns it off.
    pub fn new(encodings: &[Option<&str>], max_bytes: usize) -> GopCache {
        let key = if max_bytes == 0 {
            None
        } else {
            encodings
                .iter()
                .enumerate()
                .find_map(|(i, e)| KeyCodec::from_encoding(*e).map(|c| (i, c)))
        };
        GopCache {
            key,
            tracks: encodings.iter().map(|_| TrackCache::default()).collect(),
            anchor: None,
            max_bytes,
        }
    }

    /// Whether this stream caches at all.
    pub fn is_on(&self) -> bool {
        self.key.is_some()
    }

    /// Whether `track` is the key track and `payload` starts a keyframe on it
    /// (a batch starting with one is where a client that lost packets can resume).
    pub fn is_keyframe_start(&self, track: usize, payload: &[u8]) -> bool {
        matches!(self.key, Some((t, codec)) if t == track && codec.starts_keyframe(payload))
    }

    /// Whether `track` is the key track.
    pub fn is_key_track(&self, track: usize) -> bool {
        matches!(self.key, Some((t, _)) if t == track)
    }

    /// A relayed packet of `track`: `pkt` as sent, its RTP `timestamp` and
    /// `payload`, arrived `now`.
    pub fn on_packet(
        &mut self,
        track: usize,
        pkt: &Bytes,
        timestamp: u32,
        payload: &[u8],
        now: Instant,
    ) {
        let Some((key, codec)) = self.key else {
            return;
        };
        if track >= self.tracks.len() {
            return;
        }
        if track == key
            && codec.starts_keyframe(payload)
            && self.anchor.is_none_or(|(_, ts)| ts != timestamp)
        {
            // A new keyframe: the key track starts over from it, the others keep
            // what arrived since (nothing before it is needed).
            self.anchor = Some((now, timestamp));
            self.tracks[key].clear();
            for (i, t) in self.tracks.iter_mut().enumerate() {
                if i != key {
                    t.trim_before(now);
                }
            }
        }
        if self.anchor.is_none() {
            return;
        }
        self.tracks[track].push(pkt.clone(), now);
        if self.tracks.iter().map(|t| t.bytes).sum::<usize>() > self.max_bytes {
            // This GOP does not fit: cache nothing until the next keyframe.
            self.clear();
        }
    }

    /// Forgets everything (back end reset or paused: the next picture needs a
    /// new keyframe anyway).
    pub fn clear(&mut self) {
        self.anchor = None;
        for t in &mut self.tracks {
            t.clear();
        }
    }

    /// The packets to give a new client of `track` before the live ones, oldest
    /// first: the key track's from its keyframe, another track's since that
    /// keyframe arrived. Empty when nothing fresh is cached.
    pub fn replay(&self, track: usize, now: Instant) -> Vec<Bytes> {
        match (self.anchor, self.tracks.get(track)) {
            (Some((at, _)), Some(t)) if now.saturating_duration_since(at) < MAX_AGE => {
                t.packets.iter().map(|(p, _)| p.clone()).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Bytes cached (all tracks).
    pub fn bytes(&self) -> usize {
        self.tracks.iter().map(|t| t.bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x42, 0x00, 0x1f];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
    const IDR_FU_START: &[u8] = &[0x7c, 0x85, 1, 2, 3];
    const IDR_FU_MID: &[u8] = &[0x7c, 0x05, 4, 5, 6];
    const P_SLICE: &[u8] = &[0x41, 0x9a, 7, 8];

    fn cache() -> GopCache {
        GopCache::new(&[Some("H264"), Some("MPEG4-GENERIC")], 10_000)
    }

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn push(c: &mut GopCache, track: usize, name: &str, ts: u32, payload: &[u8], at: Instant) {
        let pkt = Bytes::from(name.as_bytes().to_vec());
        c.on_packet(track, &pkt, ts, payload, at);
    }

    fn names(v: &[Bytes]) -> Vec<String> {
        v.iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    #[test]
    fn keyframe_detection_per_codec() {
        assert_eq!(KeyCodec::from_encoding(Some("h264")), Some(KeyCodec::H264));
        assert_eq!(KeyCodec::from_encoding(Some("H265")), Some(KeyCodec::H265));
        assert_eq!(KeyCodec::from_encoding(Some("JPEG")), None);
        assert_eq!(KeyCodec::from_encoding(None), None);
        let h264 = KeyCodec::H264;
        assert!(h264.starts_keyframe(SPS));
        assert!(h264.starts_keyframe(IDR_FU_START));
        assert!(
            !h264.starts_keyframe(IDR_FU_MID),
            "a middle fragment starts nothing"
        );
        assert!(!h264.starts_keyframe(P_SLICE));
        // STAP-A carrying SPS and PPS.
        assert!(
            h264.starts_keyframe(&[0x78, 0, 4, 0x67, 0x42, 0, 0x1f, 0, 4, 0x68, 0xce, 0x3c, 0x80])
        );
        let h265 = KeyCodec::H265;
        // IDR_W_RADL (19) single NAL, and the first fragment of a CRA (21).
        assert!(h265.starts_keyframe(&[19 << 1, 1, 0xaa]));
        assert!(h265.starts_keyframe(&[49 << 1, 1, 0x80 | 21, 0xaa]));
        assert!(!h265.starts_keyframe(&[49 << 1, 1, 21, 0xaa]));
        assert!(!h265.starts_keyframe(&[1 << 1, 1, 0xaa]), "TRAIL_R");
        // MPEG-TS: seven 188-byte packets, the fourth with random access.
        assert_eq!(KeyCodec::from_encoding(Some("MP2T")), Some(KeyCodec::Mp2t));
        let mut ts = vec![0u8; 188 * 7];
        for p in ts.chunks_exact_mut(188) {
            p[0] = 0x47;
            p[3] = 0x10; // payload only
        }
        assert!(!KeyCodec::Mp2t.starts_keyframe(&ts));
        let p = &mut ts[188 * 3..188 * 4];
        p[3] = 0x30; // adaptation field and payload
        p[4] = 7;
        p[5] = 0x40 | 0x10; // random access, PCR
        assert!(KeyCodec::Mp2t.starts_keyframe(&ts));
        ts[188 * 3] = 0x00; // lost sync: not trusted
        assert!(!KeyCodec::Mp2t.starts_keyframe(&ts));
        assert!(
            !KeyCodec::Mp2t.starts_keyframe(&[0x47, 0, 0, 0x30, 7, 0x40]),
            "not a whole TS packet"
        );
    }

    #[test]
    fn nothing_is_cached_before_the_first_keyframe() {
        let t0 = Instant::now();
        let mut c = cache();
        push(&mut c, 0, "p", 0, P_SLICE, t0);
        push(&mut c, 1, "a", 0, b"aac", t0);
        assert!(c.replay(0, t0).is_empty());
        assert!(c.replay(1, t0).is_empty());
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn the_cache_holds_the_last_gop_and_audio_since_its_keyframe() {
        let t0 = Instant::now();
        let mut c = cache();
        push(&mut c, 1, "a0", 0, b"aac", t0);
        // Parameter sets and the IDR share a timestamp: one keyframe.
        push(&mut c, 0, "sps", 900, SPS, ms(t0, 10));
        push(&mut c, 0, "pps", 900, PPS, ms(t0, 10));
        push(&mut c, 0, "idr1", 900, IDR_FU_START, ms(t0, 11));
        push(&mut c, 0, "idr2", 900, IDR_FU_MID, ms(t0, 11));
        push(&mut c, 1, "a1", 960, b"aac", ms(t0, 20));
        push(&mut c, 0, "p1", 4500, P_SLICE, ms(t0, 50));
        assert_eq!(
            names(&c.replay(0, ms(t0, 60))),
            ["sps", "pps", "idr1", "idr2", "p1"]
        );
        assert_eq!(
            names(&c.replay(1, ms(t0, 60))),
            ["a1"],
            "audio from the keyframe on"
        );
        assert!(c.is_keyframe_start(0, SPS) && !c.is_keyframe_start(1, SPS));

        // The next keyframe replaces the GOP; audio older than it goes.
        push(&mut c, 1, "a2", 1920, b"aac", ms(t0, 990));
        push(&mut c, 0, "idr3", 90_900, IDR_FU_START, ms(t0, 1000));
        push(&mut c, 1, "a3", 2880, b"aac", ms(t0, 1010));
        assert_eq!(names(&c.replay(0, ms(t0, 1020))), ["idr3"]);
        assert_eq!(names(&c.replay(1, ms(t0, 1020))), ["a3"]);
        assert_eq!(c.bytes(), 4 + 2);
    }

    #[test]
    fn a_gop_over_the_bound_is_not_cached_until_the_next_keyframe() {
        let t0 = Instant::now();
        let mut c = GopCache::new(&[Some("H264")], 100);
        c.on_packet(0, &Bytes::from(vec![0u8; 60]), 0, IDR_FU_START, t0);
        assert_eq!(c.replay(0, t0).len(), 1);
        c.on_packet(0, &Bytes::from(vec![0u8; 60]), 0, IDR_FU_MID, t0);
        assert!(c.replay(0, t0).is_empty(), "over 100 bytes: dropped");
        c.on_packet(0, &Bytes::from(vec![0u8; 10]), 3600, P_SLICE, t0);
        assert!(c.replay(0, t0).is_empty(), "and not resumed mid-GOP");
        c.on_packet(0, &Bytes::from(vec![0u8; 10]), 7200, IDR_FU_START, t0);
        assert_eq!(c.replay(0, t0).len(), 1);
    }

    #[test]
    fn stale_cleared_and_off_caches_replay_nothing() {
        let t0 = Instant::now();
        let mut c = cache();
        push(&mut c, 0, "idr", 0, IDR_FU_START, t0);
        assert_eq!(c.replay(0, ms(t0, 9_000)).len(), 1);
        assert!(c.replay(0, ms(t0, 10_000)).is_empty(), "too old");
        c.clear();
        assert!(c.replay(0, t0).is_empty());

        let mut off = GopCache::new(&[Some("H264")], 0);
        assert!(!off.is_on());
        off.on_packet(0, &Bytes::from_static(b"x"), 0, IDR_FU_START, t0);
        assert!(off.replay(0, t0).is_empty());
        let audio_only = GopCache::new(&[Some("opus")], 1000);
        assert!(!audio_only.is_on());
    }
}
