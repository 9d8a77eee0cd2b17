//! `stackspin install CLUSTER` over SSH, against a real sshd (Debian's openssh-server) serving
//! a real Debian 12 root filesystem made with debootstrap, run as a separate host in a network
//! namespace (scripts/test-host). Stand-ins, named:
//! - k3s cannot be downloaded here: the server fetches a stand-in for get.k3s.io from this
//!   machine; it checks what the real script is given (the pinned INSTALL_K3S_VERSION, the
//!   `server` role, our config file) and installs a stand-in `k3s` whose kubeconfig points at
//!   the test bed's API server (reached at the server's address through a forward).
//!   Everything after it (Flux, the platform, waiting for the core, the credentials) runs for
//!   real against the test bed;
//! - DNS for the test domain: a file of names (STACKSPIN_DNS_OVERRIDE_FILE);
//! - a small VPS: the server is shown a smaller /proc/meminfo; its disk is a 40 GiB tmpfs.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use stackspin_testbed::platform::{
    core_catalog_files, flux_standin_manifest, install_platform_crds, serve_text, serve_text_at,
};
use stackspin_testbed::{ChartRepo, ChartVersion, TestBed};

const BIN: &str = env!("CARGO_BIN_EXE_stackspin");
const VPS: &str = "10.213.0.2";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn test_host(args: &[&str]) -> String {
    test_host_n(1, args)
}

fn test_host_n(n: u32, args: &[&str]) -> String {
    let out = Command::new(repo().join("scripts/test-host"))
        .env("TEST_HOST", n.to_string())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/test-host {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn run(dir: &Path, args: &[&str], env: &[(String, String)]) -> Output {
    let dir = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env = env.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut c = Command::new(BIN);
        for (k, _) in std::env::vars() {
            if k.starts_with("STACKSPIN_") {
                c.env_remove(k);
            }
        }
        c.envs(env)
            .current_dir(dir)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn one_line_error(out: &Output, expected: &str) -> String {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "{err}");
    assert!(last.contains(expected), "{expected:?} in {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    )
}

/// What get.k3s.io would do, as far as this machine allows: for the server role, the binary,
/// its kubeconfig, the join token and the uninstall script; for the agent role, a record of
/// where it was told to join.
fn k3s_standin(kubeconfig: &str) -> String {
    format!(
        r#"#!/bin/sh
set -e
[ "$INSTALL_K3S_VERSION" = "v1.35.8+k3s1" ] || {{ echo "stand-in: unexpected INSTALL_K3S_VERSION=$INSTALL_K3S_VERSION" >&2; exit 1; }}
mkdir -p /usr/local/bin
cat > /usr/local/bin/k3s <<'K3S'
#!/bin/sh
[ "$1" = --version ] && {{ echo "k3s version v1.35.8+k3s1 (stand-in)"; exit 0; }}
echo "stand-in k3s: $*" >&2; exit 1
K3S
chmod 755 /usr/local/bin/k3s
cat > /usr/local/bin/k3s-uninstall.sh <<'UNINSTALL'
#!/bin/sh
rm -rf /usr/local/bin/k3s /etc/rancher/k3s /var/lib/rancher/k3s /usr/local/bin/k3s-uninstall.sh
UNINSTALL
chmod 755 /usr/local/bin/k3s-uninstall.sh
case "$1" in
server)
  grep -q '"{VPS}"' /etc/rancher/k3s/config.yaml || {{ echo "stand-in: no TLS SAN for the address" >&2; exit 1; }}
  mkdir -p /etc/rancher/k3s /var/lib/rancher/k3s/server
  cat > /etc/rancher/k3s/k3s.yaml <<'KUBECONFIG'
{kubeconfig}KUBECONFIG
  chmod 600 /etc/rancher/k3s/k3s.yaml
  echo "K10standin::server:$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')" > /var/lib/rancher/k3s/server/node-token
  ;;
agent)
  [ -n "$K3S_URL" ] && [ -n "$K3S_TOKEN" ] || {{ echo "stand-in: an agent needs K3S_URL and K3S_TOKEN" >&2; exit 1; }}
  mkdir -p /etc/rancher/node
  printf 'K3S_URL=%s\nK3S_TOKEN=%s\n' "$K3S_URL" "$K3S_TOKEN" > /etc/rancher/node/joined
  ;;
*) echo "stand-in: unexpected role $*" >&2; exit 1 ;;
esac
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_over_ssh_on_a_debian_server() {
    let bed = TestBed::get().unwrap();
    install_platform_crds(bed).unwrap();
    stackspin_testbed::platform::k3s_bundled(&bed.client().await.unwrap())
        .await
        .unwrap();
    let info = test_host(&["up"]);
    let key = info
        .lines()
        .find_map(|l| l.strip_prefix("key="))
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // The test bed's API, at the server's address (its certificate names 10.213.0.2).
    let admin = std::fs::read_to_string(bed.kubeconfig()).unwrap();
    let port = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: https://127.0.0.1:"))
        .unwrap()
        .to_string();
    test_host(&["forward", &port]);
    let (k3s_url, _k3s) = serve_text_at("10.213.0.1:0", "k3s-install.sh", k3s_standin(&admin))
        .await
        .unwrap();
    let chart_repo = ChartRepo::serve(&[ChartVersion::new("hello", "0.1.0")])
        .await
        .unwrap();
    let catalog = d.join("catalog");
    for (path, text) in core_catalog_files(&chart_repo.url, "0.1.0") {
        let file = catalog.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    let (flux_url, _flux) = serve_text("install.yaml", flux_standin_manifest().unwrap())
        .await
        .unwrap();
    // The admin's own ssh setup: their key, their known_hosts.
    let ssh_config = d.join("ssh_config");
    let known_hosts = d.join("known_hosts");
    std::fs::write(
        &ssh_config,
        format!(
            "Host {VPS} 10.213.0.6 127.0.0.2\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n",
            known_hosts.display()
        ),
    )
    .unwrap();
    let dns = d.join("dns");
    std::fs::write(&dns, format!("ssh.example {VPS}\n*.ssh.example {VPS}\n")).unwrap();
    let env: Vec<(String, String)> = [
        ("STACKSPIN_CATALOG", catalog.to_str().unwrap()),
        ("STACKSPIN_FLUX_MANIFEST_URL", flux_url.as_str()),
        ("STACKSPIN_K3S_INSTALL_URL", k3s_url.as_str()),
        ("STACKSPIN_SSH_CONFIG", ssh_config.to_str().unwrap()),
        ("STACKSPIN_DNS_OVERRIDE_FILE", dns.to_str().unwrap()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();

    ok(&run(
        d,
        &[
            "create",
            "ssh.example",
            "--ip-address",
            VPS,
            "--admin-email",
            "admin@example.test",
            "--apps",
            "hello",
        ],
        &env,
    )
    .await);

    // An unknown host key is shown, never accepted silently.
    let out = run(d, &["install", "ssh.example"], &env).await;
    let err = one_line_error(&out, "host key is unknown");
    assert!(err.contains("offered: 256 SHA256:"), "{err}");
    assert!(!known_hosts.exists(), "nothing trusted");
    let fingerprint = err
        .lines()
        .find(|l| l.contains("offered:") && l.contains("ED25519"))
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("SHA256:")))
        .unwrap()
        .to_string();
    let out = run(
        d,
        &[
            "install",
            "ssh.example",
            "--accept-host-key",
            "SHA256:not-it",
        ],
        &env,
    )
    .await;
    one_line_error(&out, "host key is unknown");

    // A server that is too small fails the preflight, and says what it found.
    test_host(&["meminfo", "1000000"]);
    let out = run(
        d,
        &["install", "ssh.example", "--accept-host-key", &fingerprint],
        &env,
    )
    .await;
    test_host(&["meminfo", "off"]);
    let err = one_line_error(&out, "server preflight failed");
    assert!(
        err.contains("FAIL") && err.contains("MiB of memory"),
        "{err}"
    );
    assert!(err.contains("pass Debian 12: debian 12"), "{err}");
    assert!(std::fs::read_to_string(&known_hosts).unwrap().contains(VPS));

    // The whole way.
    let started = std::time::Instant::now();
    let shown = ok(&run(d, &["install", "ssh.example"], &env).await);
    eprintln!(
        "install over SSH took {:.1} s, as printed:\n{shown}",
        started.elapsed().as_secs_f64()
    );
    assert!(shown.contains("✓ SSH host key: known"), "{shown}");
    assert!(
        shown.contains("pass *.ssh.example resolves to 10.213.0.2"),
        "{shown}"
    );
    assert!(shown.contains("✓ k3s v1.35.8+k3s1: installed"), "{shown}");
    assert!(
        shown.contains("Log in at https://dashboard.ssh.example/"),
        "{shown}"
    );
    let kubeconfig =
        std::fs::read_to_string(d.join("clusters/ssh.example/kubeconfig.yaml")).unwrap();
    assert!(
        kubeconfig.contains(&format!("server: https://{VPS}:{port}")),
        "{kubeconfig}"
    );

    // Again: k3s is found at its version, its ports are its own.
    let again = ok(&run(d, &["install", "ssh.example"], &env).await);
    assert!(
        again.contains("✓ k3s v1.35.8+k3s1: already installed"),
        "{again}"
    );

    // A second server joins as a k3s agent, with the server's token. Stand-in: its kubelet
    // cannot run, so the test registers its Node (kwok reports it ready).
    let second = test_host_n(2, &["up"]);
    assert!(second.contains("ip=10.213.0.6"), "{second}");
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> =
        kube::Api::all(bed.client().await.unwrap());
    // k3s names a node after its host name; the second server's is this machine's (it runs
    // in a network namespace, not a UTS one).
    let hostname = String::from_utf8(Command::new("hostname").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let _ = nodes.delete(&hostname, &Default::default()).await;
    nodes
        .create(
            &Default::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": hostname, "annotations": {"kwok.x-k8s.io/node": "fake"}},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    // The address is status, which a create does not take.
    nodes
        .patch_status(
            &hostname,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({
                "status": {"addresses": [{"type": "InternalIP", "address": "10.213.0.6"}]},
            })),
        )
        .await
        .unwrap();
    // The second server reaches this machine at its own side of its link.
    let (k3s_url2, _k3s2) = serve_text_at("10.213.0.5:0", "k3s-install.sh", k3s_standin(&admin))
        .await
        .unwrap();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| {
            if k == "STACKSPIN_K3S_INSTALL_URL" {
                (k.clone(), k3s_url2.clone())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    let out = run(
        d,
        &["node", "add", "ssh.example", "--ip-address", "10.213.0.6"],
        &env,
    )
    .await;
    let err = one_line_error(&out, "10.213.0.6's host key is unknown");
    let fingerprint2 = err
        .lines()
        .find(|l| l.contains("offered:") && l.contains("ED25519"))
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("SHA256:")))
        .unwrap()
        .to_string();
    let joined = ok(&run(
        d,
        &[
            "node",
            "add",
            "ssh.example",
            "--ip-address",
            "10.213.0.6",
            "--accept-host-key",
            &fingerprint2,
        ],
        &env,
    )
    .await);
    assert!(
        joined.contains(&format!("10.213.0.6 joined ssh.example as node {hostname}")),
        "{joined}"
    );
    let host_dir = info
        .lines()
        .find_map(|l| l.strip_prefix("dir="))
        .unwrap()
        .to_string();
    let record =
        std::fs::read_to_string(format!("{host_dir}/host2/etc/rancher/node/joined")).unwrap();
    let token = std::fs::read_to_string(format!(
        "{host_dir}/host1/var/lib/rancher/k3s/server/node-token"
    ))
    .unwrap();
    assert!(
        record.contains(&format!("K3S_URL=https://{VPS}:6443")),
        "{record}"
    );
    assert!(
        record.contains(&format!("K3S_TOKEN={}", token.trim())),
        "{record}"
    );
    nodes.delete(&hostname, &Default::default()).await.unwrap();
    test_host_n(2, &["down"]);

    // Purge: only with the cluster's name; then k3s is gone from the server.
    let out = run(d, &["purge", "ssh.example"], &env).await;
    one_line_error(&out, "confirm with --confirm ssh.example");
    let out = run(d, &["purge", "ssh.example", "--confirm", "other"], &env).await;
    one_line_error(&out, "confirm with --confirm ssh.example");
    let purged = ok(&run(
        d,
        &["purge", "ssh.example", "--confirm", "ssh.example"],
        &env,
    )
    .await);
    assert!(purged.contains("Purged ssh.example"), "{purged}");
    assert!(!Path::new(&format!("{host_dir}/host1/usr/local/bin/k3s")).exists());
    assert!(!d.join("clusters/ssh.example/kubeconfig.yaml").exists());
    assert!(
        d.join("clusters/ssh.example/secrets.toml").exists(),
        "settings and secrets stay"
    );

    // A changed host key stops everything.
    let other = std::fs::read_to_string(&known_hosts)
        .unwrap()
        .lines()
        .map(|l| {
            if l.contains("ssh-ed25519") {
                format!("{VPS} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEo1cGtxbXJ2c3R1dnd4eXphYmNkZWZnaGlqa2xtbm9w")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&known_hosts, other + "\n").unwrap();
    let out = run(d, &["install", "ssh.example"], &env).await;
    one_line_error(&out, "has CHANGED");

    // A server that does not answer.
    ok(&run(
        d,
        &[
            "create",
            "gone.example",
            "--ip-address",
            "127.0.0.2",
            "--admin-email",
            "admin@example.test",
        ],
        &env,
    )
    .await);
    let out = run(d, &["install", "gone.example"], &env).await;
    one_line_error(&out, "cannot reach root@127.0.0.2");
    test_host(&["down"]);
}
