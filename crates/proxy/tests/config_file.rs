//! End-to-end tests of the config file: named paths, hot reload that touches only
//! the changed paths (on file change and on SIGHUP), a broken file on reload, and
//! on-demand paths.

mod support;

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

const PROBE: Duration = Duration::from_secs(30);

/// A config file of the test's own, written like an editor's atomic save (a temp
/// file renamed over it).
struct ConfigFile {
    dir: PathBuf,
    path: PathBuf,
}

impl ConfigFile {
    fn new(label: &str) -> ConfigFile {
        let dir = std::env::temp_dir().join(format!("rtsp-proxy-{label}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("proxy.toml");
        ConfigFile { dir, path }
    }

    fn write(&self, text: &str) {
        let tmp = self.dir.join(".proxy.toml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
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

fn path(name: &str, url: &str, extra: &str) -> String {
    format!("[paths.{name}]\nsource = \"{url}\"\n{extra}\n")
}

fn status(proxy: &Proxy, name: &str) -> String {
    let out = rtsp_exchange(
        proxy.addr(),
        format!("DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\n\r\n", proxy.url(name)).as_bytes(),
        PROBE,
    )
    .unwrap_or_else(|e| e);
    out.lines().next().unwrap_or("").to_owned()
}

fn wait_count(proc: &Proc, needle: &str, count: usize, within: Duration) {
    proc.wait_for_count(needle, count, within)
        .unwrap_or_else(|e| panic!("waiting for {count} x {needle:?}: {e}"));
}

#[test]
fn reload_touches_only_the_changed_paths() {
    // One back end per path: the GStreamer back end's shared media refuses a
    // DESCRIBE (503) while another client's is under way. d needs none (it is
    // only removed).
    let back_a = Backend::start(BackendOpts::codecs("h264"));
    let back_b = Backend::start(BackendOpts::codecs("h264"));
    let back_c = Backend::start(BackendOpts::codecs("h264"));
    let nowhere = "rtsp://127.0.0.1:9/d";
    let file = ConfigFile::new("reload");
    file.write(&format!(
        "{}{}{}",
        path("a", back_a.url(), ""),
        path("b", back_b.url(), ""),
        path("d", nowhere, "")
    ));
    let proxy = Proxy::start(&["-v", "--config", file.path()]);
    proxy
        .proc
        .wait_for_line("\"d\" (config file)", Duration::from_secs(5))
        .expect("three paths announced");
    back_b
        .proc
        .wait_for_count("CLIENT-CONNECTED", 1, Duration::from_secs(10))
        .expect("b connects at start");

    // A client watches a across every reload.
    let url_a = proxy.url("a");
    let watcher =
        thread::spawn(move || retina_play(&url_a, RetinaTransport::Tcp, Duration::from_secs(14)));
    thread::sleep(Duration::from_secs(3));

    // Change b, add c, remove d: an atomic save.
    assert_eq!(back_b.connections(), 1);
    let t0 = Instant::now();
    file.write(&format!(
        "{}{}{}",
        path("a", back_a.url(), ""),
        path("b", back_b.url(), "linger = 3"),
        path("c", back_c.url(), "")
    ));
    wait_count(&proxy.proc, "config reloaded", 1, Duration::from_secs(3));
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "picked up within 2 s or so"
    );
    let line = proxy
        .proc
        .wait_for_line("config reloaded", Duration::ZERO)
        .unwrap();
    assert!(
        line.contains("added: c; changed: b; removed: d; unchanged: 1"),
        "{line}"
    );
    assert!(status(&proxy, "d").starts_with("RTSP/1.0 404"), "d is gone");
    let c = ffprobe_streams(&proxy.url("c"), "tcp", PROBE).expect("c is served");
    assert!(!c.is_empty());
    back_b
        .proc
        .wait_for_count("CLIENT-CONNECTED", 2, Duration::from_secs(10))
        .expect("b reconnected");

    // SIGHUP with the file unchanged: a reload that does nothing.
    proxy.proc.signal(Signal::Hup).unwrap();
    wait_count(&proxy.proc, "config reloaded", 2, Duration::from_secs(3));
    let lines = proxy.proc.lines();
    let last = lines
        .iter()
        .rev()
        .find(|l| l.contains("config reloaded"))
        .unwrap();
    assert!(
        last.contains("added: none; changed: none; removed: none; unchanged: 3"),
        "{last}"
    );

    // A broken file: refused, with file and line; the old config stays.
    file.write(&format!(
        "{}[paths.c]\nsource = \"rtsp://x/\"\nlinger = -1\n",
        path("a", back_a.url(), "")
    ));
    let refused = proxy
        .proc
        .wait_for_line("config reload refused", Duration::from_secs(3))
        .expect("refused");
    assert!(
        refused.contains(&format!("{}:6: paths.c.linger", file.path())),
        "{refused}"
    );
    assert!(
        status(&proxy, "c").starts_with("RTSP/1.0 200"),
        "c still served"
    );
    assert!(
        status(&proxy, "b").starts_with("RTSP/1.0 200"),
        "b still served"
    );

    let report = watcher.join().unwrap().expect("a played");
    report.check_clean(0.5).expect("a saw no gap");
    assert!(report.streams[0].packets > 100, "{report}");
    assert_eq!(back_a.connections(), 1, "a's back end was never re-opened");
}

#[test]
fn on_demand_paths_connect_on_the_first_client_and_close_after_linger() {
    let backend = Backend::start(BackendOpts::codecs("h264"));
    let file = ConfigFile::new("ondemand");
    file.write(&path("od", backend.url(), "on_demand = true\nlinger = 1"));
    let proxy = Proxy::start(&["-v", "--config", file.path()]);
    thread::sleep(Duration::from_secs(2));
    assert_eq!(
        backend.connections(),
        0,
        "no back-end connection before a client"
    );

    let report = retina_play(
        &proxy.url("od"),
        RetinaTransport::Tcp,
        Duration::from_secs(3),
    )
    .expect("the first DESCRIBE connects and waits for the back end");
    report.check_clean(0.5).expect("clean");
    assert_eq!(backend.connections(), 1);

    proxy
        .proc
        .wait_for_line("on demand: no client", Duration::from_secs(10))
        .expect("closed after linger");
    backend
        .wait_for_requests("TEARDOWN", 1, Duration::from_secs(5))
        .expect("the back end was told");

    thread::sleep(Duration::from_secs(2));
    assert_eq!(
        backend.connections(),
        1,
        "idle again: no reconnect by itself"
    );

    // A later client reconnects.
    let again = ffprobe_streams(&proxy.url("od"), "tcp", PROBE).expect("served again");
    assert!(!again.is_empty());
    assert_eq!(backend.connections(), 2);
}

#[test]
fn a_bad_file_at_start_up_exits_1_naming_file_line_and_key() {
    let file = ConfigFile::new("badstart");
    file.write(
        "[server]\nrtsp_port = 8554\n\n[paths.a]\nsource = \"rtsp://h/x\"\ntransport = \"quic\"\n",
    );
    let mut cmd = std::process::Command::new(Proxy::binary());
    cmd.args(["--config", file.path()]);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(10)).expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:6: paths.a.transport: unknown transport \"quic\"",
            file.path()
        )),
        "{err}"
    );
}

/// The state `/v1/paths/{name}` shows for `name` (`None`: no such path yet).
fn admin_state(admin: std::net::SocketAddr, name: &str) -> Option<String> {
    let (status, body) = http_get(admin, &format!("/v1/paths/{name}"), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    if status != 200 {
        return None;
    }
    let start = body.find("\"state\":\"")? + "\"state\":\"".len();
    let len = body[start..].find('"')?;
    Some(body[start..start + len].to_owned())
}

/// Polls until path `name` shows `state` (an on-demand path with no client
/// shows `idle`; one that dials a closed port never does).
fn wait_state(admin: std::net::SocketAddr, name: &str, state: &str, within: Duration) {
    let deadline = Instant::now() + within;
    let mut last = None;
    while Instant::now() < deadline {
        last = admin_state(admin, name);
        if last.as_deref() == Some(state) {
            return;
        }
        thread::sleep(Duration::from_millis(200));
    }
    panic!("{name}: state {last:?}, not {state:?} within {within:?}");
}

/// One HTTP/1.1 `PUT` with a JSON body; the status.
fn http_put(admin: std::net::SocketAddr, path: &str, body: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&admin, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: {admin}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}

/// An edit of `[defaults]` is in force everywhere after the reload: the
/// command-line stream it affects is restarted (and the log names it), a path
/// added by the admin API's PUT and a REGISTERed stream take the new default.
/// `on_demand = true` is the default edited: a path that has it and no client
/// shows `idle`, one without it dials its (closed) back-end port and never does.
#[test]
fn a_defaults_edit_reaches_command_line_streams_register_and_the_admin_api() {
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin_arg = admin.to_string();
    let file = ConfigFile::new("defaults-edit");
    file.write("[defaults]\nlinger = 1\n");
    let proxy = Proxy::start(&[
        "-v",
        "-R",
        "--admin",
        &admin_arg,
        "--config",
        file.path(),
        "rtsp://127.0.0.1:9/cli",
    ]);
    proxy
        .proc
        .wait_for_line("Admin port", Duration::from_secs(10))
        .expect("admin banner");
    wait_state(admin, "proxyStream", "down", Duration::from_secs(20));

    file.write("[defaults]\nlinger = 1\non_demand = true\n");
    let line = proxy
        .proc
        .wait_for_line(
            "restarted (their settings changed)",
            Duration::from_secs(10),
        )
        .expect("the reload names what it restarts");
    assert!(line.contains("proxyStream"), "{line}");
    wait_state(admin, "proxyStream", "idle", Duration::from_secs(20));

    assert_eq!(
        http_put(
            admin,
            "/v1/paths/put1",
            r#"{"source": "rtsp://127.0.0.1:9/put"}"#
        ),
        201
    );
    wait_state(admin, "put1", "idle", Duration::from_secs(20));

    let answer = rtsp_exchange(
        proxy.addr(),
        b"REGISTER rtsp://127.0.0.1:9/reg RTSP/1.0\r\nCSeq: 1\r\nTransport: preferred_delivery_protocol=interleaved;proxy_url_suffix=reg\r\n\r\n",
        PROBE,
    )
    .unwrap_or_else(|e| e);
    assert!(answer.starts_with("RTSP/1.0 200"), "{answer}");
    wait_state(admin, "reg", "idle", Duration::from_secs(20));
    // And they stay so: nobody asked, so nothing dials.
    thread::sleep(Duration::from_secs(2));
    for name in ["proxyStream", "put1", "reg"] {
        assert_eq!(admin_state(admin, name).as_deref(), Some("idle"), "{name}");
    }
}
