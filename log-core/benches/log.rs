//! Throughput of the log's append and read paths, next to the disk's own
//! limits measured in the same run.
//!
//! Run with `cargo bench -p log-core --bench log` (about a minute of
//! measuring on a 2-core machine, after the build). Logs and scratch files live
//! under `CARGO_TARGET_TMPDIR` (`target/tmp`, on the same disk as the
//! workspace; `/tmp` may be a tmpfs, which would make every sync free), or
//! under `PROGLOG_BENCH_DIR` if that is set when the bench runs.
//!
//! Every benchmark starts from a fresh log. A log or scratch file that reaches
//! its size bound (512 MiB, 256 MiB) is replaced by an empty one with the
//! clock stopped, so disk use stays bounded whatever iteration counts criterion
//! picks; segment rolls within that bound (every 64 MiB) are timed, as they are
//! part of steady-state appending. Bytes are payload bytes; each record also
//! carries a 36-byte frame header.
//!
//! | group                      | measures                                                       |
//! |----------------------------|----------------------------------------------------------------|
//! | `disk`                     | 1 MiB `write_all` + `sync_data` each; 1 MiB writes unsynced    |
//! | `append_never`             | `append` of one 100 B / 1 KiB record, `FsyncPolicy::Never`     |
//! | `append_always_1KiB`       | `append` (batch 1), `append_batch` of 64 / 1024, `Always`      |
//! | `group_commit_always_1KiB` | total records/s, 1 vs 8 threads calling `append`, `Always`     |
//! | `read_batch_1MiB`          | sequential `read_batch` of 1 MiB over 64 MiB in the page cache |
//!
//! Figures that wait on `fdatasync` swing with the disk's state (on a shared
//! VM, by several times from minute to minute), so compare them within one
//! run, on an otherwise idle machine, and repeat the run before trusting a
//! ratio.
//!
//! Targets (compare medians; nothing here asserts them):
//! - `append_never/100B` ≥ 1,000,000 records/s.
//! - `append_always_1KiB/batch/1024` ≥ 50% of the MB/s of
//!   `disk/write_1MiB_fdatasync`.
//! - `group_commit_always_1KiB/appenders/8` ≥ 4× `appenders/1` in records/s.
//! - `read_batch_1MiB` ≥ 1 GB/s.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use log_core::{Config, FsyncPolicy, Log, Record};
use tempfile::TempDir;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
/// A log is replaced once this full: eight 64 MiB segments, so rolls are
/// measured, while disk use stays bounded.
const LOG_BYTES_MAX: u64 = 512 << 20;
/// A scratch file is replaced once this full; well below the kernel's
/// background writeback threshold, so unsynced writes stay in the page cache.
const FILE_BYTES_MAX: u64 = 256 << 20;
/// 1 MiB batches in the log the read benchmark scans: about 64 MiB of 1 KiB
/// records.
const READ_BATCHES: u64 = 64;

/// Where logs and scratch files go: on the real disk, not a tmpfs.
fn bench_root() -> PathBuf {
    std::env::var_os("PROGLOG_BENCH_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")), PathBuf::from)
}

fn scratch_dir() -> TempDir {
    let root = bench_root();
    std::fs::create_dir_all(&root).expect("creating the benchmark directory");
    tempfile::Builder::new()
        .prefix("log-bench-")
        .tempdir_in(&root)
        .expect("creating a temporary directory")
}

fn size_name(bytes: usize) -> String {
    if bytes.is_multiple_of(KIB) {
        format!("{}KiB", bytes / KIB)
    } else {
        format!("{bytes}B")
    }
}

fn records(count: usize, value_bytes: usize) -> Vec<Record> {
    (0..count)
        .map(|_| Record::new(vec![0x5a; value_bytes]))
        .collect()
}

fn open_log(fsync: FsyncPolicy) -> impl Fn(&Path) -> Log {
    move |dir| {
        Log::open(
            dir,
            Config {
                fsync,
                ..Config::default()
            },
        )
        .expect("opening the log")
    }
}

fn create_file(dir: &Path) -> File {
    File::create(dir.join("scratch")).expect("creating the scratch file")
}

/// A log or file in its own temporary directory, replaced by an empty one
/// before it would grow past `bytes_max`.
struct Bounded<T> {
    /// The target and its directory; a tuple drops in order, so the target is
    /// closed before its directory is deleted. `None` only while replacing.
    current: Option<(T, TempDir)>,
    bytes: u64,
    bytes_max: u64,
    create: Box<dyn Fn(&Path) -> T>,
}

impl<T> Bounded<T> {
    fn new(bytes_max: u64, create: impl Fn(&Path) -> T + 'static) -> Self {
        let mut bounded = Self {
            current: None,
            bytes: 0,
            bytes_max,
            create: Box::new(create),
        };
        bounded.renew();
        bounded
    }

    fn renew(&mut self) {
        self.delete();
        let dir = scratch_dir();
        self.current = Some(((self.create)(dir.path()), dir));
        self.bytes = 0;
    }

    /// Deletes the current target and commits the deletion. Deleting drops
    /// dirty pages not yet written back; committing makes the file system do
    /// its work on the freed blocks (a `discard` mount trims them at the next
    /// journal commit) now, with the clock stopped, rather than inside the
    /// next timed fsync.
    fn delete(&mut self) {
        if let Some(current) = self.current.take() {
            drop(current);
            File::open(bench_root())
                .and_then(|root| root.sync_all())
                .expect("committing the deletion");
        }
    }

    /// Performs `iters` operations that each add `op_bytes`, `run(target, n)`
    /// doing and timing `n` of them at a time. Returns the time of the runs
    /// only: replacing a full target happens with the clock stopped.
    fn time(
        &mut self,
        iters: u64,
        op_bytes: u64,
        mut run: impl FnMut(&T, u64) -> Duration,
    ) -> Duration {
        let mut elapsed = Duration::ZERO;
        let mut done = 0;
        while done < iters {
            if self.bytes + op_bytes > self.bytes_max {
                self.renew();
            }
            let room = ((self.bytes_max - self.bytes) / op_bytes).max(1);
            let n = room.min(iters - done);
            let (target, _) = self.current.as_ref().expect("a target outside renew");
            elapsed += run(target, n);
            self.bytes += n * op_bytes;
            done += n;
        }
        elapsed
    }
}

impl<T> Drop for Bounded<T> {
    /// Leaves no deletion for the next benchmark's fsyncs to pay for.
    fn drop(&mut self) {
        self.delete();
    }
}

fn frame_bytes(records: &[Record]) -> u64 {
    records.iter().map(|r| r.frame_bytes() as u64).sum()
}

fn payload_bytes(records: &[Record]) -> u64 {
    records.iter().map(|r| r.value.len() as u64).sum()
}

/// Times `n` appends of `records`: `append` for one record, else `append_batch`.
fn append_n(log: &Log, records: &[Record], n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        let offset = match records {
            [record] => log.append(record),
            _ => log.append_batch(records),
        };
        std::hint::black_box(offset.expect("append"));
    }
    start.elapsed()
}

/// Times `n` appends of `record` spread over `threads` threads, from the
/// moment all are ready to the moment the last one finishes.
fn append_concurrently(log: &Log, record: &Record, threads: u64, n: u64) -> Duration {
    let ready = Barrier::new(usize::try_from(threads).expect("thread count") + 1);
    let start = std::thread::scope(|scope| {
        for thread in 0..threads {
            let share = n / threads + u64::from(thread < n % threads);
            let ready = &ready;
            scope.spawn(move || {
                ready.wait();
                for _ in 0..share {
                    std::hint::black_box(log.append(record).expect("append"));
                }
            });
        }
        ready.wait();
        Instant::now()
    });
    start.elapsed()
}

/// The disk's limits, to judge the log's `Always` figures against: appending
/// 1 MiB with an `fdatasync` after each write, and the page-cache ceiling of
/// appending 1 MiB without syncing.
fn disk(c: &mut Criterion) {
    let buffer = vec![0x5a_u8; MIB];
    let mut group = c.benchmark_group("disk");
    group.throughput(Throughput::Bytes(MIB as u64));
    for (name, sync) in [
        ("write_1MiB_no_sync", false),
        ("write_1MiB_fdatasync", true),
    ] {
        let mut file = Bounded::new(FILE_BYTES_MAX, create_file);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                file.time(iters, MIB as u64, |mut file, n| {
                    let start = Instant::now();
                    for _ in 0..n {
                        file.write_all(&buffer).expect("writing the scratch file");
                        if sync {
                            file.sync_data().expect("syncing the scratch file");
                        }
                    }
                    start.elapsed()
                })
            });
        });
    }
    group.finish();
}

/// Single-record appends that never wait for the disk.
fn append_never(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_never");
    for value_bytes in [100, KIB] {
        let batch = records(1, value_bytes);
        group.throughput(Throughput::ElementsAndBytes {
            elements: 1,
            bytes: payload_bytes(&batch),
        });
        let mut log = Bounded::new(LOG_BYTES_MAX, open_log(FsyncPolicy::Never));
        group.bench_function(size_name(value_bytes), |b| {
            b.iter_custom(|iters| {
                log.time(iters, frame_bytes(&batch), |log, n| {
                    append_n(log, &batch, n)
                })
            });
        });
    }
    group.finish();
}

/// Durable appends: one `fdatasync` per call, so larger batches spread it over
/// more records.
fn append_always(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_always_1KiB");
    for count in [1024, 64, 1] {
        let batch = records(count, KIB);
        group.throughput(Throughput::ElementsAndBytes {
            elements: count as u64,
            bytes: payload_bytes(&batch),
        });
        let mut log = Bounded::new(LOG_BYTES_MAX, open_log(FsyncPolicy::Always));
        group.bench_with_input(BenchmarkId::new("batch", count), &batch, |b, batch| {
            b.iter_custom(|iters| {
                log.time(iters, frame_bytes(batch), |log, n| append_n(log, batch, n))
            });
        });
    }
    group.finish();
}

/// Group commit: concurrent durable appenders share fsyncs. One iteration is
/// one record, whichever thread appends it, so the figure is total records/s.
fn group_commit(c: &mut Criterion) {
    let batch = records(1, KIB);
    let record = &batch[0];
    let mut group = c.benchmark_group("group_commit_always_1KiB");
    group.throughput(Throughput::ElementsAndBytes {
        elements: 1,
        bytes: payload_bytes(&batch),
    });
    for threads in [1_u64, 8] {
        let mut log = Bounded::new(LOG_BYTES_MAX, open_log(FsyncPolicy::Always));
        group.bench_with_input(
            BenchmarkId::new("appenders", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| {
                    log.time(iters, frame_bytes(&batch), |log, n| {
                        append_concurrently(log, record, threads, n)
                    })
                });
            },
        );
    }
    group.finish();
}

/// A consumer scanning the log from the page cache in 1 MiB batches, wrapping
/// around at the end.
fn read_batch(c: &mut Criterion) {
    let sample = records(1, KIB);
    let per_batch = MIB as u64 / frame_bytes(&sample);
    let total = per_batch * READ_BATCHES;
    let dir = scratch_dir();
    let log = open_log(FsyncPolicy::Never)(dir.path());
    let chunk = records(usize::try_from(per_batch).expect("batch size"), KIB);
    for _ in 0..READ_BATCHES {
        log.append_batch(&chunk).expect("filling the log");
    }
    // Hands the write buffer to the OS, so every read is a read of the file.
    log.sync().expect("syncing the filled log");

    let mut group = c.benchmark_group("read_batch_1MiB");
    group.throughput(Throughput::ElementsAndBytes {
        elements: per_batch,
        bytes: per_batch * KIB as u64,
    });
    let mut from = 0;
    group.bench_function("sequential_page_cache", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let batch = log
                    .read_batch(from, MIB as u64, u64::MAX)
                    .expect("read_batch");
                // Throughput assumes full batches; the log holds whole ones.
                assert_eq!(
                    batch.len() as u64,
                    per_batch,
                    "a short batch at offset {from}"
                );
                std::hint::black_box(batch);
                from = (from + per_batch) % total;
            }
            start.elapsed()
        });
    });
    group.finish();
    drop(log);
    drop(dir);
}

criterion_group! {
    name = benches;
    // Few samples and short runs keep the whole suite to a few minutes; each
    // sample still covers many operations.
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .without_plots();
    // The disk reference first, before the log benchmarks leave dirty pages
    // for the kernel to write back; it ends with the fdatasync figure and
    // `append_always` starts with batches of 1024, so the two figures the
    // target compares are measured back to back.
    targets = disk, append_always, group_commit, append_never, read_batch
}
criterion_main!(benches);
