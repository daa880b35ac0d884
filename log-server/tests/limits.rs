//! The server's own limits, over both protocols against a real server on
//! port 0: the cap on records in one batch, and the refusal of appends
//! beyond the records in flight (`RESOURCE_EXHAUSTED` / 429), which must
//! never queue without bound nor write anything of the refused request.

mod common;

use std::future::Future;
use std::pin::Pin;

use common::{CONDITION_TIMEOUT, TestServer, record};
use futures_util::future::{Either, select};
use proto::v1::{ProduceBatchRequest, ProduceRequest};
use serde_json::{Value, json};
use tonic::Code;

/// Records in flight in appends at once; also the largest batch.
const IN_FLIGHT: u32 = 4;

async fn start(dir: &std::path::Path) -> TestServer {
    TestServer::start_full(
        dir,
        log_core::Config {
            // Appends run on the blocking pool under `always` (see
            // `LocalLog`): what lets the overload test hold them.
            fsync: log_core::FsyncPolicy::Always,
            ..common::log_config()
        },
        log_server::ServerConfig {
            drain_timeout_ms: 2_000,
            ..log_server::ServerConfig::default()
        },
        log_server::Access::open(),
        IN_FLIGHT,
    )
    .await
}

fn json_records(count: u32, value: &str) -> String {
    let records: Vec<Value> = (0..count).map(|_| json!({ "value": value })).collect();
    json!({ "records": records }).to_string()
}

async fn post_json(server: &TestServer, path: &str, body: String) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(server.url(path))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// Goal: a batch of more records than the server admits in flight is
/// refused as invalid (it could never be admitted, so retrying is no use),
/// naming the cap, over gRPC and HTTP, and writes nothing; a batch of
/// exactly the cap is accepted.
#[tokio::test]
async fn a_batch_over_the_record_cap_is_refused_over_grpc_and_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    let mut client = server.client().await;
    let over = IN_FLIGHT + 1;
    let status = client
        .produce_batch(ProduceBatchRequest {
            records: (0..over).map(|_| record(b"g")).collect(),
            ..Default::default()
        })
        .await
        .expect_err("over the cap");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .contains(&format!("{over} records is over the limit of {IN_FLIGHT}")),
        "{}",
        status.message()
    );
    let (code, body) = post_json(&server, "/v1/records/batch", json_records(over, "aA==")).await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("limit of {IN_FLIGHT} records"))),
        "{body}"
    );
    assert_eq!(server.log.next_offset(), 0, "refused batches write nothing");
    let accepted = client
        .produce_batch(ProduceBatchRequest {
            records: (0..IN_FLIGHT).map(|_| record(b"g")).collect(),
            ..Default::default()
        })
        .await
        .expect("a batch at the cap")
        .into_inner();
    assert_eq!(
        (accepted.base_offset, accepted.count),
        (0, u64::from(IN_FLIGHT))
    );
    let (code, body) = post_json(
        &server,
        "/v1/records/batch",
        json_records(IN_FLIGHT, "aA=="),
    )
    .await;
    assert_eq!(
        (code, body),
        (200, json!({ "baseOffset": IN_FLIGHT, "count": IN_FLIGHT }))
    );
    server.stop().await;
}

/// Runs `a` and `b` at once; returns the output of the first to finish and
/// the other, still pending, to finish later.
async fn first_of<A: Future, B: Future>(
    a: A,
    b: B,
) -> Either<(A::Output, Pin<Box<B>>), (B::Output, Pin<Box<A>>)> {
    tokio::time::timeout(CONDITION_TIMEOUT, select(Box::pin(a), Box::pin(b)))
        .await
        .expect("one of the two answered in time")
}

/// Goal: appends beyond the records in flight are refused at the server
/// (gRPC `RESOURCE_EXHAUSTED`, HTTP 429 with code `RESOURCE_EXHAUSTED`)
/// instead of queueing, and the refused request writes nothing.
/// Method: a runtime with one blocking thread, which the test holds: an
/// admitted `always` append then waits holding its permits. Two appends of
/// 4 and 1 records (5 > 4 permits) go in at once; neither can finish while
/// the thread is held, so whichever the server took second is refused, and
/// it is the first to answer. Released, the other one completes, and the
/// log holds exactly its records. Done over gRPC, then over HTTP.
#[test]
fn appends_beyond_the_in_flight_limit_are_refused_at_the_server() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = start(dir.path()).await;
        let (mut big_client, mut small_client) = (server.client().await, server.client().await);

        let held = common::BlockingPoolHeld::hold().await;
        let big = big_client.produce_batch(ProduceBatchRequest {
            records: (0..IN_FLIGHT).map(|_| record(b"big")).collect(),
            ..Default::default()
        });
        let small = small_client.produce(ProduceRequest {
            record: Some(record(b"small")),
            ..Default::default()
        });
        let (refused, admitted_records) = match first_of(big, small).await {
            Either::Left((refused, small)) => {
                let refused = refused.expect_err("answered while held: refused").code();
                held.release().await;
                small.await.expect("the admitted produce");
                (refused, vec![b"small".to_vec()])
            }
            Either::Right((refused, big)) => {
                let refused = refused.expect_err("answered while held: refused").code();
                held.release().await;
                big.await.expect("the admitted batch");
                (refused, vec![b"big".to_vec(); IN_FLIGHT as usize])
            }
        };
        assert_eq!(refused, Code::ResourceExhausted);
        let stored: Vec<Vec<u8>> = server
            .log
            .read_batch(0, u64::MAX, u64::MAX)
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.value.to_vec())
            .collect();
        assert_eq!(
            stored, admitted_records,
            "only the admitted append was written"
        );
        let after_grpc = server.log.next_offset();

        let held = common::BlockingPoolHeld::hold().await;
        let big = post_json(
            &server,
            "/v1/records/batch",
            json_records(IN_FLIGHT, "Ymln"),
        );
        let small = post_json(
            &server,
            "/v1/records",
            json!({ "record": { "value": "c21hbGw=" } }).to_string(),
        );
        let ((code, body), admitted) = match first_of(big, small).await {
            Either::Left((refused, small)) => {
                held.release().await;
                assert_eq!(small.await.0, 200);
                (refused, 1)
            }
            Either::Right((refused, big)) => {
                held.release().await;
                assert_eq!(big.await.0, 200);
                (refused, u64::from(IN_FLIGHT))
            }
        };
        assert_eq!(
            (code, body["error"]["code"].as_str()),
            (429, Some("RESOURCE_EXHAUSTED")),
            "{body}"
        );
        assert_eq!(server.log.next_offset(), after_grpc + admitted);
        server.stop().await;
    });
}
