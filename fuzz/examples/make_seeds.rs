//! Writes the seed inputs under `fuzz/seeds/<target>/`.
//!
//! `cargo run --example make_seeds` (from `fuzz/`). The seeds are checked in;
//! rerun this after changing the frame layout or the directory image format.

use std::path::{Path, PathBuf};

use log_core::{Log, Record, RecordKind, encode_frame};
use proglog_fuzz::{config_for, encode_dir_image};

fn record(kind: RecordKind, term: u64, value: &[u8]) -> Record {
    Record {
        offset: 0,
        term,
        timestamp_ms: 1_700_000_000_000 + term,
        kind,
        producer: None,
        value: value.to_vec(),
    }
}

fn frame(record: &Record, offset: u64) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(record, offset, &mut out);
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).expect("writing a seed");
}

/// The files a log directory holds (sorted by name), except the lock file.
fn dir_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("dir entry"))
        .filter(|e| e.file_name() != "lock")
        .map(|e| {
            (
                e.file_name().into_string().expect("utf-8 name"),
                std::fs::read(e.path()).expect("read"),
            )
        })
        .collect();
    files.sort();
    files
}

/// Builds a real log with `config_for(selector)`, appends `values`, closes it
/// cleanly or just drops it, and encodes the directory.
fn real_log(selector: u8, values: &[&[u8]], clean: bool) -> Vec<u8> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = Log::open(tmp.path(), config_for(selector)).expect("open");
    for (i, value) in values.iter().enumerate() {
        log.append(&record(RecordKind::Data, i as u64, value))
            .expect("append");
    }
    if clean {
        log.close().expect("close");
    }
    drop(log);
    encode_dir_image(selector, &dir_files(tmp.path()))
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds");

    let frames = root.join("frame_decoder");
    std::fs::create_dir_all(&frames).expect("mkdir");
    let hello = frame(&record(RecordKind::Data, 3, b"hello"), 42);
    write(&frames, "data-hello", &[&[0u8][..], &hello].concat());
    write(
        &frames,
        "internal-empty",
        &[&[0u8][..], &frame(&record(RecordKind::Internal, 0, b""), 0)].concat(),
    );
    let big = frame(&record(RecordKind::Data, 1, &[0x5a; 100]), u64::MAX);
    write(&frames, "two-frames", &[&[0u8][..], &big, &hello].concat());
    let mut bad_kind = hello.clone();
    bad_kind[32] = 7;
    // Control 4: the target fixes the checksum, so the kind check is reached.
    write(
        &frames,
        "bad-kind-fixed-crc",
        &[&[4u8][..], &bad_kind].concat(),
    );
    write(&frames, "zeros", &[0u8; 37]);

    let dirs = root.join("open_dir");
    std::fs::create_dir_all(&dirs).expect("mkdir");
    let values: [&[u8]; 5] = [b"a", b"bb", b"", b"dddd", b"eeeee"];
    write(&dirs, "real-clean", &real_log(0, &values, true));
    write(&dirs, "real-unclean", &real_log(0, &values[..3], false));
    // index_entries_max 3: segments at 0, 3 and 6.
    write(
        &dirs,
        "real-three-segments",
        &real_log(1, &[b"1", b"2", b"3", b"4", b"5", b"6", b"7"], true),
    );
    // Generated: 0.store with 4 frames, its index, clean mark.
    write(
        &dirs,
        "gen-clean",
        &[0, 0b01_000, 4, 0, 1, 2, 0x83, 4, 0, 0b10_001, 0, 4, 0, 0],
    );
    // Generated: 0.store with 3 frames cut to 100 bytes (a torn tail), an
    // index with one entry too many, no clean mark.
    write(
        &dirs,
        "gen-torn",
        &[0, 0b01_000, 3, 0, 30, 30, 30, 1, 100, 0, 0b10_001, 8],
    );
    // Generated: segments 0 (3 frames) and 3 (2 frames, zero-padded index).
    write(
        &dirs,
        "gen-two-segments",
        &[
            0, 0b01_000, 3, 0, 1, 2, 3, 0, 0b10_001, 0, 0b01_010, 2, 0, 5, 6, 0, 0b10_011, 2, 4, 0,
            0,
        ],
    );
}
