//! Command-line parsing and dispatch. Exit codes: 0 success, 1 runtime
//! failure, 2 usage or configuration error (before anything is opened).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::AgentConfig;
use crate::flags::AgentFlags;
use crate::security::{Security, SecurityConfig};

/// proglog: a replicated commit log.
#[derive(Debug, Parser)]
#[command(
    name = "proglog",
    version,
    about = "proglog: a replicated commit log service",
    propagate_version = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node. With no flags: a single node on 127.0.0.1:8400 with its
    /// data in ./proglog-data and no TLS.
    Agent(Box<AgentFlags>),
    /// Append records: values from arguments, or one record per stdin line.
    Produce(crate::client::ProduceArgs),
    /// Read records from an offset, optionally following the tail.
    Consume(crate::client::ConsumeArgs),
    /// Show the log's offsets.
    Info(crate::client::InfoArgs),
    /// List the servers of the cluster.
    Servers(crate::client::InfoArgs),
    /// Operate a replicated cluster: status, transfer-leader, remove.
    Cluster(crate::cluster_cli::ClusterArgs),
    /// Create a CA and issue node and client certificates (PEM, keys 0600).
    Cert(crate::cert::CertArgs),
    /// Load a running server: produce N records over C streams, then consume
    /// them back.
    Bench(crate::bench::BenchArgs),
}

/// Runs `work` on a fresh multi-threaded runtime.
fn block_on(work: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(work)
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Agent(args) => {
            let config = match AgentConfig::load(args.config.as_deref(), &args) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            // Certificates and policy are read before anything is opened,
            // so a bad file is a configuration error too.
            let security = match Security::load(SecurityConfig::from_agent(&config)) {
                Ok(security) => security,
                Err(e) => {
                    eprintln!("error: invalid security configuration: {e}");
                    return ExitCode::from(2);
                }
            };
            let keyring = match crate::cluster::load_keyring(&config) {
                Ok(keyring) => keyring,
                Err(e) => {
                    eprintln!("error: invalid configuration: cluster.gossip_key_file: {e}");
                    return ExitCode::from(2);
                }
            };
            block_on(crate::node::run(config, security, keyring))
        }
        Command::Produce(args) => block_on(crate::client::produce(args)),
        Command::Consume(args) => block_on(crate::client::consume(args)),
        Command::Info(args) => block_on(crate::client::info(args)),
        Command::Servers(args) => block_on(crate::client::servers(args)),
        Command::Cluster(args) => block_on(crate::cluster_cli::run(args)),
        Command::Bench(args) => block_on(crate::bench::run(args)),
        Command::Cert(args) => crate::cert::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
