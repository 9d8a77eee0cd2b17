//! `stackspin create` (and, with the provisioning crate, the other commands run from the
//! admin's machine against a cluster folder).

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use stackspin_catalog::Catalog;
use stackspin_provision::cosmos::{Cosmos, DropletSpec};
use stackspin_provision::create::{CreateReport, CreateRequest};
use stackspin_provision::folder::ClusterFolder;

use crate::cli::CreateArgs;
use crate::output;

/// Progress lines go to stderr, so `--json` output stays one document on stdout.
fn progress(json: bool) -> impl FnMut(&str) {
    move |line: &str| {
        if !json {
            eprintln!("  {line}");
        }
    }
}

pub async fn create(root: &Path, args: &CreateArgs, catalog: &Catalog, json: bool) -> Result<()> {
    let wants_api = args.create_droplet || args.create_domain_records;
    let cosmos = if wants_api {
        let Ok(token) = std::env::var("COSMOS_API_TOKEN") else {
            anyhow::bail!(
                "--create-droplet and --create-domain-records need COSMOS_API_TOKEN: create an API key with Customer rights in the Cosmos Service Centre and export it"
            );
        };
        let mut c = Cosmos::new(std::env::var("COSMOS_API_URL").ok().as_deref(), &token)?;
        if let Some(ms) = std::env::var("STACKSPIN_COSMOS_POLL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            // For tests against a stand-in API that boots VPSs in milliseconds.
            c.poll = std::time::Duration::from_millis(ms);
        }
        Some(c)
    } else {
        None
    };
    let droplet = match (args.create_droplet, &args.create_hostname, args.ssh_key_id) {
        (true, Some(hostname), Some(ssh_key_id)) => Some(DropletSpec {
            hostname: hostname.clone(),
            ssh_key_id,
            region: args.create_region.clone(),
            size_mib: args.create_memory,
            disk_gib: args.create_disk,
            image: args.create_image.clone(),
        }),
        _ => None,
    };
    let req = CreateRequest {
        name: args.cluster.clone(),
        domain: args.domain.clone(),
        subdomain: args.subdomain.clone(),
        ip_address: args.ip_address.clone(),
        admin_email: args.admin_email.clone(),
        apps: args.apps.clone(),
        maintenance_window: args.maintenance_window.clone(),
        time_zone: args.time_zone.clone(),
        droplet,
        domain_records: args.create_domain_records,
    };
    let report =
        stackspin_provision::create::create(root, &req, cosmos.as_ref(), catalog, progress(json))
            .await?;
    output::emit(json, &report, || human(&report))
}

fn human(r: &CreateReport) -> String {
    let mut s = if r.created {
        format!("Created the cluster folder {}", r.folder)
    } else {
        format!("Updated {}", r.folder)
    };
    s.push_str(&format!(
        "\n  domain: {}\n  IP address: {}",
        r.domain, r.ip_address
    ));
    if let Some(d) = &r.droplet {
        s.push_str(&format!(
            "\n  VPS: {} (id {}, {}){}",
            d.hostname,
            d.id,
            d.ip_address,
            if d.created_now {
                ""
            } else {
                ", made by an earlier run"
            }
        ));
    }
    for rec in &r.records_created {
        s.push_str(&format!("\n  DNS record created: {rec}"));
    }
    if !r.secrets_added.is_empty() {
        s.push_str(&format!(
            "\n  generated {} secrets (kept in secrets.toml, mode 0600)",
            r.secrets_added.len()
        ));
    }
    s.push_str(&format!(
        "\nNext: add outgoing mail and backup settings to {}/cluster.toml if you have them, then run `stackspin install {}`.",
        r.folder, r.cluster
    ));
    s
}

/// Shows a long step: a spinner with its name and elapsed time on a terminal, plain lines
/// otherwise (and nothing on stdout, which `--json` keeps for its document). Every step is
/// also written to the cluster folder's install.log.
struct Steps<'a> {
    folder: &'a ClusterFolder,
    json: bool,
    spinner: Option<indicatif::ProgressBar>,
    started: std::time::Instant,
    name: String,
    done: Vec<StepReport>,
}

#[derive(Debug, Clone, serde::Serialize)]
struct StepReport {
    step: String,
    result: String,
    seconds: f64,
}

impl<'a> Steps<'a> {
    fn new(folder: &'a ClusterFolder, json: bool) -> Self {
        Steps {
            folder,
            json,
            spinner: None,
            started: std::time::Instant::now(),
            name: String::new(),
            done: Vec::new(),
        }
    }

    fn start(&mut self, name: &str) {
        self.name = name.to_string();
        self.started = std::time::Instant::now();
        self.folder.log(&format!("start: {name}"));
        if self.json {
            return;
        }
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {prefix} [{elapsed}] {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.set_prefix(name.to_string());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            self.spinner = Some(bar);
        } else {
            eprintln!("- {name}");
        }
    }

    fn note(&mut self, line: &str) {
        self.folder.log(&format!("  {}: {line}", self.name));
        if let Some(bar) = &self.spinner {
            bar.set_message(line.to_string());
        }
    }

    fn line(&mut self, line: &str) {
        self.folder.log(&format!("  {}: {line}", self.name));
        if self.json {
            return;
        }
        match &self.spinner {
            Some(bar) => bar.println(format!("  {line}")),
            None => eprintln!("  {line}"),
        }
    }

    fn finish(&mut self, result: &str) {
        let secs = self.started.elapsed().as_secs_f64();
        self.folder
            .log(&format!("done: {} ({result}, {secs:.1} s)", self.name));
        if let Some(bar) = self.spinner.take() {
            bar.finish_and_clear();
        }
        if !self.json {
            eprintln!("✓ {}: {result} ({secs:.1} s)", self.name);
        }
        self.done.push(StepReport {
            step: self.name.clone(),
            result: result.to_string(),
            seconds: (secs * 10.0).round() / 10.0,
        });
    }

    fn fail(&mut self, why: &str) {
        self.folder.log(&format!("failed: {} ({why})", self.name));
        if let Some(bar) = self.spinner.take() {
            bar.finish_and_clear();
        }
        if !self.json {
            eprintln!("✗ {}", self.name);
        }
    }
}

/// The cluster folder's kubeconfig, taking `given` into the folder first (mode 0600).
fn kubeconfig_for(folder: &ClusterFolder, given: Option<&Path>) -> Result<std::path::PathBuf> {
    let kept = folder.file(stackspin_provision::folder::KUBECONFIG);
    if let Some(path) = given {
        let text = std::fs::read(path)
            .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
        stackspin_provision::folder::write_private(&kept, &text)?;
    }
    if !kept.is_file() {
        bail!(
            "{} has no kubeconfig yet: run `stackspin install {}` first",
            folder.dir.display(),
            folder.name
        );
    }
    Ok(kept)
}

/// Marks a folder whose cluster was given with --kubeconfig: later runs use that cluster and
/// never SSH to the server.
const EXISTING_CLUSTER: &str = "existing-cluster";

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
    for c in &checks {
        s.line(&format!(
            "{} {}: {}",
            if c.ok { "pass" } else { "FAIL" },
            c.what,
            c.found
        ));
    }
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.what.as_str())
        .collect();
    if !failed.is_empty() {
        s.fail("preflight");
        bail!("node preflight failed: {}", failed.join("; "));
    }
    s.finish("passed");

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
async fn server_steps(
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
    for c in &checks {
        s.line(&format!(
            "{} {}: {}",
            if c.ok { "pass" } else { "FAIL" },
            c.what,
            c.found
        ));
    }
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.what.as_str())
        .collect();
    if !failed.is_empty() {
        s.fail("preflight");
        bail!("server preflight failed: {}", failed.join("; "));
    }
    s.finish("passed");

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

async fn client_for(kubeconfig: &Path) -> Result<kube::Client> {
    stackspin_operator::connect(Some(kubeconfig))
        .await?
        .context("no cluster client")
}

#[derive(serde::Serialize)]
struct Credentials {
    login_url: String,
    email: String,
    password: String,
}

fn credentials_of(
    config: &stackspin_platform::ClusterConfig,
    catalog: &Catalog,
    password: String,
) -> Credentials {
    Credentials {
        login_url: format!(
            "https://{}/",
            stackspin_platform::desired::dashboard_host(catalog, config)
        ),
        email: config.admin_email.clone(),
        password,
    }
}

pub async fn install(
    root: &Path,
    args: &crate::cli::InstallArgs,
    catalog: &Catalog,
    json: bool,
) -> Result<()> {
    use stackspin_provision::install as steps;
    let folder = ClusterFolder::open(root, &args.cluster)?;
    let config = folder.config()?;
    let mut s = Steps::new(&folder, json);
    folder.log(&format!(
        "install {} (stackspin {})",
        folder.name,
        env!("CARGO_PKG_VERSION")
    ));
    let existing = folder.file(EXISTING_CLUSTER);
    let kubeconfig = if args.kubeconfig.is_some() || existing.is_file() {
        let k = kubeconfig_for(&folder, args.kubeconfig.as_deref())?;
        stackspin_provision::folder::write_private(
            &existing,
            b"# This cluster was given with --kubeconfig: install does not SSH to its server.\n",
        )?;
        k
    } else {
        server_steps(&folder, &config, catalog, args, &mut s).await?
    };

    s.start("secrets");
    let (secrets, added) = folder.ensure_secrets(catalog, &config)?;
    s.finish(&if added.is_empty() {
        "all there".to_string()
    } else {
        format!("generated {}", added.len())
    });

    s.start("preflight");
    let client = client_for(&kubeconfig).await?;
    let checks = steps::preflight(&client).await;
    for c in &checks {
        s.line(&format!(
            "{} {}: {}",
            if c.ok { "pass" } else { "FAIL" },
            c.what,
            c.found
        ));
    }
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.what.as_str())
        .collect();
    if !failed.is_empty() {
        s.fail("preflight");
        bail!("preflight failed: {}", failed.join("; "));
    }
    s.finish("passed");

    s.start(&format!("Flux {}", steps::FLUX_VERSION));
    if steps::flux_installed(&client).await? {
        s.finish("already installed");
    } else {
        let url = args
            .flux_manifest_url
            .clone()
            .unwrap_or_else(steps::flux_manifest_url);
        s.note(&format!("downloading {url}"));
        let manifest = steps::fetch_flux_manifest(&url).await?;
        // Trust on first download: the digest is kept, and a later download of the same
        // version must match it.
        let digest = steps::sha256_hex(&manifest);
        let pin = folder.file("flux.sha256");
        let line = format!("{} {digest}\n", steps::FLUX_VERSION);
        match std::fs::read_to_string(&pin) {
            Ok(kept) if kept.starts_with(steps::FLUX_VERSION) && kept != line => {
                s.fail("digest");
                bail!(
                    "Flux {}'s manifest from {url} is not the one installed before (sha256 {digest}, kept: {}); remove {} only if you trust the new one",
                    steps::FLUX_VERSION,
                    kept.trim(),
                    pin.display()
                );
            }
            _ => stackspin_provision::folder::write_private(&pin, line.as_bytes())?,
        }
        s.note("applying");
        let n = steps::apply_flux(&client, &manifest).await?;
        s.finish(&format!("applied {n} objects"));
    }

    s.start("platform");
    let objects = steps::platform_objects(&client, catalog, &config, &secrets).await?;
    // cert-manager's ClusterIssuers need its CRDs, which its chart brings: after the core.
    let (later, now): (Vec<_>, Vec<_>) = objects.into_iter().partition(steps::needs_core);
    let changed = steps::apply_objects(&client, &now).await?;
    s.finish(&format!("{} objects, {changed} changed", now.len()));

    s.start("waiting for the core");
    let timeout = std::time::Duration::from_secs(args.timeout);
    let waited = steps::wait_core(&client, catalog, timeout, |w| s.note(w)).await;
    if let Err(e) = waited {
        s.fail(&e.to_string());
        return Err(e.into());
    }
    s.finish("ready");

    s.start("certificate issuers");
    let changed = steps::apply_objects(&client, &later).await?;
    s.finish(&format!("{} objects, {changed} changed", later.len()));

    let password = secrets
        .get(stackspin_catalog::CONTROL_PLANE, "setup_password")
        .unwrap_or_default()
        .to_string();
    let creds = credentials_of(&config, catalog, password);
    folder.log("installed");
    #[derive(serde::Serialize)]
    struct Report<'a> {
        cluster: &'a str,
        steps: &'a [StepReport],
        credentials: &'a Credentials,
    }
    output::emit(
        json,
        &Report {
            cluster: &folder.name,
            steps: &s.done,
            credentials: &creds,
        },
        || {
            format!(
                "Stackspin is installed on {}.\nLog in at {} with the setup credentials:\n  email:    {}\n  password: {}\n(`stackspin admin-credentials {}` shows them again.)",
                folder.name, creds.login_url, creds.email, creds.password, folder.name
            )
        },
    )
}

pub async fn admin_credentials(
    root: &Path,
    cluster: &str,
    catalog: &Catalog,
    json: bool,
) -> Result<()> {
    use k8s_openapi::api::core::v1::Secret;
    let folder = ClusterFolder::open(root, cluster)?;
    let config = folder.config()?;
    let kubeconfig = kubeconfig_for(&folder, None)?;
    let client = client_for(&kubeconfig).await?;
    let entry = catalog
        .get(stackspin_catalog::CONTROL_PLANE)
        .context("the catalog has no control plane entry")?;
    let api: kube::Api<Secret> =
        kube::Api::namespaced(client, stackspin_platform::desired::CORE_NAMESPACE);
    let secret = api
        .get_opt(&entry.secret_name())
        .await
        .map_err(|e| anyhow::anyhow!(stackspin_operator::apply::describe(&e)))?
        .with_context(|| {
            format!(
                "{cluster} has no {} Secret: run `stackspin install {cluster}` first",
                entry.secret_name()
            )
        })?;
    let password = secret
        .data
        .as_ref()
        .and_then(|d| d.get("setup-password"))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .context("the control plane's Secret has no setup-password")?;
    let creds = credentials_of(&config, catalog, password);
    output::emit(json, &creds, || {
        format!(
            "Setup credentials of {cluster} (log in at {}):\n  email:    {}\n  password: {}\nThese are the setup credentials: they are not updated when the admin changes the password.",
            creds.login_url, creds.email, creds.password
        )
    })
}

pub fn secrets(root: &Path, cluster: &str, name: Option<&str>, json: bool) -> Result<()> {
    let folder = ClusterFolder::open(root, cluster)?;
    let all = folder.secrets()?;
    let rows: Vec<(String, String, String)> = all
        .all()
        .map(|(a, n, v)| (a.to_string(), n.to_string(), v.to_string()))
        .filter(|(a, n, _)| name.is_none_or(|want| want == format!("{a}.{n}")))
        .collect();
    if let Some(want) = name
        && rows.is_empty()
    {
        bail!(
            "{cluster} has no secret {want} (names are app.name, as `stackspin secrets {cluster}` lists them)"
        );
    }
    #[derive(serde::Serialize)]
    struct Row<'a> {
        name: String,
        value: &'a str,
    }
    let view: Vec<Row> = rows
        .iter()
        .map(|(a, n, v)| Row {
            name: format!("{a}.{n}"),
            value: v,
        })
        .collect();
    output::emit(json, &view, || {
        if name.is_some() {
            return view
                .first()
                .map(|r| r.value.to_string())
                .unwrap_or_default();
        }
        output::table(
            &["SECRET", "VALUE"],
            &view
                .iter()
                .map(|r| vec![r.name.clone(), r.value.to_string()])
                .collect::<Vec<_>>(),
        )
    })
}

pub async fn info(root: &Path, cluster: &str, catalog: &Catalog, json: bool) -> Result<()> {
    use k8s_openapi::api::core::v1::Node;
    use stackspin_platform::crds::HelmRelease;
    let folder = ClusterFolder::open(root, cluster)?;
    let config = folder.config()?;
    let kubeconfig = kubeconfig_for(&folder, None)?;
    let client = client_for(&kubeconfig).await?;
    let describe = |e: kube::Error| anyhow::anyhow!(stackspin_operator::apply::describe(&e));
    let version = client.apiserver_version().await.map_err(describe)?;
    let nodes: kube::Api<Node> = kube::Api::all(client.clone());
    let nodes: Vec<serde_json::Value> = nodes
        .list(&Default::default())
        .await
        .map_err(describe)?
        .items
        .into_iter()
        .map(|n| {
            let ready = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .is_some_and(|c| c.status == "True");
            let info = n.status.as_ref().and_then(|s| s.node_info.as_ref());
            serde_json::json!({
                "name": n.metadata.name,
                "ready": ready,
                "kubelet": info.map(|i| i.kubelet_version.clone()),
                "os": info.map(|i| i.os_image.clone()),
            })
        })
        .collect();
    let hosts: std::collections::BTreeMap<String, Option<String>> =
        stackspin_platform::placements(catalog, &config)
            .map(|ps| {
                ps.iter()
                    .map(|p| (p.entry.name.clone(), p.url().map(|u| format!("{u}/"))))
                    .collect()
            })
            .unwrap_or_default();
    let mut apps = Vec::new();
    for ns in [
        stackspin_platform::desired::CORE_NAMESPACE,
        stackspin_platform::desired::APPS_NAMESPACE,
    ] {
        let api: kube::Api<HelmRelease> = kube::Api::namespaced(client.clone(), ns);
        for r in api.list(&Default::default()).await.map_err(describe)?.items {
            let name = r.metadata.name.clone().unwrap_or_default();
            let ready = r
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready").cloned());
            // Where cluster.toml puts it (its subdomain, or the bare domain), else the
            // catalog's default for an app installed from the Dashboard.
            let url = hosts.get(&name).cloned().flatten().or_else(|| {
                catalog
                    .get(&name)
                    .filter(|e| !e.subdomain.is_empty() && e.ingress_annotations.is_some())
                    .map(|e| format!("https://{}.{}/", e.subdomain, config.domain))
            });
            apps.push(serde_json::json!({
                "name": name,
                "namespace": ns,
                "version": r.spec.chart.as_ref().and_then(|c| c.spec.version.clone()),
                "ready": ready.as_ref().is_some_and(|c| c.status == "True"),
                "reason": ready.map(|c| c.message).unwrap_or_default(),
                "url": url,
            }));
        }
    }
    let flux = stackspin_provision::install::flux_installed(&client).await?;
    let view = serde_json::json!({
        "cluster": cluster,
        "domain": config.domain,
        "ip_address": config.ip_address.to_string(),
        "kubernetes": version.git_version,
        "flux": if flux { Some(stackspin_provision::install::FLUX_VERSION) } else { None },
        "dashboard": format!("https://{}/", stackspin_platform::desired::dashboard_host(catalog, &config)),
        "nodes": nodes,
        "apps": apps,
    });
    output::emit(json, &view, || {
        let mut s = format!(
            "{cluster}: {} ({})\n  Kubernetes {}, Flux {}\n  Dashboard: {}\nNodes:",
            view["domain"].as_str().unwrap_or_default(),
            view["ip_address"].as_str().unwrap_or_default(),
            view["kubernetes"].as_str().unwrap_or_default(),
            view["flux"].as_str().unwrap_or("not installed"),
            view["dashboard"].as_str().unwrap_or_default(),
        );
        for n in &nodes {
            s.push_str(&format!(
                "\n  {} {} ({})",
                n["name"].as_str().unwrap_or_default(),
                if n["ready"] == true {
                    "ready"
                } else {
                    "NOT READY"
                },
                n["kubelet"].as_str().unwrap_or_default()
            ));
        }
        s.push_str("\nApps:\n");
        s.push_str(&output::table(
            &["NAME", "VERSION", "STATE", "URL"],
            &apps
                .iter()
                .map(|a| {
                    vec![
                        a["name"].as_str().unwrap_or_default().to_string(),
                        a["version"].as_str().unwrap_or("-").to_string(),
                        if a["ready"] == true {
                            "ready".to_string()
                        } else {
                            format!("not ready: {}", a["reason"].as_str().unwrap_or_default())
                        },
                        a["url"].as_str().unwrap_or("-").to_string(),
                    ]
                })
                .collect::<Vec<_>>(),
        ));
        s
    })
}
