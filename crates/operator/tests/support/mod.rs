//! What the operator tests share: the test bed with the platform's CRDs, a test catalog whose
//! app points at a chart repository on loopback (the stand-in for the real chart
//! repositories, which cannot be reached here), and waits that explain themselves.
#![allow(dead_code, clippy::unwrap_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams};
use stackspin_catalog::Catalog;
use stackspin_operator::{Operator, Settings};
use stackspin_platform::crds::HelmRelease;
use stackspin_platform::desired::{APPS_NAMESPACE, CORE_NAMESPACE, Tuning};
use stackspin_platform::{ClusterConfig, RawClusterConfig};
use stackspin_storage::{InstalledApp, Store};
pub use stackspin_testbed::platform::install_platform_crds;
use stackspin_testbed::platform::{hello_catalog_files, kubectl};
use stackspin_testbed::{TestBed, repo_root};

/// The operator's tests all use the platform's two namespaces, as the product does, so they
/// take turns.
pub static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Applies the ServiceAccount and RBAC of `charts/stackspin`, as Helm renders them.
pub fn install_chart_rbac(bed: &TestBed) -> Result<()> {
    let home = tempfile::tempdir()?;
    let out = Command::new(TestBed::bin("helm"))
        .env("HOME", home.path())
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .args(["template", "stackspin"])
        .arg(repo_root().join("charts/stackspin"))
        .args([
            "--namespace",
            CORE_NAMESPACE,
            "--show-only",
            "templates/serviceaccount.yaml",
            "--show-only",
            "templates/rbac.yaml",
        ])
        .output()?;
    if !out.status.success() {
        bail!("helm template: {}", String::from_utf8_lossy(&out.stderr));
    }
    let file = home.path().join("rbac.yaml");
    std::fs::write(&file, &out.stdout)?;
    kubectl(bed, &["create", "namespace", CORE_NAMESPACE]).ok();
    kubectl(bed, &["create", "namespace", APPS_NAMESPACE]).ok();
    kubectl(
        bed,
        &["apply", "--server-side", "-f", file.to_str().unwrap()],
    )?;
    Ok(())
}

/// Short intervals: simulated pods are ready in a second, and the tests should not wait
/// for real apps' timeouts.
pub fn tuning() -> Tuning {
    Tuning {
        interval: "1m".into(),
        source_interval: "10s".into(),
        timeout: "20s".into(),
        install_retries: 1,
        upgrade_retries: 1,
    }
}

pub fn settings(identity: &str) -> Settings {
    Settings {
        tuning: tuning(),
        interval: Duration::from_secs(2),
        identity: identity.into(),
        lease_duration: Duration::from_secs(3),
        // No node agent runs on the test bed (its pods are simulated).
        volume_data: false,
        ..Settings::default()
    }
}

pub fn config() -> ClusterConfig {
    RawClusterConfig {
        domain: Some("example.test".into()),
        ip_address: Some("192.0.2.10".into()),
        admin_email: Some("admin@example.test".into()),
        maintenance_window: Some("02:00-04:00".into()),
        time_zone: Some("UTC".into()),
        ..Default::default()
    }
    .resolve()
    .unwrap()
}

/// A catalog with one app, `hello`, from the chart repository at `url` (the test bed's
/// chart under `tests/charts/hello`), with an OIDC client and a secret key.
pub fn hello_catalog(url: &str) -> Arc<Catalog> {
    let files = hello_catalog_files(url);
    Arc::new(Catalog::from_files(files.iter().map(|(p, t)| (p.as_str(), t.as_str()))).unwrap())
}

pub fn operator(client: Client, store: &Store, catalog: Arc<Catalog>, identity: &str) -> Operator {
    Operator::new(client, store.clone(), catalog, config(), settings(identity))
}

/// Runs rounds until the app's row satisfies `done`; the error shows the last row.
pub async fn converge(
    op: &Operator,
    store: &Store,
    app: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(Option<&InstalledApp>) -> bool,
) -> Result<Option<InstalledApp>> {
    let deadline = Instant::now() + timeout;
    loop {
        let round = op.reconcile().await;
        let row = store.installed_app(app).await?;
        if done(row.as_ref()) {
            return Ok(row);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}; last round {round:?}; row {row:#?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Removes everything an earlier test left in the platform's namespaces: an operator round
/// with nothing installed, then the releases' claims.
pub async fn clean(client: &Client) -> Result<()> {
    // A hand-over left by a test would be adopted by the next test's empty database.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), CORE_NAMESPACE);
    if secrets
        .get_opt(stackspin_platform::HANDOVER_SECRET)
        .await?
        .is_some()
    {
        secrets
            .delete(
                stackspin_platform::HANDOVER_SECRET,
                &DeleteParams::default(),
            )
            .await?;
    }
    let store = stackspin_storage::testing::TestDb::sqlite().await;
    let op = operator(
        client.clone(),
        &store.store,
        hello_catalog("http://127.0.0.1:9/"),
        "cleaner",
    );
    op.reconcile().await?;
    for ns in [CORE_NAMESPACE, APPS_NAMESPACE] {
        let releases: Api<HelmRelease> = Api::namespaced(client.clone(), ns);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !releases
            .list(&ListParams::default())
            .await?
            .items
            .is_empty()
        {
            if Instant::now() > deadline {
                bail!("releases in {ns} did not go");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
        claims
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await?;
        // Gone, not just terminating: a claim still held by its protection finalizer would
        // vanish under the next test's freshly installed app.
        let deadline = Instant::now() + Duration::from_secs(120);
        while !claims.list(&ListParams::default()).await?.items.is_empty() {
            if Instant::now() > deadline {
                bail!("claims in {ns} did not go");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), CORE_NAMESPACE);
    stackspin_testbed::delete_ignoring_absent(&leases, stackspin_operator::leader::LEASE_NAME)
        .await?;
    Ok(())
}
