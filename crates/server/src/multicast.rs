//! Multicast to clients (`--multicast-range`): one group per track of a stream,
//! shared by every multicast client of that stream.
//!
//! [`Groups`] is the bookkeeping, sans-IO: a stream's first multicast SETUP
//! takes one address of the range for the stream (track `k` gets the port pair
//! `port + 2k`, `port + 2k + 1`), stable while the stream has multicast clients
//! and freed when the last one leaves (the lowest free address is taken next).
//! The group's delivery is a subscriber of the stream of its own (one UDP sink
//! per track whose destination is the group: one send per packet whatever the
//! number of clients), started by the first client's PLAY (with the keyframe
//! cache replayed once, to the group) and stopped when no client of the group
//! plays any more. Clients count in the source's demand one by one
//! ([`Stream::watch`]); the group's delivery does not.
//!
//! [`Multicast`] is the thin edge over it: the lock, the shared IPv4 media
//! sockets (their TTL set once at start-up), and the calls into the stream.
//! Lock order: a session, then the groups, then the stream.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::client_sessions::ClientSession;
use super::media_udp::UdpPair;
use relay::{Closer, PlayOptions, Sink, StartPoint, Stream, SubscriberId};
use tasks::Tasks;

/// Default multicast TTL (`--multicast-ttl`).
pub const DEFAULT_MULTICAST_TTL: u8 = 16;
/// Default first multicast RTP port (`--multicast-port`).
pub const DEFAULT_MULTICAST_PORT: u16 = 20000;

/// Multicast to clients (`--multicast-range`, `--multicast-ttl`, `--multicast-port`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MulticastConfig {
    /// The range's network address (inside 224.0.0.0/4, host bits zero).
    pub network: Ipv4Addr,
    /// The range's prefix length (4..=32).
    pub prefix_len: u8,
    /// TTL of the multicast packets we send (1..=255).
    pub ttl: u8,
    /// RTP port of a stream's first track (even); track `k` gets `port + 2k`.
    pub port: u16,
}

/// Most groups (streams with multicast clients at once), whatever the range.
pub const MAX_GROUPS: u32 = 4096;

/// Why a multicast SETUP cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// Every address of the range is taken (453 Not Enough Bandwidth).
    #[error("every multicast address of the range is in use")]
    Exhausted,
    /// The stream's tracks do not fit below port 65535 (461).
    #[error("the stream's tracks need ports above 65535 from the multicast port")]
    PortsExhausted,
}

impl GroupError {
    /// The RTSP status to answer with.
    pub fn status(self) -> u16 {
        match self {
            GroupError::Exhausted => 453,
            GroupError::PortsExhausted => 461,
        }
    }
}

/// The groups of one stream.
#[derive(Debug)]
struct StreamGroup {
    slot: u32,
    addr: Ipv4Addr,
    /// The group's own subscriber in the stream.
    sub: SubscriberId,
    /// Members (client subscribers) and whether each plays.
    members: BTreeMap<SubscriberId, bool>,
    /// Members by the address their RTSP requests came from (their receiver
    /// reports to the group's RTCP port keep them alive).
    peers: HashMap<IpAddr, BTreeSet<SubscriberId>>,
    /// Tracks whose group sink is in the fan-out (empty: not sending).
    sending: BTreeSet<usize>,
    /// Stream generation of the delivery.
    generation: u64,
}

/// What a member's PLAY asks of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// The group's subscriber.
    pub sub: SubscriberId,
    pub generation: u64,
    /// Every track the group now sends, with its group (RTP address).
    pub tracks: Vec<(usize, SocketAddrV4)>,
    /// The group was not sending: replay the keyframe cache to it.
    pub first: bool,
}

/// Group allocation and membership (sans-IO).
#[derive(Debug)]
pub struct Groups {
    cfg: MulticastConfig,
    capacity: u32,
    used: BTreeSet<u32>,
    streams: HashMap<String, StreamGroup>,
}

impl Groups {
    pub fn new(cfg: MulticastConfig) -> Groups {
        let size = 1u64 << (32 - u32::from(cfg.prefix_len.clamp(4, 32)));
        Groups {
            cfg,
            capacity: u32::try_from(size.min(u64::from(MAX_GROUPS))).unwrap_or(MAX_GROUPS),
            used: BTreeSet::new(),
            streams: HashMap::new(),
        }
    }

    pub fn ttl(&self) -> u8 {
        self.cfg.ttl
    }

    /// The RTP address of `track`'s group in the stream's address.
    fn group(&self, addr: Ipv4Addr, track: usize) -> Result<SocketAddrV4, GroupError> {
        let port = u32::from(self.cfg.port) + 2 * u32::try_from(track).unwrap_or(u32::MAX / 4);
        match u16::try_from(port + 1) {
            Ok(_) => Ok(SocketAddrV4::new(addr, port as u16)),
            Err(_) => Err(GroupError::PortsExhausted),
        }
    }

    /// A member's SETUP of `track`: its group, the stream's address taken
    /// first if the stream has none. `new_sub` names the group's subscriber of
    /// a new group.
    pub fn join(
        &mut self,
        stream: &str,
        generation: u64,
        track: usize,
        member: (SubscriberId, IpAddr),
        new_sub: impl FnOnce() -> SubscriberId,
    ) -> Result<SocketAddrV4, GroupError> {
        let (member, peer) = member;
        let addr = match self.streams.get(stream) {
            Some(g) => g.addr,
            None => {
                let slot = (0..self.capacity)
                    .find(|s| !self.used.contains(s))
                    .ok_or(GroupError::Exhausted)?;
                let addr = Ipv4Addr::from(u32::from(self.cfg.network).wrapping_add(slot));
                // Checked before anything is taken.
                self.group(addr, track)?;
                self.used.insert(slot);
                self.streams.insert(
                    stream.to_owned(),
                    StreamGroup {
                        slot,
                        addr,
                        sub: new_sub(),
                        members: BTreeMap::new(),
                        peers: HashMap::new(),
                        sending: BTreeSet::new(),
                        generation,
                    },
                );
                addr
            }
        };
        let group = self.group(addr, track)?;
        if let Some(g) = self.streams.get_mut(stream) {
            g.members.entry(member).or_insert(false);
            g.peers.entry(peer).or_default().insert(member);
        }
        Ok(group)
    }

    /// A member's PLAY of `tracks`: `Some` when the group's delivery must be
    /// (re)started to include them; None when it already sends them (or the
    /// member is unknown).
    pub fn play(&mut self, stream: &str, member: SubscriberId, tracks: &[usize]) -> Option<Start> {
        let g = self.streams.get_mut(stream)?;
        *g.members.get_mut(&member)? = true;
        let first = g.sending.is_empty();
        let before = g.sending.len();
        g.sending.extend(tracks.iter().copied());
        if !first && g.sending.len() == before {
            return None;
        }
        let (addr, sub, generation) = (g.addr, g.sub, g.generation);
        let sending: Vec<usize> = g.sending.iter().copied().collect();
        let tracks = sending
            .into_iter()
            .filter_map(|t| Some((t, self.group(addr, t).ok()?)))
            .collect();
        Some(Start {
            sub,
            generation,
            tracks,
            first,
        })
    }

    /// The member no longer plays (PAUSE). Returns the group's subscriber
    /// when its delivery must stop (no member plays any more).
    pub fn pause(&mut self, stream: &str, member: SubscriberId) -> Option<SubscriberId> {
        let g = self.streams.get_mut(stream)?;
        if let Some(p) = g.members.get_mut(&member) {
            *p = false;
        }
        Self::idle(g)
    }

    /// The member is gone (TEARDOWN, timeout, disconnect). Returns the group's
    /// subscriber when its delivery must stop; the stream's address is freed
    /// with its last member.
    pub fn leave(&mut self, stream: &str, member: SubscriberId) -> Option<SubscriberId> {
        let g = self.streams.get_mut(stream)?;
        g.members.remove(&member)?;
        g.peers.retain(|_, m| {
            m.remove(&member);
            !m.is_empty()
        });
        let stop = Self::idle(g);
        if g.members.is_empty() {
            let (slot, sub, sending) = (g.slot, g.sub, !g.sending.is_empty());
            self.used.remove(&slot);
            self.streams.remove(stream);
            return stop.or(sending.then_some(sub));
        }
        stop
    }

    /// The stream dropped the group's delivery itself (its tracks changed):
    /// the next PLAY starts it again, at `generation`.
    pub fn stopped(&mut self, stream: &str, generation: u64) {
        if let Some(g) = self.streams.get_mut(stream) {
            g.sending.clear();
            g.generation = generation;
        }
    }

    fn idle(g: &mut StreamGroup) -> Option<SubscriberId> {
        if g.sending.is_empty() || g.members.values().any(|p| *p) {
            return None;
        }
        g.sending.clear();
        Some(g.sub)
    }

    /// The members of the stream's group whose requests came from `peer`.
    pub fn members_from(&self, stream: &str, peer: IpAddr) -> Vec<SubscriberId> {
        self.streams
            .get(stream)
            .and_then(|g| g.peers.get(&peer))
            .map(|m| m.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Streams with a group now.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

/// Multicast delivery of the server: [`Groups`] and the IPv4 media sockets the
/// groups are sent from.
pub struct Multicast {
    groups: Mutex<Groups>,
    /// The session of each member (to keep it alive on its receiver reports).
    sessions: Mutex<HashMap<SubscriberId, Weak<Mutex<ClientSession>>>>,
    /// Per stream, the tasks reading the clients' RTCP on its groups.
    rtcp_tasks: Mutex<HashMap<String, Vec<JoinHandle<Option<()>>>>>,
    /// Their owner (see [`Multicast::set_tasks`]).
    tasks: std::sync::OnceLock<Tasks>,
    media: UdpPair,
    /// What the kernel refused to send to the groups (one counter for all).
    refused: Arc<AtomicU64>,
    me: Weak<Multicast>,
}

/// A multicast SETUP's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joined {
    pub group: SocketAddrV4,
    pub ttl: u8,
    /// The address our packets to the group leave from (source-specific
    /// receivers filter on it), when the routing table knows one.
    pub source: Option<Ipv4Addr>,
}

impl Multicast {
    /// `media` is the server's IPv4 media socket pair; its TTL for multicast
    /// is set here.
    pub fn new(cfg: MulticastConfig, media: UdpPair) -> std::io::Result<Arc<Multicast>> {
        media.rtp.set_multicast_ttl_v4(u32::from(cfg.ttl))?;
        media.rtcp.set_multicast_ttl_v4(u32::from(cfg.ttl))?;
        if source_towards(SocketAddrV4::new(cfg.network, cfg.port)).is_none() {
            warn!(
                "no route to the multicast range {}/{}: multicast clients will get nothing until one exists (e.g. ip route add 224.0.0.0/4 dev <interface>)",
                cfg.network, cfg.prefix_len
            );
        }
        Ok(Arc::new_cyclic(|me| Multicast {
            groups: Mutex::new(Groups::new(cfg)),
            sessions: Mutex::new(HashMap::new()),
            rtcp_tasks: Mutex::new(HashMap::new()),
            tasks: std::sync::OnceLock::new(),
            media,
            refused: Arc::new(AtomicU64::new(0)),
            me: me.clone(),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Groups> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A client's multicast SETUP of `track`; `session` is the client's (whose
    /// lock the caller may hold), `peer` where its requests come from.
    pub fn setup(
        &self,
        stream: &Stream,
        generation: u64,
        track: usize,
        member: (SubscriberId, IpAddr),
        session: Weak<Mutex<ClientSession>>,
    ) -> Result<Joined, GroupError> {
        let mut g = self.lock();
        let had = g.len();
        let peer = member.1.to_canonical();
        let joined = g.join(stream.name(), generation, track, (member.0, peer), || {
            stream.new_subscriber()
        });
        let (allocated, ttl) = (g.len() > had, g.ttl());
        drop(g);
        match joined {
            Ok(group) => {
                lock_map(&self.sessions).insert(member.0, session);
                if allocated {
                    info!(stream = %stream.name(), "multicast group {} allocated", group.ip());
                }
                Ok(Joined {
                    group,
                    ttl,
                    source: source_towards(group),
                })
            }
            Err(e) => {
                warn!(stream = %stream.name(), "multicast SETUP refused: {e}");
                Err(e)
            }
        }
    }

    /// A member's PLAY: starts (or widens) the group's delivery, then makes the
    /// member a player of the stream. `respond` gets the RTP-Info values: the
    /// first packet the group got when this PLAY started it, else the next one.
    #[allow(clippy::too_many_arguments)]
    pub fn play(
        &self,
        stream: &Arc<Stream>,
        member: SubscriberId,
        generation: u64,
        tracks: &[usize],
        closer: Arc<Closer>,
        now: Instant,
        respond: impl FnOnce(&[StartPoint]),
    ) -> Option<()> {
        let mut g = self.lock();
        let mut started: Option<Vec<StartPoint>> = None;
        if let Some(start) = g.play(stream.name(), member, tracks) {
            let sinks = start
                .tracks
                .iter()
                .map(|(t, group)| (*t, self.sink(*group)))
                .collect();
            let options = PlayOptions {
                replay: start.first,
                counted: false,
            };
            let ok = stream.play_with(
                start.sub,
                generation,
                sinks,
                self.group_closer(stream),
                now,
                options,
                |points| started = Some(points.to_vec()),
            );
            if ok.is_none() {
                g.stopped(stream.name(), generation);
                return None;
            }
            if start.first {
                info!(stream = %stream.name(), "multicast group started");
            } else {
                started = None;
            }
            self.listen_rtcp(stream.name(), &start.tracks);
        }
        drop(g);
        stream.watch(member, generation, tracks, closer, now, |now_points| {
            respond(started.as_deref().unwrap_or(now_points))
        })
    }

    /// A member paused: the group stops when nobody of it plays.
    pub fn pause(&self, stream: &Stream, member: SubscriberId) {
        let mut g = self.lock();
        if let Some(sub) = g.pause(stream.name(), member) {
            stream.stop(sub);
            self.stop_rtcp(stream.name());
            info!(stream = %stream.name(), "multicast group stopped (no client plays)");
        }
    }

    /// Makes `tasks` the owner of the RTCP reading tasks (set once, before
    /// serving; without one they own themselves).
    pub fn set_tasks(&self, tasks: &Tasks) {
        let _ = self.tasks.set(tasks.clone());
    }

    /// A member is gone.
    pub fn leave(&self, stream: &Stream, member: SubscriberId) {
        let mut g = self.lock();
        let stop = g.leave(stream.name(), member);
        if let Some(sub) = stop {
            stream.stop(sub);
            self.stop_rtcp(stream.name());
            info!(stream = %stream.name(), "multicast group stopped (no client plays)");
        }
        drop(g);
        lock_map(&self.sessions).remove(&member);
    }

    /// Reads the clients' RTCP on the groups of `tracks` (their RTCP ports),
    /// in place of what read it before. Needs a tokio runtime (the server's);
    /// a port another process holds without SO_REUSEADDR is skipped.
    fn listen_rtcp(&self, stream: &str, tracks: &[(usize, SocketAddrV4)]) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut tasks = Vec::new();
        for (_, group) in tracks {
            let port = group.port().wrapping_add(1);
            let socket = net::bind_multicast(*group.ip(), port, None, 64 * 1024).and_then(|s| {
                let _guard = rt.enter();
                tokio::net::UdpSocket::from_std(s)
            });
            match socket {
                Ok(socket) => {
                    let _guard = rt.enter();
                    let task = receive_rtcp(self.me.clone(), stream.to_owned(), socket);
                    tasks.push(self.tasks.get_or_init(Tasks::new).spawn(task));
                }
                Err(e) => debug!(stream, "cannot read RTCP on {}:{port}: {e}", group.ip()),
            }
        }
        let old = lock_map(&self.rtcp_tasks).insert(stream.to_owned(), tasks);
        old.into_iter().flatten().for_each(|t| t.abort());
    }

    fn stop_rtcp(&self, stream: &str) {
        if let Some(tasks) = lock_map(&self.rtcp_tasks).remove(stream) {
            tasks.iter().for_each(JoinHandle::abort);
        }
    }

    /// A receiver report from `peer` on the stream's group: the sessions of
    /// that address in the group are alive (the session locks are taken with
    /// no other lock held).
    pub fn touch(&self, stream: &str, peer: IpAddr, now: Instant) {
        let members = self.lock().members_from(stream, peer);
        if members.is_empty() {
            return;
        }
        let sessions: Vec<Weak<Mutex<ClientSession>>> = {
            let map = lock_map(&self.sessions);
            members.iter().filter_map(|m| map.get(m).cloned()).collect()
        };
        for s in sessions.iter().filter_map(Weak::upgrade) {
            let mut st = super::client_sessions::lock(&s);
            st.last_activity = now;
            debug!(session = %st.id, "receiver report on the multicast group");
        }
    }

    /// The sink of one group: the shared IPv4 media sockets, the group as
    /// destination (RTP on the group's port, RTCP on the next).
    fn sink(&self, group: SocketAddrV4) -> Sink {
        let rtp = SocketAddr::V4(group);
        let rtcp = SocketAddr::new(IpAddr::V4(*group.ip()), group.port().wrapping_add(1));
        Sink::Udp {
            rtp_socket: self.media.rtp.clone(),
            rtcp_socket: self.media.rtcp.clone(),
            rtp_addr: rtp,
            rtcp_addr: rtcp,
            refused: self.refused.clone(),
            gso: self.media.gso.clone(),
        }
    }

    /// Called by the stream when it drops the group's delivery by itself.
    fn group_closer(&self, stream: &Arc<Stream>) -> Arc<Closer> {
        let me = self.me.clone();
        let stream = Arc::downgrade(stream);
        Arc::new(Box::new(move || {
            if let (Some(me), Some(stream)) = (me.upgrade(), stream.upgrade()) {
                me.lock().stopped(stream.name(), stream.generation());
                me.stop_rtcp(stream.name());
            }
        }))
    }
}

fn lock_map<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads one group's RTCP port: a valid compound with a receiver report (not
/// our own sender reports, which loop back) keeps its sender's sessions alive.
async fn receive_rtcp(me: Weak<Multicast>, stream: String, socket: tokio::net::UdpSocket) {
    let mut buf = vec![0u8; 2048];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let pkt = &buf[..n];
                if !rtp::rtcp::is_valid_compound(pkt)
                    || rtp::rtcp::receiver_report_ssrcs(pkt).is_empty()
                {
                    continue;
                }
                let Some(me) = me.upgrade() else {
                    return;
                };
                me.touch(&stream, from.ip().to_canonical(), Instant::now());
            }
            Err(e) => {
                debug!(stream, "multicast RTCP receive: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// The local address the kernel sends to `group` from (a route lookup: a UDP
/// socket connected to the group sends nothing).
fn source_towards(group: SocketAddrV4) -> Option<Ipv4Addr> {
    let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    s.connect(group).ok()?;
    match s.local_addr().ok()?.ip() {
        IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
        _ => None,
    }
}

impl super::client_sessions::GroupMembership for Multicast {
    fn leave(&self, stream: &Stream, member: SubscriberId) {
        Multicast::leave(self, stream, member);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(range: &str, len: u8) -> MulticastConfig {
        MulticastConfig {
            network: range.parse().unwrap(),
            prefix_len: len,
            ttl: 16,
            port: 20000,
        }
    }

    fn peer(n: u64) -> IpAddr {
        IpAddr::from([192, 0, 2, n as u8])
    }

    fn ids() -> impl FnMut() -> SubscriberId {
        let mut n = 100;
        move || {
            n += 1;
            n
        }
    }

    #[test]
    fn a_stream_gets_one_address_and_a_port_pair_per_track() {
        let mut g = Groups::new(cfg("239.255.42.0", 24));
        let mut id = ids();
        let v = g.join("cam", 0, 0, (1, peer(1)), &mut id).unwrap();
        let a = g.join("cam", 0, 1, (1, peer(1)), &mut id).unwrap();
        assert_eq!(v, "239.255.42.0:20000".parse().unwrap());
        assert_eq!(a, "239.255.42.0:20002".parse().unwrap());
        // A second client of the stream shares them.
        assert_eq!(g.join("cam", 0, 0, (2, peer(2)), &mut id).unwrap(), v);
        assert_eq!(g.join("cam", 0, 1, (2, peer(2)), &mut id).unwrap(), a);
        // Another stream gets the next address.
        let other = g.join("door", 0, 0, (3, peer(3)), &mut id).unwrap();
        assert_eq!(other, "239.255.42.1:20000".parse().unwrap());
        assert_eq!(g.len(), 2);
    }

    #[test]
    fn the_group_starts_with_the_first_player_and_stops_with_the_last() {
        let mut g = Groups::new(cfg("239.255.42.0", 24));
        let mut id = ids();
        g.join("cam", 7, 0, (1, peer(1)), &mut id).unwrap();
        g.join("cam", 7, 0, (2, peer(2)), &mut id).unwrap();
        let start = g.play("cam", 1, &[0]).expect("first PLAY starts the group");
        assert!(start.first);
        assert_eq!(start.sub, 101);
        assert_eq!(start.generation, 7);
        assert_eq!(
            start.tracks,
            vec![(0, "239.255.42.0:20000".parse().unwrap())]
        );
        assert_eq!(g.play("cam", 2, &[0]), None, "already sending");
        // A client that also wants track 2 widens the delivery, no replay.
        g.join("cam", 7, 1, (2, peer(2)), &mut id).unwrap();
        let wider = g.play("cam", 2, &[0, 1]).unwrap();
        assert!(!wider.first);
        assert_eq!(wider.tracks.len(), 2);
        assert_eq!(g.pause("cam", 1), None, "client 2 still plays");
        assert_eq!(g.pause("cam", 2), Some(101), "nobody plays: stop");
        assert_eq!(g.pause("cam", 2), None, "stopped once");
        assert!(g.play("cam", 1, &[0]).unwrap().first, "starts again");
        assert_eq!(g.members_from("cam", peer(2)), vec![2]);
        assert_eq!(g.members_from("cam", peer(9)), Vec::<SubscriberId>::new());
        assert_eq!(g.leave("cam", 2), None);
        assert!(
            g.members_from("cam", peer(2)).is_empty(),
            "gone with the member"
        );
        assert_eq!(g.leave("cam", 1), Some(101));
        assert!(g.is_empty(), "the address is freed with the last member");
        assert_eq!(g.leave("cam", 1), None);
        assert_eq!(g.play("cam", 1, &[0]), None, "unknown member");
    }

    #[test]
    fn exhaustion_release_and_reuse() {
        let mut g = Groups::new(cfg("239.255.42.0", 31));
        let mut id = ids();
        assert_eq!(
            g.join("a", 0, 0, (1, peer(1)), &mut id).unwrap().ip(),
            &Ipv4Addr::new(239, 255, 42, 0)
        );
        assert_eq!(
            g.join("b", 0, 0, (2, peer(2)), &mut id).unwrap().ip(),
            &Ipv4Addr::new(239, 255, 42, 1)
        );
        assert_eq!(
            g.join("c", 0, 0, (3, peer(3)), &mut id),
            Err(GroupError::Exhausted)
        );
        assert_eq!(GroupError::Exhausted.status(), 453);
        assert_eq!(g.len(), 2, "a refused SETUP takes nothing");
        // A member that never played leaves: nothing to stop, address freed.
        assert_eq!(g.leave("a", 1), None);
        assert_eq!(
            g.join("c", 0, 0, (3, peer(3)), &mut id).unwrap().ip(),
            &Ipv4Addr::new(239, 255, 42, 0),
            "the lowest free address is reused"
        );
    }

    #[test]
    fn ports_must_fit() {
        let mut c = cfg("239.1.0.0", 16);
        c.port = 65530;
        let mut g = Groups::new(c);
        let mut id = ids();
        assert_eq!(
            g.join("s", 0, 2, (1, peer(1)), &mut id).unwrap().port(),
            65534
        );
        assert_eq!(
            g.join("s", 0, 3, (1, peer(1)), &mut id),
            Err(GroupError::PortsExhausted)
        );
        assert_eq!(GroupError::PortsExhausted.status(), 461);
        assert_eq!(
            g.join("t", 0, 3, (2, peer(2)), &mut id),
            Err(GroupError::PortsExhausted)
        );
        assert_eq!(g.len(), 1, "nothing taken for a SETUP that cannot fit");
    }

    #[test]
    fn a_big_range_is_bounded() {
        let g = Groups::new(cfg("224.0.0.0", 4));
        assert_eq!(g.capacity, MAX_GROUPS);
        let g = Groups::new(cfg("239.255.42.7", 32));
        assert_eq!(g.capacity, 1);
    }

    #[test]
    fn the_stream_stopping_the_group_lets_the_next_play_start_it() {
        let mut g = Groups::new(cfg("239.255.42.0", 24));
        let mut id = ids();
        g.join("cam", 0, 0, (1, peer(1)), &mut id).unwrap();
        assert!(g.play("cam", 1, &[0]).unwrap().first);
        g.stopped("cam", 1);
        let again = g.play("cam", 1, &[0]).unwrap();
        assert!(again.first);
        assert_eq!(again.generation, 1);
    }
}
