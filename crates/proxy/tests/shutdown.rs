//! End-to-end tests of how the proxy stops: SIGTERM closes the RTSP port at
//! once, the back ends get TEARDOWN, every task ends and the process exits 0.

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
