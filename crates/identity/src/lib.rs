//! The OpenID Connect side of Stackspin, as rules and data: signing keys and JWTs
//! ([`keys`], [`jwt`]), PKCE ([`pkce`]), redirect-URI matching ([`redirect`]) and the claims
//! of ID tokens and logout tokens ([`claims`]).
//!
//! Architecture invariant: no I/O. Keys are generated and used here but stored by the caller;
//! endpoints, sessions and persistence live in `stackspin-web` and `stackspin-storage`.

pub mod claims;
pub mod jwt;
pub mod keys;
pub mod pkce;
pub mod redirect;
pub mod totp;

/// base64url without padding, the encoding of every JOSE part.
pub(crate) fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn unb64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}
