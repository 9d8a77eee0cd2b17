//! One operator at a time among replicas (PostgreSQL lets `serve` run more than one): a
//! coordination.k8s.io Lease, taken when free or expired and renewed well before it expires.
//! Every write is conditional on the Lease's resourceVersion, so two replicas racing for it
//! cannot both win.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::apply::is_status;

/// The Lease name the operator holds.
pub const LEASE_NAME: &str = "stackspin-operator";

#[derive(Clone)]
pub struct Elector {
    api: Api<Lease>,
    client: Client,
    namespace: String,
    identity: String,
    duration: Duration,
}

fn micro(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

impl Elector {
    pub fn new(client: Client, namespace: &str, identity: &str, duration: Duration) -> Self {
        Elector {
            api: Api::namespaced(client.clone(), namespace),
            client,
            namespace: namespace.to_string(),
            identity: identity.to_string(),
            duration,
        }
    }

    async fn ensure_namespace(&self) -> Result<(), kube::Error> {
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        let ns = serde_json::from_value(json!({"metadata": {"name": self.namespace}}))
            .map_err(kube::Error::SerdeError)?;
        match namespaces.create(&PostParams::default(), &ns).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 409) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Takes or renews the Lease; `true` while this replica leads.
    pub async fn try_lead(&self) -> Result<bool, kube::Error> {
        let now = Utc::now();
        let seconds = i32::try_from(self.duration.as_secs().max(1)).unwrap_or(15);
        let Some(current) = self.api.get_opt(LEASE_NAME).await? else {
            let lease: Lease = serde_json::from_value(json!({
                "metadata": {"name": LEASE_NAME},
                "spec": {
                    "holderIdentity": self.identity,
                    "leaseDurationSeconds": seconds,
                    "acquireTime": micro(now),
                    "renewTime": micro(now),
                    "leaseTransitions": 0,
                },
            }))
            .map_err(kube::Error::SerdeError)?;
            let created = match self.api.create(&PostParams::default(), &lease).await {
                // On a fresh cluster the operator's namespace does not exist yet (run from a
                // laptop with --kubeconfig; in a pod it always does): make it, then the Lease.
                Err(e) if is_status(&e, 404) => {
                    self.ensure_namespace().await?;
                    self.api.create(&PostParams::default(), &lease).await
                }
                other => other,
            };
            return match created {
                Ok(_) => Ok(true),
                Err(e) if is_status(&e, 409) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = serde_json::to_value(&current.spec).map_err(kube::Error::SerdeError)?;
        let holder = spec["holderIdentity"].as_str().unwrap_or_default();
        let renewed = spec["renewTime"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let held_for = spec["leaseDurationSeconds"].as_i64().unwrap_or(15);
        let expired = renewed.is_none_or(|r| r + chrono::Duration::seconds(held_for) < now);
        let ours = holder == self.identity;
        if !ours && !holder.is_empty() && !expired {
            return Ok(false);
        }
        let transitions = spec["leaseTransitions"].as_i64().unwrap_or(0);
        let mut next = current.clone();
        let mut new_spec = spec.clone();
        new_spec["holderIdentity"] = json!(self.identity);
        new_spec["leaseDurationSeconds"] = json!(seconds);
        new_spec["renewTime"] = json!(micro(now));
        if !ours {
            new_spec["acquireTime"] = json!(micro(now));
            new_spec["leaseTransitions"] = json!(transitions + 1);
        }
        next.spec = Some(serde_json::from_value(new_spec).map_err(kube::Error::SerdeError)?);
        // replace carries the resourceVersion we read: a concurrent change makes it a 409.
        match self
            .api
            .replace(LEASE_NAME, &PostParams::default(), &next)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_status(&e, 409) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Lets the Lease go at shutdown, so another replica takes over at once, not after it
    /// expires.
    pub async fn step_down(&self) -> Result<(), kube::Error> {
        let Some(mut current) = self.api.get_opt(LEASE_NAME).await? else {
            return Ok(());
        };
        let mut spec = serde_json::to_value(&current.spec).map_err(kube::Error::SerdeError)?;
        if spec["holderIdentity"].as_str() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec["holderIdentity"] = serde_json::Value::Null;
        current.spec = Some(serde_json::from_value(spec).map_err(kube::Error::SerdeError)?);
        match self
            .api
            .replace(LEASE_NAME, &PostParams::default(), &current)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 409) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
