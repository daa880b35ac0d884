//! One listener, both protocols: gRPC (with health and reflection) and
//! HTTP/JSON, the optional separate metrics/health listener, and the bounded
//! graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use proto::v1::log_server::LogServer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::access::Access;
use crate::commit_log::CommitLog;
use crate::config::ServerConfig;
use crate::grpc::LogService;
use crate::metrics::{Instrumented, MetricsRender};
use crate::transport::{Caller, Incoming, Plaintext};

/// How often the gRPC health status follows the log's readiness.
const HEALTH_REFRESH: Duration = Duration::from_secs(1);
/// The service name health reports, as clients and probes ask for it.
const LOG_SERVICE_NAME: &str = "proglog.v1.Log";

/// Serves gRPC and HTTP on `listener` until `shutdown` is cancelled, with
/// `GET /metrics` when `metrics` is given.
///
/// Shutdown order: health turns NOT_SERVING and `/readyz` 503, then the
/// listener stops accepting, streams end with `UNAVAILABLE`, in-flight
/// requests get `drain_timeout_ms` to finish, and remaining connections are
/// dropped. The caller closes the log after this returns.
///
/// # Errors
/// An I/O error from the listener, or building reflection.
pub async fn serve<L: CommitLog>(
    listener: TcpListener,
    log: Arc<L>,
    config: ServerConfig,
    shutdown: CancellationToken,
    metrics: Option<MetricsRender>,
    access: Access,
) -> std::io::Result<()> {
    let log = Arc::new(Instrumented(log));
    let (health_service, health_task) = health(Arc::clone(&log), shutdown.clone()).await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(std::io::Error::other)?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(std::io::Error::other)?;
    let service = LogServer::new(LogService::new(
        Arc::clone(&log),
        config.clone(),
        shutdown.clone(),
    ))
    .max_decoding_message_size(config.grpc_message_bytes_max)
    .max_encoding_message_size(config.grpc_message_bytes_max);
    let grpc = tonic::service::Routes::new(service)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .into_axum_router();
    let mut app = grpc.merge(crate::http::router(
        Arc::clone(&log),
        config.clone(),
        shutdown.clone(),
    ));
    if let Some(render) = metrics {
        app = app.merge(metrics_route(render));
    }
    // Outermost first: the request span, then authorization inside it.
    let app = app
        .fallback(unknown_route)
        .layer(axum::middleware::from_fn_with_state(
            access.policy,
            crate::access::authorize,
        ))
        .layer(axum::middleware::from_fn(crate::trace::trace_request));
    let listener = Incoming::new(listener, access.handshake)?;
    run(
        listener,
        app,
        shutdown,
        health_task,
        config.drain_timeout_ms,
    )
    .await
}

/// Serves only health (gRPC `grpc.health.v1` and HTTP `/healthz`,
/// `/readyz`) and `GET /metrics` on a separate plaintext listener, for
/// probes and scrapers that cannot present client certificates. Nothing else
/// is exposed there.
///
/// # Errors
/// An I/O error from the listener.
pub async fn serve_metrics<L: CommitLog>(
    listener: TcpListener,
    log: Arc<L>,
    render: MetricsRender,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let (health_service, health_task) = health(Arc::clone(&log), shutdown.clone()).await;
    let ready = {
        let (log, shutdown) = (Arc::clone(&log), shutdown.clone());
        move || {
            let (log, shutdown) = (Arc::clone(&log), shutdown.clone());
            async move {
                if shutdown.is_cancelled() || !log.is_ready() {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                } else {
                    (StatusCode::OK, "ready\n")
                }
            }
        }
    };
    let app = tonic::service::Routes::new(health_service)
        .into_axum_router()
        .merge(metrics_route(render))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .fallback(unknown_route);
    let listener = Incoming::new(listener, Arc::new(Plaintext))?;
    run(listener, app, shutdown, health_task, 1_000).await
}

/// Unknown paths: gRPC callers get `UNIMPLEMENTED` as gRPC expects; anyone
/// else a plain 404 with a JSON body.
async fn unknown_route(headers: axum::http::HeaderMap) -> axum::response::Response {
    let grpc = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if grpc {
        return tonic::Status::unimplemented("no such method").into_http();
    }
    crate::error::http_error(StatusCode::NOT_FOUND, "no such route")
}

fn metrics_route(render: MetricsRender) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let render = Arc::clone(&render);
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    render(),
                )
                    .into_response()
            }
        }),
    )
}

/// gRPC health for `proglog.v1.Log` and `""`: it follows the log's
/// readiness and turns NOT_SERVING as soon as `shutdown` is cancelled (the
/// returned task ends then).
async fn health<L: CommitLog>(
    log: Arc<L>,
    shutdown: CancellationToken,
) -> (
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
    JoinHandle<()>,
) {
    use tonic_health::ServingStatus::{NotServing, Serving};
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter.set_service_status(LOG_SERVICE_NAME, Serving).await;
    let task = tokio::spawn(async move {
        let mut serving = true;
        loop {
            tokio::select! {
                () = tokio::time::sleep(HEALTH_REFRESH) => {}
                () = shutdown.cancelled() => break,
            }
            if log.is_ready() != serving {
                serving = !serving;
                let status = if serving { Serving } else { NotServing };
                reporter.set_service_status(LOG_SERVICE_NAME, status).await;
                reporter.set_service_status("", status).await;
            }
        }
        reporter
            .set_service_status(LOG_SERVICE_NAME, NotServing)
            .await;
        reporter.set_service_status("", NotServing).await;
    });
    (service, task)
}

/// Serves `app` until `shutdown`; then waits for health to turn
/// NOT_SERVING, stops accepting and drains for at most `drain_ms`.
async fn run(
    listener: Incoming,
    app: Router,
    shutdown: CancellationToken,
    health_task: JoinHandle<()>,
    drain_ms: u64,
) -> std::io::Result<()> {
    // Accepting stops only after health has turned NOT_SERVING.
    let stop_accepting = CancellationToken::new();
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<Caller>(),
    )
    .with_graceful_shutdown(stop_accepting.clone().cancelled_owned());
    let mut server = tokio::spawn(async move { server.await });
    tokio::select! {
        result = &mut server => return result.map_err(std::io::Error::other)?,
        () = shutdown.cancelled() => {}
    }
    let _ = health_task.await;
    stop_accepting.cancel();
    match tokio::time::timeout(Duration::from_millis(drain_ms), &mut server).await {
        Ok(result) => result.map_err(std::io::Error::other)?,
        Err(_) => {
            server.abort();
            tracing::warn!(
                drain_timeout_ms = drain_ms,
                "drain timed out; dropped remaining connections"
            );
            Ok(())
        }
    }
}
