//! Typed RTSP header values: parse from the header text and format back with
//! `Display`.

pub mod public;
pub mod range;
pub mod rtp_info;
pub mod session;
pub mod transport;

pub use range::Range;
pub use rtp_info::RtpInfo;
pub use session::SessionHeader;
pub use transport::{Cast, ChannelRange, LowerTransport, PortRange, Transport};

/// A header value that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The value is empty.
    #[error("empty header value")]
    Empty,
    /// The value is longer than this crate accepts for that header.
    #[error("header value too long")]
    TooLong,
    /// The `Transport` protocol spec (`RTP/AVP[/TCP]`) is malformed.
    #[error("malformed transport spec {0:?}")]
    BadTransportSpec(String),
    /// A parameter has a malformed value.
    #[error("malformed value for parameter {name}: {value:?}")]
    BadParameter {
        /// The parameter name, lowercase.
        name: String,
        /// The value as given.
        value: String,
    },
    /// No alternative of a `Transport` list could be parsed.
    #[error("no usable transport in list")]
    NoTransport,
    /// The session identifier is empty, too long or has control characters.
    #[error("malformed session id")]
    BadSessionId,
    /// The `Range` value is malformed.
    #[error("malformed range {0:?}")]
    BadRange(String),
}
