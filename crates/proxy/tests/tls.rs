//! End-to-end tests of RTSP over TLS: the real `rtsp-proxy` serving `rtsps://`
//! to ffprobe, ffmpeg and GStreamer, pulling `rtsps://` from a GStreamer back end
//! (trusted by CA, by pinned fingerprint, or refused), and chained behind
//! another proxy; all on loopback, with certificates made by the test (rcgen,
//! and `openssl req -x509` for self-signed ones as users make them).

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rtsp_proxy::tls::{BackendTrust, Fingerprint};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use support::*;

const PROBE: Duration = Duration::from_secs(30);
const GST: Duration = Duration::from_secs(40);

/// A test CA, a server certificate it signed for 127.0.0.1, and an unrelated
/// self-signed one, as PEM files in a directory of their own.
struct Certs {
    dir: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    /// SHA-256 of the server certificate's DER.
    fingerprint: String,
    self_signed_cert: PathBuf,
    self_signed_key: PathBuf,
}

impl Certs {
    fn new() -> Certs {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "tls-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("certificate directory");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca =
            CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("params")
            .signed_by(&key, &ca)
            .expect("server certificate");
        let other_key = KeyPair::generate().expect("key");
        let other = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("params")
            .self_signed(&other_key)
            .expect("self-signed");
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).expect("write PEM");
            p
        };
        Certs {
            ca: write("ca.pem", &ca.pem()),
            cert: write("cert.pem", &cert.pem()),
            key: write("key.pem", &key.serialize_pem()),
            fingerprint: Fingerprint::of(cert.der()).to_string(),
            self_signed_cert: write("self-signed.pem", &other.pem()),
            self_signed_key: write("self-signed-key.pem", &other_key.serialize_pem()),
            dir,
        }
    }

    fn path(p: &Path) -> &str {
        p.to_str().expect("UTF-8 path")
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A proxy serving RTSPS on a free port with `certs`, plus `args`.
struct TlsProxy {
    proxy: Proxy,
    tls_port: u16,
}

impl TlsProxy {
    fn start(certs: &Certs, args: &[&str]) -> TlsProxy {
        TlsProxy::start_with(&certs.cert, &certs.key, args)
    }

    /// Serving RTSPS with the certificate `cert` and its key `key`.
    fn start_with(cert: &Path, key: &Path, args: &[&str]) -> TlsProxy {
        let tls_port = free_port();
        let port = tls_port.to_string();
        let mut all = vec![
            "--tls-port",
            &port,
            "--tls-cert",
            Certs::path(cert),
            "--tls-key",
            Certs::path(key),
        ];
        all.extend_from_slice(args);
        let proxy = Proxy::start(&all);
        // The banner's last line: every URL has been printed by then.
        proxy
            .proc
            .wait_for_line(
                &format!("(RTSPS, RTSP over TLS, is accepted on port {tls_port}"),
                Duration::from_secs(5),
            )
            .expect("RTSPS port announced");
        TlsProxy { proxy, tls_port }
    }

    fn rtsps_url(&self, name: &str) -> String {
        format!("rtsps://127.0.0.1:{}/{name}", self.tls_port)
    }

    fn tls_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.tls_port))
    }
}

/// Writes `raw` over TLS to `addr` (verifying the server against `ca`) and
/// returns what comes back until the peer is quiet for 500 ms.
fn tls_exchange(addr: SocketAddr, ca: &Path, raw: &str) -> Result<String, String> {
    let config = rtsp_proxy::tls::client_config(&BackendTrust {
        ca_file: Some(ca.to_owned()),
        ..BackendTrust::default()
    })
    .map_err(|e| e.to_string())?;
    let name = rtsp_proxy::tls::server_name("127.0.0.1").ok_or("server name")?;
    let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let tcp =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(raw.as_bytes()).map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && got.len() < 1 << 20 {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => return Err(format!("TLS read: {e}")),
        }
    }
    Ok(String::from_utf8_lossy(&got).into_owned())
}

fn codecs(streams: &[ProbedStream]) -> Vec<&str> {
    streams.iter().map(|s| s.codec_name.as_str()).collect()
}

/// The demo over RTSPS to ffprobe, GStreamer (UDP refused and retried over
/// TCP; the HTTP tunnel inside TLS), and a raw TLS client checking the
/// transport rules, while the plain port keeps working.
#[test]
fn clients_play_rtsps_beside_plain_rtsp() {
    let certs = Certs::new();
    let tp = TlsProxy::start(&certs, &["-V", "--demo"]);
    let rtsps = tp.rtsps_url("demo");
    assert_eq!(
        tp.proxy.announced_urls().len(),
        2,
        "a plain and an rtsps URL: {:?}",
        tp.proxy.announced_urls()
    );
    assert!(tp.proxy.announced_urls()[0].starts_with("rtsp://"));
    assert!(tp.proxy.announced_urls()[1].starts_with("rtsps://"));
    assert!(tp.proxy.announced_urls()[1].ends_with(&format!(":{}/demo", tp.tls_port)));

    let streams = ffprobe_streams(&rtsps, "tcp", PROBE).expect("ffprobe over rtsps");
    assert_eq!(codecs(&streams), ["h264"]);
    let plain = ffprobe_streams(&tp.proxy.url("demo"), "udp", PROBE).expect("plain rtsp");
    assert_eq!(codecs(&plain), ["h264"]);
    // rtspsrc offers UDP first: refused over TLS (461), it retries over TCP.
    gst_play_media(&rtsps, "udp+tcp", "video", 30, GST).expect("gstreamer over rtsps");
    gst_play_media(&rtsps, "http", "video", 30, GST).expect("gstreamer, HTTP tunnel inside TLS");

    let describe = tls_exchange(
        tp.tls_addr(),
        &certs.ca,
        &format!("DESCRIBE {rtsps} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n"),
    )
    .expect("DESCRIBE over TLS");
    assert!(describe.starts_with("RTSP/1.0 200 "), "{describe}");
    assert!(
        describe.contains(&format!("Content-Base: {rtsps}/")),
        "rtsps:// Content-Base: {describe}"
    );
    let setup = |transport: &str| {
        tls_exchange(
            tp.tls_addr(),
            &certs.ca,
            &format!("SETUP {rtsps}/track1 RTSP/1.0\r\nCSeq: 2\r\nTransport: {transport}\r\n\r\n"),
        )
        .expect("SETUP over TLS")
    };
    let udp_only = setup("RTP/AVP;unicast;client_port=40000-40001");
    assert!(
        udp_only.starts_with("RTSP/1.0 461 "),
        "no media in clear beside TLS: {udp_only}"
    );
    let either =
        setup("RTP/AVP;unicast;client_port=40000-40001,RTP/AVP/TCP;unicast;interleaved=0-1");
    assert!(either.starts_with("RTSP/1.0 200 "), "{either}");
    assert!(
        either.contains("Transport: RTP/AVP/TCP;unicast;") && either.contains("interleaved=0-1"),
        "the TCP alternative is chosen: {either}"
    );
    assert!(tp.proxy.proc.try_wait().is_none(), "the proxy still runs");
}

#[test]
fn tls_only_turns_the_plain_port_off() {
    let certs = Certs::new();
    let tp = TlsProxy::start(&certs, &["--tls-only", "--demo"]);
    let urls = tp.proxy.announced_urls();
    assert_eq!(urls.len(), 1, "{urls:?}");
    assert!(
        urls[0].starts_with("rtsps://") && urls[0].ends_with(&format!(":{}/demo", tp.tls_port)),
        "{urls:?}"
    );
    assert_eq!(
        tp.proxy
            .proc
            .count_lines_settled("RTSP-over-HTTP tunneling is accepted on port", 1),
        0,
        "no plain port to announce"
    );
    let streams = ffprobe_streams(&tp.rtsps_url("demo"), "tcp", PROBE).expect("rtsps");
    assert_eq!(codecs(&streams), ["h264"]);
    let refused = TcpStream::connect_timeout(&tp.proxy.addr(), Duration::from_secs(2));
    assert!(refused.is_err(), "nothing listens on the plain port");
}

#[test]
fn bad_certificate_files_are_named_at_start_up() {
    let certs = Certs::new();
    let missing = certs.dir.join("missing.pem");
    let garbage = certs.dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write");
    let cases: [(&Path, &Path, String); 4] = [
        (
            &missing,
            &certs.key,
            format!("cannot read {}", missing.display()),
        ),
        (
            &garbage,
            &certs.key,
            format!("{}: no certificate", garbage.display()),
        ),
        (
            &certs.cert,
            &garbage,
            format!("{}: no private key", garbage.display()),
        ),
        (
            &certs.cert,
            &certs.self_signed_key,
            format!("cannot use the certificate {}", certs.cert.display()),
        ),
    ];
    for (cert, key, expected) in cases {
        let tls_port = free_port().to_string();
        let mut cmd = Proxy::command(
            free_port(),
            &[
                "--tls-port",
                &tls_port,
                "--tls-cert",
                Certs::path(cert),
                "--tls-key",
                Certs::path(key),
                "--demo",
            ],
        );
        let out = run_with_timeout(&mut cmd, Duration::from_secs(20)).expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(&expected), "{expected:?} in {stderr}");
        assert!(!stderr.contains("Play this stream"), "{stderr}");
    }
    let bad_ca = Proxy::command(
        free_port(),
        &[
            "--backend-tls-ca",
            Certs::path(&garbage),
            "rtsps://127.0.0.1:1/x",
        ],
    );
    let out = run_with_timeout(&mut { bad_ca }, Duration::from_secs(20)).expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: no certificate", garbage.display())),
        "{stderr}"
    );
}

/// A GStreamer back end serving RTSPS, pulled by one proxy that trusts its CA
/// and by another that pins its certificate; media comes interleaved inside TLS.
#[test]
fn rtsps_back_end_pulled_with_ca_and_with_fingerprint() {
    let certs = Certs::new();
    let backend = Backend::start(BackendOpts {
        tls: Some((certs.cert.clone(), certs.key.clone())),
        ..BackendOpts::default()
    });
    assert!(
        backend.url().starts_with("rtsps://127.0.0.1:"),
        "{}",
        backend.url()
    );
    let by_ca = Proxy::start(&[
        "-V",
        "--backend-tls-ca",
        Certs::path(&certs.ca),
        backend.url(),
    ]);
    let streams = ffprobe_streams(&by_ca.url("proxyStream"), "udp", PROBE).expect("via CA");
    assert_eq!(codecs(&streams), ["h264", "aac"]);
    // Started once the first proxy is set up: GStreamer answers 503 to a
    // DESCRIBE while its shared media is being prepared for another client.
    let lowercase = certs.fingerprint.replace(':', "").to_lowercase();
    let pinned = Proxy::start(&["--backend-tls-fingerprint", &lowercase, backend.url()]);
    let streams = ffprobe_streams(&pinned.url("proxyStream"), "tcp", PROBE).expect("via pin");
    assert_eq!(codecs(&streams), ["h264", "aac"]);
    gst_play_media(&pinned.url("proxyStream"), "udp", "video", 40, GST).expect("gst via pin");

    // The back-end tracks were set up interleaved, over TLS.
    let setups: Vec<String> = by_ca
        .proc
        .lines()
        .into_iter()
        .filter(|l| l.contains("back-end track set up"))
        .collect();
    assert!(!setups.is_empty(), "back-end SETUP logged");
    assert!(
        setups
            .iter()
            .all(|l| l.contains("RTP/AVP/TCP") && l.contains("interleaved")),
        "{setups:?}"
    );
    assert!(
        by_ca.proc.count_lines_settled(" over TLS", 1) >= 1,
        "connected over TLS (debug log)"
    );
    assert!(backend.requests("DESCRIBE") >= 2, "each proxy DESCRIBEd");
}

/// A back end whose certificate nobody vouches for is refused with a clear
/// warning (host, reason, fingerprint, options), and an rtsps:// URL is never
/// dialled in plain text: the first bytes a listener sees are a TLS ClientHello.
#[test]
fn untrusted_back_end_is_refused_and_never_dialled_in_clear() {
    let certs = Certs::new();
    let backend = Backend::start(BackendOpts {
        tls: Some((
            certs.self_signed_cert.clone(),
            certs.self_signed_key.clone(),
        )),
        ..BackendOpts::default()
    });
    let raw = TcpListener::bind("127.0.0.1:0").expect("bind");
    let raw_url = format!(
        "rtsps://127.0.0.1:{}/cam",
        raw.local_addr().expect("addr").port()
    );
    let first_bytes = thread::spawn(move || {
        raw.set_nonblocking(false).ok();
        let (mut conn, _) = raw.accept().expect("the proxy dials");
        conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut buf = [0u8; 512];
        let n = conn.read(&mut buf).unwrap_or(0);
        buf[..n].to_vec()
    });
    let proxy = Proxy::start(&[
        "--reconnect-min",
        "5",
        "--linger",
        "0",
        backend.url(),
        &raw_url,
    ]);

    let warning = proxy
        .proc
        .wait_for_line("is not trusted", Duration::from_secs(15))
        .expect("a warning about the certificate");
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        warning.contains("the certificate of 127.0.0.1 is not trusted"),
        "{warning}"
    );
    assert!(warning.contains("--backend-tls-ca") && warning.contains("--backend-tls-fingerprint"));
    let other =
        Fingerprint::of(&CertificateDer::from_pem_file(&certs.self_signed_cert).expect("PEM"));
    assert!(
        warning.contains(&other.to_string()),
        "names the fingerprint to pin: {warning}"
    );
    let err = ffprobe_streams(&proxy.url("proxyStream-1"), "tcp", Duration::from_secs(20));
    assert!(err.is_err(), "nothing to play from an untrusted back end");
    assert_eq!(
        backend.requests("OPTIONS") + backend.requests("DESCRIBE"),
        0
    );

    let hello = first_bytes.join().expect("listener");
    assert!(hello.len() >= 6, "{hello:?}");
    assert_eq!(
        hello[0], 0x16,
        "a TLS handshake record, not RTSP: {hello:?}"
    );
    assert_eq!(hello[5], 0x01, "a ClientHello");
    assert!(!String::from_utf8_lossy(&hello).contains("RTSP/1.0"));

    // --backend-tls-insecure takes it, with a warning at start-up.
    let insecure = Proxy::start(&["--backend-tls-insecure", backend.url()]);
    let warning = insecure
        .proc
        .wait_for_line("--backend-tls-insecure: ", Duration::from_secs(5))
        .expect("warned once");
    assert!(warning.contains("WARN"), "{warning}");
    let streams = ffprobe_streams(&insecure.url("proxyStream"), "tcp", PROBE).expect("insecure");
    assert_eq!(codecs(&streams), ["h264", "aac"]);
    assert_eq!(
        insecure
            .proc
            .count_lines_settled("--backend-tls-insecure: ", 1),
        1
    );
}

/// Proxy A serves RTSPS only; proxy B pulls rtsps:// from it (trusting the
/// test CA) and serves RTSPS itself; clients play from B.
#[test]
fn chain_of_proxies_over_rtsps() {
    let certs = Certs::new();
    let a = TlsProxy::start(&certs, &["--tls-only", "--demo"]);
    let b = TlsProxy::start(
        &certs,
        &[
            "--backend-tls-ca",
            Certs::path(&certs.ca),
            &a.rtsps_url("demo"),
        ],
    );
    let rec =
        ffmpeg_record(&b.rtsps_url("proxyStream"), "tcp", 3).expect("ffmpeg through the chain");
    assert!(
        rec.video_frames >= 50,
        "3 s at 25 fps, got {}",
        rec.video_frames
    );
    assert!(!rec.non_monotonic_dts, "{}", rec.stderr);
    gst_play_media(&b.proxy.url("proxyStream"), "tcp", "video", 30, GST)
        .expect("gst, plain from B");
}

/// Connections that never finish (or botch) their TLS handshake are closed,
/// logged at debug with their address, and do not hold up other clients.
#[test]
fn broken_and_slow_handshakes_do_not_hurt_other_clients() {
    let certs = Certs::new();
    let tp = TlsProxy::start(&certs, &["-V", "--demo"]);
    let silent: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(tp.tls_addr()).expect("connect"))
        .collect();
    let started = Instant::now();
    let mut plain = TcpStream::connect(tp.tls_addr()).expect("connect");
    let plain_port = plain.local_addr().expect("addr").port();
    plain
        .write_all(b"OPTIONS rtsp://127.0.0.1/demo RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        .expect("write");
    let mut garbage = TcpStream::connect(tp.tls_addr()).expect("connect");
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .expect("write");

    let streams = ffprobe_streams(&tp.rtsps_url("demo"), "tcp", PROBE).expect("others play");
    assert_eq!(codecs(&streams), ["h264"]);
    tp.proxy
        .proc
        .wait_for_line(&format!("127.0.0.1:{plain_port}"), Duration::from_secs(5))
        .map(|l| assert!(l.contains("TLS handshake failed"), "{l}"))
        .expect("plain RTSP on the TLS port logged at debug with the peer");

    // The silent ones are dropped after the handshake timeout (10 s).
    for mut s in silent {
        s.set_read_timeout(Some(Duration::from_secs(15))).ok();
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("a silent connection is closed, got {other:?}"),
        }
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(20),
        "closed by the handshake timeout, after {waited:?}"
    );
    tp.proxy
        .proc
        .wait_for_count(
            "TLS handshake not done within 10 s",
            20,
            Duration::from_secs(5),
        )
        .expect("each logged at debug");
    let streams = ffprobe_streams(&tp.rtsps_url("demo"), "tcp", PROBE).expect("still serving");
    assert_eq!(codecs(&streams), ["h264"]);
    assert!(tp.proxy.proc.try_wait().is_none(), "the proxy still runs");
}

/// A self-signed certificate and key made by `openssl req -x509` in `dir`
/// (`basicConstraints CA:TRUE`, OpenSSL's default), for the subjectAltName
/// `san`; returns the certificate's and the key's paths.
fn openssl_self_signed(dir: &Path, name: &str, san: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}-key.pem"));
    let mut cmd = std::process::Command::new("openssl");
    cmd.args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "30"])
        .args(["-subj", "/CN=localhost", "-addext"])
        .arg(format!("subjectAltName={san}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(30)).expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl req -x509: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&cert).expect("certificate written");
    let der = CertificateDer::from_pem_slice(text.as_bytes()).expect("PEM");
    assert!(
        der.windows(5).any(|w| w == [0x30, 0x03, 0x01, 0x01, 0xff]),
        "basicConstraints CA:TRUE, as OpenSSL makes it by default"
    );
    (cert, key)
}

/// The origin proxy serves RTSPS with an `openssl req -x509` certificate
/// (CA:TRUE); an edge given that very certificate with --backend-tls-ca plays
/// through it, as `openssl s_client -CAfile` and `curl --cacert` would accept it.
/// An edge given another self-signed certificate is refused with the warning,
/// and so is one given the same certificate for a host it does not name.
#[test]
fn self_signed_openssl_certificate_given_as_backend_ca_is_trusted_for_its_names() {
    let certs = Certs::new();
    let (cert, key) = openssl_self_signed(&certs.dir, "origin", "DNS:localhost,IP:127.0.0.1");
    let (other, _) = openssl_self_signed(&certs.dir, "other", "DNS:localhost,IP:127.0.0.1");
    let (elsewhere, elsewhere_key) =
        openssl_self_signed(&certs.dir, "elsewhere", "DNS:camera.test");
    let origin = TlsProxy::start_with(&cert, &key, &["--tls-only", "--demo"]);
    let misnamed = TlsProxy::start_with(&elsewhere, &elsewhere_key, &["--tls-only", "--demo"]);

    let edge = Proxy::start(&[
        "--backend-tls-ca",
        Certs::path(&cert),
        &origin.rtsps_url("demo"),
    ]);
    let streams =
        ffprobe_streams(&edge.url("proxyStream"), "tcp", PROBE).expect("through the edge");
    assert_eq!(codecs(&streams), ["h264"]);

    let fingerprint =
        |p: &Path| Fingerprint::of(&CertificateDer::from_pem_file(p).expect("PEM")).to_string();
    let refused = |ca: &Path, url: &str| {
        let edge = Proxy::start(&[
            "--reconnect-min",
            "5",
            "--backend-tls-ca",
            Certs::path(ca),
            url,
        ]);
        let warning = edge
            .proc
            .wait_for_line("is not trusted", Duration::from_secs(20))
            .expect("a warning about the certificate");
        assert!(warning.contains("WARN"), "{warning}");
        let err = ffprobe_streams(&edge.url("proxyStream"), "tcp", Duration::from_secs(10));
        assert!(err.is_err(), "nothing to play from an untrusted back end");
        warning
    };
    let warning = refused(&other, &origin.rtsps_url("demo"));
    assert!(
        warning.contains("a CA certificate presented as the server's own (self-signed)")
            && warning.contains(&fingerprint(&cert)),
        "{warning}"
    );
    let warning = refused(&elsewhere, &misnamed.rtsps_url("demo"));
    assert!(
        warning.contains("certificate not valid for name \"127.0.0.1\"")
            && warning.contains(&fingerprint(&elsewhere)),
        "{warning}"
    );
}
