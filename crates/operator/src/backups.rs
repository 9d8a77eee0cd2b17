//! Backups and per-app restores through Velero. The operator creates the Backups the
//! database asks for, mirrors every Velero Backup back into the database, and drives the
//! running restore one step at a time: the seed's manual procedure (suspend the release,
//! remove the app's workloads and volumes by its backup-set label, restore by that label,
//! resume), preceded by a safety backup and followed by a wait for the app to be ready.
//! Every step is idempotent and its name is stored before its work starts, so a restarted
//! `serve` picks the restore up where it stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};
use stackspin_catalog::BACKUP_SET_LABEL;
use stackspin_platform::crds::HelmRelease;
use stackspin_platform::desired::{self, APP_LABEL, MANAGED_BY};
use stackspin_storage::{
    AppState, Backup, BackupPhase, BackupReason, ObservedBackup, Restore, RestoreStep,
};

use crate::{Operator, OperatorError, apply, namespace_of};

/// Velero runs in the core namespace (the catalog places it there).
pub const VELERO_NAMESPACE: &str = desired::CORE_NAMESPACE;
/// Why a backup was made, on the Velero object, for the mirror.
pub const REASON_LABEL: &str = "stackspin.net/backup-reason";
/// How long backups made by the control plane are kept (as the nightly schedule's).
pub const BACKUP_TTL: &str = "720h0m0s";

fn velero(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("velero.io", "v1", kind), plural)
}

pub fn backup_resource() -> ApiResource {
    velero("Backup", "backups")
}

pub fn restore_resource() -> ApiResource {
    velero("Restore", "restores")
}

fn pod_volume_backups() -> ApiResource {
    velero("PodVolumeBackup", "podvolumebackups")
}

/// The Velero Backup for one app (its backup set, in the namespaces of its parts) or, with
/// no app, for the platform's two namespaces.
pub fn backup_object(
    name: &str,
    app: Option<&str>,
    namespaces: &[&str],
    reason: BackupReason,
    volume_data: bool,
) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert(REASON_LABEL.into(), json!(reason.as_str()));
    labels.insert(MANAGED_BY.0.into(), json!(MANAGED_BY.1));
    let mut spec = json!({
        "includedNamespaces": namespaces,
        "ttl": BACKUP_TTL,
        // local-path volumes cannot be snapshotted: the node agent copies them file by file.
        "defaultVolumesToFsBackup": volume_data,
        "snapshotVolumes": false,
    });
    if let Some(app) = app {
        labels.insert(APP_LABEL.into(), json!(app));
        spec["labelSelector"] = json!({ "matchLabels": { BACKUP_SET_LABEL: app } });
    }
    json!({
        "apiVersion": "velero.io/v1",
        "kind": "Backup",
        "metadata": { "name": name, "namespace": VELERO_NAMESPACE, "labels": labels },
        "spec": spec,
    })
}

/// The Velero Restore of one app's backup set from a backup. Objects that still exist are
/// left alone (`existingResourcePolicy: none`): the workloads and volumes were removed first,
/// and what Helm owns besides comes back with the release.
pub fn restore_object(name: &str, backup: &str, app: &str, namespaces: &[&str]) -> Value {
    json!({
        "apiVersion": "velero.io/v1",
        "kind": "Restore",
        "metadata": {
            "name": name,
            "namespace": VELERO_NAMESPACE,
            "labels": { APP_LABEL: app, MANAGED_BY.0: MANAGED_BY.1 },
        },
        "spec": {
            "backupName": backup,
            "includedNamespaces": namespaces,
            "labelSelector": { "matchLabels": { BACKUP_SET_LABEL: app } },
            "restorePVs": true,
            "existingResourcePolicy": "none",
        },
    })
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Why a Velero Backup or Restore failed, from its status: the validation errors when there
/// are any, else the failure reason; empty when Velero gave neither.
fn velero_failure(status: &Value) -> String {
    let validation: Vec<&str> = status["validationErrors"]
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if validation.is_empty() {
        status["failureReason"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    } else {
        validation.join("; ")
    }
}

/// What the database records of a Velero Backup. `bytes` is what its pod volume backups
/// copied (Velero reports no size for the objects themselves).
pub fn observe_backup(o: &DynamicObject, bytes: i64) -> Option<ObservedBackup> {
    let name = o.metadata.name.clone()?;
    let labels = o.metadata.labels.clone().unwrap_or_default();
    let status = &o.data["status"];
    let reason = labels
        .get(REASON_LABEL)
        .and_then(|r| BackupReason::parse(r))
        .unwrap_or(if labels.contains_key("velero.io/schedule-name") {
            BackupReason::Scheduled
        } else {
            BackupReason::Manual
        });
    let message = velero_failure(status);
    Some(ObservedBackup {
        name,
        app: labels.get(APP_LABEL).cloned(),
        reason,
        phase: BackupPhase::from_velero(status["phase"].as_str().unwrap_or_default()),
        message,
        items: status["progress"]["itemsBackedUp"].as_i64().unwrap_or(0),
        bytes,
        errors: status["errors"].as_i64().unwrap_or(0),
        warnings: status["warnings"].as_i64().unwrap_or(0),
        created_at: o
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0))
            .unwrap_or_else(Utc::now),
        started_at: time(&status["startTimestamp"]),
        completed_at: time(&status["completionTimestamp"]),
        expires_at: time(&status["expiration"]),
    })
}

/// What a step decided.
enum Progress {
    /// Not there yet; look again next time.
    Wait,
    /// Done, with what it did.
    Next(String),
    /// Cannot go on, with why.
    Fail(String),
}

/// What state the app is in after a restore failed at `step`, and how to recover.
pub fn recovery(step: RestoreStep, app: &str, safety: Option<&str>) -> String {
    let from_safety = safety
        .map(|s| format!("`stackspin restore {app} --from {s}` (the safety backup)"))
        .unwrap_or_else(|| "a restore from the latest good backup".into());
    match step {
        RestoreStep::SafetyBackup => {
            format!("Nothing was changed: {app} runs as before.")
        }
        RestoreStep::Suspend => format!(
            "Nothing was deleted; {app}'s release stays suspended until a restore finishes: run {from_safety}."
        ),
        RestoreStep::Remove | RestoreStep::Restore => format!(
            "{app}'s release stays suspended and its workloads or volumes may be partly removed; its data before the restore is in the safety backup. Recover with {from_safety}."
        ),
        RestoreStep::Resume | RestoreStep::WaitReady | RestoreStep::Done => format!(
            "The data was restored and {app}'s release resumed, but it is not ready; see `stackspin app status {app}`. To go back, run {from_safety}."
        ),
    }
}

impl Operator {
    /// Creates the backups asked for, mirrors Velero's backups, and drives the running
    /// restore (or else the restore drill) by one step. Returns whether one is running (the
    /// caller looks again soon).
    pub async fn backups_round(&self) -> Result<bool, OperatorError> {
        let backups = self.store.backups().await?;
        let requested: Vec<&Backup> = backups
            .iter()
            .filter(|b| b.phase == BackupPhase::Requested)
            .collect();
        if self.config.backup_s3.is_none() {
            for b in requested {
                self.store
                    .set_backup_phase(
                        &b.name,
                        BackupPhase::Failed,
                        "this cluster has no backup store: set the backup_s3_* settings in cluster.toml",
                    )
                    .await?;
            }
        } else {
            for b in requested {
                self.create_backup(b).await?;
            }
            self.mirror_backups(&backups).await?;
            self.check_missing_nightly(&self.store.backups().await?)
                .await?;
        }
        if self.drive_restore().await? {
            return Ok(true);
        }
        self.drill_round().await
    }

    pub(crate) fn app_namespaces(&self, app: &str) -> Vec<&'static str> {
        let set: BTreeSet<&'static str> = self.catalog.with_parts(app).map(namespace_of).collect();
        if set.is_empty() {
            vec![desired::APPS_NAMESPACE]
        } else {
            set.into_iter().collect()
        }
    }

    async fn create_backup(&self, b: &Backup) -> Result<(), OperatorError> {
        let namespaces = match &b.app {
            Some(app) => self.app_namespaces(app),
            None => vec![desired::CORE_NAMESPACE, desired::APPS_NAMESPACE],
        };
        let obj = backup_object(
            &b.name,
            b.app.as_deref(),
            &namespaces,
            b.reason,
            self.settings.volume_data,
        );
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), VELERO_NAMESPACE, &backup_resource());
        let data: DynamicObject = serde_json::from_value(obj)
            .map_err(|e| OperatorError::Kube(format!("backup object: {e}")))?;
        match api.create(&PostParams::default(), &data).await {
            Ok(created) => {
                if let Some(o) = observe_backup(&created, 0) {
                    self.store.record_backup(&o, &b.apps).await?;
                }
                tracing::info!(backup = %b.name, app = ?b.app, "operator: backup started");
            }
            // Created before a restart, not yet mirrored: the mirror picks it up.
            Err(e) if apply::is_status(&e, 409) => {}
            Err(e) if apply::is_status(&e, 404) => {
                self.store
                    .set_backup_phase(
                        &b.name,
                        BackupPhase::Failed,
                        "Velero is not installed on the cluster (yet)",
                    )
                    .await?;
            }
            Err(e @ kube::Error::Api(_)) => {
                self.store
                    .set_backup_phase(&b.name, BackupPhase::Failed, &apply::describe(&e))
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Velero's Backups into the database; a recorded backup Velero no longer has is gone.
    async fn mirror_backups(&self, known: &[Backup]) -> Result<(), OperatorError> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), VELERO_NAMESPACE, &backup_resource());
        let list = match api.list(&ListParams::default()).await {
            Ok(l) => l.items,
            // Velero's CRDs are not there (yet): nothing to mirror.
            Err(e) if apply::is_status(&e, 404) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut bytes: BTreeMap<String, i64> = BTreeMap::new();
        let pvb: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), VELERO_NAMESPACE, &pod_volume_backups());
        if let Ok(l) = pvb.list(&ListParams::default()).await {
            for o in l.items {
                let backup = o
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("velero.io/backup-name").cloned())
                    .unwrap_or_default();
                *bytes.entry(backup).or_default() += o.data["status"]["progress"]["totalBytes"]
                    .as_i64()
                    .unwrap_or(0);
            }
        }
        let installed: Vec<String> = self
            .store
            .installed_apps()
            .await?
            .into_iter()
            .filter(|r| r.wanted)
            .map(|r| r.name)
            .collect();
        let mut seen = BTreeSet::new();
        for o in &list {
            let Some(obs) = observe_backup(o, 0) else {
                continue;
            };
            let obs = ObservedBackup {
                bytes: bytes.get(&obs.name).copied().unwrap_or(0),
                ..obs
            };
            seen.insert(obs.name.clone());
            let unchanged = known.iter().any(|k| {
                k.name == obs.name
                    && k.phase == obs.phase
                    && k.items == obs.items
                    && k.bytes == obs.bytes
                    && k.completed_at == obs.completed_at
                    && k.expires_at == obs.expires_at
            });
            if unchanged {
                continue;
            }
            let apps = match &obs.app {
                Some(a) => vec![a.clone()],
                None => installed.clone(),
            };
            self.store.record_backup(&obs, &apps).await?;
            let failed_now = matches!(
                obs.phase,
                BackupPhase::Failed | BackupPhase::PartiallyFailed
            ) && !known
                .iter()
                .any(|k| k.name == obs.name && k.phase.is_final());
            if failed_now && let Some(b) = self.store.backup(&obs.name).await? {
                self.backup_failed(&b).await?;
            }
        }
        for k in known {
            // Requested ones are not in Velero yet; one that failed before Velero had it
            // never was.
            let never_there = matches!(k.phase, BackupPhase::Requested | BackupPhase::Gone)
                || (k.phase == BackupPhase::Failed && k.started_at.is_none());
            if !seen.contains(&k.name) && !never_there {
                self.store
                    .set_backup_phase(&k.name, BackupPhase::Gone, "no longer in the backup store")
                    .await?;
            }
        }
        Ok(())
    }

    async fn drive_restore(&self) -> Result<bool, OperatorError> {
        let Some(r) = self.store.active_restore().await? else {
            return Ok(false);
        };
        // An error (the API server or the database unreachable) leaves the step as it is:
        // the run loop logs it and tries again.
        match self.restore_step(&r).await? {
            Progress::Wait => {}
            Progress::Next(message) => {
                let next = r.step.next();
                tracing::info!(restore = r.id, app = %r.app, step = r.step.as_str(), %message, "operator: restore step done");
                self.store.advance_restore(r.id, next, &message).await?;
            }
            Progress::Fail(why) => {
                let message = format!(
                    "{}: {why}. {}",
                    r.step.as_str().replace('_', " "),
                    recovery(r.step, &r.app, r.safety_backup.as_deref())
                );
                tracing::warn!(restore = r.id, app = %r.app, %message, "operator: restore failed");
                self.store.fail_restore(r.id, &message).await?;
                // Take the app out of the restoring state now.
                self.wake.notify_one();
            }
        }
        Ok(true)
    }

    async fn restore_step(&self, r: &Restore) -> Result<Progress, OperatorError> {
        if self.config.backup_s3.is_none() {
            return Ok(Progress::Fail(
                "this cluster has no backup store (backup_s3_* in cluster.toml)".into(),
            ));
        }
        let namespaces = self.app_namespaces(&r.app);
        match r.step {
            RestoreStep::SafetyBackup => {
                let name = match &r.safety_backup {
                    Some(n) => n.clone(),
                    None => {
                        let name = stackspin_storage::backup_name(
                            Some(&r.app),
                            BackupReason::Safety,
                            Utc::now(),
                        );
                        // Recorded before it exists, so a restart does not make a second one.
                        self.store.set_safety_backup(r.id, &name).await?;
                        self.store
                            .request_backup(
                                &name,
                                Some(&r.app),
                                BackupReason::Safety,
                                std::slice::from_ref(&r.app),
                                r.requested_by.as_deref(),
                            )
                            .await?;
                        self.store
                            .note_restore(
                                r.id,
                                r.step,
                                &format!("taking safety backup {name} of {}", r.app),
                            )
                            .await?;
                        name
                    }
                };
                let Some(b) = self.store.backup(&name).await? else {
                    return Ok(Progress::Wait);
                };
                if b.phase == BackupPhase::Requested {
                    self.create_backup(&b).await?;
                    return Ok(Progress::Wait);
                }
                Ok(match b.phase {
                    BackupPhase::Completed => Progress::Next(format!(
                        "safety backup {name} completed ({} items)",
                        b.items
                    )),
                    BackupPhase::Failed | BackupPhase::PartiallyFailed | BackupPhase::Gone => {
                        Progress::Fail(format!(
                            "the safety backup {name} did not complete: {}",
                            if b.message.is_empty() {
                                b.phase.as_str().replace('_', " ")
                            } else {
                                b.message.clone()
                            }
                        ))
                    }
                    _ => Progress::Wait,
                })
            }
            RestoreStep::Suspend => {
                // The desired state suspends the app's releases from this step on.
                self.reconcile().await?;
                let mut all = true;
                for part in self.catalog.with_parts(&r.app) {
                    let api: Api<HelmRelease> =
                        Api::namespaced(self.client.clone(), namespace_of(part));
                    if let Some(hr) = api.get_opt(&part.name).await?
                        && hr.spec.suspend != Some(true)
                    {
                        all = false;
                    }
                }
                Ok(if all {
                    Progress::Next(format!("{}'s releases suspended", r.app))
                } else {
                    Progress::Wait
                })
            }
            RestoreStep::Remove => {
                let selector = format!("{BACKUP_SET_LABEL}={}", r.app);
                let mut left = 0usize;
                for ns in &namespaces {
                    for ar in workload_resources() {
                        let api: Api<DynamicObject> =
                            Api::namespaced_with(self.client.clone(), ns, &ar);
                        let found = match api.list(&ListParams::default().labels(&selector)).await {
                            Ok(l) => l.items,
                            Err(e) if apply::is_status(&e, 404) => continue,
                            Err(e) => return Err(e.into()),
                        };
                        for o in found {
                            left += 1;
                            if o.metadata.deletion_timestamp.is_some() {
                                continue;
                            }
                            let name = o.metadata.name.clone().unwrap_or_default();
                            match api.delete(&name, &DeleteParams::background()).await {
                                Ok(_) => {}
                                Err(e) if apply::is_status(&e, 404) => {}
                                Err(e) => return Err(e.into()),
                            }
                        }
                    }
                }
                if left == 0 {
                    return Ok(Progress::Next(format!(
                        "{}'s workloads and volumes removed",
                        r.app
                    )));
                }
                let since = Utc::now() - r.updated_at;
                if since
                    > chrono::Duration::from_std(self.settings.restore_step_timeout)
                        .unwrap_or(chrono::Duration::MAX)
                {
                    return Ok(Progress::Fail(format!(
                        "{left} objects were still not gone after {} s",
                        since.num_seconds()
                    )));
                }
                Ok(Progress::Wait)
            }
            RestoreStep::Restore => {
                // The time keeps names apart across databases (a control plane restored
                // from an older copy counts its restores from an earlier number again).
                let name = format!(
                    "{}-restore-{}-{}",
                    r.app,
                    r.id,
                    r.requested_at.format("%Y%m%d-%H%M%S")
                );
                let api: Api<DynamicObject> = Api::namespaced_with(
                    self.client.clone(),
                    VELERO_NAMESPACE,
                    &restore_resource(),
                );
                let existing = match api.get_opt(&name).await? {
                    Some(o) => o,
                    None => {
                        let data: DynamicObject = serde_json::from_value(restore_object(
                            &name,
                            &r.backup,
                            &r.app,
                            &namespaces,
                        ))
                        .map_err(|e| OperatorError::Kube(format!("restore object: {e}")))?;
                        self.store
                            .note_restore(
                                r.id,
                                r.step,
                                &format!(
                                    "restoring {} from {} (Velero restore {name})",
                                    r.app, r.backup
                                ),
                            )
                            .await?;
                        match api.create(&PostParams::default(), &data).await {
                            Ok(o) => o,
                            Err(e) if apply::is_status(&e, 409) => return Ok(Progress::Wait),
                            Err(e) => return Err(e.into()),
                        }
                    }
                };
                let status = &existing.data["status"];
                let restored = status["progress"]["itemsRestored"].as_i64().unwrap_or(0);
                let warnings = status["warnings"].as_i64().unwrap_or(0);
                Ok(match status["phase"].as_str().unwrap_or_default() {
                    "Completed" => Progress::Next(format!(
                        "{restored} items restored from {} ({warnings} warnings)",
                        r.backup
                    )),
                    "PartiallyFailed" | "Failed" | "FailedValidation" => {
                        let mut why = velero_failure(status);
                        if why.is_empty() {
                            why = format!(
                                "Velero reported {} errors (velero restore logs {name})",
                                status["errors"].as_i64().unwrap_or(0)
                            );
                        }
                        Progress::Fail(format!("Velero restore {name} failed: {why}"))
                    }
                    _ => Progress::Wait,
                })
            }
            RestoreStep::Resume => {
                // The desired state no longer suspends the app from this step on.
                self.reconcile().await?;
                let at = Utc::now().to_rfc3339();
                for part in self.catalog.with_parts(&r.app) {
                    let api: Api<HelmRelease> =
                        Api::namespaced(self.client.clone(), namespace_of(part));
                    match api.get_opt(&part.name).await? {
                        Some(hr) if hr.spec.suspend == Some(true) => return Ok(Progress::Wait),
                        Some(_) => {
                            // Ask Flux to act now rather than at the next interval.
                            let patch = json!({"metadata": {"annotations": {
                                "reconcile.fluxcd.io/requestedAt": at,
                            }}});
                            api.patch(&part.name, &PatchParams::default(), &Patch::Merge(&patch))
                                .await?;
                        }
                        None => {}
                    }
                }
                Ok(Progress::Next(format!("{}'s releases resumed", r.app)))
            }
            RestoreStep::WaitReady => {
                let round = self.reconcile().await?;
                let state = round.states.get(&r.app).copied();
                if matches!(state, Some(AppState::Ready | AppState::UpdatePending)) {
                    return Ok(Progress::Next(format!("{} is ready", r.app)));
                }
                let since = Utc::now() - r.updated_at;
                if since
                    > chrono::Duration::from_std(self.settings.restore_ready_timeout)
                        .unwrap_or(chrono::Duration::MAX)
                {
                    let reason = self
                        .store
                        .installed_app(&r.app)
                        .await?
                        .map(|a| a.reason)
                        .unwrap_or_default();
                    return Ok(Progress::Fail(format!(
                        "{} was not ready {} s after the restore: {reason}",
                        r.app,
                        since.num_seconds()
                    )));
                }
                Ok(Progress::Wait)
            }
            RestoreStep::Done => Ok(Progress::Wait),
        }
    }
}

/// What the remove step deletes, by the app's backup-set label: what runs, then what holds
/// data. Services, ConfigMaps and Secrets stay; the restore leaves existing objects alone.
fn workload_resources() -> Vec<ApiResource> {
    let gvk = |g: &str, v: &str, k: &str, p: &str| {
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, k), p)
    };
    vec![
        gvk("apps", "v1", "Deployment", "deployments"),
        gvk("apps", "v1", "StatefulSet", "statefulsets"),
        gvk("apps", "v1", "DaemonSet", "daemonsets"),
        gvk("apps", "v1", "ReplicaSet", "replicasets"),
        gvk("batch", "v1", "CronJob", "cronjobs"),
        gvk("batch", "v1", "Job", "jobs"),
        gvk("", "v1", "Pod", "pods"),
        gvk("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ]
}

/// How often the run loop drives a running restore.
pub const RESTORE_POLL: Duration = Duration::from_secs(1);
