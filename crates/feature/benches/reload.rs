//! End to end through a store: the time from a one-flag write to a client evaluating the new
//! definition, with 100 000 flags in the store, and how long evaluations on another thread
//! take meanwhile (they never wait for a reload).
//!
//! The SQLite file is made in a temporary directory; the provider polls it every 5 ms.
//! Each flag is one rule of two clauses serving a 50/50 rollout (the large-document shape).
//!
//! `cargo bench -p feature --features sqlite --bench reload` (BENCH_FLAGS, BENCH_WRITES).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature::{Client, Context};
use feature_core::model::Flag;
use feature_sqlite::{FlagStore, SqliteProvider, SqliteStore};
use feature_store::{flag_definition, Change, ChangeOp, ItemKind};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn flag(i: usize, enabled: bool) -> Flag {
    let mut f: Flag = serde_json::from_value(json!({
        "type": "bool", "default": false, "enabled": enabled, "offVariation": 0,
        "rules": [{"id": format!("r{i}"), "clauses": [
            {"attribute": "plan", "operator": "in", "values": ["pro", format!("team-{}", i % 100)]},
            {"attribute": "country", "operator": "eq", "values": ["DE"]}],
            "rollout": {"bucketBy": "key", "variations": [
                {"variation": 0, "weight": 50000}, {"variation": 1, "weight": 50000}]}}],
        "fallthrough": {"variation": 1},
    }))
    .unwrap();
    f.key = format!("flag-{i:06}");
    f
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(run(env("BENCH_FLAGS", 100_000), env("BENCH_WRITES", 30)));
}

/// A thread evaluating flags until `stop`: how many, and the slowest.
fn spawn_evaluator(
    client: &Client,
    stop: &Arc<AtomicBool>,
    n: usize,
) -> std::thread::JoinHandle<(Duration, u64)> {
    let (client, stop) = (client.clone(), stop.clone());
    std::thread::spawn(move || {
        let ctx = Context::new("user-1")
            .with_attribute("plan", "pro")
            .with_attribute("country", "DE");
        let keys: Vec<String> = (0..n)
            .step_by(997)
            .map(|i| format!("flag-{i:06}"))
            .collect();
        let mut worst = Duration::ZERO;
        let mut count = 0u64;
        while !stop.load(Ordering::Relaxed) {
            for k in &keys {
                let t = Instant::now();
                std::hint::black_box(client.bool(&ctx, k, false));
                worst = worst.max(t.elapsed());
                count += 1;
            }
        }
        (worst, count)
    })
}

async fn run(n: usize, writes: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = SqliteStore::open(&url).await.expect("open");
    let t = Instant::now();
    // In batches: one transaction of 100 000 creates outlasts the store's time limit.
    for start in (0..n).step_by(5000) {
        let changes: Vec<Change> = (start..n.min(start + 5000))
            .map(|i| {
                let f = flag(i, true);
                Change {
                    op: ChangeOp::Create,
                    kind: ItemKind::Flag,
                    key: f.key.clone(),
                    version: None,
                    before: None,
                    after: Some(flag_definition(&f)),
                }
            })
            .collect();
        store
            .apply_changes(&changes, "bench")
            .await
            .expect("create");
    }
    println!("{n} flags written in {:.1} s", t.elapsed().as_secs_f64());

    let provider = SqliteProvider::builder(&url)
        .poll_interval(Duration::from_millis(5))
        .build()
        .expect("provider");
    let t = Instant::now();
    let client = Client::builder()
        .provider(provider)
        .start_timeout(Duration::from_secs(60))
        .build()
        .await
        .expect("client");
    println!("first load: {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
    assert_eq!(client.snapshot().len(), n);

    // Another thread evaluates all along: the slowest evaluation while reloads happen.
    let stop = Arc::new(AtomicBool::new(false));
    let evaluator = spawn_evaluator(&client, &stop, n);

    // The same evaluations without reloads first: the machine's own pauses (scheduling).
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let (idle_worst, idle_count) = evaluator.join().unwrap();
    println!(
        "evaluations on another thread, no reload: {idle_count}, slowest {:.3} ms",
        idle_worst.as_secs_f64() * 1e3
    );
    stop.store(false, Ordering::Relaxed);
    let evaluator = spawn_evaluator(&client, &stop, n);

    let key = format!("flag-{:06}", n / 2);
    let ctx = Context::new("anyone");
    let mut lat = Vec::with_capacity(writes);
    for w in 0..writes {
        let enabled = w % 2 == 1;
        let t = Instant::now();
        store
            .update(&flag(n / 2, enabled), "bench")
            .await
            .expect("update");
        // Off serves variation 0 (false); on, the fallthrough serves true for this context.
        while client.bool(&ctx, &key, !enabled) != enabled {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        lat.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (worst, count) = evaluator.join().unwrap();
    lat.sort();
    let q = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    println!(
        "sqlite write-to-client, {n} flags, {writes} writes: p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        q(0.5).as_secs_f64() * 1e3,
        q(0.9).as_secs_f64() * 1e3,
        q(1.0).as_secs_f64() * 1e3
    );
    println!(
        "evaluations on another thread during the writes: {count}, slowest {:.3} ms",
        worst.as_secs_f64() * 1e3
    );
    client.close().await;
    store.close().await;
}
