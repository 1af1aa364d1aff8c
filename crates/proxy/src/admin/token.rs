//! The admin token: `Authorization: Bearer <token>`, compared in constant time.

use subtle::ConstantTimeEq;

/// Whether an `Authorization` header value carries `token`. The comparison
/// takes the same time whatever the first differing byte (only the length of
/// the token may show).
pub fn bearer_ok(header: Option<&[u8]>, token: &str) -> bool {
    let Some(value) = header else {
        return false;
    };
    let Some(split) = value.iter().position(|&b| b == b' ') else {
        return false;
    };
    let (scheme, rest) = value.split_at(split);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return false;
    }
    let given = trim(&rest[1..]);
    given.ct_eq(token.as_bytes()).into()
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_token_check() {
        let t = "s3cret-T0ken";
        assert!(bearer_ok(Some(b"Bearer s3cret-T0ken"), t));
        assert!(bearer_ok(Some(b"bearer  s3cret-T0ken "), t));
        assert!(!bearer_ok(None, t));
        assert!(!bearer_ok(Some(b""), t));
        assert!(!bearer_ok(Some(b"Bearer"), t));
        assert!(!bearer_ok(Some(b"Bearer "), t));
        assert!(!bearer_ok(Some(b"Bearer s3cret-T0kem"), t));
        assert!(!bearer_ok(Some(b"Bearer s3cret-T0ken2"), t));
        assert!(!bearer_ok(Some(b"Bearer s3cret"), t));
        assert!(!bearer_ok(Some(b"Basic s3cret-T0ken"), t));
    }
}
