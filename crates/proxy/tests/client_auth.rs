//! End-to-end tests of client authentication (`-C`): real clients (ffprobe,
//! GStreamer's rtspsrc, retina) log in with Digest over every transport, the
//! HTTP tunnel included; strangers get 401; a proxy chain logs in with `-u`.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

const PROBE: Duration = Duration::from_secs(30);
const GST: Duration = Duration::from_secs(40);
const RAW: Duration = Duration::from_secs(5);

/// `rtsp://user:pass@127.0.0.1:<port>/<name>`.
fn with_login(url: &str, user: &str, pass: &str) -> String {
    url.replacen("rtsp://", &format!("rtsp://{user}:{pass}@"), 1)
}

fn codecs(streams: &[ProbedStream]) -> Vec<&str> {
    streams.iter().map(|s| s.codec_name.as_str()).collect()
}

#[test]
fn clients_log_in_with_digest_over_udp_tcp_and_the_http_tunnel() {
    let proxy = Proxy::start(&[
        "-V", "--demo", "-C", "viewer", "s3cret", "-C", "admin", "pa ss",
    ]);
    let url = proxy.url("demo");
    for transport in ["udp", "tcp", "http"] {
        let streams = ffprobe_streams(&with_login(&url, "viewer", "s3cret"), transport, PROBE)
            .unwrap_or_else(|e| panic!("{transport}: {e}"));
        assert_eq!(codecs(&streams), ["h264"], "{transport}");
    }
    let admin = ffprobe_streams(&with_login(&url, "admin", "pa%20ss"), "tcp", PROBE)
        .expect("a second user, a password with a space");
    assert_eq!(codecs(&admin), ["h264"]);

    let anonymous = ffprobe_streams(&url, "tcp", PROBE).expect_err("no login");
    assert!(anonymous.contains("401"), "{anonymous}");
    let wrong = ffprobe_streams(&with_login(&url, "viewer", "guess"), "tcp", PROBE)
        .expect_err("wrong password");
    assert!(wrong.contains("401"), "{wrong}");

    // GStreamer with user-id / user-pw.
    let mut gst = Command::new("gst-launch-1.0");
    gst.args(["-e", "rtspsrc", "name=s"])
        .arg(format!("location={url}"))
        .args([
            "user-id=viewer",
            "user-pw=s3cret",
            "protocols=tcp",
            "latency=200",
        ])
        .args(rtspsrc_branches(
            "video",
            &["decodebin", "!", "fakesink", "sync=false", "num-buffers=40"],
        ));
    let out = run_with_timeout(&mut gst, GST).expect("gst-launch runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Got EOS from element \"pipeline0\""),
        "gst with a login plays to the end: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Passwords never reach the log, even at -V.
    let log = proxy.proc.lines().join("\n");
    assert!(!log.contains("s3cret") && !log.contains("pa ss"), "{log}");
    assert!(
        log.contains("client login refused"),
        "wrong passwords are logged"
    );
}

#[test]
fn the_strict_client_plays_a_whole_session_under_digest() {
    let backend = Backend::start(BackendOpts::default());
    let proxy = Proxy::start(&["-C", "viewer", "s3cret", backend.url()]);
    let url = with_login(&proxy.url("proxyStream"), "viewer", "s3cret");
    for transport in [RetinaTransport::Tcp, RetinaTransport::Udp] {
        let report = retina_play(&url, transport, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("retina over {transport}: {e}"));
        report
            .check_clean(0.5)
            .unwrap_or_else(|e| panic!("retina over {transport}: {e}"));
    }
}

#[test]
fn options_is_open_and_basic_needs_tls_or_an_explicit_choice() {
    let strict = Proxy::start(&["--demo", "-C", "viewer", "s3cret"]);
    let options = rtsp_exchange(
        strict.addr(),
        b"OPTIONS rtsp://127.0.0.1/demo RTSP/1.0\r\nCSeq: 1\r\n\r\n",
        RAW,
    )
    .expect("OPTIONS");
    assert!(options.starts_with("RTSP/1.0 200"), "{options}");

    let describe = rtsp_exchange(
        strict.addr(),
        b"DESCRIBE rtsp://127.0.0.1/nosuch RTSP/1.0\r\nCSeq: 2\r\n\r\n",
        RAW,
    )
    .expect("DESCRIBE");
    assert!(
        describe.starts_with("RTSP/1.0 401"),
        "unknown streams too: {describe}"
    );
    assert!(
        describe.contains("WWW-Authenticate: Digest realm=\"rtsp-proxy\", nonce=\""),
        "{describe}"
    );
    assert!(
        !describe.contains("Basic"),
        "no Basic offered in clear: {describe}"
    );

    // "viewer:s3cret" in Basic.
    let basic = b"DESCRIBE rtsp://127.0.0.1/demo RTSP/1.0\r\nCSeq: 3\r\nAuthorization: Basic dmlld2VyOnMzY3JldA==\r\n\r\n";
    let refused = rtsp_exchange(strict.addr(), basic, RAW).expect("Basic");
    assert!(refused.starts_with("RTSP/1.0 401"), "{refused}");

    let lenient = Proxy::start(&["--demo", "-C", "viewer", "s3cret", "--client-basic"]);
    let accepted = rtsp_exchange(lenient.addr(), basic, RAW).expect("Basic");
    assert!(accepted.starts_with("RTSP/1.0 200"), "{accepted}");
    assert!(accepted.contains("application/sdp"), "{accepted}");
    let offered = rtsp_exchange(
        lenient.addr(),
        b"DESCRIBE rtsp://127.0.0.1/demo RTSP/1.0\r\nCSeq: 4\r\n\r\n",
        RAW,
    )
    .expect("DESCRIBE");
    assert!(
        offered.contains("WWW-Authenticate: Basic realm=\"rtsp-proxy\""),
        "{offered}"
    );
}

#[test]
fn a_proxy_with_back_end_credentials_pulls_from_one_that_wants_a_login() {
    let upstream = Proxy::start(&["--demo", "-C", "viewer", "s3cret"]);
    let source = upstream.url("demo");
    let with_option = Proxy::start(&["-u", "viewer", "s3cret", &source]);
    let with_url = Proxy::start(&[&with_login(&source, "viewer", "s3cret")]);
    for (what, proxy) in [("-u", &with_option), ("URL", &with_url)] {
        let streams = ffprobe_streams(&proxy.url("proxyStream"), "tcp", PROBE)
            .unwrap_or_else(|e| panic!("credentials by {what}: {e}"));
        assert_eq!(codecs(&streams), ["h264"], "{what}");
    }
    // Without credentials the downstream proxy cannot describe the stream.
    let stranger = Proxy::start(&[&source]);
    let refused = ffprobe_streams(&stranger.url("proxyStream"), "tcp", PROBE)
        .expect_err("the upstream proxy refuses");
    assert!(refused.contains("503"), "{refused}");
    let log = upstream.proc.lines().join("\n");
    assert!(!log.contains("s3cret"), "{log}");
}
