//! The platform key file: created mode 0600 on the first start, read by `serve` and the
//! admin commands, rewritten atomically by a rotation.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use stackspin_domain::sealing::SecretKeys;

/// Reads the key file, or creates it with a new key when it does not exist yet (the first
/// start). Creation never overwrites: if another process created the file meanwhile, its
/// key is the one used.
pub fn load_or_create(path: &Path) -> Result<SecretKeys> {
    if let Some(keys) = load(path)? {
        return Ok(keys);
    }
    let keys = SecretKeys::generate();
    let tmp = write_temp(path, &keys)?;
    // A hard link fails if the name exists, which makes creation atomic and no-clobber.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(file = %path.display(), key = %keys.current_id(), "created the platform key");
            Ok(keys)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            load(path)?.context("the platform key file vanished while it was being created")
        }
        Err(e) => {
            Err(e).with_context(|| format!("cannot create the platform key {}", path.display()))
        }
    }
}

/// Reads the key file; `None` when there is none.
pub fn load(path: &Path) -> Result<Option<SecretKeys>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot read the platform key {}", path.display()));
        }
    };
    warn_if_readable_by_others(path);
    let keys = SecretKeys::parse(&text)
        .with_context(|| format!("invalid platform key file {}", path.display()))?;
    Ok(Some(keys))
}

/// Replaces the key file with `keys`, atomically (a temporary file renamed over it).
pub fn replace(path: &Path, keys: &SecretKeys) -> Result<()> {
    let tmp = write_temp(path, keys)?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot replace the platform key {}", path.display()))?;
    Ok(())
}

/// Writes `keys` to a new file mode 0600 beside `path`, synced to disk.
fn write_temp(path: &Path, keys: &SecretKeys) -> Result<PathBuf> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("cannot create folder {}", dir.display()))?;
    let Some(name) = path.file_name() else {
        bail!("the platform key path {} names no file", path.display());
    };
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let _ = std::fs::remove_file(&tmp);
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(keys.to_file_text().as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    Ok(tmp)
}

/// A key file others can read is worth a warning (a mounted Kubernetes Secret may be
/// read-only, so it is not changed here).
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(file = %path.display(), "the platform key is readable by other users: chmod 600 it");
        }
    }
}
