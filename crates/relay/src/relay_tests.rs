//! Sans-IO tests of the relay: a [`Stream`] fed with hand-made RTP/RTCP packets and
//! read back through interleaved sinks (a [`TestQueue`] in place of the server's
//! connection queue), as a client connection's writer would see them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use rtp::packet::{parse_rtp, write_header};
use rtp::rtcp::{self, SenderInfo};

use super::*;
use sdp::{self, Presentation};

/// A camera-like back end: H.264 video and AAC audio.
const SDP_2_TRACKS: &str = "v=0\r\n\
o=- 1 1 IN IP4 192.0.2.10\r\n\
s=cam\r\n\
t=0 0\r\n\
a=control:*\r\n\
m=video 0 RTP/AVP 96\r\n\
a=rtpmap:96 H264/90000\r\n\
a=fmtp:96 packetization-mode=1\r\n\
a=control:trackID=0\r\n\
m=audio 0 RTP/AVP 97\r\n\
a=rtpmap:97 MPEG4-GENERIC/48000/2\r\n\
a=control:trackID=1\r\n";

/// The same tracks after a back-end restart: other fmtp, other control names.
const SDP_2_TRACKS_UPDATED: &str = "v=0\r\n\
s=cam restarted\r\n\
m=video 0 RTP/AVP 96\r\n\
a=rtpmap:96 H264/90000\r\n\
a=fmtp:96 packetization-mode=1;profile-level-id=640028\r\n\
a=control:stream=0\r\n\
m=audio 0 RTP/AVP 97\r\n\
a=rtpmap:97 MPEG4-GENERIC/48000/2\r\n\
a=control:stream=1\r\n";

/// Different tracks: the audio codec changed.
const SDP_OTHER_TRACKS: &str = "v=0\r\n\
s=cam\r\n\
m=video 0 RTP/AVP 96\r\n\
a=rtpmap:96 H264/90000\r\n\
m=audio 0 RTP/AVP 0\r\n";

const BACKEND_SSRC: u32 = 0x1234_5678;
const VIDEO: usize = 0;
const AUDIO: usize = 1;

fn presentation(text: &str) -> Presentation {
    sdp::parse(text).expect("test SDP parses")
}

/// A described stream without keyframe cache (payloads here are arbitrary bytes,
/// some of which look like H.264 keyframes).
fn described_stream() -> Arc<Stream> {
    described_stream_with_cache(0)
}

fn described_stream_with_cache(cache_bytes: usize) -> Arc<Stream> {
    let stream = Stream::with_cache("cam", cache_bytes);
    assert_eq!(
        stream.set_presentation(presentation(SDP_2_TRACKS)),
        PresentationChange::First
    );
    stream
}

fn rtp_packet(seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    write_header(&mut b, false, 96, seq, ts, ssrc);
    b.extend_from_slice(payload);
    b
}

/// A connection queue as the server's `ConnOut` is to the relay: bounded in
/// packets and bytes, a batch that does not fit is dropped whole (counted per
/// packet), and a keyframe-capable channel that lost a batch skips up to its
/// next keyframe. The tests read back what it took.
#[derive(Debug)]
struct TestQueue {
    /// (channel, packets) of each item taken, in order.
    items: Mutex<VecDeque<(u8, Vec<Bytes>)>>,
    limit: usize,
    byte_limit: usize,
    dropped: AtomicU64,
    /// Channels (bit n) skipping media up to the next keyframe.
    awaiting_keyframe: AtomicU64,
}

/// The same queue, read by the test as a connection's writer would.
type Receiver = Arc<TestQueue>;

impl TestQueue {
    fn with_limits(limit: usize, byte_limit: usize) -> (Arc<TestQueue>, Receiver) {
        let q = Arc::new(TestQueue {
            items: Mutex::new(VecDeque::new()),
            limit,
            byte_limit,
            dropped: AtomicU64::new(0),
            awaiting_keyframe: AtomicU64::new(0),
        });
        (q.clone(), q)
    }

    /// Media packets waiting to be written.
    fn queued(&self) -> usize {
        self.items
            .lock()
            .unwrap()
            .iter()
            .map(|(_, p)| p.len())
            .sum()
    }

    fn take(&self) -> Option<(u8, Vec<Bytes>)> {
        self.items.lock().unwrap().pop_front()
    }

    fn push(&self, channel: u8, packets: Vec<Bytes>, keyframe: Option<bool>) -> bool {
        let bit = match keyframe {
            Some(_) if channel < 64 => 1u64 << channel,
            _ => 0,
        };
        let count = packets.len() as u64;
        let waiting = self.awaiting_keyframe.load(Ordering::Relaxed) & bit != 0;
        if waiting && keyframe != Some(true) {
            self.dropped.fetch_add(count, Ordering::Relaxed);
            return false;
        }
        let mut items = self.items.lock().unwrap();
        let queued: usize = items.iter().map(|(_, p)| p.len()).sum();
        let bytes: usize = items.iter().flat_map(|(_, p)| p).map(Bytes::len).sum();
        let new_bytes: usize = packets.iter().map(Bytes::len).sum();
        if queued + packets.len() > self.limit || bytes + new_bytes > self.byte_limit {
            self.dropped.fetch_add(count, Ordering::Relaxed);
            self.awaiting_keyframe.fetch_or(bit, Ordering::Relaxed);
            return false;
        }
        self.awaiting_keyframe.fetch_and(!bit, Ordering::Relaxed);
        items.push_back((channel, packets));
        true
    }
}

impl InterleavedQueue for TestQueue {
    fn send_media(&self, channel: u8, payload: &Bytes) -> bool {
        self.push(channel, vec![payload.clone()], None)
    }

    fn send_media_batch(
        &self,
        channel: u8,
        packets: &Arc<[Bytes]>,
        bytes: usize,
        keyframe: Option<bool>,
    ) -> bool {
        assert!(!packets.is_empty(), "no empty batch is queued");
        assert_eq!(bytes, packets.iter().map(Bytes::len).sum::<usize>());
        self.push(channel, packets.to_vec(), keyframe)
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// An interleaved sink on a fresh connection queue.
fn interleaved(limit: usize, rtp_channel: u8) -> (Sink, Arc<TestQueue>, Receiver) {
    let (out, rx) = TestQueue::with_limits(limit, 8 * 1024 * 1024);
    let sink = Sink::Interleaved {
        out: out.clone(),
        rtp_channel,
        rtcp_channel: rtp_channel + 1,
    };
    (sink, out, rx)
}

/// Everything queued on a connection: (channel, payload) of each media packet,
/// as the writer would take them.
fn drain_media(rx: &mut Receiver) -> Vec<(u8, Bytes)> {
    let mut out = Vec::new();
    while let Some((channel, packets)) = rx.take() {
        out.extend(packets.into_iter().map(|p| (channel, p)));
    }
    out
}

fn on_channel(items: &[(u8, Bytes)], channel: u8) -> Vec<Bytes> {
    items
        .iter()
        .filter(|(c, _)| *c == channel)
        .map(|(_, p)| p.clone())
        .collect()
}

fn counting_closer() -> (Arc<Closer>, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let closer: Closer = Box::new(move || {
        c.fetch_add(1, Ordering::SeqCst);
    });
    (Arc::new(closer), count)
}

/// Starts delivery of `sinks` to subscriber `id`; returns the start points given
/// to the respond closure.
fn play(
    stream: &Arc<Stream>,
    id: SubscriberId,
    sinks: Vec<(usize, Sink)>,
    now: Instant,
) -> Vec<StartPoint> {
    let (closer, _) = counting_closer();
    let mut points = Vec::new();
    stream
        .play(id, stream.generation(), sinks, closer, now, |p| {
            points = p.to_vec()
        })
        .expect("play accepted");
    points
}

fn seq_ts_ssrc(pkt: &[u8]) -> (u16, u32, u32) {
    let h = parse_rtp(pkt).expect("relayed packet is RTP");
    (h.sequence, h.timestamp, h.ssrc)
}

/// Signed distance a - b between two RTP timestamps.
fn ts_diff(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

fn backend_sr(ssrc: u32, ntp: u64, rtp_timestamp: u32) -> Bytes {
    let mut b = BytesMut::new();
    let info = SenderInfo {
        ssrc,
        ntp,
        rtp_timestamp,
        packet_count: 10,
        octet_count: 1000,
    };
    rtcp::build_sender_report(&mut b, &info, "camera");
    b.freeze()
}

#[test]
fn packets_before_any_subscriber_go_nowhere() {
    let stream = described_stream();
    let t0 = Instant::now();
    for i in 0..5u16 {
        stream.push_rtp(
            VIDEO,
            rtp_packet(100 + i, 9000 * u32::from(i), BACKEND_SSRC, b"x"),
            t0,
        );
    }
    let stats = stream.stats();
    assert_eq!(stats.rtp_in, 5);
    assert_eq!(stats.rtp_invalid, 0);
    assert_eq!(stream.players(), 0);
    assert_eq!(*stream.watch_demand().borrow(), 0);
}

#[test]
fn push_to_a_stream_without_presentation_is_counted_invalid() {
    let stream = Stream::new("idle");
    let now = Instant::now();
    stream.push_rtp(0, rtp_packet(1, 1, BACKEND_SSRC, b"x"), now);
    assert_eq!(
        stream.push_rtcp(0, &backend_sr(BACKEND_SSRC, 1, 1), now),
        RtcpOutcome::default()
    );
    stream.tick(now);
    assert_eq!(stream.track_ssrc(0), None);
    assert_eq!(stream.stats().rtp_invalid, 1);
}

#[test]
fn invalid_packets_and_unknown_tracks_are_dropped() {
    let stream = described_stream();
    let (sink, _out, mut rx) = interleaved(16, 0);
    let now = Instant::now();
    play(&stream, 1, vec![(VIDEO, sink)], now);
    // Too short, wrong version, and a track the presentation does not have.
    stream.push_rtp(VIDEO, BytesMut::from(&[0x80u8, 96, 0, 1][..]), now);
    let mut v1 = rtp_packet(1, 1, BACKEND_SSRC, b"x");
    v1[0] = 0x40;
    stream.push_rtp(VIDEO, v1, now);
    stream.push_rtp(7, rtp_packet(1, 1, BACKEND_SSRC, b"x"), now);
    assert_eq!(stream.stats().rtp_invalid, 3);
    assert!(drain_media(&mut rx).is_empty());
}

#[test]
fn subscriber_gets_our_ssrc_from_the_start_point() {
    let stream = described_stream();
    let our_ssrc = stream.track_ssrc(VIDEO).expect("track exists");
    let t0 = Instant::now();
    // Some traffic before anybody watches: the continuity moves on.
    for i in 0..3u16 {
        stream.push_rtp(
            VIDEO,
            rtp_packet(
                500 + i,
                1_000 + 3_000 * u32::from(i),
                BACKEND_SSRC,
                b"early",
            ),
            t0,
        );
    }
    let (sink, _out, mut rx) = interleaved(64, 0);
    let t1 = t0 + Duration::from_millis(40);
    let points = play(&stream, stream.new_subscriber(), vec![(VIDEO, sink)], t1);
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].track, VIDEO);

    for i in 0..10u16 {
        // The camera's clock moves by 3600 ticks every 40 ms from the last early
        // packet (ts 7000 at t0).
        let ts = 7_000 + 3_600 * (u32::from(i) + 1);
        stream.push_rtp(
            VIDEO,
            rtp_packet(503 + i, ts, BACKEND_SSRC, b"payload"),
            t1 + Duration::from_millis(40 * u64::from(i)),
        );
    }
    let got = on_channel(&drain_media(&mut rx), 0);
    assert_eq!(got.len(), 10);
    let (first_seq, first_ts, _) = seq_ts_ssrc(&got[0]);
    assert_eq!(
        first_seq, points[0].seq,
        "first packet carries the RTP-Info seq"
    );
    // RTP-Info's rtptime is the wall-clock projection of the last packet; the
    // first packet agrees with it (within a millisecond).
    assert!(
        ts_diff(first_ts, points[0].rtptime).abs() <= 90,
        "rtptime {} vs first ts {first_ts}",
        points[0].rtptime
    );
    for (i, pkt) in got.iter().enumerate() {
        let (seq, ts, ssrc) = seq_ts_ssrc(pkt);
        assert_eq!(ssrc, our_ssrc);
        assert_ne!(ssrc, BACKEND_SSRC);
        assert_eq!(seq, points[0].seq.wrapping_add(i as u16));
        assert_eq!(ts_diff(ts, first_ts), 3_600 * i as i64);
        assert_eq!(&pkt[12..], b"payload");
    }
}

#[test]
fn start_point_before_the_first_packet_ever_is_exact() {
    let stream = described_stream();
    let (sink, _out, mut rx) = interleaved(64, 0);
    let now = Instant::now();
    let points = play(&stream, 1, vec![(VIDEO, sink)], now);
    stream.push_rtp(VIDEO, rtp_packet(40_000, 123, BACKEND_SSRC, b"x"), now);
    let got = on_channel(&drain_media(&mut rx), 0);
    assert_eq!(got.len(), 1);
    let (seq, ts, _) = seq_ts_ssrc(&got[0]);
    assert_eq!((seq, ts), (points[0].seq, points[0].rtptime));
}

#[test]
fn start_points_cover_every_track_played() {
    let stream = described_stream();
    let (video, _vo, mut vrx) = interleaved(64, 0);
    let (audio, _ao, mut arx) = interleaved(64, 2);
    let now = Instant::now();
    let points = play(&stream, 1, vec![(VIDEO, video), (AUDIO, audio)], now);
    assert_eq!(
        points.iter().map(|p| p.track).collect::<Vec<_>>(),
        vec![VIDEO, AUDIO]
    );
    stream.push_rtp(AUDIO, rtp_packet(7, 1024, 0xAAAA, b"aac"), now);
    stream.push_rtp(VIDEO, rtp_packet(9, 90, 0xBBBB, b"h264"), now);
    let a = on_channel(&drain_media(&mut arx), 2);
    let v = on_channel(&drain_media(&mut vrx), 0);
    assert_eq!(
        seq_ts_ssrc(&a[0]).2,
        stream.track_ssrc(AUDIO).expect("audio")
    );
    assert_eq!(
        seq_ts_ssrc(&v[0]).2,
        stream.track_ssrc(VIDEO).expect("video")
    );
    assert_eq!(seq_ts_ssrc(&a[0]).0, points[1].seq);
    assert_eq!(seq_ts_ssrc(&v[0]).0, points[0].seq);
    assert_ne!(stream.track_ssrc(AUDIO), stream.track_ssrc(VIDEO));
}

#[test]
fn every_subscriber_gets_the_same_buffer() {
    let stream = described_stream();
    let (s1, _o1, mut rx1) = interleaved(64, 0);
    let (s2, _o2, mut rx2) = interleaved(64, 4);
    let now = Instant::now();
    play(&stream, 1, vec![(VIDEO, s1)], now);
    play(&stream, 2, vec![(VIDEO, s2)], now);
    for i in 0..3u16 {
        stream.push_rtp(
            VIDEO,
            rtp_packet(i, u32::from(i) * 3000, BACKEND_SSRC, b"frame"),
            now,
        );
    }
    let a = on_channel(&drain_media(&mut rx1), 0);
    let b = on_channel(&drain_media(&mut rx2), 4);
    assert_eq!(a.len(), 3);
    assert_eq!(b.len(), 3);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
        assert_eq!(
            x.as_ptr(),
            y.as_ptr(),
            "one allocation shared by all sinks, no per-client copy"
        );
    }
}

#[test]
fn a_slow_subscriber_loses_only_its_own_packets() {
    let stream = described_stream();
    let (slow, slow_out, mut slow_rx) = interleaved(2, 0);
    let (fast, fast_out, mut fast_rx) = interleaved(1024, 0);
    let now = Instant::now();
    play(&stream, 1, vec![(VIDEO, slow)], now);
    play(&stream, 2, vec![(VIDEO, fast)], now);
    for i in 0..10u16 {
        stream.push_rtp(VIDEO, rtp_packet(i, u32::from(i), BACKEND_SSRC, b"x"), now);
    }
    assert_eq!(slow_out.dropped(), 8);
    assert_eq!(slow_out.queued(), 2);
    assert_eq!(fast_out.dropped(), 0);
    let fast_got = drain_media(&mut fast_rx);
    assert_eq!(fast_got.len(), 10);
    // The slow client got the first two, in order, and nothing else.
    let slow_got = drain_media(&mut slow_rx);
    assert_eq!(slow_got.len(), 2);
    assert_eq!(slow_got[0].1, fast_got[0].1);
    assert_eq!(slow_got[1].1, fast_got[1].1);
    // Once drained it receives again.
    stream.push_rtp(VIDEO, rtp_packet(10, 10, BACKEND_SSRC, b"x"), now);
    assert_eq!(drain_media(&mut slow_rx).len(), 1);
    assert_eq!(slow_out.dropped(), 8);
}

#[test]
fn source_reset_keeps_one_continuous_stream() {
    let stream = described_stream();
    let our_ssrc = stream.track_ssrc(VIDEO).expect("track");
    let (sink, _out, mut rx) = interleaved(64, 0);
    let t0 = Instant::now();
    play(&stream, 1, vec![(VIDEO, sink)], t0);
    for i in 0..5u16 {
        stream.push_rtp(
            VIDEO,
            rtp_packet(1000 + i, 50_000 + 3000 * u32::from(i), BACKEND_SSRC, b"a"),
            t0,
        );
    }
    stream.source_reset();
    // The back end comes back two seconds later with everything new.
    let t1 = t0 + Duration::from_secs(2);
    for i in 0..3u16 {
        stream.push_rtp(
            VIDEO,
            rtp_packet(60_000 + i, 7 + 3000 * u32::from(i), 0xDEAD_BEEF, b"b"),
            t1,
        );
    }
    let got: Vec<_> = on_channel(&drain_media(&mut rx), 0)
        .iter()
        .map(|p| seq_ts_ssrc(p))
        .collect();
    assert_eq!(got.len(), 8);
    for w in got.windows(2) {
        assert_eq!(
            w[1].0,
            w[0].0.wrapping_add(1),
            "sequence goes on by one across the reset"
        );
    }
    assert!(got.iter().all(|(_, _, ssrc)| *ssrc == our_ssrc));
    // The first packet after the reset is two seconds of 90 kHz after the last one
    // (the whole first run arrived at t0).
    let before = got[4].1;
    let after = got[5].1;
    assert_eq!(ts_diff(after, before), 2 * 90_000);
    assert_eq!(
        ts_diff(got[7].1, after),
        2 * 3000,
        "then the new source's own steps"
    );
    assert_eq!(stream.track_ssrc(VIDEO), Some(our_ssrc));
}

#[test]
fn backend_sender_report_is_mapped_like_the_rtp() {
    let stream = described_stream();
    let our_ssrc = stream.track_ssrc(VIDEO).expect("track");
    let (sink, _out, mut rx) = interleaved(64, 0);
    let now = Instant::now();
    play(&stream, 1, vec![(VIDEO, sink)], now);
    let in_ts = 3_000_000_000u32;
    stream.push_rtp(VIDEO, rtp_packet(10, in_ts, BACKEND_SSRC, b"x"), now);
    let ntp = rtcp::ntp_from_system_time(SystemTime::now());
    let sr_ts = in_ts.wrapping_add(45_000);
    let outcome = stream.push_rtcp(VIDEO, &backend_sr(BACKEND_SSRC, ntp, sr_ts), now);
    assert_eq!(outcome, RtcpOutcome { bye: false });

    let items = drain_media(&mut rx);
    let rtp = on_channel(&items, 0);
    let rtcp_items = on_channel(&items, 1);
    assert_eq!(rtp.len(), 1);
    assert_eq!(rtcp_items.len(), 1, "the SR goes out on the RTCP channel");
    let (_, out_ts, _) = seq_ts_ssrc(&rtp[0]);
    let srs = rtcp::sender_reports(&rtcp_items[0]);
    assert_eq!(srs.len(), 1);
    assert_eq!(srs[0].ssrc, our_ssrc);
    assert_eq!(srs[0].ntp, ntp, "the camera's wall clock is kept");
    assert_eq!(
        srs[0].rtp_timestamp,
        sr_ts.wrapping_add(out_ts.wrapping_sub(in_ts)),
        "same offset as the RTP"
    );
    assert_eq!(srs[0].packet_count, 1);
    assert_eq!(srs[0].octet_count, 1);
    assert!(rtcp::is_valid_compound(&rtcp_items[0]));
    assert_eq!(stream.stats().rtcp_in, 1);
}

#[test]
fn sender_report_of_an_unknown_ssrc_is_not_forwarded() {
    let stream = described_stream();
    let (sink, _out, mut rx) = interleaved(64, 0);
    let now = Instant::now();
    play(&stream, 1, vec![(VIDEO, sink)], now);
    // Before any RTP nothing is mapped at all.
    stream.push_rtcp(VIDEO, &backend_sr(BACKEND_SSRC, 1 << 32, 5), now);
    stream.push_rtp(VIDEO, rtp_packet(10, 10, BACKEND_SSRC, b"x"), now);
    stream.push_rtcp(VIDEO, &backend_sr(0x0BAD_0BAD, 1 << 32, 5), now);
    // Garbage is ignored too.
    stream.push_rtcp(VIDEO, &[0xff; 7], now);
    stream.push_rtcp(VIDEO, &[], now);
    let items = drain_media(&mut rx);
    assert!(on_channel(&items, 1).is_empty());
    assert_eq!(on_channel(&items, 0).len(), 1);
    // An SR of the other track's source on this track is also unknown here.
    stream.push_rtcp(AUDIO, &backend_sr(BACKEND_SSRC, 1 << 32, 5), now);
    assert!(drain_media(&mut rx).is_empty());
}

#[test]
fn bye_counts_only_for_the_relayed_source() {
    let stream = described_stream();
    let now = Instant::now();
    let bye = |ssrc| {
        let mut b = BytesMut::new();
        rtcp::build_bye(&mut b, ssrc);
        b.freeze()
    };
    // Nothing relayed yet: no source to say goodbye.
    assert_eq!(
        stream.push_rtcp(VIDEO, &bye(BACKEND_SSRC), now),
        RtcpOutcome { bye: false }
    );
    stream.push_rtp(VIDEO, rtp_packet(1, 1, BACKEND_SSRC, b"x"), now);
    assert_eq!(
        stream.push_rtcp(VIDEO, &bye(0x5555_5555), now),
        RtcpOutcome { bye: false }
    );
    assert_eq!(
        stream.push_rtcp(VIDEO, &bye(BACKEND_SSRC), now),
        RtcpOutcome { bye: true }
    );
    // The audio track relays nothing from that SSRC.
    assert_eq!(
        stream.push_rtcp(AUDIO, &bye(BACKEND_SSRC), now),
        RtcpOutcome { bye: false }
    );
    // After a reset the old source is no longer the relayed one.
    stream.source_reset();
    assert_eq!(
        stream.push_rtcp(VIDEO, &bye(BACKEND_SSRC), now),
        RtcpOutcome { bye: false }
    );
    // An unknown track never reports a BYE.
    assert_eq!(
        stream.push_rtcp(9, &bye(BACKEND_SSRC), now),
        RtcpOutcome { bye: false }
    );
}

#[test]
fn tick_synthesizes_sender_reports_without_backend_ones() {
    let stream = described_stream();
    let our_ssrc = stream.track_ssrc(VIDEO).expect("track");
    let (sink, _out, mut rx) = interleaved(64, 0);
    let t0 = Instant::now();
    // Nobody watching, or nothing relayed yet: nothing to report.
    stream.tick(t0);
    play(&stream, 1, vec![(VIDEO, sink)], t0);
    stream.tick(t0);
    assert!(drain_media(&mut rx).is_empty());

    stream.push_rtp(VIDEO, rtp_packet(1, 1, BACKEND_SSRC, b"abc"), t0);
    let rtp = on_channel(&drain_media(&mut rx), 0);
    let (_, out_ts, _) = seq_ts_ssrc(&rtp[0]);

    let t1 = t0 + Duration::from_secs(1);
    let before = rtcp::ntp_from_system_time(SystemTime::now());
    stream.tick(t1);
    let after = rtcp::ntp_from_system_time(SystemTime::now());
    let items = drain_media(&mut rx);
    let rtcp_items = on_channel(&items, 1);
    assert_eq!(items.len(), 1);
    let srs = rtcp::sender_reports(&rtcp_items[0]);
    assert_eq!(srs.len(), 1);
    assert_eq!(srs[0].ssrc, our_ssrc);
    // rtptime_at(t1): one second of 90 kHz after the only packet.
    assert_eq!(srs[0].rtp_timestamp, out_ts.wrapping_add(90_000));
    assert!(
        before <= srs[0].ntp && srs[0].ntp <= after,
        "NTP is the wall clock of the tick"
    );
    assert_eq!((srs[0].packet_count, srs[0].octet_count), (1, 3));

    // Not again before the interval, again after it.
    stream.tick(t1 + Duration::from_secs(2));
    assert!(drain_media(&mut rx).is_empty());
    stream.tick(t1 + Duration::from_secs(5));
    let again = on_channel(&drain_media(&mut rx), 1);
    assert_eq!(again.len(), 1);
    assert_eq!(
        rtcp::sender_reports(&again[0])[0].rtp_timestamp,
        out_ts.wrapping_add(6 * 90_000)
    );
    // The audio track has no packets and no subscriber: never reported.
}

#[test]
fn tick_is_quiet_while_the_backend_sends_reports() {
    let stream = described_stream();
    let (sink, _out, mut rx) = interleaved(64, 0);
    let t0 = Instant::now();
    play(&stream, 1, vec![(VIDEO, sink)], t0);
    stream.push_rtp(VIDEO, rtp_packet(1, 1, BACKEND_SSRC, b"x"), t0);
    stream.push_rtcp(VIDEO, &backend_sr(BACKEND_SSRC, 1 << 40, 1), t0);
    let forwarded = drain_media(&mut rx);
    assert_eq!(on_channel(&forwarded, 1).len(), 1);

    for s in [1, 5, 11] {
        stream.tick(t0 + Duration::from_secs(s));
        assert!(
            drain_media(&mut rx).is_empty(),
            "no SR synthesized {s} s after a back-end SR"
        );
    }
    // The back end went quiet: the relay takes over.
    stream.tick(t0 + Duration::from_secs(13));
    let synth = on_channel(&drain_media(&mut rx), 1);
    assert_eq!(synth.len(), 1);
    assert_ne!(rtcp::sender_reports(&synth[0])[0].ntp, 1 << 40);
}

#[test]
fn same_tracks_update_keeps_subscribers() {
    let stream = described_stream();
    let generation = stream.generation();
    let (sink, out, mut rx) = interleaved(64, 0);
    let (closer, closed) = counting_closer();
    let now = Instant::now();
    stream
        .play(1, generation, vec![(VIDEO, sink)], closer, now, |_| {})
        .expect("play");
    let ssrc = stream.track_ssrc(VIDEO);

    assert_eq!(
        stream.set_presentation(presentation(SDP_2_TRACKS_UPDATED)),
        PresentationChange::Updated
    );
    assert_eq!(stream.generation(), generation);
    assert_eq!(closed.load(Ordering::SeqCst), 0);
    assert_eq!(stream.players(), 1);
    assert_eq!(stream.track_ssrc(VIDEO), ssrc, "the continuity survives");
    assert_eq!(
        stream
            .presentation()
            .expect("presentation")
            .session_name
            .as_deref(),
        Some("cam restarted")
    );
    stream.push_rtp(VIDEO, rtp_packet(1, 1, BACKEND_SSRC, b"x"), now);
    assert_eq!(drain_media(&mut rx).len(), 1);
    assert_eq!(out.dropped(), 0);
    assert_eq!(stream.availability(), Availability::Described);
}

#[test]
fn changed_tracks_close_every_subscriber_once() {
    let stream = described_stream();
    let old_generation = stream.generation();
    let mut demand = stream.watch_demand();
    let now = Instant::now();
    let (s1, _o1, mut rx1) = interleaved(64, 0);
    let (s2, _o2, mut rx2) = interleaved(64, 0);
    let (c1, n1) = counting_closer();
    let (c2, n2) = counting_closer();
    stream
        .play(1, old_generation, vec![(VIDEO, s1)], c1, now, |_| {})
        .expect("play 1");
    stream
        .play(2, old_generation, vec![(AUDIO, s2)], c2, now, |_| {})
        .expect("play 2");
    assert_eq!(*demand.borrow_and_update(), 2);

    assert_eq!(
        stream.set_presentation(presentation(SDP_OTHER_TRACKS)),
        PresentationChange::TracksChanged
    );
    assert_eq!(n1.load(Ordering::SeqCst), 1);
    assert_eq!(n2.load(Ordering::SeqCst), 1);
    assert!(demand.has_changed().expect("sender alive"));
    assert_eq!(*demand.borrow_and_update(), 0);
    assert_eq!(stream.players(), 0);
    assert_eq!(stream.generation(), old_generation + 1);

    // The old sinks are gone with the old tracks.
    stream.push_rtp(VIDEO, rtp_packet(1, 1, BACKEND_SSRC, b"x"), now);
    stream.push_rtp(AUDIO, rtp_packet(1, 1, BACKEND_SSRC, b"x"), now);
    assert!(drain_media(&mut rx1).is_empty());
    assert!(drain_media(&mut rx2).is_empty());

    // A session set up on the old generation cannot start.
    let (s3, _o3, _rx3) = interleaved(64, 0);
    let (c3, n3) = counting_closer();
    let mut responded = false;
    let r = stream.play(3, old_generation, vec![(VIDEO, s3)], c3, now, |_| {
        responded = true
    });
    assert_eq!(r, None);
    assert!(!responded, "no response queued for a refused play");
    assert_eq!(stream.players(), 0);

    // Closers are not called again by later changes.
    stream.close_all();
    assert_eq!(n1.load(Ordering::SeqCst), 1);
    assert_eq!(n2.load(Ordering::SeqCst), 1);
    assert_eq!(n3.load(Ordering::SeqCst), 0);
}

#[test]
fn play_of_an_unknown_track_is_refused() {
    let stream = described_stream();
    let (sink, _out, _rx) = interleaved(64, 0);
    let (closer, _) = counting_closer();
    let mut responded = false;
    let r = stream.play(
        1,
        stream.generation(),
        vec![(5, sink)],
        closer,
        Instant::now(),
        |_| responded = true,
    );
    assert_eq!(r, None);
    assert!(!responded);
    assert_eq!(stream.players(), 0);
}

#[test]
fn demand_counts_playing_subscribers() {
    let stream = described_stream();
    let demand = stream.watch_demand();
    let now = Instant::now();
    let a = stream.new_subscriber();
    let b = stream.new_subscriber();
    assert_ne!(a, b);
    let (sa, _oa, mut rxa) = interleaved(64, 0);
    let (sb, _ob, _rxb) = interleaved(64, 0);
    let (ca, na) = counting_closer();
    let (cb, nb) = counting_closer();
    stream
        .play(
            a,
            stream.generation(),
            vec![(VIDEO, sa.clone())],
            ca.clone(),
            now,
            |_| {},
        )
        .expect("play a");
    assert_eq!(*demand.borrow(), 1);
    // Playing again (resume, or a track added) does not count twice, nor deliver twice.
    stream
        .play(a, stream.generation(), vec![(VIDEO, sa)], ca, now, |_| {})
        .expect("play a again");
    assert_eq!(*demand.borrow(), 1);
    stream.push_rtp(VIDEO, rtp_packet(1, 1, BACKEND_SSRC, b"x"), now);
    assert_eq!(drain_media(&mut rxa).len(), 1);

    stream
        .play(b, stream.generation(), vec![(AUDIO, sb)], cb, now, |_| {})
        .expect("play b");
    assert_eq!(*demand.borrow(), 2);
    assert_eq!(stream.players(), 2);

    stream.stop(a);
    assert_eq!(*demand.borrow(), 1);
    stream.push_rtp(VIDEO, rtp_packet(2, 2, BACKEND_SSRC, b"x"), now);
    assert!(
        drain_media(&mut rxa).is_empty(),
        "a stopped subscriber gets nothing"
    );
    // Stopping twice, or an unknown id, changes nothing.
    stream.stop(a);
    stream.stop(999);
    assert_eq!(*demand.borrow(), 1);
    assert_eq!(
        na.load(Ordering::SeqCst),
        0,
        "stop is the subscriber's own doing: no closer"
    );

    stream.close_all();
    assert_eq!(*demand.borrow(), 0);
    assert_eq!(nb.load(Ordering::SeqCst), 1);
    assert_eq!(na.load(Ordering::SeqCst), 0);
}

#[test]
fn receiver_report_for_the_backend_follows_reception() {
    let stream = described_stream();
    let now = Instant::now();
    assert_eq!(
        stream.receiver_report(VIDEO, 0x4242, now),
        None,
        "nothing received yet"
    );
    for i in 0..4u16 {
        stream.push_rtp(
            VIDEO,
            rtp_packet(100 + i, 3000 * u32::from(i), BACKEND_SSRC, b"x"),
            now,
        );
    }
    let rr = stream.receiver_report(VIDEO, 0x4242, now).expect("report");
    assert_eq!(rtcp::receiver_report_ssrcs(&rr), vec![0x4242]);
    let blocks = rtcp::report_blocks(&rr);
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].0, 0x4242);
    // The block is about the back end's own SSRC and sequence space, not ours.
    assert_eq!(blocks[0].1.ssrc, BACKEND_SSRC);
    assert_eq!(blocks[0].1.highest_seq & 0xffff, 103);
    assert_eq!(blocks[0].1.cumulative_lost, 0);
    assert_eq!(stream.receiver_report(9, 0x4242, now), None);
}

/// The cycle every deployment goes through: the last client leaves, the back end
/// is PAUSEd, a new client PLAYs (answered at once from the projection), the back
/// end resumes with its own numbers restarted. The new client's first packets
/// are exactly what its RTP-Info announced; nothing from before the pause leaks.
#[test]
fn resume_after_pause_agrees_with_the_rtp_info_given_meanwhile() {
    let stream = described_stream();
    let t0 = Instant::now();
    for i in 0..25u16 {
        stream.push_rtp(
            VIDEO,
            rtp_packet(
                9_000 + i,
                500_000 + 3_600 * u32::from(i),
                BACKEND_SSRC,
                b"before",
            ),
            t0 + Duration::from_millis(40 * u64::from(i)),
        );
    }
    stream.source_paused();
    // Still in flight when the PAUSE took effect: dropped, counted as stale.
    stream.push_rtp(
        VIDEO,
        rtp_packet(9_025, 590_000, BACKEND_SSRC, b"stale"),
        t0 + Duration::from_millis(1_001),
    );
    assert_eq!(stream.stats().rtp_stale, 1);
    assert_eq!(stream.stats().rtp_invalid, 0);

    // 20 s later a client plays.
    let t_play = t0 + Duration::from_secs(21);
    let (sink, _out, mut rx) = interleaved(64, 0);
    let points = play(&stream, 1, vec![(VIDEO, sink)], t_play);
    stream.source_resuming();
    // A stale packet the network kept until after the resume PLAY went out, and
    // the back end's answer says its new run starts at seq 9_030.
    stream.source_playing(&[Some(9_030), None]);
    stream.push_rtp(
        VIDEO,
        rtp_packet(9_026, 593_600, BACKEND_SSRC, b"stale"),
        t_play + Duration::from_millis(5),
    );
    // Same SSRC, timestamps restarted near zero (suspend-mode reset).
    let first_at = t_play + Duration::from_millis(80);
    for i in 0..5u16 {
        stream.push_rtp(
            VIDEO,
            rtp_packet(9_030 + i, 12 + 3_600 * u32::from(i), BACKEND_SSRC, b"after"),
            first_at + Duration::from_millis(40 * u64::from(i)),
        );
    }
    let items = drain_media(&mut rx);
    let got = on_channel(&items, 0);
    assert_eq!(got.len(), 5, "only the new run is relayed");
    assert!(got.iter().all(|p| &p[12..] == b"after"));
    let (seq, ts, _) = seq_ts_ssrc(&got[0]);
    assert_eq!(seq, points[0].seq, "first packet carries the announced seq");
    let late_by = ts_diff(ts, points[0].rtptime);
    assert!(
        (7_000..=7_300).contains(&late_by),
        "first timestamp is the announced one plus the 80 ms until it arrived, not {late_by}"
    );
    for (i, pkt) in got.iter().enumerate() {
        let (s, t, _) = seq_ts_ssrc(pkt);
        assert_eq!(s, points[0].seq.wrapping_add(i as u16));
        assert_eq!(ts_diff(t, ts), 3_600 * i as i64);
    }
    assert_eq!(stream.stats().rtp_stale, 2);
}

/// After a pause (or a reconnect) the back end's reports stop until it sends
/// its next one; a client that joins meanwhile gets a report we make. It must
/// map RTP time to NTP time as the back end does (its capture-to-arrival
/// latency included), or a player that re-anchors on every report (ffmpeg)
/// sees time go back by that latency at the back end's next report.
#[test]
fn a_report_made_after_a_pause_keeps_the_back_ends_latency() {
    let stream = described_stream();
    let t0 = Instant::now();
    stream.push_rtp(VIDEO, rtp_packet(1, 90_000, BACKEND_SSRC, b"abc"), t0);
    // The back end stamps its packets 40 ms before they arrive here.
    let latency = Duration::from_millis(40);
    let captured = rtcp::ntp_from_system_time(SystemTime::now() - latency);
    stream.push_rtcp(VIDEO, &backend_sr(BACKEND_SSRC, captured, 90_000), t0);

    stream.source_paused();
    stream.source_resuming();
    // The back end comes back with new numbers (a reset pipeline).
    let t1 = t0 + Duration::from_secs(2);
    stream.push_rtp(
        VIDEO,
        rtp_packet(5000, 7_000_000, BACKEND_SSRC + 1, b"abc"),
        t1,
    );

    let (sink, _out, mut rx) = interleaved(64, 0);
    let before = rtcp::ntp_from_system_time(SystemTime::now() - latency);
    let points = play(&stream, 1, vec![(VIDEO, sink)], t1);
    let after = rtcp::ntp_from_system_time(SystemTime::now() - latency);
    let srs = rtcp::sender_reports(&on_channel(&drain_media(&mut rx), 1)[0]);
    assert_eq!(srs[0].rtp_timestamp, points[0].rtptime);
    let slack = 5 << 32 >> 10; // about 5 ms in NTP units
    assert!(
        before - slack <= srs[0].ntp && srs[0].ntp <= after + slack,
        "the report made at PLAY is {:.1} ms off the back end's clock",
        (srs[0].ntp as f64 - before as f64) / 2f64.powi(32) * 1000.0
    );
}

/// A camera restart can bring a pipeline with a longer capture-to-arrival
/// latency (GStreamer's AAC: a frame more, 21 ms). The first report of the
/// new back end must continue the mapping the client holds (the report made
/// at the restart), or ffmpeg, which re-anchors at every report, sees audio
/// time go back (resilience.rs saw "Non-monotonous DTS" under load).
#[test]
fn a_restarted_back_end_with_a_longer_latency_does_not_take_time_back() {
    let stream = described_stream();
    let (sink, _out, mut rx) = interleaved(64, 0);
    // The first back end stamps its packets 40 ms before they arrive here.
    let now = Instant::now();
    stream.push_rtp(VIDEO, rtp_packet(1, 90_000, BACKEND_SSRC, b"abc"), now);
    let captured = rtcp::ntp_from_system_time(SystemTime::now() - Duration::from_millis(40));
    stream.push_rtcp(VIDEO, &backend_sr(BACKEND_SSRC, captured, 90_000), now);
    play(&stream, 1, vec![(VIDEO, sink)], Instant::now());

    // The camera restarts; its new pipeline stamps 61 ms before arrival.
    stream.source_reset();
    let now = Instant::now();
    let new_ssrc = BACKEND_SSRC + 1;
    stream.push_rtp(VIDEO, rtp_packet(700, 5_000_000, new_ssrc, b"abc"), now);
    // A report we make before the new back end's first one.
    stream.tick(now);
    let captured = rtcp::ntp_from_system_time(SystemTime::now() - Duration::from_millis(61));
    stream.push_rtcp(
        VIDEO,
        &backend_sr(new_ssrc, captured, 5_000_000),
        Instant::now(),
    );

    let reports: Vec<SenderInfo> = on_channel(&drain_media(&mut rx), 1)
        .iter()
        .flat_map(|p| rtcp::sender_reports(p))
        .collect();
    assert_eq!(reports.len(), 3, "at PLAY, made at the restart, forwarded");
    let (made, forwarded) = (reports[1], reports[2]);
    let moved_ms = clock_moved_ms(&made, &forwarded, 90_000);
    assert!(
        moved_ms.abs() < 3.0,
        "the new back end's first report moves the client's clock by {moved_ms:.1} ms"
    );

    // Its next report keeps the same shift: the client's clock runs on.
    let later = rtcp::ntp_add(captured, Duration::from_secs(5));
    stream.push_rtcp(
        VIDEO,
        &backend_sr(new_ssrc, later, 5_450_000),
        Instant::now(),
    );
    let next = rtcp::sender_reports(&on_channel(&drain_media(&mut rx), 1)[0])[0];
    assert_eq!(
        next.ntp.wrapping_sub(forwarded.ntp),
        later.wrapping_sub(captured),
        "the camera's clock, shifted once"
    );
}

/// The clock in `next` moved from the one `held` gives, in milliseconds
/// (negative: time went back for a player that re-anchors on `next`).
fn clock_moved_ms(held: &SenderInfo, next: &SenderInfo, clock_rate: i128) -> f64 {
    let ahead = i128::from(next.rtp_timestamp.wrapping_sub(held.rtp_timestamp) as i32);
    let predicted = i128::from(held.ntp) + (ahead << 32) / clock_rate;
    (i128::from(next.ntp) - predicted) as f64 / 2f64.powi(32) * 1000.0
}

/// The reports the proxy makes while a client watches (here during a camera
/// restart, before the new back end's first report) continue the mapping the
/// client holds. Made from the wall clock and the arrival of the latest
/// packet, they moved it by that packet's jitter: the new pipeline's first
/// packet, which fixes the new mapping's timestamps, came 70 ms late, and
/// ffmpeg's time went back (http_tunnel.rs under load).
#[test]
fn reports_made_while_a_client_watches_continue_its_clock() {
    let stream = described_stream();
    let (sink, _out, mut rx) = interleaved(64, 0);
    // Real time throughout: the report made at the end reads the wall clock.
    let t0 = Instant::now();
    stream.push_rtp(VIDEO, rtp_packet(1, 90_000, BACKEND_SSRC, b"abc"), t0);
    let captured = rtcp::ntp_from_system_time(SystemTime::now() - Duration::from_millis(40));
    stream.push_rtcp(VIDEO, &backend_sr(BACKEND_SSRC, captured, 90_000), t0);
    play(&stream, 1, vec![(VIDEO, sink)], t0);

    // The camera restarts. Its new pipeline's first packet comes 70 ms
    // late: the next one, captured 80 ms after it, comes 10 ms after it.
    stream.source_reset();
    let new_ssrc = BACKEND_SSRC + 1;
    stream.push_rtp(
        VIDEO,
        rtp_packet(700, 5_000_000, new_ssrc, b"abc"),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_millis(10));
    stream.push_rtp(
        VIDEO,
        rtp_packet(701, 5_007_200, new_ssrc, b"abc"),
        Instant::now(),
    );
    // A report in the new mapping, before the back end's first one.
    stream.tick(Instant::now());

    let reports: Vec<SenderInfo> = on_channel(&drain_media(&mut rx), 1)
        .iter()
        .flat_map(|p| rtcp::sender_reports(p))
        .collect();
    assert_eq!(reports.len(), 2, "at PLAY, after the restart");
    let moved = clock_moved_ms(&reports[0], &reports[1], 90_000);
    assert!(
        moved.abs() < 0.01,
        "the report made after the restart moves the client's clock by {moved:.1} ms"
    );
}

/// A new client gets a sender report right after its PLAY, consistent with the
/// RTP-Info it was given, instead of waiting for the back end's next one.
#[test]
fn play_sends_a_sender_report_at_once() {
    let stream = described_stream();
    let our_ssrc = stream.track_ssrc(VIDEO).expect("track");
    let t0 = Instant::now();
    stream.push_rtp(VIDEO, rtp_packet(1, 1_000, BACKEND_SSRC, b"abc"), t0);

    // Without a back-end report: made from the wall clock and the projection.
    let t1 = t0 + Duration::from_millis(500);
    let (sink, _out, mut rx) = interleaved(64, 0);
    let before = rtcp::ntp_from_system_time(SystemTime::now());
    let points = play(&stream, 1, vec![(VIDEO, sink)], t1);
    let after = rtcp::ntp_from_system_time(SystemTime::now());
    let items = drain_media(&mut rx);
    assert_eq!(items.len(), 1, "one SR and nothing else");
    let srs = rtcp::sender_reports(&on_channel(&items, 1)[0]);
    assert_eq!(srs.len(), 1);
    assert_eq!(srs[0].ssrc, our_ssrc);
    assert_eq!(srs[0].rtp_timestamp, points[0].rtptime);
    assert!(before <= srs[0].ntp && srs[0].ntp <= after);

    // With one: the camera's clock, carried forward by the time since it came.
    let camera_ntp = 0xE000_0000_0000_0000u64;
    stream.push_rtcp(VIDEO, &backend_sr(BACKEND_SSRC, camera_ntp, 1_000), t1);
    let (sink2, _out2, mut rx2) = interleaved(64, 0);
    let t2 = t1 + Duration::from_millis(250);
    play(&stream, 2, vec![(VIDEO, sink2)], t2);
    let srs = rtcp::sender_reports(&on_channel(&drain_media(&mut rx2), 1)[0]);
    assert_eq!(
        srs[0].ntp,
        rtcp::ntp_add(camera_ntp, Duration::from_millis(250))
    );
    let mapped = on_channel(&drain_media(&mut rx), 1);
    let forwarded = rtcp::sender_reports(&mapped[0])[0].rtp_timestamp;
    assert_eq!(srs[0].rtp_timestamp, forwarded.wrapping_add(22_500));

    // Before any packet no timestamp is tied to a time: no report.
    let fresh = described_stream();
    let (sink3, _out3, mut rx3) = interleaved(64, 0);
    play(&fresh, 1, vec![(VIDEO, sink3)], t0);
    assert!(drain_media(&mut rx3).is_empty());
}

fn marked(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    write_header(&mut b, marker, 96, seq, ts, BACKEND_SSRC);
    b.extend_from_slice(payload);
    b
}

/// Raw queue items (not flattened): what a connection's writer takes one by one.
fn drain_items(rx: &mut Receiver) -> Vec<Vec<Bytes>> {
    let mut out = Vec::new();
    while let Some((_, packets)) = rx.take() {
        out.push(packets);
    }
    out
}

/// Packets that arrived together are handed to the sinks as batches cut after
/// each marker bit: one queue item per frame (and per leftover), in order.
#[test]
fn a_read_batch_is_cut_into_frames_by_the_marker_bit() {
    let stream = described_stream();
    let (sink, out, mut rx) = interleaved(64, 0);
    let now = Instant::now();
    play(&stream, 1, vec![(VIDEO, sink)], now);
    // The end of frame A, all of frame B, the start of frame C.
    let mut batch = vec![
        marked(10, 0, false, b"a1"),
        marked(11, 0, true, b"a2"),
        marked(12, 3600, false, b"b1"),
        marked(13, 3600, false, b"b2"),
        marked(14, 3600, true, b"b3"),
        marked(15, 7200, false, b"c1"),
    ];
    stream.push_rtp_batch(VIDEO, &mut batch, now);
    assert!(batch.is_empty(), "the batch is drained");
    let items = drain_items(&mut rx);
    let payloads: Vec<Vec<&[u8]>> = items
        .iter()
        .map(|i| i.iter().map(|p| &p[12..]).collect())
        .collect();
    assert_eq!(
        payloads,
        vec![
            vec![&b"a1"[..], b"a2"],
            vec![&b"b1"[..], b"b2", b"b3"],
            vec![&b"c1"[..]]
        ]
    );
    let seqs: Vec<u16> = items.iter().flatten().map(|p| seq_ts_ssrc(p).0).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "{seqs:?}"
    );
    assert_eq!(out.queued(), 0);
    assert_eq!(stream.stats().rtp_in, 6);
}

/// A batch that does not fit a slow connection's queue is dropped whole (no
/// frame arrives half), counted per packet; the bound is in bytes too.
#[test]
fn a_slow_connection_loses_whole_batches_within_its_byte_bound() {
    let stream = described_stream();
    let (out, mut rx) = TestQueue::with_limits(100, 3_000);
    let sink = Sink::Interleaved {
        out: out.clone(),
        rtp_channel: 0,
        rtcp_channel: 1,
    };
    let now = Instant::now();
    play(&stream, 1, vec![(VIDEO, sink)], now);
    let frame = |first: u16| -> Vec<BytesMut> {
        (0..2u16)
            .map(|i| marked(first + i, u32::from(first), i == 1, &[0u8; 988]))
            .collect()
    };
    // 2 x 1000 bytes fit in 3000; the next frame would make 4000.
    stream.push_rtp_batch(VIDEO, &mut frame(0), now);
    stream.push_rtp_batch(VIDEO, &mut frame(2), now);
    assert_eq!(out.queued(), 2);
    assert_eq!(out.dropped(), 2);
    let items = drain_items(&mut rx);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].len(), 2);
    // Drained: room again.
    stream.push_rtp_batch(VIDEO, &mut frame(4), now);
    assert_eq!(out.queued(), 2);
}

/// UDP subscribers of one server socket are reached together; each gets every
/// packet of the frame as its own datagram, with the same bytes.
#[tokio::test]
async fn udp_subscribers_get_every_packet_of_a_batch() {
    let stream = described_stream();
    let server = Arc::new(
        tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind"),
    );
    let gso = Arc::new(super::udp_batch::GsoState::new());
    let mut clients = Vec::new();
    for id in 1..=3u64 {
        let c = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        c.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let addr = c.local_addr().expect("addr");
        let sink = Sink::Udp {
            rtp_socket: server.clone(),
            rtcp_socket: server.clone(),
            rtp_addr: addr,
            rtcp_addr: addr,
            refused: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            gso: gso.clone(),
        };
        play(&stream, id, vec![(VIDEO, sink)], Instant::now());
        clients.push(c);
    }
    let mut frame: Vec<BytesMut> = (0..5u16)
        .map(|i| marked(100 + i, 9000, i == 4, &[i as u8; 1188]))
        .collect();
    frame.push(marked(105, 12600, true, b"short"));
    stream.push_rtp_batch(VIDEO, &mut frame, Instant::now());
    for c in &clients {
        let mut buf = [0u8; 2048];
        let mut seqs = Vec::new();
        for _ in 0..6 {
            let n = c.recv(&mut buf).expect("datagram");
            let (seq, _, ssrc) = seq_ts_ssrc(&buf[..n]);
            assert_eq!(Some(ssrc), stream.track_ssrc(VIDEO));
            seqs.push((seq, n));
        }
        assert_eq!(
            seqs.iter().map(|s| s.1).collect::<Vec<_>>(),
            vec![1200, 1200, 1200, 1200, 1200, 17]
        );
        assert!(seqs.windows(2).all(|w| w[1].0 == w[0].0.wrapping_add(1)));
    }
}

const SPS: &[u8] = &[0x67, 0x42, 0x00, 0x1f];
const IDR_START: &[u8] = &[0x7c, 0x85, 0xaa];
const IDR_REST: &[u8] = &[0x7c, 0x45, 0xbb];
const P_FRAME: &[u8] = &[0x41, 0x9a, 0xcc];

/// A new client gets the last GOP first, retimed for it to end at the live
/// edge: RTP-Info names the cached keyframe's first packet, the replay runs
/// straight on into the live packets (sequence numbers and the newest frame's
/// timestamp untouched), and the sender report sent at PLAY agrees with it. The
/// audio track starts live; the shared cached packets are not rewritten.
#[test]
fn a_new_subscriber_starts_with_the_cached_gop_retimed_to_the_live_edge() {
    let stream = described_stream_with_cache(1 << 20);
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    // A P frame from the previous GOP, then a keyframe (SPS + IDR) and one P frame.
    stream.push_rtp_batch(VIDEO, &mut vec![marked(1, 0, true, P_FRAME)], ms(0));
    stream.push_rtp(AUDIO, rtp_packet(500, 0, BACKEND_SSRC, b"old audio"), ms(5));
    stream.push_rtp_batch(
        VIDEO,
        &mut vec![
            marked(2, 3600, false, SPS),
            marked(3, 3600, false, IDR_START),
            marked(4, 3600, true, IDR_REST),
        ],
        ms(40),
    );
    stream.push_rtp(AUDIO, rtp_packet(501, 960, BACKEND_SSRC, b"audio"), ms(45));
    stream.push_rtp_batch(VIDEO, &mut vec![marked(5, 7200, true, P_FRAME)], ms(80));

    let (v_sink, _vo, mut v_rx) = interleaved(64, 0);
    let (a_sink, _ao, mut a_rx) = interleaved(64, 2);
    let points = play(&stream, 1, vec![(VIDEO, v_sink), (AUDIO, a_sink)], ms(100));
    let sr = |items: &[(u8, Bytes)], channel: u8| {
        let rtcp = on_channel(items, channel);
        rtcp::sender_reports(&rtcp[0])
            .into_iter()
            .next()
            .expect("a sender report at PLAY")
    };
    let v_items = drain_media(&mut v_rx);
    let a_items = drain_media(&mut a_rx);
    stream.push_rtp_batch(VIDEO, &mut vec![marked(6, 10_800, true, P_FRAME)], ms(120));
    stream.push_rtp(
        AUDIO,
        rtp_packet(502, 1920, BACKEND_SSRC, b"live audio"),
        ms(125),
    );

    let mut video = on_channel(&v_items, 0);
    video.extend(on_channel(&drain_media(&mut v_rx), 0));
    let got: Vec<&[u8]> = video.iter().map(|p| &p[12..]).collect();
    assert_eq!(
        got,
        vec![SPS, IDR_START, IDR_REST, P_FRAME, P_FRAME],
        "GOP, then live"
    );
    let (first_seq, first_ts, _) = seq_ts_ssrc(&video[0]);
    assert_eq!((points[0].seq, points[0].rtptime), (first_seq, first_ts));
    let seqs: Vec<u16> = video.iter().map(|p| seq_ts_ssrc(p).0).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "{seqs:?}"
    );
    // The keyframe is one tick before the newest cached frame, which keeps its
    // timestamp; the live frame comes 40 ms (3600 ticks) after that.
    let ts: Vec<u32> = video.iter().map(|p| seq_ts_ssrc(p).1).collect();
    assert_eq!(ts[0], ts[1]);
    assert_eq!(ts[1], ts[2]);
    assert_eq!(ts_diff(ts[3], ts[2]), 1, "{ts:?}");
    assert_eq!(ts_diff(ts[4], ts[3]), 3600, "{ts:?}");
    // The report sent at PLAY puts the first packet 20 ms before now (the
    // newest frame arrived at 80 ms, PLAY at 100 ms), not 60 ms.
    let report = sr(&v_items, 1);
    assert_eq!(ts_diff(first_ts, report.rtp_timestamp), -1800 - 1);

    // Audio is not replayed: it starts with the next live packet, which
    // RTP-Info names.
    let audio = on_channel(&drain_media(&mut a_rx), 2);
    assert_eq!(audio.len(), 1, "live audio only");
    assert_eq!(&audio[0][12..], b"live audio");
    assert!(on_channel(&a_items, 2).is_empty(), "no audio replayed");
    assert_eq!(points[1].seq, seq_ts_ssrc(&audio[0]).0);
    let audio_sr = sr(&a_items, 3);
    assert_eq!(
        points[1].rtptime, audio_sr.rtp_timestamp,
        "the live edge at PLAY"
    );

    // After a pause the cached GOP is stale: nothing is replayed.
    stream.source_paused();
    let (sink, _o, mut rx) = interleaved(64, 0);
    let p = play(&stream, 2, vec![(VIDEO, sink)], ms(200));
    assert!(on_channel(&drain_media(&mut rx), 0).is_empty());
    assert_eq!(p[0].seq, stream_next_seq(&seqs));
}

fn stream_next_seq(seqs: &[u16]) -> u16 {
    seqs.last().copied().unwrap_or(0).wrapping_add(1)
}

/// A TCP client that had to drop video resumes at the next keyframe, not in the
/// middle of a GOP; other tracks are not held back.
#[test]
fn a_connection_that_dropped_video_resumes_at_the_next_keyframe() {
    let stream = described_stream_with_cache(1 << 20);
    let (out, mut rx) = TestQueue::with_limits(3, 1 << 20);
    let sink = |ch: u8| Sink::Interleaved {
        out: out.clone(),
        rtp_channel: ch,
        rtcp_channel: ch + 1,
    };
    let now = Instant::now();
    play(&stream, 1, vec![(VIDEO, sink(0)), (AUDIO, sink(2))], now);
    let frame = |seq: u16, payload: &[u8]| vec![marked(seq, u32::from(seq) * 3600, true, payload)];
    stream.push_rtp_batch(VIDEO, &mut frame(1, IDR_START), now);
    stream.push_rtp_batch(VIDEO, &mut frame(2, P_FRAME), now);
    stream.push_rtp_batch(VIDEO, &mut frame(3, P_FRAME), now);
    stream.push_rtp_batch(VIDEO, &mut frame(4, P_FRAME), now); // queue full: dropped
    assert_eq!(out.dropped(), 1);
    assert_eq!(drain_items(&mut rx).len(), 3);
    stream.push_rtp_batch(VIDEO, &mut frame(5, P_FRAME), now); // room, but mid-GOP
    stream.push_rtp(AUDIO, rtp_packet(9, 0, BACKEND_SSRC, b"audio"), now);
    stream.push_rtp_batch(VIDEO, &mut frame(6, IDR_START), now);
    stream.push_rtp_batch(VIDEO, &mut frame(7, P_FRAME), now);
    let items = drain_media(&mut rx);
    let video: Vec<u16> = on_channel(&items, 0)
        .iter()
        .map(|p| seq_ts_ssrc(p).0)
        .collect();
    let first = video[0];
    assert_eq!(
        video,
        vec![first, first.wrapping_add(1)],
        "from the keyframe on"
    );
    assert_eq!(&on_channel(&items, 0)[0][12..], IDR_START);
    assert_eq!(on_channel(&items, 2).len(), 1, "audio went on");
    assert_eq!(out.dropped(), 2);
}

/// A UDP subscriber gets a small cached GOP at once and a big one paced out
/// (one burst would overflow a client's receive buffer), followed by the live
/// packets that arrived meanwhile, in order, and then live as everyone.
#[tokio::test]
async fn a_udp_subscriber_gets_a_big_gop_paced_then_live() {
    let stream = described_stream_with_cache(8 << 20);
    let server = Arc::new(
        tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind"),
    );
    let udp_sink = |addr| Sink::Udp {
        rtp_socket: server.clone(),
        rtcp_socket: server.clone(),
        rtp_addr: addr,
        rtcp_addr: addr,
        refused: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        gso: Arc::new(super::udp_batch::GsoState::new()),
    };
    let t0 = Instant::now();
    let mut seq = 0u16;
    let mut gop = |stream: &Stream, packets: usize, keyframe: bool| {
        let ts = u32::from(seq) * 3600;
        let mut batch = Vec::new();
        for i in 0..packets {
            let mut payload = if i == 0 && keyframe {
                IDR_START
            } else {
                IDR_REST
            }
            .to_vec();
            payload.resize(1188, 0);
            batch.push(marked(seq, ts, i + 1 == packets, &payload));
            seq += 1;
        }
        stream.push_rtp_batch(VIDEO, &mut batch, t0);
    };
    let mut buf = [0u8; 2048];

    // 50 packets of 1200 bytes: within the bound, sent during PLAY.
    gop(&stream, 50, true);
    let small = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    small.set_nonblocking(true).expect("nonblocking");
    let p = play(
        &stream,
        1,
        vec![(VIDEO, udp_sink(small.local_addr().expect("addr")))],
        t0,
    );
    let n = small.recv(&mut buf).expect("replayed at once");
    assert_eq!(seq_ts_ssrc(&buf[..n]).0, p[0].seq);
    assert_eq!(&buf[12..15], IDR_START);

    // 200 packets: paced. Nothing goes out during PLAY itself.
    gop(&stream, 200, true);
    let big = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let p = play(
        &stream,
        2,
        vec![(VIDEO, udp_sink(big.local_addr().expect("addr")))],
        t0,
    );
    let mut peek = [0u8; 16];
    assert!(big.try_recv(&mut peek).is_err(), "no burst at PLAY");
    // Live packets arrive while the replay is paced out.
    gop(&stream, 10, false);
    let mut seqs = Vec::new();
    while seqs.len() < 210 {
        let n = tokio::time::timeout(Duration::from_secs(3), big.recv(&mut buf))
            .await
            .expect("paced packets keep coming")
            .expect("datagram");
        seqs.push(seq_ts_ssrc(&buf[..n]).0);
    }
    assert_eq!(seqs[0], p[0].seq, "RTP-Info names the replayed keyframe");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "in order, no gap"
    );
    // Caught up: the sink is on the live fan-out now.
    tokio::time::sleep(Duration::from_millis(20)).await;
    gop(&stream, 1, false);
    let n = tokio::time::timeout(Duration::from_secs(1), big.recv(&mut buf))
        .await
        .expect("live packet")
        .expect("datagram");
    assert_eq!(seq_ts_ssrc(&buf[..n]).0, seqs[209].wrapping_add(1));

    // Without a runtime to pace (as in PLAY handled off the server), a big GOP
    // is not replayed at all: the subscriber starts live.
    let off_runtime = {
        let stream = stream.clone();
        let server = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = server.local_addr().expect("addr");
        let sink = udp_sink(addr);
        std::thread::spawn(move || play(&stream, 3, vec![(VIDEO, sink)], t0))
            .join()
            .expect("thread")
    };
    assert_eq!(
        off_runtime[0].seq,
        seqs[209].wrapping_add(2),
        "the next live packet"
    );

    // Interleaved clients take any GOP the cache holds, at once.
    let (sink, _out, mut rx) = interleaved(4096, 0);
    play(&stream, 4, vec![(VIDEO, sink)], t0);
    assert_eq!(on_channel(&drain_media(&mut rx), 0).len(), 211);
}

/// What the admin port reads: state, byte counters in and out (once per sink),
/// losses, reconnects, clients and their drops (those gone included).
#[test]
fn snapshot_counts_for_the_admin_port() {
    let stream = Stream::with_cache("cam", 0);
    assert_eq!(stream.snapshot().state, SourceState::Waiting);
    stream.set_presentation(presentation(SDP_2_TRACKS));
    assert_eq!(stream.snapshot().state, SourceState::Idle);
    stream.source_playing(&[None, None]);
    let now = Instant::now();
    let (sink_a, out_a, _rx_a) = interleaved(1, 0);
    let (sink_b, _out_b, _rx_b) = interleaved(100, 0);
    play(&stream, 1, vec![(VIDEO, sink_a)], now);
    play(&stream, 2, vec![(VIDEO, sink_b)], now);
    let info = |out: &Arc<TestQueue>| ClientInfo {
        addr: "127.0.0.1:5000".parse().unwrap(),
        transport: ClientTransport::Tcp,
        since: SystemTime::UNIX_EPOCH,
        udp_refused: None,
        conn: Some(out.clone() as Arc<dyn InterleavedQueue>),
    };
    stream.set_client(1, info(&out_a));
    // Sequence 10, 12, 13 (11 lost), 12 + 20 bytes each.
    for seq in [10u16, 12, 13] {
        stream.push_rtp(
            VIDEO,
            rtp_packet(seq, u32::from(seq) * 3000, 7, &[0u8; 20]),
            now,
        );
    }
    let s = stream.snapshot();
    assert_eq!(s.state, SourceState::Playing);
    assert_eq!((s.packets_in, s.bytes_in), (3, 96));
    assert_eq!((s.packets_out, s.bytes_out), (6, 192), "once per sink");
    assert_eq!(s.packets_lost, 1);
    assert_eq!(s.clients.len(), 1, "only clients the server described");
    assert_eq!(s.clients[0].transport, ClientTransport::Tcp);
    // Client 1's queue holds one packet: two more were dropped for it.
    assert_eq!((s.clients[0].dropped, s.client_drops), (2, 2));
    stream.stop(1);
    let s = stream.snapshot();
    assert!(s.clients.is_empty());
    assert_eq!(s.client_drops, 2, "a stopped client's drops stay counted");
    stream.source_reset();
    let s = stream.snapshot();
    assert_eq!(
        (s.state, s.reconnects, s.packets_lost),
        (SourceState::Down, 1, 1)
    );
    stream.source_reset();
    assert_eq!(
        stream.snapshot().reconnects,
        1,
        "a failed attempt is no reconnect"
    );
    stream.source_paused();
    assert_eq!(stream.snapshot().state, SourceState::Paused);
    stream.source_playing(&[None, None]);
    stream.source_closed_on_demand();
    let s = stream.snapshot();
    assert_eq!(
        (s.state.as_str(), s.state.is_up(), s.reconnects),
        ("idle", false, 1)
    );
    let od = Stream::with_cache("od", 0);
    od.set_on_demand(true);
    assert_eq!(
        od.snapshot().state,
        SourceState::Standby,
        "before any client"
    );
}

#[test]
fn want_wakes_only_on_demand_streams_and_makes_an_unreachable_one_pending() {
    let stream = Stream::new("od");
    let wanted = stream.watch_wanted();
    stream.want();
    assert!(!wanted.has_changed().unwrap(), "not on demand: nothing");
    stream.set_on_demand(true);
    stream.mark_unreachable();
    assert_eq!(stream.availability(), Availability::Unreachable);
    stream.want();
    assert!(wanted.has_changed().unwrap());
    assert_eq!(*wanted.borrow(), 1);
    assert_eq!(
        stream.availability(),
        Availability::Pending,
        "the request waits for the attempt"
    );
    stream.set_presentation(presentation(
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n",
    ));
    stream.want();
    assert_eq!(
        stream.availability(),
        Availability::Described,
        "stays served"
    );
}
