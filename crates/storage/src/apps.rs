//! Registered apps (OpenID Connect clients).

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use stackspin_domain::{App, AppId, AppName, ClientId, NewApp, RedirectUri, SigningAlg};
use uuid::Uuid;

/// How an app receives the `groups` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupsClaim {
    /// `["admin"]` or `["user"]`.
    #[default]
    Role,
    /// `["admin", "user"]` for admins: for apps that check one access value only.
    RoleAndUser,
}

impl GroupsClaim {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupsClaim::Role => "role",
            GroupsClaim::RoleAndUser => "role_and_user",
        }
    }
}

use crate::{
    StorageError, Store,
    error::on_unique,
    in_tx,
    users::{parse_role, pin_default_roles},
    with_pool, with_writer,
};

macro_rules! app_columns {
    () => {
        "id, name, display_name, url, client_id, client_secret_hash, redirect_uris, \
         post_logout_redirect_uris, backchannel_logout_uri, default_role, id_token_alg, created_at, \
         updated_at, icon_url"
    };
}

#[derive(FromRow)]
struct AppRow {
    id: Uuid,
    name: String,
    display_name: String,
    url: String,
    client_id: String,
    client_secret_hash: Option<String>,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    backchannel_logout_uri: Option<String>,
    default_role: String,
    id_token_alg: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    icon_url: Option<String>,
}

fn decode_uris(app: &str, column: &str, json: &str) -> Result<Vec<RedirectUri>, StorageError> {
    let list: Vec<String> = serde_json::from_str(json)
        .map_err(|e| StorageError::Corrupt(format!("app {app}: {column}: {e}")))?;
    Ok(list.into_iter().map(RedirectUri::from_stored).collect())
}

fn encode_uris(uris: &[RedirectUri]) -> String {
    let list: Vec<&str> = uris.iter().map(RedirectUri::as_str).collect();
    // Serialising a list of strings cannot fail.
    serde_json::to_string(&list).unwrap_or_else(|_| "[]".into())
}

impl AppRow {
    fn into_app(self) -> Result<App, StorageError> {
        let name = AppName::parse(&self.name)
            .map_err(|e| StorageError::Corrupt(format!("app {}: {e}", self.id)))?;
        Ok(App {
            redirect_uris: decode_uris(&self.name, "redirect_uris", &self.redirect_uris)?,
            post_logout_redirect_uris: decode_uris(
                &self.name,
                "post_logout_redirect_uris",
                &self.post_logout_redirect_uris,
            )?,
            default_role: parse_role(&self.default_role)?,
            id_token_alg: SigningAlg::parse(&self.id_token_alg).ok_or_else(|| {
                StorageError::Corrupt(format!(
                    "app {}: id_token_alg {:?}",
                    self.name, self.id_token_alg
                ))
            })?,
            id: AppId(self.id),
            name,
            display_name: self.display_name,
            url: self.url,
            client_id: ClientId(self.client_id),
            client_secret_hash: self.client_secret_hash,
            backchannel_logout_uri: self.backchannel_logout_uri,
            icon_url: self.icon_url,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

impl Store {
    /// Registers an app under a client id chosen by the caller. `client_secret_hash` is `None`
    /// exactly when the app is a public client.
    pub async fn create_app(
        &self,
        new: &NewApp,
        client_id: ClientId,
        client_secret_hash: Option<String>,
    ) -> Result<App, StorageError> {
        let now = Utc::now();
        let app = App {
            id: AppId::new_random(),
            name: new.name.clone(),
            display_name: new.display_name.trim().to_owned(),
            url: new.url.to_string(),
            client_id,
            client_secret_hash,
            redirect_uris: new.redirect_uris.clone(),
            post_logout_redirect_uris: new.post_logout_redirect_uris.clone(),
            backchannel_logout_uri: new.backchannel_logout_uri.as_ref().map(|u| u.to_string()),
            icon_url: new.icon_url.as_ref().map(|u| u.to_string()),
            default_role: new.default_role,
            id_token_alg: new.id_token_alg,
            created_at: now,
            updated_at: now,
        };
        in_tx!(self, tx, _d => {
            sqlx::query(concat!(
                "INSERT INTO apps (", app_columns!(), ") \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
            ))
            .bind(app.id.0)
            .bind(app.name.as_str())
            .bind(&app.display_name)
            .bind(&app.url)
            .bind(&app.client_id.0)
            .bind(app.client_secret_hash.as_deref())
            .bind(encode_uris(&app.redirect_uris))
            .bind(encode_uris(&app.post_logout_redirect_uris))
            .bind(app.backchannel_logout_uri.as_deref())
            .bind(app.default_role.as_str())
            .bind(app.id_token_alg.as_str())
            .bind(app.created_at)
            .bind(app.updated_at)
            .bind(app.icon_url.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(|e| on_unique(e, || StorageError::DuplicateApp(app.name.to_string())))?;
        });
        Ok(app)
    }

    /// All apps, ordered by name.
    pub async fn list_apps(&self) -> Result<Vec<App>, StorageError> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, AppRow>(concat!(
                "SELECT ", app_columns!(), " FROM apps ORDER BY name"
            ))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(AppRow::into_app).collect()
    }

    pub async fn app_by_name(&self, name: &AppName) -> Result<Option<App>, StorageError> {
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, AppRow>(concat!(
                "SELECT ", app_columns!(), " FROM apps WHERE name = $1"
            ))
            .bind(name.as_str())
            .fetch_optional(pool)
            .await?
        });
        row.map(AppRow::into_app).transpose()
    }

    pub async fn app_by_client_id(&self, client_id: &str) -> Result<Option<App>, StorageError> {
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, AppRow>(concat!(
                "SELECT ", app_columns!(), " FROM apps WHERE client_id = $1"
            ))
            .bind(client_id)
            .fetch_optional(pool)
            .await?
        });
        row.map(AppRow::into_app).transpose()
    }

    /// Replaces an app's settings (everything but its name, client id and secret). A new
    /// default role applies to new users only (see [`Store::set_default_role`]).
    pub async fn update_app(&self, name: &AppName, new: &NewApp) -> Result<App, StorageError> {
        let now = Utc::now();
        in_tx!(self, tx, _d => {
            pin_default_roles!(tx, name);
            let n = sqlx::query(
                "UPDATE apps SET display_name = $1, url = $2, redirect_uris = $3, \
                 post_logout_redirect_uris = $4, backchannel_logout_uri = $5, default_role = $6, \
                 id_token_alg = $7, updated_at = $8, icon_url = $9 WHERE name = $10",
            )
            .bind(new.display_name.trim())
            .bind(new.url.as_str())
            .bind(encode_uris(&new.redirect_uris))
            .bind(encode_uris(&new.post_logout_redirect_uris))
            .bind(new.backchannel_logout_uri.as_ref().map(|u| u.as_str()))
            .bind(new.default_role.as_str())
            .bind(new.id_token_alg.as_str())
            .bind(now)
            .bind(new.icon_url.as_ref().map(|u| u.as_str()))
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(StorageError::AppNotFound(name.to_string()));
            }
        });
        self.app_by_name(name)
            .await?
            .ok_or_else(|| StorageError::AppNotFound(name.to_string()))
    }

    /// Sets the shape of the app's `groups` claim (see [`GroupsClaim`]).
    pub async fn set_groups_claim(
        &self,
        name: &AppName,
        shape: GroupsClaim,
    ) -> Result<(), StorageError> {
        let n = with_writer!(self, pool => {
            sqlx::query("UPDATE apps SET groups_claim = $1 WHERE name = $2")
                .bind(shape.as_str())
                .bind(name.as_str())
                .execute(pool)
                .await?
                .rows_affected()
        });
        if n == 0 {
            return Err(StorageError::AppNotFound(name.to_string()));
        }
        Ok(())
    }

    /// The shape of the app's `groups` claim; an app removed meanwhile gets the plain one.
    pub async fn groups_claim(&self, app: AppId) -> Result<GroupsClaim, StorageError> {
        let shape: Option<String> = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT groups_claim FROM apps WHERE id = $1")
                .bind(app.0)
                .fetch_optional(pool)
                .await?
        });
        Ok(match shape.as_deref() {
            Some("role_and_user") => GroupsClaim::RoleAndUser,
            _ => GroupsClaim::Role,
        })
    }

    /// Replaces a confidential client's secret (stored as its hash). The old secret stops
    /// working at once.
    pub async fn set_client_secret(
        &self,
        name: &AppName,
        secret_hash: &str,
    ) -> Result<(), StorageError> {
        let n = with_writer!(self, pool => {
            sqlx::query(
                "UPDATE apps SET client_secret_hash = $1, updated_at = $2 \
                 WHERE name = $3 AND client_secret_hash IS NOT NULL",
            )
            .bind(secret_hash)
            .bind(Utc::now())
            .bind(name.as_str())
            .execute(pool)
            .await?
            .rows_affected()
        });
        if n == 0 {
            return Err(StorageError::AppNotFound(name.to_string()));
        }
        Ok(())
    }

    /// Removes an app and every role assigned in it.
    pub async fn remove_app(&self, name: &AppName) -> Result<App, StorageError> {
        let removed = in_tx!(self, tx, _d => {
            let app = sqlx::query_as::<_, AppRow>(concat!(
                "SELECT ", app_columns!(), " FROM apps WHERE name = $1"
            ))
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StorageError::AppNotFound(name.to_string()))?
            .into_app()?;
            sqlx::query("DELETE FROM apps WHERE id = $1")
                .bind(app.id.0)
                .execute(&mut *tx)
                .await?;
            app
        });
        Ok(removed)
    }
}

/// How an app is doing, for the Dashboard's apps page: who is signed in through it, and
/// whether its back-channel logout endpoint is taking our notices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppStatus {
    /// Live Stackspin sessions that have signed into the app.
    pub signed_in: i64,
    /// When someone last signed into the app (among live sessions).
    pub last_sign_in: Option<DateTime<Utc>>,
    /// Logout notices that failed at least once and are still being retried.
    pub retrying_logouts: i64,
    /// Logout notices given up on in the last 7 days.
    pub failed_logouts: i64,
    /// The newest delivery error among those.
    pub last_error: Option<String>,
}

impl AppStatus {
    /// Back-channel logout is not reaching the app: sessions there may outlive ours.
    pub fn logout_failing(&self) -> bool {
        self.retrying_logouts > 0 || self.failed_logouts > 0
    }
}

impl Store {
    /// The status of every app, by id (an app missing from the map has no activity).
    pub async fn app_statuses(
        &self,
    ) -> Result<std::collections::HashMap<AppId, AppStatus>, StorageError> {
        let now = Utc::now();
        let week_ago = now - chrono::Duration::days(7);
        let (sessions, outbox, errors) = with_pool!(self, pool => {
            let sessions: Vec<(Uuid, i64, Option<DateTime<Utc>>)> = sqlx::query_as(
                "SELECT sa.app_id, COUNT(*), MAX(sa.first_at) FROM session_apps sa \
                 JOIN sessions s ON s.sid = sa.sid WHERE s.expires_at > $1 GROUP BY sa.app_id",
            )
            .bind(now)
            .fetch_all(pool)
            .await?;
            let outbox: Vec<(Uuid, i64, i64)> = sqlx::query_as(
                "SELECT app_id, \
                 COALESCE(SUM(CASE WHEN delivered_at IS NULL AND failed_at IS NULL AND attempts > 0 \
                     THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN failed_at IS NOT NULL AND failed_at > $1 THEN 1 ELSE 0 END), 0) \
                 FROM backchannel_outbox WHERE delivered_at IS NULL GROUP BY app_id",
            )
            .bind(week_ago)
            .fetch_all(pool)
            .await?;
            // Newest first, so the first row per app is its latest error.
            let errors: Vec<(Uuid, String)> = sqlx::query_as(
                "SELECT app_id, last_error FROM backchannel_outbox \
                 WHERE delivered_at IS NULL AND last_error IS NOT NULL \
                 AND (failed_at IS NULL OR failed_at > $1) \
                 ORDER BY created_at DESC LIMIT 1000",
            )
            .bind(week_ago)
            .fetch_all(pool)
            .await?;
            (sessions, outbox, errors)
        });
        let mut map: std::collections::HashMap<AppId, AppStatus> = Default::default();
        for (app, count, last) in sessions {
            let s = map.entry(AppId(app)).or_default();
            s.signed_in = count;
            s.last_sign_in = last;
        }
        for (app, retrying, failed) in outbox {
            let s = map.entry(AppId(app)).or_default();
            s.retrying_logouts = retrying;
            s.failed_logouts = failed;
        }
        for (app, error) in errors {
            let s = map.entry(AppId(app)).or_default();
            if s.last_error.is_none() {
                s.last_error = Some(error);
            }
        }
        Ok(map)
    }
}
