//! Prometheus metrics of the API layer, through the `metrics` facade (no-ops
//! until the process installs a recorder; the agent installs the Prometheus
//! one and serves it at `/metrics`).
//!
//! Names follow Prometheus conventions: `proglog_` prefix, base units,
//! `_total` counters. Labels are bounded: method names, protocol, status
//! codes and error kinds only, never offsets, subjects or addresses.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `proglog_requests_total` | counter | `protocol`, `method`, `code` |
//! | `proglog_request_duration_seconds` | histogram | `protocol`, `method` |
//! | `proglog_produced_records_total`, `proglog_produced_bytes_total` | counter | |
//! | `proglog_consumed_records_total`, `proglog_consumed_bytes_total` | counter | |
//! | `proglog_errors_total` | counter | `kind` |
//! | `proglog_open_streams` | gauge | `kind` |
//! | `proglog_follow_wakeups_total` | counter | `protocol` |
//! | `proglog_connections_refused_total` | counter | |
//! | `proglog_accept_errors_total` | counter | |
//!
//! `proglog_follow_wakeups_total` counts the times a tail-following stream
//! (gRPC `ConsumeStream`, HTTP follow) woke for a new commit offset: idle
//! followers must not wake at all, so its rate shows a polling regression or
//! a thundering herd.
//!
//! `proglog_connections_refused_total` counts connections closed at once
//! because `connections_max` were open; `proglog_accept_errors_total` counts
//! failed accepts (out of file descriptors), retried with backoff.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use log_core::{Producer, Record};
use tokio::sync::watch;

use crate::commit_log::{Appended, CommitLog, LogInfo, ServerInfo};
use crate::error::{Error, Result};

/// Renders the metrics exposition text (Prometheus text format 0.0.4).
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

fn error_kind(error: &Error) -> &'static str {
    match error {
        Error::OutOfRange { .. } => "out_of_range",
        Error::RecordTooLarge { .. } => "record_too_large",
        Error::MessageTooLarge { .. } => "message_too_large",
        Error::InvalidArgument(_) | Error::UnsupportedMediaType { .. } => "invalid_argument",
        Error::UriTooLong { .. } | Error::HeadersTooLarge { .. } => "head_too_large",
        Error::Unauthenticated(_) => "unauthenticated",
        Error::PermissionDenied { .. } => "permission_denied",
        Error::NoRoute | Error::MethodNotAllowed(_) => "no_route",
        Error::RequestTimeout(_) => "request_timeout",
        Error::Overloaded(_) => "overloaded",
        Error::Unavailable(_) => "unavailable",
        Error::FailedPrecondition { .. } => "failed_precondition",
        Error::NoLeader { .. } => "no_leader",
        Error::Internal => "internal",
    }
}

fn count_error<T>(result: &Result<T>) {
    if let Err(error) = result {
        metrics::counter!("proglog_errors_total", "kind" => error_kind(error)).increment(1);
    }
}

fn count_consumed(records: &[Record]) {
    let bytes: usize = records.iter().map(|r| r.value.len()).sum();
    metrics::counter!("proglog_consumed_records_total").increment(records.len() as u64);
    metrics::counter!("proglog_consumed_bytes_total").increment(bytes as u64);
}

/// A [`CommitLog`] that counts what passes through it: produced and consumed
/// records and bytes, and errors by kind. Both protocols go through it.
pub struct Instrumented<L>(pub Arc<L>);

impl<L: CommitLog> CommitLog for Instrumented<L> {
    async fn append(&self, values: Vec<Bytes>) -> Result<u64> {
        let records = values.len() as u64;
        let bytes: usize = values.iter().map(Bytes::len).sum();
        let result = self.0.append(values).await;
        count_error(&result);
        if result.is_ok() {
            metrics::counter!("proglog_produced_records_total").increment(records);
            metrics::counter!("proglog_produced_bytes_total").increment(bytes as u64);
        }
        result
    }

    async fn append_idempotent(&self, values: Vec<Bytes>, producer: Producer) -> Result<Appended> {
        let bytes: Vec<usize> = values.iter().map(Bytes::len).collect();
        let result = self.0.append_idempotent(values, producer).await;
        count_error(&result);
        if let Ok(appended) = &result
            && !appended.duplicate
        {
            let count = appended.count as usize;
            let appended_bytes: usize = bytes.iter().take(count).sum();
            metrics::counter!("proglog_produced_records_total").increment(count as u64);
            metrics::counter!("proglog_produced_bytes_total").increment(appended_bytes as u64);
        }
        result
    }

    async fn read(&self, offset: u64) -> Result<Record> {
        let result = self.0.read(offset).await;
        count_error(&result);
        if let Ok(record) = &result {
            count_consumed(std::slice::from_ref(record));
        }
        result
    }

    async fn read_batch(&self, from: u64, bytes_max: u64, records_max: u64) -> Result<Vec<Record>> {
        let result = self.0.read_batch(from, bytes_max, records_max).await;
        count_error(&result);
        if let Ok(records) = &result {
            count_consumed(records);
        }
        result
    }

    fn info(&self) -> LogInfo {
        self.0.info()
    }

    fn watch_commit(&self) -> watch::Receiver<u64> {
        self.0.watch_commit()
    }

    fn appends_inline(&self) -> bool {
        self.0.appends_inline()
    }

    fn record_bytes_max(&self) -> u64 {
        self.0.record_bytes_max()
    }

    fn servers(&self) -> Vec<ServerInfo> {
        self.0.servers()
    }

    fn is_ready(&self) -> bool {
        self.0.is_ready()
    }
}

/// The wake-up counter of one tail-following stream over `protocol`,
/// registered once per stream rather than looked up per wake-up.
pub(crate) fn follow_wakeups(protocol: &'static str) -> metrics::Counter {
    metrics::counter!("proglog_follow_wakeups_total", "protocol" => protocol)
}

/// Counts an open stream of `kind` until dropped.
pub(crate) struct OpenStream(&'static str);

impl OpenStream {
    pub(crate) fn new(kind: &'static str) -> Self {
        metrics::gauge!("proglog_open_streams", "kind" => kind).increment(1);
        Self(kind)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        metrics::gauge!("proglog_open_streams", "kind" => self.0).decrement(1);
    }
}

fn record_request(protocol: &'static str, method: String, code: String, started: Instant) {
    metrics::histogram!("proglog_request_duration_seconds", "protocol" => protocol, "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("proglog_requests_total", "protocol" => protocol, "method" => method, "code" => code).increment(1);
}

/// Runs a gRPC handler and records its count, code and latency. For a
/// streaming method this measures opening the stream.
pub(crate) async fn observe_grpc<T>(
    method: &'static str,
    handler: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    let started = Instant::now();
    let result = handler.await;
    let code = match &result {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    };
    record_request(
        "grpc",
        method.to_owned(),
        proto::code_name(code).to_owned(),
        started,
    );
    result
}

/// Axum middleware for the HTTP routes: count, status and latency by route
/// template (`GET /v1/records/{offset}`), never by raw path.
pub(crate) async fn observe_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = format!("{} {route}", request.method());
    let response = next.run(request).await;
    record_request(
        "http",
        method,
        response.status().as_u16().to_string(),
        started,
    );
    response
}
