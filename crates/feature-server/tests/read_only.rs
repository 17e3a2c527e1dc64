//! A server over a read-only source (a flag file): reads and evaluations work, writes answer
//! 405 problem documents saying why; the OpenAPI document covers every route; tokens revoked
//! through the API stop at once; the bootstrap token is an admin named `bootstrap`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

mod common;

use axum::http::StatusCode;
use common::call;
use feature::{Client, FileProvider};
use feature_server::{MemoryTokenStore, Server};
use feature_store::tokens::{create_token, Scope};
use serde_json::json;
use std::sync::Arc;

const FLAGS: &str = "flags:\n  beta:\n    type: bool\n    default: true\n  theme:\n    default: dark\n    enabled: false\nsegments:\n  staff:\n    included: [u1]\n";
const BOOT: &str = "bootstrap-secret-0123456789";

async fn server() -> (tempfile::TempDir, axum::Router, Arc<MemoryTokenStore>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.yaml");
    std::fs::write(&path, FLAGS).unwrap();
    let client = Client::builder()
        .provider(FileProvider::new(&path))
        .build()
        .await
        .unwrap();
    let tokens = Arc::new(MemoryTokenStore::new());
    let server = Server::builder()
        .read_only("flags come from the file flags.yaml")
        .tokens(tokens.clone())
        .client(client)
        .bootstrap_token(Some(BOOT.into()))
        .build()
        .unwrap();
    (dir, server.router(), tokens)
}

#[tokio::test]
async fn a_read_only_server_serves_reads_and_refuses_writes_with_the_reason() {
    let (_dir, r, tokens) = server().await;
    let (_, read) = create_token(tokens.as_ref(), "r", Scope::Read, "t")
        .await
        .unwrap();
    let (_, write) = create_token(tokens.as_ref(), "w", Scope::Write, "t")
        .await
        .unwrap();
    let a = call("GET", "/api/v1/flags/beta")
        .token(&read)
        .send(&r)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["default"], true);
    assert!(a.headers.contains_key("etag"));
    let list = call("GET", "/api/v1/flags?enabled=false")
        .token(&read)
        .send(&r)
        .await;
    assert_eq!(list.body["items"][0]["key"], "theme", "{}", list.text);
    let seg = call("GET", "/api/v1/segments/staff")
        .token(&read)
        .send(&r)
        .await;
    assert_eq!(seg.body["included"], json!(["u1"]));
    let e = call("POST", "/api/v1/evaluate")
        .token(&read)
        .json(&json!({"flags": ["beta"], "context": {"key": "u"}}))
        .send(&r)
        .await;
    assert_eq!(e.body["evaluations"][0]["value"], true, "{}", e.text);
    for (m, path) in [
        ("PUT", "/api/v1/flags/beta"),
        ("DELETE", "/api/v1/flags/beta"),
        ("POST", "/api/v1/flags/beta/enable"),
        ("POST", "/api/v1/flags/beta/disable"),
        ("POST", "/api/v1/flags/beta/history/1/restore"),
        ("PUT", "/api/v1/segments/staff"),
        ("DELETE", "/api/v1/segments/staff"),
    ] {
        let a = call(m, path)
            .token(&write)
            .header("if-match", "*")
            .json(&json!({"type": "bool"}))
            .send(&r)
            .await;
        assert_eq!(
            a.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{m} {path}: {}",
            a.text
        );
        assert_eq!(a.content_type(), "application/problem+json");
        assert_eq!(a.body["readOnly"], "flags come from the file flags.yaml");
        assert!(a.headers.contains_key("allow"));
    }
}

#[tokio::test]
async fn the_bootstrap_token_creates_tokens_and_revocation_is_immediate() {
    let (_dir, r, _tokens) = server().await;
    let a = call("POST", "/api/v1/tokens")
        .token(BOOT)
        .json(&json!({"name": "ci", "scope": "read"}))
        .send(&r)
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.body["createdBy"], "bootstrap");
    let token = a.body["token"].as_str().unwrap().to_owned();
    let id = a.body["id"].as_str().unwrap().to_owned();
    let ok = call("GET", "/api/v1/flags").token(&token).send(&r).await;
    assert_eq!(ok.status, StatusCode::OK);
    let list = call("GET", "/api/v1/tokens").token(BOOT).send(&r).await;
    assert_eq!(list.body["items"][0]["name"], "ci");
    assert!(!list.text.contains(&token[22..]), "no secret is listed");
    let bad = call("POST", "/api/v1/tokens")
        .token(BOOT)
        .json(&json!({"name": "x", "scope": "root"}))
        .send(&r)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // Revoked through the API: refused at once, though the token was just cached.
    let a = call("DELETE", &format!("/api/v1/tokens/{id}"))
        .token(BOOT)
        .send(&r)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let gone = call("GET", "/api/v1/flags").token(&token).send(&r).await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
    let again = call("DELETE", &format!("/api/v1/tokens/{id}"))
        .token(BOOT)
        .send(&r)
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    // A near miss of the bootstrap token is nothing.
    let near = call("GET", "/api/v1/flags")
        .token(&format!("{BOOT}x"))
        .send(&r)
        .await;
    assert_eq!(near.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let (_dir, r, _tokens) = server().await;
    let a = call("GET", "/api/v1/openapi.json")
        .token(BOOT)
        .send(&r)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let doc = a.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    let routes = feature_server::routes();
    for route in &routes {
        let method = route.method.as_str().to_lowercase();
        let op = &doc["paths"][route.path][&method];
        assert!(
            op.is_object(),
            "{} {} is not in the document",
            route.method,
            route.path
        );
        let responses = op["responses"].as_object().unwrap();
        match route.scope {
            Some(scope) => {
                assert_eq!(
                    op["security"][0]["bearer"][0],
                    scope.as_str(),
                    "{} {}: the scope documented",
                    route.method,
                    route.path
                );
                assert!(
                    responses.contains_key("401"),
                    "{} {}",
                    route.method,
                    route.path
                );
            }
            None => assert!(op.get("security").is_none()),
        }
        // The route exists in the router: it does not answer 404 for an unknown path.
        let probe = call(
            route.method.as_str(),
            &route.path.replace("{key}", "beta").replace("{id}", "1"),
        )
        .token(BOOT)
        .send(&r)
        .await;
        assert!(
            !probe.body["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("no route")),
            "{} {} is not routed: {}",
            route.method,
            route.path,
            probe.text
        );
    }
    // And nothing documented is missing from the router.
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, routes.len());
}
