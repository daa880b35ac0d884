//! The crate's one error type.

use std::io;
use std::path::PathBuf;

use crate::subject::SubjectSource;

/// The result type of every fallible function in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while loading TLS material, naming a caller,
/// evaluating a policy or issuing certificates.
///
/// Variants about files carry the path, so a startup error names the file the
/// operator has to fix. No variant names the policy engine's types: the engine
/// is swappable (see [`crate::oso_policy`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file is missing or unreadable.
    #[error("cannot read {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },

    /// A file could not be created or written.
    #[error("cannot write {}: {source}", path.display())]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },

    /// A file exists and overwriting it was not asked for.
    #[error("{} already exists; refusing to overwrite it without force", path.display())]
    FileExists {
        /// The file.
        path: PathBuf,
    },

    /// A PEM file is malformed.
    #[error("{}: invalid PEM: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What the PEM parser found.
        source: rustls::pki_types::pem::Error,
    },

    /// A PEM file that should hold certificates holds none.
    #[error("{}: no certificate found", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },

    /// A PEM file that should hold a private key holds none.
    #[error("{}: no private key found", path.display())]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },

    /// A certificate cannot be used (bad encoding, unsupported algorithm).
    #[error("{}: unusable certificate: {reason}", path.display())]
    InvalidCertificate {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// A private key cannot be used (bad encoding, unsupported algorithm).
    #[error("{}: unusable private key: {reason}", path.display())]
    InvalidKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// The private key is not the one the certificate was issued for.
    #[error("private key {} does not match certificate {}", key_path.display(), cert_path.display())]
    KeyMismatch {
        /// The certificate file.
        cert_path: PathBuf,
        /// The key file.
        key_path: PathBuf,
    },

    /// A CA file cannot serve as a trust anchor.
    #[error("{}: unusable CA certificate: {reason}", path.display())]
    InvalidCa {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// A client certificate was given without its key, or the reverse.
    #[error("a client certificate needs both a certificate file and a key file")]
    IncompleteClientIdentity,

    /// A TLS server name is neither a DNS name nor an IP address.
    #[error("invalid TLS server name {name:?}")]
    InvalidServerName {
        /// The name given.
        name: String,
    },

    /// rustls refused a configuration built from files that were each valid.
    #[error("TLS configuration: {source}")]
    Tls {
        /// rustls' reason.
        source: rustls::Error,
    },

    /// A verified peer certificate lacks the field the subject is taken from.
    #[error("peer certificate has no {wanted}")]
    MissingSubject {
        /// The configured subject source.
        wanted: SubjectSource,
    },

    /// A verified peer certificate names its subject more than once.
    #[error("peer certificate has {count} {wanted} values; the subject would be ambiguous")]
    AmbiguousSubject {
        /// The configured subject source.
        wanted: SubjectSource,
        /// How many values were found.
        count: usize,
    },

    /// A peer certificate could not be parsed for its subject.
    #[error("cannot parse peer certificate: {reason}")]
    UnparsableCertificate {
        /// Why.
        reason: String,
    },

    /// An unknown subject source name.
    #[error("unknown subject source {name:?} (expected cn, san-uri or san-dns)")]
    UnknownSubjectSource {
        /// The name given.
        name: String,
    },

    /// An unknown action name.
    #[error("unknown action {name:?} (expected produce, consume, admin or replicate)")]
    UnknownAction {
        /// The name given.
        name: String,
    },

    /// A policy file failed to load: syntax error, unknown class, failed probe.
    #[error("policy {}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Policy {
        /// The policy file.
        path: PathBuf,
        /// The 1-based line of the error, when the engine reports one.
        line: Option<usize>,
        /// The engine's message.
        message: String,
    },

    /// The policy engine failed while deciding (not a denial).
    #[error("policy evaluation failed: {message}")]
    PolicyEvaluation {
        /// The engine's message.
        message: String,
    },

    /// A certificate request is inconsistent (no names, empty validity).
    #[error("invalid certificate request: {reason}")]
    InvalidRequest {
        /// Why.
        reason: String,
    },

    /// rcgen failed to generate a key or sign a certificate.
    #[error("certificate generation: {source}")]
    Generate {
        /// rcgen's reason.
        source: rcgen::Error,
    },
}
