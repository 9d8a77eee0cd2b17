//! The audit log: who did what, to whom, in which app, from where.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use crate::{StorageError, Store, with_pool, with_writer};

/// One event. `kind` is a dotted name (`login.success`, `role.changed`, `client.registered`);
/// `detail` holds kind-specific facts, never secrets.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AuditEvent {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub actor: Option<String>,
    pub user_id: Option<Uuid>,
    pub user_email: Option<String>,
    pub app: Option<String>,
    pub ip: Option<String>,
    pub detail: serde_json::Value,
}

impl AuditEvent {
    pub fn new(kind: &str) -> AuditEvent {
        AuditEvent {
            id: Uuid::new_v4(),
            at: Utc::now(),
            kind: kind.to_owned(),
            actor: None,
            user_id: None,
            user_email: None,
            app: None,
            ip: None,
            detail: serde_json::Value::Object(Default::default()),
        }
    }
}

#[derive(FromRow)]
struct Row {
    id: Uuid,
    at: DateTime<Utc>,
    kind: String,
    actor: Option<String>,
    user_id: Option<Uuid>,
    user_email: Option<String>,
    app: Option<String>,
    ip: Option<String>,
    detail: String,
}

/// Which events to list; every field narrows the result.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Matches the subject's e-mail address, case-insensitively.
    pub user_email: Option<String>,
    pub app: Option<String>,
    /// A kind, which also finds its family: `login` (or `login.`) finds `login.failed`.
    pub kind: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: i64,
    pub offset: i64,
}

impl Store {
    pub async fn record_audit(&self, e: &AuditEvent) -> Result<(), StorageError> {
        with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO audit_events (id, at, kind, actor, user_id, user_email, app, ip, detail) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(e.id)
            .bind(e.at)
            .bind(&e.kind)
            .bind(e.actor.as_deref())
            .bind(e.user_id)
            .bind(e.user_email.as_deref())
            .bind(e.app.as_deref())
            .bind(e.ip.as_deref())
            .bind(e.detail.to_string())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Events matching `f`, newest first.
    pub async fn audit_events(&self, f: &AuditFilter) -> Result<Vec<AuditEvent>, StorageError> {
        // "login", "login." and "login.failed" all work as people type them: a kind matches
        // itself and its family (`login` finds `login.failed` and `login.success`).
        let kind_exact = f
            .kind
            .as_deref()
            .map(|k| k.trim().trim_end_matches('.').to_owned())
            .filter(|k| !k.is_empty());
        let kind_prefix = kind_exact
            .as_deref()
            .map(|k| format!("{}.%", k.replace(['%', '_'], "")));
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, Row>(
                "SELECT id, at, kind, actor, user_id, user_email, app, ip, detail FROM audit_events \
                 WHERE ($1 IS NULL OR lower(user_email) = lower($1)) \
                 AND ($2 IS NULL OR app = $2) \
                 AND ($3 IS NULL OR kind = $3 OR kind LIKE $4) \
                 AND ($5 IS NULL OR at >= $5) \
                 AND ($6 IS NULL OR at <= $6) \
                 ORDER BY at DESC, id LIMIT $7 OFFSET $8",
            )
            .bind(f.user_email.as_deref())
            .bind(f.app.as_deref())
            .bind(kind_exact.as_deref())
            .bind(kind_prefix.as_deref())
            .bind(f.since)
            .bind(f.until)
            .bind(if f.limit > 0 { f.limit.min(1000) } else { 100 })
            .bind(f.offset.max(0))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|r| {
                Ok(AuditEvent {
                    detail: serde_json::from_str(&r.detail)
                        .map_err(|e| StorageError::Corrupt(format!("audit event {}: {e}", r.id)))?,
                    id: r.id,
                    at: r.at,
                    kind: r.kind,
                    actor: r.actor,
                    user_id: r.user_id,
                    user_email: r.user_email,
                    app: r.app,
                    ip: r.ip,
                })
            })
            .collect()
    }
}
