//! Raft entries as log-core records: the record bytes of a client's data
//! are written once, as the Raft entry itself.
//!
//! | Raft entry | record kind | record value |
//! | --- | --- | --- |
//! | `EntryNormal` with an 8-byte context (a client record) | `Data` | the data; the context is the leader's timestamp |
//! | any other entry (a new leader's empty entry, conf changes) | `Internal` | entry type (1 byte), then the data |
//!
//! Raft index = record offset and Raft term = record term, so nothing else
//! needs storing; a record read back becomes exactly the entry written.

use bytes::Bytes;
use log_core::{Record, RecordKind};
use raft::prelude::{Entry, EntryType};

/// Bytes of a data entry's context: the leader's timestamp (u64 LE, ms).
pub const DATA_CONTEXT_BYTES: usize = 8;

/// The context of a client record's entry: the leader's timestamp.
pub fn data_context(timestamp_ms: u64) -> Bytes {
    Bytes::copy_from_slice(&timestamp_ms.to_le_bytes())
}

/// Whether `entry` carries a client record.
pub fn is_data(entry: &Entry) -> bool {
    entry.get_entry_type() == EntryType::EntryNormal
        && entry.get_context().len() == DATA_CONTEXT_BYTES
}

/// The record that stores `entry`.
pub fn to_record(entry: &Entry) -> Record {
    if is_data(entry) {
        let mut timestamp = [0_u8; DATA_CONTEXT_BYTES];
        timestamp.copy_from_slice(entry.get_context());
        return Record {
            offset: entry.get_index(),
            term: entry.get_term(),
            timestamp_ms: u64::from_le_bytes(timestamp),
            kind: RecordKind::Data,
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
            entry.set_context(data_context(record.timestamp_ms));
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
    }
}
