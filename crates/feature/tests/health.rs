//! The health JSON tells what failed, not where: no file path or store URL unless asked for
//! with `Health::with_details`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use async_trait::async_trait;
use feature::health::{Health, Status};
use feature::metrics::EvaluationStats;
use feature::providers::Sink;
use feature::{Client, FileProvider, Provider, ProviderError, ProviderState, ProviderStatus};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const FLAGS: &str = "flags:\n  beta:\n    type: bool\n    default: true\n";

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `provider.last_error` of the report, by default and with details.
fn errors(health: &Health) -> (String, String) {
    let brief = health.clone().check_json();
    let full = health.clone().with_details(true).check_json();
    let field = |json: &str| {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        v["provider"]["last_error"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(!field(&brief).is_empty(), "an error is reported: {brief}");
    (brief, field(&full))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_json_names_no_flag_file_unless_asked() {
    let dir = tempfile::Builder::new()
        .prefix("private-location-")
        .tempdir()
        .unwrap();
    let path = dir.path().join("acme-flags.yaml");
    std::fs::write(&path, FLAGS).unwrap();
    let stats = EvaluationStats::new();
    let client = Client::builder()
        .provider(FileProvider::new(&path))
        .metrics(stats.clone())
        .build()
        .await
        .unwrap();
    let health = Health::new(client.clone(), stats);
    assert_eq!(health.check().status, Status::Healthy);
    let dir_text = dir.path().display().to_string();

    // A document that cannot be parsed: the position and the parser's message, not the file.
    std::fs::write(&path, "flags:\n  beta: [\n").unwrap();
    wait_until("degraded", || health.check().status == Status::Degraded).await;
    let (brief, full) = errors(&health);
    assert!(
        !brief.contains("acme-flags") && !brief.contains(&dir_text),
        "{brief}"
    );
    assert!(brief.contains("line"), "{brief}");
    assert!(
        full.contains("acme-flags.yaml"),
        "details name the file: {full}"
    );

    // A file that cannot be read: the kind of I/O error, not the path.
    std::fs::remove_file(&path).unwrap();
    wait_until("an I/O error", || {
        health
            .check()
            .provider
            .last_error
            .is_some_and(|e| e.contains("cannot read"))
    })
    .await;
    let (brief, full) = errors(&health);
    assert!(
        !brief.contains("acme-flags") && !brief.contains(&dir_text),
        "{brief}"
    );
    assert!(full.contains(&dir_text), "details name the file: {full}");
    client.close().await;
}

/// A store provider whose backend library put the URL (with its password) in its error.
struct LeakyBackend;

#[async_trait]
impl Provider for LeakyBackend {
    fn name(&self) -> &'static str {
        "leaky"
    }
    async fn start(&self, _sink: Arc<dyn Sink>) -> Result<(), ProviderError> {
        Ok(())
    }
    fn status(&self) -> ProviderStatus {
        let error = ProviderError::Backend {
            provider: "postgres",
            operation: "listen",
            source: "cannot connect to postgres://app:hunter2@db.internal.example:5432/flags \
                     (certificate in /etc/app/tls/ca.pem expired)"
                .into(),
        };
        ProviderStatus {
            state: ProviderState::Degraded,
            last_error: Some((Arc::new(error), SystemTime::now())),
            ..ProviderStatus::default()
        }
    }
}

#[tokio::test]
async fn the_health_json_names_no_store_url_unless_asked() {
    let stats = EvaluationStats::new();
    let client = Client::builder()
        .provider(LeakyBackend)
        .metrics(stats.clone())
        .build()
        .await
        .unwrap();
    let health = Health::new(client.clone(), stats);
    let (brief, full) = errors(&health);
    for secret in ["hunter2", "db.internal.example", "postgres://", "/etc/app"] {
        assert!(!brief.contains(secret), "{secret} in {brief}");
    }
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&brief).unwrap()["provider"]["last_error"],
        "postgres: listen failed"
    );
    assert!(full.contains("db.internal.example:5432"), "{full}");
    client.close().await;
}
