//! Front-end RTSP sessions: what each client set up, and the table that finds them
//! by id (requests), by RTCP source address (receiver reports) and by the
//! connection that created them (interleaved RTCP, connection close).
//!
//! The table is bounded in total ([`MAX_SESSIONS`]), per client address and per
//! connection ([`SessionLimits`]), so that one client cannot fill it; a session
//! that never played dies with the connection that created it (abandoned), and
//! every lookup a client can trigger per packet is O(sessions of its connection).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::Rng;
use tracing::info;

use relay::{Stream, SubscriberId};

use crate::conn_out::ConnOut;

/// Multicast delivery as the session table sees it: a removed session leaves
/// its stream's group (implemented by `multicast::Multicast`, which is above
/// this table).
pub trait GroupMembership: Send + Sync {
    /// `member` of `stream`'s group is gone.
    fn leave(&self, stream: &Stream, member: SubscriberId);
}

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
    /// The connection that created the session ([`ConnOut::id`]).
    pub created_on: u64,
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

/// How many sessions one client may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Sessions of one client address at once (`--max-sessions-per-address`).
    pub per_address: usize,
    /// Sessions created by one connection at once (`--max-sessions-per-connection`).
    pub per_connection: usize,
}

/// Default [`SessionLimits::per_address`]: room for a busy NVR, or many players
/// behind one NAT, and still a tenth of the table.
pub const DEFAULT_SESSIONS_PER_ADDRESS: usize = 1000;
/// Default [`SessionLimits::per_connection`]: a player needs one.
pub const DEFAULT_SESSIONS_PER_CONNECTION: usize = 64;

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            per_address: DEFAULT_SESSIONS_PER_ADDRESS,
            per_connection: DEFAULT_SESSIONS_PER_CONNECTION,
        }
    }
}

/// Why no session was created (answered 453 Not Enough Bandwidth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    #[error("the server holds {MAX_SESSIONS} sessions, its limit")]
    Full,
    #[error("this client address holds {0} sessions, the limit per address")]
    AddressFull(usize),
    #[error("this connection created {0} sessions, the limit per connection")]
    ConnectionFull(usize),
}

/// All front-end sessions of the server.
#[derive(Default)]
pub struct SessionTable {
    inner: Mutex<Inner>,
    limits: SessionLimits,
    /// Multicast delivery (`--multicast-range`): a session removed leaves its group.
    multicast: std::sync::OnceLock<Arc<dyn GroupMembership>>,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, SessionRef>,
    by_rtcp_addr: HashMap<SocketAddr, String>,
    /// Ids of the sessions each connection created.
    by_conn: HashMap<u64, Vec<String>>,
    /// Sessions per client address.
    per_ip: HashMap<IpAddr, usize>,
}

/// Upper bound on sessions: past it, SETUP answers 453 Not Enough Bandwidth.
pub const MAX_SESSIONS: usize = 10_000;

impl SessionTable {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes removed sessions leave their multicast group (set once).
    pub fn set_multicast(&self, multicast: Arc<dyn GroupMembership>) {
        let _ = self.multicast.set(multicast);
    }

    /// A table with these limits per client.
    pub fn with_limits(limits: SessionLimits) -> SessionTable {
        SessionTable {
            limits,
            ..SessionTable::default()
        }
    }

    /// Creates a session with a fresh random id for a client at `peer_ip` on
    /// connection `conn` ([`ConnOut::id`]).
    ///
    /// # Errors
    ///
    /// The table, the address's share or the connection's share is full.
    pub fn create(
        &self,
        stream: Arc<Stream>,
        peer_ip: IpAddr,
        conn: u64,
        now: Instant,
    ) -> Result<SessionRef, CreateError> {
        let peer_ip = peer_ip.to_canonical();
        let mut inner = self.lock();
        if inner.by_id.len() >= MAX_SESSIONS {
            return Err(CreateError::Full);
        }
        let of_ip = inner.per_ip.get(&peer_ip).copied().unwrap_or(0);
        if of_ip >= self.limits.per_address {
            return Err(CreateError::AddressFull(of_ip));
        }
        let of_conn = inner.by_conn.get(&conn).map_or(0, Vec::len);
        if of_conn >= self.limits.per_connection {
            return Err(CreateError::ConnectionFull(of_conn));
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
            created_on: conn,
            udp_refused: Arc::new(AtomicU64::new(0)),
        }));
        inner.by_conn.entry(conn).or_default().push(id.clone());
        *inner.per_ip.entry(peer_ip).or_insert(0) += 1;
        inner.by_id.insert(id, session.clone());
        Ok(session)
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
            let (conn, ip, rtcp) = {
                let st = lock(&s);
                let rtcp: Vec<SocketAddr> = st
                    .tracks
                    .values()
                    .filter_map(|t| match t {
                        TrackTransport::Udp { rtcp, .. } => Some(*rtcp),
                        _ => None,
                    })
                    .collect();
                (st.created_on, st.peer_ip, rtcp)
            };
            for a in rtcp {
                if inner.by_rtcp_addr.get(&a).is_some_and(|v| v == id) {
                    inner.by_rtcp_addr.remove(&a);
                }
            }
            if let Some(ids) = inner.by_conn.get_mut(&conn) {
                ids.retain(|v| v != id);
                if ids.is_empty() {
                    inner.by_conn.remove(&conn);
                }
            }
            if let Some(n) = inner.per_ip.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    inner.per_ip.remove(&ip);
                }
            }
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

    /// The sessions `conn` created, with their ids.
    fn created_on(&self, conn: &ConnOut) -> Vec<(String, SessionRef)> {
        let inner = self.lock();
        inner
            .by_conn
            .get(&conn.id())
            .into_iter()
            .flatten()
            .filter_map(|id| inner.by_id.get(id).map(|s| (id.clone(), s.clone())))
            .collect()
    }

    /// Ids of sessions whose interleaved tracks ride on `conn`.
    pub fn on_connection(&self, conn: &ConnOut) -> Vec<String> {
        self.created_on(conn)
            .into_iter()
            .filter(|(_, s)| lock(s).conn.as_ref().is_some_and(|c| c.same(conn)))
            .map(|(id, _)| id)
            .collect()
    }

    /// The sessions `conn` created that never played, now that it closed: they
    /// are left `grace` to be used from another connection (RTSP allows a request
    /// per connection), then expire, instead of holding their place for the
    /// whole `timeout`. Returns how many.
    pub fn abandon(
        &self,
        conn: &ConnOut,
        now: Instant,
        grace: Duration,
        timeout: Duration,
    ) -> usize {
        let mut n = 0;
        let expires_from = now
            .checked_sub(timeout.saturating_sub(grace))
            .unwrap_or(now);
        for (_, s) in self.created_on(conn) {
            let mut s = lock(&s);
            if s.state == SessionState::Ready && s.conn.is_none() && s.last_activity > expires_from
            {
                s.last_activity = expires_from;
                n += 1;
            }
        }
        n
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
    /// Costs the sessions of that connection, at most
    /// [`SessionLimits::per_connection`], whatever the size of the table.
    pub fn touch_connection(&self, conn: &ConnOut, now: Instant) {
        for (_, s) in self.created_on(conn) {
            let mut s = lock(&s);
            if s.conn.as_ref().is_some_and(|c| c.same(conn)) {
                s.last_activity = now;
            }
        }
    }

    pub fn all_ids(&self) -> Vec<String> {
        self.lock().by_id.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn limits_per_address_and_per_connection_and_their_release() {
        let table = SessionTable::with_limits(SessionLimits {
            per_address: 3,
            per_connection: 2,
        });
        let stream = Stream::new("cam");
        let now = Instant::now();
        let a = table
            .create(stream.clone(), ip("192.0.2.1"), 1, now)
            .expect("1st");
        table
            .create(stream.clone(), ip("192.0.2.1"), 1, now)
            .expect("2nd");
        assert_eq!(
            table.create(stream.clone(), ip("192.0.2.1"), 1, now).err(),
            Some(CreateError::ConnectionFull(2))
        );
        table
            .create(stream.clone(), ip("::ffff:192.0.2.1"), 2, now)
            .expect("3rd, mapped");
        assert_eq!(
            table.create(stream.clone(), ip("192.0.2.1"), 3, now).err(),
            Some(CreateError::AddressFull(3))
        );
        // Others are not affected.
        table
            .create(stream.clone(), ip("192.0.2.2"), 4, now)
            .expect("another client");
        // Removing one frees a place of its address and of its connection.
        let id = lock(&a).id.clone();
        assert!(table.remove(&id).is_some());
        table
            .create(stream.clone(), ip("192.0.2.1"), 1, now)
            .expect("room again");
        assert_eq!(table.len(), 4);
    }

    #[test]
    fn a_connection_s_never_played_sessions_expire_soon_after_it_closed() {
        let table = SessionTable::default();
        let stream = Stream::new("cam");
        let t0 = Instant::now();
        let timeout = Duration::from_secs(65);
        let grace = Duration::from_secs(10);
        let (conn, _rx) = ConnOut::new(8);
        let (other, _rx2) = ConnOut::new(8);
        let interleaved = table
            .create(stream.clone(), ip("192.0.2.1"), conn.id(), t0)
            .unwrap();
        lock(&interleaved).conn = Some(conn.clone());
        let ready_udp = table
            .create(stream.clone(), ip("192.0.2.1"), conn.id(), t0)
            .unwrap();
        let playing_udp = table
            .create(stream.clone(), ip("192.0.2.1"), conn.id(), t0)
            .unwrap();
        lock(&playing_udp).state = SessionState::Playing;
        let elsewhere = table
            .create(stream.clone(), ip("192.0.2.1"), other.id(), t0)
            .unwrap();
        assert_eq!(
            table.on_connection(&conn),
            vec![lock(&interleaved).id.clone()]
        );
        assert_eq!(table.abandon(&conn, t0, grace, timeout), 1);
        let expired = table.expired(t0 + grace + Duration::from_secs(1), timeout);
        assert_eq!(
            expired,
            vec![lock(&ready_udp).id.clone()],
            "only the never-played one, soon"
        );
        // Used from another connection meanwhile, it lives on as usual.
        lock(&ready_udp).last_activity = t0 + Duration::from_secs(5);
        assert!(table
            .expired(t0 + grace + Duration::from_secs(1), timeout)
            .is_empty());
        let _ = (playing_udp, elsewhere);
    }

    #[test]
    fn interleaved_rtcp_touches_only_its_connection_s_sessions() {
        let table = SessionTable::default();
        let stream = Stream::new("cam");
        let t0 = Instant::now();
        let (conn, _rx) = ConnOut::new(8);
        let mine = table
            .create(stream.clone(), ip("192.0.2.1"), conn.id(), t0)
            .unwrap();
        lock(&mine).conn = Some(conn.clone());
        // Thousands of other sessions do not make a touch cost more.
        for n in 0..2000u32 {
            let client = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            table
                .create(stream.clone(), client, 100 + u64::from(n), t0)
                .unwrap();
        }
        let later = t0 + Duration::from_secs(30);
        table.touch_connection(&conn, later);
        assert_eq!(lock(&mine).last_activity, later);
        let expired = table.expired(t0 + Duration::from_secs(66), Duration::from_secs(65));
        assert_eq!(expired.len(), 2000, "every other session is untouched");
    }
}
