//! Fuzzes the producer table checkpoint decoder
//! (`replicator::producers::decode_checkpoint`, what `Checkpoint::load`
//! runs on the `producers` file at every start).
//!
//! Input: a control byte, then the file (or, with bit 1, notes).
//! * control bit 0: first write the correct checksum into the file's last
//!   4 bytes, so mutated fields get past the CRC;
//! * control bit 1: instead, build a table from the input with `note`
//!   (3 bytes a record: producer id, sequence, index step), encode it and
//!   check the round trip;
//! * control bits 2..4 pick the table's bounds (window, producers).
//!
//! Invariants:
//! * never panics;
//! * a file that decodes holds its applied index at bytes 8..16, and no
//!   more producers than its count field says (a repeated id replaces);
//! * what decodes re-encodes to a file that decodes to the same applied
//!   index and producers, and that re-encodes byte for byte;
//! * a table built with `note` round-trips through a checkpoint (same
//!   encoding), and every producer's newest noted sequence is found at its
//!   index in both the built and the loaded table.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use log_core::Producer;
use proglog_fuzz::fix_trailing_checksum;
use replicator::ProducersConfig;
use replicator::producers::{Lookup, Producers, decode_checkpoint, encode_checkpoint};

fn config(selector: u8) -> ProducersConfig {
    ProducersConfig {
        window: [4096, 1, 3, 64][usize::from(selector & 3)],
        producers_max: if selector & 4 == 0 { 1024 } else { 2 },
        idle_ms: 60 * 60 * 1000,
    }
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Encodes `table`, decodes it, and checks that the encoding is a fixed
/// point; returns the decoded table.
fn round_trip(table: &Producers, applied: u64, config: ProducersConfig) -> Producers {
    let encoded = encode_checkpoint(table, applied);
    let (again, again_applied) = decode_checkpoint(&encoded, config).expect("our encoding decodes");
    assert_eq!(again_applied, applied, "applied index through an encode");
    assert_eq!(again.len(), table.len(), "producers through an encode");
    assert_eq!(
        encode_checkpoint(&again, applied),
        encoded,
        "the encoding is not a fixed point"
    );
    again
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let config = config(control >> 2);
    if control & 2 != 0 {
        // Log order: indices only grow. Times stay within the idle bound.
        let mut table = Producers::new(config);
        let mut index = 0_u64;
        let mut newest = HashMap::new();
        for note in input.chunks_exact(3) {
            let producer = Producer {
                id: u64::from(note[0] % 8) + 1,
                sequence: u64::from(note[1]),
            };
            index += u64::from(note[2] % 4) + 1;
            table.note(producer, index, 1_000 + index);
            newest.insert(producer.id, (producer.sequence, index));
        }
        let loaded = round_trip(&table, index, config);
        if config.producers_max >= 8 {
            for (id, (sequence, at)) in newest {
                for (name, table) in [("noted", &table), ("loaded", &loaded)] {
                    assert_eq!(
                        table.lookup(id, sequence),
                        Lookup::At(at),
                        "{name} table: producer {id}'s newest sequence"
                    );
                }
            }
        }
        return;
    }
    let mut file = input.to_vec();
    if control & 1 != 0 {
        fix_trailing_checksum(&mut file);
    }
    let Ok((table, applied)) = decode_checkpoint(&file, config) else {
        return;
    };
    assert!(file.len() >= 8 + 8 + 4 + 4, "{} bytes decoded", file.len());
    assert_eq!(applied, le_u64(&file, 8), "applied index");
    let count = u32::from_le_bytes(file[16..20].try_into().expect("4 bytes"));
    assert!(
        table.len() <= count as usize,
        "{} producers of {count}",
        table.len()
    );
    // Not `==` on the tables: a repeated id's replaced entry still
    // counts for the decoded table's clock, and a re-encode drops it.
    round_trip(&table, applied, config);
});
