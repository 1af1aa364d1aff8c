//! RTP fixed header (RFC 3550 section 5.1): validated view, in-place rewriting of
//! sequence number / timestamp / SSRC, header writing, and RTP/RTCP demultiplexing
//! (RFC 5761 section 4).

use bytes::{BufMut, BytesMut};

/// Length of the fixed RTP header, without CSRCs or extension.
pub const FIXED_HEADER_LEN: usize = 12;

/// Why a buffer is not a valid RTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than the 12-byte fixed header.
    #[error("RTP packet too short: {len} bytes, the fixed header needs 12")]
    TooShort {
        /// Length of the buffer.
        len: usize,
    },
    /// The version field is not 2.
    #[error("unsupported RTP version {version}")]
    BadVersion {
        /// The version found in the first two bits.
        version: u8,
    },
    /// The CSRC list announced by the CC field runs past the end of the packet.
    #[error("RTP CSRC list of {count} entries runs past the end of a {len}-byte packet")]
    CsrcOverrun {
        /// The CSRC count.
        count: u8,
        /// Length of the buffer.
        len: usize,
    },
    /// The header extension (its 4-byte header or its announced length) runs past the
    /// end of the packet.
    #[error("RTP header extension runs past the end of a {len}-byte packet")]
    ExtensionOverrun {
        /// Length of the buffer.
        len: usize,
    },
    /// The padding count is zero or larger than what follows the headers.
    #[error("invalid RTP padding count {padding} (only {available} bytes after the headers)")]
    BadPadding {
        /// The padding count (last byte of the packet).
        padding: u8,
        /// Bytes available after the headers.
        available: usize,
    },
    /// The packet is older than the first packet forwarded for the current back-end
    /// mapping; forwarding it would reuse an output sequence number already used by
    /// the previous mapping (or, for a late packet of the previous mapping, give it
    /// a number more than `MAX_MISORDER` behind the highest forwarded). Produced by
    /// [`TrackContinuity::rewrite_rtp`](crate::TrackContinuity::rewrite_rtp); the
    /// packet is left unmodified and must be dropped (this is normal right after a
    /// re-base, not an attack or a bug).
    #[error("late RTP packet (seq {sequence}) from before the current mapping, dropped")]
    BeforeRebase {
        /// Input sequence number of the packet.
        sequence: u16,
    },
    /// The back end is paused ([`TrackContinuity::hold`](crate::TrackContinuity::hold)):
    /// whatever still arrives was sent before the pause took effect and is dropped.
    #[error("RTP packet (seq {sequence}) received while the back end is paused, dropped")]
    Held {
        /// Input sequence number of the packet.
        sequence: u16,
    },
    /// The packet comes before the first sequence number the back end announced for
    /// its new PLAY (RTP-Info, see
    /// [`TrackContinuity::expect_start`](crate::TrackContinuity::expect_start)): it was
    /// sent before that PLAY and is dropped.
    #[error(
        "RTP packet (seq {sequence}) from before the back end's announced start {start}, dropped"
    )]
    BeforeStart {
        /// Input sequence number of the packet.
        sequence: u16,
        /// The announced first sequence number.
        start: u16,
    },
}

/// A validated view of an RTP header. Offsets refer to the buffer given to
/// [`parse_rtp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit.
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: u32,
    /// Offset of the payload: after the fixed header, the CSRC list and the header
    /// extension.
    pub payload_offset: usize,
    /// Length of the payload, excluding padding.
    pub payload_len: usize,
}

impl RtpHeader {
    /// The payload bytes of `buf` (the buffer this header was parsed from).
    /// Returns an empty slice if `buf` is not that buffer and is too short.
    pub fn payload<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        self.payload_offset
            .checked_add(self.payload_len)
            .and_then(|end| buf.get(self.payload_offset..end))
            .unwrap_or(&[])
    }
}

/// Parse and validate an RTP header (RFC 3550 section 5.1 and the checks of A.1):
/// version 2, CSRC list, header extension and padding all within the buffer.
///
/// Note: this does not reject RTCP. When RTP and RTCP share a channel, demultiplex
/// with [`is_rtcp`] first.
pub fn parse_rtp(buf: &[u8]) -> Result<RtpHeader, RtpError> {
    let len = buf.len();
    let fixed = buf
        .get(..FIXED_HEADER_LEN)
        .ok_or(RtpError::TooShort { len })?;
    let b0 = fixed[0];
    let version = b0 >> 6;
    if version != 2 {
        return Err(RtpError::BadVersion { version });
    }
    let has_padding = b0 & 0x20 != 0;
    let has_extension = b0 & 0x10 != 0;
    let csrc_count = b0 & 0x0f;
    let b1 = fixed[1];

    let mut offset = FIXED_HEADER_LEN + 4 * usize::from(csrc_count);
    if offset > len {
        return Err(RtpError::CsrcOverrun {
            count: csrc_count,
            len,
        });
    }
    if has_extension {
        let ext = buf
            .get(offset..offset + 4)
            .ok_or(RtpError::ExtensionOverrun { len })?;
        let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        offset += 4 + 4 * words;
        if offset > len {
            return Err(RtpError::ExtensionOverrun { len });
        }
    }
    let available = len - offset;
    let padding = if has_padding {
        // The last byte counts the padding, itself included; it can't be zero.
        let pad = buf[len - 1];
        if pad == 0 || usize::from(pad) > available {
            return Err(RtpError::BadPadding {
                padding: pad,
                available,
            });
        }
        usize::from(pad)
    } else {
        0
    };

    Ok(RtpHeader {
        marker: b1 & 0x80 != 0,
        payload_type: b1 & 0x7f,
        sequence: u16::from_be_bytes([fixed[2], fixed[3]]),
        timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
        payload_offset: offset,
        payload_len: available - padding,
    })
}

/// Overwrite the sequence number of an RTP packet. Does nothing if `buf` is shorter
/// than the fixed header.
pub fn set_sequence(buf: &mut [u8], seq: u16) {
    if let Some(field) = buf.get_mut(2..4) {
        field.copy_from_slice(&seq.to_be_bytes());
    }
}

/// Overwrite the timestamp of an RTP packet. Does nothing if `buf` is shorter than the
/// fixed header.
pub fn set_timestamp(buf: &mut [u8], ts: u32) {
    if let Some(field) = buf.get_mut(4..8) {
        field.copy_from_slice(&ts.to_be_bytes());
    }
}

/// Overwrite the SSRC of an RTP packet. Does nothing if `buf` is shorter than the fixed
/// header.
pub fn set_ssrc(buf: &mut [u8], ssrc: u32) {
    if let Some(field) = buf.get_mut(8..12) {
        field.copy_from_slice(&ssrc.to_be_bytes());
    }
}

/// Append a 12-byte RTP fixed header (version 2, no padding, no extension, no CSRC).
/// Only the low 7 bits of `payload_type` are used.
pub fn write_header(
    out: &mut BytesMut,
    marker: bool,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
) {
    out.reserve(FIXED_HEADER_LEN);
    out.put_u8(0x80);
    out.put_u8((u8::from(marker) << 7) | (payload_type & 0x7f));
    out.put_u16(sequence);
    out.put_u32(timestamp);
    out.put_u32(ssrc);
}

/// Whether a packet received on a shared RTP/RTCP channel is RTCP (RFC 5761 section 4:
/// the second byte, RTCP packet type or RTP marker+payload type, is in 192..=223).
pub fn is_rtcp(buf: &[u8]) -> bool {
    matches!(buf.get(1), Some(192..=223))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// First packet received over TCP after PLAY from GStreamer's RTSP server
    /// (captures/gst-rtsp-server-tcp.txt): channel 2, 0x17f bytes, AAC, PT 97,
    /// seq 21902 and rtptime 4034566517 as announced in its RTP-Info.
    fn gst_audio_packet() -> Vec<u8> {
        let mut p = vec![
            0x80, 0xe1, 0x55, 0x8e, 0xf0, 0x7a, 0x99, 0x75, 0xdc, 0x74, 0xcd, 0x2d,
        ];
        p.resize(0x17f, 0x21);
        p
    }

    #[test]
    fn parses_captured_gstreamer_packet() {
        let p = gst_audio_packet();
        let h = parse_rtp(&p).unwrap();
        assert_eq!(
            h,
            RtpHeader {
                marker: true,
                payload_type: 97,
                sequence: 21902,
                timestamp: 4_034_566_517,
                ssrc: 0xDC74CD2D,
                payload_offset: 12,
                payload_len: 0x17f - 12,
            }
        );
        assert_eq!(h.payload(&p).len(), 0x17f - 12);
        assert!(!is_rtcp(&p));
    }

    #[test]
    fn header_only_packet_is_valid() {
        let mut p = BytesMut::new();
        write_header(&mut p, false, 0, 0, 0, 0);
        let h = parse_rtp(&p).unwrap();
        assert_eq!(h.payload_offset, 12);
        assert_eq!(h.payload_len, 0);
    }

    #[test]
    fn rejects_short_and_bad_version() {
        assert_eq!(parse_rtp(&[]), Err(RtpError::TooShort { len: 0 }));
        assert_eq!(parse_rtp(&[0x80; 11]), Err(RtpError::TooShort { len: 11 }));
        let mut p = gst_audio_packet();
        p[0] = 0x40;
        assert_eq!(parse_rtp(&p), Err(RtpError::BadVersion { version: 1 }));
        p[0] = 0xc0;
        assert_eq!(parse_rtp(&p), Err(RtpError::BadVersion { version: 3 }));
    }

    #[test]
    fn csrc_list_is_skipped_and_checked() {
        let mut p = vec![0x82, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        p.extend_from_slice(&[0xaa; 8]); // two CSRCs
        p.extend_from_slice(b"pay");
        let h = parse_rtp(&p).unwrap();
        assert_eq!(h.payload_offset, 20);
        assert_eq!(h.payload(&p), b"pay");
        // Exactly the CSRCs, no payload: still valid.
        assert_eq!(parse_rtp(&p[..20]).unwrap().payload_len, 0);
        assert_eq!(
            parse_rtp(&p[..19]),
            Err(RtpError::CsrcOverrun { count: 2, len: 19 })
        );
        p[0] = 0x8f; // 15 CSRCs
        assert!(matches!(
            parse_rtp(&p),
            Err(RtpError::CsrcOverrun { count: 15, .. })
        ));
    }

    #[test]
    fn extension_is_skipped_and_checked() {
        let mut p = vec![0x91, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        p.extend_from_slice(&[0xcc; 4]); // one CSRC
        p.extend_from_slice(&[0xbe, 0xde, 0x00, 0x02]); // extension, 2 words
        p.extend_from_slice(&[0x11; 8]);
        p.extend_from_slice(b"xyz");
        let h = parse_rtp(&p).unwrap();
        assert_eq!(h.payload_offset, 12 + 4 + 4 + 8);
        assert_eq!(h.payload(&p), b"xyz");
        // Extension header cut.
        assert_eq!(
            parse_rtp(&p[..18]),
            Err(RtpError::ExtensionOverrun { len: 18 })
        );
        // Extension body cut.
        assert_eq!(
            parse_rtp(&p[..27]),
            Err(RtpError::ExtensionOverrun { len: 27 })
        );
        // Huge extension length.
        p[18] = 0xff;
        p[19] = 0xff;
        assert!(matches!(
            parse_rtp(&p),
            Err(RtpError::ExtensionOverrun { .. })
        ));
    }

    #[test]
    fn padding_is_excluded_and_checked() {
        let mut p = vec![0xa0, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        p.extend_from_slice(b"data");
        p.extend_from_slice(&[0, 0, 3]);
        let h = parse_rtp(&p).unwrap();
        assert_eq!(h.payload(&p), b"data");
        assert_eq!(h.payload_len, 4);

        // Padding covering the whole payload is allowed.
        let mut q = p.clone();
        *q.last_mut().unwrap() = 7;
        assert_eq!(parse_rtp(&q).unwrap().payload_len, 0);
        // One more is not.
        *q.last_mut().unwrap() = 8;
        assert_eq!(
            parse_rtp(&q),
            Err(RtpError::BadPadding {
                padding: 8,
                available: 7
            })
        );
        // Zero padding count is invalid.
        *q.last_mut().unwrap() = 0;
        assert!(matches!(parse_rtp(&q), Err(RtpError::BadPadding { .. })));
        // Padding bit on a header-only packet: the padding byte would be inside the header.
        let mut r = vec![0xa0, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1];
        assert!(matches!(parse_rtp(&r), Err(RtpError::BadPadding { .. })));
        r.push(1);
        assert_eq!(parse_rtp(&r).unwrap().payload_len, 0);
    }

    #[test]
    fn setters_rewrite_in_place_and_ignore_short_buffers() {
        let mut p = gst_audio_packet();
        set_sequence(&mut p, 0xfffe);
        set_timestamp(&mut p, 0x0102_0304);
        set_ssrc(&mut p, 0xcafe_babe);
        let h = parse_rtp(&p).unwrap();
        assert_eq!(h.sequence, 0xfffe);
        assert_eq!(h.timestamp, 0x0102_0304);
        assert_eq!(h.ssrc, 0xcafe_babe);
        assert!(h.marker);
        assert_eq!(h.payload_type, 97);
        assert!(p[12..].iter().all(|&b| b == 0x21));

        let mut short = [0x80u8, 0x60, 1, 2, 3, 4, 5, 6, 7, 8, 9];
        let orig = short;
        set_sequence(&mut short[..3], 9);
        set_timestamp(&mut short[..7], 9);
        set_ssrc(&mut short, 9);
        assert_eq!(short, orig);
        set_sequence(&mut [], 1);
    }

    #[test]
    fn write_header_round_trips() {
        let mut out = BytesMut::new();
        write_header(&mut out, true, 0xff, 65535, u32::MAX, 1);
        assert_eq!(out.len(), 12);
        let h = parse_rtp(&out).unwrap();
        assert!(h.marker);
        assert_eq!(h.payload_type, 0x7f);
        assert_eq!(h.sequence, 65535);
        assert_eq!(h.timestamp, u32::MAX);
        assert_eq!(h.ssrc, 1);
        out.clear();
        write_header(&mut out, false, 96, 7, 8, 9);
        assert_eq!(&out[..], &[0x80, 96, 0, 7, 0, 0, 0, 8, 0, 0, 0, 9]);
    }

    #[test]
    fn rtcp_demux() {
        assert!(is_rtcp(&[0x80, 200, 0, 6]));
        assert!(is_rtcp(&[0x81, 201]));
        assert!(is_rtcp(&[0x80, 192]));
        assert!(is_rtcp(&[0x80, 223]));
        assert!(!is_rtcp(&[0x80, 191]));
        assert!(!is_rtcp(&[0x80, 224]));
        assert!(!is_rtcp(&[0x80, 96]));
        assert!(!is_rtcp(&[0x80, 0xe0])); // marker + PT 96
        assert!(!is_rtcp(&[0x80]));
        assert!(!is_rtcp(&[]));
    }
}
