//! The Dashboard's users pages: the table (server-side search, natural sorting, pages and
//! batch actions), adding a person (per-app roles, invitation), editing and deleting. Only
//! admins get past [`require_admin`], which the other admin pages share.

use std::collections::BTreeMap;

use axum::{
    Form,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::CookieJar;
use chrono::Utc;
use serde::Deserialize;
use stackspin_domain::{AppName, Email, NewUser, Role, User, UserName};
use stackspin_storage::{AuditEvent, UserPageRequest, UserSort};

use crate::{AppState, pages, session};

/// The signed-in admin, or the page that refuses everyone else.
pub(crate) async fn require_admin(
    state: &AppState,
    jar: &CookieJar,
    return_to: &str,
) -> Result<User, Response> {
    let (_, user) = session::require(state, jar, return_to).await?;
    if !user.is_admin {
        return Err(pages::error(
            StatusCode::FORBIDDEN,
            crate::texts::t("msg.admin.admins_only"),
            crate::texts::t("msg.admin.this_page_is_for_administrators"),
        ));
    }
    Ok(user)
}

#[derive(Deserialize, Default)]
pub struct UsersQuery {
    q: Option<String>,
    sort: Option<String>,
    order: Option<String>,
    page: Option<u32>,
}

pub const PER_PAGE: u32 = 50;

pub async fn users(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<UsersQuery>,
) -> Response {
    let admin = match require_admin(&state, &jar, "/admin/users").await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let sort = match q.sort.as_deref() {
        Some("name") => UserSort::Name,
        Some("created") => UserSort::Created,
        _ => UserSort::Email,
    };
    let descending = q.order.as_deref() == Some("desc");
    let page = q.page.unwrap_or(1).max(1);
    let query = q.q.clone().filter(|s| !s.trim().is_empty());
    let result = match state
        .store
        .user_page(&UserPageRequest {
            query: query.clone(),
            sort,
            descending,
            page,
            per_page: PER_PAGE,
        })
        .await
    {
        Ok(r) => r,
        Err(e) => return pages::internal_error(&e),
    };
    let apps: Vec<(String, String)> = match state.store.list_apps().await {
        Ok(a) => a
            .into_iter()
            .map(|a| (a.name.to_string(), a.display_name))
            .collect(),
        Err(e) => return pages::internal_error(&e),
    };
    let (jar, notice) = session::take_flash(&state, jar);
    let notice_value = |kind: &str| {
        notice
            .as_ref()
            .filter(|(k, _)| k == kind)
            .map(|(_, v)| v.clone())
    };
    let (jar, csrf) = session::csrf_token(&state, jar);
    let view = pages::UsersView {
        query: query.unwrap_or_default(),
        sort: match sort {
            UserSort::Email => "email",
            UserSort::Name => "name",
            UserSort::Created => "created",
        },
        descending,
        page,
        pages: u32::try_from(result.total.div_ceil(u64::from(PER_PAGE)))
            .unwrap_or(u32::MAX)
            .max(1),
        total: result.total,
        users: result
            .users
            .into_iter()
            .zip(result.details)
            .map(|(user, d)| pages::UserRow {
                user,
                two_step: d.two_step,
                last_sign_in: d
                    .last_login_at
                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_default(),
                apps: d
                    .apps
                    .iter()
                    .map(|name| {
                        apps.iter()
                            .find(|(n, _)| n == name.as_str())
                            .map_or_else(|| name.to_string(), |(_, label)| label.clone())
                    })
                    .collect(),
            })
            .collect(),
        apps,
        created: notice_value("created"),
        created_no_mail: notice_value("created_no_mail"),
        deleted: notice_value("deleted"),
        changed: notice_value("changed").and_then(|n| n.parse().ok()),
        is_admin: admin.is_admin,
    };
    (jar, pages::admin_users(&csrf, &view)).into_response()
}

pub async fn new_user_form(State(state): State<AppState>, jar: CookieJar) -> Response {
    if let Err(resp) = require_admin(&state, &jar, "/admin/users/new").await {
        return resp;
    }
    render_new_user(
        &state,
        jar,
        &NewUserForm::default(),
        &BTreeMap::new(),
        StatusCode::OK,
    )
    .await
}

#[derive(Deserialize, Default)]
pub struct NewUserForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    is_admin: Option<String>,
    #[serde(default)]
    csrf: String,
    /// `role.<app>` fields, one per app.
    #[serde(flatten)]
    roles: BTreeMap<String, String>,
}

async fn render_new_user(
    state: &AppState,
    jar: CookieJar,
    form: &NewUserForm,
    errors: &BTreeMap<&'static str, String>,
    status: StatusCode,
) -> Response {
    let apps = match state.store.list_apps().await {
        Ok(a) => a,
        Err(e) => return pages::internal_error(&e),
    };
    let rows: Vec<(String, String, String)> = apps
        .iter()
        .map(|a| {
            let chosen = form
                .roles
                .get(&format!("role.{}", a.name))
                .cloned()
                .unwrap_or_else(|| a.default_role.as_str().to_owned());
            (a.name.to_string(), a.display_name.clone(), chosen)
        })
        .collect();
    let (jar, csrf) = session::csrf_token(state, jar);
    let view = pages::NewUserView {
        name: form.name.clone(),
        email: form.email.clone(),
        is_admin: form.is_admin.is_some(),
        apps: rows,
        error_name: errors.get("name").cloned(),
        error_email: errors.get("email").cloned(),
        error_roles: errors.get("roles").cloned(),
    };
    (jar, pages::admin_new_user(&csrf, &view, status)).into_response()
}

pub async fn create_user(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<NewUserForm>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &form.csrf) {
        return pages::form_expired();
    }
    let admin = match require_admin(&state, &jar, "/admin/users/new").await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let mut errors = BTreeMap::new();
    let email = Email::parse(&form.email)
        .map_err(|e| errors.insert("email", crate::problems::email(&e).to_owned()))
        .ok();
    let name = UserName::parse(&form.name)
        .map_err(|e| errors.insert("name", crate::problems::name(&e).to_owned()))
        .ok();
    let mut roles = vec![];
    for (key, value) in &form.roles {
        let Some(app) = key.strip_prefix("role.") else {
            continue;
        };
        match (AppName::parse(app), value.parse::<Role>()) {
            (Ok(app), Ok(role)) => roles.push((app, role)),
            _ => {
                errors.insert("roles", format!("invalid role {value:?} for {app}"));
            }
        }
    }
    let (Some(email), Some(name)) = (email, name) else {
        return render_new_user(
            &state,
            jar,
            &form,
            &errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    if !errors.is_empty() {
        return render_new_user(
            &state,
            jar,
            &form,
            &errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let new = NewUser {
        email,
        name,
        password_hash: None,
        is_admin: form.is_admin.is_some(),
    };
    let (link, mail) = crate::admin_links::new_invitation(&state, &new).await;
    let created = state.store.invite_user(&new, &roles, &link, &mail).await;
    let user = match created {
        Ok(u) => u,
        Err(stackspin_storage::StorageError::DuplicateEmail(_)) => {
            errors.insert("email", crate::texts::t("msg.admin.email_taken").to_owned());
            return render_new_user(&state, jar, &form, &errors, StatusCode::CONFLICT).await;
        }
        Err(e) => return pages::internal_error(&e),
    };
    state.mail_wake.notify_one();
    let mut e = AuditEvent::new("user.created");
    e.actor = Some(admin.email.to_string());
    e.user_id = Some(user.id.0);
    e.user_email = Some(user.email.to_string());
    state.audit(e).await;
    // Say the truth about the invitation: without outgoing mail it went nowhere.
    let key = if state.mailer.is_some() {
        "created"
    } else {
        "created_no_mail"
    };
    let jar = session::flash(&state, jar, key, user.email.as_str());
    (jar, Redirect::to("/admin/users")).into_response()
}

pub(crate) fn parse_user_id(id: &str) -> Option<stackspin_domain::UserId> {
    uuid::Uuid::parse_str(id).ok().map(stackspin_domain::UserId)
}

pub(crate) async fn load_user(state: &AppState, id: &str) -> Result<User, Response> {
    let missing = || {
        pages::error(
            StatusCode::NOT_FOUND,
            crate::texts::t("msg.admin.no_such_user"),
            crate::texts::t("msg.admin.this_user_does_not_exist"),
        )
    };
    let Some(id) = parse_user_id(id) else {
        return Err(missing());
    };
    match state.store.user_by_id(id).await {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(missing()),
        Err(e) => Err(pages::internal_error(&e)),
    }
}

#[derive(Deserialize, Default)]
pub struct EditQuery {
    saved: Option<String>,
}

pub async fn edit_user_form(
    State(state): State<AppState>,
    jar: CookieJar,
    axum::extract::Path(id): axum::extract::Path<String>,
    Query(q): Query<EditQuery>,
) -> Response {
    if let Err(resp) = require_admin(&state, &jar, "/admin/users").await {
        return resp;
    }
    let user = match load_user(&state, &id).await {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    let notice = q
        .saved
        .is_some()
        .then_some((crate::texts::t("msg.admin.saved"), true));
    render_edit(
        &state,
        jar,
        &user,
        None,
        &BTreeMap::new(),
        notice,
        StatusCode::OK,
    )
    .await
}

/// The edit form with stored values and a notice (after sending a link, say).
pub(crate) async fn render_edit_with(
    state: &AppState,
    jar: CookieJar,
    user: &User,
    notice: Option<(&str, bool)>,
    status: StatusCode,
) -> Response {
    render_edit(state, jar, user, None, &BTreeMap::new(), notice, status).await
}

/// What became of the last mail to someone, in words, and whether that is good news.
fn mail_state(m: &stackspin_storage::MailStatus) -> (String, bool) {
    let at = |t: &chrono::DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    let error = m.last_error.clone().unwrap_or_default();
    let tries = usize::try_from(m.attempts).unwrap_or_default();
    if let Some(sent) = &m.sent_at {
        let text = crate::texts::tf(
            "admin_edit_user.mail_sent",
            [("subject", m.subject.as_str()), ("at", &at(sent))],
        );
        return (text, true);
    }
    if m.gave_up_at.is_some() {
        let text = crate::texts::tn(
            "admin_edit_user.mail_gave_up",
            tries,
            [("subject", m.subject.as_str()), ("error", &error)],
        );
        return (text, false);
    }
    if m.attempts > 0 {
        let text = crate::texts::tn(
            "admin_edit_user.mail_retrying",
            tries,
            [
                ("subject", m.subject.as_str()),
                ("error", &error),
                ("at", &at(&m.next_attempt_at)),
            ],
        );
        return (text, false);
    }
    let text = crate::texts::tf(
        "admin_edit_user.mail_queued",
        [("subject", m.subject.as_str()), ("at", &at(&m.queued_at))],
    );
    (text, true)
}

/// The edit form, either with the stored values or with what the admin typed (`typed`).
async fn render_edit(
    state: &AppState,
    jar: CookieJar,
    user: &User,
    typed: Option<&EditForm>,
    errors: &BTreeMap<&'static str, String>,
    notice: Option<(&str, bool)>,
    status: StatusCode,
) -> Response {
    let roles = match state.store.roles_of(user.id).await {
        Ok(r) => r,
        Err(e) => return pages::internal_error(&e),
    };
    let apps = match state.store.list_apps().await {
        Ok(a) => a,
        Err(e) => return pages::internal_error(&e),
    };
    let rows = apps
        .iter()
        .map(|a| {
            let stored = roles
                .iter()
                .find(|(n, _)| *n == a.name)
                .map(|(_, r)| r.as_str())
                .unwrap_or("none");
            let chosen = typed
                .and_then(|t| t.roles.get(&format!("role.{}", a.name)).cloned())
                .unwrap_or_else(|| stored.to_owned());
            (a.name.to_string(), a.display_name.clone(), chosen)
        })
        .collect();
    let last_mail = match state.store.last_mail_to(user.email.as_str()).await {
        Ok(m) => m.map(|m| mail_state(&m)),
        Err(e) => return pages::internal_error(&e),
    };
    let view = pages::EditUserView {
        last_mail,
        id: user.id.to_string(),
        name: typed.map_or_else(|| user.name.as_str().to_owned(), |t| t.name.clone()),
        email: typed.map_or_else(|| user.email.to_string(), |t| t.email.clone()),
        is_admin: typed.map_or(user.is_admin, |t| t.is_admin.is_some()),
        version: user.updated_at.to_rfc3339(),
        apps: rows,
        error_name: errors.get("name").cloned(),
        error_email: errors.get("email").cloned(),
        notice: notice.map(|(m, good)| (m.to_owned(), good)),
        has_password: user.has_password(),
        mail_on: state.mailer.is_some(),
    };
    let (jar, csrf) = session::csrf_token(state, jar);
    (jar, pages::admin_edit_user(&csrf, &view, status)).into_response()
}

#[derive(Deserialize, Default)]
pub struct EditForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    is_admin: Option<String>,
    #[serde(default)]
    version: String,
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    roles: BTreeMap<String, String>,
}

pub async fn edit_user(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    Form(form): Form<EditForm>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &form.csrf) {
        return pages::form_expired();
    }
    let admin = match require_admin(&state, &jar, "/admin/users").await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let user = match load_user(&state, &id).await {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    let mut errors = BTreeMap::new();
    let email = Email::parse(&form.email)
        .map_err(|e| errors.insert("email", crate::problems::email(&e).to_owned()))
        .ok();
    let name = UserName::parse(&form.name)
        .map_err(|e| errors.insert("name", crate::problems::name(&e).to_owned()))
        .ok();
    let roles: Vec<(AppName, Role)> = form
        .roles
        .iter()
        .filter_map(|(k, v)| {
            Some((
                AppName::parse(k.strip_prefix("role.")?).ok()?,
                v.parse().ok()?,
            ))
        })
        .collect();
    let expected =
        chrono::DateTime::parse_from_rfc3339(&form.version).map(|t| t.with_timezone(&Utc));
    let (Some(email), Some(name), Ok(expected)) = (email, name, expected) else {
        return render_edit(
            &state,
            jar,
            &user,
            Some(&form),
            &errors,
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let patch = stackspin_storage::UserPatch {
        email: Some(email),
        name: Some(name),
        is_admin: Some(form.is_admin.is_some()),
    };
    match state
        .store
        .update_user_and_roles(user.id, expected, &patch, &roles)
        .await
    {
        Ok((updated, changes)) => {
            let mut e = AuditEvent::new("user.updated");
            e.actor = Some(admin.email.to_string());
            e.user_id = Some(updated.id.0);
            e.user_email = Some(updated.email.to_string());
            state.audit(e).await;
            state
                .role_changes_done(admin.email.to_string(), &changes)
                .await;
            Redirect::to(&format!("/admin/users/{}?saved=1", updated.id)).into_response()
        }
        Err(stackspin_storage::StorageError::Conflict(_)) => {
            // Show what is stored now, so the admin can redo their change on top of it.
            let fresh = match load_user(&state, &id).await {
                Ok(u) => u,
                Err(resp) => return resp,
            };
            render_edit(
                &state,
                jar,
                &fresh,
                None,
                &errors,
                Some((
                    crate::texts::t("msg.admin.someone_else_changed_this_user"),
                    false,
                )),
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(stackspin_storage::StorageError::DuplicateEmail(_)) => {
            errors.insert("email", "another user has this email".into());
            render_edit(
                &state,
                jar,
                &user,
                Some(&form),
                &errors,
                None,
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(stackspin_storage::StorageError::LastAdmin(_)) => {
            render_edit(
                &state,
                jar,
                &user,
                Some(&form),
                &errors,
                Some((crate::texts::t("msg.admin.this_is_the_last_admin"), false)),
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(e) => pages::internal_error(&e),
    }
}

pub async fn delete_user_confirm(
    State(state): State<AppState>,
    jar: CookieJar,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let admin = match require_admin(&state, &jar, "/admin/users").await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let user = match load_user(&state, &id).await {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    if user.id == admin.id {
        return own_account();
    }
    let (jar, csrf) = session::csrf_token(&state, jar);
    let question = crate::texts::tf(
        "msg.admin.delete_user_question",
        [("name", user.name.as_str()), ("email", user.email.as_str())],
    );
    (
        jar,
        pages::confirm(
            &csrf,
            crate::texts::t("msg.admin.delete_user"),
            &question,
            &format!("/admin/users/{}/delete", user.id),
            crate::texts::t("msg.admin.delete_button"),
            &format!("/admin/users/{}", user.id),
        ),
    )
        .into_response()
}

pub async fn delete_user(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &form.csrf) {
        return pages::form_expired();
    }
    let admin = match require_admin(&state, &jar, "/admin/users").await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let user = match load_user(&state, &id).await {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    if user.id == admin.id {
        return own_account();
    }
    match state.store.delete_user(&user.email).await {
        Ok(deleted) => {
            state.outbox_wake.notify_one();
            let mut e = AuditEvent::new("user.deleted");
            e.actor = Some(admin.email.to_string());
            e.user_id = Some(deleted.id.0);
            e.user_email = Some(deleted.email.to_string());
            state.audit(e).await;
            let jar = session::flash(&state, jar, "deleted", deleted.email.as_str());
            (jar, Redirect::to("/admin/users")).into_response()
        }
        Err(stackspin_storage::StorageError::LastAdmin(_)) => pages::error(
            StatusCode::CONFLICT,
            crate::texts::t("msg.admin.cannot_delete_the_last_admin"),
            crate::texts::t("msg.admin.make_someone_else_an_admin"),
        ),
        Err(e) => pages::internal_error(&e),
    }
}

/// Who a batch would touch, by name and address, for its confirmation.
async fn batch_names(state: &AppState, ids: &[stackspin_domain::UserId]) -> Vec<String> {
    let mut names = vec![];
    for id in ids {
        if let Ok(Some(u)) = state.store.user_by_id(*id).await {
            names.push(format!("{} <{}>", u.name.as_str(), u.email));
        }
    }
    names
}

/// Refuses an admin's deletion of their own account: one click from locking the organisation
/// out, and never what a batch meant. Another admin can do it.
fn own_account() -> Response {
    pages::error_back(
        StatusCode::CONFLICT,
        crate::texts::t("msg.admin.cannot_delete_yourself"),
        crate::texts::t("msg.admin.another_admin_can_delete_you"),
        "/admin/users",
    )
}

/// A form whose only field is its CSRF token (confirmations).
#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    pub(crate) csrf: String,
}

/// The ids of every user matching the users list's search (all users for an empty one).
async fn all_matching(
    state: &AppState,
    query: &str,
) -> Result<Vec<stackspin_domain::UserId>, stackspin_storage::StorageError> {
    let query = Some(query.to_owned()).filter(|q| !q.trim().is_empty());
    let mut ids = vec![];
    for page in 1.. {
        let batch = state
            .store
            .user_page(&UserPageRequest {
                query: query.clone(),
                sort: UserSort::Email,
                descending: false,
                page,
                per_page: 500,
            })
            .await?;
        let done = batch.users.len() < 500;
        ids.extend(batch.users.into_iter().map(|u| u.id));
        if done {
            break;
        }
    }
    Ok(ids)
}

/// The users table's batch form: selected `ids`, an `action` (delete | role), and for a role
/// change the `app` and `role`.
pub async fn batch(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    if !session::csrf_ok(&state, &jar, &headers, get("csrf")) {
        return pages::form_expired();
    }
    let admin = match require_admin(&state, &jar, "/admin/users").await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let ids: Vec<_> = if get("scope") == "all" {
        // "Select all" without script: every user the list shows, on every page. One's
        // own account is left out of a deletion rather than refusing the whole of it.
        match all_matching(&state, get("q")).await {
            Ok(all) => all
                .into_iter()
                .filter(|id| !(get("action") == "delete" && *id == admin.id))
                .collect(),
            Err(e) => return pages::internal_error(&e),
        }
    } else {
        form.iter()
            .filter(|(k, _)| k == "ids")
            .filter_map(|(_, v)| parse_user_id(v))
            .collect()
    };
    if ids.is_empty() {
        return pages::error_back(
            StatusCode::UNPROCESSABLE_ENTITY,
            crate::texts::t("msg.admin.nothing_selected"),
            crate::texts::t("msg.admin.select_one_or_more_users"),
            "/admin/users",
        );
    }
    if get("action") == "delete" && ids.contains(&admin.id) {
        return own_account();
    }
    match get("action") {
        "delete" if get("confirm") == "yes" => match state.store.delete_users(&ids).await {
            Ok(deleted) => {
                state.outbox_wake.notify_one();
                for u in &deleted {
                    let mut e = AuditEvent::new("user.deleted");
                    e.actor = Some(admin.email.to_string());
                    e.user_id = Some(u.id.0);
                    e.user_email = Some(u.email.to_string());
                    state.audit(e).await;
                }
                let what =
                    crate::texts::tn("admin_users.n_users", deleted.len(), crate::texts::NONE);
                let jar = session::flash(&state, jar, "deleted", &what);
                (jar, Redirect::to("/admin/users")).into_response()
            }
            Err(stackspin_storage::StorageError::LastAdmin(_)) => pages::error(
                StatusCode::CONFLICT,
                crate::texts::t("msg.admin.cannot_delete_every_admin"),
                crate::texts::t("msg.admin.the_selection_includes_every_admin"),
            ),
            Err(e) => pages::internal_error(&e),
        },
        "delete" => {
            // Ask first, listing who would go.
            let names = batch_names(&state, &ids).await;
            let (jar, csrf) = session::csrf_token(&state, jar);
            (
                jar,
                pages::batch_confirm(
                    &csrf,
                    &ids.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
                    &names,
                    None,
                ),
            )
                .into_response()
        }
        "role" => {
            let (Ok(app), Ok(role)) = (AppName::parse(get("app")), get("role").parse::<Role>())
            else {
                return pages::error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    crate::texts::t("msg.admin.choose_an_app_and_a"),
                    crate::texts::t("msg.admin.pick_the_app_and_the"),
                );
            };
            if role == Role::Admin && get("confirm") != "yes" {
                // Admin of an app sees and changes what everyone keeps there: ask first.
                let label = state
                    .store
                    .app_by_name(&app)
                    .await
                    .ok()
                    .flatten()
                    .map(|a| a.display_name.clone())
                    .unwrap_or_else(|| app.to_string());
                let names = batch_names(&state, &ids).await;
                let (jar, csrf) = session::csrf_token(&state, jar);
                return (
                    jar,
                    pages::batch_confirm(
                        &csrf,
                        &ids.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
                        &names,
                        Some((app.as_str(), &label)),
                    ),
                )
                    .into_response();
            }
            let changes: Vec<_> = ids
                .iter()
                .map(|id| (*id, app.clone(), None, role))
                .collect();
            match state.store.set_roles(&changes).await {
                Ok(changed) => {
                    let n = changed.len();
                    state
                        .role_changes_done(admin.email.to_string(), &changed)
                        .await;
                    let jar = session::flash(&state, jar, "changed", &n.to_string());
                    (jar, Redirect::to("/admin/users")).into_response()
                }
                Err(stackspin_storage::StorageError::AppNotFound(a)) => pages::error(
                    StatusCode::NOT_FOUND,
                    crate::texts::t("msg.admin.no_such_app"),
                    &crate::texts::tf("msg.admin.no_app_named", [("app", a)]),
                ),
                Err(e) => pages::internal_error(&e),
            }
        }
        _ => pages::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            crate::texts::t("msg.admin.choose_an_action"),
            crate::texts::t("msg.admin.pick_what_to_do_with"),
        ),
    }
}
