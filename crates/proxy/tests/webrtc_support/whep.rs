//! A WHEP viewer for the protocol tests, with str0m as the client (as a
//! browser would be): a real offer, the answer accepted, ICE to the proxy's
//! host candidate, DTLS-SRTP, and the RTP packets str0m decrypts counted.
//! Synchronous: the test drives it with [`WhepClient::run_until`].

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

pub struct WhepClient {
    rtc: Rtc,
    sock: UdpSocket,
    local: SocketAddr,
    server: Option<SocketAddr>,
    pending: Option<SdpPendingOffer>,
    offer: String,
    candidate: String,
    pub connected_at: Option<Instant>,
    /// RTP packets str0m handed back (decrypted), and the last one's arrival.
    pub rtp_packets: u64,
    pub rtp_bytes: u64,
    pub last_rtp: Option<Instant>,
    /// The payload types seen.
    pub payload_types: Vec<u8>,
}

impl WhepClient {
    /// A client with a video and an audio transceiver that receive, its UDP
    /// socket on loopback.
    pub fn new() -> WhepClient {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("UDP socket");
        let local = sock.local_addr().expect("local address");
        let mut rtc = Rtc::builder()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .set_rtp_mode(true)
            .build(Instant::now());
        let candidate = Candidate::host(local, "udp").expect("host candidate");
        let line = format!("a={}\r\n", candidate.to_sdp_string());
        rtc.add_local_candidate(candidate);
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().expect("an offer");
        WhepClient {
            rtc,
            sock,
            local,
            server: None,
            pending: Some(pending),
            offer: offer.to_sdp_string(),
            candidate: line,
            connected_at: None,
            rtp_packets: 0,
            rtp_bytes: 0,
            last_rtp: None,
            payload_types: Vec::new(),
        }
    }

    /// The SDP offer to POST.
    pub fn offer(&self) -> &str {
        &self.offer
    }

    /// This client's host candidate as a trickle-ICE fragment (`a=candidate:...`).
    pub fn candidate_fragment(&self) -> &str {
        &self.candidate
    }

    /// Takes the server's answer: ICE starts toward its UDP candidate.
    pub fn accept(&mut self, answer: &str) -> Result<(), String> {
        let server = udp_candidate(answer).ok_or("the answer has no UDP candidate")?;
        let pending = self
            .pending
            .take()
            .ok_or("an answer was accepted already")?;
        let answer = SdpAnswer::from_sdp_string(answer).map_err(|e| format!("bad answer: {e}"))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| format!("answer refused: {e}"))?;
        self.server = Some(server);
        Ok(())
    }

    /// Drives str0m (sends, receives, timers) until `done` or `timeout`;
    /// Err with what was reached on time out.
    pub fn run_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&WhepClient) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 2048];
        loop {
            let wake = self.drive()?;
            if done(self) {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "not within {timeout:?}: connected {}, {} RTP packets",
                    self.connected_at.is_some(),
                    self.rtp_packets
                ));
            }
            let wait = wake
                .min(deadline)
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            self.sock
                .set_read_timeout(Some(wait))
                .map_err(|e| e.to_string())?;
            match self.sock.recv_from(&mut buf) {
                Ok((n, source)) => {
                    if let Ok(input) = Receive::new(Protocol::Udp, source, self.local, &buf[..n]) {
                        self.rtc
                            .handle_input(Input::Receive(Instant::now(), input))
                            .map_err(|e| format!("str0m: {e}"))?;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    self.rtc
                        .handle_input(Input::Timeout(Instant::now()))
                        .map_err(|e| format!("str0m: {e}"))?;
                }
                Err(e) => return Err(format!("UDP receive: {e}")),
            }
        }
    }

    /// str0m's output until it wants time: datagrams sent, events counted.
    fn drive(&mut self) -> Result<Instant, String> {
        loop {
            match self.rtc.poll_output().map_err(|e| format!("str0m: {e}"))? {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(t) => {
                    let _ = self.sock.send_to(&t.contents, t.destination);
                }
                Output::Event(Event::Connected) => {
                    self.connected_at.get_or_insert_with(Instant::now);
                }
                Output::Event(Event::RtpPacket(p)) => {
                    self.rtp_packets += 1;
                    self.rtp_bytes += p.payload.len() as u64;
                    self.last_rtp = Some(Instant::now());
                    let pt = *p.header.payload_type;
                    if !self.payload_types.contains(&pt) {
                        self.payload_types.push(pt);
                    }
                }
                Output::Event(_) => {}
            }
        }
    }
}

/// The first UDP host candidate of an SDP answer (an ICE-lite server has one).
fn udp_candidate(sdp: &str) -> Option<SocketAddr> {
    sdp.lines().find_map(|line| {
        let mut f = line.trim().strip_prefix("a=candidate:")?.split_whitespace();
        let (_foundation, _component) = (f.next()?, f.next()?);
        if !f.next()?.eq_ignore_ascii_case("udp") {
            return None;
        }
        let _priority = f.next()?;
        let ip: IpAddr = f.next()?.parse().ok()?;
        let port: u16 = f.next()?.parse().ok()?;
        Some(SocketAddr::new(ip, port))
    })
}
