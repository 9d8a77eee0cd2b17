//! `stackspin app catalog|install|uninstall|status|update|auto-update`: what should be on the
//! cluster, written to the database. The operator in `serve` makes the cluster match; these
//! commands never talk to Kubernetes themselves, so they work the same with or without one.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use stackspin_catalog::{AdminMapping, Catalog, Entry};
use stackspin_domain::settings::Settings;
use stackspin_storage::InstalledApp;
use stackspin_web::platform::request_install;

use crate::apps::record;
use crate::{open_existing_store, output};

/// The catalog `serve` and these commands use: the built-in one, or a folder given with
/// `--catalog` (one folder per app).
pub fn load_catalog(dir: Option<&Path>) -> Result<Arc<Catalog>> {
    let Some(dir) = dir else {
        return Ok(Arc::new(Catalog::builtin()?.clone()));
    };
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the catalog folder {}", dir.display()))?;
    for app in entries {
        let app = app?;
        if !app.file_type()?.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(app.path())? {
            let file = file?;
            let text = std::fs::read_to_string(file.path())
                .with_context(|| format!("cannot read {}", file.path().display()))?;
            files.push((
                format!(
                    "{}/{}",
                    app.file_name().to_string_lossy(),
                    file.file_name().to_string_lossy()
                ),
                text,
            ));
        }
    }
    let catalog = Catalog::from_files(files.iter().map(|(p, t)| (p.as_str(), t.as_str())))?;
    Ok(Arc::new(catalog))
}

#[derive(Serialize)]
struct CatalogView<'a> {
    name: &'a str,
    title: &'a str,
    summary: &'a str,
    docs: &'a str,
    subdomain: &'a str,
    chart: String,
    version: String,
    updates: String,
    /// `None`: the app has no single sign-on.
    admin_rights: Option<&'a AdminMapping>,
    note: Option<&'a str>,
    installed: Option<&'a InstalledApp>,
}

#[derive(Serialize)]
struct StatusView<'a> {
    #[serde(flatten)]
    row: &'a InstalledApp,
    pending_version: Option<&'a str>,
}

pub async fn catalog(settings: &Settings, catalog: &Catalog, json: bool) -> Result<()> {
    // The catalog is readable before the first start; the installed column needs the database.
    let rows = match open_existing_store(settings).await {
        Ok(store) => store.installed_apps().await?,
        Err(_) => Vec::new(),
    };
    let views: Vec<CatalogView> = catalog
        .installable()
        .map(|e| CatalogView {
            name: &e.name,
            title: &e.title,
            summary: &e.summary,
            docs: &e.docs,
            subdomain: &e.subdomain,
            chart: e.chart_label(),
            version: e.chart.version.to_string(),
            updates: e.chart.updates.to_string(),
            admin_rights: e.oidc.as_ref().map(|o| &o.admin),
            note: e.note.as_deref(),
            installed: rows.iter().find(|r| r.name == e.name),
        })
        .collect();
    output::emit(json, &views, || {
        let rows: Vec<Vec<String>> = views
            .iter()
            .map(|v| {
                vec![
                    v.name.to_string(),
                    v.version.clone(),
                    v.installed
                        .map_or("not installed", |r| r.state.as_str())
                        .to_string(),
                    match v.admin_rights {
                        Some(AdminMapping::Native { .. }) => "from Stackspin roles".to_string(),
                        Some(AdminMapping::Manual { .. }) => "set in the app".to_string(),
                        None => "no single sign-on".to_string(),
                    },
                    v.summary.to_string(),
                ]
            })
            .collect();
        output::table(
            &["NAME", "VERSION", "STATE", "ADMIN RIGHTS", "SUMMARY"],
            &rows,
        )
    })
}

pub async fn install(
    settings: &Settings,
    catalog: &Catalog,
    name: &str,
    subdomain: Option<&str>,
    pin: bool,
    json: bool,
) -> Result<()> {
    let store = open_existing_store(settings).await?;
    let row = request_install(&store, catalog, name, subdomain, !pin).await?;
    // Checked installable above, so the entry is there.
    let Some(entry) = catalog.get(name) else {
        bail!("{name} is not in the catalog");
    };
    record(&store, "app.install", name).await;
    output::emit(json, &row, || {
        format!(
            "Asked to install {} {} on {}. `stackspin serve` installs it when it has a cluster; \
             `stackspin app status {}` follows it.",
            entry.title,
            row.target_version,
            label(entry, row.subdomain.as_deref()),
            name
        )
    })
}

fn label(e: &Entry, subdomain: Option<&str>) -> String {
    match subdomain.unwrap_or(&e.subdomain) {
        "" => "the bare domain".to_string(),
        s => format!("{s}.DOMAIN"),
    }
}

pub async fn uninstall(settings: &Settings, name: &str, purge: bool, json: bool) -> Result<()> {
    let store = open_existing_store(settings).await?;
    let row = store.request_uninstall(name, purge).await?;
    record(
        &store,
        if purge { "app.purge" } else { "app.uninstall" },
        name,
    )
    .await;
    output::emit(json, &row, || {
        if purge {
            format!("Asked to uninstall {name} and remove its data (volumes).")
        } else {
            format!(
                "Asked to uninstall {name}. Its data (volumes) is kept: installing it again \
                 finds it; `stackspin app uninstall {name} --purge` removes it."
            )
        }
    })
}

pub async fn status(settings: &Settings, name: Option<&str>, json: bool) -> Result<()> {
    let store = open_existing_store(settings).await?;
    let rows = match name {
        Some(n) => vec![
            store
                .installed_app(n)
                .await?
                .with_context(|| format!("{n} is not installed"))?,
        ],
        None => store.installed_apps().await?,
    };
    let views: Vec<StatusView> = rows
        .iter()
        .map(|row| StatusView {
            row,
            pending_version: row.pending_version(),
        })
        .collect();
    if json && name.is_some() {
        return output::emit(json, &views[0], String::new);
    }
    output::emit(json, &views, || {
        let rows: Vec<Vec<String>> = views
            .iter()
            .map(|v| {
                vec![
                    v.row.name.clone(),
                    v.row.state.as_str().to_string(),
                    v.row.running_version.clone().unwrap_or_else(|| "-".into()),
                    v.pending_version.unwrap_or("-").to_string(),
                    if v.row.auto_update { "on" } else { "off" }.to_string(),
                    v.row.reason.clone(),
                ]
            })
            .collect();
        output::table(
            &[
                "NAME",
                "STATE",
                "RUNNING",
                "PENDING",
                "AUTO-UPDATE",
                "REASON",
            ],
            &rows,
        )
    })
}

pub async fn update(settings: &Settings, name: Option<&str>, all: bool, json: bool) -> Result<()> {
    let store = open_existing_store(settings).await?;
    let names: Vec<String> = match (name, all) {
        (Some(n), _) => vec![n.to_string()],
        (None, true) => store
            .installed_apps()
            .await?
            .into_iter()
            .filter(|r| r.wanted)
            .map(|r| r.name)
            .collect(),
        (None, false) => bail!("name an app, or pass --all"),
    };
    let mut rows = Vec::new();
    for n in &names {
        rows.push(store.set_app_updates(n, None, true).await?);
        record(&store, "app.update", n).await;
    }
    output::emit(json, &rows, || {
        if rows.is_empty() {
            return "No apps are installed.".into();
        }
        rows.iter()
            .map(|r| match r.pending_version() {
                Some(v) => format!("{}: updating to {v} now.", r.name),
                None => format!(
                    "{}: no update is known yet; the newest version in range is taken as \
                     soon as it is seen.",
                    r.name
                ),
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

pub async fn auto_update(settings: &Settings, name: &str, on: bool, json: bool) -> Result<()> {
    let store = open_existing_store(settings).await?;
    let row = store.set_app_updates(name, Some(on), false).await?;
    record(
        &store,
        if on {
            "app.auto_update_on"
        } else {
            "app.pinned"
        },
        name,
    )
    .await;
    output::emit(json, &row, || {
        if on {
            format!("{name} takes new versions in the maintenance window.")
        } else {
            format!(
                "{name} stays on {} until `stackspin app update {name}`.",
                row.target_version
            )
        }
    })
}
