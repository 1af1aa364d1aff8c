//! End-to-end tests of the pause/resume cycle of a back end: a client plays,
//! leaves, the proxy PAUSEs the back end `--linger` later, and a new client
//! plays, which makes the proxy PLAY the back end again on the same
//! connection.
//!
//! The strict client is retina (see `support/retina_client.rs`): it checks
//! SSRC and sequence numbers against SETUP and `RTP-Info`, and measures the
//! first packet's timestamp from `RTP-Info: rtptime=`, so a resume that
//! announces the wrong time, skips packets or hangs is caught. ffprobe and
//! ffmpeg check what players and recorders see: the tracks' start times and a
//! recording's length and DTS.
//!
//! The back end runs in two of GStreamer's suspend modes: `reset` (the test
//! back end's default: the pipeline restarts with fresh time on each PLAY) and
//! `none` (GStreamer's default: PAUSE and PLAY pause and resume the pipeline,
//! and a PLAY with a `Range` is a seek).

mod support;

use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// `--linger` given to the proxy, in seconds.
const LINGER: &str = "1";
/// How long the back end may take to get its PAUSE once the last client left
/// (the linger plus slack for a loaded machine).
const PAUSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the back end stays paused before the next client comes: long
/// enough that a resume that gets the time wrong by the pause shows it.
const PAUSED_FOR: Duration = Duration::from_millis(1500);
/// How long a retina client reads after PLAY.
const PLAY_FOR: Duration = Duration::from_secs(4);
/// The first packet of every stream must arrive this soon after PLAY.
const FIRST_PACKET_WITHIN: Duration = Duration::from_secs(3);
/// PLAY (request to response) must take at most this.
const PLAY_WITHIN: Duration = Duration::from_secs(3);
/// The first timestamp must be this close to the `RTP-Info` start (s).
const MAX_START_SECS: f64 = 0.5;
/// Media time and wall-clock time of a session may differ this much (s).
const MAX_PACE_SKEW_SECS: f64 = 0.5;
/// A client joining a playing stream first gets the cached GOP at once: its media
/// time may run ahead of the wall clock by up to the back end's keyframe interval
/// (1 s), never behind.
const MAX_CACHE_LEAD_SECS: f64 = 1.0;
/// ffprobe's start times of the tracks may differ this much (s).
const MAX_START_SKEW_SECS: f64 = 0.5;
const PROBE: Duration = Duration::from_secs(30);

fn start_backend(mode: SuspendMode) -> Backend {
    Backend::start(BackendOpts::suspend(mode))
}

/// A proxy with `-v --linger 1`, `extra` options, then `urls`.
fn start_proxy(extra: &[&str], urls: &[&str]) -> Proxy {
    let mut args = vec!["-v", "--linger", LINGER];
    args.extend_from_slice(extra);
    args.extend_from_slice(urls);
    Proxy::start(&args)
}

/// Waits until the back end received its `count`-th PAUSE and answered it.
fn wait_for_pause(backend: &Backend, count: usize) {
    let left_at = Instant::now();
    backend
        .wait_for_requests("PAUSE", count, PAUSE_TIMEOUT)
        .unwrap_or_else(|e| panic!("PAUSE #{count} after the last client left: {e}"));
    // The back end logs a request before it handles it; the proxy is paused
    // once the response went out (the connection is the proxy's alone, so the
    // next RESPONSE line is that PAUSE's).
    let deadline = Instant::now() + PAUSE_TIMEOUT;
    loop {
        let lines = backend.proc.lines();
        let answered = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| *l == "REQUEST PAUSE")
            .nth(count - 1)
            .is_some_and(|(i, _)| lines[i + 1..].iter().any(|l| l.starts_with("RESPONSE ")));
        if answered {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the back end did not answer PAUSE #{count}; log {}",
            backend.proc.log_path().display()
        );
        thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "[e2e] back end paused ({count}); waited {:.2?}",
        left_at.elapsed()
    );
}

/// Waits for the back end's PAUSE #`count`, then leaves it paused a while.
fn pause_cycle(backend: &Backend, count: usize) {
    wait_for_pause(backend, count);
    thread::sleep(PAUSED_FOR);
}

/// Plays with retina and fails unless the session is clean: every stream
/// (video and audio) got packets without loss, no retina error, a first
/// timestamp within ±0.5 s of `RTP-Info`, PLAY answered and first packets
/// there promptly, and media time advancing with the wall clock.
fn retina_clean(url: &str, transport: RetinaTransport, what: &str) -> RetinaReport {
    let report = retina_play(url, transport, PLAY_FOR)
        .unwrap_or_else(|e| panic!("{what}: retina over {transport} cannot play {url}: {e}"));
    check_session(&report, what);
    report
}

fn check_session(report: &RetinaReport, what: &str) {
    if let Err(e) = session_problems(report) {
        panic!("{what}: {e}");
    }
}

/// What [`check_session`] checks, as an error.
fn session_problems(report: &RetinaReport) -> Result<(), String> {
    let mut media: Vec<&str> = report.streams.iter().map(|s| s.media.as_str()).collect();
    media.sort_unstable();
    if media != ["audio", "video"] {
        return Err(format!("expected a video and an audio stream; {report}"));
    }
    report.check_clean(MAX_START_SECS)?;
    if report.play_took > PLAY_WITHIN {
        return Err(format!("PLAY took {:.2?}; {report}", report.play_took));
    }
    for s in &report.streams {
        let first = s.first_received_after_play.unwrap_or(Duration::MAX);
        if first > FIRST_PACKET_WITHIN {
            return Err(format!(
                "first {} packet {first:.2?} after PLAY; {report}",
                s.media
            ));
        }
        if let (Some(media_span), Some(wall_span)) = (s.media_span_secs(), s.wall_span_secs()) {
            let lead = media_span - wall_span;
            if wall_span >= 1.0
                && !(-MAX_PACE_SKEW_SECS..=MAX_CACHE_LEAD_SECS + MAX_PACE_SKEW_SECS).contains(&lead)
            {
                return Err(format!(
                    "{} timestamps cover {media_span:.2} s in {wall_span:.2} s; {report}",
                    s.media
                ));
            }
        }
    }
    Ok(())
}

// --- the client itself ----------------------------------------------------

/// The retina client against the GStreamer back end directly: what a correct
/// server gives, so that the proxy tests below measure the proxy.
#[test]
fn retina_client_self_check_against_the_back_end_directly() {
    for mode in [SuspendMode::Reset, SuspendMode::None] {
        let backend = start_backend(mode);
        for transport in [RetinaTransport::Tcp, RetinaTransport::Udp] {
            let what = format!("back end ({mode:?}) directly over {transport}");
            let report = retina_clean(backend.url(), transport, &what);
            assert!(
                report.start_from_rtp_info,
                "{what}: two streams, RTP-Info used"
            );
            let video = report.stream("video").expect("video");
            let audio = report.stream("audio").expect("audio");
            assert_eq!(video.encoding_name, "h264", "{report}");
            assert_eq!(video.clock_rate, 90_000, "{report}");
            assert_eq!(audio.encoding_name, "mpeg4-generic", "{report}");
            // 4 s at 25 fps, one slice per frame: well over 50 packets.
            assert!(video.packets >= 50, "{what}: {report}");
            assert!(audio.packets >= 50, "{what}: {report}");
        }
    }
}

/// A report with a retina error, or a lost packet, or a late start fails
/// `check_clean` and names the problem.
#[test]
fn retina_report_check_names_each_problem() {
    let good = RetinaStreamReport {
        media: "video".into(),
        encoding_name: "h264".into(),
        clock_rate: 90_000,
        packets: 100,
        first_elapsed_secs: Some(0.01),
        last_elapsed_secs: Some(3.9),
        ..Default::default()
    };
    let mut report = RetinaReport {
        url: "rtsp://127.0.0.1/x".into(),
        transport: RetinaTransport::Tcp,
        streams: vec![good.clone(), good.clone()],
        error: None,
        connect_took: Duration::ZERO,
        play_took: Duration::ZERO,
        start_from_rtp_info: true,
        teardown: Ok(()),
    };
    assert_eq!(report.check_clean(0.5), Ok(()));
    // A first packet 0.9 s after PLAY stamped 0.9 s after RTP-Info is right;
    // stamped 2.5 s after, it is not.
    report.streams[0].first_received_after_play = Some(Duration::from_millis(900));
    report.streams[0].first_elapsed_secs = Some(0.95);
    assert_eq!(report.check_clean(0.5), Ok(()));
    report.streams[0].first_elapsed_secs = Some(2.5);
    assert!(report.check_clean(0.5).unwrap_err().contains("+2.500 s"));
    report.streams[1].loss = 3;
    report.streams[0].first_elapsed_secs = Some(-1712.5);
    report.error = Some("wrong ssrc".into());
    let e = report.check_clean(0.5).unwrap_err();
    assert!(e.contains("3 packet(s) lost"), "{e}");
    assert!(e.contains("-1712.500 s"), "{e}");
    assert!(e.contains("wrong ssrc"), "{e}");
    report.streams[1].packets = 0;
    assert!(report.check_clean(0.5).unwrap_err().contains("no packet"));
}

/// The next frame's lateness is counted against the packet that came earliest
/// for its timestamp, so that an error of the sender report (which moves every
/// packet alike) does not count as lateness.
#[test]
fn retina_report_next_frame_lateness_is_against_the_earliest_packet() {
    let mut s = RetinaStreamReport {
        // Stamped 0.033 s, came 0.063 s after PLAY: 0.030 s after its stamp...
        next_frame_elapsed_secs: Some(0.033),
        next_frame_received_after_play: Some(Duration::from_millis(63)),
        // ... while the packet that came earliest for its stamp came 0.005 s
        // after it.
        least_arrival_less_timestamp_secs: Some(0.005),
        ..Default::default()
    };
    let late = s.next_frame_lateness_secs().expect("all known");
    assert!((late - 0.025).abs() < 1e-9, "{late}");
    s.least_arrival_less_timestamp_secs = Some(0.030);
    let on_time = s.next_frame_lateness_secs().expect("all known");
    assert!(on_time.abs() < 1e-9, "{on_time}");
    s.next_frame_received_after_play = None;
    assert_eq!(s.next_frame_lateness_secs(), None);
}

// --- (a) retina: fresh start, then after a pause ----------------------------

fn retina_fresh_then_after_a_pause(mode: SuspendMode, transport: RetinaTransport) {
    let backend = start_backend(mode);
    let proxy = start_proxy(&[], &[backend.url()]);
    let url = proxy.url("proxyStream");

    retina_clean(&url, transport, "fresh start");
    pause_cycle(&backend, 1);
    let resumed = retina_clean(&url, transport, "after a pause");
    assert!(resumed.start_from_rtp_info);

    assert!(backend.requests("PAUSE") >= 1);
    assert!(
        backend.requests("PLAY") >= 2,
        "the back end was PLAYed again"
    );
    assert_eq!(
        backend.connections(),
        1,
        "the pause and resume kept the one back-end connection"
    );
}

#[test]
fn retina_tcp_resume_after_pause_suspend_none() {
    retina_fresh_then_after_a_pause(SuspendMode::None, RetinaTransport::Tcp);
}

#[test]
fn retina_udp_resume_after_pause_suspend_none() {
    retina_fresh_then_after_a_pause(SuspendMode::None, RetinaTransport::Udp);
}

#[test]
fn retina_tcp_resume_after_pause_suspend_reset() {
    retina_fresh_then_after_a_pause(SuspendMode::Reset, RetinaTransport::Tcp);
}

#[test]
fn retina_udp_resume_after_pause_suspend_reset() {
    retina_fresh_then_after_a_pause(SuspendMode::Reset, RetinaTransport::Udp);
}

// --- (b) ffprobe: several cycles --------------------------------------------

fn ffprobe_cycles(mode: SuspendMode) {
    let backend = start_backend(mode);
    let proxy = start_proxy(&[], &[backend.url()]);
    let url = proxy.url("proxyStream");
    for cycle in 0..3 {
        let transport = if cycle % 2 == 0 { "udp" } else { "tcp" };
        let what = format!("cycle {cycle} over {transport}");
        if cycle > 0 {
            pause_cycle(&backend, cycle);
        }
        let streams =
            ffprobe_start_times(&url, transport, PROBE).unwrap_or_else(|e| panic!("{what}: {e}"));
        eprintln!("[e2e] ffprobe over {transport}: {streams:?}");
        let start_of = |kind: &str| {
            let s = streams
                .iter()
                .find(|s| s.codec_type == kind)
                .unwrap_or_else(|| panic!("{what}: no {kind} stream found: {streams:?}"));
            s.start_time
                .unwrap_or_else(|| panic!("{what}: {kind} has no start_time: {streams:?}"))
        };
        let (video, audio) = (start_of("video"), start_of("audio"));
        assert!(
            (video - audio).abs() <= MAX_START_SKEW_SECS,
            "{what}: video starts at {video:.3} s, audio at {audio:.3} s: {streams:?}"
        );
        assert_eq!(
            streams
                .iter()
                .map(|s| s.codec_name.as_str())
                .collect::<Vec<_>>(),
            ["h264", "aac"],
            "{what}"
        );
    }
    assert!(backend.requests("PAUSE") >= 2);
    assert_eq!(
        backend.connections(),
        1,
        "one back-end connection throughout"
    );
}

#[test]
fn ffprobe_three_cycles_start_times_agree_suspend_none() {
    ffprobe_cycles(SuspendMode::None);
}

#[test]
fn ffprobe_three_cycles_start_times_agree_suspend_reset() {
    ffprobe_cycles(SuspendMode::Reset);
}

// --- (c) ffmpeg -c copy to mp4 after a pause --------------------------------

/// Records `seconds` of `url` with `ffmpeg -c copy` into `path` (mp4).
/// Returns ffmpeg's stderr.
fn record_mp4(url: &str, transport: &str, seconds: u32, path: &str) -> Result<String, String> {
    let _ = std::fs::remove_file(path);
    let out = run_with_timeout(
        ffmpeg_copy(url, transport, seconds).arg("-y").arg(path),
        Duration::from_secs(u64::from(seconds) * 2 + 20),
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        Ok(stderr)
    } else {
        Err(format!("ffmpeg failed ({}): {stderr}", out.status))
    }
}

/// `(codec_type, duration)` of each stream of a file, in index order.
fn file_durations(path: &str) -> Vec<(String, Option<f64>)> {
    let out = run_with_timeout(
        Command::new("ffprobe")
            .args(["-hide_banner", "-v", "error"])
            .args(["-show_entries", "stream=index,codec_type,duration"])
            .args(["-of", "csv=p=0"])
            .arg(path),
        PROBE,
    )
    .expect("ffprobe the recording");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(',');
            let _index = f.next()?;
            Some((f.next()?.to_owned(), f.next().and_then(|d| d.parse().ok())))
        })
        .collect()
}

/// Streams whose DTS does not increase from packet to packet in the file,
/// with the first offending pair.
fn non_monotonic_dts(path: &str) -> Vec<String> {
    let out = run_with_timeout(
        Command::new("ffprobe")
            .args(["-hide_banner", "-v", "error"])
            .args(["-show_entries", "packet=stream_index,dts"])
            .args(["-of", "csv=p=0"])
            .arg(path),
        PROBE,
    )
    .expect("ffprobe the recording's packets");
    let mut last: Vec<(String, i64)> = Vec::new();
    let mut bad = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut f = line.split(',');
        let (Some(stream), Some(Ok(dts))) = (f.next(), f.next().map(str::parse::<i64>)) else {
            continue;
        };
        match last.iter_mut().find(|(s, _)| s == stream) {
            Some((_, prev)) => {
                if dts <= *prev && !bad.iter().any(|b: &String| b.starts_with(stream)) {
                    bad.push(format!("{stream}: dts {prev} then {dts}"));
                }
                *prev = dts;
            }
            None => last.push((stream.to_owned(), dts)),
        }
    }
    bad
}

fn ffmpeg_mp4_after_a_pause(mode: SuspendMode, name: &str) {
    let backend = start_backend(mode);
    let proxy = start_proxy(&[], &[backend.url()]);
    let url = proxy.url("proxyStream");
    ffprobe_streams(&url, "tcp", PROBE).expect("a first client plays");
    pause_cycle(&backend, 1);

    let path = format!("{}/pause_resume-{name}.mp4", env!("CARGO_TARGET_TMPDIR"));
    let stderr = record_mp4(&url, "tcp", 6, &path).expect("record after the pause");
    let durations = file_durations(&path);
    let bad_dts = non_monotonic_dts(&path);
    eprintln!("[e2e] recorded {path}: {durations:?}; ffmpeg stderr:\n{stderr}");

    let mut problems = Vec::new();
    let lower = stderr.to_ascii_lowercase();
    if lower.contains("non monoton") || lower.contains("non-monoton") {
        problems.push("ffmpeg complained about non-monotonic DTS".to_owned());
    }
    let mut kinds: Vec<&str> = durations.iter().map(|(k, _)| k.as_str()).collect();
    kinds.sort_unstable();
    if kinds != ["audio", "video"] {
        problems.push(format!(
            "expected a video and an audio stream: {durations:?}"
        ));
    }
    for (kind, duration) in &durations {
        match duration {
            Some(d) if (5.0..=7.0).contains(d) => {}
            Some(d) => problems.push(format!("{kind} lasts {d:.2} s in a 6 s recording")),
            None => problems.push(format!("{kind} has no duration")),
        }
    }
    if !bad_dts.is_empty() {
        problems.push(format!("non-monotonic DTS in the file: {bad_dts:?}"));
    }
    let connections = backend.connections();
    if connections != 1 {
        problems.push(format!("{connections} back-end connections, expected 1"));
    }
    assert!(
        problems.is_empty(),
        "{}\n  file {path}: {durations:?}\n  ffmpeg stderr: {stderr}",
        problems.join("; ")
    );
}

#[test]
fn ffmpeg_copy_to_mp4_after_a_pause_suspend_none() {
    ffmpeg_mp4_after_a_pause(SuspendMode::None, "none");
}

#[test]
fn ffmpeg_copy_to_mp4_after_a_pause_suspend_reset() {
    ffmpeg_mp4_after_a_pause(SuspendMode::Reset, "reset");
}

// --- (d) six streams at once -----------------------------------------------

/// Plays `urls` at once, one retina client each (over UDP and TCP in turn),
/// and returns each result in order.
fn retina_all_at_once(urls: &[String]) -> Vec<Result<RetinaReport, String>> {
    let (tx, rx) = mpsc::channel();
    let handles: Vec<_> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let (url, tx) = (url.clone(), tx.clone());
            let transport = if i % 2 == 0 {
                RetinaTransport::Udp
            } else {
                RetinaTransport::Tcp
            };
            thread::spawn(move || {
                let _ = tx.send((i, retina_play(&url, transport, PLAY_FOR)));
            })
        })
        .collect();
    drop(tx);
    for h in handles {
        h.join().expect("client thread");
    }
    let mut results: Vec<_> = rx.iter().collect();
    results.sort_by_key(|(i, _)| *i);
    assert_eq!(results.len(), urls.len());
    results.into_iter().map(|(_, r)| r).collect()
}

#[test]
fn six_paused_streams_resume_for_six_clients_at_once() {
    let backends: Vec<Backend> = (0..6).map(|_| start_backend(SuspendMode::None)).collect();
    let urls: Vec<&str> = backends.iter().map(Backend::url).collect();
    let proxy = start_proxy(&[], &urls);
    proxy
        .proc
        .wait_for_line("proxyStream-6", Duration::from_secs(10))
        .expect("six streams announced");
    let names: Vec<String> = (1..=6)
        .map(|i| proxy.url(&format!("proxyStream-{i}")))
        .collect();

    // Every back end plays once, then all are paused.
    for (i, r) in retina_all_at_once(&names).into_iter().enumerate() {
        let report = r.unwrap_or_else(|e| panic!("first client of stream {}: {e}", i + 1));
        check_session(&report, &format!("first client of stream {}", i + 1));
    }
    for backend in &backends {
        wait_for_pause(backend, 1);
    }
    thread::sleep(PAUSED_FOR);

    // Six new clients at once.
    let started = Instant::now();
    let results = retina_all_at_once(&names);
    eprintln!("[e2e] six clients done in {:.2?}", started.elapsed());
    let mut failures = Vec::new();
    for (i, r) in results.iter().enumerate() {
        let what = format!("stream {} after the pause", i + 1);
        if let Err(e) = r.as_ref().map_err(Clone::clone).and_then(session_problems) {
            failures.push(format!("{what}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for (i, backend) in backends.iter().enumerate() {
        assert_eq!(
            backend.connections(),
            1,
            "back end {} kept its one connection",
            i + 1
        );
        assert!(backend.requests("PLAY") >= 2, "back end {} resumed", i + 1);
    }
}

// --- (e) after a back-end restart -------------------------------------------

#[test]
fn client_after_a_back_end_restart_gets_clean_media() {
    let backend = start_backend(SuspendMode::Reset);
    let opts = backend.opts().clone();
    let proxy = start_proxy(&[], &[backend.url()]);
    let url = proxy.url("proxyStream");

    retina_clean(&url, RetinaTransport::Tcp, "before the restart");
    wait_for_pause(&backend, 1);

    backend
        .proc
        .signal(Signal::Kill)
        .expect("SIGKILL the back end");
    drop(backend);
    let backend = Backend::start(opts);
    // The proxy reconnects by itself (first retry about 1 s later).
    backend
        .wait_for_requests("DESCRIBE", 1, Duration::from_secs(20))
        .expect("the proxy reconnects to the restarted back end");

    for transport in [RetinaTransport::Udp, RetinaTransport::Tcp] {
        retina_clean(
            &url,
            transport,
            &format!("after the restart over {transport}"),
        );
    }
    assert_eq!(
        backend.connections(),
        1,
        "one connection to the restarted back end"
    );
}

// --- (f) a silent back end costs no CPU --------------------------------------

/// Sends SIGCONT to a stopped back end when dropped, even if the test panics.
struct Continue<'a>(&'a Backend);

impl Drop for Continue<'_> {
    fn drop(&mut self) {
        let _ = self.0.proc.signal(Signal::Cont);
    }
}

fn silent_back_end_costs_no_cpu(extra: &[&str]) {
    let backend = start_backend(SuspendMode::Reset);
    let mut args = vec!["-D", "10"];
    args.extend_from_slice(extra);
    let proxy = start_proxy(&args, &[backend.url()]);
    let url = proxy.url("proxyStream");
    let pid = proxy.proc.pid();

    // A client plays for the whole test: before, during and after the stall.
    let client =
        thread::spawn(move || retina_play(&url, RetinaTransport::Tcp, Duration::from_secs(10)));
    backend
        .wait_for_requests("PLAY", 1, Duration::from_secs(20))
        .expect("the back end is played");
    // Let media flow for a moment before the back end goes silent.
    thread::sleep(Duration::from_secs(1));

    backend
        .proc
        .signal(Signal::Stop)
        .expect("SIGSTOP the back end");
    let stopped = Continue(&backend);
    thread::sleep(Duration::from_millis(1500));
    let (t0, c0) = (Instant::now(), cpu_time(pid));
    thread::sleep(Duration::from_secs(4));
    let (wall, cpu) = (t0.elapsed(), cpu_time(pid) - c0);
    drop(stopped);
    eprintln!(
        "measured: proxy used {cpu:.3?} CPU in {wall:.2?} of back-end silence ({:.3?} in all)",
        cpu_time(pid)
    );

    let report = client
        .join()
        .expect("client thread")
        .expect("the client played");
    assert!(
        report.streams.iter().all(|s| s.packets > 0),
        "media flowed before the stall: {report}"
    );
    assert!(
        cpu < Duration::from_millis(300),
        "the proxy used {cpu:.3?} CPU in {wall:.2?} while the back end was silent (log {})",
        proxy.proc.log_path().display()
    );
}

#[test]
fn silent_back_end_costs_the_proxy_no_cpu_udp() {
    silent_back_end_costs_no_cpu(&[]);
}

#[test]
fn silent_back_end_costs_the_proxy_no_cpu_tcp() {
    silent_back_end_costs_no_cpu(&["-t"]);
}
