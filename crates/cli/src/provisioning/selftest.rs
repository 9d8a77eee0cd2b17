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

/// A throw-away person for the sign-in checks, deleted when they are done.
struct TestUser {
    id: String,
    email: String,
    password: String,
}

fn api_error(v: &serde_json::Value, status: reqwest::StatusCode) -> String {
    v["message"]
        .as_str()
        .map_or_else(|| format!("HTTP {}", status.as_u16()), str::to_string)
}

async fn create_test_user(
    dashboard: &str,
    token: &str,
    domain: &str,
    apps: &[String],
) -> Result<TestUser, String> {
    let client = reqwest::Client::new();
    let tag = stackspin_domain::secret::random_chars(10).to_lowercase();
    let email = format!("stackspin-test-{tag}@{domain}");
    let password = stackspin_domain::secret::random_token(24);
    let roles: serde_json::Map<String, serde_json::Value> = apps
        .iter()
        .map(|a| (a.clone(), serde_json::json!("user")))
        .collect();
    let r = client
        .post(format!("{dashboard}/api/v1/users"))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "email": email,
            "name": "Stackspin self-test",
            "password": password,
            "roles": roles,
        }))
        .send()
        .await
        .map_err(|e| format!("the Dashboard did not answer: {e}"))?;
    let status = r.status();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    if status != reqwest::StatusCode::CREATED {
        return Err(api_error(&v, status));
    }
    Ok(TestUser {
        id: v["id"].as_str().unwrap_or_default().to_string(),
        email,
        password,
    })
}

async fn delete_test_user(dashboard: &str, token: &str, user: &TestUser) -> Result<(), String> {
    let r = reqwest::Client::new()
        .delete(format!("{dashboard}/api/v1/users/{}", user.id))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    if status.is_success() {
        Ok(())
    } else {
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        Err(api_error(&v, status))
    }
}

/// A hidden form field's value on a page.
fn hidden(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let v = tag.find("value=\"")? + 7;
    let end = tag[v..].find('"')? + v;
    Some(
        tag[v..end]
            .replace("&amp;", "&")
            .replace("&#x2F;", "/")
            .replace("&#x3D;", "=")
            .replace("&quot;", "\""),
    )
}

fn absolute(base: &str, location: &str) -> String {
    if location.starts_with('/') {
        format!("{}{location}", base.trim_end_matches('/'))
    } else {
        location.to_string()
    }
}

/// Signs in as the throw-away user through the app's authorization request, as a browser
/// would, and expects the provider to send a code back to the app's redirect address.
/// Returns that address with the code, for the app to be asked next.
async fn sign_in_check(
    dashboard: &str,
    app: &str,
    redirect: &str,
    user: &TestUser,
) -> (Check, Option<String>) {
    let refused = |detail: String| {
        (
            fail(
                "sso",
                app,
                Some(app),
                detail,
                "the app's single sign-on client is missing, has another redirect address, or the test user has no access; install the app again so the operator registers it",
            ),
            None,
        )
    };
    let Ok(client) = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()
    else {
        return refused("no HTTP client".into());
    };
    let Ok(mut url) =
        reqwest::Url::parse(&format!("{}/authorize", dashboard.trim_end_matches('/')))
    else {
        return refused(format!("{dashboard} is not an address"));
    };
    url.query_pairs_mut()
        .append_pair("client_id", app)
        .append_pair("redirect_uri", redirect)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile email")
        .append_pair("state", "stackspin-test")
        .append_pair(
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        )
        .append_pair("code_challenge_method", "S256");
    let mut next = url.to_string();
    let mut signed_in = false;
    // authorize → login page → sign in → authorize → back to the app: a handful of steps.
    for _ in 0..6 {
        let r = match client.get(&next).send().await {
            Ok(r) => r,
            Err(e) => return refused(format!("the Dashboard did not answer: {e}")),
        };
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(|l| absolute(dashboard, l));
        let body = r.text().await.unwrap_or_default();
        match location {
            Some(l) if l.starts_with(redirect) => {
                return if l.contains("code=") && l.contains("state=stackspin-test") {
                    (
                        pass(
                            "sso",
                            app,
                            Some(app),
                            format!(
                                "a throw-away user signed in; the provider sent a code to {redirect}"
                            ),
                        ),
                        Some(l),
                    )
                } else {
                    refused(format!("sent back without a code: {l}"))
                };
            }
            Some(l) if l.contains("/mfa") => {
                return (
                    fail(
                        "sso",
                        app,
                        Some(app),
                        "two-step verification is required for everyone, so a throw-away user cannot sign in".into(),
                        "run without --token for the client check only",
                    ),
                    None,
                );
            }
            Some(l) => next = l,
            None if status == 200 && body.contains("name=\"password\"") && !signed_in => {
                let (Some(csrf), Some(return_to)) =
                    (hidden(&body, "csrf"), hidden(&body, "return_to"))
                else {
                    return refused("the sign-in page has no form".into());
                };
                let r = client
                    .post(format!("{}/login", dashboard.trim_end_matches('/')))
                    .form(&[
                        ("email", user.email.as_str()),
                        ("password", user.password.as_str()),
                        ("csrf", csrf.as_str()),
                        ("return_to", return_to.as_str()),
                    ])
                    .send()
                    .await;
                signed_in = true;
                match r {
                    Ok(r) if r.status().is_redirection() => {
                        next = r
                            .headers()
                            .get("location")
                            .and_then(|l| l.to_str().ok())
                            .map(|l| absolute(dashboard, l))
                            .unwrap_or_default();
                    }
                    Ok(r) => {
                        let body = r.text().await.unwrap_or_default();
                        return refused(format!(
                            "the sign-in was refused: {}",
                            error_text(&body).unwrap_or_default()
                        ));
                    }
                    Err(e) => return refused(format!("the Dashboard did not answer: {e}")),
                }
            }
            None => {
                return refused(error_text(&body).unwrap_or_else(|| format!("HTTP {status}")));
            }
        }
    }
    refused("too many redirects".into())
}

/// Gives the code to the app at its redirect address, as the browser would: the app should
/// exchange it and start a session (a cookie), not show an error.
async fn app_session_check(app: &str, callback: &str, ip: std::net::IpAddr) -> Check {
    let Ok(url) = reqwest::Url::parse(callback) else {
        return fail(
            "sso-app",
            app,
            Some(app),
            format!("bad address {callback}"),
            "report this",
        );
    };
    let host = url.host_str().unwrap_or_default().to_string();
    let Ok(client) = reqwest::Client::builder()
        .resolve(&host, SocketAddr::new(ip, 443))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
    else {
        return fail(
            "sso-app",
            app,
            Some(app),
            "no HTTPS client".into(),
            "report this",
        );
    };
    match client.get(url).send().await {
        Ok(r) if r.headers().contains_key("set-cookie") && r.status().as_u16() < 400 => pass(
            "sso-app",
            app,
            Some(app),
            format!("{app} accepted the sign-in and started a session"),
        ),
        Ok(r) => fail(
            "sso-app",
            app,
            Some(app),
            format!(
                "{app} answered HTTP {} without a session",
                r.status().as_u16()
            ),
            "the app could not redeem the code: its client secret or issuer setting is wrong; reinstall the app, and read its log",
        ),
        Err(e) => fail(
            "sso-app",
            app,
            Some(app),
            format!("{app} did not answer: {e}"),
            "see the release, pod and HTTPS checks above",
        ),
    }
}

/// One release: its app, its host, and its single sign-on client when it has one.
struct Release {
    name: String,
    namespace: &'static str,
    hr: HelmRelease,
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

/// Sends the app's authorization request (as the app would, to its own redirect address)
/// and expects the sign-in page, not an error from the identity provider.
async fn sso_check(dashboard: &str, app: &str, client_id: &str, redirect: &str) -> Check {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build();
    let Ok(client) = client else {
        return fail(
            "sso",
            app,
            Some(app),
            "no HTTP client".into(),
            "report this",
        );
    };
    let url = format!("{}/authorize", dashboard.trim_end_matches('/'));
    let sent = client
        .get(&url)
        .query(&[
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", "openid profile email"),
            ("state", "stackspin-test"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await;
    match sent {
        Err(e) => fail(
            "sso",
            app,
            Some(app),
            format!("the Dashboard did not answer: {e}"),
            "check the Dashboard's own release and certificate above",
        ),
        Ok(r) => {
            let status = r.status().as_u16();
            let location = r
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let body = r.text().await.unwrap_or_default();
            // Signed out, the provider asks for a sign-in: the client and its redirect
            // address are known. An error page or an error sent back means refused.
            let login = (status == 200 && body.contains("name=\"password\""))
                || ((300..400).contains(&status)
                    && location.contains("/login")
                    && !location.contains("error="));
            if login {
                pass(
                    "sso",
                    app,
                    Some(app),
                    format!("the sign-in page answers {redirect}"),
                )
            } else {
                let why = if location.contains("error=") {
                    location
                } else {
                    error_text(&body).unwrap_or_else(|| format!("HTTP {status}"))
                };
                fail(
                    "sso",
                    app,
                    Some(app),
                    format!("refused: {why}"),
                    "the app's single sign-on client is missing or has another redirect address; install the app again so the operator registers it",
                )
            }
        }
    }
}

/// The text of the first element the provider's error page marks `class="error"` (its
/// message to people), else the page title.
fn error_text(html: &str) -> Option<String> {
    let text_after = |at: usize| -> Option<String> {
        let start = html[at..].find('>')? + at + 1;
        let end = html[start..].find('<')? + start;
        let t = html[start..end].trim();
        (!t.is_empty()).then(|| t.replace("&#39;", "'").replace("&quot;", "\""))
    };
    html.find("class=\"error\"")
        .and_then(text_after)
        .or_else(|| html.find("<title").and_then(text_after))
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
