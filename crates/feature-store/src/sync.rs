//! The provider engine shared by the store providers: connect, load, follow change notices,
//! fall back and reconnect.
//!
//! A store plugs in as a [`Source`]; [`SyncProvider`] turns it into a
//! [`Provider`](feature_core::provider::Provider) with this behaviour:
//!
//! - **Start**: connect, subscribe to change notices, then load every row, all within
//!   [`SyncOptions::start_timeout`]. On success the flags are published and the provider is
//!   `Ready` (`Degraded` when some rows were skipped as invalid).
//! - **Store down at start**: the last snapshot written to [`SyncOptions::snapshot_path`] is
//!   published if there is one, else the [`SyncOptions::bootstrap_file`]; the provider is
//!   `Degraded`. With neither, nothing is published and the provider is `Unavailable`: the
//!   client serves the callers' defaults with `ERROR`/`CLIENT_NOT_READY`. `start` returns `Ok`
//!   in both cases and keeps trying in the background.
//! - **Live updates**: each notice names a flag or segment; the notices that arrived together
//!   are read back in one query and a new snapshot is published. A notice whose revision shows
//!   that earlier notices were missed triggers a full reload.
//! - **Store down later**: the last good snapshot keeps serving, the provider is `Degraded`
//!   and not connected, and reconnects with capped exponential [`Backoff`](crate::Backoff) with
//!   jitter. Notices sent while disconnected are lost, so every reconnect reloads everything.
//! - **Periodic check**: every [`SyncOptions::refresh_interval`] the store's revision is read
//!   (one cheap query) and everything is reloaded when it moved without a notice.
//!
//! - **Engine task dies** (a [`Source`] panics, or the loop ends): the provider turns
//!   `Unavailable`, not connected, with the reason in its status; the last published flags
//!   keep serving but are no longer updated.
//!
//! Evaluation never waits on any of this: snapshots are published whole and swapped in by the
//! client; rows are parsed and compiled on Tokio's blocking threads, never on the async
//! workers. Snapshots are only published when the flags actually changed.

use crate::backoff::Backoff;
use crate::disk;
use crate::rows::{Built, ItemKind, Row, Rows};
use crate::task::{spawn_supervised, Supervised, TaskError};
use async_trait::async_trait;
use feature_core::metrics::Metrics;
use feature_core::model::FlagDocument;
use feature_core::provider::{Provider, ProviderError, ProviderState, ProviderStatus, Sink};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

/// A change notice from a store: this item changed (re-read it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Flag or segment.
    pub kind: ItemKind,
    /// The key.
    pub key: String,
    /// The store's revision after the change, when the store numbers its changes
    /// consecutively (used to detect missed notices).
    pub revision: Option<u64>,
}

/// What a source's subscription reports.
#[derive(Debug)]
pub enum Event {
    /// An item changed.
    Changed(Notice),
    /// Something changed that notices cannot describe: reload everything.
    Resync,
    /// The subscription is broken: reconnect.
    Lost(ProviderError),
}

/// Every row of a store with the store's revision at the time.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The rows.
    pub rows: Vec<Row>,
    /// The store's revision, when it has one (compared on periodic checks).
    pub revision: Option<u64>,
}

/// A store as the provider engine sees it. Implemented by the PostgreSQL and Redis crates.
#[async_trait]
pub trait Source: Send + Sync + 'static {
    /// A live connection with its subscription. Dropping it must end the subscription.
    type Session: Send + 'static;

    /// Provider name (`postgres`, `redis`).
    fn name(&self) -> &'static str;

    /// Where rows come from, for diagnostics (`postgres:feature_flags`, `redis:feature`).
    fn origin(&self) -> String;

    /// Connects and subscribes to change notices. Every change committed after this returns
    /// is reported on the receiver.
    async fn connect(&self) -> Result<(Self::Session, mpsc::Receiver<Event>), ProviderError>;

    /// Reads every row.
    async fn load_all(
        &self,
        session: &mut Self::Session,
        metrics: &dyn Metrics,
    ) -> Result<Loaded, ProviderError>;

    /// Reads the current state of these items (`None`: it no longer exists).
    async fn load_keys(
        &self,
        session: &mut Self::Session,
        keys: &[(ItemKind, String)],
        metrics: &dyn Metrics,
    ) -> Result<Vec<(ItemKind, String, Option<Row>)>, ProviderError>;

    /// The store's current revision, when it has one; `None` forces a full reload.
    async fn revision(&self, session: &mut Self::Session) -> Result<Option<u64>, ProviderError>;

    /// Whether `e` is a refusal that trying again cannot cure (a server answering 401 or 403
    /// to the credentials given): the provider then stops reconnecting, keeps serving what it
    /// has, and its status says why. Default: no error is.
    fn is_refusal(&self, e: &ProviderError) -> bool {
        let _ = e;
        false
    }
}

/// Timing and fallback settings of a store provider.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// How long `start` tries the store before falling back (default 5 s; keep it below the
    /// client's start timeout, 10 s by default).
    pub start_timeout: Duration,
    /// Time limit of each later store operation: connect, load, read back (default 5 s).
    pub timeout: Duration,
    /// How often the store's revision is checked (default 30 s).
    pub refresh_interval: Duration,
    /// First reconnection delay (default 200 ms).
    pub backoff_initial: Duration,
    /// Longest reconnection delay (default 30 s).
    pub backoff_max: Duration,
    /// Where the last good flags are written after every change, and read back when the store
    /// is down at start (default: none).
    pub snapshot_path: Option<PathBuf>,
    /// A flag file (YAML, or JSON for `.json`) served when the store is down at start and no
    /// snapshot was written yet (default: none).
    pub bootstrap_file: Option<PathBuf>,
}

/// A [`SyncOptions`] value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncOptionsError {
    /// A duration that must be positive is zero (a zero `refresh_interval` would make the
    /// periodic check spin, a zero `timeout` would fail every operation).
    #[error("the store provider's {option} must be longer than zero")]
    Zero {
        /// `refresh_interval` or `timeout`.
        option: &'static str,
    },
}

impl SyncOptions {
    /// Checks the settings: `refresh_interval` and `timeout` must be longer than zero.
    /// [`SyncProvider`]'s `start` refuses options that fail this check; builders call it to
    /// refuse them earlier.
    pub fn validate(&self) -> Result<(), SyncOptionsError> {
        for (option, d) in [
            ("refresh_interval", self.refresh_interval),
            ("timeout", self.timeout),
        ] {
            if d.is_zero() {
                return Err(SyncOptionsError::Zero { option });
            }
        }
        Ok(())
    }
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            start_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            refresh_interval: Duration::from_secs(30),
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            snapshot_path: None,
            bootstrap_file: None,
        }
    }
}

struct Shared {
    status: Mutex<ProviderStatus>,
    task: Mutex<Option<Supervised>>,
    closed: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn status(&self) -> MutexGuard<'_, ProviderStatus> {
        // Every update is a plain assignment of fields: a poisoned lock holds consistent data.
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn task(&self) -> MutexGuard<'_, Option<Supervised>> {
        self.task.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The engine task ended without being stopped: nothing keeps the flags current any more.
    fn task_died(&self, provider: &'static str, e: TaskError) {
        tracing::error!(target: "feature::store", provider, "{e}");
        crate::task::mark_task_died(&mut self.status(), provider, e);
    }
}

/// A [`Provider`] following a [`Source`]: loads it, follows its change notices, reloads fully
/// after a reconnect, and keeps serving the last good snapshot while the source is down.
pub struct SyncProvider<S: Source> {
    source: Arc<S>,
    options: SyncOptions,
    shared: Arc<Shared>,
}

impl<S: Source> std::fmt::Debug for SyncProvider<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncProvider")
            .field("origin", &self.source.origin())
            .field("state", &self.shared.status().state)
            .finish()
    }
}

impl<S: Source> SyncProvider<S> {
    /// A provider following `source`.
    pub fn new(source: S, options: SyncOptions) -> Self {
        SyncProvider {
            source: Arc::new(source),
            options,
            shared: Arc::new(Shared {
                status: Mutex::new(ProviderStatus::default()),
                task: Mutex::new(None),
                closed: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// The source.
    pub fn source(&self) -> &Arc<S> {
        &self.source
    }

    /// The settings.
    pub fn options(&self) -> &SyncOptions {
        &self.options
    }
}

impl<S: Source> Drop for SyncProvider<S> {
    fn drop(&mut self) {
        if let Some(t) = self.shared.task().take() {
            t.abort();
        }
    }
}

#[async_trait]
impl<S: Source> Provider for SyncProvider<S> {
    fn name(&self) -> &'static str {
        self.source.name()
    }

    async fn start(&self, sink: Arc<dyn Sink>) -> Result<(), ProviderError> {
        if self.shared.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ProviderError::Closed);
        }
        if let Some(t) = self.shared.task().take() {
            t.abort();
        }
        if let Err(e) = self.options.validate() {
            let err = ProviderError::Backend {
                provider: self.source.name(),
                operation: "start",
                source: Box::new(e.clone()),
            };
            let mut st = self.shared.status();
            st.state = ProviderState::Unavailable;
            st.last_error = Some((
                Arc::new(ProviderError::Backend {
                    provider: self.source.name(),
                    operation: "start",
                    source: Box::new(e),
                }),
                SystemTime::now(),
            ));
            return Err(err);
        }
        let mut runner = Runner {
            source: self.source.clone(),
            sink,
            shared: self.shared.clone(),
            backoff: Backoff::new(self.options.backoff_initial, self.options.backoff_max),
            options: self.options.clone(),
            rows: Rows::default(),
            published: None,
            skipped: Vec::new(),
            last_rev: None,
            refused: false,
            saver: Saver::default(),
        };
        let first =
            match tokio::time::timeout(self.options.start_timeout, runner.connect_and_load()).await
            {
                Ok(Ok(conn)) => Some(conn),
                Ok(Err(e)) => {
                    runner.down_at_start(e).await;
                    None
                }
                Err(_) => {
                    runner
                        .down_at_start(ProviderError::Timeout {
                            provider: self.source.name(),
                            operation: "start",
                        })
                        .await;
                    None
                }
            };
        let (shared, name) = (self.shared.clone(), self.source.name());
        let task = spawn_supervised(runner.run(first), move |e| shared.task_died(name, e));
        *self.shared.task() = Some(task);
        Ok(())
    }

    fn status(&self) -> ProviderStatus {
        self.shared.status().clone()
    }

    async fn close(&self) {
        self.shared
            .closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.shared.task().take() {
            t.abort();
        }
        let mut st = self.shared.status();
        st.state = ProviderState::Closed;
        st.connected = false;
    }
}

type Conn<S> = (<S as Source>::Session, mpsc::Receiver<Event>);

struct Runner<S: Source> {
    source: Arc<S>,
    sink: Arc<dyn Sink>,
    shared: Arc<Shared>,
    options: SyncOptions,
    backoff: Backoff,
    rows: Rows,
    published: Option<Arc<FlagDocument>>,
    skipped: Vec<String>,
    last_rev: Option<u64>,
    /// The source refused the credentials: no more attempts.
    refused: bool,
    saver: Saver,
}

/// Writes the last published document to the snapshot file, on a blocking thread, one write
/// at a time: documents published while a write is under way wait, and only the latest of
/// them is written next (a burst of updates writes the whole document twice, not once per
/// update).
#[derive(Debug, Clone, Default)]
struct Saver {
    /// The document to write next, and whether a writer is running.
    next: Arc<Mutex<(Option<Arc<FlagDocument>>, bool)>>,
}

impl Saver {
    fn save(&self, provider: &'static str, path: &std::path::Path, doc: Arc<FlagDocument>) {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        next.0 = Some(doc);
        if next.1 {
            return;
        }
        next.1 = true;
        drop(next);
        let (slot, path) = (self.next.clone(), path.to_owned());
        tokio::task::spawn_blocking(move || loop {
            let doc = {
                let mut next = slot.lock().unwrap_or_else(|e| e.into_inner());
                match next.0.take() {
                    Some(doc) => doc,
                    None => {
                        next.1 = false;
                        return;
                    }
                }
            };
            if let Err(e) = disk::save_snapshot(&path, &doc) {
                tracing::warn!(target: "feature::store", provider, "cannot save the flags snapshot: {e}");
            }
        });
    }
}

/// A low-cardinality class of an error, for `record_provider_error`.
fn class(e: &ProviderError) -> &'static str {
    match e {
        ProviderError::Timeout { .. } => "timeout",
        ProviderError::Backend { .. } => "backend",
        ProviderError::Invalid(_) => "invalid_row",
        ProviderError::Closed => "closed",
        ProviderError::Io { .. } => "io",
        _ => "other",
    }
}

impl<S: Source> Runner<S> {
    fn metrics(&self) -> &dyn Metrics {
        self.sink.metrics()
    }

    async fn connect_and_load(&mut self) -> Result<Conn<S>, ProviderError> {
        let started = Instant::now();
        let (mut session, events) = self.source.connect().await?;
        let loaded = self
            .source
            .load_all(&mut session, self.sink.metrics())
            .await?;
        self.last_rev = loaded.revision;
        self.publish(Some(loaded.rows)).await?;
        self.metrics()
            .record_provider_latency(self.source.name(), "load", started.elapsed());
        Ok((session, events))
    }

    /// Replaces every row with `rows` (if given) and builds the snapshot, on a blocking thread:
    /// parsing and compiling a large document must not hold up the async workers (and the
    /// evaluations and I/O they run).
    async fn build(&mut self, rows: Option<Vec<Row>>) -> Result<Built, ProviderError> {
        let mut held = std::mem::take(&mut self.rows);
        let origin = self.source.origin();
        let work = tokio::task::spawn_blocking(move || {
            if let Some(rows) = rows {
                held.replace_all(rows);
            }
            let built = held.build(&origin);
            (held, built)
        });
        match work.await {
            Ok((rows, built)) => {
                self.rows = rows;
                Ok(built)
            }
            // A panic while compiling ends the engine task; its supervisor reports it.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Only a runtime shutting down cancels blocking work.
            Err(_) => Err(ProviderError::Closed),
        }
    }

    /// Builds a snapshot from the rows (replaced by `rows` if given); publishes it when the
    /// flags changed.
    async fn publish(&mut self, rows: Option<Vec<Row>>) -> Result<(), ProviderError> {
        let name = self.source.name();
        let built = self.build(rows).await?;
        let skipped: Vec<String> = built.skipped.iter().map(|d| d.flag.clone()).collect();
        if skipped != self.skipped {
            for d in &built.skipped {
                tracing::warn!(target: "feature::store", provider = name, key = %d.flag, "{d}");
            }
            if !built.skipped.is_empty() {
                self.metrics()
                    .record_provider_error(name, "decode", "invalid_row");
            }
            self.skipped = skipped;
        }
        {
            let mut st = self.shared.status();
            st.connected = true;
            st.last_refresh = Some(SystemTime::now());
            if built.skipped.is_empty() {
                st.state = ProviderState::Ready;
                st.last_error = None;
            } else {
                st.state = ProviderState::Degraded;
                st.last_error = Some((
                    Arc::new(ProviderError::Invalid(built.skipped)),
                    SystemTime::now(),
                ));
            }
        }
        let doc = built.snapshot.document().clone();
        if !built.changed && self.published.is_some() {
            return Ok(());
        }
        tracing::debug!(target: "feature::store", provider = name, flags = built.snapshot.len(), compiled = built.compiled_flags, "publishing flags");
        self.published = Some(doc.clone());
        self.sink.publish(built.snapshot);
        if let Some(path) = &self.options.snapshot_path {
            self.saver.save(name, path, doc);
        }
        Ok(())
    }

    /// The store is unreachable: keep what is served, say so, count it.
    fn lost(&mut self, operation: &'static str, e: ProviderError) {
        let name = self.source.name();
        if self.source.is_refusal(&e) {
            tracing::error!(target: "feature::store", provider = name, "refused ({operation}): {e}; not retrying, serving the last good flags");
            self.refused = true;
        }
        self.metrics()
            .record_provider_error(name, operation, class(&e));
        let mut st = self.shared.status();
        if st.connected || st.last_error.is_none() {
            tracing::warn!(target: "feature::store", provider = name, "store unreachable ({operation}): {e}; serving the last good flags and reconnecting");
        } else {
            tracing::debug!(target: "feature::store", provider = name, "still unreachable ({operation}): {e}");
        }
        st.connected = false;
        st.state = if self.published.is_some() {
            ProviderState::Degraded
        } else {
            ProviderState::Unavailable
        };
        st.last_error = Some((Arc::new(e), SystemTime::now()));
    }

    /// The first connection failed: serve the last snapshot or the bootstrap file, if any.
    async fn down_at_start(&mut self, e: ProviderError) {
        let name = self.source.name();
        let candidates = [
            self.options.snapshot_path.clone(),
            self.options.bootstrap_file.clone(),
        ];
        for path in candidates.into_iter().flatten() {
            if !path.exists() {
                continue;
            }
            // Parsed and compiled on a blocking thread, as every document.
            let file = path.clone();
            let loaded = match tokio::task::spawn_blocking(move || disk::load_file(&file)).await {
                Ok(r) => r,
                Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
                Err(_) => Err(ProviderError::Closed),
            };
            match loaded {
                Ok(snapshot) => {
                    tracing::warn!(target: "feature::store", provider = name, "store unreachable at start ({e}); serving {} ({} flags) until it is", path.display(), snapshot.len());
                    self.published = Some(snapshot.document().clone());
                    self.sink.publish(snapshot);
                    break;
                }
                Err(err) => {
                    tracing::warn!(target: "feature::store", provider = name, "cannot use {}: {err}", path.display());
                }
            }
        }
        self.lost("start", e);
    }

    async fn run(mut self, mut conn: Option<Conn<S>>) {
        loop {
            if let Some((session, events)) = conn.take() {
                self.backoff.reset();
                let e = self.follow(session, events).await;
                self.lost("listen", e);
            }
            if self.refused {
                // Deliberately idle, not ended: an ended task would be reported as died, and
                // the status already says why nothing more is fetched.
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(self.backoff.next_delay()).await;
            match tokio::time::timeout(self.options.timeout, self.connect_and_load()).await {
                Ok(Ok(c)) => {
                    tracing::info!(target: "feature::store", provider = self.source.name(), "store reachable again; flags reloaded");
                    conn = Some(c);
                }
                Ok(Err(e)) => self.lost("connect", e),
                Err(_) => self.lost(
                    "connect",
                    ProviderError::Timeout {
                        provider: self.source.name(),
                        operation: "connect",
                    },
                ),
            }
        }
    }

    /// Follows notices until the connection is lost; returns why.
    async fn follow(
        &mut self,
        mut session: S::Session,
        mut events: mpsc::Receiver<Event>,
    ) -> ProviderError {
        let every = self.options.refresh_interval;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = events.recv() => {
                    let mut batch = Vec::new();
                    let mut resync = false;
                    let mut next = ev;
                    loop {
                        match next {
                            None => return self.backend_error("listen", "subscription closed"),
                            Some(Event::Lost(e)) => return e,
                            Some(Event::Resync) => resync = true,
                            Some(Event::Changed(n)) => batch.push(n),
                        }
                        match events.try_recv() {
                            Ok(ev) => next = Some(ev),
                            Err(_) => break,
                        }
                    }
                    let result = if resync || self.missed(&batch) {
                        self.reload(&mut session).await
                    } else {
                        self.update(&mut session, &batch).await
                    };
                    if let Err(e) = result {
                        return e;
                    }
                }
                _ = tick.tick() => {
                    let rev = tokio::time::timeout(self.options.timeout, self.source.revision(&mut session)).await;
                    let result = match rev {
                        Ok(Ok(Some(r))) if Some(r) == self.last_rev => Ok(()),
                        Ok(Ok(_)) => self.reload(&mut session).await,
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(ProviderError::Timeout { provider: self.source.name(), operation: "revision" }),
                    };
                    if let Err(e) = result {
                        return e;
                    }
                }
            }
        }
    }

    fn backend_error(&self, operation: &'static str, msg: &'static str) -> ProviderError {
        ProviderError::Backend {
            provider: self.source.name(),
            operation,
            source: msg.into(),
        }
    }

    /// Whether the batch's revisions show that notices were missed; records the revision.
    fn missed(&mut self, batch: &[Notice]) -> bool {
        let mut revs: Vec<u64> = Vec::with_capacity(batch.len());
        for n in batch {
            match n.revision {
                Some(r) => revs.push(r),
                None => {
                    // Unnumbered notice: the next periodic check reloads to be sure.
                    self.last_rev = None;
                    return false;
                }
            }
        }
        revs.sort_unstable();
        let Some(mut prev) = self.last_rev else {
            self.last_rev = revs.last().copied();
            return false;
        };
        let mut gap = false;
        for r in revs {
            if r > prev.saturating_add(1) {
                gap = true;
            }
            prev = prev.max(r);
        }
        self.last_rev = Some(prev);
        gap
    }

    async fn reload(&mut self, session: &mut S::Session) -> Result<(), ProviderError> {
        let started = Instant::now();
        let loaded = tokio::time::timeout(
            self.options.timeout,
            self.source.load_all(session, self.sink.metrics()),
        )
        .await
        .map_err(|_| ProviderError::Timeout {
            provider: self.source.name(),
            operation: "reload",
        })??;
        self.last_rev = loaded.revision;
        self.publish(Some(loaded.rows)).await?;
        self.metrics()
            .record_provider_latency(self.source.name(), "reload", started.elapsed());
        Ok(())
    }

    async fn update(
        &mut self,
        session: &mut S::Session,
        batch: &[Notice],
    ) -> Result<(), ProviderError> {
        let started = Instant::now();
        let keys: Vec<(ItemKind, String)> = batch
            .iter()
            .map(|n| (n.kind, n.key.clone()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let rows = tokio::time::timeout(
            self.options.timeout,
            self.source.load_keys(session, &keys, self.sink.metrics()),
        )
        .await
        .map_err(|_| ProviderError::Timeout {
            provider: self.source.name(),
            operation: "update",
        })??;
        let mut changed = false;
        for (kind, key, row) in rows {
            changed |= self.rows.apply(kind, &key, row);
        }
        // Nothing to rebuild when every item is as it was (a repeated or forged notice); the
        // `update` latency is that of updates that changed something.
        if changed {
            self.publish(None).await?;
            self.metrics()
                .record_provider_latency(self.source.name(), "update", started.elapsed());
        }
        Ok(())
    }
}
