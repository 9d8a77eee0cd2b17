//! The admin "Backups" page: the last nightly backup and its result, the next run, every
//! backup with its size and contents, "Back up now"; per app "Restore…" with the backups that
//! hold it, a warning that its current data is replaced (and kept in a named safety backup),
//! and the restore's progress step by step. Like the rest of the Dashboard, it records
//! requests and wakes the operator; it never talks to the cluster itself.

use askama::Template;
use axum::{
    Form,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::CookieJar;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use stackspin_storage::{
    AuditEvent, Backup, BackupPhase, BackupReason, Drill, DrillState, Restore, RestoreState,
    RestoreStep,
};

use crate::texts;
use crate::{AppState, admin::require_admin, pages, session};

const PAGE: &str = "/admin/backups";

/// A backup as a row of the page.
pub struct BackupRow {
    pub b: Backup,
}

impl BackupRow {
    pub fn of(&self) -> String {
        self.b
            .app
            .clone()
            .unwrap_or_else(|| texts::t("admin_backups.whole_platform").to_string())
    }

    pub fn reason(&self) -> &'static str {
        match self.b.reason {
            BackupReason::Scheduled => texts::t("admin_backups.reason_scheduled"),
            BackupReason::Manual => texts::t("admin_backups.reason_manual"),
            BackupReason::Safety => texts::t("admin_backups.reason_safety"),
            BackupReason::Update => texts::t("admin_backups.reason_update"),
            BackupReason::Drill => texts::t("admin_backups.reason_drill"),
        }
    }

    pub fn phase(&self) -> &'static str {
        phase_text(self.b.phase)
    }

    pub fn phase_class(&self) -> &'static str {
        match self.b.phase {
            BackupPhase::Completed => "ok",
            BackupPhase::Failed | BackupPhase::PartiallyFailed => "warn",
            _ => "",
        }
    }

    pub fn size(&self) -> String {
        stackspin_domain::size::human_bytes(self.b.bytes)
    }

    pub fn made(&self) -> String {
        when(Some(self.b.created_at))
    }

    pub fn expires(&self) -> String {
        when(self.b.expires_at)
    }

    pub fn apps(&self) -> String {
        self.b.apps.join(", ")
    }
}

fn phase_text(p: BackupPhase) -> &'static str {
    match p {
        BackupPhase::Requested => texts::t("admin_backups.phase_requested"),
        BackupPhase::New | BackupPhase::InProgress => texts::t("admin_backups.phase_in_progress"),
        BackupPhase::Completed => texts::t("admin_backups.phase_completed"),
        BackupPhase::PartiallyFailed => texts::t("admin_backups.phase_partially_failed"),
        BackupPhase::Failed => texts::t("admin_backups.phase_failed"),
        BackupPhase::Deleting => texts::t("admin_backups.phase_deleting"),
        BackupPhase::Gone => texts::t("admin_backups.phase_gone"),
    }
}

fn when(at: Option<DateTime<Utc>>) -> String {
    at.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "–".into())
}

/// The headline: what the admin must know first.
pub struct Summary {
    /// The last nightly backup, if any ran.
    pub last: Option<BackupRow>,
    /// A nightly backup failed, or none ran within a day and a bit: say so loudly.
    pub alarm: Option<String>,
    pub next: Option<String>,
    pub retention_days: u32,
}

#[derive(Template)]
#[template(path = "admin_backups.html")]
struct BackupsPage<'a> {
    csrf: &'a str,
    configured: bool,
    how_to_configure: &'a str,
    summary: Summary,
    backups: Vec<BackupRow>,
    restores: Vec<Restore>,
    apps: Vec<(String, String)>,
    drill: Option<Drill>,
}

impl BackupsPage<'_> {
    fn drill_state(&self, d: &Drill) -> &'static str {
        match d.state {
            DrillState::Running => texts::t("admin_backups.drill_running"),
            DrillState::Passed => texts::t("admin_backups.drill_passed"),
            DrillState::Failed => texts::t("admin_backups.drill_failed"),
        }
    }

    fn drill_class(&self, d: &Drill) -> &'static str {
        match d.state {
            DrillState::Passed => "ok",
            DrillState::Failed => "warn",
            DrillState::Running => "",
        }
    }

    fn restore_state(&self, r: &Restore) -> &'static str {
        restore_state_text(r)
    }
}

fn restore_state_text(r: &Restore) -> &'static str {
    match r.state {
        RestoreState::Running => texts::t("admin_backups.restore_running"),
        RestoreState::Done => texts::t("admin_backups.restore_done"),
        RestoreState::Failed => texts::t("admin_backups.restore_failed"),
    }
}

pub(crate) fn summary(state: &AppState, backups: &[Backup], now: DateTime<Utc>) -> Summary {
    let plan = state
        .platform
        .cluster
        .as_ref()
        .and_then(|c| c.backups.as_ref());
    let last = backups
        .iter()
        .filter(|b| b.reason == BackupReason::Scheduled)
        .max_by_key(|b| b.created_at)
        .cloned();
    let alarm = match (&last, plan) {
        (Some(b), Some(_))
            if matches!(b.phase, BackupPhase::Failed | BackupPhase::PartiallyFailed) =>
        {
            Some(texts::tf(
                "admin_backups.alarm_failed",
                [
                    ("name", b.name.as_str()),
                    (
                        "why",
                        if b.message.is_empty() {
                            phase_text(b.phase)
                        } else {
                            b.message.as_str()
                        },
                    ),
                ],
            ))
        }
        (Some(b), Some(_)) if now - b.created_at > Duration::hours(26) => Some(texts::tf(
            "admin_backups.alarm_missing",
            [("when", when(Some(b.created_at)).as_str())],
        )),
        _ => None,
    };
    let next = plan.and_then(|p| {
        (p.next_run)(now).map(|n| {
            texts::tf(
                "admin_backups.next_run",
                [
                    ("when", when(Some(n)).as_str()),
                    ("time", p.time.as_str()),
                    ("zone", p.time_zone.as_str()),
                ],
            )
        })
    });
    Summary {
        last: last.map(|b| BackupRow { b }),
        alarm,
        next,
        retention_days: plan.map_or(0, |p| p.retention_days),
    }
}

async fn installed_titles(state: &AppState) -> Result<Vec<(String, String)>, Response> {
    let rows = state
        .store
        .installed_apps()
        .await
        .map_err(|e| pages::internal_error(&e))?;
    Ok(rows
        .into_iter()
        .filter(|r| r.wanted)
        .map(|r| {
            let title = state
                .platform
                .catalog
                .get(&r.name)
                .map_or_else(|| r.name.clone(), |e| e.title.clone());
            (r.name, title)
        })
        .collect())
}

pub async fn page(State(state): State<AppState>, jar: CookieJar) -> Response {
    if let Err(resp) = require_admin(&state, &jar, PAGE).await {
        return resp;
    }
    let (backups, restores, drills) = match (
        state.store.backups().await,
        state.store.restores().await,
        state.store.drills(1).await,
    ) {
        (Ok(b), Ok(r), Ok(d)) => (b, r, d),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return pages::internal_error(&e),
    };
    let apps = match installed_titles(&state).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let configured = state
        .platform
        .cluster
        .as_ref()
        .is_some_and(|c| c.backups.is_some());
    let (jar, csrf) = session::csrf_token(&state, jar);
    let page = BackupsPage {
        csrf: &csrf,
        configured,
        how_to_configure: if state.platform.cluster.is_some() {
            texts::t("admin_backups.how_to_configure")
        } else {
            crate::platform::HOW_TO_CONNECT
        },
        summary: summary(&state, &backups, Utc::now()),
        backups: backups.into_iter().map(|b| BackupRow { b }).collect(),
        restores: restores.into_iter().take(10).collect(),
        apps,
        drill: drills.into_iter().next(),
    };
    (jar, pages::render(StatusCode::OK, &page)).into_response()
}

#[derive(Deserialize, Default)]
pub struct BackupForm {
    #[serde(default)]
    csrf: String,
    /// Empty: the whole platform.
    #[serde(default)]
    app: String,
}

pub async fn back_up_now(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<BackupForm>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &f.csrf) {
        return pages::form_expired();
    }
    let admin = match require_admin(&state, &jar, PAGE).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let app = (!f.app.is_empty()).then_some(f.app.as_str());
    let b = match state
        .store
        .back_up_now(app, BackupReason::Manual, Some(admin.email.as_str()))
        .await
    {
        Ok(b) => b,
        Err(e @ stackspin_storage::StorageError::NotInstalled(_)) => {
            return pages::error(
                StatusCode::UNPROCESSABLE_ENTITY,
                texts::t("msg.admin_backups.refused"),
                &e.to_string(),
            );
        }
        Err(e) => return pages::internal_error(&e),
    };
    state.platform.wake();
    let mut e = AuditEvent::new("backup.create");
    e.actor = Some(admin.email.to_string());
    e.app = Some(app.unwrap_or("platform").to_string());
    e.detail = serde_json::json!({ "backup": b.name });
    state.audit(e).await;
    Redirect::to(PAGE).into_response()
}

#[derive(Template)]
#[template(path = "backup_restore.html")]
struct RestorePage<'a> {
    csrf: &'a str,
    app: &'a str,
    title: &'a str,
    backups: Vec<BackupRow>,
    safety_name: String,
}

/// "Restore…": the backups that hold the app, and what a restore does to its data.
pub async fn confirm_restore(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(app): Path<String>,
) -> Response {
    if let Err(resp) = require_admin(&state, &jar, PAGE).await {
        return resp;
    }
    let apps = match installed_titles(&state).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let Some((_, title)) = apps.iter().find(|(n, _)| *n == app) else {
        return pages::error(
            StatusCode::NOT_FOUND,
            texts::t("msg.admin_backups.refused"),
            &texts::tf("msg.admin_backups.not_installed", [("app", app.as_str())]),
        );
    };
    let backups = match state.store.backups().await {
        Ok(b) => b,
        Err(e) => return pages::internal_error(&e),
    };
    let (jar, csrf) = session::csrf_token(&state, jar);
    let page = RestorePage {
        csrf: &csrf,
        app: &app,
        title,
        backups: backups
            .into_iter()
            .filter(|b| b.holds(&app))
            .map(|b| BackupRow { b })
            .collect(),
        safety_name: stackspin_storage::backup_name(Some(&app), BackupReason::Safety, Utc::now()),
    };
    (jar, pages::render(StatusCode::OK, &page)).into_response()
}

#[derive(Deserialize, Default)]
pub struct RestoreForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    understood: Option<String>,
}

pub async fn restore(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(app): Path<String>,
    Form(f): Form<RestoreForm>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &f.csrf) {
        return pages::form_expired();
    }
    let admin = match require_admin(&state, &jar, PAGE).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    // Data is replaced: only when the admin said they understood.
    if f.understood.is_none() {
        return pages::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            texts::t("msg.admin_backups.refused"),
            texts::t("msg.admin_backups.confirm_first"),
        );
    }
    let r = match state
        .store
        .request_restore(&app, &f.from, Some(admin.email.as_str()))
        .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(refusal)) => {
            return pages::error(
                StatusCode::CONFLICT,
                texts::t("msg.admin_backups.refused"),
                &refusal.to_string(),
            );
        }
        Err(e) => return pages::internal_error(&e),
    };
    state.platform.wake();
    let mut e = AuditEvent::new("restore.start");
    e.actor = Some(admin.email.to_string());
    e.app = Some(app);
    e.detail = serde_json::json!({ "from": f.from, "restore": r.id });
    state.audit(e).await;
    Redirect::to(&format!("{PAGE}/restores/{}", r.id)).into_response()
}

/// One step of a restore as the progress page shows it.
pub struct StepView {
    pub title: &'static str,
    /// "done", "current", "failed" or "todo".
    pub status: &'static str,
    pub messages: Vec<String>,
}

impl StepView {
    pub fn status_text(&self) -> &'static str {
        match self.status {
            "done" => texts::t("admin_backups.step_status_done"),
            "current" => texts::t("admin_backups.step_status_current"),
            "failed" => texts::t("admin_backups.step_status_failed"),
            _ => texts::t("admin_backups.step_status_todo"),
        }
    }
}

#[derive(Template)]
#[template(path = "restore_progress.html")]
struct ProgressPage {
    r: Restore,
    steps: Vec<StepView>,
    running: bool,
    state_text: &'static str,
}

pub fn step_title(s: RestoreStep) -> &'static str {
    match s {
        RestoreStep::SafetyBackup => texts::t("admin_backups.step_safety_backup"),
        RestoreStep::Suspend => texts::t("admin_backups.step_suspend"),
        RestoreStep::Remove => texts::t("admin_backups.step_remove"),
        RestoreStep::Restore => texts::t("admin_backups.step_restore"),
        RestoreStep::Resume => texts::t("admin_backups.step_resume"),
        RestoreStep::WaitReady => texts::t("admin_backups.step_wait_ready"),
        RestoreStep::Done => texts::t("admin_backups.step_done"),
    }
}

pub async fn progress(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(id): Path<String>,
) -> Response {
    if let Err(resp) = require_admin(&state, &jar, PAGE).await {
        return resp;
    }
    let found = match id.parse::<i64>() {
        Ok(n) => state.store.restore(n).await,
        Err(_) => Ok(None),
    };
    let r = match found {
        Ok(Some(r)) => r,
        Ok(None) => {
            return pages::error(
                StatusCode::NOT_FOUND,
                texts::t("msg.admin_backups.refused"),
                &texts::tf("msg.admin_backups.no_restore", [("id", id.as_str())]),
            );
        }
        Err(e) => return pages::internal_error(&e),
    };
    let steps = RestoreStep::ALL[..6]
        .iter()
        .map(|&s| StepView {
            title: step_title(s),
            status: if r.state == RestoreState::Done || s < r.step {
                "done"
            } else if s == r.step && r.state == RestoreState::Failed {
                "failed"
            } else if s == r.step {
                "current"
            } else {
                "todo"
            },
            messages: r
                .events
                .iter()
                .filter(|e| e.step == s)
                .map(|e| format!("{} {}", e.at.format("%H:%M:%S"), e.message))
                .collect(),
        })
        .collect();
    let page = ProgressPage {
        running: r.state == RestoreState::Running,
        state_text: restore_state_text(&r),
        r,
        steps,
    };
    pages::render(StatusCode::OK, &page)
}
