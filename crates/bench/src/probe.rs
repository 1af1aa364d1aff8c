//! The probe every synthetic packet carries in its payload.
//!
//! 24 bytes, big-endian, right after the FU-A header bytes (or inside the SEI
//! unit of the keyframe's STAP-A, see [`crate::gen`]):
//!
//! | bytes  | field |
//! |--------|-------|
//! | 0..8   | this packet's send time, ns since the Unix epoch (CLOCK_REALTIME) |
//! | 8..16  | send time of the first packet of the same frame (ns, same clock) |
//! | 16..20 | frame counter |
//! | 20..22 | packet index within the frame (0 = first) |
//! | 22..24 | flags: bit 0 keyframe, bit 1 last packet of the frame; high byte [`MAGIC`] |
//!
//! CLOCK_REALTIME is shared by every process on one host, so a receiver in
//! another process can subtract the send time from its own receive time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Encoded size of a probe.
pub const PROBE_LEN: usize = 24;
/// High byte of the flags field: tells a probe from other payload bytes.
pub const MAGIC: u16 = 0xB5 << 8;
/// Flag: the packet belongs to a keyframe (SPS, PPS, IDR).
pub const FLAG_KEYFRAME: u16 = 1;
/// Flag: last packet of its frame (the one with the RTP marker bit).
pub const FLAG_LAST: u16 = 2;

/// A decoded probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Probe {
    /// Send time of this packet, ns since the Unix epoch.
    pub send_ns: u64,
    /// Send time of packet 0 of this frame, ns since the Unix epoch.
    pub frame_send_ns: u64,
    /// Frame counter (0 = the session's first frame).
    pub frame: u32,
    /// Packet index within the frame.
    pub index: u16,
    /// `FLAG_*` bits (without the magic).
    pub flags: u16,
}

impl Probe {
    /// Whether the packet belongs to a keyframe.
    pub fn is_keyframe(&self) -> bool {
        self.flags & FLAG_KEYFRAME != 0
    }

    /// Whether this is the last packet of its frame.
    pub fn is_last(&self) -> bool {
        self.flags & FLAG_LAST != 0
    }

    /// Writes the probe into `out[..PROBE_LEN]`.
    pub fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.send_ns.to_be_bytes());
        out[8..16].copy_from_slice(&self.frame_send_ns.to_be_bytes());
        out[16..20].copy_from_slice(&self.frame.to_be_bytes());
        out[20..22].copy_from_slice(&self.index.to_be_bytes());
        out[22..24].copy_from_slice(&((self.flags & 0xff) | MAGIC).to_be_bytes());
    }

    /// Reads a probe from the start of `b`; `None` when too short or the magic is absent.
    pub fn decode(b: &[u8]) -> Option<Probe> {
        let b = b.get(..PROBE_LEN)?;
        let flags = u16::from_be_bytes([b[22], b[23]]);
        if flags & 0xff00 != MAGIC {
            return None;
        }
        Some(Probe {
            send_ns: u64::from_be_bytes(b[0..8].try_into().ok()?),
            frame_send_ns: u64::from_be_bytes(b[8..16].try_into().ok()?),
            frame: u32::from_be_bytes(b[16..20].try_into().ok()?),
            index: u16::from_be_bytes([b[20], b[21]]),
            flags: flags & 0xff,
        })
    }
}

/// Stamps the two send times of an already encoded probe in place.
pub fn stamp(probe: &mut [u8], send_ns: u64, frame_send_ns: u64) {
    probe[0..8].copy_from_slice(&send_ns.to_be_bytes());
    probe[8..16].copy_from_slice(&frame_send_ns.to_be_bytes());
}

/// Turns a Unix-ns time into a tokio instant.
pub fn instant_at(unix_ns: u64) -> Instant {
    let now = now_ns();
    let i = Instant::now();
    if unix_ns >= now {
        i + Duration::from_nanos(unix_ns - now)
    } else {
        i.checked_sub(Duration::from_nanos(now - unix_ns))
            .unwrap_or(i)
    }
}

/// CLOCK_REALTIME now, ns since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let p = Probe {
            send_ns: 1_700_000_000_123_456_789,
            frame_send_ns: 1_700_000_000_123_000_000,
            frame: 0xdead_beef,
            index: 513,
            flags: FLAG_KEYFRAME | FLAG_LAST,
        };
        let mut buf = [0u8; PROBE_LEN + 3];
        p.encode(&mut buf);
        assert_eq!(Probe::decode(&buf), Some(p));
        assert!(p.is_keyframe() && p.is_last());

        stamp(&mut buf, 5, 4);
        let q = Probe::decode(&buf).unwrap();
        assert_eq!(
            (q.send_ns, q.frame_send_ns, q.frame, q.index),
            (5, 4, p.frame, 513)
        );
    }

    #[test]
    fn rejects_short_or_foreign_bytes() {
        assert_eq!(Probe::decode(&[0u8; PROBE_LEN - 1]), None);
        assert_eq!(Probe::decode(&[0u8; PROBE_LEN]), None);
        assert_eq!(Probe::decode(&[0x55u8; 64]), None);
    }

    #[test]
    fn clock_is_realtime() {
        // After 2020-01-01 and before 2100-01-01.
        let n = now_ns();
        assert!(n > 1_577_836_800_000_000_000 && n < 4_102_444_800_000_000_000);
    }
}
