//! Replication for proglog: Raft (tikv's raft-rs) whose log *is* the
//! commit log.
//!
//! [`LogStorage`] implements `raft::Storage` directly on a log-core log:
//! Raft index = record offset, the entry's term in the frame, so a client
//! record's bytes are written once per replica ([`entry`] has the mapping).
//! Hard state, conf state and the snapshot point are in a small checksummed
//! file replaced atomically ([`state_file`]). One task per replica owns the
//! `RawNode` ([`Replica`]) and handles `Ready` in raft-rs's documented
//! order; messages go through a [`Transport`].
//!
//! Status: the storage, the driver and an in-memory transport with cuts
//! are built and tested as in-process clusters. Not yet: the agent's gRPC
//! transport and wiring (bootstrap from gossip, learners, forwarding),
//! dense user offsets over non-data entries, snapshots beyond the
//! metadata-only point, and leadership transfer.
//!
//! This crate depends only on log-core among the workspace crates.

mod config;
pub mod entry;
mod error;
mod logger;
pub mod producers;
mod replica;
pub mod state_file;
mod storage;
pub mod transport;

pub use config::Config;
pub use error::{Error, Result};
pub use producers::ProducersConfig;
pub use replica::{MembershipChange, PeerProgress, Proposed, Replica, Role, Status};
pub use storage::LogStorage;
pub use transport::{MemoryRouter, MemoryTransport, Transport};
