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
    app_catalog_files(url, "hello")
}

/// One app named `name` (also its subdomain) played by the `hello` chart, so a test can
/// have two apps side by side.
pub fn app_catalog_files(url: &str, name: &str) -> Vec<(String, String)> {
    let mut title: Vec<char> = name.chars().collect();
    if let Some(c) = title.first_mut() {
        *c = c.to_ascii_uppercase();
    }
    let title: String = title.into_iter().collect();
    let app = format!(
        r#"name = "{name}"
title = "{title}"
summary = "The test bed's chart."
docs = "https://docs.example.test/{name}"
kind = "app"
subdomain = "{name}"
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
name = "{name}-data"

[requests]
cpu = "10m"
memory = "16Mi"
"#
    );
    let values =
        "greeting: hello\nissuer: ${issuer}\nclientId: ${client_id}\ningress:\n  annotations: {}\n";
    vec![
        (format!("{name}/app.toml"), app),
        (format!("{name}/values.yaml"), values.to_string()),
    ]
}

/// A test catalog with a core: the control plane's entry (`stackspin`, at `dashboard.DOMAIN`,
/// with the platform key and the setup password) played by the test bed's `hello` chart at
/// `version`, beside the `hello` app. The real control plane's image cannot run here.
pub fn core_catalog_files(url: &str, version: &str) -> Vec<(String, String)> {
    let mut files = hello_catalog_files(url);
    let core = format!(
        r#"name = "stackspin"
title = "Stackspin"
summary = "The control plane, played by the test bed's chart."
docs = "https://docs.example.test/stackspin"
kind = "core"
subdomain = "dashboard"
ingress_annotations = "ingress.annotations"

[chart]
repository = "{url}"
name = "hello"
version = "{version}"
updates = ">=0.1.0, <1.0.0"
defaults = "hello"

[[secrets]]
name = "secret_key"
length = 64
format = "platform_key"

[[secrets]]
name = "setup_password"
length = 24

[[secret_keys]]
key = "secret-key"
value = "${{secret.secret_key}}"

[[secret_keys]]
key = "setup-password"
value = "${{secret.setup_password}}"

[[secret_values]]
path = "operator.clusterConfig"
value = "${{cluster_config}}"

[requests]
cpu = "10m"
memory = "16Mi"
"#
    );
    files.push(("stackspin/app.toml".to_string(), core));
    files.push((
        "stackspin/values.yaml".to_string(),
        "greeting: control plane\nissuer: ${issuer}\ningress:\n  annotations: {}\n".to_string(),
    ));
    files
}

/// The stand-in for Flux's release manifest: the flux-system namespace and the CRDs of the
/// controllers the test bed builds (their Deployments cannot run here; the test bed runs the
/// controllers as processes).
pub fn flux_standin_manifest() -> Result<String> {
    let dir = TestBed::bin("crds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("{} (scripts/testbed build)", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut out = String::from(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n  labels:\n    app.kubernetes.io/instance: flux-system\n",
    );
    for f in files {
        out.push_str("---\n");
        out.push_str(&std::fs::read_to_string(&f)?);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

/// Serves `body` at `http://127.0.0.1:PORT/PATH` until the handle is dropped.
pub async fn serve_text(path: &str, body: String) -> Result<(String, crate::Served)> {
    serve_text_at("127.0.0.1:0", path, body).await
}

/// Serves `body` at `http://BIND/PATH` (an address the SSH tests' server reaches).
pub async fn serve_text_at(
    bind: &str,
    path: &str,
    body: String,
) -> Result<(String, crate::Served)> {
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let url = format!(
        "http://{}/{}",
        listener.local_addr()?,
        path.trim_start_matches('/')
    );
    let route = format!("/{}", path.trim_start_matches('/'));
    let app = axum::Router::new().route(
        &route,
        axum::routing::get(move || {
            let body = body.clone();
            async move { body }
        }),
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, crate::Served(task)))
}

/// What a k3s server brings besides the API: the default `local-path` StorageClass (the test
/// bed makes it, with simulated provisioning) and the `traefik` IngressClass (its bundled
/// Traefik cannot run here). Only what is missing is made.
pub async fn k3s_bundled(client: &kube::Client) -> Result<()> {
    use k8s_openapi::api::networking::v1::IngressClass;
    use k8s_openapi::api::storage::v1::StorageClass;
    use kube::api::{Api, PostParams};
    let classes: Api<StorageClass> = Api::all(client.clone());
    if classes.get_opt("local-path").await?.is_none() {
        classes
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({
                    "metadata": {"name": "local-path", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                    "provisioner": "rancher.io/local-path",
                    "volumeBindingMode": "Immediate",
                }))?,
            )
            .await?;
    }
    let ingress: Api<IngressClass> = Api::all(client.clone());
    if ingress.get_opt("traefik").await?.is_none() {
        ingress
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({
                    "metadata": {"name": "traefik"},
                    "spec": {"controller": "traefik.io/ingress-controller"},
                }))?,
            )
            .await?;
    }
    Ok(())
}
