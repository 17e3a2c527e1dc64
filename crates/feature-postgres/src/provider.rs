//! The provider: follows the table with LISTEN/NOTIFY.

use crate::schema::{schema_version, SCHEMA_VERSION};
use crate::store::{all_rows, decode_row, Db};
use crate::PostgresError;
use async_trait::async_trait;
use feature_core::metrics::Metrics;
use feature_core::provider::{Provider, ProviderError, ProviderStatus, Sink};
use feature_store::{Event, ItemKind, Loaded, Notice, Row, Source, SyncOptions, SyncProvider};
use serde::Deserialize;
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::SqlStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

fn backend(operation: &'static str) -> impl FnOnce(sqlx::Error) -> ProviderError {
    move |e| ProviderError::Backend {
        provider: "postgres",
        operation,
        source: Box::new(e),
    }
}

/// The PostgreSQL side of the provider engine.
#[derive(Debug)]
pub struct PgSource {
    db: Arc<Db>,
    timeout: Duration,
    /// Run the migrations on connect (development); otherwise only check the schema version.
    migrate: bool,
}

/// A live listening connection; dropping it stops the listener.
#[derive(Debug)]
pub struct PgSession {
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for PgSession {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// A notice as the triggers send it: `{"kind": "flag"|"segment", "key": "...", "revision": N}`
/// after a change, `{"resync": true, "revision": N}` after a `TRUNCATE`; `N` is the id of the
/// (last) audit row the change wrote.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    kind: Option<String>,
    key: Option<String>,
    resync: Option<bool>,
    revision: u64,
}

/// A well-formed notice, still to be checked against the audit log.
#[derive(Debug, PartialEq)]
enum Claim {
    Changed(Notice),
    Resync { revision: u64 },
}

impl Claim {
    fn revision(&self) -> u64 {
        match self {
            Claim::Changed(n) => n.revision.unwrap_or(0),
            Claim::Resync { revision } => *revision,
        }
    }
}

/// Parses a notice; `None` for anything the triggers do not send (any role may `NOTIFY` the
/// channel).
fn parse_notice(payload: &str) -> Option<Claim> {
    let p = serde_json::from_str::<Payload>(payload).ok()?;
    match p {
        Payload {
            kind: Some(kind),
            key: Some(key),
            resync: None,
            revision,
        } => Some(Claim::Changed(Notice {
            kind: ItemKind::parse(&kind)?,
            key,
            revision: Some(revision),
        })),
        Payload {
            kind: None,
            key: None,
            resync: Some(true),
            revision,
        } => Some(Claim::Resync { revision }),
        _ => None,
    }
}

/// Checks notices against the audit log before the engine acts on them: a notice is acted on
/// only when it is well-formed, newer than the last one acted on, and the audit row it names
/// exists and records that change (one primary-key lookup). Junk and forged notices cost no
/// reload.
struct Gate {
    pool: sqlx::PgPool,
    lookup: SqlStr,
    /// The highest revision acted on (or the log's last id when listening started).
    seen: u64,
}

impl Gate {
    async fn admit(&mut self, payload: &str) -> Option<Event> {
        let Some(claim) = parse_notice(payload) else {
            tracing::debug!(target: "feature::postgres", "malformed notice ignored");
            return None;
        };
        let revision = claim.revision();
        if revision <= self.seen {
            tracing::debug!(target: "feature::postgres", revision, "stale or repeated notice ignored");
            return None;
        }
        let row: Result<Option<(String, String, String)>, sqlx::Error> =
            sqlx::query_as(self.lookup.clone())
                .bind(i64::try_from(revision).unwrap_or(i64::MAX))
                .fetch_optional(&self.pool)
                .await;
        let genuine = match (&claim, row) {
            (Claim::Changed(n), Ok(Some((kind, key, _)))) => {
                kind == n.kind.as_str() && key == n.key
            }
            (Claim::Resync { .. }, Ok(Some((_, _, action)))) => action == "truncate",
            (_, Ok(None)) => false,
            // The check failed (the database is in trouble): reload to be safe, without
            // trusting the notice's revision (a forged one must not hide later notices).
            (_, Err(_)) => return Some(Event::Resync),
        };
        if !genuine {
            tracing::debug!(target: "feature::postgres", revision, "notice not matching the audit log ignored");
            return None;
        }
        self.seen = revision;
        Some(match claim {
            Claim::Changed(n) => Event::Changed(n),
            Claim::Resync { .. } => Event::Resync,
        })
    }
}

#[async_trait]
impl Source for PgSource {
    type Session = PgSession;

    fn name(&self) -> &'static str {
        "postgres"
    }

    fn origin(&self) -> String {
        format!("postgres:{}", self.db.sql.table)
    }

    async fn connect(&self) -> Result<(PgSession, mpsc::Receiver<Event>), ProviderError> {
        if self.migrate {
            self.db.ensure_schema().await.map_err(backend("migrate"))?;
        } else {
            let found = schema_version(&self.db.pool, &self.db.sql.table)
                .await
                .map_err(backend("schema"))?;
            if found < SCHEMA_VERSION {
                return Err(ProviderError::Backend {
                    provider: "postgres",
                    operation: "schema",
                    source: Box::new(PostgresError::SchemaOutdated {
                        found,
                        needed: SCHEMA_VERSION,
                    }),
                });
            }
        }
        // A pool of one for the listener alone, so that its connection never serves queries.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(self.timeout)
            .connect_with(self.db.options.clone())
            .await
            .map_err(backend("listen"))?;
        let mut listener = PgListener::connect_with(&pool)
            .await
            .map_err(backend("listen"))?;
        listener.eager_reconnect(false);
        listener.ignore_pool_close_event(true);
        listener
            .listen(&self.db.sql.table.channel())
            .await
            .map_err(backend("listen"))?;
        // Listening: every change from now on is noticed; older ones are in the first load.
        let seen: i64 = sqlx::query_scalar(self.db.sql.revision.clone())
            .fetch_one(&self.db.pool)
            .await
            .map_err(backend("listen"))?;
        let mut gate = Gate {
            pool: self.db.pool.clone(),
            lookup: self
                .db
                .sql
                .table
                .sql("SELECT kind, key, action FROM {t}_audit WHERE id = $1"),
            seen: seen.max(0) as u64,
        };
        let (tx, rx) = mpsc::channel(1024);
        let task = tokio::spawn(async move {
            let _pool = pool;
            loop {
                let event = match listener.try_recv().await {
                    Ok(Some(n)) => match gate.admit(n.payload()).await {
                        Some(event) => event,
                        None => continue,
                    },
                    Ok(None) => Event::Lost(ProviderError::Backend {
                        provider: "postgres",
                        operation: "listen",
                        source: "connection lost".into(),
                    }),
                    Err(e) => Event::Lost(backend("listen")(e)),
                };
                let lost = matches!(event, Event::Lost(_));
                if tx.send(event).await.is_err() || lost {
                    return;
                }
            }
        });
        Ok((PgSession { listener: task }, rx))
    }

    async fn load_all(
        &self,
        _session: &mut PgSession,
        _metrics: &dyn Metrics,
    ) -> Result<Loaded, ProviderError> {
        let mut tx = self.db.pool.begin().await.map_err(backend("load"))?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(backend("load"))?;
        let revision: i64 = sqlx::query_scalar(self.db.sql.revision.clone())
            .fetch_one(&mut *tx)
            .await
            .map_err(backend("load"))?;
        let rows = all_rows(&self.db.sql, &mut tx).await;
        let rows = rows.map_err(backend("load"))?;
        tx.commit().await.map_err(backend("load"))?;
        Ok(Loaded {
            rows,
            revision: Some(revision.max(0) as u64),
        })
    }

    async fn load_keys(
        &self,
        _session: &mut PgSession,
        keys: &[(ItemKind, String)],
        _metrics: &dyn Metrics,
    ) -> Result<Vec<(ItemKind, String, Option<Row>)>, ProviderError> {
        let mut out = Vec::with_capacity(keys.len());
        for kind in [ItemKind::Segment, ItemKind::Flag] {
            let wanted: Vec<String> = keys
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, key)| key.clone())
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let found = sqlx::query(self.db.sql.item(kind).some.clone())
                .bind(&wanted)
                .fetch_all(&self.db.pool)
                .await
                .map_err(backend("update"))?;
            let mut rows = std::collections::HashMap::new();
            for r in &found {
                let row = decode_row(kind, r).map_err(backend("update"))?;
                rows.insert(row.key.clone(), row);
            }
            for key in wanted {
                let row = rows.remove(&key);
                out.push((kind, key, row));
            }
        }
        Ok(out)
    }

    async fn revision(&self, _session: &mut PgSession) -> Result<Option<u64>, ProviderError> {
        let r: i64 = sqlx::query_scalar(self.db.sql.revision.clone())
            .fetch_one(&self.db.pool)
            .await
            .map_err(backend("revision"))?;
        Ok(Some(r.max(0) as u64))
    }
}

/// Flags from a PostgreSQL table, kept current with LISTEN/NOTIFY. See the [crate docs](crate).
#[derive(Debug)]
pub struct PostgresProvider {
    inner: SyncProvider<PgSource>,
}

impl PostgresProvider {
    /// A provider for `url` with the defaults (table `feature_flags`).
    pub fn new(url: &str) -> Result<PostgresProvider, PostgresError> {
        PostgresProvider::builder(url).build()
    }

    /// A builder, to set the table, timeouts and fallbacks.
    pub fn builder(url: impl Into<String>) -> PostgresBuilder {
        PostgresBuilder {
            url: url.into(),
            table: crate::DEFAULT_TABLE.to_owned(),
            options: SyncOptions::default(),
            tls_root: None,
            migrate: false,
        }
    }

    /// The engine's settings.
    pub fn options(&self) -> &SyncOptions {
        self.inner.options()
    }
}

#[async_trait]
impl Provider for PostgresProvider {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn start(&self, sink: Arc<dyn Sink>) -> Result<(), ProviderError> {
        self.inner.start(sink).await
    }

    fn status(&self) -> ProviderStatus {
        self.inner.status()
    }

    async fn close(&self) {
        self.inner.close().await;
        self.inner.source().db.pool.close().await;
    }
}

/// Builds a [`PostgresProvider`].
#[derive(Clone)]
pub struct PostgresBuilder {
    url: String,
    table: String,
    options: SyncOptions,
    /// PEM root certificate(s) trusted for TLS, besides the built-in roots.
    tls_root: Option<Vec<u8>>,
    migrate: bool,
}

impl std::fmt::Debug for PostgresBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBuilder")
            .field("url", &feature_core::provider::redact_url(&self.url))
            .field("table", &self.table)
            .field("options", &self.options)
            .field("tls_root_certificate", &self.tls_root.is_some())
            .field("migrate", &self.migrate)
            .finish()
    }
}

impl PostgresBuilder {
    /// The flag table (default `feature_flags`; see [`TableName`](crate::TableName)).
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// Whether the provider creates and upgrades the schema when it connects (default `false`).
    /// That needs the rights of the table's owner; meant for development and tests. In
    /// production run `featurectl migrate` as the migrator role once per release, and give each
    /// service instance the reader role (`SELECT` and `LISTEN` only, see
    /// [`role_grants`](crate::role_grants)); without this option the provider only checks
    /// that the schema is recent enough, and reports
    /// [`SchemaOutdated`](PostgresError::SchemaOutdated) until it is.
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    feature_store::sync_option_setters!(
        store: "the database",
        revision: "the audit log's last revision",
    );

    /// Trusts `pem` (one or more PEM certificates, e.g. a private CA) for TLS to the database,
    /// besides the built-in roots; like `sslrootcert=FILE` in the URL, from memory. It takes
    /// effect with `sslmode=verify-ca` or `verify-full` in the URL (`require` encrypts without
    /// checking the certificate, as libpq does). Crate feature `rustls`.
    #[cfg(feature = "rustls")]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root = Some(pem.into());
        self
    }

    /// Checks the URL and table name; connects only when started.
    pub fn build(self) -> Result<PostgresProvider, PostgresError> {
        self.options.validate()?;
        crate::TableName::new(&self.table)?;
        let mut options = crate::connect_options(&self.url)?;
        if let Some(pem) = self.tls_root {
            options = options.ssl_root_cert_from_pem(pem);
        }
        let db = Db::with_options(options, &self.table, 2, self.options.timeout)?;
        Ok(PostgresProvider {
            inner: SyncProvider::new(
                PgSource {
                    db: Arc::new(db),
                    timeout: self.options.timeout,
                    migrate: self.migrate,
                },
                self.options,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_intervals_are_refused_when_building() {
        for builder in [
            PostgresProvider::builder("postgres://127.0.0.1/test").refresh_interval(Duration::ZERO),
            PostgresProvider::builder("postgres://127.0.0.1/test").timeout(Duration::ZERO),
        ] {
            assert!(matches!(
                builder.build(),
                Err(PostgresError::InvalidOptions(_))
            ));
        }
    }

    #[test]
    fn only_notices_as_the_triggers_send_them_parse() {
        assert_eq!(
            parse_notice(r#"{"kind": "flag", "key": "a", "revision": 7}"#),
            Some(Claim::Changed(Notice {
                kind: ItemKind::Flag,
                key: "a".into(),
                revision: Some(7)
            }))
        );
        assert_eq!(
            parse_notice(r#"{"resync": true, "revision": 9}"#),
            Some(Claim::Resync { revision: 9 })
        );
        for junk in [
            "",
            "x",
            "null",
            "[]",
            "{}",
            r#"{"resync": true}"#,
            r#"{"resync": false, "revision": 1}"#,
            r#"{"kind": "flag", "key": "a"}"#,
            r#"{"kind": "dog", "key": "a", "revision": 1}"#,
            r#"{"kind": "flag", "key": "a", "revision": -1}"#,
            r#"{"kind": "flag", "key": "a", "revision": 1, "resync": true}"#,
            r#"{"kind": "flag", "key": "a", "revision": 1, "extra": 1}"#,
        ] {
            assert_eq!(parse_notice(junk), None, "{junk}");
        }
    }
}
