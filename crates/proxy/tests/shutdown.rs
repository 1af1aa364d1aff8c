//! End-to-end tests of how the proxy starts serving and stops: `/healthz` and
//! `/readyz` on the admin port (without the token, `required` paths), SIGTERM
//! closing the RTSP port at once, the back ends getting TEARDOWN, every task
//! ending and the process exiting 0.

mod support;

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

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

/// Polls `path` on `admin` until it answers `status` with `body`, for at most
/// `within`.
fn wait_answer(admin: SocketAddr, path: &str, status: u16, body: &str, within: Duration) {
    let start = Instant::now();
    loop {
        let got = http_get(admin, path, HTTP);
        match &got {
            Ok((s, b)) if *s == status && b == body => return,
            _ if start.elapsed() > within => {
                panic!("{path} not {status} {body:?} within {within:?}: last {got:?}")
            }
            _ => thread::sleep(Duration::from_millis(5)),
        }
    }
}

const READY: &str = "ready\n";
const DRAINING: &str = "not ready: draining (shutting down)\n";

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
    // Only the required path counts ("other" is down too).
    wait_answer(
        admin,
        "/readyz",
        503,
        "not ready: waiting for the back end of required path(s) cam\n",
        HTTP,
    );

    let _backend = Backend::start(BackendOpts {
        port: Some(backend_port),
        ..BackendOpts::codecs("h264")
    });
    wait_answer(admin, "/readyz", 200, READY, Duration::from_secs(30));
    assert_eq!(http_get(admin, "/healthz", HTTP), Ok((200, "ok\n".into())));
    drop(proxy);
}

/// An ffmpeg client copying `url` over TCP for up to a minute, one framecrc
/// line per packet on its stdout.
fn playing_client(url: &str) -> Proc {
    let mut cmd = ffmpeg_copy(url, "tcp", 60);
    cmd.args(["-f", "framecrc", "-"]);
    let client = Proc::spawn("ffmpeg", &mut cmd).expect("ffmpeg");
    client
        .wait_where("framecrc packets", 25, PROBE, |l| l.starts_with("0,"))
        .expect("the client plays");
    client
}

/// Packets the client got so far (framecrc lines of stream 0).
fn packets(client: &Proc) -> usize {
    client.count_where(|l| l.starts_with("0,"))
}

/// Starts a back end and a proxy of it with `--drain-timeout <drain>` and an
/// admin port, and waits until `/readyz` says 200.
fn draining_proxy(drain: &str) -> (Backend, Proxy, SocketAddr) {
    let backend = Backend::start(BackendOpts::codecs("h264"));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin_arg = admin.to_string();
    let proxy = Proxy::start(&[
        "--drain-timeout",
        drain,
        "--linger",
        "30",
        "--admin",
        &admin_arg,
        backend.url(),
    ]);
    wait_answer(admin, "/readyz", 200, READY, HTTP);
    (backend, proxy, admin)
}

/// Seconds since midnight (UTC) of a log line's leading RFC 3339 timestamp
/// (`2026-12-07T06:05:08.499063Z  WARN ...`).
fn log_time_of_day(line: &str) -> Option<f64> {
    let time = line.get(11..)?.split('Z').next()?;
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// `at` as seconds since midnight (UTC).
fn time_of_day(at: SystemTime) -> f64 {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970");
    (since.as_secs() % 86_400) as f64 + f64::from(since.subsec_micros()) / 1e6
}

/// The drain of issue 18: SIGTERM makes the proxy not ready within 100 ms
/// (its own log line says when; the probe sees `/readyz` 503 right after,
/// the admin port answering all along), new RTSP connections are refused,
/// the client that plays goes on receiving until the drain timeout, then the
/// back end gets TEARDOWN and the process exits 0 within the timeout + 2 s.
#[test]
fn sigterm_drains_playing_clients_then_tears_down() {
    const DRAIN: Duration = Duration::from_secs(4);
    let (backend, proxy, admin) = draining_proxy("4");
    let client = playing_client(&proxy.url("proxyStream"));

    let sent_at = SystemTime::now();
    let sent = Instant::now();
    proxy.proc.signal(Signal::Term).expect("SIGTERM");
    wait_answer(admin, "/readyz", 503, DRAINING, Duration::from_secs(5));
    let probed = sent.elapsed();
    let refused = wait_refused(proxy.addr(), Duration::from_secs(5)).expect("the port closes");
    let at_signal = packets(&client);

    // Half a second before the timeout: still draining, still playing, the
    // probes answering, and no TEARDOWN yet.
    thread::sleep(
        (sent + DRAIN - Duration::from_millis(500)).saturating_duration_since(Instant::now()),
    );
    let late = packets(&client);
    let late_at = sent.elapsed();
    let readyz = http_get(admin, "/readyz", HTTP);
    let healthz = http_get(admin, "/healthz", HTTP);
    let teardowns_during_drain = backend.requests("TEARDOWN");

    let status = proxy.proc.wait_timeout(Duration::from_secs(20));
    let exited = sent.elapsed();
    // When the proxy turned not ready: its "draining" line is logged right
    // after. (The probe's own answer, `probed`, adds the probe's latency: on
    // a machine with both cores busy that alone can near 100 ms.)
    let draining_line = proxy
        .proc
        .lines()
        .into_iter()
        .find(|l| l.contains("SIGTERM: draining"))
        .expect("the drain is logged");
    let not_ready = log_time_of_day(&draining_line).expect("a timestamp") - time_of_day(sent_at);
    let not_ready = if not_ready < -43_200.0 {
        not_ready + 86_400.0
    } else {
        not_ready
    };
    eprintln!(
        "not ready {:.1} ms after the signal (the probe saw 503 after {probed:?}), refused after {:?}, {} packets from the signal to {late_at:?}, exited after {exited:?}",
        not_ready * 1e3,
        refused - sent,
        late - at_signal
    );
    assert!(
        not_ready < 0.1,
        "not ready only {not_ready:.3} s after the signal: {draining_line}"
    );
    assert!(
        probed < Duration::from_secs(1),
        "/readyz said 503 only after {probed:?}"
    );
    assert_eq!(
        readyz.as_ref().map(|(s, b)| (*s, b.as_str())),
        Ok((503, DRAINING)),
        "the admin port answers during the drain"
    );
    assert_eq!(
        healthz,
        Ok((200, "ok\n".into())),
        "still alive while draining"
    );
    assert_eq!(
        teardowns_during_drain, 0,
        "the back end stays up during the drain"
    );
    // 25 frames per second: at least half of them over the last 3 s.
    assert!(
        late >= at_signal + 35,
        "the client kept receiving during the drain: {at_signal} packets at the signal, {late} at {late_at:?}"
    );
    let status = status.expect("exits after the drain");
    assert!(status.success(), "{status:?}");
    assert!(
        exited >= DRAIN && exited <= DRAIN + Duration::from_secs(2),
        "exited after {exited:?}, the drain timeout being {DRAIN:?}"
    );
    backend
        .wait_for_requests("TEARDOWN", 1, Duration::from_secs(10))
        .expect("TEARDOWN to the back end after the drain");
    assert_eq!(
        proxy
            .proc
            .count_lines("still running after the shutdown grace"),
        0
    );
}

/// SIGINT (Ctrl-C) drains as SIGTERM does, and a second signal stops the
/// drain at once (TEARDOWN still sent).
#[test]
fn a_second_signal_ends_the_drain_at_once() {
    let (backend, proxy, admin) = draining_proxy("60");
    let _client = playing_client(&proxy.url("proxyStream"));
    proxy.proc.signal(Signal::Int).expect("SIGINT");
    wait_answer(admin, "/readyz", 503, DRAINING, Duration::from_secs(5));
    wait_refused(proxy.addr(), Duration::from_secs(5)).expect("the port closes");
    let took = sigterm_exits_0(&proxy, "at the second signal");
    eprintln!("exited {took:?} after the second signal");
    backend
        .wait_for_requests("TEARDOWN", 1, Duration::from_secs(10))
        .expect("TEARDOWN to the back end");
}

/// Nobody playing: the drain has nothing to wait for and ends at once.
#[test]
fn without_clients_the_drain_ends_at_once() {
    let proxy = Proxy::start(&["--drain-timeout", "60", "--demo"]);
    let took = sigterm_exits_0(&proxy, "without waiting for the drain timeout");
    eprintln!("exited after {took:?}");
}

/// Sends SIGTERM and waits (15 s at most) for exit status 0; returns how
/// long that took.
fn sigterm_exits_0(proxy: &Proxy, what: &str) -> Duration {
    let sent = Instant::now();
    proxy.proc.signal(Signal::Term).expect("SIGTERM");
    let status = proxy
        .proc
        .wait_timeout(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no exit {what}"));
    assert!(status.success(), "{status:?}");
    sent.elapsed()
}

/// systemd must wait longer than the default drain (and the TEARDOWN after
/// it) before it kills the proxy.
#[test]
fn the_systemd_unit_waits_longer_than_the_drain() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../packaging/systemd/rtsp-proxy.service"
    ))
    .expect("the unit");
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim().parse().ok())
        .expect("TimeoutStopSec=<seconds>");
    let drain = rtsp_proxy::config::DEFAULT_DRAIN_TIMEOUT.as_secs();
    assert!(
        stop >= drain + 6,
        "TimeoutStopSec={stop} leaves no room for the {drain} s drain, TEARDOWN and the last tasks"
    );
}

/// A drain along a chain (camera ← origin ← edge ← client), the origin's
/// side: the origin drains (SIGTERM, `--drain-timeout 3`) and closes its
/// port at once, so a new origin binds that port while the old one still
/// feeds the edge; when the old one's drain is over the edge loses it,
/// pauses, and reconnects to the new origin. The edge's client (retina,
/// strict about sequence numbers, SSRC and timestamps) sees one continuous
/// stream across the switch.
#[test]
fn an_edge_of_a_draining_origin_pauses_then_plays_on_from_the_new_origin() {
    const DRAIN: Duration = Duration::from_secs(3);
    let backend = Backend::start(BackendOpts::codecs("h264"));
    let origin_args = [
        "--drain-timeout",
        "3",
        "--reconnect-max",
        "1",
        backend.url(),
    ];
    let origin = Proxy::start(&origin_args);
    let origin_port = origin.port();
    let edge = Proxy::start(&[
        "-v",
        "-t",
        "--reconnect-max",
        "1",
        &origin.url("proxyStream"),
    ]);
    let edge_url = edge.url("proxyStream");

    const PLAY_FOR: Duration = Duration::from_secs(16);
    let client_url = edge_url.clone();
    let client = thread::spawn(move || retina_play(&client_url, RetinaTransport::Tcp, PLAY_FOR));
    edge.proc
        .wait_for_line("client PLAY", PROBE)
        .expect("the edge's client plays");
    thread::sleep(Duration::from_secs(2));

    let sent = Instant::now();
    origin
        .proc
        .signal(Signal::Term)
        .expect("SIGTERM the origin");
    wait_refused(origin.addr(), Duration::from_secs(5)).expect("the origin's port closes");
    // The old origin still has the edge's connection on that port.
    let new_origin = Proxy::try_start_on(origin_port, &origin_args)
        .expect("a new origin binds the draining one's port");
    let started = sent.elapsed();
    let status = origin
        .proc
        .wait_timeout(Duration::from_secs(20))
        .expect("the old origin exits after its drain");
    let old_gone = sent.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(old_gone >= DRAIN, "the old origin drained: {old_gone:?}");
    edge.proc
        .wait_for_line("state=back", Duration::from_secs(30))
        .expect("the edge is back, on the new origin");
    let back = sent.elapsed();
    eprintln!(
        "measured: new origin up {started:?} after SIGTERM, old origin gone after {old_gone:?}, edge back after {back:?} (a pause of {:?})",
        back.saturating_sub(old_gone)
    );
    assert!(
        edge.proc.count_lines_settled("state=lost", 1) >= 1,
        "the edge saw the old origin go"
    );

    let report = client
        .join()
        .expect("thread")
        .expect("the edge's client plays");
    report
        .check_clean(1.0)
        .expect("one clean stream at the edge: no error, no gap in the sequence numbers");
    let video = report.stream("video").expect("video");
    let last = video.last_received_after_play.expect("packets");
    assert!(
        last > PLAY_FOR - Duration::from_secs(2),
        "media until the end: {report}"
    );
    // As in operations.rs: across the pause the timestamps advanced by the
    // time that passed.
    let media_end = video.last_elapsed_secs.expect("timestamps");
    let wall_end = last.as_secs_f64();
    eprintln!("measured: edge client: last timestamp {media_end:+.2} s, received {wall_end:.2} s after PLAY");
    assert!(
        (media_end - wall_end).abs() < 0.5,
        "timestamps follow the wall clock across the switch: {media_end:.2} s vs {wall_end:.2} s"
    );
    drop(new_origin);
}

/// A drain along a chain, the edge's side: the edge drains (SIGTERM,
/// `--drain-timeout 4`) and its playing client (retina) sees no error and no
/// gap until the timeout; then the edge closes and exits 0.
#[test]
fn the_client_of_a_draining_edge_sees_no_error_until_the_timeout() {
    const DRAIN: Duration = Duration::from_secs(4);
    let backend = Backend::start(BackendOpts::codecs("h264"));
    let origin = Proxy::start(&[backend.url()]);
    let edge = Proxy::start(&[
        "-v",
        "-t",
        "--drain-timeout",
        "4",
        &origin.url("proxyStream"),
    ]);

    let client_url = edge.url("proxyStream");
    let spawned = Instant::now();
    let client = thread::spawn(move || {
        retina_play(&client_url, RetinaTransport::Tcp, Duration::from_secs(14))
    });
    edge.proc
        .wait_for_line("client PLAY", PROBE)
        .expect("the edge's client plays");
    thread::sleep(Duration::from_secs(1));

    let sent = Instant::now();
    edge.proc.signal(Signal::Term).expect("SIGTERM the edge");
    let status = edge
        .proc
        .wait_timeout(Duration::from_secs(20))
        .expect("the edge exits after its drain");
    let exited = sent.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        exited >= DRAIN && exited <= DRAIN + Duration::from_secs(2),
        "exited after {exited:?}, the drain timeout being {DRAIN:?}"
    );

    let report = client
        .join()
        .expect("thread")
        .expect("the edge's client played");
    let video = report.stream("video").expect("video");
    assert!(video.packets > 0 && video.loss == 0, "{report}");
    // When the PLAY response came, at the latest (DESCRIBE started after the
    // spawn): the last packet's time is a lower bound too.
    let played_at = spawned + report.connect_took;
    let last_packet = played_at + video.last_received_after_play.expect("packets");
    let last_from_signal = last_packet.saturating_duration_since(sent);
    eprintln!(
        "measured: the client's last packet {last_from_signal:?} after SIGTERM, the edge exited after {exited:?}; then: {:?}",
        report.error
    );
    // A retina error (a gap, a wrong SSRC...) would have ended the session
    // earlier: the closed connection comes only with the drain's end.
    assert!(
        last_from_signal >= DRAIN - Duration::from_millis(500),
        "media until the drain timeout: the last packet {last_from_signal:?} after SIGTERM: {report}"
    );
    drop(origin);
}
