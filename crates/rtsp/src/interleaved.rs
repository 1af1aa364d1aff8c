//! Interleaved binary frames on the RTSP connection (RFC 2326 section
//! 10.12): `$`, a channel byte, a big-endian 16-bit length, the payload.
//! Parsing is done by [`crate::parse_frame`].

use bytes::{BufMut, BytesMut};

/// Largest payload one interleaved frame can carry.
pub const MAX_PAYLOAD: usize = 65535;

/// The 4-byte header of an interleaved frame.
pub fn header(channel: u8, len: u16) -> [u8; 4] {
    let [hi, lo] = len.to_be_bytes();
    [b'$', channel, hi, lo]
}

/// A payload longer than [`MAX_PAYLOAD`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("interleaved payload of {0} bytes exceeds 65535")]
pub struct PayloadTooLarge(pub usize);

/// Appends a whole frame (header and payload) to `out`.
pub fn encode(channel: u8, payload: &[u8], out: &mut BytesMut) -> Result<(), PayloadTooLarge> {
    let len = u16::try_from(payload.len()).map_err(|_| PayloadTooLarge(payload.len()))?;
    out.reserve(4 + payload.len());
    out.put_slice(&header(channel, len));
    out.put_slice(payload);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_frame, Frame, Limits};

    #[test]
    fn header_layout() {
        assert_eq!(header(1, 0x017f), [b'$', 1, 0x01, 0x7f]);
        assert_eq!(header(255, u16::MAX), [b'$', 255, 0xff, 0xff]);
    }

    #[test]
    fn encode_parses_back() {
        let mut out = BytesMut::new();
        encode(3, b"rtcp", &mut out).unwrap();
        encode(0, &vec![7u8; MAX_PAYLOAD], &mut out).unwrap();
        assert_eq!(
            encode(0, &vec![0u8; MAX_PAYLOAD + 1], &mut out),
            Err(PayloadTooLarge(MAX_PAYLOAD + 1))
        );
        let limits = Limits::default();
        let Ok(Some(Frame::Interleaved {
            channel: 3,
            payload,
        })) = parse_frame(&mut out, &limits)
        else {
            panic!()
        };
        assert_eq!(&payload[..], b"rtcp");
        let Ok(Some(Frame::Interleaved {
            channel: 0,
            payload,
        })) = parse_frame(&mut out, &limits)
        else {
            panic!()
        };
        assert_eq!(payload.len(), MAX_PAYLOAD);
        assert!(out.is_empty());
    }
}
