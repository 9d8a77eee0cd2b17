//! Delivery of back-channel logout tokens (Back-Channel Logout 1.0) from the outbox.
//!
//! Notices are queued in the database by whatever ended a session (logout, role change, user
//! deletion, password reset, from the server or the admin CLI). This worker signs a fresh
//! logout token for each and POSTs it to the app. A failed delivery is retried with
//! exponential backoff (1 s, 2 s, 4 s ... up to an hour) and logged; after 12 attempts, about
//! 2 hours, it is given up and logged as an error.

use std::time::Duration;

use chrono::Utc;
use stackspin_domain::{SigningAlg, retry::Backoff, secret::random_token};
use stackspin_identity::{claims, jwt};
use stackspin_storage::DueLogout;

use crate::AppState;

/// 1 s doubling to an hour, 12 attempts: about two hours before giving up.
const BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(1),
    cap: Duration::from_secs(3600),
    max_attempts: 12,
};

/// Runs until the process stops: wakes when this process queues a notice, and polls for
/// notices queued elsewhere (another replica, the admin CLI).
pub async fn run(state: AppState) {
    loop {
        match state.store.claim_due_logouts(32).await {
            Ok(due) => {
                let deliveries = due.into_iter().map(|d| deliver(&state, d));
                futures_util::future::join_all(deliveries).await;
            }
            Err(e) => tracing::warn!(error = %e, "back-channel outbox unavailable"),
        }
        tokio::select! {
            _ = state.outbox_wake.notified() => {},
            _ = tokio::time::sleep(state.options.outbox_poll_interval) => {},
        }
    }
}

async fn deliver(state: &AppState, d: DueLogout) {
    let result = match send(state, &d).await {
        Ok(()) => {
            tracing::info!(client_id = %d.client_id, "back-channel logout delivered");
            state.store.logout_delivered(d.id).await
        }
        Err(reason) => {
            let attempt = u32::try_from(d.attempts + 1).unwrap_or(u32::MAX);
            match BACKOFF.after(attempt) {
                Some(wait) => {
                    tracing::warn!(client_id = %d.client_id, %reason, attempt, retry_in_secs = wait.as_secs(), "back-channel logout failed; will retry");
                    state
                        .store
                        .logout_failed(d.id, &reason, Some(Utc::now() + wait))
                        .await
                }
                None => {
                    tracing::error!(client_id = %d.client_id, %reason, attempt, "back-channel logout failed; giving up");
                    state.store.logout_failed(d.id, &reason, None).await
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot record back-channel delivery result");
    }
}

async fn send(state: &AppState, d: &DueLogout) -> Result<(), String> {
    let signer = state
        .keys
        .signer(SigningAlg::Rs256)
        .ok_or_else(|| "no signing key".to_owned())?;
    let body = claims::logout_token(
        state.public_url.as_str(),
        &d.client_id,
        &d.sub,
        d.sid.as_deref(),
        Utc::now().timestamp(),
        &random_token(16),
    );
    let token = jwt::sign(&signer, Some("logout+jwt"), &body).map_err(|e| e.to_string())?;
    let resp = state
        .http
        .post(&d.uri)
        .form(&[("logout_token", token)])
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("app answered {}", resp.status()))
    }
}
