//! The organisation's name and logo on every page.
//!
//! Every template extends `base.html`, and threading the brand through each page's struct
//! would touch all of them; instead a middleware puts the current brand in a task-local for
//! the request, and `base.html` reads it. The brand is cached for a few seconds per process
//! (one settings read, not one per request), and a save clears this process's cache at
//! once; other replicas see it within [`FRESH_FOR`].

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use axum::{
    extract::{Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use stackspin_domain::brand::Logo;
use stackspin_storage::Store;

use crate::{AppState, pages};

const FRESH_FOR: Duration = Duration::from_secs(10);

/// What the pages show of the organisation.
#[derive(Debug, Default)]
pub struct Shown {
    pub name: Option<String>,
    pub logo: Option<Logo>,
}

impl Shown {
    pub fn logo_url(&self) -> Option<String> {
        self.logo
            .as_ref()
            .map(|l| format!("/brand/logo?v={}", l.version()))
    }
}

#[derive(Default)]
pub struct BrandCache {
    inner: RwLock<Option<(Arc<Shown>, Instant)>>,
}

impl BrandCache {
    pub async fn get(&self, store: &Store) -> Arc<Shown> {
        if let Ok(guard) = self.inner.read()
            && let Some((shown, at)) = guard.as_ref()
            && at.elapsed() < FRESH_FOR
        {
            return shown.clone();
        }
        let shown = match store.brand().await {
            Ok(b) => Arc::new(Shown {
                name: b.name.map(|n| n.as_str().to_owned()),
                logo: b.logo,
            }),
            Err(e) => {
                // A page without the organisation's name is better than no page; the
                // database error shows up in the page's own queries too.
                tracing::warn!(error = %e, "cannot read the organisation's name and logo");
                return self.last().unwrap_or_default();
            }
        };
        if let Ok(mut guard) = self.inner.write() {
            *guard = Some((shown.clone(), Instant::now()));
        }
        shown
    }

    fn last(&self) -> Option<Arc<Shown>> {
        self.inner
            .read()
            .ok()
            .and_then(|g| g.as_ref().map(|(s, _)| s.clone()))
    }

    /// After a save: the next request reads the new brand.
    pub fn forget(&self) {
        if let Ok(mut guard) = self.inner.write() {
            *guard = None;
        }
    }
}

tokio::task_local! {
    static CURRENT: Arc<Shown>;
}

/// Middleware: the request's pages see the organisation's brand.
pub async fn scope(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let shown = state.brand.get(&state.store).await;
    CURRENT.scope(shown, next.run(req)).await
}

fn with<T>(f: impl Fn(&Shown) -> T) -> T {
    CURRENT
        .try_with(|s| f(s))
        .unwrap_or_else(|_| f(&Shown::default()))
}

/// The name in the page header: the organisation's, or "Stackspin".
pub fn label() -> String {
    with(|s| s.name.clone()).unwrap_or_else(|| crate::texts::t("base.stackspin").to_owned())
}

pub fn logo_url() -> Option<String> {
    with(Shown::logo_url)
}

/// `GET /brand/logo`: the uploaded logo. Its URL carries the logo's fingerprint, so it is
/// cached for a year; the sandboxing policy keeps an SVG opened on its own inert.
pub async fn logo(State(state): State<AppState>) -> Response {
    let shown = state.brand.get(&state.store).await;
    let Some(logo) = shown.logo.as_ref() else {
        return pages::not_found().await;
    };
    let mut resp = logo.bytes().to_vec().into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(logo.kind().mime()),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
    );
    resp
}
