//! The admin "Status" page and `GET /api/v1/status`: the platform's health at a glance. The
//! node (CPU, memory, disk), every installed app and its state, certificates and their
//! expiry (and why one was not issued), alerts firing now, and the last backup. The operator
//! stores what it sees of the cluster and Alertmanager delivers alerts; this only reads.

use askama::Template;
use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use axum_extra::extract::cookie::CookieJar;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;
use stackspin_domain::size::human_bytes;
use stackspin_domain::status::{CertificateStatus, CertificateVerdict, NodeStatus};
use stackspin_storage::{Alert, AppState as InstalledState, BackupPhase, StorageError};

use crate::api::{Admin, ApiError};
use crate::texts;
use crate::{AppState, admin::require_admin, pages, session};

const PAGE: &str = "/admin/status";

/// Alertmanager repeats a firing alert hourly (its route's repeat_interval); one not heard of
/// for two hours is stale, not firing.
const ALERT_FRESHNESS_HOURS: i64 = 2;
/// Observations older than this are shown as old: the operator reads every minute.
const OBSERVATION_STALE_MINUTES: i64 = 10;

#[derive(Debug, Serialize)]
pub struct AppLine {
    pub name: String,
    pub title: String,
    pub state: InstalledState,
    pub reason: String,
    pub version: Option<String>,
    pub ok: bool,
}

#[derive(Debug, Serialize)]
pub struct CertificateLine {
    #[serde(flatten)]
    pub certificate: CertificateStatus,
    pub verdict: CertificateVerdict,
    pub days_left: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct BackupLine {
    pub configured: bool,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_nightly: Option<String>,
    pub last_nightly_phase: Option<BackupPhase>,
    /// Why the backups need attention, if they do.
    pub alarm: Option<String>,
}

/// Everything the page and the API show.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    /// Whether `serve` runs the operator against a cluster.
    pub connected: bool,
    /// When the operator last read the nodes; `None`: never.
    pub observed_at: Option<DateTime<Utc>>,
    pub observation_stale: bool,
    pub nodes: Vec<NodeStatus>,
    pub apps: Vec<AppLine>,
    pub certificates: Vec<CertificateLine>,
    pub alerts: Vec<Alert>,
    pub backups: BackupLine,
    /// How many things need the admin: apps not working, certificates not valid, node
    /// problems, alerts, a backup alarm.
    pub attention: usize,
}

fn observation<T: serde::de::DeserializeOwned>(
    seen: Option<(Value, DateTime<Utc>)>,
) -> (Vec<T>, Option<DateTime<Utc>>) {
    match seen {
        // A document the operator of another version wrote may not read: shown as unknown.
        Some((v, at)) => (serde_json::from_value(v).unwrap_or_default(), Some(at)),
        None => (Vec::new(), None),
    }
}

pub async fn report(state: &AppState, now: DateTime<Utc>) -> Result<StatusReport, StorageError> {
    let (nodes, observed_at) = observation::<NodeStatus>(state.store.observation("nodes").await?);
    let (certificates, _) =
        observation::<CertificateStatus>(state.store.observation("certificates").await?);
    let apps: Vec<AppLine> = state
        .store
        .installed_apps()
        .await?
        .into_iter()
        .filter(|a| a.wanted)
        .map(|a| AppLine {
            title: state
                .platform
                .catalog
                .get(&a.name)
                .map_or_else(|| a.name.clone(), |e| e.title.clone()),
            ok: a.state == InstalledState::Ready,
            version: a.running_version.clone(),
            state: a.state,
            reason: a.reason,
            name: a.name,
        })
        .collect();
    let certificates: Vec<CertificateLine> = certificates
        .into_iter()
        .map(|c| CertificateLine {
            verdict: c.verdict(now),
            days_left: c.not_after.map(|t| (t - now).num_days()),
            certificate: c,
        })
        .collect();
    let alerts = state
        .store
        .firing_alerts(now - Duration::hours(ALERT_FRESHNESS_HOURS))
        .await?;
    let all_backups = state.store.backups().await?;
    let summary = crate::admin_backups::summary(state, &all_backups, now);
    let backups = BackupLine {
        configured: state
            .platform
            .cluster
            .as_ref()
            .is_some_and(|c| c.backups.is_some()),
        last_success_at: all_backups
            .iter()
            .filter(|b| b.phase == BackupPhase::Completed)
            .map(|b| b.created_at)
            .max(),
        last_nightly: summary.last.as_ref().map(|l| l.b.name.clone()),
        last_nightly_phase: summary.last.as_ref().map(|l| l.b.phase),
        alarm: summary.alarm,
    };
    let attention = apps.iter().filter(|a| !a.ok).count()
        + certificates
            .iter()
            .filter(|c| c.verdict != CertificateVerdict::Valid)
            .count()
        + nodes.iter().map(|n| n.problems.len()).sum::<usize>()
        + alerts.len()
        + usize::from(backups.alarm.is_some());
    Ok(StatusReport {
        connected: state.platform.cluster.is_some(),
        observation_stale: observed_at
            .is_some_and(|t| now - t > Duration::minutes(OBSERVATION_STALE_MINUTES)),
        observed_at,
        nodes,
        apps,
        certificates,
        alerts,
        backups,
        attention,
    })
}

/// "8 GB, 75% used", or just the size when usage is unknown.
fn with_usage(size: String, share: Option<f64>) -> String {
    match share {
        Some(s) => texts::tf(
            "admin_status.with_usage",
            [("size", size), ("percent", format!("{:.0}", s * 100.0))],
        ),
        None => size,
    }
}

#[derive(Template)]
#[template(path = "admin_status.html")]
struct StatusPage<'a> {
    csrf: &'a str,
    r: StatusReport,
    how_to_connect: &'a str,
}

impl StatusPage<'_> {
    fn cpu(&self, n: &NodeStatus) -> String {
        // Whole cores as people count them; a fraction only where the node has one.
        let cores = if n.cpu_cores.fract() == 0.0 {
            format!("{:.0}", n.cpu_cores)
        } else {
            format!("{:.1}", n.cpu_cores)
        };
        with_usage(
            texts::tn(
                "admin_status.cores",
                usize::from(n.cpu_cores == 1.0),
                [("cores", cores)],
            ),
            n.cpu_used_share(),
        )
    }
    fn memory(&self, n: &NodeStatus) -> String {
        with_usage(
            human_bytes(i64::try_from(n.memory_bytes).unwrap_or(i64::MAX)),
            n.memory_used_share(),
        )
    }
    fn usage_known(&self) -> bool {
        self.r.nodes.iter().any(|n| n.memory_used_bytes.is_some())
    }
    /// The root filesystem's size and use when node-exporter reports it through Prometheus,
    /// else the node's declared disk for pods.
    fn disk(&self, n: &NodeStatus) -> String {
        let size = n.disk.map_or(n.disk_bytes, |d| d.size_bytes);
        with_usage(
            human_bytes(i64::try_from(size).unwrap_or(i64::MAX)),
            n.disk_used_share(),
        )
    }
    fn disk_usage_known(&self) -> bool {
        self.r.nodes.iter().any(|n| n.disk.is_some())
    }
    fn app_state(&self, a: &AppLine) -> &'static str {
        crate::admin_catalog::state_text(a.state)
    }
    fn verdict(&self, c: &CertificateLine) -> String {
        match (c.verdict, c.days_left) {
            (CertificateVerdict::Valid, Some(d)) => {
                texts::tn("admin_status.cert_valid", d, texts::NONE)
            }
            (CertificateVerdict::Expiring, Some(d)) => {
                texts::tn("admin_status.cert_expiring", d, texts::NONE)
            }
            (CertificateVerdict::Expired, _) => texts::t("admin_status.cert_expired").into(),
            _ => texts::t("admin_status.cert_not_issued").into(),
        }
    }
    fn verdict_class(&self, c: &CertificateLine) -> &'static str {
        match c.verdict {
            CertificateVerdict::Valid => "ok",
            _ => "warn",
        }
    }
    fn observed(&self) -> String {
        self.r.observed_at.map_or_else(
            || texts::t("admin_status.never_observed").to_string(),
            |t| {
                texts::tf(
                    "admin_status.observed",
                    [("when", t.format("%Y-%m-%d %H:%M UTC").to_string())],
                )
            },
        )
    }
    fn since(&self, a: &Alert) -> String {
        a.starts_at.format("%Y-%m-%d %H:%M UTC").to_string()
    }
    fn last_backup(&self) -> String {
        self.r.backups.last_success_at.map_or_else(
            || texts::t("admin_status.no_backup_yet").to_string(),
            |t| {
                texts::tf(
                    "admin_status.last_backup",
                    [("when", t.format("%Y-%m-%d %H:%M UTC").to_string())],
                )
            },
        )
    }
}

pub async fn page(State(state): State<AppState>, jar: CookieJar) -> Response {
    if let Err(resp) = require_admin(&state, &jar, PAGE).await {
        return resp;
    }
    let r = match report(&state, Utc::now()).await {
        Ok(r) => r,
        Err(e) => return pages::internal_error(&e),
    };
    let (jar, csrf) = session::csrf_token(&state, jar);
    let page = StatusPage {
        csrf: &csrf,
        r,
        how_to_connect: crate::platform::HOW_TO_CONNECT,
    };
    (jar, pages::render(StatusCode::OK, &page)).into_response()
}

/// `GET /api/v1/status`.
pub async fn api(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<StatusReport>, ApiError> {
    Ok(Json(report(&state, Utc::now()).await?))
}
