//! The admin HTTP port (`--admin <addr:port>`): Prometheus metrics (`/metrics`),
//! a JSON status API (`/v1/paths`, `/v1/paths/{name}`) and a dashboard page (`/`).
//!
//! Off unless an address is given. Loopback only unless a token is set
//! ([`check_listen`]); with a token every request but the dashboard's static page
//! needs `Authorization: Bearer <token>` ([`auth`]). Nothing here is on the
//! packet path: the relay keeps plain counters under the stream lock it holds
//! anyway (`relay/stream.rs`), the sinks keep their drop counters (atomics), and
//! a scrape or an API call reads them once per stream ([`crate::relay::Stream::snapshot`]).
//! A sampler task ([`history`]) reads the byte counters every second for the
//! bitrates and keeps one sample per 5 s for 10 minutes per path.
//! `/healthz` and `/readyz` ([`health`]) answer probes without the token.

pub mod api;
pub mod dashboard;
pub mod health;
pub mod history;
pub mod metrics;
pub mod server;
pub mod token;

use std::net::SocketAddr;

/// Why the admin port cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("--admin {0}: not a loopback address, and no --admin-token is set; anyone who can reach it could read the streams' sources and clients. Set a token (--admin-token or --admin-token-file) or listen on 127.0.0.1 / [::1]")]
    OpenWithoutToken(SocketAddr),
    #[error("cannot listen on the admin address {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Refuses a non-loopback admin address without a token.
///
/// # Errors
///
/// [`AdminError::OpenWithoutToken`].
pub fn check_listen(addr: SocketAddr, token: Option<&str>) -> Result<(), AdminError> {
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(AdminError::OpenWithoutToken(addr));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_needs_a_token() {
        let open: SocketAddr = "0.0.0.0:9090".parse().unwrap();
        let lan: SocketAddr = "192.0.2.1:9090".parse().unwrap();
        let v6: SocketAddr = "[::]:9090".parse().unwrap();
        for a in [open, lan, v6] {
            let e = check_listen(a, None).unwrap_err();
            assert!(e.to_string().contains("--admin-token"), "{e}");
            check_listen(a, Some("s3cret")).expect("with a token");
        }
        check_listen("127.0.0.1:9090".parse().unwrap(), None).expect("loopback");
        check_listen("[::1]:9090".parse().unwrap(), None).expect("loopback v6");
    }
}
