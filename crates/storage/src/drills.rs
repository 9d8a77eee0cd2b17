//! Restore drills: each restores the latest backup of every app into a scratch namespace; the
//! operator records its plan and each app's result here.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{StorageError, Store, with_pool, with_writer};

/// One app in a restore drill: which backup was tried, and what came back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DrillApp {
    pub app: String,
    pub backup: String,
    /// `None` until the drill has checked this app.
    pub ok: Option<bool>,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillState {
    Running,
    Passed,
    Failed,
}

/// A restore drill: the latest backup of each app restored into a scratch namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drill {
    pub id: i64,
    pub state: DrillState,
    pub apps: Vec<DrillApp>,
    pub message: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

type DrillRow = (
    i64,
    String,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

fn drill_from_row(r: DrillRow) -> Result<Drill, StorageError> {
    let state = match r.1.as_str() {
        "running" => DrillState::Running,
        "passed" => DrillState::Passed,
        "failed" => DrillState::Failed,
        other => {
            return Err(StorageError::Corrupt(format!(
                "drill {} has state {other:?}",
                r.0
            )));
        }
    };
    let apps = serde_json::from_str(&r.2)
        .map_err(|e| StorageError::Corrupt(format!("drill {} apps: {e}", r.0)))?;
    Ok(Drill {
        id: r.0,
        state,
        apps,
        message: r.3,
        started_at: r.4,
        finished_at: r.5,
    })
}

fn apps_json(apps: &[DrillApp]) -> Result<String, StorageError> {
    serde_json::to_string(apps).map_err(|e| StorageError::Corrupt(format!("drill apps: {e}")))
}

impl Store {
    /// Drills, newest first.
    pub async fn drills(&self, limit: i64) -> Result<Vec<Drill>, StorageError> {
        let rows: Vec<DrillRow> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, state, apps, message, started_at, finished_at FROM drills \
                 ORDER BY id DESC LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(drill_from_row).collect()
    }

    pub async fn start_drill(&self, apps: &[DrillApp]) -> Result<Drill, StorageError> {
        let now = Utc::now();
        let json = apps_json(apps)?;
        let (id,): (i64,) = with_writer!(self, pool => {
            sqlx::query_as(
                "INSERT INTO drills (state, apps, started_at) VALUES ('running', $1, $2) RETURNING id",
            )
            .bind(&json)
            .bind(now)
            .fetch_one(pool)
            .await?
        });
        Ok(Drill {
            id,
            state: DrillState::Running,
            apps: apps.to_vec(),
            message: String::new(),
            started_at: now,
            finished_at: None,
        })
    }

    /// Records the drill's progress; with a final state, finishes it.
    pub async fn record_drill(
        &self,
        id: i64,
        apps: &[DrillApp],
        finished: Option<(DrillState, &str)>,
    ) -> Result<(), StorageError> {
        let json = apps_json(apps)?;
        let (state, message, at) = match finished {
            Some((s, m)) => (
                match s {
                    DrillState::Running => "running",
                    DrillState::Passed => "passed",
                    DrillState::Failed => "failed",
                },
                m,
                Some(Utc::now()),
            ),
            None => ("running", "", None),
        };
        with_writer!(self, pool => {
            sqlx::query(
                "UPDATE drills SET apps = $2, state = $3, message = $4, finished_at = $5 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(&json)
            .bind(state)
            .bind(message)
            .bind(at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
