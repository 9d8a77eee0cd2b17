//! Restore drills: on a schedule (weekly by default), the latest backup of each app is
//! restored into a scratch namespace and what came back is checked, so a backup that cannot
//! be restored is found on a quiet day and not on the day it is needed.
//!
//! The drill restores the app's data-bearing objects (claims, their volumes' data where a
//! node agent copies it, Secrets, ConfigMaps, Services) but no workloads, ingresses or
//! certificates: a second copy of an app must not start, answer on its host name or order a
//! certificate. One app at a time, one step per round, recorded in the database, so a restart
//! picks it up. The scratch namespace is deleted at the end.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::core::DynamicObject;
use serde_json::{Value, json};
use stackspin_catalog::BACKUP_SET_LABEL;
use stackspin_platform::desired::{APP_LABEL, MANAGED_BY};
use stackspin_storage::{BackupPhase, Drill, DrillApp, DrillState};

use crate::backups::{VELERO_NAMESPACE, restore_resource};
use crate::{Operator, OperatorError, apply};

/// Where drills restore to.
pub const DRILL_NAMESPACE: &str = "stackspin-drill";

/// What a drill leaves out: anything that would run, be reachable, or ask for a certificate.
pub const DRILL_EXCLUDED: &[&str] = &[
    "pods",
    "deployments.apps",
    "statefulsets.apps",
    "daemonsets.apps",
    "replicasets.apps",
    "jobs.batch",
    "cronjobs.batch",
    "ingresses.networking.k8s.io",
    "ingressroutes.traefik.io",
    "middlewares.traefik.io",
    "certificates.cert-manager.io",
    "helmreleases.helm.toolkit.fluxcd.io",
];

/// The Velero Restore of one app's backup set into the scratch namespace.
pub fn drill_restore_object(name: &str, backup: &str, app: &str, namespaces: &[&str]) -> Value {
    let mapping: serde_json::Map<String, Value> = namespaces
        .iter()
        .map(|ns| ((*ns).to_string(), json!(DRILL_NAMESPACE)))
        .collect();
    json!({
        "apiVersion": "velero.io/v1",
        "kind": "Restore",
        "metadata": {
            "name": name,
            "namespace": VELERO_NAMESPACE,
            "labels": { APP_LABEL: app, MANAGED_BY.0: MANAGED_BY.1, "stackspin.net/drill": "true" },
        },
        "spec": {
            "backupName": backup,
            "includedNamespaces": namespaces,
            "namespaceMapping": mapping,
            "labelSelector": { "matchLabels": { BACKUP_SET_LABEL: app } },
            "excludedResources": DRILL_EXCLUDED,
            "restorePVs": true,
        },
    })
}

impl Operator {
    /// Starts a drill when one is due, or moves the running one by a step. Returns whether a
    /// drill is running.
    pub(crate) async fn drill_round(&self) -> Result<bool, OperatorError> {
        let Some(store_cfg) = &self.config.backup_s3 else {
            return Ok(false);
        };
        if store_cfg.drill_days == 0 {
            return Ok(false);
        }
        let drill = match self.store.drills(1).await?.into_iter().next() {
            Some(d) if d.state == DrillState::Running => d,
            last => {
                let every = chrono::Duration::days(i64::from(store_cfg.drill_days));
                let due = last.is_none_or(|d| (self.clock)() - d.started_at >= every);
                // Not beside a restore: both would touch the same backups and Velero.
                if !due || self.store.active_restore().await?.is_some() {
                    return Ok(false);
                }
                match self.plan_drill().await? {
                    Some(plan) => {
                        // A scratch namespace left by an interrupted drill goes first: what
                        // is in it would be taken for this drill's restore.
                        let namespaces: Api<Namespace> = Api::all(self.client.clone());
                        match namespaces
                            .delete(DRILL_NAMESPACE, &DeleteParams::background())
                            .await
                        {
                            Ok(_) => {}
                            Err(e) if apply::is_status(&e, 404) => {}
                            Err(e) => return Err(e.into()),
                        }
                        let d = self.store.start_drill(&plan).await?;
                        tracing::info!(
                            drill = d.id,
                            apps = plan.len(),
                            "operator: restore drill started"
                        );
                        d
                    }
                    None => return Ok(false),
                }
            }
        };
        self.drill_step(drill).await?;
        Ok(true)
    }

    /// Each installed app with its latest completed backup; `None` when no app has one yet.
    async fn plan_drill(&self) -> Result<Option<Vec<DrillApp>>, OperatorError> {
        let backups = self.store.backups().await?;
        let plan: Vec<DrillApp> = self
            .store
            .installed_apps()
            .await?
            .into_iter()
            .filter(|r| r.wanted)
            .filter_map(|r| {
                // Newest first.
                let b = backups.iter().find(|b| b.holds(&r.name))?;
                Some(DrillApp {
                    app: r.name,
                    backup: b.name.clone(),
                    ok: None,
                    detail: String::new(),
                })
            })
            .collect();
        Ok((!plan.is_empty()).then_some(plan))
    }

    async fn drill_step(&self, mut drill: Drill) -> Result<(), OperatorError> {
        let Some(i) = drill.apps.iter().position(|a| a.ok.is_none()) else {
            return self.finish_drill(drill).await;
        };
        let a = drill.apps[i].clone();
        let name = format!(
            "drill-{}-{}-{}",
            drill.id,
            drill.started_at.format("%Y%m%d%H%M"),
            a.app
        );
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), VELERO_NAMESPACE, &restore_resource());
        let Some(restore) = api.get_opt(&name).await? else {
            // The previous drill's scratch namespace must be gone first.
            let namespaces: Api<Namespace> = Api::all(self.client.clone());
            if let Some(ns) = namespaces.get_opt(DRILL_NAMESPACE).await?
                && ns.metadata.deletion_timestamp.is_some()
            {
                return Ok(());
            }
            let nss = self.app_namespaces(&a.app);
            let data: DynamicObject =
                serde_json::from_value(drill_restore_object(&name, &a.backup, &a.app, &nss))
                    .map_err(|e| OperatorError::Kube(format!("drill restore object: {e}")))?;
            match api.create(&PostParams::default(), &data).await {
                Ok(_) => {}
                Err(e) if apply::is_status(&e, 409) => {}
                Err(e @ kube::Error::Api(_)) => {
                    drill.apps[i].ok = Some(false);
                    drill.apps[i].detail =
                        format!("Velero refused the restore: {}", apply::describe(&e));
                    self.store.record_drill(drill.id, &drill.apps, None).await?;
                }
                Err(e) => return Err(e.into()),
            }
            return Ok(());
        };
        let status = &restore.data["status"];
        let phase = status["phase"].as_str().unwrap_or_default();
        if !matches!(
            phase,
            "Completed" | "PartiallyFailed" | "Failed" | "FailedValidation"
        ) {
            return Ok(());
        }
        let (ok, detail) = self.check_drill(&a, &name, phase, status).await?;
        drill.apps[i].ok = Some(ok);
        drill.apps[i].detail = detail;
        tracing::info!(drill = drill.id, app = %a.app, ok, detail = %drill.apps[i].detail, "operator: restore drill checked an app");
        self.store.record_drill(drill.id, &drill.apps, None).await?;
        Ok(())
    }

    /// What came back: every claim the app has now, restored; Velero without errors; and
    /// what the backup copied of the volumes.
    async fn check_drill(
        &self,
        a: &DrillApp,
        restore: &str,
        phase: &str,
        status: &Value,
    ) -> Result<(bool, String), OperatorError> {
        let selector = format!("{BACKUP_SET_LABEL}={}", a.app);
        let mut expected = BTreeSet::new();
        for ns in self.app_namespaces(&a.app) {
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
            for c in claims
                .list(&ListParams::default().labels(&selector))
                .await?
                .items
            {
                // Claims Velero is told to leave out are not expected back.
                let excluded = c.metadata.labels.as_ref().is_some_and(|l| {
                    l.get("velero.io/exclude-from-backup").map(String::as_str) == Some("true")
                });
                if !excluded {
                    expected.insert(c.metadata.name.unwrap_or_default());
                }
            }
        }
        let scratch: Api<PersistentVolumeClaim> =
            Api::namespaced(self.client.clone(), DRILL_NAMESPACE);
        let back: BTreeSet<String> = scratch
            .list(&ListParams::default().labels(&format!("velero.io/restore-name={restore}")))
            .await?
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        let missing: Vec<&String> = expected.difference(&back).collect();
        let restored = status["progress"]["itemsRestored"].as_i64().unwrap_or(0);
        let errors = status["errors"].as_i64().unwrap_or(0);
        let backup = self.store.backup(&a.backup).await?;
        let volumes = match &backup {
            Some(b) if b.bytes > 0 => format!(
                "the backup copied {} of volume data",
                stackspin_domain::size::human_bytes(b.bytes)
            ),
            _ if !self.settings.volume_data => {
                "volume data is not copied on this cluster (objects only)".to_string()
            }
            _ => "the backup copied no volume data".to_string(),
        };
        let mut problems = Vec::new();
        if phase != "Completed" {
            problems.push(format!(
                "Velero's restore ended {phase} with {errors} errors"
            ));
        }
        if !missing.is_empty() {
            problems.push(format!(
                "claims not restored: {}",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if backup
            .as_ref()
            .is_some_and(|b| b.phase != BackupPhase::Completed)
        {
            problems.push("the backup is no longer complete".into());
        }
        let ok = problems.is_empty();
        let detail = if ok {
            format!(
                "{restored} objects restored from {}, claims back: {}; {volumes}",
                a.backup,
                if back.is_empty() {
                    "none".to_string()
                } else {
                    back.into_iter().collect::<Vec<_>>().join(", ")
                }
            )
        } else {
            format!(
                "{} ({restored} objects restored from {})",
                problems.join("; "),
                a.backup
            )
        };
        Ok((ok, detail))
    }

    async fn finish_drill(&self, drill: Drill) -> Result<(), OperatorError> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        match namespaces
            .delete(DRILL_NAMESPACE, &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(e) if apply::is_status(&e, 404) => {}
            Err(e) => return Err(e.into()),
        }
        let failed: Vec<&DrillApp> = drill.apps.iter().filter(|a| a.ok != Some(true)).collect();
        let (state, message) = if failed.is_empty() {
            (
                DrillState::Passed,
                format!(
                    "{} of {} apps restored from their latest backup and checked",
                    drill.apps.len(),
                    drill.apps.len()
                ),
            )
        } else {
            (
                DrillState::Failed,
                failed
                    .iter()
                    .map(|a| format!("{}: {}", a.app, a.detail))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        };
        tracing::info!(drill = drill.id, state = ?state, %message, "operator: restore drill finished");
        self.store
            .record_drill(drill.id, &drill.apps, Some((state, &message)))
            .await?;
        if state == DrillState::Failed {
            let mut d = drill.clone();
            d.state = state;
            d.message = message;
            self.drill_failed(&d).await?;
        }
        Ok(())
    }
}
