//! Health: the plan's `HealthCheck` report, built from the client's provider status and
//! snapshot, the [`EvaluationStats`] the client feeds, and optionally a caching provider's
//! [`CacheReport`]; and, with the `http-endpoints` feature, `HealthService`, a tower
//! `Service` answering it as JSON (usable as an axum route or with hyper).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use feature::health::{EvaluationStats, Health, Status};
//! use feature::{Client, Context, Flag, MemoryProvider};
//!
//! let stats = EvaluationStats::new();
//! let flags = MemoryProvider::new();
//! flags.set_flag(Flag::boolean("beta", true));
//! let client = Client::builder().provider(flags).metrics(stats.clone()).build().await?;
//! client.bool(&Context::new("u1"), "beta", false);
//!
//! let health = Health::new(client.clone(), stats);
//! let report = health.check();
//! assert_eq!(report.status, Status::Healthy);
//! assert_eq!(report.flags_loaded, 1);
//! assert_eq!(report.evaluation_stats.total_evaluations, 1);
//! println!("{}", serde_json::to_string_pretty(&report)?);
//! # Ok(()) }
//! ```
//!
//! Status: `unhealthy` while no flags were ever loaded; `degraded` while the provider serves
//! stale data (its state is `Degraded`: the store is unreachable or its latest data invalid);
//! `healthy` otherwise. `HealthService` answers `200` for healthy and degraded (the service
//! works) and `503` for unhealthy.
//!
//! ## Cache numbers
//!
//! `cache.hit_rate` comes from the cache hits and misses providers report through
//! [`Metrics::record_cache_hit`] / [`Metrics::record_cache_miss`] (counted by
//! [`EvaluationStats`]); a provider that keeps a cache also implements [`CacheReport`], given
//! to [`Health::with_cache`], for `size` and `max_size` (its hit and miss counts then win).

use crate::metrics_config::{AttachedCounts, Tee};
use crate::stripe::Striped;
use crate::Client;
use chrono::{DateTime, Utc};
pub use feature_core::metrics::{CacheReport, CacheStats};
use feature_core::metrics::{EvaluationCounts, EvaluationRecord, Metrics};
use feature_core::provider::ProviderState;
use feature_core::{ErrorKind, ReasonKind};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The overall status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Flags are loaded and current.
    Healthy,
    /// Flags are served from the last good data: the store is unreachable or its data invalid.
    Degraded,
    /// No flags were ever loaded: every evaluation serves the caller's default.
    Unhealthy,
}

impl Status {
    /// `healthy`, `degraded` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
        }
    }
}

/// The health report (the plan's `HealthCheck`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// `healthy`, `degraded` or `unhealthy`.
    pub status: Status,
    /// The provider.
    pub provider: ProviderHealth,
    /// The provider's cache.
    pub cache: CacheHealth,
    /// When the provider last delivered data (`null`: never).
    pub last_refresh: Option<DateTime<Utc>>,
    /// Flags in the live snapshot.
    pub flags_loaded: usize,
    /// Evaluation counts and latencies.
    pub evaluation_stats: EvaluationStatsReport,
}

/// The provider part of [`HealthCheck`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderHealth {
    /// Whether the provider is connected to its store.
    pub connected: bool,
    /// The provider's latest operation latency (load, reload, ...), in milliseconds.
    pub latency_ms: f64,
    /// The provider's last error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the last error happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<DateTime<Utc>>,
}

/// The cache part of [`HealthCheck`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheHealth {
    /// Whether the provider has a cache.
    pub enabled: bool,
    /// Hits / (hits + misses), 0 when there were no lookups.
    pub hit_rate: f64,
    /// Entries cached now.
    pub size: usize,
    /// Capacity (0: unbounded or unknown).
    pub max_size: usize,
}

/// The evaluation part of [`HealthCheck`] (the plan's `EvaluationStats`).
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

/// Builds [`HealthCheck`] reports for a client. Cheap to clone.
#[derive(Clone)]
pub struct Health {
    client: Client,
    stats: EvaluationStats,
    cache: Option<Arc<dyn CacheReport>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("client", &self.client)
            .field("cache", &self.cache.is_some())
            .finish()
    }
}

impl Health {
    /// Health of `client`, whose metrics include `stats` (pass them to the client's builder,
    /// alone or in a [`Tee`]).
    pub fn new(client: Client, stats: EvaluationStats) -> Self {
        Health {
            client,
            stats,
            cache: None,
        }
    }

    /// Reads cache size and capacity (and hit and miss counts) from a caching provider.
    pub fn with_cache(mut self, cache: Arc<dyn CacheReport>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The report now.
    pub fn check(&self) -> HealthCheck {
        let status = self.client.provider_status();
        let snapshot = self.client.snapshot();
        let ready = self.client.is_ready();
        let overall = if !ready {
            Status::Unhealthy
        } else if status.state == ProviderState::Degraded {
            Status::Degraded
        } else {
            Status::Healthy
        };
        let (last_error, last_error_at) = match &status.last_error {
            Some((e, at)) => (Some(e.to_string()), Some(DateTime::<Utc>::from(*at))),
            None => (None, None),
        };
        let cache = match &self.cache {
            Some(c) => {
                let s = c.cache_stats();
                CacheHealth {
                    enabled: true,
                    hit_rate: rate(s.hits, s.misses),
                    size: s.size,
                    max_size: s.max_size,
                }
            }
            None => {
                let (hits, misses) = self.stats.cache_counts();
                CacheHealth {
                    enabled: hits + misses > 0,
                    hit_rate: rate(hits, misses),
                    size: 0,
                    max_size: 0,
                }
            }
        };
        HealthCheck {
            status: overall,
            provider: ProviderHealth {
                connected: status.connected,
                latency_ms: self.stats.provider_latency().as_secs_f64() * 1e3,
                last_error,
                last_error_at,
            },
            cache,
            last_refresh: status.last_refresh.map(DateTime::<Utc>::from),
            flags_loaded: if ready { snapshot.len() } else { 0 },
            evaluation_stats: self.stats.report(),
        }
    }

    /// The report as JSON text.
    pub fn check_json(&self) -> String {
        // Serializing these plain structs cannot fail; fall back to the status alone.
        let report = self.check();
        serde_json::to_string(&report)
            .unwrap_or_else(|_| format!("{{\"status\":\"{}\"}}", report.status.as_str()))
    }
}

fn rate(hits: u64, misses: u64) -> f64 {
    let n = hits + misses;
    if n == 0 {
        0.0
    } else {
        hits as f64 / n as f64
    }
}

#[cfg(feature = "http-endpoints")]
pub use service::HealthService;

#[cfg(feature = "http-endpoints")]
mod service {
    use super::{Health, Status};
    use bytes::Bytes;
    use http_body_util::Full;
    use std::convert::Infallible;
    use std::future::{ready, Ready};
    use std::task::{Context, Poll};

    /// A tower `Service` answering every request with the [`Health`] report as JSON: `200`
    /// when healthy or degraded, `503` when unhealthy. Mount it on `/health`:
    ///
    /// ```
    /// # async fn f(health: feature::health::Health) {
    /// use feature::health::HealthService;
    /// let app: axum::Router = axum::Router::new().route_service("/health", HealthService::new(health));
    /// # let _ = app; }
    /// ```
    #[derive(Debug, Clone)]
    pub struct HealthService {
        health: Health,
    }

    impl HealthService {
        /// A service answering `health`'s report.
        pub fn new(health: Health) -> Self {
            HealthService { health }
        }

        /// The response to any request.
        pub fn respond(&self) -> http::Response<Full<Bytes>> {
            let report = self.health.check();
            let code = if report.status == Status::Unhealthy {
                http::StatusCode::SERVICE_UNAVAILABLE
            } else {
                http::StatusCode::OK
            };
            let body = serde_json::to_vec(&report).unwrap_or_default();
            let mut resp = http::Response::new(Full::new(Bytes::from(body)));
            *resp.status_mut() = code;
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            resp.headers_mut().insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("no-store"),
            );
            resp
        }
    }

    impl<B> tower_service::Service<http::Request<B>> for HealthService {
        type Response = http::Response<Full<Bytes>>;
        type Error = Infallible;
        type Future = Ready<Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _req: http::Request<B>) -> Self::Future {
            ready(Ok(self.respond()))
        }
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
