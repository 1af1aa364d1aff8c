//! Feeds MPEG-TS over RTP (`MP2T`) to the keyframe cache of a stream with an
//! MP2T key track and an audio track, and to `relay::mpegts::TsProgram`, the
//! PAT/PMT reader that finds where a keyframe starts.
//!
//! Input: the first byte chooses how many TS packets (1 to 8) an RTP payload
//! carries; the rest is cut into payloads of that many 188-byte packets (the
//! last one shorter). A payload whose first byte is odd also goes to the audio
//! track.
//!
//! Checks:
//! - `random_access` names a whole TS packet of the payload, and agrees with
//!   `GopCache::is_keyframe_start` (same knowledge of the program);
//! - `replay_start` returns the packet itself, or the same RTP header (padding
//!   bit cleared) followed by one PAT, one PMT and the payload's TS packets
//!   from the keyframe's on;
//! - the cache never holds more than its bound, `bytes()` is what `replay`
//!   gives, and a replay's first key-track packet is what `replay_start` built.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rtsp_proxy::relay::keyframe_cache::GopCache;
use rtsp_proxy::relay::mpegts::{TsProgram, TS_PACKET_LEN};

const MAX_BYTES: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let per_packet = usize::from(first % 8 + 1) * TS_PACKET_LEN;
    let t0 = Instant::now();
    let mut cache = GopCache::new(&[Some("MP2T"), Some("MPEG4-GENERIC")], MAX_BYTES);
    let mut program = TsProgram::default();
    let mut expected_first: Option<Bytes> = None;
    for (i, chunk) in rest.chunks(per_packet).enumerate() {
        let seq = u16::try_from(i % 65536).unwrap_or(0);
        let ts = u32::try_from(i).unwrap_or(0).wrapping_mul(3000);
        let mut raw = vec![0x80 | 0x20, 33];
        raw.extend_from_slice(&seq.to_be_bytes());
        raw.extend_from_slice(&ts.to_be_bytes());
        raw.extend_from_slice(&[1, 2, 3, 4]);
        raw.extend_from_slice(chunk);
        let pkt = Bytes::from(raw);
        let payload = &pkt[12..];
        let now = t0 + Duration::from_millis(u64::try_from(i).unwrap_or(0));

        let access = program.random_access(payload);
        if let Some(k) = access {
            assert!(k < payload.len() / TS_PACKET_LEN, "a whole TS packet");
        }
        assert_eq!(cache.is_keyframe_start(0, payload), access.is_some());
        program.learn(payload);
        if let Some(k) = access {
            let start = program.replay_start(&pkt, payload, k);
            if start != pkt {
                assert_eq!(start[0], pkt[0] & !0x20);
                assert_eq!(start[1..12], pkt[1..12]);
                let whole = payload.len() / TS_PACKET_LEN * TS_PACKET_LEN;
                let body = &start[12..];
                assert_eq!(body.len(), 2 * TS_PACKET_LEN + whole - k * TS_PACKET_LEN);
                assert_eq!(body[2 * TS_PACKET_LEN..], payload[k * TS_PACKET_LEN..whole]);
            }
            expected_first = Some(start);
        }
        cache.on_packet(0, &pkt, ts, payload, now);
        if chunk.first().is_some_and(|b| b % 2 == 1) {
            cache.on_packet(1, &pkt, ts, payload, now);
        }

        let video = cache.replay(0, now);
        let audio = cache.replay(1, now);
        let held: usize = video.iter().chain(&audio).map(Bytes::len).sum();
        assert!(cache.bytes() <= MAX_BYTES);
        assert_eq!(held, cache.bytes());
        if let (Some(first), Some(expected)) = (video.first(), &expected_first) {
            assert_eq!(first, expected, "the replay starts where the keyframe does");
        }
    }
});
