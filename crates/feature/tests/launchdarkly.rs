//! `Client::new` with `FEATURE_PROVIDER=launchdarkly`, configured from the environment's
//! variables (crate feature `launchdarkly`). LaunchDarkly's service cannot run on a test
//! machine, so a stand-in on 127.0.0.1 serves its polling endpoint (`/sdk/latest-all`) with a
//! LaunchDarkly flag; the provider's own tests cover streaming and the contract data.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run
#![cfg(feature = "launchdarkly")]

use feature::{Client, Context, Reason};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

mod common;
use common::config;

#[tokio::test]
async fn launchdarkly_settings_are_required_and_the_key_stays_hidden() {
    let err = Client::new(config(&[("FEATURE_PROVIDER", "launchdarkly")]).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("LAUNCHDARKLY_SDK_KEY"), "{err}");
    let c = config(&[
        ("FEATURE_PROVIDER", "launchdarkly"),
        ("LAUNCHDARKLY_SDK_KEY", "sdk-very-secret"),
        ("LAUNCHDARKLY_BASE_URL", "not a url"),
    ])
    .unwrap();
    assert!(!format!("{c:?}").contains("sdk-very-secret"));
    let err = Client::new(c).await.unwrap_err().to_string();
    assert!(err.contains("LAUNCHDARKLY_BASE_URL"), "{err}");
    assert!(config(&[("LAUNCHDARKLY_POLLING", "maybe")]).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_new_evaluates_launchdarkly_flags() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/sdk/latest-all",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                assert_eq!(
                    headers.get("authorization").and_then(|v| v.to_str().ok()),
                    Some("sdk-test-key")
                );
                (
                    [("content-type", "application/json")],
                    json!({
                    "flags": {"new-checkout": {
                        "key": "new-checkout", "version": 3, "on": true, "salt": "s",
                        "variations": [false, true], "offVariation": 0,
                        "fallthrough": {"variation": 0},
                        "targets": [], "prerequisites": [],
                        "rules": [{"id": "pros", "variation": 1, "clauses": [
                            {"attribute": "plan", "op": "in", "values": ["pro"], "negate": false}
                        ]}]
                    }},
                    "segments": {}
                })
                    .to_string(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let client = Client::new(
        config(&[
            ("FEATURE_PROVIDER", "launchdarkly"),
            ("LAUNCHDARKLY_SDK_KEY", "sdk-test-key"),
            ("LAUNCHDARKLY_BASE_URL", &base),
            ("LAUNCHDARKLY_POLLING", "true"),
            ("FEATURE_REFRESH_INTERVAL", "30s"),
            // Events would go to LaunchDarkly's endpoint: tests/launchdarkly_events.rs
            // points them at a stand-in.
            ("FEATURE_SEND_EVENTS", "false"),
        ])
        .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(client.provider_name(), "launchdarkly");
    assert!(client.is_ready());
    let pro = Context::new("u1").with_attribute("plan", "pro");
    let free = Context::new("u2").with_attribute("plan", "free");
    assert!(client.bool(&pro, "new-checkout", false));
    assert!(!client.bool(&free, "new-checkout", true));
    let d = client.variation(&pro, "new-checkout");
    assert_eq!(d.rule_id(), Some("pros"));
    assert!(matches!(d.reason, Reason::RuleMatch { .. }), "{d:?}");
    assert!(calls.load(Ordering::SeqCst) >= 1);
    client.close().await;
}
