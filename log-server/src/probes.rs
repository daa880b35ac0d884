//! Liveness and readiness, the same on the service port and the metrics
//! port: `GET /healthz` answers `{"status":"ok"}` while the process runs;
//! `GET /readyz` answers `{"status":"ready"}`, or 503 with why not. gRPC
//! health follows the same [`readiness`].

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;

use crate::commit_log::CommitLog;

/// Whether the node takes requests now; the reason when it does not.
///
/// # Errors
/// Shutting down, or the log refuses writes.
pub(crate) fn readiness<L: CommitLog>(
    log: &L,
    shutdown: &CancellationToken,
) -> Result<(), &'static str> {
    if shutdown.is_cancelled() {
        return Err("shutting down");
    }
    if !log.is_ready() {
        return Err("log not writable");
    }
    Ok(())
}

/// `/healthz` and `/readyz` over `log`; readiness turns 503 as soon as
/// `shutdown` is cancelled.
pub(crate) fn routes<L: CommitLog>(log: Arc<L>, shutdown: CancellationToken) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route(
            "/readyz",
            get(move || {
                let status = readiness(&*log, &shutdown);
                async move { ready_response(status) }
            }),
        )
}

fn ready_response(status: Result<(), &'static str>) -> Response {
    match status {
        Ok(()) => Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": reason })),
        )
            .into_response(),
    }
}
