//! Test support for everything that touches a cluster: the test bed started by
//! `scripts/testbed` (a real kube-apiserver with etcd, controller-manager, scheduler, a kwok
//! node and the Flux controllers), a fresh namespace per test, waits that fail with the
//! object's status and events, ServiceAccount clients for RBAC tests, and a Helm chart
//! repository on loopback.
//!
//! The test bed is shared: `scripts/test` starts one and names its kubeconfig in
//! `STACKSPIN_TESTBED_KUBECONFIG`; without that variable the first test of a test binary starts
//! one of its own, which a watcher process stops when the binary exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Event, Namespace};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

mod charts;
pub mod cosmos;
pub mod platform;
pub mod velero;
mod wait;

pub use charts::{ChartRepo, ChartVersion};

/// A loopback server started by a test; it stops when this is dropped.
pub struct Served(pub tokio::task::JoinHandle<()>);

impl Drop for Served {
    fn drop(&mut self) {
        self.0.abort();
    }
}
pub use wait::{wait_for, wait_for_absent};

/// The environment variable naming a running test bed's admin kubeconfig.
pub const KUBECONFIG_ENV: &str = "STACKSPIN_TESTBED_KUBECONFIG";

/// A running test bed.
#[derive(Debug)]
pub struct TestBed {
    dir: PathBuf,
    kubeconfig: PathBuf,
}

static BED: OnceLock<std::result::Result<TestBed, String>> = OnceLock::new();

/// The repository root, where `scripts/testbed` lives.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl TestBed {
    /// The shared test bed, started on first use. Blocks while it starts (about half a
    /// minute); a failure to start fails every test that asks, with the launcher's reason.
    pub fn get() -> Result<&'static TestBed> {
        BED.get_or_init(|| Self::start().map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| anyhow::anyhow!("the test bed is not available: {e}"))
    }

    fn start() -> Result<TestBed> {
        if let Some(path) = std::env::var_os(KUBECONFIG_ENV) {
            let kubeconfig = PathBuf::from(path);
            if !kubeconfig.is_file() {
                bail!("{KUBECONFIG_ENV}={} is not a file", kubeconfig.display());
            }
            let dir = kubeconfig
                .parent()
                .context("the kubeconfig has no folder")?
                .to_path_buf();
            return Ok(TestBed { dir, kubeconfig });
        }
        let dir = repo_root()
            .join("target")
            .join(format!("testbed-{}", std::process::id()));
        let status = Command::new(repo_root().join("scripts/testbed"))
            .arg("up")
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .status()
            .context("could not run scripts/testbed")?;
        // Whatever happened, stop what was started once this process is gone, even if it
        // dies by a signal: a watcher outside it waits for it, then runs `down`.
        let watcher = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; exec \"$0\" down --dir \"$1\"",
            pid = std::process::id()
        );
        Command::new("setsid")
            .arg("sh")
            .arg("-c")
            .arg(watcher)
            .arg(repo_root().join("scripts/testbed"))
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("could not start the test bed's watcher")?;
        if !status.success() {
            bail!("scripts/testbed up failed ({status}); its output is above");
        }
        Ok(TestBed {
            kubeconfig: dir.join("admin.kubeconfig"),
            dir,
        })
    }

    /// The admin kubeconfig (system:masters).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A built test-bed binary, such as `helm` or `kubectl`.
    pub fn bin(name: &str) -> PathBuf {
        repo_root().join("tests/testbed/bin").join(name)
    }

    /// An admin client. Each test makes its own: a client lives on the runtime that made it.
    pub async fn client(&self) -> Result<Client> {
        client_from(&self.kubeconfig).await
    }

    /// A client that acts as a ServiceAccount, to prove that a role allows what a component
    /// does and refuses the rest. The account must exist.
    pub async fn client_as(&self, namespace: &str, service_account: &str) -> Result<Client> {
        let out = Command::new(repo_root().join("scripts/testbed"))
            .args(["sa-kubeconfig", namespace, service_account, "--dir"])
            .arg(&self.dir)
            .output()
            .context("could not run scripts/testbed sa-kubeconfig")?;
        if !out.status.success() {
            bail!(
                "scripts/testbed sa-kubeconfig {namespace} {service_account}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let path = String::from_utf8(out.stdout).context("kubeconfig path")?;
        client_from(Path::new(path.trim())).await
    }

    /// A fresh namespace for one test, deleted when the returned value drops.
    pub async fn namespace(&self, prefix: &str) -> Result<TestNamespace> {
        let client = self.client().await?;
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("{prefix}-{}", &suffix[..8]);
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {"testbed.stackspin.test/test": prefix}},
        }))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(TestNamespace {
            name,
            kubeconfig: self.kubeconfig.clone(),
        })
    }
}

async fn client_from(kubeconfig: &Path) -> Result<Client> {
    let kc = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// A namespace that belongs to one test.
#[derive(Debug)]
pub struct TestNamespace {
    pub name: String,
    kubeconfig: PathBuf,
}

impl TestNamespace {
    pub fn as_str(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be shutting down: kubectl deletes it,
        // without waiting, so a failed test's objects stay visible until the namespace
        // controller gets to them. STACKSPIN_TESTBED_KEEP keeps them for a look.
        if std::env::var_os("STACKSPIN_TESTBED_KEEP").is_some() {
            return;
        }
        let _ = Command::new(TestBed::bin("kubectl"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["delete", "namespace", &self.name, "--wait=false"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The most recent events about one object, oldest first, as `Type Reason: message` lines.
pub async fn recent_events(
    client: &Client,
    namespace: &str,
    name: &str,
    limit: usize,
) -> Result<Vec<String>> {
    let events = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await?;
    let mut items = events.items;
    items.sort_by_key(|e| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or(e.event_time.as_ref().map(|t| t.0))
    });
    let skip = items.len().saturating_sub(limit);
    Ok(items
        .into_iter()
        .skip(skip)
        .map(|e| {
            format!(
                "{} {}: {}",
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default()
            )
        })
        .collect())
}

/// Deletes an object in the foreground, ignoring one that is already gone.
pub async fn delete_ignoring_absent<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    match api.delete(name, &DeleteParams::foreground()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// How long the controllers are given for one step in tests: generous, because the machine
/// is shared with compilers, but bounded so that a stuck test says why.
pub const STEP: Duration = Duration::from_secs(120);
