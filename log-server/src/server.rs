//! One listener, both protocols: gRPC (with health and reflection) and
//! HTTP/JSON, and the bounded graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use proto::v1::log_server::LogServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::commit_log::CommitLog;
use crate::config::ServerConfig;
use crate::grpc::LogService;

/// How often the gRPC health status follows the log's readiness.
const HEALTH_REFRESH: Duration = Duration::from_secs(1);

/// Serves gRPC and HTTP on `listener` until `shutdown` is cancelled.
///
/// Shutdown order: health turns NOT_SERVING and `/readyz` 503, streams end
/// with `UNAVAILABLE`, in-flight requests get `drain_timeout_ms` to finish,
/// then remaining connections are dropped. The caller closes the log after
/// this returns.
///
/// # Errors
/// An I/O error from the listener, or building reflection.
pub async fn serve<L: CommitLog>(
    listener: TcpListener,
    log: Arc<L>,
    config: ServerConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<LogServer<LogService<L>>>().await;
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
    let app = grpc.merge(crate::http::router(
        Arc::clone(&log),
        config.clone(),
        shutdown.clone(),
    ));

    // Health follows readiness, and turns NOT_SERVING first on shutdown.
    let health_task = {
        let (log, shutdown) = (Arc::clone(&log), shutdown.clone());
        tokio::spawn(async move {
            let mut serving = true;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(HEALTH_REFRESH) => {}
                    () = shutdown.cancelled() => break,
                }
                if log.is_ready() != serving {
                    serving = !serving;
                    if serving {
                        health.set_serving::<LogServer<LogService<L>>>().await;
                    } else {
                        health.set_not_serving::<LogServer<LogService<L>>>().await;
                    }
                }
            }
            health.set_not_serving::<LogServer<LogService<L>>>().await;
            health
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
        })
    };

    // Small responses (acks, health) must leave at once: with Nagle's
    // algorithm and the peer's delayed ACKs they would wait ~40 ms each.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    // Accepting stops only after health has turned NOT_SERVING.
    let stop_accepting = CancellationToken::new();
    let drain = Duration::from_millis(config.drain_timeout_ms);
    let server =
        axum::serve(listener, app).with_graceful_shutdown(stop_accepting.clone().cancelled_owned());
    let mut server = tokio::spawn(async move { server.await });
    tokio::select! {
        result = &mut server => return result.map_err(std::io::Error::other)?,
        () = shutdown.cancelled() => {}
    }
    let _ = health_task.await;
    stop_accepting.cancel();
    match tokio::time::timeout(drain, &mut server).await {
        Ok(result) => result.map_err(std::io::Error::other)?,
        Err(_) => {
            server.abort();
            tracing::warn!(
                drain_timeout_ms = config.drain_timeout_ms,
                "drain timed out; dropped remaining connections"
            );
            Ok(())
        }
    }
}
