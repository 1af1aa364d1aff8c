//! The SDP the proxy serves to its clients.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::line::{keep_media_line, keep_session_line, order_rank, without_controls, SdpLine};
use super::{Presentation, Track};

/// Session name written when the back end gave none.
pub const DEFAULT_SESSION_NAME: &str = "rtsp-proxy stream";

/// What [`render`] needs besides the presentation itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderOptions {
    /// The `o=` session id. Keep it stable for the life of the stream (live555 uses the
    /// stream's creation time) so clients can tell it is the same session.
    pub session_id: u64,
    /// The `o=` address: the proxy's own address. Its family also picks the `c=` lines
    /// (`IN IP4 0.0.0.0` or `IN IP6 ::`); an IPv4-mapped IPv6 address counts as IPv4.
    pub origin: IpAddr,
    /// Written as `a=tool:<tool>`, e.g. `"rtsp-proxy 0.1.0"`.
    pub tool: String,
}

/// Renders the SDP served to clients, with CRLF line ends:
///
/// ```text
/// v=0
/// o=- <session_id> 1 IN IP4|IP6 <origin>
/// s=<back end's session name, or "rtsp-proxy stream">
/// i=<back end's session information>            (only if it had one)
/// <kept u=, e=, p=, b= session lines>
/// t=0 0
/// a=tool:<tool>
/// a=type:broadcast
/// a=control:*
/// a=range:npt=now-
/// <kept session a= lines, except a=tool and a=type>
/// m=<media> 0 <protocol without "/TCP"> <formats>   (per track, in order)
/// <kept i= lines>
/// c=IN IP4 0.0.0.0                               (IN IP6 :: for an IPv6 origin)
/// <kept b= lines>
/// <kept a= lines: rtpmap, fmtp, framerate, ...>
/// a=control:track<N>                             (N = track index + 1)
/// ```
///
/// Kept lines keep their relative order; they are only grouped by type letter so that
/// the result follows the line order RFC 4566 requires. Lines and values are filtered
/// with the same rules as [`parse`](super::parse), so a hand-built [`Presentation`]
/// cannot smuggle line breaks or a second `a=control` into the output.
pub fn render(presentation: &Presentation, opts: &RenderOptions) -> String {
    let (family, origin, any) = match opts.origin {
        IpAddr::V4(v4) => ("IP4", v4.to_string(), "0.0.0.0"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => ("IP4", v4.to_string(), "0.0.0.0"),
            None => ("IP6", v6.to_string(), "::"),
        },
    };

    let mut out = String::with_capacity(512);
    push(&mut out, "v=0");
    push(
        &mut out,
        &format!("o=- {} 1 IN {family} {origin}", opts.session_id),
    );
    let name = presentation
        .session_name
        .as_deref()
        .map(without_controls)
        .filter(|name| !name.is_empty());
    push(
        &mut out,
        &format!("s={}", name.as_deref().unwrap_or(DEFAULT_SESSION_NAME)),
    );
    if let Some(info) = presentation
        .session_info
        .as_deref()
        .map(without_controls)
        .filter(|i| !i.is_empty())
    {
        push(&mut out, &format!("i={info}"));
    }

    let session_lines = ordered(&presentation.session_attributes, |line| {
        keep_session_line(line)
            && !line.attribute_name().is_some_and(|name| {
                name.eq_ignore_ascii_case("tool") || name.eq_ignore_ascii_case("type")
            })
    });
    for line in session_lines.iter().filter(|line| line.kind != 'a') {
        push(&mut out, &format!("{}={}", line.kind, line.value));
    }
    push(&mut out, "t=0 0");
    push(
        &mut out,
        &format!("a=tool:{}", without_controls(&opts.tool)),
    );
    push(&mut out, "a=type:broadcast");
    push(&mut out, "a=control:*");
    push(&mut out, "a=range:npt=now-");
    for line in session_lines.iter().filter(|line| line.kind == 'a') {
        push(&mut out, &format!("a={}", line.value));
    }

    for (index, track) in presentation.tracks.iter().enumerate() {
        render_track(&mut out, track, index + 1, family, any);
    }
    out
}

fn render_track(out: &mut String, track: &Track, number: usize, family: &str, any: &str) {
    let mut m_line = format!(
        "m={} 0 {}",
        token(&track.media),
        token(served_protocol(&track.protocol))
    );
    for format in &track.formats {
        let _ = write!(m_line, " {}", token(format));
    }
    push(out, &m_line);

    let lines = ordered(&track.lines, keep_media_line);
    let connection_rank = order_rank('c');
    for line in lines
        .iter()
        .filter(|line| order_rank(line.kind) < connection_rank)
    {
        push(out, &format!("{}={}", line.kind, line.value));
    }
    push(out, &format!("c=IN {family} {any}"));
    for line in lines
        .iter()
        .filter(|line| order_rank(line.kind) > connection_rank)
    {
        push(out, &format!("{}={}", line.kind, line.value));
    }
    push(out, &format!("a=control:track{number}"));
}

/// The transport protocol clients see: the back end's, without the RFC 4145 TCP marker
/// (`RTP/AVP/TCP` -> `RTP/AVP`, `TCP/RTP/AVP` -> `RTP/AVP`), because how media reaches
/// a client is negotiated in its own SETUP.
fn served_protocol(protocol: &str) -> &str {
    // Every marker goes, so that serving what we served changes nothing
    // (`TCP/TCP/RTP/AVP` lost one marker per rendering before; found by the
    // `sdp` fuzz target).
    let mut served = protocol;
    loop {
        let split = served.len().saturating_sub(4);
        let before = served;
        if let (Some(head), Some(tail)) = (served.get(..split), served.get(split..)) {
            if !head.is_empty() && tail.eq_ignore_ascii_case("/TCP") {
                served = head;
            }
        }
        if let (Some(head), Some(rest)) = (served.get(..4), served.get(4..)) {
            if head.eq_ignore_ascii_case("TCP/") && !rest.is_empty() {
                served = rest;
            }
        }
        if served == before {
            return served;
        }
    }
}

/// An `m=` token: visible ASCII only (a hand-built track could hold anything).
fn token(text: &str) -> String {
    let cleaned: String = text.chars().filter(char::is_ascii_graphic).collect();
    if cleaned.is_empty() {
        "-".to_owned()
    } else {
        cleaned
    }
}

/// The lines that pass `keep`, stably grouped by their RFC 4566 order.
fn ordered<'a>(lines: &'a [String], keep: impl Fn(&SdpLine<'a>) -> bool) -> Vec<SdpLine<'a>> {
    let mut kept: Vec<SdpLine<'a>> = lines
        .iter()
        .filter_map(|text| SdpLine::split(text.trim()))
        .filter(|line| keep(line))
        .collect();
    kept.sort_by_key(|line| order_rank(line.kind));
    kept
}

fn push(out: &mut String, line: &str) {
    out.push_str(line);
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn options(origin: IpAddr) -> RenderOptions {
        RenderOptions {
            session_id: 42,
            origin,
            tool: "rtsp-proxy 0.1.0".into(),
        }
    }

    fn lines(sdp: &str) -> Vec<&str> {
        let body = sdp.strip_suffix("\r\n").expect("CRLF after the last line");
        let lines: Vec<&str> = body.split("\r\n").collect();
        assert!(
            lines.iter().all(|l| !l.contains(['\r', '\n'])),
            "only CRLF line ends"
        );
        lines
    }

    #[test]
    fn minimal_presentation() {
        let p = parse("m=video 0 RTP/AVP/TCP 96\na=rtpmap:96 H264/90000\na=control:trackID=5\n")
            .expect("valid SDP");
        let sdp = render(&p, &options(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2))));
        assert_eq!(
            lines(&sdp),
            [
                "v=0",
                "o=- 42 1 IN IP4 192.0.2.2",
                "s=rtsp-proxy stream",
                "t=0 0",
                "a=tool:rtsp-proxy 0.1.0",
                "a=type:broadcast",
                "a=control:*",
                "a=range:npt=now-",
                "m=video 0 RTP/AVP 96",
                "c=IN IP4 0.0.0.0",
                "a=rtpmap:96 H264/90000",
                "a=control:track1",
            ]
        );
    }

    #[test]
    fn ipv6_origin_and_mapped_ipv4() {
        let p = parse("m=audio 0 RTP/AVP 0\n").expect("valid SDP");
        let v6 = render(&p, &options(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert!(v6.contains("o=- 42 1 IN IP6 ::1\r\n"));
        assert!(v6.contains("c=IN IP6 ::\r\n"));
        let mapped = render(
            &p,
            &options(IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped())),
        );
        assert!(mapped.contains("o=- 42 1 IN IP4 10.0.0.1\r\n"));
        assert!(mapped.contains("c=IN IP4 0.0.0.0\r\n"));
    }

    /// Serving an SDP we served gives the same text (the `sdp` fuzz target's
    /// crash: each rendering took one more `tcp/` off `m=a 9800 tcp/tcp/oII8`).
    #[test]
    fn rendering_what_we_served_changes_nothing() {
        let opts = options(IpAddr::V4(Ipv4Addr::LOCALHOST));
        for sdp in [
            "m=a 9800 tcp/tcp/oII8 ::1@\n",
            "m=video 0 TCP/TCP/RTP/AVP/TCP 96\na=rtpmap:96 H264/90000\n",
        ] {
            let once = render(&parse(sdp).expect("valid SDP"), &opts);
            let twice = render(&parse(&once).expect("served SDP parses"), &opts);
            assert_eq!(once, twice, "{sdp:?}");
        }
    }

    #[test]
    fn kept_lines_are_written_in_rfc_order() {
        let p = parse(
            "v=0\ns=name\na=sendonly\nb=AS:900\nu=http://example.com\nt=0 0\n\
             m=video 5000 RTP/AVP 96\na=rtpmap:96 VP8/90000\nb=AS:800\ni=main camera\nc=IN IP4 239.0.0.1/5\n",
        )
        .expect("valid SDP");
        let sdp = render(&p, &options(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(
            lines(&sdp),
            [
                "v=0",
                "o=- 42 1 IN IP4 127.0.0.1",
                "s=name",
                "u=http://example.com",
                "b=AS:900",
                "t=0 0",
                "a=tool:rtsp-proxy 0.1.0",
                "a=type:broadcast",
                "a=control:*",
                "a=range:npt=now-",
                "a=sendonly",
                "m=video 0 RTP/AVP 96",
                "i=main camera",
                "c=IN IP4 0.0.0.0",
                "b=AS:800",
                "a=rtpmap:96 VP8/90000",
                "a=control:track1",
            ]
        );
    }

    #[test]
    fn hand_built_presentation_cannot_inject_lines() {
        let p = Presentation {
            session_name: Some("evil\r\na=control:x".into()),
            session_info: Some("\r\n".into()),
            session_control: Some("ignored".into()),
            session_connection: None,
            session_attributes: vec![
                "a=tool:other".into(),
                "a=TYPE:x".into(),
                "o=- 1 1 IN IP4 1.1.1.1".into(),
                "a=x\r\nm=y".into(),
            ],
            tracks: vec![Track {
                media: "video\r\n".into(),
                port: 9,
                protocol: "RTP/AVP".into(),
                formats: vec!["96".into(), "".into()],
                control: Some("a".into()),
                connection: Some("IN IP4 1.2.3.4".into()),
                encoding: None,
                clock_rate: 90000,
                channels: None,
                lines: vec![
                    "a=control:old".into(),
                    "a=ssrc:1 cname:x".into(),
                    "m=audio 0 RTP/AVP 0".into(),
                    "a=ok".into(),
                ],
            }],
        };
        let sdp = render(
            &p,
            &RenderOptions {
                tool: "t\r\nx".into(),
                ..options(IpAddr::V4(Ipv4Addr::LOCALHOST))
            },
        );
        assert_eq!(
            lines(&sdp),
            [
                "v=0",
                "o=- 42 1 IN IP4 127.0.0.1",
                "s=evila=control:x",
                "t=0 0",
                "a=tool:tx",
                "a=type:broadcast",
                "a=control:*",
                "a=range:npt=now-",
                "m=video 0 RTP/AVP 96 -",
                "c=IN IP4 0.0.0.0",
                "a=ok",
                "a=control:track1",
            ]
        );
    }

    #[test]
    fn served_protocol_strips_tcp_marker_only() {
        assert_eq!(served_protocol("RTP/AVP"), "RTP/AVP");
        assert_eq!(served_protocol("RTP/AVP/TCP"), "RTP/AVP");
        assert_eq!(served_protocol("rtp/avp/tcp"), "rtp/avp");
        assert_eq!(served_protocol("RTP/SAVP"), "RTP/SAVP");
        assert_eq!(served_protocol("RTP/AVPF/TCP"), "RTP/AVPF");
        assert_eq!(served_protocol("TCP/RTP/AVP"), "RTP/AVP");
        assert_eq!(served_protocol("/TCP"), "/TCP");
        assert_eq!(served_protocol("TCP"), "TCP");
        assert_eq!(served_protocol("é/TCP"), "é");
        // Every marker, so that a second rendering changes nothing.
        assert_eq!(served_protocol("tcp/tcp/oII8"), "oII8");
        assert_eq!(served_protocol("TCP/RTP/AVP/TCP/TCP"), "RTP/AVP");
        assert_eq!(served_protocol("TCP/TCP"), "TCP");
        for p in [
            "tcp/tcp/oII8",
            "TCP/TCP",
            "TCP/TCP/",
            "/TCP/TCP",
            "a/TCP/TCP",
        ] {
            let once = served_protocol(p);
            assert_eq!(served_protocol(once), once, "{p:?}");
        }
    }
}
