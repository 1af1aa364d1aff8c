//! Feeds arbitrary bytes to the tunnel base64 decoder in chunks. No panics,
//! at most 3 characters pending, and valid base64 of any input decodes back
//! to that input whatever the chunking.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rtsp::tunnel::{encode_base64, Base64Decoder};

fuzz_target!(|data: &[u8]| {
    let chunk = data.first().map_or(1, |&b| usize::from(b % 7) + 1);

    let mut decoder = Base64Decoder::new();
    let mut out = BytesMut::new();
    for piece in data.chunks(chunk) {
        if decoder.push(piece, &mut out).is_err() {
            break;
        }
        assert!(decoder.pending() <= 3);
    }

    let encoded = encode_base64(data);
    let mut decoder = Base64Decoder::new();
    let mut out = BytesMut::new();
    for piece in encoded.as_bytes().chunks(chunk) {
        decoder.push(piece, &mut out).expect("valid base64");
    }
    assert_eq!(decoder.pending(), 0);
    assert_eq!(&out[..], data);
});
