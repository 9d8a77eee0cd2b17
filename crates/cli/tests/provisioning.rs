//! `stackspin create` as an admin runs it on the provisioning machine: a cluster folder from
//! flags, a re-run that changes only what it names, the Greenhost Cosmos API (a stand-in
//! served on loopback: the real API cannot be reached from here) for the VPS and the DNS
//! records, and refusals that leave nothing half-written.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use stackspin_testbed::cosmos::{FakeCosmos, TOKEN};

const BIN: &str = env!("CARGO_BIN_EXE_stackspin");

fn run_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("STACKSPIN_") || k.starts_with("COSMOS_") {
            c.env_remove(k);
        }
    }
    c.envs(env.iter().copied());
    c.current_dir(dir).args(args).output().unwrap()
}

async fn run_async(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_env(&dir, &args, &env)
    })
    .await
    .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn one_line_error(out: &Output, expected: &str) {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "{err}");
    assert!(last.contains(expected), "{expected:?} in {err}");
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn create_writes_the_folder_and_a_rerun_changes_only_what_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A new cluster needs the admin's address; nothing is written without it.
    let out = run_env(
        d,
        &["create", "demo.example.org", "--ip-address", "192.0.2.10"],
        &[],
    );
    one_line_error(&out, "--admin-email");
    assert!(!d.join("clusters").join("demo.example.org").exists());

    let text = ok(&run_env(
        d,
        &[
            "create",
            "demo.example.org",
            "--ip-address",
            "192.0.2.10",
            "--admin-email",
            "admin@example.org",
            "--apps",
            "nextcloud",
        ],
        &[],
    ));
    assert!(text.contains("Created the cluster folder"), "{text}");
    let folder = d.join("clusters/demo.example.org");
    let toml = std::fs::read_to_string(folder.join("cluster.toml")).unwrap();
    assert!(toml.contains("domain = \"demo.example.org\""), "{toml}");
    assert!(toml.contains("# outgoing_mail_smtp_host"), "{toml}");
    assert_eq!(mode(&folder.join("cluster.toml")), 0o600);
    assert_eq!(mode(&folder.join("secrets.toml")), 0o600);
    let secrets = std::fs::read_to_string(folder.join("secrets.toml")).unwrap();
    assert!(secrets.contains("[onlyoffice]"), "Nextcloud's part too");

    // The admin adds mail settings by hand; a re-run with other apps keeps them, keeps every
    // secret, and adds only the new app's.
    std::fs::write(
        folder.join("cluster.toml"),
        format!("{toml}\n# our relay\noutgoing_mail_smtp_port = 2525\n"),
    )
    .unwrap();
    let report: serde_json::Value = serde_json::from_str(&ok(&run_env(
        d,
        &[
            "--json",
            "create",
            "demo.example.org",
            "--apps",
            "nextcloud,zulip",
        ],
        &[],
    )))
    .unwrap();
    assert_eq!(report["created"], false);
    assert_eq!(report["changed"], serde_json::json!(["apps"]));
    assert!(
        report["secrets_added"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s.as_str().unwrap().starts_with("zulip.")),
        "{report}"
    );
    let after = std::fs::read_to_string(folder.join("cluster.toml")).unwrap();
    assert!(
        after.contains("# our relay\noutgoing_mail_smtp_port = 2525"),
        "{after}"
    );
    assert!(after.contains("ip_address = \"192.0.2.10\""));
    let secrets_after = std::fs::read_to_string(folder.join("secrets.toml")).unwrap();
    for line in secrets.lines() {
        assert!(secrets_after.contains(line), "kept: {line}");
    }

    // Refusals change nothing.
    let out = run_env(d, &["create", "demo.example.org", "--apps", "nope"], &[]);
    one_line_error(&out, "not in the catalog");
    std::fs::write(
        folder.join("cluster.toml"),
        "domain = \"x\"\nip_address = 192\n",
    )
    .unwrap();
    let out = run_env(d, &["create", "demo.example.org", "--apps", "zulip"], &[]);
    one_line_error(&out, "cluster.toml");
    assert_eq!(
        std::fs::read_to_string(folder.join("secrets.toml")).unwrap(),
        secrets_after
    );
    let out = run_env(d, &["create", "Bad Name", "--ip-address", "192.0.2.1"], &[]);
    one_line_error(&out, "cluster name");
    let out = run_env(
        d,
        &[
            "create",
            "x.example.org",
            "--create-droplet",
            "--create-hostname",
            "x",
            "--ssh-key-id",
            "1",
            "--admin-email",
            "a@example.org",
        ],
        &[],
    );
    one_line_error(&out, "COSMOS_API_TOKEN");
}

/// The seed's complete example: a VPS and its DNS records made through the API, then the
/// folder. The stand-in boots the VPS after a few polls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_makes_the_vps_and_dns_records_with_the_cosmos_api() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let api = FakeCosmos::start(&["example.org"], 3).await.unwrap();
    let env = [
        ("COSMOS_API_TOKEN", TOKEN),
        ("COSMOS_API_URL", api.url.as_str()),
        ("STACKSPIN_COSMOS_POLL_MS", "20"),
    ];
    let args = [
        "--json",
        "create",
        "stackspin.example.org",
        "example.org",
        "--create-droplet",
        "--create-hostname",
        "stackspin.example.org",
        "--ssh-key-id",
        "112",
        "--create-domain-records",
        "--subdomain",
        "stackspin",
        "--admin-email",
        "admin@example.org",
    ];

    // A refused token: nothing made, nothing written.
    let out = run_async(
        d,
        &args,
        &[
            ("COSMOS_API_TOKEN", "wrong"),
            ("COSMOS_API_URL", api.url.as_str()),
        ],
    )
    .await;
    one_line_error(&out, "refused COSMOS_API_TOKEN");
    // A zone not in the account is found before a VPS is paid for.
    let mut other = args.to_vec();
    other[3] = "elsewhere.org";
    let out = run_async(d, &other, &env).await;
    one_line_error(&out, "elsewhere.org is not in your Cosmos account");
    assert_eq!(api.world().droplets_created, 0);

    // A failure in the middle: the VPS is made, a DNS record fails. The error says what
    // exists; no folder is written; the next run reuses the VPS.
    api.world().fail_next_record = true;
    let out = run_async(d, &args, &env).await;
    one_line_error(&out, "exists at the provider and is reused");
    assert!(!d.join("clusters/stackspin.example.org").exists());
    assert_eq!(api.world().droplets_created, 1);

    let report: serde_json::Value =
        serde_json::from_str(&ok(&run_async(d, &args, &env).await)).unwrap();
    assert_eq!(api.world().droplets_created, 1, "nothing made twice");
    assert_eq!(report["droplet"]["created_now"], false);
    let ip = report["ip_address"].as_str().unwrap().to_string();
    assert!(ip.starts_with("203.0.113."), "{report}");
    assert_eq!(report["domain"], "stackspin.example.org");
    let records = api.world().zones["example.org"].clone();
    let has = |kind: &str, name: &str, data: &str| {
        records
            .iter()
            .any(|r| r["type"] == kind && r["name"] == name && r["data"] == data)
    };
    assert!(has("A", "stackspin", &ip), "{records:?}");
    assert!(
        has("CNAME", "*.stackspin", "stackspin.example.org."),
        "{records:?}"
    );
    let toml =
        std::fs::read_to_string(d.join("clusters/stackspin.example.org/cluster.toml")).unwrap();
    assert!(toml.contains(&format!("ip_address = \"{ip}\"")), "{toml}");

    // Once more: everything exists, nothing is created.
    let before = api.world().records_created;
    ok(&run_async(d, &args, &env).await);
    assert_eq!(api.world().records_created, before);
    assert_eq!(api.world().droplets_created, 1);
}
