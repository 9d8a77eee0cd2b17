//! The app operator run by `stackspin serve` when it has cluster access. The database says
//! which apps should be installed; each round the operator computes the whole desired state
//! (`stackspin-platform`), applies it with server-side apply under one field manager, removes
//! what is no longer desired, registers the apps' OIDC clients, moves versions forward inside
//! the maintenance window, and reads Flux's conditions back into the database. Rounds are
//! level-triggered and idempotent: a restart in the middle simply converges on the next one.

mod alerts;
pub mod apply;
pub mod backups;
pub mod clients;
pub mod drill;
pub mod leader;
pub mod observe;
pub mod status;
pub mod updates;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams};
use stackspin_catalog::{Catalog, ChartSource, Entry};
use stackspin_platform::crds::{
    HelmChart, HelmRelease, HelmRepository, OCIRepository, SourceStatus,
};
use stackspin_platform::desired::{self, APP_LABEL, MANAGED_BY, Placement, Tuning};
use stackspin_platform::secrets::OIDC_CLIENT_SECRET;
use stackspin_platform::{
    AppChoice, ClusterConfig, GeneratedSecrets, HANDOVER_SECRET, Handover, Object,
};

/// The database setting that remembers which hand-over was adopted (its digest).
const HANDOVER_SETTING: &str = "operator.handover";
use stackspin_storage::{AppState, InstalledApp, ReleaseStatus, Store};
use tokio::sync::Notify;

pub use apply::FIELD_MANAGER;

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("database: {0}")]
    Storage(#[from] stackspin_storage::StorageError),
    #[error("desired state: {0}")]
    Platform(#[from] stackspin_platform::PlatformError),
    #[error("Kubernetes API: {0}")]
    Kube(String),
}

impl From<kube::Error> for OperatorError {
    fn from(e: kube::Error) -> Self {
        OperatorError::Kube(apply::describe(&e))
    }
}

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub tuning: Tuning,
    /// How long a quiet round waits before the next one (a request wakes it at once).
    pub interval: Duration,
    /// This replica's name in the Lease.
    pub identity: String,
    /// How long a Lease holds without renewal.
    pub lease_duration: Duration,
    /// How long a restore waits for the app's workloads and volumes to go.
    pub restore_step_timeout: Duration,
    /// How long a restore waits for the app to be ready again.
    pub restore_ready_timeout: Duration,
    /// Whether the backups the control plane makes copy volume data (Velero's file-system
    /// backup by its node agent). Off only where no node agent can run, as on the test bed,
    /// whose pods are simulated: there a backup holds the objects and claims alone.
    pub volume_data: bool,
    /// How often nodes and certificates are read for the Status page.
    pub observe_interval: Duration,
    /// Where Prometheus answers queries (node disks for the Status page); by default the
    /// in-cluster address once the monitoring app is installed.
    pub prometheus_url: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tuning: Tuning::default(),
            interval: Duration::from_secs(30),
            identity: default_identity(),
            lease_duration: Duration::from_secs(15),
            restore_step_timeout: Duration::from_secs(300),
            restore_ready_timeout: Duration::from_secs(900),
            volume_data: true,
            observe_interval: Duration::from_secs(60),
            prometheus_url: None,
        }
    }
}

/// A client for the cluster `serve` runs against: the kubeconfig file when one is given, else
/// the pod's ServiceAccount when running in a cluster, else `None` (no cluster: everything
/// but applying works).
pub async fn connect(
    kubeconfig: Option<&std::path::Path>,
) -> Result<Option<Client>, OperatorError> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                OperatorError::Kube(format!("cannot read kubeconfig {}: {e}", path.display()))
            })?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| OperatorError::Kube(format!("kubeconfig {}: {e}", path.display())))?
        }
        // In a pod whose ServiceAccount token is mounted (the chart mounts it only when the
        // operator is enabled).
        None if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
            && std::path::Path::new(SERVICE_ACCOUNT_TOKEN).exists() =>
        {
            kube::Config::incluster()
                .map_err(|e| OperatorError::Kube(format!("in-cluster configuration: {e}")))?
        }
        None => return Ok(None),
    };
    Client::try_from(config)
        .map(Some)
        .map_err(|e| OperatorError::Kube(format!("cannot build a client: {e}")))
}

const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// The pod name in a cluster, else host name and process id.
pub fn default_identity() -> String {
    std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .map(|h| format!("{h}-{}", std::process::id()))
        .unwrap_or_else(|_| format!("stackspin-{}", std::process::id()))
}

/// What one round did.
#[derive(Debug, Default, Clone)]
pub struct Round {
    pub applied: usize,
    pub deleted: usize,
    /// Problems that did not stop the round (an object the API refused, a CRD not there yet).
    pub problems: Vec<String>,
    pub states: BTreeMap<String, AppState>,
}

type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// How the operator's rounds went, for `/metrics`: kept in memory, as each replica's own
/// counters (Prometheus adds replicas up).
#[derive(Debug, Default)]
pub struct Stats {
    rounds_ok: AtomicU64,
    rounds_failed: AtomicU64,
    /// The last round's duration in microseconds.
    last_round_micros: AtomicU64,
    /// Unix seconds of the last round that succeeded; 0: none yet.
    last_success: AtomicU64,
    /// Problems the last round met without failing (objects refused, CRDs missing).
    last_problems: AtomicU64,
}

/// A copy of [`Stats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StatsSnapshot {
    pub rounds_ok: u64,
    pub rounds_failed: u64,
    pub last_round_seconds: f64,
    pub last_success_unix: u64,
    pub last_problems: u64,
}

impl Stats {
    fn record(&self, elapsed: Duration, outcome: Result<usize, ()>, now: DateTime<Utc>) {
        self.last_round_micros.store(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        match outcome {
            Ok(problems) => {
                self.rounds_ok.fetch_add(1, Ordering::Relaxed);
                self.last_success.store(
                    u64::try_from(now.timestamp()).unwrap_or_default(),
                    Ordering::Relaxed,
                );
                self.last_problems.store(
                    u64::try_from(problems).unwrap_or(u64::MAX),
                    Ordering::Relaxed,
                );
            }
            Err(()) => {
                self.rounds_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            rounds_ok: self.rounds_ok.load(Ordering::Relaxed),
            rounds_failed: self.rounds_failed.load(Ordering::Relaxed),
            // Microseconds to seconds; the precision lost is far below a round's length.
            last_round_seconds: self.last_round_micros.load(Ordering::Relaxed) as f64 / 1e6,
            last_success_unix: self.last_success.load(Ordering::Relaxed),
            last_problems: self.last_problems.load(Ordering::Relaxed),
        }
    }
}

/// The operator. Cheap to clone; clones share the wake-up signal and leadership flag.
#[derive(Clone)]
pub struct Operator {
    client: Client,
    store: Store,
    catalog: Arc<Catalog>,
    config: Arc<ClusterConfig>,
    settings: Arc<Settings>,
    wake: Arc<Notify>,
    leading: Arc<AtomicBool>,
    clock: Clock,
    stats: Arc<Stats>,
    /// For Prometheus's query API.
    http: reqwest::Client,
}

impl Operator {
    /// `config.apps` only supplies per-app settings (allow-lists); which apps are installed
    /// is the database's business.
    pub fn new(
        client: Client,
        store: Store,
        catalog: Arc<Catalog>,
        config: ClusterConfig,
        settings: Settings,
    ) -> Self {
        Operator {
            client,
            store,
            catalog,
            config: Arc::new(config),
            settings: Arc::new(settings),
            wake: Arc::new(Notify::new()),
            leading: Arc::new(AtomicBool::new(false)),
            clock: Arc::new(Utc::now),
            // A slow Prometheus must not hold up the observation round.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            stats: Arc::new(Stats::default()),
        }
    }

    /// Replaces the clock, so tests can stand inside or outside the maintenance window.
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Signals the run loop to start a round now (after a request was stored).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// The rounds' counters, shared with every clone.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// Runs rounds until `shutdown` resolves; with a Lease, only while this replica leads.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let elector = leader::Elector::new(
            self.client.clone(),
            desired::CORE_NAMESPACE,
            &self.settings.identity,
            self.settings.lease_duration,
        );
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_secs(1);
        let mut last_round: Option<std::time::Instant> = None;
        let mut last_observed: Option<std::time::Instant> = None;
        loop {
            let leads = match elector.try_lead().await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %apply::describe(&e), "operator: could not read or renew its lease");
                    false
                }
            };
            if leads != self.leading.swap(leads, Ordering::SeqCst) {
                if leads {
                    tracing::info!(identity = elector.identity(), "operator: leading");
                } else {
                    tracing::info!(identity = elector.identity(), "operator: standing by");
                }
            }
            let mut wait = (self.settings.lease_duration / 3).max(Duration::from_millis(200));
            let due = last_round.is_none_or(|t| t.elapsed() >= self.settings.interval);
            if leads && due {
                let started = std::time::Instant::now();
                let result = self.reconcile().await;
                self.stats.record(
                    started.elapsed(),
                    result.as_ref().map(|r| r.problems.len()).map_err(|_| ()),
                    (self.clock)(),
                );
                match result {
                    Ok(round) => {
                        last_round = Some(std::time::Instant::now());
                        backoff = Duration::from_secs(1);
                        for p in &round.problems {
                            tracing::warn!(problem = %p, "operator");
                        }
                        // Something is still moving: look again soon rather than after the
                        // full interval.
                        if round.states.values().any(|s| {
                            matches!(
                                s,
                                AppState::Pending | AppState::Installing | AppState::Uninstalling
                            )
                        }) {
                            last_round = last_round.map(|t| {
                                t.checked_sub(self.settings.interval)
                                    .unwrap_or(t)
                                    .checked_add(Duration::from_secs(2).min(self.settings.interval))
                                    .unwrap_or(t)
                            });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?backoff, "operator: round failed");
                        wait = wait.min(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(60));
                        last_round = None;
                    }
                }
            }
            if leads {
                match self.backups_round().await {
                    Ok(true) => wait = wait.min(backups::RESTORE_POLL),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "operator: backups and restores");
                    }
                }
                if last_observed.is_none_or(|t| t.elapsed() >= self.settings.observe_interval) {
                    last_observed = Some(std::time::Instant::now());
                    if let Err(e) = self.observe_cluster().await {
                        tracing::warn!(error = %e, "operator: could not read nodes and certificates");
                    }
                }
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.wake.notified() => { last_round = None; }
                _ = tokio::time::sleep(wait) => {}
            }
        }
        if self.leading.swap(false, Ordering::SeqCst)
            && let Err(e) = elector.step_down().await
        {
            tracing::warn!(error = %apply::describe(&e), "operator: could not release its lease");
        }
    }

    fn choice(&self, row: &InstalledApp, suspended: &[String]) -> AppChoice {
        let mut c = self
            .config
            .apps
            .iter()
            .find(|a| a.name == row.name)
            .cloned()
            .unwrap_or_else(|| AppChoice::new(&row.name));
        c.subdomain = row.subdomain.clone();
        c.version = semver::Version::parse(&row.target_version).ok();
        c.suspended = suspended.contains(&row.name);
        c.running = row.running_version.is_some();
        c
    }

    fn config_with(&self, apps: Vec<AppChoice>) -> ClusterConfig {
        let mut c = (*self.config).clone();
        c.apps = apps;
        c
    }

    /// Secrets for the core and these apps: read from the database, the missing ones made
    /// and stored (first writer wins across replicas), read again.
    async fn secrets(&self, apps: &[&str]) -> Result<GeneratedSecrets, OperatorError> {
        let mut names: Vec<&str> = self.catalog.core().map(|e| e.name.as_str()).collect();
        if self.config.backup_s3.is_some() {
            names.extend(self.catalog.backup_entries().map(|e| e.name.as_str()));
        }
        for app in apps {
            names.extend(self.catalog.with_parts(app).map(|e| e.name.as_str()));
        }
        let mut secrets = GeneratedSecrets::from_map(self.store.generated_secrets().await?);
        let added = secrets.ensure(
            &self.catalog,
            &names,
            stackspin_domain::secret::random_chars,
        )?;
        if added.is_empty() {
            return Ok(secrets);
        }
        let rows: Vec<(String, String, String)> = added
            .iter()
            .filter_map(|full| {
                let (app, name) = full.split_once('.')?;
                let value = secrets.get(app, name)?;
                Some((app.to_string(), name.to_string(), value.to_string()))
            })
            .collect();
        self.store.add_generated_secrets(&rows).await?;
        Ok(GeneratedSecrets::from_map(
            self.store.generated_secrets().await?,
        ))
    }

    /// Adopts the installer's hand-over (`stackspin install`) once per change: its secrets
    /// where the database has none, its apps where the database has no record of them.
    async fn adopt_handover(&self) -> Result<(), OperatorError> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), desired::CORE_NAMESPACE);
        let Some(secret) = api.get_opt(HANDOVER_SECRET).await? else {
            return Ok(());
        };
        let handover = Handover::from_secret(&secret)?;
        let digest = handover.digest()?;
        if self.store.setting(HANDOVER_SETTING).await?.as_deref() == Some(digest.as_str()) {
            return Ok(());
        }
        self.store
            .add_generated_secrets(&handover.secret_rows())
            .await?;
        let known = self.store.installed_apps().await?;
        for app in &handover.apps {
            if known.iter().any(|r| r.name == app.name) {
                continue;
            }
            let rows = self.store.installed_apps().await?;
            let taken: Vec<stackspin_catalog::requests::Taken> = rows
                .iter()
                .filter(|r| r.wanted)
                .map(|r| stackspin_catalog::requests::Taken {
                    name: &r.name,
                    subdomain: r.subdomain.as_deref(),
                })
                .collect();
            match stackspin_catalog::requests::check_install(
                &self.catalog,
                &app.name,
                app.subdomain.as_deref(),
                &taken,
            ) {
                Ok(checked) => {
                    self.store
                        .request_install(
                            &app.name,
                            checked.subdomain.as_deref(),
                            true,
                            &checked.version,
                        )
                        .await?;
                    tracing::info!(app = %app.name, "operator: adopted from the installer's hand-over");
                }
                Err(e) => {
                    tracing::warn!(app = %app.name, error = %e, "operator: cannot adopt from the hand-over");
                }
            }
        }
        self.store.set_setting(HANDOVER_SETTING, &digest).await?;
        Ok(())
    }

    /// One round: make the cluster match the database, then read the state back.
    pub async fn reconcile(&self) -> Result<Round, OperatorError> {
        let mut round = Round::default();
        self.adopt_handover().await?;
        let rows = self.store.installed_apps().await?;
        // Apps a restore is replacing: their releases are suspended and they show so.
        let suspended = self.store.suspended_apps().await?;
        let restoring = self.store.active_restore().await?.map(|r| r.app);
        let mut statuses: BTreeMap<String, ReleaseStatus> = BTreeMap::new();
        let fail = |reason: String| ReleaseStatus {
            state: AppState::Failed,
            reason,
            running_version: None,
            latest_version: None,
        };

        // Which wanted apps can be placed at all; one bad request must not stop the others.
        let wanted: Vec<&InstalledApp> = rows.iter().filter(|r| r.wanted).collect();
        let mut good: Vec<&InstalledApp> = Vec::new();
        for row in &wanted {
            let Some(entry) = self.catalog.get(&row.name) else {
                statuses.insert(
                    row.name.clone(),
                    fail(format!("{} is not in the catalog", row.name)),
                );
                continue;
            };
            let mut apps = vec![self.choice(row, &suspended)];
            for dep in &entry.depends_on {
                if let Some(d) = wanted.iter().find(|w| &w.name == dep) {
                    apps.push(self.choice(d, &suspended));
                }
            }
            match desired::placements(&self.catalog, &self.config_with(apps)) {
                Ok(_) => good.push(row),
                Err(e) => {
                    statuses.insert(row.name.clone(), fail(e.to_string()));
                }
            }
        }
        let good_names: Vec<&str> = good.iter().map(|r| r.name.as_str()).collect();
        let secrets = self.secrets(&good_names).await?;
        let config = self.config_with(good.iter().map(|r| self.choice(r, &suspended)).collect());
        let objects =
            desired::desired_state(&self.catalog, &config, &secrets, &self.settings.tuning)?;
        let placements = desired::placements(&self.catalog, &config)?;

        // The OIDC clients first: an app that starts must find its client.
        for p in &placements {
            if p.entry.oidc.is_none() || !good_names.contains(&p.entry.name.as_str()) {
                continue;
            }
            let Some(secret) = secrets.get(&p.entry.name, OIDC_CLIENT_SECRET) else {
                continue;
            };
            if let Err(e) = clients::ensure(&self.store, p.entry, &p.host, secret).await {
                statuses.insert(p.entry.name.clone(), fail(e.to_string()));
            }
        }
        // Tools behind forward-auth need an app for their roles before their ingress answers.
        for p in placements
            .iter()
            .filter(|p| good_names.contains(&p.entry.name.as_str()))
        {
            for t in &p.entry.tools {
                let host = format!("{}.{}", t.subdomain, config.domain);
                if let Err(e) = clients::ensure_tool(&self.store, t, &host).await {
                    statuses.insert(p.entry.name.clone(), fail(e.to_string()));
                }
            }
        }

        // Apply everything; an object the API refuses fails its app, not the round.
        let mut app_errors: BTreeMap<String, String> = BTreeMap::new();
        for o in &objects {
            match apply::apply(&self.client, o, false).await {
                Ok(_) => round.applied += 1,
                Err(e) => {
                    let what = format!("{} {}: {}", o.kind(), o.name(), apply::describe(&e));
                    match app_of(o) {
                        Some(app) if good_names.contains(&app.as_str()) => {
                            app_errors.entry(app).or_insert(what);
                        }
                        _ => round.problems.push(what),
                    }
                }
            }
        }

        // Remove what is no longer desired (uninstalled apps, renamed objects).
        let keep: BTreeSet<(String, String, String)> = objects
            .iter()
            .filter_map(|o| Some((o.kind(), o.namespace()?, o.name())))
            .collect();
        let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
        for ns in [desired::CORE_NAMESPACE, desired::APPS_NAMESPACE] {
            for ar in apply::collectable() {
                let found = match apply::list(&self.client, &ar, ns, &selector).await {
                    Ok(found) => found,
                    // A kind whose CRD is not installed (yet) has nothing to remove.
                    Err(e) if apply::is_status(&e, 404) => continue,
                    Err(e) => return Err(e.into()),
                };
                for obj in found {
                    let name = obj.metadata.name.clone().unwrap_or_default();
                    if keep.contains(&(ar.kind.clone(), ns.to_string(), name.clone())) {
                        continue;
                    }
                    if obj.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    apply::delete(&self.client, &ar, ns, &name).await?;
                    round.deleted += 1;
                }
            }
        }

        // Uninstalls: the client goes at once; the row once Helm has removed the release.
        for row in rows.iter().filter(|r| !r.wanted) {
            if let Err(e) = clients::remove(&self.store, &row.name).await {
                round.problems.push(e.to_string());
            }
            for t in self
                .catalog
                .with_parts(&row.name)
                .flat_map(|e| e.tools.iter())
            {
                if let Err(e) = clients::remove(&self.store, &t.name).await {
                    round.problems.push(e.to_string());
                }
            }
            let mut gone = true;
            let mut namespaces = BTreeSet::new();
            for part in self.catalog.with_parts(&row.name) {
                let ns = namespace_of(part);
                namespaces.insert(ns);
                let api: Api<HelmRelease> = Api::namespaced(self.client.clone(), ns);
                if api.get_opt(&part.name).await?.is_some() {
                    gone = false;
                }
            }
            if self.catalog.get(&row.name).is_none() {
                namespaces.insert(desired::APPS_NAMESPACE);
            }
            if !gone {
                statuses.insert(
                    row.name.clone(),
                    ReleaseStatus {
                        state: AppState::Uninstalling,
                        reason: "Helm is removing the release".into(),
                        running_version: row.running_version.clone(),
                        latest_version: None,
                    },
                );
                continue;
            }
            if row.purge {
                for ns in &namespaces {
                    round.deleted += self.purge_claims(ns, &row.name).await?;
                }
            }
            self.store
                .forget_installed_app(&row.name, row.purge)
                .await?;
        }

        // Read Flux back, and move versions forward where the rules allow.
        let now = (self.clock)();
        let in_window = self.config.in_window(now);
        for row in &good {
            if statuses.contains_key(&row.name) {
                continue;
            }
            let Some(p) = placements.iter().find(|p| p.entry.name == row.name) else {
                continue;
            };
            let mut st = self.observe(p, &row.target_version).await?;
            if restoring.as_deref() == Some(row.name.as_str()) && suspended.contains(&row.name) {
                st.state = AppState::Restoring;
                st.reason = "a restore is replacing its data".into();
            } else if suspended.contains(&row.name) {
                st.state = AppState::Failed;
                st.reason = "a restore failed: its release stays suspended until a restore finishes (see `stackspin restore list`)".into();
            }
            if let Some(e) = app_errors.remove(&row.name) {
                st.state = AppState::Failed;
                st.reason = e;
            }
            // A part that failed fails the app it belongs to.
            if st.state == AppState::Ready {
                for part in self
                    .catalog
                    .with_parts(&row.name)
                    .filter(|e| e.name != row.name)
                {
                    if let Some(pp) = placements.iter().find(|p| p.entry.name == part.name) {
                        let ps = self.observe(pp, &pp.version.to_string()).await?;
                        if ps.state != AppState::Ready {
                            st.state = ps.state;
                            st.reason = format!("{}: {}", part.title, ps.reason);
                            break;
                        }
                    }
                }
            }
            let target = semver::Version::parse(&row.target_version).ok();
            let latest = st
                .latest_version
                .as_deref()
                .and_then(|v| semver::Version::parse(v).ok());
            if let Some(target) = &target {
                if st.state == AppState::Ready && latest.as_ref().is_some_and(|l| l > target) {
                    st.state = AppState::UpdatePending;
                    st.reason = String::new();
                }
                let next = updates::next_version(&updates::UpdateInput {
                    target,
                    latest: latest.as_ref(),
                    auto_update: row.auto_update,
                    update_now: row.update_now,
                    in_window,
                    state: st.state,
                });
                let mut waiting = false;
                let next = match next {
                    // The backup that undoes a bad update comes first.
                    Some(next) if self.config.backup_s3.is_some() => {
                        match self.backup_before_update(row, &next).await? {
                            Ok(()) => Some(next),
                            Err(why) => {
                                st.state = AppState::UpdatePending;
                                st.reason = why;
                                waiting = true;
                                None
                            }
                        }
                    }
                    other => other,
                };
                if let Some(next) = next {
                    tracing::info!(app = %row.name, from = %target, to = %next, "operator: updating");
                    self.store
                        .set_target_version(&row.name, &next.to_string())
                        .await?;
                    st.state = AppState::Installing;
                    st.reason = format!("updating to {next}");
                    // Apply the new version now rather than on the next round.
                    self.wake.notify_one();
                } else if row.update_now && !waiting {
                    // Nothing newer to take: the request is done.
                    self.store
                        .set_target_version(&row.name, &row.target_version)
                        .await?;
                }
            }
            statuses.insert(row.name.clone(), st);
        }

        for (name, st) in &statuses {
            self.store.record_app_status(name, st).await?;
            round.states.insert(name.clone(), st.state);
        }
        Ok(round)
    }

    /// Whether an update of the app to `next` may go ahead: once a backup of the app taken
    /// for it has completed. `Err` says why it waits. A failed backup stops automatic updates
    /// of the app; an admin's "update now" goes ahead without one, as asked.
    async fn backup_before_update(
        &self,
        row: &InstalledApp,
        next: &semver::Version,
    ) -> Result<Result<(), String>, OperatorError> {
        let version = next.to_string();
        match self.store.update_backup(&row.name, &version).await? {
            None => {
                let b = self
                    .store
                    .request_update_backup(&row.name, &version)
                    .await?;
                tracing::info!(app = %row.name, to = %version, backup = %b.name, "operator: backing up before an update");
                self.wake.notify_one();
                Ok(Err(format!("backing up before updating to {version}")))
            }
            Some(b) if b.phase == stackspin_storage::BackupPhase::Completed => Ok(Ok(())),
            Some(b) if b.phase.is_final() => {
                if row.update_now {
                    tracing::warn!(app = %row.name, backup = %b.name, "operator: updating as asked although the backup before it failed");
                    return Ok(Ok(()));
                }
                Ok(Err(format!(
                    "the backup before updating to {version} ({}) failed: {}; automatic updates wait (\"update now\" goes ahead without a backup)",
                    b.name,
                    if b.message.is_empty() {
                        b.phase.as_str()
                    } else {
                        b.message.as_str()
                    }
                )))
            }
            Some(b) => Ok(Err(format!(
                "backing up before updating to {version} ({})",
                b.name
            ))),
        }
    }

    async fn observe(
        &self,
        p: &Placement<'_>,
        target: &str,
    ) -> Result<ReleaseStatus, OperatorError> {
        let ns = p.namespace;
        let app = p.entry.name.as_str();
        let release = Api::<HelmRelease>::namespaced(self.client.clone(), ns)
            .get_opt(app)
            .await?;
        let (source, probe): (Option<SourceStatus>, Option<SourceStatus>) =
            match &p.entry.chart.source {
                ChartSource::Helm { .. } => (
                    Api::<HelmRepository>::namespaced(self.client.clone(), ns)
                        .get_opt(app)
                        .await?
                        .and_then(|r| r.status),
                    Api::<HelmChart>::namespaced(self.client.clone(), ns)
                        .get_opt(&desired::updates_source(app))
                        .await?
                        .and_then(|r| r.status),
                ),
                ChartSource::Oci { .. } => {
                    let api = Api::<OCIRepository>::namespaced(self.client.clone(), ns);
                    (
                        api.get_opt(app).await?.and_then(|r| r.status),
                        api.get_opt(&desired::updates_source(app))
                            .await?
                            .and_then(|r| r.status),
                    )
                }
            };
        let generation = release.as_ref().and_then(|r| r.metadata.generation);
        let rs = release.as_ref().and_then(|r| r.status.as_ref());
        let (state, reason) = status::release_state(&status::Observed {
            release: rs,
            generation,
            source: source.as_ref(),
            target: &p.entry.chart.version_text(
                &semver::Version::parse(target).unwrap_or_else(|_| p.version.clone()),
            ),
        });
        let prefix = p.entry.chart.version_prefix.as_str();
        let running = rs
            .and_then(status::running_version)
            .map(|v| v.strip_prefix(prefix).map(str::to_string).unwrap_or(v));
        let latest = probe
            .as_ref()
            .and_then(|s| status::resolved_version(s, prefix))
            .map(|v| v.to_string());
        Ok(ReleaseStatus {
            state,
            reason,
            running_version: running,
            latest_version: latest,
        })
    }

    /// Deletes the claims of a purged app: those labelled with its backup set (what Flux's
    /// common metadata puts on everything the chart makes) or with its Helm release.
    async fn purge_claims(&self, ns: &str, app: &str) -> Result<usize, OperatorError> {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
        let mut n = 0;
        for selector in [
            format!("{}={app}", stackspin_catalog::BACKUP_SET_LABEL),
            format!("app.kubernetes.io/instance={app}"),
        ] {
            for pvc in api
                .list(&ListParams::default().labels(&selector))
                .await?
                .items
            {
                let name = pvc.metadata.name.unwrap_or_default();
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => n += 1,
                    Err(e) if apply::is_status(&e, 404) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(n)
    }

    /// The desired objects as they would be applied now, checked by the API server without
    /// being stored (server-side dry run).
    pub async fn dry_run(&self, objects: &[Object]) -> Vec<String> {
        let mut problems = Vec::new();
        for o in objects {
            if let Err(e) = apply::apply(&self.client, o, true).await {
                problems.push(format!(
                    "{} {}: {}",
                    o.kind(),
                    o.name(),
                    apply::describe(&e)
                ));
            }
        }
        problems
    }
}

fn namespace_of(e: &Entry) -> &'static str {
    if e.kind == stackspin_catalog::Kind::App {
        desired::APPS_NAMESPACE
    } else {
        desired::CORE_NAMESPACE
    }
}

/// The app an object belongs to: the whole, for an app's parts.
fn app_of(o: &Object) -> Option<String> {
    let v = o.to_value();
    v["metadata"]["labels"][APP_LABEL]
        .as_str()
        .map(str::to_string)
}
