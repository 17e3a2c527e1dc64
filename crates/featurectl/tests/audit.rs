//! `featurectl migrate` and `featurectl audit verify` against the shared PostgreSQL test server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

mod common;

use common::postgres_url as shared_url;
use sqlx::Connection;
use std::process::Command;

fn featurectl(dir: &std::path::Path, url: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_featurectl"))
        .args(args)
        .current_dir(dir)
        .env("FEATURE_STORE_URL", url)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap(), text)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The first column of a query's rows.
fn sql(url: &str, query: &str) -> Vec<i64> {
    runtime().block_on(async {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sqlx::AssertSqlSafe(query.to_owned()))
            .fetch_all(&mut c)
            .await
            .expect(query)
    })
}

/// Runs statements.
fn exec(url: &str, statements: &str) {
    runtime().block_on(async {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(statements.to_owned()))
            .execute(&mut c)
            .await
            .expect(statements);
    })
}

/// Drops the test's table family when dropped.
struct DropTables(String, String);

impl Drop for DropTables {
    fn drop(&mut self) {
        let t = &self.1;
        let _ = std::panic::catch_unwind(|| {
            exec(
                &self.0,
                &format!(
                    "DROP TABLE IF EXISTS {t}, {t}_segments, {t}_audit, {t}_audit_head, {t}_tokens, {t}_migrations CASCADE; \
                     DROP FUNCTION IF EXISTS {t}_changed(), {t}_truncated(), {t}_audit_chain(), {t}_audit_guard(), {t}_audit_commit() CASCADE"
                ),
            )
        });
    }
}

#[test]
fn migrate_then_audit_verify_reports_ok_then_the_deleted_row() {
    let Some(url) = shared_url() else {
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let table = format!("t_ctl_{}_{nanos:08x}", std::process::id());
    let _g = DropTables(url.clone(), table.clone());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let (code, text) = featurectl(d, &url, &["migrate", "--table", &table]);
    assert_eq!(code, 0, "{text}");
    let versions = sql(
        &url,
        &format!("SELECT version::bigint FROM {table}_migrations ORDER BY 1"),
    );
    // Every migration, once each, in order.
    let every: Vec<i64> = (1..=i64::from(feature_postgres::SCHEMA_VERSION)).collect();
    assert_eq!(versions, every);

    std::fs::write(
        d.join("a.yaml"),
        "flags:\n  a: {type: bool, default: true}\n  b: {type: bool, default: false}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("b.yaml"),
        "flags:\n  a: {type: bool, default: false}\n",
    )
    .unwrap();
    for file in ["a.yaml", "b.yaml"] {
        let (code, text) = featurectl(d, &url, &["push", file, "--table", &table]);
        assert_eq!(code, 0, "{text}");
    }
    let (code, text) = featurectl(d, &url, &["audit", "verify", "--table", &table]);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("ok: 4 audit rows, chain intact"), "{text}");

    // The owner deletes an audit row (after disabling the guard that refuses it).
    let ids = sql(&url, &format!("SELECT id FROM {table}_audit ORDER BY id"));
    exec(
        &url,
        &format!(
            "ALTER TABLE {table}_audit DISABLE TRIGGER {table}_audit_guard; \
             DELETE FROM {table}_audit WHERE id = {}; \
             ALTER TABLE {table}_audit ENABLE TRIGGER {table}_audit_guard",
            ids[1]
        ),
    );
    let (code, text) = featurectl(d, &url, &["audit", "verify", "--table", &table]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!("broken: audit row {}: does not follow", ids[2])),
        "{text}"
    );
    assert!(!text.contains("postgres:"), "printed the URL: {text}");

    let (code, text) = featurectl(
        d,
        "",
        &[
            "migrate",
            "--print-grants",
            "--table",
            &table,
            "--reader",
            "app_r",
        ],
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!(
            "GRANT SELECT ON {table}, {table}_segments, {table}_audit, {table}_audit_head, {table}_migrations TO app_r;"
        )),
        "{text}"
    );
}
