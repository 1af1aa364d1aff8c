//! H.265 helpers: NAL unit types and keyframe detection on RTP payloads (RFC 7798).
//! Annex B splitting is the same as for H.264 and is re-exported from there.

pub use crate::h264::split_annex_b;

/// First IRAP (intra random access point) NAL unit type (BLA_W_LP).
pub const NAL_IRAP_FIRST: u8 = 16;
/// Last IRAP NAL unit type (CRA_NUT).
pub const NAL_IRAP_LAST: u8 = 21;
/// NAL unit type: video parameter set.
pub const NAL_VPS: u8 = 32;
/// NAL unit type: sequence parameter set.
pub const NAL_SPS: u8 = 33;
/// NAL unit type: picture parameter set.
pub const NAL_PPS: u8 = 34;
/// RTP payload type (RFC 7798): aggregation packet.
pub const NAL_AP: u8 = 48;
/// RTP payload type (RFC 7798): fragmentation unit.
pub const NAL_FU: u8 = 49;

/// The type of a NAL unit (bits 1..=6 of its first byte); `None` if it is shorter than
/// the 2-byte H.265 NAL unit header.
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    match nal {
        [b0, _, ..] => Some((b0 >> 1) & 0x3f),
        _ => None,
    }
}

fn is_key_type(t: u8) -> bool {
    (NAL_IRAP_FIRST..=NAL_IRAP_LAST).contains(&t) || t == NAL_VPS || t == NAL_SPS
}

/// Whether an H.265 RTP payload (RFC 7798) starts a keyframe: a single IRAP, VPS or
/// SPS NAL unit, an aggregation packet containing one, or the first fragment of one.
///
/// Aggregation packets are read without DONL/DOND fields (the usual
/// `sprop-max-don-diff=0` case).
pub fn is_keyframe(rtp_payload: &[u8]) -> bool {
    let Some(t) = nal_type(rtp_payload) else {
        return false;
    };
    match t {
        NAL_AP => {
            let mut body = &rtp_payload[2..];
            // Each round consumes at least two bytes: bounded by the payload length.
            while let [hi, lo, rest @ ..] = body {
                let size = usize::from(u16::from_be_bytes([*hi, *lo]));
                let Some(unit) = rest.get(..size) else {
                    return false;
                };
                if nal_type(unit).is_some_and(is_key_type) {
                    return true;
                }
                body = &rest[size..];
            }
            false
        }
        NAL_FU => match rtp_payload.get(2) {
            Some(&fu) => fu & 0x80 != 0 && is_key_type(fu & 0x3f),
            None => false,
        },
        t => is_key_type(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2-byte NAL unit header of type `t`, layer 0, temporal id 1.
    fn hdr(t: u8) -> [u8; 2] {
        [t << 1, 1]
    }

    #[test]
    fn nal_types() {
        assert_eq!(nal_type(&[]), None);
        assert_eq!(nal_type(&[0x40]), None);
        assert_eq!(nal_type(&[0x40, 0x01]), Some(32)); // VPS
        assert_eq!(nal_type(&[0x42, 0x01]), Some(33)); // SPS
        assert_eq!(nal_type(&[0x44, 0x01]), Some(34)); // PPS
        assert_eq!(nal_type(&[0x26, 0x01]), Some(19)); // IDR_W_RADL
        assert_eq!(nal_type(&[0x02, 0x01]), Some(1)); // TRAIL_R
        assert_eq!(nal_type(&[0xff, 0xff]), Some(63));
    }

    #[test]
    fn keyframes_single_nal() {
        for t in 16..=21 {
            assert!(is_keyframe(&[hdr(t)[0], 1, 0xaf]), "type {t}");
        }
        assert!(is_keyframe(&hdr(32)));
        assert!(is_keyframe(&hdr(33)));
        assert!(!is_keyframe(&hdr(34)));
        assert!(!is_keyframe(&hdr(1)));
        assert!(!is_keyframe(&hdr(15)));
        assert!(!is_keyframe(&hdr(22)));
        assert!(!is_keyframe(&[0x26]));
        assert!(!is_keyframe(&[]));
    }

    #[test]
    fn keyframes_aggregation_packet() {
        let mut ap = hdr(48).to_vec();
        ap.extend_from_slice(&[0, 3, 0x44, 1, 0xc1]); // PPS
        ap.extend_from_slice(&[0, 3, 0x40, 1, 0x0c]); // VPS
        assert!(is_keyframe(&ap));
        let mut ap = hdr(48).to_vec();
        ap.extend_from_slice(&[0, 3, 0x44, 1, 0xc1]); // PPS
        ap.extend_from_slice(&[0, 2, 0x4e, 1]); // SEI
        assert!(!is_keyframe(&ap));
        // Size past the end.
        let mut ap = hdr(48).to_vec();
        ap.extend_from_slice(&[0, 30, 0x40, 1]);
        assert!(!is_keyframe(&ap));
        // Odd trailing byte.
        let mut ap = hdr(48).to_vec();
        ap.extend_from_slice(&[0, 2, 0x44, 1, 0]);
        assert!(!is_keyframe(&ap));
        assert!(!is_keyframe(&hdr(48)));
    }

    #[test]
    fn keyframes_fragmentation_unit() {
        let fu = hdr(49);
        assert!(is_keyframe(&[fu[0], fu[1], 0x80 | 19, 0xaa])); // start of IDR_W_RADL
        assert!(is_keyframe(&[fu[0], fu[1], 0x80 | 21])); // start of CRA
        assert!(!is_keyframe(&[fu[0], fu[1], 19, 0xaa])); // middle
        assert!(!is_keyframe(&[fu[0], fu[1], 0x40 | 19])); // end
        assert!(!is_keyframe(&[fu[0], fu[1], 0x80 | 1])); // start of TRAIL_R
        assert!(!is_keyframe(&fu));
    }

    #[test]
    fn annex_b_split_is_shared() {
        let data = [0, 0, 0, 1, 0x40, 1, 0x0c, 0, 0, 1, 0x26, 1, 0xaf];
        let nals = split_annex_b(&data);
        let types: Vec<u8> = nals.iter().filter_map(|n| nal_type(n)).collect();
        assert_eq!(types, vec![32, 19]);
    }
}
