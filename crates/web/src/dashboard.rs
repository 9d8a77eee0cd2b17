//! The Dashboard's pages for everyone: the app launcher and "My account" (password, sessions).
//!
//! Forms post back here with a CSRF token; every action that ends sessions also tells the
//! apps through back-channel logout.

use axum::{
    Form,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use stackspin_domain::Role;

use crate::{AppState, PasswordChangeError, pages, session};

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

/// Any address nothing serves: "Page not found", with the navigation for someone signed in.
pub async fn not_found(State(state): State<AppState>, jar: CookieJar) -> Response {
    // Only to know whether to show the navigation; a failure just leaves it out.
    let _ = session::current(&state, &jar).await;
    pages::not_found().await
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
    let steps = match crate::checklist::for_user(&state, &user).await {
        Ok(s) => s,
        Err(e) => return pages::internal_error(&e),
    };
    match tiles {
        Ok(tiles) => {
            let (jar, csrf) = session::csrf_token(&state, jar);
            (jar, pages::home(&csrf, &user, &tiles, steps.as_deref())).into_response()
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
    crate::client::ClientIp(client): crate::client::ClientIp,
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
    let changed = state
        .change_password(&user, f.current, &f.password, client, Some(&current.sid))
        .await;
    let refusal = match changed {
        Ok(()) => None,
        Err(PasswordChangeError::Throttled) => Some((
            crate::texts::t("msg.dashboard.too_many_attempts_wait_a").to_owned(),
            StatusCode::TOO_MANY_REQUESTS,
        )),
        Err(PasswordChangeError::WrongCurrent) => Some((
            crate::texts::t("msg.dashboard.your_current_password_is_not").to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )),
        Err(PasswordChangeError::Invalid(e)) => Some((
            crate::texts::tf(
                "msg.dashboard.new_password_invalid",
                [("error", crate::problems::password(&e))],
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        )),
        Err(PasswordChangeError::Busy) => Some((
            crate::texts::t("msg.dashboard.the_server_is_busy_try").to_owned(),
            StatusCode::SERVICE_UNAVAILABLE,
        )),
        Err(PasswordChangeError::Storage(e)) => return pages::internal_error(&e),
    };
    if let Some((message, status)) = refusal {
        return render_account(&state, jar, Some((&message, false)), status).await;
    }
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
