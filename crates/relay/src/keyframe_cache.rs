//! The keyframe (GOP) cache of one stream: the packets since the last keyframe,
//! so that a new client gets a decodable picture at once instead of waiting up to
//! a whole GOP for the back end's next keyframe.
//!
//! The first H.264, H.265 or MPEG-TS track is the *key track*: its cache restarts
//! at every packet that starts a keyframe (SPS/VPS or IDR/IRAP, whole, aggregated
//! or first fragment, parameter sets and the keyframe sharing a timestamp staying
//! together; for MPEG-TS a video PES starting a keyframe, see [`super::mpegts`],
//! the cached GOP then starting with the last PAT and PMT and that TS packet).
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

use super::mpegts::TsProgram;

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
    /// MPEG-TS over RTP (RFC 2250, `MP2T`): a keyframe starts where a video PES
    /// does with one (the PAT and PMT say which PID is the video's).
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

    /// Where an RTP payload starts a keyframe: `Some(0)` for H.264 and H.265
    /// (the whole payload), the index of the TS packet for MPEG-TS (knowing
    /// what `program` learnt of the stream); `None` if it does not.
    fn keyframe_start(self, payload: &[u8], program: &TsProgram) -> Option<usize> {
        match self {
            KeyCodec::H264 => rtp::h264::is_keyframe(payload).then_some(0),
            KeyCodec::H265 => rtp::h265::is_keyframe(payload).then_some(0),
            KeyCodec::Mp2t => program.random_access(payload),
        }
    }
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
    /// The PAT/PMT of an MPEG-TS key track.
    program: TsProgram,
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
            program: TsProgram::default(),
        }
    }

    /// Whether this stream caches at all.
    pub fn is_on(&self) -> bool {
        self.key.is_some()
    }

    /// Whether `track` is the key track and `payload` starts a keyframe on it
    /// (a batch starting with one is where a client that lost packets can resume).
    pub fn is_keyframe_start(&self, track: usize, payload: &[u8]) -> bool {
        matches!(self.key, Some((t, codec))
            if t == track && codec.keyframe_start(payload, &self.program).is_some())
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
        let mut pkt = pkt.clone();
        let start = (track == key)
            .then(|| codec.keyframe_start(payload, &self.program))
            .flatten();
        if track == key && codec == KeyCodec::Mp2t {
            self.program.learn(payload);
        }
        // H.264/H.265: parameter sets and the picture sharing a timestamp are one
        // keyframe. A TS keyframe starts once (one PES), whatever the timestamps
        // (some senders keep them constant).
        let new_keyframe = |anchor: Option<(Instant, u32)>| {
            codec == KeyCodec::Mp2t || anchor.is_none_or(|(_, ts)| ts != timestamp)
        };
        if let Some(first) = start.filter(|_| new_keyframe(self.anchor)) {
            if codec == KeyCodec::Mp2t {
                // The replay starts at the keyframe's TS packet, PAT and PMT first.
                pkt = self.program.replay_start(&pkt, payload, first);
            }
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
        self.tracks[track].push(pkt, now);
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
        let program = TsProgram::default();
        let starts =
            |codec: KeyCodec, payload: &[u8]| codec.keyframe_start(payload, &program).is_some();
        assert!(starts(h264, SPS));
        assert!(starts(h264, IDR_FU_START));
        assert!(
            !starts(h264, IDR_FU_MID),
            "a middle fragment starts nothing"
        );
        assert!(!starts(h264, P_SLICE));
        // STAP-A carrying SPS and PPS.
        assert!(starts(
            h264,
            &[0x78, 0, 4, 0x67, 0x42, 0, 0x1f, 0, 4, 0x68, 0xce, 0x3c, 0x80]
        ));
        let h265 = KeyCodec::H265;
        // IDR_W_RADL (19) single NAL, and the first fragment of a CRA (21).
        assert!(starts(h265, &[19 << 1, 1, 0xaa]));
        assert!(starts(h265, &[49 << 1, 1, 0x80 | 21, 0xaa]));
        assert!(!starts(h265, &[49 << 1, 1, 21, 0xaa]));
        assert!(!starts(h265, &[1 << 1, 1, 0xaa]), "TRAIL_R");
        assert_eq!(KeyCodec::from_encoding(Some("MP2T")), Some(KeyCodec::Mp2t));
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

    /// RTP packets of MPEG-TS as a GStreamer `rtpmp2tpay` sends them: seven TS
    /// packets each (the last one shorter), header `seq`, timestamp 0.
    fn mp2t_rtp(ts: &[u8]) -> Vec<Bytes> {
        ts.chunks(7 * 188)
            .enumerate()
            .map(|(seq, chunk)| {
                let mut p = vec![0x80, 33, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
                p[2..4].copy_from_slice(&(seq as u16).to_be_bytes());
                p.extend_from_slice(chunk);
                Bytes::from(p)
            })
            .collect()
    }

    /// Feeds `pkts` to the key track, with RTP timestamps `i * ts_step`.
    fn feed_mp2t(c: &mut GopCache, pkts: &[Bytes], t0: Instant, ts_step: u32) -> Vec<usize> {
        let mut starts = Vec::new();
        for (i, pkt) in pkts.iter().enumerate() {
            if c.is_keyframe_start(0, &pkt[12..]) {
                starts.push(i);
            }
            c.on_packet(0, pkt, i as u32 * ts_step, &pkt[12..], ms(t0, i as u64));
        }
        starts
    }

    /// The PIDs of a cached RTP payload's TS packets.
    fn pids(pkt: &[u8]) -> Vec<u16> {
        pkt[12..]
            .chunks_exact(188)
            .map(|ts| u16::from_be_bytes([ts[1] & 0x1f, ts[2]]))
            .collect()
    }

    #[test]
    fn ffmpeg_mpegts_with_audio_restarts_only_at_video_keyframes() {
        // ffmpeg sets the random-access indicator on audio packets too (5 in
        // this file) and on the 2 video keyframes (tests/data/mpegts/README.md).
        let file = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/mpegts/ffmpeg_h264_aac.ts"
        );
        let ts = std::fs::read(file).expect("the sample");
        let pkts = mp2t_rtp(&ts);
        let t0 = Instant::now();
        let mut c = GopCache::new(&[Some("MP2T")], 1 << 20);
        let starts = feed_mp2t(&mut c, &pkts, t0, 100);
        assert_eq!(starts.len(), 2, "the two video keyframes only: {starts:?}");
        let replay = c.replay(0, ms(t0, pkts.len() as u64));
        assert_eq!(
            replay.len(),
            pkts.len() - starts[1],
            "from the second keyframe on"
        );
        // The replay starts at the keyframe's TS packet, after a PAT and a PMT.
        let first = pids(&replay[0]);
        assert_eq!(first[..3], [0, 0x1000, 0x100], "{first:?}");
        let key = &replay[0][12 + 2 * 188..12 + 3 * 188];
        assert_eq!(key[1] & 0x40, 0x40, "a PES starts there");
        assert_eq!(key[5] & 0x40, 0x40, "flagged random access");
        assert_eq!(
            replay[0][..12],
            pkts[starts[1]][..12],
            "the same RTP header"
        );
        assert_eq!(replay[1..], pkts[starts[1] + 1..]);
        assert_eq!(c.bytes(), replay.iter().map(Bytes::len).sum::<usize>());
        // A sender whose RTP timestamps stay the same: each keyframe still counts.
        let mut constant = GopCache::new(&[Some("MP2T")], 1 << 20);
        assert_eq!(feed_mp2t(&mut constant, &pkts, t0, 0), starts);
        assert_eq!(constant.replay(0, ms(t0, pkts.len() as u64)), replay);

        // The same stream, audio's random access flags and all, from a
        // hand-built program whose video PES are not flagged: the PES content
        // (an SPS after the access unit delimiter) decides.
        use super::super::mpegts::test_packets::{pat, pes, pmt};
        let mut c = GopCache::new(&[Some("MP2T")], 1 << 20);
        let psi = [pat(0x30), pmt(0x30, &[(0x0f, 0x31), (0x1b, 0x32)])].concat();
        let audio = pes(0x31, Some(0x40), &[0xff, 0xf1, 0x50]);
        let idr = pes(0x32, None, &[0, 0, 0, 1, 9, 0xf0, 0, 0, 0, 1, 0x67, 0x64]);
        let p = pes(0x32, None, &[0, 0, 0, 1, 9, 0xf0, 0, 0, 1, 0x41, 0x9a]);
        let stream = [
            psi.clone(),
            audio.clone(),
            idr.clone(),
            audio.clone(),
            p.clone(),
            audio.clone(),
            p.clone(),
            psi,
            audio.clone(),
            p,
            idr,
            audio,
        ]
        .concat();
        let pkts = mp2t_rtp(&stream);
        assert_eq!(pkts.len(), 2);
        let starts = feed_mp2t(&mut c, &pkts, t0, 100);
        assert_eq!(starts, [0, 1], "each video IDR, never the audio");
        let replay = c.replay(0, ms(t0, 10));
        assert_eq!(replay.len(), 1);
        assert_eq!(pids(&replay[0]), [0, 0x30, 0x32, 0x31]);
    }
}
