//! Running a node: open the log, serve, and shut down in a fixed order.
//!
//! Shutdown: a signal cancels the root token; a replicated leader first
//! hands leadership to its most caught-up voter (bounded); the server turns health
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

use crate::cluster::{Cluster, Start};
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

/// Longest a cluster of one waits to lead before serving.
const SOLE_VOTER_ELECTION_BOUND: std::time::Duration = std::time::Duration::from_secs(10);

/// A data directory holds a standalone log (`log/`) or a replicated one
/// (`raft/`): starting it as the other kind would serve an empty log
/// beside the data, so that is refused, saying which setting fits.
fn refuse_the_other_kind_of_log(
    data_dir: &std::path::Path,
    replicated: bool,
) -> anyhow::Result<()> {
    let (standalone, raft) = (data_dir.join("log"), data_dir.join("raft"));
    if replicated && standalone.exists() && !raft.exists() {
        anyhow::bail!(
            "{} holds a standalone log (written with cluster.bootstrap_expect = 0, or before Raft \
             was the default); serve it with --bootstrap-expect 0 (a replicated node would start \
             an empty log beside it)",
            standalone.display()
        );
    }
    if !replicated && raft.exists() && !standalone.exists() {
        anyhow::bail!(
            "{} holds a replicated log; serve it with --bootstrap-expect 1 or more \
             (bootstrap_expect = 0 would start an empty standalone log beside it)",
            raft.display()
        );
    }
    Ok(())
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
        replicated = config.cluster.replication_enabled(),
        "starting proglog agent"
    );
    // Bound first: a port in use fails the start before anything is
    // created on disk.
    let listener = tokio::net::TcpListener::bind(&config.rpc_addr)
        .await
        .with_context(|| format!("binding rpc_addr {}", config.rpc_addr))?;
    let addr = listener.local_addr()?.to_string();
    // Before the log opens: log-core registers its metric handles at open.
    let handle = crate::metrics::recorder();
    let replicated = config.cluster.replication_enabled();
    // A replicated log lives in its own directory: its offsets are Raft
    // indexes, not a standalone log's.
    let log_dir = if replicated {
        config.data_dir.join("raft").join("log")
    } else {
        config.data_dir.join("log")
    };
    refuse_the_other_kind_of_log(&config.data_dir, replicated)?;
    let existed = log_dir.join("lock").exists();
    let log_config = config.log_config();
    let (log, storage) = if replicated {
        let raft_dir = config.data_dir.join("raft");
        let storage = tokio::task::spawn_blocking(move || {
            replicator::LogStorage::open(&raft_dir, log_config)
        })
        .await?
        .with_context(|| format!("opening the log in {}", log_dir.display()))?;
        (storage.log(), Some(storage))
    } else {
        let dir = log_dir.clone();
        let log = tokio::task::spawn_blocking(move || log_core::Log::open(&dir, log_config))
            .await?
            .with_context(|| format!("opening the log in {}", log_dir.display()))?;
        (Arc::new(log), None)
    };
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

    let cluster = Cluster::start(&config, keyring, &addr, config.tls_cert_file.is_some()).await?;
    let Some(storage) = storage else {
        let commit_log = Arc::new(
            log_server::LocalLog::new(
                Arc::clone(&log),
                &config.node_name,
                &addr,
                config.server.in_flight_records_max,
            )
            .with_directory(cluster.directory()),
        );
        let node = Serving::new(&config, security, &cluster, log, handle, shutdown);
        return node
            .serve(listener, commit_log, axum::Router::new(), None, &addr)
            .await;
    };

    if !storage.is_initialized() {
        let expect = config.cluster.bootstrap_expect as usize;
        match cluster.bootstrap_voters(expect, &shutdown).await? {
            None => {
                tracing::info!("shut down while waiting to bootstrap");
                return close_log(&log).await;
            }
            Some(Start::Bootstrap(voters)) => storage.bootstrap(&voters)?,
            // Empty: the leader adds this node as a learner, then a voter.
            Some(Start::Join) => {}
        }
    } else {
        tracing::info!(
            voters = ?storage.conf_state().get_voters(),
            "raft state found; rejoining (never bootstrapping again)"
        );
    }
    let (inbox, inbox_receiver) = tokio::sync::mpsc::channel(RAFT_INBOX_MESSAGES);
    // With TLS, peers are dialled with this node's own certificate.
    let peer_tls = crate::raft_transport::PeerTls::load(
        match (
            &config.tls_client_ca_file,
            &config.tls_cert_file,
            &config.tls_key_file,
        ) {
            (Some(ca), Some(cert), Some(key)) => {
                Some((ca.as_path(), cert.as_path(), key.as_path()))
            }
            _ => None,
        },
    )
    .context("loading the node certificate for peer connections")?;
    let transport = crate::raft_transport::GrpcTransport::new(
        cluster.node_id(),
        cluster.rpc_addrs(),
        peer_tls.clone(),
    );
    let (replica, driver) = replicator::Replica::start(
        replicator::Config::new(cluster.node_id()),
        storage.clone(),
        transport,
        inbox_receiver,
    )?;
    if storage.conf_state().get_voters() == [cluster.node_id()] {
        // A cluster of one elects itself at once: serve once it leads, so
        // the first produce after the port opens is not refused.
        let mut status = replica.status();
        let leads = tokio::time::timeout(
            SOLE_VOTER_ELECTION_BOUND,
            status.wait_for(|s| {
                s.role == replicator::Role::Leader && s.applied_index >= s.commit_index
            }),
        )
        .await;
        if !matches!(leads, Ok(Ok(_))) {
            tracing::warn!(
                bound = ?SOLE_VOTER_ELECTION_BOUND,
                "the only voter did not become leader in time; serving anyway (writes are refused until it does)"
            );
        }
    }
    tokio::spawn(crate::membership::manage(
        replica.clone(),
        cluster.clone(),
        shutdown.clone(),
    ));
    let storage_handle = storage.clone();
    let commit_log = Arc::new(crate::replicated_log::ReplicatedLog::new(
        replica.clone(),
        storage,
        cluster.directory(),
        cluster.rpc_addrs(),
        config.log.record_bytes_max,
        crate::raft_transport::Forwarder::new(peer_tls),
    ));
    let node = Serving::new(&config, security, &cluster, log, handle, shutdown);
    let internal =
        crate::raft_transport::RaftService::router(inbox, replica.clone(), storage_handle).merge(
            crate::cluster_service::ClusterService::router(replica.clone(), cluster.clone()),
        );
    node.serve(
        listener,
        commit_log,
        internal,
        Some((replica, driver)),
        &addr,
    )
    .await
}

/// Longest a stopping leader waits for another voter to take over: raft
/// aborts a transfer after one election timeout (1-2 s by default).
const TRANSFER_BOUND: Duration = Duration::from_secs(3);

/// Raft messages queued for the local replica before more are dropped.
const RAFT_INBOX_MESSAGES: usize = 4096;

/// What serving a node needs, whichever log it serves.
struct Serving<'a> {
    config: &'a AgentConfig,
    security: &'a Security,
    cluster: &'a Cluster,
    log: Arc<log_core::Log>,
    handle: metrics_exporter_prometheus::PrometheusHandle,
    shutdown: CancellationToken,
}

impl<'a> Serving<'a> {
    fn new(
        config: &'a AgentConfig,
        security: &'a Security,
        cluster: &'a Cluster,
        log: Arc<log_core::Log>,
        handle: metrics_exporter_prometheus::PrometheusHandle,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            config,
            security,
            cluster,
            log,
            handle,
            shutdown,
        }
    }

    /// Serves `commit_log` (and `internal` routes) until shutdown, then
    /// stops in order: drain, gossip leave, the replica, the log.
    async fn serve<L: log_server::CommitLog>(
        self,
        listener: tokio::net::TcpListener,
        commit_log: Arc<L>,
        internal: axum::Router,
        replica: Option<(replicator::Replica, tokio::task::JoinHandle<()>)>,
        addr: &str,
    ) -> anyhow::Result<()> {
        let Self {
            config,
            security,
            cluster,
            log,
            handle,
            shutdown,
        } = self;
        tracing::info!(addr = %addr, security = %security.describe(), "listening for gRPC and HTTP");
        let tasks = TaskTracker::new();
        if replica.is_none() {
            tasks.spawn(enforce_retention(Arc::clone(&log), shutdown.clone()));
        }
        let render =
            crate::metrics::render(handle.clone(), Arc::clone(&log), Arc::clone(&commit_log));
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
        // A leader hands leadership over before it stops serving, so a
        // planned stop (a rolling restart) costs no election timeout.
        let serving = CancellationToken::new();
        {
            let (shutdown, serving) = (shutdown.clone(), serving.clone());
            let replica = replica.as_ref().map(|(replica, _)| replica.clone());
            tokio::spawn(async move {
                shutdown.cancelled().await;
                if let Some(replica) = replica
                    && let Some(to) = replica.transfer_leadership(TRANSFER_BOUND).await
                {
                    tracing::info!(to, "leadership handed over");
                }
                serving.cancel();
            });
        }
        let served = log_server::serve_with_internal(
            listener,
            Arc::clone(&commit_log),
            config.server_config(),
            serving,
            Some(render),
            security.access(),
            internal,
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
        if let Some((replica, driver)) = replica {
            replica.stop().await;
            let _ended = driver.await;
            tracing::info!("raft replica stopped; commit index persisted");
        }
        drop(commit_log);
        let closed = close_log(&log).await;
        served.context("serving")?;
        closed
    }
}

/// Flushes and closes the log, so the next start needs no recovery.
async fn close_log(log: &Arc<log_core::Log>) -> anyhow::Result<()> {
    let closed = {
        let log = Arc::clone(log);
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
    closed.context("closing the log")
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
