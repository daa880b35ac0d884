//! A segment: one store file and its index, covering a contiguous range of
//! offsets starting at the segment's base offset; and its recovery on open.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::Config;
use crate::error::{Error, IoContext, Result};
use crate::index::{ENTRY_BYTES, Index, decode_entry};
use bytes::Bytes;

use crate::record::{
    FRAME_HEADER_BYTES, FRAME_OVERHEAD_MAX, FrameError, FrameMeta, Record, check_frame,
    declared_frame_bytes, decode_frame, decode_shared_frame,
};
use crate::store::Store;

/// How far recovery may trust a segment's files on open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// Not the newest segment: sealed and fsynced when it rolled. Its index is
    /// checked cheaply and rebuilt if wrong; any bad frame found while
    /// rebuilding is corruption.
    Sealed,
    /// The newest segment after a clean close: treated like a sealed one.
    ActiveClean,
    /// The newest segment after a crash: its store is scanned in full, a torn
    /// or failing tail is cut off, and its index is rebuilt.
    ActiveUnclean,
}

/// The largest payload the frame format can hold. Decoding and recovery use
/// it rather than the configured record limit, which only governs appends.
const FRAME_PAYLOAD_LIMIT: u64 = u32::MAX as u64;

/// How much of the store the scanner reads at once.
const SCAN_CHUNK_BYTES: u64 = 1 << 20;
/// Old index entries recovery tries when looking for a valid record beyond a
/// bad frame; bounds the work on a hopelessly garbled index.
const EVIDENCE_ATTEMPTS_MAX: usize = 64;

/// The store file name of the segment starting at `base_offset`.
pub(crate) fn store_path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(format!("{base_offset:020}.store"))
}

/// The index file name of the segment starting at `base_offset`.
pub(crate) fn index_path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(format!("{base_offset:020}.index"))
}

/// One segment of a log.
pub(crate) struct Segment {
    base_offset: u64,
    store: Store,
    index: Index,
    newest_timestamp_ms: AtomicU64,
    record_bytes_max: u64,
}

impl Segment {
    /// Creates an empty segment and syncs its files; the caller syncs the
    /// directory before relying on it.
    pub(crate) fn create(dir: &Path, base_offset: u64, config: &Config) -> Result<Self> {
        let store = Store::open(&store_path(dir, base_offset), config.write_buffer_bytes)?;
        if store.size() != 0 {
            store.truncate(0)?;
        }
        let index = Index::rebuild(&index_path(dir, base_offset), config.index_entries_max, &[])?;
        // The index needs no sync: it is rebuilt from the store if lost.
        store.file().sync_all().at(store.path())?;
        Ok(Self::assemble(base_offset, store, index, 0))
    }

    fn assemble(base_offset: u64, store: Store, index: Index, newest: u64) -> Self {
        Self {
            base_offset,
            store,
            index,
            newest_timestamp_ms: AtomicU64::new(newest),
            record_bytes_max: FRAME_PAYLOAD_LIMIT,
        }
    }

    /// Opens an existing segment, validating or rebuilding its index and, for
    /// an active segment after a crash, cutting a torn tail.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the file and byte when a record below the
    /// tail is damaged; I/O errors.
    pub(crate) fn open(
        dir: &Path,
        base_offset: u64,
        config: &Config,
        recovery: Recovery,
    ) -> Result<Self> {
        let store = Store::open(&store_path(dir, base_offset), config.write_buffer_bytes)?;
        let index_path = index_path(dir, base_offset);
        if u32::try_from(store.size()).is_err() {
            return Err(Error::corrupt(
                store.path(),
                0,
                "store is larger than a segment can be (4 GiB)",
            ));
        }
        let old_entries = read_entries(&index_path)?;
        // The format's limit, not the config's: a log written with a larger
        // record limit must still recover whole after the limit is lowered.
        let max = FRAME_PAYLOAD_LIMIT;
        let active_capacity = config.index_entries_max;
        let (index, newest) = match recovery {
            Recovery::Sealed | Recovery::ActiveClean => {
                let capacity = |n: u64| {
                    if recovery == Recovery::Sealed {
                        n
                    } else {
                        active_capacity.max(n)
                    }
                };
                if let Some((n, newest)) = validate_index(&store, base_offset, &old_entries, max)? {
                    (Index::open(&index_path, capacity(n), n)?, newest)
                } else {
                    tracing::warn!(index = %index_path.display(), "index does not match its store; rebuilding it");
                    let scan = scan(&store, base_offset, max, None)?;
                    let n = scan.positions.len() as u64;
                    (
                        Index::rebuild(&index_path, capacity(n), &scan.positions)?,
                        scan.newest_timestamp_ms,
                    )
                }
            }
            Recovery::ActiveUnclean => {
                let scan = scan(&store, base_offset, max, Some(&old_entries))?;
                if scan.valid_bytes < store.size() {
                    tracing::warn!(
                        store = %store.path().display(),
                        position = scan.valid_bytes,
                        cut_bytes = store.size() - scan.valid_bytes,
                        reason = scan.cut_reason.as_deref().unwrap_or(""),
                        "cutting a torn tail left by a crash"
                    );
                    store.truncate(scan.valid_bytes)?;
                }
                let capacity = active_capacity.max(scan.positions.len() as u64);
                (
                    Index::rebuild(&index_path, capacity, &scan.positions)?,
                    scan.newest_timestamp_ms,
                )
            }
        };
        Ok(Self::assemble(base_offset, store, index, newest))
    }

    /// The offset of the segment's first record.
    pub(crate) fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// The offset the segment's next record would get.
    pub(crate) fn next_offset(&self) -> u64 {
        self.base_offset + self.index.len()
    }

    /// Records in the segment.
    pub(crate) fn len(&self) -> u64 {
        self.index.len()
    }

    /// Store bytes, including buffered ones.
    pub(crate) fn size_bytes(&self) -> u64 {
        self.store.size()
    }

    /// The newest record's timestamp (0 when empty).
    pub(crate) fn newest_timestamp_ms(&self) -> u64 {
        self.newest_timestamp_ms.load(Ordering::Acquire)
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Whether `records` more records of `frame_bytes` in all fit without
    /// exceeding the segment's limits.
    pub(crate) fn fits(&self, frame_bytes: u64, records: u64, config: &Config) -> bool {
        self.store.size() + frame_bytes <= config.segment_bytes_max
            && self.index.len() + records <= config.index_entries_max
    }

    /// Appends encoded frames; `starts` are each frame's position within
    /// `frames`. The caller has checked [`fits`](Self::fits).
    pub(crate) fn append(
        &self,
        frames: &[u8],
        starts: &[u32],
        newest_timestamp_ms: u64,
    ) -> Result<()> {
        let position = self.store.append(frames)?;
        let position = u32::try_from(position).expect("segment size is limited below 4 GiB");
        for &start in starts {
            self.index.push(position + start);
        }
        self.newest_timestamp_ms
            .fetch_max(newest_timestamp_ms, Ordering::AcqRel);
        Ok(())
    }

    /// After a failed write: keeps only the records whose frames reached
    /// the store file whole, and returns the offset after them.
    pub(crate) fn keep_written(&self) -> u64 {
        let written = self.store.discard_unwritten();
        let len = self.index.len();
        // Record i is whole if the next one starts within the file (the
        // last one: if nothing past the file was appended, which
        // `discard_unwritten` just made the store's size).
        let mut keep = 0;
        while keep < len {
            let end = match self.index.position(keep + 1) {
                Some(next) => u64::from(next),
                None => break,
            };
            if end > written {
                break;
            }
            keep += 1;
        }
        if keep + 1 == len
            && self
                .index
                .position(keep)
                .is_some_and(|start| self.last_frame_within(u64::from(start), written))
        {
            keep += 1;
        }
        self.index.truncate(keep);
        self.base_offset + keep
    }

    /// Whether the frame starting at `start` ends at or before `written`.
    fn last_frame_within(&self, start: u64, written: u64) -> bool {
        if start + FRAME_HEADER_BYTES as u64 > written {
            return false;
        }
        self.store
            .read_at(start, FRAME_HEADER_BYTES)
            .ok()
            .and_then(|header| declared_frame_bytes(&header))
            .is_some_and(|bytes| start + bytes <= written)
    }

    /// Reads the record at `offset`, or `None` if the segment does not hold it.
    pub(crate) fn read(&self, offset: u64) -> Result<Option<Record>> {
        let Some(relative) = offset.checked_sub(self.base_offset) else {
            return Ok(None);
        };
        let Some((start, next)) = self.index.span(relative) else {
            return Ok(None);
        };
        let start = u64::from(start);
        let frame_bytes = match next {
            Some(end) => u64::from(end).checked_sub(start).ok_or_else(|| {
                Error::corrupt(
                    self.index.path(),
                    relative * ENTRY_BYTES as u64,
                    "index positions go backwards",
                )
            })?,
            None => {
                let header = self.store.read_at(start, FRAME_HEADER_BYTES)?;
                declared_frame_bytes(&header)
                    .unwrap_or(0)
                    .min(self.store.size().saturating_sub(start))
            }
        };
        let bytes = self
            .store
            .read_at(start, usize::try_from(frame_bytes).unwrap_or(usize::MAX))?;
        let (record, used) = decode_frame(&bytes, self.record_bytes_max)
            .map_err(|e| Error::corrupt(self.store.path(), start, e.to_string()))?;
        if record.offset != offset || used as u64 != frame_bytes {
            return Err(Error::corrupt(
                self.store.path(),
                start,
                format!(
                    "index entry for offset {offset} points at the record of offset {}",
                    record.offset
                ),
            ));
        }
        Ok(Some(record))
    }

    /// Appends to `out` the records from `from` on, at most `records_max` of
    /// them and, except for the first when `out` is empty, at most
    /// `bytes_max` frame bytes. Returns the frame bytes read.
    pub(crate) fn read_batch(
        &self,
        from: u64,
        bytes_max: u64,
        records_max: u64,
        out: &mut Vec<Record>,
    ) -> Result<u64> {
        let Some(relative) = from.checked_sub(self.base_offset) else {
            return Ok(0);
        };
        let len = self.index.len();
        let Some(start) = self.index.position(relative) else {
            return Ok(0);
        };
        let start = u64::from(start);
        let wanted = records_max.min(len.saturating_sub(relative));
        let end = match self.index.position(relative + wanted) {
            Some(end) => u64::from(end),
            // Read after the index length: the store only ever holds at least
            // the frames the index knows.
            None => self.store.size(),
        };
        let limit = end.saturating_sub(start).min(bytes_max);
        let bytes = Bytes::from(
            self.store
                .read_at(start, usize::try_from(limit).unwrap_or(usize::MAX))?,
        );
        let mut at = 0;
        let mut count = 0;
        while count < wanted {
            let (record, used) = match decode_shared_frame(&bytes, at, self.record_bytes_max) {
                Ok(decoded) => decoded,
                Err(FrameError::Incomplete { .. }) => break,
                Err(e) => {
                    return Err(Error::corrupt(
                        self.store.path(),
                        start + at as u64,
                        e.to_string(),
                    ));
                }
            };
            if record.offset != from + count {
                return Err(Error::corrupt(
                    self.store.path(),
                    start + at as u64,
                    format!(
                        "record of offset {} found where {} was expected",
                        record.offset,
                        from + count
                    ),
                ));
            }
            out.push(record);
            at += used;
            count += 1;
        }
        if count == 0 && out.is_empty() && wanted > 0 {
            // One record larger than the byte budget: return it alone, or a
            // consumer with a small budget would never make progress.
            if let Some(record) = self.read(from)? {
                let used = record.frame_bytes() as u64;
                out.push(record);
                return Ok(used);
            }
        }
        Ok(at as u64)
    }

    /// Keeps the first `records` records and removes the rest, durably.
    pub(crate) fn truncate_records(&self, records: u64) -> Result<()> {
        if records >= self.index.len() {
            return Ok(());
        }
        let cut = self
            .index
            .position(records)
            .map_or(self.store.size(), u64::from);
        self.store.truncate(cut)?;
        self.index.truncate(records);
        Ok(())
    }

    /// Syncs the store and shrinks the index to its entries (sealed or
    /// closed segment).
    pub(crate) fn seal(&self) -> Result<()> {
        self.store.sync()?;
        self.index.seal()
    }

    /// Gives a sealed segment room to take appends again.
    pub(crate) fn unseal(&self, config: &Config) -> Result<()> {
        self.index.resize(config.index_entries_max)
    }

    /// Deletes the segment's files (the caller syncs the directory).
    pub(crate) fn remove_files(&self) -> Result<()> {
        for path in [self.store.path(), self.index.path()] {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(path, e));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Reads an index file's entries as `(relative offset, position)` pairs; a
/// missing file has none, a trailing partial entry is ignored.
fn read_entries(path: &Path) -> Result<Vec<(u32, u32)>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    if bytes.len() % ENTRY_BYTES != 0 {
        // A sealed index is always a whole number of entries; this one is not
        // to be trusted at all, only used as hints.
        tracing::debug!(index = %path.display(), "index length is not a whole number of entries");
    }
    Ok(bytes.chunks_exact(ENTRY_BYTES).map(decode_entry).collect())
}

/// Cheap validation of a sealed (or cleanly closed) index against its store:
/// entries are dense and increasing and the last one points at the store's
/// last frame, which ends exactly at the end of the store. Returns the entry
/// count and newest timestamp, or `None` if the index must be rebuilt.
fn validate_index(
    store: &Store,
    base: u64,
    entries: &[(u32, u32)],
    max: u64,
) -> Result<Option<(u64, u64)>> {
    let size = store.size();
    let Some(&(_, last)) = entries.last() else {
        return Ok((size == 0).then_some((0, 0)));
    };
    let mut previous = None;
    for (k, &(relative, position)) in entries.iter().enumerate() {
        let dense = u64::from(relative) == k as u64;
        let increasing = previous.is_none_or(|p| position > p) && (k > 0 || position == 0);
        if !dense || !increasing || u64::from(position) >= size {
            return Ok(None);
        }
        previous = Some(position);
    }
    let last = u64::from(last);
    let tail = size - last;
    if tail > FRAME_OVERHEAD_MAX as u64 + max {
        return Ok(None);
    }
    let bytes = store.read_at(last, usize::try_from(tail).unwrap_or(usize::MAX))?;
    match check_frame(&bytes, max) {
        Ok(meta)
            if meta.offset == base + entries.len() as u64 - 1
                && meta.frame_bytes as u64 == tail =>
        {
            Ok(Some((entries.len() as u64, meta.timestamp_ms)))
        }
        _ => Ok(None),
    }
}

/// What a full scan of a store found.
struct Scan {
    positions: Vec<u32>,
    valid_bytes: u64,
    newest_timestamp_ms: u64,
    cut_reason: Option<String>,
}

/// Walks every frame of a store from the start.
///
/// With `tail_hints` (the old index of an active segment after a crash) the
/// first bad frame ends the scan when it is the tail: nothing valid follows
/// it, neither right after it nor where the old index says later records
/// were. Otherwise, and whenever a valid record follows, the bad frame is
/// corruption below the tail and an error.
fn scan(store: &Store, base: u64, max: u64, tail_hints: Option<&[(u32, u32)]>) -> Result<Scan> {
    let size = store.size();
    let mut reader = FrameReader {
        file: store.file(),
        path: store.path(),
        size,
        buffer: Vec::new(),
        start: 0,
    };
    let mut positions = Vec::new();
    let mut position = 0;
    let mut newest = 0;
    while position < size {
        let expected = base + positions.len() as u64;
        let problem = match reader.check(position, max)? {
            Ok(meta) if meta.offset == expected => {
                positions.push(u32::try_from(position).expect("store size checked below 4 GiB"));
                newest = meta.timestamp_ms;
                position += meta.frame_bytes as u64;
                continue;
            }
            Ok(meta) => format!(
                "record of offset {} found where {expected} was expected",
                meta.offset
            ),
            Err(e) => e.to_string(),
        };
        let Some(hints) = tail_hints else {
            return Err(Error::corrupt(store.path(), position, problem));
        };
        if let Some(later) = later_valid_record(&mut reader, position, expected, base, hints, max)?
        {
            return Err(Error::corrupt(
                store.path(),
                position,
                format!(
                    "{problem}; a valid record follows at byte {later}, so this is not a torn tail"
                ),
            ));
        }
        return Ok(Scan {
            positions,
            valid_bytes: position,
            newest_timestamp_ms: newest,
            cut_reason: Some(problem),
        });
    }
    Ok(Scan {
        positions,
        valid_bytes: position,
        newest_timestamp_ms: newest,
        cut_reason: None,
    })
}

/// Looks for a valid record after the bad frame at `position`: the frame its
/// length field points to, or any record the old index placed further on.
fn later_valid_record(
    reader: &mut FrameReader<'_>,
    position: u64,
    expected: u64,
    base: u64,
    hints: &[(u32, u32)],
    max: u64,
) -> Result<Option<u64>> {
    if let Some(declared) = reader.declared_frame_bytes(position)? {
        let next = position + declared;
        if declared <= FRAME_OVERHEAD_MAX as u64 + max
            && next < reader.size
            && matches!(reader.check(next, max)?, Ok(FrameMeta { offset, .. }) if offset == expected + 1)
        {
            return Ok(Some(next));
        }
    }
    let first_later = usize::try_from(expected - base + 1).unwrap_or(usize::MAX);
    let size = reader.size;
    let candidates = hints
        .iter()
        .enumerate()
        .skip(first_later)
        .filter(|&(k, &(relative, at))| {
            relative as usize == k && u64::from(at) > position && u64::from(at) < size
        })
        .take(EVIDENCE_ATTEMPTS_MAX)
        .map(|(k, &entry)| (k, entry))
        .collect::<Vec<_>>();
    for (k, (_, at)) in candidates {
        let at = u64::from(at);
        if matches!(reader.check(at, max)?, Ok(FrameMeta { offset, .. }) if offset == base + k as u64)
        {
            return Ok(Some(at));
        }
    }
    // Neither the length field nor the old index can be trusted (the index
    // may be lost with the page cache): search every later byte position for
    // the next record. The offset field filters candidates before the
    // checksum, so this is a cheap pass over the tail; a torn write leaves no
    // later record and costs one pass.
    let wanted = (expected + 1).to_le_bytes();
    let mut at = position + 1;
    while at + FRAME_HEADER_BYTES as u64 <= size {
        let header = reader.window(at, FRAME_HEADER_BYTES as u64)?;
        if header[8..16] == wanted
            && matches!(reader.check(at, max)?, Ok(FrameMeta { offset, .. }) if offset == expected + 1)
        {
            return Ok(Some(at));
        }
        at += 1;
    }
    Ok(None)
}

/// Reads frames from a store file in large chunks during recovery.
struct FrameReader<'a> {
    file: &'a File,
    path: &'a Path,
    size: u64,
    buffer: Vec<u8>,
    /// File position of `buffer[0]`.
    start: u64,
}

impl FrameReader<'_> {
    /// Bytes `[position, position + wanted)`, cut at the end of the file.
    fn window(&mut self, position: u64, wanted: u64) -> Result<&[u8]> {
        let end = (position + wanted).min(self.size);
        let loaded_end = self.start + self.buffer.len() as u64;
        if position < self.start || end > loaded_end {
            let len = (end - position)
                .max(SCAN_CHUNK_BYTES)
                .min(self.size - position);
            self.buffer
                .resize(usize::try_from(len).unwrap_or(usize::MAX), 0);
            self.file
                .read_exact_at(&mut self.buffer, position)
                .at(self.path)?;
            self.start = position;
        }
        let from = usize::try_from(position - self.start).unwrap_or(usize::MAX);
        let to = usize::try_from(end - self.start).unwrap_or(usize::MAX);
        Ok(&self.buffer[from..to])
    }

    fn declared_frame_bytes(&mut self, position: u64) -> Result<Option<u64>> {
        Ok(declared_frame_bytes(
            self.window(position, FRAME_HEADER_BYTES as u64)?,
        ))
    }

    /// Checks the frame at `position`; the outer error is I/O only.
    fn check(&mut self, position: u64, max: u64) -> Result<Result<FrameMeta, FrameError>> {
        let Some(declared) = self.declared_frame_bytes(position)? else {
            return Ok(Err(FrameError::Incomplete { needed: None }));
        };
        if position + declared > self.size {
            return Ok(Err(FrameError::Incomplete {
                needed: Some(declared),
            }));
        }
        Ok(check_frame(self.window(position, declared)?, max))
    }
}
