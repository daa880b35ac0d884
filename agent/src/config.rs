//! The agent's configuration and its layers: defaults, then a TOML file, then
//! `PROGLOG_*` environment variables, then command-line flags. The reference
//! file with every key is `config/proglog.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use crate::cluster_config::ClusterSection;
use crate::flags::AgentFlags;

/// A configuration that cannot be used; every message names its key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("invalid configuration: cannot read config file {}: {source}", path.display())]
    File {
        /// The file given with `--config` or `PROGLOG_CONFIG`.
        path: PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    /// One or more keys have unusable values.
    #[error("invalid configuration: {}", join_keys(.0))]
    Invalid(Vec<KeyError>),
}

/// One unusable key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    /// The key, dotted for nested sections (`log.fsync`, `cluster.join`).
    pub key: String,
    /// What is wrong with its value, and where it came from.
    pub reason: String,
}

impl ConfigError {
    /// One bad key.
    pub fn key(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid(vec![KeyError {
            key: key.into(),
            reason: reason.into(),
        }])
    }
}

fn join_keys(errors: &[KeyError]) -> String {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.key, e.reason))
        .collect();
    parts.join("; ")
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The durability policy, as named in config and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FsyncMode {
    /// fdatasync before every produce returns (group commit).
    Always,
    /// fdatasync every `fsync_interval_ms` or `fsync_interval_bytes`.
    Interval,
    /// Leave syncing to the operating system.
    Never,
}

/// The `[log]` section: the storage engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// Durability policy.
    pub fsync: FsyncMode,
    /// With `interval`: milliseconds between syncs.
    pub fsync_interval_ms: u64,
    /// With `interval`: appended bytes that force a sync.
    pub fsync_interval_bytes: u64,
    /// Largest record payload, bytes.
    pub record_bytes_max: u64,
    /// Segment store size that triggers a roll, bytes.
    pub segment_bytes_max: u64,
    /// Records per segment index.
    pub index_entries_max: u64,
    /// Drop oldest segments while the log is larger than this (absent: keep).
    pub retention_bytes_max: Option<u64>,
    /// Drop segments whose newest record is older than this (absent: keep).
    pub retention_age_ms: Option<u64>,
    /// In-process write buffer, bytes.
    pub write_buffer_bytes: usize,
}

impl Default for LogSection {
    fn default() -> Self {
        let core = log_core::Config::default();
        Self {
            fsync: FsyncMode::Always,
            fsync_interval_ms: 50,
            fsync_interval_bytes: 4 << 20,
            record_bytes_max: core.record_bytes_max,
            segment_bytes_max: core.segment_bytes_max,
            index_entries_max: core.index_entries_max,
            retention_bytes_max: None,
            retention_age_ms: None,
            write_buffer_bytes: core.write_buffer_bytes,
        }
    }
}

/// The `[server]` section: the API layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// Milliseconds in-flight requests get to finish on shutdown.
    pub drain_timeout_ms: u64,
    /// Largest gRPC message, bytes.
    pub grpc_message_bytes_max: usize,
    /// Largest HTTP request body, bytes.
    pub http_body_bytes_max: usize,
    /// Records in appends at once before produce is refused with
    /// RESOURCE_EXHAUSTED.
    pub in_flight_records_max: u32,
    /// Connections open at once; one more is closed at once and counted in
    /// `proglog_connections_refused_total`. Keep it under `ulimit -n`.
    pub connections_max: usize,
    /// Milliseconds an HTTP/1 client has to send a request's headers.
    pub header_read_timeout_ms: u64,
    /// Milliseconds a connection may stay open with no request in progress.
    pub idle_timeout_ms: u64,
    /// Milliseconds an HTTP request body may stall before the request is
    /// refused with 408.
    pub body_read_timeout_ms: u64,
    /// Milliseconds of silence from an HTTP/2 peer before it is pinged.
    pub http2_keepalive_interval_ms: u64,
    /// Milliseconds a pinged HTTP/2 peer has to answer before it is closed.
    pub http2_keepalive_timeout_ms: u64,
    /// Bytes of a refused HTTP request's body read and discarded so the
    /// refusal reaches the client intact.
    pub refusal_drain_bytes_max: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        let server = log_server::ServerConfig::default();
        Self {
            drain_timeout_ms: server.drain_timeout_ms,
            grpc_message_bytes_max: server.grpc_message_bytes_max,
            http_body_bytes_max: server.http_body_bytes_max,
            in_flight_records_max: 65_536,
            connections_max: server.connections_max,
            header_read_timeout_ms: server.header_read_timeout_ms,
            idle_timeout_ms: server.idle_timeout_ms,
            body_read_timeout_ms: server.body_read_timeout_ms,
            http2_keepalive_interval_ms: server.http2_keepalive_interval_ms,
            http2_keepalive_timeout_ms: server.http2_keepalive_timeout_ms,
            refusal_drain_bytes_max: server.refusal_drain_bytes_max,
        }
    }
}

/// Everything `proglog agent` is configured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// This node's name; its id in the cluster.
    pub node_name: String,
    /// Where the node keeps its data (the log is in `<data_dir>/log`).
    pub data_dir: PathBuf,
    /// Address of the gRPC + HTTP port.
    pub rpc_addr: String,
    /// Optional plaintext address serving only health and `/metrics`
    /// (empty: off; `/metrics` is on `rpc_addr` either way).
    pub metrics_addr: String,
    /// `pretty` or `json`.
    pub log_format: LogFormat,
    /// A tracing filter: a level (`info`) or directives
    /// (`info,log_core=debug`). `RUST_LOG`, when set, wins.
    pub log_level: String,
    /// OTLP/gRPC collector that receives trace spans, an `http://HOST:PORT`
    /// URL; empty: no tracing export at all.
    pub otlp_endpoint: String,
    /// Fraction of new traces exported, 0.0 to 1.0; a request that carries
    /// a sampled `traceparent` is exported whatever the ratio.
    pub otlp_sampling_ratio: f64,
    /// PEM certificate chain of the gRPC + HTTP port; with `tls_key_file`,
    /// turns TLS on (absent: plaintext).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificates that sign client certificates; when set, every
    /// client must present one (mutual TLS) and is named by it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Which client certificate field names the caller: `cn`, `san-uri` or
    /// `san-dns`.
    pub tls_subject: String,
    /// Polar policy file deciding who may do what (absent: with TLS the
    /// shipped default policy, without TLS everything is allowed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acl_policy_file: Option<PathBuf>,
    /// The storage engine.
    pub log: LogSection,
    /// The API layer.
    pub server: ServerSection,
    /// Cluster membership.
    pub cluster: ClusterSection,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            node_name: "proglog-0".into(),
            data_dir: PathBuf::from("proglog-data"),
            rpc_addr: "127.0.0.1:8400".into(),
            metrics_addr: String::new(),
            log_format: LogFormat::Pretty,
            log_level: "info".into(),
            otlp_endpoint: String::new(),
            otlp_sampling_ratio: 1.0,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            tls_subject: "cn".into(),
            acl_policy_file: None,
            log: LogSection::default(),
            server: ServerSection::default(),
            cluster: ClusterSection::default(),
        }
    }
}

/// `PROGLOG_*` variables that belong to the client subcommands (`--addr`,
/// `--ca-file`, ...) or name the config file, not agent keys.
const CLIENT_VARIABLES: &[&str] = &[
    "CONFIG",
    "ADDR",
    "CA_FILE",
    "CERT_FILE",
    "KEY_FILE",
    "TLS_SERVER_NAME",
];

/// Whether a `PROGLOG_*` variable (prefix stripped) is one Kubernetes
/// injects for a Service named `proglog` (`PROGLOG_SERVICE_HOST`,
/// `PROGLOG_PORT_8400_TCP_ADDR`, ...): not an agent key, and no agent key
/// starts that way.
fn is_service_link(key: &str) -> bool {
    let key = key.to_ascii_uppercase();
    key == "PORT" || key.starts_with("PORT_") || key.starts_with("SERVICE_")
}

impl AgentConfig {
    /// Builds the configuration from its layers and validates it.
    ///
    /// # Errors
    /// A missing or unreadable file, a key with a wrong type or an unknown
    /// key (named), or a value out of range (named).
    pub fn load(file: Option<&Path>, flags: &AgentFlags) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Self::default()));
        if let Some(file) = file {
            let text = std::fs::read_to_string(file).map_err(|source| ConfigError::File {
                path: file.to_path_buf(),
                source,
            })?;
            figment = figment.merge(Toml::string(&text));
        }
        // `PROGLOG_LOG__FSYNC=never` sets `log.fsync`. The client
        // subcommands' own variables and `PROGLOG_CONFIG` (the file path)
        // are not keys: they are skipped, so a shell set up for the CLI can
        // start a node; any other unknown `PROGLOG_*` is refused, naming it.
        figment = figment.merge(
            Env::prefixed("PROGLOG_")
                .ignore(CLIENT_VARIABLES)
                .filter(|key| !is_service_link(key.as_str()))
                .split("__"),
        );
        figment = figment.merge(Serialized::defaults(flags));
        let config: Self = figment.extract().map_err(|e| {
            ConfigError::Invalid(e.into_iter().map(|e| describe(&e, file)).collect())
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values the types do not.
    ///
    /// # Errors
    /// The first bad key, named.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: String| Err(ConfigError::key(key, reason));
        if self.node_name.trim().is_empty() {
            return bad("node_name", "must not be empty".into());
        }
        if self.rpc_addr.parse::<SocketAddr>().is_err() {
            return bad(
                "rpc_addr",
                format!("{:?} is not an IP:PORT address", self.rpc_addr),
            );
        }
        if !self.metrics_addr.is_empty() && self.metrics_addr.parse::<SocketAddr>().is_err() {
            return bad(
                "metrics_addr",
                format!(
                    "{:?} is not an IP:PORT address (or empty for off)",
                    self.metrics_addr
                ),
            );
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            return bad("log_level", e.to_string());
        }
        // Plaintext only until the exporter gets TLS.
        let endpoint = &self.otlp_endpoint;
        if !endpoint.is_empty()
            && (!endpoint.starts_with("http://")
                || tonic::transport::Endpoint::from_shared(endpoint.clone()).is_err())
        {
            return bad(
                "otlp_endpoint",
                format!("{endpoint:?} is not an http://HOST:PORT URL (or empty for off)"),
            );
        }
        if !(0.0..=1.0).contains(&self.otlp_sampling_ratio) {
            return bad(
                "otlp_sampling_ratio",
                format!("{} is not between 0.0 and 1.0", self.otlp_sampling_ratio),
            );
        }
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), None) => return bad("tls_key_file", "must be set with tls_cert_file".into()),
            (None, Some(_)) => return bad("tls_cert_file", "must be set with tls_key_file".into()),
            _ => {}
        }
        if self.tls_client_ca_file.is_some() && self.tls_cert_file.is_none() {
            return bad(
                "tls_client_ca_file",
                "needs tls_cert_file and tls_key_file (TLS on)".into(),
            );
        }
        if self.tls_subject.parse::<auth::SubjectSource>().is_err() {
            return bad(
                "tls_subject",
                format!("{:?} is not one of cn, san-uri, san-dns", self.tls_subject),
            );
        }
        self.log_config().validate().map_err(|e| {
            ConfigError::key(format!("log.{}", config_key(e.field)), e.reason.clone())
        })?;
        if self.server.in_flight_records_max == 0 {
            return bad("server.in_flight_records_max", "must be at least 1".into());
        }
        let server = &self.server;
        for (key, value) in [
            ("connections_max", server.connections_max as u64),
            ("header_read_timeout_ms", server.header_read_timeout_ms),
            ("idle_timeout_ms", server.idle_timeout_ms),
            ("body_read_timeout_ms", server.body_read_timeout_ms),
            (
                "http2_keepalive_interval_ms",
                server.http2_keepalive_interval_ms,
            ),
            (
                "http2_keepalive_timeout_ms",
                server.http2_keepalive_timeout_ms,
            ),
        ] {
            if value == 0 {
                return bad(&format!("server.{key}"), "must be at least 1".into());
            }
        }
        // A record and its envelope must fit one gRPC message, and one
        // base64-encoded record must fit an HTTP body.
        let record = self.log.record_bytes_max;
        if (self.server.grpc_message_bytes_max as u64) < record + 8192 {
            return bad(
                "server.grpc_message_bytes_max",
                format!(
                    "must be at least log.record_bytes_max + 8192 = {}",
                    record + 8192
                ),
            );
        }
        if (self.server.http_body_bytes_max as u64) < record / 3 * 4 + 8192 {
            return bad(
                "server.http_body_bytes_max",
                format!(
                    "must hold one base64 record: at least {}",
                    record / 3 * 4 + 8192
                ),
            );
        }
        self.cluster.validate(&self.rpc_addr)?;
        if self.cluster.replication_enabled() {
            // Without gossip no peer can ever connect, so a cluster of one
            // needs no node certificates.
            if self.cluster.gossip_enabled()
                && self.tls_cert_file.is_some()
                && self.tls_client_ca_file.is_none()
            {
                return bad(
                    "tls_client_ca_file",
                    "replication with TLS needs mutual TLS: nodes present their certificates \
                     to each other and verify them against this CA"
                        .into(),
                );
            }
            if self.log.retention_bytes_max.is_some() || self.log.retention_age_ms.is_some() {
                return bad(
                    "cluster.bootstrap_expect",
                    "retention is not supported on a replicated log yet: unset log.retention_*, \
                     or set cluster.bootstrap_expect = 0 (--bootstrap-expect 0) for a standalone log"
                        .into(),
                );
            }
        }
        Ok(())
    }

    /// The storage engine's configuration.
    pub fn log_config(&self) -> log_core::Config {
        let log = &self.log;
        log_core::Config {
            record_bytes_max: log.record_bytes_max,
            segment_bytes_max: log.segment_bytes_max,
            index_entries_max: log.index_entries_max,
            fsync: match log.fsync {
                FsyncMode::Always => log_core::FsyncPolicy::Always,
                FsyncMode::Interval => log_core::FsyncPolicy::Interval {
                    interval_ms: log.fsync_interval_ms,
                    bytes: log.fsync_interval_bytes,
                },
                FsyncMode::Never => log_core::FsyncPolicy::Never,
            },
            retention: log_core::Retention {
                bytes_max: log.retention_bytes_max,
                age_max_ms: log.retention_age_ms,
            },
            write_buffer_bytes: log.write_buffer_bytes,
        }
    }

    /// The API layer's configuration.
    pub fn server_config(&self) -> log_server::ServerConfig {
        log_server::ServerConfig {
            drain_timeout_ms: self.server.drain_timeout_ms,
            grpc_message_bytes_max: self.server.grpc_message_bytes_max,
            http_body_bytes_max: self.server.http_body_bytes_max,
            connections_max: self.server.connections_max,
            header_read_timeout_ms: self.server.header_read_timeout_ms,
            idle_timeout_ms: self.server.idle_timeout_ms,
            body_read_timeout_ms: self.server.body_read_timeout_ms,
            http2_keepalive_interval_ms: self.server.http2_keepalive_interval_ms,
            http2_keepalive_timeout_ms: self.server.http2_keepalive_timeout_ms,
            refusal_drain_bytes_max: self.server.refusal_drain_bytes_max,
            ..log_server::ServerConfig::default()
        }
    }
}

/// Maps log-core's field names to this file's keys.
fn config_key(field: &str) -> &str {
    match field {
        "fsync.interval_ms" => "fsync_interval_ms",
        "fsync.bytes" => "fsync_interval_bytes",
        "retention.bytes_max" => "retention_bytes_max",
        "retention.age_max_ms" => "retention_age_ms",
        other => other,
    }
}

/// figment's message, except for unknown names, whose list of expected
/// names figment wraps in a second pair of backticks.
fn kind_text(kind: &figment::error::Kind) -> String {
    use figment::error::Kind;
    let one_of = |expected: &[&str]| {
        let names: Vec<String> = expected.iter().map(|name| format!("`{name}`")).collect();
        names.join(", ")
    };
    match kind {
        Kind::UnknownField(found, expected) => {
            format!("unknown key `{found}`; known keys: {}", one_of(expected))
        }
        Kind::UnknownVariant(found, expected) => {
            format!(
                "unknown value `{found}`; expected one of {}",
                one_of(expected)
            )
        }
        other => other.to_string(),
    }
}

fn describe(error: &figment::Error, file: Option<&Path>) -> KeyError {
    let key = if error.path.is_empty() {
        "<root>".to_owned()
    } else {
        error.path.join(".")
    };
    let source = match &error.metadata {
        Some(metadata) if metadata.name.contains("environment") => {
            " (from the environment)".to_owned()
        }
        Some(metadata) if metadata.name.contains("TOML") => file
            .map(|f| format!(" (in {})", f.display()))
            .unwrap_or_default(),
        _ => String::new(),
    };
    KeyError {
        key,
        reason: format!("{}{source}", kind_text(&error.kind)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_embedded_default() {
        let config = AgentConfig::load(None, &AgentFlags::default()).expect("defaults");
        assert_eq!(config.rpc_addr, "127.0.0.1:8400");
        assert_eq!(config.log.fsync, FsyncMode::Always);
    }

    #[test]
    fn the_reference_config_parses_to_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/proglog.toml");
        let config =
            AgentConfig::load(Some(&path), &AgentFlags::default()).expect("reference config");
        assert_eq!(config, AgentConfig::default());
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "rpc_addr = \"127.0.0.1:9000\"\n[log]\nfsync = \"never\"\n",
        )
        .expect("write");
        let flags = AgentFlags {
            log: crate::flags::LogFlags {
                fsync: Some(FsyncMode::Interval),
            },
            cluster: crate::flags::ClusterFlags {
                gossip_addr: Some("127.0.0.1:9100".into()),
                join: Some(vec!["seed-a:9100".into(), "10.0.0.2:9100".into()]),
                ..crate::flags::ClusterFlags::default()
            },
            ..AgentFlags::default()
        };
        let config = AgentConfig::load(Some(&file), &flags).expect("load");
        assert_eq!(config.rpc_addr, "127.0.0.1:9000");
        assert_eq!(config.log.fsync, FsyncMode::Interval);
        assert_eq!(config.cluster.gossip_addr, "127.0.0.1:9100");
        assert_eq!(config.cluster.join, ["seed-a:9100", "10.0.0.2:9100"]);
    }

    #[test]
    fn join_accepts_a_list_or_a_comma_separated_string() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        for text in [
            "[cluster]\ngossip_addr = \"127.0.0.1:9100\"\njoin = [\"a:1\", \"b:2\"]\n",
            "[cluster]\ngossip_addr = \"127.0.0.1:9100\"\njoin = \"a:1, b:2\"\n",
        ] {
            std::fs::write(&file, text).expect("write");
            let config = AgentConfig::load(Some(&file), &AgentFlags::default()).expect(text);
            assert_eq!(config.cluster.join, ["a:1", "b:2"], "{text}");
        }
    }

    #[test]
    fn every_flag_lands_on_the_key_of_the_same_name() {
        // The flags are serialized into the top layer: a flag whose field
        // name is no key would be refused as an unknown key, so setting
        // every flag at once proves each one maps onto a key.
        use clap::Parser as _;
        let cli = crate::cli::Cli::try_parse_from([
            "proglog",
            "agent",
            "--data-dir=d",
            "--rpc-addr=127.0.0.1:1",
            "--metrics-addr=127.0.0.1:2",
            "--node-name=n9",
            "--log-format=json",
            "--log-level=debug",
            "--otlp-endpoint=http://127.0.0.1:4317",
            "--otlp-sampling-ratio=0.5",
            "--tls-cert-file=c.pem",
            "--tls-key-file=k.pem",
            "--tls-client-ca-file=ca.pem",
            "--tls-subject=san-dns",
            "--acl-policy-file=p.polar",
            "--fsync=never",
            "--gossip-addr=0.0.0.0:3",
            "--gossip-advertise-addr=10.1.1.1:3",
            "--rpc-advertise-addr=n9.example:1",
            "--join=a:3,b:3",
            "--gossip-key-file=g.key",
        ])
        .expect("parses");
        let crate::cli::Command::Agent(flags) = cli.command else {
            panic!("not the agent command");
        };
        let config = AgentConfig::load(None, &flags).expect("every flag is a key");
        assert_eq!(config.node_name, "n9");
        assert_eq!(config.log.fsync, FsyncMode::Never);
        assert_eq!(config.tls_subject, "san-dns");
        assert_eq!(config.cluster.gossip_advertise_addr, "10.1.1.1:3");
        assert_eq!(config.cluster.rpc_advertise_addr, "n9.example:1");
        assert_eq!(config.cluster.join, ["a:3", "b:3"]);
        assert_eq!(config.cluster.gossip_key_file, Some(PathBuf::from("g.key")));
    }

    #[test]
    fn unknown_names_are_listed_once_quoted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        let error = |text: &str| {
            std::fs::write(&file, text).expect("write");
            AgentConfig::load(Some(&file), &AgentFlags::default())
                .expect_err(text)
                .to_string()
        };
        let key = error("[server]\nbogus = 1\n");
        assert!(!key.contains("``"), "{key}");
        assert!(key.contains("unknown key `bogus`"), "{key}");
        assert!(key.contains("`drain_timeout_ms`, "), "{key}");
        let value = error("log_format = \"xml\"\n");
        assert!(!value.contains("``"), "{value}");
        assert!(
            value.contains("unknown value `xml`; expected one of `pretty`, `json`"),
            "{value}"
        );
    }

    #[test]
    fn the_servers_edge_keys_reach_the_server() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[server]\nconnections_max = 7\nheader_read_timeout_ms = 11\nidle_timeout_ms = 12\n\
             body_read_timeout_ms = 13\nhttp2_keepalive_interval_ms = 14\n\
             http2_keepalive_timeout_ms = 15\nrefusal_drain_bytes_max = 16\n",
        )
        .expect("write");
        let server = AgentConfig::load(Some(&file), &AgentFlags::default())
            .expect("load")
            .server_config();
        assert_eq!(server.connections_max, 7);
        assert_eq!(server.header_read_timeout_ms, 11);
        assert_eq!(server.idle_timeout_ms, 12);
        assert_eq!(server.body_read_timeout_ms, 13);
        assert_eq!(server.http2_keepalive_interval_ms, 14);
        assert_eq!(server.http2_keepalive_timeout_ms, 15);
        assert_eq!(server.refusal_drain_bytes_max, 16);
        std::fs::write(&file, "[server]\nidle_timeout_ms = 0\n").expect("write");
        let error = AgentConfig::load(Some(&file), &AgentFlags::default()).expect_err("zero");
        assert!(
            error.to_string().contains("server.idle_timeout_ms"),
            "{error}"
        );
    }

    #[test]
    fn errors_name_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cases = [
            ("[log]\nfsync = \"sometimes\"\n", "log.fsync"),
            ("[log]\nsegment_bytes_max = 10\n", "log.segment_bytes_max"),
            ("rpc_addr = \"nowhere\"\n", "rpc_addr"),
            ("[server]\nunknown_key = 1\n", "server"),
            ("log_level = \"[[[\"\n", "log_level"),
            ("otlp_endpoint = \"127.0.0.1:4317\"\n", "otlp_endpoint"),
            ("otlp_sampling_ratio = 1.5\n", "otlp_sampling_ratio"),
            ("otlp_sampling_ratio = -0.1\n", "otlp_sampling_ratio"),
            ("tls_cert_file = \"c.pem\"\n", "tls_key_file"),
            ("tls_key_file = \"k.pem\"\n", "tls_cert_file"),
            ("tls_client_ca_file = \"ca.pem\"\n", "tls_client_ca_file"),
            ("tls_subject = \"email\"\n", "tls_subject"),
            (
                "[server]\ngrpc_message_bytes_max = 2000\n",
                "server.grpc_message_bytes_max",
            ),
            ("[cluster]\njoin = [\"a:1\"]\n", "cluster.join"),
            (
                "[cluster]\ngossip_addr = \"nowhere\"\n",
                "cluster.gossip_addr",
            ),
            (
                "[cluster]\ngossip_addr = \"0.0.0.0:9100\"\n",
                "cluster.gossip_advertise_addr",
            ),
            (
                "rpc_addr = \"0.0.0.0:9000\"\n[cluster]\ngossip_addr = \"127.0.0.1:9100\"\n",
                "cluster.rpc_advertise_addr",
            ),
            (
                "[cluster]\ngossip_addr = \"127.0.0.1:9100\"\njoin = \"seed-without-port\"\n",
                "cluster.join",
            ),
            ("[cluster]\ngossip_key = \"x\"\n", "cluster"),
        ];
        for (text, key) in cases {
            let file = dir.path().join("c.toml");
            std::fs::write(&file, text).expect("write");
            let error = AgentConfig::load(Some(&file), &AgentFlags::default())
                .expect_err(text)
                .to_string();
            assert!(error.contains(key), "{text:?}: {error}");
        }
        let missing = AgentConfig::load(
            Some(Path::new("/nonexistent/p.toml")),
            &AgentFlags::default(),
        );
        assert!(
            missing
                .expect_err("missing file")
                .to_string()
                .contains("/nonexistent/p.toml")
        );
    }
}
