//! TLS, with rustls and aws-lc: the certificate each listener presents, loaded from PEM files
//! and reloaded when they change or on SIGHUP (new handshakes get the new pair; connections
//! already open keep the one they started with, so nothing is dropped), the client
//! certificates the control API may ask for and the names they carry, and the roots the
//! gateway's own connections (the backend, the CLI) verify servers against.
//!
//! A reload that fails (a key that does not match its certificate, a file caught half
//! written) keeps the pair in use and says why in the log; the next change tries again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// How often the certificate files are looked at for a change.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// A PEM certificate chain (leaf first) and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why a certificate, key or CA bundle could not be used; names the file and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// The one crypto provider: aws-lc, as hyper-rustls and the AWS SDK use.
#[must_use]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError(format!("cannot read {what} {}: {e}", path.display())))
}

/// Every certificate in a PEM file; none is an error.
pub fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("{what} {} is not PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{what} {} holds no certificate (no -----BEGIN CERTIFICATE----- block)",
            path.display()
        )));
    }
    Ok(certs)
}

/// The private key in a PEM file.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path, "TLS key")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        TlsError(format!(
            "TLS key {} holds no private key in PEM: {e}",
            path.display()
        ))
    })
}

/// Loads a certificate chain and its key, checking that they belong together.
pub fn load_pair(files: &CertFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = certificates(&files.cert, "TLS certificate")?;
    let key = private_key(&files.key)?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError(format!("TLS key {}: {e}", files.key.display())))?;
    let pair = CertifiedKey::new(chain, signing);
    pair.keys_match().map_err(|e| {
        TlsError(format!(
            "TLS key {} does not belong to the certificate {}: {e}",
            files.key.display(),
            files.cert.display()
        ))
    })?;
    Ok(Arc::new(pair))
}

/// What a change to either file would move: sizes and modification times.
type Stamp = [(u64, Option<SystemTime>); 2];

fn stamp(files: &CertFiles) -> Stamp {
    let one =
        |path: &Path| std::fs::metadata(path).map_or((0, None), |m| (m.len(), m.modified().ok()));
    [one(&files.cert), one(&files.key)]
}

/// The certificate a listener presents: the pair in use, and the files it came from.
#[derive(Debug)]
pub struct Certificate {
    files: CertFiles,
    current: RwLock<Arc<CertifiedKey>>,
    seen: Mutex<Stamp>,
}

impl Certificate {
    pub fn load(files: CertFiles) -> Result<Arc<Certificate>, TlsError> {
        let seen = stamp(&files);
        let pair = load_pair(&files)?;
        Ok(Arc::new(Certificate {
            files,
            current: RwLock::new(pair),
            seen: Mutex::new(seen),
        }))
    }

    #[must_use]
    pub fn files(&self) -> &CertFiles {
        &self.files
    }

    /// Loads the files again and, if they hold a valid pair, presents it from the next
    /// handshake on; otherwise keeps the pair in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = stamp(&self.files);
        let pair = load_pair(&self.files)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = pair;
        Ok(())
    }

    /// Whether either file changed since it was last loaded.
    fn changed(&self) -> bool {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) != stamp(&self.files)
    }

    /// Reloads and logs the outcome.
    fn reload_logged(&self, why: &str) {
        match self.reload() {
            Ok(()) => {
                tracing::info!(cert = %self.files.cert.display(), why, "TLS certificate reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, why, "TLS certificate not reloaded; the one in use stays");
            }
        }
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// Reloads the certificates when their files change (looked at every two seconds) and
/// when the process gets SIGHUP; runs until dropped.
pub async fn watch(certificates: Vec<Arc<Certificate>>) {
    if certificates.is_empty() {
        return;
    }
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch for SIGHUP; certificates reload on file changes only");
            None
        }
    };
    let mut every = tokio::time::interval(WATCH_EVERY);
    loop {
        let hung_up = async {
            match hangup.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = hung_up => {
                for certificate in &certificates {
                    certificate.reload_logged("SIGHUP");
                }
            }
            _ = every.tick() => {
                for certificate in certificates.iter().filter(|c| c.changed()) {
                    certificate.reload_logged("the files changed");
                }
            }
        }
    }
}

/// A listener's TLS: its certificate, and, for the control API, the CA that client
/// certificates are verified against. A client certificate is asked for but not required:
/// a client without one authenticates with a token as over plain HTTP.
pub fn server_config(
    certificate: Arc<Certificate>,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS: {e}")))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let roots = roots_from(path, "client CA bundle")?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError(format!("client CA bundle {}: {e}", path.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(certificate);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificates of a CA bundle as trust roots.
fn roots_from(path: &Path, what: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path, what)? {
        roots
            .add(cert)
            .map_err(|e| TlsError(format!("{what} {}: {e}", path.display())))?;
    }
    Ok(roots)
}

/// The roots servers are verified against: the CA bundle's certificates when one is given
/// (and only those), else the system's.
pub fn roots(ca_bundle: Option<&Path>) -> Result<RootCertStore, TlsError> {
    if let Some(path) = ca_bundle {
        return roots_from(path, "CA bundle");
    }
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(TlsError(format!(
            "the system has no trust roots ({:?}): give a CA bundle",
            found.errors
        )));
    }
    Ok(roots)
}

/// A client that verifies servers against `roots` and, when given one, presents a client
/// certificate.
pub fn client_config(
    roots: RootCertStore,
    identity: Option<&CertFiles>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(files) => {
            let chain = certificates(&files.cert, "client certificate")?;
            builder
                .with_client_auth_cert(chain, private_key(&files.key)?)
                .map_err(|e| {
                    TlsError(format!("client certificate {}: {e}", files.cert.display()))
                })?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The names a verified client certificate carries, put in each request's extensions by
/// the listener: its DNS and URI subject alternative names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientNames(pub Vec<String>);

impl ClientNames {
    /// The names of the first certificate the client presented (already verified by the
    /// handshake); `None` when it presented none.
    #[must_use]
    pub fn of(peer: Option<&[CertificateDer<'_>]>) -> Option<ClientNames> {
        let leaf = peer?.first()?;
        let cert = webpki::EndEntityCert::try_from(leaf).ok()?;
        let names = cert
            .valid_dns_names()
            .chain(cert.valid_uri_names())
            .map(str::to_owned)
            .collect();
        Some(ClientNames(names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_naming_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = pair("a.example");
        let (_, other_key) = pair("b.example");
        let files = CertFiles {
            cert: write(dir.path(), "cert.pem", &cert),
            key: write(dir.path(), "key.pem", &other_key),
        };
        let err = load_pair(&files).unwrap_err().0;
        assert!(
            err.starts_with(&format!(
                "TLS key {} does not belong to the certificate {}",
                files.key.display(),
                files.cert.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn a_file_without_a_certificate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "empty.pem", "not a certificate\n");
        let err = certificates(&path, "CA bundle").unwrap_err().0;
        assert_eq!(
            err,
            format!(
                "CA bundle {} holds no certificate (no -----BEGIN CERTIFICATE----- block)",
                path.display()
            )
        );
        let missing = dir.path().join("missing.pem");
        let err = roots(Some(&missing)).unwrap_err().0;
        assert!(
            err.starts_with(&format!("cannot read CA bundle {}", missing.display())),
            "{err}"
        );
    }

    #[test]
    fn a_failed_reload_keeps_the_pair_in_use_and_a_good_one_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair("first.example");
        let files = CertFiles {
            cert: write(dir.path(), "cert.pem", &cert),
            key: write(dir.path(), "key.pem", &key),
        };
        let certificate = Certificate::load(files.clone()).unwrap();
        let presented = || {
            certificate
                .current
                .read()
                .unwrap()
                .end_entity_cert()
                .unwrap()
                .to_vec()
        };
        let first = presented();
        assert!(!certificate.changed());
        // A new certificate written before its key: the files changed, the reload fails,
        // and the first pair is still presented.
        let (cert, key) = pair("second.example");
        std::fs::write(&files.cert, &cert).unwrap();
        assert!(certificate.changed());
        assert!(certificate.reload().is_err());
        assert_eq!(presented(), first);
        // Then the key: the second pair is presented from now on.
        std::fs::write(&files.key, &key).unwrap();
        certificate.reload().unwrap();
        assert_ne!(presented(), first);
        assert!(!certificate.changed());
    }

    #[test]
    fn a_client_certificate_is_named_by_its_alternative_names() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["deploy-bot.ci.example".to_owned()]).unwrap();
        params.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://example/deploy-bot".try_into().unwrap(),
        ));
        let cert = params.self_signed(&key).unwrap();
        let names = ClientNames::of(Some(&[cert.der().clone()])).unwrap();
        assert_eq!(
            names.0,
            ["deploy-bot.ci.example", "spiffe://example/deploy-bot"]
        );
        assert_eq!(ClientNames::of(None), None);
    }
}
