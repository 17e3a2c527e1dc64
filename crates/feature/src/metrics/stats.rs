//! [`EvaluationStats`]: the numbers behind the health check, kept as a [`Metrics`]
//! implementation.

use super::counts::AttachedCounts;
use super::stripe::Striped;
use super::Tee;
use feature_core::metrics::{EvaluationCounts, EvaluationRecord, Metrics};
use feature_core::{ErrorKind, ReasonKind};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What [`EvaluationStats`] report: the evaluation part of the health check
/// ([`HealthCheck`](crate::health::HealthCheck)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationStatsReport {
    /// Evaluations since start.
    pub total_evaluations: u64,
    /// Errors / evaluations, 0 before the first evaluation.
    pub error_rate: f64,
    /// Mean evaluation latency over the timed sample, in milliseconds.
    pub avg_latency_ms: f64,
    /// 99th percentile of the timed sample, in milliseconds (within about 20%).
    pub p99_latency_ms: f64,
}

// Counter layout of `EvaluationStats`.
const TOTAL: usize = 0;
const ERRORS: usize = 1;
const TIMED: usize = 2;
const TIMED_NS: usize = 3;
const CACHE_HITS: usize = 4;
const CACHE_MISSES: usize = 5;
const PROVIDER_ERRORS: usize = 6;
const HIST: usize = 8;
/// Histogram buckets: exact below 16 ns, then 4 per power of two up to about 2^40 ns.
const BUCKETS: usize = 16 + 37 * 4;
const N: usize = HIST + BUCKETS;

fn bucket_of(ns: u64) -> usize {
    if ns < 16 {
        return ns as usize;
    }
    let e = 63 - ns.leading_zeros() as usize; // >= 4
    let sub = ((ns >> (e - 2)) & 3) as usize;
    (16 + (e - 4) * 4 + sub).min(BUCKETS - 1)
}

/// The upper edge of a bucket, in nanoseconds.
fn bucket_upper(b: usize) -> u64 {
    if b < 16 {
        return b as u64 + 1;
    }
    let e = (b - 16) / 4 + 4;
    let sub = ((b - 16) % 4) as u64;
    (4 + sub + 1) << (e - 2)
}

/// A [`Metrics`] implementation keeping what the health check reports: evaluation and error
/// counts, a latency histogram of the timed sample, cache hits and misses, and the provider's
/// latest latency. Evaluation counts are read from the clients' own per-thread counts
/// ([`Metrics::reads_counts`]), so an ordinary evaluation costs these statistics nothing and
/// counting scales with the number of evaluating threads; the timed sample goes into
/// per-thread counters of their own. Cheap to clone: clones share the numbers.
#[derive(Debug, Clone, Default)]
pub struct EvaluationStats {
    inner: Arc<StatsInner>,
}

#[derive(Debug, Default)]
struct StatsInner {
    counters: Striped<N>,
    /// Counts kept by the clients using these statistics.
    attached: AttachedCounts,
    provider_latency_ns: AtomicU64,
}

impl EvaluationStats {
    /// Empty statistics.
    pub fn new() -> Self {
        Self::default()
    }

    /// The evaluation part of the health report.
    pub fn report(&self) -> EvaluationStatsReport {
        let mut c = self.inner.counters.totals();
        self.inner.attached.for_each(|reason, _, n| {
            c[TOTAL] += n;
            if reason == ReasonKind::Error {
                c[ERRORS] += n;
            }
        });
        let total = c[TOTAL];
        let ms = |ns: f64| ns / 1e6;
        let avg = if c[TIMED] == 0 {
            0.0
        } else {
            ms(c[TIMED_NS] as f64 / c[TIMED] as f64)
        };
        EvaluationStatsReport {
            total_evaluations: total,
            error_rate: if total == 0 {
                0.0
            } else {
                c[ERRORS] as f64 / total as f64
            },
            avg_latency_ms: avg,
            p99_latency_ms: ms(quantile(&c[HIST..], 0.99) as f64),
        }
    }

    /// Cache hits and misses reported through [`Metrics`].
    pub fn cache_counts(&self) -> (u64, u64) {
        (
            self.inner.counters.get(CACHE_HITS),
            self.inner.counters.get(CACHE_MISSES),
        )
    }

    /// Provider errors reported through [`Metrics`].
    pub fn provider_errors(&self) -> u64 {
        self.inner.counters.get(PROVIDER_ERRORS)
    }

    /// The provider's latest reported operation latency.
    pub fn provider_latency(&self) -> Duration {
        Duration::from_nanos(self.inner.provider_latency_ns.load(Ordering::Relaxed))
    }

    /// These statistics and `other`, as one [`Metrics`] (see [`Tee`]).
    pub fn and<M: Metrics>(&self, other: M) -> Tee<M, EvaluationStats> {
        Tee(other, self.clone())
    }
}

/// The smallest bucket upper edge below which `q` of the samples lie.
fn quantile(hist: &[u64], q: f64) -> u64 {
    let n: u64 = hist.iter().sum();
    if n == 0 {
        return 0;
    }
    let rank = ((n as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (b, &count) in hist.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return bucket_upper(b);
        }
    }
    bucket_upper(hist.len().saturating_sub(1))
}

impl Metrics for EvaluationStats {
    #[inline]
    fn record_evaluation(&self, record: &EvaluationRecord<'_>) {
        let c = self.inner.counters.line();
        if !record.counted {
            c.add(TOTAL, 1);
            if record.error.is_some() {
                c.add(ERRORS, 1);
            }
        }
        if let Some(d) = record.duration {
            let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            c.add(TIMED, 1);
            c.add(TIMED_NS, ns);
            c.add(HIST + bucket_of(ns), 1);
        }
    }

    fn reads_counts(&self) -> bool {
        true
    }

    fn attach_counts(&self, counts: Arc<dyn EvaluationCounts>) {
        self.inner.attached.push(counts);
    }

    fn record_error(&self, _key: &str, _error: ErrorKind) {
        // Counted with the evaluation (its record carries the error).
    }

    fn record_cache_hit(&self, _key: &str) {
        self.inner.counters.add(CACHE_HITS, 1);
    }

    fn record_cache_miss(&self, _key: &str) {
        self.inner.counters.add(CACHE_MISSES, 1);
    }

    fn record_provider_latency(&self, _provider: &str, _operation: &str, duration: Duration) {
        let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.inner.provider_latency_ns.store(ns, Ordering::Relaxed);
    }

    fn record_provider_error(&self, _provider: &str, _operation: &str, _error_type: &str) {
        self.inner.counters.add(PROVIDER_ERRORS, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_contain_their_values() {
        let mut last = 0;
        for ns in [
            0u64,
            1,
            15,
            16,
            17,
            31,
            32,
            100,
            1000,
            123_456,
            10_000_000_000,
        ] {
            let b = bucket_of(ns);
            assert!(b >= last);
            last = b;
            assert!(
                bucket_upper(b) > ns,
                "{ns} in bucket {b} up to {}",
                bucket_upper(b)
            );
            if b > 16 {
                assert!(bucket_upper(b - 1) <= ns);
            }
        }
    }

    #[test]
    fn p99_and_average_from_timed_records() {
        let s = EvaluationStats::new();
        let rec = |d: Option<Duration>, error| EvaluationRecord {
            key: "k",
            reason: feature_core::ReasonKind::Fallthrough,
            error,
            variation: None,
            value: None,
            duration: d,
            counted: false,
        };
        for _ in 0..990 {
            s.record_evaluation(&rec(Some(Duration::from_micros(1)), None));
        }
        for _ in 0..10 {
            s.record_evaluation(&rec(
                Some(Duration::from_millis(2)),
                Some(ErrorKind::FlagNotFound),
            ));
        }
        for _ in 0..1000 {
            s.record_evaluation(&rec(None, None));
        }
        let r = s.report();
        assert_eq!(r.total_evaluations, 2000);
        assert!((r.error_rate - 0.005).abs() < 1e-9);
        assert!((r.avg_latency_ms - (990.0 * 0.001 + 10.0 * 2.0) / 1000.0).abs() < 1e-6);
        // 99% of the timed sample is 1 µs: p99 is about 1 µs, not 2 ms.
        assert!(
            r.p99_latency_ms >= 0.001 && r.p99_latency_ms < 0.0013,
            "{}",
            r.p99_latency_ms
        );
    }
}
