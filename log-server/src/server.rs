//! One listener, both protocols: gRPC (with health and reflection) and
//! HTTP/JSON, the optional separate metrics/health listener, and the bounded
//! graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use proto::v1::log_server::LogServer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::access::Access;
use crate::commit_log::CommitLog;
use crate::config::ServerConfig;
use crate::error::Error;
use crate::grpc::LogService;
use crate::metrics::{Instrumented, MetricsRender};
use crate::transport::{Incoming, Plaintext};

/// How often the gRPC health status follows the log's readiness.
const HEALTH_REFRESH: Duration = Duration::from_secs(1);
/// The service name health reports, as clients and probes ask for it.
const LOG_SERVICE_NAME: &str = "proglog.v1.Log";
/// Drain bound of the metrics listener: it serves only quick requests.
const METRICS_DRAIN_TIMEOUT_MS: u64 = 1_000;

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
    serve_with_internal(
        listener,
        log,
        config,
        shutdown,
        metrics,
        access,
        Router::new(),
    )
    .await
}

/// [`serve`] with `internal` routes on the same port, behind the same
/// handshake and authorization: the agent's node-to-node services (Raft
/// messages need the `replicate` action).
///
/// # Errors
/// As [`serve`].
pub async fn serve_with_internal<L: CommitLog>(
    listener: TcpListener,
    log: Arc<L>,
    config: ServerConfig,
    shutdown: CancellationToken,
    metrics: Option<MetricsRender>,
    access: Access,
    internal: Router,
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
    app = app.merge(internal);
    // Outermost first: the request span, then authorization inside it.
    let app = with_fallbacks(app)
        .layer(axum::middleware::from_fn_with_state(
            access.policy,
            crate::access::authorize,
        ))
        .layer(axum::middleware::from_fn(crate::trace::trace_request));
    let listener = Incoming::new(listener, access.handshake, config.connections_max)?;
    run(listener, app, config, shutdown, health_task).await
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
    let app = tonic::service::Routes::new(health_service)
        .into_axum_router()
        .merge(metrics_route(render))
        .merge(crate::probes::routes(log, shutdown.clone()));
    let config = ServerConfig {
        drain_timeout_ms: METRICS_DRAIN_TIMEOUT_MS,
        ..ServerConfig::default()
    };
    let listener = Incoming::new(listener, Arc::new(Plaintext), config.connections_max)?;
    run(listener, with_fallbacks(app), config, shutdown, health_task).await
}

/// Answers for unknown paths and methods, in the caller's protocol: gRPC
/// callers get `UNIMPLEMENTED` as gRPC expects, anyone else 404 or 405 with
/// a JSON body.
fn with_fallbacks(app: Router) -> Router {
    app.method_not_allowed_fallback(|method: axum::http::Method| async move {
        Error::MethodNotAllowed(method.to_string()).into_response()
    })
    .fallback(|headers: axum::http::HeaderMap| async move {
        Error::NoRoute.into_response_for(crate::edge::is_grpc(&headers))
    })
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
    // What readiness says now, not SERVING by default: a replicated node
    // without a leader yet must not be reported serving.
    let mut serving = crate::probes::readiness(&*log, &shutdown).is_ok();
    let initial = if serving { Serving } else { NotServing };
    reporter.set_service_status(LOG_SERVICE_NAME, initial).await;
    reporter.set_service_status("", initial).await;
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(HEALTH_REFRESH) => {}
                () = shutdown.cancelled() => break,
            }
            if crate::probes::readiness(&*log, &shutdown).is_ok() != serving {
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
/// NOT_SERVING, stops accepting and drains for at most `drain_timeout_ms`.
async fn run(
    listener: Incoming,
    app: Router,
    config: ServerConfig,
    shutdown: CancellationToken,
    health_task: JoinHandle<()>,
) -> std::io::Result<()> {
    let drain_ms = config.drain_timeout_ms;
    // Accepting stops only after health has turned NOT_SERVING.
    let stop_accepting = CancellationToken::new();
    let server = crate::connections::serve(listener, app, Arc::new(config), stop_accepting.clone());
    let mut server = tokio::spawn(server);
    tokio::select! {
        result = &mut server => return result.map_err(std::io::Error::other),
        () = shutdown.cancelled() => {}
    }
    let _ = health_task.await;
    stop_accepting.cancel();
    match tokio::time::timeout(Duration::from_millis(drain_ms), &mut server).await {
        Ok(result) => result.map_err(std::io::Error::other),
        Err(_) => {
            // Aborting the task drops every connection it still serves.
            server.abort();
            tracing::warn!(
                drain_timeout_ms = drain_ms,
                "drain timed out; dropped remaining connections"
            );
            Ok(())
        }
    }
}
