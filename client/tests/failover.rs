//! The client's failover logic against two in-process fake nodes that share
//! one log: a pipelined producer whose leader dies after appending records
//! it never acknowledged resends them, in order, under the same producer id
//! and sequences (the fake, like the cluster, answers a known sequence with
//! its first offset); a follow stream whose node fails resumes on the other
//! right after the last record it delivered, dropping the repeats that node
//! sends.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use proglog_client::{Client, ReadPreference};
use proto::v1::log_server::{Log, LogServer};
use proto::v1::{
    ConsumeBatchRequest, ConsumeBatchResponse, ConsumeRequest, ConsumeResponse, GetLogInfoRequest,
    GetLogInfoResponse, GetServersRequest, GetServersResponse, ProduceBatchRequest,
    ProduceBatchResponse, ProduceRequest, ProduceResponse, Record, Server,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

/// Longest a test waits for one answer; the failovers here take a backoff
/// step or two (tens of milliseconds).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Records the first leader appends before it dies, and how many of them
/// it acknowledges.
const APPENDED_BEFORE_DEATH: usize = 40;
const ACKNOWLEDGED_BEFORE_DEATH: usize = 30;

#[derive(Debug, Default)]
struct State {
    /// (producer id, sequence, value) per offset.
    log: Vec<(u64, u64, Bytes)>,
    leader: usize,
    addrs: Vec<String>,
    /// Node 0 stops serving streams (it "died").
    node0_dead: bool,
}

impl State {
    /// Appends, or finds the offset a resent (producer, sequence) got.
    fn append(&mut self, producer: u64, sequence: u64, value: Bytes) -> (u64, bool) {
        if producer != 0
            && let Some(offset) = self
                .log
                .iter()
                .position(|(p, s, _)| *p == producer && *s == sequence)
        {
            return (offset as u64, true);
        }
        self.log.push((producer, sequence, value));
        (self.log.len() as u64 - 1, false)
    }
}

#[derive(Clone)]
struct Fake {
    me: usize,
    state: Arc<Mutex<State>>,
}

type Responses<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl Fake {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("state")
    }
}

#[tonic::async_trait]
impl Log for Fake {
    async fn produce(
        &self,
        _: Request<ProduceRequest>,
    ) -> Result<Response<ProduceResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn produce_batch(
        &self,
        _: Request<ProduceBatchRequest>,
    ) -> Result<Response<ProduceBatchResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    type ProduceStreamStream = Responses<ProduceResponse>;

    async fn produce_stream(
        &self,
        request: Request<Streaming<ProduceRequest>>,
    ) -> Result<Response<Self::ProduceStreamStream>, Status> {
        if self.state().leader != self.me {
            return Err(Status::unavailable("this node is not the leader"));
        }
        let mut inbound = request.into_inner();
        let (responses, out) = mpsc::channel(16);
        let fake = self.clone();
        tokio::spawn(async move {
            let mut appended = 0;
            while let Some(Ok(request)) = inbound.next().await {
                let value = request.record.map(|r| r.value).unwrap_or_default();
                let (offset, duplicate) =
                    fake.state()
                        .append(request.producer_id, request.sequence, value);
                appended += 1;
                if fake.me == 0 && appended > ACKNOWLEDGED_BEFORE_DEATH {
                    // Appended, never acknowledged: the answer is lost.
                    if appended == APPENDED_BEFORE_DEATH {
                        fake.state().leader = 1;
                        let _ = responses
                            .send(Err(Status::unavailable("the server is shutting down")))
                            .await;
                        return;
                    }
                    continue;
                }
                let response = ProduceResponse { offset, duplicate };
                if responses.send(Ok(response)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }

    async fn consume(
        &self,
        _: Request<ConsumeRequest>,
    ) -> Result<Response<ConsumeResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn consume_batch(
        &self,
        _: Request<ConsumeBatchRequest>,
    ) -> Result<Response<ConsumeBatchResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    type ConsumeStreamStream = Responses<ConsumeResponse>;

    /// Node 0 serves up to offset 50, then fails; node 1 starts three
    /// records before the offset asked for (repeats the client must drop)
    /// and then idles at the tail.
    async fn consume_stream(
        &self,
        request: Request<ConsumeRequest>,
    ) -> Result<Response<Self::ConsumeStreamStream>, Status> {
        if self.me == 0 && self.state().node0_dead {
            return Err(Status::unavailable("the server is shutting down"));
        }
        let from = request.into_inner().offset;
        let start = if self.me == 1 {
            from.saturating_sub(3)
        } else {
            from
        };
        let (responses, out) = mpsc::channel(16);
        let fake = self.clone();
        tokio::spawn(async move {
            let records: Vec<(u64, Bytes)> = fake
                .state()
                .log
                .iter()
                .enumerate()
                .skip(start as usize)
                .map(|(o, (_, _, v))| (o as u64, v.clone()))
                .collect();
            for (offset, value) in records {
                if fake.me == 0 && offset == 50 {
                    fake.state().node0_dead = true;
                    let _ = responses
                        .send(Err(Status::unavailable("the server is shutting down")))
                        .await;
                    return;
                }
                let record = Record {
                    value,
                    offset,
                    timestamp_ms: 0,
                };
                let response = ConsumeResponse {
                    record: Some(record),
                };
                if responses.send(Ok(response)).await.is_err() {
                    return;
                }
            }
            // At the tail: hold the stream open, as a node does.
            responses.closed().await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }

    async fn get_servers(
        &self,
        _: Request<GetServersRequest>,
    ) -> Result<Response<GetServersResponse>, Status> {
        let state = self.state();
        let servers = state
            .addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| Server {
                id: format!("n{i}"),
                rpc_addr: addr.clone(),
                is_leader: i == state.leader,
                node_id: i as u64 + 1,
                state: "alive".to_owned(),
                role: "voter".to_owned(),
            })
            .collect();
        Ok(Response::new(GetServersResponse { servers }))
    }

    async fn get_log_info(
        &self,
        _: Request<GetLogInfoRequest>,
    ) -> Result<Response<GetLogInfoResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

/// Two fake nodes on 127.0.0.1 sharing `state`; their addresses.
async fn start_two(state: Arc<Mutex<State>>) -> Vec<String> {
    let mut addrs = Vec::new();
    for me in 0..2 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        addrs.push(listener.local_addr().expect("addr").to_string());
        let fake = Fake {
            me,
            state: Arc::clone(&state),
        };
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(LogServer::new(fake))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
    }
    state.lock().expect("state").addrs = addrs.clone();
    addrs
}

#[tokio::test]
async fn a_producer_resends_what_a_dead_leader_never_acknowledged_under_the_same_sequences() {
    let state = Arc::new(Mutex::new(State::default()));
    let addrs = start_two(Arc::clone(&state)).await;
    let client = Client::connect([addrs[1].clone()]).await.expect("connect");
    assert_eq!(client.leader().as_deref(), Some(addrs[0].as_str()));
    let producer = client.producer();
    let mut acks = Vec::new();
    for i in 0..100 {
        acks.push(producer.send(format!("r{i}")).await.expect("send"));
    }
    let mut offsets = Vec::new();
    for ack in acks {
        let offset = tokio::time::timeout(ANSWER_TIMEOUT, ack)
            .await
            .expect("acknowledged in time")
            .expect("acknowledged");
        offsets.push(offset);
    }
    assert_eq!(
        offsets,
        (0..100).collect::<Vec<u64>>(),
        "in order, once each"
    );
    let state = state.lock().expect("state");
    let values: Vec<String> = state
        .log
        .iter()
        .map(|(_, _, v)| String::from_utf8_lossy(v).into_owned())
        .collect();
    let expected: Vec<String> = (0..100).map(|i| format!("r{i}")).collect();
    assert_eq!(
        values, expected,
        "the unacknowledged ten were not appended twice"
    );
    let producer_id = state.log[0].0;
    assert_ne!(producer_id, 0);
    assert!(
        state
            .log
            .iter()
            .enumerate()
            .all(|(i, (p, s, _))| *p == producer_id && *s == i as u64),
        "one producer id, sequence = position"
    );
    assert_eq!(state.leader, 1, "the first leader died mid-stream");
}

#[tokio::test]
async fn a_follow_stream_resumes_on_another_node_without_gap_or_repeat() {
    let state = Arc::new(Mutex::new(State::default()));
    for i in 0..100u64 {
        state
            .lock()
            .expect("state")
            .append(0, 0, Bytes::from(format!("f{i}")));
    }
    let addrs = start_two(Arc::clone(&state)).await;
    let client = Client::builder([addrs[0].clone()])
        .read_preference(ReadPreference::Node(addrs[0].clone()))
        .connect()
        .await
        .expect("connect");
    let mut stream = client.follow(10);
    let mut seen = Vec::new();
    while seen.len() < 90 {
        let record = tokio::time::timeout(ANSWER_TIMEOUT, stream.next())
            .await
            .expect("a record in time")
            .expect("the stream goes on")
            .expect("a record");
        seen.push(record.offset);
    }
    assert_eq!(seen, (10..100).collect::<Vec<u64>>());
    assert!(
        state.lock().expect("state").node0_dead,
        "node 0 failed at 50"
    );
}
