//! rustls server and client configurations built from PEM files.
//!
//! Every configuration uses the ring provider explicitly rather than the
//! process-wide default: if another crate in the binary ever enables a second
//! rustls provider, `ServerConfig::builder()` would panic at run time, while an
//! explicit provider keeps working.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};

use crate::error::{Error, Result};

/// TLS 1.2 and 1.3 only; rustls implements nothing older, and naming the
/// versions keeps that true if its defaults ever change.
const PROTOCOL_VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// gRPC needs HTTP/2; the HTTP API on the same port also accepts HTTP/1.1.
const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The one crypto provider of proglog.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Where a server's TLS material lives.
///
/// [`load`](Self::load) can be called again to pick up replaced files (the
/// future SIGHUP reload); each call reads every file afresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key of the leaf (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM CA certificates that sign client certificates. When set, every
    /// client must present a certificate that chains to one of them (mTLS).
    pub client_ca_file: Option<PathBuf>,
}

impl ServerTlsConfig {
    /// Reads the files and builds the server configuration; see [`load`](Self::load).
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn from_pem_files(
        cert_file: impl AsRef<Path>,
        key_file: impl AsRef<Path>,
        client_ca_file: Option<&Path>,
    ) -> Result<Arc<ServerConfig>> {
        Self {
            cert_file: cert_file.as_ref().to_path_buf(),
            key_file: key_file.as_ref().to_path_buf(),
            client_ca_file: client_ca_file.map(Path::to_path_buf),
        }
        .load()
    }

    /// Reads the files and builds a configuration offering TLS 1.2 and 1.3
    /// and ALPN `h2` and `http/1.1`, requiring and verifying client
    /// certificates when a client CA is set.
    ///
    /// # Errors
    /// Each names the file at fault: missing or unreadable, malformed PEM, no
    /// certificate or key in it, a key that does not match the certificate,
    /// or a client CA file without a usable CA certificate.
    pub fn load(&self) -> Result<Arc<ServerConfig>> {
        let provider = provider();
        let certified_key = load_certified_key(&self.cert_file, &self.key_file, &provider)?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(PROTOCOL_VERSIONS)
            .map_err(|source| Error::Tls { source })?;
        let builder = match &self.client_ca_file {
            Some(ca_file) => {
                let roots = load_root_store(ca_file)?;
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| Error::InvalidCa {
                        path: ca_file.clone(),
                        reason: e.to_string(),
                    })?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config =
            builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified_key)));
        config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// Where a client's (the CLI's) TLS material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsConfig {
    /// PEM CA certificates the server certificate must chain to.
    pub ca_file: PathBuf,
    /// PEM client certificate chain for mTLS; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate; needs `cert_file`.
    pub key_file: Option<PathBuf>,
    /// The name to verify the server certificate against instead of the host
    /// dialled (e.g. dialling an IP whose certificate names only DNS names).
    pub server_name: Option<String>,
}

/// A client configuration and the server name override to use with it.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// The rustls configuration: TLS 1.2/1.3, ALPN `h2` and `http/1.1`.
    pub config: Arc<ClientConfig>,
    /// The configured override, if any; see [`ClientTls::server_name_for`].
    pub server_name: Option<ServerName<'static>>,
}

impl ClientTls {
    /// The name to verify the server's certificate against when dialling
    /// `host`: the configured override, else `host` itself.
    ///
    /// # Errors
    /// [`Error::InvalidServerName`] if `host` is neither a DNS name nor an IP.
    pub fn server_name_for(&self, host: &str) -> Result<ServerName<'static>> {
        match &self.server_name {
            Some(name) => Ok(name.clone()),
            None => parse_server_name(host),
        }
    }
}

impl ClientTlsConfig {
    /// Reads the files and builds the client configuration; see [`load`](Self::load).
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn from_pem_files(
        ca_file: impl AsRef<Path>,
        cert_file: Option<&Path>,
        key_file: Option<&Path>,
        server_name: Option<&str>,
    ) -> Result<ClientTls> {
        Self {
            ca_file: ca_file.as_ref().to_path_buf(),
            cert_file: cert_file.map(Path::to_path_buf),
            key_file: key_file.map(Path::to_path_buf),
            server_name: server_name.map(str::to_owned),
        }
        .load()
    }

    /// Reads the files and builds a configuration that verifies the server
    /// against the CA file and, when a certificate and key are set, presents
    /// them.
    ///
    /// # Errors
    /// Each names the file at fault, as for [`ServerTlsConfig::load`];
    /// [`Error::IncompleteClientIdentity`] when only one of certificate and
    /// key is set; [`Error::InvalidServerName`] for a bad override.
    pub fn load(&self) -> Result<ClientTls> {
        let provider = provider();
        let server_name = self
            .server_name
            .as_deref()
            .map(parse_server_name)
            .transpose()?;
        let roots = load_root_store(&self.ca_file)?;
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| Error::InvalidCa {
                path: self.ca_file.clone(),
                reason: e.to_string(),
            })?;
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(PROTOCOL_VERSIONS)
            .map_err(|source| Error::Tls { source })?
            .with_webpki_verifier(verifier);
        let mut config = match (&self.cert_file, &self.key_file) {
            (Some(cert_file), Some(key_file)) => {
                let certified_key = load_certified_key(cert_file, key_file, &provider)?;
                builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified_key)))
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(Error::IncompleteClientIdentity),
        };
        config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
        Ok(ClientTls {
            config: Arc::new(config),
            server_name,
        })
    }
}

fn parse_server_name(name: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(name.to_owned()).map_err(|_| Error::InvalidServerName {
        name: name.to_owned(),
    })
}

/// Reads a whole file, naming it in the error.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses every certificate of a PEM file; at least one must be there.
pub(crate) fn parse_certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Pem {
            path: path.to_path_buf(),
            source,
        })?;
    if certificates.is_empty() {
        return Err(Error::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certificates)
}

/// Parses the first private key of a PEM file.
pub(crate) fn parse_private_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|source| match source {
        pem::Error::NoItemsFound => Error::NoPrivateKey {
            path: path.to_path_buf(),
        },
        source => Error::Pem {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// Pairs a certificate chain with its key, refusing a key that is not the
/// leaf's: rustls would otherwise only fail at the first handshake.
pub(crate) fn certified_key(
    cert_path: &Path,
    certificates: Vec<CertificateDer<'static>>,
    key_path: &Path,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<CertifiedKey> {
    let signing_key =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| Error::InvalidKey {
                path: key_path.to_path_buf(),
                reason: e.to_string(),
            })?;
    let certified_key = CertifiedKey::new(certificates, signing_key);
    match certified_key.keys_match() {
        Ok(()) => Ok(certified_key),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(Error::KeyMismatch {
                cert_path: cert_path.to_path_buf(),
                key_path: key_path.to_path_buf(),
            })
        }
        // The provider cannot derive the public key to compare; the
        // handshake will still fail if they differ.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified_key)
        }
        Err(e) => Err(Error::InvalidCertificate {
            path: cert_path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

fn load_certified_key(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey> {
    let certificates = parse_certificates(cert_path, &read_file(cert_path)?)?;
    let key = parse_private_key(key_path, &read_file(key_path)?)?;
    certified_key(cert_path, certificates, key_path, key, provider)
}

/// Reads CA certificates into a root store; each must be a CA certificate.
fn load_root_store(path: &Path) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for certificate in parse_certificates(path, &read_file(path)?)? {
        ensure_ca(path, &certificate)?;
        roots.add(certificate).map_err(|e| Error::InvalidCa {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(Arc::new(roots))
}

/// Refuses a certificate that is not a CA. A leaf given as the CA file would
/// otherwise load fine and then reject every peer with an unhelpful
/// "unknown issuer".
pub(crate) fn ensure_ca(path: &Path, certificate: &CertificateDer<'_>) -> Result<()> {
    let invalid = |reason: String| Error::InvalidCa {
        path: path.to_path_buf(),
        reason,
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate)
        .map_err(|e| invalid(format!("cannot parse certificate: {e}")))?;
    if parsed.is_ca() {
        Ok(())
    } else {
        Err(invalid(format!(
            "{} is not a CA certificate (basicConstraints CA is not set)",
            parsed.subject()
        )))
    }
}

#[cfg(test)]
mod tests {
    //! Error paths of the loaders and the shape of the built configurations,
    //! with certificates issued per run; handshakes are in `tests/mtls.rs`.

    use std::path::Path;

    use super::*;
    use crate::cert::{CertificateAuthority, Validity};

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        /// A CA, a node certificate for `localhost` and a second key, on disk.
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            let ca =
                CertificateAuthority::generate("test CA", Validity::days_from_now(2)).expect("CA");
            ca.files()
                .write(
                    &dir.path().join("ca.pem"),
                    &dir.path().join("ca-key.pem"),
                    false,
                )
                .expect("write CA");
            let node = ca
                .issue_node(
                    "node-1",
                    &["localhost".to_owned()],
                    &[],
                    Validity::days_from_now(1),
                )
                .expect("node certificate");
            node.write(
                &dir.path().join("node.pem"),
                &dir.path().join("node-key.pem"),
                false,
            )
            .expect("write node");
            let other = ca
                .issue_client("other", Validity::days_from_now(1))
                .expect("client certificate");
            other
                .write(
                    &dir.path().join("other.pem"),
                    &dir.path().join("other-key.pem"),
                    false,
                )
                .expect("write other");
            Self { dir }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn write(&self, name: &str, contents: &str) -> PathBuf {
            let path = self.path(name);
            std::fs::write(&path, contents).expect("write");
            path
        }
    }

    fn server(files: &Files, cert: &str, key: &str, ca: Option<&str>) -> Result<Arc<ServerConfig>> {
        let ca = ca.map(|name| files.path(name));
        ServerTlsConfig::from_pem_files(files.path(cert), files.path(key), ca.as_deref())
    }

    #[test]
    fn server_config_offers_h2_and_http1_with_or_without_client_ca() {
        // Whether client certificates are required is observable only in a
        // handshake: see tests/mtls.rs.
        let files = Files::new();
        for ca in [Some("ca.pem"), None] {
            let config = server(&files, "node.pem", "node-key.pem", ca).expect("config");
            assert_eq!(
                config.alpn_protocols,
                vec![b"h2".to_vec(), b"http/1.1".to_vec()]
            );
        }
    }

    #[test]
    fn missing_files_are_named() {
        let files = Files::new();
        for (cert, key, ca, missing) in [
            ("absent.pem", "node-key.pem", None, "absent.pem"),
            ("node.pem", "absent-key.pem", None, "absent-key.pem"),
            (
                "node.pem",
                "node-key.pem",
                Some("absent-ca.pem"),
                "absent-ca.pem",
            ),
        ] {
            let error = server(&files, cert, key, ca).expect_err("missing file");
            assert!(
                matches!(&error, Error::ReadFile { path, .. } if path.ends_with(missing)),
                "{error}"
            );
            assert!(error.to_string().contains(missing), "{error}");
        }
    }

    #[test]
    fn a_pem_file_without_a_certificate_is_refused() {
        let files = Files::new();
        // A key file given as the certificate: valid PEM, no certificate.
        let error = server(&files, "node-key.pem", "node-key.pem", None).expect_err("no cert");
        assert!(
            matches!(&error, Error::NoCertificate { path } if path.ends_with("node-key.pem")),
            "{error}"
        );
        files.write("empty.pem", "");
        let error = server(&files, "node.pem", "empty.pem", None).expect_err("no key");
        assert!(
            matches!(&error, Error::NoPrivateKey { path } if path.ends_with("empty.pem")),
            "{error}"
        );
    }

    #[test]
    fn a_key_of_another_certificate_is_a_mismatch_naming_both_files() {
        let files = Files::new();
        let error = server(&files, "node.pem", "other-key.pem", None).expect_err("mismatch");
        assert!(matches!(error, Error::KeyMismatch { .. }), "{error}");
        let message = error.to_string();
        assert!(
            message.contains("node.pem") && message.contains("other-key.pem"),
            "{message}"
        );
    }

    #[test]
    fn a_bad_client_ca_file_is_refused() {
        let files = Files::new();
        // A leaf certificate is not a CA.
        let error = server(&files, "node.pem", "node-key.pem", Some("node.pem")).expect_err("leaf");
        assert!(
            matches!(&error, Error::InvalidCa { path, .. } if path.ends_with("node.pem")),
            "{error}"
        );
        // Garbage between PEM markers.
        files.write(
            "garbage.pem",
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
        );
        let error =
            server(&files, "node.pem", "node-key.pem", Some("garbage.pem")).expect_err("garbage");
        assert!(
            matches!(&error, Error::InvalidCa { path, .. } if path.ends_with("garbage.pem")),
            "{error}"
        );
    }

    #[test]
    fn client_config_needs_both_cert_and_key_and_a_valid_server_name() {
        let files = Files::new();
        let ca = files.path("ca.pem");
        let cert = files.path("other.pem");
        let key = files.path("other-key.pem");

        let tls = ClientTlsConfig::from_pem_files(&ca, Some(&cert), Some(&key), Some("node-1"))
            .expect("client config");
        assert!(tls.config.client_auth_cert_resolver.has_certs());
        assert_eq!(
            tls.config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let name = tls.server_name_for("10.0.0.1").expect("name");
        assert_eq!(name.to_str(), "node-1");

        let anonymous = ClientTlsConfig::from_pem_files(&ca, None, None, None).expect("no cert");
        assert!(!anonymous.config.client_auth_cert_resolver.has_certs());
        assert_eq!(
            anonymous.server_name_for("10.0.0.1").expect("ip").to_str(),
            "10.0.0.1"
        );

        let error = ClientTlsConfig::from_pem_files(&ca, Some(&cert), None, None)
            .expect_err("cert without key");
        assert!(matches!(error, Error::IncompleteClientIdentity), "{error}");

        let error = ClientTlsConfig::from_pem_files(&ca, None, None, Some("not a name!"))
            .expect_err("bad name");
        assert!(matches!(error, Error::InvalidServerName { .. }), "{error}");

        let error =
            ClientTlsConfig::from_pem_files(Path::new("/nonexistent/ca.pem"), None, None, None)
                .expect_err("missing CA");
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }
}
