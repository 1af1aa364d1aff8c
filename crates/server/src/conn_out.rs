//! The outgoing side of one front-end connection: its RTSP (or HTTP) messages
//! and the interleaved media the relay hands it, in one bounded FIFO that the
//! connection's writer drains. The relay sees it as an
//! [`InterleavedQueue`](relay::InterleavedQueue); everything else about it
//! (responses, closing, falling behind) is the server's.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

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

impl relay::InterleavedQueue for ConnOut {
    fn send_media(&self, channel: u8, payload: &Bytes) -> bool {
        ConnOut::send_media(self, channel, payload)
    }

    fn send_media_batch(
        &self,
        channel: u8,
        packets: &Arc<[Bytes]>,
        bytes: usize,
        keyframe: Option<bool>,
    ) -> bool {
        ConnOut::send_media_batch(self, channel, packets, bytes, keyframe)
    }

    fn dropped(&self) -> u64 {
        ConnOut::dropped(self)
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
}
