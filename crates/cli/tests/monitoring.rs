//! The control plane's chart and its monitoring: the ServiceMonitor, alerting rules and Grafana
//! dashboards it renders (with Helm built by the test bed), the rules checked and unit-tested
//! by promtool built from the Prometheus module, and the dashboards checked against what
//! Grafana and the catalog's data sources provide.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tool(name: &str) -> PathBuf {
    root().join("tests/testbed/bin").join(name)
}

/// `helm template` of charts/stackspin with these extra arguments, as YAML documents.
fn render(args: &[&str]) -> Vec<Value> {
    let out = Command::new(tool("helm"))
        .args(["template", "stackspin"])
        .arg(root().join("charts/stackspin"))
        .args([
            "--namespace",
            "stackspin",
            "--set",
            "host=dashboard.example.test",
        ])
        .args(args)
        .output()
        .expect("helm runs (the test bed builds it: scripts/testbed build)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split("\n---")
        .filter_map(|doc| serde_saphyr::from_str::<Value>(doc).ok())
        .filter(|v| v.is_object())
        .collect()
}

const CRDS: &[&str] = &["--api-versions", "monitoring.coreos.com/v1/PrometheusRule"];

fn kinds(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .map(|d| d["kind"].as_str().unwrap().to_string())
        .collect()
}

fn promtool(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(tool("promtool"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool runs (the test bed builds it: scripts/testbed build)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn monitoring_is_rendered_only_when_asked_and_the_crds_exist() {
    let asked = ["--set", "monitoring.enabled=true"];
    let without_crds = kinds(&render(&asked));
    assert!(!without_crds.contains("PrometheusRule"), "{without_crds:?}");
    assert!(!without_crds.contains("ServiceMonitor"));
    let not_asked = kinds(&render(CRDS));
    assert!(!not_asked.contains("PrometheusRule"), "{not_asked:?}");

    let docs = render(&[asked.as_slice(), CRDS].concat());
    let of = |kind: &str| -> Vec<&Value> { docs.iter().filter(|d| d["kind"] == kind).collect() };

    // The ServiceMonitor finds the Service by its labels and scrapes the port that serves
    // /metrics in the container.
    let sm = of("ServiceMonitor")[0];
    let service = of("Service")[0];
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&service["metadata"]["labels"][k], v, "label {k}");
    }
    let endpoint = &sm["spec"]["endpoints"][0];
    assert_eq!(endpoint["path"], "/metrics");
    let port = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == endpoint["port"])
        .expect("the Service has the scraped port");
    let container = &of("Deployment")[0]["spec"]["template"]["spec"]["containers"][0];
    let target = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == port["targetPort"])
        .expect("the container names the port");
    let listen = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "STACKSPIN_METRICS_LISTEN")
        .expect("serve is told to listen for metrics");
    assert_eq!(
        listen["value"].as_str().unwrap(),
        format!("0.0.0.0:{}", target["containerPort"])
    );

    // The rules are the checked file, with links to this cluster's Dashboard.
    let rule = of("PrometheusRule")[0];
    let text = serde_json::to_string(&rule["spec"]).unwrap();
    assert!(!text.contains("dashboard.example.org"), "{text}");
    assert!(text.contains("https://dashboard.example.test/admin/apps"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rendered.yaml"),
        serde_json::to_string(&rule["spec"]).unwrap(),
    )
    .unwrap();
    let (ok, out) = promtool(&["check", "rules", "rendered.yaml"], dir.path());
    assert!(ok && out.contains("SUCCESS: 14 rules found"), "{out}");

    // Each dashboard file becomes a ConfigMap Grafana's sidecar loads.
    let maps: Vec<&Value> = of("ConfigMap")
        .into_iter()
        .filter(|c| c["metadata"]["labels"]["grafana_dashboard"] == "1")
        .collect();
    let files: BTreeSet<String> = maps
        .iter()
        .flat_map(|c| c["data"].as_object().unwrap().keys().cloned())
        .collect();
    assert_eq!(
        files,
        BTreeSet::from(["logs.json".to_string(), "stackspin.json".to_string()])
    );
    for c in maps {
        for (_, json) in c["data"].as_object().unwrap() {
            serde_json::from_str::<Value>(json.as_str().unwrap()).expect("dashboard JSON");
        }
    }
}

/// Each alert's unit tests (tests/alerts) pass, and they can fail: the same tests against
/// rules that lost their `for:` durations report the alerts that fired too early.
#[test]
fn alerting_rules_pass_their_unit_tests_and_the_tests_can_fail() {
    let alerts = root().join("tests/alerts");
    let (ok, out) = promtool(
        &["check", "rules", "../../charts/stackspin/files/alerts.yaml"],
        &alerts,
    );
    assert!(ok, "{out}");
    let (ok, out) = promtool(&["test", "rules", "stackspin.test.yaml"], &alerts);
    assert!(ok && out.contains("SUCCESS"), "{out}");

    // A copy of the layout with the durations removed.
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("charts/stackspin/files");
    let tests = dir.path().join("tests/alerts");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::create_dir_all(&tests).unwrap();
    let rules = std::fs::read_to_string(root().join("charts/stackspin/files/alerts.yaml")).unwrap();
    let hasty: String = rules
        .lines()
        .filter(|l| !l.trim_start().starts_with("for:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(files.join("alerts.yaml"), hasty).unwrap();
    std::fs::copy(
        alerts.join("stackspin.test.yaml"),
        tests.join("stackspin.test.yaml"),
    )
    .unwrap();
    let (ok, out) = promtool(&["test", "rules", "stackspin.test.yaml"], &tests);
    assert!(!ok, "{out}");
    for alert in [
        "StackspinDown",
        "StackspinAppNotReady",
        "StackspinDiskFillingUp",
    ] {
        assert!(
            out.contains(&format!("alertname: {alert}")),
            "{alert}: {out}"
        );
    }
}

/// The Grafana in the catalog (kube-prometheus-stack 88's Grafana 13) reads these
/// dashboards: a schema version it migrates from, core panel types, panels on its 24-column
/// grid without overlap, queries only against the data sources the catalog provisions (the
/// chart's Prometheus and our Loki, by uid), variables that exist, and PromQL that
/// Prometheus parses.
#[test]
fn dashboards_are_valid_for_the_catalogs_grafana() {
    let monitoring =
        std::fs::read_to_string(root().join("catalog/monitoring/values.yaml")).unwrap();
    let monitoring: Value = serde_saphyr::from_str(&monitoring).unwrap();
    let mut uids: BTreeSet<String> = monitoring["grafana"]["additionalDataSources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["uid"].as_str().expect("a provisioned uid").to_string())
        .collect();
    // kube-prometheus-stack provisions its Prometheus with this uid
    // (grafana.sidecar.datasources.uid in its default values).
    let chart_defaults =
        std::fs::read_to_string(root().join("../shared/charts/kube-prometheus-stack/values.yaml"))
            .ok();
    if let Some(text) = chart_defaults {
        let v: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(v["grafana"]["sidecar"]["datasources"]["uid"], "prometheus");
    }
    uids.insert("prometheus".into());

    const PANEL_TYPES: &[&str] = &[
        "stat",
        "timeseries",
        "table",
        "logs",
        "text",
        "gauge",
        "bargauge",
        "state-timeline",
    ];
    let mut exprs = Vec::new();
    let dir = root().join("charts/stackspin/files/dashboards");
    let mut dashboard_uids = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let schema = d["schemaVersion"].as_u64().unwrap();
        assert!(
            (36..=41).contains(&schema),
            "{name}: schemaVersion {schema}"
        );
        let uid = d["uid"].as_str().unwrap();
        assert!(
            uid.len() <= 40 && dashboard_uids.insert(uid.to_string()),
            "{name}: uid {uid}"
        );
        assert!(!d["title"].as_str().unwrap().is_empty());
        let variables: BTreeSet<String> = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| format!("${}", v["name"].as_str().unwrap()))
            .collect();
        let mut ids = BTreeSet::new();
        let mut cells = BTreeSet::new();
        for p in d["panels"].as_array().unwrap() {
            let title = p["title"].as_str().unwrap();
            assert!(
                ids.insert(p["id"].as_u64().unwrap()),
                "{name}: duplicate id"
            );
            assert!(
                PANEL_TYPES.contains(&p["type"].as_str().unwrap()),
                "{name}: {title}"
            );
            let g = &p["gridPos"];
            let (x, y, w, h) = (
                g["x"].as_u64().unwrap(),
                g["y"].as_u64().unwrap(),
                g["w"].as_u64().unwrap(),
                g["h"].as_u64().unwrap(),
            );
            assert!(
                w > 0 && h > 0 && x + w <= 24,
                "{name}: {title} is off the grid"
            );
            for cx in x..x + w {
                for cy in y..y + h {
                    assert!(
                        cells.insert((cx, cy)),
                        "{name}: {title} overlaps another panel"
                    );
                }
            }
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{name}: {title} has no query");
            for t in targets {
                let ds = t["datasource"]["uid"].as_str().unwrap();
                assert!(
                    uids.contains(ds),
                    "{name}: {title} uses unknown data source {ds}"
                );
                let expr = t["expr"].as_str().unwrap();
                for word in expr.split(|c: char| !(c.is_alphanumeric() || c == '$' || c == '_')) {
                    if word.starts_with('$') {
                        assert!(variables.contains(word), "{name}: {title} uses {word}");
                    }
                }
                if t["datasource"]["type"] == "prometheus" {
                    exprs.push(expr.to_string());
                }
            }
        }
    }
    assert!(!exprs.is_empty());
    // promtool parses every PromQL query as a recording rule's expression.
    let rules = serde_json::json!({
        "groups": [{
            "name": "dashboard-queries",
            "rules": exprs.iter().enumerate()
                .map(|(i, e)| serde_json::json!({"record": format!("dashboard:query{i}"), "expr": e}))
                .collect::<Vec<_>>(),
        }]
    });
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("queries.yaml"), rules.to_string()).unwrap();
    let (ok, out) = promtool(&["check", "rules", "queries.yaml"], tmp.path());
    assert!(ok, "{out}");

    // And the check itself notices a broken query.
    std::fs::write(
        tmp.path().join("broken.yaml"),
        r#"{"groups":[{"name":"x","rules":[{"record":"x:y","expr":"sum(rate(foo[5m])"}]}]}"#,
    )
    .unwrap();
    let (ok, _) = promtool(&["check", "rules", "broken.yaml"], tmp.path());
    assert!(!ok);
}
