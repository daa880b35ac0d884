//! The public API of a proglog node.
//!
//! This crate will own the tonic `proglog.v1.Log` service and the axum
//! HTTP/JSON routes served on the same port, both written against a
//! `CommitLog` trait so that the replicated log can replace the local one, and
//! the one module that maps domain errors to gRPC status codes and HTTP
//! responses.
//!
//! It is an empty skeleton until the single-node service issue.
