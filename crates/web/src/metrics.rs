//! Prometheus metrics: request counts and latency per route, in the text exposition format.
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

use crate::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    /// The route template (`/users/{id}`), never the raw path: raw paths would make one time
    /// series per user and could carry personal data.
    route: String,
    status: u16,
}

type HistogramFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    backups: BackupGauges,
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
        Metrics {
            registry,
            requests,
            latency,
            backups,
        }
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
async fn refresh_backups(state: &AppState) {
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

pub async fn render(State(state): State<AppState>) -> Response {
    refresh_backups(&state).await;
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
