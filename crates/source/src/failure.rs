//! Why a back-end session ended ([`Failure`]), with what a user needs to find
//! the failing message in a packet capture: the request's method, CSeq and
//! URL (without credentials), the answer's status, the I/O error as
//! [`std::error::Error::source`].
//!
//! Its own module, below the protocol machine (`rtsp_client.rs`)
//! and the transports (`connector.rs`, `http_tunnel.rs`), which all produce it.

use std::fmt;
use std::io;
use std::sync::Arc;

use rtsp::Method;

/// The request a failure is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRef {
    pub method: Method,
    pub cseq: u32,
    /// The request URI, credentials removed.
    pub url: String,
}

impl RequestRef {
    /// `method`, `cseq` and `url` (any password in it removed).
    pub fn new(method: Method, cseq: u32, url: &str) -> RequestRef {
        RequestRef {
            method,
            cseq,
            url: rtsp::url::redact(url),
        }
    }
}

impl fmt::Display for RequestRef {
    /// `DESCRIBE rtsp://cam/stream (CSeq 2)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} (CSeq {})", self.method, self.url, self.cseq)
    }
}

/// An I/O error shared by clones of a [`Failure`] (events are cloned); two
/// compare equal when their kind and text do.
#[derive(Debug, Clone)]
pub struct IoCause(pub Arc<io::Error>);

impl IoCause {
    /// The error of `kind` with `text` (a condition the driver found itself,
    /// as the back end closing the connection).
    pub fn new(kind: io::ErrorKind, text: &str) -> IoCause {
        IoCause(Arc::new(io::Error::new(kind, text.to_owned())))
    }

    /// The I/O error itself.
    pub fn io(&self) -> &io::Error {
        &self.0
    }
}

impl From<io::Error> for IoCause {
    fn from(e: io::Error) -> IoCause {
        IoCause(Arc::new(e))
    }
}

impl PartialEq for IoCause {
    fn eq(&self, other: &IoCause) -> bool {
        self.0.kind() == other.0.kind() && self.0.to_string() == other.0.to_string()
    }
}

impl Eq for IoCause {}

impl fmt::Display for IoCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for IoCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("{request} answered {status} {reason}")]
    Status {
        request: RequestRef,
        status: u16,
        reason: String,
    },
    #[error("no response to {request} within {secs} s")]
    Timeout { request: RequestRef, secs: u64 },
    #[error("authentication failed for {request} (check -u or the URL's credentials)")]
    Auth { request: RequestRef },
    #[error("bad {what} from the back end: {detail}")]
    Malformed { what: String, detail: String },
    #[error("the back end refused UDP (461 Unsupported Transport)")]
    UdpRefused,
    #[error("the back end refused multicast ({0})")]
    MulticastRefused(String),
    #[error("cannot receive the back end's multicast: {0}")]
    MulticastJoin(String),
    #[error("no media arrived over UDP within {0} s after PLAY")]
    UdpSilent(u64),
    #[error("no media for {0} s while playing")]
    Stalled(u64),
    #[error("the back end ended the stream (RTCP BYE)")]
    Bye,
    #[error("too many redirects")]
    TooManyRedirects,
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("connection lost: {0}")]
    ConnectionLost(#[source] IoCause),
    /// The PLAY that was to resume the paused back end failed.
    #[error("resuming the paused back end failed: {0}")]
    Resume(Box<Failure>),
}

impl Failure {
    /// The connection was lost on `e`.
    pub fn lost(e: io::Error) -> Failure {
        Failure::ConnectionLost(e.into())
    }

    /// Failures after which UDP is given up for TCP.
    pub fn wants_tcp(&self) -> bool {
        matches!(
            self,
            Failure::UdpRefused
                | Failure::UdpSilent(_)
                | Failure::MulticastRefused(_)
                | Failure::MulticastJoin(_)
        )
    }

    /// Failures after which a new connection is made at once, without back-off:
    /// a client is waiting, and the back end was fine a moment ago.
    pub fn reconnect_at_once(&self) -> bool {
        matches!(self, Failure::Resume(_))
    }

    /// The request this failure answers, if it is about one.
    pub fn request(&self) -> Option<&RequestRef> {
        match self {
            Failure::Status { request, .. }
            | Failure::Timeout { request, .. }
            | Failure::Auth { request } => Some(request),
            Failure::Resume(inner) => inner.request(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_status_names_the_message_in_a_capture() {
        let f = Failure::Status {
            request: RequestRef::new(Method::Describe, 2, "rtsp://u:secret@cam/live"),
            status: 404,
            reason: "Not Found".into(),
        };
        let text = f.to_string();
        assert_eq!(
            text,
            "DESCRIBE rtsp://cam/live (CSeq 2) answered 404 Not Found"
        );
        assert_eq!(f.request().map(|r| r.cseq), Some(2));
    }

    #[test]
    fn a_lost_connection_keeps_its_io_error() {
        let f = Failure::lost(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
        let source = f.source().expect("the I/O error is the source");
        let io = source
            .downcast_ref::<IoCause>()
            .map(IoCause::io)
            .expect("an IoCause");
        assert_eq!(io.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(f.clone(), f);
    }
}
