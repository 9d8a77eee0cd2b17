//! SSH to the server as root, with the admin's own setup: the system `ssh` reads their
//! `~/.ssh/config`, agent and known_hosts. An unknown host key is never accepted silently:
//! its fingerprint is shown and must be confirmed (at a prompt, or with
//! `--accept-host-key SHA256:...`); a changed one stops everything.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use crate::ProvisionError;

#[derive(Debug, Clone)]
pub struct Ssh {
    /// `root@HOST`.
    pub target: String,
    /// An ssh_config file to use instead of the user's (`ssh -F`).
    pub config: Option<PathBuf>,
}

/// What `ssh` knows of the server's host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKey {
    Known,
    /// Not in known_hosts: the keys the server offers, with their fingerprints.
    Unknown {
        keys: Vec<String>,
        fingerprints: Vec<String>,
    },
    /// Different from the one in known_hosts: possibly someone in between.
    Changed,
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ssh {
    pub fn new(host: &str, config: Option<PathBuf>) -> Ssh {
        Ssh {
            target: format!("root@{host}"),
            config,
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        if let Some(f) = &self.config {
            c.arg("-F").arg(f);
        }
        c
    }

    fn ssh(&self) -> Command {
        let mut c = self.command("ssh");
        c.args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=10",
        ]);
        c
    }

    /// The effective value of an ssh option for this host (`ssh -G`).
    async fn option(&self, name: &str) -> Result<Option<String>, ProvisionError> {
        let out = self
            .command("ssh")
            .arg("-G")
            .arg(&self.target)
            .output()
            .await
            .map_err(|e| ProvisionError::Input(format!("cannot run ssh: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .map(str::to_string))
    }

    /// Runs `script` with `sh` on the server; the script arrives on stdin, so nothing of it
    /// is in a process list.
    pub async fn run(&self, script: &str) -> Result<Run, ProvisionError> {
        let mut child = self
            .ssh()
            .arg(&self.target)
            .arg("sh -s")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ProvisionError::Input(format!("cannot run ssh: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .await
                .map_err(|e| ProvisionError::Cluster(format!("ssh {}: {e}", self.target)))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| ProvisionError::Cluster(format!("ssh {}: {e}", self.target)))?;
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        if run.code == 255 {
            return Err(ProvisionError::Cluster(format!(
                "cannot reach {} over SSH: {}",
                self.target,
                last_line(&run.stderr)
            )));
        }
        Ok(run)
    }

    /// Runs `script` and fails, with its last line of error output, unless it succeeds.
    pub async fn check(&self, what: &str, script: &str) -> Result<String, ProvisionError> {
        let run = self.run(script).await?;
        if run.code != 0 {
            return Err(ProvisionError::Cluster(format!(
                "{what} failed on {} (exit {}): {}",
                self.target,
                run.code,
                last_line(&run.stderr)
            )));
        }
        Ok(run.stdout)
    }

    /// Whether the host key is known, unknown (with what the server offers) or changed.
    pub async fn host_key(&self) -> Result<HostKey, ProvisionError> {
        let out = self
            .ssh()
            .arg(&self.target)
            .arg("true")
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| ProvisionError::Input(format!("cannot run ssh: {e}")))?;
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            return Ok(HostKey::Known);
        }
        if err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
            return Ok(HostKey::Changed);
        }
        if !err.contains("Host key verification failed")
            && !err.contains("No ED25519 host key is known")
            && !err.contains("host key is known")
        {
            return Err(ProvisionError::Cluster(format!(
                "cannot reach {} over SSH: {}",
                self.target,
                last_line(&err)
            )));
        }
        let host = self
            .option("hostname")
            .await?
            .unwrap_or_else(|| self.target.trim_start_matches("root@").to_string());
        let port = self.option("port").await?.unwrap_or_else(|| "22".into());
        let scan = Command::new("ssh-keyscan")
            .args(["-T", "10", "-p", &port, &host])
            .output()
            .await
            .map_err(|e| ProvisionError::Input(format!("cannot run ssh-keyscan: {e}")))?;
        let keys: Vec<String> = String::from_utf8_lossy(&scan.stdout)
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        if keys.is_empty() {
            return Err(ProvisionError::Cluster(format!(
                "{host}:{port} offers no SSH host key"
            )));
        }
        let mut fingerprints = Vec::new();
        for key in &keys {
            let mut child = Command::new("ssh-keygen")
                .args(["-l", "-f", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| ProvisionError::Input(format!("cannot run ssh-keygen: {e}")))?;
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(format!("{key}\n").as_bytes()).await;
            }
            let out = child
                .wait_with_output()
                .await
                .map_err(|e| ProvisionError::Input(format!("ssh-keygen: {e}")))?;
            fingerprints.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
        }
        Ok(HostKey::Unknown { keys, fingerprints })
    }

    /// Adds the scanned keys to the known_hosts file ssh uses for this host, after the admin
    /// confirmed one of their fingerprints.
    pub async fn trust(&self, keys: &[String]) -> Result<PathBuf, ProvisionError> {
        let file = self
            .option("userknownhostsfile")
            .await?
            .and_then(|v| v.split_whitespace().next().map(str::to_string))
            .ok_or_else(|| ProvisionError::Input("ssh names no known_hosts file".into()))?;
        let path = PathBuf::from(file);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                ProvisionError::Input(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let mut text = std::fs::read_to_string(&path).unwrap_or_default();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        for k in keys {
            text.push_str(k);
            text.push('\n');
        }
        crate::folder::write_private(&path, text.as_bytes())?;
        Ok(path)
    }
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .trim()
        .to_string()
}
