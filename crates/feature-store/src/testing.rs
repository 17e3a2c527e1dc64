//! A [`Sink`] that records what providers publish, for testing providers against real stores,
//! and [`RacingStore`], a real store that lets another writer in between a read and a write.

use crate::push::Change;
use crate::rows::{ItemKind, Row};
use crate::write::{BatchError, FlagStore, HistoryEntry, WriteError, Written};
use async_trait::async_trait;
use feature_core::metrics::Metrics;
use feature_core::model::{Flag, Segment};
use feature_core::provider::Sink;
use feature_core::{Context, Snapshot};
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// Metrics that count what providers report: cache hits and misses per key, provider errors
/// per `(operation, class)`.
#[derive(Debug, Default)]
pub struct CountingMetrics {
    counts: Mutex<BTreeMap<String, u64>>,
}

impl CountingMetrics {
    fn bump(&self, k: String) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(k)
            .or_default() += 1;
    }

    /// The count of a name: `hit:KEY`, `miss:KEY`, `error:OPERATION:CLASS`, `latency:OPERATION`
    /// (one per timed operation, e.g. `latency:reload` for each full reload).
    pub fn get(&self, name: &str) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// The sum of every count whose name starts with `prefix`.
    pub fn sum(&self, prefix: &str) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    }
}

impl Metrics for CountingMetrics {
    fn record_cache_hit(&self, key: &str) {
        self.bump(format!("hit:{key}"));
    }
    fn record_cache_miss(&self, key: &str) {
        self.bump(format!("miss:{key}"));
    }
    fn record_provider_error(&self, _provider: &str, operation: &str, error_type: &str) {
        self.bump(format!("error:{operation}:{error_type}"));
    }
    fn record_provider_latency(&self, _provider: &str, operation: &str, _duration: Duration) {
        self.bump(format!("latency:{operation}"));
    }
}

/// Records the last snapshot published and how many were.
#[derive(Debug)]
pub struct RecordingSink {
    last: Mutex<Option<Arc<Snapshot>>>,
    published: watch::Sender<u64>,
    /// What the provider reported.
    pub metrics: CountingMetrics,
}

impl Default for RecordingSink {
    fn default() -> Self {
        RecordingSink {
            last: Mutex::new(None),
            published: watch::channel(0).0,
            metrics: CountingMetrics::default(),
        }
    }
}

impl RecordingSink {
    /// A new sink, shared.
    pub fn new() -> Arc<RecordingSink> {
        Arc::new(RecordingSink::default())
    }

    fn last(&self) -> MutexGuard<'_, Option<Arc<Snapshot>>> {
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last snapshot published, if any.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.last().clone()
    }

    /// How many snapshots were published.
    pub fn publications(&self) -> u64 {
        *self.published.borrow()
    }

    /// The value `key` serves to context `user`, if a snapshot was published and serves one.
    pub fn value(&self, key: &str) -> Option<Value> {
        self.snapshot()
            .and_then(|s| s.evaluate(key, &Context::new("user")).value().cloned())
    }

    /// Waits until the published flags satisfy `check` (checked now and after each
    /// publication); false after `timeout`.
    pub async fn wait_for(&self, timeout: Duration, check: impl Fn(&Snapshot) -> bool) -> bool {
        let mut rx = self.published.subscribe();
        let fut = async {
            loop {
                if self.snapshot().is_some_and(|s| check(&s)) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, fut).await.is_ok()
    }

    /// Waits until `key` serves `value` to context `user`.
    pub async fn wait_value(&self, timeout: Duration, key: &str, value: Option<Value>) -> bool {
        self.wait_for(timeout, |s| {
            s.evaluate(key, &Context::new("user")).value() == value.as_ref()
        })
        .await
    }
}

impl Sink for RecordingSink {
    fn publish(&self, snapshot: Snapshot) {
        *self.last() = Some(Arc::new(snapshot));
        self.published.send_modify(|n| *n += 1);
    }

    fn metrics(&self) -> &dyn Metrics {
        &self.metrics
    }
}

/// An edit made by "someone else", run once by a [`RacingStore`].
pub type Interference = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A real store that runs `interference` (once) right after its first [`FlagStore::rows`]
/// read, before the caller can write: the window between the diff and the apply of a push,
/// made certain. Every operation goes to the wrapped store.
pub struct RacingStore<S> {
    inner: S,
    interference: Mutex<Option<Interference>>,
}

impl<S> RacingStore<S> {
    /// `inner`, with `interference` run after its first read of every row.
    pub fn new(inner: S, interference: Interference) -> Self {
        RacingStore {
            inner,
            interference: Mutex::new(Some(interference)),
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for RacingStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RacingStore")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<S: FlagStore> FlagStore for RacingStore<S> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn rows(&self) -> Result<Vec<Row>, WriteError> {
        let rows = self.inner.rows().await?;
        let edit = self
            .interference
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(edit) = edit {
            edit().await;
        }
        Ok(rows)
    }

    async fn row(&self, kind: ItemKind, key: &str) -> Result<Option<Row>, WriteError> {
        self.inner.row(kind, key).await
    }

    async fn create(&self, flag: &Flag, actor: &str) -> Result<Written, WriteError> {
        self.inner.create(flag, actor).await
    }

    async fn update(&self, flag: &Flag, actor: &str) -> Result<Written, WriteError> {
        self.inner.update(flag, actor).await
    }

    async fn delete(&self, key: &str, actor: &str) -> Result<Written, WriteError> {
        self.inner.delete(key, actor).await
    }

    async fn enable(&self, key: &str, actor: &str) -> Result<Written, WriteError> {
        self.inner.enable(key, actor).await
    }

    async fn disable(&self, key: &str, actor: &str) -> Result<Written, WriteError> {
        self.inner.disable(key, actor).await
    }

    async fn put_segment(&self, segment: &Segment, actor: &str) -> Result<Written, WriteError> {
        self.inner.put_segment(segment, actor).await
    }

    async fn delete_segment(&self, key: &str, actor: &str) -> Result<Written, WriteError> {
        self.inner.delete_segment(key, actor).await
    }

    async fn apply_changes(
        &self,
        changes: &[Change],
        actor: &str,
    ) -> Result<Vec<Written>, BatchError> {
        self.inner.apply_changes(changes, actor).await
    }

    async fn history_page(
        &self,
        kind: ItemKind,
        key: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<HistoryEntry>, WriteError> {
        self.inner.history_page(kind, key, limit, before).await
    }
}
