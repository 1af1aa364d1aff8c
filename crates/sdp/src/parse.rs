//! Lenient parsing of a back end's SDP into a [`Presentation`].

use super::line::{keep_media_line, keep_session_line, SdpLine};
use super::payload::{default_clock_rate, parse_rtpmap, static_payload};
use super::{Presentation, SdpError, Track, MAX_FORMATS, MAX_SDP_BYTES, MAX_TRACKS};

/// Parses a back-end SDP.
///
/// The parser is lenient with what cameras send: CRLF or LF line ends, surrounding
/// white space, a byte-order mark, missing `v=`/`o=`/`t=` lines and unknown attributes
/// are all accepted. Lines that are not `<letter>=<value>`, or that contain control
/// characters, are skipped. What is kept and what is dropped is documented on
/// [`Presentation`] and [`Track`].
///
/// # Errors
///
/// [`SdpError::Empty`], [`SdpError::TooLarge`] (over [`MAX_SDP_BYTES`]),
/// [`SdpError::TooManyTracks`] (over [`MAX_TRACKS`] `m=` lines), [`SdpError::NoMedia`],
/// and [`SdpError::MalformedMedia`] for an `m=` line that cannot be read.
pub fn parse(sdp: &str) -> Result<Presentation, SdpError> {
    if sdp.len() > MAX_SDP_BYTES {
        return Err(SdpError::TooLarge {
            size: sdp.len(),
            limit: MAX_SDP_BYTES,
        });
    }
    let text = sdp.strip_prefix('\u{feff}').unwrap_or(sdp);
    if text.trim().is_empty() {
        return Err(SdpError::Empty);
    }

    let mut presentation = Presentation {
        session_name: None,
        session_info: None,
        session_control: None,
        session_attributes: Vec::new(),
        session_connection: None,
        tracks: Vec::new(),
    };

    for (index, raw) in text.split('\n').enumerate() {
        let line_number = index + 1;
        let Some(line) = SdpLine::split(raw.trim()) else {
            continue;
        };
        if line.kind == 'm' {
            if presentation.tracks.len() >= MAX_TRACKS {
                return Err(SdpError::TooManyTracks { limit: MAX_TRACKS });
            }
            presentation
                .tracks
                .push(parse_media_line(line.value, line_number)?);
            continue;
        }
        match presentation.tracks.last_mut() {
            None => session_line(&mut presentation, &line, raw.trim()),
            Some(track) => media_line(track, &line, raw.trim()),
        }
    }

    if presentation.tracks.is_empty() {
        return Err(SdpError::NoMedia);
    }
    for track in &mut presentation.tracks {
        resolve_codec(track);
    }
    Ok(presentation)
}

/// Handles one line before the first `m=` line.
fn session_line(presentation: &mut Presentation, line: &SdpLine<'_>, text: &str) {
    match line.kind {
        's' => set_once(&mut presentation.session_name, line.value),
        'i' => set_once(&mut presentation.session_info, line.value),
        'c' => set_once(&mut presentation.session_connection, line.value),
        'a' if is_control(line) => {
            set_once(
                &mut presentation.session_control,
                line.attribute_value().unwrap_or(""),
            );
        }
        _ if keep_session_line(line) => presentation.session_attributes.push(text.to_owned()),
        _ => {}
    }
}

/// Handles one line after an `m=` line.
fn media_line(track: &mut Track, line: &SdpLine<'_>, text: &str) {
    match line.kind {
        'c' => set_once(&mut track.connection, line.value),
        'a' if is_control(line) => {
            set_once(&mut track.control, line.attribute_value().unwrap_or(""))
        }
        _ if keep_media_line(line) => track.lines.push(text.to_owned()),
        _ => {}
    }
}

fn is_control(line: &SdpLine<'_>) -> bool {
    line.attribute_name()
        .is_some_and(|name| name.eq_ignore_ascii_case("control"))
}

/// Stores a trimmed, non-empty value unless one was already seen (the first wins).
fn set_once(slot: &mut Option<String>, value: &str) {
    let value = value.trim();
    if slot.is_none() && !value.is_empty() {
        *slot = Some(value.to_owned());
    }
}

/// Reads `<media> <port>[/<count>] <proto> <fmt> ...`.
fn parse_media_line(value: &str, line: usize) -> Result<Track, SdpError> {
    let malformed = |reason: &'static str| SdpError::MalformedMedia { line, reason };
    let mut tokens = value.split_ascii_whitespace();
    let media = tokens
        .next()
        .ok_or_else(|| malformed("missing media type"))?;
    let port = tokens.next().ok_or_else(|| malformed("missing port"))?;
    let protocol = tokens
        .next()
        .ok_or_else(|| malformed("missing transport protocol"))?;
    let formats: Vec<String> = tokens.map(str::to_owned).collect();

    if formats.is_empty() {
        return Err(malformed("no media formats"));
    }
    if formats.len() > MAX_FORMATS {
        return Err(malformed("too many media formats"));
    }
    let all_tokens = std::iter::once(media)
        .chain([port, protocol])
        .chain(formats.iter().map(String::as_str));
    for token in all_tokens {
        if !token.chars().all(|c| c.is_ascii_graphic()) {
            return Err(malformed("non-ASCII character"));
        }
    }
    let port_number = port.split_once('/').map_or(port, |(number, _count)| number);
    let port = port_number
        .parse::<u16>()
        .map_err(|_| malformed("port is not a number in 0..=65535"))?;

    Ok(Track {
        media: media.to_owned(),
        port,
        protocol: protocol.to_owned(),
        formats,
        control: None,
        connection: None,
        encoding: None,
        clock_rate: default_clock_rate(media),
        channels: None,
        lines: Vec::new(),
    })
}

/// Fills `encoding`, `clock_rate` and `channels` from the first format's `a=rtpmap`, or
/// from the static payload table, or leaves the per-media default.
fn resolve_codec(track: &mut Track) {
    let Some(first) = track.formats.first() else {
        return;
    };
    let from_rtpmap = track
        .lines
        .iter()
        .filter_map(|text| SdpLine::split(text))
        .filter(|line| {
            line.attribute_name()
                .is_some_and(|name| name.eq_ignore_ascii_case("rtpmap"))
        })
        .filter_map(|line| line.attribute_value().and_then(parse_rtpmap))
        .find(|(pt, _)| pt == first)
        .map(|(_, codec)| codec);
    let codec = from_rtpmap.or_else(|| first.parse::<u8>().ok().and_then(static_payload));
    if let Some(codec) = codec {
        track.encoding = Some(codec.encoding);
        track.clock_rate = codec.clock_rate;
        track.channels = codec.channels;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";

    #[test]
    fn minimal_crlf() {
        let p = parse(MINIMAL).expect("valid SDP");
        assert_eq!(p.session_name.as_deref(), Some("x"));
        assert_eq!(p.tracks.len(), 1);
        let t = &p.tracks[0];
        assert_eq!(t.media, "video");
        assert_eq!(t.port, 0);
        assert_eq!(t.protocol, "RTP/AVP");
        assert_eq!(t.formats, ["96"]);
        assert_eq!(t.encoding.as_deref(), Some("H264"));
        assert_eq!(t.clock_rate, 90000);
        assert_eq!(t.lines, ["a=rtpmap:96 H264/90000"]);
    }

    #[test]
    fn errors() {
        assert!(matches!(parse(""), Err(SdpError::Empty)));
        assert!(matches!(parse(" \r\n\n\t"), Err(SdpError::Empty)));
        assert!(matches!(parse("\u{feff}"), Err(SdpError::Empty)));
        assert!(matches!(parse("v=0\r\ns=x\r\n"), Err(SdpError::NoMedia)));
        let big = format!("{MINIMAL}{}", "a=x\r\n".repeat(MAX_SDP_BYTES / 5));
        assert!(matches!(
            parse(&big),
            Err(SdpError::TooLarge {
                limit: MAX_SDP_BYTES,
                ..
            })
        ));
        let many = format!("v=0\n{}", "m=audio 0 RTP/AVP 0\n".repeat(MAX_TRACKS + 1));
        assert!(matches!(
            parse(&many),
            Err(SdpError::TooManyTracks { limit: MAX_TRACKS })
        ));
        let exactly = format!("v=0\n{}", "m=audio 0 RTP/AVP 0\n".repeat(MAX_TRACKS));
        assert_eq!(
            parse(&exactly).map(|p| p.tracks.len()).ok(),
            Some(MAX_TRACKS)
        );
    }

    #[test]
    fn exactly_the_size_limit_is_accepted() {
        let head = "v=0\nm=video 0 RTP/AVP 96\n";
        let filler = "a".repeat(MAX_SDP_BYTES - head.len() - 3);
        let sdp = format!("{head}a={filler}\n");
        assert_eq!(sdp.len(), MAX_SDP_BYTES);
        assert!(parse(&sdp).is_ok());
    }

    #[test]
    fn malformed_media_lines() {
        let cases = [
            ("m=", "missing media type"),
            ("m=video", "missing port"),
            ("m=video 0", "missing transport protocol"),
            ("m=video 0 RTP/AVP", "no media formats"),
            ("m=video x RTP/AVP 96", "port is not a number in 0..=65535"),
            (
                "m=video 65536 RTP/AVP 96",
                "port is not a number in 0..=65535",
            ),
            ("m=video -1 RTP/AVP 96", "port is not a number in 0..=65535"),
            ("m=vidéo 0 RTP/AVP 96", "non-ASCII character"),
        ];
        for (m_line, expected) in cases {
            let sdp = format!("v=0\r\ns=x\r\n{m_line}\r\n");
            match parse(&sdp) {
                Err(SdpError::MalformedMedia { line, reason }) => {
                    assert_eq!(line, 3, "{m_line}");
                    assert_eq!(reason, expected, "{m_line}");
                }
                other => panic!("{m_line}: unexpected {other:?}"),
            }
        }
        let formats = vec!["96"; MAX_FORMATS + 1].join(" ");
        assert!(matches!(
            parse(&format!("m=video 0 RTP/AVP {formats}")),
            Err(SdpError::MalformedMedia {
                reason: "too many media formats",
                ..
            })
        ));
    }

    #[test]
    fn port_with_count_and_nonzero_port() {
        let p = parse("m=video 5004/2 RTP/AVP 96 97\n").expect("valid SDP");
        assert_eq!(p.tracks[0].port, 5004);
        assert_eq!(p.tracks[0].formats, ["96", "97"]);
    }

    #[test]
    fn session_fields_first_wins_and_blank_values_ignored() {
        let p = parse("s= \ni=\ns=second\ni=info\ni=other\na=control:\na=control:rtsp://cam/\nm=video 0 RTP/AVP 26\n")
            .expect("valid SDP");
        assert_eq!(p.session_name.as_deref(), Some("second"));
        assert_eq!(p.session_info.as_deref(), Some("info"));
        assert_eq!(p.session_control.as_deref(), Some("rtsp://cam/"));
    }

    #[test]
    fn multicast_connections_are_recognised() {
        let p = parse("v=0\r\ns=x\r\nc=IN IP4 232.1.1.1/8\r\nm=video 5000 RTP/AVP 96\r\nm=audio 5002 RTP/AVP 0\r\nc=IN IP4 10.0.0.1\r\n").unwrap();
        assert_eq!(p.session_connection.as_deref(), Some("IN IP4 232.1.1.1/8"));
        assert_eq!(p.announced_group(0), Some("232.1.1.1".parse().unwrap()));
        assert_eq!(
            p.announced_group(1),
            None,
            "the track's own unicast c= wins"
        );
        assert!(p.announces_multicast());
        assert_eq!(
            crate::multicast_group("IN IP4 239.255.1.1/1"),
            Some("239.255.1.1".parse().unwrap())
        );
        assert_eq!(crate::multicast_group("IN IP4 0.0.0.0"), None);
        assert_eq!(crate::multicast_group("IN IP6 ff02::1"), None);
        assert_eq!(crate::multicast_group("garbage"), None);
    }

    #[test]
    fn media_connection_and_control_captured_not_kept() {
        let p = parse(
            "m=video 0 RTP/AVP 96\nc=IN IP4 239.1.2.3/16\na=control: trackID=1 \na=control:other\n",
        )
        .expect("valid SDP");
        let t = &p.tracks[0];
        assert_eq!(t.connection.as_deref(), Some("IN IP4 239.1.2.3/16"));
        assert_eq!(t.control.as_deref(), Some("trackID=1"));
        assert!(t.lines.is_empty());
        assert_eq!(t.encoding, None);
        assert_eq!(t.clock_rate, 90000);
    }

    #[test]
    fn session_level_lines_do_not_leak_into_tracks() {
        let p =
            parse("a=recvonly\nb=AS:100\nm=audio 0 RTP/AVP 0\na=sendonly\n").expect("valid SDP");
        assert_eq!(p.session_attributes, ["a=recvonly", "b=AS:100"]);
        assert_eq!(p.tracks[0].lines, ["a=sendonly"]);
    }

    #[test]
    fn rtpmap_of_first_format_decides_codec() {
        let p = parse(
            "m=audio 0 RTP/AVP 101 0\na=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\n",
        )
        .expect("valid SDP");
        let t = &p.tracks[0];
        assert_eq!(t.encoding.as_deref(), Some("telephone-event"));
        assert_eq!(t.clock_rate, 8000);
    }

    #[test]
    fn rtpmap_overrides_static_table() {
        let p = parse("m=audio 0 RTP/AVP 0\na=rtpmap:0 PCMU/16000/2\n").expect("valid SDP");
        assert_eq!(p.tracks[0].clock_rate, 16000);
        assert_eq!(p.tracks[0].channels, Some(2));
    }

    #[test]
    fn malformed_rtpmap_falls_back() {
        let p = parse("m=audio 0 RTP/AVP 8\na=rtpmap:8 PCMA\n").expect("valid SDP");
        assert_eq!(p.tracks[0].encoding.as_deref(), Some("PCMA"));
        assert_eq!(p.tracks[0].clock_rate, 8000);
        let p = parse("m=audio 0 RTP/AVP 96\na=rtpmap:96 \n").expect("valid SDP");
        assert_eq!(p.tracks[0].encoding, None);
        assert_eq!(p.tracks[0].clock_rate, 8000);
        assert_eq!(p.tracks[0].channels, None);
    }

    #[test]
    fn dynamic_type_without_rtpmap_uses_media_default() {
        let p = parse("m=application 0 RTP/AVP 107\nm=audio 0 RTP/AVP 110\n").expect("valid SDP");
        assert_eq!(p.tracks[0].encoding, None);
        assert_eq!(p.tracks[0].clock_rate, 90000);
        assert_eq!(p.tracks[1].clock_rate, 8000);
    }

    #[test]
    fn non_rtp_formats_do_not_panic() {
        let p = parse("m=application 9 TCP/BFCP *\n").expect("valid SDP");
        assert_eq!(p.tracks[0].formats, ["*"]);
        assert_eq!(p.tracks[0].encoding, None);
    }

    #[test]
    fn lines_with_control_characters_are_skipped() {
        let p = parse("s=bad\u{7}name\ns=good\nm=video 0 RTP/AVP 96\na=x-evil:1\ra=control:injected\na=fine\n")
            .expect("valid SDP");
        assert_eq!(p.session_name.as_deref(), Some("good"));
        assert_eq!(p.tracks[0].control, None);
        assert_eq!(p.tracks[0].lines, ["a=fine"]);
    }

    #[test]
    fn whitespace_around_lines_is_trimmed() {
        let p = parse("  v=0  \r\n\r\n\tm=video 0 RTP/AVP 96 \r\n a=rtpmap:96 H265/90000 \t\r\n")
            .expect("valid SDP");
        assert_eq!(p.tracks[0].lines, ["a=rtpmap:96 H265/90000"]);
        assert_eq!(p.tracks[0].encoding.as_deref(), Some("H265"));
    }
}
