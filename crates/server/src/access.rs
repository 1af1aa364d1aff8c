//! Who may use the server: the users of `-C` (clients) or `-U` (REGISTER), checked
//! per request. Sans-IO: a request, whether its connection is TLS, and the time in;
//! the user's name or the 401 to answer out.
//!
//! - Digest (RFC 2617 with `qop=auth`, or the RFC 2069 form live555 and older
//!   clients use; MD5 or MD5-sess) always; Basic only over TLS, or on plain
//!   connections when explicitly allowed (`--client-basic`), since it shows the
//!   password to anyone on the path.
//! - Nonces are signed and stamped ([`rtsp::auth::NonceSigner`]), so no state is
//!   kept per client and a flood of 401s costs no memory. A nonce is good for
//!   [`NONCE_LIFETIME`] on requests that open something; after that the client
//!   gets a fresh one with `stale=TRUE` and answers again without asking its user.
//!   In-session requests (keep-alives, TEARDOWN) of a playing client accept an
//!   older nonce of ours, so a long session is never cut by nonce expiry.
//! - Passwords are compared in constant time and never logged; a failure is
//!   logged with the user name it claimed and the peer address only.

use std::time::{Duration, Instant};

use rtsp::auth::{
    basic_challenge, constant_time_eq, digest_challenge, parse_basic_authorization,
    parse_digest_authorization, verify_digest, Credentials, NonceSigner,
};
use rtsp::{Request, Response};

/// The realm we announce.
pub const REALM: &str = "rtsp-proxy";
/// How long a nonce opens new things (DESCRIBE, SETUP of a new session...).
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// Why a request was refused (for the log line; the client only sees 401).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no credentials")]
    Missing,
    #[error("credentials in a form we do not accept")]
    Malformed,
    #[error("Basic credentials on a connection without TLS")]
    BasicNotAllowed,
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    #[error("wrong password for user {0:?}")]
    WrongPassword(String),
    #[error("a nonce we did not issue, or for another realm")]
    ForeignNonce,
    #[error("an expired nonce")]
    StaleNonce,
}

/// The refusal and the 401 to send for it.
#[derive(Debug, PartialEq)]
pub struct Challenge {
    pub refusal: Refusal,
    pub response: Box<Response>,
}

/// A set of users and how they may prove who they are.
#[derive(Debug)]
pub struct AccessControl {
    users: Vec<Credentials>,
    /// Basic is accepted on connections without TLS too.
    basic_in_clear: bool,
    signer: NonceSigner,
    /// Nonce time stamps count seconds from here.
    epoch: Instant,
}

impl AccessControl {
    /// `None` when there are no users: everyone may come in.
    pub fn new(users: Vec<Credentials>, basic_in_clear: bool) -> Option<AccessControl> {
        if users.is_empty() {
            return None;
        }
        Some(AccessControl {
            users,
            basic_in_clear,
            signer: NonceSigner::new(),
            epoch: Instant::now(),
        })
    }

    /// Checks `req`. `secure`: its connection is TLS. `in_session`: it is for a
    /// session that already exists (an older nonce of ours is then accepted).
    /// Returns the user's name, or the 401 to answer.
    pub fn check(
        &self,
        req: &Request,
        secure: bool,
        in_session: bool,
        now: Instant,
    ) -> Result<String, Challenge> {
        let basic_ok = secure || self.basic_in_clear;
        let refusal = match req.header("Authorization") {
            None => Refusal::Missing,
            Some(value) => match self.verify(value, req.method.as_str(), basic_ok, in_session, now)
            {
                Ok(user) => return Ok(user),
                Err(r) => r,
            },
        };
        Err(Challenge {
            response: Box::new(self.unauthorized(basic_ok, refusal == Refusal::StaleNonce, now)),
            refusal,
        })
    }

    fn verify(
        &self,
        value: &str,
        method: &str,
        basic_ok: bool,
        in_session: bool,
        now: Instant,
    ) -> Result<String, Refusal> {
        let scheme = value
            .trim_start()
            .split(char::is_whitespace)
            .next()
            .unwrap_or("");
        if scheme.eq_ignore_ascii_case("Basic") {
            if !basic_ok {
                return Err(Refusal::BasicNotAllowed);
            }
            return self.basic_user(value);
        }
        let auth = parse_digest_authorization(value).ok_or(Refusal::Malformed)?;
        if auth.realm != REALM {
            return Err(Refusal::ForeignNonce);
        }
        let stamp = self
            .signer
            .verify(&auth.nonce)
            .ok_or(Refusal::ForeignNonce)?;
        let user = self.user(&auth.username)?;
        if !verify_digest(&auth, method, &user.password) {
            return Err(Refusal::WrongPassword(auth.username.clone()));
        }
        let age = self.stamp(now).saturating_sub(stamp);
        if age > NONCE_LIFETIME.as_secs() && !in_session {
            return Err(Refusal::StaleNonce);
        }
        Ok(user.username.clone())
    }

    /// An HTTP request's `Authorization` value for the same users (WebRTC's
    /// WHEP requests): Basic only, as an HTTP page can send it (the WHEP port
    /// has no nonce exchange). Returns the user's name.
    pub fn check_basic(&self, authorization: Option<&str>) -> Result<String, Refusal> {
        self.basic_user(authorization.ok_or(Refusal::Missing)?)
    }

    fn basic_user(&self, value: &str) -> Result<String, Refusal> {
        let given = parse_basic_authorization(value).ok_or(Refusal::Malformed)?;
        let user = self.user(&given.username)?;
        if constant_time_eq(user.password.as_bytes(), given.password.as_bytes()) {
            Ok(user.username.clone())
        } else {
            Err(Refusal::WrongPassword(given.username))
        }
    }

    fn user(&self, name: &str) -> Result<&Credentials, Refusal> {
        self.users
            .iter()
            .find(|u| u.username == name)
            .ok_or_else(|| Refusal::UnknownUser(name.to_owned()))
    }

    fn stamp(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    /// `401 Unauthorized` with a fresh Digest challenge (and a Basic one where
    /// Basic is accepted).
    fn unauthorized(&self, basic_ok: bool, stale: bool, now: Instant) -> Response {
        let mut digest = digest_challenge(REALM, &self.signer.issue(self.stamp(now)));
        if stale {
            digest.push_str(", stale=TRUE");
        }
        let mut resp = Response::new(401).with_header("WWW-Authenticate", digest);
        if basic_ok {
            resp.headers
                .append("WWW-Authenticate", basic_challenge(REALM));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use rtsp::auth::{basic_authorization, ClientAuth};
    use rtsp::Method;

    use super::*;

    fn control(basic_in_clear: bool) -> AccessControl {
        AccessControl::new(
            vec![
                Credentials::new("viewer", "s3cret"),
                Credentials::new("admin", "pa:ss word"),
            ],
            basic_in_clear,
        )
        .expect("users")
    }

    fn request(method: Method, authorization: Option<&str>) -> Request {
        let mut req = Request::new(method, "rtsp://127.0.0.1:8554/proxyStream");
        req.headers.set("CSeq", "2");
        if let Some(a) = authorization {
            req.headers.set("Authorization", a);
        }
        req
    }

    /// Answers a 401 as a real client would (our own back-end client code).
    fn answer(resp: &Response, creds: Credentials, method: &str, uri: &str) -> String {
        let mut client = ClientAuth::new(creds);
        assert!(client.on_unauthorized(resp.headers.get_all("WWW-Authenticate")));
        client
            .authorization(method, uri)
            .expect("an Authorization value")
    }

    #[test]
    fn nobody_configured_means_no_control() {
        assert!(AccessControl::new(Vec::new(), false).is_none());
    }

    #[test]
    fn a_request_without_credentials_gets_a_digest_challenge_only_in_clear() {
        let ac = control(false);
        let now = Instant::now();
        let err = ac
            .check(&request(Method::Describe, None), false, false, now)
            .expect_err("401");
        assert_eq!(err.refusal, Refusal::Missing);
        assert_eq!(err.response.status, 401);
        let offered: Vec<&str> = err.response.headers.get_all("WWW-Authenticate").collect();
        assert_eq!(offered.len(), 1, "{offered:?}");
        assert!(offered[0].starts_with("Digest realm=\"rtsp-proxy\", nonce=\""));
        // Over TLS Basic is offered too.
        let err = ac
            .check(&request(Method::Describe, None), true, false, now)
            .expect_err("401");
        let offered: Vec<&str> = err.response.headers.get_all("WWW-Authenticate").collect();
        assert_eq!(offered.len(), 2);
        assert_eq!(offered[1], "Basic realm=\"rtsp-proxy\"");
    }

    #[test]
    fn digest_answers_are_accepted_and_wrong_ones_refused() {
        let ac = control(false);
        let now = Instant::now();
        let uri = "rtsp://127.0.0.1:8554/proxyStream";
        let first = ac
            .check(&request(Method::Describe, None), false, false, now)
            .expect_err("401");
        let good = answer(
            &first.response,
            Credentials::new("viewer", "s3cret"),
            "DESCRIBE",
            uri,
        );
        assert_eq!(
            ac.check(&request(Method::Describe, Some(&good)), false, false, now),
            Ok("viewer".to_owned())
        );
        let good = answer(
            &first.response,
            Credentials::new("admin", "pa:ss word"),
            "SETUP",
            uri,
        );
        assert_eq!(
            ac.check(&request(Method::Setup, Some(&good)), false, false, now),
            Ok("admin".to_owned())
        );
        // The method is signed: a DESCRIBE answer does not open a SETUP.
        let describe = answer(
            &first.response,
            Credentials::new("viewer", "s3cret"),
            "DESCRIBE",
            uri,
        );
        let err = ac
            .check(&request(Method::Setup, Some(&describe)), false, false, now)
            .expect_err("wrong method");
        assert_eq!(err.refusal, Refusal::WrongPassword("viewer".into()));
        let wrong = answer(
            &first.response,
            Credentials::new("viewer", "guess"),
            "DESCRIBE",
            uri,
        );
        let err = ac
            .check(&request(Method::Describe, Some(&wrong)), false, false, now)
            .expect_err("wrong password");
        assert_eq!(err.refusal, Refusal::WrongPassword("viewer".into()));
        assert_eq!(err.response.status, 401, "a fresh challenge");
        let nobody = answer(
            &first.response,
            Credentials::new("nobody", "s3cret"),
            "DESCRIBE",
            uri,
        );
        let err = ac
            .check(&request(Method::Describe, Some(&nobody)), false, false, now)
            .expect_err("unknown user");
        assert_eq!(err.refusal, Refusal::UnknownUser("nobody".into()));
        // A nonce of our own making is needed.
        let forged = good.replace("nonce=\"", "nonce=\"0");
        let err = ac
            .check(&request(Method::Setup, Some(&forged)), false, false, now)
            .expect_err("forged nonce");
        assert_eq!(err.refusal, Refusal::ForeignNonce);
        let other = control(false);
        let err = other
            .check(&request(Method::Setup, Some(&good)), false, false, now)
            .expect_err("another server's nonce");
        assert_eq!(err.refusal, Refusal::ForeignNonce);
    }

    #[test]
    fn expired_nonces_are_stale_except_inside_a_session() {
        let ac = control(false);
        let start = Instant::now();
        let uri = "rtsp://127.0.0.1:8554/proxyStream";
        let first = ac
            .check(&request(Method::Describe, None), false, false, start)
            .expect_err("401");
        let auth = answer(
            &first.response,
            Credentials::new("viewer", "s3cret"),
            "GET_PARAMETER",
            uri,
        );
        let later = start + NONCE_LIFETIME + Duration::from_secs(5);
        let req = request(Method::GetParameter, Some(&auth));
        let err = ac.check(&req, false, false, later).expect_err("stale");
        assert_eq!(err.refusal, Refusal::StaleNonce);
        let offered = err.response.headers.get("WWW-Authenticate").unwrap_or("");
        assert!(offered.ends_with(", stale=TRUE"), "{offered}");
        assert_eq!(ac.check(&req, false, true, later), Ok("viewer".to_owned()));
        // A stale nonce with a wrong password is still a wrong password.
        let wrong = answer(
            &first.response,
            Credentials::new("viewer", "x"),
            "GET_PARAMETER",
            uri,
        );
        let err = ac
            .check(
                &request(Method::GetParameter, Some(&wrong)),
                false,
                true,
                later,
            )
            .expect_err("wrong");
        assert_eq!(err.refusal, Refusal::WrongPassword("viewer".into()));
    }

    #[test]
    fn basic_is_for_tls_unless_allowed_in_clear() {
        let now = Instant::now();
        let good = basic_authorization(&Credentials::new("admin", "pa:ss word"));
        let bad = basic_authorization(&Credentials::new("admin", "pa:ss"));
        let strict = control(false);
        let err = strict
            .check(&request(Method::Describe, Some(&good)), false, false, now)
            .expect_err("Basic in clear");
        assert_eq!(err.refusal, Refusal::BasicNotAllowed);
        assert_eq!(
            strict.check(&request(Method::Describe, Some(&good)), true, false, now),
            Ok("admin".to_owned())
        );
        let err = strict
            .check(&request(Method::Describe, Some(&bad)), true, false, now)
            .expect_err("wrong password");
        assert_eq!(err.refusal, Refusal::WrongPassword("admin".into()));
        let lenient = control(true);
        assert_eq!(
            lenient.check(&request(Method::Describe, Some(&good)), false, false, now),
            Ok("admin".to_owned())
        );
        let err = lenient
            .check(
                &request(Method::Describe, Some("Basic !!")),
                false,
                false,
                now,
            )
            .expect_err("junk");
        assert_eq!(err.refusal, Refusal::Malformed);
    }

    #[test]
    fn refusals_never_show_a_password() {
        let ac = control(true);
        let now = Instant::now();
        for auth in [
            basic_authorization(&Credentials::new("admin", "not-the-password")),
            basic_authorization(&Credentials::new("eve", "s3cret")),
        ] {
            let err = ac
                .check(&request(Method::Describe, Some(&auth)), false, false, now)
                .expect_err("refused");
            let text = format!("{} {:?}", err.refusal, err.refusal);
            assert!(
                !text.contains("not-the-password") && !text.contains("s3cret"),
                "{text}"
            );
        }
    }
}
