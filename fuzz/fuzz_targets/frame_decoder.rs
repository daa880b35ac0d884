//! Fuzzes log-core's frame decoder (`decode_frame`, `check_frame`).
//!
//! Input: a control byte, then the bytes to decode.
//! * control bit 0: first make the header well-formed (kind 1 or 2 from bit
//!   1, version 1, reserved zero), so mutations reach the later checks;
//! * control bit 2: then write the correct checksum into bytes 4..8, so
//!   frames with mutated fields still get past the CRC.
//!
//! Invariants, for every payload limit in `LIMITS`:
//! * never panics;
//! * `check_frame` and `decode_frame` agree (same error, same metadata);
//! * it decodes exactly when an independent parser of the documented layout
//!   says the bytes start with a valid frame, and to the same fields;
//! * if it decodes, `used <= bytes.len()`, the payload is within the limit,
//!   and re-encoding the record at its offset gives exactly `bytes[..used]`;
//!   `bytes[..used]` decodes the same and `bytes[..used - 1]` is incomplete;
//! * a frame that decodes under a limit decodes the same under every larger
//!   limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use log_core::{FrameError, Record, check_frame, decode_frame, encode_frame};
use proglog_fuzz::{HEADER, fix_checksum, reference_decode};

/// Payload limits tried, ascending.
const LIMITS: [u64; 7] = [0, 1, 35, 1024, 65_536, u32::MAX as u64, u64::MAX];

fn check(bytes: &[u8], limit: u64) -> Option<(Record, usize)> {
    let decoded = decode_frame(bytes, limit);
    let checked = check_frame(bytes, limit);
    let reference = reference_decode(bytes, limit);

    match (&decoded, &checked) {
        (Ok((record, used)), Ok(meta)) => {
            assert_eq!(
                meta.offset, record.offset,
                "check_frame and decode_frame disagree on the offset"
            );
            assert_eq!(
                meta.timestamp_ms, record.timestamp_ms,
                "check_frame/decode_frame timestamp"
            );
            assert_eq!(
                meta.frame_bytes, *used,
                "check_frame/decode_frame frame length"
            );
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "check_frame and decode_frame fail differently"),
        _ => panic!("check_frame {checked:?} but decode_frame {decoded:?}"),
    }

    match (&decoded, &reference) {
        (Ok((record, used)), Some(r)) => {
            assert_eq!(
                (
                    record.offset,
                    record.term,
                    record.timestamp_ms,
                    record.kind as u8,
                    record.producer.map(|p| (p.id, p.sequence)),
                    &record.value[..],
                    *used
                ),
                (
                    r.offset,
                    r.term,
                    r.timestamp_ms,
                    r.kind,
                    r.producer,
                    &r.payload[..],
                    r.used
                ),
                "decode_frame and the reference parser disagree on the fields"
            );
        }
        (Err(_), None) => {}
        (Ok(_), None) => {
            panic!("decode_frame accepted bytes the reference parser rejects: {decoded:?}")
        }
        (Err(e), Some(r)) => panic!("decode_frame rejected ({e:?}) a valid frame: {r:?}"),
    }

    if bytes.len() < HEADER {
        assert_eq!(
            decoded.as_ref().err(),
            Some(&FrameError::Incomplete { needed: None }),
            "short input"
        );
    }

    let (record, used) = decoded.ok()?;
    assert!(
        used <= bytes.len(),
        "used {used} > input length {}",
        bytes.len()
    );
    assert!(used >= HEADER, "used {used} is shorter than a header");
    let producer_header = if record.producer.is_some() { 16 } else { 0 };
    assert_eq!(
        used,
        HEADER + producer_header + record.value.len(),
        "used does not match the payload length"
    );
    assert!(
        record.value.len() as u64 <= limit,
        "payload {} above limit {limit}",
        record.value.len()
    );

    let mut again = Vec::new();
    encode_frame(&record, record.offset, &mut again);
    assert_eq!(
        again.as_slice(),
        &bytes[..used],
        "re-encoding the decoded record is not canonical"
    );

    assert_eq!(
        decode_frame(&bytes[..used], limit),
        Ok((record.clone(), used)),
        "exact frame decodes differently"
    );
    assert!(
        matches!(
            decode_frame(&bytes[..used - 1], limit),
            Err(FrameError::Incomplete { .. })
        ),
        "a frame cut by one byte is not incomplete: {:?}",
        decode_frame(&bytes[..used - 1], limit)
    );
    Some((record, used))
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if control & 1 != 0 && bytes.len() >= HEADER {
        bytes[32] = if control & 2 == 0 { 1 } else { 2 };
        bytes[33] = 1;
        bytes[34] = 0;
        bytes[35] = 0;
    }
    if control & 4 != 0 {
        fix_checksum(&mut bytes);
    }

    let mut first_ok: Option<(Record, usize)> = None;
    for limit in LIMITS {
        let result = check(&bytes, limit);
        if let Some(earlier) = &first_ok {
            assert_eq!(
                result.as_ref(),
                Some(earlier),
                "a larger limit ({limit}) changed a successful decode"
            );
        }
        if first_ok.is_none() {
            first_ok = result;
        }
    }
});
