//! The admin "Manage apps" page: the catalog with each app's state, versions and how it maps
//! admin rights; install (with a subdomain, confirmed), uninstall (saying what is kept; purge
//! needs the app's name typed), automatic updates on or off, an update taken now. Without a
//! cluster it says so, how to connect one, and which manifests would be applied.

use axum::{
    Form,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use stackspin_catalog::Entry;
use stackspin_storage::{AuditEvent, InstalledApp};

use crate::platform::{self, PlatformError, admin_rights};
use crate::{AppState, admin::require_admin, pages, session};

const PAGE: &str = "/admin/catalog";

/// One catalog app as the page shows it.
pub struct CatalogRow {
    pub name: String,
    pub title: String,
    pub summary: String,
    pub docs: String,
    pub chart: String,
    pub version: String,
    pub default_subdomain: String,
    pub admin_mapped: bool,
    pub admin_how: String,
    pub note: Option<String>,
    pub installed: Option<InstalledApp>,
    pub url: Option<String>,
}

/// The text key of an app's state (`not_installed` or an installed state's name).
fn state_key(state: &str) -> &'static str {
    match state {
        "not_installed" => "msg.admin_catalog.state_not_installed",
        "pending" => "msg.admin_catalog.state_pending",
        "installing" => "msg.admin_catalog.state_installing",
        "ready" => "msg.admin_catalog.state_ready",
        "failed" => "msg.admin_catalog.state_failed",
        "update_pending" => "msg.admin_catalog.state_update_pending",
        "rolled_back" => "msg.admin_catalog.state_rolled_back",
        "restoring" => "msg.admin_catalog.state_restoring",
        _ => "msg.admin_catalog.state_uninstalling",
    }
}

/// An installed app's state in words.
pub(crate) fn state_text(state: stackspin_storage::AppState) -> &'static str {
    crate::texts::t(state_key(state.as_str()))
}

impl CatalogRow {
    pub fn state(&self) -> &'static str {
        match &self.installed {
            None => "not_installed",
            Some(r) if !r.wanted => "uninstalling",
            Some(r) => r.state.as_str(),
        }
    }

    /// The text key of the state.
    pub fn state_key(&self) -> &'static str {
        state_key(self.state())
    }

    pub fn pending(&self) -> Option<&str> {
        self.installed.as_ref()?.pending_version()
    }

    pub fn running(&self) -> &str {
        self.installed
            .as_ref()
            .and_then(|r| r.running_version.as_deref())
            .unwrap_or("-")
    }

    pub fn wanted(&self) -> bool {
        self.installed.as_ref().is_some_and(|r| r.wanted)
    }

    pub fn auto_update(&self) -> bool {
        self.installed.as_ref().is_some_and(|r| r.auto_update)
    }

    pub fn reason(&self) -> &str {
        self.installed.as_ref().map_or("", |r| r.reason.as_str())
    }
}

fn row(state: &AppState, e: &Entry, installed: Option<&InstalledApp>) -> CatalogRow {
    let (admin_mapped, admin_how) = admin_rights(e);
    CatalogRow {
        name: e.name.clone(),
        title: e.title.clone(),
        summary: e.summary.clone(),
        docs: e.docs.clone(),
        chart: e.chart_label(),
        version: e.chart.version.to_string(),
        default_subdomain: e.subdomain.clone(),
        admin_mapped,
        admin_how,
        note: e.note.clone(),
        url: installed.and_then(|r| state.platform.url_of(e, r.subdomain.as_deref())),
        installed: installed.cloned(),
    }
}

pub async fn list(State(state): State<AppState>, jar: CookieJar) -> Response {
    if let Err(resp) = require_admin(&state, &jar, PAGE).await {
        return resp;
    }
    let installed = match state.store.installed_apps().await {
        Ok(r) => r,
        Err(e) => return pages::internal_error(&e),
    };
    let rows: Vec<CatalogRow> = state
        .platform
        .catalog
        .installable()
        .map(|e| row(&state, e, installed.iter().find(|r| r.name == e.name)))
        .collect();
    let wanted: Vec<&str> = installed
        .iter()
        .filter(|r| r.wanted)
        .map(|r| r.name.as_str())
        .collect();
    let manifests = format!(
        "stackspin manifests --domain DOMAIN --ip-address IP --admin-email EMAIL{} --out DIR",
        if wanted.is_empty() {
            String::new()
        } else {
            format!(" --apps {}", wanted.join(","))
        }
    );
    let (jar, csrf) = session::csrf_token(&state, jar);
    let cluster = state.platform.cluster.as_ref().map(|c| c.domain.as_str());
    (
        jar,
        pages::admin_catalog(&csrf, &rows, cluster, platform::HOW_TO_CONNECT, &manifests),
    )
        .into_response()
}

fn entry<'a>(state: &'a AppState, name: &str) -> Option<&'a Entry> {
    state
        .platform
        .catalog
        .installable()
        .find(|e| e.name == name)
}

fn not_in_catalog() -> Response {
    pages::error(
        StatusCode::NOT_FOUND,
        crate::texts::t("msg.admin_catalog.not_in_catalog"),
        crate::texts::t("msg.admin_catalog.not_in_catalog_detail"),
    )
}

#[derive(Deserialize, Default)]
pub struct InstallQuery {
    #[serde(default)]
    subdomain: Option<String>,
}

/// The confirmation before an install: where the app will be.
pub async fn confirm_install(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(name): Path<String>,
    Query(q): Query<InstallQuery>,
) -> Response {
    if let Err(resp) = require_admin(&state, &jar, PAGE).await {
        return resp;
    }
    let Some(e) = entry(&state, &name) else {
        return not_in_catalog();
    };
    // An empty field means the catalog's subdomain, except where the bare domain is allowed
    // and the admin picked it (the "bare" choice).
    let subdomain = q.subdomain.map(|s| s.trim().to_ascii_lowercase());
    let chosen = match subdomain.as_deref() {
        None | Some("") => e.subdomain.clone(),
        Some("@") => String::new(),
        Some(s) => s.to_string(),
    };
    let domain = state
        .platform
        .cluster
        .as_ref()
        .map_or("DOMAIN", |c| c.domain.as_str());
    let host = if chosen.is_empty() {
        domain.to_string()
    } else {
        format!("{chosen}.{domain}")
    };
    let (jar, csrf) = session::csrf_token(&state, jar);
    let question = crate::texts::tf(
        "msg.admin_catalog.install_question",
        [("app", e.title.as_str()), ("host", host.as_str())],
    );
    (
        jar,
        pages::catalog_confirm(pages::CatalogConfirm {
            csrf: &csrf,
            title: &crate::texts::tf("msg.admin_catalog.install_title", [("app", &e.title)]),
            question: &question,
            action: &format!("{PAGE}/{}/install", e.name),
            button: crate::texts::t("msg.admin_catalog.install_button"),
            subdomain: Some(&chosen),
            purge_name: None,
        }),
    )
        .into_response()
}

#[derive(Deserialize, Default)]
pub struct InstallForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    subdomain: String,
}

fn refused(e: PlatformError) -> Response {
    match e {
        PlatformError::Refused(r) => pages::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            crate::texts::t("msg.admin_catalog.refused"),
            &r.to_string(),
        ),
        PlatformError::Storage(s) => pages::internal_error(&s),
    }
}

async fn audit(state: &AppState, admin: &stackspin_domain::User, kind: &str, app: &str) {
    let mut e = AuditEvent::new(kind);
    e.actor = Some(admin.email.to_string());
    e.app = Some(app.to_string());
    state.audit(e).await;
}

pub async fn install(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<InstallForm>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &f.csrf) {
        return pages::form_expired();
    }
    let admin = match require_admin(&state, &jar, PAGE).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let Some(e) = entry(&state, &name) else {
        return not_in_catalog();
    };
    // The catalog's own subdomain is stored as "no choice", so a catalog change moves it.
    let subdomain = (f.subdomain != e.subdomain).then_some(f.subdomain.as_str());
    if let Err(err) = platform::install(&state, &name, subdomain, true).await {
        return refused(err);
    }
    audit(&state, &admin, "app.install", &name).await;
    Redirect::to(PAGE).into_response()
}

/// The confirmation before an uninstall: what is kept, and the purge choice.
pub async fn confirm_uninstall(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(name): Path<String>,
) -> Response {
    if let Err(resp) = require_admin(&state, &jar, PAGE).await {
        return resp;
    }
    let Some(e) = entry(&state, &name) else {
        return not_in_catalog();
    };
    let (jar, csrf) = session::csrf_token(&state, jar);
    let question = crate::texts::tf("msg.admin_catalog.uninstall_question", [("app", &e.title)]);
    (
        jar,
        pages::catalog_confirm(pages::CatalogConfirm {
            csrf: &csrf,
            title: &crate::texts::tf("msg.admin_catalog.uninstall_title", [("app", &e.title)]),
            question: &question,
            action: &format!("{PAGE}/{}/uninstall", e.name),
            button: crate::texts::t("msg.admin_catalog.uninstall_button"),
            subdomain: None,
            purge_name: Some(&e.name),
        }),
    )
        .into_response()
}

#[derive(Deserialize, Default)]
pub struct UninstallForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    purge: Option<String>,
    #[serde(default)]
    confirm_name: String,
}

pub async fn uninstall(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<UninstallForm>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &f.csrf) {
        return pages::form_expired();
    }
    let admin = match require_admin(&state, &jar, PAGE).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let purge = f.purge.is_some();
    // Data goes for good: only when the admin typed the app's name.
    if purge && f.confirm_name.trim() != name {
        return pages::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            crate::texts::t("msg.admin_catalog.refused"),
            &crate::texts::tf("msg.admin_catalog.type_the_name", [("app", &name)]),
        );
    }
    if let Err(e) = state.store.request_uninstall(&name, purge).await {
        return refused(e.into());
    }
    state.platform.wake();
    audit(
        &state,
        &admin,
        if purge { "app.purge" } else { "app.uninstall" },
        &name,
    )
    .await;
    Redirect::to(PAGE).into_response()
}

#[derive(Deserialize, Default)]
pub struct UpdatesForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    auto_update: String,
}

pub async fn set_updates(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<UpdatesForm>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &f.csrf) {
        return pages::form_expired();
    }
    let admin = match require_admin(&state, &jar, PAGE).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let on = f.auto_update == "on";
    if let Err(e) = state.store.set_app_updates(&name, Some(on), false).await {
        return refused(e.into());
    }
    state.platform.wake();
    audit(
        &state,
        &admin,
        if on {
            "app.auto_update_on"
        } else {
            "app.pinned"
        },
        &name,
    )
    .await;
    Redirect::to(PAGE).into_response()
}

pub async fn update_now(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<crate::admin::CsrfOnly>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &f.csrf) {
        return pages::form_expired();
    }
    let admin = match require_admin(&state, &jar, PAGE).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    if let Err(e) = state.store.set_app_updates(&name, None, true).await {
        return refused(e.into());
    }
    state.platform.wake();
    audit(&state, &admin, "app.update", &name).await;
    Redirect::to(PAGE).into_response()
}
