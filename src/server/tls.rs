//! TLS on the listeners, with rustls (through tokio-rustls): the server configuration built
//! from etcd's certificate flags, and the handshake of each accepted connection.
//!
//! A listener given a [`TlsAcceptor`] hands tonic only connections whose handshake completed,
//! each in its own task and within [`HANDSHAKE_TIMEOUT`], so a client that stalls mid-handshake
//! holds up nobody else; a failed handshake is logged with the peer's address and dropped, as
//! Go's TLS server does. Only HTTP/2 is offered (ALPN `h2`), as etcd's gRPC listeners do.
//! The certificate and key are re-read when their files change (rotation without a restart).
//! With `--client-cert-auth` a client must present a certificate chaining to
//! `--trusted-ca-file`; without it a CA file alone asks for no certificate.

use crate::config::TlsFiles;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls;
pub use tokio_rustls::TlsAcceptor;

/// How long a connection may take to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS settings that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A flag that TLS needs is not given.
    #[error("TLS needs {0}")]
    Missing(&'static str),
    /// A PEM file that cannot be read or holds nothing usable.
    #[error("open {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the certificates or key.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    /// A `--cipher-suites` name that rustls does not offer.
    #[error("unexpected TLS cipher suite {0:?}")]
    UnknownCipherSuite(String),
    /// The peer dialer's settings cannot be used.
    #[error(transparent)]
    Dial(#[from] crate::raft::dial::DialError),
    /// The client certificate verifier cannot be built from the trusted CA file.
    #[error("tls: client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Every certificate in the PEM file at `path` (at least one).
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no certificate in the file"));
    }
    Ok(certs)
}

/// The server's certificate and key, read again whenever either file's modification time
/// changes: a rotated certificate is served from the next handshake on, without a restart, as
/// etcd does. A rotation caught half-written (or otherwise unreadable) keeps the previous pair
/// and is logged.
#[derive(Debug)]
struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
    current: std::sync::Mutex<(Stamps, Arc<rustls::sign::CertifiedKey>)>,
}

/// The modification times a loaded pair was read at.
type Stamps = (Option<std::time::SystemTime>, Option<std::time::SystemTime>);

impl ReloadingCert {
    fn new(
        cert_file: &Path,
        key_file: &Path,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<ReloadingCert, TlsError> {
        let stamps = Self::stamps(cert_file, key_file);
        let key = Self::load(cert_file, key_file, &provider)?;
        Ok(ReloadingCert {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            provider,
            current: std::sync::Mutex::new((stamps, key)),
        })
    }

    fn stamps(cert_file: &Path, key_file: &Path) -> Stamps {
        (
            crate::io::flag_file_modified(cert_file),
            crate::io::flag_file_modified(key_file),
        )
    }

    fn load(
        cert_file: &Path,
        key_file: &Path,
        provider: &rustls::crypto::CryptoProvider,
    ) -> Result<Arc<rustls::sign::CertifiedKey>, TlsError> {
        let chain = certificates(cert_file)?;
        let key =
            PrivateKeyDer::from_pem_slice(&read(key_file)?).map_err(|e| file_error(key_file, e))?;
        let signing = provider.key_provider.load_private_key(key)?;
        let certified = rustls::sign::CertifiedKey::new(chain, signing);
        certified.keys_match()?;
        Ok(Arc::new(certified))
    }
}

impl rustls::server::ResolvesServerCert for ReloadingCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let stamps = Self::stamps(&self.cert_file, &self.key_file);
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if stamps != current.0 {
            match Self::load(&self.cert_file, &self.key_file, &self.provider) {
                Ok(key) => {
                    tracing::info!(cert = %self.cert_file.display(), "reloaded the certificate");
                    *current = (stamps, key);
                }
                Err(e) => tracing::warn!(error = %e, "keeping the previous certificate"),
            }
        }
        Some(current.1.clone())
    }
}

/// The suites named by `--cipher-suites` (IANA names, as Go's `tls.CipherSuiteName` gives
/// them), plus every TLS 1.3 suite.
fn cipher_suites(names: &[String]) -> Result<Vec<rustls::SupportedCipherSuite>, TlsError> {
    use rustls::crypto::ring::ALL_CIPHER_SUITES;
    let mut suites: Vec<_> = ALL_CIPHER_SUITES
        .iter()
        .filter(|s| s.version() == &rustls::version::TLS13)
        .copied()
        .collect();
    for name in names {
        let suite = ALL_CIPHER_SUITES
            .iter()
            .find(|s| s.suite().as_str() == Some(name.as_str()))
            .ok_or_else(|| TlsError::UnknownCipherSuite(name.clone()))?;
        suites.push(*suite);
    }
    Ok(suites)
}

/// The server side of TLS for listeners configured by `files`.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let cert_file = files
        .cert_file
        .as_deref()
        .ok_or(TlsError::Missing("--cert-file"))?;
    let key_file = files
        .key_file
        .as_deref()
        .ok_or(TlsError::Missing("--key-file"))?;
    let mut provider = crate::raft::dial::tls_client::ring_provider();
    if !files.cipher_suites.is_empty() {
        provider.cipher_suites = cipher_suites(&files.cipher_suites)?;
    }
    let provider = Arc::new(provider);
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match (&files.trusted_ca_file, files.client_cert_auth) {
        (Some(ca), true) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(ca)? {
                roots.add(cert)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots.into(),
                provider.clone(),
            )
            .build()?;
            builder.with_client_cert_verifier(verifier)
        }
        (None, true) => {
            return Err(TlsError::Missing(
                "--trusted-ca-file for --client-cert-auth",
            ))
        }
        _ => builder.with_no_client_auth(),
    };
    let resolver = ReloadingCert::new(cert_file, key_file, provider)?;
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    crate::io::read_flag_file(path).map_err(|e| file_error(path, e))
}

/// How this member dials `https://` peers: trusting `--peer-trusted-ca-file`, presenting
/// `--peer-cert-file` / `--peer-key-file` (which a peer with `--peer-client-cert-auth` checks).
pub fn peer_dialer(files: &TlsFiles) -> Result<crate::raft::dial::Dialer, TlsError> {
    use crate::raft::dial::{Dialer, TlsClientSettings};
    let identity_pem = match (&files.cert_file, &files.key_file) {
        (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
        _ => None,
    };
    // With generated certificates peers cannot verify each other: etcd skips the check.
    let ca_pem = match (&files.trusted_ca_file, files.auto) {
        (Some(ca), _) => Some(read(ca)?),
        (None, true) => None,
        (None, false) => {
            return Err(TlsError::Missing(
                "--peer-trusted-ca-file to dial https:// peers",
            ))
        }
    };
    let skip_verify = ca_pem.is_none();
    let settings = TlsClientSettings {
        ca_pem,
        identity_pem,
        skip_verify,
    };
    Ok(Dialer::with_tls(&settings)?)
}

/// `--auto-tls` / `--peer-auto-tls`: for a side with `auto` and no certificate of its own, a
/// self-signed certificate for `hosts`, generated once into `<data-dir>/fixtures/<side>`
/// (`cert.pem`, `key.pem`) and reused by later starts, as etcd does. Other sides unchanged.
pub fn resolve_auto(
    files: &TlsFiles,
    data_dir: &Path,
    side: &str,
    hosts: &[String],
) -> Result<TlsFiles, TlsError> {
    if !files.auto || (files.cert_file.is_some() && files.key_file.is_some()) {
        return Ok(files.clone());
    }
    let disk = crate::io::Disk::new(data_dir);
    let dir = format!("fixtures/{side}");
    let (cert, key) = (format!("{dir}/cert.pem"), format!("{dir}/key.pem"));
    let disk_error = |e: crate::io::DiskError| file_error(&e.path.clone(), e);
    if !(disk.exists(&cert) && disk.exists(&key)) {
        let generated = rcgen::generate_simple_self_signed(hosts.to_vec())
            .map_err(|e| file_error(&disk.path(&cert), e))?;
        disk.create_dir_all(&dir).map_err(disk_error)?;
        let key_pem = generated.signing_key.serialize_pem();
        disk.write_atomic(&key, key_pem.as_bytes())
            .map_err(disk_error)?;
        disk.write_atomic(&cert, generated.cert.pem().as_bytes())
            .map_err(disk_error)?;
        let at = disk.path(&dir);
        tracing::info!(side, path = %at.display(), "generated a self-signed certificate");
    }
    Ok(TlsFiles {
        cert_file: Some(disk.path(&cert)),
        key_file: Some(disk.path(&key)),
        ..files.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_suites_by_name_keep_tls13() {
        let names = ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_string()];
        let suites = cipher_suites(&names).unwrap();
        assert!(suites
            .iter()
            .any(|s| s.suite().as_str() == Some(names[0].as_str())));
        assert!(suites
            .iter()
            .any(|s| s.version() == &rustls::version::TLS13));
        assert!(!suites
            .iter()
            .any(|s| s.suite().as_str() == Some("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384")));
        let bad = ["TLS_RSA_WITH_RC4_128_SHA".to_string()];
        assert_eq!(
            cipher_suites(&bad).unwrap_err().to_string(),
            "unexpected TLS cipher suite \"TLS_RSA_WITH_RC4_128_SHA\""
        );
    }

    #[test]
    fn auto_certificates_are_generated_once_and_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            auto: true,
            ..TlsFiles::default()
        };
        let hosts = vec!["127.0.0.1".to_string()];
        let first = resolve_auto(&files, dir.path(), "client", &hosts).unwrap();
        let cert = std::fs::read(first.cert_file.as_ref().unwrap()).unwrap();
        let again = resolve_auto(&files, dir.path(), "client", &hosts).unwrap();
        assert_eq!(std::fs::read(again.cert_file.unwrap()).unwrap(), cert);
        assert!(acceptor(&first).is_ok());
        let missing = TlsFiles {
            cert_file: first.cert_file.clone(),
            key_file: first.key_file.clone(),
            client_cert_auth: true,
            ..TlsFiles::default()
        };
        assert!(matches!(acceptor(&missing), Err(TlsError::Missing(_))));
    }
}
