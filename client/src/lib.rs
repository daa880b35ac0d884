//! A cluster-aware Rust client for proglog.
//!
//! ```no_run
//! # async fn run() -> proglog_client::Result<()> {
//! use futures_util::StreamExt as _;
//! use proglog_client::Client;
//!
//! let client = Client::connect(["n1:8400", "n2:8400"]).await?;
//! let offset = client.produce("hello").await?;
//! let record = client.consume(offset).await?;
//! assert_eq!(record.value, "hello");
//!
//! let mut tail = client.follow(offset);
//! while let Some(record) = tail.next().await {
//!     println!("{}", record?.offset);
//! }
//! # Ok(()) }
//! ```
//!
//! What it does for you:
//!
//! - **Discovery.** It asks a seed for `GetServers` and from then on knows
//!   every node, their addresses and the leader. It asks again when a node
//!   says it is not the leader or is unavailable, when a connection breaks,
//!   and every [`refresh_interval`](ClientBuilder::refresh_interval).
//!   There is one HTTP/2 channel per node, dialled on first use.
//! - **Routing.** Produce goes to the leader (to any node when none is
//!   known: followers forward). Reads go by the [`ReadPreference`]:
//!   followers by default, or the leader, any node, the nearest, or one
//!   named node.
//! - **Retries.** Failures that another attempt may fix (no leader, a node
//!   shutting down or unreachable, overload, a timeout) are retried on
//!   another node after an exponential, jittered, bounded backoff
//!   ([`RetryPolicy`]).
//! - **Idempotent produce.** Produce requests carry a random producer id
//!   and sequence numbers, so the cluster recognises a retried record and
//!   answers with its original offset instead of appending it twice
//!   ([`Idempotence`]).
//! - **Pipelining.** A [`Producer`] keeps many records in flight on one
//!   stream, answers them in order, and resends what was unacknowledged
//!   after a leader change.
//! - **Following.** [`Client::follow`] is a `Stream` of records that moves
//!   to another node when its node dies and resumes after the last record
//!   it delivered.
//! - **One error type**, [`Error`], instead of raw gRPC statuses.

mod client;
mod cluster;
mod config;
pub mod connector;
mod error;
mod follow;
mod producer;
mod retry;
mod routing;
mod tls;

pub use crate::client::{Batch, Client, LogInfo, Record};
pub use crate::cluster::Server;
pub use crate::config::{ClientBuilder, Idempotence};
pub use crate::error::{Error, LOWEST_OFFSET_KEY, NEXT_OFFSET_KEY, Result, chain};
pub use crate::follow::Follow;
pub use crate::producer::{Ack, Producer};
pub use crate::retry::RetryPolicy;
pub use crate::routing::ReadPreference;
pub use crate::tls::TlsConfig;
