//! Listening sockets: the RTSP port on IPv4 and IPv6, with live555's fallback to
//! the standard ports (554, then 8554) when the asked-for port cannot be used,
//! and the RTSPS (RTSP over TLS) port, whose connections are served once their
//! TLS handshake is over.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use super::connection::{self, Accepted};
use super::ServerContext;
use crate::tls::HANDSHAKE_TIMEOUT;

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
pub type OpenConnections = Arc<AtomicUsize>;

/// Accepts connections until the listener fails for good; with `tls`, each is
/// served once its TLS handshake succeeded within [`HANDSHAKE_TIMEOUT`].
pub async fn accept_loop(
    ctx: Arc<ServerContext>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    open: OpenConnections,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                    warn!(%peer, "too many connections; refusing");
                    continue;
                }
                let local = match stream.local_addr() {
                    Ok(a) => a,
                    Err(_) => continue,
                };
                let _ = stream.set_nodelay(true);
                open.fetch_add(1, Ordering::Relaxed);
                let ctx = ctx.clone();
                let open = open.clone();
                let accepted = Accepted {
                    peer,
                    local,
                    secure: tls.is_some(),
                };
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => connection::serve(ctx, stream, accepted).await,
                        Some(acceptor) => serve_tls(ctx, stream, accepted, acceptor).await,
                    }
                    open.fetch_sub(1, Ordering::Relaxed);
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

/// Completes the TLS handshake of a connection, then serves it. A failed or
/// slow handshake (a port scanner, plain RTSP sent to the TLS port) only closes
/// that connection.
async fn serve_tls(
    ctx: Arc<ServerContext>,
    stream: TcpStream,
    accepted: Accepted,
    acceptor: TlsAcceptor,
) {
    let peer = crate::net::canonical(accepted.peer);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => connection::serve(ctx, tls, accepted).await,
        Ok(Err(e)) => debug!(%peer, "TLS handshake failed: {e}"),
        Err(_) => debug!(
            %peer,
            "TLS handshake not done within {} s; closing",
            HANDSHAKE_TIMEOUT.as_secs()
        ),
    }
}
