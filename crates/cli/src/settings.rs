//! Assembles the settings tree: defaults, then the TOML file, then `STACKSPIN_*` environment
//! variables, then flags (clap has already folded each flag's environment variable into it).

use std::path::Path;

use anyhow::{Context, Result, bail};
use stackspin_domain::settings::{RawSettings, Settings};

use crate::cli::{GlobalArgs, ServeArgs};

pub fn load(global: &GlobalArgs, serve: Option<&ServeArgs>) -> Result<Settings> {
    let file = match &global.config {
        Some(path) => read_file(path)?,
        None => RawSettings::default(),
    };
    let env = RawSettings::from_env(|k| std::env::var(k).ok());
    let flags = RawSettings {
        listen: serve.and_then(|s| s.listen.clone()),
        public_url: serve.and_then(|s| s.public_url.clone()),
        admin_email: serve.and_then(|s| s.admin_email.clone()),
        trusted_proxies: serve.and_then(|s| s.trusted_proxies.clone()),
        metrics_listen: serve.and_then(|s| s.metrics_listen.clone()),
        secret_key_file: global.secret_key_file.clone(),
        data_dir: global.data_dir.clone(),
        database_url: global.database_url.clone(),
        log_format: global.log_format.clone(),
        ..Default::default()
    };
    Ok(Settings::resolve(file.overlay(env).overlay(flags))?)
}

fn read_file(path: &Path) -> Result<RawSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    parse_file(path, &text)
}

/// Parses a config file, turning toml's multi-line diagnostics into one line with the line
/// number.
fn parse_file(path: &Path, text: &str) -> Result<RawSettings> {
    match toml::from_str::<RawSettings>(text) {
        Ok(raw) => Ok(raw),
        Err(e) => {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let msg = e.message().replace('\n', " ");
            match line {
                Some(n) => bail!("invalid config file {}, line {n}: {msg}", path.display()),
                None => bail!("invalid config file {}: {msg}", path.display()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named_on_one_line() {
        let err = parse_file(
            Path::new("c.toml"),
            "listen = \"127.0.0.1:1\"\nlisten_port = 3\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("invalid config file c.toml, line 2: unknown field `listen_port`"),
            "{err}"
        );
        assert!(!err.contains('\n'));
    }

    #[test]
    fn parses_known_keys() {
        let raw = parse_file(
            Path::new("c.toml"),
            "public_url = \"https://sso.example.org\"\ndatabase_url = \"sqlite:///x\"\n",
        )
        .unwrap();
        assert_eq!(raw.public_url.as_deref(), Some("https://sso.example.org"));
    }
}
