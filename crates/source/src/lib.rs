//! The back end: the proxy as an RTSP client of a camera (or another server).
//!
//! [`session`] is the sans-IO protocol state machine, [`backend_driver`] the tokio code
//! that runs it over real sockets and reconnects, [`backoff`] the reconnect policy, [`connector`] what carries the RTSP
//! connection (the seam every back-end transport fills), [`http_tunnel`] the
//! RTSP-over-HTTP carrier of `-T`.

pub mod backend_driver;
pub mod backoff;
pub mod channel;
pub mod connector;
pub mod failure;
pub mod http_tunnel;
pub mod rtsp_client;
pub mod transport;

pub use backend_driver::{spawn, SourceHandle, SourceSettings};
pub use connector::Connector;
pub use transport::BackendTransport;
