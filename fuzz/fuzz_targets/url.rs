//! Feeds arbitrary text to the URL functions. No panics; a URL that parses
//! prints without credentials and that text parses back to the same host,
//! port and path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtsp::url::{redact, resolve_control, RtspUrl};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(u) = RtspUrl::parse(&s) {
        let printed = u.to_string();
        let again = RtspUrl::parse(&printed).expect("printed URL must parse");
        assert_eq!(again.host, u.host);
        assert_eq!(again.port, u.port);
        assert_eq!(again.path, u.path);
        assert!(again.credentials.is_none());
        let _ = u.connect_target();
    }
    let redacted = redact(&s);
    // Redaction only removes, except that an ambiguous user part is shown
    // as `<hidden>@` (9 bytes), at most once per URL.
    let urls = s.matches("://").count();
    assert!(redacted.len() <= s.len() + urls * "<hidden>@".len());
    assert!(redacted.matches("://").count() >= urls, "no URL disappears");
    let mid = (0..=s.len() / 2).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
    let (base, control) = s.split_at(mid);
    let resolved = resolve_control(base, control);
    assert!(resolved.len() <= base.len() + control.len() + 1);
});
