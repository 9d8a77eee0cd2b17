//! Catalog apps on the cluster: what the admin asked for (desired state) and what the operator
//! last saw (status), plus the secrets generated for them once. The Dashboard, the API and the
//! CLI write requests here; the operator is the only writer of status and target versions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{StorageError, Store, in_tx, with_pool, with_writer};

/// What the operator last saw of an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AppState {
    /// Asked for; nothing applied yet.
    Pending,
    /// Applied; Flux is fetching the chart or installing it.
    Installing,
    Ready,
    /// Installing or upgrading failed; `reason` says why (the controller's words).
    Failed,
    /// Ready, and a newer chart version waits for the maintenance window.
    UpdatePending,
    /// An upgrade failed and Flux rolled back to the previous version.
    RolledBack,
    /// A restore is replacing its data; its releases are suspended meanwhile.
    Restoring,
    Uninstalling,
}

impl AppState {
    pub fn as_str(self) -> &'static str {
        match self {
            AppState::Pending => "pending",
            AppState::Installing => "installing",
            AppState::Ready => "ready",
            AppState::Failed => "failed",
            AppState::UpdatePending => "update_pending",
            AppState::RolledBack => "rolled_back",
            AppState::Restoring => "restoring",
            AppState::Uninstalling => "uninstalling",
        }
    }

    fn parse(s: &str) -> Option<AppState> {
        Some(match s {
            "pending" => AppState::Pending,
            "installing" => AppState::Installing,
            "ready" => AppState::Ready,
            "failed" => AppState::Failed,
            "update_pending" => AppState::UpdatePending,
            "rolled_back" => AppState::RolledBack,
            "restoring" => AppState::Restoring,
            "uninstalling" => AppState::Uninstalling,
            _ => return None,
        })
    }
}

/// One installed (or uninstalling) catalog app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstalledApp {
    pub name: String,
    pub subdomain: Option<String>,
    pub auto_update: bool,
    pub target_version: String,
    /// `false` once an uninstall was asked for.
    pub wanted: bool,
    pub purge: bool,
    pub update_now: bool,
    pub state: AppState,
    pub reason: String,
    pub running_version: Option<String>,
    pub latest_version: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub status_at: Option<DateTime<Utc>>,
}

/// What the operator reports about one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseStatus {
    pub state: AppState,
    pub reason: String,
    pub running_version: Option<String>,
    pub latest_version: Option<String>,
}

type Row = (
    String,
    Option<String>,
    bool,
    String,
    String,
    bool,
    bool,
    String,
    String,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

// A macro rather than a const so the queries stay literal strings (sqlx audits dynamic SQL).
macro_rules! installed_columns {
    () => {
        "name, subdomain, auto_update, target_version, desired, purge, update_now, \
         state, reason, running_version, latest_version, requested_at, status_at"
    };
}

fn from_row(r: Row) -> Result<InstalledApp, StorageError> {
    let state = AppState::parse(&r.7).ok_or_else(|| {
        StorageError::Corrupt(format!("installed app {} has unknown state {:?}", r.0, r.7))
    })?;
    Ok(InstalledApp {
        name: r.0,
        subdomain: r.1,
        auto_update: r.2,
        target_version: r.3,
        wanted: r.4 == "install",
        purge: r.5,
        update_now: r.6,
        state,
        reason: r.8,
        running_version: r.9,
        latest_version: r.10,
        requested_at: r.11,
        status_at: r.12,
    })
}

impl InstalledApp {
    /// The version waiting for the maintenance window (or `stackspin app update`), if any.
    pub fn pending_version(&self) -> Option<&str> {
        let latest = self.latest_version.as_deref()?;
        let running = self
            .running_version
            .as_deref()
            .unwrap_or(&self.target_version);
        (latest != running && latest != self.target_version).then_some(latest)
    }
}

impl Store {
    /// Asks for an app. Installing one that is being uninstalled takes it back; installing
    /// one that is installed changes nothing but the subdomain and auto-update choice.
    pub async fn request_install(
        &self,
        name: &str,
        subdomain: Option<&str>,
        auto_update: bool,
        version: &str,
    ) -> Result<InstalledApp, StorageError> {
        let now = Utc::now();
        in_tx!(self, tx, _d => {
            sqlx::query(
                "INSERT INTO installed_apps (name, subdomain, auto_update, target_version, desired, \
                   state, requested_at) VALUES ($1, $2, $3, $4, 'install', 'pending', $5) \
                 ON CONFLICT (name) DO UPDATE SET subdomain = $2, auto_update = $3, \
                   desired = 'install', purge = $6, requested_at = $5",
            )
            .bind(name)
            .bind(subdomain)
            .bind(auto_update)
            .bind(version)
            .bind(now)
            .bind(false)
            .execute(&mut *tx)
            .await?;
        });
        self.installed_app(name)
            .await?
            .ok_or_else(|| StorageError::NotInstalled(name.to_string()))
    }

    /// Asks for an app to go; with `purge` its volumes go too.
    pub async fn request_uninstall(
        &self,
        name: &str,
        purge: bool,
    ) -> Result<InstalledApp, StorageError> {
        let n = with_writer!(self, pool => {
            sqlx::query(
                "UPDATE installed_apps SET desired = 'uninstall', purge = $2, requested_at = $3 \
                 WHERE name = $1",
            )
            .bind(name)
            .bind(purge)
            .bind(Utc::now())
            .execute(pool)
            .await?
            .rows_affected()
        });
        if n == 0 {
            return Err(StorageError::NotInstalled(name.to_string()));
        }
        self.installed_app(name)
            .await?
            .ok_or_else(|| StorageError::NotInstalled(name.to_string()))
    }

    /// Turns automatic updates on or off, or asks for the pending update now.
    pub async fn set_app_updates(
        &self,
        name: &str,
        auto_update: Option<bool>,
        update_now: bool,
    ) -> Result<InstalledApp, StorageError> {
        let n = with_writer!(self, pool => {
            sqlx::query(
                "UPDATE installed_apps SET auto_update = COALESCE($2, auto_update), \
                   update_now = (update_now OR $3) WHERE name = $1",
            )
            .bind(name)
            .bind(auto_update)
            .bind(update_now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if n == 0 {
            return Err(StorageError::NotInstalled(name.to_string()));
        }
        self.installed_app(name)
            .await?
            .ok_or_else(|| StorageError::NotInstalled(name.to_string()))
    }

    pub async fn installed_apps(&self) -> Result<Vec<InstalledApp>, StorageError> {
        let rows: Vec<Row> = with_pool!(self, pool => {
            sqlx::query_as(concat!("SELECT ", installed_columns!(), " FROM installed_apps ORDER BY name"))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(from_row).collect()
    }

    pub async fn installed_app(&self, name: &str) -> Result<Option<InstalledApp>, StorageError> {
        let row: Option<Row> = with_pool!(self, pool => {
            sqlx::query_as(concat!("SELECT ", installed_columns!(), " FROM installed_apps WHERE name = $1"))
                .bind(name)
                .fetch_optional(pool)
                .await?
        });
        row.map(from_row).transpose()
    }

    /// The operator's view of an app. Only changes rows that still exist.
    pub async fn record_app_status(
        &self,
        name: &str,
        s: &ReleaseStatus,
    ) -> Result<(), StorageError> {
        with_writer!(self, pool => {
            sqlx::query(
                "UPDATE installed_apps SET state = $2, reason = $3, running_version = $4, \
                   latest_version = $5, status_at = $6 WHERE name = $1",
            )
            .bind(name)
            .bind(s.state.as_str())
            .bind(&s.reason)
            .bind(s.running_version.as_deref())
            .bind(s.latest_version.as_deref())
            .bind(Utc::now())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The operator moves the version the release asks for (and clears an "update now").
    pub async fn set_target_version(&self, name: &str, version: &str) -> Result<(), StorageError> {
        with_writer!(self, pool => {
            sqlx::query(
                "UPDATE installed_apps SET target_version = $2, update_now = $3 WHERE name = $1",
            )
            .bind(name)
            .bind(version)
            .bind(false)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The operator removes the row once the release is gone; its generated secrets go too
    /// when the app was purged (a reinstall then starts afresh, as its data is gone).
    pub async fn forget_installed_app(&self, name: &str, purge: bool) -> Result<(), StorageError> {
        in_tx!(self, tx, _d => {
            sqlx::query("DELETE FROM installed_apps WHERE name = $1 AND desired = 'uninstall'")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            if purge {
                sqlx::query("DELETE FROM generated_secrets WHERE app = $1")
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
            }
        });
        Ok(())
    }

    /// Every generated secret, opened: app → name → value.
    pub async fn generated_secrets(
        &self,
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, StorageError> {
        let rows: Vec<(String, String, String)> = with_pool!(self, pool => {
            sqlx::query_as("SELECT app, name, value FROM generated_secrets")
                .fetch_all(pool)
                .await?
        });
        let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (app, name, sealed) in rows {
            let value = self.open_text(&sealed)?;
            out.entry(app).or_default().insert(name, value);
        }
        Ok(out)
    }

    /// Adds generated secrets that are not there yet; an existing one is never replaced, even
    /// if another replica generated it a moment ago (the first one wins, for everybody).
    pub async fn add_generated_secrets(
        &self,
        new: &[(String, String, String)],
    ) -> Result<(), StorageError> {
        let sealed: Vec<(&String, &String, String)> = new
            .iter()
            .map(|(app, name, value)| Ok((app, name, self.seal_text(value)?)))
            .collect::<Result<_, StorageError>>()?;
        in_tx!(self, tx, _d => {
            for (app, name, value) in &sealed {
                sqlx::query(
                    "INSERT INTO generated_secrets (app, name, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (app, name) DO NOTHING",
                )
                .bind(app.as_str())
                .bind(name.as_str())
                .bind(value)
                .execute(&mut *tx)
                .await?;
            }
        });
        Ok(())
    }
}
