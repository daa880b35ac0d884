//! A certificate authority and the certificates it issues: the logic behind
//! `proglog cert`, so no external tool (the book used CFSSL) is needed.
//!
//! Keys are ECDSA P-256 (rcgen's default; every TLS stack speaks it).
//! Certificates start [`CLOCK_SKEW_ALLOWANCE`] before they are issued, so a
//! peer whose clock runs a little behind accepts them at once.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::tls::{
    certified_key, ensure_ca, parse_certificates, parse_private_key, provider, read_file,
};

/// Default lifetime of a CA certificate: ten years, as CAs are hard to rotate.
pub const CA_VALIDITY_DAYS: u32 = 3650;

/// Default lifetime of a server, node or client certificate: one year.
pub const LEAF_VALIDITY_DAYS: u32 = 365;

/// How long before issuing a certificate becomes valid.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(5 * 60);

const SECONDS_PER_DAY: u64 = 24 * 60 * 60;

/// Private keys are readable by their owner only.
const KEY_FILE_MODE: u32 = 0o600;

/// Certificates are public.
const CERTIFICATE_FILE_MODE: u32 = 0o644;

/// When a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// First instant of validity.
    pub not_before: SystemTime,
    /// Last instant of validity.
    pub not_after: SystemTime,
}

impl Validity {
    /// From [`CLOCK_SKEW_ALLOWANCE`] ago until `days` days from now.
    pub fn days_from_now(days: u32) -> Self {
        let now = SystemTime::now();
        Self {
            not_before: now - CLOCK_SKEW_ALLOWANCE,
            not_after: now + Duration::from_secs(u64::from(days) * SECONDS_PER_DAY),
        }
    }

    fn apply(self, params: &mut CertificateParams) -> Result<()> {
        if self.not_after <= self.not_before {
            return Err(Error::InvalidRequest {
                reason: "validity ends before it begins".to_owned(),
            });
        }
        params.not_before = OffsetDateTime::from(self.not_before);
        params.not_after = OffsetDateTime::from(self.not_after);
        Ok(())
    }
}

/// A PEM certificate and its PEM (PKCS#8) private key.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateAndKey {
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The private key, PEM; keep it secret.
    pub private_key_pem: String,
}

impl std::fmt::Debug for CertificateAndKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAndKey")
            .field("certificate_pem", &self.certificate_pem)
            .field("private_key_pem", &"<secret>")
            .finish()
    }
}

impl CertificateAndKey {
    /// Writes the certificate (mode 0644) and the key (mode 0600, set at
    /// creation so the key is never readable by others, even briefly).
    ///
    /// Without `force`, nothing is written if either file exists. With it,
    /// existing files are replaced by new ones (not truncated in place, so a
    /// key file with loose permissions does not keep them).
    ///
    /// # Errors
    /// [`Error::FileExists`] without `force`; [`Error::WriteFile`] naming
    /// the file; [`Error::InvalidRequest`] if both paths are the same.
    pub fn write(&self, cert_path: &Path, key_path: &Path, force: bool) -> Result<()> {
        if cert_path == key_path {
            return Err(Error::InvalidRequest {
                reason: format!("certificate and key paths are both {}", cert_path.display()),
            });
        }
        if !force {
            // Checked up front so a refusal leaves neither file written.
            if let Some(existing) = [cert_path, key_path]
                .into_iter()
                .find(|p| p.symlink_metadata().is_ok())
            {
                return Err(Error::FileExists {
                    path: existing.to_path_buf(),
                });
            }
        }
        write_new_file(key_path, &self.private_key_pem, KEY_FILE_MODE, force)?;
        write_new_file(
            cert_path,
            &self.certificate_pem,
            CERTIFICATE_FILE_MODE,
            force,
        )
    }
}

/// Creates `path` afresh with `mode` (Unix permission bits, before umask).
fn write_new_file(path: &Path, contents: &str, mode: u32, force: bool) -> Result<()> {
    let write_error = |source| Error::WriteFile {
        path: path.to_path_buf(),
        source,
    };
    if force {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(write_error(e)),
            _ => {}
        }
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => Error::FileExists {
            path: path.to_path_buf(),
        },
        _ => write_error(e),
    })?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write_error)
}

/// A CA that can issue certificates.
pub struct CertificateAuthority {
    files: CertificateAndKey,
    issuer: Issuer<'static, KeyPair>,
    not_after: SystemTime,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("files", &self.files)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Creates a CA: a new key and a self-signed certificate that may sign
    /// end-entity certificates only (path length 0).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an empty validity; [`Error::Generate`].
    pub fn generate(common_name: &str, validity: Validity) -> Result<Self> {
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name_only(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity.apply(&mut params)?;
        let key = KeyPair::generate().map_err(generate_error)?;
        let certificate = params.self_signed(&key).map_err(generate_error)?;
        let files = CertificateAndKey {
            certificate_pem: certificate.pem(),
            private_key_pem: key.serialize_pem(),
        };
        Ok(Self {
            files,
            issuer: Issuer::new(params, key),
            not_after: validity.not_after,
        })
    }

    /// Loads a CA certificate and its key, ours or another tool's (the key
    /// must be PKCS#8; `openssl pkcs8 -topk8 -nocrypt` converts others).
    ///
    /// # Errors
    /// Each names the file at fault: unreadable, not a CA certificate, a key
    /// that is not the certificate's or that cannot sign.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self> {
        let read_text = |path: &Path| {
            String::from_utf8(read_file(path)?).map_err(|e| Error::ReadFile {
                path: path.to_path_buf(),
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            })
        };
        let certificate_pem = read_text(cert_path)?;
        let private_key_pem = read_text(key_path)?;
        let certificates = parse_certificates(cert_path, certificate_pem.as_bytes())?;
        let key = parse_private_key(key_path, private_key_pem.as_bytes())?;
        ensure_ca(cert_path, &certificates[0])?;
        let not_after = not_after(cert_path, &certificates[0])?;
        // rcgen would sign with a mismatched key without complaint, and every
        // certificate issued would then fail verification.
        certified_key(cert_path, certificates, key_path, key, &provider())?;

        let key_pair = KeyPair::from_pem(&private_key_pem).map_err(|e| Error::InvalidKey {
            path: key_path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let issuer =
            Issuer::from_ca_cert_pem(&certificate_pem, key_pair).map_err(|e| Error::InvalidCa {
                path: cert_path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            files: CertificateAndKey {
                certificate_pem,
                private_key_pem,
            },
            issuer,
            not_after,
        })
    }

    /// The CA's certificate and key, to write or to distribute the certificate.
    pub fn files(&self) -> &CertificateAndKey {
        &self.files
    }

    /// Issues a server/node certificate for `dns_names` and `ip_addresses`,
    /// usable both to serve (serverAuth) and to call peers (clientAuth).
    ///
    /// The default policy grants `replicate` to subjects starting `node-`, so
    /// a node's `common_name` should be `node-<id>`.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] without any name, for a DNS name that is not
    /// ASCII, or a validity outlasting the CA's; [`Error::Generate`].
    pub fn issue_node(
        &self,
        common_name: &str,
        dns_names: &[String],
        ip_addresses: &[IpAddr],
        validity: Validity,
    ) -> Result<CertificateAndKey> {
        if dns_names.is_empty() && ip_addresses.is_empty() {
            // TLS clients match the server name against SANs only.
            return Err(Error::InvalidRequest {
                reason: "a server certificate needs at least one DNS name or IP address".to_owned(),
            });
        }
        let mut params = leaf_params(common_name);
        for name in dns_names {
            let name = name
                .as_str()
                .try_into()
                .map_err(|e| Error::InvalidRequest {
                    reason: format!("DNS name {name:?}: {e}"),
                })?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params
            .subject_alt_names
            .extend(ip_addresses.iter().copied().map(SanType::IpAddress));
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.issue(params, validity)
    }

    /// Issues a client certificate whose CN is the subject policies see.
    ///
    /// # Errors
    /// As [`issue_node`](Self::issue_node), names aside.
    pub fn issue_client(&self, common_name: &str, validity: Validity) -> Result<CertificateAndKey> {
        let mut params = leaf_params(common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, validity)
    }

    /// Signs `params` with a new key.
    fn issue(
        &self,
        mut params: CertificateParams,
        validity: Validity,
    ) -> Result<CertificateAndKey> {
        if validity.not_after > self.not_after {
            // It would stop verifying when the CA expires, silently early.
            return Err(Error::InvalidRequest {
                reason: "the certificate would outlast its CA".to_owned(),
            });
        }
        validity.apply(&mut params)?;
        let key = KeyPair::generate().map_err(generate_error)?;
        let certificate = params
            .signed_by(&key, &self.issuer)
            .map_err(generate_error)?;
        Ok(CertificateAndKey {
            certificate_pem: certificate.pem(),
            private_key_pem: key.serialize_pem(),
        })
    }
}

fn common_name_only(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

fn leaf_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name_only(common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params
}

fn generate_error(source: rcgen::Error) -> Error {
    Error::Generate { source }
}

fn not_after(path: &Path, certificate: &[u8]) -> Result<SystemTime> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(certificate).map_err(|e| Error::InvalidCa {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let seconds = parsed.validity().not_after.timestamp();
    Ok(match u64::try_from(seconds) {
        Ok(seconds) => SystemTime::UNIX_EPOCH + Duration::from_secs(seconds),
        Err(_) => SystemTime::UNIX_EPOCH,
    })
}

#[cfg(test)]
mod tests {
    //! What the issued certificates contain (parsed back with x509-parser)
    //! and how files are written; handshakes are in `tests/mtls.rs`.

    use std::os::unix::fs::PermissionsExt;

    use x509_parser::extensions::GeneralName;
    use x509_parser::pem::parse_x509_pem;

    use super::*;

    fn ca() -> CertificateAuthority {
        CertificateAuthority::generate("proglog test CA", Validity::days_from_now(CA_VALIDITY_DAYS))
            .expect("CA")
    }

    /// Parses a PEM certificate and hands it to `check`.
    fn inspect(pem: &str, check: impl FnOnce(&x509_parser::certificate::X509Certificate<'_>)) {
        let (_, pem) = parse_x509_pem(pem.as_bytes()).expect("PEM");
        let certificate = pem.parse_x509().expect("X.509");
        check(&certificate);
    }

    #[test]
    fn the_ca_is_a_self_signed_ca_valid_for_the_requested_time() {
        let ca = ca();
        inspect(&ca.files().certificate_pem, |certificate| {
            assert!(certificate.is_ca());
            assert_eq!(certificate.subject(), certificate.issuer());
            let constraints = certificate
                .basic_constraints()
                .expect("ext")
                .expect("present");
            assert_eq!(constraints.value.path_len_constraint, Some(0));
            let days = (certificate.validity().not_after.timestamp()
                - certificate.validity().not_before.timestamp())
                / 86_400;
            assert_eq!(days, i64::from(CA_VALIDITY_DAYS));
        });
    }

    #[test]
    fn a_node_certificate_names_its_hosts_and_serves_and_calls() {
        let ca = ca();
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        let node = ca
            .issue_node(
                "node-1",
                &["node-1.proglog".to_owned(), "localhost".to_owned()],
                &[ip],
                Validity::days_from_now(LEAF_VALIDITY_DAYS),
            )
            .expect("node");
        inspect(&node.certificate_pem, |certificate| {
            assert!(!certificate.is_ca());
            let cn = certificate.subject().iter_common_name().next().expect("CN");
            assert_eq!(cn.as_str().expect("str"), "node-1");
            let sans = certificate
                .subject_alternative_name()
                .expect("ext")
                .expect("present");
            let names = &sans.value.general_names;
            assert!(names.contains(&GeneralName::DNSName("node-1.proglog")));
            assert!(names.contains(&GeneralName::DNSName("localhost")));
            assert!(names.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])));
            let usage = certificate
                .extended_key_usage()
                .expect("ext")
                .expect("present")
                .value;
            assert!(usage.server_auth && usage.client_auth);
        });
    }

    #[test]
    fn a_client_certificate_is_for_client_auth_only() {
        let client = ca()
            .issue_client("reader", Validity::days_from_now(LEAF_VALIDITY_DAYS))
            .expect("client");
        inspect(&client.certificate_pem, |certificate| {
            let usage = certificate
                .extended_key_usage()
                .expect("ext")
                .expect("present")
                .value;
            assert!(usage.client_auth && !usage.server_auth);
        });
    }

    #[test]
    fn requests_without_names_or_outlasting_the_ca_are_refused() {
        let ca =
            CertificateAuthority::generate("short CA", Validity::days_from_now(1)).expect("CA");
        let error = ca.issue_node("node-1", &[], &[], Validity::days_from_now(1));
        assert!(
            matches!(error, Err(Error::InvalidRequest { .. })),
            "{error:?}"
        );
        let error = ca.issue_client("reader", Validity::days_from_now(LEAF_VALIDITY_DAYS));
        assert!(
            matches!(error, Err(Error::InvalidRequest { .. })),
            "{error:?}"
        );
        let backwards = Validity {
            not_before: SystemTime::now(),
            not_after: SystemTime::now() - Duration::from_secs(60),
        };
        let error = ca.issue_client("reader", backwards);
        assert!(
            matches!(error, Err(Error::InvalidRequest { .. })),
            "{error:?}"
        );
    }

    #[test]
    fn files_are_written_with_a_private_key_and_never_overwritten_without_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert_path, key_path) = (dir.path().join("ca.pem"), dir.path().join("ca-key.pem"));
        let first = ca();
        first
            .files()
            .write(&cert_path, &key_path, false)
            .expect("write");
        let mode =
            |path: &Path| std::fs::metadata(path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&key_path), 0o600);
        assert_eq!(mode(&cert_path) & 0o600, 0o600);

        let second = ca();
        let error = second
            .files()
            .write(&cert_path, &key_path, false)
            .expect_err("exists");
        assert!(
            matches!(&error, Error::FileExists { path } if *path == cert_path),
            "{error}"
        );
        // Only the key existing is refused as well, and the certificate is not written.
        std::fs::remove_file(&cert_path).expect("remove");
        let error = second
            .files()
            .write(&cert_path, &key_path, false)
            .expect_err("key exists");
        assert!(
            matches!(&error, Error::FileExists { path } if *path == key_path),
            "{error}"
        );
        assert!(!cert_path.exists());

        // A key file loosened by hand is replaced by a private one.
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        second
            .files()
            .write(&cert_path, &key_path, true)
            .expect("force");
        assert_eq!(mode(&key_path), 0o600);
        let loaded = CertificateAuthority::load(&cert_path, &key_path).expect("load");
        assert_eq!(loaded.files(), second.files());
    }

    #[test]
    fn a_loaded_ca_issues_certificates_chaining_to_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert_path, key_path) = (dir.path().join("ca.pem"), dir.path().join("ca-key.pem"));
        let ca = ca();
        ca.files()
            .write(&cert_path, &key_path, false)
            .expect("write");
        let loaded = CertificateAuthority::load(&cert_path, &key_path).expect("load");
        let client = loaded
            .issue_client("root", Validity::days_from_now(LEAF_VALIDITY_DAYS))
            .expect("client");
        inspect(&ca.files().certificate_pem, |ca_certificate| {
            inspect(&client.certificate_pem, |certificate| {
                assert_eq!(certificate.issuer(), ca_certificate.subject());
                certificate
                    .verify_signature(Some(ca_certificate.public_key()))
                    .expect("signed by the CA");
            });
        });
    }

    #[test]
    fn loading_refuses_a_leaf_or_a_foreign_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = |name: &str| dir.path().join(name);
        let ca = ca();
        ca.files()
            .write(&path("ca.pem"), &path("ca-key.pem"), false)
            .expect("write");
        let leaf = ca
            .issue_client("root", Validity::days_from_now(LEAF_VALIDITY_DAYS))
            .expect("leaf");
        leaf.write(&path("leaf.pem"), &path("leaf-key.pem"), false)
            .expect("write");

        let error = CertificateAuthority::load(&path("leaf.pem"), &path("leaf-key.pem"))
            .expect_err("leaf as CA");
        assert!(matches!(error, Error::InvalidCa { .. }), "{error}");
        let error = CertificateAuthority::load(&path("ca.pem"), &path("leaf-key.pem"))
            .expect_err("foreign key");
        assert!(matches!(error, Error::KeyMismatch { .. }), "{error}");
    }
}
