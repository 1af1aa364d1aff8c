//! `rtsp-bench load`: N real RTSP sessions (DESCRIBE, SETUP, PLAY) received on
//! one thread (a tokio current-thread runtime; UDP read with `recvmmsg` in
//! batches of 64 with kernel receive timestamps, TCP parsed in place), with
//! GET_PARAMETER keep-alives, then TEARDOWN.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use rtsp::header::rtp_info;
use rtsp::Method;
use tokio::io::AsyncReadExt;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::probe::{instant_at, now_ns};
use crate::rtsp_client::{self, media_control, request, RtspConn};
use crate::stats::{describe, summarize, ClientStats, Summary};
use crate::sys;
use crate::udp_receive::receive_udp;

/// Lower transport asked of the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// RTP over UDP.
    Udp,
    /// RTP interleaved in the RTSP connection.
    Tcp,
    /// WHEP (the URL is the WHEP endpoint): ICE, DTLS-SRTP, RTP via str0m.
    Webrtc,
}

impl Transport {
    /// `udp` / `tcp`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Webrtc => "webrtc",
        }
    }
}

/// What the load generator does.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Stream URL.
    pub url: String,
    /// Sessions.
    pub clients: usize,
    /// Lower transport.
    pub transport: Transport,
    /// Measured window `[start, end)`, Unix ns.
    pub window: (u64, u64),
    /// Delay between session starts.
    pub stagger: Duration,
    /// Packets per second expected per client (sizes the sample store).
    pub expected_pps: f64,
    /// Receive buffer of each UDP socket.
    pub rcvbuf: usize,
    /// Largest datagram expected.
    pub max_packet: usize,
}

/// Runs the load and gives the summary (also printed to stdout).
pub fn run(cfg: LoadConfig) -> Result<Summary, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let local = tokio::task::LocalSet::new();
    let cfg = Rc::new(cfg);
    let started = now_ns();
    let mut stats = local.block_on(&rt, async {
        let start = Instant::now();
        let mut handles = Vec::with_capacity(cfg.clients);
        for i in 0..cfg.clients {
            let cfg = cfg.clone();
            handles.push(tokio::task::spawn_local(async move {
                let window_s = (cfg.window.1.saturating_sub(cfg.window.0)) as f64 / 1e9;
                let expected = (cfg.expected_pps * window_s * 1.2) as usize + 1024;
                let mut st = ClientStats::new(cfg.window, expected);
                tokio::time::sleep_until(start + cfg.stagger * i as u32).await;
                if let Err(e) = session(&cfg, &mut st).await {
                    st.error = Some(format!("client {i}: {e}"));
                }
                st
            }));
        }
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            if let Ok(st) = h.await {
                out.push(st);
            }
        }
        out
    });
    let window_s = (cfg.window.1.saturating_sub(cfg.window.0)) as f64 / 1e9;
    let mut s = summarize(&mut stats, cfg.clients, window_s);
    let opened: Vec<u64> = stats.iter().filter_map(|c| c.play_sent_ns).collect();
    if let (Some(a), Some(b)) = (opened.iter().min(), opened.iter().max()) {
        s.set("sessions_opened_over_s", (b - a) as f64 / 1e9);
    }
    s.set(
        "load_started_before_window_s",
        cfg.window.0.saturating_sub(started) as f64 / 1e9,
    );
    println!(
        "load: {} {} clients on {} (measured {:.1} s)",
        cfg.clients,
        cfg.transport.name(),
        cfg.url,
        window_s
    );
    print!("{}", describe(&s));
    Ok(s)
}

async fn session(cfg: &LoadConfig, st: &mut ClientStats) -> io::Result<()> {
    if cfg.transport == Transport::Webrtc {
        return crate::whep_client::session(&cfg.url, cfg.rcvbuf, cfg.window.1, cfg.max_packet, st)
            .await;
    }
    let url = rtsp::url::RtspUrl::parse(&cfg.url)
        .map_err(|e| io::Error::other(format!("bad URL: {e}")))?;
    let (host, port) = url.connect_target();
    let t = Duration::from_secs(5);
    let mut c = RtspConn::connect(&host, port, t).await?;
    let no_data = &mut |_: u8, _: &[u8]| {};

    // DESCRIBE, waiting while the proxy has not reached its back end yet (503).
    let describe_deadline = Instant::now() + Duration::from_secs(15);
    let resp = loop {
        let r = c
            .request(
                request(Method::Describe, &cfg.url).with_header("Accept", "application/sdp"),
                t,
                no_data,
            )
            .await?;
        if r.status == 503 && Instant::now() < describe_deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        break r;
    };
    let resp = rtsp_client::ok("DESCRIBE", resp)?;
    let base = resp
        .header("Content-Base")
        .or_else(|| resp.header("Content-Location"))
        .unwrap_or(&cfg.url)
        .to_owned();
    let sdp = String::from_utf8_lossy(&resp.body).into_owned();
    let control = media_control(&sdp, &base);

    let mut udp = None;
    let transport = match cfg.transport {
        Transport::Udp => {
            let (rtp, rtcp) = sys::udp_receiver_pair(cfg.rcvbuf)?;
            let p = rtp.local_addr()?.port();
            udp = Some((rtp, rtcp));
            format!("RTP/AVP;unicast;client_port={}-{}", p, p + 1)
        }
        // WebRTC sessions went to `whep_client` above.
        Transport::Tcp | Transport::Webrtc => "RTP/AVP/TCP;unicast;interleaved=0-1".to_owned(),
    };
    let resp = c
        .request(
            request(Method::Setup, &control).with_header("Transport", transport),
            t,
            no_data,
        )
        .await?;
    let resp = rtsp_client::ok("SETUP", resp)?;
    let mut rtp_channel = 0u8;
    if let Some(tr) = resp
        .header("Transport")
        .and_then(|v| rtsp::header::Transport::parse(v).ok())
    {
        if let Some(ch) = tr.interleaved {
            rtp_channel = ch.rtp;
        }
    }

    // The aggregate URL: what DESCRIBE was asked for.
    let play_url = cfg.url.clone();
    st.play_sent_ns = Some(now_ns());
    let resp = {
        let st_cell = RefCell::new(&mut *st);
        let mut on_data = |ch: u8, p: &[u8]| {
            let mut st = st_cell.borrow_mut();
            if ch == rtp_channel {
                st.on_rtp(p, now_ns());
            } else {
                st.rtcp += 1;
            }
        };
        c.request(
            request(Method::Play, &play_url).with_header("Range", "npt=0.000-"),
            t,
            &mut on_data,
        )
        .await?
    };
    let resp = rtsp_client::ok("PLAY", resp)?;
    if let Some(info) = resp.header("RTP-Info") {
        st.rtp_info_seq = rtp_info::parse_list(info).first().and_then(|i| i.seq);
    }

    let end = instant_at(cfg.window.1) + Duration::from_millis(200);
    let every = Duration::from_secs(u64::from(c.timeout.unwrap_or(60) / 3).clamp(2, 20));
    let mut keepalive = tokio::time::interval_at(Instant::now() + every, every);
    let sleep = tokio::time::sleep_until(end);
    tokio::pin!(sleep);
    let session_url = play_url.clone();
    match udp {
        Some((rtp, rtcp)) => {
            let rtp = UdpSocket::from_std(rtp)?;
            let rtcp = UdpSocket::from_std(rtcp)?;
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    r = receive_udp(&rtp, Some(&rtcp), st, end, cfg.max_packet) => { r?; break }
                    r = c.stream.read_buf(&mut c.buf) => {
                        if r? == 0 { return Err(io::Error::other("RTSP connection closed by the server")); }
                        c.drain(no_data)?;
                    }
                    _ = keepalive.tick() => { c.send(request(Method::GetParameter, &session_url)).await?; }
                }
            }
        }
        None => loop {
            tokio::select! {
                _ = &mut sleep => break,
                r = c.stream.read_buf(&mut c.buf) => {
                    if r? == 0 { return Err(io::Error::other("RTSP connection closed by the server")); }
                    let now = now_ns();
                    c.drain(&mut |ch, p| if ch == rtp_channel { st.on_rtp(p, now) } else { st.rtcp += 1 })?;
                    if c.buf.capacity() - c.buf.len() < 64 * 1024 {
                        c.buf.reserve(128 * 1024);
                    }
                }
                _ = keepalive.tick() => { c.send(request(Method::GetParameter, &session_url)).await?; }
            }
        },
    }
    // Best effort: the measurement is over.
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        c.send(request(Method::Teardown, &session_url)),
    )
    .await;
    Ok(())
}
