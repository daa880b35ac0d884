//! The `proglog-client` crate against three real `proglog agent` processes
//! on 127.0.0.1 (bootstrapped with `--bootstrap-expect 3`): a client seeded
//! with a follower sends produce to the leader itself; a pipelined producer
//! rides out a SIGKILLed leader with every record acknowledged once and in
//! the log once on every node; a follow stream survives the death of its
//! node without a gap or a repeat; and a resent (producer, sequence) keeps
//! its first offset across a leader change and a full-cluster restart.
//!
//! Each test bounds its waits with named timeouts; nothing sleeps in place
//! of a condition.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Node;
use futures_util::StreamExt as _;
use proglog_client::{Client, ReadPreference, RetryPolicy};
use proto::v1::ProduceRequest;
use proto::v1::log_client::LogClient;

/// Longest a cluster may take to elect a leader (election timeouts are
/// 1-2 s at the default ticks; a few rounds may be needed).
const ELECTION_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest a restarted replica may take to catch up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest one follow stream may go without a record while it fails over
/// (detection, election, reconnect).
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the 100 000-record produce may take in all, failover included
/// (an unoptimised build pipelines several thousand records a second).
const PIPELINE_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause between two polls of a condition.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

const GOSSIP_ENV: [(&str, &str); 2] = [
    ("PROGLOG_CLUSTER__PROBE_PERIOD_MS", "200"),
    ("PROGLOG_CLUSTER__SUSPECT_TO_DOWN_MS", "1000"),
];

const NAMES: [&str; 3] = ["n1", "n2", "n3"];

/// A free UDP port on 127.0.0.1 (bound, noted, freed).
fn free_udp_addr() -> String {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr").to_string()
}

/// Three nodes, their gossip addresses and data directory.
struct Cluster {
    /// Kept until the test ends (nodes restart from it).
    dir: tempfile::TempDir,
    gossip: Vec<String>,
    nodes: Vec<Option<Node>>,
}

impl Cluster {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let gossip: Vec<String> = NAMES.iter().map(|_| free_udp_addr()).collect();
        let mut cluster = Self {
            dir,
            gossip,
            nodes: vec![None, None, None],
        };
        for i in 0..3 {
            cluster.spawn(i);
        }
        cluster.wait_listening();
        cluster
    }

    /// Starts node `i` (again), from its data directory.
    fn spawn(&mut self, i: usize) {
        let seeds = format!("{},{}", self.gossip[(i + 1) % 3], self.gossip[(i + 2) % 3]);
        let node = Node::spawn(
            &self.dir.path().join(NAMES[i]),
            &[
                "--node-name",
                NAMES[i],
                "--gossip-addr",
                &self.gossip[i],
                "--join",
                &seeds,
                "--bootstrap-expect",
                "3",
            ],
            &GOSSIP_ENV,
        );
        self.nodes[i] = Some(node);
    }

    fn wait_listening(&mut self) {
        for node in self.nodes.iter_mut().flatten() {
            if node.addr.is_empty() {
                node.wait_listening();
            }
        }
    }

    fn addrs(&self) -> Vec<String> {
        self.nodes
            .iter()
            .flatten()
            .map(|n| n.addr.clone())
            .collect()
    }

    /// SIGKILLs node `i`.
    fn kill(&mut self, i: usize) {
        drop(self.nodes[i].take());
    }

    fn index_of(&self, addr: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.as_ref().is_some_and(|n| n.addr == addr))
            .expect("a node of the cluster")
    }
}

/// A patient retry policy: a failover (gossip notices in about 1 s, an
/// election takes 1-2 s) must fit well inside it.
fn patient() -> RetryPolicy {
    RetryPolicy {
        attempts_max: 30,
        ..RetryPolicy::default()
    }
}

async fn client(seeds: &[String], preference: ReadPreference) -> Client {
    Client::builder(seeds.to_vec())
        .read_preference(preference)
        .retry(patient())
        .connect()
        .await
        .expect("connect")
}

/// Waits until every node in `addrs` names the same leader, one of them
/// (after a kill, the survivors name the dead leader until they elect).
async fn agreed_leader(addrs: &[String]) -> String {
    let deadline = Instant::now() + ELECTION_TIMEOUT;
    loop {
        let mut seen = Vec::new();
        for addr in addrs {
            let leader = match client(
                std::slice::from_ref(addr),
                ReadPreference::Node(addr.clone()),
            )
            .await
            .servers()
            .await
            {
                Ok(servers) => servers
                    .into_iter()
                    .find(|s| s.is_leader)
                    .map(|s| s.rpc_addr),
                Err(_) => None,
            };
            seen.push(leader);
        }
        if let Some(Some(first)) = seen.first()
            && seen.iter().all(|s| s.as_ref() == Some(first))
            && addrs.contains(first)
        {
            return first.clone();
        }
        assert!(Instant::now() < deadline, "no agreed leader: {seen:?}");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// `proglog_requests_total` of gRPC `method` on the node at `addr`.
async fn requests_total(addr: &str, method: &str) -> u64 {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");
    let label = format!("method=\"{method}\"");
    text.lines()
        .filter(|l| l.starts_with("proglog_requests_total{") && l.contains(&label))
        .filter(|l| l.contains("protocol=\"grpc\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Every committed record the node at `addr` serves, read from that node
/// only, once it serves at least `count`.
async fn records_on(addr: &str, count: usize) -> Vec<(u64, Bytes)> {
    let reader = client(&[addr.to_owned()], ReadPreference::Node(addr.to_owned())).await;
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        let mut records = Vec::new();
        let mut next = 0;
        loop {
            let batch = reader
                .consume_batch(next, 0, 0)
                .await
                .expect("consume_batch");
            if batch.records.is_empty() {
                break;
            }
            records.extend(batch.records.into_iter().map(|r| (r.offset, r.value)));
            next = batch.next_offset;
        }
        if records.len() >= count {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "{addr} serves {} records, expected {count}",
            records.len()
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_seeded_with_a_follower_sends_produce_to_the_leader() {
    let cluster = Cluster::start();
    let addrs = cluster.addrs();
    let leader = agreed_leader(&addrs).await;
    let follower = addrs.iter().find(|a| **a != leader).expect("a follower");

    let client = client(std::slice::from_ref(follower), ReadPreference::default()).await;
    assert_eq!(client.leader().as_deref(), Some(leader.as_str()));
    assert_eq!(client.known_servers().len(), 3);
    let before = requests_total(follower, "Produce").await;
    let offset = client
        .produce("through a follower seed")
        .await
        .expect("produce");
    let batch = client
        .produce_batch(vec![Bytes::from("b1"), Bytes::from("b2")])
        .await
        .expect("produce_batch");
    assert_eq!(batch, [offset + 1, offset + 2]);
    // The leader served the Produce itself; the seed never saw it (a
    // forwarded produce would count on the follower, not on the leader).
    assert!(requests_total(&leader, "Produce").await >= 1);
    assert_eq!(requests_total(follower, "Produce").await, before);
    let record = client.consume(offset).await.expect("consume");
    assert_eq!(record.value, "through a follower seed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_stream_survives_killing_its_node_without_gap_or_repeat() {
    let mut cluster = Cluster::start();
    let addrs = cluster.addrs();
    let leader = agreed_leader(&addrs).await;
    let follower = addrs
        .iter()
        .find(|a| **a != leader)
        .expect("a follower")
        .clone();
    let client = client(&addrs, ReadPreference::Node(follower.clone())).await;
    for i in 0..100 {
        client.produce(format!("f{i}")).await.expect("produce");
    }
    let mut stream = client.follow(0);
    let mut seen = Vec::new();
    while seen.len() < 100 {
        let record = tokio::time::timeout(FOLLOW_TIMEOUT, stream.next())
            .await
            .expect("a record in time")
            .expect("the stream goes on")
            .expect("a record");
        seen.push((record.offset, record.value));
    }
    // Kill the node the stream reads from, then keep producing.
    cluster.kill(cluster.index_of(&follower));
    for i in 100..200 {
        client.produce(format!("f{i}")).await.expect("produce");
    }
    while seen.len() < 200 {
        let record = tokio::time::timeout(FOLLOW_TIMEOUT, stream.next())
            .await
            .expect("a record in time after the failover")
            .expect("the stream goes on")
            .expect("a record");
        seen.push((record.offset, record.value));
    }
    let expected: Vec<(u64, Bytes)> = (0..200)
        .map(|i| (i, Bytes::from(format!("f{i}"))))
        .collect();
    assert_eq!(seen, expected, "every record once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_producer_survives_a_leader_kill_with_every_record_once() {
    const RECORDS: usize = 100_000;
    let mut cluster = Cluster::start();
    let addrs = cluster.addrs();
    let leader = agreed_leader(&addrs).await;
    let client = client(&addrs, ReadPreference::default()).await;
    let producer = client.producer();
    let (acks, mut acks_rx) = tokio::sync::mpsc::channel(4096);
    let sender = tokio::spawn(async move {
        for i in 0..RECORDS {
            let ack = producer.send(format!("p{i}")).await.expect("send");
            if acks.send(ack).await.is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + PIPELINE_TIMEOUT;
    let mut offsets = Vec::with_capacity(RECORDS);
    let mut killed = false;
    while let Some(ack) = acks_rx.recv().await {
        let offset = tokio::time::timeout(deadline - Instant::now(), ack)
            .await
            .expect("acknowledged within the pipeline timeout")
            .unwrap_or_else(|e| panic!("record {} failed: {e}", offsets.len()));
        offsets.push(offset);
        if offsets.len() == RECORDS / 3 && !killed {
            // Mid-stream: SIGKILL the leader with records in flight.
            cluster.kill(cluster.index_of(&leader));
            killed = true;
        }
    }
    sender.await.expect("sender");
    assert!(killed);
    assert_eq!(offsets.len(), RECORDS, "every record acknowledged");
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "acknowledged in order"
    );
    // The old leader comes back from its data; every node must then serve
    // exactly p0..p99999, once each, at the acknowledged offsets.
    let index = cluster
        .nodes
        .iter()
        .position(Option::is_none)
        .expect("the killed node");
    cluster.spawn(index);
    cluster.wait_listening();
    for addr in cluster.addrs() {
        let records = records_on(&addr, RECORDS).await;
        let values: Vec<Bytes> = records.iter().map(|(_, v)| v.clone()).collect();
        let expected: Vec<Bytes> = (0..RECORDS).map(|i| Bytes::from(format!("p{i}"))).collect();
        assert!(
            values == expected,
            "{addr}: {} records, first difference at {:?}",
            values.len(),
            values.iter().zip(&expected).position(|(a, b)| a != b)
        );
        let served: Vec<u64> = records.iter().map(|(o, _)| *o).collect();
        assert_eq!(served, offsets, "{addr}: at the acknowledged offsets");
    }
}

/// Sends (producer, sequence) with `value` to the node at `addr`; the
/// offset and whether the node called it a duplicate. Retries while the
/// cluster has no leader.
async fn produce_raw(
    client: &Client,
    addr: &str,
    producer_id: u64,
    sequence: u64,
    value: &str,
) -> (u64, bool) {
    let deadline = Instant::now() + ELECTION_TIMEOUT;
    loop {
        let mut stub = LogClient::new(client.channel(addr).expect("channel"));
        let request = ProduceRequest {
            record: Some(proto::v1::Record {
                value: Bytes::from(value.to_owned()),
                ..Default::default()
            }),
            producer_id,
            sequence,
        };
        match stub.produce(request).await {
            Ok(response) => {
                let response = response.into_inner();
                return (response.offset, response.duplicate);
            }
            Err(status) => {
                assert!(
                    Instant::now() < deadline,
                    "produce to {addr} kept failing: {status}"
                );
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_sequence_keeps_its_offset_across_a_leader_change_and_a_full_restart() {
    let mut cluster = Cluster::start();
    let addrs = cluster.addrs();
    let leader = agreed_leader(&addrs).await;
    let client = client(&addrs, ReadPreference::default()).await;
    let producer_id = 0x5eed_0000_0000_0001;
    client.produce("before").await.expect("produce");
    let (offset, duplicate) = produce_raw(&client, &leader, producer_id, 7, "once").await;
    assert!(!duplicate);
    // The same (producer, sequence) again, through a follower too.
    let follower = addrs.iter().find(|a| **a != leader).expect("a follower");
    assert_eq!(
        produce_raw(&client, &leader, producer_id, 7, "once").await,
        (offset, true)
    );
    assert_eq!(
        produce_raw(&client, follower, producer_id, 7, "once").await,
        (offset, true)
    );

    // Leader change: the new leader knows the sequence from the log.
    cluster.kill(cluster.index_of(&leader));
    let survivors = cluster.addrs();
    let new_leader = agreed_leader(&survivors).await;
    assert_ne!(new_leader, leader);
    assert_eq!(
        produce_raw(&client, &new_leader, producer_id, 7, "once").await,
        (offset, true)
    );

    // Full restart: every node from its data.
    for i in 0..3 {
        cluster.kill(i);
    }
    for i in 0..3 {
        cluster.spawn(i);
    }
    cluster.wait_listening();
    let addrs = cluster.addrs();
    let leader = agreed_leader(&addrs).await;
    let client = self::client(&addrs, ReadPreference::default()).await;
    assert_eq!(
        produce_raw(&client, &leader, producer_id, 7, "once").await,
        (offset, true)
    );
    // One record, at its first offset, on every node.
    for addr in &addrs {
        let records = records_on(addr, 2).await;
        let once: Vec<u64> = records
            .iter()
            .filter(|(_, v)| v == "once")
            .map(|(o, _)| *o)
            .collect();
        assert_eq!(once, [offset], "{addr}");
    }
}
