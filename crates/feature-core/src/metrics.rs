//! The metrics contract: what the client and providers report, for Prometheus, OpenTelemetry or
//! anything else. Every method has a no-op default, so an implementation overrides what it uses.
//!
//! Evaluations are counted on every call, but timed only on a sample (see `duration`): reading
//! the clock twice per evaluation would cost more than the evaluation itself.
//!
//! Counting can be left to the client: an implementation whose [`Metrics::reads_counts`] is
//! `true` receives the client's [`EvaluationCounts`] once, through [`Metrics::attach_counts`],
//! and reads them when it is scraped. The client then keeps one set of per-thread counters for
//! every such implementation together and calls [`Metrics::record_evaluation`] only for the
//! timed sample (with [`EvaluationRecord::counted`] set), which is what keeps metrics within a
//! few nanoseconds of bare evaluation.

use crate::{ErrorKind, ReasonKind};
use serde_json::Value;
use std::sync::Arc;
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
    /// Whether this evaluation is already in the [`EvaluationCounts`] handed to
    /// [`Metrics::attach_counts`]: then only its `duration` is news, and counting it again
    /// would count it twice.
    pub counted: bool,
}

/// What an evaluation served, as evaluation counts tell values apart (a label with few
/// values: counting every distinct value would make the number of series unbounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ValueClass {
    /// `false`.
    False,
    /// `true`.
    True,
    /// The caller's default (nothing was served, or evaluation failed).
    Default,
    /// Any other value.
    Other,
}

impl ValueClass {
    /// Every class, in the order of [`ValueClass::index`].
    pub const ALL: [ValueClass; 4] = [
        ValueClass::False,
        ValueClass::True,
        ValueClass::Default,
        ValueClass::Other,
    ];

    /// The class of `value` served with `reason` (`None`: nothing was served).
    #[inline]
    pub fn of(reason: ReasonKind, value: Option<&Value>) -> ValueClass {
        match value {
            Some(Value::Bool(false)) => ValueClass::False,
            Some(Value::Bool(true)) => ValueClass::True,
            None => ValueClass::Default,
            Some(_) if reason == ReasonKind::Error => ValueClass::Default,
            Some(_) => ValueClass::Other,
        }
    }

    /// The label value: `false`, `true`, `default` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueClass::False => "false",
            ValueClass::True => "true",
            ValueClass::Default => "default",
            ValueClass::Other => "other",
        }
    }

    /// The position in [`ValueClass::ALL`] (for arrays of counters).
    #[inline]
    pub fn index(self) -> usize {
        match self {
            ValueClass::False => 0,
            ValueClass::True => 1,
            ValueClass::Default => 2,
            ValueClass::Other => 3,
        }
    }
}

/// Evaluation counts a client keeps itself, by reason and [`ValueClass`], for the [`Metrics`]
/// implementations that read them (see [`Metrics::reads_counts`]). Reading is meant for
/// scrapes and health checks: it sums per-thread counters.
pub trait EvaluationCounts: Send + Sync + 'static {
    /// Calls `f(reason, value, count)` once for every pair counted at least once, with the
    /// count since the client started.
    fn for_each_count(&self, f: &mut dyn FnMut(ReasonKind, ValueClass, u64));
}

/// Receives what the client and providers measure. Implementations must be cheap and must never
/// block: they run on the evaluating thread.
pub trait Metrics: Send + Sync + 'static {
    /// A flag was evaluated: every evaluation when [`Metrics::reads_counts`] is `false`; only
    /// the timed ones (with [`EvaluationRecord::counted`] set) when it is `true`.
    fn record_evaluation(&self, _record: &EvaluationRecord<'_>) {}

    /// Whether this implementation takes its evaluation counts from the client (through
    /// [`Metrics::attach_counts`]) rather than from a [`Metrics::record_evaluation`] call per
    /// evaluation. Default: `false`. Composites answer `true` only when all their parts do.
    fn reads_counts(&self) -> bool {
        false
    }

    /// Hands over a client's evaluation counts, once per client that uses this implementation
    /// (called only when [`Metrics::reads_counts`] is `true`). Keep them and add them up
    /// when scraped.
    fn attach_counts(&self, _counts: Arc<dyn EvaluationCounts>) {}

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

impl Metrics for NoopMetrics {
    fn reads_counts(&self) -> bool {
        true // and ignores them
    }
}

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
