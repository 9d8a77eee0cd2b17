//! `stackspin manifests`: the cluster's desired state as a kustomize tree, with the generated
//! secrets kept in a file of their own so two runs give the same output.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use stackspin_catalog::Catalog;
use stackspin_platform::{GeneratedSecrets, RawClusterConfig, Tuning, manifests};

use crate::cli::ManifestsArgs;
use crate::output;

/// The marker our trees start with, so an existing folder is replaced only if we wrote it.
const MARKER: &str = "# Written by `stackspin manifests`";

pub fn run(config: Option<&Path>, args: &ManifestsArgs, json: bool) -> Result<()> {
    let mut raw = match config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            RawClusterConfig::from_toml(&text).with_context(|| path.display().to_string())?
        }
        None => RawClusterConfig::default(),
    };
    if let Some(d) = &args.domain {
        raw.domain = Some(d.clone());
    }
    if let Some(ip) = &args.ip_address {
        raw.ip_address = Some(ip.clone());
    }
    if let Some(e) = &args.admin_email {
        raw.admin_email = Some(e.clone());
    }
    if let Some(apps) = &args.apps {
        raw.apps = Some(
            apps.iter()
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect(),
        );
    }
    let cluster = raw.resolve()?;
    let catalog = Catalog::builtin()?;

    let mut secrets = match std::fs::read_to_string(&args.secrets) {
        Ok(text) => GeneratedSecrets::from_toml(&text)
            .with_context(|| args.secrets.display().to_string())?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => GeneratedSecrets::default(),
        Err(e) => bail!("cannot read {}: {e}", args.secrets.display()),
    };
    let entries: Vec<String> = stackspin_platform::placements(catalog, &cluster)?
        .iter()
        .map(|p| p.entry.name.clone())
        .collect();
    let names: Vec<&str> = entries.iter().map(String::as_str).collect();
    let added = secrets.ensure(catalog, &names, stackspin_domain::secret::random_chars)?;
    let objects =
        stackspin_platform::desired_state(catalog, &cluster, &secrets, &Tuning::default())?;
    let files = manifests::tree(&objects)?;

    // The secrets first: a tree that refers to secrets nobody kept would be lost on the next
    // run, while kept secrets without a tree are harmless.
    if !added.is_empty() {
        stackspin_provision::folder::write_private(&args.secrets, secrets.to_toml().as_bytes())?;
    }
    write_tree(&args.out, &files)?;

    output::emit(
        json,
        &serde_json::json!({
            "out": args.out,
            "objects": objects.len(),
            "apps": entries,
            "secrets_added": added,
            "secrets_file": args.secrets,
        }),
        || {
            let out = args.out.display();
            format!(
                "Wrote {} objects for {} to {out} (kubectl apply -k {out}; then, once cert-manager is ready, kubectl apply -k {out}/issuers).{}",
                objects.len(),
                entries.join(", "),
                if added.is_empty() {
                    String::new()
                } else {
                    format!(
                        " Generated {} new secrets in {}: keep that file safe and private.",
                        added.len(),
                        args.secrets.display()
                    )
                },
            )
        },
    )
}

/// Writes the whole tree into a fresh folder beside `out`, then swaps it in: the old tree
/// stays complete until the new one is.
fn write_tree(out: &Path, files: &[manifests::ManifestFile]) -> Result<()> {
    if out.exists() {
        let ours = std::fs::read_to_string(out.join("kustomization.yaml"))
            .map(|t| t.starts_with(MARKER))
            .unwrap_or(false);
        let empty = std::fs::read_dir(out)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !ours && !empty {
            bail!(
                "{} exists and was not written by stackspin manifests; choose another --out",
                out.display()
            );
        }
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".stackspin-manifests")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot write in {}", parent.display()))?;
    for f in files {
        let path = staging.path().join(&f.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(if f.private { 0o600 } else { 0o644 });
        }
        let mut file = opts
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.write_all(f.contents.as_bytes())?;
        file.sync_all()?;
    }
    let staged = staging.keep();
    let old = parent.join(format!(".stackspin-manifests-old-{}", std::process::id()));
    if out.exists() {
        std::fs::rename(out, &old)
            .with_context(|| format!("cannot move the old {} aside", out.display()))?;
    }
    if let Err(e) = std::fs::rename(&staged, out) {
        // Put the old tree back; the new one stays beside it for inspection.
        let _ = std::fs::rename(&old, out);
        bail!("cannot move the new tree to {}: {e}", out.display());
    }
    if old.exists() {
        std::fs::remove_dir_all(&old)
            .with_context(|| format!("cannot remove {}", old.display()))?;
    }
    Ok(())
}
