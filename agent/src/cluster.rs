//! Gossip membership in the agent: the key file, the node identity, the
//! discovery task, and the server list clients see.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use discovery::{Discovery, Keyring, MemberEvent, MemberState, NodeIdentity};
use log_server::{ServerDirectory, ServerInfo, ServerState};
use tokio::sync::mpsc;

use crate::config::AgentConfig;

/// Reads the gossip key file, if one is configured: called before anything
/// is opened, so a bad file is a configuration error (exit 2).
///
/// # Errors
/// The file is missing, unreadable or holds no valid key (named).
pub fn load_keyring(config: &AgentConfig) -> Result<Option<Keyring>, discovery::Error> {
    match &config.cluster.gossip_key_file {
        Some(path) if config.cluster.gossip_enabled() => Keyring::from_file(path).map(Some),
        _ => Ok(None),
    }
}

/// The node's place in the cluster: its identity and, with gossip on, the
/// discovery task.
pub struct Cluster {
    identity: NodeIdentity,
    name: String,
    rpc_addr: String,
    discovery: Option<Discovery>,
}

impl Cluster {
    /// Takes this start's identity from the data directory and, with gossip
    /// on, binds the gossip socket and starts joining. `rpc_addr` is the
    /// bound RPC address (used when none is advertised).
    ///
    /// # Errors
    /// The identity files cannot be used (another node's directory), or the
    /// gossip address cannot be bound.
    pub async fn start(
        config: &AgentConfig,
        keyring: Option<Keyring>,
        rpc_addr: &str,
        tls_on: bool,
    ) -> anyhow::Result<Self> {
        let identity = NodeIdentity::load_or_create(&config.data_dir, &config.node_name)?;
        let cluster = &config.cluster;
        let rpc_addr = if cluster.rpc_advertise_addr.is_empty() {
            rpc_addr.to_owned()
        } else {
            cluster.rpc_advertise_addr.clone()
        };
        let mut this = Self {
            identity,
            name: config.node_name.clone(),
            rpc_addr,
            discovery: None,
        };
        if !cluster.gossip_enabled() {
            tracing::info!(
                node_id = identity.id,
                "gossip is off (no cluster.gossip_addr): a standalone node nobody can join"
            );
            return Ok(this);
        }
        if keyring.is_none() {
            if tls_on {
                tracing::warn!(
                    "gossip is NOT encrypted although the RPC port uses TLS: \
                     set cluster.gossip_key_file (proglog cert gossip-key FILE)"
                );
            } else {
                tracing::info!("gossip is plaintext (no cluster.gossip_key_file)");
            }
        }
        let bind: SocketAddr = cluster
            .gossip_addr
            .parse()
            .with_context(|| format!("cluster.gossip_addr {:?}", cluster.gossip_addr))?;
        let transport = discovery::transport::UdpTransport::bind(bind)
            .await
            .with_context(|| format!("binding cluster.gossip_addr {bind}"))?;
        let bound = transport.local_addr()?;
        let advertise = if cluster.gossip_advertise_addr.is_empty() {
            bound
        } else {
            cluster.gossip_advertise_addr.parse()?
        };
        let mut gossip = discovery::Config::new(
            &config.node_name,
            identity.id,
            identity.incarnation,
            advertise,
            &this.rpc_addr,
        );
        gossip.join = cluster.join.clone();
        gossip.keyring = keyring;
        gossip.probe_period_ms = cluster.probe_period_ms;
        gossip.probe_rtt_ms = (cluster.probe_period_ms / 2).max(1);
        gossip.suspect_to_down_ms = cluster.suspect_to_down_ms;
        gossip.leave_linger_ms = cluster.leave_timeout_ms;
        let (discovery, events) = Discovery::start(gossip, transport)?;
        tracing::info!(
            gossip_addr = %bound,
            advertise = %advertise,
            node_id = identity.id,
            incarnation = identity.incarnation,
            seeds = ?cluster.join,
            "gossip listening"
        );
        tokio::spawn(log_events(events));
        this.discovery = Some(discovery);
        Ok(this)
    }

    /// The server list for `GetServers`.
    pub fn directory(&self) -> Arc<dyn ServerDirectory> {
        Arc::new(Directory {
            local: ServerInfo {
                id: self.name.clone(),
                node_id: self.identity.id,
                rpc_addr: self.rpc_addr.clone(),
                is_leader: true,
                state: ServerState::Alive,
            },
            discovery: self.discovery.clone(),
        })
    }

    /// Announces a graceful leave and waits (bounded by the configured
    /// linger plus `margin`) until it has spread.
    pub async fn leave(&self, margin: Duration, linger: Duration) {
        let Some(discovery) = &self.discovery else {
            return;
        };
        match tokio::time::timeout(linger + margin, discovery.leave()).await {
            Ok(Ok(())) => tracing::info!("left the gossip cluster"),
            Ok(Err(e)) => tracing::warn!(error = %e, "gossip leave failed"),
            Err(_) => {
                discovery.abort();
                tracing::warn!("gossip leave did not finish in time; stopped it");
            }
        }
    }
}

/// Logs membership changes. The agent has no other consumer yet; the Raft
/// issue adds one (learners from `Joined`).
async fn log_events(mut events: mpsc::Receiver<MemberEvent>) {
    while let Some(event) = events.recv().await {
        tracing::debug!(?event, "membership event");
    }
}

/// The servers gossip knows, as log-server lists them.
struct Directory {
    local: ServerInfo,
    discovery: Option<Discovery>,
}

impl ServerDirectory for Directory {
    fn servers(&self) -> Vec<ServerInfo> {
        let Some(discovery) = &self.discovery else {
            return vec![self.local.clone()];
        };
        discovery
            .members()
            .into_iter()
            .map(|member| ServerInfo {
                id: member.name,
                node_id: member.id,
                rpc_addr: member.rpc_addr,
                // Until replication, each node leads only its own log.
                is_leader: member.is_local,
                state: match member.state {
                    MemberState::Alive => ServerState::Alive,
                    MemberState::Suspect => ServerState::Suspect,
                    MemberState::Down => ServerState::Down,
                    MemberState::Left => ServerState::Left,
                },
            })
            .collect()
    }
}
