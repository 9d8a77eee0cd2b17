//! Velero on the test bed: the real Velero server and its AWS plugin, built from their Go
//! modules by `scripts/testbed build`, run as processes against the test bed's API server
//! with Velero's CRDs, and a real S3 API on loopback (moto in server mode, from PyPI, in the
//! test venv). Stand-ins, named: the Velero chart is not installed (its images cannot run
//! here); this applies what the chart would (CRDs, the credentials Secret, the
//! BackupStorageLocation) and runs the server outside the cluster. There is no node agent, so
//! no volume data is copied: pods never run on the simulated node.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::platform::kubectl;
use crate::{TestBed, repo_root};

/// Where Velero runs: the core namespace, as the catalog places it.
pub const NAMESPACE: &str = "stackspin";
pub const BUCKET: &str = "stackspin-backups";
pub const PREFIX: &str = "cluster";
const ACCESS_KEY: &str = "testbed-access-key";
const SECRET_KEY: &str = "testbed-secret-key";

/// A running S3 server and Velero server; both stop when this is dropped.
pub struct Velero {
    pub s3_url: String,
    moto: Child,
    server: Child,
    dir: TempDir,
}

impl Drop for Velero {
    fn drop(&mut self) {
        for child in [&mut self.server, &mut self.moto] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn curl(args: &[&str]) -> Result<String> {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10"])
        .args(args)
        .output()
        .context("running curl")?;
    if !out.status.success() {
        bail!(
            "curl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Velero {
    /// Starts a fresh S3 server with an empty bucket and a Velero server whose default
    /// location is that bucket, after removing the Backups and Restores an earlier test left.
    /// Returns once Velero has validated the location.
    pub async fn start(bed: &TestBed) -> Result<Velero> {
        let moto_bin = repo_root().join("target/peers-venv/bin/moto_server");
        if !moto_bin.exists() {
            bail!(
                "{} is missing: run scripts/install-test-deps",
                moto_bin.display()
            );
        }
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let s3_url = format!("http://127.0.0.1:{port}");
        let moto = Command::new(&moto_bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("moto.log"))?)
            .spawn()
            .context("starting moto_server")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while curl(&[&format!("{s3_url}/")]).is_err() {
            if Instant::now() > deadline {
                bail!("moto_server did not answer on {s3_url}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        curl(&["-X", "PUT", &format!("{s3_url}/{BUCKET}")])?;

        let crds = TestBed::bin("velero-crds");
        kubectl(
            bed,
            &["apply", "--server-side", "-f", &crds.to_string_lossy()],
        )?;
        kubectl(
            bed,
            &[
                "wait",
                "--for=condition=Established",
                "crd/backups.velero.io",
                "crd/restores.velero.io",
                "crd/backupstoragelocations.velero.io",
                "--timeout=60s",
            ],
        )?;
        let manifest = format!(
            r#"apiVersion: v1
kind: Namespace
metadata: {{name: {NAMESPACE}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: velero, namespace: {NAMESPACE}}}
stringData:
  cloud: |
    [default]
    aws_access_key_id={ACCESS_KEY}
    aws_secret_access_key={SECRET_KEY}
---
# What the chart's Deployment would be: the restore reads Velero's own image from it (for
# the restore helper). No replica runs; the server runs outside the cluster.
apiVersion: apps/v1
kind: Deployment
metadata: {{name: velero, namespace: {NAMESPACE}}}
spec:
  replicas: 0
  selector: {{matchLabels: {{name: velero}}}}
  template:
    metadata: {{labels: {{name: velero}}}}
    spec:
      containers:
        - name: velero
          image: velero/velero:v1.18.3
---
apiVersion: velero.io/v1
kind: BackupStorageLocation
metadata: {{name: default, namespace: {NAMESPACE}}}
spec:
  provider: aws
  default: true
  objectStorage: {{bucket: {BUCKET}, prefix: {PREFIX}}}
  credential: {{name: velero, key: cloud}}
  config: {{region: us-east-1, s3Url: "{s3_url}", s3ForcePathStyle: "true"}}
"#
        );
        let file = dir.path().join("velero.yaml");
        std::fs::write(&file, manifest)?;
        for kind in ["restores.velero.io", "backups.velero.io"] {
            kubectl(
                bed,
                &["delete", kind, "--all", "-n", NAMESPACE, "--wait=false"],
            )?;
        }
        kubectl(bed, &["apply", "-f", &file.to_string_lossy()])?;

        let log = dir.path().join("velero.log");
        let server = Command::new(TestBed::bin("velero"))
            .args(["server", "--namespace", NAMESPACE, "--kubeconfig"])
            .arg(bed.kubeconfig())
            .arg("--plugin-dir")
            .arg(TestBed::bin("velero-plugins"))
            .args([
                "--metrics-address",
                &format!("127.0.0.1:{}", free_port()?),
                "--profiler-address",
                &format!("127.0.0.1:{}", free_port()?),
                "--store-validation-frequency",
                "5s",
                "--backup-sync-period",
                "5s",
            ])
            .env("VELERO_SCRATCH_DIR", dir.path().join("scratch"))
            .current_dir(dir.path())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::options().append(true).open(&log)?)
            .spawn()
            .context("starting velero server")?;
        let velero = Velero {
            s3_url,
            moto,
            server,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let phase = kubectl(
                bed,
                &[
                    "get",
                    "backupstoragelocation",
                    "default",
                    "-n",
                    NAMESPACE,
                    "-o",
                    "jsonpath={.status.phase}",
                ],
            )?;
            if phase == "Available" {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "Velero did not validate its location ({phase:?}); its log ends: {}",
                    velero.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok(velero)
    }

    /// The `backup_s3_*` settings of a cluster.toml pointing at this bucket.
    pub fn cluster_toml(&self) -> String {
        format!(
            "backup_s3_url = \"{}\"\nbackup_s3_bucket = \"{BUCKET}\"\nbackup_s3_region = \"us-east-1\"\n\
             backup_s3_prefix = \"{PREFIX}\"\nbackup_s3_aws_access_key_id = \"{ACCESS_KEY}\"\n\
             backup_s3_aws_secret_access_key = \"{SECRET_KEY}\"\n",
            self.s3_url
        )
    }

    /// The keys in the bucket, read through the S3 API.
    pub fn objects(&self) -> Result<Vec<String>> {
        let xml = curl(&[&format!("{}/{BUCKET}?list-type=2", self.s3_url)])?;
        Ok(xml
            .split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect())
    }

    /// One object of the bucket.
    pub fn object(&self, key: &str) -> Result<Vec<u8>> {
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "10"])
            .arg(format!("{}/{BUCKET}/{key}", self.s3_url))
            .output()?;
        if !out.status.success() {
            bail!("cannot read {key} from the bucket");
        }
        Ok(out.stdout)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("velero.log")
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}
