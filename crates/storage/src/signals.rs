//! Counts that describe the platform's health, read together for `/metrics` and the Status
//! page: people, the mail queue and the back-channel logout queue.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{StorageError, Store, with_pool};

/// One outbox (mail or logout notices): what waits, what is being retried, what was given up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueSignals {
    /// Not yet delivered and not given up.
    pub pending: i64,
    /// Of those, the ones that failed at least once and wait for a retry.
    pub retrying: i64,
    /// Given up after the last retry, ever (a counter: alerts look at its increase).
    pub given_up: i64,
    /// When the oldest pending item was queued.
    pub oldest_pending: Option<DateTime<Utc>>,
    /// The last error of the most recently failed pending item, for the Status page.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PeopleSignals {
    pub users: i64,
    /// People who have set a password, so can sign in (invited people have not yet).
    pub active: i64,
    pub with_mfa: i64,
    /// Admins who can sign in.
    pub admins: i64,
}

/// (pending, retrying, given up), the oldest pending, the last error.
type QueueRow = ((i64, i64, i64), Option<DateTime<Utc>>, Option<String>);

impl Store {
    pub async fn people_signals(&self) -> Result<PeopleSignals, StorageError> {
        let (users, active, with_mfa, admins): (i64, i64, i64, i64) = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT COUNT(*), \
                   COALESCE(SUM(CASE WHEN password_hash IS NOT NULL THEN 1 ELSE 0 END), 0), \
                   COALESCE(SUM(CASE WHEN totp_secret IS NOT NULL THEN 1 ELSE 0 END), 0), \
                   COALESCE(SUM(CASE WHEN is_admin AND password_hash IS NOT NULL THEN 1 ELSE 0 END), 0) \
                 FROM users",
            )
            .fetch_one(pool)
            .await?
        });
        Ok(PeopleSignals {
            users,
            active,
            with_mfa,
            admins,
        })
    }

    pub async fn mail_signals(&self) -> Result<QueueSignals, StorageError> {
        self.queue_signals("mail_outbox", "sent_at").await
    }

    pub async fn logout_signals(&self) -> Result<QueueSignals, StorageError> {
        self.queue_signals("backchannel_outbox", "delivered_at")
            .await
    }

    /// `table` and `done` are our own constants, never input.
    async fn queue_signals(
        &self,
        table: &'static str,
        done: &'static str,
    ) -> Result<QueueSignals, StorageError> {
        let counts = format!(
            "SELECT \
               COALESCE(SUM(CASE WHEN {done} IS NULL AND failed_at IS NULL THEN 1 ELSE 0 END), 0), \
               COALESCE(SUM(CASE WHEN {done} IS NULL AND failed_at IS NULL AND attempts > 0 THEN 1 ELSE 0 END), 0), \
               COALESCE(SUM(CASE WHEN failed_at IS NOT NULL THEN 1 ELSE 0 END), 0) \
             FROM {table}"
        );
        // The column itself rather than MIN(): SQLite keeps a column's declared type, so the
        // timestamp decodes the same on both backends.
        let oldest = format!(
            "SELECT created_at FROM {table} WHERE {done} IS NULL AND failed_at IS NULL \
             ORDER BY created_at LIMIT 1"
        );
        let last_error = format!(
            "SELECT last_error FROM {table} WHERE {done} IS NULL AND failed_at IS NULL \
             AND last_error IS NOT NULL ORDER BY next_attempt_at DESC LIMIT 1"
        );
        let ((pending, retrying, given_up), oldest_pending, last_error): QueueRow = with_pool!(self, pool => {
            let c = sqlx::query_as(sqlx::AssertSqlSafe(counts)).fetch_one(pool).await?;
            let o = sqlx::query_scalar(sqlx::AssertSqlSafe(oldest)).fetch_optional(pool).await?;
            let e = sqlx::query_scalar(sqlx::AssertSqlSafe(last_error)).fetch_optional(pool).await?;
            (c, o, e)
        });
        Ok(QueueSignals {
            pending,
            retrying,
            given_up,
            oldest_pending,
            last_error,
        })
    }
}
