//! [`BackendTransport`]: how a source receives its media. Owned by the source
//! (the session machine and the driver act on it); the configuration maps its
//! options (`-t`, `--backend-multicast`, a path's `transport`) onto it.

/// How the proxy receives media from its back ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendTransport {
    /// RTP/RTCP over UDP (the default; live555 without `-t`).
    Udp,
    /// RTP/RTCP interleaved on the back end's RTSP TCP connection (`-t`).
    Tcp,
    /// RTP/RTCP from a multicast group the back end names in its SETUP answer
    /// (`--backend-multicast`; UDP also gets there when the back end refuses
    /// unicast or announces multicast in its SDP).
    Multicast,
}
