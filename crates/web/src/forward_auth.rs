//! Single sign-on for tools that cannot speak OpenID Connect (Prometheus, Alertmanager, an
//! admin's internal web tool), through the ingress's forward-auth: Traefik asks
//! `/auth/forward` about every request to such a tool, with the request's
//! `X-Forwarded-Host`, `-Proto` and `-Uri` and the tool host's cookies. The tool is the
//! registered app whose URL has that host.
//!
//! The Dashboard's session cookie is host-only (`__Host-`), so the tool's host gets a session
//! of its own, handed over by a redirect through the Dashboard:
//!
//! 1. No (valid) tool cookie: `/auth/forward` answers 302 to the Dashboard's
//!    `/auth/handover?rd=<the request's URL>`, and Traefik passes that answer to the browser.
//! 2. `/auth/handover` needs a Dashboard session (else the login page and back) and a role for
//!    the tool other than "no access"; it stores a single-use code for that host with where to
//!    return, and redirects to `https://<host>/.stackspin/handover?code=...`.
//! 3. That request reaches `/auth/forward` too: the code is consumed, and only on the host it
//!    was issued for does it become a tool session (a code for one host is burnt on another).
//!    The answer sets the tool's cookie and redirects to where the person was going.
//! 4. Later requests carry the cookie: one database lookup (joined with the Dashboard session,
//!    so signing out or losing the account ends it) and the role; 200 with the person's email,
//!    name and role in headers Traefik copies to the tool (`authResponseHeaders`).

use std::sync::Arc;

use axum::{
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::Deserialize;
use stackspin_domain::App;
use stackspin_domain::Role;
use stackspin_domain::secret::{hash_secret, random_token};
use stackspin_storage::CodeRefusal;

use crate::{AppState, pages, session, texts};

/// The path on a tool's host that redeems a hand-over code.
pub const HANDOVER_PATH: &str = "/.stackspin/handover";
/// The headers a tool receives about the person (Traefik's `authResponseHeaders`).
pub const EMAIL_HEADER: &str = "x-stackspin-email";
pub const NAME_HEADER: &str = "x-stackspin-name";
pub const ROLE_HEADER: &str = "x-stackspin-role";

fn tool_cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-stackspin_tool"
    } else {
        "stackspin_tool"
    }
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)?.to_str().ok().map(str::trim)
}

/// The host part of an app's URL, lowercased, with a port when it has one.
fn url_host(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let host = u.host_str()?.to_ascii_lowercase();
    Some(match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    })
}

/// How long the host → app map is trusted. Only which app a host is comes from it: the
/// person's role is read on every request, and a removed app grants no role, so a stale entry
/// never lets anyone in.
const TOOL_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

type ToolMap = std::collections::HashMap<String, App>;

/// The registered apps by host, shared by the requests of every tool: forward-auth is asked
/// before each request to a tool, and reading every app each time was most of its cost.
#[derive(Default)]
pub struct ToolCache {
    map: std::sync::RwLock<Option<(std::time::Instant, Arc<ToolMap>)>>,
}

impl ToolCache {
    fn fresh(&self) -> Option<Arc<ToolMap>> {
        let guard = self.map.read().ok()?;
        let (at, map) = guard.as_ref()?;
        (at.elapsed() < TOOL_CACHE_TTL).then(|| map.clone())
    }

    fn store(&self, map: Arc<ToolMap>) {
        if let Ok(mut guard) = self.map.write() {
            *guard = Some((std::time::Instant::now(), map));
        }
    }
}

async fn tool_for(state: &AppState, host: &str) -> Result<Option<App>, Response> {
    if let Some(app) = state.tools.fresh().and_then(|m| m.get(host).cloned()) {
        return Ok(Some(app));
    }
    // Stale, or a host not seen (an app registered a moment ago): read them all again.
    let apps = state
        .store
        .list_apps()
        .await
        .map_err(|e| pages::internal_error(&e))?;
    let map: ToolMap = apps
        .into_iter()
        .filter_map(|a| url_host(&a.url).map(|h| (h, a)))
        .collect();
    let found = map.get(host).cloned();
    state.tools.store(Arc::new(map));
    Ok(found)
}

fn refuse(status: StatusCode, key_title: &'static str, key_text: &'static str) -> Response {
    pages::error(status, texts::t(key_title), texts::t(key_text))
}

/// A path on the same host to return to: absolute path only, never `//elsewhere`.
fn safe_path(p: &str) -> String {
    if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') {
        p.to_string()
    } else {
        "/".to_string()
    }
}

/// Traefik's question about one request to a tool.
pub async fn check(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(host) = header_str(&headers, "x-forwarded-host").map(str::to_ascii_lowercase) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "msg.forward_auth.refused",
            "msg.forward_auth.no_host",
        );
    };
    let https = header_str(&headers, "x-forwarded-proto") != Some("http");
    let uri = header_str(&headers, "x-forwarded-uri").unwrap_or("/");
    let tool = match tool_for(&state, &host).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "msg.forward_auth.refused",
                "msg.forward_auth.unknown_tool",
            );
        }
        Err(resp) => return resp,
    };
    let scheme = if https { "https" } else { "http" };

    if let Some(query) = uri
        .strip_prefix(HANDOVER_PATH)
        .and_then(|rest| rest.strip_prefix('?'))
    {
        let code = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let token = random_token(32);
        return match state
            .store
            .redeem_tool_code(&hash_secret(&code), &host, &hash_secret(&token))
            .await
        {
            Ok(Ok(return_path)) => {
                let cookie = Cookie::build((tool_cookie_name(https), token))
                    .path("/")
                    .http_only(true)
                    .secure(https)
                    .same_site(SameSite::Lax)
                    .build();
                // Absolute, on the tool's own host: Traefik rewrites a relative Location from
                // the auth server to point at the auth server (unless preserveLocationHeader),
                // which would send the browser to the control plane's internal address.
                let scheme = if https { "https" } else { "http" };
                let mut resp =
                    Redirect::to(&format!("{scheme}://{host}{}", safe_path(&return_path)))
                        .into_response();
                if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
                    resp.headers_mut().append(header::SET_COOKIE, v);
                }
                resp
            }
            Ok(Err(CodeRefusal::OtherHost)) | Ok(Err(CodeRefusal::Invalid)) => refuse(
                StatusCode::FORBIDDEN,
                "msg.forward_auth.refused",
                "msg.forward_auth.bad_code",
            ),
            Err(e) => pages::internal_error(&e),
        };
    }

    let jar = CookieJar::from_headers(&headers);
    let session = match jar.get(tool_cookie_name(https)) {
        Some(c) => match state
            .store
            .tool_session(&hash_secret(c.value()), &host)
            .await
        {
            Ok(s) => s,
            Err(e) => return pages::internal_error(&e),
        },
        None => None,
    };
    let Some(session) = session else {
        // To the Dashboard, which hands a session over to this host and sends the person back.
        let back = format!("{scheme}://{host}{}", safe_path(uri));
        let rd: String = url::form_urlencoded::byte_serialize(back.as_bytes()).collect();
        let to = format!(
            "{}/auth/handover?rd={rd}",
            state.public_url.as_str().trim_end_matches('/')
        );
        return Redirect::to(&to).into_response();
    };
    let (user, role) = match state.store.user_by_id(session.user_id).await {
        Ok(Some(u)) => match state.store.role_of(u.id, tool.id).await {
            Ok(r) => (u, r),
            Err(e) => return pages::internal_error(&e),
        },
        Ok(None) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "msg.forward_auth.refused",
                "msg.forward_auth.no_access",
            );
        }
        Err(e) => return pages::internal_error(&e),
    };
    if role == Role::None {
        return refuse(
            StatusCode::FORBIDDEN,
            "msg.forward_auth.refused",
            "msg.forward_auth.no_access",
        );
    }
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    for (name, value) in [
        (EMAIL_HEADER, user.email.as_str()),
        (NAME_HEADER, user.name.as_str()),
        (ROLE_HEADER, role.as_str()),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    }
    resp
}

#[derive(Deserialize, Default)]
pub struct HandoverQuery {
    #[serde(default)]
    rd: String,
}

/// On the Dashboard: hands a session over to the tool's host, for the signed-in person.
pub async fn handover(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<HandoverQuery>,
) -> Response {
    let Ok(rd) = url::Url::parse(&q.rd) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "msg.forward_auth.refused",
            "msg.forward_auth.unknown_tool",
        );
    };
    let Some(host) = url_host(rd.as_str()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "msg.forward_auth.refused",
            "msg.forward_auth.unknown_tool",
        );
    };
    // Only registered tools' hosts: never a redirect to anywhere else.
    let tool = match tool_for(&state, &host).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "msg.forward_auth.refused",
                "msg.forward_auth.unknown_tool",
            );
        }
        Err(resp) => return resp,
    };
    let here: String = url::form_urlencoded::byte_serialize(q.rd.as_bytes()).collect();
    let (sess, user) =
        match session::require(&state, &jar, &format!("/auth/handover?rd={here}")).await {
            Ok(s) => s,
            Err(resp) => return resp,
        };
    match state.store.role_of(user.id, tool.id).await {
        Ok(Role::None) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "msg.forward_auth.refused",
                "msg.forward_auth.no_access",
            );
        }
        Ok(_) => {}
        Err(e) => return pages::internal_error(&e),
    }
    let code = random_token(32);
    let mut path = rd.path().to_string();
    if let Some(q) = rd.query() {
        path.push('?');
        path.push_str(q);
    }
    if let Err(e) = state
        .store
        .issue_tool_code(&hash_secret(&code), &host, &sess.sid, &safe_path(&path))
        .await
    {
        return pages::internal_error(&e);
    }
    Redirect::to(&format!(
        "{}://{host}{HANDOVER_PATH}?code={code}",
        rd.scheme()
    ))
    .into_response()
}
