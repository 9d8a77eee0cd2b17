//! From a cluster configuration, the catalog and the generated secrets to the typed objects
//! the cluster should hold. Pure: same input, same objects, in the same order.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use stackspin_catalog::{Catalog, ChartSource, Entry, Kind, MailContext, RenderContext};

use crate::config::ClusterConfig;
use crate::crds::*;
use crate::secrets::{GeneratedSecrets, OIDC_CLIENT_SECRET};
use crate::{Object, PlatformError};

/// The namespace of the platform (core and monitoring), as in the seed.
pub const CORE_NAMESPACE: &str = "stackspin";
/// The namespace of the apps, as in the seed.
pub const APPS_NAMESPACE: &str = "stackspin-apps";

/// The catalog entry that brings Prometheus, Alertmanager and Grafana.
pub const MONITORING: &str = "monitoring";
/// Where Flux's controllers run.
pub const FLUX_NAMESPACE: &str = "flux-system";
/// The label on everything Stackspin manages.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "stackspin");
/// The label naming the catalog entry an object belongs to.
pub const APP_LABEL: &str = "stackspin.net/app";

/// How often Flux looks again, and how long an install or upgrade may take. The defaults
/// suit real apps; tests on simulated nodes use shorter ones.
#[derive(Debug, Clone)]
pub struct Tuning {
    pub interval: String,
    pub source_interval: String,
    pub timeout: String,
    pub install_retries: i64,
    pub upgrade_retries: i64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            interval: "10m".into(),
            source_interval: "1h".into(),
            timeout: "15m".into(),
            install_retries: 3,
            upgrade_retries: 1,
        }
    }
}

/// One app (or core component) as it will run: its entry, namespace, host and version.
#[derive(Debug, Clone)]
pub struct Placement<'a> {
    pub entry: &'a Entry,
    pub namespace: &'static str,
    /// Empty for entries without a host of their own (Loki, Alloy, cert-manager).
    pub host: String,
    pub version: semver::Version,
    pub allow_list: Vec<String>,
    /// The release is suspended: a restore is replacing the app's data (its parts too).
    pub suspended: bool,
    /// A version of the app runs (see `AppChoice::running`).
    pub running: bool,
}

impl Placement<'_> {
    pub fn url(&self) -> Option<String> {
        (!self.host.is_empty()).then(|| format!("https://{}", self.host))
    }
}

/// The host of the control plane, which is the OIDC issuer of every app.
pub fn dashboard_host(catalog: &Catalog, config: &ClusterConfig) -> String {
    let sub = catalog
        .get("stackspin")
        .map(|e| e.subdomain.as_str())
        .unwrap_or("dashboard");
    format!("{sub}.{}", config.domain)
}

/// Where every entry the configuration asks for runs: the core, then each chosen app with
/// its parts. Refuses unknown apps, core entries chosen as apps, parts chosen alone, missing
/// dependencies, and bare-domain hosts for entries that do not allow them.
pub fn placements<'a>(
    catalog: &'a Catalog,
    config: &ClusterConfig,
) -> Result<Vec<Placement<'a>>, PlatformError> {
    let mut out: Vec<Placement<'a>> = Vec::new();
    let mut place = |entry: &'a Entry,
                     namespace: &'static str,
                     choice: Option<&crate::AppChoice>|
     -> Result<(), PlatformError> {
        let subdomain = choice
            .and_then(|c| c.subdomain.clone())
            .filter(|_| entry.part_of.is_none())
            .unwrap_or_else(|| entry.subdomain.clone());
        let has_host = entry.ingress_annotations.is_some() || entry.name == "stackspin";
        let host = if !has_host {
            String::new()
        } else if subdomain.is_empty() {
            if !entry.root_domain_allowed {
                return Err(PlatformError::Config(format!(
                    "app.{}.subdomain: {} cannot be on the bare domain",
                    entry.name, entry.title
                )));
            }
            config.domain.clone()
        } else {
            format!("{subdomain}.{}", config.domain)
        };
        let version = match choice.and_then(|c| c.version.clone()) {
            Some(v) if entry.part_of.is_none() => {
                if !entry.chart.updates.matches(&v) {
                    return Err(PlatformError::Config(format!(
                        "app.{}.version: {v} is outside the catalog's range {}",
                        entry.name, entry.chart.updates
                    )));
                }
                v
            }
            _ => entry.chart.version.clone(),
        };
        // A part with a web address of its own (Onlyoffice) is restricted like its whole, as
        // the same people's browsers reach both; a part without one has nothing to restrict.
        let allow_list = choice
            .filter(|_| entry.part_of.is_none() || entry.ingress_annotations.is_some())
            .map(|c| c.allow_list.clone())
            .unwrap_or_default();
        if !allow_list.is_empty() && entry.ingress_annotations.is_none() {
            return Err(PlatformError::Config(format!(
                "app.{}.allow_list: {} has no web address to restrict",
                entry.name, entry.title
            )));
        }
        out.push(Placement {
            entry,
            namespace,
            host,
            version,
            allow_list,
            suspended: choice.is_some_and(|c| c.suspended),
            running: choice.is_some_and(|c| c.running),
        });
        Ok(())
    };

    for entry in catalog.core() {
        place(entry, CORE_NAMESPACE, None)?;
    }
    // Backups come with the backup store's settings, not with a choice.
    if config.backup_s3.is_some() {
        for entry in catalog.backup_entries() {
            place(entry, CORE_NAMESPACE, None)?;
        }
    }
    for choice in &config.apps {
        let entry = catalog
            .get(&choice.name)
            .ok_or_else(|| PlatformError::UnknownApp(choice.name.clone()))?;
        if entry.kind == Kind::Core {
            return Err(PlatformError::Config(format!(
                "apps: {} is part of the core and always installed",
                entry.name
            )));
        }
        if let Some(whole) = &entry.part_of {
            return Err(PlatformError::Config(format!(
                "apps: {} is installed with {whole}; choose {whole}",
                entry.name
            )));
        }
        let namespace = if entry.kind == Kind::App {
            APPS_NAMESPACE
        } else {
            CORE_NAMESPACE
        };
        for part in catalog.with_parts(&entry.name) {
            place(part, namespace, Some(choice))?;
        }
    }
    for p in &out {
        for dep in &p.entry.depends_on {
            if !out.iter().any(|o| &o.entry.name == dep) {
                return Err(PlatformError::Config(format!(
                    "apps: {} needs {dep}; add it to apps",
                    p.entry.name
                )));
            }
        }
    }
    Ok(out)
}

fn meta(name: &str, namespace: Option<&str>, app: Option<&str>) -> ObjectMeta {
    let mut labels = BTreeMap::from([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())]);
    if let Some(app) = app {
        labels.insert(APP_LABEL.to_string(), app.to_string());
    }
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

/// Labels a ConfigMap or Secret so that helm-controller reconciles as soon as it changes.
fn watched(mut m: ObjectMeta) -> ObjectMeta {
    m.labels
        .get_or_insert_with(BTreeMap::new)
        .insert("reconcile.fluxcd.io/watch".into(), "Enabled".into());
    m
}

fn yaml(value: &Value) -> Result<String, PlatformError> {
    serde_saphyr::to_string(value).map_err(|e| PlatformError::Render(format!("values: {e}")))
}

fn mail_context(config: &ClusterConfig) -> Option<MailContext> {
    config.mail.as_ref().map(|m| MailContext {
        host: m.smtp_host.clone(),
        port: m.smtp_port,
        from: m.from_address.clone(),
        user: m.smtp_user.clone(),
        password: m.smtp_password.clone(),
        security: m.security.clone(),
    })
}

/// The names of an entry's objects, in one place so the operator and the manifests agree.
pub fn values_configmap(app: &str) -> String {
    format!("stackspin-{app}-values")
}
pub fn secret_values_secret(app: &str) -> String {
    format!("stackspin-{app}-secret-values")
}
pub fn override_name(app: &str) -> String {
    format!("stackspin-{app}-override")
}
/// The source the operator watches for the newest version inside the catalog's range.
pub fn updates_source(app: &str) -> String {
    format!("{app}-updates")
}

/// Makes Helm keep every claim when a release is uninstalled: the organisation's data goes
/// only when an admin purges it. Helm reads the policy from the rendered manifest, so it is
/// added by a post-renderer, whatever the chart does.
const KEEP_CLAIMS_PATCH: &str = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  \
                                 name: any\n  annotations:\n    \
                                 helm.sh/resource-policy: keep\n";

/// The Traefik middleware that puts tools behind Stackspin's sign-in (`/auth/forward`).
pub const FORWARD_AUTH_MIDDLEWARE: &str = "forward-auth";

/// How an Ingress names the forward-auth middleware.
pub fn forward_auth_ref() -> String {
    format!("{CORE_NAMESPACE}-{FORWARD_AUTH_MIDDLEWARE}@kubernetescrd")
}

/// The forward-auth middleware: asks the control plane's Service (release `stackspin` in the
/// core namespace) about each request and copies who the person is to the tool.
fn forward_auth_middleware() -> Object {
    let mut mw = Middleware::new(
        FORWARD_AUTH_MIDDLEWARE,
        MiddlewareSpec {
            ip_allow_list: None,
            forward_auth: Some(ForwardAuth {
                address: format!(
                    "http://{}.{CORE_NAMESPACE}.svc/auth/forward",
                    stackspin_catalog::CONTROL_PLANE
                ),
                trust_forward_header: false,
                auth_response_headers: vec![
                    "X-Stackspin-Email".into(),
                    "X-Stackspin-Name".into(),
                    "X-Stackspin-Role".into(),
                ],
            }),
        },
    );
    mw.metadata = meta(FORWARD_AUTH_MIDDLEWARE, Some(CORE_NAMESPACE), None);
    Object::Middleware(mw)
}

pub fn allow_list_middleware(app: &str) -> String {
    format!("{app}-allowlist")
}

/// Everything the cluster should hold for this configuration.
pub fn desired_state(
    catalog: &Catalog,
    config: &ClusterConfig,
    secrets: &GeneratedSecrets,
    tuning: &Tuning,
) -> Result<Vec<Object>, PlatformError> {
    let placements = placements(catalog, config)?;
    let issuer = format!("https://{}", dashboard_host(catalog, config));
    let mail = mail_context(config);
    let mut objects = vec![
        Object::Namespace(Namespace {
            metadata: meta(CORE_NAMESPACE, None, None),
            ..Namespace::default()
        }),
        Object::Namespace(Namespace {
            metadata: meta(APPS_NAMESPACE, None, None),
            ..Namespace::default()
        }),
    ];
    for acme in [crate::Acme::Production, crate::Acme::Staging] {
        let server = match acme {
            crate::Acme::Production => "https://acme-v02.api.letsencrypt.org/directory",
            crate::Acme::Staging => "https://acme-staging-v02.api.letsencrypt.org/directory",
        };
        let mut ci = ClusterIssuer::new(
            acme.issuer_name(),
            ClusterIssuerSpec {
                acme: AcmeIssuer {
                    server: server.into(),
                    email: config.admin_email.clone(),
                    private_key_secret_ref: SecretKeySelector {
                        name: format!("{}-account-key", acme.issuer_name()),
                    },
                    solvers: vec![AcmeSolver {
                        http01: AcmeHttp01 {
                            ingress: AcmeHttp01Ingress {
                                ingress_class_name: "traefik".into(),
                            },
                        },
                    }],
                },
            },
        );
        ci.metadata = meta(acme.issuer_name(), None, None);
        objects.push(Object::ClusterIssuer(ci));
    }

    if placements.iter().any(|p| !p.entry.tools.is_empty()) {
        objects.push(forward_auth_middleware());
    }
    for p in &placements {
        objects.extend(app_objects(
            p,
            &placements,
            config,
            secrets,
            tuning,
            &issuer,
            mail.as_ref(),
        )?);
    }
    Ok(objects)
}

/// Whether the operator follows new versions of an entry: what an admin installs (core
/// components, an app's parts and the backup system move with Stackspin's own releases).
pub fn probes_updates(e: &Entry) -> bool {
    e.kind != Kind::Core && e.part_of.is_none() && !e.with_backup
}

fn app_objects(
    p: &Placement<'_>,
    all: &[Placement<'_>],
    config: &ClusterConfig,
    secrets: &GeneratedSecrets,
    tuning: &Tuning,
    issuer: &str,
    mail: Option<&MailContext>,
) -> Result<Vec<Object>, PlatformError> {
    let e = p.entry;
    let ns = p.namespace;
    let app = e.name.as_str();
    let generated = secrets.app(app);
    let client_secret =
        match &e.oidc {
            Some(_) => Some(generated.get(OIDC_CLIENT_SECRET).ok_or_else(|| {
                PlatformError::MissingSecret(format!("{app}.{OIDC_CLIENT_SECRET}"))
            })?),
            None => None,
        };
    for s in &e.secrets {
        if !generated.contains_key(&s.name) {
            return Err(PlatformError::MissingSecret(format!("{app}.{}", s.name)));
        }
    }
    let parts: BTreeMap<String, String> = all
        .iter()
        .filter(|o| o.entry.part_of.as_deref() == Some(app) && !o.host.is_empty())
        .map(|o| (o.entry.name.clone(), o.host.clone()))
        .collect();
    let cluster_config = (app == stackspin_catalog::CONTROL_PLANE)
        .then(|| config.settings_toml())
        .transpose()?;
    let ctx = RenderContext {
        backup: config.backup_s3.as_ref(),
        parts: &parts,
        cluster_config: cluster_config.as_deref(),
        // A tool of an entry with an allow-list is restricted like its entry, then asked for
        // a sign-in.
        forward_auth: &if p.allow_list.is_empty() {
            forward_auth_ref()
        } else {
            format!(
                "{ns}-{}@kubernetescrd,{}",
                allow_list_middleware(app),
                forward_auth_ref()
            )
        },
        domain: &config.domain,
        host: &p.host,
        namespace: ns,
        issuer,
        admin_email: &config.admin_email,
        cluster_issuer: config.acme.issuer_name(),
        client_id: e.oidc.as_ref().map(|_| app),
        client_secret: client_secret.map(String::as_str),
        mail,
        secrets: &generated,
    };
    let mut rendered = e
        .render(&ctx)
        .map_err(|err| PlatformError::Render(err.to_string()))?;

    let mut objects = Vec::new();
    if !p.allow_list.is_empty()
        && let Some(path) = &e.ingress_annotations
    {
        let mut mw = Middleware::new(
            &allow_list_middleware(app),
            MiddlewareSpec {
                ip_allow_list: Some(IpAllowList {
                    source_range: p.allow_list.clone(),
                }),
                forward_auth: None,
            },
        );
        mw.metadata = meta(&allow_list_middleware(app), Some(ns), Some(app));
        objects.push(Object::Middleware(mw));
        let mut at = &mut rendered.values;
        for key in stackspin_catalog::template::split_path(path) {
            at = &mut at[key.as_str()];
        }
        if let Value::Object(map) = at {
            map.insert(
                "traefik.ingress.kubernetes.io/router.middlewares".into(),
                Value::String(format!("{ns}-{}@kubernetescrd", allow_list_middleware(app))),
            );
        }
    }

    // The control plane's ServiceMonitor, alerting rules and Grafana dashboards need the
    // Prometheus Operator's CRDs, which come with monitoring: asked for once a version of it
    // runs, so the control plane's own install never waits for or fails on them.
    if app == stackspin_catalog::CONTROL_PLANE
        && all.iter().any(|o| o.entry.name == MONITORING && o.running)
        && let Value::Object(values) = &mut rendered.values
    {
        values.insert("monitoring".into(), serde_json::json!({ "enabled": true }));
    }

    objects.push(Object::ConfigMap(ConfigMap {
        metadata: watched(meta(&values_configmap(app), Some(ns), Some(app))),
        data: Some(BTreeMap::from([(
            "values.yaml".to_string(),
            yaml(&rendered.values)?,
        )])),
        ..ConfigMap::default()
    }));
    let mut values_from = vec![ValuesReference {
        kind: "ConfigMap".into(),
        name: values_configmap(app),
        values_key: Some("values.yaml".into()),
        optional: None,
    }];
    let has_secret_values = rendered
        .secret_values
        .as_object()
        .is_some_and(|m| !m.is_empty());
    if has_secret_values {
        objects.push(Object::Secret(Secret {
            metadata: watched(meta(&secret_values_secret(app), Some(ns), Some(app))),
            data: Some(BTreeMap::from([(
                "values.yaml".to_string(),
                ByteString(yaml(&rendered.secret_values)?.into_bytes()),
            )])),
            type_: Some("Opaque".into()),
            ..Secret::default()
        }));
        values_from.push(ValuesReference {
            kind: "Secret".into(),
            name: secret_values_secret(app),
            values_key: Some("values.yaml".into()),
            optional: None,
        });
    }
    // The admin's own changes (seed "Customizing") come last, so they win.
    for kind in ["ConfigMap", "Secret"] {
        values_from.push(ValuesReference {
            kind: kind.into(),
            name: override_name(app),
            values_key: Some("values.yaml".into()),
            optional: Some(true),
        });
    }
    if !rendered.secret_keys.is_empty() {
        objects.push(Object::Secret(Secret {
            metadata: watched(meta(&e.secret_name(), Some(ns), Some(app))),
            data: Some(
                rendered
                    .secret_keys
                    .iter()
                    .map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes())))
                    .collect(),
            ),
            type_: Some("Opaque".into()),
            ..Secret::default()
        }));
    }

    let version = e.chart.version_text(&p.version);
    let (chart, chart_ref) = match &e.chart.source {
        ChartSource::Helm { url, chart } => {
            let mut repo = HelmRepository::new(
                app,
                HelmRepositorySpec {
                    url: url.clone(),
                    interval: tuning.source_interval.clone(),
                    timeout: None,
                },
            );
            repo.metadata = meta(app, Some(ns), Some(app));
            objects.push(Object::HelmRepository(repo));
            if probes_updates(e) {
                let mut probe = HelmChart::new(
                    &updates_source(app),
                    HelmChartSpec {
                        chart: chart.clone(),
                        version: Some(e.chart.updates.to_string()),
                        source_ref: LocalHelmChartSourceReference {
                            kind: "HelmRepository".into(),
                            name: app.into(),
                        },
                        interval: tuning.source_interval.clone(),
                    },
                );
                probe.metadata = meta(&updates_source(app), Some(ns), Some(app));
                objects.push(Object::HelmChart(probe));
            }
            (
                Some(HelmChartTemplate {
                    spec: HelmChartTemplateSpec {
                        chart: chart.clone(),
                        // The exact version: the operator, not Flux, decides when to move it.
                        version: Some(version),
                        source_ref: CrossNamespaceObjectReference {
                            kind: "HelmRepository".into(),
                            name: app.into(),
                            namespace: Some(ns.into()),
                        },
                        interval: Some(tuning.source_interval.clone()),
                    },
                }),
                None,
            )
        }
        ChartSource::Oci { url } => {
            let mut repo = OCIRepository::new(
                app,
                OCIRepositorySpec {
                    url: url.clone(),
                    interval: tuning.source_interval.clone(),
                    reference: Some(OCIRepositoryRef {
                        tag: Some(version),
                        semver: None,
                    }),
                    layer_selector: Some(OCILayerSelector {
                        media_type: "application/vnd.cncf.helm.chart.content.v1.tar+gzip".into(),
                        operation: "copy".into(),
                    }),
                },
            );
            repo.metadata = meta(app, Some(ns), Some(app));
            objects.push(Object::OCIRepository(repo));
            if probes_updates(e) {
                let mut probe = OCIRepository::new(
                    &updates_source(app),
                    OCIRepositorySpec {
                        url: url.clone(),
                        interval: tuning.source_interval.clone(),
                        reference: Some(OCIRepositoryRef {
                            tag: None,
                            semver: Some(e.chart.updates.to_string()),
                        }),
                        layer_selector: Some(OCILayerSelector {
                            media_type: "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
                                .into(),
                            operation: "copy".into(),
                        }),
                    },
                );
                probe.metadata = meta(&updates_source(app), Some(ns), Some(app));
                objects.push(Object::OCIRepository(probe));
            }
            (
                None,
                Some(CrossNamespaceObjectReference {
                    kind: "OCIRepository".into(),
                    name: app.into(),
                    namespace: Some(ns.into()),
                }),
            )
        }
    };

    let depends_on = e
        .depends_on
        .iter()
        .map(|d| DependencyReference {
            name: d.clone(),
            namespace: all
                .iter()
                .find(|o| &o.entry.name == d)
                .map(|o| o.namespace.to_string()),
        })
        .collect();
    let mut hr = HelmRelease::new(
        app,
        HelmReleaseSpec {
            interval: tuning.interval.clone(),
            chart,
            chart_ref,
            release_name: Some(app.into()),
            timeout: Some(tuning.timeout.clone()),
            suspend: p.suspended.then_some(true),
            depends_on,
            install: Some(Install {
                crds: Some("CreateReplace".into()),
                remediation: Some(InstallRemediation {
                    retries: tuning.install_retries,
                }),
            }),
            upgrade: Some(Upgrade {
                crds: Some("CreateReplace".into()),
                cleanup_on_fail: Some(true),
                remediation: Some(UpgradeRemediation {
                    retries: tuning.upgrade_retries,
                    strategy: Some("rollback".into()),
                    remediate_last_failure: Some(true),
                }),
            }),
            uninstall: Some(Uninstall {
                keep_history: Some(false),
                timeout: None,
            }),
            drift_detection: Some(DriftDetection {
                mode: "enabled".into(),
            }),
            common_metadata: Some(CommonMetadata {
                labels: BTreeMap::from([(
                    stackspin_catalog::BACKUP_SET_LABEL.to_string(),
                    e.part_of.clone().unwrap_or_else(|| app.to_string()),
                )]),
            }),
            values_from,
            post_renderers: vec![PostRenderer {
                kustomize: KustomizePostRenderer {
                    patches: vec![KustomizePatch {
                        patch: KEEP_CLAIMS_PATCH.into(),
                        target: PatchSelector {
                            kind: "PersistentVolumeClaim".into(),
                        },
                    }],
                },
            }],
        },
    );
    hr.metadata = meta(app, Some(ns), Some(app));
    objects.push(Object::HelmRelease(hr));
    Ok(objects)
}
