//! One replica's Raft settings.

use crate::error::{Error, Result};

/// How a replica runs Raft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This node's id (never 0): the stable id from discovery.
    pub id: u64,
    /// Milliseconds per Raft tick.
    pub tick_ms: u64,
    /// Ticks without a heartbeat before a follower campaigns (randomized
    /// by raft between this and twice this).
    pub election_ticks: usize,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_ticks: usize,
    /// Largest append message, bytes (raft's default 0 would send one entry
    /// per message).
    pub message_bytes_max: u64,
    /// Append messages in flight per follower.
    pub in_flight_messages_max: usize,
    /// Bytes proposed but not yet committed before new proposals are
    /// dropped (backpressure).
    pub uncommitted_bytes_max: u64,
    /// What the idempotent-produce table remembers (the same on every
    /// node).
    pub producers: crate::ProducersConfig,
}

impl Config {
    /// The defaults for node `id`: 100 ms ticks, elections after 1-2 s,
    /// heartbeats every 200 ms, 1 MiB messages.
    pub fn new(id: u64) -> Self {
        Self {
            id,
            tick_ms: 100,
            election_ticks: 10,
            heartbeat_ticks: 2,
            message_bytes_max: 1 << 20,
            in_flight_messages_max: 256,
            uncommitted_bytes_max: 64 << 20,
            producers: crate::ProducersConfig::default(),
        }
    }

    /// Checks what raft would refuse, naming the field.
    ///
    /// # Errors
    /// [`Error::Config`] for the first bad field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, reason: &str| {
            Err(Error::Config {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.id == 0 {
            return bad("id", "must not be 0");
        }
        if self.tick_ms == 0 {
            return bad("tick_ms", "must be at least 1");
        }
        if self.heartbeat_ticks == 0 || self.election_ticks <= self.heartbeat_ticks {
            return bad(
                "election_ticks",
                "must be greater than heartbeat_ticks, which must be at least 1",
            );
        }
        if self.uncommitted_bytes_max < self.message_bytes_max {
            return bad(
                "uncommitted_bytes_max",
                "must be at least message_bytes_max",
            );
        }
        Ok(())
    }

    /// raft-rs's configuration, with `applied` the index already applied.
    pub(crate) fn raft_config(&self, applied: u64) -> raft::Config {
        raft::Config {
            id: self.id,
            election_tick: self.election_ticks,
            heartbeat_tick: self.heartbeat_ticks,
            applied,
            max_size_per_msg: self.message_bytes_max,
            max_inflight_msgs: self.in_flight_messages_max,
            max_uncommitted_size: self.uncommitted_bytes_max,
            check_quorum: true,
            pre_vote: true,
            ..raft::Config::default()
        }
    }
}
