//! The flags of `proglog agent`. Each flag is declared once, here, and
//! serialized straight into the configuration's top layer under its key, so
//! a flag and its key cannot drift apart.

use std::path::PathBuf;

use serde::Serialize;

use crate::config::{FsyncMode, LogFormat};

/// Flags of `proglog agent`; each overrides the file and environment.
#[derive(Debug, Default, Clone, Serialize, clap::Args)]
pub struct AgentFlags {
    /// TOML config file (see config/proglog.toml for every key).
    #[arg(long, env = "PROGLOG_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Data directory.
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// gRPC + HTTP address, HOST:PORT (port 0 picks a free port).
    #[arg(long, value_name = "HOST:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc_addr: Option<String>,
    /// Separate plaintext address for health and /metrics only.
    #[arg(long, value_name = "HOST:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<String>,
    /// This node's name.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Log line format.
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Log filter: a level or tracing directives.
    #[arg(long, value_name = "FILTER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// OTLP/gRPC collector for trace spans, http://HOST:PORT (empty: off).
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// Fraction of new traces exported, 0.0 to 1.0.
    #[arg(long, value_name = "RATIO")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_sampling_ratio: Option<f64>,
    /// PEM certificate chain for the gRPC + HTTP port (TLS on, with
    /// --tls-key-file).
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA that signs client certificates: clients must present one
    /// (mutual TLS).
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Client certificate field naming the caller: cn, san-uri or san-dns.
    #[arg(long, value_name = "FIELD")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_subject: Option<String>,
    /// Polar policy deciding who may produce, consume, administer and
    /// replicate (reloaded on SIGHUP).
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acl_policy_file: Option<PathBuf>,
    /// `[log]` keys.
    #[command(flatten)]
    pub log: LogFlags,
    /// `[cluster]` keys.
    #[command(flatten)]
    pub cluster: ClusterFlags,
}

/// The `[log]` keys a flag can set.
#[derive(Debug, Default, Clone, Serialize, clap::Args)]
pub struct LogFlags {
    /// Durability of produce.
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fsync: Option<FsyncMode>,
}

/// The `[cluster]` keys a flag can set.
#[derive(Debug, Default, Clone, Serialize, clap::Args)]
pub struct ClusterFlags {
    /// UDP address for gossip, IP:PORT (unset: gossip off, a standalone
    /// node).
    #[arg(long, value_name = "IP:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gossip_addr: Option<String>,
    /// Gossip address peers are told to use (needed when binding 0.0.0.0).
    #[arg(long, value_name = "IP:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gossip_advertise_addr: Option<String>,
    /// RPC address peers and clients are told to dial (needed when
    /// binding 0.0.0.0).
    #[arg(long, value_name = "HOST:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc_advertise_addr: Option<String>,
    /// Seeds to join through, comma-separated HOST:PORT (names are
    /// resolved again on every retry).
    #[arg(long, value_name = "HOST:PORT,...", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join: Option<Vec<String>>,
    /// Replicate with Raft: wait for N members, then start them as the
    /// voters (default 1: a cluster of one; 0: replication off).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap_expect: Option<u32>,
    /// File of base64 gossip keys (first seals; all open). Absent:
    /// plaintext gossip.
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gossip_key_file: Option<PathBuf>,
}
