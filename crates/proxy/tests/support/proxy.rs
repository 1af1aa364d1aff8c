//! [`Proxy`]: the `rtsp-proxy` binary under test.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use super::ports::free_port;
use super::process::Proc;

/// The binary cargo built for this test run.
const BINARY: &str = env!("CARGO_BIN_EXE_rtsp-proxy");
/// What the proxy prints (live555 style) for each stream once it listens.
pub const PLAY_LINE: &str = "Play this stream using the URL";
/// How long the proxy may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `rtsp-proxy`. Killed when dropped.
pub struct Proxy {
    /// The process, for waiting on output and sending signals.
    pub proc: Proc,
    port: u16,
}

impl Proxy {
    /// Runs `rtsp-proxy -p <free port> [--http-port 0] [--drain-timeout 0]
    /// <args...>` (with `RUST_LOG` unset) and waits until it printed its first
    /// "Play this stream using the URL" line. `--http-port 0` is added unless
    /// `args` has its own `--http-port`: parallel proxies must not fight over
    /// ports 80, 8000 and 8080, the default dedicated RTSP-over-HTTP ports.
    /// `--drain-timeout 0` likewise: SIGTERM stops at once, as tests expect,
    /// unless a test asks for a drain.
    /// Panics if it does not within 30 s (the message quotes its output).
    pub fn start(args: &[&str]) -> Proxy {
        Proxy::try_start(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Proxy::start`] on a given port (e.g. to restart a proxy on the
    /// port of an earlier one), returning the failure.
    pub fn try_start_on(port: u16, args: &[&str]) -> Result<Proxy, String> {
        let mut cmd = Proxy::command(port, args);
        let proc = Proc::spawn("proxy", &mut cmd)?;
        proc.wait_for_line(PLAY_LINE, START_TIMEOUT)?;
        Ok(Proxy { proc, port })
    }

    /// Like [`Proxy::start`], but waits for a line containing `ready` instead of a
    /// "Play this stream" line (e.g. a proxy with `-R` and no URL).
    pub fn start_until(args: &[&str], ready: &str) -> Proxy {
        let port = free_port();
        let mut cmd = Proxy::command(port, args);
        let proc = Proc::spawn("proxy", &mut cmd).unwrap_or_else(|e| panic!("{e}"));
        proc.wait_for_line(ready, START_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"));
        Proxy { proc, port }
    }

    /// Like [`Proxy::start`], returning the failure.
    pub fn try_start(args: &[&str]) -> Result<Proxy, String> {
        Proxy::try_start_on(free_port(), args)
    }

    /// The command [`Proxy::start`] runs (`--http-port 0` and `--drain-timeout 0`
    /// included as there),
    /// for tests that need to run the
    /// binary differently (e.g. expecting it to fail on bad arguments:
    /// `Proc::spawn("proxy", &mut Proxy::command(port, args))`, or no `-p` at
    /// all with `Command::new(Proxy::binary())`).
    pub fn command(port: u16, args: &[&str]) -> Command {
        let mut cmd = Command::new(BINARY);
        cmd.env_remove("RUST_LOG").args(["-p", &port.to_string()]);
        if !args.contains(&"--http-port") {
            cmd.args(["--http-port", "0"]);
        }
        if !args.contains(&"--drain-timeout") {
            cmd.args(["--drain-timeout", "0"]);
        }
        cmd.args(args);
        cmd
    }

    /// Path of the `rtsp-proxy` binary.
    pub fn binary() -> &'static str {
        BINARY
    }

    /// `rtsp://127.0.0.1:<port>/<name>`.
    pub fn url(&self, name: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{name}", self.port)
    }

    /// The RTSP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`, for [`super::rtsp_exchange`].
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The URLs announced so far in "Play this stream using the URL" lines,
    /// in order.
    pub fn announced_urls(&self) -> Vec<String> {
        self.proc
            .lines()
            .iter()
            .filter_map(|l| l.split_once(PLAY_LINE))
            .map(|(_, rest)| rest.trim_start_matches(':').trim().to_owned())
            .collect()
    }
}
