//! The Raft metadata file: hard state, conf state and the snapshot point,
//! replaced atomically (temporary file, fsync, rename, fsync of the
//! directory), so a crash leaves the old file or the new one, never a mix.
//!
//! ```text
//! magic "PLRAFT" 0x00 0x01            8 bytes (the last byte is the version)
//! term, vote, commit                  u64 LE each
//! snapshot index, snapshot term       u64 LE each
//! conf state length                   u32 LE
//! conf state                          raft's ConfState, protobuf
//! snapshot conf state length          u32 LE
//! snapshot conf state                 ConfState as of the snapshot index
//! crc32c of every byte above          u32 LE
//! ```

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::prelude::{ConfState, HardState};

use crate::error::{Error, Result};

const MAGIC: [u8; 8] = *b"PLRAFT\x00\x01";
const FIXED_BYTES: usize = MAGIC.len() + 5 * 8 + 4 + 4;

/// What the state file holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RaftMeta {
    /// Term, vote and commit.
    pub hard_state: HardState,
    /// Voters and learners as of the newest applied change.
    pub conf_state: ConfState,
    /// The index the log starts after (0: the log starts at 1).
    pub snapshot_index: u64,
    /// The term of `snapshot_index`.
    pub snapshot_term: u64,
    /// Voters and learners as of `snapshot_index` (what a snapshot sent to
    /// a new follower must carry; later changes it replays from the log).
    pub snapshot_conf_state: ConfState,
}

impl RaftMeta {
    /// The file's bytes for `self` (the layout in the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode()
    }

    /// Decodes a file's bytes, as [`StateFile::load`] does: the fuzz
    /// target's entry point.
    ///
    /// # Errors
    /// Why the bytes are not a valid state file (short, checksum, magic or
    /// version, conf state, trailing bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        Self::decode(bytes)
    }

    fn encode(&self) -> Vec<u8> {
        let conf = self.conf_state.write_to_bytes().unwrap_or_default();
        let snapshot_conf = self
            .snapshot_conf_state
            .write_to_bytes()
            .unwrap_or_default();
        let mut bytes = Vec::with_capacity(FIXED_BYTES + conf.len() + snapshot_conf.len() + 8);
        bytes.extend_from_slice(&MAGIC);
        for value in [
            self.hard_state.get_term(),
            self.hard_state.get_vote(),
            self.hard_state.get_commit(),
            self.snapshot_index,
            self.snapshot_term,
        ] {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        bytes.extend_from_slice(&(conf.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&conf);
        bytes.extend_from_slice(&(snapshot_conf.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&snapshot_conf);
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < FIXED_BYTES + 4 {
            return Err(format!("{} bytes is too short", bytes.len()));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32c::crc32c(body) != stored {
            return Err("checksum mismatch".into());
        }
        if body[..MAGIC.len()] != MAGIC {
            return Err("not a proglog raft state file (or a newer version)".into());
        }
        let word = |i: usize| {
            let at = MAGIC.len() + i * 8;
            let mut value = [0_u8; 8];
            value.copy_from_slice(&body[at..at + 8]);
            u64::from_le_bytes(value)
        };
        let conf_at = MAGIC.len() + 5 * 8;
        let (conf_state, rest) = conf_state_at(&body[conf_at..])?;
        let (snapshot_conf_state, rest) = conf_state_at(rest)?;
        if !rest.is_empty() {
            return Err(format!(
                "{} unexpected bytes after the conf states",
                rest.len()
            ));
        }
        let mut hard_state = HardState::default();
        hard_state.set_term(word(0));
        hard_state.set_vote(word(1));
        hard_state.set_commit(word(2));
        Ok(Self {
            hard_state,
            conf_state,
            snapshot_index: word(3),
            snapshot_term: word(4),
            snapshot_conf_state,
        })
    }
}

/// A length-prefixed conf state at the start of `bytes`, and what follows.
fn conf_state_at(bytes: &[u8]) -> Result<(ConfState, &[u8]), String> {
    let length: [u8; 4] = bytes
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or("conf state length missing")?;
    let length = u32::from_le_bytes(length) as usize;
    let conf = bytes
        .get(4..4 + length)
        .ok_or("conf state longer than the file")?;
    let conf_state = ConfState::parse_from_bytes(conf).map_err(|e| format!("conf state: {e}"))?;
    Ok((conf_state, &bytes[4 + length..]))
}

/// Replaces the file at `path` with `bytes` so that a crash leaves the old
/// file or the new one: a temporary file, fsync, rename, fsync of the
/// directory.
pub(crate) fn replace_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&temporary, path)?;
    if let Some(parent) = path.parent() {
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// The state file of one replica.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The file `raft-state` in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            path: dir.join("raft-state"),
        }
    }

    /// Reads the file; `None` when it does not exist (a node that never
    /// had Raft state).
    ///
    /// # Errors
    /// [`Error::StateFile`]: unreadable, damaged or of another version.
    /// A damaged file is never guessed at: the node must not vote with a
    /// state it cannot trust.
    pub fn load(&self) -> Result<Option<RaftMeta>> {
        match fs::read(&self.path) {
            Ok(bytes) => RaftMeta::decode(&bytes)
                .map(Some)
                .map_err(|reason| self.error(reason)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(e.to_string())),
        }
    }

    /// Replaces the file with `meta`, durably.
    ///
    /// # Errors
    /// [`Error::StateFile`] on any I/O error.
    pub fn store(&self, meta: &RaftMeta) -> Result<()> {
        replace_durably(&self.path, &meta.encode()).map_err(|e| self.error(e.to_string()))
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

    fn meta() -> RaftMeta {
        let mut meta = RaftMeta::default();
        meta.hard_state.set_term(4);
        meta.hard_state.set_vote(2);
        meta.hard_state.set_commit(17);
        meta.conf_state = ConfState::from((vec![1, 2, 3], vec![4]));
        meta.snapshot_index = 9;
        meta.snapshot_term = 3;
        meta.snapshot_conf_state = ConfState::from((vec![1, 2], Vec::<u64>::new()));
        meta
    }

    #[test]
    fn the_state_round_trips_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = StateFile::in_dir(dir.path());
        assert_eq!(file.load().expect("load"), None);
        file.store(&meta()).expect("store");
        assert_eq!(file.load().expect("load"), Some(meta()));
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_refused() {
        let bytes = meta().encode();
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(RaftMeta::decode(&flipped).is_err(), "bit {bit} accepted");
        }
        for length in 0..bytes.len() {
            assert!(
                RaftMeta::decode(&bytes[..length]).is_err(),
                "{length} bytes accepted"
            );
        }
    }
}
