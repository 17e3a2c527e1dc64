//! Helpers of the SQLite tests: a fresh database file in a temporary directory, and raw SQL
//! on it (as someone editing the file by hand would).
#![allow(dead_code)]

use sqlx::Connection;
use std::path::PathBuf;

/// A temporary directory (removed when dropped) and the URL of a database file in it.
pub(crate) struct TempDb {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub url: String,
}

pub(crate) fn temp_db() -> TempDb {
    let dir = tempfile::Builder::new()
        .prefix("feature-sqlite-")
        .tempdir()
        .expect("tempdir");
    let path = dir.path().join("feature.db");
    let url = format!("sqlite://{}", path.display());
    TempDb { dir, path, url }
}

/// Runs `statement` on its own connection, outside the store (with the same busy timeout, so
/// that it waits for a writer instead of failing).
pub(crate) async fn sql(path: &std::path::Path, statement: &str) {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(std::time::Duration::from_secs(5));
    let mut c = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("connect");
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(&mut c)
        .await
        .expect(statement);
    c.close().await.expect("close");
}
