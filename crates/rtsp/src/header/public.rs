//! The `Public` (and `Allow`) header: a comma-separated method list.

/// The methods listed, trimmed and as given, empty items dropped.
pub fn parse_methods(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether `method` is listed in the `Public` value `public`
/// (case-insensitive).
pub fn supports(public: &str, method: &str) -> bool {
    let method = method.trim();
    public
        .split(',')
        .map(str::trim)
        .any(|m| !m.is_empty() && m.eq_ignore_ascii_case(method))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gstreamer_public() {
        let p = "OPTIONS, DESCRIBE, ANNOUNCE, GET_PARAMETER, PAUSE, PLAY, RECORD, SETUP, SET_PARAMETER, TEARDOWN";
        let m = parse_methods(p);
        assert_eq!(m.len(), 10);
        assert_eq!(m[3], "GET_PARAMETER");
        assert!(supports(p, "get_parameter"));
        assert!(supports(p, "PAUSE"));
        assert!(!supports(p, "REGISTER"));
        assert!(!supports(p, "GET"));
    }

    #[test]
    fn odd_lists() {
        assert_eq!(
            parse_methods(" A ,,B,"),
            vec!["A".to_owned(), "B".to_owned()]
        );
        assert!(parse_methods("").is_empty());
        assert!(!supports("", ""));
        assert!(!supports("A,,B", ""));
    }
}
