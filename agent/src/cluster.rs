//! Gossip membership in the agent: the key file, the node identity, the
//! discovery task, and the server list clients see.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use discovery::{Discovery, Keyring, MemberEvent, MemberState, NodeIdentity};
use log_server::{ServerDirectory, ServerInfo, ServerRole, ServerState};
use tokio::sync::mpsc;

use crate::config::AgentConfig;

/// The gossip tag saying whether a node runs Raft.
const RAFT_TAG: &str = "raft";
/// [`RAFT_TAG`] of a node without Raft state, waiting to bootstrap.
const RAFT_NEW: &str = "new";
/// [`RAFT_TAG`] of a node with Raft state.
const RAFT_MEMBER: &str = "member";
/// [`RAFT_TAG`] of a node waiting for a leader to add it.
const RAFT_JOINING: &str = "joining";
/// The voters a Raft member started with (comma-separated ids), so a peer
/// still waiting to bootstrap can join the same set.
const VOTERS_TAG: &str = "voters";

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

/// How a node without Raft state starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// A new cluster with these voters.
    Bootstrap(Vec<u64>),
    /// Wait, empty, for the running cluster's leader to add this node.
    Join,
}

/// The node's place in the cluster: its identity and, with gossip on, the
/// discovery task. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    identity: NodeIdentity,
    name: String,
    rpc_addr: String,
    join: Vec<String>,
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
            join: config.cluster.join.clone(),
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

    /// This node's stable id.
    pub fn node_id(&self) -> u64 {
        self.identity.id
    }

    /// Finds a node's RPC address by id, from what gossip knows now.
    pub fn rpc_addrs(&self) -> Arc<dyn Fn(u64) -> Option<String> + Send + Sync> {
        let local = (self.identity.id, self.rpc_addr.clone());
        let discovery = self.discovery.clone();
        Arc::new(move |id| {
            if id == local.0 {
                return Some(local.1.clone());
            }
            discovery.as_ref().and_then(|discovery| {
                discovery
                    .members()
                    .into_iter()
                    .find(|member| member.id == id)
                    .map(|member| member.rpc_addr)
            })
        })
    }

    /// How a node without Raft state starts: waits until every alive
    /// member's Raft tag is known (so a seed that already runs a cluster is
    /// seen before deciding), then either joins the cluster a member runs
    /// (the leader adds it as a learner), or bootstraps once `expect`
    /// members without Raft state are alive (this node included), all
    /// with the same voters: their ids, sorted. `None` when `shutdown`
    /// came first.
    ///
    /// # Errors
    /// Gossip stopped.
    pub async fn bootstrap_voters(
        &self,
        expect: usize,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<Option<Start>> {
        let Some(discovery) = &self.discovery else {
            anyhow::ensure!(expect <= 1, "bootstrap_expect {expect} needs gossip");
            return Ok(Some(Start::Bootstrap(vec![self.identity.id])));
        };
        let seeded = !self.join.is_empty();
        discovery
            .set_tags(std::collections::BTreeMap::from([(
                RAFT_TAG.to_owned(),
                RAFT_NEW.to_owned(),
            )]))
            .await?;
        let mut members = discovery.watch();
        let mut last_seen = usize::MAX;
        loop {
            let alive: Vec<_> = members
                .borrow_and_update()
                .iter()
                .filter(|m| m.state.is_active())
                .cloned()
                .collect();
            if let Some(member) = alive
                .iter()
                .find(|m| m.meta.tags.get(RAFT_TAG).map(String::as_str) == Some(RAFT_MEMBER))
            {
                // A peer that saw the same members first has bootstrapped
                // already: take its voter set if it names us.
                let voters: Vec<u64> = member
                    .meta
                    .tags
                    .get(VOTERS_TAG)
                    .map(|list| list.split(',').filter_map(|id| id.parse().ok()).collect())
                    .unwrap_or_default();
                if voters.len() == expect && voters.contains(&self.identity.id) {
                    tracing::info!(voters = ?voters, from = %member.name, "bootstrapping the Raft cluster a peer started");
                    return Ok(Some(Start::Bootstrap(voters)));
                }
                tracing::info!(
                    through = %member.name,
                    "joining the running Raft cluster: waiting for its leader to add this node as a learner"
                );
                discovery
                    .set_tags(std::collections::BTreeMap::from([(
                        RAFT_TAG.to_owned(),
                        RAFT_JOINING.to_owned(),
                    )]))
                    .await?;
                return Ok(Some(Start::Join));
            }
            // With seeds, decide only once a peer is known and every alive
            // member has said what it is: otherwise a node could bootstrap
            // alone next to a cluster it has not heard of yet.
            let undecided = alive
                .iter()
                .any(|m| !m.is_local && !m.meta.tags.contains_key(RAFT_TAG));
            let alone = alive.iter().all(|m| m.is_local);
            if undecided || (seeded && alone) {
                tokio::select! {
                    changed = members.changed() => changed?,
                    () = shutdown.cancelled() => return Ok(None),
                }
                continue;
            }
            let mut new: Vec<u64> = alive
                .iter()
                .filter(|m| m.meta.tags.get(RAFT_TAG).map(String::as_str) == Some(RAFT_NEW))
                .map(|m| m.id)
                .collect();
            new.sort_unstable();
            if new.len() == expect {
                tracing::info!(voters = ?new, "bootstrapping the Raft cluster");
                return Ok(Some(Start::Bootstrap(new)));
            }
            if new.len() != last_seen {
                last_seen = new.len();
                tracing::info!(
                    seen = new.len(),
                    expect,
                    "waiting for bootstrap_expect members without Raft state before starting Raft"
                );
                if new.len() > expect {
                    tracing::warn!(
                        seen = new.len(),
                        expect,
                        "more new members than bootstrap_expect: not bootstrapping (the voter set would be ambiguous); start every node of a new cluster with the same --bootstrap-expect N"
                    );
                }
            }
            tokio::select! {
                changed = members.changed() => changed?,
                () = shutdown.cancelled() => return Ok(None),
            }
        }
    }

    /// Tells the cluster this node runs Raft (so a new node never
    /// bootstraps a second cluster next to it).
    pub async fn mark_raft_member(&self, voters: &[u64]) {
        if let Some(discovery) = &self.discovery {
            let voters: Vec<String> = voters.iter().map(u64::to_string).collect();
            let tags = std::collections::BTreeMap::from([
                (RAFT_TAG.to_owned(), RAFT_MEMBER.to_owned()),
                (VOTERS_TAG.to_owned(), voters.join(",")),
            ]);
            if let Err(e) = discovery.set_tags(tags).await {
                tracing::warn!(error = %e, "could not spread the raft tag");
            }
        }
    }

    /// The id of the member named `name`, if gossip knows one.
    pub fn member_id(&self, name: &str) -> Option<u64> {
        if name == self.name {
            return Some(self.identity.id);
        }
        let discovery = self.discovery.as_ref()?;
        discovery
            .members()
            .into_iter()
            .find(|m| m.name == name)
            .map(|m| m.id)
    }

    /// The name of member `id`, if known.
    pub fn member_name(&self, id: u64) -> Option<String> {
        if id == self.identity.id {
            return Some(self.name.clone());
        }
        let discovery = self.discovery.as_ref()?;
        discovery
            .members()
            .into_iter()
            .find(|m| m.id == id)
            .map(|m| m.name)
    }

    /// Node ids of alive members waiting for a leader to add them.
    pub fn joining_members(&self) -> Vec<u64> {
        self.discovery.as_ref().map_or_else(Vec::new, |discovery| {
            discovery
                .members()
                .into_iter()
                .filter(|m| {
                    m.state.is_active()
                        && m.meta.tags.get(RAFT_TAG).map(String::as_str) == Some(RAFT_JOINING)
                })
                .map(|m| m.id)
                .collect()
        })
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
                role: ServerRole::None,
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
                // The replicated log fills this in from its configuration.
                role: ServerRole::None,
            })
            .collect()
    }
}
