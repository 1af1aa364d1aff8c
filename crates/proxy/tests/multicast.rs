//! End-to-end tests of multicast: a GStreamer back end that requires multicast,
//! pulled by the proxy, and the proxy serving multicast (`--multicast-range`)
//! to GStreamer's `rtspsrc protocols=udp-mcast`.
//!
//! Multicast between processes of one host needs its own network: each test
//! creates two network namespaces joined by a veth pair ([`NetPair`]; the back
//! end in the first, the proxy and its clients in the second), and deletes them
//! at the end, also on failure. Without root (or `ip`), those tests say so and
//! pass without running.

mod support;

use std::thread;
use std::time::Duration;

use support::*;

const PROBE: Duration = Duration::from_secs(25);
const GST: Duration = Duration::from_secs(30);

/// The namespaces, or None (with a message) where they cannot be made.
fn net_or_skip(test: &str) -> Option<NetPair> {
    match NetPair::create() {
        Ok(net) => Some(net),
        Err(e) => {
            eprintln!("[e2e] skipping {test}: cannot create network namespaces ({e})");
            None
        }
    }
}

/// A back end in the first namespace, listening on its veth address.
fn backend_in(net: &NetPair, multicast: bool) -> Backend {
    Backend::start(BackendOpts {
        netns: Some(net.first.clone()),
        multicast: multicast.then(|| ("239.255.1.1".to_owned(), "239.255.1.10".to_owned())),
        extra_args: vec!["--address".into(), FIRST_ADDR.into()],
        ..Default::default()
    })
}

fn codecs(streams: &[ProbedStream]) -> Vec<&str> {
    streams.iter().map(|s| s.codec_name.as_str()).collect()
}

/// A log line without its colour escapes.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The `Transport:` value of the first response in `text`.
fn transport_of(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("Transport:"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no Transport in {text:?}"))
}

/// A back end that offers only multicast (461 to unicast, `c=` group in its
/// SDP) is received by joining its group, and relayed to unicast clients.
#[test]
fn a_multicast_only_back_end_is_received_and_served_to_unicast_clients() {
    let Some(net) =
        net_or_skip("a_multicast_only_back_end_is_received_and_served_to_unicast_clients")
    else {
        return;
    };
    let backend = backend_in(&net, true);
    NetPair::run_in(&net.second, || {
        let proxy = Proxy::start(&["-v", backend.url()]);
        let url = proxy.url("proxyStream");
        let streams = ffprobe_streams(&url, "udp", PROBE).expect("ffprobe over UDP");
        assert_eq!(codecs(&streams), vec!["h264", "aac"], "{streams:?}");
        assert_eq!(
            (streams[0].width, streams[0].height),
            (Some(320), Some(240))
        );
        gst_play(&url, "tcp", 30, GST).expect("gstreamer over TCP");
        let lines = proxy.proc.lines();
        let joined: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("receiving the back end's multicast 239.255.1."))
            .collect();
        assert!(joined.len() >= 2, "both tracks joined: {lines:#?}");
        assert!(
            !lines
                .iter()
                .any(|l| l.contains("switching the back end to RTP over TCP")),
            "no TCP fallback: {lines:#?}"
        );
        assert_eq!(backend.responses(461), 0, "multicast asked at once (SDP)");
    });
}

/// Multicast clients of one stream (GStreamer's rtspsrc, ffmpeg) share one
/// group per track (the SETUP
/// answers agree, whatever destination a client names); they get media beside
/// a unicast client; the last one leaving stops the group and the back end is
/// paused.
#[test]
fn multicast_clients_share_one_group_and_the_last_one_stops_it() {
    let Some(net) = net_or_skip("multicast_clients_share_one_group_and_the_last_one_stops_it")
    else {
        return;
    };
    let backend = backend_in(&net, false);
    NetPair::run_in(&net.second, || {
        let proxy = Proxy::start(&[
            "-v",
            "--multicast-range",
            "239.255.42.0/24",
            "--multicast-port",
            "22000",
            "--multicast-ttl",
            "2",
            "--linger",
            "0.5",
            backend.url(),
        ]);
        let url = proxy.url("proxyStream");
        // The raw exchanges below read until the proxy is quiet: let it
        // describe the back end first.
        proxy
            .proc
            .wait_for_line("state=described", Duration::from_secs(15))
            .expect("the back end is described");
        let setup = |cseq: u32, transport: &str| {
            let req = format!(
                "SETUP {url}/track1 RTSP/1.0\r\nCSeq: {cseq}\r\nTransport: {transport}\r\n\r\n"
            );
            rtsp_exchange(proxy.addr(), req.as_bytes(), Duration::from_secs(15)).expect("raw SETUP")
        };
        let first = transport_of(&setup(1, "RTP/AVP;multicast"));
        let second = transport_of(&setup(
            1,
            "RTP/AVP;multicast;destination=10.200.0.1;port=4000-4001;ttl=9",
        ));
        assert_eq!(first, second, "one group for every client of the stream");
        assert!(
            first.starts_with("RTP/AVP;multicast;destination=239.255.42.0;source=10.200.0.2;port=22000-22001;ttl=2"),
            "{first}"
        );

        // Three multicast clients (two GStreamer, one ffmpeg) and a unicast
        // one at once.
        thread::scope(|s| {
            let a = s.spawn(|| gst_play(&url, "udp-mcast", 75, GST));
            let b = s.spawn(|| gst_play(&url, "udp-mcast", 75, GST));
            let m = s.spawn(|| ffprobe_streams(&url, "udp_multicast", PROBE));
            let u = s.spawn(|| ffprobe_streams(&url, "udp", PROBE));
            a.join().expect("thread").expect("first multicast client");
            b.join().expect("thread").expect("second multicast client");
            let streams = m.join().expect("thread").expect("ffmpeg multicast client");
            assert_eq!(codecs(&streams), vec!["h264", "aac"]);
            let streams = u.join().expect("thread").expect("unicast client");
            assert_eq!(codecs(&streams), vec!["h264", "aac"]);
        });
        let lines: Vec<String> = proxy.proc.lines().iter().map(|l| plain(l)).collect();
        let setups: Vec<&String> = lines
            .iter()
            .filter(|l| {
                l.contains("client SETUP") && l.contains("track=1") && l.contains(";multicast;")
            })
            .collect();
        assert_eq!(setups.len(), 5, "{setups:#?}");
        assert!(
            setups
                .iter()
                .all(|l| l.contains("destination=239.255.42.0") && l.contains("port=22000-22001")),
            "{setups:#?}"
        );
        assert_eq!(
            proxy
                .proc
                .count_lines_settled("multicast group 239.255.42.0 allocated", 1),
            1,
            "the group stays while the stream has multicast clients"
        );
        // Everybody left: the group stopped, the back end is paused.
        proxy
            .proc
            .wait_for_line("multicast group stopped", Duration::from_secs(10))
            .expect("the group stops with its last client");
        backend
            .wait_for_requests("PAUSE", 1, Duration::from_secs(10))
            .expect("the back end is paused when nobody watches");
        assert!(
            !proxy
                .proc
                .lines()
                .iter()
                .any(|l| l.contains("switching the back end")),
            "the back end stayed on UDP"
        );
    });
}

/// Without `--multicast-range`, a multicast SETUP is refused (loopback only).
#[test]
fn multicast_setup_without_the_options_is_461() {
    let proxy = Proxy::start(&["--demo"]);
    let req = format!(
        "SETUP {}/track1 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;multicast;destination=239.255.42.1;port=5000-5001\r\n\r\n",
        proxy.url("demo")
    );
    let resp =
        rtsp_exchange(proxy.addr(), req.as_bytes(), Duration::from_secs(10)).expect("raw SETUP");
    assert!(resp.starts_with("RTSP/1.0 461 "), "{resp}");
}
