//! End-to-end tests of the keyframe cache on MPEG-TS streams (RTP `MP2T`,
//! `src/relay/mpegts.rs`): ffmpeg joining mid-GOP through the proxy gets a
//! clean picture at once, with audio in the stream as without.
//!
//! Back ends (GStreamer, `tests/backend/gst_rtsp_backend.py`), H.264 with a
//! keyframe every 4 s:
//! - a file written by `ffmpeg -f mpegts` at test time (its muxer sets the
//!   random-access indicator on audio packets too), sent as it is, looped,
//!   paced by its PCR (`--ts-file`: `tsparse ! rtpmp2tpay`);
//! - a live `mpegtsmux` stream (`--mpegts`: x264enc and an AAC encoder).
//!
//! Each with AAC and without. A keeper (ffmpeg decoding keyframes only) keeps
//! the stream playing and tells when keyframes come; joins start 0.8 to 3.2 s
//! after one (mid-GOP: ffmpeg's probing wants about 20 frames, so earlier
//! joins would measure its probing, not the cache). Each join decodes 50
//! frames: ffmpeg's log must show no decoder error (`non-existing PPS`, `no
//! frame!`, `error while decoding`) and its first picture within 0.5 s of
//! PLAY. Without the cache such a join waits for the next keyframe and
//! decodes garbage meanwhile (about 50-300 error lines, 0.7-3.8 s).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// Keyframe interval of every back end here, seconds.
const KEY_INTERVAL_SECS: u32 = 4;
/// Length of the ffmpeg-made file: the tests end long before the loop point
/// (where its timestamps start over, as a camera's after a restart).
const FILE_SECS: u32 = 120;
/// Joins start this long after a keyframe.
const JOIN_OFFSETS: [Duration; 4] = [
    Duration::from_millis(800),
    Duration::from_millis(1600),
    Duration::from_millis(2400),
    Duration::from_millis(3200),
];
/// First decoded picture at most this long after ffmpeg sends PLAY.
const FIRST_PICTURE_WITHIN: Duration = Duration::from_millis(500);
/// What ffmpeg's H.264 decoder says when it decodes without a keyframe.
const DECODER_ERRORS: [&str; 3] = ["non-existing PPS", "no frame!", "error while decoding"];
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes an MPEG-TS file with ffmpeg's muxer: H.264 (4 s GOP, 25 fps,
/// 320x240) and, with `audio`, AAC.
fn ffmpeg_mpegts_file(dir: &Path, audio: bool) -> PathBuf {
    std::fs::create_dir_all(dir).expect("temp dir");
    let path = dir.join(if audio { "h264-aac.ts" } else { "h264.ts" });
    let secs = FILE_SECS.to_string();
    let gop = (KEY_INTERVAL_SECS * 25).to_string();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"]);
    if audio {
        cmd.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
    }
    cmd.args(["-t", &secs, "-pix_fmt", "yuv420p", "-c:v", "libx264"])
        .args(["-preset", "ultrafast", "-g", &gop]);
    if audio {
        cmd.args(["-c:a", "aac", "-b:a", "64k"]);
    }
    cmd.args(["-f", "mpegts"]).arg(&path);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(120)).expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg -f mpegts: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// ffmpeg playing `url` over TCP for the whole test, decoding keyframes only
/// (`showinfo` prints one line for each).
struct Keeper {
    proc: Proc,
}

impl Keeper {
    fn start(url: &str) -> Keeper {
        // The first DESCRIBE can meet GStreamer's 503 while it prepares the
        // media for the proxy: try again.
        let mut last = String::new();
        for _ in 0..3 {
            let mut cmd = Command::new("ffmpeg");
            cmd.args(["-hide_banner", "-nostdin", "-loglevel", "info"])
                .args(["-skip_frame", "nokey", "-rtsp_transport", "tcp", "-i", url])
                .args(["-map", "0:v", "-vf", "showinfo", "-f", "null", "-"]);
            let proc = Proc::spawn("keeper", &mut cmd).expect("ffmpeg starts");
            match proc.wait_where("a keyframe", 1, Duration::from_secs(20), is_picture) {
                Ok(_) => return Keeper { proc },
                Err(e) => last = e,
            }
        }
        panic!("the keeper cannot play {url}: {last}");
    }

    fn keyframes(&self) -> usize {
        self.proc.count_where(is_picture)
    }

    /// Waits for the next keyframe, then `offset` more.
    fn after_next_keyframe(&self, offset: Duration) {
        let seen = self.keyframes();
        self.proc
            .wait_where(
                "a keyframe",
                seen + 1,
                Duration::from_secs(u64::from(3 * KEY_INTERVAL_SECS)),
                is_picture,
            )
            .expect("keyframes keep coming");
        thread::sleep(offset);
    }
}

/// A `showinfo` line of a decoded picture.
fn is_picture(line: &str) -> bool {
    line.contains("Parsed_showinfo") && line.contains(" n:")
}

/// One join: how long after PLAY the first picture came, and ffmpeg's
/// decoder error lines.
struct Join {
    first_picture: Duration,
    errors: Vec<String>,
}

/// ffmpeg joins `url` over `transport` and decodes 50 frames.
fn join(url: &str, transport: &str) -> Result<Join, String> {
    let mut cmd = Command::new("ffmpeg");
    // `debug` for rtspdec's "hello state=" line, logged as PLAY is sent.
    cmd.args(["-hide_banner", "-nostdin", "-nostats", "-loglevel", "debug"])
        .args(["-rtsp_transport", transport, "-i", url])
        .args(["-map", "0:v", "-vf", "showinfo", "-frames:v", "50"])
        .args(["-f", "null", "-"]);
    let proc = Proc::spawn("join", &mut cmd)?;
    proc.wait_for_line("hello state=", CLIENT_TIMEOUT)?;
    let play = Instant::now();
    proc.wait_where("a picture", 1, CLIENT_TIMEOUT, is_picture)?;
    let first_picture = play.elapsed();
    if proc.wait_timeout(CLIENT_TIMEOUT).is_none() {
        return Err("ffmpeg did not finish its 50 frames".to_owned());
    }
    let errors = proc
        .lines()
        .into_iter()
        .filter(|l| DECODER_ERRORS.iter().any(|e| l.contains(e)))
        .collect();
    Ok(Join {
        first_picture,
        errors,
    })
}

/// A proxy in front of `backend` with its keeper; joins at every offset of
/// [`JOIN_OFFSETS`], over TCP and UDP in turn, and checks each.
fn joins_are_clean_and_at_once(label: &str, backend: &Backend) {
    let proxy = Proxy::start(&["-v", backend.url()]);
    let url = proxy.url("proxyStream");
    let keeper = Keeper::start(&url);
    let mut report = Vec::new();
    let mut problems = Vec::new();
    for (i, offset) in JOIN_OFFSETS.iter().enumerate() {
        let transport = if i % 2 == 0 { "tcp" } else { "udp" };
        keeper.after_next_keyframe(*offset);
        let j = join(&url, transport).unwrap_or_else(|e| panic!("{label}: {e}"));
        report.push(format!(
            "{transport} {:.1} s into the GOP: first picture {:.3} s after PLAY, {} decoder errors",
            offset.as_secs_f64(),
            j.first_picture.as_secs_f64(),
            j.errors.len()
        ));
        if j.first_picture > FIRST_PICTURE_WITHIN || !j.errors.is_empty() {
            problems.push(format!(
                "{transport} {offset:?} into the GOP: first picture {:?} after PLAY (at most \
                 {FIRST_PICTURE_WITHIN:?}), decoder errors {:?}",
                j.first_picture,
                j.errors.iter().take(5).collect::<Vec<_>>()
            ));
        }
    }
    eprintln!("[e2e] {label}:\n  {}", report.join("\n  "));
    assert!(
        keeper.proc.try_wait().is_none(),
        "{label}: the keeper still plays"
    );
    assert!(problems.is_empty(), "{label}:\n{}", problems.join("\n"));
}

fn file_backend(dir: &Path, audio: bool) -> Backend {
    let file = ffmpeg_mpegts_file(dir, audio);
    Backend::start(BackendOpts {
        extra_args: vec!["--ts-file".to_owned(), file.display().to_string()],
        ..BackendOpts::default()
    })
}

fn live_backend(codecs: &str) -> Backend {
    Backend::start(BackendOpts {
        key_interval: Some(KEY_INTERVAL_SECS),
        extra_args: vec!["--mpegts".to_owned()],
        ..BackendOpts::codecs(codecs)
    })
}

fn temp_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("mpegts-{name}-{}", std::process::id()))
}

#[test]
fn ffmpeg_muxed_file_with_audio_and_without_joins_clean_at_once() {
    let dir = temp_dir("file");
    let with_audio = file_backend(&dir, true);
    joins_are_clean_and_at_once("ffmpeg-muxed H.264 + AAC", &with_audio);
    drop(with_audio);
    let video_only = file_backend(&dir, false);
    joins_are_clean_and_at_once("ffmpeg-muxed H.264", &video_only);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn live_mpegtsmux_stream_with_audio_and_without_joins_clean_at_once() {
    let with_audio = live_backend("h264,aac");
    joins_are_clean_and_at_once("mpegtsmux H.264 + AAC", &with_audio);
    drop(with_audio);
    let video_only = live_backend("h264");
    joins_are_clean_and_at_once("mpegtsmux H.264", &video_only);
}
