//! The JSON API under `/api/v1`: everything the Dashboard does, for the CLI and other clients.
//!
//! Callers authenticate with their browser session or with an admin API token
//! (`Authorization: Bearer ssp_...`). Admin endpoints take an [`Admin`] argument, which only
//! the extractor that checked the caller's admin flag can make: a handler cannot forget the
//! check. Session-authenticated writes must carry `X-Requested-With: stackspin` and come from
//! our origin (a cross-site form can do neither); token calls carry no ambient credentials.

mod apps;
mod audit;
mod backups;
mod extract;
mod installs;
mod me;
mod mfa;
mod users;

use axum::{
    Json, Router,
    extract::FromRequestParts,
    http::{HeaderMap, Method, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::get,
};
use axum_extra::extract::cookie::CookieJar;
use serde_json::{Map, Value, json};
use stackspin_domain::{User, secret::hash_secret};
use stackspin_storage::StorageError;

use crate::{AppState, session};

/// API tokens start with this, so they are recognisable in a leak report and never mistaken
/// for OpenID Connect access tokens.
pub const TOKEN_PREFIX: &str = "ssp_";

/// Declares the API's routes once: the router, and the list of (method, path) that the
/// OpenAPI document is checked against.
macro_rules! api_routes {
    ($($path:literal => { $($method:ident $handler:path),+ $(,)? }),+ $(,)?) => {
        /// Every route under `/api/v1`, as (method, path).
        pub const ROUTES: &[(&str, &str)] = &[$($((stringify!($method), $path)),+),+];

        pub fn routes() -> Router<AppState> {
            Router::new()
                $(.route($path, axum::routing::MethodRouter::new()$(.$method($handler))+))+
                .route("/openapi.json", get(openapi))
        }
    };
}

api_routes! {
    "/users" => { get users::list, post users::create },
    "/users/{id}" => { get users::show, patch users::update, delete users::delete },
    "/users/{id}/roles/{app}" => { put users::set_role },
    "/users/{id}/link" => { post users::link },
    "/users/batch" => { post users::batch },
    "/access" => { get users::access },
    "/apps" => { get apps::list, post apps::create },
    "/apps/{name}" => { get apps::show, patch apps::update, delete apps::remove },
    "/apps/{name}/secret" => { post apps::rotate_secret },
    "/apps/{name}/default-role" => { put apps::set_default_role },
    "/audit" => { get audit::list },
    "/backups" => { get backups::list, post backups::create },
    "/backups/{name}" => { get backups::show },
    "/restores" => { get backups::restores, post backups::start_restore },
    "/restores/{id}" => { get backups::restore },
    "/catalog" => { get installs::catalog },
    "/installed-apps" => { get installs::list },
    "/installed-apps/{name}" => { get installs::show, put installs::install, delete installs::uninstall },
    "/installed-apps/{name}/auto-update" => { put installs::set_updates },
    "/installed-apps/{name}/update" => { post installs::update_now },
    "/me" => { get me::me },
    "/me/password" => { put me::change_password },
    "/me/mfa" => { get mfa::status, put mfa::enrol, delete mfa::remove },
    "/me/mfa/secret" => { post mfa::new_secret },
    "/me/mfa/recovery-codes" => { post mfa::new_recovery_codes },
    "/me/sessions" => { delete me::end_sessions },
    "/me/sessions/{id}" => { delete me::end_session },
    "/settings" => { get me::settings, put me::update_settings },
    "/settings/test-mail" => { post me::send_test_mail },
    "/status" => { get crate::status::api },
}

/// The OpenAPI 3.1 description of this API, written by hand and checked against [`ROUTES`]
/// by the test suite.
pub const OPENAPI: &str = include_str!("../../openapi.json");

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// An error as the API reports it: `{"error": code, "message": text, "fields": {...}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    fields: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            fields: Map::new(),
        }
    }

    /// Replaces the summary message (for a refusal whose one field says it all).
    pub fn with_message(mut self, message: String) -> ApiError {
        self.message = message;
        self
    }

    /// Invalid input, with a message per field (what a form shows next to each field).
    pub fn invalid(fields: Vec<(&str, String)>) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "some fields are not valid",
        );
        for (k, v) in fields {
            e.fields.insert(k.to_owned(), Value::String(v));
        }
        e
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> ApiError {
        let msg = e.to_string();
        match e {
            StorageError::UserNotFound(_)
            | StorageError::AppNotFound(_)
            | StorageError::NotInstalled(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", msg)
            }
            StorageError::DuplicateEmail(_) => {
                let mut e = ApiError::new(StatusCode::CONFLICT, "duplicate", msg.clone());
                e.fields.insert("email".into(), Value::String(msg));
                e
            }
            StorageError::DuplicateApp(_) => {
                let mut e = ApiError::new(StatusCode::CONFLICT, "duplicate", msg.clone());
                e.fields.insert("name".into(), Value::String(msg));
                e
            }
            StorageError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", msg),
            StorageError::LastAdmin(_) => ApiError::new(StatusCode::CONFLICT, "last_admin", msg),
            other => {
                tracing::error!(error = %other, "API request failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "message": self.message });
        if !self.fields.is_empty() {
            body["fields"] = Value::Object(self.fields);
        }
        (self.status, Json(body)).into_response()
    }
}

/// Who is calling, and how.
pub struct Caller {
    pub user: User,
    pub by_token: bool,
    /// The browser session the call came with (none for token calls).
    pub sid: Option<String>,
}

/// A caller whose admin flag was checked. Only [`FromRequestParts`] below makes one.
pub struct Admin(pub Caller);

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let unauthenticated = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "sign in or use an API token",
            )
        };
        if let Some(token) = bearer(&parts.headers) {
            if !token.starts_with(TOKEN_PREFIX) {
                return Err(unauthenticated());
            }
            let user = state
                .store
                .api_token_user(&hash_secret(token))
                .await?
                .ok_or_else(unauthenticated)?;
            return Ok(Caller {
                user,
                by_token: true,
                sid: None,
            });
        }
        let jar = CookieJar::from_headers(&parts.headers);
        let (current, user) = session::current(state, &jar)
            .await?
            .ok_or_else(unauthenticated)?;
        // A browser session is an ambient credential: writes must prove they come from our
        // own pages.
        let safe = matches!(parts.method, Method::GET | Method::HEAD);
        let marked = parts
            .headers
            .get("x-requested-with")
            .and_then(|v| v.to_str().ok())
            == Some("stackspin");
        let proven = marked && session::same_origin(state, &parts.headers);
        if !(safe || proven) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "session requests that change data need the X-Requested-With: stackspin header",
            ));
        }
        Ok(Caller {
            user,
            by_token: false,
            sid: Some(current.sid),
        })
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller =
            <Caller as FromRequestParts<AppState>>::from_request_parts(parts, state).await?;
        if !caller.user.is_admin {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this needs an admin",
            ));
        }
        Ok(Admin(caller))
    }
}

impl Admin {
    /// Who did it, as the audit log shows it.
    pub fn actor(&self) -> String {
        if self.0.by_token {
            format!("{} (API token)", self.0.user.email)
        } else {
            self.0.user.email.to_string()
        }
    }

    /// An audit event with this admin as the actor.
    pub fn event(&self, kind: &str) -> stackspin_storage::AuditEvent {
        let mut e = stackspin_storage::AuditEvent::new(kind);
        e.actor = Some(self.actor());
        e
    }
}
