//! `stackspin manifests` as an admin runs it: the acceptance flags, a cluster.toml, the same
//! output on a second run, private secrets, refusals that leave nothing behind, and trees that
//! `kubectl kustomize` builds.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_stackspin");

fn run(dir: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("STACKSPIN_") {
            c.env_remove(k);
        }
    }
    c.current_dir(dir).args(args).output().unwrap()
}

const FLAGS: &[&str] = &[
    "manifests",
    "--domain",
    "example.org",
    "--ip-address",
    "192.0.2.10",
    "--admin-email",
    "admin@example.org",
    "--apps",
    "nextcloud,zulip,wekan,wordpress,hedgedoc,monitoring",
];

fn read_tree(dir: &Path) -> Vec<(PathBuf, String, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read_to_string(&p).unwrap(),
                    mode,
                ));
            }
        }
    }
    out.sort();
    out
}

/// The test bed's kubectl (built by scripts/testbed), else one on the PATH.
fn kubectl() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/testbed/bin/kubectl");
    if built.is_file() {
        return built;
    }
    PathBuf::from("kubectl")
}

#[test]
fn the_acceptance_flags_write_a_tree_that_kustomize_builds_and_a_rerun_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = FLAGS.to_vec();
    args.extend(["--out", "out"]);
    let first = run(dir.path(), &args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let text = String::from_utf8_lossy(&first.stdout);
    assert!(text.contains("Generated"), "{text}");

    let secrets = dir.path().join("stackspin-secrets.toml");
    let mode = std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the secrets file is private");
    let tree = read_tree(&dir.path().join("out"));
    for (path, contents, mode) in &tree {
        if contents.contains("\nkind: Secret\n") {
            assert_eq!(*mode, 0o600, "{} is private", path.display());
        }
    }
    let secrets_before = std::fs::read_to_string(&secrets).unwrap();

    // Same inputs, same output: no secret regenerated, nothing reordered.
    let second = run(dir.path(), &args);
    assert!(second.status.success());
    assert!(!String::from_utf8_lossy(&second.stdout).contains("Generated"));
    assert_eq!(read_tree(&dir.path().join("out")), tree);
    assert_eq!(std::fs::read_to_string(&secrets).unwrap(), secrets_before);

    for sub in ["out", "out/issuers"] {
        let built = Command::new(kubectl())
            .arg("kustomize")
            .arg(dir.path().join(sub))
            .output()
            .expect("kubectl runs (the test bed builds it: scripts/testbed build)");
        assert!(
            built.status.success(),
            "{sub}: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        let yaml = String::from_utf8_lossy(&built.stdout);
        if sub == "out" {
            // Two core entries, six apps, Onlyoffice with Nextcloud, two monitoring parts.
            assert_eq!(yaml.matches("\nkind: HelmRelease\n").count(), 11, "{yaml}");
        } else {
            assert_eq!(yaml.matches("\nkind: ClusterIssuer\n").count(), 2);
        }
    }
}

#[test]
fn a_cluster_toml_is_read_and_flags_win_over_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cluster.toml"),
        "domain = \"old.example.org\"\nip_address = \"192.0.2.10\"\nadmin_email = \"admin@example.org\"\n\
         outgoing_mail_enabled = true\noutgoing_mail_from_address = \"noreply@example.org\"\n\
         outgoing_mail_smtp_host = \"smtp.example.org\"\napps = [\"hedgedoc\"]\n",
    )
    .unwrap();
    let out = run(
        dir.path(),
        &[
            "--config",
            "cluster.toml",
            "manifests",
            "--domain",
            "new.example.org",
            "--out",
            "o",
            "--secrets",
            "s.toml",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["apps"],
        serde_json::json!(["cert-manager", "stackspin", "hedgedoc"])
    );
    let values = std::fs::read_to_string(
        dir.path()
            .join("o/stackspin-apps/configmap-stackspin-hedgedoc-values.yaml"),
    )
    .unwrap();
    assert!(values.contains("notes.new.example.org"), "{values}");
    let stackspin = std::fs::read_to_string(
        dir.path()
            .join("o/stackspin/configmap-stackspin-stackspin-values.yaml"),
    )
    .unwrap();
    assert!(
        stackspin.contains("smtpHost: smtp.example.org"),
        "mail from the file: {stackspin}"
    );
}

#[test]
fn bad_input_is_one_line_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "manifests",
                "--domain",
                "example.org",
                "--ip-address",
                "192.0.2.1",
                "--admin-email",
                "admin@example.org",
                "--apps",
                "nextcloud,bogus",
                "--out",
                "o",
            ],
            "\"bogus\" is not in the catalog",
        ),
        (
            vec![
                "manifests",
                "--domain",
                "example.org",
                "--ip-address",
                "not-an-ip",
                "--admin-email",
                "admin@example.org",
                "--out",
                "o",
            ],
            "ip_address",
        ),
        (
            vec![
                "manifests",
                "--ip-address",
                "192.0.2.1",
                "--admin-email",
                "admin@example.org",
                "--out",
                "o",
            ],
            "domain: is required",
        ),
        (
            vec!["--config", "missing.toml", "manifests", "--out", "o"],
            "missing.toml",
        ),
    ];
    for (args, expected) in cases {
        let out = run(dir.path(), &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{expected:?} in {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(!dir.path().join("o").exists());
        assert!(!dir.path().join("stackspin-secrets.toml").exists());
    }

    // A folder we did not write is never replaced.
    std::fs::create_dir(dir.path().join("mine")).unwrap();
    std::fs::write(dir.path().join("mine/notes.txt"), "keep me").unwrap();
    let mut args = FLAGS.to_vec();
    args.extend(["--out", "mine"]);
    let out = run(dir.path(), &args);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("was not written by stackspin manifests")
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("mine/notes.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn help_works_without_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["manifests", "--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--secrets"));
}

/// One value of a Secret or ConfigMap file of the tree, decoded.
fn data_value(file: &Path, key: &str) -> String {
    let doc: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let raw = doc["data"][key].as_str().unwrap().to_string();
    if doc["kind"] == "Secret" {
        use base64::Engine as _;
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(raw)
                .unwrap(),
        )
        .unwrap()
    } else {
        raw
    }
}

/// The control plane's chart, rendered by Helm with the values the tree gives it, holds the
/// cluster's settings in a Secret it mounts; the control plane started with that file renders
/// itself the same again (so its operator does not restart it in a loop), and apps are not in
/// it (they are its database's business).
#[test]
fn the_control_plane_chart_carries_the_cluster_configuration() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cluster.toml"),
        "domain = \"example.org\"\nip_address = \"192.0.2.10\"\nadmin_email = \"admin@example.org\"\n\
         outgoing_mail_enabled = true\noutgoing_mail_from_address = \"noreply@example.org\"\n\
         outgoing_mail_smtp_host = \"smtp.example.org\"\noutgoing_mail_smtp_password = \"fixture-mail-password\"\n\
         backup_s3_url = \"https://s3.example.net\"\nbackup_s3_bucket = \"b\"\n\
         backup_s3_aws_access_key_id = \"id\"\nbackup_s3_aws_secret_access_key = \"fixture-s3-secret\"\n\
         maintenance_window = \"01:00-03:30\"\ntime_zone = \"Europe/Amsterdam\"\napps = [\"hedgedoc\"]\n",
    )
    .unwrap();
    let manifests = |config: &str, out: &str| {
        let o = run(
            dir.path(),
            &[
                "--config",
                config,
                "manifests",
                "--out",
                out,
                "--secrets",
                "s.toml",
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    manifests("cluster.toml", "o");
    let values = data_value(
        &dir.path()
            .join("o/stackspin/configmap-stackspin-stackspin-values.yaml"),
        "values.yaml",
    );
    let secret_file = dir
        .path()
        .join("o/stackspin/secret-stackspin-stackspin-secret-values.yaml");
    let secret_values = data_value(&secret_file, "values.yaml");
    assert!(
        !values.contains("fixture-s3-secret"),
        "the plain values hold no secret"
    );
    std::fs::write(dir.path().join("v.yaml"), values).unwrap();
    std::fs::write(dir.path().join("sv.yaml"), secret_values).unwrap();

    let helm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/testbed/bin/helm");
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/stackspin");
    let rendered = Command::new(&helm)
        .args(["template", "stackspin"])
        .arg(&chart)
        .args(["--namespace", "stackspin", "-f", "v.yaml", "-f", "sv.yaml"])
        .current_dir(dir.path())
        .output()
        .expect("helm runs (the test bed builds it: scripts/testbed build)");
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let rendered = String::from_utf8(rendered.stdout).unwrap();
    let mut cluster_toml = None;
    let mut mounted = false;
    let mut hook = None;
    for doc in rendered.split("\n---") {
        let Ok(v) = serde_saphyr::from_str::<serde_json::Value>(doc) else {
            continue;
        };
        if v["kind"] == "Secret" && v["metadata"]["name"] == "stackspin-cluster" {
            cluster_toml = v["stringData"]["cluster.toml"].as_str().map(str::to_string);
        }
        if v["kind"] == "Deployment" {
            hook = v["spec"]["template"]["metadata"]["annotations"]
                ["pre.hook.backup.velero.io/command"]
                .as_str()
                .map(str::to_string);
            let text = v.to_string();
            mounted = text.contains("stackspin-cluster")
                && text.contains("STACKSPIN_CLUSTER_CONFIG")
                && text.contains("STACKSPIN_SETUP_PASSWORD_FILE");
        }
    }
    let cluster_toml = cluster_toml.expect("the chart renders the cluster Secret");
    check_backup_hook(&hook.expect("the Deployment has Velero's backup hook"));
    assert!(mounted, "the Deployment mounts it: {rendered}");
    assert!(cluster_toml.contains("fixture-s3-secret"));
    assert!(cluster_toml.contains("maintenance_window = \"01:00-03:30\""));
    assert!(cluster_toml.contains("Europe/Amsterdam"));
    assert!(!cluster_toml.contains("hedgedoc"), "{cluster_toml}");

    // The control plane's own Secret: a platform key it accepts, and the setup password.
    let own = dir
        .path()
        .join("o/stackspin/secret-stackspin-stackspin-secrets.yaml");
    let key = data_value(&own, "secret-key");
    stackspin_domain::sealing::SecretKeys::parse(&key).expect("a valid platform key");
    assert!(data_value(&own, "setup-password").len() >= 16);

    std::fs::write(dir.path().join("in-cluster.toml"), &cluster_toml).unwrap();
    manifests("in-cluster.toml", "o2");
    assert_eq!(
        std::fs::read_to_string(&secret_file).unwrap(),
        std::fs::read_to_string(
            dir.path()
                .join("o2/stackspin/secret-stackspin-stackspin-secret-values.yaml")
        )
        .unwrap(),
        "the control plane renders itself the same from what it was given"
    );
}

/// Runs Velero's backup hook command as the chart renders it, with the binary and the data
/// folder of a real control plane in place of the container's: it writes the snapshot a
/// restore of the control plane needs.
fn check_backup_hook(command: &str) {
    let argv: Vec<String> = serde_json::from_str(command).expect("the hook is a JSON array");
    assert_eq!(argv[0], "/usr/local/bin/stackspin", "the image's binary");
    let data = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/stackspin.sqlite", data.path().display());
    // A control plane's database, as `serve` leaves it.
    let url = stackspin_domain::settings::DatabaseUrl::parse(&db).unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(stackspin_storage::Store::connect(&url))
        .unwrap();
    let args: Vec<String> = argv[1..]
        .iter()
        .map(|a| a.replace("/data", &data.path().display().to_string()))
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_stackspin"))
        .args(&args)
        .env("STACKSPIN_DATABASE_URL", &db)
        .env("STACKSPIN_DATA_DIR", data.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the hook command fails: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snapshot = data.path().join("backup/stackspin.snapshot");
    let head = std::fs::read(&snapshot).expect("the snapshot is written");
    assert!(
        head.starts_with(b"SQLite format 3"),
        "a SQLite database file"
    );
}
