//! One bounded HTTP/1.1 listener for an axum router, shared by the admin port
//! and the WebRTC (WHEP) port: at most `max_connections` at once (more wait in
//! the kernel's backlog), a head within `header_timeout`, a whole connection
//! within `connection_timeout`, TLS when given (the handshake within the head's
//! time), and every connection a task of the proxy's owner ([`Tasks`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::{Extension, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::tasks::Tasks;

/// Where one HTTP connection comes from and arrives at, for handlers that
/// need it (an `Extension` on every request).
#[derive(Debug, Clone, Copy)]
pub struct ConnAddrs {
    pub peer: SocketAddr,
    pub local: Option<SocketAddr>,
}

/// The bounds of an HTTP listener.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub connection_timeout: Duration,
    /// Names the listener in log lines.
    pub label: &'static str,
}

/// Serves `app` on `listener` for ever within `limits` (more connections
/// wait in the kernel's backlog), over TLS when `tls` is given (the handshake
/// within the header timeout); each request carries its [`ConnAddrs`]. The
/// loop and its connections are tasks of `tasks`.
pub async fn accept_loop(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    tasks: Tasks,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let label = limits.label;
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: wait rather than spin.
                warn!("{label} accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let addrs = ConnAddrs {
            peer,
            local: tcp.local_addr().ok(),
        };
        let app = app.clone().layer(Extension(addrs));
        let tls = tls.clone();
        tasks.spawn(async move {
            let served = match tls {
                None => serve_connection(tcp, app, limits).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => serve_connection(stream, app, limits).await,
                        Ok(Err(e)) => Err(format!("TLS handshake: {e}")),
                        Err(_) => Err("TLS handshake timed out".to_owned()),
                    }
                }
            };
            if let Err(e) = served {
                debug!(%peer, "{label} connection: {e}");
            }
            drop(permit);
        });
    }
}

async fn serve_connection<IO>(io: IO, app: Router, limits: HttpLimits) -> Result<(), String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
    match tokio::time::timeout(limits.connection_timeout, conn).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("timed out".to_owned()),
    }
}
