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
//!     .migrate(true) // development only: in production `featurectl migrate` runs once
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
//! | (none) | everything: provider, write API, migrations; TLS is not compiled in, and a URL that asks for it is refused ([`PostgresError::TlsNotCompiled`]) |
//! | `rustls` | TLS with rustls (aws-lc): `sslmode=require` encrypts, `verify-ca` also checks the certificate chain, `verify-full` also the host name; `sslrootcert=FILE` in the URL or [`PostgresBuilder::tls_root_certificate`] adds a private CA to the built-in (webpki) roots. The `feature` crate's `postgres` feature turns it on |
//!
//! ```no_run
//! # #[cfg(feature = "rustls")]
//! # fn f() -> Result<(), Box<dyn std::error::Error>> {
//! # let rt = tokio::runtime::Runtime::new()?; let _g = rt.enter();
//! use feature_postgres::PostgresProvider;
//! let provider = PostgresProvider::builder("postgres://app@db.internal/app?sslmode=verify-full")
//!     .tls_root_certificate(std::fs::read("/etc/app/db-ca.pem")?)
//!     .build()?;
//! # drop(provider); Ok(()) }
//! ```
//!
//! ## Schema
//!
//! The schema is created and upgraded by `featurectl migrate` (or [`migrate`],
//! [`PostgresStore::migrate`]) run as the owner, the *migrator* role; the provider does it
//! only with [`PostgresBuilder::migrate`]`(true)` (development), and otherwise only checks
//! that the schema is recent enough ([`PostgresError::SchemaOutdated`] until it is), so that
//! service instances can run as a *reader* with `SELECT` and `LISTEN` only. The GRANTs of the
//! reader, writer and migrator roles are in `docs/postgres-roles.md` ([`role_grants`]).
//! [`PostgresStore::connect`] migrates when the schema is behind and its role may; when it is
//! up to date it only reads the version. Migrations are numbered, recorded in
//! `{table}_migrations`, run in one transaction under an advisory lock (concurrent starts are
//! safe) and harmless when run again. With the default
//! table name `feature_flags` (set with [`PostgresBuilder::table`] or `FEATURE_TABLE`; it must be
//! a plain lower-case identifier of at most 40 characters, see [`TableName`]):
//!
//! | object | what it holds |
//! |---|---|
//! | `feature_flags (key text primary key, definition jsonb, version bigint, created_at, updated_at timestamptz, updated_by text)` | one row per flag; `definition` is the flag in the file format without `key`, `version`, `createdAt`, `updatedAt` |
//! | `feature_flags_segments` (same columns) | one row per segment |
//! | `feature_flags_audit (id bigint, kind, key, action, actor, at, version, before jsonb, after jsonb, prev_hash, hash bytea)` | one row per change, written by trigger, so changes made by hand in SQL are audited too (actor: the database user); append-only (a trigger refuses `UPDATE`, `DELETE`, `TRUNCATE`); each row's `hash` chains to the previous row's (see [`verify_audit`]) |
//! | `feature_flags_audit_head (last_id, last_hash)` | the chain's end; its row lock orders concurrent writers |
//! | `feature_flags_changed()` trigger | writes the audit row and sends the notice; runs as its owner, so writers need no right on the audit log |
//! | `feature_flags_truncated()` trigger | before a `TRUNCATE`: one audit row (action `truncate`) per row removed, then the notice |
//! | channel `feature_flags_changes` | `NOTIFY` payload `{"kind": "flag", "key": "...", "revision": <audit id>}`; `{"resync": true, "revision": <last audit id>}` after `TRUNCATE` |
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
//! visible latency is a few milliseconds (see BENCHMARKS.md). Any role may `NOTIFY` the
//! channel, so a notice is acted on only when it is well-formed, newer than the last one, and
//! the audit row it names exists and records that change (one primary-key lookup); junk and
//! forged notices are ignored and cost no reload. A notice whose revision skips
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

mod audit;
mod provider;
mod schema;
mod store;
mod tokens;

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use std::str::FromStr;

pub use audit::{verify_audit, AuditBreak, AuditVerdict};
pub use feature_store::{
    push, Action, Change, ChangeOp, FlagStore, HistoryEntry, ItemKind, PushError, PushOptions, Row,
    SyncOptions, WriteError, Written,
};
pub use provider::{PgSession, PgSource, PostgresBuilder, PostgresProvider};
pub use schema::{migrate, role_grants, schema_version, RoleGrants, TableName, SCHEMA_VERSION};
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
    /// A role or schema name given for the GRANT statements is not a plain identifier.
    #[error("invalid {what} name {name:?}: only lower-case ASCII letters, digits and _ (not first), at most 63")]
    InvalidIdentifier {
        /// What the name is for.
        what: &'static str,
        /// The name given.
        name: String,
    },
    /// The table's schema is older than this version of the crate needs: run the migrations
    /// (`featurectl migrate`, as the migrator role).
    #[error("the flag table's schema is at version {found}, this program needs {needed}: run `featurectl migrate`")]
    SchemaOutdated {
        /// The version found (0: no schema).
        found: i32,
        /// The version needed.
        needed: i32,
    },
    /// The connection URL cannot be parsed.
    #[error("invalid PostgreSQL URL: {0}")]
    InvalidUrl(#[source] sqlx::Error),
    /// The URL asks for TLS (`sslmode=require`, `verify-ca` or `verify-full`) but the crate
    /// was built without its `rustls` feature: refused up front rather than at every connect.
    #[error("the PostgreSQL URL asks for TLS (sslmode={mode}) but TLS is not compiled in (enable the `rustls` feature)")]
    TlsNotCompiled {
        /// The `sslmode` asked for.
        mode: &'static str,
    },
    /// Created outside a Tokio runtime (the connection pool needs one).
    #[error("the PostgreSQL provider and store must be created within a Tokio runtime")]
    NoRuntime,
    /// A setting of the engine cannot be used (a zero refresh interval or timeout).
    #[error(transparent)]
    InvalidOptions(#[from] feature_store::SyncOptionsError),
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

/// Parses a connection URL; refuses one that asks for TLS when TLS is not compiled in.
pub(crate) fn connect_options(url: &str) -> Result<PgConnectOptions, PostgresError> {
    let options = PgConnectOptions::from_str(url).map_err(PostgresError::InvalidUrl)?;
    let mode = match options.get_ssl_mode() {
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
        _ => return Ok(options),
    };
    #[cfg(feature = "rustls")]
    {
        // sqlx checks the server's certificate with rustls's process-wide crypto provider; when
        // the build has more than one (another dependency enabling ring beside aws-lc), there is
        // none until someone installs it, and the handshake would panic. Install aws-lc, as
        // everywhere in this toolkit, unless the application installed its own.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        }
        let _ = mode;
        Ok(options)
    }
    #[cfg(not(feature = "rustls"))]
    Err(PostgresError::TlsNotCompiled { mode })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_that_asks_for_tls_needs_tls_compiled_in() {
        for mode in ["require", "verify-ca", "verify-full"] {
            let url = format!("postgres://app@db.example/app?sslmode={mode}");
            let result = connect_options(&url);
            #[cfg(feature = "rustls")]
            assert!(result.is_ok(), "{mode}: {result:?}");
            #[cfg(not(feature = "rustls"))]
            assert!(
                matches!(result, Err(PostgresError::TlsNotCompiled { mode: m }) if m == mode),
                "{mode}: {result:?}"
            );
        }
        for url in [
            "postgres://app@db.example/app",
            "postgres://app@db.example/app?sslmode=prefer",
            "postgres://app@db.example/app?sslmode=disable",
        ] {
            assert!(connect_options(url).is_ok(), "{url}");
        }
    }
}
