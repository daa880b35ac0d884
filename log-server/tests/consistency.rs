//! The same question gets the same answer whichever way it is asked: a
//! consume limit of 0 over HTTP and gRPC, and the probes on the service port
//! and on the metrics port.
//!
//! Method: a real server (and a metrics listener) on 127.0.0.1:0.

use std::sync::Arc;

use log_server::{Access, LocalLog, ServerConfig};
use proto::v1::log_client::LogClient;
use proto::v1::{ConsumeBatchRequest, ProduceBatchRequest, Record};
use tokio_util::sync::CancellationToken;

/// Records produced; fewer than the default batch, so "the default" means
/// "all of them".
const RECORDS: u64 = 3;

struct Node {
    rpc: std::net::SocketAddr,
    metrics: std::net::SocketAddr,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start() -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = log_core::Log::open(
        dir.path(),
        log_core::Config {
            fsync: log_core::FsyncPolicy::Never,
            ..log_core::Config::default()
        },
    )
    .expect("open log");
    let rpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (rpc, metrics) = (
        rpc_listener.local_addr().expect("addr"),
        metrics_listener.local_addr().expect("addr"),
    );
    let log = Arc::new(LocalLog::new(Arc::new(log), "n", &rpc.to_string(), 1000));
    let shutdown = CancellationToken::new();
    let render: log_server::MetricsRender = Arc::new(String::new);
    tokio::spawn(log_server::serve_metrics(
        metrics_listener,
        Arc::clone(&log),
        render,
        shutdown.clone(),
    ));
    tokio::spawn(log_server::serve(
        rpc_listener,
        log,
        ServerConfig::default(),
        shutdown.clone(),
        None,
        Access::open(),
    ));
    Node {
        rpc,
        metrics,
        shutdown,
        _dir: dir,
    }
}

async fn client(node: &Node) -> LogClient<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", node.rpc))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    LogClient::new(channel)
}

/// Goal: `limit=0` and `maxBytes=0` over HTTP mean the defaults, as
/// `max_records: 0` and `max_bytes: 0` do over gRPC (where proto3 cannot
/// tell 0 from unset).
#[tokio::test]
async fn a_limit_of_zero_means_the_default_over_http_as_over_grpc() {
    let node = start().await;
    let mut grpc = client(&node).await;
    let records = (0..RECORDS)
        .map(|i| Record {
            value: format!("r{i}").into_bytes().into(),
            ..Record::default()
        })
        .collect();
    grpc.produce_batch(ProduceBatchRequest {
        records,
        ..Default::default()
    })
    .await
    .expect("produce");
    let over_grpc = grpc
        .consume_batch(ConsumeBatchRequest {
            from_offset: 0,
            max_records: 0,
            max_bytes: 0,
        })
        .await
        .expect("consume")
        .into_inner()
        .records
        .len();
    let body: serde_json::Value =
        reqwest::get(format!("http://{}/v1/records?limit=0&maxBytes=0", node.rpc))
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON");
    let over_http = body["records"].as_array().map_or(0, Vec::len);
    assert_eq!(over_grpc as u64, RECORDS);
    assert_eq!(over_http, over_grpc, "{body}");
}

/// Goal: `/healthz` and `/readyz` answer the same status and body on the
/// service port and on the metrics port.
#[tokio::test]
async fn the_probes_answer_the_same_on_both_ports() {
    let node = start().await;
    for path in ["/healthz", "/readyz"] {
        let mut answers = Vec::new();
        for addr in [node.rpc, node.metrics] {
            let response = reqwest::get(format!("http://{addr}{path}"))
                .await
                .expect("GET");
            let status = response.status().as_u16();
            answers.push((status, response.text().await.expect("body")));
        }
        assert_eq!(answers[0], answers[1], "{path}");
        assert_eq!(answers[0].0, 200, "{path}");
    }
}
