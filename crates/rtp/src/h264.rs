//! H.264 helpers: Annex B byte stream splitting (ITU-T H.264 annex B), NAL unit types,
//! keyframe detection on RTP payloads and packetization (RFC 6184,
//! packetization-mode 1: single NAL unit packets and FU-A fragments).

use bytes::{BufMut, Bytes, BytesMut};

/// NAL unit type: coded slice of a non-IDR picture.
pub const NAL_SLICE: u8 = 1;
/// NAL unit type: coded slice of an IDR picture.
pub const NAL_IDR: u8 = 5;
/// NAL unit type: supplemental enhancement information.
pub const NAL_SEI: u8 = 6;
/// NAL unit type: sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type: picture parameter set.
pub const NAL_PPS: u8 = 8;
/// NAL unit type: access unit delimiter.
pub const NAL_AUD: u8 = 9;
/// NAL unit type: end of sequence.
pub const NAL_END_OF_SEQUENCE: u8 = 10;
/// NAL unit type: end of stream.
pub const NAL_END_OF_STREAM: u8 = 11;
/// RTP payload type (RFC 6184): single-time aggregation packet.
pub const NAL_STAP_A: u8 = 24;
/// RTP payload type (RFC 6184): fragmentation unit A.
pub const NAL_FU_A: u8 = 28;

/// The NAL units of an Annex B byte stream, without their start codes (3 or 4 bytes).
/// Bytes before the first start code are ignored, trailing zero bytes of each unit
/// (the leading zero of a 4-byte start code, `trailing_zero_8bits`) are dropped, and
/// empty units are skipped.
pub fn split_annex_b(data: &[u8]) -> Vec<&[u8]> {
    let mut nals = Vec::new();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i + 2 < data.len() {
        let third = data[i + 2];
        if third > 1 {
            // No start code can begin at i, i+1 or i+2.
            i += 3;
        } else if third == 1 && data[i] == 0 && data[i + 1] == 0 {
            if let Some(s) = start {
                push_trimmed(&data[s..i], &mut nals);
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        push_trimmed(&data[s..], &mut nals);
    }
    nals
}

/// Push `nal` without its trailing zero bytes, unless nothing is left.
fn push_trimmed<'a>(nal: &'a [u8], nals: &mut Vec<&'a [u8]>) {
    let end = nal.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    if end > 0 {
        nals.push(&nal[..end]);
    }
}

/// The type of a NAL unit (low 5 bits of its first byte); `None` if it is empty.
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

fn is_key_type(t: u8) -> bool {
    t == NAL_IDR || t == NAL_SPS
}

/// Whether an H.264 RTP payload (RFC 6184) starts a keyframe: a single IDR slice or
/// SPS NAL unit, a STAP-A aggregating one, or the first FU-A fragment of one.
pub fn is_keyframe(rtp_payload: &[u8]) -> bool {
    let Some(t) = nal_type(rtp_payload) else {
        return false;
    };
    match t {
        NAL_STAP_A => {
            stap_units(&rtp_payload[1..]).any(|nal| nal_type(nal).is_some_and(is_key_type))
        }
        NAL_FU_A => match rtp_payload.get(1) {
            Some(&fu) => fu & 0x80 != 0 && is_key_type(fu & 0x1f),
            None => false,
        },
        t => is_key_type(t),
    }
}

/// The NAL units of a STAP-A body (after its header byte): 16-bit size, unit, and so on.
/// Stops at the first size running past the end.
fn stap_units(mut body: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let size = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
        let unit = body.get(2..2 + size)?;
        body = &body[2 + size..];
        Some(unit)
    })
}

/// Packetize one NAL unit (without start code) per RFC 6184 packetization-mode 1 and
/// append the RTP payloads to `out`: a single NAL unit packet if it fits in
/// `max_payload` bytes, FU-A fragments otherwise. `max_payload` below 3 is treated as
/// 3 (an FU-A fragment needs two header bytes plus data). An empty NAL unit produces
/// nothing.
pub fn packetize(nal: &[u8], max_payload: usize, out: &mut Vec<Bytes>) {
    let Some((&header, body)) = nal.split_first() else {
        return;
    };
    let max_payload = max_payload.max(3);
    if nal.len() <= max_payload {
        out.push(Bytes::copy_from_slice(nal));
        return;
    }
    let indicator = (header & 0xe0) | NAL_FU_A;
    let nal_type = header & 0x1f;
    let chunk_len = max_payload - 2;
    let last = body.len().div_ceil(chunk_len) - 1;
    out.reserve(last + 1);
    for (i, chunk) in body.chunks(chunk_len).enumerate() {
        let mut fu = nal_type;
        if i == 0 {
            fu |= 0x80;
        }
        if i == last {
            fu |= 0x40;
        }
        let mut p = BytesMut::with_capacity(2 + chunk.len());
        p.put_u8(indicator);
        p.put_u8(fu);
        p.put_slice(chunk);
        out.push(p.freeze());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 0x42, 0x00, 0x1f, // SPS, 4-byte start code
            0, 0, 1, 0x68, 0xce, 0x38, 0x80, // PPS, 3-byte
            0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x00, // IDR with trailing zeros
            0, 0, 1, 0x09, 0xf0, // AUD
        ];
        let nals = split_annex_b(&data);
        assert_eq!(
            nals,
            vec![
                &[0x67, 0x42, 0x00, 0x1f][..],
                &[0x68, 0xce, 0x38, 0x80][..],
                &[0x65, 0x88, 0x84][..],
                &[0x09, 0xf0][..],
            ]
        );
        let types: Vec<u8> = nals.iter().filter_map(|n| nal_type(n)).collect();
        assert_eq!(types, vec![7, 8, 5, 9]);
    }

    #[test]
    fn split_edge_cases() {
        assert!(split_annex_b(&[]).is_empty());
        assert!(split_annex_b(&[0, 0]).is_empty());
        assert!(split_annex_b(&[0, 0, 1]).is_empty());
        assert!(split_annex_b(&[0, 0, 0, 1, 0, 0, 1]).is_empty());
        // No start code at all: nothing.
        assert!(split_annex_b(&[0x65, 1, 2, 3]).is_empty());
        // Garbage before the first start code is skipped.
        assert_eq!(
            split_annex_b(&[7, 7, 0, 0, 1, 0x41, 9]),
            vec![&[0x41, 9][..]]
        );
        // A NAL unit whose data contains 0x000002 / 0x000003 (not start codes).
        assert_eq!(
            split_annex_b(&[0, 0, 1, 0x41, 0, 0, 3, 1, 0, 0, 2]),
            vec![&[0x41, 0, 0, 3, 1, 0, 0, 2][..]]
        );
        // Start code at the very end.
        assert_eq!(split_annex_b(&[0, 0, 1, 0x41, 0, 0, 1]), vec![&[0x41][..]]);
        // Long run of zeros between units.
        assert_eq!(
            split_annex_b(&[0, 0, 1, 0x41, 5, 0, 0, 0, 0, 0, 0, 1, 0x41, 6]),
            vec![&[0x41, 5][..], &[0x41, 6][..]]
        );
    }

    #[test]
    fn nal_types() {
        assert_eq!(nal_type(&[]), None);
        assert_eq!(nal_type(&[0x65]), Some(5));
        assert_eq!(nal_type(&[0x67, 0]), Some(7));
        assert_eq!(nal_type(&[0x41]), Some(1));
        assert_eq!(nal_type(&[0xff]), Some(31));
    }

    #[test]
    fn keyframes_single_nal() {
        assert!(is_keyframe(&[0x65, 0x88]));
        assert!(is_keyframe(&[0x67, 0x42, 0, 0x1f]));
        assert!(!is_keyframe(&[0x68, 0xce]));
        assert!(!is_keyframe(&[0x41, 0x9a]));
        assert!(!is_keyframe(&[0x06, 0x05]));
        assert!(!is_keyframe(&[]));
    }

    #[test]
    fn keyframes_stap_a() {
        // STAP-A: SPS (4 bytes) + PPS (2 bytes).
        let stap = [0x78, 0, 4, 0x67, 0x42, 0, 0x1f, 0, 2, 0x68, 0xce];
        assert!(is_keyframe(&stap));
        // STAP-A with only PPS + SEI.
        let stap = [0x78, 0, 2, 0x68, 0xce, 0, 2, 0x06, 0x05];
        assert!(!is_keyframe(&stap));
        // Truncated: the second unit (SPS) runs past the end -> not seen.
        let stap = [0x78, 0, 2, 0x68, 0xce, 0, 9, 0x67, 0x42];
        assert!(!is_keyframe(&stap));
        // Zero-size unit then IDR.
        let stap = [0x78, 0, 0, 0, 1, 0x65];
        assert!(is_keyframe(&stap));
        assert!(!is_keyframe(&[0x78]));
        assert!(!is_keyframe(&[0x78, 0]));
    }

    #[test]
    fn keyframes_fu_a() {
        assert!(is_keyframe(&[0x7c, 0x85, 1, 2])); // start of IDR
        assert!(!is_keyframe(&[0x7c, 0x05, 1, 2])); // middle of IDR
        assert!(!is_keyframe(&[0x7c, 0x45, 1, 2])); // end of IDR
        assert!(!is_keyframe(&[0x5c, 0x81, 1, 2])); // start of non-IDR slice
        assert!(is_keyframe(&[0x7c, 0x87])); // start of SPS (odd but valid)
        assert!(!is_keyframe(&[0x7c]));
    }

    #[test]
    fn packetize_single_nal_when_it_fits() {
        let nal = [0x65u8; 100];
        let mut out = Vec::new();
        packetize(&nal, 100, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0][..], &nal[..]);
        packetize(&[], 100, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn packetize_fu_a_reassembles() {
        let mut nal = vec![0x65u8];
        nal.extend((0..1000u32).map(|i| (i % 251) as u8));
        let mut out = Vec::new();
        packetize(&nal, 300, &mut out);
        // 1000 body bytes in chunks of 298.
        assert_eq!(out.len(), 4);
        let mut body = Vec::new();
        for (i, p) in out.iter().enumerate() {
            assert!(p.len() <= 300);
            assert_eq!(p[0], 0x60 | 28, "NRI kept, type FU-A");
            assert_eq!(p[1] & 0x1f, 5);
            assert_eq!(p[1] & 0x80 != 0, i == 0, "start bit");
            assert_eq!(p[1] & 0x40 != 0, i == out.len() - 1, "end bit");
            assert_eq!(p[1] & 0x20, 0, "reserved bit");
            body.extend_from_slice(&p[2..]);
        }
        assert_eq!(&body[..], &nal[1..]);
        assert!(is_keyframe(&out[0]));
        assert!(!is_keyframe(&out[1]));
    }

    #[test]
    fn packetize_exact_boundaries_and_tiny_mtu() {
        // Body of exactly 2 chunks.
        let nal: Vec<u8> = std::iter::once(0x41).chain(0..20).collect();
        let mut out = Vec::new();
        packetize(&nal, 12, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), 12);
        assert_eq!(out[1].len(), 12);
        assert_eq!(out[1][1], 0x41);
        // A NAL one byte over the limit.
        out.clear();
        packetize(&nal, 20, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0][1], 0x81);
        assert_eq!(out[1][1], 0x41);
        // max_payload 0 -> 3: one body byte per fragment.
        out.clear();
        packetize(&[0x41, 1, 2, 3, 4], 0, &mut out);
        assert_eq!(out.len(), 4);
        assert!(out.iter().all(|p| p.len() == 3));
        // A single-byte NAL always fits.
        out.clear();
        packetize(&[0x41], 0, &mut out);
        assert_eq!(out.len(), 1);
    }
}
