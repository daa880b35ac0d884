//! Fault injection for unit tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

static FAIL_NEXT_SYNC_UNDER: Mutex<Option<PathBuf>> = Mutex::new(None);
static FAIL_NEXT_WRITE_UNDER: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Makes the next write of buffered frames to a store file under `dir`
/// fail, as a full disk would (nothing of it reaches the file).
pub(crate) fn inject_write_failure(dir: &Path) {
    *FAIL_NEXT_WRITE_UNDER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(dir.to_owned());
}

/// Whether a write to `path` must fail now (consumes the injection).
pub(crate) fn take_injected_write_failure(path: &Path) -> bool {
    let mut slot = FAIL_NEXT_WRITE_UNDER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if slot.as_ref().is_some_and(|dir| path.starts_with(dir)) {
        *slot = None;
        return true;
    }
    false
}

/// Makes the next store sync of a file under `dir` fail.
pub(crate) fn inject_sync_failure(dir: &Path) {
    *FAIL_NEXT_SYNC_UNDER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(dir.to_owned());
}

/// Whether a sync of `path` must fail now (consumes the injection).
pub(crate) fn take_injected_sync_failure(path: &Path) -> bool {
    let mut slot = FAIL_NEXT_SYNC_UNDER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if slot.as_ref().is_some_and(|dir| path.starts_with(dir)) {
        *slot = None;
        return true;
    }
    false
}

/// A gate that holds every store sync under a directory until opened, so a
/// test can line up appenders behind a running fsync.
struct Gate {
    dir: Option<PathBuf>,
    held: usize,
}

static SYNC_GATE: Mutex<Gate> = Mutex::new(Gate { dir: None, held: 0 });
static SYNC_GATE_CHANGED: std::sync::Condvar = std::sync::Condvar::new();

fn gate() -> std::sync::MutexGuard<'static, Gate> {
    SYNC_GATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Holds syncs of files under `dir` until [`open_sync_gate`].
pub(crate) fn close_sync_gate(dir: &Path) {
    gate().dir = Some(dir.to_owned());
}

/// Releases held syncs.
pub(crate) fn open_sync_gate() {
    gate().dir = None;
    SYNC_GATE_CHANGED.notify_all();
}

/// Syncs currently held at the gate.
pub(crate) fn syncs_held() -> usize {
    gate().held
}

/// Called by a store sync: waits while the gate is closed for `path`.
pub(crate) fn wait_at_sync_gate(path: &Path) {
    let mut gate = gate();
    if !gate.dir.as_ref().is_some_and(|dir| path.starts_with(dir)) {
        return;
    }
    gate.held += 1;
    SYNC_GATE_CHANGED.notify_all();
    while gate.dir.as_ref().is_some_and(|dir| path.starts_with(dir)) {
        gate = SYNC_GATE_CHANGED
            .wait(gate)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }
    gate.held -= 1;
}

/// Per store file, the length an `fdatasync` of it last made durable.
static SYNCED_BYTES: Mutex<BTreeMap<PathBuf, u64>> = Mutex::new(BTreeMap::new());

fn synced_bytes() -> std::sync::MutexGuard<'static, BTreeMap<PathBuf, u64>> {
    SYNCED_BYTES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Called by the store right after its `fdatasync` returned: the first
/// `len` bytes of `path` are durable (syncs may overlap, so the most wins).
pub(crate) fn record_synced(path: &Path, len: u64) {
    let mut synced = synced_bytes();
    let durable = synced.entry(path.to_owned()).or_insert(0);
    *durable = (*durable).max(len);
}

/// Called by the store before it cuts `path` to `len` bytes.
pub(crate) fn record_truncated(path: &Path, len: u64) {
    if let Some(durable) = synced_bytes().get_mut(path) {
        *durable = (*durable).min(len);
    }
}

/// Bytes of `path` an `fdatasync` has made durable (0 if none ran).
pub(crate) fn synced_len(path: &Path) -> u64 {
    synced_bytes().get(path).copied().unwrap_or(0)
}

/// A power loss: cuts every store file under `dir` to the bytes an
/// `fdatasync` covered, as if the page cache were lost. For logs whose
/// segments were never removed (a removed file's record would linger).
pub(crate) fn drop_unsynced_bytes(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("read log dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "store") {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("open store");
            file.set_len(synced_len(&path)).expect("cut store");
        }
    }
}
