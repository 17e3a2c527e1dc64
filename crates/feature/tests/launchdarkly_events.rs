//! LaunchDarkly's analytics events, proved against LaunchDarkly's own Python server-side SDK
//! (crate feature `launchdarkly`). A stand-in for LaunchDarkly on 127.0.0.1 serves the same
//! flag data to both (polling) and captures what each posts to `/bulk`; the same scenario of
//! evaluations, `track` and `identify` calls runs through the SDK (tests/launchdarkly/driver.py)
//! and through a `Client` built from `LAUNCHDARKLY_*` variables, and the payloads are compared
//! event by event, timestamps normalised and summaries merged across payloads.
//!
//! The SDK is the PyPI package `launchdarkly-server-sdk`, installed by scripts/services.sh. A
//! machine without it skips these tests, except under `CI=true`, where that fails them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run
#![cfg(feature = "launchdarkly")]

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use feature::{Client, Context, ValueKind};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

mod common;
use common::config;

const SDK_KEY: &str = "sdk-compare-key";

/// One POST to `/bulk`: its headers (names lower-case) and body.
#[derive(Debug, Clone)]
struct Posted {
    headers: BTreeMap<String, String>,
    body: Value,
}

#[derive(Default)]
struct StandInState {
    data: Value,
    posts: Mutex<Vec<Posted>>,
    /// Statuses to answer the next posts with, first first (then 202).
    fail_with: Mutex<Vec<u16>>,
}

/// LaunchDarkly's polling and events endpoints on 127.0.0.1.
struct StandIn {
    uri: String,
    state: Arc<StandInState>,
}

impl StandIn {
    async fn start(data: Value) -> StandIn {
        let state = Arc::new(StandInState {
            data,
            ..StandInState::default()
        });
        let app = axum::Router::new()
            .route(
                "/sdk/latest-all",
                get(|State(s): State<Arc<StandInState>>| async move {
                    ([("content-type", "application/json")], s.data.to_string())
                }),
            )
            .route(
                "/bulk",
                post(
                    |State(s): State<Arc<StandInState>>, headers: HeaderMap, body: String| async move {
                        let headers = headers
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                            })
                            .collect();
                        let body = serde_json::from_str(&body).unwrap_or(Value::Null);
                        s.posts.lock().unwrap().push(Posted { headers, body });
                        let status = {
                            let mut f = s.fail_with.lock().unwrap();
                            if f.is_empty() { 202 } else { f.remove(0) }
                        };
                        StatusCode::from_u16(status).unwrap()
                    },
                ),
            )
            .route("/diagnostic", post(|| async { StatusCode::ACCEPTED }))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        StandIn { uri, state }
    }

    fn posts(&self) -> Vec<Posted> {
        self.state.posts.lock().unwrap().clone()
    }
}

/// Far in the future: debug events are on for the whole test.
const DEBUG_UNTIL: u64 = 4_102_444_800_000;

fn flags() -> Value {
    json!({
        "flags": {
            "tracked": {"key": "tracked", "version": 3, "on": true, "salt": "t",
                "variations": [false, true], "offVariation": 0, "trackEvents": true,
                "clientSide": true,
                "fallthrough": {"variation": 1}},
            "rules": {"key": "rules", "version": 8, "on": true, "salt": "r",
                "variations": ["red", "green", "blue"], "offVariation": 0,
                "trackEventsFallthrough": true, "clientSide": true,
                "rules": [
                    {"id": "free", "variation": 0, "clauses": [
                        {"attribute": "plan", "op": "in", "values": ["free"], "negate": false}]},
                    {"id": "pro", "variation": 1, "trackEvents": true, "clauses": [
                        {"attribute": "plan", "op": "in", "values": ["pro"], "negate": false}]},
                    {"id": "gold-org", "variation": 1, "clauses": [
                        {"contextKind": "org", "attribute": "tier", "op": "in",
                         "values": ["gold"], "negate": false}]}
                ],
                "fallthrough": {"variation": 2}},
            "experiment": {"key": "experiment", "version": 5, "on": true, "salt": "e",
                "variations": ["control", "treatment"], "offVariation": 0,
                "fallthrough": {"rollout": {"kind": "experiment", "seed": 61,
                    "variations": [{"variation": 0, "weight": 50000},
                                   {"variation": 1, "weight": 50000}]}}},
            "debugged": {"key": "debugged", "version": 2, "on": true, "salt": "d",
                "variations": [10, 20], "offVariation": 0,
                "debugEventsUntilDate": DEBUG_UNTIL, "fallthrough": {"variation": 1}},
            "config": {"key": "config", "version": 4, "on": false, "salt": "c",
                "variations": [{"limit": 1}, {"limit": 2}], "offVariation": 1,
                "fallthrough": {"variation": 0}},
            "dark": {"key": "dark", "version": 6, "on": false, "salt": "k",
                "variations": [true, false], "fallthrough": {"variation": 0}},
            "ratio": {"key": "ratio", "version": 1, "on": true, "salt": "q",
                "variations": [0.25, 0.75], "offVariation": 0, "fallthrough": {"variation": 1}},
            // Not evaluated by the event scenario (LaunchDarkly's SDKs also send an event per
            // prerequisite evaluation); in the bootstrap state only.
            "gated": {"key": "gated", "version": 9, "on": true, "salt": "g",
                "variations": ["no", "yes"], "offVariation": 0, "clientSide": true,
                "prerequisites": [{"key": "tracked", "variation": 1}, {"key": "rules", "variation": 0}],
                "fallthrough": {"variation": 1}},
            // A big segment: never matched without a big-segment store, and said so.
            "big": {"key": "big", "version": 2, "on": true, "salt": "b",
                "variations": ["in", "out"], "offVariation": 0, "trackEventsFallthrough": true,
                "rules": [{"id": "members", "variation": 0, "trackEvents": true, "clauses": [
                    {"attribute": "", "op": "segmentMatch", "values": ["big-seg"], "negate": false}]}],
                "fallthrough": {"variation": 1}}
        },
        "segments": {
            "big-seg": {"key": "big-seg", "version": 1, "unbounded": true, "generation": 1,
                "salt": "x", "included": ["alice"], "excluded": [], "rules": []}
        }
    })
}

fn contexts() -> Vec<Value> {
    vec![
        json!({"kind": "user", "key": "alice", "name": "Alice", "email": "alice@example.com",
               "plan": "pro", "address": {"city": "Lyon", "zip": "69001"},
               "_meta": {"privateAttributes": ["/address/city"]}}),
        json!({"kind": "user", "key": "bob", "plan": "free", "email": "bob@example.com"}),
        json!({"kind": "user", "key": "anon-7", "anonymous": true, "name": "Someone",
               "plan": "pro"}),
        json!({"kind": "multi",
               "user": {"key": "carol", "email": "carol@example.com", "plan": "team"},
               "org": {"key": "acme", "tier": "gold", "name": "Acme",
                       "_meta": {"privateAttributes": ["name"]}}}),
        json!({"kind": "org", "key": "o:1%x", "tier": "silver"}),
    ]
}

/// Evaluations of every flag for every context (twice, for the counters), unknown flags,
/// `track` with data and a metric value, `identify`.
fn steps() -> Vec<Value> {
    let defaults = [
        ("tracked", json!(false)),
        ("rules", json!("none")),
        ("experiment", json!("none")),
        ("debugged", json!(0)),
        ("config", json!({"limit": 0})),
        ("dark", json!(true)),
        ("ratio", json!(0.5)),
        ("missing", json!("fallback")),
        ("big", json!("none")),
    ];
    let mut steps = Vec::new();
    let ctxs = contexts();
    steps.push(json!({"op": "identify", "context": ctxs[1]}));
    for round in 0..2 {
        for c in &ctxs {
            for (flag, default) in &defaults {
                steps.push(json!({"op": "eval", "flag": flag, "default": default, "context": c}));
            }
        }
        steps.push(
            json!({"op": "track", "event": "checkout", "context": ctxs[0],
            "data": {"items": 3, "round": round}, "metric": 42.5}),
        );
    }
    steps.push(json!({"op": "track", "event": "signup", "context": ctxs[4]}));
    steps.push(json!({"op": "track", "event": "view", "context": ctxs[3], "metric": 2}));
    steps.push(json!({"op": "eval", "flag": "missing", "default": 7,
        "context": {"kind": "user", "key": "dave"}}));
    steps
}

const PRIVATE: [&str; 1] = ["email"];

fn scenario(stand_in: &StandIn, steps: &[Value]) -> Value {
    json!({
        "sdk_key": SDK_KEY,
        "base_uri": stand_in.uri,
        "events_uri": stand_in.uri,
        "private_attributes": PRIVATE,
        "application": {"id": "compare-app", "version": "1.2.3"},
        "steps": steps,
    })
}

/// The interpreter with LaunchDarkly's SDK, or `None` (a skip) when there is none, which
/// fails the test under `CI=true`.
fn python() -> Option<String> {
    let python = std::env::var("FEATURE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import ldclient"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !ci,
        "CI=true but LaunchDarkly's Python SDK is missing: run scripts/services.sh \
         (pip install launchdarkly-server-sdk)"
    );
    eprintln!(
        "skipping: LaunchDarkly's Python SDK not found (pip install launchdarkly-server-sdk)"
    );
    None
}

/// Runs the scenario through LaunchDarkly's SDK; what its steps returned.
async fn run_sdk(python: &str, scenario: &Value) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("scenario.json");
    std::fs::write(&spec, scenario.to_string()).unwrap();
    let driver = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/launchdarkly/driver.py");
    let python = python.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(driver)
            .arg(&spec)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "the SDK driver failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A client configured from `LAUNCHDARKLY_*` variables against the stand-in.
async fn our_client(stand_in: &StandIn, extra: &[(&str, &str)]) -> Client {
    let mut vars = vec![
        ("FEATURE_PROVIDER", "launchdarkly"),
        ("LAUNCHDARKLY_SDK_KEY", SDK_KEY),
        ("LAUNCHDARKLY_BASE_URL", stand_in.uri.as_str()),
        ("LAUNCHDARKLY_EVENTS_URL", stand_in.uri.as_str()),
        ("LAUNCHDARKLY_POLLING", "true"),
        ("LAUNCHDARKLY_PRIVATE_ATTRIBUTES", "email"),
        ("LAUNCHDARKLY_APPLICATION_ID", "compare-app"),
        ("LAUNCHDARKLY_APPLICATION_VERSION", "1.2.3"),
    ];
    vars.extend_from_slice(extra);
    Client::new(config(&vars).unwrap()).await.unwrap()
}

/// Runs the scenario's event steps through our client, with the accessor a typed caller
/// would use for the default's type.
async fn run_ours(client: &Client, steps: &[Value]) {
    for step in steps {
        let ctx = Context::from_json(&step["context"]).unwrap();
        match step["op"].as_str().unwrap() {
            "eval" => {
                let key = step["flag"].as_str().unwrap();
                match &step["default"] {
                    Value::Bool(b) => {
                        client.bool(&ctx, key, *b);
                    }
                    Value::String(s) => {
                        client.string(&ctx, key, s);
                    }
                    Value::Number(n) if n.is_i64() => {
                        client.int(&ctx, key, n.as_i64().unwrap());
                    }
                    Value::Number(n) => {
                        client.float(&ctx, key, n.as_f64().unwrap());
                    }
                    other => {
                        client.variation_with(&ctx, key, ValueKind::Any, other.clone());
                    }
                }
            }
            "track" => {
                let data = feature::analytics::TrackData {
                    data: step.get("data").cloned(),
                    metric_value: step.get("metric").and_then(Value::as_f64),
                };
                client.track(&ctx, step["event"].as_str().unwrap(), data);
            }
            "identify" => client.identify(&ctx),
            other => panic!("not an event step: {other}"),
        }
    }
    client.close().await;
}

/// A flag's merged summary: default, context kinds, counters by variation/version.
type FlagSummary = (Value, Vec<String>, BTreeMap<String, Value>);

/// The events of every payload, in order, with timestamps zeroed, summaries merged into one
/// (last) summary with its counters sorted, and the lists whose order LaunchDarkly ignores
/// (`contextKinds`, `redactedAttributes`) sorted.
fn normalise(posts: &[Posted]) -> Vec<Value> {
    let mut events = Vec::new();
    let mut features: BTreeMap<String, FlagSummary> = BTreeMap::new();
    for p in posts {
        for e in p.body.as_array().unwrap() {
            let mut e = e.clone();
            if e["kind"] == "summary" {
                for (key, f) in e["features"].as_object().unwrap() {
                    let entry = features
                        .entry(key.clone())
                        .or_insert_with(|| (f["default"].clone(), Vec::new(), BTreeMap::new()));
                    for k in f["contextKinds"].as_array().unwrap() {
                        let k = k.as_str().unwrap().to_owned();
                        if !entry.1.contains(&k) {
                            entry.1.push(k);
                        }
                    }
                    for c in f["counters"].as_array().unwrap() {
                        let id = format!("{}/{}/{}", c["variation"], c["version"], c["unknown"]);
                        let slot = entry.2.entry(id).or_insert_with(|| {
                            let mut c = c.clone();
                            c["count"] = json!(0);
                            c
                        });
                        slot["count"] =
                            json!(slot["count"].as_u64().unwrap() + c["count"].as_u64().unwrap());
                    }
                }
                continue;
            }
            e["creationDate"] = json!(0);
            // A metric value is a JSON number: `2` (the SDK keeps a Python int) and `2.0` (an
            // f64 here) are the same value.
            if let Some(m) = e.get("metricValue").and_then(Value::as_f64) {
                e["metricValue"] = json!(m);
            }
            sort_redacted(&mut e["context"]);
            events.push(e);
        }
    }
    if !features.is_empty() {
        let mut out = Map::new();
        for (key, (default, mut kinds, counters)) in features {
            kinds.sort();
            out.insert(
                key,
                json!({"default": default, "contextKinds": kinds,
                       "counters": counters.into_values().collect::<Vec<_>>()}),
            );
        }
        events.push(json!({"kind": "summary", "features": out}));
    }
    events
}

fn sort_redacted(ctx: &mut Value) {
    let Some(o) = ctx.as_object_mut() else { return };
    if let Some(list) = o
        .get_mut("_meta")
        .and_then(|m| m.get_mut("redactedAttributes"))
        .and_then(Value::as_array_mut)
    {
        list.sort_by_key(|v| v.to_string());
    }
    for v in o.values_mut() {
        if v.is_object() {
            sort_redacted(v);
        }
    }
}

/// The headers both must send, with the values that must agree.
fn check_headers(ours: &Posted, theirs: &Posted) {
    for name in [
        "authorization",
        "content-type",
        "x-launchdarkly-event-schema",
        "x-launchdarkly-tags",
    ] {
        assert_eq!(
            ours.headers.get(name),
            theirs.headers.get(name),
            "header {name}"
        );
    }
    assert_eq!(ours.headers["authorization"], SDK_KEY);
    assert_eq!(ours.headers["x-launchdarkly-event-schema"], "4");
    assert_eq!(
        ours.headers["x-launchdarkly-tags"],
        "application-id/compare-app application-version/1.2.3"
    );
    let id = &ours.headers["x-launchdarkly-payload-id"];
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert!(theirs.headers.contains_key("x-launchdarkly-payload-id"));
    assert!(ours.headers["user-agent"].starts_with("feature-launchdarkly/"));
}

fn first_difference(ours: &[Value], theirs: &[Value]) -> String {
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        if a != b {
            return format!(
                "event {i} differs:\n ours:   {}\n theirs: {}",
                serde_json::to_string(a).unwrap(),
                serde_json::to_string(b).unwrap()
            );
        }
    }
    format!("ours has {} events, theirs {}", ours.len(), theirs.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_match_launchdarklys_own_sdk() {
    let Some(python) = python() else { return };
    let steps = steps();

    let theirs_in = StandIn::start(flags()).await;
    run_sdk(&python, &scenario(&theirs_in, &steps)).await;
    let theirs_posts = theirs_in.posts();
    assert!(!theirs_posts.is_empty(), "the SDK posted no events");

    let ours_in = StandIn::start(flags()).await;
    let client = our_client(&ours_in, &[]).await;
    run_ours(&client, &steps).await;
    let ours_posts = ours_in.posts();
    assert!(!ours_posts.is_empty(), "no events posted");

    check_headers(&ours_posts[0], &theirs_posts[0]);
    let ours = normalise(&ours_posts);
    let theirs = normalise(&theirs_posts);
    // Each kind is there (the comparison below would pass on two empty lists).
    for kind in ["index", "feature", "debug", "custom", "identify", "summary"] {
        assert!(
            theirs.iter().any(|e| e["kind"] == kind),
            "the scenario makes no {kind} event"
        );
    }
    assert!(theirs.iter().any(|e| e["reason"]["inExperiment"] == true));
    assert!(theirs
        .iter()
        .any(|e| e["reason"]["bigSegmentsStatus"] == "NOT_CONFIGURED"));
    assert!(theirs
        .iter()
        .any(|e| e.to_string().contains("redactedAttributes")));
    assert!(
        ours == theirs,
        "{}\n\nours:   {}\ntheirs: {}",
        first_difference(&ours, &theirs),
        serde_json::to_string(&ours).unwrap(),
        serde_json::to_string(&theirs).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_state_and_secure_mode_hash_match_launchdarklys_own_sdk() {
    use feature::providers::launchdarkly::bootstrap::{secure_mode_hash, FlagsStateOptions};
    use feature::providers::launchdarkly::{LaunchDarklyProvider, Mode};
    let Some(python) = python() else { return };
    let options = [
        FlagsStateOptions::default(),
        FlagsStateOptions {
            client_side_only: true,
            ..FlagsStateOptions::default()
        },
        FlagsStateOptions {
            with_reasons: true,
            ..FlagsStateOptions::default()
        },
        FlagsStateOptions {
            with_reasons: true,
            details_only_for_tracked_flags: true,
            ..FlagsStateOptions::default()
        },
    ];
    let py_options = |o: &FlagsStateOptions| {
        json!({"client_side_only": o.client_side_only, "with_reasons": o.with_reasons,
               "details_only_for_tracked_flags": o.details_only_for_tracked_flags})
    };
    let mut steps = Vec::new();
    for c in contexts() {
        for o in &options {
            steps.push(json!({"op": "all_flags_state", "context": c, "options": py_options(o)}));
        }
        steps.push(json!({"op": "secure_mode_hash", "context": c}));
    }
    let theirs_in = StandIn::start(flags()).await;
    let theirs = run_sdk(&python, &scenario(&theirs_in, &steps)).await;

    let ours_in = StandIn::start(flags()).await;
    let provider = LaunchDarklyProvider::builder(SDK_KEY)
        .base_uri(&ours_in.uri)
        .mode(Mode::polling())
        .build()
        .unwrap();
    let meta = provider.flag_metadata();
    let client = Client::builder().provider(provider).build().await.unwrap();
    let mut ours = Vec::new();
    for c in contexts() {
        let ctx = Context::from_json(&c).unwrap();
        for o in &options {
            ours.push(
                feature::providers::launchdarkly::bootstrap::all_flags_state(
                    &client.snapshot(),
                    &meta.load(),
                    &ctx,
                    *o,
                ),
            );
        }
        ours.push(json!(secure_mode_hash(SDK_KEY, &ctx)));
    }
    client.close().await;
    assert_eq!(ours.len(), theirs.len());
    assert!(theirs[0]["$flagsState"]["gated"]["prerequisites"].is_array());
    assert_eq!(
        theirs[2]["$flagsState"]["big"]["reason"]["bigSegmentsStatus"],
        "NOT_CONFIGURED"
    );
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "step {i}: {}", steps[i]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_events_false_sends_nothing_to_launchdarkly() {
    let stand_in = StandIn::start(flags()).await;
    let client = our_client(&stand_in, &[("FEATURE_SEND_EVENTS", "false")]).await;
    let user = Context::new("alice");
    assert!(client.bool(&user, "tracked", false));
    client.track(&user, "checkout", ());
    client.close().await;
    assert!(stand_in.posts().is_empty());

    // The same client with events on posts them (the stand-in would have seen them).
    let client = our_client(&stand_in, &[]).await;
    assert!(client.bool(&user, "tracked", false));
    client.close().await;
    assert_eq!(stand_in.posts().len(), 1);
}
