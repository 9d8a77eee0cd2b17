//! Browser sessions and CSRF protection.
//!
//! The session cookie holds 256 random bits; the database holds only their SHA-256, so a
//! leaked database cannot be replayed as cookies. Cookies are `__Host-` prefixed, `Secure`,
//! `HttpOnly` and `SameSite=Lax` (Lax, not Strict, because apps redirect people to
//! `/authorize` from their own sites and the session must come along). `Secure` and the
//! prefix are dropped only for a plain-http localhost public URL, where browsers would refuse
//! them.
//!
//! CSRF: every form carries a token that must equal the one in a separate cookie (double
//! submit), and POSTs whose `Origin` is another site are refused outright.

use axum::http::HeaderMap;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use stackspin_domain::{
    User,
    secret::{hash_secret, random_token},
};
use stackspin_storage::{SessionRecord, StorageError};
use subtle::ConstantTimeEq;

use crate::AppState;

fn secure(state: &AppState) -> bool {
    state.public_url.is_https()
}

pub fn session_cookie_name(state: &AppState) -> &'static str {
    if secure(state) {
        "__Host-stackspin_session"
    } else {
        "stackspin_session"
    }
}

fn csrf_cookie_name(state: &AppState) -> &'static str {
    if secure(state) {
        "__Host-stackspin_csrf"
    } else {
        "stackspin_csrf"
    }
}

fn cookie(state: &AppState, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .secure(secure(state))
        .same_site(SameSite::Lax)
        .build()
}

/// A new session token: the cookie value and the hash to store.
pub fn new_session_token() -> (String, String) {
    let token = random_token(32);
    let hash = hash_secret(&token);
    (token, hash)
}

pub fn session_cookie(state: &AppState, token: String) -> Cookie<'static> {
    let mut c = cookie(state, session_cookie_name(state), token);
    c.set_max_age(time_duration(state.options.session_lifetime.num_seconds()));
    c
}

pub fn clear_session_cookie(state: &AppState) -> Cookie<'static> {
    let mut c = cookie(state, session_cookie_name(state), String::new());
    c.set_max_age(time_duration(0));
    c
}

fn time_duration(secs: i64) -> time::Duration {
    time::Duration::seconds(secs)
}

/// The signed-in person behind the request, if their session is live.
pub async fn current(
    state: &AppState,
    jar: &CookieJar,
) -> Result<Option<(SessionRecord, User)>, StorageError> {
    let Some(c) = jar.get(session_cookie_name(state)) else {
        return Ok(None);
    };
    let Some(session) = state
        .store
        .session_by_token_hash(&hash_secret(c.value()))
        .await?
    else {
        return Ok(None);
    };
    let Some(user) = state.store.user_by_id(session.user_id).await? else {
        return Ok(None);
    };
    let _ = VIEWER.try_with(|v| v.set(Some(user.is_admin)));
    Ok(Some((session, user)))
}

tokio::task_local! {
    /// Whether the person behind the request is signed in, and an admin: noted when the
    /// session is looked up, so pages that do not need a session (messages, confirmations)
    /// can still show the navigation to someone who is.
    static VIEWER: std::cell::Cell<Option<bool>>;
}

/// Middleware: a place for the request's viewer.
pub async fn viewer_scope(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    VIEWER
        .scope(std::cell::Cell::new(None), next.run(req))
        .await
}

/// `Some(is_admin)` when this request's session was looked up and is valid.
pub fn viewer_is_admin() -> Option<bool> {
    VIEWER.try_with(std::cell::Cell::get).ok().flatten()
}

/// The signed-in person, or the response that sends them to log in (returning to
/// `return_to` afterwards) or reports the failure.
pub async fn require(
    state: &AppState,
    jar: &CookieJar,
    return_to: &str,
) -> Result<(SessionRecord, User), axum::response::Response> {
    use axum::response::IntoResponse;
    match current(state, jar).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => {
            let to: String = url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
            Err(axum::response::Redirect::to(&format!("/login?return_to={to}")).into_response())
        }
        Err(e) => Err(crate::pages::internal_error(&e)),
    }
}

fn device_cookie_name(state: &AppState) -> &'static str {
    if secure(state) {
        "__Host-stackspin_device"
    } else {
        "stackspin_device"
    }
}

/// How long a browser stays known after it signed in.
pub const DEVICE_DAYS: i64 = 90;

/// The hash of this browser's known-device cookie, if it is one that `user` signed in with
/// (see `throttle`).
pub async fn known_device(
    state: &AppState,
    jar: &CookieJar,
    user: Option<&User>,
) -> Result<Option<String>, StorageError> {
    let (Some(c), Some(user)) = (jar.get(device_cookie_name(state)), user) else {
        return Ok(None);
    };
    let hash = hash_secret(c.value());
    Ok(match state.store.known_device_user(&hash).await? {
        Some(id) if id == user.id => Some(hash),
        _ => None,
    })
}

/// Marks this browser as one `user` signed in with.
pub async fn remember_device(
    state: &AppState,
    jar: CookieJar,
    user: &User,
) -> Result<CookieJar, StorageError> {
    let token = random_token(32);
    state
        .store
        .add_known_device(&hash_secret(&token), user.id)
        .await?;
    let mut c = cookie(state, device_cookie_name(state), token);
    c.set_max_age(time_duration(DEVICE_DAYS * 24 * 3600));
    Ok(jar.add(c))
}

fn notice_cookie_name(state: &AppState) -> &'static str {
    if secure(state) {
        "__Host-stackspin_notice"
    } else {
        "stackspin_notice"
    }
}

/// Leaves a notice (`kind`, `value`) for the next page, in a cookie rather than the URL: a
/// notice read from the query string would let a crafted link show any text it liked.
pub fn flash(state: &AppState, jar: CookieJar, kind: &str, value: &str) -> CookieJar {
    let text: String =
        url::form_urlencoded::byte_serialize(format!("{kind}:{value}").as_bytes()).collect();
    let mut c = cookie(state, notice_cookie_name(state), text);
    c.set_max_age(time_duration(60));
    jar.add(c)
}

/// Takes the notice left by [`flash`], if any, clearing it.
pub fn take_flash(state: &AppState, jar: CookieJar) -> (CookieJar, Option<(String, String)>) {
    let Some(c) = jar.get(notice_cookie_name(state)) else {
        return (jar, None);
    };
    let decoded: String = url::form_urlencoded::parse(format!("n={}", c.value()).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let notice = decoded
        .split_once(':')
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let mut gone = cookie(state, notice_cookie_name(state), String::new());
    gone.set_max_age(time_duration(0));
    (jar.add(gone), notice)
}

/// Replaces the CSRF cookie with a new token: done at sign-in, so a token an attacker
/// planted or read before it is worthless after it.
pub fn rotate_csrf(state: &AppState, jar: CookieJar) -> CookieJar {
    jar.add(cookie(state, csrf_cookie_name(state), random_token(32)))
}

/// The CSRF token for forms on this response, creating the cookie if the browser has none.
pub fn csrf_token(state: &AppState, jar: CookieJar) -> (CookieJar, String) {
    if let Some(c) = jar.get(csrf_cookie_name(state))
        && c.value().len() >= 32
    {
        let token = c.value().to_owned();
        return (jar, token);
    }
    let token = random_token(32);
    let jar = jar.add(cookie(state, csrf_cookie_name(state), token.clone()));
    (jar, token)
}

/// Checks a form's CSRF token against the cookie, and the request's origin.
pub fn csrf_ok(state: &AppState, jar: &CookieJar, headers: &HeaderMap, form_token: &str) -> bool {
    if !same_origin(state, headers) {
        return false;
    }
    let Some(c) = jar.get(csrf_cookie_name(state)) else {
        return false;
    };
    !form_token.is_empty() && bool::from(c.value().as_bytes().ct_eq(form_token.as_bytes()))
}

/// A POST whose `Origin` (or, failing that, `Sec-Fetch-Site`) says it came from another
/// site is refused, whatever its token. Browsers send `Origin: null` in some same-site cases
/// (privacy-sensitive contexts, some referrer policies), so `null` defers to
/// `Sec-Fetch-Site`.
pub(crate) fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    match headers.get("origin").and_then(|v| v.to_str().ok()) {
        Some("null") | None => !matches!(fetch_site, Some("cross-site" | "same-site")),
        Some(origin) => {
            state.public_url.as_str().starts_with(origin) && {
                let rest = &state.public_url.as_str()[origin.len()..];
                rest.is_empty() || rest.starts_with('/')
            }
        }
    }
}
