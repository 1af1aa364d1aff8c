//! H.264 RTP payloads cut to the WebRTC packet size (sans-IO). Cameras
//! packetize for Ethernet (often 1400 bytes and more); browsers' paths are
//! often narrower, so a payload bigger than the limit is re-fragmented as
//! FU-A (RFC 6184 5.8): a single NAL unit is packetized, an FU-A is cut into
//! smaller FU-As (start and end bits kept on the outer pieces), a STAP-A is
//! split into its NAL units. What fits goes as it is.

use std::sync::Arc;

const STAP_A: u8 = 24;
const FU_A: u8 = 28;

/// The payloads to send for one H.264 RTP `payload`, each at most
/// `max_payload` bytes where the format allows it (an unknown aggregation
/// type goes as it is). Appended to `out`.
pub fn fit_h264(payload: &[u8], max_payload: usize, out: &mut Vec<Arc<[u8]>>) {
    let max_payload = max_payload.max(3);
    let Some(&first) = payload.first() else {
        return;
    };
    if payload.len() <= max_payload {
        out.push(payload.into());
        return;
    }
    match first & 0x1f {
        1..=23 => packetize(payload, max_payload, out),
        STAP_A => {
            let mut rest = &payload[1..];
            while rest.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let Some(nal) = rest.get(2..2 + len) else {
                    return;
                };
                if nal.len() <= max_payload {
                    out.push(nal.into());
                } else {
                    packetize(nal, max_payload, out);
                }
                rest = &rest[2 + len..];
            }
        }
        FU_A if payload.len() > 2 => {
            let (indicator, header) = (payload[0], payload[1]);
            let data = &payload[2..];
            let chunk = max_payload - 2;
            let last = data.len().div_ceil(chunk) - 1;
            for (i, piece) in data.chunks(chunk).enumerate() {
                let mut fu = header & 0x1f;
                if i == 0 {
                    fu |= header & 0x80;
                }
                if i == last {
                    fu |= header & 0x40;
                }
                let mut p = Vec::with_capacity(2 + piece.len());
                p.push(indicator);
                p.push(fu);
                p.extend_from_slice(piece);
                out.push(p.into());
            }
        }
        _ => out.push(payload.into()),
    }
}

fn packetize(nal: &[u8], max_payload: usize, out: &mut Vec<Arc<[u8]>>) {
    let mut pieces = Vec::new();
    rtp::h264::packetize(nal, max_payload, &mut pieces);
    out.extend(pieces.iter().map(|p| Arc::<[u8]>::from(&p[..])));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(payload: &[u8], max: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        fit_h264(payload, max, &mut out);
        out.iter().map(|p| p.to_vec()).collect()
    }

    /// Reassembles FU-A pieces into the NAL unit they carry.
    fn reassemble(pieces: &[Vec<u8>]) -> Vec<u8> {
        let first = &pieces[0];
        assert_eq!(first[0] & 0x1f, FU_A);
        assert!(first[1] & 0x80 != 0, "start bit on the first piece");
        assert!(pieces.last().unwrap()[1] & 0x40 != 0, "end bit on the last");
        let mut nal = vec![(first[0] & 0xe0) | (first[1] & 0x1f)];
        for p in pieces {
            nal.extend_from_slice(&p[2..]);
        }
        nal
    }

    #[test]
    fn what_fits_is_unchanged() {
        assert_eq!(fit(&[0x65, 1, 2, 3], 1200), vec![vec![0x65, 1, 2, 3]]);
        assert!(fit(&[], 1200).is_empty());
    }

    #[test]
    fn a_big_nal_unit_becomes_fu_a_pieces() {
        let nal: Vec<u8> = std::iter::once(0x65)
            .chain((0..3000).map(|i| i as u8))
            .collect();
        let pieces = fit(&nal, 1200);
        assert_eq!(pieces.len(), 3);
        assert!(pieces.iter().all(|p| p.len() <= 1200));
        assert_eq!(reassemble(&pieces), nal);
    }

    #[test]
    fn a_big_fu_a_is_cut_keeping_its_start_and_end_bits() {
        let data: Vec<u8> = (0..2500).map(|i| i as u8).collect();
        // A middle fragment (no S, no E) and a start fragment.
        let mut middle = vec![0x7c, 0x05];
        middle.extend_from_slice(&data);
        let pieces = fit(&middle, 1000);
        assert_eq!(pieces.len(), 3);
        assert!(pieces.iter().all(|p| p[1] & 0xc0 == 0 && p.len() <= 1000));
        let mut start = vec![0x7c, 0x85];
        start.extend_from_slice(&data);
        let pieces = fit(&start, 1000);
        assert_eq!(pieces[0][1], 0x85);
        assert_eq!(pieces[1][1], 0x05);
        assert_eq!(pieces[2][1], 0x05);
        let joined: Vec<u8> = pieces.iter().flat_map(|p| p[2..].to_vec()).collect();
        assert_eq!(joined, data);
        let mut end = vec![0x7c, 0x45];
        end.extend_from_slice(&data);
        let pieces = fit(&end, 1000);
        assert_eq!(pieces[0][1], 0x05);
        assert_eq!(pieces[2][1], 0x45);
    }

    #[test]
    fn a_big_stap_a_is_split_into_its_nal_units() {
        let sps = vec![0x67, 1, 2, 3];
        let idr: Vec<u8> = std::iter::once(0x65)
            .chain((0..1500).map(|i| i as u8))
            .collect();
        let mut stap = vec![0x78];
        for nal in [&sps, &idr] {
            stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            stap.extend_from_slice(nal);
        }
        let pieces = fit(&stap, 1200);
        assert_eq!(pieces[0], sps);
        assert_eq!(reassemble(&pieces[1..]), idr);
        // A truncated one stops at the damage.
        let pieces = fit(&stap[..stap.len() - 1], 1200);
        assert_eq!(pieces, vec![sps]);
    }
}
