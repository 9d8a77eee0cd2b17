//! `/api/v1/users`: list, create (with invitation), show, edit, delete, per-app roles.

use std::collections::BTreeMap;

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use stackspin_domain::{AppName, Email, NewUser, Role, User, UserId, UserName};
use stackspin_storage::{UserPageRequest, UserPatch, UserSort};
use uuid::Uuid;

use super::{Admin, ApiError};
use crate::AppState;

fn user_json(u: &User, roles: Option<&[(AppName, Role)]>) -> Value {
    let mut v = json!({
        "id": u.id.to_string(),
        "email": u.email.as_str(),
        "name": u.name.as_str(),
        "is_admin": u.is_admin,
        "has_password": u.has_password(),
        "created_at": u.created_at.to_rfc3339(),
        "updated_at": u.updated_at.to_rfc3339(),
        // The version to send back when editing (optimistic concurrency).
        "version": u.updated_at.to_rfc3339(),
    });
    if let Some(roles) = roles {
        let map: BTreeMap<&str, &str> = roles
            .iter()
            .map(|(a, r)| (a.as_str(), r.as_str()))
            .collect();
        v["roles"] = json!(map);
    }
    v
}

#[derive(Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    page: Option<u32>,
    per_page: Option<u32>,
    sort: Option<String>,
    order: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    super::extract::ApiQuery(q): super::extract::ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let sort = match q.sort.as_deref() {
        None | Some("email") => UserSort::Email,
        Some("name") => UserSort::Name,
        Some("created_at") => UserSort::Created,
        Some(other) => {
            return Err(ApiError::invalid(vec![(
                "sort",
                format!("unknown sort {other:?}: use email, name or created_at"),
            )]));
        }
    };
    let descending = match q.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(ApiError::invalid(vec![(
                "order",
                format!("unknown order {other:?}: use asc or desc"),
            )]));
        }
    };
    let (page, per_page) = super::extract::paging(q.page, q.per_page)?;
    let result = state
        .store
        .user_page(&UserPageRequest {
            query: q.q,
            sort,
            descending,
            page,
            per_page,
        })
        .await?;
    Ok(Json(json!({
        "users": result
            .users
            .iter()
            .zip(&result.details)
            .map(|(u, d)| {
                let mut v = user_json(u, None);
                v["two_step"] = d.two_step.into();
                v["last_login_at"] = d.last_login_at.map(|t| t.to_rfc3339()).into();
                v["apps"] = d.apps.iter().map(|a| a.as_str()).collect::<Vec<_>>().into();
                v
            })
            .collect::<Vec<_>>(),
        "total": result.total,
        "page": page,
        "per_page": per_page,
    })))
}

#[derive(Deserialize)]
pub struct CreateBody {
    email: Option<String>,
    name: Option<String>,
    #[serde(default)]
    is_admin: bool,
    #[serde(default)]
    roles: BTreeMap<String, String>,
    /// Set a password at once instead of mailing an invitation (the CLI's `--password-stdin`
    /// for API clients; `stackspin test` makes its throw-away user so).
    #[serde(default)]
    password: Option<String>,
}

/// Parses per-app roles, collecting every problem for the `roles` field.
fn parse_roles(raw: &BTreeMap<String, String>) -> Result<Vec<(AppName, Role)>, String> {
    raw.iter()
        .map(|(app, role)| {
            let app = AppName::parse(app).map_err(|e| e.to_string())?;
            let role: Role = role
                .parse()
                .map_err(|e: stackspin_domain::role::RoleError| e.to_string())?;
            Ok((app, role))
        })
        .collect()
}

pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    super::extract::ApiJson(b): super::extract::ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let mut errors = vec![];
    let email = match Email::parse(b.email.as_deref().unwrap_or_default()) {
        Ok(e) => Some(e),
        Err(e) => {
            errors.push(("email", e.to_string()));
            None
        }
    };
    let name = match UserName::parse(b.name.as_deref().unwrap_or_default()) {
        Ok(n) => Some(n),
        Err(e) => {
            errors.push(("name", e.to_string()));
            None
        }
    };
    let roles = parse_roles(&b.roles)
        .map_err(|e| errors.push(("roles", e)))
        .ok();
    let personal = crate::problems::personal(
        b.email.as_deref().unwrap_or_default(),
        b.name.as_deref().unwrap_or_default(),
    );
    let password = match b
        .password
        .as_deref()
        .map(|p| stackspin_domain::password::Password::new_for(p, &personal))
    {
        None => Some(None),
        Some(Ok(p)) => Some(Some(p)),
        Some(Err(e)) => {
            errors.push(("password", e.to_string()));
            None
        }
    };
    let (Some(email), Some(name), Some(roles), Some(password)) = (email, name, roles, password)
    else {
        return Err(ApiError::invalid(errors));
    };
    if let Some(password) = password {
        let Some(hash) = state.hash_password(password).await else {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many passwords are being checked; try again",
            ));
        };
        let user = state
            .store
            .create_user_with_roles(
                &NewUser {
                    email,
                    name,
                    password_hash: Some(hash),
                    is_admin: b.is_admin,
                },
                &roles,
            )
            .await?;
        let mut e = admin.event("user.created");
        e.user_id = Some(user.id.0);
        e.user_email = Some(user.email.to_string());
        e.detail = json!({"password": "set by the admin"});
        state.audit(e).await;
        let roles = state.store.roles_of(user.id).await?;
        return Ok((StatusCode::CREATED, Json(user_json(&user, Some(&roles)))).into_response());
    }
    let new = NewUser {
        email,
        name,
        password_hash: None,
        is_admin: b.is_admin,
    };
    let (link, mail) = crate::admin_links::new_invitation(&state, &new).await;
    let user = state.store.invite_user(&new, &roles, &link, &mail).await?;
    state.mail_wake.notify_one();
    let mut e = admin.event("user.created");
    e.user_id = Some(user.id.0);
    e.user_email = Some(user.email.to_string());
    state.audit(e).await;
    let roles = state.store.roles_of(user.id).await?;
    let mut body = user_json(&user, Some(&roles));
    // Said plainly so the Dashboard can warn when mail cannot go out now.
    body["invitation"] = json!(if state.mailer.is_some() {
        "queued"
    } else {
        "queued; outgoing mail is not configured"
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

fn parse_id(id: &str) -> Result<UserId, ApiError> {
    Uuid::parse_str(id).map(UserId).map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no user with id {id}"),
        )
    })
}

async fn load(state: &AppState, id: &str) -> Result<User, ApiError> {
    let id = parse_id(id)?;
    state.store.user_by_id(id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no user with id {id}"),
        )
    })
}

pub async fn show(
    State(state): State<AppState>,
    _admin: Admin,
    super::extract::ApiPath(id): super::extract::ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let user = load(&state, &id).await?;
    let roles = state.store.roles_of(user.id).await?;
    Ok(Json(user_json(&user, Some(&roles))))
}

#[derive(Deserialize)]
pub struct PatchBody {
    email: Option<String>,
    name: Option<String>,
    is_admin: Option<bool>,
    version: Option<String>,
}

pub async fn update(
    State(state): State<AppState>,
    admin: Admin,
    super::extract::ApiPath(id): super::extract::ApiPath<String>,
    headers: HeaderMap,
    super::extract::ApiJson(b): super::extract::ApiJson<PatchBody>,
) -> Result<Json<Value>, ApiError> {
    let user = load(&state, &id).await?;
    // The version the editor saw: from If-Match or the body. Without it we cannot tell
    // whether someone else changed the user meanwhile, so it is required.
    let version = headers
        .get("if-match")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_matches('"').to_owned())
        .or(b.version);
    let Some(version) = version else {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_REQUIRED,
            "version_required",
            "send the version you edited (If-Match or \"version\")",
        ));
    };
    let expected: DateTime<Utc> = DateTime::parse_from_rfc3339(&version)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::invalid(vec![("version", "not a version this server issued".into())])
        })?;
    let mut errors = vec![];
    let email = b
        .email
        .as_deref()
        .map(Email::parse)
        .transpose()
        .map_err(|e| errors.push(("email", e.to_string())))
        .ok()
        .flatten();
    let name = b
        .name
        .as_deref()
        .map(UserName::parse)
        .transpose()
        .map_err(|e| errors.push(("name", e.to_string())))
        .ok()
        .flatten();
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let demoted = user.is_admin && b.is_admin == Some(false);
    let updated = state
        .store
        .update_user(
            user.id,
            expected,
            &UserPatch {
                email,
                name,
                is_admin: b.is_admin,
            },
        )
        .await?;
    let mut e = admin.event(if demoted {
        "user.demoted"
    } else {
        "user.updated"
    });
    e.user_id = Some(updated.id.0);
    e.user_email = Some(updated.email.to_string());
    state.audit(e).await;
    let roles = state.store.roles_of(updated.id).await?;
    Ok(Json(user_json(&updated, Some(&roles))))
}

pub async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    super::extract::ApiPath(id): super::extract::ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let user = load(&state, &id).await?;
    if user.id == admin.0.user.id {
        return Err(own_account());
    }
    let deleted = state.store.delete_user(&user.email).await?;
    // Deleting ends the person's app sessions: tell the apps now.
    state.outbox_wake.notify_one();
    let mut e = admin.event("user.deleted");
    e.user_id = Some(deleted.id.0);
    e.user_email = Some(deleted.email.to_string());
    state.audit(e).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct RoleBody {
    role: String,
}

pub async fn set_role(
    State(state): State<AppState>,
    admin: Admin,
    super::extract::ApiPath((id, app)): super::extract::ApiPath<(String, String)>,
    super::extract::ApiJson(b): super::extract::ApiJson<RoleBody>,
) -> Result<Json<Value>, ApiError> {
    let user = load(&state, &id).await?;
    let app = AppName::parse(&app)
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()))?;
    let role: Role = b
        .role
        .parse()
        .map_err(|e: stackspin_domain::role::RoleError| {
            ApiError::invalid(vec![("role", e.to_string())])
        })?;
    let change = state.store.set_role(&user.email, &app, role).await?;
    state.outbox_wake.notify_one();
    let mut e = admin.event("role.changed");
    e.user_id = Some(user.id.0);
    e.user_email = Some(user.email.to_string());
    e.app = Some(app.to_string());
    e.detail = json!({ "previous": change.previous, "role": change.role });
    state.audit(e).await;
    Ok(Json(
        json!({ "user": user.id.to_string(), "app": app.as_str(), "role": change.role, "previous": change.previous }),
    ))
}

#[derive(Deserialize)]
pub struct BatchBody {
    /// `delete` or `set_role`.
    action: String,
    ids: Vec<String>,
    app: Option<String>,
    role: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkBody {
    /// Mail the link (the default) or return it to hand over.
    #[serde(default = "mail_by_default")]
    mail: bool,
}

fn mail_by_default() -> bool {
    true
}

/// A fresh invitation (someone who never chose a password) or password reset link: mailed,
/// or returned once to hand over when mail is off or does not arrive. Audited either way.
pub async fn link(
    State(state): State<AppState>,
    admin: Admin,
    super::extract::ApiPath(id): super::extract::ApiPath<String>,
    super::extract::ApiJson(b): super::extract::ApiJson<LinkBody>,
) -> Result<Json<Value>, ApiError> {
    use crate::admin_links::{Delivery, IssueError, issue};
    let user = load(&state, &id).await?;
    let delivery = if b.mail {
        Delivery::Mail
    } else {
        Delivery::Handover
    };
    match issue(&state, &user, delivery, &admin.actor()).await {
        Ok(i) => Ok(Json(json!({
            "purpose": i.purpose.as_str(),
            "mailed": b.mail,
            "link": i.link,
            "expires_at": i.expires_at.to_rfc3339(),
        }))),
        Err(IssueError::NoMail) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "mail_off",
            "outgoing mail is not set up; ask for a link to hand over with \"mail\": false",
        )),
        Err(IssueError::Storage(e)) => Err(e.into()),
    }
}

/// An admin deleting their own account would be one click from locking the organisation out
/// (and it is never what a batch meant); another admin can do it.
fn own_account() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "own_account",
        "you cannot delete your own account; another admin can",
    )
}

/// The users page's batch actions: delete many, or give many one role in an app. All or
/// nothing: an unknown id, an unknown app or removing every admin changes nobody.
pub async fn batch(
    State(state): State<AppState>,
    admin: Admin,
    super::extract::ApiJson(b): super::extract::ApiJson<BatchBody>,
) -> Result<Json<Value>, ApiError> {
    if b.ids.is_empty() {
        return Err(ApiError::invalid(vec![(
            "ids",
            "select one or more users".into(),
        )]));
    }
    if b.ids.len() > 1000 {
        return Err(ApiError::invalid(vec![(
            "ids",
            "at most 1000 users at a time".into(),
        )]));
    }
    let ids = b
        .ids
        .iter()
        .map(|id| parse_id(id))
        .collect::<Result<Vec<_>, _>>()?;
    match b.action.as_str() {
        "delete" => {
            if ids.contains(&admin.0.user.id) {
                return Err(own_account());
            }
            for id in &ids {
                if state.store.user_by_id(*id).await?.is_none() {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        format!("no user with id {id}"),
                    ));
                }
            }
            let deleted = state.store.delete_users(&ids).await?;
            state.outbox_wake.notify_one();
            for u in &deleted {
                let mut e = admin.event("user.deleted");
                e.user_id = Some(u.id.0);
                e.user_email = Some(u.email.to_string());
                state.audit(e).await;
            }
            Ok(Json(json!({
                "deleted": deleted.iter().map(|u| u.id.to_string()).collect::<Vec<_>>(),
            })))
        }
        "set_role" => {
            let mut errors = vec![];
            let app = match b.app.as_deref().map(AppName::parse) {
                Some(Ok(a)) => Some(a),
                Some(Err(e)) => {
                    errors.push(("app", e.to_string()));
                    None
                }
                None => {
                    errors.push(("app", "choose an app".to_owned()));
                    None
                }
            };
            let role = match b.role.as_deref().map(str::parse::<Role>) {
                Some(Ok(r)) => Some(r),
                Some(Err(e)) => {
                    errors.push(("role", e.to_string()));
                    None
                }
                None => {
                    errors.push(("role", "choose admin, user or none".to_owned()));
                    None
                }
            };
            let (Some(app), Some(role)) = (app, role) else {
                return Err(ApiError::invalid(errors));
            };
            let changes: Vec<_> = ids
                .iter()
                .map(|id| (*id, app.clone(), None, role))
                .collect();
            let changed = state.store.set_roles(&changes).await?;
            state.role_changes_done(admin.actor(), &changed).await;
            Ok(Json(json!({
                "changed": changed.iter().map(|c| c.user.id.to_string()).collect::<Vec<_>>(),
            })))
        }
        other => Err(ApiError::invalid(vec![(
            "action",
            format!("unknown action {other:?}: use delete or set_role"),
        )])),
    }
}

#[derive(Deserialize)]
pub struct AccessQuery {
    page: Option<u32>,
    per_page: Option<u32>,
}

/// The access matrix: each app with its default role, and a page of users (by email) with
/// their effective role in every app.
pub async fn access(
    State(state): State<AppState>,
    _admin: Admin,
    super::extract::ApiQuery(q): super::extract::ApiQuery<AccessQuery>,
) -> Result<Json<Value>, ApiError> {
    let (page, per_page) = super::extract::paging(q.page, q.per_page)?;
    let users = state
        .store
        .user_page(&UserPageRequest {
            query: None,
            sort: UserSort::Email,
            descending: false,
            page,
            per_page,
        })
        .await?;
    let apps = state.store.list_apps().await?;
    let ids: Vec<_> = users.users.iter().map(|u| u.id).collect();
    let roles = state.store.effective_roles(&ids).await?;
    let rows: Vec<Value> = users
        .users
        .iter()
        .map(|u| {
            let map: BTreeMap<&str, &str> = roles
                .iter()
                .filter(|(id, _, _)| *id == u.id)
                .map(|(_, a, r)| (a.as_str(), r.as_str()))
                .collect();
            json!({ "id": u.id.to_string(), "email": u.email.as_str(), "roles": map })
        })
        .collect();
    Ok(Json(json!({
        "apps": apps.iter().map(|a| json!({ "name": a.name.as_str(), "display_name": a.display_name, "default_role": a.default_role })).collect::<Vec<_>>(),
        "users": rows,
        "total": users.total,
        "page": page,
        "per_page": per_page,
    })))
}
