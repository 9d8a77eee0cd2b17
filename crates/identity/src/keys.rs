//! Signing keys for ID tokens and logout tokens: RS256 (what apps expect by default) and
//! ES256 (for clients that register it), on aws-lc-rs.
//!
//! A key is identified by a `kid` that is never reused: apps cache the key set and refetch it
//! only when they meet an unknown `kid`, so rotating a key under the same `kid` would break
//! their logins.

use std::fmt;

use aws_lc_rs::{
    encoding::AsDer,
    rand::SystemRandom,
    rsa::KeySize,
    signature::{
        self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
    },
};
use serde_json::{Value, json};

use crate::b64;

pub use stackspin_domain::SigningAlg as Alg;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key generation failed")]
    Generate,
    #[error("stored {0} key is not valid PKCS#8")]
    BadKey(&'static str),
    #[error("signing failed")]
    Sign,
}

enum Inner {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A private signing key with its `kid`.
pub struct SigningKey {
    kid: String,
    alg: Alg,
    inner: Inner,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({} {})", self.alg.as_str(), self.kid)
    }
}

impl SigningKey {
    /// A fresh key. RSA keys are 2048 bits: the size every relying party accepts, and what
    /// the OpenID Connect certification profiles test.
    pub fn generate(kid: String, alg: Alg) -> Result<SigningKey, KeyError> {
        let inner = match alg {
            Alg::Rs256 => {
                Inner::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?)
            }
            Alg::Es256 => Inner::Ec(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| KeyError::Generate)?,
            ),
        };
        Ok(SigningKey { kid, alg, inner })
    }

    /// Loads a key from its PKCS#8 DER form, as stored.
    pub fn from_pkcs8(kid: String, alg: Alg, der: &[u8]) -> Result<SigningKey, KeyError> {
        let inner = match alg {
            Alg::Rs256 => {
                Inner::Rsa(RsaKeyPair::from_pkcs8(der).map_err(|_| KeyError::BadKey("RSA"))?)
            }
            Alg::Es256 => Inner::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|_| KeyError::BadKey("EC"))?,
            ),
        };
        Ok(SigningKey { kid, alg, inner })
    }

    /// The PKCS#8 DER form, for storage.
    pub fn to_pkcs8(&self) -> Result<Vec<u8>, KeyError> {
        match &self.inner {
            Inner::Rsa(k) => k
                .as_der()
                .map(|d| d.as_ref().to_vec())
                .map_err(|_| KeyError::Generate),
            Inner::Ec(k) => k
                .to_pkcs8v1()
                .map(|d| d.as_ref().to_vec())
                .map_err(|_| KeyError::Generate),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The public half as a JWK, for the JWKS document.
    pub fn public_jwk(&self) -> Value {
        match &self.inner {
            Inner::Rsa(k) => {
                let pk = k.public_key();
                json!({
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": self.kid,
                    "n": b64(pk.modulus().big_endian_without_leading_zero()),
                    "e": b64(pk.exponent().big_endian_without_leading_zero()),
                })
            }
            Inner::Ec(k) => {
                // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
                let point = k.public_key().as_ref();
                let (x, y) = match point {
                    [0x04, rest @ ..] if rest.len() == 64 => rest.split_at(32),
                    _ => (&[][..], &[][..]),
                };
                json!({
                    "kty": "EC",
                    "use": "sig",
                    "alg": "ES256",
                    "crv": "P-256",
                    "kid": self.kid,
                    "x": b64(x),
                    "y": b64(y),
                })
            }
        }
    }

    /// Signs `message` (the JWS signing input).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match &self.inner {
            Inner::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
            Inner::Ec(k) => k
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
        }
    }
}

/// A public key from a JWK, for verifying tokens we issued (`id_token_hint`) and in tests.
#[derive(Clone, Debug)]
pub struct VerifyingKey {
    pub kid: String,
    alg: Alg,
    rsa: Option<(Vec<u8>, Vec<u8>)>,
    ec_point: Option<Vec<u8>>,
}

impl VerifyingKey {
    pub fn from_jwk(jwk: &Value) -> Option<VerifyingKey> {
        let kid = jwk.get("kid")?.as_str()?.to_owned();
        match jwk.get("kty")?.as_str()? {
            "RSA" => Some(VerifyingKey {
                kid,
                alg: Alg::Rs256,
                rsa: Some((
                    crate::unb64(jwk.get("n")?.as_str()?)?,
                    crate::unb64(jwk.get("e")?.as_str()?)?,
                )),
                ec_point: None,
            }),
            "EC" => {
                let mut point = vec![0x04];
                point.extend(crate::unb64(jwk.get("x")?.as_str()?)?);
                point.extend(crate::unb64(jwk.get("y")?.as_str()?)?);
                Some(VerifyingKey {
                    kid,
                    alg: Alg::Es256,
                    rsa: None,
                    ec_point: Some(point),
                })
            }
            _ => None,
        }
    }

    pub fn alg(&self) -> Alg {
        self.alg
    }

    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match (&self.rsa, &self.ec_point) {
            (Some((n, e)), _) => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
                .is_ok(),
            (_, Some(point)) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_pkcs8_and_verify() {
        for alg in [Alg::Rs256, Alg::Es256] {
            let key = SigningKey::generate(format!("k-{}", alg.as_str()), alg).unwrap();
            let der = key.to_pkcs8().unwrap();
            let loaded = SigningKey::from_pkcs8(key.kid().into(), alg, &der).unwrap();
            let sig = loaded.sign(b"hello").unwrap();
            let vk = VerifyingKey::from_jwk(&key.public_jwk()).unwrap();
            assert!(vk.verify(b"hello", &sig), "{alg:?}");
            assert!(!vk.verify(b"hellO", &sig), "{alg:?}");
            assert_eq!(vk.alg(), alg);
        }
    }

    #[test]
    fn rejects_garbage_keys() {
        assert!(SigningKey::from_pkcs8("k".into(), Alg::Rs256, b"nope").is_err());
        assert!(SigningKey::from_pkcs8("k".into(), Alg::Es256, b"nope").is_err());
    }
}
