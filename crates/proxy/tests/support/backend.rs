//! [`Backend`]: the GStreamer RTSP server that plays the camera in tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::ports::free_port;
use super::process::Proc;

/// The back-end script, from the workspace root.
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/backend/gst_rtsp_backend.py"
);
/// Debian's interpreter, the one `python3-gi` is installed for.
const PYTHON: &str = "/usr/bin/python3";
/// How long the back end may take to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Options of [`Backend::start`]; `BackendOpts::default()` serves H.264 + AAC
/// at `/stream` over UDP and TCP without authentication on a free port.
#[derive(Debug, Clone)]
pub struct BackendOpts {
    /// Comma list of `h264`, `h265`, `mjpeg`, `aac`, `opus`, video first.
    pub codecs: String,
    /// Mount path, starting with `/`.
    pub path: String,
    /// Require authentication with this user (needs `password`).
    pub user: Option<String>,
    /// Password of `user`.
    pub password: Option<String>,
    /// `digest` (the default when `user` is set) or `basic`.
    pub auth: Option<String>,
    /// Allowed lower transports, e.g. `tcp` (then UDP SETUPs get 461).
    pub protocols: Option<String>,
    /// RTSP port; `None` picks one with [`free_port`]. Set it to restart a
    /// back end on the port of an earlier one.
    pub port: Option<u16>,
    /// RTSP session timeout announced and enforced, in seconds.
    pub session_timeout: Option<u32>,
    /// What the media does while no client plays it (`--suspend-mode`);
    /// `None` keeps the script's default, [`SuspendMode::Reset`].
    pub suspend_mode: Option<SuspendMode>,
    /// Seconds between H.264/H.265 keyframes (`--key-interval`); `None` keeps
    /// the script's default of 1 s.
    pub key_interval: Option<u32>,
    /// Serve RTSPS (RTSP over TLS) only, with this PEM certificate (chain)
    /// and PEM private key; [`Backend::url`] is then `rtsps://`.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Offer multicast from this IPv4 group range (first, last address): the
    /// script's `--multicast`; without `protocols` the back end then requires
    /// multicast (461 to unicast UDP and TCP).
    pub multicast: Option<(String, String)>,
    /// Run in this network namespace (`ip netns exec <ns>`), e.g. a
    /// [`super::NetPair`]'s; `--address` in `extra_args` then names an
    /// address of it.
    pub netns: Option<String>,
    /// Further arguments for the script (`--width`, `--fps`...).
    pub extra_args: Vec<String>,
}

impl Default for BackendOpts {
    fn default() -> Self {
        BackendOpts {
            codecs: "h264,aac".to_owned(),
            path: "/stream".to_owned(),
            user: None,
            password: None,
            auth: None,
            protocols: None,
            port: None,
            session_timeout: None,
            suspend_mode: None,
            key_interval: None,
            tls: None,
            multicast: None,
            netns: None,
            extra_args: Vec::new(),
        }
    }
}

impl BackendOpts {
    /// The default options with `codecs` instead of `h264,aac`.
    pub fn codecs(codecs: &str) -> Self {
        BackendOpts {
            codecs: codecs.to_owned(),
            ..Default::default()
        }
    }

    /// The default options with `suspend_mode` set.
    pub fn suspend(mode: SuspendMode) -> Self {
        BackendOpts {
            suspend_mode: Some(mode),
            ..Default::default()
        }
    }
}

/// GStreamer's `GstRTSPSuspendMode` for the back end's media: what it does
/// when suspended (prepared by DESCRIBE, or PAUSEd, with no client playing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuspendMode {
    /// GStreamer's default: the pipeline is left as it is, PAUSE pauses it
    /// and PLAY resumes it (a PLAY with a `Range` is a seek).
    None,
    /// The pipeline is brought to PAUSED.
    Pause,
    /// The pipeline is brought to NULL and restarted with fresh time by the
    /// next PLAY: the script's default.
    Reset,
}

impl SuspendMode {
    /// The script's `--suspend-mode` value.
    pub fn as_arg(self) -> &'static str {
        match self {
            SuspendMode::None => "none",
            SuspendMode::Pause => "pause",
            SuspendMode::Reset => "reset",
        }
    }
}

/// A running `tests/backend/gst_rtsp_backend.py`: one live, shared stream on
/// 127.0.0.1. Killed when dropped.
///
/// Its stdout is an event log (see the script): `CLIENT-CONNECTED`,
/// `CLIENT-CLOSED`, `REQUEST <METHOD>`, `RESPONSE <code>`, `SESSION-EXPIRED`.
pub struct Backend {
    /// The process, for waiting on events and sending signals.
    pub proc: Proc,
    url: String,
    port: u16,
    opts: BackendOpts,
}

impl Backend {
    /// Starts a back end and waits until it listens. Panics if it does not
    /// within 20 s (the message quotes its output).
    pub fn start(opts: BackendOpts) -> Backend {
        Backend::try_start(opts).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Backend::start`], returning the failure.
    pub fn try_start(mut opts: BackendOpts) -> Result<Backend, String> {
        let port = opts.port.unwrap_or_else(free_port);
        opts.port = Some(port);
        let mut cmd = match &opts.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, PYTHON]);
                c
            }
            None => Command::new(PYTHON),
        };
        cmd.arg("-u")
            .arg(SCRIPT)
            .args(["--port", &port.to_string()])
            .args(["--path", &opts.path])
            .args(["--codecs", &opts.codecs]);
        if let Some(user) = &opts.user {
            cmd.args(["--user", user]);
        }
        if let Some(password) = &opts.password {
            cmd.args(["--password", password]);
        }
        if let Some(auth) = &opts.auth {
            cmd.args(["--auth", auth]);
        }
        if let Some(protocols) = &opts.protocols {
            cmd.args(["--protocols", protocols]);
        }
        if let Some(timeout) = opts.session_timeout {
            cmd.args(["--session-timeout", &timeout.to_string()]);
        }
        if let Some(mode) = opts.suspend_mode {
            cmd.args(["--suspend-mode", mode.as_arg()]);
        }
        if let Some(seconds) = opts.key_interval {
            cmd.args(["--key-interval", &seconds.to_string()]);
        }
        if let Some((cert, key)) = &opts.tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        if let Some((first, last)) = &opts.multicast {
            cmd.args(["--multicast", first, last]);
        }
        cmd.args(&opts.extra_args);
        let proc = Proc::spawn("backend", &mut cmd)?;
        let ready = proc.wait_for_line("READY ", READY_TIMEOUT)?;
        let url = ready
            .split_once("READY ")
            .map(|(_, url)| url.trim().to_owned())
            .ok_or_else(|| format!("bad READY line {ready:?}"))?;
        Ok(Backend {
            proc,
            url,
            port,
            opts,
        })
    }

    /// Kills this back end and starts a new one with the same options on the
    /// same port (a camera that rebooted).
    pub fn restart(self) -> Backend {
        let opts = self.opts.clone();
        drop(self);
        Backend::start(opts)
    }

    /// `rtsp://127.0.0.1:<port><path>` (`rtsps://` with [`BackendOpts::tls`]),
    /// without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL with `user:password@` when authentication is on (the user and
    /// password are used as given: keep them URL-safe).
    pub fn url_with_credentials(&self) -> String {
        match (&self.opts.user, &self.opts.password) {
            (Some(user), Some(password)) => {
                self.url
                    .replacen("://", &format!("://{user}:{password}@"), 1)
            }
            _ => self.url.clone(),
        }
    }

    /// The RTSP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The RTSP address, `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The options it was started with (`port` filled in).
    pub fn opts(&self) -> &BackendOpts {
        &self.opts
    }

    /// TCP connections accepted so far. An RTSP-over-HTTP tunnel counts two
    /// (its GET and POST connections).
    pub fn connections(&self) -> usize {
        self.proc
            .count_where(|l| l.starts_with("CLIENT-CONNECTED "))
    }

    /// Requests of `method` (e.g. `"PAUSE"`) received so far, including those
    /// refused (401, 461...).
    pub fn requests(&self, method: &str) -> usize {
        self.proc.count_where(|l| is_request(l, method))
    }

    /// Waits until `count` requests of `method` were received in total.
    pub fn wait_for_requests(
        &self,
        method: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<usize, String> {
        self.proc
            .wait_where(&format!("REQUEST {method}"), count, timeout, |l| {
                is_request(l, method)
            })
    }

    /// Responses with status `code` sent so far.
    pub fn responses(&self, code: u16) -> usize {
        let line = format!("RESPONSE {code}");
        self.proc.count_where(|l| l == line)
    }
}

fn is_request(line: &str, method: &str) -> bool {
    line.strip_prefix("REQUEST ") == Some(method)
}
