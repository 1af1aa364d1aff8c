//! Receiving RTP and RTCP datagrams in batches (`recvmmsg`, kernel receive
//! timestamps): shared by the RTSP UDP clients, the WHEP clients and the
//! floor's receivers.

use std::cell::RefCell;
use std::io;
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::probe::now_ns;
use crate::stats::ClientStats;
use crate::sys::{self, RecvBatch};

thread_local! {
    static BATCH: RefCell<Option<RecvBatch>> = const { RefCell::new(None) };
}

/// Reads every datagram waiting on `sock` (until it would block) into `on_packet(bytes, recv_ns, truncated)`.
pub(crate) fn recv_all(
    sock: &UdpSocket,
    max_packet: usize,
    on_packet: &mut dyn FnMut(&[u8], u64, bool),
) -> io::Result<()> {
    let fd = sock.as_raw_fd();
    loop {
        let r = sock.try_io(Interest::READABLE, || {
            BATCH.with(|cell| {
                let mut guard = cell.borrow_mut();
                let b = guard.get_or_insert_with(|| RecvBatch::new(max_packet.max(2048)));
                let n = b.recv(fd)?;
                let mut fallback = None;
                for i in 0..n {
                    let (data, ts, truncated) = b.get(i);
                    let t = match ts {
                        Some(t) => t,
                        None => *fallback.get_or_insert_with(now_ns),
                    };
                    on_packet(data, t, truncated);
                }
                Ok(n)
            })
        });
        match r {
            Ok(n) if n < sys::BATCH => return Ok(()),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Receives RTP on `rtp` (and drains `rtcp`) into `st` until `end`.
pub async fn receive_udp(
    rtp: &UdpSocket,
    rtcp: Option<&UdpSocket>,
    st: &mut ClientStats,
    end: Instant,
    max_packet: usize,
) -> io::Result<()> {
    let sleep = tokio::time::sleep_until(end);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut sleep => return Ok(()),
            r = rtp.readable() => {
                r?;
                recv_all(rtp, max_packet, &mut |d, t, tr| {
                    if tr { st.truncated += 1; }
                    st.on_rtp(d, t);
                })?;
            }
            r = async { match rtcp { Some(s) => s.readable().await, None => std::future::pending().await } } => {
                r?;
                if let Some(s) = rtcp {
                    recv_all(s, max_packet, &mut |_, _, _| st.rtcp += 1)?;
                }
            }
        }
    }
}
