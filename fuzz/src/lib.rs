//! Helpers shared by the fuzz targets and the seed generator:
//!
//! * an independent CRC-32C and reference frame parser, written from the
//!   frame layout documented in `log-core/src/record.rs`, so the
//!   `frame_decoder` target can compare log-core's decoder against it;
//! * `fix_trailing_checksum`, for the replicator's files that end in a
//!   CRC-32C of the rest;
//! * the tiny "directory image" format that the `open_dir` target turns fuzz
//!   input into, and its encoder (used to make seeds).
//!
//! # Directory image format
//!
//! ```text
//! byte 0        config selector (see `config_for`)
//! then entries, until the input ends (at most MAX_ENTRIES):
//!   tag         bits 0..3: name, bits 3..5: content kind
//!   name bits   0 00000000000000000000.store   1 00000000000000000000.index
//!               2 00000000000000000003.store   3 00000000000000000003.index
//!               4 clean-shutdown
//!               5 {u64 LE, next 8 bytes:020}.store
//!               6 {u64 LE, next 8 bytes:020}.index
//!               7 arbitrary name: length byte, then that many bytes mapped
//!                 into [0-9a-z._-]
//!   content     0 raw: u16 LE length, then that many bytes
//!               1 frames: count byte (mod 17), offset delta byte (i8, added
//!                 to the name's base offset), one spec byte per frame
//!                 (bits 0..6 payload length, bit 6 oversized payload
//!                 1000 + 2 * (bits 0..6), bit 7 kind Internal), then a
//!                 damage byte (mod 4): 0 none, 1 cut to u16 LE length,
//!                 2 xor byte at u16 LE position with a mask byte,
//!                 3 append raw bytes (length byte, bytes)
//!               2 index of the last "frames" content: a mode byte:
//!                 bit 0 drop the last entry, bit 1 zero-pad to 64 entries,
//!                 bit 2 add a delta byte to the position of entry (byte),
//!                 bit 3 add one entry pointing at the end of the store,
//!                 bit 4 cut a trailing partial entry (3 bytes)
//!               3 fill: u16 LE length, fill byte
//! ```
//! A later entry with the same name replaces the earlier one. Missing bytes
//! read as zero, so every input describes some directory.

use log_core::{Config, FsyncPolicy, Record, RecordKind, Retention};

/// Bytes in a frame before its payload (independent of log-core's constant).
pub const HEADER: usize = 36;

/// CRC-32C (Castagnoli), bitwise: slow but obviously right.
pub fn crc32c(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for part in parts {
        for &byte in *part {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
            }
        }
    }
    !crc
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut buf = [0; 8];
    buf.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(buf)
}

/// The checksum a frame should carry: over bytes 0..4 and 8..end.
pub fn frame_checksum(frame: &[u8]) -> u32 {
    crc32c(&[&frame[..4], &frame[8..]])
}

/// If `bytes` starts with a complete frame (by its length field), overwrites
/// its checksum field with the right value. Returns whether it did.
pub fn fix_checksum(bytes: &mut [u8]) -> bool {
    if bytes.len() < HEADER {
        return false;
    }
    let end = HEADER as u64 + u64::from(le_u32(bytes, 0));
    let Some(end) = usize::try_from(end).ok().filter(|&e| e <= bytes.len()) else {
        return false;
    };
    let crc = frame_checksum(&bytes[..end]);
    bytes[4..8].copy_from_slice(&crc.to_le_bytes());
    true
}

/// For files that end in a CRC-32C of every byte before it (the Raft state
/// file, the producer checkpoint): overwrites the last 4 bytes with the
/// right value, so mutated fields get past the checksum. Returns whether
/// there was room for one.
pub fn fix_trailing_checksum(bytes: &mut [u8]) -> bool {
    let Some(at) = bytes.len().checked_sub(4) else {
        return false;
    };
    let crc = crc32c(&[&bytes[..at]]);
    bytes[at..].copy_from_slice(&crc.to_le_bytes());
    true
}

/// What the reference parser makes of a valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefFrame {
    pub offset: u64,
    pub term: u64,
    pub timestamp_ms: u64,
    pub kind: u8,
    /// Producer id and sequence, when flags bit 0 says the payload starts
    /// with them.
    pub producer: Option<(u64, u64)>,
    /// The record's value: the payload after any producer header.
    pub payload: Vec<u8>,
    pub used: usize,
}

/// Parses a frame straight from the documented layout. `None` for anything
/// that is not a complete, valid frame within `limit` payload bytes.
pub fn reference_decode(bytes: &[u8], limit: u64) -> Option<RefFrame> {
    if bytes.len() < HEADER {
        return None;
    }
    let length = u64::from(le_u32(bytes, 0));
    let used = usize::try_from(HEADER as u64 + length).ok()?;
    let frame = bytes.get(..used)?;
    if frame_checksum(frame) != le_u32(frame, 4) {
        return None;
    }
    let (kind, version, flags, reserved) = (frame[32], frame[33], frame[34], frame[35]);
    if !(kind == 1 || kind == 2) || version != 1 || flags > 1 || reserved != 0 {
        return None;
    }
    let (producer, value_at) = if flags == 1 {
        let producer = (
            le_u64(frame.get(..HEADER + 16)?, HEADER),
            le_u64(frame, HEADER + 8),
        );
        (Some(producer), HEADER + 16)
    } else {
        (None, HEADER)
    };
    if (used - value_at) as u64 > limit {
        return None;
    }
    Some(RefFrame {
        offset: le_u64(frame, 8),
        term: le_u64(frame, 16),
        timestamp_ms: le_u64(frame, 24),
        kind,
        producer,
        payload: frame[value_at..].to_vec(),
        used,
    })
}

/// At most this many file entries are taken from one input.
pub const MAX_ENTRIES: usize = 12;

/// A directory to create: file names and contents, in creation order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirImage {
    pub config_selector: u8,
    pub files: Vec<(String, Vec<u8>)>,
}

impl DirImage {
    fn put(&mut self, name: String, content: Vec<u8>) {
        self.files.retain(|(n, _)| *n != name);
        self.files.push((name, content));
    }

    /// Total bytes of all `.store` files.
    pub fn store_bytes(&self) -> u64 {
        self.files
            .iter()
            .filter(|(n, _)| n.ends_with(".store"))
            .map(|(_, c)| c.len() as u64)
            .sum()
    }
}

/// A cursor over fuzz input where missing bytes read as zero.
struct Input<'a> {
    bytes: &'a [u8],
}

impl Input<'_> {
    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn u8(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        let mut buf = [0; 8];
        for b in &mut buf {
            *b = self.u8();
        }
        u64::from_le_bytes(buf)
    }

    /// Up to `n` bytes (fewer at the end of the input).
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.bytes.len());
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        head
    }
}

/// The file name of a segment file.
pub fn segment_name(base: u64, store: bool) -> String {
    format!("{base:020}.{}", if store { "store" } else { "index" })
}

const NAME_CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz._-";

/// Payload byte `j` of generated frame `i` (deterministic, not from input).
fn payload_byte(i: usize, j: usize) -> u8 {
    (i.wrapping_mul(31).wrapping_add(j.wrapping_mul(7)) & 0xff) as u8
}

/// Encodes generated frames; returns the store bytes and frame positions.
fn generate_frames(first_offset: u64, specs: &[u8]) -> (Vec<u8>, Vec<u32>) {
    let mut out = Vec::new();
    let mut positions = Vec::new();
    for (i, &spec) in specs.iter().enumerate() {
        let small = usize::from(spec & 0x3f);
        let len = if spec & 0x40 != 0 {
            1000 + 2 * small
        } else {
            small
        };
        let record = Record {
            offset: 0,
            term: i as u64,
            timestamp_ms: 1_700_000_000_000 + i as u64,
            kind: if spec & 0x80 != 0 {
                RecordKind::Internal
            } else {
                RecordKind::Data
            },
            producer: (i % 3 == 1).then_some(log_core::Producer {
                id: i as u64 + 1,
                sequence: i as u64,
            }),
            value: (0..len).map(|j| payload_byte(i, j)).collect(),
        };
        positions.push(u32::try_from(out.len()).unwrap_or(u32::MAX));
        log_core::encode_frame(&record, first_offset.wrapping_add(i as u64), &mut out);
    }
    (out, positions)
}

/// Index file bytes with entry `i` = `(i, positions[i])`.
pub fn index_bytes(positions: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(positions.len() * 8);
    for (i, &p) in positions.iter().enumerate() {
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&p.to_le_bytes());
    }
    out
}

/// Interprets fuzz input as a directory image (see the module docs).
pub fn parse_dir_image(data: &[u8]) -> DirImage {
    let mut input = Input { bytes: data };
    let mut image = DirImage {
        config_selector: input.u8(),
        files: Vec::new(),
    };
    // Positions and size of the last generated store, for index content.
    let mut last_positions: Vec<u32> = Vec::new();
    let mut last_store_len: u32 = 0;
    for _ in 0..MAX_ENTRIES {
        if input.is_empty() {
            break;
        }
        let tag = input.u8();
        let (name, base) = match tag & 7 {
            0 => (segment_name(0, true), 0),
            1 => (segment_name(0, false), 0),
            2 => (segment_name(3, true), 3),
            3 => (segment_name(3, false), 3),
            4 => ("clean-shutdown".to_owned(), 0),
            5 | 6 => {
                let base = input.u64();
                (segment_name(base, tag & 7 == 5), base)
            }
            _ => {
                let len = usize::from(input.u8() % 24) + 1;
                let name: String = input
                    .take(len)
                    .iter()
                    .map(|&b| char::from(NAME_CHARS[usize::from(b) % NAME_CHARS.len()]))
                    .collect();
                // "." and ".." (or an empty name) are not files we can create.
                let name = if name.is_empty() || name.chars().all(|c| c == '.') {
                    "x".to_owned()
                } else {
                    name
                };
                (name, 0)
            }
        };
        let content = match (tag >> 3) & 3 {
            0 => {
                let len = usize::from(input.u16());
                input.take(len).to_vec()
            }
            1 => {
                let count = usize::from(input.u8() % 17);
                let delta = i64::from(input.u8() as i8);
                let first = base.wrapping_add_signed(delta);
                let specs: Vec<u8> = (0..count).map(|_| input.u8()).collect();
                let (mut bytes, positions) = generate_frames(first, &specs);
                match input.u8() % 4 {
                    1 => bytes.truncate(usize::from(input.u16())),
                    2 => {
                        let at = usize::from(input.u16());
                        let mask = input.u8();
                        if !bytes.is_empty() {
                            let at = at % bytes.len();
                            bytes[at] ^= if mask == 0 { 1 } else { mask };
                        }
                    }
                    3 => {
                        let len = usize::from(input.u8());
                        bytes.extend_from_slice(input.take(len));
                    }
                    _ => {}
                }
                last_positions = positions;
                last_store_len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
                bytes
            }
            2 => {
                let mode = input.u8();
                let mut positions = last_positions.clone();
                if mode & 1 != 0 {
                    positions.pop();
                }
                if mode & 4 != 0 {
                    let k = usize::from(input.u8());
                    let delta = u32::from(input.u8());
                    if !positions.is_empty() {
                        let k = k % positions.len();
                        positions[k] = positions[k].wrapping_add(delta.max(1));
                    }
                }
                if mode & 8 != 0 {
                    positions.push(last_store_len);
                }
                let mut bytes = index_bytes(&positions);
                if mode & 2 != 0 && bytes.len() < 64 * 8 {
                    bytes.resize(64 * 8, 0);
                }
                if mode & 16 != 0 {
                    bytes.extend_from_slice(&[0xff, 0, 0]);
                }
                bytes
            }
            _ => {
                let len = usize::from(input.u16());
                vec![input.u8(); len]
            }
        };
        image.put(name, content);
    }
    image
}

/// Encodes real files as raw entries of the directory image format (for
/// seeds). Names that the format cannot express exactly are skipped.
pub fn encode_dir_image(config_selector: u8, files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![config_selector];
    for (name, content) in files {
        let Ok(len) = u16::try_from(content.len()) else {
            continue;
        };
        let parsed = name
            .strip_suffix(".store")
            .map(|s| (s, true))
            .or_else(|| name.strip_suffix(".index").map(|s| (s, false)))
            .filter(|(stem, _)| stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|(stem, store)| Some((stem.parse::<u64>().ok()?, store)));
        match (name.as_str(), parsed) {
            ("clean-shutdown", _) => out.push(4),
            (_, Some((0, true))) => out.push(0),
            (_, Some((0, false))) => out.push(1),
            (_, Some((3, true))) => out.push(2),
            (_, Some((3, false))) => out.push(3),
            (_, Some((base, store))) => {
                out.push(if store { 5 } else { 6 });
                out.extend_from_slice(&base.to_le_bytes());
            }
            _ => continue,
        }
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(content);
    }
    out
}

/// The log configuration a selector byte picks. All are valid.
///
/// bit 0: index_entries_max 64 or 3; bit 1: segment_bytes_max 64 KiB or
/// 1100 (just above one largest record); bits 2..4: write buffer 4096, 0, 64,
/// 4096; bit 4: fsync Never or Always; bit 7: byte retention of 2000.
pub fn config_for(selector: u8) -> Config {
    Config {
        record_bytes_max: 1024,
        segment_bytes_max: if selector & 2 == 0 { 64 << 10 } else { 1100 },
        index_entries_max: if selector & 1 == 0 { 64 } else { 3 },
        fsync: if selector & 16 == 0 {
            FsyncPolicy::Never
        } else {
            FsyncPolicy::Always
        },
        retention: Retention {
            bytes_max: (selector & 128 != 0).then_some(2000),
            age_max_ms: None,
        },
        write_buffer_bytes: [4096, 0, 64, 4096][usize::from((selector >> 2) & 3)],
    }
}

/// How many appends the open_dir target tries (bits 5..7 of the selector).
pub fn appends_for(selector: u8) -> usize {
    1 + usize::from((selector >> 5) & 3)
}

/// Payload length of the `i`-th append: includes 0, the limit, and one above
/// it (which must be refused).
pub fn append_len(i: usize) -> usize {
    [5, 1024, 0, 1025][i % 4]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(&[b"123456789"]), 0xE306_9283);
        assert_eq!(crc32c(&[b"1234", b"56789"]), 0xE306_9283);
    }

    #[test]
    fn reference_agrees_with_log_core_on_an_encoded_frame() {
        let record = Record {
            offset: 0,
            term: 9,
            timestamp_ms: 77,
            kind: RecordKind::Internal,
            producer: None,
            value: b"abc".to_vec().into(),
        };
        let mut buf = Vec::new();
        log_core::encode_frame(&record, 5, &mut buf);
        let frame = reference_decode(&buf, 1024).expect("valid");
        assert_eq!(
            (frame.offset, frame.term, frame.timestamp_ms, frame.kind),
            (5, 9, 77, 2)
        );
        assert_eq!(frame.payload, b"abc");
        assert_eq!(frame.used, buf.len());
    }

    #[test]
    fn dir_image_round_trips_raw_files() {
        let files = vec![
            (segment_name(0, true), vec![1, 2, 3]),
            (segment_name(0, false), vec![]),
            (segment_name(42, true), vec![9; 300]),
            ("clean-shutdown".to_owned(), vec![]),
        ];
        let image = parse_dir_image(&encode_dir_image(7, &files));
        assert_eq!(
            image,
            DirImage {
                config_selector: 7,
                files
            }
        );
    }

    #[test]
    fn generated_frames_and_index_are_valid() {
        // Config 0, then: 0.store as 3 frames from offset 0, 0.index from them.
        let image = parse_dir_image(&[0, 0b01_000, 3, 0, 1, 2, 0x85, 0, 0b10_001, 0]);
        let store = &image.files[0].1;
        let index = &image.files[1].1;
        assert_eq!(index.len(), 3 * 8);
        let mut at = 0;
        for k in 0..3u64 {
            let frame = reference_decode(&store[at..], 1024).expect("valid frame");
            assert_eq!(frame.offset, k);
            assert_eq!(u64::from(le_u32(index, k as usize * 8 + 4)), at as u64);
            at += frame.used;
        }
        assert_eq!(at, store.len());
    }
}
