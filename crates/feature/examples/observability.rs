//! A small service exposing `/metrics` (Prometheus) and `/health` (the health report)
//! while it evaluates flags, with analytics events sampled to standard output.
//!
//! ```text
//! cargo run -p feature --example observability --features prometheus,http-endpoints
//! curl -s 127.0.0.1:9898/metrics; curl -s 127.0.0.1:9898/health
//! ```
//!
//! `--once` binds a free port on 127.0.0.1, evaluates a burst of flags, scrapes its own
//! endpoints, prints what it got and exits (non-zero if a metric or field is missing): CI runs
//! it that way. `--addr HOST:PORT` chooses where to listen otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature::analytics::exporters::StdoutExporter;
use feature::analytics::{AnalyticsPipeline, PipelineConfig};
use feature::health::{Health, HealthService};
use feature::metrics::prometheus::{MetricsService, PrometheusMetrics};
use feature::metrics::{EvaluationStats, MetricsConfig, Tee};
use feature::{Client, Context, FileProvider};
use std::error::Error;
use std::path::Path;
use std::time::Duration;

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// One round of the traffic a service would make.
fn evaluate_some(client: &Client, round: u64) {
    for i in 0..100u64 {
        let plan = ["free", "pro", "enterprise"][(i % 3) as usize];
        let user = Context::new(format!("user-{}", round * 100 + i)).with_attribute("plan", plan);
        client.bool(&user, "new-dashboard", false);
        client.string(&user, "theme", "light");
        client.int(&user, "max-upload-mb", 10);
        if i % 50 == 0 {
            client.bool(&user, "no-such-flag", false); // an error: FLAG_NOT_FOUND
            client.track(&user, "upload", serde_json::json!({"mb": i}));
        }
    }
}

async fn get(url: &str) -> Result<(u16, String)> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let resp = client.get(url.parse()?).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8(body.to_vec())?))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let once = args.iter().any(|a| a == "--once");
    let addr = match args.iter().position(|a| a == "--addr") {
        Some(i) => args.get(i + 1).cloned().ok_or("--addr needs HOST:PORT")?,
        None if once => "127.0.0.1:0".to_owned(),
        None => "127.0.0.1:9898".to_owned(),
    };

    // Metrics: Prometheus in the application's registry, plus the health statistics.
    let registry = prometheus::Registry::new();
    let config = MetricsConfig::from_env()?;
    let metrics = PrometheusMetrics::new(&config)?;
    metrics.register(&registry)?;
    let stats = EvaluationStats::new();

    // Analytics: 1 evaluation in 1000 and every custom event, as JSON lines on stdout.
    let events = AnalyticsPipeline::start(
        StdoutExporter::new(),
        PipelineConfig {
            evaluation_sample_rate: 0.001,
            flush_interval: Duration::from_secs(1),
            ..PipelineConfig::default()
        },
    )?;

    let flags = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/flags/basic.yaml");
    let client = Client::builder()
        .provider(FileProvider::new(flags))
        .metrics(Tee(metrics, stats.clone()))
        .events(events)
        .build()
        .await?;
    let health = Health::new(client.clone(), stats);

    let app = axum::Router::new()
        .route_service("/metrics", MetricsService::new(registry))
        .route_service("/health", HealthService::new(health));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let local = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    eprintln!("serving http://{local}/metrics and http://{local}/health");

    if once {
        for round in 0..20 {
            evaluate_some(&client, round);
        }
        let (code, metrics_text) = get(&format!("http://{local}/metrics")).await?;
        println!("GET /metrics -> {code}\n{metrics_text}");
        let (code, health_text) = get(&format!("http://{local}/health")).await?;
        println!("GET /health -> {code}\n{health_text}");
        client.close().await;
        server.abort();
        for name in [
            "feature_flags_evaluation_duration_seconds",
            "feature_flags_evaluation_total",
            "feature_flags_evaluation_errors_total",
            "feature_flags_cache_hits_total",
            "feature_flags_cache_misses_total",
            "feature_flags_provider_latency_seconds",
            "feature_flags_total",
            "feature_flags_active_total",
        ] {
            if !metrics_text.contains(&format!("# TYPE {name} ")) {
                return Err(format!("/metrics lacks {name}").into());
            }
        }
        let report: serde_json::Value = serde_json::from_str(&health_text)?;
        if report["status"] != "healthy" || report["flags_loaded"] != 3 {
            return Err(format!("unexpected health report: {report}").into());
        }
        return Ok(());
    }

    let traffic = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut round = 0;
            loop {
                evaluate_some(&client, round);
                round += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::signal::ctrl_c().await?;
    traffic.abort();
    client.close().await;
    server.abort();
    Ok(())
}
