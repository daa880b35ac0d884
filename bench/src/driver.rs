//! The same operations against each system: connect, produce with a window
//! of requests in flight, and read everything back in batches.
//!
//! Latency is measured per request, from the moment the request is handed
//! to the client library to its acknowledgement. Every produce stops issuing
//! new requests at the plan's deadline and then waits for those in flight,
//! so a slow system is measured on fewer records rather than stalling the run.

use std::future::{Future, ready};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream;
use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _};
use proto::v1::log_client::LogClient;
use proto::v1::{ConsumeBatchRequest, ConsumeRequest, ProduceRequest, Record};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use crate::payload::Payload;
use crate::system::System;

/// The JetStream stream and its one subject.
const NATS_STREAM: &str = "COMPARE";
const NATS_SUBJECT: &str = "compare";

/// The Redis stream key.
const REDIS_KEY: &str = "compare";

/// Longest one request may wait for its answer: far above any healthy
/// latency here (tens of ms with fsync), so only a wedged system trips it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest JetStream may take to accept the stream after the port opens.
const NATS_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest gRPC message accepted: a 1000-record batch of 1 KiB values is
/// about 1 MB, above tonic's 4 MiB default only for larger records.
const GRPC_MESSAGE_BYTES_MAX: usize = 64 << 20;

/// What one producer sends: records `first..first + count` of `payload`,
/// at most `window` unacknowledged, none issued after `deadline`.
#[derive(Debug, Clone)]
pub struct ProducePlan {
    /// Index of the first record (selects its value).
    pub first: u64,
    /// Records to send at most.
    pub count: u64,
    /// Unacknowledged requests at most (1: one at a time).
    pub window: usize,
    /// No request is issued after this instant.
    pub deadline: Instant,
    /// The record values.
    pub payload: Payload,
}

/// What a read returned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Consumed {
    /// Records read.
    pub records: u64,
    /// Value bytes read.
    pub bytes: u64,
}

/// One client connection to a system.
#[derive(Debug, Clone)]
pub enum Connection {
    /// A gRPC channel (one HTTP/2 connection).
    Proglog(LogClient<Channel>),
    /// A NATS connection with a JetStream context.
    Nats(jetstream::Context),
    /// One multiplexed (pipelining) Redis connection.
    Redis(redis::aio::MultiplexedConnection),
}

impl Connection {
    /// Opens a new connection to `system` on the loopback `port`.
    ///
    /// # Errors
    /// The system does not answer.
    pub async fn open(system: System, port: u16) -> anyhow::Result<Self> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        Ok(match system {
            System::Proglog => {
                let channel = Endpoint::from_shared(format!("http://{addr}"))?
                    .connect_timeout(REQUEST_TIMEOUT)
                    .connect()
                    .await
                    .with_context(|| format!("cannot connect to proglog at {addr}"))?;
                Self::Proglog(
                    LogClient::new(channel)
                        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
                        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX),
                )
            }
            System::Nats => {
                let client = async_nats::connect(format!("nats://{addr}"))
                    .await
                    .with_context(|| format!("cannot connect to nats-server at {addr}"))?;
                Self::Nats(
                    jetstream::ContextBuilder::new()
                        .timeout(REQUEST_TIMEOUT)
                        .build(client),
                )
            }
            System::Redis => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_response_timeout(Some(REQUEST_TIMEOUT))
                    .set_connection_timeout(Some(REQUEST_TIMEOUT));
                let connection = redis::Client::open(format!("redis://{addr}/"))?
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .with_context(|| format!("cannot connect to redis-server at {addr}"))?;
                Self::Redis(connection)
            }
        })
    }

    /// Creates what produce writes to: the JetStream stream (retrying while
    /// JetStream starts); nothing for the others.
    ///
    /// # Errors
    /// The stream cannot be created in time.
    pub async fn prepare(&self) -> anyhow::Result<()> {
        let Self::Nats(context) = self else {
            return Ok(());
        };
        let started = Instant::now();
        loop {
            let created = context
                .get_or_create_stream(jetstream::stream::Config {
                    name: NATS_STREAM.to_owned(),
                    subjects: vec![NATS_SUBJECT.to_owned()],
                    storage: jetstream::stream::StorageType::File,
                    ..Default::default()
                })
                .await;
            match created {
                Ok(_) => return Ok(()),
                Err(e) if started.elapsed() > NATS_READY_TIMEOUT => {
                    return Err(anyhow::Error::new(e).context("cannot create the JetStream stream"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Produces per `plan` and returns each acknowledged request's latency,
    /// nanoseconds, in acknowledgement order.
    ///
    /// # Errors
    /// A request failed, or fewer records were acknowledged than sent.
    pub async fn produce(&self, plan: ProducePlan) -> anyhow::Result<Vec<u64>> {
        match self {
            Self::Proglog(client) => produce_proglog(client.clone(), plan).await,
            Self::Nats(context) => {
                let context = context.clone();
                produce_windowed(plan, move |value| {
                    let context = context.clone();
                    async move {
                        context.publish(NATS_SUBJECT, value).await?.await?;
                        Ok(())
                    }
                })
                .await
            }
            Self::Redis(connection) => {
                let connection = connection.clone();
                produce_windowed(plan, move |value| {
                    let mut connection = connection.clone();
                    async move {
                        redis::cmd("XADD")
                            .arg(REDIS_KEY)
                            .arg("*")
                            .arg("v")
                            .arg(value.as_ref())
                            .query_async::<redis::Value>(&mut connection)
                            .await?;
                        Ok(())
                    }
                })
                .await
            }
        }
    }

    /// proglog only: records one at a time with unary `Produce` calls,
    /// none issued after the deadline; latencies in nanoseconds.
    ///
    /// # Errors
    /// Not a proglog connection, or a request failed.
    pub async fn produce_unary(&self, plan: ProducePlan) -> anyhow::Result<Vec<u64>> {
        let Self::Proglog(client) = self else {
            anyhow::bail!("unary Produce is proglog's");
        };
        let mut client = client.clone();
        let mut latencies_ns = Vec::new();
        for index in plan.first..plan.first + plan.count {
            if Instant::now() >= plan.deadline {
                break;
            }
            let sent_at = Instant::now();
            let record = Record {
                value: plan.payload.value(index),
                ..Record::default()
            };
            client
                .produce(ProduceRequest {
                    record: Some(record),
                    ..Default::default()
                })
                .await?;
            latencies_ns.push(elapsed_ns(sent_at));
        }
        Ok(latencies_ns)
    }

    /// Reads up to `expected` records from the start, `batch_records` per
    /// request, stopping early at `deadline`: proglog ConsumeBatch, a
    /// JetStream pull consumer's fetch, Redis XRANGE with COUNT.
    ///
    /// # Errors
    /// A request failed, or the system has fewer records than expected.
    pub async fn consume_batches(
        &self,
        expected: u64,
        batch_records: usize,
        deadline: Instant,
    ) -> anyhow::Result<Consumed> {
        let mut consumed = Consumed::default();
        match self {
            Self::Proglog(client) => {
                let mut client = client.clone();
                let mut from_offset = 0;
                while consumed.records < expected && Instant::now() < deadline {
                    let response = client
                        .consume_batch(ConsumeBatchRequest {
                            from_offset,
                            max_records: u32::try_from(batch_records).unwrap_or(u32::MAX),
                            max_bytes: 0,
                        })
                        .await?
                        .into_inner();
                    anyhow::ensure!(
                        !response.records.is_empty(),
                        "an empty batch at {from_offset}"
                    );
                    add_values(
                        &mut consumed,
                        response.records.iter().map(|r| r.value.len()),
                    );
                    from_offset = response.next_offset;
                }
            }
            Self::Nats(context) => {
                let stream = context.get_stream(NATS_STREAM).await?;
                let consumer = stream
                    .create_consumer(jetstream::consumer::pull::Config {
                        deliver_policy: jetstream::consumer::DeliverPolicy::All,
                        ack_policy: jetstream::consumer::AckPolicy::None,
                        ..Default::default()
                    })
                    .await?;
                while consumed.records < expected && Instant::now() < deadline {
                    let want = batch_records.min(usize::try_from(expected - consumed.records)?);
                    let batch: Vec<_> = consumer
                        .fetch()
                        .max_messages(want)
                        .messages()
                        .await?
                        .try_collect()
                        .await
                        .map_err(|e| anyhow::anyhow!("JetStream fetch failed: {e}"))?;
                    anyhow::ensure!(
                        !batch.is_empty(),
                        "an empty fetch after {}",
                        consumed.records
                    );
                    add_values(&mut consumed, batch.iter().map(|m| m.payload.len()));
                }
            }
            Self::Redis(connection) => {
                let mut connection = connection.clone();
                let mut start = "-".to_owned();
                while consumed.records < expected && Instant::now() < deadline {
                    let entries: Vec<(String, Vec<(String, Bytes)>)> = redis::cmd("XRANGE")
                        .arg(REDIS_KEY)
                        .arg(&start)
                        .arg("+")
                        .arg("COUNT")
                        .arg(batch_records)
                        .query_async(&mut connection)
                        .await?;
                    let Some((last_id, _)) = entries.last() else {
                        anyhow::bail!("an empty XRANGE after {}", consumed.records);
                    };
                    // Exclusive start (Redis 6.2+): the entry after the last.
                    start = format!("({last_id}");
                    add_values(
                        &mut consumed,
                        entries
                            .iter()
                            .map(|(_, fields)| fields.iter().map(|(_, v)| v.len()).sum()),
                    );
                }
            }
        }
        Ok(consumed)
    }

    /// proglog only: reads up to `expected` records from offset 0 over one
    /// ConsumeStream, stopping early at `deadline`.
    ///
    /// # Errors
    /// Not a proglog connection, a stream error, or a short stream.
    pub async fn consume_stream(
        &self,
        expected: u64,
        deadline: Instant,
    ) -> anyhow::Result<Consumed> {
        let Self::Proglog(client) = self else {
            anyhow::bail!("ConsumeStream is proglog's");
        };
        let mut consumed = Consumed::default();
        let mut stream = client
            .clone()
            .consume_stream(ConsumeRequest { offset: 0 })
            .await?
            .into_inner();
        while consumed.records < expected && Instant::now() < deadline {
            let response = stream.message().await?.context("the stream ended early")?;
            let record = response.record.context("a response without a record")?;
            add_values(&mut consumed, [record.value.len()]);
        }
        // Dropping the stream cancels it; the server stops following the tail.
        Ok(consumed)
    }
}

fn add_values(consumed: &mut Consumed, lengths: impl IntoIterator<Item = usize>) {
    for length in lengths {
        consumed.records += 1;
        consumed.bytes += length as u64;
    }
}

fn elapsed_ns(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Request/response systems: at most `plan.window` requests in flight on
/// one (multiplexed) connection, answers collected in issue order.
async fn produce_windowed<F, Fut>(plan: ProducePlan, send: F) -> anyhow::Result<Vec<u64>>
where
    F: Fn(Bytes) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let deadline = plan.deadline;
    let payload = plan.payload;
    futures_util::stream::iter(plan.first..plan.first + plan.count)
        .take_while(move |_| ready(Instant::now() < deadline))
        .map(|index| {
            let request = send(payload.value(index));
            async move {
                let sent_at = Instant::now();
                request.await?;
                anyhow::Ok(elapsed_ns(sent_at))
            }
        })
        .buffered(plan.window.max(1))
        .try_collect()
        .await
}

/// proglog: one ProduceStream; a sender task issues requests while a slot
/// of the window is free, the caller takes the in-order responses.
async fn produce_proglog(
    mut client: LogClient<Channel>,
    plan: ProducePlan,
) -> anyhow::Result<Vec<u64>> {
    let window = plan.window.max(1);
    let (requests, requests_rx) = mpsc::channel::<ProduceRequest>(window);
    // One entry per unacknowledged request: the capacity is the window.
    let (sent, mut sent_rx) = mpsc::channel::<Instant>(window);
    let ProducePlan {
        first,
        count,
        deadline,
        payload,
        ..
    } = plan;
    let sender = tokio::spawn(async move {
        let mut issued = 0u64;
        for index in first..first + count {
            let Ok(slot) = sent.reserve().await else {
                break;
            };
            if Instant::now() >= deadline {
                break;
            }
            slot.send(Instant::now());
            let record = Record {
                value: payload.value(index),
                ..Record::default()
            };
            let request = ProduceRequest {
                record: Some(record),
                ..Default::default()
            };
            if requests.send(request).await.is_err() {
                break;
            }
            issued += 1;
        }
        issued
    });
    let mut responses = client
        .produce_stream(ReceiverStream::new(requests_rx))
        .await?
        .into_inner();
    let mut latencies_ns = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    while responses.message().await?.is_some() {
        let sent_at = sent_rx
            .try_recv()
            .context("a response came for a request that was not sent")?;
        latencies_ns.push(elapsed_ns(sent_at));
    }
    let issued = sender.await.context("the sender task failed")?;
    anyhow::ensure!(
        latencies_ns.len() as u64 == issued,
        "the stream acknowledged {} of {issued} records",
        latencies_ns.len()
    );
    Ok(latencies_ns)
}
