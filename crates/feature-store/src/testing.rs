//! A [`Sink`] that records what providers publish, for testing providers against real stores.

use feature_core::metrics::Metrics;
use feature_core::provider::Sink;
use feature_core::{Context, Snapshot};
use serde_json::Value;
use std::collections::BTreeMap;
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
