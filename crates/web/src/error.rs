//! Errors of the web layer.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    // The cause is part of the message and deliberately not a `source`: anyhow would print
    // it a second time when it walks the chain.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("cannot load the signing keys: {0}")]
    Keys(crate::oidc::keys::KeyRingError),
    #[error("cannot start: {0}")]
    Startup(String),
}

impl From<crate::oidc::keys::KeyRingError> for WebError {
    fn from(e: crate::oidc::keys::KeyRingError) -> Self {
        WebError::Keys(e)
    }
}
