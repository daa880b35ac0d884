//! The log: a directory of segments, one appender, many readers.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::{Config, FsyncPolicy};
use crate::error::{Error, IoContext, Result};
use crate::group_commit::GroupCommit;
use crate::reader::LogReader;
use crate::record::{Record, encode_frame, now_ms};
use crate::segment::{Recovery, Segment};

/// Present only between a clean close and the next open: its absence on open
/// means the newest segment may have a torn tail.
const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";
/// Held with an exclusive `flock` while the log is open.
const LOCK_FILE: &str = "lock";

/// Offsets stay below this (2^63 - 1, so they also fit signed 64-bit
/// integers, as Raft indexes and other languages' clients expect); the log
/// refuses an append or reset that would reach it.
pub const OFFSET_LIMIT: u64 = i64::MAX as u64;

/// A segmented, crash-safe commit log in one directory.
///
/// `Log` is `Send + Sync`: share it with `Arc`. Appends are serialised; reads
/// run concurrently with them and never wait on an fsync.
///
/// # Durability
/// An append returns once its [`FsyncPolicy`] is met. With `Always`, the
/// record is on stable storage; appenders that arrive while an fsync runs
/// share the next one. A failed write or fsync fails the log: every waiting
/// appender gets the error and later writes get [`Error::Failed`] until the
/// log is reopened, because after a failed fsync the state of the page cache
/// is unknown. Reads see a record as soon as its append has written it,
/// possibly before it is durable.
pub struct Log {
    shared: Arc<Shared>,
    flusher: Mutex<Option<Flusher>>,
}

struct Flusher {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

struct Shared {
    dir: PathBuf,
    config: Config,
    /// Holds the directory lock until the log is closed or dropped.
    lock: File,
    segments: RwLock<Vec<Arc<Segment>>>,
    writer: Mutex<Writer>,
    next_offset: AtomicU64,
    lowest_offset: AtomicU64,
    group_commit: GroupCommit,
    bytes_since_sync: AtomicU64,
    failure: OnceLock<String>,
    closed: AtomicBool,
    /// Whether the directory was marked clean when opened.
    opened_clean: bool,
    /// Registered once at open: a per-append registry lookup is measurable
    /// at millions of appends per second.
    append_seconds: metrics::Histogram,
}

/// An append's pending durability; see [`Log::append_batch_deferred`].
#[derive(Debug)]
#[must_use = "records are not acknowledged until the ticket is waited for"]
pub struct SyncTicket {
    sequence: u64,
    started: std::time::Instant,
}

/// What [`Log::append_batch_deferred`] did.
#[derive(Debug)]
#[must_use = "a written batch is acknowledged only after its ticket, if any, is waited for"]
pub enum Deferred {
    /// The records are written from offset `first`; with a ticket, the
    /// policy wants them durable before they are acknowledged.
    Written {
        /// The first record's offset.
        first: u64,
        /// The fsync wait the caller must do, if any.
        ticket: Option<SyncTicket>,
    },
    /// Nothing was written: the batch does not fit the active segment, and
    /// rolling to a new one means an fsync of the old one. Append it with
    /// [`Log::append_batch`] from a thread that may block.
    WouldRoll,
}

/// The appender's state, behind one mutex.
struct Writer {
    active: Arc<Segment>,
    /// Reused encode buffer for a batch of frames.
    frames: Vec<u8>,
    starts: Vec<u32>,
    /// Appends so far in this process: the group-commit ticket.
    sequence: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

fn parse_segment_name(name: &str) -> Option<(u64, bool)> {
    let (stem, is_store) = if let Some(stem) = name.strip_suffix(".store") {
        (stem, true)
    } else {
        (name.strip_suffix(".index")?, false)
    };
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, is_store))
}

impl Log {
    /// Opens the log in `dir`, creating it if needed, and recovers it.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid config (before touching the disk),
    /// [`Error::Locked`] if the directory is open elsewhere,
    /// [`Error::Corrupt`] naming file and byte for damage below the tail,
    /// [`Error::Io`].
    pub fn open(dir: impl AsRef<Path>, config: Config) -> Result<Self> {
        config.validate()?;
        let dir = dir.as_ref().to_owned();
        std::fs::create_dir_all(&dir).at(&dir)?;
        sync_dir(&dir)?;
        // A new directory's entry lives in its parent.
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .at(&lock_path)?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked { path: dir }),
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(lock_path, e)),
        }

        let clean_path = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = clean_path.exists();
        let segments = Self::open_segments(&dir, &config, clean)?;
        if clean {
            // Before any write: a crash from here on must be seen as unclean.
            std::fs::remove_file(&clean_path).at(&clean_path)?;
            sync_dir(&dir)?;
        }
        let active = segments
            .last()
            .cloned()
            .expect("open_segments returns at least one segment");
        let lowest = segments.first().map_or(0, |s| s.base_offset());
        let shared = Arc::new(Shared {
            dir,
            next_offset: AtomicU64::new(active.next_offset()),
            lowest_offset: AtomicU64::new(lowest),
            writer: Mutex::new(Writer {
                active,
                frames: Vec::new(),
                starts: Vec::new(),
                sequence: 0,
            }),
            segments: RwLock::new(segments),
            lock: lock_file,
            group_commit: GroupCommit::new(),
            bytes_since_sync: AtomicU64::new(0),
            failure: OnceLock::new(),
            closed: AtomicBool::new(false),
            opened_clean: clean,
            append_seconds: metrics::histogram!("proglog_log_append_duration_seconds"),
            config,
        });
        let flusher = match shared.config.fsync {
            FsyncPolicy::Interval { interval_ms, .. } => Some(Flusher::spawn(&shared, interval_ms)),
            FsyncPolicy::Always | FsyncPolicy::Never => None,
        };
        Ok(Self {
            shared,
            flusher: Mutex::new(flusher),
        })
    }

    fn open_segments(dir: &Path, config: &Config, clean: bool) -> Result<Vec<Arc<Segment>>> {
        let mut stores = Vec::new();
        let mut indexes = Vec::new();
        for entry in std::fs::read_dir(dir).at(dir)? {
            let entry = entry.at(dir)?;
            let name = entry.file_name();
            match name.to_str().and_then(parse_segment_name) {
                Some((base, true)) if base >= OFFSET_LIMIT => {
                    let path = crate::segment::store_path(dir, base);
                    return Err(Error::corrupt(
                        path,
                        0,
                        format!("segment base offset is at or above the limit {OFFSET_LIMIT}"),
                    ));
                }
                Some((base, true)) => stores.push(base),
                Some((base, false)) => indexes.push(base),
                None => {}
            }
        }
        stores.sort_unstable();
        for base in indexes.iter().filter(|b| stores.binary_search(b).is_err()) {
            // An index without its store is left over from a removal that a
            // crash interrupted; it indexes nothing.
            let path = crate::segment::index_path(dir, *base);
            tracing::warn!(index = %path.display(), "removing an index file without a store");
            std::fs::remove_file(&path).at(&path)?;
        }
        if stores.is_empty() {
            let segment = Segment::create(dir, 0, config)?;
            sync_dir(dir)?;
            return Ok(vec![Arc::new(segment)]);
        }
        let newest = stores.len() - 1;
        let mut segments: Vec<Arc<Segment>> = Vec::with_capacity(stores.len());
        for (i, &base) in stores.iter().enumerate() {
            let recovery = match (i == newest, clean) {
                (false, _) => Recovery::Sealed,
                (true, true) => Recovery::ActiveClean,
                (true, false) => Recovery::ActiveUnclean,
            };
            let segment = Segment::open(dir, base, config, recovery)?;
            if let Some(previous) = segments.last()
                && previous.next_offset() != base
            {
                return Err(Error::corrupt(
                    segment.store().path(),
                    0,
                    format!(
                        "segment starts at offset {base} but the previous segment ends before offset {}",
                        previous.next_offset()
                    ),
                ));
            }
            segments.push(Arc::new(segment));
        }
        if let Some(active) = segments.last() {
            active.unseal(config)?;
        }
        Ok(segments)
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The configuration the log was opened with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Appends one record and returns its offset.
    ///
    /// # Errors
    /// [`Error::RecordTooLarge`] (nothing is written), [`Error::OutOfRange`]
    /// when offsets would reach [`OFFSET_LIMIT`], [`Error::Failed`],
    /// [`Error::Closed`], [`Error::Io`].
    pub fn append(&self, record: &Record) -> Result<u64> {
        self.shared.append(None, std::slice::from_ref(record))
    }

    /// Appends many records with one write and (under `Always`) one fsync;
    /// returns the first one's offset. The records get consecutive offsets.
    /// A batch that does not fit the active segment is split across segments.
    /// An empty batch writes nothing and returns the next offset.
    ///
    /// # Errors
    /// As [`append`](Self::append); if any record is too large, none is
    /// written.
    pub fn append_batch(&self, records: &[Record]) -> Result<u64> {
        self.shared.append(None, records)
    }

    /// Appends one record that must get offset `expected` (a follower's Raft
    /// index equals its store offset).
    ///
    /// # Errors
    /// [`Error::OffsetMismatch`] (nothing is written) and those of `append`.
    pub fn append_at(&self, expected: u64, record: &Record) -> Result<u64> {
        self.shared
            .append(Some(expected), std::slice::from_ref(record))
    }

    /// [`append_batch`](Self::append_batch) whose first record must get
    /// offset `expected`.
    ///
    /// # Errors
    /// As [`append_at`](Self::append_at).
    pub fn append_batch_at(&self, expected: u64, records: &[Record]) -> Result<u64> {
        self.shared.append(Some(expected), records)
    }

    /// [`append_batch`](Self::append_batch) that never waits for an fsync:
    /// it writes the records and returns the first offset and, when the
    /// fsync policy wants them durable before they are acknowledged
    /// (`Interval` past its byte bound, or `Always`), a [`SyncTicket`]. The
    /// caller must then pass the ticket to [`wait_synced`](Self::wait_synced)
    /// before acknowledging the records. A batch that would roll the
    /// segment (which syncs the old one) is not written:
    /// [`Deferred::WouldRoll`].
    ///
    /// This lets an async server write on its own thread (a write reaches
    /// the page cache in microseconds) and hand only fsync waits to a thread
    /// that may block. Without a ticket the records are as durable as the
    /// policy promises once this returns. It waits for the writer lock like
    /// any append; retention holds that lock while it deletes segment files.
    /// Under `Always` prefer [`append_batch`](Self::append_batch): only it
    /// takes part in group commit's gathering of concurrent appends.
    ///
    /// # Errors
    /// As [`append_batch`](Self::append_batch).
    pub fn append_batch_deferred(&self, records: &[Record]) -> Result<Deferred> {
        let started = std::time::Instant::now();
        let Some((first, wait)) = self.shared.append_unsynced(None, records, false)? else {
            return Ok(Deferred::WouldRoll);
        };
        let ticket = wait.map(|sequence| SyncTicket { sequence, started });
        if ticket.is_none() {
            self.shared
                .append_seconds
                .record(started.elapsed().as_secs_f64());
        }
        Ok(Deferred::Written { first, ticket })
    }

    /// Waits until the append that returned `ticket` is durable (joining
    /// or leading a group commit).
    ///
    /// # Errors
    /// [`Error::Failed`] if the fsync failed (the log is failed from then
    /// on), [`Error::Closed`].
    pub fn wait_synced(&self, ticket: SyncTicket) -> Result<()> {
        self.shared.wait_durable(ticket.sequence)?;
        self.shared
            .append_seconds
            .record(ticket.started.elapsed().as_secs_f64());
        Ok(())
    }

    /// The base offset of the newest segment: reads from here on touch only
    /// the segment being written, whose pages were written last.
    pub fn newest_segment_base(&self) -> u64 {
        self.shared
            .read_segments()
            .last()
            .map_or_else(|| self.lowest_offset(), |segment| segment.base_offset())
    }

    /// Reads the record at `offset`.
    ///
    /// # Errors
    /// [`Error::OutOfRange`], [`Error::Corrupt`] (checksum or index mismatch),
    /// [`Error::Closed`], [`Error::Io`].
    pub fn read(&self, offset: u64) -> Result<Record> {
        self.shared.check_open()?;
        let segment = self.shared.segment_for(offset)?;
        match segment.read(offset) {
            Ok(Some(record)) => Ok(record),
            Ok(None) => Err(self.shared.out_of_range(offset)),
            Err(e) => Err(self.shared.explain_read_error(offset, e)),
        }
    }

    /// Reads consecutive records from `from`: at most `records_max`, and at
    /// most `bytes_max` bytes of frames, except that one record is always
    /// returned when `from` holds one, however large. `from` equal to the next
    /// offset gives an empty batch (a consumer at the tail).
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn read_batch(&self, from: u64, bytes_max: u64, records_max: u64) -> Result<Vec<Record>> {
        self.shared.check_open()?;
        let mut out = Vec::new();
        if from < self.lowest_offset() || from > self.next_offset() {
            return Err(self.shared.out_of_range(from));
        }
        if from == self.next_offset() || records_max == 0 {
            return Ok(out);
        }
        let segments: Vec<Arc<Segment>> = {
            let all = self.shared.read_segments();
            let first = all
                .partition_point(|s| s.base_offset() <= from)
                .saturating_sub(1);
            all[first..].to_vec()
        };
        let mut bytes = 0;
        for segment in segments {
            let offset = from + out.len() as u64;
            let budget = bytes_max.saturating_sub(bytes);
            if out.len() as u64 >= records_max || (budget == 0 && !out.is_empty()) {
                break;
            }
            bytes += segment
                .read_batch(offset, budget, records_max - out.len() as u64, &mut out)
                .map_err(|e| self.shared.explain_read_error(offset, e))?;
            if from + (out.len() as u64) < segment.next_offset() {
                break;
            }
        }
        // Retention can drop the segment between the range check and the
        // read: then nothing came back although `from` was below the next
        // offset, and the answer is that `from` is now out of range.
        if out.is_empty() {
            return Err(self.shared.out_of_range(from));
        }
        Ok(out)
    }

    /// The lowest retained offset (equal to the next offset when empty).
    pub fn lowest_offset(&self) -> u64 {
        self.shared.lowest_offset.load(Ordering::Acquire)
    }

    /// The offset of the last record, if the log holds any.
    pub fn highest_offset(&self) -> Option<u64> {
        let next = self.next_offset();
        (next > self.lowest_offset()).then(|| next - 1)
    }

    /// The offset the next append will get.
    pub fn next_offset(&self) -> u64 {
        self.shared.next_offset.load(Ordering::Acquire)
    }

    /// Bytes in all segment stores.
    pub fn size_bytes(&self) -> u64 {
        self.shared
            .read_segments()
            .iter()
            .map(|s| s.size_bytes())
            .sum()
    }

    /// Segments in the log.
    pub fn segment_count(&self) -> usize {
        self.shared.read_segments().len()
    }

    /// Whether the log takes writes: open and not failed.
    pub fn is_writable(&self) -> bool {
        self.shared.check_writable().is_ok()
    }

    /// Whether the log had been closed cleanly before this open, so recovery
    /// only validated it; `false` means the newest segment was scanned as
    /// after a crash.
    pub fn opened_clean(&self) -> bool {
        self.shared.opened_clean
    }

    /// Syncs of appended data since open; with group commit under concurrent
    /// `Always` appends this grows slower than the number of appends.
    pub fn sync_count(&self) -> u64 {
        self.shared.group_commit.sync_count()
    }

    /// Makes every append so far durable, whatever the policy.
    ///
    /// # Errors
    /// [`Error::Failed`], [`Error::Closed`].
    pub fn sync(&self) -> Result<()> {
        self.shared.check_writable()?;
        let sequence = self.shared.lock_writer().sequence;
        self.shared.wait_durable(sequence)
    }

    /// Drops whole segments whose records are all below `offset` (never the
    /// active one) and returns the new lowest offset, which may stay below
    /// `offset`. For retention and after a snapshot.
    ///
    /// # Errors
    /// [`Error::Closed`], [`Error::Failed`], [`Error::Io`].
    pub fn truncate_prefix(&self, offset: u64) -> Result<u64> {
        self.shared.check_writable()?;
        let _writer = self.shared.lock_writer();
        self.shared
            .drop_oldest(|segments, _| segments[1].base_offset() <= offset)
    }

    /// Removes every record above `after_offset`, across segments, durably
    /// (Raft conflict resolution). `after_offset` may be one below the lowest
    /// offset, which empties the log; at or above the highest offset it is a
    /// no-op.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] if `after_offset` is further below the lowest
    /// offset, [`Error::Closed`], [`Error::Failed`], [`Error::Io`] (which
    /// fails the log).
    pub fn truncate_suffix(&self, after_offset: u64) -> Result<()> {
        self.shared.check_writable()?;
        let mut writer = self.shared.lock_writer();
        self.shared.check_writable()?;
        let keep_below = after_offset.saturating_add(1);
        if keep_below >= self.next_offset() {
            return Ok(());
        }
        if keep_below < self.lowest_offset() {
            return Err(self.shared.out_of_range(after_offset));
        }
        let result = self.shared.truncate_suffix_locked(&mut writer, keep_below);
        self.shared.fail_on_error(result)
    }

    /// Deletes every segment and starts empty with the next offset
    /// `next_offset` (a follower installing a snapshot restarts its log at the
    /// leader's first index).
    ///
    /// # Errors
    /// [`Error::OutOfRange`] if `next_offset` is not below [`OFFSET_LIMIT`],
    /// [`Error::Closed`], [`Error::Failed`], [`Error::Io`] (which fails the
    /// log).
    pub fn reset(&self, next_offset: u64) -> Result<()> {
        self.shared.check_writable()?;
        if next_offset >= OFFSET_LIMIT {
            return Err(Error::OutOfRange {
                offset: next_offset,
                lowest: self.lowest_offset(),
                next: self.next_offset(),
            });
        }
        let mut writer = self.shared.lock_writer();
        self.shared.check_writable()?;
        let result = self.shared.reset_locked(&mut writer, next_offset);
        self.shared.fail_on_error(result)
    }

    /// Applies the retention policy as of `now_ms`: drops the oldest sealed
    /// segments while the log is over `bytes_max` or their newest record is
    /// older than `age_max_ms`. Returns the segments dropped. Also runs after
    /// every segment roll.
    ///
    /// # Errors
    /// [`Error::Closed`], [`Error::Failed`], [`Error::Io`].
    pub fn enforce_retention(&self, now_ms: u64) -> Result<usize> {
        self.shared.check_writable()?;
        let _writer = self.shared.lock_writer();
        self.shared.enforce_retention_locked(now_ms)
    }

    /// A reader over the raw bytes of every segment's store, oldest first, as
    /// of now (for backups and snapshot transfer). It holds the segments open,
    /// so retention does not disturb it.
    ///
    /// # Errors
    /// [`Error::Closed`].
    pub fn reader(&self) -> Result<LogReader> {
        self.shared.check_open()?;
        let segments = self.shared.read_segments().clone();
        Ok(LogReader::new(segments))
    }

    /// Syncs everything, shrinks the active index, marks the directory clean
    /// and closes the log. Later calls get [`Error::Closed`]; closing twice is
    /// fine.
    ///
    /// # Errors
    /// [`Error::Failed`] (the directory is left marked unclean, so the next
    /// open recovers it), [`Error::Io`].
    pub fn close(&self) -> Result<()> {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.stop_flusher();
        let writer = self.shared.lock_writer();
        if let Some(cause) = self.shared.failure.get() {
            return Err(Error::Failed {
                cause: cause.clone(),
            });
        }
        writer.active.seal()?;
        let clean_path = self.shared.dir.join(CLEAN_SHUTDOWN_FILE);
        File::create(&clean_path)
            .and_then(|f| f.sync_all())
            .at(&clean_path)?;
        sync_dir(&self.shared.dir)?;
        // Let the directory be opened again, in this process or another.
        self.shared
            .lock
            .unlock()
            .at(&self.shared.dir.join(LOCK_FILE))
    }

    /// Closes the log and deletes its directory.
    ///
    /// # Errors
    /// As [`close`](Self::close), and [`Error::Io`] deleting.
    pub fn remove(self) -> Result<()> {
        self.close()?;
        let dir = self.shared.dir.clone();
        drop(self);
        std::fs::remove_dir_all(&dir).at(&dir)
    }

    fn stop_flusher(&self) {
        if let Some(flusher) = lock(&self.flusher).take() {
            drop(flusher.stop);
            if flusher.thread.join().is_err() {
                tracing::error!("the log's background sync thread panicked");
            }
        }
    }
}

impl Drop for Log {
    /// Without [`Log::close`], hands buffered bytes to the OS (no fsync, no
    /// clean mark): the next open recovers as after a crash.
    fn drop(&mut self) {
        self.stop_flusher();
        if !self.shared.closed.load(Ordering::Acquire)
            && let Err(e) = self.shared.lock_writer().active.store().flush()
        {
            tracing::error!(error = %e, "flushing the log on drop failed");
        }
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.shared.dir)
            .field("lowest_offset", &self.lowest_offset())
            .field("next_offset", &self.next_offset())
            .finish_non_exhaustive()
    }
}

impl Flusher {
    fn spawn(shared: &Arc<Shared>, interval_ms: u64) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let shared = Arc::clone(shared);
        let thread = std::thread::Builder::new()
            .name("log-sync".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(Duration::from_millis(interval_ms))
                {
                    if shared.failure.get().is_some() {
                        continue;
                    }
                    let sequence = shared.lock_writer().sequence;
                    if let Err(e) = shared.wait_durable(sequence) {
                        tracing::error!(error = %e, "interval sync failed");
                    }
                }
            })
            .expect("spawning the log sync thread");
        Self { stop, thread }
    }
}

impl Shared {
    /// The writer lock. If an appender panicked while holding it, the store
    /// and index may disagree (a frame without its entry), so the log fails
    /// and refuses writes until reopened, when recovery reconciles them.
    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|poisoned| {
            self.fail(&Error::Failed {
                cause: "an append panicked mid-write".into(),
            });
            poisoned.into_inner()
        })
    }

    fn read_segments(&self) -> RwLockReadGuard<'_, Vec<Arc<Segment>>> {
        self.segments
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_segments(&self) -> RwLockWriteGuard<'_, Vec<Arc<Segment>>> {
        self.segments
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        match self.failure.get() {
            Some(cause) => Err(Error::Failed {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Records the first failure; from now on the log refuses writes.
    fn fail(&self, error: &Error) {
        if self.failure.set(error.to_string()).is_ok() {
            tracing::error!(dir = %self.dir.display(), error = %error, "log failed; refusing writes until reopened");
        }
    }

    fn fail_on_error<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            self.fail(e);
        }
        result
    }

    fn out_of_range(&self, offset: u64) -> Error {
        Error::OutOfRange {
            offset,
            lowest: self.lowest_offset.load(Ordering::Acquire),
            next: self.next_offset.load(Ordering::Acquire),
        }
    }

    /// A read that raced with a truncation reports the offset as out of range
    /// rather than as the short read it saw.
    fn explain_read_error(&self, offset: u64, error: Error) -> Error {
        let lowest = self.lowest_offset.load(Ordering::Acquire);
        let next = self.next_offset.load(Ordering::Acquire);
        if offset < lowest || offset >= next {
            self.out_of_range(offset)
        } else {
            error
        }
    }

    fn segment_for(&self, offset: u64) -> Result<Arc<Segment>> {
        if offset >= self.next_offset.load(Ordering::Acquire) {
            return Err(self.out_of_range(offset));
        }
        let segments = self.read_segments();
        let after = segments.partition_point(|s| s.base_offset() <= offset);
        match after.checked_sub(1) {
            Some(i) => Ok(Arc::clone(&segments[i])),
            None => Err(self.out_of_range(offset)),
        }
    }

    fn append(&self, expected: Option<u64>, records: &[Record]) -> Result<u64> {
        // Counted for group commit from before the writer lock, so a leader
        // knows this append is coming.
        let _appender =
            (self.config.fsync == FsyncPolicy::Always).then(|| self.group_commit.enter());
        let started = std::time::Instant::now();
        let (first, wait) = self
            .append_unsynced(expected, records, true)?
            .expect("an append that may roll always writes");
        if let Some(sequence) = wait {
            self.wait_durable(sequence)?;
        }
        // Write and, per the policy, sync: what a producer waits for.
        self.append_seconds.record(started.elapsed().as_secs_f64());
        Ok(first)
    }

    /// Writes `records`; returns the first offset and, when the fsync policy
    /// wants them durable before they are acknowledged, the append's
    /// sequence number to wait for. Without `may_roll`, a batch that does
    /// not fit the active segment is not written (`None`).
    fn append_unsynced(
        &self,
        expected: Option<u64>,
        records: &[Record],
        may_roll: bool,
    ) -> Result<Option<(u64, Option<u64>)>> {
        self.check_writable()?;
        let limit = self.config.record_bytes_max;
        if let Some(record) = records.iter().find(|r| r.value.len() as u64 > limit) {
            return Err(Error::RecordTooLarge {
                size: record.value.len() as u64,
                limit,
            });
        }
        let mut writer = self.lock_writer();
        self.check_writable()?;
        let first = self.next_offset.load(Ordering::Acquire);
        if let Some(expected) = expected
            && expected != first
        {
            return Err(Error::OffsetMismatch {
                expected,
                next: first,
            });
        }
        if records.is_empty() {
            return Ok(Some((first, None)));
        }
        if OFFSET_LIMIT.saturating_sub(first) < records.len() as u64 {
            return Err(Error::OutOfRange {
                offset: first,
                lowest: self.lowest_offset.load(Ordering::Acquire),
                next: first,
            });
        }
        if !may_roll {
            let frame_bytes = records.iter().map(|r| r.frame_bytes() as u64).sum();
            if !writer
                .active
                .fits(frame_bytes, records.len() as u64, &self.config)
            {
                return Ok(None);
            }
        }
        let bytes = match self.write_locked(&mut writer, first, records) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.fail(&e);
                self.settle_after_write_failure(&writer);
                return Err(e);
            }
        };
        writer.sequence += 1;
        let sequence = writer.sequence;
        // Counted under the writer lock, where a sync takes its snapshot and
        // resets the count: bytes written after the snapshot always count
        // toward the next bound.
        let wait = match self.config.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval {
                bytes: threshold, ..
            } => self.bytes_since_sync.fetch_add(bytes, Ordering::AcqRel) + bytes >= threshold,
            FsyncPolicy::Never => false,
        };
        drop(writer);
        self.group_commit.written(sequence, records.len() as u64);
        Ok(Some((first, wait.then_some(sequence))))
    }

    /// Writes `records` from offset `first`, rolling segments as needed;
    /// returns the frame bytes written.
    fn write_locked(&self, writer: &mut Writer, first: u64, records: &[Record]) -> Result<u64> {
        let mut offset = first;
        let mut done = 0;
        let mut written = 0;
        while done < records.len() {
            let mut bytes = 0;
            let mut end = done;
            while end < records.len() {
                let frame = records[end].frame_bytes() as u64;
                if !writer
                    .active
                    .fits(bytes + frame, (end - done + 1) as u64, &self.config)
                {
                    break;
                }
                bytes += frame;
                end += 1;
            }
            if end == done {
                if writer.active.len() == 0 {
                    // Unreachable with a validated config: an empty segment
                    // holds any record within the limit.
                    return Err(Error::RecordTooLarge {
                        size: records[done].value.len() as u64,
                        limit: self.config.record_bytes_max,
                    });
                }
                self.roll(writer)?;
                continue;
            }
            let Writer {
                active,
                frames,
                starts,
                ..
            } = writer;
            frames.clear();
            starts.clear();
            let mut newest = 0;
            for record in &records[done..end] {
                starts.push(
                    u32::try_from(frames.len())
                        .expect("batch chunk is bounded by the segment size"),
                );
                encode_frame(record, offset, frames);
                newest = newest.max(record.timestamp_ms);
                offset += 1;
            }
            active.append(frames, starts, newest)?;
            debug_assert_eq!(active.next_offset(), offset, "index and offsets agree");
            self.next_offset.store(offset, Ordering::Release);
            written += bytes;
            done = end;
        }
        Ok(written)
    }

    /// Seals the active segment and starts a new one at the next offset.
    fn roll(&self, writer: &mut Writer) -> Result<()> {
        writer.active.seal()?;
        let base = writer.active.next_offset();
        let segment = Arc::new(Segment::create(&self.dir, base, &self.config)?);
        sync_dir(&self.dir)?;
        self.write_segments().push(Arc::clone(&segment));
        writer.active = segment;
        tracing::debug!(base, "rolled to a new segment");
        if let Err(e) = self.enforce_retention_locked(now_ms()) {
            tracing::warn!(error = %e, "retention after a roll failed");
        }
        Ok(())
    }

    /// Waits until append number `sequence` is durable, running the sync
    /// itself if no other thread is (group commit: whoever syncs covers every
    /// append written before it started).
    fn wait_durable(&self, sequence: u64) -> Result<()> {
        self.group_commit.wait(
            sequence,
            &self.failure,
            || self.sync_now(),
            |e| self.fail(e),
        )
    }

    /// Syncs the active segment; returns the sequence now durable. Sealed
    /// segments were synced when they rolled.
    fn sync_now(&self) -> Result<u64> {
        let (active, sequence) = {
            let writer = self.lock_writer();
            // What this sync covers is exactly what was counted so far.
            self.bytes_since_sync.store(0, Ordering::Release);
            (Arc::clone(&writer.active), writer.sequence)
        };
        if let Err(e) = active.store().sync() {
            // Failed first, so no append slips in between.
            self.fail(&e);
            self.settle_after_write_failure(&self.lock_writer());
            return Err(e);
        }
        Ok(sequence)
    }

    /// After a failed write or sync: the offsets the log reports are those
    /// of the records whose frames reached the file whole, as a reopen
    /// will find them; what was only buffered is forgotten, so it is never
    /// read, reported, or written later. The caller holds the writer lock.
    fn settle_after_write_failure(&self, writer: &Writer) {
        let next = writer.active.keep_written();
        let before = self.next_offset.load(Ordering::Acquire);
        if next < before {
            self.next_offset.store(next, Ordering::Release);
            tracing::warn!(
                next_offset = next,
                lost = before - next,
                "records that never reached the store file are dropped from the log's view"
            );
        }
    }

    /// Removes the oldest segments while `drop` says so (never the last one)
    /// and returns the new lowest offset. The caller holds the writer lock.
    fn drop_oldest(&self, mut drop: impl FnMut(&[Arc<Segment>], u64) -> bool) -> Result<u64> {
        let (removed, lowest) = {
            let mut segments = self.write_segments();
            let mut total: u64 = segments.iter().map(|s| s.size_bytes()).sum();
            let mut removed = Vec::new();
            while segments.len() > 1 && drop(&segments, total) {
                let oldest = segments.remove(0);
                total -= oldest.size_bytes();
                removed.push(oldest);
            }
            let lowest = segments[0].base_offset();
            self.lowest_offset.store(lowest, Ordering::Release);
            (removed, lowest)
        };
        // Readers holding a removed segment keep reading it through their
        // open file handles.
        for segment in &removed {
            segment.remove_files()?;
        }
        if !removed.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(lowest)
    }

    fn enforce_retention_locked(&self, now_ms: u64) -> Result<usize> {
        let retention = self.config.retention;
        if retention.bytes_max.is_none() && retention.age_max_ms.is_none() {
            return Ok(0);
        }
        let before = self.read_segments().len();
        self.drop_oldest(|segments, total| {
            let too_big = retention.bytes_max.is_some_and(|max| total > max);
            let age = now_ms.saturating_sub(segments[0].newest_timestamp_ms());
            let too_old = retention.age_max_ms.is_some_and(|max| age > max);
            too_big || too_old
        })?;
        Ok(before - self.read_segments().len())
    }

    fn truncate_suffix_locked(&self, writer: &mut Writer, keep_below: u64) -> Result<()> {
        let (removed, keep) = {
            let mut segments = self.write_segments();
            let mut removed = Vec::new();
            while segments.len() > 1
                && segments
                    .last()
                    .is_some_and(|s| s.base_offset() >= keep_below)
            {
                removed.extend(segments.pop());
            }
            (
                removed,
                Arc::clone(segments.last().expect("a log always has a segment")),
            )
        };
        // Publish first, so readers stop asking for records about to go.
        self.next_offset.store(keep_below, Ordering::Release);
        // Newest first: a crash part-way leaves a log without gaps.
        for segment in &removed {
            segment.remove_files()?;
        }
        // The removals are durable before the kept segment shrinks: a crash
        // must not bring back a removed segment after a cut it follows.
        if !removed.is_empty() {
            sync_dir(&self.dir)?;
        }
        keep.truncate_records(keep_below.saturating_sub(keep.base_offset()))?;
        if !Arc::ptr_eq(&keep, &writer.active) {
            keep.unseal(&self.config)?;
            writer.active = keep;
        }
        sync_dir(&self.dir)
    }

    fn reset_locked(&self, writer: &mut Writer, next_offset: u64) -> Result<()> {
        let removed: Vec<Arc<Segment>> = std::mem::take(&mut *self.write_segments());
        for segment in removed.iter().rev() {
            segment.remove_files()?;
        }
        let segment = Arc::new(Segment::create(&self.dir, next_offset, &self.config)?);
        sync_dir(&self.dir)?;
        self.write_segments().push(Arc::clone(&segment));
        writer.active = segment;
        self.lowest_offset.store(next_offset, Ordering::Release);
        self.next_offset.store(next_offset, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
