//! `stackspin install CLUSTER --kubeconfig FILE` on the test bed: a real kube-apiserver with
//! the real Flux controllers and simulated nodes. Stand-ins, named:
//! - k3s's bundled parts: the test makes the default StorageClass and the traefik
//!   IngressClass a k3s server has (after a preflight that must fail without them);
//! - Flux's release manifest (on GitHub, unreachable here): the flux-system namespace and the
//!   CRDs of the controllers the test bed builds, served on loopback;
//! - the control plane's chart and image: the test bed's `hello` chart plays the core entry
//!   `stackspin`, from a chart repository on loopback; kwok reports its pods running;
//! - cert-manager's chart (which brings the ClusterIssuer CRD): the CRD is applied by the
//!   test, as the operator tests do.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::IngressClass;
use kube::api::{Api, DeleteParams};
use stackspin_platform::crds::HelmRelease;
use stackspin_testbed::platform::{
    core_catalog_files, flux_standin_manifest, install_platform_crds, serve_text,
};
use stackspin_testbed::{ChartRepo, ChartVersion, TestBed};

const BIN: &str = env!("CARGO_BIN_EXE_stackspin");

async fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut c = Command::new(BIN);
        for (k, _) in std::env::vars() {
            if k.starts_with("STACKSPIN_") {
                c.env_remove(k);
            }
        }
        c.envs(env).current_dir(dir).args(args).output().unwrap()
    })
    .await
    .unwrap()
}

fn ok_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn one_line_error(out: &Output, expected: &str) {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "{err}");
    assert!(last.contains(expected), "{expected:?} in {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn write_catalog(dir: &Path, url: &str, version: &str) {
    let _ = std::fs::remove_dir_all(dir);
    for (path, text) in core_catalog_files(url, version) {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
}

fn step<'a>(report: &'a serde_json::Value, name: &str) -> &'a str {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"].as_str().unwrap().starts_with(name))
        .and_then(|s| s["result"].as_str())
        .unwrap_or_else(|| panic!("no step {name} in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_on_an_existing_cluster_from_start_to_ready_and_again() {
    let bed = TestBed::get().unwrap();
    let client = bed.client().await.unwrap();
    install_platform_crds(bed).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let repo = ChartRepo::serve(&[
        ChartVersion::new("hello", "0.1.0"),
        ChartVersion::new("hello", "0.2.0"),
    ])
    .await
    .unwrap();
    let catalog = d.join("catalog");
    write_catalog(&catalog, &repo.url, "0.1.0");
    let (flux_url, _flux) = serve_text("flux/install.yaml", flux_standin_manifest().unwrap())
        .await
        .unwrap();
    let env = [
        ("STACKSPIN_CATALOG", catalog.to_str().unwrap()),
        ("STACKSPIN_FLUX_MANIFEST_URL", flux_url.as_str()),
    ];
    let kubeconfig = bed.kubeconfig().to_str().unwrap().to_string();

    // Bad input first: one line each, nothing written.
    let out = run(
        d,
        &["install", "nowhere.example", "--kubeconfig", &kubeconfig],
        &env,
    )
    .await;
    one_line_error(&out, "unknown cluster nowhere.example");
    ok_json(
        &run(
            d,
            &[
                "--json",
                "create",
                "test.example",
                "--ip-address",
                "192.0.2.10",
                "--admin-email",
                "admin@example.test",
                "--apps",
                "hello",
            ],
            &env,
        )
        .await,
    );
    let toml_path = d.join("clusters/test.example/cluster.toml");
    let good_toml = std::fs::read_to_string(&toml_path).unwrap();
    std::fs::write(&toml_path, format!("{good_toml}\nmaintenance_window = 2\n")).unwrap();
    let out = run(
        d,
        &["install", "test.example", "--kubeconfig", &kubeconfig],
        &env,
    )
    .await;
    one_line_error(&out, "cluster.toml line");
    std::fs::write(&toml_path, &good_toml).unwrap();

    // What k3s would have: without it, preflight fails and says why, before changing anything.
    let ingress: Api<IngressClass> = Api::all(client.clone());
    let _ = ingress.delete("traefik", &DeleteParams::default()).await;
    let out = run(
        d,
        &["install", "test.example", "--kubeconfig", &kubeconfig],
        &env,
    )
    .await;
    one_line_error(&out, "preflight failed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FAIL the traefik IngressClass"), "{err}");
    assert!(err.contains("pass a default StorageClass"), "{err}");
    assert!(err.contains("pass Kubernetes API reachable"), "{err}");
    stackspin_testbed::platform::k3s_bundled(&client)
        .await
        .unwrap();

    // From the start: no Flux label, no release left by an earlier run on this test bed.
    let flux_ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let _ = flux_ns
        .patch(
            "flux-system",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                serde_json::json!({"metadata": {"labels": {"stackspin.net/flux-version": null}}}),
            ),
        )
        .await;
    for (ns, name) in [("stackspin", "stackspin"), ("stackspin-apps", "hello")] {
        let api: Api<HelmRelease> = Api::namespaced(client.clone(), ns);
        if api.get_opt(name).await.unwrap().is_some() {
            api.delete(name, &DeleteParams::default()).await.unwrap();
            stackspin_testbed::wait_for_absent(&api, name, std::time::Duration::from_secs(120))
                .await
                .unwrap();
        }
    }

    let started = Instant::now();
    let report = ok_json(
        &run(
            d,
            &[
                "--json",
                "install",
                "test.example",
                "--kubeconfig",
                &kubeconfig,
            ],
            &env,
        )
        .await,
    );
    let wall = started.elapsed();
    eprintln!(
        "install --kubeconfig from the start took {:.1} s: {report}",
        wall.as_secs_f64()
    );
    assert!(step(&report, "Flux").starts_with("applied "), "{report}");
    assert_eq!(step(&report, "preflight"), "passed");
    assert_eq!(step(&report, "waiting for the core"), "ready");
    let secrets = std::fs::read_to_string(d.join("clusters/test.example/secrets.toml")).unwrap();
    let password = report["credentials"]["password"].as_str().unwrap();
    assert!(password.len() >= 16 && secrets.contains(password));
    assert_eq!(
        report["credentials"]["login_url"],
        "https://dashboard.test.example/"
    );
    let kept = d.join("clusters/test.example/kubeconfig.yaml");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&kept).unwrap().permissions())
            & 0o777,
        0o600
    );
    let log = std::fs::read_to_string(d.join("clusters/test.example/install.log")).unwrap();
    assert!(log.contains("done: platform"), "{log}");

    // The hand-over for the control plane in the cluster, and the control plane's release.
    let core_secrets: Api<Secret> = Api::namespaced(client.clone(), "stackspin");
    assert!(
        core_secrets
            .get_opt("stackspin-handover")
            .await
            .unwrap()
            .is_some()
    );
    let releases: Api<HelmRelease> = Api::namespaced(client.clone(), "stackspin");
    let version = |r: HelmRelease| r.spec.chart.unwrap().spec.version.unwrap();
    assert_eq!(version(releases.get("stackspin").await.unwrap()), "0.1.0");

    // Again: nothing changes.
    let again = ok_json(
        &run(
            d,
            &[
                "--json",
                "install",
                "test.example",
                "--kubeconfig",
                &kubeconfig,
            ],
            &env,
        )
        .await,
    );
    assert!(step(&again, "platform").ends_with(", 0 changed"), "{again}");
    assert!(
        step(&again, "certificate issuers").ends_with(", 0 changed"),
        "{again}"
    );

    // The commands that read a cluster.
    let creds = ok_json(&run(d, &["--json", "admin-credentials", "test.example"], &env).await);
    assert_eq!(creds["password"], password);
    assert_eq!(creds["email"], "admin@example.test");
    let one = run(
        d,
        &["secrets", "test.example", "stackspin.setup_password"],
        &env,
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&one.stdout).trim(), password);
    let info = ok_json(&run(d, &["--json", "info", "test.example"], &env).await);
    assert_eq!(info["flux"], "v2.9.0");
    let core = info["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "stackspin")
        .unwrap()
        .clone();
    assert_eq!(core["ready"], true, "{info}");
    assert_eq!(core["url"], "https://dashboard.test.example/");

    // A changed cluster.toml (outgoing mail now) reaches the apps on the next run.
    let toml = std::fs::read_to_string(&toml_path).unwrap();
    std::fs::write(
        &toml_path,
        format!(
            "{toml}\noutgoing_mail_enabled = true\noutgoing_mail_from_address = \"noreply@test.example\"\noutgoing_mail_smtp_host = \"smtp.test.example\"\n"
        ),
    )
    .unwrap();
    let changed = ok_json(
        &run(
            d,
            &[
                "--json",
                "install",
                "test.example",
                "--kubeconfig",
                &kubeconfig,
            ],
            &env,
        )
        .await,
    );
    assert!(
        !step(&changed, "platform").ends_with(", 0 changed"),
        "{changed}"
    );
    let cluster_secret = core_secrets
        .get("stackspin-stackspin-secret-values")
        .await
        .unwrap();
    let text = String::from_utf8(cluster_secret.data.unwrap()["values.yaml"].0.clone()).unwrap();
    assert!(
        text.contains("smtp.test.example"),
        "the control plane's settings: {text}"
    );

    // A newer Stackspin (here: a newer catalog) upgrades what it installed. The first run is
    // interrupted while the core is not ready yet and says to run again; the next one resumes.
    write_catalog(&catalog, &repo.url, "0.2.0");
    let out = run(
        d,
        &[
            "install",
            "test.example",
            "--kubeconfig",
            &kubeconfig,
            "--timeout",
            "0",
        ],
        &env,
    )
    .await;
    one_line_error(&out, "run install again");
    let resumed = ok_json(
        &run(
            d,
            &[
                "--json",
                "install",
                "test.example",
                "--kubeconfig",
                &kubeconfig,
            ],
            &env,
        )
        .await,
    );
    assert!(
        step(&resumed, "platform").ends_with(", 0 changed"),
        "{resumed}"
    );
    assert_eq!(step(&resumed, "waiting for the core"), "ready");
    assert_eq!(version(releases.get("stackspin").await.unwrap()), "0.2.0");
    let ready = releases.get("stackspin").await.unwrap();
    assert_eq!(
        ready
            .status
            .unwrap()
            .history
            .first()
            .map(|h| h.chart_version.clone()),
        Some("0.2.0".to_string())
    );
    // What a person sees (kept in the test log for the record).
    let text = run(d, &["install", "test.example"], &env).await;
    assert!(text.status.success());
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&text.stderr),
        String::from_utf8_lossy(&text.stdout)
    );
    eprintln!("install, as printed:\n{shown}");
    assert!(
        shown.contains("Log in at https://dashboard.test.example/"),
        "{shown}"
    );
}
