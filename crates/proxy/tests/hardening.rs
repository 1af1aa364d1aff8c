//! End-to-end regression tests of what hostile peers could do to the proxy's logs
//! and its process limits: forged log lines from a back end, colour codes in log
//! files, passwords in the start-up banner, the descriptor limit.

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
