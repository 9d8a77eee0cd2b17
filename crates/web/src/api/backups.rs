//! `/api/v1/backups` and `/api/v1/restores`: backups made by Velero and per-app restores.
//! Requests are recorded in the database and the operator is woken; it makes the backups,
//! drives the restore step by step, and records what happened, which the answers show.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};
use stackspin_storage::{BackupReason, RestoreRefusal};

use super::{Admin, ApiError};
use crate::AppState;

impl From<RestoreRefusal> for ApiError {
    fn from(r: RestoreRefusal) -> ApiError {
        let msg = r.to_string();
        match r {
            RestoreRefusal::NotInstalled(_) | RestoreRefusal::NoSuchBackup(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", msg)
            }
            RestoreRefusal::Busy { .. } => ApiError::new(StatusCode::CONFLICT, "busy", msg),
            RestoreRefusal::NotInBackup { .. } => {
                ApiError::invalid(vec![("from", msg.clone())]).with_message(msg)
            }
            RestoreRefusal::ControlPlane => {
                ApiError::invalid(vec![("app", msg.clone())]).with_message(msg)
            }
        }
    }
}

/// Whether backups can be made at all, and what to do when not.
pub fn store_json(state: &AppState) -> Value {
    match &state.platform.cluster {
        Some(c) if c.backups.is_some() => json!({ "configured": true }),
        Some(_) => json!({
            "configured": false,
            "how_to_configure": "set the backup_s3_* settings in cluster.toml and run `stackspin install` again",
        }),
        None => json!({
            "configured": false,
            "how_to_configure": crate::platform::HOW_TO_CONNECT,
        }),
    }
}

pub async fn list(State(state): State<AppState>, _admin: Admin) -> Result<Json<Value>, ApiError> {
    let backups = state.store.backups().await?;
    Ok(Json(
        json!({ "backups": backups, "store": store_json(&state) }),
    ))
}

pub async fn show(
    State(state): State<AppState>,
    _admin: Admin,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let b = state.store.backup(&name).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no backup named {name}"),
        )
    })?;
    Ok(Json(json!(b)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupInput {
    /// Only this app; none: the whole platform.
    #[serde(default)]
    app: Option<String>,
}

/// Backs up now.
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    super::extract::ApiJson(input): super::extract::ApiJson<BackupInput>,
) -> Result<Response, ApiError> {
    let b = state
        .store
        .back_up_now(
            input.app.as_deref(),
            BackupReason::Manual,
            Some(&admin.actor()),
        )
        .await?;
    state.platform.wake();
    let mut e = admin.event("backup.create");
    e.app = Some(input.app.unwrap_or_else(|| "platform".into()));
    e.detail = json!({ "backup": b.name });
    state.audit(e).await;
    Ok((StatusCode::ACCEPTED, Json(json!(b))).into_response())
}

pub async fn restores(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Value>, ApiError> {
    let restores = state.store.restores().await?;
    Ok(Json(json!({ "restores": restores })))
}

pub async fn restore(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let found = match id.parse::<i64>() {
        Ok(n) => state.store.restore(n).await?,
        Err(_) => None,
    };
    let r = found.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no restore {id}"),
        )
    })?;
    Ok(Json(json!(r)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreInput {
    app: String,
    from: String,
}

/// Starts a restore of one app from a backup.
pub async fn start_restore(
    State(state): State<AppState>,
    admin: Admin,
    super::extract::ApiJson(input): super::extract::ApiJson<RestoreInput>,
) -> Result<Response, ApiError> {
    let r = state
        .store
        .request_restore(&input.app, &input.from, Some(&admin.actor()))
        .await??;
    state.platform.wake();
    let mut e = admin.event("restore.start");
    e.app = Some(input.app);
    e.detail = json!({ "from": input.from, "restore": r.id });
    state.audit(e).await;
    Ok((StatusCode::ACCEPTED, Json(json!(r))).into_response())
}
