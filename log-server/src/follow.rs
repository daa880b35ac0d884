//! Following the tail, for gRPC `ConsumeStream` and HTTP
//! `GET /v1/records/stream` alike: send what is committed from an offset,
//! then wait on the commit watch (never poll) and send what commits next.

use std::sync::Arc;

use log_core::Record;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::commit_log::CommitLog;
use crate::error::{Error, Result};

/// Why a follower stopped.
pub(crate) enum FollowEnd {
    /// The client went away (or the log's commit watch closed).
    ClientGone,
    /// The server is shutting down; the client should hear it.
    Shutdown,
    /// Reading failed; the client should hear why.
    Failed(Error),
}

/// Where a follower may start: anywhere from the lowest retained offset to
/// the commit offset (the tail itself, to wait for what comes next).
///
/// # Errors
/// `OutOfRange` with the valid range.
pub(crate) fn check_start<L: CommitLog>(log: &L, from: u64) -> Result<()> {
    let info = log.info();
    if from < info.lowest_offset || from > info.commit_offset {
        return Err(Error::OutOfRange {
            offset: from,
            lowest: info.lowest_offset,
            next: info.commit_offset,
        });
    }
    Ok(())
}

/// How a follower reads and whom it counts as.
pub(crate) struct Follow {
    /// Bytes read per batch at most.
    pub(crate) bytes_max: u64,
    /// Records read per batch at most.
    pub(crate) records_max: u64,
    /// `proglog_open_streams` kind.
    pub(crate) stream_kind: &'static str,
    /// `proglog_follow_wakeups_total` protocol.
    pub(crate) protocol: &'static str,
}

impl Follow {
    /// Sends the records from `offset` on to `sink`, each batch as the
    /// items `encode` makes of it, until the client leaves, `shutdown`, or
    /// a read fails; says which.
    pub(crate) async fn run<L: CommitLog, T>(
        self,
        log: Arc<L>,
        mut offset: u64,
        shutdown: CancellationToken,
        sink: &mpsc::Sender<T>,
        mut encode: impl FnMut(Vec<Record>) -> Vec<T>,
    ) -> FollowEnd {
        let _open = crate::metrics::OpenStream::new(self.stream_kind);
        let wakeups = crate::metrics::follow_wakeups(self.protocol);
        let mut commit = log.watch_commit();
        loop {
            let committed = *commit.borrow_and_update();
            if offset < committed {
                let records = tokio::select! {
                    records = log.read_batch(offset, self.bytes_max, self.records_max) => records,
                    () = shutdown.cancelled() => return FollowEnd::Shutdown,
                };
                let records = match records {
                    Ok(records) => records,
                    Err(error) => return FollowEnd::Failed(error),
                };
                if let Some(last) = records.last() {
                    offset = last.offset + 1;
                }
                for item in encode(records) {
                    if sink.send(item).await.is_err() {
                        return FollowEnd::ClientGone;
                    }
                }
                continue;
            }
            tokio::select! {
                changed = commit.changed() => {
                    if changed.is_err() {
                        return FollowEnd::ClientGone;
                    }
                    wakeups.increment(1);
                }
                () = sink.closed() => return FollowEnd::ClientGone,
                () = shutdown.cancelled() => return FollowEnd::Shutdown,
            }
        }
    }
}
