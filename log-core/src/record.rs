//! Records and their on-disk frame.
//!
//! A frame is a fixed 36-byte prefix followed by the payload (all integers
//! little-endian; see `docs/storage-format.md`):
//!
//! ```text
//! 0   u32  payload length
//! 4   u32  CRC-32C of bytes 0..4 and 8..36+length
//! 8   u64  offset
//! 16  u64  term
//! 24  u64  timestamp, milliseconds since the Unix epoch
//! 32  u8   kind
//! 33  u8   format version (1)
//! 34  u8   flags: bit 0 = the payload starts with a producer header
//! 35  u8   reserved, zero
//! 36  payload: [producer id u64, sequence u64] if flagged, then the value
//! ```
//!
//! The checksum covers the length and the header as well as the payload: a
//! corrupted length must not be able to re-frame the rest of the file.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// Bytes in a frame before its payload.
pub const FRAME_HEADER_BYTES: usize = 36;

/// The frame format version written by this crate.
pub const FRAME_VERSION: u8 = 1;

/// Bytes of the producer header a record with a [`Producer`] carries at the
/// start of its payload.
pub const PRODUCER_HEADER_BYTES: usize = 16;

/// Most bytes a frame adds to its value: the header, and a producer header.
pub const FRAME_OVERHEAD_MAX: usize = FRAME_HEADER_BYTES + PRODUCER_HEADER_BYTES;

/// Flags bit: the payload starts with a producer header.
const FLAG_PRODUCER: u8 = 1;

const LENGTH_AT: usize = 0;
const CRC_AT: usize = 4;
const OFFSET_AT: usize = 8;
const TERM_AT: usize = 16;
const TIMESTAMP_AT: usize = 24;
const KIND_AT: usize = 32;
const VERSION_AT: usize = 33;
const FLAGS_AT: usize = 34;
const RESERVED_AT: usize = 35;

const _: () = assert!(RESERVED_AT + 1 == FRAME_HEADER_BYTES);
const _: () = assert!(CRC_AT + 4 == OFFSET_AT);

/// What a record holds, so one engine can store user data and Raft entries.
///
/// The value 0 is never valid, so a zero-filled region cannot decode as a frame
/// even before its checksum is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordKind {
    /// A record produced by a client; visible to consumers.
    Data = 1,
    /// An internal entry (for example a Raft configuration change or an empty
    /// entry a new leader appends); never shown to consumers as data.
    Internal = 2,
}

impl TryFrom<u8> for RecordKind {
    type Error = u8;

    fn try_from(value: u8) -> Result<Self, u8> {
        match value {
            1 => Ok(Self::Data),
            2 => Ok(Self::Internal),
            other => Err(other),
        }
    }
}

/// One entry of the log.
///
/// On append, `offset` is ignored and assigned by the log; every other field is
/// stored as given, so replicas of a Raft entry are byte-identical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Position in the log; dense, starting at the log's base offset.
    pub offset: u64,
    /// Raft term of the entry; 0 for a log that is not replicated.
    pub term: u64,
    /// Milliseconds since the Unix epoch, set by whoever created the record.
    pub timestamp_ms: u64,
    /// User data or internal entry.
    pub kind: RecordKind,
    /// Who appended it, for idempotent produce (deduplication of resent
    /// records); `None` for most records.
    pub producer: Option<Producer>,
    /// The payload. Shared, not copied: a read batch's values are slices
    /// of one buffer, and a server can hand them on as they are. So a value
    /// kept from a read keeps its whole batch's buffer alive; copy it
    /// (`Bytes::copy_from_slice`) to keep one small value for long.
    pub value: Bytes,
}

/// The producer of a record and the record's sequence number among that
/// producer's records: stored with the record so every replica (and a
/// restarted node) can tell a resent record from a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Producer {
    /// The producer's id (nonzero; chosen by the producer).
    pub id: u64,
    /// The record's sequence number.
    pub sequence: u64,
}

impl Record {
    /// A data record with the current time and term 0.
    pub fn new(value: impl Into<Bytes>) -> Self {
        Self {
            offset: 0,
            term: 0,
            timestamp_ms: now_ms(),
            kind: RecordKind::Data,
            producer: None,
            value: value.into(),
        }
    }

    /// The number of bytes this record takes in a store.
    pub fn frame_bytes(&self) -> usize {
        FRAME_HEADER_BYTES + self.payload_bytes()
    }

    fn payload_bytes(&self) -> usize {
        let header = if self.producer.is_some() {
            PRODUCER_HEADER_BYTES
        } else {
            0
        };
        header + self.value.len()
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Appends the frame of `record` at `offset` to `out`.
///
/// The payload length must fit in a `u32`; the log checks the configured
/// record limit (always far below that) before encoding.
pub fn encode_frame(record: &Record, offset: u64, out: &mut Vec<u8>) {
    let length =
        u32::try_from(record.payload_bytes()).expect("record limit is checked before encoding");
    let start = out.len();
    out.reserve(record.frame_bytes());
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&record.term.to_le_bytes());
    out.extend_from_slice(&record.timestamp_ms.to_le_bytes());
    out.push(record.kind as u8);
    out.push(FRAME_VERSION);
    out.push(if record.producer.is_some() {
        FLAG_PRODUCER
    } else {
        0
    });
    out.push(0);
    if let Some(producer) = record.producer {
        out.extend_from_slice(&producer.id.to_le_bytes());
        out.extend_from_slice(&producer.sequence.to_le_bytes());
    }
    out.extend_from_slice(&record.value);
    let crc = frame_crc(&out[start..]);
    out[start + CRC_AT..start + OFFSET_AT].copy_from_slice(&crc.to_le_bytes());
}

fn frame_crc(frame: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&frame[LENGTH_AT..CRC_AT]);
    crc32c::crc32c_append(crc, &frame[OFFSET_AT..])
}

/// Why bytes did not decode as a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than the header, or than the length the header declares.
    /// At the end of a file this is a torn write.
    Incomplete {
        /// Bytes the whole frame would need, when the header could be read.
        needed: Option<u64>,
    },
    /// The checksum does not match the bytes.
    Checksum,
    /// The checksum matches but a field holds a value this version rejects.
    Invalid(&'static str),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Incomplete { needed: Some(n) } => {
                write!(f, "incomplete frame ({n} bytes needed)")
            }
            Self::Incomplete { needed: None } => f.write_str("incomplete frame header"),
            Self::Checksum => f.write_str("checksum mismatch"),
            Self::Invalid(what) => write!(f, "invalid frame: {what}"),
        }
    }
}

/// What a valid frame's header says, without its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    /// The record's offset.
    pub offset: u64,
    /// The record's timestamp.
    pub timestamp_ms: u64,
    /// Bytes the whole frame takes.
    pub frame_bytes: usize,
}

/// Checks the frame at the start of `bytes` (length, checksum, fields) without
/// copying its payload.
///
/// Never panics, whatever `bytes` holds; `value_bytes_max` (the record
/// limit) bounds the length field so a corrupt length cannot make the
/// caller read gigabytes.
pub fn check_frame(bytes: &[u8], value_bytes_max: u64) -> Result<FrameMeta, FrameError> {
    let Some(header) = bytes.get(..FRAME_HEADER_BYTES) else {
        return Err(FrameError::Incomplete { needed: None });
    };
    let length = u64::from(read_u32(header, LENGTH_AT));
    let frame_bytes = FRAME_HEADER_BYTES as u64 + length;
    if length > value_bytes_max.saturating_add(PRODUCER_HEADER_BYTES as u64) {
        // Checked before the checksum: a torn or corrupt length must not make
        // us treat the rest of the file as one record.
        return Err(FrameError::Invalid("length above the record limit"));
    }
    let Some(frame) = usize::try_from(frame_bytes)
        .ok()
        .and_then(|n| bytes.get(..n))
    else {
        return Err(FrameError::Incomplete {
            needed: Some(frame_bytes),
        });
    };
    if frame_crc(frame) != read_u32(frame, CRC_AT) {
        return Err(FrameError::Checksum);
    }
    if RecordKind::try_from(frame[KIND_AT]).is_err() {
        return Err(FrameError::Invalid("unknown record kind"));
    }
    if frame[VERSION_AT] != FRAME_VERSION {
        return Err(FrameError::Invalid("unknown frame version"));
    }
    if frame[FLAGS_AT] & !FLAG_PRODUCER != 0 {
        return Err(FrameError::Invalid("unknown frame flags"));
    }
    if frame[RESERVED_AT] != 0 {
        return Err(FrameError::Invalid("reserved byte is not zero"));
    }
    let header = if frame[FLAGS_AT] & FLAG_PRODUCER != 0 {
        PRODUCER_HEADER_BYTES as u64
    } else {
        0
    };
    if length < header {
        return Err(FrameError::Invalid(
            "payload shorter than its producer header",
        ));
    }
    if length - header > value_bytes_max {
        return Err(FrameError::Invalid("length above the record limit"));
    }
    Ok(FrameMeta {
        offset: read_u64(frame, OFFSET_AT),
        timestamp_ms: read_u64(frame, TIMESTAMP_AT),
        frame_bytes: frame.len(),
    })
}

/// Decodes the frame at the start of `bytes` into a record.
///
/// Returns the record and the number of bytes its frame takes; the same checks
/// as [`check_frame`].
pub fn decode_frame(bytes: &[u8], value_bytes_max: u64) -> Result<(Record, usize), FrameError> {
    decode_frame_with(bytes, value_bytes_max, Bytes::copy_from_slice)
}

/// [`decode_frame`] of the frame at `at` in `buffer`, whose value is a
/// slice of `buffer` rather than a copy.
pub(crate) fn decode_shared_frame(
    buffer: &Bytes,
    at: usize,
    value_bytes_max: u64,
) -> Result<(Record, usize), FrameError> {
    decode_frame_with(&buffer[at..], value_bytes_max, |value| {
        buffer.slice_ref(value)
    })
}

fn decode_frame_with(
    bytes: &[u8],
    value_bytes_max: u64,
    value: impl FnOnce(&[u8]) -> Bytes,
) -> Result<(Record, usize), FrameError> {
    let meta = check_frame(bytes, value_bytes_max)?;
    let frame = &bytes[..meta.frame_bytes];
    let kind = RecordKind::try_from(frame[KIND_AT])
        .map_err(|_| FrameError::Invalid("unknown record kind"))?;
    let (producer, value_at) = if frame[FLAGS_AT] & FLAG_PRODUCER != 0 {
        let producer = Producer {
            id: read_u64(frame, FRAME_HEADER_BYTES),
            sequence: read_u64(frame, FRAME_HEADER_BYTES + 8),
        };
        (Some(producer), FRAME_HEADER_BYTES + PRODUCER_HEADER_BYTES)
    } else {
        (None, FRAME_HEADER_BYTES)
    };
    let record = Record {
        offset: meta.offset,
        term: read_u64(frame, TERM_AT),
        timestamp_ms: meta.timestamp_ms,
        kind,
        producer,
        value: value(&frame[value_at..]),
    };
    Ok((record, meta.frame_bytes))
}

/// The payload length a frame header declares, if `bytes` holds a header.
pub(crate) fn declared_frame_bytes(bytes: &[u8]) -> Option<u64> {
    bytes
        .get(..FRAME_HEADER_BYTES)
        .map(|h| FRAME_HEADER_BYTES as u64 + u64::from(read_u32(h, LENGTH_AT)))
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut buf = [0; 4];
    buf.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(buf)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut buf = [0; 8];
    buf.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            offset: 0,
            term: 7,
            timestamp_ms: 1_700_000_000_000,
            kind: RecordKind::Internal,
            producer: None,
            value: Bytes::from_static(b"hello"),
        }
    }

    fn produced() -> Record {
        Record {
            kind: RecordKind::Data,
            producer: Some(Producer {
                id: 0xfeed,
                sequence: 9,
            }),
            ..sample()
        }
    }

    #[test]
    fn a_producer_header_round_trips_and_does_not_count_against_the_limit() {
        let mut buf = Vec::new();
        encode_frame(&produced(), 5, &mut buf);
        assert_eq!(buf.len(), FRAME_HEADER_BYTES + PRODUCER_HEADER_BYTES + 5);
        assert_eq!(produced().frame_bytes(), buf.len());
        // The limit is on the value: a 5-byte value at a 5-byte limit fits.
        let (record, used) = decode_frame(&buf, 5).expect("decodes");
        assert_eq!(used, buf.len());
        assert_eq!(
            record,
            Record {
                offset: 5,
                ..produced()
            }
        );
        assert_eq!(
            decode_frame(&buf, 4),
            Err(FrameError::Invalid("length above the record limit"))
        );
    }

    #[test]
    fn frame_round_trips_every_field() {
        let mut buf = Vec::new();
        encode_frame(&sample(), 42, &mut buf);
        assert_eq!(buf.len(), FRAME_HEADER_BYTES + 5);
        let (record, used) = decode_frame(&buf, 1024).expect("decodes");
        assert_eq!(used, buf.len());
        assert_eq!(
            record,
            Record {
                offset: 42,
                ..sample()
            }
        );
    }

    #[test]
    fn zero_filled_bytes_never_decode() {
        for len in [FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + 10, 4096] {
            assert!(
                decode_frame(&vec![0; len], 1 << 20).is_err(),
                "{len} zero bytes decoded"
            );
        }
    }

    #[test]
    fn every_prefix_of_a_frame_is_incomplete() {
        let mut buf = Vec::new();
        encode_frame(&sample(), 1, &mut buf);
        for cut in 0..buf.len() {
            assert!(
                matches!(
                    decode_frame(&buf[..cut], 1024),
                    Err(FrameError::Incomplete { .. })
                ),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        for record in [sample(), produced()] {
            let mut buf = Vec::new();
            encode_frame(&record, 3, &mut buf);
            for bit in 0..buf.len() * 8 {
                let mut flipped = buf.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                assert!(
                    decode_frame(&flipped, 1024).is_err(),
                    "bit {bit} flip of {record:?} accepted"
                );
            }
        }
    }

    #[test]
    fn length_above_the_limit_is_rejected_before_reading_the_payload() {
        let mut buf = Vec::new();
        encode_frame(
            &Record {
                value: vec![1; 100].into(),
                ..sample()
            },
            0,
            &mut buf,
        );
        assert_eq!(
            decode_frame(&buf, 99),
            Err(FrameError::Invalid("length above the record limit"))
        );
    }
}
