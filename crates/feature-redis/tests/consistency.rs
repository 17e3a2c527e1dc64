//! Races and faults against real servers: `push` into Redis all or nothing, the cache in front
//! of PostgreSQL never left stale by a failed write, and the change channel not a lever to make
//! every instance reload.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

mod common;

use common::{pg_url, redis_url, Prefix, PrivateRedis, WAIT};
use feature_core::model::Flag;
use feature_core::provider::{Provider, Sink};
use feature_core::{parse_document, Format};
use feature_postgres::PostgresStore;
use feature_redis::{
    push, CachedStore, FlagStore, ItemKind, PushError, PushOptions, RedisProvider, RedisStore, Row,
    WriteError,
};
use feature_store::testing::{RacingStore, RecordingSink};
use serde_json::json;
use sqlx::Connection;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A PostgreSQL table family no other test uses, dropped (with `extra` SQL run first) when
/// dropped.
struct PgTable {
    url: String,
    table: String,
    extra: String,
}

impl PgTable {
    fn new(url: &str, tag: &str) -> PgTable {
        PgTable {
            url: url.into(),
            table: format!("t_{tag}_{:08x}", fastrand::u32(..)),
            extra: String::new(),
        }
    }
}

impl Drop for PgTable {
    fn drop(&mut self) {
        let (url, t, extra) = (self.url.clone(), self.table.clone(), self.extra.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut c) = sqlx::PgConnection::connect(&url).await {
                    let sql = format!(
                        "DROP TABLE IF EXISTS {t}, {t}_segments, {t}_audit, {t}_audit_head, {t}_tokens, {t}_migrations CASCADE; \
                         DROP FUNCTION IF EXISTS {t}_changed() CASCADE; \
                         DROP FUNCTION IF EXISTS {t}_truncated() CASCADE; {extra}"
                    );
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut c).await;
                }
            });
        })
        .join();
    }
}

async fn pg_sql(url: &str, statement: &str) {
    let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(&mut c)
        .await
        .expect(statement);
}

async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn start(builder: feature_redis::RedisBuilder) -> (RedisProvider, Arc<RecordingSink>) {
    let p = builder
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
        .build()
        .unwrap();
    let s = RecordingSink::new();
    p.start(s.clone() as Arc<dyn Sink>).await.unwrap();
    (p, s)
}

/// Every row, in a stable order.
async fn rows(store: &dyn FlagStore) -> Vec<Row> {
    let mut rows = store.rows().await.unwrap();
    rows.sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
    rows
}

async fn audit_len(url: &str, px: &Prefix) -> u64 {
    redis::cmd("XLEN")
        .arg(px.key("audit"))
        .query_async(&mut redis_conn(url).await)
        .await
        .unwrap()
}

/// The store as the push finds it: flags `edit`, `gone`, `keep`, `zz-last`, segment `seg`.
async fn fill(store: &RedisStore) {
    for f in [
        Flag::boolean("edit", false),
        Flag::boolean("gone", true),
        Flag::boolean("keep", true),
        Flag::boolean("zz-last", false),
    ] {
        store.create(&f, "alice").await.unwrap();
    }
    let seg = serde_json::from_value(json!({"key": "seg", "included": ["u1"]})).unwrap();
    store.put_segment(&seg, "alice").await.unwrap();
}

/// Creates `a-new` and segment `seg2`, updates `edit` and `zz-last`, deletes `gone` and `seg`.
fn document() -> feature_core::model::FlagDocument {
    parse_document(
        "flags:\n  a-new: {default: 1}\n  edit: {type: bool, default: true}\n  keep: {type: bool, default: true}\n  zz-last: {type: bool, default: true}\nsegments:\n  seg2: {included: [u2]}\n",
        Format::Yaml,
    )
    .unwrap()
    .document
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_into_redis_fails_whole_when_an_item_changed_after_the_diff() {
    let Some(url) = redis_url() else { return };
    let edits = [
        Flag::boolean("gone", false),
        Flag::constant("zz-last", json!("bob's")),
        Flag::constant("a-new", json!(7)),
    ];
    for flag in edits {
        let key = flag.key.clone();
        let key = key.as_str();
        let px = Prefix::new(&url, "pushrace");
        let store = RedisStore::new(&url, &px.prefix).unwrap();
        fill(&store).await;
        let after_edit: Arc<Mutex<Option<Vec<Row>>>> = Arc::default();
        let (other, seen) = (store.clone(), after_edit.clone());
        let racing = RacingStore::new(
            store.clone(),
            Box::new(move || {
                Box::pin(async move {
                    if other
                        .row(ItemKind::Flag, &flag.key)
                        .await
                        .unwrap()
                        .is_some()
                    {
                        other.update(&flag, "bob").await.unwrap();
                    } else {
                        other.create(&flag, "bob").await.unwrap();
                    }
                    *seen.lock().unwrap() = Some(rows(&other).await);
                })
            }),
        );
        let audit_before = audit_len(&url, &px).await;
        let e = push(&racing, &document(), "ci", PushOptions::default())
            .await
            .expect_err(key);
        let PushError::Write { change, source } = &e else {
            panic!("{key}: {e}")
        };
        assert_eq!(change.as_ref().map(|c| c.key.as_str()), Some(key), "{e}");
        assert!(
            matches!(
                source,
                WriteError::Conflict { .. } | WriteError::AlreadyExists { .. }
            ),
            "{key}: {e}"
        );
        let expected = after_edit.lock().unwrap().take().unwrap();
        assert_eq!(rows(&store).await, expected, "{key}: nothing of the push");
        assert_eq!(audit_len(&url, &px).await, audit_before + 1, "{key}");
        let survivor = store.row(ItemKind::Flag, key).await.unwrap().unwrap();
        assert_eq!(survivor.updated_by.as_deref(), Some("bob"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_into_redis_that_fails_half_way_changes_nothing_then_goes_through() {
    let Some(url) = redis_url() else { return };
    let px = Prefix::new(&url, "pushfail");
    let store = RedisStore::new(&url, &px.prefix).unwrap();
    fill(&store).await;
    let (p, s) = start(RedisProvider::builder(&url).prefix(&px.prefix)).await;
    // The audit key holds something else than a stream: the store can write items but not
    // their audit entries.
    let mut c = redis_conn(&url).await;
    let audit: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(px.key("audit"))
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(px.key("audit"))
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(px.key("audit"))
        .arg("not a stream")
        .query_async(&mut c)
        .await
        .unwrap();
    let before = rows(&store).await;
    let e = push(&store, &document(), "ci", PushOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, PushError::Write { .. }), "{e}");
    assert!(e.to_string().contains("nothing was written"), "{e}");
    assert_eq!(rows(&store).await, before, "nothing was written");
    assert_eq!(s.value("a-new"), None, "the provider saw nothing either");

    // With the audit stream back the same push goes through: one audit entry and one live
    // update per change.
    let _: () = redis::cmd("DEL")
        .arg(px.key("audit"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(audit.len(), 5);
    let done = push(&store, &document(), "ci", PushOptions::default())
        .await
        .unwrap();
    assert_eq!(done.len(), 6);
    assert_eq!(audit_len(&url, &px).await, 6);
    let h = store.history(ItemKind::Flag, "edit", 10).await.unwrap();
    assert_eq!(
        (h[0].action.as_str(), h[0].actor.as_str(), h[0].version),
        ("update", "ci", 2)
    );
    assert_eq!(h[0].before, Some(json!({"type": "bool", "default": false})));
    assert_eq!(h[0].after, Some(json!({"type": "bool", "default": true})));
    let gone = store.history(ItemKind::Flag, "gone", 10).await.unwrap();
    assert_eq!((gone[0].action.as_str(), gone[0].version), ("delete", 2));
    assert!(
        s.wait_for(WAIT, |snap| snap.flag("a-new").is_some()
            && snap.flag("gone").is_none()
            && snap.document().segments.contains_key("seg2"))
            .await
    );
    let after = rows(&store).await;
    let keys: Vec<&str> = after.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["a-new", "edit", "keep", "zz-last", "seg2"]);
    // Versions continue: a re-created item never reuses a version.
    store
        .create(&Flag::boolean("gone", true), "alice")
        .await
        .unwrap();
    assert_eq!(
        store
            .row(ItemKind::Flag, "gone")
            .await
            .unwrap()
            .unwrap()
            .version,
        3
    );
    p.close().await;
}

/// A PostgreSQL origin with flags `a` (true) and `b` (false), a Redis cache in front of it that
/// a first provider filled, and a writer through the cache.
async fn cached(
    tag: &str,
) -> Option<(
    String,
    String,
    Prefix,
    PgTable,
    Arc<PostgresStore>,
    CachedStore,
    RedisProvider,
    Arc<RecordingSink>,
)> {
    let (url, pg) = (redis_url()?, pg_url()?);
    let px = Prefix::new(&url, tag);
    let table = PgTable::new(&pg, tag);
    let origin = Arc::new(PostgresStore::connect(&pg, &table.table).await.unwrap());
    origin
        .create(&Flag::boolean("a", true), "alice")
        .await
        .unwrap();
    origin
        .create(&Flag::boolean("b", false), "alice")
        .await
        .unwrap();
    let writer = CachedStore::new(origin.clone(), &url, &px.prefix).unwrap();
    let (p, s) = start(
        RedisProvider::builder(&url)
            .prefix(&px.prefix)
            .cache_for(origin.clone()),
    )
    .await;
    assert!(p.cache_stats().unwrap().filled);
    assert_eq!(s.value("b"), Some(json!(false)));
    Some((url, pg, px, table, origin, writer, p, s))
}

/// What a provider that starts now serves for `key`.
async fn fresh_read(
    url: &str,
    px: &Prefix,
    origin: &Arc<PostgresStore>,
    key: &str,
) -> Option<serde_json::Value> {
    let (p, s) = start(
        RedisProvider::builder(url)
            .prefix(&px.prefix)
            .cache_for(origin.clone() as Arc<dyn FlagStore>),
    )
    .await;
    let v = s.value(key);
    p.close().await;
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_through_does_not_leave_the_cache_stale() {
    let Some((url, _pg, px, _t, origin, writer, p, s)) = cached("wtfail").await else {
        return;
    };
    // The cache cannot take the write (its version hash holds something else).
    let mut c = redis_conn(&url).await;
    let _: () = redis::cmd("DEL")
        .arg(px.key("revs"))
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(px.key("revs"))
        .arg("x")
        .query_async(&mut c)
        .await
        .unwrap();
    let w = writer
        .update(&Flag::boolean("b", true), "bob")
        .await
        .unwrap();
    assert!(w.changed, "saved in PostgreSQL");
    // The next read serves the new value, and so does the running provider.
    assert_eq!(fresh_read(&url, &px, &origin, "b").await, Some(json!(true)));
    assert!(s.wait_value(WAIT, "b", Some(json!(true))).await);
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_write_that_fails_after_its_commit_does_not_leave_the_cache_stale() {
    let Some((url, pg, px, mut table, _origin, _writer, p, s)) = cached("late").await else {
        return;
    };
    // The origin commits, but so late that the writer has given up: its write "fails".
    let t = table.table.clone();
    table.extra = format!("DROP FUNCTION IF EXISTS {t}_slow() CASCADE;");
    pg_sql(
        &pg,
        &format!(
            "CREATE FUNCTION {t}_slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               PERFORM pg_sleep(1.5); RETURN NULL; END $$; \
             CREATE CONSTRAINT TRIGGER slow AFTER UPDATE ON {t} DEFERRABLE INITIALLY DEFERRED \
               FOR EACH ROW EXECUTE FUNCTION {t}_slow();"
        ),
    )
    .await;
    let impatient = Arc::new(
        PostgresStore::lazy(&pg, &t)
            .unwrap()
            .with_timeout(Duration::from_millis(500)),
    );
    let writer = CachedStore::new(impatient.clone(), &url, &px.prefix).unwrap();
    let e = writer
        .update(&Flag::boolean("b", true), "bob")
        .await
        .unwrap_err();
    assert!(matches!(e, WriteError::Timeout { .. }), "{e}");
    // The commit lands in PostgreSQL a moment later.
    let patient = Arc::new(PostgresStore::lazy(&pg, &t).unwrap());
    let deadline = std::time::Instant::now() + WAIT;
    while patient
        .row(ItemKind::Flag, "b")
        .await
        .unwrap()
        .unwrap()
        .version
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the commit never landed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        fresh_read(&url, &px, &patient, "b").await,
        Some(json!(true))
    );
    drop(s);
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_conflict_refreshes_the_stale_item_in_the_cache() {
    let Some((url, _pg, px, _t, origin, writer, p, s)) = cached("conflict").await else {
        return;
    };
    // Someone changes `b` in PostgreSQL without going through the cache.
    origin
        .update(&Flag::boolean("b", true), "dba")
        .await
        .unwrap();
    // A writer who read version 1 is refused...
    let mut stale = Flag::constant("b", json!("x"));
    stale.version = Some(1);
    let e = writer.update(&stale, "bob").await.unwrap_err();
    assert!(matches!(e, WriteError::Conflict { actual: 2, .. }), "{e}");
    // ... and the cache now has what PostgreSQL has.
    assert_eq!(fresh_read(&url, &px, &origin, "b").await, Some(json!(true)));
    assert!(s.wait_value(WAIT, "b", Some(json!(true))).await);
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_and_forged_notices_cause_no_reload_while_real_writes_propagate() {
    let Some(url) = redis_url() else { return };
    let px = Prefix::new(&url, "notices");
    let store = RedisStore::new(&url, &px.prefix).unwrap();
    store
        .create(&Flag::boolean("x", false), "alice")
        .await
        .unwrap();
    store
        .create(&Flag::boolean("y", false), "alice")
        .await
        .unwrap();
    // Frequent revision checks, so that a notice that left the provider unsure shows up as a
    // reload within the test.
    let (p, s) = start(
        RedisProvider::builder(&url)
            .prefix(&px.prefix)
            .refresh_interval(Duration::from_millis(100)),
    )
    .await;
    assert_eq!(s.value("x"), Some(json!(false)));
    let loads = |s: &RecordingSink| s.metrics.get("latency:reload") + s.metrics.get("latency:load");
    let (loads_before, published_before) = (loads(&s), s.publications());
    let updates_before = s.metrics.get("latency:update");
    let mut c = redis_conn(&url).await;
    let revision: u64 = redis::cmd("GET")
        .arg(px.key("version"))
        .query_async(&mut c)
        .await
        .unwrap();
    let junk: Vec<Vec<u8>> = vec![
        b"hello".to_vec(),
        b"".to_vec(),
        b"{}".to_vec(),
        br#"{"kind":"flag"}"#.to_vec(),
        br#"{"kind":"gadget","key":"x","revision":1}"#.to_vec(),
        br#"{"kind":"flag","key":"","revision":1}"#.to_vec(),
        br#"{"kind":"flag","key":"x","revision":-1}"#.to_vec(),
        br#"{"kind":"flag","key":"x","revision":1,"extra":true}"#.to_vec(),
        vec![0xff, 0xfe, 0x00],
        format!(r#"{{"kind":"flag","key":"{}"}}"#, "k".repeat(10_000)).into_bytes(),
    ];
    // Well formed, but naming revisions the store has not reached, or replaying one.
    let forged: Vec<Vec<u8>> = vec![
        format!(r#"{{"kind":"flag","key":"x","revision":{}}}"#, revision + 1).into_bytes(),
        br#"{"kind":"flag","key":"y","revision":999999999}"#.to_vec(),
        br#"{"kind":"segment","key":"s","revision":18446744073709551615}"#.to_vec(),
    ];
    let replayed: Vec<Vec<u8>> = vec![
        format!(r#"{{"kind":"flag","key":"x","revision":{revision}}}"#).into_bytes(),
        br#"{"kind":"flag","key":"y"}"#.to_vec(),
    ];
    for round in 0..20 {
        for m in junk.iter().chain(&forged).chain(&replayed) {
            let _: () = redis::cmd("PUBLISH")
                .arg(px.key("changes"))
                .arg(m.as_slice())
                .query_async(&mut c)
                .await
                .unwrap();
        }
        if round % 5 == 0 {
            tokio::time::sleep(Duration::from_millis(120)).await;
        }
    }
    // Every message was read (and ignored) before the real write below, so that the write
    // cannot make a forged revision come true.
    let expected = (20 * junk.len() as u64, 20 * forged.len() as u64);
    let deadline = std::time::Instant::now() + WAIT;
    while (p.notice_stats().malformed, p.notice_stats().unconfirmed) != expected {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            p.notice_stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Junk and forged notices made no reload, and left the provider sure enough of its
    // revision that its periodic checks (three more here) made none either.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(loads(&s), loads_before, "no reload");
    assert_eq!(s.publications(), published_before, "nothing new published");
    // Replayed notices name items as they are: nothing is rebuilt for them.
    assert_eq!(
        s.metrics.get("latency:update"),
        updates_before,
        "no rebuild for notices that change nothing"
    );
    // A real write still propagates.
    store
        .update(&Flag::boolean("x", true), "bob")
        .await
        .unwrap();
    assert!(s.wait_value(WAIT, "x", Some(json!(true))).await);
    assert_eq!(s.publications(), published_before + 1, "one new snapshot");
    let stats = p.notice_stats();
    assert_eq!(stats.malformed, 20 * junk.len() as u64, "{stats:?}");
    assert_eq!(stats.unconfirmed, 20 * forged.len() as u64, "{stats:?}");
    // A write made while notices were missed is still found by the revision check.
    let loads_now = loads(&s);
    let _: () = redis::cmd("HSET")
        .arg(px.key("flags"))
        .arg("y")
        .arg(r#"{"version":9,"definition":{"type":"bool","default":true}}"#)
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("INCR")
        .arg(px.key("version"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(s.wait_value(WAIT, "y", Some(json!(true))).await);
    // The reload's latency is recorded once its snapshot is published: wait for it.
    let deadline = std::time::Instant::now() + WAIT;
    while loads(&s) <= loads_now {
        assert!(
            std::time::Instant::now() < deadline,
            "a reload, for a real change"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_that_was_down_during_a_write_is_invalidated_once_it_is_back() {
    let (Some(mut redis), Some(pg)) = (PrivateRedis::new(), pg_url()) else {
        return;
    };
    redis.start();
    let url = redis.url();
    let table = PgTable::new(&pg, "cachedown");
    let origin = Arc::new(PostgresStore::connect(&pg, &table.table).await.unwrap());
    origin
        .create(&Flag::boolean("b", false), "alice")
        .await
        .unwrap();
    // A cache without a TTL, filled by a first provider.
    let px = Prefix::new(&url, "down");
    let cache = |origin: Arc<PostgresStore>| {
        RedisProvider::builder(&url)
            .prefix(&px.prefix)
            .cache_for(origin)
            .cache_ttl(None)
            .start_timeout(Duration::from_secs(2))
    };
    let (p, s) = start(cache(origin.clone())).await;
    assert_eq!(s.value("b"), Some(json!(false)));
    p.close().await;
    // Redis goes away while a change is made: it is saved in PostgreSQL, the cache cannot be
    // written or invalidated.
    redis.kill();
    let writer = CachedStore::new(origin.clone(), &url, &px.prefix).unwrap();
    let w = writer
        .update(&Flag::boolean("b", true), "bob")
        .await
        .unwrap();
    assert!(w.changed);
    // Redis comes back with what it had (append-only file): the stale value, marked filled.
    redis.start();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (p, s) = start(cache(origin.clone())).await;
        let v = s.value("b");
        p.close().await;
        if v == Some(json!(true)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the cache still serves {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(writer);
}
