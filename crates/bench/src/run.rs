//! `rtsp-bench run`: the orchestrator behind `scripts/bench.sh`.
//!
//! Starts the synthetic source (on the bench CPU), then for every client
//! count, transport and round: the proxy command (on the proxy CPU, in its own
//! process group), waits for it to listen, runs `load` (on the bench CPU)
//! against it and samples the proxy's CPU time (`/proc/<pid>/stat`, all
//! threads) and RSS (`/proc/<pid>/status`) at the start and the end of the
//! measured window. Optionally the two floors. Every child is stopped on
//! success, error and Ctrl-C; every wait is bounded.

use std::fs::{self, File};
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::floor::Mode;
use crate::gen::Workload;
use crate::load::Transport;
use crate::probe::now_ns;
use crate::procstat;
use crate::stats::Summary;
use crate::sys;

/// What to run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Client counts, in order.
    pub clients: Vec<usize>,
    /// Transports, in order.
    pub transports: Vec<Transport>,
    /// Measured seconds.
    pub duration: f64,
    /// Seconds from the load's start to the measured window.
    pub warmup: f64,
    /// Proxy command A (placeholders `{port}`, `{source}`, `{webrtc}`), default the repo's proxy.
    pub a: Option<String>,
    /// Proxy command B.
    pub b: Option<String>,
    /// Rounds per command.
    pub rounds: Option<usize>,
    /// Include the floors.
    pub floor: bool,
    /// Stream path on the proxy.
    pub path: String,
    /// CPU of the proxy (and the floor's sender).
    pub proxy_cpu: usize,
    /// CPU of the source, the load and this process.
    pub bench_cpu: usize,
    /// Delay between session starts, ms.
    pub stagger_ms: f64,
    /// The stream.
    pub workload: Workload,
    /// Where child logs go.
    pub logs: PathBuf,
    /// Receive buffer of each client UDP socket.
    pub rcvbuf: usize,
    /// Seconds to wait after the proxy listens, before the clients come.
    pub settle: f64,
}

/// One measured thing.
#[derive(Clone, Debug)]
struct Measurement {
    subject: String,
    transport: String,
    clients: usize,
    round: usize,
    s: Summary,
}

/// A child process in its own process group, stopped (group-wide) when dropped.
pub(crate) struct ChildGuard {
    name: String,
    child: Child,
    done: bool,
}

impl ChildGuard {
    pub(crate) fn spawn(name: &str, argv: &[String], log: &Path) -> Result<ChildGuard, String> {
        let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::setpgid(0, 0);
                // Dies with us even if we are killed without a chance to clean up.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({}): {e}", argv[0]))?;
        Ok(ChildGuard {
            name: name.to_owned(),
            child,
            done: false,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Exit status if it exited.
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        match self.child.try_wait() {
            Ok(Some(s)) => {
                self.done = true;
                Some(s)
            }
            _ => None,
        }
    }

    pub(crate) fn signal_group(&self, sig: libc::c_int) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: plain kill(2) on the process group we created for this child.
        unsafe {
            libc::kill(-pid, sig);
        }
    }

    /// SIGTERM to the group, SIGKILL after `grace`, then reaped.
    pub(crate) fn stop(&mut self, grace: Duration) {
        if self.done {
            self.signal_group(libc::SIGKILL); // leftovers of the group, if any
            return;
        }
        if self.exited().is_none() {
            self.signal_group(libc::SIGTERM);
            let until = Instant::now() + grace;
            while Instant::now() < until {
                if self.exited().is_some() {
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        self.signal_group(libc::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.done = true;
    }

    /// Waits for it to exit by itself, up to `timeout`; then stops it.
    fn wait_or_stop(&mut self, timeout: Duration) -> Result<std::process::ExitStatus, String> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(s) = self.exited() {
                return Ok(s);
            }
            if sys::interrupted() {
                self.stop(Duration::from_secs(2));
                return Err("interrupted".into());
            }
            if Instant::now() >= until {
                self.stop(Duration::from_secs(2));
                return Err(format!(
                    "{} did not finish within {:?}; stopped",
                    self.name, timeout
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

/// A UDP port free on 127.0.0.1 now.
fn free_udp_port() -> Result<u16, String> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(s.local_addr().map_err(|e| e.to_string())?.port())
}

/// The proxy command line of one measurement: `{port}` and `{source}`
/// replaced, and `{webrtc}` by the rtsp-proxy options that turn WHEP on
/// (HTTP port, media UDP port, viewer limits for `clients`) when `whep`
/// gives those ports, else by nothing. A WebRTC measurement needs `{webrtc}`
/// in the command (the default has it).
pub(crate) fn proxy_command(
    template: &str,
    port: u16,
    source: &str,
    whep: Option<(u16, u16)>,
    clients: usize,
) -> Result<String, String> {
    let webrtc = match whep {
        Some(_) if !template.contains("{webrtc}") => {
            return Err(format!(
                "a WebRTC measurement needs {{webrtc}} in the proxy command (where rtsp-proxy's --webrtc-* options go): {template}"
            ))
        }
        Some((http, udp)) => format!(
            "--webrtc-listen 127.0.0.1:{http} --webrtc-udp 127.0.0.1:{udp} --webrtc-max-viewers {clients} --webrtc-max-viewers-per-path {clients}"
        ),
        None => String::new(),
    };
    Ok(template
        .replace("{port}", &port.to_string())
        .replace("{source}", source)
        .replace("{webrtc}", &webrtc))
}

pub(crate) fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Waits until something accepts on 127.0.0.1:`port`, while `child` lives.
pub(crate) fn wait_listening(
    port: u16,
    child: &mut ChildGuard,
    timeout: Duration,
) -> Result<(), String> {
    let until = Instant::now() + timeout;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(s) = child.exited() {
            return Err(format!(
                "{} exited ({s}) before listening on port {port}",
                child.name
            ));
        }
        if sys::interrupted() {
            return Err("interrupted".into());
        }
        if Instant::now() >= until {
            return Err(format!(
                "{} not listening on port {port} after {timeout:?}",
                child.name
            ));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Sleeps until Unix time `t_ns`, watching for Ctrl-C and for children dying.
fn sleep_until_unix(t_ns: u64, watch: &mut [&mut ChildGuard]) -> Result<(), String> {
    loop {
        let now = now_ns();
        if now >= t_ns {
            return Ok(());
        }
        if sys::interrupted() {
            return Err("interrupted".into());
        }
        for c in watch.iter_mut() {
            if let Some(s) = c.exited() {
                return Err(format!("{} exited early ({s}); see its log", c.name));
            }
        }
        thread::sleep(Duration::from_nanos((t_ns - now).min(20_000_000)));
    }
}

pub(crate) fn workload_args(w: &Workload) -> Vec<String> {
    vec![
        "--bitrate".into(),
        w.bitrate.to_string(),
        "--fps".into(),
        w.fps.to_string(),
        "--packet-size".into(),
        w.packet_size.to_string(),
        "--keyframe-interval".into(),
        w.keyframe_interval.to_string(),
        "--keyframe-factor".into(),
        w.keyframe_factor.to_string(),
    ]
}

fn taskset(cpu: usize, argv: Vec<String>) -> Vec<String> {
    let mut v = vec!["taskset".to_owned(), "-c".to_owned(), cpu.to_string()];
    v.extend(argv);
    v
}

#[derive(Clone, Debug)]
struct Sample {
    ticks: u64,
    sched: Vec<(u32, u64)>,
    rss: u64,
    core: procstat::CoreTicks,
    at: Instant,
}

fn sample(pid: u32, cpu: usize) -> Result<Sample, String> {
    Ok(Sample {
        ticks: procstat::process_cpu(pid)
            .ok_or_else(|| format!("cannot read /proc/{pid}/stat (did the proxy exit?)"))?
            .total(),
        sched: procstat::thread_schedstats(pid),
        rss: procstat::rss_kib(pid).unwrap_or(0),
        core: procstat::cpu_busy(cpu).unwrap_or_default(),
        at: Instant::now(),
    })
}

struct Ctx {
    cfg: RunConfig,
    exe: PathBuf,
    source_url: String,
    pps: f64,
}

impl Ctx {
    fn log(&self, name: &str) -> PathBuf {
        self.cfg.logs.join(format!("{name}.log"))
    }

    fn window(&self) -> (u64, u64) {
        let start = now_ns() + (self.cfg.warmup * 1e9) as u64;
        (start, start + (self.cfg.duration * 1e9) as u64)
    }

    fn measure_proxy(
        &self,
        subject: &str,
        template: &str,
        transport: Transport,
        clients: usize,
        round: usize,
    ) -> Result<Measurement, String> {
        let tag = format!("{subject}-{}-{clients}-r{round}", transport.name());
        let port = free_port()?;
        let whep = match transport {
            Transport::Webrtc => Some((free_port()?, free_udp_port()?)),
            Transport::Udp | Transport::Tcp => None,
        };
        let cmd = proxy_command(template, port, &self.source_url, whep, clients)?;
        println!("\n--- {tag}: {cmd}");
        let argv = taskset(
            self.cfg.proxy_cpu,
            vec!["sh".into(), "-c".into(), format!("exec {cmd}")],
        );
        let mut proxy = ChildGuard::spawn(
            &format!("proxy {subject}"),
            &argv,
            &self.log(&format!("proxy-{tag}")),
        )?;
        wait_listening(port, &mut proxy, Duration::from_secs(15))?;
        if let Some((http, _)) = whep {
            wait_listening(http, &mut proxy, Duration::from_secs(15))?;
        }
        thread::sleep(Duration::from_secs_f64(self.cfg.settle));
        let pid = proxy.pid();
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if matches!(comm.trim(), "sh" | "taskset" | "bash") {
            eprintln!(
                "warning: pid {pid} is `{}`, not the proxy itself; CPU figures count only that process (give a plain command line)",
                comm.trim()
            );
        }
        let idle = sample(pid, self.cfg.proxy_cpu)?;
        let window = self.window();
        let url = match whep {
            Some((http, _)) => format!("http://127.0.0.1:{http}/{}/whep", self.cfg.path),
            None => format!("rtsp://127.0.0.1:{port}/{}", self.cfg.path),
        };
        let report = self.cfg.logs.join(format!("load-{tag}.report"));
        let _ = fs::remove_file(&report);
        let load_argv = taskset(
            self.cfg.bench_cpu,
            vec![
                self.exe.display().to_string(),
                "load".into(),
                "--url".into(),
                url,
                "--clients".into(),
                clients.to_string(),
                "--transport".into(),
                transport.name().into(),
                "--window-start-unix-ns".into(),
                window.0.to_string(),
                "--duration".into(),
                self.cfg.duration.to_string(),
                "--stagger-ms".into(),
                self.cfg.stagger_ms.to_string(),
                "--expected-pps".into(),
                format!("{:.0}", self.pps),
                "--rcvbuf".into(),
                self.cfg.rcvbuf.to_string(),
                "--report".into(),
                report.display().to_string(),
            ],
        );
        let mut load = ChildGuard::spawn("load", &load_argv, &self.log(&format!("load-{tag}")))?;
        sleep_until_unix(window.0, &mut [&mut proxy, &mut load])?;
        let s0 = sample(pid, self.cfg.proxy_cpu)?;
        let load0 = procstat::process_cpu(load.pid()).map(|c| c.total());
        sleep_until_unix(window.1, &mut [&mut proxy, &mut load])?;
        let s1 = sample(pid, self.cfg.proxy_cpu)?;
        let load1 = procstat::process_cpu(load.pid()).map(|c| c.total());
        let status = load.wait_or_stop(Duration::from_secs(30))?;
        let proxy_alive = proxy.exited().is_none();
        proxy.stop(Duration::from_secs(3));
        let text = fs::read_to_string(&report).map_err(|_| {
            format!(
                "load wrote no report ({status}); see {}",
                self.log(&format!("load-{tag}")).display()
            )
        })?;
        let mut s = Summary::from_report(&text);
        if !proxy_alive {
            s.errors.push("the proxy exited during the run".into());
        }
        let tck = procstat::ticks_per_second();
        let wall = (s1.at - s0.at).as_secs_f64();
        let ticks_s = (s1.ticks - s0.ticks) as f64 / tck;
        // Nanosecond schedstat of every thread when none exited meanwhile, else the ticks.
        let sched_s = procstat::schedstat_delta(&s0.sched, &s1.sched).map(|ns| ns as f64 / 1e9);
        let cpu_s = sched_s.unwrap_or(ticks_s);
        let packets = s.get("packets").unwrap_or(0.0);
        let bytes = s.get("bytes").unwrap_or(0.0);
        s.set("cpu_s", cpu_s);
        s.set("cpu_ticks_s", ticks_s);
        s.set("cpu_threads", s1.sched.len() as f64);
        s.set("cpu_wall_s", wall);
        s.set("cpu_share", cpu_s / wall.max(1e-9));
        s.set("cpu_us_per_pkt", cpu_s * 1e6 / packets.max(1.0));
        s.set("cpu_us_per_kb", cpu_s * 1e6 / (bytes / 1000.0).max(1e-9));
        let (busy, steal) = s1.core.shares_since(&s0.core);
        s.set("core_busy_share", busy);
        s.set("core_steal_share", steal);
        if let (Some(a), Some(b)) = (load0, load1) {
            let share = (b.saturating_sub(a)) as f64 / tck / wall.max(1e-9);
            s.set("load_cpu_share", share);
            if share > 0.9 {
                s.errors.push(format!(
                    "the load used {:.0} % of its CPU: the receiving side may be the bottleneck",
                    share * 100.0
                ));
            }
        }
        s.set("rss_idle_kib", idle.rss as f64);
        s.set("rss_start_kib", s0.rss as f64);
        s.set("rss_end_kib", s1.rss as f64);
        s.set(
            "rss_per_client_kib",
            (s1.rss as f64 - idle.rss as f64) / clients as f64,
        );
        print_one(subject, transport.name(), &s);
        Ok(Measurement {
            subject: subject.to_owned(),
            transport: transport.name().to_owned(),
            clients,
            round,
            s,
        })
    }

    fn measure_floor(&self, mode: Mode, clients: usize) -> Result<Measurement, String> {
        let tag = format!("floor-{}-{clients}", mode.name());
        println!("\n--- {tag}");
        let window = self.window();
        let report = self.cfg.logs.join(format!("{tag}.report"));
        let _ = fs::remove_file(&report);
        let mut argv = vec![
            self.exe.display().to_string(),
            "floor".into(),
            "--mode".into(),
            mode.name().into(),
            "--clients".into(),
            clients.to_string(),
            "--window-start-unix-ns".into(),
            window.0.to_string(),
            "--duration".into(),
            self.cfg.duration.to_string(),
            "--sender-cpu".into(),
            self.cfg.proxy_cpu.to_string(),
            "--receiver-cpu".into(),
            self.cfg.bench_cpu.to_string(),
            "--rcvbuf".into(),
            self.cfg.rcvbuf.to_string(),
            "--report".into(),
            report.display().to_string(),
        ];
        argv.extend(workload_args(&self.cfg.workload));
        let mut child = ChildGuard::spawn(&tag, &argv, &self.log(&tag))?;
        let timeout = Duration::from_secs_f64(self.cfg.warmup + self.cfg.duration + 30.0);
        let status = child.wait_or_stop(timeout)?;
        let text = fs::read_to_string(&report).map_err(|_| {
            format!(
                "floor wrote no report ({status}); see {}",
                self.log(&tag).display()
            )
        })?;
        let s = Summary::from_report(&text);
        print_one(&format!("floor {}", mode.name()), "udp", &s);
        Ok(Measurement {
            subject: format!("floor-{}", mode.name()),
            transport: "udp".into(),
            clients,
            round: 1,
            s,
        })
    }
}

fn f(s: &Summary, k: &str) -> f64 {
    s.get(k).unwrap_or(f64::NAN)
}

fn print_one(subject: &str, transport: &str, s: &Summary) {
    println!(
        "{subject} {transport}: CPU {:.1} % of a core ({:.3} s in {:.2} s), {:.3} us/packet, {:.3} us/KB; its core: busy {:.1} %, stolen by the hypervisor {:.1} %",
        100.0 * f(s, "cpu_share"),
        f(s, "cpu_s"),
        f(s, "cpu_wall_s"),
        f(s, "cpu_us_per_pkt"),
        f(s, "cpu_us_per_kb"),
        100.0 * f(s, "core_busy_share"),
        100.0 * f(s, "core_steal_share"),
    );
    if let Some(l) = s.get("load_cpu_share") {
        println!(
            "load (all clients, one thread): {:.1} % of its CPU",
            100.0 * l
        );
    }
    if s.get("rss_end_kib").is_some() {
        println!(
            "RSS: idle {:.0} KiB, window start {:.0} KiB, end {:.0} KiB, {:.1} KiB per client",
            f(s, "rss_idle_kib"),
            f(s, "rss_start_kib"),
            f(s, "rss_end_kib"),
            f(s, "rss_per_client_kib")
        );
    }
    print!("{}", crate::stats::describe(s));
}

/// Mean of a figure over measurements.
fn mean(ms: &[&Measurement], k: &str) -> f64 {
    let v: Vec<f64> = ms
        .iter()
        .filter_map(|m| m.s.get(k))
        .filter(|x| x.is_finite())
        .collect();
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

const COLUMNS: &[(&str, &str, f64)] = &[
    ("cpu%", "cpu_share", 100.0),
    ("core%", "core_busy_share", 100.0),
    ("steal%", "core_steal_share", 100.0),
    ("us/pkt", "cpu_us_per_pkt", 1.0),
    ("us/KB", "cpu_us_per_kb", 1.0),
    ("pkt/s", "packets_per_s", 1.0),
    ("seqlost", "seq_lost", 1.0),
    ("frlost", "frames_lost", 1.0),
    ("fr_p50us", "frame_lat_us_p50", 1.0),
    ("fr_p99us", "frame_lat_us_p99", 1.0),
    ("pk_p50us", "pkt_lat_us_p50", 1.0),
    ("pk_p99us", "pkt_lat_us_p99", 1.0),
    ("key_p50ms", "first_keyframe_ms_p50", 1.0),
    ("1st_p50ms", "first_packet_ms_p50", 1.0),
    ("KiB/cl", "rss_per_client_kib", 1.0),
    ("failed", "clients_failed", 1.0),
];

fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v.abs() >= 1000.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn print_summary(all: &[Measurement], subjects: &[String]) {
    println!("\n===== rtsp-bench results (proxy CPU over the measured window; latencies from the probes) =====");
    let mut header = format!("{:<16} {:<4} {:>5} {:>3}", "subject", "tr", "cl", "rnd");
    for (h, _, _) in COLUMNS {
        header.push_str(&format!(" {h:>9}"));
    }
    println!("{header}");
    for m in all {
        let mut line = format!(
            "{:<16} {:<4} {:>5} {:>3}",
            m.subject, m.transport, m.clients, m.round
        );
        for (_, k, scale) in COLUMNS {
            line.push_str(&format!(" {:>9}", fmt_num(f(&m.s, k) * scale)));
        }
        println!("{line}");
        for e in &m.s.errors {
            println!("    ! {e}");
        }
    }

    // Means over rounds, ratios.
    let mut keys: Vec<(String, usize)> = Vec::new();
    for m in all.iter().filter(|m| !m.subject.starts_with("floor")) {
        if !keys.contains(&(m.transport.clone(), m.clients)) {
            keys.push((m.transport.clone(), m.clients));
        }
    }
    if keys.is_empty() {
        return;
    }
    println!("\n----- per subject, mean over rounds; ratios (lower is better for CPU) -----");
    for (tr, cl) in &keys {
        let floor = |mode: &str| -> f64 {
            let fm: Vec<&Measurement> = all
                .iter()
                .filter(|m| m.subject == format!("floor-{mode}") && m.clients == *cl)
                .collect();
            mean(&fm, "cpu_us_per_pkt")
        };
        let (gso, mmsg) = (floor("gso"), floor("sendmmsg"));
        let mut per_subject = Vec::new();
        for sub in subjects {
            let ms: Vec<&Measurement> = all
                .iter()
                .filter(|m| &m.subject == sub && &m.transport == tr && m.clients == *cl)
                .collect();
            if ms.is_empty() {
                continue;
            }
            let us = mean(&ms, "cpu_us_per_pkt");
            let mut line = format!(
                "{tr} {cl} clients, {sub} ({} rounds): {} us/packet, CPU {} %, frames lost {}, frame latency p50 {} us p99 {} us, first keyframe p50 {} ms, RSS {} KiB/client",
                ms.len(),
                fmt_num(us),
                fmt_num(100.0 * mean(&ms, "cpu_share")),
                fmt_num(mean(&ms, "frames_lost")),
                fmt_num(mean(&ms, "frame_lat_us_p50")),
                fmt_num(mean(&ms, "frame_lat_us_p99")),
                fmt_num(mean(&ms, "first_keyframe_ms_p50")),
                fmt_num(mean(&ms, "rss_per_client_kib")),
            );
            if gso.is_finite() {
                line.push_str(&format!("; {} x the GSO floor", fmt_num(us / gso)));
            }
            if mmsg.is_finite() {
                line.push_str(&format!(", {} x the sendmmsg floor", fmt_num(us / mmsg)));
            }
            println!("{line}");
            per_subject.push((sub.clone(), ms));
        }
        if per_subject.len() == 2 {
            let (a, b) = (&per_subject[0].1, &per_subject[1].1);
            let r = |k: &str| fmt_num(mean(b, k) / mean(a, k));
            println!(
                "{tr} {cl} clients, B/A: us/packet {}, CPU {}, frame latency p50 {} p99 {}, first keyframe p50 {}, RSS/client {}",
                r("cpu_us_per_pkt"),
                r("cpu_share"),
                r("frame_lat_us_p50"),
                r("frame_lat_us_p99"),
                r("first_keyframe_ms_p50"),
                r("rss_per_client_kib"),
            );
        }
    }
    let floors: Vec<&Measurement> = all
        .iter()
        .filter(|m| m.subject.starts_with("floor"))
        .collect();
    for fm in floors {
        println!(
            "{} {} clients: {} us/packet, CPU {} %",
            fm.subject,
            fm.clients,
            fmt_num(f(&fm.s, "cpu_us_per_pkt")),
            fmt_num(100.0 * f(&fm.s, "cpu_share"))
        );
    }
}

/// Runs everything; the process exit code follows.
pub fn run(cfg: RunConfig) -> Result<(), String> {
    cfg.workload.validate()?;
    if cfg.clients.is_empty() || cfg.clients.contains(&0) {
        return Err("--clients: give one or more counts above 0".into());
    }
    sys::catch_signals();
    if let Err(e) = sys::pin_current_thread(cfg.bench_cpu) {
        eprintln!(
            "warning: cannot pin the orchestrator to CPU {}: {e}",
            cfg.bench_cpu
        );
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    fs::create_dir_all(&cfg.logs).map_err(|e| format!("{}: {e}", cfg.logs.display()))?;
    // Every client comes from 127.0.0.1: past the proxy's per-address
    // connection limit (256) the RTSP clients would be refused.
    let default_a = format!(
        "{} --bind 127.0.0.1 --max-connections-per-address 4096 -p {{port}} {{webrtc}} {{source}}",
        exe.with_file_name("rtsp-proxy").display()
    );
    let mut subjects: Vec<(String, String)> = Vec::new();
    match (&cfg.a, &cfg.b) {
        (None, None) => subjects.push(("rtsp-proxy".into(), default_a)),
        (a, b) => {
            subjects.push(("A".into(), a.clone().unwrap_or(default_a)));
            if let Some(b) = b {
                subjects.push(("B".into(), b.clone()));
            }
        }
    }
    let rounds = cfg
        .rounds
        .unwrap_or(if subjects.len() > 1 { 2 } else { 1 })
        .max(1);

    let pps = cfg.workload.packets_per_second();
    println!(
        "rtsp-bench run: {} bit/s, {} fps, {}-byte packets, keyframe every {} s (x{} size): {:.0} packets/s per client",
        cfg.workload.bitrate, cfg.workload.fps, cfg.workload.packet_size, cfg.workload.keyframe_interval, cfg.workload.keyframe_factor, pps
    );
    println!(
        "clients {:?}, transports {:?}, warm-up {} s, measured {} s, {} round(s); proxy on CPU {}, source+load+sampler on CPU {}; logs in {}",
        cfg.clients,
        cfg.transports.iter().map(|t| t.name()).collect::<Vec<_>>(),
        cfg.warmup,
        cfg.duration,
        rounds,
        cfg.proxy_cpu,
        cfg.bench_cpu,
        cfg.logs.display()
    );
    for (name, cmd) in &subjects {
        println!("{name}: {cmd}");
    }
    if let Ok(l) = fs::read_to_string("/proc/loadavg") {
        println!("load average before: {}", l.trim());
    }

    let src_port = free_port()?;
    let mut src_argv = vec![
        exe.display().to_string(),
        "source".into(),
        "--port".into(),
        src_port.to_string(),
    ];
    src_argv.extend(workload_args(&cfg.workload));
    let mut source = ChildGuard::spawn(
        "source",
        &taskset(cfg.bench_cpu, src_argv),
        &cfg.logs.join("source.log"),
    )?;
    wait_listening(src_port, &mut source, Duration::from_secs(10))?;
    let ctx = Ctx {
        source_url: format!("rtsp://127.0.0.1:{src_port}/stream"),
        cfg: cfg.clone(),
        exe,
        pps,
    };

    let mut all = Vec::new();
    let mut failures = Vec::new();
    let mut record =
        |r: Result<Measurement, String>, all: &mut Vec<Measurement>| -> Result<(), String> {
            match r {
                Ok(m) => all.push(m),
                Err(e) if e == "interrupted" => return Err(e),
                Err(e) => {
                    eprintln!("error: {e}");
                    failures.push(e);
                }
            }
            Ok(())
        };
    let outcome = (|| -> Result<(), String> {
        for &n in &cfg.clients {
            if cfg.floor {
                for mode in [Mode::Sendmmsg, Mode::Gso] {
                    record(ctx.measure_floor(mode, n), &mut all)?;
                }
            }
            for &t in &cfg.transports {
                for round in 1..=rounds {
                    for (name, cmd) in &subjects {
                        if sys::interrupted() {
                            return Err("interrupted".into());
                        }
                        record(ctx.measure_proxy(name, cmd, t, n, round), &mut all)?;
                    }
                }
            }
        }
        Ok(())
    })();
    source.stop(Duration::from_secs(2));
    let names: Vec<String> = subjects.iter().map(|(n, _)| n.clone()).collect();
    print_summary(&all, &names);
    let _ = std::io::stdout().flush();
    outcome?;
    if !failures.is_empty() {
        return Err(format!(
            "{} measurement(s) failed: {}",
            failures.len(),
            failures.join("; ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_command_gets_webrtc_options_only_for_webrtc() {
        let t = "rtsp-proxy -p {port} {webrtc} {source}";
        let src = "rtsp://127.0.0.1:9/stream";
        assert_eq!(
            proxy_command(t, 8554, src, None, 500).unwrap(),
            "rtsp-proxy -p 8554  rtsp://127.0.0.1:9/stream"
        );
        assert_eq!(
            proxy_command(t, 8554, src, Some((8889, 8189)), 500).unwrap(),
            "rtsp-proxy -p 8554 --webrtc-listen 127.0.0.1:8889 --webrtc-udp 127.0.0.1:8189 \
             --webrtc-max-viewers 500 --webrtc-max-viewers-per-path 500 rtsp://127.0.0.1:9/stream"
        );
        let live555 = "live555ProxyServer -p {port} {source}";
        assert!(proxy_command(live555, 8554, src, Some((8889, 8189)), 5).is_err());
        assert!(proxy_command(live555, 8554, src, None, 5).is_ok());
    }
}
