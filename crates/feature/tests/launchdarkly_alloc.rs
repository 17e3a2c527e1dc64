//! LaunchDarkly's summaries count every evaluation, so the LaunchDarkly events sink is called
//! for each one: in the steady state (flags and contexts seen before in the flush period) it
//! must cost an evaluation no heap allocation. Counted by a global allocator on the
//! evaluating thread (the processor's own thread is not counted).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run
#![cfg(feature = "launchdarkly")]

use feature::analytics::exporters::launchdarkly::LaunchDarklyEvents;
use feature::providers::launchdarkly::events::EventsConfig;
use feature::providers::launchdarkly::{FlagEventMeta, FlagMetaMap, FlagMetadata};
use feature::{Client, Context, MemoryProvider};
use feature_testdata::alloc::{allocations, Counting};
use serde_json::json;
use std::time::Duration;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[tokio::test]
async fn counting_an_evaluation_for_launchdarkly_allocates_nothing_in_the_steady_state() {
    let ld = json!({"flags": {
        "beta": {"key": "beta", "version": 3, "on": true, "salt": "b",
            "variations": [false, true], "offVariation": 0, "fallthrough": {"variation": 1}},
        "theme": {"key": "theme", "version": 1, "on": true, "salt": "t",
            "variations": ["light", "dark"], "offVariation": 0, "fallthrough": {"variation": 1}},
        "limit": {"key": "limit", "version": 2, "on": true, "salt": "l",
            "variations": [10, 20], "offVariation": 0, "fallthrough": {"variation": 0}}
    }});
    let meta = FlagMetadata::new();
    let mut table = FlagMetaMap::default();
    for (k, f) in ld["flags"].as_object().unwrap() {
        table.insert(k.as_str().into(), FlagEventMeta::of(f));
    }
    meta.replace(table);
    let doc = feature::engine::launchdarkly::import(&ld).unwrap();
    // Nothing is sent during the test: the flush interval is an hour, and the closing flush
    // goes to a closed loopback port.
    let events = LaunchDarklyEvents::new(
        "sdk-key",
        EventsConfig::default()
            .events_uri("http://127.0.0.1:9")
            .flush_interval(Duration::from_secs(3600))
            .request_timeout(Duration::from_millis(200))
            .retry_delay(Duration::from_millis(10)),
        meta,
    )
    .unwrap();
    let client = Client::builder()
        .provider(MemoryProvider::with_document(doc))
        .events(events)
        .build()
        .await
        .unwrap();
    let user = Context::new("user-1").with_attribute("plan", "pro");
    let multi = Context::multi([
        Context::new("user-2"),
        Context::of_kind("org", "acme").unwrap(),
    ])
    .unwrap();
    let round = |n: usize| {
        for _ in 0..n {
            for ctx in [&user, &multi] {
                assert!(client.bool(ctx, "beta", false));
                assert_eq!(client.int(ctx, "limit", 0), 10);
                assert!(client.bool(ctx, "unknown-flag", true));
            }
        }
    };
    round(2); // first of the period: summary entries, index events, canonical-key buffer
    let n = allocations(|| round(500));
    assert_eq!(n, 0, "allocations for 3 000 counted evaluations");
    // A string accessor allocates its returned `String`, and nothing for the default.
    assert_eq!(client.string(&user, "theme", "light"), "dark");
    let n = allocations(|| {
        for _ in 0..100 {
            client.string(&user, "theme", "light");
        }
    });
    assert_eq!(n, 100, "one allocation per call: the returned String");
    client.close().await;
}
