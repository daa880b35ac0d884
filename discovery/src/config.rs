//! Discovery's configuration.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::keyring::Keyring;

/// How a node takes part in gossip.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's name.
    pub node_name: String,
    /// This node's stable id (never 0), see [`crate::NodeIdentity`].
    pub node_id: u64,
    /// This start's incarnation, see [`crate::NodeIdentity`].
    pub incarnation: u64,
    /// The address peers send gossip to (the bound address, or what a node
    /// bound to 0.0.0.0 is reachable at).
    pub advertise_addr: SocketAddr,
    /// The RPC address peers and clients are told to dial.
    pub rpc_addr: String,
    /// Seeds to join through: `host:port`, names resolved again on every
    /// attempt.
    pub join: Vec<String>,
    /// Keys that seal and open packets; `None`: plaintext gossip.
    pub keyring: Option<Keyring>,
    /// The expected cluster size, for foca's LAN preset (retransmissions
    /// and the suspicion timeout grow with it).
    pub cluster_size_hint: u32,
    /// Milliseconds between probes of a random member.
    pub probe_period_ms: u64,
    /// Milliseconds a probe waits for an ack before asking others.
    pub probe_rtt_ms: u64,
    /// Milliseconds a suspect member has to refute before it is down
    /// (0: foca's LAN preset for `cluster_size_hint`).
    pub suspect_to_down_ms: u64,
    /// Milliseconds a down member stays listed before it is forgotten.
    pub remove_down_after_ms: u64,
    /// First wait between join attempts, milliseconds; doubles per failure.
    pub join_backoff_min_ms: u64,
    /// Longest wait between join attempts, milliseconds.
    pub join_backoff_max_ms: u64,
    /// How long the loop keeps running after announcing a leave, so the
    /// leave spreads, milliseconds.
    pub leave_linger_ms: u64,
    /// Seed of foca's random choices (probe order, gossip targets);
    /// `None`: from the operating system. Simulations set it.
    pub rng_seed: Option<u64>,
}

impl Config {
    /// A configuration with the defaults for everything but identity and
    /// addresses.
    pub fn new(
        node_name: impl Into<String>,
        node_id: u64,
        incarnation: u64,
        advertise_addr: SocketAddr,
        rpc_addr: impl Into<String>,
    ) -> Self {
        Self {
            node_name: node_name.into(),
            node_id,
            incarnation,
            advertise_addr,
            rpc_addr: rpc_addr.into(),
            join: Vec::new(),
            keyring: None,
            cluster_size_hint: 8,
            probe_period_ms: 1_000,
            probe_rtt_ms: 500,
            suspect_to_down_ms: 0,
            remove_down_after_ms: 24 * 60 * 60 * 1_000,
            join_backoff_min_ms: 500,
            join_backoff_max_ms: 30_000,
            leave_linger_ms: 1_500,
            rng_seed: None,
        }
    }

    /// Checks values the types do not.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        let bad = |key, reason: &str| {
            Err(Error::Config {
                key,
                reason: reason.to_owned(),
            })
        };
        if self.node_id == 0 {
            return bad("node_id", "must not be 0");
        }
        if self.advertise_addr.ip().is_unspecified() || self.advertise_addr.port() == 0 {
            return bad(
                "cluster.gossip_advertise_addr",
                "must be a reachable IP:PORT (not 0.0.0.0 or port 0); set it when binding 0.0.0.0",
            );
        }
        if self.cluster_size_hint == 0 {
            return bad("cluster.size_hint", "must be at least 1");
        }
        if self.probe_rtt_ms == 0 || self.probe_rtt_ms >= self.probe_period_ms {
            return bad(
                "cluster.probe_rtt_ms",
                "must be at least 1 and less than probe_period_ms",
            );
        }
        if self.join_backoff_min_ms == 0 || self.join_backoff_max_ms < self.join_backoff_min_ms {
            return bad(
                "cluster.join_backoff_max_ms",
                "backoffs must be at least 1 ms and max >= min",
            );
        }
        Ok(())
    }

    /// foca's configuration: the LAN preset with our timings and a packet
    /// size that leaves room for the envelope.
    pub(crate) fn foca_config(&self) -> foca::Config {
        let size =
            std::num::NonZeroU32::new(self.cluster_size_hint).unwrap_or(std::num::NonZeroU32::MIN);
        let mut config = foca::Config::new_lan(size);
        config.probe_period = Duration::from_millis(self.probe_period_ms);
        config.probe_rtt = Duration::from_millis(self.probe_rtt_ms);
        if self.suspect_to_down_ms > 0 {
            config.suspect_to_down_after = Duration::from_millis(self.suspect_to_down_ms);
        }
        config.remove_down_after = Some(Duration::from_millis(self.remove_down_after_ms));
        config.max_packet_size = std::num::NonZeroUsize::new(crate::envelope::PAYLOAD_BYTES_MAX)
            .unwrap_or(std::num::NonZeroUsize::MIN);
        config
    }
}
