//! Prometheus metrics, in the text exposition format: request counts and latency per route,
//! sign-in outcomes, and the platform's state (people, apps, queues, the operator, backups)
//! read from the database at each scrape, so every replica reports the same state.
//!
//! Each [`Metrics`] owns its registry rather than using a process-global recorder, so tests
//! can run several applications in one process and see only their own numbers.

use std::{sync::Arc, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use std::sync::atomic::AtomicU64;

use stackspin_storage::AppState;

use crate::AppState as WebState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    /// The route template (`/users/{id}`), never the raw path: raw paths would make one time
    /// series per user and could carry personal data.
    route: String,
    status: u16,
}

type HistogramFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppStateLabels {
    app: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabels {
    app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: &'static str,
}

/// Every state an app can be in, so each app reports all of them (1 for the current, 0 for
/// the rest) and an alert on one state never sees its series vanish.
const APP_STATES: [AppState; 8] = [
    AppState::Pending,
    AppState::Installing,
    AppState::Ready,
    AppState::Failed,
    AppState::UpdatePending,
    AppState::RolledBack,
    AppState::Restoring,
    AppState::Uninstalling,
];

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    backups: BackupGauges,
    logins: Family<ResultLabels, Counter>,
    mfa: Family<ResultLabels, Counter>,
    platform: PlatformGauges,
}

/// The platform's state at the last scrape.
#[derive(Default)]
struct PlatformGauges {
    users: Gauge,
    users_active: Gauge,
    users_mfa: Gauge,
    admins: Gauge,
    app_state: Family<AppStateLabels, Gauge>,
    app_update_available: Family<AppLabels, Gauge>,
    queue_pending: Family<QueueLabels, Gauge>,
    queue_retrying: Family<QueueLabels, Gauge>,
    queue_given_up: Family<QueueLabels, Gauge>,
    queue_oldest_age: Family<QueueLabels, Gauge<f64, AtomicU64>>,
    operator_rounds: Family<ResultLabels, Gauge>,
    operator_last_round: Gauge<f64, AtomicU64>,
    operator_last_success: Gauge,
    operator_problems: Gauge,
    operator_leading: Gauge,
}

/// The backups' state, read from the database at each scrape, for alerts that a backup or
/// a drill failed or went missing.
#[derive(Default)]
struct BackupGauges {
    last_success: Gauge,
    last_scheduled_failed: Gauge,
    drill_last_run: Gauge,
    drill_last_passed: Gauge,
}

impl PlatformGauges {
    fn register(&self, r: &mut Registry) {
        r.register("users", "People with an account", self.users.clone());
        r.register(
            "users_active",
            "People who have set a password and can sign in",
            self.users_active.clone(),
        );
        r.register(
            "users_mfa",
            "People with two-step verification set up",
            self.users_mfa.clone(),
        );
        r.register("admins", "Admins who can sign in", self.admins.clone());
        r.register(
            "app_state",
            "1 for the state each installed app is in, 0 for the others",
            self.app_state.clone(),
        );
        r.register(
            "app_update_available",
            "1 when a newer chart version than the running one is known for the app",
            self.app_update_available.clone(),
        );
        r.register(
            "queue_pending",
            "Mail (queue=mail) or logout notices (queue=logout) not yet delivered",
            self.queue_pending.clone(),
        );
        r.register(
            "queue_retrying",
            "Pending items that failed at least once and wait for a retry",
            self.queue_retrying.clone(),
        );
        r.register(
            "queue_given_up",
            "Items given up after their last retry, ever",
            self.queue_given_up.clone(),
        );
        r.register(
            "queue_oldest_age_seconds",
            "Age of the oldest pending item; 0 when none waits",
            self.queue_oldest_age.clone(),
        );
        r.register(
            "operator_rounds",
            "The operator's rounds in this process, by result (ok, failed)",
            self.operator_rounds.clone(),
        );
        r.register(
            "operator_last_round_duration_seconds",
            "How long the operator's last round took",
            self.operator_last_round.clone(),
        );
        r.register(
            "operator_last_success_timestamp_seconds",
            "When the operator last finished a round without error; 0: not yet",
            self.operator_last_success.clone(),
        );
        r.register(
            "operator_problems",
            "Problems the last round met without failing (objects refused, CRDs missing)",
            self.operator_problems.clone(),
        );
        r.register(
            "operator_leading",
            "1 when this replica runs the operator (holds the lease)",
            self.operator_leading.clone(),
        );
    }
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~8 s, doubling.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("stackspin");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_requests",
            "HTTP requests handled, by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to produce an HTTP response, by method, route and status",
            latency.clone(),
        );
        let backups = BackupGauges::default();
        registry.register(
            "backup_last_success_timestamp_seconds",
            "When the newest completed backup (any kind) was made; 0: none",
            backups.last_success.clone(),
        );
        registry.register(
            "backup_last_scheduled_failed",
            "1 when the newest nightly backup failed or partly failed",
            backups.last_scheduled_failed.clone(),
        );
        registry.register(
            "backup_drill_last_run_timestamp_seconds",
            "When the newest restore drill started; 0: none",
            backups.drill_last_run.clone(),
        );
        registry.register(
            "backup_drill_last_passed",
            "1 when the newest finished restore drill restored and checked every app",
            backups.drill_last_passed.clone(),
        );
        let logins = Family::<ResultLabels, Counter>::default();
        registry.register(
            "logins",
            "Sign-ins with a password, by result (success, failure, throttled, denied)",
            logins.clone(),
        );
        let mfa = Family::<ResultLabels, Counter>::default();
        registry.register(
            "mfa_verifications",
            "Second steps of sign-in (a code or a recovery code), by result",
            mfa.clone(),
        );
        let platform = PlatformGauges::default();
        platform.register(&mut registry);
        Metrics {
            registry,
            requests,
            latency,
            backups,
            logins,
            mfa,
            platform,
        }
    }

    /// Counts a sign-in outcome from its audit event's kind; other kinds are not counted.
    pub(crate) fn audit_event(&self, kind: &str) {
        let (family, result) = match kind {
            "login.success" => (&self.logins, "success"),
            "login.failure" => (&self.logins, "failure"),
            "login.throttled" => (&self.logins, "throttled"),
            "login.denied" => (&self.logins, "denied"),
            "mfa.success" => (&self.mfa, "success"),
            "mfa.failure" => (&self.mfa, "failure"),
            "mfa.recovery_code_used" => (&self.mfa, "recovery_code"),
            _ => return,
        };
        family.get_or_create(&ResultLabels { result }).inc();
    }

    fn observe(&self, labels: RequestLabels, seconds: f64) {
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(seconds);
    }

    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Middleware that times every request and counts it by route.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    metrics.observe(
        RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        },
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Reads the backups' state into the gauges; a database error leaves them as they were.
async fn refresh_backups(state: &WebState) {
    let g = &state.metrics.backups;
    if let Ok(backups) = state.store.backups().await {
        use stackspin_storage::{BackupPhase, BackupReason};
        let success = backups
            .iter()
            .filter(|b| b.phase == BackupPhase::Completed)
            .map(|b| b.created_at.timestamp())
            .max()
            .unwrap_or(0);
        g.last_success.set(success);
        let failed = backups
            .iter()
            .filter(|b| b.reason == BackupReason::Scheduled)
            .max_by_key(|b| b.created_at)
            .is_some_and(|b| matches!(b.phase, BackupPhase::Failed | BackupPhase::PartiallyFailed));
        g.last_scheduled_failed.set(i64::from(failed));
    }
    if let Ok(drills) = state.store.drills(5).await {
        use stackspin_storage::DrillState;
        g.drill_last_run
            .set(drills.first().map_or(0, |d| d.started_at.timestamp()));
        let passed = drills
            .iter()
            .find(|d| d.state != DrillState::Running)
            .is_some_and(|d| d.state == DrillState::Passed);
        g.drill_last_passed.set(i64::from(passed));
    }
}

/// Reads people, apps, queues and the operator's counters into the gauges; what cannot be
/// read keeps its last value.
async fn refresh_platform(state: &WebState) {
    let g = &state.metrics.platform;
    if let Ok(p) = state.store.people_signals().await {
        g.users.set(p.users);
        g.users_active.set(p.active);
        g.users_mfa.set(p.with_mfa);
        g.admins.set(p.admins);
    }
    if let Ok(apps) = state.store.installed_apps().await {
        // Cleared first, so an uninstalled app's series end.
        g.app_state.clear();
        g.app_update_available.clear();
        for app in apps
            .iter()
            .filter(|a| a.wanted || a.state == AppState::Uninstalling)
        {
            for s in APP_STATES {
                g.app_state
                    .get_or_create(&AppStateLabels {
                        app: app.name.clone(),
                        state: s.as_str(),
                    })
                    .set(i64::from(app.state == s));
            }
            let newer = match (&app.running_version, &app.latest_version) {
                (Some(running), Some(latest)) => running != latest,
                _ => false,
            };
            g.app_update_available
                .get_or_create(&AppLabels {
                    app: app.name.clone(),
                })
                .set(i64::from(newer));
        }
    }
    let now = chrono::Utc::now();
    for (queue, signals) in [
        ("mail", state.store.mail_signals().await),
        ("logout", state.store.logout_signals().await),
    ] {
        let Ok(q) = signals else { continue };
        let l = QueueLabels { queue };
        g.queue_pending.get_or_create(&l).set(q.pending);
        g.queue_retrying.get_or_create(&l).set(q.retrying);
        g.queue_given_up.get_or_create(&l).set(q.given_up);
        let age = q
            .oldest_pending
            .map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
        g.queue_oldest_age.get_or_create(&l).set(age);
    }
    if let Some(read) = state
        .platform
        .cluster
        .as_ref()
        .and_then(|c| c.operator.as_ref())
    {
        let o = read();
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        g.operator_rounds
            .get_or_create(&ResultLabels { result: "ok" })
            .set(count(o.rounds_ok));
        g.operator_rounds
            .get_or_create(&ResultLabels { result: "failed" })
            .set(count(o.rounds_failed));
        g.operator_last_round.set(o.last_round_seconds);
        g.operator_last_success.set(count(o.last_success_unix));
        g.operator_problems.set(count(o.last_problems));
        g.operator_leading.set(i64::from(o.leading));
    }
}

pub async fn render(State(state): State<WebState>) -> Response {
    refresh_backups(&state).await;
    refresh_platform(&state).await;
    match state.metrics.encode() {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics encoding failed\n",
        )
            .into_response(),
    }
}
