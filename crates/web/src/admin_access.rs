//! The Access page: the roles new people get, apart from a people × apps matrix; a save
//! changes only the cells the admin changed and says how many did.

use axum::{
    Form,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use stackspin_domain::{AppName, Role};
use stackspin_storage::{AuditEvent, UserPageRequest, UserSort};

use crate::admin::{PER_PAGE, parse_user_id, require_admin};
use crate::{AppState, pages, session};

#[derive(Deserialize, Default)]
pub struct AccessQuery {
    page: Option<u32>,
    saved: Option<String>,
}

pub async fn access(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<AccessQuery>,
) -> Response {
    // `saved` is how many roles and defaults changed: "Saved" is said only when something did.
    let notice = q.saved.as_deref().map(|n| match n.parse::<usize>() {
        Ok(0) | Err(_) => (
            crate::texts::t("msg.admin.nothing_changed").to_owned(),
            true,
        ),
        Ok(n) => (
            crate::texts::tn("msg.admin.saved_n_changes", n, crate::texts::NONE),
            true,
        ),
    });
    render_access(
        &state,
        jar,
        q.page.unwrap_or(1).max(1),
        notice,
        StatusCode::OK,
    )
    .await
}

async fn render_access(
    state: &AppState,
    jar: CookieJar,
    page: u32,
    notice: Option<(String, bool)>,
    status: StatusCode,
) -> Response {
    if let Err(resp) = require_admin(state, &jar, "/admin/access").await {
        return resp;
    }
    let built = async {
        let users = state
            .store
            .user_page(&UserPageRequest {
                query: None,
                // People are shown by name, so they are found by name.
                sort: UserSort::Name,
                descending: false,
                page,
                per_page: PER_PAGE,
            })
            .await?;
        let apps = state.store.list_apps().await?;
        let ids: Vec<_> = users.users.iter().map(|u| u.id).collect();
        let roles = state.store.effective_roles(&ids).await?;
        Ok::<_, stackspin_storage::StorageError>((users, apps, roles))
    }
    .await;
    let (users, apps, roles) = match built {
        Ok(b) => b,
        Err(e) => return pages::internal_error(&e),
    };
    let rows = users
        .users
        .iter()
        .map(|u| pages::AccessRow {
            id: u.id.to_string(),
            name: u.name.as_str().to_owned(),
            email: u.email.to_string(),
            cells: apps
                .iter()
                .map(|a| {
                    roles
                        .iter()
                        .find(|(id, app, _)| *id == u.id && *app == a.name)
                        .map_or("none", |(_, _, r)| r.as_str())
                        .to_owned()
                })
                .collect(),
        })
        .collect();
    let view = pages::AccessView {
        apps: apps
            .iter()
            .map(|a| {
                (
                    a.name.to_string(),
                    a.display_name.clone(),
                    a.default_role.as_str().to_owned(),
                )
            })
            .collect(),
        rows,
        page,
        pages: u32::try_from(users.total.div_ceil(u64::from(PER_PAGE)))
            .unwrap_or(u32::MAX)
            .max(1),
        notice,
    };
    let (jar, csrf) = session::csrf_token(state, jar);
    (jar, pages::admin_access(&csrf, &view, status)).into_response()
}

/// The matrix form: `r.<user id>.<app>` with the chosen role, `o.<user id>.<app>` with the role
/// shown when the page was loaded, `d.<app>` with the default role.
pub async fn save_access(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let csrf = form
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    if !session::csrf_ok(&state, &jar, &headers, csrf) {
        return pages::form_expired();
    }
    let admin = match require_admin(&state, &jar, "/admin/access").await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let page: u32 = form
        .iter()
        .find(|(k, _)| k == "page")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(1);
    let original = |user: &str, app: &str| {
        form.iter()
            .find(|(k, _)| *k == format!("o.{user}.{app}"))
            .and_then(|(_, v)| v.parse::<Role>().ok())
    };
    let mut changes = vec![];
    for (key, value) in &form {
        if let Some(rest) = key.strip_prefix("r.") {
            let Some((user, app)) = rest.split_once('.') else {
                continue;
            };
            let (Some(id), Ok(app_name), Ok(role)) = (
                parse_user_id(user),
                AppName::parse(app),
                value.parse::<Role>(),
            ) else {
                continue;
            };
            let before = original(user, app);
            // Only cells the admin changed; the others may have been changed by someone else.
            if before != Some(role) {
                changes.push((id, app_name, before, role));
            }
        }
    }
    let result = state.store.set_roles(&changes).await;
    let changed = match result {
        Ok(c) => c,
        Err(stackspin_storage::StorageError::Conflict(what)) => {
            let msg = crate::texts::tf("msg.admin.access_conflict", [("what", what)]);
            return render_access(&state, jar, page, Some((msg, false)), StatusCode::CONFLICT)
                .await;
        }
        Err(e) => return pages::internal_error(&e),
    };
    let apps = match state.store.list_apps().await {
        Ok(a) => a,
        Err(e) => return pages::internal_error(&e),
    };
    let mut defaults_changed = 0;
    for (key, value) in &form {
        let Some(app) = key.strip_prefix("d.") else {
            continue;
        };
        let (Ok(app), Ok(role)) = (AppName::parse(app), value.parse::<Role>()) else {
            continue;
        };
        let Some(before) = apps.iter().find(|a| a.name == app).map(|a| a.default_role) else {
            continue;
        };
        if before == role {
            continue;
        }
        if let Err(e) = state.store.set_default_role(&app, role).await {
            return pages::internal_error(&e);
        }
        defaults_changed += 1;
        let mut e = AuditEvent::new("app.default_role_changed");
        e.actor = Some(admin.email.to_string());
        e.app = Some(app.to_string());
        e.detail = serde_json::json!({
            "app": app.as_str(),
            "from": before.as_str(),
            "to": role.as_str(),
        });
        state.audit(e).await;
    }
    let saved = changed.len() + defaults_changed;
    state
        .role_changes_done(admin.email.to_string(), &changed)
        .await;
    Redirect::to(&format!("/admin/access?page={page}&saved={saved}")).into_response()
}
