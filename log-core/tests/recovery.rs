//! Recovery on open: torn tails, bit flips and damaged indexes.
//!
//! Each test builds a small log, damages its files the way a crash or the
//! disk could, reopens it and checks exactly what comes back.

use std::fs;
use std::path::{Path, PathBuf};

use log_core::{Config, Error, FRAME_HEADER_BYTES, FsyncPolicy, INDEX_ENTRY_BYTES, Log, Record};

fn config() -> Config {
    Config {
        record_bytes_max: 256,
        segment_bytes_max: 1024,
        index_entries_max: 16,
        fsync: FsyncPolicy::Never,
        ..Config::default()
    }
}

/// The value of the record at `offset`: sizes vary so frames do too.
fn value(offset: u64) -> Vec<u8> {
    let len = usize::try_from(offset * 7 % 40).unwrap_or(0) + 1;
    (0..len)
        .map(|i| (offset as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

fn fill(dir: &Path, records: u64) -> Log {
    let log = Log::open(dir, config()).expect("open");
    for offset in 0..records {
        assert_eq!(
            log.append(&Record::new(value(offset))).expect("append"),
            offset
        );
    }
    log
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

/// Goal: a crash mid-write loses only the unacknowledged tail.
/// Method: for every cut point inside the last three records of a log left
/// without a clean close, reopen from a copy cut there; exactly the complete
/// records before the cut come back and the next append gets the next offset.
#[test]
fn torn_tail_is_cut_at_every_byte_of_the_last_three_records() {
    let pristine = tempfile::tempdir().expect("tempdir");
    let total = 12;
    drop(fill(pristine.path(), total)); // no close: as after a crash
    let store = files_with_suffix(pristine.path(), ".store")
        .pop()
        .expect("a store");
    let bytes = fs::read(&store).expect("read store");
    // Frame boundaries of the newest segment, from its first record on.
    let first_in_store: u64 = store
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("segment name");
    let mut starts = vec![0u64];
    for offset in first_in_store..total {
        let last = *starts.last().expect("non-empty");
        starts.push(last + (FRAME_HEADER_BYTES + value(offset).len()) as u64);
    }
    assert_eq!(
        *starts.last().expect("end"),
        bytes.len() as u64,
        "the newest store holds exactly these frames"
    );
    let records_in_store = starts.len() as u64 - 1;
    assert!(
        records_in_store >= 3,
        "the newest segment must hold the last three records"
    );
    let cut_from = starts[starts.len() - 4];
    for cut in cut_from..bytes.len() as u64 {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(pristine.path(), dir.path());
        let copy = dir.path().join(store.file_name().expect("name"));
        fs::write(&copy, &bytes[..usize::try_from(cut).expect("small")]).expect("cut");
        let complete = starts.iter().filter(|&&s| s <= cut).count() as u64 - 1;
        let expected_next = first_in_store + complete;
        let log = Log::open(dir.path(), config()).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(log.next_offset(), expected_next, "cut at {cut}");
        for offset in log.lowest_offset()..expected_next {
            assert_eq!(
                log.read(offset).expect("read").value,
                value(offset),
                "cut at {cut}, offset {offset}"
            );
        }
        assert_eq!(
            log.append(&Record::new(b"next".to_vec())).expect("append"),
            expected_next,
            "cut at {cut}"
        );
        assert_eq!(
            log.read(expected_next).expect("read new").value,
            &b"next"[..]
        );
    }
}

/// Goal: a zero-filled or garbage tail (file extended, data never written)
/// never parses as records and is cut.
#[test]
fn zero_filled_and_garbage_tails_are_cut() {
    let garbage: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
    for tail in [vec![0u8; 4096], garbage] {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(fill(dir.path(), 5));
        let store = files_with_suffix(dir.path(), ".store")
            .pop()
            .expect("store");
        let mut bytes = fs::read(&store).expect("read");
        bytes.extend_from_slice(&tail);
        fs::write(&store, &bytes).expect("write");
        let log = Log::open(dir.path(), config()).expect("open");
        assert_eq!(log.next_offset(), 5);
        assert_eq!(
            fs::metadata(&store).expect("stat").len(),
            bytes.len() as u64 - tail.len() as u64
        );
    }
}

/// Goal: damage below the tail is an error naming the segment and byte, not
/// silently skipped, after a crash and after a clean close alike.
#[test]
fn corruption_below_the_tail_names_file_and_position() {
    for clean in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = fill(dir.path(), 6);
        if clean {
            log.close().expect("close");
        }
        drop(log);
        let store = files_with_suffix(dir.path(), ".store")
            .pop()
            .expect("store");
        let mut bytes = fs::read(&store).expect("read");
        // Record 2's payload, well inside the only segment.
        let position = (0..2)
            .map(|o| FRAME_HEADER_BYTES + value(o).len())
            .sum::<usize>();
        bytes[position + FRAME_HEADER_BYTES] ^= 0x40;
        fs::write(&store, &bytes).expect("write");
        // After a crash the newest segment is scanned, so opening fails;
        // after a clean close it is only validated, so the read fails.
        let error = if clean {
            let log = Log::open(dir.path(), config()).expect("clean open validates cheaply");
            assert_eq!(log.read(1).expect("the record before").value, value(1));
            assert_eq!(log.read(3).expect("the record after").value, value(3));
            log.read(2).expect_err("the damaged record must not read")
        } else {
            Log::open(dir.path(), config()).expect_err("a scan finds the damage")
        };
        match error {
            Error::Corrupt {
                path, position: at, ..
            } => {
                assert_eq!(path, store, "clean={clean}");
                assert_eq!(at, position as u64, "clean={clean}");
            }
            other => panic!("clean={clean}: expected corruption, got {other:?}"),
        }
    }
}

/// What reopening a log with one flipped bit did.
#[derive(Debug, PartialEq)]
enum FlipOutcome {
    /// Open failed with `Corrupt` naming this store file and position.
    Refused { store: String, position: u64 },
    /// Open succeeded: the log ends before `next`, and these offsets (below
    /// it) read as `Corrupt`; every other one read back unchanged.
    Opened { next: u64, corrupt: Vec<u64> },
}

/// The outcome of a flipped bit in `index`, whose segment's frames are in
/// `frames_of` (by store path) as `(offset, position, length)`. The newest
/// segment after a crash is rebuilt from its store: nothing is lost. Any
/// other index is trusted when it passes the open checks (entry `i` holds
/// `i`, positions strictly increase from 0, the last one is the last
/// frame's); a flip that passes them misplaces entry `i`, so records
/// `i - 1` and `i`, whose extents it gives, read as `Corrupt` (detected,
/// never served) though the store is intact. A flip that fails them makes
/// open rebuild the index: nothing is lost.
fn index_flip_outcome(
    index: &Path,
    flipped: &[u8],
    frames_of: &std::collections::BTreeMap<PathBuf, Vec<(u64, u64, u64)>>,
    clean: bool,
    total: u64,
) -> FlipOutcome {
    let intact = FlipOutcome::Opened {
        next: total,
        corrupt: vec![],
    };
    let store = index.with_extension("store");
    let newest = frames_of.keys().next_back() == Some(&store);
    if newest && !clean {
        return intact;
    }
    let frames = &frames_of[&store];
    let entries: Vec<(u64, u64)> = flipped
        .chunks(INDEX_ENTRY_BYTES)
        .map(|e| {
            let field = |at: usize| {
                u64::from(u32::from_le_bytes(
                    e[at..at + 4].try_into().expect("4 bytes"),
                ))
            };
            (field(0), field(4))
        })
        .collect();
    let passes = flipped.len() == frames.len() * INDEX_ENTRY_BYTES
        && entries
            .iter()
            .enumerate()
            .all(|(i, &(rel, _))| rel == i as u64)
        && entries[0].1 == 0
        && entries.windows(2).all(|w| w[0].1 < w[1].1)
        && entries.last().map(|e| e.1) == frames.last().map(|f| f.1);
    let misplaced: Vec<usize> = (0..frames.len())
        .filter(|&i| entries.get(i).map(|e| e.1) != Some(frames[i].1))
        .collect();
    match (passes, misplaced.as_slice()) {
        (true, &[i]) => FlipOutcome::Opened {
            next: total,
            corrupt: vec![frames[i - 1].0, frames[i].0],
        },
        _ => intact,
    }
}

/// Goal: no flipped bit anywhere in a log's segment files is ever returned
/// as a valid record, and each flip has the one outcome the recovery rules
/// of docs/storage-format.md give it.
/// Method: for every bit of every store and index file of a two-segment log
/// (closed cleanly, and left as after a crash), flip it in a copy, reopen
/// and compare with the expected outcome. A flip in a frame of the store:
/// - in the newest segment after a crash (scanned), refused at that frame,
///   except in the last frame, which is a torn tail and is cut;
/// - otherwise (validated), refused at that frame when it is its segment's
///   last frame (validation checks that one), else the log opens and that
///   record, and only it, reads as `Corrupt`.
///
/// A flip in an index (a cache of the store) loses nothing: the log opens
/// and every record reads back. Record values all differ, so a frame served
/// from the wrong place would be seen.
#[test]
fn every_single_bit_flip_has_its_documented_outcome() {
    let config = || Config {
        segment_bytes_max: 300,
        // Small enough that one largest record (with its frame header and
        // a producer header) fits a 300-byte segment.
        record_bytes_max: 240,
        index_entries_max: 4,
        ..config()
    };
    for clean in [true, false] {
        let pristine = tempfile::tempdir().expect("tempdir");
        let log = Log::open(pristine.path(), config()).expect("open");
        let total = 6;
        for offset in 0..total {
            log.append(&Record::new(value(offset))).expect("append");
        }
        assert!(log.segment_count() >= 2);
        if clean {
            log.close().expect("close");
        }
        drop(log);
        let originals: Vec<Vec<u8>> = (0..total).map(value).collect();
        // Each store's frames: (offset, position, length), from the
        // segment base offsets in the file names.
        let stores = files_with_suffix(pristine.path(), ".store");
        let newest_store = stores.last().expect("a store").clone();
        let mut frames_of = std::collections::BTreeMap::new();
        for store in &stores {
            let stem = store.file_stem().expect("stem").to_string_lossy();
            let base: u64 = stem.parse().expect("base offset");
            let size = fs::metadata(store).expect("stat").len();
            let mut frames = Vec::new();
            let (mut offset, mut position) = (base, 0u64);
            while position < size {
                let len = (FRAME_HEADER_BYTES + originals[offset as usize].len()) as u64;
                frames.push((offset, position, len));
                offset += 1;
                position += len;
            }
            assert_eq!(position, size, "frames tile {store:?}");
            frames_of.insert(store.clone(), frames);
        }
        let expected = |file: &Path, flipped: &[u8], byte: u64| -> FlipOutcome {
            let Some(frames) = frames_of.get(file) else {
                return index_flip_outcome(file, flipped, &frames_of, clean, total);
            };
            let k = frames
                .iter()
                .position(|&(_, at, len)| (at..at + len).contains(&byte))
                .expect("every store byte is in a frame");
            let (offset, position, _) = frames[k];
            let last = k == frames.len() - 1;
            let refused = FlipOutcome::Refused {
                store: file.display().to_string(),
                position,
            };
            match (file == newest_store && !clean, last) {
                (true, true) => FlipOutcome::Opened {
                    next: offset,
                    corrupt: vec![],
                },
                (true, false) | (false, true) => refused,
                (false, false) => FlipOutcome::Opened {
                    next: total,
                    corrupt: vec![offset],
                },
            }
        };
        let mut files = stores.clone();
        files.extend(files_with_suffix(pristine.path(), ".index"));
        let mut flips = 0;
        let mut wrong = Vec::new();
        for file in &files {
            let name = file.file_name().expect("name");
            let bytes = fs::read(file).expect("read");
            for bit in 0..bytes.len() * 8 {
                let dir = tempfile::tempdir().expect("tempdir");
                copy_dir(pristine.path(), dir.path());
                let mut flipped = bytes.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                let target = dir.path().join(name);
                fs::write(&target, &flipped).expect("write");
                flips += 1;
                let got = match Log::open(dir.path(), config()) {
                    Err(Error::Corrupt { path, position, .. }) => FlipOutcome::Refused {
                        // Named as in the pristine directory, to compare.
                        store: pristine
                            .path()
                            .join(path.file_name().expect("name"))
                            .display()
                            .to_string(),
                        position,
                    },
                    Err(e) => panic!("{name:?} bit {bit}: unexpected error {e}"),
                    Ok(log) => {
                        let mut corrupt = Vec::new();
                        for offset in 0..log.next_offset() {
                            match log.read(offset) {
                                Ok(record) => {
                                    assert_eq!(
                                        record.value, originals[offset as usize],
                                        "{name:?} bit {bit} offset {offset}: a wrong value served"
                                    );
                                    assert_eq!(record.offset, offset);
                                }
                                Err(Error::Corrupt { .. }) => corrupt.push(offset),
                                Err(e) => panic!("{name:?} bit {bit} offset {offset}: {e}"),
                            }
                        }
                        if let Ok(batch) = log.read_batch(log.lowest_offset(), 1 << 20, 100) {
                            for record in batch {
                                assert_eq!(
                                    record.value, originals[record.offset as usize],
                                    "{name:?} bit {bit} batch"
                                );
                            }
                        }
                        FlipOutcome::Opened {
                            next: log.next_offset(),
                            corrupt,
                        }
                    }
                };
                let want = expected(file, &flipped, (bit / 8) as u64);
                if got != want {
                    wrong.push(format!(
                        "clean={clean} {name:?} bit {bit}: got {got:?}, expected {want:?}"
                    ));
                }
            }
        }
        assert!(flips > 1000, "clean={clean}: only {flips} flips");
        assert!(
            wrong.is_empty(),
            "{} of {flips} flips had another outcome, e.g.:\n{}",
            wrong.len(),
            wrong[..wrong.len().min(20)].join("\n")
        );
    }
}

/// Goal: an index that is deleted, truncated, zeroed or random is rebuilt
/// from the store and every read returns what it returned before.
#[test]
fn damaged_indexes_are_rebuilt_and_reads_are_unchanged() {
    type Damage = fn(&Path);
    let damages: [(&str, Damage); 6] = [
        ("deleted", |p| fs::remove_file(p).expect("remove")),
        ("truncated to half", |p| {
            let len = fs::metadata(p).expect("stat").len();
            fs::OpenOptions::new()
                .write(true)
                .open(p)
                .expect("open")
                .set_len(len / 2)
                .expect("truncate");
        }),
        ("cut mid-entry", |p| {
            let len = fs::metadata(p).expect("stat").len();
            fs::OpenOptions::new()
                .write(true)
                .open(p)
                .expect("open")
                .set_len(len.saturating_sub(3))
                .expect("truncate");
        }),
        ("zeroed", |p| {
            let len = fs::metadata(p).expect("stat").len();
            fs::write(p, vec![0; usize::try_from(len).expect("small")]).expect("zero");
        }),
        ("random bytes", |p| {
            let len = usize::try_from(fs::metadata(p).expect("stat").len()).expect("small");
            let mut state = 0x9E37_79B9_7F4A_7C15u64;
            let random: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            fs::write(p, random).expect("randomise");
        }),
        ("grown with garbage", |p| {
            let mut bytes = fs::read(p).expect("read");
            bytes.extend_from_slice(&[0xFF; 24]);
            fs::write(p, bytes).expect("grow");
        }),
    ];
    for clean in [true, false] {
        let pristine = tempfile::tempdir().expect("tempdir");
        let log = fill(pristine.path(), 40);
        assert!(log.segment_count() >= 3, "several segments");
        let before: Vec<Record> = (0..40).map(|o| log.read(o).expect("read")).collect();
        if clean {
            log.close().expect("close");
        }
        drop(log);
        for index in files_with_suffix(pristine.path(), ".index") {
            for (what, damage) in &damages {
                let dir = tempfile::tempdir().expect("tempdir");
                copy_dir(pristine.path(), dir.path());
                damage(&dir.path().join(index.file_name().expect("name")));
                let log = Log::open(dir.path(), config())
                    .unwrap_or_else(|e| panic!("{what} {}: {e}", index.display()));
                for record in &before {
                    assert_eq!(
                        &log.read(record.offset).expect("read"),
                        record,
                        "{what} {}",
                        index.display()
                    );
                }
                assert_eq!(
                    log.read_batch(0, u64::MAX, 1000).expect("read_batch"),
                    before,
                    "{what}"
                );
            }
        }
    }
}

/// Goal: lowering `record_bytes_max` never makes recovery cut or refuse
/// records written under the old, larger limit.
#[test]
fn a_lowered_record_limit_does_not_cut_older_larger_records() {
    for clean in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::open(
            dir.path(),
            Config {
                record_bytes_max: 1024,
                segment_bytes_max: 4096,
                ..config()
            },
        )
        .expect("open");
        log.append(&Record::new(vec![1; 10])).expect("small");
        log.append(&Record::new(vec![2; 1000])).expect("large");
        if clean {
            log.close().expect("close");
        }
        drop(log);
        let log = Log::open(
            dir.path(),
            Config {
                record_bytes_max: 512,
                segment_bytes_max: 4096,
                ..config()
            },
        )
        .expect("reopen");
        assert_eq!(log.next_offset(), 2, "clean={clean}");
        assert_eq!(
            log.read(1).expect("the large record reads").value,
            vec![2; 1000]
        );
        assert!(matches!(
            log.append(&Record::new(vec![3; 600])),
            Err(Error::RecordTooLarge { .. })
        ));
    }
}

/// Goal: a damaged length field in the newest segment, with the index lost
/// (as after a power failure), is corruption, not a torn tail: acknowledged
/// records after it must not be cut silently.
#[test]
fn a_damaged_length_without_an_index_is_refused_not_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(fill(dir.path(), 5)); // no close: recovery scans the store
    let store = files_with_suffix(dir.path(), ".store")
        .pop()
        .expect("store");
    for index in files_with_suffix(dir.path(), ".index") {
        fs::remove_file(index).expect("remove index");
    }
    let mut bytes = fs::read(&store).expect("read");
    let position = FRAME_HEADER_BYTES + value(0).len();
    bytes[position + 1] ^= 0x01; // record 1's length grows by 256
    fs::write(&store, &bytes).expect("write");
    match Log::open(dir.path(), config()) {
        Err(Error::Corrupt { position: at, .. }) => assert_eq!(at, position as u64),
        other => panic!("expected corruption at {position}, got {other:?}"),
    }
}
