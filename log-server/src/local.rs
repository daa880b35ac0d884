//! The single-node [`CommitLog`]: a `log-core` log on this machine.

use std::sync::Arc;

use bytes::Bytes;
use log_core::{Deferred, Log, Producer, Record};
use tokio::sync::{Semaphore, watch};

use crate::commit_log::{
    Appended, CommitLog, LogInfo, ServerDirectory, ServerInfo, ServerRole, ServerState,
    no_producer_table,
};
use crate::error::{Error, Result};

/// A local log served directly.
///
/// What may wait on the disk runs on tokio's blocking pool, so the reactor
/// never waits on fsync or a cold read: appends under the `always` policy,
/// the fsync an `interval` append must wait for (past its byte bound), and
/// reads of older segments. The rest runs inline, on the request's own
/// thread, because a thread hand-off costs more than the work: appends under
/// `interval` and `never` (a copy into the page cache) and reads from the
/// newest segment (written last, so in the page cache). That saved ~50 µs of
/// a one-at-a-time produce's ~145 µs and 15–25 % of pipelined produce and
/// consume throughput (`make compare`; see bench/results/latest.md). An
/// append that would roll the segment (which syncs the old one) goes to the
/// blocking pool too. What is left on the request's thread: waiting for the
/// writer lock while retention deletes old segment files.
pub struct LocalLog {
    log: Arc<Log>,
    commit: Arc<watch::Sender<u64>>,
    node_id: String,
    rpc_addr: String,
    /// Records in flight in appends; bounded so overload is refused with
    /// `RESOURCE_EXHAUSTED` instead of queueing without limit.
    in_flight: Arc<Semaphore>,
    in_flight_max: u32,
    /// The cluster's members, when the node gossips.
    directory: Option<Arc<dyn ServerDirectory>>,
}

impl LocalLog {
    /// Serves `log`, as node `node_id` reachable at `rpc_addr`, accepting at
    /// most `in_flight_records_max` records in appends at once.
    pub fn new(log: Arc<Log>, node_id: &str, rpc_addr: &str, in_flight_records_max: u32) -> Self {
        let (commit, _) = watch::channel(log.next_offset());
        let commit = Arc::new(commit);
        Self {
            log,
            commit,
            node_id: node_id.to_owned(),
            rpc_addr: rpc_addr.to_owned(),
            in_flight: Arc::new(Semaphore::new(in_flight_records_max as usize)),
            in_flight_max: in_flight_records_max,
            directory: None,
        }
    }

    /// Lists the servers `directory` knows instead of only this one.
    #[must_use]
    pub fn with_directory(mut self, directory: Arc<dyn ServerDirectory>) -> Self {
        self.directory = Some(directory);
        self
    }

    /// The log behind it.
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// The commit offset, never past the log's end: after a failed write
    /// the log forgets records that never reached its file, and consumers
    /// must not be told of them.
    fn commit_offset(&self) -> u64 {
        (*self.commit.borrow()).min(self.log.next_offset())
    }

    /// Consumers see the commit offset as the end of the log, also in the
    /// range an out-of-range error reports.
    fn committed_view(&self, error: Error) -> Error {
        match error {
            Error::OutOfRange { offset, .. } => self.out_of_range(offset),
            other => other,
        }
    }

    fn out_of_range(&self, offset: u64) -> Error {
        Error::OutOfRange {
            offset,
            lowest: self.log.lowest_offset(),
            next: self.commit_offset(),
        }
    }
}

/// A count or offset as a span field. OpenTelemetry integers are signed, and
/// tracing-opentelemetry would export unsigned fields as strings.
fn attribute(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// Makes the records below `end` visible to consumers.
///
/// Appends complete out of order across tasks: the commit offset only moves
/// forward, over the end of an append that has written its records. With one
/// appender at a time in log-core, that covers every offset below. Under
/// `always` an append publishes after its fsync, and fsyncs cover every
/// earlier write, so visible records are durable. Under `interval` and
/// `never` visibility never waited for durability: a later append may
/// publish records whose producer still waits for the sync past the byte
/// bound (and if that sync fails, the log fails).
fn publish(commit: &watch::Sender<u64>, end: u64) {
    commit.send_if_modified(|commit| {
        let moved = end > *commit;
        if moved {
            *commit = end;
        }
        moved
    });
}

/// Runs `work` here (see [`LocalLog`] for when), mapping its error.
fn inline<T>(work: impl FnOnce() -> log_core::Result<T>) -> Result<T> {
    work().map_err(Error::from)
}

/// Runs `work` on the blocking pool inside the current span, so anything
/// log-core traces there belongs to the request.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> log_core::Result<T> + Send + 'static,
) -> Result<T> {
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(work)).await {
        Ok(result) => result.map_err(Error::from),
        Err(e) => {
            tracing::error!(error = %e, "a blocking log task failed");
            Err(Error::Internal)
        }
    }
}

// Debug-level spans: off in info logs, exported as children of the request
// span when OTLP is on (see the agent's telemetry filter).
impl CommitLog for LocalLog {
    /// A local log keeps no producer table: refused (`FailedPrecondition`).
    async fn append_idempotent(
        &self,
        _values: Vec<Bytes>,
        _producer: Producer,
    ) -> Result<Appended> {
        Err(no_producer_table())
    }

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
        let count = u32::try_from(values.len()).unwrap_or(u32::MAX);
        if count > self.in_flight_max {
            return Err(Error::InvalidArgument(format!(
                "a batch of {count} records is over the limit of {} records",
                self.in_flight_max
            )));
        }
        let limit = self.log.config().record_bytes_max;
        if let Some(value) = values.iter().find(|v| v.len() as u64 > limit) {
            return Err(Error::RecordTooLarge {
                size: value.len() as u64,
                limit,
            });
        }
        let permit = Arc::clone(&self.in_flight)
            .try_acquire_many_owned(count)
            .map_err(|_| {
                Error::Overloaded(format!(
                    "more than {} records are being appended; retry later",
                    self.in_flight_max
                ))
            })?;
        let now = log_core::now_ms();
        let records: Vec<Record> = values
            .into_iter()
            .map(|value| Record {
                timestamp_ms: now,
                ..Record::new(value)
            })
            .collect();
        let count = u64::from(count);
        let log = Arc::clone(&self.log);
        let commit = Arc::clone(&self.commit);
        if log.config().fsync != log_core::FsyncPolicy::Always {
            // Inline (see the type's docs). No await between the write and
            // the publication, so a cancelled request cannot leave written
            // records invisible.
            match log.append_batch_deferred(&records)? {
                Deferred::Written {
                    first,
                    ticket: None,
                } => {
                    publish(&commit, first + count);
                    drop(permit);
                    return Ok(first);
                }
                Deferred::Written {
                    first,
                    ticket: Some(ticket),
                } => {
                    return blocking(move || {
                        let _permit = permit;
                        log.wait_synced(ticket)?;
                        publish(&commit, first + count);
                        Ok(first)
                    })
                    .await;
                }
                // A roll syncs the old segment: below, on the blocking pool.
                Deferred::WouldRoll => {}
            }
        }
        // The permit and the commit publication live in the blocking task, not
        // in this future: a client that cancels drops the future, but the
        // append still runs to the end, so it must stay counted in flight and
        // its records must still become visible.
        blocking(move || {
            let _permit = permit;
            let first = log.append_batch(&records)?;
            publish(&commit, first + count);
            Ok(first)
        })
        .await
    }

    #[tracing::instrument(level = "debug", name = "read", skip_all, fields(offset = attribute(offset)))]
    async fn read(&self, offset: u64) -> Result<Record> {
        if offset >= self.commit_offset() {
            return Err(self.out_of_range(offset));
        }
        let log = Arc::clone(&self.log);
        let read = move || log.read(offset);
        if offset >= self.log.newest_segment_base() {
            return inline(read).map_err(|e| self.committed_view(e));
        }
        blocking(read).await.map_err(|e| self.committed_view(e))
    }

    #[tracing::instrument(
        level = "debug",
        name = "read_batch",
        skip_all,
        fields(from = attribute(from), records_max = attribute(records_max))
    )]
    async fn read_batch(&self, from: u64, bytes_max: u64, records_max: u64) -> Result<Vec<Record>> {
        let commit = self.commit_offset();
        if from > commit || from < self.log.lowest_offset() {
            return Err(self.out_of_range(from));
        }
        let records_max = records_max.min(commit - from);
        if records_max == 0 {
            return Ok(Vec::new());
        }
        let log = Arc::clone(&self.log);
        let read = move || log.read_batch(from, bytes_max, records_max);
        if from >= self.log.newest_segment_base() {
            return inline(read).map_err(|e| self.committed_view(e));
        }
        blocking(read).await.map_err(|e| self.committed_view(e))
    }

    fn info(&self) -> LogInfo {
        LogInfo {
            lowest_offset: self.log.lowest_offset(),
            next_offset: self.log.next_offset(),
            commit_offset: self.commit_offset(),
        }
    }

    fn watch_commit(&self) -> watch::Receiver<u64> {
        self.commit.subscribe()
    }

    fn appends_inline(&self) -> bool {
        self.log.config().fsync != log_core::FsyncPolicy::Always
    }

    fn record_bytes_max(&self) -> u64 {
        self.log.config().record_bytes_max
    }

    fn servers(&self) -> Vec<ServerInfo> {
        if let Some(directory) = &self.directory {
            return directory.servers();
        }
        vec![ServerInfo {
            id: self.node_id.clone(),
            node_id: 0,
            rpc_addr: self.rpc_addr.clone(),
            is_leader: true,
            state: ServerState::Alive,
            role: ServerRole::None,
        }]
    }

    fn is_ready(&self) -> bool {
        self.log.is_writable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(dir: &std::path::Path, in_flight: u32) -> LocalLog {
        let log = Log::open(
            dir,
            log_core::Config {
                record_bytes_max: 16,
                ..log_core::Config::default()
            },
        )
        .expect("open");
        LocalLog::new(Arc::new(log), "n1", "127.0.0.1:1", in_flight)
    }

    #[tokio::test]
    async fn appends_beyond_the_in_flight_limit_are_refused_as_overload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = local(dir.path(), 4);
        // Another request holds three of the four permits.
        let held = Arc::clone(&log.in_flight)
            .try_acquire_many_owned(3)
            .expect("permits");
        let error = log
            .append(vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")])
            .await
            .expect_err("overloaded");
        assert!(matches!(error, Error::Overloaded(_)), "{error:?}");
        assert_eq!(log.info().next_offset, 0, "nothing was written");
        drop(held);
        assert_eq!(
            log.append(vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")])
                .await
                .expect("append"),
            0
        );
    }

    /// Every record here is committed as soon as it is written, so this
    /// only shows the watch and the tail; that reads stop at the commit
    /// offset while records are written but not committed is proven in
    /// `tests/committed.rs`.
    #[tokio::test]
    async fn commits_are_published_and_reads_end_at_the_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = local(dir.path(), 100);
        let mut commit = log.watch_commit();
        assert_eq!(*commit.borrow_and_update(), 0);
        assert!(matches!(
            log.read(0).await,
            Err(Error::OutOfRange { next: 0, .. })
        ));
        log.append(vec![Bytes::from_static(b"x"); 3])
            .await
            .expect("append");
        assert!(commit.has_changed().expect("sender alive"));
        assert_eq!(*commit.borrow_and_update(), 3);
        assert_eq!(
            log.read_batch(0, u64::MAX, 10).await.expect("batch").len(),
            3
        );
        assert_eq!(
            log.read_batch(3, u64::MAX, 10).await.expect("at the tail"),
            vec![]
        );
        assert!(matches!(
            log.read_batch(4, u64::MAX, 10).await,
            Err(Error::OutOfRange { .. })
        ));
    }

    #[tokio::test]
    async fn oversize_records_are_refused_with_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = local(dir.path(), 100);
        let error = log
            .append(vec![vec![0; 17].into()])
            .await
            .expect_err("too large");
        assert_eq!(
            error,
            Error::RecordTooLarge {
                size: 17,
                limit: 16
            }
        );
    }
}
