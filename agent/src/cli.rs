//! Command-line parsing and dispatch. Exit codes: 0 success, 1 runtime
//! failure, 2 usage or configuration error (before anything is opened).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{AgentConfig, FlagOverrides, FsyncMode, FsyncOverride, LogFormat};
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
    Agent(AgentArgs),
    /// Append records: values from arguments, or one record per stdin line.
    Produce(crate::client::ProduceArgs),
    /// Read records from an offset, optionally following the tail.
    Consume(crate::client::ConsumeArgs),
    /// Show the log's offsets.
    Info(crate::client::InfoArgs),
    /// List the servers of the cluster.
    Servers(crate::client::InfoArgs),
    /// Create a CA and issue node and client certificates (PEM, keys 0600).
    Cert(crate::cert::CertArgs),
    /// Load a running server: produce N records over C streams, then consume
    /// them back.
    Bench(crate::bench::BenchArgs),
}

/// Flags of `proglog agent`; each overrides the file and environment.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// TOML config file (see config/proglog.toml for every key).
    #[arg(long, env = "PROGLOG_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// gRPC + HTTP address, HOST:PORT (port 0 picks a free port).
    #[arg(long, value_name = "HOST:PORT")]
    pub rpc_addr: Option<String>,
    /// Separate plaintext address for health and /metrics only.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
    /// This node's name.
    #[arg(long)]
    pub node_name: Option<String>,
    /// Durability of produce.
    #[arg(long, value_enum)]
    pub fsync: Option<FsyncMode>,
    /// Log line format.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter: a level or tracing directives.
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// OTLP/gRPC collector for trace spans, http://HOST:PORT (empty: off).
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// Fraction of new traces exported, 0.0 to 1.0.
    #[arg(long, value_name = "RATIO")]
    pub otlp_sampling_ratio: Option<f64>,
    /// PEM certificate chain for the gRPC + HTTP port (TLS on, with
    /// --tls-key-file).
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(long, value_name = "FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA that signs client certificates: clients must present one
    /// (mutual TLS).
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Client certificate field naming the caller: cn, san-uri or san-dns.
    #[arg(long, value_name = "FIELD")]
    pub tls_subject: Option<String>,
    /// Polar policy deciding who may produce, consume, administer and
    /// replicate (reloaded on SIGHUP).
    #[arg(long, value_name = "FILE")]
    pub acl_policy_file: Option<PathBuf>,
}

impl AgentArgs {
    fn overrides(&self) -> FlagOverrides {
        FlagOverrides {
            data_dir: self.data_dir.clone(),
            rpc_addr: self.rpc_addr.clone(),
            metrics_addr: self.metrics_addr.clone(),
            node_name: self.node_name.clone(),
            log_format: self.log_format,
            log_level: self.log_level.clone(),
            otlp_endpoint: self.otlp_endpoint.clone(),
            otlp_sampling_ratio: self.otlp_sampling_ratio,
            tls_cert_file: self.tls_cert_file.clone(),
            tls_key_file: self.tls_key_file.clone(),
            tls_client_ca_file: self.tls_client_ca_file.clone(),
            tls_subject: self.tls_subject.clone(),
            acl_policy_file: self.acl_policy_file.clone(),
            log: self.fsync.map(|fsync| FsyncOverride { fsync }),
        }
    }
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
            let config = match AgentConfig::load(args.config.as_deref(), &args.overrides()) {
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
            block_on(crate::node::run(config, security))
        }
        Command::Produce(args) => block_on(crate::client::produce(args)),
        Command::Consume(args) => block_on(crate::client::consume(args)),
        Command::Info(args) => block_on(crate::client::info(args)),
        Command::Servers(args) => block_on(crate::client::servers(args)),
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
