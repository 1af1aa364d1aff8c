//! How a source reaches its back end: a connector yields an RTSP [`Channel`] (a
//! byte stream both ways plus what was already read from it). The driver's loop
//! and the sans-IO session machine see only the channel, never what carries it.
//!
//! Carriers: plain TCP (`rtsp://`), TLS over TCP (`rtsps://`, never dialled in
//! plain text; the source then receives its media interleaved on it), an
//! RTSP-over-HTTP tunnel (`-T <http-port>`, see [`super::http_tunnel`]), and a
//! connection handed over by the server (REGISTER with `reuse_connection`, used
//! for the first attempt only).

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rtsp::url::RtspUrl;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub use super::channel::{
    dial_tcp, tcp_channel, Carrier, Channel, ChannelReader, ChannelWriter, Handover,
};
use super::failure::Failure;
use super::http_tunnel::{self, TunnelSettings};
use net::tls;

/// How a source dials its back end; one per source, shared by its attempts.
#[derive(Clone, Debug, Default)]
pub struct Connector {
    /// A connection to use instead of dialling, for the first attempt.
    pub handover: Option<Handover>,
    /// `-T <http-port>`: every dialled connection is an RTSP-over-HTTP tunnel
    /// to the back end's host on that port (the URL's port is ignored).
    pub http_tunnel: Option<TunnelSettings>,
    /// How `rtsps://` back ends are verified (built once at start-up, see
    /// [`crate::tls::client_config`]).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Never dial: once the handed-over connection is gone the source stops (a
    /// registered URL whose host the proxy may not connect to).
    pub handover_only: bool,
}

impl Connector {
    /// The URL schemes [`Connector::open`] can dial.
    #[must_use]
    pub fn supports_scheme(scheme: &str) -> bool {
        scheme.eq_ignore_ascii_case("rtsp") || scheme.eq_ignore_ascii_case("rtsps")
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
        if let Some(tunnel) = &self.http_tunnel {
            return match url.scheme.as_str() {
                "rtsp" => http_tunnel::open(url, tunnel, timeout).await,
                other => Err(Failure::Connect(format!(
                    "{other}:// back ends cannot be reached through an HTTP tunnel (-T)"
                ))),
            };
        }
        match url.scheme.as_str() {
            "rtsp" => {
                let tcp = dial_tcp(url, url.port_or_default(), timeout).await?;
                tcp_channel(tcp, Carrier::Tcp)
            }
            "rtsps" => {
                let Some(config) = self.tls.clone() else {
                    return Err(Failure::Connect("no TLS configuration for rtsps://".into()));
                };
                let tcp = dial_tcp(url, url.port_or_default(), timeout).await?;
                tls_channel(tcp, config, &url.host, timeout.min(tls::HANDSHAKE_TIMEOUT)).await
            }
            other => Err(Failure::Connect(format!(
                "{other}:// back ends are not supported"
            ))),
        }
    }
}

/// A channel over TLS on a TCP connection to `host` (the name its certificate
/// must be valid for, and the SNI), the handshake bounded by `timeout`.
async fn tls_channel(
    tcp: TcpStream,
    config: Arc<rustls::ClientConfig>,
    host: &str,
    timeout: Duration,
) -> Result<Channel, Failure> {
    let peer = tcp.peer_addr().map_err(Failure::lost)?;
    let name = tls::server_name(host)
        .ok_or_else(|| Failure::Connect(format!("{host:?} is not a valid TLS server name")))?;
    let handshake = TlsConnector::from(config).connect(name, tcp);
    let stream = match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(Failure::Connect(match tls::untrusted_certificate(&e) {
                Some(why) => format!(
                    "TLS: the certificate of {host} is not trusted ({why}); to accept it, give its CA with --backend-tls-ca <pem> or pin it with --backend-tls-fingerprint <sha256>"
                ),
                None => format!("TLS handshake with {host} failed: {e}"),
            }))
        }
        Err(_) => {
            return Err(Failure::Connect(format!(
                "TLS handshake with {host} timed out after {} s",
                timeout.as_secs()
            )))
        }
    };
    let (rd, wr) = tokio::io::split(stream);
    Ok(Channel {
        reader: Box::new(rd),
        writer: Box::new(wr),
        peer,
        buffered: BytesMut::new(),
        carrier: Carrier::Tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tunnel_never_carries_tls_urls() {
        let connector = Connector {
            http_tunnel: Some(TunnelSettings {
                port: 1,
                credentials: None,
                user_agent: "test".into(),
            }),
            ..Connector::default()
        };
        let url = RtspUrl::parse("rtsps://127.0.0.1/x").expect("url");
        let e = connector
            .open(&url, Duration::from_secs(1))
            .await
            .expect_err("refused without dialling");
        assert!(
            matches!(&e, Failure::Connect(m) if m.contains("HTTP tunnel")),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_tunnel_dials_the_http_port_not_the_urls() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let backend = tokio::spawn(async move {
            let (mut get, _) = listener.accept().await.expect("GET");
            let mut head = [0u8; 1024];
            let n = get.read(&mut head).await.expect("read");
            assert!(head[..n].starts_with(b"GET /x HTTP/1.0\r\n"));
            get.write_all(b"HTTP/1.0 200 OK\r\n\r\n")
                .await
                .expect("answer");
            let (post, _) = listener.accept().await.expect("POST");
            (get, post)
        });
        let connector = Connector {
            http_tunnel: Some(TunnelSettings {
                port,
                credentials: None,
                user_agent: "test".into(),
            }),
            ..Connector::default()
        };
        // Nothing listens on the URL's port (9, discard).
        let url = RtspUrl::parse("rtsp://127.0.0.1:9/x").expect("url");
        let channel = connector
            .open(&url, Duration::from_secs(2))
            .await
            .expect("tunnel on the HTTP port");
        assert_eq!(channel.carrier, Carrier::HttpTunnel);
        assert_eq!(channel.peer.port(), port);
        drop(backend.await.expect("back end"));
    }
}
