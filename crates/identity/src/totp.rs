//! Time-based one-time passwords (RFC 6238, HMAC-SHA1, 6 digits, 30-second steps): what
//! authenticator apps implement.

use aws_lc_rs::hmac;
use subtle::ConstantTimeEq;

pub const STEP_SECONDS: i64 = 30;
const DIGITS: u32 = 6;
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new 160-bit secret (RFC 4226 §4 recommends 160 bits), base32 encoded.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 20];
    #[allow(clippy::expect_used)] // no safe way to continue without an OS random source
    aws_lc_rs::rand::fill(&mut bytes).expect("operating system random source unavailable");
    base32_encode(&bytes)
}

pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in s.chars().filter(|c| *c != ' ' && *c != '=') {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c.to_ascii_uppercase() as u8)? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// The code for one time step (RFC 4226 §5.3 dynamic truncation).
pub fn code_at(secret: &[u8], step: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &step.to_be_bytes());
    let h = tag.as_ref();
    let offset = usize::from(h[h.len() - 1] & 0x0f);
    let bin = (u32::from(h[offset] & 0x7f) << 24)
        | (u32::from(h[offset + 1]) << 16)
        | (u32::from(h[offset + 2]) << 8)
        | u32::from(h[offset + 3]);
    format!(
        "{:0width$}",
        bin % 10u32.pow(DIGITS),
        width = DIGITS as usize
    )
}

/// Checks `code` against the steps around `now` (one step either way, for clock drift) and
/// returns the matching step, which the caller must record so the code is not accepted twice.
pub fn verify(secret_b32: &str, code: &str, now_unix: i64) -> Option<i64> {
    let secret = base32_decode(secret_b32)?;
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let now = now_unix / STEP_SECONDS;
    (now - 1..=now + 1)
        .find(|&step| bool::from(code_at(&secret, step).as_bytes().ct_eq(code.as_bytes())))
}

/// The `otpauth://` URI authenticator apps import (Key Uri Format).
pub fn provisioning_uri(issuer: &str, account: &str, secret_b32: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "otpauth://totp/{}:{}?secret={secret_b32}&issuer={}&algorithm=SHA1&digits=6&period=30",
        enc(issuer),
        enc(account),
        enc(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_appendix_b_sha1_vectors() {
        // The RFC's vectors are 8 digits; the last 6 of each are our codes.
        let secret = b"12345678901234567890";
        for (time, expected8) in [
            (59i64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(code_at(secret, time / 30), expected8[2..], "t={time}");
        }
    }

    #[test]
    fn base32_round_trip_and_verify_window() {
        let s = new_secret();
        assert_eq!(s.len(), 32);
        let bytes = base32_decode(&s).unwrap();
        assert_eq!(base32_encode(&bytes), s);
        let now = 1_700_000_000;
        let code = code_at(&bytes, now / 30 - 1);
        assert_eq!(verify(&s, &code, now), Some(now / 30 - 1));
        let old = code_at(&bytes, now / 30 - 3);
        assert_eq!(verify(&s, &old, now), None);
        assert_eq!(verify(&s, "12345", now), None);
        assert_eq!(verify(&s, "abcdef", now), None);
    }
}
