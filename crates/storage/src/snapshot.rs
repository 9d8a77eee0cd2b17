//! Consistent copies of the control plane's database for backups, taken while it is in use.
//! Velero copies volumes file by file, which would catch a SQLite file or its write-ahead log
//! halfway through a write; so a backup hook first writes a snapshot next to the database,
//! and the snapshot is what a restore uses.
//!
//! - SQLite: `VACUUM INTO`, SQLite's online copy, made inside one read transaction: every
//!   transaction committed before it began is in it, none that committed later.
//! - PostgreSQL: each table copied out (`COPY ... TO STDOUT`) inside one `REPEATABLE READ`
//!   read-only transaction, so all tables come from the same instant; written as a file of
//!   its own small format, and read back into an empty database of the same schema version.
//!   Written here rather than by `pg_dump` so the control plane's image needs no PostgreSQL
//!   client and the dump holds exactly Stackspin's tables.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use sqlx::{Connection, PgConnection, Row};
use stackspin_domain::settings::DatabaseUrl;

use crate::{Backend, StorageError, Store};

const PG_MAGIC: &str = "STACKSPIN-POSTGRES-SNAPSHOT 1";
const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// What a snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotInfo {
    pub backend: &'static str,
    pub path: PathBuf,
    pub bytes: u64,
    /// The newest migration applied to the copied database.
    pub schema_version: i64,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> StorageError {
    StorageError::Corrupt(format!("{what} {}: {e}", path.display()))
}

/// `path` with `.partial` added: written first, renamed over `path` once complete.
fn partial(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".partial");
    PathBuf::from(p)
}

fn finish_file(tmp: &Path, path: &Path) -> Result<u64, StorageError> {
    let f = std::fs::File::open(tmp).map_err(|e| io("cannot reopen", tmp, e))?;
    f.sync_all().map_err(|e| io("cannot sync", tmp, e))?;
    std::fs::rename(tmp, path).map_err(|e| io("cannot move into place", path, e))?;
    Ok(std::fs::metadata(path)
        .map_err(|e| io("cannot read", path, e))?
        .len())
}

impl Store {
    /// Writes a consistent snapshot of the database to `path` (replaced atomically).
    pub async fn snapshot(&self, path: &Path) -> Result<SnapshotInfo, StorageError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| io("cannot create", parent, e))?;
        }
        let tmp = partial(path);
        let _ = std::fs::remove_file(&tmp);
        let schema_version = self.schema_version().await?;
        match &self.backend {
            Backend::Sqlite { read, .. } => {
                let target = tmp.to_str().ok_or_else(|| {
                    StorageError::Corrupt(format!("{} is not valid UTF-8", tmp.display()))
                })?;
                sqlx::query("VACUUM INTO $1")
                    .bind(target)
                    .execute(read)
                    .await?;
            }
            Backend::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                pg_dump(&mut conn, &tmp).await?;
            }
        }
        let bytes = finish_file(&tmp, path)?;
        Ok(SnapshotInfo {
            backend: self.backend_name(),
            path: path.to_path_buf(),
            bytes,
            schema_version,
        })
    }

    async fn schema_version(&self) -> Result<i64, StorageError> {
        let v: (Option<i64>,) = crate::with_pool!(self, pool => {
            sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(pool)
                .await?
        });
        Ok(v.0.unwrap_or(0))
    }

    /// Puts a snapshot back as the database at `url`. For SQLite the file replaces the
    /// database (`serve` must be stopped); for PostgreSQL the database must be empty or
    /// hold no data yet (freshly migrated), and the snapshot's schema must be this
    /// version's. Either way the snapshot is checked before anything is replaced.
    pub async fn restore_snapshot(
        url: &DatabaseUrl,
        snapshot: &Path,
    ) -> Result<SnapshotInfo, StorageError> {
        let mut head = [0u8; 16];
        let mut f = std::fs::File::open(snapshot).map_err(|e| io("cannot open", snapshot, e))?;
        let n = f
            .read(&mut head)
            .map_err(|e| io("cannot read", snapshot, e))?;
        match url {
            DatabaseUrl::Sqlite(target) => {
                if &head[..n] != SQLITE_MAGIC {
                    return Err(StorageError::Corrupt(format!(
                        "{} is not a SQLite snapshot",
                        snapshot.display()
                    )));
                }
                // Open the snapshot on its own to check it whole before it replaces anything.
                let check = DatabaseUrl::Sqlite(snapshot.to_path_buf());
                let copy = Store::connect(&check).await?;
                let ok: (String,) = crate::with_pool!(copy, pool => {
                    sqlx::query_as("PRAGMA integrity_check").fetch_one(pool).await?
                });
                let schema_version = copy.schema_version().await?;
                copy.close().await;
                if ok.0 != "ok" {
                    return Err(StorageError::Corrupt(format!(
                        "{} fails SQLite's integrity check: {}",
                        snapshot.display(),
                        ok.0
                    )));
                }
                let tmp = partial(target);
                std::fs::copy(snapshot, &tmp).map_err(|e| io("cannot copy to", &tmp, e))?;
                for suffix in ["-wal", "-shm"] {
                    let mut p = target.as_os_str().to_owned();
                    p.push(suffix);
                    let _ = std::fs::remove_file(PathBuf::from(p));
                }
                let bytes = finish_file(&tmp, target)?;
                Ok(SnapshotInfo {
                    backend: "sqlite",
                    path: target.clone(),
                    bytes,
                    schema_version,
                })
            }
            DatabaseUrl::Postgres(_) => {
                if !head[..n].starts_with(&PG_MAGIC.as_bytes()[..n.min(PG_MAGIC.len())]) {
                    return Err(StorageError::Corrupt(format!(
                        "{} is not a PostgreSQL snapshot of Stackspin",
                        snapshot.display()
                    )));
                }
                let tables = read_pg_snapshot(snapshot)?;
                // Connecting migrates an empty database to this version's schema.
                let store = Store::connect(url).await?;
                let Backend::Postgres(pool) = &store.backend else {
                    return Err(StorageError::Corrupt("not a PostgreSQL store".into()));
                };
                let mut conn = pool.acquire().await?;
                let info = pg_load(&mut conn, &tables, snapshot).await?;
                drop(conn);
                store.close().await;
                Ok(SnapshotInfo {
                    path: url_path(url),
                    ..info
                })
            }
            DatabaseUrl::SqliteMemory => Err(StorageError::Corrupt(
                "cannot restore into an in-memory database".into(),
            )),
        }
    }
}

fn url_path(url: &DatabaseUrl) -> PathBuf {
    PathBuf::from(url.target())
}

/// Stackspin's tables in the current schema.
async fn pg_tables(conn: &mut PgConnection) -> Result<Vec<String>, StorageError> {
    let rows = sqlx::query(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| r.get::<String, _>(0))
        .filter(|t| plain_identifier(t))
        .collect())
}

/// Lowercase letters, digits and `_`: safe to quote into SQL, as our migrations name things.
fn plain_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
}

async fn pg_dump(conn: &mut PgConnection, tmp: &Path) -> Result<(), StorageError> {
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let tables = pg_tables(&mut tx).await?;
    let file = std::fs::File::create(tmp).map_err(|e| io("cannot create", tmp, e))?;
    let mut out = std::io::BufWriter::new(file);
    let w = |out: &mut std::io::BufWriter<std::fs::File>, b: &[u8]| {
        out.write_all(b).map_err(|e| io("cannot write", tmp, e))
    };
    w(&mut out, format!("{PG_MAGIC}\n").as_bytes())?;
    for table in &tables {
        // Table names come from the catalog and were checked to be plain identifiers.
        let mut stream = tx
            .copy_out_raw(&format!("COPY \"{table}\" TO STDOUT"))
            .await?;
        let mut data = Vec::new();
        while let Some(chunk) = stream.next().await {
            data.extend_from_slice(&chunk?);
        }
        drop(stream);
        w(
            &mut out,
            format!("TABLE {table} {}\n", data.len()).as_bytes(),
        )?;
        w(&mut out, &data)?;
    }
    w(&mut out, b"END\n")?;
    out.flush().map_err(|e| io("cannot write", tmp, e))?;
    tx.commit().await?;
    Ok(())
}

fn read_pg_snapshot(path: &Path) -> Result<BTreeMap<String, Vec<u8>>, StorageError> {
    let bad = |why: &str| StorageError::Corrupt(format!("{}: {why}", path.display()));
    let f = std::fs::File::open(path).map_err(|e| io("cannot open", path, e))?;
    let mut r = BufReader::new(f);
    let mut line = String::new();
    r.read_line(&mut line)
        .map_err(|e| io("cannot read", path, e))?;
    if line.trim_end() != PG_MAGIC {
        return Err(bad("not a PostgreSQL snapshot of Stackspin"));
    }
    let mut tables = BTreeMap::new();
    loop {
        line.clear();
        if r.read_line(&mut line)
            .map_err(|e| io("cannot read", path, e))?
            == 0
        {
            return Err(bad("cut short (no END): the snapshot is incomplete"));
        }
        let l = line.trim_end();
        if l == "END" {
            return Ok(tables);
        }
        let mut parts = l.split(' ');
        let (Some("TABLE"), Some(name), Some(len), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("unexpected line"));
        };
        let len: usize = len.parse().map_err(|_| bad("bad length"))?;
        let mut data = vec![0u8; len];
        r.read_exact(&mut data)
            .map_err(|_| bad("cut short: the snapshot is incomplete"))?;
        tables.insert(name.to_string(), data);
    }
}

/// The tables in an order where each comes after those its foreign keys point to.
async fn pg_load_order(
    conn: &mut PgConnection,
    tables: &[String],
) -> Result<Vec<String>, StorageError> {
    let rows = sqlx::query(
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c \
         WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace",
    )
    .fetch_all(&mut *conn)
    .await?;
    let deps: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
        .collect();
    let mut done: Vec<String> = Vec::new();
    let mut left: BTreeSet<&String> = tables.iter().collect();
    while !left.is_empty() {
        let ready: Vec<&String> = left
            .iter()
            .copied()
            .filter(|t| {
                deps.iter()
                    .filter(|(from, to)| from == *t && to != *t)
                    .all(|(_, to)| done.contains(to) || !tables.contains(to))
            })
            .collect();
        if ready.is_empty() {
            return Err(StorageError::Corrupt(
                "the tables' foreign keys form a cycle".into(),
            ));
        }
        for t in ready {
            left.remove(t);
            done.push(t.clone());
        }
    }
    Ok(done)
}

async fn pg_load(
    conn: &mut PgConnection,
    snapshot: &BTreeMap<String, Vec<u8>>,
    path: &Path,
) -> Result<SnapshotInfo, StorageError> {
    let bad = |why: String| StorageError::Corrupt(format!("{}: {why}", path.display()));
    let tables = pg_tables(conn).await?;
    // The snapshot's schema must be this binary's: the same migrations, the same columns.
    let version_of = |text: &[u8]| -> i64 {
        String::from_utf8_lossy(text)
            .lines()
            .filter_map(|l| l.split('\t').next()?.parse::<i64>().ok())
            .max()
            .unwrap_or(0)
    };
    let theirs = snapshot
        .get(MIGRATIONS_TABLE)
        .map(|t| version_of(t))
        .ok_or_else(|| bad("it has no migrations table".into()))?;
    let ours: (Option<i64>,) = sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(&mut *conn)
        .await?;
    let ours = ours.0.unwrap_or(0);
    if theirs != ours {
        return Err(bad(format!(
            "it was made with schema version {theirs}, this Stackspin has {ours}: restore it with the Stackspin version that made it"
        )));
    }
    for t in snapshot.keys() {
        if !tables.contains(t) {
            return Err(bad(format!("it has a table {t} this database does not")));
        }
    }
    let data_tables: Vec<String> = tables
        .iter()
        .filter(|t| *t != MIGRATIONS_TABLE)
        .cloned()
        .collect();
    let order = pg_load_order(conn, &data_tables).await?;
    let mut tx = conn.begin().await?;
    for t in &order {
        // Table names are plain identifiers (checked in `pg_tables`).
        let (n,): (i64,) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM \"{t}\"")))
                .fetch_one(&mut *tx)
                .await?;
        if n > 0 {
            return Err(bad(format!(
                "the target database is not empty (table {t} has rows): restore into a new, empty database"
            )));
        }
    }
    for t in &order {
        let Some(data) = snapshot.get(t) else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        let mut copy = tx.copy_in_raw(&format!("COPY \"{t}\" FROM STDIN")).await?;
        copy.send(data.as_slice()).await?;
        copy.finish().await?;
    }
    // Serial columns continue after the restored rows.
    let serials = sqlx::query(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND column_default LIKE 'nextval(%'",
    )
    .fetch_all(&mut *tx)
    .await?;
    for r in serials {
        let (t, c): (String, String) = (r.get(0), r.get(1));
        if !order.contains(&t) || !plain_identifier(&c) {
            continue;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT setval(pg_get_serial_sequence('\"{t}\"', '{c}'), \
             COALESCE((SELECT MAX(\"{c}\") FROM \"{t}\"), 0) + 1, false)"
        )))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(SnapshotInfo {
        backend: "postgres",
        path: path.to_path_buf(),
        bytes,
        schema_version: ours,
    })
}
