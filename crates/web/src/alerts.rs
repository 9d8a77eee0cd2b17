//! Alertmanager's webhook: alerts from the monitoring stack, stored for the Status page and
//! mailed to the admin in the plain words the alerting rules carry, once per episode.
//!
//! Served on the internal (metrics) address only, which the ingress never routes to, and
//! guarded by a bearer token: the `alerts_token` secret generated for the monitoring app,
//! which Alertmanager reads from its Secret and serve from the database.

use std::collections::BTreeMap;

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use stackspin_domain::mail::{AlertText, alert_firing, alert_resolved};
use stackspin_domain::secret::{hash_secret, verify_secret};
use stackspin_storage::{Alert, AlertChange, IncomingAlert, OutgoingMail};

use crate::AppState;

/// The catalog entry and generated secret that hold the webhook's token.
const TOKEN_APP: &str = "monitoring";
const TOKEN_SECRET: &str = "alerts_token";

/// Alertmanager's webhook payload (version 4), the parts used.
#[derive(Deserialize)]
struct Payload {
    version: String,
    alerts: Vec<WireAlert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireAlert {
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    starts_at: DateTime<Utc>,
    #[serde(default)]
    ends_at: Option<DateTime<Utc>>,
    #[serde(default)]
    fingerprint: String,
}

fn plain(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response()
}

/// Whether the request carries the monitoring app's token.
async fn authorized(state: &AppState, headers: &HeaderMap) -> Result<bool, Response> {
    let secrets = state.store.generated_secrets().await.map_err(|e| {
        tracing::error!(error = %e, "alert webhook: cannot read the token");
        plain(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
    })?;
    let Some(expected) = secrets.get(TOKEN_APP).and_then(|s| s.get(TOKEN_SECRET)) else {
        return Ok(false);
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Compared as hashes in constant time: how much of it matched never shows.
    Ok(verify_secret(presented, &hash_secret(expected)))
}

fn incoming(a: WireAlert) -> IncomingAlert {
    let name = a
        .labels
        .get("alertname")
        .cloned()
        .unwrap_or_else(|| "unnamed alert".into());
    let note = |key: &str| a.annotations.get(key).cloned().unwrap_or_default();
    let summary = match note("summary") {
        s if s.is_empty() => name.clone(),
        s => s,
    };
    // Rules from other charts (kube-prometheus-stack's) say it in `description` or `message`.
    let description = match note("description") {
        d if d.is_empty() => note("message"),
        d => d,
    };
    let action = match note("action") {
        a if a.is_empty() => match note("runbook_url") {
            r if r.is_empty() => "See the Status page in the Dashboard.".to_string(),
            r => format!("Follow the runbook: {r}"),
        },
        a => a,
    };
    // Labels identify the alert; a missing fingerprint (not sent by Alertmanager since
    // 0.19) is made from them, so repeats still match.
    let fingerprint = if a.fingerprint.is_empty() {
        hash_secret(&serde_json::to_string(&a.labels).unwrap_or_default())[..16].to_string()
    } else {
        a.fingerprint
    };
    IncomingAlert {
        fingerprint,
        severity: a
            .labels
            .get("severity")
            .cloned()
            .unwrap_or_else(|| "warning".into()),
        name,
        summary,
        description,
        action,
        link: note("dashboard_url"),
        firing: a.status == "firing",
        starts_at: a.starts_at,
        // Alertmanager sends the zero time for "not ended".
        ends_at: a.ends_at.filter(|t| t.timestamp() > 0),
        labels: a.labels,
    }
}

/// The mail for a change of an alert: to the cluster's admin email, for alerts people act on.
fn mail_for(
    org: Option<&str>,
    admin_email: Option<&str>,
    a: &Alert,
    change: AlertChange,
) -> Option<OutgoingMail> {
    let to = admin_email?;
    if !matches!(a.severity.as_str(), "critical" | "warning") {
        return None;
    }
    let since = a.starts_at.format("%Y-%m-%d %H:%M UTC").to_string();
    let text = AlertText {
        summary: &a.summary,
        description: &a.description,
        action: &a.action,
        link: &a.link,
        since: &since,
    };
    let (subject, body) = match change {
        AlertChange::Firing => alert_firing(org, &text),
        AlertChange::Resolved => alert_resolved(&text),
    };
    Some(OutgoingMail {
        to: to.to_string(),
        subject,
        body,
    })
}

/// `POST /alertmanager`: one delivery from Alertmanager.
pub async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match authorized(&state, &headers).await {
        Ok(true) => {}
        Ok(false) => return plain(StatusCode::UNAUTHORIZED, "a valid bearer token is required"),
        Err(r) => return r,
    }
    let payload: Payload = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return plain(
                StatusCode::BAD_REQUEST,
                &format!("not an Alertmanager webhook payload: {e}"),
            );
        }
    };
    if payload.version != "4" {
        return plain(
            StatusCode::BAD_REQUEST,
            &format!(
                "webhook payload version {} is not supported (4 is)",
                payload.version
            ),
        );
    }
    let alerts: Vec<IncomingAlert> = payload.alerts.into_iter().map(incoming).collect();
    let admin_email = state
        .platform
        .cluster
        .as_ref()
        .map(|c| c.admin_email.clone());
    let org = state.org_name().await;
    let mail = move |a: &Alert, change: AlertChange| {
        mail_for(org.as_deref(), admin_email.as_deref(), a, change)
    };
    match state.store.record_alerts(&alerts, Utc::now(), &mail).await {
        Ok(queued) => {
            if queued > 0 {
                state.wake_mail();
            }
            tracing::info!(alerts = alerts.len(), mails = queued, "alerts received");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "alert webhook: cannot record alerts");
            // Alertmanager retries a failed delivery.
            plain(StatusCode::SERVICE_UNAVAILABLE, "cannot record alerts now")
        }
    }
}
