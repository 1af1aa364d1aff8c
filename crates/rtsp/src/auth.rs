//! Basic and Digest authentication (RFC 2617, and the RFC 2069 form that
//! live555 uses): challenge parsing and answering for clients, challenge
//! issuing and response checking for servers.

use std::fmt;

use base64::Engine as _;
use md5::{Digest as _, Md5};
use rand::RngCore as _;

use crate::util::hex_lower;

/// Most challenges read from one `WWW-Authenticate` value, and most
/// parameters read per challenge.
const MAX_ITEMS: usize = 32;

/// A user name and password. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

impl Credentials {
    /// Credentials from a user name and a password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// One challenge of a `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="..."`
    Basic {
        /// The realm (empty when missing).
        realm: String,
    },
    /// `Digest realm="...", nonce="..."[, ...]`
    Digest {
        /// The realm (empty when missing).
        realm: String,
        /// The server nonce.
        nonce: String,
        /// The opaque value to echo, if any.
        opaque: Option<String>,
        /// The algorithm as given (`MD5`, `MD5-sess`, ...), if any.
        algorithm: Option<String>,
        /// The offered qop values (`auth`, `auth-int`), possibly empty.
        qop: Vec<String>,
        /// `stale=true`: the nonce expired but the credentials were right.
        stale: bool,
    },
}

/// One `scheme param=value, ...` group of an authentication header.
struct AuthItem {
    scheme: String,
    params: Vec<(String, String)>,
}

impl AuthItem {
    /// The first value of parameter `name` (case-insensitive).
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits an authentication header value into scheme groups. Parameters may
/// be quoted (with backslash escapes) or bare, in any order, with any
/// spacing; a bare word not followed by `=` starts a new scheme.
fn lex_auth(value: &str) -> Vec<AuthItem> {
    let b = value.as_bytes();
    let mut items: Vec<AuthItem> = Vec::new();
    let mut i = 0;
    let is_delim = |c: u8| c == b',' || c == b'=' || c == b'"' || c.is_ascii_whitespace();
    let skip_ws = |i: &mut usize| {
        while b.get(*i).is_some_and(|c| c.is_ascii_whitespace()) {
            *i += 1;
        }
    };
    while i < b.len() {
        while b
            .get(i)
            .is_some_and(|&c| c == b',' || c.is_ascii_whitespace())
        {
            i += 1;
        }
        let start = i;
        while b.get(i).is_some_and(|&c| !is_delim(c)) {
            i += 1;
        }
        if i == start {
            // A stray '=' or '"': skip it.
            if i < b.len() {
                i += 1;
            }
            continue;
        }
        let word = &value[start..i];
        let mut j = i;
        skip_ws(&mut j);
        if b.get(j) == Some(&b'=') {
            j += 1;
            skip_ws(&mut j);
            let (param_value, next) = read_value(value, j);
            i = next;
            if let Some(item) = items.last_mut() {
                if item.params.len() < MAX_ITEMS {
                    item.params.push((word.to_owned(), param_value));
                }
            }
        } else {
            if items.len() >= MAX_ITEMS {
                break;
            }
            items.push(AuthItem {
                scheme: word.to_owned(),
                params: Vec::new(),
            });
        }
    }
    items
}

/// Reads a parameter value at byte `start`: a quoted string (unescaped) or
/// bare text up to a comma or whitespace. Returns the value and the index
/// after it.
fn read_value(s: &str, start: usize) -> (String, usize) {
    let b = s.as_bytes();
    if b.get(start) == Some(&b'"') {
        let mut out = String::new();
        let mut chars = s[start + 1..].char_indices();
        while let Some((k, c)) = chars.next() {
            match c {
                '"' => return (out, start + 1 + k + 1),
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        out.push(escaped);
                    }
                }
                c => out.push(c),
            }
        }
        (out, s.len())
    } else {
        let end = s[start..]
            .find(|c: char| c == ',' || c.is_whitespace())
            .map_or(s.len(), |k| start + k);
        (s[start..end].to_owned(), end)
    }
}

/// Parses the challenges of one `WWW-Authenticate` value. Several challenges
/// may share one value; unknown schemes and Digest challenges without a
/// nonce are skipped.
pub fn parse_challenges(header_value: &str) -> Vec<Challenge> {
    lex_auth(header_value)
        .into_iter()
        .filter_map(|item| {
            let realm = item.param("realm").unwrap_or_default().to_owned();
            if item.scheme.eq_ignore_ascii_case("Basic") {
                Some(Challenge::Basic { realm })
            } else if item.scheme.eq_ignore_ascii_case("Digest") {
                let nonce = item.param("nonce")?.to_owned();
                Some(Challenge::Digest {
                    realm,
                    nonce,
                    opaque: item.param("opaque").map(str::to_owned),
                    algorithm: item.param("algorithm").map(str::to_owned),
                    qop: item
                        .param("qop")
                        .map(|q| {
                            q.split(',')
                                .map(str::trim)
                                .filter(|v| !v.is_empty())
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default(),
                    stale: item
                        .param("stale")
                        .is_some_and(|s| s.eq_ignore_ascii_case("true")),
                })
            } else {
                None
            }
        })
        .collect()
}

/// The Digest algorithms this crate can compute.
fn algorithm_kind(algorithm: Option<&str>) -> Option<bool> {
    match algorithm {
        None => Some(false),
        Some(a) if a.eq_ignore_ascii_case("MD5") => Some(false),
        Some(a) if a.eq_ignore_ascii_case("MD5-sess") => Some(true),
        Some(_) => None,
    }
}

/// The challenge a [`ClientAuth`] currently answers.
#[derive(Clone, Debug)]
enum Active {
    Basic {
        realm: String,
    },
    Digest {
        realm: String,
        nonce: String,
        opaque: Option<String>,
        algorithm: Option<String>,
        sess: bool,
        qop_auth: bool,
        nc: u32,
        cnonce: String,
    },
}

/// Client side of authentication: answers `401 Unauthorized` challenges and
/// produces the `Authorization` header of later requests.
#[derive(Clone, Debug)]
pub struct ClientAuth {
    creds: Credentials,
    active: Option<Active>,
    /// `Authorization` values produced since the last challenge.
    sent_since_challenge: u32,
    /// Challenges that came back after we had answered with credentials
    /// (without `stale=true`), since the last apparent success.
    rejections: u32,
}

impl ClientAuth {
    /// Authentication with these credentials; nothing is sent before the
    /// first challenge.
    pub fn new(creds: Credentials) -> Self {
        ClientAuth {
            creds,
            active: None,
            sent_since_challenge: 0,
            rejections: 0,
        }
    }

    /// The credentials in use.
    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    /// Takes the `WWW-Authenticate` values of a 401. Prefers Digest (MD5,
    /// MD5-sess or no algorithm) over Basic.
    ///
    /// Returns `true` when a retry with credentials makes sense, `false` when
    /// no challenge is usable or the credentials were refused: the same realm
    /// and nonce (or the same Basic realm) were already answered and the
    /// challenge is not `stale=true`, or a fresh nonce was refused again
    /// right after a previous refusal.
    pub fn on_unauthorized<'a>(
        &mut self,
        www_authenticate: impl IntoIterator<Item = &'a str>,
    ) -> bool {
        let challenges: Vec<Challenge> = www_authenticate
            .into_iter()
            .flat_map(parse_challenges)
            .collect();
        let digest = challenges.iter().find(|c| {
            matches!(c, Challenge::Digest { algorithm, .. } if algorithm_kind(algorithm.as_deref()).is_some())
        });
        let basic = challenges
            .iter()
            .find(|c| matches!(c, Challenge::Basic { .. }));
        let Some(pick) = digest.or(basic) else {
            return false;
        };

        let answered = self.sent_since_challenge > 0;
        if answered {
            let stale = matches!(pick, Challenge::Digest { stale: true, .. });
            let same = match (&self.active, pick) {
                (Some(Active::Basic { realm }), Challenge::Basic { realm: r }) => realm == r,
                (
                    Some(Active::Digest { realm, nonce, .. }),
                    Challenge::Digest {
                        realm: r, nonce: n, ..
                    },
                ) => realm == r && nonce == n,
                _ => false,
            };
            if !stale {
                if same || self.rejections >= 1 {
                    return false;
                }
                self.rejections += 1;
            }
        }

        self.active = Some(match pick {
            Challenge::Basic { realm } => Active::Basic {
                realm: realm.clone(),
            },
            Challenge::Digest {
                realm,
                nonce,
                opaque,
                algorithm,
                qop,
                ..
            } => Active::Digest {
                realm: realm.clone(),
                nonce: nonce.clone(),
                opaque: opaque.clone(),
                algorithm: algorithm.clone(),
                sess: algorithm_kind(algorithm.as_deref()).unwrap_or(false),
                qop_auth: qop.iter().any(|q| q.eq_ignore_ascii_case("auth")),
                nc: 0,
                cnonce: random_hex(8),
            },
        });
        self.sent_since_challenge = 0;
        true
    }

    /// The `Authorization` value for a request, or `None` before any
    /// challenge. `uri` is the request URI exactly as sent.
    ///
    /// Digest follows RFC 2617: with `qop=auth` (when offered) a per-challenge
    /// random cnonce and an incrementing nonce count are sent; otherwise the
    /// RFC 2069 form. The opaque value and the algorithm are echoed.
    pub fn authorization(&mut self, method: &str, uri: &str) -> Option<String> {
        let value = match self.active.as_mut()? {
            Active::Basic { .. } => basic_authorization(&self.creds),
            Active::Digest {
                realm,
                nonce,
                opaque,
                algorithm,
                sess,
                qop_auth,
                nc,
                cnonce,
            } => {
                let qop = if *qop_auth {
                    *nc = nc.wrapping_add(1);
                    Some(format!("{:08x}", *nc))
                } else {
                    None
                };
                let response = digest_response(&DigestInput {
                    username: &self.creds.username,
                    realm,
                    password: &self.creds.password,
                    nonce,
                    method,
                    uri,
                    sess: *sess,
                    cnonce,
                    qop: qop.as_deref().map(|nc| ("auth", nc)),
                });
                let mut v = format!(
                    "Digest username={}, realm={}, nonce={}, uri={}, response=\"{}\"",
                    quote(&self.creds.username),
                    quote(realm),
                    quote(nonce),
                    quote(uri),
                    response
                );
                if let Some(alg) = algorithm {
                    v.push_str(", algorithm=");
                    v.push_str(alg);
                }
                if let Some(o) = opaque {
                    v.push_str(", opaque=");
                    v.push_str(&quote(o));
                }
                if let Some(nc) = &qop {
                    v.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
                }
                v
            }
        };
        self.sent_since_challenge = self.sent_since_challenge.saturating_add(1);
        if self.sent_since_challenge >= 2 {
            // A second request after the retry: the retry went through.
            self.rejections = 0;
        }
        Some(value)
    }

    /// Tells that a request carrying credentials succeeded, which clears the
    /// count of refusals (optional: a second `authorization` call after a
    /// challenge is taken as success too).
    pub fn on_success(&mut self) {
        self.rejections = 0;
    }

    /// Forgets the current challenge (for example when the credentials
    /// change); nothing is sent until the next challenge.
    pub fn reset(&mut self) {
        self.active = None;
        self.sent_since_challenge = 0;
        self.rejections = 0;
    }
}

/// `Basic base64(user:password)`.
pub fn basic_authorization(creds: &Credentials) -> String {
    let raw = format!("{}:{}", creds.username, creds.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw.as_bytes())
    )
}

/// A parsed `Authorization: Digest ...` value (server side).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestAuthorization {
    /// `username`
    pub username: String,
    /// `realm`
    pub realm: String,
    /// `nonce`
    pub nonce: String,
    /// `uri`, as the client signed it.
    pub uri: String,
    /// `response`, the hex digest.
    pub response: String,
    /// `qop`, if any.
    pub qop: Option<String>,
    /// `nc`, if any.
    pub nc: Option<String>,
    /// `cnonce`, if any.
    pub cnonce: Option<String>,
    /// `algorithm`, if any.
    pub algorithm: Option<String>,
    /// `opaque`, if any.
    pub opaque: Option<String>,
}

/// Parses an `Authorization` value of scheme Digest. `None` when the scheme
/// is not Digest or `username`, `realm`, `nonce`, `uri` or `response` is
/// missing.
pub fn parse_digest_authorization(value: &str) -> Option<DigestAuthorization> {
    let item = lex_auth(value).into_iter().next()?;
    if !item.scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let get = |n: &str| item.param(n).map(str::to_owned);
    Some(DigestAuthorization {
        username: get("username")?,
        realm: get("realm")?,
        nonce: get("nonce")?,
        uri: get("uri")?,
        response: get("response")?,
        qop: get("qop"),
        nc: get("nc"),
        cnonce: get("cnonce"),
        algorithm: get("algorithm"),
        opaque: get("opaque"),
    })
}

/// Checks a Digest response against the expected one for `method` and
/// `password` (comparison in constant time). Supports MD5 and MD5-sess,
/// with `qop=auth` or the RFC 2069 form. The caller checks that the realm,
/// nonce and user are its own.
pub fn verify_digest(auth: &DigestAuthorization, method: &str, password: &str) -> bool {
    let Some(sess) = algorithm_kind(auth.algorithm.as_deref()) else {
        return false;
    };
    let qop = match (&auth.qop, &auth.nc, &auth.cnonce) {
        (None, _, _) => None,
        (Some(q), Some(nc), Some(_)) if q.eq_ignore_ascii_case("auth") => {
            Some(("auth", nc.as_str()))
        }
        _ => return false,
    };
    let cnonce = auth.cnonce.as_deref().unwrap_or_default();
    if sess && cnonce.is_empty() {
        return false;
    }
    let expected = digest_response(&DigestInput {
        username: &auth.username,
        realm: &auth.realm,
        password,
        nonce: &auth.nonce,
        method,
        uri: &auth.uri,
        sess,
        cnonce,
        qop,
    });
    constant_time_eq(
        expected.as_bytes(),
        auth.response.to_ascii_lowercase().as_bytes(),
    )
}

/// A fresh random nonce: 32 lowercase hex digits.
pub fn new_nonce() -> String {
    random_hex(16)
}

/// `Digest realm="<realm>", nonce="<nonce>"` (RFC 2069 style, as live555).
pub fn digest_challenge(realm: &str, nonce: &str) -> String {
    format!("Digest realm={}, nonce={}", quote(realm), quote(nonce))
}

/// The inputs of a Digest response computation.
struct DigestInput<'a> {
    username: &'a str,
    realm: &'a str,
    password: &'a str,
    nonce: &'a str,
    method: &'a str,
    uri: &'a str,
    /// MD5-sess.
    sess: bool,
    cnonce: &'a str,
    /// `(qop, nc)` for the RFC 2617 form; `None` for the RFC 2069 form.
    qop: Option<(&'a str, &'a str)>,
}

/// The lowercase hex Digest response.
fn digest_response(d: &DigestInput<'_>) -> String {
    let mut ha1 = md5_hex(&[d.username, d.realm, d.password]);
    if d.sess {
        ha1 = md5_hex(&[&ha1, d.nonce, d.cnonce]);
    }
    let ha2 = md5_hex(&[d.method, d.uri]);
    match d.qop {
        Some((qop, nc)) => md5_hex(&[&ha1, d.nonce, nc, d.cnonce, qop, &ha2]),
        None => md5_hex(&[&ha1, d.nonce, &ha2]),
    }
}

/// MD5 of the parts joined by `:`, as lowercase hex.
fn md5_hex(parts: &[&str]) -> String {
    let mut h = Md5::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(p.as_bytes());
    }
    hex_lower(&h.finalize())
}

/// `n` random bytes as lowercase hex.
fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex_lower(&bytes)
}

/// A quoted-string with `"` and `\` escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The credentials of an `Authorization: Basic ...` value (server side).
/// `None` when the scheme is not Basic or the value is not base64 of
/// `user:password` in UTF-8.
pub fn parse_basic_authorization(value: &str) -> Option<Credentials> {
    let (scheme, rest) = value.trim().split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("Basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim().as_bytes())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some(Credentials::new(user, pass))
}

/// `Basic realm="<realm>"`.
pub fn basic_challenge(realm: &str) -> String {
    format!("Basic realm={}", quote(realm))
}

/// Issues server nonces that carry their own issue time and a MAC, so a
/// server can check them without keeping any per-client state: a nonce is
/// 16 hex digits of a time stamp followed by 32 hex digits of
/// MD5(key:stamp).
#[derive(Clone)]
pub struct NonceSigner {
    key: String,
}

impl NonceSigner {
    /// A signer with a fresh random key.
    pub fn new() -> NonceSigner {
        NonceSigner {
            key: random_hex(16),
        }
    }

    /// A nonce for time stamp `stamp` (the caller's clock, in seconds).
    pub fn issue(&self, stamp: u64) -> String {
        let stamp = format!("{stamp:016x}");
        let mac = md5_hex(&[&self.key, &stamp]);
        format!("{stamp}{mac}")
    }

    /// The time stamp of a nonce this signer issued; `None` for anything else.
    pub fn verify(&self, nonce: &str) -> Option<u64> {
        if nonce.len() != 48 || !nonce.is_char_boundary(16) {
            return None;
        }
        let (stamp, mac) = nonce.split_at(16);
        let expected = md5_hex(&[&self.key, stamp]);
        if !constant_time_eq(expected.as_bytes(), mac.to_ascii_lowercase().as_bytes()) {
            return None;
        }
        u64::from_str_radix(stamp, 16).ok()
    }
}

impl Default for NonceSigner {
    fn default() -> Self {
        NonceSigner::new()
    }
}

impl fmt::Debug for NonceSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceSigner { key: <redacted> }")
    }
}

/// Equality whose time does not depend on where the inputs differ (for
/// passwords and digests).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mufasa() -> Credentials {
        Credentials::new("Mufasa", "Circle Of Life")
    }

    #[test]
    fn basic_authorization_round_trips_and_rejects_other_schemes() {
        let creds = Credentials::new("Aladdin", "open sesame");
        assert_eq!(
            basic_authorization(&creds),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(
            parse_basic_authorization("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            Some(creds.clone())
        );
        assert_eq!(
            parse_basic_authorization("basic   QWxhZGRpbjpvcGVuIHNlc2FtZQ== "),
            Some(creds)
        );
        // A password may hold ':'; the user may not.
        assert_eq!(
            parse_basic_authorization(&basic_authorization(&Credentials::new("u", "a:b"))),
            Some(Credentials::new("u", "a:b"))
        );
        for bad in [
            "Digest username=\"x\"",
            "Basic",
            "Basic !!!",
            "Basic bm9jb2xvbg==",
            "Basic /w==",
            "",
        ] {
            assert_eq!(parse_basic_authorization(bad), None, "{bad:?}");
        }
        assert_eq!(basic_challenge("r\"x"), "Basic realm=\"r\\\"x\"");
    }

    #[test]
    fn signed_nonces_carry_their_time_and_cannot_be_forged() {
        let signer = NonceSigner::new();
        let nonce = signer.issue(12345);
        assert_eq!(nonce.len(), 48);
        assert_eq!(signer.verify(&nonce), Some(12345));
        // Another server's nonce, a changed stamp, junk.
        assert_eq!(NonceSigner::new().verify(&nonce), None);
        let mut forged = nonce.clone();
        forged.replace_range(0..16, &format!("{:016x}", 99999));
        assert_eq!(signer.verify(&forged), None);
        for junk in ["", "abc", &"0".repeat(48), &"é".repeat(24)] {
            assert_eq!(signer.verify(junk), None, "{junk:?}");
        }
        assert!(!format!("{signer:?}").contains(&signer.key));
    }

    #[test]
    fn credentials_debug_redacts() {
        let s = format!("{:?}", Credentials::new("bob", "hunter2"));
        assert!(s.contains("bob"));
        assert!(s.contains("<redacted>"));
        assert!(!s.contains("hunter2"));
    }

    #[test]
    fn rfc2617_mufasa_vector() {
        // RFC 2617 section 3.5.
        let resp = digest_response(&DigestInput {
            username: "Mufasa",
            realm: "testrealm@host.com",
            password: "Circle Of Life",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            method: "GET",
            uri: "/dir/index.html",
            sess: false,
            cnonce: "0a4f113b",
            qop: Some(("auth", "00000001")),
        });
        assert_eq!(resp, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc2617_vector_through_server_parse() {
        let value = r#"Digest username="Mufasa",
                 realm="testrealm@host.com",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 uri="/dir/index.html",
                 qop=auth,
                 nc=00000001,
                 cnonce="0a4f113b",
                 response="6629fae49393a05397450978507c4ef1",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
        let a = parse_digest_authorization(value).unwrap();
        assert_eq!(a.username, "Mufasa");
        assert_eq!(a.qop.as_deref(), Some("auth"));
        assert_eq!(a.nc.as_deref(), Some("00000001"));
        assert_eq!(
            a.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        assert!(verify_digest(&a, "GET", "Circle Of Life"));
        assert!(!verify_digest(&a, "GET", "Circle of Life"));
        assert!(!verify_digest(&a, "POST", "Circle Of Life"));
        let mut upper = a.clone();
        upper.response = upper.response.to_ascii_uppercase();
        assert!(verify_digest(&upper, "GET", "Circle Of Life"));
        let mut missing_nc = a.clone();
        missing_nc.nc = None;
        assert!(!verify_digest(&missing_nc, "GET", "Circle Of Life"));
        let mut int = a;
        int.qop = Some("auth-int".into());
        assert!(!verify_digest(&int, "GET", "Circle Of Life"));
    }

    #[test]
    fn rfc2069_form() {
        // MD5(MD5(user:realm:pass):nonce:MD5(method:uri)), checked against an
        // independent implementation (Python hashlib).
        let resp = digest_response(&DigestInput {
            username: "Mufasa",
            realm: "testrealm@host.com",
            password: "CircleOfLife",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            method: "GET",
            uri: "/dir/index.html",
            sess: false,
            cnonce: "",
            qop: None,
        });
        assert_eq!(resp, RFC2069_EXPECTED);
        let a = parse_digest_authorization(&format!(
            r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", response="{RFC2069_EXPECTED}""#
        ))
        .unwrap();
        assert!(verify_digest(&a, "GET", "CircleOfLife"));
    }

    const RFC2069_EXPECTED: &str = "1949323746fe6a43ef61f9606e7febea";

    #[test]
    fn md5_sess() {
        let mut a = DigestAuthorization {
            username: "u".into(),
            realm: "r".into(),
            nonce: "n".into(),
            uri: "rtsp://h/s".into(),
            response: String::new(),
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            cnonce: Some("c".into()),
            algorithm: Some("MD5-sess".into()),
            opaque: None,
        };
        let ha1 = md5_hex(&[&md5_hex(&["u", "r", "p"]), "n", "c"]);
        let ha2 = md5_hex(&["DESCRIBE", "rtsp://h/s"]);
        a.response = md5_hex(&[&ha1, "n", "00000001", "c", "auth", &ha2]);
        assert!(verify_digest(&a, "DESCRIBE", "p"));
        a.algorithm = Some("SHA-256".into());
        assert!(!verify_digest(&a, "DESCRIBE", "p"));
    }

    #[test]
    fn challenges_several_in_one_value_odd_spacing() {
        let v = r#"Basic realm="cam" ,Digest  nonce = "abc" ,realm="R, with comma",qop="auth,auth-int", algorithm=MD5, stale=TRUE, opaque="op", Negotiate, Digest realm="x""#;
        let c = parse_challenges(v);
        assert_eq!(
            c,
            vec![
                Challenge::Basic {
                    realm: "cam".into()
                },
                Challenge::Digest {
                    realm: "R, with comma".into(),
                    nonce: "abc".into(),
                    opaque: Some("op".into()),
                    algorithm: Some("MD5".into()),
                    qop: vec!["auth".into(), "auth-int".into()],
                    stale: true,
                },
            ]
        );
        // Unquoted values, escapes, unknown scheme with a token68.
        let c = parse_challenges(
            r#"Bearer abc==, Digest realm=LIVE, nonce=n1, stale=false, Basic realm="a\"b""#,
        );
        assert_eq!(
            c,
            vec![
                Challenge::Digest {
                    realm: "LIVE".into(),
                    nonce: "n1".into(),
                    opaque: None,
                    algorithm: None,
                    qop: vec![],
                    stale: false,
                },
                Challenge::Basic {
                    realm: "a\"b".into()
                },
            ]
        );
        assert!(parse_challenges("").is_empty());
        assert!(parse_challenges("=,\"\"=").is_empty());
        assert!(parse_challenges("Digest realm=\"unterminated").is_empty());
    }

    #[test]
    fn live555_challenge_rfc2069_answer() {
        let mut auth = ClientAuth::new(Credentials::new("viewer", "secret"));
        assert_eq!(auth.authorization("DESCRIBE", "rtsp://h/s"), None);
        let chal = digest_challenge(
            "LIVE555 Streaming Media",
            "0123456789abcdef0123456789abcdef",
        );
        assert!(auth.on_unauthorized([chal.as_str()]));
        let value = auth.authorization("DESCRIBE", "rtsp://h/s").unwrap();
        assert!(!value.contains("qop"));
        assert!(!value.contains("cnonce"));
        let a = parse_digest_authorization(&value).unwrap();
        assert_eq!(a.realm, "LIVE555 Streaming Media");
        assert_eq!(a.uri, "rtsp://h/s");
        assert!(verify_digest(&a, "DESCRIBE", "secret"));
        assert!(!verify_digest(&a, "DESCRIBE", "wrong"));
    }

    #[test]
    fn qop_auth_answer_counts_nonces() {
        let mut auth = ClientAuth::new(mufasa());
        assert!(auth.on_unauthorized([
            r#"Basic realm="x""#,
            r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        ]));
        let v1 = auth.authorization("GET", "/dir/index.html").unwrap();
        let a1 = parse_digest_authorization(&v1).unwrap();
        assert_eq!(a1.qop.as_deref(), Some("auth"));
        assert_eq!(a1.nc.as_deref(), Some("00000001"));
        assert_eq!(
            a1.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        assert!(verify_digest(&a1, "GET", "Circle Of Life"));
        let a2 = parse_digest_authorization(&auth.authorization("GET", "/x").unwrap()).unwrap();
        assert_eq!(a2.nc.as_deref(), Some("00000002"));
        assert_eq!(a2.cnonce, a1.cnonce);
        assert!(verify_digest(&a2, "GET", "Circle Of Life"));

        // With the cnonce fixed, the RFC 2617 vector comes out exactly.
        let mut auth = ClientAuth::new(mufasa());
        auth.on_unauthorized([r#"Digest realm="testrealm@host.com", qop="auth", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#]);
        if let Some(Active::Digest { cnonce, .. }) = auth.active.as_mut() {
            *cnonce = "0a4f113b".into();
        }
        let v = auth.authorization("GET", "/dir/index.html").unwrap();
        assert!(
            v.contains(r#"response="6629fae49393a05397450978507c4ef1""#),
            "{v}"
        );
    }

    #[test]
    fn basic_answer() {
        let creds = Credentials::new("Aladdin", "open sesame");
        assert_eq!(
            basic_authorization(&creds),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        let mut auth = ClientAuth::new(creds);
        assert!(auth.on_unauthorized([r#"Basic realm="WallyWorld""#]));
        assert_eq!(
            auth.authorization("OPTIONS", "*").as_deref(),
            Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
        );
        // Refused again with the same realm: wrong credentials.
        assert!(!auth.on_unauthorized([r#"Basic realm="WallyWorld""#]));
    }

    #[test]
    fn gives_up_on_same_nonce_retries_on_stale() {
        let mut auth = ClientAuth::new(mufasa());
        let chal = r#"Digest realm="r", nonce="n1""#;
        assert!(auth.on_unauthorized([chal]));
        // Before answering, the same challenge again is fine.
        assert!(auth.on_unauthorized([chal]));
        auth.authorization("DESCRIBE", "rtsp://h/").unwrap();
        assert!(!auth.on_unauthorized([chal]));
        assert!(auth.on_unauthorized([r#"Digest realm="r", nonce="n1", stale=true"#]));
        auth.authorization("DESCRIBE", "rtsp://h/").unwrap();
        assert!(auth.on_unauthorized([r#"Digest realm="r", nonce="n2", stale="true""#]));
    }

    #[test]
    fn fresh_nonce_per_failure_is_bounded() {
        // live555 answers every failure with a fresh nonce.
        let mut auth = ClientAuth::new(mufasa());
        assert!(auth.on_unauthorized([r#"Digest realm="r", nonce="n1""#]));
        auth.authorization("DESCRIBE", "rtsp://h/").unwrap();
        assert!(auth.on_unauthorized([r#"Digest realm="r", nonce="n2""#]));
        auth.authorization("DESCRIBE", "rtsp://h/").unwrap();
        assert!(!auth.on_unauthorized([r#"Digest realm="r", nonce="n3""#]));
    }

    #[test]
    fn new_nonce_after_success_is_accepted() {
        let mut auth = ClientAuth::new(mufasa());
        assert!(auth.on_unauthorized([r#"Digest realm="r", nonce="n1""#]));
        auth.authorization("DESCRIBE", "rtsp://h/").unwrap();
        // The retry got through; later requests carry the header too.
        auth.authorization("SETUP", "rtsp://h/t1").unwrap();
        auth.authorization("PLAY", "rtsp://h/").unwrap();
        // A reconnection gets a new nonce: one retry is allowed...
        assert!(auth.on_unauthorized([r#"Digest realm="r", nonce="n2""#]));
        auth.authorization("DESCRIBE", "rtsp://h/").unwrap();
        auth.authorization("SETUP", "rtsp://h/t1").unwrap();
        assert!(auth.on_unauthorized([r#"Digest realm="r", nonce="n3""#]));
    }

    #[test]
    fn unusable_challenges() {
        let mut auth = ClientAuth::new(mufasa());
        assert!(!auth.on_unauthorized(std::iter::empty()));
        assert!(!auth.on_unauthorized([r#"Digest realm="r", nonce="n", algorithm=SHA-256"#]));
        assert!(!auth.on_unauthorized(["Negotiate abc"]));
        assert_eq!(auth.authorization("OPTIONS", "*"), None);
        // SHA-256 Digest alongside Basic: Basic is used.
        assert!(auth.on_unauthorized([
            r#"Digest realm="r", nonce="n", algorithm=SHA-256, Basic realm="b""#
        ]));
        assert!(auth
            .authorization("OPTIONS", "*")
            .unwrap()
            .starts_with("Basic "));
    }

    #[test]
    fn server_side_helpers() {
        let n = new_nonce();
        assert_eq!(n.len(), 32);
        assert!(n
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_ne!(n, new_nonce());
        assert_eq!(
            digest_challenge("LIVE555 Streaming Media", "abc"),
            r#"Digest realm="LIVE555 Streaming Media", nonce="abc""#
        );
        assert_eq!(parse_digest_authorization("Basic abc"), None);
        assert_eq!(
            parse_digest_authorization(r#"Digest username="u", realm="r""#),
            None
        );
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn quoting_round_trips() {
        let mut auth = ClientAuth::new(Credentials::new(r#"we"ird\user"#, "p"));
        assert!(auth.on_unauthorized([r#"Digest realm="r", nonce="n""#]));
        let a = parse_digest_authorization(&auth.authorization("OPTIONS", "*").unwrap()).unwrap();
        assert_eq!(a.username, r#"we"ird\user"#);
        assert!(verify_digest(&a, "OPTIONS", "p"));
    }
}
