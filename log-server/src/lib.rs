//! The public API of a proglog node.
//!
//! One port serves both the tonic `proglog.v1.Log` service (with gRPC health
//! and reflection) and axum HTTP/JSON routes. Both are written against the
//! [`CommitLog`] trait, so the replicated log can replace the local one;
//! [`LocalLog`] is the single-node implementation over a `log-core` log.
//! Domain errors map to gRPC status codes and HTTP responses in one module,
//! [`error`].
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! let log = log_core::Log::open("data", log_core::Config::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?.to_string();
//! let commit_log = Arc::new(log_server::LocalLog::new(Arc::new(log), "node-1", &addr, 65_536));
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! log_server::serve(listener, commit_log, log_server::ServerConfig::default(), shutdown, None, log_server::Access::open()).await?;
//! # Ok(())
//! # }
//! ```

pub mod access;
mod commit_log;
mod config;
mod connections;
mod edge;
pub mod error;
mod follow;
mod grpc;
mod http;
mod local;
pub mod metrics;
mod probes;
mod produce;
mod server;
mod trace;
pub mod transport;

pub use access::{Access, AccessPolicy, Action, AllowAll};
pub use commit_log::{
    Appended, CommitLog, LogInfo, ServerDirectory, ServerInfo, ServerRole, ServerState,
    no_producer_table,
};
pub use config::ServerConfig;
pub use error::{Error, Result};
pub use grpc::LogService;
pub use http::router as http_router;
pub use local::LocalLog;
pub use metrics::{Instrumented, MetricsRender};
pub use server::{serve, serve_metrics, serve_with_internal};
pub use transport::{Caller, Handshake, Plaintext};
