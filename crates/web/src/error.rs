//! Errors of the web layer.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot load the signing keys: {0}")]
    Keys(#[from] crate::oidc::keys::KeyRingError),
    #[error("cannot start: {0}")]
    Startup(String),
}
