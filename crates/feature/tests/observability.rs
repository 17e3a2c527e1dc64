//! Metrics and health, end to end: a client with Prometheus metrics and health statistics,
//! served over HTTP by axum on 127.0.0.1 and scraped like Prometheus would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run
#![cfg(all(feature = "prometheus", feature = "http-endpoints"))]

use async_trait::async_trait;
use feature::health::{Health, HealthCheck, HealthService, Status};
use feature::metrics::prometheus::{MetricsService, PrometheusMetrics};
use feature::metrics::{CacheReport, CacheStats, EvaluationStats, MetricsConfig, Tee};
use feature::providers::Sink;
use feature::{
    Client, Context, FileProvider, Flag, MemoryProvider, Metrics, Provider, ProviderError,
    ProviderState, ProviderStatus,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const FLAGS: &str = r#"
flags:
  beta:
    type: bool
    default: true
  legacy:
    type: bool
    default: false
    enabled: false
  theme:
    type: string
    default: light
"#;

/// Serves `router` on a free loopback port; returns the base URL.
async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// A plain HTTP GET over a TCP socket: status and body.
async fn get(url: &str) -> (u16, String) {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let resp = client.get(url.parse().unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// `# TYPE` of every family and the label names of every sample, from the text format.
fn parse(text: &str) -> (BTreeMap<String, String>, BTreeMap<String, BTreeSet<String>>) {
    let mut types = BTreeMap::new();
    let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').unwrap();
            types.insert(name.to_owned(), ty.to_owned());
        } else if !line.starts_with('#') && !line.is_empty() {
            let (name, rest) = line.split_once(['{', ' ']).unwrap();
            let set = labels.entry(name.to_owned()).or_default();
            if let Some((inside, _)) = rest.split_once('}') {
                for pair in inside.split(',').filter(|p| !p.is_empty()) {
                    set.insert(pair.split_once('=').unwrap().0.to_owned());
                }
            }
        }
    }
    (types, labels)
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn set(labels: &[&str]) -> BTreeSet<String> {
    labels.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraping_metrics_shows_every_documented_metric_with_its_type_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("features.yaml");
    std::fs::write(&path, FLAGS).unwrap();
    let registry = prometheus::Registry::new();
    let metrics = PrometheusMetrics::new(&MetricsConfig::default()).unwrap();
    metrics.register(&registry).unwrap();
    let stats = EvaluationStats::new();
    let client = Client::builder()
        .provider(FileProvider::new(&path))
        .metrics(Tee(metrics.clone(), stats.clone()))
        .timing_sample(1)
        .build()
        .await
        .unwrap();
    let user = Context::new("u1");
    for _ in 0..10 {
        assert!(client.bool(&user, "beta", false));
    }
    assert!(!client.bool(&user, "legacy", true)); // OFF
    assert_eq!(client.string(&user, "theme", "dark"), "light");
    assert!(client.bool(&user, "missing", true)); // FLAG_NOT_FOUND
    assert_eq!(client.int(&user, "theme", 7), 7); // WRONG_TYPE
                                                  // A caching provider reports its hits and misses through the same hook.
    metrics.record_cache_hit("beta");
    metrics.record_cache_miss("beta");
    // The store goes away: the reload fails, a provider error is counted.
    std::fs::remove_file(&path).unwrap();
    wait_until("the provider error", || {
        client.provider_status().state == ProviderState::Degraded
    })
    .await;

    let base =
        serve(axum::Router::new().route_service("/metrics", MetricsService::new(registry))).await;
    let (status, text) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    let (types, labels) = parse(&text);
    let plan: [(&str, &str, &[&str]); 9] = [
        (
            "feature_flags_evaluation_duration_seconds",
            "histogram",
            &["flag_key", "reason"],
        ),
        (
            "feature_flags_evaluation_total",
            "counter",
            &["flag_key", "reason", "value"],
        ),
        (
            "feature_flags_evaluation_errors_total",
            "counter",
            &["flag_key", "error_type"],
        ),
        ("feature_flags_cache_hits_total", "counter", &["flag_key"]),
        ("feature_flags_cache_misses_total", "counter", &["flag_key"]),
        (
            "feature_flags_provider_latency_seconds",
            "histogram",
            &["provider", "operation"],
        ),
        (
            "feature_flags_provider_errors_total",
            "counter",
            &["provider", "operation", "error_type"],
        ),
        ("feature_flags_total", "gauge", &[]),
        ("feature_flags_active_total", "gauge", &[]),
    ];
    for (name, ty, want) in plan {
        assert_eq!(
            types.get(name).map(String::as_str),
            Some(ty),
            "type of {name} in\n{text}"
        );
        let sample = if ty == "histogram" {
            format!("{name}_count")
        } else {
            name.to_owned()
        };
        assert_eq!(
            labels.get(&sample),
            Some(&set(want)),
            "labels of {sample} in\n{text}"
        );
        if ty == "histogram" {
            let mut with_le = set(want);
            with_le.insert("le".into());
            assert_eq!(labels.get(&format!("{name}_bucket")), Some(&with_le));
        }
    }
    for line in [
        r#"feature_flags_evaluation_total{flag_key="__all__",reason="FALLTHROUGH",value="true"} 10"#,
        r#"feature_flags_evaluation_total{flag_key="__all__",reason="OFF",value="false"} 1"#,
        r#"feature_flags_evaluation_total{flag_key="__all__",reason="FALLTHROUGH",value="other"} 1"#,
        r#"feature_flags_evaluation_total{flag_key="__all__",reason="ERROR",value="default"} 2"#,
        r#"feature_flags_evaluation_errors_total{error_type="FLAG_NOT_FOUND",flag_key="__all__"} 1"#,
        r#"feature_flags_evaluation_errors_total{error_type="WRONG_TYPE",flag_key="__all__"} 1"#,
        r#"feature_flags_evaluation_duration_seconds_count{flag_key="__all__",reason="FALLTHROUGH"} 11"#,
        r#"feature_flags_cache_hits_total{flag_key="__all__"} 1"#,
        r#"feature_flags_provider_errors_total{error_type="io",operation="reload",provider="file"} 1"#,
        r#"feature_flags_provider_latency_seconds_count{operation="load",provider="file"} 1"#,
        "feature_flags_total 3",
        "feature_flags_active_total 2",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
    client.close().await;
}

#[tokio::test]
async fn flag_gauges_follow_the_snapshot() {
    let registry = prometheus::Registry::new();
    let metrics = PrometheusMetrics::new(&MetricsConfig::default()).unwrap();
    metrics.register(&registry).unwrap();
    let flags = MemoryProvider::new();
    flags.set_flag(Flag::boolean("a", true));
    let client = Client::builder()
        .provider(flags.clone())
        .metrics(metrics.clone())
        .build()
        .await
        .unwrap();
    let gauges = || {
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        let get = |n: &str| {
            text.lines().find_map(|l| {
                l.strip_prefix(&format!("{n} "))
                    .map(|v| v.parse::<i64>().unwrap())
            })
        };
        (
            get("feature_flags_total"),
            get("feature_flags_active_total"),
        )
    };
    assert_eq!(gauges(), (Some(1), Some(1)));
    let mut off = Flag::boolean("b", true);
    off.enabled = false;
    flags.set_flag(off);
    flags.set_flag(Flag::boolean("c", false));
    assert_eq!(gauges(), (Some(3), Some(2)));
    flags.remove_flag("a");
    assert_eq!(gauges(), (Some(2), Some(1)));
    client.close().await;
}

#[tokio::test]
async fn per_flag_labels_are_opt_in_and_bounded() {
    let registry = prometheus::Registry::new();
    let config = MetricsConfig {
        per_flag: true,
        max_flag_keys: 2,
        namespace: "app_ff".into(),
        ..MetricsConfig::default()
    };
    let metrics = PrometheusMetrics::new(&config).unwrap();
    metrics.register(&registry).unwrap();
    let flags = MemoryProvider::new();
    flags.set_flag(Flag::boolean("a", true));
    flags.set_flag(Flag::boolean("b", false));
    let client = Client::builder()
        .provider(flags)
        .metrics(metrics)
        .build()
        .await
        .unwrap();
    let user = Context::new("u");
    client.bool(&user, "a", false);
    client.bool(&user, "b", true);
    for i in 0..50 {
        client.bool(&user, &format!("unknown-{i}"), false);
    }
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert!(
        text.contains(
            r#"app_ff_evaluation_total{flag_key="a",reason="FALLTHROUGH",value="true"} 1"#
        ),
        "{text}"
    );
    assert!(text
        .contains(r#"app_ff_evaluation_total{flag_key="b",reason="FALLTHROUGH",value="false"} 1"#));
    // Keys beyond the limit share one series instead of creating 50.
    assert!(
        text.contains(
            r#"app_ff_evaluation_total{flag_key="__other__",reason="ERROR",value="default"} 50"#
        ),
        "{text}"
    );
    assert!(text.contains(
        r#"app_ff_evaluation_errors_total{error_type="FLAG_NOT_FOUND",flag_key="__other__"} 50"#
    ));
    assert!(!text.contains("unknown-"));
    client.close().await;
}

/// Counts through `record_evaluation` on every call (it does not read the client's counts).
#[derive(Clone, Default)]
struct PerCall(Arc<std::sync::atomic::AtomicU64>);

impl Metrics for PerCall {
    fn record_evaluation(&self, r: &feature::metrics::EvaluationRecord<'_>) {
        assert!(
            !r.counted,
            "a per-call implementation is never told an evaluation was counted"
        );
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_exact_whether_the_client_or_the_metrics_count() {
    let registry = prometheus::Registry::new();
    let metrics = PrometheusMetrics::new(&MetricsConfig::default()).unwrap();
    metrics.register(&registry).unwrap();
    let stats = EvaluationStats::new();
    let per_call = PerCall::default();
    let flags = || {
        let p = MemoryProvider::new();
        p.set_flag(Flag::boolean("a", true));
        p
    };
    // One client where every hook reads the client's counts; one where a hook does not, so
    // that the Prometheus half is called for every evaluation and counts them itself. Both
    // share the same Prometheus metrics and statistics.
    let counted = Client::builder()
        .provider(flags())
        .metrics(Tee(metrics.clone(), stats.clone()))
        .build()
        .await
        .unwrap();
    let mixed = Client::builder()
        .provider(flags())
        .metrics(Tee(metrics.clone(), Tee(stats.clone(), per_call.clone())))
        .build()
        .await
        .unwrap();
    // Evaluations from several threads at once.
    let mut tasks = Vec::new();
    for t in 0..4 {
        let (counted, mixed) = (counted.clone(), mixed.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            let user = Context::new(format!("u{t}"));
            for _ in 0..1000 {
                assert!(counted.bool(&user, "a", false));
            }
            for _ in 0..500 {
                assert!(mixed.bool(&user, "a", false));
                assert!(!mixed.bool(&user, "missing", false));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    for line in [
        r#"feature_flags_evaluation_total{flag_key="__all__",reason="FALLTHROUGH",value="true"} 6000"#,
        r#"feature_flags_evaluation_total{flag_key="__all__",reason="ERROR",value="default"} 2000"#,
        r#"feature_flags_evaluation_errors_total{error_type="FLAG_NOT_FOUND",flag_key="__all__"} 2000"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
    let report = stats.report();
    assert_eq!(report.total_evaluations, 8000);
    assert!((report.error_rate - 0.25).abs() < 1e-9, "{report:?}");
    assert_eq!(per_call.0.load(std::sync::atomic::Ordering::Relaxed), 4000);
    counted.close().await;
    mixed.close().await;
}

#[tokio::test]
async fn disabled_metrics_record_nothing() {
    let registry = prometheus::Registry::new();
    let metrics = PrometheusMetrics::new(&MetricsConfig {
        enabled: false,
        ..MetricsConfig::default()
    })
    .unwrap();
    metrics.register(&registry).unwrap();
    let client = Client::builder().metrics(metrics).build().await.unwrap();
    client.bool(&Context::new("u"), "x", false);
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert!(!text.contains("evaluation_total{"), "{text}");
    assert!(!text.contains("feature_flags_total "), "{text}");
}

async fn file_client(path: &Path, stats: &EvaluationStats) -> Client {
    Client::builder()
        .provider(FileProvider::new(path))
        .metrics(stats.clone())
        .timing_sample(1)
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_degraded_when_the_store_goes_away_and_healthy_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("features.yaml");
    std::fs::write(&path, FLAGS).unwrap();
    let stats = EvaluationStats::new();
    let client = file_client(&path, &stats).await;
    let health = Health::new(client.clone(), stats.clone());
    let base =
        serve(axum::Router::new().route_service("/health", HealthService::new(health.clone())))
            .await;
    let url = format!("{base}/health");

    let (code, body) = get(&url).await;
    let report: HealthCheck = serde_json::from_str(&body).unwrap();
    assert_eq!((code, report.status), (200, Status::Healthy));
    assert_eq!(report.flags_loaded, 3);
    assert!(report.provider.connected && report.provider.last_error.is_none());
    assert!(report.last_refresh.is_some());

    std::fs::remove_file(&path).unwrap();
    wait_until("degraded", || health.check().status == Status::Degraded).await;
    let (code, body) = get(&url).await;
    let report: HealthCheck = serde_json::from_str(&body).unwrap();
    assert_eq!((code, report.status), (200, Status::Degraded));
    assert!(report.provider.last_error.is_some() && report.provider.last_error_at.is_some());
    assert_eq!(
        report.flags_loaded, 3,
        "the last good flags are still served"
    );
    assert!(client.bool(&Context::new("u"), "beta", false));

    std::fs::write(&path, FLAGS.replace("default: light", "default: dark")).unwrap();
    wait_until("healthy again", || health.check().status == Status::Healthy).await;
    let (code, body) = get(&url).await;
    let report: HealthCheck = serde_json::from_str(&body).unwrap();
    assert_eq!((code, report.status), (200, Status::Healthy));
    assert!(report.provider.last_error.is_none());
    client.close().await;
}

/// A provider whose store never answers: it starts (in the background) but never publishes.
struct NeverLoads;

#[async_trait]
impl Provider for NeverLoads {
    fn name(&self) -> &'static str {
        "never"
    }
    async fn start(&self, _sink: Arc<dyn Sink>) -> Result<(), ProviderError> {
        Ok(())
    }
    fn status(&self) -> ProviderStatus {
        ProviderStatus {
            state: ProviderState::Starting,
            ..ProviderStatus::default()
        }
    }
}

#[tokio::test]
async fn health_is_unhealthy_while_no_flags_were_ever_loaded() {
    let stats = EvaluationStats::new();
    let client = Client::builder()
        .provider(NeverLoads)
        .metrics(stats.clone())
        .build()
        .await
        .unwrap();
    assert!(!client.bool(&Context::new("u"), "beta", false));
    let health = Health::new(client.clone(), stats);
    let report = health.check();
    assert_eq!(report.status, Status::Unhealthy);
    assert_eq!(report.flags_loaded, 0);
    assert_eq!(report.evaluation_stats.total_evaluations, 1);
    assert_eq!(report.evaluation_stats.error_rate, 1.0);
    let resp = HealthService::new(health).respond();
    assert_eq!(resp.status(), 503);
}

struct RedisLikeCache;

impl CacheReport for RedisLikeCache {
    fn cache_stats(&self) -> CacheStats {
        CacheStats {
            hits: 90,
            misses: 10,
            size: 42,
            max_size: 1000,
        }
    }
}

#[tokio::test]
async fn the_report_has_exactly_the_documented_fields() {
    let stats = EvaluationStats::new();
    let flags = MemoryProvider::new();
    flags.set_flag(Flag::boolean("beta", true));
    let client = Client::builder()
        .provider(flags)
        .metrics(stats.clone())
        .timing_sample(1)
        .build()
        .await
        .unwrap();
    for _ in 0..99 {
        client.bool(&Context::new("u"), "beta", false);
    }
    client.bool(&Context::new("u"), "nope", false);
    let health = Health::new(client.clone(), stats.clone()).with_cache(Arc::new(RedisLikeCache));
    let v: serde_json::Value = serde_json::from_str(&health.check_json()).unwrap();
    let keys = |v: &serde_json::Value| {
        v.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        keys(&v),
        set(&[
            "status",
            "provider",
            "cache",
            "last_refresh",
            "flags_loaded",
            "evaluation_stats"
        ])
    );
    assert_eq!(keys(&v["provider"]), set(&["connected", "latency_ms"]));
    assert_eq!(
        keys(&v["cache"]),
        set(&["enabled", "hit_rate", "size", "max_size"])
    );
    assert_eq!(
        keys(&v["evaluation_stats"]),
        set(&[
            "total_evaluations",
            "error_rate",
            "avg_latency_ms",
            "p99_latency_ms"
        ])
    );
    assert_eq!(v["status"], "healthy");
    assert_eq!(
        v["cache"],
        serde_json::json!({"enabled": true, "hit_rate": 0.9, "size": 42, "max_size": 1000})
    );
    assert_eq!(v["evaluation_stats"]["total_evaluations"], 100);
    assert_eq!(v["evaluation_stats"]["error_rate"], 0.01);
    assert!(v["evaluation_stats"]["p99_latency_ms"].as_f64().unwrap() > 0.0);
    assert!(v["evaluation_stats"]["avg_latency_ms"].as_f64().unwrap() > 0.0);
    // Without a cache report, the hit rate comes from what providers reported as metrics.
    stats.record_cache_hit("beta");
    stats.record_cache_miss("beta");
    stats.record_cache_hit("beta");
    let report = Health::new(client.clone(), stats).check();
    assert!(report.cache.enabled);
    assert!((report.cache.hit_rate - 2.0 / 3.0).abs() < 1e-9);
    client.close().await;
}

#[cfg(feature = "otel")]
#[tokio::test]
async fn otel_instruments_carry_the_same_names_and_counts() {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let meter = provider.meter("feature");
    let metrics = feature::metrics::otel::OtelMetrics::new(&meter, &MetricsConfig::default());
    let flags = MemoryProvider::new();
    flags.set_flag(Flag::boolean("beta", true));
    let client = Client::builder()
        .provider(flags)
        .metrics(metrics)
        .timing_sample(1)
        .build()
        .await
        .unwrap();
    for _ in 0..5 {
        client.bool(&Context::new("u"), "beta", false);
    }
    client.bool(&Context::new("u"), "missing", false);
    provider.force_flush().unwrap();
    let mut seen = BTreeMap::new();
    for rm in exporter.get_finished_metrics().unwrap() {
        for sm in rm.scope_metrics() {
            for m in sm.metrics() {
                let total: f64 = match m.data() {
                    AggregatedMetrics::U64(MetricData::Sum(s)) => {
                        s.data_points().map(|p| p.value() as f64).sum()
                    }
                    AggregatedMetrics::U64(MetricData::Gauge(g)) => {
                        g.data_points().map(|p| p.value() as f64).sum()
                    }
                    AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                        h.data_points().map(|p| p.count() as f64).sum()
                    }
                    _ => -1.0,
                };
                seen.insert(m.name().to_owned(), total);
            }
        }
    }
    assert_eq!(
        seen.get("feature_flags_evaluation_total"),
        Some(&6.0),
        "{seen:?}"
    );
    assert_eq!(
        seen.get("feature_flags_evaluation_errors_total"),
        Some(&1.0),
        "{seen:?}"
    );
    assert_eq!(
        seen.get("feature_flags_evaluation_duration_seconds"),
        Some(&6.0),
        "{seen:?}"
    );
    assert_eq!(seen.get("feature_flags_total"), Some(&1.0), "{seen:?}");
    assert_eq!(
        seen.get("feature_flags_active_total"),
        Some(&1.0),
        "{seen:?}"
    );
    assert_eq!(
        seen.get("feature_flags_provider_latency_seconds"),
        Some(&1.0),
        "{seen:?}"
    );
    client.close().await;
}

/// The `observability` example, run the way CI does: `--once` serves, scrapes itself, exits.
#[test]
fn the_observability_example_serves_metrics_and_health() {
    // cargo builds examples before running integration tests: target/<profile>/examples/.
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let example = dir
        .join("examples")
        .join(format!("observability{}", std::env::consts::EXE_SUFFIX));
    if !example.exists() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !ci,
            "CI=true but the example was not built at {}",
            example.display()
        );
        eprintln!("skipping: {} not built", example.display());
        return;
    }
    let out = std::process::Command::new(&example)
        .arg("--once")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("GET /metrics -> 200"));
    assert!(stdout.contains("# TYPE feature_flags_evaluation_total counter"));
    assert!(stdout.contains("GET /health -> 200"));
    assert!(stdout.contains(r#""status":"healthy""#));
}
