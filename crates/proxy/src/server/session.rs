//! Front-end RTSP sessions: what each client set up, and the table that finds them
//! by id (requests) or by RTCP source address (receiver reports).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::Rng;
use tracing::info;

use super::multicast::Multicast;
use crate::relay::{ConnOut, Stream, SubscriberId};

/// How one track reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackTransport {
    Udp {
        rtp: SocketAddr,
        rtcp: SocketAddr,
    },
    Interleaved {
        rtp_channel: u8,
        rtcp_channel: u8,
    },
    /// The stream's multicast group of the track (RTP address; RTCP is the
    /// next port), shared with the other multicast clients of the stream.
    Multicast {
        group: SocketAddrV4,
    },
}

/// RFC 2326 Appendix A server states (Init is "no session").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Ready,
    Playing,
    Paused,
}

pub struct ClientSession {
    pub id: String,
    pub stream: Arc<Stream>,
    pub generation: u64,
    pub subscriber: SubscriberId,
    pub tracks: BTreeMap<usize, TrackTransport>,
    pub state: SessionState,
    pub last_activity: Instant,
    /// The connection carrying interleaved tracks, if any.
    pub conn: Option<ConnOut>,
    pub peer_ip: IpAddr,
    /// UDP packets the kernel refused to send to this client (see `Sink::Udp`).
    pub udp_refused: Arc<AtomicU64>,
}

pub type SessionRef = Arc<Mutex<ClientSession>>;

impl ClientSession {
    /// Whether the session's tracks are multicast (a session is all multicast
    /// or all unicast).
    pub fn is_multicast(&self) -> bool {
        self.tracks
            .values()
            .any(|t| matches!(t, TrackTransport::Multicast { .. }))
    }
}

/// Locks a session, carrying on if a panic poisoned the lock.
pub fn lock(s: &SessionRef) -> MutexGuard<'_, ClientSession> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// All front-end sessions of the server.
#[derive(Default)]
pub struct SessionTable {
    inner: Mutex<Inner>,
    /// Multicast delivery (`--multicast-range`): a session removed leaves its group.
    multicast: std::sync::OnceLock<Arc<Multicast>>,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, SessionRef>,
    by_rtcp_addr: HashMap<SocketAddr, String>,
}

/// Upper bound on sessions: past it, SETUP answers 453 Not Enough Bandwidth.
pub const MAX_SESSIONS: usize = 10_000;

impl SessionTable {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes removed sessions leave their multicast group (set once).
    pub fn set_multicast(&self, multicast: Arc<Multicast>) {
        let _ = self.multicast.set(multicast);
    }

    /// Creates a session with a fresh random id. None when the table is full.
    pub fn create(&self, stream: Arc<Stream>, peer_ip: IpAddr, now: Instant) -> Option<SessionRef> {
        let mut inner = self.lock();
        if inner.by_id.len() >= MAX_SESSIONS {
            return None;
        }
        let mut rng = rand::thread_rng();
        let id = loop {
            // 64 random bits: not guessable, unlike live555's 32-bit ids.
            let id = format!("{:016X}", rng.gen::<u64>());
            if !inner.by_id.contains_key(&id) {
                break id;
            }
        };
        let generation = stream.generation();
        let subscriber = stream.new_subscriber();
        let session = Arc::new(Mutex::new(ClientSession {
            id: id.clone(),
            stream,
            generation,
            subscriber,
            tracks: BTreeMap::new(),
            state: SessionState::Ready,
            last_activity: now,
            conn: None,
            peer_ip,
            udp_refused: Arc::new(AtomicU64::new(0)),
        }));
        inner.by_id.insert(id, session.clone());
        Some(session)
    }

    pub fn get(&self, id: &str) -> Option<SessionRef> {
        self.lock().by_id.get(id).cloned()
    }

    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sets the RTCP addresses of a session's UDP tracks (what the session has
    /// now: earlier addresses of that session are forgotten), so that receiver
    /// reports keep it alive. Nothing is indexed for a session that is gone.
    pub fn index_rtcp(&self, id: &str, addrs: &[SocketAddr]) {
        let mut inner = self.lock();
        inner.by_rtcp_addr.retain(|_, v| v != id);
        if inner.by_id.contains_key(id) {
            for a in addrs {
                inner.by_rtcp_addr.insert(*a, id.to_string());
            }
        }
    }

    /// The session whose client sends RTCP from `addr`.
    pub fn by_rtcp_addr(&self, addr: &SocketAddr) -> Option<SessionRef> {
        let inner = self.lock();
        let id = inner.by_rtcp_addr.get(addr)?;
        inner.by_id.get(id).cloned()
    }

    /// Removes a session and stops its delivery. Returns it if it existed.
    pub fn remove(&self, id: &str) -> Option<SessionRef> {
        let removed = {
            let mut inner = self.lock();
            let s = inner.by_id.remove(id)?;
            inner.by_rtcp_addr.retain(|_, v| v != id);
            s
        };
        let (stream, sub, refused) = {
            let s = lock(&removed);
            (s.stream.clone(), s.subscriber, s.udp_refused.clone())
        };
        stream.stop(sub);
        if let Some(m) = self.multicast.get() {
            m.leave(&stream, sub);
        }
        let refused = refused.load(Ordering::Relaxed);
        if refused > 0 {
            info!(session = %id, stream = %stream.name(), "{refused} UDP packets to this client were refused by the kernel (send buffer full or client unreachable)");
        }
        Some(removed)
    }

    /// Ids of sessions idle for longer than `timeout`.
    pub fn expired(&self, now: Instant, timeout: Duration) -> Vec<String> {
        self.lock()
            .by_id
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(lock(s).last_activity) > timeout)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Ids of sessions whose interleaved tracks ride on `conn`.
    pub fn on_connection(&self, conn: &ConnOut) -> Vec<String> {
        self.lock()
            .by_id
            .iter()
            .filter(|(_, s)| lock(s).conn.as_ref().is_some_and(|c| c.same(conn)))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Ids of the sessions of `stream`.
    pub fn of_stream(&self, stream: &Arc<Stream>) -> Vec<String> {
        self.lock()
            .by_id
            .iter()
            .filter(|(_, s)| Arc::ptr_eq(&lock(s).stream, stream))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Marks every session on `conn` as active (interleaved RTCP from the client).
    pub fn touch_connection(&self, conn: &ConnOut, now: Instant) {
        for s in self.lock().by_id.values() {
            let mut s = lock(s);
            if s.conn.as_ref().is_some_and(|c| c.same(conn)) {
                s.last_activity = now;
            }
        }
    }

    pub fn all_ids(&self) -> Vec<String> {
        self.lock().by_id.keys().cloned().collect()
    }
}
