//! `/api/v1/me` and `/api/v1/settings`: the caller's own account and sessions, and platform
//! settings.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Admin, ApiError, Caller};
use crate::AppState;

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
    Path(sid): Path<String>,
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
    Json(b): Json<SettingsBody>,
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
