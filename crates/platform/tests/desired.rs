//! The desired state for a full cluster: a reviewed snapshot of the whole tree, and the
//! invariants every object must keep.

use std::path::Path;

use stackspin_catalog::Catalog;
use stackspin_platform::manifests;
use stackspin_platform::{GeneratedSecrets, Object, RawClusterConfig, Tuning, desired_state};

const CLUSTER: &str = r#"
domain = "example.org"
ip_address = "192.0.2.10"
admin_email = "admin@example.org"
outgoing_mail_enabled = true
outgoing_mail_from_address = "noreply@example.org"
outgoing_mail_smtp_host = "smtp.example.org"
outgoing_mail_smtp_user = "noreply@example.org"
outgoing_mail_smtp_password = "fixture-mail-password"
backup_s3_url = "https://s3.example.net"
backup_s3_bucket = "backups"
backup_s3_aws_access_key_id = "fixture-key-id"
backup_s3_aws_secret_access_key = "fixture-s3-secret"
apps = ["nextcloud", "zulip", "wekan", "wordpress", "hedgedoc", "monitoring"]
[app.wordpress]
subdomain = ""
allow_list = ["198.51.100.0/24", "2001:db8::/32"]
"#;

fn catalog() -> &'static Catalog {
    Catalog::builtin().expect("the catalog loads")
}

/// Deterministic "random" secrets, each telling where it came from.
fn fixture_secrets(entries: &[&str]) -> GeneratedSecrets {
    let mut secrets = GeneratedSecrets::default();
    let mut n = 0;
    secrets
        .ensure(catalog(), entries, |len| {
            n += 1;
            format!("fixture{n:03}{}", "x".repeat(len))[..len].to_string()
        })
        .expect("generated");
    secrets
}

fn all_entries(config: &stackspin_platform::ClusterConfig) -> Vec<String> {
    stackspin_platform::placements(catalog(), config)
        .expect("placed")
        .iter()
        .map(|p| p.entry.name.clone())
        .collect()
}

fn state() -> (Vec<Object>, GeneratedSecrets) {
    let config = RawClusterConfig::from_toml(CLUSTER)
        .expect("parses")
        .resolve()
        .expect("valid");
    let names = all_entries(&config);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let secrets = fixture_secrets(&refs);
    let objects = desired_state(catalog(), &config, &secrets, &Tuning::default()).expect("renders");
    (objects, secrets)
}

#[test]
fn the_tree_matches_its_snapshot() {
    let (objects, _) = state();
    let files = manifests::tree(&objects).expect("tree");
    let mut text = String::new();
    for f in &files {
        text.push_str(&format!(
            "# ---- {} (private: {})\n{}",
            f.path, f.private, f.contents
        ));
    }
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/tree.yaml");
    if std::env::var_os("STACKSPIN_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&file, &text).expect("written");
    }
    let saved = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        saved == text,
        "the desired state changed: review, then rerun with STACKSPIN_UPDATE_SNAPSHOTS=1"
    );
}

#[test]
fn nothing_secret_is_in_a_helmrelease_or_configmap() {
    let (objects, secrets) = state();
    let mut values: Vec<String> = serde_json::to_value(&secrets)
        .expect("json")
        .as_object()
        .expect("map")
        .values()
        .flat_map(|m| {
            m.as_object()
                .expect("map")
                .values()
                .map(|v| v.as_str().expect("str").to_string())
        })
        .collect();
    values.push("fixture-mail-password".into());
    values.push("fixture-s3-secret".into());
    for o in &objects {
        if o.is_secret() {
            continue;
        }
        let text = o.to_value().to_string();
        for v in &values {
            assert!(
                !text.contains(v.as_str()),
                "{} {} holds a secret",
                o.kind(),
                o.name()
            );
        }
    }
    // ...and they are all somewhere: in Secrets.
    let secret_text: String = objects
        .iter()
        .filter(|o| o.is_secret())
        .map(|o| o.to_value().to_string())
        .collect();
    assert!(!secret_text.is_empty());
}

#[test]
fn every_release_can_be_overridden_and_rolls_back() {
    let (objects, _) = state();
    let mut releases = 0;
    for o in &objects {
        let v = o.to_value();
        assert_eq!(
            v["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "stackspin",
            "{} {}",
            o.kind(),
            o.name()
        );
        if let Object::HelmRelease(hr) = o {
            releases += 1;
            let from = &hr.spec.values_from;
            let n = from.len();
            assert!(n >= 3);
            let name = format!("stackspin-{}-override", o.name());
            assert_eq!(
                (from[n - 2].kind.as_str(), from[n - 2].name.as_str()),
                ("ConfigMap", name.as_str())
            );
            assert_eq!(
                (from[n - 1].kind.as_str(), from[n - 1].name.as_str()),
                ("Secret", name.as_str())
            );
            assert_eq!(from[n - 1].optional, Some(true));
            let up = hr
                .spec
                .upgrade
                .as_ref()
                .and_then(|u| u.remediation.as_ref())
                .expect("upgrade remediation");
            assert_eq!(up.strategy.as_deref(), Some("rollback"));
            assert!(
                hr.spec
                    .install
                    .as_ref()
                    .and_then(|i| i.remediation.as_ref())
                    .expect("install remediation")
                    .retries
                    > 0
            );
            assert!(
                v["spec"].get("values").is_none(),
                "values travel in ConfigMaps and Secrets"
            );
        }
    }
    assert_eq!(
        releases, 12,
        "two core entries, five apps, Nextcloud with Onlyoffice, monitoring with two parts, Velero"
    );
}

#[test]
fn the_allow_list_becomes_a_middleware_on_the_apps_ingress() {
    let (objects, _) = state();
    let mw = objects
        .iter()
        .find(|o| o.kind() == "Middleware" && o.name() != "forward-auth")
        .expect("a middleware");
    assert_eq!(mw.name(), "wordpress-allowlist");
    let cm = objects
        .iter()
        .find(|o| o.name() == "stackspin-wordpress-values")
        .expect("values");
    let text = cm.to_value()["data"]["values.yaml"]
        .as_str()
        .expect("yaml")
        .to_string();
    assert!(
        text.contains("stackspin-apps-wordpress-allowlist@kubernetescrd"),
        "{text}"
    );
    // WordPress is on the bare domain, as the seed allowed.
    assert!(text.contains("host: example.org"), "{text}");
}

#[test]
fn generated_secrets_are_made_once_and_never_changed() {
    let mut secrets = fixture_secrets(&["nextcloud"]);
    let before = secrets.clone();
    let added = secrets
        .ensure(catalog(), &["nextcloud", "zulip"], |len| "y".repeat(len))
        .expect("ensured");
    assert!(added.iter().all(|a| a.starts_with("zulip.")), "{added:?}");
    assert_eq!(secrets.app("nextcloud"), before.app("nextcloud"));
    let again = secrets.to_toml();
    let reread = GeneratedSecrets::from_toml(&again).expect("reads back");
    assert_eq!(reread, secrets);
    assert!(
        !format!("{secrets:?}").contains("yyyy"),
        "Debug never shows values"
    );
}

#[test]
fn bad_choices_are_refused_with_one_line() {
    let base = |extra: &str| {
        RawClusterConfig::from_toml(&format!(
            "domain = \"example.org\"\nip_address = \"192.0.2.1\"\nadmin_email = \"a@example.org\"\n{extra}"
        ))
        .expect("parses")
        .resolve()
        .expect("valid")
    };
    let cases = [
        ("apps = [\"nope\"]", "not in the catalog"),
        ("apps = [\"loki\"]", "choose monitoring"),
        ("apps = [\"stackspin\"]", "always installed"),
        (
            "apps = [\"nextcloud\"]\n[app.nextcloud]\nsubdomain = \"\"",
            "bare domain",
        ),
        (
            "apps = [\"nextcloud\"]\n[app.nextcloud]\nversion = \"99.0.0\"",
            "outside the catalog's range",
        ),
    ];
    for (extra, expected) in cases {
        let err = stackspin_platform::placements(catalog(), &base(extra))
            .expect_err(expected)
            .to_string();
        assert!(err.contains(expected), "{expected:?} in {err:?}");
        assert!(!err.contains('\n'));
    }
    let config = base("apps = [\"nextcloud\"]");
    let err = desired_state(
        catalog(),
        &config,
        &GeneratedSecrets::default(),
        &Tuning::default(),
    )
    .expect_err("no secrets")
    .to_string();
    assert!(err.contains("generate secrets"), "{err}");
}

fn find<'a>(objects: &'a [Object], kind: &str, name: &str) -> &'a Object {
    objects
        .iter()
        .find(|o| o.kind() == kind && o.name() == name)
        .unwrap_or_else(|| panic!("{kind} {name}"))
}

fn secret_text(o: &Object, key: &str) -> String {
    let v = o.to_value();
    let data = v["data"][key].as_str().unwrap_or_else(|| panic!("{key}"));
    String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, data).expect("base64"),
    )
    .expect("utf-8")
}

/// The control plane in the cluster gets the cluster's settings (and only those: which apps
/// run is its database's business, so installing one does not restart it), through a
/// Secret, and reads back the same configuration.
#[test]
fn the_control_plane_gets_the_cluster_configuration_in_a_secret() {
    let (objects, _) = state();
    let secret = find(&objects, "Secret", "stackspin-stackspin-secret-values");
    let values: serde_json::Value =
        serde_saphyr::from_str(&secret_text(secret, "values.yaml")).expect("yaml");
    let text = values["operator"]["clusterConfig"]
        .as_str()
        .expect("clusterConfig is set");
    let back = RawClusterConfig::from_toml(text)
        .expect("parses")
        .resolve()
        .expect("valid");
    let mut expected = RawClusterConfig::from_toml(CLUSTER)
        .expect("parses")
        .resolve()
        .expect("valid");
    expected.apps.clear();
    assert_eq!(back, expected);
    assert!(text.contains("fixture-s3-secret") && !text.contains("apps"));
}

/// Onlyoffice comes with Nextcloud: its own release at office.DOMAIN, its JWT key in its
/// Secret, and Nextcloud pointed at it with the same key, read from that Secret.
#[test]
fn nextcloud_brings_onlyoffice_and_shares_its_key() {
    let (objects, secrets) = state();
    find(&objects, "HelmRelease", "onlyoffice");
    let key = secrets
        .app("onlyoffice")
        .get("jwt_secret")
        .cloned()
        .expect("a generated key");
    let oo = find(&objects, "Secret", "stackspin-onlyoffice-secrets");
    assert_eq!(secret_text(oo, "jwt-secret"), key);
    let nc = find(&objects, "ConfigMap", "stackspin-nextcloud-values").to_value();
    let nc = nc["data"]["values.yaml"].as_str().expect("yaml");
    assert!(nc.contains("https://office.example.org/"), "{nc}");
    assert!(nc.contains("name: stackspin-onlyoffice-secrets"), "{nc}");
    assert!(!nc.contains(key.as_str()));
    let oo = find(&objects, "ConfigMap", "stackspin-onlyoffice-values").to_value();
    let oo = oo["data"]["values.yaml"].as_str().expect("yaml");
    // Backed up and restored with Nextcloud.
    assert!(oo.contains("stackspin.net/backupSet: nextcloud"), "{oo}");
    assert!(oo.contains("host: office.example.org"), "{oo}");
}

/// An allow-list on Nextcloud also guards the editor the same browsers open.
#[test]
fn a_whole_s_allow_list_covers_its_parts_with_a_web_address() {
    let config = RawClusterConfig::from_toml(
        "domain = \"example.org\"\nip_address = \"192.0.2.1\"\nadmin_email = \"a@example.org\"\n\
         apps = [\"nextcloud\", \"monitoring\"]\n[app.nextcloud]\nallow_list = [\"198.51.100.0/24\"]\n\
         [app.monitoring]\nallow_list = [\"198.51.100.0/24\"]\n",
    )
    .expect("parses")
    .resolve()
    .expect("valid");
    let names = all_entries(&config);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let objects = desired_state(
        catalog(),
        &config,
        &fixture_secrets(&refs),
        &Tuning::default(),
    )
    .expect("renders");
    let mut middlewares: Vec<String> = objects
        .iter()
        .filter(|o| o.kind() == "Middleware")
        .map(|o| o.name())
        .collect();
    middlewares.sort_unstable();
    // Loki and Alloy have no web address; Grafana (monitoring) and both Nextcloud parts do.
    // Prometheus and Alertmanager (monitoring's tools) are behind forward-auth.
    assert_eq!(
        middlewares,
        [
            "forward-auth",
            "monitoring-allowlist",
            "nextcloud-allowlist",
            "onlyoffice-allowlist"
        ]
    );
    // The tools are restricted like the rest of monitoring: the allow-list first, then the
    // sign-in.
    let values = find(&objects, "ConfigMap", "stackspin-monitoring-values").to_value();
    let values: serde_json::Value =
        serde_saphyr::from_str(values["data"]["values.yaml"].as_str().expect("yaml"))
            .expect("yaml");
    for tool in ["prometheus", "alertmanager"] {
        assert_eq!(
            values[tool]["ingress"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"],
            "stackspin-monitoring-allowlist@kubernetescrd,stackspin-forward-auth@kubernetescrd",
            "{tool}"
        );
    }
}

/// Velero comes with the backup store's settings, with its S3 key only in its Secret, and
/// not without them; it cannot be chosen as an app.
#[test]
fn backups_come_with_the_backup_store() {
    let (objects, _) = state();
    find(&objects, "HelmRelease", "velero");
    let cloud = find(&objects, "Secret", "stackspin-velero-secrets");
    assert!(secret_text(cloud, "cloud").contains("aws_secret_access_key=fixture-s3-secret"));
    let values = find(&objects, "ConfigMap", "stackspin-velero-values").to_value();
    let values = values["data"]["values.yaml"].as_str().expect("yaml");
    assert!(values.contains("bucket: backups") && values.contains("s3Url: https://s3.example.net"));

    let without = RawClusterConfig::from_toml(
        "domain = \"example.org\"\nip_address = \"192.0.2.1\"\nadmin_email = \"a@example.org\"\n",
    )
    .expect("parses")
    .resolve()
    .expect("valid");
    assert!(!all_entries(&without).contains(&"velero".to_string()));
    assert!(catalog().installable().all(|e| e.name != "velero"));
}

#[test]
fn the_nightly_backup_runs_at_the_chosen_time_and_is_kept_as_long_as_asked() {
    let base = "domain = \"example.org\"\nip_address = \"192.0.2.1\"\nadmin_email = \"a@example.org\"\n\
                backup_s3_url = \"https://s3.example.net\"\nbackup_s3_bucket = \"b\"\n\
                backup_s3_aws_access_key_id = \"id\"\nbackup_s3_aws_secret_access_key = \"k\"\n\
                time_zone = \"Europe/Amsterdam\"\n";
    let config = |extra: &str| {
        RawClusterConfig::from_toml(&format!("{base}{extra}"))
            .expect("parses")
            .resolve()
    };
    let c = config("backup_time = \"4:30\"\nbackup_retention_days = 7\n").expect("valid");
    let s3 = c.backup_s3.as_ref().expect("a backup store");
    assert_eq!(s3.schedule(), "CRON_TZ=Europe/Amsterdam 30 4 * * *");
    assert_eq!(s3.ttl(), "168h");
    // 04:30 in Amsterdam (UTC+1 in December) is 03:30 UTC: still ahead at 02:00 UTC, passed
    // at 04:00 UTC, so then it is the next day's.
    let at =
        |h: u32| chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 12, 4, h, 0, 0).unwrap();
    assert_eq!(
        c.next_backup(at(2)).map(|t| t.to_rfc3339()).as_deref(),
        Some("2026-12-04T03:30:00+00:00")
    );
    assert_eq!(
        c.next_backup(at(4)).map(|t| t.to_rfc3339()).as_deref(),
        Some("2026-12-05T03:30:00+00:00")
    );
    // The settings survive the trip through the control plane's copy of cluster.toml.
    let again = RawClusterConfig::from_toml(&c.settings_toml().expect("text"))
        .expect("parses")
        .resolve()
        .expect("valid");
    assert_eq!(again.backup_s3, c.backup_s3);
    let d = config("").expect("valid");
    assert_eq!(
        d.backup_s3.as_ref().map(|b| b.schedule()).as_deref(),
        Some("CRON_TZ=Europe/Amsterdam 0 3 * * *")
    );
    assert_eq!(
        d.backup_s3.as_ref().map(|b| b.ttl()).as_deref(),
        Some("720h")
    );
    for (bad, field) in [
        ("backup_time = \"25:00\"\n", "backup_time"),
        ("backup_time = \"at night\"\n", "backup_time"),
        ("backup_retention_days = 0\n", "backup_retention_days"),
    ] {
        let e = config(bad).expect_err(bad).to_string();
        assert!(e.contains(field), "{e}");
    }
}

/// The control plane asks its chart for its ServiceMonitor, rules and dashboards only once a
/// version of monitoring runs: before, the Prometheus Operator's CRDs may not exist.
#[test]
fn the_control_plane_ships_its_monitoring_once_monitoring_runs() {
    let mut config = RawClusterConfig::from_toml(CLUSTER)
        .expect("parses")
        .resolve()
        .expect("valid");
    let names = all_entries(&config);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let secrets = fixture_secrets(&refs);
    let monitoring_asked = |config: &stackspin_platform::ClusterConfig| {
        let objects =
            desired_state(catalog(), config, &secrets, &Tuning::default()).expect("renders");
        let values = find(&objects, "ConfigMap", "stackspin-stackspin-values").to_value();
        let values: serde_json::Value =
            serde_saphyr::from_str(values["data"]["values.yaml"].as_str().expect("values"))
                .expect("yaml");
        values["monitoring"]["enabled"] == true
    };
    assert!(
        !monitoring_asked(&config),
        "monitoring is chosen but not running yet"
    );
    for app in &mut config.apps {
        app.running = app.name != "monitoring";
    }
    assert!(
        !monitoring_asked(&config),
        "other apps running do not count"
    );
    for app in &mut config.apps {
        app.running = true;
    }
    assert!(monitoring_asked(&config));
    config.apps.retain(|a| a.name != "monitoring");
    assert!(!monitoring_asked(&config), "without monitoring");
}
