//! `rtsp-bench soak`: a long run that looks for leaks and for sessions that do
//! not survive back-end restarts.
//!
//! Starts the synthetic source and the proxy, keeps `clients` RTSP sessions
//! open (each on its own slot; a session lives an exponentially distributed
//! time so that about `churn` sessions per second leave and are replaced),
//! kills the source by PID every `restart_every` seconds and starts it again
//! on the same port, and samples the proxy's RSS, open descriptors
//! (`/proc/<pid>/fd`) and CPU share every `sample` seconds. At the end every
//! client leaves, the proxy's linger passes, and the descriptors and RSS are
//! compared with their level before the first client: above the margins, the
//! run fails.
//!
//! Orchestration (children, sampling) runs on the calling thread; the clients
//! run on one other thread (a tokio current-thread runtime) and share only
//! atomic counters with it.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rtsp::Method;
use tokio::io::AsyncReadExt;
use tokio::net::UdpSocket;

use crate::gen::Workload;
use crate::load::Transport;
use crate::probe::now_ns;
use crate::procstat;
use crate::rtsp_client::{self, media_control, request, RtspConn};
use crate::run::{free_port, wait_listening, workload_args, ChildGuard};
use crate::sys;

/// What to run.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    /// Proxy command (placeholders `{port}`, `{source}`), default this tree's proxy.
    pub proxy: Option<String>,
    /// Sessions kept open.
    pub clients: usize,
    /// Transports, used in turn by the slots.
    pub transports: Vec<Transport>,
    /// Sessions per second leaving (and as many joining), on average.
    pub churn: f64,
    /// Seconds between source restarts (0: never).
    pub restart_every: f64,
    /// Seconds of churn.
    pub duration: f64,
    /// Seconds between samples.
    pub sample: f64,
    /// Seconds after a restart by which every session open before it must have media again.
    pub media_check: f64,
    /// Seconds to wait after the last client left before the final sample.
    pub drain: f64,
    /// Descriptors the proxy may hold at the end above its start.
    pub max_fd_growth: usize,
    /// MiB of RSS the proxy may hold at the end above its start.
    pub max_rss_growth_mib: f64,
    /// Stream path on the proxy.
    pub path: String,
    /// Milliseconds between the first session starts.
    pub stagger_ms: f64,
    /// Receive buffer of each client UDP socket.
    pub rcvbuf: usize,
    /// The stream.
    pub workload: Workload,
    /// Where child logs go.
    pub logs: PathBuf,
}

/// One client slot, as the orchestrator sees it.
#[derive(Default)]
struct Slot {
    /// Unix ns when the current session's PLAY was answered; 0 when none plays.
    playing_since: AtomicU64,
    /// Unix ns of the last RTP packet of the current session.
    last_packet: AtomicU64,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    playing: AtomicUsize,
    /// Sessions that reached PLAY 200.
    served: AtomicU64,
    /// Sessions that failed before PLAY 200.
    failed_start: AtomicU64,
    /// Sessions that ended with an error after PLAY (connection closed, ...).
    dropped: AtomicU64,
    /// Sessions that received no RTP packet at all.
    no_media: AtomicU64,
    packets: AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
    slots: Vec<Slot>,
}

impl Shared {
    fn note_error(&self, e: String) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some(e);
        }
    }
}

/// Open descriptors of `pid` (entries of `/proc/<pid>/fd`).
pub fn fd_count(pid: u32) -> Option<usize> {
    Some(fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

#[derive(Clone, Copy)]
struct Probe {
    at: Instant,
    ticks: u64,
    rss_kib: u64,
    fds: usize,
}

fn probe(pid: u32) -> Result<Probe, String> {
    Ok(Probe {
        at: Instant::now(),
        ticks: procstat::process_cpu(pid)
            .ok_or_else(|| format!("cannot read /proc/{pid}/stat (did the proxy exit?)"))?
            .total(),
        rss_kib: procstat::rss_kib(pid).unwrap_or(0),
        fds: fd_count(pid).unwrap_or(0),
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Runs the soak; `Err` when it could not run or a margin was exceeded.
pub fn run(cfg: SoakConfig) -> Result<(), String> {
    sys::catch_signals();
    if cfg.clients == 0 || cfg.duration <= 0.0 || cfg.sample <= 0.0 || cfg.churn < 0.0 {
        return Err(
            "--clients, --duration and --sample must be above 0, --churn not negative".into(),
        );
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    fs::create_dir_all(&cfg.logs).map_err(|e| format!("{}: {e}", cfg.logs.display()))?;
    let template = cfg.proxy.clone().unwrap_or_else(|| {
        format!(
            "{} --bind 127.0.0.1 -p {{port}} {{source}}",
            exe.with_file_name("rtsp-proxy").display()
        )
    });

    // The source.
    let src_port = free_port()?;
    let mut src_argv = vec![
        exe.display().to_string(),
        "source".into(),
        "--port".into(),
        src_port.to_string(),
    ];
    src_argv.extend(workload_args(&cfg.workload));
    let mut generation = 0usize;
    let source_log = |g: usize| cfg.logs.join(format!("soak-source-{g}.log"));
    let mut source = ChildGuard::spawn("source", &src_argv, &source_log(generation))?;
    wait_listening(src_port, &mut source, Duration::from_secs(10))?;
    let source_url = format!("rtsp://127.0.0.1:{src_port}/stream");

    // The proxy.
    let port = free_port()?;
    let cmd = template
        .replace("{port}", &port.to_string())
        .replace("{source}", &source_url);
    println!("soak: proxy: {cmd}");
    let argv = vec!["sh".into(), "-c".into(), format!("exec {cmd}")];
    let mut proxy = ChildGuard::spawn("proxy", &argv, &cfg.logs.join("soak-proxy.log"))?;
    wait_listening(port, &mut proxy, Duration::from_secs(15))?;
    thread::sleep(Duration::from_secs(1));
    let pid = proxy.pid();
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if matches!(comm.trim(), "sh" | "taskset" | "bash") {
        eprintln!(
            "warning: pid {pid} is `{}`, not the proxy itself; the figures are that process's",
            comm.trim()
        );
    }
    let start = probe(pid)?;
    let url = format!("rtsp://127.0.0.1:{port}/{}", cfg.path);
    println!(
        "soak: {} clients ({}) on {url}, churn {}/s, source restart every {} s, {} s, sample every {} s; logs in {}",
        cfg.clients,
        cfg.transports.iter().map(|t| t.name()).collect::<Vec<_>>().join("+"),
        cfg.churn,
        cfg.restart_every,
        cfg.duration,
        cfg.sample,
        cfg.logs.display()
    );
    println!(
        "soak: before the clients: RSS {:.1} MiB, {} fds",
        mib(start.rss_kib),
        start.fds
    );

    let shared = Arc::new(Shared {
        slots: (0..cfg.clients).map(|_| Slot::default()).collect(),
        ..Default::default()
    });
    let clients = {
        let shared = shared.clone();
        let cfg = cfg.clone();
        let url = url.clone();
        thread::Builder::new()
            .name("soak-clients".into())
            .spawn(move || clients_main(cfg, url, shared))
            .map_err(|e| e.to_string())?
    };

    let tck = procstat::ticks_per_second();
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(cfg.duration);
    let every = Duration::from_secs_f64(cfg.sample);
    let mut next_sample = t0 + every;
    let restart_every =
        (cfg.restart_every > 0.0).then(|| Duration::from_secs_f64(cfg.restart_every));
    let mut next_restart = restart_every.map(|d| t0 + d);
    // Restarts whose media check is due: (restart Unix ns, check instant).
    let mut checks: Vec<(u64, Instant)> = Vec::new();
    let mut tally = Tally {
        last: Some(start),
        max_rss: start.rss_kib,
        max_fds: start.fds,
        ..Tally::default()
    };
    let mut result: Result<(), String> = Ok(());

    print_sample_header();
    while Instant::now() < end {
        if sys::interrupted() {
            result = Err("interrupted".into());
            break;
        }
        if let Some(s) = proxy.exited() {
            result = Err(format!(
                "the proxy exited during the soak ({s}); see its log"
            ));
            break;
        }
        let now = Instant::now();
        if let Some(at) = next_restart {
            if now >= at {
                // Kill the source by its PID (and its group), start it again on the same port.
                source.signal_group(libc::SIGKILL);
                source.stop(Duration::ZERO);
                let killed_ns = now_ns();
                tally.restarts += 1;
                generation += 1;
                thread::sleep(Duration::from_millis(200));
                match ChildGuard::spawn("source", &src_argv, &source_log(generation)).and_then(
                    |mut s| wait_listening(src_port, &mut s, Duration::from_secs(10)).map(|_| s),
                ) {
                    Ok(s) => source = s,
                    Err(e) => {
                        tally.restart_failures += 1;
                        result = Err(format!("the source did not start again: {e}"));
                        break;
                    }
                }
                println!(
                    "  -- t={:.0} s: source killed and started again (restart {})",
                    (now - t0).as_secs_f64(),
                    tally.restarts
                );
                checks.push((killed_ns, now + Duration::from_secs_f64(cfg.media_check)));
                next_restart = restart_every.map(|d| at + d);
            }
        }
        tally.no_media_after_restart += media_checks_due(&mut checks, &shared, cfg.media_check);
        if now >= next_sample {
            next_sample += every;
            let p = match probe(pid) {
                Ok(p) => p,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            tally.sample(p, t0, tck, &shared);
        }
        thread::sleep(Duration::from_millis(50));
    }

    // Every client leaves; then the proxy's linger passes.
    shared.stop.store(true, Ordering::SeqCst);
    let leave_until = Instant::now() + Duration::from_secs(20);
    while !clients.is_finished() && Instant::now() < leave_until {
        thread::sleep(Duration::from_millis(50));
    }
    if clients.is_finished() {
        let _ = clients.join();
    } else {
        eprintln!("warning: the clients did not all leave within 20 s");
    }
    let (end_probe, proxy_alive) = if result.is_ok() || proxy.exited().is_none() {
        thread::sleep(Duration::from_secs_f64(cfg.drain));
        (probe(pid).ok(), proxy.exited().is_none())
    } else {
        (None, false)
    };
    proxy.stop(Duration::from_secs(3));
    source.stop(Duration::from_secs(2));

    let verdict = summary(&cfg, &shared, &tally, start, end_probe, proxy_alive, t0);
    result?;
    if verdict.is_empty() {
        println!(
            "soak: PASS (fds within {}, RSS within {} MiB of the start)",
            cfg.max_fd_growth, cfg.max_rss_growth_mib
        );
        Ok(())
    } else {
        Err(format!("soak: FAIL: {}", verdict.join("; ")))
    }
}

/// What the soak counts while it runs.
#[derive(Default)]
struct Tally {
    restarts: usize,
    restart_failures: usize,
    /// Sessions open across a restart that got no packet after it.
    no_media_after_restart: usize,
    /// The previous sample.
    last: Option<Probe>,
    max_rss: u64,
    max_fds: usize,
    /// The proxy's CPU share of each sample interval, in % of one core.
    cpu_shares: Vec<f64>,
    /// Packets the clients had received at the previous sample.
    last_packets: u64,
}

fn print_sample_header() {
    println!(
        "\n{:>7} {:>7} {:>8} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6}",
        "t_s",
        "playing",
        "served",
        "failed",
        "dropped",
        "nomedia",
        "restarts",
        "rss_MiB",
        "fds",
        "cpu%",
        "pkt/s"
    );
}

impl Tally {
    /// Counts the probe `p` and prints its row.
    fn sample(&mut self, p: Probe, t0: Instant, tck: f64, shared: &Shared) {
        let last = self.last.unwrap_or(p);
        let wall = (p.at - last.at).as_secs_f64().max(1e-9);
        let cpu = (p.ticks.saturating_sub(last.ticks)) as f64 / tck / wall * 100.0;
        self.cpu_shares.push(cpu);
        self.max_rss = self.max_rss.max(p.rss_kib);
        self.max_fds = self.max_fds.max(p.fds);
        let pk = shared.packets.load(Ordering::Relaxed);
        println!(
            "{:>7.0} {:>7} {:>8} {:>7} {:>7} {:>8} {:>8} {:>8.1} {:>8} {:>6.1} {:>6.0}",
            (p.at - t0).as_secs_f64(),
            shared.playing.load(Ordering::Relaxed),
            shared.served.load(Ordering::Relaxed),
            shared.failed_start.load(Ordering::Relaxed),
            shared.dropped.load(Ordering::Relaxed),
            self.no_media_after_restart,
            self.restarts,
            mib(p.rss_kib),
            p.fds,
            cpu,
            (pk - self.last_packets) as f64 / wall
        );
        self.last_packets = pk;
        self.last = Some(p);
    }
}

/// Runs the media checks that are due (dropping them from `checks`); returns
/// how many sessions open across their restart got no packet since.
fn media_checks_due(checks: &mut Vec<(u64, Instant)>, shared: &Shared, media_check: f64) -> usize {
    let mut no_media = 0;
    checks.retain(|&(killed_ns, due)| {
            if Instant::now() < due {
                return true;
            }
            let mut open = 0;
            let mut silent = 0;
            for s in &shared.slots {
                let since = s.playing_since.load(Ordering::Relaxed);
                if since != 0 && since < killed_ns {
                    open += 1;
                    if s.last_packet.load(Ordering::Relaxed) <= killed_ns + 500_000_000 {
                        silent += 1;
                    }
                }
            }
            no_media += silent;
            println!(
                "  -- media check {:.0} s after the restart: {silent} of {open} sessions open across it got no packet since",
                media_check
            );
            false
        });
    no_media
}

/// Prints the summary; returns what exceeded a margin.
fn summary(
    cfg: &SoakConfig,
    shared: &Shared,
    tally: &Tally,
    start: Probe,
    end_probe: Option<Probe>,
    proxy_alive: bool,
    t0: Instant,
) -> Vec<String> {
    let mean_cpu = if tally.cpu_shares.is_empty() {
        f64::NAN
    } else {
        tally.cpu_shares.iter().sum::<f64>() / tally.cpu_shares.len() as f64
    };
    println!(
        "\n----- soak summary ({:.0} s) -----",
        (Instant::now() - t0).as_secs_f64()
    );
    println!(
        "clients served {}, failed to start {}, dropped after PLAY {}, got no media at all {}",
        shared.served.load(Ordering::Relaxed),
        shared.failed_start.load(Ordering::Relaxed),
        shared.dropped.load(Ordering::Relaxed),
        shared.no_media.load(Ordering::Relaxed),
    );
    println!(
        "source restarts {} (failed {}), sessions without media after a restart {}",
        tally.restarts, tally.restart_failures, tally.no_media_after_restart
    );
    if let Ok(g) = shared.last_error.lock() {
        if let Some(e) = g.as_ref() {
            println!("last client error: {e}");
        }
    }
    println!("CPU mean {mean_cpu:.1} % of one core");
    let mut verdict = Vec::new();
    if let Some(e) = end_probe {
        let rss_growth = mib(e.rss_kib) - mib(start.rss_kib);
        let fd_growth = e.fds as i64 - start.fds as i64;
        println!(
            "RSS start {:.1} MiB, end {:.1} MiB ({rss_growth:+.1}), max {:.1} MiB",
            mib(start.rss_kib),
            mib(e.rss_kib),
            mib(tally.max_rss)
        );
        println!(
            "fds start {}, end {} ({fd_growth:+}), max {}",
            start.fds, e.fds, tally.max_fds
        );
        if fd_growth > cfg.max_fd_growth as i64 {
            verdict.push(format!(
                "{fd_growth} more descriptors after the clients left than before (margin {})",
                cfg.max_fd_growth
            ));
        }
        if rss_growth > cfg.max_rss_growth_mib {
            verdict.push(format!(
                "RSS grew by {rss_growth:.1} MiB (margin {} MiB)",
                cfg.max_rss_growth_mib
            ));
        }
    } else if proxy_alive {
        verdict.push("no final sample".into());
    } else {
        verdict.push("the proxy was not alive at the end".into());
    }
    verdict
}

fn clients_main(cfg: SoakConfig, url: String, shared: Arc<Shared>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            shared.note_error(format!("runtime: {e}"));
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    let cfg = Arc::new(cfg);
    let url: Arc<str> = url.into();
    local.block_on(&rt, async {
        let mut handles = Vec::new();
        for i in 0..cfg.clients {
            let (cfg, url, shared) = (cfg.clone(), url.clone(), shared.clone());
            handles.push(tokio::task::spawn_local(async move {
                tokio::time::sleep(Duration::from_secs_f64(
                    cfg.stagger_ms.max(0.0) / 1e3 * i as f64,
                ))
                .await;
                let transport = cfg.transports[i % cfg.transports.len()];
                // Mean lifetime so that `churn` sessions per second leave in all.
                let mean_life = if cfg.churn > 0.0 {
                    cfg.clients as f64 / cfg.churn
                } else {
                    f64::INFINITY
                };
                while !shared.stop.load(Ordering::SeqCst) {
                    let u: f64 = rand::random::<f64>().max(1e-9);
                    let life = (-u.ln() * mean_life).clamp(1.0, 1e7);
                    let r = session(
                        &cfg,
                        &url,
                        transport,
                        Duration::from_secs_f64(life),
                        &shared,
                        i,
                    )
                    .await;
                    let slot = &shared.slots[i];
                    if slot.playing_since.swap(0, Ordering::SeqCst) != 0 {
                        shared.playing.fetch_sub(1, Ordering::SeqCst);
                    }
                    match r {
                        Ok(()) => {}
                        Err((played, e)) => {
                            if played {
                                shared.dropped.fetch_add(1, Ordering::Relaxed);
                            } else {
                                shared.failed_start.fetch_add(1, Ordering::Relaxed);
                            }
                            shared.note_error(format!("client {i}: {e}"));
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
            }));
        }
        for h in handles {
            let _ = h.await;
        }
    });
}

/// One session: DESCRIBE, SETUP, PLAY, receive until `life` passed or the
/// soak stops, TEARDOWN. `Err((played, e))`: whether PLAY was answered.
async fn session(
    cfg: &SoakConfig,
    url: &str,
    transport: Transport,
    life: Duration,
    shared: &Shared,
    i: usize,
) -> Result<(), (bool, io::Error)> {
    let slot = &shared.slots[i];
    let pre = |e: io::Error| (false, e);
    let parsed = rtsp::url::RtspUrl::parse(url)
        .map_err(|e| pre(io::Error::other(format!("bad URL: {e}"))))?;
    let (host, port) = parsed.connect_target();
    let t = Duration::from_secs(10);
    let mut c = RtspConn::connect(&host, port, t).await.map_err(pre)?;
    let no_data = &mut |_: u8, _: &[u8]| {};
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let resp = loop {
        let r = c
            .request(
                request(Method::Describe, url).with_header("Accept", "application/sdp"),
                t,
                no_data,
            )
            .await
            .map_err(pre)?;
        if r.status == 503 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        break r;
    };
    let resp = rtsp_client::ok("DESCRIBE", resp).map_err(pre)?;
    let base = resp
        .header("Content-Base")
        .or_else(|| resp.header("Content-Location"))
        .unwrap_or(url)
        .to_owned();
    let control = media_control(&String::from_utf8_lossy(&resp.body), &base);
    let mut udp = None;
    let tr = match transport {
        Transport::Udp => {
            let (rtp, rtcp) = sys::udp_receiver_pair(cfg.rcvbuf).map_err(pre)?;
            let p = rtp.local_addr().map_err(pre)?.port();
            udp = Some((rtp, rtcp));
            format!("RTP/AVP;unicast;client_port={}-{}", p, p + 1)
        }
        // `soak --transport` offers no WebRTC: its sessions are RTSP.
        Transport::Tcp | Transport::Webrtc => "RTP/AVP/TCP;unicast;interleaved=0-1".to_owned(),
    };
    let resp = c
        .request(
            request(Method::Setup, &control).with_header("Transport", tr),
            t,
            no_data,
        )
        .await
        .map_err(pre)?;
    let resp = rtsp_client::ok("SETUP", resp).map_err(pre)?;
    let rtp_channel = resp
        .header("Transport")
        .and_then(|v| rtsp::header::Transport::parse(v).ok())
        .and_then(|tr| tr.interleaved.map(|ch| ch.rtp))
        .unwrap_or(0);
    let mut packets = 0u64;
    let resp = c
        .request(
            request(Method::Play, url).with_header("Range", "npt=0.000-"),
            t,
            &mut |ch, _| {
                if ch == rtp_channel {
                    packets += 1;
                }
            },
        )
        .await
        .map_err(pre)?;
    rtsp_client::ok("PLAY", resp).map_err(pre)?;
    let now = now_ns();
    slot.last_packet
        .store(if packets > 0 { now } else { 0 }, Ordering::Relaxed);
    slot.playing_since.store(now, Ordering::SeqCst);
    shared.playing.fetch_add(1, Ordering::SeqCst);
    shared.served.fetch_add(1, Ordering::Relaxed);

    let post = |e: io::Error| (true, e);
    let end = tokio::time::Instant::now() + life;
    let ka_every = Duration::from_secs(u64::from(c.timeout.unwrap_or(60) / 3).clamp(2, 20));
    let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + ka_every, ka_every);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut got = packets;
    let on_pkt = |got: &mut u64| {
        *got += 1;
        slot.last_packet.store(now_ns(), Ordering::Relaxed);
        shared.packets.fetch_add(1, Ordering::Relaxed);
    };
    let r: io::Result<()> = async {
        match udp {
            Some((rtp, rtcp)) => {
                let rtp = UdpSocket::from_std(rtp)?;
                let rtcp = UdpSocket::from_std(rtcp)?;
                let mut buf = vec![0u8; 2048];
                let mut rtcp_buf = vec![0u8; 2048];
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            if shared.stop.load(Ordering::Relaxed) || tokio::time::Instant::now() >= end { break }
                        }
                        r = rtp.recv(&mut buf) => { r?; on_pkt(&mut got); }
                        r = rtcp.recv(&mut rtcp_buf) => { r?; }
                        r = c.stream.read_buf(&mut c.buf) => {
                            if r? == 0 { return Err(io::Error::other("RTSP connection closed by the proxy")); }
                            c.drain(no_data)?;
                        }
                        _ = keepalive.tick() => { c.send(request(Method::GetParameter, url)).await?; }
                    }
                }
            }
            None => loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if shared.stop.load(Ordering::Relaxed) || tokio::time::Instant::now() >= end { break }
                    }
                    r = c.stream.read_buf(&mut c.buf) => {
                        if r? == 0 { return Err(io::Error::other("RTSP connection closed by the proxy")); }
                        let mut n = 0u64;
                        c.drain(&mut |ch, _| if ch == rtp_channel { n += 1 })?;
                        for _ in 0..n { on_pkt(&mut got); }
                        if c.buf.capacity() - c.buf.len() < 64 * 1024 {
                            c.buf.reserve(128 * 1024);
                        }
                    }
                    _ = keepalive.tick() => { c.send(request(Method::GetParameter, url)).await?; }
                }
            },
        }
        Ok(())
    }
    .await;
    r.map_err(post)?;
    if got == 0 {
        shared.no_media.fetch_add(1, Ordering::Relaxed);
    }
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        c.send(request(Method::Teardown, url)),
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_descriptors_are_counted() {
        // Other tests run alongside and open files too: count many of ours.
        let before = fd_count(std::process::id()).unwrap();
        let files: Vec<_> = (0..64)
            .map(|_| fs::File::open("/proc/self/status").unwrap())
            .collect();
        assert!(fd_count(std::process::id()).unwrap() >= before + 56);
        drop(files);
        assert!(fd_count(u32::MAX).is_none());
    }
}
