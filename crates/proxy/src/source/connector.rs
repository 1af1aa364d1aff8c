//! How a source reaches its back end: a connector yields an RTSP [`Channel`] (a
//! byte stream both ways plus what was already read from it). The driver's loop
//! and the sans-IO session machine see only the channel, never what carries it.
//!
//! Carriers: plain TCP (`rtsp://`), and a connection handed over by the server
//! (REGISTER with `reuse_connection`, used for the first attempt only).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use rtsp::url::RtspUrl;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::session::Failure;

/// The read side of a channel.
pub type ChannelReader = Box<dyn AsyncRead + Send + Unpin>;
/// The write side of a channel.
pub type ChannelWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// What carries a channel (for log lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carrier {
    Tcp,
    /// A client connection the server handed over (REGISTER `reuse_connection`).
    Handed,
}

impl std::fmt::Display for Carrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Carrier::Tcp => "TCP",
            Carrier::Handed => "the connection the back end registered on",
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

/// How a source dials its back end; one per source, shared by its attempts.
#[derive(Clone, Debug, Default)]
pub struct Connector {
    /// A connection to use instead of dialling, for the first attempt.
    pub handover: Option<Handover>,
    /// Never dial: once the handed-over connection is gone the source stops (a
    /// registered URL whose host the proxy may not connect to).
    pub handover_only: bool,
}

impl Connector {
    /// The URL schemes [`Connector::open`] can dial.
    #[must_use]
    pub fn supports_scheme(scheme: &str) -> bool {
        scheme.eq_ignore_ascii_case("rtsp")
    }

    /// A handed-over connection is still waiting to be taken.
    #[must_use]
    pub fn has_handover(&self) -> bool {
        self.handover.as_ref().is_some_and(Handover::is_waiting)
    }

    /// Opens a channel to `url` within `timeout`.
    pub async fn open(&self, url: &RtspUrl, timeout: Duration) -> Result<Channel, Failure> {
        if let Some(ch) = self.handover.as_ref().and_then(Handover::take) {
            return Ok(ch);
        }
        if self.handover_only {
            return Err(Failure::Connect(
                "the handed-over connection is gone and this back end is not dialled".into(),
            ));
        }
        match url.scheme.as_str() {
            "rtsp" => {
                let tcp = dial_tcp(url, url.port_or_default(), timeout).await?;
                tcp_channel(tcp, Carrier::Tcp)
            }
            other => Err(Failure::Connect(format!(
                "{other}:// back ends are not supported"
            ))),
        }
    }
}

/// A channel over a TCP connection.
pub fn tcp_channel(tcp: TcpStream, carrier: Carrier) -> Result<Channel, Failure> {
    let peer = tcp
        .peer_addr()
        .map_err(|e| Failure::ConnectionLost(e.to_string()))?;
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
