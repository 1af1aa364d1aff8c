//! Where relayed packets go: one [`Sink`] per playing (subscriber, track).
//!
//! A packet is one [`Bytes`] shared by every sink. UDP sinks send straight from the
//! relay with a non-blocking `try_send_to` (the kernel socket buffer is the queue;
//! what it refuses is counted per client);
//! interleaved sinks push onto their connection's bounded [`ConnOut`] queue. Neither
//! ever waits, so a slow client can only lose its own packets.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, Notify};

/// Default bound of queued media packets per TCP connection (about 2 s of a
/// 4 Mbit/s stream). Past it, media for that connection is dropped.
pub const DEFAULT_QUEUE_PACKETS: usize = 2048;

/// One item for a connection's writer.
#[derive(Debug)]
pub enum OutItem {
    /// An RTSP/HTTP message: never dropped, written in order.
    Control(Bytes),
    /// An interleaved packet: `$`, channel, length, then the shared payload.
    Media { header: [u8; 4], payload: Bytes },
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
    tx: mpsc::UnboundedSender<OutItem>,
    queued_media: AtomicUsize,
    queued_control: AtomicUsize,
    limit: usize,
    dropped: AtomicU64,
    closed: AtomicBool,
    close_notify: Notify,
}

/// The writer's end of a [`ConnOut`].
pub struct ConnOutReceiver {
    rx: mpsc::UnboundedReceiver<OutItem>,
    inner: Arc<ConnOutInner>,
}

impl ConnOut {
    /// A new queue holding at most `limit` media packets.
    pub fn new(limit: usize) -> (ConnOut, ConnOutReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(ConnOutInner {
            tx,
            queued_media: AtomicUsize::new(0),
            queued_control: AtomicUsize::new(0),
            limit,
            dropped: AtomicU64::new(0),
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
        if self.is_closed() {
            return false;
        }
        let Ok(len) = u16::try_from(payload.len()) else {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        if self.inner.queued_media.load(Ordering::Relaxed) >= self.inner.limit {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.inner.queued_media.fetch_add(1, Ordering::Relaxed);
        let item = OutItem::Media {
            header: rtsp::interleaved::header(channel, len),
            payload: payload.clone(),
        };
        if self.inner.tx.send(item).is_err() {
            self.inner.queued_media.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
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
        let counter = match item {
            OutItem::Control(_) => &self.inner.queued_control,
            OutItem::Media { .. } => &self.inner.queued_media,
        };
        counter.fetch_sub(1, Ordering::Relaxed);
    }
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
    },
    /// Interleaved in the client's RTSP connection (or HTTP tunnel).
    Interleaved {
        out: ConnOut,
        rtp_channel: u8,
        rtcp_channel: u8,
    },
}

impl Sink {
    /// Sends an RTP packet without waiting; a full buffer drops it.
    pub fn send_rtp(&self, pkt: &Bytes) {
        match self {
            Sink::Udp {
                rtp_socket,
                rtp_addr,
                refused,
                ..
            } => {
                if rtp_socket.try_send_to(pkt, *rtp_addr).is_err() {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
            Sink::Interleaved {
                out, rtp_channel, ..
            } => {
                out.send_media(*rtp_channel, pkt);
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        };
        let pkt = Bytes::from_static(b"\x80\x60\x00\x01rtp");
        sink(good).send_rtp(&pkt);
        sink(good).send_rtcp(&pkt);
        assert_eq!(refused.load(Ordering::Relaxed), 0);
        let mut buf = [0u8; 16];
        let n = receiver.recv(&mut buf).await.expect("delivered");
        assert_eq!(&buf[..n], &pkt[..]);
        sink(bad).send_rtp(&pkt);
        sink(bad).send_rtcp(&pkt);
        sink(bad).send_rtp(&pkt);
        assert_eq!(refused.load(Ordering::Relaxed), 3);
    }
}
