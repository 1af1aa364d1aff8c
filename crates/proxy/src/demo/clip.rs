//! The demo clip player, without I/O: an H.264 Annex B clip cut into access units once,
//! then played forever as RTP packets (RFC 6184, packetization-mode 1) with continuous
//! SSRC, sequence numbers and timestamps across loops. The caller paces the frames
//! with the due times [`DemoClip::next_frame`] returns.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use rand::Rng;
use rtp::h264;
use rtp::packet::{write_header, FIXED_HEADER_LEN};

/// RTP clock rate of H.264 video.
pub const CLOCK_RATE: u32 = 90_000;
/// Largest RTP payload produced (fits a 1500-byte Ethernet MTU with IP/UDP headers).
pub const MAX_RTP_PAYLOAD: usize = 1400;
/// Payload type of the packets unless [`DemoClip::set_payload_type`] changes it.
pub const DEFAULT_PAYLOAD_TYPE: u8 = 96;

/// Why a clip can't be played.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClipError {
    /// A frame rate of zero.
    #[error("clip frame rate must be at least 1 frame per second")]
    ZeroFrameRate,
    /// No sequence parameter set in the clip.
    #[error("clip has no H.264 sequence parameter set (SPS)")]
    NoSps,
    /// The SPS is too short to hold the profile and level.
    #[error("clip SPS is {0} bytes, too short for profile and level")]
    ShortSps(usize),
    /// No picture parameter set in the clip.
    #[error("clip has no H.264 picture parameter set (PPS)")]
    NoPps,
    /// No access unit with a coded picture.
    #[error("clip has no access unit with a coded picture")]
    NoAccessUnit,
    /// The clip doesn't start with an IDR picture, so it can't be looped.
    #[error("clip does not start with an IDR picture")]
    NoIdrAtStart,
}

/// An H.264 Annex B clip (SPS/PPS/IDR at the start, access unit delimiters (NAL type 9)
/// separating access units, constant frame rate) played forever as RTP with
/// continuous timestamps and sequence numbers.
///
/// Access units are found at access unit delimiters; clips without them are also cut
/// correctly (a new access unit starts at an SPS, PPS or SEI, or at a slice with
/// `first_mb_in_slice == 0`, after a coded picture). Delimiters and end-of-sequence /
/// end-of-stream NAL units are dropped (the clip loops).
#[derive(Clone, Debug)]
pub struct DemoClip {
    /// NAL units of each access unit, SPS and PPS included before every IDR picture.
    access_units: Vec<Vec<&'static [u8]>>,
    sps: &'static [u8],
    pps: &'static [u8],
    fps: u32,
    /// Average bit rate of the RTP stream (headers included), kbit/s, rounded up.
    kbps: u64,
    payload_type: u8,
    ssrc: u32,
    next_seq: u16,
    ts_base: u32,
    /// Index of the next frame since the start (not wrapped by loops).
    frame_index: u64,
    /// Index of the next access unit in `access_units`.
    next_au: usize,
}

/// H.264 NAL unit types that are coded slices of a picture (1..=5).
fn is_vcl(t: u8) -> bool {
    (h264::NAL_SLICE..=h264::NAL_IDR).contains(&t)
}

/// Whether `nal`, seen after a coded picture of the current access unit, starts the
/// next access unit (H.264 7.4.1.2.3, simplified to the cases a clip needs).
fn starts_access_unit(nal: &[u8], t: u8) -> bool {
    match t {
        // AUD, SEI, SPS, PPS, and types 14..=18 come before the picture they belong to.
        h264::NAL_SEI..=h264::NAL_AUD | 14..=18 => true,
        // A slice (or partition A) with first_mb_in_slice == 0, whose ue(v) coding is a
        // single 1 bit: the first slice of a new picture.
        1 | 2 | 5 => nal.get(1).is_some_and(|b| b & 0x80 != 0),
        _ => false,
    }
}

/// Number of RTP packets and their total size (headers included) for one NAL unit.
fn packetized_size(nal_len: usize) -> (usize, usize) {
    if nal_len <= MAX_RTP_PAYLOAD {
        return (1, FIXED_HEADER_LEN + nal_len);
    }
    let body = nal_len - 1;
    let count = body.div_ceil(MAX_RTP_PAYLOAD - 2);
    (count, body + count * (FIXED_HEADER_LEN + 2))
}

impl DemoClip {
    /// Cut `annex_b` into access units (once) for playing at `fps` frames per second.
    /// SSRC, first sequence number and first timestamp are random.
    pub fn new(annex_b: &'static [u8], fps: u32) -> Result<DemoClip, ClipError> {
        if fps == 0 {
            return Err(ClipError::ZeroFrameRate);
        }
        let mut sps = None;
        let mut pps = None;
        let mut access_units: Vec<Vec<&'static [u8]>> = Vec::new();
        let mut current: Vec<&'static [u8]> = Vec::new();
        let mut current_has_picture = false;
        for nal in h264::split_annex_b(annex_b) {
            let Some(t) = h264::nal_type(nal) else {
                continue;
            };
            if current_has_picture && starts_access_unit(nal, t) {
                access_units.push(std::mem::take(&mut current));
                current_has_picture = false;
            }
            match t {
                h264::NAL_AUD | h264::NAL_END_OF_SEQUENCE | h264::NAL_END_OF_STREAM => continue,
                h264::NAL_SPS => {
                    sps.get_or_insert(nal);
                }
                h264::NAL_PPS => {
                    pps.get_or_insert(nal);
                }
                t if is_vcl(t) => current_has_picture = true,
                _ => {}
            }
            current.push(nal);
        }
        if current_has_picture {
            access_units.push(current);
        }
        // Trailing non-picture NAL units (after the last picture) are dropped.

        let sps: &'static [u8] = sps.ok_or(ClipError::NoSps)?;
        if sps.len() < 4 {
            return Err(ClipError::ShortSps(sps.len()));
        }
        let pps: &'static [u8] = pps.ok_or(ClipError::NoPps)?;
        let has_idr = |au: &Vec<&[u8]>| au.iter().any(|n| h264::nal_type(n) == Some(h264::NAL_IDR));
        match access_units.first() {
            None => return Err(ClipError::NoAccessUnit),
            Some(first) if !has_idr(first) => return Err(ClipError::NoIdrAtStart),
            Some(_) => {}
        }
        // SPS and PPS before every IDR picture, so that clients can start decoding there.
        for au in access_units.iter_mut().filter(|au| has_idr(au)) {
            let has = |ty: u8| au.iter().any(|n| h264::nal_type(n) == Some(ty));
            let (has_sps, has_pps) = (has(h264::NAL_SPS), has(h264::NAL_PPS));
            if !has_pps {
                au.insert(0, pps);
            }
            if !has_sps {
                au.insert(0, sps);
            }
        }

        let loop_bytes: u64 = access_units
            .iter()
            .flatten()
            .map(|nal| packetized_size(nal.len()).1 as u64)
            .sum();
        let frames = access_units.len() as u64;
        let kbps = (loop_bytes * 8 * u64::from(fps)).div_ceil(frames * 1000);

        let mut rng = rand::thread_rng();
        Ok(DemoClip {
            access_units,
            sps,
            pps,
            fps,
            kbps,
            payload_type: DEFAULT_PAYLOAD_TYPE,
            ssrc: rng.gen_range(1..=u32::MAX),
            next_seq: rng.gen(),
            ts_base: rng.gen(),
            frame_index: 0,
            next_au: 0,
        })
    }

    /// The SDP media section of the clip for RTP payload type `payload_type`, without a
    /// control attribute: `m=`, `b=AS:` (average bit rate with RTP headers, kbit/s),
    /// `a=rtpmap`, `a=fmtp` (packetization-mode 1, profile-level-id and
    /// sprop-parameter-sets from the clip's SPS and PPS), `a=framerate`.
    ///
    /// The packets carry [`DEFAULT_PAYLOAD_TYPE`] unless
    /// [`set_payload_type`](Self::set_payload_type) says otherwise: pass the same value.
    pub fn sdp_media(&self, payload_type: u8) -> String {
        let pt = payload_type;
        format!(
            "m=video 0 RTP/AVP {pt}\r\n\
             b=AS:{kbps}\r\n\
             a=rtpmap:{pt} H264/{CLOCK_RATE}\r\n\
             a=fmtp:{pt} packetization-mode=1;profile-level-id={profile:02X}{constraints:02X}{level:02X};sprop-parameter-sets={sps},{pps}\r\n\
             a=framerate:{fps}\r\n",
            kbps = self.kbps,
            profile = self.sps.get(1).copied().unwrap_or(0),
            constraints = self.sps.get(2).copied().unwrap_or(0),
            level = self.sps.get(3).copied().unwrap_or(0),
            sps = BASE64.encode(self.sps),
            pps = BASE64.encode(self.pps),
            fps = self.fps,
        )
    }

    /// Set the RTP payload type of the packets (default [`DEFAULT_PAYLOAD_TYPE`]).
    pub fn set_payload_type(&mut self, payload_type: u8) {
        self.payload_type = payload_type & 0x7f;
    }

    /// The SSRC of the packets.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The frame rate the clip is played at.
    pub fn fps(&self) -> u32 {
        self.fps
    }

    /// Number of access units (frames) in one loop of the clip.
    pub fn frame_count(&self) -> usize {
        self.access_units.len()
    }

    /// Append to `out` the RTP packets of the next access unit: header included, SSRC,
    /// sequence numbers and timestamps continuous across loops, marker bit on the
    /// last packet of the access unit, SPS and PPS before every IDR picture. Returns
    /// the time from the start of playing at which they are due (frame index / fps).
    pub fn next_frame(&mut self, out: &mut Vec<BytesMut>) -> Duration {
        let index = self.frame_index;
        self.frame_index += 1;
        let au_index = self.next_au;
        self.next_au = if au_index + 1 >= self.access_units.len() {
            0
        } else {
            au_index + 1
        };
        let fps = u64::from(self.fps);
        let due = Duration::new(
            index / fps,
            // < 1e9 since index % fps < fps.
            ((index % fps) * 1_000_000_000 / fps) as u32,
        );
        let ticks = u128::from(index) * u128::from(CLOCK_RATE) / u128::from(self.fps);
        // RTP timestamps are modulo 2^32.
        let timestamp = self.ts_base.wrapping_add(ticks as u32);

        let Some(au) = self.access_units.get(au_index) else {
            return due;
        };
        let mut payloads: Vec<Bytes> = Vec::new();
        for nal in au {
            h264::packetize(nal, MAX_RTP_PAYLOAD, &mut payloads);
        }
        let count = payloads.len();
        out.reserve(count);
        for (i, payload) in payloads.iter().enumerate() {
            let mut packet = BytesMut::with_capacity(FIXED_HEADER_LEN + payload.len());
            write_header(
                &mut packet,
                i + 1 == count,
                self.payload_type,
                self.next_seq,
                timestamp,
                self.ssrc,
            );
            packet.extend_from_slice(payload);
            self.next_seq = self.next_seq.wrapping_add(1);
            out.push(packet);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtp::packet::parse_rtp;

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb];
    const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

    /// Concatenate NAL units with 4-byte start codes into a leaked ('static) Annex B
    /// stream.
    fn annex_b(nals: &[&[u8]]) -> &'static [u8] {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&[0, 0, 0, 1]);
            v.extend_from_slice(n);
        }
        Vec::leak(v)
    }

    fn aud() -> Vec<u8> {
        vec![0x09, 0xf0]
    }

    /// An IDR slice (first_mb_in_slice 0) of `len` bytes.
    fn idr(len: usize) -> Vec<u8> {
        let mut v = vec![0x65, 0x88];
        v.resize(len, 0x5a);
        v
    }

    /// A non-IDR slice (first_mb_in_slice 0) of `len` bytes.
    fn p_slice(len: usize) -> Vec<u8> {
        let mut v = vec![0x41, 0x9a];
        v.resize(len, 0x33);
        v
    }

    /// AUD SPS PPS IDR(3000) | AUD P(100) | AUD P(200)
    fn three_frames() -> &'static [u8] {
        annex_b(&[
            &aud(),
            SPS,
            PPS,
            &idr(3000),
            &aud(),
            &p_slice(100),
            &aud(),
            &p_slice(200),
        ])
    }

    struct Frame {
        due: Duration,
        packets: Vec<BytesMut>,
    }

    fn play(clip: &mut DemoClip, frames: usize) -> Vec<Frame> {
        (0..frames)
            .map(|_| {
                let mut packets = Vec::new();
                let due = clip.next_frame(&mut packets);
                Frame { due, packets }
            })
            .collect()
    }

    #[test]
    fn errors() {
        assert_eq!(
            DemoClip::new(three_frames(), 0).unwrap_err(),
            ClipError::ZeroFrameRate
        );
        assert_eq!(DemoClip::new(&[], 25).unwrap_err(), ClipError::NoSps);
        assert_eq!(
            DemoClip::new(annex_b(&[&aud(), PPS, &idr(10)]), 25).unwrap_err(),
            ClipError::NoSps
        );
        assert_eq!(
            DemoClip::new(annex_b(&[&aud(), SPS, &idr(10)]), 25).unwrap_err(),
            ClipError::NoPps
        );
        assert_eq!(
            DemoClip::new(annex_b(&[&aud(), &[0x67, 0x42], PPS, &idr(10)]), 25).unwrap_err(),
            ClipError::ShortSps(2)
        );
        assert_eq!(
            DemoClip::new(annex_b(&[&aud(), SPS, PPS, &aud()]), 25).unwrap_err(),
            ClipError::NoAccessUnit
        );
        assert_eq!(
            DemoClip::new(annex_b(&[SPS, PPS, &p_slice(10), &idr(10)]), 25).unwrap_err(),
            ClipError::NoIdrAtStart
        );
        // Not Annex B at all.
        assert_eq!(
            DemoClip::new(b"hello world", 25).unwrap_err(),
            ClipError::NoSps
        );
    }

    #[test]
    fn sdp_media_section() {
        let clip = DemoClip::new(three_frames(), 25).unwrap();
        assert_eq!(clip.frame_count(), 3);
        // Bytes per loop: IDR 3000 -> 3 FU-A packets (2999 body + 3 * 14), SPS 8 + 12,
        // PPS 5 + 12, P 100 + 12, P 200 + 12 = 3041 + 20 + 17 + 112 + 212 = 3402.
        // 3402 * 8 * 25 / 3 / 1000 = 226.8 -> 227.
        let expected = "m=video 0 RTP/AVP 97\r\n\
                        b=AS:227\r\n\
                        a=rtpmap:97 H264/90000\r\n\
                        a=fmtp:97 packetization-mode=1;profile-level-id=42C00D;\
                        sprop-parameter-sets=Z0LADdkBQfs=,aMuDyyA=\r\n\
                        a=framerate:25\r\n";
        assert_eq!(clip.sdp_media(97), expected);
    }

    #[test]
    fn frames_are_packetized_with_markers_and_continuous_numbering() {
        let mut clip = DemoClip::new(three_frames(), 25).unwrap();
        clip.set_payload_type(98);
        let frames = play(&mut clip, 7);

        let first = parse_rtp(&frames[0].packets[0]).unwrap();
        let (seq0, ts0) = (first.sequence, first.timestamp);
        let mut seq = seq0;
        for (i, frame) in frames.iter().enumerate() {
            assert_eq!(frame.due, Duration::from_millis(40 * i as u64), "frame {i}");
            let n = frame.packets.len();
            for (j, p) in frame.packets.iter().enumerate() {
                let h = parse_rtp(p).unwrap();
                assert_eq!(h.ssrc, clip.ssrc());
                assert_eq!(h.payload_type, 98);
                assert_eq!(h.sequence, seq, "frame {i} packet {j}");
                seq = seq.wrapping_add(1);
                assert_eq!(h.timestamp, ts0.wrapping_add(3600 * i as u32));
                assert_eq!(h.marker, j + 1 == n, "frame {i} packet {j}");
                assert!(h.payload_len <= MAX_RTP_PAYLOAD);
            }
        }

        // Frame 0 (and 3, 6 after looping): SPS, PPS, then the IDR in 3 FU-A fragments.
        for i in [0, 3, 6] {
            let payloads: Vec<&[u8]> = frames[i].packets.iter().map(|p| &p[12..]).collect();
            assert_eq!(payloads.len(), 5);
            assert_eq!(payloads[0], SPS);
            assert_eq!(payloads[1], PPS);
            assert!(h264::is_keyframe(payloads[0]));
            assert_eq!(payloads[2][..2], [0x7c, 0x85]);
            assert_eq!(payloads[3][1], 0x05);
            assert_eq!(payloads[4][1], 0x45);
            let body: Vec<u8> = payloads[2..].iter().flat_map(|p| p[2..].to_vec()).collect();
            assert_eq!(&body[..], &idr(3000)[1..]);
        }
        // P frames: one single-NAL packet each, no keyframe.
        assert_eq!(frames[1].packets.len(), 1);
        assert_eq!(&frames[1].packets[0][12..], &p_slice(100)[..]);
        assert_eq!(&frames[2].packets[0][12..], &p_slice(200)[..]);
        assert!(!h264::is_keyframe(&frames[4].packets[0][12..]));
    }

    #[test]
    fn next_frame_appends() {
        let mut clip = DemoClip::new(three_frames(), 25).unwrap();
        let mut out = Vec::new();
        clip.next_frame(&mut out);
        clip.next_frame(&mut out);
        assert_eq!(out.len(), 6);
    }

    #[test]
    fn due_times_and_timestamps_for_uneven_frame_rates() {
        let mut clip = DemoClip::new(three_frames(), 30).unwrap();
        let frames = play(&mut clip, 31);
        let ts = |f: &Frame| parse_rtp(&f.packets[0]).unwrap().timestamp;
        let ts0 = ts(&frames[0]);
        assert_eq!(frames[1].due, Duration::new(0, 33_333_333));
        assert_eq!(frames[30].due, Duration::from_secs(1));
        assert_eq!(ts(&frames[1]).wrapping_sub(ts0), 3000);
        assert_eq!(ts(&frames[30]).wrapping_sub(ts0), 90_000);

        // 7 fps: 90000/7 is not whole; timestamps follow index*90000/7 without drift.
        let mut clip = DemoClip::new(three_frames(), 7).unwrap();
        let frames = play(&mut clip, 8);
        let ts0 = ts(&frames[0]);
        assert_eq!(ts(&frames[1]).wrapping_sub(ts0), 12_857);
        assert_eq!(ts(&frames[7]).wrapping_sub(ts0), 90_000);
        assert_eq!(frames[7].due, Duration::from_secs(1));
    }

    #[test]
    fn sps_and_pps_are_inserted_before_idr_that_lack_them() {
        // Second IDR without parameter sets; trailing end-of-stream NAL unit.
        let clip_bytes = annex_b(&[
            &aud(),
            SPS,
            PPS,
            &idr(50),
            &aud(),
            &p_slice(20),
            &aud(),
            &idr(60),
            &[0x0b],
        ]);
        let mut clip = DemoClip::new(clip_bytes, 25).unwrap();
        assert_eq!(clip.frame_count(), 3);
        let frames = play(&mut clip, 3);
        let payloads: Vec<&[u8]> = frames[2].packets.iter().map(|p| &p[12..]).collect();
        assert_eq!(payloads, vec![SPS, PPS, &idr(60)[..]]);
        // The first IDR keeps its own, not doubled.
        assert_eq!(frames[0].packets.len(), 3);
    }

    #[test]
    fn access_units_without_delimiters() {
        // Two-slice IDR picture (second slice first_mb != 0), SEI before the next picture,
        // then a P picture, then a P picture starting directly with a slice.
        let second_slice = [0x65u8, 0x40, 1, 2];
        let sei = [0x06u8, 0x05, 1, 0x80];
        let clip_bytes = annex_b(&[
            SPS,
            PPS,
            &idr(30),
            &second_slice,
            &sei,
            &p_slice(10),
            &p_slice(11),
        ]);
        let mut clip = DemoClip::new(clip_bytes, 25).unwrap();
        assert_eq!(clip.frame_count(), 3);
        let frames = play(&mut clip, 3);
        let payloads =
            |f: &Frame| -> Vec<Vec<u8>> { f.packets.iter().map(|p| p[12..].to_vec()).collect() };
        assert_eq!(
            payloads(&frames[0]),
            vec![SPS.to_vec(), PPS.to_vec(), idr(30), second_slice.to_vec()]
        );
        assert_eq!(payloads(&frames[1]), vec![sei.to_vec(), p_slice(10)]);
        assert_eq!(payloads(&frames[2]), vec![p_slice(11)]);
        // Marker only on the last packet of the multi-slice picture.
        let markers: Vec<bool> = frames[0]
            .packets
            .iter()
            .map(|p| parse_rtp(p).unwrap().marker)
            .collect();
        assert_eq!(markers, vec![false, false, false, true]);
    }

    #[test]
    fn packetized_size_matches_packetizer() {
        for len in [1usize, 1399, 1400, 1401, 1402, 2797, 2798, 2799, 10_000] {
            let mut nal = vec![0x65u8];
            nal.resize(len, 7);
            let mut out = Vec::new();
            h264::packetize(&nal, MAX_RTP_PAYLOAD, &mut out);
            let bytes: usize = out.iter().map(|p| p.len() + FIXED_HEADER_LEN).sum();
            assert_eq!(packetized_size(len), (out.len(), bytes), "len {len}");
        }
    }

    /// The checked-in test pattern: 50 frames at 25 fps with IDRs at frames 0 and 25.
    #[test]
    fn test_pattern_loops_continuously() {
        let clip_bytes: &'static [u8] = include_bytes!("testpattern.h264");
        let mut clip = DemoClip::new(clip_bytes, 25).unwrap();
        let n = clip.frame_count();
        assert_eq!(n, 50);
        let sdp = clip.sdp_media(96);
        assert!(sdp.contains("a=fmtp:96 packetization-mode=1;profile-level-id=42C0"));
        assert!(sdp.contains(";sprop-parameter-sets=Z0"));

        let frames = play(&mut clip, 3 * n + 1);
        let first = parse_rtp(&frames[0].packets[0]).unwrap();
        let (mut seq, ts0) = (first.sequence, first.timestamp);
        for (i, frame) in frames.iter().enumerate() {
            assert_eq!(frame.due, Duration::from_millis(40 * i as u64));
            let markers = frame
                .packets
                .iter()
                .filter(|p| parse_rtp(p).unwrap().marker)
                .count();
            assert_eq!(markers, 1, "frame {i}");
            for p in &frame.packets {
                let h = parse_rtp(p).unwrap();
                assert_eq!(h.sequence, seq, "frame {i}");
                seq = seq.wrapping_add(1);
                assert_eq!(h.timestamp, ts0.wrapping_add(3600 * i as u32), "frame {i}");
                assert!(p.len() <= FIXED_HEADER_LEN + MAX_RTP_PAYLOAD);
            }
            let key = h264::is_keyframe(&frame.packets[0][12..]);
            assert_eq!(key, i % 25 == 0, "frame {i}");
            if key {
                assert_eq!(&frame.packets[0][12..], clip.sps);
                assert_eq!(&frame.packets[1][12..], clip.pps);
            }
        }
    }
}
