//! Users and their per-app roles.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use stackspin_domain::{
    AppId, AppName, Email, NewUser, Role, User, UserId, UserName, password::PasswordHash,
};
use uuid::Uuid;

use crate::{StorageError, Store, in_tx, lock_admins, with_pool, with_writer};

/// Admins other than `$1` who can log in. An invited admin who never chose a password cannot
/// manage anything yet, so they do not count towards the last-admin guard.
pub(crate) const OTHER_ADMINS_WHO_CAN_LOG_IN: &str =
    "SELECT COUNT(*) FROM users WHERE is_admin AND password_hash IS NOT NULL AND id <> $1";

macro_rules! user_columns {
    () => {
        "id, email, name, password_hash, is_admin, created_at, updated_at"
    };
}
pub(crate) use user_columns;

/// Loads the user with `$email` inside transaction `$tx`, or returns `UserNotFound`.
macro_rules! user_in_tx {
    ($tx:ident, $email:expr) => {
        sqlx::query_as::<_, UserRow>(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE lower(email) = $1"
        ))
        .bind($email.normalized())
        .fetch_optional(&mut *$tx)
        .await?
        .ok_or_else(|| StorageError::UserNotFound($email.to_string()))?
        .into_user()?
    };
}

#[derive(FromRow)]
pub(crate) struct UserRow {
    id: Uuid,
    email: String,
    name: String,
    password_hash: Option<String>,
    is_admin: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl UserRow {
    /// Re-parses stored values so the rest of the system can trust the types; a failure
    /// means someone wrote to the database behind our back, which we report, not hide.
    pub(crate) fn into_user(self) -> Result<User, StorageError> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            StorageError::Corrupt(format!("user {}: {what}: {e}", self.id))
        };
        let email = Email::parse(&self.email).map_err(|e| corrupt("email", &e))?;
        let name = UserName::parse(&self.name).map_err(|e| corrupt("name", &e))?;
        let password_hash = match self.password_hash.clone() {
            Some(h) => Some(PasswordHash::from_phc(h).map_err(|e| corrupt("password hash", &e))?),
            None => None,
        };
        Ok(User {
            id: UserId(self.id),
            email,
            name,
            password_hash,
            is_admin: self.is_admin,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// Sets a new user's initial roles inside a transaction; an unknown app aborts it.
macro_rules! set_roles_in_tx {
    ($tx:ident, $user_id:expr, $roles:expr) => {
        for (app, role) in $roles {
            let app_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM apps WHERE name = $1")
                .bind(app.as_str())
                .fetch_optional(&mut *$tx)
                .await?
                .ok_or_else(|| $crate::StorageError::AppNotFound(app.to_string()))?;
            sqlx::query(
                "INSERT INTO user_app_roles (user_id, app_id, role, updated_at) VALUES ($1, $2, $3, $4)",
            )
            .bind($user_id.0)
            .bind(app_id)
            .bind(role.as_str())
            .bind(chrono::Utc::now())
            .execute(&mut *$tx)
            .await?;
        }
    };
}
pub(crate) use set_roles_in_tx;

/// Sets `$user`'s role in `$app` inside transaction `$tx` and evaluates to the previous role.
/// A real change revokes the person's tokens for that app and queues its back-channel logout
/// in the same transaction, so the new role takes effect in the app at once.
macro_rules! apply_role {
    ($tx:ident, $user:expr, $app:expr, $role:expr) => {{
        let user: &User = $user;
        let app: &AppName = $app;
        let role: Role = $role;
        let (app_id, previous): (Uuid, String) = sqlx::query_as(
            "SELECT a.id, COALESCE(r.role, a.default_role) FROM apps a \
             LEFT JOIN user_app_roles r ON r.app_id = a.id AND r.user_id = $1 \
             WHERE a.name = $2",
        )
        .bind(user.id.0)
        .bind(app.as_str())
        .fetch_optional(&mut *$tx)
        .await?
        .ok_or_else(|| StorageError::AppNotFound(app.to_string()))?;
        sqlx::query(
            "INSERT INTO user_app_roles (user_id, app_id, role, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, app_id) \
             DO UPDATE SET role = excluded.role, updated_at = excluded.updated_at",
        )
        .bind(user.id.0)
        .bind(app_id)
        .bind(role.as_str())
        .bind(Utc::now())
        .execute(&mut *$tx)
        .await?;
        let previous = parse_role(&previous)?;
        if previous != role {
            // The new role must take effect in the app at once: its tokens stop working
            // and the app is told to end the person's session (back-channel logout), so
            // the next login carries the new `groups` claim.
            sqlx::query(
                "UPDATE oauth_tokens SET revoked_at = $1 \
                 WHERE user_id = $2 AND app_id = $3 AND revoked_at IS NULL",
            )
            .bind(Utc::now())
            .bind(user.id.0)
            .bind(app_id)
            .execute(&mut *$tx)
            .await?;
            crate::oidc::queue_logouts!(
                $tx,
                "role changed",
                "s.user_id = $1 AND sa.app_id = $2",
                user.id.0,
                app_id
            );
            sqlx::query(
                "DELETE FROM session_apps WHERE app_id = $1 \
                 AND sid IN (SELECT sid FROM sessions WHERE user_id = $2)",
            )
            .bind(app_id)
            .bind(user.id.0)
            .execute(&mut *$tx)
            .await?;
        }
        previous
    }};
}
pub(crate) use apply_role;

/// Gives every user without an explicit role in `$app` its current default as an explicit
/// role, inside `$tx`: used before the default changes, so it only affects new users.
macro_rules! pin_default_roles {
    ($tx:ident, $app:expr) => {
        sqlx::query(
            "INSERT INTO user_app_roles (user_id, app_id, role, updated_at) \
             SELECT u.id, a.id, a.default_role, $2 FROM users u, apps a \
             WHERE a.name = $1 AND NOT EXISTS \
             (SELECT 1 FROM user_app_roles r WHERE r.user_id = u.id AND r.app_id = a.id)",
        )
        .bind($app.as_str())
        .bind(chrono::Utc::now())
        .execute(&mut *$tx)
        .await?;
    };
}
pub(crate) use pin_default_roles;

/// The result of changing someone's role in one app, so callers can act on the change
/// (the identity provider ends the person's session in that app).
#[derive(Clone, Debug)]
pub struct RoleChange {
    pub user: User,
    pub app: AppName,
    pub previous: Role,
    pub role: Role,
}

impl Store {
    /// Adds a user. Fails with [`StorageError::DuplicateEmail`] if the address is taken in
    /// any capitalisation.
    pub async fn create_user(&self, new: &NewUser) -> Result<User, StorageError> {
        self.create_user_with_roles(new, &[]).await
    }

    /// Adds a user with initial roles, all or nothing.
    pub async fn create_user_with_roles(
        &self,
        new: &NewUser,
        roles: &[(AppName, Role)],
    ) -> Result<User, StorageError> {
        let now = Utc::now();
        let user = User {
            id: UserId::new_random(),
            email: new.email.clone(),
            name: new.name.clone(),
            password_hash: new.password_hash.clone(),
            is_admin: new.is_admin,
            created_at: now,
            updated_at: now,
        };
        in_tx!(self, tx, _d => {
            insert_user!(&mut *tx, &user);
            set_roles_in_tx!(tx, user.id, roles);
        });
        Ok(user)
    }

    pub async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StorageError> {
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, UserRow>(concat!(
                "SELECT ", user_columns!(), " FROM users WHERE lower(email) = $1"
            ))
            .bind(email.normalized())
            .fetch_optional(pool)
            .await?
        });
        row.map(UserRow::into_user).transpose()
    }

    pub async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StorageError> {
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, UserRow>(concat!(
                "SELECT ", user_columns!(), " FROM users WHERE id = $1"
            ))
            .bind(id.0)
            .fetch_optional(pool)
            .await?
        });
        row.map(UserRow::into_user).transpose()
    }

    /// All users, ordered by e-mail address.
    pub async fn list_users(&self) -> Result<Vec<User>, StorageError> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, UserRow>(concat!(
                "SELECT ", user_columns!(), " FROM users ORDER BY lower(email), id"
            ))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(UserRow::into_user).collect()
    }

    pub async fn count_users(&self) -> Result<u64, StorageError> {
        let n: i64 = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(pool).await?
        });
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// Deletes a user and their roles. Refuses to delete the last admin who can log in, so the
    /// platform can always be managed.
    pub async fn delete_user(&self, email: &Email) -> Result<User, StorageError> {
        let deleted = in_tx!(self, tx, d => {
            lock_admins!(tx, d);
            let user = user_in_tx!(tx, email);
            if user.is_admin {
                let others: i64 = sqlx::query_scalar(OTHER_ADMINS_WHO_CAN_LOG_IN)
                    .bind(user.id.0)
                    .fetch_one(&mut *tx)
                    .await?;
                if others == 0 {
                    return Err(StorageError::LastAdmin(user.email.to_string()));
                }
            }
            // Apps end the person's sessions now, not when their tokens expire.
            crate::oidc::queue_logouts!(tx, "user deleted", "s.user_id = $1", user.id.0);
            sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(user.id.0)
                .execute(&mut *tx)
                .await?;
            user
        });
        Ok(deleted)
    }

    /// Replaces a user's password hash (after a reset, or a rehash with new parameters).
    pub async fn set_password_hash(
        &self,
        id: UserId,
        hash: &PasswordHash,
    ) -> Result<(), StorageError> {
        let done = with_writer!(self, pool => {
            sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
                .bind(hash.as_phc())
                .bind(Utc::now())
                .bind(id.0)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if done == 0 {
            return Err(StorageError::UserNotFound(id.to_string()));
        }
        Ok(())
    }

    /// Sets a user's role in one app, returning what it was before (the app's default role
    /// if it had never been set).
    pub async fn set_role(
        &self,
        email: &Email,
        app: &AppName,
        role: Role,
    ) -> Result<RoleChange, StorageError> {
        let change = in_tx!(self, tx, _d => {
            let user = user_in_tx!(tx, email);
            let previous = apply_role!(tx, &user, app, role);
            RoleChange {
                previous,
                user,
                app: app.clone(),
                role,
            }
        });
        Ok(change)
    }

    /// The user's effective role in one app: the explicit one, else the app's default.
    /// Gives `role` in `app` to every admin who has no role of their own there yet (one an
    /// admin set, even `none`, stays). For the platform's own tools, which admins use.
    /// Returns how many were given it.
    pub async fn grant_admins_without_role(
        &self,
        app: AppId,
        role: Role,
    ) -> Result<u64, StorageError> {
        let now = Utc::now();
        let done = with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO user_app_roles (user_id, app_id, role, updated_at) \
                 SELECT u.id, $1, $2, $3 FROM users u \
                 WHERE u.is_admin AND NOT EXISTS \
                   (SELECT 1 FROM user_app_roles r WHERE r.user_id = u.id AND r.app_id = $1)",
            )
            .bind(app.0)
            .bind(role.as_str())
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done)
    }

    pub async fn role_of(&self, user: UserId, app: AppId) -> Result<Role, StorageError> {
        let role: Option<String> = with_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT COALESCE(r.role, a.default_role) FROM apps a \
                 LEFT JOIN user_app_roles r ON r.app_id = a.id AND r.user_id = $1 \
                 WHERE a.id = $2",
            )
            .bind(user.0)
            .bind(app.0)
            .fetch_optional(pool)
            .await?
        });
        // An app removed mid-flow grants nothing.
        role.map_or(Ok(Role::None), |r| parse_role(&r))
    }

    /// The user's effective role in every registered app (explicit role, else the app's
    /// default), ordered by app name.
    pub async fn roles_of(&self, id: UserId) -> Result<Vec<(AppName, Role)>, StorageError> {
        let rows: Vec<(String, String)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT a.name, COALESCE(r.role, a.default_role) FROM apps a \
                 LEFT JOIN user_app_roles r ON r.app_id = a.id AND r.user_id = $1 \
                 ORDER BY a.name",
            )
            .bind(id.0)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(name, role)| {
                let name = AppName::parse(&name)
                    .map_err(|e| StorageError::Corrupt(format!("app name: {e}")))?;
                Ok((name, parse_role(&role)?))
            })
            .collect()
    }
}

pub(crate) fn parse_role(s: &str) -> Result<Role, StorageError> {
    s.parse()
        .map_err(|e| StorageError::Corrupt(format!("role: {e}")))
}

/// Inserts a user inside a caller's transaction (a macro so it compiles for both backends).
macro_rules! insert_user {
    ($exec:expr, $user:expr) => {{
        let user: &stackspin_domain::User = $user;
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, is_admin, created_at, updated_at, \
             email_sort, name_sort) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(user.id.0)
        .bind(user.email.as_str())
        .bind(user.name.as_str())
        .bind(user.password_hash.as_ref().map(|h| h.as_phc()))
        .bind(user.is_admin)
        .bind(user.created_at)
        .bind(user.updated_at)
        .bind(stackspin_domain::user::natural_key(user.email.as_str()))
        .bind(stackspin_domain::user::natural_key(user.name.as_str()))
        .execute($exec)
        .await
        .map_err(|e| {
            $crate::error::on_unique(e, || {
                $crate::StorageError::DuplicateEmail(user.email.to_string())
            })
        })?;
    }};
}
pub(crate) use insert_user;
