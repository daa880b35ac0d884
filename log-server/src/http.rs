//! HTTP/JSON routes. JSON follows the proto3 JSON mapping: field names in
//! lowerCamelCase, `bytes` as base64 (standard or URL-safe, padding optional),
//! 64-bit integers accepted as numbers or strings and written as numbers.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use futures_util::StreamExt as _;
use serde::{Deserialize, Deserializer, Serialize};
use tokio_util::sync::CancellationToken;

use crate::commit_log::CommitLog;
use crate::config::ServerConfig;
use crate::error::{Error, http_error};

struct AppState<L> {
    log: Arc<L>,
    config: ServerConfig,
    shutdown: CancellationToken,
}

/// The HTTP routes over `log`. `/healthz` and `/readyz` are plain and never
/// behind auth; readiness turns 503 as soon as `shutdown` is cancelled.
pub fn router<L: CommitLog>(
    log: Arc<L>,
    config: ServerConfig,
    shutdown: CancellationToken,
) -> Router {
    let body_limit = config.http_body_bytes_max;
    let state = Arc::new(AppState {
        log,
        config,
        shutdown,
    });
    Router::new()
        .route("/v1/records", post(produce::<L>).get(range::<L>))
        .route("/v1/records/batch", post(produce_batch::<L>))
        .route("/v1/records/stream", get(follow::<L>))
        .route("/v1/records/{offset}", get(consume::<L>))
        .route("/v1/info", get(info::<L>))
        .route("/v1/servers", get(servers::<L>))
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(ready::<L>))
        .route_layer(axum::middleware::from_fn(crate::metrics::observe_http))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Base64 as proto3 JSON accepts it: standard or URL-safe, padded or not.
fn decode_base64(text: &str) -> Result<Bytes, Error> {
    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .map(Bytes::from)
        .map_err(|e| Error::InvalidArgument(format!("record.value is not valid base64: {e}")))
}

/// A 64-bit integer as a JSON number or string.
fn u64_from_number_or_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrString {
        Number(u64),
        String(String),
    }
    match NumberOrString::deserialize(deserializer)? {
        NumberOrString::Number(n) => Ok(n),
        NumberOrString::String(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RecordIn {
    // proto3 JSON: a missing bytes field is empty.
    #[serde(default)]
    value: String,
    // Accepted for symmetry with responses and ignored: the server sets them.
    #[serde(default, deserialize_with = "u64_from_number_or_string")]
    #[allow(dead_code)]
    offset: u64,
    #[serde(
        default,
        alias = "timestamp_ms",
        deserialize_with = "u64_from_number_or_string"
    )]
    #[allow(dead_code)]
    timestamp_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProduceIn {
    record: RecordIn,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProduceBatchIn {
    records: Vec<RecordIn>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordOut {
    value: String,
    offset: u64,
    timestamp_ms: u64,
}

impl From<log_core::Record> for RecordOut {
    fn from(record: log_core::Record) -> Self {
        Self {
            value: general_purpose::STANDARD.encode(&record.value),
            offset: record.offset,
            timestamp_ms: record.timestamp_ms,
        }
    }
}

/// Reads a JSON body: 415 for another content type, 413 over the size limit,
/// 400 for malformed JSON, all with a JSON error body.
fn json_body<T: for<'de> Deserialize<'de>>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, (StatusCode, String)> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected Content-Type application/json, got {content_type:?}"),
        ));
    }
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "request body is over the server's limit".to_owned()
        } else {
            rejection.body_text()
        };
        (status, message)
    })?;
    serde_json::from_slice(&body)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("malformed JSON body: {e}")))
}

async fn produce<L: CommitLog>(
    State(state): State<Arc<AppState<L>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request: ProduceIn = match json_body(&headers, body) {
        Ok(request) => request,
        Err((status, message)) => return http_error(status, message),
    };
    let result = async {
        let value = decode_base64(&request.record.value)?;
        state.log.append(vec![value]).await
    };
    match result.await {
        Ok(offset) => Json(serde_json::json!({ "offset": offset })).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn produce_batch<L: CommitLog>(
    State(state): State<Arc<AppState<L>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request: ProduceBatchIn = match json_body(&headers, body) {
        Ok(request) => request,
        Err((status, message)) => return http_error(status, message),
    };
    let result = async {
        if request.records.is_empty() {
            return Err(Error::InvalidArgument(
                "records must hold at least one record".into(),
            ));
        }
        let values = request
            .records
            .iter()
            .map(|r| decode_base64(&r.value))
            .collect::<Result<Vec<_>, _>>()?;
        let count = values.len();
        Ok((state.log.append(values).await?, count))
    };
    match result.await {
        Ok((base_offset, count)) => {
            Json(serde_json::json!({ "baseOffset": base_offset, "count": count })).into_response()
        }
        Err(error) => error.into_response(),
    }
}

async fn consume<L: CommitLog>(
    State(state): State<Arc<AppState<L>>>,
    Path(offset): Path<String>,
) -> Response {
    let Ok(offset) = offset.parse::<u64>() else {
        return http_error(
            StatusCode::BAD_REQUEST,
            format!("offset {offset:?} is not a non-negative integer"),
        );
    };
    match state.log.read(offset).await {
        Ok(record) => {
            Json(serde_json::json!({ "record": RecordOut::from(record) })).into_response()
        }
        Err(error) => error.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RangeQuery {
    from: Option<u64>,
    limit: Option<u64>,
    max_bytes: Option<u64>,
}

async fn range<L: CommitLog>(
    State(state): State<Arc<AppState<L>>>,
    query: Result<Query<RangeQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(rejection) => return http_error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let from = query.from.unwrap_or_else(|| state.log.info().lowest_offset);
    // Bounded whatever the client asks: one response never holds more than
    // a gRPC batch would.
    let limit = query
        .limit
        .unwrap_or(u64::from(state.config.consume_records_default))
        .min(u64::from(state.config.consume_records_max));
    let bytes_max = query
        .max_bytes
        .unwrap_or(state.config.consume_bytes_default)
        .min(state.config.batch_bytes_max());
    match state.log.read_batch(from, bytes_max, limit).await {
        Ok(records) => {
            let next_offset = records.last().map_or(from, |r| r.offset + 1);
            let records: Vec<RecordOut> = records.into_iter().map(Into::into).collect();
            Json(serde_json::json!({ "records": records, "nextOffset": next_offset }))
                .into_response()
        }
        Err(error) => error.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FollowQuery {
    from: Option<u64>,
}

/// NDJSON: one `{"record":{...}}` line per record from `from`, then follows
/// the tail; ends with an `{"error":...}` line if the log refuses.
async fn follow<L: CommitLog>(
    State(state): State<Arc<AppState<L>>>,
    query: Result<Query<FollowQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(rejection) => return http_error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let info = state.log.info();
    let from = query.from.unwrap_or(info.lowest_offset);
    if from < info.lowest_offset || from > info.commit_offset {
        return Error::OutOfRange {
            offset: from,
            lowest: info.lowest_offset,
            next: info.commit_offset,
        }
        .into_response();
    }
    let (lines, body) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    crate::trace::spawn(async move {
        let _open = crate::metrics::OpenStream::new("http_follow");
        let wakeups = crate::metrics::follow_wakeups("http");
        let mut offset = from;
        let mut commit = state.log.watch_commit();
        loop {
            let committed = *commit.borrow_and_update();
            if offset < committed {
                let records = state
                    .log
                    .read_batch(
                        offset,
                        state.config.consume_bytes_default,
                        u64::from(state.config.consume_records_default),
                    )
                    .await;
                let chunk = match records {
                    Ok(records) => {
                        let mut chunk = Vec::new();
                        for record in records {
                            offset = record.offset + 1;
                            let line = serde_json::json!({ "record": RecordOut::from(record) });
                            serde_json::to_writer(&mut chunk, &line)
                                .expect("JSON values serialise");
                            chunk.push(b'\n');
                        }
                        chunk
                    }
                    Err(error) => {
                        let mut line =
                            serde_json::to_vec(&error.json_body()).expect("JSON values serialise");
                        line.push(b'\n');
                        let _ = lines.send(Ok(line.into())).await;
                        return;
                    }
                };
                if lines.send(Ok(chunk.into())).await.is_err() {
                    return;
                }
                continue;
            }
            tokio::select! {
                changed = commit.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    wakeups.increment(1);
                }
                () = lines.closed() => return,
                () = state.shutdown.cancelled() => return,
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(body).map(|chunk| chunk);
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn info<L: CommitLog>(State(state): State<Arc<AppState<L>>>) -> Response {
    let info = state.log.info();
    Json(serde_json::json!({
        "lowestOffset": info.lowest_offset,
        "highestOffset": info.highest_offset(),
        "nextOffset": info.next_offset,
        "commitOffset": info.commit_offset,
    }))
    .into_response()
}

async fn servers<L: CommitLog>(State(state): State<Arc<AppState<L>>>) -> Response {
    let servers: Vec<serde_json::Value> = state
        .log
        .servers()
        .into_iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id,
                "nodeId": s.node_id,
                "rpcAddr": s.rpc_addr,
                "isLeader": s.is_leader,
                "state": s.state.as_str(),
            })
        })
        .collect();
    Json(serde_json::json!({ "servers": servers })).into_response()
}

async fn ready<L: CommitLog>(State(state): State<Arc<AppState<L>>>) -> Response {
    if state.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "shutting down" })),
        )
            .into_response();
    }
    if !state.log.is_ready() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "log not writable" })),
        )
            .into_response();
    }
    Json(serde_json::json!({ "status": "ready" })).into_response()
}
