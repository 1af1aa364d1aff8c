//! The tokio glue: one UDP socket for every session, its receive loop handing
//! each datagram to its session's task (by the sender's address, or for a
//! new address by the ICE ufrag of its STUN request), and one task per viewer
//! that drives its [`Viewer`] with datagrams, relayed batches and time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, Notify};
use tracing::{debug, info};

use super::session::{Step, Viewer, ViewerCounters};
use super::stun;
use crate::relay::sink::ViewerBatch;
use crate::relay::Stream;

/// Datagrams queued per session before its task reads them (more are dropped).
const DATAGRAM_QUEUE: usize = 256;
/// Addresses one session may be reached from (ICE checks from several of the
/// browser's candidates).
const ADDRESSES_PER_SESSION: usize = 8;
/// Timeouts already due that a session handles in a row before it waits
/// (str0m asks for one after each packet it sends; a bound for fairness).
const DUE_IN_A_ROW: usize = 1024;
/// Datagrams the receive loop reads in one turn before it lets other tasks run.
const RECEIVE_BATCH: usize = 1024;

/// One received datagram.
pub struct Datagram {
    pub source: SocketAddr,
    pub data: Vec<u8>,
    pub at: Instant,
}

#[derive(Clone)]
struct Route {
    session: u64,
    tx: mpsc::Sender<Datagram>,
}

/// Which session a datagram is for.
#[derive(Default)]
pub struct Demux {
    inner: Mutex<DemuxInner>,
}

#[derive(Default)]
struct DemuxInner {
    by_ufrag: HashMap<String, Route>,
    by_addr: HashMap<SocketAddr, Route>,
}

impl Demux {
    fn lock(&self) -> std::sync::MutexGuard<'_, DemuxInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a session by its local ufrag; returns its datagram queue.
    pub fn add(&self, session: u64, ufrag: String) -> mpsc::Receiver<Datagram> {
        let (tx, rx) = mpsc::channel(DATAGRAM_QUEUE);
        self.lock().by_ufrag.insert(ufrag, Route { session, tx });
        rx
    }

    pub fn remove(&self, session: u64) {
        let mut d = self.lock();
        d.by_ufrag.retain(|_, r| r.session != session);
        d.by_addr.retain(|_, r| r.session != session);
    }

    /// The session `datagram` from `source` is for.
    fn route(&self, source: SocketAddr, datagram: &[u8]) -> Option<Route> {
        let mut d = self.lock();
        if let Some(r) = d.by_addr.get(&source) {
            return Some(r.clone());
        }
        let ufrag = stun::binding_request_ufrag(datagram)?;
        let route = d.by_ufrag.get(ufrag)?.clone();
        let known = d
            .by_addr
            .values()
            .filter(|r| r.session == route.session)
            .count();
        if known < ADDRESSES_PER_SESSION {
            d.by_addr.insert(source, route.clone());
        }
        Some(route)
    }

    pub fn sessions(&self) -> usize {
        self.lock().by_ufrag.len()
    }
}

/// Reads the shared socket for ever, handing each datagram to its session.
/// Each turn it reads what is there (up to [`RECEIVE_BATCH`]): one datagram
/// per turn (tokio's budget of a task's operations per turn) behind
/// hundreds of viewer tasks fell behind what hundreds of viewers send, the
/// socket buffer filled and STUN and DTLS were lost.
pub async fn receive_loop(socket: Arc<UdpSocket>, demux: Arc<Demux>) {
    let mut buf = vec![0u8; 2048];
    loop {
        if let Err(e) = socket.readable().await {
            debug!("webrtc udp readiness: {e}");
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        for _ in 0..RECEIVE_BATCH {
            let (n, source) = match socket.try_recv_from(&mut buf) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // ICMP errors surface here on some systems: not fatal.
                    debug!("webrtc udp receive: {e}");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    break;
                }
            };
            let data = &buf[..n];
            if let Some(route) = demux.route(source, data) {
                let _ = route.tx.try_send(Datagram {
                    source,
                    data: data.to_vec(),
                    at: Instant::now(),
                });
            }
        }
    }
}

/// Requests from the HTTP side for a running session.
pub enum Control {
    /// Trickled candidates (`a=candidate` lines).
    Candidates(Vec<String>),
}

/// How a session ends from outside: DELETE, the relay dropping it, shutdown.
#[derive(Default)]
pub struct EndSignal {
    notify: Notify,
}

impl EndSignal {
    pub fn end(&self) {
        self.notify.notify_one();
    }
}

/// What a session task was given.
pub struct SessionIo {
    pub id: u64,
    pub path: String,
    pub socket: Arc<UdpSocket>,
    pub datagrams: mpsc::Receiver<Datagram>,
    pub media: mpsc::Receiver<ViewerBatch>,
    pub control: mpsc::Receiver<Control>,
    pub end: Arc<EndSignal>,
    /// A session not connected (ICE and DTLS) by then is freed.
    pub handshake_timeout: Duration,
    /// Where the counters are published for the admin port.
    pub counters: Arc<Mutex<ViewerCounters>>,
    /// The relayed stream (its keyframe cache answers keyframe requests).
    pub stream: Arc<Stream>,
}

/// Drives one viewer until it ends; returns why.
pub async fn run_session(mut viewer: Viewer, mut io: SessionIo) -> &'static str {
    let started = tokio::time::Instant::now();
    let mut published = Instant::now();
    let reason = loop {
        // Everything str0m has to send, then when it next wants time.
        let mut due = 0;
        let wait = loop {
            match viewer.poll() {
                Step::Send { to, data } => {
                    let _ = io.socket.send_to(&data, to).await;
                }
                Step::Wait(at) => {
                    // str0m's pacer wants time after every packet it sends,
                    // at that send's time: already due. Given at once, a
                    // frame's packets go out back to back, not one per turn
                    // of the timer (1 ms ticks: 10-100 ms per frame).
                    let now = Instant::now();
                    if at <= now && due < DUE_IN_A_ROW {
                        due += 1;
                        viewer.tick(now);
                        continue;
                    }
                    break at;
                }
                Step::Ended(why) => return finish(&viewer, &io, why),
            }
        };
        // A keyframe request: the cached GOP, then back to sending.
        if let Some(track) = viewer.keyframe_wanted(Instant::now()) {
            let now = Instant::now();
            let cached = io.stream.cached_keyframe(track, now);
            if viewer.replay_keyframe(track, &cached, now) {
                debug!(path = %io.path, session = io.id, "keyframe request answered from the cache");
                continue;
            }
        }
        let connected = viewer.is_connected();
        let deadline = tokio::time::Instant::from_std(wait);
        tokio::select! {
            d = io.datagrams.recv() => match d {
                // One at a time: str0m wants its output polled after each
                // input (an event of the next input would replace this one's).
                Some(d) => {
                    viewer.receive(d.source, &d.data, d.at);
                }
                None => break "the UDP port closed",
            },
            b = io.media.recv(), if connected => match b {
                Some(b) => {
                    let now = Instant::now();
                    viewer.write(&b, now);
                    while let Ok(b) = io.media.try_recv() {
                        viewer.write(&b, now);
                    }
                }
                None => break "the stream ended",
            },
            c = io.control.recv() => match c {
                Some(Control::Candidates(lines)) => {
                    for l in &lines {
                        viewer.add_remote_candidate(l);
                    }
                }
                None => break "ended",
            },
            _ = io.end.notify.notified() => break "ended",
            _ = tokio::time::sleep_until(deadline) => viewer.tick(Instant::now()),
            _ = tokio::time::sleep_until(started + io.handshake_timeout), if !connected => {
                break "no ICE/DTLS connection within the handshake timeout";
            }
        }
        if published.elapsed() >= Duration::from_millis(500) {
            published = Instant::now();
            *io.counters.lock().unwrap_or_else(|e| e.into_inner()) = viewer.counters();
        }
    };
    finish(&viewer, &io, reason)
}

fn finish(viewer: &Viewer, io: &SessionIo, why: &'static str) -> &'static str {
    let c = viewer.counters();
    *io.counters.lock().unwrap_or_else(|e| e.into_inner()) = c;
    info!(
        path = %io.path,
        session = io.id,
        packets = c.packets,
        nacks = c.nacks,
        resent = c.resent,
        plis = c.plis,
        keyframe_replays = c.keyframe_replays,
        "WebRTC viewer ended: {why}"
    );
    why
}
