//! Behaviour the provider shares with Unleash's own SDKs that needs no Unleash server: a
//! server that refuses the client after it started (a revoked token) is played by a loopback
//! HTTP endpoint, since the real server keeps accepting a deleted token from its cache.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature_core::metrics::Metrics;
use feature_core::provider::{Provider, ProviderError, ProviderState, Sink};
use feature_core::{Context, Snapshot, ValueKind};
use feature_unleash::{UnleashError, UnleashProvider};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

struct QuietSink;

impl Metrics for QuietSink {}

impl Sink for QuietSink {
    fn publish(&self, _snapshot: Snapshot) {}
    fn metrics(&self) -> &dyn Metrics {
        self
    }
}

/// A loopback endpoint answering `GET /api/client/features` with one toggle, or with 401 once
/// `refuse` is set; counts the fetches.
struct Endpoint {
    url: String,
    fetches: Arc<AtomicUsize>,
    refuse: Arc<AtomicBool>,
    /// The head of the last fetch.
    last: Arc<Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Endpoint {
    async fn start() -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let fetches = Arc::new(AtomicUsize::new(0));
        let refuse = Arc::new(AtomicBool::new(false));
        let last = Arc::new(Mutex::new(String::new()));
        let (f, r, l) = (fetches.clone(), refuse.clone(), last.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (f, r, l) = (f.clone(), r.clone(), l.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&request);
                    let response = if !head.starts_with("GET /api/client/features") {
                        "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            .to_owned()
                    } else {
                        f.fetch_add(1, Ordering::SeqCst);
                        *l.lock().unwrap() = head.to_string();
                        if r.load(Ordering::SeqCst) {
                            "HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
                        } else {
                            let body = json!({"version": 2, "features": [
                                {"name": "kept", "enabled": true, "strategies": [{"name": "default"}]}
                            ]})
                            .to_string();
                            format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
                        }
                    };
                    let _ = conn.write_all(response.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Endpoint {
            url: format!("http://{addr}/api"),
            fetches,
            refuse,
            last,
            task,
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_after_start_stops_fetching_and_says_why() {
    let endpoint = Endpoint::start().await;
    let refresh = Duration::from_millis(50);
    let provider = UnleashProvider::builder(&endpoint.url, "default:development.some-token")
        .refresh_interval(refresh)
        .backoff_max(refresh * 2)
        .register(false)
        .usage_interval(None)
        .build()
        .expect("valid settings");
    provider
        .start(Arc::new(QuietSink) as Arc<dyn Sink>)
        .await
        .expect("starts");
    assert_eq!(provider.status().state, ProviderState::Ready);
    // The token is revoked while the provider runs.
    endpoint.refuse.store(true, Ordering::SeqCst);
    let mut refused_at = None;
    for _ in 0..100 {
        tokio::time::sleep(refresh).await;
        if provider.status().last_error.is_some() {
            refused_at = Some(endpoint.fetches.load(Ordering::SeqCst));
            break;
        }
    }
    let refused_at = refused_at.expect("the refusal is reported");
    // No more fetches: retrying does not fix a refused token (Unleash's SDKs stop too).
    tokio::time::sleep(refresh * 10).await;
    assert_eq!(
        endpoint.fetches.load(Ordering::SeqCst),
        refused_at,
        "fetching stopped after the refusal"
    );
    let status = provider.status();
    assert!(!status.connected);
    assert_eq!(status.state, ProviderState::Degraded, "{status}");
    let (error, _) = status.last_error.expect("the status says why");
    let ProviderError::Backend { source, .. } = &*error else {
        panic!("{error}");
    };
    assert!(
        matches!(
            source.downcast_ref::<UnleashError>(),
            Some(UnleashError::Refused { status: 401, .. })
        ),
        "{source}"
    );
    assert!(error.to_string().contains("401"), "{error}");
    // The last good toggles keep serving.
    let eval = provider.engine().expect("engine").evaluate(
        "kept",
        &Context::new("u"),
        ValueKind::Bool,
        &json!(false),
    );
    assert_eq!(eval.value, json!(true));
    provider.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_headers_and_project_filters_are_sent() {
    let endpoint = Endpoint::start().await;
    let provider = UnleashProvider::builder(&endpoint.url, "default:development.some-token")
        .header("X-Proxy-Key", "k-123")
        .header("Authorization", "not this one")
        .project("checkout")
        .project("search team")
        .register(false)
        .usage_interval(None)
        .build()
        .expect("valid settings");
    provider
        .start(Arc::new(QuietSink) as Arc<dyn Sink>)
        .await
        .expect("starts");
    let head = endpoint.last.lock().unwrap().to_lowercase();
    assert!(
        head.starts_with("get /api/client/features?project=checkout&project=search+team "),
        "{head}"
    );
    assert!(head.contains("\r\nx-proxy-key: k-123\r\n"), "{head}");
    assert!(
        head.contains("\r\nauthorization: default:development.some-token\r\n"),
        "the protocol's headers win: {head}"
    );
    provider.close().await;
    let bad = UnleashProvider::builder(&endpoint.url, "t")
        .header("bad name", "v")
        .build();
    assert!(
        matches!(bad, Err(UnleashError::InvalidCustomHeader { ref name }) if name == "bad name"),
        "{bad:?}"
    );
}

/// A loopback address nothing listens on.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    format!("http://{}/api", l.local_addr().expect("address"))
}

fn temp_file(tag: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!(
        "feature-unleash-{tag}-{}-{nanos}.json",
        std::process::id()
    ))
}

fn kept(provider: &UnleashProvider) -> feature_core::Evaluation {
    provider.engine().expect("engine").evaluate(
        "kept",
        &Context::new("u"),
        ValueKind::Bool,
        &json!(false),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backup_file_serves_when_the_server_is_out_of_reach_at_start() {
    let endpoint = Endpoint::start().await;
    let backup = temp_file("backup");
    let online = UnleashProvider::builder(&endpoint.url, "default:development.some-token")
        .backup_file(&backup)
        .register(false)
        .usage_interval(None)
        .build()
        .expect("valid settings");
    online
        .start(Arc::new(QuietSink) as Arc<dyn Sink>)
        .await
        .expect("starts");
    online.close().await;
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&backup).expect("the backup is written")).unwrap();
    assert_eq!(written["features"][0]["name"], json!("kept"), "{written}");

    // Next start: the server is out of reach; the backup serves, not the callers' defaults.
    let offline = UnleashProvider::builder(closed_port(), "default:development.some-token")
        .backup_file(&backup)
        .bootstrap_json(r#"{"version": 2, "features": []}"#)
        .refresh_interval(Duration::from_millis(50))
        .start_timeout(Duration::from_millis(300))
        .register(false)
        .usage_interval(None)
        .build()
        .expect("valid settings");
    offline
        .start(Arc::new(QuietSink) as Arc<dyn Sink>)
        .await
        .expect("starts");
    let eval = kept(&offline);
    assert_eq!(eval.value, json!(true), "{eval:?}");
    assert_eq!(eval.error_kind(), None, "{eval:?}");
    assert_eq!(offline.status().state, ProviderState::Degraded);
    offline.close().await;
    let _ = std::fs::remove_file(&backup);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_toggles_serve_until_the_first_fetch() {
    let bootstrap = json!({"version": 2, "features": [
        {"name": "kept", "enabled": true, "strategies": [{"name": "default"}]}
    ]})
    .to_string();
    let file = temp_file("bootstrap");
    std::fs::write(&file, &bootstrap).unwrap();
    for provider in [
        UnleashProvider::builder(closed_port(), "t").bootstrap_json(bootstrap.clone()),
        UnleashProvider::builder(closed_port(), "t")
            .backup_file(temp_file("never-written"))
            .bootstrap_file(&file),
    ] {
        let provider = provider
            .refresh_interval(Duration::from_millis(50))
            .start_timeout(Duration::from_millis(200))
            .register(false)
            .usage_interval(None)
            .build()
            .expect("valid settings");
        provider
            .start(Arc::new(QuietSink) as Arc<dyn Sink>)
            .await
            .expect("starts");
        assert_eq!(kept(&provider).value, json!(true));
        provider.close().await;
    }
    let _ = std::fs::remove_file(&file);
}
