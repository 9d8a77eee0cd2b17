//! Random secrets (client secrets, setup passwords, tokens) and how they are stored.
//!
//! Secrets we generate carry at least 128 bits of entropy, so a single SHA-256 is enough to
//! store them: unlike human passwords they cannot be guessed from a dictionary, and a slow hash
//! would only make every token request slower. Comparison is constant-time.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// `n` random bytes from the operating system, base64url without padding.
///
/// Panics only if the OS random source is unavailable, in which case no secret this process
/// could make would be safe to hand out anyway.
pub fn random_token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    #[allow(clippy::expect_used)] // see the doc comment: no safe way to continue.
    getrandom::fill(&mut buf).expect("operating system random source unavailable");
    URL_SAFE_NO_PAD.encode(buf)
}

/// `n` random characters (base64url, 6 bits each): generated secrets of a chosen length.
pub fn random_chars(n: usize) -> String {
    let mut s = random_token(n);
    s.truncate(n);
    s
}

/// A fresh 256-bit client secret for a confidential OpenID Connect client.
pub fn new_client_secret() -> String {
    random_token(32)
}

/// A fresh 128-bit client identifier. Not a secret, but unguessable so that client ids do
/// not reveal which apps exist.
pub fn new_client_id() -> String {
    random_token(16)
}

/// A generated password for the setup admin: 144 bits, typed rarely, copied often.
pub fn new_setup_password() -> String {
    random_token(18)
}

/// The stored form of a high-entropy secret: lowercase hex SHA-256.
pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares a presented secret with its stored hash without leaking where they differ.
pub fn verify_secret(candidate: &str, stored_hash: &str) -> bool {
    let computed = hash_secret(candidate);
    computed.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_url_safe() {
        let a = new_client_secret();
        let b = new_client_secret();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn secret_hash_round_trip() {
        let s = new_client_secret();
        let h = hash_secret(&s);
        assert_eq!(h.len(), 64);
        assert!(verify_secret(&s, &h));
        assert!(!verify_secret("guess", &h));
        assert!(!verify_secret(&s, "short"));
    }
}
