//! Codec identity of a track: `a=rtpmap` parsing and the RFC 3551 static payload types.

/// Encoding name, clock rate and channel count of one payload type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Codec {
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
}

/// Parses the value of an `a=rtpmap` attribute (`<pt> <name>/<clock>[/<channels>]`).
///
/// Returns the payload type token and the codec, or `None` if the value is malformed
/// (missing name, clock rate not a positive 32-bit number). A channel count that is not
/// a number in 1..=255 is ignored rather than failing the whole line.
pub(crate) fn parse_rtpmap(value: &str) -> Option<(&str, Codec)> {
    let value = value.trim();
    let (pt, rest) = value.split_once(|c: char| c.is_ascii_whitespace())?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next()?.trim();
    if encoding.is_empty() {
        return None;
    }
    let clock_rate = parts
        .next()?
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|&rate| rate > 0)?;
    let channels = parts
        .next()
        .and_then(|c| c.trim().parse::<u8>().ok())
        .filter(|&c| c > 0);
    Some((
        pt,
        Codec {
            encoding: encoding.to_owned(),
            clock_rate,
            channels,
        },
    ))
}

/// The RFC 3551 static payload type table (section 6), plus the MPEG types of RFC 3551
/// and RFC 2250. Audio entries carry their channel count; video entries have none.
pub(crate) fn static_payload(pt: u8) -> Option<Codec> {
    let (encoding, clock_rate, channels) = match pt {
        0 => ("PCMU", 8000, Some(1)),
        3 => ("GSM", 8000, Some(1)),
        4 => ("G723", 8000, Some(1)),
        5 => ("DVI4", 8000, Some(1)),
        6 => ("DVI4", 16000, Some(1)),
        7 => ("LPC", 8000, Some(1)),
        8 => ("PCMA", 8000, Some(1)),
        9 => ("G722", 8000, Some(1)),
        10 => ("L16", 44100, Some(2)),
        11 => ("L16", 44100, Some(1)),
        12 => ("QCELP", 8000, Some(1)),
        13 => ("CN", 8000, Some(1)),
        14 => ("MPA", 90000, None),
        15 => ("G728", 8000, Some(1)),
        16 => ("DVI4", 11025, Some(1)),
        17 => ("DVI4", 22050, Some(1)),
        18 => ("G729", 8000, Some(1)),
        25 => ("CelB", 90000, None),
        26 => ("JPEG", 90000, None),
        28 => ("nv", 90000, None),
        31 => ("H261", 90000, None),
        32 => ("MPV", 90000, None),
        33 => ("MP2T", 90000, None),
        34 => ("H263", 90000, None),
        _ => return None,
    };
    Some(Codec {
        encoding: encoding.to_owned(),
        clock_rate,
        channels,
    })
}

/// The clock rate assumed for a track whose codec is unknown: 8000 Hz for audio (the
/// RFC 3551 norm), 90000 Hz for everything else (video and most application streams).
pub(crate) fn default_clock_rate(media: &str) -> u32 {
    if media.eq_ignore_ascii_case("audio") {
        8000
    } else {
        90000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtpmap_with_and_without_channels() {
        let (pt, codec) = parse_rtpmap("97 MPEG4-GENERIC/48000/2").expect("valid rtpmap");
        assert_eq!(pt, "97");
        assert_eq!(
            codec,
            Codec {
                encoding: "MPEG4-GENERIC".into(),
                clock_rate: 48000,
                channels: Some(2)
            }
        );
        let (pt, codec) = parse_rtpmap("96 H264/90000").expect("valid rtpmap");
        assert_eq!(pt, "96");
        assert_eq!(codec.channels, None);
        assert_eq!(codec.clock_rate, 90000);
    }

    #[test]
    fn rtpmap_tolerates_extra_spaces_and_bad_channels() {
        let (pt, codec) = parse_rtpmap(" 98   opus/48000/x ").expect("valid rtpmap");
        assert_eq!(pt, "98");
        assert_eq!(codec.encoding, "opus");
        assert_eq!(codec.channels, None);
        assert_eq!(
            parse_rtpmap("98 L16/44100/0").map(|(_, c)| c.channels),
            Some(None)
        );
    }

    #[test]
    fn malformed_rtpmap_is_rejected() {
        for bad in [
            "",
            "96",
            "96 ",
            "96 H264",
            "96 H264/",
            "96 H264/0",
            "96 /90000",
            "96 H264/-1",
            "96 H264/99999999999",
        ] {
            assert_eq!(parse_rtpmap(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn static_table_matches_rfc_3551() {
        let get = |pt| static_payload(pt).map(|c| (c.encoding, c.clock_rate, c.channels));
        assert_eq!(get(0), Some(("PCMU".into(), 8000, Some(1))));
        assert_eq!(get(8), Some(("PCMA".into(), 8000, Some(1))));
        assert_eq!(get(10), Some(("L16".into(), 44100, Some(2))));
        assert_eq!(get(14), Some(("MPA".into(), 90000, None)));
        assert_eq!(get(26), Some(("JPEG".into(), 90000, None)));
        assert_eq!(get(33), Some(("MP2T".into(), 90000, None)));
        for unassigned in [1, 2, 19, 24, 27, 35, 72, 95, 96, 127, 255] {
            assert_eq!(get(unassigned), None, "{unassigned}");
        }
    }

    #[test]
    fn default_clock_by_media() {
        assert_eq!(default_clock_rate("audio"), 8000);
        assert_eq!(default_clock_rate("video"), 90000);
        assert_eq!(default_clock_rate("application"), 90000);
    }
}
