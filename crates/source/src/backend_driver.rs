//! The tokio side of a back-end source: connects, runs the [`BackendSession`]
//! machine over the connection, receives media (UDP sockets or interleaved) into
//! the relay, sends receiver reports, and reconnects with back-off.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rand::Rng;
use rtsp::auth::Credentials;
use rtsp::header::transport::{Cast, Transport};
use rtsp::url::RtspUrl;
use rtsp::{Frame, Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::backoff::{Backoff, STABLE_AFTER};
use super::channel::ChannelReader;
use super::connector::{ChannelWriter, Connector};
use super::failure::{Failure, IoCause};
use super::rtsp_client::{BackendSession, Event, Output, SessionConfig, MAX_REDIRECTS};
use super::transport::BackendTransport;
use net::log_text;
use relay::{PresentationChange, Stream};
use sdp::Presentation;
use tasks::Tasks;

/// On demand: a back-end connection opened for a client's DESCRIBE stays open at
/// least this long (or the linger, if longer) for the client to SETUP and PLAY.
const ON_DEMAND_FIRST_PLAY_WAIT: Duration = Duration::from_secs(10);
/// Receiver reports to the back end go out this often.
const RR_INTERVAL: Duration = Duration::from_secs(5);
/// Shortest time between two timeout checks of the session machine: whatever the
/// machine asks for, the driver never spins on a deadline that has passed.
const MIN_TIMER_STEP: Duration = Duration::from_millis(50);

/// Media arrivals of one back-end connection, shared by its receive paths and read
/// by the session machine's watchdogs: a count and the latest arrival time.
struct MediaActivity {
    base: Instant,
    count: AtomicU64,
    /// Nanoseconds after `base` of the latest arrival.
    last_nanos: AtomicU64,
}

impl MediaActivity {
    fn new() -> MediaActivity {
        MediaActivity {
            base: Instant::now(),
            count: AtomicU64::new(0),
            last_nanos: AtomicU64::new(0),
        }
    }

    /// `packets` arrived at `now`.
    fn record(&self, packets: u64, now: Instant) {
        let nanos = now.saturating_duration_since(self.base).as_nanos();
        self.last_nanos
            .fetch_max(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.count.fetch_add(packets, Ordering::Relaxed);
    }

    /// Tells the machine what arrived so far.
    fn report(&self, machine: &mut BackendSession) {
        let count = self.count.load(Ordering::Relaxed);
        if count > 0 {
            let last = self.base + Duration::from_nanos(self.last_nanos.load(Ordering::Relaxed));
            machine.on_media(count, last);
        }
    }
}
/// Receive buffer of back-end media sockets (a keyframe burst must fit).
const RECV_BUFFER: usize = 4 * 1024 * 1024;
/// Most datagrams read from a back-end socket before they are relayed.
const RECV_BATCH: usize = 64;

/// Everything a source needs besides its stream.
#[derive(Clone, Debug)]
pub struct SourceSettings {
    /// The URL as given (may hold credentials; never logged as is).
    pub url: String,
    /// `-u`: used when the URL has none.
    pub credentials: Option<Credentials>,
    pub transport: BackendTransport,
    /// Switch from UDP to TCP when UDP does not work (false: `transport = "udp"`).
    pub tcp_fallback: bool,
    /// No back-end connection while nobody wants the stream (see
    /// `Stream::want`): connect on the first DESCRIBE, close `linger` after the
    /// last client left.
    pub on_demand: bool,
    pub response_timeout: Duration,
    pub udp_timeout: Duration,
    pub max_gap: Option<Duration>,
    pub linger: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// How the back end is reached (TCP, or a connection handed over).
    pub connector: Connector,
}

/// A running source; dropping it does not stop it, [`SourceHandle::shutdown`] does.
pub struct SourceHandle {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Option<()>>,
}

impl SourceHandle {
    /// Asks for a graceful stop (TEARDOWN) and waits for it, at most `within`.
    pub async fn shutdown(self, within: Duration) {
        let _ = self.shutdown.send(true);
        let mut task = self.task;
        if tokio::time::timeout(within, &mut task).await.is_err() {
            task.abort();
        }
    }

    /// The source stopped by itself (it gave up: a handed-over connection that
    /// may not be redialled is gone).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// A duration in seconds, to a tenth, for log fields.
fn delay_secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

/// Starts the source task of `stream`, owned by `tasks` (cancelling them drops
/// it; [`SourceHandle::shutdown`] stops it gracefully).
pub fn spawn(stream: Arc<Stream>, settings: SourceSettings, tasks: &Tasks) -> SourceHandle {
    let (tx, rx) = watch::channel(false);
    let task = tasks.spawn(run(stream, settings, rx));
    SourceHandle { shutdown: tx, task }
}

enum Outcome {
    Shutdown,
    /// An on-demand source closed its back end for want of clients.
    Idle,
    Redirect(String),
    Failed(Failure),
}

async fn run(stream: Arc<Stream>, settings: SourceSettings, mut shutdown: watch::Receiver<bool>) {
    let original = match RtspUrl::parse(&settings.url) {
        Ok(u) => u,
        Err(e) => {
            // Config validation should have caught this; never panic on it.
            warn!(stream = %stream.name(), "invalid back-end URL {}: {e}", rtsp::url::redact(&settings.url));
            return;
        }
    };
    let credentials = original
        .credentials
        .clone()
        .or(settings.credentials.clone());
    let mut url = original.clone();
    let mut transport = settings.transport;
    let mut backoff = Backoff::new(settings.reconnect_min, settings.reconnect_max);
    let mut redirects = 0u32;
    let mut down_since: Option<Instant> = None;
    // The first attempt runs over a connection the server handed over.
    let mut on_handover = settings.connector.has_handover();
    let mut wanted = stream.watch_wanted();
    let mut demand = stream.watch_demand();
    let mut seen_want = 0u64;
    loop {
        if *shutdown.borrow() {
            return;
        }
        if settings.on_demand
            && !wait_for_a_client(
                &stream,
                &mut wanted,
                &mut demand,
                &mut seen_want,
                &mut shutdown,
            )
            .await
        {
            return;
        }

        let started = Instant::now();
        let cfg = SessionConfig {
            url: url.clone(),
            credentials: credentials_for(&url, &original, credentials.as_ref()),
            transport: transport_for(&url, transport),
            response_timeout: settings.response_timeout,
            udp_timeout: settings.udp_timeout,
            max_gap: settings.max_gap,
            linger: settings.linger,
            user_agent: net::SOFTWARE.to_owned(),
        };
        let outcome = run_connection(
            &stream,
            &settings.connector,
            cfg,
            &mut shutdown,
            &mut down_since,
            settings.on_demand,
        )
        .await;
        if matches!(outcome, Outcome::Idle) {
            stream.source_closed_on_demand();
        } else {
            stream.source_reset();
        }
        if !matches!(outcome, Outcome::Redirect(_)) && stream.presentation().is_none() {
            stream.mark_unreachable();
        }
        if on_handover && !settings.connector.has_handover() {
            on_handover = false;
            if matches!(outcome, Outcome::Shutdown) {
                return;
            }
            if settings.connector.handover_only {
                warn!(stream = %stream.name(), "the connection the back end registered on is gone; {url} is not dialled (its host is not in --register-allow), so the stream is removed");
                return;
            }
            warn!(stream = %stream.name(), "the connection the back end registered on is gone; dialling {url} instead from now on");
        }
        let failure = match outcome {
            Outcome::Shutdown => return,
            Outcome::Idle => {
                // Requests made while connected (the SETUPs) were served by it.
                seen_want = *wanted.borrow_and_update();
                info!(stream = %stream.name(), "on demand: no client for {:.1} s; back end closed", settings.linger.as_secs_f64());
                down_since = None;
                continue;
            }
            Outcome::Redirect(to) => {
                redirects += 1;
                match redirect_target(&to, &url, redirects) {
                    Ok(u) => {
                        info!(stream = %stream.name(), "back end redirects to {u}");
                        if !same_host(&u, &original) && credentials.is_some() {
                            info!(stream = %stream.name(), "{} is another host than {}: the credentials given for {} are not sent there", u.host, original.host, original.host);
                        }
                        url = u;
                        continue;
                    }
                    Err(f) => f,
                }
            }
            Outcome::Failed(f) => f,
        };
        redirects = 0;
        url = original.clone();
        if failure.wants_tcp() && transport != BackendTransport::Tcp && settings.tcp_fallback {
            warn!(stream = %stream.name(), "{failure}; switching the back end to RTP over TCP");
            transport = BackendTransport::Tcp;
            continue;
        }
        // (Cannot loop: such a failure needs a session that played, paused for
        // want of clients, and was asked to resume.)
        if failure.reconnect_at_once() {
            warn!(stream = %stream.name(), "back end {url}: {failure}; reconnecting now");
            continue;
        }
        if started.elapsed() >= STABLE_AFTER {
            backoff.reset();
        }
        if settings.on_demand && stream.players() == 0 {
            // Nobody waits: the next client's request tries again.
            warn!(stream = %stream.name(), "back end {url}: {failure}; on demand, the next client tries again");
            continue;
        }
        let delay = backoff.next_delay(rand::thread_rng().gen::<f64>());
        if down_since.is_none() {
            down_since = Some(Instant::now());
            warn!(
                stream = %stream.name(),
                state = %"lost",
                backend = %url,
                retry_in_s = delay_secs(delay),
                reason = %log_text::escape(&failure.to_string()),
                "path state changed"
            );
        } else {
            info!(stream = %stream.name(), "back end {url}: {failure}; retry in {:.1} s", delay_secs(delay));
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// On demand: idles, with no back-end connection, until a client asks for the
/// stream (a DESCRIBE or SETUP calls `Stream::want`) or plays it. False when
/// the source is shut down meanwhile.
async fn wait_for_a_client(
    stream: &Stream,
    wanted: &mut watch::Receiver<u64>,
    demand: &mut watch::Receiver<usize>,
    seen_want: &mut u64,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let mut logged = false;
    loop {
        let w = *wanted.borrow_and_update();
        if w != *seen_want || *demand.borrow_and_update() > 0 {
            *seen_want = w;
            return true;
        }
        if !logged {
            debug!(stream = %stream.name(), "on demand: idle until a client asks");
            logged = true;
        }
        tokio::select! {
            _ = wanted.changed() => {}
            _ = demand.changed() => {}
            _ = shutdown.changed() => return false,
        }
    }
}

/// Where the `redirects`-th redirect in a row, to `to`, leads from `url`, or why
/// it is not followed.
fn redirect_target(to: &str, url: &RtspUrl, redirects: u32) -> Result<RtspUrl, Failure> {
    match RtspUrl::parse(to) {
        Ok(u) if !redirect_keeps_tls(url, &u) => Err(Failure::Malformed {
            what: "redirect".into(),
            detail: format!("to {u}: a redirect from rtsps:// must stay on rtsps://"),
        }),
        Ok(u) if redirects <= MAX_REDIRECTS => Ok(u),
        Ok(_) => Err(Failure::TooManyRedirects),
        Err(e) => Err(Failure::Malformed {
            what: "redirect Location".into(),
            detail: e.to_string(),
        }),
    }
}

/// The media transport for `url`: an rtsps:// back end's media comes inside its
/// TLS connection, never in clear over UDP.
fn transport_for(url: &RtspUrl, configured: BackendTransport) -> BackendTransport {
    if url.scheme == "rtsps" {
        BackendTransport::Tcp
    } else {
        configured
    }
}

/// A redirect from rtsps:// must stay on rtsps:// (TLS is never dropped).
fn redirect_keeps_tls(from: &RtspUrl, to: &RtspUrl) -> bool {
    from.scheme != "rtsps" || to.scheme == "rtsps"
}

/// Whether two back-end URLs name the same host (credentials given for one may
/// go to the other).
fn same_host(a: &RtspUrl, b: &RtspUrl) -> bool {
    a.host.eq_ignore_ascii_case(&b.host)
}

/// The credentials a connection to `url` presents: those given for the
/// configured back end (`given`: its URL's, else `-u`) go to its host only; a
/// redirect to another host presents only what its own `Location` carries.
fn credentials_for(
    url: &RtspUrl,
    original: &RtspUrl,
    given: Option<&Credentials>,
) -> Option<Credentials> {
    if same_host(url, original) {
        url.credentials.clone().or_else(|| given.cloned())
    } else {
        url.credentials.clone()
    }
}

/// UDP media sockets of one back-end session, and their receive tasks.
struct UdpMedia {
    /// RTP port of each track.
    ports: Vec<u16>,
    rtcp_sockets: Vec<Arc<UdpSocket>>,
    /// Where each track's receiver reports go (the back end's RTCP port).
    rtcp_dest: Vec<Option<SocketAddr>>,
    tasks: Vec<JoinHandle<Option<()>>>,
}

impl Drop for UdpMedia {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Where a track's media comes from: the SETUP answer's `source=` when it is a
/// real address, else the back end's own. A loopback or unspecified `source=`
/// from a back end elsewhere (H264DVR recorders answer `source=127.0.0.1`)
/// would make us accept packets from, and send reports to, our own host.
fn announced_source(source: Option<&str>, peer_ip: IpAddr) -> IpAddr {
    match source.and_then(|s| s.trim().parse::<IpAddr>().ok()) {
        Some(ip) if ip.is_unspecified() => peer_ip,
        Some(ip) if ip.is_loopback() && !peer_ip.is_loopback() => peer_ip,
        Some(ip) => ip.to_canonical(),
        None => peer_ip,
    }
}

/// Relays RTP packets of `track` that arrived together (draining `batch`), and
/// counts them for the session's watchdogs.
fn relay_batch(stream: &Stream, activity: &MediaActivity, track: usize, batch: &mut Vec<BytesMut>) {
    if batch.is_empty() {
        return;
    }
    let now = Instant::now();
    activity.record(batch.len() as u64, now);
    stream.push_rtp_batch(track, batch, now);
}

/// Receives one track's RTP into the relay. Only datagrams from the back end's
/// address are accepted.
async fn receive_rtp(
    stream: Arc<Stream>,
    track: usize,
    socket: Arc<UdpSocket>,
    allowed: Arc<Mutex<Vec<IpAddr>>>,
    activity: Arc<MediaActivity>,
) {
    let mut buf = BytesMut::with_capacity(256 * 1024);
    let mut batch: Vec<BytesMut> = Vec::with_capacity(RECV_BATCH);
    loop {
        if let Err(e) = socket.readable().await {
            debug!("back-end RTP socket: {e}");
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        // Everything that is waiting, up to a batch, is relayed together (the
        // relay cuts it at frame ends), under one lock of the allow-list (the
        // reads do not wait).
        let failed = {
            let allowed_now = allowed.lock().unwrap_or_else(|e| e.into_inner());
            let mut failed = None;
            while batch.len() < RECV_BATCH {
                if buf.capacity() - buf.len() < 65536 {
                    buf.reserve(256 * 1024);
                }
                match socket.try_recv_buf_from(&mut buf) {
                    Ok((n, from)) => {
                        let pkt = buf.split_to(n);
                        if allowed_now.contains(&from.ip().to_canonical()) {
                            batch.push(pkt);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            failed
        };
        relay_batch(&stream, &activity, track, &mut batch);
        if let Some(e) = failed {
            buf.clear();
            debug!("back-end RTP receive: {e}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive_rtcp(
    stream: Arc<Stream>,
    track: usize,
    socket: Arc<UdpSocket>,
    allowed: Arc<Mutex<Vec<IpAddr>>>,
    bye: mpsc::Sender<()>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                if !is_allowed(&allowed, from.ip()) {
                    continue;
                }
                if stream.push_rtcp(track, &buf[..n], Instant::now()).bye {
                    let _ = bye.try_send(());
                }
            }
            Err(e) => {
                debug!("back-end RTCP receive: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

fn is_allowed(allowed: &Mutex<Vec<IpAddr>>, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    allowed.lock().map(|a| a.contains(&ip)).unwrap_or(false)
}

/// Logs an RTSP message exchanged with the back end (`-V`), credentials hidden
/// and control characters escaped.
fn log_wire(stream: &str, dir: &str, text: &str) {
    debug!(target: "rtsp_proxy::backend", "[{stream}] {dir}\n{}", log_text::wire_message(text));
}

async fn write_request(
    wr: &mut ChannelWriter,
    stream: &str,
    req: &Request,
    timeout: Duration,
) -> Result<(), Failure> {
    let bytes = req.to_bytes();
    log_wire(stream, "sending request:", &String::from_utf8_lossy(&bytes));
    write_bytes(wr, &bytes, timeout).await
}

async fn write_bytes(
    wr: &mut ChannelWriter,
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), Failure> {
    // Flushed: a carrier may hold bytes back (a TLS writer, the HTTP tunnel's
    // base64 encoder).
    let write = async {
        wr.write_all(bytes).await?;
        wr.flush().await
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure::lost(e)),
        Err(_) => Err(Failure::ConnectionLost(IoCause::new(
            std::io::ErrorKind::TimedOut,
            "write timed out",
        ))),
    }
}

/// One connection to the back end, from connect to failure or shutdown.
/// `down_since` is when the back end was lost (None while it is fine); it is
/// cleared, with a log line, once the back end answers DESCRIBE again.
async fn run_connection(
    stream: &Arc<Stream>,
    connector: &Connector,
    cfg: SessionConfig,
    shutdown: &mut watch::Receiver<bool>,
    down_since: &mut Option<Instant>,
    on_demand: bool,
) -> Outcome {
    debug!(stream = %stream.name(), "connecting to {}", cfg.url);
    let channel = tokio::select! {
        r = connector.open(&cfg.url, cfg.response_timeout) => match r {
            Ok(c) => c,
            Err(f) => return Outcome::Failed(f),
        },
        _ = shutdown.changed() => return Outcome::Shutdown,
    };
    debug!(stream = %stream.name(), "connected to {} over {}", channel.peer, channel.carrier);
    let mut rd = channel.reader;
    let (mut conn, mut wake) = BackendConnection::new(
        stream,
        cfg,
        channel.writer,
        channel.buffered,
        channel.peer.ip().to_canonical(),
        down_since,
        on_demand,
    );
    match conn.serve(&mut rd, &mut wake, shutdown).await {
        ControlFlow::Break(outcome) => outcome,
        ControlFlow::Continue(never) => match never {},
    }
}

/// What ends a step of a connection: `Break` with how it ended.
type Step = ControlFlow<Outcome>;

/// The wake-up sources of a connection that its select borrows while the
/// connection itself is updated.
struct Wakeups {
    demand: watch::Receiver<usize>,
    bye_rx: mpsc::Receiver<()>,
    rr_timer: tokio::time::Interval,
}

/// One connected back end: the session machine, the writing half of the
/// carrier, the read buffer and the media receive state, with one method per
/// kind of wake-up (`on_read`, `on_timer`, `on_demand_changed`, `on_idle`,
/// `on_receiver_report_tick`, `on_shutdown`) and per machine event (`on_event`).
struct BackendConnection<'a> {
    stream: &'a Arc<Stream>,
    name: String,
    machine: BackendSession,
    wr: ChannelWriter,
    buf: BytesMut,
    limits: rtsp::Limits,
    response_timeout: Duration,
    linger: Duration,
    on_demand: bool,
    peer_ip: IpAddr,
    /// Media arrivals, read by the machine's watchdogs.
    activity: Arc<MediaActivity>,
    /// Addresses media is accepted from (the back end's, and announced sources).
    allowed: Arc<Mutex<Vec<IpAddr>>>,
    /// UDP receive tasks signal an RTCP BYE here.
    bye_tx: mpsc::Sender<()>,
    udp: Option<UdpMedia>,
    reporter_ssrc: u32,
    shutting_down: bool,
    /// The teardown was for want of clients (on demand): ends as `Idle`.
    idle_closing: bool,
    earliest_check: Instant,
    /// On demand: when the back end is closed for want of clients. A connection
    /// made for a DESCRIBE leaves the client time to SETUP and PLAY.
    idle_deadline: Option<tokio::time::Instant>,
    /// A resume was asked for: the next Playing is a resume.
    resuming: bool,
    down_since: &'a mut Option<Instant>,
}

impl<'a> BackendConnection<'a> {
    fn new(
        stream: &'a Arc<Stream>,
        cfg: SessionConfig,
        wr: ChannelWriter,
        mut buf: BytesMut,
        peer_ip: IpAddr,
        down_since: &'a mut Option<Instant>,
        on_demand: bool,
    ) -> (BackendConnection<'a>, Wakeups) {
        let linger = cfg.linger;
        let response_timeout = cfg.response_timeout;
        let mut machine = BackendSession::new(cfg);
        let mut demand = stream.watch_demand();
        let (bye_tx, bye_rx) = mpsc::channel::<()>(4);
        buf.reserve(64 * 1024);
        let mut rr_timer = tokio::time::interval(RR_INTERVAL);
        rr_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let idle_deadline = (on_demand && *demand.borrow() == 0)
            .then(|| tokio::time::Instant::now() + linger.max(ON_DEMAND_FIRST_PLAY_WAIT));
        let now = Instant::now();
        machine.on_connected(now);
        machine.set_demand(*demand.borrow_and_update() > 0, now);
        let conn = BackendConnection {
            stream,
            name: stream.name().to_string(),
            machine,
            wr,
            buf,
            limits: rtsp::Limits {
                max_body: 256 * 1024,
                ..rtsp::Limits::default()
            },
            response_timeout,
            linger,
            on_demand,
            peer_ip,
            activity: Arc::new(MediaActivity::new()),
            allowed: Arc::new(Mutex::new(vec![peer_ip])),
            bye_tx,
            udp: None,
            reporter_ssrc: rand::thread_rng().gen::<u32>() | 1,
            shutting_down: false,
            idle_closing: false,
            earliest_check: now,
            idle_deadline,
            resuming: false,
            down_since,
        };
        let wake = Wakeups {
            demand,
            bye_rx,
            rr_timer,
        };
        (conn, wake)
    }

    /// Acts on the machine's output, then waits for the next wake-up, until the
    /// connection ends.
    async fn serve(
        &mut self,
        rd: &mut ChannelReader,
        wake: &mut Wakeups,
        shutdown: &mut watch::Receiver<bool>,
    ) -> ControlFlow<Outcome, std::convert::Infallible> {
        loop {
            self.act_on_output().await?;
            let deadline = self
                .machine
                .poll_timeout()
                .map(|d| tokio::time::Instant::from_std(d.max(self.earliest_check)));
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending::<()>().await,
                }
            };
            let idle_deadline = self.idle_deadline.filter(|_| !self.shutting_down);
            let idle = async {
                match idle_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                r = rd.read_buf(&mut self.buf) => self.on_read(r).await?,
                _ = sleep => self.on_timer(),
                r = wake.demand.changed() => {
                    if r.is_ok() {
                        let players = *wake.demand.borrow_and_update();
                        self.on_demand_changed(players);
                    }
                }
                () = idle => self.on_idle(),
                _ = wake.bye_rx.recv() => self.machine.on_bye(Instant::now()),
                _ = wake.rr_timer.tick() => self.on_receiver_report_tick().await?,
                _ = shutdown.changed(), if !self.shutting_down => self.on_shutdown(),
            }
        }
    }

    /// Sends what the machine asks to send and acts on its events.
    async fn act_on_output(&mut self) -> Step {
        while let Some(out) = self.machine.poll_output() {
            match out {
                Output::Send(req) => {
                    if let Err(f) =
                        write_request(&mut self.wr, &self.name, &req, self.response_timeout).await
                    {
                        return ControlFlow::Break(Outcome::Failed(f));
                    }
                }
                Output::Event(ev) => self.on_event(ev)?,
            }
        }
        ControlFlow::Continue(())
    }

    fn on_event(&mut self, ev: Event) -> Step {
        let name = &self.name;
        match ev {
            Event::Described(p) => return self.on_described(p),
            Event::TrackSetUp { track, reply } if reply.cast == Some(Cast::Multicast) => {
                return self.on_multicast_track_set_up(track, &reply);
            }
            Event::TrackSetUp { track, reply } => self.on_unicast_track_set_up(track, &reply),
            Event::Playing { starts } => {
                self.stream.source_playing(&starts);
                // A PLAY that resumed a paused session is "resumed".
                let state = if std::mem::take(&mut self.resuming) {
                    "resumed"
                } else {
                    "playing"
                };
                info!(stream = %name, state = %state, "path state changed");
            }
            Event::Paused => {
                self.stream.source_paused();
                info!(stream = %name, state = %"paused", reason = %"no clients", "path state changed");
            }
            Event::Resuming => {
                self.stream.source_resuming();
                self.resuming = true;
                debug!(stream = %name, "a client is back; resuming the back end");
            }
            Event::Redirect(to) => return ControlFlow::Break(Outcome::Redirect(to)),
            Event::Failed(f) => return ControlFlow::Break(Outcome::Failed(f)),
            Event::Closed if self.idle_closing => return ControlFlow::Break(Outcome::Idle),
            Event::Closed => return ControlFlow::Break(Outcome::Shutdown),
        }
        ControlFlow::Continue(())
    }

    /// The back end described the stream: log the state, hand the presentation
    /// to the relay, open the UDP media sockets (unless TCP) and tell the machine.
    fn on_described(&mut self, p: Presentation) -> Step {
        let name = &self.name;
        let tracks = p.tracks.len();
        match self.down_since.take() {
            Some(since) => warn!(
                stream = %name,
                state = %"back",
                backend = %self.machine.base_url(),
                tracks,
                down_s = delay_secs(since.elapsed()),
                "path state changed"
            ),
            None => info!(
                stream = %name,
                state = %"described",
                backend = %self.machine.base_url(),
                tracks,
                "path state changed"
            ),
        }
        match self.stream.set_presentation(p) {
            PresentationChange::TracksChanged => {
                warn!(stream = %name, "the back end's tracks changed; clients were closed and will get the new SDP")
            }
            PresentationChange::Updated | PresentationChange::First => {}
        }
        let mut ports = Vec::new();
        // Multicast too: the unicast sockets send the receiver
        // reports, and take a back end that answers unicast.
        if *self.machine.transport() != BackendTransport::Tcp {
            match open_udp(
                self.stream,
                tracks,
                self.peer_ip,
                &self.allowed,
                &self.activity,
                &self.bye_tx,
            ) {
                Ok(m) => {
                    ports = m.ports.clone();
                    self.udp = Some(m);
                }
                Err(e) => {
                    warn!(stream = %name, "cannot open UDP sockets for the back end ({e}); using TCP");
                    return ControlFlow::Break(Outcome::Failed(Failure::UdpRefused));
                }
            }
        }
        self.machine.media_ready(ports, Instant::now());
        ControlFlow::Continue(())
    }

    fn on_multicast_track_set_up(&mut self, track: usize, reply: &Transport) -> Step {
        let name = &self.name;
        let Some(m) = self.udp.as_mut() else {
            return ControlFlow::Break(Outcome::Failed(Failure::MulticastJoin(
                "no UDP media sockets".into(),
            )));
        };
        match join_group(
            self.stream,
            track,
            reply,
            self.peer_ip,
            m,
            &self.allowed,
            &self.activity,
            &self.bye_tx,
        ) {
            Ok(group) => {
                info!(stream = %name, track = track + 1, "receiving the back end's multicast {group}")
            }
            Err(e) => {
                warn!(stream = %name, track = track + 1, "cannot join the back end's multicast group ({e}); using TCP");
                return ControlFlow::Break(Outcome::Failed(Failure::MulticastJoin(e.to_string())));
            }
        }
        debug!(stream = %name, track = track + 1, transport = %reply, "back-end track set up");
        ControlFlow::Continue(())
    }

    fn on_unicast_track_set_up(&mut self, track: usize, reply: &Transport) {
        if let Some(m) = self.udp.as_mut() {
            let src_ip = announced_source(reply.source.as_deref(), self.peer_ip);
            if let Ok(mut a) = self.allowed.lock() {
                if !a.contains(&src_ip) {
                    a.push(src_ip);
                }
            }
            let rtcp_port = reply
                .server_port
                .and_then(|p| p.rtcp.or(Some(p.rtp.wrapping_add(1))));
            if let Some(slot) = m.rtcp_dest.get_mut(track) {
                *slot = rtcp_port.map(|p| SocketAddr::new(src_ip, p));
            }
        }
        debug!(stream = %self.name, track = track + 1, transport = %reply, "back-end track set up");
    }

    /// Bytes arrived on the RTSP connection (`r` is the read's result):
    /// interleaved media goes to the relay, RTSP messages to the machine.
    async fn on_read(&mut self, r: std::io::Result<usize>) -> Step {
        match r {
            Ok(0) => {
                return ControlFlow::Break(Outcome::Failed(Failure::ConnectionLost(IoCause::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed by the back end",
                ))))
            }
            Err(e) => return ControlFlow::Break(Outcome::Failed(Failure::lost(e))),
            Ok(_) => {}
        }
        // Consecutive RTP packets of a track are relayed as one batch,
        // each in a buffer of its own (no copy).
        let mut rtp_batch: Vec<BytesMut> = Vec::new();
        let mut batch_track = 0;
        loop {
            if let Some((channel, payload)) = rtsp::interleaved::split_frame(&mut self.buf) {
                match self.machine.channel_track(channel) {
                    Some((track, false)) => {
                        if track != batch_track {
                            relay_batch(self.stream, &self.activity, batch_track, &mut rtp_batch);
                        }
                        batch_track = track;
                        rtp_batch.push(payload);
                    }
                    Some((track, true)) => {
                        let now = Instant::now();
                        if self.stream.push_rtcp(track, &payload, now).bye {
                            self.machine.on_bye(now);
                        }
                    }
                    None => {}
                }
                continue;
            }
            relay_batch(self.stream, &self.activity, batch_track, &mut rtp_batch);
            match rtsp::parse_frame(&mut self.buf, &self.limits) {
                Ok(Some(Frame::Response(resp))) => {
                    log_wire(
                        &self.name,
                        "received response:",
                        &String::from_utf8_lossy(&resp.to_bytes()),
                    );
                    self.machine.handle_response(&resp, Instant::now());
                }
                // Whole `$` frames were taken by split_frame above.
                Ok(Some(Frame::Interleaved { .. })) => {}
                Ok(Some(Frame::Request(req))) => {
                    let resp: Response = self.machine.handle_request(&req);
                    if let Err(f) =
                        write_bytes(&mut self.wr, &resp.to_bytes(), self.response_timeout).await
                    {
                        return ControlFlow::Break(Outcome::Failed(f));
                    }
                }
                Ok(None) => return ControlFlow::Continue(()),
                Err(e) => {
                    return ControlFlow::Break(Outcome::Failed(Failure::Malformed {
                        what: "message".into(),
                        detail: e.to_string(),
                    }));
                }
            }
        }
    }

    /// The machine's deadline passed: it checks its timeouts (with the media
    /// counted so far).
    fn on_timer(&mut self) {
        let now = Instant::now();
        self.activity.report(&mut self.machine);
        self.machine.handle_timeout(now);
        self.earliest_check = now + MIN_TIMER_STEP;
    }

    /// The number of playing clients changed to `players`.
    fn on_demand_changed(&mut self, players: usize) {
        self.machine.set_demand(players > 0, Instant::now());
        if self.on_demand {
            self.idle_deadline = (players == 0).then(|| tokio::time::Instant::now() + self.linger);
        }
    }

    /// On demand, nobody played for the linger: close the back end.
    fn on_idle(&mut self) {
        self.idle_deadline = None;
        self.idle_closing = true;
        self.shutting_down = true;
        self.machine.teardown(Instant::now());
    }

    async fn on_receiver_report_tick(&mut self) -> Step {
        self.activity.report(&mut self.machine);
        if self.machine.is_playing() {
            if let Err(f) = send_receiver_reports(
                self.stream,
                &self.machine,
                self.udp.as_ref(),
                &mut self.wr,
                self.reporter_ssrc,
                self.response_timeout,
            )
            .await
            {
                return ControlFlow::Break(Outcome::Failed(f));
            }
        }
        ControlFlow::Continue(())
    }

    fn on_shutdown(&mut self) {
        self.shutting_down = true;
        self.machine.teardown(Instant::now());
    }
}

/// Receives `track` from the multicast group of a SETUP answer (whose
/// `destination` and `port` the session machine has filled in): a socket bound to
/// the group and the port the *server* answered (SO_REUSEADDR, so that other
/// receivers on this host can share it), joined source-specific when the answer
/// names a `source`, else any-source; packets are still accepted from the
/// expected source only. Receiver reports then go to the group's RTCP port, or
/// to the source's unicast RTCP port when the answer gives a `server_port`.
/// Returns the group, for the log.
#[allow(clippy::too_many_arguments)]
fn join_group(
    stream: &Arc<Stream>,
    track: usize,
    reply: &rtsp::header::transport::Transport,
    peer_ip: IpAddr,
    m: &mut UdpMedia,
    allowed: &Arc<Mutex<Vec<IpAddr>>>,
    activity: &Arc<MediaActivity>,
    bye: &mpsc::Sender<()>,
) -> std::io::Result<SocketAddr> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_string());
    let group: Ipv4Addr = reply
        .destination
        .as_deref()
        .and_then(|d| d.parse().ok())
        .filter(Ipv4Addr::is_multicast)
        .ok_or_else(|| bad("no IPv4 multicast destination"))?;
    let ports = reply.port.ok_or_else(|| bad("no multicast port"))?;
    let rtcp_port = ports.rtcp.unwrap_or(ports.rtp.wrapping_add(1));
    let src_ip = announced_source(reply.source.as_deref(), peer_ip);
    let ssm = match (reply.source.as_deref(), src_ip) {
        (Some(_), IpAddr::V4(v4)) => Some(v4),
        _ => None,
    };
    let rtp = Arc::new(UdpSocket::from_std(net::bind_multicast(
        group,
        ports.rtp,
        ssm,
        RECV_BUFFER,
    )?)?);
    let rtcp = Arc::new(UdpSocket::from_std(net::bind_multicast(
        group,
        rtcp_port,
        ssm,
        256 * 1024,
    )?)?);
    if let Ok(mut a) = allowed.lock() {
        if !a.contains(&src_ip) {
            a.push(src_ip);
        }
    }
    let dest = match reply.server_port {
        Some(p) => SocketAddr::new(src_ip, p.rtcp.unwrap_or(p.rtp.wrapping_add(1))),
        None => SocketAddr::new(IpAddr::V4(group), rtcp_port),
    };
    if let Some(sock) = m.rtcp_sockets.get(track) {
        // Reports to the group travel as far as the back end's packets do.
        let _ = sock.set_multicast_ttl_v4(u32::from(reply.ttl.unwrap_or(1).max(1)));
    }
    if let Some(slot) = m.rtcp_dest.get_mut(track) {
        *slot = Some(dest);
    }
    spawn_receivers(
        &mut m.tasks,
        stream,
        track,
        rtp,
        rtcp,
        allowed,
        activity,
        bye,
    );
    Ok(SocketAddr::new(IpAddr::V4(group), ports.rtp))
}

/// Starts the RTP and RTCP receive tasks of one track's sockets.
#[allow(clippy::too_many_arguments)]
fn spawn_receivers(
    tasks: &mut Vec<JoinHandle<Option<()>>>,
    stream: &Arc<Stream>,
    track: usize,
    rtp: Arc<UdpSocket>,
    rtcp: Arc<UdpSocket>,
    allowed: &Arc<Mutex<Vec<IpAddr>>>,
    activity: &Arc<MediaActivity>,
    bye: &mpsc::Sender<()>,
) {
    tasks.push(stream.tasks().spawn(receive_rtp(
        stream.clone(),
        track,
        rtp,
        allowed.clone(),
        activity.clone(),
    )));
    tasks.push(stream.tasks().spawn(receive_rtcp(
        stream.clone(),
        track,
        rtcp,
        allowed.clone(),
        bye.clone(),
    )));
}

fn open_udp(
    stream: &Arc<Stream>,
    tracks: usize,
    peer_ip: IpAddr,
    allowed: &Arc<Mutex<Vec<IpAddr>>>,
    activity: &Arc<MediaActivity>,
    bye: &mpsc::Sender<()>,
) -> std::io::Result<UdpMedia> {
    let mut m = UdpMedia {
        ports: Vec::new(),
        rtcp_sockets: Vec::new(),
        rtcp_dest: vec![None; tracks],
        tasks: Vec::new(),
    };
    for track in 0..tracks {
        let buffers = net::Buffers {
            send: None,
            recv: Some(RECV_BUFFER),
        };
        let (rtp, rtcp, port) = net::bind_udp_pair(peer_ip.is_ipv6(), 0, buffers)?;
        m.ports.push(port);
        let rtp = Arc::new(UdpSocket::from_std(rtp)?);
        let rtcp = Arc::new(UdpSocket::from_std(rtcp)?);
        m.rtcp_sockets.push(rtcp.clone());
        spawn_receivers(
            &mut m.tasks,
            stream,
            track,
            rtp,
            rtcp,
            allowed,
            activity,
            bye,
        );
    }
    Ok(m)
}

async fn send_receiver_reports(
    stream: &Arc<Stream>,
    machine: &BackendSession,
    udp: Option<&UdpMedia>,
    wr: &mut ChannelWriter,
    reporter_ssrc: u32,
    timeout: Duration,
) -> Result<(), Failure> {
    let tracks = machine.presentation().map_or(0, |p| p.tracks.len());
    let now = Instant::now();
    for track in 0..tracks {
        let Some(rr) = stream.receiver_report(track, reporter_ssrc, now) else {
            continue;
        };
        match udp {
            Some(m) => {
                if let (Some(sock), Some(Some(dest))) =
                    (m.rtcp_sockets.get(track), m.rtcp_dest.get(track))
                {
                    let _ = sock.try_send_to(&rr, *dest);
                }
            }
            None => {
                if let (Some(ch), Ok(len)) = (machine.rtcp_channel(track), u16::try_from(rr.len()))
                {
                    let mut frame = Vec::with_capacity(rr.len() + 4);
                    frame.extend_from_slice(&rtsp::interleaved::header(ch, len));
                    frame.extend_from_slice(&rr);
                    write_bytes(wr, &frame, timeout).await?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtsps_back_ends_keep_their_media_and_redirects_inside_tls() {
        let url = |s: &str| RtspUrl::parse(s).expect("URL");
        let (plain, tls) = (url("rtsp://cam/a"), url("rtsps://cam/a"));
        assert_eq!(
            transport_for(&plain, BackendTransport::Udp),
            BackendTransport::Udp
        );
        assert_eq!(
            transport_for(&tls, BackendTransport::Udp),
            BackendTransport::Tcp
        );
        assert_eq!(
            transport_for(&tls, BackendTransport::Tcp),
            BackendTransport::Tcp
        );
        assert!(redirect_keeps_tls(&plain, &plain));
        assert!(redirect_keeps_tls(&plain, &tls), "an upgrade is fine");
        assert!(redirect_keeps_tls(&tls, &url("rtsps://other:8322/b")));
        assert!(!redirect_keeps_tls(&tls, &plain), "a downgrade is refused");
    }

    #[test]
    fn credentials_go_only_to_the_host_they_were_given_for() {
        let u = |s: &str| RtspUrl::parse(s).expect("url");
        let original = u("rtsp://admin:s3cret@cam.local/live");
        let given = Credentials::new("admin", "s3cret");
        let dash_u = Credentials::new("op", "pw");
        // The back end itself, also after a redirect to another path or port.
        for same in ["rtsp://cam.local/live", "rtsp://CAM.local:8554/other"] {
            assert_eq!(
                credentials_for(&u(same), &original, Some(&given)),
                Some(given.clone()),
                "{same}"
            );
        }
        // Another host gets nothing, -u included, Basic or Digest alike...
        for other in [
            "rtsp://evil.example/x",
            "rtsp://10.0.0.9/live",
            "rtsps://cam.local.evil/x",
        ] {
            assert_eq!(
                credentials_for(&u(other), &original, Some(&given)),
                None,
                "{other}"
            );
            assert_eq!(
                credentials_for(&u(other), &u("rtsp://cam.local/live"), Some(&dash_u)),
                None
            );
        }
        // ...but what its own Location names.
        assert_eq!(
            credentials_for(&u("rtsp://v:w@other/x"), &original, Some(&given)),
            Some(Credentials::new("v", "w"))
        );
    }

    #[test]
    fn a_setup_answers_source_is_believed_only_when_it_is_a_real_address() {
        let camera: IpAddr = "192.0.2.7".parse().unwrap();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        // H264DVR's answer (tests/data/cameras/h264dvr_setup_video.txt).
        assert_eq!(announced_source(Some("127.0.0.1"), camera), camera);
        assert_eq!(announced_source(Some("0.0.0.0"), camera), camera);
        assert_eq!(announced_source(Some("::"), camera), camera);
        assert_eq!(announced_source(Some("garbage"), camera), camera);
        assert_eq!(announced_source(None, camera), camera);
        let other: IpAddr = "198.51.100.3".parse().unwrap();
        assert_eq!(
            announced_source(Some("198.51.100.3"), camera),
            other,
            "a media server apart"
        );
        assert_eq!(
            announced_source(Some("127.0.0.1"), local),
            local,
            "a back end on this host"
        );
        assert_eq!(announced_source(Some("::ffff:198.51.100.3"), camera), other);
    }
}
