//! Fault injection for unit tests.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

static FAIL_NEXT_SYNC_UNDER: Mutex<Option<PathBuf>> = Mutex::new(None);

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
