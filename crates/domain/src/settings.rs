//! The control plane's settings: one typed tree, assembled from defaults, an optional TOML
//! file, `STACKSPIN_*` environment variables and command-line flags (later ones win), then
//! checked as a whole so that start-up fails with one clear message.
//!
//! Reading the file and the environment is the binary's job; this module only merges and
//! validates, so tests can build any combination without touching the process environment.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
};
use url::{Host, Url};

use crate::email::Email;

/// Settings as written by a person, every field optional. Unknown keys in a config file are an
/// error, because a misspelt key silently falling back to a default is how production ends up
/// on the wrong database.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub admin_email: Option<String>,
    pub log_format: Option<String>,
    /// Outgoing mail, with the seed's key names (`.flux.env`'s `outgoing_mail_*`).
    #[serde(default, deserialize_with = "scalar")]
    pub outgoing_mail_enabled: Option<String>,
    pub outgoing_mail_from_address: Option<String>,
    pub outgoing_mail_smtp_host: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub outgoing_mail_smtp_port: Option<String>,
    pub outgoing_mail_smtp_user: Option<String>,
    pub outgoing_mail_smtp_password: Option<String>,
    /// `starttls` (default), `tls` or `none`.
    pub outgoing_mail_smtp_security: Option<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (addresses or CIDR ranges).
    pub trusted_proxies: Option<String>,
    /// A second address serving only `/metrics`, for Prometheus (none: no metrics).
    pub metrics_listen: Option<String>,
    /// The platform key that encrypts secrets at rest [default: `<data-dir>/secret.key`].
    pub secret_key_file: Option<PathBuf>,
}

impl fmt::Debug for RawSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawSettings")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("data_dir", &self.data_dir)
            .field("outgoing_mail_smtp_host", &self.outgoing_mail_smtp_host)
            .finish_non_exhaustive()
    }
}

/// Accepts `587` as well as `"587"` (and `true` as well as `"true"`) in the config file.
fn scalar<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        S(String),
        I(i64),
        B(bool),
    }
    let v: Option<Scalar> = serde::Deserialize::deserialize(d)?;
    Ok(v.map(|v| match v {
        Scalar::S(s) => s,
        Scalar::I(i) => i.to_string(),
        Scalar::B(b) => b.to_string(),
    }))
}

impl RawSettings {
    /// The environment variable that sets each key.
    pub const ENV: [(&'static str, &'static str); 16] = [
        ("listen", "STACKSPIN_LISTEN"),
        ("public_url", "STACKSPIN_PUBLIC_URL"),
        ("data_dir", "STACKSPIN_DATA_DIR"),
        ("database_url", "STACKSPIN_DATABASE_URL"),
        ("admin_email", "STACKSPIN_ADMIN_EMAIL"),
        ("log_format", "STACKSPIN_LOG_FORMAT"),
        ("outgoing_mail_enabled", "STACKSPIN_OUTGOING_MAIL_ENABLED"),
        (
            "outgoing_mail_from_address",
            "STACKSPIN_OUTGOING_MAIL_FROM_ADDRESS",
        ),
        (
            "outgoing_mail_smtp_host",
            "STACKSPIN_OUTGOING_MAIL_SMTP_HOST",
        ),
        (
            "outgoing_mail_smtp_port",
            "STACKSPIN_OUTGOING_MAIL_SMTP_PORT",
        ),
        (
            "outgoing_mail_smtp_user",
            "STACKSPIN_OUTGOING_MAIL_SMTP_USER",
        ),
        (
            "outgoing_mail_smtp_password",
            "STACKSPIN_OUTGOING_MAIL_SMTP_PASSWORD",
        ),
        (
            "outgoing_mail_smtp_security",
            "STACKSPIN_OUTGOING_MAIL_SMTP_SECURITY",
        ),
        ("trusted_proxies", "STACKSPIN_TRUSTED_PROXIES"),
        ("metrics_listen", "STACKSPIN_METRICS_LISTEN"),
        ("secret_key_file", "STACKSPIN_SECRET_KEY_FILE"),
    ];

    /// Reads the `STACKSPIN_*` variables through `lookup`, so callers choose the source.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |key: &str| {
            Self::ENV
                .iter()
                .find(|(k, _)| *k == key)
                .and_then(|(_, var)| lookup(var))
                .filter(|v| !v.is_empty())
        };
        RawSettings {
            listen: get("listen"),
            public_url: get("public_url"),
            data_dir: get("data_dir").map(PathBuf::from),
            database_url: get("database_url"),
            admin_email: get("admin_email"),
            log_format: get("log_format"),
            outgoing_mail_enabled: get("outgoing_mail_enabled"),
            outgoing_mail_from_address: get("outgoing_mail_from_address"),
            outgoing_mail_smtp_host: get("outgoing_mail_smtp_host"),
            outgoing_mail_smtp_port: get("outgoing_mail_smtp_port"),
            outgoing_mail_smtp_user: get("outgoing_mail_smtp_user"),
            outgoing_mail_smtp_password: get("outgoing_mail_smtp_password"),
            outgoing_mail_smtp_security: get("outgoing_mail_smtp_security"),
            trusted_proxies: get("trusted_proxies"),
            metrics_listen: get("metrics_listen"),
            secret_key_file: get("secret_key_file").map(PathBuf::from),
        }
    }

    /// Layers `over` on top of `self`: every key `over` sets wins.
    pub fn overlay(self, over: RawSettings) -> RawSettings {
        RawSettings {
            listen: over.listen.or(self.listen),
            public_url: over.public_url.or(self.public_url),
            data_dir: over.data_dir.or(self.data_dir),
            database_url: over.database_url.or(self.database_url),
            admin_email: over.admin_email.or(self.admin_email),
            log_format: over.log_format.or(self.log_format),
            outgoing_mail_enabled: over.outgoing_mail_enabled.or(self.outgoing_mail_enabled),
            outgoing_mail_from_address: over
                .outgoing_mail_from_address
                .or(self.outgoing_mail_from_address),
            outgoing_mail_smtp_host: over
                .outgoing_mail_smtp_host
                .or(self.outgoing_mail_smtp_host),
            outgoing_mail_smtp_port: over
                .outgoing_mail_smtp_port
                .or(self.outgoing_mail_smtp_port),
            outgoing_mail_smtp_user: over
                .outgoing_mail_smtp_user
                .or(self.outgoing_mail_smtp_user),
            outgoing_mail_smtp_password: over
                .outgoing_mail_smtp_password
                .or(self.outgoing_mail_smtp_password),
            outgoing_mail_smtp_security: over
                .outgoing_mail_smtp_security
                .or(self.outgoing_mail_smtp_security),
            trusted_proxies: over.trusted_proxies.or(self.trusted_proxies),
            metrics_listen: over.metrics_listen.or(self.metrics_listen),
            secret_key_file: over.secret_key_file.or(self.secret_key_file),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {key} {value:?}: {reason}")]
pub struct SettingsError {
    pub key: &'static str,
    pub value: String,
    pub reason: String,
}

fn bad(key: &'static str, value: &str, reason: impl Into<String>) -> SettingsError {
    SettingsError {
        key,
        value: value.chars().take(200).collect(),
        reason: reason.into(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Where the data lives. The Postgres URL may hold a password, so `Display` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    /// An in-memory SQLite database, for tests only.
    SqliteMemory,
    Postgres(Url),
}

impl DatabaseUrl {
    pub fn parse(input: &str) -> Result<Self, SettingsError> {
        let s = input.trim();
        if let Some(rest) = s.strip_prefix("sqlite:") {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let path = rest.split('?').next().unwrap_or_default();
            if path == ":memory:" {
                return Ok(DatabaseUrl::SqliteMemory);
            }
            if path.is_empty() {
                return Err(bad("database_url", s, "a sqlite URL needs a file path"));
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            let url = Url::parse(s).map_err(|e| {
                bad(
                    "database_url",
                    &Self::redact_str(s),
                    format!("not a valid URL: {e}"),
                )
            })?;
            let has_host = url.host_str().is_some_and(|h| !h.is_empty())
                || url.query_pairs().any(|(k, _)| k == "host");
            if !has_host {
                return Err(bad(
                    "database_url",
                    &Self::redact_str(s),
                    "a postgres URL needs a host",
                ));
            }
            return Ok(DatabaseUrl::Postgres(url));
        }
        Err(bad(
            "database_url",
            &Self::redact_str(s),
            "use sqlite://PATH or postgres://USER@HOST/DB",
        ))
    }

    /// The default: a SQLite file inside the data directory.
    pub fn default_in(data_dir: &Path) -> Self {
        DatabaseUrl::Sqlite(data_dir.join("stackspin.sqlite"))
    }

    fn redact_str(s: &str) -> String {
        match Url::parse(s) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("***"));
                u.to_string()
            }
            _ => s.to_owned(),
        }
    }

    /// Host and port as used in error messages ("cannot reach the database at ...").
    pub fn target(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(p) => p.display().to_string(),
            DatabaseUrl::SqliteMemory => ":memory:".into(),
            DatabaseUrl::Postgres(u) => {
                let host = u
                    .host_str()
                    .filter(|h| !h.is_empty())
                    .map(str::to_owned)
                    .or_else(|| {
                        u.query_pairs()
                            .find(|(k, _)| k == "host")
                            .map(|(_, v)| v.into_owned())
                    })
                    .unwrap_or_else(|| "localhost".into());
                format!("{host}:{}", u.port().unwrap_or(5432))
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, DatabaseUrl::Postgres(_))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            DatabaseUrl::SqliteMemory => f.write_str("sqlite::memory:"),
            DatabaseUrl::Postgres(u) => f.write_str(&Self::redact_str(u.as_str())),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// The base URL people and apps use to reach the control plane; also the OpenID Connect
/// issuer, so it is kept without a trailing slash and compared exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    pub fn parse(input: &str) -> Result<Self, SettingsError> {
        let s = input.trim();
        let url = Url::parse(s).map_err(|_| bad("public_url", s, "not an absolute URL"))?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad(
                "public_url",
                s,
                "it must not have a ?query or #fragment",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("public_url", s, "it must not contain credentials"));
        }
        let loopback = match url.host() {
            Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            None => return Err(bad("public_url", s, "it has no host")),
        };
        match url.scheme() {
            "https" => {}
            // An OpenID Connect issuer must be https (Discovery 1.0 §3); plain http is only
            // for trying Stackspin out on one's own machine.
            "http" if loopback => {}
            "http" => {
                return Err(bad(
                    "public_url",
                    s,
                    "use https (http is only allowed for localhost and loopback addresses)",
                ));
            }
            _ => return Err(bad("public_url", s, "use an http(s) URL")),
        }
        Ok(PublicUrl(url.as_str().trim_end_matches('/').to_owned()))
    }

    /// The URL derived from the listen address when none is configured.
    pub fn from_listen(addr: SocketAddr) -> Self {
        let host = match addr.ip() {
            ip if ip.is_unspecified() => "localhost".to_owned(),
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        PublicUrl(format!("http://{host}:{}", addr.port()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether cookies may drop `Secure` (only for a plain-http local URL).
    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587), as the seed configures.
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same host or in tests.
    None,
}

/// Where and how to send mail. The password's `Debug` is redacted.
#[derive(Clone)]
pub struct MailSettings {
    pub from: Email,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    pub security: SmtpSecurity,
}

impl fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailSettings")
            .field("from", &self.from)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("security", &self.security)
            .finish_non_exhaustive()
    }
}

fn mail_settings(raw: &RawSettings) -> Result<Option<MailSettings>, SettingsError> {
    let enabled = match raw.outgoing_mail_enabled.as_deref().map(str::trim) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(bad("outgoing_mail_enabled", other, "use true or false")),
    };
    if !enabled {
        return Ok(None);
    }
    let from_s = raw.outgoing_mail_from_address.as_deref().ok_or_else(|| {
        bad(
            "outgoing_mail_from_address",
            "",
            "required when outgoing mail is enabled",
        )
    })?;
    let from = Email::parse(from_s)
        .map_err(|e| bad("outgoing_mail_from_address", from_s, e.to_string()))?;
    let host = raw
        .outgoing_mail_smtp_host
        .clone()
        .filter(|h| !h.trim().is_empty())
        .ok_or_else(|| {
            bad(
                "outgoing_mail_smtp_host",
                "",
                "required when outgoing mail is enabled",
            )
        })?;
    let security = match raw.outgoing_mail_smtp_security.as_deref().map(str::trim) {
        None | Some("starttls") => SmtpSecurity::StartTls,
        Some("tls") => SmtpSecurity::Tls,
        Some("none") => SmtpSecurity::None,
        Some(other) => {
            return Err(bad(
                "outgoing_mail_smtp_security",
                other,
                "use starttls, tls or none",
            ));
        }
    };
    let default_port = match security {
        SmtpSecurity::StartTls => 587,
        SmtpSecurity::Tls => 465,
        SmtpSecurity::None => 25,
    };
    let port = match raw.outgoing_mail_smtp_port.as_deref() {
        None => default_port,
        Some(p) => p
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("outgoing_mail_smtp_port", p, "expected a port number"))?,
    };
    Ok(Some(MailSettings {
        from,
        host: host.trim().to_owned(),
        port,
        user: raw
            .outgoing_mail_smtp_user
            .clone()
            .filter(|u| !u.is_empty()),
        password: raw
            .outgoing_mail_smtp_password
            .clone()
            .filter(|p| !p.is_empty()),
        security,
    }))
}

/// Checked settings, ready to use.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    /// `None` means "derive from the address actually bound" (which matters for port 0).
    pub public_url: Option<PublicUrl>,
    pub data_dir: PathBuf,
    pub database: DatabaseUrl,
    pub admin_email: Option<Email>,
    pub log_format: LogFormat,
    /// `None` when outgoing mail is not enabled: mail then waits in the queue.
    pub mail: Option<MailSettings>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub metrics_listen: Option<SocketAddr>,
    pub secret_key_file: PathBuf,
}

impl Settings {
    pub const DEFAULT_LISTEN: &'static str = "127.0.0.1:8080";
    pub const DEFAULT_DATA_DIR: &'static str = "./stackspin-data";

    pub fn resolve(raw: RawSettings) -> Result<Self, SettingsError> {
        let mail = mail_settings(&raw)?;
        let listen_s = raw.listen.as_deref().unwrap_or(Self::DEFAULT_LISTEN);
        let listen: SocketAddr = listen_s.trim().parse().map_err(|_| {
            bad(
                "listen",
                listen_s,
                "expected IP:PORT such as 127.0.0.1:8080",
            )
        })?;
        let public_url = raw
            .public_url
            .as_deref()
            .map(PublicUrl::parse)
            .transpose()?;
        let data_dir = raw
            .data_dir
            .unwrap_or_else(|| PathBuf::from(Self::DEFAULT_DATA_DIR));
        if data_dir.as_os_str().is_empty() {
            return Err(bad("data_dir", "", "it is empty"));
        }
        let database = match raw.database_url.as_deref() {
            Some(u) => DatabaseUrl::parse(u)?,
            None => DatabaseUrl::default_in(&data_dir),
        };
        let admin_email = raw
            .admin_email
            .as_deref()
            .map(|e| Email::parse(e).map_err(|err| bad("admin_email", e, err.to_string())))
            .transpose()?;
        let log_format = match raw.log_format.as_deref().map(str::trim) {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(bad("log_format", other, "use text or json")),
        };
        let trusted_proxies = match raw.trusted_proxies.as_deref() {
            Some(list) => crate::client_ip::parse_trusted(list)
                .map_err(|reason| bad("trusted_proxies", list, reason))?,
            None => Vec::new(),
        };
        let metrics_listen = raw
            .metrics_listen
            .as_deref()
            .map(|m| {
                m.trim().parse::<SocketAddr>().map_err(|_| {
                    bad(
                        "metrics_listen",
                        m,
                        "expected IP:PORT such as 127.0.0.1:9090",
                    )
                })
            })
            .transpose()?;
        let secret_key_file = raw
            .secret_key_file
            .unwrap_or_else(|| data_dir.join("secret.key"));
        Ok(Settings {
            listen,
            public_url,
            data_dir,
            database,
            admin_email,
            log_format,
            mail,
            trusted_proxies,
            metrics_listen,
            secret_key_file,
        })
    }

    /// The public URL in effect once the listener is bound.
    pub fn public_url_for(&self, bound: SocketAddr) -> PublicUrl {
        self.public_url
            .clone()
            .unwrap_or_else(|| PublicUrl::from_listen(bound))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let s = Settings::resolve(RawSettings::default()).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.public_url_for(s.listen).as_str(), "http://127.0.0.1:8080");
        assert_eq!(
            s.database,
            DatabaseUrl::Sqlite(PathBuf::from("./stackspin-data/stackspin.sqlite"))
        );
        assert_eq!(s.log_format, LogFormat::Text);
    }

    #[test]
    fn later_layers_win() {
        let file = RawSettings {
            listen: Some("127.0.0.1:1".into()),
            data_dir: Some("/srv/a".into()),
            ..Default::default()
        };
        let env =
            RawSettings::from_env(|v| (v == "STACKSPIN_LISTEN").then(|| "127.0.0.1:2".to_owned()));
        let flags = RawSettings {
            data_dir: Some("/srv/b".into()),
            ..Default::default()
        };
        let s = Settings::resolve(file.overlay(env).overlay(flags)).unwrap();
        assert_eq!(s.listen.port(), 2);
        assert_eq!(s.data_dir, PathBuf::from("/srv/b"));
        assert_eq!(s.database, DatabaseUrl::default_in(Path::new("/srv/b")));
    }

    #[test]
    fn rejects_bad_values_with_key_name() {
        let err = |raw: RawSettings| Settings::resolve(raw).unwrap_err().to_string();
        assert_eq!(
            err(RawSettings {
                listen: Some("localhost".into()),
                ..Default::default()
            }),
            "invalid listen \"localhost\": expected IP:PORT such as 127.0.0.1:8080"
        );
        assert!(
            err(RawSettings {
                public_url: Some("http://sso.example.org".into()),
                ..Default::default()
            })
            .contains("use https")
        );
        assert!(
            err(RawSettings {
                database_url: Some("mysql://x/y".into()),
                ..Default::default()
            })
            .starts_with("invalid database_url")
        );
        assert!(
            err(RawSettings {
                log_format: Some("xml".into()),
                ..Default::default()
            })
            .contains("use text or json")
        );
    }

    #[test]
    fn mail_settings_follow_the_seed_names() {
        let raw = RawSettings::from_env(|v| match v {
            "STACKSPIN_OUTGOING_MAIL_ENABLED" => Some("true".into()),
            "STACKSPIN_OUTGOING_MAIL_FROM_ADDRESS" => Some("admin@example.org".into()),
            "STACKSPIN_OUTGOING_MAIL_SMTP_HOST" => Some("smtp.example.org".into()),
            "STACKSPIN_OUTGOING_MAIL_SMTP_PASSWORD" => Some("hunter2".into()),
            _ => None,
        });
        let s = Settings::resolve(raw).unwrap();
        let mail = s.mail.unwrap();
        assert_eq!((mail.port, mail.security), (587, SmtpSecurity::StartTls));
        assert!(!format!("{mail:?}").contains("hunter2"));
        let err = Settings::resolve(RawSettings {
            outgoing_mail_enabled: Some("true".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("outgoing_mail_from_address"),
            "{err}"
        );
        assert!(
            Settings::resolve(RawSettings::default())
                .unwrap()
                .mail
                .is_none()
        );
    }

    #[test]
    fn database_urls() {
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/s.db").unwrap(),
            DatabaseUrl::Sqlite("/var/lib/s.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:rel.db?mode=rwc").unwrap(),
            DatabaseUrl::Sqlite("rel.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite::memory:").unwrap(),
            DatabaseUrl::SqliteMemory
        );
        let pg = DatabaseUrl::parse("postgres://u:hunter2@db.internal:6543/s").unwrap();
        assert_eq!(pg.target(), "db.internal:6543");
        assert!(!pg.to_string().contains("hunter2"));
        let err = DatabaseUrl::parse("mysql://u:hunter2@h/d")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn public_url_is_normalised() {
        assert_eq!(
            PublicUrl::parse("https://sso.example.org/")
                .unwrap()
                .as_str(),
            "https://sso.example.org"
        );
        assert_eq!(
            PublicUrl::from_listen("0.0.0.0:80".parse().unwrap()).as_str(),
            "http://localhost:80"
        );
        assert!(PublicUrl::parse("https://x.org/?a=b").is_err());
    }
}
