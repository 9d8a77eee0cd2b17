//! Secrets at rest, sealed with the platform key: the setup password, TOTP secrets, the
//! signing keys and the links in queued mail are stored encrypted (XChaCha20-Poly1305), so
//! a copy of the database alone reveals none of them.
//!
//! The platform key file holds one key per line (base64); the first seals, all of them
//! open, which is how rotation works: a new key goes first, every value is sealed again
//! under it, and then the old key is dropped. Each sealed value names its key by an 8-byte
//! id (a digest of the key), so opening never guesses.

use base64::{Engine, engine::general_purpose::STANDARD, engine::general_purpose::URL_SAFE_NO_PAD};
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use sha2::{Digest, Sha256};

/// Leads every sealed blob; plaintext left by earlier versions (DER keys, base32 TOTP
/// secrets, mail text) never starts with it.
const MAGIC: &[u8; 4] = b"SSv1";
/// Leads sealed text columns: the blob, base64url.
const TEXT_PREFIX: &str = "$sealed$";
const ID_LEN: usize = 8;
const NONCE_LEN: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the platform key file is empty or not base64 keys of 32 bytes, one per line")]
    BadKeyFile,
    #[error("sealed with a platform key this server does not have (key id {0})")]
    UnknownKey(String),
    #[error("a sealed value is damaged or was altered")]
    Damaged,
}

#[derive(Clone)]
struct Key {
    id: [u8; ID_LEN],
    cipher: XChaCha20Poly1305,
    raw: [u8; 32],
}

impl Key {
    fn new(raw: [u8; 32]) -> Key {
        let digest = Sha256::digest([b"stackspin platform key id".as_slice(), &raw].concat());
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&digest[..ID_LEN]);
        Key {
            id,
            cipher: XChaCha20Poly1305::new(&raw.into()),
            raw,
        }
    }
}

/// The platform keys: the first seals, every one opens.
#[derive(Clone)]
pub struct SecretKeys {
    keys: Vec<Key>,
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKeys")
            .field("current", &self.current_id())
            .field("count", &self.keys.len())
            .finish()
    }
}

impl SecretKeys {
    /// One new random key.
    pub fn generate() -> SecretKeys {
        SecretKeys {
            keys: vec![Key::new(random_key())],
        }
    }

    /// Reads a key file's text: base64 keys of 32 bytes, one per line, current first.
    pub fn parse(text: &str) -> Result<SecretKeys, SealError> {
        let keys = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let bytes = STANDARD.decode(l).map_err(|_| SealError::BadKeyFile)?;
                let raw: [u8; 32] = bytes.try_into().map_err(|_| SealError::BadKeyFile)?;
                Ok(Key::new(raw))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(SealError::BadKeyFile);
        }
        Ok(SecretKeys { keys })
    }

    /// The key file's text for these keys.
    pub fn to_file_text(&self) -> String {
        let mut text = String::from(
            "# Stackspin platform key: seals secrets in the database. Keep it secret and keep\n\
             # a copy with the backups: without it the sealed values cannot be read.\n",
        );
        for k in &self.keys {
            text.push_str(&STANDARD.encode(k.raw));
            text.push('\n');
        }
        text
    }

    /// These keys with a new random key in front (the first step of a rotation).
    pub fn with_new_current(&self) -> SecretKeys {
        let mut keys = vec![Key::new(random_key())];
        keys.extend(self.keys.iter().cloned());
        SecretKeys { keys }
    }

    /// Only the current key (the last step of a rotation, once everything is resealed).
    pub fn current_only(&self) -> SecretKeys {
        SecretKeys {
            keys: self.keys[..1].to_vec(),
        }
    }

    /// The current key's id, hex, for logs and the CLI.
    pub fn current_id(&self) -> String {
        hex(&self.keys[0].id)
    }

    /// Seals bytes under the current key.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("operating system random source unavailable");
        let header: Vec<u8> = [MAGIC.as_slice(), &key.id, &nonce].concat();
        // The header is authenticated too, so a value cannot be moved to another key id.
        let sealed = key
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: &header,
                },
            )
            .expect("XChaCha20-Poly1305 encryption of an in-memory buffer");
        [header, sealed].concat()
    }

    /// Opens a sealed blob; `Ok(None)` when `blob` was never sealed (left in the clear by an
    /// earlier version).
    pub fn open(&self, blob: &[u8]) -> Result<Option<Vec<u8>>, SealError> {
        if !is_sealed(blob) {
            return Ok(None);
        }
        let header_len = MAGIC.len() + ID_LEN + NONCE_LEN;
        if blob.len() < header_len {
            return Err(SealError::Damaged);
        }
        let (header, sealed) = blob.split_at(header_len);
        let id = &header[MAGIC.len()..MAGIC.len() + ID_LEN];
        let nonce: [u8; NONCE_LEN] = header[MAGIC.len() + ID_LEN..]
            .try_into()
            .map_err(|_| SealError::Damaged)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| SealError::UnknownKey(hex(id)))?;
        key.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: header,
                },
            )
            .map(Some)
            .map_err(|_| SealError::Damaged)
    }

    /// Whether `blob` is sealed under the current key (nothing to redo in a rotation).
    pub fn is_current(&self, blob: &[u8]) -> bool {
        is_sealed(blob)
            && blob.get(MAGIC.len()..MAGIC.len() + ID_LEN) == Some(self.keys[0].id.as_slice())
    }

    /// Seals text for a text column.
    pub fn seal_text(&self, plain: &str) -> String {
        format!(
            "{TEXT_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(self.seal(plain.as_bytes()))
        )
    }

    /// Opens a text column's value; plaintext left by an earlier version comes back as is.
    pub fn open_text(&self, stored: &str) -> Result<String, SealError> {
        let Some(b64) = stored.strip_prefix(TEXT_PREFIX) else {
            return Ok(stored.to_owned());
        };
        let blob = URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| SealError::Damaged)?;
        let plain = self.open(&blob)?.ok_or(SealError::Damaged)?;
        String::from_utf8(plain).map_err(|_| SealError::Damaged)
    }

    /// Whether a text column's value is sealed under the current key.
    pub fn is_current_text(&self, stored: &str) -> bool {
        stored
            .strip_prefix(TEXT_PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .is_some_and(|blob| self.is_current(&blob))
    }
}

/// Whether a blob is sealed at all (under any key).
pub fn is_sealed(blob: &[u8]) -> bool {
    blob.starts_with(MAGIC)
}

/// Whether a text column's value is sealed at all.
pub fn is_sealed_text(stored: &str) -> bool {
    stored.starts_with(TEXT_PREFIX)
}

fn random_key() -> [u8; 32] {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).expect("operating system random source unavailable");
    raw
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_rotate() {
        let keys = SecretKeys::generate();
        let text = keys.seal_text("JBSWY3DPEHPK3PXP");
        assert!(!text.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(keys.open_text(&text).unwrap(), "JBSWY3DPEHPK3PXP");
        assert_ne!(
            keys.seal_text("same"),
            keys.seal_text("same"),
            "fresh nonces"
        );
        let rotated = keys.with_new_current();
        assert_eq!(rotated.open_text(&text).unwrap(), "JBSWY3DPEHPK3PXP");
        assert!(!rotated.is_current_text(&text) && keys.is_current_text(&text));
        let resealed = rotated.seal_text("JBSWY3DPEHPK3PXP");
        let only_new = rotated.current_only();
        assert_eq!(only_new.open_text(&resealed).unwrap(), "JBSWY3DPEHPK3PXP");
        assert!(matches!(
            only_new.open_text(&text),
            Err(SealError::UnknownKey(_))
        ));
        let reread = SecretKeys::parse(&rotated.to_file_text()).unwrap();
        assert_eq!(reread.current_id(), rotated.current_id());
        assert_eq!(reread.open_text(&text).unwrap(), "JBSWY3DPEHPK3PXP");
    }

    #[test]
    fn plaintext_passes_and_tampering_is_caught() {
        let keys = SecretKeys::generate();
        assert_eq!(keys.open_text("legacy").unwrap(), "legacy");
        assert_eq!(keys.open(&[0x30, 0x82]).unwrap(), None);
        let mut blob = keys.seal(b"private key");
        let last = blob.len() - 1;
        blob[last] ^= 1;
        assert_eq!(keys.open(&blob), Err(SealError::Damaged));
        assert_eq!(
            SecretKeys::parse("# nothing\n").unwrap_err(),
            SealError::BadKeyFile
        );
        assert_eq!(
            SecretKeys::parse("c2hvcnQ=").unwrap_err(),
            SealError::BadKeyFile
        );
        assert!(!format!("{keys:?}").contains(&STANDARD.encode(keys.keys[0].raw)));
    }
}
