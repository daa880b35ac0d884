//! Behaviour of the log API: appends, reads, limits, rolls, truncation,
//! retention, reset, reopen and concurrency.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use log_core::{
    Config, Deferred, Error, FRAME_HEADER_BYTES, FsyncPolicy, INDEX_ENTRY_BYTES, Log, Record,
    RecordKind, Retention,
};

fn small() -> Config {
    Config {
        record_bytes_max: 512,
        segment_bytes_max: 2048,
        index_entries_max: 10,
        fsync: FsyncPolicy::Never,
        ..Config::default()
    }
}

fn value(offset: u64) -> Vec<u8> {
    format!(
        "record-{offset}-{}",
        "x".repeat(usize::try_from(offset % 50).unwrap_or(0))
    )
    .into_bytes()
}

fn fill(log: &Log, from: u64, to: u64) {
    for offset in from..to {
        assert_eq!(
            log.append(&Record::new(value(offset))).expect("append"),
            offset
        );
    }
}

fn file_sizes(dir: &Path, suffix: &str) -> Vec<u64> {
    let mut sizes: Vec<(String, u64)> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry"))
        .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().expect("stat").len(),
            )
        })
        .collect();
    sizes.sort();
    sizes.into_iter().map(|(_, size)| size).collect()
}

#[test]
fn a_record_reads_back_with_every_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), Config::default()).expect("open");
    let record = Record {
        offset: 999,
        term: 5,
        timestamp_ms: 1234,
        kind: RecordKind::Internal,
        producer: None,
        value: b"v".to_vec().into(),
    };
    assert_eq!(log.append(&record).expect("append"), 0);
    assert_eq!(
        log.read(0).expect("read"),
        Record {
            offset: 0,
            ..record
        }
    );
    assert_eq!(
        (log.lowest_offset(), log.highest_offset(), log.next_offset()),
        (0, Some(0), 1)
    );
}

#[test]
fn an_empty_log_has_no_highest_offset_and_reads_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), Config::default()).expect("open");
    assert_eq!(log.highest_offset(), None);
    assert!(matches!(
        log.read(0),
        Err(Error::OutOfRange {
            offset: 0,
            lowest: 0,
            next: 0
        })
    ));
    assert_eq!(log.read_batch(0, 100, 100).expect("at the tail"), vec![]);
}

#[test]
fn append_batch_returns_the_first_of_dense_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small()).expect("open");
    fill(&log, 0, 3);
    let batch: Vec<Record> = (3..40).map(|o| Record::new(value(o))).collect();
    assert_eq!(log.append_batch(&batch).expect("batch"), 3);
    assert_eq!(log.append_batch(&[]).expect("empty batch"), 40);
    for offset in 0..40 {
        assert_eq!(log.read(offset).expect("read").value, value(offset));
    }
    assert!(
        log.segment_count() > 2,
        "the batch was split across segments"
    );
}

#[test]
fn an_oversize_record_is_refused_naming_the_limit_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small()).expect("open");
    fill(&log, 0, 2);
    let batch = vec![Record::new(b"ok".to_vec()), Record::new(vec![0; 513])];
    let error = log.append_batch(&batch).expect_err("too large");
    assert!(
        matches!(
            error,
            Error::RecordTooLarge {
                size: 513,
                limit: 512
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("512"), "{error}");
    assert_eq!(log.next_offset(), 2);
    assert!(
        log.append(&Record::new(vec![0; 512])).is_ok(),
        "exactly the limit is fine"
    );
}

#[test]
fn append_at_refuses_the_wrong_offset_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small()).expect("open");
    fill(&log, 0, 3);
    assert!(matches!(
        log.append_at(5, &Record::new(b"x".to_vec())),
        Err(Error::OffsetMismatch {
            expected: 5,
            next: 3
        })
    ));
    assert_eq!(log.next_offset(), 3);
    assert_eq!(
        log.append_at(3, &Record::new(b"y".to_vec()))
            .expect("append_at"),
        3
    );
    let batch = [Record::new(b"a".to_vec()), Record::new(b"b".to_vec())];
    assert_eq!(log.append_batch_at(4, &batch).expect("append_batch_at"), 4);
}

#[test]
fn reads_outside_the_log_are_out_of_range_with_the_valid_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small()).expect("open");
    fill(&log, 0, 30);
    let lowest = log.truncate_prefix(15).expect("truncate_prefix");
    assert!(lowest > 0);
    for offset in [0, lowest - 1, 30, 31, u64::MAX] {
        match log.read(offset) {
            Err(Error::OutOfRange {
                offset: o,
                lowest: l,
                next: 30,
            }) => assert_eq!((o, l), (offset, lowest)),
            other => panic!("read {offset}: {other:?}"),
        }
    }
    assert!(matches!(
        log.read_batch(31, 100, 10),
        Err(Error::OutOfRange { .. })
    ));
    assert!(matches!(
        log.read_batch(lowest - 1, 100, 10),
        Err(Error::OutOfRange { .. })
    ));
}

#[test]
fn read_batch_respects_byte_and_record_limits_but_returns_one_large_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small()).expect("open");
    fill(&log, 0, 50);
    let all = log.read_batch(0, u64::MAX, u64::MAX).expect("all");
    assert_eq!(
        all.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..50).collect::<Vec<_>>()
    );
    assert_eq!(log.read_batch(7, u64::MAX, 5).expect("five").len(), 5);
    let frame = |o: u64| (FRAME_HEADER_BYTES + value(o).len()) as u64;
    let budget = frame(10) + frame(11) + frame(12);
    let batch = log.read_batch(10, budget, 100).expect("by bytes");
    assert_eq!(
        batch.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![10, 11, 12]
    );
    assert_eq!(log.read_batch(10, 1, 100).expect("tiny budget").len(), 1);
}

#[test]
fn segments_roll_before_store_or_index_would_overflow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small();
    let log = Log::open(dir.path(), config.clone()).expect("open");
    fill(&log, 0, 200);
    let batch: Vec<Record> = (200..260).map(|o| Record::new(value(o))).collect();
    log.append_batch(&batch).expect("batch");
    log.close().expect("close");
    let stores = file_sizes(dir.path(), ".store");
    let indexes = file_sizes(dir.path(), ".index");
    assert!(stores.len() > 10);
    assert!(
        stores.iter().all(|&s| s <= config.segment_bytes_max),
        "{stores:?}"
    );
    let entries_max = config.index_entries_max * INDEX_ENTRY_BYTES as u64;
    assert!(
        indexes
            .iter()
            .all(|&s| s <= entries_max && s % INDEX_ENTRY_BYTES as u64 == 0),
        "{indexes:?}"
    );
    let log = Log::open(dir.path(), config).expect("reopen");
    assert!(log.opened_clean());
    assert_eq!(
        log.read_batch(0, u64::MAX, u64::MAX).expect("all").len(),
        260
    );
}

#[test]
fn truncate_prefix_drops_only_whole_sealed_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small()).expect("open");
    fill(&log, 0, 100);
    let segments = log.segment_count();
    let lowest = log.truncate_prefix(35).expect("truncate_prefix");
    assert!(lowest <= 35 && lowest > 0, "lowest {lowest}");
    assert!(log.segment_count() < segments);
    assert_eq!(log.read(lowest).expect("lowest reads").value, value(lowest));
    let lowest = log.truncate_prefix(u64::MAX).expect("everything");
    assert_eq!(log.segment_count(), 1, "the active segment stays");
    assert_eq!(lowest, log.lowest_offset());
    assert_eq!(log.read(99).expect("the newest reads").value, value(99));
}

#[test]
fn truncate_suffix_removes_across_segments_and_survives_reopen() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::open(dir.path(), small()).expect("open");
        fill(&log, 0, 100);
        log.truncate_suffix(41).expect("truncate_suffix");
        assert_eq!(log.next_offset(), 42);
        assert!(matches!(log.read(42), Err(Error::OutOfRange { .. })));
        assert_eq!(
            log.append(&Record::new(b"new-42".to_vec()))
                .expect("append"),
            42
        );
        if clean {
            log.close().expect("close");
        }
        drop(log);
        let log = Log::open(dir.path(), small()).expect("reopen");
        assert_eq!(log.next_offset(), 43, "clean={clean}");
        assert_eq!(log.read(41).expect("kept").value, value(41));
        assert_eq!(log.read(42).expect("new").value, &b"new-42"[..]);
    }
}

#[test]
fn truncate_suffix_to_one_below_the_lowest_empties_the_log_and_further_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small()).expect("open");
    fill(&log, 0, 60);
    let lowest = log.truncate_prefix(30).expect("truncate_prefix");
    assert!(matches!(
        log.truncate_suffix(lowest - 2),
        Err(Error::OutOfRange { .. })
    ));
    log.truncate_suffix(lowest - 1).expect("empty it");
    assert_eq!(
        (log.lowest_offset(), log.next_offset(), log.highest_offset()),
        (lowest, lowest, None)
    );
    assert_eq!(
        log.append(&Record::new(b"again".to_vec())).expect("append"),
        lowest
    );
}

#[test]
fn reset_starts_an_empty_log_at_the_given_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small()).expect("open");
    fill(&log, 0, 40);
    log.reset(1000).expect("reset");
    assert_eq!((log.lowest_offset(), log.next_offset()), (1000, 1000));
    assert_eq!(
        log.append(&Record::new(b"a".to_vec())).expect("append"),
        1000
    );
    log.close().expect("close");
    assert_eq!(
        file_sizes(dir.path(), ".store").len(),
        1,
        "old segments are gone"
    );
    let log = Log::open(dir.path(), small()).expect("reopen");
    assert_eq!((log.lowest_offset(), log.next_offset()), (1000, 1001));
}

#[test]
fn retention_by_bytes_drops_oldest_segments_but_never_the_active_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        retention: Retention {
            bytes_max: Some(5000),
            age_max_ms: None,
        },
        ..small()
    };
    let log = Log::open(dir.path(), config).expect("open");
    fill(&log, 0, 300);
    // Enforced on every roll, so the log stays within a segment of the limit.
    assert!(log.size_bytes() <= 5000 + 2048, "size {}", log.size_bytes());
    assert!(log.lowest_offset() > 0);
    assert_eq!(log.read(299).expect("newest").value, value(299));
}

#[test]
fn retention_by_age_drops_segments_whose_newest_record_is_old() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        retention: Retention {
            bytes_max: None,
            age_max_ms: Some(60_000),
        },
        ..small()
    };
    let log = Log::open(dir.path(), config).expect("open");
    let now = log_core::now_ms();
    let old = |o: u64| Record {
        timestamp_ms: now - 3_600_000,
        ..Record::new(value(o))
    };
    let young = |o: u64| Record {
        timestamp_ms: now,
        ..Record::new(value(o))
    };
    log.append_batch(&(0..50).map(old).collect::<Vec<_>>())
        .expect("old");
    log.append_batch(&(50..100).map(young).collect::<Vec<_>>())
        .expect("young");
    // Enforced on every roll: the old segments are gone already.
    assert!(
        log.lowest_offset() > 0 && log.lowest_offset() <= 50,
        "lowest {}",
        log.lowest_offset()
    );
    assert_eq!(
        log.enforce_retention(now).expect("retention"),
        0,
        "young segments stay"
    );
    assert!(log.read(50).is_ok());
    // Two minutes later even the young sealed segments are too old.
    assert!(log.enforce_retention(now + 120_000).expect("retention") > 0);
    assert_eq!(
        log.segment_count(),
        1,
        "the active segment is never dropped"
    );
    assert_eq!(log.read(99).expect("newest").value, value(99));
}

#[test]
fn a_clean_close_needs_no_recovery_and_a_drop_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small()).expect("open");
    assert!(!log.opened_clean(), "a new log was never closed");
    fill(&log, 0, 25);
    log.close().expect("close");
    let log = Log::open(dir.path(), small()).expect("reopen");
    assert!(log.opened_clean());
    fill(&log, 25, 30);
    drop(log);
    let log = Log::open(dir.path(), small()).expect("reopen after drop");
    assert!(!log.opened_clean());
    assert_eq!(
        log.read_batch(0, u64::MAX, u64::MAX).expect("all").len(),
        30
    );
}

#[test]
fn a_closed_log_refuses_everything_and_a_locked_directory_refuses_a_second_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small()).expect("open");
    fill(&log, 0, 3);
    assert!(matches!(
        Log::open(dir.path(), small()),
        Err(Error::Locked { .. })
    ));
    log.close().expect("close");
    log.close().expect("closing twice is fine");
    assert!(matches!(
        log.append(&Record::new(b"x".to_vec())),
        Err(Error::Closed)
    ));
    assert!(matches!(log.read(0), Err(Error::Closed)));
    assert!(matches!(log.read_batch(0, 10, 10), Err(Error::Closed)));
}

#[test]
fn an_invalid_config_is_refused_before_the_directory_is_touched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log");
    let config = Config {
        segment_bytes_max: 10,
        ..Config::default()
    };
    assert!(
        matches!(Log::open(&path, config), Err(Error::Config(e)) if e.field == "segment_bytes_max")
    );
    assert!(!path.exists());
}

#[test]
fn remove_deletes_the_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log");
    let log = Log::open(&path, small()).expect("open");
    fill(&log, 0, 30);
    log.remove().expect("remove");
    assert!(!path.exists());
}

#[test]
fn the_raw_reader_returns_every_store_byte_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small()).expect("open");
    fill(&log, 0, 80);
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut log.reader().expect("reader"), &mut raw).expect("read");
    let mut offset = 0;
    let mut at = 0;
    while at < raw.len() {
        let (record, used) = log_core::decode_frame(&raw[at..], 512).expect("frame");
        assert_eq!(
            (record.offset, record.value.to_vec()),
            (offset, value(offset))
        );
        offset += 1;
        at += used;
    }
    assert_eq!(offset, 80);
}

/// Goal: many readers run while one appender writes and rolls segments, and
/// every read is exactly what was appended.
#[test]
fn concurrent_readers_see_exactly_what_the_appender_wrote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(
        dir.path(),
        Config {
            write_buffer_bytes: 700,
            ..small()
        },
    )
    .expect("open");
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..4u64)
            .map(|seed| {
                let (log, done) = (&log, &done);
                scope.spawn(move || {
                    let mut reads = 0u64;
                    let mut state = seed + 1;
                    while !done.load(Ordering::Acquire) {
                        let next = log.next_offset();
                        if next == 0 {
                            continue;
                        }
                        state = state
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1);
                        let offset = (state >> 33) % next;
                        assert_eq!(log.read(offset).expect("read").value, value(offset));
                        let batch = log.read_batch(offset, 4096, 20).expect("read_batch");
                        for record in batch {
                            assert_eq!(record.value, value(record.offset));
                        }
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        fill(&log, 0, 3000);
        done.store(true, Ordering::Release);
        for reader in readers {
            assert!(reader.join().expect("reader") > 0);
        }
    });
}

/// Goal: concurrent `always` appenders all succeed with unique, dense
/// offsets. (Whether they share fsyncs depends on how their calls overlap;
/// `appenders_arriving_during_an_fsync_share_the_next_one` in
/// `src/log/tests.rs` proves the sharing with a held fsync, and
/// `appends_written_before_an_fsync_all_share_it` below without one.)
#[test]
fn concurrent_always_appenders_get_dense_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(
        dir.path(),
        Config {
            fsync: FsyncPolicy::Always,
            ..Config::default()
        },
    )
    .expect("open");
    let mut offsets: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let log = &log;
                scope.spawn(move || {
                    (0..50)
                        .map(|i| {
                            log.append(&Record::new(format!("{t}-{i}")))
                                .expect("append")
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
    offsets.sort_unstable();
    assert_eq!(offsets, (0..400).collect::<Vec<_>>());
    for (offset, record) in log
        .read_batch(0, u64::MAX, u64::MAX)
        .expect("read all")
        .iter()
        .enumerate()
    {
        assert_eq!(record.offset, offset as u64);
    }
}

/// Goal: one fsync covers every append written before it started (the
/// sharing that group commit is for), here with no timing involved.
/// Method: eight threads each write 50 deferred `always` appends and keep
/// their tickets; once all 400 are written, every thread waits on its
/// tickets. The first wait syncs all 400, so exactly one fsync runs: a
/// log syncing per append would run 400.
#[test]
fn appends_written_before_an_fsync_all_share_it() {
    const THREADS: usize = 8;
    const APPENDS_PER_THREAD: usize = 50;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(
        dir.path(),
        Config {
            fsync: FsyncPolicy::Always,
            ..Config::default()
        },
    )
    .expect("open");
    let all_written = std::sync::Barrier::new(THREADS);
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (log, all_written) = (&log, &all_written);
            scope.spawn(move || {
                let tickets: Vec<_> = (0..APPENDS_PER_THREAD)
                    .map(|i| {
                        let record = Record::new(format!("{t}-{i}"));
                        match log.append_batch_deferred(&[record]).expect("append") {
                            Deferred::Written {
                                ticket: Some(ticket),
                                ..
                            } => ticket,
                            other => panic!("`always` wants a ticket, got {other:?}"),
                        }
                    })
                    .collect();
                all_written.wait();
                for ticket in tickets {
                    log.wait_synced(ticket).expect("synced");
                }
            });
        }
    });
    assert_eq!(log.next_offset(), (THREADS * APPENDS_PER_THREAD) as u64);
    assert_eq!(log.sync_count(), 1, "400 appends written before one fsync");
}

#[test]
fn offsets_near_the_limit_are_refused_not_wrapped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small()).expect("open");
    assert!(matches!(
        log.reset(log_core::OFFSET_LIMIT),
        Err(Error::OutOfRange { .. })
    ));
    log.reset(log_core::OFFSET_LIMIT - 2)
        .expect("reset just below the limit");
    let batch = [
        Record::new(b"a".to_vec()),
        Record::new(b"b".to_vec()),
        Record::new(b"c".to_vec()),
    ];
    assert!(
        matches!(log.append_batch(&batch), Err(Error::OutOfRange { .. })),
        "three would reach the limit"
    );
    assert_eq!(
        log.append_batch(&batch[..2]).expect("two fit"),
        log_core::OFFSET_LIMIT - 2
    );
    assert!(matches!(
        log.append(&batch[0]),
        Err(Error::OutOfRange { .. })
    ));
    log.close().expect("close");
    drop(log);
    // A segment named at the limit is corruption, not a log to open.
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join(format!("{:020}.store", u64::MAX)), b"").expect("write");
    assert!(matches!(
        Log::open(dir.path(), small()),
        Err(Error::Corrupt { .. })
    ));
}

/// Goal: a deferred append hands back exactly the fsync wait the policy
/// asks for — none under `Never`, every time under `Always`, and under
/// `Interval` only once the unsynced bytes pass the bound — and waiting on
/// the ticket is what syncs.
#[test]
fn a_deferred_append_returns_a_sync_ticket_exactly_when_the_policy_wants_one() {
    let records = |n: u64| -> Vec<Record> { (0..n).map(|i| Record::new(value(i))).collect() };
    for (fsync, tickets) in [
        (FsyncPolicy::Never, [false, false, false]),
        (FsyncPolicy::Always, [true, true, true]),
        // Batches of 4, 4 and 1 records, ~186, ~186 and 45 bytes of frames:
        // the second passes the bound; its sync starts the count afresh.
        (
            FsyncPolicy::Interval {
                interval_ms: 3_600_000,
                bytes: 250,
            },
            [false, true, false],
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::open(dir.path(), Config { fsync, ..small() }).expect("open");
        let mut next = 0;
        for (batch, wanted) in tickets.into_iter().enumerate() {
            let syncs = log.sync_count();
            let Deferred::Written { first, ticket } = log
                .append_batch_deferred(&records(if batch == 2 { 1 } else { 4 }))
                .expect("append")
            else {
                panic!("{fsync:?} batch {batch}: the segment has room");
            };
            assert_eq!(first, next, "{fsync:?} batch {batch}");
            next = log.next_offset();
            assert_eq!(ticket.is_some(), wanted, "{fsync:?} batch {batch}");
            assert_eq!(
                log.sync_count(),
                syncs,
                "{fsync:?}: no fsync before the wait"
            );
            if let Some(ticket) = ticket {
                log.wait_synced(ticket).expect("sync");
                assert_eq!(log.sync_count(), syncs + 1, "{fsync:?}: the wait synced");
            }
        }
        assert_eq!(log.read_batch(0, u64::MAX, 100).expect("read").len(), 9);
    }
}

/// Goal: a deferred append never rolls the segment (a roll syncs the old
/// one): a batch that does not fit is refused whole, and an ordinary append
/// then rolls and writes it.
#[test]
fn a_deferred_append_that_would_roll_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small()).expect("open");
    fill(&log, 0, 9);
    let batch = [Record::new(value(9)), Record::new(value(10))];
    let refused = log.append_batch_deferred(&batch).expect("deferred");
    assert!(matches!(refused, Deferred::WouldRoll), "{refused:?}");
    assert_eq!(log.next_offset(), 9, "nothing was written");
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.append_batch(&batch).expect("append"), 9);
    assert_eq!(log.segment_count(), 2, "the ordinary append rolled");
    let read: Vec<_> = log
        .read_batch(0, u64::MAX, 100)
        .expect("read")
        .into_iter()
        .map(|r| r.value.to_vec())
        .collect();
    assert_eq!(read, (0..11).map(value).collect::<Vec<_>>());
}
