//! The schema, created on first open, and the connection settings every connection gets.

use crate::{SqliteError, SqliteUrl};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::OnceCell;

/// The schema versions, in order; each creates or changes what the one before left.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE feature_flags (
    key         TEXT PRIMARY KEY NOT NULL CHECK (key <> ''),
    definition  TEXT NOT NULL,
    version     INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    updated_by  TEXT NOT NULL
);
CREATE TABLE feature_segments (
    key         TEXT PRIMARY KEY NOT NULL CHECK (key <> ''),
    definition  TEXT NOT NULL,
    version     INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    updated_by  TEXT NOT NULL
);
CREATE TABLE feature_audit (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    key        TEXT NOT NULL,
    action     TEXT NOT NULL,
    actor      TEXT NOT NULL,
    at         TEXT NOT NULL,
    version    INTEGER NOT NULL,
    before     TEXT,
    after      TEXT,
    prev_hash  TEXT,
    hash       TEXT NOT NULL
);
CREATE INDEX feature_audit_key ON feature_audit (kind, key, id);
CREATE TABLE feature_audit_head (
    one        INTEGER PRIMARY KEY CHECK (one = 1),
    last_id    INTEGER,
    last_hash  TEXT
);
INSERT INTO feature_audit_head (one) VALUES (1);
CREATE TRIGGER feature_audit_no_update BEFORE UPDATE ON feature_audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER feature_audit_no_delete BEFORE DELETE ON feature_audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE feature_revision (
    one       INTEGER PRIMARY KEY CHECK (one = 1),
    revision  INTEGER NOT NULL
);
INSERT INTO feature_revision (one, revision) VALUES (1, 0);
CREATE TRIGGER feature_flags_inserted AFTER INSERT ON feature_flags
BEGIN UPDATE feature_revision SET revision = revision + 1; END;
CREATE TRIGGER feature_flags_updated AFTER UPDATE ON feature_flags
BEGIN UPDATE feature_revision SET revision = revision + 1; END;
CREATE TRIGGER feature_flags_deleted AFTER DELETE ON feature_flags
BEGIN UPDATE feature_revision SET revision = revision + 1; END;
CREATE TRIGGER feature_segments_inserted AFTER INSERT ON feature_segments
BEGIN UPDATE feature_revision SET revision = revision + 1; END;
CREATE TRIGGER feature_segments_updated AFTER UPDATE ON feature_segments
BEGIN UPDATE feature_revision SET revision = revision + 1; END;
CREATE TRIGGER feature_segments_deleted AFTER DELETE ON feature_segments
BEGIN UPDATE feature_revision SET revision = revision + 1; END;
CREATE TABLE feature_tokens (
    id             TEXT PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL,
    scope          TEXT NOT NULL,
    secret_sha256  TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    revoked_at     TEXT,
    revoked_by     TEXT
);
"#];

/// The triggers [`verify_audit`](crate::SqliteStore::verify_audit) expects.
pub(crate) const TRIGGERS: [&str; 8] = [
    "feature_audit_no_update",
    "feature_audit_no_delete",
    "feature_flags_inserted",
    "feature_flags_updated",
    "feature_flags_deleted",
    "feature_segments_inserted",
    "feature_segments_updated",
    "feature_segments_deleted",
];

/// The schema version this crate creates and reads.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long a connection waits for another one's write lock before failing.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The file, its pool, and whether its schema was checked in this process.
#[derive(Debug)]
pub(crate) struct Db {
    pub(crate) path: PathBuf,
    pub(crate) pool: SqlitePool,
    schema: OnceCell<()>,
}

impl Db {
    /// A lazily connecting pool of `size` connections on the file `url` names.
    pub(crate) fn new(url: &str, size: u32, timeout: Duration) -> Result<Db, SqliteError> {
        let url = SqliteUrl::parse(url)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(SqliteError::NoRuntime);
        }
        let options = SqliteConnectOptions::new()
            .filename(url.path())
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(false);
        let pool = SqlitePoolOptions::new()
            .max_connections(size.max(1))
            .acquire_timeout(timeout)
            .connect_lazy_with(options);
        Ok(Db {
            path: url.path().to_owned(),
            pool,
            schema: OnceCell::new(),
        })
    }

    /// Creates the schema if the file has none, once per process (again after a failure);
    /// refuses a file that is not ours.
    pub(crate) async fn ensure_schema(&self) -> Result<(), SqliteError> {
        self.schema
            .get_or_try_init(|| migrate(self))
            .await
            .map(|_| ())
    }

    /// Maps an error of SQLite to the typed one for this file.
    pub(crate) fn error(&self, operation: &'static str, source: sqlx::Error) -> SqliteError {
        let code = source
            .as_database_error()
            .and_then(|d| d.code())
            .and_then(|c| c.parse::<i64>().ok());
        // SQLITE_CORRUPT (11) and SQLITE_NOTADB (26), with their extended codes.
        match code.map(|c| c & 0xff) {
            Some(11) | Some(26) => SqliteError::NotADatabase {
                path: self.path.clone(),
                source,
            },
            _ => SqliteError::Database { operation, source },
        }
    }
}

async fn migrate(db: &Db) -> Result<(), SqliteError> {
    let err = |e| db.error("open", e);
    let mut tx = db.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut *tx)
            .await
            .map_err(err)?;
    let current: i64 = if tables.iter().any(|t| t == "feature_schema") {
        sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM feature_schema")
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?
    } else if tables.iter().any(|t| !t.starts_with("sqlite_")) {
        return Err(SqliteError::ForeignDatabase {
            path: db.path.clone(),
        });
    } else {
        sqlx::raw_sql(
            "CREATE TABLE feature_schema (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        0
    };
    if current > SCHEMA_VERSION {
        return Err(SqliteError::SchemaTooNew {
            path: db.path.clone(),
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    for (i, m) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version <= current {
            continue;
        }
        sqlx::raw_sql(*m).execute(&mut *tx).await.map_err(err)?;
        sqlx::query("INSERT INTO feature_schema (version, applied_at) VALUES (?, ?)")
            .bind(version)
            .bind(feature_store::now_rfc3339())
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tracing::info!(target: "feature::sqlite", path = %db.path.display(), version, "schema created");
    }
    tx.commit().await.map_err(err)?;
    Ok(())
}
