//! End-to-end tests of the core proxy: the real `rtsp-proxy` binary between a real
//! GStreamer RTSP back end (or the built-in demo) and real clients (ffprobe,
//! ffmpeg, GStreamer's rtspsrc), all on loopback.

mod support;

use std::thread;
use std::time::Duration;

use support::*;

const PROBE: Duration = Duration::from_secs(30);
const GST: Duration = Duration::from_secs(40);

fn codecs(streams: &[ProbedStream]) -> Vec<&str> {
    streams.iter().map(|s| s.codec_name.as_str()).collect()
}

fn assert_h264_aac(streams: &[ProbedStream], what: &str) {
    assert_eq!(codecs(streams), vec!["h264", "aac"], "{what}: {streams:?}");
    assert_eq!(
        (streams[0].width, streams[0].height),
        (Some(320), Some(240)),
        "{what}"
    );
    assert_eq!(streams[1].sample_rate, Some(48000), "{what}");
}

#[test]
fn demo_stream_plays_over_udp_tcp_and_http_tunnel() {
    let proxy = Proxy::start(&["--demo"]);
    let url = proxy.url("demo");
    for transport in ["udp", "tcp", "http"] {
        let streams =
            ffprobe_streams(&url, transport, PROBE).unwrap_or_else(|e| panic!("{transport}: {e}"));
        assert_eq!(codecs(&streams), vec!["h264"], "{transport}");
        assert_eq!(
            (streams[0].width, streams[0].height),
            (Some(320), Some(240))
        );
    }
    gst_play(&url, "udp", 30, GST).expect("gstreamer over udp");
    // The demo loops with continuous timestamps: a recording longer than the
    // 2 s clip must stay monotonic.
    let rec = ffmpeg_record(&url, "tcp", 5).expect("ffmpeg record");
    assert!(
        rec.video_frames >= 100,
        "5 s at 25 fps, got {}",
        rec.video_frames
    );
    assert!(!rec.non_monotonic_dts, "{}", rec.stderr);
}

#[test]
fn gstreamer_back_end_h264_aac_plays_through_every_transport() {
    let backend = Backend::start(BackendOpts::default());
    let proxy = Proxy::start(&[backend.url()]);
    let url = proxy.url("proxyStream");
    for transport in ["udp", "tcp", "http"] {
        let streams =
            ffprobe_streams(&url, transport, PROBE).unwrap_or_else(|e| panic!("{transport}: {e}"));
        assert_h264_aac(&streams, transport);
    }
    for protocols in ["udp", "tcp", "http"] {
        gst_play_media(&url, protocols, "video", 40, GST)
            .unwrap_or_else(|e| panic!("gst {protocols}: {e}"));
    }
    gst_play_media(&url, "tcp", "audio", 40, GST).expect("gst audio");
    assert_eq!(
        backend.connections(),
        1,
        "one back-end connection, whatever the clients did"
    );
    assert_eq!(backend.requests("DESCRIBE"), 1);
}

#[test]
fn ffmpeg_copy_receives_both_tracks_with_monotonic_timestamps() {
    let backend = Backend::start(BackendOpts::default());
    let proxy = Proxy::start(&[backend.url()]);
    for transport in ["tcp", "udp", "http"] {
        let rec = ffmpeg_record(&proxy.url("proxyStream"), transport, 4)
            .unwrap_or_else(|e| panic!("{transport}: {e}"));
        assert!(
            rec.video_frames >= 75,
            "{transport}: 4 s at 25 fps, got {} video frames",
            rec.video_frames
        );
        assert!(
            rec.audio_frames >= 100,
            "{transport}: got {} audio frames",
            rec.audio_frames
        );
        assert!(!rec.non_monotonic_dts, "{transport}: {}", rec.stderr);
    }
}

#[test]
fn several_clients_at_once_share_one_back_end_session() {
    let backend = Backend::start(BackendOpts::default());
    let proxy = Proxy::start(&["--linger", "5", backend.url()]);
    let url = proxy.url("proxyStream");
    let (u1, u2, u3) = (url.clone(), url.clone(), url.clone());
    let a = thread::spawn(move || ffmpeg_record(&u1, "tcp", 5).map(|r| r.video_frames));
    let b = thread::spawn(move || ffmpeg_record(&u2, "udp", 5).map(|r| r.video_frames));
    let c = thread::spawn(move || gst_play_media(&u3, "udp", "video", 60, GST));
    let frames_tcp = a.join().expect("thread").expect("ffmpeg tcp");
    let frames_udp = b.join().expect("thread").expect("ffmpeg udp");
    c.join().expect("thread").expect("gstreamer");
    assert!(
        frames_tcp >= 90 && frames_udp >= 90,
        "tcp {frames_tcp}, udp {frames_udp}"
    );
    assert_eq!(
        backend.connections(),
        1,
        "all clients share one back-end connection"
    );
    assert_eq!(backend.requests("DESCRIBE"), 1);
    assert_eq!(backend.requests("SETUP"), 2, "one SETUP per track, once");
    assert_eq!(
        backend.requests("PLAY"),
        1,
        "the back end is played once for overlapping clients"
    );
}

#[test]
fn two_urls_become_proxystream_1_and_2() {
    let b1 = Backend::start(BackendOpts::codecs("h264"));
    let b2 = Backend::start(BackendOpts::codecs("h265"));
    let proxy = Proxy::start(&[b1.url(), b2.url()]);
    proxy
        .proc
        .wait_for_line("proxyStream-2", Duration::from_secs(5))
        .expect("second stream announced");
    let s1 = ffprobe_streams(&proxy.url("proxyStream-1"), "tcp", PROBE).expect("stream 1");
    let s2 = ffprobe_streams(&proxy.url("proxyStream-2"), "tcp", PROBE).expect("stream 2");
    assert_eq!(codecs(&s1), vec!["h264"]);
    assert_eq!(codecs(&s2), vec!["hevc"]);
    let out = rtsp_exchange(
        proxy.addr(),
        format!(
            "DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\n\r\n",
            proxy.url("proxyStream")
        )
        .as_bytes(),
        PROBE,
    )
    .expect("exchange");
    assert!(
        out.starts_with("RTSP/1.0 404"),
        "with two URLs there is no plain proxyStream: {out}"
    );
}

#[test]
fn stream_name_prefix_from_dash_e() {
    let backend = Backend::start(BackendOpts::codecs("h264"));
    let proxy = Proxy::start(&["-e", "cams/front", backend.url()]);
    let s = ffprobe_streams(&proxy.url("cams/front"), "tcp", PROBE).expect("prefixed stream");
    assert_eq!(codecs(&s), vec!["h264"]);
}

fn probe_codec_everywhere(codec: &str, expected: &str) {
    let backend = Backend::start(BackendOpts::codecs(codec));
    let proxy = Proxy::start(&[backend.url()]);
    let url = proxy.url("proxyStream");
    for transport in ["udp", "tcp", "http"] {
        let s = ffprobe_streams(&url, transport, PROBE)
            .unwrap_or_else(|e| panic!("{codec} over {transport}: {e}"));
        assert_eq!(codecs(&s), vec![expected], "{codec} over {transport}");
    }
    let media = if matches!(codec, "aac" | "opus") {
        "audio"
    } else {
        "video"
    };
    for protocols in ["udp", "tcp", "http"] {
        gst_play_media(&url, protocols, media, 20, GST)
            .unwrap_or_else(|e| panic!("gst {codec} over {protocols}: {e}"));
    }
}

#[test]
fn h265_back_end() {
    probe_codec_everywhere("h265", "hevc");
}

#[test]
fn mjpeg_back_end() {
    probe_codec_everywhere("mjpeg", "mjpeg");
}

#[test]
fn opus_back_end() {
    probe_codec_everywhere("opus", "opus");
}

fn digest_backend() -> Backend {
    Backend::start(BackendOpts {
        user: Some("viewer".into()),
        password: Some("s3cret-pw".into()),
        auth: Some("digest".into()),
        ..BackendOpts::default()
    })
}

#[test]
fn digest_back_end_with_dash_u() {
    let backend = digest_backend();
    let proxy = Proxy::start(&["-V", "-u", "viewer", "s3cret-pw", backend.url()]);
    let s = ffprobe_streams(&proxy.url("proxyStream"), "tcp", PROBE).expect("probe through digest");
    assert_h264_aac(&s, "digest -u");
    assert!(backend.responses(401) >= 1, "the back end did challenge");
    let log = proxy.proc.lines().join("\n");
    assert!(
        log.contains("Authorization: <redacted>"),
        "the -V log shows the header, redacted"
    );
    assert!(
        !log.contains("s3cret-pw"),
        "the password never appears in the log"
    );
}

#[test]
fn digest_back_end_with_credentials_in_the_url() {
    let backend = digest_backend();
    let with_creds = backend.url_with_credentials();
    let proxy = Proxy::start(&["-V", &with_creds]);
    let s = ffprobe_streams(&proxy.url("proxyStream"), "udp", PROBE).expect("probe through digest");
    assert_h264_aac(&s, "digest in URL");
    let log = proxy.proc.lines().join("\n");
    assert!(
        !log.contains("s3cret-pw"),
        "the password never appears in the output"
    );
    let sdp = rtsp_exchange(
        proxy.addr(),
        format!(
            "DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\n\r\n",
            proxy.url("proxyStream")
        )
        .as_bytes(),
        PROBE,
    )
    .expect("describe");
    assert!(
        sdp.starts_with("RTSP/1.0 200") && !sdp.contains("s3cret") && !sdp.contains("viewer"),
        "{sdp}"
    );
}

#[test]
fn wrong_back_end_credentials_are_reported_and_retried() {
    let backend = digest_backend();
    let proxy = Proxy::start(&["-u", "viewer", "wrong-pw", backend.url()]);
    proxy
        .proc
        .wait_for_line("authentication failed", Duration::from_secs(15))
        .expect("a clear log line");
    let out = rtsp_exchange(
        proxy.addr(),
        format!(
            "DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\n\r\n",
            proxy.url("proxyStream")
        )
        .as_bytes(),
        PROBE,
    )
    .expect("describe");
    assert!(out.starts_with("RTSP/1.0 503"), "not reachable yet: {out}");
    assert!(!proxy.proc.lines().join("\n").contains("wrong-pw"));
}

#[test]
fn back_end_refusing_udp_falls_back_to_tcp_by_itself() {
    let backend = Backend::start(BackendOpts {
        protocols: Some("tcp".into()),
        ..BackendOpts::default()
    });
    let proxy = Proxy::start(&[backend.url()]);
    let rec = ffmpeg_record(&proxy.url("proxyStream"), "udp", 3)
        .expect("plays despite the back end refusing UDP");
    assert!(rec.video_frames >= 50, "got {}", rec.video_frames);
    assert!(
        backend.responses(461) >= 1,
        "the back end refused UDP first"
    );
    proxy
        .proc
        .wait_for_line(
            "switching the back end to RTP over TCP",
            Duration::from_secs(1),
        )
        .expect("the fallback is logged");
}

#[test]
fn back_end_refusing_udp_with_dash_t() {
    let backend = Backend::start(BackendOpts {
        protocols: Some("tcp".into()),
        ..BackendOpts::default()
    });
    let proxy = Proxy::start(&["-t", backend.url()]);
    let rec = ffmpeg_record(&proxy.url("proxyStream"), "tcp", 3).expect("plays over TCP");
    assert!(rec.video_frames >= 50, "got {}", rec.video_frames);
    assert_eq!(
        backend.responses(461),
        0,
        "with -t the proxy never asks for UDP"
    );
}

#[test]
fn proxy_of_a_proxy() {
    let upstream = Proxy::start(&["--demo"]);
    let downstream = Proxy::start(&["-t", &upstream.url("demo")]);
    let s = ffprobe_streams(&downstream.url("proxyStream"), "udp", PROBE).expect("chained proxies");
    assert_eq!(codecs(&s), vec!["h264"]);
}

#[test]
fn last_client_leaving_pauses_the_back_end_and_the_next_resumes_it() {
    let backend = Backend::start(BackendOpts::default());
    let proxy = Proxy::start(&["--linger", "0.5", backend.url()]);
    ffprobe_streams(&proxy.url("proxyStream"), "tcp", PROBE).expect("first client");
    backend
        .wait_for_requests("PAUSE", 1, Duration::from_secs(10))
        .expect("PAUSE after the last client left");
    ffprobe_streams(&proxy.url("proxyStream"), "tcp", PROBE).expect("second client");
    backend
        .wait_for_requests("PLAY", 2, Duration::from_secs(10))
        .expect("PLAY again for the next client");
    assert_eq!(backend.connections(), 1);
}

#[test]
fn graceful_shutdown_tears_the_back_end_down() {
    let backend = Backend::start(BackendOpts::default());
    let proxy = Proxy::start(&["--linger", "30", backend.url()]);
    ffprobe_streams(&proxy.url("proxyStream"), "tcp", PROBE)
        .expect("play once so the back end is set up");
    proxy.proc.signal(Signal::Term).expect("SIGTERM");
    let status = proxy
        .proc
        .wait_timeout(Duration::from_secs(10))
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(
        backend.requests("TEARDOWN") >= 1,
        "TEARDOWN sent to the back end"
    );
}

fn exchange(proxy: &Proxy, raw: &str) -> String {
    rtsp_exchange(proxy.addr(), raw.as_bytes(), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn status_of(resp: &str) -> &str {
    resp.get(9..12).unwrap_or("")
}

#[test]
fn bad_requests_get_the_right_status_and_the_proxy_keeps_serving() {
    let proxy = Proxy::start(&["--demo"]);
    let url = proxy.url("demo");
    let cases: Vec<(String, &str)> = vec![
        (format!("DESCRIBE {} RTSP/1.0\r\nCSeq: 2\r\n\r\n", proxy.url("nosuch")), "404"),
        (format!("SETUP {}/track9 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n", url), "404"),
        (format!("PLAY {url} RTSP/1.0\r\nCSeq: 3\r\nSession: 12345678\r\n\r\n"), "454"),
        (format!("OPTIONS {url} RTSP/2.0\r\nCSeq: 4\r\n\r\n"), "505"),
        (format!("FOO {url} RTSP/1.0\r\nCSeq: 5\r\n\r\n"), "501"),
        (format!("RECORD {url} RTSP/1.0\r\nCSeq: 6\r\n\r\n"), "405"),
        (format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 7\r\nRequire: com.example.thing\r\n\r\n"), "551"),
        (format!("SETUP {url}/track1 RTSP/1.0\r\nCSeq: 8\r\nTransport: RTP/AVP;multicast\r\n\r\n"), "461"),
        (format!("OPTIONS {url} RTSP/1.0\r\n\r\n"), "400"),
        ("this is not RTSP at all\r\n\r\n".to_string(), "400"),
    ];
    for (req, want) in &cases {
        let resp = exchange(&proxy, req);
        assert_eq!(status_of(&resp), *want, "request {req:?} got {resp:?}");
    }
    // PAUSE before PLAY is a state error.
    let setup = exchange(&proxy, &format!("SETUP {url}/track1 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n"));
    assert_eq!(status_of(&setup), "200", "{setup}");
    let session = setup
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .and_then(|v| v.split(';').next())
        .expect("session id")
        .to_string();
    let pause = exchange(
        &proxy,
        &format!("PAUSE {url} RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n"),
    );
    assert_eq!(status_of(&pause), "455", "{pause}");
    // destination= pointing elsewhere is never used: the reply names the client.
    let reflect = exchange(
        &proxy,
        &format!("SETUP {url}/track1 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;destination=192.0.2.99;client_port=5000-5001\r\n\r\n"),
    );
    assert!(
        reflect.contains("destination=127.0.0.1") && !reflect.contains("192.0.2.99"),
        "{reflect}"
    );
    // Oversized input: an endless header, and a huge declared body.
    let huge_header = format!(
        "OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    let resp = exchange(&proxy, &huge_header);
    assert!(
        resp.starts_with("RTSP/1.0 4"),
        "oversized head refused: {resp:?}"
    );
    let huge_body =
        format!("SET_PARAMETER {url} RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 100000000\r\n\r\n");
    let resp = exchange(&proxy, &huge_body);
    assert_eq!(status_of(&resp), "413", "{resp}");
    let many = (0..500)
        .map(|i| format!("X-H{i}: v\r\n"))
        .collect::<String>();
    let resp = exchange(
        &proxy,
        &format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\n{many}\r\n"),
    );
    assert_eq!(status_of(&resp), "400", "too many headers: {resp}");
    // Pipelined requests on one connection are answered in order.
    let two = exchange(
        &proxy,
        &format!(
            "OPTIONS {url} RTSP/1.0\r\nCSeq: 11\r\n\r\nOPTIONS {url} RTSP/1.0\r\nCSeq: 12\r\n\r\n"
        ),
    );
    let first = two.find("CSeq: 11").expect("first answer");
    let second = two.find("CSeq: 12").expect("second answer");
    assert!(first < second);
    // And after all that, the proxy still serves real clients.
    let s = ffprobe_streams(&url, "tcp", PROBE).expect("still serving");
    assert_eq!(codecs(&s), vec!["h264"]);
}

#[test]
fn describe_answer_has_our_controls_and_keeps_codec_attributes() {
    let backend = Backend::start(BackendOpts::default());
    let proxy = Proxy::start(&[backend.url()]);
    let url = proxy.url("proxyStream");
    let resp = exchange(
        &proxy,
        &format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n"),
    );
    assert!(resp.starts_with("RTSP/1.0 200 OK"), "{resp}");
    assert!(resp.contains(&format!("Content-Base: {url}/")), "{resp}");
    assert!(
        resp.contains("a=control:track1") && resp.contains("a=control:track2"),
        "{resp}"
    );
    assert!(resp.contains("a=rtpmap:96 H264/90000"), "{resp}");
    assert!(resp.contains("sprop-parameter-sets="), "fmtp kept: {resp}");
    assert!(
        resp.contains("MPEG4-GENERIC/48000/2") && resp.contains("config="),
        "{resp}"
    );
    assert!(
        !resp.contains("stream=0") && !resp.contains("a=ssrc:"),
        "back-end controls and SSRCs are not shown: {resp}"
    );
}

#[test]
fn usage_errors_exit_with_status_1() {
    for args in [
        vec![],
        vec!["-p"],
        vec!["-p", "0", "rtsp://127.0.0.1/x"],
        vec!["http://not-rtsp/"],
        vec!["rtsp://h/x", "-v"],
    ] {
        let out = std::process::Command::new(Proxy::binary())
            .args(&args)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            !String::from_utf8_lossy(&out.stderr).is_empty(),
            "{args:?}: usage on stderr"
        );
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
}

#[test]
fn ipv6_clients_over_udp_and_tcp() {
    let proxy = Proxy::start(&["--demo"]);
    let url = format!("rtsp://[::1]:{}/demo", proxy.port());
    for transport in ["udp", "tcp"] {
        let s = ffprobe_streams(&url, transport, PROBE)
            .unwrap_or_else(|e| panic!("IPv6 {transport}: {e}"));
        assert_eq!(codecs(&s), vec!["h264"]);
    }
    gst_play(&url, "udp", 20, GST).expect("gstreamer over IPv6 UDP");
}

#[test]
fn basic_auth_back_end() {
    let backend = Backend::start(BackendOpts {
        user: Some("viewer".into()),
        password: Some("basic-pw".into()),
        auth: Some("basic".into()),
        ..BackendOpts::default()
    });
    let proxy = Proxy::start(&["-u", "viewer", "basic-pw", backend.url()]);
    let s =
        ffprobe_streams(&proxy.url("proxyStream"), "tcp", PROBE).expect("probe through basic auth");
    assert_h264_aac(&s, "basic");
    assert!(backend.responses(401) >= 1);
}
