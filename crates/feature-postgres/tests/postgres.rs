//! The PostgreSQL provider and store against real servers: the shared test server for most
//! tests, private throwaway servers for the tests that stop the server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

mod common;

use common::{shared_url, unique_table, DropTables, PrivatePg};
use feature_core::model::{Flag, FlagDocument, Segment};
use feature_core::provider::{Provider, ProviderState, Sink};
use feature_core::{parse_document, Format};
use feature_postgres::{
    push, FlagStore, ItemKind, PostgresProvider, PostgresStore, PushOptions, WriteError,
    SCHEMA_VERSION,
};
use feature_store::testing::RecordingSink;
use serde_json::{json, Value};
use sqlx::Connection;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

async fn setup(tag: &str) -> Option<(String, String, DropTables, PostgresStore)> {
    let url = shared_url()?;
    let table = unique_table(tag);
    let guard = DropTables {
        url: url.clone(),
        table: table.clone(),
    };
    let store = PostgresStore::connect(&url, &table).await.expect("connect");
    Some((url, table, guard, store))
}

async fn client(url: &str, table: &str) -> (PostgresProvider, Arc<RecordingSink>) {
    let provider = PostgresProvider::builder(url)
        .table(table)
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
        .build()
        .expect("provider");
    let sink = RecordingSink::new();
    provider
        .start(sink.clone() as Arc<dyn Sink>)
        .await
        .expect("start");
    (provider, sink)
}

async fn sql(url: &str, statement: &str) {
    let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(&mut c)
        .await
        .expect(statement);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_seen_by_every_connected_client() {
    let Some((url, table, _g, store)) = setup("seen").await else {
        return;
    };
    store
        .create(&Flag::boolean("dark-mode", false), "alice")
        .await
        .unwrap();
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(client(&url, &table).await);
    }
    for (p, s) in &clients {
        assert_eq!(p.status().state, ProviderState::Ready);
        assert!(p.status().connected);
        assert_eq!(s.value("dark-mode"), Some(json!(false)));
    }

    store
        .update(&Flag::boolean("dark-mode", true), "alice")
        .await
        .unwrap();
    for (_, s) in &clients {
        assert!(
            s.wait_value(WAIT, "dark-mode", Some(json!(true))).await,
            "update not seen"
        );
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
    let mut seg = Segment {
        key: "beta".into(),
        included: vec!["user".into()],
        ..Default::default()
    };
    store.put_segment(&seg, "carol").await.unwrap();
    let targeted: Flag = serde_json::from_value(json!({
        "key": "beta-banner", "type": "bool", "default": false,
        "rules": [{"clauses": [{"attribute": "key", "operator": "segmentMatch", "values": ["beta"]}], "variation": 1}]
    })).unwrap();
    store.create(&targeted, "carol").await.unwrap();
    for (_, s) in &clients {
        assert!(
            s.wait_value(WAIT, "beta-banner", Some(json!(true))).await,
            "segment targeting not seen"
        );
    }
    seg.included.clear();
    store.put_segment(&seg, "carol").await.unwrap();
    for (_, s) in &clients {
        assert!(
            s.wait_value(WAIT, "beta-banner", Some(json!(false))).await,
            "segment change not seen"
        );
    }
    store.delete("dark-mode", "bob").await.unwrap();
    for (_, s) in &clients {
        assert!(
            s.wait_for(WAIT, |snap| snap.flag("dark-mode").is_none())
                .await,
            "delete not seen"
        );
    }
    // A change made by hand in SQL is seen too.
    sql(&url, &format!("UPDATE {table} SET definition = '{{\"default\": \"by-hand\"}}', version = version + 1 WHERE key = 'beta-banner'")).await;
    for (_, s) in &clients {
        assert!(
            s.wait_value(WAIT, "beta-banner", Some(json!("by-hand")))
                .await
        );
    }
    for (p, _) in &clients {
        p.close().await;
        assert_eq!(p.status().state, ProviderState::Closed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_twice_or_concurrently_are_harmless() {
    let Some((url, table, _g, store)) = setup("migr").await else {
        return;
    };
    store
        .create(&Flag::boolean("kept", true), "alice")
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (u, t) = (url.clone(), table.clone());
        tasks.push(tokio::spawn(async move {
            PostgresStore::connect(&u, &t).await.map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
    let versions: Vec<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT version FROM {table}_migrations ORDER BY version"
    )))
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    let triggers: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM pg_trigger WHERE tgname = '{table}_changed'"
    )))
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(triggers, 2, "one change trigger per table, not duplicated");
    let row = store
        .row(ItemKind::Flag, "kept")
        .await
        .unwrap()
        .expect("data survives");
    assert_eq!(row.version, 1);
    // Still live after re-running: a client sees a new write.
    let (p, s) = client(&url, &table).await;
    store
        .create(&Flag::boolean("after", true), "alice")
        .await
        .unwrap();
    assert!(s.wait_value(WAIT, "after", Some(json!(true))).await);
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_are_reported_with_their_key_and_skipped() {
    let Some((url, table, _g, store)) = setup("bad").await else {
        return;
    };
    store
        .create(&Flag::boolean("good", true), "alice")
        .await
        .unwrap();
    sql(&url, &format!("INSERT INTO {table} (key, definition) VALUES ('typo', '{{\"defualt\": true}}'), ('wrong-type', '{{\"type\": \"bool\", \"variants\": [{{\"value\": 3}}]}}')")).await;
    let (p, s) = client(&url, &table).await;
    assert_eq!(s.value("good"), Some(json!(true)));
    let snap = s.snapshot().unwrap();
    assert!(snap.flag("typo").is_none() && snap.flag("wrong-type").is_none());
    let st = p.status();
    assert_eq!(st.state, ProviderState::Degraded);
    let err = st.last_error.expect("reported").0.to_string();
    assert!(err.contains("typo") || err.contains("wrong-type"), "{err}");
    assert!(s.metrics.get("error:decode:invalid_row") >= 1);

    // A good flag turned bad by hand disappears; the rest stays; fixing it brings it back.
    sql(
        &url,
        &format!("UPDATE {table} SET definition = '[1, 2]' WHERE key = 'good'"),
    )
    .await;
    assert!(s.wait_for(WAIT, |snap| snap.flag("good").is_none()).await);
    sql(&url, &format!("DELETE FROM {table} WHERE key IN ('typo', 'wrong-type'); UPDATE {table} SET definition = '{{\"default\": 7}}' WHERE key = 'good'")).await;
    assert!(s.wait_value(WAIT, "good", Some(json!(7))).await);
    assert_eq!(p.status().state, ProviderState::Ready);
    assert!(p.status().last_error.is_none());

    // The write API refuses bad definitions up front.
    let bad: Flag =
        serde_json::from_value(json!({"key": "x", "type": "bool", "variants": [{"value": "no"}]}))
            .unwrap();
    assert!(matches!(
        store.create(&bad, "alice").await,
        Err(WriteError::Invalid { .. })
    ));
    assert!(matches!(
        store.create(&Flag::boolean("y", true), "").await,
        Err(WriteError::BadName { what: "actor", .. })
    ));
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_keep_the_token_store_contract() {
    let Some((_url, _table, _g, store)) = setup("tokens").await else {
        return;
    };
    feature_store::tokens::check_token_store(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_rows_record_who_when_before_and_after() {
    let Some((url, table, _g, store)) = setup("audit").await else {
        return;
    };
    let w = store
        .create(&Flag::boolean("f", false), "alice")
        .await
        .unwrap();
    assert_eq!((w.version, w.changed), (1, true));
    assert_eq!(
        w.row.as_ref().and_then(|r| r.updated_by.as_deref()),
        Some("alice")
    );
    store
        .update(&Flag::boolean("f", true), "bob")
        .await
        .unwrap();
    assert!(
        !store
            .update(&Flag::boolean("f", true), "bob")
            .await
            .unwrap()
            .changed,
        "no-op update"
    );
    store.disable("f", "carol").await.unwrap();
    assert!(
        !store.disable("f", "carol").await.unwrap().changed,
        "no-op disable"
    );
    store.enable("f", "dave").await.unwrap();
    let d = store.delete("f", "erin").await.unwrap();
    assert_eq!(d.version, 5);
    let again = store
        .create(&Flag::boolean("f", true), "frank")
        .await
        .unwrap();
    assert_eq!(
        again.version, 6,
        "versions keep counting across delete and re-create"
    );
    sql(&url, &format!("UPDATE {table} SET definition = '{{\"default\": 1}}', version = version + 1 WHERE key = 'f'")).await;

    let h = store.history(ItemKind::Flag, "f", 100).await.unwrap();
    let summary: Vec<(String, String, u64)> = h
        .iter()
        .map(|e| (e.action.clone(), e.actor.clone(), e.version))
        .collect();
    let expect = [
        ("update", "postgres", 7),
        ("create", "frank", 6),
        ("delete", "erin", 5),
        ("enable", "dave", 4),
        ("disable", "carol", 3),
        ("update", "bob", 2),
        ("create", "alice", 1),
    ];
    assert_eq!(
        summary,
        expect.map(|(a, b, c)| (a.to_owned(), b.to_owned(), c))
    );
    let create = &h[6];
    assert_eq!(create.before, None);
    assert_eq!(
        create.after,
        Some(json!({"type": "bool", "default": false}))
    );
    assert_eq!(h[5].before, Some(json!({"type": "bool", "default": false})));
    assert_eq!(h[5].after, Some(json!({"type": "bool", "default": true})));
    assert_eq!(
        h[4].after,
        Some(json!({"type": "bool", "default": true, "enabled": false}))
    );
    assert_eq!(h[2].after, None);
    assert!(
        h.iter().all(|e| e.at.len() == 24 && e.at.ends_with('Z')),
        "{:?}",
        h[0].at
    );
    assert!(h.windows(2).all(|w| w[0].at >= w[1].at));
    assert_eq!(
        store.history(ItemKind::Flag, "f", 2).await.unwrap().len(),
        2
    );
    assert!(store
        .history(ItemKind::Flag, "nope", 10)
        .await
        .unwrap()
        .is_empty());
    // Paging: pages of 3 follow each other without gaps or repeats; an entry is found by id.
    let p1 = store
        .history_page(ItemKind::Flag, "f", 3, None)
        .await
        .unwrap();
    let p2 = store
        .history_page(ItemKind::Flag, "f", 3, Some(&p1[2].id))
        .await
        .unwrap();
    let p3 = store
        .history_page(ItemKind::Flag, "f", 3, Some(&p2[2].id))
        .await
        .unwrap();
    let paged: Vec<u64> = [p1, p2, p3].concat().iter().map(|e| e.version).collect();
    assert_eq!(paged, [7, 6, 5, 4, 3, 2, 1]);
    let found = store
        .history_entry(ItemKind::Flag, "f", &h[5].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.after, Some(json!({"type": "bool", "default": true})));
    assert!(matches!(
        store.history_page(ItemKind::Flag, "f", 3, Some("x")).await,
        Err(WriteError::BadName { what: "before", .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_no_update() {
    let Some((url, table, _g, store)) = setup("conc").await else {
        return;
    };
    store
        .create(&Flag::boolean("shared", true), "setup")
        .await
        .unwrap();
    let (p, s) = client(&url, &table).await;
    let writers = 6;
    let rounds = 10;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let actor = format!("writer-{w}");
            let mut changes = 0;
            for i in 0..rounds {
                let on = store.enable("shared", &actor).await.unwrap();
                let off = store.disable("shared", &actor).await.unwrap();
                changes += on.changed as u64 + off.changed as u64;
                let mut f = Flag::constant(format!("own-{w}"), json!(i));
                if i == 0 {
                    store.create(&f, &actor).await.unwrap();
                } else {
                    store.update(&f, &actor).await.unwrap();
                }
                // Optimistic concurrency: a stale version is refused, not overwritten.
                f.version = Some(1);
                if i > 1 {
                    assert!(matches!(
                        store.update(&f, &actor).await,
                        Err(WriteError::Conflict { .. })
                    ));
                }
            }
            changes
        }));
    }
    let mut toggles = 0;
    for t in tasks {
        toggles += t.await.unwrap();
    }
    let shared = store.row(ItemKind::Flag, "shared").await.unwrap().unwrap();
    assert_eq!(
        shared.version,
        1 + toggles,
        "every change made counts one version"
    );
    let history = store
        .history(ItemKind::Flag, "shared", 10_000)
        .await
        .unwrap();
    assert_eq!(
        history.len() as u64,
        1 + toggles,
        "every change is audited once"
    );
    assert_eq!(
        shared.definition,
        json!({"type": "bool", "default": true, "enabled": false})
    );
    // The client converges on exactly the store's contents.
    let rows = store.rows().await.unwrap();
    assert!(
        s.wait_for(WAIT, |snap| {
            snap.len() == rows.len()
                && rows.iter().all(|r| {
                    snap.document().flags.get(&r.key).and_then(|f| f.version) == Some(r.version)
                })
        })
        .await,
        "client did not converge"
    );
    for w in 0..writers {
        assert_eq!(s.value(&format!("own-{w}")), Some(json!(rounds - 1)));
    }
    // Two writers racing from the same version: exactly one wins.
    store
        .create(&Flag::constant("race", json!("start")), "setup")
        .await
        .unwrap();
    let mut a = Flag::constant("race", json!("a"));
    a.version = Some(1);
    let mut b = Flag::constant("race", json!("b"));
    b.version = Some(1);
    let (ra, rb) = tokio::join!(store.update(&a, "a"), store.update(&b, "b"));
    assert!(ra.is_ok() != rb.is_ok(), "{ra:?} {rb:?}");
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_syncs_a_document_and_reports_what_changed() {
    let Some((url, table, _g, store)) = setup("push").await else {
        return;
    };
    store
        .create(&Flag::boolean("stale", true), "alice")
        .await
        .unwrap();
    store
        .create(&Flag::boolean("same", true), "alice")
        .await
        .unwrap();
    let doc = parse_document(
        "flags:\n  same: {type: bool, default: true}\n  new: {default: blue}\nsegments:\n  beta: {included: [u1]}\n",
        Format::Yaml,
    ).unwrap().document;
    let dry = push(
        &store,
        &doc,
        "ci",
        PushOptions {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let shown: Vec<String> = dry.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["+ segment beta", "+ flag new", "- flag stale (v1)"]);
    assert!(
        store.row(ItemKind::Flag, "new").await.unwrap().is_none(),
        "dry run wrote nothing"
    );
    let (p, s) = client(&url, &table).await;
    let done = push(&store, &doc, "ci", PushOptions::default())
        .await
        .unwrap();
    assert_eq!(done, dry);
    assert!(
        s.wait_for(WAIT, |snap| snap.flag("new").is_some()
            && snap.flag("stale").is_none())
            .await
    );
    assert!(
        push(&store, &doc, "ci", PushOptions::default())
            .await
            .unwrap()
            .is_empty(),
        "second push changes nothing"
    );
    assert_eq!(
        store.history(ItemKind::Flag, "new", 10).await.unwrap()[0].actor,
        "ci"
    );
    let bad = FlagDocument {
        flags: [(
            "b".to_owned(),
            serde_json::from_value::<std::sync::Arc<Flag>>(json!({"type": "int", "default": "x"}))
                .unwrap(),
        )]
        .into(),
        ..Default::default()
    };
    assert!(push(&store, &bad, "ci", PushOptions::default())
        .await
        .is_err());
    assert!(store.row(ItemKind::Flag, "b").await.unwrap().is_none());
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_down_at_start_bootstraps_or_reports_not_ready_then_recovers() {
    let Some(pg) = PrivatePg::init() else { return };
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("boot.yaml");
    std::fs::write(&boot, "flags:\n  from-file: {default: true}\n").unwrap();
    let builder = PostgresProvider::builder(pg.url())
        .start_timeout(Duration::from_millis(500))
        .backoff(Duration::from_millis(50), Duration::from_millis(300));
    let with_boot = builder.clone().bootstrap_file(&boot).build().unwrap();
    let bare = builder.build().unwrap();
    let (s1, s2) = (RecordingSink::new(), RecordingSink::new());
    let t0 = std::time::Instant::now();
    with_boot.start(s1.clone() as Arc<dyn Sink>).await.unwrap();
    bare.start(s2.clone() as Arc<dyn Sink>).await.unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "start waited {:?}",
        t0.elapsed()
    );
    assert_eq!(with_boot.status().state, ProviderState::Degraded);
    assert!(!with_boot.status().connected);
    assert_eq!(s1.value("from-file"), Some(json!(true)));
    assert_eq!(bare.status().state, ProviderState::Unavailable);
    assert!(bare.status().last_error.is_some());
    assert!(
        s2.snapshot().is_none(),
        "nothing published: the client serves defaults, not ready"
    );

    pg.start();
    let store = PostgresStore::connect(&pg.url(), "feature_flags")
        .await
        .unwrap();
    store
        .create(&Flag::boolean("from-db", true), "alice")
        .await
        .unwrap();
    for s in [&s1, &s2] {
        assert!(
            s.wait_value(WAIT, "from-db", Some(json!(true))).await,
            "no recovery"
        );
    }
    assert!(
        s1.snapshot().unwrap().flag("from-file").is_none(),
        "the store replaces the bootstrap"
    );
    assert_eq!(with_boot.status().state, ProviderState::Ready);
    assert_eq!(bare.status().state, ProviderState::Ready);
    with_boot.close().await;
    bare.close().await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_and_restarted_mid_run_clients_keep_serving_then_resync() {
    let Some(pg) = PrivatePg::init() else { return };
    pg.start();
    let dir = tempfile::tempdir().unwrap();
    let snap_path = dir.path().join("last.json");
    let store = PostgresStore::connect(&pg.url(), "feature_flags")
        .await
        .unwrap();
    store
        .create(&Flag::boolean("checkout", true), "alice")
        .await
        .unwrap();
    store
        .create(&Flag::boolean("doomed", true), "alice")
        .await
        .unwrap();
    let mut clients = Vec::new();
    for i in 0..3 {
        let mut b = PostgresProvider::builder(pg.url())
            // Slow enough reconnection that the writes below happen while disconnected.
            .backoff(Duration::from_millis(1500), Duration::from_secs(2))
            .timeout(Duration::from_secs(2));
        if i == 0 {
            b = b.snapshot_path(&snap_path);
        }
        let p = b.build().unwrap();
        let s = RecordingSink::new();
        p.start(s.clone() as Arc<dyn Sink>).await.unwrap();
        assert_eq!(p.status().state, ProviderState::Ready);
        clients.push((p, s));
    }

    pg.kill();
    for (p, s) in &clients {
        let t = std::time::Instant::now();
        while p.status().state != ProviderState::Degraded && t.elapsed() < WAIT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let st = p.status();
        assert_eq!(st.state, ProviderState::Degraded);
        assert!(!st.connected);
        assert!(st.last_error.is_some());
        assert_eq!(
            s.value("checkout"),
            Some(json!(true)),
            "keeps serving the last good flags"
        );
    }
    pg.start();
    // Changed while every client is disconnected: their NOTIFYs are lost.
    store.disable("checkout", "bob").await.unwrap();
    store.delete("doomed", "bob").await.unwrap();
    store
        .create(&Flag::constant("added", json!(42)), "bob")
        .await
        .unwrap();
    for (p, s) in &clients {
        assert!(
            s.wait_for(WAIT, |snap| {
                snap.flag("checkout").is_some_and(|f| !f.enabled())
                    && snap.flag("doomed").is_none()
                    && snap.flag("added").is_some()
            })
            .await,
            "client did not resync"
        );
        let t = std::time::Instant::now();
        while p.status().state != ProviderState::Ready && t.elapsed() < WAIT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(p.status().connected);
        assert!(s.metrics.sum("error:") >= 1, "the outage was counted");
    }
    // Live updates work again after the reconnect.
    store
        .update(&Flag::constant("added", json!(43)), "bob")
        .await
        .unwrap();
    for (_, s) in &clients {
        assert!(s.wait_value(WAIT, "added", Some(json!(43))).await);
    }
    // The last snapshot on disk serves a new instance while the server is down.
    tokio::time::sleep(Duration::from_millis(200)).await;
    pg.kill();
    let late = PostgresProvider::builder(pg.url())
        .snapshot_path(&snap_path)
        .start_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let ls = RecordingSink::new();
    late.start(ls.clone() as Arc<dyn Sink>).await.unwrap();
    assert_eq!(late.status().state, ProviderState::Degraded);
    assert_eq!(ls.value("added"), Some(json!(43)));
    late.close().await;
    for (p, _) in &clients {
        p.close().await;
    }
    let _: Value = json!(null);
}
