//! The synthetic H.264 stream: frame sizes from the workload, RFC 6184
//! packetization (packetization-mode 1) with a [`Probe`] in every packet.
//!
//! - A keyframe is a STAP-A holding the SPS, the PPS and an SEI
//!   (user data unregistered) whose payload is the probe, then the IDR slice
//!   (NAL type 5) in FU-A fragments.
//! - Other frames are one non-IDR slice (NAL type 1) in FU-A fragments (a
//!   single NAL unit packet when the frame fits in one packet, since a FU-A
//!   must not carry a whole NAL unit).
//! - Every packet is `packet_size` bytes (RTP header included) except the last
//!   of each frame, which carries the RTP marker bit, and the STAP-A.
//! - The probe sits right after the FU-A indicator and header (offset 2 of the
//!   RTP payload), after the NAL header of a single NAL unit packet (offset 1),
//!   or in the SEI of the STAP-A (see [`probe_offset`]).
//!
//! The slice bytes are a probe and filler: the stream has valid parameter sets
//! and structure, but its pictures do not decode.

use std::time::Duration;

use crate::probe::{Probe, FLAG_KEYFRAME, FLAG_LAST, PROBE_LEN};

/// RTP fixed header length.
pub const RTP_HEADER: usize = 12;
/// RTP payload type of the stream.
pub const PAYLOAD_TYPE: u8 = 96;
/// Smallest packet: RTP header, FU-A indicator and header, probe.
pub const MIN_PACKET: usize = RTP_HEADER + 2 + PROBE_LEN;

/// Baseline profile SPS (the one of the proxy's demo clip, 320x240).
pub const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
    0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80,
];
/// The matching PPS.
pub const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];
/// UUID of the probe's SEI (user data unregistered).
const SEI_UUID: [u8; 16] = *b"rtsp-bench-probe";
/// SEI NAL unit: header, payload type 5, payload size, UUID, probe, RBSP trailing bits.
const SEI_LEN: usize = 1 + 1 + 1 + 16 + PROBE_LEN + 1;
/// Offset of the probe inside the SEI NAL unit.
const SEI_PROBE_OFFSET: usize = 3 + 16;

const NAL_SLICE: u8 = 1;
const NAL_IDR: u8 = 5;
const NAL_SEI: u8 = 6;
const NAL_STAP_A: u8 = 24;
const NAL_FU_A: u8 = 28;
const FILLER: u8 = 0x55;

/// What the stream looks like.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Bits per second, RTP packets (header included).
    pub bitrate: u64,
    /// Frames per second.
    pub fps: u32,
    /// Size of a full RTP packet, header included.
    pub packet_size: usize,
    /// Seconds between keyframes.
    pub keyframe_interval: f64,
    /// Size of a keyframe relative to the other frames.
    pub keyframe_factor: f64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            bitrate: 4_000_000,
            fps: 25,
            packet_size: 1200,
            keyframe_interval: 2.0,
            keyframe_factor: 4.0,
        }
    }
}

impl Workload {
    /// Checks the numbers make a stream.
    pub fn validate(&self) -> Result<(), String> {
        if self.fps == 0 || self.fps > 1000 {
            return Err("--fps must be 1 to 1000".into());
        }
        if self.packet_size < 64 || self.packet_size > 65000 {
            return Err("--packet-size must be 64 to 65000".into());
        }
        if self.bitrate < 8_000 {
            return Err("--bitrate must be at least 8000".into());
        }
        if self.keyframe_interval.is_nan() || self.keyframe_interval <= 0.0 {
            return Err("--keyframe-interval must be positive".into());
        }
        if self.keyframe_factor.is_nan() || self.keyframe_factor < 1.0 {
            return Err("--keyframe-factor must be at least 1".into());
        }
        Ok(())
    }

    /// Frames from one keyframe to the next.
    pub fn gop_frames(&self) -> u32 {
        ((self.keyframe_interval * f64::from(self.fps)).round() as u32).max(1)
    }

    /// Time between frames.
    #[allow(dead_code)] // used by the tests
    pub fn frame_period(&self) -> Duration {
        Duration::from_nanos(1_000_000_000 / u64::from(self.fps))
    }

    /// Send time of frame `n` relative to the stream's start (no drift: computed, not summed).
    pub fn frame_offset(&self, n: u64) -> Duration {
        Duration::from_nanos((u128::from(n) * 1_000_000_000 / u128::from(self.fps)) as u64)
    }

    /// RTP bytes of a frame, so that the average over a GOP gives `bitrate`.
    pub fn frame_bytes(&self, keyframe: bool) -> usize {
        let g = f64::from(self.gop_frames());
        let avg = self.bitrate as f64 / 8.0 / f64::from(self.fps);
        let k = if g <= 1.0 { 1.0 } else { self.keyframe_factor };
        let p = g * avg / (g - 1.0 + k);
        let b = if keyframe { p * k } else { p };
        (b.round() as usize).max(MIN_PACKET)
    }

    /// Average RTP packets per second.
    pub fn packets_per_second(&self) -> f64 {
        let g = self.gop_frames();
        let mut fb = FrameBuf::default();
        let mut gen = Generator::new(self.clone(), 1, 0, 0);
        let mut n = 0usize;
        for f in 0..g {
            gen.build(f, &mut fb);
            n += fb.packets.len();
        }
        n as f64 * f64::from(self.fps) / f64::from(g)
    }

    /// `sprop-parameter-sets` for the SDP.
    pub fn sprop_parameter_sets(&self) -> String {
        use base64::Engine;
        let e = base64::engine::general_purpose::STANDARD;
        format!("{},{}", e.encode(SPS), e.encode(PPS))
    }

    /// The SDP of the stream (`control` of the track is `trackID=0`).
    pub fn sdp(&self, session_id: u64) -> String {
        format!(
            "v=0\r\n\
             o=- {session_id} 1 IN IP4 127.0.0.1\r\n\
             s=rtsp-bench synthetic H.264\r\n\
             c=IN IP4 0.0.0.0\r\n\
             t=0 0\r\n\
             a=control:*\r\n\
             a=range:npt=0-\r\n\
             m=video 0 RTP/AVP {PAYLOAD_TYPE}\r\n\
             b=AS:{}\r\n\
             a=rtpmap:{PAYLOAD_TYPE} H264/90000\r\n\
             a=fmtp:{PAYLOAD_TYPE} packetization-mode=1;profile-level-id=42c00d;sprop-parameter-sets={}\r\n\
             a=framerate:{}\r\n\
             a=control:trackID=0\r\n",
            self.bitrate.div_ceil(1000),
            self.sprop_parameter_sets(),
            self.fps
        )
    }
}

/// One packet inside a [`FrameBuf`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketRef {
    /// Start in `FrameBuf::data`.
    pub start: usize,
    /// Length (RTP header included).
    pub len: usize,
    /// Offset of the probe from the packet's start.
    pub probe: usize,
}

/// The packets of one frame, back to back in one buffer (reused frame after frame).
#[derive(Clone, Debug, Default)]
pub struct FrameBuf {
    /// Every packet, concatenated.
    pub data: Vec<u8>,
    /// Where each packet is.
    pub packets: Vec<PacketRef>,
    /// Frame counter.
    pub frame: u32,
    /// Whether it is a keyframe.
    pub keyframe: bool,
    /// RTP timestamp.
    pub rtp_timestamp: u32,
}

impl FrameBuf {
    /// Packet `i`'s bytes.
    pub fn packet(&self, i: usize) -> &[u8] {
        let p = self.packets[i];
        &self.data[p.start..p.start + p.len]
    }

    /// Stamps send times into packet `i`'s probe.
    pub fn stamp(&mut self, i: usize, send_ns: u64, frame_send_ns: u64) {
        let p = self.packets[i];
        crate::probe::stamp(&mut self.data[p.start + p.probe..], send_ns, frame_send_ns);
    }

    /// Stamps every packet with the same send time (a frame sent as one train).
    pub fn stamp_all(&mut self, send_ns: u64) {
        for i in 0..self.packets.len() {
            self.stamp(i, send_ns, send_ns);
        }
    }
}

/// Produces the frames of one stream: continuous sequence numbers, 90 kHz
/// timestamps from the frame counter.
#[derive(Clone, Debug)]
pub struct Generator {
    w: Workload,
    ssrc: u32,
    next_seq: u16,
    ts_base: u32,
}

impl Generator {
    /// A generator whose first packet has sequence `seq0` and whose frame 0 has timestamp `ts_base`.
    pub fn new(w: Workload, ssrc: u32, seq0: u16, ts_base: u32) -> Self {
        Generator {
            w,
            ssrc,
            next_seq: seq0,
            ts_base,
        }
    }

    /// The workload.
    #[allow(dead_code)]
    pub fn workload(&self) -> &Workload {
        &self.w
    }

    /// Sequence number of the next packet.
    pub fn next_seq(&self) -> u16 {
        self.next_seq
    }

    /// RTP timestamp of frame `n`.
    pub fn timestamp(&self, n: u32) -> u32 {
        let ticks = u64::from(n) * 90_000 / u64::from(self.w.fps);
        self.ts_base.wrapping_add(ticks as u32)
    }

    /// Builds frame `n` into `out` (probe send times left at zero: [`FrameBuf::stamp`] them).
    pub fn build(&mut self, n: u32, out: &mut FrameBuf) {
        out.data.clear();
        out.packets.clear();
        out.frame = n;
        out.keyframe = n.checked_rem(self.w.gop_frames()) == Some(0);
        out.rtp_timestamp = self.timestamp(n);
        let size = self.w.packet_size;
        let mut budget = self.w.frame_bytes(out.keyframe);
        let (nal_header, fu_indicator) = if out.keyframe {
            (0x60 | NAL_IDR, 0x60 | NAL_FU_A)
        } else {
            (0x40 | NAL_SLICE, 0x40 | NAL_FU_A)
        };

        // Lengths of the packets first, so that the last one is known.
        let mut lens: Vec<usize> = Vec::new();
        let stap_len = RTP_HEADER + 1 + 2 + SPS.len() + 2 + PPS.len() + 2 + SEI_LEN;
        if out.keyframe {
            budget = budget.saturating_sub(stap_len).max(MIN_PACKET);
        }
        let count = budget.div_ceil(size).max(1);
        let last_len = (budget - (count - 1) * size).max(MIN_PACKET);
        let single = count == 1;
        let total = count + usize::from(out.keyframe);
        let mut index: u16 = 0;
        if out.keyframe {
            lens.push(stap_len);
        }
        lens.resize(lens.len() + count - 1, size);
        lens.push(last_len);
        out.data.reserve(lens.iter().sum());

        for (i, &len) in lens.iter().enumerate() {
            let start = out.data.len();
            let last = i + 1 == total;
            self.put_rtp_header(&mut out.data, last, out.rtp_timestamp);
            let probe_at;
            if out.keyframe && i == 0 {
                out.data.push(0x60 | NAL_STAP_A);
                put_unit(&mut out.data, SPS);
                put_unit(&mut out.data, PPS);
                out.data.extend_from_slice(&(SEI_LEN as u16).to_be_bytes());
                out.data.push(0x60 | NAL_SEI);
                out.data.push(5); // user data unregistered
                out.data.push((16 + PROBE_LEN) as u8);
                out.data.extend_from_slice(&SEI_UUID);
                probe_at = out.data.len() - start;
                out.data.extend_from_slice(&[0; PROBE_LEN]);
                out.data.push(0x80);
            } else if single {
                out.data.push(nal_header);
                probe_at = out.data.len() - start;
                out.data.extend_from_slice(&[0; PROBE_LEN]);
            } else {
                let first_fragment = i == usize::from(out.keyframe);
                let mut fu = nal_header & 0x1f;
                if first_fragment {
                    fu |= 0x80;
                }
                if last {
                    fu |= 0x40;
                }
                out.data.push(fu_indicator);
                out.data.push(fu);
                probe_at = out.data.len() - start;
                out.data.extend_from_slice(&[0; PROBE_LEN]);
            }
            out.data.resize(start + len, FILLER);
            let mut flags = 0;
            if out.keyframe {
                flags |= FLAG_KEYFRAME;
            }
            if last {
                flags |= FLAG_LAST;
            }
            Probe {
                send_ns: 0,
                frame_send_ns: 0,
                frame: n,
                index,
                flags,
            }
            .encode(&mut out.data[start + probe_at..]);
            out.packets.push(PacketRef {
                start,
                len,
                probe: probe_at,
            });
            index = index.wrapping_add(1);
        }
    }

    fn put_rtp_header(&mut self, out: &mut Vec<u8>, marker: bool, ts: u32) {
        out.push(0x80);
        out.push((u8::from(marker) << 7) | PAYLOAD_TYPE);
        out.extend_from_slice(&self.next_seq.to_be_bytes());
        out.extend_from_slice(&ts.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        self.next_seq = self.next_seq.wrapping_add(1);
    }
}

fn put_unit(out: &mut Vec<u8>, nal: &[u8]) {
    out.extend_from_slice(&(nal.len() as u16).to_be_bytes());
    out.extend_from_slice(nal);
}

/// Where the probe is in an RTP payload of this stream, or `None`.
pub fn probe_offset(payload: &[u8]) -> Option<usize> {
    let t = payload.first()? & 0x1f;
    match t {
        NAL_FU_A => Some(2),
        NAL_STAP_A => {
            let mut at = 1;
            // At most a handful of units; bounded by the payload length anyway.
            for _ in 0..16 {
                let size = usize::from(u16::from_be_bytes([
                    *payload.get(at)?,
                    *payload.get(at + 1)?,
                ]));
                let unit = at + 2;
                if *payload.get(unit)? & 0x1f == NAL_SEI {
                    return Some(unit + SEI_PROBE_OFFSET);
                }
                at = unit + size;
            }
            None
        }
        1..=23 => Some(1),
        _ => None,
    }
}

/// Reads the probe of an RTP packet of this stream (whole packet, header included).
pub fn read_probe(packet: &[u8]) -> Option<Probe> {
    let hdr_len = rtp_header_len(packet)?;
    read_payload_probe(&packet[hdr_len..])
}

/// Reads the probe of an RTP payload (the header already taken off).
pub fn read_payload_probe(payload: &[u8]) -> Option<Probe> {
    Probe::decode(payload.get(probe_offset(payload)?..)?)
}

/// Length of an RTP packet's header (fixed part, CSRCs, extension), checked.
pub fn rtp_header_len(p: &[u8]) -> Option<usize> {
    if p.len() < RTP_HEADER || p[0] >> 6 != 2 {
        return None;
    }
    let mut len = RTP_HEADER + 4 * usize::from(p[0] & 0x0f);
    if p[0] & 0x10 != 0 {
        let ext = p.get(len + 2..len + 4)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    (len <= p.len()).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(p: &[u8]) -> u16 {
        u16::from_be_bytes([p[2], p[3]])
    }

    #[test]
    fn default_workload_numbers() {
        let w = Workload::default();
        assert_eq!(w.gop_frames(), 50);
        assert_eq!(w.frame_period(), Duration::from_millis(40));
        assert_eq!(w.frame_offset(25), Duration::from_secs(1));
        // 4 Mbit/s averaged over a GOP, within a packet's rounding.
        let gop_bytes = w.frame_bytes(true) + 49 * w.frame_bytes(false);
        let rate = gop_bytes as f64 * 8.0 / 2.0;
        assert!((rate - 4e6).abs() < 4e6 * 0.01, "{rate}");
        let pps = w.packets_per_second();
        assert!((400.0..450.0).contains(&pps), "{pps}");
    }

    #[test]
    fn fu_a_packetization_of_a_frame() {
        let w = Workload::default();
        let mut g = Generator::new(w.clone(), 0x1234, 65530, 1000);
        let mut f = FrameBuf::default();
        g.build(1, &mut f);
        assert!(!f.keyframe);
        let bytes = w.frame_bytes(false);
        let n = bytes.div_ceil(1200);
        assert_eq!(f.packets.len(), n);
        assert_eq!(f.rtp_timestamp, 1000 + 3600);
        for i in 0..n {
            let p = f.packet(i);
            let last = i + 1 == n;
            if last {
                assert_eq!(p.len(), bytes - (n - 1) * 1200);
            } else {
                assert_eq!(p.len(), 1200);
            }
            assert_eq!(p[0], 0x80);
            assert_eq!(p[1] & 0x80 != 0, last, "marker only on the last packet");
            assert_eq!(p[1] & 0x7f, 96);
            assert_eq!(
                seq(p),
                65530u16.wrapping_add(i as u16),
                "continuous across wrap"
            );
            assert_eq!(u32::from_be_bytes([p[8], p[9], p[10], p[11]]), 0x1234);
            assert_eq!(p[12], 0x40 | 28, "FU-A indicator, NRI of a reference slice");
            assert_eq!(p[13] & 0x80 != 0, i == 0, "S bit on the first fragment");
            assert_eq!(p[13] & 0x40 != 0, last, "E bit on the last fragment");
            assert_eq!(p[13] & 0x1f, 1, "non-IDR slice");
            let probe = read_probe(p).unwrap();
            assert_eq!(probe.frame, 1);
            assert_eq!(probe.index as usize, i);
            assert_eq!(probe.is_last(), last);
            assert!(!probe.is_keyframe());
        }
        assert_eq!(g.next_seq(), 65530u16.wrapping_add(n as u16));
    }

    #[test]
    fn keyframe_has_parameter_sets_then_idr_fragments() {
        let w = Workload::default();
        let mut g = Generator::new(w.clone(), 7, 0, 0);
        let mut f = FrameBuf::default();
        g.build(50, &mut f);
        assert!(f.keyframe);
        let stap = f.packet(0);
        assert_eq!(stap[12] & 0x1f, 24);
        assert!(rtp::h264::is_keyframe(&stap[12..]));
        // SPS and PPS units as given.
        let sps_len = usize::from(u16::from_be_bytes([stap[13], stap[14]]));
        assert_eq!(&stap[15..15 + sps_len], SPS);
        let pps_at = 15 + sps_len;
        let pps_len = usize::from(u16::from_be_bytes([stap[pps_at], stap[pps_at + 1]]));
        assert_eq!(&stap[pps_at + 2..pps_at + 2 + pps_len], PPS);
        let p0 = read_probe(stap).unwrap();
        assert_eq!(
            (p0.frame, p0.index, p0.is_keyframe(), p0.is_last()),
            (50, 0, true, false)
        );
        let n = f.packets.len();
        assert!(n > 2);
        let first_fu = f.packet(1);
        assert_eq!(first_fu[12], 0x60 | 28);
        assert_eq!(first_fu[13], 0x80 | 5, "S bit, IDR");
        assert!(rtp::h264::is_keyframe(&first_fu[12..]));
        let last = f.packet(n - 1);
        assert_eq!(last[13], 0x40 | 5, "E bit, IDR");
        assert!(last[1] & 0x80 != 0);
        let total: usize = f.packets.iter().map(|p| p.len).sum();
        assert!(total.abs_diff(w.frame_bytes(true)) < MIN_PACKET);
        for i in 0..n {
            let p = read_probe(f.packet(i)).unwrap();
            assert_eq!(p.index as usize, i);
            assert!(p.is_keyframe());
        }
        // Packets are contiguous in the buffer (a GSO train).
        assert_eq!(f.data.len(), total);
    }

    #[test]
    fn small_frame_is_a_single_nal_packet() {
        let w = Workload {
            bitrate: 200_000,
            ..Workload::default()
        };
        let mut g = Generator::new(w, 1, 0, 0);
        let mut f = FrameBuf::default();
        g.build(3, &mut f);
        assert_eq!(f.packets.len(), 1);
        let p = f.packet(0);
        assert_eq!(p[12], 0x41);
        assert!(p[1] & 0x80 != 0);
        let probe = read_probe(p).unwrap();
        assert!(probe.is_last());
    }

    #[test]
    fn stamping() {
        let mut g = Generator::new(Workload::default(), 1, 0, 0);
        let mut f = FrameBuf::default();
        g.build(2, &mut f);
        f.stamp(0, 10, 10);
        f.stamp(1, 11, 10);
        assert_eq!(read_probe(f.packet(1)).unwrap().send_ns, 11);
        assert_eq!(read_probe(f.packet(1)).unwrap().frame_send_ns, 10);
        f.stamp_all(99);
        assert!(f
            .packets
            .iter()
            .enumerate()
            .all(|(i, _)| read_probe(f.packet(i)).unwrap().send_ns == 99));
    }

    #[test]
    fn sdp_has_what_clients_need() {
        let sdp = Workload::default().sdp(1);
        assert!(sdp.contains("m=video 0 RTP/AVP 96\r\n"));
        assert!(sdp.contains("a=rtpmap:96 H264/90000\r\n"));
        assert!(sdp.contains("packetization-mode=1;"));
        assert!(sdp.contains("sprop-parameter-sets=Z0LADdkBQfsBEAAAAwAQAAADAyDxQqSA,aMuDyyA="));
        assert!(sdp.contains("a=control:trackID=0\r\n"));
    }
}
