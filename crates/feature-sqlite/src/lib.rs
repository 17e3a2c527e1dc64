//! # feature-sqlite
//!
//! SQLite as the embedded store of the flag server: flags, segments, their audit log and API
//! tokens in one local file, with nothing to install or run beside the program (the SQLite
//! library is compiled in). The same write API ([`FlagStore`]) as the PostgreSQL and Redis
//! stores, and a provider that follows changes made by any process using the same file.
//!
//! | item | what it is for |
//! |---|---|
//! | [`SqliteStore`] | the write API: create / update / delete / enable / disable, segments, batches all or nothing, history with paging; every change audited in a hash chain |
//! | [`SqliteProvider`] | flags for a `feature::Client`, following writes of any process within a poll interval (200 ms by default) |
//! | [`tokens::TokenStore`](feature_store::tokens::TokenStore) for [`SqliteStore`] | the flag server's API tokens (hashes only) |
//! | [`SqliteStore::verify_audit`] | checks the audit log's hash chain, its head, its guards, and that every item is what its last audit row says |
//! | [`SqliteUrl`] | `sqlite://path/to/feature.db` (relative), `sqlite:///var/lib/app/feature.db` (absolute) |
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let url = format!("sqlite://{}", dir.path().join("feature.db").display());
//! use feature_core::Flag;
//! use feature_sqlite::{FlagStore, ItemKind, SqliteProvider, SqliteStore};
//!
//! // `url` is `sqlite://feature.db` or `sqlite:///var/lib/app/feature.db`: the file and its
//! // schema are created on first open.
//! let store = SqliteStore::open(&url).await?;
//! store.create(&Flag::boolean("new-checkout", true), "alice@example.com").await?;
//! store.disable("new-checkout", "alice@example.com").await?;
//! for entry in store.history(ItemKind::Flag, "new-checkout", 10).await? {
//!     println!("v{} {} by {} at {}", entry.version, entry.action, entry.actor, entry.at);
//! }
//! assert!(store.verify_audit().await?.is_intact());
//!
//! // Every application instance on this machine: flags from the file, updated within
//! // 200 ms of a write by any process. Hand it to the client:
//! // `feature::Client::builder().provider(provider).build().await?` (with the `feature`
//! // crate's `sqlite` feature, `FEATURE_PROVIDER=sqlite` and `FEATURE_SQLITE_URL` do the same).
//! let provider = SqliteProvider::builder(&url).build()?;
//! # drop(provider); store.close().await; Ok(()) }
//! ```
//!
//! ## Crate features
//!
//! | feature | what it adds |
//! |---|---|
//! | (none) | everything: store, provider, tokens, audit verification; SQLite itself is compiled in |
//!
//! ## The file
//!
//! The schema is created the first time a file is opened (by a store or a provider), in one
//! `BEGIN IMMEDIATE` transaction, so concurrent first opens are safe; its version is recorded
//! in `feature_schema`. A file whose schema is newer than this crate knows is refused with
//! [`SqliteError::SchemaTooNew`]; a file that is not an SQLite database (or is damaged) with
//! [`SqliteError::NotADatabase`]; an SQLite database that holds other tables and no flag
//! schema with [`SqliteError::ForeignDatabase`] (a wrong path should not get tables added).
//!
//! | table | what it holds |
//! |---|---|
//! | `feature_flags (key, definition, version, created_at, updated_at, updated_by)` | one row per flag; `definition` is the flag as JSON in the file format, without `key`, `version`, `createdAt`, `updatedAt` |
//! | `feature_segments` (same columns) | one row per segment |
//! | `feature_audit (id, kind, key, action, actor, at, version, before, after, prev_hash, hash)` | one row per change; append-only (triggers refuse `UPDATE` and `DELETE`); each row's `hash` chains to the previous row's |
//! | `feature_audit_head (last_id, last_hash)` | the chain's end, to detect rows removed at the end |
//! | `feature_revision (revision)` | a counter that triggers on the flag and segment tables raise on every row change, by the write API or by hand: what providers poll |
//! | `feature_tokens` | the flag server's tokens: id, name, scope, SHA-256 of the secret, creation and revocation |
//!
//! Versions count per key from 1 and keep counting across delete and re-create (a delete is
//! recorded with the next version), as in the PostgreSQL store.
//!
//! ## Concurrency
//!
//! The database runs in WAL mode (readers never block the writer nor the writer them) with
//! `synchronous = FULL` (a change acknowledged is on disk with its audit row) and a busy
//! timeout of 5 s. Every write is one `BEGIN IMMEDIATE` transaction: it takes the file's write
//! lock before reading the item, so two writers — in one process or in two — run one after the
//! other and the second reads what the first wrote. A stale `version` is therefore always a
//! [`WriteError::Conflict`], never a lost update, and a batch ([`FlagStore::apply_changes`]) is
//! all or nothing. WAL needs a local file system (not a network share).
//!
//! ## Change detection
//!
//! SQLite has no notifications across processes, so the provider polls: every
//! [`SqliteBuilder::poll_interval`] (200 ms) it reads the one-row revision counter (one page of
//! the file, no write). Only when the counter moved does it read the audit rows added since,
//! and re-reads exactly the items they name, as a PostgreSQL notice does; a change made by hand
//! in SQL (the counter moved more than the audit log explains) reloads everything.
//!
//! ## In-memory databases
//!
//! `sqlite::memory:` is refused ([`SqliteError::InMemory`]): every connection would see its
//! own empty database, and no other process could see it at all. Tests use a file in a
//! temporary directory.
#![deny(missing_docs)]

mod audit;
mod provider;
mod schema;
mod store;
mod tokens;

pub use audit::{AuditBreak, AuditVerdict};
pub use feature_store::{
    push, Action, Change, ChangeOp, FlagStore, HistoryEntry, ItemKind, PushError, PushOptions, Row,
    SyncOptions, WriteError, Written,
};
pub use provider::{
    SqliteBuilder, SqliteProvider, SqliteSession, SqliteSource, DEFAULT_POLL_INTERVAL,
};
pub use schema::SCHEMA_VERSION;
pub use store::SqliteStore;

use std::path::{Path, PathBuf};

/// Errors opening an SQLite store or building its provider.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteError {
    /// The URL is not `sqlite://PATH` or `sqlite:PATH`.
    #[error("invalid SQLite URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given (credentials cannot occur in it).
        url: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An in-memory database was asked for: it cannot be shared (see the crate docs).
    #[error("an in-memory SQLite database cannot be shared between connections or processes: use a file (sqlite://path/to/feature.db)")]
    InMemory,
    /// The file is not an SQLite database, or it is damaged.
    #[error("{path} is not an SQLite database or is damaged")]
    NotADatabase {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: sqlx::Error,
    },
    /// The file is an SQLite database of something else: it has tables, none of them ours.
    #[error("{path} is an SQLite database of another program (it has tables but no flag schema); refusing to add tables to it")]
    ForeignDatabase {
        /// The file.
        path: PathBuf,
    },
    /// The file's schema was written by a newer version of this crate.
    #[error(
        "{path} has schema version {found}; this program knows versions up to {known}: upgrade it"
    )]
    SchemaTooNew {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: i64,
        /// The newest version this crate knows.
        known: i64,
    },
    /// Created outside a Tokio runtime (the connection pool needs one).
    #[error("the SQLite provider and store must be created within a Tokio runtime")]
    NoRuntime,
    /// A setting of the engine cannot be used (a zero interval or timeout).
    #[error(transparent)]
    InvalidOptions(#[from] feature_store::SyncOptionsError),
    /// The database failed.
    #[error("sqlite: {operation} failed: {source}")]
    Database {
        /// What was being done.
        operation: &'static str,
        /// SQLite's error.
        #[source]
        source: sqlx::Error,
    },
}

/// A parsed `sqlite:` URL: the database file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteUrl {
    path: PathBuf,
}

impl SqliteUrl {
    /// Parses `sqlite://PATH` or `sqlite:PATH`. The path is taken as written (no
    /// percent-decoding): `sqlite://feature.db` is relative to the working directory,
    /// `sqlite:///var/lib/app/feature.db` absolute. Query parameters are refused (the store sets
    /// the connection's options itself), and so is `sqlite::memory:`.
    pub fn parse(url: &str) -> Result<SqliteUrl, SqliteError> {
        let bad = |reason| SqliteError::InvalidUrl {
            url: url.chars().take(200).collect(),
            reason,
        };
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| bad("it does not start with sqlite://"))?;
        if rest == ":memory:" || rest.starts_with("file::memory:") || rest.contains("mode=memory") {
            return Err(SqliteError::InMemory);
        }
        if rest.contains('?') {
            return Err(bad("query parameters are not supported"));
        }
        if rest.is_empty() {
            return Err(bad("it names no file"));
        }
        if rest.ends_with('/') {
            return Err(bad("it names a directory, not a file"));
        }
        Ok(SqliteUrl {
            path: PathBuf::from(rest),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_file() {
        let p = |u: &str| SqliteUrl::parse(u).map(|u| u.path().display().to_string());
        assert_eq!(p("sqlite://feature.db").unwrap(), "feature.db");
        assert_eq!(p("sqlite://data/feature.db").unwrap(), "data/feature.db");
        assert_eq!(p("sqlite:///var/lib/f.db").unwrap(), "/var/lib/f.db");
        assert_eq!(p("sqlite:f.db").unwrap(), "f.db");
        assert!(matches!(
            SqliteUrl::parse("sqlite::memory:"),
            Err(SqliteError::InMemory)
        ));
        for bad in [
            "postgres://x/y",
            "sqlite://",
            "sqlite://dir/",
            "sqlite://f.db?mode=ro",
            "feature.db",
        ] {
            assert!(
                matches!(SqliteUrl::parse(bad), Err(SqliteError::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }
}
