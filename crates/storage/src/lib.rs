//! Persistence for Stackspin: one [`Store`] over either SQLite (the embedded default) or
//! PostgreSQL (production, shareable by several server replicas).
//!
//! Every query is written once and run against whichever pool is configured (see
//! [`with_pool!`] and [`in_tx!`]); only the schema differs per backend, in
//! `migrations/sqlite` and `migrations/postgres`, because the two dialects disagree on types.
//!
//! Architecture invariant: this crate speaks domain types at its boundary and converts every
//! database error into a [`StorageError`]; callers never see sqlx.

mod accounts;
mod alerts;
mod apps;
mod audit;
mod backups;
mod brand;
mod directory;
mod drills;
mod error;
mod installed;
mod oidc;
mod sealed;
mod setup;
mod signals;
mod snapshot;
mod throttle;
mod tools;
mod users;

use std::{str::FromStr, time::Duration};

use sqlx::{
    Connection, PgConnection, PgPool, SqlitePool,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use stackspin_domain::settings::DatabaseUrl;

pub use accounts::{DueMail, LinkPurpose, MailStatus, NewLink, OutgoingMail};
pub use alerts::{Alert, AlertChange, IncomingAlert};
pub use apps::{AppStatus, GroupsClaim};
pub use audit::{AuditEvent, AuditFilter};
pub use backups::{
    Backup, BackupPhase, BackupReason, ObservedBackup, Restore, RestoreEvent, RestoreRefusal,
    RestoreState, RestoreStep, backup_name,
};
pub use brand::Brand;
pub use directory::{UserDetails, UserPage, UserPageRequest, UserPatch, UserSort};
pub use drills::{Drill, DrillApp, DrillState};
pub use error::StorageError;
pub use installed::{AppState, InstalledApp, ReleaseStatus};
pub use oidc::{
    CodeRecord, CodeRedemption, DueLogout, NewSession, RefreshOutcome, SessionRecord, StoredKey,
    TokenKind, TokenRecord,
};
pub use setup::SetupCredentials;
pub use signals::{PeopleSignals, QueueSignals};
pub use snapshot::SnapshotInfo;
pub use tools::{CODE_LIFETIME_SECONDS, CodeRefusal, ToolSession};
pub use users::RoleChange;

/// How long connecting may take before we give up and name the unreachable host.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Clone, Debug)]
enum Backend {
    /// SQLite allows one writer at a time. Writes go through a one-connection pool, so
    /// concurrent writers wait in a fair async queue; sharing the read pool, they would hit
    /// SQLITE_BUSY and SQLite's busy handler, which sleeps in steps of up to 100 ms (the
    /// provider benchmark's p99 showed it). Reads use the larger pool: WAL lets them run
    /// beside the writer.
    Sqlite {
        read: SqlitePool,
        write: SqlitePool,
    },
    Postgres(PgPool),
}

/// The SQL that differs between backends inside otherwise shared queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Serialises transactions that change who is an admin or create the first one.
    /// SQLite write transactions already run one at a time (`BEGIN IMMEDIATE`); PostgreSQL
    /// replicas take a transaction-scoped advisory lock, so "is this the last admin?" and
    /// "is the database still empty?" cannot race between two servers.
    fn admin_lock(self) -> Option<&'static str> {
        match self {
            Dialect::Sqlite => None,
            Dialect::Postgres => Some("SELECT pg_advisory_xact_lock(7317001)"),
        }
    }
}

/// Runs `$body` with `$pool` bound to the concrete pool of either backend. The body is
/// compiled once per backend, so it may use any type both drivers encode.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::Backend::Sqlite { read: $pool, .. } => $body,
            $crate::Backend::Postgres($pool) => $body,
        }
    };
}

/// As [`with_pool!`], for a single statement that writes: on SQLite it takes the writer.
macro_rules! with_writer {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::Backend::Sqlite { write: $pool, .. } => $body,
            $crate::Backend::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` inside a write transaction (`$tx`), committing when the body finishes.
/// An early `return` or `?` drops the transaction, which rolls it back: an action is saved
/// whole or not at all. SQLite transactions begin IMMEDIATE so two writers queue on the
/// busy timeout instead of failing when a read lock is upgraded.
macro_rules! in_tx {
    ($store:expr, $tx:ident, $dialect:ident => $body:expr) => {
        match &$store.backend {
            $crate::Backend::Sqlite { write: pool, .. } => {
                #[allow(unused_variables)]
                let $dialect = $crate::Dialect::Sqlite;
                let mut $tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            $crate::Backend::Postgres(pool) => {
                #[allow(unused_variables)]
                let $dialect = $crate::Dialect::Postgres;
                let mut $tx = pool.begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}

pub(crate) use {in_tx, with_pool, with_writer};

/// Takes the admin lock where the dialect needs one (see [`Dialect::admin_lock`]).
macro_rules! lock_admins {
    ($tx:ident, $dialect:ident) => {
        if let Some(sql) = $dialect.admin_lock() {
            sqlx::query(sql).execute(&mut *$tx).await?;
        }
    };
}
pub(crate) use lock_admins;

/// The database behind the control plane. Cheap to clone (it holds a connection pool).
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    /// The platform keys that seal secrets at rest (see `sealed`).
    secrets: Option<std::sync::Arc<stackspin_domain::sealing::SecretKeys>>,
}

impl Store {
    /// Connects, creating the SQLite file (and its folder) if needed, and runs migrations.
    pub async fn connect(url: &DatabaseUrl) -> Result<Store, StorageError> {
        let backend = match url {
            DatabaseUrl::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    create_private_dir(parent).map_err(|e| StorageError::Unreachable {
                        target: url.target(),
                        reason: format!("cannot create folder {}: {e}", parent.display()),
                    })?;
                }
                private_database_files(path).map_err(|e| StorageError::Unreachable {
                    target: url.target(),
                    reason: format!(
                        "cannot create {} readable only by its owner: {e}",
                        path.display()
                    ),
                })?;
                let opts = sqlite_options(SqliteConnectOptions::new().filename(path));
                // The writer first: it creates the file and sets WAL mode for everyone.
                let write = connect_sqlite(url, opts.clone(), 1).await?;
                let read = connect_sqlite(url, opts, 8).await?;
                Backend::Sqlite { read, write }
            }
            DatabaseUrl::SqliteMemory => {
                // Each in-memory connection is its own database, so the pool holds exactly one.
                let opts = sqlite_options(SqliteConnectOptions::from_str("sqlite::memory:")?);
                let pool = connect_sqlite(url, opts, 1).await?;
                Backend::Sqlite {
                    read: pool.clone(),
                    write: pool,
                }
            }
            DatabaseUrl::Postgres(u) => {
                let opts = PgConnectOptions::from_str(u.as_str())
                    .map_err(|e| StorageError::Unreachable {
                        target: url.target(),
                        reason: format!("invalid PostgreSQL URL: {e}"),
                    })?
                    // Acknowledge a commit only once it is on disk, whatever the server's
                    // default: an identity provider must not lose a code or a password
                    // change it reported done.
                    .options([("synchronous_commit", "on")]);
                // One direct attempt first: the pool retries until its timeout and then
                // reports only "timed out", hiding "connection refused" or a bad password.
                let probe =
                    tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&opts))
                        .await
                        .map_err(|_| StorageError::Unreachable {
                            target: url.target(),
                            reason: "timed out".into(),
                        })?
                        .map_err(|e| StorageError::unreachable(url, &e))?;
                let _ = probe.close().await;
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_with(opts)
                    .await
                    .map_err(|e| StorageError::unreachable(url, &e))?;
                Backend::Postgres(pool)
            }
        };
        let store = Store {
            backend,
            secrets: None,
        };
        store.migrate().await?;
        store.backfill_sort_keys().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StorageError> {
        // sqlx's migrator takes an advisory lock on PostgreSQL, so replicas starting together
        // apply each migration exactly once.
        match &self.backend {
            Backend::Sqlite { write, .. } => SQLITE_MIGRATIONS.run(write).await?,
            Backend::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await?,
        }
        Ok(())
    }

    /// Which backend this store uses ("sqlite" or "postgres").
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// How commits are made durable, as the database itself reports it (for the start-up
    /// log and tests): `sqlite journal=wal synchronous=full` or `postgres
    /// synchronous_commit=on`.
    pub async fn durability(&self) -> Result<String, StorageError> {
        Ok(match &self.backend {
            Backend::Sqlite { write, .. } => {
                let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
                    .fetch_one(write)
                    .await?;
                let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(write)
                    .await?;
                let sync = match sync {
                    0 => "off",
                    1 => "normal",
                    2 => "full",
                    _ => "extra",
                };
                format!("sqlite journal={journal} synchronous={sync}")
            }
            Backend::Postgres(pool) => {
                let commit: String = sqlx::query_scalar("SHOW synchronous_commit")
                    .fetch_one(pool)
                    .await?;
                format!("postgres synchronous_commit={commit}")
            }
        })
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StorageError> {
        with_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

fn sqlite_options(opts: SqliteConnectOptions) -> SqliteConnectOptions {
    // WAL lets readers proceed while one writer writes. FULL syncs the WAL at every commit:
    // NORMAL survives a process crash but can lose the last commits on power loss, and an
    // identity provider must not acknowledge a code, token or password change it could
    // lose. The busy timeout makes concurrent writers wait for each other, not fail.
    opts.create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
}

async fn connect_sqlite(
    url: &DatabaseUrl,
    opts: SqliteConnectOptions,
    max: u32,
) -> Result<SqlitePool, StorageError> {
    SqlitePoolOptions::new()
        .max_connections(max)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(opts)
        .await
        .map_err(|e| StorageError::unreachable(url, &e))
}

/// Creates the SQLite file mode 0600 if it is missing, and tightens the file and its WAL
/// companions if an earlier version left them readable by others: they hold password
/// hashes and sessions. SQLite gives the WAL and shared-memory files the database's mode.
fn private_database_files(path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            let file = std::path::PathBuf::from(file);
            if let Ok(meta) = std::fs::metadata(&file)
                && meta.permissions().mode() & 0o077 != 0
            {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Creates a folder readable only by its owner: it holds the database and keys.
fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

#[cfg(feature = "testing")]
pub mod testing;
