//! The Redis provider and stores against real servers: the shared test server for most tests,
//! a private `redis-server` for the test that kills it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

mod common;

use common::{pg_url, redis_url, Prefix, PrivateRedis, WAIT};
use feature_core::model::Flag;
use feature_core::provider::{Provider, ProviderState, Sink};
use feature_redis::{CachedStore, FlagStore, ItemKind, RedisProvider, RedisStore, WriteError};
use feature_store::testing::RecordingSink;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

async fn client(builder: feature_redis::RedisBuilder) -> (RedisProvider, Arc<RecordingSink>) {
    let p = builder
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
        .build()
        .unwrap();
    let s = RecordingSink::new();
    p.start(s.clone() as Arc<dyn Sink>).await.unwrap();
    (p, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_seen_by_every_connected_client() {
    let Some(url) = redis_url() else { return };
    let px = Prefix::new(&url, "seen");
    let store = RedisStore::new(&url, &px.prefix).unwrap();
    store
        .create(&Flag::boolean("dark-mode", false), "alice")
        .await
        .unwrap();
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(client(RedisProvider::builder(&url).prefix(&px.prefix)).await);
    }
    for (p, s) in &clients {
        assert_eq!(p.status().state, ProviderState::Ready);
        assert_eq!(s.value("dark-mode"), Some(json!(false)));
        assert!(
            p.cache_stats().is_none(),
            "Redis as the store is not a cache"
        );
    }
    store
        .update(&Flag::boolean("dark-mode", true), "alice")
        .await
        .unwrap();
    for (_, s) in &clients {
        assert!(s.wait_value(WAIT, "dark-mode", Some(json!(true))).await);
    }
    store.disable("dark-mode", "bob").await.unwrap();
    for (_, s) in &clients {
        assert!(
            s.wait_for(WAIT, |snap| snap
                .flag("dark-mode")
                .is_some_and(|f| !f.enabled()))
                .await
        );
    }
    store.delete("dark-mode", "bob").await.unwrap();
    for (_, s) in &clients {
        assert!(
            s.wait_for(WAIT, |snap| snap.flag("dark-mode").is_none())
                .await
        );
    }
    // History: who, when, before, after; versions continue across delete and re-create.
    store
        .create(&Flag::boolean("dark-mode", true), "carol")
        .await
        .unwrap();
    let h = store
        .history(ItemKind::Flag, "dark-mode", 10)
        .await
        .unwrap();
    let summary: Vec<_> = h
        .iter()
        .map(|e| (e.action.as_str(), e.actor.as_str(), e.version))
        .collect();
    assert_eq!(
        summary,
        [
            ("create", "carol", 5),
            ("delete", "bob", 4),
            ("disable", "bob", 3),
            ("update", "alice", 2),
            ("create", "alice", 1)
        ]
    );
    assert_eq!(h[3].before, Some(json!({"type": "bool", "default": false})));
    assert_eq!(h[3].after, Some(json!({"type": "bool", "default": true})));
    assert_eq!(h[1].after, None);
    // Paging: pages of 2 follow each other without gaps or repeats; an entry is found by id.
    let p1 = store
        .history_page(ItemKind::Flag, "dark-mode", 2, None)
        .await
        .unwrap();
    let p2 = store
        .history_page(ItemKind::Flag, "dark-mode", 2, Some(&p1[1].id))
        .await
        .unwrap();
    let p3 = store
        .history_page(ItemKind::Flag, "dark-mode", 2, Some(&p2[1].id))
        .await
        .unwrap();
    let paged: Vec<u64> = [p1, p2, p3].concat().iter().map(|e| e.version).collect();
    assert_eq!(paged, [5, 4, 3, 2, 1]);
    let found = store
        .history_entry(ItemKind::Flag, "dark-mode", &h[3].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.after, Some(json!({"type": "bool", "default": true})));
    assert!(matches!(
        store
            .history_page(ItemKind::Flag, "dark-mode", 2, Some("x"))
            .await,
        Err(WriteError::BadName { what: "before", .. })
    ));
    for (p, _) in &clients {
        p.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_bad_fields() {
    let Some(url) = redis_url() else { return };
    let px = Prefix::new(&url, "conc");
    let store = RedisStore::new(&url, &px.prefix).unwrap();
    store
        .create(&Flag::boolean("shared", true), "setup")
        .await
        .unwrap();
    let (p, s) = client(RedisProvider::builder(&url).prefix(&px.prefix)).await;
    let mut tasks = Vec::new();
    for w in 0..6 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let actor = format!("w{w}");
            let mut n = 0;
            for i in 0..10 {
                n += store.enable("shared", &actor).await.unwrap().changed as u64;
                n += store.disable("shared", &actor).await.unwrap().changed as u64;
                let f = Flag::constant(format!("own-{w}"), json!(i));
                if i == 0 {
                    store.create(&f, &actor).await.unwrap();
                } else {
                    store.update(&f, &actor).await.unwrap();
                }
            }
            n
        }));
    }
    let mut changes = 0;
    for t in tasks {
        changes += t.await.unwrap();
    }
    let shared = store.row(ItemKind::Flag, "shared").await.unwrap().unwrap();
    assert_eq!(shared.version, 1 + changes);
    assert_eq!(
        store
            .history(ItemKind::Flag, "shared", 10_000)
            .await
            .unwrap()
            .len() as u64,
        1 + changes
    );
    let mut stale = Flag::boolean("shared", false);
    stale.version = Some(1);
    assert!(matches!(
        store.update(&stale, "x").await,
        Err(WriteError::Conflict { .. })
    ));
    assert!(
        s.wait_for(WAIT, |snap| (0..6)
            .all(|w| snap.flag(&format!("own-{w}")).is_some())
            && snap.document().flags.get("shared").and_then(|f| f.version)
                == Some(shared.version))
            .await
    );

    // A field written by hand that is not a flag is reported with its key and skipped.
    let mut c = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(format!("{}:flags", px.prefix))
        .arg("junk")
        .arg("{not json")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("PUBLISH")
        .arg(format!("{}:changes", px.prefix))
        .arg(r#"{"kind":"flag","key":"junk"}"#)
        .query_async(&mut c)
        .await
        .unwrap();
    let t = std::time::Instant::now();
    while p.status().state != ProviderState::Degraded && t.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(p.status().state, ProviderState::Degraded);
    let err = p.status().last_error.unwrap().0.to_string();
    assert!(err.contains("junk"), "{err}");
    assert!(
        s.snapshot().unwrap().flag("shared").is_some(),
        "the other flags stay"
    );
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_a_cache_in_front_of_postgres_hits_and_misses_are_counted() {
    let (Some(url), Some(pg)) = (redis_url(), pg_url()) else {
        return;
    };
    let px = Prefix::new(&url, "cache");
    let table = format!("t_cache_{:08x}", fastrand::u32(..));
    let origin = Arc::new(
        feature_postgres::PostgresStore::connect(&pg, &table)
            .await
            .unwrap(),
    );
    let _drop = DropPg {
        url: pg.clone(),
        table: table.clone(),
    };
    origin
        .create(&Flag::boolean("a", true), "alice")
        .await
        .unwrap();
    origin
        .create(&Flag::boolean("b", false), "alice")
        .await
        .unwrap();
    let writer = CachedStore::new(origin.clone(), &url, &px.prefix).unwrap();

    // First instance: the cache is empty, so both flags are misses, read from PostgreSQL,
    // and the cache gets filled.
    let (p1, s1) = client(
        RedisProvider::builder(&url)
            .prefix(&px.prefix)
            .cache_for(origin.clone()),
    )
    .await;
    assert_eq!(s1.value("a"), Some(json!(true)));
    assert_eq!((s1.metrics.get("miss:a"), s1.metrics.get("miss:b")), (1, 1));
    assert_eq!(s1.metrics.sum("hit:"), 0);
    let st = p1.cache_stats().unwrap();
    assert_eq!((st.hits, st.misses, st.size, st.filled), (0, 2, 2, true));

    // Second instance: the cache is filled, so both are hits and PostgreSQL is not read.
    let (p2, s2) = client(
        RedisProvider::builder(&url)
            .prefix(&px.prefix)
            .cache_for(origin.clone()),
    )
    .await;
    assert_eq!((s2.metrics.get("hit:a"), s2.metrics.get("hit:b")), (1, 1));
    assert_eq!(s2.metrics.sum("miss:"), 0);
    assert_eq!(p2.cache_stats().unwrap().hit_rate(), 1.0);

    // A write through the cached store lands in PostgreSQL (with its audit) and both
    // instances see it from the cache: one hit each.
    writer
        .update(&Flag::boolean("b", true), "bob")
        .await
        .unwrap();
    for s in [&s1, &s2] {
        assert!(s.wait_value(WAIT, "b", Some(json!(true))).await);
    }
    assert_eq!((s1.metrics.get("miss:b"), s2.metrics.get("miss:b")), (1, 0));
    assert_eq!(s2.metrics.get("hit:b"), 2);
    assert_eq!(
        origin.history(ItemKind::Flag, "b", 10).await.unwrap()[0].actor,
        "bob"
    );

    // The cache is flushed (as after a restart without persistence): the next change is a
    // miss, read from PostgreSQL, and the cache is filled again.
    let mut c = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("{}:version", px.prefix))
        .query_async(&mut c)
        .await
        .unwrap();
    writer.disable("a", "carol").await.unwrap();
    for s in [&s1, &s2] {
        assert!(
            s.wait_for(WAIT, |snap| snap.flag("a").is_some_and(|f| !f.enabled()))
                .await
        );
    }
    assert_eq!(s2.metrics.get("miss:a"), 1);
    p1.close().await;
    p2.close().await;
}

struct DropPg {
    url: String,
    table: String,
}

impl Drop for DropPg {
    fn drop(&mut self) {
        let (url, t) = (self.url.clone(), self.table.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&url).await {
                    let sql = format!("DROP TABLE IF EXISTS {t}, {t}_segments, {t}_audit, {t}_audit_head, {t}_tokens, {t}_migrations CASCADE; DROP FUNCTION IF EXISTS {t}_changed() CASCADE; DROP FUNCTION IF EXISTS {t}_truncated(), {t}_audit_chain(), {t}_audit_guard(), {t}_audit_commit() CASCADE;");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut c).await;
                }
            });
        }).join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_and_restarted_mid_run_clients_keep_serving_then_resync() {
    let Some(mut server) = PrivateRedis::new() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("boot.yaml");
    std::fs::write(&boot, "flags:\n  from-file: {default: 1}\n").unwrap();
    // Down at start: bootstrap file, or not ready.
    let b = RedisProvider::builder(server.url()).start_timeout(Duration::from_millis(300));
    let (pb, sb) = client(b.clone().bootstrap_file(&boot)).await;
    let (pn, sn) = client(b).await;
    assert_eq!(pb.status().state, ProviderState::Degraded);
    assert_eq!(sb.value("from-file"), Some(json!(1)));
    assert_eq!(pn.status().state, ProviderState::Unavailable);
    assert!(sn.snapshot().is_none());

    server.start();
    let store = RedisStore::new(&server.url(), "feature").unwrap();
    store
        .create(&Flag::boolean("checkout", true), "alice")
        .await
        .unwrap();
    for s in [&sb, &sn] {
        assert!(
            s.wait_value(WAIT, "checkout", Some(json!(true))).await,
            "no recovery after start"
        );
    }
    let mut clients = vec![(pb, sb), (pn, sn)];
    for _ in 0..2 {
        let p = RedisProvider::builder(server.url())
            .backoff(Duration::from_millis(1500), Duration::from_secs(2))
            .build()
            .unwrap();
        let s = RecordingSink::new();
        p.start(s.clone() as Arc<dyn Sink>).await.unwrap();
        clients.push((p, s));
    }
    server.kill();
    for (p, s) in &clients {
        let t = std::time::Instant::now();
        while p.status().state != ProviderState::Degraded && t.elapsed() < WAIT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(p.status().state, ProviderState::Degraded);
        assert!(!p.status().connected);
        assert_eq!(s.value("checkout"), Some(json!(true)), "keeps serving");
    }
    server.start();
    // Changed before the slow clients reconnect: their pub/sub messages are lost.
    store.disable("checkout", "bob").await.unwrap();
    store
        .create(&Flag::constant("added", json!("x")), "bob")
        .await
        .unwrap();
    for (p, s) in &clients {
        assert!(
            s.wait_for(WAIT, |snap| snap
                .flag("checkout")
                .is_some_and(|f| !f.enabled())
                && snap.flag("added").is_some())
                .await,
            "no resync"
        );
        let t = std::time::Instant::now();
        while p.status().state != ProviderState::Ready && t.elapsed() < WAIT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(p.status().connected);
    }
    store
        .update(&Flag::constant("added", json!("y")), "bob")
        .await
        .unwrap();
    for (p, s) in &clients {
        assert!(
            s.wait_value(WAIT, "added", Some(json!("y"))).await,
            "live updates after reconnect"
        );
        p.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_keep_the_token_store_contract() {
    let Some(url) = redis_url() else {
        return;
    };
    let prefix = Prefix::new(&url, "tokens");
    let store = RedisStore::new(&url, &prefix.prefix).unwrap();
    feature_store::tokens::check_token_store(&store).await;
    // An insert retried after a lost reply succeeds once; another token under the same id is
    // refused.
    use feature_store::tokens::{mint, Scope, TokenStore};
    let (record, _) = mint("retry", Scope::Read, "t").unwrap();
    store.insert_token(&record).await.unwrap();
    store.insert_token(&record).await.unwrap();
    let (mut other, _) = mint("other", Scope::Admin, "t").unwrap();
    other.id = record.id.clone();
    assert!(store.insert_token(&other).await.is_err());
    let held = store.token(&record.id).await.unwrap().unwrap();
    assert_eq!((held.name.as_str(), held.scope), ("retry", Scope::Read));
    assert_eq!(store.tokens().await.unwrap().len(), 3);
}
