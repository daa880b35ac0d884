//! Graceful shutdown of the real `serve()` listener, in its documented
//! order: health turns NOT_SERVING, open streams end `UNAVAILABLE`, requests
//! in flight finish within `drain_timeout_ms`, and what was acknowledged is
//! in the log after a restart.
//!
//! A request is held in flight deterministically: under `interval` with a
//! one-byte bound every produce writes its record inline, then waits for an
//! fsync on the blocking pool, whose only thread the test holds
//! (`common::BlockingPoolHeld`). The written record is visible in the log's
//! next offset, so the test knows the request reached the server.

mod common;

use std::time::Duration;

use common::{BlockingPoolHeld, CONDITION_TIMEOUT, TestServer, record};
use futures_util::StreamExt as _;
use proto::v1::{ConsumeRequest, ProduceRequest};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Every produce writes inline, then waits for an fsync (a one-byte bound)
/// on the blocking pool, where the test can hold it.
fn held_config() -> log_core::Config {
    log_core::Config {
        fsync: log_core::FsyncPolicy::Interval {
            interval_ms: 3_600_000,
            bytes: 1,
        },
        ..common::log_config()
    }
}

fn runtime(paused: bool) -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all().max_blocking_threads(1);
    if paused {
        builder.start_paused(true);
    }
    builder.build().expect("runtime")
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    tokio::time::timeout(CONDITION_TIMEOUT, async {
        while !condition() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

/// Goal: shutdown keeps its order and loses nothing acknowledged.
/// Method: a health Watch and a caught-up ConsumeStream are open and a
/// produce is held in flight when shutdown starts. Then: the Watch reports
/// NOT_SERVING; the stream ends `UNAVAILABLE` with the server's own
/// message; released, the in-flight produce completes with its offset;
/// `serve()` returns long before its (one-hour) drain timeout, so it
/// drained rather than timed out; and after a restart every acknowledged
/// record reads back with its value.
#[test]
fn shutdown_reports_not_serving_ends_streams_and_drains_in_flight_produces() {
    runtime(false).block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = TestServer::start_with(
            dir.path(),
            held_config(),
            log_server::ServerConfig {
                drain_timeout_ms: 3_600_000,
                ..log_server::ServerConfig::default()
            },
        )
        .await;
        let mut client = server.client().await;
        for value in [b"a", b"b"] {
            client
                .produce(ProduceRequest {
                    record: Some(record(value)),
                    ..Default::default()
                })
                .await
                .expect("produce before shutdown");
        }
        let mut health = HealthClient::new(server.channel().await);
        let mut watch = health
            .watch(HealthCheckRequest {
                service: "proglog.v1.Log".into(),
            })
            .await
            .expect("watch")
            .into_inner();
        let first = watch.next().await.expect("a status").expect("ok").status;
        assert_eq!(first, ServingStatus::Serving as i32);
        let mut stream = client
            .consume_stream(ConsumeRequest { offset: 0 })
            .await
            .expect("stream")
            .into_inner();
        for offset in 0..2 {
            let got = stream.next().await.expect("item").expect("ok");
            assert_eq!(got.record.expect("record").offset, offset);
        }

        let held = BlockingPoolHeld::hold().await;
        let mut producer = server.client().await;
        let in_flight = tokio::spawn(async move {
            producer
                .produce(ProduceRequest {
                    record: Some(record(b"in flight")),
                    ..Default::default()
                })
                .await
        });
        let log = std::sync::Arc::clone(&server.log);
        wait_until("the held produce has written", || log.next_offset() == 3).await;
        // The stream must not see the record yet: it is not acknowledged.

        server.shutdown.cancel();
        let status = tokio::time::timeout(CONDITION_TIMEOUT, watch.next())
            .await
            .expect("health changed in time")
            .expect("a status")
            .expect("ok")
            .status;
        assert_eq!(status, ServingStatus::NotServing as i32);
        drop(watch);
        let ended = tokio::time::timeout(CONDITION_TIMEOUT, stream.next())
            .await
            .expect("the stream ended in time")
            .expect("an item")
            .expect_err("the stream ends with an error");
        assert_eq!(
            (ended.code(), ended.message()),
            (Code::Unavailable, "the server is shutting down"),
            "{ended:?}"
        );
        assert!(
            !in_flight.is_finished(),
            "the held produce cannot have been answered"
        );

        held.release().await;
        let offset = tokio::time::timeout(CONDITION_TIMEOUT, in_flight)
            .await
            .expect("the in-flight produce answered in time")
            .expect("task")
            .expect("the in-flight produce completes during the drain")
            .into_inner()
            .offset;
        assert_eq!(offset, 2);
        let served = server.served.take().expect("running");
        tokio::time::timeout(CONDITION_TIMEOUT, served)
            .await
            .expect("serve() returned once drained, not at the drain timeout")
            .expect("server task")
            .expect("server result");
        server.log.close().expect("close");
        drop(server);

        let reopened = log_core::Log::open(dir.path(), held_config()).expect("restart");
        let values: Vec<Vec<u8>> = reopened
            .read_batch(0, u64::MAX, u64::MAX)
            .expect("read back")
            .into_iter()
            .map(|r| r.value.to_vec())
            .collect();
        assert_eq!(values, [&b"a"[..], b"b", b"in flight"]);
        reopened.close().expect("close");
    });
}

/// How far past `drain_timeout_ms` `serve()` may return: the health task
/// and the abort of the remaining connections run in well under this
/// (virtual) time.
const DRAIN_MARGIN: Duration = Duration::from_millis(100);
/// The drain bound under test.
const DRAIN_TIMEOUT_MS: u64 = 2_000;

/// Reads from `socket` until `pattern` has arrived; returns all read.
async fn read_until(socket: &mut tokio::net::TcpStream, pattern: &str) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut seen = Vec::new();
    let mut buffer = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains(pattern) {
        let read = tokio::time::timeout(CONDITION_TIMEOUT, socket.read(&mut buffer))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {pattern:?}"))
            .expect("read");
        assert!(
            read > 0,
            "closed before {pattern:?}: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// Goal: a request that never finishes does not hold shutdown past its
/// bound: `serve()` returns after `drain_timeout_ms` (not before, and not
/// much after), the connection is cut, and nothing of the request is
/// written.
/// Method: the clock is paused (it advances only while every task is idle,
/// so the drain timeout elapses without waiting and its length is exact).
/// A raw HTTP/1.1 produce with `Expect: 100-continue` is in flight once the
/// server answers `100 Continue` (its handler is reading the body); the
/// client then sends half the body and never the rest. Cancel: `serve()`
/// must return between `DRAIN_TIMEOUT_MS` and `DRAIN_TIMEOUT_MS +
/// DRAIN_MARGIN` of virtual time later.
#[test]
fn a_request_still_in_flight_at_the_drain_timeout_is_cut() {
    use tokio::io::AsyncWriteExt as _;
    runtime(true).block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = TestServer::start_with(
            dir.path(),
            common::log_config(),
            log_server::ServerConfig {
                drain_timeout_ms: DRAIN_TIMEOUT_MS,
                ..log_server::ServerConfig::default()
            },
        )
        .await;
        let body = r#"{"record":{"value":"aGVsZA=="}}"#;
        let mut socket = tokio::net::TcpStream::connect(server.addr)
            .await
            .expect("connect");
        let head = format!(
            "POST /v1/records HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nexpect: 100-continue\r\n\r\n",
            body.len()
        );
        socket.write_all(head.as_bytes()).await.expect("write head");
        read_until(&mut socket, "100 Continue").await;
        socket
            .write_all(&body.as_bytes()[..body.len() / 2])
            .await
            .expect("write half the body");

        let cancelled_at = tokio::time::Instant::now();
        server.shutdown.cancel();
        let served = server.served.take().expect("running");
        let drain = Duration::from_millis(DRAIN_TIMEOUT_MS);
        tokio::time::timeout(drain + DRAIN_MARGIN, served)
            .await
            .expect("serve() returned within the drain bound")
            .expect("server task")
            .expect("server result");
        let took = cancelled_at.elapsed();
        assert!(
            took >= drain,
            "serve() returned after {took:?}, before the {drain:?} drain"
        );
        let mut rest = Vec::new();
        let read = tokio::time::timeout(
            CONDITION_TIMEOUT,
            tokio::io::AsyncReadExt::read_to_end(&mut socket, &mut rest),
        )
        .await
        .expect("the connection was cut in time");
        assert!(
            read.is_err() || !String::from_utf8_lossy(&rest).contains("\"offset\""),
            "a cut request was answered: {:?}",
            String::from_utf8_lossy(&rest)
        );
        assert_eq!(server.log.next_offset(), 0, "the cut request wrote");
        server.log.close().expect("close");
    });
}
