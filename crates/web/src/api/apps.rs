//! `/api/v1/apps`: registered apps, and registering external ones.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use stackspin_domain::{
    App, ClientId, RedirectUri,
    app::AppInput,
    secret::{hash_secret, new_client_id, new_client_secret},
};

use super::{Admin, ApiError};
use crate::AppState;

fn app_json(a: &App) -> Value {
    json!({
        "name": a.name.as_str(),
        "display_name": a.display_name,
        "url": a.url,
        "client_id": a.client_id.0,
        "public": a.is_public(),
        "redirect_uris": a.redirect_uris.iter().map(RedirectUri::as_str).collect::<Vec<_>>(),
        "post_logout_redirect_uris": a.post_logout_redirect_uris.iter().map(RedirectUri::as_str).collect::<Vec<_>>(),
        "backchannel_logout_uri": a.backchannel_logout_uri,
        "icon_url": a.icon_url,
        "default_role": a.default_role,
        "id_token_alg": a.id_token_alg,
        "created_at": a.created_at.to_rfc3339(),
    })
}

pub async fn list(State(state): State<AppState>, _admin: Admin) -> Result<Json<Value>, ApiError> {
    let apps = state.store.list_apps().await?;
    Ok(Json(
        json!({ "apps": apps.iter().map(app_json).collect::<Vec<_>>() }),
    ))
}

/// Registers an app; the answer carries the client secret, shown this once.
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    super::extract::ApiJson(input): super::extract::ApiJson<AppInput>,
) -> Result<Response, ApiError> {
    let new = input.validate().map_err(ApiError::invalid)?;
    let secret = (!new.public).then(new_client_secret);
    let app = state
        .store
        .create_app(
            &new,
            ClientId(new_client_id()),
            secret.as_deref().map(hash_secret),
        )
        .await?;
    let mut e = admin.event("client.registered");
    e.app = Some(app.name.to_string());
    state.audit(e).await;
    let mut body = app_json(&app);
    body["client_secret"] = json!(secret);
    body["issuer"] = json!(state.public_url.as_str());
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn load(state: &AppState, name: &str) -> Result<App, ApiError> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no app named {name}"),
        )
    };
    let name = stackspin_domain::AppName::parse(name).map_err(|_| not_found())?;
    state.store.app_by_name(&name).await?.ok_or_else(not_found)
}

/// Replaces an app's settings. The name and client type stay; a new default role applies to
/// new users only.
pub async fn update(
    State(state): State<AppState>,
    admin: Admin,
    super::extract::ApiPath(name): super::extract::ApiPath<String>,
    super::extract::ApiJson(mut input): super::extract::ApiJson<AppInput>,
) -> Result<Json<Value>, ApiError> {
    let app = load(&state, &name).await?;
    input.name = app.name.to_string();
    input.public = app.is_public();
    let new = input.validate().map_err(ApiError::invalid)?;
    let updated = state.store.update_app(&app.name, &new).await?;
    let mut e = admin.event("client.updated");
    e.app = Some(app.name.to_string());
    state.audit(e).await;
    Ok(Json(app_json(&updated)))
}

pub async fn remove(
    State(state): State<AppState>,
    admin: Admin,
    super::extract::ApiPath(name): super::extract::ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let app = load(&state, &name).await?;
    state.store.remove_app(&app.name).await?;
    let mut e = admin.event("client.removed");
    e.app = Some(app.name.to_string());
    state.audit(e).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A new client secret, returned this once; the old one stops working at once.
pub async fn rotate_secret(
    State(state): State<AppState>,
    admin: Admin,
    super::extract::ApiPath(name): super::extract::ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let app = load(&state, &name).await?;
    if app.is_public() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "public_client",
            "a public client has no secret",
        ));
    }
    let secret = new_client_secret();
    state
        .store
        .set_client_secret(&app.name, &hash_secret(&secret))
        .await?;
    let mut e = admin.event("client.secret_rotated");
    e.app = Some(app.name.to_string());
    state.audit(e).await;
    Ok(Json(
        json!({ "client_id": app.client_id.0, "client_secret": secret }),
    ))
}

pub async fn show(
    State(state): State<AppState>,
    _admin: Admin,
    super::extract::ApiPath(name): super::extract::ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(app_json(&load(&state, &name).await?)))
}

#[derive(serde::Deserialize)]
pub struct DefaultRoleBody {
    role: String,
}

/// The role new users get in an app. Existing users keep the role they have now.
pub async fn set_default_role(
    State(state): State<AppState>,
    admin: Admin,
    super::extract::ApiPath(name): super::extract::ApiPath<String>,
    super::extract::ApiJson(b): super::extract::ApiJson<DefaultRoleBody>,
) -> Result<Json<Value>, ApiError> {
    let app = load(&state, &name).await?;
    let role: stackspin_domain::Role =
        b.role
            .parse()
            .map_err(|e: stackspin_domain::role::RoleError| {
                ApiError::invalid(vec![("role", e.to_string())])
            })?;
    state.store.set_default_role(&app.name, role).await?;
    let mut e = admin.event("app.default_role");
    e.app = Some(app.name.to_string());
    e.detail = json!({ "previous": app.default_role, "role": role });
    state.audit(e).await;
    Ok(Json(
        json!({ "app": app.name.as_str(), "default_role": role }),
    ))
}
