//! `stackspin create`: writes the cluster folder, optionally creating the VPS and its DNS
//! records through the Cosmos API first. Nothing is written until everything the flags ask
//! for exists and the configuration checks out, so a failure leaves the folder as it was.

use std::net::IpAddr;
use std::path::Path;

use stackspin_catalog::Catalog;

use crate::ProvisionError;
use crate::cosmos::{Cosmos, DropletSpec};
use crate::folder::{self, CLUSTER_TOML, ClusterFolder, Setting};

#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub name: String,
    /// The positional DOMAIN: the cluster's domain, or with `subdomain` its parent zone.
    pub domain: Option<String>,
    pub subdomain: Option<String>,
    pub ip_address: Option<String>,
    pub admin_email: Option<String>,
    pub apps: Option<Vec<String>>,
    pub maintenance_window: Option<String>,
    pub time_zone: Option<String>,
    pub droplet: Option<DropletSpec>,
    pub domain_records: bool,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CreateReport {
    pub cluster: String,
    pub folder: String,
    pub created: bool,
    pub domain: String,
    pub ip_address: String,
    /// The settings this run wrote.
    pub changed: Vec<String>,
    pub secrets_added: Vec<String>,
    pub droplet: Option<DropletReport>,
    pub records_created: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DropletReport {
    pub id: u64,
    pub hostname: String,
    pub ip_address: String,
    /// False when an earlier run had made it and this one reused it.
    pub created_now: bool,
}

/// The cluster's full domain: DOMAIN, or SUB.DOMAIN when a subdomain is given.
fn full_domain(req: &CreateRequest) -> Option<String> {
    let d = req
        .domain
        .as_deref()?
        .trim_end_matches('.')
        .to_ascii_lowercase();
    Some(match req.subdomain.as_deref() {
        Some(sub) if !sub.is_empty() => format!("{sub}.{d}"),
        _ => d,
    })
}

pub async fn create(
    root: &Path,
    req: &CreateRequest,
    cosmos: Option<&Cosmos>,
    catalog: &Catalog,
    mut progress: impl FnMut(&str),
) -> Result<CreateReport, ProvisionError> {
    let folder = ClusterFolder::at(root, &req.name)?;
    let existing = if folder.exists() {
        Some(folder.read_cluster_toml()?)
    } else {
        None
    };
    if (req.droplet.is_some() || req.domain_records) && cosmos.is_none() {
        return Err(ProvisionError::Input(
            "--create-droplet and --create-domain-records need COSMOS_API_TOKEN in the environment"
                .into(),
        ));
    }
    if req.domain_records && req.domain.is_none() {
        return Err(ProvisionError::Input(
            "--create-domain-records needs DOMAIN (the zone in your Cosmos account)".into(),
        ));
    }
    if req.droplet.is_some() && req.ip_address.is_some() {
        return Err(ProvisionError::Input(
            "--ip-address and --create-droplet exclude each other: the new VPS's address is used"
                .into(),
        ));
    }
    let domain = full_domain(req).or_else(|| existing.is_none().then(|| req.name.clone()));

    // Check the settings before anything is created at the provider: a typo in an app name
    // should not cost a VPS.
    let mut settings = Vec::new();
    if let Some(d) = &domain {
        settings.push(Setting::Text("domain", d.clone()));
    }
    if let Some(e) = &req.admin_email {
        settings.push(Setting::Text("admin_email", e.clone()));
    }
    if let Some(apps) = &req.apps {
        settings.push(Setting::List("apps", apps.clone()));
    }
    if let Some(w) = &req.maintenance_window {
        settings.push(Setting::Text("maintenance_window", w.clone()));
    }
    if let Some(tz) = &req.time_zone {
        settings.push(Setting::Text("time_zone", tz.clone()));
    }
    let planned_ip = req
        .ip_address
        .clone()
        .or_else(|| req.droplet.as_ref().map(|_| "192.0.2.1".to_string()));
    {
        let mut check = settings.clone();
        if let Some(ip) = &planned_ip {
            check.push(Setting::Text("ip_address", ip.clone()));
        }
        let text = folder::edit_cluster_toml(existing.as_deref(), &check)?;
        let config = folder::parse_config(&folder.file(CLUSTER_TOML), &text).map_err(|e| {
            let hint = if existing.is_none() && req.admin_email.is_none() {
                " (a new cluster needs --admin-email)"
            } else if existing.is_none() && planned_ip.is_none() {
                " (a new cluster needs --ip-address IP or --create-droplet)"
            } else {
                ""
            };
            ProvisionError::Input(format!("{e}{hint}"))
        })?;
        stackspin_platform::placements(catalog, &config)?;
    }

    let mut report = CreateReport {
        cluster: req.name.clone(),
        folder: folder.dir.display().to_string(),
        created: existing.is_none(),
        ..CreateReport::default()
    };

    let mut ip: Option<IpAddr> = None;
    if let (Some(cosmos), true) = (cosmos, req.droplet.is_some() || req.domain_records) {
        ip = provider_steps(req, cosmos, &mut report, &mut progress).await?;
    }
    if let Some(text) = &req.ip_address {
        ip = Some(text.parse().map_err(|_| {
            ProvisionError::Input(format!("--ip-address {text:?} is not an IP address"))
        })?);
    }
    if let Some(ip) = ip {
        settings.push(Setting::Text("ip_address", ip.to_string()));
    }

    let text = folder::edit_cluster_toml(existing.as_deref(), &settings)?;
    let config = folder::parse_config(&folder.file(CLUSTER_TOML), &text)?;
    report.domain = config.domain.clone();
    report.ip_address = config.ip_address.to_string();
    report.changed = settings
        .iter()
        .map(|s| match s {
            Setting::Text(k, _) | Setting::List(k, _) => k.to_string(),
        })
        .collect();

    if existing.is_none() {
        // A new folder appears whole or not at all: made beside, then renamed into place.
        std::fs::create_dir_all(root)
            .map_err(|e| ProvisionError::Input(format!("cannot create {}: {e}", root.display())))?;
        let staging = tempfile::Builder::new()
            .prefix(&format!(".{}.partial", req.name))
            .tempdir_in(root)
            .map_err(|e| {
                ProvisionError::Input(format!("cannot write in {}: {e}", root.display()))
            })?;
        let staged = ClusterFolder {
            name: req.name.clone(),
            dir: staging.path().to_path_buf(),
        };
        let (_, added) = staged.ensure_secrets(catalog, &config)?;
        report.secrets_added = added;
        folder::write_private(&staged.file(CLUSTER_TOML), text.as_bytes())?;
        let kept = staging.keep();
        std::fs::rename(&kept, &folder.dir).map_err(|e| {
            let _ = std::fs::remove_dir_all(&kept);
            ProvisionError::Input(format!("cannot create {}: {e}", folder.dir.display()))
        })?;
    } else {
        // Secrets first: a crash in between leaves extra secrets (harmless, only ever added
        // to) and the old settings.
        let (_, added) = folder.ensure_secrets(catalog, &config)?;
        report.secrets_added = added;
        folder::write_private(&folder.file(CLUSTER_TOML), text.as_bytes())?;
    }
    Ok(report)
}

/// The VPS and the DNS records. An error after the VPS exists says so, with its address:
/// running create again reuses it.
async fn provider_steps(
    req: &CreateRequest,
    cosmos: &Cosmos,
    report: &mut CreateReport,
    progress: &mut impl FnMut(&str),
) -> Result<Option<IpAddr>, ProvisionError> {
    let zone = req
        .domain
        .as_deref()
        .map(|d| d.trim_end_matches('.').to_ascii_lowercase());
    // The zone is checked first, so a missing domain costs no VPS.
    let records = match (&zone, req.domain_records) {
        (Some(zone), true) => {
            progress(&format!("checking the DNS zone {zone}"));
            Some(cosmos.records(zone).await?)
        }
        _ => None,
    };
    let mut ip = None;
    if let Some(spec) = &req.droplet {
        progress(&format!("creating the VPS {}", spec.hostname));
        let (droplet, made) = cosmos.find_or_create(spec).await?;
        let exists = |ip: Option<IpAddr>| {
            format!(
                "the VPS {} (id {}{}) exists at the provider and is reused when you run create again",
                droplet.name,
                droplet.id,
                ip.map(|i| format!(", {i}")).unwrap_or_default()
            )
        };
        let (_, address) = cosmos
            .wait_running(droplet.id, |d| {
                progress(&format!("VPS {} is {}", d.name, d.status))
            })
            .await
            .map_err(|e| ProvisionError::Provider(format!("{e}; {}", exists(None))))?;
        report.droplet = Some(DropletReport {
            id: droplet.id,
            hostname: droplet.name.clone(),
            ip_address: address.to_string(),
            created_now: made,
        });
        ip = Some(address);
        if let (Some(zone), Some(records)) = (&zone, &records) {
            dns_steps(req, cosmos, zone, records, address, report, progress)
                .await
                .map_err(|e| ProvisionError::Provider(format!("{e}; {}", exists(Some(address)))))?;
        }
    } else if let (Some(zone), Some(records)) = (&zone, &records) {
        let Some(text) = &req.ip_address else {
            return Err(ProvisionError::Input(
                "--create-domain-records needs --ip-address IP or --create-droplet".into(),
            ));
        };
        let address: IpAddr = text.parse().map_err(|_| {
            ProvisionError::Input(format!("--ip-address {text:?} is not an IP address"))
        })?;
        dns_steps(req, cosmos, zone, records, address, report, progress).await?;
        ip = Some(address);
    }
    Ok(ip)
}

async fn dns_steps(
    req: &CreateRequest,
    cosmos: &Cosmos,
    zone: &str,
    records: &[crate::cosmos::Record],
    ip: IpAddr,
    report: &mut CreateReport,
    progress: &mut impl FnMut(&str),
) -> Result<(), ProvisionError> {
    let sub = req.subdomain.as_deref().filter(|s| !s.is_empty());
    let (a_name, wildcard, target) = match sub {
        Some(s) => (s.to_string(), format!("*.{s}"), format!("{s}.{zone}.")),
        None => ("@".to_string(), "*".to_string(), format!("{zone}.")),
    };
    let kind = if ip.is_ipv4() { "A" } else { "AAAA" };
    progress(&format!("DNS: {kind} {a_name} -> {ip}"));
    if cosmos
        .ensure_record(zone, records, kind, &a_name, &ip.to_string())
        .await?
    {
        report.records_created.push(format!("{kind} {a_name} {ip}"));
    }
    progress(&format!("DNS: CNAME {wildcard} -> {target}"));
    if cosmos
        .ensure_record(zone, records, "CNAME", &wildcard, &target)
        .await?
    {
        report
            .records_created
            .push(format!("CNAME {wildcard} {target}"));
    }
    Ok(())
}
