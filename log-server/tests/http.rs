//! Every HTTP/JSON route and its errors against a real server on port 0.

mod common;

use common::{CONDITION_TIMEOUT, TestServer};
use futures_util::StreamExt as _;
use serde_json::{Value, json};

async fn post(
    server: &TestServer,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(server.url(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

async fn get(server: &TestServer, path: &str) -> (u16, Value) {
    let response = reqwest::get(server.url(path)).await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

fn produce_body(base64: &str) -> String {
    json!({ "record": { "value": base64 } }).to_string()
}

#[tokio::test]
async fn produce_and_consume_records_as_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    assert_eq!(
        post(
            &server,
            "/v1/records",
            "application/json",
            produce_body("aGVsbG8=")
        )
        .await,
        (200, json!({ "offset": 0 }))
    );
    // URL-safe, unpadded base64 is accepted too; offsets may come as strings.
    let body = json!({ "record": { "value": "_-8", "offset": "0" } }).to_string();
    assert_eq!(
        post(
            &server,
            "/v1/records",
            "application/json; charset=utf-8",
            body
        )
        .await,
        (200, json!({ "offset": 1 }))
    );
    let (status, body) = get(&server, "/v1/records/0").await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            body["record"]["value"].as_str(),
            body["record"]["offset"].as_u64()
        ),
        (Some("aGVsbG8="), Some(0))
    );
    assert!(
        body["record"]["timestampMs"]
            .as_u64()
            .is_some_and(|t| t > 1_600_000_000_000)
    );
    assert_eq!(
        get(&server, "/v1/records/1").await.1["record"]["value"],
        "/+8="
    );
    server.stop().await;
}

#[tokio::test]
async fn batch_range_info_and_servers_routes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let records: Vec<Value> = (0..5).map(|_| json!({ "value": "eA==" })).collect();
    let (status, body) = post(
        &server,
        "/v1/records/batch",
        "application/json",
        json!({ "records": records }).to_string(),
    )
    .await;
    assert_eq!(
        (status, body),
        (200, json!({ "baseOffset": 0, "count": 5 }))
    );
    let (status, body) = get(&server, "/v1/records?from=1&limit=2").await;
    assert_eq!(status, 200);
    let offsets: Vec<u64> = body["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["offset"].as_u64().expect("offset"))
        .collect();
    assert_eq!(
        (offsets, body["nextOffset"].as_u64()),
        (vec![1, 2], Some(3))
    );
    assert_eq!(
        get(&server, "/v1/records?from=5").await,
        (200, json!({ "records": [], "nextOffset": 5 }))
    );
    let (_, info) = get(&server, "/v1/info").await;
    assert_eq!(
        info,
        json!({ "lowestOffset": 0, "highestOffset": 4, "nextOffset": 5, "commitOffset": 5 })
    );
    let (_, servers) = get(&server, "/v1/servers").await;
    assert_eq!(servers["servers"][0]["isLeader"], true);
    assert_eq!(get(&server, "/healthz").await.0, 200);
    assert_eq!(
        get(&server, "/readyz").await,
        (200, json!({ "status": "ready" }))
    );
    server.stop().await;
}

#[tokio::test]
async fn out_of_range_is_404_with_the_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    post(
        &server,
        "/v1/records",
        "application/json",
        produce_body("eA=="),
    )
    .await;
    let (status, body) = get(&server, "/v1/records/7").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "OUT_OF_RANGE");
    assert_eq!(
        (
            body["error"]["lowestOffset"].as_u64(),
            body["error"]["nextOffset"].as_u64()
        ),
        (Some(0), Some(1))
    );
    assert_eq!(get(&server, "/v1/records?from=9").await.0, 404);
    assert_eq!(get(&server, "/v1/records/stream?from=9").await.0, 404);
    server.stop().await;
}

/// Goal: every malformed request gets a 4xx JSON error and writes nothing.
#[tokio::test]
async fn malformed_requests_get_json_errors_and_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let too_big_value = "A".repeat(((1 << 16) + 3) / 3 * 4 + 4);
    let cases: Vec<(&str, &str, String, u16)> = vec![
        ("/v1/records", "application/json", "{not json".into(), 400),
        ("/v1/records", "application/json", produce_body("***"), 400),
        (
            "/v1/records",
            "application/json",
            json!({ "value": "eA==" }).to_string(),
            400,
        ),
        (
            "/v1/records",
            "application/json",
            json!({ "record": { "value": "eA==", "extra": 1 } }).to_string(),
            400,
        ),
        ("/v1/records", "text/plain", produce_body("eA=="), 415),
        (
            "/v1/records",
            "application/json",
            produce_body(&too_big_value),
            413,
        ),
        (
            "/v1/records",
            "application/json",
            "x".repeat((16 << 20) + 1),
            413,
        ),
        (
            "/v1/records/batch",
            "application/json",
            json!({ "records": [] }).to_string(),
            400,
        ),
        (
            "/v1/records/batch",
            "application/json",
            json!({ "records": [{ "value": "eA==" }, { "value": "!" }] }).to_string(),
            400,
        ),
    ];
    for (path, content_type, body, expected) in cases {
        let (status, json) = post(&server, path, content_type, body.clone()).await;
        assert_eq!(
            status,
            expected,
            "{path} {content_type} {}",
            &body[..body.len().min(60)]
        );
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{json}"
        );
    }
    assert_eq!(get(&server, "/v1/records/abc").await.0, 400);
    assert_eq!(get(&server, "/v1/records?from=x").await.0, 400);
    assert_eq!(
        get(&server, "/v1/info").await.1["nextOffset"],
        0,
        "nothing was written"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_ndjson_stream_follows_the_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    post(
        &server,
        "/v1/records",
        "application/json",
        produce_body("MA=="),
    )
    .await;
    let response = reqwest::get(server.url("/v1/records/stream?from=0"))
        .await
        .expect("stream");
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let mut body = response.bytes_stream();
    let mut buffer = Vec::new();
    let mut lines = Vec::new();
    let mut produced_live = false;
    while lines.len() < 2 {
        let chunk = tokio::time::timeout(CONDITION_TIMEOUT, body.next())
            .await
            .expect("a chunk in time")
            .expect("chunk")
            .expect("ok");
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            let line: Value = serde_json::from_slice(&buffer[..end]).expect("JSON line");
            buffer.drain(..=end);
            lines.push(line);
        }
        if !lines.is_empty() && !produced_live {
            produced_live = true;
            post(
                &server,
                "/v1/records",
                "application/json",
                produce_body("MQ=="),
            )
            .await;
        }
    }
    assert_eq!(lines[0]["record"]["value"], "MA==");
    assert_eq!(
        (
            lines[1]["record"]["value"].as_str(),
            lines[1]["record"]["offset"].as_u64()
        ),
        (Some("MQ=="), Some(1))
    );
    drop(body);
    server.stop().await;
}

/// Goal: the `/readyz` handler answers 503 once shutdown starts, while
/// `/healthz` stays 200.
/// Method: the HTTP router on a side listener sharing the server's shutdown
/// token, because the real listener stops accepting right after shutdown
/// starts, leaving no moment to ask it. On the real listener, the order is
/// proven through a gRPC health watch opened before shutdown
/// (`tests/shutdown.rs`).
#[tokio::test]
async fn readiness_turns_unavailable_when_shutdown_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let app = log_server::http_router(
        std::sync::Arc::new(log_server::LocalLog::new(
            std::sync::Arc::clone(&server.log),
            "n",
            "a",
            10,
        )),
        log_server::ServerConfig::default(),
        server.shutdown.clone(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let side = tokio::spawn(async move { axum_serve(listener, app).await });
    let ready = |addr| async move {
        reqwest::get(format!("http://{addr}/readyz"))
            .await
            .expect("readyz")
            .status()
            .as_u16()
    };
    assert_eq!(ready(addr).await, 200);
    server.shutdown.cancel();
    assert_eq!(ready(addr).await, 503);
    assert_eq!(
        reqwest::get(format!("http://{addr}/healthz"))
            .await
            .expect("healthz")
            .status()
            .as_u16(),
        200,
        "still live"
    );
    side.abort();
    server.stop().await;
}

async fn axum_serve(listener: tokio::net::TcpListener, app: axum::Router) {
    let _ = axum::serve(listener, app).await;
}
