//! Session descriptions: the back end's SDP in, the SDP the proxy serves out (sans-IO).
//!
//! The relay forwards RTP packets as they came (only SSRC, sequence number and
//! timestamp are rewritten), so the served SDP keeps every codec detail of the back end:
//! payload types, `a=rtpmap`, `a=fmtp` and all other media attributes are copied as they
//! are. This is where the proxy differs from live555, which rebuilds the SDP from its own
//! packetizers, renumbers payload types and loses most fmtp parameters.
//!
//! What the proxy does replace: the origin (`o=`), timing (`t=0 0`), connection lines
//! (`c=` with the wildcard address), the range (`a=range:npt=now-`), the tool and type
//! attributes, the `m=` port (0) and the TCP marker in the protocol, and the control
//! URLs (`*` for the session, `track1`, `track2`, ... per track). SSRC and RTCP
//! transport attributes of the back end are dropped: the relay uses its own SSRC and
//! the client's RTCP goes to the proxy.

mod line;
mod parse;
mod payload;
mod render;

#[cfg(test)]
mod cameras_tests;

pub use parse::parse;
pub use render::{render, RenderOptions, DEFAULT_SESSION_NAME};

/// Largest SDP accepted from a back end, in bytes.
pub const MAX_SDP_BYTES: usize = 64 * 1024;
/// Most `m=` sections accepted in one SDP.
pub const MAX_TRACKS: usize = 32;
/// Most formats (payload types) accepted on one `m=` line.
pub const MAX_FORMATS: usize = 64;

/// A parsed back-end session description: what the proxy needs to set up the back end
/// and to describe the stream to its own clients.
#[derive(Clone, Debug, PartialEq)]
pub struct Presentation {
    /// `s=`, the session name (the first non-blank one).
    pub session_name: Option<String>,
    /// Session-level `i=`, the session information.
    pub session_info: Option<String>,
    /// Session-level `a=control`: the aggregate control URL (absolute, relative, or `*`).
    pub session_control: Option<String>,
    /// Every other session-level line, trimmed but otherwise verbatim and in order
    /// (`a=tool:GStreamer`, `b=AS:5050`, `a=sendonly`, `e=...`). Not included:
    /// `v= o= s= i= t= r= c= z= k=`, `a=control`, `a=range`, SSRC and RTCP transport
    /// attributes, and lines with an unknown type letter.
    pub session_attributes: Vec<String>,
    /// Session-level `c=` value, e.g. `IN IP4 239.1.2.3/16` (not served as is).
    pub session_connection: Option<String>,
    /// One entry per `m=` section, in order.
    pub tracks: Vec<Track>,
}

/// The IPv4 multicast group a `c=` value names (`IN IP4 239.1.2.3/16`), if any.
#[must_use]
pub fn multicast_group(connection: &str) -> Option<std::net::Ipv4Addr> {
    let mut parts = connection.split_ascii_whitespace();
    let (net, family, addr) = (parts.next()?, parts.next()?, parts.next()?);
    if !net.eq_ignore_ascii_case("IN") || !family.eq_ignore_ascii_case("IP4") {
        return None;
    }
    let addr: std::net::Ipv4Addr = addr.split('/').next()?.parse().ok()?;
    addr.is_multicast().then_some(addr)
}

/// One media section (`m=` line and what follows it up to the next one).
#[derive(Clone, Debug, PartialEq)]
pub struct Track {
    /// Media type: `video`, `audio`, `application`, `text`, ...
    pub media: String,
    /// The `m=` port as given (0 for most RTSP servers; a `/<count>` suffix is dropped).
    pub port: u16,
    /// Transport protocol as given: `RTP/AVP`, `RTP/AVP/TCP`, `RTP/SAVP`, ...
    pub protocol: String,
    /// The formats (RTP payload types) as given, at least one.
    pub formats: Vec<String>,
    /// Media-level `a=control`: the track's control URL, absolute or relative to the
    /// base URL.
    pub control: Option<String>,
    /// Media-level `c=` value, e.g. `IN IP4 239.1.2.3/16`.
    pub connection: Option<String>,
    /// Encoding name of the first format, from its `a=rtpmap` (`H264`, `MPEG4-GENERIC`,
    /// `opus`, as written) or from the RFC 3551 static payload table (`PCMU`, `JPEG`).
    /// `None` for a dynamic payload type without `a=rtpmap`.
    pub encoding: Option<String>,
    /// RTP clock rate of the first format, from its `a=rtpmap` or the static payload
    /// table; if neither is known, 8000 for audio and 90000 for anything else.
    pub clock_rate: u32,
    /// Channel count of the first format when the `a=rtpmap` or static table states one.
    pub channels: Option<u8>,
    /// Every other media-level line, trimmed but otherwise verbatim and in order: `i=`,
    /// `b=`, and all attributes (`a=rtpmap`, `a=fmtp`, `a=framerate`, `a=ts-refclk`, ...)
    /// except `a=control`, `a=range`, `a=ssrc`, `a=ssrc-group`, `a=rtcp`, `a=rtcp-mux`.
    pub lines: Vec<String>,
}

/// Why a back end's SDP was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The SDP body is empty or only white space.
    #[error("empty SDP")]
    Empty,
    /// The SDP is larger than [`MAX_SDP_BYTES`].
    #[error("SDP too large: {size} bytes (limit {limit})")]
    TooLarge {
        /// Size of the SDP received.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The SDP has more than [`MAX_TRACKS`] media sections.
    #[error("SDP has more than {limit} media sections")]
    TooManyTracks {
        /// The limit.
        limit: usize,
    },
    /// The SDP has no `m=` line.
    #[error("SDP has no media section (m= line)")]
    NoMedia,
    /// An `m=` line could not be read.
    #[error("malformed m= line (SDP line {line}): {reason}")]
    MalformedMedia {
        /// 1-based line number in the SDP.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl Presentation {
    /// The multicast group the SDP announces for `track` (its own `c=`, else the
    /// session's), if any: such a back end streams multicast.
    #[must_use]
    pub fn announced_group(&self, track: usize) -> Option<std::net::Ipv4Addr> {
        let t = self.tracks.get(track)?;
        t.connection
            .as_deref()
            .or(self.session_connection.as_deref())
            .and_then(multicast_group)
    }

    /// Whether the SDP announces multicast for any track.
    #[must_use]
    pub fn announces_multicast(&self) -> bool {
        (0..self.tracks.len()).any(|i| self.announced_group(i).is_some())
    }

    /// The index of the track a client addresses by the control name we served
    /// (`"track3"` -> `Some(2)`), if that track exists.
    ///
    /// `name` is the last path segment of the client's SETUP URL. Only the exact form
    /// written by [`render`] is accepted: `track` followed by a decimal number from 1
    /// with no sign or leading zero.
    #[must_use]
    pub fn track_for_control(&self, name: &str) -> Option<usize> {
        let digits = name.strip_prefix("track")?;
        if digits.is_empty()
            || digits.starts_with('0')
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let number = digits.parse::<usize>().ok()?;
        (number <= self.tracks.len()).then(|| number - 1)
    }

    /// Whether `other` describes the same tracks: the same number, and for each the
    /// same media type, encoding name and clock rate (names compared without regard to
    /// case).
    ///
    /// Used after a back-end reconnect: when it holds, clients can carry on with the
    /// tracks they set up; otherwise their sessions must end.
    #[must_use]
    pub fn same_tracks(&self, other: &Presentation) -> bool {
        self.tracks.len() == other.tracks.len()
            && self.tracks.iter().zip(&other.tracks).all(|(a, b)| {
                a.media.eq_ignore_ascii_case(&b.media)
                    && a.clock_rate == b.clock_rate
                    && match (&a.encoding, &b.encoding) {
                        (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
                        (None, None) => true,
                        _ => false,
                    }
            })
    }
}

impl Track {
    /// The first format as an RTP payload type, if it is a number in 0..=127.
    #[must_use]
    pub fn payload_type(&self) -> Option<u8> {
        self.formats
            .first()?
            .parse::<u8>()
            .ok()
            .filter(|&pt| pt <= 127)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    const GST_H264_AAC: &str = include_str!("../../../tests/data/sdp/gstreamer-h264-aac.sdp");
    const GST_NO_AUDIO_BW: &str =
        include_str!("../../../tests/data/sdp/gstreamer-h264-aac-no-audio-bandwidth.sdp");
    const LIVE555_PROXY: &str = include_str!("../../../tests/data/sdp/live555-proxy-h264-aac.sdp");
    const GST_H265: &str = include_str!("../../../tests/data/sdp/gstreamer-h265.sdp");
    /// A real Hikvision camera's SDP (absolute controls with a query string).
    const HIKVISION_DESCRIBE: &str =
        include_str!("../../../tests/data/cameras/hikvision_describe.txt");
    const MJPEG: &str = include_str!("../../../tests/data/sdp/camera-mjpeg-static-pt.sdp");
    const OPUS: &str = include_str!("../../../tests/data/sdp/opus-rtcp-mux.sdp");

    const H264_FMTP: &str = "a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0LAHtoCgPbAWoMDA1KAAAADAIAAABlHixdQ,aM48gA==;profile-level-id=42c01e;level-asymmetry-allowed=1";
    const AAC_FMTP: &str = "a=fmtp:97 streamtype=5;profile-level-id=2;mode=AAC-hbr;config=119056e500;sizelength=13;indexlength=3;indexdeltalength=3";

    fn opts() -> RenderOptions {
        RenderOptions {
            session_id: 1_795_242_611_532_927,
            origin: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            tool: "rtsp-proxy 0.1.0".into(),
        }
    }

    fn lines(sdp: &str) -> Vec<&str> {
        assert!(sdp.ends_with("\r\n"), "CRLF at the end");
        let body = &sdp[..sdp.len() - 2];
        let lines: Vec<&str> = body.split("\r\n").collect();
        assert!(
            lines.iter().all(|l| !l.contains(['\r', '\n'])),
            "only CRLF line ends"
        );
        lines
    }

    #[test]
    fn gstreamer_h264_aac_parsed() {
        let p = parse(GST_H264_AAC).expect("real GStreamer SDP");
        assert_eq!(
            p.session_name.as_deref(),
            Some("Session streamed with GStreamer")
        );
        assert_eq!(p.session_info.as_deref(), Some("rtsp-server"));
        assert_eq!(p.session_control.as_deref(), Some("*"));
        assert_eq!(
            p.session_attributes,
            ["a=tool:GStreamer", "a=type:broadcast"]
        );
        assert_eq!(p.tracks.len(), 2);

        let video = &p.tracks[0];
        assert_eq!(
            (video.media.as_str(), video.port, video.protocol.as_str()),
            ("video", 0, "RTP/AVP")
        );
        assert_eq!(video.formats, ["96"]);
        assert_eq!(video.payload_type(), Some(96));
        assert_eq!(video.control.as_deref(), Some("stream=0"));
        assert_eq!(video.connection.as_deref(), Some("IN IP4 0.0.0.0"));
        assert_eq!(video.encoding.as_deref(), Some("H264"));
        assert_eq!(video.clock_rate, 90000);
        assert_eq!(video.channels, None);
        assert_eq!(
            video.lines,
            [
                "b=AS:2048",
                "a=rtpmap:96 H264/90000",
                "a=framerate:25",
                H264_FMTP,
                "a=ts-refclk:local",
                "a=mediaclk:sender"
            ]
        );

        let audio = &p.tracks[1];
        assert_eq!(audio.media, "audio");
        assert_eq!(audio.formats, ["97"]);
        assert_eq!(audio.control.as_deref(), Some("stream=1"));
        assert_eq!(audio.encoding.as_deref(), Some("MPEG4-GENERIC"));
        assert_eq!(audio.clock_rate, 48000);
        assert_eq!(audio.channels, Some(2));
        assert_eq!(
            audio.lines,
            [
                "b=AS:144",
                "a=rtpmap:97 MPEG4-GENERIC/48000/2",
                AAC_FMTP,
                "a=ts-refclk:local",
                "a=mediaclk:sender"
            ]
        );
    }

    #[test]
    fn gstreamer_h264_aac_rendered() {
        let p = parse(GST_H264_AAC).expect("real GStreamer SDP");
        let sdp = render(&p, &opts());
        assert_eq!(
            lines(&sdp),
            [
                "v=0",
                "o=- 1795242611532927 1 IN IP4 192.0.2.2",
                "s=Session streamed with GStreamer",
                "i=rtsp-server",
                "t=0 0",
                "a=tool:rtsp-proxy 0.1.0",
                "a=type:broadcast",
                "a=control:*",
                "a=range:npt=now-",
                "m=video 0 RTP/AVP 96",
                "c=IN IP4 0.0.0.0",
                "b=AS:2048",
                "a=rtpmap:96 H264/90000",
                "a=framerate:25",
                H264_FMTP,
                "a=ts-refclk:local",
                "a=mediaclk:sender",
                "a=control:track1",
                "m=audio 0 RTP/AVP 97",
                "c=IN IP4 0.0.0.0",
                "b=AS:144",
                "a=rtpmap:97 MPEG4-GENERIC/48000/2",
                AAC_FMTP,
                "a=ts-refclk:local",
                "a=mediaclk:sender",
                "a=control:track2",
            ]
        );
        assert!(!sdp.contains("ssrc"));
        assert!(!sdp.contains("stream=0"));
    }

    #[test]
    fn rendered_sdp_parses_back_to_the_same_tracks() {
        for (name, input) in [
            ("gst", GST_H264_AAC),
            ("gst-no-bw", GST_NO_AUDIO_BW),
            ("live555", LIVE555_PROXY),
            ("h265", GST_H265),
            (
                "hikvision",
                super::cameras_tests::sdp_of(HIKVISION_DESCRIBE),
            ),
            ("mjpeg", MJPEG),
            ("opus", OPUS),
        ] {
            let original = parse(input).unwrap_or_else(|e| panic!("{name}: {e}"));
            let served =
                parse(&render(&original, &opts())).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(original.same_tracks(&served), "{name}");
            for (index, (a, b)) in original.tracks.iter().zip(&served.tracks).enumerate() {
                assert_eq!(a.lines, b.lines, "{name}: kept lines survive a round trip");
                assert_eq!(a.formats, b.formats, "{name}");
                assert_eq!(b.control, Some(format!("track{}", index + 1)), "{name}");
                assert_eq!(b.port, 0, "{name}");
            }
            assert_eq!(served.session_control.as_deref(), Some("*"), "{name}");
            // Rendering is stable: a second pass changes nothing.
            assert_eq!(
                render(&served, &opts()),
                render(&original, &opts()),
                "{name}"
            );
        }
    }

    #[test]
    fn gstreamer_without_audio_bandwidth() {
        let p = parse(GST_NO_AUDIO_BW).expect("real GStreamer SDP");
        assert_eq!(
            p.tracks[1].lines.first().map(String::as_str),
            Some("a=rtpmap:97 MPEG4-GENERIC/48000/2")
        );
        assert!(parse(GST_H264_AAC)
            .expect("real GStreamer SDP")
            .same_tracks(&p));
    }

    #[test]
    fn live555_rebuilt_sdp() {
        let p = parse(LIVE555_PROXY).expect("real live555 SDP");
        assert_eq!(
            p.session_name.as_deref(),
            Some("LIVE555 Streaming Media v2026.06.24")
        );
        assert_eq!(
            p.session_attributes,
            [
                "a=tool:LIVE555 Streaming Media v2026.06.24",
                "a=type:broadcast",
                "a=x-qt-text-nam:LIVE555 Streaming Media v2026.06.24",
                "a=x-qt-text-inf:LIVE555 Streaming Media v2026.06.24",
            ]
        );
        assert_eq!(p.track_for_control("track2"), Some(1));
        assert_eq!(p.tracks[0].control.as_deref(), Some("track1"));
        assert_eq!(
            p.tracks[1].lines.first().map(String::as_str),
            Some("b=AS:50")
        );
        let sdp = render(&p, &opts());
        let lines = lines(&sdp);
        assert_eq!(lines.iter().filter(|l| l.starts_with("a=tool:")).count(), 1);
        assert_eq!(lines.iter().filter(|l| l.starts_with("a=type:")).count(), 1);
        assert!(lines.contains(&"a=x-qt-text-nam:LIVE555 Streaming Media v2026.06.24"));
        assert!(lines.contains(&"a=tool:rtsp-proxy 0.1.0"));
    }

    #[test]
    fn lf_only_input_is_accepted() {
        let lf = GST_H264_AAC.replace("\r\n", "\n");
        assert_eq!(
            parse(&lf).expect("LF SDP"),
            parse(GST_H264_AAC).expect("CRLF SDP")
        );
        let mixed = GST_H264_AAC.replacen("\r\n", "\n", 7);
        assert_eq!(
            parse(&mixed).expect("mixed SDP"),
            parse(GST_H264_AAC).expect("CRLF SDP")
        );
        let no_final_newline = GST_H264_AAC.trim_end();
        assert_eq!(
            parse(no_final_newline).expect("SDP"),
            parse(GST_H264_AAC).expect("CRLF SDP")
        );
    }

    #[test]
    fn h265() {
        let p = parse(GST_H265).expect("H.265 SDP");
        let t = &p.tracks[0];
        assert_eq!(t.encoding.as_deref(), Some("H265"));
        assert_eq!(t.clock_rate, 90000);
        let sdp = render(&p, &opts());
        assert!(lines(&sdp).contains(&"a=fmtp:96 sprop-vps=QAEMAf//AWAAAAMAkAAAAwAAAwB4lZgJ;sprop-sps=QgEBAWAAAAMAkAAAAwAAAwB4oAPAgBDlll2kkq8BAAADAAEAAAMAGQg=;sprop-pps=RAHBcrRiQA=="));
        assert!(!sdp.contains("a=ssrc"));
        assert!(!p.same_tracks(&parse(GST_H264_AAC).expect("H.264 SDP")));
    }

    #[test]
    fn mjpeg_static_payload_type_without_rtpmap() {
        let p = parse(MJPEG).expect("MJPEG SDP");
        assert_eq!(p.session_control.as_deref(), Some("*"));
        assert!(
            p.session_attributes.is_empty(),
            "{:?}",
            p.session_attributes
        );
        let t = &p.tracks[0];
        assert_eq!(t.formats, ["26"]);
        assert_eq!(t.encoding.as_deref(), Some("JPEG"));
        assert_eq!(t.clock_rate, 90000);
        assert_eq!(t.channels, None);
        assert_eq!(t.connection, None);
        assert_eq!(t.lines, ["a=framerate:15", "a=x-dimensions:640,480"]);
        let sdp = render(&p, &opts());
        assert_eq!(
            lines(&sdp)[8..],
            [
                "m=video 0 RTP/AVP 26",
                "c=IN IP4 0.0.0.0",
                "a=framerate:15",
                "a=x-dimensions:640,480",
                "a=control:track1"
            ]
        );
        assert_eq!(sdp.matches("a=range").count(), 1);
    }

    #[test]
    fn opus_over_ipv6_with_rtcp_mux() {
        let p = parse(OPUS).expect("Opus SDP");
        assert_eq!(p.session_name.as_deref(), Some("-"));
        assert_eq!(p.session_attributes, ["a=sendonly"]);
        let t = &p.tracks[0];
        assert_eq!(t.port, 5004);
        assert_eq!(t.formats, ["111", "0"]);
        assert_eq!(t.encoding.as_deref(), Some("opus"));
        assert_eq!(t.clock_rate, 48000);
        assert_eq!(t.channels, Some(2));
        assert_eq!(t.control.as_deref(), Some("audio"));
        assert_eq!(
            t.lines,
            [
                "a=rtpmap:111 opus/48000/2",
                "a=fmtp:111 minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1",
                "a=rtpmap:0 PCMU/8000",
                "a=ptime:20",
            ]
        );
        let sdp = render(
            &p,
            &RenderOptions {
                origin: IpAddr::V6(Ipv6Addr::LOCALHOST),
                ..opts()
            },
        );
        assert_eq!(
            lines(&sdp),
            [
                "v=0",
                "o=- 1795242611532927 1 IN IP6 ::1",
                "s=-",
                "t=0 0",
                "a=tool:rtsp-proxy 0.1.0",
                "a=type:broadcast",
                "a=control:*",
                "a=range:npt=now-",
                "a=sendonly",
                "m=audio 0 RTP/AVP 111 0",
                "c=IN IP6 ::",
                "a=rtpmap:111 opus/48000/2",
                "a=fmtp:111 minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1",
                "a=rtpmap:0 PCMU/8000",
                "a=ptime:20",
                "a=control:track1",
            ]
        );
    }

    #[test]
    fn camera_with_absolute_control_urls() {
        // Hikvision: absolute a=control URLs with a query string at session and
        // media level, e=, session b=, a=recvonly, an ONVIF metadata track.
        let p = parse(super::cameras_tests::sdp_of(HIKVISION_DESCRIBE)).expect("camera SDP");
        assert_eq!(p.session_name.as_deref(), Some("Media Presentation"));
        assert_eq!(
            p.session_control.as_deref(),
            Some("rtsp://192.168.5.106:554/Streaming/Channels/101/?transportmode=unicast&profile=Profile_1")
        );
        assert_eq!(p.session_attributes, ["e=NONE", "b=AS:5050"]);
        assert_eq!(p.tracks.len(), 2);
        let controls: Vec<_> = p.tracks.iter().map(|t| t.control.as_deref()).collect();
        assert_eq!(
            controls,
            [
                Some("rtsp://192.168.5.106:554/Streaming/Channels/101/trackID=1?transportmode=unicast&profile=Profile_1"),
                Some("rtsp://192.168.5.106:554/Streaming/Channels/101/trackID=3?transportmode=unicast&profile=Profile_1"),
            ]
        );
        assert_eq!(
            p.tracks[0].lines,
            [
                "b=AS:5000",
                "a=recvonly",
                "a=x-dimensions:1920,1080",
                "a=rtpmap:96 H264/90000",
                "a=fmtp:96 profile-level-id=420029; packetization-mode=1; sprop-parameter-sets=Z00AKZpkA8ARPyzUBAQFAAADA+gAAOpgBA==,aO48gA==",
            ]
        );
        assert_eq!(p.tracks[0].connection.as_deref(), Some("IN IP4 0.0.0.0"));
        assert_eq!(p.tracks[1].media, "application");
        assert_eq!(p.tracks[1].encoding.as_deref(), Some("vnd.onvif.metadata"));
        assert_eq!(p.tracks[1].clock_rate, 90000);
        assert_eq!(p.tracks[1].channels, None);

        let sdp = render(&p, &opts());
        assert_eq!(
            lines(&sdp),
            [
                "v=0",
                "o=- 1795242611532927 1 IN IP4 192.0.2.2",
                "s=Media Presentation",
                "e=NONE",
                "b=AS:5050",
                "t=0 0",
                "a=tool:rtsp-proxy 0.1.0",
                "a=type:broadcast",
                "a=control:*",
                "a=range:npt=now-",
                "m=video 0 RTP/AVP 96",
                "c=IN IP4 0.0.0.0",
                "b=AS:5000",
                "a=recvonly",
                "a=x-dimensions:1920,1080",
                "a=rtpmap:96 H264/90000",
                "a=fmtp:96 profile-level-id=420029; packetization-mode=1; sprop-parameter-sets=Z00AKZpkA8ARPyzUBAQFAAADA+gAAOpgBA==,aO48gA==",
                "a=control:track1",
                "m=application 0 RTP/AVP 107",
                "c=IN IP4 0.0.0.0",
                "b=AS:50",
                "a=recvonly",
                "a=rtpmap:107 vnd.onvif.metadata/90000",
                "a=Media_header:MEDIAINFO=494D4B48010100000400010000000000000000000000000000000000000000000000000000000000;",
                "a=appversion:1.0",
                "a=control:track2",
            ]
        );
        assert!(
            !sdp.contains("192.168.5.106"),
            "back-end addresses never reach clients"
        );
    }

    #[test]
    fn tcp_transport_marker_removed() {
        let p =
            parse("v=0\r\nm=video 0 RTP/AVP/TCP 96\r\na=rtpmap:96 H264/90000\r\n").expect("SDP");
        assert_eq!(p.tracks[0].protocol, "RTP/AVP/TCP");
        assert!(render(&p, &opts()).contains("\r\nm=video 0 RTP/AVP 96\r\n"));
        let savp = parse("m=video 0 RTP/SAVP 96\n").expect("SDP");
        assert!(render(&savp, &opts()).contains("\r\nm=video 0 RTP/SAVP 96\r\n"));
    }

    #[test]
    fn track_for_control_names() {
        let p = parse(GST_H264_AAC).expect("SDP");
        assert_eq!(p.track_for_control("track1"), Some(0));
        assert_eq!(p.track_for_control("track2"), Some(1));
        for bad in [
            "track3",
            "track0",
            "track",
            "track01",
            "track+1",
            "track-1",
            "Track1",
            "track1 ",
            "stream=0",
            "",
            "track99999999999999999999999",
        ] {
            assert_eq!(p.track_for_control(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn same_tracks_rules() {
        let base = parse(GST_H264_AAC).expect("SDP");
        let lower = parse(&GST_H264_AAC.replace("H264/90000", "h264/90000")).expect("SDP");
        assert!(
            base.same_tracks(&lower),
            "encoding names compare without case"
        );
        let other_pt =
            parse(&GST_H264_AAC.replace(" 96", " 98").replace(":96", ":98")).expect("SDP");
        assert!(
            base.same_tracks(&other_pt),
            "payload type numbers may change"
        );
        let other_rate =
            parse(&GST_H264_AAC.replace("MPEG4-GENERIC/48000/2", "MPEG4-GENERIC/44100/2"))
                .expect("SDP");
        assert!(!base.same_tracks(&other_rate));
        let one_track = Presentation {
            tracks: base.tracks[..1].to_vec(),
            ..base.clone()
        };
        assert!(!base.same_tracks(&one_track));
        let swapped = Presentation {
            tracks: vec![base.tracks[1].clone(), base.tracks[0].clone()],
            ..base.clone()
        };
        assert!(!base.same_tracks(&swapped));
        let mut unknown = base.clone();
        unknown.tracks[0].encoding = None;
        assert!(!base.same_tracks(&unknown));
        assert!(unknown.same_tracks(&unknown.clone()));
    }

    #[test]
    fn garbage_never_panics() {
        let mut inputs: Vec<String> = vec![
            "\0\0\0".into(),
            "m".into(),
            "m=".into(),
            "m= \r\n".into(),
            "m=video 0 RTP/AVP 96\na=rtpmap:".into(),
            "m=video 0 RTP/AVP 96\na=rtpmap:96".into(),
            "m=video 0 RTP/AVP 96\na=rtpmap:96 /".into(),
            "m=video 0 RTP/AVP 96\na=rtpmap:96 a/b/c/d".into(),
            "m=video 0 RTP/AVP 96\na=\na=:\na=::\nb=\nc=\ni=".into(),
            "m=video 0 RTP/AVP 255\n".into(),
            "m=video 0 RTP/AVP 99999999999999999999\n".into(),
            "é=ü\nm=vidéo 0 RTP/AVP 96".into(),
            "\u{feff}v=0\nm=audio 0 RTP/AVP 0".into(),
            "\r\r\r\n\n\n".into(),
            "RTSP/1.0 200 OK\r\nCSeq: 2\r\n\r\n".into(),
        ];
        // Every prefix of every real SDP, cut at any character boundary.
        let hikvision = super::cameras_tests::sdp_of(HIKVISION_DESCRIBE);
        for real in [GST_H264_AAC, LIVE555_PROXY, hikvision, OPUS] {
            for (cut, _) in real.char_indices() {
                inputs.push(real[..cut].to_owned());
            }
        }
        // Deterministic pseudo-random byte soup made of SDP-ish characters.
        let alphabet: Vec<char> = "vosimcbtaz=:/ 0123456789\r\n\tRTPAV-é\0".chars().collect();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let len = (state % 200) as usize;
            let mut text = String::new();
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            inputs.push(text);
        }
        for input in &inputs {
            if let Ok(p) = parse(input) {
                let sdp = render(&p, &opts());
                assert!(!sdp.contains('\0'));
                let reparsed = parse(&sdp).expect("our own output always parses");
                assert!(p.same_tracks(&reparsed), "{input:?}");
            }
        }
    }

    #[test]
    fn errors_display() {
        assert_eq!(SdpError::Empty.to_string(), "empty SDP");
        assert_eq!(
            SdpError::MalformedMedia {
                line: 3,
                reason: "missing port"
            }
            .to_string(),
            "malformed m= line (SDP line 3): missing port"
        );
        assert_eq!(
            SdpError::TooLarge {
                size: 70000,
                limit: MAX_SDP_BYTES
            }
            .to_string(),
            "SDP too large: 70000 bytes (limit 65536)"
        );
    }
}
