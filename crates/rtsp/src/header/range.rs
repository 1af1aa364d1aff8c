//! The `Range` header (RFC 2326 section 12.29), normal play time only.

use std::fmt;

use super::HeaderError;

/// Longest `Range` value accepted, in bytes.
const MAX_LEN: usize = 256;

/// A parsed `Range` value.
#[derive(Clone, Debug, PartialEq)]
pub enum Range {
    /// `npt=start-[end]` in seconds.
    Npt {
        /// Start time; `None` is `now` (or no start given).
        start: Option<f64>,
        /// End time; `None` when open-ended.
        end: Option<f64>,
    },
    /// Any other unit (`clock=`, `smpte=`) or an npt range with parameters
    /// (`;time=`), kept verbatim (trimmed).
    Other(String),
}

impl Range {
    /// Parses a `Range` value. `npt` times may be seconds (`12.5`) or
    /// `h:mm:ss[.fff]`; `now` is accepted as a start. Spaces around `=` and
    /// `-` are tolerated.
    pub fn parse(s: &str) -> Result<Range, HeaderError> {
        let t = s.trim();
        if t.is_empty() {
            return Err(HeaderError::Empty);
        }
        if t.len() > MAX_LEN {
            return Err(HeaderError::TooLong);
        }
        let bad = || HeaderError::BadRange(t.to_owned());
        let Some((unit, value)) = t.split_once('=') else {
            return Err(bad());
        };
        if !unit.trim().eq_ignore_ascii_case("npt") || value.contains(';') {
            return Ok(Range::Other(t.to_owned()));
        }
        let (start, end) = value.split_once('-').ok_or_else(bad)?;
        let (start, end) = (start.trim(), end.trim());
        let start = if start.is_empty() || start.eq_ignore_ascii_case("now") {
            None
        } else {
            Some(parse_npt_time(start).ok_or_else(bad)?)
        };
        let end = if end.is_empty() {
            None
        } else {
            Some(parse_npt_time(end).ok_or_else(bad)?)
        };
        Ok(Range::Npt { start, end })
    }

    /// `npt=<start>-` starting at `start` seconds, open-ended.
    pub fn npt_from(start: f64) -> Range {
        Range::Npt {
            start: Some(start),
            end: None,
        }
    }
}

/// `123.45` or `h:mm:ss[.fff]`, finite and non-negative.
fn parse_npt_time(s: &str) -> Option<f64> {
    let seconds = |s: &str| -> Option<f64> {
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !digits(int) || !digits(frac) || s.len() > 32 {
            return None;
        }
        s.parse::<f64>().ok().filter(|v| v.is_finite())
    };
    let fields: Vec<&str> = s.split(':').collect();
    match fields.as_slice() {
        [secs] => seconds(secs),
        [h, m, secs] => {
            let h = seconds(h).filter(|_| !h.contains('.'))?;
            let m = seconds(m).filter(|v| !m.contains('.') && *v < 60.0)?;
            let secs = seconds(secs).filter(|v| *v < 60.0)?;
            Some(h * 3600.0 + m * 60.0 + secs)
        }
        _ => None,
    }
}

impl fmt::Display for Range {
    /// `npt=0.000-`, `npt=now-`, `npt=1.500-20.000`, or the verbatim text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Range::Npt { start, end } => {
                f.write_str("npt=")?;
                match start {
                    Some(s) => write!(f, "{s:.3}")?,
                    None => f.write_str("now")?,
                }
                f.write_str("-")?;
                if let Some(e) = end {
                    write!(f, "{e:.3}")?;
                }
                Ok(())
            }
            Range::Other(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_forms() {
        assert_eq!(Range::parse("npt=0.000-").unwrap(), Range::npt_from(0.0));
        assert_eq!(
            Range::parse("npt=now-").unwrap(),
            Range::Npt {
                start: None,
                end: None
            }
        );
        assert_eq!(
            Range::parse("npt=0.000-").unwrap().to_string(),
            "npt=0.000-"
        );
        assert_eq!(Range::parse("npt=now-").unwrap().to_string(), "npt=now-");
    }

    #[test]
    fn times_and_spacing() {
        assert_eq!(
            Range::parse(" NPT = 1.5 - 20 ").unwrap(),
            Range::Npt {
                start: Some(1.5),
                end: Some(20.0)
            }
        );
        assert_eq!(
            Range::parse("npt=01:02:03.250-").unwrap(),
            Range::Npt {
                start: Some(3723.25),
                end: None
            }
        );
        assert_eq!(
            Range::parse("npt=0:00:10-0:01:00").unwrap().to_string(),
            "npt=10.000-60.000"
        );
        assert_eq!(
            Range::parse("npt=-30").unwrap(),
            Range::Npt {
                start: None,
                end: Some(30.0)
            }
        );
        assert_eq!(Range::parse("npt=5").ok(), None);
    }

    #[test]
    fn other_units_kept() {
        let s = "clock=19961108T142300Z-19961108T143520Z";
        assert_eq!(Range::parse(s).unwrap(), Range::Other(s.into()));
        assert_eq!(Range::parse(s).unwrap().to_string(), s);
        let s = "npt=0-;time=19970123T153600Z";
        assert_eq!(Range::parse(s).unwrap(), Range::Other(s.into()));
    }

    #[test]
    fn malformed() {
        for s in [
            "",
            "npt",
            "npt=abc-",
            "npt=1e5-",
            "npt=inf-",
            "npt=-1-",
            "npt=1:60:00-",
            "npt=1:2-",
            "npt=+1-",
            "npt=1.2.3-",
        ] {
            assert!(Range::parse(s).is_err(), "{s}");
        }
        assert_eq!(Range::parse(&"1".repeat(300)), Err(HeaderError::TooLong));
    }
}
