//! The replicated [`CommitLog`]: log-server's API over a Raft replica
//! (the agent composes the two; they never depend on each other).
//!
//! Produce on the leader proposes the batch as one Raft proposal and
//! answers once a majority has it durably; on a follower it is forwarded to
//! the leader (bounded by [`FORWARD_TIMEOUT`]) and the leader's answer is
//! returned. Reads anywhere see only applied (committed) entries, with
//! Raft's own entries skipped so user offsets stay dense.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use log_core::{Producer, Record, RecordKind};
use log_server::{
    Appended, CommitLog, Error, LogInfo, Result, ServerDirectory, ServerInfo, ServerRole,
};
use replicator::{LogStorage, Proposed, Replica, Status};
use tokio::sync::watch;

use crate::raft_transport::Forwarder;

/// Longest a follower waits for the leader to answer a forwarded produce.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// Records read from the Raft log at once while gathering a batch.
const READ_CHUNK_RECORDS: u64 = 1024;

/// Where a node's RPC port is, by node id.
pub type RpcAddrs = Arc<dyn Fn(u64) -> Option<String> + Send + Sync>;

/// A [`CommitLog`] over a Raft replica.
pub struct ReplicatedLog {
    replica: Replica,
    storage: LogStorage,
    commit: watch::Receiver<u64>,
    directory: Arc<dyn ServerDirectory>,
    rpc_addrs: RpcAddrs,
    record_bytes_max: u64,
    forwarder: Forwarder,
}

impl ReplicatedLog {
    /// Serves `replica`, whose storage is `storage`; `directory` lists the
    /// cluster's members and `rpc_addrs` finds a node's RPC address.
    pub fn new(
        replica: Replica,
        storage: LogStorage,
        directory: Arc<dyn ServerDirectory>,
        rpc_addrs: RpcAddrs,
        record_bytes_max: u64,
        forwarder: Forwarder,
    ) -> Self {
        let (sender, commit) = watch::channel(commit_offset(&storage, &replica.status().borrow()));
        // Followers of the tail wait on user commit offsets, derived from
        // the replica's applied index.
        let mut status = replica.status();
        let mapper = storage.clone();
        tokio::spawn(async move {
            while status.changed().await.is_ok() {
                let offset = commit_offset(&mapper, &status.borrow_and_update());
                sender.send_if_modified(|commit| {
                    let moved = offset > *commit;
                    if moved {
                        *commit = offset;
                    }
                    moved
                });
            }
        });
        Self {
            replica,
            storage,
            commit,
            directory,
            rpc_addrs,
            record_bytes_max,
            forwarder,
        }
    }

    fn status(&self) -> Status {
        *self.replica.status().borrow()
    }

    /// The user offset below which records are committed, now.
    fn commit_offset(&self) -> u64 {
        commit_offset(&self.storage, &self.status())
    }

    fn out_of_range(&self, offset: u64) -> Error {
        Error::OutOfRange {
            offset,
            lowest: 0,
            next: self.commit_offset(),
        }
    }

    async fn forward(
        &self,
        leader: u64,
        values: Vec<Bytes>,
        producer: Option<Producer>,
    ) -> Result<Appended> {
        let addr = (self.rpc_addrs)(leader).ok_or_else(|| Error::NoLeader {
            message: format!(
                "this node is not the leader and does not know node {leader}'s address yet; retry"
            ),
            leader: None,
        })?;
        self.forwarder
            .forward(&addr, values, producer, FORWARD_TIMEOUT)
            .await
            .map_err(|status| match status.code() {
                tonic::Code::InvalidArgument => Error::InvalidArgument(status.message().to_owned()),
                tonic::Code::ResourceExhausted => Error::Overloaded(status.message().to_owned()),
                tonic::Code::OutOfRange => Error::FailedPrecondition {
                    reason: log_server::error::SEQUENCE_TOO_OLD,
                    message: status.message().to_owned(),
                },
                // It refused before proposing: nothing was appended.
                tonic::Code::FailedPrecondition => Error::NoLeader {
                    message: format!(
                        "the node at {addr} this node took for the leader no longer leads; retry"
                    ),
                    leader: None,
                },
                // Anything else may have been appended: not `NoLeader`,
                // whose promise is that nothing was.
                _ => Error::Unavailable(format!(
                    "forwarding to the leader at {addr} failed: {}",
                    status.message()
                )),
            })
    }

    /// The leader's RPC address, when this node knows one.
    fn leader_addr(&self) -> Option<String> {
        self.status().leader.and_then(|id| (self.rpc_addrs)(id))
    }
}

fn commit_offset(storage: &LogStorage, status: &Status) -> u64 {
    storage.user_offset(status.applied_index + 1)
}

impl ReplicatedLog {
    fn check_sizes(&self, values: &[Bytes]) -> Result<()> {
        match values
            .iter()
            .find(|v| v.len() as u64 > self.record_bytes_max)
        {
            Some(value) => Err(Error::RecordTooLarge {
                size: value.len() as u64,
                limit: self.record_bytes_max,
            }),
            None => Ok(()),
        }
    }

    /// Proposes here, or forwards to the leader this node knows.
    async fn propose(&self, values: Vec<Bytes>, producer: Option<Producer>) -> Result<Appended> {
        self.check_sizes(&values)?;
        let count = values.len() as u64;
        let proposed = match producer {
            None => self
                .replica
                .propose(values.clone())
                .await
                .map(|first| Proposed {
                    first,
                    count,
                    duplicate: false,
                }),
            Some(producer) => {
                self.replica
                    .propose_idempotent(values.clone(), producer)
                    .await
            }
        };
        match proposed {
            Ok(proposed) => Ok(Appended {
                first: self.storage.user_offset(proposed.first),
                count: proposed.count,
                duplicate: proposed.duplicate,
            }),
            Err(replicator::Error::NotLeader {
                leader: Some(leader),
            }) => self.forward(leader, values, producer).await,
            Err(replicator::Error::NotLeader { leader: None }) => Err(Error::NoLeader {
                message: "no leader is elected yet; retry shortly".into(),
                leader: None,
            }),
            Err(replicator::Error::Dropped) => Err(Error::NoLeader {
                message: "the leader changed before the records were committed; retry".into(),
                leader: self.leader_addr(),
            }),
            Err(e @ replicator::Error::SequenceTooOld { .. }) => Err(Error::FailedPrecondition {
                reason: log_server::error::SEQUENCE_TOO_OLD,
                message: e.to_string(),
            }),
            Err(e) => {
                tracing::error!(error = %e, "replicated append failed");
                Err(Error::Unavailable(
                    "replication is stopped on this node".into(),
                ))
            }
        }
    }
}

/// A count as a span field: OpenTelemetry integers are signed.
fn attribute(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

// Debug-level spans, as the local log's: children of the request span when
// OTLP is on.
impl CommitLog for ReplicatedLog {
    #[tracing::instrument(
        level = "debug",
        name = "append",
        skip_all,
        fields(
            records = attribute(values.len()),
            bytes = attribute(values.iter().map(Bytes::len).sum::<usize>()),
        )
    )]
    async fn append(&self, values: Vec<Bytes>) -> Result<u64> {
        Ok(self.propose(values, None).await?.first)
    }

    #[tracing::instrument(
        level = "debug",
        name = "append",
        skip_all,
        fields(
            records = attribute(values.len()),
            bytes = attribute(values.iter().map(Bytes::len).sum::<usize>()),
            producer = producer.id,
        )
    )]
    async fn append_idempotent(&self, values: Vec<Bytes>, producer: Producer) -> Result<Appended> {
        if producer.sequence.checked_add(values.len() as u64).is_none() {
            return Err(Error::InvalidArgument(format!(
                "sequence {} with {} records runs past the largest sequence number",
                producer.sequence,
                values.len()
            )));
        }
        self.propose(values, Some(producer)).await
    }

    async fn read(&self, offset: u64) -> Result<Record> {
        let mut records = self.read_batch(offset, 1, 1).await?;
        records.pop().ok_or_else(|| self.out_of_range(offset))
    }

    async fn read_batch(&self, from: u64, bytes_max: u64, records_max: u64) -> Result<Vec<Record>> {
        let status = self.status();
        let commit = commit_offset(&self.storage, &status);
        if from > commit {
            return Err(self.out_of_range(from));
        }
        let wanted = records_max.min(commit - from);
        if wanted == 0 {
            return Ok(Vec::new());
        }
        let log = self.replica.log();
        let mut index = self.storage.index_of(from);
        let mut offset = from;
        let mut bytes = 0_u64;
        let mut records = Vec::new();
        while (records.len() as u64) < wanted && index <= status.applied_index {
            let chunk = (status.applied_index + 1 - index).min(READ_CHUNK_RECORDS);
            let batch = log.read_batch(index, bytes_max.max(1), chunk)?;
            if batch.is_empty() {
                break;
            }
            for mut record in batch {
                index = record.offset + 1;
                if record.kind != RecordKind::Data {
                    continue;
                }
                // As the local log counts: stored frames, header included.
                bytes += (log_core::FRAME_HEADER_BYTES + record.value.len()) as u64;
                if !records.is_empty() && bytes > bytes_max {
                    return Ok(records);
                }
                record.offset = offset;
                offset += 1;
                records.push(record);
                if records.len() as u64 == wanted {
                    break;
                }
            }
        }
        Ok(records)
    }

    fn info(&self) -> LogInfo {
        let commit = self.commit_offset();
        LogInfo {
            lowest_offset: 0,
            next_offset: commit,
            commit_offset: commit,
        }
    }

    fn watch_commit(&self) -> watch::Receiver<u64> {
        self.commit.clone()
    }

    fn record_bytes_max(&self) -> u64 {
        self.record_bytes_max
    }

    fn servers(&self) -> Vec<ServerInfo> {
        let leader = self.status().leader;
        let conf = self.replica.conf_state();
        self.directory
            .servers()
            .into_iter()
            .map(|server| ServerInfo {
                is_leader: Some(server.node_id) == leader,
                role: if conf.get_voters().contains(&server.node_id) {
                    ServerRole::Voter
                } else if conf.get_learners().contains(&server.node_id) {
                    ServerRole::Learner
                } else {
                    ServerRole::None
                },
                ..server
            })
            .collect()
    }

    /// Ready once a leader is known and this node has applied everything
    /// it knows to be committed: a node that starts far behind is not
    /// ready until it caught up.
    fn is_ready(&self) -> bool {
        let status = self.status();
        status.leader.is_some() && !status.failed && status.applied_index >= status.commit_index
    }
}
