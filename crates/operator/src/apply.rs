//! Server-side apply of the desired objects under one field manager, and the deletes of what
//! is no longer desired.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject};
use kube::{Client, Resource};
use stackspin_platform::Object;
use stackspin_platform::crds::{
    ClusterIssuer, HelmChart, HelmRelease, HelmRepository, Middleware, OCIRepository,
};

/// The field manager every write of the operator uses, so Kubernetes can tell our fields
/// from an admin's `kubectl edit` (which drift detection then undoes).
pub const FIELD_MANAGER: &str = "stackspin";

fn erase<K: Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// The API resource of an object of the desired state.
pub fn resource(o: &Object) -> ApiResource {
    match o {
        Object::Namespace(_) => erase::<Namespace>(),
        Object::ConfigMap(_) => erase::<ConfigMap>(),
        Object::Secret(_) => erase::<Secret>(),
        Object::HelmRepository(_) => erase::<HelmRepository>(),
        Object::HelmChart(_) => erase::<HelmChart>(),
        Object::OCIRepository(_) => erase::<OCIRepository>(),
        Object::HelmRelease(_) => erase::<HelmRelease>(),
        Object::ClusterIssuer(_) => erase::<ClusterIssuer>(),
        Object::Middleware(_) => erase::<Middleware>(),
    }
}

/// The namespaced kinds the operator writes, which it also removes when no longer desired.
pub fn collectable() -> Vec<ApiResource> {
    // The release first: helm-controller uninstalls it while its sources still exist.
    vec![
        erase::<HelmRelease>(),
        erase::<HelmChart>(),
        erase::<HelmRepository>(),
        erase::<OCIRepository>(),
        erase::<ConfigMap>(),
        erase::<Secret>(),
        erase::<Middleware>(),
    ]
}

fn api(client: &Client, ar: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// Applies one object and returns its resourceVersion afterwards (unchanged when the apply
/// changed nothing). `dry_run` asks the API server to validate it (schema, admission)
/// without storing it.
pub async fn apply(
    client: &Client,
    o: &Object,
    dry_run: bool,
) -> Result<Option<String>, kube::Error> {
    let ar = resource(o);
    let api = api(client, &ar, o.namespace().as_deref());
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = dry_run;
    api.patch(&o.name(), &params, &Patch::Apply(o.to_value()))
        .await
        .map(|d| d.metadata.resource_version)
}

/// The object's resourceVersion in the cluster, if it exists.
pub async fn current_version(client: &Client, o: &Object) -> Result<Option<String>, kube::Error> {
    let ar = resource(o);
    let api = api(client, &ar, o.namespace().as_deref());
    Ok(api
        .get_opt(&o.name())
        .await?
        .and_then(|d| d.metadata.resource_version))
}

/// Objects of one kind in one namespace carrying a label selector.
pub async fn list(
    client: &Client,
    ar: &ApiResource,
    namespace: &str,
    selector: &str,
) -> Result<Vec<DynamicObject>, kube::Error> {
    let api = api(client, ar, Some(namespace));
    Ok(api
        .list(&ListParams::default().labels(selector))
        .await?
        .items)
}

/// Deletes an object; one that is already gone is not an error.
pub async fn delete(
    client: &Client,
    ar: &ApiResource,
    namespace: &str,
    name: &str,
) -> Result<(), kube::Error> {
    let api = api(client, ar, Some(namespace));
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether the API server answered with this HTTP status.
pub fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// One line about an API error, for the Dashboard and the log: never the object itself.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let msg = s.message.lines().next().unwrap_or_default();
            format!("{} ({})", msg, s.code)
        }
        other => other
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}
