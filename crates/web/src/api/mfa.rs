//! `/api/v1/me/mfa`: the caller's two-step verification, as the account pages manage it.

use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use stackspin_identity::totp;
use stackspin_storage::AuditEvent;

use super::{ApiError, Caller};
use crate::{AppState, mfa};

fn event(caller: &Caller, kind: &str) -> AuditEvent {
    let mut e = AuditEvent::new(kind);
    e.user_id = Some(caller.user.id.0);
    e.user_email = Some(caller.user.email.to_string());
    e
}

/// Whether it is on, whether the organisation requires it, and recovery codes left.
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let enrolled = state.store.totp_secret(caller.user.id).await?.is_some();
    let left = state.store.unused_recovery_codes(caller.user.id).await?;
    let required = mfa::required_for(&state, &caller.user).await?;
    Ok(Json(
        json!({ "enrolled": enrolled, "required": required, "recovery_codes_left": left }),
    ))
}

/// A fresh secret to put into an authenticator app. Nothing is stored until a code made
/// with it is sent back to `PUT /me/mfa`.
pub async fn new_secret(
    State(_state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let secret = totp::new_secret();
    let uri = totp::provisioning_uri("Stackspin", caller.user.email.as_str(), &secret);
    Ok(Json(json!({ "secret": secret, "otpauth_uri": uri })))
}

#[derive(Deserialize)]
pub struct EnrolBody {
    secret: String,
    code: String,
}

/// Turns two-step verification on with `secret`, proven by a current code; answers with the
/// ten recovery codes, shown this once.
pub async fn enrol(
    State(state): State<AppState>,
    caller: Caller,
    super::extract::ApiJson(b): super::extract::ApiJson<EnrolBody>,
) -> Result<Json<Value>, ApiError> {
    if state.store.totp_secret(caller.user.id).await?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_enrolled",
            "two-step verification is already on: turn it off first",
        ));
    }
    let codes = mfa::turn_on(&state, &caller.user, &b.secret, &b.code)
        .await?
        .ok_or_else(|| {
            ApiError::invalid(vec![(
                "code",
                "not a current code for this secret: check the time on the device".into(),
            )])
        })?;
    Ok(Json(json!({ "recovery_codes": codes })))
}

#[derive(Deserialize)]
pub struct CodeBody {
    code: String,
}

async fn proven(state: &AppState, caller: &Caller, code: &str) -> Result<(), ApiError> {
    if state.store.totp_secret(caller.user.id).await?.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_enrolled",
            "two-step verification is off",
        ));
    }
    if !mfa::check_code(state, &caller.user, code).await? {
        return Err(ApiError::invalid(vec![(
            "code",
            "not valid (codes can be used once)".into(),
        )]));
    }
    Ok(())
}

/// Turns two-step verification off, with a current code or a recovery code; refused when the
/// organisation requires it.
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    super::extract::ApiJson(b): super::extract::ApiJson<CodeBody>,
) -> Result<StatusCode, ApiError> {
    if mfa::required_for(&state, &caller.user).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "required",
            "your organisation requires two-step verification",
        ));
    }
    proven(&state, &caller, &b.code).await?;
    state.store.set_totp(caller.user.id, None, &[]).await?;
    state.audit(event(&caller, "mfa.removed")).await;
    Ok(StatusCode::NO_CONTENT)
}

/// New recovery codes (the old ones stop working), proven by a current code.
pub async fn new_recovery_codes(
    State(state): State<AppState>,
    caller: Caller,
    super::extract::ApiJson(b): super::extract::ApiJson<CodeBody>,
) -> Result<Json<Value>, ApiError> {
    proven(&state, &caller, &b.code).await?;
    let (codes, hashes) = mfa::new_recovery_codes();
    state
        .store
        .replace_recovery_codes(caller.user.id, &hashes)
        .await?;
    state
        .audit(event(&caller, "mfa.recovery_codes_replaced"))
        .await;
    Ok(Json(json!({ "recovery_codes": codes })))
}
