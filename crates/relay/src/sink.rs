//! Where relayed packets go: one [`Sink`] per playing (subscriber, track), gathered
//! per track in a [`SinkSet`].
//!
//! The relay hands a track's sinks **batches** (the packets of one frame, or what
//! one socket read produced), each packet one [`Bytes`] shared by every sink. UDP
//! sinks of one server socket are served together ([`super::udp_batch`]: GSO
//! trains, one `sendmmsg` for every client; the kernel socket buffer is the queue
//! and what it refuses is counted per client); each interleaved sink queues the
//! whole batch as one item on its connection's bounded [`ConnOut`] queue. Nothing
//! ever waits, so a slow client can only lose its own packets.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, Notify};

use super::subscriber::SubscriberId;
use super::udp_batch::{self, GsoState, UdpDest};

/// Default bound of queued media packets per TCP connection (about 2 s of a
/// 4 Mbit/s stream). Past it, media for that connection is dropped.
pub const DEFAULT_QUEUE_PACKETS: usize = 4096;
/// Default bound of queued media bytes per TCP connection (16 s of 4 Mbit/s;
/// twice the keyframe cache, which a new client gets at once): big packets
/// cannot make a slow reader hold more than this.
pub const DEFAULT_QUEUE_BYTES: usize = 8 * 1024 * 1024;
/// A connection whose queue overflowed and has not drained below half of its
/// bounds for this long is closed ([`ConnOut::fell_behind`]). Without it, a
/// client reading a byte now and then (never stalled long enough for the write
/// timeout) would hold a full queue of old packets for ever, and many such
/// connections, each holding a different stretch of the stream, would hold
/// that many queues' worth of memory. With it, whatever the number of
/// connections, every queued packet of a track is from its last
/// `DEFAULT_QUEUE_BYTES`-worth plus this long of stream.
pub const FALL_BEHIND_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

/// One item for a connection's writer.
#[derive(Debug)]
pub enum OutItem {
    /// An RTSP/HTTP message: never dropped, written in order.
    Control(Bytes),
    /// An interleaved packet: `$`, channel, length, then the shared payload.
    Media { header: [u8; 4], payload: Bytes },
    /// A batch of interleaved packets on one channel (each framed as `Media`),
    /// shared with every other connection that gets the same batch.
    MediaBatch {
        channel: u8,
        packets: Arc<[Bytes]>,
        bytes: usize,
    },
}

impl OutItem {
    /// Media packets and payload bytes this item holds.
    fn media_size(&self) -> (usize, usize) {
        match self {
            OutItem::Control(_) => (0, 0),
            OutItem::Media { payload, .. } => (1, payload.len()),
            OutItem::MediaBatch { packets, bytes, .. } => (packets.len(), *bytes),
        }
    }
}

/// The outgoing side of one front-end TCP connection, shared by its request handler
/// (responses) and the relay (interleaved media). Items are written in the order
/// they were queued, so a response queued before a sink is registered always goes
/// out before that sink's first packet.
#[derive(Debug, Clone)]
pub struct ConnOut {
    inner: Arc<ConnOutInner>,
}

#[derive(Debug)]
struct ConnOutInner {
    /// Unique for the life of the process (never reused, unlike an address).
    id: u64,
    tx: mpsc::UnboundedSender<OutItem>,
    queued_media: AtomicUsize,
    queued_bytes: AtomicUsize,
    queued_control: AtomicUsize,
    limit: usize,
    byte_limit: usize,
    dropped: AtomicU64,
    /// When the queue overflowed and has stayed over half full since (ms since
    /// [`millis_since_epoch`], plus one); 0: it has not, or it drained since.
    behind_since: AtomicU64,
    /// Closed for [`FALL_BEHIND_LIMIT`].
    fell_behind: AtomicBool,
    /// Channels (bit n: channel n < 64) skipping media up to the next keyframe.
    awaiting_keyframe: AtomicU64,
    closed: AtomicBool,
    close_notify: Notify,
}

/// The writer's end of a [`ConnOut`].
pub struct ConnOutReceiver {
    rx: mpsc::UnboundedReceiver<OutItem>,
    inner: Arc<ConnOutInner>,
}

impl ConnOut {
    /// A new queue holding at most `limit` media packets and
    /// [`DEFAULT_QUEUE_BYTES`] of them.
    pub fn new(limit: usize) -> (ConnOut, ConnOutReceiver) {
        ConnOut::with_limits(limit, DEFAULT_QUEUE_BYTES)
    }

    /// A new queue holding at most `limit` media packets and `byte_limit` bytes
    /// of their payloads.
    pub fn with_limits(limit: usize, byte_limit: usize) -> (ConnOut, ConnOutReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let inner = Arc::new(ConnOutInner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            tx,
            queued_media: AtomicUsize::new(0),
            queued_bytes: AtomicUsize::new(0),
            queued_control: AtomicUsize::new(0),
            limit,
            byte_limit,
            awaiting_keyframe: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            behind_since: AtomicU64::new(0),
            fell_behind: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            close_notify: Notify::new(),
        });
        (
            ConnOut {
                inner: inner.clone(),
            },
            ConnOutReceiver { rx, inner },
        )
    }

    /// Queues an RTSP message. Returns false when the connection is gone.
    pub fn send_control(&self, msg: Bytes) -> bool {
        if self.is_closed() {
            return false;
        }
        self.inner.queued_control.fetch_add(1, Ordering::Relaxed);
        if self.inner.tx.send(OutItem::Control(msg)).is_err() {
            self.inner.queued_control.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Responses waiting to be written (a client that sends requests without
    /// reading the answers makes this grow; the connection bounds it).
    pub fn queued_control(&self) -> usize {
        self.inner.queued_control.load(Ordering::Relaxed)
    }

    /// Queues an interleaved packet, or drops it (counted) when the queue is full.
    pub fn send_media(&self, channel: u8, payload: &Bytes) -> bool {
        let Ok(len) = u16::try_from(payload.len()) else {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        self.enqueue_media(OutItem::Media {
            header: rtsp::interleaved::header(channel, len),
            payload: payload.clone(),
        })
    }

    /// Queues a batch of interleaved packets as one item, or drops the whole
    /// batch (counted per packet) when it does not fit the queue's bounds.
    /// `bytes` is the sum of the packets' lengths; none may exceed 65535.
    ///
    /// `keyframe` is set for a keyframe-capable track (whether this batch starts
    /// a keyframe): once a batch of such a track was dropped, its channel skips
    /// everything up to the next keyframe rather than resume mid-GOP.
    pub fn send_media_batch(
        &self,
        channel: u8,
        packets: &Arc<[Bytes]>,
        bytes: usize,
        keyframe: Option<bool>,
    ) -> bool {
        let bit = match keyframe {
            Some(_) if channel < 64 => 1u64 << channel,
            _ => 0,
        };
        let waiting = self.inner.awaiting_keyframe.load(Ordering::Relaxed) & bit != 0;
        if waiting && keyframe != Some(true) {
            self.inner
                .dropped
                .fetch_add(packets.len() as u64, Ordering::Relaxed);
            return false;
        }
        let queued = self.enqueue_media(OutItem::MediaBatch {
            channel,
            packets: packets.clone(),
            bytes,
        });
        if queued && waiting {
            self.inner
                .awaiting_keyframe
                .fetch_and(!bit, Ordering::Relaxed);
        } else if !queued && bit != 0 && !self.is_closed() {
            self.inner
                .awaiting_keyframe
                .fetch_or(bit, Ordering::Relaxed);
        }
        queued
    }

    fn enqueue_media(&self, item: OutItem) -> bool {
        let (packets, bytes) = item.media_size();
        if self.is_closed() {
            return false;
        }
        let inner = &self.inner;
        if inner.queued_media.load(Ordering::Relaxed) + packets > inner.limit
            || inner.queued_bytes.load(Ordering::Relaxed) + bytes > inner.byte_limit
        {
            inner.dropped.fetch_add(packets as u64, Ordering::Relaxed);
            self.overflowed(std::time::Instant::now());
            return false;
        }
        inner.queued_media.fetch_add(packets, Ordering::Relaxed);
        inner.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        if inner.tx.send(item).is_err() {
            inner.queued_media.fetch_sub(packets, Ordering::Relaxed);
            inner.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// The queue could not take more media at `now`: the first overflow since
    /// it last drained starts the clock; one [`FALL_BEHIND_LIMIT`] later the
    /// connection is closed.
    fn overflowed(&self, now: std::time::Instant) {
        let inner = &self.inner;
        let now_ms = millis_since_epoch(now) + 1;
        let since = inner.behind_since.load(Ordering::Relaxed);
        if since == 0 {
            inner.behind_since.store(now_ms, Ordering::Relaxed);
        } else if now_ms.saturating_sub(since) >= FALL_BEHIND_LIMIT.as_millis() as u64 {
            inner.fell_behind.store(true, Ordering::Relaxed);
            self.close();
        }
    }

    /// Whether the connection was closed because it did not keep up: its queue
    /// overflowed and did not drain below half for [`FALL_BEHIND_LIMIT`].
    pub fn fell_behind(&self) -> bool {
        self.inner.fell_behind.load(Ordering::Relaxed)
    }

    /// Packets dropped because this connection could not keep up.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Media packets waiting to be written.
    pub fn queued(&self) -> usize {
        self.inner.queued_media.load(Ordering::Relaxed)
    }

    /// Asks the connection to close (its tasks watch [`ConnOut::closed`]).
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.close_notify.notify_waiters();
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Resolves once [`ConnOut::close`] has been called.
    pub async fn closed(&self) {
        loop {
            let notified = self.inner.close_notify.notified();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }

    /// Whether two handles are the same connection.
    pub fn same(&self, other: &ConnOut) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// This connection's number, unique for the life of the process.
    pub fn id(&self) -> u64 {
        self.inner.id
    }
}

impl ConnOutReceiver {
    /// Waits for the next item.
    pub async fn recv(&mut self) -> Option<OutItem> {
        self.rx.recv().await
    }

    /// Takes an item if one is ready.
    pub fn try_recv(&mut self) -> Option<OutItem> {
        self.rx.try_recv().ok()
    }

    /// Call after an item has been written (or discarded).
    pub fn done(&self, item: &OutItem) {
        match item {
            OutItem::Control(_) => {
                self.inner.queued_control.fetch_sub(1, Ordering::Relaxed);
            }
            media => {
                let inner = &self.inner;
                let (packets, bytes) = media.media_size();
                let media_left = inner
                    .queued_media
                    .fetch_sub(packets, Ordering::Relaxed)
                    .saturating_sub(packets);
                let bytes_left = inner
                    .queued_bytes
                    .fetch_sub(bytes, Ordering::Relaxed)
                    .saturating_sub(bytes);
                // Caught up: under half of both bounds again.
                if inner.behind_since.load(Ordering::Relaxed) != 0
                    && media_left <= inner.limit / 2
                    && bytes_left <= inner.byte_limit / 2
                {
                    inner.behind_since.store(0, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Milliseconds from the first call in this process to `t` (0 for earlier).
fn millis_since_epoch(t: std::time::Instant) -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(std::time::Instant::now);
    t.saturating_duration_since(epoch).as_millis() as u64
}

/// Where one subscriber receives one track.
#[derive(Debug, Clone)]
pub enum Sink {
    /// UDP unicast from the server's shared RTP/RTCP sockets.
    Udp {
        rtp_socket: Arc<UdpSocket>,
        rtcp_socket: Arc<UdpSocket>,
        rtp_addr: SocketAddr,
        rtcp_addr: SocketAddr,
        /// Packets (RTP and RTCP) the kernel refused to send to this client
        /// (send buffer full, unreachable), shared by the client's tracks.
        refused: Arc<AtomicU64>,
        /// Whether `rtp_socket` still takes GSO sends.
        gso: Arc<GsoState>,
    },
    /// Interleaved in the client's RTSP connection (or HTTP tunnel).
    Interleaved {
        out: ConnOut,
        rtp_channel: u8,
        rtcp_channel: u8,
    },
    /// A WebRTC viewer's track: batches go to its session's bounded queue
    /// (the session re-packetizes and encrypts them; its own RTCP is
    /// str0m's, so relayed sender reports are not passed on).
    WebRtc { queue: ViewerQueue, track: usize },
}

/// A batch of one track's relayed packets for a WebRTC viewer, shared with
/// every other viewer that gets the same batch.
#[derive(Debug, Clone)]
pub struct ViewerBatch {
    pub track: usize,
    pub packets: Arc<[Bytes]>,
    /// Whether the batch starts a keyframe (None: not a keyframe-capable track).
    pub keyframe: Option<bool>,
}

/// The bounded queue between the relay and one WebRTC viewer's session task.
/// Never waits: a full queue drops the batch (counted), and a video track that
/// lost a batch skips up to its next keyframe, as interleaved connections do.
#[derive(Debug, Clone)]
pub struct ViewerQueue {
    tx: mpsc::Sender<ViewerBatch>,
    dropped: Arc<AtomicU64>,
    /// Tracks (bit n: track n < 64) skipping media up to the next keyframe.
    awaiting_keyframe: Arc<AtomicU64>,
}

impl ViewerQueue {
    /// A queue of at most `batches` batches, and its receiving end.
    pub fn new(batches: usize) -> (ViewerQueue, mpsc::Receiver<ViewerBatch>) {
        let (tx, rx) = mpsc::channel(batches.max(1));
        (
            ViewerQueue {
                tx,
                dropped: Arc::new(AtomicU64::new(0)),
                awaiting_keyframe: Arc::new(AtomicU64::new(0)),
            },
            rx,
        )
    }

    /// Queues a batch, or drops it (counted) when the queue is full.
    pub fn send(&self, batch: ViewerBatch) -> bool {
        let bit = match batch.keyframe {
            Some(_) if batch.track < 64 => 1u64 << batch.track,
            _ => 0,
        };
        let waiting = self.awaiting_keyframe.load(Ordering::Relaxed) & bit != 0;
        let count = batch.packets.len() as u64;
        if waiting && batch.keyframe != Some(true) {
            self.dropped.fetch_add(count, Ordering::Relaxed);
            return false;
        }
        match self.tx.try_send(batch) {
            Ok(()) => {
                if waiting {
                    self.awaiting_keyframe.fetch_and(!bit, Ordering::Relaxed);
                }
                true
            }
            Err(_) => {
                self.dropped.fetch_add(count, Ordering::Relaxed);
                self.awaiting_keyframe.fetch_or(bit, Ordering::Relaxed);
                false
            }
        }
    }

    /// Packets dropped because the viewer's session could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The drop counter, shared (for [`super::stream::ClientInfo`]).
    pub fn drop_counter(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }
}

impl Sink {
    /// Sends a batch of RTP packets to this sink alone (a replayed GOP) without
    /// waiting; what the kernel or a full queue refuses is dropped and counted.
    pub fn send_rtp_batch(&self, packets: &[Bytes]) {
        if packets.is_empty() {
            return;
        }
        match self {
            Sink::Udp {
                rtp_socket,
                rtp_addr,
                refused,
                gso,
                ..
            } => {
                let dest = [UdpDest::new(*rtp_addr, refused.clone())];
                udp_batch::send(&**rtp_socket, gso, &dest, packets);
            }
            Sink::Interleaved {
                out, rtp_channel, ..
            } => {
                let (batch, bytes) = interleaved_batch(packets);
                out.send_media_batch(*rtp_channel, &batch, bytes, None);
            }
            Sink::WebRtc { queue, track } => {
                queue.send(ViewerBatch {
                    track: *track,
                    packets: packets.into(),
                    keyframe: None,
                });
            }
        }
    }

    /// Sends an RTCP packet without waiting.
    pub fn send_rtcp(&self, pkt: &Bytes) {
        match self {
            Sink::Udp {
                rtcp_socket,
                rtcp_addr,
                refused,
                ..
            } => {
                if rtcp_socket.try_send_to(pkt, *rtcp_addr).is_err() {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
            Sink::Interleaved {
                out, rtcp_channel, ..
            } => {
                out.send_media(*rtcp_channel, pkt);
            }
            Sink::WebRtc { .. } => {}
        }
    }
}

/// A batch as interleaved connections queue it: shared, with its byte count,
/// without packets too long for a `$` frame (65535 bytes).
fn interleaved_batch(packets: &[Bytes]) -> (Arc<[Bytes]>, usize) {
    let kept: Vec<Bytes> = packets
        .iter()
        .filter(|p| p.len() <= usize::from(u16::MAX))
        .cloned()
        .collect();
    let bytes = kept.iter().map(Bytes::len).sum();
    (kept.into(), bytes)
}

/// Every sink of one track, with its UDP sinks grouped by server socket so that a
/// batch reaches all of them in one `sendmmsg`. Immutable: the relay swaps in a
/// new set when a subscriber comes or goes, and fan-out reads the old one
/// without a lock.
#[derive(Debug, Default)]
pub struct SinkSet {
    all: Vec<(SubscriberId, Sink)>,
    udp: Vec<UdpGroup>,
}

#[derive(Debug)]
struct UdpGroup {
    socket: Arc<UdpSocket>,
    gso: Arc<GsoState>,
    dests: Vec<UdpDest>,
}

impl SinkSet {
    fn from_list(all: Vec<(SubscriberId, Sink)>) -> SinkSet {
        let mut udp: Vec<UdpGroup> = Vec::new();
        for (_, sink) in &all {
            if let Sink::Udp {
                rtp_socket,
                rtp_addr,
                refused,
                gso,
                ..
            } = sink
            {
                let dest = UdpDest::new(*rtp_addr, refused.clone());
                match udp.iter_mut().find(|g| Arc::ptr_eq(&g.socket, rtp_socket)) {
                    Some(g) => g.dests.push(dest),
                    None => udp.push(UdpGroup {
                        socket: rtp_socket.clone(),
                        gso: gso.clone(),
                        dests: vec![dest],
                    }),
                }
            }
        }
        SinkSet { all, udp }
    }

    /// This set plus `sink` for subscriber `id`.
    pub fn with(&self, id: SubscriberId, sink: Sink) -> SinkSet {
        let mut all = Vec::with_capacity(self.all.len() + 1);
        all.extend(self.all.iter().cloned());
        all.push((id, sink));
        SinkSet::from_list(all)
    }

    /// This set without subscriber `id`'s sinks; None if it has none.
    pub fn without(&self, id: SubscriberId) -> Option<SinkSet> {
        if !self.all.iter().any(|(s, _)| *s == id) {
            return None;
        }
        Some(SinkSet::from_list(
            self.all.iter().filter(|(s, _)| *s != id).cloned().collect(),
        ))
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// How many sinks (subscribers of this track) there are.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Sends a batch of RTP packets (in order) to every sink without waiting.
    /// `keyframe` is set on a keyframe-capable track: whether the batch starts a
    /// keyframe (a connection that had to drop packets of that track resumes
    /// only there, so that it never decodes from a broken reference).
    pub fn send_rtp_batch(&self, packets: &[Bytes], keyframe: Option<bool>) {
        if packets.is_empty() {
            return;
        }
        for g in &self.udp {
            udp_batch::send(&*g.socket, &g.gso, &g.dests, packets);
        }
        let mut shared: Option<(Arc<[Bytes]>, usize)> = None;
        let mut viewers: Option<Arc<[Bytes]>> = None;
        for (_, sink) in &self.all {
            match sink {
                Sink::Interleaved {
                    out, rtp_channel, ..
                } => {
                    let (batch, bytes) = shared.get_or_insert_with(|| interleaved_batch(packets));
                    out.send_media_batch(*rtp_channel, batch, *bytes, keyframe);
                }
                Sink::WebRtc { queue, track } => {
                    let packets = viewers.get_or_insert_with(|| packets.into());
                    queue.send(ViewerBatch {
                        track: *track,
                        packets: packets.clone(),
                        keyframe,
                    });
                }
                Sink::Udp { .. } => {}
            }
        }
    }

    /// Sends one RTCP packet to every sink without waiting.
    pub fn send_rtcp(&self, pkt: &Bytes) {
        for (_, sink) in &self.all {
            sink.send_rtcp(pkt);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize, size: usize) -> Arc<[Bytes]> {
        (0..n).map(|_| Bytes::from(vec![0u8; size])).collect()
    }

    /// A connection that overflowed and stays over half full for
    /// FALL_BEHIND_LIMIT is closed (a trickling reader cannot hold a full queue
    /// of old packets for ever); one that drains in time is not.
    #[test]
    fn a_connection_that_stays_behind_is_closed_one_that_catches_up_is_not() {
        let t0 = std::time::Instant::now();
        let (out, rx) = ConnOut::with_limits(100, 10_000);
        let packets = batch(4, 1_000);
        // 8 of 10 kB queued, then an overflow.
        assert!(out.send_media_batch(0, &packets, 4_000, None));
        assert!(out.send_media_batch(0, &packets, 4_000, None));
        assert!(!out.send_media_batch(0, &packets, 4_000, None));
        out.overflowed(t0);
        out.overflowed(t0 + FALL_BEHIND_LIMIT / 2);
        assert!(!out.is_closed());
        // One item written: 4 kB left, under half: caught up, the clock stops.
        let written = OutItem::MediaBatch {
            channel: 0,
            packets: packets.clone(),
            bytes: 4_000,
        };
        rx.done(&written);
        out.overflowed(t0 + FALL_BEHIND_LIMIT);
        assert!(!out.is_closed(), "the clock started again at this overflow");
        out.overflowed(t0 + FALL_BEHIND_LIMIT * 2 - std::time::Duration::from_millis(5));
        assert!(!out.is_closed());
        assert!(!out.fell_behind());
        // Still over half full a whole limit after the overflow: closed.
        out.overflowed(t0 + FALL_BEHIND_LIMIT * 2);
        assert!(out.is_closed());
        assert!(out.fell_behind());
    }

    /// The real overflow path starts the clock: a queue that overflows again and
    /// again without draining is closed after the limit, not before.
    #[test]
    fn overflows_start_the_fall_behind_clock() {
        let (out, _rx) = ConnOut::with_limits(2, 1 << 20);
        let packets = batch(2, 100);
        assert!(out.send_media_batch(0, &packets, 200, None));
        assert!(!out.send_media_batch(0, &packets, 200, None));
        assert!(out.inner.behind_since.load(Ordering::Relaxed) != 0);
        assert!(!out.is_closed());
        assert!(!out.fell_behind());
        out.overflowed(std::time::Instant::now() + FALL_BEHIND_LIMIT);
        assert!(out.fell_behind());
    }

    /// A WebRTC viewer's queue never waits: a full one drops the batch
    /// (counted), and its video track then skips to the next keyframe; the
    /// set hands every viewer the same shared batch.
    #[test]
    fn a_full_viewer_queue_drops_and_resumes_at_a_keyframe() {
        let (queue, mut rx) = ViewerQueue::new(1);
        let set = SinkSet::default().with(
            1,
            Sink::WebRtc {
                queue: queue.clone(),
                track: 0,
            },
        );
        let (other, mut other_rx) = ViewerQueue::new(4);
        let set = set.with(
            2,
            Sink::WebRtc {
                queue: other,
                track: 0,
            },
        );
        let pkts: Vec<Bytes> = (0..3).map(|_| Bytes::from_static(b"\x80\x60rtp")).collect();
        set.send_rtp_batch(&pkts, Some(true));
        set.send_rtp_batch(&pkts, Some(false));
        assert_eq!(queue.dropped(), 3, "the second batch did not fit");
        let first = rx.try_recv().expect("the first batch");
        let shared = other_rx.try_recv().expect("the other viewer's");
        assert!(
            Arc::ptr_eq(&first.packets, &shared.packets),
            "one batch for both"
        );
        // Room again, but not a keyframe: skipped; the next keyframe goes.
        set.send_rtp_batch(&pkts, Some(false));
        assert_eq!(queue.dropped(), 6);
        assert!(rx.try_recv().is_err());
        set.send_rtp_batch(&pkts, Some(true));
        assert_eq!(rx.try_recv().expect("the keyframe").keyframe, Some(true));
    }

    /// What the kernel refuses to send is counted for the client, not ignored.
    #[tokio::test]
    async fn udp_sends_the_kernel_refuses_are_counted() {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
        // tokio's try_send_to needs the reactor to have seen the socket writable.
        socket.writable().await.expect("writable");
        let receiver = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let good = receiver.local_addr().expect("addr");
        // An IPv6 destination on an IPv4 socket: refused at once by the kernel.
        let bad: SocketAddr = "[::1]:9".parse().expect("addr");
        let refused = Arc::new(AtomicU64::new(0));
        let sink = |addr| Sink::Udp {
            rtp_socket: socket.clone(),
            rtcp_socket: socket.clone(),
            rtp_addr: addr,
            rtcp_addr: addr,
            refused: refused.clone(),
            gso: Arc::new(GsoState::new()),
        };
        let pkt = Bytes::from_static(b"\x80\x60\x00\x01rtp");
        sink(good).send_rtp_batch(std::slice::from_ref(&pkt));
        sink(good).send_rtcp(&pkt);
        assert_eq!(refused.load(Ordering::Relaxed), 0);
        let mut buf = [0u8; 16];
        let n = receiver.recv(&mut buf).await.expect("delivered");
        assert_eq!(&buf[..n], &pkt[..]);
        sink(bad).send_rtp_batch(std::slice::from_ref(&pkt));
        sink(bad).send_rtcp(&pkt);
        sink(bad).send_rtp_batch(std::slice::from_ref(&pkt));
        assert_eq!(refused.load(Ordering::Relaxed), 3);
    }
}
