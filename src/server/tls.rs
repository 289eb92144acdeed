//! TLS and mutual TLS for the TCP listener (rustls with `ring`, through tonic).
//!
//! A certificate chain and its private key (PEM) turn TLS on; a client CA bundle (PEM) additionally requires every
//! client to present a certificate that chains to it, so a client without one is refused during the handshake.
//! The Unix socket stays plaintext: it is protected by its 0600 mode. The files are read once, at start-up; an
//! unreadable or malformed file is a configuration error and nothing is served.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

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

fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, ServeError> {
    let bytes = std::fs::read(path).map_err(|e| {
        ServeError::Config(format!(
            "cannot read the TLS {what} {}: {e}",
            path.display()
        ))
    })?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(ServeError::Config(format!(
            "the TLS {what} {} is not PEM (no `-----BEGIN` line)",
            path.display()
        )));
    }
    Ok(bytes)
}

impl TlsFiles {
    /// Reads the files into tonic's server configuration.
    pub fn load(&self) -> Result<ServerTlsConfig, ServeError> {
        let cert = read_pem(&self.cert, "certificate")?;
        let key = read_pem(&self.key, "private key")?;
        let mut config = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        if let Some(ca) = &self.client_ca {
            let ca = read_pem(ca, "client CA")?;
            // Client authentication is required (tonic's default once a client CA is set).
            config = config
                .client_ca_root(Certificate::from_pem(ca))
                .client_auth_optional(false);
        }
        Ok(config)
    }
}
