//! `push` against a real PostgreSQL: all or nothing, every update and delete checked against
//! the version the diff read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

mod common;

use common::{shared_url, unique_table, DropTables};
use feature_core::model::Flag;
use feature_core::{parse_document, Format};
use feature_postgres::{
    push, Change, ChangeOp, FlagStore, ItemKind, PostgresStore, PushError, PushOptions, Row,
    WriteError,
};
use feature_store::testing::RacingStore;
use serde_json::json;
use sqlx::Connection;
use std::sync::{Arc, Mutex};

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

async fn sql(url: &str, statement: &str) {
    let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(&mut c)
        .await
        .expect(statement);
}

/// Every row, in a stable order.
async fn rows(store: &PostgresStore) -> Vec<Row> {
    let mut rows = store.rows().await.unwrap();
    rows.sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
    rows
}

/// How many audit rows the table family has.
async fn audit_rows(url: &str, table: &str) -> i64 {
    let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {table}_audit"
    )))
    .fetch_one(&mut c)
    .await
    .expect("count")
}

/// The store as the push found it: `keep`, `edit`, `gone`, `zz-last` (flags) and segment `seg`.
async fn fill(store: &PostgresStore) {
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

/// The document pushed: creates `a-new` and segment `seg2`, updates `edit` and `zz-last`,
/// deletes `gone` and segment `seg`.
fn document() -> feature_core::model::FlagDocument {
    parse_document(
        "flags:\n  a-new: {default: 1}\n  edit: {type: bool, default: true}\n  keep: {type: bool, default: true}\n  zz-last: {type: bool, default: true}\nsegments:\n  seg2: {included: [u2]}\n",
        Format::Yaml,
    )
    .unwrap()
    .document
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_between_diff_and_apply_fails_the_whole_push_and_survives() {
    let Some((url, table, _g, store)) = setup("pushrace").await else {
        return;
    };
    // Each edit someone else makes after the push read the store: changing an item the push
    // deletes, one it updates (applied last), creating one it creates.
    let edits = [
        Flag::boolean("gone", false),
        Flag::constant("zz-last", json!("bob's")),
        Flag::constant("a-new", json!(7)),
    ];
    for flag in edits {
        let key = flag.key.clone();
        let key = key.as_str();
        sql(
            &url,
            &format!("DELETE FROM {table}; DELETE FROM {table}_segments;"),
        )
        .await;
        fill(&store).await;
        let after_edit: Arc<Mutex<Option<Vec<Row>>>> = Arc::default();
        let (other, seen) = (store.clone(), after_edit.clone());
        let racing = RacingStore::new(
            store.clone(),
            Box::new(move || {
                Box::pin(async move {
                    let exists = other
                        .row(ItemKind::Flag, &flag.key)
                        .await
                        .unwrap()
                        .is_some();
                    if exists {
                        other.update(&flag, "bob").await.unwrap();
                    } else {
                        other.create(&flag, "bob").await.unwrap();
                    }
                    *seen.lock().unwrap() = Some(rows(&other).await);
                })
            }),
        );
        let audit_before = audit_rows(&url, &table).await;
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
        assert!(e.to_string().contains("nothing was written"), "{e}");
        // Nothing of the push was written; the other edit is there as it was made.
        let expected = after_edit.lock().unwrap().take().unwrap();
        assert_eq!(rows(&store).await, expected, "{key}");
        assert_eq!(
            audit_rows(&url, &table).await,
            audit_before + 1,
            "{key}: only the other edit is audited"
        );
        let survivor = store.row(ItemKind::Flag, key).await.unwrap().unwrap();
        assert_eq!(survivor.updated_by.as_deref(), Some("bob"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_in_the_middle_of_a_push_leaves_the_store_unchanged() {
    let Some((url, table, _g, store)) = setup("pushfail").await else {
        return;
    };
    fill(&store).await;
    // The store refuses one of the changes, after others of the batch were made: `edit`
    // (updated before `zz-last`) is refused by a trigger.
    let refuse = format!("{table}_refuse");
    let _drop_fn = DropFunction {
        url: url.clone(),
        name: refuse.clone(),
    };
    sql(
        &url,
        &format!(
            "CREATE FUNCTION {refuse}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               IF NEW.key = 'zz-last' THEN RAISE EXCEPTION 'refused by policy'; END IF; \
               RETURN NEW; END $$; \
             CREATE TRIGGER refuse BEFORE UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION {refuse}();"
        ),
    )
    .await;
    let before = rows(&store).await;
    let audit_before = audit_rows(&url, &table).await;
    let e = push(&store, &document(), "ci", PushOptions::default())
        .await
        .unwrap_err();
    let PushError::Write { change, source } = &e else {
        panic!("{e}")
    };
    assert_eq!(change.as_ref().unwrap().key, "zz-last", "{e}");
    assert!(matches!(source, WriteError::Store { .. }), "{e}");
    assert_eq!(rows(&store).await, before, "nothing was written");
    assert_eq!(audit_rows(&url, &table).await, audit_before);

    // Without the trigger the same push goes through, each write audited in the actor's name.
    sql(&url, &format!("DROP TRIGGER refuse ON {table}")).await;
    let done = push(&store, &document(), "ci", PushOptions::default())
        .await
        .unwrap();
    let shown: Vec<String> = done.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "+ segment seg2",
            "+ flag a-new",
            "~ flag edit (v1): default",
            "~ flag zz-last (v1): default",
            "- flag gone (v1)",
            "- segment seg (v1)"
        ]
    );
    assert_eq!(audit_rows(&url, &table).await, audit_before + 6);
    for (kind, key, action) in [
        (ItemKind::Flag, "a-new", "create"),
        (ItemKind::Flag, "edit", "update"),
        (ItemKind::Flag, "gone", "delete"),
        (ItemKind::Segment, "seg", "delete"),
    ] {
        let h = store.history(kind, key, 1).await.unwrap();
        assert_eq!(
            (h[0].action.as_str(), h[0].actor.as_str()),
            (action, "ci"),
            "{key}"
        );
    }
    let after = rows(&store).await;
    let keys: Vec<&str> = after.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["a-new", "edit", "keep", "zz-last", "seg2"]);
}

/// Drops a test's trigger function, even when the test failed.
struct DropFunction {
    url: String,
    name: String,
}

impl Drop for DropFunction {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut c) = sqlx::PgConnection::connect(&url).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP FUNCTION IF EXISTS {name}() CASCADE"
                    )))
                    .execute(&mut c)
                    .await;
                }
            });
        })
        .join();
    }
}

/// Two batches that update the same two flags in opposite orders, at the same time: PostgreSQL
/// may abort one of them as a deadlock (each holds a row the other needs while both queue on
/// the audit chain's head). Whatever the timing, one batch wins whole and the other is refused
/// as out of date, never failed with a database error and never half applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_batches_end_with_one_applied_and_one_refused_as_out_of_date() {
    let Some((url, table, _g, store)) = setup("pushcross").await else {
        return;
    };
    let update = |key: &str, version: u64, by: &str| Change {
        op: ChangeOp::Update,
        kind: ItemKind::Flag,
        key: key.to_owned(),
        version: Some(version),
        before: None,
        after: Some(json!({"type": "string", "default": by})),
    };
    for round in 0..8 {
        sql(&url, &format!("DELETE FROM {table}")).await;
        store
            .create(&Flag::constant("x", json!("-")), "setup")
            .await
            .unwrap();
        store
            .create(&Flag::constant("y", json!("-")), "setup")
            .await
            .unwrap();
        let vx = store
            .row(ItemKind::Flag, "x")
            .await
            .unwrap()
            .unwrap()
            .version;
        let vy = store
            .row(ItemKind::Flag, "y")
            .await
            .unwrap()
            .unwrap()
            .version;
        let one = [update("x", vx, "one"), update("y", vy, "one")];
        let two = [update("y", vy, "two"), update("x", vx, "two")];
        let (a, b) = tokio::join!(
            store.apply_changes(&one, "one"),
            store.apply_changes(&two, "two")
        );
        let (winner, loser) = match (&a, &b) {
            (Ok(_), Err(e)) => ("one", e),
            (Err(e), Ok(_)) => ("two", e),
            _ => panic!("round {round}: exactly one batch applies: {a:?} / {b:?}"),
        };
        assert!(
            matches!(loser.source, WriteError::Conflict { .. }),
            "round {round}: the other batch is refused as out of date: {loser}"
        );
        for key in ["x", "y"] {
            let row = store.row(ItemKind::Flag, key).await.unwrap().unwrap();
            assert_eq!(
                row.updated_by.as_deref(),
                Some(winner),
                "round {round}: {key}"
            );
        }
    }
}
