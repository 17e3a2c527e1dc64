//! OpenTelemetry metrics (crate feature `otel`): the same instruments as
//! the `prometheus` module, through the `opentelemetry` API crate only, so the application's
//! SDK and exporter (OTLP, Prometheus, ...) decide where they go.
//!
//! ```
//! use feature::metrics::otel::OtelMetrics;
//! use feature::metrics::MetricsConfig;
//!
//! let meter = opentelemetry::global::meter("feature");
//! let metrics = OtelMetrics::new(&meter, &MetricsConfig::default());
//! // Client::builder().metrics(metrics) ...
//! # let _ = metrics;
//! ```
//!
//! | instrument | kind | unit | attributes |
//! |---|---|---|---|
//! | `feature_flags_evaluation_duration_seconds` | f64 histogram | `s` | `flag_key`, `reason` |
//! | `feature_flags_evaluation_total` | u64 observable counter | | `flag_key`, `reason`, `value` |
//! | `feature_flags_evaluation_errors_total` | u64 counter | | `flag_key`, `error_type` |
//! | `feature_flags_cache_hits_total` | u64 counter | | `flag_key` |
//! | `feature_flags_cache_misses_total` | u64 counter | | `flag_key` |
//! | `feature_flags_provider_latency_seconds` | f64 histogram | `s` | `provider`, `operation` |
//! | `feature_flags_provider_errors_total` | u64 counter | | `provider`, `operation`, `error_type` |
//! | `feature_flags_total` | u64 gauge | | - |
//! | `feature_flags_active_total` | u64 gauge | | - |
//!
//! Names keep the Prometheus spelling so that dashboards and alerts work whichever path the
//! numbers take. Evaluations are counted as for the Prometheus implementation (by the client's
//! own per-thread counts when per-flag labels are off, see
//! [`Metrics::reads_counts`]; in per-thread
//! counters of their own when on) and reported by the observable counter's callback at
//! collection time, so the evaluating thread never builds attribute sets.

use super::counts::EvalCounts;
use super::MetricsConfig;
use feature_core::metrics::{EvaluationCounts, EvaluationRecord, Metrics};
use feature_core::ErrorKind;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, ObservableCounter};
use opentelemetry::KeyValue;
use std::sync::Arc;
use std::time::Duration;

/// The flag metrics as OpenTelemetry instruments. Cheap to clone.
#[derive(Clone)]
pub struct OtelMetrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OtelMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelMetrics")
            .field("enabled", &self.inner.enabled)
            .finish()
    }
}

struct Inner {
    enabled: bool,
    counts: Arc<EvalCounts>,
    evaluation_duration: Histogram<f64>,
    _evaluation_total: ObservableCounter<u64>,
    evaluation_errors: Counter<u64>,
    cache_hits: Counter<u64>,
    cache_misses: Counter<u64>,
    provider_latency: Histogram<f64>,
    provider_errors: Counter<u64>,
    flags_total: Gauge<u64>,
    flags_active: Gauge<u64>,
}

impl OtelMetrics {
    /// Creates the instruments on `meter`, named after `config.namespace`.
    pub fn new(meter: &Meter, config: &MetricsConfig) -> Self {
        let name = |n: &str| config.metric_name(n);
        let counts = Arc::new(EvalCounts::new(config));
        let observed = counts.clone();
        let evaluation_total = meter
            .u64_observable_counter(name("evaluation_total"))
            .with_description("Total flag evaluations.")
            .with_callback(move |obs| {
                observed.for_each(|flag, reason, value, n| {
                    obs.observe(
                        n,
                        &[
                            KeyValue::new("flag_key", flag.to_owned()),
                            KeyValue::new("reason", reason),
                            KeyValue::new("value", value),
                        ],
                    );
                });
            })
            .build();
        let histogram = |n: &str, help: &'static str| {
            meter
                .f64_histogram(name(n))
                .with_description(help)
                .with_unit("s")
                .with_boundaries(config.histogram_buckets.clone())
                .build()
        };
        let counter =
            |n: &str, help: &'static str| meter.u64_counter(name(n)).with_description(help).build();
        OtelMetrics {
            inner: Arc::new(Inner {
                enabled: config.enabled,
                counts,
                evaluation_duration: histogram(
                    "evaluation_duration_seconds",
                    "Time to evaluate a flag (sampled).",
                ),
                _evaluation_total: evaluation_total,
                evaluation_errors: counter(
                    "evaluation_errors_total",
                    "Flag evaluations that failed and served the caller's default.",
                ),
                cache_hits: counter("cache_hits_total", "Provider cache hits."),
                cache_misses: counter("cache_misses_total", "Provider cache misses."),
                provider_latency: histogram("provider_latency_seconds", "Provider operation time."),
                provider_errors: counter("provider_errors_total", "Provider operation failures."),
                flags_total: meter
                    .u64_gauge(name("total"))
                    .with_description("Flags in the live snapshot.")
                    .build(),
                flags_active: meter
                    .u64_gauge(name("active_total"))
                    .with_description("Enabled flags in the live snapshot.")
                    .build(),
            }),
        }
    }

    fn flag(&self, key: &str) -> KeyValue {
        KeyValue::new("flag_key", self.inner.counts.label(key).to_owned())
    }
}

impl Metrics for OtelMetrics {
    #[inline]
    fn record_evaluation(&self, record: &EvaluationRecord<'_>) {
        let inner = &self.inner;
        if !inner.enabled {
            return;
        }
        inner.counts.record(record);
        if let Some(d) = record.duration {
            inner.evaluation_duration.record(
                d.as_secs_f64(),
                &[
                    self.flag(record.key),
                    KeyValue::new("reason", record.reason.as_str()),
                ],
            );
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
            self.inner.evaluation_errors.add(
                1,
                &[self.flag(key), KeyValue::new("error_type", error.as_str())],
            );
        }
    }

    fn record_cache_hit(&self, key: &str) {
        if self.inner.enabled {
            self.inner.cache_hits.add(1, &[self.flag(key)]);
        }
    }

    fn record_cache_miss(&self, key: &str) {
        if self.inner.enabled {
            self.inner.cache_misses.add(1, &[self.flag(key)]);
        }
    }

    fn record_provider_latency(&self, provider: &str, operation: &str, duration: Duration) {
        if self.inner.enabled {
            self.inner.provider_latency.record(
                duration.as_secs_f64(),
                &[
                    KeyValue::new("provider", provider.to_owned()),
                    KeyValue::new("operation", operation.to_owned()),
                ],
            );
        }
    }

    fn record_provider_error(&self, provider: &str, operation: &str, error_type: &str) {
        if self.inner.enabled {
            self.inner.provider_errors.add(
                1,
                &[
                    KeyValue::new("provider", provider.to_owned()),
                    KeyValue::new("operation", operation.to_owned()),
                    KeyValue::new("error_type", error_type.to_owned()),
                ],
            );
        }
    }

    fn record_flags(&self, total: usize, active: usize) {
        if self.inner.enabled {
            self.inner.flags_total.record(total as u64, &[]);
            self.inner.flags_active.record(active as u64, &[]);
        }
    }
}
