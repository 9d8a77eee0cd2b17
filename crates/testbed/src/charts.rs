//! A Helm chart repository on loopback: the charts under `tests/charts/`, packaged with the
//! test bed's `helm` at the versions a test asks for, indexed, and served over HTTP, so that
//! Flux's source-controller fetches them as it would from a real repository.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use tempfile::TempDir;
use tokio::task::JoinHandle;

use crate::{TestBed, repo_root};

/// One packaged version of a chart under `tests/charts/`.
#[derive(Debug, Clone)]
pub struct ChartVersion {
    pub chart: &'static str,
    pub version: &'static str,
    /// Top-level keys of the chart's `values.yaml` to change in this version, as YAML scalars.
    pub values: Vec<(&'static str, &'static str)>,
}

impl ChartVersion {
    pub fn new(chart: &'static str, version: &'static str) -> Self {
        ChartVersion {
            chart,
            version,
            values: Vec::new(),
        }
    }

    pub fn with_value(mut self, key: &'static str, value: &'static str) -> Self {
        self.values.push((key, value));
        self
    }
}

/// A served chart repository; stops serving when dropped.
#[derive(Debug)]
pub struct ChartRepo {
    pub url: String,
    _dir: TempDir,
    server: JoinHandle<()>,
}

impl Drop for ChartRepo {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl ChartRepo {
    /// Packages each version, writes `index.yaml` and serves the folder on 127.0.0.1.
    pub async fn serve(versions: &[ChartVersion]) -> Result<ChartRepo> {
        let dir = tempfile::tempdir()?;
        let public = dir.path().join("repo");
        std::fs::create_dir(&public)?;
        for v in versions {
            package(v, dir.path(), &public)?;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/", listener.local_addr()?);
        helm(&[
            "repo".as_ref(),
            "index".as_ref(),
            public.as_os_str(),
            "--url".as_ref(),
            url.as_ref(),
        ])?;
        let app = axum::Router::new().fallback_service(tower_http::services::ServeDir::new(public));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(ChartRepo {
            url,
            _dir: dir,
            server,
        })
    }
}

fn package(v: &ChartVersion, work: &Path, out: &Path) -> Result<()> {
    let source = repo_root().join("tests/charts").join(v.chart);
    if !source.join("Chart.yaml").is_file() {
        bail!("no chart at {}", source.display());
    }
    // A copy per version, named as the chart, since helm requires the folder to match.
    let copy = work.join(format!("src-{}", v.version)).join(v.chart);
    copy_dir(&source, &copy)?;
    if !v.values.is_empty() {
        let path = copy.join("values.yaml");
        let text = std::fs::read_to_string(&path)?;
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        for (key, value) in &v.values {
            let prefix = format!("{key}:");
            let line = lines
                .iter_mut()
                .find(|l| l.starts_with(&prefix))
                .with_context(|| format!("{}: values.yaml has no top-level {key}", v.chart))?;
            *line = format!("{key}: {value}");
        }
        std::fs::write(&path, lines.join("\n") + "\n")?;
    }
    helm(&[
        "package".as_ref(),
        copy.as_os_str(),
        "--version".as_ref(),
        v.version.as_ref(),
        "--destination".as_ref(),
        out.as_os_str(),
    ])
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn helm(args: &[&std::ffi::OsStr]) -> Result<()> {
    let helm = TestBed::bin("helm");
    // Helm keeps caches and repository lists under HOME; tests must not touch the user's.
    let home = tempfile::tempdir()?;
    let out = Command::new(&helm)
        .args(args)
        .env("HOME", home.path())
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .output()
        .with_context(|| format!("could not run {} (scripts/testbed build)", helm.display()))?;
    if !out.status.success() {
        bail!(
            "helm {:?}: {}",
            args,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
