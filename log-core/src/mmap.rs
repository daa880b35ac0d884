//! The only module allowed `unsafe`: mapping index files into memory.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use memmap2::MmapMut;

/// Maps all of `file` read-write.
///
/// The caller keeps the contract that makes this sound: the file belongs to a
/// log directory that this process holds the exclusive lock on, so no other
/// process resizes or rewrites it while mapped, and this crate only changes
/// the file's length after dropping the map (see `Index::resize`).
pub(crate) fn map_mut(file: &File) -> io::Result<MmapMut> {
    // SAFETY: memmap2 requires that the mapped file is not truncated or
    // modified outside this mapping while the map lives. The log directory is
    // locked (`Log::open` takes an exclusive `flock` on it), the index file is
    // never opened elsewhere, and `Index` drops the map before every
    // `set_len`. Contents are only read as plain bytes, never as references to
    // typed data, so any byte pattern is fine.
    unsafe { MmapMut::map_mut(file) }
}
