//! raft-rs's `Storage` directly on a log-core log: Raft index = record
//! offset, so the bytes of a client's record are written once per replica.
//!
//! Terms of every entry in the log are kept in memory (8 bytes an entry),
//! because raft asks for them constantly and must not read payloads to get
//! them. Hard state, conf state and the snapshot point live in the
//! [`StateFile`]. Writes are fail-stop: raft-rs panics on storage errors
//! other than `Compacted`/`Unavailable`, so the driver stops the replica on
//! any write error instead, and a restart recovers.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use log_core::Log;
use raft::prelude::{ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

use crate::entry;
use crate::error::{Error, Result};
use crate::state_file::{RaftMeta, StateFile};

/// The term of a new cluster's first entries (its voters).
const BOOTSTRAP_TERM: u64 = 1;

/// Records read at once while rebuilding the term cache on open.
const OPEN_READ_RECORDS: u64 = 4096;

/// A replica's Raft log and metadata; cheap to clone (one shared state).
#[derive(Clone)]
pub struct LogStorage {
    inner: Arc<RwLock<Inner>>,
}

struct Inner {
    log: Arc<Log>,
    state: StateFile,
    meta: RaftMeta,
    /// Term of every index from `first_index()` to `last_index()`.
    terms: VecDeque<u64>,
    /// Indexes of the non-data entries in the log, ascending: what turns
    /// Raft indexes into dense user offsets.
    internal: Vec<u64>,
}

impl Inner {
    fn first_index(&self) -> u64 {
        self.meta.snapshot_index + 1
    }

    fn last_index(&self) -> u64 {
        self.meta.snapshot_index + self.terms.len() as u64
    }
}

impl std::fmt::Debug for LogStorage {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.read();
        formatter
            .debug_struct("LogStorage")
            .field("dir", &inner.log.dir())
            .field("first_index", &inner.first_index())
            .field("last_index", &inner.last_index())
            .finish_non_exhaustive()
    }
}

impl LogStorage {
    /// Opens (or creates) the replica's storage in `dir`: the log in
    /// `dir/log`, the metadata in `dir/raft-state`.
    ///
    /// # Errors
    /// The log cannot be opened, the state file is damaged, or the log does
    /// not line up with the state (a gap before the snapshot point).
    pub fn open(dir: &Path, config: log_core::Config) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::StateFile {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let log = Arc::new(Log::open(dir.join("log"), config)?);
        let state = StateFile::in_dir(dir);
        let meta = state.load()?.unwrap_or_default();
        let first = meta.snapshot_index + 1;
        if log.highest_offset().is_none() && log.next_offset() != first {
            // An empty log starts right after the snapshot point (index 1
            // for a new replica: Raft has no entry 0).
            log.reset(first)?;
        }
        if log.lowest_offset() > first {
            return Err(Error::StateFile {
                path: dir.join("raft-state"),
                reason: format!(
                    "the log starts at index {} but the state file's snapshot ends at {}: entries are missing",
                    log.lowest_offset(),
                    meta.snapshot_index
                ),
            });
        }
        let mut terms = VecDeque::new();
        let mut internal = Vec::new();
        let mut next = first;
        while next < log.next_offset() {
            let batch = log.read_batch(next, u64::MAX, OPEN_READ_RECORDS)?;
            if batch.is_empty() {
                break;
            }
            for record in &batch {
                terms.push_back(record.term);
                if record.kind != log_core::RecordKind::Data {
                    internal.push(record.offset);
                }
            }
            next += batch.len() as u64;
        }
        Ok(Self {
            inner: Arc::new(RwLock::new(Inner {
                log,
                state,
                meta,
                terms,
                internal,
            })),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The log under the replica (readers of committed data use it).
    pub fn log(&self) -> Arc<Log> {
        Arc::clone(&self.read().log)
    }

    /// The replica's directory: the log is `log/` in it, beside
    /// `raft-state` and the producer table's checkpoint.
    pub fn dir(&self) -> std::path::PathBuf {
        self.read()
            .log
            .dir()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// Whether this replica has Raft state (a conf state with voters): a
    /// node that has it must never bootstrap again.
    pub fn is_initialized(&self) -> bool {
        let inner = self.read();
        !inner.meta.conf_state.get_voters().is_empty()
            || !inner.meta.conf_state.get_learners().is_empty()
    }

    /// The persisted hard state.
    pub fn hard_state(&self) -> HardState {
        self.read().meta.hard_state.clone()
    }

    /// The persisted conf state.
    pub fn conf_state(&self) -> ConfState {
        self.read().meta.conf_state.clone()
    }

    /// Sets the first voters of a new cluster (the same set on every node).
    ///
    /// # Errors
    /// The replica already has Raft state, or the state cannot be stored.
    pub fn bootstrap(&self, voters: &[u64]) -> Result<()> {
        if self.is_initialized() {
            return Err(Error::StateFile {
                path: self.read().state_path(),
                reason: "this replica already has Raft state; it never bootstraps again".into(),
            });
        }
        let mut inner = self.write();
        if inner.log.highest_offset().is_some() {
            return Err(Error::StateFile {
                path: inner.state_path(),
                reason: "the log holds entries but there is no Raft state; refusing to bootstrap over them".into(),
            });
        }
        // The first voters are written as the first entries, one AddNode
        // per voter at term 1, identical on every node: a node added later
        // replays them from the log and so learns the voters it could not
        // learn otherwise. They count as committed and applied.
        let entries: Vec<Entry> = voters
            .iter()
            .zip(1..)
            .map(|(&voter, index)| {
                let mut change = ConfChange::default();
                change.set_change_type(ConfChangeType::AddNode);
                change.set_node_id(voter);
                let mut entry = Entry::default();
                entry.set_entry_type(EntryType::EntryConfChange);
                entry.set_index(index);
                entry.set_term(BOOTSTRAP_TERM);
                entry.set_data(
                    protobuf::Message::write_to_bytes(&change)
                        .unwrap_or_default()
                        .into(),
                );
                entry
            })
            .collect();
        let records: Vec<_> = entries.iter().map(entry::to_record).collect();
        inner.log.append_batch_at(1, &records)?;
        inner.log.sync()?;
        inner.terms.extend(entries.iter().map(Entry::get_term));
        inner.internal.extend(entries.iter().map(Entry::get_index));
        inner.meta.conf_state = ConfState::from((voters.to_vec(), Vec::<u64>::new()));
        inner.meta.hard_state.set_term(BOOTSTRAP_TERM);
        inner.meta.hard_state.set_commit(entries.len() as u64);
        inner.state.store(&inner.meta)?;
        Ok(())
    }

    /// Appends entries from a Ready, first cutting any conflicting suffix
    /// (entries at or after the first new index).
    ///
    /// # Errors
    /// A gap before the first entry, or a log error (fatal for the replica).
    pub fn append(&self, entries: &[Entry]) -> Result<()> {
        let Some(first_new) = entries.first().map(Entry::get_index) else {
            return Ok(());
        };
        let mut inner = self.write();
        if first_new < inner.first_index() {
            return Err(Error::StateFile {
                path: inner.state_path(),
                reason: format!(
                    "asked to append at {first_new}, before the first index {}",
                    inner.first_index()
                ),
            });
        }
        if first_new <= inner.last_index() {
            // Log matching: the new leader's entries replace ours from here.
            inner.log.truncate_suffix(first_new - 1)?;
            let keep = (first_new - inner.first_index()) as usize;
            inner.terms.truncate(keep);
            let cut = inner.internal.partition_point(|&index| index < first_new);
            inner.internal.truncate(cut);
        }
        if first_new != inner.last_index() + 1 {
            return Err(Error::StateFile {
                path: inner.state_path(),
                reason: format!(
                    "asked to append at {first_new} after a log ending at {}",
                    inner.last_index()
                ),
            });
        }
        let records: Vec<_> = entries.iter().map(entry::to_record).collect();
        inner.log.append_batch_at(first_new, &records)?;
        inner.terms.extend(entries.iter().map(Entry::get_term));
        inner.internal.extend(
            entries
                .iter()
                .filter(|entry| !entry::is_data(entry))
                .map(Entry::get_index),
        );
        Ok(())
    }

    /// Persists a new hard state.
    ///
    /// # Errors
    /// The state file cannot be written.
    pub fn set_hard_state(&self, hard_state: &HardState) -> Result<()> {
        let mut inner = self.write();
        let old = &inner.meta.hard_state;
        // Term and vote must be durable before any message that depends on
        // them leaves; a commit-only change need not be (see set_commit).
        let must_sync =
            old.get_term() != hard_state.get_term() || old.get_vote() != hard_state.get_vote();
        inner.meta.hard_state = hard_state.clone();
        if must_sync {
            inner.state.store(&inner.meta)?;
        }
        Ok(())
    }

    /// Notes a new commit index (from a LightReady) without an fsync: the
    /// commit index is recovered from the leader after a crash, so it is
    /// written with the next term or vote change and on a clean stop
    /// ([`set_commit_durably`](Self::set_commit_durably)).
    pub fn set_commit(&self, commit: u64) {
        let mut inner = self.write();
        let commit = commit.min(inner.last_index());
        inner.meta.hard_state.set_commit(commit);
    }

    /// Persists the commit index now (on a clean stop).
    ///
    /// # Errors
    /// The state file cannot be written.
    pub fn set_commit_durably(&self, commit: u64) -> Result<()> {
        self.set_commit(commit);
        let inner = self.read();
        inner.state.store(&inner.meta)
    }

    /// Persists the conf state an applied change produced.
    ///
    /// # Errors
    /// The state file cannot be written.
    pub fn set_conf_state(&self, conf_state: &ConfState) -> Result<()> {
        let mut inner = self.write();
        inner.meta.conf_state = conf_state.clone();
        inner.state.store(&inner.meta)
    }

    /// Installs a leader's snapshot: metadata only (data below it was
    /// deleted by retention everywhere), so the log restarts empty right
    /// after its index.
    ///
    /// # Errors
    /// The log cannot be reset or the state stored.
    pub fn apply_snapshot(&self, snapshot: &Snapshot) -> Result<()> {
        let metadata = snapshot.get_metadata();
        let mut inner = self.write();
        // State first: if a crash follows, the open lines an empty or
        // longer log up with the new snapshot point.
        inner.meta.snapshot_index = metadata.get_index();
        inner.meta.snapshot_term = metadata.get_term();
        inner.meta.conf_state = metadata.get_conf_state().clone();
        inner.meta.snapshot_conf_state = metadata.get_conf_state().clone();
        let commit = inner.meta.hard_state.get_commit().max(metadata.get_index());
        inner.meta.hard_state.set_commit(commit);
        inner.state.store(&inner.meta)?;
        inner.log.reset(metadata.get_index() + 1)?;
        inner.terms.clear();
        inner.internal.clear();
        Ok(())
    }
}

impl LogStorage {
    /// The user offset of the first data entry at or after Raft `index`:
    /// the number of data entries before it. Offsets stay dense whatever
    /// Raft's own entries (a new leader's empty entry, conf changes) do.
    pub fn user_offset(&self, index: u64) -> u64 {
        let inner = self.read();
        let first = inner.first_index();
        let index = index.max(first);
        let internal_before = inner.internal.partition_point(|&i| i < index) as u64;
        index - first - internal_before
    }

    /// The Raft index of the data entry with user offset `offset` (it may
    /// lie past the log's end: callers bound it by the applied index).
    pub fn index_of(&self, offset: u64) -> u64 {
        let inner = self.read();
        let first = inner.first_index();
        // index = first + offset + (internal entries at or before index):
        // grow the count until it is stable.
        let mut internal = 0_u64;
        loop {
            let index = first + offset + internal;
            let count = inner.internal.partition_point(|&i| i <= index) as u64;
            if count == internal {
                return index;
            }
            internal = count;
        }
    }
}

impl Inner {
    fn state_path(&self) -> std::path::PathBuf {
        self.log
            .dir()
            .parent()
            .map(|dir| dir.join("raft-state"))
            .unwrap_or_default()
    }
}

fn storage_error(error: impl std::fmt::Display) -> raft::Error {
    raft::Error::Store(StorageError::Other(error.to_string().into()))
}

impl raft::Storage for LogStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let inner = self.read();
        Ok(RaftState {
            hard_state: inner.meta.hard_state.clone(),
            conf_state: inner.meta.conf_state.clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let inner = self.read();
        if low < inner.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > inner.last_index() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let max_size = max_size.into().unwrap_or(u64::MAX);
        let mut entries = Vec::new();
        let mut size = 0_u64;
        let mut next = low;
        while next < high {
            let batch = inner
                .log
                .read_batch(next, max_size.max(1), high - next)
                .map_err(storage_error)?;
            if batch.is_empty() {
                return Err(raft::Error::Store(StorageError::Unavailable));
            }
            for record in &batch {
                let entry = entry::from_record(record).map_err(storage_error)?;
                size += protobuf::Message::compute_size(&entry) as u64;
                // At least one entry, even past the limit (raft's contract).
                if !entries.is_empty() && size > max_size {
                    return Ok(entries);
                }
                entries.push(entry);
                next += 1;
            }
        }
        Ok(entries)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        let inner = self.read();
        if index == inner.meta.snapshot_index {
            return Ok(inner.meta.snapshot_term);
        }
        if index < inner.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        inner
            .terms
            .get((index - inner.first_index()) as usize)
            .copied()
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.read().first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.read().last_index())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let inner = self.read();
        if inner.meta.snapshot_index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let mut snapshot = Snapshot::default();
        let metadata = snapshot.mut_metadata();
        metadata.set_index(inner.meta.snapshot_index);
        metadata.set_term(inner.meta.snapshot_term);
        metadata.set_conf_state(inner.meta.snapshot_conf_state.clone());
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use raft::prelude::EntryType;

    use super::*;

    fn entry(index: u64, term: u64, data: bool) -> Entry {
        let mut entry = Entry::default();
        entry.set_index(index);
        entry.set_term(term);
        entry.set_entry_type(EntryType::EntryNormal);
        if data {
            entry.set_data(format!("v{index}").into_bytes().into());
            entry.set_context(entry::data_context(index));
        }
        entry
    }

    fn open(dir: &Path) -> LogStorage {
        let config = log_core::Config {
            fsync: log_core::FsyncPolicy::Never,
            ..log_core::Config::default()
        };
        LogStorage::open(dir, config).expect("open")
    }

    #[test]
    fn user_offsets_skip_raft_entries_and_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = open(dir.path());
        // 1: leader no-op, 2-3 data, 4: no-op, 5 data.
        let entries = [
            entry(1, 1, false),
            entry(2, 1, true),
            entry(3, 1, true),
            entry(4, 2, false),
            entry(5, 2, true),
        ];
        storage.append(&entries).expect("append");
        let check = |storage: &LogStorage| {
            assert_eq!(
                [2, 3, 5].map(|i| storage.user_offset(i)),
                [0, 1, 2],
                "data entries"
            );
            assert_eq!([0, 1, 2, 3].map(|o| storage.index_of(o)), [2, 3, 5, 6]);
            assert_eq!(storage.user_offset(6), 3, "the end");
        };
        check(&storage);
        drop(storage);
        check(&open(dir.path()));
    }

    #[test]
    fn a_conflicting_suffix_is_replaced_terms_and_offsets_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = open(dir.path());
        storage
            .append(&[entry(1, 1, true), entry(2, 1, true), entry(3, 1, false)])
            .expect("append");
        // A new leader of term 2 replaces index 2 onwards.
        storage
            .append(&[entry(2, 2, false), entry(3, 2, true)])
            .expect("replace");
        use raft::Storage as _;
        assert_eq!(storage.term(2).expect("term"), 2);
        assert_eq!(storage.last_index().expect("last"), 3);
        assert_eq!(storage.index_of(1), 3);
        let read = storage
            .entries(1, 4, None, GetEntriesContext::empty(false))
            .expect("entries");
        assert_eq!(
            read,
            [entry(1, 1, true), entry(2, 2, false), entry(3, 2, true)]
        );
        assert!(matches!(
            storage.term(4),
            Err(raft::Error::Store(StorageError::Unavailable))
        ));
        assert!(matches!(
            storage.entries(0, 2, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        assert_eq!(storage.term(0).expect("term of the snapshot point"), 0);
        let one = storage
            .entries(1, 4, 1, GetEntriesContext::empty(false))
            .expect("at least one entry");
        assert_eq!(one.len(), 1);
    }
}
