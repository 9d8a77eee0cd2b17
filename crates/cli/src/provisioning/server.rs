//! The commands that go to a server over SSH: the install's server steps, `purge` and
//! `node add`.

use std::path::Path;

use anyhow::{Result, bail};
use stackspin_catalog::Catalog;
use stackspin_provision::folder::ClusterFolder;

use super::steps::Steps;
use super::{EXISTING_CLUSTER, client_for, kubeconfig_for};
use crate::output;

type Resolved = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Vec<std::net::IpAddr>, String>> + Send>,
>;

/// Names resolved from a file before DNS (`NAME ADDRESS` lines; `*.DOMAIN` allowed), for
/// tests and for checking a server before DNS is switched over to it.
fn resolver() -> impl Fn(String) -> Resolved {
    let overrides: Vec<(String, std::net::IpAddr)> = std::env::var("STACKSPIN_DNS_OVERRIDE_FILE")
        .ok()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .map(|text| {
            text.lines()
                .filter_map(|l| {
                    let mut parts = l.split_whitespace();
                    let name = parts.next()?.to_ascii_lowercase();
                    let ip = parts.next()?.parse().ok()?;
                    Some((name, ip))
                })
                .collect()
        })
        .unwrap_or_default();
    move |name: String| {
        let name = name.to_ascii_lowercase();
        let found: Vec<std::net::IpAddr> = overrides
            .iter()
            .filter(|(pattern, _)| {
                *pattern == name
                    || pattern
                        .strip_prefix("*.")
                        .is_some_and(|d| name.ends_with(&format!(".{d}")))
            })
            .map(|(_, ip)| *ip)
            .collect();
        Box::pin(async move {
            if found.is_empty() {
                stackspin_provision::server::system_resolve(name).await
            } else {
                Ok(found)
            }
        })
    }
}

/// Makes sure the server's host key is trusted: known, or shown and confirmed (at a terminal,
/// or by `--accept-host-key`); a changed key stops everything.
async fn confirm_host_key(
    ssh: &stackspin_provision::ssh::Ssh,
    address: &str,
    accept: Option<&str>,
    s: &mut Steps<'_>,
) -> Result<()> {
    use stackspin_provision::ssh::HostKey;
    s.start("SSH host key");
    match ssh.host_key().await? {
        HostKey::Known => s.finish("known"),
        HostKey::Changed => {
            s.fail("changed");
            bail!(
                "the host key of {address} has CHANGED since you last connected: someone may be in between; if the server was reinstalled, remove its old key with `ssh-keygen -R {address}` and run again"
            );
        }
        HostKey::Unknown { keys, fingerprints } => {
            for f in &fingerprints {
                s.line(&format!("offered: {f}"));
            }
            let confirmed = match accept {
                Some(want) => fingerprints
                    .iter()
                    .any(|f| f.split_whitespace().any(|w| w == want)),
                None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
                    eprint!(
                        "Is this the server's key (compare with your provider's console)? Type yes to trust it: "
                    );
                    let mut answer = String::new();
                    std::io::stdin().read_line(&mut answer)?;
                    answer.trim() == "yes"
                }
                None => false,
            };
            if !confirmed {
                s.fail("not confirmed");
                bail!(
                    "{address}'s host key is unknown ({}); check it with your provider and run again with --accept-host-key SHA256:...",
                    fingerprints
                        .iter()
                        .filter_map(|f| f.split_whitespace().nth(1))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            let file = ssh.trust(&keys).await?;
            s.finish(&format!("trusted, added to {}", file.display()));
        }
    }
    Ok(())
}

fn ssh_to(address: &str) -> stackspin_provision::ssh::Ssh {
    stackspin_provision::ssh::Ssh::new(
        address,
        std::env::var_os("STACKSPIN_SSH_CONFIG").map(std::path::PathBuf::from),
    )
}

pub async fn purge(root: &Path, cluster: &str, confirm: Option<&str>, json: bool) -> Result<()> {
    let folder = ClusterFolder::open(root, cluster)?;
    let config = folder.config()?;
    if folder.file(EXISTING_CLUSTER).is_file() {
        bail!(
            "{cluster} was installed on an existing cluster (--kubeconfig): purge removes k3s from a server over SSH and does not apply; delete the namespaces stackspin-apps, stackspin and flux-system there yourself"
        );
    }
    let confirmed = match confirm {
        Some(name) => name == cluster,
        None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            eprint!(
                "This deletes k3s and every app's data on {}. Type the cluster's name to confirm: ",
                config.ip_address
            );
            let mut answer = String::new();
            std::io::stdin().read_line(&mut answer)?;
            answer.trim() == cluster
        }
        None => false,
    };
    if !confirmed {
        bail!(
            "purge deletes k3s and every app's data on {}: confirm with --confirm {cluster}",
            config.ip_address
        );
    }
    let ssh = ssh_to(&config.ip_address.to_string());
    let mut s = Steps::new(&folder, json);
    if ssh.host_key().await? != stackspin_provision::ssh::HostKey::Known {
        bail!(
            "{}'s host key is not the one known: purge only talks to a server install has trusted",
            config.ip_address
        );
    }
    s.start("purge");
    let out = ssh
        .check("removing k3s", stackspin_provision::server::PURGE_SCRIPT)
        .await?;
    for f in [stackspin_provision::folder::KUBECONFIG, "flux.sha256"] {
        let _ = std::fs::remove_file(folder.file(f));
    }
    s.finish(out.lines().last().unwrap_or("done"));
    output::emit(
        json,
        &serde_json::json!({"cluster": cluster, "purged": true, "steps": s.done}),
        || {
            format!(
                "Purged {cluster}: k3s and the apps' data are gone from {}. The cluster folder (settings and secrets) is kept: `stackspin install {cluster}` starts from scratch.",
                config.ip_address
            )
        },
    )
}

pub async fn node_add(
    root: &Path,
    cluster: &str,
    ip: &str,
    accept: Option<&str>,
    k3s_install_url: Option<&str>,
    json: bool,
) -> Result<()> {
    use stackspin_provision::server;
    let folder = ClusterFolder::open(root, cluster)?;
    let config = folder.config()?;
    if folder.file(EXISTING_CLUSTER).is_file() {
        bail!(
            "{cluster} was installed on an existing cluster (--kubeconfig): add servers to it the way that cluster was made"
        );
    }
    let address: std::net::IpAddr = ip
        .parse()
        .map_err(|_| anyhow::anyhow!("--ip-address {ip:?} is not an IP address"))?;
    let kubeconfig = kubeconfig_for(&folder, None)?;
    let mut s = Steps::new(&folder, json);

    s.start("join token");
    let server_ssh = ssh_to(&config.ip_address.to_string());
    if server_ssh.host_key().await? != stackspin_provision::ssh::HostKey::Known {
        s.fail("unknown server");
        bail!(
            "{}'s host key is not the one known: run `stackspin install {cluster}` first",
            config.ip_address
        );
    }
    let token = server_ssh
        .check(
            "reading the join token",
            "cat /var/lib/rancher/k3s/server/node-token",
        )
        .await?
        .trim()
        .to_string();
    s.finish("read from the server");

    let node = ssh_to(ip);
    confirm_host_key(&node, ip, accept, &mut s).await?;

    s.start("node preflight");
    let facts = server::parse_facts(
        &node
            .check("reading the node's facts", server::FACTS_SCRIPT)
            .await?,
    );
    let checks = server::evaluate(&facts, server::BASE_MEMORY_MIB);
    s.checks("node preflight", &checks)?;

    s.start(&format!("k3s agent {}", server::K3S_VERSION));
    let mut script = server::agent_script(config.ip_address, &token);
    if let Some(url) = k3s_install_url {
        script = script.replace("https://get.k3s.io", url);
    }
    let out = node.check("installing the k3s agent", &script).await?;
    // k3s names a node after its host name.
    let hostname = node
        .check("reading the host name", "hostname")
        .await?
        .trim()
        .to_string();
    s.finish(if out.contains("is installed") {
        "already installed"
    } else {
        "installed"
    });

    s.start("node ready");
    let client = client_for(&kubeconfig).await?;
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let name = loop {
        let found = nodes
            .list(&Default::default())
            .await
            .map_err(|e| anyhow::anyhow!(stackspin_operator::apply::describe(&e)))?
            .items
            .into_iter()
            .find(|n| {
                let st = n.status.as_ref();
                let has_ip = st
                    .and_then(|s| s.addresses.as_ref())
                    .is_some_and(|a| a.iter().any(|a| a.address == address.to_string()));
                let ready = st
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                (has_ip || n.metadata.name.as_deref() == Some(hostname.as_str())) && ready
            });
        if let Some(n) = found {
            break n.metadata.name.unwrap_or_default();
        }
        if std::time::Instant::now() > deadline {
            s.fail("timeout");
            bail!(
                "the node at {ip} did not become ready within 600 s; run node add again to go on waiting"
            );
        }
        s.note("waiting for the node to register");
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    };
    s.finish(&format!("{name} is ready"));
    output::emit(
        json,
        &serde_json::json!({"cluster": cluster, "node": name, "ip_address": ip, "steps": s.done}),
        || format!("{ip} joined {cluster} as node {name}."),
    )
}

/// The server steps: its host key, its requirements, k3s, the kubeconfig brought home.
pub(super) async fn server_steps(
    folder: &ClusterFolder,
    config: &stackspin_platform::ClusterConfig,
    catalog: &Catalog,
    args: &crate::cli::InstallArgs,
    s: &mut Steps<'_>,
) -> Result<std::path::PathBuf> {
    use stackspin_provision::server;
    let ssh = ssh_to(&config.ip_address.to_string());

    confirm_host_key(
        &ssh,
        &config.ip_address.to_string(),
        args.accept_host_key.as_deref(),
        s,
    )
    .await?;

    s.start("server preflight");
    let facts = server::parse_facts(
        &ssh.check("reading the server's facts", server::FACTS_SCRIPT)
            .await?,
    );
    let needed = server::needed_memory_mib(catalog, config)?;
    let mut checks = server::evaluate(&facts, needed);
    checks.extend(server::dns_checks(&config.domain, config.ip_address, resolver()).await);
    s.checks("server preflight", &checks)?;

    s.start(&format!("k3s {}", server::K3S_VERSION));
    let mut script = server::install_script(config);
    if let Some(url) = &args.k3s_install_url {
        script = script.replace("https://get.k3s.io", url);
    }
    let out = ssh.check("installing k3s", &script).await?;
    s.finish(if out.contains("is installed") {
        "already installed"
    } else {
        "installed"
    });

    s.start("kubeconfig");
    let text = ssh
        .check("reading k3s's kubeconfig", "cat /etc/rancher/k3s/k3s.yaml")
        .await?;
    let kubeconfig = server::rewrite_kubeconfig(&text, config.ip_address)?;
    let kept = folder.file(stackspin_provision::folder::KUBECONFIG);
    stackspin_provision::folder::write_private(&kept, kubeconfig.as_bytes())?;
    s.finish(&format!("saved to {}", kept.display()));

    s.start("node ready");
    let client = client_for(&kept).await?;
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(args.timeout);
    loop {
        let ready = nodes
            .list(&Default::default())
            .await
            .map(|l| {
                l.items.iter().any(|n| {
                    n.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
            })
            .unwrap_or(false);
        if ready {
            break;
        }
        if std::time::Instant::now() > deadline {
            s.fail("timeout");
            bail!(
                "no node became ready within {} s; run install again to go on waiting",
                args.timeout
            );
        }
        s.note("waiting for a ready node");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    s.finish("ready");
    Ok(kept)
}
