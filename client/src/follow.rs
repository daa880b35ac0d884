//! [`Follow`]: a stream of records that follows the tail and fails over.

use std::collections::HashSet;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Stream, StreamExt as _};
use proto::v1::ConsumeRequest;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::Client;
use crate::client::Record;
use crate::error::{Error, Result};
use crate::retry::Attempts;
use crate::routing::Operation;

/// Records read ahead of the consumer: bounds memory when it is slower than
/// the log (the node's stream then waits, by HTTP/2 flow control).
const READ_AHEAD_RECORDS: usize = 256;

/// The records from an offset on, then each new one as it is committed,
/// from [`Client::follow`].
///
/// It reads from a node chosen by the read preference. When that node
/// fails (killed, shutting down, unreachable) it moves to another and asks
/// for the offset after the last record it delivered, so nothing is
/// skipped or repeated; a node that has not committed that offset yet is
/// waited for or passed over. It ends with an error only when the retry
/// policy gives up without progress, or on an error no retry can fix (an
/// offset below the retained start, permission denied); then it ends.
///
/// Dropping it stops the reading.
#[derive(Debug)]
pub struct Follow {
    records: mpsc::Receiver<Result<Record>>,
    task: JoinHandle<()>,
}

impl Follow {
    pub(crate) fn start(client: Client, from: u64) -> Self {
        let (records, receiver) = mpsc::channel(READ_AHEAD_RECORDS);
        let task = tokio::spawn(run(client, from, records));
        Self {
            records: receiver,
            task,
        }
    }
}

impl Stream for Follow {
    type Item = Result<Record>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.records.poll_recv(cx)
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(client: Client, mut next: u64, records: mpsc::Sender<Result<Record>>) {
    let shared = &client.shared;
    let mut attempts = Attempts::new(shared.config.retry.clone());
    let mut excluded = HashSet::new();
    loop {
        let addr = match shared.route(Operation::Read, &excluded) {
            Some(addr) => addr,
            None => {
                excluded.clear();
                match shared.route(Operation::Read, &excluded) {
                    Some(addr) => addr,
                    None => return,
                }
            }
        };
        let error = match shared.stub(&addr) {
            Err(error) => error,
            Ok(mut stub) => {
                let timeout = shared.config.request_timeout;
                let opened = tokio::time::timeout(
                    timeout,
                    stub.consume_stream(ConsumeRequest { offset: next }),
                )
                .await;
                match opened {
                    Err(_) => Error::Timeout { after: timeout },
                    Ok(Err(status)) => Error::from_status(&status, &addr),
                    Ok(Ok(response)) => {
                        let mut stream = response.into_inner();
                        loop {
                            let item = tokio::select! {
                                () = records.closed() => return,
                                item = stream.next() => item,
                            };
                            let response = match item {
                                Some(Ok(response)) => response,
                                Some(Err(status)) => break Error::from_status(&status, &addr),
                                None => {
                                    break Error::Unavailable {
                                        message: format!("{addr} ended the consume stream"),
                                    };
                                }
                            };
                            let Some(record) = response.record else {
                                continue;
                            };
                            // A node asked from `next` starts there; anything
                            // older is a repeat and is dropped, anything
                            // newer would be a gap.
                            if record.offset < next {
                                continue;
                            }
                            if record.offset > next {
                                let _ = records
                                    .send(Err(Error::Status {
                                        code: tonic::Code::DataLoss,
                                        message: format!(
                                            "{addr} sent offset {} where {next} was expected",
                                            record.offset
                                        ),
                                    }))
                                    .await;
                                return;
                            }
                            next = record.offset + 1;
                            if records.send(Ok(Record::from(record))).await.is_err() {
                                return;
                            }
                            attempts.progressed();
                            excluded.clear();
                        }
                    }
                }
            }
        };
        // A node that has not committed `next` yet is behind, not wrong.
        let behind = matches!(&error, Error::OutOfRange { next: Some(committed), .. }
            if next > *committed && shared.leader().as_deref() != Some(addr.as_str()));
        let wait = if error.is_retryable() || behind {
            attempts.failed()
        } else {
            None
        };
        let Some(wait) = wait else {
            let _ = records.send(Err(error)).await;
            return;
        };
        tracing::debug!(%addr, %error, resume_at = next, ?wait, "follow stream moves on");
        excluded.insert(addr);
        if error.suggests_refresh() {
            let _ = shared.refresh().await;
        }
        tokio::time::sleep(wait).await;
    }
}
