//! Replication for proglog.
//!
//! This crate will own Raft (tikv's `raft` crate): `raft::Storage` implemented
//! directly on a `log-core` log (Raft index = store offset, term and entry kind
//! in the frame header), the atomically replaced hard-state file, the driver
//! task that owns the `RawNode`, and the internal transport between nodes.
//!
//! It is an empty skeleton until the replication issue.
