//! Fuzzes recovery: `Log::open` on a directory built from the input (format in
//! `src/lib.rs`), then reads, an append or a few, close, and a reopen.
//!
//! Invariants:
//! * `Log::open` never panics (an error is fine);
//! * if it opens: `lowest <= next`, and the log cannot claim more records
//!   than its store files have room for (36 bytes each);
//! * every offset in `lowest..next` reads a record with that offset or
//!   errors; `next` (and `lowest - 1`) is out of range;
//! * `read_batch` from `lowest` never panics and returns consecutive offsets
//!   starting at `lowest`;
//! * each append errors, or succeeds at the previous `next_offset`, advances
//!   it by one and reads back what was appended; an oversized record is
//!   refused;
//! * `close` never panics; after a successful close the directory reopens
//!   with the same offsets, and every record read before reads the same.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use log_core::{Config, Log, Record, RecordKind};
use proglog_fuzz::{append_len, appends_for, config_for, parse_dir_image};

/// Offsets read one by one at most per phase (the rest are sampled).
const READS_MAX: u64 = 4096;

/// Where the scratch directories go: tmpfs when there is one, so the fsyncs
/// that `Log::open` does cost nothing.
fn scratch_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() && tempfile::tempdir_in(shm).is_ok() {
            shm.to_owned()
        } else {
            std::env::temp_dir()
        }
    })
}

/// The offsets of `lowest..next` to read: all of them, or an even sample.
fn offsets_to_read(lowest: u64, next: u64) -> impl Iterator<Item = u64> {
    let span = next - lowest;
    let step = span.div_ceil(READS_MAX).max(1);
    (0..span.div_ceil(step)).map(move |i| lowest + i * step)
}

/// Reads what can be read and checks the read invariants; returns the records
/// that read successfully.
fn check_reads(log: &Log, store_bytes: u64, phase: &str) -> Vec<Record> {
    let lowest = log.lowest_offset();
    let next = log.next_offset();
    assert!(lowest <= next, "{phase}: lowest {lowest} > next {next}");
    assert!(
        next - lowest <= store_bytes / 36,
        "{phase}: log claims {} records but its stores hold only {store_bytes} bytes",
        next - lowest
    );
    let mut good = Vec::new();
    for offset in offsets_to_read(lowest, next) {
        if let Ok(record) = log.read(offset) {
            assert_eq!(
                record.offset, offset,
                "{phase}: read({offset}) returned the record of another offset"
            );
            good.push(record);
        }
    }
    assert!(
        log.read(next).is_err(),
        "{phase}: read(next_offset = {next}) succeeded"
    );
    if lowest > 0 {
        assert!(
            log.read(lowest - 1).is_err(),
            "{phase}: read(lowest_offset - 1) succeeded"
        );
    }
    for (bytes_max, records_max) in [(u64::MAX, u64::MAX), (100, 3), (0, 1)] {
        if let Ok(batch) = log.read_batch(lowest, bytes_max, records_max) {
            assert!(
                batch.len() as u64 <= (next - lowest).min(records_max),
                "{phase}: read_batch returned too many"
            );
            for (i, record) in batch.iter().enumerate() {
                assert_eq!(
                    record.offset,
                    lowest + i as u64,
                    "{phase}: read_batch offsets are not consecutive"
                );
            }
        }
    }
    good
}

fn run(dir: &Path, config: &Config, appends: usize, store_bytes: u64) {
    let Ok(log) = Log::open(dir, config.clone()) else {
        return;
    };
    let mut good = check_reads(&log, store_bytes, "after open");

    for i in 0..appends {
        let len = append_len(i);
        let record = Record {
            offset: 0,
            term: 1,
            timestamp_ms: 1_800_000_000_000,
            kind: RecordKind::Data,
            producer: None,
            value: (0..len).map(|j| (j % 251) as u8).collect(),
        };
        let before = log.next_offset();
        match log.append(&record) {
            Ok(offset) => {
                assert!(
                    len as u64 <= config.record_bytes_max,
                    "an oversized record ({len} bytes) was appended"
                );
                assert_eq!(
                    offset, before,
                    "append returned {offset}, but next_offset was {before}"
                );
                assert_eq!(
                    log.next_offset(),
                    before + 1,
                    "next_offset did not advance by one"
                );
                let back = log
                    .read(offset)
                    .unwrap_or_else(|e| panic!("reading back appended {offset}: {e}"));
                assert_eq!(
                    back,
                    Record { offset, ..record },
                    "appended record reads back differently"
                );
                good.push(back);
            }
            Err(_) => assert_eq!(
                log.next_offset(),
                before,
                "a failed append moved next_offset"
            ),
        }
    }

    let (lowest, next) = (log.lowest_offset(), log.next_offset());
    let closed = log.close();
    drop(log);
    if closed.is_err() {
        return;
    }

    // A cleanly closed log must reopen, as it was.
    let log = Log::open(dir, config.clone())
        .unwrap_or_else(|e| panic!("reopening after a clean close: {e}"));
    assert_eq!(
        (log.lowest_offset(), log.next_offset()),
        (lowest, next),
        "offsets changed across close/reopen"
    );
    for record in good.iter().filter(|r| r.offset >= lowest) {
        match log.read(record.offset) {
            Ok(again) => assert_eq!(
                &again, record,
                "record {} changed across close/reopen",
                record.offset
            ),
            Err(e) => panic!(
                "record {} read before close but not after reopen: {e}",
                record.offset
            ),
        }
    }
    let _ = log.close();
}

fuzz_target!(|data: &[u8]| {
    let image = parse_dir_image(data);
    let Ok(scratch) = tempfile::Builder::new()
        .prefix("open_dir-")
        .tempdir_in(scratch_root())
    else {
        return;
    };
    for (name, content) in &image.files {
        // A name that cannot be created is simply left out.
        let _ = std::fs::write(scratch.path().join(name), content);
    }
    let config = config_for(image.config_selector);
    // Appends may add records; the bound is checked before and after them.
    let store_bytes = image.store_bytes() + 4 * (36 + 1024);
    run(
        scratch.path(),
        &config,
        appends_for(image.config_selector),
        store_bytes,
    );
});
