//! End-to-end checks of the test back end itself (no proxy involved): the
//! GStreamer RTSP server plays what the other end-to-end tests rely on, and
//! the helpers in `support` drive it and the clients correctly.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use support::clients::{gst_failed_only_at_shutdown, parse_framecrc, parse_probe};
use support::{
    ffmpeg_record, ffprobe_streams, free_port, gst_play, gst_play_media, rtsp_exchange, Backend,
    BackendOpts, ProbedStream, Signal,
};

const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

fn video(codec: &str) -> ProbedStream {
    ProbedStream {
        codec_name: codec.to_owned(),
        codec_type: "video".to_owned(),
        width: Some(320),
        height: Some(240),
        sample_rate: None,
    }
}

fn audio(codec: &str) -> ProbedStream {
    ProbedStream {
        codec_name: codec.to_owned(),
        codec_type: "audio".to_owned(),
        width: None,
        height: None,
        sample_rate: Some(48_000),
    }
}

fn probe(url: &str, transport: &str) -> Vec<ProbedStream> {
    ffprobe_streams(url, transport, PROBE_TIMEOUT)
        .unwrap_or_else(|e| panic!("ffprobe over {transport} failed: {e}"))
}

#[test]
fn h264_aac_probes_over_udp_and_tcp() {
    let backend = Backend::start(BackendOpts::default());
    for transport in ["udp", "tcp"] {
        assert_eq!(
            probe(backend.url(), transport),
            vec![video("h264"), audio("aac")],
            "over {transport}"
        );
    }
    assert_eq!(backend.connections(), 2);
    assert_eq!(backend.requests("DESCRIBE"), 2);
    assert_eq!(backend.requests("SETUP"), 4);
    assert!(
        backend.requests("PLAY") >= 2,
        "ffprobe plays to read packets"
    );
    assert_eq!(
        backend.responses(200),
        backend.proc.count_lines("RESPONSE ")
    );
}

#[test]
fn h265_probes() {
    let backend = Backend::start(BackendOpts::codecs("h265"));
    assert_eq!(probe(backend.url(), "tcp"), vec![video("hevc")]);
}

#[test]
fn mjpeg_probes() {
    let backend = Backend::start(BackendOpts::codecs("mjpeg"));
    assert_eq!(probe(backend.url(), "udp"), vec![video("mjpeg")]);
}

#[test]
fn opus_probes() {
    let backend = Backend::start(BackendOpts::codecs("opus"));
    assert_eq!(probe(backend.url(), "tcp"), vec![audio("opus")]);
}

#[test]
fn video_and_audio_mixes_probe() {
    let backend = Backend::start(BackendOpts::codecs("h265,opus"));
    assert_eq!(
        probe(backend.url(), "udp"),
        vec![video("hevc"), audio("opus")]
    );
}

#[test]
fn tcp_only_back_end_refuses_udp() {
    let backend = Backend::start(BackendOpts {
        protocols: Some("tcp".to_owned()),
        ..Default::default()
    });
    // ffmpeg does not fall back from a refused UDP SETUP; whatever a client
    // does next, the back end must have refused the UDP transport.
    let over_udp = ffprobe_streams(backend.url(), "udp", PROBE_TIMEOUT);
    assert!(
        backend.responses(461) >= 1,
        "UDP SETUP must get 461: {over_udp:?}"
    );
    if let Ok(streams) = over_udp {
        assert_eq!(streams, vec![video("h264"), audio("aac")]);
    }
    assert_eq!(
        probe(backend.url(), "tcp"),
        vec![video("h264"), audio("aac")]
    );
}

#[test]
fn digest_auth_needs_credentials() {
    let backend = Backend::start(BackendOpts {
        user: Some("cam".to_owned()),
        password: Some("s3cret".to_owned()),
        ..Default::default()
    });
    let without = ffprobe_streams(backend.url(), "tcp", PROBE_TIMEOUT);
    assert!(without.is_err(), "no credentials must fail: {without:?}");
    // The back end reports its answer after sending it: ffprobe may have
    // exited before that line is read.
    backend
        .proc
        .wait_for_line("RESPONSE 401", Duration::from_secs(10))
        .expect("the back end answered 401");

    let wrong = backend.url().replacen("rtsp://", "rtsp://cam:wrong@", 1);
    assert!(ffprobe_streams(&wrong, "tcp", PROBE_TIMEOUT).is_err());

    assert_eq!(
        probe(&backend.url_with_credentials(), "tcp"),
        vec![video("h264"), audio("aac")]
    );

    let challenge = rtsp_exchange(
        backend.addr(),
        format!("DESCRIBE {} RTSP/1.0\r\nCSeq: 7\r\n\r\n", backend.url()).as_bytes(),
        Duration::from_secs(5),
    )
    .expect("raw DESCRIBE");
    assert!(challenge.starts_with("RTSP/1.0 401"), "{challenge}");
    assert!(
        challenge.contains("WWW-Authenticate: Digest "),
        "{challenge}"
    );
}

#[test]
fn basic_auth_needs_credentials() {
    let backend = Backend::start(BackendOpts {
        user: Some("cam".to_owned()),
        password: Some("s3cret".to_owned()),
        auth: Some("basic".to_owned()),
        ..Default::default()
    });
    assert!(ffprobe_streams(backend.url(), "tcp", PROBE_TIMEOUT).is_err());
    assert_eq!(
        probe(&backend.url_with_credentials(), "udp"),
        vec![video("h264"), audio("aac")]
    );
    let challenge = rtsp_exchange(
        backend.addr(),
        format!("DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\n\r\n", backend.url()).as_bytes(),
        Duration::from_secs(5),
    )
    .expect("raw DESCRIBE");
    assert!(
        challenge.contains("WWW-Authenticate: Basic "),
        "{challenge}"
    );
}

#[test]
fn ffmpeg_records_real_time_media() {
    let backend = Backend::start(BackendOpts::default());
    let started = Instant::now();
    let rec = ffmpeg_record(backend.url(), "tcp", 3).expect("ffmpeg record");
    let elapsed = started.elapsed();
    // 3 s at 25 fps and 48000/1024 AAC frames per second, give or take the
    // start-up, and a live source cannot deliver 3 s of media much faster.
    assert!((70..=85).contains(&rec.video_frames), "{rec:?}");
    assert!(
        (130..=155).contains(&rec.audio_frames),
        "{:?}",
        rec.audio_frames
    );
    assert!(rec.video_keyframes >= 3, "1 s GOP: {}", rec.video_keyframes);
    assert!(!rec.non_monotonic_dts, "{}", rec.stderr);
    assert!(
        elapsed >= Duration::from_millis(2_700),
        "too fast: {elapsed:?}"
    );
    assert_eq!(rec.media_type(0), Some("video"));
    assert_eq!(rec.media_type(1), Some("audio"));
}

#[test]
fn other_codecs_record_with_monotonic_timestamps() {
    for codecs in ["h265,opus", "mjpeg"] {
        let backend = Backend::start(BackendOpts::codecs(codecs));
        let rec = ffmpeg_record(backend.url(), "udp", 2).expect("ffmpeg record");
        assert!((45..=57).contains(&rec.video_frames), "{codecs}: {rec:?}");
        assert!(
            rec.video_keyframes >= 2,
            "{codecs}: {}",
            rec.video_keyframes
        );
        assert!(!rec.non_monotonic_dts, "{codecs}: {}", rec.stderr);
        if codecs.contains("opus") {
            // 20 ms Opus frames.
            assert!(
                (90..=110).contains(&rec.audio_frames),
                "{}",
                rec.audio_frames
            );
        }
    }
}

#[test]
fn gstreamer_plays_over_udp_tcp_and_http_tunnel() {
    let backend = Backend::start(BackendOpts::default());
    for protocols in ["udp", "tcp", "http"] {
        gst_play(backend.url(), protocols, 25, PROBE_TIMEOUT)
            .unwrap_or_else(|e| panic!("gst over {protocols}: {e}"));
    }
    gst_play_media(backend.url(), "tcp", "audio", 25, PROBE_TIMEOUT).expect("gst audio track");
    assert!(backend.requests("PLAY") >= 4);
}

#[test]
fn ffprobe_over_http_tunnel() {
    let backend = Backend::start(BackendOpts::codecs("h264"));
    assert_eq!(probe(backend.url(), "http"), vec![video("h264")]);
    // The tunnel is two TCP connections: GET (server to client), POST (client
    // to server).
    assert_eq!(backend.connections(), 2);
}

#[test]
fn raw_exchange_reads_the_whole_answer() {
    let backend = Backend::start(BackendOpts::default());
    let answer = rtsp_exchange(
        backend.addr(),
        b"OPTIONS * RTSP/1.0\r\nCSeq: 42\r\n\r\n",
        Duration::from_secs(5),
    )
    .expect("OPTIONS");
    assert!(answer.starts_with("RTSP/1.0 200 OK\r\n"), "{answer}");
    assert!(answer.contains("CSeq: 42\r\n"), "{answer}");
    assert!(answer.contains("Public: "), "{answer}");
    assert!(answer.ends_with("\r\n\r\n"), "{answer}");
    backend
        .wait_for_requests("OPTIONS", 1, Duration::from_secs(5))
        .expect("OPTIONS counted");
}

#[test]
fn restart_keeps_the_port_and_serves_again() {
    let backend = Backend::start(BackendOpts::codecs("h264"));
    let port = backend.port();
    assert_eq!(probe(backend.url(), "tcp"), vec![video("h264")]);
    let backend = backend.restart();
    assert_eq!(backend.port(), port);
    assert_eq!(backend.connections(), 0, "a new process, a new event log");
    assert_eq!(probe(backend.url(), "tcp"), vec![video("h264")]);
}

#[test]
fn stopped_back_end_does_not_answer_until_continued() {
    let backend = Backend::start(BackendOpts::codecs("h264"));
    backend.proc.signal(Signal::Stop).expect("SIGSTOP");
    let frozen = ffprobe_streams(backend.url(), "tcp", Duration::from_secs(3));
    assert!(
        frozen.is_err(),
        "a stopped server cannot answer: {frozen:?}"
    );
    backend.proc.signal(Signal::Cont).expect("SIGCONT");
    assert_eq!(probe(backend.url(), "tcp"), vec![video("h264")]);
}

#[test]
fn sigterm_exits_cleanly() {
    let backend = Backend::start(BackendOpts::codecs("opus"));
    backend.proc.signal(Signal::Term).expect("SIGTERM");
    let status = backend
        .proc
        .wait_timeout(Duration::from_secs(10))
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status}");
    assert!(
        backend.proc.signal(Signal::Kill).is_err(),
        "no signal after exit"
    );
}

#[test]
fn busy_port_fails_to_start() {
    let first = Backend::start(BackendOpts::codecs("opus"));
    let second = Backend::try_start(BackendOpts {
        port: Some(first.port()),
        ..BackendOpts::codecs("opus")
    });
    assert!(second.is_err(), "two servers on one port");
}

#[test]
fn session_timeout_is_announced_and_enforced() {
    let backend = Backend::start(BackendOpts {
        session_timeout: Some(2),
        ..Default::default()
    });
    let setup = format!(
        "SETUP {}/stream=0 RTSP/1.0\r\nCSeq: 1\r\n\
         Transport: RTP/AVP;unicast;client_port=9000-9001\r\n\r\n",
        backend.url()
    );
    let answer =
        rtsp_exchange(backend.addr(), setup.as_bytes(), Duration::from_secs(5)).expect("SETUP");
    assert!(answer.contains(";timeout=2"), "{answer}");
    backend
        .proc
        .wait_for_line("SESSION-EXPIRED", Duration::from_secs(6))
        .expect("session without keep-alive expires");
}

#[test]
fn free_ports_are_distinct_and_bindable() {
    let ports: Vec<u16> = (0..20).map(|_| free_port()).collect();
    for (i, p) in ports.iter().enumerate() {
        assert_eq!(p % 2, 0);
        assert!(!ports[i + 1..].contains(p) && !ports[i + 1..].contains(&(p + 1)));
        std::net::TcpListener::bind(("127.0.0.1", *p)).expect("bindable");
    }
}

/// A back end DESCRIBEd and SETUP long before PLAY must start at the live
/// edge: no burst of frames queued in between.
#[test]
fn late_play_starts_at_the_live_edge_without_a_burst() {
    let backend = Backend::start(BackendOpts::default());
    let mut conn = TcpStream::connect(backend.addr()).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = Vec::new();
    let url = backend.url().to_owned();
    request(
        &mut conn,
        &mut buf,
        &format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
    );
    let setup = request(
        &mut conn,
        &mut buf,
        &format!(
            "SETUP {url}/stream=0 RTSP/1.0\r\nCSeq: 2\r\n\
             Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
        ),
    );
    let session = header(&setup, "Session")
        .and_then(|s| s.split(';').next())
        .expect("Session header")
        .to_owned();
    thread::sleep(Duration::from_secs(2));
    let play = request(
        &mut conn,
        &mut buf,
        &format!("PLAY {url} RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n"),
    );
    assert!(play.starts_with("RTSP/1.0 200"), "{play}");

    // Arrival time of each new video RTP timestamp over 2 s.
    let start = Instant::now();
    let mut frames: Vec<(Duration, u32)> = Vec::new();
    while start.elapsed() < Duration::from_secs(2) {
        let (channel, packet) = interleaved(&mut conn, &mut buf);
        if channel != 0 || packet.len() < 12 {
            continue;
        }
        let ts = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        if frames.last().map(|(_, last)| *last) != Some(ts) {
            frames.push((start.elapsed(), ts));
        }
    }
    let early = frames
        .iter()
        .filter(|(at, _)| *at < Duration::from_millis(300))
        .count();
    assert!(early <= 10, "burst of {early} frames in the first 300 ms");
    assert!(
        (40..=55).contains(&frames.len()),
        "{} frames in 2 s",
        frames.len()
    );
    let span = frames
        .last()
        .map_or(0, |(_, ts)| ts.wrapping_sub(frames[0].1));
    let wall = frames
        .last()
        .map_or(0.0, |(at, _)| (*at - frames[0].0).as_secs_f64());
    let media = f64::from(span) / 90_000.0;
    assert!(
        (media - wall).abs() < 0.25,
        "media {media:.2} s vs wall {wall:.2} s"
    );
}

/// Sends `req` and returns the response head (body skipped).
fn request(conn: &mut TcpStream, buf: &mut Vec<u8>, req: &str) -> String {
    conn.write_all(req.as_bytes()).expect("write");
    loop {
        // Skip interleaved packets that may precede the response.
        if buf.first() == Some(&b'$') {
            interleaved(conn, buf);
            continue;
        }
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let body = header(&head, "Content-Length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            fill(conn, buf, end + 4 + body);
            buf.drain(..end + 4 + body);
            return head;
        }
        read_more(conn, buf);
    }
}

/// Reads one `$` frame: (channel, payload).
fn interleaved(conn: &mut TcpStream, buf: &mut Vec<u8>) -> (u8, Vec<u8>) {
    fill(conn, buf, 4);
    assert_eq!(buf[0], b'$', "expected an interleaved frame");
    let channel = buf[1];
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    fill(conn, buf, 4 + len);
    let packet = buf[4..4 + len].to_vec();
    buf.drain(..4 + len);
    (channel, packet)
}

fn fill(conn: &mut TcpStream, buf: &mut Vec<u8>, len: usize) {
    while buf.len() < len {
        read_more(conn, buf);
    }
}

fn read_more(conn: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 16 * 1024];
    let n = conn.read(&mut chunk).expect("read");
    assert!(n > 0, "connection closed");
    buf.extend_from_slice(&chunk[..n]);
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

#[test]
fn parses_ffprobe_compact_output() {
    let text = "index=1|codec_name=aac|codec_type=audio|sample_rate=48000\n\
                index=0|codec_name=h264|codec_type=video|width=320|height=240\n\
                garbage\n";
    let mut streams = parse_probe(text);
    streams.sort_by_key(|(i, _)| *i);
    assert_eq!(streams.len(), 2);
    assert_eq!(streams[0].1, video("h264"));
    assert_eq!(streams[1].1, audio("aac"));
}

#[test]
fn parses_framecrc_output() {
    let text = "#tb 0: 1/90000\n#media_type 0: video\n#codec_id 0: h264\n\
                #tb 1: 1/48000\n#media_type 1: audio\n#codec_id 1: aac\n\
                0,          0,          0,     3600,     1289, 0x0478d684\n\
                1,          0,          0,     1024,      222, 0x241965be\n\
                0,       3600,       3600,     3600,      366, 0x2dde8eaf, F=0x0\n\
                1,       1024,       1024,     1024,      196, 0xe2de6284\n";
    let r = parse_framecrc(text);
    assert_eq!(r.streams[0], (0, "video".to_owned(), "h264".to_owned()));
    assert_eq!(r.streams[1], (1, "audio".to_owned(), "aac".to_owned()));
    assert_eq!(
        (r.video_frames, r.audio_frames, r.video_keyframes),
        (2, 2, 1)
    );
    assert!(!r.non_monotonic_dts);
    assert_eq!(r.packets[2].size, 366);
    assert!(!r.packets[2].keyframe);

    let repeated =
        format!("{text}0,       3600,       3600,     3600,      366, 0x2dde8eaf, F=0x0\n");
    assert!(
        parse_framecrc(&repeated).non_monotonic_dts,
        "equal DTS is flagged"
    );
    let backwards = format!("{text}1,       1000,       1000,     1024,      196, 0xe2de6284\n");
    let r = parse_framecrc(&backwards);
    assert!(r.non_monotonic_dts, "decreasing DTS is flagged");
    assert_eq!(
        r.dts_regression.as_deref(),
        Some("stream 1, packet 3 (output 5): DTS 1000 after 1024"),
        "and where it went back is said"
    );
    assert_eq!(parse_framecrc(text).dts_regression, None);

    // ffmpeg's unset first timestamp: the first two packets may tie.
    let start = "#media_type 0: video\n0, 0, 0, 3600, 1066, 0x1\n0, 0, 0, 3600, 502, 0x2, F=0x0\n\
                 0, 3600, 3600, 3600, 670, 0x3, F=0x0\n";
    assert!(!parse_framecrc(start).non_monotonic_dts);
}

/// Only rtspsrc's own shutdown race after EOS is forgiven, nothing else.
#[test]
fn gst_shutdown_race_is_told_apart_from_real_failures() {
    let eos = "Setting pipeline to PLAYING ...\nGot EOS from element \"pipeline0\".\nExecution ended after 0:00:01.6\n";
    let race = "ERROR: from element /GstPipeline:pipeline0/GstRTSPSrc:rtspsrc0: Could not write to resource.\n\
Additional debug info:\n\
../gst/rtsp/gstrtspsrc.c(6766): gst_rtspsrc_try_send (): /GstPipeline:pipeline0/GstRTSPSrc:rtspsrc0:\n\
Could not send message. (Received end-of-file)\n\
ERROR: from element /GstPipeline:pipeline0/GstRTSPSrc:rtspsrc0: Could not write to resource.\n\
Additional debug info:\n\
../gst/rtsp/gstrtspsrc.c(9240): gst_rtspsrc_pause (): /GstPipeline:pipeline0/GstRTSPSrc:rtspsrc0:\n\
Could not send message. (Received end-of-file)\n";
    assert!(gst_failed_only_at_shutdown(eos, race));
    assert!(
        !gst_failed_only_at_shutdown("Setting pipeline to PLAYING ...\n", race),
        "no EOS: a real failure"
    );
    let not_found = "ERROR: from element /GstPipeline:pipeline0/GstRTSPSrc:rtspsrc0: Not found\n\
../gst/rtsp/gstrtspsrc.c(6736): gst_rtspsrc_send (): /GstPipeline:pipeline0/GstRTSPSrc:rtspsrc0:\n\
Not Found (404)\n";
    assert!(!gst_failed_only_at_shutdown(eos, not_found));
    assert!(
        !gst_failed_only_at_shutdown(eos, ""),
        "no error at all is not this case"
    );
}
