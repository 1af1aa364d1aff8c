//! End-to-end tests of running the proxy for real: the systemd unit, the manual
//! (`--help`, `--man`), JSON logs with one line per state change of a path,
//! SIGHUP, and a chain of three proxies (origin, middle, edge) that keeps its
//! clients through a restart of the origin.

mod support;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

const RUN: Duration = Duration::from_secs(20);

#[test]
fn systemd_unit_is_hardened_and_verifies() {
    let unit = std::fs::read_to_string(repo_file("packaging/systemd/rtsp-proxy.service"))
        .expect("packaging/systemd/rtsp-proxy.service");
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for wanted in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
        "LimitNOFILE=65536",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "StandardError=journal",
        "EnvironmentFile=-/etc/default/rtsp-proxy",
        "ExecStart=/usr/bin/rtsp-proxy --config /etc/rtsp-proxy/rtsp-proxy.toml $RTSP_PROXY_ARGS",
        "TimeoutStopSec=40",
    ] {
        assert!(lines.contains(&wanted), "the unit has {wanted}");
    }
    let default = std::fs::read_to_string(repo_file("packaging/systemd/rtsp-proxy.default"))
        .expect("packaging/systemd/rtsp-proxy.default");
    let args = default
        .lines()
        .find_map(|l| l.strip_prefix("RTSP_PROXY_ARGS="))
        .expect("RTSP_PROXY_ARGS");
    // The shipped configuration (no stream, extra arguments none) starts and
    // says what it waits for; on free ports instead of 554 and 9997.
    let example = repo_file("packaging/config/rtsp-proxy.toml");
    let admin = format!("127.0.0.1:{}", free_port());
    let mut words = vec!["--config", example.to_str().unwrap(), "--admin", &admin];
    words.extend(args.split_whitespace());
    let proxy = Proxy::start_until(&words, "No stream yet: add a [paths.NAME] table to");
    assert!(proxy.proc.try_wait().is_none());
    drop(proxy);

    if !have("systemd-analyze") {
        eprintln!("SKIPPED: systemd-analyze verify (install systemd to run it)");
        return;
    }
    // verify wants the binary of ExecStart= and the man page of
    // Documentation= to exist: point them at the build and at doc/.
    let dir = scratch_dir("systemd-unit");
    let copy = unit.replace("/usr/bin/rtsp-proxy", Proxy::binary());
    std::fs::write(dir.join("rtsp-proxy.service"), copy).expect("write unit");
    let man1 = dir.join("man/man1");
    std::fs::create_dir_all(&man1).expect("man dir");
    std::fs::copy(repo_file("doc/rtsp-proxy.1"), man1.join("rtsp-proxy.1")).expect("man page");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.join("rtsp-proxy.service"))
        .env("MANPATH", dir.join("man"))
        .output()
        .expect("systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("systemd-analyze verify: {}\n{stderr}", out.status);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    assert!(stderr.trim().is_empty(), "no warning: {stderr}");
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(dir.join("rtsp-proxy.service"))
        .output();
    if let Ok(s) = security {
        let text = String::from_utf8_lossy(&s.stdout);
        if let Some(line) = text.lines().find(|l| l.contains("Overall exposure level")) {
            eprintln!("measured: {}", line.trim());
        }
    }
}

#[test]
fn help_and_man_page_come_from_the_binary() {
    let help = Command::new(Proxy::binary())
        .arg("--help")
        .output()
        .expect("--help");
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.starts_with("NAME\n    rtsp-proxy - "), "{text}");
    for section in [
        "SYNOPSIS",
        "OPTIONS",
        "SIGNALS",
        "EXIT STATUS",
        "EXAMPLES",
        "SEE ALSO",
    ] {
        assert!(text.contains(&format!("\n{section}\n")), "{section}");
    }
    let man = Command::new(Proxy::binary())
        .arg("--man")
        .output()
        .expect("--man");
    assert!(man.status.success());
    let committed = std::fs::read(repo_file("doc/rtsp-proxy.1")).expect("doc/rtsp-proxy.1");
    assert!(
        man.stdout == committed,
        "doc/rtsp-proxy.1 is stale: cargo run -q -p rtsp-proxy -- --man > doc/rtsp-proxy.1"
    );
    // A usage error still starts with live555's usage line, on stderr, status 1.
    let bad = Command::new(Proxy::binary())
        .arg("-x")
        .output()
        .expect("-x");
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.starts_with("Unknown option \"-x\"\nUsage: rtsp-proxy [-v|-V]"),
        "{stderr}"
    );

    if !have("man") {
        eprintln!("SKIPPED: rendering with man -l (install man-db)");
        return;
    }
    let rendered = Command::new("man")
        .args(["-l", "--warnings"])
        .arg(repo_file("doc/rtsp-proxy.1"))
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_FORMATTING", "")
        .output()
        .expect("man -l");
    let page = String::from_utf8_lossy(&rendered.stdout);
    let warnings = String::from_utf8_lossy(&rendered.stderr);
    assert!(rendered.status.success(), "man -l: {warnings}");
    assert!(warnings.trim().is_empty(), "groff warnings: {warnings}");
    assert!(
        page.contains("SYNOPSIS") && page.contains("--log-format"),
        "{page}"
    );
}

/// The banner that live555 compatibility keeps as plain text on stderr.
fn is_banner(line: &str) -> bool {
    line.is_empty()
        || line.starts_with("rtsp-proxy ")
        || line.starts_with("RTSP stream, proxying the stream")
        || line.starts_with("\tPlay this stream using the URL")
        || line.starts_with("Built-in demo stream")
        || line.starts_with('(')
}

/// The `state` of every "path state changed" JSON line of `stream`, in order.
fn json_states(lines: &[String], stream: &str) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "path state changed" && v["stream"] == stream)
        .filter_map(|v| v["state"].as_str().map(str::to_owned))
        .collect()
}

fn wait_for_state(proxy: &Proxy, state: &str, count: usize) {
    let needle = format!("\"state\":\"{state}\"");
    proxy
        .proc
        .wait_for_count(&needle, count, RUN)
        .unwrap_or_else(|e| panic!("state {state} x{count}: {e}"));
}

#[test]
fn json_logs_one_object_per_line_and_one_line_per_state_change() {
    let backend = Backend::start(BackendOpts::codecs("h264"));
    let proxy = Proxy::start(&[
        "--log-format",
        "json",
        "-v",
        "--linger",
        "0.5",
        backend.url(),
    ]);
    let url = proxy.url("proxyStream");
    retina_play(&url, RetinaTransport::Tcp, Duration::from_secs(2))
        .expect("first client")
        .check_clean(1.0)
        .expect("clean");
    wait_for_state(&proxy, "paused", 1);
    retina_play(&url, RetinaTransport::Udp, Duration::from_secs(2))
        .expect("second client")
        .check_clean(1.0)
        .expect("clean");
    wait_for_state(&proxy, "resumed", 1);
    wait_for_state(&proxy, "paused", 2);
    let backend = backend.restart();
    wait_for_state(&proxy, "lost", 1);
    wait_for_state(&proxy, "back", 1);

    // SIGHUP (systemctl reload) does not stop the proxy.
    proxy.proc.signal(Signal::Hup).expect("SIGHUP");
    proxy
        .proc
        .wait_for_line("SIGHUP", Duration::from_secs(5))
        .expect("SIGHUP logged");
    assert!(
        proxy.proc.try_wait().is_none(),
        "still running after SIGHUP"
    );
    drop(backend);

    let lines = proxy.proc.lines();
    let mut objects = 0;
    for line in &lines {
        if line.starts_with('{') {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            for key in ["timestamp", "level", "message"] {
                assert!(v.get(key).is_some(), "{key} in {line}");
            }
            objects += 1;
        } else {
            assert!(is_banner(line), "a log line that is not JSON: {line:?}");
        }
    }
    let states = json_states(&lines, "proxyStream");
    eprintln!("measured: {objects} JSON log lines; states {states:?}");
    // In this order, each change once.
    let mut wanted = [
        "described",
        "playing",
        "paused",
        "resumed",
        "paused",
        "lost",
        "back",
    ]
    .iter();
    let mut next = wanted.next();
    for s in &states {
        if Some(&s.as_str()) == next {
            next = wanted.next();
        }
    }
    assert_eq!(next, None, "state changes in order: {states:?}");
    assert!(
        states.windows(2).all(|w| w[0] != w[1]),
        "one line per change: {states:?}"
    );
    let lost = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["state"] == "lost")
        .expect("lost");
    assert_eq!(lost["level"], "WARN");
    assert!(
        lost["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{lost}"
    );
    assert!(lost["backend"].as_str().is_some(), "{lost}");
}

/// The video RTP payloads a raw interleaved client saw, by hash, with the
/// time each first arrived.
fn capture_payloads(
    addr: SocketAddr,
    url: &str,
    duration: Duration,
) -> Result<HashMap<u64, Instant>, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    let setup = format!(
        "SETUP {url}/track1 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
    );
    s.write_all(setup.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf: Vec<u8> = Vec::new();
    let head = read_head(&mut s, &mut buf)?;
    let session = head
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .and_then(|v| v.split(';').next())
        .ok_or_else(|| format!("no session in {head}"))?
        .trim()
        .to_owned();
    let play = format!("PLAY {url} RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n");
    s.write_all(play.as_bytes()).map_err(|e| e.to_string())?;
    let head = read_head(&mut s, &mut buf)?;
    if !head.starts_with("RTSP/1.0 200") {
        return Err(format!("PLAY: {head}"));
    }
    let start = Instant::now();
    let mut seen = HashMap::new();
    let mut chunk = [0u8; 65536];
    while start.elapsed() < duration {
        match s.read(&mut chunk) {
            Ok(0) => return Err("closed".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(e.to_string()),
        }
        let now = Instant::now();
        while buf.len() >= 4 && buf[0] == b'$' {
            let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
            if buf.len() < 4 + len {
                break;
            }
            if buf[1] == 0 && len > 12 {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                buf[4 + 12..4 + len].hash(&mut h);
                seen.entry(h.finish()).or_insert(now);
            }
            buf.drain(..4 + len);
        }
    }
    Ok(seen)
}

fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return Ok(head);
        }
        if Instant::now() > deadline {
            return Err("no response".into());
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err("closed".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
    }
}

/// Median delay of the packets `later` saw after `earlier` (matched by payload).
fn median_delay(
    earlier: &HashMap<u64, Instant>,
    later: &HashMap<u64, Instant>,
) -> Option<Duration> {
    let mut delays: Vec<Duration> = later
        .iter()
        .filter_map(|(k, at)| Some(at.saturating_duration_since(*earlier.get(k)?)))
        .collect();
    delays.sort();
    delays.get(delays.len() / 2).copied()
}

#[test]
fn chain_of_three_proxies_keeps_its_clients_through_an_origin_restart() {
    let backend = Backend::start(BackendOpts::codecs("h264"));
    let origin_args = ["--reconnect-max", "1", backend.url()];
    let origin = Proxy::start(&origin_args);
    let origin_port = origin.port();
    let origin_url = origin.url("proxyStream");
    // Middle over UDP from the origin, edge over TCP from the middle.
    let middle = Proxy::start(&["-v", "--reconnect-max", "1", &origin_url]);
    let middle_url = middle.url("proxyStream");
    let edge = Proxy::start(&["-v", "-t", "--reconnect-max", "1", &middle_url]);
    let edge_url = edge.url("proxyStream");

    // Per hop: time to the first packet, and the delay of the same packets.
    for (hop, url) in [
        ("origin", &origin_url),
        ("middle", &middle_url),
        ("edge", &edge_url),
    ] {
        let report = retina_play(url, RetinaTransport::Tcp, Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("{hop}: {e}"));
        report
            .check_clean(1.0)
            .unwrap_or_else(|e| panic!("{hop}: {e}"));
        eprintln!(
            "measured: {hop}: DESCRIBE to PLAY response {:.0?}, first packet {:.0?} after PLAY",
            report.connect_took,
            report.first_packet_after_play().unwrap_or_default()
        );
    }
    let captures: Vec<_> = [
        (&origin, &origin_url),
        (&middle, &middle_url),
        (&edge, &edge_url),
    ]
    .into_iter()
    .map(|(p, u)| {
        let (addr, url) = (p.addr(), u.clone());
        thread::spawn(move || capture_payloads(addr, &url, Duration::from_secs(3)))
    })
    .collect();
    let seen: Vec<HashMap<u64, Instant>> = captures
        .into_iter()
        .map(|t| t.join().expect("thread").expect("capture"))
        .collect();
    let to_middle = median_delay(&seen[0], &seen[1]).expect("packets matched at the middle");
    let to_edge = median_delay(&seen[0], &seen[2]).expect("packets matched at the edge");
    eprintln!(
        "measured: median delay after the origin: middle {to_middle:.2?}, edge {to_edge:.2?} ({} / {} / {} packets)",
        seen[0].len(),
        seen[1].len(),
        seen[2].len()
    );
    assert!(to_edge < Duration::from_secs(1), "two hops add {to_edge:?}");

    // A client of the edge over the whole restart of the origin.
    let client_url = edge_url.clone();
    let client = thread::spawn(move || {
        retina_play(&client_url, RetinaTransport::Tcp, Duration::from_secs(16))
    });
    let gst_url = edge_url.clone();
    let gst = thread::spawn(move || {
        gst_play_media(&gst_url, "tcp", "video", 300, Duration::from_secs(40))
    });
    thread::sleep(Duration::from_secs(4));
    origin
        .proc
        .signal(Signal::Kill)
        .expect("SIGKILL the origin");
    drop(origin);
    let killed_at = Instant::now();
    thread::sleep(Duration::from_secs(2));
    let origin = Proxy::try_start_on(origin_port, &origin_args).expect("the origin restarts");
    assert_eq!(
        origin
            .announced_urls()
            .first()
            .map(|u| u.ends_with(&format!(":{origin_port}/proxyStream"))),
        Some(true),
        "on its port: {:?}",
        origin.announced_urls()
    );
    middle
        .proc
        .wait_for_line("state=back", RUN)
        .expect("the middle is back on the origin");
    eprintln!(
        "measured: middle back {:.2?} after the origin was killed",
        killed_at.elapsed()
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
        last > Duration::from_secs(14),
        "media until the end: {report}"
    );
    // The edge's keyframe cache starts the client with the packets since the
    // last keyframe (timestamps up to a GOP before PLAY, delivered at once), so
    // compare where the media clock ended with the wall clock: across the
    // outage the timestamps advanced by the time that passed.
    let media_end = video.last_elapsed_secs.expect("timestamps");
    let wall_end = last.as_secs_f64();
    eprintln!(
        "measured: edge client: last timestamp {media_end:+.2} s from the RTP-Info start, received {wall_end:.2} s after PLAY (first timestamp {:+.2} s)",
        video.first_elapsed_secs.unwrap_or_default()
    );
    assert!(
        (media_end - wall_end).abs() < 0.5,
        "timestamps follow the wall clock across the restart: {media_end:.2} s vs {wall_end:.2} s"
    );
    gst.join()
        .expect("thread")
        .expect("gstreamer keeps playing at the edge");
    // Only the middle saw the outage; the edge's back end (the middle) stayed up.
    assert!(middle.proc.count_lines_settled("state=lost", 1) >= 1);
    assert_eq!(
        edge.proc.count_lines("state=lost"),
        0,
        "the edge lost nothing"
    );
    assert_eq!(edge.proc.count_lines_settled("state=described", 1), 1);
    drop(origin);
}
