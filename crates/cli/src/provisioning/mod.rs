//! The commands run from the admin's machine against a cluster folder: `create`, `install`,
//! `info`, `secrets`, `admin-credentials CLUSTER` here; `test` in `selftest`; `purge`, `node add` and the install's
//! server steps (over SSH) in `server`; the progress display in `steps`.

mod selftest;
mod server;
mod steps;

pub use selftest::{Options as TestOptions, Skip, run as selftest};
pub use server::{node_add, purge};
use steps::{StepReport, Steps};

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

/// The cluster folder's kubeconfig, taking `given` into the folder first (mode 0600).
pub(super) fn kubeconfig_for(
    folder: &ClusterFolder,
    given: Option<&Path>,
) -> Result<std::path::PathBuf> {
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
pub(super) const EXISTING_CLUSTER: &str = "existing-cluster";

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
        server::server_steps(&folder, &config, catalog, args, &mut s).await?
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
    s.checks("preflight", &checks)?;

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
