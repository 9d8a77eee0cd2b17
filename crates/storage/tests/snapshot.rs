//! The database snapshot a backup hook takes: made while a writer commits as fast as it can,
//! restored into a new database, it holds every row committed before the snapshot began, and
//! the rows it holds are a prefix of the commits (nothing torn, nothing out of order).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use stackspin_domain::settings::DatabaseUrl;
use stackspin_storage::testing::{TestDb, fresh_postgres_url, fresh_sqlite_url};
use stackspin_storage::{AuditEvent, AuditFilter, Store};

const KIND: &str = "test.write";

async fn written(store: &Store) -> Vec<i64> {
    let mut all = store
        .audit_events(&AuditFilter {
            kind: Some(KIND.into()),
            limit: 1_000_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.detail["n"].as_i64().unwrap())
        .collect::<Vec<_>>();
    all.sort();
    all
}

/// Writes numbered rows until stopped; `committed` is the last number whose commit returned.
fn writer(
    store: Store,
    committed: Arc<AtomicI64>,
    stop: Arc<AtomicI64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut n = 0;
        while stop.load(Ordering::SeqCst) == 0 {
            n += 1;
            let mut e = AuditEvent::new(KIND);
            e.detail = serde_json::json!({ "n": n });
            store.record_audit(&e).await.unwrap();
            committed.store(n, Ordering::SeqCst);
        }
    })
}

async fn snapshot_under_load(db: TestDb, fresh: DatabaseUrl) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stackspin.snapshot");
    let committed = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicI64::new(0));
    let w = writer(db.store.clone(), committed.clone(), stop.clone());
    // Let the writer get going, then snapshot in the middle of its work.
    while committed.load(Ordering::SeqCst) < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = committed.load(Ordering::SeqCst);
    let info = db.store.snapshot(&file).await.unwrap();
    let after = committed.load(Ordering::SeqCst);
    // The writer goes on after the snapshot, proving it ran under load throughout.
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.store(1, Ordering::SeqCst);
    w.await.unwrap();
    assert!(info.bytes > 0 && info.schema_version > 0, "{info:?}");
    assert!(!dir.path().join("stackspin.snapshot.partial").exists());

    let restored = Store::restore_snapshot(&fresh, &file).await.unwrap();
    assert_eq!(restored.schema_version, info.schema_version);
    let copy = Store::connect(&fresh).await.unwrap();
    let rows = written(&copy).await;
    let k = rows.len() as i64;
    assert_eq!(rows, (1..=k).collect::<Vec<_>>(), "a prefix of the commits");
    assert!(
        k >= before && k <= after + 1,
        "committed before {before}, after {after}, snapshot holds {k}"
    );
    let total = written(&db.store).await.len() as i64;
    assert!(total > k, "the writer kept writing: {total} > {k}");
    eprintln!(
        "{}: snapshot of {k} rows ({} bytes) while {total} were written",
        info.backend, info.bytes
    );

    // A restored database works: it takes new writes.
    copy.record_audit(&AuditEvent::new("test.after"))
        .await
        .unwrap();

    // A restore never lands on a database that has data, and a damaged file is refused.
    let err = Store::restore_snapshot(&db.url, &file).await;
    if matches!(db.url, DatabaseUrl::Postgres(_)) {
        assert!(
            err.unwrap_err().to_string().contains("not empty"),
            "a restore into a used PostgreSQL database is refused"
        );
    }
    let cut = dir.path().join("cut.snapshot");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let target = match &fresh {
        DatabaseUrl::Postgres(_) => fresh_postgres_url().await,
        _ => fresh_sqlite_url().0,
    };
    assert!(Store::restore_snapshot(&target, &cut).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_snapshot_under_write_load_restores_every_committed_row() {
    let (fresh, _dir) = fresh_sqlite_url();
    snapshot_under_load(TestDb::sqlite().await, fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_snapshot_under_write_load_restores_every_committed_row() {
    snapshot_under_load(TestDb::postgres().await, fresh_postgres_url().await).await;
}
