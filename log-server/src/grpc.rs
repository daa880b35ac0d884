//! The tonic implementation of `proglog.v1.Log`.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{FutureExt as _, Stream};
use proto::v1::log_server::Log as LogApi;
use proto::v1::{
    ConsumeBatchRequest, ConsumeBatchResponse, ConsumeRequest, ConsumeResponse, GetLogInfoRequest,
    GetLogInfoResponse, GetServersRequest, GetServersResponse, ProduceBatchRequest,
    ProduceBatchResponse, ProduceRequest, ProduceResponse, Server,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::commit_log::CommitLog;
use crate::config::ServerConfig;
use crate::error::{Error, refine_decode_status};
use crate::follow::FollowEnd;
use crate::produce::{self, Item};

/// Responses buffered per stream before the sender waits for the client.
const STREAM_BUFFER: usize = 256;

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The `Log` gRPC service over any [`CommitLog`].
pub struct LogService<L> {
    log: Arc<L>,
    config: ServerConfig,
    shutdown: CancellationToken,
}

impl<L: CommitLog> LogService<L> {
    /// A service over `log`; streams end with `UNAVAILABLE` once `shutdown`
    /// is cancelled.
    pub fn new(log: Arc<L>, config: ServerConfig, shutdown: CancellationToken) -> Self {
        Self {
            log,
            config,
            shutdown,
        }
    }
}

/// A stream request's record, or the status that ends the stream.
fn checked_item(request: ProduceRequest, limit: u64) -> Result<Item, Status> {
    let value = request
        .record
        .map(|r| r.value)
        .ok_or_else(|| Status::from(Error::InvalidArgument("record is required".into())))?;
    if value.len() as u64 > limit {
        return Err(Error::RecordTooLarge {
            size: value.len() as u64,
            limit,
        }
        .into());
    }
    Ok(Item::new(value, request.producer_id, request.sequence))
}

fn shutting_down() -> Error {
    Error::Unavailable("the server is shutting down".into())
}

/// Values of produce requests, or the error for the first request without a
/// record.
fn values(
    requests: impl IntoIterator<Item = Option<proto::v1::Record>>,
) -> Result<Vec<Bytes>, Error> {
    requests
        .into_iter()
        .map(|record| {
            record
                .map(|r| r.value)
                .ok_or_else(|| Error::InvalidArgument("record is required".into()))
        })
        .collect()
}

impl<L: CommitLog> LogService<L> {
    /// [`LogApi::produce_stream`] for a log whose appends do not wait (see
    /// [`CommitLog::appends_inline`]): one task reads what has arrived (up
    /// to the batch limit, without waiting for more), appends it, answers,
    /// and reads again. Same results, one hand-off fewer per batch.
    fn produce_stream_one_task(
        &self,
        mut inbound: Streaming<ProduceRequest>,
    ) -> Response<ResponseStream<ProduceResponse>> {
        let (responses, out) = mpsc::channel(STREAM_BUFFER);
        let log = Arc::clone(&self.log);
        let limit = log.record_bytes_max();
        let batch_max = self.config.produce_stream_batch_max;
        let shutdown = self.shutdown.clone();
        crate::trace::spawn(async move {
            let _open = crate::metrics::OpenStream::new("produce");
            let mut good = Vec::with_capacity(batch_max);
            loop {
                let next = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => {
                        // The client must learn that requests it sent may
                        // be unread.
                        let _ = responses.send(Err(shutting_down().into())).await;
                        return;
                    }
                    next = inbound.message() => next,
                };
                let mut step = take(next, limit, &mut good);
                while matches!(step, Take::More) && good.len() < batch_max {
                    // `message` is cancel-safe: dropping a pending call
                    // loses nothing.
                    match inbound.message().now_or_never() {
                        Some(next) => step = take(next, limit, &mut good),
                        None => break,
                    }
                }
                if !good.is_empty() {
                    match append_and_acknowledge(&*log, std::mem::take(&mut good), &responses).await
                    {
                        Ok(true) => {}
                        Ok(false) => return,
                        Err(status) => step = Take::Fail(status),
                    }
                }
                match step {
                    Take::More => {}
                    Take::End => return,
                    Take::Fail(status) => {
                        let _ = responses.send(Err(status)).await;
                        return;
                    }
                }
            }
        });
        Response::new(Box::pin(ReceiverStream::new(out)) as ResponseStream<ProduceResponse>)
    }
}

/// Appends `items` and answers each, in order: `Ok(false)` if the client is
/// gone, `Err` with the status that ends the stream (the items before the
/// failing one are answered first).
async fn append_and_acknowledge<L: CommitLog>(
    log: &L,
    items: Vec<Item>,
    responses: &mpsc::Sender<Result<ProduceResponse, Status>>,
) -> Result<bool, Status> {
    if items.iter().all(|item| item.producer.is_none()) {
        let count = items.len() as u64;
        let values = items.into_iter().map(|item| item.value).collect();
        let first = log.append(values).await?;
        return Ok(acknowledge(responses, first, count).await);
    }
    let (answers, error) = produce::append_items(log, items).await;
    for answer in answers {
        let response = ProduceResponse {
            offset: answer.offset,
            duplicate: answer.duplicate,
        };
        if responses.send(Ok(response)).await.is_err() {
            return Ok(false);
        }
    }
    error.map_or(Ok(true), |error| Err(error.into()))
}

/// Answers the `count` records appended from `first`, in order; `false`
/// if the client is gone.
async fn acknowledge(
    responses: &mpsc::Sender<Result<ProduceResponse, Status>>,
    first: u64,
    count: u64,
) -> bool {
    for offset in first..first + count {
        if responses
            .send(Ok(ProduceResponse {
                offset,
                ..Default::default()
            }))
            .await
            .is_err()
        {
            return false;
        }
    }
    true
}

/// What reading one more produce request gave.
enum Take {
    /// A good request, queued: read on.
    More,
    /// The client finished the stream.
    End,
    /// A bad request or a broken stream: the requests before it are
    /// appended and acknowledged, then the stream ends with this.
    Fail(Status),
}

fn take(next: Result<Option<ProduceRequest>, Status>, limit: u64, good: &mut Vec<Item>) -> Take {
    let next = next.map_err(refine_decode_status);
    match next.and_then(|request| request.map(|r| checked_item(r, limit)).transpose()) {
        Ok(Some(item)) => {
            good.push(item);
            Take::More
        }
        Ok(None) => Take::End,
        Err(status) => Take::Fail(status),
    }
}

#[tonic::async_trait]
impl<L: CommitLog> LogApi for LogService<L> {
    async fn produce(
        &self,
        request: Request<ProduceRequest>,
    ) -> Result<Response<ProduceResponse>, Status> {
        crate::metrics::observe_grpc("Produce", async move {
            let request = request.into_inner();
            let mut values = values([request.record])?;
            if request.producer_id == 0 {
                let offset = self.log.append(values).await?;
                return Ok(Response::new(ProduceResponse {
                    offset,
                    duplicate: false,
                }));
            }
            let item = Item::new(values.remove(0), request.producer_id, request.sequence);
            let answer = produce::append_one(&*self.log, item).await?;
            Ok(Response::new(ProduceResponse {
                offset: answer.offset,
                duplicate: answer.duplicate,
            }))
        })
        .await
    }

    async fn produce_batch(
        &self,
        request: Request<ProduceBatchRequest>,
    ) -> Result<Response<ProduceBatchResponse>, Status> {
        crate::metrics::observe_grpc("ProduceBatch", async move {
            let request = request.into_inner();
            let (producer_id, sequence) = (request.producer_id, request.sequence);
            let records = request.records;
            // Checked before converting: a message of empty records is
            // millions of them.
            if records.len() > self.config.produce_batch_records_max {
                return Err(Error::InvalidArgument(format!(
                    "a batch of {} records is over the limit of {}",
                    records.len(),
                    self.config.produce_batch_records_max
                ))
                .into());
            }
            let values = values(records.into_iter().map(Some))?;
            let count = values.len() as u64;
            if count == 0 {
                return Err(
                    Error::InvalidArgument("a batch needs at least one record".into()).into(),
                );
            }
            if producer_id != 0 {
                // A resend may be answered in part: the client resends the
                // rest (see the proto).
                let producer = log_core::Producer {
                    id: producer_id,
                    sequence,
                };
                let appended = self.log.append_idempotent(values, producer).await?;
                return Ok(Response::new(ProduceBatchResponse {
                    base_offset: appended.first,
                    count: appended.count,
                    duplicate: appended.duplicate,
                }));
            }
            let base_offset = self.log.append(values).await?;
            Ok(Response::new(ProduceBatchResponse {
                base_offset,
                count,
                duplicate: false,
            }))
        })
        .await
    }

    type ProduceStreamStream = ResponseStream<ProduceResponse>;

    /// Pipelined produce: requests that arrive while an append runs are
    /// appended together next (one write, one fsync); responses keep request
    /// order. A bad request acknowledges the good ones before it, then ends
    /// the stream with its error.
    async fn produce_stream(
        &self,
        request: Request<Streaming<ProduceRequest>>,
    ) -> Result<Response<Self::ProduceStreamStream>, Status> {
        crate::metrics::observe_grpc("ProduceStream", async move {
            let mut inbound = request.into_inner();
            if self.log.appends_inline() {
                return Ok(self.produce_stream_one_task(inbound));
            }
            let (requests_tx, mut requests) =
                mpsc::channel::<Result<Item, Status>>(self.config.produce_stream_batch_max);
            let limit = self.log.record_bytes_max();
            let (responses, out) = mpsc::channel(STREAM_BUFFER);
            let shutdown = self.shutdown.clone();
            // Reader: keeps pulling requests off the wire while an append runs.
            crate::trace::spawn(async move {
                loop {
                    let next = tokio::select! {
                        next = inbound.message() => next,
                        () = shutdown.cancelled() => return,
                    };
                    // Checked here, before queueing, so a queue of bad or
                    // oversize requests cannot build up.
                    let item = match next {
                        Ok(Some(request)) => checked_item(request, limit),
                        Ok(None) => return,
                        Err(status) => Err(refine_decode_status(status)),
                    };
                    let last = item.is_err();
                    if requests_tx.send(item).await.is_err() || last {
                        return;
                    }
                }
            });
            let log = Arc::clone(&self.log);
            let batch_max = self.config.produce_stream_batch_max;
            let shutdown = self.shutdown.clone();
            crate::trace::spawn(async move {
                let _open = crate::metrics::OpenStream::new("produce");
                let mut batch = Vec::with_capacity(batch_max);
                loop {
                    let first = tokio::select! {
                        biased;
                        () = shutdown.cancelled() => None,
                        first = requests.recv() => first,
                    };
                    let Some(first) = first else {
                        // The reader also stops at shutdown: the client must
                        // learn that requests it sent may be unread.
                        if shutdown.is_cancelled() {
                            let _ = responses.send(Err(shutting_down().into())).await;
                        }
                        return;
                    };
                    batch.clear();
                    batch.push(first);
                    while batch.len() < batch_max {
                        match requests.try_recv() {
                            Ok(item) => batch.push(item),
                            Err(_) => break,
                        }
                    }
                    // Everything up to the first bad request is appended and
                    // acknowledged; then the stream ends with that request's error.
                    let mut failure = None;
                    let mut good = Vec::with_capacity(batch.len());
                    for checked in batch.drain(..) {
                        match checked {
                            Ok(value) => good.push(value),
                            Err(status) => {
                                failure = Some(status);
                                break;
                            }
                        }
                    }
                    if !good.is_empty() {
                        match append_and_acknowledge(&*log, good, &responses).await {
                            Ok(true) => {}
                            Ok(false) => return,
                            Err(status) => failure = Some(status),
                        }
                    }
                    if let Some(status) = failure {
                        let _ = responses.send(Err(status)).await;
                        return;
                    }
                }
            });
            Ok(Response::new(
                Box::pin(ReceiverStream::new(out)) as Self::ProduceStreamStream
            ))
        })
        .await
    }

    async fn consume(
        &self,
        request: Request<ConsumeRequest>,
    ) -> Result<Response<ConsumeResponse>, Status> {
        crate::metrics::observe_grpc("Consume", async move {
            let record = self.log.read(request.into_inner().offset).await?;
            Ok(Response::new(ConsumeResponse {
                record: Some(record.into()),
            }))
        })
        .await
    }

    async fn consume_batch(
        &self,
        request: Request<ConsumeBatchRequest>,
    ) -> Result<Response<ConsumeBatchResponse>, Status> {
        crate::metrics::observe_grpc("ConsumeBatch", async move {
            let request = request.into_inner();
            let records_max = if request.max_records == 0 {
                self.config.consume_records_default
            } else {
                request.max_records
            }
            .min(self.config.consume_records_max);
            let bytes_max = if request.max_bytes == 0 {
                self.config.consume_bytes_default
            } else {
                request.max_bytes
            }
            .min(self.config.batch_bytes_max());
            let records = self
                .log
                .read_batch(request.from_offset, bytes_max, u64::from(records_max))
                .await?;
            let next_offset = records.last().map_or(request.from_offset, |r| r.offset + 1);
            Ok(Response::new(ConsumeBatchResponse {
                records: records.into_iter().map(Into::into).collect(),
                next_offset,
            }))
        })
        .await
    }

    type ConsumeStreamStream = ResponseStream<ConsumeResponse>;

    /// Sends every committed record from the offset on, then waits on the
    /// commit watch (no polling) and sends new records as they commit.
    async fn consume_stream(
        &self,
        request: Request<ConsumeRequest>,
    ) -> Result<Response<Self::ConsumeStreamStream>, Status> {
        crate::metrics::observe_grpc("ConsumeStream", async move {
            let offset = request.into_inner().offset;
            crate::follow::check_start(&*self.log, offset)?;
            let (responses, out) = mpsc::channel(STREAM_BUFFER);
            let log = Arc::clone(&self.log);
            let shutdown = self.shutdown.clone();
            let follow = crate::follow::Follow {
                bytes_max: self.config.consume_bytes_default,
                records_max: u64::from(self.config.consume_records_default),
                stream_kind: "consume",
                protocol: "grpc",
            };
            crate::trace::spawn(async move {
                let encode = |records: Vec<log_core::Record>| {
                    records
                        .into_iter()
                        .map(|record| {
                            Ok(ConsumeResponse {
                                record: Some(record.into()),
                            })
                        })
                        .collect()
                };
                let end = follow.run(log, offset, shutdown, &responses, encode).await;
                let last = match end {
                    FollowEnd::ClientGone => return,
                    FollowEnd::Shutdown => shutting_down(),
                    FollowEnd::Failed(error) => error,
                };
                let _ = responses.send(Err(last.into())).await;
            });
            Ok(Response::new(
                Box::pin(ReceiverStream::new(out)) as Self::ConsumeStreamStream
            ))
        })
        .await
    }

    async fn get_servers(
        &self,
        _request: Request<GetServersRequest>,
    ) -> Result<Response<GetServersResponse>, Status> {
        crate::metrics::observe_grpc("GetServers", async move {
            let servers = self
                .log
                .servers()
                .into_iter()
                .map(|s| Server {
                    id: s.id,
                    rpc_addr: s.rpc_addr,
                    is_leader: s.is_leader,
                    node_id: s.node_id,
                    state: s.state.as_str().to_owned(),
                    role: s.role.as_str().to_owned(),
                })
                .collect();
            Ok(Response::new(GetServersResponse { servers }))
        })
        .await
    }

    async fn get_log_info(
        &self,
        _request: Request<GetLogInfoRequest>,
    ) -> Result<Response<GetLogInfoResponse>, Status> {
        crate::metrics::observe_grpc("GetLogInfo", async move {
            let info = self.log.info();
            Ok(Response::new(GetLogInfoResponse {
                lowest_offset: info.lowest_offset,
                highest_offset: info.highest_offset(),
                next_offset: info.next_offset,
                commit_offset: info.commit_offset,
            }))
        })
        .await
    }
}
