//! A short churn-and-restart soak: the proxy in front of a GStreamer back end,
//! 30 clients (TCP interleaved and UDP) joining and leaving for about a minute
//! while the back end is restarted three times; afterwards, once every client
//! left and the linger passed, the proxy's open descriptors must be back at
//! their starting level and its RSS must not have grown beyond a generous
//! bound. The long version is `scripts/soak.sh` (README "Soak").

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

const CLIENTS: usize = 30;
/// Seconds of churn; the back end is restarted at 1/4, 2/4 and 3/4 of it.
const CHURN_SECS: u64 = 60;
const RESTARTS: u32 = 3;
/// Descriptors the proxy may hold at the end beyond its starting level
/// (a back-end connection caught mid-reconnect, a timer fd...).
const FD_SLACK: usize = 4;

/// A small xorshift, seeded per client: lifetimes need no quality.
struct Rng(u64);
impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// An even/odd pair of UDP ports on 127.0.0.1.
fn udp_pair() -> Result<(UdpSocket, UdpSocket), String> {
    for _ in 0..50 {
        let rtp = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let p = rtp.local_addr().map_err(|e| e.to_string())?.port();
        if p % 2 != 0 || p == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", p + 1)) {
            return Ok((rtp, rtcp));
        }
    }
    Err("no UDP port pair".into())
}

/// One session: SETUP (interleaved or UDP), PLAY, receive for `life` (or
/// until `stop`), TEARDOWN. The RTP packets received on the video track.
fn session(
    addr: SocketAddr,
    url: &str,
    udp: bool,
    life: Duration,
    stop: &AtomicBool,
) -> Result<u64, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let pair = if udp { Some(udp_pair()?) } else { None };
    let transport = match &pair {
        Some((rtp, _)) => {
            let p = rtp.local_addr().map_err(|e| e.to_string())?.port();
            format!("RTP/AVP;unicast;client_port={}-{}", p, p + 1)
        }
        None => "RTP/AVP/TCP;unicast;interleaved=0-1".to_owned(),
    };
    s.write_all(
        format!("SETUP {url}/track1 RTSP/1.0\r\nCSeq: 1\r\nTransport: {transport}\r\n\r\n")
            .as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let head = read_response_head(&mut s, &mut buf)?;
    if !head.starts_with("RTSP/1.0 200") {
        return Err(format!("SETUP: {}", head.lines().next().unwrap_or("")));
    }
    let session = head
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .and_then(|v| v.split(';').next())
        .ok_or("no session")?
        .trim()
        .to_owned();
    s.write_all(format!("PLAY {url} RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let head = read_response_head(&mut s, &mut buf)?;
    if !head.starts_with("RTSP/1.0 200") {
        return Err(format!("PLAY: {}", head.lines().next().unwrap_or("")));
    }
    let end = Instant::now() + life;
    let mut packets = 0u64;
    let mut chunk = vec![0u8; 65536];
    match &pair {
        Some((rtp, _)) => {
            rtp.set_read_timeout(Some(Duration::from_millis(200)))
                .map_err(|e| e.to_string())?;
            while Instant::now() < end && !stop.load(Ordering::Relaxed) {
                match rtp.recv(&mut chunk) {
                    Ok(_) => packets += 1,
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
        None => {
            while Instant::now() < end && !stop.load(Ordering::Relaxed) {
                match s.read(&mut chunk) {
                    Ok(0) => return Err("connection closed during PLAY".into()),
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(e) => return Err(e.to_string()),
                }
                while buf.first() == Some(&b'$') && buf.len() >= 4 {
                    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
                    if buf.len() < 4 + len {
                        break;
                    }
                    if buf[1] == 0 {
                        packets += 1;
                    }
                    buf.drain(..4 + len);
                }
                if buf.first().is_some_and(|&b| b != b'$') {
                    // An RTSP message (none expected): drop up to the next frame.
                    match buf.iter().position(|&b| b == b'$') {
                        Some(i) => drop(buf.drain(..i)),
                        None => buf.clear(),
                    }
                }
            }
        }
    }
    buf.clear();
    let _ = s.write_all(
        format!("TEARDOWN {url} RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n").as_bytes(),
    );
    let _ = read_response_head(&mut s, &mut buf);
    Ok(packets)
}

/// One finished session: when it started, its packets or its error.
type Record = (Instant, Result<u64, String>);

#[test]
fn churn_and_back_end_restarts_leave_no_descriptors_and_bounded_memory() {
    let started = Instant::now();
    let mut backend = Backend::start(BackendOpts::default());
    let proxy = Proxy::start(&["--linger", "1", backend.url()]);
    let pid = proxy.proc.pid();
    let url = proxy.url("proxyStream");
    let addr = proxy.addr();
    let stop = Arc::new(AtomicBool::new(false));

    // Warm-up: one session of each kind, then the linger passes. What the
    // proxy allocates once (its back-end session, runtime buffers) is in the
    // starting level; what a client leaves behind is not.
    for udp in [false, true] {
        let r = session(addr, &url, udp, Duration::from_secs(2), &stop);
        assert!(
            matches!(r, Ok(n) if n > 0),
            "warm-up session (udp: {udp}): {r:?}"
        );
    }
    thread::sleep(Duration::from_secs(3));
    let fds_start = fd_count(pid);
    let rss_start = rss_kib(pid);
    eprintln!("soak: start: {fds_start} fds, RSS {rss_start} KiB");

    let records: Arc<Mutex<Vec<Record>>> = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (stop, records, url) = (stop.clone(), records.clone(), url.clone());
            thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((i as u64 + 1) * 0x1000_0001));
                thread::sleep(Duration::from_millis(50 * i as u64));
                while !stop.load(Ordering::Relaxed) {
                    // 2 to 6 s per session: about 7 sessions per second leave and join.
                    let life = Duration::from_secs_f64(2.0 + 4.0 * rng.next_f64());
                    let at = Instant::now();
                    let r = session(addr, &url, i % 2 == 1, life, &stop);
                    let failed = r.is_err();
                    records.lock().unwrap().push((at, r));
                    if failed {
                        thread::sleep(Duration::from_millis(300));
                    }
                }
            })
        })
        .collect();

    let churn_start = Instant::now();
    let mut fds_max = fds_start;
    let mut last_restart = churn_start;
    for k in 1..=RESTARTS {
        let at = churn_start + Duration::from_secs(CHURN_SECS * k as u64 / (RESTARTS as u64 + 1));
        while Instant::now() < at {
            fds_max = fds_max.max(fd_count(pid));
            thread::sleep(Duration::from_millis(500));
        }
        backend = backend.restart();
        last_restart = Instant::now();
        eprintln!(
            "soak: back end restarted ({k}) at {:.0} s",
            churn_start.elapsed().as_secs_f64()
        );
    }
    while churn_start.elapsed() < Duration::from_secs(CHURN_SECS) {
        fds_max = fds_max.max(fd_count(pid));
        thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client thread");
    }
    assert!(proxy.proc.try_wait().is_none(), "the proxy exited");

    // Every client left: wait for the linger (1 s) and the closing, bounded.
    let until = Instant::now() + Duration::from_secs(15);
    let mut fds_end = fd_count(pid);
    while fds_end > fds_start + FD_SLACK && Instant::now() < until {
        thread::sleep(Duration::from_millis(250));
        fds_end = fd_count(pid);
    }
    let rss_end = rss_kib(pid);

    let records = records.lock().unwrap();
    let served = records.iter().filter(|(_, r)| r.is_ok()).count();
    let failed: Vec<&String> = records
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .collect();
    // Sessions that began well after the last restart must all have had media.
    let late: Vec<&Record> = records
        .iter()
        .filter(|(at, _)| *at > last_restart + Duration::from_secs(8))
        .collect();
    let late_silent = late
        .iter()
        .filter(|(_, r)| !matches!(r, Ok(n) if *n > 0))
        .count();
    eprintln!(
        "soak: {served} sessions served, {} failed (e.g. {:?}); after the last restart {} sessions, {late_silent} without media; fds {fds_start} -> {fds_end} (max {fds_max}); RSS {rss_start} -> {rss_end} KiB; {:.0} s",
        failed.len(),
        failed.first(),
        late.len(),
        started.elapsed().as_secs_f64()
    );

    assert!(
        served >= CLIENTS * 3,
        "only {served} sessions served ({} failed, e.g. {:?})",
        failed.len(),
        failed.first()
    );
    assert!(
        !late.is_empty(),
        "no session started after the last restart"
    );
    assert_eq!(
        late_silent,
        0,
        "sessions started 8 s after the last back-end restart got no media: {:?}",
        late.iter()
            .filter(|(_, r)| !matches!(r, Ok(n) if *n > 0))
            .map(|(_, r)| r)
            .collect::<Vec<_>>()
    );
    assert!(
        fds_end <= fds_start + FD_SLACK,
        "descriptors leaked: {fds_start} before the churn, {fds_end} after every client left (max {fds_max})"
    );
    // RSS is noisy: the allocator keeps freed memory for reuse and returns it
    // to the system when it sees fit, so only a gross growth is a leak here:
    // more than 30 MiB or 2x the start, whichever bound is larger.
    let bound = (rss_start + 30 * 1024).max(2 * rss_start);
    assert!(
        rss_end <= bound,
        "RSS grew from {rss_start} KiB to {rss_end} KiB (bound {bound} KiB)"
    );
    drop(backend);
}
