//! Running a node: open the log, serve, and shut down in a fixed order.
//!
//! Shutdown: a signal cancels the root token; the server turns health
//! NOT_SERVING, stops accepting, ends streams and drains in-flight requests
//! (bounded); then the node announces its gossip leave (bounded by
//! `cluster.leave_timeout_ms`); then background tasks stop and the log is flushed and closed,
//! so the next start needs no recovery; last, queued trace spans are
//! exported ([`crate::telemetry`]).
//!
//! SIGHUP reloads the TLS certificates, client CA and policy
//! ([`Security::reload`]); a reload that fails keeps the old ones.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::Cluster;
use crate::config::AgentConfig;
use crate::security::Security;
use crate::telemetry::Telemetry;

/// Time a gossip leave may take beyond its configured linger before it is
/// cut short: the announce itself is a few datagrams.
const LEAVE_MARGIN: Duration = Duration::from_secs(1);

/// How often age-based retention is checked when nothing rolls segments.
const RETENTION_INTERVAL: Duration = Duration::from_secs(30);

/// Runs a node until SIGINT or SIGTERM, reloading `security` on SIGHUP.
///
/// # Errors
/// The log cannot be opened, the address cannot be bound, or serving fails.
pub async fn run(
    config: AgentConfig,
    security: Security,
    keyring: Option<discovery::Keyring>,
) -> anyhow::Result<()> {
    let telemetry = Telemetry::init(&config)?;
    let shutdown = CancellationToken::new();
    let security = Arc::new(security);
    let signals = tokio::spawn(wait_for_signal(shutdown.clone()));
    // Installed here, before anything listens: SIGHUP's default action
    // would end the process.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    let reloads = tokio::spawn(reload_on_hangup(hangup, Arc::clone(&security)));
    let result = run_until(config, &security, keyring, shutdown.clone()).await;
    signals.abort();
    reloads.abort();
    // Last, after the log is closed: the shutdown's own spans are exported.
    telemetry.shutdown().await;
    result
}

async fn wait_for_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = interrupt.recv() => tracing::info!("SIGINT received; shutting down"),
        _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
    }
    shutdown.cancel();
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    tracing::warn!("second signal: exiting without a clean shutdown");
    std::process::exit(130);
}

/// Reloads certificates and policy on every SIGHUP.
async fn reload_on_hangup(mut hangup: tokio::signal::unix::Signal, security: Arc<Security>) {
    while hangup.recv().await.is_some() {
        let security = Arc::clone(&security);
        match tokio::task::spawn_blocking(move || security.reload()).await {
            Ok(Ok(())) => tracing::info!("SIGHUP: certificates and policy reloaded"),
            Ok(Err(e)) => tracing::error!(
                error = %e,
                "SIGHUP: reload refused; the previous certificates and policy stay in force"
            ),
            Err(e) => tracing::error!(error = %e, "SIGHUP: reload task failed"),
        }
    }
}

/// Runs a node until `shutdown` is cancelled (the testable core of [`run`]).
///
/// # Errors
/// As [`run`].
pub async fn run_until(
    config: AgentConfig,
    security: &Security,
    keyring: Option<discovery::Keyring>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        node = %config.node_name,
        data_dir = %config.data_dir.display(),
        fsync = ?config.log.fsync,
        "starting proglog agent"
    );
    // Before the log opens: log-core registers its metric handles at open.
    let handle = crate::metrics::recorder();
    let log_dir = config.data_dir.join("log");
    let existed = log_dir.join("lock").exists();
    let log_config = config.log_config();
    let log = {
        let log_dir = log_dir.clone();
        tokio::task::spawn_blocking(move || log_core::Log::open(&log_dir, log_config)).await?
    }
    .with_context(|| format!("opening the log in {}", log_dir.display()))?;
    let log = Arc::new(log);
    match (existed, log.opened_clean()) {
        (false, _) => tracing::info!(dir = %log_dir.display(), "created a new log"),
        (true, true) => tracing::info!(
            dir = %log_dir.display(),
            next_offset = log.next_offset(),
            "log was closed cleanly; no recovery needed"
        ),
        (true, false) => tracing::warn!(
            dir = %log_dir.display(),
            next_offset = log.next_offset(),
            "log was not closed cleanly; recovered its newest segment"
        ),
    }

    let listener = tokio::net::TcpListener::bind(&config.rpc_addr)
        .await
        .with_context(|| format!("binding rpc_addr {}", config.rpc_addr))?;
    let addr = listener.local_addr()?.to_string();
    let cluster = Cluster::start(&config, keyring, &addr, config.tls_cert_file.is_some()).await?;
    let commit_log = Arc::new(
        log_server::LocalLog::new(
            Arc::clone(&log),
            &config.node_name,
            &addr,
            config.server.in_flight_records_max,
        )
        .with_directory(cluster.directory()),
    );
    tracing::info!(addr = %addr, security = %security.describe(), "listening for gRPC and HTTP");

    let tasks = TaskTracker::new();
    tasks.spawn(enforce_retention(Arc::clone(&log), shutdown.clone()));
    let render = crate::metrics::render(handle.clone(), Arc::clone(&log), Arc::clone(&commit_log));
    tasks.spawn(crate::metrics::upkeep(handle, shutdown.clone()));
    if !config.metrics_addr.is_empty() {
        let metrics_listener = tokio::net::TcpListener::bind(&config.metrics_addr)
            .await
            .with_context(|| format!("binding metrics_addr {}", config.metrics_addr))?;
        let metrics_addr = metrics_listener.local_addr()?;
        tracing::info!(addr = %metrics_addr, "serving metrics and health");
        let (commit_log, render, shutdown) = (
            Arc::clone(&commit_log),
            Arc::clone(&render),
            shutdown.clone(),
        );
        tasks.spawn(async move {
            if let Err(e) =
                log_server::serve_metrics(metrics_listener, commit_log, render, shutdown).await
            {
                tracing::error!(error = %e, "metrics listener failed");
            }
        });
    }
    tasks.close();
    let served = log_server::serve(
        listener,
        Arc::clone(&commit_log),
        config.server_config(),
        shutdown.clone(),
        Some(render),
        security.access(),
    )
    .await;
    shutdown.cancel();
    // After the drain, so peers keep routing to us while requests finish.
    cluster
        .leave(
            LEAVE_MARGIN,
            Duration::from_millis(config.cluster.leave_timeout_ms),
        )
        .await;
    tasks.wait().await;

    let closed = {
        let log = Arc::clone(&log);
        tokio::task::spawn_blocking(move || log.close()).await?
    };
    match &closed {
        Ok(()) => tracing::info!(
            next_offset = log.next_offset(),
            "log flushed and closed cleanly"
        ),
        Err(e) => {
            tracing::error!(error = %e, "closing the log failed; the next start will recover it")
        }
    }
    served.context("serving")?;
    closed.context("closing the log")?;
    Ok(())
}

async fn enforce_retention(log: Arc<log_core::Log>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(RETENTION_INTERVAL) => {}
            () = shutdown.cancelled() => return,
        }
        let log = Arc::clone(&log);
        match tokio::task::spawn_blocking(move || log.enforce_retention(log_core::now_ms())).await {
            Ok(Ok(0)) => {}
            Ok(Ok(dropped)) => tracing::info!(dropped, "retention dropped old segments"),
            Ok(Err(e)) => tracing::warn!(error = %e, "retention failed"),
            Err(e) => tracing::warn!(error = %e, "retention task failed"),
        }
    }
}
