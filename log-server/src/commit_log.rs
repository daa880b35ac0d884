//! The contract between the API and whatever log is behind it.

use std::future::Future;

use bytes::Bytes;
use log_core::{Producer, Record};
use tokio::sync::watch;

use crate::error::{Error, Result};

/// Where a node's log stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogInfo {
    /// Lowest retained offset.
    pub lowest_offset: u64,
    /// Offset the next record will get.
    pub next_offset: u64,
    /// Records below this offset are committed and visible to consumers.
    pub commit_offset: u64,
}

impl LogInfo {
    /// The newest committed record's offset, if any.
    pub fn highest_offset(&self) -> Option<u64> {
        (self.commit_offset > self.lowest_offset).then(|| self.commit_offset - 1)
    }
}

/// What an idempotent append answered: offsets `first .. first + count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the first record.
    pub first: u64,
    /// Records answered, from the first value: all of them, or a prefix
    /// when some were already in the log (append the rest again, from
    /// sequence + count).
    pub count: u64,
    /// Whether these records were already in the log (a resend).
    pub duplicate: bool,
}

/// The answer of a log that keeps no producer table to an idempotent
/// append.
pub fn no_producer_table() -> Error {
    Error::FailedPrecondition {
        reason: crate::error::IDEMPOTENCE_UNSUPPORTED,
        message: "idempotent produce (a nonzero producer_id) needs a replicated log; this node runs without replication (cluster.bootstrap_expect = 0)".into(),
    }
}

/// A member of the cluster as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The node's name.
    pub id: String,
    /// The node's stable numeric id.
    pub node_id: u64,
    /// Address of its gRPC + HTTP port.
    pub rpc_addr: String,
    /// Whether it currently leads (always true for a single node).
    pub is_leader: bool,
    /// Whether it is reachable, as membership sees it.
    pub state: ServerState,
    /// Its place in the Raft configuration.
    pub role: ServerRole,
}

/// A server's place in the Raft configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerRole {
    /// Votes and counts towards the majority.
    Voter,
    /// Receives the log; does not vote (a node catching up to join).
    Learner,
    /// Not in the configuration (not added yet, or no replication).
    None,
}

impl ServerRole {
    /// The lowercase name clients see ("" for [`ServerRole::None`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Voter => "voter",
            Self::Learner => "learner",
            Self::None => "",
        }
    }
}

/// A server's state as cluster membership sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Answering.
    Alive,
    /// Missed a probe; not yet declared down.
    Suspect,
    /// Declared failed.
    Down,
    /// Left gracefully.
    Left,
}

impl ServerState {
    /// The lowercase name clients see.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alive => "alive",
            Self::Suspect => "suspect",
            Self::Down => "down",
            Self::Left => "left",
        }
    }
}

/// Who is in the cluster: supplied by the agent from membership (gossip)
/// so this crate does not depend on it.
pub trait ServerDirectory: Send + Sync + 'static {
    /// Every known server, the answering one included.
    fn servers(&self) -> Vec<ServerInfo>;
}

/// A commit log the API can serve: the local log today, the replicated log
/// later. Every implementation must pass the same conformance tests
/// (`log-server/tests`).
///
/// Consumers see only committed records: reads at or past
/// [`LogInfo::commit_offset`] are out of range, and
/// [`watch_commit`](Self::watch_commit) publishes each new commit offset so
/// followers wait without polling.
pub trait CommitLog: Send + Sync + 'static {
    /// Appends the values as one batch with dense offsets and returns the
    /// first offset. When it returns `Ok`, the records are committed (durable
    /// under the node's fsync policy).
    ///
    /// # Errors
    /// `RecordTooLarge` (nothing written), `Overloaded`, `Unavailable`.
    fn append(&self, values: Vec<Bytes>) -> impl Future<Output = Result<u64>> + Send;

    /// Appends `values` as records `producer.sequence ..` of producer
    /// `producer.id`, unless they are already in the log: then answers
    /// their original offsets (see [`Appended`]). The log, not this node,
    /// remembers the producers, so the answer is the same on any node and
    /// after a restart.
    ///
    /// # Errors
    /// As [`append`](Self::append); `FailedPrecondition` for a sequence
    /// older than what the log remembers, or from a log that keeps no
    /// producer table ([`no_producer_table`]).
    fn append_idempotent(
        &self,
        values: Vec<Bytes>,
        producer: Producer,
    ) -> impl Future<Output = Result<Appended>> + Send;

    /// Reads one committed record.
    ///
    /// # Errors
    /// `OutOfRange` with the valid range.
    fn read(&self, offset: u64) -> impl Future<Output = Result<Record>> + Send;

    /// Reads committed records from `from`: at most `records_max` and
    /// `bytes_max` bytes (but at least one when there is one); empty at the
    /// commit offset.
    ///
    /// # Errors
    /// `OutOfRange` with the valid range.
    fn read_batch(
        &self,
        from: u64,
        bytes_max: u64,
        records_max: u64,
    ) -> impl Future<Output = Result<Vec<Record>>> + Send;

    /// Offsets of the log now.
    fn info(&self) -> LogInfo;

    /// The commit offset, updated after every commit.
    fn watch_commit(&self) -> watch::Receiver<u64>;

    /// Largest record payload accepted, in bytes.
    fn record_bytes_max(&self) -> u64;

    /// Whether [`append`](Self::append) usually completes without waiting
    /// (no fsync per append). Then a produce stream reads and appends on one
    /// task, saving a hand-off per batch; otherwise it keeps reading while
    /// an append waits, so the requests that arrive meanwhile form the next
    /// batch. Either way the results are the same.
    fn appends_inline(&self) -> bool {
        false
    }

    /// The servers clients may call.
    fn servers(&self) -> Vec<ServerInfo>;

    /// Whether the log accepts writes (readiness).
    fn is_ready(&self) -> bool;
}
