//! Strict parsers for option values (numbers, durations, addresses).
//!
//! live555 reads numbers with `sscanf("%hu")`, which also takes `+5`, ` 5` and `5abc`
//! (as 5) and wraps `70000`. These parsers accept plain decimal digits only, so a typo
//! is reported instead of silently becoming another value.

use std::net::IpAddr;
use std::time::Duration;

/// Longest duration accepted by the timing options (one day).
pub(crate) const MAX_DURATION_SECS: u64 = 86_400;

/// A TCP port in 1..=65535, written as plain decimal digits.
pub(crate) fn port(text: &str) -> Option<u16> {
    digits(text)?.parse::<u16>().ok().filter(|&port| port > 0)
}

/// A port number or 0, as plain decimal digits.
pub(crate) fn port_or_zero(text: &str) -> Option<u16> {
    digits(text)?.parse::<u16>().ok()
}

/// An IPv4 multicast range `a.b.c.d/len` inside 224.0.0.0/4 (prefix 4..=32),
/// outside the link-local control block 224.0.0.0/24 (routers and IGMP use it).
/// Returns the network address (host bits cleared) and the prefix length.
pub(crate) fn multicast_range(text: &str) -> Option<(std::net::Ipv4Addr, u8)> {
    let (addr, len) = text.split_once('/')?;
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    let len: u8 = digits(len)?.parse().ok()?;
    if !(4..=32).contains(&len) {
        return None;
    }
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    let network = std::net::Ipv4Addr::from(u32::from(addr) & mask);
    let last = std::net::Ipv4Addr::from(u32::from(network) | !mask);
    let control = |a: std::net::Ipv4Addr| a.octets()[..3] == [224, 0, 0];
    if !network.is_multicast() || !last.is_multicast() || control(network) || control(last) {
        return None;
    }
    Some((network, len))
}

/// A whole number of seconds (0 allowed), as plain decimal digits that fit in 32 bits.
pub(crate) fn whole_seconds(text: &str) -> Option<u32> {
    digits(text)?.parse::<u32>().ok()
}

/// A duration in seconds: `N` or `N.F` (up to 9 fractional digits), at most
/// [`MAX_DURATION_SECS`].
pub(crate) fn seconds(text: &str) -> Option<Duration> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let whole = digits(whole)?.parse::<u64>().ok()?;
    let nanos = match fraction {
        None => 0,
        Some(fraction) => {
            let fraction = digits(fraction)?;
            if fraction.len() > 9 {
                return None;
            }
            // Right-pad to nine digits: "25" -> 250_000_000 ns.
            let scale = 10u32.checked_pow(9 - u32::try_from(fraction.len()).ok()?)?;
            fraction.parse::<u32>().ok()?.checked_mul(scale)?
        }
    };
    let duration = Duration::new(whole, nanos);
    (duration <= Duration::from_secs(MAX_DURATION_SECS)).then_some(duration)
}

/// An IPv4 or IPv6 address; an IPv6 address may be written in brackets (`[::1]`).
pub(crate) fn ip_address(text: &str) -> Option<IpAddr> {
    let inner = text
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(text);
    let address = inner.parse::<IpAddr>().ok()?;
    // Brackets only make sense around an IPv6 address.
    if inner.len() != text.len() && address.is_ipv4() {
        return None;
    }
    Some(address)
}

/// An IP network `address/prefix` (an address alone is one host); the address is
/// canonical (IPv4-mapped IPv6 as IPv4), the prefix at most the family's width.
pub(crate) fn ip_network(text: &str) -> Option<(IpAddr, u8)> {
    let (addr_text, prefix_text) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let address = ip_address(addr_text)?.to_canonical();
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix_text {
        None => max,
        Some(p) => digits(p)?.parse::<u8>().ok().filter(|&p| p <= max)?,
    };
    Some((address, prefix))
}

/// `text` if it is one or more ASCII decimal digits.
pub(crate) fn digits(text: &str) -> Option<&str> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn ports() {
        assert_eq!(port_or_zero("0"), Some(0));
        assert_eq!(port_or_zero("8080"), Some(8080));
        for bad in ["", "65536", "-1", "+0", "0x0", " 0"] {
            assert_eq!(port_or_zero(bad), None, "{bad:?}");
        }
        assert_eq!(port("1"), Some(1));
        assert_eq!(port("554"), Some(554));
        assert_eq!(port("65535"), Some(65535));
        assert_eq!(port("009554"), Some(9554));
        for bad in [
            "", "0", "65536", "70000", "-1", "+5", " 5", "5 ", "5abc", "0x10", "９",
        ] {
            assert_eq!(port(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn whole_second_values() {
        assert_eq!(whole_seconds("0"), Some(0));
        assert_eq!(whole_seconds("10"), Some(10));
        assert_eq!(whole_seconds("4294967295"), Some(u32::MAX));
        for bad in ["", "4294967296", "-1", "+1", "1.5", "1s", " 1"] {
            assert_eq!(whole_seconds(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn second_values() {
        assert_eq!(seconds("0"), Some(Duration::ZERO));
        assert_eq!(seconds("1"), Some(Duration::from_secs(1)));
        assert_eq!(seconds("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(seconds("2.25"), Some(Duration::from_millis(2250)));
        assert_eq!(seconds("0.000000001"), Some(Duration::from_nanos(1)));
        assert_eq!(seconds("86400"), Some(Duration::from_secs(86_400)));
        for bad in [
            "",
            ".",
            ".5",
            "5.",
            "1.0000000001",
            "86400.1",
            "86401",
            "-1",
            "+1",
            "1e3",
            "inf",
            "NaN",
            "1,5",
            "1.2.3",
            "99999999999999999999999",
        ] {
            assert_eq!(seconds(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(
            ip_address("127.0.0.1"),
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
        assert_eq!(ip_address("::1"), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(ip_address("[::]"), Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)));
        for bad in [
            "",
            "[]",
            "[127.0.0.1]",
            "localhost",
            "1.2.3",
            "::1%lo",
            "[::1",
            "::1]",
            "1.2.3.4:554",
        ] {
            assert_eq!(ip_address(bad), None, "{bad:?}");
        }
    }
}
