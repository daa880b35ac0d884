//! Fault injection for unit tests.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

static FAIL_NEXT_SYNC_UNDER: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Makes the next store sync of a file under `dir` fail.
pub(crate) fn inject_sync_failure(dir: &Path) {
    *FAIL_NEXT_SYNC_UNDER.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(dir.to_owned());
}

/// Whether a sync of `path` must fail now (consumes the injection).
pub(crate) fn take_injected_sync_failure(path: &Path) -> bool {
    let mut slot = FAIL_NEXT_SYNC_UNDER.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if slot.as_ref().is_some_and(|dir| path.starts_with(dir)) {
        *slot = None;
        return true;
    }
    false
}
