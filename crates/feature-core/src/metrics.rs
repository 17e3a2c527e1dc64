//! The metrics contract: what the client and providers report, for Prometheus, OpenTelemetry or
//! anything else. Every method has a no-op default, so an implementation overrides what it uses.
//!
//! Evaluations are counted on every call, but timed only on a sample (see `duration`): reading
//! the clock twice per evaluation would cost more than the evaluation itself.

use crate::{ErrorKind, ReasonKind};
use serde_json::Value;
use std::time::Duration;

/// One evaluation, as metrics see it.
#[derive(Debug, Clone, Copy)]
pub struct EvaluationRecord<'a> {
    /// The flag's key.
    pub key: &'a str,
    /// Why the value was served.
    pub reason: ReasonKind,
    /// The error, when the reason is `ERROR`.
    pub error: Option<ErrorKind>,
    /// The variation served, when one was.
    pub variation: Option<usize>,
    /// The value served (`None` when the caller's default was).
    pub value: Option<&'a Value>,
    /// How long the evaluation took, for sampled evaluations only.
    pub duration: Option<Duration>,
}

/// Receives what the client and providers measure. Implementations must be cheap and must never
/// block: they run on the evaluating thread.
pub trait Metrics: Send + Sync + 'static {
    /// A flag was evaluated.
    fn record_evaluation(&self, _record: &EvaluationRecord<'_>) {}

    /// An evaluation failed (also reported through `record_evaluation` with reason `ERROR`).
    fn record_error(&self, _key: &str, _error: ErrorKind) {}

    /// A cache answered from its own data.
    fn record_cache_hit(&self, _key: &str) {}

    /// A cache had to ask the store behind it.
    fn record_cache_miss(&self, _key: &str) {}

    /// A provider operation finished (`load`, `reload`, `write`, ...).
    fn record_provider_latency(&self, _provider: &str, _operation: &str, _duration: Duration) {}

    /// A provider operation failed; `error_type` is a short, low-cardinality class.
    fn record_provider_error(&self, _provider: &str, _operation: &str, _error_type: &str) {}

    /// A new snapshot is live: how many flags, how many enabled.
    fn record_flags(&self, _total: usize, _active: usize) {}
}

/// Metrics that record nothing: the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopMetrics;

impl Metrics for NoopMetrics {}

/// The numbers a caching provider (Redis, ...) reports to health checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache since start.
    pub hits: u64,
    /// Lookups that had to go to the store behind the cache since start.
    pub misses: u64,
    /// Entries in the cache now.
    pub size: usize,
    /// The most entries the cache holds (0: unbounded).
    pub max_size: usize,
}

/// A source of [`CacheStats`]: implemented by providers that keep a cache, read by health
/// checks. Must be cheap (a few atomic loads): health endpoints call it on every request.
pub trait CacheReport: Send + Sync + 'static {
    /// The cache's numbers now.
    fn cache_stats(&self) -> CacheStats;
}
