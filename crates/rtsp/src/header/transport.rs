//! The `Transport` header (RFC 2326 section 12.39).

use std::fmt;

use super::HeaderError;
use crate::util::{parse_u16_digits, parse_u8_digits, split_unquoted, unquote};

/// Longest `Transport` value accepted, in bytes.
const MAX_LEN: usize = 4096;

/// The lower transport of a transport spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LowerTransport {
    /// UDP (the default when the spec has no third part).
    Udp,
    /// TCP (interleaved on the RTSP connection).
    Tcp,
}

/// Unicast or multicast delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cast {
    /// `unicast`
    Unicast,
    /// `multicast`
    Multicast,
}

/// A port pair `a-b` or a single port `a`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// The RTP port.
    pub rtp: u16,
    /// The RTCP port, when given.
    pub rtcp: Option<u16>,
}

impl PortRange {
    /// Parses `a-b` or `a` (spaces around `-` tolerated).
    pub fn parse(s: &str) -> Option<PortRange> {
        match s.split_once('-') {
            Some((a, b)) => Some(PortRange {
                rtp: parse_u16_digits(a.trim())?,
                rtcp: Some(parse_u16_digits(b.trim())?),
            }),
            None => Some(PortRange {
                rtp: parse_u16_digits(s.trim())?,
                rtcp: None,
            }),
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rtcp {
            Some(rtcp) => write!(f, "{}-{}", self.rtp, rtcp),
            None => write!(f, "{}", self.rtp),
        }
    }
}

/// An interleaved channel pair `a-b` or a single channel `a`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChannelRange {
    /// The RTP channel.
    pub rtp: u8,
    /// The RTCP channel, when given.
    pub rtcp: Option<u8>,
}

impl ChannelRange {
    /// Parses `a-b` or `a` (spaces around `-` tolerated).
    pub fn parse(s: &str) -> Option<ChannelRange> {
        match s.split_once('-') {
            Some((a, b)) => Some(ChannelRange {
                rtp: parse_u8_digits(a.trim())?,
                rtcp: Some(parse_u8_digits(b.trim())?),
            }),
            None => Some(ChannelRange {
                rtp: parse_u8_digits(s.trim())?,
                rtcp: None,
            }),
        }
    }
}

impl fmt::Display for ChannelRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rtcp {
            Some(rtcp) => write!(f, "{}-{}", self.rtp, rtcp),
            None => write!(f, "{}", self.rtp),
        }
    }
}

/// One transport alternative of a `Transport` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transport {
    /// Transport protocol, uppercase: `RTP`, `RAW`.
    pub protocol: String,
    /// Profile, uppercase: `AVP`, `SAVP`, `RAW`, ...
    pub profile: String,
    /// Lower transport.
    pub lower: LowerTransport,
    /// `unicast` / `multicast`, when given.
    pub cast: Option<Cast>,
    /// `destination=`
    pub destination: Option<String>,
    /// `source=`
    pub source: Option<String>,
    /// `client_port=`
    pub client_port: Option<PortRange>,
    /// `server_port=`
    pub server_port: Option<PortRange>,
    /// `port=` (multicast)
    pub port: Option<PortRange>,
    /// `interleaved=`
    pub interleaved: Option<ChannelRange>,
    /// `ttl=`
    pub ttl: Option<u8>,
    /// `ssrc=` (1 to 8 hex digits).
    pub ssrc: Option<u32>,
    /// `mode=`, quotes stripped, as given (`PLAY`, `RECORD`, ...).
    pub mode: Option<String>,
    /// Other parameters, verbatim (trimmed), in order: `append`, `layers=2`,
    /// and also an `ssrc` that is not 1 to 8 hex digits.
    pub other: Vec<String>,
}

impl Transport {
    /// A `RTP/AVP` (UDP) or `RTP/AVP/TCP` transport with no parameters.
    pub fn rtp_avp(lower: LowerTransport) -> Transport {
        Transport {
            protocol: "RTP".to_owned(),
            profile: "AVP".to_owned(),
            lower,
            cast: None,
            destination: None,
            source: None,
            client_port: None,
            server_port: None,
            port: None,
            interleaved: None,
            ttl: None,
            ssrc: None,
            mode: None,
            other: Vec::new(),
        }
    }

    /// Parses one transport alternative, e.g.
    /// `RTP/AVP;unicast;client_port=40000-40001`.
    ///
    /// Lenient: parameter names are case-insensitive, spaces around `;` and
    /// `=` are ignored, `RTP/AVP/UDP` equals `RTP/AVP`.
    pub fn parse(s: &str) -> Result<Transport, HeaderError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(HeaderError::Empty);
        }
        if s.len() > MAX_LEN {
            return Err(HeaderError::TooLong);
        }
        let mut parts = split_unquoted(s, ';').into_iter();
        let spec = parts.next().unwrap_or_default().trim();
        let (protocol, profile, lower) = parse_spec(spec)?;
        let mut t = Transport {
            protocol,
            profile,
            ..Transport::rtp_avp(lower)
        };

        for param in parts {
            let param = param.trim();
            if param.is_empty() {
                continue;
            }
            let (name, value) = match param.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (param, None),
            };
            let lname = name.to_ascii_lowercase();
            let bad = |v: &str| HeaderError::BadParameter {
                name: lname.clone(),
                value: v.to_owned(),
            };
            match (lname.as_str(), value) {
                ("unicast", None) => t.cast = Some(Cast::Unicast),
                ("multicast", None) => t.cast = Some(Cast::Multicast),
                ("destination", Some(v)) if !unquote(v).is_empty() => {
                    t.destination = Some(unquote(v).to_owned())
                }
                ("source", Some(v)) if !unquote(v).is_empty() => {
                    t.source = Some(unquote(v).to_owned())
                }
                ("client_port", Some(v)) => {
                    t.client_port = Some(PortRange::parse(unquote(v)).ok_or_else(|| bad(v))?)
                }
                ("server_port", Some(v)) => {
                    t.server_port = Some(PortRange::parse(unquote(v)).ok_or_else(|| bad(v))?)
                }
                ("port", Some(v)) => {
                    t.port = Some(PortRange::parse(unquote(v)).ok_or_else(|| bad(v))?)
                }
                ("interleaved", Some(v)) => {
                    t.interleaved = Some(ChannelRange::parse(unquote(v)).ok_or_else(|| bad(v))?)
                }
                ("ttl", Some(v)) => {
                    t.ttl = Some(parse_u8_digits(unquote(v)).ok_or_else(|| bad(v))?)
                }
                ("ssrc", Some(v)) => match parse_ssrc(unquote(v)) {
                    Some(ssrc) => t.ssrc = Some(ssrc),
                    None => t.other.push(param.to_owned()),
                },
                ("mode", Some(v)) => t.mode = Some(unquote(v).to_owned()),
                _ => t.other.push(param.to_owned()),
            }
        }
        Ok(t)
    }

    /// Parses a comma-separated list of alternatives. Alternatives that do
    /// not parse are skipped; an error is returned only if none parses.
    pub fn parse_list(s: &str) -> Result<Vec<Transport>, HeaderError> {
        if s.len() > MAX_LEN {
            return Err(HeaderError::TooLong);
        }
        let mut out = Vec::new();
        let mut first_error = None;
        for alt in split_unquoted(s, ',') {
            if alt.trim().is_empty() {
                continue;
            }
            match Transport::parse(alt) {
                Ok(t) => out.push(t),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if out.is_empty() {
            return Err(first_error.unwrap_or(HeaderError::Empty));
        }
        Ok(out)
    }

    /// Whether this is TCP interleaved.
    pub fn is_tcp(&self) -> bool {
        self.lower == LowerTransport::Tcp
    }
}

/// Parses `PROTOCOL/PROFILE[/LOWER]`.
fn parse_spec(spec: &str) -> Result<(String, String, LowerTransport), HeaderError> {
    let bad = || HeaderError::BadTransportSpec(spec.to_owned());
    let mut parts = spec.split('/').map(str::trim);
    let protocol = parts.next().unwrap_or_default();
    let profile = parts.next().ok_or_else(bad)?;
    let lower = match parts.next() {
        None => LowerTransport::Udp,
        Some(l) if l.eq_ignore_ascii_case("UDP") => LowerTransport::Udp,
        Some(l) if l.eq_ignore_ascii_case("TCP") => LowerTransport::Tcp,
        Some(_) => return Err(bad()),
    };
    let token = |p: &str| {
        !p.is_empty()
            && p.len() <= 32
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if parts.next().is_some() || !token(protocol) || !token(profile) {
        return Err(bad());
    }
    Ok((
        protocol.to_ascii_uppercase(),
        profile.to_ascii_uppercase(),
        lower,
    ))
}

/// 1 to 8 hex digits.
fn parse_ssrc(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

impl fmt::Display for Transport {
    /// Canonical form: `RTP/AVP[/TCP];unicast;destination=..;source=..;
    /// interleaved=a-b;client_port=a-b;server_port=c-d;port=..;ttl=..;
    /// ssrc=XXXXXXXX;mode="PLAY"`, present fields only, then the other
    /// parameters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.protocol, self.profile)?;
        if self.lower == LowerTransport::Tcp {
            f.write_str("/TCP")?;
        }
        match self.cast {
            Some(Cast::Unicast) => f.write_str(";unicast")?,
            Some(Cast::Multicast) => f.write_str(";multicast")?,
            None => {}
        }
        if let Some(d) = &self.destination {
            write!(f, ";destination={d}")?;
        }
        if let Some(s) = &self.source {
            write!(f, ";source={s}")?;
        }
        if let Some(i) = &self.interleaved {
            write!(f, ";interleaved={i}")?;
        }
        if let Some(p) = &self.client_port {
            write!(f, ";client_port={p}")?;
        }
        if let Some(p) = &self.server_port {
            write!(f, ";server_port={p}")?;
        }
        if let Some(p) = &self.port {
            write!(f, ";port={p}")?;
        }
        if let Some(ttl) = self.ttl {
            write!(f, ";ttl={ttl}")?;
        }
        if let Some(ssrc) = self.ssrc {
            write!(f, ";ssrc={ssrc:08X}")?;
        }
        if let Some(mode) = &self.mode {
            write!(f, ";mode=\"{mode}\"")?;
        }
        for o in &self.other {
            write!(f, ";{o}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gstreamer_udp_response_round_trips() {
        let s = r#"RTP/AVP;unicast;client_port=40000-40001;server_port=49464-49465;ssrc=C6841965;mode="PLAY""#;
        let t = Transport::parse(s).unwrap();
        assert_eq!(t.protocol, "RTP");
        assert_eq!(t.profile, "AVP");
        assert_eq!(t.lower, LowerTransport::Udp);
        assert_eq!(t.cast, Some(Cast::Unicast));
        assert_eq!(
            t.client_port,
            Some(PortRange {
                rtp: 40000,
                rtcp: Some(40001)
            })
        );
        assert_eq!(
            t.server_port,
            Some(PortRange {
                rtp: 49464,
                rtcp: Some(49465)
            })
        );
        assert_eq!(t.ssrc, Some(0xC684_1965));
        assert_eq!(t.mode.as_deref(), Some("PLAY"));
        assert_eq!(t.to_string(), s);
    }

    #[test]
    fn gstreamer_tcp_response_round_trips() {
        let s = r#"RTP/AVP/TCP;unicast;interleaved=2-3;ssrc=DC74CD2D;mode="PLAY""#;
        let t = Transport::parse(s).unwrap();
        assert!(t.is_tcp());
        assert_eq!(
            t.interleaved,
            Some(ChannelRange {
                rtp: 2,
                rtcp: Some(3)
            })
        );
        assert_eq!(t.to_string(), s);
    }

    #[test]
    fn live555_response_round_trips() {
        let s = "RTP/AVP;unicast;destination=127.0.0.1;source=127.0.0.1;client_port=40000-40001;server_port=6970-6971";
        let t = Transport::parse(s).unwrap();
        assert_eq!(t.destination.as_deref(), Some("127.0.0.1"));
        assert_eq!(t.source.as_deref(), Some("127.0.0.1"));
        assert_eq!(t.to_string(), s);
        let s = "RTP/AVP/TCP;unicast;destination=127.0.0.1;source=127.0.0.1;interleaved=0-1";
        assert_eq!(Transport::parse(s).unwrap().to_string(), s);
    }

    #[test]
    fn ffmpeg_style_requests() {
        let t = Transport::parse("RTP/AVP/UDP;unicast;client_port=5000-5001").unwrap();
        assert_eq!(t.lower, LowerTransport::Udp);
        assert_eq!(t.to_string(), "RTP/AVP;unicast;client_port=5000-5001");
        let t = Transport::parse("RTP/AVP/TCP;unicast;interleaved=0-1;mode=record").unwrap();
        assert_eq!(t.mode.as_deref(), Some("record"));
        assert_eq!(
            t.to_string(),
            "RTP/AVP/TCP;unicast;interleaved=0-1;mode=\"record\""
        );
        assert_eq!(Transport::parse(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn lenient_spacing_and_case() {
        let t = Transport::parse(
            " rtp/avp/tcp ; Unicast ; INTERLEAVED = 4 - 5 ; SSRC = 1a ; Mode = \"PLAY\" ; append ",
        )
        .unwrap();
        assert_eq!(t.protocol, "RTP");
        assert!(t.is_tcp());
        assert_eq!(t.cast, Some(Cast::Unicast));
        assert_eq!(
            t.interleaved,
            Some(ChannelRange {
                rtp: 4,
                rtcp: Some(5)
            })
        );
        assert_eq!(t.ssrc, Some(0x1a));
        assert_eq!(t.other, vec!["append".to_owned()]);
        assert_eq!(
            t.to_string(),
            "RTP/AVP/TCP;unicast;interleaved=4-5;ssrc=0000001A;mode=\"PLAY\";append"
        );
    }

    #[test]
    fn multicast() {
        let t = Transport::parse("RTP/AVP;multicast;destination=232.1.1.1;port=5000-5001;ttl=16")
            .unwrap();
        assert_eq!(t.cast, Some(Cast::Multicast));
        assert_eq!(
            t.port,
            Some(PortRange {
                rtp: 5000,
                rtcp: Some(5001)
            })
        );
        assert_eq!(t.ttl, Some(16));
        assert_eq!(
            t.to_string(),
            "RTP/AVP;multicast;destination=232.1.1.1;port=5000-5001;ttl=16"
        );
    }

    #[test]
    fn single_port_and_odd_ssrc() {
        let t = Transport::parse("RTP/AVP;unicast;client_port=5000;ssrc=123456789").unwrap();
        assert_eq!(
            t.client_port,
            Some(PortRange {
                rtp: 5000,
                rtcp: None
            })
        );
        assert_eq!(t.ssrc, None);
        assert_eq!(t.other, vec!["ssrc=123456789".to_owned()]);
        assert_eq!(
            t.to_string(),
            "RTP/AVP;unicast;client_port=5000;ssrc=123456789"
        );
    }

    #[test]
    fn errors() {
        assert_eq!(Transport::parse(""), Err(HeaderError::Empty));
        assert!(matches!(
            Transport::parse("RTP"),
            Err(HeaderError::BadTransportSpec(_))
        ));
        assert!(matches!(
            Transport::parse("RTP/AVP/SCTP"),
            Err(HeaderError::BadTransportSpec(_))
        ));
        assert!(matches!(
            Transport::parse("RTP/AVP/TCP/X"),
            Err(HeaderError::BadTransportSpec(_))
        ));
        assert!(matches!(
            Transport::parse("RTP/AVP;client_port=70000-70001"),
            Err(HeaderError::BadParameter { .. })
        ));
        assert!(matches!(
            Transport::parse("RTP/AVP/TCP;interleaved=256-257"),
            Err(HeaderError::BadParameter { .. })
        ));
        assert!(matches!(
            Transport::parse("RTP/AVP;ttl=x"),
            Err(HeaderError::BadParameter { .. })
        ));
        assert_eq!(
            Transport::parse(&"x".repeat(MAX_LEN + 1)),
            Err(HeaderError::TooLong)
        );
    }

    #[test]
    fn list_skips_bad_alternatives() {
        let l = Transport::parse_list(
            "RTP/AVP/TCP;unicast;interleaved=0-1, FOO;x, RTP/AVP;unicast;client_port=6000-6001",
        )
        .unwrap();
        assert_eq!(l.len(), 2);
        assert!(l[0].is_tcp());
        assert!(!l[1].is_tcp());
        assert!(Transport::parse_list("FOO, BAR").is_err());
        assert_eq!(Transport::parse_list(" , "), Err(HeaderError::Empty));
        let l = Transport::parse_list(r#"RTP/AVP;mode="PLAY,RECORD""#).unwrap();
        assert_eq!(l[0].mode.as_deref(), Some("PLAY,RECORD"));
    }
}
