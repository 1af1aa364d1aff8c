//! One SDP line: splitting `<type>=<value>` and deciding which lines the proxy keeps.
//!
//! Parsing and rendering share these rules, so a [`Presentation`](super::Presentation)
//! built by hand is filtered exactly like one parsed from a back end.

/// A syntactically valid SDP line: a lowercase ASCII type letter, `=`, and a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SdpLine<'a> {
    /// The type letter (`v`, `o`, `m`, `a`, ...).
    pub kind: char,
    /// Everything after the `=`, untouched.
    pub value: &'a str,
}

impl<'a> SdpLine<'a> {
    /// Splits an already trimmed line.
    ///
    /// Returns `None` for anything that is not `<lowercase letter>=...` or that contains
    /// a control character other than tab: such a line could break the line structure of
    /// the SDP we serve, so it is never kept.
    pub fn split(line: &'a str) -> Option<Self> {
        if has_forbidden_control(line) {
            return None;
        }
        let mut chars = line.chars();
        let kind = chars.next()?;
        if !kind.is_ascii_lowercase() || chars.next()? != '=' {
            return None;
        }
        // `kind` and `=` are one byte each.
        let value = line.get(2..)?;
        Some(SdpLine { kind, value })
    }

    /// For an `a=` line, the attribute name (before the first `:`), else `None`.
    pub fn attribute_name(&self) -> Option<&'a str> {
        if self.kind != 'a' {
            return None;
        }
        Some(
            self.value
                .split_once(':')
                .map_or(self.value, |(name, _)| name)
                .trim(),
        )
    }

    /// For an `a=` line, the attribute value (after the first `:`), trimmed; `None` for a
    /// flag attribute or another line type.
    pub fn attribute_value(&self) -> Option<&'a str> {
        if self.kind != 'a' {
            return None;
        }
        self.value.split_once(':').map(|(_, value)| value.trim())
    }
}

/// True if `text` contains a control character other than tab (CR, LF, NUL, ...).
pub(crate) fn has_forbidden_control(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && c != '\t')
}

/// Removes control characters, for single values written into our own lines.
pub(crate) fn without_controls(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Attributes the proxy never copies, at session or media level: it writes its own
/// `a=control` (renumbered) and `a=range`, SSRC lines name the back end's SSRC (the relay
/// uses its own), and RTCP port/multiplexing lines describe the back end's transport,
/// not the one clients get from us.
const DROPPED_ATTRIBUTES: [&str; 6] =
    ["control", "range", "ssrc", "ssrc-group", "rtcp", "rtcp-mux"];

fn is_dropped_attribute(name: &str) -> bool {
    DROPPED_ATTRIBUTES
        .iter()
        .any(|dropped| name.eq_ignore_ascii_case(dropped))
}

/// Whether a session-level line (other than `s=`, `i=` and `a=control`, which are
/// captured as fields) is kept in `session_attributes`.
///
/// Kept: `u=`, `e=`, `p=`, `b=` and every `a=` not listed in
/// [`DROPPED_ATTRIBUTES`]. Dropped: `v= o= t= r= z= k= c=` (the proxy writes
/// its own), and unknown type letters, because RFC 4566 tells a parser to reject a whole
/// description that contains a type letter it does not understand.
pub(crate) fn keep_session_line(line: &SdpLine<'_>) -> bool {
    match line.kind {
        'u' | 'e' | 'p' | 'b' => true,
        'a' => line
            .attribute_name()
            .is_some_and(|name| !name.is_empty() && !is_dropped_attribute(name)),
        _ => false,
    }
}

/// Whether a media-level line (other than `c=` and `a=control`, captured as fields) is
/// kept in `Track::lines`. Kept: `i=`, `b=` and every `a=` not listed in
/// [`DROPPED_ATTRIBUTES`]. Dropped: `k=` and unknown or misplaced type letters.
pub(crate) fn keep_media_line(line: &SdpLine<'_>) -> bool {
    match line.kind {
        'i' | 'b' => true,
        'a' => line
            .attribute_name()
            .is_some_and(|name| !name.is_empty() && !is_dropped_attribute(name)),
        _ => false,
    }
}

/// Position of a kept line's type letter in the order RFC 4566 requires, used to write
/// kept lines in a valid order around the lines the proxy writes itself.
pub(crate) fn order_rank(kind: char) -> u8 {
    match kind {
        'i' => 0,
        'u' => 1,
        'e' => 2,
        'p' => 3,
        'c' => 4,
        'b' => 5,
        'a' => 7,
        _ => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_accepts_type_equals_value() {
        let line = SdpLine::split("a=rtpmap:96 H264/90000").expect("valid line");
        assert_eq!(line.kind, 'a');
        assert_eq!(line.value, "rtpmap:96 H264/90000");
        assert_eq!(line.attribute_name(), Some("rtpmap"));
        assert_eq!(line.attribute_value(), Some("96 H264/90000"));
    }

    #[test]
    fn split_rejects_malformed_lines() {
        for bad in [
            "", "a", "=x", "A=x", "ab=x", "é=x", "1=x", "a=x\r", "a=\0", "a=x\ny",
        ] {
            assert_eq!(SdpLine::split(bad), None, "{bad:?}");
        }
        assert_eq!(SdpLine::split("s=").map(|l| l.value), Some(""));
        assert_eq!(
            SdpLine::split("i=tab\there").map(|l| l.value),
            Some("tab\there")
        );
    }

    #[test]
    fn flag_attribute_has_name_and_no_value() {
        let line = SdpLine::split("a=sendonly").expect("valid line");
        assert_eq!(line.attribute_name(), Some("sendonly"));
        assert_eq!(line.attribute_value(), None);
        let other = SdpLine::split("b=AS:50").expect("valid line");
        assert_eq!(other.attribute_name(), None);
    }

    #[test]
    fn session_filter() {
        let keep = |s: &str| keep_session_line(&SdpLine::split(s).expect("valid line"));
        for kept in [
            "a=tool:GStreamer",
            "b=AS:500",
            "a=sendonly",
            "u=http://x",
            "e=a@b",
            "p=+1",
        ] {
            assert!(keep(kept), "{kept}");
        }
        for dropped in [
            "v=0",
            "o=- 1 1 IN IP4 1.2.3.4",
            "t=0 0",
            "r=1 2 3",
            "z=0 0",
            "k=clear:x",
            "c=IN IP4 0.0.0.0",
            "a=control:*",
            "a=CONTROL:*",
            "a=range:npt=0-",
            "x=unknown",
            "a=",
            "a=:x",
            "a=ssrc:1 cname:x",
        ] {
            assert!(!keep(dropped), "{dropped}");
        }
    }

    #[test]
    fn media_filter() {
        let keep = |s: &str| keep_media_line(&SdpLine::split(s).expect("valid line"));
        for kept in [
            "a=rtpmap:96 H264/90000",
            "a=fmtp:96 x=1",
            "b=AS:2048",
            "i=cam",
            "a=rtcp-fb:96 nack",
        ] {
            assert!(keep(kept), "{kept}");
        }
        for dropped in [
            "a=control:stream=0",
            "a=range:npt=0-",
            "a=ssrc:1 cname:x",
            "a=SSRC:1 cname:x",
            "a=ssrc-group:FID 1 2",
            "a=rtcp:9 IN IP4 0.0.0.0",
            "a=rtcp-mux",
            "k=prompt",
            "c=IN IP4 0.0.0.0",
            "s=x",
            "m=video 0 RTP/AVP 96",
        ] {
            assert!(!keep(dropped), "{dropped}");
        }
    }

    #[test]
    fn without_controls_strips_line_breaks() {
        assert_eq!(without_controls(" a\r\nb\0c "), "abc");
    }
}
