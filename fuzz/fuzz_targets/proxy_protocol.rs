//! Feeds bytes to the PROXY protocol parser (`rtsp::proxy_protocol::parse`),
//! whole and as a server reads them: exactly the bytes it asks for, one
//! request at a time. No panics; it never asks for nothing, never for a byte
//! past the header it then finds; the two readings agree; a whole header is
//! bounded (107 bytes for v1, 16 + MAX_V2_PAYLOAD for v2), starts with its
//! version's signature and parses the same on its own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtsp::proxy_protocol::{self, Parsed, Signature, MAX_V2_PAYLOAD, V1_MAX_LEN, V2_HEAD_LEN};

fuzz_target!(|data: &[u8]| {
    let whole = proxy_protocol::parse(data);
    if let Ok(Parsed::Complete { header, len }) = whole {
        assert!(len <= data.len());
        match proxy_protocol::signature(data) {
            Signature::V1 => assert!(len <= V1_MAX_LEN),
            Signature::V2 => assert!(len <= V2_HEAD_LEN + MAX_V2_PAYLOAD),
            other => panic!("a header without a signature: {other:?}"),
        }
        assert_eq!(
            proxy_protocol::parse(&data[..len]),
            Ok(Parsed::Complete { header, len })
        );
    }
    // As read from a socket: exactly what is asked for.
    let mut have = 0;
    loop {
        match proxy_protocol::parse(&data[..have]) {
            Ok(Parsed::Need(n)) => {
                assert!(n > 0, "asked for nothing");
                have += n;
                if have > data.len() {
                    // Not enough bytes (a reader waits for the shortest
                    // header before it tells garbage): no whole header here.
                    assert!(!matches!(whole, Ok(Parsed::Complete { .. })), "{whole:?}");
                    break;
                }
            }
            Ok(Parsed::Complete { header, len }) => {
                assert_eq!(len, have, "asked for bytes past the header");
                assert_eq!(whole, Ok(Parsed::Complete { header, len }));
                break;
            }
            Err(e) => {
                assert_eq!(whole, Err(e));
                break;
            }
        }
    }
});
