//! Proof Key for Code Exchange (RFC 7636), S256 only: `plain` would let anyone who sees the
//! authorization request redeem the code.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::b64;

fn is_unreserved(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Checks the `code_challenge` and `code_challenge_method` of an authorization request.
pub fn check_challenge(challenge: &str, method: Option<&str>) -> Result<(), &'static str> {
    match method {
        Some("S256") => {}
        None | Some("plain") => return Err("code_challenge_method must be S256"),
        Some(_) => return Err("unsupported code_challenge_method"),
    }
    // A SHA-256 digest in base64url is exactly 43 characters.
    if challenge.len() != 43 || !is_unreserved(challenge) {
        return Err("code_challenge must be a base64url SHA-256 digest");
    }
    Ok(())
}

/// Whether `verifier` (from the token request) matches the stored S256 `challenge`.
pub fn verify(verifier: &str, challenge: &str) -> bool {
    if !(43..=128).contains(&verifier.len()) || !is_unreserved(verifier) {
        return false;
    }
    let computed = b64(&Sha256::digest(verifier.as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(check_challenge(challenge, Some("S256")).is_ok());
        assert!(verify(verifier, challenge));
        assert!(!verify(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK",
            challenge
        ));
        assert!(check_challenge(challenge, Some("plain")).is_err());
        assert!(check_challenge(challenge, None).is_err());
        assert!(check_challenge("short", Some("S256")).is_err());
        assert!(!verify("short", challenge));
    }
}
