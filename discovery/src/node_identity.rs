//! The node id and incarnation kept in the data directory.
//!
//! `<data_dir>/node-id` holds `proglog-node-id v1`, the node name and its
//! id, written once on first start; a later start with another name is
//! refused (the directory belongs to another node). `<data_dir>/incarnation`
//! holds the last incarnation used; each start takes one strictly greater
//! than both it and the wall clock in milliseconds, so a restarted node
//! always wins over its old self, even if the file was lost.
//! Both files are replaced atomically (temporary file, fsync, rename, fsync
//! of the directory).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

const NODE_ID_FILE: &str = "node-id";
const INCARNATION_FILE: &str = "incarnation";
const NODE_ID_MAGIC: &str = "proglog-node-id v1";

/// The stable node id for `name`: 64-bit FNV-1a of its bytes, never 0.
///
/// The same on every machine and every build, so every node that knows a
/// name knows its id.
pub fn node_id_from_name(name: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = name.bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    hash.max(1)
}

/// This node's persisted id and this start's incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeIdentity {
    /// Stable id (never 0).
    pub id: u64,
    /// Strictly greater than every incarnation an earlier start used.
    pub incarnation: u64,
}

impl NodeIdentity {
    /// Reads (or on first start writes) the node id for `name` in `dir`,
    /// and takes and persists a new incarnation.
    ///
    /// # Errors
    /// [`Error::Identity`]: a file cannot be read or written, is malformed,
    /// or the directory belongs to a node with another name.
    pub fn load_or_create(dir: &Path, name: &str) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|e| identity_error(dir, &e.to_string()))?;
        let id_path = dir.join(NODE_ID_FILE);
        let id = match fs::read_to_string(&id_path) {
            Ok(text) => parse_node_id(&id_path, &text, name)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = node_id_from_name(name);
                write_atomically(&id_path, &format!("{NODE_ID_MAGIC}\n{name}\n{id}\n"))?;
                id
            }
            Err(e) => return Err(identity_error(&id_path, &e.to_string())),
        };
        let incarnation_path = dir.join(INCARNATION_FILE);
        let previous = match fs::read_to_string(&incarnation_path) {
            Ok(text) => text
                .trim()
                .parse::<u64>()
                .map_err(|_| identity_error(&incarnation_path, "does not hold a decimal number"))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(identity_error(&incarnation_path, &e.to_string())),
        };
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let incarnation = previous.saturating_add(1).max(now_ms);
        write_atomically(&incarnation_path, &format!("{incarnation}\n"))?;
        Ok(Self { id, incarnation })
    }
}

fn parse_node_id(path: &Path, text: &str, name: &str) -> Result<u64> {
    let mut lines = text.lines();
    if lines.next() != Some(NODE_ID_MAGIC) {
        return Err(identity_error(path, "not a proglog node-id file"));
    }
    let stored_name = lines.next().unwrap_or_default();
    let id = lines
        .next()
        .and_then(|line| line.parse::<u64>().ok())
        .filter(|&id| id != 0)
        .ok_or_else(|| identity_error(path, "has no valid node id"))?;
    if stored_name != name {
        return Err(identity_error(
            path,
            &format!(
                "this data directory belongs to node {stored_name:?}, not {name:?}; \
                 use that node name or another data directory"
            ),
        ));
    }
    Ok(id)
}

fn write_atomically(path: &Path, contents: &str) -> Result<()> {
    let temporary = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        fs::rename(&temporary, path)?;
        if let Some(parent) = path.parent() {
            fs::File::open(parent)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| identity_error(path, &e.to_string()))
}

fn identity_error(path: &Path, reason: &str) -> Error {
    Error::Identity {
        path: PathBuf::from(path),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_stable_and_each_start_has_a_newer_incarnation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = NodeIdentity::load_or_create(dir.path(), "n1").expect("first");
        let second = NodeIdentity::load_or_create(dir.path(), "n1").expect("second");
        assert_eq!(first.id, node_id_from_name("n1"));
        assert_eq!(first.id, second.id);
        assert!(second.incarnation > first.incarnation);
    }

    #[test]
    fn an_incarnation_ahead_of_the_clock_still_grows() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(
            dir.path().join(INCARNATION_FILE),
            format!("{}\n", u64::MAX / 2),
        )
        .expect("write");
        let next = NodeIdentity::load_or_create(dir.path(), "n1").expect("start");
        assert_eq!(next.incarnation, u64::MAX / 2 + 1);
    }

    #[test]
    fn a_directory_of_another_node_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        NodeIdentity::load_or_create(dir.path(), "n1").expect("first");
        let error = NodeIdentity::load_or_create(dir.path(), "n2").expect_err("other name");
        assert!(
            error.to_string().contains("belongs to node \"n1\""),
            "{error}"
        );
    }

    #[test]
    fn ids_differ_by_name_and_are_never_zero() {
        assert_ne!(node_id_from_name("n1"), node_id_from_name("n2"));
        assert_ne!(node_id_from_name(""), 0);
    }
}
