//! Writes the seed inputs under `fuzz/seeds/<target>/`.
//!
//! `cargo run --example make_seeds` (from `fuzz/`). The seeds are checked in;
//! rerun this after changing the frame layout or the directory image format.

use std::path::{Path, PathBuf};

use log_core::{Log, Producer, Record, RecordKind, encode_frame};
use proglog_fuzz::{config_for, encode_dir_image};
use protobuf::Message as _;
use raft::prelude::{
    ConfChange, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType, Message, MessageType,
    Snapshot,
};
use replicator::ProducersConfig;
use replicator::entry::{data_context, producer_contexts};
use replicator::producers::{Producers, encode_checkpoint};
use replicator::state_file::RaftMeta;

fn record(kind: RecordKind, term: u64, value: &[u8]) -> Record {
    Record {
        offset: 0,
        term,
        timestamp_ms: 1_700_000_000_000 + term,
        kind,
        producer: None,
        value: value.to_vec().into(),
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

fn raft_meta(term: u64, voters: Vec<u64>, learners: Vec<u64>) -> RaftMeta {
    let mut meta = RaftMeta::default();
    meta.hard_state.set_term(term);
    meta.hard_state.set_vote(2);
    meta.hard_state.set_commit(40 + term);
    meta.conf_state = ConfState::from((voters.clone(), learners));
    meta.snapshot_index = 30;
    meta.snapshot_term = term.saturating_sub(1);
    meta.snapshot_conf_state = ConfState::from((voters, Vec::<u64>::new()));
    meta
}

fn raft_entry(kind: EntryType, index: u64, data: &[u8], context: &[u8]) -> Entry {
    let mut entry = Entry::default();
    entry.set_entry_type(kind);
    entry.set_index(index);
    entry.set_term(3);
    entry.set_data(data.to_vec().into());
    entry.set_context(context.to_vec().into());
    entry
}

fn raft_seeds(dir: &Path) {
    let mut add_node = ConfChange::default();
    add_node.set_change_type(ConfChangeType::AddNode);
    add_node.set_node_id(4);
    let add_node = add_node.write_to_bytes().expect("encode");
    let joint = ConfChangeV2::default().write_to_bytes().expect("encode");
    let producer = Producer {
        id: 9,
        sequence: 70,
    };
    let mut append = Message::default();
    append.set_msg_type(MessageType::MsgAppend);
    append.set_from(1);
    append.set_to(2);
    append.set_term(3);
    append.set_log_term(3);
    append.set_index(10);
    append.set_commit(10);
    append.set_entries(
        vec![
            raft_entry(EntryType::EntryNormal, 11, b"", b""),
            raft_entry(
                EntryType::EntryNormal,
                12,
                b"client bytes",
                &data_context(77),
            ),
            raft_entry(
                EntryType::EntryNormal,
                13,
                b"resendable",
                &producer_contexts(78, producer, 1)[0],
            ),
            raft_entry(EntryType::EntryConfChange, 14, &add_node, b""),
            raft_entry(EntryType::EntryConfChangeV2, 15, &joint, b""),
        ]
        .into(),
    );
    write(dir, "append", &append.write_to_bytes().expect("encode"));

    let mut heartbeat = Message::default();
    heartbeat.set_msg_type(MessageType::MsgHeartbeat);
    heartbeat.set_from(1);
    heartbeat.set_to(3);
    heartbeat.set_term(3);
    heartbeat.set_commit(15);
    write(
        dir,
        "heartbeat",
        &heartbeat.write_to_bytes().expect("encode"),
    );

    let mut snapshot = Snapshot::default();
    snapshot.set_data(b"proglog snapshot".to_vec().into());
    let metadata = snapshot.mut_metadata();
    metadata.set_index(30);
    metadata.set_term(2);
    metadata.set_conf_state(ConfState::from((vec![1, 2, 3], vec![4])));
    let mut install = Message::default();
    install.set_msg_type(MessageType::MsgSnapshot);
    install.set_from(1);
    install.set_to(4);
    install.set_term(3);
    install.set_snapshot(snapshot);
    write(dir, "snapshot", &install.write_to_bytes().expect("encode"));
}

fn checkpoint_seeds(dir: &Path) {
    let config = ProducersConfig::default();
    let mut table = Producers::new(config);
    for (k, index) in [(4, 10), (5, 11), (6, 12), (9, 20)] {
        table.note(Producer { id: 1, sequence: k }, index, 1_000 + index);
    }
    table.note(Producer { id: 7, sequence: 0 }, 21, 1_100);
    // Control 0: decode as is; 1: fix the checksum first.
    let file = encode_checkpoint(&table, 21);
    write(dir, "two-producers", &[&[0u8][..], &file].concat());
    let empty = encode_checkpoint(&Producers::new(config), 0);
    write(dir, "empty", &[&[0u8][..], &empty].concat());
    let mut bumped = file.clone();
    bumped[8] ^= 1;
    write(
        dir,
        "applied-changed-fixed-crc",
        &[&[1u8][..], &bumped].concat(),
    );
    // Control 2: notes (producer, sequence, index step), default bounds.
    write(
        dir,
        "notes",
        &[2, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 2, 1, 0, 5, 2, 2, 2, 2, 0],
    );
    // Control 2 | window 1 (bits 2..4 = 1).
    write(
        dir,
        "notes-window-one",
        &[6, 0, 0, 0, 0, 1, 0, 0, 2, 0, 1, 0, 3],
    );
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

    let state = root.join("raft_state_file");
    std::fs::create_dir_all(&state).expect("mkdir");
    // Control 0: decode as is; 1: fix the checksum first.
    write(
        &state,
        "default",
        &[&[0u8][..], &RaftMeta::default().to_bytes()].concat(),
    );
    let three = raft_meta(4, vec![1, 2, 3], vec![4]).to_bytes();
    write(&state, "three-voters", &[&[0u8][..], &three].concat());
    let mut term_changed = three.clone();
    term_changed[8] ^= 0x10;
    write(
        &state,
        "term-changed-fixed-crc",
        &[&[1u8][..], &term_changed].concat(),
    );

    let checkpoints = root.join("producer_checkpoint");
    std::fs::create_dir_all(&checkpoints).expect("mkdir");
    checkpoint_seeds(&checkpoints);

    let messages = root.join("raft_message");
    std::fs::create_dir_all(&messages).expect("mkdir");
    raft_seeds(&messages);

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
