//! End-to-end tests of the admin port (`--admin`): the real binary in front of a
//! GStreamer back end with three ffmpeg clients (UDP, TCP, RTSP-over-HTTP) playing; `/metrics`,
//! `/v1/paths`, the token, and the dashboard rendered by headless Chromium.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// One HTTP/1.1 GET; returns (status, body).
fn http(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    request(addr, "GET", path, token, None)
}

/// One HTTP/1.1 request with an optional JSON body; returns (status, body).
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").expect("head");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// The value of the sample `line_start` (`name{labels}`) in a metrics text.
fn sample(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' ')?.parse().ok())
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Waits until `f` holds, at most `max`.
fn wait_until(max: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + max;
    while Instant::now() < end {
        if f() {
            return true;
        }
        thread::sleep(Duration::from_millis(300));
    }
    false
}

fn client(label: &str, url: &str, transport: &str) -> Proc {
    let mut cmd = ffmpeg_copy(url, transport, 60);
    cmd.args(["-f", "null", "-"]);
    Proc::spawn(label, &mut cmd).expect("ffmpeg")
}

const PATH: &str = "proxyStream";

#[test]
fn metrics_api_token_and_dashboard() {
    let backend = Backend::start(BackendOpts::default());
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let token = "e2e-t0ken";
    let admin_arg = admin.to_string();
    let proxy = Proxy::start(&["--admin", &admin_arg, "--admin-token", token, backend.url()]);
    let url = proxy.url(PATH);
    proxy
        .proc
        .wait_for_line("Admin port", Duration::from_secs(10))
        .expect("admin banner");

    // The token: 401 without (or a wrong one), 200 with; the page itself is open.
    let (status, body) = http(admin, "/metrics", None);
    assert_eq!(status, 401, "{body}");
    assert!(json(&body)["error"].as_str().unwrap().contains("Bearer"));
    assert_eq!(http(admin, "/v1/paths", Some("wrong")).0, 401);
    assert_eq!(http(admin, "/metrics", Some(token)).0, 200);
    let (status, page) = http(admin, "/", None);
    assert_eq!(status, 200);
    assert!(page.contains("/v1/paths"), "the dashboard page");
    let (status, body) = http(admin, "/v1/paths/nonesuch", Some(token));
    assert_eq!(status, 404);
    assert!(json(&body)["error"].as_str().unwrap().contains("nonesuch"));

    let _udp = client("ffmpeg-udp", &url, "udp");
    let _tcp = client("ffmpeg-tcp", &url, "tcp");
    let _http = client("ffmpeg-http", &url, "http");
    let metrics = || http(admin, "/metrics", Some(token)).1;
    let clients = |m: &str, t: &str| {
        sample(
            m,
            &format!("rtsp_proxy_path_clients{{path=\"{PATH}\",transport=\"{t}\"}}"),
        )
    };
    let mut text = String::new();
    let all = wait_until(Duration::from_secs(30), || {
        text = metrics();
        ["udp", "tcp", "http"]
            .iter()
            .all(|t| clients(&text, t) == Some(1.0))
    });
    assert!(all, "one UDP, one TCP and one tunnelled client:\n{text}");
    assert_eq!(clients(&text, "tls"), Some(0.0));
    let up = format!("rtsp_proxy_path_up{{path=\"{PATH}\"}}");
    assert_eq!(sample(&text, &up), Some(1.0), "{text}");
    for name in [
        "rtsp_proxy_path_packets_lost_total",
        "rtsp_proxy_path_reconnects_total",
        "rtsp_proxy_client_packets_dropped_total",
    ] {
        assert!(
            sample(&text, &format!("{name}{{path=\"{PATH}\"}}")).is_some(),
            "{name}:\n{text}"
        );
    }
    for name in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
        "process_start_time_seconds",
    ] {
        assert!(
            sample(&text, name).is_some_and(|v| v > 0.0),
            "{name}:\n{text}"
        );
    }
    let received = format!("rtsp_proxy_path_bytes_received_total{{path=\"{PATH}\"}}");
    let sent = format!("rtsp_proxy_path_bytes_sent_total{{path=\"{PATH}\"}}");
    let (in1, out1) = (
        sample(&text, &received).unwrap(),
        sample(&text, &sent).unwrap(),
    );
    thread::sleep(Duration::from_secs(2));
    let text2 = metrics();
    let (in2, out2) = (
        sample(&text2, &received).unwrap(),
        sample(&text2, &sent).unwrap(),
    );
    assert!(
        in2 > in1 && out2 > out1,
        "counters grow: {in1}->{in2}, {out1}->{out2}"
    );
    assert!(
        out2 > in2,
        "three clients get more than comes in: {in2} {out2}"
    );

    // The JSON: state, codecs, source without credentials, every client.
    let mut paths = serde_json::Value::Null;
    let rated = wait_until(Duration::from_secs(20), || {
        paths = json(&http(admin, "/v1/paths", Some(token)).1);
        paths["paths"][0]["bitrate_out"].as_u64().unwrap_or(0) > 0
            && paths["paths"][0]["history"]
                .as_array()
                .is_some_and(|h| h.len() >= 2)
    });
    assert!(rated, "bitrates and history: {paths}");
    let p = &paths["paths"][0];
    assert_eq!(p["name"], PATH);
    assert_eq!(p["state"], "playing");
    assert_eq!(p["up"], true);
    assert_eq!(p["source"], backend.url());
    assert!(
        p["codecs"].as_array().unwrap().iter().any(|c| c == "H264"),
        "{p}"
    );
    let mut transports: Vec<&str> = p["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["transport"].as_str().unwrap())
        .collect();
    transports.sort_unstable();
    assert_eq!(transports, ["http", "tcp", "udp"], "{p}");
    assert!(p["clients"][0]["address"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    let one = json(&http(admin, &format!("/v1/paths/{PATH}"), Some(token)).1);
    assert_eq!(one["name"], PATH);

    dashboard_in_chromium(admin, token);
    drop(proxy);
}

/// The dashboard as a browser renders it: the path, its state, a client row per
/// client; and a screenshot under `target/e2e-logs/`.
fn dashboard_in_chromium(admin: SocketAddr, token: &str) {
    let Some(chromium) = ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        eprintln!("SKIPPED: the dashboard's browser check: chromium is not installed (apt-get install chromium)");
        return;
    };
    let logs = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("e2e-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let page = format!("http://{admin}/#token={token}");
    let run = |extra: &[&str]| {
        let profile = tempdir();
        let mut cmd = Command::new(chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(&page);
        let out = run_with_timeout(&mut cmd, Duration::from_secs(60));
        let _ = std::fs::remove_dir_all(&profile);
        out.unwrap_or_else(|e| panic!("chromium: {e}"))
    };
    let dom = String::from_utf8_lossy(&run(&["--dump-dom"]).stdout).into_owned();
    assert!(
        dom.contains(&format!("<span class=\"name\">{PATH}</span>")),
        "path name in\n{dom}"
    );
    assert!(dom.contains("class=\"state playing\""), "state in\n{dom}");
    // The page's script holds the markup too: look for what only rendering
    // makes (an address, a size, points).
    let rows = dom.matches("<tr class=\"client\"><td>127.0.0.1:").count();
    assert_eq!(rows, 3, "client rows in\n{dom}");
    assert!(
        dom.contains("\">udp</td>") && dom.contains("\">tcp</td>"),
        "{dom}"
    );
    assert!(
        dom.contains("<svg class=\"chart\" width=\"360\""),
        "chart in\n{dom}"
    );
    assert!(
        dom.contains("stroke-width=\"1.5\" points=\"2.0,"),
        "bitrate lines in\n{dom}"
    );
    let shot = logs.join("admin-dashboard.png");
    let _ = std::fs::remove_file(&shot);
    run(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1200,800",
    ]);
    assert!(shot.exists(), "screenshot {}", shot.display());
    eprintln!("[e2e] dashboard screenshot: {}", shot.display());
}

fn tempdir() -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("rtsp-proxy-chromium-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn open_admin_port_without_token_is_refused() {
    let port = free_port();
    let mut cmd = Proxy::command(port, &["--admin", "0.0.0.0:0", "--demo"]);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(20)).expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a loopback address") && err.contains("--admin-token"),
        "{err}"
    );
}

/// `PUT` and `DELETE /v1/paths/{name}` on top of the config file's path model:
/// a path added at run time is served, a bad body is a 400 with a JSON message,
/// streams that are not configured paths are refused.
#[test]
fn put_and_delete_paths() {
    let backend = Backend::start(BackendOpts::default());
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin_arg = admin.to_string();
    let proxy = Proxy::start(&["--admin", &admin_arg, "--demo"]);
    proxy
        .proc
        .wait_for_line("Admin port", Duration::from_secs(10))
        .expect("admin banner");
    let put = |name: &str, body: &str| {
        request(admin, "PUT", &format!("/v1/paths/{name}"), None, Some(body))
    };
    let body = format!(r#"{{"source": "{}", "linger": 2}}"#, backend.url());
    let (status, text) = put("cams/new", &body);
    assert_eq!(status, 201, "{text}");
    assert_eq!(json(&text)["name"], "cams/new");
    let (status, text) = put("cams/new", &body);
    assert_eq!(status, 200, "the same spec again: {text}");
    let mut path = serde_json::Value::Null;
    let up = wait_until(Duration::from_secs(20), || {
        path = json(&http(admin, "/v1/paths/cams/new", None).1);
        path["up"] == true
    });
    assert!(up, "the new path reaches its back end: {path}");
    assert_eq!(path["source"], backend.url());
    let streams = ffprobe_streams(&proxy.url("cams/new"), "tcp", Duration::from_secs(30))
        .expect("the new path plays");
    assert!(!streams.is_empty());

    for (bad, why) in [
        ("{", "not JSON"),
        ("[1]", "JSON object"),
        (r#"{"source": null}"#, "null"),
        (r#"{"source": "http://x/"}"#, "source"),
        (r#"{"source": "rtsp://h/x", "nonesuch": 1}"#, "nonesuch"),
    ] {
        let (status, text) = put("cams/bad", bad);
        assert_eq!(status, 400, "{bad}: {text}");
        let message = json(&text)["error"].as_str().unwrap().to_owned();
        assert!(message.contains(why), "{bad}: {message}");
    }
    assert_eq!(http(admin, "/v1/paths/cams/bad", None).0, 404);
    let (status, text) = put("demo", &body);
    assert_eq!(status, 409, "the demo is not a configured path: {text}");
    let big = format!(r#"{{"source": "{}"}}"#, "x".repeat(100 * 1024));
    assert_eq!(put("cams/big", &big).0, 413, "body limit");

    let delete = |name: &str| request(admin, "DELETE", &format!("/v1/paths/{name}"), None, None);
    assert_eq!(delete("cams/new").0, 204);
    assert_eq!(http(admin, "/v1/paths/cams/new", None).0, 404);
    assert_eq!(delete("cams/new").0, 404);
    assert_eq!(delete("demo").0, 409);
}
