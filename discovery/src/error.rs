//! The crate's one error type.

use std::path::PathBuf;

/// What can go wrong starting or configuring discovery.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is unusable; `key` names it.
    #[error("{key}: {reason}")]
    Config {
        /// The configuration key at fault.
        key: &'static str,
        /// Why it is unusable.
        reason: String,
    },
    /// A key file is missing, unreadable or malformed.
    #[error("gossip key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The node identity files in the data directory cannot be used.
    #[error("node identity in {path}: {reason}")]
    Identity {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The gossip socket cannot be bound or used.
    #[error("gossip socket {addr}: {source}")]
    Socket {
        /// The address.
        addr: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The discovery task has stopped.
    #[error("the discovery task has stopped")]
    Stopped,
}

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
