//! Small lexical helpers shared by the parsers of this crate.

/// Parses a non-empty run of ASCII digits as a `u32` (no sign, no spaces).
pub(crate) fn parse_u32_digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses a non-empty run of ASCII digits as a `u64`, saturating at `u64::MAX`.
pub(crate) fn parse_u64_digits_saturating(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// Parses a non-empty run of ASCII digits as a `u16`.
pub(crate) fn parse_u16_digits(s: &str) -> Option<u16> {
    parse_u32_digits(s).and_then(|v| u16::try_from(v).ok())
}

/// Parses a non-empty run of ASCII digits as a `u8`.
pub(crate) fn parse_u8_digits(s: &str) -> Option<u8> {
    parse_u32_digits(s).and_then(|v| u8::try_from(v).ok())
}

/// `tchar` of RFC 7230: the characters allowed in methods and header names.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Splits `s` on `sep`, ignoring separators inside double-quoted strings
/// (with backslash escapes). Pieces are returned untrimmed.
pub(crate) fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            c if c == sep && !in_quotes => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Removes one pair of surrounding double quotes, if present.
pub(crate) fn unquote(s: &str) -> &str {
    let s = s.trim();
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

/// Lowercase hexadecimal of `bytes`.
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
}

/// Whether `s` contains an ASCII control character (tab included) or DEL.
pub(crate) fn has_control(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 || b == 0x7f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_only() {
        assert_eq!(parse_u32_digits("42"), Some(42));
        assert_eq!(parse_u32_digits("+42"), None);
        assert_eq!(parse_u32_digits(" 42"), None);
        assert_eq!(parse_u32_digits(""), None);
        assert_eq!(parse_u32_digits("4294967296"), None);
        assert_eq!(parse_u16_digits("65536"), None);
        assert_eq!(parse_u8_digits("255"), Some(255));
        assert_eq!(
            parse_u64_digits_saturating("99999999999999999999999"),
            Some(u64::MAX)
        );
    }

    #[test]
    fn split_respects_quotes() {
        assert_eq!(
            split_unquoted(r#"a="x,y", b=1,c"#, ','),
            vec![r#"a="x,y""#, " b=1", "c"]
        );
        assert_eq!(
            split_unquoted(r#"a="\",", b"#, ','),
            vec![r#"a="\",""#, " b"]
        );
        assert_eq!(split_unquoted("", ','), vec![""]);
    }

    #[test]
    fn unquote_pairs_only() {
        assert_eq!(unquote(r#" "PLAY" "#), "PLAY");
        assert_eq!(unquote(r#"""#), r#"""#);
        assert_eq!(unquote("x"), "x");
    }

    #[test]
    fn hex() {
        assert_eq!(hex_lower(&[0x00, 0xab, 0xff]), "00abff");
    }
}
