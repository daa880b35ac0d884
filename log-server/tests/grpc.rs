//! Every gRPC method and error code against a real server on port 0.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{CONDITION_TIMEOUT, TestServer, record};
use futures_util::StreamExt as _;
use proto::v1::{
    ConsumeBatchRequest, ConsumeRequest, GetLogInfoRequest, GetServersRequest, ProduceBatchRequest,
    ProduceRequest,
};
use tonic::Code;

#[tokio::test]
async fn produce_then_consume_round_trips_the_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let mut client = server.client().await;
    for (i, value) in [&b"first"[..], b"second", b""].into_iter().enumerate() {
        let offset = client
            .produce(ProduceRequest {
                record: Some(record(value)),
                ..Default::default()
            })
            .await
            .expect("produce")
            .into_inner()
            .offset;
        assert_eq!(offset, i as u64);
        let got = client
            .consume(ConsumeRequest { offset })
            .await
            .expect("consume")
            .into_inner()
            .record
            .expect("record");
        assert_eq!((&got.value[..], got.offset), (value, offset));
        assert!(got.timestamp_ms > 1_600_000_000_000, "server-set timestamp");
    }
    server.stop().await;
}

#[tokio::test]
async fn produce_batch_and_consume_batch_use_dense_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let mut client = server.client().await;
    let records = (0..50u8).map(|i| record(&[i; 10])).collect();
    let batch = client
        .produce_batch(ProduceBatchRequest {
            records,
            ..Default::default()
        })
        .await
        .expect("batch")
        .into_inner();
    assert_eq!((batch.base_offset, batch.count), (0, 50));
    let page = client
        .consume_batch(ConsumeBatchRequest {
            from_offset: 10,
            max_records: 5,
            max_bytes: 0,
        })
        .await
        .expect("consume_batch")
        .into_inner();
    assert_eq!(
        page.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![10, 11, 12, 13, 14]
    );
    assert_eq!(page.next_offset, 15);
    assert_eq!(&page.records[0].value[..], &[10; 10]);
    let empty = client
        .produce_batch(ProduceBatchRequest {
            records: vec![],
            ..Default::default()
        })
        .await
        .expect_err("empty batch");
    assert_eq!(empty.code(), Code::InvalidArgument);
    server.stop().await;
}

#[tokio::test]
async fn produce_stream_pipelines_and_answers_in_order() {
    // Both produce-stream designs: one task (appends that do not wait) and
    // reader + appender (appends that wait for an fsync).
    for fsync in [log_core::FsyncPolicy::Never, log_core::FsyncPolicy::Always] {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = TestServer::start_with(
            dir.path(),
            log_core::Config {
                fsync,
                ..common::log_config()
            },
            log_server::ServerConfig::default(),
        )
        .await;
        let mut client = server.client().await;
        let requests = tokio_stream::iter((0..2000u32).map(|i| ProduceRequest {
            record: Some(record(&i.to_be_bytes())),
            ..Default::default()
        }));
        let mut responses = client
            .produce_stream(requests)
            .await
            .expect("stream")
            .into_inner();
        let mut expected = 0;
        while let Some(response) = responses.next().await {
            assert_eq!(response.expect("response").offset, expected);
            expected += 1;
        }
        assert_eq!(expected, 2000);
        for offset in [0u64, 999, 1999] {
            let got = client
                .consume(ConsumeRequest { offset })
                .await
                .expect("consume")
                .into_inner()
                .record
                .expect("record");
            assert_eq!(&got.value[..], &(offset as u32).to_be_bytes());
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn produce_stream_acknowledges_good_records_before_a_bad_one_then_fails() {
    // Both produce-stream designs: one task (appends that do not wait) and
    // reader + appender (appends that wait for an fsync).
    for fsync in [log_core::FsyncPolicy::Never, log_core::FsyncPolicy::Always] {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = TestServer::start_with(
            dir.path(),
            log_core::Config {
                fsync,
                ..common::log_config()
            },
            log_server::ServerConfig::default(),
        )
        .await;
        let mut client = server.client().await;
        let requests = vec![
            ProduceRequest {
                record: Some(record(b"ok-0")),
                ..Default::default()
            },
            ProduceRequest {
                record: Some(record(b"ok-1")),
                ..Default::default()
            },
            ProduceRequest {
                record: Some(record(&vec![0; (1 << 16) + 1])),
                ..Default::default()
            },
            ProduceRequest {
                record: Some(record(b"never")),
                ..Default::default()
            },
        ];
        let mut responses = client
            .produce_stream(tokio_stream::iter(requests))
            .await
            .expect("stream")
            .into_inner();
        assert_eq!(
            responses.next().await.expect("first").expect("ok").offset,
            0
        );
        assert_eq!(
            responses.next().await.expect("second").expect("ok").offset,
            1
        );
        let error = responses
            .next()
            .await
            .expect("third")
            .expect_err("too large");
        assert_eq!(error.code(), Code::InvalidArgument);
        assert!(error.message().contains("65536"), "{}", error.message());
        assert_eq!(
            server.log.next_offset(),
            2,
            "nothing after the bad record was written"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn consume_stream_sends_history_then_wakes_promptly_for_new_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let mut client = server.client().await;
    for i in 0..3u8 {
        client
            .produce(ProduceRequest {
                record: Some(record(&[i])),
                ..Default::default()
            })
            .await
            .expect("produce");
    }
    let mut stream = client
        .consume_stream(ConsumeRequest { offset: 1 })
        .await
        .expect("stream")
        .into_inner();
    for offset in 1..3 {
        let got = stream
            .next()
            .await
            .expect("item")
            .expect("ok")
            .record
            .expect("record");
        assert_eq!(got.offset, offset);
    }
    let mut producer = server.client().await;
    producer
        .produce(ProduceRequest {
            record: Some(record(b"live")),
            ..Default::default()
        })
        .await
        .expect("produce");
    let got = tokio::time::timeout(CONDITION_TIMEOUT, stream.next())
        .await
        .expect("the follower woke up")
        .expect("item")
        .expect("ok")
        .record
        .expect("record");
    assert_eq!((got.offset, &got.value[..]), (3, &b"live"[..]));
    drop(stream);
    server.stop().await;
}

/// Counts `proglog_follow_wakeups_total{protocol="grpc"}` for the thread
/// it is installed on; every other metric is a no-op.
#[derive(Default)]
struct WakeupRecorder {
    grpc_wakeups: Arc<AtomicU64>,
}

impl metrics::Recorder for WakeupRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let grpc = key
            .labels()
            .any(|l| l.key() == "protocol" && l.value() == "grpc");
        if key.name() == "proglog_follow_wakeups_total" && grpc {
            metrics::Counter::from_arc(Arc::clone(&self.grpc_wakeups))
        } else {
            metrics::Counter::noop()
        }
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

/// Goal: idle followers wait on a notification, not a polling loop: they
/// never wake while nothing is committed, and one commit wakes each once.
/// Method: on a single-threaded runtime with the clock paused (so any timer
/// a follower might poll on fires at once) and a recorder of follower
/// wake-ups local to that thread, open 50 caught-up ConsumeStreams, let a
/// virtual hour pass: no wake-up. Then produce one record: exactly 50
/// wake-ups, and every stream delivers it.
#[test]
fn idle_followers_never_wake_and_one_commit_wakes_each_once() {
    const FOLLOWERS: u64 = 50;
    let recorder = WakeupRecorder::default();
    let wakeups = Arc::clone(&recorder.grpc_wakeups);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let dir = tempfile::tempdir().expect("tempdir");
            let server = TestServer::start(dir.path()).await;
            let mut client = server.client().await;
            client
                .produce(ProduceRequest {
                    record: Some(record(b"x")),
                    ..Default::default()
                })
                .await
                .expect("produce");
            let mut streams = Vec::new();
            for _ in 0..FOLLOWERS {
                let mut stream = client
                    .consume_stream(ConsumeRequest { offset: 0 })
                    .await
                    .expect("stream")
                    .into_inner();
                stream.next().await.expect("item").expect("ok");
                streams.push(stream);
            }
            // Virtual time: returns as soon as every task is idle, after
            // firing every timer due within the hour.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            assert_eq!(
                wakeups.load(Ordering::Relaxed),
                0,
                "idle followers woke with nothing new committed"
            );
            client
                .produce(ProduceRequest {
                    record: Some(record(b"y")),
                    ..Default::default()
                })
                .await
                .expect("produce");
            for stream in &mut streams {
                let got = stream
                    .next()
                    .await
                    .expect("item")
                    .expect("ok")
                    .record
                    .expect("record");
                assert_eq!((got.offset, &got.value[..]), (1, &b"y"[..]));
            }
            assert_eq!(wakeups.load(Ordering::Relaxed), FOLLOWERS);
            drop(streams);
            server.stop().await;
        });
    });
}

#[tokio::test]
async fn out_of_range_reads_carry_the_valid_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let mut client = server.client().await;
    client
        .produce(ProduceRequest {
            record: Some(record(b"a")),
            ..Default::default()
        })
        .await
        .expect("produce");
    for status in [
        client
            .consume(ConsumeRequest { offset: 1 })
            .await
            .expect_err("past the end"),
        client
            .consume_batch(ConsumeBatchRequest {
                from_offset: 2,
                ..Default::default()
            })
            .await
            .expect_err("past"),
        client
            .consume_stream(ConsumeRequest { offset: 5 })
            .await
            .expect_err("stream past the end"),
    ] {
        assert_out_of_range(&status, 0, 1);
    }
    server.stop().await;
}

/// Checks an `OUT_OF_RANGE` status against the wire contract of
/// docs/api.md: the range in the message and in two trailers, named here
/// by their literal names (a renamed key must fail, not follow along).
fn assert_out_of_range(status: &tonic::Status, lowest: u64, next: u64) {
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(
        status.message().contains(&format!("{lowest}..{next}")),
        "{}",
        status.message()
    );
    let trailer = |key: &str| {
        status
            .metadata()
            .get(key)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        (
            trailer("proglog-lowest-offset"),
            trailer("proglog-next-offset")
        ),
        (Some(lowest.to_string()), Some(next.to_string())),
        "{status:?}"
    );
}

/// Goal: an offset below the lowest retained one is out of range too, on
/// every read method, with the range after the truncation.
/// Method: tiny segments, 12 records, drop the oldest segments; then read
/// one below the new lowest offset with Consume, ConsumeBatch and
/// ConsumeStream, and read the lowest itself, which works.
#[tokio::test]
async fn reads_below_the_lowest_offset_are_out_of_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_with(
        dir.path(),
        log_core::Config {
            record_bytes_max: 64,
            segment_bytes_max: 256,
            index_entries_max: 3,
            ..common::log_config()
        },
        log_server::ServerConfig {
            drain_timeout_ms: 2_000,
            ..log_server::ServerConfig::default()
        },
    )
    .await;
    let mut client = server.client().await;
    for i in 0..12u8 {
        client
            .produce(ProduceRequest {
                record: Some(record(&[i])),
                ..Default::default()
            })
            .await
            .expect("produce");
    }
    let lowest = server.log.truncate_prefix(7).expect("truncate_prefix");
    assert!(lowest > 0, "whole segments were dropped");
    let below = lowest - 1;
    for status in [
        client
            .consume(ConsumeRequest { offset: below })
            .await
            .expect_err("below the lowest"),
        client
            .consume_batch(ConsumeBatchRequest {
                from_offset: below,
                ..Default::default()
            })
            .await
            .expect_err("batch below the lowest"),
        client
            .consume_stream(ConsumeRequest { offset: below })
            .await
            .expect_err("stream below the lowest"),
        client
            .consume(ConsumeRequest { offset: 0 })
            .await
            .expect_err("offset 0, long gone"),
    ] {
        assert_out_of_range(&status, lowest, 12);
    }
    let first = client
        .consume(ConsumeRequest { offset: lowest })
        .await
        .expect("the lowest offset reads")
        .into_inner()
        .record
        .expect("record");
    assert_eq!(
        (first.offset, &first.value[..]),
        (lowest, &[lowest as u8][..])
    );
    server.stop().await;
}

#[tokio::test]
async fn invalid_produce_requests_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let mut client = server.client().await;
    let too_large = client
        .produce(ProduceRequest {
            record: Some(record(&vec![0; (1 << 16) + 1])),
            ..Default::default()
        })
        .await
        .expect_err("too large");
    assert_eq!(too_large.code(), Code::InvalidArgument);
    assert!(
        too_large.message().contains("limit of 65536 bytes"),
        "{}",
        too_large.message()
    );
    let missing = client
        .produce(ProduceRequest {
            record: None,
            ..Default::default()
        })
        .await
        .expect_err("no record");
    assert_eq!(missing.code(), Code::InvalidArgument);
    let info = client
        .get_log_info(GetLogInfoRequest {})
        .await
        .expect("info")
        .into_inner();
    assert_eq!((info.next_offset, info.highest_offset), (0, None));
    server.stop().await;
}

#[tokio::test]
async fn info_and_servers_describe_this_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let mut client = server.client().await;
    for _ in 0..4 {
        client
            .produce(ProduceRequest {
                record: Some(record(b"v")),
                ..Default::default()
            })
            .await
            .expect("produce");
    }
    let info = client
        .get_log_info(GetLogInfoRequest {})
        .await
        .expect("info")
        .into_inner();
    assert_eq!(
        (
            info.lowest_offset,
            info.highest_offset,
            info.next_offset,
            info.commit_offset
        ),
        (0, Some(3), 4, 4)
    );
    let servers = client
        .get_servers(GetServersRequest {})
        .await
        .expect("servers")
        .into_inner()
        .servers;
    assert_eq!(servers.len(), 1);
    assert_eq!(
        (servers[0].id.as_str(), servers[0].is_leader),
        ("test-node", true)
    );
    assert_eq!(servers[0].rpc_addr, server.addr.to_string());
    server.stop().await;
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let channel = server.channel().await;
    let mut health = HealthClient::new(channel.clone());
    let status = health
        .check(HealthCheckRequest {
            service: "proglog.v1.Log".into(),
        })
        .await
        .expect("health")
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses.next().await.expect("response").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("not a service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"proglog.v1.Log".to_owned()), "{names:?}");
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
    server.stop().await;
}

/// Goal: shutdown ends open streams with UNAVAILABLE and health turns
/// NOT_SERVING; the server returns within its drain bound.
#[tokio::test]
async fn graceful_shutdown_ends_open_streams() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let mut client = server.client().await;
    let channel = server.channel().await;
    let mut health = HealthClient::new(channel);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "proglog.v1.Log".into(),
        })
        .await
        .expect("watch")
        .into_inner();
    assert_eq!(
        watch.next().await.expect("first").expect("ok").status,
        ServingStatus::Serving as i32
    );
    let mut stream = client
        .consume_stream(ConsumeRequest { offset: 0 })
        .await
        .expect("stream")
        .into_inner();
    server.shutdown.cancel();
    let status = tokio::time::timeout(CONDITION_TIMEOUT, watch.next())
        .await
        .expect("health update");
    assert_eq!(
        status.expect("item").expect("ok").status,
        ServingStatus::NotServing as i32
    );
    let end = tokio::time::timeout(CONDITION_TIMEOUT, stream.next())
        .await
        .expect("the stream ended");
    assert_eq!(
        end.expect("an error item").expect_err("unavailable").code(),
        Code::Unavailable
    );
    server.stop().await;
}

#[tokio::test]
async fn records_persist_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let mut client = server.client().await;
    for i in 0..10u8 {
        client
            .produce(ProduceRequest {
                record: Some(record(&[i; 3])),
                ..Default::default()
            })
            .await
            .expect("produce");
    }
    drop(client);
    server.stop().await;
    let server = TestServer::start(dir.path()).await;
    assert!(
        server.log.opened_clean(),
        "a graceful stop leaves a clean log"
    );
    let mut client = server.client().await;
    let got = client
        .consume(ConsumeRequest { offset: 9 })
        .await
        .expect("consume")
        .into_inner()
        .record
        .expect("record");
    assert_eq!(&got.value[..], &[9; 3]);
    assert_eq!(
        client
            .produce(ProduceRequest {
                record: Some(record(b"n")),
                ..Default::default()
            })
            .await
            .expect("produce")
            .into_inner()
            .offset,
        10
    );
    server.stop().await;
}
