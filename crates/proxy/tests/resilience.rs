//! End-to-end tests of back-end resilience: cameras that die, freeze, start late
//! or change their tracks, with real clients connected through the proxy.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

const PROBE: Duration = Duration::from_secs(30);

/// One RTP packet as a client saw it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    at: Instant,
    ssrc: u32,
    seq: u16,
    ts: u32,
}

/// A minimal RTSP client: SETUP track1 interleaved, PLAY, then records the RTP
/// headers of channel 0 for `duration`. It keeps the session alive with
/// GET_PARAMETER and reports the session id it got.
fn capture_interleaved(
    addr: SocketAddr,
    url: &str,
    duration: Duration,
) -> Result<Vec<Seen>, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    let mut buf: Vec<u8> = Vec::new();
    let setup = format!("SETUP {url}/track1 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n");
    s.write_all(setup.as_bytes()).map_err(|e| e.to_string())?;
    let head = read_response(&mut s, &mut buf)?;
    if !head.starts_with("RTSP/1.0 200") {
        return Err(format!("SETUP failed: {head}"));
    }
    let session = head
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .and_then(|v| v.split(';').next())
        .ok_or("no session")?
        .trim()
        .to_string();
    s.write_all(format!("PLAY {url} RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut last_keepalive = Instant::now();
    let mut cseq = 3;
    let mut chunk = [0u8; 65536];
    while start.elapsed() < duration {
        if last_keepalive.elapsed() > Duration::from_secs(20) {
            let ka = format!(
                "GET_PARAMETER {url} RTSP/1.0\r\nCSeq: {cseq}\r\nSession: {session}\r\n\r\n"
            );
            s.write_all(ka.as_bytes()).map_err(|e| e.to_string())?;
            cseq += 1;
            last_keepalive = Instant::now();
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err(format!("connection closed after {:?}", start.elapsed())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                continue
            }
            Err(e) => return Err(e.to_string()),
        }
        loop {
            if buf.first() == Some(&b'$') {
                if buf.len() < 4 {
                    break;
                }
                let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
                if buf.len() < 4 + len {
                    break;
                }
                let ch = buf[1];
                let p = &buf[4..4 + len];
                if ch == 0 && p.len() >= 12 {
                    seen.push(Seen {
                        at: Instant::now(),
                        seq: u16::from_be_bytes([p[2], p[3]]),
                        ts: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
                        ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
                    });
                }
                buf.drain(..4 + len);
            } else if let Some(end) = find(&buf, b"\r\n\r\n") {
                // A response (PLAY, keep-alive): skip it.
                buf.drain(..end + 4);
            } else {
                break;
            }
        }
    }
    Ok(seen)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
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
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The longest silence in a capture, and when it ended.
fn longest_gap(seen: &[Seen]) -> (Duration, Instant) {
    let mut best = (
        Duration::ZERO,
        seen.first().map(|s| s.at).unwrap_or_else(Instant::now),
    );
    for w in seen.windows(2) {
        let gap = w[1].at.duration_since(w[0].at);
        if gap > best.0 {
            best = (gap, w[1].at);
        }
    }
    best
}

#[test]
fn camera_killed_and_back_five_seconds_later_is_invisible_to_clients_but_for_the_gap() {
    let backend = Backend::start(BackendOpts::default());
    let opts = backend.opts().clone();
    let proxy = Proxy::start(&[backend.url()]);
    let url = proxy.url("proxyStream");
    let addr = proxy.addr();

    let (u1, u2, u3, u4) = (url.clone(), url.clone(), url.clone(), url.clone());
    let raw = thread::spawn(move || capture_interleaved(addr, &u1, Duration::from_secs(22)));
    let ff_tcp = thread::spawn(move || ffmpeg_record(&u2, "tcp", 20));
    let ff_udp = thread::spawn(move || ffmpeg_record(&u3, "udp", 20));
    let gst =
        thread::spawn(move || gst_play_media(&u4, "tcp", "video", 350, Duration::from_secs(60)));

    thread::sleep(Duration::from_secs(5));
    backend
        .proc
        .signal(Signal::Kill)
        .expect("SIGKILL the back end");
    drop(backend);
    thread::sleep(Duration::from_secs(5));
    let backend = Backend::start(opts);
    let back_at = Instant::now();

    let seen = raw.join().expect("thread").expect("raw client");
    let rec_tcp = ff_tcp
        .join()
        .expect("thread")
        .expect("ffmpeg over tcp survives the outage");
    let rec_udp = ff_udp
        .join()
        .expect("thread")
        .expect("ffmpeg over udp survives the outage");
    gst.join()
        .expect("thread")
        .expect("gstreamer survives the outage");

    // The same SSRC before and after.
    let ssrcs: std::collections::BTreeSet<u32> = seen.iter().map(|s| s.ssrc).collect();
    assert_eq!(ssrcs.len(), 1, "clients see one SSRC: {ssrcs:x?}");
    // Sequence numbers go on by one (TCP on loopback loses nothing).
    for w in seen.windows(2) {
        assert_eq!(
            w[1].seq,
            w[0].seq.wrapping_add(1),
            "sequence continues by one: {:?} -> {:?}",
            w[0],
            w[1]
        );
    }
    // The silence is the outage, and media is back within 2 s of the back end.
    let (gap, resumed_at) = longest_gap(&seen);
    assert!(
        gap >= Duration::from_secs(4),
        "there was an outage: {gap:?}"
    );
    let late = resumed_at.saturating_duration_since(back_at);
    eprintln!(
        "measured: client silence {gap:?}; media back {late:?} after the back end listened again"
    );
    assert!(
        resumed_at > back_at && late <= Duration::from_secs(2),
        "media back {late:?} after the back end"
    );
    // Timestamps advance by the wall-clock time of the outage (90 kHz).
    let before = seen
        .iter()
        .rev()
        .find(|s| s.at < resumed_at)
        .expect("packets before");
    let after = seen
        .iter()
        .find(|s| s.at >= resumed_at)
        .expect("packets after");
    let ticks = after.ts.wrapping_sub(before.ts) as f64 / 90_000.0;
    let wall = after.at.duration_since(before.at).as_secs_f64();
    assert!(
        (ticks - wall).abs() < 0.5,
        "timestamp advance {ticks:.2} s vs wall clock {wall:.2} s"
    );

    for (name, rec) in [("tcp", &rec_tcp), ("udp", &rec_udp)] {
        assert!(!rec.non_monotonic_dts, "{name}: {}", rec.stderr);
        // 20 s of media with a ~7 s hole: well over 10 s of frames.
        assert!(
            rec.video_frames >= 250,
            "{name}: {} video frames",
            rec.video_frames
        );
        assert!(
            rec.audio_frames >= 300,
            "{name}: {} audio frames",
            rec.audio_frames
        );
    }
    proxy
        .proc
        .wait_for_line("state=back", Duration::from_secs(1))
        .expect("recovery logged");
    assert!(backend.connections() >= 1);
}

#[test]
fn frozen_camera_is_detected_and_recovered() {
    let backend = Backend::start(BackendOpts::codecs("h264"));
    let proxy = Proxy::start(&["-D", "3", "--response-timeout", "3", backend.url()]);
    let url = proxy.url("proxyStream");
    let addr = proxy.addr();
    let raw = thread::spawn(move || capture_interleaved(addr, &url, Duration::from_secs(20)));
    thread::sleep(Duration::from_secs(4));
    backend.proc.signal(Signal::Stop).expect("SIGSTOP");
    let stopped_at = Instant::now();
    proxy
        .proc
        .wait_for_line("no media for 3 s", Duration::from_secs(6))
        .expect("stall detected");
    let detected = stopped_at.elapsed();
    eprintln!("measured: frozen back end detected after {detected:?}");
    assert!(
        detected <= Duration::from_secs(5),
        "detected after {detected:?}"
    );
    thread::sleep(Duration::from_secs(3));
    backend.proc.signal(Signal::Cont).expect("SIGCONT");
    let resumed = Instant::now();
    let seen = raw.join().expect("thread").expect("client stays connected");
    let after: Vec<&Seen> = seen.iter().filter(|s| s.at > resumed).collect();
    assert!(
        after.len() > 100,
        "media flows again after SIGCONT: {} packets",
        after.len()
    );
    let ssrcs: std::collections::BTreeSet<u32> = seen.iter().map(|s| s.ssrc).collect();
    assert_eq!(ssrcs.len(), 1);
    assert!(backend.connections() >= 2, "the proxy reconnected");
}

#[test]
fn camera_down_at_start_up_becomes_playable_when_it_comes_up() {
    let port = free_port();
    let url = format!("rtsp://127.0.0.1:{port}/stream");
    let proxy = Proxy::start(&["--reconnect-max", "4", &url]);
    proxy
        .proc
        .wait_for_line("state=lost", Duration::from_secs(10))
        .expect("the failure is logged once");
    let early = ffprobe_streams(&proxy.url("proxyStream"), "tcp", PROBE);
    assert!(early.is_err(), "nothing to play yet");
    thread::sleep(Duration::from_secs(20));
    let _backend = Backend::start(BackendOpts {
        port: Some(port),
        ..BackendOpts::default()
    });
    let up = Instant::now();
    let mut last = String::new();
    while up.elapsed() < Duration::from_secs(15) {
        match ffprobe_streams(&proxy.url("proxyStream"), "tcp", PROBE) {
            Ok(s) => {
                assert_eq!(s.len(), 2);
                return;
            }
            Err(e) => last = e,
        }
        thread::sleep(Duration::from_millis(500));
    }
    panic!("still not playable 15 s after the back end came up: {last}");
}

#[test]
fn reconnect_attempts_follow_the_back_off_schedule() {
    // A "camera" that accepts connections and closes them at once: every
    // attempt of the proxy is counted.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("rtsp://127.0.0.1:{port}/cam");
    let _proxy = Proxy::start(&[&url]);
    let start = Instant::now();
    let mut attempts: Vec<f64> = Vec::new();
    while start.elapsed() < Duration::from_secs(60) {
        match listener.accept() {
            Ok((s, _)) => {
                attempts.push(start.elapsed().as_secs_f64());
                drop(s);
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
    // Schedule (defaults 1 s .. 30 s, jitter 75-100 %): ten 1 s retries, then
    // 2, 4, 8, 16, 30 s. About fifteen attempts in a minute, never a storm.
    eprintln!("measured: {} attempts at {attempts:.2?}", attempts.len());
    assert!(
        (13..=17).contains(&attempts.len()),
        "attempts at {attempts:?}"
    );
    let gaps: Vec<f64> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    for (i, g) in gaps.iter().enumerate() {
        let nominal = if i < 10 {
            1.0
        } else {
            (2f64.powi(i as i32 - 9)).min(30.0)
        };
        assert!(
            *g >= nominal * 0.7 && *g <= nominal + 1.0,
            "gap {i} = {g:.2} s, nominal {nominal} s; all: {gaps:?}"
        );
    }
}

#[test]
fn new_tracks_after_a_restart_close_clients_and_serve_the_new_sdp() {
    let backend = Backend::start(BackendOpts::default());
    let port = backend.port();
    let proxy = Proxy::start(&[backend.url()]);
    let url = proxy.url("proxyStream");
    let addr = proxy.addr();
    let u = url.clone();
    let client = thread::spawn(move || capture_interleaved(addr, &u, Duration::from_secs(15)));
    thread::sleep(Duration::from_secs(3));
    drop(backend);
    let _backend = Backend::start(BackendOpts {
        port: Some(port),
        ..BackendOpts::codecs("h265")
    });
    let result = client.join().expect("thread");
    assert!(
        result.is_err(),
        "the client's connection was closed when the tracks changed"
    );
    let s = ffprobe_streams(&url, "tcp", PROBE).expect("new clients play the new stream");
    assert_eq!(
        s.iter().map(|s| s.codec_name.as_str()).collect::<Vec<_>>(),
        vec!["hevc"]
    );
}
