//! The user directory as admins browse and edit it: search, sort and pages; edits that detect
//! a concurrent change; admin API tokens.

use chrono::{DateTime, Utc};
use stackspin_domain::{AppName, Email, Role, User, UserId, UserName};
use uuid::Uuid;

use crate::{
    RoleChange, StorageError, Store, in_tx, lock_admins,
    users::{UserRow, apply_role, parse_role, pin_default_roles, user_columns},
    with_pool, with_writer,
};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UserSort {
    #[default]
    Email,
    Name,
    Created,
}

/// One page of the user list. `query` matches e-mail or name, case-insensitively.
#[derive(Clone, Debug)]
pub struct UserPageRequest {
    pub query: Option<String>,
    pub sort: UserSort,
    pub descending: bool,
    /// 1-based.
    pub page: u32,
    pub per_page: u32,
}

#[derive(Clone, Debug)]
pub struct UserPage {
    pub users: Vec<User>,
    /// What the users list shows beside each user, in the order of `users`.
    pub details: Vec<UserDetails>,
    pub total: u64,
}

/// What the users list shows of a person beyond their account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserDetails {
    pub two_step: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    /// The apps the person may use (effective role not "none"), by app name.
    pub apps: Vec<AppName>,
}

/// A change to a user. `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct UserPatch {
    pub email: Option<Email>,
    pub name: Option<UserName>,
    pub is_admin: Option<bool>,
}

/// Escapes LIKE wildcards so a search for `50%` finds "50%", not everything.
fn like_pattern(q: &str) -> String {
    let escaped = q
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

macro_rules! page_query {
    ($order:literal) => {
        concat!(
            "SELECT ", user_columns!(), " FROM users \
             WHERE ($1 IS NULL OR lower(email) LIKE $1 ESCAPE '\\' OR lower(name) LIKE $1 ESCAPE '\\') \
             ORDER BY ", $order, ", id LIMIT $2 OFFSET $3"
        )
    };
    // Without a search the filter is left out, so the planner can walk the sort's index
    // instead of sorting every row ($1 stays bound, as NULL, and unused).
    (all $order:literal) => {
        concat!(
            "SELECT ", user_columns!(), " FROM users WHERE $1 IS NULL \
             ORDER BY ", $order, ", id LIMIT $2 OFFSET $3"
        )
    };
}

impl Store {
    pub async fn user_page(&self, r: &UserPageRequest) -> Result<UserPage, StorageError> {
        let pattern = r
            .query
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(like_pattern);
        let per_page = i64::from(r.per_page.clamp(1, 500));
        let offset = i64::from(r.page.max(1) - 1) * per_page;
        // The order is chosen from a closed set, so each query stays a static string.
        let sql: &'static str = match (pattern.is_some(), r.sort, r.descending) {
            (true, UserSort::Email, false) => page_query!("email_sort ASC"),
            (true, UserSort::Email, true) => page_query!("email_sort DESC"),
            (true, UserSort::Name, false) => page_query!("name_sort ASC"),
            (true, UserSort::Name, true) => page_query!("name_sort DESC"),
            (true, UserSort::Created, false) => page_query!("created_at ASC"),
            (true, UserSort::Created, true) => page_query!("created_at DESC"),
            (false, UserSort::Email, false) => page_query!(all "email_sort ASC"),
            (false, UserSort::Email, true) => page_query!(all "email_sort DESC"),
            (false, UserSort::Name, false) => page_query!(all "name_sort ASC"),
            (false, UserSort::Name, true) => page_query!(all "name_sort DESC"),
            (false, UserSort::Created, false) => page_query!(all "created_at ASC"),
            (false, UserSort::Created, true) => page_query!(all "created_at DESC"),
        };
        let (rows, total): (Vec<UserRow>, i64) = with_pool!(self, pool => {
            let rows = sqlx::query_as::<_, UserRow>(sql)
                .bind(pattern.as_deref())
                .bind(per_page)
                .bind(offset)
                .fetch_all(pool)
                .await?;
            let total: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM users \
                 WHERE ($1 IS NULL OR lower(email) LIKE $1 ESCAPE '\\' OR lower(name) LIKE $1 ESCAPE '\\')",
            )
            .bind(pattern.as_deref())
            .fetch_one(pool)
            .await?;
            (rows, total)
        });
        let users: Vec<User> = rows
            .into_iter()
            .map(UserRow::into_user)
            .collect::<Result<_, _>>()?;
        let details = self.user_details(&users).await?;
        Ok(UserPage {
            users,
            details,
            total: u64::try_from(total).unwrap_or_default(),
        })
    }

    /// Two-step status, last sign-in and apps of each user, in their order. Three queries
    /// for the whole page, whatever its length.
    async fn user_details(&self, users: &[User]) -> Result<Vec<UserDetails>, StorageError> {
        if users.is_empty() {
            return Ok(vec![]);
        }
        // The placeholders are generated ($1..$n), never the values.
        let placeholders: Vec<String> = (1..=users.len()).map(|i| format!("${i}")).collect();
        let list = placeholders.join(", ");
        let facts_sql = format!(
            "SELECT id, totp_secret IS NOT NULL, last_login_at FROM users WHERE id IN ({list})"
        );
        let roles_sql = format!(
            "SELECT r.user_id, a.name, r.role FROM user_app_roles r \
             JOIN apps a ON a.id = r.app_id WHERE r.user_id IN ({list})"
        );
        type Facts = (Uuid, bool, Option<DateTime<Utc>>);
        type Explicit = (Uuid, String, String);
        let (facts, explicit, apps): (Vec<Facts>, Vec<Explicit>, Vec<(String, String)>) = with_pool!(self, pool => {
            let mut q = sqlx::query_as::<_, Facts>(sqlx::AssertSqlSafe(facts_sql.clone()));
            for u in users {
                q = q.bind(u.id.0);
            }
            let facts = q.fetch_all(pool).await?;
            let mut q = sqlx::query_as::<_, Explicit>(sqlx::AssertSqlSafe(roles_sql.clone()));
            for u in users {
                q = q.bind(u.id.0);
            }
            let explicit = q.fetch_all(pool).await?;
            let apps = sqlx::query_as::<_, (String, String)>(
                "SELECT name, default_role FROM apps ORDER BY name",
            )
            .fetch_all(pool)
            .await?;
            (facts, explicit, apps)
        });
        let mut out = Vec::with_capacity(users.len());
        for u in users {
            let (two_step, last_login_at) = facts
                .iter()
                .find(|(id, ..)| *id == u.id.0)
                .map(|(_, t, l)| (*t, *l))
                .unwrap_or_default();
            let mut names = vec![];
            for (app, default_role) in &apps {
                let role = explicit
                    .iter()
                    .find(|(id, a, _)| *id == u.id.0 && a == app)
                    .map_or(default_role.as_str(), |(_, _, r)| r.as_str());
                if parse_role(role)? != Role::None {
                    names.push(
                        AppName::parse(app)
                            .map_err(|e| StorageError::Corrupt(format!("app name: {e}")))?,
                    );
                }
            }
            out.push(UserDetails {
                two_step,
                last_login_at,
                apps: names,
            });
        }
        Ok(out)
    }

    /// Fills the natural-order sort keys of users created before they existed (migration
    /// 0015), so an upgraded installation sorts like a new one.
    pub(crate) async fn backfill_sort_keys(&self) -> Result<(), StorageError> {
        let rows: Vec<(Uuid, String, String)> = with_pool!(self, pool => {
            sqlx::query_as("SELECT id, email, name FROM users WHERE email_sort = ''")
                .fetch_all(pool)
                .await?
        });
        if rows.is_empty() {
            return Ok(());
        }
        in_tx!(self, tx, _dialect => {
            for (id, email, name) in &rows {
                sqlx::query("UPDATE users SET email_sort = $1, name_sort = $2 WHERE id = $3")
                    .bind(stackspin_domain::user::natural_key(email))
                    .bind(stackspin_domain::user::natural_key(name))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        });
        tracing::info!(users = rows.len(), "filled the users' sort keys");
        Ok(())
    }

    /// Applies `patch` if the user is still as the caller saw it (`expected` is the
    /// `updated_at` they read): two admins editing one user do not silently overwrite each
    /// other. Demoting the last admin is refused.
    pub async fn update_user(
        &self,
        id: UserId,
        expected: DateTime<Utc>,
        patch: &UserPatch,
    ) -> Result<User, StorageError> {
        Ok(self
            .update_user_and_roles(id, expected, patch, &[])
            .await?
            .0)
    }

    /// As [`Store::update_user`], also setting roles, all in one transaction. Returns the
    /// user and the roles that really changed (their apps are told through back-channel
    /// logout).
    pub async fn update_user_and_roles(
        &self,
        id: UserId,
        expected: DateTime<Utc>,
        patch: &UserPatch,
        roles: &[(AppName, Role)],
    ) -> Result<(User, Vec<RoleChange>), StorageError> {
        let now = Utc::now();
        let updated = in_tx!(self, tx, d => {
            lock_admins!(tx, d);
            let current = sqlx::query_as::<_, UserRow>(concat!(
                "SELECT ", user_columns!(), " FROM users WHERE id = $1"
            ))
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StorageError::UserNotFound(id.to_string()))?
            .into_user()?;
            // Timestamps round-trip at microsecond precision on both backends.
            if current.updated_at.timestamp_micros() != expected.timestamp_micros() {
                return Err(StorageError::Conflict(current.email.to_string()));
            }
            if current.is_admin && patch.is_admin == Some(false) {
                let others: i64 = sqlx::query_scalar(crate::users::OTHER_ADMINS_WHO_CAN_LOG_IN)
                    .bind(current.id.0)
                    .fetch_one(&mut *tx)
                    .await?;
                if others == 0 {
                    return Err(StorageError::LastAdmin(current.email.to_string()));
                }
            }
            let email = patch.email.clone().unwrap_or(current.email.clone());
            let name = patch.name.clone().unwrap_or(current.name.clone());
            let is_admin = patch.is_admin.unwrap_or(current.is_admin);
            sqlx::query(
                "UPDATE users SET email = $1, name = $2, is_admin = $3, updated_at = $4, \
                 email_sort = $6, name_sort = $7 WHERE id = $5",
            )
                .bind(email.as_str())
                .bind(name.as_str())
                .bind(is_admin)
                .bind(now)
                .bind(id.0)
                .bind(stackspin_domain::user::natural_key(email.as_str()))
                .bind(stackspin_domain::user::natural_key(name.as_str()))
                .execute(&mut *tx)
                .await
                .map_err(|e| crate::error::on_unique(e, || StorageError::DuplicateEmail(email.to_string())))?;
            let user = User { email, name, is_admin, updated_at: now, ..current };
            let mut changes = vec![];
            for (app, role) in roles {
                let previous = apply_role!(tx, &user, app, *role);
                if previous != *role {
                    changes.push(RoleChange { user: user.clone(), app: app.clone(), previous, role: *role });
                }
            }
            (user, changes)
        });
        Ok(updated)
    }

    /// Changes many roles in one transaction (the access matrix, batch role changes). With an
    /// `expected` role, a cell whose stored role differs (someone else changed it since the
    /// page was loaded) aborts the whole change with a conflict.
    pub async fn set_roles(
        &self,
        changes: &[(UserId, AppName, Option<Role>, Role)],
    ) -> Result<Vec<RoleChange>, StorageError> {
        let done = in_tx!(self, tx, _d => {
            let mut done = vec![];
            for (id, app, expected, role) in changes {
                let user = sqlx::query_as::<_, UserRow>(concat!(
                    "SELECT ", user_columns!(), " FROM users WHERE id = $1"
                ))
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StorageError::UserNotFound(id.to_string()))?
                .into_user()?;
                let previous = apply_role!(tx, &user, app, *role);
                if expected.is_some_and(|e| e != previous) {
                    return Err(StorageError::Conflict(format!("{}'s role in {app}", user.email)));
                }
                if previous != *role {
                    done.push(RoleChange { user, app: app.clone(), previous, role: *role });
                }
            }
            done
        });
        Ok(done)
    }

    /// Deletes several users at once, all or none; refuses if it would take away the last admin
    /// who can log in.
    pub async fn delete_users(&self, ids: &[UserId]) -> Result<Vec<User>, StorageError> {
        let deleted = in_tx!(self, tx, d => {
            lock_admins!(tx, d);
            let mut users = vec![];
            for id in ids {
                let user = sqlx::query_as::<_, UserRow>(concat!(
                    "SELECT ", user_columns!(), " FROM users WHERE id = $1"
                ))
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StorageError::UserNotFound(id.to_string()))?
                .into_user()?;
                crate::oidc::queue_logouts!(tx, "user deleted", "s.user_id = $1", user.id.0);
                sqlx::query("DELETE FROM users WHERE id = $1").bind(user.id.0).execute(&mut *tx).await?;
                users.push(user);
            }
            let admins_left: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM users WHERE is_admin AND password_hash IS NOT NULL",
            )
            .fetch_one(&mut *tx)
            .await?;
            if admins_left == 0 && users.iter().any(|u| u.is_admin) {
                let last = users.iter().find(|u| u.is_admin).map(|u| u.email.to_string()).unwrap_or_default();
                return Err(StorageError::LastAdmin(last));
            }
            users
        });
        Ok(deleted)
    }

    /// The role new users get in an app. Existing users keep the role they have: theirs is
    /// pinned as an explicit role before the default changes, in the same transaction.
    pub async fn set_default_role(&self, app: &AppName, role: Role) -> Result<(), StorageError> {
        in_tx!(self, tx, _d => {
            pin_default_roles!(tx, app);
            let n = sqlx::query("UPDATE apps SET default_role = $1, updated_at = $2 WHERE name = $3")
                .bind(role.as_str())
                .bind(Utc::now())
                .bind(app.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(StorageError::AppNotFound(app.to_string()));
            }
        });
        Ok(())
    }

    /// Effective roles (explicit, else the app default) of the given users, for the access
    /// matrix.
    pub async fn effective_roles(
        &self,
        users: &[UserId],
    ) -> Result<Vec<(UserId, AppName, Role)>, StorageError> {
        let mut out = vec![];
        for id in users {
            for (app, role) in self.roles_of(*id).await? {
                out.push((*id, app, role));
            }
        }
        Ok(out)
    }

    /// Creates an API token for an admin; the caller keeps the token, we keep its hash.
    pub async fn create_api_token(
        &self,
        user: UserId,
        name: &str,
        token_hash: &str,
    ) -> Result<(), StorageError> {
        let now = Utc::now();
        with_writer!(self, pool => {
            sqlx::query("INSERT INTO api_tokens (token_hash, name, user_id, created_at) VALUES ($1, $2, $3, $4)")
                .bind(token_hash)
                .bind(name)
                .bind(user.0)
                .bind(now)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The user an API token acts for, if the token is live.
    pub async fn api_token_user(&self, token_hash: &str) -> Result<Option<User>, StorageError> {
        let id: Option<Uuid> = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT user_id FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
                .bind(token_hash)
                .fetch_optional(pool)
                .await?
        });
        match id {
            Some(id) => self.user_by_id(UserId(id)).await,
            None => Ok(None),
        }
    }
}
