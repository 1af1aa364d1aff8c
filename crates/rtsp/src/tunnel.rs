//! RTSP-over-HTTP tunnelling: the base64 stream carried by the `POST`
//! connection, decoded incrementally.

use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
use base64::{alphabet, Engine as _};
use bytes::{BufMut, BytesMut};

/// A tunnelled stream that is not valid base64.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TunnelError {
    /// A byte outside the base64 alphabet (whitespace aside).
    #[error("invalid base64 byte 0x{0:02x} in tunnelled data")]
    InvalidByte(u8),
    /// `=` padding in a place where it cannot be.
    #[error("invalid base64 padding in tunnelled data")]
    InvalidPadding,
}

/// Incremental base64 decoder for the body of a tunnelling `POST`.
///
/// Spaces, tabs, CR and LF are skipped. Input is decoded in complete
/// 4-character groups, each of which may end with `=` padding (clients
/// encode each RTSP request separately, so padding can appear mid-stream);
/// 1 to 3 leftover characters wait for the next [`Base64Decoder::push`]. At
/// most 3 characters are ever pending.
#[derive(Clone, Debug, Default)]
pub struct Base64Decoder {
    pending: [u8; 4],
    pending_len: usize,
}

/// Standard base64 for one 4-character group. Trailing bits that do not
/// fit a whole byte are ignored rather than refused, as tunnelling clients
/// are not all canonical.
const GROUP: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Whether `c` is in the standard base64 alphabet (`=` padding aside).
fn in_alphabet(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'+' || c == b'/'
}

impl Base64Decoder {
    /// A decoder with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of characters waiting for the rest of their group (0 to 3).
    pub fn pending(&self) -> usize {
        self.pending_len
    }

    /// Decodes `input`, appending the bytes of every completed group to
    /// `out`. On error the decoder should be discarded (the connection
    /// closed); `out` holds what was decoded before the bad group.
    pub fn push(&mut self, input: &[u8], out: &mut BytesMut) -> Result<(), TunnelError> {
        out.reserve(input.len() / 4 * 3 + 3);
        for &c in input {
            if matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
                continue;
            }
            if c != b'=' && !in_alphabet(c) {
                return Err(TunnelError::InvalidByte(c));
            }
            self.pending[self.pending_len] = c;
            self.pending_len += 1;
            if self.pending_len == 4 {
                self.pending_len = 0;
                decode_group(self.pending, out)?;
            }
        }
        Ok(())
    }
}

/// Decodes one 4-character group, padding allowed at its end only.
fn decode_group(g: [u8; 4], out: &mut BytesMut) -> Result<(), TunnelError> {
    let mut bytes = [0u8; 3];
    let n = GROUP
        .decode_slice(g, &mut bytes)
        .map_err(|_| TunnelError::InvalidPadding)?;
    out.put_slice(&bytes[..n]);
    Ok(())
}

/// Standard base64 (with padding) of `data`, as a tunnelling client sends
/// it.
pub fn encode_base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &[u8] =
        b"DESCRIBE rtsp://127.0.0.1:31555/proxyStream RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n";

    fn decode_in_chunks(encoded: &[u8], chunk: usize) -> Vec<u8> {
        let mut d = Base64Decoder::new();
        let mut out = BytesMut::new();
        for piece in encoded.chunks(chunk) {
            d.push(piece, &mut out).unwrap();
        }
        assert_eq!(d.pending(), 0);
        out.to_vec()
    }

    #[test]
    fn odd_chunk_sizes() {
        let encoded = encode_base64(REQUEST);
        for chunk in 1..=encoded.len() {
            assert_eq!(
                decode_in_chunks(encoded.as_bytes(), chunk),
                REQUEST,
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn whitespace_and_concatenated_padded_messages() {
        // Two separately encoded requests, with line breaks, as QuickTime and
        // ffmpeg send them.
        let mut stream = encode_base64(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n");
        stream.push_str("\r\n");
        stream.push_str(&encode_base64(b"x"));
        stream.push_str(" \t");
        stream.push_str(&encode_base64(b"yz"));
        let expected = b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\nxyz";
        for chunk in [1, 2, 3, 5, 7, 64] {
            assert_eq!(decode_in_chunks(stream.as_bytes(), chunk), expected);
        }
    }

    #[test]
    fn leftover_is_kept() {
        let mut d = Base64Decoder::new();
        let mut out = BytesMut::new();
        d.push(b"T1BU", &mut out).unwrap();
        assert_eq!(&out[..], b"OPT");
        d.push(b"SU9", &mut out).unwrap();
        assert_eq!(d.pending(), 3);
        assert_eq!(&out[..], b"OPT");
        d.push(b"OUw==", &mut out).unwrap();
        assert_eq!(&out[..], b"OPTIONS");
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn non_canonical_trailing_bits_are_ignored() {
        // "QR==": 'Q' 'R' carry 12 bits, 'A' (0x41) and 4 extra bits (0001).
        let mut out = BytesMut::new();
        Base64Decoder::new().push(b"QR==QUI=", &mut out).unwrap();
        assert_eq!(&out[..], b"AAB");
    }

    #[test]
    fn invalid_input() {
        let mut out = BytesMut::new();
        assert_eq!(
            Base64Decoder::new().push(b"AB*D", &mut out),
            Err(TunnelError::InvalidByte(b'*'))
        );
        assert_eq!(
            Base64Decoder::new().push(b"A===", &mut out),
            Err(TunnelError::InvalidPadding)
        );
        assert_eq!(
            Base64Decoder::new().push(b"AB=C", &mut out),
            Err(TunnelError::InvalidPadding)
        );
        assert_eq!(
            Base64Decoder::new().push(b"====", &mut out),
            Err(TunnelError::InvalidPadding)
        );
        assert_eq!(
            Base64Decoder::new().push(b"\x00", &mut out),
            Err(TunnelError::InvalidByte(0))
        );
        assert!(out.is_empty());
    }
}
