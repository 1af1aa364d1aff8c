//! Feeds arbitrary text to the typed header parsers (Transport, Session,
//! Range, RTP-Info, Public). No panics; values that parse can be formatted,
//! and a formatted Session parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtsp::header::{public, rtp_info, Range, SessionHeader, Transport};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(t) = Transport::parse(&s) {
        let _ = t.to_string();
    }
    if let Ok(list) = Transport::parse_list(&s) {
        assert!(!list.is_empty());
    }
    if let Ok(session) = SessionHeader::parse(&s) {
        assert_eq!(SessionHeader::parse(&session.to_string()), Ok(session));
    }
    if let Ok(range) = Range::parse(&s) {
        let _ = range.to_string();
    }
    let infos = rtp_info::parse_list(&s);
    let _ = rtp_info::format_list(&infos);
    let _ = public::parse_methods(&s);
    let _ = public::supports(&s, "PLAY");
});
