//! Group commit and failure handling, driven deterministically with the sync
//! gate and fault injection of `crate::testing`.

use std::time::{Duration, Instant};

use super::*;
use crate::testing;

/// How long a test waits for threads to reach a state before failing; far
/// above the microseconds it takes, so only a real hang trips it.
const CONDITION_TIMEOUT: Duration = Duration::from_secs(20);

fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + CONDITION_TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::yield_now();
    }
}

fn always() -> Config {
    Config {
        fsync: FsyncPolicy::Always,
        ..Config::default()
    }
}

/// Goal: appenders that arrive while an fsync runs share the next one.
/// Method: hold the first appender's fsync at the gate, let seven more append
/// and queue, release: exactly two syncs cover all eight appends.
#[test]
fn appenders_arriving_during_an_fsync_share_the_next_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), always()).expect("open");
    testing::close_sync_gate(dir.path());
    std::thread::scope(|scope| {
        let log = &log;
        let first = scope.spawn(|| log.append(&Record::new(b"first".to_vec())));
        wait_until("the first fsync is held", || testing::syncs_held() == 1);
        let others: Vec<_> = (0..7)
            .map(|i| scope.spawn(move || log.append(&Record::new(format!("r{i}")))))
            .collect();
        wait_until("all seven have written", || log.next_offset() == 8);
        // Reads never wait on an fsync: every record reads while one is held.
        for offset in 0..8 {
            log.read(offset).expect("read during a held fsync");
        }
        testing::open_sync_gate();
        let mut offsets: Vec<u64> = others
            .into_iter()
            .map(|h| h.join().expect("join").expect("append"))
            .collect();
        offsets.push(first.join().expect("join").expect("append"));
        offsets.sort_unstable();
        assert_eq!(offsets, (0..8).collect::<Vec<_>>());
    });
    assert_eq!(
        log.sync_count(),
        2,
        "eight appends, one held fsync, one shared fsync"
    );
}

/// Goal: an fsync error reaches every waiting appender and the log refuses
/// writes until reopened (no "fsyncgate"); reopening recovers.
#[test]
fn an_fsync_failure_fails_every_waiter_and_later_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), always()).expect("open");
    log.append(&Record::new(b"durable".to_vec()))
        .expect("append before the failure");
    testing::close_sync_gate(dir.path());
    testing::inject_sync_failure(dir.path());
    std::thread::scope(|scope| {
        let log = &log;
        let waiters: Vec<_> = (0..4)
            .map(|i| scope.spawn(move || log.append(&Record::new(format!("w{i}")))))
            .collect();
        wait_until("all four have written", || log.next_offset() == 5);
        testing::open_sync_gate();
        for waiter in waiters {
            let result = waiter.join().expect("join");
            assert!(
                matches!(result, Err(Error::Failed { ref cause }) if cause.contains("injected")),
                "{result:?}"
            );
        }
    });
    assert!(matches!(
        log.append(&Record::new(b"later".to_vec())),
        Err(Error::Failed { .. })
    ));
    assert!(matches!(log.sync(), Err(Error::Failed { .. })));
    assert!(matches!(log.truncate_suffix(0), Err(Error::Failed { .. })));
    // Reads still work, and close refuses to mark the directory clean.
    assert_eq!(log.read(0).expect("read").value, &b"durable"[..]);
    assert!(matches!(log.close(), Err(Error::Failed { .. })));
    drop(log);
    let reopened = Log::open(dir.path(), always()).expect("reopen");
    assert!(!reopened.opened_clean());
    assert_eq!(reopened.read(0).expect("read").value, &b"durable"[..]);
    let offset = reopened
        .append(&Record::new(b"after".to_vec()))
        .expect("append after reopen");
    assert_eq!(reopened.read(offset).expect("read").value, &b"after"[..]);
}

/// Goal: with `interval`, appends return before their sync and the
/// background thread makes them durable.
#[test]
fn interval_policy_syncs_in_the_background() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        fsync: FsyncPolicy::Interval {
            interval_ms: 5,
            bytes: u64::MAX,
        },
        ..Config::default()
    };
    let log = Log::open(dir.path(), config).expect("open");
    log.append(&Record::new(b"x".to_vec())).expect("append");
    wait_until("the background sync ran", || log.sync_count() >= 1);
}

/// Goal: with `interval`, crossing the byte threshold syncs inline.
#[test]
fn interval_policy_syncs_inline_past_the_byte_threshold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        fsync: FsyncPolicy::Interval {
            interval_ms: 3_600_000,
            bytes: 100,
        },
        ..Config::default()
    };
    let log = Log::open(dir.path(), config).expect("open");
    log.append(&Record::new(vec![0; 10])).expect("small append");
    assert_eq!(log.sync_count(), 0);
    log.append(&Record::new(vec![0; 100]))
        .expect("append past the threshold");
    assert_eq!(log.sync_count(), 1);
}

/// Goal: a panic inside the writer's critical section fails the log, so no
/// later append can write a duplicate offset after a half-done one.
#[test]
fn a_panic_while_writing_fails_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(
        dir.path(),
        Config {
            fsync: FsyncPolicy::Never,
            ..Config::default()
        },
    )
    .expect("open");
    log.append(&Record::new(b"before".to_vec()))
        .expect("append");
    let panicked = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let _writer = log.shared.lock_writer();
                panic!("simulated panic between store and index writes");
            })
            .join()
    });
    assert!(panicked.is_err());
    assert!(matches!(
        log.append(&Record::new(b"after".to_vec())),
        Err(Error::Failed { .. })
    ));
    assert_eq!(log.read(0).expect("reads still work").value, &b"before"[..]);
}

/// The active store's bytes no `fdatasync` has covered yet.
fn unsynced_bytes(log: &Log) -> u64 {
    let active = Arc::clone(&log.shared.lock_writer().active);
    let store = active.store();
    store
        .size()
        .saturating_sub(testing::synced_len(store.path()))
}

/// Goal: under `always`, "acknowledged" means on stable storage: every
/// append returns only after an `fdatasync` covering its bytes returned.
/// (A SIGKILL keeps the page cache, so `tests/crash.rs` cannot see this.)
/// Method: the store's one `fdatasync` call reports the length it made
/// durable (`crate::testing`). After every acknowledgement of a
/// single-threaded phase (singles, batches, batches that roll, deferred
/// appends after their ticket) no byte of the active store may be
/// unsynced; then eight threads append concurrently (group commit), and a
/// simulated power loss cuts every store to its synced length: every
/// acknowledged record must read back after reopening.
#[test]
fn acknowledged_appends_survive_losing_every_unsynced_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Small segments, so batches roll and sealing syncs run too.
    let config = Config {
        record_bytes_max: 512,
        segment_bytes_max: 4096,
        index_entries_max: 64,
        ..always()
    };
    let value = |offset: u64| format!("value-{offset}-{}", "v".repeat((offset % 97) as usize));
    let log = Log::open(dir.path(), config.clone()).expect("open");
    let mut acknowledged = 0u64;
    for round in 0..120u64 {
        let count = 1 + round % 9;
        let records: Vec<Record> = (acknowledged..acknowledged + count)
            .map(|o| Record::new(value(o)))
            .collect();
        let first = match round % 3 {
            // One record on this path; the rest go to the next rounds.
            0 => log.append(&records[0]).inspect(|_| acknowledged += 1),
            1 => log
                .append_batch(&records)
                .inspect(|_| acknowledged += count),
            _ => match log.append_batch_deferred(&records).expect("deferred") {
                Deferred::Written { first, ticket } => {
                    let ticket = ticket.expect("`always` hands back a ticket");
                    log.wait_synced(ticket).map(|()| {
                        acknowledged += count;
                        first
                    })
                }
                Deferred::WouldRoll => log
                    .append_batch(&records)
                    .inspect(|_| acknowledged += count),
            },
        }
        .expect("append");
        assert!(first < acknowledged);
        assert_eq!(
            unsynced_bytes(&log),
            0,
            "round {round}: offsets below {acknowledged} acknowledged with bytes unsynced"
        );
    }
    assert!(log.segment_count() > 3, "the rounds rolled segments");
    const THREADS: u64 = 8;
    const APPENDS_PER_THREAD: u64 = 40;
    let mut concurrent: Vec<(u64, Vec<u8>)> = std::thread::scope(|scope| {
        let log = &log;
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                scope.spawn(move || {
                    (0..APPENDS_PER_THREAD)
                        .map(|i| {
                            let bytes = format!("thread-{t}-append-{i}").into_bytes();
                            let offset = log
                                .append(&Record::new(bytes.clone()))
                                .expect("concurrent append");
                            (offset, bytes)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("join"))
            .collect()
    });
    concurrent.sort_unstable();
    drop(log);
    testing::drop_unsynced_bytes(dir.path());
    let log = Log::open(dir.path(), config).expect("reopen after the power loss");
    for offset in 0..acknowledged {
        assert_eq!(
            log.read(offset).expect("acknowledged record").value,
            value(offset).into_bytes(),
            "offset {offset}"
        );
    }
    assert_eq!(concurrent.len() as u64, THREADS * APPENDS_PER_THREAD);
    for (offset, bytes) in concurrent {
        assert_eq!(
            log.read(offset).expect("acknowledged record").value,
            bytes,
            "offset {offset}"
        );
    }
}

/// Goal: after a write fails (a full disk), the offsets the log reports are
/// those of the records in the file, as a reopen finds them: no phantom
/// offset for a record that was only buffered.
/// Method: a 4 KiB write buffer and 3000-byte records: A is flushed when B
/// is appended, B stays buffered; the flush that C's append forces fails.
#[test]
fn a_failed_write_leaves_no_phantom_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        fsync: FsyncPolicy::Never,
        write_buffer_bytes: 4096,
        ..Config::default()
    };
    let log = Log::open(dir.path(), config.clone()).expect("open");
    let value = |c: u8| Record::new(vec![c; 3000]);
    assert_eq!(log.append(&value(b'a')).expect("A"), 0);
    assert_eq!(log.append(&value(b'b')).expect("B (buffered)"), 1);
    testing::inject_write_failure(dir.path());
    let failed = log.append(&value(b'c'));
    assert!(matches!(failed, Err(Error::Io { .. })), "{failed:?}");
    assert_eq!(log.next_offset(), 1, "only A reached the file");
    assert!(matches!(
        log.read(1),
        Err(Error::OutOfRange { next: 1, .. })
    ));
    assert_eq!(log.read(0).expect("A").value, vec![b'a'; 3000]);
    assert!(matches!(log.close(), Err(Error::Failed { .. })));
    drop(log);
    let reopened = Log::open(dir.path(), config).expect("reopen");
    assert_eq!(reopened.next_offset(), 1, "what the failed log reported");
}
