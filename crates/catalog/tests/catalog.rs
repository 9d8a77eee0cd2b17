//! The built-in catalog against the charts it configures: every entry renders, its rendered
//! values match the reviewed snapshot, and every values key it sets exists in the chart's
//! default values (or lies under a documented free-form map).
//!
//! The charts' default values are the upstream files saved under the shared reference folder
//! (`STACKSPIN_CHART_DEFAULTS`, else `../shared/charts` beside the repository, else
//! `/work/shared/charts`); our own chart's are in `charts/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use stackspin_catalog::{Catalog, Entry, MailContext, RenderContext};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn defaults_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![repo().join("charts")];
    if let Ok(dir) = std::env::var("STACKSPIN_CHART_DEFAULTS") {
        dirs.push(PathBuf::from(dir));
    }
    dirs.push(repo().join("../shared/charts"));
    dirs.push(PathBuf::from("/work/shared/charts"));
    dirs
}

fn chart_defaults(name: &str) -> Value {
    for dir in defaults_dirs() {
        let file = dir.join(name).join("values.yaml");
        if let Ok(text) = std::fs::read_to_string(&file) {
            return serde_saphyr::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        }
    }
    panic!(
        "no default values for chart {name:?} in {:?}; set STACKSPIN_CHART_DEFAULTS",
        defaults_dirs()
    );
}

fn secrets_for(entry: &Entry) -> BTreeMap<String, String> {
    entry
        .secrets
        .iter()
        .map(|s| (s.name.clone(), format!("generated-{}", s.name)))
        .collect()
}

fn mail() -> MailContext {
    MailContext {
        host: "smtp.example.org".into(),
        port: 587,
        from: "stackspin@example.org".into(),
        user: Some("stackspin@example.org".into()),
        password: Some("fixture-mail-password".into()),
        security: "starttls".into(),
    }
}

/// A cluster configuration as the platform would hand it to the control plane; its secret
/// lines must end up in the secret values only.
const CLUSTER_TOML: &str = "domain = \"example.org\"\noutgoing_mail_smtp_password = \"fixture-mail-password\"\nbackup_s3_aws_secret_access_key = \"fixture-s3-key\"\n";

fn render(entry: &Entry, mail: Option<&MailContext>) -> stackspin_catalog::Rendered {
    let secrets = secrets_for(entry);
    let catalog = Catalog::builtin().expect("the catalog loads");
    let parts: BTreeMap<String, String> = catalog
        .entries()
        .iter()
        .filter(|p| p.part_of.as_deref() == Some(entry.name.as_str()) && !p.subdomain.is_empty())
        .map(|p| (p.name.clone(), format!("{}.example.org", p.subdomain)))
        .collect();
    let host = if entry.subdomain.is_empty() {
        "example.org".to_string()
    } else {
        format!("{}.example.org", entry.subdomain)
    };
    let ctx = RenderContext {
        domain: "example.org",
        host: &host,
        namespace: if entry.kind == stackspin_catalog::Kind::App {
            "stackspin-apps"
        } else {
            "stackspin"
        },
        issuer: "https://dashboard.example.org",
        admin_email: "admin@example.org",
        cluster_issuer: "letsencrypt-production",
        forward_auth: "stackspin-forward-auth@kubernetescrd",
        client_id: entry.oidc.as_ref().map(|_| entry.name.as_str()),
        client_secret: entry.oidc.as_ref().map(|_| "fixture-oidc-client-secret"),
        mail,
        secrets: &secrets,
        parts: &parts,
        backup: Some(&stackspin_catalog::BackupContext {
            url: "https://s3.example.net".into(),
            bucket: "backups".into(),
            region: "eu-1".into(),
            prefix: "stackspin".into(),
            access_key_id: "fixture-key-id".into(),
            secret_access_key: "fixture-s3-key".into(),
            time: "03:00".into(),
            time_zone: "Europe/Amsterdam".into(),
            retention_days: 30,
            drill_days: 7,
        }),
        cluster_config: Some(CLUSTER_TOML),
    };
    entry
        .render(&ctx)
        .unwrap_or_else(|e| panic!("{} renders: {e}", entry.name))
}

/// Every leaf path the values set, with the list indexes dropped (a list is replaced whole).
fn leaf_paths(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, item) in map {
                prefix.push(k.clone());
                leaf_paths(item, prefix, out);
                prefix.pop();
            }
        }
        _ => out.push(prefix.clone()),
    }
}

/// Whether `path` is known to the chart: every key down the path exists in its defaults,
/// until the defaults hold something other than a map there (null, a list, a scalar), which
/// the chart takes whole, or an empty map (`labels: {}`, `resources: {}`), which is the
/// charts' way of documenting a free-form map.
fn known(defaults: &Value, path: &[String]) -> bool {
    let mut at = defaults;
    for key in path {
        match at {
            Value::Object(map) if map.is_empty() => return true,
            Value::Object(map) => match map.get(key) {
                Some(next) => at = next,
                None => return false,
            },
            _ => return true,
        }
    }
    true
}

fn under(path: &[String], prefix: &str) -> bool {
    let parts = stackspin_catalog::template::split_path(prefix);
    path.len() >= parts.len() && path[..parts.len()] == parts[..]
}

#[test]
fn every_values_key_exists_in_the_charts_defaults() {
    let catalog = Catalog::builtin().expect("the catalog loads");
    let mut problems = Vec::new();
    for entry in catalog.entries() {
        // Without defaults (a generic chart), every path must lie under a free-form map.
        let defaults = entry
            .chart
            .defaults
            .as_deref()
            .map_or(Value::Null, chart_defaults);
        let rendered = render(entry, Some(&mail()));
        let mut paths = Vec::new();
        leaf_paths(&rendered.values, &mut Vec::new(), &mut paths);
        leaf_paths(&rendered.secret_values, &mut Vec::new(), &mut paths);
        // An empty document (no secret values) yields the empty path: nothing is set.
        for path in paths.into_iter().filter(|p| !p.is_empty()) {
            if entry.chart.free_form.iter().any(|f| under(&path, f)) {
                continue;
            }
            let sub = entry
                .chart
                .subcharts
                .iter()
                .find(|(prefix, _)| under(&path, prefix));
            let ok = match sub {
                Some((prefix, chart)) => {
                    let depth = stackspin_catalog::template::split_path(prefix).len();
                    known(&chart_defaults(chart), &path[depth..]) || known(&defaults, &path)
                }
                None => !defaults.is_null() && known(&defaults, &path),
            };
            if !ok {
                problems.push(format!(
                    "{}: {} is not in chart {}'s default values",
                    entry.name,
                    path.join("."),
                    entry
                        .chart
                        .defaults
                        .as_deref()
                        .unwrap_or("(none: free-form only)")
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn rendered_values_match_their_snapshots() {
    let catalog = Catalog::builtin().expect("the catalog loads");
    let update = std::env::var_os("STACKSPIN_UPDATE_SNAPSHOTS").is_some();
    let mut stale = Vec::new();
    for entry in catalog.entries() {
        let mut doc = serde_json::Map::new();
        for (name, mail) in [("without_mail", None), ("with_mail", Some(mail()))] {
            let r = render(entry, mail.as_ref());
            doc.insert(
                name.into(),
                serde_json::json!({
                    "values": r.values,
                    "secret_values": r.secret_values,
                    "secret_keys": r.secret_keys,
                }),
            );
        }
        let text = serde_json::to_string_pretty(&doc).expect("serialises") + "\n";
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/snapshots")
            .join(format!("{}.json", entry.name));
        if update {
            std::fs::write(&file, &text).expect("snapshot written");
        } else if std::fs::read_to_string(&file).ok().as_deref() != Some(text.as_str()) {
            stale.push(entry.name.clone());
        }
    }
    assert!(
        stale.is_empty(),
        "rendered values changed for {stale:?}: review, then rerun with STACKSPIN_UPDATE_SNAPSHOTS=1"
    );
}

#[test]
fn no_secret_reaches_the_plain_values() {
    let catalog = Catalog::builtin().expect("the catalog loads");
    for entry in catalog.entries() {
        let r = render(entry, Some(&mail()));
        let plain = r.values.to_string();
        for secret in secrets_for(entry).values() {
            assert!(!plain.contains(secret.as_str()), "{}: {secret}", entry.name);
        }
        for secret in [
            "fixture-oidc-client-secret",
            "fixture-mail-password",
            "fixture-s3-key",
        ] {
            assert!(
                !plain.contains(secret),
                "{}: {secret} in values",
                entry.name
            );
        }
    }
}

#[test]
fn every_app_with_a_login_says_how_admins_are_made() {
    let catalog = Catalog::builtin().expect("the catalog loads");
    for entry in catalog.installable() {
        if let Some(oidc) = &entry.oidc {
            let text = match &oidc.admin {
                stackspin_catalog::AdminMapping::Native { how } => how,
                stackspin_catalog::AdminMapping::Manual { instead } => instead,
            };
            assert!(text.len() > 40, "{}: explain the admin mapping", entry.name);
        }
    }
}

fn load_one(app_toml: &str, values: &str) -> Result<Catalog, String> {
    Catalog::from_files([("demo/app.toml", app_toml), ("demo/values.yaml", values)])
        .map_err(|e| e.to_string())
}

const GOOD: &str = r#"
name = "demo"
title = "Demo"
summary = "A demo."
docs = "https://example.org/docs"
kind = "app"
subdomain = "demo"
[chart]
repository = "https://charts.example.org"
name = "demo"
version = "1.2.3"
updates = ">=1.2.3, <2.0.0"
defaults = "demo"
[requests]
cpu = "10m"
memory = "64Mi"
"#;

#[test]
fn bad_entries_are_refused_naming_the_file_and_field() {
    assert!(load_one(GOOD, "a: 1\n").is_ok());
    let cases = [
        (
            GOOD.replace("1.2.3\"\nupdates", "one\"\nupdates"),
            "a: 1\n",
            "chart.version",
        ),
        (
            GOOD.replace(">=1.2.3, <2.0.0", ">=2.0.0"),
            "a: 1\n",
            "does not include",
        ),
        (
            GOOD.replace("https://charts", "http://charts"),
            "a: 1\n",
            "chart.repository",
        ),
        (
            GOOD.replace("name = \"demo\"\ntitle", "name = \"other\"\ntitle"),
            "a: 1\n",
            "folder",
        ),
        (
            GOOD.replace("cpu = \"10m\"", "cpu = \"lots\""),
            "a: 1\n",
            "requests.cpu",
        ),
        (GOOD.to_string(), "a: ${nope}\n", "unknown placeholder"),
        (GOOD.to_string(), "a: ${secret.x}\n", "secret_values"),
        (GOOD.to_string(), "- not a map\n", "map of chart values"),
        (
            format!("{GOOD}\n[[secret_keys]]\nkey = \"K\"\nvalue = \"${{secret.missing}}\"\n"),
            "a: 1\n",
            "not in [[secrets]]",
        ),
        (format!("{GOOD}\nsurprise = 1\n"), "a: 1\n", "surprise"),
        (
            format!("depends_on = [\"ghost\"]\n{GOOD}"),
            "a: 1\n",
            "depends_on",
        ),
        (
            GOOD.to_string(),
            "a: ${part.ghost.host}\n",
            "not a part of demo",
        ),
        (
            format!("{GOOD}\n[[secret_values]]\npath = \"c\"\nvalue = \"${{cluster_config}}\"\n"),
            "a: 1\n",
            "only the stackspin entry",
        ),
        (
            GOOD.replace("defaults = \"demo\"\n", ""),
            "a: 1\n",
            "chart.defaults",
        ),
        (
            GOOD.to_string(),
            "a: ${backup.bucket}\n",
            "with_backup = true",
        ),
        (
            format!("with_backup = true\n{GOOD}"),
            "a: 1\n",
            "with_backup",
        ),
        (
            format!("{GOOD}\n[[tools]]\nname = \"metrics\"\ntitle = \"M\"\nsubdomain = \"m\"\n"),
            "a: 1\n",
            "behind ${forward_auth}",
        ),
        (
            format!("{GOOD}\n[[tools]]\nname = \"Metrics!\"\ntitle = \"M\"\nsubdomain = \"m\"\n"),
            "a: ${forward_auth}\n",
            "tools",
        ),
    ];
    let with_tool =
        format!("{GOOD}\n[[tools]]\nname = \"metrics\"\ntitle = \"M\"\nsubdomain = \"m\"\n");
    assert!(load_one(&with_tool, "a: ${forward_auth}\n").is_ok());
    for (toml, values, expected) in cases {
        let err = load_one(&toml, values).expect_err(expected);
        assert!(err.contains("catalog/demo/"), "names the file: {err}");
        assert!(err.contains(expected), "{expected:?} in {err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }
}

/// Entries on bjw-s's app-template name their own controllers, services, ingresses and
/// volumes; the chart's schema checks the shapes at install, this checks that the names
/// refer to each other, which no schema does.
#[test]
fn app_template_entries_refer_to_their_own_names() {
    let catalog = Catalog::builtin().expect("the catalog loads");
    let mut seen = 0;
    for entry in catalog.entries() {
        let stackspin_catalog::ChartSource::Oci { url } = &entry.chart.source else {
            continue;
        };
        if !url.ends_with("/app-template") {
            continue;
        }
        seen += 1;
        let v = render(entry, None).values;
        let keys = |section: &str| -> Vec<String> {
            v[section]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default()
        };
        let controllers = keys("controllers");
        let services = keys("service");
        assert!(!controllers.is_empty(), "{}: no controllers", entry.name);
        for c in &controllers {
            let containers = v["controllers"][c]["containers"].as_object();
            assert!(
                containers.is_some_and(|m| !m.is_empty()),
                "{}: controller {c} has no containers",
                entry.name
            );
            for (name, container) in containers.into_iter().flatten() {
                let image = &container["image"];
                assert!(
                    image["repository"].is_string() && image["tag"].is_string(),
                    "{}: container {name} needs an image repository and a pinned tag",
                    entry.name
                );
            }
        }
        for s in &services {
            let controller = v["service"][s]["controller"].as_str().unwrap_or_default();
            assert!(
                controllers.iter().any(|c| c == controller),
                "{}: service {s} names controller {controller:?}",
                entry.name
            );
        }
        for (name, ingress) in v["ingress"].as_object().into_iter().flatten() {
            for host in ingress["hosts"].as_array().into_iter().flatten() {
                assert_eq!(host["host"], format!("{}.example.org", entry.subdomain));
                for path in host["paths"].as_array().into_iter().flatten() {
                    let id = path["service"]["identifier"].as_str().unwrap_or_default();
                    let port = path["service"]["port"].as_str().unwrap_or_default();
                    assert!(
                        services.iter().any(|s| s == id),
                        "{}: ingress {name} points at service {id:?}",
                        entry.name
                    );
                    assert!(
                        v["service"][id]["ports"][port].is_object(),
                        "{}: ingress {name} points at port {port:?} of {id}",
                        entry.name
                    );
                }
            }
        }
        for (name, volume) in v["persistence"].as_object().into_iter().flatten() {
            assert!(
                volume["globalMounts"]
                    .as_array()
                    .is_some_and(|m| !m.is_empty())
                    || volume["advancedMounts"].is_object(),
                "{}: volume {name} is mounted nowhere",
                entry.name
            );
        }
    }
    assert!(
        seen > 0,
        "the catalog has an app-template entry (Onlyoffice)"
    );
}
