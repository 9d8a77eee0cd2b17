//! The control plane's HTTP face: one axum application that serves health and readiness
//! probes, Prometheus metrics and pages, and that `stackspin serve` and the tests start the
//! same way ([`Application::build`], then [`Application::run_until_stopped`]).
//!
//! Architecture invariant: handlers reach the database only through `stackspin_storage::Store`
//! and never read process-global configuration; everything comes in through [`AppState`].

mod error;
mod health;
mod metrics;
mod pages;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::Request,
    http::{HeaderName, HeaderValue, header},
    routing::get,
};
use stackspin_domain::settings::{PublicUrl, Settings};
use stackspin_storage::Store;
use tokio::net::TcpListener;
use tower_http::{
    limit::RequestBodyLimitLayer, set_header::SetResponseHeaderLayer, timeout::TimeoutLayer,
    trace::TraceLayer,
};

pub use error::WebError;
pub use metrics::Metrics;

/// What every handler may use. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub public_url: PublicUrl,
    pub metrics: Arc<Metrics>,
}

/// The routes and middleware, without a socket (tests can drive it with `oneshot`).
pub fn router(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    Router::new()
        .route("/", get(pages::index))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        .fallback(pages::not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(metrics, metrics::track))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                // The path only: query strings can carry codes and tokens, which never go
                // into logs.
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
            }),
        )
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(RequestBodyLimitLayer::new(1024 * 1024))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
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
    router: Router,
    local_addr: SocketAddr,
    public_url: PublicUrl,
}

impl Application {
    /// Binds the listener and assembles the router. Binding here, rather than in `run`, lets
    /// callers learn the real port (tests listen on port 0) before serving.
    pub async fn build(settings: &Settings, store: Store) -> Result<Application, WebError> {
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| WebError::Bind {
                    addr: settings.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| WebError::Bind {
            addr: settings.listen,
            source,
        })?;
        let public_url = settings.public_url_for(local_addr);
        let state = AppState {
            store,
            public_url: public_url.clone(),
            metrics: Arc::new(Metrics::new()),
        };
        Ok(Application {
            listener,
            router: router(state),
            local_addr,
            public_url,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
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
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }
}
