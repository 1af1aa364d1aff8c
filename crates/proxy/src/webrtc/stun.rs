//! Which WebRTC session a datagram from an unknown address is for: the local
//! ICE ufrag in a STUN Binding request's USERNAME (RFC 8445 7.2.2: `ours:theirs`).
//! Sans-IO; every length is checked against the datagram.

/// STUN's magic cookie (RFC 5389 6).
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const BINDING_REQUEST: u16 = 0x0001;
const ATTR_USERNAME: u16 = 0x0006;
const HEADER_LEN: usize = 20;

/// The local ufrag a STUN Binding request is addressed to, or None if the
/// datagram is not one (or is malformed).
pub fn binding_request_ufrag(datagram: &[u8]) -> Option<&str> {
    if datagram.len() < HEADER_LEN || datagram[0] & 0xc0 != 0 {
        return None;
    }
    let kind = u16::from_be_bytes([datagram[0], datagram[1]]);
    let body_len = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    if kind != BINDING_REQUEST || datagram[4..8] != MAGIC_COOKIE {
        return None;
    }
    let body = datagram.get(HEADER_LEN..HEADER_LEN + body_len)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let attr = u16::from_be_bytes([body[at], body[at + 1]]);
        let len = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let value = body.get(at + 4..at + 4 + len)?;
        if attr == ATTR_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            let (ours, _theirs) = username.split_once(':')?;
            return (!ours.is_empty()).then_some(ours);
        }
        // Attributes are padded to 4 bytes.
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, value) in attrs {
            body.extend_from_slice(&kind.to_be_bytes());
            body.extend_from_slice(&(value.len() as u16).to_be_bytes());
            body.extend_from_slice(value);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        let mut d = Vec::new();
        d.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
        d.extend_from_slice(&(body.len() as u16).to_be_bytes());
        d.extend_from_slice(&MAGIC_COOKIE);
        d.extend_from_slice(&[7; 12]);
        d.extend_from_slice(&body);
        d
    }

    #[test]
    fn the_local_ufrag_of_a_binding_request() {
        let d = request(&[(0x8022, b"soft"), (ATTR_USERNAME, b"abcd:efgh")]);
        assert_eq!(binding_request_ufrag(&d), Some("abcd"));
    }

    #[test]
    fn anything_else_is_none() {
        assert_eq!(binding_request_ufrag(b""), None);
        // RTP/DTLS first bytes.
        assert_eq!(binding_request_ufrag(&[0x80; 40]), None);
        assert_eq!(binding_request_ufrag(&[22; 40]), None);
        // No USERNAME, an empty ufrag, no colon.
        assert_eq!(binding_request_ufrag(&request(&[])), None);
        assert_eq!(
            binding_request_ufrag(&request(&[(ATTR_USERNAME, b":x")])),
            None
        );
        assert_eq!(
            binding_request_ufrag(&request(&[(ATTR_USERNAME, b"x")])),
            None
        );
        // A length past the end.
        let mut d = request(&[(ATTR_USERNAME, b"abcd:efgh")]);
        d.truncate(d.len() - 4);
        assert_eq!(binding_request_ufrag(&d), None);
        let mut d = request(&[(ATTR_USERNAME, b"abcd:efgh")]);
        d[23] = 200;
        assert_eq!(binding_request_ufrag(&d), None);
    }
}
