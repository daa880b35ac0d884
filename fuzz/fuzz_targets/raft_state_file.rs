//! Fuzzes the Raft metadata file decoder (`RaftMeta::from_bytes`, what
//! `StateFile::load` runs on the `raft-state` file at every start).
//!
//! Input: a control byte, then the file.
//! * control bit 0: first write the correct checksum into the file's last
//!   4 bytes, so mutated fields and conf states get past the CRC.
//!
//! Invariants:
//! * never panics;
//! * a file that decodes is at least as long as the fixed fields, and its
//!   term, vote, commit and snapshot point are the u64s at the documented
//!   positions (read here independently);
//! * what decodes re-encodes (`to_bytes`) to a file that decodes to the
//!   same state (every known field; unknown protobuf fields are carried
//!   along in no fixed order).
#![no_main]

use libfuzzer_sys::fuzz_target;
use proglog_fuzz::fix_trailing_checksum;
use replicator::state_file::RaftMeta;

/// Magic, five u64 fields, two u32 lengths and the checksum.
const FIXED_BYTES: usize = 8 + 5 * 8 + 4 + 4 + 4;

fuzz_target!(|data: &[u8]| {
    let Some((&control, file)) = data.split_first() else {
        return;
    };
    let mut file = file.to_vec();
    if control & 1 != 0 {
        fix_trailing_checksum(&mut file);
    }
    let Ok(meta) = RaftMeta::from_bytes(&file) else {
        return;
    };
    assert!(file.len() >= FIXED_BYTES, "{} bytes decoded", file.len());
    let word = |i: usize| {
        let at = 8 + 8 * i;
        u64::from_le_bytes(file[at..at + 8].try_into().expect("8 bytes"))
    };
    let hard = &meta.hard_state;
    assert_eq!(
        [hard.get_term(), hard.get_vote(), hard.get_commit()],
        [word(0), word(1), word(2)],
        "hard state fields"
    );
    assert_eq!(
        [meta.snapshot_index, meta.snapshot_term],
        [word(3), word(4)],
        "snapshot point"
    );
    let encoded = meta.to_bytes();
    let again = RaftMeta::from_bytes(&encoded).expect("our own encoding decodes");
    // Compared as text: every known field of the conf states, not the
    // unknown ones (rust-protobuf 2 keeps those in a HashMap, so neither
    // their order in the bytes nor `==` on an empty map is stable).
    assert_eq!(
        format!("{again:?}"),
        format!("{meta:?}"),
        "the state changed through an encode"
    );
});
