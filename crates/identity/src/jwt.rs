//! Compact JWS: signing the tokens we issue and verifying them when they come back
//! (`id_token_hint`).

use serde_json::{Value, json};

use crate::{
    b64,
    keys::{KeyError, SigningKey, VerifyingKey},
    unb64,
};

/// Signs `claims` with `key`; `typ` is set for tokens that must not be mistaken for others
/// (`logout+jwt`, RFC 8417 / Back-Channel Logout 1.0 §2.4).
pub fn sign(key: &SigningKey, typ: Option<&str>, claims: &Value) -> Result<String, KeyError> {
    let mut header = json!({ "alg": key.alg().as_str(), "kid": key.kid() });
    if let Some(typ) = typ {
        header["typ"] = Value::from(typ);
    }
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = key.sign(input.as_bytes())?;
    Ok(format!("{input}.{}", b64(&sig)))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("not a compact JWS")]
    Malformed,
    #[error("signed by an unknown key")]
    UnknownKey,
    #[error("bad signature")]
    BadSignature,
}

#[derive(Debug, Clone)]
pub struct Verified {
    pub header: Value,
    pub claims: Value,
}

/// Verifies a token's signature against `keys` (by `kid`, with the key's own algorithm, so a
/// token cannot choose `none` or switch algorithms).
pub fn verify(token: &str, keys: &[VerifyingKey]) -> Result<Verified, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header: Value = unb64(h)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwtError::Malformed)?;
    let claims: Value = unb64(c)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwtError::Malformed)?;
    let sig = unb64(s).ok_or(JwtError::Malformed)?;
    let kid = header.get("kid").and_then(Value::as_str);
    let key = keys
        .iter()
        .find(|k| Some(k.kid.as_str()) == kid)
        .ok_or(JwtError::UnknownKey)?;
    if header.get("alg").and_then(Value::as_str) != Some(key.alg().as_str()) {
        return Err(JwtError::BadSignature);
    }
    let input_len = h.len() + 1 + c.len();
    if !key.verify(&token.as_bytes()[..input_len], &sig) {
        return Err(JwtError::BadSignature);
    }
    Ok(Verified { header, claims })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Alg;

    #[test]
    fn sign_then_verify_and_tamper() {
        let key = SigningKey::generate("k1".into(), Alg::Rs256).unwrap();
        let vk = VerifyingKey::from_jwk(&key.public_jwk()).unwrap();
        let token = sign(&key, Some("logout+jwt"), &json!({"sub": "u"})).unwrap();
        let v = verify(&token, std::slice::from_ref(&vk)).unwrap();
        assert_eq!(v.claims["sub"], "u");
        assert_eq!(v.header["typ"], "logout+jwt");

        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = b64(json!({"sub": "admin"}).to_string().as_bytes());
        parts[1] = &forged;
        assert_eq!(
            verify(&parts.join("."), std::slice::from_ref(&vk)).unwrap_err(),
            JwtError::BadSignature
        );
        let other = SigningKey::generate("k2".into(), Alg::Es256).unwrap();
        let t2 = sign(&other, None, &json!({})).unwrap();
        assert_eq!(verify(&t2, &[vk]).unwrap_err(), JwtError::UnknownKey);
        assert_eq!(verify("a.b", &[]).unwrap_err(), JwtError::Malformed);
    }
}
