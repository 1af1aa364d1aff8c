//! `rtsp-bench`: a fan-out benchmark for RTSP proxies that anyone can repeat.
//!
//! - `source`: a synthetic live H.264 RTSP server (every packet carries a probe).
//! - `load`: N real RTSP sessions received on one thread; delivery, loss,
//!   lost frames, latencies, start-up times.
//! - `floor`: the same packets fanned out by a bare loop (`sendmmsg`, or GSO).
//! - `run`: starts the source, the proxy (or two, alternately) and the load,
//!   pinned to CPUs, samples the proxy's CPU and RSS, prints the figures.
//!   `scripts/bench.sh` runs it.
//! - `soak`: source, proxy and churning clients for a long time, the source
//!   restarted now and then; RSS, descriptors and CPU over time, and whether
//!   they came back down. `scripts/soak.sh` runs it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod floor;
mod gen;
mod load;
mod probe;
mod procstat;
mod rtsp_client;
mod run;
mod soak;
mod source;
mod stats;
mod sys;
mod udp_receive;
mod whep_client;

#[derive(Parser)]
#[command(
    name = "rtsp-bench",
    version,
    about = "Fan-out benchmark for RTSP proxies: synthetic H.264 source, many-client load, bare sendmmsg/GSO floors",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve a live synthetic H.264 stream over RTSP (rtsp://127.0.0.1:PORT/stream).
    Source(SourceArgs),
    /// Open N RTSP sessions to a URL and measure what they receive.
    Load(LoadArgs),
    /// Fan the synthetic packets out to N local UDP sockets with a bare loop.
    Floor(FloorArgs),
    /// Orchestrate source, proxy (A/B), load and floors; print the figures.
    Run(RunArgs),
    /// Long run with churning clients and source restarts: RSS, fds and CPU over time.
    Soak(SoakArgs),
}

/// The synthetic stream.
#[derive(Args, Clone, Debug)]
struct WorkloadArgs {
    /// Stream bit rate, bits/s of RTP packets (header included).
    #[arg(long, default_value_t = 4_000_000)]
    bitrate: u64,
    /// Frames per second.
    #[arg(long, default_value_t = 25)]
    fps: u32,
    /// RTP packet size in bytes, 12-byte header included (FU-A payload = size - 12).
    #[arg(long, default_value_t = 1200)]
    packet_size: usize,
    /// Seconds between keyframes (SPS, PPS, IDR).
    #[arg(long, default_value_t = 2.0)]
    keyframe_interval: f64,
    /// Keyframe size as a multiple of the other frames (the bit rate stays the same).
    #[arg(long, default_value_t = 4.0)]
    keyframe_factor: f64,
}

impl WorkloadArgs {
    fn workload(&self) -> gen::Workload {
        gen::Workload {
            bitrate: self.bitrate,
            fps: self.fps,
            packet_size: self.packet_size,
            keyframe_interval: self.keyframe_interval,
            keyframe_factor: self.keyframe_factor,
        }
    }
}

#[derive(Args)]
struct SourceArgs {
    /// RTSP port.
    #[arg(long, short, default_value_t = 8654)]
    port: u16,
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Print every request.
    #[arg(long, short)]
    verbose: bool,
    #[command(flatten)]
    workload: WorkloadArgs,
}

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq, Eq)]
enum TransportArg {
    /// RTSP, RTP over UDP.
    Udp,
    /// RTSP, RTP interleaved.
    Tcp,
    /// WHEP (--url is the WHEP endpoint, http://host:port/<path>/whep).
    Webrtc,
}

impl TransportArg {
    fn transport(self) -> load::Transport {
        match self {
            TransportArg::Udp => load::Transport::Udp,
            TransportArg::Tcp => load::Transport::Tcp,
            TransportArg::Webrtc => load::Transport::Webrtc,
        }
    }
}

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq, Eq)]
enum TransportsArg {
    /// RTSP, RTP over UDP.
    Udp,
    /// RTSP, RTP interleaved.
    Tcp,
    /// udp and tcp.
    Both,
    /// WHEP viewers (the proxy gets --webrtc-* options through {webrtc}).
    Webrtc,
}

/// The transports of `run --transport udp,webrtc` in order, each once.
fn transports(args: &[TransportsArg]) -> Vec<load::Transport> {
    let mut out = Vec::new();
    for a in args {
        let ts: &[load::Transport] = match a {
            TransportsArg::Udp => &[load::Transport::Udp],
            TransportsArg::Tcp => &[load::Transport::Tcp],
            TransportsArg::Both => &[load::Transport::Udp, load::Transport::Tcp],
            TransportsArg::Webrtc => &[load::Transport::Webrtc],
        };
        for t in ts {
            if !out.contains(t) {
                out.push(*t);
            }
        }
    }
    out
}

/// When the measured window is.
#[derive(Args, Clone, Debug)]
struct WindowArgs {
    /// Seconds measured.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Seconds of warm-up before the measured window (sessions open meanwhile).
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// Start of the measured window as Unix time in ns (overrides --warmup; used by `run`).
    #[arg(long)]
    window_start_unix_ns: Option<u64>,
}

impl WindowArgs {
    fn window(&self) -> Result<(u64, u64), String> {
        if self.duration.is_nan()
            || self.duration <= 0.0
            || self.warmup.is_nan()
            || self.warmup < 0.0
        {
            return Err("--duration must be positive and --warmup not negative".into());
        }
        let start = self
            .window_start_unix_ns
            .unwrap_or_else(|| probe::now_ns() + (self.warmup * 1e9) as u64);
        Ok((start, start + (self.duration * 1e9) as u64))
    }
}

#[derive(Args)]
struct LoadArgs {
    /// Stream URL, e.g. rtsp://127.0.0.1:8554/proxyStream (WebRTC: http://127.0.0.1:8889/proxyStream/whep).
    #[arg(long)]
    url: String,
    /// Number of sessions.
    #[arg(long, short = 'n', default_value_t = 200)]
    clients: usize,
    /// Lower transport.
    #[arg(long, value_enum, default_value_t = TransportArg::Udp)]
    transport: TransportArg,
    #[command(flatten)]
    window: WindowArgs,
    /// Milliseconds between session starts.
    #[arg(long, default_value_t = 10.0)]
    stagger_ms: f64,
    /// Packets per second expected per client (sizes the sample store).
    #[arg(long, default_value_t = 450.0)]
    expected_pps: f64,
    /// Receive buffer of each UDP socket, bytes.
    #[arg(long, default_value_t = 2 << 20)]
    rcvbuf: usize,
    /// Largest datagram expected, bytes.
    #[arg(long, default_value_t = 2048)]
    max_packet: usize,
    /// Also write the figures as key=value lines to this file.
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq, Eq)]
enum ModeArg {
    Sendmmsg,
    Gso,
}

#[derive(Args)]
struct FloorArgs {
    /// sendmmsg: one sendmmsg per packet across all clients; gso: one UDP_SEGMENT train per frame per client.
    #[arg(long, value_enum, default_value_t = ModeArg::Sendmmsg)]
    mode: ModeArg,
    /// Number of receiving sockets.
    #[arg(long, short = 'n', default_value_t = 200)]
    clients: usize,
    #[command(flatten)]
    window: WindowArgs,
    /// Pin the sender thread to this CPU.
    #[arg(long, default_value_t = 0)]
    sender_cpu: usize,
    /// Pin the receiver thread to this CPU.
    #[arg(long, default_value_t = 1)]
    receiver_cpu: usize,
    /// Receive buffer of each UDP socket, bytes.
    #[arg(long, default_value_t = 2 << 20)]
    rcvbuf: usize,
    /// Also write the figures as key=value lines to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    #[command(flatten)]
    workload: WorkloadArgs,
}

#[derive(Args)]
#[command(after_help = "\
Placeholders in --a/--b: {port} (the RTSP port the proxy must listen on), {source}
(the back-end URL, rtsp://127.0.0.1:<port>/stream) and {webrtc} (for --transport webrtc,
rtsp-proxy's --webrtc-listen, --webrtc-udp and viewer-limit options; else empty). The
default A is this tree's target/release/rtsp-proxy --bind 127.0.0.1
--max-connections-per-address 4096 -p {port} {webrtc} {source} (every client comes from
127.0.0.1; give the same option to another rtsp-proxy for more than 256 RTSP clients). Clients play rtsp://127.0.0.1:{port}/<--path>, proxyStream by default, as
live555ProxyServer names it, or POST to http://127.0.0.1:<webrtc port>/<--path>/whep:

  rtsp-bench run --a 'target/release/rtsp-proxy -p {port} {source}' \\
                 --b '/opt/live/proxyServer/live555ProxyServer -p {port} {source}'")]
struct RunArgs {
    /// Client counts to measure, comma-separated (e.g. 50,100,200,400).
    #[arg(long, short = 'n', value_delimiter = ',', default_value = "200")]
    clients: Vec<usize>,
    /// Client transport(s), comma-separated: udp, tcp, both (udp,tcp), webrtc (e.g. udp,webrtc).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "udp")]
    transport: Vec<TransportsArg>,
    /// Seconds measured per run.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Seconds of warm-up before each measured window (sessions open meanwhile).
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// Proxy command A (default: this tree's release rtsp-proxy).
    #[arg(long)]
    a: Option<String>,
    /// Proxy command B, run alternately with A.
    #[arg(long)]
    b: Option<String>,
    /// Rounds per proxy command (default 2 with --b, else 1).
    #[arg(long)]
    rounds: Option<usize>,
    /// Also measure the sendmmsg and GSO floors and give ratios to them.
    #[arg(long)]
    floor: bool,
    /// Stream path on the proxy.
    #[arg(long, default_value = "proxyStream")]
    path: String,
    /// CPU the proxy (and the floor's sender) runs on.
    #[arg(long, default_value_t = 0)]
    proxy_cpu: usize,
    /// CPU the source, the load and the sampler run on.
    #[arg(long, default_value_t = 1)]
    bench_cpu: usize,
    /// Milliseconds between session starts.
    #[arg(long, default_value_t = 10.0)]
    stagger_ms: f64,
    /// Seconds to wait after the proxy listens before the clients come.
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    /// Receive buffer of each client UDP socket, bytes.
    #[arg(long, default_value_t = 2 << 20)]
    rcvbuf: usize,
    /// Directory for the children's logs and reports.
    #[arg(long, default_value = "target/bench-logs")]
    logs: PathBuf,
    #[command(flatten)]
    workload: WorkloadArgs,
}

#[derive(Args)]
#[command(after_help = "\
Placeholders in --proxy: {port} and {source}, as in `run`. The default proxy is this
tree's target/release/rtsp-proxy --bind 127.0.0.1 -p {port} {source}. Exits non-zero
when, after every client left and --drain passed, the proxy holds more than
--max-fd-growth descriptors or --max-rss-growth MiB above its level before the first
client, or when the proxy or the source could not run.

  rtsp-bench soak --clients 200 --churn 2 --restart-every 600 --duration 3600 --sample 10")]
struct SoakArgs {
    /// Proxy command (default: this tree's release rtsp-proxy).
    #[arg(long)]
    proxy: Option<String>,
    /// Sessions kept open.
    #[arg(long, short = 'n', default_value_t = 200)]
    clients: usize,
    /// Client transport(s); `both` alternates by client.
    #[arg(long, value_enum, default_value_t = TransportsArg::Both)]
    transport: TransportsArg,
    /// Sessions per second that leave (and as many that join), on average.
    #[arg(long, default_value_t = 2.0)]
    churn: f64,
    /// Seconds between source restarts (killed by PID, started on the same port); 0: never.
    #[arg(long, default_value_t = 600.0)]
    restart_every: f64,
    /// Seconds of churn.
    #[arg(long, default_value_t = 3600.0)]
    duration: f64,
    /// Seconds between samples (one table line each).
    #[arg(long, default_value_t = 10.0)]
    sample: f64,
    /// Seconds after a restart by which every session open across it must have media again.
    #[arg(long, default_value_t = 20.0)]
    media_check: f64,
    /// Seconds after the last client left before the final sample (the proxy's linger).
    #[arg(long, default_value_t = 10.0)]
    drain: f64,
    /// Descriptors the proxy may hold at the end above its start.
    #[arg(long, default_value_t = 8)]
    max_fd_growth: usize,
    /// MiB of RSS the proxy may hold at the end above its start.
    #[arg(long, default_value_t = 64.0)]
    max_rss_growth: f64,
    /// Stream path on the proxy.
    #[arg(long, default_value = "proxyStream")]
    path: String,
    /// Milliseconds between the first session starts.
    #[arg(long, default_value_t = 10.0)]
    stagger_ms: f64,
    /// Receive buffer of each client UDP socket, bytes.
    #[arg(long, default_value_t = 256 << 10)]
    rcvbuf: usize,
    /// Directory for the children's logs.
    #[arg(long, default_value = "target/soak-logs")]
    logs: PathBuf,
    #[command(flatten)]
    workload: WorkloadArgs,
}

fn write_report(path: &Option<PathBuf>, s: &stats::Summary) -> Result<(), String> {
    if let Some(p) = path {
        std::fs::write(p, s.to_report()).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    sys::raise_nofile_limit();
    let r = match cli.command {
        Cmd::Source(a) => source::run(source::SourceConfig {
            bind: a.bind,
            port: a.port,
            workload: a.workload.workload(),
            verbose: a.verbose,
        }),
        Cmd::Load(a) => a.window.window().and_then(|window| {
            if a.clients == 0 {
                return Err("--clients must be above 0".into());
            }
            let s = load::run(load::LoadConfig {
                url: a.url,
                clients: a.clients,
                transport: a.transport.transport(),
                window,
                stagger: Duration::from_secs_f64(a.stagger_ms.max(0.0) / 1e3),
                expected_pps: a.expected_pps,
                rcvbuf: a.rcvbuf,
                max_packet: a.max_packet,
            })?;
            write_report(&a.report, &s)
        }),
        Cmd::Floor(a) => a.window.window().and_then(|window| {
            let s = floor::run(floor::FloorConfig {
                mode: match a.mode {
                    ModeArg::Sendmmsg => floor::Mode::Sendmmsg,
                    ModeArg::Gso => floor::Mode::Gso,
                },
                clients: a.clients.max(1),
                workload: a.workload.workload(),
                window,
                sender_cpu: Some(a.sender_cpu),
                receiver_cpu: Some(a.receiver_cpu),
                rcvbuf: a.rcvbuf,
            })?;
            write_report(&a.report, &s)
        }),
        Cmd::Run(a) => run::run(run::RunConfig {
            clients: a.clients,
            transports: transports(&a.transport),
            duration: a.duration,
            warmup: a.warmup,
            a: a.a,
            b: a.b,
            rounds: a.rounds,
            floor: a.floor,
            path: a.path,
            proxy_cpu: a.proxy_cpu,
            bench_cpu: a.bench_cpu,
            stagger_ms: a.stagger_ms,
            workload: a.workload.workload(),
            logs: a.logs,
            rcvbuf: a.rcvbuf,
            settle: a.settle,
        }),
        Cmd::Soak(a) if a.transport == TransportsArg::Webrtc => {
            Err("soak runs RTSP sessions: --transport udp, tcp or both".into())
        }
        Cmd::Soak(a) => soak::run(soak::SoakConfig {
            proxy: a.proxy,
            clients: a.clients,
            transports: transports(&[a.transport]),
            churn: a.churn,
            restart_every: a.restart_every,
            duration: a.duration,
            sample: a.sample,
            media_check: a.media_check,
            drain: a.drain,
            max_fd_growth: a.max_fd_growth,
            max_rss_growth_mib: a.max_rss_growth,
            path: a.path,
            stagger_ms: a.stagger_ms,
            rcvbuf: a.rcvbuf,
            workload: a.workload.workload(),
            logs: a.logs,
        }),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rtsp-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(argv: &[&str]) -> RunArgs {
        match Cli::try_parse_from(argv).expect("parsed").command {
            Cmd::Run(a) => a,
            _ => panic!("not run"),
        }
    }

    #[test]
    fn run_compares_rtsp_and_webrtc_viewers() {
        use load::Transport::{Tcp, Udp, Webrtc};
        let a = run_args(&[
            "rtsp-bench",
            "run",
            "--transport",
            "udp,webrtc",
            "-n",
            "100,500",
        ]);
        assert_eq!(transports(&a.transport), vec![Udp, Webrtc]);
        assert_eq!(a.clients, vec![100, 500]);
        let a = run_args(&["rtsp-bench", "run", "--transport", "both,udp,webrtc"]);
        assert_eq!(transports(&a.transport), vec![Udp, Tcp, Webrtc]);
        let a = run_args(&["rtsp-bench", "run"]);
        assert_eq!(transports(&a.transport), vec![Udp]);
        assert!(Cli::try_parse_from(["rtsp-bench", "run", "--transport", "quic"]).is_err());
    }

    #[test]
    fn load_takes_a_whep_url() {
        let Cmd::Load(a) = Cli::try_parse_from([
            "rtsp-bench",
            "load",
            "--url",
            "http://127.0.0.1:8889/proxyStream/whep",
            "--transport",
            "webrtc",
        ])
        .expect("parsed")
        .command
        else {
            panic!("not load")
        };
        assert_eq!(a.transport.transport(), load::Transport::Webrtc);
    }
}
