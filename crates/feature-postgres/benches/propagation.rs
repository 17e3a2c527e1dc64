//! Write-to-visible latency: one writer changes a flag through `PostgresStore`; N providers
//! (separate connections, as N instances) wait for the change. Prints p50/p90/p99/max of the
//! time from the write call until the last client published it.
//!
//! `cargo bench -p feature-postgres --bench propagation` (needs the test server;
//! FEATURE_TEST_POSTGRES_URL overrides the URL; BENCH_CLIENTS / BENCH_WRITES the sizes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature_core::model::Flag;
use feature_core::provider::{Provider, Sink};
use feature_postgres::{FlagStore, PostgresProvider, PostgresStore};
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
    let url = std::env::var("FEATURE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/test".into());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(run(&url, env("BENCH_CLIENTS", 8), env("BENCH_WRITES", 300)));
}

async fn run(url: &str, clients: usize, writes: usize) {
    let table = format!("bench_{:08x}", std::process::id());
    let store = match PostgresStore::connect(url, &table).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipping: cannot reach PostgreSQL: {e}");
            return;
        }
    };
    // A realistic set: 100 flags, one of which changes.
    for i in 0..100 {
        let _ = store
            .create(&Flag::constant(format!("flag-{i}"), json!(i)), "bench")
            .await;
    }
    store
        .create(&Flag::constant("hot", json!(0)), "bench")
        .await
        .expect("create");
    let mut sinks = Vec::new();
    let mut providers = Vec::new();
    for _ in 0..clients {
        let p = PostgresProvider::builder(url)
            .table(&table)
            .build()
            .expect("provider");
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
    }
    report("postgres", clients, &mut lat);
    for p in &providers {
        p.close().await;
    }
    use sqlx::Connection;
    if let Ok(mut c) = sqlx::PgConnection::connect(url).await {
        let t = &table;
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {t}, {t}_segments, {t}_audit, {t}_audit_head, {t}_migrations CASCADE; DROP FUNCTION IF EXISTS {t}_changed() CASCADE; DROP FUNCTION IF EXISTS {t}_truncated(), {t}_audit_chain(), {t}_audit_guard(), {t}_audit_commit() CASCADE;"))).execute(&mut c).await;
    }
}

fn report(name: &str, clients: usize, lat: &mut [Duration]) {
    lat.sort();
    let q = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    println!(
        "{name}: write-to-visible, {clients} clients, {} writes: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        q(0.50).as_secs_f64() * 1e3,
        q(0.90).as_secs_f64() * 1e3,
        q(0.99).as_secs_f64() * 1e3,
        q(1.0).as_secs_f64() * 1e3,
    );
}
