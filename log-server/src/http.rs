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
use crate::error::Error;
use crate::follow::{Follow, FollowEnd};
use crate::produce::Item;

struct AppState<L> {
    log: Arc<L>,
    config: ServerConfig,
    shutdown: CancellationToken,
}

/// The HTTP routes over `log`, with `/healthz` and `/readyz` as the
/// metrics port has them (never behind auth; readiness turns 503 as soon
/// as `shutdown` is cancelled).
pub fn router<L: CommitLog>(
    log: Arc<L>,
    config: ServerConfig,
    shutdown: CancellationToken,
) -> Router {
    let body_limit = config.http_body_bytes_max;
    let probes = crate::probes::routes(Arc::clone(&log), shutdown.clone());
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
        .with_state(state)
        .merge(probes)
        .route_layer(axum::middleware::from_fn(crate::metrics::observe_http))
        .layer(DefaultBodyLimit::max(body_limit))
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
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ProduceIn {
    record: RecordIn,
    // Idempotent produce (see the proto): 0 = off.
    #[serde(
        default,
        alias = "producer_id",
        deserialize_with = "u64_from_number_or_string"
    )]
    producer_id: u64,
    #[serde(default, deserialize_with = "u64_from_number_or_string")]
    sequence: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ProduceBatchIn {
    records: Vec<RecordIn>,
    #[serde(
        default,
        alias = "producer_id",
        deserialize_with = "u64_from_number_or_string"
    )]
    producer_id: u64,
    #[serde(default, deserialize_with = "u64_from_number_or_string")]
    sequence: u64,
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
    config: &ServerConfig,
) -> Result<T, Error> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(Error::UnsupportedMediaType {
            expected: "application/json",
            got: content_type.to_owned(),
        });
    }
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::MessageTooLarge {
                size: None,
                limit: config.http_body_bytes_max as u64,
            }
        } else {
            Error::InvalidArgument(rejection.body_text())
        }
    })?;
    serde_json::from_slice(&body)
        .map_err(|e| Error::InvalidArgument(format!("malformed JSON body: {e}")))
}

async fn produce<L: CommitLog>(
    State(state): State<Arc<AppState<L>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request: ProduceIn = match json_body(&headers, body, &state.config) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    let result = async {
        let value = decode_base64(&request.record.value)?;
        if request.producer_id == 0 {
            let offset = state.log.append(vec![value]).await?;
            return Ok::<_, Error>(serde_json::json!({ "offset": offset }));
        }
        let item = Item::new(value, request.producer_id, request.sequence);
        let answer = crate::produce::append_one(&*state.log, item).await?;
        Ok(serde_json::json!({ "offset": answer.offset, "duplicate": answer.duplicate }))
    };
    match result.await {
        Ok(body) => Json(body).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn produce_batch<L: CommitLog>(
    State(state): State<Arc<AppState<L>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request: ProduceBatchIn = match json_body(&headers, body, &state.config) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
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
        if request.producer_id != 0 {
            let producer = log_core::Producer {
                id: request.producer_id,
                sequence: request.sequence,
            };
            let appended = state.log.append_idempotent(values, producer).await?;
            return Ok(serde_json::json!({
                "baseOffset": appended.first,
                "count": appended.count,
                "duplicate": appended.duplicate,
            }));
        }
        let count = values.len();
        let base_offset = state.log.append(values).await?;
        Ok(serde_json::json!({ "baseOffset": base_offset, "count": count }))
    };
    match result.await {
        Ok(body) => Json(body).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn consume<L: CommitLog>(
    State(state): State<Arc<AppState<L>>>,
    Path(offset): Path<String>,
) -> Response {
    let Ok(offset) = offset.parse::<u64>() else {
        return Error::InvalidArgument(format!("offset {offset:?} is not a non-negative integer"))
            .into_response();
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
        Err(rejection) => return Error::InvalidArgument(rejection.body_text()).into_response(),
    };
    let from = query.from.unwrap_or_else(|| state.log.info().lowest_offset);
    // As in gRPC (where proto3 cannot tell 0 from unset), 0 means the
    // default. Bounded whatever the client asks: one response never holds
    // more than a gRPC batch would.
    let limit = query
        .limit
        .filter(|limit| *limit > 0)
        .unwrap_or(u64::from(state.config.consume_records_default))
        .min(u64::from(state.config.consume_records_max));
    let bytes_max = query
        .max_bytes
        .filter(|bytes| *bytes > 0)
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
        Err(rejection) => return Error::InvalidArgument(rejection.body_text()).into_response(),
    };
    let from = query.from.unwrap_or_else(|| state.log.info().lowest_offset);
    if let Err(error) = crate::follow::check_start(&*state.log, from) {
        return error.into_response();
    }
    let (lines, body) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    crate::trace::spawn(async move {
        let follow = Follow {
            bytes_max: state.config.consume_bytes_default,
            records_max: u64::from(state.config.consume_records_default),
            stream_kind: "http_follow",
            protocol: "http",
        };
        let encode = |records: Vec<log_core::Record>| {
            let mut chunk = Vec::new();
            for record in records {
                let line = serde_json::json!({ "record": RecordOut::from(record) });
                serde_json::to_writer(&mut chunk, &line).expect("JSON values serialise");
                chunk.push(b'\n');
            }
            vec![Ok(Bytes::from(chunk))]
        };
        let end = follow
            .run(
                Arc::clone(&state.log),
                from,
                state.shutdown.clone(),
                &lines,
                encode,
            )
            .await;
        // A shutdown just ends the body; a failed read says why first.
        if let FollowEnd::Failed(error) = end {
            let mut line = serde_json::to_vec(&error.json_body()).expect("JSON values serialise");
            line.push(b'\n');
            let _ = lines.send(Ok(line.into())).await;
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
                "role": s.role.as_str(),
            })
        })
        .collect();
    Json(serde_json::json!({ "servers": servers })).into_response()
}
