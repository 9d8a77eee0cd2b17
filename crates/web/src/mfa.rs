//! Two-step verification: TOTP (RFC 6238) with single-use recovery codes.
//!
//! After a correct password, an account with TOTP gets no session yet, only a five-minute
//! "password checked" cookie signed with the provider's key; the session (with `amr` =
//! pwd, otp, mfa) starts when a code is accepted. Each TOTP step is accepted once. A platform
//! setting (`mfa_required`: none, admins, everyone) makes enrolment compulsory: such people
//! are sent to enrol before any app gets a code for them.

use axum::{
    Form,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use stackspin_domain::{SigningAlg, User, secret::hash_secret};
use stackspin_identity::{jwt, keys::VerifyingKey, totp};
use stackspin_storage::{AuditEvent, NewSession, StorageError};

use crate::{AppState, pages, session};

pub const SETTING: &str = "mfa_required";
const PENDING_COOKIE: &str = "stackspin_mfa_pending";
const PENDING_TYP: &str = "stackspin-mfa-pending";

/// Whether the platform's policy requires a second factor for this person.
pub async fn required_for(state: &AppState, user: &User) -> Result<bool, StorageError> {
    Ok(match state.store.setting(SETTING).await?.as_deref() {
        Some("everyone") => true,
        Some("admins") => user.is_admin,
        _ => false,
    })
}

/// The cookie that says "this browser gave the right password for `user`".
pub fn pending_cookie(state: &AppState, user: &User, return_to: &str) -> Option<Cookie<'static>> {
    let key = state.keys.signer(SigningAlg::Es256)?;
    let claims = json!({
        "iss": state.public_url.as_str(),
        "sub": user.id.to_string(),
        "exp": Utc::now().timestamp() + 300,
        "ret": return_to,
    });
    let token = jwt::sign(&key, Some(PENDING_TYP), &claims).ok()?;
    Some(
        Cookie::build((PENDING_COOKIE, token))
            .path("/login")
            .http_only(true)
            .secure(state.public_url.is_https())
            .same_site(SameSite::Lax)
            .build(),
    )
}

/// The user and return address from a valid pending cookie.
async fn pending(
    state: &AppState,
    jar: &CookieJar,
) -> Result<Option<(User, String)>, StorageError> {
    let Some(c) = jar.get(PENDING_COOKIE) else {
        return Ok(None);
    };
    let jwks = state.keys.jwks();
    let keys: Vec<VerifyingKey> = jwks["keys"]
        .as_array()
        .map(|ks| ks.iter().filter_map(VerifyingKey::from_jwk).collect())
        .unwrap_or_default();
    let Ok(v) = jwt::verify(c.value(), &keys) else {
        return Ok(None);
    };
    let ok = v.header["typ"] == PENDING_TYP
        && v.claims["iss"] == state.public_url.as_str()
        && v.claims["exp"]
            .as_i64()
            .is_some_and(|e| e > Utc::now().timestamp());
    let Some(id) = v.claims["sub"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .filter(|_| ok)
    else {
        return Ok(None);
    };
    let ret = v.claims["ret"].as_str().unwrap_or("/").to_owned();
    Ok(state
        .store
        .user_by_id(stackspin_domain::UserId(id))
        .await?
        .map(|u| (u, ret)))
}

fn expired() -> Response {
    Redirect::to("/login").into_response()
}

pub async fn login_form(State(state): State<AppState>, jar: CookieJar) -> Response {
    match pending(&state, &jar).await {
        Ok(Some(_)) => {
            let (jar, csrf) = session::csrf_token(&state, jar);
            (jar, pages::mfa_login(&csrf, None, StatusCode::OK)).into_response()
        }
        Ok(None) => expired(),
        Err(e) => pages::internal_error(&e),
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    code: String,
    #[serde(default)]
    csrf: String,
}

/// Accepts a TOTP code (once per time step) or an unused recovery code.
pub(crate) async fn check_code(
    state: &AppState,
    user: &User,
    code: &str,
) -> Result<bool, StorageError> {
    let Some(secret) = state.store.totp_secret(user.id).await? else {
        return Ok(false);
    };
    let compact: String = code.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    if compact.len() == 6 && compact.chars().all(|c| c.is_ascii_digit()) {
        return match totp::verify(&secret, &compact, Utc::now().timestamp()) {
            Some(step) => state.store.accept_totp_step(user.id, step).await,
            None => Ok(false),
        };
    }
    state
        .store
        .use_recovery_code(user.id, &hash_secret(&compact.to_ascii_uppercase()))
        .await
}

pub async fn login_submit(
    State(state): State<AppState>,
    crate::client::ClientIp(client): crate::client::ClientIp,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &f.csrf) {
        return pages::form_expired();
    }
    let (user, return_to) = match pending(&state, &jar).await {
        Ok(Some(p)) => p,
        Ok(None) => return expired(),
        Err(e) => return pages::internal_error(&e),
    };
    let ip = client.to_string();
    let limits = crate::throttle::signed_in_check("mfa", &user.id.to_string(), client);
    let (jar, csrf) = session::csrf_token(&state, jar);
    let allowed = match crate::throttle::attempt(&state.store, &limits).await {
        Ok(a) => a,
        Err(e) => return pages::internal_error(&e),
    };
    if !allowed {
        return (
            jar,
            pages::mfa_login(
                &csrf,
                Some(crate::texts::t("msg.mfa.too_many_attempts_wait_a")),
                StatusCode::TOO_MANY_REQUESTS,
            ),
        )
            .into_response();
    }
    let accepted = match check_code(&state, &user, &f.code).await {
        Ok(a) => a,
        Err(e) => return pages::internal_error(&e),
    };
    let mut event = AuditEvent::new(if accepted {
        "mfa.success"
    } else {
        "mfa.failure"
    });
    event.user_id = Some(user.id.0);
    event.user_email = Some(user.email.to_string());
    event.ip = Some(ip.clone());
    state.audit(event).await;
    if !accepted {
        return (
            jar,
            pages::mfa_login(
                &csrf,
                Some(crate::texts::t("msg.mfa.that_code_is_not_valid")),
                StatusCode::UNAUTHORIZED,
            ),
        )
            .into_response();
    }
    if let Err(e) = crate::throttle::succeeded(&state.store, &limits).await {
        tracing::warn!(error = %e, "cannot clear code counters");
    }
    let amr = vec!["pwd".to_owned(), "otp".to_owned(), "mfa".to_owned()];
    match start_session(&state, &user, amr, &headers, &ip).await {
        Ok(cookie) => {
            let jar = session::rotate_csrf(&state, jar)
                .add(cookie)
                .remove(Cookie::build(PENDING_COOKIE).path("/login"));
            (jar, Redirect::to(&return_to)).into_response()
        }
        Err(e) => pages::internal_error(&e),
    }
}

/// Creates a session and returns its cookie.
pub async fn start_session(
    state: &AppState,
    user: &User,
    amr: Vec<String>,
    headers: &HeaderMap,
    ip: &str,
) -> Result<Cookie<'static>, StorageError> {
    let (token, token_hash) = session::new_session_token();
    let now = Utc::now();
    state
        .store
        .create_session(&NewSession {
            token_hash,
            sid: stackspin_domain::secret::random_token(16),
            user_id: user.id,
            auth_time: now,
            amr,
            expires_at: now + state.options.session_lifetime,
            ip: Some(ip.to_owned()),
            user_agent: headers
                .get(axum::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(300).collect()),
        })
        .await?;
    let mut e = AuditEvent::new("login.success");
    e.user_id = Some(user.id.0);
    e.user_email = Some(user.email.to_string());
    e.ip = Some(ip.to_owned());
    state.audit(e).await;
    Ok(session::session_cookie(state, token))
}

#[derive(Deserialize)]
pub struct SetupQuery {
    return_to: Option<String>,
}

pub async fn setup_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<SetupQuery>,
) -> Response {
    let (_, user) = match session::require(&state, &jar, "/account/mfa").await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let (jar, csrf) = session::csrf_token(&state, jar);
    let return_to = match crate::login::return_target(q.return_to.as_deref().unwrap_or("/")) {
        Some(r) => r,
        None => return pages::malformed_return_to(),
    };
    let enrolled = match state.store.totp_secret(user.id).await {
        Ok(s) => s.is_some(),
        Err(e) => return pages::internal_error(&e),
    };
    let required = required_for(&state, &user).await.unwrap_or(true);
    if enrolled {
        let left = state
            .store
            .unused_recovery_codes(user.id)
            .await
            .unwrap_or(0);
        return (jar, pages::mfa_status(&csrf, left, required, None)).into_response();
    }
    let secret = totp::new_secret();
    let uri = totp::provisioning_uri("Stackspin", user.email.as_str(), &secret);
    (
        jar,
        pages::mfa_setup(
            &csrf,
            &secret,
            &uri,
            &return_to,
            required,
            None,
            StatusCode::OK,
        ),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct EnrolForm {
    secret: String,
    code: String,
    #[serde(default)]
    return_to: String,
    #[serde(default)]
    csrf: String,
}

pub async fn enrol(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<EnrolForm>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &f.csrf) {
        return pages::form_expired();
    }
    let (session, user) = match session::require(&state, &jar, "/account/mfa").await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let return_to = match crate::login::return_target(&f.return_to) {
        Some(r) => r,
        None => return pages::malformed_return_to(),
    };
    let (jar, csrf) = session::csrf_token(&state, jar);
    let codes = match turn_on(&state, &user, &f.secret, &f.code).await {
        Ok(Some(codes)) => codes,
        Ok(None) => {
            let uri = totp::provisioning_uri("Stackspin", user.email.as_str(), &f.secret);
            let required = required_for(&state, &user).await.unwrap_or(true);
            return (
                jar,
                pages::mfa_setup(
                    &csrf,
                    &f.secret,
                    &uri,
                    &return_to,
                    required,
                    Some(crate::texts::t("msg.mfa.that_code_is_not_valid_2")),
                    StatusCode::UNPROCESSABLE_ENTITY,
                ),
            )
                .into_response();
        }
        Err(e) => return pages::internal_error(&e),
    };
    // This session has now proven both factors.
    if let Err(e) = state
        .store
        .update_session_amr(&session.sid, &["pwd".into(), "otp".into(), "mfa".into()])
        .await
    {
        return pages::internal_error(&e);
    }
    (jar, pages::recovery_codes(&codes, &return_to)).into_response()
}

/// Turns TOTP on with `secret` if `code` is current for it (for the account page and the
/// API): stores it with ten new recovery codes, which are returned to be shown once. `None`
/// when the code does not match.
pub(crate) async fn turn_on(
    state: &AppState,
    user: &User,
    secret: &str,
    code: &str,
) -> Result<Option<Vec<String>>, StorageError> {
    let Some(step) = totp::verify(secret, code, Utc::now().timestamp()) else {
        return Ok(None);
    };
    let (codes, hashes) = new_recovery_codes();
    state.store.set_totp(user.id, Some(secret), &hashes).await?;
    state.store.accept_totp_step(user.id, step).await?;
    let mut e = AuditEvent::new("mfa.enrolled");
    e.user_id = Some(user.id.0);
    e.user_email = Some(user.email.to_string());
    state.audit(e).await;
    Ok(Some(codes))
}

/// Ten fresh recovery codes, and the hashes we keep of them.
pub(crate) fn new_recovery_codes() -> (Vec<String>, Vec<String>) {
    let codes: Vec<String> = (0..10).map(|_| recovery_code()).collect();
    let hashes = codes
        .iter()
        .map(|c| hash_secret(&c.replace('-', "")))
        .collect();
    (codes, hashes)
}

/// New recovery codes for someone who used or lost theirs; a current code proves it is them.
pub async fn regenerate_codes(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &f.csrf) {
        return pages::form_expired();
    }
    let (_, user) = match session::require(&state, &jar, "/account/mfa").await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let (jar, csrf) = session::csrf_token(&state, jar);
    match check_code(&state, &user, &f.code).await {
        Ok(true) => {}
        Ok(false) => {
            let left = state
                .store
                .unused_recovery_codes(user.id)
                .await
                .unwrap_or(0);
            let required = required_for(&state, &user).await.unwrap_or(true);
            return (
                jar,
                pages::mfa_status(
                    &csrf,
                    left,
                    required,
                    Some(crate::texts::t("msg.mfa.that_code_is_not_valid_3")),
                ),
            )
                .into_response();
        }
        Err(e) => return pages::internal_error(&e),
    }
    let (codes, hashes) = new_recovery_codes();
    if let Err(e) = state.store.replace_recovery_codes(user.id, &hashes).await {
        return pages::internal_error(&e);
    }
    let mut e = AuditEvent::new("mfa.recovery_codes_replaced");
    e.user_id = Some(user.id.0);
    e.user_email = Some(user.email.to_string());
    state.audit(e).await;
    (jar, pages::recovery_codes(&codes, "/account")).into_response()
}

/// 80 random bits as four groups of four base32 characters.
fn recovery_code() -> String {
    let raw = totp::new_secret();
    let chars: Vec<char> = raw.chars().take(16).collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

pub async fn remove(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &f.csrf) {
        return pages::form_expired();
    }
    let (_, user) = match session::require(&state, &jar, "/account/mfa").await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let (jar, csrf) = session::csrf_token(&state, jar);
    let left = state
        .store
        .unused_recovery_codes(user.id)
        .await
        .unwrap_or(0);
    if required_for(&state, &user).await.unwrap_or(true) {
        return (
            jar,
            pages::mfa_status(
                &csrf,
                left,
                true,
                Some(crate::texts::t(
                    "msg.mfa.your_organisation_requires_two_step",
                )),
            ),
        )
            .into_response();
    }
    match check_code(&state, &user, &f.code).await {
        Ok(true) => {}
        Ok(false) => {
            return (
                jar,
                pages::mfa_status(
                    &csrf,
                    left,
                    false,
                    Some(crate::texts::t("msg.mfa.that_code_is_not_valid_3")),
                ),
            )
                .into_response();
        }
        Err(e) => return pages::internal_error(&e),
    }
    if let Err(e) = state.store.set_totp(user.id, None, &[]).await {
        return pages::internal_error(&e);
    }
    let mut e = AuditEvent::new("mfa.removed");
    e.user_id = Some(user.id.0);
    e.user_email = Some(user.email.to_string());
    state.audit(e).await;
    (jar, Redirect::to("/account/mfa")).into_response()
}
