//! Figures, not a pass/fail test (ignored by default; `scripts/bench-operator` runs it): ten
//! apps installed at once on the test bed, each from the loopback chart repository (the
//! stand-in for the real chart repositories). Prints the time until all ten are ready, how
//! long one round takes when all is in place, and the memory of this process (the operator
//! and its Kubernetes client, nothing else is running in it).
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use stackspin_catalog::Catalog;
use stackspin_storage::AppState;
use stackspin_storage::testing::TestDb;
use stackspin_testbed::platform::hello_catalog_files;
use stackspin_testbed::{ChartRepo, ChartVersion, TestBed};
use support::*;

const APPS: usize = 10;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn ten_apps(url: &str) -> Arc<Catalog> {
    let mut files = Vec::new();
    for (path, text) in hello_catalog_files(url) {
        for i in 0..APPS {
            let text = text
                .replace(
                    "name = \"hello\"\ntitle = \"Hello\"",
                    &format!("name = \"hello{i}\"\ntitle = \"Hello {i}\""),
                )
                .replace(
                    "subdomain = \"hello\"",
                    &format!("subdomain = \"hello{i}\""),
                )
                .replace(
                    "name = \"hello-data\"",
                    &format!("name = \"hello{i}-data\""),
                );
            files.push((path.replacen("hello/", &format!("hello{i}/"), 1), text));
        }
    }
    Arc::new(Catalog::from_files(files.iter().map(|(p, t)| (p.as_str(), t.as_str()))).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run by scripts/bench-operator"]
async fn ten_apps_reconcile() {
    let _turn = TURN.lock().await;
    let bed = TestBed::get().unwrap();
    let client = bed.client().await.unwrap();
    install_platform_crds(bed).unwrap();
    clean(&client).await.unwrap();
    let repo = ChartRepo::serve(&[ChartVersion::new("hello", "0.1.0")])
        .await
        .unwrap();
    let db = TestDb::sqlite().await;
    let store = &db.store;
    let op = operator(client.clone(), store, ten_apps(&repo.url), "bench");
    op.reconcile().await.unwrap();
    let idle = rss_kib();

    let started = Instant::now();
    for i in 0..APPS {
        store
            .request_install(&format!("hello{i}"), None, true, "0.1.0")
            .await
            .unwrap();
    }
    let first = Instant::now();
    let round = op.reconcile().await.unwrap();
    let first_round = first.elapsed();
    assert!(round.problems.is_empty(), "{:?}", round.problems);
    let mut rounds = 1;
    loop {
        let round = op.reconcile().await.unwrap();
        rounds += 1;
        let ready = round
            .states
            .values()
            .filter(|s| **s == AppState::Ready)
            .count();
        if ready == APPS {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "not ready: {:?}",
            round.states
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let to_ready = started.elapsed();
    let peak = rss_kib();
    let mut steady = Vec::new();
    let mut applied = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let round = op.reconcile().await.unwrap();
        steady.push(t.elapsed());
        // Server-side apply of an unchanged object changes nothing on the server; the round
        // still sends every object (level-triggered), which this counts.
        applied = round.applied;
    }
    steady.sort();
    println!(
        "operator, {APPS} apps on the test bed: all ready in {:.1} s ({rounds} rounds); first \
         round (apply everything) {:.0} ms; a round with all in place {:.0} ms (median of 5, \
         {applied} objects sent); RSS of the process {:.1} MiB before, {:.1} MiB after",
        to_ready.as_secs_f64(),
        first_round.as_secs_f64() * 1000.0,
        steady[2].as_secs_f64() * 1000.0,
        idle as f64 / 1024.0,
        peak as f64 / 1024.0,
    );
    for i in 0..APPS {
        store
            .request_uninstall(&format!("hello{i}"), true)
            .await
            .unwrap();
    }
    for _ in 0..600 {
        op.reconcile().await.unwrap();
        if store.installed_apps().await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
