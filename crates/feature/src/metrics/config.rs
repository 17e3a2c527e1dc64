//! Metrics settings: names, buckets and labels, from code or `FEATURE_METRICS_*` variables.

use crate::ConfigError;

/// The `flag_key` label of every series when per-flag labels are off.
pub const ALL_FLAGS: &str = "__all__";

/// The `flag_key` label of flags beyond [`MetricsConfig::max_flag_keys`] when per-flag labels
/// are on (unknown keys asked for by callers cannot grow the series without bound).
pub const OTHER_FLAGS: &str = "__other__";

/// Metrics settings, shared by the Prometheus and OpenTelemetry
/// implementations.
///
/// ```
/// use feature::metrics::MetricsConfig;
///
/// // FEATURE_METRICS_ENABLED, FEATURE_METRICS_NAMESPACE, FEATURE_METRICS_PER_FLAG
/// let config = MetricsConfig::from_lookup(|k| match k {
///     "FEATURE_METRICS_NAMESPACE" => Some("myapp_feature_flags".to_owned()),
///     _ => None,
/// })?;
/// assert!(config.enabled);
/// assert!(!config.per_flag); // per-flag labels are off unless asked for: cardinality
/// assert_eq!(config.metric_name("evaluation_total"), "myapp_feature_flags_evaluation_total");
/// # Ok::<(), feature::ConfigError>(())
/// ```
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
}
