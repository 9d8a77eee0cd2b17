//! Token endpoint (Core §3.1.3), UserInfo (Core §5.3), introspection (RFC 7662) and
//! revocation (RFC 7009).
//!
//! Access and refresh tokens are opaque random strings stored as hashes: revocation and role
//! changes take effect on the next request, which self-contained JWT access tokens could not
//! offer.

use std::collections::HashMap;

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use serde_json::{Value, json};
use stackspin_domain::{
    App, Role, User,
    secret::{hash_secret, random_token},
};
use stackspin_identity::{claims, jwt, pkce};
use stackspin_storage::{CodeRedemption, RefreshOutcome, TokenKind, TokenRecord};

use super::{OAuthError, authenticate_client, no_store, parse_params};
use crate::AppState;

pub async fn token(State(state): State<AppState>, headers: HeaderMap, body: String) -> Response {
    match token_inner(&state, &headers, &body).await {
        Ok(v) => no_store(Json(v).into_response()),
        Err(e) => e.into_response(),
    }
}

async fn token_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: &str,
) -> Result<Value, OAuthError> {
    let params = parse_params(body).map_err(|m| OAuthError::new("invalid_request", m))?;
    let app = authenticate_client(state, headers, &params).await?;
    match params.get("grant_type").map(String::as_str) {
        Some("authorization_code") => authorization_code(state, &app, &params).await,
        Some("refresh_token") => refresh(state, &app, &params).await,
        Some(_) => Err(OAuthError::new(
            "unsupported_grant_type",
            "use authorization_code or refresh_token",
        )),
        None => Err(OAuthError::new("invalid_request", "grant_type is required")),
    }
}

async fn authorization_code(
    state: &AppState,
    app: &App,
    params: &HashMap<String, String>,
) -> Result<Value, OAuthError> {
    let code = params
        .get("code")
        .ok_or_else(|| OAuthError::new("invalid_request", "code is required"))?;
    let invalid = || OAuthError::new("invalid_grant", "the code is invalid, expired or used");
    let rec = match state
        .store
        .redeem_code(&hash_secret(code))
        .await
        .map_err(OAuthError::server)?
    {
        CodeRedemption::Redeemed(rec) => rec,
        CodeRedemption::Replayed => {
            let mut e = stackspin_storage::AuditEvent::new("token.code_replayed");
            e.app = Some(app.name.to_string());
            state.audit(e).await;
            return Err(invalid());
        }
        CodeRedemption::Expired | CodeRedemption::Unknown => return Err(invalid()),
    };
    if rec.app_id != app.id.0 {
        return Err(invalid());
    }
    if params.get("redirect_uri") != Some(&rec.redirect_uri) {
        return Err(OAuthError::new(
            "invalid_grant",
            "redirect_uri does not match the authorization request",
        ));
    }
    match (&rec.code_challenge, params.get("code_verifier")) {
        (Some(challenge), Some(verifier)) if pkce::verify(verifier, challenge) => {}
        (None, None) => {}
        // A verifier without a challenge is a downgrade attempt (RFC 9700 §4.8.2).
        _ => {
            return Err(OAuthError::new("invalid_grant", "PKCE verification failed"));
        }
    }
    let (user, role) = live_user(state, app, stackspin_domain::UserId(rec.user_id)).await?;
    let scopes: Vec<&str> = rec.scope.split(' ').collect();
    let amr: Vec<String> = rec.amr.split(' ').map(str::to_owned).collect();
    let grant = Grant {
        family_id: rec.code_hash.clone(),
        sid: Some(rec.sid.clone()),
        scope: rec.scope.clone(),
        auth_time: rec.auth_time,
        amr,
    };
    let (access, refresh) = issue_pair(state, app, &user, &grant).await?;
    let id_token = id_token(
        state,
        app,
        &user,
        role,
        &scopes,
        &grant,
        rec.nonce.as_deref(),
        &access,
    )
    .await?;
    Ok(token_response(
        state, &access, &refresh, &id_token, &rec.scope,
    ))
}

async fn refresh(
    state: &AppState,
    app: &App,
    params: &HashMap<String, String>,
) -> Result<Value, OAuthError> {
    let old = params
        .get("refresh_token")
        .ok_or_else(|| OAuthError::new("invalid_request", "refresh_token is required"))?;
    let now = Utc::now();
    let access = random_token(32);
    let refresh = random_token(32);
    let outcome = state
        .store
        .rotate_refresh_token(
            &hash_secret(old),
            app.id,
            (
                &hash_secret(&access),
                now + state.options.access_token_lifetime,
            ),
            (
                &hash_secret(&refresh),
                now + state.options.refresh_token_lifetime,
            ),
        )
        .await
        .map_err(OAuthError::server)?;
    let old = match outcome {
        RefreshOutcome::Rotated(old) => old,
        RefreshOutcome::Replayed => {
            let mut e = stackspin_storage::AuditEvent::new("token.refresh_replayed");
            e.app = Some(app.name.to_string());
            state.audit(e).await;
            return Err(OAuthError::new(
                "invalid_grant",
                "the refresh token is invalid",
            ));
        }
        RefreshOutcome::Invalid => {
            return Err(OAuthError::new(
                "invalid_grant",
                "the refresh token is invalid",
            ));
        }
    };
    let (user, role) = live_user(state, app, old.user_id).await?;
    let scopes: Vec<&str> = old.scope.split(' ').collect();
    let grant = Grant {
        family_id: old.family_id.clone(),
        sid: old.sid.clone(),
        scope: old.scope.clone(),
        auth_time: old.auth_time,
        amr: old.amr.clone(),
    };
    let id_token = id_token(state, app, &user, role, &scopes, &grant, None, &access).await?;
    Ok(token_response(
        state, &access, &refresh, &id_token, &old.scope,
    ))
}

/// The person behind a grant and their role, if they still exist and may still use the app.
async fn live_user(
    state: &AppState,
    app: &App,
    id: stackspin_domain::UserId,
) -> Result<(User, Role), OAuthError> {
    let user = state
        .store
        .user_by_id(id)
        .await
        .map_err(OAuthError::server)?
        .ok_or_else(|| OAuthError::new("invalid_grant", "the user no longer exists"))?;
    let role = state
        .store
        .role_of(user.id, app.id)
        .await
        .map_err(OAuthError::server)?;
    if role == Role::None {
        return Err(OAuthError::new(
            "invalid_grant",
            "the user has no access to this app",
        ));
    }
    Ok((user, role))
}

struct Grant {
    family_id: String,
    sid: Option<String>,
    scope: String,
    auth_time: chrono::DateTime<Utc>,
    amr: Vec<String>,
}

async fn issue_pair(
    state: &AppState,
    app: &App,
    user: &User,
    g: &Grant,
) -> Result<(String, String), OAuthError> {
    let now = Utc::now();
    let access = random_token(32);
    let refresh = random_token(32);
    let make = |token: &str, kind, lifetime| TokenRecord {
        token_hash: hash_secret(token),
        kind,
        family_id: g.family_id.clone(),
        app_id: app.id,
        user_id: user.id,
        sid: g.sid.clone(),
        scope: g.scope.clone(),
        auth_time: g.auth_time,
        amr: g.amr.clone(),
        created_at: now,
        expires_at: now + lifetime,
    };
    state
        .store
        .insert_tokens(&[
            make(
                &access,
                TokenKind::Access,
                state.options.access_token_lifetime,
            ),
            make(
                &refresh,
                TokenKind::Refresh,
                state.options.refresh_token_lifetime,
            ),
        ])
        .await
        .map_err(OAuthError::server)?;
    Ok((access, refresh))
}

#[allow(clippy::too_many_arguments)] // each is a distinct input of the token's claims
async fn id_token(
    state: &AppState,
    app: &App,
    user: &User,
    role: Role,
    scopes: &[&str],
    g: &Grant,
    nonce: Option<&str>,
    access: &str,
) -> Result<String, OAuthError> {
    let signer = state
        .keys
        .signer(app.id_token_alg)
        .ok_or_else(|| OAuthError::server("no signing key loaded"))?;
    let sid = g.sid.clone().unwrap_or_default();
    let base = claims::IdTokenBase {
        issuer: state.public_url.as_str(),
        client_id: &app.client_id.0,
        nonce,
        auth_time: g.auth_time.timestamp(),
        amr: &g.amr,
        sid: &sid,
        issued_at: Utc::now().timestamp(),
        lifetime_secs: state.options.id_token_lifetime.num_seconds(),
        access_token: Some(access),
    };
    let mut user_claims = claims::user_claims(user, role, scopes);
    if state
        .store
        .groups_claim(app.id)
        .await
        .map_err(OAuthError::server)?
        == stackspin_storage::GroupsClaim::RoleAndUser
    {
        claims::admins_are_users_too(&mut user_claims, role);
    }
    let body = claims::id_token(&base, user_claims);
    jwt::sign(&signer, None, &body).map_err(OAuthError::server)
}

fn token_response(
    state: &AppState,
    access: &str,
    refresh: &str,
    id_token: &str,
    scope: &str,
) -> Value {
    json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": state.options.access_token_lifetime.num_seconds(),
        "refresh_token": refresh,
        "id_token": id_token,
        "scope": scope,
    })
}

/// UserInfo: the claims of the person an access token was issued for, for its scopes, with
/// their *current* role (a changed role shows at once).
pub async fn userinfo(State(state): State<AppState>, headers: HeaderMap, body: String) -> Response {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_owned());
    let from_body = parse_params(&body)
        .ok()
        .and_then(|p| p.get("access_token").cloned());
    let token = match (from_header, from_body) {
        (Some(t), None) | (None, Some(t)) => t,
        (Some(_), Some(_)) => return bearer_error(StatusCode::BAD_REQUEST, "invalid_request"),
        (None, None) => return bearer_error(StatusCode::UNAUTHORIZED, ""),
    };
    let result = async {
        let Some(t) = state.store.active_token(&hash_secret(&token)).await? else {
            return Ok(None);
        };
        if t.kind != TokenKind::Access {
            return Ok(None);
        }
        let Some(user) = state.store.user_by_id(t.user_id).await? else {
            return Ok(None);
        };
        let role = state.store.role_of(user.id, t.app_id).await?;
        if role == Role::None {
            return Ok(None);
        }
        let scopes: Vec<&str> = t.scope.split(' ').collect();
        let mut info = claims::user_claims(&user, role, &scopes);
        if state.store.groups_claim(t.app_id).await? == stackspin_storage::GroupsClaim::RoleAndUser
        {
            claims::admins_are_users_too(&mut info, role);
        }
        Ok::<_, stackspin_storage::StorageError>(Some(Value::Object(info)))
    }
    .await;
    match result {
        Ok(Some(claims)) => no_store(Json(claims).into_response()),
        Ok(None) => bearer_error(StatusCode::UNAUTHORIZED, "invalid_token"),
        Err(e) => OAuthError::server(e).into_response(),
    }
}

fn bearer_error(status: StatusCode, error: &str) -> Response {
    let challenge = if error.is_empty() {
        "Bearer realm=\"stackspin\"".to_owned()
    } else {
        format!("Bearer realm=\"stackspin\", error=\"{error}\"")
    };
    let mut resp = status.into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// Token introspection for the client that holds the token; other clients learn only that it
/// is not active for them (least privilege: one app cannot probe another's tokens).
pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let result = async {
        let params = parse_params(&body).map_err(|m| OAuthError::new("invalid_request", m))?;
        let app = authenticate_client(&state, &headers, &params).await?;
        if app.is_public() {
            return Err(OAuthError::new(
                "invalid_client",
                "public clients cannot introspect",
            ));
        }
        let token = params
            .get("token")
            .ok_or_else(|| OAuthError::new("invalid_request", "token is required"))?;
        let Some(t) = state
            .store
            .active_token(&hash_secret(token))
            .await
            .map_err(OAuthError::server)?
        else {
            return Ok(json!({"active": false}));
        };
        if t.app_id != app.id {
            return Ok(json!({"active": false}));
        }
        Ok(json!({
            "active": true,
            "scope": t.scope,
            "client_id": app.client_id.0,
            "sub": t.user_id.to_string(),
            "exp": t.expires_at.timestamp(),
            "iat": t.created_at.timestamp(),
            "iss": state.public_url.as_str(),
            "aud": app.client_id.0,
            "token_type": if t.kind == TokenKind::Access { "Bearer" } else { "refresh_token" },
        }))
    }
    .await;
    match result {
        Ok(v) => no_store(Json(v).into_response()),
        Err(e) => e.into_response(),
    }
}

/// Revocation: always 200 for a token that is unknown or someone else's (RFC 7009 §2.2), so
/// the answer reveals nothing.
pub async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: String) -> Response {
    let result = async {
        let params = parse_params(&body).map_err(|m| OAuthError::new("invalid_request", m))?;
        let app = authenticate_client(&state, &headers, &params).await?;
        let token = params
            .get("token")
            .ok_or_else(|| OAuthError::new("invalid_request", "token is required"))?;
        state
            .store
            .revoke_token(&hash_secret(token), app.id)
            .await
            .map_err(OAuthError::server)?;
        Ok::<_, OAuthError>(())
    }
    .await;
    match result {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => e.into_response(),
    }
}
