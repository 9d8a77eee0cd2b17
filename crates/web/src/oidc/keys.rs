//! The provider's signing keys in memory, loaded from the database at start and reloaded
//! periodically, so a rotation made by another replica or the admin CLI is picked up.

use std::sync::{Arc, RwLock};

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use stackspin_identity::keys::{Alg, KeyError, SigningKey};
use stackspin_storage::{StorageError, Store};

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error("{0}")]
    Storage(StorageError),
    #[error("{0}")]
    Key(KeyError),
}

impl From<StorageError> for KeyRingError {
    fn from(e: StorageError) -> Self {
        KeyRingError::Storage(e)
    }
}

impl From<KeyError> for KeyRingError {
    fn from(e: KeyError) -> Self {
        KeyRingError::Key(e)
    }
}

struct Loaded {
    /// Keys that sign new tokens, one per algorithm (the newest not retired).
    active: Vec<Arc<SigningKey>>,
    /// Every published public key, active or retired-but-not-expired.
    jwks: Value,
}

pub struct KeyRing {
    loaded: RwLock<Loaded>,
}

impl KeyRing {
    /// Loads the keys, generating the first RS256 and ES256 keys on a fresh database.
    pub async fn load(store: &Store) -> Result<KeyRing, KeyRingError> {
        for alg in [Alg::Rs256, Alg::Es256] {
            let has = store
                .signing_keys()
                .await?
                .iter()
                .any(|k| k.alg == alg.as_str() && k.retired_at.is_none());
            if !has {
                let key = generate(alg).await?;
                store
                    .add_signing_key(key.kid(), alg.as_str(), &key.to_pkcs8()?, None)
                    .await?;
            }
        }
        let ring = KeyRing {
            loaded: RwLock::new(Loaded {
                active: vec![],
                jwks: json!({"keys": []}),
            }),
        };
        ring.reload(store).await?;
        Ok(ring)
    }

    /// Re-reads the keys from the database.
    pub async fn reload(&self, store: &Store) -> Result<(), KeyRingError> {
        let stored = store.signing_keys().await?;
        let mut active: Vec<Arc<SigningKey>> = Vec::new();
        let mut public = Vec::new();
        for k in &stored {
            let Some(alg) = Alg::parse(&k.alg) else {
                continue;
            };
            let key = SigningKey::from_pkcs8(k.kid.clone(), alg, &k.private_key)?;
            public.push(key.public_jwk());
            // `stored` is newest first, so the first current key per algorithm wins.
            if k.retired_at.is_none() && !active.iter().any(|a| a.alg() == alg) {
                active.push(Arc::new(key));
            }
        }
        let mut loaded = self
            .loaded
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loaded.active = active;
        loaded.jwks = json!({ "keys": public });
        Ok(())
    }

    /// The key that signs tokens for `alg` (RS256 when the client did not ask otherwise).
    pub fn signer(&self, alg: Alg) -> Option<Arc<SigningKey>> {
        let loaded = self
            .loaded
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loaded.active.iter().find(|k| k.alg() == alg).cloned()
    }

    pub fn jwks(&self) -> Value {
        self.loaded
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .jwks
            .clone()
    }
}

async fn generate(alg: Alg) -> Result<SigningKey, KeyError> {
    let kid = format!(
        "{}-{}",
        alg.as_str().to_ascii_lowercase(),
        stackspin_domain::secret::random_token(9)
    );
    // RSA generation takes tens of milliseconds: keep it off the async workers.
    tokio::task::spawn_blocking(move || SigningKey::generate(kid, alg))
        .await
        .map_err(|_| KeyError::Generate)?
}

/// Replaces the signing key of every algorithm with a new one under a new `kid`; the old keys
/// stay published for `publish_old_for`, long enough for every token they signed to expire.
pub async fn rotate(store: &Store, publish_old_for: Duration) -> Result<Vec<String>, KeyRingError> {
    let mut kids = Vec::new();
    for alg in [Alg::Rs256, Alg::Es256] {
        let key = generate(alg).await?;
        store
            .add_signing_key(
                key.kid(),
                alg.as_str(),
                &key.to_pkcs8()?,
                Some(Utc::now() + publish_old_for),
            )
            .await?;
        kids.push(key.kid().to_owned());
    }
    Ok(kids)
}
