//! Authentication and authorization for proglog.
//!
//! This crate will own the rustls server and client configurations (TLS and
//! mutual TLS), the extraction of a caller's subject from its certificate, and
//! the `Authorizer` trait with its oso policy implementation (actions
//! `produce`, `consume`, `admin`, `replicate`). It depends on no other
//! workspace crate.
//!
//! It is an empty skeleton until the security issue.
