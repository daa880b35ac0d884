//! Mutual TLS end to end: certificates from `auth::cert`, configurations from
//! `auth::tls`, a real tokio-rustls handshake over an in-memory pipe, and the
//! subject read on the server side with `auth::subject`.
//!
//! Method: each test writes a fresh CA and certificates to a temp dir, builds
//! the server (client certificates required) and client configurations from
//! those files, then runs both ends of a handshake concurrently. The client
//! writes a byte and waits for its echo, because under TLS 1.3 the client
//! finishes its side before the server has checked the client certificate:
//! only the echo tells the client it was accepted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth::{
    CertificateAndKey, CertificateAuthority, ClientTls, ClientTlsConfig, ServerTlsConfig, Subject,
    SubjectSource, Validity,
};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{CertificateError, ProtocolVersion, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A handshake between two in-process ends takes milliseconds; this only
/// turns a hang (one end waiting for bytes never sent) into a failure.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes buffered in each direction of the in-memory pipe; a whole handshake fits.
const PIPE_BYTES: usize = 64 * 1024;

/// The server's name in its certificate and the name clients dial.
const SERVER_NAME: &str = "node-1.proglog.test";

struct Pki {
    dir: tempfile::TempDir,
    ca: CertificateAuthority,
}

impl Pki {
    /// A CA and a node certificate for [`SERVER_NAME`], on disk.
    fn new() -> Self {
        Self::with_ca_name("test CA")
    }

    fn with_ca_name(ca_name: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = CertificateAuthority::generate(ca_name, Validity::days_from_now(30)).expect("CA");
        let pki = Self { dir, ca };
        pki.save("ca", pki.ca.files());
        let node = pki
            .ca
            .issue_node(
                "node-1",
                &[SERVER_NAME.to_owned()],
                &[],
                Validity::days_from_now(1),
            )
            .expect("node certificate");
        pki.save("node", &node);
        pki
    }

    fn cert(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.pem"))
    }

    fn key(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}-key.pem"))
    }

    fn save(&self, name: &str, files: &CertificateAndKey) {
        files
            .write(&self.cert(name), &self.key(name), false)
            .expect("write");
    }

    /// The node's server configuration, requiring client certificates from the CA.
    fn server(&self) -> Arc<ServerConfig> {
        ServerTlsConfig::from_pem_files(self.cert("node"), self.key("node"), Some(&self.cert("ca")))
            .expect("server config")
    }

    /// A client trusting this CA and presenting the certificate saved as `name`.
    fn client(&self, name: Option<&str>) -> ClientTls {
        let (cert, key) = match name {
            Some(name) => (Some(self.cert(name)), Some(self.key(name))),
            None => (None, None),
        };
        ClientTlsConfig::from_pem_files(self.cert("ca"), cert.as_deref(), key.as_deref(), None)
            .expect("client config")
    }

    /// Saves a client certificate issued by this CA for `common_name`.
    fn client_cert(&self, name: &str, validity: Validity) {
        let files = self
            .ca
            .issue_client(name, validity)
            .expect("client certificate");
        self.save(name, &files);
    }

    /// Signs `params` with this CA through rcgen directly, for certificates
    /// `auth::cert` deliberately cannot make.
    fn sign_with_rcgen(&self, name: &str, params: &CertificateParams) {
        let ca_key = KeyPair::from_pem(&self.ca.files().private_key_pem).expect("CA key");
        let issuer =
            Issuer::from_ca_cert_pem(&self.ca.files().certificate_pem, ca_key).expect("issuer");
        let key = KeyPair::generate().expect("key");
        let certificate = params.signed_by(&key, &issuer).expect("sign");
        self.save(
            name,
            &CertificateAndKey {
                certificate_pem: certificate.pem(),
                private_key_pem: key.serialize_pem(),
            },
        );
    }
}

/// What each end saw.
struct Outcome {
    server: Result<Subject, String>,
    client: Result<(), String>,
    /// The version the server negotiated, when the handshake completed.
    version: Option<ProtocolVersion>,
    /// The server's error as rustls reported it, when it failed in the handshake.
    server_tls_error: Option<rustls::Error>,
    /// The client's error as rustls reported it, when it failed in the handshake.
    client_tls_error: Option<rustls::Error>,
}

async fn handshake(server: Arc<ServerConfig>, client: &ClientTls, dial: &str) -> Outcome {
    let (client_io, server_io) = tokio::io::duplex(PIPE_BYTES);
    let acceptor = TlsAcceptor::from(server);
    let connector = TlsConnector::from(client.config.clone());
    let server_name = client.server_name_for(dial).expect("server name");

    let server_end = async move {
        let mut stream = acceptor.accept(server_io).await?;
        let connection = stream.get_ref().1;
        let version = connection.protocol_version();
        let subject = Subject::from_peer_certificates(
            connection.peer_certificates(),
            SubjectSource::CommonName,
        )
        .map_err(std::io::Error::other)?;
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await?;
        stream.write_all(&byte).await?;
        stream.flush().await?;
        Ok::<_, std::io::Error>((subject, version))
    };
    let client_end = async move {
        let mut stream = connector.connect(server_name, client_io).await?;
        stream.write_all(b"x").await?;
        stream.flush().await?;
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await?;
        Ok::<_, std::io::Error>(())
    };
    let (server, client) = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        tokio::join!(server_end, client_end)
    })
    .await
    .expect("handshake finished in time");

    let tls_error = |e: &std::io::Error| {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .cloned()
    };
    let server_tls_error = server.as_ref().err().and_then(tls_error);
    let client_tls_error = client.as_ref().err().and_then(tls_error);
    let version = server.as_ref().ok().and_then(|(_, version)| *version);
    Outcome {
        server: server
            .map(|(subject, _)| subject)
            .map_err(|e| e.to_string()),
        version,
        client: client.map_err(|e| e.to_string()),
        server_tls_error,
        client_tls_error,
    }
}

/// Asserts both ends failed and the server's verifier said `expected`.
fn assert_rejected(outcome: &Outcome, expected: impl Fn(&rustls::Error) -> bool) {
    assert!(
        outcome.server.is_err(),
        "server accepted: {:?}",
        outcome.server
    );
    assert!(outcome.client.is_err(), "client was not told");
    let error = outcome
        .server_tls_error
        .as_ref()
        .expect("a TLS error on the server");
    assert!(expected(error), "unexpected server error: {error:?}");
}

fn certificate_error(error: &rustls::Error) -> Option<&CertificateError> {
    match error {
        rustls::Error::InvalidCertificate(e) => Some(e),
        _ => None,
    }
}

#[tokio::test]
async fn a_client_certificate_from_our_ca_completes_mtls_and_names_the_subject() {
    let pki = Pki::new();
    pki.client_cert("reader", Validity::days_from_now(1));
    let outcome = handshake(pki.server(), &pki.client(Some("reader")), SERVER_NAME).await;
    assert_eq!(outcome.client, Ok(()));
    assert_eq!(
        outcome.server,
        Ok(Subject::Authenticated("reader".to_owned()))
    );
    assert_eq!(outcome.version, Some(ProtocolVersion::TLSv1_3));
}

#[tokio::test]
async fn a_node_certificate_also_works_as_a_client_certificate() {
    // Nodes call their peers with the certificate they serve with.
    let pki = Pki::new();
    let outcome = handshake(pki.server(), &pki.client(Some("node")), SERVER_NAME).await;
    assert_eq!(
        outcome.server,
        Ok(Subject::Authenticated("node-1".to_owned()))
    );
}

#[tokio::test]
async fn tls_1_2_is_still_accepted() {
    let pki = Pki::new();
    pki.client_cert("reader", Validity::days_from_now(1));
    let mut client = pki.client(Some("reader"));
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(pki.cert("ca")).expect("CA file") {
        roots.add(certificate.expect("CA PEM")).expect("CA");
    }
    let tls12_only = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .expect("TLS 1.2")
    .with_root_certificates(roots)
    .with_client_cert_resolver(client.config.client_auth_cert_resolver.clone());
    client.config = Arc::new(tls12_only);
    let outcome = handshake(pki.server(), &client, SERVER_NAME).await;
    assert_eq!(
        outcome.server,
        Ok(Subject::Authenticated("reader".to_owned()))
    );
    assert_eq!(outcome.version, Some(ProtocolVersion::TLSv1_2));
}

#[tokio::test]
async fn no_client_certificate_is_rejected() {
    let pki = Pki::new();
    let outcome = handshake(pki.server(), &pki.client(None), SERVER_NAME).await;
    assert_rejected(&outcome, |e| {
        matches!(e, rustls::Error::NoCertificatesPresented)
    });
}

#[tokio::test]
async fn client_certificates_from_another_ca_are_rejected_even_under_our_ca_name() {
    let pki = Pki::new();
    // A foreign CA is unknown; one that copies our CA's name fails the signature check.
    for (other, expected) in [
        (
            Pki::with_ca_name("other CA"),
            CertificateError::UnknownIssuer,
        ),
        (Pki::with_ca_name("test CA"), CertificateError::BadSignature),
    ] {
        other.client_cert("root", Validity::days_from_now(1));
        // The client trusts our CA (so the server passes) but presents the other CA's certificate.
        let client = ClientTlsConfig::from_pem_files(
            pki.cert("ca"),
            Some(&other.cert("root")),
            Some(&other.key("root")),
            None,
        )
        .expect("client config");
        let outcome = handshake(pki.server(), &client, SERVER_NAME).await;
        assert_rejected(&outcome, |e| certificate_error(e) == Some(&expected));
    }
}

#[tokio::test]
async fn a_self_signed_client_certificate_is_rejected() {
    let pki = Pki::new();
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "root");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().expect("key");
    let certificate = params.self_signed(&key).expect("self-signed");
    pki.save(
        "root",
        &CertificateAndKey {
            certificate_pem: certificate.pem(),
            private_key_pem: key.serialize_pem(),
        },
    );
    let outcome = handshake(pki.server(), &pki.client(Some("root")), SERVER_NAME).await;
    assert_rejected(&outcome, |e| {
        matches!(certificate_error(e), Some(CertificateError::UnknownIssuer))
    });
}

#[tokio::test]
async fn a_server_auth_only_certificate_is_rejected_as_a_client_certificate() {
    let pki = Pki::new();
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "root");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = SystemTime::now().into();
    params.not_after = (SystemTime::now() + Duration::from_secs(3600)).into();
    pki.sign_with_rcgen("root", &params);
    let outcome = handshake(pki.server(), &pki.client(Some("root")), SERVER_NAME).await;
    assert_rejected(&outcome, |e| {
        matches!(
            certificate_error(e),
            Some(CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. })
        )
    });
}

#[tokio::test]
async fn an_expired_client_certificate_is_rejected() {
    let pki = Pki::new();
    let now = SystemTime::now();
    let expired = Validity {
        not_before: now - Duration::from_secs(2 * 86_400),
        not_after: now - Duration::from_secs(86_400),
    };
    pki.client_cert("root", expired);
    let outcome = handshake(pki.server(), &pki.client(Some("root")), SERVER_NAME).await;
    assert_rejected(&outcome, |e| {
        matches!(
            certificate_error(e),
            Some(CertificateError::Expired | CertificateError::ExpiredContext { .. })
        )
    });
}

#[tokio::test]
async fn a_not_yet_valid_client_certificate_is_rejected() {
    let pki = Pki::new();
    let now = SystemTime::now();
    let future = Validity {
        not_before: now + Duration::from_secs(86_400),
        not_after: now + Duration::from_secs(2 * 86_400),
    };
    pki.client_cert("root", future);
    let outcome = handshake(pki.server(), &pki.client(Some("root")), SERVER_NAME).await;
    assert_rejected(&outcome, |e| {
        matches!(
            certificate_error(e),
            Some(CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. })
        )
    });
}

#[tokio::test]
async fn the_client_refuses_a_server_certificate_for_another_name() {
    let pki = Pki::new();
    pki.client_cert("reader", Validity::days_from_now(1));
    let outcome = handshake(
        pki.server(),
        &pki.client(Some("reader")),
        "other.proglog.test",
    )
    .await;
    assert!(outcome.client.is_err(), "client accepted a wrong name");
    let error = outcome
        .client_tls_error
        .as_ref()
        .expect("a TLS error on the client");
    assert!(
        matches!(
            certificate_error(error),
            Some(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )
        ),
        "{error:?}"
    );
    assert!(outcome.server.is_err());
}

#[tokio::test]
async fn a_server_name_override_verifies_against_the_override() {
    // Dialling an address the certificate does not name works when the
    // configured server name is one it does.
    let pki = Pki::new();
    pki.client_cert("reader", Validity::days_from_now(1));
    let client = ClientTlsConfig::from_pem_files(
        pki.cert("ca"),
        Some(&pki.cert("reader")),
        Some(&pki.key("reader")),
        Some(SERVER_NAME),
    )
    .expect("client config");
    let outcome = handshake(pki.server(), &client, "127.0.0.1").await;
    assert_eq!(
        outcome.server,
        Ok(Subject::Authenticated("reader".to_owned()))
    );
}
