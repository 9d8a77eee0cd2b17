//! The authorization endpoint (Core §3.1.2): authorization code flow only.
//!
//! Errors are answered in one of two ways. While we cannot trust the redirect URI (unknown
//! client, unregistered URI) the error is a page shown to the person and nothing is sent
//! anywhere. Once the URI is known to be registered, errors go back to the app with `state`
//! and `iss` (RFC 9207), as the app expects.

use std::collections::HashMap;

use axum::{
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::CookieJar;
use chrono::Utc;
use stackspin_domain::{
    App, Role,
    secret::{hash_secret, random_token},
};
use stackspin_identity::{jwt, keys::VerifyingKey, pkce, redirect::find_match};
use stackspin_storage::CodeRecord;

use super::parse_params;
use crate::{AppState, pages, session};

/// A validated request whose errors may now be sent to the app.
pub(crate) struct Validated {
    pub app: App,
    pub redirect_uri: String,
    pub state: Option<String>,
}

impl Validated {
    /// Sends the app an error response (Core §3.1.2.6).
    pub fn error(&self, issuer: &str, error: &str, description: &str) -> Response {
        let mut pairs = vec![("error", error), ("error_description", description)];
        if let Some(s) = &self.state {
            pairs.push(("state", s));
        }
        pairs.push(("iss", issuer));
        Redirect::to(&append_query(&self.redirect_uri, &pairs)).into_response()
    }
}

/// Adds parameters to a URI that may already have a query.
pub(crate) fn append_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let encoded: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{encoded}")
}

pub async fn get(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    handle(state, jar, headers, q.unwrap_or_default()).await
}

/// Core §3.1.2.1 allows the same request as a form POST.
pub async fn post(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    body: String,
) -> Response {
    handle(state, jar, headers, body).await
}

async fn handle(state: AppState, jar: CookieJar, headers: HeaderMap, raw: String) -> Response {
    match authorize(&state, &jar, &headers, &raw).await {
        Ok(r) => r,
        Err(e) => pages::internal_error(&e),
    }
}

async fn authorize(
    state: &AppState,
    jar: &CookieJar,
    _headers: &HeaderMap,
    raw: &str,
) -> Result<Response, stackspin_storage::StorageError> {
    let issuer = state.public_url.as_str();
    let params = match parse_params(raw) {
        Ok(p) => p,
        Err(msg) => {
            return Ok(pages::error(
                StatusCode::BAD_REQUEST,
                crate::texts::t("msg.authorize.invalid_sign_in_request"),
                &msg,
            ));
        }
    };
    let p = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());

    // 1. Who is asking, and may we answer at the URI they gave?
    let Some(client_id) = p("client_id") else {
        return Ok(pages::error(
            StatusCode::BAD_REQUEST,
            crate::texts::t("msg.authorize.invalid_sign_in_request"),
            crate::texts::t("msg.authorize.the_app_did_not_say"),
        ));
    };
    let Some(app) = state.store.app_by_client_id(client_id).await? else {
        return Ok(pages::error(
            StatusCode::BAD_REQUEST,
            crate::texts::t("msg.authorize.unknown_app"),
            crate::texts::t("msg.authorize.the_app_that_sent_you"),
        ));
    };
    let Some(requested_uri) = p("redirect_uri") else {
        return Ok(pages::error(
            StatusCode::BAD_REQUEST,
            crate::texts::t("msg.authorize.invalid_sign_in_request"),
            crate::texts::t("msg.authorize.the_app_did_not_say_2"),
        ));
    };
    if find_match(&app.redirect_uris, requested_uri).is_none() {
        return Ok(pages::error(
            StatusCode::BAD_REQUEST,
            crate::texts::t("msg.authorize.invalid_sign_in_request"),
            crate::texts::t("msg.authorize.the_app_asked_to_return"),
        ));
    }
    let v = Validated {
        redirect_uri: requested_uri.to_owned(),
        state: p("state").map(str::to_owned),
        app,
    };

    // 2. Is the request itself acceptable?
    if p("request").is_some() {
        return Ok(v.error(
            issuer,
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    if p("request_uri").is_some() {
        return Ok(v.error(
            issuer,
            "request_uri_not_supported",
            "request_uri is not supported",
        ));
    }
    match p("response_type") {
        Some("code") => {}
        None => return Ok(v.error(issuer, "invalid_request", "response_type is required")),
        Some(_) => {
            return Ok(v.error(
                issuer,
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
    }
    if !matches!(p("response_mode"), None | Some("query")) {
        return Ok(v.error(
            issuer,
            "invalid_request",
            "only response_mode=query is supported",
        ));
    }
    let scope = p("scope").unwrap_or_default();
    let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
    if !scopes.contains(&"openid") {
        return Ok(v.error(issuer, "invalid_scope", "scope must include openid"));
    }
    let challenge = p("code_challenge");
    match challenge {
        Some(c) => {
            if let Err(msg) = pkce::check_challenge(c, p("code_challenge_method")) {
                return Ok(v.error(issuer, "invalid_request", msg));
            }
        }
        None if v.app.is_public() => {
            return Ok(v.error(
                issuer,
                "invalid_request",
                "PKCE (code_challenge with S256) is required for public clients",
            ));
        }
        None => {}
    }
    let prompts: Vec<&str> = p("prompt")
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    let prompt_none = prompts.contains(&"none");
    if prompt_none && prompts.len() > 1 {
        return Ok(v.error(
            issuer,
            "invalid_request",
            "prompt=none cannot be combined with other values",
        ));
    }
    let max_age = match p("max_age").map(str::parse::<i64>) {
        None => None,
        Some(Ok(n)) if n >= 0 => Some(n),
        Some(_) => {
            return Ok(v.error(
                issuer,
                "invalid_request",
                "max_age must be a non-negative integer",
            ));
        }
    };
    let hint_sub = match p("id_token_hint") {
        None => None,
        Some(hint) => match hinted_subject(state, hint) {
            Some(sub) => Some(sub),
            None => {
                return Ok(v.error(
                    issuer,
                    "invalid_request",
                    "id_token_hint is not a token issued here",
                ));
            }
        },
    };

    // 3. Who is signed in, and is that good enough for this request?
    let current = session::current(state, jar).await?;
    let now = Utc::now();
    let satisfied = current.as_ref().is_some_and(|(s, u)| {
        !prompts.contains(&"login")
            && max_age.is_none_or(|m| (now - s.auth_time).num_seconds() <= m)
            && hint_sub.as_ref().is_none_or(|sub| *sub == u.id.to_string())
    });
    if !satisfied {
        if prompt_none {
            return Ok(v.error(issuer, "login_required", "the user must sign in"));
        }
        return Ok(Redirect::to(&login_url(&params)).into_response());
    }
    let Some((session, user)) = current else {
        return Ok(v.error(issuer, "login_required", "the user must sign in"));
    };

    // 3b. Does the organisation require a second factor this session has not shown?
    if crate::mfa::required_for(state, &user).await? && !session.amr.iter().any(|m| m == "mfa") {
        if prompt_none {
            return Ok(v.error(
                issuer,
                "interaction_required",
                "two-step verification is required",
            ));
        }
        let enrolled = state.store.totp_secret(user.id).await?.is_some();
        let return_to = login_return(&params);
        let target = if enrolled {
            // Sign in again, this time with the second factor.
            login_url_forced(&return_to)
        } else {
            format!(
                "/account/mfa?return_to={}",
                url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>()
            )
        };
        return Ok(Redirect::to(&target).into_response());
    }

    // 4. May this person use this app at all?
    let role = state.store.role_of(user.id, v.app.id).await?;
    if role == Role::None {
        let mut event = stackspin_storage::AuditEvent::new("login.denied");
        event.user_id = Some(user.id.0);
        event.user_email = Some(user.email.to_string());
        event.app = Some(v.app.name.to_string());
        state.audit(event).await;
        let back = v.error(
            issuer,
            "access_denied",
            "the user has no access to this app",
        );
        if prompt_none {
            return Ok(back);
        }
        let location = back
            .headers()
            .get(axum::http::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        return Ok(pages::no_access(&v.app.display_name, &location));
    }

    // 5. Issue the code, bound to this client, redirect URI, PKCE challenge and session.
    let code = random_token(32);
    let record = CodeRecord {
        code_hash: hash_secret(&code),
        app_id: v.app.id.0,
        user_id: user.id.0,
        sid: session.sid.clone(),
        redirect_uri: v.redirect_uri.clone(),
        scope: scopes.join(" "),
        nonce: p("nonce").map(str::to_owned),
        code_challenge: challenge.map(str::to_owned),
        auth_time: session.auth_time,
        amr: session.amr.join(" "),
        created_at: now,
        expires_at: now + state.options.code_lifetime,
    };
    state.store.insert_code(&record).await?;
    let mut pairs = vec![("code", code.as_str())];
    if let Some(s) = &v.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", issuer));
    Ok(Redirect::to(&append_query(&v.redirect_uri, &pairs)).into_response())
}

/// The subject of an ID token we issued, checking our signature but not its expiry (a hint
/// is usually an old token).
pub(crate) fn hinted_subject(state: &AppState, token: &str) -> Option<String> {
    hinted_claims(state, token)?
        .get("sub")
        .and_then(|s| s.as_str())
        .map(str::to_owned)
}

pub(crate) fn hinted_claims(state: &AppState, token: &str) -> Option<serde_json::Value> {
    let jwks = state.keys.jwks();
    let keys: Vec<VerifyingKey> = jwks
        .get("keys")?
        .as_array()?
        .iter()
        .filter_map(VerifyingKey::from_jwk)
        .collect();
    let verified = jwt::verify(token, &keys).ok()?;
    (verified.claims.get("iss")?.as_str()? == state.public_url.as_str()).then_some(verified.claims)
}

/// The login page, returning to this same request afterwards. `prompt=login` is dropped from
/// the return address: signing in satisfies it, and keeping it would loop.
fn login_url(params: &HashMap<String, String>) -> String {
    let return_to = login_return(params);
    let mut login = vec![("return_to", return_to.as_str())];
    if let Some(hint) = params.get("login_hint") {
        login.push(("login_hint", hint));
    }
    append_query("/login", &login)
}

/// This authorization request as a local return address, without `prompt=login`.
fn login_return(params: &HashMap<String, String>) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, v)| !(k.as_str() == "prompt" && v.split(' ').any(|p| p == "login")))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pairs.sort();
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&pairs)
        .finish();
    format!("/authorize?{query}")
}

fn login_url_forced(return_to: &str) -> String {
    append_query("/login", &[("return_to", return_to)])
}
