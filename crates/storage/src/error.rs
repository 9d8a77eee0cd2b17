//! The one error type callers of the storage layer see.

use stackspin_domain::settings::DatabaseUrl;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot reach the database at {target}: {reason}")]
    Unreachable { target: String, reason: String },
    #[error("a user with email {0} already exists")]
    DuplicateEmail(String),
    #[error("an app named {0} already exists")]
    DuplicateApp(String),
    #[error("no user with email {0}")]
    UserNotFound(String),
    #[error("no app named {0}")]
    AppNotFound(String),
    #[error("{0} is not installed")]
    NotInstalled(String),
    #[error("{0} was changed by someone else meanwhile: reload and try again")]
    Conflict(String),
    #[error("{0} is the last admin: make someone else an admin first")]
    LastAdmin(String),
    #[error("unexpected data in the database: {0}")]
    Corrupt(String),
    #[error("no platform key: secrets in the database can be neither sealed nor opened")]
    NoSecretKey,
    #[error("cannot open a sealed secret: {0}")]
    Sealed(stackspin_domain::sealing::SealError),
    // Causes are in the messages and not marked as `source`, so that an error chain printed
    // by the binary names each cause once.
    #[error("database migration failed: {0}")]
    Migration(sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StorageError {
    fn from(e: sqlx::Error) -> Self {
        StorageError::Database(e)
    }
}

impl From<sqlx::migrate::MigrateError> for StorageError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StorageError::Migration(e)
    }
}

impl StorageError {
    pub(crate) fn unreachable(url: &DatabaseUrl, e: &sqlx::Error) -> Self {
        // sqlx's messages for I/O failures are already short ("Connection refused (os error
        // 111)"); a database error keeps only its message, never the URL with its password.
        let reason = match e {
            sqlx::Error::Database(db) => db.message().to_owned(),
            sqlx::Error::PoolTimedOut => "timed out".to_owned(),
            other => other.to_string(),
        };
        StorageError::Unreachable {
            target: url.target(),
            reason,
        }
    }

    /// Whether the error means the database is down, as opposed to a rule being broken.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StorageError::Unreachable { .. }
                | StorageError::Database(
                    sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
                )
        )
    }
}

/// Maps a unique-constraint violation to `conflict`, passing other errors through.
pub(crate) fn on_unique(e: sqlx::Error, conflict: impl FnOnce() -> StorageError) -> StorageError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => conflict(),
        _ => StorageError::Database(e),
    }
}
