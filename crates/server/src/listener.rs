//! Listening sockets: the RTSP port on IPv4 and IPv6, with live555's fallback to
//! the standard ports (554, then 8554) when the asked-for port cannot be used,
//! the dedicated RTSP-over-HTTP port (live555's 80, 8000 or 8080, or
//! `--http-port`), and the RTSPS (RTSP over TLS) port, whose connections are
//! served once their TLS handshake is over.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use super::connection::{self, Accepted};
use super::{proxy_header, tunnel, ServerContext};
use net::tls::HANDSHAKE_TIMEOUT;

/// Ports tried, in order, for the dedicated RTSP-over-HTTP port when
/// `--http-port` is not given (live555's choice).
pub const DEFAULT_HTTP_PORTS: [u16; 3] = [80, 8000, 8080];

/// The dedicated RTSP-over-HTTP tunnelling port for clients (tunnelling is
/// accepted on the RTSP port too, whatever this says).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpPort {
    /// The first of [`DEFAULT_HTTP_PORTS`] that binds; none is fine (live555).
    Fallback,
    /// This port, or the proxy does not start (`--http-port N`).
    Fixed(u16),
    /// No dedicated port (`--http-port 0`).
    Off,
}

/// At most this many client connections at once; further ones are closed at once.
pub const MAX_CONNECTIONS: usize = 4096;

/// Why no listening socket could be opened.
#[derive(Debug, thiserror::Error)]
#[error("Failed to create RTSP server: {0}")]
pub struct BindError(pub String);

fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(128)?;
    TcpListener::from_std(s.into())
}

/// Binds `port` on every address; succeeds if at least one binds.
pub fn bind_port(addrs: &[IpAddr], port: u16) -> Result<Vec<TcpListener>, String> {
    let mut listeners = Vec::new();
    let mut last_err = String::from("no address to bind");
    for ip in addrs {
        match bind_tcp(SocketAddr::new(*ip, port)) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                debug!("bind {ip} port {port}: {e}");
                last_err = format!(
                    "{} bind() error (port number: {port}): {e}",
                    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
                );
            }
        }
    }
    if listeners.is_empty() {
        Err(last_err)
    } else {
        Ok(listeners)
    }
}

/// Binds the RTSP port as live555ProxyServer does: the asked-for port, else 554,
/// else 8554. Messages about the fallback go to stderr, as live555 prints them.
pub fn bind_with_fallback(
    addrs: &[IpAddr],
    port: u16,
) -> Result<(Vec<TcpListener>, u16), BindError> {
    match bind_port(addrs, port) {
        Ok(l) => return Ok((l, port)),
        Err(e) if port != 554 => {
            eprintln!("Unable to create a RTSP server with port number {port}: {e}");
            eprintln!("Trying instead with the standard port numbers (554 and 8554)...");
        }
        Err(_) => {}
    }
    let mut last = String::new();
    for p in [554u16, 8554] {
        match bind_port(addrs, p) {
            Ok(l) => return Ok((l, p)),
            Err(e) => last = e,
        }
    }
    Err(BindError(last))
}

/// Why the dedicated RTSP-over-HTTP port given with `--http-port` could not be
/// opened.
#[derive(Debug, thiserror::Error)]
#[error("Failed to create the RTSP-over-HTTP tunneling port (--http-port): {0}")]
pub struct HttpBindError(pub String);

/// Binds the dedicated RTSP-over-HTTP port: `Fallback` takes the first of
/// live555's ports that binds on either family (none is fine), `Fixed` must bind.
/// Returns the listeners and the port tunnels are accepted on (`None`: none of
/// its own). A port equal to the RTSP port needs no listener of its own: the
/// RTSP port accepts tunnels already.
pub fn bind_http_port(
    addrs: &[IpAddr],
    choice: HttpPort,
    rtsp_port: u16,
) -> Result<(Vec<TcpListener>, Option<u16>), HttpBindError> {
    match choice {
        HttpPort::Off => Ok((Vec::new(), None)),
        HttpPort::Fixed(port) if port == rtsp_port => Ok((Vec::new(), Some(port))),
        HttpPort::Fixed(port) => bind_port(addrs, port)
            .map(|l| (l, Some(port)))
            .map_err(HttpBindError),
        HttpPort::Fallback => {
            for port in DEFAULT_HTTP_PORTS {
                if port == rtsp_port {
                    continue;
                }
                if let Ok(l) = bind_port(addrs, port) {
                    return Ok((l, Some(port)));
                }
            }
            Ok((Vec::new(), None))
        }
    }
}

/// Binds the RTSPS port on every address (no fallback: the port is explicit or
/// the standard 322).
pub fn bind_tls(addrs: &[IpAddr], port: u16) -> Result<Vec<TcpListener>, BindError> {
    bind_port(addrs, port).map_err(|e| {
        BindError(format!(
            "RTSPS (RTSP over TLS): {e}; choose another port with --tls-port"
        ))
    })
}

/// Client connections open now, over every listener (TLS handshakes included).
pub type OpenConnections = Arc<super::slots::ConnectionSlots>;

/// Accepts connections until the task is cancelled (the listener closes with
/// it); with `tls`, each is served once its TLS handshake succeeded within
/// [`HANDSHAKE_TIMEOUT`]. Before that (and before any RTSP byte), the PROXY
/// header of a trusted proxy's connection is read, or one from another peer
/// refused ([`proxy_header`]). Connections are tasks of `ctx.tasks`: they
/// outlive this loop.
pub async fn accept_loop(
    ctx: Arc<ServerContext>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    open: OpenConnections,
) {
    let mut refusals = net::log_text::Throttle::default();
    loop {
        match listener.accept().await {
            Ok((mut stream, peer)) => {
                let accepted_at = tokio::time::Instant::now();
                // A trusted proxy's connection counts for the client address its
                // PROXY header carries, once read.
                let trusted = ctx.trusted_proxies.contains(peer.ip());
                let slot = if trusted {
                    open.take_unassigned()
                } else {
                    open.take(peer.ip())
                };
                let mut slot = match slot {
                    Ok(slot) => slot,
                    Err(why) => {
                        // Closed at once; said at most every 10 s (a flood of
                        // refused connections must not flood the log).
                        if refusals.should_log(std::time::Instant::now()) {
                            warn!(%peer, "connection refused: {why}");
                        }
                        continue;
                    }
                };
                let local = match stream.local_addr() {
                    Ok(a) => a,
                    Err(_) => continue,
                };
                let _ = stream.set_nodelay(true);
                let ctx = ctx.clone();
                let tls = tls.clone();
                let tasks = ctx.tasks.clone();
                tasks.spawn(async move {
                    // A peer's first bytes (a TLS ClientHello, an RTSP or
                    // HTTP head) are due by then, PROXY header or not.
                    let first_bytes_by = accepted_at
                        + if tls.is_some() {
                            HANDSHAKE_TIMEOUT
                        } else {
                            tunnel::FIRST_MESSAGE_TIMEOUT
                        };
                    let Some(peer) = proxy_header::admit(
                        &ctx,
                        &mut stream,
                        peer,
                        first_bytes_by,
                        trusted,
                        &mut slot,
                    )
                    .await
                    else {
                        return;
                    };
                    let accepted = Accepted {
                        peer,
                        local,
                        secure: tls.is_some(),
                        at: accepted_at,
                    };
                    match tls {
                        None => connection::serve(ctx, stream, accepted).await,
                        Some(acceptor) => serve_tls(ctx, stream, accepted, acceptor).await,
                    }
                    drop(slot);
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Completes the TLS handshake of a connection within [`HANDSHAKE_TIMEOUT`] of
/// its acceptance, then serves it. A failed or slow handshake (a port scanner,
/// plain RTSP sent to the TLS port) only closes that connection.
async fn serve_tls(
    ctx: Arc<ServerContext>,
    stream: TcpStream,
    mut accepted: Accepted,
    acceptor: TlsAcceptor,
) {
    let peer = net::canonical(accepted.peer);
    let deadline = accepted.at + HANDSHAKE_TIMEOUT;
    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => {
            accepted.at = tokio::time::Instant::now();
            connection::serve(ctx, tls, accepted).await
        }
        Ok(Err(e)) => debug!(%peer, "TLS handshake failed: {e}"),
        Err(_) => debug!(
            %peer,
            "TLS handshake not done within {} s; closing",
            HANDSHAKE_TIMEOUT.as_secs()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LOOPBACK: [IpAddr; 1] = [IpAddr::V4(Ipv4Addr::LOCALHOST)];

    #[tokio::test]
    async fn http_port_choices() {
        let (none, port) = bind_http_port(&LOOPBACK, HttpPort::Off, 554).expect("off");
        assert!(none.is_empty());
        assert_eq!(port, None);

        let (same, port) = bind_http_port(&LOOPBACK, HttpPort::Fixed(9554), 9554).expect("same");
        assert!(same.is_empty(), "the RTSP port accepts tunnels already");
        assert_eq!(port, Some(9554));

        let taken = bind_port(&LOOPBACK, 0).expect("an ephemeral port");
        let taken_port = taken[0].local_addr().expect("addr").port();
        let e = bind_http_port(&LOOPBACK, HttpPort::Fixed(taken_port), 554).expect_err("taken");
        assert!(
            e.to_string()
                .contains(&format!("port number: {taken_port}")),
            "{e}"
        );

        let free = taken_port;
        drop(taken);
        let (l, port) = bind_http_port(&LOOPBACK, HttpPort::Fixed(free), 554).expect("free");
        assert_eq!((l.len(), port), (1, Some(free)));

        // Whatever is free here, the fallback never fails and never picks the
        // RTSP port.
        let (l, port) = bind_http_port(&LOOPBACK, HttpPort::Fallback, 8000).expect("fallback");
        match port {
            Some(p) => {
                assert!([80, 8080].contains(&p), "{p}");
                assert_eq!(l.len(), 1);
            }
            None => assert!(l.is_empty()),
        }
    }
}
