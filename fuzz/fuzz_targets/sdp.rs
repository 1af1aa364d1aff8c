//! Feeds arbitrary text to the proxy's SDP parser (`rtsp_proxy::sdp::parse`)
//! and, when it is accepted, renders the SDP the proxy would serve from it
//! (`sdp::render`, IPv4 and IPv6 origins).
//!
//! Checks what clients rely on:
//! - the served SDP has only CRLF line ends, ends with one, has no control
//!   characters but tab (the rule of `sdp/line.rs`), exactly one session
//!   `a=control:*` and one `a=control:trackN` per track;
//! - it parses again, with the same track count, the same tracks
//!   (`same_tracks`: media, encoding, clock rate), the same formats and kept
//!   lines (grouped by type letter, order kept within a type), controls
//!   `track1..trackN` that `track_for_control` maps back, port 0 and session
//!   control `*`;
//! - rendering is stable: rendering the re-parsed presentation gives the same
//!   text.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use rtsp_proxy::sdp::{self, RenderOptions};

fn options(origin: IpAddr) -> RenderOptions {
    RenderOptions {
        session_id: 1_795_242_611_532_927,
        origin,
        tool: "rtsp-proxy fuzz".into(),
    }
}

/// Lines grouped by their type letter, each group in its original order.
fn by_type(lines: &[String]) -> std::collections::BTreeMap<char, Vec<&str>> {
    let mut groups = std::collections::BTreeMap::<char, Vec<&str>>::new();
    for line in lines {
        let kind = line.chars().next().unwrap_or(' ');
        groups.entry(kind).or_default().push(line);
    }
    groups
}

fn check(original: &sdp::Presentation, opts: &RenderOptions) {
    let served = sdp::render(original, opts);
    let body = served
        .strip_suffix("\r\n")
        .expect("served SDP ends with CRLF");
    for line in body.split("\r\n") {
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\t'),
            "control character in served line {line:?}"
        );
        assert!(
            line.len() >= 2 && line.as_bytes()[1] == b'=',
            "not <type>=<value>: {line:?}"
        );
    }
    let controls: Vec<&str> = body
        .split("\r\n")
        .filter_map(|l| l.strip_prefix("a=control:"))
        .collect();
    let expected: Vec<String> = std::iter::once("*".to_owned())
        .chain((1..=original.tracks.len()).map(|n| format!("track{n}")))
        .collect();
    assert_eq!(controls, expected, "one control per level, ours only");

    let again = match sdp::parse(&served) {
        Ok(p) => p,
        Err(e) => panic!("served SDP does not parse: {e}\n{served}"),
    };
    assert_eq!(again.tracks.len(), original.tracks.len());
    assert!(original.same_tracks(&again), "tracks changed:\n{served}");
    assert_eq!(again.session_control.as_deref(), Some("*"));
    for (index, (a, b)) in original.tracks.iter().zip(&again.tracks).enumerate() {
        assert_eq!(a.formats, b.formats);
        // Kept lines survive; render groups them by type letter (RFC 4566
        // order) but keeps the order within each type.
        assert_eq!(
            by_type(&a.lines),
            by_type(&b.lines),
            "kept lines survive a round trip"
        );
        assert_eq!(b.port, 0);
        let name = format!("track{}", index + 1);
        assert_eq!(b.control.as_deref(), Some(name.as_str()));
        assert_eq!(again.track_for_control(&name), Some(index));
        assert_eq!(a.payload_type(), b.payload_type());
    }
    assert_eq!(sdp::render(&again, opts), served, "rendering is stable");
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(presentation) = sdp::parse(&text) else {
        return;
    };
    assert!(!presentation.tracks.is_empty());
    assert!(presentation.tracks.len() <= sdp::MAX_TRACKS);
    for track in &presentation.tracks {
        assert!(!track.formats.is_empty() && track.formats.len() <= sdp::MAX_FORMATS);
    }
    check(
        &presentation,
        &options(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2))),
    );
    check(&presentation, &options(IpAddr::V6(Ipv6Addr::LOCALHOST)));
});
