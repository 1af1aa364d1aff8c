//! Feeds arbitrary text to the authentication parsers: WWW-Authenticate
//! challenges (and the client answering them) and Digest Authorization
//! values (and their verification). No panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtsp::auth::{parse_challenges, parse_digest_authorization, verify_digest, ClientAuth, Credentials};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let _ = parse_challenges(&s);
    let mut client = ClientAuth::new(Credentials::new("user", "pass"));
    if client.on_unauthorized(s.split('\n')) {
        assert!(client.authorization("DESCRIBE", "rtsp://127.0.0.1/s").is_some());
        // Answering the same challenge twice means wrong credentials.
        let _ = client.on_unauthorized(s.split('\n'));
    }
    if let Some(auth) = parse_digest_authorization(&s) {
        let _ = verify_digest(&auth, "DESCRIBE", "pass");
    }
});
