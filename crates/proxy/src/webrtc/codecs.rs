//! Which of a path's tracks a browser can take without transcoding (sans-IO):
//! the first H.264 video track, and the first audio track in Opus, PCMU, PCMA
//! or G.722. Everything else (H.265, AAC, MJPEG, MPEG-TS, a second track of a
//! kind) is left out of the answer and named, so the viewer page and the API
//! can say why there is no picture or no sound.

use crate::sdp::Presentation;

/// A codec both a browser and the camera speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrowserCodec {
    H264,
    Opus,
    Pcmu,
    Pcma,
    G722,
}

impl BrowserCodec {
    pub fn is_video(self) -> bool {
        self == BrowserCodec::H264
    }

    pub fn str0m_codec(self) -> str0m::format::Codec {
        use str0m::format::Codec;
        match self {
            BrowserCodec::H264 => Codec::H264,
            BrowserCodec::Opus => Codec::Opus,
            BrowserCodec::Pcmu => Codec::PCMU,
            BrowserCodec::Pcma => Codec::PCMA,
            BrowserCodec::G722 => Codec::G722,
        }
    }
}

/// A relayed track and the codec it goes to the browser in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Playable {
    pub track: usize,
    pub codec: BrowserCodec,
}

/// What of a presentation goes to browsers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub video: Option<Playable>,
    pub audio: Option<Playable>,
    /// The tracks left out, each as "video H265", "audio MPEG4-GENERIC (AAC)".
    pub left_out: Vec<String>,
}

impl Plan {
    pub fn of(p: &Presentation) -> Plan {
        let mut plan = Plan::default();
        for (i, t) in p.tracks.iter().enumerate() {
            let encoding = t.encoding.as_deref().unwrap_or("");
            let codec = browser_codec(&t.media, encoding, t.clock_rate, t.channels);
            let slot = match t.media.as_str() {
                "video" => &mut plan.video,
                "audio" => &mut plan.audio,
                _ => {
                    plan.left_out.push(describe(&t.media, encoding));
                    continue;
                }
            };
            match (codec, slot.is_none()) {
                (Some(codec), true) => *slot = Some(Playable { track: i, codec }),
                _ => plan.left_out.push(describe(&t.media, encoding)),
            }
        }
        plan
    }

    /// The tracks that go, in track order.
    pub fn playable(&self) -> impl Iterator<Item = Playable> + '_ {
        self.video.iter().chain(self.audio.iter()).copied()
    }

    /// Whether the browser gets anything at all.
    pub fn is_empty(&self) -> bool {
        self.video.is_none() && self.audio.is_none()
    }
}

fn browser_codec(
    media: &str,
    encoding: &str,
    clock_rate: u32,
    channels: Option<u8>,
) -> Option<BrowserCodec> {
    let e = encoding.to_ascii_uppercase();
    match (media, e.as_str()) {
        ("video", "H264") if clock_rate == 90_000 => Some(BrowserCodec::H264),
        ("audio", "OPUS") if clock_rate == 48_000 => Some(BrowserCodec::Opus),
        // G.711 and G.722 as browsers take them: 8 kHz RTP clock, mono.
        ("audio", "PCMU" | "PCMA" | "G722")
            if clock_rate == 8_000 && channels.unwrap_or(1) == 1 =>
        {
            Some(match e.as_str() {
                "PCMU" => BrowserCodec::Pcmu,
                "PCMA" => BrowserCodec::Pcma,
                _ => BrowserCodec::G722,
            })
        }
        _ => None,
    }
}

/// "video H265", "audio MPEG4-GENERIC (AAC)", "audio PCMA/16000".
fn describe(media: &str, encoding: &str) -> String {
    let name = if encoding.is_empty() {
        "(unknown codec)"
    } else {
        encoding
    };
    let hint = match name.to_ascii_uppercase().as_str() {
        "MPEG4-GENERIC" | "MP4A-LATM" => " (AAC)",
        "JPEG" => " (MJPEG)",
        "MP2T" => " (MPEG-TS)",
        _ => "",
    };
    format!("{media} {name}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presentation(sdp: &str) -> Presentation {
        crate::sdp::parse(sdp).expect("sdp")
    }

    const HEAD: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n";

    #[test]
    fn h264_and_opus_go() {
        let p = presentation(&format!(
            "{HEAD}m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 opus/48000/2\r\n"
        ));
        let plan = Plan::of(&p);
        assert_eq!(
            plan.video,
            Some(Playable {
                track: 0,
                codec: BrowserCodec::H264
            })
        );
        assert_eq!(
            plan.audio,
            Some(Playable {
                track: 1,
                codec: BrowserCodec::Opus
            })
        );
        assert!(plan.left_out.is_empty());
    }

    #[test]
    fn static_pcma_goes_aac_and_h265_do_not() {
        let p = presentation(&format!(
            "{HEAD}m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=audio 0 RTP/AVP 8\r\n"
        ));
        assert_eq!(
            Plan::of(&p).audio.map(|a| a.codec),
            Some(BrowserCodec::Pcma)
        );
        let p = presentation(&format!(
            "{HEAD}m=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\n"
        ));
        let plan = Plan::of(&p);
        assert!(plan.is_empty());
        assert_eq!(
            plan.left_out,
            vec!["video H265", "audio MPEG4-GENERIC (AAC)"]
        );
    }

    #[test]
    fn a_second_video_track_and_wideband_pcmu_are_left_out() {
        let p = presentation(&format!(
            "{HEAD}m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=video 0 RTP/AVP 98\r\na=rtpmap:98 H264/90000\r\nm=audio 0 RTP/AVP 99\r\na=rtpmap:99 PCMU/16000\r\n"
        ));
        let plan = Plan::of(&p);
        assert_eq!(plan.video.map(|v| v.track), Some(0));
        assert_eq!(plan.audio, None);
        assert_eq!(plan.left_out, vec!["video H264", "audio PCMU"]);
    }
}
