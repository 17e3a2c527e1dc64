//! The SQLite store on real database files: the write API's semantics (the same as the
//! PostgreSQL store's), concurrency between stores on one file, batches, the audit chain,
//! tokens, and files that are not ours.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

mod common;

use common::{sql, temp_db};
use feature_core::model::{Flag, FlagDocument, Segment};
use feature_core::{parse_document, Format};
use feature_sqlite::{
    push, AuditBreak, AuditVerdict, Change, ChangeOp, FlagStore, ItemKind, PushOptions,
    SqliteError, SqliteStore, WriteError, SCHEMA_VERSION,
};
use serde_json::json;

async fn open(url: &str) -> SqliteStore {
    SqliteStore::open(url).await.expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_versioned_and_every_change_is_audited() {
    let db = temp_db();
    let store = open(&db.url).await;
    let w = store
        .create(&Flag::boolean("f", false), "alice")
        .await
        .unwrap();
    assert_eq!((w.version, w.changed), (1, true));
    assert_eq!(
        w.row.as_ref().and_then(|r| r.updated_by.as_deref()),
        Some("alice")
    );
    assert!(matches!(
        store.create(&Flag::boolean("f", true), "alice").await,
        Err(WriteError::AlreadyExists { .. })
    ));
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
    assert_eq!((d.version, d.row), (5, None));
    assert!(store.row(ItemKind::Flag, "f").await.unwrap().is_none());
    assert!(matches!(
        store.delete("f", "erin").await,
        Err(WriteError::NotFound { .. })
    ));
    assert!(matches!(
        store.enable("f", "erin").await,
        Err(WriteError::NotFound { .. })
    ));
    assert!(matches!(
        store.update(&Flag::boolean("f", true), "erin").await,
        Err(WriteError::NotFound { .. })
    ));
    let again = store
        .create(&Flag::boolean("f", true), "frank")
        .await
        .unwrap();
    assert_eq!(
        again.version, 6,
        "versions keep counting across delete and re-create"
    );

    let h = store.history(ItemKind::Flag, "f", 100).await.unwrap();
    let summary: Vec<(&str, &str, u64)> = h
        .iter()
        .map(|e| (e.action.as_str(), e.actor.as_str(), e.version))
        .collect();
    assert_eq!(
        summary,
        [
            ("create", "frank", 6),
            ("delete", "erin", 5),
            ("enable", "dave", 4),
            ("disable", "carol", 3),
            ("update", "bob", 2),
            ("create", "alice", 1),
        ]
    );
    assert_eq!(h[5].before, None);
    assert_eq!(h[5].after, Some(json!({"type": "bool", "default": false})));
    assert_eq!(h[4].before, Some(json!({"type": "bool", "default": false})));
    assert_eq!(h[4].after, Some(json!({"type": "bool", "default": true})));
    assert_eq!(
        h[3].after,
        Some(json!({"type": "bool", "default": true, "enabled": false}))
    );
    assert_eq!(h[2].after, Some(json!({"type": "bool", "default": true})));
    assert_eq!(h[1].after, None);
    assert!(h[1].before.is_some());
    assert!(
        h.iter()
            .all(|e| e.at.len() == 24 && e.at.ends_with('Z') && e.at.as_bytes()[10] == b'T'),
        "{:?}",
        h[0].at
    );
    assert!(h.windows(2).all(|w| w[0].at >= w[1].at));
    // Paging: pages of 2 follow each other without gaps or repeats; an entry is found by id.
    let mut paged = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = store
            .history_page(ItemKind::Flag, "f", 2, before.as_deref())
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|e| e.id.clone());
        paged.extend(page.iter().map(|e| e.version));
    }
    assert_eq!(paged, [6, 5, 4, 3, 2, 1]);
    let found = store
        .history_entry(ItemKind::Flag, "f", &h[4].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.after, Some(json!({"type": "bool", "default": true})));
    assert!(store
        .history_entry(ItemKind::Flag, "other", &h[4].id)
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        store.history_page(ItemKind::Flag, "f", 3, Some("x")).await,
        Err(WriteError::BadName { what: "before", .. })
    ));
    assert!(store
        .history(ItemKind::Flag, "nope", 10)
        .await
        .unwrap()
        .is_empty());

    // Segments: created by put, versioned, deleted; a flag and a segment may share a key.
    let mut seg = Segment {
        key: "f".into(),
        included: vec!["u1".into()],
        ..Default::default()
    };
    assert_eq!(store.put_segment(&seg, "gina").await.unwrap().version, 1);
    seg.included.push("u2".into());
    seg.version = Some(1);
    assert_eq!(store.put_segment(&seg, "gina").await.unwrap().version, 2);
    assert!(matches!(
        store.put_segment(&seg, "gina").await,
        Err(WriteError::Conflict {
            expected: 1,
            actual: 2,
            ..
        })
    ));
    store.delete_segment("f", "gina").await.unwrap();
    let sh = store.history(ItemKind::Segment, "f", 10).await.unwrap();
    assert_eq!(sh.len(), 3);
    assert_eq!(store.rows().await.unwrap().len(), 1, "the flag stays");
    assert!(store.verify_audit().await.unwrap().is_intact());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_definitions_and_names_are_refused_and_write_nothing() {
    let db = temp_db();
    let store = open(&db.url).await;
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
    assert!(matches!(
        store.create(&Flag::boolean("", true), "alice").await,
        Err(WriteError::BadName { what: "key", .. })
    ));
    assert!(matches!(
        store.create(&Flag::boolean("a\nb", true), "alice").await,
        Err(WriteError::BadName { what: "key", .. })
    ));
    assert!(store.rows().await.unwrap().is_empty());
    assert_eq!(
        store.verify_audit().await.unwrap(),
        AuditVerdict::Intact {
            rows: 0,
            head: None
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_version_is_a_conflict_never_a_lost_update() {
    let db = temp_db();
    let store = open(&db.url).await;
    store
        .create(&Flag::constant("f", json!(0)), "setup")
        .await
        .unwrap();
    let mut f = Flag::constant("f", json!(1));
    f.version = Some(1);
    assert_eq!(store.update(&f, "a").await.unwrap().version, 2);
    f.default = Some(json!(2));
    let e = store.update(&f, "b").await.unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::Conflict {
                expected: 1,
                actual: 2,
                ..
            }
        ),
        "{e}"
    );
    let row = store.row(ItemKind::Flag, "f").await.unwrap().unwrap();
    assert_eq!(row.definition["default"], json!(1));
    assert_eq!(
        store.history(ItemKind::Flag, "f", 10).await.unwrap().len(),
        2
    );
}

/// Two stores (two pools, as two server processes would have) on one file; each round, both
/// write the same flag from the same version at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_with_the_same_version_exactly_one_wins_each_time() {
    let db = temp_db();
    let a = open(&db.url).await;
    let b = open(&db.url).await;
    a.create(&Flag::constant("race", json!("start")), "setup")
        .await
        .unwrap();
    let rounds = 25u64;
    for round in 0..rounds {
        let version = round + 1;
        let mut fa = Flag::constant("race", json!(format!("a{round}")));
        fa.version = Some(version);
        let mut fb = Flag::constant("race", json!(format!("b{round}")));
        fb.version = Some(version);
        let (ra, rb) = tokio::join!(
            tokio::spawn({
                let a = a.clone();
                async move { a.update(&fa, "writer-a").await }
            }),
            tokio::spawn({
                let b = b.clone();
                async move { b.update(&fb, "writer-b").await }
            })
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert!(ra.is_ok() != rb.is_ok(), "round {round}: {ra:?} {rb:?}");
        let (won, lost) = if ra.is_ok() { (ra, rb) } else { (rb, ra) };
        assert_eq!(won.unwrap().version, version + 1);
        assert!(
            matches!(lost, Err(WriteError::Conflict { expected, actual, .. }) if expected == version && actual == version + 1),
            "round {round}: {lost:?}"
        );
    }
    let h = a.history(ItemKind::Flag, "race", 1000).await.unwrap();
    assert_eq!(
        h.len() as u64,
        1 + rounds,
        "one audit entry per successful write"
    );
    let row = b.row(ItemKind::Flag, "race").await.unwrap().unwrap();
    assert_eq!(row.version, 1 + rounds);
    assert_eq!(h[0].after.as_ref(), Some(&row.definition));
    assert!(a.verify_audit().await.unwrap().is_intact());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_toggles_from_two_stores_lose_no_update() {
    let db = temp_db();
    let stores = [open(&db.url).await, open(&db.url).await];
    stores[0]
        .create(&Flag::boolean("shared", true), "setup")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..6 {
        let store = stores[w % 2].clone();
        tasks.push(tokio::spawn(async move {
            let actor = format!("writer-{w}");
            let mut changes = 0u64;
            for i in 0..10 {
                changes += store.enable("shared", &actor).await.unwrap().changed as u64;
                changes += store.disable("shared", &actor).await.unwrap().changed as u64;
                let f = Flag::constant(format!("own-{w}"), json!(i));
                if i == 0 {
                    store.create(&f, &actor).await.unwrap();
                } else {
                    store.update(&f, &actor).await.unwrap();
                }
            }
            changes
        }));
    }
    let mut toggles = 0;
    for t in tasks {
        toggles += t.await.unwrap();
    }
    let shared = stores[1]
        .row(ItemKind::Flag, "shared")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        shared.version,
        1 + toggles,
        "every change counts one version"
    );
    let history = stores[0]
        .history(ItemKind::Flag, "shared", 10_000)
        .await
        .unwrap();
    assert_eq!(
        history.len() as u64,
        1 + toggles,
        "every change audited once"
    );
    assert_eq!(
        shared.definition,
        json!({"type": "bool", "default": true, "enabled": false})
    );
    for w in 0..6 {
        let own = stores[0]
            .row(ItemKind::Flag, &format!("own-{w}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((own.version, &own.definition["default"]), (10, &json!(9)));
    }
    assert!(stores[1].verify_audit().await.unwrap().is_intact());
}

fn change(
    op: ChangeOp,
    key: &str,
    version: Option<u64>,
    after: Option<serde_json::Value>,
) -> Change {
    Change {
        op,
        kind: ItemKind::Flag,
        key: key.into(),
        version,
        before: None,
        after,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_all_or_nothing() {
    let db = temp_db();
    let store = open(&db.url).await;
    store
        .create(&Flag::constant("keep", json!(1)), "setup")
        .await
        .unwrap();
    store
        .create(&Flag::constant("gone", json!(1)), "setup")
        .await
        .unwrap();
    let before = store.verify_audit().await.unwrap();

    // The last change is stale: nothing of the batch is written.
    let stale = [
        change(ChangeOp::Create, "new", None, Some(json!({"default": 1}))),
        change(ChangeOp::Delete, "gone", Some(1), None),
        change(
            ChangeOp::Update,
            "keep",
            Some(7),
            Some(json!({"default": 2})),
        ),
    ];
    let e = store.apply_changes(&stale, "ci").await.unwrap_err();
    assert_eq!(e.index, Some(2));
    assert!(matches!(e.source, WriteError::Conflict { .. }), "{e}");
    // A create of an existing key, and an invalid definition, are refused too.
    let exists = [
        change(ChangeOp::Delete, "gone", Some(1), None),
        change(ChangeOp::Create, "keep", None, Some(json!({"default": 3}))),
    ];
    let e = store.apply_changes(&exists, "ci").await.unwrap_err();
    assert!(
        matches!(e.source, WriteError::AlreadyExists { .. }) && e.index == Some(1),
        "{e}"
    );
    let invalid = [
        change(ChangeOp::Delete, "gone", Some(1), None),
        change(
            ChangeOp::Create,
            "bad",
            None,
            Some(json!({"type": "int", "default": "x"})),
        ),
    ];
    let e = store.apply_changes(&invalid, "ci").await.unwrap_err();
    assert!(matches!(e.source, WriteError::Invalid { .. }), "{e}");
    let keys: Vec<String> = store
        .rows()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(keys, ["gone", "keep"], "nothing was written");
    assert_eq!(store.verify_audit().await.unwrap(), before, "nor audited");

    // A good batch: every change applied and audited as the actor.
    let good = [
        change(ChangeOp::Create, "new", None, Some(json!({"default": 1}))),
        change(ChangeOp::Delete, "gone", Some(1), None),
        change(
            ChangeOp::Update,
            "keep",
            Some(1),
            Some(json!({"default": 2})),
        ),
    ];
    let done = store.apply_changes(&good, "ci").await.unwrap();
    let versions: Vec<u64> = done.iter().map(|w| w.version).collect();
    assert_eq!(versions, [1, 2, 2]);
    for key in ["new", "gone", "keep"] {
        assert_eq!(
            store.history(ItemKind::Flag, key, 1).await.unwrap()[0].actor,
            "ci"
        );
    }
    let AuditVerdict::Intact { rows, .. } = store.verify_audit().await.unwrap() else {
        panic!("chain broken")
    };
    assert_eq!(rows, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_syncs_a_document() {
    let db = temp_db();
    let store = open(&db.url).await;
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
    )
    .unwrap()
    .document;
    let done = push(&store, &doc, "ci", PushOptions::default())
        .await
        .unwrap();
    let shown: Vec<String> = done.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["+ segment beta", "+ flag new", "- flag stale (v1)"]);
    assert!(push(&store, &doc, "ci", PushOptions::default())
        .await
        .unwrap()
        .is_empty());
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hash_chain_detects_edits_removals_and_unaudited_changes() {
    let db = temp_db();
    let store = open(&db.url).await;
    for i in 0..3 {
        store
            .create(&Flag::constant(format!("f{i}"), json!(i)), "alice")
            .await
            .unwrap();
    }
    store.disable("f1", "bob").await.unwrap();
    let AuditVerdict::Intact { rows, head } = store.verify_audit().await.unwrap() else {
        panic!("chain broken")
    };
    assert_eq!(rows, 4);
    let (head_id, head_hash) = head.unwrap();
    assert_eq!((head_id, head_hash.len()), (4, 64));

    // The log refuses edits through SQL while its guards are in place.
    let path = db.path.clone();
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
    let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
        .await
        .unwrap();
    let refused = sqlx::raw_sql("UPDATE feature_audit SET actor = 'mallory' WHERE id = 2")
        .execute(&mut c)
        .await;
    assert!(refused.is_err(), "the audit log must be append-only");
    drop(c);

    // Someone with the file drops a guard: that alone is reported.
    sql(&path, "DROP TRIGGER feature_audit_no_update").await;
    assert_eq!(
        store.verify_audit().await.unwrap(),
        AuditVerdict::Broken(AuditBreak::Trigger {
            name: "feature_audit_no_update".into()
        })
    );
    // ... and edits a row: its hash no longer matches.
    sql(
        &path,
        "UPDATE feature_audit SET actor = 'mallory' WHERE id = 2",
    )
    .await;
    assert_eq!(
        store.verify_audit().await.unwrap(),
        AuditVerdict::Broken(AuditBreak::Edited { id: 2 })
    );
    let text = AuditBreak::Edited { id: 2 }.to_string();
    assert!(text.contains("audit row 2"), "{text}");

    // On another file: a flag changed by hand, without an audit row.
    let db2 = temp_db();
    let s2 = open(&db2.url).await;
    s2.create(&Flag::constant("f", json!(1)), "alice")
        .await
        .unwrap();
    s2.create(&Flag::constant("g", json!(1)), "alice")
        .await
        .unwrap();
    sql(
        &db2.path,
        "UPDATE feature_flags SET definition = '{\"default\":2}' WHERE key = 'g'",
    )
    .await;
    assert_eq!(
        s2.verify_audit().await.unwrap(),
        AuditVerdict::Broken(AuditBreak::Unaudited {
            kind: "flag".into(),
            key: "g".into()
        })
    );
    // The last audit row removed (guards dropped first): the head still names it.
    sql(
        &db2.path,
        "UPDATE feature_flags SET definition = '{\"default\":1}' WHERE key = 'g'; \
         DROP TRIGGER feature_audit_no_delete; DELETE FROM feature_audit WHERE id = 2",
    )
    .await;
    assert_eq!(
        s2.verify_audit().await.unwrap(),
        AuditVerdict::Broken(AuditBreak::Truncated {
            head_id: Some(2),
            last_id: Some(1)
        })
    );
    // A row removed in the middle: the next one no longer links.
    let db3 = temp_db();
    let s3 = open(&db3.url).await;
    for k in ["a", "b", "c"] {
        s3.create(&Flag::boolean(k, true), "alice").await.unwrap();
    }
    sql(
        &db3.path,
        "DROP TRIGGER feature_audit_no_delete; DELETE FROM feature_audit WHERE id = 2",
    )
    .await;
    assert_eq!(
        s3.verify_audit().await.unwrap(),
        AuditVerdict::Broken(AuditBreak::Unlinked { id: 3 })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_keep_the_token_store_contract() {
    let db = temp_db();
    let store = open(&db.url).await;
    feature_store::tokens::check_token_store(&store).await;
    // Kept in the file: another store on it sees them.
    let other = open(&db.url).await;
    use feature_store::tokens::TokenStore;
    assert_eq!(other.tokens().await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_that_are_not_ours_are_refused_with_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();

    // Not a database at all.
    let yaml = dir.path().join("flags.yaml");
    std::fs::write(&yaml, "flags:\n  a: {default: true}\n".repeat(100)).unwrap();
    let e = SqliteStore::open(&format!("sqlite://{}", yaml.display()))
        .await
        .unwrap_err();
    assert!(matches!(e, SqliteError::NotADatabase { .. }), "{e}");
    assert_eq!(
        std::fs::read_to_string(&yaml).unwrap(),
        "flags:\n  a: {default: true}\n".repeat(100),
        "left as it was"
    );

    // A damaged database: a good file with its pages overwritten.
    let damaged = dir.path().join("damaged.db");
    let url = format!("sqlite://{}", damaged.display());
    let s = SqliteStore::open(&url).await.unwrap();
    s.create(&Flag::boolean("a", true), "alice").await.unwrap();
    s.close().await;
    let _ = std::fs::remove_file(dir.path().join("damaged.db-wal"));
    let _ = std::fs::remove_file(dir.path().join("damaged.db-shm"));
    let mut bytes = std::fs::read(&damaged).unwrap();
    for b in bytes.iter_mut().skip(16) {
        *b = 0xA5;
    }
    std::fs::write(&damaged, &bytes).unwrap();
    let e = SqliteStore::open(&url).await.unwrap_err();
    assert!(matches!(e, SqliteError::NotADatabase { .. }), "{e}");

    // Another program's database.
    let foreign = dir.path().join("app.db");
    sql_create(
        &foreign,
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
    )
    .await;
    let e = SqliteStore::open(&format!("sqlite://{}", foreign.display()))
        .await
        .unwrap_err();
    assert!(matches!(e, SqliteError::ForeignDatabase { .. }), "{e}");

    // A schema newer than this crate.
    let newer = dir.path().join("newer.db");
    let url = format!("sqlite://{}", newer.display());
    SqliteStore::open(&url).await.unwrap().close().await;
    sql(
        &newer,
        &format!(
            "INSERT INTO feature_schema (version, applied_at) VALUES ({}, 'later')",
            SCHEMA_VERSION + 1
        ),
    )
    .await;
    let e = SqliteStore::open(&url).await.unwrap_err();
    assert!(
        matches!(e, SqliteError::SchemaTooNew { found, known, .. } if found == SCHEMA_VERSION + 1 && known == SCHEMA_VERSION),
        "{e}"
    );
    // A lazily opened store reports it on its first write, as a store error.
    let lazy = SqliteStore::lazy(&url).unwrap();
    let e = lazy
        .create(&Flag::boolean("x", true), "alice")
        .await
        .unwrap_err();
    assert!(matches!(e, WriteError::Store { .. }), "{e}");

    // Opening twice, or concurrently, creates the schema once.
    let fresh = dir.path().join("fresh.db");
    let url = format!("sqlite://{}", fresh.display());
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { SqliteStore::open(&url).await.map(|_| ()) })
        })
        .collect();
    for o in opens {
        o.await.unwrap().unwrap();
    }
    assert!(matches!(
        SqliteStore::open("sqlite::memory:").await,
        Err(SqliteError::InMemory)
    ));
}

async fn sql_create(path: &std::path::Path, statement: &str) {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(&mut c)
        .await
        .unwrap();
}
