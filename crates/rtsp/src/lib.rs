//! RTSP/1.0 wire protocol, with no I/O.
//!
//! This crate turns bytes into typed RTSP values and back:
//!
//! - [`message`]: [`Method`], [`Version`], [`Headers`], [`Request`], [`Response`]
//!   and their encoding.
//! - [`parse`]: [`parse_frame`], an incremental, bounded parser for requests,
//!   responses and interleaved `$` frames sharing one byte stream.
//! - [`header`]: typed `Transport`, `Session`, `Range`, `RTP-Info` and `Public`
//!   headers.
//! - [`url`]: `rtsp://` URLs with credentials, control URL resolution and
//!   redaction for logs.
//! - [`auth`]: Basic and Digest authentication, client and server side.
//! - [`tunnel`]: the base64 stream of RTSP-over-HTTP tunnelling.
//! - [`interleaved`]: the `$` frame header.
//! - [`date`]: the `Date` header value.
//! - [`proxy_protocol`]: the PROXY protocol header (v1 and v2) a TCP load
//!   balancer puts before a connection's bytes.
//!
//! Everything coming from the network is treated as hostile: sizes and counts
//! are bounded and malformed input yields typed errors, never panics.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod date;
pub mod header;
pub mod interleaved;
pub mod message;
pub mod parse;
pub mod proxy_protocol;
pub mod tunnel;
pub mod url;

mod util;

pub use message::{reason_phrase, Headers, Method, Request, Response, Version};
pub use parse::{parse_frame, Frame, Limits, ParseError, ParseErrorKind};
