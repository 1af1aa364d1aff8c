//! End-to-end tests of RTSP-over-HTTP tunnelling: the back end reached through a
//! tunnel (`-T <http-port>`), and clients tunnelling on the dedicated HTTP port
//! (`--http-port`, by default the first free of 80, 8000 and 8080).
//!
//! The GStreamer back end accepts tunnels on its RTSP port, so `-T <its port>`
//! with a URL naming another port shows that the URL's port is ignored.

mod support;

use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

const PROBE: Duration = Duration::from_secs(30);
const GST: Duration = Duration::from_secs(40);

fn codecs(streams: &[ProbedStream]) -> Vec<&str> {
    streams.iter().map(|s| s.codec_name.as_str()).collect()
}

/// The back end's URL with its port replaced by one nobody listens on.
fn url_on_another_port(backend: &Backend) -> String {
    let other = free_port();
    backend
        .url()
        .replacen(&format!(":{}/", backend.port()), &format!(":{other}/"), 1)
}

/// Waits for the banner's last line (the one about HTTP tunnelling).
fn tunnel_banner(proxy: &Proxy) -> String {
    proxy
        .proc
        .wait_for_line("RTSP-over-HTTP tunneling", Duration::from_secs(10))
        .expect("the banner names the tunnelling port")
}

#[test]
fn tunnelled_back_end_plays_with_ffprobe_and_retina() {
    let backend = Backend::start(BackendOpts::default());
    let url = url_on_another_port(&backend);
    assert_ne!(url, backend.url());
    let port = backend.port().to_string();
    let proxy = Proxy::start(&["-V", "-T", &port, &url]);
    let streams = ffprobe_streams(&proxy.url("proxyStream"), "tcp", PROBE).expect("ffprobe");
    assert_eq!(codecs(&streams), ["h264", "aac"]);
    for transport in [RetinaTransport::Tcp, RetinaTransport::Udp] {
        let report = retina_play(&proxy.url("proxyStream"), transport, Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("retina over {transport}: {e}"));
        report
            .check_clean(1.0)
            .unwrap_or_else(|e| panic!("retina over {transport}: {e}"));
        for media in ["video", "audio"] {
            let s = report.stream(media).expect(media);
            assert!(s.packets > 20, "{transport} {media}: {} packets", s.packets);
        }
    }
    assert_eq!(
        backend.connections(),
        2,
        "one tunnel (GET + POST), whatever the clients did"
    );
    assert_eq!(backend.requests("DESCRIBE"), 1);
    let lines = proxy.proc.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("over an RTSP-over-HTTP tunnel")),
        "the carrier is logged"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Transport: RTP/AVP/TCP;unicast;interleaved=")),
        "media is interleaved in the tunnel"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("Transport: RTP/AVP;unicast")),
        "no UDP SETUP through a tunnel"
    );
}

#[test]
fn proxy_of_a_proxy_through_its_dedicated_http_port() {
    // Our tunnel client against our own tunnel server (live555's -T against
    // live555's extra port).
    let http_port = free_port();
    let inner = Proxy::start(&["--http-port", &http_port.to_string(), "--demo"]);
    let url = format!("rtsp://127.0.0.1:{}/demo", inner.port());
    let outer = Proxy::start(&["-T", &http_port.to_string(), &url]);
    let s = ffprobe_streams(&outer.url("proxyStream"), "udp", PROBE).expect("outer proxy");
    assert_eq!(codecs(&s), ["h264"]);
    let report = retina_play(
        &outer.url("proxyStream"),
        RetinaTransport::Tcp,
        Duration::from_secs(2),
    )
    .expect("retina");
    report.check_clean(1.0).expect("clean stream");
}

#[test]
fn tunnelled_digest_back_end() {
    let backend = Backend::start(BackendOpts {
        user: Some("viewer".into()),
        password: Some("tunnel-pw".into()),
        ..BackendOpts::default()
    });
    let port = backend.port().to_string();
    // Credentials with -u for one proxy, in the URL for the other.
    let with_u = Proxy::start(&["-T", &port, "-u", "viewer", "tunnel-pw", backend.url()]);
    let s = ffprobe_streams(&with_u.url("proxyStream"), "tcp", PROBE).expect("-u");
    assert_eq!(codecs(&s), ["h264", "aac"]);
    let in_url = Proxy::start(&["-T", &port, &backend.url_with_credentials()]);
    let s = ffprobe_streams(&in_url.url("proxyStream"), "udp", PROBE).expect("URL credentials");
    assert_eq!(codecs(&s), ["h264", "aac"]);
    assert!(backend.responses(401) >= 2, "the back end challenged");
    assert!(
        !in_url.proc.lines().iter().any(|l| l.contains("tunnel-pw")),
        "the password is never printed"
    );
}

#[test]
fn tunnelled_back_end_restarting_is_recovered() {
    let backend = Backend::start(BackendOpts::default());
    let opts = backend.opts().clone();
    let port = backend.port().to_string();
    let proxy = Proxy::start(&["-T", &port, "--reconnect-max", "2", backend.url()]);
    let url = proxy.url("proxyStream");
    let rec_url = url.clone();
    let recorder = thread::spawn(move || ffmpeg_record(&rec_url, "tcp", 16));
    // The strict client: one SSRC, no sequence gap, timestamps that advance by
    // the wall-clock time across the outage.
    let retina_url = url.clone();
    let retina = thread::spawn(move || {
        retina_play(&retina_url, RetinaTransport::Tcp, Duration::from_secs(14))
    });
    let gst_url = url.clone();
    let gst = thread::spawn(move || {
        gst_play_media(&gst_url, "tcp", "video", 300, Duration::from_secs(50))
    });
    thread::sleep(Duration::from_secs(4));
    backend
        .proc
        .signal(Signal::Kill)
        .expect("SIGKILL the back end");
    drop(backend);
    thread::sleep(Duration::from_secs(3));
    let backend = Backend::start(opts);
    let back_at = Instant::now();
    proxy
        .proc
        .wait_for_line("state=back", Duration::from_secs(15))
        .expect("the proxy reconnected through a new tunnel");
    eprintln!(
        "measured: back-end tunnel back {:?} after the back end",
        back_at.elapsed()
    );
    let rec = recorder
        .join()
        .expect("thread")
        .expect("ffmpeg keeps recording through the outage");
    assert!(!rec.non_monotonic_dts, "{}", rec.stderr);
    // 16 s at 25 fps with a ~4 s hole.
    assert!(rec.video_frames >= 200, "{} video frames", rec.video_frames);
    gst.join()
        .expect("thread")
        .expect("gstreamer keeps playing");
    let report = retina.join().expect("thread").expect("retina session");
    report
        .check_clean(1.0)
        .expect("retina sees one clean stream");
    let video = report.stream("video").expect("video");
    let last = video.last_received_after_play.expect("packets");
    assert!(
        last > Duration::from_secs(12),
        "media until the end: {report}"
    );
    let (media, wall) = (
        video.media_span_secs().expect("span"),
        video.wall_span_secs().expect("span"),
    );
    assert!(
        (media - wall).abs() < 0.5,
        "timestamps follow the wall clock across the outage: {media:.2} s vs {wall:.2} s"
    );
    assert!(backend.connections() >= 2, "a new GET and POST");
    // A new client after the restart plays too.
    let s = ffprobe_streams(&url, "tcp", PROBE).expect("a new client");
    assert_eq!(codecs(&s), ["h264", "aac"]);
}

#[test]
fn clients_tunnel_on_the_dedicated_http_port() {
    let backend = Backend::start(BackendOpts::default());
    let http_port = free_port();
    let http = http_port.to_string();
    let proxy = Proxy::start(&["--http-port", &http, backend.url()]);
    assert_eq!(
        tunnel_banner(&proxy),
        format!("(We use port {http_port} for optional RTSP-over-HTTP tunneling.)")
    );
    let url = format!("rtsp://127.0.0.1:{http_port}/proxyStream");
    let s = ffprobe_streams(&url, "http", PROBE).expect("ffmpeg -rtsp_transport http");
    assert_eq!(codecs(&s), ["h264", "aac"]);
    gst_play_media(&url, "http", "video", 40, GST).expect("gstreamer rtsph://");
    // Plain RTSP is served on it too, as on live555's.
    let s = ffprobe_streams(&url, "tcp", PROBE).expect("plain RTSP on the HTTP port");
    assert_eq!(codecs(&s), ["h264", "aac"]);
    // And the RTSP port still tunnels.
    let s = ffprobe_streams(&proxy.url("proxyStream"), "http", PROBE).expect("RTSP port");
    assert_eq!(codecs(&s), ["h264", "aac"]);
}

#[test]
fn http_port_off_taken_and_default() {
    // --http-port 0: nothing of its own, and the banner says so.
    let proxy = Proxy::start(&["--http-port", "0", "--demo"]);
    let banner = tunnel_banner(&proxy);
    assert!(
        banner.starts_with("(RTSP-over-HTTP tunneling is not available")
            && banner.contains(&format!("the RTSP port {} accepts it", proxy.port())),
        "{banner}"
    );
    drop(proxy);

    // An explicit port that is taken: a clear start-up error, status 1 (on
    // IPv4 only: either family binding would do).
    let holder = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let taken = holder.local_addr().expect("addr").port();
    let mut cmd = Proxy::command(
        free_port(),
        &[
            "--bind",
            "127.0.0.1",
            "--http-port",
            &taken.to_string(),
            "--demo",
        ],
    );
    let out = run_with_timeout(&mut cmd, Duration::from_secs(10)).expect("exits");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Failed to create the RTSP-over-HTTP tunneling port")
            && stderr.contains(&format!("port number: {taken}")),
        "{stderr}"
    );
    drop(holder);

    // The default: live555's 80, else 8000, else 8080, else none; whichever is
    // free here (other proxies may hold some), the banner tells, and a port it
    // names serves tunnels.
    // (IPv4 loopback only: a port it names is then ours on 127.0.0.1.)
    let mut cmd = std::process::Command::new(Proxy::binary());
    cmd.env_remove("RUST_LOG").args([
        "-p",
        &free_port().to_string(),
        "--bind",
        "127.0.0.1",
        "--demo",
    ]);
    let proc = Proc::spawn("proxy-default-http", &mut cmd).expect("spawn");
    let banner = proc
        .wait_for_line("RTSP-over-HTTP tunneling", Duration::from_secs(10))
        .expect("banner");
    let chosen = banner
        .strip_prefix("(We use port ")
        .and_then(|r| r.strip_suffix(" for optional RTSP-over-HTTP tunneling.)"))
        .map(|p| p.parse::<u16>().expect("a port"));
    match chosen {
        Some(port) => {
            assert!([80, 8000, 8080].contains(&port), "{banner}");
            let s = ffprobe_streams(&format!("rtsp://127.0.0.1:{port}/demo"), "http", PROBE)
                .expect("tunnel on the default port");
            assert_eq!(codecs(&s), ["h264"]);
        }
        None => assert!(
            banner.starts_with("(RTSP-over-HTTP tunneling is not available"),
            "{banner}"
        ),
    }
}
