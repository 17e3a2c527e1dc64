//! Delivery of LaunchDarkly analytics events: what `EventProcessor` posts to a stand-in for
//! LaunchDarkly's events endpoint on 127.0.0.1, and how it reacts to its answers (retry once
//! with the same payload id, stop on 401, drop and count beyond capacity, flush on close).
//! The content of the events is compared with LaunchDarkly's own SDK in the `feature` crate's
//! tests/launchdarkly_events.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use feature_core::{Context, ReasonKind};
use feature_launchdarkly::events::{Evaluated, EventProcessor, EventsConfig};
use feature_launchdarkly::{FlagEventMeta, FlagMetaMap, FlagMetadata};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Seen {
    posts: Mutex<Vec<(HeaderMap, Value, Instant)>>,
    answers: Mutex<Vec<u16>>,
}

async fn stand_in() -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = axum::Router::new()
        .route(
            "/bulk",
            post(
                |State(s): State<Arc<Seen>>, headers: HeaderMap, body: String| async move {
                    let v = serde_json::from_str(&body).unwrap_or(Value::Null);
                    s.posts.lock().unwrap().push((headers, v, Instant::now()));
                    let mut a = s.answers.lock().unwrap();
                    let status = if a.is_empty() { 202 } else { a.remove(0) };
                    StatusCode::from_u16(status).unwrap()
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (uri, seen)
}

fn meta() -> FlagMetadata {
    let m = FlagMetadata::new();
    let mut map = FlagMetaMap::default();
    map.insert(
        "f".into(),
        FlagEventMeta::of(&json!({"version": 2, "trackEvents": true})),
    );
    m.replace(map);
    m
}

fn evaluate(p: &EventProcessor, user: &str) {
    let ctx = Context::new(user);
    p.evaluation(&Evaluated {
        key: "f",
        context: &ctx,
        value: &json!(true),
        default: &|| json!(false),
        variation: Some(1),
        reason: ReasonKind::Fallthrough,
        rule_index: None,
        rule_id: None,
        in_experiment: false,
        error: None,
        prerequisite_key: None,
        big_segment: false,
    });
}

fn config(uri: &str) -> EventsConfig {
    EventsConfig::default()
        .events_uri(uri)
        .flush_interval(Duration::from_secs(3600))
        .retry_delay(Duration::from_millis(200))
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn a_transient_failure_is_retried_once_with_the_same_payload_id() {
    let (uri, seen) = stand_in().await;
    seen.answers.lock().unwrap().extend([503, 503]);
    let p = EventProcessor::start("sdk-key", config(&uri), meta()).unwrap();
    evaluate(&p, "u1");
    p.flush().await;
    {
        let posts = seen.posts.lock().unwrap();
        assert_eq!(posts.len(), 2, "one try, one retry, no more");
        let (id0, id1) = (
            header(&posts[0].0, "x-launchdarkly-payload-id"),
            header(&posts[1].0, "x-launchdarkly-payload-id"),
        );
        assert_eq!(id0, id1, "the retry carries the same payload id");
        assert!(posts[1].2 - posts[0].2 >= Duration::from_millis(200));
        assert_eq!(posts[0].1, posts[1].1);
    }
    assert_eq!(p.stats().payloads_failed, 1);

    // The next payload gets a new id and goes through on its first try after a 503.
    seen.answers.lock().unwrap().push(503);
    evaluate(&p, "u2");
    p.flush().await;
    let posts = seen.posts.lock().unwrap();
    assert_eq!(posts.len(), 4);
    assert_ne!(
        header(&posts[2].0, "x-launchdarkly-payload-id"),
        header(&posts[0].0, "x-launchdarkly-payload-id")
    );
    assert_eq!(
        header(&posts[2].0, "x-launchdarkly-payload-id"),
        header(&posts[3].0, "x-launchdarkly-payload-id")
    );
    assert_eq!(header(&posts[3].0, "content-type"), "application/json");
    assert_eq!(header(&posts[3].0, "authorization"), "sdk-key");
    assert_eq!(header(&posts[3].0, "x-launchdarkly-event-schema"), "4");
    drop(posts);
    assert_eq!(p.stats().payloads_sent, 1);
}

#[tokio::test]
async fn a_refused_key_stops_all_sending() {
    let (uri, seen) = stand_in().await;
    seen.answers.lock().unwrap().push(401);
    let p = EventProcessor::start("sdk-revoked", config(&uri), meta()).unwrap();
    evaluate(&p, "u1");
    p.flush().await;
    assert_eq!(seen.posts.lock().unwrap().len(), 1, "401 is not retried");
    assert!(p.stats().disabled);
    evaluate(&p, "u2");
    p.flush().await;
    p.close().await;
    assert_eq!(seen.posts.lock().unwrap().len(), 1, "nothing after a 401");
}

#[tokio::test]
async fn events_beyond_capacity_are_dropped_and_counted_and_close_flushes() {
    let (uri, seen) = stand_in().await;
    let p = EventProcessor::start("sdk-key", config(&uri).capacity(5), meta()).unwrap();
    // Each new user: an index and a feature event; 10 users make 20 events for 5 places.
    for i in 0..10 {
        evaluate(&p, &format!("u{i}"));
    }
    assert_eq!(p.stats().dropped, 15);
    p.close().await;
    let posts = seen.posts.lock().unwrap();
    assert_eq!(posts.len(), 1, "close sends what is queued");
    let events = posts[0].1.as_array().unwrap();
    assert_eq!(events.len(), 6, "5 events and the summary");
    let summary = events.last().unwrap();
    assert_eq!(summary["kind"], "summary");
    assert_eq!(
        summary["features"]["f"]["counters"][0]["count"], 10,
        "the summary counts every evaluation, dropped events or not"
    );
}

#[tokio::test]
async fn a_context_gets_one_index_event_until_the_key_set_is_flushed() {
    let (uri, seen) = stand_in().await;
    let p = EventProcessor::start(
        "sdk-key",
        config(&uri).context_keys_flush_interval(Duration::from_millis(300)),
        FlagMetadata::new(), // every flag unknown: no feature events, only index ones
    )
    .unwrap();
    evaluate(&p, "u1");
    evaluate(&p, "u1");
    p.flush().await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    evaluate(&p, "u1");
    p.close().await;
    let kinds: Vec<String> = seen
        .posts
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(_, v, _)| v.as_array().unwrap().clone())
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["index", "summary", "index", "summary"]);
    assert_eq!(p.stats().deduplicated_contexts, 1);
}
