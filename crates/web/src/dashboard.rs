//! The Dashboard's pages for everyone: the app launcher and "My account" (password, sessions).
//!
//! Forms post back here with a CSRF token; every action that ends sessions also tells the
//! apps through back-channel logout.

use std::net::SocketAddr;

use axum::{
    Form,
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use stackspin_domain::{Role, password::Password};
use stackspin_storage::AuditEvent;

use crate::{AppState, pages, session};

/// An app tile: what someone may launch.
pub struct Tile {
    pub name: String,
    pub url: String,
    pub icon_url: Option<String>,
    pub admin: bool,
}

impl Tile {
    /// The first letter of the name, shown when the app has no icon.
    pub fn initial(&self) -> String {
        self.name
            .chars()
            .find(|c| c.is_alphanumeric())
            .map(|c| c.to_uppercase().collect())
            .unwrap_or_else(|| "?".into())
    }
}

pub async fn home(State(state): State<AppState>, jar: CookieJar) -> Response {
    let (_, user) = match session::require(&state, &jar, "/").await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let tiles = async {
        let apps = state.store.list_apps().await?;
        let roles = state.store.roles_of(user.id).await?;
        Ok::<_, stackspin_storage::StorageError>(
            apps.into_iter()
                .filter_map(|a| {
                    let role = roles.iter().find(|(n, _)| *n == a.name).map(|(_, r)| *r)?;
                    role.grants_access().then(|| Tile {
                        name: a.display_name.clone(),
                        url: a.url.clone(),
                        icon_url: a.icon_url.clone(),
                        admin: role == Role::Admin,
                    })
                })
                .collect::<Vec<_>>(),
        )
    }
    .await;
    match tiles {
        Ok(tiles) => {
            let (jar, csrf) = session::csrf_token(&state, jar);
            (jar, pages::home(&csrf, &user, &tiles)).into_response()
        }
        Err(e) => pages::internal_error(&e),
    }
}

pub async fn account(State(state): State<AppState>, jar: CookieJar) -> Response {
    render_account(&state, jar, None, StatusCode::OK).await
}

async fn render_account(
    state: &AppState,
    jar: CookieJar,
    notice: Option<(&str, bool)>,
    status: StatusCode,
) -> Response {
    let (current, user) = match session::require(state, &jar, "/account").await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let sessions = match state.store.sessions_of_user(user.id).await {
        Ok(s) => s,
        Err(e) => return pages::internal_error(&e),
    };
    let mfa = state
        .store
        .totp_secret(user.id)
        .await
        .ok()
        .flatten()
        .is_some();
    let (jar, csrf) = session::csrf_token(state, jar);
    (
        jar,
        pages::account(&csrf, &user, &current.sid, &sessions, mfa, notice, status),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current: String,
    password: String,
    confirm: String,
    #[serde(default)]
    csrf: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<PasswordForm>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &f.csrf) {
        return pages::form_expired();
    }
    let (current, user) = match session::require(&state, &jar, "/account").await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let ip = peer.ip().to_string();
    let key = format!("pw:{}", user.id);
    if !state.throttle.allowed(&key, &ip) {
        return render_account(
            &state,
            jar,
            Some((
                crate::texts::t("msg.dashboard.too_many_attempts_wait_a"),
                false,
            )),
            StatusCode::TOO_MANY_REQUESTS,
        )
        .await;
    }
    let stored = user
        .password_hash
        .clone()
        .unwrap_or_else(|| (*state.dummy_hash).clone());
    let ok = state
        .verify_password(f.current.clone(), stored)
        .await
        .is_some_and(|v| v.matched())
        && user.has_password();
    if !ok {
        state.throttle.failed(&key, &ip);
        return render_account(
            &state,
            jar,
            Some((
                crate::texts::t("msg.dashboard.your_current_password_is_not"),
                false,
            )),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    if f.password != f.confirm {
        return render_account(
            &state,
            jar,
            Some((
                crate::texts::t("msg.dashboard.the_two_new_passwords_are"),
                false,
            )),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let password = match Password::new(&f.password) {
        Ok(p) => p,
        Err(e) => {
            return render_account(
                &state,
                jar,
                Some((
                    &crate::texts::tf("msg.dashboard.new_password_invalid", [("error", e)]),
                    false,
                )),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let Some(hash) = state.hash_password(password).await else {
        return render_account(
            &state,
            jar,
            Some((
                crate::texts::t("msg.dashboard.the_server_is_busy_try"),
                false,
            )),
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .await;
    };
    if let Err(e) = state.store.set_password_hash(user.id, &hash).await {
        return pages::internal_error(&e);
    }
    // Whoever knew the old password may be signed in elsewhere: end every other session.
    if let Err(e) = state
        .end_sessions(&user, Some(&current.sid))
        .await
        .map(drop)
    {
        return pages::internal_error(&e);
    }
    let mut e = AuditEvent::new("password.changed");
    e.user_id = Some(user.id.0);
    e.user_email = Some(user.email.to_string());
    e.ip = Some(ip);
    state.audit(e).await;
    render_account(
        &state,
        jar,
        Some((
            crate::texts::t("msg.dashboard.your_password_is_changed_your"),
            true,
        )),
        StatusCode::OK,
    )
    .await
}

#[derive(Deserialize)]
pub struct SessionsForm {
    /// A session id, `others` or `all`.
    target: String,
    #[serde(default)]
    csrf: String,
}

pub async fn end_session(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<SessionsForm>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &f.csrf) {
        return pages::form_expired();
    }
    let (current, user) = match session::require(&state, &jar, "/account").await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let result = match f.target.as_str() {
        "others" => state
            .end_sessions(&user, Some(&current.sid))
            .await
            .map(drop),
        "all" => state.end_sessions(&user, None).await.map(drop),
        sid => {
            // Only one's own sessions.
            match state.store.sessions_of_user(user.id).await {
                Ok(list) if list.iter().any(|s| s.sid == sid) => {
                    state.end_session(sid, &user, "logout").await
                }
                Ok(_) => {
                    return pages::error(
                        StatusCode::NOT_FOUND,
                        crate::texts::t("msg.dashboard.no_such_session"),
                        crate::texts::t("msg.dashboard.that_session_has_already_ended"),
                    );
                }
                Err(e) => Err(e),
            }
        }
    };
    if let Err(e) = result {
        return pages::internal_error(&e);
    }
    if f.target == "all" || f.target == current.sid {
        return (
            jar.add(session::clear_session_cookie(&state)),
            pages::logged_out(),
        )
            .into_response();
    }
    Redirect::to("/account").into_response()
}
