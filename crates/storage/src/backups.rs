//! Backups and restores. The operator mirrors Velero's Backup objects here and is the only
//! writer of their phases; the Dashboard, the API and the CLI ask for backups and restores
//! here and read their progress. A restore is a recorded state machine: its step is stored
//! before the step's work starts, so a restarted operator resumes it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{StorageError, Store, in_tx, with_pool, with_writer};

/// Why a backup was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupReason {
    Scheduled,
    Manual,
    /// Taken by a restore before it replaces anything.
    Safety,
    /// Taken before an automatic update changes the app's chart version.
    Update,
    Drill,
}

impl BackupReason {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupReason::Scheduled => "scheduled",
            BackupReason::Manual => "manual",
            BackupReason::Safety => "safety",
            BackupReason::Update => "update",
            BackupReason::Drill => "drill",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "scheduled" => BackupReason::Scheduled,
            "manual" => BackupReason::Manual,
            "safety" => BackupReason::Safety,
            "update" => BackupReason::Update,
            "drill" => BackupReason::Drill,
            _ => return None,
        })
    }
}

/// Where a backup stands: asked for, then Velero's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupPhase {
    /// Asked for; the operator has not created it in the cluster yet.
    Requested,
    New,
    InProgress,
    Completed,
    PartiallyFailed,
    Failed,
    Deleting,
    /// Velero no longer has it (expired or deleted).
    Gone,
}

impl BackupPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupPhase::Requested => "requested",
            BackupPhase::New => "new",
            BackupPhase::InProgress => "in_progress",
            BackupPhase::Completed => "completed",
            BackupPhase::PartiallyFailed => "partially_failed",
            BackupPhase::Failed => "failed",
            BackupPhase::Deleting => "deleting",
            BackupPhase::Gone => "gone",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "requested" => BackupPhase::Requested,
            "new" => BackupPhase::New,
            "in_progress" => BackupPhase::InProgress,
            "completed" => BackupPhase::Completed,
            "partially_failed" => BackupPhase::PartiallyFailed,
            "failed" => BackupPhase::Failed,
            "deleting" => BackupPhase::Deleting,
            "gone" => BackupPhase::Gone,
            _ => return None,
        })
    }

    /// Velero's phase names (`InProgress`, `FailedValidation`, ...) in ours.
    pub fn from_velero(s: &str) -> BackupPhase {
        match s {
            "" | "New" => BackupPhase::New,
            "Completed" => BackupPhase::Completed,
            "PartiallyFailed" => BackupPhase::PartiallyFailed,
            "Failed" | "FailedValidation" => BackupPhase::Failed,
            "Deleting" => BackupPhase::Deleting,
            // Queued, ReadyToStart, InProgress, WaitingForPluginOperations*, Finalizing*.
            _ => BackupPhase::InProgress,
        }
    }

    /// No longer moving.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            BackupPhase::Completed
                | BackupPhase::PartiallyFailed
                | BackupPhase::Failed
                | BackupPhase::Gone
        )
    }
}

/// One backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backup {
    pub name: String,
    /// `None`: the whole platform.
    pub app: Option<String>,
    pub reason: BackupReason,
    pub phase: BackupPhase,
    pub message: String,
    /// The apps it holds.
    pub apps: Vec<String>,
    pub items: i64,
    pub bytes: i64,
    pub errors: i64,
    pub warnings: i64,
    pub requested_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// For a backup taken before an update: the version the update went to.
    pub for_version: Option<String>,
}

impl Backup {
    /// Whether a restore of `app` can use it.
    pub fn holds(&self, app: &str) -> bool {
        self.phase == BackupPhase::Completed
            && match &self.app {
                Some(a) => a == app,
                None => self.apps.iter().any(|a| a == app),
            }
    }
}

/// What the operator saw of one Velero Backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedBackup {
    pub name: String,
    pub app: Option<String>,
    pub reason: BackupReason,
    pub phase: BackupPhase,
    pub message: String,
    pub items: i64,
    pub bytes: i64,
    pub errors: i64,
    pub warnings: i64,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

type BackupRow = (
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    Option<String>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<String>,
);

macro_rules! backup_columns {
    () => {
        "name, app, reason, phase, message, apps, items, bytes, errors, warnings, requested_by, \
         created_at, started_at, completed_at, expires_at, for_version"
    };
}

fn backup_from_row(r: BackupRow) -> Result<Backup, StorageError> {
    let corrupt = |what: &str, v: &str| {
        StorageError::Corrupt(format!("backup {} has unknown {what} {v:?}", r.0))
    };
    let reason = BackupReason::parse(&r.2).ok_or_else(|| corrupt("reason", &r.2))?;
    let phase = BackupPhase::parse(&r.3).ok_or_else(|| corrupt("phase", &r.3))?;
    Ok(Backup {
        reason,
        phase,
        apps: r
            .5
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        name: r.0,
        app: r.1,
        message: r.4,
        items: r.6,
        bytes: r.7,
        errors: r.8,
        warnings: r.9,
        requested_by: r.10,
        created_at: r.11,
        started_at: r.12,
        completed_at: r.13,
        expires_at: r.14,
        for_version: r.15,
    })
}

/// A step of a restore, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreStep {
    SafetyBackup,
    Suspend,
    Remove,
    Restore,
    Resume,
    WaitReady,
    Done,
}

impl RestoreStep {
    pub const ALL: [RestoreStep; 7] = [
        RestoreStep::SafetyBackup,
        RestoreStep::Suspend,
        RestoreStep::Remove,
        RestoreStep::Restore,
        RestoreStep::Resume,
        RestoreStep::WaitReady,
        RestoreStep::Done,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RestoreStep::SafetyBackup => "safety_backup",
            RestoreStep::Suspend => "suspend",
            RestoreStep::Remove => "remove",
            RestoreStep::Restore => "restore",
            RestoreStep::Resume => "resume",
            RestoreStep::WaitReady => "wait_ready",
            RestoreStep::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn next(self) -> RestoreStep {
        Self::ALL
            .into_iter()
            .find(|x| *x > self)
            .unwrap_or(RestoreStep::Done)
    }

    /// While the restore is at this step (or failed at it), the app's releases stay
    /// suspended: from here to the restore, resuming would start the app on removed or
    /// half-restored volumes.
    pub fn keeps_suspended(self) -> bool {
        matches!(
            self,
            RestoreStep::Suspend | RestoreStep::Remove | RestoreStep::Restore
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreState {
    Running,
    Done,
    Failed,
}

impl RestoreState {
    pub fn as_str(self) -> &'static str {
        match self {
            RestoreState::Running => "running",
            RestoreState::Done => "done",
            RestoreState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => RestoreState::Running,
            "done" => RestoreState::Done,
            "failed" => RestoreState::Failed,
            _ => return None,
        })
    }
}

/// One restore and what it did so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restore {
    pub id: i64,
    pub app: String,
    pub backup: String,
    pub safety_backup: Option<String>,
    pub step: RestoreStep,
    pub state: RestoreState,
    /// For a failed restore: what state the app is in and how to recover.
    pub message: String,
    pub requested_by: Option<String>,
    pub requested_at: DateTime<Utc>,
    /// When the current step started.
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub events: Vec<RestoreEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreEvent {
    pub at: DateTime<Utc>,
    pub step: RestoreStep,
    pub message: String,
}

type RestoreRow = (
    i64,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

macro_rules! restore_columns {
    () => {
        "id, app, backup, safety_backup, step, state, message, requested_by, requested_at, \
         updated_at, finished_at"
    };
}

fn restore_from_row(r: RestoreRow, events: Vec<RestoreEvent>) -> Result<Restore, StorageError> {
    let step = RestoreStep::parse(&r.4)
        .ok_or_else(|| StorageError::Corrupt(format!("restore {} has step {:?}", r.0, r.4)))?;
    let state = RestoreState::parse(&r.5)
        .ok_or_else(|| StorageError::Corrupt(format!("restore {} has state {:?}", r.0, r.5)))?;
    Ok(Restore {
        id: r.0,
        app: r.1,
        backup: r.2,
        safety_backup: r.3,
        step,
        state,
        message: r.6,
        requested_by: r.7,
        requested_at: r.8,
        updated_at: r.9,
        finished_at: r.10,
        events,
    })
}

/// A name for a backup the control plane makes: `<app or platform>-<reason>-<time>`, a DNS
/// label as Velero needs.
pub fn backup_name(app: Option<&str>, reason: BackupReason, at: DateTime<Utc>) -> String {
    format!(
        "{}-{}-{}",
        app.unwrap_or("platform"),
        reason.as_str(),
        at.format("%Y%m%d-%H%M%S")
    )
}

/// Why a restore cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreRefusal {
    #[error("{0} is not installed")]
    NotInstalled(String),
    #[error(
        "the control plane (users, roles, apps) is not restored with `stackspin restore`: see \"Restoring the control plane\" in the README"
    )]
    ControlPlane,
    #[error("no backup named {0}")]
    NoSuchBackup(String),
    #[error("backup {backup} does not hold {app} (or did not complete)")]
    NotInBackup { backup: String, app: String },
    #[error(
        "restore {id} of {app} is still running (step {step}): wait for it to finish, or see `stackspin restore status {id}`"
    )]
    Busy { id: i64, app: String, step: String },
}

impl Store {
    pub async fn backups(&self) -> Result<Vec<Backup>, StorageError> {
        let rows: Vec<BackupRow> = with_pool!(self, pool => {
            sqlx::query_as(concat!("SELECT ", backup_columns!(), " FROM backups ORDER BY created_at DESC, name"))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(backup_from_row).collect()
    }

    pub async fn backup(&self, name: &str) -> Result<Option<Backup>, StorageError> {
        let row: Option<BackupRow> = with_pool!(self, pool => {
            sqlx::query_as(concat!("SELECT ", backup_columns!(), " FROM backups WHERE name = $1"))
                .bind(name)
                .fetch_optional(pool)
                .await?
        });
        row.map(backup_from_row).transpose()
    }

    /// Asks for a backup of an installed app, or of the platform with every installed app,
    /// named for now (see [`backup_name`]).
    pub async fn back_up_now(
        &self,
        app: Option<&str>,
        reason: BackupReason,
        requested_by: Option<&str>,
    ) -> Result<Backup, StorageError> {
        let installed: Vec<String> = self
            .installed_apps()
            .await?
            .into_iter()
            .filter(|r| r.wanted)
            .map(|r| r.name)
            .collect();
        let apps = match app {
            Some(a) if installed.iter().any(|i| i == a) => vec![a.to_string()],
            Some(a) => return Err(StorageError::NotInstalled(a.to_string())),
            None => installed,
        };
        let name = backup_name(app, reason, Utc::now());
        self.request_backup(&name, app, reason, &apps, requested_by)
            .await
    }

    /// The latest backup taken before updating `app` to `version`.
    pub async fn update_backup(
        &self,
        app: &str,
        version: &str,
    ) -> Result<Option<Backup>, StorageError> {
        let row: Option<BackupRow> = with_pool!(self, pool => {
            sqlx::query_as(concat!("SELECT ", backup_columns!(), " FROM backups \
                WHERE app = $1 AND reason = 'update' AND for_version = $2 \
                ORDER BY created_at DESC LIMIT 1"))
                .bind(app)
                .bind(version)
                .fetch_optional(pool)
                .await?
        });
        row.map(backup_from_row).transpose()
    }

    /// The latest completed backup taken before an update of `app`: what undoes it.
    pub async fn last_update_backup(&self, app: &str) -> Result<Option<Backup>, StorageError> {
        let row: Option<BackupRow> = with_pool!(self, pool => {
            sqlx::query_as(concat!("SELECT ", backup_columns!(), " FROM backups \
                WHERE app = $1 AND reason = 'update' AND phase = 'completed' \
                ORDER BY created_at DESC LIMIT 1"))
                .bind(app)
                .fetch_optional(pool)
                .await?
        });
        row.map(backup_from_row).transpose()
    }

    /// Asks for the backup an update of `app` to `version` waits for.
    pub async fn request_update_backup(
        &self,
        app: &str,
        version: &str,
    ) -> Result<Backup, StorageError> {
        let name = backup_name(Some(app), BackupReason::Update, Utc::now());
        self.insert_backup(
            &name,
            Some(app),
            BackupReason::Update,
            &[app.to_string()],
            None,
            Some(version),
        )
        .await
    }

    /// Asks for a backup; the operator creates it in the cluster.
    pub async fn request_backup(
        &self,
        name: &str,
        app: Option<&str>,
        reason: BackupReason,
        apps: &[String],
        requested_by: Option<&str>,
    ) -> Result<Backup, StorageError> {
        self.insert_backup(name, app, reason, apps, requested_by, None)
            .await
    }

    async fn insert_backup(
        &self,
        name: &str,
        app: Option<&str>,
        reason: BackupReason,
        apps: &[String],
        requested_by: Option<&str>,
        for_version: Option<&str>,
    ) -> Result<Backup, StorageError> {
        with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO backups (name, app, reason, phase, apps, requested_by, created_at, \
                   for_version) VALUES ($1, $2, $3, 'requested', $4, $5, $6, $7)",
            )
            .bind(name)
            .bind(app)
            .bind(reason.as_str())
            .bind(apps.join(","))
            .bind(requested_by)
            .bind(Utc::now())
            .bind(for_version)
            .execute(pool)
            .await
            .map_err(|e| crate::error::on_unique(e, || StorageError::Conflict(format!("backup {name}"))))?;
        });
        self.backup(name)
            .await?
            .ok_or_else(|| StorageError::Corrupt(format!("backup {name} vanished")))
    }

    /// Records what Velero says of a backup. A backup first seen here (a scheduled one)
    /// holds the apps installed now.
    pub async fn record_backup(
        &self,
        b: &ObservedBackup,
        apps_now: &[String],
    ) -> Result<(), StorageError> {
        with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO backups (name, app, reason, phase, message, apps, items, bytes, \
                   errors, warnings, created_at, started_at, completed_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                 ON CONFLICT (name) DO UPDATE SET phase = $4, message = $5, items = $7, \
                   bytes = $8, errors = $9, warnings = $10, started_at = $12, \
                   completed_at = $13, expires_at = $14",
            )
            .bind(&b.name)
            .bind(&b.app)
            .bind(b.reason.as_str())
            .bind(b.phase.as_str())
            .bind(&b.message)
            .bind(apps_now.join(","))
            .bind(b.items)
            .bind(b.bytes)
            .bind(b.errors)
            .bind(b.warnings)
            .bind(b.created_at)
            .bind(b.started_at)
            .bind(b.completed_at)
            .bind(b.expires_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Marks a backup that could not even be created in the cluster, or that Velero no
    /// longer has.
    pub async fn set_backup_phase(
        &self,
        name: &str,
        phase: BackupPhase,
        message: &str,
    ) -> Result<(), StorageError> {
        with_writer!(self, pool => {
            sqlx::query("UPDATE backups SET phase = $2, message = $3 WHERE name = $1")
                .bind(name)
                .bind(phase.as_str())
                .bind(message)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Starts a restore, unless the backup cannot serve it or another restore runs. The
    /// check and the insert are one transaction, and the `active` column's unique constraint
    /// stops two servers that race past the check.
    pub async fn request_restore(
        &self,
        app: &str,
        backup: &str,
        requested_by: Option<&str>,
    ) -> Result<Result<Restore, RestoreRefusal>, StorageError> {
        // The control plane's own entry is never an installed app; its restore is its own path.
        if app == "stackspin" {
            return Ok(Err(RestoreRefusal::ControlPlane));
        }
        if !self.installed_app(app).await?.is_some_and(|a| a.wanted) {
            return Ok(Err(RestoreRefusal::NotInstalled(app.to_string())));
        }
        let Some(b) = self.backup(backup).await? else {
            return Ok(Err(RestoreRefusal::NoSuchBackup(backup.to_string())));
        };
        if !b.holds(app) {
            return Ok(Err(RestoreRefusal::NotInBackup {
                backup: backup.to_string(),
                app: app.to_string(),
            }));
        }
        if let Some(r) = self.active_restore().await? {
            return Ok(Err(busy(&r)));
        }
        let now = Utc::now();
        let first = RestoreStep::SafetyBackup;
        let inserted: Result<i64, sqlx::Error> = in_tx!(self, tx, _d => {
            let id: Result<(i64,), sqlx::Error> = sqlx::query_as(
                "INSERT INTO restores (app, backup, step, state, active, requested_by, \
                   requested_at, updated_at) VALUES ($1, $2, $3, 'running', 1, $4, $5, $5) \
                 RETURNING id",
            )
            .bind(app)
            .bind(backup)
            .bind(first.as_str())
            .bind(requested_by)
            .bind(now)
            .fetch_one(&mut *tx)
            .await;
            match id {
                Ok((id,)) => {
                    sqlx::query(
                        "INSERT INTO restore_events (restore_id, at, step, message) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(id)
                    .bind(now)
                    .bind(first.as_str())
                    .bind(format!("restore of {app} from {backup} requested"))
                    .execute(&mut *tx)
                    .await?;
                    Ok(id)
                }
                Err(e) => Err(e),
            }
        });
        match inserted {
            Ok(id) => Ok(Ok(self.restore(id).await?.ok_or_else(|| {
                StorageError::Corrupt(format!("restore {id} vanished"))
            })?)),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                match self.active_restore().await? {
                    Some(r) => Ok(Err(busy(&r))),
                    None => Err(StorageError::Conflict("restore".into())),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn restore(&self, id: i64) -> Result<Option<Restore>, StorageError> {
        let row: Option<RestoreRow> = with_pool!(self, pool => {
            sqlx::query_as(concat!("SELECT ", restore_columns!(), " FROM restores WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        match row {
            Some(r) => {
                let events = self.restore_events(r.0).await?;
                Ok(Some(restore_from_row(r, events)?))
            }
            None => Ok(None),
        }
    }

    /// Restores, newest first (without their events).
    pub async fn restores(&self) -> Result<Vec<Restore>, StorageError> {
        let rows: Vec<RestoreRow> = with_pool!(self, pool => {
            sqlx::query_as(concat!("SELECT ", restore_columns!(), " FROM restores ORDER BY id DESC"))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|r| restore_from_row(r, Vec::new()))
            .collect()
    }

    pub async fn active_restore(&self) -> Result<Option<Restore>, StorageError> {
        let id: Option<(i64,)> = with_pool!(self, pool => {
            sqlx::query_as("SELECT id FROM restores WHERE active = 1")
                .fetch_optional(pool)
                .await?
        });
        match id {
            Some((id,)) => self.restore(id).await,
            None => Ok(None),
        }
    }

    /// The apps whose releases a restore keeps suspended: the running restore's app at a
    /// suspending step, and any app whose latest restore failed at one (its volumes may be
    /// gone; resuming would start it empty).
    pub async fn suspended_apps(&self) -> Result<Vec<String>, StorageError> {
        let rows: Vec<(String, String, String)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT r.app, r.step, r.state FROM restores r WHERE r.id = \
                   (SELECT MAX(id) FROM restores x WHERE x.app = r.app)",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .filter(|(_, step, state)| {
                state != "done"
                    && RestoreStep::parse(step).is_some_and(RestoreStep::keeps_suspended)
            })
            .map(|(app, _, _)| app)
            .collect())
    }

    async fn restore_events(&self, id: i64) -> Result<Vec<RestoreEvent>, StorageError> {
        let rows: Vec<(DateTime<Utc>, String, String)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT at, step, message FROM restore_events WHERE restore_id = $1 \
                 ORDER BY at, step",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .filter_map(|(at, step, message)| {
                Some(RestoreEvent {
                    at,
                    step: RestoreStep::parse(&step)?,
                    message,
                })
            })
            .collect())
    }

    /// Notes progress within a step (`updated_at` keeps the step's start).
    pub async fn note_restore(
        &self,
        id: i64,
        step: RestoreStep,
        message: &str,
    ) -> Result<(), StorageError> {
        let now = Utc::now();
        in_tx!(self, tx, _d => {
            sqlx::query(
                "INSERT INTO restore_events (restore_id, at, step, message) VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(now)
            .bind(step.as_str())
            .bind(message)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// Finishes the running restore's current step (recorded under it with `message`) and
    /// moves it to `to`; reaching `Done` finishes the restore.
    pub async fn advance_restore(
        &self,
        id: i64,
        to: RestoreStep,
        message: &str,
    ) -> Result<(), StorageError> {
        let now = Utc::now();
        let done = to == RestoreStep::Done;
        in_tx!(self, tx, _d => {
            let step: Option<(String,)> =
                sqlx::query_as("SELECT step FROM restores WHERE id = $1 AND state = 'running'")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some((step,)) = step {
                sqlx::query(
                    "INSERT INTO restore_events (restore_id, at, step, message) VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(now)
                .bind(step)
                .bind(message)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE restores SET step = $2, updated_at = $3, state = $4, \
                       active = CASE WHEN $5 THEN NULL ELSE active END, \
                       finished_at = CASE WHEN $5 THEN $3 ELSE finished_at END \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(to.as_str())
                .bind(now)
                .bind(if done { "done" } else { "running" })
                .bind(done)
                .execute(&mut *tx)
                .await?;
            }
        });
        Ok(())
    }

    /// Remembers the safety backup's name before it is created, so a restart finds it.
    pub async fn set_safety_backup(&self, id: i64, backup: &str) -> Result<(), StorageError> {
        with_writer!(self, pool => {
            sqlx::query("UPDATE restores SET safety_backup = $2 WHERE id = $1 AND safety_backup IS NULL")
                .bind(id)
                .bind(backup)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Stops a restore at its current step; `message` says what state the app is in and how
    /// to recover.
    pub async fn fail_restore(&self, id: i64, message: &str) -> Result<(), StorageError> {
        let now = Utc::now();
        in_tx!(self, tx, _d => {
            let step: Option<(String,)> =
                sqlx::query_as("SELECT step FROM restores WHERE id = $1 AND state = 'running'")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some((step,)) = step {
                sqlx::query(
                    "UPDATE restores SET state = 'failed', active = NULL, message = $2, \
                       updated_at = $3, finished_at = $3 WHERE id = $1",
                )
                .bind(id)
                .bind(message)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO restore_events (restore_id, at, step, message) VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(now)
                .bind(step)
                .bind(format!("failed: {message}"))
                .execute(&mut *tx)
                .await?;
            }
        });
        Ok(())
    }
}

fn busy(r: &Restore) -> RestoreRefusal {
    RestoreRefusal::Busy {
        id: r.id,
        app: r.app.clone(),
        step: r.step.as_str().to_string(),
    }
}
