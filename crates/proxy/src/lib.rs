//! rtsp-proxy: reads each back-end RTSP stream once and relays it to any number of
//! RTSP clients.
//!
//! The layers below are crates of their own, re-exported here (see
//! `docs/architecture.md`, "Layers"):
//! - [`sdp`]: the back end's SDP in, the SDP we serve out.
//! - [`tasks`]: the one owner of every task, and how they are stopped.
//! - [`relay`]: per-stream hub: continuity rewriting and fan-out to subscribers.
//! - [`net`]: socket helpers, [`tls`] (rustls configurations for `rtsps://`
//!   clients and back ends), [`log_text`] (network text made safe for log lines).
//! - [`source`]: the back-end RTSP client (sans-IO state machine + tokio driver).
//! - [`supervisor`]: the named streams and their sources; [`path_spec`], the path model.
//! - [`server`]: the front-end RTSP server.
//!
//! This crate's own rooms, on top:
//! - [`config`]: the command line (live555ProxyServer-compatible) into one [`config::Config`].
//! - [`paths`], [`reload`]: apply paths at run time (admin API, config-file reload).
//! - [`admin`], [`webrtc`]: the admin port and the WHEP front end.
//! - [`demo`]: the built-in test-pattern source.
//! - [`register_client`]: the `register` / `deregister` client subcommands.
//! - [`app`]: start-up, signals and shutdown.

pub mod admin;
pub mod app;
pub mod config;
pub mod demo;
pub mod http_listener;
pub mod os;
pub mod paths;
pub mod register_client;
pub mod reload;
pub mod webrtc;

// The lower layers are crates of their own; these names keep `rtsp_proxy::sdp`
// (tests, fuzz targets) and `crate::sdp` paths working.
pub use net::{log_text, tls};
pub use supervisor::path_spec;
pub use {net, relay, sdp, server, source, supervisor, tasks};

/// `rtsp-proxy/<version>`: the `Server` header of our responses and the
/// `User-Agent` of our requests.
pub use net::SOFTWARE;
