//! A WHEP viewer for the load generator: the offer POSTed to
//! `http://host:port/<path>/whep`, ICE (to an ICE-lite server's host
//! candidate), DTLS-SRTP and RTP received with str0m, as a browser does.
//!
//! One UDP socket per session, connected to the server's candidate, read
//! with `recvmmsg` (kernel receive times, as the RTSP mode); every datagram
//! goes through str0m and its output is polled after each one. The RTP
//! packets str0m hands back are counted by [`ClientStats::on_rtp_parts`], the
//! same accounting as the RTSP mode.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use crate::gen::read_payload_probe;
use crate::probe::{instant_at, now_ns};
use crate::stats::ClientStats;
use crate::sys;
use crate::udp_receive::recv_all;

/// Longest wait for the WHEP answer (the proxy may be reaching its back end).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for ICE and DTLS to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest answer read.
const MAX_ANSWER: usize = 64 * 1024;
/// RTP header without CSRCs or extension (what the size figures count).
const RTP_HEADER: usize = 12;

fn err(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

/// The WHEP endpoint: host, port and the request target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WhepUrl {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Path and query, e.g. `/proxyStream/whep`.
    pub target: String,
}

impl WhepUrl {
    /// Parses `http://host[:port]/path/whep` (plain HTTP only: the bench runs on loopback).
    pub fn parse(url: &str) -> Result<WhepUrl, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("bad WHEP URL {url:?}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("WHEP URL {url:?}: only http:// is supported"));
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("WHEP URL {url:?} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let target = uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .filter(|p| p != "/")
            .ok_or_else(|| format!("WHEP URL {url:?} has no path (e.g. /proxyStream/whep)"))?;
        Ok(WhepUrl {
            host,
            port: uri.port_u16().unwrap_or(80),
            target,
        })
    }
}

/// One HTTP/1.1 exchange on a new connection: the status, the `Location`
/// header and the body (at most [`MAX_ANSWER`] bytes).
async fn http(
    url: &WhepUrl,
    method: Method,
    target: &str,
    body: Option<String>,
) -> io::Result<(StatusCode, Option<String>, Bytes)> {
    let tcp = TcpStream::connect((url.host.as_str(), url.port)).await?;
    tcp.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| err(format!("HTTP handshake: {e}")))?;
    let conn = tokio::task::spawn_local(conn);
    let mut req = Request::builder()
        .method(method.clone())
        .uri(target)
        .header(hyper::header::HOST, format!("{}:{}", url.host, url.port));
    if body.is_some() {
        req = req.header(hyper::header::CONTENT_TYPE, "application/sdp");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| err(format!("HTTP request: {e}")))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| err(format!("{method} {target}: {e}")))?;
    let status = resp.status();
    let location = resp
        .headers()
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| err(format!("{method} {target}: body: {e}")))?
        .to_bytes();
    conn.abort();
    Ok((status, location, body))
}

/// The first UDP host candidate of an SDP answer (an ICE-lite server has one).
pub fn udp_candidate(sdp: &str) -> Option<SocketAddr> {
    sdp.lines().find_map(|line| {
        // a=candidate:<foundation> <component> <transport> <priority> <ip> <port> typ <type>
        let mut f = line.trim().strip_prefix("a=candidate:")?.split_whitespace();
        let _foundation = f.next()?;
        let _component = f.next()?;
        if !f.next()?.eq_ignore_ascii_case("udp") {
            return None;
        }
        let _priority = f.next()?;
        let ip: IpAddr = f.next()?.parse().ok()?;
        let port: u16 = f.next()?.parse().ok()?;
        Some(SocketAddr::new(ip, port))
    })
}

/// Feeds str0m's output to the socket and the stats until it asks for a
/// wake-up; the time it wants to be woken at.
fn drive(
    rtc: &mut Rtc,
    sock: &UdpSocket,
    st: &mut ClientStats,
    recv_ns: u64,
    connected: &mut bool,
) -> io::Result<StdInstant> {
    loop {
        match rtc.poll_output().map_err(|e| err(format!("str0m: {e}")))? {
            Output::Timeout(t) => return Ok(t),
            Output::Transmit(tx) => {
                // Best effort, as a browser: a full send buffer loses the datagram.
                let _ = sock.try_send_to(&tx.contents, tx.destination);
            }
            Output::Event(Event::RtpPacket(p)) => st.on_rtp_parts(
                p.header.sequence_number,
                read_payload_probe(&p.payload),
                p.payload.len() + RTP_HEADER,
                recv_ns,
            ),
            Output::Event(Event::Connected) => *connected = true,
            Output::Event(Event::IceConnectionStateChange(IceConnectionState::Disconnected)) => {
                return Err(err("ICE disconnected"));
            }
            Output::Event(_) => {}
        }
    }
}

/// One WHEP viewer: offer, answer, connect, receive into `st` until the
/// window ends, then DELETE the session.
pub async fn session(
    url: &str,
    rcvbuf: usize,
    window_end_ns: u64,
    max_packet: usize,
    st: &mut ClientStats,
) -> io::Result<()> {
    let url = WhepUrl::parse(url).map_err(err)?;
    let sock = UdpSocket::from_std(sys::udp_receiver(0, rcvbuf)?)?;
    let local = sock.local_addr()?;

    let mut rtc = Rtc::builder()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .set_rtp_mode(true)
        .build(StdInstant::now());
    let candidate = Candidate::host(local, "udp").map_err(|e| err(format!("candidate: {e}")))?;
    rtc.add_local_candidate(candidate);
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().ok_or_else(|| err("str0m made no offer"))?;

    // POST the offer, waiting while the proxy has not reached its back end (503).
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    st.play_sent_ns = Some(now_ns());
    let (location, answer) = loop {
        let r = tokio::time::timeout_at(
            deadline,
            http(&url, Method::POST, &url.target, Some(offer.to_sdp_string())),
        )
        .await
        .map_err(|_| err("no WHEP answer in time"))??;
        match r {
            (StatusCode::CREATED, location, body) => {
                break (location, String::from_utf8_lossy(&body).into_owned())
            }
            (StatusCode::SERVICE_UNAVAILABLE, _, _) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            (status, _, body) => {
                return Err(err(format!(
                    "POST {}: {status}: {}",
                    url.target,
                    String::from_utf8_lossy(&body).trim()
                )))
            }
        }
    };
    let server =
        udp_candidate(&answer).ok_or_else(|| err("the WHEP answer has no UDP candidate"))?;
    sock.connect(server).await?;
    let answer =
        SdpAnswer::from_sdp_string(&answer).map_err(|e| err(format!("bad SDP answer: {e}")))?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| err(format!("answer refused: {e}")))?;

    let end = instant_at(window_end_ns) + Duration::from_millis(200);
    let result = receive(&mut rtc, &sock, local, server, end, max_packet, st).await;
    if let Some(resource) = location {
        // Best effort: the measurement is over.
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            http(&url, Method::DELETE, &resource, None),
        )
        .await;
    }
    result
}

async fn receive(
    rtc: &mut Rtc,
    sock: &UdpSocket,
    local: SocketAddr,
    server: SocketAddr,
    end: Instant,
    max_packet: usize,
    st: &mut ClientStats,
) -> io::Result<()> {
    let connect_by = Instant::now() + CONNECT_TIMEOUT;
    let mut connected = false;
    let mut wake = drive(rtc, sock, st, now_ns(), &mut connected)?;
    loop {
        if !connected && Instant::now() >= connect_by {
            return Err(err("ICE/DTLS did not connect in time"));
        }
        let wake_at = Instant::from_std(wake).min(end);
        tokio::select! {
            _ = tokio::time::sleep_until(end) => return Ok(()),
            _ = tokio::time::sleep_until(wake_at) => {
                rtc.handle_input(Input::Timeout(StdInstant::now()))
                    .map_err(|e| err(format!("str0m: {e}")))?;
                wake = drive(rtc, sock, st, now_ns(), &mut connected)?;
            }
            r = sock.readable() => {
                r?;
                let mut failed = None;
                recv_all(sock, max_packet, &mut |data, t, truncated| {
                    if failed.is_some() {
                        return;
                    }
                    if truncated {
                        st.truncated += 1;
                        return;
                    }
                    let Ok(input) = Receive::new(Protocol::Udp, server, local, data) else {
                        return; // not STUN, DTLS or SRTP: ignored, as a browser does
                    };
                    let step = rtc
                        .handle_input(Input::Receive(StdInstant::now(), input))
                        .map_err(|e| err(format!("str0m: {e}")))
                        .and_then(|()| drive(rtc, sock, st, t, &mut connected));
                    match step {
                        Ok(w) => wake = w,
                        Err(e) => failed = Some(e),
                    }
                })?;
                if let Some(e) = failed {
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whep_urls() {
        assert_eq!(
            WhepUrl::parse("http://127.0.0.1:8889/proxyStream/whep"),
            Ok(WhepUrl {
                host: "127.0.0.1".into(),
                port: 8889,
                target: "/proxyStream/whep".into()
            })
        );
        assert_eq!(
            WhepUrl::parse("http://[::1]/cam/whep").map(|u| (u.host, u.port)),
            Ok(("::1".into(), 80))
        );
        assert!(WhepUrl::parse("https://127.0.0.1:8889/a/whep").is_err());
        assert!(WhepUrl::parse("http://127.0.0.1:8889/").is_err());
        assert!(WhepUrl::parse("rtsp://127.0.0.1/a").is_err());
    }

    #[test]
    fn the_answers_udp_candidate() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
                   a=candidate:1 1 tcp 2130706431 127.0.0.1 9 typ host\r\n\
                   a=candidate:2 1 udp 2130706431 127.0.0.1 8189 typ host\r\n";
        assert_eq!(udp_candidate(sdp), Some("127.0.0.1:8189".parse().unwrap()));
        assert_eq!(udp_candidate("v=0\r\na=candidate:1 1 udp x\r\n"), None);
    }
}
