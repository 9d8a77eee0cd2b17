//! `stackspin install`: the steps against a cluster's API, each safe to run again. A step
//! that finds its work done says so and moves on, so an interrupted install is resumed by
//! running it again, and a newer Stackspin upgrades what an older one installed.
//!
//! 1. preflight: the API answers, its version is one Flux supports, the cluster has a default
//!    StorageClass and the Traefik ingress class (k3s ships both);
//! 2. Flux at a pinned version, from its release manifest (applied server-side);
//! 3. the platform from the engine (`stackspin-platform`), with the cluster folder's secrets,
//!    and the hand-over the control plane adopts;
//! 4. waiting until the core's HelmReleases are ready.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::{Discovery, Scope};
use kube::{Client, ResourceExt};
use stackspin_catalog::{Catalog, ChartSource};
use stackspin_platform::crds::{HelmRelease, OCIRepository};
use stackspin_platform::desired::{self, CORE_NAMESPACE};
use stackspin_platform::{ClusterConfig, GeneratedSecrets, Handover, Object, Tuning};

use crate::ProvisionError;

/// The Flux release installed: its controllers are the ones the test bed builds
/// (source-controller v1.9, helm-controller v1.6), and the APIs the platform uses are its.
pub const FLUX_VERSION: &str = "v2.9.0";
/// Flux's own release manifest for that version.
pub fn flux_manifest_url() -> String {
    format!("https://github.com/fluxcd/flux2/releases/download/{FLUX_VERSION}/install.yaml")
}
/// Kubernetes versions Flux 2.9 supports.
pub const MIN_KUBERNETES_MINOR: u32 = 34;
/// The label on `flux-system` that says which Flux release this installer applied.
const FLUX_LABEL: &str = "stackspin.net/flux-version";
const FIELD_MANAGER: &str = stackspin_operator::FIELD_MANAGER;

/// One preflight check: what was checked and what was found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub ok: bool,
    pub what: String,
    pub found: String,
}

/// Checks a cluster the platform is about to be installed on; every check runs, so the admin
/// sees all that is wrong at once.
pub async fn preflight(client: &Client) -> Vec<Check> {
    let mut checks = Vec::new();
    match client.apiserver_version().await {
        Ok(v) => {
            let minor: u32 = v.minor.trim_end_matches('+').parse().unwrap_or_default();
            checks.push(Check {
                ok: true,
                what: "Kubernetes API reachable".into(),
                found: v.git_version.clone(),
            });
            checks.push(Check {
                ok: v.major == "1" && minor >= MIN_KUBERNETES_MINOR,
                what: format!("Kubernetes 1.{MIN_KUBERNETES_MINOR} or newer (Flux {FLUX_VERSION})"),
                found: v.git_version,
            });
        }
        Err(e) => {
            checks.push(Check {
                ok: false,
                what: "Kubernetes API reachable".into(),
                found: stackspin_operator::apply::describe(&e),
            });
            return checks;
        }
    }
    let classes: Api<StorageClass> = Api::all(client.clone());
    checks.push(match classes.list(&ListParams::default()).await {
        Ok(list) => {
            let default = list.items.iter().find(|c| {
                c.annotations()
                    .get("storageclass.kubernetes.io/is-default-class")
                    .is_some_and(|v| v == "true")
            });
            Check {
                ok: default.is_some(),
                what: "a default StorageClass (k3s: local-path)".into(),
                found: default
                    .map(|c| c.name_any())
                    .unwrap_or_else(|| "none".into()),
            }
        }
        Err(e) => Check {
            ok: false,
            what: "a default StorageClass (k3s: local-path)".into(),
            found: stackspin_operator::apply::describe(&e),
        },
    });
    let ingress: Api<IngressClass> = Api::all(client.clone());
    checks.push(match ingress.get_opt("traefik").await {
        Ok(found) => Check {
            ok: found.is_some(),
            what: "the traefik IngressClass (k3s ships Traefik)".into(),
            found: if found.is_some() { "traefik" } else { "none" }.into(),
        },
        Err(e) => Check {
            ok: false,
            what: "the traefik IngressClass (k3s ships Traefik)".into(),
            found: stackspin_operator::apply::describe(&e),
        },
    });
    checks
}

/// Whether Flux at [`FLUX_VERSION`] was applied by an earlier run.
pub async fn flux_installed(client: &Client) -> Result<bool, ProvisionError> {
    let ns: Api<Namespace> = Api::all(client.clone());
    Ok(ns
        .get_opt("flux-system")
        .await?
        .is_some_and(|n| n.labels().get(FLUX_LABEL).map(String::as_str) == Some(FLUX_VERSION)))
}

/// Downloads Flux's release manifest. Its SHA-256 is kept in the cluster folder the first
/// time and checked on every later download, so a manifest changed at the source is noticed.
pub async fn fetch_flux_manifest(url: &str) -> Result<String, ProvisionError> {
    let resp = reqwest::get(url)
        .await
        .map_err(|e| ProvisionError::Cluster(format!("cannot download Flux from {url}: {e}")))?;
    if !resp.status().is_success() {
        return Err(ProvisionError::Cluster(format!(
            "cannot download Flux from {url}: {}",
            resp.status()
        )));
    }
    resp.text()
        .await
        .map_err(|e| ProvisionError::Cluster(format!("cannot download Flux from {url}: {e}")))
}

pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Applies a multi-document manifest server-side: CRDs first (and waits until they are
/// established), then everything else; then labels `flux-system` with the version.
pub async fn apply_flux(client: &Client, manifest: &str) -> Result<usize, ProvisionError> {
    let mut docs: Vec<DynamicObject> = Vec::new();
    for (i, doc) in manifest.split("\n---").enumerate() {
        let body: String = doc
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        if body.trim().is_empty() || body.trim() == "---" {
            continue;
        }
        let value: serde_json::Value = serde_saphyr::from_str(doc).map_err(|e| {
            ProvisionError::Cluster(format!("Flux manifest, document {}: {e}", i + 1))
        })?;
        if value.is_null() {
            continue;
        }
        let obj: DynamicObject = serde_json::from_value(value).map_err(|e| {
            ProvisionError::Cluster(format!("Flux manifest, document {}: {e}", i + 1))
        })?;
        docs.push(obj);
    }
    let is_crd = |o: &DynamicObject| {
        o.types
            .as_ref()
            .is_some_and(|t| t.kind == "CustomResourceDefinition")
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for o in docs.iter().filter(|o| is_crd(o)) {
        let name = o.name_any();
        crds.patch(&name, &params, &Patch::Apply(o)).await?;
        names.push(name);
    }
    for name in &names {
        wait_established(&crds, name).await?;
    }
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut n = names.len();
    for o in docs.iter().filter(|o| !is_crd(o)) {
        let Some(types) = &o.types else {
            return Err(ProvisionError::Cluster(format!(
                "Flux manifest: {} has no kind",
                o.name_any()
            )));
        };
        let gvk = kube::api::GroupVersionKind::try_from(types)
            .map_err(|e| ProvisionError::Cluster(format!("Flux manifest: {e}")))?;
        let (resource, caps) = discovery.resolve_gvk(&gvk).ok_or_else(|| {
            ProvisionError::Cluster(format!(
                "Flux manifest: the cluster does not know {}",
                types.kind
            ))
        })?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(
                client.clone(),
                o.namespace().as_deref().unwrap_or("flux-system"),
                &resource,
            ),
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        api.patch(&o.name_any(), &params, &Patch::Apply(o)).await?;
        n += 1;
    }
    let ns: Api<Namespace> = Api::all(client.clone());
    let label = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "flux-system", "labels": {FLUX_LABEL: FLUX_VERSION}},
    });
    ns.patch(
        "flux-system",
        &PatchParams::apply("stackspin-install").force(),
        &Patch::Apply(&label),
    )
    .await?;
    Ok(n)
}

async fn wait_established(
    crds: &Api<CustomResourceDefinition>,
    name: &str,
) -> Result<(), ProvisionError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let established = crds.get_opt(name).await?.is_some_and(|c| {
            c.status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
        if established {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(ProvisionError::Cluster(format!(
                "the CRD {name} was not established within 60 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The chart versions running in the cluster, per app (from the HelmRelease, or the
/// OCIRepository's tag): an install never moves an app back to an older version that the
/// operator moved it past inside the maintenance window.
async fn running_versions(
    client: &Client,
    catalog: &Catalog,
) -> Result<BTreeMap<String, semver::Version>, ProvisionError> {
    let mut out = BTreeMap::new();
    for ns in [desired::CORE_NAMESPACE, desired::APPS_NAMESPACE] {
        let releases: Api<HelmRelease> = Api::namespaced(client.clone(), ns);
        let oci: Api<OCIRepository> = Api::namespaced(client.clone(), ns);
        for entry in catalog.entries() {
            let text = match &entry.chart.source {
                ChartSource::Helm { .. } => releases
                    .get_opt(&entry.name)
                    .await?
                    .and_then(|r| r.spec.chart.and_then(|c| c.spec.version)),
                ChartSource::Oci { .. } => oci
                    .get_opt(&entry.name)
                    .await?
                    .and_then(|r| r.spec.reference.and_then(|x| x.tag)),
            };
            if let Some(v) =
                text.and_then(|t| semver::Version::parse(t.trim_start_matches('v')).ok())
            {
                out.insert(entry.name.clone(), v);
            }
        }
    }
    Ok(out)
}

/// The objects to apply: the engine's desired state for this configuration, each app at the
/// newer of the catalog's version and the one running, plus the hand-over.
pub async fn platform_objects(
    client: &Client,
    catalog: &Catalog,
    config: &ClusterConfig,
    secrets: &GeneratedSecrets,
) -> Result<Vec<Object>, ProvisionError> {
    let running = running_versions(client, catalog).await?;
    let mut config = config.clone();
    for app in &mut config.apps {
        if let (Some(entry), Some(v)) = (catalog.get(&app.name), running.get(&app.name))
            && entry.chart.updates.matches(v)
            && *v > entry.chart.version
            && app.version.is_none()
        {
            app.version = Some(v.clone());
        }
    }
    let mut objects =
        stackspin_platform::desired_state(catalog, &config, secrets, &Tuning::default())?;
    objects.push(Object::Secret(Handover::new(&config, secrets).to_secret()?));
    Ok(objects)
}

/// Whether an object's kind comes with the core (cert-manager's ClusterIssuer): it can only
/// be applied once the core is ready on a fresh cluster.
pub fn needs_core(o: &Object) -> bool {
    matches!(o, Object::ClusterIssuer(_))
}

/// Applies the objects server-side under the operator's field manager (so the control plane
/// in the cluster takes them over without conflicts). Returns how many changed: a server-side
/// apply that changes nothing leaves the resourceVersion as it was.
pub async fn apply_objects(client: &Client, objects: &[Object]) -> Result<usize, ProvisionError> {
    use stackspin_operator::apply;
    let mut changed = 0;
    for o in objects {
        let failed = |e: kube::Error| {
            ProvisionError::Cluster(format!(
                "applying {} {}: {}",
                o.kind(),
                o.name(),
                apply::describe(&e)
            ))
        };
        let before = apply::current_version(client, o).await.map_err(failed)?;
        let after = apply::apply(client, o, false).await.map_err(failed)?;
        if after != before {
            changed += 1;
        }
    }
    Ok(changed)
}

/// The state of each core HelmRelease: `None` while it is not ready yet, with the reason.
pub async fn core_state(
    client: &Client,
    catalog: &Catalog,
) -> Result<Vec<(String, bool, String)>, ProvisionError> {
    let releases: Api<HelmRelease> = Api::namespaced(client.clone(), CORE_NAMESPACE);
    let mut out = Vec::new();
    for entry in catalog.core() {
        let (ready, reason) = match releases.get_opt(&entry.name).await? {
            None => (false, "not created yet".to_string()),
            Some(r) => {
                // A Ready condition from before this change (an upgrade just applied) does
                // not count: helm-controller must have seen the current generation.
                let current =
                    r.status.as_ref().and_then(|s| s.observed_generation) == r.metadata.generation;
                let cond = r
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready").cloned());
                match cond {
                    Some(c) if current => (c.status == "True", c.message),
                    _ => (false, "waiting for helm-controller".to_string()),
                }
            }
        };
        out.push((entry.name.clone(), ready, reason));
    }
    Ok(out)
}

/// Waits until every core HelmRelease is ready; `tick` hears what is still waiting.
pub async fn wait_core(
    client: &Client,
    catalog: &Catalog,
    timeout: Duration,
    mut tick: impl FnMut(&str),
) -> Result<(), ProvisionError> {
    let start = Instant::now();
    loop {
        let state = core_state(client, catalog).await?;
        let waiting: Vec<String> = state
            .iter()
            .filter(|(_, ready, _)| !ready)
            .map(|(name, _, reason)| format!("{name}: {reason}"))
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        tick(&waiting.join("; "));
        if start.elapsed() > timeout {
            return Err(ProvisionError::Cluster(format!(
                "the core is not ready after {} s ({}); run install again to go on waiting",
                timeout.as_secs(),
                waiting.join("; ")
            )));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
