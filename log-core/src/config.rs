//! Log configuration and its validation.

use crate::index::ENTRY_BYTES;
use crate::record::FRAME_OVERHEAD_MAX;

/// When appended records are forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fdatasync` before every append returns; concurrent appenders share one
    /// fsync (group commit).
    Always,
    /// Sync in the background every `interval_ms`, and inline once
    /// `bytes` have been appended since the last sync. An append returns before
    /// its sync; a crash loses at most that window.
    Interval {
        /// Milliseconds between background syncs (at least 1).
        interval_ms: u64,
        /// Appended bytes that force a sync (at least 1).
        bytes: u64,
    },
    /// Never sync explicitly; leave it to the operating system. Records are
    /// written to the OS when the write buffer fills and on close (readers
    /// copy unwritten records from the buffer).
    Never,
}

/// Which old segments are deleted. Only whole, sealed segments are dropped;
/// the active segment is never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Drop the oldest segments while the log is larger than this many bytes.
    pub bytes_max: Option<u64>,
    /// Drop segments whose newest record is older than this many milliseconds.
    pub age_max_ms: Option<u64>,
}

/// Configuration of a [`Log`](crate::Log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Largest record payload accepted, in bytes.
    pub record_bytes_max: u64,
    /// A segment's store rolls before it would exceed this many bytes.
    pub segment_bytes_max: u64,
    /// A segment rolls before its index would exceed this many entries; the
    /// index file is pre-sized to `index_entries_max * 8` bytes.
    pub index_entries_max: u64,
    /// Durability of appends.
    pub fsync: FsyncPolicy,
    /// Deletion of old segments.
    pub retention: Retention,
    /// Appended bytes buffered in the process before they are written to the
    /// OS. Larger batches of small records need fewer system calls; with
    /// `never`, a process crash can lose what is buffered. 0 writes through.
    pub write_buffer_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            record_bytes_max: 1 << 20,
            segment_bytes_max: 64 << 20,
            index_entries_max: 1 << 20,
            fsync: FsyncPolicy::Always,
            retention: Retention::default(),
            write_buffer_bytes: 64 << 10,
        }
    }
}

/// Largest supported segment: index entries hold 32-bit store positions.
pub const SEGMENT_BYTES_LIMIT: u64 = u32::MAX as u64;
/// Largest supported index: keeps the pre-sized index file at most 1 GiB.
pub const INDEX_ENTRIES_LIMIT: u64 = (1 << 30) / ENTRY_BYTES as u64;

/// A configuration value that cannot work, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    /// The offending field, as named in [`Config`].
    pub field: &'static str,
    /// Why it was rejected.
    pub reason: String,
}

fn reject(field: &'static str, reason: impl Into<String>) -> Result<(), ConfigError> {
    Err(ConfigError {
        field,
        reason: reason.into(),
    })
}

impl Config {
    /// Checks every field and how they relate.
    ///
    /// # Errors
    /// The first field that is out of range, named.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let header = FRAME_OVERHEAD_MAX as u64;
        if self.record_bytes_max == 0 || self.record_bytes_max > u64::from(u32::MAX) {
            return reject("record_bytes_max", format!("must be in 1..={}", u32::MAX));
        }
        if self.segment_bytes_max > SEGMENT_BYTES_LIMIT {
            return reject(
                "segment_bytes_max",
                format!("must be at most {SEGMENT_BYTES_LIMIT}"),
            );
        }
        if self.segment_bytes_max < self.record_bytes_max + header {
            return reject(
                "segment_bytes_max",
                format!(
                    "must hold one largest record: at least record_bytes_max + {header} = {}",
                    self.record_bytes_max + header
                ),
            );
        }
        if self.index_entries_max == 0 || self.index_entries_max > INDEX_ENTRIES_LIMIT {
            return reject(
                "index_entries_max",
                format!("must be in 1..={INDEX_ENTRIES_LIMIT}"),
            );
        }
        if let FsyncPolicy::Interval { interval_ms, bytes } = self.fsync {
            if interval_ms == 0 {
                return reject("fsync.interval_ms", "must be at least 1");
            }
            if bytes == 0 {
                return reject("fsync.bytes", "must be at least 1");
            }
        }
        if self.retention.bytes_max == Some(0) {
            return reject("retention.bytes_max", "must be at least 1 when set");
        }
        if self.retention.age_max_ms == Some(0) {
            return reject("retention.age_max_ms", "must be at least 1 when set");
        }
        if self.write_buffer_bytes > 64 << 20 {
            return reject("write_buffer_bytes", "must be at most 64 MiB");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(Config, &str)> = vec![
            (
                Config {
                    record_bytes_max: 0,
                    ..Config::default()
                },
                "record_bytes_max",
            ),
            (
                Config {
                    segment_bytes_max: 100,
                    ..Config::default()
                },
                "segment_bytes_max",
            ),
            (
                Config {
                    segment_bytes_max: 1 << 33,
                    ..Config::default()
                },
                "segment_bytes_max",
            ),
            (
                Config {
                    index_entries_max: 0,
                    ..Config::default()
                },
                "index_entries_max",
            ),
            (
                Config {
                    fsync: FsyncPolicy::Interval {
                        interval_ms: 0,
                        bytes: 1,
                    },
                    ..Config::default()
                },
                "fsync.interval_ms",
            ),
            (
                Config {
                    fsync: FsyncPolicy::Interval {
                        interval_ms: 1,
                        bytes: 0,
                    },
                    ..Config::default()
                },
                "fsync.bytes",
            ),
            (
                Config {
                    retention: Retention {
                        bytes_max: Some(0),
                        age_max_ms: None,
                    },
                    ..Config::default()
                },
                "retention.bytes_max",
            ),
            (
                Config {
                    retention: Retention {
                        bytes_max: None,
                        age_max_ms: Some(0),
                    },
                    ..Config::default()
                },
                "retention.age_max_ms",
            ),
        ];
        for (config, field) in cases {
            assert_eq!(config.validate().map_err(|e| e.field), Err(field));
        }
    }
}
