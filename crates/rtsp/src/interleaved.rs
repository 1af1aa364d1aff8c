//! Interleaved binary frames on the RTSP connection (RFC 2326 section
//! 10.12): `$`, a channel byte, a big-endian 16-bit length, the payload.
//! Parsing is done by [`crate::parse_frame`].

use bytes::{Buf, BufMut, BytesMut};

/// Largest payload one interleaved frame can carry.
pub const MAX_PAYLOAD: usize = 65535;

/// The 4-byte header of an interleaved frame.
pub fn header(channel: u8, len: u16) -> [u8; 4] {
    let [hi, lo] = len.to_be_bytes();
    [b'$', channel, hi, lo]
}

/// Takes the interleaved frame at the front of `buf` if `buf` starts with one
/// and holds all of it: its channel and its payload, as a `BytesMut` of its own
/// (mutable in place, no copy; `crate::parse_frame` gives a shared `Bytes`).
/// `None` when `buf` does not start with `$` or the frame is incomplete.
///
/// Like [`crate::parse_frame`], it first drops the white space that may
/// separate messages (CR, LF, SP, HT; servers send a stray CRLF after a
/// response), so a frame `parse_frame` would see is never left to it.
pub fn split_frame(buf: &mut BytesMut) -> Option<(u8, BytesMut)> {
    crate::parse::skip_message_gap(buf);
    let header = buf.get(..4)?;
    if header[0] != b'$' {
        return None;
    }
    let channel = header[1];
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if buf.len() < 4 + len {
        return None;
    }
    buf.advance(4);
    Some((channel, buf.split_to(len)))
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
    fn split_frame_takes_whole_frames_only() {
        let mut buf = BytesMut::new();
        encode(2, b"abc", &mut buf).unwrap();
        encode(3, b"", &mut buf).unwrap();
        buf.put_slice(b"RTSP/1.0 200 OK\r\n");
        let (ch, mut payload) = split_frame(&mut buf).expect("first frame");
        assert_eq!((ch, &payload[..]), (2, &b"abc"[..]));
        payload[0] = b'X'; // ours to rewrite in place
        assert_eq!(
            split_frame(&mut buf).map(|(c, p)| (c, p.len())),
            Some((3, 0))
        );
        assert_eq!(
            split_frame(&mut buf),
            None,
            "a response is left to parse_frame"
        );
        assert!(buf.starts_with(b"RTSP/1.0"));
        let mut partial = BytesMut::from(&b"$\x01\x00\x05ab"[..]);
        assert_eq!(split_frame(&mut partial), None);
        assert_eq!(partial.len(), 6, "nothing consumed");
        assert_eq!(split_frame(&mut BytesMut::from(&b"$\x01"[..])), None);
    }

    /// Found by the `interleaved` fuzz target: a CRLF after a response made
    /// `split_frame` miss the next frame, which `parse_frame` (skipping the
    /// CRLF) then took, and the back-end reader dropped it as "already taken".
    #[test]
    fn split_frame_skips_white_space_between_messages() {
        let mut buf = BytesMut::from(&b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n\r\n$\x00\x00\x02ab"[..]);
        let limits = Limits::default();
        assert!(split_frame(&mut buf).is_none(), "a response first");
        assert!(matches!(
            parse_frame(&mut buf, &limits),
            Ok(Some(Frame::Response(_)))
        ));
        let (channel, payload) = split_frame(&mut buf).expect("the frame after the CRLF");
        assert_eq!((channel, &payload[..]), (0, &b"ab"[..]));
        assert!(buf.is_empty());

        for gap in [&b" \t\r\n"[..], b"\n", b"\r\n\r\n"] {
            let mut buf = BytesMut::from(gap);
            buf.extend_from_slice(b"$\x01\x00\x01z");
            assert_eq!(
                split_frame(&mut buf).map(|(c, p)| (c, p.to_vec())),
                Some((1, b"z".to_vec())),
                "{gap:?}"
            );
        }
        // Only white space, or white space and a partial frame: nothing taken,
        // the frame stays for later.
        let mut buf = BytesMut::from(&b"\r\n$\x01\x00\x05ab"[..]);
        assert_eq!(split_frame(&mut buf), None);
        assert_eq!(&buf[..], b"$\x01\x00\x05ab");
        let mut buf = BytesMut::from(&b"\r\nOPTIONS"[..]);
        assert_eq!(split_frame(&mut buf), None);
        assert_eq!(&buf[..], b"OPTIONS", "a message is left to parse_frame");
    }

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
