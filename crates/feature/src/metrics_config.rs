//! Metrics settings shared by the Prometheus and OpenTelemetry implementations, and [`Tee`],
//! which sends every measurement to two [`Metrics`] implementations (e.g. Prometheus and the
//! statistics behind the health check).
//!
//! ```
//! use feature::metrics_config::MetricsConfig;
//!
//! // FEATURE_METRICS_ENABLED, FEATURE_METRICS_NAMESPACE, FEATURE_METRICS_PER_FLAG
//! let config = MetricsConfig::from_lookup(|k| match k {
//!     "FEATURE_METRICS_NAMESPACE" => Some("myapp_feature_flags".to_owned()),
//!     _ => None,
//! })?;
//! assert!(config.enabled);
//! assert!(!config.per_flag); // per-flag labels are off unless asked for: cardinality
//! assert_eq!(config.metric_name("evaluation_total"), "myapp_feature_flags_evaluation_total");
//! # Ok::<(), feature::ConfigError>(())
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

#![cfg_attr(not(any(feature = "prometheus", feature = "otel")), allow(dead_code))]

use crate::stripe::Striped;
use crate::ConfigError;
use arc_swap::ArcSwap;
use feature_core::metrics::{EvaluationCounts, EvaluationRecord, Metrics, ValueClass};
use feature_core::{ErrorKind, ReasonKind};
use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The `flag_key` label of every series when per-flag labels are off.
pub const ALL_FLAGS: &str = "__all__";

/// The `flag_key` label of flags beyond [`MetricsConfig::max_flag_keys`] when per-flag labels
/// are on (unknown keys asked for by callers cannot grow the series without bound).
pub const OTHER_FLAGS: &str = "__other__";

/// Metrics settings (the plan's `MetricsConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    /// Record anything at all (`FEATURE_METRICS_ENABLED`, default `true`).
    pub enabled: bool,
    /// Prefix of every metric name (`FEATURE_METRICS_NAMESPACE`, default `feature_flags`).
    pub namespace: String,
    /// Latency histogram buckets, in seconds (default `0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
    /// 0.25, 0.5, 1`). Evaluations take microseconds, so most land in the first bucket; add
    /// smaller buckets (e.g. `0.000001`) to see them.
    pub histogram_buckets: Vec<f64>,
    /// Label series with the flag's key (`FEATURE_METRICS_PER_FLAG`, default `false`: every
    /// series gets `flag_key="__all__"`). Each flag multiplies the number of series.
    pub per_flag: bool,
    /// With [`MetricsConfig::per_flag`], how many distinct flag keys get their own series;
    /// later keys share `flag_key="__other__"` (default 1000).
    pub max_flag_keys: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            namespace: "feature_flags".to_owned(),
            histogram_buckets: vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0],
            per_flag: false,
            max_flag_keys: 1000,
        }
    }
}

impl MetricsConfig {
    /// Reads `FEATURE_METRICS_ENABLED`, `FEATURE_METRICS_NAMESPACE` and
    /// `FEATURE_METRICS_PER_FLAG` from the process environment over the defaults.
    pub fn from_env() -> Result<MetricsConfig, ConfigError> {
        MetricsConfig::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`MetricsConfig::from_env`], from any variable lookup.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<MetricsConfig, ConfigError> {
        let mut c = MetricsConfig::default();
        if let Some(v) = get("FEATURE_METRICS_ENABLED") {
            c.enabled = parse_bool("FEATURE_METRICS_ENABLED", v)?;
        }
        if let Some(v) = get("FEATURE_METRICS_NAMESPACE") {
            let ok = v.chars().enumerate().all(|(i, ch)| {
                ch == '_' || ch == ':' || ch.is_ascii_alphabetic() || (i > 0 && ch.is_ascii_digit())
            });
            if !ok {
                return Err(ConfigError::Invalid {
                    variable: "FEATURE_METRICS_NAMESPACE",
                    value: v,
                    expected: "a metric name prefix: letters, digits and underscores, not starting with a digit",
                });
            }
            c.namespace = v;
        }
        if let Some(v) = get("FEATURE_METRICS_PER_FLAG") {
            c.per_flag = parse_bool("FEATURE_METRICS_PER_FLAG", v)?;
        }
        Ok(c)
    }

    /// `namespace_name`, or `name` alone when the namespace is empty.
    pub fn metric_name(&self, name: &str) -> String {
        if self.namespace.is_empty() {
            name.to_owned()
        } else {
            format!("{}_{name}", self.namespace)
        }
    }
}

fn parse_bool(variable: &'static str, v: String) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::Invalid {
            variable,
            value: v,
            expected: "true or false",
        }),
    }
}

/// Number of reason slots ([`reason_slot`]).
pub(crate) const REASONS: usize = ReasonKind::ALL.len();
/// Number of value slots ([`value_slot`]).
pub(crate) const VALUES: usize = ValueClass::ALL.len();

/// The slot of a reason in per-reason counter arrays.
#[inline]
pub(crate) fn reason_slot(r: ReasonKind) -> usize {
    r.index()
}

/// The `reason` label of a slot.
pub(crate) fn reason_label(slot: usize) -> &'static str {
    ReasonKind::ALL.get(slot).map_or("OTHER", |r| r.as_str())
}

/// The slot of a served value: `false`, `true`, `default`, `other`.
#[inline]
pub(crate) fn value_slot(record: &EvaluationRecord<'_>) -> usize {
    ValueClass::of(record.reason, record.value).index()
}

/// The `value` label of a slot.
pub(crate) fn value_label(slot: usize) -> &'static str {
    ValueClass::ALL.get(slot).map_or("other", |c| c.as_str())
}

type Counts = Striped<{ REASONS * VALUES }>;

/// Evaluation counts handed over by clients ([`Metrics::attach_counts`]), added up on read.
#[derive(Default)]
pub(crate) struct AttachedCounts(Mutex<Vec<Arc<dyn EvaluationCounts>>>);

impl std::fmt::Debug for AttachedCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachedCounts")
            .field("clients", &self.lock().len())
            .finish()
    }
}

impl AttachedCounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<dyn EvaluationCounts>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a client's counts.
    pub(crate) fn push(&self, counts: Arc<dyn EvaluationCounts>) {
        self.lock().push(counts);
    }

    /// Calls `f(reason, value, count)` for every client's counts.
    pub(crate) fn for_each(&self, mut f: impl FnMut(ReasonKind, ValueClass, u64)) {
        for c in self.lock().iter() {
            c.for_each_count(&mut f);
        }
    }
}

/// Evaluation counts by flag, reason and value: striped counters, read at scrape time.
pub(crate) struct EvalCounts {
    per_flag: bool,
    max_flag_keys: usize,
    /// Counts when per-flag labels are off.
    all: Counts,
    /// Counts kept by clients (per-flag labels off).
    attached: AttachedCounts,
    /// Counts per flag key when they are on.
    flags: ArcSwap<FxHashMap<Box<str>, Arc<Counts>>>,
    /// Serialises insertions into `flags`.
    write: Mutex<()>,
}

impl EvalCounts {
    pub(crate) fn new(config: &MetricsConfig) -> Self {
        EvalCounts {
            per_flag: config.per_flag,
            max_flag_keys: config.max_flag_keys,
            all: Counts::default(),
            attached: AttachedCounts::default(),
            flags: ArcSwap::from_pointee(FxHashMap::default()),
            write: Mutex::new(()),
        }
    }

    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    pub(crate) fn per_flag(&self) -> bool {
        self.per_flag
    }

    /// Whether clients may count for these counts: only without per-flag labels.
    pub(crate) fn reads_counts(&self) -> bool {
        !self.per_flag
    }

    /// Keeps a client's counts, added to the all-flags series.
    pub(crate) fn attach(&self, counts: Arc<dyn EvaluationCounts>) {
        self.attached.push(counts);
    }

    /// Counts one evaluation (unless a client has counted it already).
    #[inline]
    pub(crate) fn record(&self, record: &EvaluationRecord<'_>) {
        if record.counted {
            return;
        }
        let slot = reason_slot(record.reason) * VALUES + value_slot(record);
        if self.per_flag {
            self.flag(record.key).0.add(slot, 1);
        } else {
            self.all.add(slot, 1);
        }
    }

    /// The counters of `key` (created on first sight) and whether it has its own label.
    fn flag(&self, key: &str) -> (Arc<Counts>, bool) {
        if let Some(c) = self.flags.load().get(key) {
            return (c.clone(), true);
        }
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let map = self.flags.load_full();
        if let Some(c) = map.get(key) {
            return (c.clone(), true);
        }
        let (label, own) = if map.len() < self.max_flag_keys {
            (key, true)
        } else {
            (OTHER_FLAGS, false)
        };
        if let Some(c) = map.get(label) {
            return (c.clone(), own);
        }
        let c = Arc::new(Counts::default());
        let mut next = FxHashMap::clone(&map);
        next.insert(label.into(), c.clone());
        self.flags.store(Arc::new(next));
        (c, own)
    }

    /// The `flag_key` label of `key`.
    pub(crate) fn label<'a>(&self, key: &'a str) -> &'a str {
        if !self.per_flag {
            return ALL_FLAGS;
        }
        if self.flag(key).1 {
            key
        } else {
            OTHER_FLAGS
        }
    }

    /// Calls `f(flag_key, reason, value, count)` for every series counted so far.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&str, &'static str, &'static str, u64)) {
        let mut put = |flag: &str, totals: &[u64]| {
            for (i, &n) in totals.iter().enumerate() {
                if n > 0 {
                    f(flag, reason_label(i / VALUES), value_label(i % VALUES), n);
                }
            }
        };
        let mut all = self.all.totals();
        self.attached.for_each(|reason, value, n| {
            let i = reason_slot(reason) * VALUES + value.index();
            if let Some(c) = all.get_mut(i) {
                *c = c.wrapping_add(n);
            }
        });
        put(ALL_FLAGS, &all);
        for (k, c) in self.flags.load().iter() {
            put(k, &c.totals());
        }
    }
}

/// Sends every measurement to two [`Metrics`] implementations, in order. Nest for more:
/// `Tee(a, Tee(b, c))`.
///
/// ```
/// use feature::health::EvaluationStats;
/// use feature::metrics_config::Tee;
/// use feature::{Metrics, NoopMetrics};
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_defaults_and_rejects_garbage() {
        let c = MetricsConfig::from_lookup(|k| match k {
            "FEATURE_METRICS_ENABLED" => Some("false".into()),
            "FEATURE_METRICS_PER_FLAG" => Some("1".into()),
            "FEATURE_METRICS_NAMESPACE" => Some("app_ff".into()),
            _ => None,
        })
        .unwrap();
        assert!(!c.enabled && c.per_flag);
        assert_eq!(c.metric_name("flags_total"), "app_ff_flags_total");
        assert_eq!(MetricsConfig::default().histogram_buckets.len(), 9);
        let bad = MetricsConfig::from_lookup(|k| {
            (k == "FEATURE_METRICS_NAMESPACE").then(|| "9-bad".to_owned())
        });
        assert!(matches!(
            bad,
            Err(ConfigError::Invalid {
                variable: "FEATURE_METRICS_NAMESPACE",
                ..
            })
        ));
        let bad = MetricsConfig::from_lookup(|k| {
            (k == "FEATURE_METRICS_ENABLED").then(|| "maybe".to_owned())
        });
        assert!(bad.is_err());
    }

    #[test]
    fn slots_have_labels() {
        for r in ReasonKind::ALL {
            assert_eq!(reason_label(reason_slot(r)), r.as_str());
        }
    }
}
