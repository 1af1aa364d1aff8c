//! The back-end RTSP client session as a sans-IO state machine.
//!
//! The driver feeds it connection events, responses, media activity and time; it
//! answers with requests to send and events. One request is outstanding at a time
//! (RTSP servers in cameras rarely cope with pipelining).
//!
//! Lifecycle on one connection: OPTIONS (learn `Public`) -> DESCRIBE -> (driver
//! prepares media sockets) -> Ready. With demand: SETUP each track -> PLAY ->
//! Playing. Without demand for `linger`: PAUSE -> Paused. Keep-alive at half the
//! session timeout.
//!
//! Media transport, in order of preference: with UDP (the default), a unicast
//! SETUP with our client ports; a back end whose SDP announces a multicast
//! group (`c=IN IP4 <group>/ttl`) is asked for multicast instead, and a 461 to a
//! unicast SETUP leads to a multicast SETUP of that track on the same
//! connection; a 461 to that (or a unicast answer to it) fails the session with
//! a failure that makes the driver reconnect over TCP, as UDP that stays silent
//! after PLAY does. `--backend-multicast` starts with multicast; `-t` never
//! tries it. The driver joins the group each [`Event::TrackSetUp`] names. Any failure ends the connection with [`Event::Failed`]; the
//! driver reconnects with back-off and a new session machine.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rtsp::auth::{ClientAuth, Credentials};
use rtsp::header::session::SessionHeader;
use rtsp::header::transport::{Cast, ChannelRange, LowerTransport, PortRange, Transport};
use rtsp::url::{resolve_control, RtspUrl};
use rtsp::{Method, Request, Response};

use super::transport::BackendTransport;
use sdp::{self, Presentation};

pub use super::failure::{Failure, RequestRef};

/// Session timeout assumed when the back end announces none (RFC 2326: 60 s).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest keep-alive interval we use, whatever the back end announces.
const MAX_KEEPALIVE: Duration = Duration::from_secs(60);
/// Smallest keep-alive interval (a back end announcing timeout=1 is not obeyed
/// into a request storm).
const MIN_KEEPALIVE: Duration = Duration::from_secs(2);
/// Redirects followed in a row before giving up.
pub const MAX_REDIRECTS: u32 = 5;
/// Longest wait for the answer to a PLAY that resumes a paused back end (it is
/// answered at once by every server that resumes; one that does not is
/// reconnected rather than waited for while a client stares at nothing).
pub const RESUME_TIMEOUT: Duration = Duration::from_secs(3);

/// Settings of one back-end session.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// The URL to DESCRIBE (credentials already taken out).
    pub url: RtspUrl,
    pub credentials: Option<Credentials>,
    pub transport: BackendTransport,
    pub response_timeout: Duration,
    /// With UDP: no packet this long after PLAY means UDP does not get through.
    pub udp_timeout: Duration,
    /// No packet for this long while playing means the back end is stalled (`-D`).
    pub max_gap: Option<Duration>,
    /// Keep playing this long after the last client left.
    pub linger: Duration,
    pub user_agent: String,
}

/// What the driver must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// DESCRIBE succeeded. The driver prepares media (UDP sockets) for these
    /// tracks and calls [`BackendSession::media_ready`].
    Described(Presentation),
    /// A track was set up; the back end's answer is in `reply`. A multicast
    /// answer (`reply.cast` is `Multicast`) always has `destination` and `port`
    /// (from the SDP when the answer lacks them): the driver receives the track
    /// by joining that group.
    TrackSetUp { track: usize, reply: Transport },
    /// PLAY answered: media flows. `starts[i]` is the first sequence number the
    /// back end announced for track `i` (its RTP-Info), if it said.
    Playing { starts: Vec<Option<u16>> },
    /// PAUSE answered: what still arrives was sent before the pause.
    Paused,
    /// A PLAY that resumes the paused back end goes out next.
    Resuming,
    /// A 3xx: connect to this URL instead.
    Redirect(String),
    /// The session is over; drop the connection (a TEARDOWN may precede this).
    Failed(Failure),
    /// TEARDOWN done (or not needed): the driver may exit.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Options {
        keepalive: bool,
    },
    Describe,
    Setup(usize),
    /// `resume`: from Paused, on the same session (no `Range`, as live555).
    Play {
        resume: bool,
    },
    Pause,
    GetParameter,
    Teardown,
}

impl Kind {
    fn method(self) -> Method {
        match self {
            Kind::Options { .. } => Method::Options,
            Kind::Describe => Method::Describe,
            Kind::Setup(_) => Method::Setup,
            Kind::Play { .. } => Method::Play,
            Kind::Pause => Method::Pause,
            Kind::GetParameter => Method::GetParameter,
            Kind::Teardown => Method::Teardown,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not connected yet.
    Idle,
    /// OPTIONS/DESCRIBE under way.
    Describing,
    /// Described; waiting for the driver's media sockets.
    AwaitingMedia,
    /// Described, media ready, nothing set up or paused before setup.
    Ready,
    /// SETUPs under way.
    SettingUp,
    /// PLAY sent.
    Starting,
    Playing,
    /// PAUSE sent.
    Pausing,
    Paused,
    TearingDown,
    /// Failed or closed: nothing more happens.
    Done,
}

impl Pending {
    /// The request awaiting its answer, for a failure's context.
    fn request(&self) -> RequestRef {
        RequestRef::new(self.kind.method(), self.cseq, &self.uri)
    }
}

struct Pending {
    kind: Kind,
    cseq: u32,
    /// The request URI (for a failure's context).
    uri: String,
    sent_at: Instant,
    /// Sent again after a 401 already.
    auth_retried: bool,
}

pub struct BackendSession {
    cfg: SessionConfig,
    state: State,
    cseq: u32,
    auth: Option<ClientAuth>,
    pending: Option<Pending>,
    queue: VecDeque<Kind>,
    out: VecDeque<Output>,
    /// Base URL for relative controls: Content-Base, Content-Location or the URL.
    base: String,
    presentation: Option<Presentation>,
    public: Option<String>,
    session_id: Option<String>,
    session_timeout: Duration,
    /// The back end announced a session timeout (else the RFC's 60 s is assumed).
    timeout_announced: bool,
    udp_ports: Vec<u16>,
    /// Interleaved channel of each track's RTP (RTCP is +1).
    channels: Vec<Option<u8>>,
    set_up: Vec<bool>,
    transport: BackendTransport,
    demand: bool,
    demand_lost_at: Option<Instant>,
    last_request_at: Option<Instant>,
    playing_since: Option<Instant>,
    media_count: u64,
    /// Arrival of the latest media packet, as last reported by the driver.
    media_at: Option<Instant>,
}

/// One output of the machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Send(Request),
    Event(Event),
}

impl BackendSession {
    pub fn new(cfg: SessionConfig) -> BackendSession {
        let base = cfg.url.without_credentials();
        let auth = cfg.credentials.clone().map(ClientAuth::new);
        let transport = cfg.transport;
        BackendSession {
            cfg,
            state: State::Idle,
            cseq: 1,
            auth,
            pending: None,
            queue: VecDeque::new(),
            out: VecDeque::new(),
            base,
            presentation: None,
            public: None,
            session_id: None,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            timeout_announced: false,
            udp_ports: Vec::new(),
            channels: Vec::new(),
            set_up: Vec::new(),
            transport,
            demand: false,
            demand_lost_at: None,
            last_request_at: None,
            playing_since: None,
            media_count: 0,
            media_at: None,
        }
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    pub fn transport(&self) -> &BackendTransport {
        &self.transport
    }

    pub fn is_playing(&self) -> bool {
        self.state == State::Playing
    }

    /// The track and kind (RTCP or not) of an interleaved channel.
    pub fn channel_track(&self, channel: u8) -> Option<(usize, bool)> {
        self.channels.iter().enumerate().find_map(|(i, c)| match c {
            Some(c) if *c == channel => Some((i, false)),
            Some(c) if c.wrapping_add(1) == channel => Some((i, true)),
            _ => None,
        })
    }

    /// The RTCP interleaved channel of a track.
    pub fn rtcp_channel(&self, track: usize) -> Option<u8> {
        self.channels
            .get(track)
            .copied()
            .flatten()
            .map(|c| c.wrapping_add(1))
    }

    /// The TCP connection is up: start with OPTIONS, then DESCRIBE.
    pub fn on_connected(&mut self, now: Instant) {
        self.state = State::Describing;
        self.queue.push_back(Kind::Options { keepalive: false });
        self.queue.push_back(Kind::Describe);
        self.pump(now);
    }

    /// The driver's media sockets are ready (`udp_ports[i]` = RTP port of track i;
    /// empty with TCP).
    pub fn media_ready(&mut self, udp_ports: Vec<u16>, now: Instant) {
        if self.state != State::AwaitingMedia {
            return;
        }
        self.udp_ports = udp_ports;
        self.state = State::Ready;
        self.evaluate(now);
    }

    /// The number of playing clients went from zero to some or back.
    pub fn set_demand(&mut self, demand: bool, now: Instant) {
        if demand == self.demand {
            return;
        }
        self.demand = demand;
        self.demand_lost_at = if demand { None } else { Some(now) };
        self.evaluate(now);
    }

    /// Media packets received so far on this connection (any track), the latest
    /// of them at `last_at`. The driver reports it before each timeout check.
    pub fn on_media(&mut self, count: u64, last_at: Instant) {
        if count != self.media_count {
            self.media_count = count;
            self.media_at = Some(self.media_at.map_or(last_at, |m| m.max(last_at)));
        }
    }

    /// Whether media arrived since the latest PLAY was answered.
    fn media_since_play(&self) -> bool {
        match (self.media_at, self.playing_since) {
            (Some(m), Some(p)) => m >= p,
            _ => false,
        }
    }

    /// When the media watchdogs fire while playing: UDP that never arrived after
    /// PLAY, and the `-D` gap since the latest packet (or since PLAY).
    fn watchdog_deadline(&self) -> Option<Instant> {
        if self.state != State::Playing {
            return None;
        }
        let since = self.playing_since?;
        let udp_silent = (self.transport != BackendTransport::Tcp && !self.media_since_play())
            .then(|| since + self.cfg.udp_timeout);
        let stalled = self.cfg.max_gap.map(|gap| {
            let last = self.media_at.map_or(since, |m| m.max(since));
            last + gap
        });
        match (udp_silent, stalled) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// How long `kind` may wait for its answer.
    fn timeout_of(&self, kind: Kind) -> Duration {
        match kind {
            Kind::Play { resume: true } => self.cfg.response_timeout.min(RESUME_TIMEOUT),
            _ => self.cfg.response_timeout,
        }
    }

    /// The back end sent RTCP BYE for the stream.
    pub fn on_bye(&mut self, _now: Instant) {
        self.fail(Failure::Bye);
    }

    /// Shut down: TEARDOWN if a session exists, then [`Event::Closed`].
    pub fn teardown(&mut self, now: Instant) {
        if matches!(self.state, State::Done | State::TearingDown) {
            if self.state == State::Done {
                self.out.push_back(Output::Event(Event::Closed));
            }
            return;
        }
        self.queue.clear();
        if self.session_id.is_some() && self.state != State::Idle {
            self.state = State::TearingDown;
            // Whatever is outstanding is abandoned: TEARDOWN goes out now.
            self.pending = None;
            self.send(Kind::Teardown, now);
        } else {
            self.state = State::Done;
            self.out.push_back(Output::Event(Event::Closed));
        }
    }

    /// When [`BackendSession::handle_timeout`] wants to be called next. Never a
    /// time that `handle_timeout` has already been called for: after
    /// `handle_timeout(now)` this is later than `now`, or None.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Done {
            return None;
        }
        let mut t: Option<Instant> = None;
        let mut consider = |x: Instant| t = Some(t.map_or(x, |t| t.min(x)));
        match (&self.pending, self.last_request_at) {
            (Some(p), _) => consider(p.sent_at + self.timeout_of(p.kind)),
            // A keep-alive only goes out when nothing is outstanding.
            (None, Some(last)) => consider(last + self.keepalive_interval()),
            (None, None) => {}
        }
        if let (State::Playing, false, Some(lost)) = (self.state, self.demand, self.demand_lost_at)
        {
            consider(lost + self.cfg.linger);
        }
        if let Some(w) = self.watchdog_deadline() {
            consider(w);
        }
        t
    }

    /// Time passed: response timeouts, keep-alive, linger, media watchdogs.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Done {
            return;
        }
        if let Some(p) = &self.pending {
            let limit = self.timeout_of(p.kind);
            if now >= p.sent_at + limit {
                let kind = p.kind;
                if kind == Kind::Teardown {
                    self.state = State::Done;
                    self.pending = None;
                    self.out.push_back(Output::Event(Event::Closed));
                    return;
                }
                let timeout = Failure::Timeout {
                    request: p.request(),
                    secs: limit.as_secs(),
                };
                self.fail(if kind == (Kind::Play { resume: true }) {
                    Failure::Resume(Box::new(timeout))
                } else {
                    timeout
                });
                return;
            }
        }
        if self.watchdog_deadline().is_some_and(|w| now >= w) {
            if self.transport != BackendTransport::Tcp && !self.media_since_play() {
                let since = self.playing_since.unwrap_or(now);
                if now.saturating_duration_since(since) >= self.cfg.udp_timeout {
                    self.fail(Failure::UdpSilent(self.cfg.udp_timeout.as_secs()));
                    return;
                }
            }
            if let Some(gap) = self.cfg.max_gap {
                self.fail(Failure::Stalled(gap.as_secs()));
                return;
            }
        }
        if let Some(last) = self.last_request_at {
            if now >= last + self.keepalive_interval()
                && self.pending.is_none()
                && self.queue.is_empty()
            {
                let kind = if self.session_id.is_some() && self.supports("GET_PARAMETER") {
                    Kind::GetParameter
                } else {
                    Kind::Options { keepalive: true }
                };
                self.queue.push_back(kind);
            }
        }
        self.evaluate(now);
    }

    fn keepalive_interval(&self) -> Duration {
        (self.session_timeout / 2).clamp(MIN_KEEPALIVE, MAX_KEEPALIVE)
    }

    fn supports(&self, method: &str) -> bool {
        self.public
            .as_deref()
            .is_some_and(|p| rtsp::header::public::supports(p, method))
    }

    /// Decides what to do next from demand and state, then sends.
    fn evaluate(&mut self, now: Instant) {
        match self.state {
            State::Ready if self.demand => {
                self.state = State::SettingUp;
                let n = self.presentation.as_ref().map_or(0, |p| p.tracks.len());
                self.set_up = vec![false; n];
                self.channels = vec![None; n];
                for i in 0..n {
                    self.queue.push_back(Kind::Setup(i));
                }
                self.queue.push_back(Kind::Play { resume: false });
            }
            State::Paused if self.demand => {
                self.state = State::Starting;
                self.out.push_back(Output::Event(Event::Resuming));
                self.queue.push_back(Kind::Play { resume: true });
            }
            State::Playing
                if !self.demand
                    && self
                        .demand_lost_at
                        .is_some_and(|t| now >= t + self.cfg.linger) =>
            {
                self.state = State::Pausing;
                self.queue.push_back(Kind::Pause);
            }
            _ => {}
        }
        self.pump(now);
    }

    /// Sends the next queued request if none is outstanding.
    fn pump(&mut self, now: Instant) {
        if self.pending.is_some() {
            return;
        }
        if let Some(kind) = self.queue.pop_front() {
            self.send(kind, now);
        }
    }

    fn next_cseq(&mut self) -> u32 {
        let c = self.cseq;
        self.cseq = self.cseq.wrapping_add(1).max(1);
        c
    }

    fn session_url(&self) -> String {
        match self
            .presentation
            .as_ref()
            .and_then(|p| p.session_control.as_deref())
        {
            Some(c) if c != "*" && !c.is_empty() => resolve_control(&self.base, c),
            _ => self.base.clone(),
        }
    }

    fn track_url(&self, track: usize) -> String {
        let control = self
            .presentation
            .as_ref()
            .and_then(|p| p.tracks.get(track))
            .and_then(|t| t.control.as_deref());
        match control {
            Some(c) => resolve_control(&self.base, c),
            None => self.base.clone(),
        }
    }

    fn build(&mut self, kind: Kind) -> Request {
        let uri = match kind {
            Kind::Options { .. } | Kind::Describe => {
                if kind == Kind::Describe {
                    self.cfg.url.without_credentials()
                } else {
                    self.base.clone()
                }
            }
            Kind::Setup(i) => self.track_url(i),
            Kind::Play { .. } | Kind::Pause | Kind::GetParameter | Kind::Teardown => {
                self.session_url()
            }
        };
        let cseq = self.next_cseq();
        let mut req = Request::new(kind.method(), uri)
            .with_header("CSeq", cseq.to_string())
            .with_header("User-Agent", self.cfg.user_agent.clone());
        match kind {
            Kind::Describe => req = req.with_header("Accept", "application/sdp"),
            Kind::Setup(i) => {
                let t = match self.transport {
                    BackendTransport::Udp => {
                        let port = self.udp_ports.get(i).copied().unwrap_or(0);
                        format!(
                            "RTP/AVP;unicast;client_port={}-{}",
                            port,
                            port.wrapping_add(1)
                        )
                    }
                    BackendTransport::Tcp => {
                        let ch = (i * 2).min(254) as u8;
                        format!("RTP/AVP/TCP;unicast;interleaved={}-{}", ch, ch + 1)
                    }
                    // The back end chooses group and port (live555's request too).
                    BackendTransport::Multicast => "RTP/AVP;multicast".to_owned(),
                };
                req = req.with_header("Transport", t);
            }
            // Only the first PLAY of a session gives a Range: a resume carries
            // none (as live555's), since live servers take a Range as a seek
            // (GStreamer's hangs for 20 s on it, then answers 503).
            Kind::Play { resume: false } => req = req.with_header("Range", "npt=0.000-"),
            _ => {}
        }
        if let Some(id) = &self.session_id {
            if !matches!(kind, Kind::Describe | Kind::Options { keepalive: false }) {
                req = req.with_header("Session", id.clone());
            }
        }
        if let Some(auth) = self.auth.as_mut() {
            if let Some(value) = auth.authorization(kind.method().as_str(), &req.uri) {
                req = req.with_header("Authorization", value);
            }
        }
        req
    }

    fn send(&mut self, kind: Kind, now: Instant) {
        self.send_with(kind, now, false);
    }

    fn send_with(&mut self, kind: Kind, now: Instant, auth_retried: bool) {
        let req = self.build(kind);
        let cseq = req.cseq().unwrap_or(0);
        self.pending = Some(Pending {
            kind,
            cseq,
            uri: req.uri.clone(),
            sent_at: now,
            auth_retried,
        });
        self.last_request_at = Some(now);
        self.out.push_back(Output::Send(req));
    }

    fn fail(&mut self, failure: Failure) {
        if self.state == State::Done {
            return;
        }
        // Leave the back end tidy when we give up on a live session (cameras that
        // allow one session would otherwise refuse our next attempt).
        if self.session_id.is_some() && !matches!(failure, Failure::Timeout { .. }) {
            let req = self.build(Kind::Teardown);
            self.out.push_back(Output::Send(req));
        }
        self.state = State::Done;
        self.pending = None;
        self.queue.clear();
        self.out.push_back(Output::Event(Event::Failed(failure)));
    }

    /// A request from the back end (some servers send OPTIONS or GET_PARAMETER as
    /// their own keep-alive). Returns the answer to write.
    pub fn handle_request(&self, req: &Request) -> Response {
        let status = match req.method {
            Method::Options | Method::GetParameter | Method::SetParameter => 200,
            _ => 501,
        };
        let mut resp = Response::new(status);
        if let Some(c) = req.header("CSeq") {
            resp = resp.with_header("CSeq", c);
        }
        resp
    }

    /// A response from the back end.
    pub fn handle_response(&mut self, resp: &Response, now: Instant) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        if resp.cseq().is_some_and(|c| c != pending.cseq) {
            // Not the answer we wait for (a late answer to an abandoned request).
            self.pending = Some(pending);
            return;
        }
        let kind = pending.kind;
        let request = pending.request();
        if resp.status == 401 {
            let retry = !pending.auth_retried
                && self
                    .auth
                    .as_mut()
                    .is_some_and(|a| a.on_unauthorized(resp.headers.get_all("WWW-Authenticate")));
            if retry {
                self.send_with(kind, now, true);
            } else if matches!(kind, Kind::Options { keepalive: false }) {
                // A refused first OPTIONS is not fatal: DESCRIBE, next in the
                // queue, tells whether we can get in.
                self.pump(now);
            } else if kind == Kind::Teardown {
                self.finish_teardown();
            } else {
                self.fail(Failure::Auth { request });
            }
            return;
        }
        if (300..400).contains(&resp.status) {
            if let Some(loc) = resp.header("Location") {
                if matches!(kind, Kind::Options { keepalive: false } | Kind::Describe) {
                    self.state = State::Done;
                    self.queue.clear();
                    self.out
                        .push_back(Output::Event(Event::Redirect(loc.to_string())));
                    return;
                }
            }
        }
        if let Some(s) = resp
            .header("Session")
            .and_then(|v| SessionHeader::parse(v).ok())
        {
            if let Some(t) = s.timeout.filter(|t| *t > 0) {
                // The smallest timeout announced wins: some cameras announce a
                // longer one after PLAY than at SETUP (GW Security: 60, then 120)
                // and still expire at the first.
                let t = Duration::from_secs(u64::from(t));
                self.session_timeout = match self.timeout_announced {
                    true => self.session_timeout.min(t),
                    false => t,
                };
                self.timeout_announced = true;
            }
            if matches!(kind, Kind::Setup(_)) && self.session_id.is_none() {
                // The first SETUP's id is the session's: some recorders answer
                // each SETUP with another id (H264DVR) but PLAY with the first.
                self.session_id = Some(s.id);
            }
        }
        match kind {
            Kind::Options { keepalive } => {
                if resp.is_success() {
                    if let Some(p) = resp.header("Public") {
                        self.public = Some(p.to_string());
                    }
                } else if keepalive {
                    // A keep-alive answered with an error: the session is gone.
                    self.fail(status_failure(&request, resp));
                    return;
                }
                // A failed first OPTIONS is not fatal: DESCRIBE decides.
            }
            Kind::GetParameter => {
                if !resp.is_success() {
                    if resp.status == 501 || resp.status == 405 || resp.status == 551 {
                        // Listed in Public but not really supported: use OPTIONS.
                        self.public = None;
                    } else {
                        self.fail(status_failure(&request, resp));
                        return;
                    }
                }
            }
            Kind::Describe => {
                if !self.on_describe_answer(resp, &request) {
                    return;
                }
            }
            Kind::Setup(i) => {
                if !self.on_setup_answer(i, resp, &request, now) {
                    return;
                }
            }
            Kind::Play { resume } => {
                if !resp.is_success() {
                    let failure = status_failure(&request, resp);
                    self.fail(if resume {
                        Failure::Resume(Box::new(failure))
                    } else {
                        failure
                    });
                    return;
                }
                self.state = State::Playing;
                self.playing_since = Some(now);
                let starts = self.announced_starts(resp.header("RTP-Info"));
                self.out.push_back(Output::Event(Event::Playing { starts }));
                if !self.demand {
                    self.demand_lost_at = self.demand_lost_at.or(Some(now));
                }
            }
            Kind::Pause => {
                if !resp.is_success() {
                    self.fail(status_failure(&request, resp));
                    return;
                }
                self.state = State::Paused;
                self.playing_since = None;
                self.out.push_back(Output::Event(Event::Paused));
            }
            Kind::Teardown => {
                self.finish_teardown();
                return;
            }
        }
        self.evaluate(now);
    }

    /// The answer to DESCRIBE: the presentation, its base URL, multicast if
    /// it announces only that. Returns whether the machine goes on.
    fn on_describe_answer(&mut self, resp: &Response, request: &RequestRef) -> bool {
        if !resp.is_success() {
            self.fail(status_failure(request, resp));
            return false;
        }
        let body = String::from_utf8_lossy(&resp.body);
        let presentation = match sdp::parse(&body) {
            Ok(p) => p,
            Err(e) => {
                self.fail(Failure::Malformed {
                    what: "SDP".into(),
                    detail: e.to_string(),
                });
                return false;
            }
        };
        if let Some(base) = resp
            .header("Content-Base")
            .or(resp.header("Content-Location"))
        {
            if base.contains("://") {
                self.base = rtsp::url::redact(base.trim());
            }
        }
        if self.transport == BackendTransport::Udp && presentation.announces_multicast() {
            // A multicast session (live555's "multicast" streams, a
            // GStreamer server with only udp-mcast): unicast would be
            // refused.
            self.transport = BackendTransport::Multicast;
        }
        self.presentation = Some(presentation.clone());
        self.state = State::AwaitingMedia;
        self.out
            .push_back(Output::Event(Event::Described(presentation)));
        true
    }

    /// The answer to the SETUP of track `i` (the Session header already
    /// noted). Returns whether the machine goes on (false: it failed or sent
    /// the SETUP again).
    fn on_setup_answer(
        &mut self,
        i: usize,
        resp: &Response,
        request: &RequestRef,
        now: Instant,
    ) -> bool {
        if resp.status == 461 && self.transport == BackendTransport::Udp {
            // Unicast refused: try multicast for this track (and the
            // next ones) before giving up UDP for TCP.
            self.transport = BackendTransport::Multicast;
            self.queue.push_front(Kind::Setup(i));
            self.pump(now);
            return false;
        }
        if resp.status == 461 && self.transport == BackendTransport::Multicast {
            self.fail(Failure::MulticastRefused(
                "461 Unsupported Transport".into(),
            ));
            return false;
        }
        if !resp.is_success() {
            self.fail(status_failure(request, resp));
            return false;
        }
        if self.session_id.is_none() {
            self.fail(Failure::Malformed {
                what: "SETUP response".into(),
                detail: "no Session header".into(),
            });
            return false;
        }
        let reply = resp
            .header("Transport")
            .and_then(|t| Transport::parse(t).ok());
        let reply = match reply {
            Some(r) => r,
            None => {
                // Some servers omit Transport in the answer: assume ours.
                self.assumed_transport(i)
            }
        };
        let reply = if reply.cast == Some(Cast::Multicast) && reply.lower == LowerTransport::Udp {
            match self.complete_multicast(i, reply) {
                Ok(r) => r,
                Err(why) => {
                    self.fail(Failure::MulticastRefused(why));
                    return false;
                }
            }
        } else if self.transport == BackendTransport::Multicast {
            self.fail(Failure::MulticastRefused(
                "a unicast answer to a multicast SETUP".into(),
            ));
            return false;
        } else {
            reply
        };
        if self.transport == BackendTransport::Tcp {
            let ch = reply
                .interleaved
                .map(|c| c.rtp)
                .unwrap_or((i * 2).min(254) as u8);
            if let Some(slot) = self.channels.get_mut(i) {
                *slot = Some(ch);
            }
        } else if reply.lower == LowerTransport::Tcp {
            self.fail(Failure::Malformed {
                what: "SETUP response".into(),
                detail: "TCP transport answered to a UDP request".into(),
            });
            return false;
        }
        if let Some(s) = self.set_up.get_mut(i) {
            *s = true;
        }
        self.out
            .push_back(Output::Event(Event::TrackSetUp { track: i, reply }));
        true
    }

    /// The first sequence number of each track, from the back end's RTP-Info.
    /// Entries are matched to tracks by URL (absolute, or relative to the base);
    /// if none matches but there is one entry per track, by order.
    fn announced_starts(&self, rtp_info: Option<&str>) -> Vec<Option<u16>> {
        let tracks = self.presentation.as_ref().map_or(0, |p| p.tracks.len());
        let Some(value) = rtp_info else {
            return vec![None; tracks];
        };
        let entries = rtsp::header::rtp_info::parse_list(value);
        let by_url: Vec<Option<u16>> = (0..tracks)
            .map(|i| {
                let url = self.track_url(i);
                entries
                    .iter()
                    .find(|e| {
                        let e_url = rtsp::url::redact(e.url.trim());
                        e_url == url
                            || resolve_control(&self.base, &e_url) == url
                            || (!e_url.is_empty() && url.ends_with(&format!("/{e_url}")))
                    })
                    .and_then(|e| e.seq)
            })
            .collect();
        if by_url.iter().all(Option::is_none) && entries.len() == tracks {
            entries.iter().map(|e| e.seq).collect()
        } else {
            by_url
        }
    }

    fn finish_teardown(&mut self) {
        self.state = State::Done;
        self.session_id = None;
        self.out.push_back(Output::Event(Event::Closed));
    }

    /// A multicast answer with its group and ports: what the answer says, else
    /// what the SDP announced for the track (`c=` group, `m=` port).
    fn complete_multicast(&self, i: usize, mut reply: Transport) -> Result<Transport, String> {
        let announced = self
            .presentation
            .as_ref()
            .and_then(|p| p.announced_group(i));
        let group = reply
            .destination
            .as_deref()
            .and_then(|d| d.trim().parse::<std::net::Ipv4Addr>().ok())
            .or(announced)
            .ok_or_else(|| "a multicast answer without an IPv4 group".to_string())?;
        if !group.is_multicast() {
            return Err(format!("{group} is not a multicast group"));
        }
        let sdp_port = self
            .presentation
            .as_ref()
            .and_then(|p| p.tracks.get(i))
            .map(|t| t.port)
            .filter(|p| *p != 0);
        let port = reply
            .port
            .or(reply.server_port)
            .or(sdp_port.map(|rtp| PortRange { rtp, rtcp: None }))
            .filter(|p| p.rtp != 0)
            .ok_or_else(|| "a multicast answer without a port".to_string())?;
        reply.destination = Some(group.to_string());
        reply.port = Some(PortRange {
            rtp: port.rtp,
            rtcp: Some(port.rtcp.unwrap_or(port.rtp.wrapping_add(1))),
        });
        Ok(reply)
    }

    fn assumed_transport(&self, i: usize) -> Transport {
        let mut t = Transport::rtp_avp(LowerTransport::Udp);
        match self.transport {
            BackendTransport::Multicast => t.cast = Some(Cast::Multicast),
            BackendTransport::Udp => {
                let p = self.udp_ports.get(i).copied().unwrap_or(0);
                t.client_port = Some(PortRange {
                    rtp: p,
                    rtcp: Some(p.wrapping_add(1)),
                });
            }
            BackendTransport::Tcp => {
                t.lower = LowerTransport::Tcp;
                let ch = (i * 2).min(254) as u8;
                t.interleaved = Some(ChannelRange {
                    rtp: ch,
                    rtcp: Some(ch + 1),
                });
            }
        }
        t
    }

    /// The back end's presentation as last described.
    pub fn presentation(&self) -> Option<&Presentation> {
        self.presentation.as_ref()
    }

    /// The base URL now in use (for logs).
    pub fn base_url(&self) -> &str {
        &self.base
    }
}

fn status_failure(request: &RequestRef, resp: &Response) -> Failure {
    Failure::Status {
        request: request.clone(),
        status: resp.status,
        reason: resp.reason.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use rtsp::Frame;

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=Session streamed with GStreamer\r\nt=0 0\r\na=control:*\r\na=range:npt=now-\r\n\
m=video 0 RTP/AVP 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:stream=0\r\n\
m=audio 0 RTP/AVP 97\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\na=control:stream=1\r\n";

    fn cfg(transport: BackendTransport) -> SessionConfig {
        SessionConfig {
            url: RtspUrl::parse("rtsp://127.0.0.1:31554/h264aac").unwrap(),
            credentials: None,
            transport,
            response_timeout: Duration::from_secs(5),
            udp_timeout: Duration::from_secs(4),
            max_gap: Some(Duration::from_secs(10)),
            linger: Duration::from_secs(1),
            user_agent: "test".into(),
        }
    }

    fn response(text: &str) -> Response {
        let mut buf = BytesMut::from(
            text.replace('\n', "\r\n")
                .replace("\r\r\n", "\r\n")
                .as_bytes(),
        );
        match rtsp::parse_frame(&mut buf, &rtsp::Limits::default()) {
            Ok(Some(Frame::Response(r))) => r,
            other => panic!("not a response: {other:?}", other = other.is_ok()),
        }
    }

    fn ok(cseq: u32, extra: &str) -> Response {
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!("{extra}\n")
        };
        response(&format!("RTSP/1.0 200 OK\nCSeq: {cseq}\n{extra}\n"))
    }

    fn describe_ok(cseq: u32) -> Response {
        let mut r = ok(
            cseq,
            "Content-Base: rtsp://127.0.0.1:31554/h264aac/\nContent-Type: application/sdp",
        );
        r.body = bytes::Bytes::from_static(SDP.as_bytes());
        r
    }

    /// Drains outputs: the requests sent and the events raised.
    fn drain(s: &mut BackendSession) -> (Vec<Request>, Vec<Event>) {
        let (mut reqs, mut evs) = (Vec::new(), Vec::new());
        while let Some(o) = s.poll_output() {
            match o {
                Output::Send(r) => reqs.push(r),
                Output::Event(e) => evs.push(e),
            }
        }
        (reqs, evs)
    }

    fn one_request(s: &mut BackendSession) -> Request {
        let (reqs, _) = drain(s);
        assert_eq!(reqs.len(), 1, "expected exactly one request, got {reqs:?}");
        reqs.into_iter().next().unwrap()
    }

    /// Connects and gets to Ready with the GStreamer-like SDP.
    fn described(transport: BackendTransport, t0: Instant) -> BackendSession {
        let mut s = BackendSession::new(cfg(transport));
        s.on_connected(t0);
        let opt = one_request(&mut s);
        assert_eq!(opt.method, Method::Options);
        assert_eq!(opt.uri, "rtsp://127.0.0.1:31554/h264aac");
        s.handle_response(
            &ok(
                opt.cseq().unwrap(),
                "Public: OPTIONS, DESCRIBE, GET_PARAMETER, PAUSE, PLAY, SETUP, TEARDOWN",
            ),
            t0,
        );
        let desc = one_request(&mut s);
        assert_eq!(desc.method, Method::Describe);
        assert_eq!(desc.header("Accept"), Some("application/sdp"));
        s.handle_response(&describe_ok(desc.cseq().unwrap()), t0);
        let (reqs, evs) = drain(&mut s);
        assert!(reqs.is_empty());
        assert!(matches!(&evs[..], [Event::Described(p)] if p.tracks.len() == 2));
        let ports = if transport == BackendTransport::Udp {
            vec![5000, 5002]
        } else {
            vec![]
        };
        s.media_ready(ports, t0);
        assert_eq!(drain(&mut s).0.len(), 0, "nothing is set up without demand");
        s
    }

    /// Drives SETUP x2 and PLAY; returns the session at Playing.
    fn playing(transport: BackendTransport, t0: Instant) -> BackendSession {
        let mut s = described(transport, t0);
        s.set_demand(true, t0);
        let setup0 = one_request(&mut s);
        assert_eq!(setup0.method, Method::Setup);
        assert_eq!(setup0.uri, "rtsp://127.0.0.1:31554/h264aac/stream=0");
        assert_eq!(setup0.header("Session"), None);
        match transport {
            BackendTransport::Udp => assert_eq!(
                setup0.header("Transport"),
                Some("RTP/AVP;unicast;client_port=5000-5001")
            ),
            BackendTransport::Tcp => assert_eq!(
                setup0.header("Transport"),
                Some("RTP/AVP/TCP;unicast;interleaved=0-1")
            ),
            BackendTransport::Multicast => {
                assert_eq!(setup0.header("Transport"), Some("RTP/AVP;multicast"))
            }
        }
        let t = if transport == BackendTransport::Udp {
            "Transport: RTP/AVP;unicast;client_port=5000-5001;server_port=49464-49465;ssrc=C6841965;mode=\"PLAY\""
        } else {
            "Transport: RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=C6841965;mode=\"PLAY\""
        };
        s.handle_response(
            &ok(
                setup0.cseq().unwrap(),
                &format!("{t}\nSession: eOPsLOC-c2f+SZ8M;timeout=60"),
            ),
            t0,
        );
        let (reqs, evs) = drain(&mut s);
        assert!(matches!(&evs[..], [Event::TrackSetUp { track: 0, .. }]));
        let setup1 = &reqs[0];
        assert_eq!(setup1.uri, "rtsp://127.0.0.1:31554/h264aac/stream=1");
        assert_eq!(setup1.header("Session"), Some("eOPsLOC-c2f+SZ8M"));
        let t1 = if transport == BackendTransport::Udp {
            "Transport: RTP/AVP;unicast;client_port=5002-5003;server_port=59828-59829"
        } else {
            "Transport: RTP/AVP/TCP;unicast;interleaved=2-3"
        };
        s.handle_response(
            &ok(
                setup1.cseq().unwrap(),
                &format!("{t1}\nSession: eOPsLOC-c2f+SZ8M"),
            ),
            t0,
        );
        let (reqs, _) = drain(&mut s);
        let play = &reqs[0];
        assert_eq!(play.method, Method::Play);
        assert_eq!(play.uri, "rtsp://127.0.0.1:31554/h264aac/");
        assert_eq!(play.header("Session"), Some("eOPsLOC-c2f+SZ8M"));
        assert_eq!(
            play.header("Range"),
            Some("npt=0.000-"),
            "the first PLAY asks from the start"
        );
        s.handle_response(
            &ok(
                play.cseq().unwrap(),
                "Session: eOPsLOC-c2f+SZ8M\nRange: npt=now-",
            ),
            t0,
        );
        let (_, evs) = drain(&mut s);
        assert_eq!(
            evs,
            vec![Event::Playing {
                starts: vec![None, None]
            }]
        );
        assert!(s.is_playing());
        s
    }

    #[test]
    fn describes_sets_up_and_plays_over_udp() {
        playing(BackendTransport::Udp, Instant::now());
    }

    #[test]
    fn interleaved_channels_follow_the_servers_answer() {
        let s = playing(BackendTransport::Tcp, Instant::now());
        assert_eq!(s.channel_track(0), Some((0, false)));
        assert_eq!(s.channel_track(1), Some((0, true)));
        assert_eq!(s.channel_track(2), Some((1, false)));
        assert_eq!(s.channel_track(3), Some((1, true)));
        assert_eq!(s.channel_track(4), None);
        assert_eq!(s.rtcp_channel(1), Some(3));
    }

    #[test]
    fn keepalive_uses_get_parameter_at_half_the_timeout() {
        let t0 = Instant::now();
        let mut s = playing(BackendTransport::Udp, t0);
        s.on_media(1, t0 + Duration::from_secs(1));
        assert!(s.poll_timeout().unwrap() <= t0 + Duration::from_secs(30));
        for sec in 1..30 {
            s.on_media(sec, t0 + Duration::from_secs(sec));
            s.handle_timeout(t0 + Duration::from_secs(sec));
            assert!(
                drain(&mut s).0.is_empty(),
                "no keep-alive before 30 s (at {sec})"
            );
        }
        s.on_media(30, t0 + Duration::from_secs(30));
        s.handle_timeout(t0 + Duration::from_secs(30));
        let ka = one_request(&mut s);
        assert_eq!(ka.method, Method::GetParameter);
        assert_eq!(ka.header("Session"), Some("eOPsLOC-c2f+SZ8M"));
    }

    #[test]
    fn keepalive_falls_back_to_options_without_get_parameter() {
        let t0 = Instant::now();
        let mut s = BackendSession::new(cfg(BackendTransport::Udp));
        s.on_connected(t0);
        let opt = one_request(&mut s);
        s.handle_response(
            &ok(
                opt.cseq().unwrap(),
                "Public: OPTIONS, DESCRIBE, SETUP, PLAY",
            ),
            t0,
        );
        let desc = one_request(&mut s);
        s.handle_response(&describe_ok(desc.cseq().unwrap()), t0);
        drain(&mut s);
        s.media_ready(vec![5000, 5002], t0);
        s.handle_timeout(t0 + Duration::from_secs(30));
        let ka = one_request(&mut s);
        assert_eq!(ka.method, Method::Options);
    }

    #[test]
    fn last_client_leaving_pauses_after_the_linger_and_a_new_one_resumes() {
        let t0 = Instant::now();
        let mut s = playing(BackendTransport::Udp, t0);
        s.on_media(5, t0);
        s.set_demand(false, t0);
        assert!(drain(&mut s).0.is_empty(), "no PAUSE before the linger");
        s.handle_timeout(t0 + Duration::from_millis(500));
        assert!(drain(&mut s).0.is_empty());
        s.handle_timeout(t0 + Duration::from_secs(1));
        let pause = one_request(&mut s);
        assert_eq!(pause.method, Method::Pause);
        s.handle_response(
            &ok(pause.cseq().unwrap(), "Session: eOPsLOC-c2f+SZ8M"),
            t0 + Duration::from_secs(1),
        );
        assert_eq!(drain(&mut s).1, vec![Event::Paused]);
        s.set_demand(true, t0 + Duration::from_secs(2));
        let play = one_request(&mut s);
        assert_eq!(play.method, Method::Play);
    }

    #[test]
    fn a_client_returning_within_the_linger_cancels_the_pause() {
        let t0 = Instant::now();
        let mut s = playing(BackendTransport::Udp, t0);
        s.on_media(5, t0);
        s.set_demand(false, t0);
        s.set_demand(true, t0 + Duration::from_millis(300));
        s.handle_timeout(t0 + Duration::from_secs(2));
        assert!(drain(&mut s).0.is_empty());
    }

    #[test]
    fn udp_refused_with_461_asks_for_tcp() {
        let t0 = Instant::now();
        let mut s = described(BackendTransport::Udp, t0);
        s.set_demand(true, t0);
        let setup = one_request(&mut s);
        s.handle_response(
            &response(&format!(
                "RTSP/1.0 461 Unsupported transport\nCSeq: {}\n\n",
                setup.cseq().unwrap()
            )),
            t0,
        );
        // Multicast is tried first (see a_461_to_unicast_leads_to_multicast_then_to_tcp).
        let multicast = one_request(&mut s);
        assert_eq!(multicast.header("Transport"), Some("RTP/AVP;multicast"));
        s.handle_response(
            &response(&format!(
                "RTSP/1.0 461 Unsupported transport\nCSeq: {}\n\n",
                multicast.cseq().unwrap()
            )),
            t0,
        );
        let (reqs, evs) = drain(&mut s);
        assert!(reqs.is_empty(), "no session, no TEARDOWN");
        assert_eq!(
            evs,
            vec![Event::Failed(Failure::MulticastRefused(
                "461 Unsupported Transport".into()
            ))]
        );
        assert!(Failure::UdpRefused.wants_tcp());
        assert!(Failure::MulticastJoin("x".into()).wants_tcp());
    }

    #[test]
    fn silent_udp_after_play_asks_for_tcp() {
        let t0 = Instant::now();
        let mut s = playing(BackendTransport::Udp, t0);
        s.handle_timeout(t0 + Duration::from_secs(3));
        assert!(drain(&mut s).1.is_empty());
        s.handle_timeout(t0 + Duration::from_secs(4));
        let (reqs, evs) = drain(&mut s);
        assert_eq!(
            reqs[0].method,
            Method::Teardown,
            "the dead session is torn down first"
        );
        assert_eq!(evs, vec![Event::Failed(Failure::UdpSilent(4))]);
    }

    #[test]
    fn media_stall_is_detected_after_the_gap() {
        let t0 = Instant::now();
        let mut s = playing(BackendTransport::Tcp, t0);
        s.on_media(10, t0 + Duration::from_secs(1));
        s.handle_timeout(t0 + Duration::from_secs(10));
        assert!(drain(&mut s).1.is_empty());
        s.handle_timeout(t0 + Duration::from_secs(11));
        let (_, evs) = drain(&mut s);
        assert_eq!(evs, vec![Event::Failed(Failure::Stalled(10))]);
    }

    #[test]
    fn an_unanswered_request_times_out() {
        let t0 = Instant::now();
        let mut s = BackendSession::new(cfg(BackendTransport::Udp));
        s.on_connected(t0);
        drain(&mut s);
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(5)));
        s.handle_timeout(t0 + Duration::from_secs(5));
        let (_, evs) = drain(&mut s);
        assert!(
            matches!(
                &evs[..],
                [Event::Failed(Failure::Timeout { request, secs: 5 })]
                    if request.method == Method::Options && request.cseq == 1
            ),
            "{evs:?}"
        );
    }

    #[test]
    fn digest_challenge_is_answered_once_then_fails() {
        let t0 = Instant::now();
        let mut c = cfg(BackendTransport::Udp);
        c.credentials = Some(Credentials {
            username: "user".into(),
            password: "pass".into(),
        });
        let mut s = BackendSession::new(c);
        s.on_connected(t0);
        let opt = one_request(&mut s);
        s.handle_response(&ok(opt.cseq().unwrap(), "Public: OPTIONS, DESCRIBE"), t0);
        let desc = one_request(&mut s);
        assert_eq!(
            desc.header("Authorization"),
            None,
            "no credentials before a challenge"
        );
        let challenge = format!(
            "RTSP/1.0 401 Unauthorized\nCSeq: {}\nWWW-Authenticate: Digest realm=\"cam\", nonce=\"abc123\"\n\n",
            desc.cseq().unwrap()
        );
        s.handle_response(&response(&challenge), t0);
        let retry = one_request(&mut s);
        assert_eq!(retry.method, Method::Describe);
        assert!(retry.cseq().unwrap() > desc.cseq().unwrap());
        let auth = retry.header("Authorization").unwrap();
        assert!(auth.starts_with("Digest "), "{auth}");
        assert!(
            auth.contains("username=\"user\"")
                && auth.contains("uri=\"rtsp://127.0.0.1:31554/h264aac\""),
            "{auth}"
        );
        assert!(!auth.contains("pass"));
        let again = challenge.replace(
            &format!("CSeq: {}", desc.cseq().unwrap()),
            &format!("CSeq: {}", retry.cseq().unwrap()),
        );
        s.handle_response(&response(&again), t0);
        let (_, evs) = drain(&mut s);
        assert!(
            matches!(
                &evs[..],
                [Event::Failed(Failure::Auth { request })]
                    if request.method == Method::Describe && Some(request.cseq) == retry.cseq()
            ),
            "{evs:?}"
        );
    }

    #[test]
    fn redirect_is_reported() {
        let t0 = Instant::now();
        let mut s = BackendSession::new(cfg(BackendTransport::Udp));
        s.on_connected(t0);
        let opt = one_request(&mut s);
        s.handle_response(&ok(opt.cseq().unwrap(), ""), t0);
        let desc = one_request(&mut s);
        let r = format!(
            "RTSP/1.0 302 Moved Temporarily\nCSeq: {}\nLocation: rtsp://10.0.0.9/other\n\n",
            desc.cseq().unwrap()
        );
        s.handle_response(&response(&r), t0);
        assert_eq!(
            drain(&mut s).1,
            vec![Event::Redirect("rtsp://10.0.0.9/other".into())]
        );
    }

    #[test]
    fn describe_error_fails_with_the_status() {
        let t0 = Instant::now();
        let mut s = BackendSession::new(cfg(BackendTransport::Udp));
        s.on_connected(t0);
        let opt = one_request(&mut s);
        s.handle_response(&ok(opt.cseq().unwrap(), ""), t0);
        let desc = one_request(&mut s);
        s.handle_response(
            &response(&format!(
                "RTSP/1.0 404 Not Found\nCSeq: {}\n\n",
                desc.cseq().unwrap()
            )),
            t0,
        );
        let (_, evs) = drain(&mut s);
        assert!(matches!(
            &evs[..],
            [Event::Failed(Failure::Status { status: 404, .. })]
        ));
    }

    #[test]
    fn teardown_on_shutdown() {
        let t0 = Instant::now();
        let mut s = playing(BackendTransport::Udp, t0);
        s.teardown(t0);
        let td = one_request(&mut s);
        assert_eq!(td.method, Method::Teardown);
        assert_eq!(td.header("Session"), Some("eOPsLOC-c2f+SZ8M"));
        s.handle_response(&ok(td.cseq().unwrap(), ""), t0);
        assert_eq!(drain(&mut s).1, vec![Event::Closed]);
    }

    #[test]
    fn a_stale_answer_is_ignored() {
        let t0 = Instant::now();
        let mut s = BackendSession::new(cfg(BackendTransport::Udp));
        s.on_connected(t0);
        let opt = one_request(&mut s);
        s.handle_response(&ok(opt.cseq().unwrap() + 40, ""), t0);
        assert!(drain(&mut s).0.is_empty());
        s.handle_response(&ok(opt.cseq().unwrap(), ""), t0);
        assert_eq!(one_request(&mut s).method, Method::Describe);
    }

    #[test]
    fn back_end_requests_get_answers() {
        let s = BackendSession::new(cfg(BackendTransport::Udp));
        let req = Request::new(Method::GetParameter, "rtsp://x/").with_header("CSeq", "7");
        let resp = s.handle_request(&req);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("CSeq"), Some("7"));
        let req = Request::new(Method::Announce, "rtsp://x/").with_header("CSeq", "8");
        assert_eq!(s.handle_request(&req).status, 501);
    }

    /// Plays, pauses after the linger and answers the PAUSE; returns the session
    /// at Paused and the time.
    fn paused(transport: BackendTransport, t0: Instant) -> (BackendSession, Instant) {
        let mut s = playing(transport, t0);
        s.on_media(5, t0);
        s.set_demand(false, t0);
        let at = t0 + Duration::from_secs(1);
        s.handle_timeout(at);
        let pause = one_request(&mut s);
        assert_eq!(pause.method, Method::Pause);
        s.handle_response(&ok(pause.cseq().unwrap(), "Session: eOPsLOC-c2f+SZ8M"), at);
        assert_eq!(drain(&mut s).1, vec![Event::Paused]);
        (s, at)
    }

    #[test]
    fn a_resume_play_carries_no_range_and_announces_itself() {
        let t0 = Instant::now();
        let (mut s, at) = paused(BackendTransport::Udp, t0);
        s.set_demand(true, at + Duration::from_secs(5));
        let (reqs, evs) = drain(&mut s);
        assert_eq!(
            evs,
            vec![Event::Resuming],
            "the relay is told before the PLAY goes out"
        );
        assert_eq!(reqs.len(), 1);
        let play = &reqs[0];
        assert_eq!(play.method, Method::Play);
        assert_eq!(play.header("Session"), Some("eOPsLOC-c2f+SZ8M"));
        assert_eq!(play.header("Range"), None, "a resume is no seek");
        s.handle_response(
            &ok(
                play.cseq().unwrap(),
                "Session: eOPsLOC-c2f+SZ8M\nRTP-Info: url=rtsp://127.0.0.1:31554/h264aac/stream=0;seq=5011;rtptime=17,url=rtsp://127.0.0.1:31554/h264aac/stream=1;seq=77;rtptime=9",
            ),
            at + Duration::from_secs(5),
        );
        assert_eq!(
            drain(&mut s).1,
            vec![Event::Playing {
                starts: vec![Some(5011), Some(77)]
            }]
        );
        assert!(s.is_playing());
    }

    #[test]
    fn a_failed_resume_reconnects_at_once() {
        let t0 = Instant::now();
        let (mut s, at) = paused(BackendTransport::Tcp, t0);
        s.set_demand(true, at);
        let play = one_request(&mut s);
        s.handle_response(
            &response(&format!(
                "RTSP/1.0 503 Service Unavailable\nCSeq: {}\n\n",
                play.cseq().unwrap()
            )),
            at,
        );
        let (reqs, evs) = drain(&mut s);
        assert_eq!(reqs[0].method, Method::Teardown);
        let failure = Failure::Resume(Box::new(Failure::Status {
            request: RequestRef::new(Method::Play, play.cseq().unwrap(), &play.uri),
            status: 503,
            reason: "Service Unavailable".into(),
        }));
        assert_eq!(evs, vec![Event::Failed(failure.clone())]);
        assert!(failure.reconnect_at_once());
        assert!(!failure.wants_tcp());
        assert!(!Failure::Stalled(10).reconnect_at_once());
    }

    #[test]
    fn an_unanswered_resume_gives_up_after_the_resume_timeout() {
        let t0 = Instant::now();
        let (mut s, at) = paused(BackendTransport::Udp, t0);
        s.set_demand(true, at);
        let (reqs, _) = drain(&mut s);
        assert_eq!(reqs[0].method, Method::Play);
        let play = RequestRef::new(Method::Play, reqs[0].cseq().unwrap(), &reqs[0].uri);
        assert_eq!(s.poll_timeout(), Some(at + RESUME_TIMEOUT));
        s.handle_timeout(at + RESUME_TIMEOUT - Duration::from_millis(1));
        assert!(drain(&mut s).1.is_empty());
        s.handle_timeout(at + RESUME_TIMEOUT);
        assert_eq!(
            drain(&mut s).1,
            vec![Event::Failed(Failure::Resume(Box::new(Failure::Timeout {
                request: play,
                secs: 3
            })))]
        );
    }

    #[test]
    fn rtp_info_is_matched_to_tracks_by_url_or_by_order() {
        let t0 = Instant::now();
        let s = playing(BackendTransport::Tcp, t0);
        let cases: &[(&str, Vec<Option<u16>>)] = &[
            // Reversed order, absolute URLs.
            (
                "url=rtsp://127.0.0.1:31554/h264aac/stream=1;seq=2;rtptime=0, url=rtsp://127.0.0.1:31554/h264aac/stream=0;seq=1",
                vec![Some(1), Some(2)],
            ),
            // Relative controls, one track only.
            ("url=stream=1;seq=300", vec![None, Some(300)]),
            // URLs that match nothing (a camera that names its tracks otherwise),
            // one entry per track: taken in order.
            (
                "url=rtsp://10.0.0.1/ch1/trackID=1;seq=10,url=rtsp://10.0.0.1/ch1/trackID=2;seq=20",
                vec![Some(10), Some(20)],
            ),
            // Without seq, or nothing usable.
            ("url=rtsp://127.0.0.1:31554/h264aac/stream=0;rtptime=5", vec![None, None]),
            ("garbage", vec![None, None]),
        ];
        for (value, expected) in cases {
            assert_eq!(&s.announced_starts(Some(value)), expected, "{value}");
        }
        assert_eq!(s.announced_starts(None), vec![None, None]);
    }

    /// The machine never asks to be woken at a time it has already been woken for:
    /// after `handle_timeout(now)`, `poll_timeout()` is later than `now` or none.
    /// Checked in every state, over a minute and a half of time in quarter seconds,
    /// with and without media arriving.
    #[test]
    fn no_timeout_is_ever_in_the_past() {
        fn check(label: &str, mut s: BackendSession, t0: Instant, media: bool) {
            let mut count = 0;
            for step in 0..360u64 {
                let now = t0 + Duration::from_millis(250 * step);
                if media && step % 2 == 0 {
                    count += 1;
                    s.on_media(count, now);
                }
                s.handle_timeout(now);
                let _ = drain(&mut s);
                if let Some(next) = s.poll_timeout() {
                    assert!(
                        next > now,
                        "{label}: woken at {step} for a deadline {:?} in the past",
                        now - next
                    );
                }
            }
        }
        let t0 = Instant::now();
        for transport in [BackendTransport::Udp, BackendTransport::Tcp] {
            for media in [false, true] {
                let label = |state: &str| format!("{state} {transport:?} media={media}");
                check(
                    &label("idle"),
                    BackendSession::new(cfg(transport)),
                    t0,
                    media,
                );
                let mut describing = BackendSession::new(cfg(transport));
                describing.on_connected(t0);
                check(&label("describing"), describing, t0, media);
                check(&label("ready"), described(transport, t0), t0, media);
                let mut setting_up = described(transport, t0);
                setting_up.set_demand(true, t0);
                check(&label("setting up"), setting_up, t0, media);
                check(&label("playing"), playing(transport, t0), t0, media);
                let mut lingering = playing(transport, t0);
                lingering.set_demand(false, t0);
                check(&label("lingering"), lingering, t0, media);
                let mut pausing = playing(transport, t0);
                pausing.set_demand(false, t0);
                pausing.handle_timeout(t0 + Duration::from_secs(1));
                check(
                    &label("pausing"),
                    pausing,
                    t0 + Duration::from_secs(1),
                    media,
                );
                let (p, at) = paused(transport, t0);
                check(&label("paused"), p, at, media);
                let (mut resuming, at) = paused(transport, t0);
                resuming.set_demand(true, at);
                check(&label("resuming"), resuming, at, media);
                let mut tearing_down = playing(transport, t0);
                tearing_down.teardown(t0);
                check(&label("tearing down"), tearing_down, t0, media);
                // Without -D, and with a keep-alive interval shorter than the
                // response timeout (a back end announcing timeout=4).
                let mut c = cfg(transport);
                c.max_gap = None;
                c.response_timeout = Duration::from_secs(10);
                let mut s = BackendSession::new(c);
                s.on_connected(t0);
                let opt = one_request(&mut s);
                s.handle_response(&ok(opt.cseq().unwrap(), "Session: x;timeout=4"), t0);
                check(&label("short keep-alive"), s, t0, media);
            }
        }
    }

    /// A back end that stops sending while playing is declared stalled `-D` after its
    /// last packet, however late the driver reports that packet's arrival.
    #[test]
    fn stall_is_timed_from_the_last_packet() {
        let t0 = Instant::now();
        let mut s = playing(BackendTransport::Tcp, t0);
        // Media until 2.3 s, reported at 5 s (the receiver-report tick).
        s.on_media(100, t0 + Duration::from_millis(2300));
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_millis(12_300)));
        s.handle_timeout(t0 + Duration::from_millis(12_299));
        assert!(drain(&mut s).1.is_empty());
        s.handle_timeout(t0 + Duration::from_millis(12_300));
        assert_eq!(drain(&mut s).1, vec![Event::Failed(Failure::Stalled(10))]);
    }

    /// A real camera's recorded answer (tests/data/cameras, from retina), its
    /// CSeq set to `cseq` so that it answers our request.
    fn camera(file: &str, cseq: u32) -> Response {
        let path = format!(
            "{}/../../tests/data/cameras/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let text: String = text
            .split_inclusive('\n')
            .map(|l| {
                if l.to_ascii_lowercase().starts_with("cseq:") {
                    format!("CSeq: {cseq}\r\n")
                } else {
                    l.to_string()
                }
            })
            .collect();
        let mut buf = BytesMut::from(text.as_bytes());
        match rtsp::parse_frame(&mut buf, &rtsp::Limits::default()) {
            Ok(Some(Frame::Response(r))) => r,
            _ => panic!("{file} is not a response"),
        }
    }

    /// Drives a session through a camera's recorded DESCRIBE/SETUP.../PLAY.
    fn camera_session(
        transport: BackendTransport,
        describe: &str,
        setups: &[&str],
        play: &str,
    ) -> (BackendSession, Vec<Request>) {
        let t0 = Instant::now();
        let mut s = BackendSession::new(cfg(transport));
        s.on_connected(t0);
        let opt = one_request(&mut s);
        s.handle_response(
            &ok(
                opt.cseq().unwrap(),
                "Public: OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER",
            ),
            t0,
        );
        let desc = one_request(&mut s);
        s.handle_response(&camera(describe, desc.cseq().unwrap()), t0);
        let (_, evs) = drain(&mut s);
        let tracks = match &evs[..] {
            [Event::Described(p)] => p.tracks.len(),
            other => panic!("{describe}: {other:?}"),
        };
        assert_eq!(tracks, setups.len(), "{describe}");
        let ports = (0..tracks as u16).map(|i| 5000 + 2 * i).collect();
        s.media_ready(
            if transport == BackendTransport::Udp {
                ports
            } else {
                vec![]
            },
            t0,
        );
        s.set_demand(true, t0);
        let mut sent = Vec::new();
        for file in setups.iter().chain(std::iter::once(&play)) {
            let req = one_request(&mut s);
            s.handle_response(&camera(file, req.cseq().unwrap()), t0);
            sent.push(req);
        }
        assert!(s.is_playing(), "{play}");
        (s, sent)
    }

    fn status(cseq: u32, code: u16, reason: &str) -> Response {
        response(&format!("RTSP/1.0 {code} {reason}\nCSeq: {cseq}\n\n"))
    }

    /// A back end that only offers multicast (GStreamer with udp-mcast only):
    /// 461 to the unicast SETUP, then the same track is set up multicast, and
    /// the next one too; a 461 to multicast as well ends the session with a
    /// failure that makes the driver use TCP.
    #[test]
    fn a_461_to_unicast_leads_to_multicast_then_to_tcp() {
        let t0 = Instant::now();
        let mut s = described(BackendTransport::Udp, t0);
        s.set_demand(true, t0);
        let unicast = one_request(&mut s);
        assert_eq!(
            unicast.header("Transport"),
            Some("RTP/AVP;unicast;client_port=5000-5001")
        );
        s.handle_response(
            &status(unicast.cseq().unwrap(), 461, "Unsupported transport"),
            t0,
        );
        let (reqs, evs) = drain(&mut s);
        assert!(evs.is_empty(), "{evs:?}");
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].uri, "rtsp://127.0.0.1:31554/h264aac/stream=0");
        assert_eq!(reqs[0].header("Transport"), Some("RTP/AVP;multicast"));
        s.handle_response(
            &ok(
                reqs[0].cseq().unwrap(),
                "Session: mc;timeout=60\nTransport: RTP/AVP;multicast;destination=239.255.1.1;ttl=1;port=5000-5001;mode=\"PLAY\"",
            ),
            t0,
        );
        let (reqs, evs) = drain(&mut s);
        match &evs[..] {
            [Event::TrackSetUp { track: 0, reply }] => {
                assert_eq!(reply.cast, Some(Cast::Multicast));
                assert_eq!(reply.destination.as_deref(), Some("239.255.1.1"));
                assert_eq!(
                    reply.port,
                    Some(PortRange {
                        rtp: 5000,
                        rtcp: Some(5001)
                    })
                );
                assert_eq!(reply.ttl, Some(1));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(*s.transport(), BackendTransport::Multicast);
        assert_eq!(reqs[0].uri, "rtsp://127.0.0.1:31554/h264aac/stream=1");
        assert_eq!(
            reqs[0].header("Transport"),
            Some("RTP/AVP;multicast"),
            "no unicast try again"
        );
        assert_eq!(reqs[0].header("Session"), Some("mc"));
        s.handle_response(
            &status(reqs[0].cseq().unwrap(), 461, "Unsupported transport"),
            t0,
        );
        let (reqs, evs) = drain(&mut s);
        assert_eq!(reqs[0].method, Method::Teardown);
        match &evs[..] {
            [Event::Failed(f)] => assert!(f.wants_tcp(), "{f}"),
            other => panic!("{other:?}"),
        }
    }

    /// An SDP that announces a group (`c=IN IP4 <group>/ttl`) is set up
    /// multicast from the start; an answer without destination takes the SDP's
    /// group. The UDP watchdog counts multicast packets like any others.
    #[test]
    fn an_sdp_announcing_multicast_is_set_up_multicast() {
        let t0 = Instant::now();
        let mut s = BackendSession::new(cfg(BackendTransport::Udp));
        s.on_connected(t0);
        let opt = one_request(&mut s);
        s.handle_response(&ok(opt.cseq().unwrap(), ""), t0);
        let desc = one_request(&mut s);
        let mut r = ok(
            desc.cseq().unwrap(),
            "Content-Base: rtsp://127.0.0.1:31554/h264aac/",
        );
        r.body = bytes::Bytes::from(SDP.replace("c=IN IP4 0.0.0.0", "c=IN IP4 239.255.1.1/1"));
        s.handle_response(&r, t0);
        let _ = drain(&mut s);
        assert_eq!(*s.transport(), BackendTransport::Multicast);
        s.media_ready(vec![5000, 5002], t0);
        s.set_demand(true, t0);
        for (i, port) in [(0usize, 5000u16), (1, 5002)] {
            let setup = one_request(&mut s);
            assert_eq!(setup.header("Transport"), Some("RTP/AVP;multicast"));
            s.handle_response(
                &ok(
                    setup.cseq().unwrap(),
                    &format!(
                        "Session: mc\nTransport: RTP/AVP;multicast;port={port}-{}",
                        port + 1
                    ),
                ),
                t0,
            );
            let (reqs, evs) = drain(&mut s);
            match &evs[..] {
                [Event::TrackSetUp { track, reply }] => {
                    assert_eq!(*track, i);
                    assert_eq!(reply.destination.as_deref(), Some("239.255.1.1"));
                    assert_eq!(reply.port.map(|p| p.rtp), Some(port));
                }
                other => panic!("{other:?}"),
            }
            if i == 1 {
                assert_eq!(reqs[0].method, Method::Play);
                s.handle_response(&ok(reqs[0].cseq().unwrap(), "Session: mc"), t0);
            } else {
                s.out.extend(reqs.into_iter().map(Output::Send));
            }
        }
        assert!(s.is_playing());
        let _ = drain(&mut s);
        // Multicast media keeps the watchdog quiet...
        s.on_media(10, t0 + Duration::from_secs(3));
        s.handle_timeout(t0 + Duration::from_secs(5));
        assert!(drain(&mut s).1.is_empty());
        // ...and none at all after PLAY switches to TCP, as with unicast UDP.
        let mut silent = s;
        silent.playing_since = Some(t0 + Duration::from_secs(6));
        silent.handle_timeout(t0 + Duration::from_secs(10));
        match &drain(&mut silent).1[..] {
            [Event::Failed(f)] => assert!(f.wants_tcp()),
            other => panic!("{other:?}"),
        }
    }

    /// A unicast answer to a multicast SETUP cannot be received: TCP.
    #[test]
    fn a_unicast_answer_to_a_multicast_setup_fails_over_to_tcp() {
        let t0 = Instant::now();
        let mut s = described(BackendTransport::Multicast, t0);
        s.set_demand(true, t0);
        let setup = one_request(&mut s);
        assert_eq!(setup.header("Transport"), Some("RTP/AVP;multicast"));
        s.handle_response(
            &ok(
                setup.cseq().unwrap(),
                "Session: x\nTransport: RTP/AVP;unicast;server_port=6970-6971",
            ),
            t0,
        );
        match &drain(&mut s).1[..] {
            [Event::Failed(f @ Failure::MulticastRefused(_))] => assert!(f.wants_tcp()),
            other => panic!("{other:?}"),
        }
    }

    /// H264DVR answers each SETUP with another session id, and PLAY with the
    /// first: the first is the session's, for every request after it.
    #[test]
    fn a_recorder_that_renumbers_its_session_keeps_the_first_id() {
        let (mut s, sent) = camera_session(
            BackendTransport::Udp,
            "h264dvr_describe.txt",
            &["h264dvr_setup_video.txt", "h264dvr_setup_audio.txt"],
            "h264dvr_play.txt",
        );
        assert_eq!(sent[1].header("Session"), Some("231970"), "second SETUP");
        assert_eq!(sent[2].header("Session"), Some("231970"), "PLAY");
        s.teardown(Instant::now());
        assert_eq!(one_request(&mut s).header("Session"), Some("231970"));
    }

    /// GW Security announces timeout=60 at SETUP and 120 at PLAY: keep-alives
    /// follow the smaller one.
    #[test]
    fn the_smallest_session_timeout_announced_wins() {
        let (s, _) = camera_session(
            BackendTransport::Tcp,
            "gw_main_describe.txt",
            &["gw_main_setup_video.txt", "gw_main_setup_audio.txt"],
            "gw_main_play.txt",
        );
        assert_eq!(s.session_timeout, Duration::from_secs(60));
        assert_eq!(s.keepalive_interval(), Duration::from_secs(30));
    }
}
