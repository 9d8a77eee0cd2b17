//! Liveness and readiness probes, as Kubernetes uses them.

use std::time::Duration;

use axum::{extract::State, http::StatusCode};

use crate::AppState;

/// The process is up and serving HTTP.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// The process can do useful work: the database answers within two seconds. Anything else is
/// a 503 so the load balancer sends traffic to another replica.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ok\n"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
        }
        Err(_) => {
            tracing::warn!("readiness check: database did not answer within 2 s");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
        }
    }
}
