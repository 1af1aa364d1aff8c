//! One proxied stream: its presentation, its tracks and who is watching them.
//!
//! Every back-end packet passes through [`Stream::push_rtp`] exactly once: the track's
//! [`TrackContinuity`] rewrites SSRC, sequence number and timestamp in place, the
//! buffer is frozen into one [`Bytes`] and handed to every sink of the track.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use rtp::rtcp::{self, ReceptionStats, SenderInfo};
use rtp::TrackContinuity;
use tokio::sync::watch;

use super::keyframe_cache::{GopCache, DEFAULT_CACHE_BYTES};
use super::replay_timing::RetimedReplay;
use super::sink::{InterleavedQueue, Sink, SinkSet};
use sdp::Presentation;
use tasks::Tasks;

pub use super::subscriber::SubscriberId;

/// Called when the stream has to drop a subscriber on its own (the back end's
/// tracks changed, or the proxy is shutting down).
pub type Closer = Box<dyn Fn() + Send + Sync>;

/// With no sender report from the back end for this long, the relay sends its own.
const BACKEND_SR_STALE: Duration = Duration::from_secs(12);
/// Most bytes of cached GOP sent at once to a subscriber with UDP tracks (see
/// [`Stream::play`]); a bigger replay is paced out.
pub const UDP_REPLAY_MAX_BYTES: usize = 100 * 1024;
/// A paced replay sends this much per track every [`PACE_TICK`] (16 MB/s: a
/// 1 MB GOP in about 65 ms, well within what a reading client's buffer drains).
const PACE_CHUNK_BYTES: usize = 32 * 1024;
const PACE_TICK: Duration = Duration::from_millis(2);
/// Interval of the sender reports the relay makes itself.
const SYNTH_SR_INTERVAL: Duration = Duration::from_secs(5);

/// What [`Stream::set_presentation`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresentationChange {
    /// The stream had no presentation before.
    First,
    /// Same tracks (codec parameters may differ): subscribers carry on.
    Updated,
    /// Different tracks: every subscriber was closed.
    TracksChanged,
}

/// RTP-Info values of one track at the moment a subscriber starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartPoint {
    pub track: usize,
    pub seq: u16,
    pub rtptime: u32,
}

/// What a back-end RTCP packet told us.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RtcpOutcome {
    /// The back end said BYE for the source we are relaying.
    pub bye: bool,
}

/// Per-stream counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct StreamStats {
    pub rtp_in: u64,
    pub rtp_invalid: u64,
    /// Valid packets dropped because they were sent before the back end's current
    /// PLAY (in flight across a pause, or older than a re-base).
    pub rtp_stale: u64,
    pub rtcp_in: u64,
    /// Bytes of the RTP packets received (valid or not).
    pub bytes_in: u64,
    /// RTP packets and their bytes handed to sinks (each packet counted once
    /// per sink it went to).
    pub packets_out: u64,
    pub bytes_out: u64,
}

/// Where the stream's source stands, as the admin port shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    /// The source's first attempt is under way.
    Waiting,
    /// Described, the back end not asked to play (no client yet).
    Idle,
    /// The back end is playing.
    Playing,
    /// The back end was paused (no client for the linger).
    Paused,
    /// The back-end session is lost or was never had; the source retries.
    Down,
    /// An on-demand path with no back-end connection (nobody asked, or nobody
    /// watched for the linger): shown as `idle`, but not up.
    Standby,
}

impl SourceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceState::Waiting => "waiting",
            SourceState::Idle => "idle",
            SourceState::Playing => "playing",
            SourceState::Paused => "paused",
            SourceState::Down => "down",
            SourceState::Standby => "idle",
        }
    }

    /// Whether a back-end session is established (described).
    pub fn is_up(self) -> bool {
        matches!(
            self,
            SourceState::Idle | SourceState::Playing | SourceState::Paused
        )
    }
}

/// How a client receives the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientTransport {
    Udp,
    /// Interleaved in a plain RTSP connection.
    Tcp,
    /// Interleaved in an RTSP-over-HTTP tunnel.
    Http,
    /// Interleaved in an RTSPS connection.
    Tls,
    /// A member of the stream's multicast group.
    Multicast,
    /// A browser (WHEP): DTLS-SRTP over the WebRTC UDP port.
    WebRtc,
}

impl ClientTransport {
    pub const ALL: [ClientTransport; 6] = [
        ClientTransport::Udp,
        ClientTransport::Tcp,
        ClientTransport::Http,
        ClientTransport::Tls,
        ClientTransport::Multicast,
        ClientTransport::WebRtc,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClientTransport::Udp => "udp",
            ClientTransport::Tcp => "tcp",
            ClientTransport::Http => "http",
            ClientTransport::Tls => "tls",
            ClientTransport::Multicast => "multicast",
            ClientTransport::WebRtc => "webrtc",
        }
    }
}

/// Who a playing subscriber is, for the admin port. The drop counters are the
/// ones the sinks already keep (the UDP sends the kernel refused, the
/// connection's queue drops): read at scrape time, never on the hot path.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub addr: SocketAddr,
    pub transport: ClientTransport,
    pub since: SystemTime,
    pub udp_refused: Option<Arc<AtomicU64>>,
    pub conn: Option<Arc<dyn InterleavedQueue>>,
}

impl ClientInfo {
    fn drops(&self) -> u64 {
        self.udp_refused
            .as_ref()
            .map_or(0, |r| r.load(Ordering::Relaxed))
            + self.conn.as_ref().map_or(0, |c| c.dropped())
    }
}

/// A playing client as [`Stream::snapshot`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSnapshot {
    pub addr: SocketAddr,
    pub transport: ClientTransport,
    pub since: SystemTime,
    /// Packets dropped for this client since it started playing.
    pub dropped: u64,
}

/// Everything the admin port shows about one stream, read under the lock once.
#[derive(Debug, Clone)]
pub struct StreamSnapshot {
    pub name: String,
    pub state: SourceState,
    pub presentation: Option<Arc<Presentation>>,
    pub packets_in: u64,
    pub bytes_in: u64,
    /// Packets and bytes handed to clients' sinks (one per client and track),
    /// before what a slow client's queue or the kernel drops.
    pub packets_out: u64,
    pub bytes_out: u64,
    pub packets_lost: u64,
    pub reconnects: u64,
    /// Packets dropped for clients, those gone included.
    pub client_drops: u64,
    /// PLAYs of clients so far.
    pub plays: u64,
    pub clients: Vec<ClientSnapshot>,
}

/// Whether clients can be served yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// The source's first attempt is under way: requests wait for it.
    Pending,
    /// A presentation is known.
    Described,
    /// The back end has not been reached so far: requests are refused at once.
    Unreachable,
}

pub struct Stream {
    name: String,
    sdp_session_id: u64,
    state: Mutex<State>,
    demand: watch::Sender<usize>,
    availability: watch::Sender<Availability>,
    /// The source connects only when asked (`on_demand = true`).
    on_demand: std::sync::atomic::AtomicBool,
    /// Bumped by [`Stream::want`]: a client asked for an on-demand stream.
    wanted: watch::Sender<u64>,
    /// The owner of the stream's tasks (the paced GOP replays); see
    /// [`Stream::set_tasks`].
    tasks: std::sync::OnceLock<Tasks>,
}

struct State {
    presentation: Option<Arc<Presentation>>,
    /// Bumped whenever the tracks really change; sessions set up on an older
    /// generation are gone.
    generation: u64,
    tracks: Vec<Track>,
    players: HashMap<SubscriberId, Player>,
    next_id: SubscriberId,
    stats: StreamStats,
    /// Packets since the last keyframe, replayed to new subscribers first.
    cache: GopCache,
    /// The last replay retimed for a new subscriber, for those that join
    /// before the key track's next packet.
    retimed: RetimedReplay,
    cache_limit: usize,
    source_state: SourceState,
    /// Back-end sessions lost after they were established.
    reconnects: u64,
    /// Packets lost on mappings that ended, and the highest total reported (so
    /// that the figure never goes down when a track resyncs).
    lost_ended: u64,
    lost_reported: u64,
    /// Drops of clients that stopped playing.
    drops_ended: u64,
    plays: u64,
}

struct Player {
    closer: Arc<Closer>,
    /// Set by the server after PLAY ([`Stream::set_client`]); the drop count
    /// when it was set, so that a client's earlier drops are not counted twice.
    client: Option<(ClientInfo, u64)>,
    /// Counts in the demand: every client does; a multicast group's own
    /// delivery does not (its clients do).
    counted: bool,
}

impl State {
    /// The source's demand: how many clients play.
    fn demand(&self) -> usize {
        self.players.values().filter(|p| p.counted).count()
    }
}

/// How [`Stream::play_with`] starts a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayOptions {
    /// Send the keyframe cache first (RTP-Info then names its first packet).
    pub replay: bool,
    /// Count the subscriber in the source's demand.
    pub counted: bool,
}

impl Default for PlayOptions {
    fn default() -> Self {
        PlayOptions {
            replay: true,
            counted: true,
        }
    }
}

struct Track {
    continuity: TrackContinuity,
    reception: ReceptionStats,
    sinks: Arc<SinkSet>,
    /// The back end's latest sender report, mapped into our space, and when it
    /// arrived. Cleared whenever the mapping ends (reset, pause).
    backend_sr: Option<(SenderInfo, Instant)>,
    /// How far the back end's clock, read through its sender reports, is
    /// behind our wall clock at the RTP time we project for "now" (NTP units,
    /// 2^-32 s): its capture-to-arrival latency plus any clock offset.
    /// Learnt from every back-end report and kept across pauses and
    /// reconnects, so that a sender report we make ourselves for a first
    /// watcher (at PLAY, or on a back end that sends none) maps RTP time to
    /// NTP time as the back end's next one will: a player that re-anchors on
    /// that one (ffmpeg does at every report) must not see time go back.
    /// Reports made while somebody watches continue [`Track::last_report`]
    /// instead (see [`Track::made_report_at`]).
    sender_lag: Option<i64>,
    synth_sr_at: Option<Instant>,
    /// The last sender report the subscribers were given (ours or the back
    /// end's as forwarded): the RTP-to-NTP mapping they hold.
    last_report: Option<SenderInfo>,
    /// Added to the NTP time of the back end's reports in the current
    /// mapping (NTP units). A new mapping (after a reconnect or a pause) can
    /// come from a new pipeline whose capture-to-arrival latency is not the
    /// old one's: its first report would move the watchers' clock by the
    /// difference, and back in time if the new latency is longer (ffmpeg
    /// re-anchors at every report: audio timestamps go back). Set at that
    /// first report so that it continues [`Track::last_report`]; 0 while
    /// nobody watches (the camera's own clock again).
    ntp_shift: i64,
    /// The mapping ended: the back end's next report sets [`Track::ntp_shift`].
    shift_due: bool,
    /// Subscribers still being given a paced GOP replay: their sink joins
    /// `sinks` once their queue (replay, then the live packets meanwhile) is
    /// empty.
    pacing: Vec<Pacing>,
}

/// A subscriber's sink on a track while its GOP replay is paced out.
struct Pacing {
    id: SubscriberId,
    sink: Sink,
    queue: VecDeque<Bytes>,
}

impl Track {
    fn new(clock_rate: u32) -> Track {
        let clock_rate = clock_rate.max(1);
        Track {
            continuity: TrackContinuity::with_random_base(clock_rate),
            reception: ReceptionStats::new(clock_rate),
            sinks: Arc::new(SinkSet::default()),
            backend_sr: None,
            sender_lag: None,
            synth_sr_at: None,
            last_report: None,
            ntp_shift: 0,
            shift_due: false,
            pacing: Vec::new(),
        }
    }

    /// The mapping of back-end packets ended: the statistics and the sender report
    /// that belonged to it go with it.
    fn mapping_ended(&mut self, lost_ended: &mut u64) {
        *lost_ended += self.reception.cumulative_lost();
        self.reception = ReceptionStats::new(self.continuity.clock_rate());
        self.backend_sr = None;
        self.shift_due = true;
    }

    /// Whether a subscriber is on this track (relayed to, or being given its
    /// paced replay).
    fn watched(&self) -> bool {
        !self.sinks.is_empty() || !self.pacing.is_empty()
    }

    /// A sender report we make ourselves at `now` (see
    /// [`Track::sender_report_at`]). While somebody watches, its NTP time
    /// continues [`Track::last_report`], the mapping they hold, as a player
    /// extrapolates it: a report made from the wall clock and the arrival
    /// time of the latest packet would move their clock by that packet's
    /// jitter, and back in time when it came early. After a restart the new
    /// pipeline's first packet, which fixes the timestamps of the new
    /// mapping, often comes late: ffmpeg, which re-anchors at every report,
    /// then saw time go back (http_tunnel.rs under load).
    fn made_report_at(&self, now: Instant, wall: SystemTime) -> Option<SenderInfo> {
        let mut info = self.sender_report_at(now, wall)?;
        if let Some(ntp) = self.held_ntp(info.rtp_timestamp) {
            info.ntp = ntp;
        }
        Some(info)
    }

    /// The NTP time the watchers' clock ([`Track::last_report`]) gives RTP
    /// time `rtp_timestamp`; None while nobody watches.
    fn held_ntp(&self, rtp_timestamp: u32) -> Option<u64> {
        self.last_report
            .filter(|_| self.watched())
            .and_then(|last| continued_ntp(&last, rtp_timestamp, self.continuity.clock_rate()))
    }

    /// The back end's report `sr` (already in our timestamp space) as the
    /// subscribers get it: its NTP time shifted by [`Track::ntp_shift`],
    /// which the first report of a mapping sets.
    fn forwarded_report(&mut self, mut sr: SenderInfo) -> SenderInfo {
        if std::mem::take(&mut self.shift_due) {
            self.ntp_shift = self.held_ntp(sr.rtp_timestamp).map_or(0, |ntp| {
                let shift = i128::from(ntp) - i128::from(sr.ntp);
                i64::try_from(shift).unwrap_or(0)
            });
        }
        sr.ntp = sr.ntp.wrapping_add_signed(self.ntp_shift);
        sr
    }

    /// A sender report for `now` in our space: the back end's latest (carried
    /// forward by the time since it arrived) while it is fresh, else one made from
    /// the wall clock and our timestamp projection. None before the first packet,
    /// when no timestamp is tied to any time yet.
    fn sender_report_at(&self, now: Instant, wall: SystemTime) -> Option<SenderInfo> {
        self.continuity.last_packet()?;
        let (ntp, rtp_timestamp) = match self.backend_sr {
            Some((sr, at)) if now.saturating_duration_since(at) < BACKEND_SR_STALE => {
                let since = now.saturating_duration_since(at);
                (
                    rtcp::ntp_add(sr.ntp, since),
                    sr.rtp_timestamp
                        .wrapping_add(rtcp::clock_ticks(self.continuity.clock_rate(), since)),
                )
            }
            _ => (
                rtcp::ntp_from_system_time(wall)
                    .wrapping_add_signed(self.sender_lag.map_or(0, i64::wrapping_neg)),
                self.continuity.rtptime_at(now),
            ),
        };
        Some(SenderInfo {
            ssrc: self.continuity.ssrc(),
            ntp,
            rtp_timestamp,
            packet_count: self.continuity.packets_sent(),
            octet_count: self.continuity.octets_sent(),
        })
    }

    /// Learns [`Track::sender_lag`] from a back-end report `sr` (already in
    /// our timestamp space) that arrived at `now` / `wall`; smoothed, since
    /// the arrival time it is read against carries the network's jitter.
    fn learn_sender_lag(&mut self, sr: &SenderInfo, now: Instant, wall: SystemTime) {
        if self.continuity.last_packet().is_none() {
            return;
        }
        let ahead = self
            .continuity
            .rtptime_at(now)
            .wrapping_sub(sr.rtp_timestamp) as i32;
        let ahead_ntp = (i128::from(ahead) << 32) / i128::from(self.continuity.clock_rate());
        let sample = i128::from(rtcp::ntp_from_system_time(wall)) - i128::from(sr.ntp) - ahead_ntp;
        let sample = i64::try_from(sample).unwrap_or(if sample < 0 { i64::MIN } else { i64::MAX });
        self.sender_lag = Some(match self.sender_lag {
            None => sample,
            Some(lag) => lag.saturating_add(sample.saturating_sub(lag) / 4),
        });
    }
}

/// The NTP time that `last`'s mapping gives RTP time `rtp_timestamp`, as a
/// player extrapolates it; None over an hour away (or a wrap apart).
fn continued_ntp(last: &SenderInfo, rtp_timestamp: u32, clock_rate: u32) -> Option<u64> {
    let ahead = i64::from(rtp_timestamp.wrapping_sub(last.rtp_timestamp) as i32);
    if ahead.unsigned_abs() > u64::from(clock_rate) * 3_600 {
        return None;
    }
    let ahead_ntp = (i128::from(ahead) << 32) / i128::from(clock_rate.max(1));
    u64::try_from(i128::from(last.ntp) + ahead_ntp).ok()
}

fn encode_sender_report(info: &SenderInfo) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    rtcp::build_sender_report(&mut buf, info, "rtsp-proxy");
    buf.freeze()
}

impl Stream {
    /// A stream with the default keyframe cache.
    pub fn new(name: impl Into<String>) -> Arc<Stream> {
        Stream::with_cache(name, DEFAULT_CACHE_BYTES)
    }

    /// A stream whose keyframe cache holds at most `cache_bytes` (0: no cache).
    pub fn with_cache(name: impl Into<String>, cache_bytes: usize) -> Arc<Stream> {
        let (demand, _) = watch::channel(0);
        let (availability, _) = watch::channel(Availability::Pending);
        let sdp_session_id = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Arc::new(Stream {
            name: name.into(),
            sdp_session_id,
            state: Mutex::new(State {
                presentation: None,
                generation: 0,
                tracks: Vec::new(),
                players: HashMap::new(),
                next_id: 1,
                stats: StreamStats::default(),
                cache: GopCache::new(&[], cache_bytes),
                retimed: RetimedReplay::default(),
                cache_limit: cache_bytes,
                source_state: SourceState::Waiting,
                reconnects: 0,
                lost_ended: 0,
                lost_reported: 0,
                drops_ended: 0,
                plays: 0,
            }),
            demand,
            availability,
            on_demand: std::sync::atomic::AtomicBool::new(false),
            wanted: watch::channel(0).0,
            tasks: std::sync::OnceLock::new(),
        })
    }

    /// Where the stream's source stands.
    pub fn source_state(&self) -> SourceState {
        self.lock().source_state
    }

    /// The owner of the stream's tasks (its source's receive loops too).
    pub fn tasks(&self) -> Tasks {
        self.tasks.get_or_init(Tasks::new).clone()
    }

    /// Makes `tasks` the owner of the stream's tasks (set once, before the
    /// stream is served; a stream without one owns its tasks alone).
    pub fn set_tasks(&self, tasks: &Tasks) {
        let _ = self.tasks.set(tasks.clone());
    }

    /// Marks the stream's source as connecting only on demand (set before the
    /// source starts).
    pub fn set_on_demand(&self, on: bool) {
        self.on_demand
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the source connects only on demand.
    pub fn on_demand(&self) -> bool {
        self.on_demand.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A client asks for the stream (DESCRIBE, SETUP): an idle on-demand source
    /// connects, and a stream whose back end was not reached so far is pending
    /// again (the request waits for that attempt). Nothing for other streams.
    pub fn want(&self) {
        if !self.on_demand() {
            return;
        }
        self.availability.send_if_modified(|a| {
            let change = *a == Availability::Unreachable;
            if change {
                *a = Availability::Pending;
            }
            change
        });
        self.wanted.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Watches [`Stream::want`] calls (a counter).
    pub fn watch_wanted(&self) -> watch::Receiver<u64> {
        self.wanted.subscribe()
    }

    /// Whether the stream can be served (see [`Availability`]).
    pub fn availability(&self) -> Availability {
        *self.availability.borrow()
    }

    /// The source could not reach its back end, and no presentation is known.
    pub fn mark_unreachable(&self) {
        self.lock().source_state = SourceState::Down;
        self.availability.send_if_modified(|a| {
            let change = *a == Availability::Pending;
            if change {
                *a = Availability::Unreachable;
            }
            change
        });
    }

    /// Waits, at most `max`, while the source's first attempt is under way.
    pub async fn settled(&self, max: std::time::Duration) -> Availability {
        let mut rx = self.availability.subscribe();
        let _ = tokio::time::timeout(max, rx.wait_for(|a| *a != Availability::Pending)).await;
        self.availability()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `o=` session id of the SDP we serve: fixed for the life of the stream.
    pub fn sdp_session_id(&self) -> u64 {
        self.sdp_session_id
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated in a
        // way that matters more than stopping the relay would, so carry on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The back end's presentation, once a DESCRIBE succeeded.
    pub fn presentation(&self) -> Option<Arc<Presentation>> {
        self.lock().presentation.clone()
    }

    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    pub fn stats(&self) -> StreamStats {
        self.lock().stats
    }

    /// The SSRC clients see on `track`.
    pub fn track_ssrc(&self, track: usize) -> Option<u32> {
        self.lock().tracks.get(track).map(|t| t.continuity.ssrc())
    }

    /// A new subscriber id.
    pub fn new_subscriber(&self) -> SubscriberId {
        let mut st = self.lock();
        let id = st.next_id;
        st.next_id += 1;
        id
    }

    /// Number of subscribers currently playing.
    pub fn players(&self) -> usize {
        *self.demand.borrow()
    }

    /// Watches the number of playing subscribers (the source's demand).
    pub fn watch_demand(&self) -> watch::Receiver<usize> {
        self.demand.subscribe()
    }

    /// Installs the presentation from a (new) back-end DESCRIBE.
    pub fn set_presentation(&self, p: Presentation) -> PresentationChange {
        let change = self.install_presentation(p);
        self.lock().source_state = SourceState::Idle;
        self.availability.send_replace(Availability::Described);
        change
    }

    fn install_presentation(&self, p: Presentation) -> PresentationChange {
        let closers;
        let change;
        {
            let mut st = self.lock();
            let encodings: Vec<Option<&str>> =
                p.tracks.iter().map(|t| t.encoding.as_deref()).collect();
            st.cache = GopCache::new(&encodings, st.cache_limit);
            match &st.presentation {
                None => {
                    st.tracks = p.tracks.iter().map(|t| Track::new(t.clock_rate)).collect();
                    st.presentation = Some(Arc::new(p));
                    return PresentationChange::First;
                }
                Some(old) if old.same_tracks(&p) => {
                    st.presentation = Some(Arc::new(p));
                    return PresentationChange::Updated;
                }
                Some(_) => {
                    st.tracks = p.tracks.iter().map(|t| Track::new(t.clock_rate)).collect();
                    st.presentation = Some(Arc::new(p));
                    st.generation += 1;
                    closers = st
                        .players
                        .drain()
                        .map(|(_, p)| p.closer)
                        .collect::<Vec<_>>();
                    change = PresentationChange::TracksChanged;
                }
            }
        }
        self.demand.send_replace(0);
        for c in closers {
            c();
        }
        change
    }

    /// The back-end session was lost: the next packet of every track is re-based so
    /// subscribers see one continuous stream.
    pub fn source_reset(&self) {
        self.reset(false);
    }

    /// An on-demand source closed its idle back end (nobody watched for the
    /// linger): as [`Stream::source_reset`], but no reconnect is counted and
    /// the stream shows as idle.
    pub fn source_closed_on_demand(&self) {
        self.reset(true);
    }

    fn reset(&self, standby: bool) {
        let mut st = self.lock();
        let st = &mut *st;
        st.cache.clear();
        if st.source_state.is_up() && !standby {
            st.reconnects += 1;
        }
        st.source_state = if standby {
            SourceState::Standby
        } else {
            SourceState::Down
        };
        for t in &mut st.tracks {
            t.continuity.source_reset();
            t.mapping_ended(&mut st.lost_ended);
        }
    }

    /// The back end answered PAUSE: packets still arriving are from before it and
    /// are dropped until [`Stream::source_resuming`]; the next one after that is
    /// re-based as after a reconnect, so that whatever the back end does to its
    /// numbers across the pause, subscribers see one continuous stream that agrees
    /// with the RTP-Info they were given meanwhile.
    pub fn source_paused(&self) {
        let mut st = self.lock();
        let st = &mut *st;
        st.cache.clear();
        st.source_state = SourceState::Paused;
        for t in &mut st.tracks {
            t.continuity.hold();
            t.mapping_ended(&mut st.lost_ended);
        }
    }

    /// A PLAY is about to resume the paused back end: packets are accepted again.
    pub fn source_resuming(&self) {
        let mut st = self.lock();
        for t in &mut st.tracks {
            t.continuity.release();
        }
    }

    /// The back end answered PLAY; `starts[i]` is the first sequence number it
    /// announced for track `i` (RTP-Info), if any. Older packets are dropped.
    pub fn source_playing(&self, starts: &[Option<u16>]) {
        let mut st = self.lock();
        st.source_state = SourceState::Playing;
        for (t, start) in st.tracks.iter_mut().zip(starts) {
            t.continuity.release();
            if let Some(start) = start {
                t.continuity.expect_start(*start);
            }
        }
    }

    /// Relays one back-end RTP packet of `track` (a batch of one).
    pub fn push_rtp(&self, track: usize, pkt: BytesMut, now: Instant) {
        let mut batch = vec![pkt];
        self.push_rtp_batch(track, &mut batch, now);
    }

    /// Relays back-end RTP packets of `track` that arrived together (one socket
    /// read, or one frame), draining `pkts`. Each packet is rewritten in place
    /// and frozen into one shared buffer; the sinks get them as batches cut after
    /// each packet with the marker bit (a frame's end), so a frame goes out as
    /// one GSO train or one queue item per client, and nothing waits for a later
    /// read.
    pub fn push_rtp_batch(&self, track: usize, pkts: &mut Vec<BytesMut>, now: Instant) {
        if pkts.is_empty() {
            return;
        }
        let mut out: Vec<Bytes> = Vec::with_capacity(pkts.len());
        // Where the sinks' batches end: after a frame's last packet, and before a
        // keyframe's first (so that a batch starting with one can be recognised).
        let mut cuts: Vec<usize> = Vec::new();
        let mut key_starts: Vec<usize> = Vec::new();
        let mut key_ts: Option<u32> = None;
        let (sinks, key_track) = {
            let mut st = self.lock();
            let State {
                tracks,
                stats,
                cache,
                retimed,
                ..
            } = &mut *st;
            stats.rtp_in += pkts.len() as u64;
            let Some(t) = tracks.get_mut(track) else {
                stats.rtp_invalid += pkts.len() as u64;
                pkts.clear();
                return;
            };
            let mut out_bytes = 0u64;
            for mut pkt in pkts.drain(..) {
                stats.bytes_in += pkt.len() as u64;
                match rtp::packet::parse_rtp(&pkt) {
                    Ok(hdr) => t.reception.on_rtp(&hdr, now),
                    Err(_) => {
                        stats.rtp_invalid += 1;
                        continue;
                    }
                }
                match t.continuity.rewrite_rtp(&mut pkt, now) {
                    Ok(hdr) => {
                        let pkt = pkt.freeze();
                        let payload = hdr.payload(&pkt);
                        // A keyframe's parameter sets and slices share a
                        // timestamp: the batch is cut before the first only.
                        if cache.is_keyframe_start(track, payload) && key_ts != Some(hdr.timestamp)
                        {
                            cuts.push(out.len());
                            key_starts.push(out.len());
                            key_ts = Some(hdr.timestamp);
                        }
                        // Only the key track is replayed (see `play_with`):
                        // other tracks' packets are not kept.
                        if cache.is_key_track(track) {
                            cache.on_packet(track, &pkt, hdr.timestamp, payload, now);
                        }
                        out_bytes += pkt.len() as u64;
                        out.push(pkt);
                        if hdr.marker {
                            cuts.push(out.len());
                        }
                    }
                    Err(
                        rtp::RtpError::Held { .. }
                        | rtp::RtpError::BeforeStart { .. }
                        | rtp::RtpError::BeforeRebase { .. },
                    ) => stats.rtp_stale += 1,
                    Err(_) => stats.rtp_invalid += 1,
                }
            }
            if cache.is_key_track(track) {
                // The cache moved on: the last retimed replay is of no more use.
                retimed.clear();
            }
            for p in &mut t.pacing {
                p.queue.extend(out.iter().cloned());
            }
            if t.sinks.is_empty() {
                return;
            }
            let fan_out = t.sinks.len() as u64;
            stats.packets_out += out.len() as u64 * fan_out;
            stats.bytes_out += out_bytes * fan_out;
            (t.sinks.clone(), cache.is_key_track(track))
        };
        let mut from = 0;
        for cut in cuts.into_iter().chain(std::iter::once(out.len())) {
            if cut > from {
                let keyframe = key_track.then(|| key_starts.contains(&from));
                sinks.send_rtp_batch(&out[from..cut], keyframe);
                from = cut;
            }
        }
    }

    /// Handles one back-end RTCP packet of `track`: sender reports are rewritten
    /// into our SSRC/timestamp space and forwarded; BYE is reported to the caller.
    pub fn push_rtcp(&self, track: usize, pkt: &[u8], now: Instant) -> RtcpOutcome {
        let mut outcome = RtcpOutcome::default();
        let (sinks, out) = {
            let mut st = self.lock();
            st.stats.rtcp_in += 1;
            let Some(t) = st.tracks.get_mut(track) else {
                return outcome;
            };
            let mut out = None;
            for sr in rtcp::sender_reports(pkt) {
                t.reception.on_sender_report(&sr, now);
                // Same SSRC/timestamp mapping as the RTP; the camera's NTP time,
                // shifted only to continue the watchers' clock across mappings.
                if let Some(info) = t.continuity.map_sender_report(&sr) {
                    let info = t.forwarded_report(info);
                    t.learn_sender_lag(&info, now, SystemTime::now());
                    t.backend_sr = Some((info, now));
                    t.last_report = Some(info);
                    out = Some(encode_sender_report(&info));
                }
            }
            let byes = rtcp::bye_ssrcs(pkt);
            if !byes.is_empty() {
                // Only a BYE for the source we relay counts: a stray BYE from
                // another SSRC (a back end restarting a pipeline) does not.
                outcome.bye = byes
                    .iter()
                    .any(|s| t.continuity.map_timestamp(*s, 0).is_some());
            }
            (t.sinks.clone(), out)
        };
        if let Some(out) = out {
            sinks.send_rtcp(&out);
        }
        outcome
    }

    /// Periodic work: sender reports for tracks whose back end sends none.
    pub fn tick(&self, now: Instant) {
        let mut sends = Vec::new();
        {
            let mut st = self.lock();
            let wall = SystemTime::now();
            for t in &mut st.tracks {
                if t.sinks.is_empty() {
                    continue;
                }
                if t.backend_sr
                    .is_some_and(|(_, at)| now.saturating_duration_since(at) < BACKEND_SR_STALE)
                {
                    continue;
                }
                if t.synth_sr_at
                    .is_some_and(|at| now.saturating_duration_since(at) < SYNTH_SR_INTERVAL)
                {
                    continue;
                }
                let Some(info) = t.made_report_at(now, wall) else {
                    continue;
                };
                t.synth_sr_at = Some(now);
                t.last_report = Some(info);
                sends.push((t.sinks.clone(), encode_sender_report(&info)));
            }
        }
        for (sinks, pkt) in sends {
            sinks.send_rtcp(&pkt);
        }
    }

    /// The receiver report the proxy sends to the back end for `track`.
    pub fn receiver_report(&self, track: usize, reporter_ssrc: u32, now: Instant) -> Option<Bytes> {
        let mut st = self.lock();
        let t = st.tracks.get_mut(track)?;
        let block = t.reception.report_block(now)?;
        let mut buf = BytesMut::with_capacity(64);
        rtcp::build_receiver_report(&mut buf, reporter_ssrc, &[block], "rtsp-proxy");
        Some(buf.freeze())
    }

    /// Starts (or resumes) delivery to a subscriber. Under the stream lock, so that
    /// no packet can slip between them: computes where each track stands, lets
    /// `respond` queue the PLAY response with those RTP-Info values, then adds the
    /// sinks. Returns None (and calls nothing) if a track index is unknown or the
    /// generation has moved on.
    pub fn play(
        self: &Arc<Self>,
        id: SubscriberId,
        generation: u64,
        sinks: Vec<(usize, Sink)>,
        closer: Arc<Closer>,
        now: Instant,
        respond: impl FnOnce(&[StartPoint]),
    ) -> Option<()> {
        self.play_with(
            id,
            generation,
            sinks,
            closer,
            now,
            PlayOptions::default(),
            respond,
        )
    }

    /// The keyframe cache of `track` as it stands (oldest first; empty if
    /// `track` is not the cache's keyframe track or the cache is stale): what
    /// answers a WebRTC viewer's keyframe request without bothering the
    /// camera. Not retimed: the viewer cuts it at what it got and retimes that.
    pub fn cached_keyframe(&self, track: usize, now: Instant) -> Vec<Bytes> {
        let st = self.lock();
        match st.cache.is_key_track(track) {
            true => st.cache.replay(track, now),
            false => Vec::new(),
        }
    }

    /// [`Stream::play`] with options: a multicast group's delivery replays the
    /// cache only when the group starts, and is not counted as a client.
    #[allow(clippy::too_many_arguments)]
    pub fn play_with(
        self: &Arc<Self>,
        id: SubscriberId,
        generation: u64,
        sinks: Vec<(usize, Sink)>,
        closer: Arc<Closer>,
        now: Instant,
        options: PlayOptions,
        respond: impl FnOnce(&[StartPoint]),
    ) -> Option<()> {
        let players = {
            let mut st = self.lock();
            if st.generation != generation || sinks.iter().any(|(t, _)| *t >= st.tracks.len()) {
                return None;
            }
            // A new subscriber starts with the cached GOP, retimed for it alone
            // to end at the live edge (so that its player runs as close to live
            // as a direct one, and the sender report below agrees with it):
            // RTP-Info then names its first packet, which runs straight on into
            // the live ones. Other tracks (audio) start live.
            let mut replays: Vec<Vec<Bytes>> = {
                let State { cache, retimed, .. } = &mut *st;
                sinks
                    .iter()
                    .map(|(t, _)| match options.replay && cache.is_key_track(*t) {
                        true => retimed.retime(&cache.replay(*t, now)),
                        false => Vec::new(),
                    })
                    .collect()
            };
            // A replay sent at once must fit the receive buffer a UDP client has
            // by default (Linux: 208 KiB, about 110 KiB of RTP once the kernel's
            // per-packet overhead is counted); a bigger one would be lost, so it
            // is paced out, on every track of the subscriber alike (so they
            // start together).
            let udp_replay: usize = sinks
                .iter()
                .zip(&replays)
                .filter(|((_, s), _)| matches!(s, Sink::Udp { .. }))
                .map(|(_, r)| r.iter().map(Bytes::len).sum::<usize>())
                .sum();
            // Paced out by a task when there is a runtime to run it (always in
            // the server); without one, such a subscriber starts live.
            let runtime = tokio::runtime::Handle::try_current().is_ok();
            let paced = udp_replay > UDP_REPLAY_MAX_BYTES && runtime;
            if udp_replay > UDP_REPLAY_MAX_BYTES && !paced {
                replays.iter_mut().for_each(Vec::clear);
            }
            let points: Vec<StartPoint> = sinks
                .iter()
                .zip(&replays)
                .map(|((t, _), replay)| {
                    let c = &st.tracks[*t].continuity;
                    let cached = replay.first().and_then(|p| rtp::packet::parse_rtp(p).ok());
                    StartPoint {
                        track: *t,
                        seq: cached.map_or(c.next_seq(), |h| h.sequence),
                        rtptime: cached.map_or(c.rtptime_at(now), |h| h.timestamp),
                    }
                })
                .collect();
            respond(&points);
            remove_sinks(&mut st, id);
            let wall = SystemTime::now();
            for ((t, sink), replay) in sinks.into_iter().zip(replays) {
                let track = &mut st.tracks[t];
                // A sender report right away, not at the back end's next one, so
                // that players can line up audio and video from the start. After
                // the PLAY response (queued above) on interleaved connections.
                if let Some(info) = track.made_report_at(now, wall) {
                    track.last_report = Some(info);
                    sink.send_rtcp(&encode_sender_report(&info));
                }
                if paced {
                    track.pacing.push(Pacing {
                        id,
                        sink,
                        queue: replay.into(),
                    });
                } else {
                    sink.send_rtp_batch(&replay);
                    track.sinks = Arc::new(track.sinks.with(id, sink));
                }
            }
            if paced {
                self.tasks().spawn(pace_replay(Arc::downgrade(self), id));
            }
            // A restart (a track added or torn down while playing) keeps who
            // the client is.
            let client = st.players.remove(&id).and_then(|p| p.client);
            st.players.insert(
                id,
                Player {
                    closer,
                    client,
                    counted: options.counted,
                },
            );
            st.demand()
        };
        self.demand.send_replace(players);
        Some(())
    }

    /// A client that plays without sinks of its own (a multicast client: the
    /// group's delivery carries its media): counted in the demand, closed like
    /// any subscriber. `respond` gets where `tracks` stand now (the next packet
    /// relayed), under the stream lock. None (and nothing called) if a track is
    /// unknown or the generation has moved on.
    pub fn watch(
        &self,
        id: SubscriberId,
        generation: u64,
        tracks: &[usize],
        closer: Arc<Closer>,
        now: Instant,
        respond: impl FnOnce(&[StartPoint]),
    ) -> Option<()> {
        let players = {
            let mut st = self.lock();
            if st.generation != generation || tracks.iter().any(|t| *t >= st.tracks.len()) {
                return None;
            }
            let points: Vec<StartPoint> = tracks
                .iter()
                .map(|t| {
                    let c = &st.tracks[*t].continuity;
                    StartPoint {
                        track: *t,
                        seq: c.next_seq(),
                        rtptime: c.rtptime_at(now),
                    }
                })
                .collect();
            respond(&points);
            remove_sinks(&mut st, id);
            let client = st.players.remove(&id).and_then(|p| p.client);
            st.players.insert(
                id,
                Player {
                    closer,
                    client,
                    counted: true,
                },
            );
            st.demand()
        };
        self.demand.send_replace(players);
        Some(())
    }

    /// Stops delivery to a subscriber (PAUSE, TEARDOWN, timeout, disconnect).
    pub fn stop(&self, id: SubscriberId) {
        let players = {
            let mut st = self.lock();
            let Some(player) = st.players.remove(&id) else {
                return;
            };
            if let Some((info, base)) = player.client {
                st.drops_ended += info.drops().saturating_sub(base);
            }
            remove_sinks(&mut st, id);
            st.demand()
        };
        self.demand.send_replace(players);
    }

    /// Tells who playing subscriber `id` is (the server, right after PLAY).
    /// Ignored if `id` is not playing.
    pub fn set_client(&self, id: SubscriberId, info: ClientInfo) {
        let mut st = self.lock();
        let st = &mut *st;
        if let Some(p) = st.players.get_mut(&id) {
            let base = info.drops();
            p.client = Some((info, base));
            st.plays += 1;
        }
    }

    /// Everything the admin port shows, read under the lock once (not on the
    /// packet path: the counters are plain fields the relay updates under the
    /// lock it holds anyway).
    pub fn snapshot(&self) -> StreamSnapshot {
        let mut st = self.lock();
        let st = &mut *st;
        let lost = st.lost_ended
            + st.tracks
                .iter()
                .map(|t| t.reception.cumulative_lost())
                .sum::<u64>();
        st.lost_reported = st.lost_reported.max(lost);
        let mut client_drops = st.drops_ended;
        let mut clients: Vec<ClientSnapshot> = st
            .players
            .values()
            .filter_map(|p| p.client.as_ref())
            .map(|(info, base)| {
                let dropped = info.drops().saturating_sub(*base);
                client_drops += dropped;
                ClientSnapshot {
                    addr: info.addr,
                    transport: info.transport,
                    since: info.since,
                    dropped,
                }
            })
            .collect();
        clients.sort_by_key(|c| (c.since, c.addr));
        StreamSnapshot {
            name: self.name.clone(),
            // An on-demand source waits for a client before its first attempt.
            state: match st.source_state {
                SourceState::Waiting if self.on_demand() => SourceState::Standby,
                s => s,
            },
            presentation: st.presentation.clone(),
            packets_in: st.stats.rtp_in,
            bytes_in: st.stats.bytes_in,
            packets_out: st.stats.packets_out,
            bytes_out: st.stats.bytes_out,
            packets_lost: st.lost_reported,
            reconnects: st.reconnects,
            client_drops,
            plays: st.plays,
            clients,
        }
    }

    /// Closes every subscriber (shutdown).
    pub fn close_all(&self) {
        let closers: Vec<_> = {
            let mut st = self.lock();
            for t in &mut st.tracks {
                t.sinks = Arc::new(SinkSet::default());
                t.pacing.clear();
            }
            st.players.drain().map(|(_, p)| p.closer).collect()
        };
        self.demand.send_replace(0);
        for c in closers {
            c();
        }
    }
}

fn remove_sinks(st: &mut State, id: SubscriberId) {
    for t in &mut st.tracks {
        t.pacing.retain(|p| p.id != id);
        if let Some(rest) = t.sinks.without(id) {
            t.sinks = Arc::new(rest);
        }
    }
}

/// Paces subscriber `id`'s GOP replay out, a chunk per track every
/// [`PACE_TICK`], followed by the live packets that arrived meanwhile; once a
/// track's queue is empty its sink joins the live fan-out (under the stream
/// lock, so nothing is reordered). Ends when nothing is left to pace, the
/// subscriber is gone or the stream is.
async fn pace_replay(stream: Weak<Stream>, id: SubscriberId) {
    let mut tick = tokio::time::interval(PACE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(stream) = stream.upgrade() else {
            return;
        };
        let mut st = stream.lock();
        let mut pending = false;
        for t in &mut st.tracks {
            let Some(i) = t.pacing.iter().position(|p| p.id == id) else {
                continue;
            };
            let p = &mut t.pacing[i];
            let mut chunk = Vec::new();
            let mut bytes = 0;
            while let Some(pkt) = p.queue.front() {
                if bytes + pkt.len() > PACE_CHUNK_BYTES && !chunk.is_empty() {
                    break;
                }
                bytes += pkt.len();
                chunk.extend(p.queue.pop_front());
            }
            p.sink.send_rtp_batch(&chunk);
            if p.queue.is_empty() {
                let done = t.pacing.remove(i);
                t.sinks = Arc::new(t.sinks.with(id, done.sink));
            } else {
                pending = true;
            }
        }
        if !pending {
            return;
        }
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
