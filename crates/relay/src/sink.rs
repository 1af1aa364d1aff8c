//! Where relayed packets go: one [`Sink`] per playing (subscriber, track), gathered
//! per track in a [`SinkSet`].
//!
//! The relay hands a track's sinks **batches** (the packets of one frame, or what
//! one socket read produced), each packet one [`Bytes`] shared by every sink. UDP
//! sinks of one server socket are served together ([`super::udp_batch`]: GSO
//! trains, one `sendmmsg` for every client; the kernel socket buffer is the queue
//! and what it refuses is counted per client); each interleaved sink queues the
//! whole batch as one item on its connection's bounded queue (an
//! [`InterleavedQueue`], the server's `ConnOut`). Nothing
//! ever waits, so a slow client can only lose its own packets.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::subscriber::SubscriberId;
use super::udp_batch::{self, GsoState, UdpDest};

/// A client connection's output queue as the relay sees it: interleaved
/// media goes in without waiting (dropped and counted when the queue is full)
/// and its drop count is read for the admin port. The queue itself, which also
/// carries the connection's RTSP responses in order with the media, is the
/// server's (`server::conn_out::ConnOut`).
pub trait InterleavedQueue: Send + Sync + std::fmt::Debug {
    /// Queues one interleaved packet (a relayed RTCP packet), or drops it
    /// (counted) when the queue is full.
    fn send_media(&self, channel: u8, payload: &Bytes) -> bool;
    /// Queues a batch of interleaved packets as one item, or drops the whole
    /// batch (counted per packet) when it does not fit. `bytes` is the sum of
    /// the packets' lengths; none exceeds 65535. `keyframe` is set for a
    /// keyframe-capable track (whether this batch starts a keyframe): once a
    /// batch of such a track was dropped, the queue may skip that channel up to
    /// the next keyframe rather than resume mid-GOP.
    fn send_media_batch(
        &self,
        channel: u8,
        packets: &Arc<[Bytes]>,
        bytes: usize,
        keyframe: Option<bool>,
    ) -> bool;
    /// Packets dropped because the connection could not keep up.
    fn dropped(&self) -> u64;
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
        out: Arc<dyn InterleavedQueue>,
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
