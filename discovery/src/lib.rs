//! Cluster membership for proglog.
//!
//! This crate will own SWIM gossip over UDP with the foca crate: one task that
//! owns the `Foca` value, its socket, timer queue and command channel, and
//! publishes `Joined`/`Left`/`Failed` member events (id and RPC address) to the
//! agent. It depends on no other workspace crate.
//!
//! It is an empty skeleton until the cluster issue.
