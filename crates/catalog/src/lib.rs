//! The app catalog: what Stackspin can install, as data.
//!
//! Each app is a folder under the repository's `catalog/` (`app.toml`, `values.yaml`, an
//! optional `mail.yaml`), compiled into the binary by `build.rs` and checked when it loads:
//! an error names the file and the field. The catalog knows apps (charts, update ranges,
//! values, OIDC clients, generated secrets, volumes, role mapping), not Kubernetes: turning
//! entries into cluster objects is `stackspin-platform`'s job.
//!
//! Architecture invariant: no I/O. A test catalog is handed in as `(path, text)` pairs.

mod entry;
mod render;
pub mod requests;
pub mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

pub use entry::{
    AdminMapping, Chart, ChartSource, ClaimShape, Entry, GeneratedSecret, GroupsFrom, Kind, Oidc,
    Requests, SecretFormat, SecretKey, SecretValue, Tool, Volume, When,
};
pub use render::{BackupContext, MailContext, RenderContext, RenderError, Rendered};

/// The label every persistent volume of an app carries; the seed's restore procedure (and
/// ours) selects an app's data by it.
pub const BACKUP_SET_LABEL: &str = "stackspin.net/backupSet";
/// The control plane's own entry: the OIDC issuer, and the only one given the cluster's
/// configuration.
pub const CONTROL_PLANE: &str = "stackspin";

mod files {
    include!(concat!(env!("OUT_DIR"), "/files.rs"));
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("{file}: {field}{}{message}", if field.is_empty() { "" } else { ": " })]
    Parse {
        file: String,
        field: String,
        message: String,
    },
    #[error("{file}: {field}: {message}")]
    Invalid {
        file: String,
        field: String,
        message: String,
    },
    #[error("catalog/{folder}: {message}")]
    Folder { folder: String, message: String },
}

/// A loaded, validated catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    entries: Vec<Entry>,
}

impl Catalog {
    /// The catalog compiled into this binary. Its validity is checked by the crate's tests, so
    /// a failure here is a build defect; it is still reported, not panicked on.
    pub fn builtin() -> Result<&'static Catalog, CatalogError> {
        static BUILTIN: OnceLock<Result<Catalog, CatalogError>> = OnceLock::new();
        BUILTIN
            .get_or_init(|| Catalog::from_files(files::FILES.iter().copied()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Loads a catalog from `(path relative to the catalog folder, text)` pairs, such as
    /// `("nextcloud/app.toml", "...")`.
    pub fn from_files<'a>(
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Catalog, CatalogError> {
        let mut folders: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
        for (path, text) in files {
            let Some((folder, file)) = path.split_once('/') else {
                return Err(CatalogError::Folder {
                    folder: path.to_string(),
                    message: "files belong in a folder per app".into(),
                });
            };
            if file.contains('/') {
                return Err(CatalogError::Folder {
                    folder: folder.to_string(),
                    message: format!("unexpected subfolder in {file:?}"),
                });
            }
            folders.entry(folder).or_default().insert(file, text);
        }
        let mut entries = Vec::new();
        for (folder, files) in &folders {
            for name in files.keys() {
                if !["app.toml", "values.yaml", "mail.yaml", "README.md"].contains(name) {
                    return Err(CatalogError::Folder {
                        folder: folder.to_string(),
                        message: format!(
                            "unexpected file {name:?} (app.toml, values.yaml, mail.yaml, README.md)"
                        ),
                    });
                }
            }
            let need = |name: &str| {
                files
                    .get(name)
                    .copied()
                    .ok_or_else(|| CatalogError::Folder {
                        folder: folder.to_string(),
                        message: format!("{name} is missing"),
                    })
            };
            entries.push(entry::load(
                folder,
                need("app.toml")?,
                need("values.yaml")?,
                files.get("mail.yaml").copied(),
            )?);
        }
        let catalog = Catalog { entries };
        catalog.check_references()?;
        Ok(catalog)
    }

    fn check_references(&self) -> Result<(), CatalogError> {
        let names: BTreeSet<&str> = self.entries.iter().map(|e| e.name.as_str()).collect();
        for e in &self.entries {
            let file = format!("catalog/{}/app.toml", e.name);
            for dep in &e.depends_on {
                if !names.contains(dep.as_str()) {
                    return Err(CatalogError::Invalid {
                        file,
                        field: "depends_on".into(),
                        message: format!("{dep:?} is not in the catalog"),
                    });
                }
            }
            for part in &e.parts_used {
                if self.get(part).and_then(|p| p.part_of.as_deref()) != Some(e.name.as_str()) {
                    return Err(CatalogError::Invalid {
                        file: format!("catalog/{}/values.yaml", e.name),
                        field: format!("part.{part}"),
                        message: format!("{part:?} is not a part of {}", e.name),
                    });
                }
            }
            if let Some(whole) = &e.part_of {
                let Some(parent) = self.get(whole) else {
                    return Err(CatalogError::Invalid {
                        file,
                        field: "part_of".into(),
                        message: format!("{whole:?} is not in the catalog"),
                    });
                };
                if parent.part_of.is_some() {
                    return Err(CatalogError::Invalid {
                        file,
                        field: "part_of".into(),
                        message: format!("{whole:?} is itself a part; parts do not nest"),
                    });
                }
            }
        }
        // Dependencies must not loop, or nothing in the loop could ever become ready.
        for e in &self.entries {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<&str> = e.depends_on.iter().map(String::as_str).collect();
            while let Some(n) = stack.pop() {
                if n == e.name {
                    return Err(CatalogError::Invalid {
                        file: format!("catalog/{}/app.toml", e.name),
                        field: "depends_on".into(),
                        message: "depends on itself through other entries".into(),
                    });
                }
                if seen.insert(n)
                    && let Some(d) = self.get(n)
                {
                    stack.extend(d.depends_on.iter().map(String::as_str));
                }
            }
        }
        Ok(())
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// What an admin can choose to install: whole apps and optional platform parts, not the
    /// core (always there) and not parts of another entry.
    pub fn installable(&self) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(|e| e.kind != Kind::Core && e.part_of.is_none() && !e.with_backup)
    }

    /// The entries installed whenever the cluster has a backup store (Velero).
    pub fn backup_entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.with_backup)
    }

    /// The core entries, installed on every cluster.
    pub fn core(&self) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(|e| e.kind == Kind::Core && e.part_of.is_none())
    }

    /// An entry and the entries that are part of it (Nextcloud and its document editor).
    pub fn with_parts<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.name == name || e.part_of.as_deref() == Some(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalog_loads() {
        let catalog = Catalog::builtin().expect("the built-in catalog is valid");
        for app in [
            "nextcloud",
            "zulip",
            "wekan",
            "wordpress",
            "hedgedoc",
            "monitoring",
        ] {
            assert!(
                catalog.installable().any(|e| e.name == app),
                "{app} is installable"
            );
        }
        assert!(catalog.core().any(|e| e.name == "stackspin"));
        assert!(catalog.core().any(|e| e.name == "cert-manager"));
    }
}
