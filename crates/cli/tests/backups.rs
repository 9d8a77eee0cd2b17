//! `stackspin backup` and `stackspin restore`, and their API, against `stackspin serve`
//! running its operator on the test bed, with the real Velero server and AWS plugin (built
//! from their Go modules) writing to a real S3 API on loopback (moto).
//!
//! Stand-ins, named: two apps played by the `hello` chart from a repository on loopback (the
//! real chart repositories cannot be reached); pods never run, so there is no node agent and
//! `serve` makes backups of objects and claims without volume data (the hidden
//! `--backup-objects-only`), and no volume content can be compared after a restore.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stackspin_testbed::platform::{app_catalog_files, install_platform_crds, kubectl};
use stackspin_testbed::velero::Velero;
use stackspin_testbed::{ChartRepo, ChartVersion, TestBed};
use support::{Server, Site};

fn claim_mark(bed: &TestBed, claim: &str) -> (String, String) {
    let out = kubectl(
        bed,
        &[
            "get",
            "pvc",
            claim,
            "-n",
            "stackspin-apps",
            "-o",
            "jsonpath={.metadata.annotations.test\\.stackspin\\.net/mark} {.metadata.uid}",
        ],
    )
    .unwrap();
    let (mark, uid) = out.split_once(' ').unwrap_or((&out, ""));
    (mark.to_string(), uid.to_string())
}

fn set_mark(bed: &TestBed, claim: &str, value: &str) {
    kubectl(
        bed,
        &[
            "annotate",
            "--overwrite",
            "pvc",
            claim,
            "-n",
            "stackspin-apps",
            &format!("test.stackspin.net/mark={value}"),
        ],
    )
    .unwrap();
}

fn wait_json(site: &Site, args: &[&str], what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let v = site.json(args);
        if done(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {v}"
        );
        std::thread::sleep(Duration::from_millis(400));
    }
}

fn start(site: &Site, config: &str, catalog: &str, kubeconfig: &str) -> Server {
    Server::start_with(
        site,
        "admin@example.test",
        &[],
        &[
            "--kubeconfig",
            kubeconfig,
            "--cluster-config",
            config,
            "--catalog",
            catalog,
            "--operator-interval",
            "1",
            "--backup-objects-only",
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_and_restores_through_the_command_and_the_api() {
    let bed = TestBed::get().unwrap();
    install_platform_crds(bed).unwrap();
    let velero = Velero::start(bed).await.unwrap();
    let repo = ChartRepo::serve(&[ChartVersion::new("hello", "0.1.0")])
        .await
        .unwrap();
    let site = Site::sqlite();
    let catalog = site.dir.path().join("catalog");
    let mut files = app_catalog_files(&repo.url, "hello");
    files.extend(app_catalog_files(&repo.url, "other"));
    for (path, text) in files {
        let file = catalog.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    let config = site.dir.path().join("cluster.toml");
    std::fs::write(
        &config,
        format!(
            "domain = \"example.test\"\nip_address = \"192.0.2.10\"\n\
             admin_email = \"admin@example.test\"\nbackup_drill_days = 0\n{}",
            velero.cluster_toml()
        ),
    )
    .unwrap();
    let (config, catalog) = (config.to_str().unwrap(), catalog.to_str().unwrap());
    let kubeconfig = bed.kubeconfig().to_str().unwrap();
    let server = start(&site, config, catalog, kubeconfig);

    for app in ["hello", "other"] {
        site.json(&["app", "install", app, "--catalog", catalog]);
    }
    for app in ["hello", "other"] {
        wait_json(
            &site,
            &["app", "status", app],
            "the apps to be ready",
            |v| v["state"] == "ready" || v["state"] == "update_pending",
        );
    }
    set_mark(bed, "hello-data", "backed-up");
    set_mark(bed, "other-data", "backed-up");

    // Back up now, and wait: the backup lands in the bucket.
    let b = site.json(&["backup", "create", "--wait"]);
    assert_eq!(b["phase"], "completed", "{b}");
    assert_eq!(b["apps"], json!(["hello", "other"]));
    let name = b["name"].as_str().unwrap().to_string();
    let keys = velero.objects().unwrap();
    assert!(
        keys.contains(&format!("cluster/backups/{name}/{name}.tar.gz")),
        "{keys:?}"
    );
    let listed = site.json(&["backup", "list"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == name.as_str())
    );
    let text = site.run(&["backup", "show", &name]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("State:    completed"),
        "{text:?}"
    );

    set_mark(bed, "hello-data", "changed");
    set_mark(bed, "other-data", "changed");
    let (_, other_uid) = claim_mark(bed, "other-data");

    // Refusals change nothing and say why in one line.
    let out = site.run(&["restore", "hello", "--from", "no-such-backup"]);
    support::assert_one_line_error(&out, "no backup named no-such-backup");
    let out = site.run(&["restore", "ghost", "--from", &name]);
    support::assert_one_line_error(&out, "ghost is not installed");
    let out = site.run(&["restore", "stackspin", "--from", &name]);
    support::assert_one_line_error(&out, "Restoring the control plane");

    let nothing: Value = site.json(&["restore", "list"]);
    assert_eq!(nothing, json!([]), "a refused restore records nothing");
    assert_eq!(
        site.json(&["backup", "list"]).as_array().unwrap().len(),
        1,
        "and makes no backup"
    );

    // Start a restore, and kill `serve` as soon as the restore has removed the app's data.
    let started = Instant::now();
    let r = site.json(&["restore", "hello", "--from", &name, "--no-wait"]);
    let id = r["id"].as_i64().unwrap().to_string();
    // A second restore while this one runs is refused.
    let out = site.run(&["restore", "other", "--from", &name]);
    support::assert_one_line_error(&out, "is still running");
    wait_json(
        &site,
        &["restore", "status", &id],
        "the restore to reach its restore step",
        |v| v["step"] == "restore" || v["state"] != "running",
    );
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);
    let mid = site.json(&["restore", "status", &id]);
    assert_eq!(mid["state"], "running", "{mid}");

    // A new `serve` picks the restore up where it stopped; the command follows it to the end.
    let server = start(&site, config, catalog, kubeconfig);
    let out = site.run(&["restore", "status", &id, "--follow"]);
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let took = started.elapsed();
    eprintln!("restore through the command took {took:?}; it printed:\n{printed}");
    assert!(out.status.success(), "{printed} {:?}", out.stderr);
    for step in [
        "1/6 safety backup",
        "2/6 stop the app",
        "3/6 remove its data",
        "4/6 restore",
        "5/6 start the app",
        "6/6 wait until ready",
    ] {
        assert!(printed.contains(step), "{step} missing: {printed}");
    }
    assert!(printed.contains("Restored hello from"), "{printed}");
    let done = site.json(&["restore", "status", &id]);
    let safety = done["safety_backup"].as_str().unwrap().to_string();
    let sb = site.json(&["backup", "show", &safety]);
    assert_eq!(sb["phase"], "completed");
    assert_eq!(sb["reason"], "safety");
    assert_eq!(claim_mark(bed, "hello-data").0, "backed-up");
    assert_eq!(
        claim_mark(bed, "other-data"),
        ("changed".to_string(), other_uid.clone()),
        "the other app is untouched"
    );

    // The same through the API, for the other app.
    let token = site.json(&[
        "api-token",
        "create",
        "backups",
        "--as",
        "admin@example.test",
    ]);
    let token = token["token"].as_str().unwrap().to_string();
    let http = reqwest::Client::new();
    let api = |path: &str| server.url(&format!("/api/v1{path}"));
    let listed: Value = http
        .get(api("/backups"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["store"]["configured"], true, "{listed}");
    let missing = http
        .post(api("/restores"))
        .bearer_auth(&token)
        .json(&json!({"app": "other", "from": "no-such-backup"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let started = http
        .post(api("/restores"))
        .bearer_auth(&token)
        .json(&json!({"app": "other", "from": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let started: Value = started.json().await.unwrap();
    let busy = http
        .post(api("/restores"))
        .bearer_auth(&token)
        .json(&json!({"app": "hello", "from": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(busy.status(), 409);
    let busy: Value = busy.json().await.unwrap();
    assert_eq!(busy["error"], "busy", "{busy}");
    let id = started["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let finished = loop {
        let r: Value = http
            .get(api(&format!("/restores/{id}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if r["state"] != "running" {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "the API restore did not end: {r}"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
    };
    assert_eq!(finished["state"], "done", "{finished}");
    assert_eq!(claim_mark(bed, "other-data").0, "backed-up");
    assert_ne!(claim_mark(bed, "other-data").1, other_uid);
    assert!(
        finished["events"].as_array().unwrap().len() >= 6,
        "{finished}"
    );

    // Both restores are in the audit log.
    let audit = site.json(&["audit"]);
    let kinds: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"restore.start"), "{kinds:?}");
    assert!(kinds.contains(&"backup.create"), "{kinds:?}");
    server.stop();
}
