//! The sign-in page.
//!
//! Failures look and take the same whether the address has an account, has no password yet,
//! or the password is wrong: unknown addresses are checked against a dummy hash so the
//! timing matches, and throttling counts the address typed, not the account.

use axum::{
    Form,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use stackspin_domain::{Email, password::Verification};
use stackspin_storage::AuditEvent;

use crate::{AppState, client::ClientIp, pages, session, throttle};

#[derive(Deserialize)]
pub struct LoginQuery {
    return_to: Option<String>,
    login_hint: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    return_to: String,
}

/// Only local paths: anything else would make the login page an open redirect. Malformed
/// values are refused with a page before anything else happens (no session is started).
pub(crate) fn return_target(to: &str) -> Option<String> {
    stackspin_domain::return_to::local_path(to)
        .ok()
        .map(str::to_owned)
}

/// Records a refused sign-in under the address typed (and the account, if there is one).
async fn audit_refusal(
    state: &AppState,
    kind: &str,
    user: Option<&stackspin_domain::User>,
    typed: &str,
    ip: &str,
) {
    let mut e = AuditEvent::new(kind);
    e.user_id = user.map(|u| u.id.0);
    e.user_email = Some(typed.chars().take(254).collect());
    e.ip = Some(ip.to_owned());
    state.audit(e).await;
}

/// The app a sign-in is for, when the page was reached from an app's authorization request
/// (`/authorize?…client_id=…`): people should see who is asking before they type a password.
async fn asking_app(state: &AppState, return_to: &str) -> Option<String> {
    let query = return_to.strip_prefix("/authorize?")?;
    let client_id = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "client_id")?
        .1
        .into_owned();
    let app = state.store.app_by_client_id(&client_id).await.ok()??;
    Some(app.display_name)
}

pub async fn form(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<LoginQuery>,
) -> Response {
    let (jar, csrf) = session::csrf_token(&state, jar);
    let return_to = match return_target(q.return_to.as_deref().unwrap_or("/")) {
        Some(r) => r,
        None => return pages::malformed_return_to(),
    };
    let asking = asking_app(&state, &return_to).await;
    (
        jar,
        pages::login(
            &csrf,
            &return_to,
            q.login_hint.as_deref().unwrap_or_default(),
            None,
            asking.as_deref(),
            StatusCode::OK,
        ),
    )
        .into_response()
}

pub async fn submit(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let return_to = match return_target(&f.return_to) {
        Some(r) => r,
        None => return pages::malformed_return_to(),
    };
    if !session::csrf_ok(&state, &jar, &headers, &f.csrf) {
        return pages::form_expired();
    }
    let (jar, csrf) = session::csrf_token(&state, jar);
    let ip = client.to_string();
    let typed = f.email.trim().to_owned();
    let asking = asking_app(&state, &return_to).await;
    let retry = |jar: CookieJar, status, msg: &str| {
        (
            jar,
            pages::login(
                &csrf,
                &return_to,
                &typed,
                Some(msg),
                asking.as_deref(),
                status,
            ),
        )
            .into_response()
    };

    let user = match Email::parse(&typed) {
        Ok(email) => match state.store.user_by_email(&email).await {
            Ok(u) => u,
            Err(e) => return pages::internal_error(&e),
        },
        Err(_) => None,
    };
    let device = match session::known_device(&state, &jar, user.as_ref()).await {
        Ok(d) => d,
        Err(e) => return pages::internal_error(&e),
    };
    // Counted before the hash is checked, so a burst cannot outrun the limit.
    let limits = throttle::sign_in(&typed, client, device.as_deref());
    match throttle::attempt(&state.store, &limits).await {
        Ok(true) => {}
        Ok(false) => {
            audit_refusal(&state, "login.throttled", user.as_ref(), &typed, &ip).await;
            return retry(
                jar,
                StatusCode::TOO_MANY_REQUESTS,
                crate::texts::t("msg.login.too_many_sign_in_attempts"),
            );
        }
        Err(e) => return pages::internal_error(&e),
    }
    let stored = user
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .unwrap_or_else(|| (*state.dummy_hash).clone());
    let verification = match state.verify_password(f.password.clone(), stored).await {
        Some(v) => v,
        None => {
            return retry(
                jar,
                StatusCode::SERVICE_UNAVAILABLE,
                crate::texts::t("msg.login.the_server_is_busy_try"),
            );
        }
    };
    let user = match (user, verification) {
        (Some(u), v) if v.matched() && u.has_password() => {
            if v == Verification::MatchNeedsRehash {
                state.rehash_later(u.id, f.password.clone());
            }
            u
        }
        (user, _) => {
            audit_refusal(&state, "login.failure", user.as_ref(), &typed, &ip).await;
            return retry(
                jar,
                StatusCode::UNAUTHORIZED,
                crate::texts::t("msg.login.email_or_password_is_incorrect"),
            );
        }
    };
    if let Err(e) = throttle::succeeded(&state.store, &limits).await {
        tracing::warn!(error = %e, "cannot clear sign-in counters");
    }
    // This browser now knows the password: later guesses by others do not block it.
    let jar = match device {
        Some(_) => jar,
        None => match session::remember_device(&state, jar.clone(), &user).await {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "cannot remember the device");
                jar
            }
        },
    };
    // A token seen before sign-in (perhaps planted) is not used after it.
    let jar = session::rotate_csrf(&state, jar);

    // A second factor, when enrolled, comes before any session.
    match state.store.totp_secret(user.id).await {
        Ok(Some(_)) => {
            return match crate::mfa::pending_cookie(&state, &user, &return_to) {
                Some(c) => (jar.add(c), Redirect::to("/login/mfa")).into_response(),
                None => pages::internal_error(&"no signing key for the MFA step"),
            };
        }
        Ok(None) => {}
        Err(e) => return pages::internal_error(&e),
    }
    let cookie =
        match crate::mfa::start_session(&state, &user, vec!["pwd".into()], &headers, &ip).await {
            Ok(c) => c,
            Err(e) => return pages::internal_error(&e),
        };
    let jar = jar.add(cookie);
    // The organisation requires a second factor this person has not set up: enrol first.
    match crate::mfa::required_for(&state, &user).await {
        Ok(true) => {
            let target = format!(
                "/account/mfa?return_to={}",
                url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>()
            );
            (jar, Redirect::to(&target)).into_response()
        }
        Ok(false) => (jar, Redirect::to(&return_to)).into_response(),
        Err(e) => pages::internal_error(&e),
    }
}
