//! Generated secrets: made once per cluster and never regenerated or overwritten. The seed's
//! 0.7 upgrade lost them when a chart that held them was replaced; here they live outside
//! every chart (the `--secrets` file, or the control plane's database) and are only added to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stackspin_catalog::{Catalog, SecretFormat};

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

    /// Every secret as `(app, name, value)`.
    pub fn all(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.0.iter().flat_map(|(app, m)| {
            m.iter()
                .map(move |(name, value)| (app.as_str(), name.as_str(), value.as_str()))
        })
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
            let mut wanted: Vec<(&str, usize, SecretFormat)> = entry
                .secrets
                .iter()
                .map(|s| (s.name.as_str(), s.length, s.format))
                .collect();
            if entry.oidc.is_some() {
                wanted.push((OIDC_CLIENT_SECRET, 43, SecretFormat::Text));
            }
            for (secret, length, format) in wanted {
                let slot = self.0.entry(entry.name.clone()).or_default();
                if !slot.contains_key(secret) {
                    let text = random(length);
                    if text.chars().count() != length {
                        return Err(PlatformError::Config(format!(
                            "generated secret {}.{secret} has the wrong length",
                            entry.name
                        )));
                    }
                    let value = match format {
                        SecretFormat::Text => text,
                        SecretFormat::PlatformKey => platform_key_line(&text),
                    };
                    slot.insert(secret.to_string(), value);
                    added.push(format!("{}.{secret}", entry.name));
                }
            }
        }
        Ok(added)
    }
}

/// A platform key file line made from random text: SHA-256 keeps all of its randomness (up to
/// 256 bits) in the 32 bytes a key needs, so this crate needs no randomness of its own.
fn platform_key_line(random_text: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let key = sha2::Sha256::digest(random_text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(key)
}
