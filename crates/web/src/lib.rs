//! The control plane's HTTP face: one axum application that serves health and readiness
//! probes, Prometheus metrics and pages, and that `stackspin serve` and the tests start the
//! same way ([`Application::build`], then [`Application::run_until_stopped`]).
//!
//! Architecture invariant: handlers reach the database only through `stackspin_storage::Store`
//! and never read process-global configuration; everything comes in through [`AppState`].

mod admin;
mod admin_access;
mod admin_apps;
mod admin_audit;
mod admin_backups;
mod admin_catalog;
mod admin_links;
mod admin_settings;
mod alerts;
pub mod api;
mod audit_text;
mod brand;
mod checklist;
mod client;
mod dashboard;
mod error;
pub mod forward_auth;
mod health;
mod login;
pub mod mail;
mod metrics;
mod mfa;
pub mod oidc;
mod pages;
pub mod platform;
mod problems;
mod recovery;
mod server;
mod session;
mod status;
pub mod texts;
mod throttle;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::Request,
    http::{HeaderName, HeaderValue, header},
    routing::{get, post},
};
use stackspin_domain::{
    password::{HashParams, Password, PasswordHash, Verification},
    settings::{PublicUrl, Settings},
};
use stackspin_storage::Store;
use tokio::{
    net::TcpListener,
    sync::{Notify, Semaphore},
};
use tower_http::{set_header::SetResponseHeaderLayer, timeout::TimeoutLayer, trace::TraceLayer};

pub use error::WebError;
pub use metrics::Metrics;
pub use server::ServerOptions;
/// Where `serve` records the public URL it serves, for the admin commands.
pub const PUBLIC_URL_FACT: &str = "public_url";
/// The platform setting that makes two-step verification compulsory.
pub const MFA_SETTING: &str = mfa::SETTING;

/// Lifetimes and limits of the identity provider. Defaults suit production; tests shorten
/// them (an expired-code test should not wait a minute).
#[derive(Clone, Debug)]
pub struct ProviderOptions {
    /// Authorization codes: single use and short-lived (RFC 9700 recommends under a minute).
    pub code_lifetime: chrono::Duration,
    pub access_token_lifetime: chrono::Duration,
    pub refresh_token_lifetime: chrono::Duration,
    pub id_token_lifetime: chrono::Duration,
    pub session_lifetime: chrono::Duration,
    pub hash_params: HashParams,
    /// How many argon2 hashes may run at once: each takes a core for ~25 ms and 19 MiB, so
    /// a burst of logins queues here instead of starving every other request.
    pub max_concurrent_hashes: usize,
    pub key_reload_interval: Duration,
    pub outbox_poll_interval: Duration,
    pub reset_link_lifetime: chrono::Duration,
    pub invite_link_lifetime: chrono::Duration,
    pub mail_poll_interval: Duration,
    /// First retry delay of a failed mail; it doubles with each attempt.
    pub mail_retry_base: Duration,
    pub server: ServerOptions,
}

impl Default for ProviderOptions {
    fn default() -> Self {
        ProviderOptions {
            code_lifetime: chrono::Duration::seconds(60),
            access_token_lifetime: chrono::Duration::hours(1),
            refresh_token_lifetime: chrono::Duration::days(30),
            id_token_lifetime: chrono::Duration::hours(1),
            session_lifetime: chrono::Duration::days(7),
            hash_params: HashParams::default(),
            max_concurrent_hashes: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            key_reload_interval: Duration::from_secs(30),
            outbox_poll_interval: Duration::from_secs(2),
            reset_link_lifetime: chrono::Duration::hours(1),
            invite_link_lifetime: chrono::Duration::days(7),
            mail_poll_interval: Duration::from_secs(5),
            mail_retry_base: Duration::from_secs(5),
            server: ServerOptions::default(),
        }
    }
}

/// What every handler may use. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub public_url: PublicUrl,
    pub metrics: Arc<Metrics>,
    pub keys: Arc<oidc::keys::KeyRing>,
    pub options: Arc<ProviderOptions>,
    hashing: Arc<HashPool>,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    trusted_proxies: Arc<Vec<stackspin_domain::client_ip::IpNet>>,
    /// Checked instead of a real hash when the address has no account, so both take as long.
    dummy_hash: Arc<PasswordHash>,
    http: reqwest::Client,
    outbox_wake: Arc<Notify>,
    mailer: Option<Arc<mail::Mailer>>,
    /// Where mail goes, for the settings page (never the password).
    mail_summary: Option<String>,
    mail_wake: Arc<Notify>,
    /// The catalog, and the operator when there is a cluster.
    pub platform: platform::Platform,
    /// Forward-auth's host → app map.
    tools: Arc<forward_auth::ToolCache>,
    /// The organisation's name and logo, cached briefly.
    brand: Arc<brand::BrandCache>,
}

impl AppState {
    /// Records an audit event; a failure to record is logged but does not fail the action,
    /// which has already happened.
    /// Starts the mail worker now (after mail was queued).
    pub(crate) fn wake_mail(&self) {
        self.mail_wake.notify_one();
    }

    /// The organisation's name, for mails; `None` when the admin set none.
    pub(crate) async fn org_name(&self) -> Option<String> {
        self.brand.get(&self.store).await.name.clone()
    }

    pub(crate) async fn audit(&self, mut event: stackspin_storage::AuditEvent) {
        // Where an action came from, for every action taken in a request.
        if event.ip.is_none() {
            event.ip = client::current().map(|ip| ip.to_string());
        }
        self.metrics.audit_event(&event.kind);
        if let Err(e) = self.store.record_audit(&event).await {
            tracing::error!(error = %e, kind = %event.kind, "cannot record audit event");
        }
    }

    /// Checks a password on the blocking pool, at most `max_concurrent_hashes` at a time.
    /// `None` when the queue is too long to wait in.
    pub(crate) async fn verify_password(
        &self,
        candidate: String,
        stored: PasswordHash,
    ) -> Option<Verification> {
        let params = self.options.hash_params;
        self.hashing
            .run(move |memory| params.verify_in(&candidate, &stored, memory))
            .await
    }

    /// Hashes a new password on the blocking pool, under the same bound as verification.
    pub(crate) async fn hash_password(&self, password: Password) -> Option<PasswordHash> {
        let params = self.options.hash_params;
        self.hashing
            .run(move |memory| params.hash_in(&password, memory))
            .await?
            .ok()
    }

    /// Upgrades a stored hash to the current parameters after a successful login, off the
    /// request path (and under the same bound as every other hash).
    pub(crate) fn rehash_later(&self, user: stackspin_domain::UserId, password: String) {
        let state = self.clone();
        tokio::spawn(async move {
            let Ok(pw) = Password::existing(&password) else {
                return;
            };
            if let Some(hash) = state.hash_password(pw).await
                && let Err(e) = state.store.set_password_hash(user, &hash).await
            {
                tracing::warn!(error = %e, "cannot store upgraded password hash");
            }
        });
    }

    /// Ends a session and wakes the outbox worker to tell the apps at once.
    pub(crate) async fn end_session(
        &self,
        sid: &str,
        user: &stackspin_domain::User,
        reason: &str,
    ) -> Result<(), stackspin_storage::StorageError> {
        self.store.end_session(sid, reason).await?;
        self.outbox_wake.notify_one();
        let mut e = stackspin_storage::AuditEvent::new("logout");
        e.user_id = Some(user.id.0);
        e.user_email = Some(user.email.to_string());
        self.audit(e).await;
        Ok(())
    }

    /// Changes a signed-in person's password, for the account page and the API alike: the
    /// current password is checked (throttled per account and address, as logins are), and
    /// every other session ends, since whoever knew the old password may be signed in.
    pub(crate) async fn change_password(
        &self,
        user: &stackspin_domain::User,
        current: String,
        new: &str,
        client: std::net::IpAddr,
        keep: Option<&str>,
    ) -> Result<(), PasswordChangeError> {
        let limits = throttle::signed_in_check("password", &user.id.to_string(), client);
        if !throttle::attempt(&self.store, &limits).await? {
            return Err(PasswordChangeError::Throttled);
        }
        let stored = user
            .password_hash
            .clone()
            .unwrap_or_else(|| (*self.dummy_hash).clone());
        let ok = self
            .verify_password(current, stored)
            .await
            .is_some_and(|v| v.matched())
            && user.has_password();
        if !ok {
            return Err(PasswordChangeError::WrongCurrent);
        }
        throttle::succeeded(&self.store, &limits).await?;
        let personal = crate::problems::personal(user.email.as_str(), user.name.as_str());
        let password = stackspin_domain::password::Password::new_for(new, &personal)
            .map_err(PasswordChangeError::Invalid)?;
        let hash = self
            .hash_password(password)
            .await
            .ok_or(PasswordChangeError::Busy)?;
        self.store.set_password_hash(user.id, &hash).await?;
        self.end_sessions(user, keep).await?;
        let mut e = stackspin_storage::AuditEvent::new("password.changed");
        e.user_id = Some(user.id.0);
        e.user_email = Some(user.email.to_string());
        e.ip = Some(client.to_string());
        self.audit(e).await;
        Ok(())
    }

    /// After roles changed (pages or API): wake the back-channel worker so the apps hear at
    /// once, and record each change as made by `actor`.
    pub(crate) async fn role_changes_done(
        &self,
        actor: String,
        changes: &[stackspin_storage::RoleChange],
    ) {
        if !changes.is_empty() {
            self.outbox_wake.notify_one();
        }
        for c in changes {
            let mut e = stackspin_storage::AuditEvent::new("role.changed");
            e.actor = Some(actor.clone());
            e.user_id = Some(c.user.id.0);
            e.user_email = Some(c.user.email.to_string());
            e.app = Some(c.app.to_string());
            e.detail = serde_json::json!({ "previous": c.previous, "role": c.role });
            self.audit(e).await;
        }
    }

    /// Ends all of the user's sessions except `keep`; returns how many ended.
    pub(crate) async fn end_sessions(
        &self,
        user: &stackspin_domain::User,
        keep: Option<&str>,
    ) -> Result<usize, stackspin_storage::StorageError> {
        let mut ended = 0;
        for s in self.store.sessions_of_user(user.id).await? {
            if Some(s.sid.as_str()) != keep {
                self.end_session(&s.sid, user, "logout").await?;
                ended += 1;
            }
        }
        Ok(ended)
    }
}

/// Where argon2 runs: at most `max_concurrent_hashes` at once, each in a working-memory
/// buffer taken from here and put back after. The buffers (19 MiB each by default) are reused
/// while hashes follow each other, so a login storm costs concurrency × 19 MiB and no more
/// (allocating per hash let the allocator keep hundreds of MiB, one arena per blocking
/// thread), and freed when the last one finishes, so RSS returns to idle after it.
struct HashPool {
    permits: Arc<Semaphore>,
    size: usize,
    buffers: std::sync::Mutex<Vec<Vec<stackspin_domain::password::Block>>>,
}

impl HashPool {
    fn new(size: usize) -> HashPool {
        HashPool {
            permits: Arc::new(Semaphore::new(size.max(1))),
            size: size.max(1),
            buffers: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Runs `job` on the blocking pool with a buffer; `None` after waiting 10 s for a turn.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Vec<stackspin_domain::password::Block>) -> T + Send + 'static,
    ) -> Option<T> {
        let permit = tokio::time::timeout(
            Duration::from_secs(10),
            self.permits.clone().acquire_owned(),
        )
        .await
        .ok()?
        .ok()?;
        let mut memory = self
            .buffers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        let (out, memory) = tokio::task::spawn_blocking(move || {
            let out = job(&mut memory);
            (out, memory)
        })
        .await
        .ok()?;
        // Back before the permit is released, so there are never more buffers than permits.
        // When no other hash is running, the pool is emptied instead: a storm reuses its
        // buffers, and once it is over the memory goes back to the system.
        let mut buffers = self
            .buffers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.permits.available_permits() + 1 == self.size {
            buffers.clear();
            drop(memory);
        } else {
            buffers.push(memory);
        }
        drop(buffers);
        drop(permit);
        Some(out)
    }
}

/// Why [`AppState::change_password`] refused.
#[derive(Debug)]
pub(crate) enum PasswordChangeError {
    Throttled,
    WrongCurrent,
    /// The new password breaks a rule.
    Invalid(stackspin_domain::password::PasswordError),
    Busy,
    Storage(stackspin_storage::StorageError),
}

impl From<stackspin_storage::StorageError> for PasswordChangeError {
    fn from(e: stackspin_storage::StorageError) -> Self {
        PasswordChangeError::Storage(e)
    }
}

/// The largest request body accepted (forms and JSON are far smaller).
const MAX_BODY: usize = 1024 * 1024;

/// `/metrics` alone, for the separate metrics address: Prometheus scrapes it from inside
/// the cluster, and nobody who reaches the public port can read it.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::render))
        .route("/alertmanager", axum::routing::post(alerts::receive))
        .with_state(state)
}

/// The routes and middleware, without a socket (tests can drive it with `oneshot`).
pub fn router(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    Router::new()
        .route("/", get(dashboard::home))
        .route("/account", get(dashboard::account))
        .route("/checklist/hide", post(checklist::hide))
        .route("/admin/users", get(admin::users).post(admin::create_user))
        .route("/admin/users/new", get(admin::new_user_form))
        .route("/admin/users/batch", post(admin::batch))
        .route("/admin/access", get(admin_access::access).post(admin_access::save_access))
        .route(
            "/admin/apps",
            get(admin_apps::list).post(admin_apps::create),
        )
        .route("/admin/apps/new", get(admin_apps::new_form))
        .route(
            "/admin/apps/{name}",
            get(admin_apps::edit_form).post(admin_apps::update),
        )
        .route(
            "/admin/apps/{name}/rotate",
            get(admin_apps::confirm_rotate).post(admin_apps::rotate),
        )
        .route(
            "/admin/apps/{name}/remove",
            get(admin_apps::confirm_remove).post(admin_apps::remove),
        )
        .route("/auth/forward", get(forward_auth::check))
        .route("/auth/handover", get(forward_auth::handover))
        .route("/admin/catalog", get(admin_catalog::list))
        .route(
            "/admin/backups",
            get(admin_backups::page).post(admin_backups::back_up_now),
        )
        .route(
            "/admin/backups/restore/{app}",
            get(admin_backups::confirm_restore).post(admin_backups::restore),
        )
        .route("/admin/backups/restores/{id}", get(admin_backups::progress))
        .route(
            "/admin/catalog/{name}/install",
            get(admin_catalog::confirm_install).post(admin_catalog::install),
        )
        .route(
            "/admin/catalog/{name}/uninstall",
            get(admin_catalog::confirm_uninstall).post(admin_catalog::uninstall),
        )
        .route(
            "/admin/catalog/{name}/auto-update",
            post(admin_catalog::set_updates),
        )
        .route("/admin/catalog/{name}/update", post(admin_catalog::update_now))
        .route("/admin/audit", get(admin_audit::audit))
        .route("/admin/status", get(status::page))
        .route("/admin/settings", get(admin_settings::settings))
        .route("/admin/settings/mfa", post(admin_settings::set_mfa_policy))
        .route("/admin/settings/test-mail", post(admin_settings::send_test_mail))
        .route(
            "/admin/users/{id}",
            get(admin::edit_user_form).post(admin::edit_user),
        )
        .route("/admin/users/{id}/send-link", post(admin_links::send))
        .route(
            "/admin/users/{id}/handover-link",
            post(admin_links::handover),
        )
        .route(
            "/admin/users/{id}/delete",
            get(admin::delete_user_confirm).post(admin::delete_user),
        )
        .route("/account/password", post(dashboard::change_password))
        .route("/account/sessions", post(dashboard::end_session))
        .route("/healthz", get(health::healthz))
        .route("/favicon.svg", get(pages::favicon))
        .route("/brand/logo", get(brand::logo))
        .route("/admin/settings/organisation", post(admin_settings::save_brand))
        .route("/readyz", get(health::readyz))
        .route(
            "/.well-known/openid-configuration",
            get(oidc::discovery::openid_configuration),
        )
        .route("/jwks.json", get(oidc::discovery::jwks))
        .route(
            "/authorize",
            get(oidc::authorize::get).post(oidc::authorize::post),
        )
        .route("/token", post(oidc::token::token))
        .route(
            "/userinfo",
            get(oidc::token::userinfo).post(oidc::token::userinfo),
        )
        .route("/introspect", post(oidc::token::introspect))
        .route("/revoke", post(oidc::token::revoke))
        .route("/logout", get(oidc::logout::get).post(oidc::logout::post))
        .route("/login", get(login::form).post(login::submit))
        .route("/login/mfa", get(mfa::login_form).post(mfa::login_submit))
        .route("/account/mfa", get(mfa::setup_page))
        .route("/account/mfa/enrol", post(mfa::enrol))
        .route("/account/mfa/remove", post(mfa::remove))
        .route("/account/mfa/recovery-codes", post(mfa::regenerate_codes))
        .route(
            "/recover",
            get(recovery::recover_form).post(recovery::recover_submit),
        )
        .route(
            "/reset",
            get(recovery::reset_form).post(recovery::reset_submit),
        )
        .nest("/api/v1", api::routes())
        .fallback(dashboard::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            brand::scope,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            client::remember,
        ))
        .layer(axum::middleware::from_fn(session::viewer_scope))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::track,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // The path only: query strings can carry codes and tokens, which never go
            // into logs.
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
        }))
        .layer(axum::middleware::from_fn(|req, next| {
            server::buffer_body(MAX_BODY, req, next)
        }))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            // Other sites never see our URLs (which can carry codes); our own pages keep
            // Origin and Referer on same-origin requests, which the CSRF check relies on.
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' https:; frame-ancestors 'none'",
            ),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ))
}

/// A bound, ready-to-run control plane.
pub struct Application {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    router: Router,
    state: AppState,
    local_addr: SocketAddr,
    public_url: PublicUrl,
}

impl Application {
    /// Binds the listener and assembles the router. Binding here, rather than in `run`, lets
    /// callers learn the real port (tests listen on port 0) before serving.
    pub async fn build(settings: &Settings, store: Store) -> Result<Application, WebError> {
        Self::build_with(settings, store, ProviderOptions::default()).await
    }

    /// As [`Application::build`], with provider options other than the defaults.
    pub async fn build_with(
        settings: &Settings,
        store: Store,
        options: ProviderOptions,
    ) -> Result<Application, WebError> {
        let catalog = stackspin_catalog::Catalog::builtin()
            .map_err(|e| WebError::Startup(format!("the built-in catalog: {e}")))?;
        let platform = platform::Platform::without_cluster(Arc::new(catalog.clone()));
        Self::build_full(settings, store, options, platform).await
    }

    /// As [`Application::build_with`], with a catalog and (when `serve` has a cluster) the
    /// operator to wake.
    pub async fn build_full(
        settings: &Settings,
        store: Store,
        options: ProviderOptions,
        platform: platform::Platform,
    ) -> Result<Application, WebError> {
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|error| WebError::Bind {
                    addr: settings.listen,
                    error,
                })?;
        let local_addr = listener.local_addr().map_err(|error| WebError::Bind {
            addr: settings.listen,
            error,
        })?;
        let public_url = settings.public_url_for(local_addr);
        let metrics_listener = match settings.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|error| WebError::Bind { addr, error })?,
            ),
            None => None,
        };
        // The admin commands print links and the issuer: they must name this server.
        store
            .set_server_fact(PUBLIC_URL_FACT, public_url.as_str())
            .await
            .map_err(|e| WebError::Startup(format!("cannot record the public URL: {e}")))?;
        let keys = oidc::keys::KeyRing::load(&store).await?;
        let params = options.hash_params;
        let dummy_hash = tokio::task::spawn_blocking(move || {
            params.hash(&Password::existing("dummy password for timing")?)
        })
        .await
        .map_err(|e| WebError::Startup(e.to_string()))?
        .map_err(|e| WebError::Startup(e.to_string()))?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("stackspin/", env!("CARGO_PKG_VERSION")))
            // Logout notices go to the URI an admin registered, never somewhere it redirects.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| WebError::Startup(e.to_string()))?;
        let state = AppState {
            store,
            public_url: public_url.clone(),
            metrics: Arc::new(Metrics::new()),
            keys: Arc::new(keys),
            hashing: Arc::new(HashPool::new(options.max_concurrent_hashes)),
            trusted_proxies: Arc::new(settings.trusted_proxies.clone()),
            options: Arc::new(options),
            dummy_hash: Arc::new(dummy_hash),
            http,
            outbox_wake: Arc::new(Notify::new()),
            mailer: match &settings.mail {
                Some(m) => Some(Arc::new(mail::Mailer::new(m).map_err(WebError::Startup)?)),
                None => None,
            },
            mail_summary: settings
                .mail
                .as_ref()
                .map(|m| format!("{}:{} ({:?}), from {}", m.host, m.port, m.security, m.from)),
            mail_wake: Arc::new(Notify::new()),
            platform,
            tools: Arc::default(),
            brand: Arc::default(),
        };
        Ok(Application {
            listener,
            metrics_listener,
            router: router(state.clone()),
            state,
            local_addr,
            public_url,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where `/metrics` is served, if anywhere.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn public_url(&self) -> &PublicUrl {
        &self.public_url
    }

    /// Serves until `shutdown` completes, then stops accepting and lets in-flight requests
    /// finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let outbox = tokio::spawn(oidc::backchannel::run(self.state.clone()));
        let reload = tokio::spawn(reload_keys(self.state.clone()));
        let mail = tokio::spawn(mail::run(self.state.clone()));
        let prune = tokio::spawn(prune_counters(self.state.clone()));
        // One shutdown signal for both listeners.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let server_options = self.state.options.server.clone();
        let metrics = self.metrics_listener.map(|l| {
            let router = metrics_router(self.state.clone());
            let options = server_options.clone();
            let stop = stopped();
            tokio::spawn(async move { server::serve(l, router, &options, stop).await })
        });
        let served = server::serve(self.listener, self.router, &server_options, stopped()).await;
        if let Some(m) = metrics {
            let _ = m.await;
        }
        outbox.abort();
        reload.abort();
        mail.abort();
        prune.abort();
        served
    }

    /// The shared state, for tests that inspect what the server holds.
    pub fn state(&self) -> &AppState {
        &self.state
    }
}

/// Drops expired throttle counters and forgotten devices, so the tables stay small.
async fn prune_counters(state: AppState) {
    loop {
        tokio::time::sleep(Duration::from_secs(300)).await;
        if let Err(e) = state
            .store
            .prune_throttle(throttle::WINDOW_SECS, session::DEVICE_DAYS)
            .await
        {
            tracing::warn!(error = %e, "cannot prune throttle counters");
        }
    }
}

/// Picks up keys rotated by another replica or the admin CLI.
async fn reload_keys(state: AppState) {
    loop {
        tokio::time::sleep(state.options.key_reload_interval).await;
        if let Err(e) = state.keys.reload(&state.store).await {
            tracing::warn!(error = %e, "cannot reload signing keys");
        }
    }
}
