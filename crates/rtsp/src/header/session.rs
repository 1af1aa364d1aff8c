//! The `Session` header (RFC 2326 section 12.37).

use std::fmt;

use super::HeaderError;
use crate::util::{has_control, parse_u32_digits};

/// Longest session identifier accepted, in bytes.
pub const MAX_ID_LEN: usize = 256;

/// A parsed `Session` header: `id[;timeout=N]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionHeader {
    /// The session identifier (text before the first `;`, trimmed).
    pub id: String,
    /// The `timeout` parameter in seconds, when given and valid.
    pub timeout: Option<u32>,
}

impl SessionHeader {
    /// Parses `id[;timeout=N]`. Spaces around `;` and `=` are tolerated, the
    /// parameter name is case-insensitive, other parameters and a timeout
    /// that is not a number are ignored. An empty id, an id longer than
    /// [`MAX_ID_LEN`] or one holding control characters is refused.
    pub fn parse(s: &str) -> Result<SessionHeader, HeaderError> {
        let mut parts = s.split(';');
        let id = parts.next().unwrap_or_default().trim();
        if id.is_empty() || id.len() > MAX_ID_LEN || has_control(id) {
            return Err(HeaderError::BadSessionId);
        }
        let mut timeout = None;
        for param in parts {
            if let Some((name, value)) = param.split_once('=') {
                if name.trim().eq_ignore_ascii_case("timeout") {
                    timeout = parse_u32_digits(value.trim()).or(timeout);
                }
            }
        }
        Ok(SessionHeader {
            id: id.to_owned(),
            timeout,
        })
    }
}

impl fmt::Display for SessionHeader {
    /// `id` or `id;timeout=N`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)?;
        if let Some(t) = self.timeout {
            write!(f, ";timeout={t}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live555_form() {
        let s = SessionHeader::parse("2CF5DE32;timeout=65").unwrap();
        assert_eq!(s.id, "2CF5DE32");
        assert_eq!(s.timeout, Some(65));
        assert_eq!(s.to_string(), "2CF5DE32;timeout=65");
    }

    #[test]
    fn spaced_form_and_plain() {
        let s = SessionHeader::parse(" eOPsLOC-c2f+SZ8M ; timeout = 60").unwrap();
        assert_eq!(s.id, "eOPsLOC-c2f+SZ8M");
        assert_eq!(s.timeout, Some(60));
        assert_eq!(s.to_string(), "eOPsLOC-c2f+SZ8M;timeout=60");
        let s = SessionHeader::parse("AXp85JhymTWnIsLS").unwrap();
        assert_eq!(s.timeout, None);
        assert_eq!(s.to_string(), "AXp85JhymTWnIsLS");
        let s = SessionHeader::parse("abc;TIMEOUT=5;foo=bar").unwrap();
        assert_eq!(s.timeout, Some(5));
        let s = SessionHeader::parse("abc;timeout=soon").unwrap();
        assert_eq!(s.timeout, None);
    }

    #[test]
    fn bad_ids() {
        assert_eq!(SessionHeader::parse(""), Err(HeaderError::BadSessionId));
        assert_eq!(
            SessionHeader::parse(" ;timeout=5"),
            Err(HeaderError::BadSessionId)
        );
        assert_eq!(
            SessionHeader::parse("a\u{1}b"),
            Err(HeaderError::BadSessionId)
        );
        assert_eq!(SessionHeader::parse("a\tb"), Err(HeaderError::BadSessionId));
        assert_eq!(
            SessionHeader::parse(&"x".repeat(MAX_ID_LEN + 1)),
            Err(HeaderError::BadSessionId)
        );
        assert!(SessionHeader::parse(&"x".repeat(MAX_ID_LEN)).is_ok());
    }
}
