//! End-to-end tests of the PROXY protocol (`--trusted-proxy`): Debian's HAProxy
//! in `mode tcp` with `send-proxy-v2` (and `send-proxy`) in front of the real
//! binary, clients bound to other loopback addresses (127.0.0.2, 127.0.0.3, ...)
//! playing through it over interleaved TCP. Each client address is counted on
//! its own for `--max-connections-per-address` and the admin API lists the
//! clients' own addresses, not HAProxy's; without trust the header is refused,
//! and a header from a peer that is not trusted closes that connection.

mod support;

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// Client addresses, and clients from each.
const CLIENT_ADDRESSES: u8 = 4;
const CLIENTS_PER_ADDRESS: usize = 8;
/// `--max-connections-per-address`: below all the clients together, above
/// those of one address.
const PER_ADDRESS_LIMIT: usize = 10;

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A directory of this test's own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Scratch(dir)
    }

    /// Writes `name` in the directory; returns its path as text.
    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write");
        path.to_str().expect("UTF-8 path").to_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// HAProxy, run in the foreground on a config file of its own; killed (by
/// PID, as every [`Proc`]) and its directory removed when dropped.
struct Haproxy {
    proc: Proc,
    _dir: Scratch,
}

impl Haproxy {
    /// One `mode tcp` frontend on 127.0.0.1 per `(frontend port, server port,
    /// server options)`: `send-proxy-v2` or `send-proxy`, and `check` for
    /// the README's RTSP health check (logged, as every health check).
    fn start(routes: &[(u16, u16, &str)]) -> Haproxy {
        let dir = Scratch::new("haproxy");
        let mut cfg = String::from(
            "global\n  maxconn 512\n  log stdout format raw local0\ndefaults\n  mode tcp\n  log global\n  option log-health-checks\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n",
        );
        for (i, (front, server, options)) in routes.iter().enumerate() {
            cfg += &format!(
                "frontend f{i}\n  bind 127.0.0.1:{front}\n  default_backend b{i}\nbackend b{i}\n  option tcp-check\n  tcp-check send \"OPTIONS * RTSP/1.0\\r\\nCSeq: 1\\r\\n\\r\\n\"\n  tcp-check expect string \"RTSP/1.0 200\"\n  server proxy 127.0.0.1:{server} {options}\n"
            );
        }
        let path = dir.write("haproxy.cfg", &cfg);
        let proc = Proc::spawn(
            "haproxy",
            Command::new("haproxy").args(["-db", "-f", &path]),
        )
        .expect("haproxy starts (Debian package haproxy)");
        // Listening once a connection to every frontend is accepted.
        let deadline = Instant::now() + Duration::from_secs(20);
        for (front, _, _) in routes {
            let addr = SocketAddr::from(([127, 0, 0, 1], *front));
            while TcpStream::connect(addr).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "haproxy does not listen on {front}"
                );
                thread::sleep(Duration::from_millis(50));
            }
        }
        Haproxy { proc, _dir: dir }
    }
}

/// A client that plays `url` over interleaved TCP through `via` from `source`
/// and keeps reading; counts the RTP packets of channel 0 it got.
struct Player {
    local: SocketAddr,
    packets: Arc<AtomicUsize>,
    thread: thread::JoinHandle<()>,
}

fn play_from(source: IpAddr, via: SocketAddr, url: &str, stop: Arc<AtomicBool>) -> Player {
    let s = connect_from(source, via).expect("connect through haproxy");
    let local = s.local_addr().expect("local address");
    let (mut s, head) = set_up_interleaved_on(s, url);
    assert!(
        head.starts_with("RTSP/1.0 200"),
        "SETUP from {local}: {head}"
    );
    let session = session_of(&head);
    s.write_all(format!("PLAY {url} RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n").as_bytes())
        .expect("PLAY");
    let mut buf = Vec::new();
    let play = read_response_head(&mut s, &mut buf).expect("PLAY answered");
    assert!(
        play.starts_with("RTSP/1.0 200"),
        "PLAY from {local}: {play}"
    );
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let packets = Arc::new(AtomicUsize::new(0));
    let counted = packets.clone();
    let thread = thread::spawn(move || {
        let mut chunk = [0u8; 65536];
        while !stop.load(Ordering::Relaxed) {
            // `$`, channel, length, then an RTP packet (version 2).
            while buf.len() >= 4 && buf[0] == b'$' {
                let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
                if buf.len() < 4 + len {
                    break;
                }
                if buf[1] == 0 && len >= 12 && buf[4] >> 6 == 2 {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
                buf.drain(..4 + len);
            }
            assert!(
                buf.is_empty() || buf[0] == b'$',
                "not an interleaved frame from {local}"
            );
            match s.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        }
    });
    Player {
        local,
        packets,
        thread,
    }
}

/// The client addresses the admin API lists under `/v1/paths`.
fn api_client_addresses(admin: SocketAddr) -> HashSet<String> {
    let mut s = TcpStream::connect(admin).expect("admin port");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /v1/paths HTTP/1.0\r\n\r\n").expect("GET");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("answer");
    let (_, body) = raw.split_once("\r\n\r\n").expect("HTTP answer");
    let json: serde_json::Value = serde_json::from_str(body).expect("JSON");
    json["paths"]
        .as_array()
        .expect("paths")
        .iter()
        .flat_map(|p| p["clients"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["address"].as_str().map(str::to_owned))
        .collect()
}

/// Sends OPTIONS on `s` and returns the answer's head, or `None` when the
/// connection was closed without one.
fn options(s: &mut TcpStream, url: &str) -> Option<String> {
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let req = format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n");
    // A write may fail on a connection already closed.
    s.write_all(req.as_bytes()).ok()?;
    read_response_head(s, &mut Vec::new()).ok()
}

/// Asserts that OPTIONS on `s` gets a 200.
fn assert_served(s: &mut TcpStream, url: &str) {
    let answer = options(s, url).expect("answered");
    assert!(answer.starts_with("RTSP/1.0 200"), "{answer}");
}

/// Waits for the proxy's log line that says why it closed a connection.
fn assert_said(proxy: &Proxy, why: &str) {
    proxy
        .proc
        .wait_for_line(
            &format!("connection closed: {why}"),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("the proxy did not say {why:?}: {e}"));
}

const UNTRUSTED: &str = "PROXY protocol header from a peer that is not a trusted proxy";

#[test]
fn clients_behind_haproxy_keep_their_own_addresses() {
    let admin_port = free_port();
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    let (http_port, tls_port) = (free_port(), free_port());
    let limit = PER_ADDRESS_LIMIT.to_string();
    let certs = Scratch::new("proxy-protocol-tls");
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
    let cert = certs.write("cert.pem", &cert.pem());
    let key = certs.write("key.pem", &signing_key.serialize_pem());
    let proxy = Proxy::start(&[
        "--demo",
        "--trusted-proxy",
        "127.0.0.1",
        "--max-connections-per-address",
        &limit,
        "--http-port",
        &http_port.to_string(),
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-port",
        &tls_port.to_string(),
        "--admin",
        &admin.to_string(),
    ]);
    let (front, front_http, front_tls) = (free_port(), free_port(), free_port());
    let haproxy = Haproxy::start(&[
        (front, proxy.port(), "send-proxy-v2 check inter 1s"),
        (front_http, http_port, "send-proxy check inter 1s"),
        (front_tls, tls_port, "send-proxy-v2"),
    ]);
    let via = SocketAddr::from(([127, 0, 0, 1], front));
    let url = format!("rtsp://127.0.0.1:{front}/demo");

    // 32 clients from 4 addresses, all through HAProxy's one address: more
    // than the limit per address in all, fewer from each.
    let stop = Arc::new(AtomicBool::new(false));
    let players: Vec<Player> = (0..CLIENT_ADDRESSES)
        .flat_map(|a| std::iter::repeat_n(loopback(2 + a), CLIENTS_PER_ADDRESS))
        .map(|source| play_from(source, via, &url, stop.clone()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while players
        .iter()
        .any(|p| p.packets.load(Ordering::Relaxed) == 0)
    {
        assert!(
            Instant::now() < deadline,
            "clients without RTP after 30 s: {:?}",
            players
                .iter()
                .filter(|p| p.packets.load(Ordering::Relaxed) == 0)
                .map(|p| p.local)
                .collect::<Vec<_>>()
        );
        thread::sleep(Duration::from_millis(100));
    }

    // The API lists each client by its own address and port, HAProxy by none.
    let listed = api_client_addresses(admin);
    for p in &players {
        assert!(
            listed.contains(&p.local.to_string()),
            "{} not in the API's clients {listed:?}",
            p.local
        );
    }
    assert!(
        !listed.iter().any(|a| a.starts_with("127.0.0.1:")),
        "HAProxy's own address listed: {listed:?}"
    );

    // 127.0.0.2's own limit: two more connections make ten, an eleventh is
    // closed unanswered, while another address is still served.
    let first = loopback(2);
    let mut more: Vec<TcpStream> = (0..PER_ADDRESS_LIMIT - CLIENTS_PER_ADDRESS)
        .map(|_| connect_from(first, via).expect("connect"))
        .collect();
    for s in &mut more {
        assert_served(s, &url);
    }
    let mut over = connect_from(first, via).expect("connect");
    assert_eq!(
        options(&mut over, &url),
        None,
        "the eleventh from 127.0.0.2"
    );
    let mut other = connect_from(loopback(2 + CLIENT_ADDRESSES), via).expect("connect");
    assert_served(&mut other, &url);
    assert_said(
        &proxy,
        &format!(
            "client 127.0.0.2:{} refused: {PER_ADDRESS_LIMIT} connections from this address are open",
            over.local_addr().expect("local").port()
        ),
    );

    // The HTTP tunnel port reads the PROXY header too (v1 here), and the
    // RTSPS port reads it before the TLS handshake.
    let tunnelled = format!("rtsp://127.0.0.1:{front_http}/demo");
    let streams = ffprobe_streams(&tunnelled, "http", Duration::from_secs(30))
        .expect("ffprobe tunnels over HTTP through HAProxy");
    assert_eq!(streams.len(), 1);
    let secure = format!("rtsps://127.0.0.1:{front_tls}/demo");
    let streams = ffprobe_streams(&secure, "tcp", Duration::from_secs(30))
        .expect("ffprobe plays RTSPS through HAProxy");
    assert_eq!(streams.len(), 1);

    // HAProxy's RTSP health checks (their PROXY headers name no client: v2
    // LOCAL, v1 UNKNOWN) are answered.
    for backend in ["b0", "b1"] {
        haproxy
            .proc
            .wait_for_line(
                &format!("Health check for server {backend}/proxy succeeded"),
                Duration::from_secs(10),
            )
            .expect("health check passes");
    }
    assert_eq!(
        haproxy
            .proc
            .count_lines("Health check for server b0/proxy failed"),
        0
    );

    // Everyone still plays.
    let counts: Vec<usize> = players
        .iter()
        .map(|p| p.packets.load(Ordering::Relaxed))
        .collect();
    thread::sleep(Duration::from_secs(1));
    for (p, before) in players.iter().zip(counts) {
        assert!(
            p.packets.load(Ordering::Relaxed) > before,
            "{} stopped receiving",
            p.local
        );
    }
    stop.store(true, Ordering::Relaxed);
    for p in players {
        p.thread.join().expect("player");
    }
}

#[test]
fn without_trust_a_proxy_header_is_refused() {
    let proxy = Proxy::start(&["--demo"]);
    let front = free_port();
    let _haproxy = Haproxy::start(&[(front, proxy.port(), "send-proxy-v2")]);
    let url = proxy.url("demo");
    let mut through = connect_from(loopback(2), SocketAddr::from(([127, 0, 0, 1], front)))
        .expect("connect through haproxy");
    assert_eq!(options(&mut through, &url), None, "closed unanswered");
    assert_said(&proxy, UNTRUSTED);
    // A client that sends no header is served as ever.
    assert_served(
        &mut TcpStream::connect(proxy.addr()).expect("connect"),
        &url,
    );
}

#[test]
fn only_trusted_peers_may_send_a_proxy_header_and_they_must() {
    let proxy = Proxy::start(&["--demo", "--trusted-proxy", "127.0.0.1/32"]);
    let url = proxy.url("demo");
    // From 127.0.0.7 (not trusted), a header claiming another address closes
    // the connection, in either version ...
    let v2_header: &[u8] = &[
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00,
        0x0c, 203, 0, 113, 9, 127, 0, 0, 1, 0x13, 0x88, 0x02, 0x2a,
    ];
    for header in [
        &b"PROXY TCP4 203.0.113.9 127.0.0.1 5000 554\r\n"[..],
        v2_header,
    ] {
        let mut s = connect_from(loopback(7), proxy.addr()).expect("connect");
        s.write_all(header).expect("header");
        assert_eq!(options(&mut s, &url), None, "closed unanswered");
    }
    assert_said(&proxy, UNTRUSTED);
    // ... while its connections without one are served as ever.
    assert_served(
        &mut connect_from(loopback(7), proxy.addr()).expect("connect"),
        &url,
    );

    // From the trusted 127.0.0.1 a connection without a header is closed ...
    let mut bare = TcpStream::connect(proxy.addr()).expect("connect");
    assert_eq!(options(&mut bare, &url), None, "closed unanswered");
    assert_said(
        &proxy,
        "invalid PROXY protocol header from a trusted proxy: no PROXY protocol signature",
    );
    // ... and one with a header is served (here HAProxy's health-check LOCAL
    // header: the connection is the balancer's own).
    let mut local = TcpStream::connect(proxy.addr()).expect("connect");
    local
        .write_all(&[
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x20, 0x00,
            0x00, 0x00,
        ])
        .expect("header");
    assert_served(&mut local, &url);
}
