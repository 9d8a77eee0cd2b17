//! Rendering an entry for one cluster: its values (safe to show, stored in a ConfigMap) and
//! its secret values (only ever stored in a Secret).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::entry::Entry;
use crate::template::{self, Vars};

/// Outgoing mail as the apps need it. The password never reaches `values`.
#[derive(Clone)]
pub struct MailContext {
    pub host: String,
    pub port: u16,
    pub from: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// `starttls`, `tls` (implicit TLS, port 465) or `none`.
    pub security: String,
}

impl std::fmt::Debug for MailContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailContext")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("from", &self.from)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("security", &self.security)
            .finish()
    }
}

/// Where backups go (the cluster's `backup_s3_*`). The keys never reach `values`.
#[derive(Clone, PartialEq, Eq)]
pub struct BackupContext {
    pub url: String,
    pub bucket: String,
    pub region: String,
    pub prefix: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The nightly backup's time, `HH:MM` in `time_zone`.
    pub time: String,
    pub time_zone: String,
    /// How many days a backup is kept.
    pub retention_days: u32,
    /// Days between restore drills; 0: no drills.
    pub drill_days: u32,
}

impl BackupContext {
    /// The nightly schedule as Velero's cron (robfig/cron, which reads `CRON_TZ=`).
    pub fn schedule(&self) -> String {
        let (h, m) = self.time.split_once(':').unwrap_or(("3", "0"));
        let num = |s: &str| s.trim_start_matches('0').parse::<u32>().unwrap_or(0);
        format!("CRON_TZ={} {} {} * * *", self.time_zone, num(m), num(h))
    }

    /// How long Velero keeps a backup (a Go duration).
    pub fn ttl(&self) -> String {
        format!("{}h", u64::from(self.retention_days) * 24)
    }
}

impl std::fmt::Debug for BackupContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupContext")
            .field("url", &self.url)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("access_key_id", &"[redacted]")
            .field("secret_access_key", &"[redacted]")
            .field("time", &self.time)
            .field("time_zone", &self.time_zone)
            .field("retention_days", &self.retention_days)
            .field("drill_days", &self.drill_days)
            .finish()
    }
}

/// What an entry is rendered with.
pub struct RenderContext<'a> {
    pub domain: &'a str,
    /// The app's host name (`files.example.org`, or the bare domain).
    pub host: &'a str,
    pub namespace: &'a str,
    /// The OIDC issuer, the control plane's public URL.
    pub issuer: &'a str,
    pub admin_email: &'a str,
    pub cluster_issuer: &'a str,
    pub client_id: Option<&'a str>,
    pub client_secret: Option<&'a str>,
    pub mail: Option<&'a MailContext>,
    /// The backup store, when the cluster has one (entries with `with_backup` need it).
    pub backup: Option<&'a BackupContext>,
    /// The entry's generated secrets by name.
    pub secrets: &'a BTreeMap<String, String>,
    /// The host of each of the entry's parts (Onlyoffice's for Nextcloud), by part name.
    pub parts: &'a BTreeMap<String, String>,
    /// The cluster's configuration as `cluster.toml` text, for the control plane's entry only.
    pub cluster_config: Option<&'a str>,
    /// The ingress's reference to the forward-auth middleware (`<namespace>-<name>@kubernetescrd`
    /// for Traefik), which puts a tool behind Stackspin's sign-in.
    pub forward_auth: &'a str,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    #[error("{app}: {message}")]
    Missing { app: String, message: String },
}

/// An entry's rendered values.
#[derive(Clone, PartialEq)]
pub struct Rendered {
    pub values: Value,
    /// Values that hold secrets, as a values document of their own.
    pub secret_values: Value,
    /// The keys of the app's own Secret (`Entry::secret_name`).
    pub secret_keys: BTreeMap<String, String>,
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendered")
            .field("values", &self.values)
            .field("secret_values", &"[redacted]")
            .finish()
    }
}

/// The Secret holding an entry's `secret_keys`, by entry name.
pub fn secret_name(app: &str) -> String {
    format!("stackspin-{app}-secrets")
}

impl Entry {
    /// The Secret that holds this entry's `secret_keys`, created by the platform.
    pub fn secret_name(&self) -> String {
        secret_name(&self.name)
    }

    /// Renders the values for one cluster. Secret values go in their own document, shaped as
    /// values (their paths become nested maps) so Flux merges them like any values file.
    pub fn render(&self, ctx: &RenderContext<'_>) -> Result<Rendered, RenderError> {
        let missing = |message: String| RenderError::Missing {
            app: self.name.clone(),
            message,
        };
        let mut vars = Vars::default();
        vars.set("app", self.name.as_str());
        // A part's volumes are backed up and restored with its whole.
        vars.set(
            "backup_set",
            self.part_of.as_deref().unwrap_or(self.name.as_str()),
        );
        for (part, host) in ctx.parts {
            vars.set(&format!("part.{part}.host"), host.as_str());
            vars.set(&format!("part.{part}.url"), format!("https://{host}"));
            vars.set(&format!("part.{part}.secret_name"), secret_name(part));
        }
        if let Some(text) = ctx
            .cluster_config
            .filter(|_| self.name == crate::CONTROL_PLANE)
        {
            vars.set("cluster_config", text);
        }
        vars.set("namespace", ctx.namespace);
        vars.set("domain", ctx.domain);
        vars.set("host", ctx.host);
        vars.set("url", format!("https://{}", ctx.host));
        vars.set("issuer", ctx.issuer.trim_end_matches('/'));
        vars.set("admin_email", ctx.admin_email);
        vars.set("cluster_issuer", ctx.cluster_issuer);
        vars.set("forward_auth", ctx.forward_auth);
        vars.set("secret_name", self.secret_name());
        vars.set("requests.cpu", self.requests.cpu.as_str());
        vars.set("requests.memory", self.requests.memory.as_str());
        if let Some(id) = ctx.client_id {
            vars.set("client_id", id);
        }
        if let Some(secret) = ctx.client_secret {
            vars.set("oidc.client_secret", secret);
        }
        for s in &self.secrets {
            let value = ctx
                .secrets
                .get(&s.name)
                .ok_or_else(|| missing(format!("generated secret {:?} is missing", s.name)))?;
            vars.set(&format!("secret.{}", s.name), value.as_str());
        }
        if let Some(mail) = ctx.mail {
            set_mail(&mut vars, mail);
        }
        if let Some(b) = ctx.backup {
            vars.set("backup.url", b.url.as_str());
            vars.set("backup.bucket", b.bucket.as_str());
            vars.set("backup.region", b.region.as_str());
            vars.set("backup.prefix", b.prefix.as_str());
            vars.set("backup.access_key_id", b.access_key_id.as_str());
            vars.set("backup.secret_access_key", b.secret_access_key.as_str());
            vars.set("backup.schedule", b.schedule().as_str());
            vars.set("backup.ttl", b.ttl().as_str());
        }

        let mut values = self.values.render(&vars).map_err(&missing)?;
        if let (Some(mail_values), Some(_)) = (&self.mail_values, ctx.mail) {
            let over = mail_values.render(&vars).map_err(&missing)?;
            template::merge(&mut values, &over);
        }
        let mut secret_values = Value::Object(Map::new());
        for sv in &self.secret_values {
            if !sv.when.applies(ctx.mail.is_some()) {
                continue;
            }
            let value = sv.value.render(&vars).map_err(&missing)?;
            set_path(&mut secret_values, &sv.path, value);
        }
        let mut secret_keys = BTreeMap::new();
        for sk in &self.secret_keys {
            if !sk.when.applies(ctx.mail.is_some()) {
                continue;
            }
            let value = match sk.value.render(&vars).map_err(&missing)? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            secret_keys.insert(sk.key.clone(), value);
        }
        Ok(Rendered {
            values,
            secret_values,
            secret_keys,
        })
    }
}

fn set_mail(vars: &mut Vars, mail: &MailContext) {
    let (local, domain) = mail.from.split_once('@').unwrap_or((&mail.from, ""));
    vars.set("mail.host", mail.host.as_str());
    vars.set("mail.port", mail.port);
    vars.set("mail.port_text", mail.port.to_string());
    vars.set("mail.from", mail.from.as_str());
    vars.set("mail.from_local", local);
    vars.set("mail.from_domain", domain);
    vars.set("mail.user", mail.user.clone().unwrap_or_default());
    let implicit = mail.security == "tls";
    let starttls = mail.security == "starttls";
    vars.set("mail.security", mail.security.as_str());
    // Nextcloud's `smtp.secure`: "ssl" for implicit TLS, "tls" for STARTTLS, "" for none.
    vars.set(
        "mail.secure",
        if implicit {
            "ssl"
        } else if starttls {
            "tls"
        } else {
            ""
        },
    );
    // Django's settings (Zulip) as Python literals.
    vars.set("mail.use_tls", if starttls { "True" } else { "False" });
    vars.set("mail.use_ssl", if implicit { "True" } else { "False" });
    let password = mail.password.clone().unwrap_or_default();
    vars.set("mail.password", password.as_str());
    // A URL for apps that take one (Wekan's MAIL_URL); user and password percent-encoded.
    let scheme = if implicit { "smtps" } else { "smtp" };
    let auth = match &mail.user {
        Some(user) if !user.is_empty() => {
            format!("{}:{}@", encode(user), encode(&password))
        }
        _ => String::new(),
    };
    vars.set(
        "mail.url",
        format!("{scheme}://{auth}{}:{}/", mail.host, mail.port),
    );
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Sets `value` at a dotted path (`a.b\.c.d`), creating maps on the way.
fn set_path(doc: &mut Value, path: &str, value: Value) {
    let parts = template::split_path(path);
    let mut at = doc;
    for (i, key) in parts.iter().enumerate() {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        let Value::Object(map) = at else {
            return;
        };
        if i + 1 == parts.len() {
            map.insert(key.clone(), value);
            return;
        }
        at = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_nested_maps() {
        let mut doc = Value::Object(Map::new());
        set_path(&mut doc, "a.b", Value::from("x"));
        set_path(&mut doc, r"a.c\.d", Value::from("y"));
        assert_eq!(doc, serde_json::json!({"a": {"b": "x", "c.d": "y"}}));
    }

    #[test]
    fn mail_urls_encode_credentials() {
        let mut vars = Vars::default();
        set_mail(
            &mut vars,
            &MailContext {
                host: "smtp.example.org".into(),
                port: 465,
                from: "noreply@example.org".into(),
                user: Some("me@example.org".into()),
                password: Some("p@ss/w:rd".into()),
                security: "tls".into(),
            },
        );
        assert_eq!(
            vars.get("mail.url"),
            Some(&Value::from(
                "smtps://me%40example.org:p%40ss%2Fw%3Ard@smtp.example.org:465/"
            ))
        );
        assert_eq!(vars.get("mail.secure"), Some(&Value::from("ssl")));
        assert_eq!(vars.get("mail.from_local"), Some(&Value::from("noreply")));
    }
}
