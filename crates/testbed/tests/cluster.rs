//! The loop a real cluster runs, on the test bed: Flux installs a chart from a repository,
//! upgrades it, rolls a broken upgrade back, and uninstalls it; the garbage collector cleans
//! up. Also: RBAC refuses a ServiceAccount beyond its role, and waits explain their failures.
//!
//! Stand-ins: the chart repository is a loopback HTTP server with a chart written here (the
//! real chart repositories are not reachable), and the node is kwok's (no container runs; pods
//! are reported Running and Ready by its stages).

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use stackspin_testbed::{
    ChartRepo, ChartVersion, STEP, TestBed, delete_ignoring_absent, wait_for, wait_for_absent,
};

fn flux_api(
    client: &Client,
    ns: &str,
    group: &str,
    version: &str,
    kind: &str,
) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

fn condition<'a>(obj: &'a DynamicObject, kind: &str) -> Option<&'a Value> {
    obj.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn is_true(obj: &DynamicObject, kind: &str) -> bool {
    condition(obj, kind).is_some_and(|c| c["status"] == "True")
}

/// The release history Flux records, newest first, as (chart version, helm status).
fn history(obj: &DynamicObject) -> Vec<(String, String)> {
    obj.data["status"]["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|s| {
                    (
                        s["chartVersion"].as_str().unwrap_or_default().to_string(),
                        s["status"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn object(value: Value) -> Result<DynamicObject> {
    Ok(serde_json::from_value(value)?)
}

async fn pods_of(client: &Client, ns: &str, release: &str) -> Result<Vec<Pod>> {
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={release}")))
        .await?;
    Ok(pods.items)
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flux_installs_rolls_back_a_broken_upgrade_and_uninstalls() -> Result<()> {
    let bed = TestBed::get()?;
    let client = bed.client().await?;
    let ns = bed.namespace("flux-loop").await?;
    let ns = ns.as_str().to_string();
    let repo = ChartRepo::serve(&[
        ChartVersion::new("hello", "0.1.0"),
        ChartVersion::new("hello", "0.2.0")
            .with_value("podReadiness", "never")
            .with_value("greeting", "broken"),
    ])
    .await?;

    let repos = flux_api(
        &client,
        &ns,
        "source.toolkit.fluxcd.io",
        "v1",
        "HelmRepository",
    );
    repos
        .create(
            &PostParams::default(),
            &object(json!({
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "HelmRepository",
                "metadata": {"name": "local", "namespace": ns},
                "spec": {"url": repo.url, "interval": "1m"},
            }))?,
        )
        .await?;
    wait_for(
        &repos,
        "local",
        "the HelmRepository to be Ready",
        STEP,
        |r| is_true(r, "Ready"),
    )
    .await?;

    let releases = flux_api(&client, &ns, "helm.toolkit.fluxcd.io", "v2", "HelmRelease");
    let release = |version: &str| {
        object(json!({
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "kind": "HelmRelease",
            "metadata": {"name": "hello", "namespace": ns},
            "spec": {
                "interval": "1m",
                "timeout": "20s",
                "chart": {"spec": {
                    "chart": "hello",
                    "version": version,
                    "sourceRef": {"kind": "HelmRepository", "name": "local"},
                    "interval": "1m",
                }},
                "install": {"remediation": {"retries": 1}},
                "upgrade": {"remediation": {"retries": 1, "strategy": "rollback"}},
            },
        }))
    };
    releases
        .create(&PostParams::default(), &release("0.1.0")?)
        .await?;
    let installed = wait_for(
        &releases,
        "hello",
        "the HelmRelease to be Ready",
        STEP,
        |r| is_true(r, "Ready"),
    )
    .await?;
    assert_eq!(
        history(&installed).first(),
        Some(&("0.1.0".to_string(), "deployed".to_string())),
        "history after install: {:?}",
        history(&installed)
    );

    // What the chart made exists, scheduled to the simulated node, running, with its claim bound.
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let deployment = deployments.get("hello").await?;
    assert_eq!(
        deployment.status.as_ref().and_then(|s| s.ready_replicas),
        Some(1)
    );
    let pods = pods_of(&client, &ns, "hello").await?;
    assert_eq!(
        pods.len(),
        1,
        "pods: {:?}",
        pods.iter().map(|p| p.name_any()).collect::<Vec<_>>()
    );
    let pod = &pods[0];
    assert_eq!(
        pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some("stackspin")
    );
    assert_eq!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Running")
    );
    assert!(pod_ready(pod));
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns);
    wait_for(&claims, "hello-data", "the claim to be Bound", STEP, |c| {
        c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
    })
    .await?;

    // An upgrade whose pods never become ready fails, and Flux rolls it back.
    let mut current = releases.get("hello").await?;
    current.data["spec"]["chart"]["spec"]["version"] = json!("0.2.0");
    releases
        .replace("hello", &PostParams::default(), &current)
        .await?;
    let rolled_back = wait_for(
        &releases,
        "hello",
        "Flux to roll back the failed upgrade to 0.1.0",
        STEP * 2,
        |r| {
            condition(r, "Remediated").is_some_and(|c| c["reason"] == "RollbackSucceeded")
                && history(r)
                    .first()
                    .is_some_and(|(v, s)| v == "0.1.0" && s == "deployed")
                && history(r)
                    .iter()
                    .any(|(v, s)| v == "0.2.0" && s == "failed")
        },
    )
    .await?;
    assert!(
        !is_true(&rolled_back, "Ready"),
        "a release whose upgrade failed is not Ready"
    );
    // The workload is the old one again: the template's greeting is back, and it is ready.
    let deployment = wait_for(
        &deployments,
        "hello",
        "the rolled-back Deployment to be ready",
        STEP,
        |d| {
            let greeting = d
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.annotations.as_ref())
                .and_then(|a| a.get("hello.stackspin.test/greeting"));
            let status = d.status.as_ref();
            greeting.map(String::as_str) == Some("hello")
                && status.and_then(|s| s.ready_replicas) == Some(1)
                && status.and_then(|s| s.updated_replicas) == Some(1)
        },
    )
    .await?;
    assert_eq!(deployment.name_any(), "hello");

    // Uninstall: helm-controller removes the release, the garbage collector its pods.
    delete_ignoring_absent(&releases, "hello").await?;
    wait_for_absent(&releases, "hello", STEP).await?;
    wait_for_absent(&deployments, "hello", STEP).await?;
    let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), &ns);
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    let deadline = std::time::Instant::now() + STEP;
    loop {
        let rs = replica_sets.list(&ListParams::default()).await?.items;
        let pods = pods_of(&client, &ns, "hello").await?;
        let helm_secrets: Vec<_> = secrets
            .list(&ListParams::default().labels("owner=helm"))
            .await?
            .items;
        if rs.is_empty() && pods.is_empty() && helm_secrets.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after uninstall, still here: {} replica sets, {} pods, {} helm release secrets",
            rs.len(),
            pods.len(),
            helm_secrets.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_service_account_gets_what_its_role_allows_and_nothing_more() -> Result<()> {
    let bed = TestBed::get()?;
    let client = bed.client().await?;
    let ns = bed.namespace("rbac").await?;
    let ns = ns.as_str();
    let post = PostParams::default();
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create(
            &post,
            &serde_json::from_value(json!({"metadata": {"name": "reader"}}))?,
        )
        .await?;
    Api::<Role>::namespaced(client.clone(), ns)
        .create(
            &post,
            &serde_json::from_value(json!({
                "metadata": {"name": "read-config"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
            }))?,
        )
        .await?;
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(
            &post,
            &serde_json::from_value(json!({
                "metadata": {"name": "reader"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-config"},
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}],
            }))?,
        )
        .await?;
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .create(
            &post,
            &serde_json::from_value(json!({"metadata": {"name": "settings"}, "data": {"a": "1"}}))?,
        )
        .await?;

    let reader = bed.client_as(ns, "reader").await?;
    let maps = Api::<ConfigMap>::namespaced(reader.clone(), ns);
    assert_eq!(
        maps.get("settings").await?.data.unwrap_or_default()["a"],
        "1"
    );
    // The controller-manager's kube-root-ca.crt is there too, as in every namespace.
    let names: Vec<String> = maps
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert!(names.contains(&"settings".to_string()), "{names:?}");
    assert!(names.contains(&"kube-root-ca.crt".to_string()), "{names:?}");

    let refused = |r: Result<_, kube::Error>| match r {
        Err(kube::Error::Api(s)) => s.code,
        Ok(_) => 200,
        Err(e) => panic!("unexpected error: {e}"),
    };
    let new_map: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "other"}}))?;
    assert_eq!(refused(maps.create(&post, &new_map).await.map(|_| ())), 403);
    assert_eq!(
        refused(
            Api::<Secret>::namespaced(reader.clone(), ns)
                .list(&ListParams::default())
                .await
                .map(|_| ())
        ),
        403
    );
    assert_eq!(
        refused(
            Api::<ConfigMap>::namespaced(reader, "default")
                .list(&ListParams::default())
                .await
                .map(|_| ())
        ),
        403
    );
    Ok(())
}

#[tokio::test]
async fn a_wait_that_times_out_shows_the_status_and_events() -> Result<()> {
    let bed = TestBed::get()?;
    let client = bed.client().await?;
    let ns = bed.namespace("wait").await?;
    let pods = Api::<Pod>::namespaced(client.clone(), ns.as_str());
    // A pod that asks for more than the node has stays Pending, and the scheduler says why.
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "too-big"},
            "spec": {"containers": [{
                "name": "c", "image": "registry.invalid/x",
                "resources": {"requests": {"cpu": "500"}},
            }]},
        }))?,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let err = wait_for(
        &pods,
        "too-big",
        "the pod to run",
        Duration::from_secs(3),
        |p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"),
    )
    .await
    .expect_err("a pod that cannot fit never runs");
    let text = err.to_string();
    assert!(
        text.contains("timed out after 3s waiting for the pod to run"),
        "{text}"
    );
    assert!(text.contains("\"phase\": \"Pending\""), "{text}");
    assert!(text.contains("FailedScheduling"), "{text}");
    Ok(())
}
