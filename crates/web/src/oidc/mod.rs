//! The OpenID Connect provider's endpoints.
//!
//! - `discovery`: `/.well-known/openid-configuration` and the JWKS.
//! - `authorize`: the authorization endpoint (code flow only).
//! - `token`: token, UserInfo, introspection and revocation endpoints.
//! - `logout`: RP-initiated logout.
//! - `backchannel`: delivery of back-channel logout tokens from the outbox.
//! - `keys`: the signing keys in memory.

pub mod authorize;
pub mod backchannel;
pub mod discovery;
pub mod keys;
pub mod logout;
pub mod token;

use std::collections::HashMap;

use axum::{
    Json,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::Engine;
use serde_json::json;
use stackspin_domain::{App, secret::verify_secret};

use crate::AppState;

/// Request parameters, from a query string or form body. OAuth 2.0 forbids repeating a
/// parameter (RFC 6749 §3.1), so a repeat is an error rather than "last one wins".
pub(crate) fn parse_params(raw: &str) -> Result<HashMap<String, String>, String> {
    let mut map = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        if map.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(format!("parameter {k} is repeated"));
        }
    }
    Ok(map)
}

/// An error answered as JSON by the back-channel endpoints (RFC 6749 §5.2).
#[derive(Debug)]
pub(crate) struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// Set when the client tried HTTP Basic, which obliges a `WWW-Authenticate` challenge.
    basic_challenge: bool,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> OAuthError {
        let status = match error {
            "invalid_client" => StatusCode::UNAUTHORIZED,
            "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
            "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        OAuthError {
            status,
            error,
            description: description.into(),
            basic_challenge: false,
        }
    }

    pub fn server(e: impl std::fmt::Display) -> OAuthError {
        tracing::error!(error = %e, "identity provider error");
        OAuthError::new("server_error", "internal error")
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(json!({ "error": self.error, "error_description": self.description })),
        )
            .into_response();
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.basic_challenge {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"stackspin\""),
            );
        }
        resp
    }
}

/// Authenticates the client of a token, introspection or revocation request:
/// `client_secret_basic`, `client_secret_post`, or `none` for public clients (which must then
/// prove possession through PKCE instead).
pub(crate) async fn authenticate_client(
    state: &AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<App, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        });
    let fail = |basic: bool, msg: &str| OAuthError {
        basic_challenge: basic,
        ..OAuthError::new("invalid_client", msg)
    };
    let (client_id, secret, used_basic) = match basic {
        Some(b64) => {
            if params.contains_key("client_secret") {
                return Err(OAuthError::new(
                    "invalid_request",
                    "use one client authentication method",
                ));
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or_else(|| fail(true, "malformed Basic credentials"))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| fail(true, "malformed Basic credentials"))?;
            // RFC 6749 §2.3.1: both halves are form-urlencoded before base64.
            let dec = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            (dec(id), Some(dec(secret)), true)
        }
        None => (
            params.get("client_id").cloned().unwrap_or_default(),
            params.get("client_secret").cloned(),
            false,
        ),
    };
    if let Some(body_id) = params.get("client_id")
        && used_basic
        && *body_id != client_id
    {
        return Err(fail(true, "client_id does not match the credentials"));
    }
    if client_id.is_empty() {
        return Err(fail(used_basic, "client authentication required"));
    }
    let app = state
        .store
        .app_by_client_id(&client_id)
        .await
        .map_err(OAuthError::server)?
        .ok_or_else(|| fail(used_basic, "unknown client"))?;
    match (&app.client_secret_hash, secret) {
        (Some(hash), Some(secret)) if verify_secret(&secret, hash) => Ok(app),
        (None, None) => Ok(app),
        _ => Err(fail(used_basic, "client authentication failed")),
    }
}

/// `Cache-Control: no-store` for every response that carries tokens (RFC 6749 §5.1).
pub(crate) fn no_store(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(parse_params("a=1&b=2").is_ok());
        assert_eq!(
            parse_params("a=1&a=2").unwrap_err(),
            "parameter a is repeated"
        );
    }
}
