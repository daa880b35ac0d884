//! Consumers read only committed records, over every read method of both
//! protocols, against a real server on port 0.
//!
//! A record can be written but not committed: a replicated log writes a
//! follower's records before the leader commits them, and the local log
//! publishes its commit offset only after an append returns. Here the test
//! appends to the `log-core` log underneath the server directly, which
//! writes records without committing them, so the commit offset lags the
//! next offset for as long as the test likes.

mod common;

use common::{CONDITION_TIMEOUT, TestServer, record};
use futures_util::StreamExt as _;
use proto::v1::{ConsumeBatchRequest, ConsumeRequest, GetLogInfoRequest, ProduceRequest};
use serde_json::Value;
use tonic::Code;

async fn get(server: &TestServer, path: &str) -> (u16, Value) {
    let response = reqwest::get(server.url(path)).await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// Goal: records written but not committed are invisible to every read,
/// and become visible, in order, once the commit offset passes them.
/// Method: produce 3 records through the server (committed), append 2 to
/// the log underneath (written, not committed); every read method must end
/// at offset 3 and report the range as 0..3. Then produce one more through
/// the server: the commit covers all six, and an open stream delivers 3, 4
/// and 5.
#[tokio::test]
async fn reads_stop_at_the_commit_offset_while_later_records_are_written() {
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
    for i in 3..5u8 {
        let offset = server
            .log
            .append(&log_core::Record::new(vec![i]))
            .expect("write without committing");
        assert_eq!(offset, u64::from(i));
    }
    let info = client
        .get_log_info(GetLogInfoRequest {})
        .await
        .expect("info")
        .into_inner();
    assert_eq!((info.next_offset, info.commit_offset), (5, 3), "{info:?}");

    // gRPC: single reads, batches, streams.
    let status = client
        .consume(ConsumeRequest { offset: 3 })
        .await
        .expect_err("written, not committed");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("0..3"), "{}", status.message());
    let batch = client
        .consume_batch(ConsumeBatchRequest {
            from_offset: 0,
            max_records: 100,
            ..Default::default()
        })
        .await
        .expect("batch")
        .into_inner();
    let offsets: Vec<u64> = batch.records.iter().map(|r| r.offset).collect();
    assert_eq!((offsets, batch.next_offset), (vec![0, 1, 2], 3));
    let at_commit = client
        .consume_batch(ConsumeBatchRequest {
            from_offset: 3,
            ..Default::default()
        })
        .await
        .expect("a batch at the commit offset is empty, not an error")
        .into_inner();
    assert_eq!((at_commit.records.len(), at_commit.next_offset), (0, 3));
    for from in [4, 5] {
        let status = client
            .consume_batch(ConsumeBatchRequest {
                from_offset: from,
                ..Default::default()
            })
            .await
            .expect_err("past the commit offset");
        assert_eq!(status.code(), Code::OutOfRange, "from {from}: {status:?}");
        let status = client
            .consume_stream(ConsumeRequest { offset: from })
            .await
            .expect_err("a stream past the commit offset");
        assert_eq!(status.code(), Code::OutOfRange, "from {from}: {status:?}");
    }
    let mut stream = client
        .consume_stream(ConsumeRequest { offset: 0 })
        .await
        .expect("stream")
        .into_inner();
    for offset in 0..3 {
        let got = stream.next().await.expect("item").expect("ok");
        assert_eq!(got.record.expect("record").offset, offset);
    }

    // HTTP: single reads, ranges, and the follow stream's range check.
    let (status, body) = get(&server, "/v1/records/3").await;
    assert_eq!(
        (
            status,
            body["error"]["lowestOffset"].as_u64(),
            body["error"]["nextOffset"].as_u64()
        ),
        (404, Some(0), Some(3)),
        "{body}"
    );
    let (status, body) = get(&server, "/v1/records?from=0&limit=100").await;
    assert_eq!(status, 200);
    let offsets: Vec<u64> = body["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["offset"].as_u64().expect("offset"))
        .collect();
    assert_eq!(
        (offsets, body["nextOffset"].as_u64()),
        (vec![0, 1, 2], Some(3))
    );
    assert_eq!(get(&server, "/v1/records?from=4").await.0, 404);
    assert_eq!(get(&server, "/v1/records/stream?from=4").await.0, 404);

    // A commit past them makes the written records visible, in order.
    let mut producer = server.client().await;
    let offset = producer
        .produce(ProduceRequest {
            record: Some(record(&[5])),
            ..Default::default()
        })
        .await
        .expect("produce")
        .into_inner()
        .offset;
    assert_eq!(offset, 5);
    for offset in 3..6u64 {
        let got = tokio::time::timeout(CONDITION_TIMEOUT, stream.next())
            .await
            .expect("the stream woke for the commit")
            .expect("item")
            .expect("ok")
            .record
            .expect("record");
        assert_eq!((got.offset, &got.value[..]), (offset, &[offset as u8][..]));
    }
    assert_eq!(get(&server, "/v1/records/4").await.0, 200);
    drop(stream);
    server.stop().await;
}
