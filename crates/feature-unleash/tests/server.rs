//! The provider against a real Unleash server on loopback (`scripts/unleash.sh` starts one on
//! 127.0.0.1:4242). Toggles are created through the Admin API under names no other run uses,
//! and removed afterwards. Without a server the tests print why and return, unless `CI=true`,
//! where they fail.
//!
//! Settings: `FEATURE_TEST_UNLEASH_URL` (default `http://127.0.0.1:4242/api`, loopback only),
//! `FEATURE_TEST_UNLEASH_CLIENT_TOKEN`, `FEATURE_TEST_UNLEASH_ADMIN_TOKEN` (defaults: the tokens
//! `scripts/unleash.sh` creates).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature_core::metrics::Metrics;
use feature_core::provider::{Engine, Provider, ProviderError, ProviderState, Sink};
use feature_core::{Context, ErrorKind, Reason, Snapshot, ValueKind};
use feature_unleash::{UnleashEngine, UnleashProvider};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(10);
const REFRESH: Duration = Duration::from_millis(200);
const CLIENT_TOKEN: &str = "default:development.unleash-insecure-client-token";
const ADMIN_TOKEN: &str = "*:*.unleash-insecure-api-token";

/// The toggles of one run live in the server's `default` project, and each fetch returns all
/// of them: the tests take turns so that one test's changes do not show up in another's
/// counts of fetches that brought something new.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The server's `host:port`, which must be a loopback address.
fn loopback_addr(url: &str) -> SocketAddr {
    let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    let host = parsed.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = if host == "localhost" {
        std::net::Ipv4Addr::LOCALHOST.into()
    } else {
        host.parse()
            .unwrap_or_else(|_| panic!("{url}: the test server must be a loopback address"))
    };
    assert!(
        ip.is_loopback(),
        "{url}: the test server must be on loopback"
    );
    SocketAddr::new(ip, parsed.port_or_known_default().unwrap_or(80))
}

/// The server's API URL, or `None` (after saying why) when it is unreachable outside CI.
fn server() -> Option<String> {
    let url = env_or("FEATURE_TEST_UNLEASH_URL", "http://127.0.0.1:4242/api");
    let addr = loopback_addr(&url);
    if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok() {
        return Some(url.trim_end_matches('/').to_owned());
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("the Unleash server is unreachable at {url} (CI=true: the test must not skip; start it with scripts/unleash.sh)");
    }
    eprintln!(
        "skipping: the Unleash server is unreachable at {url} (start it with scripts/unleash.sh)"
    );
    None
}

/// What the provider reported and published.
#[derive(Default)]
struct TestSink {
    published: AtomicU64,
    counts: Mutex<BTreeMap<String, u64>>,
    /// The engine's events (impressions): name and data.
    events: Mutex<Vec<(String, Value)>>,
}

impl TestSink {
    fn count(&self, name: &str) -> u64 {
        self.counts.lock().unwrap().get(name).copied().unwrap_or(0)
    }

    fn bump(&self, name: String) {
        *self.counts.lock().unwrap().entry(name).or_default() += 1;
    }

    fn errors(&self, operation: &str) -> u64 {
        let prefix = format!("error:{operation}:");
        self.counts
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v)
            .sum()
    }
}

impl Metrics for TestSink {
    fn record_provider_latency(&self, provider: &str, operation: &str, _duration: Duration) {
        assert_eq!(provider, "unleash");
        self.bump(format!("latency:{operation}"));
    }

    fn record_provider_error(&self, provider: &str, operation: &str, error_type: &str) {
        assert_eq!(provider, "unleash");
        self.bump(format!("error:{operation}:{error_type}"));
    }
}

impl Sink for TestSink {
    fn publish(&self, snapshot: Snapshot) {
        assert_eq!(
            snapshot.len(),
            0,
            "the engine answers, the snapshot is empty"
        );
        self.published.fetch_add(1, Ordering::SeqCst);
    }

    fn metrics(&self) -> &dyn Metrics {
        self
    }

    fn event(&self, _context: &Context, name: &str, data: Value) {
        self.events.lock().unwrap().push((name.to_owned(), data));
    }
}

/// The Admin API, and the toggles this run created (archived and deleted on drop).
struct Admin {
    base: String,
    http: reqwest::Client,
    created: Mutex<Vec<String>>,
    tag: String,
}

impl Admin {
    fn new(base: &str) -> Admin {
        Admin {
            base: base.to_owned(),
            // No pooled connections: the server (Node) closes idle ones on its own schedule,
            // and a request racing that close fails.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("http client"),
            created: Mutex::new(Vec::new()),
            tag: format!("{:08x}", fastrand::u32(..)),
        }
    }

    fn token() -> String {
        env_or("FEATURE_TEST_UNLEASH_ADMIN_TOKEN", ADMIN_TOKEN)
    }

    /// A toggle name unique to this run.
    fn name(&self, what: &str) -> String {
        format!("feature-unleash-test.{}.{what}", self.tag)
    }

    /// One Admin API call; the status must be a success. A call the server closed before
    /// answering (a transport failure of the test's set-up, not the behaviour under test) is
    /// repeated, at most four times, each on a new connection.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/admin/{path}", self.base);
        let mut tries = 0;
        let resp = loop {
            let mut req = self
                .http
                .request(method.clone(), &url)
                .header("Authorization", Admin::token());
            if let Some(b) = &body {
                req = req
                    .header("Content-Type", "application/json")
                    .body(b.to_string());
            }
            match req.send().await {
                Ok(resp) => break resp,
                Err(e) if tries < 4 && (e.is_connect() || e.is_request()) => {
                    tries += 1;
                    eprintln!("{method} {url}: {e:?}; trying again");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => panic!("{method} {url}: {e:?}"),
            }
        };
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "{method} {url}: {status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Creates a toggle with one strategy in `development`; returns the strategy's id.
    async fn create(&self, name: &str, strategy: Value, enabled: bool) -> String {
        let features = "projects/default/features";
        self.call(
            reqwest::Method::POST,
            features,
            Some(json!({"name": name, "type": "release"})),
        )
        .await;
        self.created.lock().unwrap().push(name.to_owned());
        let created = self
            .call(
                reqwest::Method::POST,
                &format!("{features}/{name}/environments/development/strategies"),
                Some(strategy),
            )
            .await;
        self.switch(name, enabled).await;
        created["id"].as_str().expect("strategy id").to_owned()
    }

    async fn switch(&self, name: &str, on: bool) {
        let path = format!(
            "projects/default/features/{name}/environments/development/{}",
            if on { "on" } else { "off" }
        );
        self.call(reqwest::Method::POST, &path, None).await;
    }

    async fn update_strategy(&self, name: &str, id: &str, strategy: Value) {
        let path =
            format!("projects/default/features/{name}/environments/development/strategies/{id}");
        self.call(reqwest::Method::PUT, &path, Some(strategy)).await;
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        let names = std::mem::take(&mut *self.created.lock().unwrap_or_else(|e| e.into_inner()));
        if names.is_empty() {
            return;
        }
        let (base, token) = (self.base.clone(), Admin::token());
        // Drop cannot wait on the test's runtime: a thread of its own does the clean-up.
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let http = reqwest::Client::new();
                for name in names {
                    for url in [
                        format!("{base}/admin/projects/default/features/{name}"),
                        format!("{base}/admin/archive/{name}"),
                    ] {
                        let _ = http
                            .delete(&url)
                            .header("Authorization", &token)
                            .send()
                            .await;
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// A flexible rollout to everyone on plan `pro`, with a string variant.
fn pro_rollout(group: &str, plans: &[&str]) -> Value {
    json!({
        "name": "flexibleRollout",
        "parameters": {"rollout": "100", "stickiness": "default", "groupId": group},
        "constraints": [{"contextName": "plan", "operator": "IN", "values": plans}],
        "variants": [{"name": "blue", "weight": 1000, "weightType": "variable",
                      "stickiness": "default", "payload": {"type": "string", "value": "#00f"}}]
    })
}

/// A flexible rollout to the users listed (the current form of the old `userWithId`).
fn users(group: &str, ids: &[&str]) -> Value {
    json!({
        "name": "flexibleRollout",
        "parameters": {"rollout": "100", "stickiness": "default", "groupId": group},
        "constraints": [{"contextName": "userId", "operator": "IN", "values": ids}]
    })
}

async fn started(url: &str, sink: &Arc<TestSink>) -> UnleashProvider {
    let provider = UnleashProvider::builder(
        url,
        env_or("FEATURE_TEST_UNLEASH_CLIENT_TOKEN", CLIENT_TOKEN),
    )
    .app_name("feature-unleash-tests")
    .refresh_interval(REFRESH)
    .timeout(Duration::from_secs(2))
    .backoff_max(Duration::from_millis(400))
    .build()
    .expect("valid settings");
    provider
        .start(sink.clone() as Arc<dyn Sink>)
        .await
        .expect("provider starts");
    provider
}

/// Waits until `check` holds for the engine, polling; the time it took, or `None` on timeout.
async fn wait_until(
    engine: &UnleashEngine,
    timeout: Duration,
    check: impl Fn(&UnleashEngine) -> bool,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if check(engine) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// The instant a wait ended, rather than how long it took.
trait MapAt {
    async fn map_at(self) -> Option<Instant>;
}

impl<F: std::future::Future<Output = Option<Duration>>> MapAt for F {
    async fn map_at(self) -> Option<Instant> {
        self.await.map(|_| Instant::now())
    }
}

/// A response body as JSON (`null` when it is not).
trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        let text = self.text().await.unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

fn bool_of(engine: &UnleashEngine, key: &str, ctx: &Context) -> (Value, Reason) {
    let e = engine.evaluate(key, ctx, ValueKind::Bool, &json!(false));
    (e.value, e.reason)
}

/// A strategy matched.
const ON: Reason = Reason::TargetMatch;
/// Switched on, but no strategy matched.
const NO_MATCH: Reason = Reason::Fallthrough {
    in_experiment: false,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targeted_users_get_the_toggles_and_variants_made_in_the_admin_api() {
    let Some(url) = server() else { return };
    let _turn = SERIAL.lock().await;
    let admin = Admin::new(&url);
    let (rollout, listed, off) = (
        admin.name("rollout"),
        admin.name("listed"),
        admin.name("off"),
    );
    admin
        .create(&rollout, pro_rollout(&rollout, &["pro"]), true)
        .await;
    admin
        .create(&listed, users(&listed, &["alice", "bob"]), true)
        .await;
    admin.create(&off, users(&off, &["alice"]), false).await;
    let by_ip = admin.name("by-ip");
    let ips = json!({"name": "remoteAddress", "parameters": {"IPs": "10.1.2.3, 10.1.2.4"}});
    admin.create(&by_ip, ips, true).await;

    let sink = Arc::new(TestSink::default());
    let provider = started(&url, &sink).await;
    assert_eq!(
        provider.status().state,
        ProviderState::Ready,
        "{}",
        provider.status()
    );
    assert!(provider.status().connected);
    assert!(
        sink.published.load(Ordering::SeqCst) >= 1,
        "published a snapshot"
    );
    let engine = provider.unleash_engine();
    // Unleash serves new toggles once its own revision check ran (about a second).
    let known = wait_until(engine, WAIT, |e| {
        let keys = e.keys();
        [&rollout, &listed, &off, &by_ip]
            .iter()
            .all(|k| keys.contains(k))
    })
    .await;
    assert!(
        known.is_some(),
        "toggles never arrived: {:?}",
        engine.keys()
    );

    let pro = Context::new("carol").with_attribute("plan", "pro");
    let free = Context::new("carol").with_attribute("plan", "free");
    assert_eq!(bool_of(engine, &rollout, &pro), (json!(true), ON));
    assert_eq!(bool_of(engine, &rollout, &free), (json!(false), NO_MATCH));
    let colour = engine.evaluate(&rollout, &pro, ValueKind::String, &json!("grey"));
    assert_eq!((colour.value, colour.reason), (json!("#00f"), ON));
    let colour = engine.evaluate(&rollout, &free, ValueKind::String, &json!("grey"));
    assert_eq!((colour.value, colour.reason), (json!("grey"), NO_MATCH));
    assert_eq!(engine.variant(&rollout, &pro).name, "blue");

    assert_eq!(
        bool_of(engine, &listed, &Context::new("alice")),
        (json!(true), ON)
    );
    assert_eq!(
        bool_of(engine, &listed, &Context::new("bob")),
        (json!(true), ON)
    );
    assert_eq!(
        bool_of(engine, &listed, &Context::new("carol")),
        (json!(false), NO_MATCH)
    );
    assert_eq!(
        bool_of(engine, &off, &Context::new("alice")),
        (json!(false), Reason::Off),
        "switched off in development"
    );
    let from = |ip: &str| Context::new("erin").with_ip(ip);
    assert_eq!(
        bool_of(engine, &by_ip, &from("10.1.2.4")),
        (json!(true), ON)
    );
    assert_eq!(
        bool_of(engine, &by_ip, &from("10.1.2.5")),
        (json!(false), NO_MATCH)
    );
    let missing = engine.evaluate(
        &admin.name("never-made"),
        &pro,
        ValueKind::Bool,
        &json!(true),
    );
    assert_eq!(missing.value, json!(true));
    assert_eq!(missing.error_kind(), Some(ErrorKind::FlagNotFound));

    // Polling goes on with If-None-Match: fetches that bring nothing new publish nothing.
    // The engine holds a fetch's toggles before that fetch publishes them: two more fetches
    // make sure the one that brought the toggles above has published.
    let after = sink.count("latency:fetch") + 2;
    let settled = wait_until(engine, WAIT, |_| sink.count("latency:fetch") >= after).await;
    assert!(settled.is_some(), "polling stopped");
    let (fetches, published) = (
        sink.count("latency:fetch"),
        sink.published.load(Ordering::SeqCst),
    );
    tokio::time::sleep(REFRESH * 5).await;
    assert!(
        sink.count("latency:fetch") >= fetches + 3,
        "kept polling: {} fetches before, {} after",
        fetches,
        sink.count("latency:fetch")
    );
    assert_eq!(
        sink.published.load(Ordering::SeqCst),
        published,
        "304s publish nothing"
    );
    assert_eq!(sink.errors("fetch"), 0);
    let registered = wait_until(engine, WAIT, |_| sink.count("latency:register") == 1).await;
    assert!(
        registered.is_some(),
        "registered: errors {}",
        sink.errors("register")
    );
    provider.close().await;
    assert_eq!(provider.status().state, ProviderState::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_show_within_the_refresh_interval() {
    let Some(url) = server() else { return };
    let _turn = SERIAL.lock().await;
    let admin = Admin::new(&url);
    let rollout = admin.name("changing");
    let strategy = admin
        .create(&rollout, pro_rollout(&rollout, &["pro"]), true)
        .await;
    let sink = Arc::new(TestSink::default());
    let provider = started(&url, &sink).await;
    let engine = provider.unleash_engine();
    let team = Context::new("dave").with_attribute("plan", "team");
    let known = wait_until(engine, WAIT, |e| e.keys().contains(&rollout)).await;
    assert!(known.is_some(), "toggle never arrived: {:?}", engine.keys());
    assert_eq!(bool_of(engine, &rollout, &team).0, json!(false));

    let client = reqwest::Client::new();
    let token = env_or("FEATURE_TEST_UNLEASH_CLIENT_TOKEN", CLIENT_TOKEN);
    // The server's current ETag and toggles.
    let fetch = || {
        let (client, token, url) = (&client, &token, &url);
        async move {
            let resp = client
                .get(format!("{url}/client/features"))
                .header("Authorization", token)
                .send()
                .await
                .expect("client API");
            let etag = resp.headers().get("etag").cloned();
            (etag, resp.json_value().await)
        }
    };
    // When the server serves the toggle in a state that satisfies `check`, under an ETag other
    // than `before`: from then on a client asking with `If-None-Match` gets the change.
    let served = |before: Option<reqwest::header::HeaderValue>, check: fn(&Value) -> bool| {
        let (fetch, rollout) = (&fetch, &rollout);
        async move {
            let started = Instant::now();
            while started.elapsed() < WAIT {
                let (etag, body) = fetch().await;
                let toggle = body["features"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|f| f["name"] == json!(rollout));
                if etag != before && toggle.is_some_and(check) {
                    return Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            None
        }
    };
    // Unleash refreshes its ETags on a schedule of its own (about a second); the provider must
    // see a change within one refresh interval (and one request) of the server announcing it.
    let bound = REFRESH + Duration::from_millis(300);

    let (before, _) = fetch().await;
    admin
        .update_strategy(&rollout, &strategy, pro_rollout(&rollout, &["pro", "team"]))
        .await;
    let (on_server, in_engine) = tokio::join!(
        served(before, |t| t.to_string().contains("\"team\"")),
        wait_until(engine, WAIT, |e| bool_of(e, &rollout, &team).0
            == json!(true))
        .map_at()
    );
    let (on_server, in_engine) = (
        on_server.expect("the server never served the new constraint value"),
        in_engine.expect("the new constraint value never reached the engine"),
    );
    let lag = in_engine.saturating_duration_since(on_server);
    println!("constraint change: in the engine {lag:?} after the server served it");
    assert!(lag <= bound, "took {lag:?}, more than {bound:?}");

    let (before, _) = fetch().await;
    admin.switch(&rollout, false).await;
    let (on_server, in_engine) = tokio::join!(
        served(before, |t| t["enabled"] == json!(false)),
        wait_until(engine, WAIT, |e| bool_of(e, &rollout, &team)
            == (json!(false), Reason::Off))
        .map_at()
    );
    let (on_server, in_engine) = (
        on_server.expect("the server never served the switch-off"),
        in_engine.expect("the switch-off never reached the engine"),
    );
    let lag = in_engine.saturating_duration_since(on_server);
    println!("switch-off: in the engine {lag:?} after the server served it");
    assert!(lag <= bound, "took {lag:?}, more than {bound:?}");
    assert_eq!(provider.status().state, ProviderState::Ready);
    provider.close().await;
}

/// A loopback TCP relay to the server that can be cut and restored, to make the server
/// unreachable for one provider without stopping the shared server.
struct Relay {
    addr: SocketAddr,
    upstream: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        let relay = Relay {
            addr,
            upstream,
            tasks: Arc::new(Mutex::new(Vec::new())),
        };
        relay.serve(listener);
        relay
    }

    fn serve(&self, listener: TcpListener) {
        let (upstream, tasks) = (self.upstream, self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(pipe);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Closes the listener and every relayed connection.
    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    /// Listens again on the same port.
    async fn restore(&self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
            }
        };
        self.serve(listener);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_leaves_the_last_toggles_serving() {
    let Some(url) = server() else { return };
    let _turn = SERIAL.lock().await;
    let admin = Admin::new(&url);
    let listed = admin.name("kept");
    admin
        .create(&listed, users(&listed, &["alice"]), true)
        .await;
    let relay = Relay::start(loopback_addr(&url)).await;
    let path = url::Url::parse(&url).expect("url").path().to_owned();
    let relayed = format!("http://{}{path}", relay.addr);
    let sink = Arc::new(TestSink::default());
    let provider = started(&relayed, &sink).await;
    let engine = provider.unleash_engine();
    let alice = Context::new("alice");
    let known = wait_until(engine, WAIT, |e| e.keys().contains(&listed)).await;
    assert!(known.is_some(), "toggle never arrived: {:?}", engine.keys());
    assert_eq!(bool_of(engine, &listed, &alice), (json!(true), ON));
    assert_eq!(provider.status().state, ProviderState::Ready);

    relay.cut();
    let degraded = wait_until(engine, WAIT, |_| {
        provider.status().state == ProviderState::Degraded
    })
    .await;
    assert!(degraded.is_some(), "still {}", provider.status());
    let status = provider.status();
    assert!(!status.connected);
    let (error, _) = status.last_error.expect("the error is reported");
    assert!(
        matches!(
            *error,
            ProviderError::Backend {
                operation: "fetch",
                ..
            } | ProviderError::Timeout { .. }
        ),
        "{error}"
    );
    assert!(sink.errors("fetch") >= 1);
    assert_eq!(
        bool_of(engine, &listed, &alice),
        (json!(true), ON),
        "last toggles serve"
    );
    assert_eq!(
        bool_of(engine, &listed, &Context::new("bob")),
        (json!(false), NO_MATCH)
    );

    relay.restore().await;
    let ready = wait_until(engine, WAIT, |_| {
        provider.status().state == ProviderState::Ready
    })
    .await;
    assert!(ready.is_some(), "never recovered: {}", provider.status());
    assert!(provider.status().connected);
    assert!(provider.status().last_error.is_none());
    provider.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_reports_are_accepted_by_the_server() {
    let Some(url) = server() else { return };
    let _turn = SERIAL.lock().await;
    let admin = Admin::new(&url);
    let name = admin.name("usage");
    admin
        .create(&name, pro_rollout(&name, &["pro"]), true)
        .await;
    let sink = Arc::new(TestSink::default());
    let provider = started(&url, &sink).await;
    let engine = provider.unleash_engine();
    let known = wait_until(engine, WAIT, |e| e.keys().contains(&name)).await;
    assert!(known.is_some(), "toggle never arrived: {:?}", engine.keys());
    // Whatever earlier fetches led to is reported first; then only this test's evaluations.
    provider
        .send_usage()
        .await
        .expect("the server accepts the report");
    let pro = Context::new("p").with_attribute("plan", "pro");
    let free = Context::new("f").with_attribute("plan", "free");
    for _ in 0..3 {
        assert_eq!(bool_of(engine, &name, &pro).0, json!(true));
    }
    assert_eq!(bool_of(engine, &name, &free).0, json!(false));
    let blue = engine.evaluate(&name, &pro, ValueKind::String, &json!("none"));
    assert_eq!(blue.value, json!("#00f"));
    // The server validates the body (a malformed report gets 400) and answers 202.
    assert_eq!(provider.send_usage().await.expect("accepted"), 1);
    assert!(sink.count("latency:metrics") >= 1);
    assert_eq!(sink.errors("metrics"), 0);
    assert_eq!(provider.send_usage().await.expect("nothing to send"), 0);
    provider.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_fails_start() {
    let Some(url) = server() else { return };
    let sink = Arc::new(TestSink::default());
    let provider = UnleashProvider::builder(&url, "default:development.not-a-real-token")
        .register(false)
        .build()
        .expect("valid settings");
    let err = provider
        .start(sink.clone() as Arc<dyn Sink>)
        .await
        .expect_err("a refused token fails start");
    assert!(
        err.to_string().contains("401") || err.to_string().contains("403"),
        "{err}"
    );
    assert_eq!(sink.published.load(Ordering::SeqCst), 0);
    assert_eq!(sink.count("error:fetch:status"), 1);
}

/// Needs no server: a closed loopback port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_at_start_leaves_the_provider_unavailable_and_retrying() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        l.local_addr().expect("address")
    };
    let sink = Arc::new(TestSink::default());
    let provider = UnleashProvider::builder(format!("http://{closed}/api"), CLIENT_TOKEN)
        .refresh_interval(Duration::from_millis(50))
        .start_timeout(Duration::from_millis(600))
        .build()
        .expect("valid settings");
    let started = Instant::now();
    provider
        .start(sink.clone() as Arc<dyn Sink>)
        .await
        .expect("an unreachable server does not fail start");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let status = provider.status();
    assert_eq!(status.state, ProviderState::Unavailable, "{status}");
    assert!(status.last_error.is_some());
    assert!(
        sink.count("error:fetch:connect") >= 2,
        "retried within the start timeout"
    );
    assert_eq!(sink.published.load(Ordering::SeqCst), 0);
    let eval = provider.engine().expect("an engine").evaluate(
        "anything",
        &Context::new("u"),
        ValueKind::Bool,
        &json!(true),
    );
    assert_eq!(eval.value, json!(true));
    assert_eq!(eval.error_kind(), Some(ErrorKind::ClientNotReady));
    let before = sink.errors("fetch");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        sink.errors("fetch") > before,
        "keeps retrying in the background"
    );
    provider.close().await;
    assert_eq!(provider.status().state, ProviderState::Closed);
}

#[test]
fn bad_settings_are_errors() {
    use feature_unleash::UnleashError;
    let build = |url: &str| UnleashProvider::builder(url, CLIENT_TOKEN).build();
    assert!(matches!(
        build("not a url"),
        Err(UnleashError::InvalidUrl { .. })
    ));
    assert!(matches!(
        build("ftp://127.0.0.1/api"),
        Err(UnleashError::UnsupportedScheme { .. })
    ));
    if !cfg!(feature = "rustls") {
        assert!(matches!(
            build("https://127.0.0.1/api"),
            Err(UnleashError::HttpsUnsupported { .. })
        ));
    }
    let bad_token = UnleashProvider::builder("http://127.0.0.1:4242/api", "line\nbreak").build();
    assert!(matches!(
        bad_token,
        Err(UnleashError::InvalidHeader {
            name: "Authorization",
            ..
        })
    ));
    let no_app = UnleashProvider::builder("http://127.0.0.1:4242/api", CLIENT_TOKEN)
        .app_name(" ")
        .build();
    assert!(matches!(no_app, Err(UnleashError::EmptyAppName)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_strategies_and_impression_events_with_the_server() {
    let Some(url) = server() else { return };
    let _turn = SERIAL.lock().await;
    let admin = Admin::new(&url);
    // Custom strategies are defined on the server before a toggle can use them.
    let strategy = format!("featureTestCountry{}", admin.tag);
    admin
        .call(
            reqwest::Method::POST,
            "strategies",
            Some(
                json!({"name": strategy, "description": "test", "parameters": [
                    {"name": "countries", "type": "list", "description": "", "required": false}
                ]}),
            ),
        )
        .await;
    let name = admin.name("custom");
    admin
        .call(
            reqwest::Method::POST,
            "projects/default/features",
            Some(json!({"name": name, "type": "release", "impressionData": true})),
        )
        .await;
    admin.created.lock().unwrap().push(name.clone());
    admin
        .call(
            reqwest::Method::POST,
            &format!("projects/default/features/{name}/environments/development/strategies"),
            Some(json!({"name": strategy, "parameters": {"countries": "NO,SE"}})),
        )
        .await;
    admin.switch(&name, true).await;

    let sink = Arc::new(TestSink::default());
    let provider = UnleashProvider::builder(
        &url,
        env_or("FEATURE_TEST_UNLEASH_CLIENT_TOKEN", CLIENT_TOKEN),
    )
    .refresh_interval(REFRESH)
    .register(false)
    .strategy(strategy.clone(), |ctx, params| {
        let country = ctx.get("country").and_then(Value::as_str).unwrap_or("");
        params
            .get("countries")
            .is_some_and(|list| list.split(',').any(|c| c.trim() == country))
    })
    .build()
    .expect("valid settings");
    provider
        .start(sink.clone() as Arc<dyn Sink>)
        .await
        .expect("starts");
    let engine = provider.unleash_engine();
    let known = wait_until(engine, WAIT, |e| e.keys().contains(&name)).await;
    assert!(known.is_some(), "toggle never arrived");
    let no = Context::new("u").with_attribute("country", "NO");
    let us = Context::new("u").with_attribute("country", "US");
    assert_eq!(bool_of(engine, &name, &no), (json!(true), ON));
    assert_eq!(bool_of(engine, &name, &us), (json!(false), NO_MATCH));
    let impressions: Vec<Value> = sink
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|(n, d)| n == "impression" && d["featureName"] == json!(name))
        .map(|(_, d)| d.clone())
        .collect();
    assert_eq!(impressions.len(), 2, "{impressions:?}");
    assert_eq!(impressions[0]["eventType"], json!("isEnabled"));
    assert_eq!(impressions[0]["enabled"], json!(true));
    assert_eq!(impressions[1]["enabled"], json!(false));
    assert_eq!(
        impressions[1]["context"]["properties"]["country"],
        json!("US")
    );
    provider.close().await;

    // Without the implementation: reported, and never a silent `false`.
    let sink = Arc::new(TestSink::default());
    let provider = started(&url, &sink).await;
    let engine = provider.unleash_engine();
    let known = wait_until(engine, WAIT, |e| e.keys().contains(&name)).await;
    assert!(known.is_some(), "toggle never arrived");
    let eval = engine.evaluate(&name, &no, ValueKind::Bool, &json!(false));
    assert_eq!(
        eval.error_kind(),
        Some(ErrorKind::MalformedFlag),
        "{eval:?}"
    );
    let missing = engine.unimplemented_strategies();
    assert!(
        missing
            .iter()
            .any(|w| w.toggle == name && w.message.contains(&strategy)),
        "{missing:?}"
    );
    assert_eq!(
        provider.status().state,
        ProviderState::Ready,
        "not degraded by it"
    );
    provider.close().await;
}
