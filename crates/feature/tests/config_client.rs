//! A client built from configuration (environment variables) is a complete client: its events
//! reach the exporter the variables select, builder options combine with the configuration, and
//! `FEATURE_SEND_EVENTS` / `FEATURE_METRICS_ENABLED` switch events and metrics off.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature::analytics::{AnalyticsEvent, EvaluationEvent, EventKind, TrackData};
use feature::metrics::EvaluationStats;
use feature::{Client, Config, Context, EventSink};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A `Config` from these variables only (no process environment).
fn config(vars: &[(&str, &str)]) -> Config {
    let m: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(move |k| m.get(k).cloned()).unwrap()
}

/// Tracks one custom event through a client built from `cfg`, then closes it (which flushes
/// the exporter).
async fn track_one(cfg: Config, event: &str) {
    let client = Client::new(cfg).await.unwrap();
    client.track(&Context::new("user-42"), event, json!({"amount": 12}));
    client.close().await;
}

fn custom_events(json_lines: &str) -> Vec<AnalyticsEvent> {
    json_lines
        .lines()
        // The test harness may print its own text before an event on the same line.
        .filter_map(|l| l.find('{').map(|i| &l[i..]))
        .map(|l| serde_json::from_str::<AnalyticsEvent>(l).unwrap())
        .filter(|e| e.kind == EventKind::Custom)
        .collect()
}

#[tokio::test]
async fn a_client_built_from_env_delivers_events_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let cfg = config(&[
        ("FEATURE_EVENTS_EXPORTER", "file"),
        ("FEATURE_EVENTS_FILE", path.to_str().unwrap()),
    ]);
    track_one(cfg, "checkout-from-file-config").await;
    let events = custom_events(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0].event.as_deref(),
        Some("checkout-from-file-config")
    );
    assert_eq!(events[0].user_key, "user-42");
}

#[test]
fn a_client_built_from_env_delivers_events_to_stdout() {
    // Runs itself as a child process whose standard output is read.
    const CHILD: &str = "FEATURE_TEST_CONFIG_STDOUT_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let cfg = config(&[("FEATURE_EVENTS_EXPORTER", "stdout")]);
        rt.block_on(track_one(cfg, "checkout-from-stdout-config"));
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "a_client_built_from_env_delivers_events_to_stdout",
            "--exact",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    let events = custom_events(&stdout);
    assert_eq!(events.len(), 1, "{stdout}");
    assert_eq!(
        events[0].event.as_deref(),
        Some("checkout-from-stdout-config")
    );
}

/// A loopback HTTP server answering 200 to every request; the bodies received come out of
/// the channel.
#[cfg(feature = "webhook")]
async fn webhook_server() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let l = line.trim_end().to_ascii_lowercase();
                        if l.is_empty() {
                            break;
                        }
                        if let Some(v) = l.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    stream.read_exact(&mut body).await.unwrap();
                    let _ = tx.send(String::from_utf8(body).unwrap());
                    stream
                        .get_mut()
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .unwrap();
                }
            });
        }
    });
    (url, rx)
}

#[cfg(feature = "webhook")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_built_from_env_delivers_events_to_a_webhook() {
    let (url, mut bodies) = webhook_server().await;
    let cfg = config(&[
        ("FEATURE_EVENTS_EXPORTER", "webhook"),
        ("FEATURE_EVENTS_WEBHOOK_URL", &url),
    ]);
    track_one(cfg, "checkout-from-webhook-config").await;
    let mut received = String::new();
    while let Ok(body) = bodies.try_recv() {
        received.push_str(&body);
        received.push('\n');
    }
    // The body is a JSON array of events, or JSON lines: accept either.
    let events: Vec<AnalyticsEvent> =
        match serde_json::from_str::<Vec<AnalyticsEvent>>(received.trim()) {
            Ok(v) => v
                .into_iter()
                .filter(|e| e.kind == EventKind::Custom)
                .collect(),
            Err(_) => custom_events(&received),
        };
    assert_eq!(events.len(), 1, "{received}");
    assert_eq!(
        events[0].event.as_deref(),
        Some("checkout-from-webhook-config")
    );
}

/// Counts the custom events it is given.
#[derive(Clone, Default)]
struct Counting(Arc<AtomicUsize>);

impl EventSink for Counting {
    fn evaluation(&self, _: &EvaluationEvent<'_>) {}
    fn track(&self, _: &Context, _: &str, _: &TrackData) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn builder_options_combine_with_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let flags = dir.path().join("features.yaml");
    std::fs::write(&flags, "flags:\n  from-file:\n    default: true\n").unwrap();
    let cfg = config(&[
        ("FEATURE_PROVIDER", "file"),
        ("FEATURE_FILE_PATH", flags.to_str().unwrap()),
        ("FEATURE_FILE_WATCH", "false"),
    ]);
    let sink = Counting::default();
    let stats = EvaluationStats::new();
    let client = Client::builder()
        .config(cfg)
        .override_flag("pinned", "blue")
        .events(sink.clone())
        .metrics(stats.clone())
        .build()
        .await
        .unwrap();
    let u = Context::new("u1");
    assert_eq!(client.provider_name(), "file");
    assert!(
        client.bool(&u, "from-file", false),
        "the configured provider"
    );
    assert_eq!(
        client.string(&u, "pinned", "red"),
        "blue",
        "the builder's override"
    );
    client.track(&u, "clicked", ());
    assert_eq!(sink.0.load(Ordering::SeqCst), 1, "the builder's event sink");
    assert_eq!(stats.report().total_evaluations, 2, "the builder's metrics");
    client.close().await;
}

#[tokio::test]
async fn send_events_false_means_no_events_and_metrics_disabled_means_no_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let cfg = config(&[
        ("FEATURE_SEND_EVENTS", "false"),
        ("FEATURE_METRICS_ENABLED", "false"),
        ("FEATURE_EVENTS_EXPORTER", "file"),
        ("FEATURE_EVENTS_FILE", path.to_str().unwrap()),
    ]);
    let sink = Counting::default();
    let stats = EvaluationStats::new();
    let client = Client::builder()
        .config(cfg)
        .events(sink.clone())
        .metrics(stats.clone())
        .build()
        .await
        .unwrap();
    let u = Context::new("u1");
    client.track(&u, "clicked", ());
    assert!(!client.bool(&u, "anything", false));
    client.close().await;
    assert_eq!(
        sink.0.load(Ordering::SeqCst),
        0,
        "no events with FEATURE_SEND_EVENTS=false"
    );
    assert!(!path.exists(), "no exporter started");
    assert_eq!(
        stats.report().total_evaluations,
        0,
        "no metrics with FEATURE_METRICS_ENABLED=false"
    );
}

#[cfg(not(feature = "launchdarkly"))]
#[tokio::test]
async fn an_unavailable_exporter_is_a_typed_error() {
    let e =
        Config::from_lookup(|k| (k == "FEATURE_EVENTS_EXPORTER").then(|| "launchdarkly".into()));
    assert_eq!(
        e,
        Err(feature::ConfigError::ExporterUnavailable("launchdarkly"))
    );
    assert!(e.unwrap_err().to_string().contains("crate feature"));
}

#[cfg(feature = "launchdarkly")]
#[tokio::test]
async fn the_launchdarkly_exporter_needs_the_launchdarkly_provider() {
    let e = Client::new(config(&[("FEATURE_EVENTS_EXPORTER", "launchdarkly")]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("FEATURE_PROVIDER"), "{e}");
}

#[cfg(feature = "webhook")]
#[tokio::test]
async fn a_plain_http_webhook_off_loopback_is_refused() {
    let vars = [
        ("FEATURE_EVENTS_EXPORTER", "webhook"),
        ("FEATURE_EVENTS_WEBHOOK_URL", "http://events.example.com/in"),
    ];
    let e = Client::new(config(&vars)).await.unwrap_err();
    assert!(
        matches!(
            e,
            feature::ClientError::Exporter {
                exporter: "webhook",
                ..
            }
        ),
        "{e}"
    );
    // The error says how to allow it (no client is built here: no traffic leaves loopback).
    assert!(
        e.to_string()
            .contains("FEATURE_WEBHOOK_ALLOW_INSECURE_HTTP"),
        "{e}"
    );
    let allowed = config(&[
        vars[0],
        vars[1],
        ("FEATURE_WEBHOOK_ALLOW_INSECURE_HTTP", "true"),
    ]);
    assert!(allowed.events.webhook_allow_insecure_http);
}

#[cfg(feature = "kafka")]
#[tokio::test]
async fn kafka_security_settings_are_checked_when_the_client_is_built() {
    let e = Client::new(config(&[
        ("FEATURE_EVENTS_EXPORTER", "kafka"),
        ("FEATURE_EVENTS_KAFKA_BROKERS", "127.0.0.1:9"),
        ("FEATURE_KAFKA_SASL_MECHANISM", "PLAIN"),
        ("FEATURE_KAFKA_SASL_PASSWORD", "hunter2"),
    ]))
    .await
    .unwrap_err();
    assert!(
        matches!(
            e,
            feature::ClientError::Exporter {
                exporter: "kafka",
                ..
            }
        ),
        "{e}"
    );
    let shown = format!("{e} {e:?}");
    assert!(shown.contains("FEATURE_KAFKA_SASL_USERNAME"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}
