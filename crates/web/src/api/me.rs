//! `/api/v1/me` and `/api/v1/settings`: the caller's own account and sessions, and platform
//! settings.

use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Admin, ApiError, Caller};
use crate::{AppState, PasswordChangeError};

/// The caller, their apps (role ≠ none) and their sessions.
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let u = &caller.user;
    let roles = state.store.roles_of(u.id).await?;
    let apps = state.store.list_apps().await?;
    let launch: Vec<Value> = apps
        .iter()
        .filter_map(|a| {
            let role = roles.iter().find(|(n, _)| *n == a.name)?.1;
            role.grants_access()
                .then(|| json!({ "name": a.name.as_str(), "display_name": a.display_name, "url": a.url, "role": role }))
        })
        .collect();
    let sessions: Vec<Value> = state
        .store
        .sessions_of_user(u.id)
        .await?
        .iter()
        .map(|s| json!({ "id": s.sid, "created_at": s.created_at.to_rfc3339(), "ip": s.ip, "user_agent": s.user_agent }))
        .collect();
    Ok(Json(json!({
        "id": u.id.to_string(),
        "email": u.email.as_str(),
        "name": u.name.as_str(),
        "is_admin": u.is_admin,
        "apps": launch,
        "sessions": sessions,
    })))
}

/// Ends one of the caller's own sessions (and the app sessions started from it).
pub async fn end_session(
    State(state): State<AppState>,
    caller: Caller,
    super::extract::ApiPath(sid): super::extract::ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let mine = state
        .store
        .sessions_of_user(caller.user.id)
        .await?
        .iter()
        .any(|s| s.sid == sid);
    if !mine {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such session",
        ));
    }
    state.end_session(&sid, &caller.user, "logout").await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn settings(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Value>, ApiError> {
    let policy = state
        .store
        .setting(crate::mfa::SETTING)
        .await?
        .unwrap_or_else(|| "none".into());
    Ok(Json(
        json!({ "mfa_required": policy, "outgoing_mail": state.mail_summary }),
    ))
}

#[derive(Deserialize)]
pub struct SettingsBody {
    mfa_required: String,
}

pub async fn update_settings(
    State(state): State<AppState>,
    admin: Admin,
    super::extract::ApiJson(b): super::extract::ApiJson<SettingsBody>,
) -> Result<Json<Value>, ApiError> {
    if !["none", "admins", "everyone"].contains(&b.mfa_required.as_str()) {
        return Err(ApiError::invalid(vec![(
            "mfa_required",
            "use none, admins or everyone".into(),
        )]));
    }
    state
        .store
        .set_setting(crate::mfa::SETTING, &b.mfa_required)
        .await?;
    let mut e = admin.event("settings.changed");
    e.detail = json!({ "mfa_required": b.mfa_required });
    state.audit(e).await;
    Ok(Json(
        json!({ "mfa_required": b.mfa_required, "outgoing_mail": state.mail_summary }),
    ))
}

#[derive(Deserialize)]
pub struct PasswordBody {
    current: String,
    new: String,
}

/// Changes the caller's password (the current one is required) and ends their other
/// sessions, as the account page does.
pub async fn change_password(
    State(state): State<AppState>,
    crate::client::ClientIp(client): crate::client::ClientIp,
    caller: Caller,
    super::extract::ApiJson(b): super::extract::ApiJson<PasswordBody>,
) -> Result<StatusCode, ApiError> {
    let changed = state
        .change_password(
            &caller.user,
            b.current,
            &b.new,
            client,
            caller.sid.as_deref(),
        )
        .await;
    match changed {
        Ok(()) => {}
        Err(PasswordChangeError::Throttled) => {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "too many attempts: wait a few minutes",
            ));
        }
        Err(PasswordChangeError::WrongCurrent) => {
            return Err(ApiError::invalid(vec![(
                "current",
                "the current password is not right".into(),
            )]));
        }
        Err(PasswordChangeError::Invalid(e)) => {
            return Err(ApiError::invalid(vec![(
                "new",
                crate::problems::password(&e),
            )]));
        }
        Err(PasswordChangeError::Busy) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the server is busy: try again in a moment",
            ));
        }
        Err(PasswordChangeError::Storage(e)) => return Err(e.into()),
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct EndSessionsQuery {
    #[serde(default)]
    keep_current: bool,
}

/// Ends the caller's sessions everywhere (and their app sessions), or all but the one this
/// call came with (`?keep_current=true`).
pub async fn end_sessions(
    State(state): State<AppState>,
    caller: Caller,
    super::extract::ApiQuery(q): super::extract::ApiQuery<EndSessionsQuery>,
) -> Result<Json<Value>, ApiError> {
    let keep = if q.keep_current {
        caller.sid.as_deref()
    } else {
        None
    };
    let ended = state.end_sessions(&caller.user, keep).await?;
    Ok(Json(json!({ "ended": ended })))
}

#[derive(Deserialize)]
pub struct TestMailBody {
    to: String,
}

/// Sends a test email through the configured outgoing mail server and reports what it said.
pub async fn send_test_mail(
    State(state): State<AppState>,
    admin: Admin,
    super::extract::ApiJson(b): super::extract::ApiJson<TestMailBody>,
) -> Result<Json<Value>, ApiError> {
    let to = stackspin_domain::Email::parse(&b.to)
        .map_err(|e| ApiError::invalid(vec![("to", e.to_string())]))?;
    let Some(mailer) = &state.mailer else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "mail_not_configured",
            "outgoing mail is not configured: set the outgoing_mail_* settings and restart",
        ));
    };
    let org = state.org_name().await;
    let (subject, body) = stackspin_domain::mail::test_message(org.as_deref());
    mailer
        .send(org.as_deref(), to.as_str(), &subject, &body)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "mail_refused",
                format!("the mail server did not accept the test email: {e}"),
            )
        })?;
    if let Err(e) = state
        .store
        .set_setting(
            crate::checklist::MAIL_TESTED,
            &chrono::Utc::now().to_rfc3339(),
        )
        .await
    {
        tracing::warn!(error = %e, "cannot record the successful test mail");
    }
    let mut e = admin.event("settings.test_mail");
    e.detail = json!({ "to": to.as_str() });
    state.audit(e).await;
    Ok(Json(json!({ "sent_to": to.as_str() })))
}
