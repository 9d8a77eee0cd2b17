//! Our CRD structs against the upstream CRDs: every field we can write exists upstream, at
//! the same place, with the same type. The upstream CRD files are the ones saved under the
//! shared reference folder (`STACKSPIN_CRDS`, else `../shared/crds` beside the repository,
//! else `/work/shared/crds`); the test bed also checks real objects against the Flux CRDs
//! it installs.

use std::path::{Path, PathBuf};

use kube::CustomResourceExt;
use serde_json::Value;
use stackspin_platform::crds::*;

fn crds_dir() -> PathBuf {
    let candidates = [
        std::env::var("STACKSPIN_CRDS").ok().map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/crds")),
        Some(PathBuf::from("/work/shared/crds")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_dir())
        .expect("the upstream CRDs (set STACKSPIN_CRDS to their folder)")
}

fn upstream_schema(file: &str, version: &str) -> Value {
    let path = crds_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Some files hold several documents; the CRD is the one with versions.
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let crd = docs
        .into_iter()
        .find(|d| d["kind"] == "CustomResourceDefinition")
        .expect("a CRD");
    crd["spec"]["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .find(|v| v["name"] == version)
        .unwrap_or_else(|| panic!("{file} serves no {version}"))["schema"]["openAPIV3Schema"]
        .clone()
}

fn ours(
    crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    let v = serde_json::to_value(crd).expect("json");
    v["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// The JSON type a schema node stands for, read through the wrappers schemars and kube use.
fn type_of(node: &Value) -> Option<String> {
    if let Some(t) = node.get("type").and_then(Value::as_str) {
        return Some(t.to_string());
    }
    if node.get("x-kubernetes-int-or-string").is_some() {
        return Some("int-or-string".into());
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(list) = node.get(key).and_then(Value::as_array)
            && let Some(t) = list.iter().find_map(type_of)
        {
            return Some(t);
        }
    }
    None
}

fn compare(ours: &Value, theirs: &Value, path: &str, problems: &mut Vec<String>) {
    let (a, b) = (type_of(ours), type_of(theirs));
    if let (Some(a), Some(b)) = (&a, &b) {
        let same = a == b || (a == "integer" && b == "number");
        if !same {
            problems.push(format!("{path}: ours is {a}, upstream {b}"));
        }
    }
    if let Some(props) = ours.get("properties").and_then(Value::as_object) {
        let theirs_props = theirs.get("properties").and_then(Value::as_object);
        for (key, node) in props {
            if ["apiVersion", "kind", "metadata", "status"].contains(&key.as_str())
                && path.is_empty()
            {
                continue;
            }
            let sub = format!("{path}.{key}");
            match theirs_props.and_then(|p| p.get(key)) {
                Some(t) => compare(node, t, &sub, problems),
                None => {
                    // A map of anything upstream (additionalProperties) takes any key.
                    if theirs.get("additionalProperties").is_none()
                        && theirs.get("x-kubernetes-preserve-unknown-fields").is_none()
                    {
                        problems.push(format!("{sub}: not in the upstream CRD"));
                    }
                }
            }
        }
    }
    if let (Some(a), Some(b)) = (ours.get("items"), theirs.get("items")) {
        compare(a, b, &format!("{path}[]"), problems);
    }
}

fn check(name: &str, ours: Value, theirs: Value) {
    let mut problems = Vec::new();
    compare(&ours, &theirs, "", &mut problems);
    assert!(problems.is_empty(), "{name}:\n{}", problems.join("\n"));
}

#[test]
fn flux_structs_match_the_flux_crds() {
    check(
        "HelmRelease",
        ours(HelmRelease::crd()),
        upstream_schema("fluxcd/helm.toolkit.fluxcd.io_helmreleases.yaml", "v2"),
    );
    check(
        "HelmRepository",
        ours(HelmRepository::crd()),
        upstream_schema(
            "fluxcd/source.toolkit.fluxcd.io_helmrepositories.yaml",
            "v1",
        ),
    );
    check(
        "HelmChart",
        ours(HelmChart::crd()),
        upstream_schema("fluxcd/source.toolkit.fluxcd.io_helmcharts.yaml", "v1"),
    );
    check(
        "OCIRepository",
        ours(OCIRepository::crd()),
        upstream_schema("fluxcd/source.toolkit.fluxcd.io_ocirepositories.yaml", "v1"),
    );
}

#[test]
fn cert_manager_and_traefik_structs_match_their_crds() {
    check(
        "ClusterIssuer",
        ours(ClusterIssuer::crd()),
        upstream_schema("cert-manager/cert-manager.io_clusterissuers.yaml", "v1"),
    );
    check(
        "Middleware",
        ours(Middleware::crd()),
        upstream_schema("traefik/traefik.io_middlewares.yaml", "v1alpha1"),
    );
}

#[test]
fn the_check_notices_a_field_upstream_does_not_have() {
    let mut bad = ours(HelmRelease::crd());
    bad["properties"]["spec"]["properties"]["valuesFile"] = serde_json::json!({"type": "string"});
    bad["properties"]["spec"]["properties"]["interval"] = serde_json::json!({"type": "integer"});
    let mut problems = Vec::new();
    compare(
        &bad,
        &upstream_schema("fluxcd/helm.toolkit.fluxcd.io_helmreleases.yaml", "v2"),
        "",
        &mut problems,
    );
    assert!(
        problems.iter().any(|p| p.contains(".spec.valuesFile")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains(".spec.interval")),
        "{problems:?}"
    );
}
