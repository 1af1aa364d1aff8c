//! What happens to an accepted connection before it is served: the PROXY
//! protocol (HAProxy's, v1 and v2) that a TCP load balancer puts in front of its
//! connections to say which client each one is for.
//!
//! From a trusted proxy (`--trusted-proxy`) the header is read first, before the
//! TLS handshake of RTSPS and before any RTSP or HTTP byte, exactly its bytes
//! ([`rtsp::proxy_protocol::parse`] never asks for more), within
//! [`HEADER_TIMEOUT`]; the address it carries becomes the connection's peer for
//! everything after (the per-address connection and session limits, session
//! binding, logs, the API). A missing or invalid header closes the connection.
//! From any other peer a connection that starts with a PROXY header is closed:
//! it would otherwise let anyone claim any address. The bytes of the others stay
//! in the socket (they are only peeked at).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rtsp::proxy_protocol::{self, Parsed, ProxyHeader, ProxyHeaderError, Signature};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tracing::{debug, warn};

use super::slots::{Refused, Slot};
use super::ServerContext;

/// A trusted proxy sends its header at once; this long without a whole one
/// closes the connection.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a peer that sent a strict beginning of a PROXY signature (`PRO`) is
/// left before its bytes are looked at again.
const PARTIAL_SIGNATURE_WAIT: Duration = Duration::from_millis(10);

/// Why a connection was closed before it was served.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    #[error("PROXY protocol header from a peer that is not a trusted proxy (--trusted-proxy)")]
    Untrusted,
    #[error("invalid PROXY protocol header from a trusted proxy: {0}")]
    Invalid(#[from] ProxyHeaderError),
    #[error(
        "no PROXY protocol header from a trusted proxy within {} s",
        HEADER_TIMEOUT.as_secs()
    )]
    Timeout,
    #[error("the trusted proxy's connection ended inside its PROXY protocol header: {0}")]
    Read(#[from] std::io::Error),
    #[error("client {client} refused: {why}")]
    Refused { client: SocketAddr, why: Refused },
}

impl Rejected {
    /// Which of [`WARNING_KINDS`] throttles say this kind of rejection: each is
    /// logged at most every 10 s, so a flood of one hides no other.
    #[must_use]
    pub fn warning_kind(&self) -> usize {
        match self {
            Rejected::Untrusted => 0,
            Rejected::Invalid(_) | Rejected::Timeout | Rejected::Read(_) => 1,
            Rejected::Refused { .. } => 2,
        }
    }
}

/// Kinds of [`Rejected`] with a log throttle of their own.
pub const WARNING_KINDS: usize = 3;

/// Readies an accepted connection from `peer` to be served: from a trusted
/// proxy (`slot` then counts for no address yet), reads its PROXY header and
/// returns the client address it carries (the proxy's own for a `LOCAL` or
/// `UNKNOWN` header), with `slot` now counted for that address; from any other
/// peer, returns `peer`, unless the connection starts with a PROXY header.
/// `first_bytes_by` is when the peer's first bytes are due: a peer still
/// silent then is left to the next step's timeout, which ends at that same
/// moment. `None`: the connection must be closed; said in a warning (at most
/// every 10 s for each kind of reason).
pub async fn admit(
    ctx: &ServerContext,
    stream: &mut TcpStream,
    peer: SocketAddr,
    first_bytes_by: tokio::time::Instant,
    trusted: bool,
    slot: &mut Slot,
) -> Option<SocketAddr> {
    match client_of(stream, peer, first_bytes_by, trusted, slot).await {
        Ok(client) => Some(client),
        Err(why) => {
            let mut warnings = ctx
                .proxy_header_warnings
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if warnings[why.warning_kind()].should_log(std::time::Instant::now()) {
                warn!(peer = %net::canonical(peer), "connection closed: {why}");
            }
            None
        }
    }
}

/// [`admit`]'s answer, or why not.
async fn client_of(
    stream: &mut TcpStream,
    peer: SocketAddr,
    first_bytes_by: tokio::time::Instant,
    trusted: bool,
    slot: &mut Slot,
) -> Result<SocketAddr, Rejected> {
    if !trusted {
        return if starts_with_header(stream, first_bytes_by).await {
            Err(Rejected::Untrusted)
        } else {
            Ok(peer)
        };
    }
    let client = match read_header(stream).await? {
        ProxyHeader::Proxied { source, .. } => source,
        ProxyHeader::Local => peer,
    };
    slot.assign(client.ip())
        .map_err(|why| Rejected::Refused { client, why })?;
    debug!(%client, via = %net::canonical(peer), "PROXY protocol header read");
    Ok(client)
}

/// Reads one PROXY header, and not one byte after it, within [`HEADER_TIMEOUT`].
///
/// # Errors
///
/// No valid header in time.
pub async fn read_header<R: AsyncRead + Unpin>(rd: &mut R) -> Result<ProxyHeader, Rejected> {
    let read = async {
        // Bounded by the parser: 107 bytes (v1), 16 + 2048 (v2).
        let mut buf = Vec::with_capacity(64);
        loop {
            match proxy_protocol::parse(&buf)? {
                Parsed::Complete { header, .. } => return Ok(header),
                Parsed::Need(n) => {
                    let at = buf.len();
                    buf.resize(at + n, 0);
                    rd.read_exact(&mut buf[at..]).await?;
                }
            }
        }
    };
    tokio::time::timeout(HEADER_TIMEOUT, read)
        .await
        .map_err(|_| Rejected::Timeout)?
}

/// Whether the first bytes a peer sends are a PROXY header's signature. They
/// stay in the socket. A peer that sends nothing by `deadline` is left to the
/// usual timeouts (false).
async fn starts_with_header(stream: &TcpStream, deadline: tokio::time::Instant) -> bool {
    let mut first = [0u8; proxy_protocol::V2_SIGNATURE.len()];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return false,
        };
        match proxy_protocol::signature(&first[..n]) {
            Signature::V1 | Signature::V2 => return true,
            Signature::None => return false,
            // A peek returns what is there at once: wait for more.
            Signature::Partial => {
                if tokio::time::Instant::now() + PARTIAL_SIGNATURE_WAIT > deadline {
                    return false;
                }
                tokio::time::sleep(PARTIAL_SIGNATURE_WAIT).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// The header is read from a slow sender byte by byte, and what follows
    /// it is left for the RTSP reader.
    #[tokio::test]
    async fn reads_exactly_the_header() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let sender = tokio::spawn(async move {
            for chunk in [
                &b"PROXY TCP4 192.0.2.9 "[..],
                b"198.51.100.1 4",
                b"0000 554\r\nOPTIONS",
            ] {
                a.write_all(chunk).await.expect("write");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            a
        });
        let header = read_header(&mut b).await.expect("header");
        assert_eq!(
            header,
            ProxyHeader::Proxied {
                source: "192.0.2.9:40000".parse().unwrap(),
                destination: "198.51.100.1:554".parse().unwrap(),
            }
        );
        let mut rest = [0u8; 7];
        b.read_exact(&mut rest).await.expect("rest");
        assert_eq!(&rest, b"OPTIONS");
        drop(sender.await);
    }

    #[tokio::test]
    async fn a_missing_or_bad_header_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(b"OPTIONS rtsp://x/ RTSP/1.0\r\n\r\n")
            .await
            .unwrap();
        assert!(matches!(
            read_header(&mut b).await,
            Err(Rejected::Invalid(ProxyHeaderError::NoSignature))
        ));
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(b"PROXY TCP4 1.2.3.4").await.unwrap();
        drop(a);
        assert!(matches!(read_header(&mut b).await, Err(Rejected::Read(_))));
    }

    #[tokio::test]
    async fn a_silent_trusted_proxy_times_out() {
        let (_a, mut b) = tokio::io::duplex(1024);
        assert!(matches!(read_header(&mut b).await, Err(Rejected::Timeout)));
    }
}

/// The peers whose connections start with a PROXY protocol header
/// (`--trusted-proxy`, `[server] trusted_proxies`): networks, as `address/prefix`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Adds the network `address/prefix` (the configuration parses it).
    pub fn insert(&mut self, address: IpAddr, prefix: u8) {
        if !self.0.contains(&(address, prefix)) {
            self.0.push((address, prefix));
        }
    }

    /// Whether a connection from `ip` is from a trusted proxy.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0
            .iter()
            .any(|&(net, prefix)| net::in_network(ip, net, prefix))
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
