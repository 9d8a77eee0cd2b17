//! `/api/v1/catalog` and `/api/v1/installed-apps`: the apps Stackspin installs on its cluster.
//! Requests are recorded in the database and the operator is woken; the state it reads back
//! from Flux shows in the answers.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};
use stackspin_catalog::requests::RequestError;

use super::{Admin, ApiError};
use crate::AppState;
use crate::platform::{self, PlatformError, entry_json, installed_json};

impl From<PlatformError> for ApiError {
    fn from(e: PlatformError) -> ApiError {
        match e {
            PlatformError::Refused(RequestError::UnknownApp(_)) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            PlatformError::Refused(r) => {
                ApiError::invalid(vec![("subdomain", r.to_string())]).with_message(r.to_string())
            }
            PlatformError::Storage(s) => s.into(),
        }
    }
}

/// Whether a cluster is connected, and what to do when none is.
fn cluster_json(state: &AppState) -> Value {
    match &state.platform.cluster {
        Some(c) => json!({ "connected": true, "domain": c.domain }),
        None => json!({
            "connected": false,
            "how_to_connect": platform::HOW_TO_CONNECT,
        }),
    }
}

pub async fn catalog(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Value>, ApiError> {
    let rows = state.store.installed_apps().await?;
    let p = &state.platform;
    let apps: Vec<Value> = p
        .catalog
        .installable()
        .map(|e| entry_json(p, e, rows.iter().find(|r| r.name == e.name)))
        .collect();
    Ok(Json(
        json!({ "apps": apps, "cluster": cluster_json(&state) }),
    ))
}

pub async fn list(State(state): State<AppState>, _admin: Admin) -> Result<Json<Value>, ApiError> {
    let rows = state.store.installed_apps().await?;
    let apps: Vec<Value> = rows
        .iter()
        .map(|r| installed_json(&state.platform, r))
        .collect();
    Ok(Json(
        json!({ "apps": apps, "cluster": cluster_json(&state) }),
    ))
}

async fn row(state: &AppState, name: &str) -> Result<stackspin_storage::InstalledApp, ApiError> {
    state.store.installed_app(name).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{name} is not installed"),
        )
    })
}

pub async fn show(
    State(state): State<AppState>,
    _admin: Admin,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(installed_json(
        &state.platform,
        &row(&state, &name).await?,
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallInput {
    /// `None`: the catalog's; `""`: the bare domain where allowed.
    #[serde(default)]
    subdomain: Option<String>,
    #[serde(default = "yes")]
    auto_update: bool,
}

fn yes() -> bool {
    true
}

/// Installs an app (or, for one already asked for, changes its subdomain).
pub async fn install(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    super::extract::ApiJson(input): super::extract::ApiJson<InstallInput>,
) -> Result<Response, ApiError> {
    let existed = state
        .store
        .installed_app(&name)
        .await?
        .is_some_and(|r| r.wanted);
    let row =
        platform::install(&state, &name, input.subdomain.as_deref(), input.auto_update).await?;
    let mut e = admin.event("app.install");
    e.app = Some(name);
    state.audit(e).await;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(installed_json(&state.platform, &row))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UninstallQuery {
    #[serde(default)]
    purge: bool,
}

/// Uninstalls an app; its volumes are kept unless `?purge=true`.
pub async fn uninstall(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    Query(q): Query<UninstallQuery>,
) -> Result<Response, ApiError> {
    let row = state.store.request_uninstall(&name, q.purge).await?;
    state.platform.wake();
    let mut e = admin.event(if q.purge {
        "app.purge"
    } else {
        "app.uninstall"
    });
    e.app = Some(name);
    state.audit(e).await;
    Ok((
        StatusCode::ACCEPTED,
        Json(installed_json(&state.platform, &row)),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatesInput {
    auto_update: bool,
}

/// Turns automatic updates on or off (off pins the app to its version).
pub async fn set_updates(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    super::extract::ApiJson(input): super::extract::ApiJson<UpdatesInput>,
) -> Result<Json<Value>, ApiError> {
    let row = state
        .store
        .set_app_updates(&name, Some(input.auto_update), false)
        .await?;
    state.platform.wake();
    let mut e = admin.event(if input.auto_update {
        "app.auto_update_on"
    } else {
        "app.pinned"
    });
    e.app = Some(name);
    state.audit(e).await;
    Ok(Json(installed_json(&state.platform, &row)))
}

/// Takes the pending update now instead of in the maintenance window.
pub async fn update_now(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let row = state.store.set_app_updates(&name, None, true).await?;
    state.platform.wake();
    let mut e = admin.event("app.update");
    e.app = Some(name);
    state.audit(e).await;
    Ok((
        StatusCode::ACCEPTED,
        Json(installed_json(&state.platform, &row)),
    )
        .into_response())
}
