//! Generated secrets: made once per cluster and never regenerated or overwritten. The seed's
//! 0.7 upgrade lost them when a chart that held them was replaced; here they live outside
//! every chart (the `--secrets` file, or the control plane's database) and are only added to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stackspin_catalog::Catalog;

use crate::PlatformError;

/// The name under which an app's OIDC client secret is kept with its generated secrets.
pub const OIDC_CLIENT_SECRET: &str = "oidc_client_secret";

/// Every app's generated secrets: app → secret name → value.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GeneratedSecrets(BTreeMap<String, BTreeMap<String, String>>);

impl std::fmt::Debug for GeneratedSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: BTreeMap<&String, Vec<&String>> = self
            .0
            .iter()
            .map(|(app, s)| (app, s.keys().collect()))
            .collect();
        f.debug_tuple("GeneratedSecrets").field(&names).finish()
    }
}

impl GeneratedSecrets {
    pub fn from_toml(text: &str) -> Result<Self, PlatformError> {
        toml::from_str(text).map_err(|e| {
            PlatformError::Config(format!(
                "secrets file: {}",
                e.message().split_whitespace().collect::<Vec<_>>().join(" ")
            ))
        })
    }

    pub fn to_toml(&self) -> String {
        // A map of maps of strings always serialises.
        toml::to_string(self).unwrap_or_default()
    }

    pub fn app(&self, app: &str) -> BTreeMap<String, String> {
        self.0.get(app).cloned().unwrap_or_default()
    }

    /// Secrets kept elsewhere (the control plane's database).
    pub fn from_map(map: BTreeMap<String, BTreeMap<String, String>>) -> Self {
        GeneratedSecrets(map)
    }

    pub fn get(&self, app: &str, name: &str) -> Option<&str> {
        self.0.get(app)?.get(name).map(String::as_str)
    }

    /// Adds whatever the named entries need and is missing, with `random(length)` (a string
    /// of that many characters). Existing values are never touched. Returns the names added,
    /// as `app.secret`.
    pub fn ensure(
        &mut self,
        catalog: &Catalog,
        entries: &[&str],
        mut random: impl FnMut(usize) -> String,
    ) -> Result<Vec<String>, PlatformError> {
        let mut added = Vec::new();
        for name in entries {
            let entry = catalog
                .get(name)
                .ok_or_else(|| PlatformError::UnknownApp(name.to_string()))?;
            let mut wanted: Vec<(&str, usize)> = entry
                .secrets
                .iter()
                .map(|s| (s.name.as_str(), s.length))
                .collect();
            if entry.oidc.is_some() {
                wanted.push((OIDC_CLIENT_SECRET, 43));
            }
            for (secret, length) in wanted {
                let slot = self.0.entry(entry.name.clone()).or_default();
                if !slot.contains_key(secret) {
                    let value = random(length);
                    if value.chars().count() != length {
                        return Err(PlatformError::Config(format!(
                            "generated secret {}.{secret} has the wrong length",
                            entry.name
                        )));
                    }
                    slot.insert(secret.to_string(), value);
                    added.push(format!("{}.{secret}", entry.name));
                }
            }
        }
        Ok(added)
    }
}
