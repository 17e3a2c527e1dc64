//! Write latency and write-to-visible latency on an SQLite file: one writer changes a flag
//! through `SqliteStore`; N providers (each on its own connection pool, as N instances on the
//! machine) poll the file. Prints p50/p90/p99/max of the write call alone, and of the time from
//! the write call until the last provider published the change (what a `Client` swaps in).
//!
//! `cargo bench -p feature-sqlite --bench propagation` (BENCH_CLIENTS / BENCH_WRITES the
//! sizes; the file is created in a temporary directory).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature_core::model::Flag;
use feature_core::provider::{Provider, Sink};
use feature_sqlite::{FlagStore, SqliteProvider, SqliteStore};
use feature_store::testing::RecordingSink;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(run(env("BENCH_CLIENTS", 8), env("BENCH_WRITES", 200)));
}

async fn run(clients: usize, writes: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = SqliteStore::open(&url).await.expect("open");
    // A realistic set: 100 flags, one of which changes.
    for i in 0..100 {
        store
            .create(&Flag::constant(format!("flag-{i}"), json!(i)), "bench")
            .await
            .expect("create");
    }
    for key in ["hot", "cold"] {
        store
            .create(&Flag::constant(key, json!(0)), "bench")
            .await
            .expect("create");
    }

    // The write alone: update, audit row, commit (fsync of the WAL), back to back.
    let mut lat = Vec::with_capacity(writes);
    for i in 1..=writes {
        let t = Instant::now();
        store
            .update(&Flag::constant("cold", json!(i)), "bench")
            .await
            .expect("update");
        lat.push(t.elapsed());
    }
    report("sqlite write (update + audit row + commit)", 0, &mut lat);

    let mut sinks = Vec::new();
    let mut providers = Vec::new();
    for _ in 0..clients {
        let p = SqliteProvider::builder(&url).build().expect("provider");
        let s = RecordingSink::new();
        p.start(s.clone() as Arc<dyn Sink>).await.expect("start");
        providers.push(p);
        sinks.push(s);
    }
    let mut lat = Vec::with_capacity(writes);
    for i in 1..=writes {
        let t = Instant::now();
        store
            .update(&Flag::constant("hot", json!(i)), "bench")
            .await
            .expect("update");
        for s in &sinks {
            assert!(
                s.wait_value(Duration::from_secs(5), "hot", Some(json!(i)))
                    .await,
                "change not seen"
            );
        }
        lat.push(t.elapsed());
        // Writes at random points of the poll cycle, as a person's or a script's would be.
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..200))).await;
    }
    report("sqlite write-to-visible", clients, &mut lat);
    for p in &providers {
        p.close().await;
    }
    store.close().await;
}

fn report(name: &str, clients: usize, lat: &mut [Duration]) {
    lat.sort();
    let q = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    let clients = if clients == 0 {
        String::new()
    } else {
        format!("{clients} clients, ")
    };
    println!(
        "{name}: {clients}{} writes: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        q(0.50).as_secs_f64() * 1e3,
        q(0.90).as_secs_f64() * 1e3,
        q(0.99).as_secs_f64() * 1e3,
        q(1.0).as_secs_f64() * 1e3,
    );
}
