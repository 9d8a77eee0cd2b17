//! Backups and per-app restores on the test bed, with the real Velero server and its AWS
//! plugin (built from their Go modules) writing to a real S3 API on loopback (moto).
//! Stand-ins, named: the `hello` chart on loopback plays two apps; pods never run, so Velero
//! backs up and restores objects and claims but no volume data (there is no node agent).
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, Patch, PatchParams};
use stackspin_catalog::Catalog;
use stackspin_operator::Operator;
use stackspin_platform::crds::HelmRelease;
use stackspin_platform::desired::APPS_NAMESPACE;
use stackspin_platform::{ClusterConfig, RawClusterConfig};
use stackspin_storage::testing::TestDb;
use stackspin_storage::{
    AppState, BackupPhase, BackupReason, RestoreRefusal, RestoreState, RestoreStep, Store,
};
use stackspin_testbed::platform::app_catalog_files;
use stackspin_testbed::velero::Velero;
use stackspin_testbed::{ChartRepo, ChartVersion, TestBed};
use support::*;

const STEP: Duration = Duration::from_secs(150);

fn two_apps(url: &str) -> Arc<Catalog> {
    let mut files = app_catalog_files(url, "hello");
    files.extend(app_catalog_files(url, "other"));
    Arc::new(Catalog::from_files(files.iter().map(|(p, t)| (p.as_str(), t.as_str()))).unwrap())
}

/// A cluster with the test's backup store; drills only where a test asks for them.
fn backup_config(velero: &Velero) -> ClusterConfig {
    backup_config_with(velero, "backup_drill_days = 0\n")
}

fn backup_config_with(velero: &Velero, extra: &str) -> ClusterConfig {
    let text = format!(
        "domain = \"example.test\"\nip_address = \"192.0.2.10\"\n\
         admin_email = \"admin@example.test\"\n{}{extra}",
        velero.cluster_toml()
    );
    RawClusterConfig::from_toml(&text)
        .unwrap()
        .resolve()
        .unwrap()
}

async fn mark(client: &kube::Client, claim: &str, value: &str) -> Result<()> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), APPS_NAMESPACE);
    let patch =
        serde_json::json!({"metadata": {"annotations": {"test.stackspin.net/mark": value}}});
    api.patch(claim, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

async fn claim(client: &kube::Client, name: &str) -> Result<PersistentVolumeClaim> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), APPS_NAMESPACE);
    Ok(api.get(name).await?)
}

fn mark_of(c: &PersistentVolumeClaim) -> Option<String> {
    c.metadata
        .annotations
        .as_ref()?
        .get("test.stackspin.net/mark")
        .cloned()
}

/// Runs the operator's backup rounds until the backup is final.
async fn backup_done(op: &Operator, store: &Store, name: &str, velero: &Velero) -> Result<()> {
    let deadline = Instant::now() + STEP;
    loop {
        op.backups_round().await?;
        let b = store.backup(name).await?;
        if b.as_ref().is_some_and(|b| b.phase.is_final()) {
            let b = b.unwrap();
            if b.phase != BackupPhase::Completed {
                bail!("backup {name} ended {b:?}; Velero: {}", velero.log_tail(15));
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "backup {name} not done: {b:?}; Velero: {}",
                velero.log_tail(15)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_replaces_one_apps_objects_and_claims_and_nothing_else() -> Result<()> {
    let _turn = TURN.lock().await;
    let bed = TestBed::get()?;
    let client = bed.client().await?;
    install_platform_crds(bed)?;
    clean(&client).await?;
    let velero = Velero::start(bed).await?;
    let repo = ChartRepo::serve(&[ChartVersion::new("hello", "0.1.0")]).await?;
    let db = TestDb::sqlite().await;
    let store = &db.store;
    let catalog = two_apps(&repo.url);
    let op = Operator::new(
        client.clone(),
        store.clone(),
        catalog.clone(),
        backup_config(&velero),
        settings("one"),
    );

    for app in ["hello", "other"] {
        store.request_install(app, None, true, "0.1.0").await?;
    }
    for app in ["hello", "other"] {
        converge(&op, store, app, "the apps to be ready", STEP, |r| {
            r.is_some_and(|r| matches!(r.state, AppState::Ready | AppState::UpdatePending))
        })
        .await?;
    }
    mark(&client, "hello-data", "backed-up").await?;
    mark(&client, "other-data", "backed-up").await?;

    // A platform backup, as "Back up now" makes it: it lands in the bucket.
    let apps = vec!["hello".to_string(), "other".to_string()];
    store
        .request_backup("platform-manual-1", None, BackupReason::Manual, &apps, None)
        .await?;
    backup_done(&op, store, "platform-manual-1", &velero).await?;
    let b = store.backup("platform-manual-1").await?.unwrap();
    assert!(b.items > 0, "{b:?}");
    assert!(b.completed_at.is_some() && b.expires_at.is_some(), "{b:?}");
    let keys = velero.objects()?;
    assert!(
        keys.iter()
            .any(|k| k == "cluster/backups/platform-manual-1/platform-manual-1.tar.gz"),
        "{keys:?}"
    );

    // Both apps change after the backup.
    mark(&client, "hello-data", "changed").await?;
    mark(&client, "other-data", "changed").await?;
    let other_before = claim(&client, "other-data").await?;
    let hello_before = claim(&client, "hello-data").await?;

    // Refusals change nothing.
    assert_eq!(
        store
            .request_restore("hello", "no-such-backup", None)
            .await?,
        Err(RestoreRefusal::NoSuchBackup("no-such-backup".into()))
    );
    let restore = store
        .request_restore("hello", "platform-manual-1", Some("admin@example.test"))
        .await?
        .unwrap();
    match store
        .request_restore("other", "platform-manual-1", None)
        .await?
    {
        Err(RestoreRefusal::Busy { id, .. }) => assert_eq!(id, restore.id),
        other => panic!("a second restore must be refused: {other:?}"),
    }

    // Drive the restore; halfway through, a new operator (a restarted `serve`) takes over
    // from what the database says.
    let started = Instant::now();
    let mut op = op;
    let mut restarted = false;
    let mut seen: BTreeMap<RestoreStep, Instant> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    let done = loop {
        op.backups_round().await?;
        let r = store.restore(restore.id).await?.unwrap();
        seen.entry(r.step).or_insert_with(Instant::now);
        if r.step == RestoreStep::Remove && !restarted {
            restarted = true;
            op = Operator::new(
                client.clone(),
                store.clone(),
                catalog.clone(),
                backup_config(&velero),
                settings("two"),
            );
        }
        if r.state != RestoreState::Running {
            break r;
        }
        if Instant::now() > deadline {
            bail!(
                "the restore did not finish: {r:#?}; Velero: {}",
                velero.log_tail(20)
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let took = started.elapsed();
    eprintln!("restore took {took:?}; steps:");
    for e in &done.events {
        eprintln!("  [{}] {}", e.step.as_str(), e.message);
    }
    assert_eq!(
        done.state,
        RestoreState::Done,
        "{done:#?}; Velero: {}",
        velero.log_tail(40)
    );
    assert!(restarted);
    // Every step ran, in order, each recorded.
    let steps: Vec<RestoreStep> = done.events.iter().map(|e| e.step).collect();
    for s in &RestoreStep::ALL[..6] {
        assert!(steps.contains(s), "{s:?} missing from {steps:?}");
    }

    // The safety backup was complete before anything was removed.
    let safety = done.safety_backup.clone().unwrap();
    let sb = store.backup(&safety).await?.unwrap();
    assert_eq!(sb.phase, BackupPhase::Completed);
    assert_eq!(sb.reason, BackupReason::Safety);
    assert_eq!(sb.app.as_deref(), Some("hello"));
    let safety_done = done
        .events
        .iter()
        .find(|e| e.step == RestoreStep::SafetyBackup && e.message.contains("completed"))
        .unwrap()
        .at;
    let removed = done
        .events
        .iter()
        .find(|e| e.step == RestoreStep::Remove)
        .unwrap()
        .at;
    assert!(safety_done <= removed);
    assert!(
        velero
            .objects()?
            .iter()
            .any(|k| k.ends_with(&format!("{safety}.tar.gz")))
    );

    // hello's claim is the backup's: a new object with the backed-up annotation, labelled by
    // Velero's restore. other's claim is the very same object, untouched.
    let hello_after = claim(&client, "hello-data").await?;
    assert_eq!(mark_of(&hello_after).as_deref(), Some("backed-up"));
    assert_ne!(hello_after.metadata.uid, hello_before.metadata.uid);
    assert!(
        hello_after
            .metadata
            .labels
            .as_ref()
            .unwrap()
            .contains_key("velero.io/restore-name")
    );
    let other_after = claim(&client, "other-data").await?;
    assert_eq!(mark_of(&other_after).as_deref(), Some("changed"));
    assert_eq!(other_after.metadata.uid, other_before.metadata.uid);
    assert_eq!(
        other_after.metadata.resource_version,
        other_before.metadata.resource_version
    );
    // hello's release runs again, and the app is ready.
    let releases: Api<HelmRelease> = Api::namespaced(client.clone(), APPS_NAMESPACE);
    assert_ne!(releases.get("hello").await?.spec.suspend, Some(true));
    let row = store.installed_app("hello").await?.unwrap();
    assert!(
        matches!(row.state, AppState::Ready | AppState::UpdatePending),
        "{row:?}"
    );
    // A new restore is possible once this one is done.
    assert!(store.active_restore().await?.is_none());
    Ok(())
}

/// Before an automatic update changes an app's chart version, the app is backed up, and the
/// update waits until that backup has completed; the backup stays as the update's record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_waits_for_the_backup_that_undoes_it() -> Result<()> {
    let _turn = TURN.lock().await;
    let bed = TestBed::get()?;
    let client = bed.client().await?;
    install_platform_crds(bed)?;
    clean(&client).await?;
    let velero = Velero::start(bed).await?;
    let repo = ChartRepo::serve(&[
        ChartVersion::new("hello", "0.1.0"),
        ChartVersion::new("hello", "0.2.0").with_value("greeting", "hello-two"),
    ])
    .await?;
    let db = TestDb::sqlite().await;
    let store = &db.store;
    // 03:30 UTC: inside the default maintenance window (02:00-04:00).
    let in_window = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 12, 4, 3, 30, 0)
        .single()
        .unwrap();
    let op = Operator::new(
        client.clone(),
        store.clone(),
        two_apps(&repo.url),
        backup_config(&velero),
        settings("one"),
    )
    .with_clock(move || in_window);
    store.request_install("hello", None, true, "0.1.0").await?;

    // Rounds as the run loop makes them: reconcile, then backups.
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut target_changed_at = None;
    loop {
        op.reconcile().await?;
        op.backups_round().await?;
        let row = store.installed_app("hello").await?.unwrap();
        if row.target_version == "0.2.0" && target_changed_at.is_none() {
            target_changed_at = Some(chrono::Utc::now());
        }
        if row.running_version.as_deref() == Some("0.2.0") {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "hello did not update: {row:?}; Velero: {}",
                velero.log_tail(15)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let b = store
        .update_backup("hello", "0.2.0")
        .await?
        .expect("a backup before the update");
    assert_eq!(b.reason, BackupReason::Update);
    assert_eq!(b.phase, BackupPhase::Completed);
    assert_eq!(b.app.as_deref(), Some("hello"));
    // It had completed before the version changed.
    assert!(
        b.completed_at.unwrap() <= target_changed_at.unwrap(),
        "{b:?}"
    );
    assert!(
        velero
            .objects()?
            .iter()
            .any(|k| k.ends_with(&format!("{}.tar.gz", b.name)))
    );
    assert_eq!(
        store.last_update_backup("hello").await?.map(|b| b.name),
        Some(b.name.clone())
    );
    // It can undo the update: a restore from it is accepted.
    assert!(store.request_restore("hello", &b.name, None).await?.is_ok());
    Ok(())
}

/// The restore drill: the latest backup of each app restored into a scratch namespace and
/// checked; a backup that lacks a claim the app has now fails the drill, and says which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_restores_each_apps_latest_backup_aside_and_checks_it() -> Result<()> {
    let _turn = TURN.lock().await;
    let bed = TestBed::get()?;
    let client = bed.client().await?;
    install_platform_crds(bed)?;
    clean(&client).await?;
    let velero = Velero::start(bed).await?;
    let repo = ChartRepo::serve(&[ChartVersion::new("hello", "0.1.0")]).await?;
    let db = TestDb::sqlite().await;
    let store = &db.store;
    let op = Operator::new(
        client.clone(),
        store.clone(),
        two_apps(&repo.url),
        backup_config_with(&velero, "backup_drill_days = 7\n"),
        settings("one"),
    );
    for app in ["hello", "other"] {
        store.request_install(app, None, true, "0.1.0").await?;
    }
    for app in ["hello", "other"] {
        converge(&op, store, app, "the apps to be ready", STEP, |r| {
            r.is_some_and(|r| matches!(r.state, AppState::Ready | AppState::UpdatePending))
        })
        .await?;
    }
    // No backup yet: nothing to drill, and no drill is recorded.
    op.backups_round().await?;
    assert!(store.drills(1).await?.is_empty());
    // What an interrupted drill left behind must not pass for this drill's result.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let leftover: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(
        serde_json::json!({"metadata": {"name": stackspin_operator::drill::DRILL_NAMESPACE}}),
    )?;
    if namespaces
        .get_opt(stackspin_operator::drill::DRILL_NAMESPACE)
        .await?
        .is_none()
    {
        namespaces.create(&Default::default(), &leftover).await?;
    }
    let stale: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "hello-data", "labels": {"velero.io/restore-name": "an-old-drill"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }))?;
    let scratch: Api<PersistentVolumeClaim> =
        Api::namespaced(client.clone(), stackspin_operator::drill::DRILL_NAMESPACE);
    let _ = scratch.create(&Default::default(), &stale).await;

    store
        .request_backup(
            "platform-manual-2",
            None,
            BackupReason::Manual,
            &["hello".into(), "other".into()],
            None,
        )
        .await?;
    // `other` gains a claim after the backup: the drill must notice the backup lacks it.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), APPS_NAMESPACE);
    let late: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "other-late", "labels": {"stackspin.net/backupSet": "other"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }))?;
    let started = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut added = false;
    let drill = loop {
        op.backups_round().await?;
        if !added
            && store
                .backup("platform-manual-2")
                .await?
                .is_some_and(|b| b.phase == BackupPhase::Completed)
        {
            claims.create(&Default::default(), &late).await?;
            added = true;
        }
        if let Some(d) = store.drills(1).await?.into_iter().next()
            && d.state != stackspin_storage::DrillState::Running
        {
            break d;
        }
        if Instant::now() > deadline {
            bail!(
                "the drill did not finish: {:?}; Velero: {}",
                store.drills(1).await?,
                velero.log_tail(20)
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    eprintln!("drill took {:?}: {drill:#?}", started.elapsed());
    assert_eq!(drill.state, stackspin_storage::DrillState::Failed);
    let hello = drill.apps.iter().find(|a| a.app == "hello").unwrap();
    assert_eq!(hello.ok, Some(true), "{hello:?}");
    assert!(
        hello.detail.contains("claims back: hello-data"),
        "{hello:?}"
    );
    let other = drill.apps.iter().find(|a| a.app == "other").unwrap();
    assert_eq!(other.ok, Some(false), "{other:?}");
    assert!(
        other.detail.contains("claims not restored: other-late"),
        "{other:?}"
    );
    assert!(
        drill.message.contains("other: claims not restored"),
        "{}",
        drill.message
    );
    // The scratch copy goes; the apps themselves were never touched.
    let ns = namespaces
        .get_opt(stackspin_operator::drill::DRILL_NAMESPACE)
        .await?;
    assert!(ns.is_none_or(|n| n.metadata.deletion_timestamp.is_some()));
    assert!(
        !claim(&client, "hello-data")
            .await?
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("velero.io/restore-name"),
        "the app's own claim was not restored over"
    );
    // The admin is told, in words, with the page to go to.
    let mails = store.claim_due_mail(10).await?;
    assert!(
        mails.iter().any(|m| m.to_address == "admin@example.test"
            && m.subject.contains("restore drill failed")
            && m.body.contains("other: claims not restored")
            && m.body
                .contains("https://dashboard.example.test/admin/backups")),
        "{mails:?}"
    );
    // Not due again for a week.
    op.backups_round().await?;
    assert_eq!(store.drills(5).await?.len(), 1);
    claims.delete("other-late", &Default::default()).await?;

    // A nightly backup that fails (here: its storage location does not exist) is mailed
    // once, with what Velero said.
    let backups: Api<kube::core::DynamicObject> = Api::namespaced_with(
        client.clone(),
        "stackspin",
        &stackspin_operator::backups::backup_resource(),
    );
    let nightly: kube::core::DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": "velero-nightly-20261204030000", "namespace": "stackspin",
                     "labels": {"velero.io/schedule-name": "velero-nightly"}},
        "spec": {"storageLocation": "nowhere", "includedNamespaces": ["stackspin-apps"]},
    }))?;
    backups.create(&Default::default(), &nightly).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let failed = loop {
        op.backups_round().await?;
        if let Some(b) = store.backup("velero-nightly-20261204030000").await?
            && b.phase.is_final()
        {
            break b;
        }
        assert!(Instant::now() < deadline, "Velero did not judge the backup");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(failed.phase, BackupPhase::Failed, "{failed:?}");
    assert_eq!(failed.reason, BackupReason::Scheduled);
    op.backups_round().await?;
    let mails = store.claim_due_mail(10).await?;
    let about: Vec<_> = mails
        .iter()
        .filter(|m| m.subject.contains("velero-nightly-20261204030000"))
        .collect();
    assert_eq!(about.len(), 1, "mailed once: {mails:?}");
    assert!(about[0].body.contains("nowhere"), "{}", about[0].body);
    Ok(())
}

/// A nightly backup that should have run and did not is mailed, once per night; a cluster
/// that had no Velero at that time has missed nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_nightly_backup_is_mailed_once() -> Result<()> {
    let _turn = TURN.lock().await;
    let bed = TestBed::get()?;
    let client = bed.client().await?;
    install_platform_crds(bed)?;
    clean(&client).await?;
    let velero = Velero::start(bed).await?;
    let db = TestDb::sqlite().await;
    let store = &db.store;
    let catalog = two_apps("http://127.0.0.1:9/");
    let now = Operator::new(
        client.clone(),
        store.clone(),
        catalog.clone(),
        backup_config(&velero),
        settings("one"),
    );
    // Velero's release is applied now; seen from now, nothing was missed yet.
    now.reconcile().await?;
    now.backups_round().await?;
    assert_eq!(store.pending_mail().await?, 0);

    // Two days later with no nightly backup in between, the last night's run is missing.
    let later = chrono::Utc::now() + chrono::Duration::days(2);
    let op = Operator::new(
        client.clone(),
        store.clone(),
        catalog,
        backup_config(&velero),
        settings("one"),
    )
    .with_clock(move || later);
    op.backups_round().await?;
    op.backups_round().await?;
    let mails = store.claim_due_mail(10).await?;
    assert_eq!(mails.len(), 1, "{mails:?}");

    // The nightly Schedule as the catalog renders it is one the real Velero accepts.
    let s3 = backup_config_with(
        &velero,
        "backup_time = \"01:15\"\ntime_zone = \"Europe/Amsterdam\"\n",
    )
    .backup_s3
    .unwrap();
    let schedules: Api<kube::core::DynamicObject> = Api::namespaced_with(
        client.clone(),
        "stackspin",
        &kube::core::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("velero.io", "v1", "Schedule"),
            "schedules",
        ),
    );
    let _ = schedules.delete("nightly-check", &Default::default()).await;
    let schedule: kube::core::DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "velero.io/v1", "kind": "Schedule",
        "metadata": {"name": "nightly-check", "namespace": "stackspin"},
        "spec": {"schedule": s3.schedule(), "skipImmediately": true,
                 "template": {"ttl": s3.ttl(), "includedNamespaces": ["stackspin", "stackspin-apps"]}},
    }))?;
    schedules.create(&Default::default(), &schedule).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = schedules.get("nightly-check").await?;
        match s.data["status"]["phase"].as_str() {
            Some("Enabled") => break,
            Some("FailedValidation") => {
                bail!("Velero refused {}: {}", s3.schedule(), s.data["status"])
            }
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "Velero did not judge the schedule: {}",
            s.data
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    schedules
        .delete("nightly-check", &Default::default())
        .await?;
    assert!(mails[0].subject.contains("did not run"), "{mails:?}");
    assert!(
        mails[0]
            .body
            .contains("https://dashboard.example.test/admin/backups")
    );
    Ok(())
}
