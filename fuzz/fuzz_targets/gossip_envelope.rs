//! Fuzzes the gossip envelope decoder (`discovery::envelope::open`), what
//! every UDP datagram from the network goes through before foca sees it.
//!
//! Input: a control byte, then the packet.
//! * control bits 0..2 pick the receiver's keyring: none (plaintext
//!   gossip), key A, or A then B (a rotation in progress);
//! * control bit 2: instead of decoding the input, seal it under key A with
//!   `seal` and check the round trip.
//!
//! Invariants:
//! * `open` never panics, on any bytes and any keyring;
//! * a plaintext packet opens exactly without a keyring, to the bytes after
//!   its kind byte, and never with one;
//! * a sealed packet opens only with a keyring, and what opens is at most
//!   the packet minus the envelope's overhead;
//! * a packet sealed by `seal` opens to its payload under every keyring
//!   holding the sealing key, and under no keyring without it.
#![no_main]

use discovery::envelope::{
    self, DropReason, KIND_PLAINTEXT, KIND_SEALED, PAYLOAD_BYTES_MAX, SEALED_OVERHEAD_BYTES,
};
use discovery::{KEY_BYTES, Keyring};
use libfuzzer_sys::fuzz_target;

const KEY_A: [u8; KEY_BYTES] = [0xa5; KEY_BYTES];
const KEY_B: [u8; KEY_BYTES] = [0x5b; KEY_BYTES];

fn keyring(selector: u8) -> Option<Keyring> {
    match selector % 3 {
        0 => None,
        1 => Some(Keyring::new(&[KEY_A]).expect("one key")),
        _ => Some(Keyring::new(&[KEY_B, KEY_A]).expect("two keys")),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, packet)) = data.split_first() else {
        return;
    };
    let receiver = keyring(control & 0b11);
    if control & 0b100 != 0 {
        let payload = &packet[..packet.len().min(PAYLOAD_BYTES_MAX)];
        let sender = Keyring::new(&[KEY_A]).expect("one key");
        let sealed = envelope::seal(Some(&sender), payload);
        assert_eq!(sealed.len(), payload.len() + SEALED_OVERHEAD_BYTES);
        match &receiver {
            Some(receiver) => {
                assert_eq!(
                    envelope::open(Some(receiver), &sealed).as_deref(),
                    Ok(payload)
                );
            }
            None => {
                assert_eq!(
                    envelope::open(None, &sealed),
                    Err(DropReason::SealedWithoutKey)
                );
            }
        }
        let stranger = Keyring::new(&[KEY_B]).expect("one key");
        assert!(envelope::open(Some(&stranger), &sealed).is_err());
        return;
    }
    let opened = envelope::open(receiver.as_ref(), packet);
    match (packet.first(), &receiver, &opened) {
        (Some(&KIND_PLAINTEXT), None, Ok(payload)) => assert_eq!(payload.as_slice(), &packet[1..]),
        (Some(&KIND_PLAINTEXT), Some(_), Ok(_)) => panic!("plaintext accepted with a keyring"),
        (Some(&KIND_SEALED), None, Ok(_)) => panic!("sealed packet opened without a key"),
        (Some(&KIND_SEALED), Some(_), Ok(payload)) => {
            assert!(payload.len() + SEALED_OVERHEAD_BYTES <= packet.len());
        }
        (_, _, Ok(_)) => panic!("a packet of unknown kind opened"),
        (_, _, Err(_)) => {}
    }
});
