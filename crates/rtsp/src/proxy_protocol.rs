//! The PROXY protocol (HAProxy's, versions 1 and 2): the header a TCP load
//! balancer puts in front of a connection's bytes to say whom the connection is
//! really from, with no I/O.
//!
//! [`parse`] looks at the bytes received so far and answers either the header and
//! its length, or how many more bytes it needs at least ([`Parsed::Need`]). It
//! never asks for a byte past the header's end, so a reader that reads exactly
//! what it is asked for leaves the bytes after the header (an RTSP request, a TLS
//! ClientHello) unread in the socket for whoever comes next.
//!
//! Version 1 is one text line of at most 107 bytes; version 2 a 16-byte binary
//! head and up to [`MAX_V2_PAYLOAD`] bytes of addresses and TLVs (a bound of
//! ours: the protocol allows 65535). TLVs are checked for shape and skipped. A
//! `LOCAL` command (version 2), an `UNKNOWN` protocol (version 1) or an
//! unspecified or UNIX family (version 2) say "use the connection's own
//! addresses": [`ProxyHeader::Local`].
//!
//! [`signature`] tells whether bytes start like a PROXY header at all, for a
//! server that must refuse one from a peer it does not trust.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The first bytes of a version 1 header.
pub const V1_PREFIX: &[u8] = b"PROXY ";
/// A version 1 header is at most this long, CRLF included.
pub const V1_MAX_LEN: usize = 107;
/// The twelve bytes that start a version 2 header.
pub const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// A version 2 header's fixed part: signature, version and command, family and
/// transport, length.
pub const V2_HEAD_LEN: usize = 16;
/// The longest address and TLV part of a version 2 header accepted (the
/// protocol's field allows 65535; senders put a few hundred bytes there at most).
pub const MAX_V2_PAYLOAD: usize = 2048;
/// The shortest possible header of either version (`PROXY UNKNOWN\r\n`).
const MIN_LEN: usize = 15;

/// What a PROXY header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The connection was relayed for `source`, which connected to `destination`.
    Proxied {
        /// The client's address and port.
        source: SocketAddr,
        /// The address and port the client connected to (the balancer's).
        destination: SocketAddr,
    },
    /// Use the connection's own addresses (a health check of the balancer
    /// itself, or an address the header cannot carry).
    Local,
}

/// The outcome of [`parse`] on the bytes so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header, `len` bytes long (what follows is the connection's data).
    Complete {
        /// What it says.
        header: ProxyHeader,
        /// Its length in bytes.
        len: usize,
    },
    /// At least this many more bytes are needed, none of them past the header.
    Need(usize),
}

/// Why bytes are not a PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    /// Neither version's signature.
    #[error("no PROXY protocol signature")]
    NoSignature,
    /// A version 1 line longer than 107 bytes.
    #[error("PROXY v1 header longer than {V1_MAX_LEN} bytes")]
    V1TooLong,
    /// A version 1 line that is not `PROXY TCP4|TCP6|UNKNOWN ...\r\n`.
    #[error("malformed PROXY v1 header: {0}")]
    V1Malformed(&'static str),
    /// A version 2 version nibble other than 2.
    #[error("PROXY v2 header with version {0}")]
    V2Version(u8),
    /// A version 2 command other than LOCAL (0) or PROXY (1).
    #[error("PROXY v2 header with unknown command {0}")]
    V2Command(u8),
    /// A version 2 family or transport nibble outside the protocol's.
    #[error("PROXY v2 header with unknown family/transport byte {0:#04x}")]
    V2Family(u8),
    /// More address and TLV bytes than [`MAX_V2_PAYLOAD`].
    #[error("PROXY v2 header of {0} bytes after its head (at most {MAX_V2_PAYLOAD})")]
    V2TooLong(usize),
    /// Fewer bytes than the family's addresses take.
    #[error("PROXY v2 header of {len} bytes cannot hold its addresses ({need} bytes)")]
    V2Short {
        /// The header's length field.
        len: usize,
        /// What the addresses take.
        need: usize,
    },
    /// A TLV that runs past the header's end.
    #[error("PROXY v2 header with a TLV past its end")]
    V2Tlv,
}

/// Whether bytes start like a PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// Version 1's `PROXY `.
    V1,
    /// Version 2's twelve bytes.
    V2,
    /// A strict beginning of one of them: more bytes will tell.
    Partial,
    /// Neither.
    None,
}

/// Tells whether `buf` starts with a PROXY header's signature.
#[must_use]
pub fn signature(buf: &[u8]) -> Signature {
    if buf.starts_with(V1_PREFIX) {
        return Signature::V1;
    }
    if buf.starts_with(V2_SIGNATURE) {
        return Signature::V2;
    }
    let partial = |sig: &[u8]| buf.len() < sig.len() && sig.starts_with(buf);
    if buf.is_empty() || partial(V1_PREFIX) || partial(V2_SIGNATURE) {
        Signature::Partial
    } else {
        Signature::None
    }
}

/// Parses the PROXY header at the start of `buf` (of either version).
///
/// # Errors
///
/// `buf` does not start with a valid header; more bytes would not help.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    match signature(buf) {
        Signature::V1 => parse_v1(buf),
        Signature::V2 => parse_v2(buf),
        // Every header is at least MIN_LEN bytes: asking for that much never
        // reads past one.
        Signature::Partial => Ok(Parsed::Need(MIN_LEN - buf.len().min(MIN_LEN - 1))),
        Signature::None => Err(ProxyHeaderError::NoSignature),
    }
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        if buf.len() >= V1_MAX_LEN {
            return Err(ProxyHeaderError::V1TooLong);
        }
        // The line goes on: one byte at a time past the shortest header, as
        // the next one may be its last.
        return Ok(Parsed::Need(MIN_LEN.saturating_sub(buf.len()).max(1)));
    };
    let malformed = ProxyHeaderError::V1Malformed;
    let line = window[..lf]
        .strip_suffix(b"\r")
        .ok_or(malformed("the line does not end with CRLF"))?;
    let line =
        std::str::from_utf8(&line[V1_PREFIX.len()..]).map_err(|_| malformed("not ASCII text"))?;
    let len = lf + 1;
    let mut fields = line.split(' ');
    let header = match fields.next() {
        // Whatever follows UNKNOWN is ignored, as the protocol says.
        Some("UNKNOWN") => ProxyHeader::Local,
        Some(family @ ("TCP4" | "TCP6")) => {
            let mut next = || fields.next().ok_or(malformed("missing field"));
            let (src, dst) = (next()?, next()?);
            let (src_port, dst_port) = (next()?, next()?);
            if fields.next().is_some() {
                return Err(malformed("extra field"));
            }
            let ip = |text: &str| -> Result<IpAddr, ProxyHeaderError> {
                let ip = if family == "TCP4" {
                    text.parse::<Ipv4Addr>().map(IpAddr::V4)
                } else {
                    text.parse::<Ipv6Addr>().map(IpAddr::V6)
                };
                ip.map_err(|_| malformed("bad address for its protocol"))
            };
            ProxyHeader::Proxied {
                source: SocketAddr::new(ip(src)?, v1_port(src_port)?),
                destination: SocketAddr::new(ip(dst)?, v1_port(dst_port)?),
            }
        }
        _ => return Err(malformed("protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    Ok(Parsed::Complete { header, len })
}

/// A port as version 1 writes it: decimal digits, no sign, no leading zero.
fn v1_port(text: &str) -> Result<u16, ProxyHeaderError> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = text.len() > 1 && text.starts_with('0');
    match text.parse::<u16>() {
        Ok(port) if digits_only && !leading_zero => Ok(port),
        _ => Err(ProxyHeaderError::V1Malformed("bad port")),
    }
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    if buf.len() < V2_HEAD_LEN {
        return Ok(Parsed::Need(V2_HEAD_LEN - buf.len()));
    }
    let version = buf[12] >> 4;
    let command = buf[12] & 0x0f;
    if version != 2 {
        return Err(ProxyHeaderError::V2Version(version));
    }
    if command > 1 {
        return Err(ProxyHeaderError::V2Command(command));
    }
    let family = buf[13] >> 4;
    let transport = buf[13] & 0x0f;
    if family > 3 || transport > 2 {
        return Err(ProxyHeaderError::V2Family(buf[13]));
    }
    let payload_len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if payload_len > MAX_V2_PAYLOAD {
        return Err(ProxyHeaderError::V2TooLong(payload_len));
    }
    let len = V2_HEAD_LEN + payload_len;
    if buf.len() < len {
        return Ok(Parsed::Need(len - buf.len()));
    }
    let payload = &buf[V2_HEAD_LEN..len];
    let addresses_len = match family {
        1 => 12,
        2 => 36,
        3 => 216,
        _ => 0,
    };
    if payload_len < addresses_len {
        return Err(ProxyHeaderError::V2Short {
            len: payload_len,
            need: addresses_len,
        });
    }
    let (addresses, mut tlvs) = payload.split_at(addresses_len);
    // TLVs (type, 16-bit length, value) are skipped, but must fit.
    while !tlvs.is_empty() {
        let Some(&[_, hi, lo]) = tlvs.get(..3) else {
            return Err(ProxyHeaderError::V2Tlv);
        };
        let end = 3 + usize::from(u16::from_be_bytes([hi, lo]));
        tlvs = tlvs.get(end..).ok_or(ProxyHeaderError::V2Tlv)?;
    }
    let header = match (command, family) {
        // LOCAL: the balancer's own connection (a health check); the
        // addresses, if any, are to be ignored.
        (0, _) => ProxyHeader::Local,
        (_, 1) => v2_addresses::<4>(addresses),
        (_, 2) => v2_addresses::<16>(addresses),
        // Unspecified or UNIX: no IP address to use.
        _ => ProxyHeader::Local,
    };
    Ok(Parsed::Complete { header, len })
}

/// The source and destination of a version 2 INET (`N` = 4) or INET6 (16)
/// address block: both addresses, then both ports.
fn v2_addresses<const N: usize>(addresses: &[u8]) -> ProxyHeader
where
    IpAddr: From<[u8; N]>,
{
    let ip = |at: usize| {
        let mut a = [0u8; N];
        a.copy_from_slice(&addresses[at..at + N]);
        IpAddr::from(a)
    };
    let port = |at: usize| u16::from_be_bytes([addresses[at], addresses[at + 1]]);
    ProxyHeader::Proxied {
        source: SocketAddr::new(ip(0), port(2 * N)),
        destination: SocketAddr::new(ip(N), port(2 * N + 2)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> (ProxyHeader, usize) {
        match parse(buf) {
            Ok(Parsed::Complete { header, len }) => (header, len),
            other => panic!("{other:?} for {buf:?}"),
        }
    }

    fn proxied(source: &str, destination: &str) -> ProxyHeader {
        ProxyHeader::Proxied {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
        }
    }

    /// Feeds `buf` as a reader would that reads exactly what it is asked for:
    /// the header is found, and not one byte past it was asked for.
    fn read_exactly(buf: &[u8]) -> Result<(ProxyHeader, usize), ProxyHeaderError> {
        let mut have = 0;
        loop {
            match parse(&buf[..have])? {
                Parsed::Complete { header, len } => {
                    assert_eq!(len, have, "asked for bytes past the header");
                    return Ok((header, len));
                }
                Parsed::Need(n) => {
                    assert!(n > 0);
                    have += n;
                    assert!(have <= buf.len(), "asked past the end of {buf:?}");
                }
            }
        }
    }

    // The protocol's own examples (haproxy's proxy-protocol.txt, 2.1).
    #[test]
    fn version_1_examples_of_the_protocol() {
        let tcp4 = b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
        assert_eq!(
            complete(tcp4),
            (
                proxied("255.255.255.255:65535", "255.255.255.255:65535"),
                tcp4.len()
            )
        );
        let tcp6 = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        let max = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535";
        assert_eq!(complete(tcp6), (proxied(max, max), 104));
        let unknown = b"PROXY UNKNOWN\r\n";
        assert_eq!(complete(unknown), (ProxyHeader::Local, 15));
        let unknown_long = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        // The protocol's worst case, the longest header there is.
        assert_eq!(complete(unknown_long), (ProxyHeader::Local, V1_MAX_LEN));
        let example = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            complete(example),
            (proxied("192.168.0.1:56324", "192.168.0.11:443"), 47)
        );
        for header in [&tcp4[..], tcp6, unknown, unknown_long] {
            assert!(read_exactly(header).is_ok());
        }
    }

    /// What Debian's HAProxy 2.6 sends with `send-proxy` and `send-proxy-v2`
    /// for a client bound to 127.0.0.2 that connected to its frontends on
    /// 127.0.0.1:18554 and :18555 and wrote `OPTIONS` (captured with a listening
    /// socket as HAProxy's server).
    #[test]
    fn what_haproxy_sends() {
        let v1 = b"PROXY TCP4 127.0.0.2 127.0.0.1 40000 18554\r\nOPTIONS";
        assert_eq!(
            complete(v1),
            (proxied("127.0.0.2:40000", "127.0.0.1:18554"), 44)
        );
        assert_eq!(
            read_exactly(&v1[..44]),
            Ok((proxied("127.0.0.2:40000", "127.0.0.1:18554"), 44))
        );
        let v2: &[u8] =
            b"\r\n\r\n\x00\r\nQUIT\n!\x11\x00\x0c\x7f\x00\x00\x02\x7f\x00\x00\x01\x9cAH{OPTIONS";
        assert_eq!(
            complete(v2),
            (proxied("127.0.0.2:40001", "127.0.0.1:18555"), 28)
        );
        assert_eq!(
            read_exactly(&v2[..28]),
            Ok((proxied("127.0.0.2:40001", "127.0.0.1:18555"), 28))
        );
        // The protocol's LOCAL header (what `check-send-proxy` health checks
        // send): no address.
        let local: &[u8] = &[
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x20, 0x00,
            0x00, 0x00,
        ];
        assert_eq!(read_exactly(local), Ok((ProxyHeader::Local, 16)));
    }

    #[test]
    fn version_2_ipv6_tlvs_and_unix() {
        let mut v6 = V2_SIGNATURE.to_vec();
        v6.extend_from_slice(&[0x21, 0x21, 0x00, 36 + 8]);
        v6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&[0x04, 0xd2, 0x02, 0x2a]);
        // PP2_TYPE_ALPN "h2", PP2_TYPE_NOOP with no value.
        v6.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2', 0x04, 0x00, 0x00]);
        assert_eq!(
            read_exactly(&v6),
            Ok((proxied("[2001:db8::1]:1234", "[2001:db8::2]:554"), v6.len()))
        );
        // A TLV that says it is longer than what is left.
        let mut bad = v6.clone();
        let at = bad.len() - 2;
        bad[at] = 0x01;
        assert_eq!(parse(&bad), Err(ProxyHeaderError::V2Tlv));

        let mut unix = V2_SIGNATURE.to_vec();
        unix.extend_from_slice(&[0x21, 0x31, 0x00, 216]);
        unix.extend_from_slice(&[0u8; 216]);
        assert_eq!(read_exactly(&unix), Ok((ProxyHeader::Local, 232)));
        let mut unspec = V2_SIGNATURE.to_vec();
        unspec.extend_from_slice(&[0x21, 0x00, 0x00, 0x00]);
        assert_eq!(read_exactly(&unspec), Ok((ProxyHeader::Local, 16)));
    }

    #[test]
    fn bad_headers_are_refused_with_a_reason() {
        let err = |b: &[u8]| parse(b).expect_err("refused");
        assert_eq!(
            err(b"OPTIONS rtsp://x/ RTSP/1.0\r\n"),
            ProxyHeaderError::NoSignature
        );
        assert_eq!(err(b"\x16\x03\x01\x02\x00"), ProxyHeaderError::NoSignature);
        assert!(matches!(
            err(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),
            ProxyHeaderError::V1Malformed(_)
        ));
        for bad in [
            &b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \xff\r\n",
        ] {
            assert!(
                matches!(err(bad), ProxyHeaderError::V1Malformed(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(V1_MAX_LEN, b'x');
        assert_eq!(err(&long), ProxyHeaderError::V1TooLong);
        let head = |b12: u8, b13: u8, len: u16| {
            let mut v = V2_SIGNATURE.to_vec();
            v.push(b12);
            v.push(b13);
            v.extend_from_slice(&len.to_be_bytes());
            v
        };
        assert_eq!(err(&head(0x11, 0x11, 12)), ProxyHeaderError::V2Version(1));
        assert_eq!(err(&head(0x22, 0x11, 12)), ProxyHeaderError::V2Command(2));
        assert_eq!(err(&head(0x21, 0x41, 12)), ProxyHeaderError::V2Family(0x41));
        assert_eq!(err(&head(0x21, 0x13, 12)), ProxyHeaderError::V2Family(0x13));
        assert_eq!(
            err(&head(0x21, 0x11, 65535)),
            ProxyHeaderError::V2TooLong(65535)
        );
        let mut short = head(0x21, 0x11, 4);
        short.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(err(&short), ProxyHeaderError::V2Short { len: 4, need: 12 });
    }

    #[test]
    fn signatures_and_partial_input() {
        assert_eq!(signature(b""), Signature::Partial);
        assert_eq!(signature(b"PRO"), Signature::Partial);
        assert_eq!(signature(b"\r\n\r\n\0"), Signature::Partial);
        assert_eq!(signature(b"PROXY TCP4"), Signature::V1);
        assert_eq!(signature(V2_SIGNATURE), Signature::V2);
        assert_eq!(signature(b"PLAY"), Signature::None);
        assert_eq!(signature(b"\r\n\r\nOPTIONS"), Signature::None);
        assert_eq!(parse(b""), Ok(Parsed::Need(15)));
        assert_eq!(parse(b"PROX"), Ok(Parsed::Need(11)));
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4"), Ok(Parsed::Need(1)));
        assert_eq!(parse(&V2_SIGNATURE[..]), Ok(Parsed::Need(4)));
        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[0x21, 0x11, 0x00, 0x0c, 1, 2]);
        assert_eq!(parse(&v2), Ok(Parsed::Need(10)));
    }
}
