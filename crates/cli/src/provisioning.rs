//! `stackspin create` (and, with the provisioning crate, the other commands run from the
//! admin's machine against a cluster folder).

use std::path::Path;

use anyhow::Result;
use stackspin_catalog::Catalog;
use stackspin_provision::cosmos::{Cosmos, DropletSpec};
use stackspin_provision::create::{CreateReport, CreateRequest};

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
