//! `Client::new` with the PostgreSQL and Redis providers, configured from the environment's
//! variables (crate features `postgres` and `redis`; the servers of scripts/test.sh).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run
#![cfg(all(feature = "postgres", feature = "redis"))]

use feature::providers::postgres::{FlagStore, PostgresStore};
use feature::{Client, Config, ErrorKind, Flag, Reason};
use std::time::Duration;

mod common;
use common::up;

/// The configuration `vars` give (they are valid in every test here).
fn config(vars: &[(&str, &str)]) -> Config {
    common::config(vars).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_new_builds_the_postgres_provider_and_the_redis_cache_from_config() {
    if !up("127.0.0.1:5432") || !up("127.0.0.1:6379") {
        eprintln!("skipping: PostgreSQL or Redis unreachable");
        return;
    }
    let pg = std::env::var("FEATURE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/test".into());
    let redis =
        std::env::var("FEATURE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let table = format!("t_facade_{:08x}", std::process::id());
    let prefix = format!("test:facade:{}", std::process::id());
    let store = PostgresStore::connect(&pg, &table).await.unwrap();
    store
        .create(&Flag::boolean("from-db", true), "test")
        .await
        .unwrap();

    let c = Client::new(config(&[
        ("FEATURE_PROVIDER", "postgres"),
        ("FEATURE_POSTGRES_URL", &pg),
        ("FEATURE_TABLE", &table),
    ]))
    .await
    .unwrap();
    let user = feature::Context::new("u");
    assert!(c.bool(&user, "from-db", false));
    assert_eq!(c.provider_name(), "postgres");
    let cached = Client::new(config(&[
        ("FEATURE_PROVIDER", "redis"),
        ("FEATURE_REDIS_URL", &redis),
        ("FEATURE_REDIS_PREFIX", &prefix),
        ("FEATURE_POSTGRES_URL", &pg),
        ("FEATURE_TABLE", &table),
    ]))
    .await
    .unwrap();
    assert!(
        cached.bool(&user, "from-db", false),
        "read through Redis from PostgreSQL"
    );
    store.disable("from-db", "test").await.unwrap();
    let mut changes = c.subscribe();
    tokio::time::timeout(Duration::from_secs(10), changes.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !c.bool(&user, "from-db", true)
            || c.snapshot().flag("from-db").is_some_and(|f| !f.enabled())
    );
    c.close().await;
    cached.close().await;
    // Clean up the test's keys and tables.
    if let Ok(mut r) = redis::Client::open(redis.as_str()).and_then(|c| c.get_connection()) {
        for k in ["flags", "segments", "revs", "version", "fill", "audit"] {
            let _: Result<(), _> = redis::cmd("DEL").arg(format!("{prefix}:{k}")).query(&mut r);
        }
    }
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&pg)
        .await
        .unwrap();
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}, {table}_segments, {table}_audit, {table}_audit_head, {table}_tokens, {table}_migrations CASCADE; DROP FUNCTION IF EXISTS {table}_changed() CASCADE; DROP FUNCTION IF EXISTS {table}_truncated(), {table}_audit_chain(), {table}_audit_guard(), {table}_audit_commit() CASCADE;"))).execute(&mut conn).await;
}

#[tokio::test]
async fn a_store_down_at_start_gives_a_client_that_serves_defaults_not_ready() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/none");
    let c = Client::new(config(&[
        ("FEATURE_PROVIDER", "postgres"),
        ("FEATURE_POSTGRES_URL", &url),
    ]))
    .await
    .unwrap();
    assert!(!c.is_ready());
    let e = c.variation(&feature::Context::new("u"), "anything");
    assert_eq!(
        e.reason,
        Reason::Error {
            error_kind: ErrorKind::ClientNotReady
        }
    );
    assert_eq!(
        c.provider_status().state,
        feature::ProviderState::Unavailable
    );
    c.close().await;
    let e = Client::new(config(&[
        ("FEATURE_PROVIDER", "postgres"),
        ("FEATURE_TABLE", "x; drop"),
    ]))
    .await
    .unwrap_err();
    assert!(e.to_string().contains("FEATURE_POSTGRES_URL"), "{e}");
    let e = Client::new(config(&[
        ("FEATURE_PROVIDER", "postgres"),
        ("FEATURE_POSTGRES_URL", &url),
        ("FEATURE_TABLE", "x; drop"),
    ]))
    .await
    .unwrap_err();
    assert!(e.to_string().contains("FEATURE_TABLE"), "{e}");
}
