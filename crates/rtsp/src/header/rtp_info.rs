//! The `RTP-Info` header (RFC 2326 section 12.33).

use std::fmt;

use crate::util::{parse_u32_digits, unquote};

/// Most entries read from one `RTP-Info` value.
const MAX_ENTRIES: usize = 64;

/// One stream's entry of `RTP-Info`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RtpInfo {
    /// The stream URL (`url=`).
    pub url: String,
    /// The sequence number of the first packet (`seq=`).
    pub seq: Option<u16>,
    /// The RTP timestamp of the first packet (`rtptime=`).
    pub rtptime: Option<u32>,
}

/// Parses an `RTP-Info` value: entries separated by commas (with or without
/// spaces), parameters separated by `;`, in any order. A comma followed by
/// something other than `url=` is taken as part of the previous URL.
/// Entries without a URL are dropped; malformed numbers are ignored.
pub fn parse_list(s: &str) -> Vec<RtpInfo> {
    let mut entries: Vec<String> = Vec::new();
    for piece in s.split(',') {
        let starts_entry = piece
            .split_once('=')
            .is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case("url"));
        match entries.last_mut() {
            Some(last) if !starts_entry => {
                last.push(',');
                last.push_str(piece);
            }
            _ => {
                if entries.len() >= MAX_ENTRIES {
                    break;
                }
                entries.push(piece.to_owned());
            }
        }
    }
    entries.iter().filter_map(|e| parse_entry(e)).collect()
}

/// Parses one `url=..;seq=..;rtptime=..` entry.
fn parse_entry(entry: &str) -> Option<RtpInfo> {
    let mut url = None;
    let mut seq = None;
    let mut rtptime = None;
    for param in entry.split(';') {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "url" => url = Some(unquote(value).to_owned()),
            "seq" => seq = parse_u32_digits(value).and_then(|v| u16::try_from(v).ok()),
            "rtptime" => rtptime = parse_u32_digits(value),
            _ => {}
        }
    }
    let url = url.filter(|u| !u.is_empty())?;
    Some(RtpInfo { url, seq, rtptime })
}

/// Formats entries as `url=..;seq=..;rtptime=..`, joined by `,`.
pub fn format_list(infos: &[RtpInfo]) -> String {
    infos
        .iter()
        .map(RtpInfo::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for RtpInfo {
    /// `url=..[;seq=..][;rtptime=..]`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "url={}", self.url)?;
        if let Some(seq) = self.seq {
            write!(f, ";seq={seq}")?;
        }
        if let Some(t) = self.rtptime {
            write!(f, ";rtptime={t}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gstreamer_form() {
        let v = parse_list("url=rtsp://127.0.0.1:31554/h264aac/stream=0;seq=9348;rtptime=3644767512, url=rtsp://127.0.0.1:31554/h264aac/stream=1;seq=21902;rtptime=4034566517");
        assert_eq!(
            v,
            vec![
                RtpInfo {
                    url: "rtsp://127.0.0.1:31554/h264aac/stream=0".into(),
                    seq: Some(9348),
                    rtptime: Some(3_644_767_512)
                },
                RtpInfo {
                    url: "rtsp://127.0.0.1:31554/h264aac/stream=1".into(),
                    seq: Some(21902),
                    rtptime: Some(4_034_566_517)
                },
            ]
        );
    }

    #[test]
    fn live555_form_round_trips() {
        let s = "url=rtsp://127.0.0.1:31555/proxyStream/track1;seq=45922;rtptime=3930673017,url=rtsp://127.0.0.1:31555/proxyStream/track2;seq=12560;rtptime=3937445394";
        let v = parse_list(s);
        assert_eq!(v.len(), 2);
        assert_eq!(format_list(&v), s);
    }

    #[test]
    fn lenient() {
        let v =
            parse_list(" URL = rtsp://h/a,b ; rtptime=5 ; seq = 70000 , seq=1, url=\"rtsp://h/c\"");
        assert_eq!(
            v,
            vec![
                RtpInfo {
                    url: "rtsp://h/a,b".into(),
                    seq: None,
                    rtptime: Some(5)
                },
                RtpInfo {
                    url: "rtsp://h/c".into(),
                    seq: None,
                    rtptime: None
                },
            ]
        );
        assert!(parse_list("").is_empty());
        assert!(parse_list("seq=1;rtptime=2").is_empty());
        assert_eq!(parse_list(&"url=x,".repeat(1000)).len(), MAX_ENTRIES);
        assert_eq!(format_list(&[]), "");
    }
}
