//! # feature-postgres
//!
//! PostgreSQL as the shared source of truth for the flags of every instance of a service:
//! a [`PostgresProvider`] keeps each instance's flags current through LISTEN/NOTIFY, and a
//! [`PostgresStore`] changes flags in the name of an actor, every change recorded in an audit
//! table. Evaluation never touches the database: it reads the last snapshot the provider
//! published.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use feature_core::Flag;
//! use feature_postgres::{FlagStore, ItemKind, PostgresProvider, PostgresStore};
//!
//! let url = "postgres://app:secret@127.0.0.1:5432/app";
//!
//! // Every instance: flags from the table, updated live. Hand the provider to the client:
//! // `feature::Client::builder().provider(provider).build().await?` (with the `feature` crate's
//! // `postgres` feature, `FEATURE_PROVIDER=postgres` and `FEATURE_POSTGRES_URL` do the same).
//! let provider = PostgresProvider::builder(url)
//!     .table("feature_flags")
//!     .snapshot_path("/var/cache/app/flags.json") // served if the database is down at start
//!     .build()?;
//!
//! // An admin tool: change a flag; every connected instance sees it within milliseconds.
//! let store = PostgresStore::connect(url, "feature_flags").await?;
//! store.create(&Flag::boolean("new-checkout", true), "alice@example.com").await?;
//! store.disable("new-checkout", "alice@example.com").await?;
//! for entry in store.history(ItemKind::Flag, "new-checkout", 10).await? {
//!     println!("v{} {} by {} at {}", entry.version, entry.action, entry.actor, entry.at);
//! }
//! # drop(provider); Ok(()) }
//! ```
//!
//! ## Crate features
//!
//! | feature | what it adds |
//! |---|---|
//! | (none) | everything: provider, write API, migrations; TLS is not compiled in (connect over loopback, a private network or a TLS-terminating proxy) |
//!
//! ## Schema
//!
//! The provider (and [`PostgresStore::connect`]) creates and upgrades the schema itself;
//! migrations are numbered, recorded in `{table}_migrations`, run in one transaction under an
//! advisory lock (concurrent starts are safe) and harmless when run again. With the default
//! table name `feature_flags` (set with [`PostgresBuilder::table`] or `FEATURE_TABLE`; it must be
//! a plain lower-case identifier of at most 40 characters, see [`TableName`]):
//!
//! | object | what it holds |
//! |---|---|
//! | `feature_flags (key text primary key, definition jsonb, version bigint, created_at, updated_at timestamptz, updated_by text)` | one row per flag; `definition` is the flag in the file format without `key`, `version`, `createdAt`, `updatedAt` |
//! | `feature_flags_segments` (same columns) | one row per segment |
//! | `feature_flags_audit (id bigserial, kind, key, action, actor, at, version, before jsonb, after jsonb)` | one row per change, written by trigger, so changes made by hand in SQL are audited too (actor: the database user) |
//! | `feature_flags_changed()` trigger | writes the audit row and sends the notice |
//! | channel `feature_flags_changes` | `NOTIFY` payload `{"kind": "flag", "key": "...", "revision": <audit id>}`; `{"resync": true}` after `TRUNCATE` |
//!
//! Versions count per key from 1 and keep counting across delete and re-create (a delete is
//! recorded with the next version), so a version never names two different definitions.
//!
//! A batch of changes ([`FlagStore::apply_changes`], used by [`push`]) is one transaction:
//! every update and delete is conditional on the version read, every create on the key being
//! free, and the first refusal or error rolls all of it back.
//!
//! ## Live updates and failures
//!
//! Each notice makes the provider read that row back and publish a new snapshot: write-to-
//! visible latency is a few milliseconds (see BENCHMARKS.md). A notice whose revision skips
//! one, a `TRUNCATE`, and every reconnection reload the whole table: notices sent while a
//! client was disconnected are lost by PostgreSQL, the reload makes up for them. The audit
//! log's last id is also checked every refresh interval (30 s) as a safety net.
//!
//! A row whose definition is invalid (written by hand) is skipped and reported with its key in
//! the log, in the provider's status (`Degraded`, with the diagnostics) and in
//! `record_provider_error("postgres", "decode", "invalid_row")`; the other flags load. The
//! write API refuses invalid definitions up front.
//!
//! When the database is down at start, the provider serves the last snapshot it wrote
//! ([`PostgresBuilder::snapshot_path`]) or a [bootstrap file](PostgresBuilder::bootstrap_file),
//! reporting `Degraded`; with neither it reports `Unavailable` and the client serves defaults
//! (`CLIENT_NOT_READY`) until the first load. When the database goes away later, the last good
//! flags keep serving, the status is `Degraded`, and the provider reconnects with capped
//! exponential backoff with jitter. See [`feature_store`'s engine](feature_store::SyncProvider).
#![deny(missing_docs)]

mod provider;
mod schema;
mod store;

pub use feature_store::{
    push, Action, Change, ChangeOp, FlagStore, HistoryEntry, ItemKind, PushError, PushOptions, Row,
    SyncOptions, WriteError, Written,
};
pub use provider::{PgSession, PgSource, PostgresBuilder, PostgresProvider};
pub use schema::{migrate, TableName, SCHEMA_VERSION};
pub use store::PostgresStore;

/// The default flag table.
pub const DEFAULT_TABLE: &str = "feature_flags";

/// Errors configuring or connecting the PostgreSQL provider or store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The table name is not a plain identifier.
    #[error("invalid table name {name:?}: {reason}")]
    InvalidTable {
        /// The name given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The connection URL cannot be parsed.
    #[error("invalid PostgreSQL URL: {0}")]
    InvalidUrl(#[source] sqlx::Error),
    /// Created outside a Tokio runtime (the connection pool needs one).
    #[error("the PostgreSQL provider and store must be created within a Tokio runtime")]
    NoRuntime,
    /// The database refused an operation.
    #[error("postgres: {operation} failed: {source}")]
    Database {
        /// What was being done.
        operation: &'static str,
        /// The database's error.
        #[source]
        source: sqlx::Error,
    },
}
