//! The gossip packet envelope: what goes in a UDP datagram around foca's
//! bytes.
//!
//! ```text
//! plaintext:  0x01 | foca payload
//! sealed:     0x02 | key id (u32, big-endian) | nonce (24 bytes)
//!                  | XChaCha20-Poly1305(foca payload) | tag (16 bytes)
//! ```
//! The associated data of a sealed packet is its first 29 bytes (kind, key
//! id, nonce), so none of them can be altered. Nonces are random: with 192
//! bits, repeats are not a practical concern, whatever the number of
//! restarts. A node with a keyring accepts only sealed packets; a node
//! without one only plaintext packets. Anything else is dropped with a
//! [`DropReason`] and never reaches foca.

use chacha20poly1305::XNonce;
use chacha20poly1305::aead::{Aead, Payload};

use crate::keyring::Keyring;

/// The first byte of a plaintext packet.
pub const KIND_PLAINTEXT: u8 = 0x01;
/// The first byte of a sealed packet.
pub const KIND_SEALED: u8 = 0x02;
/// Bytes before the ciphertext of a sealed packet.
pub const SEALED_HEADER_BYTES: usize = 1 + 4 + 24;
/// Bytes a sealed packet adds to its payload (header and tag).
pub const SEALED_OVERHEAD_BYTES: usize = SEALED_HEADER_BYTES + 16;
/// The largest datagram sent or accepted.
pub const PACKET_BYTES_MAX: usize = 1400;
/// foca's packet size: a sealed foca packet still fits one datagram.
pub const PAYLOAD_BYTES_MAX: usize = PACKET_BYTES_MAX - SEALED_OVERHEAD_BYTES;

const _: () = assert!(PAYLOAD_BYTES_MAX + SEALED_OVERHEAD_BYTES <= PACKET_BYTES_MAX);

/// Why a received packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Empty, or shorter than its header.
    Truncated,
    /// Larger than [`PACKET_BYTES_MAX`].
    Oversize,
    /// The first byte is no known kind.
    UnknownKind,
    /// Plaintext, but this node requires sealed packets.
    Plaintext,
    /// Sealed, but this node has no key (gossip is plaintext here).
    SealedWithoutKey,
    /// Sealed under a key this node does not have.
    UnknownKey,
    /// The tag does not verify: tampered, or a key with a colliding id.
    Decrypt,
}

impl DropReason {
    /// The metric label of this reason.
    pub fn label(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::Oversize => "oversize",
            Self::UnknownKind => "unknown_kind",
            Self::Plaintext => "plaintext",
            Self::SealedWithoutKey => "sealed_without_key",
            Self::UnknownKey => "unknown_key",
            Self::Decrypt => "decrypt",
        }
    }
}

/// Wraps a foca payload for the wire: sealed under the primary key, or
/// marked plaintext without a keyring.
pub fn seal(keyring: Option<&Keyring>, payload: &[u8]) -> Vec<u8> {
    let Some(keyring) = keyring else {
        let mut packet = Vec::with_capacity(1 + payload.len());
        packet.push(KIND_PLAINTEXT);
        packet.extend_from_slice(payload);
        return packet;
    };
    let (key_id, cipher) = keyring.primary();
    let mut nonce = XNonce::default();
    rand::fill(nonce.as_mut_slice());
    let mut header = [0_u8; SEALED_HEADER_BYTES];
    header[0] = KIND_SEALED;
    header[1..5].copy_from_slice(&key_id.to_be_bytes());
    header[5..].copy_from_slice(nonce.as_slice());
    // Encrypting into a Vec cannot fail for payloads this size.
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: payload,
                aad: &header,
            },
        )
        .unwrap_or_default();
    let mut packet = Vec::with_capacity(SEALED_HEADER_BYTES + ciphertext.len());
    packet.extend_from_slice(&header);
    packet.extend_from_slice(&ciphertext);
    packet
}

/// Opens a received packet into the foca payload it carries.
///
/// # Errors
/// The [`DropReason`] when the packet must not reach foca.
pub fn open(keyring: Option<&Keyring>, packet: &[u8]) -> Result<Vec<u8>, DropReason> {
    if packet.len() > PACKET_BYTES_MAX {
        return Err(DropReason::Oversize);
    }
    let (&kind, rest) = packet.split_first().ok_or(DropReason::Truncated)?;
    match (kind, keyring) {
        (KIND_PLAINTEXT, None) => Ok(rest.to_vec()),
        (KIND_PLAINTEXT, Some(_)) => Err(DropReason::Plaintext),
        (KIND_SEALED, None) => Err(DropReason::SealedWithoutKey),
        (KIND_SEALED, Some(keyring)) => {
            if packet.len() < SEALED_OVERHEAD_BYTES {
                return Err(DropReason::Truncated);
            }
            let (header, ciphertext) = packet.split_at(SEALED_HEADER_BYTES);
            let key_id = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
            let cipher = keyring.by_id(key_id).ok_or(DropReason::UnknownKey)?;
            let nonce = XNonce::try_from(&header[5..]).map_err(|_| DropReason::Truncated)?;
            cipher
                .decrypt(
                    &nonce,
                    Payload {
                        msg: ciphertext,
                        aad: header,
                    },
                )
                .map_err(|_| DropReason::Decrypt)
        }
        _ => Err(DropReason::UnknownKind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::KEY_BYTES;

    fn ring(byte: u8) -> Keyring {
        Keyring::new(&[[byte; KEY_BYTES]]).expect("ring")
    }

    #[test]
    fn sealed_packets_open_with_the_same_key_only() {
        let payload = b"foca says hello".as_slice();
        let packet = seal(Some(&ring(1)), payload);
        assert_eq!(packet.len(), payload.len() + SEALED_OVERHEAD_BYTES);
        assert_eq!(open(Some(&ring(1)), &packet).as_deref(), Ok(payload));
        assert_eq!(open(Some(&ring(2)), &packet), Err(DropReason::UnknownKey));
        assert_eq!(open(None, &packet), Err(DropReason::SealedWithoutKey));
    }

    #[test]
    fn every_flipped_bit_of_a_sealed_packet_is_refused() {
        let packet = seal(Some(&ring(1)), b"payload bytes");
        for bit in 0..packet.len() * 8 {
            let mut flipped = packet.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                open(Some(&ring(1)), &flipped).is_err(),
                "bit {bit} accepted"
            );
        }
    }

    #[test]
    fn a_rotated_keyring_opens_packets_of_its_second_key() {
        let old = ring(1);
        let rotating = Keyring::new(&[[2; KEY_BYTES], [1; KEY_BYTES]]).expect("ring");
        let packet = seal(Some(&old), b"from a node not yet rotated");
        assert!(open(Some(&rotating), &packet).is_ok());
        let packet = seal(Some(&rotating), b"from a rotated node");
        assert_eq!(open(Some(&old), &packet), Err(DropReason::UnknownKey));
    }

    #[test]
    fn plaintext_is_refused_where_a_key_is_required_and_nonsense_is_dropped() {
        let packet = seal(None, b"clear");
        assert_eq!(open(None, &packet).as_deref(), Ok(b"clear".as_slice()));
        assert_eq!(open(Some(&ring(1)), &packet), Err(DropReason::Plaintext));
        assert_eq!(open(None, &[]), Err(DropReason::Truncated));
        assert_eq!(open(None, &[9, 1, 2]), Err(DropReason::UnknownKind));
        assert_eq!(
            open(Some(&ring(1)), &[KIND_SEALED, 0, 0]),
            Err(DropReason::Truncated)
        );
        assert_eq!(
            open(None, &vec![KIND_PLAINTEXT; PACKET_BYTES_MAX + 1]),
            Err(DropReason::Oversize)
        );
    }
}
