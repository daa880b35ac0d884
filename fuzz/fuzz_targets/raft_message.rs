//! Fuzzes what a Raft peer sends: each message of a `RaftBatch` is parsed
//! with rust-protobuf (`raft::prelude::Message::parse_from_bytes`, as the
//! agent's Raft service does), and each entry it carries goes the way an
//! appended entry goes: `entry::to_record`, a log-core frame as on disk,
//! `decode_frame`, `entry::from_record`; conf change entries are parsed as
//! the replica applies them.
//!
//! Invariants:
//! * nothing panics, on any bytes;
//! * a parsed message re-encodes and parses back with the same known
//!   fields;
//! * every entry becomes a record at its index and term, the record's
//!   frame decodes to the same record, and the record reads back as an
//!   entry (`from_record` never refuses what `to_record` made);
//! * a data entry (`entry::is_data`) comes back with the same type, data and
//!   context; any other entry with the same type and data (its context is
//!   not stored: raft's own entries carry none).
#![no_main]

use libfuzzer_sys::fuzz_target;
use log_core::{RecordKind, decode_frame, encode_frame};
use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfChangeV2, EntryType, Message};
use replicator::entry::{from_record, is_data, to_record};

fuzz_target!(|data: &[u8]| {
    let Ok(message) = Message::parse_from_bytes(data) else {
        return;
    };
    let bytes = message.write_to_bytes().expect("a parsed message encodes");
    let again = Message::parse_from_bytes(&bytes).expect("our encoding parses");
    // Compared as text (every known field, not the unknown ones):
    // rust-protobuf 2's `==` tells an empty unknown-field map from none.
    assert_eq!(
        format!("{again:?}"),
        format!("{message:?}"),
        "the message changed through an encode"
    );

    let mut frame = Vec::new();
    for entry in message.get_entries() {
        let record = to_record(entry);
        assert_eq!(
            (record.offset, record.term),
            (entry.get_index(), entry.get_term())
        );
        let data_entry = is_data(entry);
        assert_eq!(record.kind == RecordKind::Data, data_entry, "record kind");

        frame.clear();
        encode_frame(&record, record.offset, &mut frame);
        let (stored, used) = decode_frame(&frame, u64::MAX).expect("our frame decodes");
        assert_eq!(used, frame.len(), "frame length");
        assert_eq!(stored, record, "the record changed through a frame");

        let back = from_record(&stored).expect("a record to_record made reads back");
        assert_eq!(
            (back.get_index(), back.get_term(), back.get_entry_type()),
            (entry.get_index(), entry.get_term(), entry.get_entry_type()),
            "index, term or type changed"
        );
        assert_eq!(back.get_data(), entry.get_data(), "data changed");
        if data_entry {
            assert_eq!(back.get_context(), entry.get_context(), "context changed");
        } else {
            assert!(back.get_context().is_empty(), "context invented");
        }

        match entry.get_entry_type() {
            EntryType::EntryConfChange => {
                let _ = ConfChange::parse_from_bytes(entry.get_data());
            }
            EntryType::EntryConfChangeV2 => {
                let _ = ConfChangeV2::parse_from_bytes(entry.get_data());
            }
            EntryType::EntryNormal => {}
        }
    }
});
