//! `stackspin test CLUSTER` against the test bed: a cluster whose app was installed by a real
//! `serve` (the operator, Flux and the `hello` chart from a repository on loopback) passes;
//! then each failure kind is reported as such, with what to do and a non-zero exit.
//!
//! Stand-ins, named: cert-manager cannot run here (no pods), so the test writes the
//! Certificates and the statuses cert-manager would; DNS and HTTPS to the cluster's hosts
//! cannot be reached from the test bed (`--skip dns,tls`); the Dashboard is `serve` on
//! loopback (`--dashboard-url`).
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stackspin_testbed::platform::{app_catalog_files, install_platform_crds, kubectl, shared_crds};
use stackspin_testbed::{ChartRepo, ChartVersion, TestBed};
use support::{Server, Site, assert_one_line_error};

fn certificate(bed: &TestBed, name: &str, host: &str, status: Value) {
    let cert = json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": name, "namespace": "stackspin-apps"},
        "spec": {"secretName": name, "dnsNames": [host],
                 "issuerRef": {"name": "letsencrypt-production", "kind": "ClusterIssuer"}},
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cert.json");
    std::fs::write(&file, cert.to_string()).unwrap();
    kubectl(bed, &["apply", "-f", file.to_str().unwrap()]).unwrap();
    kubectl(
        bed,
        &[
            "patch",
            "certificate",
            name,
            "-n",
            "stackspin-apps",
            "--subresource=status",
            "--type=merge",
            "-p",
            &json!({"status": status}).to_string(),
        ],
    )
    .unwrap();
}

fn ready_until(days: i64) -> Value {
    let t = chrono::Utc::now() + chrono::Duration::days(days);
    json!({"conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
        "message": "Certificate is up to date and has not expired"}],
        "notAfter": t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)})
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn check<'a>(r: &'a Value, kind: &str) -> &'a Value {
    r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == kind)
        .unwrap_or_else(|| panic!("no {kind} check in {r}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stackspin_test_passes_and_reports_each_failure_kind() {
    let bed = TestBed::get().unwrap();
    install_platform_crds(bed).unwrap();
    let crds = shared_crds().unwrap().join("cert-manager");
    for file in [
        "cert-manager.io_certificates.yaml",
        "acme.cert-manager.io_challenges.yaml",
    ] {
        kubectl(
            bed,
            &[
                "apply",
                "--server-side",
                "-f",
                crds.join(file).to_str().unwrap(),
            ],
        )
        .unwrap();
    }
    kubectl(
        bed,
        &[
            "wait",
            "--for=condition=Established",
            "crd/certificates.cert-manager.io",
            "--timeout=60s",
        ],
    )
    .unwrap();
    let repo = ChartRepo::serve(&[ChartVersion::new("hello", "0.1.0")])
        .await
        .unwrap();
    let site = Site::sqlite();
    let catalog = site.dir.path().join("catalog");
    for (path, text) in app_catalog_files(&repo.url, "hello") {
        let file = catalog.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    let toml = "domain = \"example.test\"\nip_address = \"192.0.2.10\"\n\
                admin_email = \"admin@example.test\"\n";
    let folder = site.dir.path().join("clusters/example.test");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("cluster.toml"), toml).unwrap();
    std::fs::copy(bed.kubeconfig(), folder.join("kubeconfig.yaml")).unwrap();
    let catalog = catalog.to_str().unwrap();
    let server = Server::start_with(
        &site,
        "admin@example.test",
        &[],
        &[
            "--kubeconfig",
            bed.kubeconfig().to_str().unwrap(),
            "--cluster-config",
            folder.join("cluster.toml").to_str().unwrap(),
            "--catalog",
            catalog,
            "--operator-interval",
            "1",
        ],
    );
    site.json(&["app", "install", "hello", "--catalog", catalog]);
    let deadline = Instant::now() + Duration::from_secs(180);
    while site.json(&["app", "status", "hello"])["state"] != "ready" {
        assert!(Instant::now() < deadline, "hello did not become ready");
        std::thread::sleep(Duration::from_millis(400));
    }
    certificate(bed, "hello-tls", "hello.example.test", ready_until(60));
    let site_test = |dashboard: &str| {
        let mut c = site.cmd(&[
            "--json",
            "--catalog",
            catalog,
            "test",
            "example.test",
            "--skip",
            "dns,tls",
            "--dashboard-url",
            dashboard,
        ]);
        c.output().unwrap()
    };

    // All well.
    let out = site_test(&server.url(""));
    let r = report(&out);
    assert!(
        out.status.success(),
        "{r}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(r["passed"], true);
    assert_eq!(check(&r, "release")["detail"], "ready at 0.1.0");
    assert_eq!(check(&r, "node")["ok"], true);
    assert_eq!(check(&r, "certificate")["detail"], "valid for 59 more days");
    assert_eq!(check(&r, "sso")["ok"], true, "{r}");
    let mut human = site.cmd(&[
        "--catalog",
        catalog,
        "test",
        "example.test",
        "--skip",
        "dns,tls",
        "--dashboard-url",
        &server.url(""),
    ]);
    let shown = String::from_utf8_lossy(&human.output().unwrap().stdout).into_owned();
    eprintln!("stackspin test, as printed:\n{shown}");
    assert!(shown.contains("✔  sso"), "{shown}");

    // With an admin token: a throw-away user signs in through the app's own client, then, as
    // an admin of the app, redeems the code with the client secret the app reads from its
    // Secret and gets what the app maps admins from (here `groups` in UserInfo); the user is
    // deleted after.
    let token = site.json(&[
        "api-token",
        "create",
        "selftest",
        "--as",
        "admin@example.test",
    ])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let people = || site.json(&["user", "list"]).as_array().unwrap().len();
    let before = people();
    let with_token = |dashboard: &str| {
        site.cmd(&[
            "--json",
            "--catalog",
            catalog,
            "test",
            "example.test",
            "--skip",
            "dns,tls",
            "--dashboard-url",
            dashboard,
            "--token",
            &token,
        ])
        .output()
        .unwrap()
    };
    let out = with_token(&server.url(""));
    let r = report(&out);
    assert!(out.status.success(), "{r}");
    let sso = check(&r, "sso");
    assert!(
        sso["detail"]
            .as_str()
            .unwrap()
            .starts_with("a throw-away user signed in"),
        "{sso}"
    );
    let admin = check(&r, "sso-admin");
    assert_eq!(admin["ok"], true, "{admin}");
    assert_eq!(
        admin["detail"],
        "an admin of hello gets groups [\"admin\"] in UserInfo, which hello maps to its admin role"
    );
    assert_eq!(people(), before, "the throw-away user is deleted");

    // A certificate that is not being renewed.
    certificate(bed, "hello-tls", "hello.example.test", ready_until(5));
    let out = site_test(&server.url(""));
    assert_one_line_error(&out, "1 of");
    let c = check(&report(&out), "certificate").clone();
    assert_eq!(c["ok"], false);
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .starts_with("expires in 4 days and is not being renewed"),
        "{c}"
    );
    // None at all.
    kubectl(
        bed,
        &["delete", "certificate", "hello-tls", "-n", "stackspin-apps"],
    )
    .unwrap();
    let c = check(&report(&site_test(&server.url(""))), "certificate").clone();
    assert_eq!(
        (c["ok"].clone(), c["detail"].clone()),
        (json!(false), json!("no certificate"))
    );
    certificate(bed, "hello-tls", "hello.example.test", ready_until(60));

    // The client secret the app holds no longer matches the registered one (changed by hand
    // while the operator is stopped, so it does not put it back): signing in still works, the
    // app's code redemption does not, and the admin check says so.
    server.stop();
    let plain = Server::start(&site, "admin@example.test");
    kubectl(
        bed,
        &[
            "patch",
            "secret",
            "stackspin-hello-secrets",
            "-n",
            "stackspin-apps",
            "--type",
            "merge",
            "-p",
            r#"{"stringData":{"CLIENT_SECRET":"not-the-registered-secret"}}"#,
        ],
    )
    .unwrap();
    let out = with_token(&plain.url(""));
    assert_one_line_error(&out, "checks failed on example.test");
    let r = report(&out);
    assert_eq!(check(&r, "sso")["ok"], true, "{r}");
    let admin = check(&r, "sso-admin");
    assert_eq!(admin["ok"], false, "{admin}");
    assert!(
        admin["detail"]
            .as_str()
            .unwrap()
            .starts_with("the app's client secret was refused"),
        "{admin}"
    );
    assert_eq!(
        people(),
        before,
        "the throw-away user is deleted after a failure too"
    );
    plain.stop();

    // Single sign-on refused: the app's client is gone (removed by hand while the operator is
    // stopped, so it does not put it back).
    site.json(&["app", "remove", "hello"]);
    let plain = Server::start(&site, "admin@example.test");
    let out = site_test(&plain.url(""));
    assert_one_line_error(&out, "checks failed on example.test");
    let c = check(&report(&out), "sso").clone();
    assert_eq!(c["ok"], false);
    assert!(c["detail"].as_str().unwrap().starts_with("refused:"), "{c}");
    assert!(
        c["todo"]
            .as_str()
            .unwrap()
            .contains("install the app again"),
        "{c}"
    );

    // A release that cannot become ready: a chart version the repository does not have.
    kubectl(
        bed,
        &[
            "patch",
            "helmrelease",
            "hello",
            "-n",
            "stackspin-apps",
            "--type=merge",
            "-p",
            r#"{"spec":{"chart":{"spec":{"version":"9.9.9"}}}}"#,
        ],
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let release = loop {
        let r = report(&site_test(&plain.url("")));
        let c = check(&r, "release").clone();
        // Flux first says it is working on it (the check then reports the old version still
        // running where 9.9.9 is wanted), then why it cannot: wait for the latter.
        let detail = c["detail"].as_str().unwrap_or_default();
        if c["ok"] == false && detail.starts_with("not ready: ") && detail.contains("9.9.9") {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "the release did not fail as expected: {r}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        release["detail"]
            .as_str()
            .unwrap()
            .starts_with("not ready: "),
        "{release}"
    );
    assert!(release["todo"].as_str().is_some(), "{release}");
    let failing = site
        .cmd(&[
            "--catalog",
            catalog,
            "test",
            "example.test",
            "--skip",
            "dns,tls",
            "--dashboard-url",
            &plain.url(""),
        ])
        .output()
        .unwrap();
    assert_eq!(failing.status.code(), Some(1));
    eprintln!(
        "stackspin test with failures, as printed:\n{}{}",
        String::from_utf8_lossy(&failing.stdout),
        String::from_utf8_lossy(&failing.stderr)
    );

    // Only one app's checks; an unknown app is refused.
    assert_one_line_error(
        &site
            .cmd(&[
                "--catalog",
                catalog,
                "test",
                "example.test",
                "--app",
                "ghost",
            ])
            .output()
            .unwrap(),
        "ghost is not in the catalog",
    );
    drop(plain);
    kubectl(
        bed,
        &["delete", "certificate", "hello-tls", "-n", "stackspin-apps"],
    )
    .ok();
    kubectl(
        bed,
        &[
            "delete",
            "helmrelease",
            "hello",
            "-n",
            "stackspin-apps",
            "--wait=false",
        ],
    )
    .ok();
}
