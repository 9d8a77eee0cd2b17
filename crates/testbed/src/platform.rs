//! The platform around the operator on the test bed: the CRDs a k3s cluster with
//! cert-manager has beside Flux's, and a test catalog whose one app, `hello`, points at a chart
//! repository on loopback (the stand-in for the real chart repositories, which cannot be
//! reached here).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{TestBed, repo_root};

pub fn shared_crds() -> Result<PathBuf> {
    let candidates = [
        std::env::var("STACKSPIN_CRDS").ok().map(PathBuf::from),
        Some(repo_root().join("../shared/crds")),
        Some(PathBuf::from("/work/shared/crds")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_dir())
        .context("the upstream CRDs (set STACKSPIN_CRDS to their folder)")
}

pub fn kubectl(bed: &TestBed, args: &[&str]) -> Result<String> {
    let out = Command::new(TestBed::bin("kubectl"))
        .arg("--kubeconfig")
        .arg(bed.kubeconfig())
        .args(args)
        .output()
        .context("running kubectl")?;
    if !out.status.success() {
        bail!(
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The CRDs a k3s cluster with cert-manager has beside Flux's: ClusterIssuer and Traefik's
/// Middleware, from the upstream files.
pub fn install_platform_crds(bed: &TestBed) -> Result<()> {
    let dir = shared_crds()?;
    for file in [
        "cert-manager/cert-manager.io_clusterissuers.yaml",
        "traefik/traefik.io_middlewares.yaml",
    ] {
        let path = dir.join(file);
        kubectl(
            bed,
            &["apply", "--server-side", "-f", &path.to_string_lossy()],
        )?;
    }
    kubectl(
        bed,
        &[
            "wait",
            "--for=condition=Established",
            "crd/clusterissuers.cert-manager.io",
            "crd/middlewares.traefik.io",
            "--timeout=60s",
        ],
    )?;
    Ok(())
}

/// The test catalog's files, `(path in the catalog folder, text)`: one app, `hello`, whose
/// chart comes from `url` (a [`crate::ChartRepo`]).
pub fn hello_catalog_files(url: &str) -> Vec<(String, String)> {
    let app = format!(
        r#"name = "hello"
title = "Hello"
summary = "The test bed's chart."
docs = "https://docs.example.test/hello"
kind = "app"
subdomain = "hello"
ingress_annotations = "ingress.annotations"

[chart]
repository = "{url}"
name = "hello"
version = "0.1.0"
updates = ">=0.1.0, <1.0.0"
defaults = "hello"

[oidc]
redirect_paths = ["/oidc/callback"]
post_logout_paths = ["/"]
groups_from = "userinfo"
claim = "role"
admin_mapping = "native"
admin_how = "the test chart has no admin"

[[secrets]]
name = "database_password"
length = 24

[[secret_keys]]
key = "CLIENT_SECRET"
value = "${{oidc.client_secret}}"

[[volumes]]
name = "hello-data"

[requests]
cpu = "10m"
memory = "16Mi"
"#
    );
    let values =
        "greeting: hello\nissuer: ${issuer}\nclientId: ${client_id}\ningress:\n  annotations: {}\n";
    vec![
        ("hello/app.toml".to_string(), app),
        ("hello/values.yaml".to_string(), values.to_string()),
    ]
}
