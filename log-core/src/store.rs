//! The append-only file of frames of one segment, with a small write buffer.
//!
//! Appends land in an in-process buffer and reach the OS with one positioned
//! write when the buffer fills, before every sync, and on close. Readers see
//! buffered bytes too: a read that reaches past what the OS has copies the
//! rest from the buffer, so an append is readable as soon as it returns.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::error::{IoContext, Result};

struct Buffer {
    bytes: Vec<u8>,
    /// Bytes handed to the OS: the file's length.
    written: u64,
}

/// One segment's store file.
pub(crate) struct Store {
    path: PathBuf,
    file: File,
    buffer: Mutex<Buffer>,
    /// Mirror of `Buffer::written` for lock-free reads of old data.
    written: AtomicU64,
    /// Logical size: written plus buffered.
    size: AtomicU64,
    buffer_bytes_max: usize,
}

impl Store {
    /// Opens (creating) `path`; its current length is the store's size.
    pub(crate) fn open(path: &Path, buffer_bytes_max: usize) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .at(path)?;
        let len = file.metadata().at(path)?.len();
        Ok(Self {
            path: path.to_owned(),
            file,
            buffer: Mutex::new(Buffer {
                bytes: Vec::with_capacity(buffer_bytes_max),
                written: len,
            }),
            written: AtomicU64::new(len),
            size: AtomicU64::new(len),
            buffer_bytes_max,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Logical size in bytes, including buffered bytes.
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    fn lock(&self) -> MutexGuard<'_, Buffer> {
        self.buffer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends `frames` and returns the position they start at.
    ///
    /// # Errors
    /// An I/O error writing to the OS; what reached the file is then unknown
    /// and the log must stop writing (it fails itself).
    pub(crate) fn append(&self, frames: &[u8]) -> Result<u64> {
        let mut buffer = self.lock();
        let position = buffer.written + buffer.bytes.len() as u64;
        if buffer.bytes.len() + frames.len() > self.buffer_bytes_max {
            self.flush_locked(&mut buffer)?;
        }
        if frames.len() > self.buffer_bytes_max {
            self.file
                .write_all_at(frames, buffer.written)
                .at(&self.path)?;
            buffer.written += frames.len() as u64;
            self.written.store(buffer.written, Ordering::Release);
        } else {
            buffer.bytes.extend_from_slice(frames);
        }
        self.size
            .store(position + frames.len() as u64, Ordering::Release);
        Ok(position)
    }

    fn flush_locked(&self, buffer: &mut Buffer) -> Result<()> {
        if buffer.bytes.is_empty() {
            return Ok(());
        }
        #[cfg(test)]
        if crate::testing::take_injected_write_failure(&self.path) {
            return Err(crate::Error::io(
                &self.path,
                std::io::Error::other("injected write failure"),
            ));
        }
        self.file
            .write_all_at(&buffer.bytes, buffer.written)
            .at(&self.path)?;
        buffer.written += buffer.bytes.len() as u64;
        buffer.bytes.clear();
        self.written.store(buffer.written, Ordering::Release);
        Ok(())
    }

    /// After a failed write: forgets the buffered bytes (they never reached
    /// the file and never will), so the store is what the file holds.
    /// Returns that length.
    pub(crate) fn discard_unwritten(&self) -> u64 {
        let mut buffer = self.lock();
        buffer.bytes.clear();
        self.size.store(buffer.written, Ordering::Release);
        buffer.written
    }

    /// Hands buffered bytes to the OS.
    pub(crate) fn flush(&self) -> Result<()> {
        self.flush_locked(&mut self.lock())
    }

    /// Flushes, then `fdatasync`s. The buffer lock is not held during the
    /// sync, so appends and reads go on meanwhile.
    pub(crate) fn sync(&self) -> Result<()> {
        self.flush()?;
        // What this sync is known to cover: appends flushed after this point
        // may reach the disk with it, but nothing promises so.
        let flushed = self.written.load(Ordering::Acquire);
        #[cfg(test)]
        crate::testing::wait_at_sync_gate(&self.path);
        #[cfg(test)]
        if crate::testing::take_injected_sync_failure(&self.path) {
            return Err(crate::Error::io(
                &self.path,
                std::io::Error::other("injected fsync failure"),
            ));
        }
        self.fdatasync(flushed)
    }

    /// The one `fdatasync` of the store file: the first `flushed` bytes are
    /// on stable storage when it returns. Tests learn that here (and only
    /// here), to drop every other byte in a simulated power loss.
    fn fdatasync(&self, flushed: u64) -> Result<()> {
        self.file.sync_data().at(&self.path)?;
        #[cfg(test)]
        crate::testing::record_synced(&self.path, flushed);
        #[cfg(not(test))]
        let _ = flushed;
        Ok(())
    }

    /// Reads `len` bytes at `position`, from the file and the buffer.
    pub(crate) fn read_at(&self, position: u64, len: usize) -> Result<Vec<u8>> {
        let mut out = vec![0; len];
        let end = position + len as u64;
        let written = self.written.load(Ordering::Acquire);
        if end <= written {
            self.read_file(position, &mut out)?;
            return Ok(out);
        }
        let buffer = self.lock();
        let written = buffer.written;
        let from_file =
            usize::try_from(written.saturating_sub(position)).map_or(len, |n| n.min(len));
        let buffered = &buffer.bytes;
        let skip = usize::try_from(position.saturating_sub(written)).unwrap_or(usize::MAX);
        let wanted = len - from_file;
        let Some(part) = buffered.get(skip..).and_then(|b| b.get(..wanted)) else {
            return Err(crate::Error::corrupt(
                &self.path,
                position,
                "read past the end of the store",
            ));
        };
        out[from_file..].copy_from_slice(part);
        drop(buffer);
        // Bytes below `written` are in the file and never change while the
        // segment holds them, so reading them after unlocking is safe.
        self.read_file(position, &mut out[..from_file])?;
        Ok(out)
    }

    fn read_file(&self, position: u64, out: &mut [u8]) -> Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        self.file.read_exact_at(out, position).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                crate::Error::corrupt(&self.path, position, "store is shorter than its index says")
            } else {
                crate::Error::io(&self.path, e)
            }
        })
    }

    /// Cuts the store to `len` bytes and syncs that.
    pub(crate) fn truncate(&self, len: u64) -> Result<()> {
        let mut buffer = self.lock();
        self.flush_locked(&mut buffer)?;
        #[cfg(test)]
        crate::testing::record_truncated(&self.path, len);
        self.file.set_len(len).at(&self.path)?;
        self.fdatasync(len)?;
        buffer.written = len;
        self.written.store(len, Ordering::Release);
        self.size.store(len, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffered_and_written_bytes_read_back_identically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("0.store"), 16).expect("open");
        let mut expected = Vec::new();
        for i in 0..50u8 {
            let chunk = vec![i; usize::from(i % 7) + 1];
            let position = store.append(&chunk).expect("append");
            assert_eq!(position, expected.len() as u64);
            expected.extend_from_slice(&chunk);
            // Every range that straddles the written/buffered boundary.
            for start in 0..expected.len() {
                let got = store
                    .read_at(start as u64, expected.len() - start)
                    .expect("read");
                assert_eq!(got, expected[start..]);
            }
        }
        store.sync().expect("sync");
        assert_eq!(std::fs::read(store.path()).expect("read file"), expected);
    }

    #[test]
    fn reading_past_the_end_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("0.store"), 16).expect("open");
        store.append(b"abc").expect("append");
        assert!(store.read_at(1, 10).is_err());
    }

    #[test]
    fn truncate_drops_buffered_and_written_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("0.store"), 4).expect("open");
        store.append(b"abcdef").expect("append");
        store.append(b"gh").expect("append");
        store.truncate(3).expect("truncate");
        assert_eq!(store.size(), 3);
        assert_eq!(store.append(b"xy").expect("append"), 3);
        store.flush().expect("flush");
        assert_eq!(std::fs::read(store.path()).expect("read"), b"abcxy");
    }
}
