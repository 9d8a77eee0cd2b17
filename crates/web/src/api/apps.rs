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
    Json(input): Json<AppInput>,
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
