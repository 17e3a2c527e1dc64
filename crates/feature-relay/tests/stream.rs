//! The relay provider against a loopback server speaking the SDK stream protocol, scripted by
//! each test to produce what a real server produces only by accident: late older changes,
//! dropped connections, silence, refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use feature_core::provider::{Provider, ProviderState, Sink};
use feature_relay::RelayProvider;
use feature_store::testing::RecordingSink;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(5);
const TOKEN: &str =
    "feat_0123456789abcdef_0000000000000000000000000000000000000000000000000000000000000000";

/// What the stand-in does with each connection.
#[derive(Default)]
struct Script {
    /// Connections so far.
    connections: AtomicUsize,
    /// The `put` each new connection starts with.
    put: Mutex<Value>,
    /// Where the test's later events for the current connection go.
    feed: Mutex<Option<mpsc::UnboundedSender<String>>>,
    /// Answer this status instead of a stream.
    refuse: Mutex<Option<StatusCode>>,
}

impl Script {
    fn send(&self, event: &str, data: Value) {
        let text = format!("event: {event}\ndata: {data}\n\n");
        self.feed
            .lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .send(text)
            .unwrap();
    }

    /// Ends the current connection.
    fn hang_up(&self) {
        self.feed.lock().unwrap().take();
    }
}

async fn stream(State(script): State<Arc<Script>>, headers: HeaderMap) -> Response {
    script.connections.fetch_add(1, Ordering::SeqCst);
    if let Some(status) = *script.refuse.lock().unwrap() {
        return Response::builder()
            .status(status)
            .body(Body::empty())
            .unwrap();
    }
    assert_eq!(
        headers.get("authorization").and_then(|v| v.to_str().ok()),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let first = format!("event: put\ndata: {}\n\n", script.put.lock().unwrap());
    tx.send(first).unwrap();
    *script.feed.lock().unwrap() = Some(tx);
    let (btx, brx) = mpsc::unbounded_channel::<Result<String, Infallible>>();
    tokio::spawn(async move {
        while let Some(chunk) = rx.recv().await {
            if btx.send(Ok(chunk)).is_err() {
                return;
            }
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(chunks(brx)))
        .unwrap()
}

/// Adapts an unbounded receiver into a stream of body chunks.
fn chunks(
    mut rx: mpsc::UnboundedReceiver<Result<String, Infallible>>,
) -> impl futures_util::Stream<Item = Result<String, Infallible>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn serve(script: Arc<Script>) -> String {
    let app = Router::new()
        .route("/sdk/v1/stream", get(stream))
        .with_state(script);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn doc(revision: u64, flags: Value) -> Value {
    json!({"revision": revision, "flags": flags, "segments": {}})
}

async fn start(
    url: &str,
    extra: impl FnOnce(feature_relay::RelayBuilder) -> feature_relay::RelayBuilder,
) -> (RelayProvider, Arc<RecordingSink>) {
    let p = extra(
        RelayProvider::builder(url)
            .token(TOKEN)
            .backoff(Duration::from_millis(20), Duration::from_millis(100)),
    )
    .build()
    .unwrap();
    let s = RecordingSink::new();
    p.start(s.clone() as Arc<dyn Sink>).await.unwrap();
    (p, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_apply_in_version_order_and_late_older_ones_never_win() {
    let script = Arc::new(Script::default());
    *script.put.lock().unwrap() = doc(
        1,
        json!({"dark-mode": {"type": "bool", "default": false, "version": 3}}),
    );
    let url = serve(script.clone()).await;
    let (p, s) = start(&url, |b| b).await;
    assert_eq!(p.status().state, ProviderState::Ready);
    assert_eq!(s.value("dark-mode"), Some(json!(false)));

    script.send("patch", json!({"revision": 2, "kind": "flag", "key": "dark-mode", "version": 5, "definition": {"type": "bool", "default": true}}));
    assert!(s.wait_value(WAIT, "dark-mode", Some(json!(true))).await);
    // Version 4 arrives late: ignored.
    script.send("patch", json!({"revision": 3, "kind": "flag", "key": "dark-mode", "version": 4, "definition": {"type": "bool", "default": false}}));
    // A new flag, to know the late one was processed.
    script.send("patch", json!({"revision": 4, "kind": "flag", "key": "theme", "version": 1, "definition": {"default": "dark"}}));
    assert!(s.wait_value(WAIT, "theme", Some(json!("dark"))).await);
    assert_eq!(
        s.value("dark-mode"),
        Some(json!(true)),
        "the older change did not win"
    );

    // A delete older than the flag is ignored; a newer one removes it; a patch older than
    // the deletion does not bring it back.
    script.send(
        "delete",
        json!({"revision": 5, "kind": "flag", "key": "theme", "version": 1}),
    );
    script.send(
        "delete",
        json!({"revision": 6, "kind": "flag", "key": "dark-mode", "version": 6}),
    );
    assert!(
        s.wait_for(WAIT, |snap| snap.flag("dark-mode").is_none())
            .await
    );
    assert_eq!(s.value("theme"), Some(json!("dark")));
    script.send("patch", json!({"revision": 7, "kind": "flag", "key": "dark-mode", "version": 5, "definition": {"type": "bool", "default": true}}));
    script.send("patch", json!({"revision": 8, "kind": "flag", "key": "marker", "version": 1, "definition": {"default": 1}}));
    assert!(s.wait_value(WAIT, "marker", Some(json!(1))).await);
    assert!(s.snapshot().unwrap().flag("dark-mode").is_none());
    assert_eq!(script.connections.load(Ordering::SeqCst), 1);
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_reconnects_and_resyncs_from_the_new_put() {
    let script = Arc::new(Script::default());
    *script.put.lock().unwrap() = doc(1, json!({"f": {"default": "a", "version": 1}}));
    let url = serve(script.clone()).await;
    let (p, s) = start(&url, |b| b).await;
    assert_eq!(s.value("f"), Some(json!("a")));
    // Changed while the relay was away: only the next put tells.
    *script.put.lock().unwrap() = doc(9, json!({"f": {"default": "b", "version": 2}}));
    script.hang_up();
    assert!(s.wait_value(WAIT, "f", Some(json!("b"))).await);
    assert!(script.connections.load(Ordering::SeqCst) >= 2);
    assert_eq!(p.status().state, ProviderState::Ready);
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_stream_is_dropped_and_a_malformed_event_forces_a_resync() {
    let script = Arc::new(Script::default());
    *script.put.lock().unwrap() = doc(1, json!({"f": {"default": 1, "version": 1}}));
    let url = serve(script.clone()).await;
    let (p, s) = start(&url, |b| b.read_timeout(Duration::from_millis(300))).await;
    assert_eq!(s.value("f"), Some(json!(1)));
    // No heartbeat: after the read timeout the relay reconnects by itself.
    let t = tokio::time::Instant::now();
    while script.connections.load(Ordering::SeqCst) < 2 {
        assert!(t.elapsed() < WAIT, "no reconnection after silence");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A heartbeat keeps it; a malformed patch drops it and the next put resyncs.
    let before = script.connections.load(Ordering::SeqCst);
    *script.put.lock().unwrap() = doc(2, json!({"f": {"default": 2, "version": 2}}));
    script.send("patch", json!({"revision": 3, "kind": "flag"}));
    assert!(s.wait_value(WAIT, "f", Some(json!(2))).await);
    assert!(script.connections.load(Ordering::SeqCst) > before);
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_stops_the_provider_and_bootstrap_flags_keep_serving() {
    let script = Arc::new(Script::default());
    *script.refuse.lock().unwrap() = Some(StatusCode::UNAUTHORIZED);
    let url = serve(script.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("flags.yaml");
    std::fs::write(&boot, "flags:\n  f: {default: boot}\n").unwrap();
    let (p, s) = start(&url, |b| b.bootstrap_file(&boot)).await;
    assert_eq!(s.value("f"), Some(json!("boot")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        script.connections.load(Ordering::SeqCst),
        1,
        "no retry after 401 (backoff is 20-100 ms)"
    );
    let status = p.status();
    assert_eq!(status.state, ProviderState::Degraded);
    let why = status
        .last_error
        .map(|(e, _)| e.to_string())
        .unwrap_or_default();
    assert!(why.contains("refused the token"), "{why}");
    p.close().await;
}

#[test]
fn settings_that_cannot_work_are_refused() {
    assert!(RelayProvider::builder("ftp://x").build().is_err());
    assert!(RelayProvider::builder("http://x")
        .read_timeout(Duration::ZERO)
        .build()
        .is_err());
    assert!(RelayProvider::builder("http://x")
        .max_event_size(0)
        .build()
        .is_err());
    let debug = format!(
        "{:?}",
        RelayProvider::builder("http://u:secret@x").token("feat_tok")
    );
    assert!(
        !debug.contains("secret") && !debug.contains("feat_tok"),
        "{debug}"
    );
}
