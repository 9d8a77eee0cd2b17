//! Provisioning from the admin's machine: `stackspin create` and `stackspin install`.
//!
//! - [`folder`]: the cluster folder (`clusters/CLUSTER/`), its files and their atomic writes;
//! - [`cosmos`]: the hosting provider's API (Greenhost Cosmos) for the VPS and DNS records;
//! - [`create`]: the create command's steps, each looking before it makes anything;
//! - [`install`]: the install steps against a cluster's API (preflight, Flux, the platform,
//!   waiting for the core), each detecting whether it is already done;
//! - [`ssh`] and [`server`]: the server itself over SSH (its requirements, k3s, the
//!   kubeconfig).

pub mod cosmos;
pub mod create;
pub mod folder;
pub mod install;
pub mod server;
pub mod ssh;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// Bad input: a flag, a file, a name. Nothing was changed.
    #[error("{0}")]
    Input(String),
    /// The hosting provider's API refused or failed.
    #[error("{0}")]
    Provider(String),
    /// The cluster's API refused or failed.
    #[error("{0}")]
    Cluster(String),
    #[error(transparent)]
    Platform(#[from] stackspin_platform::PlatformError),
}

impl From<kube::Error> for ProvisionError {
    fn from(e: kube::Error) -> Self {
        ProvisionError::Cluster(stackspin_operator::apply::describe(&e))
    }
}
