//! Alerts end to end: the catalog's Alertmanager configuration, checked by amtool and run by
//! a real Alertmanager (built from its Go module by the test bed), delivers to serve's
//! webhook; serve keeps what fires for the Status page and mails the admin once per episode,
//! in the rules' plain words, and again when it is over.
//!
//! Stand-ins: alerts are posted to Alertmanager's API as Prometheus would post them (no
//! Prometheus evaluates rules here; promtool unit-tests the rules themselves), and the
//! configuration's webhook address, token file and waiting times are pointed at this test.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use stackspin_domain::settings::RawSettings;

const TOKEN: &str = "test-alerts-token-0123456789abcdef0123456789abcdef";

/// The monitoring app's values as the platform renders them for a cluster.
fn monitoring_values() -> Value {
    let catalog = stackspin_catalog::Catalog::builtin().unwrap();
    let config = stackspin_platform::RawClusterConfig {
        domain: Some("example.test".into()),
        ip_address: Some("192.0.2.10".into()),
        admin_email: Some("admin@example.test".into()),
        apps: Some(vec!["monitoring".into()]),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let names: Vec<String> = stackspin_platform::placements(catalog, &config)
        .unwrap()
        .iter()
        .map(|p| p.entry.name.clone())
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut secrets = stackspin_platform::GeneratedSecrets::default();
    secrets
        .ensure(catalog, &refs, |len| "s".repeat(len))
        .unwrap();
    let objects = stackspin_platform::desired_state(
        catalog,
        &config,
        &secrets,
        &stackspin_platform::Tuning::default(),
    )
    .unwrap();
    let cm = objects
        .iter()
        .find(|o| o.kind() == "ConfigMap" && o.name() == "stackspin-monitoring-values")
        .unwrap()
        .to_value();
    serde_saphyr::from_str(cm["data"]["values.yaml"].as_str().unwrap()).unwrap()
}

struct Alertmanager {
    url: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bin(name: &str) -> std::path::PathBuf {
    stackspin_testbed::TestBed::bin(name)
}

/// Checks the catalog's configuration with amtool, then runs Alertmanager with it, delivering
/// to `webhook`.
async fn alertmanager(webhook: &str) -> Alertmanager {
    let values = monitoring_values();
    let mut config = values["alertmanager"]["config"].clone();
    let secret = values["alertmanager"]["alertmanagerSpec"]["secrets"][0]
        .as_str()
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();

    // As the catalog has it (the token file is where the Secret is mounted in the pod).
    let receiver = &config["receivers"][1]["webhook_configs"][0];
    assert_eq!(
        receiver["http_config"]["authorization"]["credentials_file"],
        format!("/etc/alertmanager/secrets/{secret}/alerts-token")
    );
    assert_eq!(
        receiver["url"],
        "http://stackspin.stackspin.svc:9090/alertmanager"
    );
    std::fs::write(dir.path().join("catalog.yaml"), config.to_string()).unwrap();
    let check = std::process::Command::new(bin("amtool"))
        .args(["check-config", "catalog.yaml"])
        .current_dir(dir.path())
        .output()
        .expect("amtool runs (the test bed builds it: scripts/testbed build)");
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // Pointed at this test: serve's webhook, a token file here, and seconds, not minutes.
    std::fs::write(dir.path().join("token"), TOKEN).unwrap();
    let hook = &mut config["receivers"][1]["webhook_configs"][0];
    hook["url"] = json!(webhook);
    hook["http_config"]["authorization"]["credentials_file"] =
        json!(dir.path().join("token").display().to_string());
    config["route"]["group_wait"] = json!("1s");
    config["route"]["group_interval"] = json!("1s");
    std::fs::write(dir.path().join("test.yaml"), config.to_string()).unwrap();

    let port = support::free_port();
    let mut child = std::process::Command::new(bin("alertmanager"))
        .arg(format!(
            "--config.file={}",
            dir.path().join("test.yaml").display()
        ))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        // One instance: no gossip port.
        .arg("--cluster.listen-address=")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if reqwest::get(format!("{url}/-/ready"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Alertmanager {
                url,
                child,
                _dir: dir,
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "alertmanager did not start: {}",
        std::fs::read_to_string(dir.path().join("log")).unwrap_or_default()
    );
}

/// Posts alerts to Alertmanager as Prometheus does.
async fn post(am: &Alertmanager, alerts: Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v2/alerts", am.url))
        .json(&alerts)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

fn alert(name: &str, severity: &str, extra: Value, ends: Option<String>) -> Value {
    let mut labels = json!({"alertname": name, "severity": severity});
    for (k, v) in extra.as_object().unwrap() {
        labels[k] = v.clone();
    }
    let mut a = json!({
        "labels": labels,
        "annotations": {
            "summary": format!("{name} summary"),
            "description": format!("{name} description"),
            "action": format!("{name} action"),
            "dashboard_url": "https://dashboard.example.test/admin/apps",
        },
        "startsAt": "2026-12-04T10:00:00Z",
    });
    if let Some(e) = ends {
        a["endsAt"] = json!(e);
    }
    a
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    for _ in 0..150 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn alertmanager_delivers_to_serve_which_mails_each_episode_once() {
    let smtp = support::SmtpServer::start().await;
    let catalog = Arc::new(stackspin_catalog::Catalog::builtin().unwrap().clone());
    let platform = stackspin_web::platform::Platform {
        catalog,
        cluster: Some(stackspin_web::platform::Cluster {
            domain: "example.test".into(),
            admin_email: "admin@example.test".into(),
            wake: Arc::new(tokio::sync::Notify::new()),
            backups: None,
            operator: None,
        }),
    };
    let p = support::start_full(
        stackspin_storage::testing::TestDb::sqlite().await,
        RawSettings {
            metrics_listen: Some("127.0.0.1:0".into()),
            ..smtp.settings()
        },
        support::fast_options(),
        platform,
    )
    .await;
    let webhook = p
        .metrics
        .clone()
        .unwrap()
        .replace("/metrics", "/alertmanager");

    // Before monitoring is installed there is no token, so nothing is accepted.
    let refused = reqwest::Client::new()
        .post(&webhook)
        .bearer_auth(TOKEN)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    p.store
        .add_generated_secrets(&[("monitoring".into(), "alerts_token".into(), TOKEN.into())])
        .await
        .unwrap();
    let wrong = reqwest::Client::new()
        .post(&webhook)
        .bearer_auth("not-the-token")
        .body(r#"{"version":"4","alerts":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let am = alertmanager(&webhook).await;
    // Routed nowhere: the always-firing pipeline check and the install marker, which fires
    // from the start of an install (so before the noise it holds back).
    post(
        &am,
        json!([
            alert("Watchdog", "none", json!({}), None),
            alert("StackspinInstalling", "none", json!({}), None),
        ]),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    post(
        &am,
        json!([
            alert(
                "StackspinAppNotReady",
                "warning",
                json!({"app": "wekan"}),
                None
            ),
            // Quiet while StackspinInstalling fires.
            alert(
                "KubeJobCompletion",
                "warning",
                json!({"namespace": "stackspin-apps", "job_name": "nc-cron"}),
                None
            ),
        ]),
    )
    .await;

    let store = p.store.clone();
    let since = chrono::Utc::now() - chrono::Duration::hours(2);
    wait_until("serve has the firing alert", || {
        let store = store.clone();
        async move { !store.firing_alerts(since).await.unwrap().is_empty() }
    })
    .await;
    let mail = smtp.wait_for("admin@example.test").await;
    assert!(
        mail.contains("Subject: Stackspin needs attention: StackspinAppNotReady summary"),
        "{mail}"
    );
    assert!(mail.contains("StackspinAppNotReady description"), "{mail}");
    assert!(
        mail.contains("What to do: StackspinAppNotReady action"),
        "{mail}"
    );
    assert!(
        mail.contains("https://dashboard.example.test/admin/apps"),
        "{mail}"
    );

    // Alertmanager delivers again (a repeat, or another group): still one mail.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let firing = p.store.firing_alerts(since).await.unwrap();
    let names: Vec<&str> = firing.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["StackspinAppNotReady"], "{firing:?}");
    assert_eq!(firing[0].labels["app"], "wekan");
    assert_eq!(smtp.messages().len(), 1);

    // Over: a second mail says so, and nothing fires any more.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    post(
        &am,
        json!([alert(
            "StackspinAppNotReady",
            "warning",
            json!({"app": "wekan"}),
            Some(now)
        )]),
    )
    .await;
    wait_until("the alert resolves", || {
        let store = store.clone();
        async move { store.firing_alerts(since).await.unwrap().is_empty() }
    })
    .await;
    wait_until("the second mail arrives", || {
        let n = smtp.messages().len();
        async move { n == 2 }
    })
    .await;
    assert!(
        smtp.messages()
            .iter()
            .any(|m| m.contains("Subject: Resolved: StackspinAppNotReady summary")),
        "{:?}",
        smtp.messages()
    );

    // A delivery that is not Alertmanager's is refused with a reason.
    let bad = reqwest::Client::new()
        .post(&webhook)
        .bearer_auth(TOKEN)
        .body(r#"{"version":"3","alerts":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("version 3"));
}

/// The Status page and `GET /api/v1/status` say what needs the admin: a failed app, a
/// certificate not issued with its ACME reason, a node under memory pressure and a firing
/// alert; with none of it, that everything works.
#[tokio::test]
async fn the_status_page_and_api_show_what_needs_attention() {
    use stackspin_domain::status::{CertificateStatus, NodeStatus};
    use stackspin_storage::{AppState, IncomingAlert, ReleaseStatus};
    let catalog = Arc::new(stackspin_catalog::Catalog::builtin().unwrap().clone());
    let platform = stackspin_web::platform::Platform {
        catalog,
        cluster: Some(stackspin_web::platform::Cluster {
            domain: "example.test".into(),
            admin_email: "admin@example.test".into(),
            wake: Arc::new(tokio::sync::Notify::new()),
            backups: None,
            operator: None,
        }),
    };
    let p = support::start_full(
        stackspin_storage::testing::TestDb::sqlite().await,
        RawSettings::default(),
        support::fast_options(),
        platform,
    )
    .await;
    p.user("root@example.org", true).await;
    let b = support::browser();
    support::sign_in(&p, &b, "root@example.org", support::PASSWORD).await;
    let now = chrono::Utc::now();
    let node = |problems: Vec<String>| NodeStatus {
        name: "node-1".into(),
        ready: true,
        problems,
        cpu_cores: 4.0,
        memory_bytes: 8 << 30,
        disk_bytes: 160 << 30,
        cpu_used_cores: Some(1.0),
        memory_used_bytes: Some(6 << 30),
        disk: Some(stackspin_domain::status::DiskUsage {
            size_bytes: 200_000_000_000,
            available_bytes: 50_000_000_000,
        }),
    };
    p.store
        .record_observation("nodes", &serde_json::to_value([node(vec![])]).unwrap(), now)
        .await
        .unwrap();
    p.store
        .record_observation("certificates", &json!([]), now)
        .await
        .unwrap();
    p.store
        .request_install("wekan", None, true, "7.0.0")
        .await
        .unwrap();
    let ready = ReleaseStatus {
        state: AppState::Ready,
        reason: String::new(),
        running_version: Some("7.0.0".into()),
        latest_version: None,
    };
    p.store.record_app_status("wekan", &ready).await.unwrap();

    let page = b.get(p.url("/admin/status")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Everything is working."), "{html}");
    assert!(html.contains("4 cores, 25% used"), "{html}");
    assert!(html.contains("8.6 GB, 75% used"), "{html}");
    assert!(
        html.contains("200.0 GB, 75% used"),
        "disk from Prometheus: {html}"
    );
    assert!(!html.contains("disk-usage-unknown"), "{html}");
    assert!(!html.contains("metrics-server"), "usage is known: {html}");

    // Now trouble on every front.
    p.store
        .record_observation(
            "nodes",
            &serde_json::to_value([node(vec!["MemoryPressure".into()])]).unwrap(),
            now,
        )
        .await
        .unwrap();
    let cert = CertificateStatus {
        namespace: "stackspin-apps".into(),
        name: "wekan-tls".into(),
        hosts: vec!["wekan.example.test".into()],
        ready: false,
        not_after: None,
        problem: Some(
            "HTTP-01 challenge for wekan.example.test is invalid: 404 from the server".into(),
        ),
    };
    p.store
        .record_observation("certificates", &serde_json::to_value([cert]).unwrap(), now)
        .await
        .unwrap();
    p.store
        .record_app_status(
            "wekan",
            &ReleaseStatus {
                state: AppState::Failed,
                reason: "install retries exhausted".into(),
                ..ready
            },
        )
        .await
        .unwrap();
    p.store
        .record_alerts(
            &[IncomingAlert {
                fingerprint: "f".into(),
                name: "StackspinDiskFillingUp".into(),
                severity: "critical".into(),
                summary: "The server's disk is filling up (/)".into(),
                description: "Less than 10% of / is free.".into(),
                action: "Give the server a larger disk.".into(),
                link: "https://dashboard.example.test/admin/status".into(),
                labels: Default::default(),
                firing: true,
                starts_at: now,
                ends_at: None,
            }],
            now,
            &|_, _| None,
        )
        .await
        .unwrap();

    let html = b
        .get(p.url("/admin/status"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("4 things need attention."), "{html}");
    assert!(html.contains("MemoryPressure"), "{html}");
    assert!(html.contains("Failed"), "{html}");
    assert!(html.contains("install retries exhausted"), "{html}");
    assert!(html.contains("Not issued"), "{html}");
    assert!(html.contains("404 from the server"), "{html}");
    assert!(
        html.contains("The server&#39;s disk is filling up (/)"),
        "{html}"
    );
    assert!(html.contains("Give the server a larger disk."), "{html}");

    let api = b.get(p.url("/api/v1/status")).send().await.unwrap();
    assert_eq!(api.status(), 200);
    let v: Value = api.json().await.unwrap();
    assert_eq!(v["attention"], 4);
    assert_eq!(v["connected"], true);
    assert_eq!(v["nodes"][0]["problems"][0], "MemoryPressure");
    assert_eq!(v["apps"][0]["state"], "failed");
    assert_eq!(v["certificates"][0]["verdict"], "not_issued");
    assert_eq!(v["alerts"][0]["severity"], "critical");
    assert_eq!(v["backups"]["configured"], false);

    // Not for people without the admin role.
    p.user("ada@example.org", false).await;
    let other = support::browser();
    support::sign_in(&p, &other, "ada@example.org", support::PASSWORD).await;
    assert_eq!(
        other
            .get(p.url("/admin/status"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
}
