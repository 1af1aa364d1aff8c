//! The RTSP channel to a back end ([`Channel`]: a byte stream both ways plus
//! what was already read from it), what carries it, and dialling TCP: below
//! both the connector (`connector.rs`) and the HTTP tunnel (`http_tunnel.rs`),
//! which each make channels.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use rtsp::url::RtspUrl;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::failure::Failure;

/// The read side of a channel.
pub type ChannelReader = Box<dyn AsyncRead + Send + Unpin>;
/// The write side of a channel.
pub type ChannelWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// What carries a channel (for log lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carrier {
    Tcp,
    /// RTSP over TLS (`rtsps://`).
    Tls,
    /// A client connection the server handed over (REGISTER `reuse_connection`).
    Handed,
    /// An RTSP-over-HTTP tunnel: a GET connection for what the back end sends,
    /// a POST connection for our requests, base64-encoded (`-T`).
    HttpTunnel,
}

impl std::fmt::Display for Carrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Carrier::Tcp => "TCP",
            Carrier::Tls => "TLS",
            Carrier::Handed => "the connection the back end registered on",
            Carrier::HttpTunnel => "an RTSP-over-HTTP tunnel",
        })
    }
}

/// An RTSP channel to the back end.
pub struct Channel {
    pub reader: ChannelReader,
    pub writer: ChannelWriter,
    /// The back end's address: media from it is accepted, UDP sockets are opened
    /// in its family.
    pub peer: SocketAddr,
    /// Bytes already read from the back end and not yet parsed.
    pub buffered: BytesMut,
    pub carrier: Carrier,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("peer", &self.peer)
            .field("buffered", &self.buffered.len())
            .field("carrier", &self.carrier)
            .finish_non_exhaustive()
    }
}

/// A channel waiting to be taken by the first connection attempt of a source.
#[derive(Clone, Default)]
pub struct Handover(Arc<Mutex<Option<Channel>>>);

impl Handover {
    pub fn new(channel: Channel) -> Handover {
        Handover(Arc::new(Mutex::new(Some(channel))))
    }

    /// The channel, once.
    pub fn take(&self) -> Option<Channel> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// The channel was not taken yet.
    #[must_use]
    pub fn is_waiting(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}

impl std::fmt::Debug for Handover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handover")
    }
}

/// A channel over a TCP connection.
pub fn tcp_channel(tcp: TcpStream, carrier: Carrier) -> Result<Channel, Failure> {
    let peer = tcp.peer_addr().map_err(Failure::lost)?;
    let (rd, wr) = tcp.into_split();
    Ok(Channel {
        reader: Box::new(rd),
        writer: Box::new(wr),
        peer,
        buffered: BytesMut::new(),
        carrier,
    })
}

/// Connects to the host of `url` on `port` (every address it resolves to, in
/// order) within `timeout`.
pub async fn dial_tcp(url: &RtspUrl, port: u16, timeout: Duration) -> Result<TcpStream, Failure> {
    let host = url.connect_target().0;
    let attempt = async {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| e.to_string())?
            .collect();
        let mut last = String::from("no address");
        for a in addrs {
            match TcpStream::connect(a).await {
                Ok(s) => return Ok(s),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(Failure::Connect(e)),
        Err(_) => Err(Failure::Connect(format!(
            "timed out after {} s",
            timeout.as_secs()
        ))),
    }
}
