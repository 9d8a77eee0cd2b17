//! The client's address as this server may believe it (see `stackspin_domain::client_ip`).

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::request::Parts,
};

use crate::AppState;

/// The client behind a request: the peer, or what a trusted proxy forwarded for.
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Requests driven without a socket (router tests) have no peer: loopback stands in.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.ip());
        let forwarded: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        Ok(ClientIp(stackspin_domain::client_ip::resolve(
            peer,
            &forwarded,
            &state.trusted_proxies,
        )))
    }
}

tokio::task_local! {
    static CURRENT: IpAddr;
}

/// Middleware: the request's client address is known to everything the request does, so the
/// audit log can say where every action came from without each handler passing it along.
pub async fn remember(
    client: ClientIp,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    CURRENT.scope(client.0, next.run(req)).await
}

/// The address of the request being served, if this runs inside one.
pub fn current() -> Option<IpAddr> {
    CURRENT.try_with(|ip| *ip).ok()
}
