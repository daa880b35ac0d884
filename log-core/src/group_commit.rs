//! Group commit: appenders that need durability share fsyncs.
//!
//! An appender writes, then waits for a ticket (its append's sequence
//! number) to be covered by a sync. The first waiter finding no sync running
//! becomes the leader and syncs for everyone who wrote before it started.
//!
//! Without help, N concurrent appenders fall into alternating batches (the
//! appenders a sync releases have not written again when the next leader
//! starts, so syncs cover k, then N - k). So the leader first gathers: when
//! more than one appender was active since the last sync, it waits until as
//! many appends are pending as there were appenders, bounded by half the last
//! sync's duration (at most [`GATHER_MAX`]). A lone appender never waits.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The longest a leader waits to gather appends before syncing.
const GATHER_MAX: Duration = Duration::from_millis(1);

struct SyncState {
    /// Every append with a sequence at or below this is durable.
    synced_sequence: u64,
    /// Whether a thread is running a sync right now.
    syncing: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The shared state of group commit.
pub(crate) struct GroupCommit {
    state: Mutex<SyncState>,
    synced: Condvar,
    /// The newest append's sequence that has been written.
    appended: AtomicU64,
    /// Appenders inside an append call now, and the most since the last sync.
    appenders: AtomicU64,
    appenders_peak: AtomicU64,
    /// Set while a leader gathers, so appenders know to wake it.
    gathering: AtomicBool,
    written_lock: Mutex<()>,
    written: Condvar,
    last_sync_ns: AtomicU64,
    sync_count: AtomicU64,
    /// Records written so far, and as of the last sync (for the
    /// records-per-fsync histogram).
    records_written: AtomicU64,
    records_synced: AtomicU64,
    /// Metric handles, registered once.
    fsync_seconds: metrics::Histogram,
    fsyncs: metrics::Counter,
    fsync_batch_records: metrics::Histogram,
}

/// Counts an appender in flight until dropped.
pub(crate) struct Appender<'a>(&'a GroupCommit);

impl Drop for Appender<'_> {
    fn drop(&mut self) {
        self.0.appenders.fetch_sub(1, Ordering::SeqCst);
    }
}

impl GroupCommit {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(SyncState {
                synced_sequence: 0,
                syncing: false,
            }),
            synced: Condvar::new(),
            appended: AtomicU64::new(0),
            appenders: AtomicU64::new(0),
            appenders_peak: AtomicU64::new(0),
            gathering: AtomicBool::new(false),
            written_lock: Mutex::new(()),
            written: Condvar::new(),
            last_sync_ns: AtomicU64::new(0),
            sync_count: AtomicU64::new(0),
            records_written: AtomicU64::new(0),
            records_synced: AtomicU64::new(0),
            fsync_seconds: metrics::histogram!("proglog_log_fsync_duration_seconds"),
            fsyncs: metrics::counter!("proglog_log_fsyncs_total"),
            fsync_batch_records: metrics::histogram!("proglog_log_fsync_batch_records"),
        }
    }

    /// Registers an appender that will wait for durability.
    pub(crate) fn enter(&self) -> Appender<'_> {
        let now = self.appenders.fetch_add(1, Ordering::SeqCst) + 1;
        self.appenders_peak.fetch_max(now, Ordering::SeqCst);
        Appender(self)
    }

    /// Records that append number `sequence`, of `records` records, has been
    /// written.
    pub(crate) fn written(&self, sequence: u64, records: u64) {
        self.records_written.fetch_add(records, Ordering::Relaxed);
        self.appended.fetch_max(sequence, Ordering::SeqCst);
        if self.gathering.load(Ordering::SeqCst) {
            let _guard = lock(&self.written_lock);
            self.written.notify_all();
        }
    }

    /// Completed syncs.
    pub(crate) fn sync_count(&self) -> u64 {
        self.sync_count.load(Ordering::Relaxed)
    }

    /// Waits until append number `sequence` is durable, running the sync
    /// with `sync` (which returns the sequence it covered) if no other thread
    /// is. A failed sync is passed to `fail`, which must make `failure` hold
    /// it, so every waiter returns it.
    pub(crate) fn wait(
        &self,
        sequence: u64,
        failure: &OnceLock<String>,
        sync: impl Fn() -> Result<u64>,
        fail: impl Fn(&Error),
    ) -> Result<()> {
        let mut state = lock(&self.state);
        loop {
            if let Some(cause) = failure.get() {
                return Err(Error::Failed {
                    cause: cause.clone(),
                });
            }
            if state.synced_sequence >= sequence {
                return Ok(());
            }
            if state.syncing {
                state = self
                    .synced
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            }
            state.syncing = true;
            let synced_before = state.synced_sequence;
            drop(state);
            self.gather(synced_before);
            let records = self.records_written.load(Ordering::Relaxed);
            let started = Instant::now();
            let result = sync();
            let elapsed = started.elapsed();
            self.last_sync_ns.store(
                u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            self.fsync_seconds.record(elapsed.as_secs_f64());
            if result.is_ok() {
                let covered =
                    records.saturating_sub(self.records_synced.swap(records, Ordering::Relaxed));
                self.fsyncs.increment(1);
                #[allow(clippy::cast_precision_loss)] // a record count, far below 2^52
                self.fsync_batch_records.record(covered as f64);
            }
            state = lock(&self.state);
            state.syncing = false;
            match result {
                Ok(synced) => {
                    state.synced_sequence = state.synced_sequence.max(synced);
                    self.sync_count.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => fail(&e),
            }
            self.synced.notify_all();
        }
    }

    /// Waits (briefly) until as many appends are pending as appenders were
    /// active since the last sync.
    fn gather(&self, synced_before: u64) {
        let peak = self
            .appenders_peak
            .swap(self.appenders.load(Ordering::SeqCst), Ordering::SeqCst);
        if peak <= 1 {
            return;
        }
        let budget =
            Duration::from_nanos(self.last_sync_ns.load(Ordering::Relaxed) / 2).min(GATHER_MAX);
        let deadline = Instant::now() + budget;
        self.gathering.store(true, Ordering::SeqCst);
        let mut guard = lock(&self.written_lock);
        while self
            .appended
            .load(Ordering::SeqCst)
            .saturating_sub(synced_before)
            < peak
        {
            let Some(left) = deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
            else {
                break;
            };
            guard = self
                .written
                .wait_timeout(guard, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        drop(guard);
        self.gathering.store(false, Ordering::SeqCst);
    }
}
