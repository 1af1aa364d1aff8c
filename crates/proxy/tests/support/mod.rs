//! Shared helpers for the end-to-end tests of `rtsp-proxy`.
//!
//! Every test file in `crates/proxy/tests/` pulls them in with `mod support;`
//! and then drives real processes:
//!
//! - [`Backend`]: a GStreamer RTSP server playing a live test stream (the
//!   "camera"), from `tests/backend/gst_rtsp_backend.py`;
//! - [`Proxy`]: the `rtsp-proxy` binary under test;
//! - clients: [`ffprobe_streams`], [`ffmpeg_record`], [`gst_play`], the raw
//!   [`rtsp_exchange`] and the strict [`retina_play`] (it checks SSRC,
//!   sequence numbers and timestamps against SETUP and PLAY's `RTP-Info`),
//!   each bounded by a timeout, and a raw interleaved player
//!   ([`play_interleaved`], [`connect_from`] a chosen source address);
//! - [`free_port`] for ports that parallel tests will not fight over;
//! - [`repo_file`], [`scratch_dir`], [`have`]: the repository's files, a
//!   test's own directory under `target/tmp`, whether a tool is installed;
//! - [`rss_kib`], [`fd_count`], [`cpu_time`]: what `/proc` says of a process.
//!
//! Every process a test starts is wrapped in a [`Proc`], which records its
//! output (also into `target/e2e-logs/<test>-<label>.log`), logs its command
//! line on stderr, and is killed and reaped when dropped, even when the test
//! panics.
//!
//! These helpers panic with a descriptive message where a test cannot go on
//! (the back end does not start, the proxy does not listen); the clients
//! return `Result` so that tests can assert failures too.

// Each test binary uses a different subset of the helpers.
#![allow(dead_code, unused_imports)]

mod backend;
/// Public within the test crate so that `backend_smoke` can unit-test the parsers.
pub(crate) mod clients;
mod files;
mod http;
mod interleaved;
mod netns;
mod ports;
mod process;
mod procfs;
mod proxy;
mod retina_client;

pub use backend::{Backend, BackendOpts, SuspendMode};
pub use clients::{
    ffmpeg_copy, ffmpeg_record, ffprobe_start_times, ffprobe_streams, gst_play, gst_play_media,
    read_response_head, rtsp_exchange, rtspsrc_branches, run_with_timeout, ProbedStream,
    RecordResult, RecordedPacket, StreamStart,
};
pub use files::{have, repo_file, scratch_dir, REPO_ROOT};
pub use http::http_get;
pub use interleaved::{
    ask, connect_from, play_interleaved, session_of, set_up_interleaved, set_up_interleaved_on,
};
pub use netns::{NetPair, FIRST_ADDR, SECOND_ADDR};
pub use ports::free_port;
pub use process::{Proc, Signal};
pub use procfs::{cpu_time, fd_count, rss_kib, rss_mib};
pub use proxy::{Proxy, PLAY_LINE};
pub use retina_client::{
    retina_play, RetinaReport, RetinaStreamReport, RetinaTransport, RETINA_ARRIVAL_MATCH_SECS,
    RETINA_CONNECT_TIMEOUT,
};
