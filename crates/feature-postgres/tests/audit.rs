//! Least privilege, the tamper-evident audit log and the change channel, against the shared
//! test server: roles created per run with the GRANTs of `sql/roles.sql`, tampering done the
//! way a table owner could, junk and forged notices sent by any role.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

mod common;

use common::{shared_url, unique_table, DropTables};
use feature_core::model::Flag;
use feature_core::provider::{Provider, Sink};
use feature_postgres::{
    role_grants, verify_audit, AuditBreak, AuditVerdict, FlagStore, ItemKind, PostgresProvider,
    PostgresStore, TableName,
};
use feature_store::testing::RecordingSink;
use serde_json::json;
use sqlx::Connection;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

async fn sql(url: &str, statement: &str) -> Result<(), sqlx::Error> {
    let mut c = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(&mut c)
        .await
        .map(|_| ())
}

async fn ok(url: &str, statement: &str) {
    sql(url, statement).await.expect(statement);
}

/// `url` with the user replaced by `role` (the test server trusts loopback connections).
fn as_role(url: &str, role: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{role}@{host}")
}

async fn provider(url: &str, table: &str) -> (PostgresProvider, Arc<RecordingSink>) {
    let p = PostgresProvider::builder(url)
        .table(table)
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
        .build()
        .unwrap();
    let sink = RecordingSink::new();
    p.start(sink.clone() as Arc<dyn Sink>).await.unwrap();
    (p, sink)
}

/// Drops the roles (and everything they own, and their grants) when dropped.
struct DropRoles {
    url: String,
    roles: Vec<String>,
}

impl Drop for DropRoles {
    fn drop(&mut self) {
        let (url, roles) = (self.url.clone(), self.roles.join(", "));
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let _ = sql(
                    &url,
                    &format!("DROP OWNED BY {roles} CASCADE; DROP ROLE IF EXISTS {roles};"),
                )
                .await;
            });
        })
        .join();
    }
}

/// A table with a few audited changes, made by a superuser.
async fn table_with_history(tag: &str) -> Option<(String, String, DropTables, PostgresStore)> {
    let url = shared_url()?;
    let table = unique_table(tag);
    let guard = DropTables {
        url: url.clone(),
        table: table.clone(),
    };
    let store = PostgresStore::connect(&url, &table).await.unwrap();
    store
        .create(&Flag::boolean("a", true), "alice")
        .await
        .unwrap();
    store
        .create(&Flag::boolean("b", true), "bob")
        .await
        .unwrap();
    store.disable("a", "alice").await.unwrap();
    store.enable("a", "carol").await.unwrap();
    store.delete("b", "bob").await.unwrap();
    Some((url, table, guard, store))
}

/// Whether `check` holds within a few seconds.
async fn eventually(check: impl Fn() -> bool) -> bool {
    for _ in 0..100 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

async fn verdict(url: &str, table: &str) -> AuditVerdict {
    verify_audit(url, table).await.unwrap()
}

async fn audit_ids(url: &str, table: &str) -> Vec<i64> {
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM {table}_audit ORDER BY id"
    )))
    .fetch_all(&mut c)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_reads_and_listens_writer_writes_and_neither_can_touch_the_audit_log() {
    let Some(url) = shared_url() else {
        return;
    };
    let table = unique_table("roles");
    let id = &table[table.len() - 8..];
    let (reader, writer, migrator) = (
        format!("r_{id}_reader"),
        format!("r_{id}_writer"),
        format!("r_{id}_migrator"),
    );
    ok(
        &url,
        &format!(
            "CREATE ROLE {reader} LOGIN; CREATE ROLE {writer} LOGIN; CREATE ROLE {migrator} LOGIN;"
        ),
    )
    .await;
    let _roles = DropRoles {
        url: url.clone(),
        roles: vec![reader.clone(), writer.clone(), migrator.clone()],
    };
    let _tables = DropTables {
        url: url.clone(),
        table: table.clone(),
    };
    let (r_url, w_url, m_url) = (
        as_role(&url, &reader),
        as_role(&url, &writer),
        as_role(&url, &migrator),
    );

    // Without a schema, a provider does not create it (it would need the owner's rights): it
    // says what to do.
    let (early, early_sink) = provider(&r_url, &table).await;
    assert!(early_sink.snapshot().is_none());
    let status = early.status().to_string();
    assert!(status.contains("featurectl migrate"), "{status}");
    early.close().await;
    // Nor may the reader migrate.
    let denied = PostgresStore::connect(&r_url, &table).await;
    assert!(denied.is_err(), "the reader created the schema");

    // The exact GRANTs of the documentation, run as the documentation says.
    let grants = role_grants(
        &TableName::new(&table).unwrap(),
        "public",
        &reader,
        &writer,
        &migrator,
    )
    .unwrap();
    ok(&url, &grants.before_migration).await;
    PostgresStore::lazy(&m_url, &table)
        .unwrap()
        .migrate()
        .await
        .unwrap();
    ok(&m_url, &grants.after_migration).await;

    // The provider runs as the reader: loads, and follows the writer's changes live.
    let writer_store = PostgresStore::connect(&w_url, &table).await.unwrap();
    writer_store
        .create(&Flag::boolean("f", true), "alice")
        .await
        .unwrap();
    let (p, sink) = provider(&r_url, &table).await;
    assert_eq!(sink.value("f"), Some(json!(true)));
    writer_store.disable("f", "alice").await.unwrap();
    writer_store
        .create(&Flag::boolean("g", true), "alice")
        .await
        .unwrap();
    assert!(sink.wait_value(WAIT, "g", Some(json!(true))).await);
    let history = writer_store.history(ItemKind::Flag, "f", 10).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].actor, "alice");

    // The reader cannot write, neither through the API nor in SQL.
    let reader_store = PostgresStore::connect(&r_url, &table).await.unwrap();
    assert!(reader_store
        .create(&Flag::boolean("x", true), "mallory")
        .await
        .is_err());
    for statement in [
        format!("INSERT INTO {table} (key, definition) VALUES ('x', '{{}}')"),
        format!("UPDATE {table} SET definition = '{{}}'"),
        format!("DELETE FROM {table}"),
        format!("TRUNCATE {table}"),
        format!("INSERT INTO {table}_audit (kind, key, action, actor, version) VALUES ('flag', 'x', 'create', 'm', 1)"),
    ] {
        assert!(sql(&r_url, &statement).await.is_err(), "reader: {statement}");
    }
    // The writer cannot write, change, delete or truncate audit rows, nor truncate flags.
    for statement in [
        format!("INSERT INTO {table}_audit (kind, key, action, actor, version) VALUES ('flag', 'x', 'create', 'm', 1)"),
        format!("UPDATE {table}_audit SET actor = 'mallory'"),
        format!("DELETE FROM {table}_audit"),
        format!("TRUNCATE {table}_audit"),
        format!("UPDATE {table}_audit_head SET last_id = 0"),
        format!("TRUNCATE {table}"),
        format!("ALTER TABLE {table} DISABLE TRIGGER {table}_changed"),
    ] {
        assert!(sql(&w_url, &statement).await.is_err(), "writer: {statement}");
    }
    // ...but a change the writer makes in SQL is audited in its name.
    ok(&w_url, &format!("DELETE FROM {table} WHERE key = 'g'")).await;
    let h = writer_store.history(ItemKind::Flag, "g", 1).await.unwrap();
    assert_eq!(
        (h[0].actor.as_str(), h[0].action.to_string().as_str()),
        (writer.as_str(), "delete")
    );
    assert!(sink.wait_value(WAIT, "g", None).await);

    // The reader's rights suffice to verify the log.
    assert!(matches!(
        verdict(&r_url, &table).await,
        AuditVerdict::Intact { rows: 4, .. }
    ));
    p.close().await;
    reader_store.close().await;
    writer_store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intact_log_verifies_and_a_truncate_is_audited_row_by_row() {
    let Some((url, table, _g, store)) = table_with_history("chain").await else {
        return;
    };
    let AuditVerdict::Intact { rows, head } = verdict(&url, &table).await else {
        panic!("intact log reported broken");
    };
    assert_eq!(rows, 5);
    assert_eq!(head.unwrap().0, 5);
    // The owner's TRUNCATE: one audit row per flag removed, with its definition; still intact.
    store
        .create(&Flag::boolean("c", false), "dave")
        .await
        .unwrap();
    ok(&url, &format!("TRUNCATE {table}")).await;
    let h = store.history(ItemKind::Flag, "c", 1).await.unwrap();
    assert_eq!(h[0].action.to_string(), "truncate");
    assert_eq!(h[0].version, 2);
    assert!(h[0].before.is_some() && h[0].after.is_none());
    assert_eq!(
        store.history(ItemKind::Flag, "a", 1).await.unwrap()[0]
            .action
            .to_string(),
        "truncate"
    );
    assert!(matches!(
        verdict(&url, &table).await,
        AuditVerdict::Intact { rows: 8, .. }
    ));
    // The log refuses changes, even from its owner, unless the owner drops the guard.
    for statement in [
        format!("UPDATE {table}_audit SET actor = 'x'"),
        format!("DELETE FROM {table}_audit"),
        format!("TRUNCATE {table}_audit"),
    ] {
        assert!(sql(&url, &statement).await.is_err(), "{statement}");
    }
}

/// Runs `tamper` as the owner with the audit log's guard triggers disabled.
async fn tamper(url: &str, table: &str, tamper: &str) {
    ok(
        url,
        &format!(
            "BEGIN; ALTER TABLE {table}_audit DISABLE TRIGGER {table}_audit_guard; \
             ALTER TABLE {table}_audit DISABLE TRIGGER {table}_audit_guard_truncate; \
             {tamper}; \
             ALTER TABLE {table}_audit ENABLE TRIGGER {table}_audit_guard; \
             ALTER TABLE {table}_audit ENABLE TRIGGER {table}_audit_guard_truncate; COMMIT;"
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_the_first_broken_link() {
    // An edited row.
    let Some((url, t, _g1, _s1)) = table_with_history("edit").await else {
        return;
    };
    let ids = audit_ids(&url, &t).await;
    tamper(
        &url,
        &t,
        &format!(
            "UPDATE {t}_audit SET actor = 'mallory' WHERE id = {}",
            ids[2]
        ),
    )
    .await;
    assert_eq!(
        verdict(&url, &t).await,
        AuditVerdict::Broken(AuditBreak::Edited { id: ids[2] })
    );

    // A row deleted in the middle: the next one no longer links.
    let (url, t, _g2, _s2) = table_with_history("del").await.unwrap();
    let ids = audit_ids(&url, &t).await;
    tamper(
        &url,
        &t,
        &format!("DELETE FROM {t}_audit WHERE id = {}", ids[1]),
    )
    .await;
    assert_eq!(
        verdict(&url, &t).await,
        AuditVerdict::Broken(AuditBreak::Unlinked { id: ids[2] })
    );

    // The first row deleted.
    let (url, t, _g3, _s3) = table_with_history("first").await.unwrap();
    let ids = audit_ids(&url, &t).await;
    tamper(
        &url,
        &t,
        &format!("DELETE FROM {t}_audit WHERE id = {}", ids[0]),
    )
    .await;
    assert_eq!(
        verdict(&url, &t).await,
        AuditVerdict::Broken(AuditBreak::Unlinked { id: ids[1] })
    );

    // The last row deleted: the head names it.
    let (url, t, _g4, _s4) = table_with_history("last").await.unwrap();
    let ids = audit_ids(&url, &t).await;
    tamper(
        &url,
        &t,
        &format!("DELETE FROM {t}_audit WHERE id = {}", ids[4]),
    )
    .await;
    assert_eq!(
        verdict(&url, &t).await,
        AuditVerdict::Broken(AuditBreak::Truncated {
            head_id: Some(ids[4]),
            last_id: Some(ids[3])
        })
    );

    // The log truncated.
    let (url, t, _g5, _s5) = table_with_history("trunc").await.unwrap();
    tamper(&url, &t, &format!("TRUNCATE {t}_audit")).await;
    assert!(matches!(
        verdict(&url, &t).await,
        AuditVerdict::Broken(AuditBreak::Truncated { last_id: None, .. })
    ));

    // The audit trigger disabled, a flag changed: reported while disabled, and after.
    let (url, t, _g6, _s6) = table_with_history("trig").await.unwrap();
    ok(
        &url,
        &format!("ALTER TABLE {t} DISABLE TRIGGER {t}_changed"),
    )
    .await;
    ok(
        &url,
        &format!("UPDATE {t} SET definition = '{{\"type\": \"bool\", \"default\": false}}'"),
    )
    .await;
    assert!(matches!(
        verdict(&url, &t).await,
        AuditVerdict::Broken(AuditBreak::Trigger { .. })
    ));
    ok(&url, &format!("ALTER TABLE {t} ENABLE TRIGGER {t}_changed")).await;
    assert_eq!(
        verdict(&url, &t).await,
        AuditVerdict::Broken(AuditBreak::Unaudited {
            kind: "flag".into(),
            key: "a".into()
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_extend_one_chain() {
    let Some(url) = shared_url() else {
        return;
    };
    let table = unique_table("conc");
    let _g = DropTables {
        url: url.clone(),
        table: table.clone(),
    };
    let store = PostgresStore::connect(&url, &table).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..6 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..15 {
                store
                    .create(&Flag::boolean(format!("w{w}-{i}"), true), "writer")
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(matches!(
        verdict(&url, &table).await,
        AuditVerdict::Intact { rows: 90, .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_multi_row_transactions_in_any_isolation_extend_one_chain() {
    let Some(url) = shared_url() else {
        return;
    };
    let table = unique_table("txn");
    let _g = DropTables {
        url: url.clone(),
        table: table.clone(),
    };
    PostgresStore::connect(&url, &table).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..6 {
        let (url, table) = (url.clone(), table.clone());
        tasks.push(tokio::spawn(async move {
            let isolation = ["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"][w % 3];
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            let mut done = 0;
            while done < 8 {
                let statement = format!(
                    "BEGIN ISOLATION LEVEL {isolation}; \
                     INSERT INTO {table} (key, definition) VALUES \
                     ('w{w}-{done}-a', '{{}}'), ('w{w}-{done}-b', '{{}}'), ('w{w}-{done}-c', '{{}}'); \
                     COMMIT;"
                );
                match sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut c).await {
                    Ok(_) => done += 1,
                    Err(e) => {
                        // A serialization failure or a deadlock: the documented retry.
                        let code = e.as_database_error().and_then(|d| d.code()).unwrap_or_default();
                        assert!(code == "40001" || code == "40P01", "{e}");
                        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut c).await;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(matches!(
        verdict(&url, &table).await,
        AuditVerdict::Intact { rows: 144, .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_and_forged_notices_cause_no_reload_and_real_changes_still_arrive() {
    let Some((url, table, _g, store)) = table_with_history("notify").await else {
        return;
    };
    let (p, sink) = provider(&url, &table).await;
    assert_eq!(sink.value("a"), Some(json!(true)));
    let reloads = || sink.metrics.get("latency:reload");
    let updates = || sink.metrics.get("latency:update");
    let (r0, u0) = (reloads(), updates());
    let last = *audit_ids(&url, &table).await.last().unwrap();
    let channel = format!("{table}_changes");
    // Any role may NOTIFY the channel; none of these describes a change that happened.
    let junk = [
        String::new(),
        "garbage".into(),
        "null".into(),
        "{}".into(),
        r#"{"resync": true}"#.into(),
        r#"{"kind": "flag", "key": "a"}"#.into(),
        r#"{"kind": "nope", "key": "a", "revision": 1}"#.into(),
        // Well-formed, but naming changes already seen, or none at all.
        format!(r#"{{"resync": true, "revision": {last}}}"#),
        format!(r#"{{"kind": "flag", "key": "a", "revision": {last}}}"#),
        r#"{"kind": "flag", "key": "a", "revision": 1}"#.into(),
        format!(
            r#"{{"kind": "flag", "key": "a", "revision": {}}}"#,
            last + 1000
        ),
        format!(r#"{{"resync": true, "revision": {}}}"#, last + 1000),
    ];
    for payload in &junk {
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&channel)
            .bind(payload)
            .execute(&mut c)
            .await
            .unwrap();
    }
    // A real change after the junk: once it is seen, the junk was handled.
    store
        .create(&Flag::boolean("z", true), "alice")
        .await
        .unwrap();
    assert!(sink.wait_value(WAIT, "z", Some(json!(true))).await);
    // (The engine counts an operation just after it publishes.)
    assert!(
        eventually(|| updates() == u0 + 1).await,
        "the real change was not read back alone"
    );
    assert_eq!(reloads(), r0, "junk or forged notices caused a full reload");
    // A real TRUNCATE still reloads everything.
    ok(&url, &format!("TRUNCATE {table}")).await;
    assert!(sink.wait_value(WAIT, "a", None).await);
    assert!(eventually(|| reloads() == r0 + 1).await);
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_built_with_migrate_creates_the_schema_for_development() {
    let Some(url) = shared_url() else {
        return;
    };
    let table = unique_table("dev");
    let _g = DropTables {
        url: url.clone(),
        table: table.clone(),
    };
    let p = PostgresProvider::builder(url.as_str())
        .table(&table)
        .migrate(true)
        .build()
        .unwrap();
    let sink = RecordingSink::new();
    p.start(sink.clone() as Arc<dyn Sink>).await.unwrap();
    assert!(p.status().connected, "{}", p.status());
    let store = PostgresStore::connect(&url, &table).await.unwrap();
    store
        .create(&Flag::boolean("f", true), "alice")
        .await
        .unwrap();
    assert!(sink.wait_value(WAIT, "f", Some(json!(true))).await);
    p.close().await;
}
