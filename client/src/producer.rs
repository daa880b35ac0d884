//! [`Producer`]: pipelined produce over one `ProduceStream`, in order,
//! bounded, resent after a failover.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use proto::v1::ProduceRequest;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use crate::Client;
use crate::client::Identity;
use crate::error::{Error, Result};
use crate::retry::Attempts;
use crate::routing::Operation;

/// How often a producer streaming through a follower (no leader was known
/// when it connected) asks whether a leader is known now.
const LEADER_LOOKUP_INTERVAL: Duration = Duration::from_secs(1);

/// A record handed to the producer, with where its answer goes.
struct Pending {
    value: Bytes,
    reply: oneshot::Sender<Result<u64>>,
}

/// A record sent and not acknowledged yet.
struct InFlight {
    sequence: u64,
    value: Bytes,
    reply: oneshot::Sender<Result<u64>>,
}

/// A pipelined producer: records are streamed to the leader without
/// waiting for each answer, at most
/// [`in_flight_max`](crate::ClientBuilder::in_flight_max) unacknowledged
/// (a [`send`](Self::send) waits for room beyond that), and acknowledged in
/// the order they were sent.
///
/// When the stream breaks (the leader died, leadership moved, a node shut
/// down) the producer finds the new leader and resends every
/// unacknowledged record, in order, with the same producer id and
/// sequence numbers: with idempotence the cluster acknowledges a record
/// that had already been appended at its original offset, so each record
/// is in the log once. Without idempotence (a cluster that cannot, or
/// [`Idempotence::Off`](crate::Idempotence::Off)) records whose fate is
/// unknown fail with the error instead of being resent.
///
/// A record the cluster refuses (over the size limit, say) fails with that
/// error, and every record handed over before the refusal was seen fails
/// with [`Error::Aborted`]: they were not appended, and appending them
/// would break the order. Later records are sent as usual.
///
/// Each producer has its own random producer id. Dropping it stops the
/// stream after the records already handed over are answered.
#[derive(Debug)]
pub struct Producer {
    inbox: mpsc::Sender<Pending>,
}

/// The answer to one [`Producer::send`]: resolves to the record's offset.
#[derive(Debug)]
#[must_use = "an acknowledgement says whether the record was appended"]
pub struct Ack(oneshot::Receiver<Result<u64>>);

impl Future for Ack {
    type Output = Result<u64>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|answer| answer.unwrap_or(Err(Error::Closed)))
    }
}

impl Producer {
    pub(crate) fn start(client: Client) -> Self {
        let in_flight_max = client.shared.config.in_flight_max;
        let (inbox, requests) = mpsc::channel(in_flight_max);
        tokio::spawn(Driver::new(client, requests).run());
        Self { inbox }
    }

    /// Hands `value` over for appending, waiting while the producer is full;
    /// the [`Ack`] resolves to its offset.
    ///
    /// # Errors
    /// [`Error::Closed`] when the producer's task has stopped.
    pub async fn send(&self, value: impl Into<Bytes>) -> Result<Ack> {
        let (reply, answer) = oneshot::channel();
        self.inbox
            .send(Pending {
                value: value.into(),
                reply,
            })
            .await
            .map_err(|_| Error::Closed)?;
        Ok(Ack(answer))
    }

    /// Appends `value` and waits for its offset (no pipelining by itself;
    /// use [`send`](Self::send) for that).
    ///
    /// # Errors
    /// The record's failure, once the retry policy gave up.
    pub async fn produce(&self, value: impl Into<Bytes>) -> Result<u64> {
        self.send(value).await?.await
    }
}

/// The task behind a [`Producer`]: owns the stream and what is in flight.
struct Driver {
    client: Client,
    requests: mpsc::Receiver<Pending>,
    requests_open: bool,
    in_flight: VecDeque<InFlight>,
    identity: Option<Identity>,
    attempts: Attempts,
    excluded: HashSet<String>,
}

/// Why a stream ended.
enum Broke {
    /// Everything is answered and no more will come.
    Done,
    /// It failed at `addr`.
    Failed { addr: String, error: Error },
    /// It ran through a follower (no leader was known when it opened) and
    /// a leader is known now: reopen there.
    Moved,
}

impl Driver {
    fn new(client: Client, requests: mpsc::Receiver<Pending>) -> Self {
        let identity = client.shared.idempotent().then(Identity::random);
        let attempts = Attempts::new(client.shared.config.retry.clone());
        Self {
            client,
            requests,
            requests_open: true,
            in_flight: VecDeque::new(),
            identity,
            attempts,
            excluded: HashSet::new(),
        }
    }

    fn request(&self, record: &InFlight) -> ProduceRequest {
        ProduceRequest {
            record: Some(proto::v1::Record {
                value: record.value.clone(),
                ..Default::default()
            }),
            producer_id: self.identity.map_or(0, |i| i.producer_id),
            sequence: record.sequence,
        }
    }

    /// Takes a record into flight, giving it the next sequence.
    fn admit(&mut self, pending: Pending) {
        let sequence = match &mut self.identity {
            Some(identity) => {
                identity.next_sequence += 1;
                identity.next_sequence - 1
            }
            None => 0,
        };
        self.in_flight.push_back(InFlight {
            sequence,
            value: pending.value,
            reply: pending.reply,
        });
    }

    async fn run(mut self) {
        loop {
            if self.in_flight.is_empty() {
                match self.requests.recv().await {
                    Some(pending) => self.admit(pending),
                    None => return,
                }
            }
            match self.stream().await {
                Broke::Done => return,
                Broke::Moved => {}
                Broke::Failed { addr, error } => self.recover(addr, error).await,
            }
        }
    }

    /// One `ProduceStream` to the node routing picks: resends what is in
    /// flight, then pipelines new records until it breaks or all is done.
    async fn stream(&mut self) -> Broke {
        let shared = Arc::clone(&self.client.shared);
        let in_flight_max = shared.config.in_flight_max;
        let addr = match shared.route(Operation::Write, &self.excluded) {
            Some(addr) => addr,
            None => {
                self.excluded.clear();
                match shared.route(Operation::Write, &self.excluded) {
                    Some(addr) => addr,
                    None => {
                        return Broke::Failed {
                            addr: String::new(),
                            error: Error::Config {
                                message: "no node to send to".to_owned(),
                            },
                        };
                    }
                }
            }
        };
        let mut stub = match shared.stub(&addr) {
            Ok(stub) => stub,
            Err(error) => return Broke::Failed { addr, error },
        };
        // Room for everything that may be in flight at once, so a send
        // never waits on the stream.
        let (outbound, outbound_rx) = mpsc::channel(in_flight_max + 1);
        for record in &self.in_flight {
            let _ = outbound.try_send(self.request(record));
        }
        let opened = tokio::time::timeout(
            shared.config.request_timeout,
            stub.produce_stream(ReceiverStream::new(outbound_rx)),
        )
        .await;
        let mut responses = match opened {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => {
                let error = Error::from_status(&status, &addr);
                return Broke::Failed { addr, error };
            }
            Err(_) => {
                let after = shared.config.request_timeout;
                return Broke::Failed {
                    addr,
                    error: Error::Timeout { after },
                };
            }
        };
        // Through a follower the records are forwarded: correct, but a hop
        // more. Look for the leader now and then, and move once it is known
        // (with idempotence only: moving resends what is in flight).
        let through_follower =
            self.identity.is_some() && shared.leader().as_deref() != Some(addr.as_str());
        let mut look_for_leader = tokio::time::interval(LEADER_LOOKUP_INTERVAL);
        look_for_leader.tick().await;
        loop {
            let room = self.requests_open && self.in_flight.len() < in_flight_max;
            tokio::select! {
                _ = look_for_leader.tick(), if through_follower => {
                    let _ = shared.refresh().await;
                    if shared.leader().is_some_and(|leader| leader != addr) {
                        return Broke::Moved;
                    }
                }
                pending = self.requests.recv(), if room => match pending {
                    Some(pending) => {
                        self.admit(pending);
                        let newest = self.in_flight.back().expect("just admitted");
                        let _ = outbound.try_send(self.request(newest));
                    }
                    None => {
                        self.requests_open = false;
                        if self.in_flight.is_empty() {
                            return Broke::Done;
                        }
                    }
                },
                response = responses.next() => match response {
                    Some(Ok(response)) => {
                        let Some(record) = self.in_flight.pop_front() else {
                            let error = Error::Status {
                                code: tonic::Code::Internal,
                                message: "the node acknowledged more records than were sent"
                                    .to_owned(),
                            };
                            return Broke::Failed { addr, error };
                        };
                        let _ = record.reply.send(Ok(response.offset));
                        self.attempts.progressed();
                        self.excluded.clear();
                        if !self.requests_open && self.in_flight.is_empty() {
                            return Broke::Done;
                        }
                    }
                    Some(Err(status)) => {
                        let error = Error::from_status(&status, &addr);
                        return Broke::Failed { addr, error };
                    }
                    None => {
                        let error = Error::Unavailable {
                            message: format!("{addr} ended the produce stream"),
                        };
                        return Broke::Failed { addr, error };
                    }
                },
            }
        }
    }

    /// After a broken stream: resend (after a backoff and a refresh), or
    /// fail what cannot be resent.
    async fn recover(&mut self, addr: String, error: Error) {
        tracing::debug!(%addr, %error, in_flight = self.in_flight.len(), "produce stream broke");
        let shared = &self.client.shared;
        if matches!(error, Error::IdempotenceUnsupported { .. })
            && self.identity.is_some()
            && shared.idempotence_refused()
        {
            // Refused before anything was appended: resend plainly.
            self.identity = None;
            return;
        }
        if matches!(
            error,
            Error::InvalidArgument { .. } | Error::SequenceTooOld { .. }
        ) {
            // The front record was refused and the stream ended there, so
            // nothing after it was appended. It fails, and so does every
            // record handed over before the refusal was seen: a producer
            // keeps order, it never appends a later record in place of an
            // earlier one. Their sequences are used again from the next
            // record on.
            if let Some(refused) = self.in_flight.pop_front() {
                let cause = error.to_string();
                let _ = refused.reply.send(Err(error));
                let aborted = || Error::Aborted {
                    message: format!("an earlier record was refused ({cause})"),
                };
                for record in self.in_flight.drain(..) {
                    let _ = record.reply.send(Err(aborted()));
                }
                while let Ok(pending) = self.requests.try_recv() {
                    let _ = pending.reply.send(Err(aborted()));
                }
                if let Some(identity) = &mut self.identity {
                    identity.next_sequence = refused.sequence;
                }
            }
            return;
        }
        let resendable = if self.identity.is_some() {
            error.is_retryable()
        } else {
            error.is_not_applied()
        };
        let wait = if resendable {
            self.attempts.failed()
        } else {
            None
        };
        match wait {
            Some(wait) => {
                self.excluded.insert(addr);
                if error.suggests_refresh() {
                    let _ = shared.refresh().await;
                }
                tokio::time::sleep(wait).await;
            }
            None => {
                // Their fate is unknown (or they were refused): tell each,
                // and continue with a fresh identity so that no sequence
                // is ever reused for another record.
                for record in self.in_flight.drain(..) {
                    let _ = record.reply.send(Err(error.clone()));
                }
                if self.identity.is_some() {
                    self.identity = Some(Identity::random());
                }
                self.attempts.progressed();
                self.excluded.clear();
            }
        }
    }
}
