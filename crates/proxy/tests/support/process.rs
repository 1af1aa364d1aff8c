//! [`Proc`]: a child process whose output is recorded and which is always
//! cleaned up.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// How many of the last output lines an error message quotes.
const TAIL_LINES: usize = 40;

/// A signal [`Proc::signal`] may send to its own child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `SIGKILL`: immediate death.
    Kill,
    /// `SIGSTOP`: freeze (the process keeps its sockets but stops answering).
    Stop,
    /// `SIGCONT`: resume after [`Signal::Stop`].
    Cont,
    /// `SIGTERM`: polite request to exit.
    Term,
    /// `SIGINT`: what Ctrl-C sends.
    Int,
    /// `SIGHUP`: reload the config file.
    Hup,
}

impl Signal {
    fn raw(self) -> libc::c_int {
        match self {
            Signal::Kill => libc::SIGKILL,
            Signal::Stop => libc::SIGSTOP,
            Signal::Cont => libc::SIGCONT,
            Signal::Term => libc::SIGTERM,
            Signal::Int => libc::SIGINT,
            Signal::Hup => libc::SIGHUP,
        }
    }
}

/// Output recorded so far, shared with the reader threads.
#[derive(Default)]
struct Recorded {
    lines: Vec<String>,
    /// Number of output pipes (stdout, stderr) that reached end of file.
    closed_pipes: usize,
}

#[derive(Default)]
struct Shared {
    recorded: Mutex<Recorded>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Recorded> {
        // A reader thread cannot panic while holding the lock, but never turn
        // a poisoned lock into a second panic inside a Drop.
        self.recorded.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running child process with piped stdout and stderr.
///
/// Two background threads split both pipes into lines (invalid UTF-8 is
/// replaced), append them to one shared list in arrival order, and copy them,
/// prefixed with `[out]`/`[err]`, into a log file under `target/e2e-logs/`.
///
/// Dropping a `Proc` kills the child with `SIGKILL` and reaps it, so a test
/// that panics leaves no process behind.
pub struct Proc {
    label: String,
    child: Mutex<Child>,
    pid: u32,
    shared: Arc<Shared>,
    log_path: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdin from `/dev/null` and stdout/stderr recorded.
    ///
    /// `label` names the process in messages and in the log file name
    /// (`<test>-<label>.log`, with `-2`, `-3`... for further processes of the
    /// same label within one test). The command line is logged on stderr.
    pub fn spawn(label: &str, cmd: &mut Command) -> Result<Proc, String> {
        let line = command_line(cmd);
        let log_path = log_path_for(label);
        eprintln!("[e2e] spawn {label}: {line}");
        eprintln!("[e2e]   log: {}", log_path.display());

        let mut log = match create_log(&log_path) {
            Ok(file) => Some(file),
            Err(e) => {
                eprintln!("[e2e] cannot create {}: {e}", log_path.display());
                None
            }
        };
        if let Some(file) = log.as_mut() {
            // Logging is best effort: a full disk must not fail the test.
            let _ = writeln!(file, "# {line}");
        }
        let log = Arc::new(Mutex::new(log));

        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {label} ({line}): {e}"))?;
        let pid = child.id();
        let shared = Arc::new(Shared::default());
        if let Some(out) = child.stdout.take() {
            spawn_reader(out, "out", Arc::clone(&shared), Arc::clone(&log));
        }
        if let Some(err) = child.stderr.take() {
            spawn_reader(err, "err", Arc::clone(&shared), Arc::clone(&log));
        }
        Ok(Proc {
            label: label.to_owned(),
            child: Mutex::new(child),
            pid,
            shared,
            log_path,
        })
    }

    /// The label given to [`Proc::spawn`].
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Where the output is logged.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Every line printed so far on stdout and stderr, in arrival order.
    pub fn lines(&self) -> Vec<String> {
        self.shared.lock().lines.clone()
    }

    /// How many lines printed so far contain `needle`.
    pub fn count_lines(&self, needle: &str) -> usize {
        self.shared
            .lock()
            .lines
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// How many lines contain `needle`, read once at least `min` of them have
    /// come (up to 15 s) and a further 300 ms: the process's output reaches
    /// the test through a pipe and a reader thread, so a line about something
    /// that just happened may not be here yet on a loaded machine.
    pub fn count_lines_settled(&self, needle: &str, min: usize) -> usize {
        let _ = self.wait_where(needle, min, Duration::from_secs(15), |l| l.contains(needle));
        std::thread::sleep(Duration::from_millis(300));
        self.count_lines(needle)
    }

    /// How many lines printed so far satisfy `pred`.
    pub fn count_where(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.shared.lock().lines.iter().filter(|l| pred(l)).count()
    }

    /// Waits until at least `count` lines satisfying `pred` have been printed;
    /// returns the number seen. `what` describes them in the error.
    pub fn wait_where(
        &self,
        what: &str,
        count: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<usize, String> {
        let mut seen = 0;
        self.wait_until(timeout, |lines| {
            seen = lines.iter().filter(|l| pred(l)).count();
            seen >= count
        })
        .map_err(|why| {
            format!(
                "{} printed {what:?} {seen} time(s), expected {count}: {why}",
                self.label
            )
        })?;
        Ok(seen)
    }

    /// Waits until a line containing `needle` has been printed (at any time
    /// since the start) and returns the first such line.
    ///
    /// Fails at `timeout`, or as soon as the process has closed its output
    /// without printing it; the error quotes the last lines printed.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> Result<String, String> {
        let mut found = None;
        self.wait_until(timeout, |lines| {
            found = lines.iter().find(|l| l.contains(needle)).cloned();
            found.is_some()
        })
        .map_err(|why| format!("{} did not print {needle:?}: {why}", self.label))?;
        found.ok_or_else(|| format!("{} did not print {needle:?}", self.label))
    }

    /// Waits until at least `count` lines containing `needle` have been
    /// printed; returns the number seen (which may be larger).
    pub fn wait_for_count(
        &self,
        needle: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<usize, String> {
        self.wait_where(needle, count, timeout, |l| l.contains(needle))
    }

    /// Waits until `done` returns true for the lines printed so far.
    fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[String]) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut recorded = self.shared.lock();
        loop {
            if done(&recorded.lines) {
                return Ok(());
            }
            let why = if recorded.closed_pipes >= 2 {
                "its output is closed (it exited)"
            } else {
                let now = Instant::now();
                if now < deadline {
                    recorded = self
                        .shared
                        .changed
                        .wait_timeout(recorded, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    continue;
                }
                "timed out"
            };
            let tail = tail(&recorded.lines);
            drop(recorded);
            let status = self.try_status();
            return Err(format!(
                "{why} after {timeout:?}; status {status}; log {}; last output:\n{tail}",
                self.log_path.display()
            ));
        }
    }

    /// Sends `sig` to this child (and only to it). Does nothing once the child
    /// has exited and been reaped, so a recycled pid is never signalled.
    pub fn signal(&self, sig: Signal) -> Result<(), String> {
        let mut child = self.lock_child();
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{} already exited ({status})", self.label));
        }
        let pid = libc::pid_t::try_from(child.id())
            .map_err(|_| format!("{}: pid {} out of range", self.label, child.id()))?;
        eprintln!("[e2e] {:?} -> {} (pid {pid})", sig, self.label);
        // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our own
        // child, not yet reaped (checked above under the same lock), so it
        // cannot have been recycled.
        let rc = unsafe { libc::kill(pid, sig.raw()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(format!(
                "kill({pid}, {sig:?}) failed: {}",
                std::io::Error::last_os_error()
            ))
        }
    }

    /// The exit status if the child has exited, without waiting.
    pub fn try_wait(&self) -> Option<ExitStatus> {
        self.lock_child().try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for the child to exit on its own.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the child with `SIGKILL` (if still running) and reaps it.
    pub fn kill_and_wait(&self) -> Option<ExitStatus> {
        let mut child = self.lock_child();
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        // Errors mean it exited meanwhile; wait() below reaps it either way.
        let _ = child.kill();
        child.wait().ok()
    }

    /// Waits (up to `timeout`) until the child has closed stdout and stderr,
    /// so that [`Proc::lines`] holds everything it printed. Call after the
    /// process exited.
    pub fn wait_output_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut recorded = self.shared.lock();
        while recorded.closed_pipes < 2 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            recorded = self
                .shared
                .changed
                .wait_timeout(recorded, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    fn lock_child(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn try_status(&self) -> String {
        match self.try_wait() {
            Some(status) => format!("exited: {status}"),
            None => "running".to_owned(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(status) = self.kill_and_wait() {
            eprintln!("[e2e] {} (pid {}) ended: {status}", self.label, self.pid);
        }
    }
}

fn spawn_reader(
    pipe: impl Read + Send + 'static,
    stream: &'static str,
    shared: Arc<Shared>,
    log: Arc<Mutex<Option<File>>>,
) {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    let line = text.trim_end_matches(['\n', '\r']).to_owned();
                    if let Some(file) = log.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                        let _ = writeln!(file, "[{stream}] {line}");
                    }
                    shared.lock().lines.push(line);
                    shared.changed.notify_all();
                }
            }
        }
        shared.lock().closed_pipes += 1;
        shared.changed.notify_all();
    });
}

/// The last [`TAIL_LINES`] lines, indented, for error messages.
fn tail(lines: &[String]) -> String {
    let start = lines.len().saturating_sub(TAIL_LINES);
    let mut out = String::new();
    for line in &lines[start..] {
        let _ = writeln!(out, "    | {line}");
    }
    if out.is_empty() {
        out.push_str("    (nothing)\n");
    }
    out
}

/// The command line as a shell would read it (for logs).
pub(crate) fn command_line(cmd: &Command) -> String {
    let mut parts = vec![quote(&cmd.get_program().to_string_lossy())];
    parts.extend(cmd.get_args().map(|a| quote(&a.to_string_lossy())));
    parts.join(" ")
}

fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// `target/e2e-logs`, next to the `tmp` directory cargo gives integration tests.
fn log_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("e2e-logs")
}

/// `<test binary>.<test name>`: libtest names each test's thread after it.
fn test_name() -> String {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| match stem.rsplit_once('-') {
            Some((name, _hash)) => name.to_owned(),
            None => stem,
        })
        .unwrap_or_else(|| "test".to_owned());
    let thread = thread::current();
    match thread.name() {
        Some(name) if name != "main" => format!("{binary}.{}", name.replace("::", ".")),
        _ => binary,
    }
}

/// A log path unique within this test run: the same test starting two
/// processes with the same label gets `label`, then `label-2`, ...
fn log_path_for(label: &str) -> PathBuf {
    static SEEN: OnceLock<Mutex<HashMap<String, u32>>> = OnceLock::new();
    let base = format!("{}-{}", test_name(), sanitize(label));
    let n = {
        let mut seen = SEEN
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let n = seen.entry(base.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let file = if n == 1 {
        format!("{base}.log")
    } else {
        format!("{base}-{n}.log")
    };
    log_dir().join(file)
}

fn sanitize(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn create_log(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    File::create(path)
}
