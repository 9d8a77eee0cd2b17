//! The cluster's desired state: `(ClusterConfig, &Catalog, &GeneratedSecrets)` → typed
//! Kubernetes objects (Flux sources and HelmReleases, the ConfigMaps and Secrets that carry
//! their values, cert-manager ClusterIssuers, Traefik middlewares, namespaces).
//!
//! Architecture invariant: no I/O and no clock. The maintenance-window decision takes the
//! time as an argument and the manifests come back as file contents, so every output is a
//! snapshot test. Writing files and talking to the API server are the callers' jobs.
//!
//! Architecture invariant: nothing secret is in a HelmRelease or a ConfigMap; it travels in
//! Secrets (`valuesFrom`, or a Secret the chart reads as environment variables).

pub mod config;
pub mod crds;
pub mod desired;
pub mod handover;
pub mod manifests;
pub mod secrets;
pub mod window;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::Resource;
use serde_json::Value;

pub use config::{Acme, AppChoice, ClusterConfig, Mail, RawClusterConfig};
pub use desired::{Placement, Tuning, desired_state, placements};
pub use handover::{HANDOVER_SECRET, Handover, HandoverApp};
pub use secrets::GeneratedSecrets;
pub use window::Window;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    #[error("{0}")]
    Config(String),
    #[error("{0:?} is not in the catalog (see `stackspin app catalog`)")]
    UnknownApp(String),
    #[error("generated secret {0} is missing; generate secrets before rendering")]
    MissingSecret(String),
    #[error("could not render {0}")]
    Render(String),
}

/// One object of the desired state.
// A HelmRelease is large and the others small; the list is built once per reconcile, so
// boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Object {
    Namespace(Namespace),
    ConfigMap(ConfigMap),
    Secret(Secret),
    HelmRepository(crds::HelmRepository),
    HelmChart(crds::HelmChart),
    OCIRepository(crds::OCIRepository),
    HelmRelease(crds::HelmRelease),
    ClusterIssuer(crds::ClusterIssuer),
    Middleware(crds::Middleware),
}

macro_rules! each {
    ($self:ident, $o:ident => $e:expr) => {
        match $self {
            Object::Namespace($o) => $e,
            Object::ConfigMap($o) => $e,
            Object::Secret($o) => $e,
            Object::HelmRepository($o) => $e,
            Object::HelmChart($o) => $e,
            Object::OCIRepository($o) => $e,
            Object::HelmRelease($o) => $e,
            Object::ClusterIssuer($o) => $e,
            Object::Middleware($o) => $e,
        }
    };
}

fn type_meta<K: Resource<DynamicType = ()>>(_: &K) -> (String, String) {
    (K::api_version(&()).into_owned(), K::kind(&()).into_owned())
}

impl Object {
    pub fn kind(&self) -> String {
        each!(self, o => type_meta(o).1)
    }

    pub fn api_version(&self) -> String {
        each!(self, o => type_meta(o).0)
    }

    pub fn name(&self) -> String {
        each!(self, o => o.meta().name.clone().unwrap_or_default())
    }

    pub fn namespace(&self) -> Option<String> {
        each!(self, o => o.meta().namespace.clone())
    }

    /// Whether the object holds secrets (written with private permissions, never logged).
    pub fn is_secret(&self) -> bool {
        matches!(self, Object::Secret(_))
    }

    /// The object as the API server takes it, with `apiVersion` and `kind`.
    pub fn to_value(&self) -> Value {
        let mut v = each!(self, o => serde_json::to_value(o).unwrap_or(Value::Null));
        if let Value::Object(map) = &mut v {
            map.insert("apiVersion".into(), Value::String(self.api_version()));
            map.insert("kind".into(), Value::String(self.kind()));
        }
        v
    }
}
