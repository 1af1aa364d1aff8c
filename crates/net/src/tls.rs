//! TLS for both sides, with rustls (ring), built once at start-up:
//!
//! - [`server_config`]: the certificate and key the server presents to
//!   `rtsps://` clients (`--tls-cert`, `--tls-key`);
//! - [`client_config`]: how `rtsps://` back ends are verified: the system's
//!   roots plus `--backend-tls-ca`, certificates pinned by SHA-256 fingerprint
//!   (`--backend-tls-fingerprint`), or nothing at all (`--backend-tls-insecure`).
//!   A server certificate that is itself in `--backend-tls-ca` (a self-signed
//!   one, as `openssl req -x509` makes, `CA:TRUE` and all) is trusted as OpenSSL
//!   trusts it, its name, validity dates and purpose still checked
//!   ([`check_listed_certificate`]).
//!
//! The sans-IO machines never see any of this: the server's listener wraps the
//! accepted socket, the source's connector wraps the dialled one.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use tracing::debug;

/// A TLS handshake (either side) must be over within this long.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Certificate and key files larger than this are refused.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// Why a TLS configuration could not be built; each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: larger than {} bytes, not a PEM file", .path.display(), MAX_PEM_BYTES)]
    TooLarge { path: PathBuf },
    #[error("{}: bad PEM ({detail})", .path.display())]
    Pem { path: PathBuf, detail: String },
    #[error("{}: no certificate in it (expected a PEM \"BEGIN CERTIFICATE\" block)", .path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: no private key in it (expected a PEM PKCS#8, RSA or EC private key)", .path.display())]
    NoKey { path: PathBuf },
    #[error("cannot use the certificate {} with the key {}: {source}", .cert.display(), .key.display())]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("{}: not a usable CA certificate: {detail}", .path.display())]
    BadCa { path: PathBuf, detail: String },
    #[error("TLS set-up failed: {0}")]
    Setup(String),
}

/// A SHA-256 fingerprint of a certificate's DER encoding, as `openssl x509
/// -fingerprint -sha256` prints it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

/// Why a fingerprint was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a SHA-256 fingerprint (64 hex digits, optionally in pairs separated by ':')")]
pub struct BadFingerprint;

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    #[must_use]
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// Parses 64 hex digits, either plain or as 32 colon-separated pairs,
    /// in any case.
    ///
    /// # Errors
    ///
    /// [`BadFingerprint`] for anything else.
    pub fn parse(text: &str) -> Result<Fingerprint, BadFingerprint> {
        let digits: String = if text.contains(':') {
            let pairs: Vec<&str> = text.split(':').collect();
            if pairs.len() != 32 || pairs.iter().any(|p| p.len() != 2) {
                return Err(BadFingerprint);
            }
            pairs.concat()
        } else {
            text.to_owned()
        };
        if digits.len() != 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BadFingerprint);
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte =
                u8::from_str_radix(&digits[i * 2..i * 2 + 2], 16).map_err(|_| BadFingerprint)?;
        }
        Ok(Fingerprint(out))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// How `rtsps://` back ends are verified (`--backend-tls-*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackendTrust {
    /// Extra CA certificates (PEM) trusted besides the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Certificates accepted by fingerprint, whatever their chain and names.
    pub fingerprints: Vec<Fingerprint>,
    /// Accept any certificate (`--backend-tls-insecure`).
    pub insecure: bool,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a whole PEM file, bounded in size.
fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    let read_err = |source| TlsError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_pem(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_pem(path)?;
    match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(key) => Ok(key),
        Err(rustls::pki_types::pem::Error::NoItemsFound) => Err(TlsError::NoKey {
            path: path.to_owned(),
        }),
        Err(e) => Err(TlsError::Pem {
            path: path.to_owned(),
            detail: e.to_string(),
        }),
    }
}

/// The server's TLS configuration from a PEM certificate chain (leaf first)
/// and its PEM private key.
///
/// # Errors
///
/// A [`TlsError`] naming the file that cannot be read or used.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = certificates(cert)?;
    let key_der = private_key(key)?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|source| TlsError::Unusable {
            cert: cert.to_owned(),
            key: key.to_owned(),
            source,
        })?;
    Ok(Arc::new(config))
}

/// The client configuration for `rtsps://` back ends.
///
/// # Errors
///
/// A [`TlsError`] when `--backend-tls-ca` cannot be read or used.
pub fn client_config(trust: &BackendTrust) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = provider();
    let verifier = if trust.insecure {
        BackendVerifier::new(None, Vec::new(), true, &provider)
    } else {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            debug!("system CA certificates: {e}");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        debug!(added, ignored, "system CA certificates loaded");
        let mut listed = Vec::new();
        if let Some(path) = &trust.ca_file {
            for cert in certificates(path)? {
                roots.add(cert.clone()).map_err(|e| TlsError::BadCa {
                    path: path.to_owned(),
                    detail: e.to_string(),
                })?;
                listed.push(cert);
            }
        }
        let webpki = if roots.is_empty() {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| TlsError::Setup(e.to_string()))?,
            )
        };
        let mut verifier =
            BackendVerifier::new(webpki, trust.fingerprints.clone(), false, &provider);
        verifier.listed = listed;
        verifier
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The name a back end's certificate must be valid for: the URL's host (an IP
/// literal is an IP address; an IPv6 zone is dropped).
#[must_use]
pub fn server_name(host: &str) -> Option<ServerName<'static>> {
    if let Ok(name) = ServerName::try_from(host.to_owned()) {
        return Some(name);
    }
    let unzoned = host.split('%').next().unwrap_or(host);
    unzoned
        .parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| ServerName::IpAddress(ip.into()))
}

/// Why a back end's certificate was refused, with its fingerprint so that the
/// log line can tell the user what to pin.
#[derive(Debug)]
pub struct Untrusted {
    pub reason: rustls::Error,
    pub fingerprint: Fingerprint,
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = match &self.reason {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                "not issued by a trusted certificate authority".to_owned()
            }
            // webpki's own errors (e.g. a CA certificate used as the server's).
            rustls::Error::InvalidCertificate(CertificateError::Other(o)) => {
                match o.to_string().as_str() {
                    "CaUsedAsEndEntity" => {
                        "a CA certificate presented as the server's own (self-signed)".to_owned()
                    }
                    other => other.to_owned(),
                }
            }
            rustls::Error::InvalidCertificate(c) => c.to_string(),
            other => other.to_string(),
        };
        write!(
            f,
            "{reason}; its SHA-256 fingerprint is {}",
            self.fingerprint
        )
    }
}

impl std::error::Error for Untrusted {}

/// Checks a server certificate that is byte for byte one of `--backend-tls-ca`'s
/// (trusted as listed, as OpenSSL trusts a self-signed certificate of its
/// `-CAfile`, whatever its basic constraints): it must be valid for
/// `server_name` (its subjectAltName, as webpki checks any server's), valid at
/// `now`, and, if it limits its extended key usage, usable for a TLS server.
///
/// webpki would refuse such a certificate when it is a CA (`CA:TRUE`, the
/// default of `openssl req -x509`) presented as the server's own, and checks
/// the dates and purpose only along a chain, hence this path.
///
/// # Errors
///
/// The [`rustls::Error`] naming what does not hold (the name, the dates, the
/// purpose, or a certificate that cannot be parsed).
pub fn check_listed_certificate(
    der: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let bad_encoding = || rustls::Error::InvalidCertificate(CertificateError::BadEncoding);
    rustls::client::verify_server_name(&ParsedCertificate::try_from(der)?, server_name)?;
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|_| bad_encoding())?;
    let validity = cert.validity();
    let at = |t: &x509_parser::time::ASN1Time| {
        UnixTime::since_unix_epoch(Duration::from_secs(t.timestamp().max(0).unsigned_abs()))
    };
    let seconds = now.as_secs();
    if i128::from(seconds) < i128::from(validity.not_before.timestamp()) {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYetContext {
                time: now,
                not_before: at(&validity.not_before),
            },
        ));
    }
    if i128::from(seconds) > i128::from(validity.not_after.timestamp()) {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::ExpiredContext {
                time: now,
                not_after: at(&validity.not_after),
            },
        ));
    }
    match cert.extended_key_usage().map_err(|_| bad_encoding())? {
        Some(eku) if !eku.value.any && !eku.value.server_auth => Err(
            rustls::Error::InvalidCertificate(CertificateError::InvalidPurpose),
        ),
        _ => Ok(()),
    }
}

/// Verifies back-end certificates: a pinned fingerprint is accepted as it is;
/// one that is itself in `--backend-tls-ca` must be valid for the host and
/// now ([`check_listed_certificate`]); anything else must chain to a trusted
/// root and be valid for the host. The handshake's signature is always checked
/// against the certificate's key.
#[derive(Debug)]
struct BackendVerifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    pins: Vec<Fingerprint>,
    /// The certificates of `--backend-tls-ca`, each trusted as a server's own.
    listed: Vec<CertificateDer<'static>>,
    insecure: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl BackendVerifier {
    fn new(
        webpki: Option<Arc<WebPkiServerVerifier>>,
        pins: Vec<Fingerprint>,
        insecure: bool,
        provider: &CryptoProvider,
    ) -> BackendVerifier {
        BackendVerifier {
            webpki,
            pins,
            listed: Vec::new(),
            insecure,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for BackendVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fingerprint = Fingerprint::of(end_entity);
        if self.insecure || self.pins.contains(&fingerprint) {
            return Ok(ServerCertVerified::assertion());
        }
        let reason = if self
            .listed
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            match check_listed_certificate(end_entity, server_name, now) {
                Ok(()) => return Ok(ServerCertVerified::assertion()),
                Err(e) => e,
            }
        } else {
            match &self.webpki {
                Some(v) => match v.verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp_response,
                    now,
                ) {
                    Ok(ok) => return Ok(ok),
                    Err(e) => e,
                },
                None => rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
            }
        };
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(Untrusted {
                reason,
                fingerprint,
            })),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Why a TLS handshake's I/O error refused the peer's certificate as not
/// trusted (with the certificate's fingerprint), or `None` for any other error
/// (a bad handshake signature included).
#[must_use]
pub fn untrusted_certificate(e: &std::io::Error) -> Option<String> {
    match e.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => other
            .0
            .downcast_ref::<Untrusted>()
            .map(Untrusted::to_string),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Pki {
        ca_pem: String,
        leaf_pem: String,
        leaf_der: Vec<u8>,
        leaf_key_pem: String,
        other_pem: String,
        other_der: Vec<u8>,
        other_key_pem: String,
    }

    fn pki() -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca =
            CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
        let leaf_key = KeyPair::generate().expect("key");
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "cam.test".to_owned()])
            .expect("leaf params")
            .signed_by(&leaf_key, &ca)
            .expect("leaf");
        let other_key = KeyPair::generate().expect("key");
        let other = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("params")
            .self_signed(&other_key)
            .expect("self-signed");
        Pki {
            ca_pem: ca.pem(),
            leaf_pem: leaf.pem(),
            leaf_der: leaf.der().to_vec(),
            leaf_key_pem: leaf_key.serialize_pem(),
            other_pem: other.pem(),
            other_der: other.der().to_vec(),
            other_key_pem: other_key.serialize_pem(),
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("rtsp-proxy-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn fingerprints_parse_in_every_usual_spelling() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let fp = Fingerprint::parse(hex).expect("plain");
        assert_eq!(fp.0[0], 0x00);
        assert_eq!(fp.0[31], 0xff);
        let colons = fp.to_string();
        assert_eq!(colons.len(), 95);
        assert!(colons.starts_with("00:11:22:33"));
        assert_eq!(Fingerprint::parse(&colons), Ok(fp));
        assert_eq!(Fingerprint::parse(&colons.to_lowercase()), Ok(fp));
        for bad in [
            "",
            "00",
            &hex[..62],
            &format!("{hex}00"),
            &hex.replace('a', "g"),
            "00:11",
            &format!(":{}", &colons[..94]),
            &colons.replacen(':', "", 1),
            &colons.replacen("00:11", "0:011", 1),
            "é0112233445566778899aabbccddeeff00112233445566778899aabbccddeef",
        ] {
            assert_eq!(Fingerprint::parse(bad), Err(BadFingerprint), "{bad:?}");
        }
    }

    #[test]
    fn the_fingerprint_is_sha256_of_the_der() {
        // SHA-256 of the empty string.
        assert_eq!(
            Fingerprint::of(b"")
                .to_string()
                .replace(':', "")
                .to_lowercase(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn pem_errors_name_the_file() {
        let pki = pki();
        let dir = temp_dir("pem");
        let cert = write(&dir, "cert.pem", &pki.leaf_pem);
        let key = write(&dir, "key.pem", &pki.leaf_key_pem);
        let garbage = write(&dir, "garbage.pem", "hello\n");
        let broken = write(&dir, "broken.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n");
        let other_key = write(&dir, "other-key.pem", &pki.other_key_pem);
        let missing = dir.join("missing.pem");

        server_config(&cert, &key).expect("a matching pair");

        let e = server_config(&missing, &key)
            .expect_err("missing")
            .to_string();
        assert!(
            e.starts_with(&format!("cannot read {}", missing.display())),
            "{e}"
        );
        let e = server_config(&garbage, &key)
            .expect_err("no cert")
            .to_string();
        assert!(e.contains("garbage.pem: no certificate"), "{e}");
        let e = server_config(&broken, &key)
            .expect_err("broken")
            .to_string();
        assert!(e.contains("broken.pem: bad PEM"), "{e}");
        let e = server_config(&cert, &cert)
            .expect_err("cert as key")
            .to_string();
        assert!(e.contains("cert.pem: no private key"), "{e}");
        let e = server_config(&cert, &other_key)
            .expect_err("mismatch")
            .to_string();
        assert!(
            e.contains("cannot use the certificate") && e.contains("other-key.pem"),
            "{e}"
        );

        let trust = BackendTrust {
            ca_file: Some(garbage.clone()),
            ..BackendTrust::default()
        };
        let e = client_config(&trust).expect_err("bad CA").to_string();
        assert!(e.contains("garbage.pem: no certificate"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn server_names_from_url_hosts() {
        assert!(matches!(
            server_name("127.0.0.1"),
            Some(ServerName::IpAddress(_))
        ));
        assert!(matches!(server_name("::1"), Some(ServerName::IpAddress(_))));
        assert!(matches!(
            server_name("fe80::1%eth0"),
            Some(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("cam.local"),
            Some(ServerName::DnsName(_))
        ));
        assert!(server_name("bad name").is_none());
    }

    /// Serves one TLS connection with `cert`/`key` that echoes one line.
    async fn serve_once(cert: &str, key: &str) -> std::net::SocketAddr {
        let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).expect("cert")];
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
        // Built by hand so that a key that does not match the certificate can be
        // used (with_single_cert would refuse it).
        let signer = rustls::crypto::ring::sign::any_supported_type(&key).expect("signing key");
        let certified = rustls::sign::CertifiedKey::new(chain, signer);
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            if let Ok((tcp, _)) = listener.accept().await {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 5];
                    if tls.read_exact(&mut buf).await.is_ok() {
                        let _ = tls.write_all(&buf).await;
                        let _ = tls.shutdown().await;
                    }
                }
            }
        });
        addr
    }

    async fn connect(
        trust: &BackendTrust,
        addr: std::net::SocketAddr,
        host: &str,
    ) -> std::io::Result<()> {
        let config = client_config(trust).expect("client config");
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = server_name(host).expect("name");
        let mut tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        tls.write_all(b"hello").await?;
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"hello");
        Ok(())
    }

    #[tokio::test]
    async fn verification_by_ca_pin_and_insecure() {
        let pki = pki();
        let dir = temp_dir("verify");
        let ca = write(&dir, "ca.pem", &pki.ca_pem);
        let by_ca = BackendTrust {
            ca_file: Some(ca),
            ..BackendTrust::default()
        };
        let leaf_pin = BackendTrust {
            fingerprints: vec![Fingerprint::of(&pki.leaf_der)],
            ..BackendTrust::default()
        };
        let other_pin = BackendTrust {
            fingerprints: vec![Fingerprint::of(&pki.other_der)],
            ..BackendTrust::default()
        };
        let insecure = BackendTrust {
            insecure: true,
            ..BackendTrust::default()
        };

        // The CA-signed leaf: trusted through the CA for its names only.
        let addr = serve_once(&pki.leaf_pem, &pki.leaf_key_pem).await;
        connect(&by_ca, addr, "127.0.0.1").await.expect("CA");
        let addr = serve_once(&pki.leaf_pem, &pki.leaf_key_pem).await;
        connect(&by_ca, addr, "cam.test")
            .await
            .expect("CA, DNS name");
        let addr = serve_once(&pki.leaf_pem, &pki.leaf_key_pem).await;
        let e = connect(&by_ca, addr, "other.test")
            .await
            .expect_err("wrong name");
        let why = untrusted_certificate(&e).expect("refused certificate");
        assert!(
            why.starts_with("certificate not valid for name \"other.test\""),
            "{why}"
        );
        // Without the CA, it is unknown (unless the system trusts it: it does not).
        let addr = serve_once(&pki.leaf_pem, &pki.leaf_key_pem).await;
        let e = connect(&BackendTrust::default(), addr, "127.0.0.1")
            .await
            .expect_err("unknown issuer");
        let why = untrusted_certificate(&e).expect("refused certificate");
        assert_eq!(
            why,
            format!(
                "not issued by a trusted certificate authority; its SHA-256 fingerprint is {}",
                Fingerprint::of(&pki.leaf_der)
            ),
            "the refusal tells the fingerprint"
        );
        // Pinned: accepted whatever the name, refused when another is pinned.
        let addr = serve_once(&pki.leaf_pem, &pki.leaf_key_pem).await;
        connect(&leaf_pin, addr, "other.test")
            .await
            .expect("pinned");
        let addr = serve_once(&pki.leaf_pem, &pki.leaf_key_pem).await;
        let e = connect(&other_pin, addr, "127.0.0.1")
            .await
            .expect_err("another pin");
        assert!(untrusted_certificate(&e).is_some(), "{e}");
        let addr = serve_once(&pki.other_pem, &pki.other_key_pem).await;
        connect(&other_pin, addr, "127.0.0.1")
            .await
            .expect("self-signed, pinned");
        // A server presenting the pinned certificate without its key fails the
        // handshake signature check.
        let addr = serve_once(&pki.leaf_pem, &pki.other_key_pem).await;
        let e = connect(&leaf_pin, addr, "127.0.0.1")
            .await
            .expect_err("bad signature");
        assert!(
            untrusted_certificate(&e).is_none(),
            "not a certificate problem: {e}"
        );
        // Insecure: anything.
        let addr = serve_once(&pki.other_pem, &pki.other_key_pem).await;
        connect(&insecure, addr, "whatever.test")
            .await
            .expect("insecure");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A self-signed `CA:TRUE` certificate for `names` (what `openssl req
    /// -x509` makes), as PEM, DER and its key's PEM.
    fn self_signed_ca(
        names: &[&str],
        edit: impl FnOnce(&mut CertificateParams),
    ) -> (String, CertificateDer<'static>, String) {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        edit(&mut params);
        let cert = params.self_signed(&key).expect("self-signed");
        (cert.pem(), cert.der().clone(), key.serialize_pem())
    }

    #[tokio::test]
    async fn a_self_signed_ca_certificate_listed_in_the_ca_file_is_trusted_for_its_names() {
        let dir = temp_dir("listed");
        let (pem, der, key) = self_signed_ca(&["localhost", "127.0.0.1"], |_| {});
        let (other_pem, other_der, other_key) = self_signed_ca(&["localhost"], |_| {});
        let pki = pki();
        // The file lists a CA besides it, as users' bundles do.
        let listed = BackendTrust {
            ca_file: Some(write(&dir, "ca.pem", &format!("{}{pem}", pki.ca_pem))),
            ..BackendTrust::default()
        };
        for host in ["localhost", "127.0.0.1"] {
            let addr = serve_once(&pem, &key).await;
            connect(&listed, addr, host)
                .await
                .expect("listed, its name");
        }
        // The CA-signed leaf still verifies through the same file.
        let addr = serve_once(&pki.leaf_pem, &pki.leaf_key_pem).await;
        connect(&listed, addr, "cam.test").await.expect("chain");

        let addr = serve_once(&pem, &key).await;
        let e = connect(&listed, addr, "cam.test")
            .await
            .expect_err("wrong name");
        let why = untrusted_certificate(&e).expect("refused certificate");
        assert!(
            why.starts_with("certificate not valid for name \"cam.test\"")
                && why.ends_with(&Fingerprint::of(&der).to_string()),
            "{why}"
        );
        let addr = serve_once(&other_pem, &other_key).await;
        let e = connect(&listed, addr, "localhost")
            .await
            .expect_err("not listed");
        let why = untrusted_certificate(&e).expect("refused certificate");
        assert_eq!(
            why,
            format!(
                "a CA certificate presented as the server's own (self-signed); its SHA-256 fingerprint is {}",
                Fingerprint::of(&other_der)
            )
        );
        // The listed certificate without its key: the handshake signature fails.
        let addr = serve_once(&pem, &other_key).await;
        let e = connect(&listed, addr, "localhost")
            .await
            .expect_err("bad signature");
        assert!(
            untrusted_certificate(&e).is_none(),
            "not a certificate problem: {e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_listed_certificate_is_checked_for_dates_and_purpose() {
        let (_, der, _) = self_signed_ca(&["localhost"], |p| {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2030, 1, 1);
        });
        let name = server_name("localhost").expect("name");
        let at = |secs: u64| UnixTime::since_unix_epoch(Duration::from_secs(secs));
        // 2020-01-01 is 1577836800, 2030-01-01 is 1893456000.
        check_listed_certificate(&der, &name, at(1_700_000_000)).expect("valid in 2023");
        check_listed_certificate(&der, &name, at(1_577_836_800)).expect("its first second");
        let e = check_listed_certificate(&der, &name, at(1_577_836_799)).expect_err("too early");
        assert!(
            matches!(
                e,
                rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext { not_before, .. })
                    if not_before.as_secs() == 1_577_836_800
            ),
            "{e:?}"
        );
        let e = check_listed_certificate(&der, &name, at(1_893_456_001)).expect_err("expired");
        assert!(
            matches!(
                e,
                rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { not_after, .. })
                    if not_after.as_secs() == 1_893_456_000
            ),
            "{e:?}"
        );
        let e = check_listed_certificate(
            &der,
            &server_name("other").expect("name"),
            at(1_700_000_000),
        )
        .expect_err("wrong name");
        assert!(e.to_string().contains("not valid for name"), "{e}");

        let now = at(1_700_000_000);
        for (usages, ok) in [
            (vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth], true),
            (vec![rcgen::ExtendedKeyUsagePurpose::Any], true),
            (vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth], false),
        ] {
            let (_, der, _) =
                self_signed_ca(&["localhost"], |p| p.extended_key_usages = usages.clone());
            let got = check_listed_certificate(&der, &name, now);
            assert_eq!(got.is_ok(), ok, "{usages:?}: {got:?}");
        }
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        assert!(check_listed_certificate(&garbage, &name, now).is_err());
    }
}
