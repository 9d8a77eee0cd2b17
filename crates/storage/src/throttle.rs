//! Attempt counters for throttling, known devices, and facts `serve` records for the admin
//! commands. Counters live in the database so every replica counts against the same limit.

use chrono::Utc;
use stackspin_domain::UserId;

use crate::{StorageError, Store, in_tx, with_pool, with_writer};

impl Store {
    /// Counts one attempt against each key and returns each key's count including this one.
    /// A key whose window (of `window_secs`) has passed starts again at 1. The increment and
    /// the read are one statement per key, all in one transaction, so concurrent attempts
    /// (on any replica) each see a distinct count: a burst cannot all pass a check made
    /// before the first of them is recorded.
    pub async fn count_attempts(
        &self,
        keys: &[String],
        window_secs: i64,
    ) -> Result<Vec<i64>, StorageError> {
        let now = Utc::now().timestamp();
        let expired_before = now - window_secs;
        let counts = in_tx!(self, tx, _d => {
            let mut counts = Vec::with_capacity(keys.len());
            for key in keys {
                let n: i64 = sqlx::query_scalar(
                    "INSERT INTO throttle_counters (key, window_start, count) VALUES ($1, $2, 1) \
                     ON CONFLICT (key) DO UPDATE SET \
                       count = CASE WHEN throttle_counters.window_start <= $3 THEN 1 \
                               ELSE throttle_counters.count + 1 END, \
                       window_start = CASE WHEN throttle_counters.window_start <= $3 THEN $2 \
                               ELSE throttle_counters.window_start END \
                     RETURNING count",
                )
                .bind(key)
                .bind(now)
                .bind(expired_before)
                .fetch_one(&mut *tx)
                .await?;
                counts.push(n);
            }
            counts
        });
        Ok(counts)
    }

    /// Forgets the counts of these keys (after a successful sign-in, for instance).
    pub async fn clear_attempts(&self, keys: &[String]) -> Result<(), StorageError> {
        in_tx!(self, tx, _d => {
            for key in keys {
                sqlx::query("DELETE FROM throttle_counters WHERE key = $1")
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            }
        });
        Ok(())
    }

    /// Takes back one attempt from each key: the attempt turned out to be legitimate, so it
    /// should not count towards a limit on failures.
    pub async fn release_attempts(&self, keys: &[String]) -> Result<(), StorageError> {
        in_tx!(self, tx, _d => {
            for key in keys {
                sqlx::query(
                    "UPDATE throttle_counters SET count = count - 1 WHERE key = $1 AND count > 0",
                )
                .bind(key)
                .execute(&mut *tx)
                .await?;
            }
        });
        Ok(())
    }

    /// Deletes counters whose window ended, and known devices older than `device_days`.
    pub async fn prune_throttle(
        &self,
        window_secs: i64,
        device_days: i64,
    ) -> Result<u64, StorageError> {
        let before = Utc::now().timestamp() - window_secs;
        let devices_before = Utc::now() - chrono::Duration::days(device_days);
        Ok(in_tx!(self, tx, _d => {
            let a = sqlx::query("DELETE FROM throttle_counters WHERE window_start <= $1")
                .bind(before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let b = sqlx::query("DELETE FROM known_devices WHERE created_at < $1")
                .bind(devices_before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            a + b
        }))
    }

    /// Remembers that the browser holding the token behind `token_hash` signed in as `user`.
    pub async fn add_known_device(
        &self,
        token_hash: &str,
        user: UserId,
    ) -> Result<(), StorageError> {
        with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO known_devices (token_hash, user_id, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (token_hash) DO NOTHING",
            )
            .bind(token_hash)
            .bind(user.0)
            .bind(Utc::now())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The account a known-device token belongs to, if it is still remembered.
    pub async fn known_device_user(
        &self,
        token_hash: &str,
    ) -> Result<Option<UserId>, StorageError> {
        Ok(with_pool!(self, pool => {
            sqlx::query_scalar::<_, uuid::Uuid>(
                "SELECT user_id FROM known_devices WHERE token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await?
        })
        .map(UserId))
    }

    /// Records a fact for the admin commands, replacing an earlier value.
    pub async fn set_server_fact(&self, name: &str, value: &str) -> Result<(), StorageError> {
        with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO server_facts (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )
            .bind(name)
            .bind(value)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn server_fact(&self, name: &str) -> Result<Option<String>, StorageError> {
        Ok(with_pool!(self, pool => {
            sqlx::query_scalar::<_, String>("SELECT value FROM server_facts WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?
        }))
    }
}
