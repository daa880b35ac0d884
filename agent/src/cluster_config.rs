//! The `[cluster]` section: gossip discovery (and, later, replication).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use crate::config::ConfigError;

/// How the node finds the other nodes of its cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSection {
    /// UDP address gossip binds, IP:PORT; empty: gossip off (a standalone
    /// node that nobody can join).
    pub gossip_addr: String,
    /// The gossip address peers are told to use, IP:PORT; empty: the bound
    /// address. Required when `gossip_addr` binds 0.0.0.0.
    pub gossip_advertise_addr: String,
    /// The RPC address peers and clients are told to dial, HOST:PORT;
    /// empty: the bound `rpc_addr`. Required when that binds 0.0.0.0.
    pub rpc_advertise_addr: String,
    /// Seeds to join through, `host:port` each (DNS names are resolved
    /// again on every attempt). A comma-separated string is accepted too.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub join: Vec<String>,
    /// File of base64 gossip keys, one per line, the first sealing
    /// (absent: plaintext gossip). `proglog cert gossip-key` writes one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gossip_key_file: Option<PathBuf>,
    /// Replication: N >= 1 (default 1) replicates the log with Raft, and a
    /// node without Raft state waits until N members (itself included) are
    /// seen by gossip, then all start with exactly those N as voters; with
    /// 1 a lone node is a cluster of one voter that others can join later.
    /// 0 turns Raft off (a standalone log, the only kind with retention).
    pub bootstrap_expect: u32,
    /// Milliseconds between gossip probes of a random member.
    pub probe_period_ms: u64,
    /// Milliseconds a suspected member has to refute before it is marked
    /// down; 0: foca's LAN preset (about 4 probe periods for small
    /// clusters).
    pub suspect_to_down_ms: u64,
    /// Milliseconds gossip keeps running after announcing a leave on
    /// shutdown, so the leave spreads.
    pub leave_timeout_ms: u64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self {
            gossip_addr: String::new(),
            gossip_advertise_addr: String::new(),
            rpc_advertise_addr: String::new(),
            join: Vec::new(),
            gossip_key_file: None,
            bootstrap_expect: 1,
            probe_period_ms: 1_000,
            suspect_to_down_ms: 0,
            leave_timeout_ms: 1_500,
        }
    }
}

impl ClusterSection {
    /// Whether the log is replicated with Raft.
    pub fn replication_enabled(&self) -> bool {
        self.bootstrap_expect > 0
    }

    /// Whether gossip runs.
    pub fn gossip_enabled(&self) -> bool {
        !self.gossip_addr.is_empty()
    }

    /// Checks the section; `rpc_addr` is the node's bound RPC address.
    ///
    /// # Errors
    /// The first bad key, named.
    pub fn validate(&self, rpc_addr: &str) -> Result<(), ConfigError> {
        let bad =
            |key: &str, reason: String| Err(ConfigError::key(format!("cluster.{key}"), reason));
        if self.bootstrap_expect > 1 && !self.gossip_enabled() {
            return bad(
                "bootstrap_expect",
                "more than one voter needs cluster.gossip_addr (--gossip-addr) to find them".into(),
            );
        }
        if !self.gossip_enabled() {
            for (key, set) in [
                ("join", !self.join.is_empty()),
                ("gossip_key_file", self.gossip_key_file.is_some()),
                (
                    "gossip_advertise_addr",
                    !self.gossip_advertise_addr.is_empty(),
                ),
                ("rpc_advertise_addr", !self.rpc_advertise_addr.is_empty()),
            ] {
                if set {
                    return bad(
                        key,
                        "needs cluster.gossip_addr (--gossip-addr): gossip is off".into(),
                    );
                }
            }
            return Ok(());
        }
        let Ok(gossip) = self.gossip_addr.parse::<SocketAddr>() else {
            return bad(
                "gossip_addr",
                format!(
                    "{:?} is not an IP:PORT address (or empty for off)",
                    self.gossip_addr
                ),
            );
        };
        if self.gossip_advertise_addr.is_empty() {
            if gossip.ip().is_unspecified() {
                return bad(
                    "gossip_advertise_addr",
                    format!("must be set when gossip_addr binds {gossip} (peers cannot dial it)"),
                );
            }
        } else {
            match self.gossip_advertise_addr.parse::<SocketAddr>() {
                Ok(addr) if !addr.ip().is_unspecified() && addr.port() != 0 => {}
                _ => {
                    return bad(
                        "gossip_advertise_addr",
                        format!(
                            "{:?} is not a reachable IP:PORT (no 0.0.0.0, no port 0)",
                            self.gossip_advertise_addr
                        ),
                    );
                }
            }
        }
        if self.rpc_advertise_addr.is_empty() {
            if rpc_addr
                .parse::<SocketAddr>()
                .is_ok_and(|addr| addr.ip().is_unspecified())
            {
                return bad(
                    "rpc_advertise_addr",
                    format!("must be set when rpc_addr binds {rpc_addr} (peers cannot dial it)"),
                );
            }
        } else if !is_host_port(&self.rpc_advertise_addr) {
            return bad(
                "rpc_advertise_addr",
                format!("{:?} is not HOST:PORT", self.rpc_advertise_addr),
            );
        }
        if let Some(seed) = self.join.iter().find(|seed| !is_host_port(seed)) {
            return bad("join", format!("{seed:?} is not HOST:PORT"));
        }
        if self.probe_period_ms < 10 {
            return bad("probe_period_ms", "must be at least 10".into());
        }
        if self.leave_timeout_ms > 60_000 {
            return bad("leave_timeout_ms", "must be at most 60000".into());
        }
        Ok(())
    }
}

/// `host:port` with a non-empty host and a port from 1 to 65535.
fn is_host_port(text: &str) -> bool {
    match text.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.contains(char::is_whitespace)
                && port.parse::<u16>().is_ok_and(|p| p != 0)
        }
        None => false,
    }
}

/// Accepts `["a:1", "b:2"]` or `"a:1,b:2"` (what an environment variable
/// or a single flag value holds).
fn list_or_comma_separated<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        String(String),
    }
    let items = match ListOrString::deserialize(deserializer)? {
        ListOrString::List(items) => items,
        ListOrString::String(text) => text.split(',').map(str::to_owned).collect(),
    };
    Ok(items
        .into_iter()
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect())
}
