//! RP-initiated logout (RP-Initiated Logout 1.0) and the Dashboard's own "log out".
//!
//! A logout request that carries a valid `id_token_hint` for the current session ends it at
//! once. Without one, anyone could log people out by embedding the URL, so the person is asked
//! to confirm with a CSRF-protected form. Ending the session queues back-channel logout
//! notices for every app the session signed into.

use std::collections::HashMap;

use axum::{
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::CookieJar;
use stackspin_domain::App;
use stackspin_identity::redirect::find_match;

use super::{authorize::append_query, authorize::hinted_claims, parse_params};
use crate::{AppState, pages, session};

pub async fn get(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    handle(state, jar, headers, q.unwrap_or_default(), false).await
}

pub async fn post(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    body: String,
) -> Response {
    handle(state, jar, headers, body, true).await
}

/// Where to send the person afterwards, if the app asked and registered that address.
struct After {
    uri: Option<String>,
    state: Option<String>,
}

async fn resolve_client(
    state: &AppState,
    params: &HashMap<String, String>,
    hint_aud: Option<String>,
) -> Result<Result<Option<App>, &'static str>, stackspin_storage::StorageError> {
    let client_id = params.get("client_id").filter(|c| !c.is_empty()).cloned();
    let id = match (client_id, hint_aud) {
        (Some(a), Some(b)) if a != b => {
            return Ok(Err(crate::texts::t(
                "msg.logout.the_logout_request_names_two",
            )));
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => return Ok(Ok(None)),
    };
    Ok(match state.store.app_by_client_id(&id).await? {
        Some(app) => Ok(Some(app)),
        None => Err(crate::texts::t("msg.logout.the_app_that_sent_you")),
    })
}

async fn handle(
    state: AppState,
    jar: CookieJar,
    headers: HeaderMap,
    raw: String,
    is_post: bool,
) -> Response {
    let params = match parse_params(&raw) {
        Ok(p) => p,
        Err(m) => {
            return pages::error(
                StatusCode::BAD_REQUEST,
                crate::texts::t("msg.logout.invalid_logout_request"),
                &m,
            );
        }
    };
    let hint = params
        .get("id_token_hint")
        .filter(|h| !h.is_empty())
        .map(|h| hinted_claims(&state, h));
    if matches!(hint, Some(None)) {
        return pages::error(
            StatusCode::BAD_REQUEST,
            crate::texts::t("msg.logout.invalid_logout_request"),
            crate::texts::t("msg.logout.the_app_sent_a_sign"),
        );
    }
    let hint = hint.flatten();
    let hint_aud = hint
        .as_ref()
        .and_then(|c| c.get("aud"))
        .and_then(|a| a.as_str())
        .map(str::to_owned);
    let app = match resolve_client(&state, &params, hint_aud).await {
        Ok(Ok(app)) => app,
        Ok(Err(msg)) => {
            return pages::error(
                StatusCode::BAD_REQUEST,
                crate::texts::t("msg.logout.invalid_logout_request"),
                msg,
            );
        }
        Err(e) => return pages::internal_error(&e),
    };
    let after = match params
        .get("post_logout_redirect_uri")
        .filter(|u| !u.is_empty())
    {
        None => After {
            uri: None,
            state: None,
        },
        Some(uri) => match &app {
            Some(app) if find_match(&app.post_logout_redirect_uris, uri).is_some() => After {
                uri: Some(uri.clone()),
                state: params.get("state").cloned(),
            },
            _ => {
                return pages::error(
                    StatusCode::BAD_REQUEST,
                    crate::texts::t("msg.logout.invalid_logout_request"),
                    crate::texts::t("msg.logout.the_app_asked_to_return"),
                );
            }
        },
    };

    let current = match session::current(&state, &jar).await {
        Ok(c) => c,
        Err(e) => return pages::internal_error(&e),
    };
    let Some((session, user)) = current else {
        // Nobody to log out: go where the app asked, or say so.
        return finish(&state, jar, &after);
    };
    let hint_matches = hint.as_ref().is_some_and(|c| {
        c.get("sub").and_then(|s| s.as_str()) == Some(user.id.to_string().as_str())
            && c.get("sid")
                .and_then(|s| s.as_str())
                .is_none_or(|sid| sid == session.sid)
    });
    let confirmed = is_post
        && params.get("confirm").map(String::as_str) == Some("yes")
        && session::csrf_ok(
            &state,
            &jar,
            &headers,
            params.get("csrf").map(String::as_str).unwrap_or_default(),
        );
    if !(hint_matches || confirmed) {
        let (jar, csrf) = session::csrf_token(&state, jar);
        let hidden: Vec<(String, String)> = [
            "post_logout_redirect_uri",
            "state",
            "client_id",
            "id_token_hint",
        ]
        .iter()
        .filter_map(|k| params.get(*k).map(|v| ((*k).to_owned(), v.clone())))
        .collect();
        return (
            jar,
            pages::logout_confirm(&csrf, &user.email.to_string(), &hidden),
        )
            .into_response();
    }
    match state.end_session(&session.sid, &user, "logout").await {
        Ok(()) => finish(&state, jar, &after),
        Err(e) => pages::internal_error(&e),
    }
}

fn finish(state: &AppState, jar: CookieJar, after: &After) -> Response {
    let jar = jar.add(session::clear_session_cookie(state));
    match &after.uri {
        Some(uri) => {
            let mut pairs = vec![];
            if let Some(s) = &after.state {
                pairs.push(("state", s.as_str()));
            }
            let target = if pairs.is_empty() {
                uri.clone()
            } else {
                append_query(uri, &pairs)
            };
            (jar, Redirect::to(&target)).into_response()
        }
        None => (jar, pages::logged_out()).into_response(),
    }
}
