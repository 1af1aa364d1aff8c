//! Random-access points of an MPEG-TS stream carried over RTP (RFC 2250,
//! `MP2T`), for the keyframe cache: where a new client can start decoding.
//!
//! Sans-IO: it reads the RTP payloads (whole 188-byte TS packets) it is given,
//! learns the program's video PID from the PAT and PMT, and says which TS
//! packet of a payload starts a video keyframe. Only the video PID counts:
//! muxers such as ffmpeg's set the random-access indicator on every audio
//! packet too, which must not restart the cache. A video TS packet starts a
//! keyframe when it starts a PES (`payload_unit_start_indicator`) and either
//! carries the random-access indicator or its PES data begins (after the
//! access unit delimiter, if any) with an IDR/IRAP picture or parameter sets.
//!
//! The last PAT and PMT are kept whole so that a replay can start with them:
//! a decoder joining mid-stream needs them before the keyframe.

use bytes::{BufMut, Bytes, BytesMut};

/// Size of a TS packet.
pub const TS_PACKET_LEN: usize = 188;
const SYNC_BYTE: u8 = 0x47;
const PAT_PID: u16 = 0;
const TABLE_PAT: u8 = 0x00;
const TABLE_PMT: u8 = 0x02;

/// Video codecs of a PMT's stream types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VideoCodec {
    /// Stream types 0x01, 0x02 (MPEG-1/2 video): the random-access indicator only.
    Mpeg2,
    /// Stream type 0x1B.
    H264,
    /// Stream type 0x24.
    H265,
}

impl VideoCodec {
    fn from_stream_type(stream_type: u8) -> Option<VideoCodec> {
        match stream_type {
            0x01 | 0x02 => Some(VideoCodec::Mpeg2),
            0x1B => Some(VideoCodec::H264),
            0x24 => Some(VideoCodec::H265),
            _ => None,
        }
    }

    /// Whether an Annex B NAL unit (without start code) is a keyframe's: an
    /// IDR/IRAP picture or the parameter sets sent before one.
    fn is_key_nal(self, nal: &[u8]) -> bool {
        match self {
            VideoCodec::Mpeg2 => false,
            // IDR slice (5), SPS (7).
            VideoCodec::H264 => rtp::h264::nal_type(nal).is_some_and(|t| t == 5 || t == 7),
            // IRAP pictures (16..=21), VPS (32), SPS (33).
            VideoCodec::H265 => rtp::h265::nal_type(nal)
                .is_some_and(|t| (16..=21).contains(&t) || t == 32 || t == 33),
        }
    }
}

/// The PIDs learnt so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Pids {
    pmt: Option<u16>,
    video: Option<(u16, VideoCodec)>,
}

/// One TS packet's header fields that matter here.
struct TsHeader<'a> {
    pid: u16,
    unit_start: bool,
    random_access: bool,
    /// The packet's payload (after the adaptation field), possibly empty.
    payload: &'a [u8],
}

fn ts_header(ts: &[u8]) -> Option<TsHeader<'_>> {
    if ts.len() != TS_PACKET_LEN || ts[0] != SYNC_BYTE || ts[1] & 0x80 != 0 {
        return None; // no sync, or transport_error_indicator
    }
    let pid = u16::from_be_bytes([ts[1] & 0x1f, ts[2]]);
    let unit_start = ts[1] & 0x40 != 0;
    let control = (ts[3] >> 4) & 0x3;
    let mut at = 4;
    let mut random_access = false;
    if control & 0x2 != 0 {
        let len = usize::from(ts[4]);
        random_access = len > 0 && ts[5] & 0x40 != 0;
        at = 5 + len;
    }
    let payload = if control & 0x1 != 0 {
        ts.get(at..).unwrap_or(&[])
    } else {
        &[]
    };
    Some(TsHeader {
        pid,
        unit_start,
        random_access,
        payload,
    })
}

/// The section a TS packet starting one carries (after its pointer field), cut
/// to its `section_length`; `None` when it does not fit in this packet (PSI
/// spanning packets is not followed: PAT and PMT of cameras and muxers fit).
fn section<'a>(h: &TsHeader<'a>, table_id: u8) -> Option<&'a [u8]> {
    if !h.unit_start {
        return None;
    }
    let pointer = usize::from(*h.payload.first()?);
    let s = h.payload.get(1 + pointer..)?;
    if *s.first()? != table_id {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([*s.get(1)?, *s.get(2)?]) & 0x0fff);
    // table_id and length (3 bytes) + section, whose last 4 bytes are the CRC.
    let whole = s.get(..3 + len)?;
    // The fixed part after the length: 5 bytes; the CRC: 4.
    whole.get(8..whole.len().checked_sub(4)?)
}

impl Pids {
    /// Updates from one TS packet if it is a PAT or PMT; `true` if it was one.
    fn learn(&mut self, h: &TsHeader<'_>) -> bool {
        if h.pid == PAT_PID {
            if let Some(body) = section(h, TABLE_PAT) {
                // program_number (16), reserved (3), PID (13); program 0 is the
                // network PID.
                let pmt = body.chunks_exact(4).find_map(|p| {
                    (u16::from_be_bytes([p[0], p[1]]) != 0)
                        .then(|| u16::from_be_bytes([p[2] & 0x1f, p[3]]))
                });
                if pmt != self.pmt {
                    self.pmt = pmt;
                    self.video = None;
                }
            }
            return true;
        }
        if Some(h.pid) != self.pmt {
            return false;
        }
        if let Some(body) = section(h, TABLE_PMT) {
            // PCR_PID (2), program_info_length (2) and its descriptors, then the
            // elementary streams: type (1), PID (2), ES_info_length (2), descriptors.
            let info_len = body.get(2..4).map_or(0, |b| {
                usize::from(u16::from_be_bytes([b[0], b[1]]) & 0x0fff)
            });
            let mut es = body.get(4 + info_len..).unwrap_or(&[]);
            self.video = None;
            while es.len() >= 5 {
                let pid = u16::from_be_bytes([es[1] & 0x1f, es[2]]);
                if let Some(codec) = VideoCodec::from_stream_type(es[0]) {
                    self.video = Some((pid, codec));
                    break;
                }
                let skip = 5 + usize::from(u16::from_be_bytes([es[3], es[4]]) & 0x0fff);
                es = es.get(skip..).unwrap_or(&[]);
            }
        }
        true
    }

    /// Whether a TS packet starts a video keyframe.
    fn starts_keyframe(&self, h: &TsHeader<'_>) -> bool {
        let Some((pid, codec)) = self.video else {
            return false;
        };
        if h.pid != pid || !h.unit_start {
            return false;
        }
        if h.random_access {
            return true;
        }
        // The PES header: start code prefix and stream id (4), length (2),
        // flags (2), header data length (1), then the elementary stream.
        let p = h.payload;
        if p.len() < 9 || p[..3] != [0, 0, 1] {
            return false;
        }
        let es = p.get(9 + usize::from(p[8])..).unwrap_or(&[]);
        rtp::h264::split_annex_b(es)
            .into_iter()
            .any(|nal| codec.is_key_nal(nal))
    }
}

/// What is known of an MPEG-TS stream: its video PID and the last PAT and PMT.
#[derive(Debug, Clone, Default)]
pub struct TsProgram {
    pids: Pids,
    pat: Option<Bytes>,
    pmt: Option<Bytes>,
}

impl TsProgram {
    /// The index (in TS packets) of the first TS packet of an RTP `payload`
    /// that starts a video keyframe, reading the PAT and PMT met on the way (but
    /// not keeping them: see [`TsProgram::learn`]).
    pub fn random_access(&self, payload: &[u8]) -> Option<usize> {
        let mut pids = self.pids;
        payload
            .chunks_exact(TS_PACKET_LEN)
            .enumerate()
            .find_map(|(i, ts)| {
                let h = ts_header(ts)?;
                (!pids.learn(&h) && pids.starts_keyframe(&h)).then_some(i)
            })
    }

    /// Learns the PAT and PMT of an RTP `payload`, keeping the last of each.
    pub fn learn(&mut self, payload: &[u8]) {
        for ts in payload.chunks_exact(TS_PACKET_LEN) {
            let Some(h) = ts_header(ts) else { continue };
            let pid = h.pid;
            if self.pids.learn(&h) && h.unit_start {
                let copy = Some(Bytes::copy_from_slice(ts));
                if pid == PAT_PID {
                    self.pat = copy;
                } else {
                    self.pmt = copy;
                }
            }
        }
    }

    /// The RTP packet a replay starts with, for `pkt` (header and `payload`)
    /// whose TS packet `first` starts a keyframe: the same RTP header, then the
    /// last PAT and PMT, then the TS packets from `first` on. Without a PAT and
    /// PMT known, or when `payload` is not inside `pkt`, `pkt` itself.
    pub fn replay_start(&self, pkt: &Bytes, payload: &[u8], first: usize) -> Bytes {
        let (Some(pat), Some(pmt)) = (&self.pat, &self.pmt) else {
            return pkt.clone();
        };
        let offset = (payload.as_ptr() as usize).wrapping_sub(pkt.as_ptr() as usize);
        let Some(header) = pkt.get(..offset) else {
            return pkt.clone();
        };
        if header.is_empty() || pkt.get(offset..offset + payload.len()).is_none() {
            return pkt.clone();
        }
        let rest = payload
            .get(first * TS_PACKET_LEN..payload.len() / TS_PACKET_LEN * TS_PACKET_LEN)
            .unwrap_or(&[]);
        let mut out = BytesMut::with_capacity(header.len() + 2 * TS_PACKET_LEN + rest.len());
        out.put_slice(header);
        // Any padding of the original is left out.
        out[0] &= !0x20;
        out.put_slice(pat);
        out.put_slice(pmt);
        out.put_slice(rest);
        out.freeze()
    }
}

/// TS packets built by hand, for the tests here and of the keyframe cache.
#[cfg(test)]
pub(crate) mod test_packets {
    use super::{SYNC_BYTE, TS_PACKET_LEN};

    /// A TS packet of `pid` with `body` as payload, stuffed with an adaptation
    /// field (flags `af_flags`) to 188 bytes.
    pub(crate) fn ts(pid: u16, unit_start: bool, af_flags: Option<u8>, body: &[u8]) -> Vec<u8> {
        let mut p = vec![SYNC_BYTE, (pid >> 8) as u8 & 0x1f, pid as u8, 0x10];
        if unit_start {
            p[1] |= 0x40;
        }
        let room = TS_PACKET_LEN - 4 - body.len();
        if af_flags.is_some() || room > 0 {
            p[3] |= 0x20;
            let len = room - 1;
            p.push(len as u8);
            if len > 0 {
                p.push(af_flags.unwrap_or(0));
                p.extend_from_slice(&vec![0xff; len - 1]);
            }
        }
        p.extend_from_slice(body);
        assert_eq!(p.len(), TS_PACKET_LEN);
        p
    }

    fn psi(table_id: u8, fixed: [u8; 5], body: &[u8]) -> Vec<u8> {
        let len = 5 + body.len() + 4;
        let mut s = vec![0, table_id, 0xb0 | (len >> 8) as u8, len as u8];
        s.extend_from_slice(&fixed);
        s.extend_from_slice(body);
        s.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]); // CRC, not checked
        s
    }

    pub(crate) fn pat(pmt_pid: u16) -> Vec<u8> {
        let body = [0, 1, 0xe0 | (pmt_pid >> 8) as u8, pmt_pid as u8];
        ts(0, true, None, &psi(0, [0, 1, 0xc1, 0, 0], &body))
    }

    pub(crate) fn pmt(pmt_pid: u16, streams: &[(u8, u16)]) -> Vec<u8> {
        let mut body = vec![0xe1, 0x00, 0xf0, 0x00];
        for (t, pid) in streams {
            body.extend_from_slice(&[*t, 0xe0 | (pid >> 8) as u8, *pid as u8, 0xf0, 0x00]);
        }
        ts(pmt_pid, true, None, &psi(2, [0, 1, 0xc1, 0, 0], &body))
    }

    /// The first TS packet of a PES whose elementary stream starts with `es`.
    pub(crate) fn pes(pid: u16, af_flags: Option<u8>, es: &[u8]) -> Vec<u8> {
        let mut body = vec![0, 0, 1, 0xe0, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1];
        body.extend_from_slice(es);
        ts(pid, true, af_flags, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::test_packets::*;
    use super::*;

    const AUD_SPS: &[u8] = &[0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 0x64, 0, 0x1f];
    const AUD_IDR: &[u8] = &[0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x65, 0x88, 0x84];
    const AUD_P: &[u8] = &[0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x41, 0x9a, 0x02];
    const RAI: Option<u8> = Some(0x40);

    fn cat(packets: &[Vec<u8>]) -> Vec<u8> {
        packets.concat()
    }

    #[test]
    fn only_the_video_pid_of_the_pmt_counts() {
        let mut prog = TsProgram::default();
        let audio_rai = pes(0x101, RAI, &[0xff, 0xf1, 0x50, 0x80]);
        let video_rai = pes(0x100, RAI, AUD_P);
        // Before the PMT nothing is a keyframe, not even a flagged video packet.
        assert_eq!(
            prog.random_access(&cat(&[audio_rai.clone(), video_rai.clone()])),
            None
        );
        // A PAT and PMT in the same payload count at once.
        let head = cat(&[pat(0x1000), pmt(0x1000, &[(0x0f, 0x101), (0x1b, 0x100)])]);
        let with_psi = cat(&[head.clone(), audio_rai.clone(), video_rai.clone()]);
        assert_eq!(
            prog.random_access(&with_psi),
            Some(3),
            "the video packet, not the audio one"
        );
        prog.learn(&head);
        assert_eq!(
            prog.random_access(&audio_rai),
            None,
            "audio RAI is no keyframe"
        );
        assert_eq!(prog.random_access(&video_rai), Some(0));
        // Without the flag, the PES content decides.
        assert_eq!(prog.random_access(&pes(0x100, None, AUD_SPS)), Some(0));
        assert_eq!(prog.random_access(&pes(0x100, None, AUD_IDR)), Some(0));
        assert_eq!(prog.random_access(&pes(0x100, None, AUD_P)), None);
        // A continuation (no unit start) never starts one, flagged or not.
        assert_eq!(prog.random_access(&ts(0x100, false, RAI, AUD_SPS)), None);
        // Broken sync or an error indicator: not trusted.
        let mut bad = pes(0x100, RAI, AUD_SPS);
        bad[0] = 0;
        assert_eq!(prog.random_access(&bad), None);
        bad[0] = SYNC_BYTE;
        bad[1] |= 0x80;
        assert_eq!(prog.random_access(&bad), None);
        assert_eq!(
            prog.random_access(&video_rai[..100]),
            None,
            "not a whole packet"
        );
    }

    #[test]
    fn h265_and_mpeg2_video_and_a_changed_program() {
        let mut prog = TsProgram::default();
        prog.learn(&cat(&[pat(0x20), pmt(0x20, &[(0x24, 0x44)])]));
        let cra = [0, 0, 0, 1, 0x46, 1, 0x50, 0, 0, 1, 21 << 1, 1];
        let trail = [0, 0, 0, 1, 0x46, 1, 0x50, 0, 0, 1, 1 << 1, 1];
        let vps = [0, 0, 1, 32 << 1, 1, 0xc];
        assert_eq!(prog.random_access(&pes(0x44, None, &cra)), Some(0));
        assert_eq!(prog.random_access(&pes(0x44, None, &vps)), Some(0));
        assert_eq!(prog.random_access(&pes(0x44, None, &trail)), None);
        // A new PAT pointing elsewhere forgets the video PID until its PMT.
        prog.learn(&pat(0x30));
        assert_eq!(prog.random_access(&pes(0x44, RAI, &cra)), None);
        prog.learn(&pmt(0x30, &[(0x02, 0x45)]));
        assert_eq!(
            prog.random_access(&pes(0x45, RAI, &[0, 0, 1, 0xb3])),
            Some(0)
        );
        assert_eq!(
            prog.random_access(&pes(0x45, None, &[0, 0, 1, 0xb3])),
            None,
            "flag only"
        );
    }

    #[test]
    fn the_replay_starts_with_pat_and_pmt_at_the_keyframe() {
        let mut prog = TsProgram::default();
        let pat = pat(0x1000);
        let pmt = pmt(0x1000, &[(0x1b, 0x100), (0x0f, 0x101)]);
        let audio = pes(0x101, RAI, &[0xff, 0xf1]);
        let tail = ts(0x100, false, None, &[0xaa; 20]);
        let key = pes(0x100, RAI, AUD_SPS);
        let mut rtp = vec![0x80 | 0x20, 33, 0, 7, 0, 0, 0, 9, 1, 2, 3, 4];
        let payload = cat(&[tail, audio.clone(), key.clone(), audio.clone()]);
        rtp.extend_from_slice(&payload);
        rtp.extend_from_slice(&[0, 0, 2]); // padding
        let pkt = Bytes::from(rtp);
        let payload = &pkt[12..12 + payload.len()];
        assert_eq!(prog.random_access(payload), None, "no PMT known yet");
        assert_eq!(prog.replay_start(&pkt, payload, 2), pkt, "no PSI known yet");
        prog.learn(&cat(&[pat.clone(), pmt.clone()]));
        assert_eq!(prog.random_access(payload), Some(2));
        let start = prog.replay_start(&pkt, payload, 2);
        assert_eq!(
            start[..12],
            [0x80, 33, 0, 7, 0, 0, 0, 9, 1, 2, 3, 4],
            "padding bit off"
        );
        assert_eq!(start[12..], cat(&[pat, pmt, key, audio])[..]);
        // A payload that is not the packet's: left alone.
        let elsewhere = Bytes::copy_from_slice(payload);
        assert_eq!(prog.replay_start(&pkt, &elsewhere, 2), pkt);
    }
}
