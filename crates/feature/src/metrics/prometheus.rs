//! Prometheus metrics (crate feature `prometheus`): nine flag metrics, registered in the
//! application's [`Registry`].
//!
//! ```
//! use feature::metrics::prometheus::PrometheusMetrics;
//! use feature::metrics::{EvaluationRecord, Metrics, MetricsConfig};
//! use feature::ReasonKind;
//!
//! let registry = prometheus::Registry::new();
//! let metrics = PrometheusMetrics::new(&MetricsConfig::default())?;
//! metrics.register(&registry)?;
//! // Client::builder().metrics(metrics.clone()) ... evaluations record themselves:
//! metrics.record_evaluation(&EvaluationRecord {
//!     key: "new-checkout", reason: ReasonKind::Fallthrough, error: None,
//!     variation: Some(1), value: Some(&serde_json::json!(true)), duration: None, counted: false,
//! });
//! let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather())?;
//! assert!(text.contains(
//!     r#"feature_flags_evaluation_total{flag_key="__all__",reason="FALLTHROUGH",value="true"} 1"#
//! ));
//! # Ok::<(), prometheus::Error>(())
//! ```
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `feature_flags_evaluation_duration_seconds` | histogram | `flag_key`, `reason` |
//! | `feature_flags_evaluation_total` | counter | `flag_key`, `reason`, `value` |
//! | `feature_flags_evaluation_errors_total` | counter | `flag_key`, `error_type` |
//! | `feature_flags_cache_hits_total` | counter | `flag_key` |
//! | `feature_flags_cache_misses_total` | counter | `flag_key` |
//! | `feature_flags_provider_latency_seconds` | histogram | `provider`, `operation` |
//! | `feature_flags_provider_errors_total` | counter | `provider`, `operation`, `error_type` |
//! | `feature_flags_total` | gauge | - |
//! | `feature_flags_active_total` | gauge | - |
//!
//! With [`PrometheusMetrics::observe_cache`], two more gauges come from a caching provider:
//! `feature_flags_cache_size` and `feature_flags_cache_max_size`.
//!
//! The prefix is [`MetricsConfig::namespace`]. Label values are described in
//! [`crate::metrics`]: with per-flag labels off (the default), `flag_key` is always
//! `__all__`, and the series whose labels are known up front (cache hits and misses, errors
//! by type) are exported at zero from the start. A family appears on `/metrics` once it has a
//! series: evaluation counts after the first evaluation, durations after the first timed one,
//! provider errors after the first error.
//!
//! ## Why the `prometheus` crate
//!
//! It is the registry most Rust services already expose (`prometheus::Registry` +
//! `TextEncoder`, also behind `axum-prometheus`, `actix-web-prom` and TiKV), so our metrics join
//! the application's own instead of needing a second endpoint; it writes the classic text format,
//! whose `# TYPE` lines carry exactly the documented names (`feature_flags_evaluation_total
//! counter`); and its `Collector` trait lets us count evaluations in our own striped counters,
//! read only at scrape time. `prometheus-client` would have meant OpenMetrics family names
//! without the `_total` suffix and a registry few applications use yet; the `metrics` facade
//! needs a global recorder the application may not have installed.
//!
//! ## Cost
//!
//! With per-flag labels off (the default), the metrics are not called for an ordinary
//! evaluation at all: they read the client's own per-thread evaluation counts at scrape time
//! ([`Metrics::reads_counts`]), which the client keeps for every hook together (one plain add
//! on the evaluating thread's own cache line). With per-flag labels on, each evaluation is
//! counted here, in per-thread counters per key (one hash-map lookup of the key). Durations
//! arrive only for the client's timing sample (1 evaluation in 64 by default) and go to the
//! histogram then, through a series resolved once per reason. Errors, cache and provider
//! events are rare and use the crate's vectors directly.

use super::counts::{reason_slot, EvalCounts, REASONS};
use super::{MetricsConfig, ALL_FLAGS};
use ::prometheus::core::{Collector, Desc};
use ::prometheus::proto::MetricFamily;
use ::prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
};
use feature_core::metrics::{CacheReport, EvaluationCounts, EvaluationRecord, Metrics};
use feature_core::ErrorKind;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub use ::prometheus::Registry as PrometheusRegistry;

/// The flag metrics for Prometheus. Cheap to clone (clones share the metrics); register once
/// with [`PrometheusMetrics::register`] (or `registry.register(Box::new(metrics.clone()))`).
#[derive(Clone)]
pub struct PrometheusMetrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PrometheusMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusMetrics")
            .field("enabled", &self.inner.enabled)
            .field("per_flag", &self.inner.counts.per_flag())
            .finish()
    }
}

struct Inner {
    enabled: bool,
    counts: EvalCounts,
    /// Serialises scrapes.
    sync: Mutex<()>,
    evaluation_total: IntCounterVec,
    evaluation_duration: HistogramVec,
    /// The all-flags duration series by reason slot, resolved on first use (the label
    /// look-up hashes; the timed sample should not pay for it each time).
    all_durations: [OnceLock<Histogram>; REASONS],
    evaluation_errors: IntCounterVec,
    cache_hits: IntCounterVec,
    cache_misses: IntCounterVec,
    provider_latency: HistogramVec,
    provider_errors: IntCounterVec,
    flags_total: IntGauge,
    flags_active: IntGauge,
    cache_size: IntGauge,
    cache_max_size: IntGauge,
    cache_report: Mutex<Option<Arc<dyn CacheReport>>>,
    descs: Vec<Desc>,
}

impl PrometheusMetrics {
    /// The nine metrics, named after `config.namespace`, not yet registered. Fails when the
    /// namespace or buckets are invalid.
    pub fn new(config: &MetricsConfig) -> Result<Self, ::prometheus::Error> {
        let name = |n: &str| config.metric_name(n);
        let counter = |n: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name(n), help), labels)
        };
        let histogram = |n: &str, help: &str, labels: &[&str]| {
            HistogramVec::new(
                HistogramOpts::new(name(n), help).buckets(config.histogram_buckets.clone()),
                labels,
            )
        };
        let evaluation_total = counter(
            "evaluation_total",
            "Total flag evaluations.",
            &["flag_key", "reason", "value"],
        )?;
        let evaluation_duration = histogram(
            "evaluation_duration_seconds",
            "Time to evaluate a flag (sampled).",
            &["flag_key", "reason"],
        )?;
        let evaluation_errors = counter(
            "evaluation_errors_total",
            "Flag evaluations that failed and served the caller's default.",
            &["flag_key", "error_type"],
        )?;
        let cache_hits = counter("cache_hits_total", "Provider cache hits.", &["flag_key"])?;
        let cache_misses = counter(
            "cache_misses_total",
            "Provider cache misses.",
            &["flag_key"],
        )?;
        let provider_latency = histogram(
            "provider_latency_seconds",
            "Provider operation time.",
            &["provider", "operation"],
        )?;
        let provider_errors = counter(
            "provider_errors_total",
            "Provider operation failures.",
            &["provider", "operation", "error_type"],
        )?;
        let flags_total = IntGauge::new(name("total"), "Flags in the live snapshot.")?;
        let flags_active =
            IntGauge::new(name("active_total"), "Enabled flags in the live snapshot.")?;
        let cache_size = IntGauge::new(
            name("cache_size"),
            "Entries in the provider's cache (with a cache report).",
        )?;
        let cache_max_size = IntGauge::new(
            name("cache_max_size"),
            "Capacity of the provider's cache (with a cache report).",
        )?;
        let mut descs = Vec::new();
        for d in [
            evaluation_duration.desc(),
            evaluation_total.desc(),
            evaluation_errors.desc(),
            cache_hits.desc(),
            cache_misses.desc(),
            provider_latency.desc(),
            provider_errors.desc(),
            flags_total.desc(),
            flags_active.desc(),
            cache_size.desc(),
            cache_max_size.desc(),
        ] {
            descs.extend(d.into_iter().cloned());
        }
        if config.enabled && !config.per_flag {
            // Series whose labels are known up front start at zero, so that rates and alerts
            // see them before the first event.
            cache_hits.with_label_values(&[ALL_FLAGS]);
            cache_misses.with_label_values(&[ALL_FLAGS]);
            for e in ErrorKind::ALL {
                evaluation_errors.with_label_values(&[ALL_FLAGS, e.as_str()]);
            }
        }
        Ok(PrometheusMetrics {
            inner: Arc::new(Inner {
                enabled: config.enabled,
                counts: EvalCounts::new(config),
                sync: Mutex::new(()),
                evaluation_total,
                evaluation_duration,
                all_durations: Default::default(),
                evaluation_errors,
                cache_hits,
                cache_misses,
                provider_latency,
                provider_errors,
                flags_total,
                flags_active,
                cache_size,
                cache_max_size,
                cache_report: Mutex::new(None),
                descs,
            }),
        })
    }

    /// Registers the metrics in `registry` (the application's).
    pub fn register(&self, registry: &Registry) -> Result<(), ::prometheus::Error> {
        registry.register(Box::new(self.clone()))
    }

    /// Also exports `cache_size` and `cache_max_size` gauges, read from a caching provider's
    /// [`CacheReport`] at each scrape (for the dashboard's "cache size vs capacity").
    pub fn observe_cache(&self, report: Arc<dyn CacheReport>) {
        *self
            .inner
            .cache_report
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(report);
    }

    /// The `flag_key` label for `key`.
    fn label<'a>(&self, key: &'a str) -> &'a str {
        self.inner.counts.label(key)
    }

    /// Copies the striped evaluation counts into the exported counter family.
    fn sync(&self) {
        let inner = &self.inner;
        let _w = inner.sync.lock().unwrap_or_else(|e| e.into_inner());
        inner.evaluation_total.reset();
        inner.counts.for_each(|flag, reason, value, n| {
            inner
                .evaluation_total
                .with_label_values(&[flag, reason, value])
                .inc_by(n);
        });
    }
}

impl Metrics for PrometheusMetrics {
    #[inline]
    fn record_evaluation(&self, record: &EvaluationRecord<'_>) {
        let inner = &self.inner;
        if !inner.enabled {
            return;
        }
        inner.counts.record(record);
        if let Some(d) = record.duration {
            let secs = d.as_secs_f64();
            if inner.counts.per_flag() {
                inner
                    .evaluation_duration
                    .with_label_values(&[self.label(record.key), record.reason.as_str()])
                    .observe(secs);
            } else if let Some(h) = inner.all_durations.get(reason_slot(record.reason)) {
                h.get_or_init(|| {
                    inner
                        .evaluation_duration
                        .with_label_values(&[ALL_FLAGS, record.reason.as_str()])
                })
                .observe(secs);
            }
        }
    }

    fn reads_counts(&self) -> bool {
        !self.inner.enabled || self.inner.counts.reads_counts()
    }

    fn attach_counts(&self, counts: Arc<dyn EvaluationCounts>) {
        if self.inner.enabled {
            self.inner.counts.attach(counts);
        }
    }

    fn record_error(&self, key: &str, error: ErrorKind) {
        if self.inner.enabled {
            self.inner
                .evaluation_errors
                .with_label_values(&[self.label(key), error.as_str()])
                .inc();
        }
    }

    fn record_cache_hit(&self, key: &str) {
        if self.inner.enabled {
            self.inner
                .cache_hits
                .with_label_values(&[self.label(key)])
                .inc();
        }
    }

    fn record_cache_miss(&self, key: &str) {
        if self.inner.enabled {
            self.inner
                .cache_misses
                .with_label_values(&[self.label(key)])
                .inc();
        }
    }

    fn record_provider_latency(&self, provider: &str, operation: &str, duration: Duration) {
        if self.inner.enabled {
            self.inner
                .provider_latency
                .with_label_values(&[provider, operation])
                .observe(duration.as_secs_f64());
        }
    }

    fn record_provider_error(&self, provider: &str, operation: &str, error_type: &str) {
        if self.inner.enabled {
            self.inner
                .provider_errors
                .with_label_values(&[provider, operation, error_type])
                .inc();
        }
    }

    fn record_flags(&self, total: usize, active: usize) {
        if self.inner.enabled {
            self.inner
                .flags_total
                .set(i64::try_from(total).unwrap_or(i64::MAX));
            self.inner
                .flags_active
                .set(i64::try_from(active).unwrap_or(i64::MAX));
        }
    }
}

impl Collector for PrometheusMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.inner.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        if !self.inner.enabled {
            return Vec::new();
        }
        self.sync();
        let i = &self.inner;
        let mut out = Vec::with_capacity(9);
        out.extend(i.evaluation_duration.collect());
        out.extend(i.evaluation_total.collect());
        out.extend(i.evaluation_errors.collect());
        out.extend(i.cache_hits.collect());
        out.extend(i.cache_misses.collect());
        out.extend(i.provider_latency.collect());
        out.extend(i.provider_errors.collect());
        out.extend(i.flags_total.collect());
        out.extend(i.flags_active.collect());
        let report = i
            .cache_report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(report) = report {
            let stats = report.cache_stats();
            i.cache_size
                .set(i64::try_from(stats.size).unwrap_or(i64::MAX));
            i.cache_max_size
                .set(i64::try_from(stats.max_size).unwrap_or(i64::MAX));
            out.extend(i.cache_size.collect());
            out.extend(i.cache_max_size.collect());
        }
        out
    }
}

/// A tower `Service` answering every request with a registry's metrics in the Prometheus
/// text format (crate features `prometheus` and `http-endpoints`). Mount it on `/metrics`:
///
/// ```
/// use feature::metrics::prometheus::MetricsService;
/// let registry = prometheus::Registry::new();
/// let app: axum::Router = axum::Router::new().route_service("/metrics", MetricsService::new(registry));
/// # let _ = app;
/// ```
#[cfg(feature = "http-endpoints")]
pub type MetricsService = crate::endpoint::EndpointService<Registry>;

#[cfg(feature = "http-endpoints")]
impl crate::endpoint::Respond for Registry {
    /// The registry's metrics in the Prometheus text format (`500` when they cannot be encoded).
    fn respond(&self) -> http::Response<http_body_util::Full<bytes::Bytes>> {
        let encoder = ::prometheus::TextEncoder::new();
        let (code, body) = match encoder.encode_to_string(&self.gather()) {
            Ok(text) => (http::StatusCode::OK, text),
            Err(e) => (http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        crate::endpoint::response(
            code,
            body,
            &[(
                http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
        )
    }
}
