//! [`Tee`]: one [`Metrics`] made of two.

use feature_core::metrics::{EvaluationCounts, EvaluationRecord, Metrics};
use feature_core::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

/// Sends every measurement to two [`Metrics`] implementations, in order. Nest for more:
/// `Tee(a, Tee(b, c))`.
///
/// ```
/// use feature::metrics::{EvaluationStats, Metrics, NoopMetrics, Tee};
///
/// let stats = EvaluationStats::new();
/// let both = Tee(NoopMetrics, stats.clone()); // e.g. Prometheus + health statistics
/// both.record_flags(3, 2);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Tee<A, B>(pub A, pub B);

impl<A: Metrics, B: Metrics> Metrics for Tee<A, B> {
    #[inline]
    fn record_evaluation(&self, record: &EvaluationRecord<'_>) {
        self.0.record_evaluation(record);
        self.1.record_evaluation(record);
    }
    fn reads_counts(&self) -> bool {
        self.0.reads_counts() && self.1.reads_counts()
    }
    fn attach_counts(&self, counts: Arc<dyn EvaluationCounts>) {
        self.0.attach_counts(counts.clone());
        self.1.attach_counts(counts);
    }
    fn record_error(&self, key: &str, error: ErrorKind) {
        self.0.record_error(key, error);
        self.1.record_error(key, error);
    }
    fn record_cache_hit(&self, key: &str) {
        self.0.record_cache_hit(key);
        self.1.record_cache_hit(key);
    }
    fn record_cache_miss(&self, key: &str) {
        self.0.record_cache_miss(key);
        self.1.record_cache_miss(key);
    }
    fn record_provider_latency(&self, provider: &str, operation: &str, duration: Duration) {
        self.0
            .record_provider_latency(provider, operation, duration);
        self.1
            .record_provider_latency(provider, operation, duration);
    }
    fn record_provider_error(&self, provider: &str, operation: &str, error_type: &str) {
        self.0
            .record_provider_error(provider, operation, error_type);
        self.1
            .record_provider_error(provider, operation, error_type);
    }
    fn record_flags(&self, total: usize, active: usize) {
        self.0.record_flags(total, active);
        self.1.record_flags(total, active);
    }
}
