//! Sealing secrets at rest with the platform key (`stackspin_domain::sealing`): the setup
//! password, TOTP secrets, signing private keys and queued mail bodies (which carry reset
//! and invitation links). Values an earlier version stored in the clear are still read, and
//! [`Store::reseal_secrets`] seals them, or reseals everything under a new key.

use std::sync::Arc;

use stackspin_domain::sealing::{SecretKeys, is_sealed, is_sealed_text};
use uuid::Uuid;

use crate::{OutgoingMail, StorageError, Store, in_tx};

impl Store {
    /// This store, sealing and opening secrets with `keys`.
    pub fn with_secret_keys(mut self, keys: SecretKeys) -> Store {
        self.secrets = Some(Arc::new(keys));
        self
    }

    fn keys(&self) -> Result<&SecretKeys, StorageError> {
        self.secrets.as_deref().ok_or(StorageError::NoSecretKey)
    }

    pub(crate) fn seal_text(&self, plain: &str) -> Result<String, StorageError> {
        Ok(self.keys()?.seal_text(plain))
    }

    pub(crate) fn open_text(&self, stored: &str) -> Result<String, StorageError> {
        if !is_sealed_text(stored) {
            return Ok(stored.to_owned());
        }
        self.keys()?.open_text(stored).map_err(StorageError::Sealed)
    }

    pub(crate) fn seal_bytes(&self, plain: &[u8]) -> Result<Vec<u8>, StorageError> {
        Ok(self.keys()?.seal(plain))
    }

    pub(crate) fn open_bytes(&self, stored: &[u8]) -> Result<Vec<u8>, StorageError> {
        if !is_sealed(stored) {
            return Ok(stored.to_vec());
        }
        Ok(self
            .keys()?
            .open(stored)
            .map_err(StorageError::Sealed)?
            .unwrap_or_default())
    }

    pub(crate) fn sealed_mail(&self, mail: &OutgoingMail) -> Result<OutgoingMail, StorageError> {
        Ok(OutgoingMail {
            body: self.seal_text(&mail.body)?,
            ..mail.clone()
        })
    }

    /// Seals every secret that is in the clear or under an older key with the current key,
    /// in one transaction; returns how many values changed. Run at every start (which
    /// seals what an earlier version left in the clear) and by a key rotation.
    pub async fn reseal_secrets(&self) -> Result<u64, StorageError> {
        let keys = self.keys()?.clone();
        let text = |stored: &str| -> Result<Option<String>, StorageError> {
            if keys.is_current_text(stored) {
                return Ok(None);
            }
            let plain = if is_sealed_text(stored) {
                keys.open_text(stored).map_err(StorageError::Sealed)?
            } else {
                stored.to_owned()
            };
            Ok(Some(keys.seal_text(&plain)))
        };
        let bytes = |stored: &[u8]| -> Result<Option<Vec<u8>>, StorageError> {
            if keys.is_current(stored) {
                return Ok(None);
            }
            let plain = match keys.open(stored).map_err(StorageError::Sealed)? {
                Some(p) => p,
                None => stored.to_vec(),
            };
            Ok(Some(keys.seal(&plain)))
        };
        let changed = in_tx!(self, tx, _d => {
            let mut changed = 0u64;
            let setup: Option<String> =
                sqlx::query_scalar("SELECT password FROM setup_credentials WHERE id = 1")
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(new) = setup.as_deref().map(text).transpose()?.flatten() {
                sqlx::query("UPDATE setup_credentials SET password = $1 WHERE id = 1")
                    .bind(new)
                    .execute(&mut *tx)
                    .await?;
                changed += 1;
            }
            let totp: Vec<(Uuid, String)> = sqlx::query_as(
                "SELECT id, totp_secret FROM users WHERE totp_secret IS NOT NULL",
            )
            .fetch_all(&mut *tx)
            .await?;
            for (id, secret) in totp {
                if let Some(new) = text(&secret)? {
                    sqlx::query("UPDATE users SET totp_secret = $1 WHERE id = $2")
                        .bind(new)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    changed += 1;
                }
            }
            let signing: Vec<(String, Vec<u8>)> =
                sqlx::query_as("SELECT kid, private_key FROM signing_keys")
                    .fetch_all(&mut *tx)
                    .await?;
            for (kid, key) in signing {
                if let Some(new) = bytes(&key)? {
                    sqlx::query("UPDATE signing_keys SET private_key = $1 WHERE kid = $2")
                        .bind(new)
                        .bind(kid)
                        .execute(&mut *tx)
                        .await?;
                    changed += 1;
                }
            }
            let mail: Vec<(Uuid, String)> =
                sqlx::query_as("SELECT id, body FROM mail_outbox WHERE body <> ''")
                    .fetch_all(&mut *tx)
                    .await?;
            for (id, body) in mail {
                if let Some(new) = text(&body)? {
                    sqlx::query("UPDATE mail_outbox SET body = $1 WHERE id = $2")
                        .bind(new)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    changed += 1;
                }
            }
            changed
        });
        Ok(changed)
    }
}
