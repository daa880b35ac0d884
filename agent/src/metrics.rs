//! The process's Prometheus recorder and what it renders at `/metrics`.
//!
//! Besides what log-core and log-server record through the `metrics`
//! facade, each scrape refreshes the log gauges (`proglog_log_lowest_offset`,
//! `proglog_log_highest_offset`, `proglog_log_next_offset`,
//! `proglog_log_commit_offset`, `proglog_log_size_bytes`,
//! `proglog_log_segments`), and `proglog_build_info{version,git_commit}` is 1.
//! Names reserved for the cluster: `proglog_raft_term`,
//! `proglog_raft_commit_index`, `proglog_raft_applied_index`,
//! `proglog_raft_leader_changes_total`, `proglog_gossip_members`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use log_server::{CommitLog, MetricsRender};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// The git commit the binary was built from.
pub const GIT_COMMIT: &str = env!("BUILD_GIT_COMMIT");

/// Latency buckets, seconds: 50 µs to 10 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];
/// Records-per-fsync buckets.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0,
];
/// How often histogram buckets are drained when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global Prometheus recorder once per process and returns its
/// handle (later calls, e.g. several nodes in one test process, share it).
pub fn recorder() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full("proglog_log_fsync_batch_records".into()), BATCH_BUCKETS))
                .expect("bucket lists are non-empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            metrics::gauge!("proglog_build_info", "version" => env!("CARGO_PKG_VERSION"), "git_commit" => GIT_COMMIT)
                .set(1.0);
            handle
        })
        .clone()
}

/// The `/metrics` renderer for a node: refreshes the log gauges, then renders.
pub fn render(
    handle: PrometheusHandle,
    log: Arc<log_core::Log>,
    commit_log: Arc<impl CommitLog>,
) -> MetricsRender {
    Arc::new(move || {
        let info = commit_log.info();
        #[allow(clippy::cast_precision_loss)]
        // gauges are f64; offsets beyond 2^53 lose only precision
        {
            metrics::gauge!("proglog_log_lowest_offset").set(info.lowest_offset as f64);
            metrics::gauge!("proglog_log_next_offset").set(info.next_offset as f64);
            metrics::gauge!("proglog_log_commit_offset").set(info.commit_offset as f64);
            if let Some(highest) = info.highest_offset() {
                metrics::gauge!("proglog_log_highest_offset").set(highest as f64);
            }
            metrics::gauge!("proglog_log_size_bytes").set(log.size_bytes() as f64);
            metrics::gauge!("proglog_log_segments").set(log.segment_count() as f64);
        }
        handle.render()
    })
}

/// Drains histogram buckets periodically until `shutdown`.
pub async fn upkeep(handle: PrometheusHandle, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(UPKEEP_INTERVAL) => handle.run_upkeep(),
            () = shutdown.cancelled() => return,
        }
    }
}
