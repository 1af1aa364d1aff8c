//! One WebRTC viewer as a state machine (sans-IO): str0m's `Rtc` in RTP mode,
//! ICE-lite, and the mapping from the relay's tracks to the browser's
//! transceivers. The glue ([`super::driver`]) feeds it datagrams, relayed
//! batches and time, and sends what [`Viewer::poll`] returns.
//!
//! Packets keep the relay's timestamps (continuous across back-end restarts
//! and pauses) and get sequence numbers of their own per track (the H.264
//! re-fragmentation changes the count); str0m keeps the last packets of each
//! track and answers the browser's NACKs from them (RTX when the browser
//! offered it).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use super::codecs::{BrowserCodec, Plan, Playable};
use super::fragment::fit_h264;
use crate::relay::sink::ViewerBatch;

/// Largest RTP payload sent to a browser: 1200 bytes of RTP plus SRTP and UDP
/// headers fit any path a browser uses (WebRTC's usual packet size).
pub const MAX_RTP_PACKET: usize = 1200;
const RTP_HEADER: usize = 12;
/// Packets per video track kept for NACKed retransmissions (about 2 s of a
/// 4 Mbit/s stream; str0m keeps them at most 3 s).
const RESEND_PACKETS: usize = 1024;

/// The crypto backend (pure Rust) and one DTLS certificate for every
/// session: made once, so an offer costs no key generation (the fingerprint
/// is in each answer; browsers do not need one per session).
pub struct Crypto {
    provider: Arc<str0m::config::CryptoProvider>,
    cert: Option<str0m::crypto::dtls::DtlsCert>,
}

impl Crypto {
    pub fn new() -> Crypto {
        let provider = str0m::crypto::from_feature_flags();
        let cert = provider.dtls_provider.generate_certificate();
        Crypto {
            provider: Arc::new(provider),
            cert,
        }
    }
}

impl Default for Crypto {
    fn default() -> Self {
        Crypto::new()
    }
}

/// Why an offer was refused (400 with this text).
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    #[error("the offer is not valid SDP: {0}")]
    Sdp(String),
    #[error("the offer cannot be answered: {0}")]
    Negotiation(String),
    #[error("the offer has no {0} transceiver that can receive")]
    NoTransceiver(&'static str),
    #[error("the offer names no codec the stream can send ({0})")]
    NoCodec(String),
}

/// Where one relayed track goes in the browser.
#[derive(Debug, Clone)]
struct TrackOut {
    track: usize,
    codec: BrowserCodec,
    ssrc: Ssrc,
    pt: str0m::media::Pt,
    next_seq: u64,
}

/// Counters of one viewer, read by the admin port.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ViewerCounters {
    pub packets: u64,
    pub bytes: u64,
    pub nacks: u64,
    pub plis: u64,
    pub firs: u64,
}

/// What the glue does next.
#[derive(Debug)]
pub enum Step {
    /// Send `data` to `to` from the shared socket.
    Send { to: SocketAddr, data: Vec<u8> },
    /// Nothing to do until this time (or new input).
    Wait(Instant),
    /// The session is over (DTLS closed, ICE gave up).
    Ended(&'static str),
}

pub struct Viewer {
    rtc: Rtc,
    outs: Vec<TrackOut>,
    /// The addresses announced as our host candidates.
    locals: Vec<SocketAddr>,
    connected: bool,
    ice_state: IceConnectionState,
    counters: ViewerCounters,
    /// Per-track egress totals from str0m's stats (NACKs, PLIs, FIRs).
    egress: Vec<(Mid, u64, u64, u64)>,
    pieces: Vec<Arc<[u8]>>,
}

/// The mids of the offer's audio and video sections, in order (what str0m
/// needs to find each negotiated media).
fn offer_mids(sdp: &str) -> Vec<(MediaKind, String)> {
    let mut mids = Vec::new();
    let mut kind = None;
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=") {
            kind = match m.split(' ').next() {
                Some("video") => Some(MediaKind::Video),
                Some("audio") => Some(MediaKind::Audio),
                _ => None,
            };
        } else if let (Some(k), Some(mid)) = (kind, line.strip_prefix("a=mid:")) {
            mids.push((k, mid.trim().to_owned()));
        }
    }
    mids
}

impl Viewer {
    /// Answers a browser's offer for the tracks of `plan`, announcing `locals`
    /// (the shared UDP port on each address browsers may reach) as host
    /// candidates. Returns the viewer and the answer SDP.
    pub fn answer(
        offer: &str,
        plan: &Plan,
        locals: &[SocketAddr],
        crypto: &Crypto,
        now: Instant,
    ) -> Result<(Viewer, String), OfferError> {
        let sdp = SdpOffer::from_sdp_string(offer).map_err(|e| OfferError::Sdp(e.to_string()))?;
        let mut config = Rtc::builder().set_crypto_provider(crypto.provider.clone());
        if let Some(cert) = &crypto.cert {
            config = config.set_dtls_cert(cert.clone());
        }
        let mut config = config
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_stats_interval(Some(Duration::from_secs(1)))
            .set_send_buffer_video(RESEND_PACKETS)
            .clear_codecs();
        for p in plan.playable() {
            config = match p.codec {
                BrowserCodec::H264 => config.enable_h264(true),
                BrowserCodec::Opus => config.enable_opus(true, false),
                BrowserCodec::Pcmu => config.enable_pcmu(true, false),
                BrowserCodec::Pcma => config.enable_pcma(true, false),
                BrowserCodec::G722 => config.enable_g722(true, false),
            };
        }
        // A kind the path lacks still needs a codec in the answer (an m= line
        // without formats is not valid SDP): that section is never sent on.
        if plan.video.is_none() {
            config = config.enable_h264(true);
        }
        if plan.audio.is_none() {
            config = config.enable_opus(true, false);
        }
        let mut rtc = config.build(now);
        for addr in locals {
            if let Ok(c) = Candidate::host(*addr, "udp") {
                rtc.add_local_candidate(c);
            }
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(sdp)
            .map_err(|e| OfferError::Negotiation(e.to_string()))?;
        let mut outs = Vec::new();
        for (kind, mid) in offer_mids(offer) {
            let wanted = match kind {
                MediaKind::Video => plan.video,
                MediaKind::Audio => plan.audio,
            };
            let Some(playable) = wanted else { continue };
            if outs.iter().any(|o: &TrackOut| o.track == playable.track) {
                continue;
            }
            let mid = Mid::from(mid.as_str());
            if let Some(out) = Self::track_out(&mut rtc, mid, playable) {
                outs.push(out);
            }
        }
        if let (Some(p), true) = (plan.video, !outs.iter().any(|o| o.codec.is_video())) {
            return Err(Self::missing(&rtc, offer, "video", p));
        }
        if outs.is_empty() {
            if let Some(p) = plan.audio {
                return Err(Self::missing(&rtc, offer, "audio", p));
            }
        }
        let viewer = Viewer {
            rtc,
            outs,
            locals: locals.to_vec(),
            connected: false,
            ice_state: IceConnectionState::New,
            counters: ViewerCounters::default(),
            egress: Vec::new(),
            pieces: Vec::new(),
        };
        Ok((viewer, answer.to_sdp_string()))
    }

    fn missing(_rtc: &Rtc, offer: &str, kind: &'static str, p: Playable) -> OfferError {
        let section = if kind == "video" {
            "m=video"
        } else {
            "m=audio"
        };
        if !offer.contains(section) {
            OfferError::NoTransceiver(kind)
        } else {
            OfferError::NoCodec(format!("{kind} {:?}", p.codec))
        }
    }

    /// The negotiated sending side of `mid` for `playable`, if the browser
    /// receives there and took one of its codec's payload types.
    fn track_out(rtc: &mut Rtc, mid: Mid, playable: Playable) -> Option<TrackOut> {
        let media = rtc.media(mid)?;
        if !media.direction().is_sending() || media.direction() == Direction::Inactive {
            return None;
        }
        let codec = playable.codec.str0m_codec();
        let remote = media.remote_pts().to_vec();
        let params = rtc.codec_config().params();
        // H.264: packetization-mode 1 (FU-A) is what cameras send; among the
        // offered profiles, any is fine (the decoder takes what comes).
        let pt = params
            .iter()
            .filter(|p| remote.contains(&p.pt()) && p.spec().codec == codec)
            .max_by_key(|p| p.spec().format.packetization_mode == Some(1))
            .map(|p| p.pt())?;
        let ssrc = rtc.direct_api().stream_tx_by_mid(mid, None)?.ssrc();
        Some(TrackOut {
            track: playable.track,
            codec: playable.codec,
            ssrc,
            pt,
            next_seq: u64::from(rand::random::<u16>() & 0x7fff),
        })
    }

    /// Our ICE ufrag: STUN requests naming it are this viewer's.
    pub fn local_ufrag(&mut self) -> String {
        self.rtc.direct_api().local_ice_credentials().ufrag
    }

    /// The relayed tracks this viewer gets.
    pub fn tracks(&self) -> Vec<usize> {
        self.outs.iter().map(|o| o.track).collect()
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    pub fn counters(&self) -> ViewerCounters {
        let mut c = self.counters;
        for (_, nacks, plis, firs) in &self.egress {
            c.nacks += nacks;
            c.plis += plis;
            c.firs += firs;
        }
        c
    }

    /// A trickled candidate (`a=candidate:...` or `candidate:...`). ICE-lite
    /// needs none (the browser's checks tell us its address), so a bad one is
    /// only reported.
    pub fn add_remote_candidate(&mut self, line: &str) -> bool {
        let text = line.trim().trim_start_matches("a=");
        match Candidate::from_sdp_string(text) {
            Ok(c) => {
                self.rtc.add_remote_candidate(c);
                true
            }
            Err(_) => false,
        }
    }

    /// A datagram from `source`. False: not for this viewer (or not valid).
    pub fn receive(&mut self, source: SocketAddr, data: &[u8], now: Instant) -> bool {
        let destination = self.local_for(source);
        let Ok(receive) = Receive::new(Protocol::Udp, source, destination, data) else {
            return false;
        };
        self.rtc.handle_input(Input::Receive(now, receive)).is_ok()
    }

    /// Our address the browser at `source` talks to: the announced one of the
    /// same family, a loopback one for a loopback peer.
    fn local_for(&self, source: SocketAddr) -> SocketAddr {
        let same_family = |a: &&SocketAddr| a.is_ipv4() == source.is_ipv4();
        self.locals
            .iter()
            .filter(same_family)
            .find(|a| a.ip().is_loopback() == source.ip().is_loopback())
            .or_else(|| self.locals.iter().find(same_family))
            .or(self.locals.first())
            .copied()
            .unwrap_or(source)
    }

    /// Time passes.
    pub fn tick(&mut self, now: Instant) {
        let _ = self.rtc.handle_input(Input::Timeout(now));
    }

    /// Writes a relayed batch (held back by the glue until connected).
    pub fn write(&mut self, batch: &ViewerBatch, now: Instant) {
        let Some(out) = self.outs.iter_mut().find(|o| o.track == batch.track) else {
            return;
        };
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_tx(&out.ssrc) else {
            return;
        };
        for pkt in batch.packets.iter() {
            let Ok(hdr) = rtp::packet::parse_rtp(pkt) else {
                continue;
            };
            let payload = hdr.payload(pkt);
            self.pieces.clear();
            if out.codec == BrowserCodec::H264 {
                fit_h264(payload, MAX_RTP_PACKET - RTP_HEADER, &mut self.pieces);
            } else {
                self.pieces.push(payload.into());
            }
            let last = self.pieces.len().saturating_sub(1);
            for (i, piece) in self.pieces.drain(..).enumerate() {
                self.counters.packets += 1;
                self.counters.bytes += (piece.len() + RTP_HEADER) as u64;
                let seq = SeqNo::from(out.next_seq);
                out.next_seq += 1;
                let write = RtpWrite::new(out.pt, seq, hdr.timestamp, now, piece)
                    .marker(hdr.marker && i == last)
                    .nackable(true);
                stream.write_rtp(write);
            }
        }
    }

    /// The next thing to do: a datagram to send, a time to wait for, or the end.
    pub fn poll(&mut self) -> Step {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    return Step::Send {
                        to: t.destination,
                        data: t.contents.to_vec(),
                    }
                }
                Ok(Output::Timeout(at)) => {
                    if !self.rtc.is_alive() {
                        return Step::Ended("the connection closed");
                    }
                    return Step::Wait(at);
                }
                Ok(Output::Event(e)) => match e {
                    Event::Connected => self.connected = true,
                    Event::IceConnectionStateChange(s) => {
                        self.ice_state = s;
                        if s == IceConnectionState::Disconnected {
                            return Step::Ended("ICE disconnected");
                        }
                    }
                    Event::MediaEgressStats(s) => {
                        match self.egress.iter_mut().find(|e| e.0 == s.mid) {
                            Some(e) => *e = (s.mid, s.nacks, s.plis, s.firs),
                            None => self.egress.push((s.mid, s.nacks, s.plis, s.firs)),
                        }
                    }
                    Event::Closed => return Step::Ended("the browser closed the connection"),
                    // Keyframe requests are never passed to the camera; the
                    // counts come with the egress stats.
                    _ => {}
                },
                Err(_) => return Step::Ended("WebRTC error"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offers_mids_by_kind() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n";
        assert_eq!(
            offer_mids(sdp),
            vec![
                (MediaKind::Video, "0".to_owned()),
                (MediaKind::Audio, "1".to_owned())
            ]
        );
    }
}
