//! Model test: random sequences of operations on a real log behave exactly
//! like an in-memory vector of records.
//!
//! Method: proptest generates operations (append, append_batch, read,
//! read_batch, truncate_prefix, truncate_suffix, and reopen after `close` or
//! after a bare drop); each runs on a `Log` with tiny segments (so rolls,
//! multi-segment batches and cross-segment reads happen constantly) and on
//! the model, and every result is compared.
//!
//! A reopen after a drop is not a crash: `Drop` hands buffered bytes to the
//! OS and the page cache keeps them, so nothing may be lost; what it tests is
//! the unclean-open path (the full scan of the newest segment) on intact
//! files. Crashes are `tests/crash.rs` (SIGKILL) and, for bytes lost with
//! the page cache, `acknowledged_appends_survive_losing_every_unsynced_byte`
//! in `src/log/tests.rs`.

use std::collections::VecDeque;

use log_core::{Config, Error, FRAME_HEADER_BYTES, FsyncPolicy, Log, Record};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    AppendBatch(Vec<Vec<u8>>),
    Read(u8),
    ReadBatch {
        from: u8,
        bytes_max: u16,
        records_max: u8,
    },
    TruncatePrefix(u8),
    TruncateSuffix(u8),
    /// Reopen after `close` (marked clean) or after a bare drop (no clean
    /// mark, nothing lost).
    Reopen {
        closed: bool,
    },
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..120)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => value().prop_map(Op::Append),
        3 => prop::collection::vec(value(), 0..12).prop_map(Op::AppendBatch),
        4 => any::<u8>().prop_map(Op::Read),
        3 => (any::<u8>(), 0..2000u16, 0..20u8)
            .prop_map(|(from, bytes_max, records_max)| Op::ReadBatch { from, bytes_max, records_max }),
        1 => any::<u8>().prop_map(Op::TruncatePrefix),
        1 => any::<u8>().prop_map(Op::TruncateSuffix),
        1 => any::<bool>().prop_map(|closed| Op::Reopen { closed }),
    ]
}

/// The model: records by offset, from `lowest` on.
struct Model {
    lowest: u64,
    values: VecDeque<Vec<u8>>,
}

impl Model {
    fn next(&self) -> u64 {
        self.lowest + self.values.len() as u64
    }

    /// Maps a random byte onto offsets around the valid range, edges included.
    fn pick(&self, byte: u8) -> u64 {
        let span = self.values.len() as u64 + 3;
        (self.lowest + u64::from(byte) % span).saturating_sub(1)
    }

    fn get(&self, offset: u64) -> Option<&Vec<u8>> {
        offset
            .checked_sub(self.lowest)
            .and_then(|i| self.values.get(usize::try_from(i).ok()?))
    }
}

fn config(write_buffer_bytes: usize) -> Config {
    Config {
        record_bytes_max: 120,
        segment_bytes_max: 600,
        index_entries_max: 7,
        fsync: FsyncPolicy::Never,
        write_buffer_bytes,
        ..Config::default()
    }
}

fn run(ops: Vec<Op>, write_buffer_bytes: usize) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Some(Log::open(dir.path(), config(write_buffer_bytes)).expect("open"));
    let mut model = Model {
        lowest: 0,
        values: VecDeque::new(),
    };
    for op in ops {
        let current = log.as_ref().expect("log is open");
        match op {
            Op::Append(value) => {
                let offset = current.append(&Record::new(value.clone())).expect("append");
                prop_assert_eq!(offset, model.next());
                model.values.push_back(value);
            }
            Op::AppendBatch(values) => {
                let records: Vec<Record> = values.iter().cloned().map(Record::new).collect();
                let first = current.append_batch(&records).expect("append_batch");
                prop_assert_eq!(first, model.next());
                model.values.extend(values);
            }
            Op::Read(byte) => {
                let offset = model.pick(byte);
                match (current.read(offset), model.get(offset)) {
                    (Ok(record), Some(value)) => {
                        prop_assert_eq!(record.offset, offset);
                        prop_assert_eq!(&record.value, value);
                    }
                    (Err(Error::OutOfRange { lowest, next, .. }), None) => {
                        prop_assert_eq!((lowest, next), (model.lowest, model.next()));
                    }
                    (got, want) => {
                        prop_assert!(false, "read {offset}: got {got:?}, model has {want:?}")
                    }
                }
            }
            Op::ReadBatch {
                from,
                bytes_max,
                records_max,
            } => {
                let from = model.pick(from);
                let got = current.read_batch(from, u64::from(bytes_max), u64::from(records_max));
                if from < model.lowest || from > model.next() {
                    prop_assert!(
                        matches!(got, Err(Error::OutOfRange { .. })),
                        "read_batch {from}: {got:?}"
                    );
                    continue;
                }
                let mut expected = Vec::new();
                let mut bytes = 0;
                for (i, value) in model
                    .values
                    .iter()
                    .enumerate()
                    .skip(usize::try_from(from - model.lowest).unwrap_or(0))
                {
                    let frame = (FRAME_HEADER_BYTES + value.len()) as u64;
                    if expected.len() >= usize::from(records_max)
                        || (!expected.is_empty() && bytes + frame > u64::from(bytes_max))
                    {
                        break;
                    }
                    bytes += frame;
                    expected.push((model.lowest + i as u64, value.clone()));
                }
                let got: Vec<(u64, Vec<u8>)> = got
                    .expect("read_batch")
                    .into_iter()
                    .map(|r| (r.offset, r.value.to_vec()))
                    .collect();
                prop_assert_eq!(got, expected);
            }
            Op::TruncatePrefix(byte) => {
                let offset = model.pick(byte);
                let lowest = current.truncate_prefix(offset).expect("truncate_prefix");
                prop_assert!(
                    lowest >= model.lowest && lowest <= model.lowest.max(offset).min(model.next())
                );
                while model.lowest < lowest {
                    model.values.pop_front();
                    model.lowest += 1;
                }
            }
            Op::TruncateSuffix(byte) => {
                // From one below the lowest offset (empties the log) to past
                // the end (a no-op).
                let after = model.pick(byte);
                current.truncate_suffix(after).expect("truncate_suffix");
                let keep = usize::try_from(after + 1 - model.lowest).unwrap_or(usize::MAX);
                model.values.truncate(keep);
            }
            Op::Reopen { closed } => {
                let old = log.take().expect("log is open");
                if closed {
                    old.close().expect("close");
                }
                drop(old);
                let reopened = Log::open(dir.path(), config(write_buffer_bytes)).expect("reopen");
                // Proves which recovery path ran: the validation of a clean
                // directory, or the scan of an unmarked one.
                prop_assert_eq!(reopened.opened_clean(), closed);
                log = Some(reopened);
            }
        }
        let current = log.as_ref().expect("log is open");
        prop_assert_eq!(current.lowest_offset(), model.lowest);
        prop_assert_eq!(current.next_offset(), model.next());
    }
    // Whatever happened, every record the model holds reads back.
    let current = log.as_ref().expect("log is open");
    for (i, value) in model.values.iter().enumerate() {
        prop_assert_eq!(
            &current
                .read(model.lowest + i as u64)
                .expect("final read")
                .value,
            value
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn log_behaves_like_an_in_memory_model(
        ops in prop::collection::vec(op(), 1..80),
        write_buffer_bytes in prop_oneof![Just(0usize), Just(64), Just(4096)],
    ) {
        run(ops, write_buffer_bytes)?;
    }
}
