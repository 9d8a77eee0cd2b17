//! The installer's hand-over to the control plane in the cluster.
//!
//! `stackspin install` applies the platform from the admin's machine, with the apps of
//! `cluster.toml` and the secrets of the cluster folder. The control plane it starts has an
//! empty database, and its operator makes the cluster match that database: without a
//! hand-over it would remove the apps just installed and generate new secrets (new database
//! passwords for running apps). So the installer leaves this Secret, and the operator adopts
//! what it says once per change: missing secrets are added (existing ones never replaced),
//! apps it has no record of are recorded as installed. Apps uninstalled in the Dashboard are
//! not brought back, because a hand-over already adopted is not read again.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::desired::CORE_NAMESPACE;
use crate::{ClusterConfig, GeneratedSecrets, PlatformError};

pub const HANDOVER_SECRET: &str = "stackspin-handover";
const KEY: &str = "handover.toml";
/// Not the operator's own `managed-by` value, so the operator never deletes it as an object
/// it no longer wants.
const MANAGED_BY_INSTALLER: (&str, &str) = ("app.kubernetes.io/managed-by", "stackspin-install");

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handover {
    #[serde(default)]
    pub apps: Vec<HandoverApp>,
    #[serde(default)]
    pub secrets: GeneratedSecrets,
}

impl std::fmt::Debug for Handover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handover")
            .field("apps", &self.apps)
            .field("secrets", &self.secrets)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoverApp {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<String>,
}

impl Handover {
    pub fn new(config: &ClusterConfig, secrets: &GeneratedSecrets) -> Handover {
        Handover {
            apps: config
                .apps
                .iter()
                .map(|a| HandoverApp {
                    name: a.name.clone(),
                    subdomain: a.subdomain.clone(),
                })
                .collect(),
            secrets: secrets.clone(),
        }
    }

    pub fn to_toml(&self) -> Result<String, PlatformError> {
        toml::to_string(self).map_err(|e| PlatformError::Config(format!("hand-over: {e}")))
    }

    pub fn from_toml(text: &str) -> Result<Handover, PlatformError> {
        toml::from_str(text).map_err(|e| {
            PlatformError::Config(format!(
                "hand-over: {}",
                e.message().split_whitespace().collect::<Vec<_>>().join(" ")
            ))
        })
    }

    /// The Secret the installer applies in the core namespace.
    pub fn to_secret(&self) -> Result<Secret, PlatformError> {
        Ok(Secret {
            metadata: ObjectMeta {
                name: Some(HANDOVER_SECRET.into()),
                namespace: Some(CORE_NAMESPACE.into()),
                labels: Some(BTreeMap::from([(
                    MANAGED_BY_INSTALLER.0.to_string(),
                    MANAGED_BY_INSTALLER.1.to_string(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                KEY.to_string(),
                ByteString(self.to_toml()?.into_bytes()),
            )])),
            type_: Some("Opaque".into()),
            ..Secret::default()
        })
    }

    pub fn from_secret(secret: &Secret) -> Result<Handover, PlatformError> {
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(KEY))
            .ok_or_else(|| PlatformError::Config(format!("hand-over: no {KEY} in the Secret")))?;
        let text = std::str::from_utf8(&bytes.0)
            .map_err(|_| PlatformError::Config("hand-over: not UTF-8".into()))?;
        Handover::from_toml(text)
    }

    /// What identifies this hand-over, so it is adopted once per change: a SHA-256 of its
    /// text (the text holds secrets; the digest does not reveal them).
    pub fn digest(&self) -> Result<String, PlatformError> {
        use sha2::Digest as _;
        let d = sha2::Sha256::digest(self.to_toml()?.as_bytes());
        Ok(d.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Every secret as `(app, name, value)` rows.
    pub fn secret_rows(&self) -> Vec<(String, String, String)> {
        self.secrets
            .all()
            .map(|(app, name, value)| (app.to_string(), name.to_string(), value.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handover_round_trips_through_its_secret_and_never_shows_a_secret() {
        let mut map = BTreeMap::new();
        map.insert(
            "stackspin".to_string(),
            BTreeMap::from([("secret_key".to_string(), "s3cr3t-value".to_string())]),
        );
        let h = Handover {
            apps: vec![HandoverApp {
                name: "wordpress".into(),
                subdomain: Some(String::new()),
            }],
            secrets: GeneratedSecrets::from_map(map),
        };
        let secret = h.to_secret().expect("secret");
        assert_eq!(Handover::from_secret(&secret).expect("reads"), h);
        assert!(!format!("{h:?}").contains("s3cr3t"));
        assert!(!h.digest().expect("digest").contains("s3cr3t"));
        assert_eq!(
            h.secret_rows(),
            vec![(
                "stackspin".to_string(),
                "secret_key".to_string(),
                "s3cr3t-value".to_string()
            )]
        );
    }
}
