//! RTP and RTCP for the proxy, without I/O.
//!
//! - [`packet`]: RTP header view ([`parse_rtp`]), in-place setters,
//!   header writer, RTP/RTCP demultiplexing.
//! - [`rtcp`]: compound packet iteration, sender report and BYE parsing, receiver and
//!   sender report builders, NTP time helpers, and the receiver statistics
//!   ([`rtcp::ReceptionStats`]) for the reports we send to the back end.
//! - [`continuity`]: [`TrackContinuity`], the per-track rewriter that gives clients one
//!   continuous stream (stable SSRC, sequence numbers going on by one, timestamps
//!   following wall-clock time) across back-end reconnects.
//! - [`h264`] / [`h265`]: Annex B splitting, keyframe detection on RTP payloads, and
//!   the H.264 packetizer (RFC 6184 packetization-mode 1).
//!
//! Everything here treats its input as hostile: every length is checked, every loop
//! over network data is bounded, and nothing panics on malformed bytes.

pub mod continuity;
pub mod h264;
pub mod h265;
pub mod packet;
pub mod rtcp;

#[cfg(test)]
mod fuzz_tests;

pub use continuity::TrackContinuity;
pub use packet::{parse_rtp, RtpError, RtpHeader};
