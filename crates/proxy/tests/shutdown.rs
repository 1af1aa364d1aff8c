//! End-to-end tests of how the proxy starts serving and stops: `/healthz` and
//! `/readyz` on the admin port (without the token, `required` paths), SIGTERM
//! closing the RTSP port at once, the back ends getting TEARDOWN, every task
//! ending and the process exiting 0.

mod support;

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

const PROBE: Duration = Duration::from_secs(30);

/// Polls `addr` until a connection is refused, for at most `within`; returns
/// when it was first refused.
fn wait_refused(addr: SocketAddr, within: Duration) -> Result<Instant, String> {
    let start = Instant::now();
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return Ok(Instant::now()),
            other => {
                if start.elapsed() > within {
                    return Err(format!(
                        "{addr} still not refused after {within:?}: {other:?}"
                    ));
                }
            }
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The back end is frozen (SIGSTOP), so the TEARDOWN of shutdown goes
/// unanswered and the proxy waits its grace: during it, the RTSP port refuses
/// connections (it used to accept them, the accept loops being left running),
/// and the process still exits 0 with no task left behind.
#[test]
fn sigterm_closes_the_port_at_once_and_leaves_no_task() {
    let backend = Backend::start(BackendOpts::default());
    let proxy = Proxy::start(&["--linger", "30", backend.url()]);
    ffprobe_streams(&proxy.url("proxyStream"), "tcp", PROBE)
        .expect("play once so the back end is set up");
    backend.proc.signal(Signal::Stop).expect("SIGSTOP");

    let sent = Instant::now();
    proxy.proc.signal(Signal::Term).expect("SIGTERM");
    let refused = wait_refused(proxy.addr(), Duration::from_secs(10));
    let still_running = proxy.proc.try_wait().is_none();
    let status = proxy.proc.wait_timeout(Duration::from_secs(20));
    let _ = backend.proc.signal(Signal::Cont);

    let refused = refused.expect("the port closes");
    assert!(
        still_running,
        "the port was refused while the proxy waited for the back end's TEARDOWN answer"
    );
    let status = status.expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    eprintln!(
        "refused after {:?}, exited after {:?}",
        refused - sent,
        sent.elapsed()
    );
    assert_eq!(
        proxy
            .proc
            .count_lines("still running after the shutdown grace"),
        0,
        "every task ended"
    );
    backend
        .wait_for_requests("TEARDOWN", 1, Duration::from_secs(10))
        .expect("TEARDOWN sent (answered once the back end runs again)");
}

const HTTP: Duration = Duration::from_secs(5);

/// A config file in a folder of the test's own, removed when dropped.
struct ConfigFile {
    dir: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl ConfigFile {
    fn new(label: &str, text: &str) -> ConfigFile {
        let dir = std::env::temp_dir().join(format!("rtsp-proxy-{label}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("proxy.toml");
        std::fs::write(&path, text).unwrap();
        ConfigFile { dir, path }
    }

    fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `path` on `admin` until it answers `status`, for at most `within`;
/// returns the body.
fn wait_status(admin: SocketAddr, path: &str, status: u16, within: Duration) -> String {
    let start = Instant::now();
    loop {
        let got = http_get(admin, path, HTTP);
        match &got {
            Ok((s, body)) if *s == status => return body.clone(),
            _ if start.elapsed() > within => {
                panic!("{path} not {status} within {within:?}: last {got:?}")
            }
            _ => thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// `/healthz` and `/readyz` answer without the admin token (`/metrics` still
/// needs it); `/readyz` is 503 while a `required` path's back end is not up,
/// naming it, and 200 once it is.
#[test]
fn probes_need_no_token_and_readiness_waits_for_required_paths() {
    let backend_port = free_port();
    let file = ConfigFile::new(
        "readyz",
        &format!(
            "[paths.cam]\nsource = \"rtsp://127.0.0.1:{backend_port}/stream\"\nrequired = true\nreconnect_min = 0.2\nreconnect_max = 0.5\n\n[paths.other]\nsource = \"rtsp://127.0.0.1:9/nowhere\"\n"
        ),
    );
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin_arg = admin.to_string();
    let proxy = Proxy::start(&[
        "--config",
        file.path(),
        "--admin",
        &admin_arg,
        "--admin-token",
        "s3cret",
    ]);
    assert_eq!(http_get(admin, "/healthz", HTTP), Ok((200, "ok\n".into())));
    let (status, _) = http_get(admin, "/metrics", HTTP).expect("metrics");
    assert_eq!(status, 401, "the rest of the admin port keeps its token");
    let body = wait_status(admin, "/readyz", 503, HTTP);
    assert_eq!(
        body, "not ready: waiting for the back end of required path(s) cam\n",
        "only the required path counts (\"other\" is down too)"
    );

    let _backend = Backend::start(BackendOpts {
        port: Some(backend_port),
        ..BackendOpts::codecs("h264")
    });
    let body = wait_status(admin, "/readyz", 200, Duration::from_secs(30));
    assert_eq!(body, "ready\n");
    assert_eq!(http_get(admin, "/healthz", HTTP), Ok((200, "ok\n".into())));
    drop(proxy);
}
