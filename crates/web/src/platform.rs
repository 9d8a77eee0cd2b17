//! The apps Stackspin installs on its cluster, as the API and the Dashboard show and change
//! them. The web layer only records what the admin asks for in the database and wakes the
//! operator; it never talks to Kubernetes (the operator, in `serve`, does).

use std::sync::Arc;

use serde_json::{Value, json};
use stackspin_catalog::requests::{Taken, check_install};
use stackspin_catalog::{AdminMapping, Catalog, Entry};
use stackspin_storage::{InstalledApp, StorageError, Store};
use tokio::sync::Notify;

use crate::AppState;

/// Shown when `serve` runs without a cluster.
pub const HOW_TO_CONNECT: &str = "Run `stackspin serve` in the cluster (the stackspin Helm \
chart), or give it --kubeconfig FILE and --cluster-config cluster.toml. Until then installs \
are recorded here, and `stackspin manifests` writes what would be applied.";

/// What the web layer knows of the platform: the catalog, and whether an operator runs.
#[derive(Clone)]
pub struct Platform {
    pub catalog: Arc<Catalog>,
    /// `Some` when `serve` has a cluster and runs the operator.
    pub cluster: Option<Cluster>,
}

#[derive(Clone)]
pub struct Cluster {
    /// The cluster's domain: apps are at SUBDOMAIN.DOMAIN.
    pub domain: String,
    /// Where the platform's alerts are mailed (cluster.toml's admin_email).
    pub admin_email: String,
    /// Starts an operator round at once.
    pub wake: Arc<Notify>,
    /// The nightly backups, when the cluster has a backup store (`backup_s3_*` in
    /// cluster.toml), hence Velero.
    pub backups: Option<BackupPlan>,
    /// How the operator's rounds went, read at each scrape (the binary adapts the
    /// operator's counters, which this crate does not know).
    pub operator: Option<Arc<dyn Fn() -> OperatorSignals + Send + Sync>>,
}

/// The operator's round counters, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OperatorSignals {
    pub rounds_ok: u64,
    pub rounds_failed: u64,
    pub last_round_seconds: f64,
    /// Unix seconds of the last successful round; 0: none yet.
    pub last_success_unix: u64,
    pub last_problems: u64,
    pub leading: bool,
}

/// When the nightly backup runs and how long backups are kept.
#[derive(Clone)]
pub struct BackupPlan {
    /// `HH:MM` in `time_zone`.
    pub time: String,
    pub time_zone: String,
    pub retention_days: u32,
    /// The next nightly run after a moment (the cluster's time zone is applied by the caller,
    /// which has the time zone database).
    pub next_run: Arc<
        dyn Fn(chrono::DateTime<chrono::Utc>) -> Option<chrono::DateTime<chrono::Utc>>
            + Send
            + Sync,
    >,
}

impl Platform {
    /// No cluster: everything is recorded and nothing applied.
    pub fn without_cluster(catalog: Arc<Catalog>) -> Platform {
        Platform {
            catalog,
            cluster: None,
        }
    }

    pub(crate) fn wake(&self) {
        if let Some(c) = &self.cluster {
            c.wake.notify_one();
        }
    }

    /// Where the app is (or will be), if the domain is known.
    pub(crate) fn url_of(&self, entry: &Entry, subdomain: Option<&str>) -> Option<String> {
        let domain = &self.cluster.as_ref()?.domain;
        Some(match subdomain.unwrap_or(&entry.subdomain) {
            "" => format!("https://{domain}/"),
            s => format!("https://{s}.{domain}/"),
        })
    }
}

/// Why an install, uninstall or update was refused.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error(transparent)]
    Refused(#[from] stackspin_catalog::requests::RequestError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What the admin does about admin rights in this app, or how the app maps them.
pub(crate) fn admin_rights(e: &Entry) -> (bool, String) {
    match e.oidc.as_ref().map(|o| &o.admin) {
        Some(AdminMapping::Native { how }) => (true, how.clone()),
        Some(AdminMapping::Manual { instead }) => (false, instead.clone()),
        None => (false, "this app has no single sign-on".into()),
    }
}

pub(crate) fn installed_json(p: &Platform, row: &InstalledApp) -> Value {
    let entry = p.catalog.get(&row.name);
    json!({
        "name": row.name,
        "state": row.state.as_str(),
        "reason": row.reason,
        "subdomain": row.subdomain,
        "url": entry.and_then(|e| p.url_of(e, row.subdomain.as_deref())),
        "auto_update": row.auto_update,
        "target_version": row.target_version,
        "running_version": row.running_version,
        "latest_version": row.latest_version,
        "pending_version": row.pending_version(),
        "uninstalling": !row.wanted,
        "purge": row.purge,
        "update_now": row.update_now,
        "requested_at": row.requested_at.to_rfc3339(),
        "status_at": row.status_at.map(|t| t.to_rfc3339()),
    })
}

pub(crate) fn entry_json(p: &Platform, e: &Entry, row: Option<&InstalledApp>) -> Value {
    let (native, how) = admin_rights(e);
    json!({
        "name": e.name,
        "title": e.title,
        "summary": e.summary,
        "docs": e.docs,
        "subdomain": e.subdomain,
        "bare_domain_allowed": e.root_domain_allowed,
        "chart": e.chart_label(),
        "version": e.chart.version.to_string(),
        "updates": e.chart.updates.to_string(),
        "admin_rights": { "mapped": native, "how": how },
        "note": e.note,
        "installed": row.map(|r| installed_json(p, r)),
    })
}

/// Records an install request after the catalog's checks (installable, subdomain free); the
/// one path for the CLI, the API and the Dashboard.
pub async fn request_install(
    store: &Store,
    catalog: &Catalog,
    name: &str,
    subdomain: Option<&str>,
    auto_update: bool,
) -> Result<InstalledApp, PlatformError> {
    let rows = store.installed_apps().await?;
    let taken: Vec<Taken> = rows
        .iter()
        .filter(|r| r.wanted)
        .map(|r| Taken {
            name: &r.name,
            subdomain: r.subdomain.as_deref(),
        })
        .collect();
    let checked = check_install(catalog, name, subdomain, &taken)?;
    Ok(store
        .request_install(
            name,
            checked.subdomain.as_deref(),
            auto_update,
            &checked.version,
        )
        .await?)
}

/// As [`request_install`], then wakes the operator.
pub(crate) async fn install(
    state: &AppState,
    name: &str,
    subdomain: Option<&str>,
    auto_update: bool,
) -> Result<InstalledApp, PlatformError> {
    let row = request_install(
        &state.store,
        &state.platform.catalog,
        name,
        subdomain,
        auto_update,
    )
    .await?;
    state.platform.wake();
    Ok(row)
}
