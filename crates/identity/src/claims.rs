//! What the provider says about a person, to whom: ID token, UserInfo and logout token claims.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use stackspin_domain::{Role, User};

use crate::b64;

/// The `groups` claim: the person's role in the requesting app, so apps can map admin rights
/// (`admin`) without knowing Stackspin. `none` never reaches an app: such logins are refused.
pub fn groups(role: Role) -> Vec<&'static str> {
    match role {
        Role::Admin => vec!["admin"],
        Role::User => vec!["user"],
        Role::None => vec![],
    }
}

/// For apps that check one access value only (HedgeDoc's `CMD_OAUTH2_ACCESS_ROLE=user`): an
/// admin's `groups` also carries `user`, so admins are not locked out of their own app.
pub fn admins_are_users_too(claims: &mut Map<String, Value>, role: Role) {
    if role == Role::Admin {
        claims.insert("groups".into(), json!(["admin", "user"]));
    }
}

/// The person's claims released for `scopes` (OpenID Connect Core §5.4). `sub` always;
/// `groups` always, because it carries the authorisation decision apps rely on.
pub fn user_claims(user: &User, role: Role, scopes: &[&str]) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("sub".into(), json!(user.id.to_string()));
    if scopes.contains(&"email") {
        m.insert("email".into(), json!(user.email.as_str()));
        // Accounts are created by admins for known addresses or verified by an emailed
        // link before first use.
        m.insert("email_verified".into(), json!(true));
    }
    if scopes.contains(&"profile") {
        m.insert("name".into(), json!(user.name.as_str()));
        m.insert("preferred_username".into(), json!(user.email.as_str()));
        m.insert("updated_at".into(), json!(user.updated_at.timestamp()));
    }
    m.insert("groups".into(), json!(groups(role)));
    m
}

/// The left half of the SHA-256 of an access token (`at_hash`, Core §3.1.3.6); the same for
/// RS256 and ES256, both being SHA-256 algorithms.
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    b64(&digest[..16])
}

/// The fixed part of every ID token.
pub struct IdTokenBase<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: Option<&'a str>,
    pub auth_time: i64,
    pub amr: &'a [String],
    pub sid: &'a str,
    pub issued_at: i64,
    pub lifetime_secs: i64,
    pub access_token: Option<&'a str>,
}

pub fn id_token(base: &IdTokenBase<'_>, user_claims: Map<String, Value>) -> Value {
    let mut claims = user_claims;
    claims.insert("iss".into(), json!(base.issuer));
    claims.insert("aud".into(), json!(base.client_id));
    claims.insert("azp".into(), json!(base.client_id));
    claims.insert("iat".into(), json!(base.issued_at));
    claims.insert("exp".into(), json!(base.issued_at + base.lifetime_secs));
    claims.insert("auth_time".into(), json!(base.auth_time));
    claims.insert("amr".into(), json!(base.amr));
    claims.insert("sid".into(), json!(base.sid));
    if let Some(nonce) = base.nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    if let Some(at) = base.access_token {
        claims.insert("at_hash".into(), json!(at_hash(at)));
    }
    Value::Object(claims)
}

/// A Back-Channel Logout 1.0 logout token (§2.4): no `nonce`, the back-channel event, and
/// both `sub` and `sid` so the app can end exactly that session or all of the person's.
pub fn logout_token(
    issuer: &str,
    client_id: &str,
    sub: &str,
    sid: Option<&str>,
    issued_at: i64,
    jti: &str,
) -> Value {
    let mut v = json!({
        "iss": issuer,
        "aud": client_id,
        "iat": issued_at,
        "exp": issued_at + 120,
        "jti": jti,
        "sub": sub,
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    });
    if let Some(sid) = sid {
        v["sid"] = json!(sid);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_matches_core_example_shape() {
        // 16 bytes of digest is 22 base64url characters.
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNnmb5ZWPZkFwe4oR").len(),
            22
        );
    }

    #[test]
    fn logout_token_has_no_nonce_and_the_event() {
        let t = logout_token("https://i", "c", "s", Some("sid1"), 100, "j");
        assert!(t.get("nonce").is_none());
        assert!(t["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
        assert_eq!(t["sid"], "sid1");
    }

    #[test]
    fn admins_can_be_users_too_where_the_app_needs_it() {
        let mut m = Map::new();
        admins_are_users_too(&mut m, Role::Admin);
        assert_eq!(m["groups"], json!(["admin", "user"]));
        let mut m = Map::new();
        m.insert("groups".into(), json!(["user"]));
        admins_are_users_too(&mut m, Role::User);
        assert_eq!(m["groups"], json!(["user"]));
    }

    #[test]
    fn groups_reflect_the_role() {
        assert_eq!(groups(Role::Admin), ["admin"]);
        assert_eq!(groups(Role::User), ["user"]);
        assert!(groups(Role::None).is_empty());
    }
}
