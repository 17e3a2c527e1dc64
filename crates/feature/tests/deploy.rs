//! deploy/: the Prometheus alerting rules pass `promtool` (syntax and unit tests), and the
//! Grafana dashboard and the rules use only metric names this crate exports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn promtool() -> Option<PathBuf> {
    let candidate = std::env::var("FEATURE_TEST_PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let ok = Command::new(&candidate)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(PathBuf::from(candidate));
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !ci,
        "CI=true but promtool is missing: run scripts/services.sh (Debian package `prometheus`)"
    );
    eprintln!(
        "skipping: promtool not found (apt-get install prometheus, or set FEATURE_TEST_PROMTOOL)"
    );
    None
}

fn run(tool: &Path, args: &[&str]) {
    let dir = deploy().join("prometheus");
    let out = Command::new(tool)
        .args(args)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alert_rules_pass_promtool_check_and_unit_tests() {
    let Some(tool) = promtool() else { return };
    run(&tool, &["check", "rules", "alerts.yaml"]);
    run(&tool, &["test", "rules", "alerts_test.yaml"]);
}

#[test]
fn the_documented_alerts_and_panel_groups_are_there() {
    let alerts = std::fs::read_to_string(deploy().join("prometheus/alerts.yaml")).unwrap();
    for name in [
        "FeatureFlagHighErrorRate",
        "FeatureFlagHighLatency",
        "FeatureFlagProviderDown",
        "FeatureFlagLowCacheHitRate",
    ] {
        assert!(alerts.contains(&format!("alert: {name}")), "{name}");
    }
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("grafana/feature-flags.json")).unwrap(),
    )
    .unwrap();
    let rows: Vec<&str> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        rows,
        [
            "Evaluation Performance",
            "Cache Efficiency",
            "Provider Health",
            "Flag Activity"
        ]
    );
    for p in dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
    {
        let targets = p["targets"].as_array().unwrap();
        assert!(
            !targets.is_empty() && targets.iter().all(|t| t["expr"].is_string()),
            "{}",
            p["title"]
        );
    }
}

/// Every `feature_flags_*` identifier in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("feature_flags_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let before = rest[..i].chars().last();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    out
}

#[cfg(feature = "prometheus")]
#[test]
fn dashboard_and_alerts_use_only_metrics_we_export() {
    use feature::metrics::prometheus::PrometheusMetrics;
    use feature::metrics::{CacheReport, CacheStats, EvaluationRecord, MetricsConfig};
    use feature::{ErrorKind, Metrics, ReasonKind};
    use std::sync::Arc;
    use std::time::Duration;

    struct Cache;
    impl CacheReport for Cache {
        fn cache_stats(&self) -> CacheStats {
            CacheStats::default()
        }
    }

    // Everything this crate can export, each method called once.
    let registry = prometheus::Registry::new();
    let m = PrometheusMetrics::new(&MetricsConfig::default()).unwrap();
    m.register(&registry).unwrap();
    m.observe_cache(Arc::new(Cache));
    m.record_evaluation(&EvaluationRecord {
        key: "k",
        reason: ReasonKind::Fallthrough,
        error: None,
        variation: None,
        value: None,
        duration: Some(Duration::from_micros(3)),
        counted: false,
    });
    m.record_error("k", ErrorKind::FlagNotFound);
    m.record_cache_hit("k");
    m.record_cache_miss("k");
    m.record_provider_latency("file", "load", Duration::from_millis(1));
    m.record_provider_error("file", "reload", "io");
    m.record_flags(2, 1);
    let mut exported = BTreeSet::new();
    for mf in registry.gather() {
        let name = mf.name().to_owned();
        if mf.get_field_type() == prometheus::proto::MetricType::HISTOGRAM {
            for suffix in ["_bucket", "_sum", "_count"] {
                exported.insert(format!("{name}{suffix}"));
            }
        } else {
            exported.insert(name);
        }
    }

    let dash = std::fs::read_to_string(deploy().join("grafana/feature-flags.json")).unwrap();
    let alerts = std::fs::read_to_string(deploy().join("prometheus/alerts.yaml")).unwrap();
    let used: BTreeSet<String> = metric_names(&dash)
        .into_iter()
        .chain(metric_names(&alerts))
        .collect();
    assert!(used.len() >= 9, "{used:?}");
    let unknown: Vec<&String> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "not exported: {unknown:?}; exported: {exported:?}"
    );
}

#[test]
fn metric_name_extraction() {
    let names = metric_names(
        "rate(feature_flags_evaluation_total[5m]) / x_feature_flags_no + feature_flags_total",
    );
    assert_eq!(
        names,
        BTreeSet::from([
            "feature_flags_evaluation_total".to_owned(),
            "feature_flags_total".to_owned()
        ])
    );
}
