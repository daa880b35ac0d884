//! The wire contract of proglog.
//!
//! This crate will own `proto/proglog/v1/log.proto` (package `proglog.v1`,
//! service `Log`), the tonic/prost code generated from it without a system
//! `protoc`, the encoded file descriptor set used for server reflection, and the
//! conversions between wire messages and `log-core` domain types.
//!
//! Nothing is generated yet: the single-node service issue builds it.
