//! `stackspin test CLUSTER`: the seed's self-test (testinfra and Taiko, run from a checkout)
//! done by the binary from the admin's machine. Nodes, every release ready at the version it
//! should run, pods healthy, certificates valid (a certificate not issued explained by its
//! ACME challenge), every host resolving to the server and answering with a certificate a
//! browser accepts, and each app's single sign-on client accepting an authorization request
//! through the app's own redirect address. A table of ✔/✘ with the reason and what to do.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use chrono::Utc;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde::Serialize;
use stackspin_catalog::Catalog;
use stackspin_domain::status::CertificateVerdict;
use stackspin_platform::crds::HelmRelease;
use stackspin_platform::desired::{APPS_NAMESPACE, CORE_NAMESPACE};
use stackspin_provision::folder::ClusterFolder;

use crate::output;

mod sso;
use sso::{
    AdminClaim, admin_mapping_check, app_session_check, create_test_user, delete_test_user,
    set_role, sign_in_check, sso_check,
};

/// Checks that can be left out where they cannot work (a machine without the public DNS or
/// a route to the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Skip {
    Dns,
    Tls,
    Sso,
}

#[derive(Debug, Serialize)]
pub struct Check {
    /// node, release, pods, certificate, dns, tls, sso.
    pub check: &'static str,
    pub subject: String,
    /// The app it belongs to, when it belongs to one.
    pub app: Option<String>,
    pub ok: bool,
    pub detail: String,
    /// What to do about a failure.
    pub todo: Option<String>,
}

fn pass(check: &'static str, subject: &str, app: Option<&str>, detail: String) -> Check {
    Check {
        check,
        subject: subject.to_string(),
        app: app.map(str::to_string),
        ok: true,
        detail,
        todo: None,
    }
}

fn fail(
    check: &'static str,
    subject: &str,
    app: Option<&str>,
    detail: String,
    todo: &str,
) -> Check {
    Check {
        check,
        subject: subject.to_string(),
        app: app.map(str::to_string),
        ok: false,
        detail,
        todo: Some(todo.to_string()),
    }
}

pub struct Options<'a> {
    pub app: Option<&'a str>,
    pub skip: &'a [Skip],
    /// Where the Dashboard answers, when not at https://dashboard.DOMAIN (a test, or a
    /// port-forward).
    pub dashboard_url: Option<&'a str>,
    /// An admin API token: with it, each app is signed in to by a throw-away user.
    pub token: Option<&'a str>,
}

/// One release: its app, its host, and its single sign-on client when it has one.
struct Release {
    name: String,
    namespace: &'static str,
    hr: HelmRelease,
}

/// What the admin-mapping check needs to sign in as an admin of an app.
struct AdminProbe<'a> {
    client: &'a kube::Client,
    dashboard: &'a str,
    token: &'a str,
    user: &'a sso::TestUser,
    namespace: &'a str,
}

impl AdminProbe<'_> {
    /// Whether an admin of the app gets what the app maps its admin role from. Apps whose
    /// entry says they cannot take roles from single sign-on get a line saying so.
    async fn check(&self, entry: &stackspin_catalog::Entry, redirect: &str) -> Option<Check> {
        let app = entry.name.as_str();
        let oidc = entry.oidc.as_ref()?;
        if let stackspin_catalog::AdminMapping::Manual { .. } = &oidc.admin {
            return Some(pass(
                "sso-admin",
                app,
                Some(app),
                format!(
                    "{app} does not take admin rights from single sign-on (see Manage apps); nothing to check"
                ),
            ));
        }
        let secret = match self.client_secret(entry).await {
            Ok(s) => s,
            Err(why) => {
                return Some(fail(
                    "sso-admin",
                    app,
                    Some(app),
                    why,
                    "install the app again so its Secret is written",
                ));
            }
        };
        if let Err(e) = set_role(self.dashboard, self.token, self.user, app, "admin").await {
            return Some(fail(
                "sso-admin",
                app,
                Some(app),
                format!("could not make the throw-away user an admin of {app}: {e}"),
                "give an admin API token",
            ));
        }
        let wanted = AdminClaim {
            userinfo: oidc.groups_from == stackspin_catalog::GroupsFrom::Userinfo,
            expect: match oidc.claim {
                stackspin_catalog::ClaimShape::Role => &["admin"],
                stackspin_catalog::ClaimShape::RoleAndUser => &["admin", "user"],
            },
        };
        Some(admin_mapping_check(self.dashboard, app, redirect, &secret, self.user, &wanted).await)
    }

    /// The app's OIDC client secret, as the app itself reads it: from the app's Secret, under
    /// the key its catalog entry fills with `${oidc.client_secret}`.
    async fn client_secret(&self, entry: &stackspin_catalog::Entry) -> Result<String, String> {
        let placeholder = serde_json::Value::String("${oidc.client_secret}".into());
        let key = entry
            .secret_keys
            .iter()
            .find(|k| k.value.raw() == &placeholder)
            .map(|k| k.key.clone())
            .ok_or_else(|| "its catalog entry gives the app no client secret".to_string())?;
        let name = entry.secret_name();
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(self.client.clone(), self.namespace);
        let secret = secrets
            .get_opt(&name)
            .await
            .map_err(|e| format!("cannot read Secret {}/{name}: {e}", self.namespace))?
            .ok_or_else(|| format!("Secret {}/{name} is missing", self.namespace))?;
        let bytes = secret
            .data
            .and_then(|d| d.get(&key).cloned())
            .ok_or_else(|| format!("Secret {}/{name} has no {key}", self.namespace))?;
        String::from_utf8(bytes.0).map_err(|_| format!("{key} in Secret {name} is not text"))
    }
}

fn release_check(r: &Release) -> Check {
    let app = Some(r.name.as_str());
    let status = r.hr.status.clone().unwrap_or_default();
    let ready = r.hr.condition("Ready");
    let wanted =
        r.hr.spec
            .chart
            .as_ref()
            .and_then(|c| c.spec.version.clone())
            .unwrap_or_default();
    let running = status.history.first().map(|h| h.chart_version.clone());
    if r.hr.spec.suspend == Some(true) {
        return fail(
            "release",
            &r.name,
            app,
            "suspended: Flux leaves it alone".into(),
            "a restore suspends the app while it runs; see `stackspin restore list`",
        );
    }
    match ready {
        Some(c) if c.status == "True" => match running {
            Some(v) if v == wanted || wanted.is_empty() => {
                pass("release", &r.name, app, format!("ready at {v}"))
            }
            Some(v) => fail(
                "release",
                &r.name,
                app,
                format!("ready, but runs {v} where {wanted} is wanted"),
                "Flux has not upgraded it yet; the app's page on Manage apps says why",
            ),
            None => pass("release", &r.name, app, "ready".into()),
        },
        Some(c) => fail(
            "release",
            &r.name,
            app,
            format!("not ready: {}", c.message),
            "open Manage apps for the reason; after fixing it, install the app again",
        ),
        None => fail(
            "release",
            &r.name,
            app,
            "not reconciled yet".into(),
            "wait a few minutes; if it stays, check that Flux runs (`stackspin info`)",
        ),
    }
}

/// Pods of a namespace, each judged: running and ready, or finished; else why not.
fn pod_checks(pods: &[Pod], releases: &[Release]) -> Vec<Check> {
    let mut out = Vec::new();
    for p in pods {
        let name = p.metadata.name.clone().unwrap_or_default();
        let labels = p.metadata.labels.clone().unwrap_or_default();
        // Helm charts label their pods with the release (the app's name).
        let app = labels
            .get("app.kubernetes.io/instance")
            .or_else(|| labels.get("release"))
            .filter(|a| releases.iter().any(|r| &r.name == *a))
            .cloned();
        let status = p.status.clone().unwrap_or_default();
        let phase = status.phase.unwrap_or_default();
        if phase == "Succeeded" {
            continue;
        }
        let waiting: Vec<String> = status
            .container_statuses
            .unwrap_or_default()
            .iter()
            .filter(|c| !c.ready)
            .map(|c| {
                let why = c
                    .state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.clone())
                    .unwrap_or_else(|| "not ready".into());
                format!("{}: {why}", c.name)
            })
            .collect();
        let check = if phase == "Running" && waiting.is_empty() {
            pass("pod", &name, app.as_deref(), "running".into())
        } else {
            let detail = if waiting.is_empty() {
                phase.clone()
            } else {
                format!("{phase}; {}", waiting.join(", "))
            };
            fail(
                "pod",
                &name,
                app.as_deref(),
                detail,
                "CrashLoopBackOff: read its log (`kubectl logs`); ImagePullBackOff: the image cannot be downloaded; Pending: the server lacks CPU, memory or disk",
            )
        };
        out.push(check);
    }
    out
}

/// The host each app answers on: cluster.toml's choice, else the catalog's subdomain.
fn host_of(
    name: &str,
    config: &stackspin_platform::ClusterConfig,
    catalog: &Catalog,
) -> Option<String> {
    let placed = stackspin_platform::placements(catalog, config)
        .ok()?
        .into_iter()
        .find(|p| p.entry.name == name)
        .map(|p| p.host)
        .filter(|h| !h.is_empty());
    placed.or_else(|| {
        catalog
            .get(name)
            .filter(|e| {
                e.ingress_annotations.is_some() || e.name == stackspin_catalog::CONTROL_PLANE
            })
            .map(|e| match e.subdomain.as_str() {
                "" => config.domain.clone(),
                s => format!("{s}.{}", config.domain),
            })
    })
}

async fn dns_check(host: &str, app: Option<&str>, want: std::net::IpAddr) -> Check {
    match tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::lookup_host((host, 443)),
    )
    .await
    {
        Ok(Ok(addrs)) => {
            let found: Vec<std::net::IpAddr> = addrs.map(|a| a.ip()).collect();
            if found.contains(&want) {
                pass("dns", host, app, format!("resolves to {want}"))
            } else {
                let list: Vec<String> = found.iter().map(ToString::to_string).collect();
                fail(
                    "dns",
                    host,
                    app,
                    format!("resolves to {} instead of {want}", list.join(", ")),
                    "point its A record at the server's address at your DNS provider",
                )
            }
        }
        Ok(Err(e)) => fail(
            "dns",
            host,
            app,
            format!("does not resolve: {e}"),
            "add an A record for it (or a wildcard *.DOMAIN) pointing at the server",
        ),
        Err(_) => fail(
            "dns",
            host,
            app,
            "no answer within 10 s".into(),
            "check this machine's DNS",
        ),
    }
}

async fn tls_check(host: &str, app: Option<&str>, ip: std::net::IpAddr) -> Check {
    let client = reqwest::Client::builder()
        .resolve(host, SocketAddr::new(ip, 443))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build();
    let Ok(client) = client else {
        return fail("tls", host, app, "no HTTPS client".into(), "report this");
    };
    match client.get(format!("https://{host}/")).send().await {
        Ok(r) => pass(
            "tls",
            host,
            app,
            format!("a trusted certificate (HTTP {})", r.status().as_u16()),
        ),
        Err(e) => {
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why = format!("{why}: {s}");
                source = s.source();
            }
            fail(
                "tls",
                host,
                app,
                why,
                "see the certificate check above; port 443 must be open to the server",
            )
        }
    }
}

pub async fn run(
    root: &Path,
    cluster: &str,
    catalog: &Catalog,
    opts: &Options<'_>,
    json: bool,
) -> Result<()> {
    let folder = ClusterFolder::open(root, cluster)?;
    let config = folder.config()?;
    let kubeconfig = super::kubeconfig_for(&folder, None)?;
    let client = super::client_for(&kubeconfig).await?;
    let describe = |e: kube::Error| anyhow::anyhow!(stackspin_operator::apply::describe(&e));
    if let Some(app) = opts.app
        && catalog.get(app).is_none()
    {
        bail!("{app} is not in the catalog (see `stackspin app list`)");
    }

    let mut checks = Vec::new();
    if opts.app.is_none() {
        for n in stackspin_operator::observe::nodes(&client).await? {
            checks.push(if n.ready && n.problems.is_empty() {
                pass("node", &n.name, None, "ready".into())
            } else {
                fail(
                    "node",
                    &n.name,
                    None,
                    n.problems.join(", "),
                    "MemoryPressure or DiskPressure: free memory or disk, or give the server more",
                )
            });
        }
    }

    let mut releases = Vec::new();
    for ns in [CORE_NAMESPACE, APPS_NAMESPACE] {
        let api: Api<HelmRelease> = Api::namespaced(client.clone(), ns);
        for hr in api
            .list(&ListParams::default())
            .await
            .map_err(describe)?
            .items
        {
            let name = hr.metadata.name.clone().unwrap_or_default();
            releases.push(Release {
                name,
                namespace: ns,
                hr,
            });
        }
    }
    if let Some(app) = opts.app
        && !releases.iter().any(|r| r.name == app)
    {
        bail!("{app} is not installed on {cluster}");
    }
    let wanted = |app: Option<&str>| opts.app.is_none() || app == opts.app;
    for r in &releases {
        if wanted(Some(&r.name)) {
            checks.push(release_check(r));
        }
    }
    for ns in [CORE_NAMESPACE, APPS_NAMESPACE] {
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        let pods = api
            .list(&ListParams::default())
            .await
            .map_err(describe)?
            .items;
        checks.extend(
            pod_checks(&pods, &releases)
                .into_iter()
                .filter(|c| wanted(c.app.as_deref())),
        );
    }

    // Hosts: every release with a web address.
    let hosts: BTreeMap<String, String> = releases
        .iter()
        .filter(|r| {
            r.namespace == APPS_NAMESPACE
                || r.name == stackspin_catalog::CONTROL_PLANE
                || catalog
                    .get(&r.name)
                    .is_some_and(|e| e.ingress_annotations.is_some())
        })
        .filter_map(|r| host_of(&r.name, &config, catalog).map(|h| (r.name.clone(), h)))
        .collect();
    let now = Utc::now();
    for c in stackspin_operator::observe::certificates(&client).await? {
        let app = hosts
            .iter()
            .find(|(_, h)| c.hosts.contains(h))
            .map(|(a, _)| a.clone());
        if !wanted(app.as_deref()) {
            continue;
        }
        let subject = c.hosts.join(", ");
        let days = c
            .not_after
            .map(|t| (t - now).num_days())
            .unwrap_or_default();
        checks.push(match c.verdict(now) {
            CertificateVerdict::Valid => pass(
                "certificate",
                &subject,
                app.as_deref(),
                format!("valid for {days} more days"),
            ),
            CertificateVerdict::Expiring => fail(
                "certificate",
                &subject,
                app.as_deref(),
                format!("expires in {days} days and is not being renewed: {}", c.problem.unwrap_or_default()),
                "renewal needs the host to resolve to the server and port 80 open; fix that and cert-manager retries",
            ),
            CertificateVerdict::Expired => fail(
                "certificate",
                &subject,
                app.as_deref(),
                format!("expired: {}", c.problem.unwrap_or_default()),
                "renewal needs the host to resolve to the server and port 80 open; fix that and cert-manager retries",
            ),
            CertificateVerdict::NotIssued => fail(
                "certificate",
                &subject,
                app.as_deref(),
                format!("not issued: {}", c.problem.unwrap_or_default()),
                "Let's Encrypt must reach http://HOST/.well-known/acme-challenge/ on the server: check DNS and that port 80 is open",
            ),
        });
    }
    // A release with a web address whose certificate does not exist at all.
    for (app, host) in &hosts {
        if wanted(Some(app))
            && !checks
                .iter()
                .any(|c| c.check == "certificate" && c.subject.split(", ").any(|h| h == host))
        {
            checks.push(fail(
                "certificate",
                host,
                Some(app),
                "no certificate".into(),
                "cert-manager makes one from the app's ingress; check that cert-manager runs (`stackspin info`)",
            ));
        }
    }

    let ip = config.ip_address;
    for (app, host) in &hosts {
        if !wanted(Some(app)) {
            continue;
        }
        if !opts.skip.contains(&Skip::Dns) {
            checks.push(dns_check(host, Some(app), ip).await);
        }
        if !opts.skip.contains(&Skip::Tls) {
            checks.push(tls_check(host, Some(app), ip).await);
        }
    }
    if !opts.skip.contains(&Skip::Sso) {
        let dashboard = opts.dashboard_url.map_or_else(
            || {
                format!(
                    "https://{}",
                    stackspin_platform::desired::dashboard_host(catalog, &config)
                )
            },
            |u| u.trim_end_matches('/').to_string(),
        );
        // The apps with a single sign-on client, and where the provider sends people back.
        let mut sso: Vec<(String, String)> = Vec::new();
        for r in &releases {
            let Some(entry) = catalog.get(&r.name) else {
                continue;
            };
            let (Some(oidc), Some(host)) = (&entry.oidc, hosts.get(&r.name)) else {
                continue;
            };
            if !wanted(Some(&r.name)) {
                continue;
            }
            if let Some(path) = oidc.redirect_paths.first() {
                sso.push((r.name.clone(), format!("https://{host}{path}")));
            }
        }
        match opts.token {
            None => {
                for (app, redirect) in &sso {
                    checks.push(sso_check(&dashboard, app, app, redirect).await);
                }
            }
            Some(token) if !sso.is_empty() => {
                let apps: Vec<String> = sso.iter().map(|(a, _)| a.clone()).collect();
                match create_test_user(&dashboard, token, &config.domain, &apps).await {
                    Err(e) => checks.push(fail(
                        "sso",
                        "test user",
                        None,
                        format!("could not create the throw-away user: {e}"),
                        "give an admin API token (`stackspin api-token create`), or leave out --token",
                    )),
                    Ok(user) => {
                        for (app, redirect) in &sso {
                            let (check, callback) =
                                sign_in_check(&dashboard, app, redirect, &user).await;
                            checks.push(check);
                            if let Some(callback) = callback
                                && !opts.skip.contains(&Skip::Tls)
                            {
                                checks.push(app_session_check(app, &callback, ip).await);
                            }
                        }
                        for (app, redirect) in &sso {
                            let release = releases.iter().find(|r| &r.name == app);
                            if let (Some(entry), Some(r)) = (catalog.get(app), release) {
                                let admin = AdminProbe {
                                    client: &client,
                                    dashboard: &dashboard,
                                    token,
                                    user: &user,
                                    namespace: r.namespace,
                                };
                                checks.extend(admin.check(entry, redirect).await);
                            }
                        }
                        if let Err(e) = delete_test_user(&dashboard, token, &user).await {
                            checks.push(fail(
                                "sso",
                                &user.email,
                                None,
                                format!("the throw-away user could not be deleted: {e}"),
                                "delete it on the Users page",
                            ));
                        }
                    }
                }
            }
            Some(_) => {}
        }
    }

    let failed = checks.iter().filter(|c| !c.ok).count();
    let view = serde_json::json!({
        "cluster": cluster,
        "passed": failed == 0,
        "checks": checks,
    });
    output::emit(json, &view, || {
        let rows: Vec<Vec<String>> = checks
            .iter()
            .map(|c| {
                vec![
                    if c.ok { "✔" } else { "✘" }.to_string(),
                    c.check.to_string(),
                    c.subject.clone(),
                    match &c.todo {
                        Some(t) => format!("{} → {t}", c.detail),
                        None => c.detail.clone(),
                    },
                ]
            })
            .collect();
        output::table(&["", "CHECK", "SUBJECT", "RESULT"], &rows)
    })?;
    if failed > 0 {
        bail!(
            "{failed} of {} checks failed on {cluster}; each says what to do above",
            checks.len()
        );
    }
    Ok(())
}
