//! RTSP clients for the tests: ffprobe, ffmpeg, GStreamer's `rtspsrc` and a
//! raw TCP exchange. Each one is bounded by a timeout and killed when it
//! expires.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::process::command_line;

/// How long [`rtsp_exchange`] waits for more bytes before deciding the peer
/// has said everything.
const QUIET: Duration = Duration::from_millis(300);
/// [`rtsp_exchange`] stops collecting beyond this many bytes.
const MAX_EXCHANGE_BYTES: usize = 1 << 20;

/// Runs `cmd` to completion (stdin from `/dev/null`, stdout and stderr
/// captured) and returns its output whatever its exit status. Kills it and
/// fails if it runs longer than `timeout`. The command line is logged on
/// stderr.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    let line = command_line(cmd);
    eprintln!("[e2e] run: {line}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {line}: {e}"))?;
    let stdout = child.stdout.take().map(collect);
    let stderr = child.stderr.take().map(collect);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                // Errors mean it exited meanwhile; wait() reaps it either way.
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("waiting for {line}: {e}"));
            }
        }
    };
    let stdout = stdout.map(join).unwrap_or_default();
    let stderr = stderr.map(join).unwrap_or_default();
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(format!(
            "{line} was killed after {timeout:?}; stdout (its end):\n{}\nstderr:\n{}",
            tail(&String::from_utf8_lossy(&stdout), 4000),
            String::from_utf8_lossy(&stderr)
        )),
    }
}

/// The last `max` bytes of `text` or so (cut at a character boundary).
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

fn collect(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

fn join(handle: thread::JoinHandle<Vec<u8>>) -> Vec<u8> {
    handle.join().unwrap_or_default()
}

/// Runs `cmd` with [`run_with_timeout`] and fails unless it exits with 0.
fn run_ok(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    let out = run_with_timeout(cmd, timeout)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{} failed ({}); stderr:\n{}",
            command_line(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// One stream as ffprobe reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbedStream {
    /// ffmpeg's codec name: `h264`, `hevc`, `mjpeg`, `aac`, `opus`...
    pub codec_name: String,
    /// `video` or `audio`.
    pub codec_type: String,
    /// Video only.
    pub width: Option<u32>,
    /// Video only.
    pub height: Option<u32>,
    /// Audio only, in Hz.
    pub sample_rate: Option<u32>,
}

/// Probes `url` with ffprobe over `transport` (`udp`, `tcp` or `http`, i.e.
/// ffmpeg's `-rtsp_transport`) and returns its streams in index order.
///
/// Fails if ffprobe fails (e.g. 401, 461, nothing received) or runs longer
/// than `timeout`.
pub fn ffprobe_streams(
    url: &str,
    transport: &str,
    timeout: Duration,
) -> Result<Vec<ProbedStream>, String> {
    let text = ffprobe_entries(
        url,
        transport,
        "index,codec_name,codec_type,width,height,sample_rate",
        timeout,
    )?;
    let mut streams = parse_probe(&text);
    if streams.is_empty() {
        return Err(format!("ffprobe found no stream in {url}; stdout:\n{text}"));
    }
    streams.sort_by_key(|(index, _)| *index);
    Ok(streams.into_iter().map(|(_, s)| s).collect())
}

/// Runs `ffprobe -show_entries stream=<entries> -of compact=p=0` on `url` and
/// returns its standard output; fails if ffprobe fails or outlives `timeout`.
fn ffprobe_entries(
    url: &str,
    transport: &str,
    entries: &str,
    timeout: Duration,
) -> Result<String, String> {
    let out = run_ok(
        Command::new("ffprobe")
            .args(["-hide_banner", "-v", "error", "-rtsp_transport", transport])
            .args(["-show_entries", &format!("stream={entries}")])
            .args(["-of", "compact=p=0"])
            .arg(url),
        timeout,
    )?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One stream's type, codec and `start_time` (seconds) as ffprobe reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamStart {
    pub codec_type: String,
    pub codec_name: String,
    pub start_time: Option<f64>,
}

/// The streams of `url` with their start times, in index order.
pub fn ffprobe_start_times(
    url: &str,
    transport: &str,
    timeout: Duration,
) -> Result<Vec<StreamStart>, String> {
    let text = ffprobe_entries(
        url,
        transport,
        "index,codec_type,codec_name,start_time",
        timeout,
    )?;
    let streams: Vec<StreamStart> = text
        .lines()
        .filter(|l| l.starts_with("index="))
        .map(|line| {
            let field = |key: &str| {
                line.split('|')
                    .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
                    .unwrap_or("")
                    .to_owned()
            };
            StreamStart {
                codec_type: field("codec_type"),
                codec_name: field("codec_name"),
                start_time: field("start_time").parse().ok(),
            }
        })
        .collect();
    if streams.is_empty() {
        return Err(format!("ffprobe found no stream in {url}; stdout:\n{text}"));
    }
    Ok(streams)
}

/// Parses ffprobe's `compact=p=0` output: `index=0|codec_name=h264|...`.
pub(crate) fn parse_probe(text: &str) -> Vec<(u32, ProbedStream)> {
    let mut streams = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("index=")) {
        let mut index = 0;
        let mut stream = ProbedStream::default();
        for field in line.split('|') {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            match key {
                "index" => index = value.parse().unwrap_or(0),
                "codec_name" => stream.codec_name = value.to_owned(),
                "codec_type" => stream.codec_type = value.to_owned(),
                "width" => stream.width = value.parse().ok(),
                "height" => stream.height = value.parse().ok(),
                "sample_rate" => stream.sample_rate = value.parse().ok(),
                _ => {}
            }
        }
        streams.push((index, stream));
    }
    streams
}

/// One packet written by [`ffmpeg_record`] (one video frame or one audio
/// frame), as ffmpeg's `framecrc` muxer prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedPacket {
    /// Stream index, as in [`RecordResult::streams`].
    pub stream: usize,
    /// Decoding timestamp, in the stream's time base (90 kHz for video, the
    /// sample rate for audio).
    pub dts: i64,
    /// Presentation timestamp, same time base.
    pub pts: i64,
    /// Duration, same time base.
    pub duration: i64,
    /// Payload size in bytes.
    pub size: usize,
    /// Marked as a keyframe by ffmpeg.
    pub keyframe: bool,
}

/// What [`ffmpeg_record`] received.
#[derive(Debug, Clone, Default)]
pub struct RecordResult {
    /// Packets (frames) of the video streams.
    pub video_frames: u64,
    /// Packets (frames) of the audio streams.
    pub audio_frames: u64,
    /// Video frames ffmpeg flagged as keyframes.
    pub video_keyframes: u64,
    /// `(index, media type, codec)` of each stream, e.g. `(0, "video", "h264")`.
    pub streams: Vec<(usize, String, String)>,
    /// Every packet in output order.
    pub packets: Vec<RecordedPacket>,
    /// ffmpeg's stderr (warnings and errors only).
    pub stderr: String,
    /// ffmpeg complained about non-monotonic DTS, or a packet of a stream was
    /// written with a DTS not larger than the previous one (a tie between a
    /// stream's first two packets excepted: see [`ffmpeg_record`]).
    pub non_monotonic_dts: bool,
    /// The first packet whose DTS was not larger than its stream's previous
    /// one, e.g. `stream 1, packet 412 (output 830): DTS 31739 after 31744`.
    /// [`ffmpeg_record`] also adds it to [`RecordResult::stderr`], which the
    /// tests print when they fail.
    pub dts_regression: Option<String>,
}

impl RecordResult {
    /// The media type (`video`, `audio`) of stream `index`.
    pub fn media_type(&self, index: usize) -> Option<&str> {
        self.streams
            .iter()
            .find(|(i, _, _)| *i == index)
            .map(|(_, t, _)| t.as_str())
    }
}

/// `ffmpeg` reading `seconds` of every stream of `url` over `transport` and
/// copying them (`-c copy`), warnings only; the caller adds the output.
pub fn ffmpeg_copy(url: &str, transport: &str, seconds: u32) -> Command {
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        "warning",
    ])
    .args(["-rtsp_transport", transport, "-i", url])
    .args(["-t", &seconds.to_string(), "-map", "0", "-c", "copy"]);
    cmd
}

/// Plays `url` with ffmpeg over `transport` (`udp`, `tcp` or `http`) for
/// `seconds` of media, copying every stream without decoding, and reports what
/// arrived.
///
/// Fails if ffmpeg exits with an error, or has not finished within
/// `2 * seconds + 20` s (connection and probing included).
///
/// Note: before its RTP/RTCP timing is established, ffmpeg may write the first
/// packet of a stream without timestamps (they become 0, and ffmpeg warns
/// "Timestamps are unset"); that first packet may then tie with the second
/// one, which is not counted as non-monotonic.
pub fn ffmpeg_record(url: &str, transport: &str, seconds: u32) -> Result<RecordResult, String> {
    let timeout = Duration::from_secs(u64::from(seconds) * 2 + 20);
    let out = run_ok(
        ffmpeg_copy(url, transport, seconds).args(["-f", "framecrc", "-"]),
        timeout,
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut result = parse_framecrc(&String::from_utf8_lossy(&out.stdout));
    let lower = stderr.to_ascii_lowercase();
    result.non_monotonic_dts |= [
        "non monotonous dts",
        "non-monotonous dts",
        "non monotonically increasing dts",
    ]
    .iter()
    .any(|p| lower.contains(p));
    result.stderr = match &result.dts_regression {
        Some(at) => format!("{stderr}[framecrc check] {at}\n"),
        None => stderr,
    };
    Ok(result)
}

/// Parses the `framecrc` muxer's output: `#media_type N: video` and
/// `#codec_id N: h264` header lines, then one
/// `stream, dts, pts, duration, size, crc[, F=flags]` line per packet (no `F=`
/// means the flags are exactly "keyframe").
pub(crate) fn parse_framecrc(text: &str) -> RecordResult {
    let mut result = RecordResult::default();
    // Per stream: (index, last DTS, packets seen).
    let mut last_dts: Vec<(usize, i64, u64)> = Vec::new();
    for line in text.lines() {
        if let Some(header) = line.strip_prefix('#') {
            parse_framecrc_header(header, &mut result.streams);
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [stream, dts, pts, duration, size, _crc, rest @ ..] = fields.as_slice() else {
            continue;
        };
        let (Ok(stream), Ok(dts), Ok(pts), Ok(duration), Ok(size)) = (
            stream.parse::<usize>(),
            dts.parse::<i64>(),
            pts.parse::<i64>(),
            duration.parse::<i64>(),
            size.parse::<usize>(),
        ) else {
            continue;
        };
        let keyframe = match rest.iter().find_map(|f| f.strip_prefix("F=0x")) {
            Some(flags) => i64::from_str_radix(flags, 16).is_ok_and(|f| f & 1 == 1),
            None => true,
        };
        match last_dts.iter_mut().find(|(s, _, _)| *s == stream) {
            Some((_, last, seen)) => {
                // ffmpeg's RTSP demuxer may leave the very first packet of a
                // stream without timestamps (muxed as 0, with a "Timestamps are
                // unset" warning), so the second one can tie with it.
                if dts < *last || (dts == *last && *seen > 1) {
                    result.non_monotonic_dts = true;
                    result.dts_regression.get_or_insert_with(|| {
                        format!(
                            "stream {stream}, packet {} (output {}): DTS {dts} after {last}",
                            *seen + 1,
                            result.packets.len() + 1
                        )
                    });
                }
                *last = dts;
                *seen += 1;
            }
            None => last_dts.push((stream, dts, 1)),
        }
        match result.media_type(stream) {
            Some("video") => {
                result.video_frames += 1;
                if keyframe {
                    result.video_keyframes += 1;
                }
            }
            Some("audio") => result.audio_frames += 1,
            _ => {}
        }
        result.packets.push(RecordedPacket {
            stream,
            dts,
            pts,
            duration,
            size,
            keyframe,
        });
    }
    result
}

fn parse_framecrc_header(header: &str, streams: &mut Vec<(usize, String, String)>) {
    let Some((key, value)) = header.split_once(':') else {
        return;
    };
    let Some((name, index)) = key.split_once(' ') else {
        return;
    };
    let Ok(index) = index.trim().parse::<usize>() else {
        return;
    };
    let value = value.trim().to_owned();
    let entry = match streams.iter().position(|(i, _, _)| *i == index) {
        Some(pos) => &mut streams[pos],
        None => {
            streams.push((index, String::new(), String::new()));
            let last = streams.len() - 1;
            &mut streams[last]
        }
    };
    match name {
        "media_type" => entry.1 = value,
        "codec_id" => entry.2 = value,
        _ => {}
    }
}

/// Plays the video track of `url` with GStreamer until `buffers` decoded
/// buffers went through, then EOS. See [`gst_play_media`].
pub fn gst_play(url: &str, protocols: &str, buffers: u32, timeout: Duration) -> Result<(), String> {
    gst_play_media(url, protocols, "video", buffers, timeout)
}

/// The media kinds a test back end or the proxy may serve: `rtspsrc` exposes
/// one source pad for each track, and each must be linked ([`rtspsrc_branches`]).
const MEDIA_KINDS: [&str; 2] = ["video", "audio"];

/// The `gst-launch-1.0` arguments that link *every* pad `rtspsrc name=s`
/// exposes: the track of kind `media` to `decode` (a launch-line fragment
/// ending in a sink), each track of another kind to a `tee
/// allow-not-linked=true` that drops it.
///
/// An unlinked pad makes rtspsrc answer `not-linked` for its track, and while
/// the decoded track has not pushed its first buffer that stops the whole
/// source ("streaming stopped, reason not-linked"): a race against the first
/// video buffer that a loaded machine loses. A dropping `tee` is not a sink,
/// so the pipeline's EOS still waits for the decoding branch only, and a
/// branch whose kind the stream does not have stays unlinked and idle.
pub fn rtspsrc_branches(media: &str, decode: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec!["s.".into(), "!".into()];
    args.push(format!("application/x-rtp,media={media}"));
    args.push("!".into());
    args.extend(decode.iter().map(|a| (*a).to_owned()));
    for other in MEDIA_KINDS.iter().filter(|k| **k != media) {
        args.extend([
            "s.".to_owned(),
            "!".to_owned(),
            format!("application/x-rtp,media={other}"),
            "!".to_owned(),
            "tee".to_owned(),
            "allow-not-linked=true".to_owned(),
        ]);
    }
    args
}

/// Plays `url` with `gst-launch-1.0 -e rtspsrc name=s s. !
/// application/x-rtp,media=<media> ! decodebin ! fakesink
/// num-buffers=<buffers>`, every other track linked to a dropping branch
/// ([`rtspsrc_branches`]); `protocols` is `udp`, `tcp`, `udp+tcp`,
/// `udp-mcast` or `http` (the RTSP-over-HTTP tunnel: the URL's scheme becomes
/// `rtsph`, or `rtspsh` for `rtsps://`). An `rtsps://` URL is played without
/// verifying the server's certificate (`tls-validation-flags=0`). `media`
/// (`video`/`audio`) is the kind of the track to decode.
///
/// Succeeds when the pipeline reached EOS and gst-launch exited with 0; fails
/// on any error or when `timeout` expires.
pub fn gst_play_media(
    url: &str,
    protocols: &str,
    media: &str,
    buffers: u32,
    timeout: Duration,
) -> Result<(), String> {
    let tls = url.starts_with("rtsps://");
    let (location, protocols) = match protocols {
        "http" if tls => (url.replacen("rtsps://", "rtspsh://", 1), "tcp"),
        "http" => (url.replacen("rtsp://", "rtsph://", 1), "tcp"),
        other => (url.to_owned(), other),
    };
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.args(["-e", "rtspsrc", "name=s"])
        .arg(format!("location={location}"))
        .arg(format!("protocols={protocols}"));
    if tls {
        cmd.arg("tls-validation-flags=0");
    }
    cmd.arg("latency=200");
    let num_buffers = format!("num-buffers={buffers}");
    cmd.args(rtspsrc_branches(
        media,
        &["decodebin", "!", "fakesink", "sync=false", &num_buffers],
    ));
    let out = run_with_timeout(&mut cmd, timeout)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || gst_failed_only_at_shutdown(&stdout, &stderr) {
        return Ok(());
    }
    Err(format!(
        "{} failed ({}); stderr:\n{stderr}",
        command_line(&cmd),
        out.status
    ))
}

/// rtspsrc races its own shutdown after EOS: it may TEARDOWN (and the server
/// close the connection) before the PAUSE of the state change, then report
/// that PAUSE's failure and exit 1. Every buffer was played by then; seen with
/// every server version of this project alike. Anything else is a real failure.
pub(crate) fn gst_failed_only_at_shutdown(stdout: &str, stderr: &str) -> bool {
    let reached_eos = stdout.contains("Got EOS from element \"pipeline0\"");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("ERROR:")).collect();
    reached_eos
        && !errors.is_empty()
        && stderr.contains("Could not send message. (Received end-of-file)")
        && stderr
            .lines()
            .filter(|l| l.contains("gstrtspsrc.c"))
            .all(|l| l.contains("gst_rtspsrc_try_send") || l.contains("gst_rtspsrc_pause"))
}

/// Connects to `addr`, writes `raw`, and returns everything the peer sends
/// back until it is quiet for 300 ms after its first byte, closes the
/// connection, or `timeout` expires (at most 1 MiB). Fails only if connecting
/// or writing fails.
///
/// Meant for protocol-level checks: malformed requests, error codes, headers.
pub fn rtsp_exchange(addr: SocketAddr, raw: &[u8], timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_write_timeout(Some(timeout))
        .and_then(|()| stream.set_read_timeout(Some(QUIET)))
        .map_err(|e| format!("socket options: {e}"))?;
    stream
        .write_all(raw)
        .map_err(|e| format!("cannot write to {addr}: {e}"))?;
    let mut received = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while Instant::now() < deadline && received.len() < MAX_EXCHANGE_BYTES {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            // Quiet before the first byte is a busy machine, not the end of
            // the answer: wait on, up to `timeout`.
            Err(e)
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
                    && received.is_empty() => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // A reset after the answer is how some servers close: keep what came.
            Err(_) => break,
        }
    }
    Ok(String::from_utf8_lossy(&received).into_owned())
}

/// How long `cmd` took to run to a successful exit (spawn to exit, as a
/// player's "time to first picture" when `cmd` stops after its first decoded
/// frame). Fails if it exits with an error or runs longer than `timeout`.
fn time_to_exit(cmd: &mut Command, timeout: Duration) -> Result<(Duration, Output), String> {
    let started = Instant::now();
    let out = run_with_timeout(cmd, timeout)?;
    let took = started.elapsed();
    if out.status.success() {
        Ok((took, out))
    } else {
        Err(format!(
            "{} failed ({}) after {took:.2?}; stderr:\n{}",
            command_line(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Time from starting ffmpeg to its exit after the first *decoded* video
/// frame of `url` over `transport` (`udp`, `tcp`, `http`):
/// `ffmpeg -rtsp_transport <t> -i <url> -map 0:v -frames:v 1 -f null -`,
/// RTSP setup and stream probing included.
///
/// ffmpeg's H.264 decoder does not output pictures that reference a picture
/// it never had, so joining an H.264 stream mid-GOP this lasts until the next
/// keyframe. Its H.265 decoder (5.1) does output them (from generated
/// references), at once: `keyframes_only` (`-skip_frame nokey`) then makes
/// the first decoded frame the first keyframe, the first clean picture.
pub fn ffmpeg_first_frame(
    url: &str,
    transport: &str,
    keyframes_only: bool,
    timeout: Duration,
) -> Result<Duration, String> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"]);
    if keyframes_only {
        cmd.args(["-skip_frame", "nokey"]);
    }
    cmd.args(["-rtsp_transport", transport, "-i", url]).args([
        "-map",
        "0:v",
        "-frames:v",
        "1",
        "-f",
        "null",
        "-",
    ]);
    time_to_exit(&mut cmd, timeout).map(|(took, _)| took)
}

/// Time from starting gst-launch to its exit after the first *decoded* video
/// frame of `url` (`codec`: `h264` or `h265`; `protocols`: `udp` or `tcp`):
/// `rtspsrc name=s s. ! application/x-rtp,media=video ! rtph26Xdepay !
/// h26Xparse ! avdec_h26X output-corrupt=false ! fakesink num-buffers=1`,
/// every other track dropped ([`rtspsrc_branches`]).
///
/// `output-corrupt=false` matters: `decodebin`'s `avdec_h264` outputs frames
/// decoded from missing references by default, at once, so it would not show
/// whether the picture was decodable. `avdec_h265` outputs them even so:
/// `keyframes_only` (`identity drop-buffer-flags=delta-unit` before the
/// decoder) makes the first decoded frame the first keyframe. rtspsrc's
/// shutdown race after EOS (see [`gst_play_media`]) is forgiven.
pub fn gst_first_frame(
    url: &str,
    protocols: &str,
    codec: &str,
    keyframes_only: bool,
    timeout: Duration,
) -> Result<Duration, String> {
    let (depay, parse, decoder) = match codec {
        "h264" => ("rtph264depay", "h264parse", "avdec_h264"),
        "h265" => ("rtph265depay", "h265parse", "avdec_h265"),
        other => return Err(format!("gst_first_frame: unsupported codec {other:?}")),
    };
    let mut decode = vec![depay, "!", parse, "!"];
    if keyframes_only {
        decode.extend(["identity", "drop-buffer-flags=delta-unit", "!"]);
    }
    decode.extend([decoder, "output-corrupt=false", "!"]);
    decode.extend(["fakesink", "sync=false", "num-buffers=1"]);
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.args(["rtspsrc", "name=s"])
        .arg(format!("location={url}"))
        .arg(format!("protocols={protocols}"))
        .arg("latency=200")
        .args(rtspsrc_branches("video", &decode));
    let started = Instant::now();
    let out = run_with_timeout(&mut cmd, timeout)?;
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || gst_failed_only_at_shutdown(&stdout, &stderr) {
        return Ok(took);
    }
    Err(format!(
        "{} failed ({}) after {took:.2?}; stderr:\n{stderr}",
        command_line(&cmd),
        out.status
    ))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads one RTSP response from `buf` and then `s` (skipping interleaved
/// frames before it), for at most 10 s: returns its head and removes it and its
/// body from `buf`, which keeps what follows.
pub fn read_response_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut chunk = [0u8; 16384];
    loop {
        while buf.first() == Some(&b'$') && buf.len() >= 4 {
            let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
            if buf.len() < 4 + len {
                break;
            }
            buf.drain(..4 + len);
        }
        if buf.first() != Some(&b'$') {
            if let Some(end) = find(buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let body = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + body {
                    buf.drain(..end + 4 + body);
                    return Ok(head);
                }
            }
        }
        if Instant::now() > deadline {
            return Err("no response in 10 s".into());
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err("connection closed".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}
