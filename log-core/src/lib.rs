//! log-core: proglog's crash-safe segmented log engine.
//!
//! A [`Log`] is a directory of segments. Each segment is a store file of
//! checksummed frames and a memory-mapped index from relative offset to store
//! position. Records get dense offsets; the newest segment takes appends and
//! rolls before it would overflow; old segments are dropped whole by retention
//! or [`Log::truncate_prefix`]; [`Log::truncate_suffix`] removes a suffix for
//! Raft conflict resolution. Appends are durable according to the
//! [`FsyncPolicy`], with group commit; recovery on open trusts no file.
//!
//! ```
//! # fn main() -> log_core::Result<()> {
//! let dir = tempfile::tempdir().expect("tempdir");
//! let log = log_core::Log::open(dir.path(), log_core::Config::default())?;
//! let offset = log.append(&log_core::Record::new(b"hello".to_vec()))?;
//! assert_eq!(log.read(offset)?.value, &b"hello"[..]);
//! log.close()?;
//! # Ok(())
//! # }
//! ```
//!
//! The byte layout of the files is in `docs/storage-format.md`.
//!
//! Metrics go through the `metrics` facade (no-ops unless the process
//! installs a recorder before opening the log; handles are registered at
//! open, off the append path): `proglog_log_append_duration_seconds` (write plus the sync the
//! policy asks for), `proglog_log_fsync_duration_seconds`,
//! `proglog_log_fsyncs_total` and `proglog_log_fsync_batch_records` (records
//! made durable by one fsync: the group-commit batch size).

mod config;
mod error;
mod group_commit;
mod index;
mod log;
mod mmap;
mod reader;
mod record;
mod segment;
mod store;
#[cfg(test)]
mod testing;

pub use config::{
    Config, ConfigError, FsyncPolicy, INDEX_ENTRIES_LIMIT, Retention, SEGMENT_BYTES_LIMIT,
};
pub use error::{Error, Result};
pub use index::ENTRY_BYTES as INDEX_ENTRY_BYTES;
pub use log::{Deferred, Log, OFFSET_LIMIT, SyncTicket};
pub use reader::LogReader;
pub use record::{
    FRAME_HEADER_BYTES, FRAME_OVERHEAD_MAX, FRAME_VERSION, FrameError, FrameMeta,
    PRODUCER_HEADER_BYTES, Producer, Record, RecordKind, check_frame, decode_frame, encode_frame,
    now_ms,
};
