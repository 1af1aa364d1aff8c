//! `rtsp-bench source`: a minimal RTSP server that gives each session its own
//! live synthetic H.264 stream ([`crate::gen`]), over UDP or TCP interleaved.
//!
//! OPTIONS, DESCRIBE, SETUP, PLAY (with RTP-Info), PAUSE, TEARDOWN,
//! GET_PARAMETER / SET_PARAMETER (keep-alive). One thread per connection and
//! one per playing session; frames are sent on an absolute schedule (frame `n`
//! at `start + n / fps`), all packets of a frame back to back, each stamped
//! with its send time just before it is sent. A sender report goes out at the
//! first frame and every 5 s. A session ends with TEARDOWN or when its RTSP
//! connection closes.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use rtsp::header::{rtp_info, LowerTransport, PortRange, Transport};
use rtsp::{parse_frame, Frame, Limits, Method, Request, Response};

use crate::gen::{FrameBuf, Generator, Workload};
use crate::probe::now_ns;

/// What the source serves.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// Listen address.
    pub bind: IpAddr,
    /// RTSP port.
    pub port: u16,
    /// The stream.
    pub workload: Workload,
    /// Print each request.
    pub verbose: bool,
}

const PUBLIC: &str =
    "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER";
const SESSION_TIMEOUT: u32 = 60;

/// Runs the server until the process is stopped.
pub fn run(cfg: SourceConfig) -> Result<(), String> {
    cfg.workload.validate()?;
    let listener = TcpListener::bind(SocketAddr::new(cfg.bind, cfg.port))
        .map_err(|e| format!("cannot listen on {}:{}: {e}", cfg.bind, cfg.port))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!(
        "rtsp-bench source: rtsp://{addr}/stream  ({} bit/s, {} fps, {}-byte packets, keyframe every {} s, {:.0} packets/s)",
        cfg.workload.bitrate,
        cfg.workload.fps,
        cfg.workload.packet_size,
        cfg.workload.keyframe_interval,
        cfg.workload.packets_per_second()
    );
    let cfg = Arc::new(cfg);
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let cfg = cfg.clone();
        thread::Builder::new()
            .name("rtsp-conn".into())
            .spawn(move || {
                let peer = conn.peer_addr().ok();
                if let Err(e) = serve(conn, &cfg) {
                    if cfg.verbose {
                        eprintln!("source: connection {peer:?}: {e}");
                    }
                }
            })
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Where a session's media goes.
enum Sink {
    Udp {
        rtp: UdpSocket,
        rtcp: UdpSocket,
        rtp_to: SocketAddr,
        rtcp_to: SocketAddr,
    },
    Tcp {
        out: Arc<Mutex<TcpStream>>,
        rtp_channel: u8,
        rtcp_channel: u8,
    },
}

impl Sink {
    fn send_rtp(&self, pkt: &[u8], scratch: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Sink::Udp { rtp, rtp_to, .. } => rtp.send_to(pkt, rtp_to).map(drop),
            Sink::Tcp {
                out, rtp_channel, ..
            } => write_interleaved(out, *rtp_channel, pkt, scratch),
        }
    }

    fn send_rtcp(&self, pkt: &[u8], scratch: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Sink::Udp { rtcp, rtcp_to, .. } => rtcp.send_to(pkt, rtcp_to).map(drop),
            Sink::Tcp {
                out, rtcp_channel, ..
            } => write_interleaved(out, *rtcp_channel, pkt, scratch),
        }
    }
}

fn write_interleaved(
    out: &Mutex<TcpStream>,
    channel: u8,
    pkt: &[u8],
    scratch: &mut Vec<u8>,
) -> io::Result<()> {
    scratch.clear();
    scratch.extend_from_slice(&rtsp::interleaved::header(channel, pkt.len() as u16));
    scratch.extend_from_slice(pkt);
    let mut s = out.lock().map_err(|_| io::Error::other("poisoned"))?;
    s.write_all(scratch)
}

/// State kept while a session is not playing.
struct Paused {
    gen: Generator,
    next_frame: u32,
}

struct Player {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Paused>,
}

struct Session {
    id: String,
    track_url: String,
    sink: Arc<Sink>,
    ssrc: u32,
    /// The absolute schedule: frame n at `epoch + n / fps`.
    epoch: Option<Instant>,
    paused: Option<Paused>,
    player: Option<Player>,
}

impl Session {
    fn stop(&mut self) {
        if let Some(p) = self.player.take() {
            p.stop.store(true, Ordering::SeqCst);
            if let Ok(paused) = p.handle.join() {
                self.paused = Some(paused);
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(conn: TcpStream, cfg: &SourceConfig) -> io::Result<()> {
    conn.set_nodelay(true)?;
    conn.set_write_timeout(Some(Duration::from_secs(5)))?;
    let peer_ip = conn.peer_addr()?.ip();
    let local_ip = conn.local_addr()?.ip();
    let out = Arc::new(Mutex::new(conn.try_clone()?));
    let mut reader = conn;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let limits = Limits::default();
    let mut sessions: HashMap<String, Session> = HashMap::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        loop {
            match parse_frame(&mut buf, &limits) {
                Ok(None) => break,
                Ok(Some(Frame::Request(req))) => {
                    if cfg.verbose {
                        eprintln!("source: {} {}", req.method.as_str(), req.uri);
                    }
                    let resp = handle(&req, cfg, &mut sessions, &out, peer_ip, local_ip);
                    let (resp, then_play) = resp;
                    let bytes = resp.to_bytes();
                    out.lock()
                        .map_err(|_| io::Error::other("poisoned"))?
                        .write_all(&bytes)?;
                    if let Some(id) = then_play {
                        if let Some(s) = sessions.get_mut(&id) {
                            start_player(s, cfg)?;
                        }
                    }
                }
                Ok(Some(_)) => {} // RTCP from the client over TCP, responses: ignored.
                Err(e) => {
                    let r = Response::new(e.status())
                        .with_header("CSeq", e.cseq.unwrap_or(0).to_string());
                    out.lock()
                        .map_err(|_| io::Error::other("poisoned"))?
                        .write_all(&r.to_bytes())?;
                    if !e.recoverable {
                        return Err(io::Error::other(e.to_string()));
                    }
                }
            }
        }
        let n = reader.read(&mut chunk)?;
        if n == 0 {
            return Ok(()); // sessions stop on drop
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn base_response(req: &Request, status: u16) -> Response {
    let mut r = Response::new(status).with_header("CSeq", req.cseq().unwrap_or(0).to_string());
    r.headers.set("Server", "rtsp-bench");
    r.headers
        .set("Date", rtsp::date::format_date(SystemTime::now()));
    r
}

/// Answers a request; the second value asks to start playing that session
/// once the response is written (so the first packet follows the PLAY response).
fn handle(
    req: &Request,
    cfg: &SourceConfig,
    sessions: &mut HashMap<String, Session>,
    out: &Arc<Mutex<TcpStream>>,
    peer_ip: IpAddr,
    local_ip: IpAddr,
) -> (Response, Option<String>) {
    let session_id = req
        .header("Session")
        .and_then(|s| rtsp::header::SessionHeader::parse(s).ok())
        .map(|s| s.id);
    let with_session = |mut r: Response, id: &str| {
        r.headers
            .set("Session", format!("{id};timeout={SESSION_TIMEOUT}"));
        r
    };
    match req.method {
        Method::Options => (base_response(req, 200).with_header("Public", PUBLIC), None),
        Method::Describe => {
            let base = if req.uri.ends_with('/') {
                req.uri.clone()
            } else {
                format!("{}/", req.uri)
            };
            let sdp = cfg.workload.sdp(now_ns() / 1000);
            (
                base_response(req, 200)
                    .with_header("Content-Base", base)
                    .with_body("application/sdp", sdp.into_bytes()),
                None,
            )
        }
        Method::Setup => {
            let Some(offers) = req
                .header("Transport")
                .and_then(|t| Transport::parse_list(t).ok())
            else {
                return (base_response(req, 461), None);
            };
            if let Some(id) = &session_id {
                if !sessions.contains_key(id) {
                    return (base_response(req, 454), None);
                }
            }
            let ssrc: u32 = rand::random();
            let mut chosen = None;
            for t in offers
                .iter()
                .filter(|t| t.protocol == "RTP" && t.profile == "AVP")
            {
                match t.lower {
                    LowerTransport::Tcp => {
                        let ch = t
                            .interleaved
                            .map(|c| (c.rtp, c.rtcp.unwrap_or(c.rtp.wrapping_add(1))));
                        let (rtp_channel, rtcp_channel) = ch.unwrap_or((0, 1));
                        let mut tr = Transport::rtp_avp(LowerTransport::Tcp);
                        tr.cast = Some(rtsp::header::Cast::Unicast);
                        tr.interleaved = Some(rtsp::header::ChannelRange {
                            rtp: rtp_channel,
                            rtcp: Some(rtcp_channel),
                        });
                        tr.ssrc = Some(ssrc);
                        chosen = Some((
                            tr,
                            Sink::Tcp {
                                out: out.clone(),
                                rtp_channel,
                                rtcp_channel,
                            },
                        ));
                        break;
                    }
                    LowerTransport::Udp => {
                        if t.cast == Some(rtsp::header::Cast::Multicast) {
                            continue;
                        }
                        let Some(cp) = t.client_port else { continue };
                        let Ok((rtp, rtcp)) = udp_pair(local_ip) else {
                            return (base_response(req, 500), None);
                        };
                        let sp = PortRange {
                            rtp: rtp.local_addr().map(|a| a.port()).unwrap_or(0),
                            rtcp: rtcp.local_addr().ok().map(|a| a.port()),
                        };
                        let mut tr = Transport::rtp_avp(LowerTransport::Udp);
                        tr.cast = Some(rtsp::header::Cast::Unicast);
                        tr.client_port = Some(cp);
                        tr.server_port = Some(sp);
                        tr.ssrc = Some(ssrc);
                        let rtp_to = SocketAddr::new(peer_ip, cp.rtp);
                        let rtcp_to =
                            SocketAddr::new(peer_ip, cp.rtcp.unwrap_or(cp.rtp.wrapping_add(1)));
                        chosen = Some((
                            tr,
                            Sink::Udp {
                                rtp,
                                rtcp,
                                rtp_to,
                                rtcp_to,
                            },
                        ));
                        break;
                    }
                }
            }
            let Some((tr, sink)) = chosen else {
                return (base_response(req, 461), None);
            };
            let id = session_id.unwrap_or_else(|| format!("{:016X}", rand::random::<u64>()));
            if let Some(mut old) = sessions.remove(&id) {
                old.stop();
            }
            sessions.insert(
                id.clone(),
                Session {
                    id: id.clone(),
                    track_url: req.uri.clone(),
                    sink: Arc::new(sink),
                    ssrc,
                    epoch: None,
                    paused: None,
                    player: None,
                },
            );
            (
                with_session(
                    base_response(req, 200).with_header("Transport", tr.to_string()),
                    &id,
                ),
                None,
            )
        }
        Method::Play => {
            let Some(s) = session_id.as_ref().and_then(|id| sessions.get_mut(id)) else {
                return (base_response(req, 454), None);
            };
            if s.player.is_some() {
                // Already playing: the next packet's numbers are not known exactly.
                let id = s.id.clone();
                return (
                    with_session(base_response(req, 200), &id).with_header("Range", "npt=0.000-"),
                    None,
                );
            }
            let epoch = *s.epoch.get_or_insert_with(Instant::now);
            let ssrc = s.ssrc;
            let p = s.paused.get_or_insert_with(|| Paused {
                gen: Generator::new(cfg.workload.clone(), ssrc, rand::random(), rand::random()),
                next_frame: 0,
            });
            let n = next_frame_at(&cfg.workload, epoch, p.next_frame);
            p.next_frame = n;
            let (seq, rtptime) = (p.gen.next_seq(), p.gen.timestamp(n));
            let info = rtp_info::RtpInfo {
                url: s.track_url.clone(),
                seq: Some(seq),
                rtptime: Some(rtptime),
            };
            let id = s.id.clone();
            let r = with_session(base_response(req, 200), &id)
                .with_header("Range", "npt=0.000-")
                .with_header("RTP-Info", info.to_string());
            (r, Some(id))
        }
        Method::Pause => match session_id.as_ref().and_then(|id| sessions.get_mut(id)) {
            Some(s) => {
                s.stop();
                (with_session(base_response(req, 200), &s.id.clone()), None)
            }
            None => (base_response(req, 454), None),
        },
        Method::Teardown => match session_id.as_ref().and_then(|id| sessions.remove(id)) {
            Some(mut s) => {
                s.stop();
                (base_response(req, 200), None)
            }
            None => (base_response(req, 454), None),
        },
        Method::GetParameter | Method::SetParameter => match &session_id {
            Some(id) if !sessions.contains_key(id) => (base_response(req, 454), None),
            Some(id) => (with_session(base_response(req, 200), id), None),
            None => (base_response(req, 200), None),
        },
        _ => (base_response(req, 501).with_header("Public", PUBLIC), None),
    }
}

/// The first frame to send when (re)starting at `now`: the schedule is absolute,
/// so after a pause the frames that were due meanwhile are skipped.
fn next_frame_at(w: &Workload, epoch: Instant, next: u32) -> u32 {
    let elapsed = epoch.elapsed();
    // The frame whose time has just come (sent at once, at most a frame late).
    let due = (elapsed.as_nanos() * u128::from(w.fps) / 1_000_000_000) as u32;
    next.max(due)
}

fn udp_pair(ip: IpAddr) -> io::Result<(UdpSocket, UdpSocket)> {
    let ip = if ip.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        ip
    };
    for _ in 0..100 {
        let rtp = UdpSocket::bind(SocketAddr::new(ip, 0))?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(ip, port + 1)) {
            return Ok((rtp, rtcp));
        }
    }
    let rtp = UdpSocket::bind(SocketAddr::new(ip, 0))?;
    let rtcp = UdpSocket::bind(SocketAddr::new(ip, 0))?;
    Ok((rtp, rtcp))
}

fn start_player(s: &mut Session, cfg: &SourceConfig) -> io::Result<()> {
    if s.player.is_some() {
        return Ok(());
    }
    let Some(paused) = s.paused.take() else {
        return Ok(());
    };
    let stop = Arc::new(AtomicBool::new(false));
    let sink = s.sink.clone();
    let epoch = s.epoch.unwrap_or_else(Instant::now);
    let w = cfg.workload.clone();
    let stop2 = stop.clone();
    let ssrc = s.ssrc;
    let handle = thread::Builder::new()
        .name("rtsp-media".into())
        .spawn(move || play(paused, &sink, &stop2, epoch, &w, ssrc))?;
    s.player = Some(Player { stop, handle });
    Ok(())
}

/// Sends frames until `stop`; gives back the generator to resume with.
fn play(
    mut p: Paused,
    sink: &Sink,
    stop: &AtomicBool,
    epoch: Instant,
    w: &Workload,
    ssrc: u32,
) -> Paused {
    let mut fb = FrameBuf::default();
    let mut scratch = Vec::with_capacity(w.packet_size + 4);
    let mut n = p.next_frame;
    let mut packets: u32 = 0;
    let mut octets: u32 = 0;
    let mut last_sr: Option<Instant> = None;
    let mut sr = BytesMut::with_capacity(128);
    while !stop.load(Ordering::Relaxed) {
        let due = epoch + w.frame_offset(u64::from(n));
        loop {
            let now = Instant::now();
            if now >= due || stop.load(Ordering::Relaxed) {
                break;
            }
            thread::sleep((due - now).min(Duration::from_millis(50)));
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        // Far behind (the machine stalled): skip to the current frame rather than burst.
        let late = Instant::now().saturating_duration_since(due);
        if late > Duration::from_secs(1) {
            n = next_frame_at(w, epoch, n);
            continue;
        }
        p.gen.build(n, &mut fb);
        let first = now_ns();
        let mut failed = false;
        for i in 0..fb.packets.len() {
            let t = if i == 0 { first } else { now_ns() };
            fb.stamp(i, t, first);
            if sink.send_rtp(fb.packet(i), &mut scratch).is_err() {
                failed = true;
            }
            packets = packets.wrapping_add(1);
            octets = octets.wrapping_add((fb.packets[i].len - crate::gen::RTP_HEADER) as u32);
        }
        if matches!(sink, Sink::Tcp { .. }) && failed {
            break; // the connection is gone or stuck
        }
        if last_sr.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            let now = SystemTime::now();
            let info = rtp::rtcp::SenderInfo {
                ssrc,
                ntp: rtp::rtcp::ntp_from_system_time(now),
                rtp_timestamp: fb.rtp_timestamp,
                packet_count: packets,
                octet_count: octets,
            };
            sr.clear();
            rtp::rtcp::build_sender_report(&mut sr, &info, "rtsp-bench@127.0.0.1");
            let _ = sink.send_rtcp(&sr, &mut scratch);
            last_sr = Some(Instant::now());
        }
        n += 1;
    }
    p.next_frame = n;
    p
}
