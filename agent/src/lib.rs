//! The proglog process.
//!
//! This crate will own the `proglog` binary (the workspace's only `main.rs`):
//! layered configuration (defaults, TOML file, `PROGLOG_*` environment, flags),
//! the wiring of log, server, discovery, replication and auth, the shutdown
//! order, and the client subcommands (`produce`, `consume`, `info`, `bench`,
//! `cert`).
//!
//! It is an empty skeleton until the single-node service issue.
