//! Discovery 1.0: the provider metadata and its public keys.

use axum::{Json, extract::State, response::IntoResponse};
use serde_json::{Value, json};

use crate::AppState;

pub fn metadata(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks.json"),
        "end_session_endpoint": format!("{issuer}/logout"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "email", "groups", "offline_access"],
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "sid", "azp", "at_hash",
            "email", "email_verified", "name", "preferred_username", "updated_at", "groups"
        ],
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "frontchannel_logout_supported": false,
    })
}

pub async fn openid_configuration(State(state): State<AppState>) -> impl IntoResponse {
    Json(metadata(state.public_url.as_str()))
}

pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    // Apps cache this; a short max-age lets them see a rotation within minutes even if they
    // do not refetch on an unknown kid.
    (
        [(axum::http::header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.keys.jwks()),
    )
}
