//! Alerts delivered by Alertmanager, and what the operator last saw of the cluster, for the
//! Status page and the admin's mail.

use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{OutgoingMail, StorageError, Store, in_tx, with_pool, with_writer};

/// One alert as Alertmanager reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingAlert {
    pub fingerprint: String,
    pub name: String,
    pub severity: String,
    pub summary: String,
    pub description: String,
    pub action: String,
    pub link: String,
    pub labels: BTreeMap<String, String>,
    pub firing: bool,
    pub starts_at: DateTime<Utc>,
    /// When it resolved (for a resolved alert).
    pub ends_at: Option<DateTime<Utc>>,
}

/// An alert as stored: its current (or last) episode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub fingerprint: String,
    pub name: String,
    pub severity: String,
    pub summary: String,
    pub description: String,
    pub action: String,
    pub link: String,
    pub labels: BTreeMap<String, String>,
    pub starts_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// The last delivery that mentioned it.
    pub updated_at: DateTime<Utc>,
    pub mailed_at: Option<DateTime<Utc>>,
}

/// What the mail callback is asked to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertChange {
    /// A new episode started.
    Firing,
    /// An episode the admin was mailed about ended.
    Resolved,
}

type AlertRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

const ALERT_COLUMNS: &str = "fingerprint, name, severity, summary, description, action, link, \
                             labels, starts_at, resolved_at, updated_at, mailed_at";

fn from_row(r: AlertRow) -> Result<Alert, StorageError> {
    let labels = serde_json::from_str(&r.7)
        .map_err(|e| StorageError::Corrupt(format!("alert {} has unreadable labels: {e}", r.0)))?;
    Ok(Alert {
        fingerprint: r.0,
        name: r.1,
        severity: r.2,
        summary: r.3,
        description: r.4,
        action: r.5,
        link: r.6,
        labels,
        starts_at: r.8,
        resolved_at: r.9,
        updated_at: r.10,
        mailed_at: r.11,
    })
}

impl Store {
    /// Records one delivery of alerts in one transaction. For each new episode of a firing
    /// alert, and each end of an episode the admin was mailed about, `mail` may write a mail,
    /// which is queued in the same transaction: a delivery repeated (Alertmanager repeats
    /// them) or retried after a failure never mails twice. Returns the mails queued.
    pub async fn record_alerts(
        &self,
        alerts: &[IncomingAlert],
        now: DateTime<Utc>,
        mail: &(dyn Fn(&Alert, AlertChange) -> Option<OutgoingMail> + Sync),
    ) -> Result<usize, StorageError> {
        // PostgreSQL keeps microseconds: times are cut to them so that the same episode
        // compares equal on both backends.
        let now = now.trunc_subsecs(6);
        let queued = in_tx!(self, tx, _d => {
            let mut queued = 0;
            for a in alerts {
                let a = &IncomingAlert {
                    starts_at: a.starts_at.trunc_subsecs(6),
                    ends_at: a.ends_at.map(|t| t.trunc_subsecs(6)),
                    ..a.clone()
                };
                let labels = serde_json::to_string(&a.labels)
                    .map_err(|e| StorageError::Corrupt(e.to_string()))?;
                let existing: Option<AlertRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {ALERT_COLUMNS} FROM alerts WHERE fingerprint = $1"
                )))
                .bind(&a.fingerprint)
                .fetch_optional(&mut *tx)
                .await?;
                let existing = existing.map(from_row).transpose()?;
                let same_episode = existing
                    .as_ref()
                    .is_some_and(|e| e.starts_at == a.starts_at && e.resolved_at.is_none());
                let change = match (&existing, a.firing) {
                    (_, true) if same_episode => None,
                    (_, true) => Some(AlertChange::Firing),
                    (Some(e), false) if same_episode && e.mailed_at.is_some() => {
                        Some(AlertChange::Resolved)
                    }
                    _ => None,
                };
                let resolved_at = (!a.firing).then(|| a.ends_at.unwrap_or(now));
                // A new episode starts unmailed; otherwise the mail mark stays.
                let mut mailed_at = match (&existing, change) {
                    (_, Some(AlertChange::Firing)) | (None, _) => None,
                    (Some(e), _) => e.mailed_at,
                };
                let stored = Alert {
                    fingerprint: a.fingerprint.clone(),
                    name: a.name.clone(),
                    severity: a.severity.clone(),
                    summary: a.summary.clone(),
                    description: a.description.clone(),
                    action: a.action.clone(),
                    link: a.link.clone(),
                    labels: a.labels.clone(),
                    starts_at: a.starts_at,
                    resolved_at,
                    updated_at: now,
                    mailed_at,
                };
                if let Some(change) = change
                    && let Some(m) = mail(&stored, change)
                {
                    let m = self.sealed_mail(&m)?;
                    sqlx::query(
                        "INSERT INTO mail_outbox (id, to_address, subject, body, created_at, next_attempt_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(Uuid::new_v4())
                    .bind(&m.to)
                    .bind(&m.subject)
                    .bind(&m.body)
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    queued += 1;
                    if change == AlertChange::Firing {
                        mailed_at = Some(now);
                    }
                }
                sqlx::query(
                    "INSERT INTO alerts (fingerprint, name, severity, summary, description, action, \
                       link, labels, starts_at, resolved_at, updated_at, mailed_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (fingerprint) DO UPDATE SET name = excluded.name, \
                       severity = excluded.severity, summary = excluded.summary, \
                       description = excluded.description, action = excluded.action, \
                       link = excluded.link, labels = excluded.labels, \
                       starts_at = excluded.starts_at, resolved_at = excluded.resolved_at, \
                       updated_at = excluded.updated_at, mailed_at = excluded.mailed_at",
                )
                .bind(&stored.fingerprint)
                .bind(&stored.name)
                .bind(&stored.severity)
                .bind(&stored.summary)
                .bind(&stored.description)
                .bind(&stored.action)
                .bind(&stored.link)
                .bind(&labels)
                .bind(stored.starts_at)
                .bind(stored.resolved_at)
                .bind(stored.updated_at)
                .bind(mailed_at)
                .execute(&mut *tx)
                .await?;
            }
            queued
        });
        Ok(queued)
    }

    /// Alerts still firing that a delivery mentioned since `since` (Alertmanager repeats
    /// firing alerts, so an older one is stale), most severe first, then oldest first.
    pub async fn firing_alerts(&self, since: DateTime<Utc>) -> Result<Vec<Alert>, StorageError> {
        let rows: Vec<AlertRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ALERT_COLUMNS} FROM alerts \
                 WHERE resolved_at IS NULL AND updated_at >= $1 \
                 ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, \
                   starts_at"
            )))
            .bind(since)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(from_row).collect()
    }

    /// Replaces what the operator saw of one kind of cluster object (a JSON document).
    pub async fn record_observation(
        &self,
        kind: &str,
        body: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let text = body.to_string();
        with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO cluster_observations (kind, body, observed_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (kind) DO UPDATE SET body = excluded.body, observed_at = excluded.observed_at",
            )
            .bind(kind)
            .bind(&text)
            .bind(at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The last observation of one kind, and when it was made.
    pub async fn observation(
        &self,
        kind: &str,
    ) -> Result<Option<(serde_json::Value, DateTime<Utc>)>, StorageError> {
        let row: Option<(String, DateTime<Utc>)> = with_pool!(self, pool => {
            sqlx::query_as("SELECT body, observed_at FROM cluster_observations WHERE kind = $1")
                .bind(kind)
                .fetch_optional(pool)
                .await?
        });
        row.map(|(body, at)| {
            serde_json::from_str(&body)
                .map(|v| (v, at))
                .map_err(|e| StorageError::Corrupt(format!("observation {kind}: {e}")))
        })
        .transpose()
    }
}
