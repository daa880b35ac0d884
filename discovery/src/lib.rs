//! Cluster membership for proglog: SWIM gossip over UDP with the foca crate.
//!
//! One task ([`Discovery::start`]) owns the sans-IO `Foca` value, the
//! transport, one ordered timer queue and a bounded command channel. A
//! cloneable [`Discovery`] handle talks to it; the members it knows are
//! published on a `watch` ([`Discovery::members`]) and changes go to one
//! subscriber as [`MemberEvent`]s over a bounded channel.
//!
//! Every packet travels in an [`envelope`]: sealed with XChaCha20-Poly1305
//! under a [`Keyring`] when a key is configured, or marked plaintext.
//! Packets that do not open are dropped and counted; they never reach foca.
//!
//! A member's identity ([`Member`]) is its stable node id (derived from the
//! node name and kept in the data directory, see [`NodeIdentity`]), its
//! name, gossip and RPC addresses and an incarnation that is newer after
//! every restart, so a restarted node replaces its old self everywhere.
//!
//! This crate depends on no other workspace crate.

mod config;
mod driver;
pub mod envelope;
mod error;
mod handle;
mod identity;
mod keyring;
mod meta;
mod metrics;
mod node_identity;
pub mod transport;

pub use config::Config;
pub use error::{Error, Result};
pub use handle::{Discovery, MemberEvent, MemberInfo, MemberState};
pub use identity::Member;
pub use keyring::{KEY_BYTES, Keyring};
pub use meta::MemberMeta;
pub use node_identity::{NodeIdentity, node_id_from_name};
