//! End-to-end regression tests of what hostile peers could do to the proxy's logs
//! and its process limits: forged log lines from a back end, colour codes in log
//! files, passwords in the start-up banner, the descriptor limit, credentials on
//! a redirect, session-table lockout, RTCP floods, connection slots, stalled
//! readers, and sessions and tunnels driven from another address.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// A back end that answers every request with a 200 whose body carries a bare
/// newline and an ANSI escape (a forged log line). (The same in a header is
/// already refused by the parser as a malformed header line.)
fn forging_back_end() -> (u16, thread::JoinHandle<()>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let handle = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(4);
        while Instant::now() < deadline {
            let Ok((stream, _)) = listener.accept() else {
                thread::sleep(Duration::from_millis(20));
                continue;
            };
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut writer = stream;
            loop {
                let mut cseq = String::from("1");
                let mut line = String::new();
                let mut got = false;
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => got = true,
                    }
                    if let Some(v) = line.strip_prefix("CSeq:") {
                        cseq = v.trim().to_owned();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                if !got {
                    break;
                }
                let body = "v=0\nFORGED-BODY  WARN the camera says hi\x1b[2J\r\n";
                let resp = format!(
                    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nX-Note: FORGED-HEADER\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if writer.write_all(resp.as_bytes()).is_err() {
                    break;
                }
            }
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
        }
    });
    (port, handle)
}

#[test]
fn a_back_end_cannot_forge_log_lines_or_colour_the_log() {
    let (port, back_end) = forging_back_end();
    let url = format!("rtsp://127.0.0.1:{port}/cam");
    let proxy = Proxy::start(&["-V", &url]);
    proxy
        .proc
        .wait_for_line("FORGED-BODY", Duration::from_secs(10))
        .expect("the response was logged at -V");
    thread::sleep(Duration::from_millis(300));
    drop(proxy.proc.signal(Signal::Term));
    let _ = back_end.join();
    let lines = proxy.proc.lines();
    let forged: Vec<&String> = lines.iter().filter(|l| l.contains("FORGED")).collect();
    assert!(!forged.is_empty());
    for l in &forged {
        assert!(
            l.trim_start_matches("[err] ").starts_with("  | "),
            "a back end's text stays inside its indented block: {l:?}"
        );
    }
    assert!(
        forged.iter().any(|l| l.contains("v=0\\nFORGED-BODY")),
        "a bare newline is shown escaped, on its line: {forged:?}"
    );
    assert!(
        forged.iter().any(|l| l.contains("hi\\u{1b}[2J")),
        "an escape character is shown escaped: {forged:?}"
    );
    assert!(
        lines.iter().all(|l| !l.contains('\x1b')),
        "no escape character reaches a log that is not a terminal"
    );
}

#[test]
fn passwords_with_quotes_or_slashes_never_reach_the_banner() {
    let port = free_port();
    for url in [
        format!("rtsp://user:it'sS3cret@127.0.0.1:{port}/x"),
        format!("rtsp://user:a\"S3cret\"b@127.0.0.1:{port}/x"),
        format!("rtsp://user:pa/S3cret@127.0.0.1:{port}/x"),
        format!("rtsp://user:<S3cret>@127.0.0.1:{port}/x"),
    ] {
        let proxy = Proxy::start(&["-v", &url]);
        thread::sleep(Duration::from_millis(300));
        let log = proxy.proc.lines().join("\n");
        assert!(log.contains("proxying the stream"), "{log}");
        assert!(!log.contains("S3cret"), "{url}: {log}");
    }
}

#[test]
fn the_descriptor_limit_is_raised_to_the_hard_limit() {
    let proxy = Proxy::start(&["--demo"]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", proxy.proc.pid()))
        .expect("/proc/<pid>/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a descriptor limit");
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers.len(), 2, "{line}");
    assert_eq!(numbers[0], numbers[1], "soft = hard: {line}");
}

/// A one-shot RTSP responder on loopback: answers every request with `answer`
/// (CSeq echoed) and returns every request it read, until `for_how_long`.
fn responder(
    answer: &'static str,
    for_how_long: Duration,
) -> (u16, thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let handle = thread::spawn(move || {
        let deadline = Instant::now() + for_how_long;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            let Ok((stream, _)) = listener.accept() else {
                thread::sleep(Duration::from_millis(20));
                continue;
            };
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut writer = stream;
            loop {
                let mut request = String::new();
                let mut cseq = String::from("1");
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    if let Some(v) = line.strip_prefix("CSeq:") {
                        cseq = v.trim().to_owned();
                    }
                    request.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                }
                if request.is_empty() {
                    break;
                }
                seen.push(request);
                let resp = answer.replace("{cseq}", &cseq);
                if writer.write_all(resp.as_bytes()).is_err() {
                    break;
                }
            }
        }
        seen
    });
    (port, handle)
}

#[test]
fn credentials_do_not_follow_a_redirect_to_another_host() {
    // The other host (by name: "localhost" is not "127.0.0.1") asks for
    // credentials, Basic and Digest.
    let (other, other_seen) = responder(
        "RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\nWWW-Authenticate: Basic realm=\"x\"\r\nWWW-Authenticate: Digest realm=\"x\", nonce=\"abc\"\r\nContent-Length: 0\r\n\r\n",
        Duration::from_secs(4),
    );
    let location: &'static str = Box::leak(
        format!(
            "RTSP/1.0 302 Moved\r\nCSeq: {{cseq}}\r\nLocation: rtsp://localhost:{other}/moved\r\nContent-Length: 0\r\n\r\n"
        )
        .into_boxed_str(),
    );
    let (first, _first_seen) = responder(location, Duration::from_secs(4));
    let proxy = Proxy::start(&[
        "-v",
        "-u",
        "op",
        "dash-u-secret",
        &format!("rtsp://admin:url-secret@127.0.0.1:{first}/cam"),
    ]);
    proxy
        .proc
        .wait_for_line("are not sent there", Duration::from_secs(10))
        .expect("the redirect is logged");
    let seen = other_seen.join().expect("responder");
    assert!(!seen.is_empty(), "the proxy followed the redirect");
    for request in &seen {
        assert!(
            !request.to_ascii_lowercase().contains("authorization"),
            "no credentials for another host: {request}"
        );
    }
    let log = proxy.proc.lines().join("\n");
    assert!(!log.contains("secret"), "{log}");
}

/// Drains everything `stream` sends until it closes; returns how many `453`
/// answers it saw.
fn count_453(stream: std::net::TcpStream) -> thread::JoinHandle<usize> {
    thread::spawn(move || {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut all = Vec::new();
        let mut reader = stream;
        let mut buf = [0u8; 65536];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&all)
            .matches("RTSP/1.0 453")
            .count()
    })
}

#[test]
fn one_connection_s_pipelined_setups_do_not_lock_anyone_out() {
    let proxy = Proxy::start(&["--demo"]);
    let url = proxy.url("demo");
    let mut attacker = std::net::TcpStream::connect(proxy.addr()).expect("connect");
    let answers = count_453(attacker.try_clone().expect("clone"));
    let mut burst = String::new();
    for cseq in 1..=10_100 {
        burst.push_str(&format!(
            "SETUP {url}/track1 RTSP/1.0\r\nCSeq: {cseq}\r\nTransport: RTP/AVP;unicast;client_port=40000-40001\r\n\r\n"
        ));
    }
    attacker.write_all(burst.as_bytes()).expect("burst");
    // While the attacker is connected, and after it left, others play at once.
    let streams =
        ffprobe_streams(&url, "udp", Duration::from_secs(20)).expect("a viewer plays beside it");
    assert_eq!(streams.len(), 1);
    drop(attacker);
    let refused = answers.join().expect("reader");
    // Past its share the connection gets 453 (or, reading its answers slower
    // than it asks, is closed once 256 answers wait unread).
    assert!(refused > 0, "past its share the connection gets 453");
    let streams = ffprobe_streams(&url, "tcp", Duration::from_secs(20)).expect("and after it left");
    assert_eq!(streams.len(), 1);
}

#[test]
fn a_flood_of_interleaved_rtcp_does_not_stall_a_viewer() {
    let backend = Backend::start(BackendOpts::default());
    let proxy = Proxy::start(&[backend.url()]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooders: Vec<_> = (0..3)
        .map(|_| {
            let addr = proxy.addr();
            let stop = stop.clone();
            thread::spawn(move || {
                let Ok(mut s) = std::net::TcpStream::connect(addr) else {
                    return 0u64;
                };
                let frame = b"$\x01\x00\x00".repeat(4096);
                let mut sent = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if s.write_all(&frame).is_err() {
                        break;
                    }
                    sent += 4096;
                }
                sent
            })
        })
        .collect();
    let report = retina_play(
        &proxy.url("proxyStream"),
        RetinaTransport::Udp,
        Duration::from_secs(4),
    )
    .expect("the viewer plays");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let frames: u64 = flooders.into_iter().map(|f| f.join().unwrap_or(0)).sum();
    assert!(frames > 10_000, "the flood ran ({frames} frames)");
    report
        .check_clean(0.5)
        .expect("no loss, no error while the flood ran");
}

#[test]
fn one_address_cannot_take_every_connection() {
    let proxy = Proxy::start(&["--demo", "--max-connections-per-address", "20"]);
    let idle: Vec<std::net::TcpStream> = (0..20)
        .map(|_| std::net::TcpStream::connect(proxy.addr()).expect("connect"))
        .collect();
    // Wait until the proxy has accepted them all.
    thread::sleep(Duration::from_millis(300));
    // The next one from this address is closed at once...
    let mut extra = std::net::TcpStream::connect(proxy.addr()).expect("connect");
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = extra.write_all(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n");
    let mut buf = [0u8; 256];
    let n = extra.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "refused: {:?}", String::from_utf8_lossy(&buf[..n]));
    // ...while another address (here ::1) is served.
    let url = format!("rtsp://[::1]:{}/demo", proxy.port());
    let streams = ffprobe_streams(&url, "tcp", Duration::from_secs(20)).expect("::1 plays");
    assert_eq!(streams.len(), 1);
    // Slots come back when connections close.
    drop(idle);
    thread::sleep(Duration::from_millis(300));
    let streams = ffprobe_streams(&proxy.url("demo"), "tcp", Duration::from_secs(20))
        .expect("127.0.0.1 plays again");
    assert_eq!(streams.len(), 1);
    assert!(proxy
        .proc
        .lines()
        .iter()
        .any(|l| l.contains("connections from this address are open")));
}

#[test]
fn stalled_readers_of_big_packets_hold_a_bounded_amount_of_memory() {
    let bench = std::path::Path::new(Proxy::binary()).with_file_name("rtsp-bench");
    if !bench.exists() {
        eprintln!("SKIPPED: {} not built", bench.display());
        return;
    }
    let port = free_port();
    let mut cmd = std::process::Command::new(&bench);
    cmd.args(["source", "--port", &port.to_string()]).args([
        "--packet-size",
        "60000",
        "--bitrate",
        "24000000",
        "--fps",
        "25",
    ]);
    let source = Proc::spawn("source", &mut cmd).expect("source");
    source
        .wait_for_line("rtsp-bench source:", Duration::from_secs(10))
        .expect("source listening");
    // The back end over UDP: 60 KB datagrams into the receive chunks.
    let proxy = Proxy::start(&[&format!("rtsp://127.0.0.1:{port}/stream")]);
    let url = proxy.url("proxyStream");
    ffprobe_streams(&url, "tcp", Duration::from_secs(20)).expect("plays");
    thread::sleep(Duration::from_secs(2));
    let before = rss_mib(proxy.proc.pid());
    // Five clients that PLAY over TCP and then never read again.
    let stalled: Vec<std::net::TcpStream> = (0..5)
        .map(|_| play_interleaved(proxy.addr(), &url))
        .collect();
    // And one that reads 64 KiB a second, far too slow for 24 Mbit/s, but not
    // stalled: its queue overflows and stays full, so it is closed 20 s later
    // (FALL_BEHIND_LIMIT), or by the write timeout (also 20 s) when the kernel,
    // which wakes a writer only once a third of its send buffer drained, kept
    // the writer waiting that long. Either way it cannot hold its queue of old
    // packets for ever. (The client itself sees the end only once it has read
    // what the kernel buffers hold.)
    let trickling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let trickler_played = Instant::now();
    let trickler = {
        let mut s = play_interleaved(proxy.addr(), &url);
        let trickling = trickling.clone();
        thread::spawn(move || {
            let mut chunk = vec![0u8; 64 * 1024];
            while trickling.load(std::sync::atomic::Ordering::Relaxed) {
                let second = Instant::now();
                let mut got = 0;
                while got < 64 * 1024 {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got += n,
                    }
                }
                thread::sleep(Duration::from_secs(1).saturating_sub(second.elapsed()));
            }
        })
    };
    let mut peak = before;
    for _ in 0..10 {
        thread::sleep(Duration::from_secs(1));
        peak = peak.max(rss_mib(proxy.proc.pid()));
    }
    eprintln!("[e2e] RSS {before:.1} MiB before, {peak:.1} MiB at most with 5 stalled readers of 60 KB packets");
    // Each stalled connection queues at most 8 MiB of packets, and the five
    // queues hold the same packets (one shared buffer per packet): measured
    // about +12 MiB, where the unbounded queues of old grew past 160 MiB.
    assert!(
        peak - before < 60.0,
        "RSS grew from {before:.1} to {peak:.1} MiB"
    );
    // A reader that reads is served meanwhile.
    ffprobe_streams(&url, "tcp", Duration::from_secs(20)).expect("still plays");
    proxy
        .proc
        .wait_where(
            "the trickling reader's closure",
            1,
            Duration::from_secs(40),
            |l| {
                l.contains("client connection closed: it did not keep up")
                    || l.contains("client connection closed: it read nothing for 20 s")
            },
        )
        .expect("the trickling reader is closed, and it is logged");
    let closed_after = trickler_played.elapsed();
    eprintln!("[e2e] the trickling reader was closed within {closed_after:?}");
    assert!(
        closed_after >= Duration::from_secs(20),
        "closed for falling behind only after 20 s ({closed_after:?})"
    );
    trickling.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = trickler.join();
    drop(stalled);
}

/// The status code of the first response line in `head` ("RTSP/1.0 454 ..." or
/// "HTTP/1.0 403 ...").
fn status_of(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"))
}

/// Reads until the peer closes (or 5 s pass) and returns what came.
fn read_until_closed(s: &mut std::net::TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Finding 9, end to end: a session and an HTTP tunnel belong to the client
/// address that opened them. Loopback gives two addresses, 127.0.0.1 and ::1,
/// which the proxy's dual-stack listener sees as two clients.
#[test]
fn sessions_and_tunnels_answer_only_the_address_that_opened_them() {
    use base64::Engine as _;
    let proxy = Proxy::start(&["--demo"]);
    let url = proxy.url("demo");
    let v6 = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, proxy.port()));

    // A session set up from 127.0.0.1 ...
    let (mut owner, head) = set_up_interleaved(proxy.addr(), &url);
    assert_eq!(status_of(&head), 200, "{head}");
    let session = session_of(&head);
    // ... is not driven from ::1, not even with its id: 454 to PLAY, PAUSE,
    // SETUP into it and TEARDOWN.
    let mut other = std::net::TcpStream::connect(v6).expect("connect ::1");
    other
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    for (cseq, req) in [
        (1, format!("PLAY {url} RTSP/1.0\r\nCSeq: 1\r\nSession: {session}\r\n\r\n")),
        (2, format!("PAUSE {url} RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n")),
        (3, format!("SETUP {url}/track1 RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\r\n\r\n")),
        (4, format!("TEARDOWN {url} RTSP/1.0\r\nCSeq: 4\r\nSession: {session}\r\n\r\n")),
    ] {
        let head = ask(&mut other, &req);
        assert_eq!(status_of(&head), 454, "request {cseq} from ::1: {head}");
    }
    // The owner still plays it.
    let head = ask(
        &mut owner,
        &format!("PLAY {url} RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n"),
    );
    assert_eq!(status_of(&head), 200, "{head}");
    // Said once (four refusals within 10 s), with the option that allows it.
    assert_eq!(
        proxy.proc.count_lines_settled(
            "for a session another address created: 454 (--sessions-from-any-address",
            1,
        ),
        1,
        "the refusals are logged once"
    );
    drop(owner);

    // An HTTP tunnel opened from 127.0.0.1 (the GET half) ...
    let cookie = "hardening0cookie";
    let mut get = std::net::TcpStream::connect(proxy.addr()).expect("connect");
    get.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let get_req = format!(
        "GET /demo HTTP/1.0\r\nx-sessioncookie: {cookie}\r\nAccept: application/x-rtsp-tunnelled\r\n\r\n"
    );
    let head = ask(&mut get, &get_req);
    assert_eq!(status_of(&head), 200, "{head}");
    let post_head = format!(
        "POST /demo HTTP/1.0\r\nx-sessioncookie: {cookie}\r\nContent-Type: application/x-rtsp-tunnelled\r\nContent-Length: 32767\r\n\r\n"
    );
    let options = base64::engine::general_purpose::STANDARD
        .encode(format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 7\r\n\r\n"));
    // ... takes no POST from ::1 (403, closed) ...
    let mut intruder = std::net::TcpStream::connect(v6).expect("connect ::1");
    intruder
        .write_all(format!("{post_head}{options}").as_bytes())
        .expect("write");
    let answer = read_until_closed(&mut intruder);
    assert_eq!(status_of(&answer), 403, "POST from ::1: {answer:?}");
    proxy
        .proc
        .wait_for_line(
            "HTTP tunnel POST from another address than its GET: 403",
            Duration::from_secs(5),
        )
        .expect("the refused POST is logged");
    // ... and its cookie is not taken over by a second GET (403) ...
    let mut thief = std::net::TcpStream::connect(v6).expect("connect ::1");
    thief.write_all(get_req.as_bytes()).expect("write");
    let answer = read_until_closed(&mut thief);
    assert_eq!(status_of(&answer), 403, "second GET: {answer:?}");
    // ... while a POST from its own address speaks in it.
    let mut post = std::net::TcpStream::connect(proxy.addr()).expect("connect");
    post.write_all(format!("{post_head}{options}").as_bytes())
        .expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&buf).contains("CSeq: 7") {
        assert!(
            Instant::now() < deadline,
            "no OPTIONS answer in the tunnel: {:?}",
            String::from_utf8_lossy(&buf)
        );
        let n = get.read(&mut chunk).expect("read the GET half");
        assert!(n > 0, "GET half closed");
        buf.extend_from_slice(&chunk[..n]);
    }
    assert!(String::from_utf8_lossy(&buf).starts_with("RTSP/1.0 200"));
    drop(post);
}
