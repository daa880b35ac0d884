//! [`Client`]: produce and consume against a cluster, routed and retried.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use proto::v1::{
    ConsumeBatchRequest, ConsumeRequest, GetLogInfoRequest, GetServersRequest, ProduceBatchRequest,
    ProduceRequest,
};
use tonic::transport::Channel;

use crate::cluster::{Retry, Server, Shared};
use crate::config::{ClientBuilder, ClientConfig};
use crate::error::{Error, Result};
use crate::follow::Follow;
use crate::producer::Producer;
use crate::retry::Attempts;
use crate::routing::Operation;

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its position in the log.
    pub offset: u64,
    /// Milliseconds since the Unix epoch when the leader appended it.
    pub timestamp_ms: u64,
    /// The payload.
    pub value: Bytes,
}

impl From<proto::v1::Record> for Record {
    fn from(record: proto::v1::Record) -> Self {
        Self {
            offset: record.offset,
            timestamp_ms: record.timestamp_ms,
            value: record.value,
        }
    }
}

/// Consecutive records read by [`Client::consume_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The records, in offset order (empty at the commit offset).
    pub records: Vec<Record>,
    /// The offset to ask for next.
    pub next_offset: u64,
}

/// The log's offsets as one node sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogInfo {
    /// The lowest retained offset (equal to `next_offset` when empty).
    pub lowest_offset: u64,
    /// The newest record's offset; `None` when the log is empty.
    pub highest_offset: Option<u64>,
    /// The offset the next record will get.
    pub next_offset: u64,
    /// Records below this offset are committed (visible to consumers).
    pub commit_offset: u64,
}

/// A producer id and the next sequence it will use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) producer_id: u64,
    pub(crate) next_sequence: u64,
}

impl Identity {
    /// A fresh random nonzero producer id at sequence 0.
    pub(crate) fn random() -> Self {
        let producer_id = loop {
            let id = rand::random::<u64>();
            if id != 0 {
                break id;
            }
        };
        Self {
            producer_id,
            next_sequence: 0,
        }
    }
}

/// A cluster-aware proglog client: one HTTP/2 channel per node, produce to
/// the leader, reads by the [`ReadPreference`](crate::ReadPreference),
/// retries per the [`RetryPolicy`](crate::RetryPolicy). Cheap to clone;
/// clones share channels and the cluster picture.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) shared: Arc<Shared>,
    /// Idle producer identities for [`Client::produce`] and
    /// [`Client::produce_batch`]: a call takes one (or makes one) and gives
    /// it back after, so concurrent calls never share a sequence space and
    /// the cluster sees as many producers as calls ever ran at once.
    identities: Arc<Mutex<Vec<Identity>>>,
}

impl Client {
    /// A client with default settings, learning the cluster from `seeds`.
    ///
    /// # Errors
    /// As [`ClientBuilder::connect`].
    pub async fn connect<I, S>(seeds: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClientBuilder::new(seeds).connect().await
    }

    /// A builder for TLS, timeouts, read preference and retries.
    pub fn builder<I, S>(seeds: I) -> ClientBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClientBuilder::new(seeds)
    }

    pub(crate) async fn start(config: ClientConfig) -> Result<Self> {
        let shared = Shared::new(config);
        crate::retry::retrying(&shared.config.retry, || shared.refresh()).await?;
        Shared::spawn_refresher(&shared);
        Ok(Self {
            shared,
            identities: Arc::default(),
        })
    }

    pub(crate) fn start_lazy(config: ClientConfig) -> Self {
        let shared = Shared::new(config);
        Shared::spawn_refresher(&shared);
        Self {
            shared,
            identities: Arc::default(),
        }
    }

    /// The servers as last learned (refreshed on failures and periodically).
    pub fn known_servers(&self) -> Vec<Server> {
        self.shared.servers()
    }

    /// The leader's address as last learned.
    pub fn leader(&self) -> Option<String> {
        self.shared.leader()
    }

    /// Asks the cluster (by the read preference) for its servers now.
    ///
    /// # Errors
    /// Every node failed until the retry policy gave up.
    pub async fn servers(&self) -> Result<Vec<Server>> {
        self.shared
            .call(
                Operation::Read,
                Retry::Safe,
                None,
                |mut stub, _| async move { stub.get_servers(GetServersRequest {}).await },
            )
            .await
            .map(|response| response.servers.into_iter().map(Server::from).collect())
    }

    /// Asks a node (by the read preference) for the log's offsets.
    ///
    /// # Errors
    /// Every node failed until the retry policy gave up.
    pub async fn log_info(&self) -> Result<LogInfo> {
        let info = self
            .shared
            .call(
                Operation::Read,
                Retry::Safe,
                None,
                |mut stub, _| async move { stub.get_log_info(GetLogInfoRequest {}).await },
            )
            .await?;
        Ok(LogInfo {
            lowest_offset: info.lowest_offset,
            highest_offset: info.highest_offset,
            next_offset: info.next_offset,
            commit_offset: info.commit_offset,
        })
    }

    /// The HTTP/2 channel to `addr` (a server's `rpc_addr` or a seed), for
    /// other services on the same port (e.g. `proglog.v1.Cluster`).
    ///
    /// # Errors
    /// [`Error::Config`] for a malformed address.
    pub fn channel(&self, addr: &str) -> Result<Channel> {
        self.shared.channel(addr)
    }

    /// The leader's address, refreshing the cluster picture until one is
    /// known or the retry policy gives up.
    ///
    /// # Errors
    /// [`Error::NotLeader`] when no leader is elected in time, or the
    /// refresh's own failure.
    pub async fn wait_for_leader(&self) -> Result<String> {
        let mut attempts = Attempts::new(self.shared.config.retry.clone());
        loop {
            if let Some(leader) = self.shared.leader() {
                return Ok(leader);
            }
            let refreshed = self.shared.refresh().await;
            if let Some(leader) = self.shared.leader() {
                return Ok(leader);
            }
            if let Err(error) = refreshed
                && !error.is_retryable()
            {
                return Err(error);
            }
            match attempts.failed() {
                Some(wait) => tokio::time::sleep(wait).await,
                None => {
                    return Err(Error::NotLeader {
                        message: "no leader is known in the cluster".to_owned(),
                    });
                }
            }
        }
    }

    fn take_identity(&self) -> Option<Identity> {
        if !self.shared.idempotent() {
            return None;
        }
        let idle = self
            .identities
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        Some(idle.unwrap_or_else(Identity::random))
    }

    fn give_back(&self, identity: Identity) {
        self.identities
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(identity);
    }

    /// Appends one record; its offset.
    ///
    /// Sent to the leader, retried per the policy. With idempotence (the
    /// default where the cluster supports it) a retry after a lost answer
    /// returns the original offset instead of appending again.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a record over the node's limit; a
    /// retryable failure that outlasted the retry policy.
    pub async fn produce(&self, value: impl Into<Bytes>) -> Result<u64> {
        let value = value.into();
        let identity = self.take_identity();
        let (producer_id, sequence) = identity.map_or((0, 0), |i| (i.producer_id, i.next_sequence));
        let retry = if identity.is_some() {
            Retry::Safe
        } else {
            Retry::IfNotApplied
        };
        let result = self
            .shared
            .call(Operation::Write, retry, None, |mut stub, _| {
                let request = ProduceRequest {
                    record: Some(proto::v1::Record {
                        value: value.clone(),
                        ..Default::default()
                    }),
                    producer_id,
                    sequence,
                };
                async move { stub.produce(request).await }
            })
            .await;
        match (result, identity) {
            (Ok(response), Some(mut identity)) => {
                identity.next_sequence += 1;
                self.give_back(identity);
                Ok(response.offset)
            }
            (Ok(response), None) => Ok(response.offset),
            (Err(Error::IdempotenceUnsupported { .. }), Some(_))
                if self.shared.idempotence_refused() =>
            {
                Box::pin(self.produce(value)).await
            }
            // A sequence that may or may not be in the log is never reused:
            // the identity is dropped and a later call starts a fresh one.
            (Err(error), _) => Err(error),
        }
    }

    /// Appends `values` together (dense offsets, one durable write); the
    /// offset of each, in order.
    ///
    /// With idempotence a retried batch whose first records were already
    /// appended is acknowledged in parts; the offsets returned are then
    /// those of the first append, which need not continue densely into
    /// the rest.
    ///
    /// # Errors
    /// As [`produce`](Self::produce); a batch over the gRPC message limit.
    pub async fn produce_batch(&self, values: Vec<Bytes>) -> Result<Vec<u64>> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let identity = self.take_identity();
        let retry = if identity.is_some() {
            Retry::Safe
        } else {
            Retry::IfNotApplied
        };
        let mut offsets = Vec::with_capacity(values.len());
        while offsets.len() < values.len() {
            let acknowledged = offsets.len();
            let (producer_id, sequence) = identity.map_or((0, 0), |i| {
                (i.producer_id, i.next_sequence + acknowledged as u64)
            });
            let rest = &values[acknowledged..];
            let result = self
                .shared
                .call(Operation::Write, retry, None, |mut stub, _| {
                    let request = ProduceBatchRequest {
                        records: rest
                            .iter()
                            .map(|value| proto::v1::Record {
                                value: value.clone(),
                                ..Default::default()
                            })
                            .collect(),
                        producer_id,
                        sequence,
                    };
                    async move { stub.produce_batch(request).await }
                })
                .await;
            let response = match result {
                Ok(response) => response,
                Err(Error::IdempotenceUnsupported { .. })
                    if identity.is_some()
                        && acknowledged == 0
                        && self.shared.idempotence_refused() =>
                {
                    return Box::pin(self.produce_batch(values)).await;
                }
                Err(error) => return Err(error),
            };
            // Old servers send no count: everything was appended.
            let count = match response.count {
                0 => rest.len() as u64,
                count => count.min(rest.len() as u64),
            };
            offsets.extend(response.base_offset..response.base_offset + count);
        }
        if let Some(mut identity) = identity {
            identity.next_sequence += values.len() as u64;
            self.give_back(identity);
        }
        Ok(offsets)
    }

    /// A pipelined producer with its own producer id: many records in
    /// flight, acknowledged in order, resent after a leader change.
    pub fn producer(&self) -> Producer {
        Producer::start(self.clone())
    }

    /// Reads the record at `offset` (by the read preference; a node that has
    /// not committed it yet passes the read on).
    ///
    /// # Errors
    /// [`Error::OutOfRange`] with the valid range.
    pub async fn consume(&self, offset: u64) -> Result<Record> {
        let response = self
            .shared
            .call(
                Operation::Read,
                Retry::Safe,
                Some(offset),
                |mut stub, _| async move { stub.consume(ConsumeRequest { offset }).await },
            )
            .await?;
        response
            .record
            .map(Record::from)
            .ok_or_else(|| Error::Status {
                code: tonic::Code::Internal,
                message: "the node answered without a record".to_owned(),
            })
    }

    /// Reads consecutive records from `from`: at most `max_records` (0: the
    /// node's default, 1000) and about `max_bytes` (0: 1 MiB; one record is
    /// always returned when there is one).
    ///
    /// # Errors
    /// [`Error::OutOfRange`] with the valid range.
    pub async fn consume_batch(
        &self,
        from: u64,
        max_records: u32,
        max_bytes: u64,
    ) -> Result<Batch> {
        let response = self
            .shared
            .call(
                Operation::Read,
                Retry::Safe,
                Some(from),
                |mut stub, _| async move {
                    stub.consume_batch(ConsumeBatchRequest {
                        from_offset: from,
                        max_records,
                        max_bytes,
                    })
                    .await
                },
            )
            .await?;
        Ok(Batch {
            records: response.records.into_iter().map(Record::from).collect(),
            next_offset: response.next_offset,
        })
    }

    /// A stream of the records from `from` on, following the tail: when
    /// its node fails it moves to another and resumes right after the last
    /// record it delivered (no gap, no repeat).
    pub fn follow(&self, from: u64) -> Follow {
        Follow::start(self.clone(), from)
    }
}
