//! A reader over the raw bytes of a log's segments.

use std::io::{self, Read};
use std::sync::Arc;

use crate::segment::Segment;

/// Reads the store bytes of a snapshot of segments, oldest first, frames
/// exactly as on disk (see `docs/storage-format.md`).
pub struct LogReader {
    /// Each segment with its size when the reader was made.
    segments: Vec<(Arc<Segment>, u64)>,
    current: usize,
    position: u64,
}

impl LogReader {
    pub(crate) fn new(segments: Vec<Arc<Segment>>) -> Self {
        let segments = segments.into_iter().map(|s| {
            let size = s.size_bytes();
            (s, size)
        });
        Self {
            segments: segments.collect(),
            current: 0,
            position: 0,
        }
    }
}

impl Read for LogReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some((segment, size)) = self.segments.get(self.current) {
            if self.position >= *size {
                self.current += 1;
                self.position = 0;
                continue;
            }
            let len =
                usize::try_from(*size - self.position).map_or(buf.len(), |n| n.min(buf.len()));
            let bytes = segment
                .store()
                .read_at(self.position, len)
                .map_err(io::Error::other)?;
            buf[..len].copy_from_slice(&bytes);
            self.position += len as u64;
            return Ok(len);
        }
        Ok(0)
    }
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("segments", &self.segments.len())
            .finish_non_exhaustive()
    }
}
