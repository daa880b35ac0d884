//! TLS for the client: the CA that node certificates must chain to, and
//! optionally a client certificate for mutual TLS.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use crate::error::{Error, Result};

/// gRPC needs HTTP/2.
const ALPN_H2: &[u8] = b"h2";

/// How the client speaks TLS to every node.
#[derive(Clone)]
pub struct TlsConfig {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) server_name: Option<ServerName<'static>>,
    pub(crate) presents_certificate: bool,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("server_name", &self.server_name)
            .field("presents_certificate", &self.presents_certificate)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// A configuration built elsewhere (e.g. by the agent's `auth` crate).
    /// It should offer ALPN `h2`; the client adds it when missing.
    /// `server_name` replaces the host dialled when verifying every node's
    /// certificate (for nodes dialled by an IP their certificate lacks).
    pub fn from_rustls(
        config: Arc<ClientConfig>,
        server_name: Option<ServerName<'static>>,
    ) -> Self {
        let config = if config.alpn_protocols.iter().any(|p| p == ALPN_H2) {
            config
        } else {
            let mut owned = (*config).clone();
            owned.alpn_protocols.push(ALPN_H2.to_vec());
            Arc::new(owned)
        };
        Self {
            presents_certificate: config.client_auth_cert_resolver.has_certs(),
            config,
            server_name,
        }
    }

    /// TLS verified against the CA certificates in `ca_pem`, presenting
    /// `identity` (certificate chain PEM, private key PEM) when given.
    ///
    /// # Errors
    /// [`Error::Config`]: no certificate in the CA PEM, a malformed
    /// certificate or key, a key that does not match, a bad server name.
    pub fn from_pem(
        ca_pem: &[u8],
        identity: Option<(&[u8], &[u8])>,
        server_name: Option<&str>,
    ) -> Result<Self> {
        let config_error = |message: String| Error::Config { message };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        let cas = CertificateDer::pem_slice_iter(ca_pem)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| config_error(format!("CA PEM: {e}")))?;
        if cas.is_empty() {
            return Err(config_error("CA PEM: no certificate in it".to_owned()));
        }
        for ca in cas {
            roots
                .add(ca)
                .map_err(|e| config_error(format!("CA certificate: {e}")))?;
        }
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error(e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match identity {
            Some((cert_pem, key_pem)) => {
                let chain = CertificateDer::pem_slice_iter(cert_pem)
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| config_error(format!("client certificate PEM: {e}")))?;
                let key = PrivateKeyDer::from_pem_slice(key_pem)
                    .map_err(|e| config_error(format!("client key PEM: {e}")))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| config_error(format!("client certificate and key: {e}")))?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        let server_name = server_name
            .map(|name| {
                ServerName::try_from(name.to_owned())
                    .map_err(|_| config_error(format!("invalid TLS server name {name:?}")))
            })
            .transpose()?;
        Ok(Self::from_rustls(Arc::new(config), server_name))
    }

    /// As [`from_pem`](Self::from_pem), reading the PEM files.
    ///
    /// # Errors
    /// A file cannot be read (the error names it), or as
    /// [`from_pem`](Self::from_pem).
    pub fn from_pem_files(
        ca_file: &Path,
        identity: Option<(&Path, &Path)>,
        server_name: Option<&str>,
    ) -> Result<Self> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| Error::Config {
                message: format!("reading {}: {e}", path.display()),
            })
        };
        let ca = read(ca_file)?;
        let identity = identity
            .map(|(cert, key)| Ok::<_, Error>((read(cert)?, read(key)?)))
            .transpose()?;
        Self::from_pem(
            &ca,
            identity
                .as_ref()
                .map(|(cert, key)| (cert.as_slice(), key.as_slice())),
            server_name,
        )
    }
}
