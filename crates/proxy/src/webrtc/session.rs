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
//!
//! A browser's keyframe request (PLI or FIR) is answered from the relay's
//! keyframe cache, never passed to the camera: [`Viewer::keyframe_wanted`]
//! names the video track (at most one replay per [`KEYFRAME_REPLAY_INTERVAL`]),
//! the glue fetches the cached GOP, and [`Viewer::replay_keyframe`] sends it
//! cut at what this viewer last got and retimed to end there
//! ([`crate::relay::replay_timing`]), under the viewer's own continuous
//! sequence numbers; the live packets then run straight on.

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
use crate::relay::replay_timing::retime_to_live_edge;
use crate::relay::sink::ViewerBatch;
use bytes::Bytes;

/// Largest RTP payload sent to a browser: 1200 bytes of RTP plus SRTP and UDP
/// headers fit any path a browser uses (WebRTC's usual packet size).
pub const MAX_RTP_PACKET: usize = 1200;
const RTP_HEADER: usize = 12;
/// Packets per video track kept for NACKed retransmissions (about 2 s of a
/// 4 Mbit/s stream; str0m keeps them at most 3 s).
const RESEND_PACKETS: usize = 1024;
/// At most one keyframe replay per viewer this often (a browser that cannot
/// decode repeats its PLI; a replay is a whole GOP).
pub const KEYFRAME_REPLAY_INTERVAL: Duration = Duration::from_secs(1);

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
    mid: Mid,
    next_seq: u64,
    /// The relay's sequence number of the last packet written (where a
    /// keyframe replay is cut).
    last_relayed: Option<u16>,
    /// RTP packets written on this track (to tell str0m's resends apart).
    written: u64,
}

/// Counters of one viewer, read by the admin port.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ViewerCounters {
    pub packets: u64,
    pub bytes: u64,
    pub nacks: u64,
    pub plis: u64,
    pub firs: u64,
    /// Packets sent again on a NACK (str0m's sent count beyond the written).
    pub resent: u64,
    /// Keyframe requests answered with the cached GOP.
    pub keyframe_replays: u64,
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
    /// Per-track egress totals from str0m's stats.
    egress: Vec<Egress>,
    pieces: Vec<Arc<[u8]>>,
    /// A keyframe request not answered yet.
    keyframe_requested: bool,
    last_keyframe_replay: Option<Instant>,
}

/// One track's egress totals from str0m's stats.
#[derive(Debug, Clone, Copy)]
struct Egress {
    mid: Mid,
    nacks: u64,
    plis: u64,
    firs: u64,
    resent: u64,
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
            keyframe_requested: false,
            last_keyframe_replay: None,
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
            mid,
            next_seq: u64::from(rand::random::<u16>() & 0x7fff),
            last_relayed: None,
            written: 0,
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
        for e in &self.egress {
            c.nacks += e.nacks;
            c.plis += e.plis;
            c.firs += e.firs;
            c.resent += e.resent;
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
        self.write_packets(batch.track, &batch.packets, now);
    }

    /// The video track to answer a keyframe request on, once connected and at
    /// most once per [`KEYFRAME_REPLAY_INTERVAL`] (a request within it is
    /// dropped: the browser repeats it if it still cannot decode).
    pub fn keyframe_wanted(&mut self, now: Instant) -> Option<usize> {
        if !std::mem::take(&mut self.keyframe_requested) || !self.connected {
            return None;
        }
        if self
            .last_keyframe_replay
            .is_some_and(|at| now.saturating_duration_since(at) < KEYFRAME_REPLAY_INTERVAL)
        {
            return None;
        }
        let out = self.outs.iter().find(|o| o.codec.is_video())?;
        self.last_keyframe_replay = Some(now);
        Some(out.track)
    }

    /// Answers a keyframe request with `cached` (the relay's keyframe cache of
    /// `track`, oldest first): cut at the last packet this viewer got (what
    /// follows it is still on its way live) and retimed to end at that
    /// packet's timestamp. False if the cache does not hold that packet (it
    /// started over at a keyframe that is on its way already).
    pub fn replay_keyframe(&mut self, track: usize, cached: &[Bytes], now: Instant) -> bool {
        let Some(last) = self
            .outs
            .iter()
            .find(|o| o.track == track)
            .and_then(|o| o.last_relayed)
        else {
            return false;
        };
        let Some(end) = cached
            .iter()
            .position(|p| rtp::packet::parse_rtp(p).is_ok_and(|h| h.sequence == last))
        else {
            return false;
        };
        let replay = retime_to_live_edge(&cached[..=end]);
        self.write_packets(track, &replay, now);
        self.counters.keyframe_replays += 1;
        true
    }

    fn write_packets(&mut self, track: usize, packets: &[Bytes], now: Instant) {
        let Some(out) = self.outs.iter_mut().find(|o| o.track == track) else {
            return;
        };
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_tx(&out.ssrc) else {
            return;
        };
        for pkt in packets.iter() {
            let Ok(hdr) = rtp::packet::parse_rtp(pkt) else {
                continue;
            };
            out.last_relayed = Some(hdr.sequence);
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
                out.written += 1;
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
                        data: t.contents.into(),
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
                        // str0m counts resends in its sent packets; what was
                        // written is known here (a lower bound: packets
                        // written but not sent yet hide as many resends).
                        let written = self
                            .outs
                            .iter()
                            .filter(|o| o.mid == s.mid)
                            .map(|o| o.written)
                            .sum::<u64>();
                        let e = Egress {
                            mid: s.mid,
                            nacks: s.nacks,
                            plis: s.plis,
                            firs: s.firs,
                            resent: s.packets.saturating_sub(written),
                        };
                        match self.egress.iter_mut().find(|x| x.mid == s.mid) {
                            Some(x) => *x = e,
                            None => self.egress.push(e),
                        }
                    }
                    // Answered from the keyframe cache (the glue asks
                    // [`Viewer::keyframe_wanted`]), never passed to the camera;
                    // the counts come with the egress stats.
                    Event::KeyframeRequest(_) => self.keyframe_requested = true,
                    Event::Closed => return Step::Ended("the browser closed the connection"),
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
    use crate::webrtc::codecs::BrowserCodec;
    use std::collections::BTreeSet;
    use str0m::change::SdpAnswer;
    use str0m::media::KeyframeRequestKind;
    use str0m::rtp::RtpPacket;

    fn rtp(seq: u16, timestamp: u32, marker: bool, payload: &[u8]) -> Bytes {
        let mut p = vec![0x80, 96 | (u8::from(marker) << 7)];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&timestamp.to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend_from_slice(payload);
        Bytes::from(p)
    }

    fn idr() -> Vec<u8> {
        std::iter::once(0x65)
            .chain((0..3000).map(|i| i as u8))
            .collect()
    }

    fn batch(packets: Vec<Bytes>) -> ViewerBatch {
        ViewerBatch {
            track: 0,
            packets: packets.into(),
            keyframe: Some(true),
        }
    }

    /// SRTP media (not RTCP, DTLS or STUN): what a lossy network may drop.
    fn is_rtp(datagram: &[u8]) -> bool {
        datagram.len() > 12
            && datagram[0] & 0xc0 == 0x80
            && !(64..96).contains(&(datagram[1] & 0x7f))
    }

    /// A str0m client (a browser's part) and a viewer of an H.264 track,
    /// connected in memory, with simulated time and a lossy viewer-to-client
    /// direction; the glue's keyframe-request answer is played by `step` from
    /// `cache`.
    struct Pair {
        client: Rtc,
        viewer: Viewer,
        t: Instant,
        client_addr: SocketAddr,
        server_addr: SocketAddr,
        received: Vec<RtpPacket>,
        /// RTP datagrams the viewer sent, in order (lost ones included).
        rtp_sent: usize,
        /// Indexes (in `rtp_sent` order) of the RTP datagrams lost.
        lose: BTreeSet<usize>,
        /// The relay's keyframe cache, answering keyframe requests.
        cache: Vec<Bytes>,
        mid: Mid,
    }

    impl Pair {
        fn new() -> Pair {
            let t = Instant::now();
            let mut client = Rtc::builder()
                .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
                .set_rtp_mode(true)
                .build(t);
            let client_addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
            let server_addr: SocketAddr = "127.0.0.1:6000".parse().unwrap();
            client.add_local_candidate(Candidate::host(client_addr, "udp").unwrap());
            let mut api = client.sdp_api();
            let mid = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
            let (offer, pending) = api.apply().expect("offer");
            let plan = Plan {
                video: Some(Playable {
                    track: 0,
                    codec: BrowserCodec::H264,
                }),
                audio: None,
                left_out: Vec::new(),
            };
            let (viewer, answer) = Viewer::answer(
                &offer.to_sdp_string(),
                &plan,
                &[server_addr],
                &Crypto::new(),
                t,
            )
            .expect("answered");
            assert!(answer.contains("a=ice-lite"), "{answer}");
            client
                .sdp_api()
                .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
                .expect("answer accepted");
            Pair {
                client,
                viewer,
                t,
                client_addr,
                server_addr,
                received: Vec::new(),
                rtp_sent: 0,
                lose: BTreeSet::new(),
                cache: Vec::new(),
                mid,
            }
        }

        /// The client's output: datagrams to the viewer, RTP packets received.
        fn pump_client(&mut self) {
            loop {
                match self.client.poll_output().unwrap() {
                    Output::Transmit(tx) => {
                        self.viewer.receive(self.client_addr, &tx.contents, self.t);
                    }
                    Output::Timeout(_) => break,
                    Output::Event(Event::RtpPacket(p)) => self.received.push(p),
                    Output::Event(_) => {}
                }
            }
        }

        /// Everything both sides have to say now, then 5 ms pass.
        fn step(&mut self) {
            loop {
                match self.viewer.poll() {
                    Step::Send { to, data } => {
                        assert_eq!(to, self.client_addr);
                        if is_rtp(&data) {
                            self.rtp_sent += 1;
                            if self.lose.contains(&(self.rtp_sent - 1)) {
                                continue;
                            }
                        }
                        let input =
                            Receive::new(Protocol::Udp, self.server_addr, self.client_addr, &data)
                                .expect("a datagram");
                        self.client
                            .handle_input(Input::Receive(self.t, input))
                            .unwrap();
                        // str0m's output is polled after every input.
                        self.pump_client();
                    }
                    Step::Wait(_) => break,
                    Step::Ended(why) => panic!("ended: {why}"),
                }
            }
            self.pump_client();
            // What the glue does after polling: a keyframe request is answered
            // from the cache.
            if let Some(track) = self.viewer.keyframe_wanted(self.t) {
                let cache = self.cache.clone();
                self.viewer.replay_keyframe(track, &cache, self.t);
            }
            self.t += Duration::from_millis(5);
            self.viewer.tick(self.t);
            self.client.handle_input(Input::Timeout(self.t)).unwrap();
        }

        /// Steps until `done` (false if it never was within `steps`).
        fn run_until(&mut self, steps: usize, done: impl Fn(&Pair) -> bool) -> bool {
            for _ in 0..steps {
                if done(self) {
                    return true;
                }
                self.step();
            }
            done(self)
        }

        fn connect(&mut self) {
            assert!(
                self.run_until(3000, |p| p.viewer.is_connected()),
                "connected"
            );
            for _ in 0..20 {
                self.step();
            }
        }

        fn request_keyframe(&mut self) {
            self.client
                .direct_api()
                .stream_rx_by_mid(self.mid, None)
                .expect("the client receives")
                .request_keyframe(KeyframeRequestKind::Pli);
        }
    }

    /// The relayed H.264 arrives cut to the WebRTC packet size, with the
    /// relay's timestamps and the marker on each frame's last piece.
    #[test]
    fn a_webrtc_client_gets_h264_cut_to_size_with_the_relays_timestamps() {
        let mut pair = Pair::new();
        pair.connect();
        let idr = idr();
        pair.viewer.write(
            &batch(vec![
                rtp(1, 90_000, true, &idr),
                rtp(2, 93_600, true, &[0x41, 1, 2]),
            ]),
            pair.t,
        );
        assert!(pair.run_until(200, |p| p.received.len() >= 4));
        let received = &pair.received;
        assert_eq!(received.len(), 4, "pieces received");
        assert!(received
            .iter()
            .all(|p| p.payload.len() <= MAX_RTP_PACKET - RTP_HEADER));
        let stamps: Vec<u32> = received.iter().map(|p| p.header.timestamp).collect();
        assert_eq!(stamps, vec![90_000, 90_000, 90_000, 93_600]);
        let markers: Vec<bool> = received.iter().map(|p| p.header.marker).collect();
        assert_eq!(markers, vec![false, false, true, true]);
        let mut nal = vec![(received[0].payload[0] & 0xe0) | (received[0].payload[1] & 0x1f)];
        for p in &received[..3] {
            nal.extend_from_slice(&p.payload[2..]);
        }
        assert_eq!(nal, idr);
        assert_eq!(pair.viewer.counters().packets, 4);
    }

    /// A PLI is answered at once from the keyframe cache, cut at what the
    /// viewer got and retimed to end there, under the viewer's continuous
    /// sequence numbers; another PLI within the replay interval is not.
    #[test]
    fn a_pli_gets_the_cached_keyframe_retimed_at_once() {
        let mut pair = Pair::new();
        pair.connect();
        let idr = idr();
        let gop = vec![
            rtp(1, 90_000, true, &idr),
            rtp(2, 93_600, true, &[0x41, 1]),
            rtp(3, 97_200, true, &[0x41, 2]),
            // Relayed, cached, but still in the viewer's queue: not replayed.
            rtp(4, 100_800, true, &[0x41, 3]),
        ];
        pair.cache = gop.clone();
        pair.viewer.write(&batch(gop[..3].to_vec()), pair.t);
        assert!(pair.run_until(200, |p| p.received.len() >= 5));
        assert_eq!(pair.received.len(), 5);

        pair.request_keyframe();
        let asked = pair.t;
        assert!(
            pair.run_until(200, |p| p.received.len() >= 10),
            "the replay arrived"
        );
        let took = pair.t - asked;
        assert!(took <= Duration::from_millis(50), "answered in {took:?}");
        let replay = &pair.received[5..];
        let stamps: Vec<u32> = replay.iter().map(|p| p.header.timestamp).collect();
        assert_eq!(stamps, vec![97_198, 97_198, 97_198, 97_199, 97_200]);
        assert_eq!(replay[0].payload[1] & 0x80, 0x80, "an FU-A start: the IDR");
        let seqs: Vec<u64> = pair.received.iter().map(|p| *p.seq_no).collect();
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "continuous: {seqs:?}"
        );
        assert_eq!(pair.viewer.counters().keyframe_replays, 1);

        // Live again, straight on.
        pair.viewer.write(&batch(gop[3..].to_vec()), pair.t);
        assert!(pair.run_until(200, |p| p.received.len() >= 11));
        assert_eq!(pair.received[10].header.timestamp, 100_800);
        assert_eq!(*pair.received[10].seq_no, seqs[9] + 1);

        // A PLI right after is not answered; one a second later is.
        pair.request_keyframe();
        pair.run_until(50, |_| false);
        assert_eq!(pair.received.len(), 11);
        assert_eq!(pair.viewer.counters().keyframe_replays, 1);
        pair.cache = gop.clone();
        pair.run_until(200, |_| false);
        pair.request_keyframe();
        assert!(pair.run_until(200, |p| p.received.len() >= 17));
        assert_eq!(pair.viewer.counters().keyframe_replays, 2);
        assert!(pair.viewer.counters().plis >= 2);
    }

    /// Packets lost on the way are NACKed by the client and resent from the
    /// viewer's history: every packet arrives in the end, and the NACKs and
    /// resent packets are counted.
    #[test]
    fn lost_packets_are_nacked_and_resent_from_the_history() {
        let mut pair = Pair::new();
        pair.connect();
        pair.lose = [3, 7, 11, 20, 21].into_iter().collect();
        let frames = 60u16;
        for chunk in (0..frames).collect::<Vec<_>>().chunks(10) {
            let packets = chunk
                .iter()
                .map(|i| rtp(*i, 90_000 + u32::from(*i) * 3600, true, &[0x41, *i as u8]))
                .collect();
            pair.viewer.write(&batch(packets), pair.t);
            pair.step();
        }
        let all = |p: &Pair| {
            p.received
                .iter()
                .map(|r| r.payload.clone())
                .collect::<BTreeSet<_>>()
                .len()
                == usize::from(frames)
        };
        assert!(
            pair.run_until(400, all),
            "every packet arrived: {} of {frames}",
            pair.received.len()
        );
        // The counters come with str0m's next stats (each second).
        assert!(pair.run_until(400, |p| p.viewer.counters().resent >= 5));
        let c = pair.viewer.counters();
        assert!(c.nacks >= 1, "{c:?}");
        assert_eq!(
            c.packets,
            u64::from(frames),
            "resends are not written twice"
        );
        assert!(pair.rtp_sent >= usize::from(frames) + 5);
    }

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
