//! The proxy's configuration: one validated [`Config`], built from a command line that
//! is compatible with live555ProxyServer's (see [`cli`]).

pub mod cli;
mod value;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

pub use cli::{parse_args, usage, CliOutcome, UsageError};

/// Default front-end RTSP port (`-p`).
pub const DEFAULT_RTSP_PORT: u16 = 554;
/// Default stream-name prefix (`-e`).
pub const DEFAULT_STREAM_PREFIX: &str = "proxyStream";
/// Longest stream-name prefix accepted by `-e`, in characters.
pub const MAX_STREAM_PREFIX_CHARS: usize = 50;
/// Default dead-stream detection interval (`-D`), in seconds.
pub const DEFAULT_INTER_PACKET_GAP_SECS: u32 = 10;
/// Default time the back end keeps playing after the last client left (`--linger`).
pub const DEFAULT_LINGER: Duration = Duration::from_secs(1);
/// Default back-end RTSP response timeout (`--response-timeout`).
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default wait for the first UDP packet after PLAY before falling back to TCP
/// (`--udp-timeout`).
pub const DEFAULT_UDP_FALLBACK_TIMEOUT: Duration = Duration::from_secs(4);
/// Front-end RTSP session timeout (announced as `Session: <id>;timeout=65`).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(65);
/// Default first back-end reconnect delay (`--reconnect-min`).
pub const DEFAULT_RECONNECT_MIN: Duration = Duration::from_secs(1);
/// Default longest back-end reconnect delay (`--reconnect-max`).
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(30);
/// Name of the built-in test-pattern stream served with `--demo`.
pub const DEMO_STREAM_NAME: &str = "demo";

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

/// Default multicast TTL (`--multicast-ttl`).
pub const DEFAULT_MULTICAST_TTL: u8 = 16;
/// Default first multicast RTP port (`--multicast-port`).
pub const DEFAULT_MULTICAST_PORT: u16 = 20000;

/// Multicast to clients (`--multicast-range`, `--multicast-ttl`, `--multicast-port`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MulticastConfig {
    /// The range's network address (inside 224.0.0.0/4, host bits zero).
    pub network: Ipv4Addr,
    /// The range's prefix length (4..=32).
    pub prefix_len: u8,
    /// TTL of the multicast packets we send (1..=255).
    pub ttl: u8,
    /// RTP port of a stream's first track (even); track `k` gets `port + 2k`.
    pub port: u16,
}

/// The validated configuration of one proxy process.
#[derive(Clone, Debug)]
pub struct Config {
    /// Log detail: 0 by default, 1 with `-v` (proxy events), 2 with `-V` (also every
    /// back-end RTSP request and response).
    pub verbosity: u8,
    /// How back-end media is received (`-t` selects TCP).
    pub backend_transport: BackendTransport,
    /// Front-end RTSP port (`-p`, default 554).
    pub rtsp_port: u16,
    /// Whether the port was given with `-p`/`--port` (live555 falls back to 554 and then
    /// 8554 when a given port cannot be bound).
    pub rtsp_port_explicit: bool,
    /// Credentials presented to every back end (`-u <user> <password>`), in addition to
    /// any in a URL's user-info.
    pub backend_credentials: Option<rtsp::auth::Credentials>,
    /// Dead-stream detection (`-D <secs>`): reset a back end from which no RTP packet
    /// has arrived for this long while playing. `None` when `-D 0` turns it off.
    pub inter_packet_gap: Option<Duration>,
    /// Stream-name prefix (`-e`, 1..=50 characters, default `proxyStream`).
    pub stream_prefix: String,
    /// The back-end URLs, exactly as given (each starts with `rtsp://` or `rtsps://`).
    pub urls: Vec<String>,
    /// Also serve the built-in test pattern as stream [`DEMO_STREAM_NAME`] (`--demo`).
    pub demo: bool,
    /// How long the back end keeps playing after the last client left before it is
    /// paused (`--linger`; 0 pauses at once, like live555).
    pub linger: Duration,
    /// How long to wait for any back-end RTSP response (`--response-timeout`).
    pub response_timeout: Duration,
    /// If no UDP packet arrives this long after PLAY, the back end is set up again over
    /// TCP (`--udp-timeout`).
    pub udp_fallback_timeout: Duration,
    /// Front-end session timeout: a client that shows no sign of life for this long
    /// loses its session.
    pub session_timeout: Duration,
    /// First delay before reconnecting to a back end (`--reconnect-min`); it doubles on
    /// every failure up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// Longest delay between back-end reconnect attempts (`--reconnect-max`).
    pub reconnect_max: Duration,
    /// Addresses the RTSP server listens on (`--bind`, repeatable; default `0.0.0.0` and
    /// `::`, like live555).
    pub bind_addresses: Vec<IpAddr>,
    /// Bound of each stream's keyframe cache in bytes (`--keyframe-cache`, in MiB;
    /// 0 turns it off).
    pub keyframe_cache_bytes: usize,
    /// Multicast to clients that ask for it; `None` (the default) answers their
    /// multicast SETUP with 461.
    pub multicast: Option<MulticastConfig>,
}

impl Default for Config {
    /// live555ProxyServer's defaults, with no URL.
    fn default() -> Self {
        Config {
            verbosity: 0,
            backend_transport: BackendTransport::Udp,
            rtsp_port: DEFAULT_RTSP_PORT,
            rtsp_port_explicit: false,
            backend_credentials: None,
            inter_packet_gap: Some(Duration::from_secs(u64::from(
                DEFAULT_INTER_PACKET_GAP_SECS,
            ))),
            stream_prefix: DEFAULT_STREAM_PREFIX.to_owned(),
            urls: Vec::new(),
            demo: false,
            linger: DEFAULT_LINGER,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            udp_fallback_timeout: DEFAULT_UDP_FALLBACK_TIMEOUT,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            reconnect_min: DEFAULT_RECONNECT_MIN,
            reconnect_max: DEFAULT_RECONNECT_MAX,
            bind_addresses: vec![
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ],
            keyframe_cache_bytes: crate::relay::gop_cache::DEFAULT_CACHE_BYTES,
            multicast: None,
        }
    }
}

impl Config {
    /// The stream name of each URL, in order, as live555 names them: `<prefix>` when
    /// there is exactly one URL, `<prefix>-1` ... `<prefix>-N` when there are several.
    #[must_use]
    pub fn stream_names(&self) -> Vec<String> {
        stream_names(&self.stream_prefix, self.urls.len())
    }
}

/// Stream names for `count` URLs with the given prefix.
fn stream_names(prefix: &str, count: usize) -> Vec<String> {
    match count {
        0 => Vec::new(),
        1 => vec![prefix.to_owned()],
        _ => (1..=count).map(|n| format!("{prefix}-{n}")).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_urls(prefix: &str, count: usize) -> Config {
        Config {
            stream_prefix: prefix.to_owned(),
            urls: (0..count)
                .map(|n| format!("rtsp://127.0.0.1/{n}"))
                .collect(),
            ..Config::default()
        }
    }

    #[test]
    fn stream_names_follow_live555() {
        assert!(with_urls("proxyStream", 0).stream_names().is_empty());
        assert_eq!(with_urls("proxyStream", 1).stream_names(), ["proxyStream"]);
        assert_eq!(
            with_urls("proxyStream", 2).stream_names(),
            ["proxyStream-1", "proxyStream-2"]
        );
        assert_eq!(
            with_urls("proxyStream", 3).stream_names(),
            ["proxyStream-1", "proxyStream-2", "proxyStream-3"]
        );
        assert_eq!(with_urls("cams/front", 1).stream_names(), ["cams/front"]);
        assert_eq!(
            with_urls("cams/front", 2).stream_names(),
            ["cams/front-1", "cams/front-2"]
        );
    }

    #[test]
    fn defaults() {
        let config = Config::default();
        assert_eq!(config.verbosity, 0);
        assert_eq!(config.backend_transport, BackendTransport::Udp);
        assert_eq!(config.rtsp_port, 554);
        assert!(!config.rtsp_port_explicit);
        assert!(config.backend_credentials.is_none());
        assert_eq!(config.inter_packet_gap, Some(Duration::from_secs(10)));
        assert_eq!(config.stream_prefix, "proxyStream");
        assert!(!config.demo);
        assert_eq!(config.linger, Duration::from_secs(1));
        assert_eq!(config.response_timeout, Duration::from_secs(10));
        assert_eq!(config.udp_fallback_timeout, Duration::from_secs(4));
        assert_eq!(config.session_timeout, Duration::from_secs(65));
        assert_eq!(config.reconnect_min, Duration::from_secs(1));
        assert_eq!(config.reconnect_max, Duration::from_secs(30));
        assert_eq!(config.multicast, None);
        assert_eq!(
            config.bind_addresses,
            [
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            ]
        );
    }
}
