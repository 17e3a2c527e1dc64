//! `Client::new` with `FEATURE_PROVIDER=unleash`, configured from the environment's variables,
//! against the real Unleash server scripts/test.sh starts on 127.0.0.1:4242 (crate feature
//! `unleash`). A toggle is created through the Admin API under a name no other run uses, and
//! evaluated through the client's typed accessors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run
#![cfg(all(feature = "unleash", feature = "webhook"))]

use feature::{Client, Context, ErrorKind, Reason};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const CLIENT_TOKEN: &str = "default:development.unleash-insecure-client-token";
const ADMIN_TOKEN: &str = "*:*.unleash-insecure-api-token";
const API: &str = "http://127.0.0.1:4242/api";

mod common;
use common::config;

/// One Admin API call; the status must be a success. Each try opens a new connection. A try
/// the server closed before answering is repeated (at most four times): that is the test
/// server's transport, not the behaviour under test, and the server did not act on it.
async fn admin(method: &str, path: &str, body: Value) {
    let mut tries = 0;
    let resp = loop {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build_http::<Full<bytes::Bytes>>();
        let req = http::Request::builder()
            .method(method)
            .uri(format!("{API}/admin/{path}"))
            .header("authorization", ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(Full::new(bytes::Bytes::from(body.to_string())))
            .unwrap();
        match client.request(req).await {
            Ok(resp) => break resp,
            Err(e) if tries < 4 && unanswered(&e) => {
                tries += 1;
                eprintln!("{method} {path}: {e:?}; trying again");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("{method} {path}: {e:?}"),
        }
    };
    let status = resp.status();
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(
        status.is_success(),
        "{method} {path}: {status} {}",
        String::from_utf8_lossy(&text)
    );
}

/// Whether the request failed before the server sent any answer.
fn unanswered(e: &hyper_util::client::legacy::Error) -> bool {
    e.is_connect()
        || std::error::Error::source(e)
            .and_then(|s| s.downcast_ref::<hyper::Error>())
            .is_some_and(|h| h.is_incomplete_message() || h.is_closed())
}

#[test]
fn custom_headers_and_projects_come_from_the_environment() {
    let c = config(&[
        ("FEATURE_PROVIDER", "unleash"),
        ("UNLEASH_URL", API),
        ("UNLEASH_API_TOKEN", CLIENT_TOKEN),
        (
            "UNLEASH_CUSTOM_HEADERS",
            "X-Proxy-Key: proxy-secret; X-Team:search",
        ),
        ("UNLEASH_PROJECTS", "checkout, search"),
    ])
    .unwrap();
    assert_eq!(
        c.remote.unleash_custom_headers,
        [
            ("X-Proxy-Key".to_owned(), "proxy-secret".to_owned()),
            ("X-Team".to_owned(), "search".to_owned())
        ]
    );
    assert_eq!(c.remote.unleash_projects, ["checkout", "search"]);
    assert!(!format!("{c:?}").contains("proxy-secret"));
    let bad = config(&[
        ("FEATURE_PROVIDER", "unleash"),
        ("UNLEASH_URL", API),
        ("UNLEASH_API_TOKEN", CLIENT_TOKEN),
        ("UNLEASH_CUSTOM_HEADERS", "no value here"),
    ])
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt.block_on(Client::new(bad)).unwrap_err().to_string();
    assert!(err.contains("UNLEASH_CUSTOM_HEADERS"), "{err}");
}

#[test]
fn unleash_settings_are_required_and_secrets_stay_hidden() {
    let c = config(&[("FEATURE_PROVIDER", "unleash")]).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt.block_on(Client::new(c)).unwrap_err().to_string();
    assert!(err.contains("UNLEASH_URL"), "{err}");
    let c = config(&[
        ("FEATURE_PROVIDER", "unleash"),
        ("UNLEASH_URL", API),
        ("UNLEASH_API_TOKEN", "secret-token-value"),
    ])
    .unwrap();
    assert!(!format!("{c:?}").contains("secret-token-value"));
    assert_eq!(c.remote.unleash_app_name, "feature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_new_evaluates_unleash_toggles() {
    if !common::up("127.0.0.1:4242") {
        eprintln!("skipping: Unleash unreachable on 127.0.0.1:4242");
        return;
    }
    let name = format!(
        "facade-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let feature = format!("projects/default/features/{name}");
    admin("POST", "projects/default/features", json!({"name": name})).await;
    admin(
        "POST",
        &format!("{feature}/environments/development/strategies"),
        json!({
            "name": "flexibleRollout",
            "parameters": {"rollout": "100", "stickiness": "default", "groupId": name},
            "constraints": [{"contextName": "userId", "operator": "IN", "values": ["pro-user"]}],
            "variants": [{"name": "blue", "weight": 1000, "weightType": "variable",
                          "stickiness": "default", "payload": {"type": "string", "value": "#00f"}}],
        }),
    )
    .await;
    admin(
        "POST",
        &format!("{feature}/environments/development/on"),
        json!({}),
    )
    .await;

    let c = config(&[
        ("FEATURE_PROVIDER", "unleash"),
        ("UNLEASH_URL", API),
        ("UNLEASH_API_TOKEN", CLIENT_TOKEN),
        ("UNLEASH_APP_NAME", "facade-test"),
        ("FEATURE_REFRESH_INTERVAL", "200ms"),
    ])
    .unwrap();
    let client = Client::new(c).await.unwrap();
    assert_eq!(client.provider_name(), "unleash");
    let mut changes = client.subscribe();
    let pro = Context::new("pro-user");
    let other = Context::new("someone-else");
    // The server announces a new toggle to polling clients after a short delay.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !client.bool(&pro, &name, false) {
        assert!(
            Instant::now() < deadline,
            "toggle {name} never became visible"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Subscribers hear which toggle changed (the engine's snapshots are empty).
    admin(
        "POST",
        &format!("{feature}/environments/development/off"),
        json!({}),
    )
    .await;
    let switched = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match changes.recv().await {
                Ok(change) if change.keys.contains(&name) => break,
                Ok(_) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    assert!(switched.is_ok(), "no change notice for {name}");
    assert!(!client.bool(&pro, &name, true));
    // A switched-off toggle serves nothing to `json()`: the default, not a wrong type.
    match client.try_json::<String>(&pro, &name) {
        Err(feature::JsonError::NotServed(eval)) => assert_eq!(eval.reason, Reason::Off),
        other => panic!("{other:?}"),
    }
    assert_eq!(client.json(&pro, &name, "fallback".to_owned()), "fallback");
    admin(
        "POST",
        &format!("{feature}/environments/development/on"),
        json!({}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !client.bool(&pro, &name, false) {
        assert!(Instant::now() < deadline, "toggle {name} never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Not targeted: the toggle is on but its strategy says no, which is `false`, not the
    // caller's default.
    assert!(!client.bool(&other, &name, true));
    assert_eq!(client.string(&pro, &name, "none"), "#00f");
    let missing = client.variation(&pro, "no-such-toggle-anywhere");
    assert_eq!(
        missing.reason,
        Reason::Error {
            error_kind: ErrorKind::FlagNotFound
        }
    );
    client.close().await;
    admin(
        "POST",
        &format!("{feature}/environments/development/off"),
        json!({}),
    )
    .await;
    admin("DELETE", &feature, json!({})).await;
    admin("DELETE", &format!("archive/{name}"), json!({})).await;
}
