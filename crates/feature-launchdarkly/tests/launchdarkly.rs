//! The LaunchDarkly provider against a local stand-in for LaunchDarkly's SDK endpoints.
//!
//! LaunchDarkly's service cannot run on a test machine (it is a hosted service, and tests reach
//! no network beyond the loopback interface), so this file serves the two documented
//! server-side SDK endpoints itself, on `127.0.0.1` with a port picked by the system:
//!
//! - `GET /sdk/latest-all` (polling): the data set as JSON with an `ETag`, `304` when
//!   `If-None-Match` names the current one;
//! - `GET /all` (streaming): Server-Sent Events, a `put` with the data set on connect, then
//!   whatever events a test sends.
//!
//! Both check the `Authorization` header against the SDK key (401 otherwise) and can be made to
//! answer an error status. Everything else — HTTP, event parsing, versions, import, compile,
//! publication, reconnection, status — is the provider's real code. The last test serves
//! LaunchDarkly's own contract test data through this path and checks every expected result.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use feature_core::provider::{Provider, ProviderError, ProviderState};
use feature_core::{Context, ErrorKind, ReasonKind, Snapshot};
use feature_launchdarkly::{LaunchDarklyError, LaunchDarklyProvider, Mode};
use feature_store::testing::RecordingSink;
use feature_testdata::launchdarkly::{data_sets, run};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const KEY: &str = "sdk-test-key";
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- the stand-in server

#[derive(Default)]
struct ServerState {
    data: Mutex<Value>,
    /// Bumped on every change of `data`; the ETag is `"v{n}"`.
    revision: AtomicUsize,
    /// While set, every request is answered with this status.
    down: Mutex<Option<StatusCode>>,
    /// The next N requests are answered 503.
    fail_next: AtomicUsize,
    polls: AtomicUsize,
    not_modified: AtomicUsize,
    streams: AtomicUsize,
    open: Mutex<Vec<mpsc::UnboundedSender<String>>>,
    /// Polling bodies are sent in pieces without a `Content-Length`.
    chunked: std::sync::atomic::AtomicBool,
}

struct Server {
    addr: SocketAddr,
    state: Arc<ServerState>,
}

impl Server {
    async fn start(data: Value) -> Server {
        let state = Arc::new(ServerState::default());
        *state.data.lock().unwrap() = data;
        let app = Router::new()
            .route("/sdk/latest-all", get(poll))
            .route("/all", get(stream))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Server { addr, state }
    }

    fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn provider(&self, mode: Mode) -> LaunchDarklyProvider {
        self.provider_with_key(KEY, mode)
    }

    fn provider_with_key(&self, key: &str, mode: Mode) -> LaunchDarklyProvider {
        LaunchDarklyProvider::builder(key)
            .base_uri(self.uri())
            .stream_uri(self.uri())
            .mode(mode)
            .backoff(Duration::from_millis(20), Duration::from_millis(200))
            .request_timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    }

    fn set_data(&self, data: Value) {
        *self.state.data.lock().unwrap() = data;
        self.state.revision.fetch_add(1, Ordering::SeqCst);
    }

    fn set_down(&self, status: Option<StatusCode>) {
        *self.state.down.lock().unwrap() = status;
    }

    /// Sends one raw event-stream text to every open stream.
    fn send(&self, raw: &str) {
        for tx in self.state.open.lock().unwrap().iter() {
            let _ = tx.send(raw.to_owned());
        }
    }

    fn send_event(&self, event: &str, data: Value) {
        self.send(&format!("event: {event}\ndata: {data}\n\n"));
    }

    /// Closes every open stream.
    fn drop_streams(&self) {
        self.state.open.lock().unwrap().clear();
    }

    fn polls(&self) -> usize {
        self.state.polls.load(Ordering::SeqCst)
    }

    fn streams(&self) -> usize {
        self.state.streams.load(Ordering::SeqCst)
    }
}

/// The status every request gets before its endpoint answers, if not 200.
fn gate(state: &ServerState, headers: &HeaderMap) -> Option<Response> {
    if let Some(status) = *state.down.lock().unwrap() {
        return Some(status.into_response());
    }
    if state
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return Some(StatusCode::SERVICE_UNAVAILABLE.into_response());
    }
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(KEY) {
        return Some(StatusCode::UNAUTHORIZED.into_response());
    }
    None
}

async fn poll(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    state.polls.fetch_add(1, Ordering::SeqCst);
    if let Some(r) = gate(&state, &headers) {
        return r;
    }
    let etag = format!("\"v{}\"", state.revision.load(Ordering::SeqCst));
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        state.not_modified.fetch_add(1, Ordering::SeqCst);
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let body = state.data.lock().unwrap().to_string();
    let headers = [
        (header::ETAG, etag),
        (header::CONTENT_TYPE, "application/json".to_owned()),
    ];
    if state.chunked.load(Ordering::SeqCst) {
        let pieces: Vec<Result<String, Infallible>> = body
            .as_bytes()
            .chunks(4096)
            .map(|c| Ok(String::from_utf8_lossy(c).into_owned()))
            .collect();
        let stream = futures_util::stream::iter(pieces);
        return (headers, Body::from_stream(stream)).into_response();
    }
    (headers, body).into_response()
}

async fn stream(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    state.streams.fetch_add(1, Ordering::SeqCst);
    if let Some(r) = gate(&state, &headers) {
        return r;
    }
    let (tx, rx) = mpsc::unbounded_channel::<String>();
    let put = json!({"path": "/", "data": *state.data.lock().unwrap()});
    // A comment first, as LaunchDarkly's heartbeats are, and the put split over two writes.
    let text = format!("event: put\ndata: {put}\n\n");
    let (a, b) = text.split_at(text.len() / 2);
    tx.send(":hello\n\n".to_owned()).unwrap();
    tx.send(a.to_owned()).unwrap();
    tx.send(b.to_owned()).unwrap();
    state.open.lock().unwrap().push(tx);
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|s| (Ok::<_, Infallible>(s), rx))
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(body),
    )
        .into_response()
}

// ---------------------------------------------------------------- helpers

fn ctx(key: &str) -> Context {
    Context::new(key)
}

fn snapshot(sink: &RecordingSink) -> Arc<Snapshot> {
    sink.snapshot().expect("a snapshot was published")
}

fn value(sink: &RecordingSink, flag: &str, user: &str) -> Option<Value> {
    snapshot(sink).evaluate(flag, &ctx(user)).value().cloned()
}

async fn wait_value(sink: &RecordingSink, flag: &str, user: &str, want: Option<Value>) {
    let ok = sink
        .wait_for(WAIT, |s| {
            s.evaluate(flag, &ctx(user)).value() == want.as_ref()
        })
        .await;
    assert!(
        ok,
        "{flag} for {user}: want {want:?}, have {:?}",
        value(sink, flag, user)
    );
}

async fn wait_state(p: &LaunchDarklyProvider, state: ProviderState) {
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

fn beta(version: u64, fallthrough: u64) -> Value {
    json!({"key": "beta", "version": version, "on": true, "salt": "b",
           "variations": [false, true], "offVariation": 0,
           "targets": [{"values": ["alice"], "variation": 1}],
           "fallthrough": {"variation": fallthrough}})
}

fn data() -> Value {
    json!({
        "flags": {
            "beta": beta(1, 0),
            "theme": {"key": "theme", "version": 4, "on": true, "salt": "t",
                      "variations": ["light", "dark"], "offVariation": 0,
                      "rules": [{"id": "testers", "variation": 1, "clauses": [
                          {"attribute": "segmentMatch", "op": "segmentMatch", "values": ["testers"]}]}],
                      "fallthrough": {"variation": 0}},
            "gone": {"key": "gone", "version": 2, "on": false, "variations": [1, 2],
                     "offVariation": 1, "fallthrough": {"variation": 0}}
        },
        "segments": {
            "testers": {"key": "testers", "version": 1, "included": ["carol"], "salt": "s"}
        }
    })
}

/// What every test checks first: the data of [`data`] evaluates as LaunchDarkly would.
fn check_initial(sink: &RecordingSink) {
    let s = snapshot(sink);
    let d = s.evaluate("beta", &ctx("alice"));
    assert_eq!(d.value(), Some(&json!(true)));
    assert_eq!(d.reason_kind(), ReasonKind::TargetMatch);
    let d = s.evaluate("beta", &ctx("bob"));
    assert_eq!(d.value(), Some(&json!(false)));
    assert_eq!(d.reason_kind(), ReasonKind::Fallthrough);
    let d = s.evaluate("theme", &ctx("carol"));
    assert_eq!(d.value(), Some(&json!("dark")));
    assert_eq!(d.reason_kind(), ReasonKind::RuleMatch);
    assert_eq!(d.rule_id(), Some("testers"));
    assert_eq!(
        s.evaluate("theme", &ctx("bob")).value(),
        Some(&json!("light"))
    );
    let d = s.evaluate("gone", &ctx("bob"));
    assert_eq!(
        (d.value(), d.reason_kind()),
        (Some(&json!(2)), ReasonKind::Off)
    );
    let d = s.evaluate("missing", &ctx("bob"));
    assert_eq!(d.error_kind(), Some(ErrorKind::FlagNotFound));
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn polling_delivers_the_data_follows_changes_and_stops_on_close() {
    let server = Server::start(data()).await;
    let p = server.provider(Mode::Polling {
        interval: Duration::from_millis(50),
    });
    let sink = RecordingSink::new();
    p.start(sink.clone()).await.unwrap();
    assert_eq!(p.status().state, ProviderState::Ready);
    assert!(p.status().connected);
    check_initial(&sink);

    // Unchanged data: the provider sends the ETag back and gets 304s.
    let deadline = Instant::now() + WAIT;
    while server.state.not_modified.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "no conditional request was made");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sink.publications(), 1, "a 304 publishes nothing");

    let mut changed = data();
    changed["flags"]["beta"] = beta(2, 1);
    server.set_data(changed);
    wait_value(&sink, "beta", "bob", Some(json!(true))).await;
    assert_eq!(p.status().state, ProviderState::Ready);

    p.close().await;
    assert_eq!(p.status().state, ProviderState::Closed);
    let polls = server.polls();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.polls(), polls, "polling went on after close");
    assert!(matches!(
        p.start(sink.clone()).await,
        Err(ProviderError::Closed)
    ));
}

/// A polling body over `max_payload_size` is refused, whether its size is announced
/// (`Content-Length`) or only seen as it arrives: the last good flags keep serving, the status
/// says why, and a payload back under the limit recovers.
#[tokio::test]
async fn an_oversized_polling_payload_is_refused_and_the_last_flags_kept() {
    for chunked in [false, true] {
        let server = Server::start(data()).await;
        server.state.chunked.store(chunked, Ordering::SeqCst);
        let p = LaunchDarklyProvider::builder(KEY)
            .base_uri(server.uri())
            .stream_uri(server.uri())
            .mode(Mode::Polling {
                interval: Duration::from_millis(30),
            })
            .backoff(Duration::from_millis(20), Duration::from_millis(100))
            .max_payload_size(64 * 1024)
            .build()
            .unwrap();
        let sink = RecordingSink::new();
        p.start(sink.clone()).await.unwrap();
        check_initial(&sink);

        let mut big = data();
        big["flags"]["beta"] = beta(2, 1);
        big["flags"]["padding"] = json!({"key": "padding", "version": 1, "on": true,
            "variations": ["x".repeat(100_000)], "fallthrough": {"variation": 0}});
        server.set_data(big);
        wait_state(&p, ProviderState::Degraded).await;
        let st = p.status();
        assert!(!st.connected);
        let (err, _) = st.last_error.clone().expect("the status says why");
        let source = std::error::Error::source(&*err)
            .and_then(|s| s.downcast_ref::<LaunchDarklyError>())
            .expect("the LaunchDarkly error is the source");
        assert!(
            matches!(
                source,
                LaunchDarklyError::PayloadTooLarge { limit: 65536, .. }
            ),
            "chunked {chunked}: {source}"
        );
        assert!(st.to_string().contains("exceeds 65536 bytes"), "{st}");
        check_initial(&sink);
        assert_eq!(sink.publications(), 1, "chunked {chunked}");

        let mut smaller = data();
        smaller["flags"]["beta"] = beta(3, 1);
        server.set_data(smaller);
        wait_value(&sink, "beta", "bob", Some(json!(true))).await;
        wait_state(&p, ProviderState::Ready).await;
        p.close().await;
    }
}

#[test]
fn zero_intervals_and_timeouts_are_refused() {
    use feature_launchdarkly::BuildError;
    let zero = Duration::ZERO;
    for b in [
        LaunchDarklyProvider::builder(KEY).mode(Mode::Polling { interval: zero }),
        LaunchDarklyProvider::builder(KEY).request_timeout(zero),
        LaunchDarklyProvider::builder(KEY).stream_read_timeout(zero),
    ] {
        let err = b.build().unwrap_err();
        assert!(matches!(err, BuildError::ZeroDuration { .. }), "{err}");
        assert!(err.to_string().contains("longer than zero"), "{err}");
    }
}

#[tokio::test]
async fn streaming_applies_newer_patches_and_deletes_and_ignores_older_ones() {
    let server = Server::start(data()).await;
    let p = server.provider(Mode::Streaming);
    let sink = RecordingSink::new();
    p.start(sink.clone()).await.unwrap();
    assert_eq!(p.status().state, ProviderState::Ready);
    check_initial(&sink);
    assert_eq!(server.streams(), 1);

    assert_eq!(p.flag_metadata().get("beta").map(|m| m.version), Some(1));

    // A newer version changes the evaluation, and its event settings come with it.
    let mut tracked = beta(2, 1);
    tracked["trackEvents"] = json!(true);
    server.send_event("patch", json!({"path": "/flags/beta", "data": tracked}));
    wait_value(&sink, "beta", "bob", Some(json!(true))).await;
    let meta = p.flag_metadata().get("beta").unwrap();
    assert_eq!((meta.version, meta.track_events), (2, true));

    // An older version, and one equal to the held one, are ignored. Events are handled in
    // order, so once the marker flag that follows them is seen they were handled.
    server.send_event("patch", json!({"path": "/flags/beta", "data": beta(1, 0)}));
    server.send_event("patch", json!({"path": "/flags/beta", "data": beta(2, 0)}));
    server.send_event("delete", json!({"path": "/flags/theme", "version": 3}));
    server.send_event(
        "patch",
        json!({"path": "/flags/marker", "data": {"key": "marker", "version": 1, "on": false,
               "variations": ["m"], "offVariation": 0, "fallthrough": {"variation": 0}}}),
    );
    wait_value(&sink, "marker", "bob", Some(json!("m"))).await;
    assert_eq!(value(&sink, "beta", "bob"), Some(json!(true)));
    assert_eq!(value(&sink, "theme", "carol"), Some(json!("dark")));

    // A segment patch changes who the rule matches.
    server.send_event(
        "patch",
        json!({"path": "/segments/testers", "data": {"key": "testers", "version": 2,
               "included": ["bob"], "salt": "s"}}),
    );
    wait_value(&sink, "theme", "bob", Some(json!("dark"))).await;
    assert_eq!(value(&sink, "theme", "carol"), Some(json!("light")));

    // A newer delete removes the flag.
    server.send_event("delete", json!({"path": "/flags/gone", "version": 3}));
    assert!(
        sink.wait_for(WAIT, |s| s.evaluate("gone", &ctx("bob")).error_kind()
            == Some(ErrorKind::FlagNotFound))
            .await
    );
    // ... and an older patch cannot bring it back.
    let gone_v2 = data()["flags"]["gone"].clone();
    server.send_event("patch", json!({"path": "/flags/gone", "data": gone_v2}));
    server.send_event("delete", json!({"path": "/flags/marker", "version": 2}));
    assert!(
        sink.wait_for(WAIT, |s| s.evaluate("marker", &ctx("bob")).error_kind()
            == Some(ErrorKind::FlagNotFound))
            .await
    );
    assert_eq!(
        snapshot(&sink).evaluate("gone", &ctx("bob")).error_kind(),
        Some(ErrorKind::FlagNotFound)
    );

    // Unknown events and comments change nothing; the stream stays up.
    let before = sink.publications();
    server.send(": heartbeat\n\nevent: other\ndata: {}\n\n");
    server.send_event("patch", json!({"path": "/flags/beta", "data": beta(3, 0)}));
    wait_value(&sink, "beta", "bob", Some(json!(false))).await;
    assert_eq!(sink.publications(), before + 1);
    assert_eq!(server.streams(), 1);
    assert_eq!(p.status().state, ProviderState::Ready);
    p.close().await;
}

#[tokio::test]
async fn a_dropped_stream_degrades_then_reconnects_and_resyncs() {
    let server = Server::start(data()).await;
    let p = server.provider(Mode::Streaming);
    let sink = RecordingSink::new();
    p.start(sink.clone()).await.unwrap();
    check_initial(&sink);

    // The service goes down: the stream ends and reconnections get 503.
    server.set_down(Some(StatusCode::SERVICE_UNAVAILABLE));
    server.drop_streams();
    wait_state(&p, ProviderState::Degraded).await;
    let st = p.status();
    assert!(!st.connected);
    assert!(st.last_error.is_some());
    // Still serving the last data.
    check_initial(&sink);
    // Retries happen, with backoff (20 ms doubling to 200 ms: a handful, not hundreds).
    let deadline = Instant::now() + WAIT;
    while server.streams() < 4 {
        assert!(Instant::now() < deadline, "no reconnection attempts");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let attempts = server.streams();
    assert!(
        attempts < 20,
        "{attempts} reconnection attempts in well under a second"
    );
    assert!(sink.metrics.sum("error:stream:") >= 2);

    // A change made while disconnected arrives with the next put.
    let mut changed = data();
    changed["flags"]["beta"] = beta(5, 1);
    server.set_data(changed);
    server.set_down(None);
    wait_state(&p, ProviderState::Ready).await;
    wait_value(&sink, "beta", "bob", Some(json!(true))).await;
    assert!(p.status().connected);
    assert!(p.status().last_error.is_none());

    // The stream works again.
    server.send_event("delete", json!({"path": "/flags/beta", "version": 6}));
    wait_value(&sink, "beta", "bob", None).await;
    p.close().await;
}

#[tokio::test]
async fn start_retries_until_the_service_answers() {
    for mode in [
        Mode::Streaming,
        Mode::Polling {
            interval: Duration::from_secs(30),
        },
    ] {
        let server = Server::start(data()).await;
        server.state.fail_next.store(2, Ordering::SeqCst);
        let p = server.provider(mode);
        let sink = RecordingSink::new();
        p.start(sink.clone()).await.unwrap();
        assert_eq!(p.status().state, ProviderState::Ready, "{mode:?}");
        check_initial(&sink);
        assert_eq!(server.streams() + server.polls(), 3, "{mode:?}");
        assert_eq!(sink.metrics.sum("error:"), 2, "{mode:?}");
        p.close().await;
    }
}

#[tokio::test]
async fn unreachable_at_start_returns_unavailable_and_keeps_trying() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let uri = format!("http://127.0.0.1:{port}");
    let p = LaunchDarklyProvider::builder(KEY)
        .base_uri(&uri)
        .stream_uri(&uri)
        .start_timeout(Duration::from_millis(300))
        .backoff(Duration::from_millis(20), Duration::from_millis(100))
        .build()
        .unwrap();
    let sink = RecordingSink::new();
    let started = Instant::now();
    p.start(sink.clone()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    let st = p.status();
    assert_eq!(st.state, ProviderState::Unavailable);
    assert!(!p.is_failed());
    let err = st.last_error.expect("the error is reported").0;
    assert!(err.to_string().contains("launchdarkly"), "{err}");
    assert!(sink.snapshot().is_none());
    let errors = sink.metrics.sum("error:stream:transport");
    assert!(errors >= 2, "{errors} attempts");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        sink.metrics.sum("error:stream:transport") > errors,
        "stopped retrying"
    );
    p.close().await;
}

#[tokio::test]
async fn a_rejected_key_fails_start_without_retrying() {
    for mode in [
        Mode::Streaming,
        Mode::Polling {
            interval: Duration::from_millis(20),
        },
    ] {
        let server = Server::start(data()).await;
        let p = server.provider_with_key("sdk-wrong-key", mode);
        let sink = RecordingSink::new();
        let err = p.start(sink.clone()).await.unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("rejected the SDK key") && msg.contains("401"),
            "{msg}"
        );
        assert!(!msg.contains("wrong-key"), "the key leaked: {msg}");
        let source = std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<LaunchDarklyError>())
            .expect("the LaunchDarkly error is the source");
        assert!(matches!(
            source,
            LaunchDarklyError::Unauthorized { status: 401, .. }
        ));
        assert!(p.is_failed());
        let st = p.status();
        assert_eq!(st.state, ProviderState::Unavailable);
        assert!(st.to_string().contains("rejected the SDK key"), "{st}");
        assert!(sink.snapshot().is_none());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(server.streams() + server.polls(), 1, "{mode:?} retried");
        assert_eq!(sink.metrics.sum("error:"), 1);
    }
}

#[tokio::test]
async fn a_key_revoked_later_stops_the_provider_and_keeps_the_last_flags() {
    let server = Server::start(data()).await;
    let p = server.provider(Mode::Streaming);
    let sink = RecordingSink::new();
    p.start(sink.clone()).await.unwrap();
    server.set_down(Some(StatusCode::FORBIDDEN));
    server.drop_streams();
    let deadline = Instant::now() + WAIT;
    while !p.is_failed() {
        assert!(Instant::now() < deadline, "never failed: {}", p.status());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(p.status().state, ProviderState::Degraded);
    assert!(p.status().to_string().contains("403"));
    check_initial(&sink);
    let attempts = server.streams();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.streams(), attempts, "retried after a 403");
}

#[tokio::test]
async fn invalid_items_are_skipped_and_the_rest_evaluates() {
    let mut bad = data();
    bad["flags"]["broken"] = json!(42);
    bad["flags"]["also-broken"] = json!("not a flag");
    bad["segments"]["bad-segment"] = json!([1, 2]);
    for mode in [
        Mode::Streaming,
        Mode::Polling {
            interval: Duration::from_secs(30),
        },
    ] {
        let server = Server::start(bad.clone()).await;
        let p = server.provider(mode);
        let sink = RecordingSink::new();
        p.start(sink.clone()).await.unwrap();
        check_initial(&sink);
        let s = snapshot(&sink);
        for key in ["broken", "also-broken"] {
            assert_eq!(
                s.evaluate(key, &ctx("bob")).error_kind(),
                Some(ErrorKind::FlagNotFound),
                "{key}"
            );
        }
        let st = p.status();
        assert_eq!(st.state, ProviderState::Degraded, "{mode:?}");
        assert!(st.connected);
        let e = st.last_error.expect("the skipped items are reported").0;
        let ProviderError::Invalid(diags) = &*e else {
            panic!("unexpected error {e}");
        };
        let keys: Vec<&str> = diags.iter().map(|d| d.flag.as_str()).collect();
        assert_eq!(keys, ["also-broken", "broken", "segment bad-segment"]);
        assert_eq!(sink.metrics.get("error:import:invalid_item"), 1);
        p.close().await;
    }

    // A patch fixing the item makes the provider Ready again.
    let server = Server::start(bad).await;
    let p = server.provider(Mode::Streaming);
    let sink = RecordingSink::new();
    p.start(sink.clone()).await.unwrap();
    for (path, data) in [
        ("/flags/broken", beta(1, 1)),
        ("/flags/also-broken", beta(1, 1)),
        ("/segments/bad-segment", json!({"version": 1})),
    ] {
        server.send_event("patch", json!({"path": path, "data": data}));
    }
    wait_state(&p, ProviderState::Ready).await;
    assert_eq!(value(&sink, "broken", "bob"), Some(json!(true)));
    p.close().await;
}

#[tokio::test]
async fn malformed_events_make_the_stream_reconnect() {
    let server = Server::start(data()).await;
    let p = server.provider(Mode::Streaming);
    let sink = RecordingSink::new();
    p.start(sink.clone()).await.unwrap();
    let mut changed = data();
    changed["flags"]["beta"] = beta(9, 1);
    server.set_data(changed);
    server.send("event: patch\ndata: {not json\n\n");
    // The provider drops the connection and the reconnection's put brings the new data.
    wait_value(&sink, "beta", "bob", Some(json!(true))).await;
    assert_eq!(server.streams(), 2);
    assert_eq!(sink.metrics.get("error:stream:payload"), 1);
    wait_state(&p, ProviderState::Ready).await;
    p.close().await;
}

// ---------------------------------------------------------------- contract data

#[path = "../../feature-testdata/include/evaluate.rs"]
mod shared;
use shared::evaluate;

#[tokio::test]
async fn launchdarkly_contract_data_through_the_provider() {
    let sets = data_sets();
    let server = Server::start(json!({})).await;
    // Each data set is served by the stand-in and received by a provider, alternating the two
    // ways data arrives; the snapshot the provider publishes is what the cases evaluate.
    let mut snapshots = Vec::with_capacity(sets.len());
    for set in &sets {
        server.set_data(set.sdk_data.clone());
        let mode = if set.index % 2 == 0 {
            Mode::Streaming
        } else {
            Mode::Polling {
                interval: Duration::from_secs(30),
            }
        };
        let p = server.provider(mode);
        let sink = RecordingSink::new();
        p.start(sink.clone()).await.unwrap();
        // The contract data has no item that cannot be imported.
        assert_eq!(
            p.status().state,
            ProviderState::Ready,
            "{}: {} ({mode:?})",
            set.file,
            set.name
        );
        snapshots.push(snapshot(&sink));
        p.close().await;
        server.drop_streams();
    }
    let report = run(&sets, |set, case| evaluate(&snapshots[set.index], case));
    println!("launchdarkly contract data through the provider (even data sets streamed, odd ones polled): {report}");
    assert_eq!(report.cases, 728, "expected 728 evaluations");
    report.assert_all_passed();
}
