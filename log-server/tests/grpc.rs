//! Every gRPC method and error code against a real server on port 0.

mod common;

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
        .produce_batch(ProduceBatchRequest { records })
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
        .produce_batch(ProduceBatchRequest { records: vec![] })
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
            },
            ProduceRequest {
                record: Some(record(b"ok-1")),
            },
            ProduceRequest {
                record: Some(record(&vec![0; (1 << 16) + 1])),
            },
            ProduceRequest {
                record: Some(record(b"never")),
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

/// Goal: idle followers wait on a notification, not a polling loop.
/// Method: open 50 caught-up ConsumeStreams, then measure this process's CPU
/// time (server and client both live here) across one idle second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_followers_burn_no_cpu() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let mut client = server.client().await;
    client
        .produce(ProduceRequest {
            record: Some(record(b"x")),
        })
        .await
        .expect("produce");
    let mut streams = Vec::new();
    for _ in 0..50 {
        let mut stream = client
            .consume_stream(ConsumeRequest { offset: 0 })
            .await
            .expect("stream")
            .into_inner();
        stream.next().await.expect("item").expect("ok");
        streams.push(stream);
    }
    let before = process_cpu_time();
    // This sleep is the measurement window itself, not a wait for a condition.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = process_cpu_time() - before;
    assert!(
        used < Duration::from_millis(50),
        "50 idle followers used {used:?} of CPU in one second"
    );
    drop(streams);
    server.stop().await;
}

/// User plus system CPU time of this process, from /proc (10 ms ticks).
fn process_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("comm")
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}

#[tokio::test]
async fn out_of_range_reads_carry_the_valid_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let mut client = server.client().await;
    client
        .produce(ProduceRequest {
            record: Some(record(b"a")),
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
        assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
        assert!(status.message().contains("0..1"), "{}", status.message());
        let next = status
            .metadata()
            .get(log_server::error::NEXT_OFFSET_KEY)
            .and_then(|v| v.to_str().ok());
        assert_eq!(next, Some("1"));
    }
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
        .produce(ProduceRequest { record: None })
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
                record: Some(record(b"n"))
            })
            .await
            .expect("produce")
            .into_inner()
            .offset,
        10
    );
    server.stop().await;
}
