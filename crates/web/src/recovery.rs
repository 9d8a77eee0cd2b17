//! "Forgot password?" and invitations: single-use, short-lived links sent by mail.
//!
//! The recovery request answers the same way, and as fast, whether or not the address has an
//! account: the lookup and mail are done after the response, in the background. Setting a
//! password through a link ends every session of the account, with logout notices to apps.

use axum::{
    Form,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use stackspin_domain::{Email, password::Password, secret::hash_secret};
use stackspin_storage::{AuditEvent, LinkPurpose};

use crate::{AppState, pages, session};

#[derive(Deserialize)]
pub struct RecoverForm {
    email: String,
    #[serde(default)]
    csrf: String,
}

pub async fn recover_form(State(state): State<AppState>, jar: CookieJar) -> Response {
    let (jar, csrf) = session::csrf_token(&state, jar);
    (jar, pages::recover(&csrf, None)).into_response()
}

pub async fn recover_submit(
    State(state): State<AppState>,
    crate::client::ClientIp(client): crate::client::ClientIp,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<RecoverForm>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &f.csrf) {
        return pages::form_expired();
    }
    let typed = f.email.trim().to_owned();
    let ip = client.to_string();
    // Mail bombing someone's inbox is throttled, with counters of its own: reset requests
    // never count against sign-ins, so they cannot lock the owner out.
    let allowed = match crate::throttle::attempt(
        &state.store,
        &crate::throttle::reset_request(&typed, client),
    )
    .await
    {
        Ok(a) => a,
        Err(e) => return pages::internal_error(&e),
    };
    if allowed {
        let state2 = state.clone();
        let typed2 = typed.clone();
        tokio::spawn(async move {
            if let Err(e) = send_reset_link(&state2, &typed2, &ip).await {
                tracing::warn!(error = %e, "cannot start password recovery");
            }
        });
    }
    let (jar, csrf) = session::csrf_token(&state, jar);
    (jar, pages::recover(&csrf, Some(&typed))).into_response()
}

async fn send_reset_link(
    state: &AppState,
    typed: &str,
    ip: &str,
) -> Result<(), stackspin_storage::StorageError> {
    let Ok(email) = Email::parse(typed) else {
        return Ok(());
    };
    let Some(user) = state.store.user_by_email(&email).await? else {
        return Ok(());
    };
    let lifetime = state.options.reset_link_lifetime;
    let (link, stored) = crate::admin_links::fresh_link(state, LinkPurpose::Reset, lifetime);
    let mail = crate::admin_links::link_mail(
        state,
        LinkPurpose::Reset,
        &user.name,
        &user.email,
        &link,
        lifetime,
    )
    .await;
    state.store.issue_link(user.id, &stored, &mail).await?;
    state.mail_wake.notify_one();
    let mut e = AuditEvent::new("recovery.requested");
    e.user_id = Some(user.id.0);
    e.user_email = Some(user.email.to_string());
    e.ip = Some(ip.to_owned());
    state.audit(e).await;
    Ok(())
}

#[derive(Deserialize)]
pub struct ResetQuery {
    #[serde(default)]
    token: String,
}

fn link_invalid() -> Response {
    pages::error(
        StatusCode::BAD_REQUEST,
        crate::texts::t("msg.recovery.this_link_does_not_work"),
        crate::texts::t("msg.recovery.the_link_has_expired"),
    )
}

pub async fn reset_form(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<ResetQuery>,
) -> Response {
    match state.store.link_user(&hash_secret(&q.token)).await {
        Ok(Some((user, purpose))) => {
            let (jar, csrf) = session::csrf_token(&state, jar);
            let invited = purpose == LinkPurpose::Invite;
            (
                jar,
                pages::reset(
                    &csrf,
                    &q.token,
                    user.email.as_str(),
                    invited,
                    None,
                    StatusCode::OK,
                ),
            )
                .into_response()
        }
        Ok(None) => link_invalid(),
        Err(e) => pages::internal_error(&e),
    }
}

#[derive(Deserialize)]
pub struct ResetForm {
    token: String,
    password: String,
    confirm: String,
    #[serde(default)]
    csrf: String,
}

pub async fn reset_submit(
    State(state): State<AppState>,
    crate::client::ClientIp(client): crate::client::ClientIp,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<ResetForm>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &f.csrf) {
        return pages::form_expired();
    }
    let token_hash = hash_secret(&f.token);
    let (user, purpose) = match state.store.link_user(&token_hash).await {
        Ok(Some(found)) => found,
        Ok(None) => return link_invalid(),
        Err(e) => return pages::internal_error(&e),
    };
    let invited = purpose == LinkPurpose::Invite;
    let (jar, csrf) = session::csrf_token(&state, jar);
    let retry = |msg: &str| {
        (
            jar.clone(),
            pages::reset(
                &csrf,
                &f.token,
                user.email.as_str(),
                invited,
                Some(msg),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
        )
            .into_response()
    };
    if f.password != f.confirm {
        return retry(crate::texts::t("msg.recovery.the_two_passwords_are_not"));
    }
    let personal = crate::problems::personal(user.email.as_str(), user.name.as_str());
    let password = match Password::new_for(&f.password, &personal) {
        Ok(p) => p,
        Err(e) => return retry(&crate::problems::password(&e)),
    };
    let Some(hash) = state.hash_password(password).await else {
        return retry(crate::texts::t("msg.recovery.the_server_is_busy_try"));
    };
    match state.store.redeem_link(&token_hash, &hash).await {
        Ok(Some((user, purpose))) => {
            state.outbox_wake.notify_one();
            let kind = if purpose == LinkPurpose::Invite {
                "invitation.accepted"
            } else {
                "recovery.completed"
            };
            let mut e = AuditEvent::new(kind);
            e.user_id = Some(user.id.0);
            e.user_email = Some(user.email.to_string());
            e.ip = Some(client.to_string());
            state.audit(e).await;
            (
                jar.add(session::clear_session_cookie(&state)),
                pages::password_set(),
            )
                .into_response()
        }
        Ok(None) => link_invalid(),
        Err(e) => pages::internal_error(&e),
    }
}
