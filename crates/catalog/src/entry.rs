//! One catalog entry: the shape of `catalog/<app>/app.toml` and the checks made when it loads.

use serde::Deserialize;

use crate::CONTROL_PLANE;
use crate::CatalogError;
use crate::template::{self, Template};

/// Where an app is installed. The seed put the platform in `stackspin` and apps in
/// `stackspin-apps`; we keep that, so its restore procedure and habits still apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Part of the platform: always installed.
    Core,
    /// Optional platform component (monitoring, backups).
    Platform,
    /// An app people use.
    App,
}

/// Where the chart comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ChartSource {
    /// A classic Helm repository (an `index.yaml` over HTTPS).
    Helm { url: String, chart: String },
    /// An OCI registry; `url` is the chart's own reference (`oci://host/path/chart`).
    Oci { url: String },
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Chart {
    pub source: ChartSource,
    /// The version this entry was written and checked against.
    pub version: semver::Version,
    /// `v` for charts whose versions are written `v1.2.3` (cert-manager), else empty.
    pub version_prefix: String,
    /// The versions taken by automatic updates.
    pub updates: semver::VersionReq,
    /// The folder of the chart's default values this entry is checked against; `None` for a
    /// generic chart whose values are all maps keyed by the entry's own names (then every
    /// path the entry sets lies under `free_form`).
    pub defaults: Option<String>,
    /// Values paths under which any key is allowed (maps the chart passes through, such as
    /// annotations, config files or environment variables).
    pub free_form: Vec<String>,
    /// Values prefixes that belong to a sub-chart, checked against that chart's defaults.
    pub subcharts: std::collections::BTreeMap<String, String>,
}

/// Where an app reads the `groups` claim from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupsFrom {
    Userinfo,
    IdToken,
}

/// The shape of the `groups` claim the app needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimShape {
    /// `["admin"]` or `["user"]`: the role, as the identity provider gives it.
    Role,
    /// `["admin", "user"]` for admins: for apps that check one access value only
    /// (HedgeDoc's `CMD_OAUTH2_ACCESS_ROLE`), so admins are not locked out.
    RoleAndUser,
}

/// How the app turns the claim into its own admin right.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "mapping", rename_all = "snake_case")]
pub enum AdminMapping {
    /// The app maps `admin` in the claim to its admin role at every login.
    Native { how: String },
    /// The app cannot map roles: what the admin does instead (shown on the Dashboard).
    Manual { instead: String },
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Oidc {
    pub redirect_paths: Vec<String>,
    pub post_logout_paths: Vec<String>,
    pub backchannel_logout_path: Option<String>,
    pub groups_from: GroupsFrom,
    pub claim: ClaimShape,
    pub admin: AdminMapping,
}

/// A secret generated once per cluster and never regenerated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GeneratedSecret {
    pub name: String,
    pub length: usize,
    pub format: SecretFormat,
}

/// What a generated secret looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretFormat {
    /// `length` random characters.
    #[default]
    Text,
    /// A platform key file line: 32 random bytes in standard base64 (the control plane
    /// refuses anything else as its key).
    PlatformKey,
}

/// A Helm value that holds a secret: it reaches the chart from a Secret through
/// `valuesFrom.targetPath`, never from the HelmRelease itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SecretValue {
    pub path: String,
    #[serde(skip)]
    pub value: Template,
    pub when: When,
}

/// When a secret value or key is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    Always,
    /// Only when the cluster has outgoing mail.
    Mail,
    /// Only when it has none (a chart that insists on a key gets an empty one).
    NoMail,
}

impl When {
    pub fn applies(self, mail: bool) -> bool {
        match self {
            When::Always => true,
            When::Mail => mail,
            When::NoMail => !mail,
        }
    }
}

/// A key of the app's own Secret (`stackspin-<app>-secrets`), for charts that read secrets
/// from environment variables of a named Secret rather than from values.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SecretKey {
    pub key: String,
    #[serde(skip)]
    pub value: Template,
    pub when: When,
}

/// A persistent volume of the app, labelled `stackspin.net/backupSet=<app>` so backups and
/// restores select it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Volume {
    pub name: String,
    /// The values path of the chart's label map for this volume; absent when the chart has
    /// none and the label is added by a post-renderer.
    pub labels_path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Requests {
    pub cpu: String,
    pub memory: String,
}

/// A web tool behind Stackspin's sign-in (forward-auth), at `<subdomain>.<domain>`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tool {
    /// Its app name in the identity store (roles are given per app).
    pub name: String,
    pub title: String,
    pub subdomain: String,
}

/// A validated catalog entry.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    pub name: String,
    pub title: String,
    pub summary: String,
    pub docs: String,
    pub kind: Kind,
    /// The app's default host is `<subdomain>.<domain>`.
    pub subdomain: String,
    /// The app may sit on the cluster's bare domain (WordPress, as in the seed).
    pub root_domain_allowed: bool,
    /// Why this chart and not another, where that is not obvious.
    pub note: Option<String>,
    /// Entries that must be ready first (Flux `dependsOn`).
    pub depends_on: Vec<String>,
    /// The entry this one is installed with (Onlyoffice with Nextcloud); never chosen alone.
    pub part_of: Option<String>,
    /// Installed whenever the cluster has a backup store (`backup_s3_*`), never chosen.
    pub with_backup: bool,
    /// The values path of the app's Ingress annotations, where the platform adds the IP
    /// allow-list middleware; `None` when the entry has no Ingress.
    pub ingress_annotations: Option<String>,
    pub chart: Chart,
    pub oidc: Option<Oidc>,
    pub secrets: Vec<GeneratedSecret>,
    pub secret_values: Vec<SecretValue>,
    pub secret_keys: Vec<SecretKey>,
    pub volumes: Vec<Volume>,
    /// Web tools of this entry that cannot speak OpenID Connect (Prometheus, Alertmanager):
    /// behind the forward-auth middleware, each registered as an app so people need a role.
    pub tools: Vec<Tool>,
    pub requests: Requests,
    /// The parts whose host or Secret the templates name (`part.<name>.*`); checked against
    /// the catalog when it loads.
    #[serde(skip)]
    pub parts_used: Vec<String>,
    /// The values template, from `values.yaml`.
    #[serde(skip)]
    pub values: Template,
    /// Merged over `values` when the cluster has outgoing mail, from `mail.yaml`.
    #[serde(skip)]
    pub mail_values: Option<Template>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    name: String,
    title: String,
    summary: String,
    docs: String,
    kind: Kind,
    subdomain: String,
    #[serde(default)]
    root_domain_allowed: bool,
    note: Option<String>,
    #[serde(default)]
    depends_on: Vec<String>,
    part_of: Option<String>,
    #[serde(default)]
    with_backup: bool,
    ingress_annotations: Option<String>,
    chart: RawChart,
    oidc: Option<RawOidc>,
    #[serde(default)]
    secrets: Vec<RawSecret>,
    #[serde(default)]
    secret_values: Vec<RawSecretValue>,
    #[serde(default)]
    secret_keys: Vec<RawSecretKey>,
    #[serde(default)]
    volumes: Vec<RawVolume>,
    #[serde(default)]
    tools: Vec<RawTool>,
    requests: RawRequests,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTool {
    name: String,
    title: String,
    subdomain: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChart {
    repository: Option<String>,
    name: Option<String>,
    oci: Option<String>,
    version: String,
    updates: String,
    defaults: Option<String>,
    #[serde(default)]
    free_form: Vec<String>,
    #[serde(default)]
    subcharts: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOidc {
    redirect_paths: Vec<String>,
    #[serde(default)]
    post_logout_paths: Vec<String>,
    backchannel_logout_path: Option<String>,
    groups_from: GroupsFrom,
    claim: ClaimShape,
    admin_mapping: String,
    admin_how: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    name: String,
    #[serde(default = "default_length")]
    length: usize,
    #[serde(default)]
    format: SecretFormat,
}

fn default_length() -> usize {
    32
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecretValue {
    path: String,
    value: String,
    #[serde(default)]
    when: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecretKey {
    key: String,
    value: String,
    #[serde(default)]
    when: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVolume {
    name: String,
    labels_path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequests {
    cpu: String,
    memory: String,
}

/// Parses and checks one entry from its folder's files.
pub(crate) fn load(
    folder: &str,
    app_toml: &str,
    values_yaml: &str,
    mail_yaml: Option<&str>,
) -> Result<Entry, CatalogError> {
    let file = format!("catalog/{folder}/app.toml");
    let raw: RawEntry = toml::from_str(app_toml).map_err(|e| CatalogError::Parse {
        file: file.clone(),
        message: e.message().to_string(),
        field: e
            .span()
            .map(|s| {
                let line = app_toml[..s.start].lines().count().max(1);
                format!("line {line}")
            })
            .unwrap_or_default(),
    })?;
    let bad = |field: &str, message: String| CatalogError::Invalid {
        file: file.clone(),
        field: field.to_string(),
        message,
    };

    if raw.name != folder {
        return Err(bad(
            "name",
            format!("is {:?} but the folder is {folder:?}", raw.name),
        ));
    }
    if !is_dns_label(&raw.name) {
        return Err(bad("name", "must be a DNS label (a-z, 0-9, -)".into()));
    }
    if !raw.subdomain.is_empty() && !is_dns_label(&raw.subdomain) {
        return Err(bad("subdomain", "must be a DNS label (a-z, 0-9, -)".into()));
    }
    if !raw.docs.starts_with("https://") {
        return Err(bad("docs", "must be an https:// address".into()));
    }

    let source = match (&raw.chart.repository, &raw.chart.name, &raw.chart.oci) {
        (Some(url), Some(chart), None) => {
            check_url(url, "https").map_err(|m| bad("chart.repository", m))?;
            if !is_dns_label(chart) {
                return Err(bad(
                    "chart.name",
                    "must be a chart name (a-z, 0-9, -)".into(),
                ));
            }
            ChartSource::Helm {
                url: url.clone(),
                chart: chart.clone(),
            }
        }
        (None, None, Some(url)) => {
            check_url(url, "oci").map_err(|m| bad("chart.oci", m))?;
            ChartSource::Oci { url: url.clone() }
        }
        _ => {
            return Err(bad(
                "chart",
                "needs either repository and name (a Helm repository) or oci (a registry), not both"
                    .into(),
            ));
        }
    };
    let (version_prefix, bare_version) = match raw.chart.version.strip_prefix('v') {
        Some(bare) => ("v", bare),
        None => ("", raw.chart.version.as_str()),
    };
    let version = semver::Version::parse(bare_version)
        .map_err(|e| bad("chart.version", format!("is not a version: {e}")))?;
    let updates = semver::VersionReq::parse(&raw.chart.updates)
        .map_err(|e| bad("chart.updates", format!("is not a version range: {e}")))?;
    if !updates.matches(&version) {
        return Err(bad(
            "chart.updates",
            format!("does not include chart.version {version}"),
        ));
    }

    if raw.chart.defaults.is_none() && raw.chart.free_form.is_empty() {
        return Err(bad(
            "chart.defaults",
            "is required unless chart.free_form names every values map the entry sets".into(),
        ));
    }

    let values_file = format!("catalog/{folder}/values.yaml");
    let values = Template::parse(&values_file, values_yaml)?;
    values
        .check_placeholders(&values_file, false)
        .map_err(|(field, message)| CatalogError::Invalid {
            file: values_file.clone(),
            field,
            message,
        })?;
    let mail_values = match mail_yaml {
        Some(text) => {
            let mail_file = format!("catalog/{folder}/mail.yaml");
            let t = Template::parse(&mail_file, text)?;
            t.check_placeholders(&mail_file, false)
                .map_err(|(field, message)| CatalogError::Invalid {
                    file: mail_file.clone(),
                    field,
                    message,
                })?;
            Some(t)
        }
        None => None,
    };

    if values.uses_backup() && !raw.with_backup {
        return Err(CatalogError::Invalid {
            file: values_file.clone(),
            field: "backup".into(),
            message: "the backup store's settings are only for entries with with_backup = true"
                .into(),
        });
    }
    if raw.with_backup && (raw.kind != Kind::Platform || raw.part_of.is_some()) {
        return Err(bad(
            "with_backup",
            "only a platform entry of its own is installed with the backup store".into(),
        ));
    }

    let oidc = match raw.oidc {
        None => None,
        Some(o) => {
            if o.redirect_paths.is_empty() {
                return Err(bad("oidc.redirect_paths", "needs at least one path".into()));
            }
            for (field, paths) in [
                ("oidc.redirect_paths", &o.redirect_paths),
                ("oidc.post_logout_paths", &o.post_logout_paths),
            ] {
                for p in paths {
                    check_path(p).map_err(|m| bad(field, m))?;
                }
            }
            if let Some(p) = &o.backchannel_logout_path {
                check_path(p).map_err(|m| bad("oidc.backchannel_logout_path", m))?;
            }
            let admin = match o.admin_mapping.as_str() {
                "native" => AdminMapping::Native { how: o.admin_how },
                "manual" => AdminMapping::Manual {
                    instead: o.admin_how,
                },
                other => {
                    return Err(bad(
                        "oidc.admin_mapping",
                        format!("is {other:?}; expected \"native\" or \"manual\""),
                    ));
                }
            };
            Some(Oidc {
                redirect_paths: o.redirect_paths,
                post_logout_paths: o.post_logout_paths,
                backchannel_logout_path: o.backchannel_logout_path,
                groups_from: o.groups_from,
                claim: o.claim,
                admin,
            })
        }
    };

    let mut secrets = Vec::new();
    for s in raw.secrets {
        if !is_identifier(&s.name) {
            return Err(bad(
                "secrets.name",
                format!("{:?} must be a-z, 0-9 and _", s.name),
            ));
        }
        if !(16..=128).contains(&s.length) {
            return Err(bad(
                "secrets.length",
                format!("{} for {:?} must be 16 to 128", s.length, s.name),
            ));
        }
        if secrets.iter().any(|x: &GeneratedSecret| x.name == s.name) {
            return Err(bad("secrets.name", format!("{:?} is listed twice", s.name)));
        }
        secrets.push(GeneratedSecret {
            name: s.name,
            length: s.length,
            format: s.format,
        });
    }

    let check_secret = |field: &str, what: &str, value: &str, when: Option<&str>| {
        let when = match when {
            None => When::Always,
            Some("mail") => When::Mail,
            Some("no_mail") => When::NoMail,
            Some(other) => {
                return Err(bad(
                    &format!("{field}.when"),
                    format!("is {other:?}; expected \"mail\" or \"no_mail\""),
                ));
            }
        };
        let value = Template::string(value);
        value
            .check_placeholders(&file, true)
            .map_err(|(_, message)| bad(&format!("{field}.value"), message))?;
        for name in value.secret_names() {
            if !secrets.iter().any(|s: &GeneratedSecret| s.name == name) {
                return Err(bad(
                    &format!("{field}.value"),
                    format!("uses secret.{name}, which is not in [[secrets]]"),
                ));
            }
        }
        if value.uses_mail() && when != When::Mail {
            return Err(bad(
                &format!("{field}.when"),
                format!("{what} uses mail settings, so it needs when = \"mail\""),
            ));
        }
        // The cluster configuration holds the SMTP password and the backup store's key: only
        // the control plane, which reads it, may receive it.
        if value.uses("cluster_config") && raw.name != CONTROL_PLANE {
            return Err(bad(
                &format!("{field}.value"),
                format!("only the {CONTROL_PLANE} entry may use ${{cluster_config}}"),
            ));
        }
        if value.uses_backup() && !raw.with_backup {
            return Err(bad(
                &format!("{field}.value"),
                "uses the backup store, which only entries with with_backup = true get".into(),
            ));
        }
        if value.uses_oidc() && oidc.is_none() {
            return Err(bad(
                &format!("{field}.value"),
                "uses oidc.client_secret but the entry has no [oidc]".into(),
            ));
        }
        Ok((value, when))
    };

    let mut secret_values = Vec::new();
    for v in raw.secret_values {
        template::check_target_path(&v.path).map_err(|m| bad("secret_values.path", m))?;
        let (value, when) = check_secret("secret_values", &v.path, &v.value, v.when.as_deref())?;
        secret_values.push(SecretValue {
            path: v.path,
            value,
            when,
        });
    }
    let mut secret_keys: Vec<SecretKey> = Vec::new();
    for k in raw.secret_keys {
        let key_ok = !k.key.is_empty()
            && k.key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if !key_ok {
            return Err(bad(
                "secret_keys.key",
                format!("{:?} is not a Secret key (a-z, A-Z, 0-9, - . _)", k.key),
            ));
        }
        let (value, when) = check_secret("secret_keys", &k.key, &k.value, k.when.as_deref())?;
        let clash = secret_keys.iter().any(|x| {
            x.key == k.key && (x.when == When::Always || when == When::Always || x.when == when)
        });
        if clash {
            return Err(bad(
                "secret_keys.key",
                format!("{:?} is listed twice", k.key),
            ));
        }
        secret_keys.push(SecretKey {
            key: k.key,
            value,
            when,
        });
    }

    let ingress_annotations = match raw.ingress_annotations {
        Some(path) => {
            if values.get(&path).is_none_or(|v| !v.is_object()) {
                return Err(bad(
                    "ingress_annotations",
                    format!("{path:?} is not a map in values.yaml"),
                ));
            }
            Some(path)
        }
        None => values
            .get("ingress.annotations")
            .filter(|v| v.is_object())
            .map(|_| "ingress.annotations".to_string()),
    };

    let mut parts_used: Vec<String> = values.part_names();
    if let Some(m) = &mail_values {
        parts_used.extend(m.part_names());
    }
    for v in secret_values.iter().map(|v| &v.value) {
        parts_used.extend(v.part_names());
    }
    for k in secret_keys.iter().map(|k| &k.value) {
        parts_used.extend(k.part_names());
    }
    parts_used.sort();
    parts_used.dedup();

    let mut volumes = Vec::new();
    for v in raw.volumes {
        if let Some(path) = &v.labels_path {
            let label = values
                .get(path)
                .and_then(|m| m.get(crate::BACKUP_SET_LABEL));
            if label.and_then(|l| l.as_str()) != Some("${backup_set}") {
                return Err(CatalogError::Invalid {
                    file: values_file.clone(),
                    field: path.clone(),
                    message: format!(
                        "volume {:?} needs {}: ${{backup_set}} here",
                        v.name,
                        crate::BACKUP_SET_LABEL
                    ),
                });
            }
        }
        volumes.push(Volume {
            name: v.name,
            labels_path: v.labels_path,
        });
    }

    for (field, quantity) in [
        ("requests.cpu", &raw.requests.cpu),
        ("requests.memory", &raw.requests.memory),
    ] {
        if !is_quantity(quantity) {
            return Err(bad(field, format!("{quantity:?} is not a quantity")));
        }
    }

    let mut tools = Vec::new();
    for t in raw.tools {
        if !is_dns_label(&t.name) || !is_dns_label(&t.subdomain) {
            return Err(bad(
                "tools",
                format!(
                    "{:?}: name and subdomain must be DNS labels (a-z, 0-9, -)",
                    t.name
                ),
            ));
        }
        if t.name == raw.name || tools.iter().any(|o: &Tool| o.name == t.name) {
            return Err(bad("tools", format!("{:?} is named twice", t.name)));
        }
        tools.push(Tool {
            name: t.name,
            title: t.title,
            subdomain: t.subdomain,
        });
    }
    if !tools.is_empty() && !values.uses("forward_auth") {
        return Err(bad(
            "tools",
            "the values must put the tools' ingresses behind ${forward_auth}".into(),
        ));
    }

    Ok(Entry {
        name: raw.name,
        title: raw.title,
        summary: raw.summary,
        docs: raw.docs,
        kind: raw.kind,
        subdomain: raw.subdomain,
        root_domain_allowed: raw.root_domain_allowed,
        note: raw.note,
        depends_on: raw.depends_on,
        part_of: raw.part_of,
        with_backup: raw.with_backup,
        ingress_annotations,
        chart: Chart {
            source,
            version,
            version_prefix: version_prefix.to_string(),
            updates,
            defaults: raw.chart.defaults,
            free_form: raw.chart.free_form,
            subcharts: raw.chart.subcharts,
        },
        oidc,
        secrets,
        secret_values,
        secret_keys,
        volumes,
        tools,
        requests: Requests {
            cpu: raw.requests.cpu,
            memory: raw.requests.memory,
        },
        parts_used,
        values,
        mail_values,
    })
}

pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn check_url(s: &str, scheme: &str) -> Result<(), String> {
    let u = url::Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    // Plain HTTP only on loopback: a chart repository on the admin's own machine (or a
    // test's), never across a network where the chart could be swapped in transit.
    let loopback = scheme == "https"
        && u.scheme() == "http"
        && matches!(u.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback());
    if u.scheme() != scheme && !loopback {
        return Err(format!("{s:?} must start with {scheme}://"));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("{s:?} has no host"));
    }
    Ok(())
}

fn check_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') || p.starts_with("//") || p.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!("{p:?} must be a path starting with one /"));
    }
    Ok(())
}

/// A Kubernetes quantity as we write them: digits with an optional binary or milli suffix.
fn is_quantity(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &s[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && ["", "m", "Ki", "Mi", "Gi"].contains(&suffix)
}

impl Chart {
    /// A version as the chart's repository writes it (`v1.21.1` for cert-manager).
    pub fn version_text(&self, version: &semver::Version) -> String {
        format!("{}{version}", self.version_prefix)
    }
}

impl Entry {
    /// Where the chart comes from, in one line for people.
    pub fn chart_label(&self) -> String {
        match &self.chart.source {
            ChartSource::Helm { url, chart } => format!("{chart} from {url}"),
            ChartSource::Oci { url } => url.clone(),
        }
    }
}
