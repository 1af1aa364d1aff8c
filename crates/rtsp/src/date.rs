//! The `Date` header value.

use std::time::SystemTime;

/// RFC 1123 date, e.g. `Sat, 21 Nov 2026 06:30:14 GMT`.
pub fn format_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc1123() {
        // The instant of the GStreamer capture's Date header.
        let t = UNIX_EPOCH + Duration::from_secs(1_795_242_614);
        assert_eq!(format_date(t), "Sat, 21 Nov 2026 06:30:14 GMT");
        assert_eq!(format_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
