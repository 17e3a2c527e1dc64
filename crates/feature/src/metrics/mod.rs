//! Metrics: what the client and providers measure, and where it goes.
//!
//! The hook is the engine's [`Metrics`] trait (no-op by default: [`NoopMetrics`]), given to
//! [`ClientBuilder::metrics`](crate::ClientBuilder::metrics). Implementations here:
//!
//! - [`EvaluationStats`]: the numbers behind the health check ([`crate::health`]);
//! - `prometheus::PrometheusMetrics` (crate feature `prometheus`): nine flag metrics in
//!   the application's Prometheus registry, and with `http-endpoints` the `/metrics` endpoint
//!   `prometheus::MetricsService`;
//! - `otel::OtelMetrics` (crate feature `otel`): the same instruments through the
//!   OpenTelemetry metrics API;
//! - [`Tee`]: two implementations as one (e.g. Prometheus and the health statistics).
//!
//! [`MetricsConfig`] holds the settings the Prometheus and OpenTelemetry implementations
//! share (namespace, buckets, per-flag labels), from code or `FEATURE_METRICS_*` variables.
//!
//! Evaluations are counted on every call, by the client, in per-thread counters that the
//! implementations read when they are scraped ([`Metrics::reads_counts`]); one evaluation in
//! 64 is timed (see [`ClientBuilder::timing_sample`](crate::ClientBuilder::timing_sample)).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use feature::metrics::{EvaluationStats, NoopMetrics, Tee};
//! use feature::{Client, Context, Flag, MemoryProvider};
//!
//! let stats = EvaluationStats::new();
//! let metrics = Tee(NoopMetrics, stats.clone()); // e.g. Prometheus + health statistics
//! let flags = MemoryProvider::new();
//! flags.set_flag(Flag::boolean("beta", true));
//! let client = Client::builder().provider(flags).metrics(metrics).build().await?;
//! client.bool(&Context::new("u1"), "beta", false);
//! assert_eq!(stats.report().total_evaluations, 1);
//! # Ok(()) }
//! ```
//!
//! ## Labels
//!
//! | label | values |
//! |---|---|
//! | `flag_key` | the flag's key when [`MetricsConfig::per_flag`] is on; otherwise always [`ALL_FLAGS`] |
//! | `reason` | `OFF`, `TARGET_MATCH`, `RULE_MATCH`, `FALLTHROUGH`, `PREREQUISITE_FAILED`, `OVERRIDE`, `ERROR` |
//! | `value` | `true` / `false` for boolean values, `default` when the caller's default was served, `other` for any other value: the label stays bounded whatever the flags serve |
//! | `error_type` | `FLAG_NOT_FOUND`, `MALFORMED_FLAG`, `WRONG_TYPE`, `CLIENT_NOT_READY`, ... (evaluation) or the provider's short error class |

mod config;
pub(crate) mod counts;
mod stats;
pub(crate) mod stripe;
mod tee;

#[cfg(feature = "otel")]
pub mod otel;
#[cfg(feature = "prometheus")]
pub mod prometheus;

pub use config::{MetricsConfig, ALL_FLAGS, OTHER_FLAGS};
pub use feature_core::metrics::{
    CacheReport, CacheStats, EvaluationCounts, EvaluationRecord, Metrics, NoopMetrics, ValueClass,
};
pub use stats::{EvaluationStats, EvaluationStatsReport};
pub use tee::Tee;
