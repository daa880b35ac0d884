//! Who is calling: the subject named by a verified peer certificate.
//!
//! Parsing uses x509-parser. webpki (already under rustls) exposes the SAN DNS
//! and URI names but only the raw DER of the subject, so the CN would need a
//! hand-written DER walker; x509-parser is in the tree anyway (rcgen needs it
//! to sign with a CA read from disk) and is a maintained parser, where a
//! hand-written one would be one more decoder of network bytes to fuzz.

use std::fmt;
use std::str::FromStr;

use rustls::pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::error::{Error, Result};

/// Which field of the peer certificate names the subject.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SubjectSource {
    /// The subject's common name (CN); there must be exactly one.
    #[default]
    CommonName,
    /// The first URI in the subject alternative names (e.g. a SPIFFE ID).
    SanUri,
    /// The first DNS name in the subject alternative names.
    SanDns,
}

impl fmt::Display for SubjectSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CommonName => "cn",
            Self::SanUri => "san-uri",
            Self::SanDns => "san-dns",
        })
    }
}

impl FromStr for SubjectSource {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        match name {
            "cn" => Ok(Self::CommonName),
            "san-uri" => Ok(Self::SanUri),
            "san-dns" => Ok(Self::SanDns),
            _ => Err(Error::UnknownSubjectSource {
                name: name.to_owned(),
            }),
        }
    }
}

/// The caller as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// No verified certificate: plaintext, or TLS without client certificates.
    Anonymous,
    /// The name taken from a verified client certificate.
    Authenticated(String),
}

impl Subject {
    /// The subject of a connection from its peer certificates, as rustls'
    /// `peer_certificates()` returns them (leaf first).
    ///
    /// Only pass certificates rustls has verified (a server configured with a
    /// client CA); this function checks no signature, date or usage.
    ///
    /// # Errors
    /// [`Error::MissingSubject`] if the leaf lacks the field, or has an empty
    /// one; [`Error::AmbiguousSubject`] for more than one CN;
    /// [`Error::UnparsableCertificate`] if the leaf cannot be parsed.
    pub fn from_peer_certificates(
        certificates: Option<&[CertificateDer<'_>]>,
        source: SubjectSource,
    ) -> Result<Self> {
        match certificates.and_then(<[_]>::first) {
            None => Ok(Self::Anonymous),
            Some(leaf) => Self::from_certificate(leaf, source),
        }
    }

    /// The subject named by one (verified) certificate.
    ///
    /// # Errors
    /// As [`from_peer_certificates`](Self::from_peer_certificates).
    pub fn from_certificate(
        certificate: &CertificateDer<'_>,
        source: SubjectSource,
    ) -> Result<Self> {
        let (_, parsed) = x509_parser::parse_x509_certificate(certificate).map_err(|e| {
            Error::UnparsableCertificate {
                reason: e.to_string(),
            }
        })?;
        let name = match source {
            SubjectSource::CommonName => common_name(&parsed)?,
            SubjectSource::SanUri => first_san(&parsed, |name| match name {
                GeneralName::URI(uri) => Some(*uri),
                _ => None,
            })?,
            SubjectSource::SanDns => first_san(&parsed, |name| match name {
                GeneralName::DNSName(dns) => Some(*dns),
                _ => None,
            })?,
        };
        match name {
            Some(name) if !name.is_empty() => Ok(Self::Authenticated(name.to_owned())),
            _ => Err(Error::MissingSubject { wanted: source }),
        }
    }

    /// The authenticated name; `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Anonymous => None,
            Self::Authenticated(name) => Some(name),
        }
    }
}

impl fmt::Display for Subject {
    /// Anonymous is bracketed so a certificate named "anonymous" reads differently in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => f.write_str("<anonymous>"),
            Self::Authenticated(name) => f.write_str(name),
        }
    }
}

/// The single CN; two CNs would let a CA's careless issuance be read two ways.
fn common_name<'a>(certificate: &'a X509Certificate<'_>) -> Result<Option<&'a str>> {
    let names: Vec<_> = certificate.subject().iter_common_name().collect();
    match names.as_slice() {
        [] => Ok(None),
        [name] => name
            .as_str()
            .map(Some)
            .map_err(|e| Error::UnparsableCertificate {
                reason: format!("CN is not a string: {e}"),
            }),
        _ => Err(Error::AmbiguousSubject {
            wanted: SubjectSource::CommonName,
            count: names.len(),
        }),
    }
}

fn first_san<'a>(
    certificate: &'a X509Certificate<'_>,
    pick: impl Fn(&GeneralName<'a>) -> Option<&'a str>,
) -> Result<Option<&'a str>> {
    let extension =
        certificate
            .subject_alternative_name()
            .map_err(|e| Error::UnparsableCertificate {
                reason: format!("subject alternative names: {e}"),
            })?;
    Ok(extension.and_then(|san| san.value.general_names.iter().find_map(pick)))
}

#[cfg(test)]
mod tests {
    //! Each source against certificates built with rcgen for the case at hand.

    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    use super::*;

    /// The OID of the CN attribute, for a second CN: rcgen keeps one value per
    /// `DnType`, but a custom type with the same OID is a separate entry.
    const COMMON_NAME_OID: [u64; 4] = [2, 5, 4, 3];

    fn certificate(common_names: &[&str], sans: Vec<SanType>) -> CertificateDer<'static> {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let types = [
            DnType::CommonName,
            DnType::CustomDnType(COMMON_NAME_OID.to_vec()),
        ];
        assert!(common_names.len() <= types.len());
        for (name, dn_type) in common_names.iter().zip(types) {
            params.distinguished_name.push(dn_type, *name);
        }
        params.subject_alt_names = sans;
        let key = KeyPair::generate().expect("key");
        params.self_signed(&key).expect("certificate").der().clone()
    }

    fn uri(value: &str) -> SanType {
        SanType::URI(value.try_into().expect("ia5"))
    }

    fn dns(value: &str) -> SanType {
        SanType::DnsName(value.try_into().expect("ia5"))
    }

    #[test]
    fn no_certificate_is_anonymous() {
        assert_eq!(
            Subject::from_peer_certificates(None, SubjectSource::CommonName).expect("subject"),
            Subject::Anonymous
        );
        assert_eq!(
            Subject::from_peer_certificates(Some(&[]), SubjectSource::SanUri).expect("subject"),
            Subject::Anonymous
        );
    }

    #[test]
    fn each_source_reads_its_field_from_the_leaf() {
        let leaf = certificate(
            &["root"],
            vec![
                dns("a.example"),
                uri("spiffe://proglog/root"),
                dns("b.example"),
            ],
        );
        let other = certificate(&["intermediate"], vec![]);
        let chain = [leaf, other];
        let subject = |source| Subject::from_peer_certificates(Some(&chain), source).expect("ok");
        assert_eq!(
            subject(SubjectSource::CommonName),
            Subject::Authenticated("root".into())
        );
        assert_eq!(
            subject(SubjectSource::SanUri),
            Subject::Authenticated("spiffe://proglog/root".into())
        );
        assert_eq!(
            subject(SubjectSource::SanDns),
            Subject::Authenticated("a.example".into())
        );
    }

    #[test]
    fn a_missing_or_empty_field_is_an_error_not_anonymous() {
        let no_cn = certificate(&[], vec![dns("a.example")]);
        for source in [SubjectSource::CommonName, SubjectSource::SanUri] {
            let error = Subject::from_certificate(&no_cn, source).expect_err("missing");
            assert!(matches!(error, Error::MissingSubject { wanted } if wanted == source));
        }
        let empty_cn = certificate(&[""], vec![]);
        let error =
            Subject::from_certificate(&empty_cn, SubjectSource::CommonName).expect_err("empty CN");
        assert!(matches!(error, Error::MissingSubject { .. }), "{error}");
    }

    #[test]
    fn two_common_names_are_ambiguous() {
        let two = certificate(&["root", "reader"], vec![]);
        let error = Subject::from_certificate(&two, SubjectSource::CommonName).expect_err("two");
        assert!(
            matches!(error, Error::AmbiguousSubject { count: 2, .. }),
            "{error}"
        );
    }

    #[test]
    fn garbage_is_unparsable() {
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01]);
        let error =
            Subject::from_certificate(&garbage, SubjectSource::CommonName).expect_err("garbage");
        assert!(
            matches!(error, Error::UnparsableCertificate { .. }),
            "{error}"
        );
    }

    #[test]
    fn subject_source_round_trips_through_its_name() {
        for source in [
            SubjectSource::CommonName,
            SubjectSource::SanUri,
            SubjectSource::SanDns,
        ] {
            assert_eq!(
                source.to_string().parse::<SubjectSource>().expect("parse"),
                source
            );
        }
        assert!("email".parse::<SubjectSource>().is_err());
    }

    #[test]
    fn anonymous_displays_distinctly_from_a_name() {
        assert_eq!(Subject::Anonymous.to_string(), "<anonymous>");
        assert_eq!(
            Subject::Authenticated("anonymous".into()).to_string(),
            "anonymous"
        );
        assert_eq!(Subject::Anonymous.name(), None);
    }
}
