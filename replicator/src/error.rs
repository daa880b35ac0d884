//! The crate's one error type.

use std::path::PathBuf;

/// What replication can answer instead of an index.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// This node does not lead; `leader` is the one it knows, if any.
    #[error("this node is not the leader{}", leader_hint(*.leader))]
    NotLeader {
        /// The leader's node id, when one is known.
        leader: Option<u64>,
    },
    /// The proposal was dropped or overwritten by a new leader: it was not
    /// committed and may be retried.
    #[error("the proposal was not committed (leadership changed or it was dropped); retry")]
    Dropped,
    /// An idempotent sequence older than the producer's remembered window:
    /// whether it is in the log cannot be told.
    #[error(
        "sequence {sequence} of producer {producer} is older than the oldest remembered ({oldest}); it cannot be told whether it is in the log"
    )]
    SequenceTooOld {
        /// The producer id.
        producer: u64,
        /// The sequence asked about.
        sequence: u64,
        /// The oldest sequence remembered for it.
        oldest: u64,
    },
    /// A configuration field is unusable.
    #[error("replication config {field}: {reason}")]
    Config {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The replica has stopped.
    #[error("the replica has stopped")]
    Stopped,
    /// The Raft state file cannot be read or written.
    #[error("raft state file {path}: {reason}")]
    StateFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The log under the replica failed.
    #[error(transparent)]
    Log(#[from] log_core::Error),
    /// raft-rs refused something.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
}

fn leader_hint(leader: Option<u64>) -> String {
    leader.map_or_else(
        || "; no leader is known".into(),
        |id| format!("; the leader is node {id}"),
    )
}

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
