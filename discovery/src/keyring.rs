//! Gossip keys: one to seal with, any of them to open with.

use std::path::Path;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::error::{Error, Result};

/// Bytes of a gossip key.
pub const KEY_BYTES: usize = 32;

/// Associated data of the key-id computation, so it can never be mistaken
/// for a packet.
const KEY_ID_CONTEXT: &[u8] = b"proglog gossip key id v1";

/// Gossip keys. The first seals every packet; all of them open packets, so
/// a key can be rotated in without a flag day: add the new key second on
/// every node, then make it first on every node, then drop the old one.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(u32, XChaCha20Poly1305)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self
            .keys
            .iter()
            .map(|(id, _)| format!("{id:08x}"))
            .collect();
        formatter
            .debug_struct("Keyring")
            .field("key_ids", &ids)
            .finish()
    }
}

impl Keyring {
    /// A keyring of raw keys, the first one primary.
    ///
    /// # Errors
    /// [`Error::Config`] when `keys` is empty.
    pub fn new(keys: &[[u8; KEY_BYTES]]) -> Result<Self> {
        if keys.is_empty() {
            return Err(Error::Config {
                key: "cluster.gossip_key_file",
                reason: "the keyring holds no key".into(),
            });
        }
        let keys = keys
            .iter()
            .map(|key| {
                let cipher = XChaCha20Poly1305::new(key.into());
                (key_id(&cipher), cipher)
            })
            .collect();
        Ok(Self { keys })
    }

    /// Reads a key file: one base64 key of 32 bytes per line (blank lines
    /// and `#` comments ignored), the first line primary.
    ///
    /// # Errors
    /// [`Error::KeyFile`] naming the file and the line at fault.
    pub fn from_file(path: &Path) -> Result<Self> {
        let error = |reason: String| Error::KeyFile {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let mut keys = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = base64::engine::general_purpose::STANDARD
                .decode(line)
                .map_err(|e| error(format!("line {}: not base64: {e}", number + 1)))?;
            let key: [u8; KEY_BYTES] = key.try_into().map_err(|key: Vec<u8>| {
                error(format!(
                    "line {}: a key is {KEY_BYTES} bytes, this one is {}",
                    number + 1,
                    key.len()
                ))
            })?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(error("holds no key".into()));
        }
        Self::new(&keys)
    }

    /// A new random key, base64-encoded as a key file line expects.
    pub fn generate_key_line() -> String {
        let mut key = [0_u8; KEY_BYTES];
        rand::fill(&mut key);
        base64::engine::general_purpose::STANDARD.encode(key)
    }

    /// The primary key's id and cipher.
    pub(crate) fn primary(&self) -> (u32, &XChaCha20Poly1305) {
        let (id, cipher) = &self.keys[0];
        (*id, cipher)
    }

    /// The cipher of key `id`, if this keyring has it.
    pub(crate) fn by_id(&self, id: u32) -> Option<&XChaCha20Poly1305> {
        self.keys
            .iter()
            .find(|(key_id, _)| *key_id == id)
            .map(|(_, cipher)| cipher)
    }
}

/// A key's public name: the first four bytes of the tag of an empty message
/// sealed under a fixed context. It tells keys apart without revealing them.
fn key_id(cipher: &XChaCha20Poly1305) -> u32 {
    let nonce = XNonce::default();
    let tag = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: &[],
                aad: KEY_ID_CONTEXT,
            },
        )
        .unwrap_or_default();
    let mut id = [0_u8; 4];
    id.copy_from_slice(tag.get(..4).unwrap_or(&[0; 4]));
    u32::from_be_bytes(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_name_the_bad_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gossip.key");
        std::fs::write(
            &path,
            format!("# comment\n{}\nAAAA\n", Keyring::generate_key_line()),
        )
        .expect("write");
        let error = Keyring::from_file(&path).expect_err("short key");
        assert!(error.to_string().contains("line 3"), "{error}");
        std::fs::write(&path, "\n# nothing\n").expect("write");
        let error = Keyring::from_file(&path).expect_err("empty");
        assert!(error.to_string().contains("holds no key"), "{error}");
    }

    #[test]
    fn different_keys_have_different_ids() {
        let ring = Keyring::new(&[[1; KEY_BYTES], [2; KEY_BYTES]]).expect("ring");
        assert_ne!(ring.keys[0].0, ring.keys[1].0);
        assert_eq!(ring.primary().0, ring.keys[0].0);
    }
}
