//! The accept loop and HTTP/1 connections, written out rather than `axum::serve` because
//! an identity provider on the open internet needs what that helper leaves out: a deadline
//! for request headers (which also ends idle keep-alive connections, since hyper starts it
//! whenever it waits for the next request), a bound on open connections derived from the
//! file-descriptor limit, and an accept loop that backs off instead of spinning and
//! flooding the log when descriptors run out.

use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tower::ServiceExt;

/// Limits of the HTTP server.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// How long a client may take to send a request's headers, and how long a keep-alive
    /// connection may sit idle between requests.
    pub header_read_timeout: Duration,
    /// Most connections open at once; further clients wait in the kernel's backlog. Capped
    /// below the file-descriptor limit (see [`raise_fd_limit`]).
    pub max_connections: usize,
    /// How long in-flight requests get to finish after a shutdown signal.
    pub shutdown_grace: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Descriptors kept free for the database, mail, key files and outgoing requests.
const RESERVED_FDS: u64 = 64;

/// Raises the soft open-files limit to the hard one and returns how many connections fit
/// in it with room to spare.
pub fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            tracing::debug!(limit, "open-files limit");
            limit.saturating_sub(RESERVED_FDS).max(16)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-files limit");
            1024 - RESERVED_FDS
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and
/// gives open connections `shutdown_grace` to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: &ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limit = options
        .max_connections
        .min(usize::try_from(raise_fd_limit()).unwrap_or(usize::MAX))
        .max(1);
    let slots = Arc::new(Semaphore::new(limit));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = Duration::ZERO;
    let mut last_warning: Option<tokio::time::Instant> = None;
    loop {
        // Wait for a free slot before accepting: excess clients queue in the backlog
        // instead of taking descriptors the server needs.
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff = Duration::ZERO;
                a
            }
            Err(e) => {
                drop(slot);
                if is_connection_error(&e) {
                    continue;
                }
                // Out of descriptors or memory: retrying at once would spin and fill the
                // log. Wait, doubling up to a second, and say so at most every ten seconds.
                backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis(), "cannot accept connections");
                    last_warning = Some(tokio::time::Instant::now());
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(
                move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req.map(axum::body::Body::new)
                },
            )
            .map_err(|e: Infallible| match e {});
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(options.header_read_timeout)
            .max_buf_size(64 * 1024);
        let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period");
    }
    Ok(())
}

/// Errors that concern one connection only (the client went away between SYN and accept).
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Reads the whole request body (up to `limit`) before the handler runs. A handler that
/// refuses early (401, 403) would otherwise leave the body unread, and hyper would close
/// the keep-alive connection after answering without saying so, failing the client's next
/// request on it. Bodies over the limit get 413 with `Connection: close`.
pub async fn buffer_body(
    limit: usize,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::{
        http::{HeaderValue, StatusCode, header},
        response::IntoResponse,
    };
    let too_large = || {
        let mut r = (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response();
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => {
            next.run(axum::extract::Request::from_parts(
                parts,
                axum::body::Body::from(bytes),
            ))
            .await
        }
        Err(_) => too_large(),
    }
}
