//! The first admin and the setup credentials `stackspin admin-credentials` shows.
//!
//! As in the seed system, the setup password is kept retrievable (here in the database rather
//! than a cluster secret) because the operator needs it after `serve` has started unattended.
//! It is the *setup* credential: changing the admin's password does not update it. It is
//! sealed with the platform key, so the database alone does not give it away.

use chrono::{DateTime, Utc};
use stackspin_domain::{Email, NewUser, User, UserId};
use std::fmt;
use uuid::Uuid;

use crate::{StorageError, Store, in_tx, lock_admins, users::insert_user, with_pool};

#[derive(Clone)]
pub struct SetupCredentials {
    pub user_id: UserId,
    pub email: Email,
    pub password: String,
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for SetupCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetupCredentials")
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Store {
    /// Creates the first admin if, and only if, the database has no users yet; returns the
    /// new user, or `None` when there already were users. Safe to call from several replicas
    /// at once: exactly one creates the admin.
    pub async fn bootstrap_admin(
        &self,
        new: &NewUser,
        setup_password: &str,
    ) -> Result<Option<User>, StorageError> {
        let sealed_password = self.seal_text(setup_password)?;
        let now = Utc::now();
        let user = User {
            id: UserId::new_random(),
            email: new.email.clone(),
            name: new.name.clone(),
            password_hash: new.password_hash.clone(),
            is_admin: true,
            created_at: now,
            updated_at: now,
        };
        let created = in_tx!(self, tx, d => {
            lock_admins!(tx, d);
            let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
                .fetch_one(&mut *tx)
                .await?;
            if users > 0 {
                return Ok(None);
            }
            insert_user!(&mut *tx, &user);
            sqlx::query(
                "INSERT INTO setup_credentials (id, user_id, email, password, created_at) \
                 VALUES (1, $1, $2, $3, $4)",
            )
            .bind(user.id.0)
            .bind(user.email.as_str())
            .bind(&sealed_password)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Some(user)
        });
        Ok(created)
    }

    /// The setup credentials, if the first admin was created by `bootstrap_admin` and still
    /// exists.
    pub async fn setup_credentials(&self) -> Result<Option<SetupCredentials>, StorageError> {
        let row: Option<(Uuid, String, String, DateTime<Utc>)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT user_id, email, password, created_at FROM setup_credentials WHERE id = 1",
            )
            .fetch_optional(pool)
            .await?
        });
        row.map(|(id, email, password, created_at)| {
            Ok(SetupCredentials {
                user_id: UserId(id),
                email: Email::parse(&email)
                    .map_err(|e| StorageError::Corrupt(format!("setup credentials: {e}")))?,
                password: self.open_text(&password)?,
                created_at,
            })
        })
        .transpose()
    }
}
