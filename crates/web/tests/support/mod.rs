//! Helpers shared by the provider's tests: a running server, users and apps, and a
//! browser-like HTTP client that keeps cookies and does not follow redirects.
#![allow(dead_code, clippy::unwrap_used)]

use std::{collections::HashMap, sync::Arc};

use base64::Engine;
use serde_json::Value;
use sha2::Digest;
use stackspin_domain::{
    AppName, ClientId, Email, NewApp, NewUser, RedirectUri, Role, SigningAlg, User, UserName,
    app::{parse_app_home, parse_backchannel_uri},
    password::{HashParams, Password},
    secret::{hash_secret, new_client_id, new_client_secret},
    settings::{RawSettings, Settings},
};
use stackspin_storage::{Store, testing::TestDb};
use stackspin_web::{AppState, Application, ProviderOptions};

pub const PASSWORD: &str = "correct horse battery staple";

pub fn cheap_params() -> HashParams {
    HashParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    }
}

pub struct Provider {
    pub base: String,
    /// `http://ADDR/metrics` when the settings gave a metrics address.
    pub metrics: Option<String>,
    pub store: Store,
    pub state: AppState,
    _db: TestDb,
}

pub async fn start(options: ProviderOptions) -> Provider {
    start_with(RawSettings::default(), options).await
}

/// Starts a provider with extra settings (mail, for instance).
pub async fn start_with(raw: RawSettings, options: ProviderOptions) -> Provider {
    let db = TestDb::sqlite().await;
    let catalog = Arc::new(stackspin_catalog::Catalog::builtin().unwrap().clone());
    let platform = stackspin_web::platform::Platform::without_cluster(catalog);
    start_full(db, raw, options, platform).await
}

/// Starts a provider on `db` with this catalog and (when it has one) operator.
pub async fn start_full(
    db: TestDb,
    raw: RawSettings,
    options: ProviderOptions,
    platform: stackspin_web::platform::Platform,
) -> Provider {
    let settings = Settings::resolve(RawSettings {
        listen: Some("127.0.0.1:0".into()),
        ..raw
    })
    .unwrap();
    let app = Application::build_full(&settings, db.store.clone(), options, platform)
        .await
        .unwrap();
    let base = app.public_url().to_string();
    let metrics = app.metrics_addr().map(|a| format!("http://{a}/metrics"));
    let state = app.state().clone();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    Provider {
        base,
        metrics,
        store: db.store.clone(),
        state,
        _db: db,
    }
}

/// Options for fast tests: cheap hashing, quick outbox polling.
pub fn fast_options() -> ProviderOptions {
    ProviderOptions {
        hash_params: cheap_params(),
        outbox_poll_interval: std::time::Duration::from_millis(100),
        ..Default::default()
    }
}

#[derive(Clone)]
pub struct Client {
    pub name: String,
    pub client_id: String,
    pub secret: Option<String>,
    pub redirect_uri: String,
}

pub struct AppSpec<'a> {
    pub name: &'a str,
    /// Where "Launch" opens the app.
    pub url: &'a str,
    pub redirect_uri: &'a str,
    pub public: bool,
    pub alg: SigningAlg,
    pub backchannel: Option<&'a str>,
    pub post_logout: Option<&'a str>,
    pub default_role: Role,
}

impl Default for AppSpec<'_> {
    fn default() -> Self {
        AppSpec {
            name: "wiki",
            url: "https://app.example.org",
            redirect_uri: "https://wiki.example.org/cb",
            public: false,
            alg: SigningAlg::Rs256,
            backchannel: None,
            post_logout: None,
            default_role: Role::User,
        }
    }
}

impl Provider {
    pub async fn user(&self, email: &str, admin: bool) -> User {
        let hash = cheap_params()
            .hash(&Password::new(PASSWORD).unwrap())
            .unwrap();
        self.store
            .create_user(&NewUser {
                email: Email::parse(email).unwrap(),
                name: UserName::parse("Test Person").unwrap(),
                password_hash: Some(hash),
                is_admin: admin,
            })
            .await
            .unwrap()
    }

    pub async fn app(&self, spec: AppSpec<'_>) -> Client {
        let secret = (!spec.public).then(new_client_secret);
        let client_id = new_client_id();
        self.store
            .create_app(
                &NewApp {
                    name: AppName::parse(spec.name).unwrap(),
                    display_name: spec.name.to_uppercase(),
                    url: parse_app_home(spec.url).unwrap(),
                    redirect_uris: vec![RedirectUri::parse(spec.redirect_uri).unwrap()],
                    post_logout_redirect_uris: spec
                        .post_logout
                        .map(|u| vec![RedirectUri::parse(u).unwrap()])
                        .unwrap_or_default(),
                    backchannel_logout_uri: spec
                        .backchannel
                        .map(|u| parse_backchannel_uri(u).unwrap()),
                    icon_url: None,
                    public: spec.public,
                    default_role: spec.default_role,
                    id_token_alg: spec.alg,
                },
                ClientId(client_id.clone()),
                secret.as_deref().map(hash_secret),
            )
            .await
            .unwrap();
        Client {
            name: spec.name.into(),
            client_id,
            secret,
            redirect_uri: spec.redirect_uri.into(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A browser: keeps cookies, shows us every redirect instead of following it.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location on {}", resp.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

pub fn query_of(url: &str) -> HashMap<String, String> {
    let parsed = url::Url::parse(url).unwrap();
    parsed.query_pairs().into_owned().collect()
}

pub fn hidden_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    // askama writes decimal character references; `&` last so nothing is decoded twice.
    html[start..end]
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#38;", "&")
}

/// Whether the browser has a live session: the Dashboard shows, rather than sending it to log in.
pub async fn is_signed_in(p: &Provider, b: &reqwest::Client) -> bool {
    let resp = b.get(p.url("/")).send().await.unwrap();
    match resp.status().as_u16() {
        200 => true,
        303 => {
            assert!(location(&resp).starts_with("/login"), "{}", location(&resp));
            false
        }
        other => panic!("unexpected {other} from /"),
    }
}

/// Signs in through the login page, as a person would.
pub async fn sign_in(
    p: &Provider,
    b: &reqwest::Client,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let page = b
        .get(p.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden_value(&page, "csrf");
    b.post(p.url("/login"))
        .form(&[
            ("email", email),
            ("password", password),
            ("csrf", &csrf),
            ("return_to", "/"),
        ])
        .send()
        .await
        .unwrap()
}

pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let verifier = stackspin_domain::secret::random_token(32);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

/// An authorization request URL with the usual parameters plus `extra`.
pub fn authorize_url(p: &Provider, c: &Client, pk: &Pkce, extra: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", &c.client_id),
        ("redirect_uri", &c.redirect_uri),
        ("scope", "openid email profile"),
        ("state", "st4te"),
        ("nonce", "n0nce"),
        ("code_challenge", &pk.challenge),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        pairs.retain(|(pk, _)| pk != k);
        if !v.is_empty() {
            pairs.push((k, v));
        }
    }
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    p.url(&format!("/authorize?{q}"))
}

/// Runs the authorization request with a signed-in browser and returns the code.
pub async fn get_code(p: &Provider, b: &reqwest::Client, c: &Client, pk: &Pkce) -> String {
    let resp = b.get(authorize_url(p, c, pk, &[])).send().await.unwrap();
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    let loc = location(&resp);
    assert!(loc.starts_with(&c.redirect_uri), "{loc}");
    let q = query_of(&loc);
    assert_eq!(q["state"], "st4te");
    assert_eq!(q["iss"], p.base);
    q["code"].clone()
}

/// Exchanges a code with client_secret_basic; returns status and JSON.
pub async fn exchange(p: &Provider, c: &Client, code: &str, verifier: &str) -> (u16, Value) {
    let http = reqwest::Client::new();
    let mut req = http.post(p.url("/token")).form(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &c.redirect_uri),
        ("code_verifier", verifier),
        ("client_id", &c.client_id),
    ]);
    if let Some(secret) = &c.secret {
        req = req.basic_auth(&c.client_id, Some(secret));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub async fn refresh(p: &Provider, c: &Client, token: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(p.url("/token"))
        .basic_auth(&c.client_id, c.secret.as_deref())
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub async fn userinfo_status(p: &Provider, access: &str) -> u16 {
    reqwest::Client::new()
        .get(p.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Verifies a JWT against the provider's published keys.
pub async fn verify_jwt(p: &Provider, token: &str) -> stackspin_identity::jwt::Verified {
    let jwks: Value = reqwest::get(p.url("/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys: Vec<_> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(stackspin_identity::keys::VerifyingKey::from_jwk)
        .collect();
    stackspin_identity::jwt::verify(token, &keys).unwrap()
}

/// A tiny app back end that records the logout tokens POSTed to it.
pub struct LogoutReceiver {
    pub uri: String,
    pub tokens: Arc<std::sync::Mutex<Vec<String>>>,
}

pub async fn logout_receiver(status: u16) -> LogoutReceiver {
    use axum::{Form, Router, extract::State, routing::post};
    let tokens = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = tokens.clone();
    let app = Router::new()
        .route(
            "/bcl",
            post(
                move |State(sink): State<Arc<std::sync::Mutex<Vec<String>>>>,
                      Form(f): Form<HashMap<String, String>>| async move {
                    sink.lock()
                        .unwrap()
                        .push(f.get("logout_token").cloned().unwrap_or_default());
                    axum::http::StatusCode::from_u16(status).unwrap()
                },
            ),
        )
        .with_state(sink);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/bcl", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    LogoutReceiver { uri, tokens }
}

impl LogoutReceiver {
    /// Waits up to five seconds for `n` tokens.
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        for _ in 0..100 {
            let got = self.tokens.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "expected {n} logout tokens, got {:?}",
            self.tokens.lock().unwrap().len()
        );
    }
}

/// A real SMTP server (aiosmtpd) writing what it receives into a Maildir.
pub struct SmtpServer {
    pub port: u16,
    pub maildir: std::path::PathBuf,
    child: Option<std::process::Child>,
    _dir: tempfile::TempDir,
}

pub fn python() -> String {
    std::env::var("STACKSPIN_TEST_PYTHON").unwrap_or_else(|_| {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/peers-venv/bin/python")
            .display()
            .to_string()
    })
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpServer {
    /// Chooses a port and folder without starting, to test a mail server that is down.
    pub fn planned() -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        SmtpServer {
            port: free_port(),
            maildir: dir.path().join("maildir"),
            child: None,
            _dir: dir,
        }
    }

    pub async fn start() -> SmtpServer {
        let mut s = SmtpServer::planned();
        s.run().await;
        s
    }

    pub async fn run(&mut self) {
        let child = std::process::Command::new(python())
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{}", self.port),
                "-c",
                "aiosmtpd.handlers.Mailbox",
                &self.maildir.display().to_string(),
            ])
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start aiosmtpd (run scripts/test): {e}"));
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("aiosmtpd did not start");
    }

    /// Settings that send mail to this server.
    pub fn settings(&self) -> RawSettings {
        RawSettings {
            outgoing_mail_enabled: Some("true".into()),
            outgoing_mail_from_address: Some("stackspin@example.org".into()),
            outgoing_mail_smtp_host: Some("127.0.0.1".into()),
            outgoing_mail_smtp_port: Some(self.port.to_string()),
            outgoing_mail_smtp_security: Some("none".into()),
            ..Default::default()
        }
    }

    /// Every message received so far, decoded from quoted-printable.
    pub fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return vec![];
        };
        entries
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .map(|m| {
                m.replace("=\r\n", "")
                    .replace("=\n", "")
                    .replace("=3D", "=")
            })
            .collect()
    }

    /// Waits up to ten seconds for a message to `to` and returns it.
    pub async fn wait_for(&self, to: &str) -> String {
        for _ in 0..200 {
            if let Some(m) = self
                .messages()
                .into_iter()
                .find(|m| m.contains(&format!("To: {to}")))
            {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no mail to {to}; have {:?}", self.messages());
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The first https?:// link in a mail.
pub fn link_in(mail: &str) -> String {
    let start = mail.find("http").unwrap();
    mail[start..].split_whitespace().next().unwrap().to_owned()
}

/// A running operator on the test bed, stopped (and its Lease released) by [`OperatorRun::stop`].
pub struct OperatorRun {
    stop: tokio::sync::oneshot::Sender<()>,
    running: tokio::task::JoinHandle<()>,
    /// Tests with an operator use the platform's namespaces, as the product does, so they
    /// take turns.
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

static OPERATOR_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl OperatorRun {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.running.await.unwrap();
    }
}

/// A provider whose Manage apps page and API drive a real operator on the test bed, for the
/// cluster `example.test`, with this catalog.
pub async fn start_with_operator(
    catalog: Arc<stackspin_catalog::Catalog>,
) -> (Provider, OperatorRun) {
    let config = stackspin_platform::RawClusterConfig {
        domain: Some("example.test".into()),
        ip_address: Some("192.0.2.10".into()),
        admin_email: Some("admin@example.test".into()),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    start_with_operator_config(catalog, config).await
}

/// As [`start_with_operator`], with this cluster configuration (a backup store, say).
pub async fn start_with_operator_config(
    catalog: Arc<stackspin_catalog::Catalog>,
    config: stackspin_platform::ClusterConfig,
) -> (Provider, OperatorRun) {
    let turn = OPERATOR_TURN.lock().await;
    let bed = stackspin_testbed::TestBed::get().unwrap();
    stackspin_testbed::platform::install_platform_crds(bed).unwrap();
    let db = TestDb::sqlite().await;
    let backups = config.backup_s3.as_ref().map(|b| {
        let c = config.clone();
        stackspin_web::platform::BackupPlan {
            time: b.time.clone(),
            time_zone: b.time_zone.clone(),
            retention_days: b.retention_days,
            next_run: Arc::new(move |now| c.next_backup(now)),
        }
    });
    let operator = stackspin_operator::Operator::new(
        bed.client().await.unwrap(),
        db.store.clone(),
        catalog.clone(),
        config,
        stackspin_operator::Settings {
            interval: std::time::Duration::from_secs(2),
            lease_duration: std::time::Duration::from_secs(5),
            // No node agent runs on the test bed (its pods are simulated).
            volume_data: false,
            ..Default::default()
        },
    );
    let (stats, leader) = (operator.stats(), operator.clone());
    let platform = stackspin_web::platform::Platform {
        catalog,
        cluster: Some(stackspin_web::platform::Cluster {
            domain: "example.test".into(),
            admin_email: "admin@example.test".into(),
            wake: operator.waker(),
            backups,
            operator: Some(std::sync::Arc::new(move || {
                let s = stats.snapshot();
                stackspin_web::platform::OperatorSignals {
                    rounds_ok: s.rounds_ok,
                    rounds_failed: s.rounds_failed,
                    last_round_seconds: s.last_round_seconds,
                    last_success_unix: s.last_success_unix,
                    last_problems: s.last_problems,
                    leading: leader.is_leading(),
                }
            })),
        }),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(operator.run(async move {
        let _ = stopped.await;
    }));
    let p = start_full(db, RawSettings::default(), fast_options(), platform).await;
    (
        p,
        OperatorRun {
            stop,
            running,
            _turn: turn,
        },
    )
}
