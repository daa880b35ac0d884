//! The memory-mapped offset index of one segment.
//!
//! Entry `i` maps the segment's `i`-th record to its byte position in the
//! store. It is 8 bytes, little-endian: `u32` relative offset (always `i`; a
//! cheap check that catches zeroed or shifted entries) then `u32` store
//! position. The file is pre-sized to the configured capacity while the
//! segment is active and shrunk to its entries when sealed or closed.
//!
//! The store is the source of truth: the index is never fsynced for an append's
//! durability, and recovery validates or rebuilds it from the store.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use memmap2::MmapMut;

use crate::error::{IoContext, Result};
use crate::mmap;

/// Bytes per index entry.
pub const ENTRY_BYTES: usize = 8;

const _: () = assert!(ENTRY_BYTES == 2 * std::mem::size_of::<u32>());

/// Encodes entry `relative` pointing at `position`.
pub(crate) fn encode_entry(relative: u32, position: u32) -> [u8; ENTRY_BYTES] {
    let mut entry = [0; ENTRY_BYTES];
    entry[..4].copy_from_slice(&relative.to_le_bytes());
    entry[4..].copy_from_slice(&position.to_le_bytes());
    entry
}

/// Decodes an entry into `(relative offset, position)`.
pub(crate) fn decode_entry(bytes: &[u8]) -> (u32, u32) {
    let mut relative = [0; 4];
    let mut position = [0; 4];
    relative.copy_from_slice(&bytes[..4]);
    position.copy_from_slice(&bytes[4..ENTRY_BYTES]);
    (u32::from_le_bytes(relative), u32::from_le_bytes(position))
}

struct Mapped {
    /// `None` while the capacity is zero: an empty file cannot be mapped.
    map: Option<MmapMut>,
    /// Entries in use.
    len: u64,
    /// Entries the file has room for.
    capacity: u64,
}

/// One segment's index. Readers share it with the one appender.
pub(crate) struct Index {
    path: PathBuf,
    file: File,
    mapped: RwLock<Mapped>,
}

impl Index {
    /// Opens `path` (creating it), sizes it to `capacity` entries and trusts
    /// its first `len` entries, which the caller has validated.
    pub(crate) fn open(path: &Path, capacity: u64, len: u64) -> Result<Self> {
        debug_assert!(len <= capacity);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .at(path)?;
        let index = Self {
            path: path.to_owned(),
            file,
            mapped: RwLock::new(Mapped {
                map: None,
                len,
                capacity: 0,
            }),
        };
        index.resize(capacity)?;
        Ok(index)
    }

    /// Replaces the file's content with entries for `positions`, sized to
    /// `capacity` entries.
    pub(crate) fn rebuild(path: &Path, capacity: u64, positions: &[u32]) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .at(path)?;
        drop(file);
        let index = Self::open(path, capacity, 0)?;
        for &position in positions {
            index.push(position);
        }
        Ok(index)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> RwLockReadGuard<'_, Mapped> {
        // A panic while holding the lock cannot leave the map half-updated in a
        // way readers care about (entries are written before `len` grows).
        self.mapped
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Mapped> {
        self.mapped
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Entries in use.
    pub(crate) fn len(&self) -> u64 {
        self.read().len
    }

    /// Entries the file has room for.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> u64 {
        self.read().capacity
    }

    /// The store position of entry `relative`, if it is in use.
    pub(crate) fn position(&self, relative: u64) -> Option<u32> {
        let mapped = self.read();
        entry_position(&mapped, relative)
    }

    /// Positions of entries `relative` and `relative + 1` (the latter `None`
    /// for the last entry), read under one lock so they are consistent.
    pub(crate) fn span(&self, relative: u64) -> Option<(u32, Option<u32>)> {
        let mapped = self.read();
        let start = entry_position(&mapped, relative)?;
        Some((start, entry_position(&mapped, relative + 1)))
    }

    /// Appends an entry for the next record. The caller has checked there is
    /// room (segments roll before their index fills).
    pub(crate) fn push(&self, position: u32) {
        let mut mapped = self.write();
        let len = mapped.len;
        assert!(
            len < mapped.capacity,
            "index full: the segment must roll before this"
        );
        let relative = u32::try_from(len).expect("index capacity fits u32");
        let at = usize::try_from(len).expect("index fits in memory") * ENTRY_BYTES;
        if let Some(map) = mapped.map.as_mut() {
            map[at..at + ENTRY_BYTES].copy_from_slice(&encode_entry(relative, position));
        }
        mapped.len = len + 1;
    }

    /// Forgets entries from `len` on and zeroes them, so stale entries are
    /// never mistaken for evidence of records during recovery.
    pub(crate) fn truncate(&self, len: u64) {
        let mut mapped = self.write();
        if len >= mapped.len {
            return;
        }
        let from = usize::try_from(len).expect("index fits in memory") * ENTRY_BYTES;
        let to = usize::try_from(mapped.len).expect("index fits in memory") * ENTRY_BYTES;
        if let Some(map) = mapped.map.as_mut() {
            map[from..to].fill(0);
        }
        mapped.len = len;
    }

    /// Changes the file's room to `capacity` entries (never below `len`).
    pub(crate) fn resize(&self, capacity: u64) -> Result<()> {
        // Write dirty pages back before the (brief) exclusive section, so
        // readers never wait on disk I/O here.
        self.flush()?;
        let mut mapped = self.write();
        let capacity = capacity.max(mapped.len);
        // The map must be gone before the file's length changes (see `mmap`).
        mapped.map = None;
        let bytes = capacity * ENTRY_BYTES as u64;
        self.file.set_len(bytes).at(&self.path)?;
        mapped.map = if bytes == 0 {
            None
        } else {
            Some(mmap::map_mut(&self.file).at(&self.path)?)
        };
        mapped.capacity = capacity;
        Ok(())
    }

    /// Shrinks the file to its entries and makes that durable.
    pub(crate) fn seal(&self) -> Result<()> {
        let len = self.len();
        self.resize(len)?;
        self.file.sync_all().at(&self.path)
    }

    /// Writes dirty map pages back to the file.
    pub(crate) fn flush(&self) -> Result<()> {
        let mapped = self.read();
        if let Some(map) = mapped.map.as_ref() {
            map.flush().at(&self.path)?;
        }
        Ok(())
    }
}

fn entry_position(mapped: &Mapped, relative: u64) -> Option<u32> {
    if relative >= mapped.len {
        return None;
    }
    let at = usize::try_from(relative).ok()? * ENTRY_BYTES;
    let map = mapped.map.as_ref()?;
    Some(decode_entry(&map[at..at + ENTRY_BYTES]).1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_seal_and_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.index");
        let index = Index::open(&path, 16, 0).expect("open");
        for position in [0, 40, 90] {
            index.push(position);
        }
        index.seal().expect("seal");
        assert_eq!(
            std::fs::metadata(&path).expect("stat").len(),
            3 * ENTRY_BYTES as u64
        );
        drop(index);
        let index = Index::open(&path, 16, 3).expect("reopen");
        assert_eq!(index.span(1), Some((40, Some(90))));
        assert_eq!(index.span(2), Some((90, None)));
        assert_eq!(index.position(3), None);
        assert_eq!(
            std::fs::metadata(&path).expect("stat").len(),
            16 * ENTRY_BYTES as u64
        );
    }

    #[test]
    fn truncate_zeroes_forgotten_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.index");
        let index = Index::open(&path, 4, 0).expect("open");
        index.push(0);
        index.push(50);
        index.truncate(1);
        assert_eq!(index.len(), 1);
        index.seal().expect("seal");
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(bytes, encode_entry(0, 0));
    }

    #[test]
    fn rebuild_replaces_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.index");
        std::fs::write(&path, [0xAB; 100]).expect("write");
        let index = Index::rebuild(&path, 8, &[0, 10]).expect("rebuild");
        assert_eq!(index.len(), 2);
        assert_eq!(index.span(0), Some((0, Some(10))));
        assert_eq!(index.capacity(), 8);
    }
}
