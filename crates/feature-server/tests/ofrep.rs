//! OFREP through the router: single and bulk evaluation (values, reasons, variants, metadata,
//! error codes and statuses), contexts (targeting key, attributes, multi-kind), bulk ETags
//! (per context, changing with the flags), the API-key header, CORS, and the ADR-0008 change
//! stream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

mod common;

use axum::body::Body;
use axum::http::Request;
use common::{call, Answer};
use feature::{Client, MemoryProvider};
use feature_server::{MemoryTokenStore, Server};
use feature_store::tokens::{create_token, Scope};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const FLAGS: &str = include_str!("ofrep/flags.yaml");

struct Env {
    router: axum::Router,
    flags: Arc<MemoryProvider>,
    token: String,
    read_token: String,
}

async fn env() -> Env {
    let doc = feature_core::parse_document(FLAGS, feature_core::Format::Yaml)
        .unwrap()
        .document;
    let flags = Arc::new(MemoryProvider::with_document(doc));
    let client = Client::builder()
        .shared_provider(flags.clone())
        .build()
        .await
        .unwrap();
    let tokens = Arc::new(MemoryTokenStore::new());
    let (_, token) = create_token(tokens.as_ref(), "web", Scope::Evaluate, "setup")
        .await
        .unwrap();
    let (_, read_token) = create_token(tokens.as_ref(), "reader", Scope::Read, "setup")
        .await
        .unwrap();
    let server = Server::builder()
        .read_only("flags from memory")
        .tokens(tokens)
        .client(client)
        .cors_origins(vec!["https://app.example.com".into()])
        .stream_heartbeat(Duration::from_millis(100))
        .build()
        .unwrap();
    Env {
        router: server.router(),
        flags,
        token,
        read_token,
    }
}

impl Env {
    async fn one(&self, key: &str, context: Value) -> Answer {
        call("POST", &format!("/ofrep/v1/evaluate/flags/{key}"))
            .token(&self.token)
            .json(&json!({ "context": context }))
            .send(&self.router)
            .await
    }

    async fn bulk(&self, context: Value, etag: Option<&str>) -> Answer {
        let mut c = call("POST", "/ofrep/v1/evaluate/flags").token(&self.token);
        if let Some(t) = etag {
            c = c.header("if-none-match", t);
        }
        c.json(&json!({ "context": context }))
            .send(&self.router)
            .await
    }
}

#[tokio::test]
async fn single_flags_evaluate_with_value_reason_variant_and_metadata() {
    let e = env().await;
    let user = json!({"targetingKey": "u-1", "plan": "free"});
    let a = e.one("new-dashboard", user.clone()).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["key"], "new-dashboard");
    assert_eq!(a.body["value"], true);
    assert_eq!(a.body["reason"], "STATIC");
    assert_eq!(a.body["metadata"]["reasonKind"], "FALLTHROUGH");
    assert_eq!(e.one("max-upload-mb", user.clone()).await.body["value"], 10);
    assert_eq!(e.one("ratio", user.clone()).await.body["value"], 0.25);
    assert_eq!(
        e.one("layout", user.clone()).await.body["value"],
        json!({"columns": 2, "dense": false})
    );
    // Targeting: an attribute of the context matches a rule.
    let free = e.one("theme", user).await;
    assert_eq!(
        (
            &free.body["value"],
            &free.body["reason"],
            &free.body["variant"]
        ),
        (&json!("light"), &json!("DEFAULT"), &json!("light"))
    );
    let pro = e
        .one("theme", json!({"targetingKey": "u-2", "plan": "pro"}))
        .await;
    assert_eq!(
        (
            &pro.body["value"],
            &pro.body["reason"],
            &pro.body["variant"]
        ),
        (&json!("dark"), &json!("TARGETING_MATCH"), &json!("dark"))
    );
    assert_eq!(pro.body["metadata"]["ruleId"], "pro-dark");
}

#[tokio::test]
async fn multi_kind_contexts_target_each_kind() {
    let e = env().await;
    let gold = json!({
        "kind": "multi",
        "user": {"targetingKey": "u-1"},
        "org": {"targetingKey": "acme", "tier": "gold"},
    });
    let a = e.one("org-beta", gold).await;
    assert_eq!(
        (&a.body["value"], &a.body["reason"]),
        (&json!(true), &json!("TARGETING_MATCH"))
    );
    let org_only = json!({"kind": "org", "targetingKey": "acme", "tier": "silver"});
    assert_eq!(e.one("org-beta", org_only).await.body["value"], false);
    // No targeting key at all: an anonymous user; a kind without a key: TARGETING_KEY_MISSING.
    assert_eq!(e.one("new-dashboard", json!({})).await.status, 200);
    let a = e
        .one("org-beta", json!({"kind": "org", "tier": "gold"}))
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["errorCode"], "TARGETING_KEY_MISSING");
    assert_eq!(a.body["key"], "org-beta");
}

#[tokio::test]
async fn errors_have_ofrep_codes_and_statuses() {
    let e = env().await;
    let a = e.one("nope", json!({"targetingKey": "u"})).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.body["errorCode"], "FLAG_NOT_FOUND");
    assert_eq!(a.body["key"], "nope");
    assert!(a.body["errorDetails"].as_str().unwrap().contains("nope"));
    let a = call("POST", "/ofrep/v1/evaluate/flags/theme")
        .token(&e.token)
        .text("{not json")
        .send(&e.router)
        .await;
    assert_eq!(
        (a.status.as_u16(), &a.body["errorCode"]),
        (400, &json!("PARSE_ERROR"))
    );
    let a = e.one("theme", json!(["a list"])).await;
    assert_eq!(
        (a.status.as_u16(), &a.body["errorCode"]),
        (400, &json!("INVALID_CONTEXT"))
    );
    let a = e.bulk(json!("text"), None).await;
    assert_eq!(
        (a.status.as_u16(), &a.body["errorCode"]),
        (400, &json!("INVALID_CONTEXT"))
    );
    assert!(a.body.get("key").is_none(), "a bulk failure names no flag");
}

#[tokio::test]
async fn tokens_go_in_bearer_or_x_api_key() {
    let e = env().await;
    let body = json!({"context": {"targetingKey": "u"}});
    let a = call("POST", "/ofrep/v1/evaluate/flags/theme")
        .json(&body)
        .send(&e.router)
        .await;
    assert_eq!(a.status, 401);
    let a = call("POST", "/ofrep/v1/evaluate/flags/theme")
        .header("x-api-key", &e.token)
        .json(&body)
        .send(&e.router)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = call("POST", "/ofrep/v1/evaluate/flags/theme")
        .header("x-api-key", "feat_nope_nope")
        .json(&body)
        .send(&e.router)
        .await;
    assert_eq!(a.status, 401);
    // Any scope grants evaluate.
    let a = call("POST", "/ofrep/v1/evaluate/flags")
        .token(&e.read_token)
        .json(&body)
        .send(&e.router)
        .await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn bulk_etags_differ_per_context_and_change_with_the_flags() {
    let e = env().await;
    let free = json!({"targetingKey": "u-1", "plan": "free"});
    let pro = json!({"targetingKey": "u-2", "plan": "pro"});
    let a = e.bulk(free.clone(), None).await;
    assert_eq!(a.status, 200);
    let flags = a.body["flags"].as_array().unwrap();
    assert_eq!(flags.len(), 6);
    let theme = flags.iter().find(|f| f["key"] == "theme").unwrap();
    assert_eq!(theme["value"], "light");
    assert_eq!(a.body["eventStreams"][0]["type"], "sse");
    assert_eq!(
        a.body["eventStreams"][0]["endpoint"]["requestUri"],
        "/ofrep/v1/events"
    );
    let tag = a.etag();
    assert_eq!(e.bulk(free.clone(), Some(&tag)).await.status, 304);
    let b = e.bulk(pro.clone(), None).await;
    assert_ne!(b.etag(), tag, "another context, another ETag");
    assert_eq!(e.bulk(pro.clone(), Some(&tag)).await.status, 200);
    // A flag changes: the ETag of every context changes.
    let mut doc = e.flags.document();
    std::sync::Arc::make_mut(doc.flags.get_mut("ratio").unwrap()).default = Some(json!(0.5));
    e.flags.replace(doc);
    let mut changed = false;
    for _ in 0..200 {
        if e.bulk(free.clone(), Some(&tag)).await.status == 200 {
            changed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(changed, "the ETag did not change with the flags");
    let a = e.bulk(free, None).await;
    let ratio = a.body["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "ratio")
        .unwrap()
        .clone();
    assert_eq!(ratio["value"], 0.5);
}

#[tokio::test]
async fn the_event_stream_tells_clients_to_refetch_after_a_change() {
    let e = env().await;
    let resp = e
        .router
        .clone()
        .oneshot(
            Request::get("/ofrep/v1/events")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the stream needs no token");
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let mut doc = e.flags.document();
    doc.flags.remove("ratio");
    e.flags.replace(doc);
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while !text.contains("refetchEvaluation") && tokio::time::Instant::now() < deadline {
        let frame = tokio::time::timeout(common::WAIT, body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    let event = text
        .split("\n\n")
        .find(|e| e.contains("refetchEvaluation"))
        .unwrap_or_else(|| panic!("no refetch event: {text}"));
    assert!(event.contains("event: message"), "{event}");
    let data: Value = serde_json::from_str(
        event
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(data["type"], "refetchEvaluation");
    assert!(data["etag"].is_string());
}

#[tokio::test]
async fn browsers_may_send_the_api_key_header_across_origins() {
    let e = env().await;
    let a = call("OPTIONS", "/ofrep/v1/evaluate/flags")
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-api-key,content-type")
        .send(&e.router)
        .await;
    assert_eq!(a.status, 200);
    let allowed = a.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("x-api-key"), "{allowed}");
    let a = call("POST", "/ofrep/v1/evaluate/flags")
        .header("origin", "https://app.example.com")
        .token(&e.token)
        .json(&json!({"context": {"targetingKey": "u"}}))
        .send(&e.router)
        .await;
    assert_eq!(
        a.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(a.headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase()
        .contains("etag"));
}
