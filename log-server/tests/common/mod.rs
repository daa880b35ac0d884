//! A harness that serves a real log on 127.0.0.1:0 in this process.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use log_server::{LocalLog, ServerConfig};
use proto::v1::log_client::LogClient;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Longest any awaited condition may take before the test fails; far above
/// what it takes on a loaded 2-core machine.
pub const CONDITION_TIMEOUT: Duration = Duration::from_secs(10);

/// Records in flight in appends, unless a test picks a limit.
pub const IN_FLIGHT_RECORDS_MAX: u32 = 10_000;

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub log: Arc<log_core::Log>,
    pub served: Option<JoinHandle<std::io::Result<()>>>,
}

pub fn log_config() -> log_core::Config {
    log_core::Config {
        record_bytes_max: 1 << 16,
        fsync: log_core::FsyncPolicy::Never,
        ..log_core::Config::default()
    }
}

impl TestServer {
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(
            dir,
            log_config(),
            ServerConfig {
                drain_timeout_ms: 2_000,
                ..ServerConfig::default()
            },
        )
        .await
    }

    pub async fn start_with(
        dir: &Path,
        log_config: log_core::Config,
        config: ServerConfig,
    ) -> Self {
        Self::start_with_access(dir, log_config, config, log_server::Access::open()).await
    }

    pub async fn start_with_access(
        dir: &Path,
        log_config: log_core::Config,
        config: ServerConfig,
        access: log_server::Access,
    ) -> Self {
        Self::start_full(dir, log_config, config, access, IN_FLIGHT_RECORDS_MAX).await
    }

    /// As [`start_with_access`](Self::start_with_access), with the limit on
    /// records in flight in appends (which also caps a batch) chosen.
    pub async fn start_full(
        dir: &Path,
        log_config: log_core::Config,
        config: ServerConfig,
        access: log_server::Access,
        in_flight_records_max: u32,
    ) -> Self {
        let log = Arc::new(log_core::Log::open(dir, log_config).expect("open log"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let commit_log = Arc::new(LocalLog::new(
            Arc::clone(&log),
            "test-node",
            &addr.to_string(),
            in_flight_records_max,
        ));
        let shutdown = CancellationToken::new();
        let served = tokio::spawn(log_server::serve(
            listener,
            commit_log,
            config,
            shutdown.clone(),
            None,
            access,
        ));
        Self {
            addr,
            shutdown,
            log,
            served: Some(served),
        }
    }

    pub async fn channel(&self) -> Channel {
        let endpoint = Channel::from_shared(format!("http://{}", self.addr)).expect("endpoint");
        endpoint.connect().await.expect("connect")
    }

    pub async fn client(&self) -> LogClient<Channel> {
        LogClient::new(self.channel().await)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Shuts down, waits for the server, closes the log.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let served = self.served.take().expect("running");
        tokio::time::timeout(CONDITION_TIMEOUT, served)
            .await
            .expect("server stopped in time")
            .expect("server task")
            .expect("server result");
        self.log.close().expect("close log");
    }
}

pub fn record(value: &[u8]) -> proto::v1::Record {
    proto::v1::Record {
        value: value.to_vec().into(),
        ..Default::default()
    }
}

/// Holds the only blocking thread of a runtime built with
/// `max_blocking_threads(1)` until released, so whatever the server runs on
/// the blocking pool (appends under `always`, fsync waits under `interval`)
/// waits, with its request in flight.
pub struct BlockingPoolHeld {
    release: Option<std::sync::mpsc::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl BlockingPoolHeld {
    pub async fn hold() -> Self {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (held, is_held) = tokio::sync::oneshot::channel();
        let task = tokio::task::spawn_blocking(move || {
            let _ = held.send(());
            let _ = released.recv();
        });
        tokio::time::timeout(CONDITION_TIMEOUT, is_held)
            .await
            .expect("the blocking thread was taken in time")
            .expect("blocker alive");
        Self {
            release: Some(release),
            task: Some(task),
        }
    }

    pub async fn release(mut self) {
        drop(self.release.take());
        let task = self.task.take().expect("held");
        tokio::time::timeout(CONDITION_TIMEOUT, task)
            .await
            .expect("the blocker ended")
            .expect("blocker");
    }
}
