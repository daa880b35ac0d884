//! Idempotent produce: the Raft indices of each producer's recent sequence
//! numbers, so a resent record gets its first index back instead of being
//! appended twice.
//!
//! The table is derived from the log alone (each client record may carry
//! its producer id and sequence, and the leader's timestamp), in applied
//! order, so every replica holds the same table and a new leader answers a
//! retry as the old one would have. What it remembers is bounded: the last
//! [`ProducersConfig::window`] sequences of each producer, at most
//! [`ProducersConfig::producers_max`] producers (the longest idle is
//! forgotten first) and none idle for more than
//! [`ProducersConfig::idle_ms`] by the log's own timestamps. Every node must
//! use the same bounds.
//!
//! A checkpoint of the table (file `producers` beside `raft-state`) is
//! written on stop and every [`CHECKPOINT_EVERY`] applied entries, so a
//! restart replays only the entries after it.
//!
//! ```text
//! magic "PLPROD" 0x00 0x01         8 bytes
//! applied index                    u64 LE
//! producers                        u32 LE
//! per producer: id, last_ms u64 LE; runs u32 LE;
//!   per run: sequence, index, len  u64 LE each
//! crc32c of every byte above       u32 LE
//! ```

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use log_core::Producer;

use crate::error::{Error, Result};

/// Applied entries between two checkpoints of the table.
pub const CHECKPOINT_EVERY: u64 = 100_000;

const MAGIC: [u8; 8] = *b"PLPROD\x00\x01";

/// How much the table remembers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducersConfig {
    /// Sequences remembered per producer: a producer must not have more
    /// records than this unacknowledged when it resends.
    pub window: u64,
    /// Producers remembered; past it the longest idle is forgotten.
    pub producers_max: usize,
    /// A producer with no record for this long (by the leader's record
    /// timestamps) is forgotten.
    pub idle_ms: u64,
}

impl Default for ProducersConfig {
    /// 4096 sequences per producer, 1024 producers, an hour idle.
    fn default() -> Self {
        Self {
            window: 4096,
            producers_max: 1024,
            idle_ms: 60 * 60 * 1000,
        }
    }
}

/// Where one sequence number stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// At this Raft index.
    At(u64),
    /// Older than the window: whether it is in the log cannot be told.
    TooOld {
        /// The oldest sequence remembered.
        oldest: u64,
    },
    /// Not in the log (never appended, or appended by no remembered run).
    Unknown,
}

/// Consecutive sequences at consecutive indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    sequence: u64,
    index: u64,
    len: u64,
}

impl Run {
    fn find(&self, sequence: u64) -> Option<u64> {
        (sequence >= self.sequence && sequence - self.sequence < self.len)
            .then(|| self.index + (sequence - self.sequence))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct State {
    runs: VecDeque<Run>,
    remembered: u64,
    last_ms: u64,
}

/// The producer table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Producers {
    config: ProducersConfig,
    producers: HashMap<u64, State>,
    /// The newest timestamp seen, and the last time expiry ran.
    now_ms: u64,
    expired_at_ms: u64,
}

impl Producers {
    /// An empty table.
    pub fn new(config: ProducersConfig) -> Self {
        Self {
            config,
            producers: HashMap::new(),
            now_ms: 0,
            expired_at_ms: 0,
        }
    }

    /// Producers remembered.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is remembered.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Where `sequence` of `producer` is.
    pub fn lookup(&self, producer: u64, sequence: u64) -> Lookup {
        let Some(state) = self.producers.get(&producer) else {
            return Lookup::Unknown;
        };
        // Newest first: a retry is usually of something recent.
        if let Some(index) = state.runs.iter().rev().find_map(|run| run.find(sequence)) {
            return Lookup::At(index);
        }
        match state.runs.front() {
            Some(oldest) if sequence < oldest.sequence => Lookup::TooOld {
                oldest: oldest.sequence,
            },
            _ => Lookup::Unknown,
        }
    }

    /// Notes that Raft index `index`, stamped `timestamp_ms`, holds
    /// `producer`'s record. Called in log order; noting the same record
    /// twice changes nothing.
    pub fn note(&mut self, producer: Producer, index: u64, timestamp_ms: u64) {
        self.now_ms = self.now_ms.max(timestamp_ms);
        if self.lookup(producer.id, producer.sequence) == Lookup::At(index) {
            return;
        }
        if !self.producers.contains_key(&producer.id)
            && self.producers.len() >= self.config.producers_max
        {
            self.forget_longest_idle();
        }
        let window = self.config.window.max(1);
        let state = self.producers.entry(producer.id).or_default();
        state.last_ms = state.last_ms.max(timestamp_ms);
        match state.runs.back_mut() {
            Some(run)
                if run.sequence.checked_add(run.len) == Some(producer.sequence)
                    && run.index.checked_add(run.len) == Some(index) =>
            {
                run.len += 1;
            }
            _ => state.runs.push_back(Run {
                sequence: producer.sequence,
                index,
                len: 1,
            }),
        }
        state.remembered += 1;
        while state.remembered > window {
            let excess = state.remembered - window;
            let Some(front) = state.runs.front_mut() else {
                break;
            };
            if front.len <= excess {
                state.remembered -= front.len;
                state.runs.pop_front();
            } else {
                front.sequence += excess;
                front.index += excess;
                front.len -= excess;
                state.remembered -= excess;
            }
        }
        self.expire();
    }

    /// Forgets producers idle for longer than the configured time, at most
    /// once per second of log time (deterministic: log time is the
    /// records' own timestamps).
    fn expire(&mut self) {
        if self.now_ms < self.expired_at_ms + 1000 {
            return;
        }
        self.expired_at_ms = self.now_ms;
        let horizon = self.now_ms.saturating_sub(self.config.idle_ms);
        self.producers.retain(|_, state| state.last_ms >= horizon);
    }

    fn forget_longest_idle(&mut self) {
        if let Some(id) = self
            .producers
            .iter()
            .min_by_key(|(id, state)| (state.last_ms, **id))
            .map(|(id, _)| *id)
        {
            self.producers.remove(&id);
        }
    }

    /// Forgets everything (a leader's in-flight view on a term change).
    pub fn clear(&mut self) {
        self.producers.clear();
    }

    fn encode(&self, applied: u64) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&applied.to_le_bytes());
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        bytes.extend_from_slice(&(ids.len() as u32).to_le_bytes());
        for id in ids {
            let state = &self.producers[&id];
            bytes.extend_from_slice(&id.to_le_bytes());
            bytes.extend_from_slice(&state.last_ms.to_le_bytes());
            bytes.extend_from_slice(&(state.runs.len() as u32).to_le_bytes());
            for run in &state.runs {
                for field in [run.sequence, run.index, run.len] {
                    bytes.extend_from_slice(&field.to_le_bytes());
                }
            }
        }
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes
    }

    fn decode(bytes: &[u8], config: ProducersConfig) -> Result<(Self, u64), String> {
        let body = bytes
            .len()
            .checked_sub(4)
            .map(|at| bytes.split_at(at))
            .ok_or("shorter than its checksum")?;
        let (body, crc) = body;
        if crc32c::crc32c(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err("checksum mismatch".into());
        }
        let mut reader = Reader { bytes: body };
        if reader.take(MAGIC.len())? != MAGIC {
            return Err("not a producer table of this version".into());
        }
        let applied = reader.u64()?;
        let mut table = Self::new(config);
        for _ in 0..reader.u32()? {
            let id = reader.u64()?;
            let last_ms = reader.u64()?;
            let mut state = State {
                last_ms,
                ..State::default()
            };
            for _ in 0..reader.u32()? {
                let run = Run {
                    sequence: reader.u64()?,
                    index: reader.u64()?,
                    len: reader.u64()?,
                };
                // A damaged (or hostile) file must be refused, not overflow:
                // lookups add offsets within a run.
                if run.len == 0
                    || run.sequence.checked_add(run.len).is_none()
                    || run.index.checked_add(run.len).is_none()
                {
                    return Err("a run is empty or runs past the largest number".into());
                }
                state.remembered = state
                    .remembered
                    .checked_add(run.len)
                    .ok_or_else(|| "run lengths overflow".to_owned())?;
                state.runs.push_back(run);
            }
            table.now_ms = table.now_ms.max(last_ms);
            if table.producers.insert(id, state).is_some() {
                return Err(format!("producer {id} appears twice"));
            }
        }
        if !reader.bytes.is_empty() {
            return Err("trailing bytes".into());
        }
        table.expired_at_ms = table.now_ms;
        Ok((table, applied))
    }
}

/// The checkpoint file's bytes for `table` as of `applied` (the layout in
/// the module docs).
pub fn encode_checkpoint(table: &Producers, applied: u64) -> Vec<u8> {
    table.encode(applied)
}

/// Decodes a checkpoint file's bytes, as [`Checkpoint::load`] does: the
/// table and the applied index it is as of. The fuzz target's entry point.
///
/// # Errors
/// Why the bytes are not a valid checkpoint (checksum, magic or version,
/// truncation, trailing bytes).
pub fn decode_checkpoint(
    bytes: &[u8],
    config: ProducersConfig,
) -> Result<(Producers, u64), String> {
    Producers::decode(bytes, config)
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err("truncated".into());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, String> {
        let mut buf = [0; 8];
        buf.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(buf))
    }

    fn u32(&mut self) -> Result<u32, String> {
        let mut buf = [0; 4];
        buf.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(buf))
    }
}

/// The checkpoint file of a replica's producer table.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    path: PathBuf,
}

impl Checkpoint {
    /// The file `producers` in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            path: dir.join("producers"),
        }
    }

    /// The table as of the returned applied index; `None` without a file.
    /// A damaged file is reported, and the caller rebuilds from the log.
    ///
    /// # Errors
    /// [`Error::StateFile`]: unreadable or damaged.
    pub fn load(&self, config: ProducersConfig) -> Result<Option<(Producers, u64)>> {
        match fs::read(&self.path) {
            Ok(bytes) => Producers::decode(&bytes, config)
                .map(Some)
                .map_err(|reason| self.error(reason)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(e.to_string())),
        }
    }

    /// Replaces the file with `table` as of `applied`, durably.
    ///
    /// # Errors
    /// [`Error::StateFile`] on any I/O error.
    pub fn store(&self, table: &Producers, applied: u64) -> Result<()> {
        crate::state_file::replace_durably(&self.path, &table.encode(applied))
            .map_err(|e| self.error(e.to_string()))
    }

    fn error(&self, reason: String) -> Error {
        Error::StateFile {
            path: self.path.clone(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn producer(id: u64, sequence: u64) -> Producer {
        Producer { id, sequence }
    }

    fn config(window: u64, producers_max: usize) -> ProducersConfig {
        ProducersConfig {
            window,
            producers_max,
            idle_ms: 10_000,
        }
    }

    #[test]
    fn a_noted_sequence_is_found_at_its_index_and_others_are_not() {
        let mut table = Producers::new(config(100, 10));
        for (k, index) in [(0, 5), (1, 6), (2, 9)] {
            table.note(producer(7, k), index, 1);
        }
        assert_eq!(table.lookup(7, 0), Lookup::At(5));
        assert_eq!(table.lookup(7, 1), Lookup::At(6));
        assert_eq!(table.lookup(7, 2), Lookup::At(9));
        assert_eq!(table.lookup(7, 3), Lookup::Unknown);
        assert_eq!(table.lookup(8, 0), Lookup::Unknown);
        // Noting again is harmless.
        table.note(producer(7, 1), 6, 1);
        assert_eq!(table.lookup(7, 1), Lookup::At(6));
    }

    #[test]
    fn the_window_keeps_the_newest_sequences_and_calls_older_ones_too_old() {
        let mut table = Producers::new(config(3, 10));
        for k in 0..10 {
            // Every other index: runs of one, not merged.
            table.note(producer(1, k), 100 + 2 * k, 1);
        }
        assert_eq!(table.lookup(1, 6), Lookup::TooOld { oldest: 7 });
        assert_eq!(table.lookup(1, 7), Lookup::At(114));
        assert_eq!(table.lookup(1, 9), Lookup::At(118));
        let mut merged = Producers::new(config(3, 10));
        for k in 0..10 {
            merged.note(producer(1, k), 100 + k, 1);
        }
        assert_eq!(merged.lookup(1, 6), Lookup::TooOld { oldest: 7 });
        assert_eq!(merged.lookup(1, 7), Lookup::At(107));
    }

    #[test]
    fn idle_producers_expire_by_log_time_and_the_longest_idle_goes_first() {
        let mut table = Producers::new(config(10, 2));
        table.note(producer(1, 0), 1, 1_000);
        table.note(producer(2, 0), 2, 2_000);
        table.note(producer(3, 0), 3, 3_000);
        assert_eq!(table.lookup(1, 0), Lookup::Unknown, "evicted at the cap");
        assert_eq!(table.lookup(2, 0), Lookup::At(2));
        table.note(producer(3, 1), 4, 12_500);
        assert_eq!(table.lookup(2, 0), Lookup::Unknown, "idle for 10.5 s");
        assert_eq!(table.lookup(3, 1), Lookup::At(4));
    }

    #[test]
    fn the_checkpoint_round_trips_and_damage_is_refused() {
        let mut table = Producers::new(config(10, 10));
        table.note(producer(1, 4), 10, 5);
        table.note(producer(1, 5), 11, 6);
        table.note(producer(9, 0), 12, 7);
        let bytes = table.encode(12);
        let (back, applied) = Producers::decode(&bytes, config(10, 10)).expect("decodes");
        assert_eq!(applied, 12);
        assert_eq!(back.lookup(1, 5), Lookup::At(11));
        assert_eq!(back.lookup(9, 0), Lookup::At(12));
        assert_eq!(back.producers, table.producers);
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                Producers::decode(&flipped, config(10, 10)).is_err(),
                "bit {bit}"
            );
        }
        // Found by the producer_checkpoint fuzz target: run lengths whose
        // sum overflows, under a valid checksum, are refused.
        let mut huge = table.clone();
        let state = huge.producers.get_mut(&1).expect("producer 1");
        state.runs.push_back(Run {
            sequence: 100,
            index: 200,
            len: u64::MAX,
        });
        assert!(Producers::decode(&huge.encode(12), config(10, 10)).is_err());
        let dir = tempfile::tempdir().expect("tempdir");
        let file = Checkpoint::in_dir(dir.path());
        assert!(file.load(config(10, 10)).expect("load").is_none());
        file.store(&table, 12).expect("store");
        let (loaded, at) = file.load(config(10, 10)).expect("load").expect("some");
        assert_eq!((loaded.producers, at), (table.producers, 12));
    }
}
