//! Size and setting limits of the Unleash provider, against a minimal client API served on
//! loopback by the test itself (no Unleash server needed): `GET /api/client/features` answers
//! whatever body the test sets, with a `Content-Length` or, in the other mode, delimited by
//! closing the connection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature_core::provider::{Provider, ProviderState};
use feature_store::testing::RecordingSink;
use feature_unleash::{UnleashError, UnleashProvider};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(10);

struct Api {
    body: Mutex<String>,
    /// No `Content-Length`: the body ends when the connection closes.
    close_delimited: AtomicBool,
}

async fn serve(api: Arc<Api>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let api = api.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = api.body.lock().unwrap().clone();
                let length = if api.close_delimited.load(Ordering::SeqCst) {
                    String::new()
                } else {
                    format!("Content-Length: {}\r\n", body.len())
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{length}Connection: close\r\n\r\n"
                );
                let _ = conn.write_all(response.as_bytes()).await;
                for piece in body.as_bytes().chunks(8192) {
                    if conn.write_all(piece).await.is_err() {
                        return;
                    }
                }
                let _ = conn.shutdown().await;
            });
        }
    });
    format!("http://{addr}/api")
}

fn toggles(names: &[&str], padding: usize) -> String {
    let features: Vec<Value> = names
        .iter()
        .map(|n| {
            json!({"name": n, "enabled": true, "strategies": [{"name": "default"}],
                        "description": "x".repeat(padding)})
        })
        .collect();
    json!({"version": 2, "features": features}).to_string()
}

async fn wait_state(p: &UnleashProvider, state: ProviderState) {
    let deadline = Instant::now() + WAIT;
    while p.status().state != state {
        assert!(
            Instant::now() < deadline,
            "state {state:?} never came: {}",
            p.status()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A toggle response over `max_body_size` is refused, whether its size is announced or only
/// seen as it arrives: the last good toggles keep answering, the status says why, and a
/// response back under the limit recovers.
#[tokio::test]
async fn an_oversized_body_is_refused_and_the_last_toggles_kept() {
    for close_delimited in [false, true] {
        let api = Arc::new(Api {
            body: Mutex::new(toggles(&["first"], 0)),
            close_delimited: AtomicBool::new(close_delimited),
        });
        let url = serve(api.clone()).await;
        let p = UnleashProvider::builder(url, "token")
            .register(false)
            .usage_interval(None)
            .refresh_interval(Duration::from_millis(20))
            .backoff_max(Duration::from_millis(50))
            .max_body_size(64 * 1024)
            .build()
            .unwrap();
        let sink = RecordingSink::new();
        p.start(sink.clone()).await.unwrap();
        assert_eq!(p.status().state, ProviderState::Ready);
        let engine = p.engine().unwrap();
        assert_eq!(engine.keys(), ["first"]);

        *api.body.lock().unwrap() = toggles(&["big"], 100_000);
        wait_state(&p, ProviderState::Degraded).await;
        let st = p.status();
        assert!(!st.connected);
        let (err, _) = st.last_error.clone().expect("the status says why");
        let source = std::error::Error::source(&*err)
            .and_then(|s| s.downcast_ref::<UnleashError>())
            .expect("the Unleash error is the source");
        assert!(
            matches!(source, UnleashError::BodyTooLarge { limit: 65536, .. }),
            "close-delimited {close_delimited}: {source}"
        );
        assert_eq!(engine.keys(), ["first"], "the last good toggles are kept");

        *api.body.lock().unwrap() = toggles(&["second"], 0);
        wait_state(&p, ProviderState::Ready).await;
        assert_eq!(engine.keys(), ["second"]);
        p.close().await;
    }
}

/// The test server sends no `ETag`, so every poll is a `200` with the whole body: a body
/// that repeats the toggles loaded publishes nothing and reports no change, one that changes
/// them publishes once.
#[tokio::test]
async fn a_response_that_repeats_the_toggles_publishes_nothing() {
    let api = Arc::new(Api {
        body: Mutex::new(toggles(&["first"], 0)),
        close_delimited: AtomicBool::new(false),
    });
    let url = serve(api.clone()).await;
    let p = UnleashProvider::builder(url, "token")
        .register(false)
        .usage_interval(None)
        .refresh_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    let sink = RecordingSink::new();
    p.start(sink.clone()).await.unwrap();
    assert_eq!(sink.publications(), 1, "the first fetch publishes");
    let fetches = sink.metrics.get("latency:fetch");
    let deadline = Instant::now() + WAIT;
    while sink.metrics.get("latency:fetch") < fetches + 5 {
        assert!(Instant::now() < deadline, "polling stopped");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(sink.publications(), 1, "repeated toggles publish nothing");
    assert_eq!(p.status().state, ProviderState::Ready);

    *api.body.lock().unwrap() = toggles(&["first", "second"], 0);
    let engine = p.engine().unwrap();
    let deadline = Instant::now() + WAIT;
    while engine.keys().len() < 2 {
        assert!(Instant::now() < deadline, "the change never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let fetches = sink.metrics.get("latency:fetch");
    while sink.metrics.get("latency:fetch") < fetches + 3 {
        assert!(Instant::now() < deadline, "polling stopped");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(sink.publications(), 2, "a change publishes once");
    p.close().await;
}

/// The backup file is written once the server's toggles are loaded even when they change
/// nothing: after bootstrap toggles the server repeats, and after a write that failed (here:
/// its directory did not exist yet), at the next fetch.
#[tokio::test]
async fn the_backup_file_is_written_when_the_toggles_repeat_the_bootstrap() {
    let body = toggles(&["first"], 0);
    let api = Arc::new(Api {
        body: Mutex::new(body.clone()),
        close_delimited: AtomicBool::new(false),
    });
    let url = serve(api.clone()).await;
    let dir = std::env::temp_dir().join(format!(
        "feature-unleash-backup-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    let backup = dir.join("toggles.json");
    let p = UnleashProvider::builder(url, "token")
        .register(false)
        .usage_interval(None)
        .refresh_interval(Duration::from_millis(20))
        .bootstrap_json(body)
        .backup_file(&backup)
        .build()
        .unwrap();
    let sink = RecordingSink::new();
    p.start(sink.clone()).await.unwrap();
    let fetches = sink.metrics.get("latency:fetch");
    let deadline = Instant::now() + WAIT;
    while sink.metrics.get("latency:fetch") < fetches + 3 {
        assert!(Instant::now() < deadline, "polling stopped");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!backup.exists(), "its directory does not exist yet");
    assert_eq!(sink.publications(), 1, "the bootstrap toggles, repeated");

    std::fs::create_dir_all(&dir).unwrap();
    while !backup.exists() {
        assert!(Instant::now() < deadline, "the backup was never written");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let written: Value = serde_json::from_slice(&std::fs::read(&backup).unwrap()).unwrap();
    assert_eq!(written["features"][0]["name"], "first", "{written}");
    assert_eq!(sink.publications(), 1);
    p.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_zero_timeout_is_refused() {
    let err = UnleashProvider::builder("http://127.0.0.1:1/api", "token")
        .timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(matches!(err, UnleashError::ZeroDuration { .. }), "{err}");
}
