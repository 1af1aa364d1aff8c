//! End-to-end tests of WebRTC playback (`--webrtc-listen`): headless Chromium
//! opens the viewer page of a path, plays it with WHEP, and posts what its
//! `getStats()` says every second to a small HTTP receiver of the test (the
//! page's `#report=` option): frames decoded, audio packets, the time to the
//! first picture, the pixel variance of the picture (not a flat colour) and a
//! PNG of it (kept under `target/e2e-logs/`).

#[path = "webrtc_support/cdp.rs"]
mod cdp;
mod support;
#[path = "webrtc_support/whep.rs"]
mod whep;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;
use support::*;

/// Chromium is heavy on a loaded 2-core machine: one browser test at a time.
static BROWSER: Mutex<()> = Mutex::new(());

fn one_browser_at_a_time() -> MutexGuard<'static, ()> {
    BROWSER.lock().unwrap_or_else(|e| e.into_inner())
}

/// Chromium and the one-browser lock; None (the test skipped, said on
/// stderr) without Chromium.
fn with_chromium() -> Option<(&'static str, MutexGuard<'static, ()>)> {
    let Some(chromium) = chromium() else {
        eprintln!("SKIPPED: chromium is not installed (apt-get install chromium)");
        return None;
    };
    Some((chromium, one_browser_at_a_time()))
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn logs_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("e2e-logs");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The proxy with WebRTC on free ports; returns it and the WebRTC HTTP address.
fn proxy_with_webrtc(extra: &[&str]) -> (Proxy, SocketAddr) {
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let udp = format!("127.0.0.1:{}", free_udp_port());
    let http_arg = http.to_string();
    let mut args = vec!["--webrtc-listen", &http_arg, "--webrtc-udp", &udp];
    args.extend_from_slice(extra);
    let proxy = Proxy::start(&args);
    proxy
        .proc
        .wait_for_line("Browsers watch with WebRTC", Duration::from_secs(20))
        .expect("WebRTC banner");
    (proxy, http)
}

/// [`proxy_with_webrtc`] with the admin port too; returns its address last.
fn proxy_with_webrtc_and_admin(extra: &[&str]) -> (Proxy, SocketAddr, SocketAddr) {
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin_arg = admin.to_string();
    let mut args = vec!["--admin", admin_arg.as_str()];
    args.extend_from_slice(extra);
    let (proxy, webrtc) = proxy_with_webrtc(&args);
    (proxy, webrtc, admin)
}

fn free_udp_port() -> u16 {
    loop {
        let p = free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// What the pages posted, in order.
#[derive(Clone, Default)]
struct Reports {
    all: Arc<Mutex<Vec<Value>>>,
}

impl Reports {
    /// A receiver on a free port; returns it and its URL.
    fn start() -> (Reports, String) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let reports = Reports::default();
        let all = reports.all.clone();
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                if let Some(v) = read_post(conn) {
                    all.lock().unwrap().push(v);
                }
            }
        });
        (reports, url)
    }

    fn last(&self) -> Option<Value> {
        self.all.lock().unwrap().last().cloned()
    }

    /// Waits until the last report satisfies `pred`; panics with the last
    /// report after `timeout`.
    fn wait(&self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self.last().filter(|v| pred(v)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?}; last report: {}",
                self.last()
                    .map(|v| strip_shot(&v).to_string())
                    .unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Saves the last PNG a page sent as `name`.
    fn save_shot(&self, name: &str) -> PathBuf {
        let all = self.all.lock().unwrap();
        let shot = all
            .iter()
            .rev()
            .find_map(|v| v["shot"].as_str().map(str::to_owned))
            .expect("a report with a screenshot");
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot.trim_start_matches("data:image/png;base64,"))
            .expect("base64 PNG");
        let path = logs_dir().join(name);
        std::fs::write(&path, png).unwrap();
        path
    }
}

fn strip_shot(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("shot");
    }
    v
}

fn read_post(conn: TcpStream) -> Option<Value> {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; len.min(4 << 20)];
    reader.read_exact(&mut body).ok()?;
    let mut conn = conn;
    let _ = conn
        .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    serde_json::from_slice(&body).ok()
}

/// Headless Chromium on `url`, killed when dropped.
fn browser(chromium: &str, url: &str, extra: &[&str]) -> (Proc, PathBuf) {
    let profile = std::env::temp_dir().join(format!(
        "rtsp-proxy-webrtc-{}-{}",
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::remove_dir_all(&profile);
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--allow-loopback-in-peer-connection",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--autoplay-policy=no-user-gesture-required",
        "--use-fake-ui-for-media-stream",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url);
    (
        Proc::spawn("chromium", &mut cmd).expect("chromium"),
        profile,
    )
}

struct Browser {
    proc: Option<Proc>,
    profile: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.proc.take();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn open(chromium: &str, page: &str) -> Browser {
    open_with(chromium, page, &[])
}

fn open_with(chromium: &str, page: &str, extra: &[&str]) -> Browser {
    let (proc, profile) = browser(chromium, page, extra);
    Browser {
        proc: Some(proc),
        profile,
    }
}

fn frames(v: &Value) -> u64 {
    v["framesDecoded"].as_u64().unwrap_or(0)
}

fn audio_packets(v: &Value) -> u64 {
    v["audioPackets"].as_u64().unwrap_or(0)
}

/// The page plays `path`: frames decoded, a picture that is not a flat
/// colour, audio when `audio`; returns the report, screenshot kept as `shot`.
fn plays(chromium: &str, webrtc: SocketAddr, path: &str, audio: bool, shot: &str) -> Value {
    let (reports, report_url) = Reports::start();
    let _browser = open(
        chromium,
        &format!("http://{webrtc}/{path}/#report={report_url}"),
    );
    let v = reports.wait("50 frames decoded", Duration::from_secs(60), |v| {
        frames(v) >= 50 && (!audio || audio_packets(v) > 0)
    });
    assert_eq!(v["state"], "playing", "{}", strip_shot(&v));
    assert_eq!(v["posts"], 1);
    let v = reports.wait("a picture", Duration::from_secs(20), |v| {
        v["variance"].as_f64().unwrap_or(0.0) > 10.0 && v["shot"].is_string()
    });
    let png = reports.save_shot(shot);
    let post_to_picture =
        v["firstFrameMs"].as_i64().unwrap_or(0) - v["postMs"].as_i64().unwrap_or(0);
    eprintln!("[webrtc] {path}: WHEP POST to first decoded picture: {post_to_picture} ms");
    eprintln!(
        "[webrtc] {path}: {} frames, {} audio packets, first picture {} ms after page load (POST at {} ms, answer at {}, connected at {}), variance {:.0}, screenshot {}",
        frames(&v),
        audio_packets(&v),
        v["firstFrameMs"],
        v["postMs"],
        v["answerMs"],
        v["connectedMs"],
        v["variance"].as_f64().unwrap_or(0.0),
        png.display()
    );
    v
}

#[test]
fn the_demo_stream_plays_in_chromium() {
    let Some((chromium, _one)) = with_chromium() else {
        return;
    };
    let (proxy, webrtc) = proxy_with_webrtc(&["--demo"]);
    let banner = proxy
        .proc
        .wait_for_line("Watch it in a browser", Duration::from_secs(5))
        .expect("WHEP URL in the banner");
    assert!(
        banner.contains(&format!("http://{webrtc}/demo/whep")),
        "{banner}"
    );
    plays(chromium, webrtc, "demo", false, "webrtc-demo.png");
}

/// H.264 with Opus, with PCMA, and H.264 High profile (Chromium's offer has
/// no High profile: the answer takes one of its payload types and the
/// decoder plays it).
#[test]
fn camera_codecs_play_in_chromium() {
    let Some((chromium, _one)) = with_chromium() else {
        return;
    };
    let opus = Backend::start(BackendOpts::codecs("h264,opus"));
    let pcma = Backend::start(BackendOpts::codecs("h264,pcma"));
    let high = Backend::start(BackendOpts::codecs("h264high"));
    let (_proxy, webrtc) = proxy_with_webrtc(&[opus.url(), pcma.url(), high.url()]);
    for (path, audio, shot) in [
        ("proxyStream-1", true, "webrtc-h264-opus.png"),
        ("proxyStream-2", true, "webrtc-h264-pcma.png"),
        ("proxyStream-3", false, "webrtc-h264-high.png"),
    ] {
        plays(chromium, webrtc, path, audio, shot);
    }
}

/// A camera killed (SIGKILL) and back 3 s later: the browser's session goes
/// on (the same peer connection, no new WHEP POST) and decodes again.
#[test]
fn a_camera_restart_does_not_end_the_browsers_session() {
    let Some((chromium, _one)) = with_chromium() else {
        return;
    };
    let backend = Backend::start(BackendOpts::codecs("h264,opus"));
    let (_proxy, webrtc) = proxy_with_webrtc(&[backend.url()]);
    let (reports, report_url) = Reports::start();
    let _browser = open(
        chromium,
        &format!("http://{webrtc}/proxyStream/#report={report_url}"),
    );
    let before = reports.wait("50 frames decoded", Duration::from_secs(60), |v| {
        frames(v) >= 50 && audio_packets(v) > 0
    });
    backend.proc.signal(Signal::Kill).expect("SIGKILL");
    thread::sleep(Duration::from_secs(3));
    let backend = backend.restart();
    let at_restart = frames(&reports.last().unwrap());
    let after = reports.wait(
        "50 more frames after the restart",
        Duration::from_secs(60),
        |v| frames(v) >= at_restart + 50,
    );
    assert_eq!(after["pcId"], before["pcId"], "the same peer connection");
    assert_eq!(after["posts"], 1, "no new WHEP POST");
    assert_eq!(after["state"], "playing");
    assert!(audio_packets(&after) > audio_packets(&before));
    drop(backend);
}

/// A paused back end (nobody watched for the linger) is resumed for a
/// browser, which plays: WebRTC viewers are in the source's demand.
#[test]
fn a_browser_resumes_a_paused_back_end() {
    let Some((chromium, _one)) = with_chromium() else {
        return;
    };
    let backend = Backend::start(BackendOpts::codecs("h264"));
    let (proxy, webrtc) = proxy_with_webrtc(&["--linger", "1", backend.url()]);
    // An RTSP client plays and leaves: the back end is paused after the linger.
    ffmpeg_record(&proxy.url("proxyStream"), "tcp", 2).expect("ffmpeg plays");
    backend
        .wait_for_requests("PAUSE", 1, Duration::from_secs(30))
        .expect("the back end paused");
    let (reports, report_url) = Reports::start();
    let browser = open(
        chromium,
        &format!("http://{webrtc}/proxyStream/#report={report_url}"),
    );
    let v = reports.wait("50 frames decoded", Duration::from_secs(60), |v| {
        frames(v) >= 50
    });
    assert_eq!(v["posts"], 1);
    assert!(backend.requests("PLAY") >= 2, "resumed with PLAY");
    // The browser leaves: paused again.
    drop(browser);
    backend
        .wait_for_requests("PAUSE", 2, Duration::from_secs(60))
        .expect("paused again once the browser left");
    assert_eq!(backend.connections(), 1, "one connection to the camera");
}

/// H.265 + AAC: nothing a browser can play. The WHEP POST is refused with
/// the reason, the page says why, the API names the tracks, and RTSP clients
/// of the same path play on.
#[test]
fn h265_and_aac_are_left_out_and_named() {
    let backend = Backend::start(BackendOpts::codecs("h265,aac"));
    let (proxy, webrtc, admin) = proxy_with_webrtc_and_admin(&[backend.url()]);
    // An RTSP client plays all along.
    let rtsp = Proc::spawn(
        "ffmpeg",
        &mut to_null(ffmpeg_copy(&proxy.url("proxyStream"), "udp", 20)),
    )
    .expect("ffmpeg");
    let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=recvonly\r\na=rtpmap:96 H264/90000\r\n";
    let (status, head, body) = http(
        webrtc,
        "POST",
        "/proxyStream/whep",
        "application/sdp",
        offer,
    );
    assert_eq!(status, 422, "{head}\n{body}");
    assert!(body.contains("H265") && body.contains("AAC"), "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-left-out: video h265, audio mpeg4-generic (aac)"),
        "{head}"
    );
    let (status, _, api) = http(admin, "GET", "/v1/paths/proxyStream", "", "");
    assert_eq!(status, 200);
    let api: Value = serde_json::from_str(&api).unwrap();
    assert_eq!(
        api["webrtc_left_out"],
        serde_json::json!(["video H265", "audio MPEG4-GENERIC (AAC)"])
    );
    if let Some(chromium) = chromium() {
        let _one = one_browser_at_a_time();
        let (reports, report_url) = Reports::start();
        let _browser = open(
            chromium,
            &format!("http://{webrtc}/proxyStream/#report={report_url}"),
        );
        let v = reports.wait("the page says why", Duration::from_secs(60), |v| {
            v["state"] == "failed"
        });
        assert_eq!(v["leftOut"], "video H265, audio MPEG4-GENERIC (AAC)");
        assert!(
            v["error"]
                .as_str()
                .unwrap_or("")
                .contains("nothing of this path plays"),
            "{v}"
        );
    }
    // The RTSP client was not disturbed.
    let status = rtsp
        .wait_timeout(Duration::from_secs(60))
        .expect("ffmpeg ends");
    assert!(status.success(), "ffmpeg: {status}");
    assert_eq!(backend.connections(), 1);
}

/// ffmpeg over RTSP/UDP, GStreamer over RTSP/TCP and two browsers on one
/// camera: the camera sees one connection, and the API counts two WebRTC
/// viewers.
#[test]
fn mixed_viewers_share_one_camera_connection() {
    let Some((chromium, _one)) = with_chromium() else {
        return;
    };
    let backend = Backend::start(BackendOpts::codecs("h264,opus"));
    let (proxy, webrtc, admin) = proxy_with_webrtc_and_admin(&[backend.url()]);
    let url = proxy.url("proxyStream");
    let ffmpeg = Proc::spawn("ffmpeg", &mut to_null(ffmpeg_copy(&url, "udp", 30))).expect("ffmpeg");
    let (first, first_url) = Reports::start();
    let (second, second_url) = Reports::start();
    let _a = open(
        chromium,
        &format!("http://{webrtc}/proxyStream/#report={first_url}"),
    );
    let _b = open(
        chromium,
        &format!("http://{webrtc}/proxyStream/#report={second_url}"),
    );
    gst_play_media(&url, "tcp", "video", 50, Duration::from_secs(90))
        .expect("GStreamer plays over TCP");
    for r in [&first, &second] {
        r.wait("50 frames decoded", Duration::from_secs(90), |v| {
            frames(v) >= 50 && audio_packets(v) > 0
        });
    }
    let (status, _, api) = http(admin, "GET", "/v1/paths/proxyStream", "", "");
    assert_eq!(status, 200);
    let api: Value = serde_json::from_str(&api).unwrap();
    let webrtc_clients = api["clients"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["transport"] == "webrtc")
        .count();
    assert_eq!(webrtc_clients, 2, "{api}");
    assert_eq!(api["webrtc"]["viewers"], 2, "{api}");
    assert!(
        api["webrtc"]["packets_sent"].as_u64().unwrap_or(0) > 0,
        "{api}"
    );
    assert_eq!(api["watch_path"], "/proxyStream/");
    assert_eq!(api["watch_port"], webrtc.port());
    let (_, _, metrics) = http(admin, "GET", "/metrics", "", "");
    assert!(
        metrics.contains("rtsp_proxy_path_clients{path=\"proxyStream\",transport=\"webrtc\"} 2"),
        "{metrics}"
    );
    for family in ["bytes_sent", "packets_sent", "nacks", "plis", "firs"] {
        assert!(
            metrics.contains(&format!(
                "rtsp_proxy_webrtc_{family}_total{{path=\"proxyStream\"}}"
            )),
            "{family} in {metrics}"
        );
    }
    assert_eq!(backend.connections(), 1, "the camera sees one connection");
    drop(ffmpeg);
}

/// An ffmpeg command of [`ffmpeg_copy`] writing nowhere.
fn to_null(mut cmd: Command) -> Command {
    cmd.args(["-f", "null", "-"]);
    cmd
}

/// One HTTP/1.1 request; returns (status, head, body).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, String, String) {
    http_as(addr, method, path, content_type, body, None)
}

/// [`http`] with an `Authorization` header.
fn http_as(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
    authorization: Option<&str>,
) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !content_type.is_empty() {
        req.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    if let Some(a) = authorization {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// A WHEP offer as a browser would make it (str0m as the client): a video
/// and an audio transceiver that receive.
fn client_offer() -> String {
    use str0m::media::{Direction, MediaKind};
    let mut rtc = str0m::Rtc::builder()
        .set_crypto_provider(std::sync::Arc::new(str0m::crypto::from_feature_flags()))
        .build(Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, _pending) = api.apply().expect("an offer");
    offer.to_sdp_string()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// WebRTC clients of `path` the admin API lists.
fn webrtc_clients(admin: SocketAddr, path: &str) -> usize {
    webrtc_clients_as(admin, path, None)
}

/// [`webrtc_clients`] of an admin port with a token.
fn webrtc_clients_as(admin: SocketAddr, path: &str, token: Option<&str>) -> usize {
    let auth = token.map(|t| format!("Bearer {t}"));
    let (_, _, body) = http_as(
        admin,
        "GET",
        &format!("/v1/paths/{path}"),
        "",
        "",
        auth.as_deref(),
    );
    let v: Value = serde_json::from_str(&body).unwrap_or_default();
    v["clients"].as_array().map_or(0, |c| {
        c.iter().filter(|c| c["transport"] == "webrtc").count()
    })
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        thread::sleep(Duration::from_millis(200));
    }
}

/// WHEP as the protocol says: CORS preflight, offers refused with the reason
/// (wrong type, not SDP, too big, unknown path, over the limit), 201 with the
/// answer and a Location, PATCH with trickled candidates, DELETE; a session
/// whose ICE never completes is freed after the handshake timeout.
#[test]
fn whep_protocol_cases() {
    let (_proxy, webrtc, admin) =
        proxy_with_webrtc_and_admin(&["--webrtc-max-viewers-per-path", "2", "--demo"]);
    let (status, head, _) = http(webrtc, "OPTIONS", "/demo/whep", "", "");
    assert_eq!(status, 204, "{head}");
    assert_eq!(header(&head, "access-control-allow-origin"), Some("*"));
    assert!(header(&head, "access-control-allow-methods").is_some_and(|m| m.contains("POST")));
    assert!(
        header(&head, "access-control-allow-headers").is_some_and(|m| m.contains("Authorization"))
    );

    let offer = client_offer();
    let (status, _, _) = http(webrtc, "POST", "/demo/whep", "text/plain", &offer);
    assert_eq!(status, 415);
    let (status, _, body) = http(webrtc, "POST", "/demo/whep", "application/sdp", "hello");
    assert_eq!(status, 400);
    assert!(body.contains("not valid SDP"), "{body}");
    let big = "a=x\r\n".repeat(10_000);
    let (status, _, _) = http(webrtc, "POST", "/demo/whep", "application/sdp", &big);
    assert_eq!(status, 413);
    let (status, _, _) = http(webrtc, "POST", "/nonesuch/whep", "application/sdp", &offer);
    assert_eq!(status, 404);

    let (status, head, answer) = http(webrtc, "POST", "/demo/whep", "application/sdp", &offer);
    assert_eq!(status, 201, "{head}\n{answer}");
    assert_eq!(header(&head, "content-type"), Some("application/sdp"));
    let location = header(&head, "location").expect("Location").to_owned();
    assert!(location.starts_with("/demo/whep/"), "{location}");
    assert!(
        answer.starts_with("v=0") && answer.contains("a=ice-lite"),
        "{answer}"
    );
    assert!(answer.contains("H264"), "{answer}");
    let frag = "a=candidate:1 1 udp 2113937151 127.0.0.1 50000 typ host\r\n";
    let (status, _, _) = http(
        webrtc,
        "PATCH",
        &location,
        "application/trickle-ice-sdpfrag",
        frag,
    );
    assert_eq!(status, 204);
    let (status, _, _) = http(
        webrtc,
        "PATCH",
        "/demo/whep/nonesuch",
        "application/trickle-ice-sdpfrag",
        frag,
    );
    assert_eq!(status, 404);

    let (status, head, _) = http(webrtc, "POST", "/demo/whep", "application/sdp", &offer);
    assert_eq!(status, 201);
    let (status, _, body) = http(webrtc, "POST", "/demo/whep", "application/sdp", &offer);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("limit"), "{body}");
    assert_eq!(webrtc_clients(admin, "demo"), 2);

    let (status, _, _) = http(webrtc, "DELETE", &location, "", "");
    assert_eq!(status, 200);
    let (status, _, _) = http(webrtc, "DELETE", &location, "", "");
    assert_eq!(status, 404);
    wait_for("the deleted session gone", Duration::from_secs(10), || {
        webrtc_clients(admin, "demo") == 1
    });
    // The other never does ICE: freed after the handshake timeout (15 s).
    let started = Instant::now();
    wait_for(
        "the unconnected session freed",
        Duration::from_secs(45),
        || webrtc_clients(admin, "demo") == 0,
    );
    eprintln!(
        "[webrtc] unconnected session freed after {:?}",
        started.elapsed()
    );
    assert!(header(&head, "location").is_some());
}

/// The WHEP POST needs the RTSP clients' users (-C) when there are some, with
/// HTTP Basic, or the admin token as a Bearer token.
#[test]
fn whep_needs_the_rtsp_users_or_the_admin_token() {
    let (_proxy, webrtc, _admin) = proxy_with_webrtc_and_admin(&[
        "--admin-token",
        "adm1n-t0ken",
        "-C",
        "viewer",
        "s3cret",
        "--demo",
    ]);
    let offer = client_offer();
    let post = |auth: Option<String>| {
        let mut s = TcpStream::connect_timeout(&webrtc, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "POST /demo/whep HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/sdp\r\n{auth}Content-Length: {}\r\n\r\n{offer}",
            offer.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let basic = |a: &str| {
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(a)
        ))
    };
    let out = post(None);
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    let lower = out.to_ascii_lowercase();
    assert!(lower.contains("www-authenticate: basic"), "{out}");
    assert!(lower.contains("www-authenticate: bearer"), "{out}");
    assert!(post(basic("viewer:wrong")).starts_with("HTTP/1.1 401"));
    assert!(post(Some("Bearer wrong-token".into())).starts_with("HTTP/1.1 401"));
    let out = post(basic("viewer:s3cret"));
    assert!(out.starts_with("HTTP/1.1 201"), "{out}");
    let out = post(Some("Bearer adm1n-t0ken".into()));
    assert!(out.starts_with("HTTP/1.1 201"), "{out}");
}

/// Many offers that never do ICE: refused past the limit, memory bounded,
/// every session freed after the handshake timeout.
#[test]
fn offers_without_ice_keep_memory_bounded() {
    let (proxy, webrtc, admin) = proxy_with_webrtc_and_admin(&[
        "--webrtc-max-viewers",
        "100",
        "--webrtc-max-viewers-per-path",
        "100",
        "--demo",
    ]);
    let offer = client_offer();
    let rss_before = rss_kib(proxy.proc.pid());
    let mut created = 0;
    let mut refused = 0;
    for _ in 0..1000 {
        match http(webrtc, "POST", "/demo/whep", "application/sdp", &offer).0 {
            201 => created += 1,
            503 => refused += 1,
            other => panic!("status {other}"),
        }
    }
    let rss_full = rss_kib(proxy.proc.pid());
    eprintln!(
        "[webrtc] 1000 offers: {created} sessions, {refused} refused; RSS {rss_before} KiB -> {rss_full} KiB"
    );
    // Sessions not connected are freed after 15 s: on a slow machine some
    // of the first ones may be gone before the last offers.
    assert!(
        created >= 100 && refused > 0,
        "{created} created, {refused} refused"
    );
    assert!(
        rss_full < rss_before + 100 * 1024,
        "RSS {rss_before} KiB -> {rss_full} KiB for 100 sessions"
    );
    wait_for("every session freed", Duration::from_secs(90), || {
        webrtc_clients(admin, "demo") == 0
    });
    let (status, _, _) = http(webrtc, "POST", "/demo/whep", "application/sdp", &offer);
    assert_eq!(status, 201, "new offers are taken again");
}

/// `--webrtc-https`: the page and WHEP over HTTPS with the RTSPS certificate;
/// the browser plays.
#[test]
fn https_with_the_rtsps_certificate() {
    let Some((chromium, _one)) = with_chromium() else {
        return;
    };
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("webrtc-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let tls_port = free_port().to_string();
    let (_proxy, webrtc) = proxy_with_webrtc(&[
        "--webrtc-https",
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
        "--tls-port",
        &tls_port,
        "--demo",
    ]);
    let (reports, report_url) = Reports::start();
    let _browser = open_with(
        chromium,
        &format!("https://{webrtc}/demo/#report={report_url}"),
        &["--ignore-certificate-errors"],
    );
    reports.wait(
        "50 frames decoded over HTTPS",
        Duration::from_secs(60),
        |v| frames(v) >= 50,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends SIGTERM; returns when.
fn sigterm(proxy: &Proxy) -> Instant {
    let sent = Instant::now();
    proxy.proc.signal(Signal::Term).expect("SIGTERM");
    sent
}

/// Waits (15 s at most) until `/readyz` on `admin` says 503.
fn wait_not_ready(admin: SocketAddr) {
    wait_for("/readyz 503", Duration::from_secs(15), || {
        http_get(admin, "/readyz", Duration::from_secs(5)).is_ok_and(|(s, _)| s == 503)
    });
}

/// During a drain a WHEP POST is refused with 503 (the proxy is not ready),
/// and a viewer that was there keeps the drain going (it counts as a client:
/// without one the drain ends at once) until the drain timeout. The viewer
/// here never does ICE (it would be freed after the 15 s handshake timeout,
/// longer than the drain), so no browser is needed.
#[test]
fn a_drain_refuses_new_viewers_and_waits_for_the_ones_there() {
    const DRAIN: Duration = Duration::from_secs(4);
    let (proxy, webrtc, admin) = proxy_with_webrtc_and_admin(&["--drain-timeout", "4", "--demo"]);
    let offer = client_offer();
    let (status, _, body) = http(webrtc, "POST", "/demo/whep", "application/sdp", &offer);
    assert_eq!(status, 201, "{body}");

    let sent = sigterm(&proxy);
    wait_not_ready(admin);
    let (status, _, body) = http(webrtc, "POST", "/demo/whep", "application/sdp", &offer);
    assert_eq!(status, 503, "a new viewer while draining: {body}");
    assert!(body.contains("draining"), "{body}");
    proxy
        .proc
        .wait_for_line("1 WebRTC viewer(s) go on", Duration::from_secs(5))
        .expect("the drain counts the viewer");

    let status = proxy
        .proc
        .wait_timeout(DRAIN + Duration::from_secs(15))
        .expect("exits after the drain");
    let exited = sent.elapsed();
    eprintln!("[webrtc] exited {exited:?} after SIGTERM (drain timeout {DRAIN:?})");
    assert!(status.success(), "{status:?}");
    assert!(
        exited >= DRAIN,
        "the drain waited for the viewer: exited after {exited:?}"
    );
}

/// A browser that plays goes on playing during the drain (new offers get
/// 503), and its session ends when the drain timeout is over: the proxy
/// exits 0 within the timeout + 2 s.
#[test]
fn a_browser_plays_on_during_a_drain() {
    let Some((chromium, _one)) = with_chromium() else {
        return;
    };
    const DRAIN: Duration = Duration::from_secs(6);
    let (proxy, webrtc, admin) = proxy_with_webrtc_and_admin(&["--drain-timeout", "6", "--demo"]);
    let (reports, report_url) = Reports::start();
    let _browser = open(
        chromium,
        &format!("http://{webrtc}/demo/#report={report_url}"),
    );
    reports.wait("50 frames decoded", Duration::from_secs(60), |v| {
        frames(v) >= 50
    });

    let sent = sigterm(&proxy);
    wait_not_ready(admin);
    let (status, _, body) = http(
        webrtc,
        "POST",
        "/demo/whep",
        "application/sdp",
        &client_offer(),
    );
    assert_eq!(status, 503, "a new viewer while draining: {body}");
    let at_signal = frames(&reports.last().expect("a report"));
    // 25 frames per second; the page reports once a second.
    let during = reports.wait(
        "frames decoded during the drain",
        DRAIN - Duration::from_secs(1),
        |v| frames(v) >= at_signal + 40,
    );
    assert_eq!(during["state"], "playing", "{}", strip_shot(&during));
    assert!(proxy.proc.try_wait().is_none(), "still draining");

    let status = proxy
        .proc
        .wait_timeout(DRAIN + Duration::from_secs(15))
        .expect("exits after the drain");
    let exited = sent.elapsed();
    eprintln!(
        "[webrtc] browser: {at_signal} frames at SIGTERM, {} during the drain; exited {exited:?} after SIGTERM",
        frames(&during)
    );
    assert!(status.success(), "{status:?}");
    assert!(
        exited >= DRAIN && exited <= DRAIN + Duration::from_secs(2),
        "exited after {exited:?}, the drain timeout being {DRAIN:?}"
    );
}

/// WHEP with a real client (str0m, as a browser would be): a real offer
/// POSTed, media received (RTP packets decrypted from SRTP), a trickled
/// candidate PATCHed (204) with media going on, DELETE: the viewer count
/// drops and media stops; and a session that never completes ICE (another
/// real offer, never followed by a STUN check) is freed after the 15 s
/// handshake timeout.
#[test]
fn a_str0m_client_plays_trickles_and_deletes() {
    let (_proxy, webrtc, admin) = proxy_with_webrtc_and_admin(&["--demo"]);
    let idle = whep::WhepClient::new();
    let (status, _, body) = http(
        webrtc,
        "POST",
        "/demo/whep",
        "application/sdp",
        idle.offer(),
    );
    assert_eq!(status, 201, "{body}");
    let idle_posted = Instant::now();

    let mut client = whep::WhepClient::new();
    let posted = Instant::now();
    let (status, head, answer) = http(
        webrtc,
        "POST",
        "/demo/whep",
        "application/sdp",
        client.offer(),
    );
    assert_eq!(status, 201, "{head}\n{answer}");
    let location = header(&head, "location").expect("Location").to_owned();
    client.accept(&answer).expect("the answer");
    client
        .run_until(Duration::from_secs(30), |c| c.rtp_packets >= 100)
        .expect("100 RTP packets");
    let connected = client.connected_at.expect("connected") - posted;
    eprintln!(
        "[webrtc] str0m client: connected {connected:?} after the POST, 100 RTP packets ({} bytes, payload types {:?}) {:?} after it",
        client.rtp_bytes,
        client.payload_types,
        posted.elapsed()
    );
    assert_eq!(webrtc_clients(admin, "demo"), 2);

    let (status, _, body) = http(
        webrtc,
        "PATCH",
        &location,
        "application/trickle-ice-sdpfrag",
        client.candidate_fragment(),
    );
    assert_eq!(status, 204, "{body}");
    let before = client.rtp_packets;
    client
        .run_until(Duration::from_secs(20), |c| c.rtp_packets >= before + 50)
        .expect("media goes on after the PATCH");

    let (status, _, _) = http(webrtc, "DELETE", &location, "", "");
    assert_eq!(status, 200);
    wait_for("the deleted viewer gone", Duration::from_secs(10), || {
        webrtc_clients(admin, "demo") == 1
    });
    // What was on the way arrives; then nothing.
    let _ = client.run_until(Duration::from_millis(500), |_| false);
    let after_delete = client.rtp_packets;
    let _ = client.run_until(Duration::from_secs(1), |_| false);
    assert_eq!(client.rtp_packets, after_delete, "RTP after the DELETE");

    wait_for(
        "the session without ICE freed",
        Duration::from_secs(30),
        || webrtc_clients(admin, "demo") == 0,
    );
    let freed = idle_posted.elapsed();
    eprintln!("[webrtc] the session without ICE was freed {freed:?} after its POST");
    assert!(freed >= Duration::from_secs(14), "freed after {freed:?}");
}

/// Waits until `expr` evaluated in `page` satisfies `pred`; its last value.
fn wait_js(
    page: &mut cdp::Page,
    what: &str,
    timeout: Duration,
    expr: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let v = page.eval(expr).unwrap_or_else(|e| panic!("{what}: {e}"));
        if pred(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?}; last: {v}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// The admin dashboard's live preview, clicked in Chromium (driven over the
/// DevTools protocol): an inline video plays the path over WHEP from the
/// WebRTC port (another origin; with `-C` users set, the admin token opens
/// it as a Bearer token), one preview per path, kept across the page's
/// refreshes; "close" deletes the session and the path's WebRTC viewer count
/// goes back to 0.
#[test]
fn the_dashboard_previews_a_path() {
    let Some((chromium, _one)) = with_chromium() else {
        return;
    };
    const TOKEN: &str = "adm1n-t0ken";
    let (_proxy, _webrtc, admin) =
        proxy_with_webrtc_and_admin(&["--admin-token", TOKEN, "-C", "viewer", "s3cret", "--demo"]);
    let viewers = || webrtc_clients_as(admin, "demo", Some(TOKEN));
    let browser = open_with(
        chromium,
        &format!("http://{admin}/#token={TOKEN}"),
        &["--remote-debugging-port=0", "--window-size=1200,900"],
    );
    let line = browser
        .proc
        .as_ref()
        .expect("chromium")
        .wait_for_line("DevTools listening on", Duration::from_secs(30))
        .expect("the DevTools port");
    let devtools = cdp::devtools_addr(&line).expect("the DevTools address");
    let mut page = cdp::Page::connect(devtools, Duration::from_secs(30)).expect("DevTools");

    const BUTTON: &str =
        r#"document.querySelector('#paths > .path[data-name="demo"] button.preview')"#;
    const STATE: &str = r#"(() => {
        const boxes = document.querySelectorAll('#paths > .path[data-name="demo"] .pv-box');
        const b = boxes[0];
        return { boxes: boxes.length, state: b ? b.dataset.state || '' : '',
                 text: b ? b.querySelector('.pv-state').textContent : '',
                 frames: b ? Number(b.dataset.frames || 0) : 0,
                 disabled: !!(document.querySelector('#paths > .path[data-name="demo"] button.preview') || {}).disabled,
                 same: !!b && b.querySelector('video') === window.firstVideo };
    })()"#;
    wait_js(
        &mut page,
        "the preview button",
        Duration::from_secs(30),
        &format!("!!{BUTTON}"),
        |v| v == true,
    );
    assert_eq!(viewers(), 0);
    let clicked = Instant::now();
    page.eval(&format!("{BUTTON}.click()")).expect("click");
    let v = wait_js(
        &mut page,
        "frames decoded",
        Duration::from_secs(60),
        STATE,
        |v| v["frames"].as_u64().unwrap_or(0) >= 10,
    );
    let first_frames = clicked.elapsed();
    assert_eq!(v["state"], "playing", "{v}");
    assert_eq!(v["boxes"], 1, "{v}");
    assert_eq!(v["disabled"], true, "one preview per path: {v}");
    page.eval("window.firstVideo = document.querySelector('.pv-box video'), true")
        .expect("eval");
    assert_eq!(viewers(), 1);
    // A second click (the button is disabled) adds nothing.
    page.eval(&format!("{BUTTON}.click(), true"))
        .expect("click");
    // The page redraws every 2 s: the same video plays on across redraws.
    let at = v["frames"].as_u64().unwrap_or(0);
    let v = wait_js(
        &mut page,
        "frames decoded across the page's refreshes",
        Duration::from_secs(30),
        STATE,
        |v| v["frames"].as_u64().unwrap_or(0) >= at + 100,
    );
    assert_eq!(v["same"], true, "the preview survived the redraws: {v}");
    assert_eq!(v["boxes"], 1, "{v}");
    assert_eq!(viewers(), 1, "one WHEP session");
    let shot = page
        .call(
            "Page.captureScreenshot",
            serde_json::json!({"format": "png"}),
        )
        .expect("screenshot");
    if let Some(png) = shot["data"]
        .as_str()
        .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
    {
        let path = logs_dir().join("admin-dashboard-preview.png");
        std::fs::write(&path, png).unwrap();
        eprintln!("[webrtc] dashboard preview screenshot: {}", path.display());
    }

    let closing = Instant::now();
    page.eval("document.querySelector('.pv-box .pv-close').click(), true")
        .expect("close");
    wait_for(
        "the preview's session deleted",
        Duration::from_secs(15),
        || viewers() == 0,
    );
    eprintln!(
        "[webrtc] dashboard preview: 10 frames decoded {first_frames:?} after the click, {} in all; viewer count 0 {:?} after close",
        v["frames"],
        closing.elapsed()
    );
    let v = page.eval(STATE).expect("state");
    assert_eq!(v["boxes"], 0, "{v}");
    assert_eq!(v["disabled"], false, "the button is back: {v}");
}
