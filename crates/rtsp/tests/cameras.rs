//! Real camera answers (`tests/data/cameras`, taken from retina's test data,
//! MIT OR Apache-2.0): every response parses whole, byte by byte, with bare
//! LF line ends and pipelined, and its headers read as the camera meant them:
//! CSeq, Session (id and timeout), Transport, RTP-Info, Range, Public,
//! Content-Base and WWW-Authenticate, checked against the values in the files.

use bytes::BytesMut;
use md5::{Digest as _, Md5};
use rtsp::auth::{
    parse_challenges, parse_digest_authorization, verify_digest, Challenge, ClientAuth, Credentials,
};
use rtsp::header::{
    public, rtp_info, Cast, ChannelRange, LowerTransport, PortRange, Range, RtpInfo, SessionHeader,
    Transport,
};
use rtsp::url::resolve_control;
use rtsp::{parse_frame, Frame, Limits, Response, Version};

macro_rules! files {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_bytes!(concat!("../../../tests/data/cameras/", $name)) as &[u8])),*]
    };
}

/// Every file holding one RTSP response, in directory order.
const RESPONSES: [(&str, &[u8]); 42] = files![
    "anjvision_describe.txt",
    "bad_rtptime.txt",
    "bunny_describe.txt",
    "bunny_play.txt",
    "bunny_setup.txt",
    "dahua_describe_h264_aac_onvif.txt",
    "dahua_describe_h265_pcma.txt",
    "dahua_options.txt",
    "dahua_play.txt",
    "dahua_play_decimal_ssrc.txt",
    "dahua_setup.txt",
    "foscam_describe.txt",
    "gw_main_describe.txt",
    "gw_main_play.txt",
    "gw_main_setup_audio.txt",
    "gw_main_setup_video.txt",
    "gw_sub_describe.txt",
    "gw_sub_play.txt",
    "gw_sub_setup.txt",
    "h264dvr_describe.txt",
    "h264dvr_play.txt",
    "h264dvr_setup_audio.txt",
    "h264dvr_setup_video.txt",
    "hikvision_describe.txt",
    "hikvision_play.txt",
    "hikvision_setup.txt",
    "hikvision_setup_ssrc_space.txt",
    "ipcam_describe.txt",
    "laureii_play.txt",
    "longse_unauthorized.txt",
    "luckfox_rkipc_setup_tcp.txt",
    "luckfox_rkipc_setup_udp.txt",
    "macrovideo_describe.txt",
    "missing_content_type_describe.txt",
    "reolink_describe.txt",
    "reolink_describe_control_first.txt",
    "reolink_play.txt",
    "reolink_setup.txt",
    "reolink_teardown.txt",
    "rubetek_setup_ssrc_0x.txt",
    "setup_ssrc_4_hex_digits.txt",
    "vstarcam_describe.txt",
];

/// The files holding a bare SDP body (no RTSP head).
const SDP_BODIES: [(&str, &[u8]); 4] = files![
    "anpviz_sdp.txt",
    "geovision_sdp.txt",
    "tplink_sdp.txt",
    "ubiquiti_sdp.txt",
];

fn file(name: &str) -> &'static [u8] {
    RESPONSES
        .iter()
        .chain(&SDP_BODIES)
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no camera file {name}"))
        .1
}

/// The head lines (no line ends, without the blank line) and the body of a
/// response file, split by hand (the files use CRLF throughout).
fn split_file(bytes: &[u8]) -> (Vec<&str>, &[u8]) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head ends with a blank line");
    let head = std::str::from_utf8(&bytes[..end]).expect("ASCII head");
    (head.split("\r\n").collect(), &bytes[end + 4..])
}

fn parse_one(name: &str, bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let frame = parse_frame(&mut buf, &Limits::default())
        .unwrap_or_else(|e| panic!("{name}: parse error {e:?}"))
        .unwrap_or_else(|| panic!("{name}: incomplete"));
    assert!(buf.is_empty(), "{name}: left over {buf:?}");
    frame
}

fn response(name: &str) -> Response {
    match parse_one(name, file(name)) {
        Frame::Response(r) => r,
        other => panic!("{name}: not a response: {other:?}"),
    }
}

#[test]
fn every_file_of_the_directory_is_tested() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/cameras");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .expect("tests/data/cameras")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".txt"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = RESPONSES
        .iter()
        .chain(&SDP_BODIES)
        .map(|(n, _)| (*n).to_owned())
        .collect();
    listed.sort();
    assert_eq!(on_disk, listed);
    for (name, bytes) in RESPONSES {
        assert!(bytes.starts_with(b"RTSP/1.0 "), "{name}");
    }
    for (name, bytes) in SDP_BODIES {
        assert!(bytes.starts_with(b"v=0\r\n"), "{name}");
    }
}

#[test]
fn every_response_parses_whole_field_by_field() {
    for (name, bytes) in RESPONSES {
        let (head, body) = split_file(bytes);
        let Frame::Response(r) = parse_one(name, bytes) else {
            panic!("{name}: not a response")
        };
        assert_eq!(r.version, Version::Rtsp10, "{name}");
        if name == "longse_unauthorized.txt" {
            assert_eq!((r.status, r.reason.as_str()), (401, "Unauthorized"));
            assert!(!r.is_success());
        } else {
            assert_eq!((r.status, r.reason.as_str()), (200, "OK"), "{name}");
            assert!(r.is_success(), "{name}");
        }
        // Every header line is there, value trimmed, in order.
        assert_eq!(r.headers.len(), head.len() - 1, "{name}");
        for ((line, (n, v)), i) in head[1..].iter().zip(r.headers.iter()).zip(1..) {
            let (name_in_file, value_in_file) = line.split_once(':').unwrap();
            assert_eq!(n, name_in_file, "{name}: header {i}");
            assert_eq!(v.trim(), value_in_file.trim(), "{name}: {line}");
        }
        // The body is exactly what Content-Length announces, byte for byte.
        assert_eq!(&r.body[..], body, "{name}");
        match r.header("Content-Length") {
            Some(len) => assert_eq!(len.parse::<usize>().unwrap(), body.len(), "{name}"),
            None => assert!(body.is_empty(), "{name}"),
        }
        assert!(r.cseq().is_some(), "{name}: CSeq");

        // Re-encoding gives bytes that parse to the same response.
        let again = parse_one(name, &r.to_bytes());
        // ... and the very bytes of the file, except for the white space
        // around three cameras' values (`Session:        708345999`,
        // `Date:  Wed`, `CSeq: 1 `), which is written as one space / none.
        let encoded = String::from_utf8(r.to_bytes().to_vec()).unwrap();
        let original = String::from_utf8(bytes.to_vec()).unwrap();
        if [
            "hikvision_play.txt",
            "hikvision_setup.txt",
            "longse_unauthorized.txt",
        ]
        .contains(&name)
        {
            assert_ne!(encoded, original, "{name}");
            let normalized = original
                .replace(":        ", ": ")
                .replace(":  ", ": ")
                .replace(" \r\n", "\r\n");
            assert_eq!(encoded, normalized, "{name}");
        } else {
            assert_eq!(encoded, original, "{name}: exact bytes");
        }
        assert_eq!(again, Frame::Response(r), "{name}: re-encode");
    }
}

/// The file with its head lines ended by a bare LF (the body is kept).
fn with_lf_head(bytes: &[u8]) -> Vec<u8> {
    let (head, body) = split_file(bytes);
    let mut out = head.join("\n").into_bytes();
    out.extend_from_slice(b"\n\n");
    out.extend_from_slice(body);
    out
}

#[test]
fn every_response_parses_fed_one_byte_at_a_time() {
    for (name, bytes) in RESPONSES {
        let whole = parse_one(name, bytes);
        for input in [bytes.to_vec(), with_lf_head(bytes)] {
            let mut buf = BytesMut::new();
            let mut frames = Vec::new();
            for (i, b) in input.iter().enumerate() {
                buf.extend_from_slice(std::slice::from_ref(b));
                match parse_frame(&mut buf, &Limits::default()) {
                    Ok(Some(f)) => {
                        assert_eq!(i, input.len() - 1, "{name}: complete before its end");
                        frames.push(f);
                    }
                    Ok(None) => {}
                    Err(e) => panic!("{name}: error at byte {i}: {e:?}"),
                }
            }
            assert_eq!(frames, std::slice::from_ref(&whole), "{name}");
            assert!(buf.is_empty(), "{name}");
        }
    }
}

#[test]
fn all_responses_pipelined_in_one_stream() {
    let stream: Vec<u8> = RESPONSES
        .iter()
        .flat_map(|(_, b)| b.iter().copied())
        .collect();
    let expected: Vec<Frame> = RESPONSES.iter().map(|(n, b)| parse_one(n, b)).collect();

    let mut buf = BytesMut::from(&stream[..]);
    let mut frames = Vec::new();
    while let Some(f) = parse_frame(&mut buf, &Limits::default()).unwrap() {
        frames.push(f);
    }
    assert_eq!(frames, expected);
    assert!(buf.is_empty());

    // The same stream in odd-sized reads.
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in stream.chunks(13) {
        buf.extend_from_slice(chunk);
        while let Some(f) = parse_frame(&mut buf, &Limits::default()).unwrap() {
            frames.push(f);
        }
    }
    assert_eq!(frames, expected);
    assert!(buf.is_empty());
}

#[test]
fn cseq_of_every_response() {
    // `Cseq` (H264DVR, VStarcam) and `CSeq: 1 ` (Longse) included.
    let expected: [(&str, u32); 42] = [
        ("anjvision_describe.txt", 1),
        ("bad_rtptime.txt", 3),
        ("bunny_describe.txt", 1),
        ("bunny_play.txt", 3),
        ("bunny_setup.txt", 2),
        ("dahua_describe_h264_aac_onvif.txt", 3),
        ("dahua_describe_h265_pcma.txt", 3),
        ("dahua_options.txt", 5),
        ("dahua_play.txt", 7),
        ("dahua_play_decimal_ssrc.txt", 4),
        ("dahua_setup.txt", 4),
        ("foscam_describe.txt", 2),
        ("gw_main_describe.txt", 1),
        ("gw_main_play.txt", 4),
        ("gw_main_setup_audio.txt", 3),
        ("gw_main_setup_video.txt", 2),
        ("gw_sub_describe.txt", 1),
        ("gw_sub_play.txt", 3),
        ("gw_sub_setup.txt", 2),
        ("h264dvr_describe.txt", 3),
        ("h264dvr_play.txt", 6),
        ("h264dvr_setup_audio.txt", 5),
        ("h264dvr_setup_video.txt", 4),
        ("hikvision_describe.txt", 1),
        ("hikvision_play.txt", 3),
        ("hikvision_setup.txt", 2),
        ("hikvision_setup_ssrc_space.txt", 3),
        ("ipcam_describe.txt", 1),
        ("laureii_play.txt", 5),
        ("longse_unauthorized.txt", 1),
        ("luckfox_rkipc_setup_tcp.txt", 2),
        ("luckfox_rkipc_setup_udp.txt", 2),
        ("macrovideo_describe.txt", 1),
        ("missing_content_type_describe.txt", 1),
        ("reolink_describe.txt", 3),
        ("reolink_describe_control_first.txt", 3),
        ("reolink_play.txt", 6),
        ("reolink_setup.txt", 4),
        ("reolink_teardown.txt", 7),
        ("rubetek_setup_ssrc_0x.txt", 4),
        ("setup_ssrc_4_hex_digits.txt", 3),
        ("vstarcam_describe.txt", 2),
    ];
    let names: Vec<&str> = expected.iter().map(|(n, _)| *n).collect();
    let all: Vec<&str> = RESPONSES.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, all);
    for (name, cseq) in expected {
        assert_eq!(response(name).cseq(), Some(cseq), "{name}");
    }
    assert_eq!(response("h264dvr_play.txt").header("CSEQ"), Some("6"));
}

#[test]
fn session_headers() {
    let expected: [(&str, &str, Option<u32>); 27] = [
        ("bad_rtptime.txt", "551045787", Some(60)),
        ("bunny_describe.txt", "1642021126", Some(60)),
        ("bunny_play.txt", "551045787", Some(60)),
        ("bunny_setup.txt", "1642021126", Some(60)),
        ("dahua_options.txt", "136527041864", None),
        ("dahua_play.txt", "634214684047", None),
        ("dahua_play_decimal_ssrc.txt", "555290206560", None),
        ("dahua_setup.txt", "634214675641", Some(60)),
        // GW Security: "9a90de54; timeout=60" with a space; 120 in PLAY.
        ("gw_main_play.txt", "9a90de54", Some(120)),
        ("gw_main_setup_audio.txt", "9a90de54", Some(60)),
        ("gw_main_setup_video.txt", "9a90de54", Some(60)),
        ("gw_sub_play.txt", "9b0d0e54", Some(120)),
        ("gw_sub_setup.txt", "9b0d0e54", Some(60)),
        // H264DVR: the audio SETUP answers another session id.
        ("h264dvr_play.txt", "231970", None),
        ("h264dvr_setup_audio.txt", "231980", Some(60)),
        ("h264dvr_setup_video.txt", "231970", Some(60)),
        // Hikvision: eight spaces before the id.
        ("hikvision_play.txt", "708345999", None),
        ("hikvision_setup.txt", "708345999", Some(60)),
        ("hikvision_setup_ssrc_space.txt", "708886412", Some(60)),
        ("laureii_play.txt", "1234567890", None),
        ("luckfox_rkipc_setup_tcp.txt", "12345678", None),
        ("luckfox_rkipc_setup_udp.txt", "12345678", None),
        ("missing_content_type_describe.txt", "l0TtlUFSR", None),
        ("reolink_play.txt", "F8F8E425", None),
        ("reolink_setup.txt", "F8F8E425", None),
        ("rubetek_setup_ssrc_0x.txt", "5657612475258969210", None),
        ("setup_ssrc_4_hex_digits.txt", "1066441024", Some(60)),
    ];
    for (name, _) in RESPONSES {
        let r = response(name);
        let want = expected.iter().find(|(n, _, _)| *n == name);
        match (r.header("Session"), want) {
            (Some(v), Some((_, id, timeout))) => {
                let s = SessionHeader::parse(v).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!((s.id.as_str(), s.timeout), (*id, *timeout), "{name}");
                // What we would send back: the bare id.
                assert_eq!(SessionHeader::parse(&s.id).unwrap().id, *id);
            }
            (None, None) => {}
            (got, want) => panic!("{name}: Session {got:?}, expected {want:?}"),
        }
    }
}

fn tcp(rtp: u8, rtcp: u8) -> Transport {
    Transport {
        cast: Some(Cast::Unicast),
        interleaved: Some(ChannelRange {
            rtp,
            rtcp: Some(rtcp),
        }),
        ..Transport::rtp_avp(LowerTransport::Tcp)
    }
}

fn ports(rtp: u16, rtcp: u16) -> Option<PortRange> {
    Some(PortRange {
        rtp,
        rtcp: Some(rtcp),
    })
}

#[test]
fn setup_transport_answers() {
    let gw = |rtp, rtcp| Transport {
        destination: Some("192.168.1.210".into()),
        source: Some("192.168.1.110".into()),
        ..tcp(rtp, rtcp)
    };
    let h264dvr = |client: (u16, u16), server: (u16, u16)| Transport {
        cast: Some(Cast::Unicast),
        mode: Some("PLAY".into()),
        // The DVR names the loopback address as the source of its media.
        source: Some("127.0.0.1".into()),
        client_port: ports(client.0, client.1),
        server_port: ports(server.0, server.1),
        ssrc: Some(0),
        ..Transport::rtp_avp(LowerTransport::Udp)
    };
    let expected: [(&str, Transport); 14] = [
        ("bunny_setup.txt", tcp(0, 1)),
        (
            "dahua_setup.txt",
            Transport {
                ssrc: Some(0x30A9_8EE7),
                ..tcp(0, 1)
            },
        ),
        ("gw_main_setup_audio.txt", gw(2, 3)),
        ("gw_main_setup_video.txt", gw(0, 1)),
        ("gw_sub_setup.txt", gw(0, 1)),
        (
            "h264dvr_setup_audio.txt",
            h264dvr((18716, 18717), (40006, 40007)),
        ),
        (
            "h264dvr_setup_video.txt",
            h264dvr((18714, 18715), (40004, 40005)),
        ),
        (
            "hikvision_setup.txt",
            Transport {
                ssrc: Some(0x4CAC_C3D1),
                mode: Some("play".into()),
                ..tcp(0, 1)
            },
        ),
        (
            // `ssrc= d6d6627`: a space and seven digits.
            "hikvision_setup_ssrc_space.txt",
            Transport {
                ssrc: Some(0x0D6D_6627),
                ..tcp(0, 1)
            },
        ),
        (
            // No `unicast`.
            "luckfox_rkipc_setup_tcp.txt",
            Transport {
                cast: None,
                ssrc: Some(0x2234_5684),
                ..tcp(0, 1)
            },
        ),
        (
            "luckfox_rkipc_setup_udp.txt",
            Transport {
                cast: Some(Cast::Unicast),
                ssrc: Some(0x2234_5685),
                client_port: ports(54060, 54061),
                server_port: ports(49152, 49153),
                ..Transport::rtp_avp(LowerTransport::Udp)
            },
        ),
        (
            "reolink_setup.txt",
            Transport {
                destination: Some("192.168.1.210".into()),
                source: Some("192.168.5.206".into()),
                ..tcp(0, 1)
            },
        ),
        (
            // `ssrc=0x6f7c` is no SSRC: kept verbatim with the other parameters.
            "rubetek_setup_ssrc_0x.txt",
            Transport {
                mode: Some("PLAY".into()),
                other: vec!["ssrc=0x6f7c".into()],
                ..tcp(0, 1)
            },
        ),
        (
            // Four digits; retina notes the RTP packets then carry another SSRC.
            "setup_ssrc_4_hex_digits.txt",
            Transport {
                ssrc: Some(0xA046),
                ..tcp(0, 1)
            },
        ),
    ];
    for (name, _) in RESPONSES {
        let r = response(name);
        let want = expected.iter().find(|(n, _)| *n == name);
        match (r.header("Transport"), want) {
            (Some(v), Some((_, t))) => {
                let got = Transport::parse(v).unwrap_or_else(|e| panic!("{name}: {v}: {e}"));
                assert_eq!(&got, t, "{name}: {v}");
                assert_eq!(
                    Transport::parse_list(v).unwrap(),
                    std::slice::from_ref(&got),
                    "{name}"
                );
                // Our canonical form reads back to the same value.
                assert_eq!(Transport::parse(&got.to_string()).unwrap(), got, "{name}");
            }
            (None, None) => {}
            (got, want) => panic!("{name}: Transport {got:?}, expected {want:?}"),
        }
    }
    // Canonical forms of the odd ones.
    let canonical = |name: &str| {
        Transport::parse(response(name).header("Transport").unwrap())
            .unwrap()
            .to_string()
    };
    assert_eq!(
        canonical("hikvision_setup_ssrc_space.txt"),
        "RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=0D6D6627"
    );
    assert_eq!(
        canonical("rubetek_setup_ssrc_0x.txt"),
        "RTP/AVP/TCP;unicast;interleaved=0-1;mode=\"PLAY\";ssrc=0x6f7c"
    );
    assert_eq!(
        canonical("h264dvr_setup_video.txt"),
        "RTP/AVP;unicast;source=127.0.0.1;client_port=18714-18715;server_port=40004-40005;ssrc=00000000;mode=\"PLAY\""
    );
}

fn info(url: &str, seq: u16, rtptime: Option<u32>) -> RtpInfo {
    RtpInfo {
        url: url.into(),
        seq: Some(seq),
        rtptime,
    }
}

#[test]
fn rtp_info_of_play_answers() {
    const BUNNY_TRACK2: &str =
        "rtsp://wowzaec2demo.streamlock.net/vod/mp4:BigBuckBunny_115k.mov/trackID=2";
    let expected: [(&str, Vec<RtpInfo>); 9] = [
        // `rtptime=-1` is no timestamp; the seq stays usable.
        (
            "bad_rtptime.txt",
            vec![info("trackID=1", 1, None), info(BUNNY_TRACK2, 1, None)],
        ),
        // One relative and one absolute URL in the same header.
        (
            "bunny_play.txt",
            vec![info("trackID=1", 1, Some(0)), info(BUNNY_TRACK2, 1, Some(0))],
        ),
        (
            "dahua_play.txt",
            vec![
                info("trackID=0", 47121, Some(3_475_222_385)),
                info("trackID=1", 45186, Some(2_234_446_919)),
                info("trackID=4", 36583, Some(816_418_535)),
            ],
        ),
        // `ssrc=4294962989` (decimal) is ignored.
        (
            "dahua_play_decimal_ssrc.txt",
            vec![info("trackID=0", 13210, Some(1_067_824_145))],
        ),
        // Video only although audio was set up too.
        (
            "gw_main_play.txt",
            vec![info(
                "rtsp://192.168.1.110:5050/H264/video",
                271,
                Some(1_621_990_950),
            )],
        ),
        (
            "gw_sub_play.txt",
            vec![info(
                "rtsp://192.168.1.110:5049/H264/video",
                273,
                Some(1_621_810_809),
            )],
        ),
        // `?`, `&` and `=` inside the URL.
        (
            "hikvision_play.txt",
            vec![info(
                "rtsp://192.168.5.106:554/Streaming/Channels/101/trackID=1?transportmode=unicast&profile=Profile_1",
                24104,
                Some(1_270_711_678),
            )],
        ),
        // Trailing `;`.
        (
            "laureii_play.txt",
            vec![info("rtsp://192.168.1.19:554/0/main/trackID=0", 0, Some(0))],
        ),
        // `ssrc=` per entry, ignored.
        (
            "reolink_play.txt",
            vec![
                info("trackID=1", 16852, Some(1_070_938_629)),
                info("trackID=2", 39409, Some(3_075_976_528)),
            ],
        ),
    ];
    for (name, _) in RESPONSES {
        let r = response(name);
        let want = expected.iter().find(|(n, _)| *n == name);
        match (r.header("RTP-Info"), want) {
            (Some(v), Some((_, infos))) => {
                let got = rtp_info::parse_list(v);
                assert_eq!(&got, infos, "{name}: {v}");
                assert_eq!(rtp_info::parse_list(&rtp_info::format_list(&got)), got);
            }
            (None, None) => {}
            (got, want) => panic!("{name}: RTP-Info {got:?}, expected {want:?}"),
        }
    }
    // H264DVR answers PLAY with no RTP-Info at all.
    assert!(response("h264dvr_play.txt").header("RTP-Info").is_none());
}

/// The `a=control` values of an SDP body: session level first, then tracks.
fn controls(sdp: &[u8]) -> Vec<String> {
    std::str::from_utf8(sdp)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("a=control:"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn track_controls_resolve_to_the_rtp_info_urls() {
    // (DESCRIBE, PLAY) of the same camera: each track's control resolved
    // against Content-Base names the same URL as its RTP-Info entry.
    for (describe, play) in [
        ("bunny_describe.txt", "bunny_play.txt"),
        ("dahua_describe_h264_aac_onvif.txt", "dahua_play.txt"),
        ("hikvision_describe.txt", "hikvision_play.txt"),
        ("reolink_describe.txt", "reolink_play.txt"),
    ] {
        let d = response(describe);
        let base = d.header("Content-Base").unwrap();
        let tracks = &controls(&d.body)[1..];
        let infos = rtp_info::parse_list(response(play).header("RTP-Info").unwrap());
        let track_urls: Vec<String> = tracks.iter().map(|c| resolve_control(base, c)).collect();
        let info_urls: Vec<String> = infos
            .iter()
            .map(|i| resolve_control(base, &i.url))
            .collect();
        assert_eq!(&track_urls[..info_urls.len()], &info_urls[..], "{describe}");
    }
    let d = response("dahua_describe_h264_aac_onvif.txt");
    assert_eq!(
        resolve_control(d.header("Content-Base").unwrap(), "trackID=4"),
        "rtsp://192.168.5.111:554/cam/realmonitor?channel=1&subtype=1&unicast=true&proto=Onvif/trackID=4"
    );

    // GW Security: the Content-Base has a query and no trailing slash; the
    // camera's RTP-Info URL is neither the base + control nor the base.
    let d = response("gw_main_describe.txt");
    let base = d.header("Content-Base").unwrap();
    assert_eq!(controls(&d.body), ["*", "video", "audio"]);
    let video = resolve_control(base, "video");
    assert_eq!(
        video,
        "rtsp://192.168.1.110:5050/H264?channel=1&subtype=0&unicast=true&proto=Onvif/video"
    );
    let infos = rtp_info::parse_list(response("gw_main_play.txt").header("RTP-Info").unwrap());
    assert_eq!(infos.len(), 1, "one entry for two tracks");
    assert_ne!(resolve_control(base, &infos[0].url), video);
    assert!(!video.ends_with(&format!("/{}", infos[0].url)));
}

#[test]
fn describe_answers() {
    // (file, Content-Base, Content-Length, first and last SDP line)
    let expected: [(&str, Option<&str>, usize, &str); 15] = [
        // No `rtsp://` scheme.
        ("anjvision_describe.txt", Some("192.168.1.10:554/stream0/"), 888, "a=appversion:1.0"),
        ("bunny_describe.txt", Some("rtsp://wowzaec2demo.streamlock.net/vod/mp4:BigBuckBunny_115k.mov/"), 589, "a=control:trackID=2"),
        ("dahua_describe_h264_aac_onvif.txt", Some("rtsp://192.168.5.111:554/cam/realmonitor?channel=1&subtype=1&unicast=true&proto=Onvif/"), 705, "a=recvonly"),
        ("dahua_describe_h265_pcma.txt", Some("rtsp://cam-driveway/cam/realmonitor?channel=1&subtype=2/"), 531, "a=recvonly"),
        ("foscam_describe.txt", Some("rtsp://192.168.5.107:65534/videoMain/"), 518, "a=control:track2"),
        ("gw_main_describe.txt", Some("rtsp://192.168.1.110:5050/H264?channel=1&subtype=0&unicast=true&proto=Onvif"), 451, "a=appversion:2.0"),
        ("gw_sub_describe.txt", Some("rtsp://192.168.1.110:5049/H264?channel=1&subtype=1&unicast=true&proto=Onvif"), 338, "a=fmtp:96 packetization-mode=1;profile-level-id=5046302;sprop-parameter-sets=Z00AHpWoLQ9puAgICBAAAAAB,aO48gAAAAAE="),
        ("h264dvr_describe.txt", Some("rtsp://127.0.0.1:554/camera"), 418, "a=control:trackID=4"),
        ("hikvision_describe.txt", Some("rtsp://192.168.5.106:554/Streaming/Channels/101/"), 902, "a=appversion:1.0"),
        ("ipcam_describe.txt", None, 476, "a=control:trackID=1"),
        ("macrovideo_describe.txt", None, 350, "a=control:track1"),
        ("missing_content_type_describe.txt", None, 494, "a=control:streamid=1"),
        ("reolink_describe.txt", Some("rtsp://192.168.5.206/h264Preview_01_main/"), 734, "a=control:trackID=2"),
        ("reolink_describe_control_first.txt", Some("rtsp://192.168.5.206/h264Preview_01_main/"), 734, "a=control:trackID=2"),
        ("vstarcam_describe.txt", None, 403, "a=rtpmap:8 PCMA/8000/1"),
    ];
    for (name, base, len, last) in expected {
        let r = response(name);
        assert_eq!(r.header("Content-Base"), base, "{name}");
        assert_eq!(r.body.len(), len, "{name}");
        let content_type = r.header("Content-Type");
        if name == "missing_content_type_describe.txt" {
            assert_eq!(content_type, None);
        } else {
            assert_eq!(content_type, Some("application/sdp"), "{name}");
        }
        assert!(r.body.starts_with(b"v=0\r\n"), "{name}");
        let text = std::str::from_utf8(&r.body).unwrap();
        let ends_with_blank_line = name == "vstarcam_describe.txt";
        assert_eq!(text.ends_with("\r\n\r\n"), ends_with_blank_line, "{name}");
        assert_eq!(text.trim_end().lines().last(), Some(last), "{name}");
    }
    // The VStarcam m= line ends in a tab and a space, kept in the body.
    let needle = b"\r\nm=audio 0 RTP/AVP 8\t \r\n";
    assert!(response("vstarcam_describe.txt")
        .body
        .windows(needle.len())
        .any(|w| w == needle));
    // Notes added by retina's author are ordinary headers.
    let ipcam = response("ipcam_describe.txt");
    assert_eq!(ipcam.headers.get_all("x-notes").count(), 2);
}

#[test]
fn range_headers() {
    let npt = |start, end| Range::Npt { start, end };
    for (name, want) in [
        ("bad_rtptime.txt", npt(Some(0.0), Some(596.48))),
        ("bunny_play.txt", npt(Some(0.0), Some(596.48))),
        ("dahua_play.txt", npt(Some(0.0), None)),
        ("gw_main_play.txt", npt(Some(0.0), None)),
        ("gw_sub_play.txt", npt(Some(0.0), None)),
        ("h264dvr_play.txt", npt(None, None)),
        ("laureii_play.txt", npt(Some(0.0), None)),
        ("reolink_play.txt", npt(Some(0.0), None)),
    ] {
        let v = response(name).header("Range").unwrap().to_owned();
        assert_eq!(Range::parse(&v).unwrap(), want, "{name}: {v}");
    }
    let with_range = RESPONSES
        .iter()
        .filter(|(n, _)| response(n).header("Range").is_some())
        .count();
    assert_eq!(with_range, 8);
}

#[test]
fn dahua_public_methods() {
    let r = response("dahua_options.txt");
    let p = r.header("Public").unwrap();
    assert_eq!(
        public::parse_methods(p),
        [
            "OPTIONS",
            "DESCRIBE",
            "ANNOUNCE",
            "SETUP",
            "PLAY",
            "RECORD",
            "PAUSE",
            "TEARDOWN",
            "SET_PARAMETER",
            "GET_PARAMETER"
        ]
    );
    assert!(public::supports(p, "GET_PARAMETER"));
    assert!(!public::supports(p, "REDIRECT"));
    // A Session header on OPTIONS, before any SETUP.
    assert_eq!(r.header("Session"), Some("136527041864"));
}

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn www_authenticate_challenges() {
    // Longse: a 401 with an RFC 2069 Digest challenge (no qop, no opaque).
    let r = response("longse_unauthorized.txt");
    let challenge = r.header("WWW-Authenticate").unwrap();
    assert_eq!(
        parse_challenges(challenge),
        [Challenge::Digest {
            realm: "Surveillance Server".into(),
            nonce: "98481030".into(),
            opaque: None,
            algorithm: None,
            qop: vec![],
            stale: false,
        }]
    );
    let mut auth = ClientAuth::new(Credentials::new("admin", "12345"));
    assert!(auth.on_unauthorized(r.headers.get_all("WWW-Authenticate")));
    let uri = "rtsp://192.168.1.88:554/stream1";
    let value = auth.authorization("DESCRIBE", uri).unwrap();
    let answer = parse_digest_authorization(&value).unwrap();
    assert_eq!(
        (
            answer.username.as_str(),
            answer.realm.as_str(),
            answer.nonce.as_str(),
            answer.uri.as_str()
        ),
        ("admin", "Surveillance Server", "98481030", uri)
    );
    assert!(answer.qop.is_none() && answer.nc.is_none() && answer.cnonce.is_none());
    // RFC 2069: MD5(HA1:nonce:HA2), computed independently here.
    let ha1 = md5_hex("admin:Surveillance Server:12345");
    let ha2 = md5_hex(&format!("DESCRIBE:{uri}"));
    assert_eq!(answer.response, md5_hex(&format!("{ha1}:98481030:{ha2}")));
    assert!(verify_digest(&answer, "DESCRIBE", "12345"));
    assert!(!verify_digest(&answer, "DESCRIBE", "wrong"));

    // Rubetek: a WWW-Authenticate on a *successful* SETUP answer.
    let r = response("rubetek_setup_ssrc_0x.txt");
    assert!(r.is_success());
    assert_eq!(
        parse_challenges(r.header("WWW-Authenticate").unwrap()),
        [Challenge::Digest {
            realm: "Rubetek IP camera device".into(),
            nonce: "7257f76204da0f14294c763e2fba0411".into(),
            opaque: None,
            algorithm: None,
            qop: vec![],
            stale: false,
        }]
    );

    let with_challenge: Vec<&str> = RESPONSES
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| response(n).header("WWW-Authenticate").is_some())
        .collect();
    assert_eq!(
        with_challenge,
        ["longse_unauthorized.txt", "rubetek_setup_ssrc_0x.txt"]
    );
}

#[test]
fn bare_sdp_bodies_travel_as_describe_bodies() {
    // The bodies of the SDP-only files, sent as a DESCRIBE answer followed at
    // once by the next response: the body ends exactly at Content-Length,
    // also for the Anpviz SDP, whose last line has no line end.
    for (name, sdp) in SDP_BODIES {
        let mut stream = format!(
            "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n",
            sdp.len()
        )
        .into_bytes();
        stream.extend_from_slice(sdp);
        stream.extend_from_slice(b"RTSP/1.0 200 OK\r\nCSeq: 3\r\n\r\n");
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for b in &stream {
            buf.extend_from_slice(std::slice::from_ref(b));
            while let Some(f) = parse_frame(&mut buf, &Limits::default()).unwrap() {
                frames.push(f);
            }
        }
        let [Frame::Response(describe), Frame::Response(next)] = &frames[..] else {
            panic!("{name}: {frames:?}")
        };
        assert_eq!(&describe.body[..], sdp, "{name}");
        assert_eq!((describe.cseq(), next.cseq()), (Some(2), Some(3)), "{name}");
        assert!(next.body.is_empty());
    }
    assert!(file("anpviz_sdp.txt").ends_with(b"a=appversion:1.0"));
    for name in ["geovision_sdp.txt", "tplink_sdp.txt", "ubiquiti_sdp.txt"] {
        assert!(file(name).ends_with(b"\r\n"), "{name}");
    }
}
