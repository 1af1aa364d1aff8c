//! A strict RTSP client built on [`retina`] (Moonfire NVR's RTSP library).
//!
//! Unlike ffmpeg or GStreamer, retina refuses what a sloppy server gets away
//! with: with its default policies it checks every RTP packet's SSRC against
//! the one announced in SETUP's `Transport` header, sequence numbers against
//! PLAY's `RTP-Info: seq=` (a gap is reported as loss, going backwards over
//! TCP is an error), and, when several streams are played, it requires
//! `RTP-Info: rtptime=` for each of them and measures every packet's
//! timestamp from it. So the first packet's [`retina::Timestamp::elapsed_secs`]
//! is how far the first media is from the `RTP-Info` the server announced:
//! about zero for a correct server, seconds or hours off when the announced
//! `rtptime` and the packets disagree.
//!
//! [`retina_play`] runs the whole session (DESCRIBE, SETUP of every stream,
//! PLAY, reading, TEARDOWN) on its own tokio runtime, so synchronous tests
//! call it like the ffmpeg helpers, and every step is bounded by a timeout.
//! retina's lenient workarounds (`InitialTimestampPolicy::Ignore`,
//! `UnknownRtcpSsrcPolicy::ProcessPackets`...) are never used.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use retina::client::{
    PacketItem, PlayOptions, Session, SessionGroup, SessionOptions, SetupOptions, TeardownPolicy,
    Transport,
};

/// How long DESCRIBE, every SETUP and PLAY may take together.
pub const RETINA_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the TEARDOWN at the end may take (it is sent on the existing
/// connection first; over UDP retina retries on fresh connections).
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Slack beyond the phases' own timeouts before [`retina_play`] gives up on
/// its runtime altogether.
const SLACK: Duration = Duration::from_secs(5);
/// [`RetinaReport::check_clean`]: how close a late first packet's timestamp
/// must be to its arrival time (seconds after the PLAY response).
pub const RETINA_ARRIVAL_MATCH_SECS: f64 = 0.25;

/// How retina asks for the media: `RTP/AVP` over UDP or interleaved in the
/// RTSP connection (`RTP/AVP/TCP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetinaTransport {
    /// RTP and RTCP over UDP (retina binds a port pair per stream).
    Udp,
    /// RTP and RTCP interleaved in the RTSP TCP connection.
    Tcp,
}

impl RetinaTransport {
    fn to_retina(self) -> Transport {
        match self {
            RetinaTransport::Udp => Transport::Udp(Default::default()),
            RetinaTransport::Tcp => Transport::Tcp(Default::default()),
        }
    }
}

impl fmt::Display for RetinaTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RetinaTransport::Udp => "udp",
            RetinaTransport::Tcp => "tcp",
        })
    }
}

/// What one stream (track) of a [`retina_play`] session received.
#[derive(Debug, Clone, Default)]
pub struct RetinaStreamReport {
    /// SDP media type: `video`, `audio`...
    pub media: String,
    /// SDP encoding name, lower case: `h264`, `mpeg4-generic`, `opus`...
    pub encoding_name: String,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// RTP packets received (those retina accepted).
    pub packets: u64,
    /// Sum of retina's [`retina::rtp::ReceivedPacket::loss`]: sequence
    /// numbers skipped, counted from `RTP-Info: seq=` when announced (retina
    /// ignores an announced `seq` of 0 or 1), else from the first packet.
    pub loss: u64,
    /// RTCP compound packets received.
    pub rtcp_packets: u64,
    /// SSRC of the first packet.
    pub ssrc: Option<u32>,
    /// Sequence number of the first packet.
    pub first_seq: Option<u16>,
    /// The first packet's payload (its first 16 bytes at most), e.g. to
    /// check that the first video packet starts a keyframe.
    pub first_payload: Vec<u8>,
    /// The first packet's timestamp in seconds since the stream's start: the
    /// `RTP-Info: rtptime=` when [`RetinaReport::start_from_rtp_info`], else
    /// the first packet itself (then this is always 0). Near 0 is right.
    pub first_elapsed_secs: Option<f64>,
    /// The last packet's timestamp, same scale.
    pub last_elapsed_secs: Option<f64>,
    /// The RTP timestamp of the first RTCP sender report, same scale (with a
    /// single stream retina starts its timeline there when the report comes
    /// before the first packet, as the one sent right after PLAY does).
    pub first_sr_elapsed_secs: Option<f64>,
    /// When the first packet arrived, counted from the PLAY response.
    pub first_received_after_play: Option<Duration>,
    /// When the last packet arrived, counted from the PLAY response.
    pub last_received_after_play: Option<Duration>,
    /// The timestamp (same scale) of the next frame after the first packet's:
    /// the first packet more than [`NEXT_FRAME_AFTER_SECS`] of media time
    /// after the packet before it. After a keyframe-cache replay (its frames
    /// retimed clock ticks apart) this is the first live frame.
    pub next_frame_elapsed_secs: Option<f64>,
    /// When that frame's first packet arrived, counted from the PLAY response.
    pub next_frame_received_after_play: Option<Duration>,
    /// The least, over that frame's packets and all after it, of arrival
    /// (seconds after the PLAY response) less timestamp (same scale as
    /// [`RetinaStreamReport::first_elapsed_secs`]): the packet that came
    /// earliest for its timestamp.
    pub least_arrival_less_timestamp_secs: Option<f64>,
}

/// Media time between two packets above which the second starts a frame of
/// its own that is not part of a retimed replay (whose frames are clock ticks
/// apart; a frame at 120 fps is 8 ms).
pub const NEXT_FRAME_AFTER_SECS: f64 = 0.001;

impl RetinaStreamReport {
    /// Media time covered (last minus first timestamp), in seconds.
    pub fn media_span_secs(&self) -> Option<f64> {
        Some(self.last_elapsed_secs? - self.first_elapsed_secs?)
    }

    /// Where the first packet's timestamp is on the first sender report's
    /// clock, in seconds: how long before (negative) or after the moment the
    /// report describes the first media is, for a client that maps RTP time
    /// to wall time through the report (about 0 when the report sent at PLAY
    /// agrees with the first packet).
    pub fn first_packet_from_sender_report_secs(&self) -> Option<f64> {
        Some(self.first_elapsed_secs? - self.first_sr_elapsed_secs?)
    }

    /// How much later, in seconds, the next frame (see
    /// [`RetinaStreamReport::next_frame_elapsed_secs`]) arrived for its
    /// timestamp than the packet that came earliest for its own: 0 when the
    /// back end delivered it on time. A back end that delivers a frame late (an
    /// encoder stalled on a busy machine) leaves the live edge at PLAY, the
    /// frame before it, that much further behind the moment the sender report
    /// sent at PLAY describes, through the proxy as for a client connected
    /// straight to it. (Measured against the other packets, not against the
    /// report, whose own error this must not hide.)
    pub fn next_frame_lateness_secs(&self) -> Option<f64> {
        let arrival_less_ts =
            self.next_frame_received_after_play?.as_secs_f64() - self.next_frame_elapsed_secs?;
        Some(arrival_less_ts - self.least_arrival_less_timestamp_secs?)
    }

    /// Wall-clock time between the first and the last packet, in seconds.
    pub fn wall_span_secs(&self) -> Option<f64> {
        Some(
            self.last_received_after_play?
                .checked_sub(self.first_received_after_play?)?
                .as_secs_f64(),
        )
    }
}

/// What [`retina_play`] saw.
#[derive(Debug, Clone)]
pub struct RetinaReport {
    /// The URL played.
    pub url: String,
    /// The transport asked for.
    pub transport: RetinaTransport,
    /// One entry per stream of the SDP, in SDP order (all are set up).
    pub streams: Vec<RetinaStreamReport>,
    /// The error retina raised while playing (wrong SSRC, sequence going
    /// backwards over TCP, RTCP trouble, connection closed...). retina's
    /// errors end the session, so there is at most one, and it names the
    /// stream (`stream_id`) in its text. `None` if the session was still fine
    /// when `duration` was over.
    pub error: Option<String>,
    /// Time from the start of DESCRIBE to the PLAY response.
    pub connect_took: Duration,
    /// Time the PLAY request took (request to response).
    pub play_took: Duration,
    /// Whether timestamps are measured from `RTP-Info: rtptime=` (retina
    /// requires it, and uses it, when more than one stream plays).
    pub start_from_rtp_info: bool,
    /// How the TEARDOWN at the end went (`Err` if it failed or timed out).
    pub teardown: Result<(), String>,
}

impl RetinaReport {
    /// The first stream whose media type is `media` (`video`, `audio`).
    pub fn stream(&self, media: &str) -> Option<&RetinaStreamReport> {
        self.streams.iter().find(|s| s.media == media)
    }

    /// When the first packet of any stream arrived, after the PLAY response.
    pub fn first_packet_after_play(&self) -> Option<Duration> {
        self.streams
            .iter()
            .filter_map(|s| s.first_received_after_play)
            .min()
    }

    /// Checks what a correct server gives a fresh client: no retina error,
    /// every stream received packets with no loss, and its first timestamp
    /// within `max_start_secs` of the `RTP-Info` start (both directions).
    ///
    /// One exception to the last rule: a first packet that arrived late (the
    /// server's source was still starting) may carry a later timestamp if it
    /// is its arrival time after the PLAY response, within
    /// [`RETINA_ARRIVAL_MATCH_SECS`]: `RTP-Info` said "now" at PLAY, and the
    /// media starts when it says it does. Bound the arrival time separately.
    ///
    /// The error lists every problem and quotes the report.
    pub fn check_clean(&self, max_start_secs: f64) -> Result<(), String> {
        let mut problems = Vec::new();
        if let Some(e) = &self.error {
            problems.push(format!("retina error: {e}"));
        }
        if self.streams.is_empty() {
            problems.push("no stream in the SDP".to_owned());
        }
        for (i, s) in self.streams.iter().enumerate() {
            let name = format!("stream {i} ({} {})", s.media, s.encoding_name);
            if s.packets == 0 {
                problems.push(format!("{name}: no packet"));
                continue;
            }
            if s.loss != 0 {
                problems.push(format!("{name}: {} packet(s) lost", s.loss));
            }
            let arrival = s.first_received_after_play.map(|d| d.as_secs_f64());
            match s.first_elapsed_secs {
                Some(t) if t.abs() <= max_start_secs => {}
                Some(t)
                    if t > 0.0
                        && arrival.is_some_and(|a| (t - a).abs() <= RETINA_ARRIVAL_MATCH_SECS) => {}
                Some(t) => problems.push(format!(
                    "{name}: first timestamp {t:+.3} s from the RTP-Info start \
                     (allowed ±{max_start_secs} s)"
                )),
                None => problems.push(format!("{name}: no timestamp")),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("{}\n  report: {self}", problems.join("; ")))
        }
    }
}

impl fmt::Display for RetinaReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} over {}: connect {:.2?} (PLAY {:.2?}), start from RTP-Info: {}, error: {:?}, teardown: {:?}",
            self.url,
            self.transport,
            self.connect_took,
            self.play_took,
            self.start_from_rtp_info,
            self.error,
            self.teardown
        )?;
        for (i, s) in self.streams.iter().enumerate() {
            write!(
                f,
                "\n    stream {i} {} {}/{}: {} pkts, loss {}, {} rtcp, ssrc {:08x?}, seq {:?}, \
                 first ts {}, last ts {}, first SR ts {}, first pkt after PLAY {:.2?}, \
                 last {:.2?}, next frame ts {} after PLAY {:.2?}",
                s.media,
                s.encoding_name,
                s.clock_rate,
                s.packets,
                s.loss,
                s.rtcp_packets,
                s.ssrc,
                s.first_seq,
                secs(s.first_elapsed_secs),
                secs(s.last_elapsed_secs),
                secs(s.first_sr_elapsed_secs),
                s.first_received_after_play,
                s.last_received_after_play,
                secs(s.next_frame_elapsed_secs),
                s.next_frame_received_after_play,
            )?;
        }
        Ok(())
    }
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:+.3} s"))
}

/// Plays `url` with retina over `transport`: DESCRIBE, SETUP of every stream
/// of the SDP, PLAY, then reads packets for `duration` counted from the PLAY
/// response, and TEARDOWN.
///
/// Returns `Err` when the session cannot be played: the URL is bad, DESCRIBE,
/// a SETUP or PLAY fails, or they take longer than
/// [`RETINA_CONNECT_TIMEOUT`] together. Once playing, problems are reported,
/// not returned: a retina error ends the reading early and is kept in
/// [`RetinaReport::error`]; streams that received nothing have
/// `packets == 0`. Never takes much longer than
/// `RETINA_CONNECT_TIMEOUT + duration + 10 s`.
pub fn retina_play(
    url: &str,
    transport: RetinaTransport,
    duration: Duration,
) -> Result<RetinaReport, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("bad URL {url:?}: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build a tokio runtime: {e}"))?;
    eprintln!("[e2e] retina: play {url} over {transport} for {duration:?}");
    let overall = RETINA_CONNECT_TIMEOUT + duration + TEARDOWN_TIMEOUT + SLACK;
    let result = runtime.block_on(async {
        match tokio::time::timeout(overall, play(parsed, url, transport, duration)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "retina session on {url} over {transport} still running after {overall:?}"
            )),
        }
    });
    // Whatever retina still runs in the background (e.g. TEARDOWN retries on
    // fresh connections) is dropped with the runtime.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match &result {
        Ok(report) => eprintln!("[e2e] retina: {report}"),
        Err(e) => eprintln!("[e2e] retina: {url} over {transport} failed: {e}"),
    }
    result
}

async fn play(
    parsed: url::Url,
    url: &str,
    transport: RetinaTransport,
    duration: Duration,
) -> Result<RetinaReport, String> {
    let group = Arc::new(SessionGroup::default());
    let start = Instant::now();
    let (session, mut streams, play_took) = tokio::time::timeout(RETINA_CONNECT_TIMEOUT, async {
        // Credentials in the URL (`rtsp://user:pass@...`) are given to retina
        // apart, as it wants them.
        let mut parsed = parsed;
        let creds = (!parsed.username().is_empty()).then(|| retina::client::Credentials {
            username: percent_decode(parsed.username()),
            password: percent_decode(parsed.password().unwrap_or("")),
        });
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        let options = SessionOptions::default()
            .user_agent("rtsp-proxy e2e tests (retina)".to_owned())
            .creds(creds)
            .session_group(Arc::clone(&group))
            .teardown(TeardownPolicy::Auto);
        let mut session = Session::describe(parsed, options)
            .await
            .map_err(|e| format!("DESCRIBE failed: {e}"))?;
        let streams: Vec<RetinaStreamReport> = session
            .streams()
            .iter()
            .map(|s| RetinaStreamReport {
                media: s.media().to_owned(),
                encoding_name: s.encoding_name().to_owned(),
                clock_rate: s.clock_rate_hz(),
                ..Default::default()
            })
            .collect();
        for i in 0..streams.len() {
            session
                .setup(i, SetupOptions::default().transport(transport.to_retina()))
                .await
                .map_err(|e| format!("SETUP of stream {i} failed: {e}"))?;
        }
        let play_at = Instant::now();
        let session = session
            .play(PlayOptions::default())
            .await
            .map_err(|e| format!("PLAY failed: {e}"))?;
        Ok::<_, String>((session, streams, play_at.elapsed()))
    })
    .await
    .map_err(|_| {
        format!(
            "DESCRIBE/SETUP/PLAY of {url} over {transport} not done after \
                 {RETINA_CONNECT_TIMEOUT:?}"
        )
    })??;
    let connect_took = start.elapsed();
    let start_from_rtp_info = streams.len() > 1;

    let mut session = session;
    let playing_since = Instant::now();
    let deadline = tokio::time::Instant::now() + duration;
    let mut error = None;
    loop {
        let item = match tokio::time::timeout_at(deadline, session.next()).await {
            Err(_) => break,
            Ok(item) => item,
        };
        match item {
            None => {
                error = Some("the session ended (no more packets)".to_owned());
                break;
            }
            Some(Err(e)) => {
                error = Some(e.to_string());
                break;
            }
            Some(Ok(PacketItem::Rtp(pkt))) => {
                let Some(s) = streams.get_mut(pkt.stream_id()) else {
                    continue;
                };
                let at = playing_since.elapsed();
                let elapsed = pkt.timestamp().elapsed_secs();
                if s.packets == 0 {
                    s.ssrc = Some(pkt.ssrc());
                    s.first_seq = Some(pkt.sequence_number());
                    s.first_payload = pkt.payload().iter().take(16).copied().collect();
                    s.first_elapsed_secs = Some(elapsed);
                    s.first_received_after_play = Some(at);
                } else if s.next_frame_elapsed_secs.is_none()
                    && s.last_elapsed_secs
                        .is_some_and(|last| elapsed - last > NEXT_FRAME_AFTER_SECS)
                {
                    s.next_frame_elapsed_secs = Some(elapsed);
                    s.next_frame_received_after_play = Some(at);
                }
                if s.next_frame_elapsed_secs.is_some() {
                    let arrival_less_ts = at.as_secs_f64() - elapsed;
                    s.least_arrival_less_timestamp_secs = Some(
                        s.least_arrival_less_timestamp_secs
                            .map_or(arrival_less_ts, |least| least.min(arrival_less_ts)),
                    );
                }
                s.packets += 1;
                s.loss += u64::from(pkt.loss());
                s.last_elapsed_secs = Some(elapsed);
                s.last_received_after_play = Some(at);
            }
            Some(Ok(PacketItem::Rtcp(pkt))) => {
                if let Some(s) = streams.get_mut(pkt.stream_id()) {
                    s.rtcp_packets += 1;
                    if s.first_sr_elapsed_secs.is_none() {
                        s.first_sr_elapsed_secs = pkt.rtp_timestamp().map(|t| t.elapsed_secs());
                    }
                }
            }
            // PacketItem is non-exhaustive.
            Some(Ok(_)) => {}
        }
    }

    // Dropping the session starts retina's TEARDOWN in the background; wait
    // for its first attempt so that the server sees this client leave now
    // (over UDP it would otherwise only notice at the session timeout).
    drop(session);
    let teardown = match tokio::time::timeout(TEARDOWN_TIMEOUT, group.await_teardown()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("TEARDOWN failed: {e}")),
        Err(_) => Err(format!("TEARDOWN not done after {TEARDOWN_TIMEOUT:?}")),
    };

    Ok(RetinaReport {
        url: url.to_owned(),
        transport,
        streams,
        error,
        connect_took,
        play_took,
        start_from_rtp_info,
        teardown,
    })
}

/// `%XX` escapes of a URL's user information decoded.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
