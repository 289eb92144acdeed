//! TLS and mutual TLS for the TCP listener (rustls with `ring`), hot-reloaded.
//!
//! A certificate chain and its private key (PEM) turn TLS on; a client CA bundle (PEM) additionally requires every
//! client to present a certificate that chains to it, so a client without one is refused during the handshake.
//! The Unix socket stays plaintext: it is protected by its 0600 mode.
//!
//! The files are read at start-up (an unreadable or malformed one is a configuration error and nothing is
//! served), then watched: a valid new set of files is used for every handshake after it, a broken one keeps the
//! last good configuration. Handshakes run off the accept loop, each under the handshake timeout of the
//! connection gate (`limits`). `GetStatus` reports the serving certificate's expiry.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use crate::moment::Moment;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use super::ServeError;

/// Where the TCP listener's TLS material is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain, PEM.
    pub cert: PathBuf,
    /// The server's private key, PEM.
    pub key: PathBuf,
    /// CA certificates, PEM, that client certificates must chain to; `None` serves TLS without client auth.
    pub client_ca: Option<PathBuf>,
}

fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read the TLS {what} {}: {e}", path.display()))?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(format!(
            "the TLS {what} {} is not PEM (no `-----BEGIN` line)",
            path.display()
        ));
    }
    Ok(bytes)
}

/// A rustls configuration read from the files, with the leaf certificate's expiry.
struct Loaded {
    config: Arc<ServerConfig>,
    not_after: Option<Moment>,
}

impl TlsFiles {
    /// Every file this configuration reads.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        [
            Some(self.cert.as_path()),
            Some(self.key.as_path()),
            self.client_ca.as_deref(),
        ]
        .into_iter()
        .flatten()
    }

    fn build(&self) -> Result<Loaded, String> {
        let cert_pem = read_pem(&self.cert, "certificate")?;
        let key_pem = read_pem(&self.key, "private key")?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("the TLS certificate {}: {e}", self.cert.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "the TLS certificate {} holds no certificate",
                self.cert.display()
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| format!("the TLS private key {}: {e}", self.key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let ca_pem = read_pem(ca, "client CA")?;
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(&ca_pem) {
                    let cert =
                        cert.map_err(|e| format!("the TLS client CA {}: {e}", ca.display()))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("the TLS client CA {}: {e}", ca.display()))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| format!("the TLS client CA {}: {e}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let not_after = not_after(&certs[0]);
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| format!("the TLS certificate and key do not fit: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Loaded {
            config: Arc::new(config),
            not_after,
        })
    }
}

/// The certificate's `notAfter`.
fn not_after(cert: &CertificateDer<'_>) -> Option<Moment> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Moment::from_second(parsed.validity().not_after.timestamp())
}

/// The TLS configuration in use, swapped whole when the files change.
pub struct TlsReloader {
    files: TlsFiles,
    current: ArcSwap<ServerConfig>,
    not_after: Mutex<Option<Moment>>,
    last_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for TlsReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsReloader")
            .field("files", &self.files)
            .finish()
    }
}

impl TlsReloader {
    /// Reads the files; any problem is a configuration error naming the file.
    pub fn load(files: &TlsFiles) -> Result<TlsReloader, ServeError> {
        let loaded = files.build().map_err(ServeError::Config)?;
        Ok(TlsReloader {
            files: files.clone(),
            current: ArcSwap::new(loaded.config),
            not_after: Mutex::new(loaded.not_after),
            last_error: Mutex::new(None),
        })
    }

    /// The files.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// An acceptor with the current configuration.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.load_full())
    }

    /// The serving certificate's expiry.
    pub fn not_after(&self) -> Option<Moment> {
        self.not_after.lock().ok().and_then(|t| *t)
    }

    /// The last failed reload, if the latest attempt failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Re-reads the files: a good set replaces the configuration, a bad one is reported and the last good
    /// configuration stays.
    pub fn reload(&self) {
        let outcome = self.files.build();
        let error = match outcome {
            Ok(loaded) => {
                self.current.store(loaded.config);
                if let Ok(mut t) = self.not_after.lock() {
                    *t = loaded.not_after;
                }
                tracing::info!(
                    not_after = %loaded.not_after.map(|t| t.to_string()).unwrap_or_default(),
                    "TLS certificate reloaded"
                );
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS files not reloaded; the last good certificate stays");
                Some(e)
            }
        };
        if let Ok(mut last) = self.last_error.lock() {
            *last = error;
        }
    }
}
