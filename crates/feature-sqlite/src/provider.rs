//! The provider: polls the file's revision counter and reads back what changed.

use crate::schema::Db;
use crate::store::{all_rows, decode_row};
use crate::SqliteError;
use async_trait::async_trait;
use feature_core::metrics::Metrics;
use feature_core::provider::{Provider, ProviderError, ProviderStatus, Sink};
use feature_store::{
    Event, ItemKind, Loaded, Notice, Row, Source, SyncOptions, SyncOptionsError, SyncProvider,
};
use sqlx::SqliteConnection;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Default time between two reads of the revision counter.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(200);

fn backend(operation: &'static str) -> impl FnOnce(sqlx::Error) -> ProviderError {
    move |e| ProviderError::Backend {
        provider: "sqlite",
        operation,
        source: Box::new(e),
    }
}

fn opening(e: SqliteError) -> ProviderError {
    ProviderError::Backend {
        provider: "sqlite",
        operation: "open",
        source: Box::new(e),
    }
}

/// The SQLite side of the provider engine.
#[derive(Debug)]
pub struct SqliteSource {
    db: Arc<Db>,
    poll: Duration,
}

/// A live poller; dropping it stops the polling.
#[derive(Debug)]
pub struct SqliteSession {
    poller: tokio::task::JoinHandle<()>,
}

impl Drop for SqliteSession {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

/// Where the poller is: the revision counter and the last audit row seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    revision: i64,
    audit: i64,
}

async fn mark(conn: &mut SqliteConnection) -> Result<Mark, sqlx::Error> {
    let (revision, audit): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT revision FROM feature_revision WHERE one = 1), \
                (SELECT coalesce(max(id), 0) FROM feature_audit)",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(Mark { revision, audit })
}

/// One poll: the events for what changed since `seen` (none when the counter did not move),
/// and the new mark.
async fn poll(db: &Db, seen: Mark) -> Result<(Vec<Event>, Mark), sqlx::Error> {
    let revision: i64 = sqlx::query_scalar("SELECT revision FROM feature_revision WHERE one = 1")
        .fetch_one(&db.pool)
        .await?;
    if revision == seen.revision {
        return Ok((Vec::new(), seen));
    }
    // The counter and the audit rows read in one snapshot.
    let mut tx = db.pool.begin().await?;
    let now = mark(&mut tx).await?;
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT id, kind, key FROM feature_audit WHERE id > ? ORDER BY id")
            .bind(seen.audit)
            .fetch_all(&mut *tx)
            .await?;
    tx.commit().await?;
    let mut events = Vec::with_capacity(rows.len() + 1);
    for (id, kind, key) in &rows {
        match ItemKind::parse(kind) {
            Some(kind) => events.push(Event::Changed(Notice {
                kind,
                key: key.clone(),
                revision: Some(*id as u64),
            })),
            None => events.push(Event::Resync),
        }
    }
    // Each change through the write API moves the counter once and writes one audit row; a
    // counter that moved more was changed by hand in SQL: reload everything.
    if now.revision - seen.revision != rows.len() as i64 {
        events.push(Event::Resync);
    }
    Ok((events, now))
}

#[async_trait]
impl Source for SqliteSource {
    type Session = SqliteSession;

    fn name(&self) -> &'static str {
        "sqlite"
    }

    /// `sqlite:FILE_NAME`: the file's name without its directory, as diagnostics and health
    /// reports show it (no paths in them).
    fn origin(&self) -> String {
        let name = self.db.path.file_name().unwrap_or(self.db.path.as_os_str());
        format!("sqlite:{}", name.to_string_lossy())
    }

    async fn connect(&self) -> Result<(SqliteSession, mpsc::Receiver<Event>), ProviderError> {
        self.db.ensure_schema().await.map_err(opening)?;
        let mut conn = self.db.pool.acquire().await.map_err(backend("connect"))?;
        let mut seen = mark(&mut conn).await.map_err(backend("connect"))?;
        drop(conn);
        let (tx, rx) = mpsc::channel(1024);
        let (db, every) = (self.db.clone(), self.poll);
        let poller = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match poll(&db, seen).await {
                    Ok((events, now)) => {
                        seen = now;
                        for e in events {
                            if tx.send(e).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Event::Lost(backend("poll")(e))).await;
                        return;
                    }
                }
            }
        });
        Ok((SqliteSession { poller }, rx))
    }

    async fn load_all(
        &self,
        _session: &mut SqliteSession,
        _metrics: &dyn Metrics,
    ) -> Result<Loaded, ProviderError> {
        let mut tx = self.db.pool.begin().await.map_err(backend("load"))?;
        let seen = mark(&mut tx).await.map_err(backend("load"))?;
        let rows = all_rows(&mut tx).await.map_err(backend("load"))?;
        tx.commit().await.map_err(backend("load"))?;
        Ok(Loaded {
            rows,
            revision: Some(seen.audit.max(0) as u64),
        })
    }

    async fn load_keys(
        &self,
        _session: &mut SqliteSession,
        keys: &[(ItemKind, String)],
        _metrics: &dyn Metrics,
    ) -> Result<Vec<(ItemKind, String, Option<Row>)>, ProviderError> {
        let mut out = Vec::with_capacity(keys.len());
        let mut tx = self.db.pool.begin().await.map_err(backend("update"))?;
        for kind in [ItemKind::Segment, ItemKind::Flag] {
            let wanted: Vec<&String> = keys
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, key)| key)
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let sql = match kind {
                ItemKind::Flag => "SELECT key, definition, version, updated_at, updated_by FROM feature_flags WHERE key IN (SELECT value FROM json_each(?))",
                ItemKind::Segment => "SELECT key, definition, version, updated_at, updated_by FROM feature_segments WHERE key IN (SELECT value FROM json_each(?))",
            };
            let list =
                serde_json::Value::from(wanted.iter().map(|k| k.as_str()).collect::<Vec<_>>())
                    .to_string();
            let found = sqlx::query(sql)
                .bind(list)
                .fetch_all(&mut *tx)
                .await
                .map_err(backend("update"))?;
            let mut rows = std::collections::HashMap::new();
            for r in &found {
                let row = decode_row(kind, r).map_err(backend("update"))?;
                rows.insert(row.key.clone(), row);
            }
            for key in wanted {
                out.push((kind, key.clone(), rows.remove(key)));
            }
        }
        tx.commit().await.map_err(backend("update"))?;
        Ok(out)
    }

    async fn revision(&self, _session: &mut SqliteSession) -> Result<Option<u64>, ProviderError> {
        let mut conn = self.db.pool.acquire().await.map_err(backend("revision"))?;
        let seen = mark(&mut conn).await.map_err(backend("revision"))?;
        Ok(Some(seen.audit.max(0) as u64))
    }
}

/// Flags from an SQLite file, kept current by polling. See the [crate docs](crate).
#[derive(Debug)]
pub struct SqliteProvider {
    inner: SyncProvider<SqliteSource>,
}

impl SqliteProvider {
    /// A provider for `url` (`sqlite://path/to/feature.db`) with the defaults.
    pub fn new(url: &str) -> Result<SqliteProvider, SqliteError> {
        SqliteProvider::builder(url).build()
    }

    /// A builder, to set the poll interval, timeouts and fallbacks.
    pub fn builder(url: impl Into<String>) -> SqliteBuilder {
        SqliteBuilder {
            url: url.into(),
            poll: DEFAULT_POLL_INTERVAL,
            options: SyncOptions::default(),
        }
    }

    /// The engine's settings.
    pub fn options(&self) -> &SyncOptions {
        self.inner.options()
    }
}

#[async_trait]
impl Provider for SqliteProvider {
    fn name(&self) -> &'static str {
        "sqlite"
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

/// Builds an [`SqliteProvider`].
#[derive(Debug, Clone)]
pub struct SqliteBuilder {
    url: String,
    poll: Duration,
    options: SyncOptions,
}

impl SqliteBuilder {
    /// How often the revision counter is read (default 200 ms): a write by any process is
    /// published within about this time.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll = every;
        self
    }

    feature_store::sync_option_setters!(
        store: "the database file",
        revision: "the audit log's last id",
    );

    /// Checks the URL and the settings; opens the file only when started.
    pub fn build(self) -> Result<SqliteProvider, SqliteError> {
        self.options.validate()?;
        if self.poll.is_zero() {
            return Err(SqliteError::InvalidOptions(SyncOptionsError::Zero {
                option: "poll_interval",
            }));
        }
        let db = Db::new(&self.url, 2, self.options.timeout)?;
        Ok(SqliteProvider {
            inner: SyncProvider::new(
                SqliteSource {
                    db: Arc::new(db),
                    poll: self.poll,
                },
                self.options,
            ),
        })
    }
}
