//! The operator on the test bed: a real kube-apiserver with the real Flux controllers, and
//! simulated nodes. Stand-ins, named: the real chart repositories cannot be reached here, so
//! the `hello` chart (tests/charts/hello) served on loopback plays an app; its pods never run,
//! kwok only reports them running (or, with `podReadiness: never`, never ready).
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use chrono::TimeZone;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret};
use kube::api::{Api, ListParams};
use stackspin_catalog::Catalog;
use stackspin_platform::crds::{HelmChart, HelmRelease};
use stackspin_platform::desired::{APPS_NAMESPACE, CORE_NAMESPACE};
use stackspin_storage::AppState;
use stackspin_storage::testing::TestDb;
use stackspin_testbed::{ChartRepo, ChartVersion, TestBed, wait_for_absent};
use support::*;

const STEP: Duration = Duration::from_secs(150);

fn at(hour: u32) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc
        .with_ymd_and_hms(2026, 12, 4, hour, 30, 0)
        .single()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_installs_updates_only_inside_the_window_and_uninstalls_keeping_its_data()
-> Result<()> {
    let _turn = TURN.lock().await;
    let bed = TestBed::get()?;
    let client = bed.client().await?;
    install_platform_crds(bed)?;
    clean(&client).await?;
    let repo = ChartRepo::serve(&[
        ChartVersion::new("hello", "0.1.0"),
        ChartVersion::new("hello", "0.2.0").with_value("greeting", "hello-two"),
    ])
    .await?;
    let db = TestDb::sqlite().await;
    let store = &db.store;
    let catalog = hello_catalog(&repo.url);
    // Outside the window: 10:30 UTC against 02:00-04:00.
    let op = operator(client.clone(), store, catalog.clone(), "one").with_clock(|| at(10));

    store.request_install("hello", None, true, "0.1.0").await?;
    let started = std::time::Instant::now();
    let row = converge(&op, store, "hello", "hello to be installed", STEP, |r| {
        r.is_some_and(|r| matches!(r.state, AppState::Ready | AppState::UpdatePending))
    })
    .await?
    .unwrap();
    eprintln!("installed in {:?}", started.elapsed());
    assert_eq!(row.running_version.as_deref(), Some("0.1.0"));

    // What the install made: the release, its values, the Secret with the client secret, the
    // OIDC client in the identity store with the same secret.
    let releases: Api<HelmRelease> = Api::namespaced(client.clone(), APPS_NAMESPACE);
    let hr = releases.get("hello").await?;
    assert_eq!(
        hr.spec.chart.as_ref().unwrap().spec.version.as_deref(),
        Some("0.1.0")
    );
    let managed = hr.metadata.managed_fields.clone().unwrap_or_default();
    assert!(
        managed
            .iter()
            .any(|m| m.manager.as_deref() == Some("stackspin")
                && m.operation.as_deref() == Some("Apply")),
        "applied server-side by the stackspin field manager: {managed:?}"
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), APPS_NAMESPACE);
    let s = secrets.get("stackspin-hello-secrets").await?;
    let client_secret = String::from_utf8(s.data.unwrap()["CLIENT_SECRET"].0.clone()).unwrap();
    let registered = store
        .app_by_name(&stackspin_domain::AppName::parse("hello").unwrap())
        .await?
        .expect("the OIDC client is registered");
    assert_eq!(registered.client_id.0, "hello");
    assert!(stackspin_domain::secret::verify_secret(
        &client_secret,
        registered.client_secret_hash.as_deref().unwrap()
    ));
    assert_eq!(
        registered.redirect_uris[0].as_str(),
        "https://hello.example.test/oidc/callback"
    );
    let values: Api<ConfigMap> = Api::namespaced(client.clone(), APPS_NAMESPACE);
    let v = values.get("stackspin-hello-values").await?;
    let text = &v.data.unwrap()["values.yaml"];
    assert!(text.contains("https://dashboard.example.test"), "{text}");
    assert!(
        !text.contains(&client_secret),
        "no secret in the values ConfigMap"
    );
    assert!(
        !serde_json::to_string(&hr.spec)
            .unwrap()
            .contains(&client_secret),
        "no secret in the HelmRelease"
    );

    // The probe finds 0.2.0; outside the window it waits, shown as pending.
    let row = converge(&op, store, "hello", "the update to be seen", STEP, |r| {
        r.is_some_and(|r| r.latest_version.as_deref() == Some("0.2.0"))
    })
    .await?
    .unwrap();
    assert_eq!(row.state, AppState::UpdatePending);
    for _ in 0..3 {
        op.reconcile().await?;
    }
    let row = store.installed_app("hello").await?.unwrap();
    assert_eq!(row.target_version, "0.1.0", "no update outside the window");
    assert_eq!(
        releases
            .get("hello")
            .await?
            .spec
            .chart
            .unwrap()
            .spec
            .version
            .as_deref(),
        Some("0.1.0")
    );

    // Inside the window (02:30) it moves and Flux upgrades.
    let op = operator(client.clone(), store, catalog.clone(), "one").with_clock(|| at(2));
    let row = converge(&op, store, "hello", "the upgrade to 0.2.0", STEP, |r| {
        r.is_some_and(|r| {
            r.state == AppState::Ready && r.running_version.as_deref() == Some("0.2.0")
        })
    })
    .await?
    .unwrap();
    assert_eq!(row.target_version, "0.2.0");

    // Uninstall keeps the claim; the client goes.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), APPS_NAMESPACE);
    assert!(claims.get_opt("hello-data").await?.is_some());
    store.request_uninstall("hello", false).await?;
    converge(&op, store, "hello", "the uninstall", STEP, |r| r.is_none()).await?;
    wait_for_absent(&releases, "hello", STEP).await?;
    assert!(
        store
            .app_by_name(&stackspin_domain::AppName::parse("hello").unwrap())
            .await?
            .is_none(),
        "the OIDC client is removed"
    );
    let kept = claims.get_opt("hello-data").await?;
    assert!(
        kept.as_ref()
            .is_some_and(|c| c.metadata.deletion_timestamp.is_none()),
        "the claim is kept: {kept:?}"
    );
    assert!(values.get_opt("stackspin-hello-values").await?.is_none());
    assert!(secrets.get_opt("stackspin-hello-secrets").await?.is_none());
    let charts: Api<HelmChart> = Api::namespaced(client.clone(), APPS_NAMESPACE);
    assert!(charts.get_opt("hello-updates").await?.is_none());

    // Reinstalled, the same data and secrets come back; purged, the claim goes.
    store.request_install("hello", None, true, "0.2.0").await?;
    converge(&op, store, "hello", "the reinstall", STEP, |r| {
        r.is_some_and(|r| r.state == AppState::Ready)
    })
    .await?;
    let again = secrets.get("stackspin-hello-secrets").await?;
    assert_eq!(
        String::from_utf8(again.data.unwrap()["CLIENT_SECRET"].0.clone()).unwrap(),
        client_secret,
        "generated secrets are never regenerated"
    );
    store.request_uninstall("hello", true).await?;
    converge(&op, store, "hello", "the purge", STEP, |r| r.is_none()).await?;
    wait_for_absent(&claims, "hello-data", STEP).await?;
    assert!(!store.generated_secrets().await?.contains_key("hello"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_upgrade_is_rolled_back_reported_and_not_retried() -> Result<()> {
    let _turn = TURN.lock().await;
    let bed = TestBed::get()?;
    let client = bed.client().await?;
    install_platform_crds(bed)?;
    clean(&client).await?;
    let repo = ChartRepo::serve(&[
        ChartVersion::new("hello", "0.1.0"),
        ChartVersion::new("hello", "0.2.0").with_value("podReadiness", "never"),
    ])
    .await?;
    let db = TestDb::sqlite().await;
    let store = &db.store;
    let op = operator(client.clone(), store, hello_catalog(&repo.url), "one").with_clock(|| at(10));
    store.request_install("hello", None, false, "0.1.0").await?;
    converge(&op, store, "hello", "the install", STEP, |r| {
        r.is_some_and(|r| {
            matches!(r.state, AppState::Ready | AppState::UpdatePending)
                && r.latest_version.as_deref() == Some("0.2.0")
        })
    })
    .await?;
    // Pinned (auto-update off): nothing moves, even inside the window.
    let pinned =
        operator(client.clone(), store, hello_catalog(&repo.url), "one").with_clock(|| at(2));
    for _ in 0..2 {
        pinned.reconcile().await?;
    }
    assert_eq!(
        store.installed_app("hello").await?.unwrap().target_version,
        "0.1.0"
    );

    // `stackspin app update hello`: taken now; its pods never become ready; Flux rolls back.
    store.set_app_updates("hello", None, true).await?;
    let row = converge(&op, store, "hello", "the rollback", STEP * 2, |r| {
        r.is_some_and(|r| r.state == AppState::RolledBack)
    })
    .await?
    .unwrap();
    assert_eq!(row.target_version, "0.2.0");
    assert_eq!(row.running_version.as_deref(), Some("0.1.0"));
    assert!(!row.reason.is_empty(), "the reason is shown");
    assert!(!row.update_now);
    // Not retried: more rounds leave it rolled back on 0.1.0.
    for _ in 0..3 {
        op.reconcile().await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let row = store.installed_app("hello").await?.unwrap();
    assert_eq!(row.state, AppState::RolledBack);
    assert_eq!(row.running_version.as_deref(), Some("0.1.0"));
    store.request_uninstall("hello", true).await?;
    converge(&op, store, "hello", "the purge", STEP, |r| r.is_none()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_catalog_app_gets_its_objects_and_shows_the_source_error() -> Result<()> {
    let _turn = TURN.lock().await;
    let bed = TestBed::get()?;
    let client = bed.client().await?;
    install_platform_crds(bed)?;
    clean(&client).await?;
    let db = TestDb::sqlite().await;
    let store = &db.store;
    let catalog = Arc::new(Catalog::builtin()?.clone());
    let op = operator(client.clone(), store, catalog.clone(), "one");
    store
        .request_install("wekan", None, true, "10.99.0")
        .await?;
    // The chart repository is on the internet, which the test bed cannot reach.
    let row = converge(&op, store, "wekan", "the source error", STEP, |r| {
        r.is_some_and(|r| r.state == AppState::Failed && r.reason.starts_with("chart source:"))
    })
    .await?
    .unwrap();
    eprintln!("wekan: {}", row.reason);
    assert!(row.reason.contains("wekan.github.io"), "{}", row.reason);
    let releases: Api<HelmRelease> = Api::namespaced(client.clone(), APPS_NAMESPACE);
    assert!(releases.get_opt("wekan").await?.is_some());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), APPS_NAMESPACE);
    assert!(secrets.get_opt("stackspin-wekan-secrets").await?.is_some());
    let wekan = store
        .app_by_name(&stackspin_domain::AppName::parse("wekan").unwrap())
        .await?
        .expect("wekan's OIDC client");
    assert_eq!(
        wekan.redirect_uris[0].as_str(),
        "https://wekan.example.test/_oauth/oidc"
    );
    // The core is applied too: the control plane and cert-manager, in their namespace.
    let core: Api<HelmRelease> = Api::namespaced(client.clone(), CORE_NAMESPACE);
    let names: Vec<String> = core
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|r| r.metadata.name)
        .collect();
    assert!(names.contains(&"stackspin".to_string()), "{names:?}");
    assert!(names.contains(&"cert-manager".to_string()), "{names:?}");
    store.request_uninstall("wekan", false).await?;
    converge(&op, store, "wekan", "the uninstall", STEP, |r| r.is_none()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_generated_object_passes_server_side_dry_run() -> Result<()> {
    let _turn = TURN.lock().await;
    let bed = TestBed::get()?;
    let client = bed.client().await?;
    install_platform_crds(bed)?;
    let catalog = Catalog::builtin()?;
    let mut config = config();
    for app in catalog.installable().filter(|e| e.part_of.is_none()) {
        let mut choice = stackspin_platform::AppChoice::new(&app.name);
        if app.name == "wordpress" {
            choice.allow_list = vec!["198.51.100.0/24".into()];
        }
        config.apps.push(choice);
    }
    let mut secrets = stackspin_platform::GeneratedSecrets::default();
    let names: Vec<&str> = catalog.entries().iter().map(|e| e.name.as_str()).collect();
    secrets.ensure(catalog, &names, |n| "x".repeat(n))?;
    let objects =
        stackspin_platform::desired_state(catalog, &config, &secrets, &Default::default())?;
    let db = TestDb::sqlite().await;
    let op = operator(client.clone(), &db.store, Arc::new(catalog.clone()), "dry");
    // Namespaces must exist for namespaced dry runs.
    for o in objects.iter().filter(|o| o.kind() == "Namespace") {
        stackspin_operator::apply::apply(&client, o, false).await?;
    }
    let problems = op.dry_run(&objects).await;
    assert!(problems.is_empty(), "refused:\n{}", problems.join("\n"));
    assert!(objects.len() > 30, "{} objects", objects.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_works_with_its_charts_rbac_and_is_refused_beyond_it() -> Result<()> {
    let _turn = TURN.lock().await;
    let bed = TestBed::get()?;
    let admin = bed.client().await?;
    install_platform_crds(bed)?;
    clean(&admin).await?;
    install_chart_rbac(bed)?;
    let sa = bed.client_as(CORE_NAMESPACE, "stackspin").await?;
    let repo = ChartRepo::serve(&[ChartVersion::new("hello", "0.1.0")]).await?;
    let db = TestDb::sqlite().await;
    let store = &db.store;
    let op = operator(sa.clone(), store, hello_catalog(&repo.url), "rbac");
    store.request_install("hello", None, true, "0.1.0").await?;
    converge(
        &op,
        store,
        "hello",
        "the install as the ServiceAccount",
        STEP,
        |r| r.is_some_and(|r| r.state == AppState::Ready),
    )
    .await?;
    let round = op.reconcile().await?;
    assert!(round.problems.is_empty(), "{:?}", round.problems);
    // What the Status page needs: nodes, their usage and certificates, read-only.
    op.observe_cluster().await?;
    // The Lease too.
    let elector = stackspin_operator::leader::Elector::new(
        sa.clone(),
        CORE_NAMESPACE,
        "rbac",
        Duration::from_secs(5),
    );
    assert!(elector.try_lead().await?);
    elector.step_down().await?;

    // Beyond its role: other namespaces' secrets, cluster roles, nodes.
    let refused = |r: Result<(), kube::Error>| match r {
        Err(kube::Error::Api(s)) => s.code == 403,
        _ => false,
    };
    let other: Api<Secret> = Api::namespaced(sa.clone(), "kube-system");
    assert!(refused(
        other.list(&ListParams::default()).await.map(|_| ())
    ));
    let default_ns: Api<ConfigMap> = Api::namespaced(sa.clone(), "default");
    assert!(refused(
        default_ns.list(&ListParams::default()).await.map(|_| ())
    ));
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(sa.clone());
    assert!(refused(
        roles.list(&ListParams::default()).await.map(|_| ())
    ));
    // Nodes are read for the Status page, never changed.
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(sa.clone());
    let listed = nodes.list(&ListParams::default()).await?;
    let node = listed.items[0].metadata.name.clone().unwrap();
    assert!(refused(
        nodes
            .delete(&node, &kube::api::DeleteParams::default().dry_run())
            .await
            .map(|_| ())
    ));

    // What a restore and a drill do, checked with server-side dry runs (the backup tests
    // run them for real as the admin; Velero does not run here).
    let crds = TestBed::bin("velero-crds");
    stackspin_testbed::platform::kubectl(
        bed,
        &["apply", "--server-side", "-f", &crds.to_string_lossy()],
    )?;
    stackspin_testbed::platform::kubectl(
        bed,
        &[
            "wait",
            "--for=condition=Established",
            "crd/backups.velero.io",
            "--timeout=60s",
        ],
    )?;
    let dry = kube::api::PostParams {
        dry_run: true,
        ..Default::default()
    };
    let backup_kind = kube::core::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("velero.io", "v1", "Backup"),
        "backups",
    );
    let backups: Api<kube::core::DynamicObject> =
        Api::namespaced_with(sa.clone(), CORE_NAMESPACE, &backup_kind);
    let mut backup = kube::core::DynamicObject::new("rbac-check", &backup_kind);
    backup.data = serde_json::json!({"spec": {"includedNamespaces": [APPS_NAMESPACE]}});
    backups.create(&dry, &backup).await?;
    backups.list(&ListParams::default()).await?;
    // Not in an app namespace: Velero is not there.
    let elsewhere: Api<kube::core::DynamicObject> =
        Api::namespaced_with(sa.clone(), APPS_NAMESPACE, &backup_kind);
    assert!(refused(elsewhere.create(&dry, &backup).await.map(|_| ())));
    // The restore lists an app's workloads by label and deletes each; deleting one that is
    // not there answers 404 when allowed (authorisation comes first, so 403 when not).
    let by_label = ListParams::default().labels("stackspin.net/backupSet=hello");
    let not_found = |r: Result<(), kube::Error>| match r {
        Err(kube::Error::Api(s)) => s.code == 404,
        _ => false,
    };
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(sa.clone(), APPS_NAMESPACE);
    deployments.list(&by_label).await?;
    assert!(not_found(
        deployments
            .delete("gone", &kube::api::DeleteParams::default().dry_run())
            .await
            .map(|_| ())
    ));
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(sa.clone(), APPS_NAMESPACE);
    pods.list(&by_label).await?;
    assert!(not_found(
        pods.delete("gone", &kube::api::DeleteParams::default().dry_run())
            .await
            .map(|_| ())
    ));
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(sa.clone());
    let scratch = k8s_openapi::api::core::v1::Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(stackspin_operator::drill::DRILL_NAMESPACE.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces.create(&dry, &scratch).await?;
    assert!(refused(
        namespaces
            .delete("kube-system", &kube::api::DeleteParams::default().dry_run())
            .await
            .map(|_| ())
    ));

    store.request_uninstall("hello", true).await?;
    converge(
        &op,
        store,
        "hello",
        "the purge as the ServiceAccount",
        STEP,
        |r| r.is_none(),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_stopped_mid_install_converges_after_restart() -> Result<()> {
    let _turn = TURN.lock().await;
    let bed = TestBed::get()?;
    let client = bed.client().await?;
    install_platform_crds(bed)?;
    clean(&client).await?;
    let repo = ChartRepo::serve(&[ChartVersion::new("hello", "0.1.0")]).await?;
    let db = TestDb::sqlite().await;
    let store = &db.store;
    let catalog = hello_catalog(&repo.url);
    store.request_install("hello", None, true, "0.1.0").await?;
    // The first operator runs until it has written the release, then stops without warning.
    let first = operator(client.clone(), store, catalog.clone(), "first");
    let task = tokio::spawn(first.clone().run(std::future::pending()));
    let releases: Api<HelmRelease> = Api::namespaced(client.clone(), APPS_NAMESPACE);
    stackspin_testbed::wait_for(
        &releases,
        "hello",
        "the release to be written",
        STEP,
        |_| true,
    )
    .await?;
    task.abort();
    let _ = task.await;
    // The second takes over once the first's Lease expires and finishes the job.
    let second = operator(client.clone(), store, catalog, "second");
    let task = tokio::spawn(second.clone().run(std::future::pending()));
    let deadline = std::time::Instant::now() + STEP;
    loop {
        let row = store.installed_app("hello").await?.unwrap();
        if row.state == AppState::Ready {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never converged: {row:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(second.is_leading());
    task.abort();
    let _ = task.await;
    store.request_uninstall("hello", true).await?;
    converge(&second, store, "hello", "the purge", STEP, |r| r.is_none()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_elect_one_operator() -> Result<()> {
    let _turn = TURN.lock().await;
    let bed = TestBed::get()?;
    let client = bed.client().await?;
    install_platform_crds(bed)?;
    clean(&client).await?;
    let db = TestDb::postgres().await;
    let catalog = hello_catalog("http://127.0.0.1:9/");
    let a = operator(client.clone(), &db.store, catalog.clone(), "replica-a");
    let b = operator(client.clone(), &db.store, catalog, "replica-b");
    let (stop_a, a_stopped) = tokio::sync::oneshot::channel::<()>();
    let ta = tokio::spawn(a.clone().run(async move {
        let _ = a_stopped.await;
    }));
    let tb = tokio::spawn(b.clone().run(std::future::pending()));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !(a.is_leading() || b.is_leading()) {
        assert!(std::time::Instant::now() < deadline, "nobody leads");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // For a while, exactly one leads at every look.
    for _ in 0..40 {
        assert!(
            !(a.is_leading() && b.is_leading()),
            "both replicas lead at once"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (leader, follower) = if a.is_leading() { (&a, &b) } else { (&b, &a) };
    assert!(leader.is_leading() && !follower.is_leading());
    // The leader stops (graceful: it steps down); the other takes over.
    if a.is_leading() {
        stop_a.send(()).ok();
        ta.await?;
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !b.is_leading() {
            assert!(std::time::Instant::now() < deadline, "b never took over");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tb.abort();
    } else {
        tb.abort();
        let _ = tb.await;
        // b died without stepping down: a takes over once the Lease expires (3 s).
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !a.is_leading() {
            assert!(std::time::Instant::now() < deadline, "a never took over");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop_a.send(()).ok();
        ta.await?;
    }
    Ok(())
}

/// `stackspin install` applies the apps of cluster.toml with the cluster folder's secrets, and
/// leaves a hand-over; the control plane in the cluster starts with an empty database. Its
/// operator adopts the hand-over (the installer's secrets, not new ones; the apps, at their
/// subdomains) once: an app uninstalled afterwards is not brought back by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installers_handover_is_adopted_once() -> Result<()> {
    let _turn = TURN.lock().await;
    let bed = TestBed::get()?;
    let client = bed.client().await?;
    install_platform_crds(bed)?;
    clean(&client).await?;
    let db = TestDb::sqlite().await;
    let store = &db.store;
    let catalog = Arc::new(Catalog::builtin()?.clone());

    let mut installed = config();
    installed.apps = vec![stackspin_platform::AppChoice {
        subdomain: Some("pad".into()),
        ..stackspin_platform::AppChoice::new("hedgedoc")
    }];
    let mut secrets = stackspin_platform::GeneratedSecrets::default();
    secrets.ensure(&catalog, &["stackspin", "cert-manager", "hedgedoc"], |n| {
        "i".repeat(n)
    })?;
    let handover = stackspin_platform::Handover::new(&installed, &secrets);
    stackspin_operator::apply::apply(
        &client,
        &stackspin_platform::Object::Secret(handover.to_secret()?),
        false,
    )
    .await?;

    let op = operator(client.clone(), store, catalog.clone(), "one");
    op.reconcile().await?;
    let row = store.installed_app("hedgedoc").await?.expect("adopted");
    assert_eq!(row.subdomain.as_deref(), Some("pad"));
    let stored = store.generated_secrets().await?;
    assert_eq!(stored["hedgedoc"], secrets.app("hedgedoc"));
    assert_eq!(stored["stackspin"], secrets.app("stackspin"));
    // What the cluster holds is the installer's platform key, not a new one.
    let core: Api<Secret> = Api::namespaced(client.clone(), CORE_NAMESPACE);
    let own = core.get("stackspin-stackspin-secrets").await?;
    let key = &own.data.as_ref().unwrap()["secret-key"].0;
    assert_eq!(
        std::str::from_utf8(key)?,
        secrets.get("stackspin", "secret_key").unwrap()
    );
    // The hand-over itself is left alone by the operator's clean-up of what it does not want.
    assert!(
        core.get_opt(stackspin_platform::HANDOVER_SECRET)
            .await?
            .is_some()
    );

    store.request_uninstall("hedgedoc", true).await?;
    converge(&op, store, "hedgedoc", "the uninstall", STEP, |r| {
        r.is_none()
    })
    .await?;
    op.reconcile().await?;
    assert!(
        store.installed_app("hedgedoc").await?.is_none(),
        "an adopted hand-over is not adopted again"
    );
    clean(&client).await?;
    Ok(())
}

/// The Status page's view of the cluster: the simulated node with its size and conditions,
/// and cert-manager's certificates (its CRDs from upstream; no cert-manager runs here, so
/// the test writes the statuses it would) with why one was not issued, from its ACME
/// challenge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observations_hold_nodes_and_why_a_certificate_was_not_issued() -> Result<()> {
    use kube::api::{Patch, PatchParams, PostParams};
    use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
    use stackspin_domain::status::{CertificateStatus, CertificateVerdict, NodeStatus};
    let _turn = TURN.lock().await;
    let bed = TestBed::get()?;
    let admin = bed.client().await?;
    install_platform_crds(bed)?;
    let crds = stackspin_testbed::platform::shared_crds()?.join("cert-manager");
    for file in [
        "cert-manager.io_certificates.yaml",
        "acme.cert-manager.io_challenges.yaml",
    ] {
        stackspin_testbed::platform::kubectl(
            bed,
            &[
                "apply",
                "--server-side",
                "-f",
                &crds.join(file).to_string_lossy(),
            ],
        )?;
    }
    stackspin_testbed::platform::kubectl(
        bed,
        &[
            "wait",
            "--for=condition=Established",
            "crd/certificates.cert-manager.io",
            "crd/challenges.acme.cert-manager.io",
            "--timeout=60s",
        ],
    )?;
    clean(&admin).await?;
    stackspin_testbed::platform::kubectl(bed, &["create", "namespace", APPS_NAMESPACE]).ok();

    let cert_kind = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cert-manager.io", "v1", "Certificate"),
        "certificates",
    );
    let certs: Api<DynamicObject> = Api::namespaced_with(admin.clone(), APPS_NAMESPACE, &cert_kind);
    let not_after = chrono::Utc::now() + chrono::Duration::days(60);
    for (name, host, status) in [
        (
            "files-tls",
            "files.example.test",
            serde_json::json!({"conditions": [{"type": "Ready", "status": "True",
                "reason": "Ready", "message": "Certificate is up to date and has not expired"}],
                "notAfter": not_after.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}),
        ),
        (
            "chat-tls",
            "chat.example.test",
            serde_json::json!({"conditions": [{"type": "Ready", "status": "False",
                "reason": "DoesNotExist", "message": "Issuing certificate as Secret does not exist"}]}),
        ),
    ] {
        let mut c = DynamicObject::new(name, &cert_kind);
        c.data = serde_json::json!({"spec": {"secretName": name, "dnsNames": [host],
            "issuerRef": {"name": "letsencrypt-production", "kind": "ClusterIssuer"}}});
        certs.delete(name, &Default::default()).await.ok();
        certs.create(&PostParams::default(), &c).await?;
        certs
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"status": status})),
            )
            .await?;
    }
    let challenge_kind = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("acme.cert-manager.io", "v1", "Challenge"),
        "challenges",
    );
    let challenges: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), APPS_NAMESPACE, &challenge_kind);
    let mut ch = DynamicObject::new("chat-tls-1-2-3", &challenge_kind);
    ch.data = serde_json::json!({"spec": {
        "url": "https://acme.example/chall/1", "authorizationURL": "https://acme.example/authz/1",
        "dnsName": "chat.example.test", "type": "HTTP-01", "token": "t", "key": "k",
        "solver": {"http01": {"ingress": {"ingressClassName": "traefik"}}},
        "issuerRef": {"name": "letsencrypt-production", "kind": "ClusterIssuer"}}});
    challenges
        .delete("chat-tls-1-2-3", &Default::default())
        .await
        .ok();
    challenges.create(&PostParams::default(), &ch).await?;
    challenges
        .patch_status(
            "chat-tls-1-2-3",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": {"state": "pending", "processing": true,
                "reason": "Waiting for HTTP-01 challenge propagation: failed to perform self check GET request 'http://chat.example.test/.well-known/acme-challenge/t': dial tcp: lookup chat.example.test: no such host"}})),
        )
        .await?;

    let db = TestDb::sqlite().await;
    // No app is involved: the catalog's chart address is never used.
    let op = operator(
        admin.clone(),
        &db.store,
        hello_catalog("http://127.0.0.1:9"),
        "observer",
    );
    op.observe_cluster().await?;

    let (nodes, _) = db.store.observation("nodes").await?.unwrap();
    let nodes: Vec<NodeStatus> = serde_json::from_value(nodes)?;
    assert!(!nodes.is_empty());
    let node = &nodes[0];
    assert!(node.ready, "{node:?}");
    assert!(node.cpu_cores > 0.0 && node.memory_bytes > 0, "{node:?}");
    // No metrics-server on the test bed: usage is unknown, not zero.
    assert_eq!(node.memory_used_bytes, None);

    let (seen, _) = db.store.observation("certificates").await?.unwrap();
    let seen: Vec<CertificateStatus> = serde_json::from_value(seen)?;
    let now = chrono::Utc::now();
    let files = seen.iter().find(|c| c.name == "files-tls").unwrap();
    assert_eq!(files.verdict(now), CertificateVerdict::Valid);
    assert_eq!(files.hosts, ["files.example.test"]);
    let chat = seen.iter().find(|c| c.name == "chat-tls").unwrap();
    assert_eq!(chat.verdict(now), CertificateVerdict::NotIssued);
    let problem = chat.problem.as_deref().unwrap();
    assert!(
        problem.contains("Issuing certificate as Secret does not exist"),
        "{problem}"
    );
    assert!(
        problem.contains("HTTP-01 challenge for chat.example.test is pending: Waiting for HTTP-01 challenge propagation"),
        "{problem}"
    );
    assert!(problem.contains("no such host"), "{problem}");

    for name in ["files-tls", "chat-tls"] {
        certs.delete(name, &Default::default()).await.ok();
    }
    challenges
        .delete("chat-tls-1-2-3", &Default::default())
        .await
        .ok();
    Ok(())
}

/// A catalog entry's tools (Prometheus and Alertmanager in the real catalog) become apps in
/// the identity store that admins may use and nobody else by default, behind the
/// forward-auth middleware; they go with their entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_behind_forward_auth_are_apps_for_admins_and_go_with_their_entry() -> Result<()> {
    use stackspin_domain::{AppName, Email, NewUser, Role, UserName};
    use stackspin_platform::crds::Middleware;
    let _turn = TURN.lock().await;
    let bed = TestBed::get()?;
    let client = bed.client().await?;
    install_platform_crds(bed)?;
    clean(&client).await?;
    let repo = ChartRepo::serve(&[ChartVersion::new("hello", "0.1.0")]).await?;
    let mut files = stackspin_testbed::platform::hello_catalog_files(&repo.url);
    for (path, text) in &mut files {
        if path == "hello/app.toml" {
            text.push_str("\n[[tools]]\nname = \"hello-metrics\"\ntitle = \"Hello metrics\"\nsubdomain = \"metrics\"\n");
        }
        if path == "hello/values.yaml" {
            *text = text.replace(
                "greeting: hello",
                "greeting: hello\nmetricsMiddleware: ${forward_auth}",
            );
        }
    }
    let catalog = Arc::new(Catalog::from_files(
        files.iter().map(|(p, t)| (p.as_str(), t.as_str())),
    )?);
    let db = TestDb::sqlite().await;
    let store = &db.store;
    let person = |email: &str, admin: bool| NewUser {
        email: Email::parse(email).unwrap(),
        name: UserName::parse("Test Person").unwrap(),
        password_hash: None,
        is_admin: admin,
    };
    let admin = store
        .create_user(&person("root@example.test", true))
        .await?;
    let user = store
        .create_user(&person("ada@example.test", false))
        .await?;
    let op = operator(client.clone(), store, catalog, "tools");
    store.request_install("hello", None, true, "0.1.0").await?;
    op.reconcile().await?;

    let tool = store
        .app_by_name(&AppName::parse("hello-metrics").unwrap())
        .await?
        .expect("the tool is an app");
    assert_eq!(tool.url, "https://metrics.example.test/");
    assert_eq!(store.role_of(admin.id, tool.id).await?, Role::Admin);
    assert_eq!(store.role_of(user.id, tool.id).await?, Role::None);
    // An admin's own choice stays: an admin who takes themselves off it is not put back.
    store
        .set_role(
            &admin.email,
            &AppName::parse("hello-metrics").unwrap(),
            Role::None,
        )
        .await?;
    op.reconcile().await?;
    assert_eq!(store.role_of(admin.id, tool.id).await?, Role::None);

    let middlewares: Api<Middleware> = Api::namespaced(client.clone(), CORE_NAMESPACE);
    let mw = middlewares.get("forward-auth").await?;
    let fa = mw.spec.forward_auth.expect("a forwardAuth middleware");
    assert_eq!(fa.address, "http://stackspin.stackspin.svc/auth/forward");
    assert!(!fa.trust_forward_header);

    store.request_uninstall("hello", true).await?;
    converge(&op, store, "hello", "the uninstall", STEP, |r| r.is_none()).await?;
    assert!(
        store
            .app_by_name(&AppName::parse("hello-metrics").unwrap())
            .await?
            .is_none()
    );
    assert!(middlewares.get_opt("forward-auth").await?.is_none());
    Ok(())
}

/// A process the test started, stopped when it goes out of scope.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// `df`'s view of the root filesystem: (size, available) in bytes.
fn df_root() -> Result<(u64, u64)> {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=size,avail", "/"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text.lines().nth(1).unwrap_or_default();
    let mut fields = line.split_whitespace().map(|f| f.parse::<u64>());
    match (fields.next(), fields.next()) {
        (Some(Ok(size)), Some(Ok(avail))) => Ok((size, avail)),
        _ => anyhow::bail!("cannot read df's output: {text}"),
    }
}

/// The Status page's disk use comes from node_exporter through Prometheus, both real and
/// built from their modules by the test bed: node_exporter reads this machine's root
/// filesystem, Prometheus scrapes it, and the operator asks Prometheus's query API, naming the
/// node by `node_uname_info` (a simulated node carries this machine's host name, as k3s names
/// its node). Stand-in: node_exporter runs on this machine rather than as a DaemonSet pod.
/// Without Prometheus, disk use is unknown and the round still records the nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_disks_come_from_node_exporter_through_prometheus() -> Result<()> {
    use k8s_openapi::api::core::v1::Node;
    use stackspin_domain::status::NodeStatus;
    let bed = TestBed::get()?;
    let admin = bed.client().await?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")?
        .trim()
        .to_string();
    let nodes: Api<Node> = Api::all(admin.clone());
    nodes.delete(&host, &Default::default()).await.ok();
    // Tainted, so that other tests' pods are never placed on it while it exists.
    let node: Node = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": host, "annotations": {"kwok.x-k8s.io/node": "fake"},
                     "labels": {"kubernetes.io/hostname": host, "type": "kwok"}},
        "spec": {"taints": [{"key": "stackspin.test/disk-test", "effect": "NoSchedule"}]},
        "status": {"capacity": {"cpu": "2", "memory": "24Gi", "pods": "110",
                                "ephemeral-storage": "100Gi"}}
    }))?;
    nodes.create(&Default::default(), &node).await?;

    let exporter_port = free_port();
    let _exporter = Running(
        std::process::Command::new(TestBed::bin("node_exporter"))
            .args([
                &format!("--web.listen-address=127.0.0.1:{exporter_port}"),
                "--collector.disable-defaults",
                "--collector.filesystem",
                "--collector.uname",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?,
    );
    let dir = tempfile::tempdir()?;
    let prom_config = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: node-exporter\n    \
             static_configs:\n      - targets: [\"127.0.0.1:{exporter_port}\"]\n"
        ),
    )?;
    let prometheus_port = free_port();
    let prometheus = Running(
        std::process::Command::new(TestBed::bin("prometheus"))
            .arg(format!("--config.file={}", prom_config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?,
    );
    let url = format!("http://127.0.0.1:{prometheus_port}");
    // Until the first scrape has landed.
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let answer: serde_json::Value = match http
            .get(format!("{url}/api/v1/query"))
            .query(&[("query", "node_uname_info")])
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        if answer["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "Prometheus never scraped node_exporter"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let db = TestDb::sqlite().await;
    let mut s = settings("disks");
    s.prometheus_url = Some(url);
    let op = stackspin_operator::Operator::new(
        admin.clone(),
        db.store.clone(),
        hello_catalog("http://127.0.0.1:9"),
        config(),
        s,
    );
    op.observe_cluster().await?;
    let read = || async {
        let (seen, _) = db.store.observation("nodes").await?.unwrap();
        Ok::<_, anyhow::Error>(serde_json::from_value::<Vec<NodeStatus>>(seen)?)
    };
    let seen = read().await?;
    let this = seen.iter().find(|n| n.name == host).unwrap();
    let disk = this
        .disk
        .expect("disk use of the node named after this machine");
    let (size, avail) = df_root()?;
    assert_eq!(disk.size_bytes, size, "the same filesystem as df's /");
    let drift = disk.available_bytes.abs_diff(avail);
    assert!(
        drift < size / 100,
        "free space {} vs df's {avail}",
        disk.available_bytes
    );
    let share = this.disk_used_share().unwrap();
    assert!(share > 0.0 && share < 1.0, "{share}");
    // The node with no node_exporter has none.
    let other = seen.iter().find(|n| n.name == "stackspin").unwrap();
    assert_eq!(other.disk, None);

    // Prometheus gone: disk use unknown, nodes still recorded.
    drop(prometheus);
    op.observe_cluster().await?;
    let seen = read().await?;
    assert_eq!(seen.iter().find(|n| n.name == host).unwrap().disk, None);
    nodes.delete(&host, &Default::default()).await?;
    Ok(())
}
