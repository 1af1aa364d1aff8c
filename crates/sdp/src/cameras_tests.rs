//! The SDPs of real cameras (`tests/data/cameras`, from retina's test data, MIT OR
//! Apache-2.0): every one parses into the tracks, codecs and controls the camera
//! described, and the SDP we serve keeps every `a=rtpmap` and `a=fmtp` verbatim,
//! numbers the controls `trackN` and carries no back-end address.

use super::*;
use bytes::BytesMut;
use std::net::{IpAddr, Ipv4Addr};

macro_rules! camera {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../../../tests/data/cameras/", $name)),
        )
    };
}

/// Every camera file holding an SDP: DESCRIBE answers and bare SDP bodies.
const CAMERAS: [(&str, &str); 19] = [
    camera!("anjvision_describe.txt"),
    camera!("anpviz_sdp.txt"),
    camera!("bunny_describe.txt"),
    camera!("dahua_describe_h264_aac_onvif.txt"),
    camera!("dahua_describe_h265_pcma.txt"),
    camera!("foscam_describe.txt"),
    camera!("geovision_sdp.txt"),
    camera!("gw_main_describe.txt"),
    camera!("gw_sub_describe.txt"),
    camera!("h264dvr_describe.txt"),
    camera!("hikvision_describe.txt"),
    camera!("ipcam_describe.txt"),
    camera!("macrovideo_describe.txt"),
    camera!("missing_content_type_describe.txt"),
    camera!("reolink_describe.txt"),
    camera!("reolink_describe_control_first.txt"),
    camera!("tplink_sdp.txt"),
    camera!("ubiquiti_sdp.txt"),
    camera!("vstarcam_describe.txt"),
];

/// The SDP of a camera file: the body of its DESCRIBE answer, cut out by the RTSP
/// parser (as the back-end client does), or the whole file for a bare SDP.
pub(super) fn sdp_of(file: &'static str) -> &'static str {
    if !file.starts_with("RTSP/") {
        return file;
    }
    let mut buf = BytesMut::from(file.as_bytes());
    let Ok(Some(rtsp::Frame::Response(response))) =
        rtsp::parse_frame(&mut buf, &rtsp::Limits::default())
    else {
        panic!("not a complete RTSP response: {file:?}");
    };
    assert!(buf.is_empty());
    let (_, body) = file.split_once("\r\n\r\n").expect("blank line");
    assert_eq!(response.body.as_ref(), body.as_bytes());
    body
}

fn sdp(name: &str) -> &'static str {
    let (_, file) = CAMERAS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no camera {name}"));
    sdp_of(file)
}

fn parsed(name: &str) -> Presentation {
    parse(sdp(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn opts() -> RenderOptions {
    RenderOptions {
        session_id: 1_795_242_611_532_927,
        origin: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        tool: "rtsp-proxy 0.1.0".into(),
    }
}

/// What a track must look like: media, its one format, encoding, clock rate,
/// channels, control.
type Want = (
    &'static str,
    &'static str,
    Option<&'static str>,
    u32,
    Option<u8>,
    &'static str,
);

const HIK_SESSION: &str =
    "rtsp://192.168.5.106:554/Streaming/Channels/101/?transportmode=unicast&profile=Profile_1";
const HIK_VIDEO: &str = "rtsp://192.168.5.106:554/Streaming/Channels/101/trackID=1?transportmode=unicast&profile=Profile_1";
const HIK_META: &str = "rtsp://192.168.5.106:554/Streaming/Channels/101/trackID=3?transportmode=unicast&profile=Profile_1";

#[test]
fn every_camera_sdp_parses_into_the_described_tracks() {
    let h264 = |control| -> Want { ("video", "96", Some("H264"), 90000, None, control) };
    let expected: Vec<(&str, Option<&str>, Vec<Want>)> = vec![
        (
            "anjvision_describe.txt",
            Some("*"),
            vec![("video", "96", Some("H265"), 90000, None, "trackID=1")],
        ),
        (
            // The static type 0 is redefined by its rtpmap: AAC, not PCMU.
            "anpviz_sdp.txt",
            Some("*"),
            vec![
                h264("trackID=1"),
                (
                    "audio",
                    "0",
                    Some("MPEG4-GENERIC"),
                    16000,
                    Some(2),
                    "trackID=2",
                ),
            ],
        ),
        (
            "bunny_describe.txt",
            Some("*"),
            vec![
                (
                    "audio",
                    "96",
                    Some("mpeg4-generic"),
                    12000,
                    Some(2),
                    "trackID=1",
                ),
                ("video", "97", Some("H264"), 90000, None, "trackID=2"),
            ],
        ),
        (
            "dahua_describe_h264_aac_onvif.txt",
            Some("*"),
            vec![
                h264("trackID=0"),
                (
                    "audio",
                    "97",
                    Some("MPEG4-GENERIC"),
                    48000,
                    None,
                    "trackID=1",
                ),
                (
                    "application",
                    "107",
                    Some("vnd.onvif.metadata"),
                    90000,
                    None,
                    "trackID=4",
                ),
            ],
        ),
        (
            "dahua_describe_h265_pcma.txt",
            Some("*"),
            vec![
                ("video", "98", Some("H265"), 90000, None, "trackID=0"),
                ("audio", "8", Some("PCMA"), 8000, None, "trackID=1"),
            ],
        ),
        (
            // Audio on static type 0 with no rtpmap.
            "foscam_describe.txt",
            Some("*"),
            vec![
                h264("track1"),
                ("audio", "0", Some("PCMU"), 8000, Some(1), "track2"),
            ],
        ),
        (
            // No session control, absolute track controls.
            "geovision_sdp.txt",
            None,
            vec![
                (
                    "video",
                    "105",
                    Some("H264"),
                    90000,
                    None,
                    "rtsp://192.168.5.237/media/video1/video",
                ),
                (
                    "application",
                    "107",
                    Some("vnd.onvif.metadata"),
                    90000,
                    None,
                    "rtsp://192.168.5.237/media/video1/metadata",
                ),
            ],
        ),
        (
            // Type 8 redefined by its rtpmap as PCMU/8000/1.
            "gw_main_describe.txt",
            Some("*"),
            vec![
                h264("video"),
                ("audio", "8", Some("PCMU"), 8000, Some(1), "audio"),
            ],
        ),
        ("gw_sub_describe.txt", Some("*"), vec![h264("video")]),
        (
            // Audio on static type 8 with no rtpmap.
            "h264dvr_describe.txt",
            Some("*"),
            vec![
                h264("trackID=3"),
                ("audio", "8", Some("PCMA"), 8000, Some(1), "trackID=4"),
            ],
        ),
        (
            "hikvision_describe.txt",
            Some(HIK_SESSION),
            vec![
                ("video", "96", Some("H264"), 90000, None, HIK_VIDEO),
                (
                    "application",
                    "107",
                    Some("vnd.onvif.metadata"),
                    90000,
                    None,
                    HIK_META,
                ),
            ],
        ),
        ("ipcam_describe.txt", Some("*"), vec![h264("trackID=1")]),
        ("macrovideo_describe.txt", Some("*"), vec![h264("track1")]),
        (
            "missing_content_type_describe.txt",
            None,
            vec![
                h264("streamid=0"),
                (
                    "audio",
                    "97",
                    Some("MPEG4-GENERIC"),
                    48000,
                    Some(2),
                    "streamid=1",
                ),
            ],
        ),
        (
            "reolink_describe.txt",
            Some("*"),
            vec![
                h264("trackID=1"),
                (
                    "audio",
                    "97",
                    Some("MPEG4-GENERIC"),
                    16000,
                    None,
                    "trackID=2",
                ),
            ],
        ),
        (
            "reolink_describe_control_first.txt",
            Some("*"),
            vec![
                h264("trackID=1"),
                (
                    "audio",
                    "97",
                    Some("MPEG4-GENERIC"),
                    16000,
                    None,
                    "trackID=2",
                ),
            ],
        ),
        (
            // A third section with a media type and format that are no RTP ones.
            "tplink_sdp.txt",
            None,
            vec![
                ("video", "96", Some("H265"), 90000, None, "track1"),
                ("audio", "8", Some("PCMA"), 8000, None, "track2"),
                (
                    "application/TP-LINK",
                    "smart/1/90000",
                    None,
                    90000,
                    None,
                    "track3",
                ),
            ],
        ),
        (
            // Two audio sections on the same payload type 96.
            "ubiquiti_sdp.txt",
            Some("*"),
            vec![
                (
                    "audio",
                    "96",
                    Some("mpeg4-generic"),
                    48000,
                    Some(1),
                    "trackID=0",
                ),
                ("audio", "96", Some("opus"), 48000, Some(2), "trackID=1"),
                ("video", "97", Some("H264"), 90000, None, "trackID=2"),
            ],
        ),
        (
            // `m=audio 0 RTP/AVP 8<TAB><SPACE>`.
            "vstarcam_describe.txt",
            None,
            vec![
                h264("track0"),
                ("audio", "8", Some("PCMA"), 8000, Some(1), "track1"),
            ],
        ),
    ];
    let names: Vec<&str> = expected.iter().map(|(n, _, _)| *n).collect();
    let all: Vec<&str> = CAMERAS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, all, "every camera checked");

    for (name, session_control, tracks) in expected {
        let p = parsed(name);
        assert_eq!(p.session_control.as_deref(), session_control, "{name}");
        assert_eq!(p.tracks.len(), tracks.len(), "{name}: track count");
        for (i, (t, want)) in p.tracks.iter().zip(&tracks).enumerate() {
            let got = (
                t.media.as_str(),
                t.formats.join(" "),
                t.encoding.as_deref(),
                t.clock_rate,
                t.channels,
                t.control.as_deref().unwrap_or(""),
            );
            let want = (want.0, want.1.to_owned(), want.2, want.3, want.4, want.5);
            assert_eq!(got, want, "{name}: track {}", i + 1);
            assert_eq!(t.port, 0, "{name}");
            assert_eq!(t.protocol, "RTP/AVP", "{name}");
        }
    }
}

/// The lines of an SDP grouped by section: the session part, then one group per
/// `m=` line (which starts its group). Lines are trimmed, empty ones dropped.
fn sections(sdp: &str) -> Vec<Vec<&str>> {
    let mut out = vec![Vec::new()];
    for line in sdp.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("m=") {
            out.push(Vec::new());
        }
        out.last_mut().unwrap().push(line);
    }
    out
}

#[test]
fn served_sdp_keeps_every_rtpmap_and_fmtp_and_renumbers_controls() {
    for (name, _) in CAMERAS {
        let original = sdp(name);
        let p = parsed(name);
        let served = render(&p, &opts());
        assert!(served.ends_with("\r\n") && !served.replace("\r\n", "").contains(['\r', '\n']));
        let before = sections(original);
        let after = sections(&served);
        assert_eq!(after.len(), p.tracks.len() + 1, "{name}");
        assert_eq!(before.len(), after.len(), "{name}");

        // The session part: exactly one control, `*`.
        let session_controls: Vec<&&str> = after[0]
            .iter()
            .filter(|l| l.starts_with("a=control:"))
            .collect();
        assert_eq!(session_controls, [&"a=control:*"], "{name}");

        for (i, (src, out)) in before[1..].iter().zip(&after[1..]).enumerate() {
            let track = &p.tracks[i];
            // Every rtpmap and fmtp of the camera, verbatim (trimmed), in the same
            // order, in the track and in the served section.
            let codec_lines = |lines: &[&str]| -> Vec<String> {
                lines
                    .iter()
                    .filter(|l| l.starts_with("a=rtpmap:") || l.starts_with("a=fmtp:"))
                    .map(|l| (*l).to_owned())
                    .collect()
            };
            let from_camera = codec_lines(src);
            let kept: Vec<&str> = track.lines.iter().map(String::as_str).collect();
            assert_eq!(codec_lines(&kept), from_camera, "{name}: track {}", i + 1);
            assert_eq!(
                codec_lines(out),
                from_camera,
                "{name}: served track {}",
                i + 1
            );
            // Every other kept line is served too.
            for line in &track.lines {
                assert!(out.contains(&line.as_str()), "{name}: {line}");
            }
            // One control, ours, last; the camera's is gone.
            let controls: Vec<&&str> = out.iter().filter(|l| l.starts_with("a=control:")).collect();
            let ours = format!("a=control:track{}", i + 1);
            assert_eq!(controls, [&ours.as_str()], "{name}");
            assert_eq!(out.last(), Some(&ours.as_str()), "{name}");
            assert_eq!(out[1], "c=IN IP4 0.0.0.0", "{name}");
            assert_eq!(
                out.iter().filter(|l| l.starts_with("c=")).count(),
                1,
                "{name}"
            );
            // The m= line: port 0, the camera's formats in order.
            assert_eq!(
                out[0],
                format!("m={} 0 RTP/AVP {}", track.media, track.formats.join(" ")),
                "{name}"
            );
        }

        // Back-end addresses and the camera's range never reach clients.
        for address in [
            "192.168.",
            "127.0.0.1",
            "34.227.104.115",
            "x.y.z.w",
            "cam-driveway",
            "wowzaec2demo",
        ] {
            assert!(!served.contains(address), "{name}: {address} served");
        }
        assert_eq!(served.matches("a=range:").count(), 1, "{name}");
        assert!(served.contains("\r\na=range:npt=now-\r\n"), "{name}");
        assert_eq!(served.matches("a=tool:").count(), 1, "{name}");

        // What we serve parses back to the same tracks, and rendering is stable.
        let again = parse(&served).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(p.same_tracks(&again), "{name}");
        for (a, b) in p.tracks.iter().zip(&again.tracks) {
            assert_eq!((&a.lines, &a.formats), (&b.lines, &b.formats), "{name}");
        }
        assert_eq!(render(&again, &opts()), served, "{name}");
    }
}

#[test]
fn odd_fmtp_lines_are_kept_verbatim() {
    let fmtp = |name: &str, track: usize| -> Vec<String> {
        parsed(name).tracks[track]
            .lines
            .iter()
            .filter(|l| l.starts_with("a=fmtp:"))
            .cloned()
            .collect()
    };
    // Spaces after the semicolons.
    assert_eq!(
        fmtp("hikvision_describe.txt", 0),
        ["a=fmtp:96 profile-level-id=420029; packetization-mode=1; sprop-parameter-sets=Z00AKZpkA8ARPyzUBAQFAAADA+gAAOpgBA==,aO48gA=="]
    );
    // A trailing `; profile=1;`.
    assert_eq!(
        fmtp("reolink_describe.txt", 1),
        ["a=fmtp:97 streamtype=5;profile-level-id=15;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1408; profile=1;"]
    );
    // An empty fmtp, and mixed-case parameter names.
    assert_eq!(fmtp("ubiquiti_sdp.txt", 1), ["a=fmtp:96"]);
    assert_eq!(
        fmtp("ubiquiti_sdp.txt", 0),
        ["a=fmtp:96 streamtype=5; profile-level-id=15; mode=AAC-hbr; config=1188; SizeLength=13; IndexLength=3; IndexDeltaLength=3;"]
    );
    // Not key=value at all.
    assert_eq!(
        fmtp("geovision_sdp.txt", 1),
        ["a=fmtp:107 DecoderTag=h3c-v3 RTCP=0"]
    );
    // Base64 where hex belongs.
    assert_eq!(
        fmtp("macrovideo_describe.txt", 0),
        ["a=fmtp:96 profile-level-id=TeAo;packetization-mode=1;sprop-parameter-sets=J03gKI1oBQBboQAAAwABAAADACgPFCKg,KO4BNJI="]
    );
    // A vendor `config=` of 200 hex digits after the H.265 parameter sets.
    let anjvision = fmtp("anjvision_describe.txt", 0);
    assert!(anjvision[0].starts_with(
        "a=fmtp:96 packetization-mode=0;profile-space=0;profile-id=1;tier-flag=0;level-id=153;"
    ));
    assert!(anjvision[0].ends_with(";config=0000000140010c01ffff01400000030000030000030000030099ac090000000142010101400000030000030000030000030099a00280802c1fe5aee46c1ae551350506050080000000014401c073c0418309"));
    // The fmtp of type 8 on the GW audio.
    assert_eq!(fmtp("gw_main_describe.txt", 1), ["a=fmtp:8 vad=no"]);
    // A camera's attribute values with spaces are not touched either.
    assert!(parsed("anjvision_describe.txt").tracks[0]
        .lines
        .contains(&"a=x-dimensions: 1280, 720".to_owned()));
}

#[test]
fn trailing_white_space_is_trimmed_from_lines() {
    // H264DVR and IPCAM: `a=rtpmap:96 H264/90000 ` (trailing space).
    for name in ["h264dvr_describe.txt", "ipcam_describe.txt"] {
        assert!(sdp(name).contains("a=rtpmap:96 H264/90000 \r\n"));
        let p = parsed(name);
        assert_eq!(p.tracks[0].lines[0], "a=rtpmap:96 H264/90000", "{name}");
        assert_eq!(p.tracks[0].encoding.as_deref(), Some("H264"));
    }
    // VStarcam: `m=audio 0 RTP/AVP 8\t ` and the SDP ends with a blank line.
    assert!(sdp("vstarcam_describe.txt").contains("m=audio 0 RTP/AVP 8\t \r\n"));
    assert!(sdp("vstarcam_describe.txt").ends_with("\r\n\r\n"));
    let p = parsed("vstarcam_describe.txt");
    assert_eq!(p.tracks[1].formats, ["8"]);
    assert!(render(&p, &opts()).contains("\r\nm=audio 0 RTP/AVP 8\r\nc=IN IP4 0.0.0.0\r\nb=AS:64\r\na=rtpmap:8 PCMA/8000/1\r\na=control:track2\r\n"));
    // Anpviz: no line end after the last line, which is still read.
    assert!(sdp("anpviz_sdp.txt").ends_with("a=appversion:1.0"));
    assert_eq!(
        parsed("anpviz_sdp.txt").tracks[1]
            .lines
            .last()
            .map(String::as_str),
        Some("a=appversion:1.0")
    );
}

#[test]
fn static_payload_types_without_rtpmap_are_served_as_they_came() {
    // No rtpmap is invented for a static type: the served section is the m= line,
    // our c= and control, and the camera's own b= line.
    let served = render(&parsed("h264dvr_describe.txt"), &opts());
    assert!(served.ends_with("\r\nm=audio 0 RTP/AVP 8\r\nc=IN IP4 0.0.0.0\r\na=control:track2\r\n"));
    let served = render(&parsed("foscam_describe.txt"), &opts());
    assert!(served.ends_with(
        "\r\nm=audio 0 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\nb=AS:64\r\na=control:track2\r\n"
    ));
}

#[test]
fn tplink_section_with_a_non_rtp_format() {
    let p = parsed("tplink_sdp.txt");
    let t = &p.tracks[2];
    assert_eq!(t.payload_type(), None);
    assert_eq!(t.lines, ["a=rtpmap:95 TP-LINK/90000"]);
    let served = render(&p, &opts());
    assert!(served.ends_with(
        "\r\nm=application/TP-LINK 0 RTP/AVP smart/1/90000\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:95 TP-LINK/90000\r\na=control:track3\r\n"
    ));
    assert_eq!(p.track_for_control("track3"), Some(2));
}

#[test]
fn ubiquiti_two_audio_sections_on_one_payload_type() {
    let p = parsed("ubiquiti_sdp.txt");
    assert_eq!(p.tracks[0].payload_type(), Some(96));
    assert_eq!(p.tracks[1].payload_type(), Some(96));
    // Told apart by their rtpmap, so a swap is a different presentation.
    let swapped = Presentation {
        tracks: vec![
            p.tracks[1].clone(),
            p.tracks[0].clone(),
            p.tracks[2].clone(),
        ],
        ..p.clone()
    };
    assert!(!p.same_tracks(&swapped));
    assert_eq!(
        p.session_attributes,
        [
            "u=www.evostream.com",
            "e=contact@evostream.com",
            "a=recvonly"
        ]
    );
}

#[test]
fn session_level_lines() {
    let attrs = |name: &str| parsed(name).session_attributes;
    assert_eq!(attrs("hikvision_describe.txt"), ["e=NONE", "b=AS:5050"]);
    assert_eq!(
        attrs("dahua_describe_h265_pcma.txt"),
        ["a=packetization-supported:DH", "a=rtppayload-supported:DH"]
    );
    assert_eq!(attrs("geovision_sdp.txt"), Vec::<String>::new());
    let foscam = parsed("foscam_describe.txt");
    assert_eq!(foscam.session_name.as_deref(), Some("IP Camera Video"));
    assert_eq!(foscam.session_info.as_deref(), Some("videoMain"));
    // Macro-video has no o= line, GeoVision no t= line.
    assert!(!sdp("macrovideo_describe.txt").contains("o="));
    assert!(!sdp("geovision_sdp.txt").contains("t="));
    assert_eq!(
        parsed("macrovideo_describe.txt").session_name.as_deref(),
        Some("streamed by the macro-video rtsp server")
    );
}

#[test]
fn reolink_attribute_order_does_not_matter() {
    let a = parsed("reolink_describe.txt");
    let b = parsed("reolink_describe_control_first.txt");
    assert_eq!(a.tracks, b.tracks);
    assert_eq!(a.session_control, b.session_control);
    assert_ne!(a.session_attributes, b.session_attributes);
    assert_eq!(render(&a, &opts()), render(&b, &opts()));
}

#[test]
fn same_camera_same_tracks() {
    // A reconnect to the same camera gives the same tracks; another stream of the
    // same camera (sub stream without audio) or a codec change does not.
    assert!(
        parsed("reolink_describe.txt").same_tracks(&parsed("reolink_describe_control_first.txt"))
    );
    assert!(!parsed("gw_main_describe.txt").same_tracks(&parsed("gw_sub_describe.txt")));
    assert!(!parsed("dahua_describe_h264_aac_onvif.txt")
        .same_tracks(&parsed("dahua_describe_h265_pcma.txt")));
    // Same firmware, H.265 (Anjvision) against H.264 (Anpviz).
    assert!(!parsed("anjvision_describe.txt").same_tracks(&parsed("anpviz_sdp.txt")));
}
