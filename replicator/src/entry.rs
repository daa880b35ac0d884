//! Raft entries as log-core records: the record bytes of a client's data
//! are written once, as the Raft entry itself.
//!
//! | Raft entry | record kind | record value |
//! | --- | --- | --- |
//! | `EntryNormal` with an 8- or 24-byte context (a client record) | `Data` | the data; the context is the leader's timestamp, then the record's producer id and sequence for idempotent produce (the record's [`Producer`]) |
//! | any other entry (a new leader's empty entry, conf changes) | `Internal` | entry type (1 byte), then the data |
//!
//! Raft index = record offset and Raft term = record term, so nothing else
//! needs storing; a record read back becomes exactly the entry written.

use bytes::{BufMut as _, Bytes, BytesMut};
use log_core::{Producer, Record, RecordKind};
use raft::prelude::{Entry, EntryType};

/// Bytes of a data entry's context: the leader's timestamp (u64 LE, ms).
pub const DATA_CONTEXT_BYTES: usize = 8;

/// Bytes of an idempotent data entry's context: the timestamp, then the
/// producer id and the record's sequence (u64 LE each).
pub const PRODUCER_CONTEXT_BYTES: usize = 24;

/// The context of a client record's entry: the leader's timestamp.
pub fn data_context(timestamp_ms: u64) -> Bytes {
    Bytes::copy_from_slice(&timestamp_ms.to_le_bytes())
}

/// The contexts of `count` records of `producer` from its `sequence`: one
/// buffer, sliced.
pub fn producer_contexts(timestamp_ms: u64, producer: Producer, count: u64) -> Vec<Bytes> {
    let mut buffer = BytesMut::with_capacity(PRODUCER_CONTEXT_BYTES * count as usize);
    for k in 0..count {
        buffer.put_u64_le(timestamp_ms);
        buffer.put_u64_le(producer.id);
        buffer.put_u64_le(producer.sequence + k);
    }
    let buffer = buffer.freeze();
    (0..count as usize)
        .map(|k| buffer.slice(k * PRODUCER_CONTEXT_BYTES..(k + 1) * PRODUCER_CONTEXT_BYTES))
        .collect()
}

/// Whether `entry` carries a client record.
pub fn is_data(entry: &Entry) -> bool {
    entry.get_entry_type() == EntryType::EntryNormal
        && matches!(
            entry.get_context().len(),
            DATA_CONTEXT_BYTES | PRODUCER_CONTEXT_BYTES
        )
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut buf = [0_u8; 8];
    buf.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(buf)
}

/// A data entry's timestamp and producer; `None` for other entries.
pub fn data_meta(entry: &Entry) -> Option<(u64, Option<Producer>)> {
    if !is_data(entry) {
        return None;
    }
    let context = entry.get_context();
    let producer = (context.len() == PRODUCER_CONTEXT_BYTES).then(|| Producer {
        id: u64_at(context, 8),
        sequence: u64_at(context, 16),
    });
    Some((u64_at(context, 0), producer))
}

/// The record that stores `entry`.
pub fn to_record(entry: &Entry) -> Record {
    if let Some((timestamp_ms, producer)) = data_meta(entry) {
        return Record {
            offset: entry.get_index(),
            term: entry.get_term(),
            timestamp_ms,
            kind: RecordKind::Data,
            producer,
            // Shared, not copied: the entry's data is the client's buffer.
            value: entry.data.clone(),
        };
    }
    let mut value = Vec::with_capacity(1 + entry.get_data().len());
    value.push(entry.get_entry_type() as u8);
    value.extend_from_slice(entry.get_data());
    Record {
        offset: entry.get_index(),
        term: entry.get_term(),
        timestamp_ms: 0,
        kind: RecordKind::Internal,
        producer: None,
        value: value.into(),
    }
}

/// The entry a stored record holds.
///
/// # Errors
/// An internal record without a known entry type (a damaged or foreign
/// log): the caller treats it as fatal.
pub fn from_record(record: &Record) -> Result<Entry, String> {
    let mut entry = Entry::default();
    entry.set_index(record.offset);
    entry.set_term(record.term);
    match record.kind {
        RecordKind::Data => {
            entry.set_entry_type(EntryType::EntryNormal);
            entry.set_context(match record.producer {
                Some(producer) => producer_contexts(record.timestamp_ms, producer, 1)
                    .pop()
                    .unwrap_or_default(),
                None => data_context(record.timestamp_ms),
            });
            entry.set_data(record.value.clone());
        }
        RecordKind::Internal => {
            let &kind = record
                .value
                .first()
                .ok_or_else(|| format!("internal record {} is empty", record.offset))?;
            let data = record.value.slice(1..);
            let kind = match kind {
                0 => EntryType::EntryNormal,
                1 => EntryType::EntryConfChange,
                2 => EntryType::EntryConfChangeV2,
                other => {
                    return Err(format!(
                        "internal record {} has entry type {other}",
                        record.offset
                    ));
                }
            };
            entry.set_entry_type(kind);
            entry.set_data(data);
        }
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: EntryType, data: &[u8], context: &[u8]) -> Entry {
        let mut entry = Entry::default();
        entry.set_index(7);
        entry.set_term(3);
        entry.set_entry_type(kind);
        entry.set_data(data.to_vec().into());
        entry.set_context(context.to_vec().into());
        entry
    }

    #[test]
    fn every_kind_of_entry_round_trips_through_a_record() {
        let cases = [
            entry(EntryType::EntryNormal, b"client bytes", &data_context(1234)),
            entry(EntryType::EntryNormal, b"", &data_context(99)),
            entry(
                EntryType::EntryNormal,
                b"resendable",
                &producer_contexts(
                    42,
                    Producer {
                        id: 9,
                        sequence: 70,
                    },
                    1,
                )[0],
            ),
            entry(EntryType::EntryNormal, b"", b""),
            entry(EntryType::EntryConfChange, b"\x08\x01", b""),
            entry(EntryType::EntryConfChangeV2, b"", b""),
        ];
        for original in cases {
            let record = to_record(&original);
            assert_eq!(record.offset, 7);
            assert_eq!(record.term, 3);
            let back = from_record(&record).expect("decodes");
            assert_eq!(back, original, "{record:?}");
        }
        let leader_no_op = to_record(&entry(EntryType::EntryNormal, b"", b""));
        assert_eq!(leader_no_op.kind, RecordKind::Internal);
        let data = to_record(&entry(EntryType::EntryNormal, b"", &data_context(5)));
        assert_eq!((data.kind, data.timestamp_ms), (RecordKind::Data, 5));
        let contexts = producer_contexts(
            8,
            Producer {
                id: 3,
                sequence: 10,
            },
            2,
        );
        let second = to_record(&entry(EntryType::EntryNormal, b"x", &contexts[1]));
        assert_eq!(
            (second.kind, second.timestamp_ms, second.producer),
            (
                RecordKind::Data,
                8,
                Some(Producer {
                    id: 3,
                    sequence: 11
                })
            )
        );
    }
}
