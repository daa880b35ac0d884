//! The proglog process.
//!
//! This crate owns the `proglog` binary (the workspace's only `main.rs`):
//! layered configuration ([`config`]: defaults, TOML file, `PROGLOG_*`
//! environment, flags), running a node ([`node`]: open the log, serve, shut
//! down in order), TLS and authorization ([`security`]), logs and traces
//! ([`telemetry`]), and the client subcommands ([`client`], [`mod@bench`]).

pub mod bench;
pub mod cert;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod cluster_cli;
pub mod cluster_config;
pub mod cluster_service;
pub mod config;
pub mod flags;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod raft_transport;
pub mod replicated_log;
pub mod security;
pub mod telemetry;
