//! The JSON status API: `/v1/paths` and `/v1/paths/{name}`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::history::Sample;
use crate::relay::StreamSnapshot;

/// One path as `/v1/paths` shows it.
#[derive(Debug, Serialize)]
pub struct PathView {
    pub name: String,
    /// `waiting`, `idle`, `playing`, `paused` or `down`.
    pub state: &'static str,
    pub up: bool,
    /// The back end's URL without credentials; null for the built-in demo.
    pub source: Option<String>,
    /// The tracks' encodings (`H264`, `MPEG4-GENERIC`, ...), in track order.
    pub codecs: Vec<String>,
    pub tracks: Vec<TrackView>,
    /// Bits per second over the last seconds.
    pub bitrate_in: u64,
    pub bitrate_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    pub packets_lost: u64,
    pub reconnects: u64,
    pub client_packets_dropped: u64,
    pub clients: Vec<ClientView>,
    /// One sample per 5 s, oldest first, at most 10 minutes.
    pub history: Vec<Sample>,
    /// Tracks WebRTC viewers do not get, e.g. `audio MPEG4-GENERIC (AAC)`
    /// (browsers take H.264 and Opus, PCMU, PCMA, G.722); absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub webrtc_left_out: Vec<String>,
    /// With `--webrtc-listen`: the port and path of the viewer page (the
    /// dashboard's "watch" link), and what WebRTC viewers of this path got;
    /// absent without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webrtc: Option<WebRtcView>,
}

/// WebRTC viewers of one path: bytes and packets sent, the browsers' NACKs
/// and keyframe requests (answered here, never passed to the camera).
#[derive(Debug, Serialize)]
pub struct WebRtcView {
    pub viewers: u64,
    pub bytes_sent: u64,
    pub packets_sent: u64,
    pub nacks: u64,
    pub plis: u64,
    pub firs: u64,
    pub resent_packets: u64,
    pub keyframe_replays: u64,
}

#[derive(Debug, Serialize)]
pub struct TrackView {
    pub media: String,
    pub codec: Option<String>,
    pub clock_rate: u32,
}

#[derive(Debug, Serialize)]
pub struct ClientView {
    pub address: String,
    /// `udp`, `tcp`, `http` (tunnelled) or `tls`.
    pub transport: &'static str,
    /// When it started playing (RFC 3339, UTC).
    pub since: String,
    pub since_unix: u64,
    pub packets_dropped: u64,
}

/// `{"paths": [...]}`.
#[derive(Debug, Serialize)]
pub struct PathList {
    pub paths: Vec<PathView>,
}

/// `{"error": "..."}`, the body of every error answer.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub error: String,
}

impl PathView {
    pub fn new(
        s: StreamSnapshot,
        source: Option<String>,
        rate: (u64, u64),
        history: Vec<Sample>,
    ) -> PathView {
        let tracks: Vec<TrackView> = s
            .presentation
            .as_ref()
            .map(|p| {
                p.tracks
                    .iter()
                    .map(|t| TrackView {
                        media: t.media.clone(),
                        codec: t.encoding.clone(),
                        clock_rate: t.clock_rate,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let webrtc_left_out = s
            .presentation
            .as_ref()
            .map(|p| crate::webrtc::codecs::Plan::of(p).left_out)
            .unwrap_or_default();
        PathView {
            webrtc_left_out,
            watch_port: None,
            watch_path: None,
            webrtc: None,
            state: s.state.as_str(),
            up: s.state.is_up(),
            source,
            codecs: tracks
                .iter()
                .map(|t| t.codec.clone().unwrap_or_else(|| "unknown".into()))
                .collect(),
            tracks,
            bitrate_in: rate.0,
            bitrate_out: rate.1,
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            packets_in: s.packets_in,
            packets_out: s.packets_out,
            packets_lost: s.packets_lost,
            reconnects: s.reconnects,
            client_packets_dropped: s.client_drops,
            clients: s
                .clients
                .iter()
                .map(|c| {
                    let unix = c
                        .since
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    ClientView {
                        address: c.addr.to_string(),
                        transport: c.transport.as_str(),
                        since: rfc3339(c.since),
                        since_unix: unix,
                        packets_dropped: c.dropped,
                    }
                })
                .collect(),
            history,
            name: s.name,
        }
    }
}

/// A `PUT /v1/paths/{name}` body (a JSON object with the keys of a
/// `[paths.NAME]` table) as the TOML text of that table's keys, for the config
/// file's own parser to validate exactly as it validates the file. JSON
/// strings, numbers, booleans and arrays are written as the same TOML values;
/// objects as inline tables; `null` has no TOML form and is refused.
///
/// # Errors
///
/// The body is not an object, or holds a `null`.
pub fn json_to_toml_table(body: &serde_json::Value) -> Result<String, String> {
    let serde_json::Value::Object(map) = body else {
        return Err("the body must be a JSON object with the keys of a [paths.NAME] table".into());
    };
    let mut out = String::new();
    for (k, v) in map {
        out.push_str(&toml_key(k));
        out.push_str(" = ");
        toml_value(v, k, &mut out)?;
        out.push('\n');
    }
    Ok(out)
}

fn toml_key(k: &str) -> String {
    // A JSON string literal is a valid TOML basic string (serde_json never
    // writes the one escape TOML lacks, "\/").
    serde_json::Value::String(k.to_owned()).to_string()
}

fn toml_value(v: &serde_json::Value, key: &str, out: &mut String) -> Result<(), String> {
    use serde_json::Value;
    match v {
        Value::Null => return Err(format!("{key:?}: null is not a value here")),
        Value::Bool(_) | Value::Number(_) | Value::String(_) => out.push_str(&v.to_string()),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                toml_value(item, key, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&toml_key(k));
                out.push_str(" = ");
                toml_value(item, k, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// `2026-12-02T01:02:03Z` (whole seconds, UTC); a time before 1970 is
/// written as 1970-01-01T00:00:00Z, one after 9999 as the last second of 9999.
pub fn rfc3339(t: SystemTime) -> String {
    let last = UNIX_EPOCH + std::time::Duration::from_secs(253_402_300_799);
    humantime::format_rfc3339_seconds(t.clamp(UNIX_EPOCH, last)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::{ClientSnapshot, ClientTransport, SourceState};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn put_body_as_toml() {
        let body = serde_json::json!({
            "source": "rtsp://cam/x\"y",
            "linger": 5,
            "on_demand": true,
            "users": [{"name": "a", "password": "b"}],
            "ratio": 1.5
        });
        let text = json_to_toml_table(&body).unwrap();
        assert_eq!(
            text,
            "\"linger\" = 5\n\"on_demand\" = true\n\"ratio\" = 1.5\n\"source\" = \"rtsp://cam/x\\\"y\"\n\"users\" = [{\"name\" = \"a\", \"password\" = \"b\"}]\n"
        );
        assert!(json_to_toml_table(&serde_json::json!([1])).is_err());
        let e = json_to_toml_table(&serde_json::json!({"source": null})).unwrap_err();
        assert!(e.contains("null"), "{e}");
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(1)),
            "1970-01-01T00:00:00Z"
        );
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56Z");
    }

    #[test]
    fn path_json_shape() {
        let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n\
                   m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:track1\r\n\
                   m=audio 0 RTP/AVP 0\r\na=control:track2\r\n";
        let snap = StreamSnapshot {
            name: "cam".into(),
            state: SourceState::Playing,
            presentation: Some(Arc::new(crate::sdp::parse(sdp).unwrap())),
            packets_in: 1,
            bytes_in: 2,
            packets_out: 3,
            bytes_out: 4,
            packets_lost: 5,
            reconnects: 6,
            client_drops: 7,
            plays: 1,
            clients: vec![ClientSnapshot {
                addr: "127.0.0.1:40000".parse().unwrap(),
                transport: ClientTransport::Tcp,
                since: UNIX_EPOCH + Duration::from_secs(60),
                dropped: 7,
            }],
        };
        let history = vec![Sample {
            t: 100,
            bps_in: 8,
            bps_out: 16,
        }];
        let view = PathView::new(snap, Some("rtsp://cam/x".into()), (800, 1600), history);
        let json = serde_json::to_value(&view).unwrap();
        let expected = serde_json::json!({
            "name": "cam", "state": "playing", "up": true, "source": "rtsp://cam/x",
            "codecs": ["H264", "PCMU"],
            "tracks": [
                {"media": "video", "codec": "H264", "clock_rate": 90000},
                {"media": "audio", "codec": "PCMU", "clock_rate": 8000}
            ],
            "bitrate_in": 800, "bitrate_out": 1600,
            "bytes_in": 2, "bytes_out": 4, "packets_in": 1, "packets_out": 3,
            "packets_lost": 5, "reconnects": 6, "client_packets_dropped": 7,
            "clients": [{"address": "127.0.0.1:40000", "transport": "tcp",
                         "since": "1970-01-01T00:01:00Z", "since_unix": 60,
                         "packets_dropped": 7}],
            "history": [{"t": 100, "bps_in": 8, "bps_out": 16}]
        });
        assert_eq!(json, expected);
        let err = serde_json::to_string(&ErrorBody {
            error: "no path named \"x\"".into(),
        })
        .unwrap();
        assert_eq!(err, r#"{"error":"no path named \"x\""}"#);
    }
}
