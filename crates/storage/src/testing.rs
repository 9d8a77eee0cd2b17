//! Fresh databases for tests: a SQLite file in a temporary folder, or a new database on the
//! PostgreSQL server named by `STACKSPIN_TEST_POSTGRES_URL` (which `scripts/test` starts).

use sqlx::{Connection, PgConnection};
use stackspin_domain::settings::DatabaseUrl;

use crate::Store;

pub const POSTGRES_ENV: &str = "STACKSPIN_TEST_POSTGRES_URL";

/// A store on a database of its own; the SQLite folder is removed when this is dropped.
pub struct TestDb {
    pub store: Store,
    pub url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let (url, dir) = fresh_sqlite_url();
        let store = Store::connect(&url)
            .await
            .expect("open SQLite test database")
            .with_secret_keys(stackspin_domain::sealing::SecretKeys::generate());
        TestDb {
            store,
            url,
            _dir: Some(dir),
        }
    }

    pub async fn postgres() -> TestDb {
        let url = fresh_postgres_url().await;
        let store = Store::connect(&url)
            .await
            .expect("open PostgreSQL test database")
            .with_secret_keys(stackspin_domain::sealing::SecretKeys::generate());
        TestDb {
            store,
            url,
            _dir: None,
        }
    }
}

/// A SQLite URL in a new temporary folder (kept alive by the returned guard).
pub fn fresh_sqlite_url() -> (DatabaseUrl, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary folder");
    (DatabaseUrl::Sqlite(dir.path().join("test.sqlite")), dir)
}

/// Creates an empty database on the test PostgreSQL server and returns its URL.
///
/// Panics when the server is not configured: the PostgreSQL half of the suite must fail
/// loudly rather than pass by being skipped.
pub async fn fresh_postgres_url() -> DatabaseUrl {
    let admin = std::env::var(POSTGRES_ENV).unwrap_or_else(|_| {
        panic!("{POSTGRES_ENV} is not set: run scripts/test, which starts PostgreSQL")
    });
    let mut conn = PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL server: {e}"));
    let name = format!("stackspin_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let mut url = url::Url::parse(&admin).expect("valid admin URL");
    url.set_path(&name);
    DatabaseUrl::Postgres(url)
}

impl Store {
    /// Moves every Dashboard session's expiry into the past, as time passing would.
    pub async fn expire_all_sessions_for_tests(&self) -> Result<(), crate::StorageError> {
        let past = chrono::Utc::now() - chrono::Duration::seconds(1);
        crate::with_writer!(self, pool => {
            sqlx::query("UPDATE sessions SET expires_at = $1")
                .bind(past)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
