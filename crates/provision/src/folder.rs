//! The cluster folder, `clusters/CLUSTER/` as in the seed: what the admin's machine keeps of
//! one cluster. It can be synced between several provisioning machines, so everything in it
//! is plain files and every write is whole (a temporary file renamed into place).
//!
//! - `cluster.toml`: the settings (the seed's `.flux.env` names), edited by `create` in place
//!   so the admin's own comments survive;
//! - `secrets.toml`: the generated secrets, the platform key among them, made once;
//! - `kubeconfig.yaml`: written by `install`;
//! - `install.log`: every install step, appended.
//!
//! The files that hold secrets are mode 0600.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use stackspin_catalog::Catalog;
use stackspin_platform::{ClusterConfig, GeneratedSecrets, RawClusterConfig};

use crate::ProvisionError;

pub const CLUSTER_TOML: &str = "cluster.toml";
pub const SECRETS_TOML: &str = "secrets.toml";
pub const KUBECONFIG: &str = "kubeconfig.yaml";
pub const INSTALL_LOG: &str = "install.log";

#[derive(Debug, Clone)]
pub struct ClusterFolder {
    pub name: String,
    pub dir: PathBuf,
}

/// A cluster's name is a folder name and usually its domain: a-z, 0-9, `.` and `-`.
pub fn check_name(name: &str) -> Result<(), ProvisionError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ProvisionError::Input(format!(
            "cluster name {name:?}: use a-z, 0-9, '.' and '-' (the domain is a good name)"
        )))
    }
}

impl ClusterFolder {
    /// The folder of `name` under `root`, whether or not it exists yet.
    pub fn at(root: &Path, name: &str) -> Result<ClusterFolder, ProvisionError> {
        check_name(name)?;
        Ok(ClusterFolder {
            name: name.to_string(),
            dir: root.join(name),
        })
    }

    /// An existing cluster folder.
    pub fn open(root: &Path, name: &str) -> Result<ClusterFolder, ProvisionError> {
        let f = ClusterFolder::at(root, name)?;
        if !f.file(CLUSTER_TOML).is_file() {
            return Err(ProvisionError::Input(format!(
                "unknown cluster {name}: there is no {}; create it with `stackspin create {name} ...`",
                f.file(CLUSTER_TOML).display()
            )));
        }
        Ok(f)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn exists(&self) -> bool {
        self.file(CLUSTER_TOML).is_file()
    }

    pub fn read_cluster_toml(&self) -> Result<String, ProvisionError> {
        let path = self.file(CLUSTER_TOML);
        std::fs::read_to_string(&path)
            .map_err(|e| ProvisionError::Input(format!("cannot read {}: {e}", path.display())))
    }

    /// The configuration, checked; an error names the file and the line.
    pub fn config(&self) -> Result<ClusterConfig, ProvisionError> {
        let text = self.read_cluster_toml()?;
        parse_config(&self.file(CLUSTER_TOML), &text)
    }

    pub fn secrets(&self) -> Result<GeneratedSecrets, ProvisionError> {
        let path = self.file(SECRETS_TOML);
        match std::fs::read_to_string(&path) {
            Ok(text) => GeneratedSecrets::from_toml(&text)
                .map_err(|e| ProvisionError::Input(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(GeneratedSecrets::default()),
            Err(e) => Err(ProvisionError::Input(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Adds the secrets the core and the configured apps need and are missing (existing ones
    /// are never touched) and saves them; returns the names added.
    pub fn ensure_secrets(
        &self,
        catalog: &Catalog,
        config: &ClusterConfig,
    ) -> Result<(GeneratedSecrets, Vec<String>), ProvisionError> {
        let mut secrets = self.secrets()?;
        let names: Vec<String> = stackspin_platform::placements(catalog, config)?
            .iter()
            .map(|p| p.entry.name.clone())
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let added = secrets.ensure(catalog, &refs, stackspin_domain::secret::random_chars)?;
        if !added.is_empty() {
            write_private(&self.file(SECRETS_TOML), secrets.to_toml().as_bytes())?;
        }
        Ok((secrets, added))
    }

    /// Appends one line to the install log, with the time.
    pub fn log(&self, line: &str) {
        let path = self.file(INSTALL_LOG);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let result = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{stamp} {line}"));
        if let Err(e) = result {
            tracing::warn!(file = %path.display(), error = %e, "cannot write the install log");
        }
    }
}

/// Parses and checks `cluster.toml`; errors say the file and, for syntax, the line.
pub fn parse_config(path: &Path, text: &str) -> Result<ClusterConfig, ProvisionError> {
    let raw: RawClusterConfig = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
        ProvisionError::Input(match line {
            Some(l) => format!("{} line {l}: {message}", path.display()),
            None => format!("{}: {message}", path.display()),
        })
    })?;
    raw.resolve()
        .map_err(|e| ProvisionError::Input(format!("{}: {e}", path.display())))
}

/// Writes a file through a temporary one in the same folder, mode 0600 from the start, and
/// renames it into place, so a crash leaves the old file or the new one, never half of one.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ProvisionError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let io =
        |e: std::io::Error| ProvisionError::Input(format!("cannot write {}: {e}", path.display()));
    std::fs::create_dir_all(&dir).map_err(io)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".stackspin");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(std::fs::Permissions::from_mode(0o600));
    }
    let mut tmp = builder.tempfile_in(&dir).map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// One setting `create` may change.
#[derive(Debug, Clone)]
pub enum Setting {
    Text(&'static str, String),
    List(&'static str, Vec<String>),
}

/// A new cluster.toml: the settings `create` was given, then the ones an admin fills in by
/// hand, commented out with what they mean.
const FRESH: &str = "# Stackspin cluster configuration, written by `stackspin create`; edit it and run\n\
# `stackspin install` again to apply. The names are those of the seed's .flux.env.\n\
\n\
# Outgoing mail (invitations, password resets, the apps' notifications):\n\
# outgoing_mail_enabled = true\n\
# outgoing_mail_from_address = \"stackspin@example.org\"\n\
# outgoing_mail_smtp_host = \"smtp.example.org\"\n\
# outgoing_mail_smtp_port = 587\n\
# outgoing_mail_smtp_user = \"stackspin@example.org\"\n\
# outgoing_mail_smtp_password = \"...\"\n\
# outgoing_mail_smtp_security = \"starttls\"   # starttls, tls or none\n\
\n\
# Backups to S3 (Velero):\n\
# backup_s3_url = \"https://s3.example.net\"\n\
# backup_s3_bucket = \"stackspin-backups\"\n\
# backup_s3_region = \"us-east-1\"\n\
# backup_s3_prefix = \"\"\n\
# backup_s3_aws_access_key_id = \"...\"\n\
# backup_s3_aws_secret_access_key = \"...\"\n";

/// Applies `settings` to the text of a cluster.toml (or a fresh one), keeping everything else
/// as written, comments included.
pub fn edit_cluster_toml(
    existing: Option<&str>,
    settings: &[Setting],
) -> Result<String, ProvisionError> {
    let base = existing.unwrap_or(FRESH);
    let mut doc: toml_edit::DocumentMut = base.parse().map_err(|e: toml_edit::TomlError| {
        ProvisionError::Input(format!("cluster.toml: {}", e.message()))
    })?;
    for s in settings {
        match s {
            Setting::Text(key, value) => {
                doc[key] = toml_edit::value(value.as_str());
            }
            Setting::List(key, values) => {
                let mut array = toml_edit::Array::new();
                for v in values {
                    array.push(v.as_str());
                }
                doc[key] = toml_edit::value(array);
            }
        }
    }
    let mut text = doc.to_string();
    if existing.is_none() {
        // The settings given come first in a new file, above the commented-out ones.
        let (given, rest): (Vec<&str>, Vec<&str>) = text
            .lines()
            .partition(|l| !l.starts_with('#') && !l.trim().is_empty());
        let header: Vec<&str> = rest.iter().take(2).copied().collect();
        let comments: Vec<&str> = rest.iter().skip(2).copied().collect();
        text = format!(
            "{}\n{}\n\n{}\n",
            header.join("\n"),
            given.join("\n"),
            comments.join("\n").trim()
        );
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_keep_the_admins_comments_and_change_only_what_is_named() {
        let fresh = edit_cluster_toml(
            None,
            &[
                Setting::Text("domain", "example.org".into()),
                Setting::Text("ip_address", "192.0.2.1".into()),
                Setting::Text("admin_email", "a@example.org".into()),
            ],
        )
        .expect("fresh");
        assert!(
            fresh.starts_with("# Stackspin cluster configuration"),
            "{fresh}"
        );
        assert!(fresh.contains("# backup_s3_bucket"), "{fresh}");
        parse_config(Path::new("cluster.toml"), &fresh).expect("valid");

        let edited = format!("{fresh}\n# our SMTP relay\noutgoing_mail_smtp_port = 2525\n");
        let again = edit_cluster_toml(
            Some(&edited),
            &[Setting::List("apps", vec!["nextcloud".into()])],
        )
        .expect("edited");
        assert!(again.contains("# our SMTP relay\noutgoing_mail_smtp_port = 2525"));
        assert!(again.contains("domain = \"example.org\""));
        assert!(again.contains("apps = [\"nextcloud\"]"));
    }

    #[test]
    fn a_syntax_error_names_the_line() {
        let err = parse_config(
            Path::new("c/cluster.toml"),
            "domain = \"example.org\"\nip_address = 192.0.2.1\n",
        )
        .expect_err("bad")
        .to_string();
        assert!(err.starts_with("c/cluster.toml line 2:"), "{err}");
    }
}
