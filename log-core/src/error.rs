//! The one error type of log-core.

use std::io;
use std::path::PathBuf;

/// `Result` with log-core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a log operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The offset is below the first retained record or above the last one.
    #[error(
        "offset {offset} is out of range: the log holds offsets {lowest}..{next} (next is exclusive)"
    )]
    OutOfRange {
        /// The offset asked for.
        offset: u64,
        /// The lowest retained offset.
        lowest: u64,
        /// The offset the next append will get.
        next: u64,
    },
    /// A record's payload is larger than [`Config::record_bytes_max`](crate::Config).
    #[error("record of {size} bytes exceeds the limit of {limit} bytes")]
    RecordTooLarge {
        /// Payload bytes of the rejected record.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// An append at an expected offset found the log elsewhere.
    #[error("append expected offset {expected} but the log's next offset is {next}")]
    OffsetMismatch {
        /// The offset the caller expected its first record to get.
        expected: u64,
        /// The offset the log would have given it.
        next: u64,
    },
    /// A file holds bytes that are not what the log wrote. Below the active
    /// segment's tail this is never repaired silently.
    #[error("corrupt data in {} at byte {position}: {reason}", path.display())]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte position in that file.
        position: u64,
        /// What was wrong.
        reason: String,
    },
    /// An operating-system I/O error. The cause is part of the message and
    /// not also a `source()`, so a chain printer (`{:#}`) shows it once.
    #[error("I/O error on {}: {cause}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        cause: io::Error,
    },
    /// An earlier write or fsync failed, so what is on disk is unknown; the log
    /// refuses writes until it is reopened and recovered.
    #[error("log refuses writes after an earlier failure ({cause}); reopen it to recover")]
    Failed {
        /// The first failure.
        cause: String,
    },
    /// Another process (or another `Log` in this one) has the directory open.
    #[error("log directory {} is locked by another open log", path.display())]
    Locked {
        /// The log directory.
        path: PathBuf,
    },
    /// The configuration is not usable.
    #[error("invalid log config: {0}")]
    Config(#[from] crate::ConfigError),
    /// The log has been closed.
    #[error("log is closed")]
    Closed,
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            path: path.into(),
            cause: source,
        }
    }

    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        position: u64,
        reason: impl Into<String>,
    ) -> Self {
        Self::Corrupt {
            path: path.into(),
            position,
            reason: reason.into(),
        }
    }
}

/// Attaches a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
