//! Authentication and authorization for proglog.
//!
//! What is here, each usable on its own and depending on no other workspace
//! crate:
//! - [`tls`]: rustls server and client configurations from PEM files (TLS 1.2
//!   and 1.3, ALPN `h2` and `http/1.1`; mutual TLS when a client CA is given),
//!   with startup errors that name the file at fault. One crypto provider,
//!   ring, chosen explicitly.
//! - [`subject`]: the caller's [`Subject`] from its verified certificate (CN by
//!   default, or a SAN URI or DNS name), [`Subject::Anonymous`] without one.
//! - [`authorizer`]: the actions and the engine-neutral [`Authorizer`] trait;
//!   [`oso_policy`] implements it with an oso Polar policy file and is the only
//!   module that names oso. Policies ship in `auth/policies/`: `default.polar`
//!   (`root` everything, `node-*` replicate), `dev.polar` (everyone
//!   everything, for local runs without TLS) and `example.polar`.
//! - [`cert`]: the logic of `proglog cert`: create a CA, issue node
//!   certificates (server and client auth) and client certificates, write
//!   them with private keys mode 0600.
//!
//! The agent wires them (`agent/src/security.rs`): its `--tls-*` and
//! `--acl-policy-file` flags, a TLS handshake that puts the [`Subject`] on
//! each connection, an adapter from [`Authorizer`] to the server's access
//! policy, and reload on SIGHUP, which calls [`ServerTlsConfig::load`] and
//! [`OsoAuthorizer::from_file`] again and swaps the results in only if both
//! succeed.

pub mod authorizer;
pub mod cert;
pub mod error;
pub mod oso_policy;
pub mod subject;
pub mod tls;

pub use authorizer::{Action, Authorizer};
pub use cert::{CertificateAndKey, CertificateAuthority, Validity};
pub use error::{Error, Result};
pub use oso_policy::{DEFAULT_POLICY, DEV_POLICY, OsoAuthorizer};
pub use subject::{Subject, SubjectSource};
pub use tls::{ClientTls, ClientTlsConfig, ServerTlsConfig};
