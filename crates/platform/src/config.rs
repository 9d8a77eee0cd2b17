//! The cluster configuration: the seed's `.flux.env` settings (as top-level keys of
//! `cluster.toml`), plus the apps to install and the maintenance window.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;

use crate::PlatformError;
use crate::window::Window;

/// Outgoing mail for the apps and the control plane (`outgoing_mail_*`).
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    pub from_address: String,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub smtp_user: Option<String>,
    pub smtp_password: Option<String>,
    /// `starttls`, `tls` or `none`.
    pub security: String,
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("from_address", &self.from_address)
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("smtp_user", &self.smtp_user)
            .field(
                "smtp_password",
                &self.smtp_password.as_ref().map(|_| "[redacted]"),
            )
            .field("security", &self.security)
            .finish()
    }
}

/// Where backups go (`backup_s3_*`): the same settings Velero's catalog entry renders with.
pub type BackupS3 = stackspin_catalog::BackupContext;

/// Which Let's Encrypt the cluster's certificates come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Acme {
    Production,
    Staging,
}

impl Acme {
    pub fn issuer_name(self) -> &'static str {
        match self {
            Acme::Production => "letsencrypt-production",
            Acme::Staging => "letsencrypt-staging",
        }
    }
}

/// One app the cluster should run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppChoice {
    pub name: String,
    /// Overrides the catalog's default subdomain; `Some("")` puts the app on the bare domain
    /// (only for entries that allow it, as WordPress in the seed).
    pub subdomain: Option<String>,
    /// The chart version to run; `None` is the catalog's. The operator moves it forward inside
    /// the maintenance window.
    pub version: Option<semver::Version>,
    /// Addresses allowed to reach the app (the seed's ingress allow-list); empty is everyone.
    pub allow_list: Vec<String>,
    /// Flux leaves the app's releases alone (a restore is replacing its data).
    pub suspended: bool,
    /// A version of the app runs on the cluster (the operator saw its release installed).
    /// Other apps may then use what it brings: the control plane ships its alerting rules
    /// once monitoring's CRDs exist.
    pub running: bool,
}

impl AppChoice {
    pub fn new(name: &str) -> Self {
        AppChoice {
            name: name.to_string(),
            subdomain: None,
            version: None,
            allow_list: Vec::new(),
            suspended: false,
            running: false,
        }
    }
}

/// A whole cluster's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub domain: String,
    pub ip_address: IpAddr,
    pub admin_email: String,
    pub mail: Option<Mail>,
    pub backup_s3: Option<BackupS3>,
    pub acme: Acme,
    pub maintenance_window: Window,
    /// IANA time zone of the window (`Europe/Amsterdam`), as given; the operator resolves it.
    pub time_zone: String,
    pub apps: Vec<AppChoice>,
}

impl ClusterConfig {
    /// The cluster-wide settings as `cluster.toml` text, without the apps: what the control
    /// plane in the cluster is started with. Which apps run is its database's business there,
    /// so installing one does not change this text (nor restart the control plane).
    pub fn settings_toml(&self) -> Result<String, PlatformError> {
        let mail = self.mail.as_ref();
        let s3 = self.backup_s3.as_ref();
        let raw = RawClusterConfig {
            domain: Some(self.domain.clone()),
            ip_address: Some(self.ip_address.to_string()),
            admin_email: Some(self.admin_email.clone()),
            outgoing_mail_enabled: Some(mail.is_some()),
            outgoing_mail_from_address: mail.map(|m| m.from_address.clone()),
            outgoing_mail_smtp_host: mail.map(|m| m.smtp_host.clone()),
            outgoing_mail_smtp_port: mail.map(|m| m.smtp_port),
            outgoing_mail_smtp_user: mail.and_then(|m| m.smtp_user.clone()),
            outgoing_mail_smtp_password: mail.and_then(|m| m.smtp_password.clone()),
            outgoing_mail_smtp_security: mail.map(|m| m.security.clone()),
            backup_s3_url: s3.map(|b| b.url.clone()),
            backup_s3_bucket: s3.map(|b| b.bucket.clone()),
            backup_s3_region: s3.map(|b| b.region.clone()),
            backup_s3_prefix: s3.map(|b| b.prefix.clone()),
            backup_s3_aws_access_key_id: s3.map(|b| b.access_key_id.clone()),
            backup_s3_aws_secret_access_key: s3.map(|b| b.secret_access_key.clone()),
            backup_time: s3.map(|b| b.time.clone()),
            backup_retention_days: s3.map(|b| b.retention_days),
            backup_drill_days: s3.map(|b| b.drill_days),
            acme: Some(self.acme),
            maintenance_window: Some(self.maintenance_window.to_string()),
            time_zone: Some(self.time_zone.clone()),
            apps: None,
            app: BTreeMap::new(),
        };
        toml::to_string(&raw).map_err(|e| PlatformError::Config(format!("cluster.toml: {e}")))
    }

    /// When the nightly backup next runs after `now` (its time read in the cluster's time
    /// zone); `None` without a backup store.
    pub fn next_backup(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let b = self.backup_s3.as_ref()?;
        let (h, m) = b.time.split_once(':')?;
        let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
        let tz = jiff::tz::TimeZone::get(&b.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
        let now = jiff::Timestamp::from_second(now.timestamp())
            .ok()?
            .to_zoned(tz);
        let today = now
            .date()
            .at(h, m, 0, 0)
            .to_zoned(now.time_zone().clone())
            .ok()?;
        let next = if today > now {
            today
        } else {
            today.checked_add(jiff::Span::new().days(1)).ok()?
        };
        chrono::DateTime::from_timestamp(next.timestamp().as_second(), 0)
    }

    /// Whether `now` falls inside the maintenance window, read in the cluster's time zone.
    pub fn in_window(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        let tz = jiff::tz::TimeZone::get(&self.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
        let Ok(ts) = jiff::Timestamp::from_second(now.timestamp()) else {
            return false;
        };
        let local = ts.to_zoned(tz).time();
        chrono::NaiveTime::from_hms_opt(
            u32::try_from(local.hour()).unwrap_or(0),
            u32::try_from(local.minute()).unwrap_or(0),
            u32::try_from(local.second()).unwrap_or(0),
        )
        .is_some_and(|t| self.maintenance_window.contains(t))
    }
}

/// `cluster.toml` as written: the seed's names, every key optional so flags can fill gaps.
#[derive(Debug, Default, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawClusterConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outgoing_mail_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outgoing_mail_from_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outgoing_mail_smtp_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outgoing_mail_smtp_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outgoing_mail_smtp_user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outgoing_mail_smtp_password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outgoing_mail_smtp_security: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_s3_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_s3_bucket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_s3_region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_s3_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_s3_aws_access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_s3_aws_secret_access_key: Option<String>,
    /// When the nightly backup runs, `HH:MM` in `time_zone` [default: 03:00].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_time: Option<String>,
    /// How many days backups are kept [default: 30].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_retention_days: Option<u32>,
    /// Days between restore drills, which restore each app's latest backup into a scratch
    /// namespace and check it [default: 7; 0: none].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_drill_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acme: Option<Acme>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance_window: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apps: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub app: BTreeMap<String, RawAppChoice>,
}

/// `[app.<name>]` tables: per-app choices.
#[derive(Debug, Default, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAppChoice {
    pub subdomain: Option<String>,
    pub version: Option<String>,
    #[serde(default)]
    pub allow_list: Vec<String>,
}

impl RawClusterConfig {
    pub fn from_toml(text: &str) -> Result<Self, PlatformError> {
        toml::from_str(text)
            .map_err(|e| PlatformError::Config(format!("cluster.toml: {}", one_line(e.message()))))
    }

    /// Checks everything and builds the configuration. Each problem is one line naming the
    /// setting.
    pub fn resolve(self) -> Result<ClusterConfig, PlatformError> {
        let bad = |key: &str, message: String| PlatformError::Config(format!("{key}: {message}"));
        let domain = self
            .domain
            .ok_or_else(|| bad("domain", "is required".into()))?
            .trim_end_matches('.')
            .to_ascii_lowercase();
        check_domain(&domain).map_err(|m| bad("domain", m))?;
        let ip_address: IpAddr = self
            .ip_address
            .ok_or_else(|| bad("ip_address", "is required".into()))?
            .parse()
            .map_err(|_| bad("ip_address", "is not an IP address".into()))?;
        let admin_email = self
            .admin_email
            .ok_or_else(|| bad("admin_email", "is required".into()))?;
        check_email(&admin_email).map_err(|m| bad("admin_email", m))?;

        let mail_on = self.outgoing_mail_enabled.unwrap_or(false);
        let mail = if mail_on {
            let from_address = self.outgoing_mail_from_address.ok_or_else(|| {
                bad(
                    "outgoing_mail_from_address",
                    "is required when outgoing mail is enabled".into(),
                )
            })?;
            check_email(&from_address).map_err(|m| bad("outgoing_mail_from_address", m))?;
            let smtp_host = self.outgoing_mail_smtp_host.ok_or_else(|| {
                bad(
                    "outgoing_mail_smtp_host",
                    "is required when outgoing mail is enabled".into(),
                )
            })?;
            if smtp_host.is_empty() || smtp_host.contains(|c: char| c.is_whitespace() || c == '/') {
                return Err(bad("outgoing_mail_smtp_host", "is not a host name".into()));
            }
            let security = self
                .outgoing_mail_smtp_security
                .unwrap_or_else(|| "starttls".into());
            let default_port = match security.as_str() {
                "starttls" => 587,
                "tls" => 465,
                "none" => 25,
                other => {
                    return Err(bad(
                        "outgoing_mail_smtp_security",
                        format!("is {other:?}; expected starttls, tls or none"),
                    ));
                }
            };
            Some(Mail {
                from_address,
                smtp_host,
                smtp_port: self.outgoing_mail_smtp_port.unwrap_or(default_port),
                smtp_user: self.outgoing_mail_smtp_user.filter(|u| !u.is_empty()),
                smtp_password: self.outgoing_mail_smtp_password.filter(|p| !p.is_empty()),
                security,
            })
        } else {
            None
        };

        let time_zone = self.time_zone.unwrap_or_else(|| "UTC".into());
        if jiff::tz::TimeZone::get(&time_zone).is_err() {
            return Err(bad(
                "time_zone",
                format!("{time_zone:?} is not a known time zone name (Europe/Amsterdam)"),
            ));
        }
        let backup_time = match self.backup_time {
            None => "03:00".to_string(),
            Some(t) => {
                let parsed = chrono::NaiveTime::parse_from_str(t.trim(), "%H:%M")
                    .map_err(|_| bad("backup_time", format!("{t:?} is not a time like 03:00")))?;
                parsed.format("%H:%M").to_string()
            }
        };
        let retention_days = self.backup_retention_days.unwrap_or(30);
        if !(1..=3650).contains(&retention_days) {
            return Err(bad(
                "backup_retention_days",
                "must be between 1 and 3650 days".into(),
            ));
        }
        let drill_days = self.backup_drill_days.unwrap_or(7);
        if drill_days > 365 {
            return Err(bad(
                "backup_drill_days",
                "must be at most 365 days (0 turns drills off)".into(),
            ));
        }
        let backup_s3 = match (
            self.backup_s3_url,
            self.backup_s3_bucket,
            self.backup_s3_aws_access_key_id,
            self.backup_s3_aws_secret_access_key,
        ) {
            (None, None, None, None) => None,
            (Some(url), Some(bucket), Some(access_key_id), Some(secret_access_key)) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(bad("backup_s3_url", "must be an http(s):// address".into()));
                }
                Some(BackupS3 {
                    url,
                    bucket,
                    region: self.backup_s3_region.unwrap_or_else(|| "us-east-1".into()),
                    prefix: self.backup_s3_prefix.unwrap_or_default(),
                    access_key_id,
                    secret_access_key,
                    time: backup_time,
                    time_zone: time_zone.clone(),
                    retention_days,
                    drill_days,
                })
            }
            _ => {
                return Err(bad(
                    "backup_s3_*",
                    "backups need backup_s3_url, backup_s3_bucket, backup_s3_aws_access_key_id and backup_s3_aws_secret_access_key together".into(),
                ));
            }
        };

        let maintenance_window = match self.maintenance_window {
            None => Window::default(),
            Some(w) => w.parse().map_err(|m| bad("maintenance_window", m))?,
        };
        let mut apps = Vec::new();
        let mut tables = self.app;
        for name in self.apps.unwrap_or_default() {
            if apps.iter().any(|a: &AppChoice| a.name == name) {
                return Err(bad("apps", format!("{name:?} is listed twice")));
            }
            let raw = tables.remove(&name).unwrap_or_default();
            let version = match raw.version {
                None => None,
                Some(v) => Some(semver::Version::parse(v.trim_start_matches('v')).map_err(
                    |e| {
                        bad(
                            &format!("app.{name}.version"),
                            format!("is not a version: {e}"),
                        )
                    },
                )?),
            };
            if let Some(sub) = &raw.subdomain
                && !sub.is_empty()
                && !is_dns_label(sub)
            {
                return Err(bad(
                    &format!("app.{name}.subdomain"),
                    "must be a DNS label (a-z, 0-9, -)".into(),
                ));
            }
            for range in &raw.allow_list {
                check_cidr(range).map_err(|m| bad(&format!("app.{name}.allow_list"), m))?;
            }
            apps.push(AppChoice {
                name,
                subdomain: raw.subdomain,
                version,
                allow_list: raw.allow_list,
                suspended: false,
                running: false,
            });
        }
        if let Some(name) = tables.keys().next() {
            return Err(bad(
                &format!("app.{name}"),
                "has settings but is not in apps".into(),
            ));
        }

        Ok(ClusterConfig {
            domain,
            ip_address,
            admin_email,
            mail,
            backup_s3,
            acme: self.acme.unwrap_or(Acme::Production),
            maintenance_window,
            time_zone,
            apps,
        })
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn check_domain(d: &str) -> Result<(), String> {
    let labels: Vec<&str> = d.split('.').collect();
    if labels.len() < 2 || d.len() > 253 || !labels.iter().all(|l| is_dns_label(l)) {
        return Err(format!("{d:?} is not a domain name (example.org)"));
    }
    Ok(())
}

fn check_email(e: &str) -> Result<(), String> {
    match e.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && domain.contains('.')
                && !e.contains(|c: char| {
                    c.is_whitespace() || c.is_control() || "'\"$\\<>".contains(c)
                }) =>
        {
            Ok(())
        }
        _ => Err(format!("{e:?} is not an email address")),
    }
}

fn check_cidr(s: &str) -> Result<(), String> {
    let (addr, bits) = s.split_once('/').unwrap_or((s, ""));
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{s:?} is not an address or CIDR range"))?;
    if !bits.is_empty() {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        match bits.parse::<u8>() {
            Ok(b) if b <= max => {}
            _ => return Err(format!("{s:?} has a bad prefix length")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> RawClusterConfig {
        RawClusterConfig {
            domain: Some("Example.org".into()),
            ip_address: Some("192.0.2.10".into()),
            admin_email: Some("admin@example.org".into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_window_is_read_in_the_clusters_time_zone() {
        use chrono::TimeZone;
        let mut raw = base();
        raw.time_zone = Some("Europe/Amsterdam".into());
        let c = raw.resolve().expect("valid");
        // 01:30 UTC in December is 02:30 in Amsterdam: inside 02:00-04:00 there, not in UTC.
        let t = chrono::Utc
            .with_ymd_and_hms(2026, 12, 4, 1, 30, 0)
            .single()
            .expect("time");
        assert!(c.in_window(t));
        let mut utc = base();
        utc.time_zone = Some("UTC".into());
        assert!(!utc.resolve().expect("valid").in_window(t));
        let late = chrono::Utc
            .with_ymd_and_hms(2026, 12, 4, 3, 30, 0)
            .single()
            .expect("time");
        assert!(!c.in_window(late), "04:30 in Amsterdam is after the window");
        let mut bad = base();
        bad.time_zone = Some("Mars/Olympus".into());
        assert!(bad.resolve().unwrap_err().to_string().contains("time_zone"));
    }

    #[test]
    fn the_seeds_names_are_read() {
        let raw = RawClusterConfig::from_toml(
            r#"
domain = "example.org"
ip_address = "192.0.2.10"
admin_email = "admin@example.org"
outgoing_mail_enabled = true
outgoing_mail_from_address = "noreply@example.org"
outgoing_mail_smtp_host = "smtp.example.org"
outgoing_mail_smtp_user = "noreply@example.org"
outgoing_mail_smtp_password = "pw"
maintenance_window = "01:30-03:00"
time_zone = "Europe/Amsterdam"
apps = ["nextcloud", "wordpress"]
[app.wordpress]
subdomain = ""
allow_list = ["198.51.100.0/24"]
"#,
        )
        .expect("parses");
        let c = raw.resolve().expect("valid");
        let mail = c.mail.expect("mail on");
        assert_eq!(mail.smtp_port, 587);
        assert_eq!(c.maintenance_window.to_string(), "01:30-03:00");
        assert_eq!(c.apps[1].subdomain.as_deref(), Some(""));
        assert!(!format!("{mail:?}").contains("pw"));
    }

    #[test]
    fn problems_name_the_setting() {
        let cases: Vec<(RawClusterConfig, &str)> = vec![
            (
                RawClusterConfig {
                    domain: None,
                    ..base()
                },
                "domain: is required",
            ),
            (
                RawClusterConfig {
                    domain: Some("localhost".into()),
                    ..base()
                },
                "domain:",
            ),
            (
                RawClusterConfig {
                    ip_address: Some("1.2.3".into()),
                    ..base()
                },
                "ip_address:",
            ),
            (
                RawClusterConfig {
                    admin_email: Some("nope".into()),
                    ..base()
                },
                "admin_email:",
            ),
            (
                RawClusterConfig {
                    outgoing_mail_enabled: Some(true),
                    ..base()
                },
                "outgoing_mail_from_address:",
            ),
            (
                RawClusterConfig {
                    maintenance_window: Some("25:00-01:00".into()),
                    ..base()
                },
                "maintenance_window:",
            ),
            (
                RawClusterConfig {
                    backup_s3_url: Some("https://s3".into()),
                    ..base()
                },
                "backup_s3_*:",
            ),
            (
                RawClusterConfig {
                    apps: Some(vec!["a".into(), "a".into()]),
                    ..base()
                },
                "listed twice",
            ),
        ];
        for (raw, expected) in cases {
            let err = raw.resolve().expect_err(expected).to_string();
            assert!(err.contains(expected), "{expected:?} in {err:?}");
        }
        assert!(RawClusterConfig::from_toml("surprise = 1").is_err());
    }
}
