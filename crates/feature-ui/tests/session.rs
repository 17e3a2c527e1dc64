//! Sessions and CSRF of the UI router, over a server with a memory token store (no browser:
//! the browser tests are `crates/featurectl/tests/ui_browser.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use feature::{Client, Flag, MemoryProvider};
use feature_server::{MemoryTokenStore, Server};
use feature_store::tokens::{create_token, Scope};
use feature_ui::Ui;
use http_body_util::BodyExt;
use std::sync::Arc;
use tower::ServiceExt;

async fn ui_app(secure: bool) -> (axum::Router, String, String) {
    let flags = MemoryProvider::new();
    flags.set_flag(Flag::boolean("beta", true));
    let client = Client::builder().provider(flags).build().await.unwrap();
    let tokens = Arc::new(MemoryTokenStore::new());
    let (_, reader) = create_token(tokens.as_ref(), "rita", Scope::Read, "setup")
        .await
        .unwrap();
    let (_, writer) = create_token(tokens.as_ref(), "walt", Scope::Write, "setup")
        .await
        .unwrap();
    let server = Server::builder()
        .read_only("flags come from memory")
        .tokens(tokens)
        .client(client)
        .build()
        .unwrap();
    let ui = Ui::builder(&server).secure_cookie(secure).build();
    (ui.router(), reader, writer)
}

async fn body(resp: Response<Body>) -> String {
    String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

async fn sign_in(app: &axum::Router, token: &str) -> (String, String, Response<Body>) {
    let resp = app
        .clone()
        .oneshot(
            Request::post("/ui/session")
                .header("content-type", "application/json")
                .body(Body::from(format!("{{\"token\":\"{token}\"}}")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    let id = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("feature_ui_session=")
        .to_owned();
    (id, cookie, resp)
}

#[tokio::test]
async fn sign_in_sets_an_http_only_strict_cookie_and_never_returns_the_token() {
    let (app, reader, _) = ui_app(true).await;
    let (id, cookie, resp) = sign_in(&app, &reader).await;
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Secure"), "{cookie}");
    assert!(cookie.contains("Path=/ui"), "{cookie}");
    assert_eq!(id.len(), 64);
    let text = body(resp).await;
    assert!(!text.contains(&reader));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["name"], "rita");
    assert_eq!(v["scope"], "read");
    assert_eq!(v["csrf"].as_str().unwrap().len(), 64);

    // without TLS the cookie is not Secure, unless a TLS proxy says the browser used HTTPS
    let (plain, reader, _) = ui_app(false).await;
    let (_, cookie, _) = sign_in(&plain, &reader).await;
    assert!(!cookie.contains("Secure"), "{cookie}");
    let proxied = plain
        .clone()
        .oneshot(
            Request::post("/ui/session")
                .header("content-type", "application/json")
                .header("x-forwarded-proto", "https")
                .body(Body::from(format!("{{\"token\":\"{reader}\"}}")))
                .unwrap(),
        )
        .await
        .unwrap();
    let cookie = proxied.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn sign_in_takes_json_only_and_refuses_unknown_tokens() {
    let (app, reader, _) = ui_app(true).await;
    let form = app
        .clone()
        .oneshot(
            Request::post("/ui/session")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(format!("token={reader}")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(form.headers()["content-type"], "application/problem+json");
    assert!(form.headers().get("set-cookie").is_none());
    let wrong = app
        .clone()
        .oneshot(
            Request::post("/ui/session")
                .header("content-type", "application/json")
                .body(Body::from("{\"token\":\"feat_nope\"}"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn the_api_behind_the_session_needs_the_cookie_and_changes_need_the_csrf_token() {
    let (app, _, writer) = ui_app(true).await;
    let get = |cookie: Option<String>| {
        let mut b = Request::get("/ui/api/v1/flags/beta");
        if let Some(c) = cookie {
            b = b.header("cookie", c);
        }
        app.clone().oneshot(b.body(Body::empty()).unwrap())
    };
    assert_eq!(get(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(Some("feature_ui_session=forged".into()))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let (id, _, resp) = sign_in(&app, &writer).await;
    let csrf = serde_json::from_str::<serde_json::Value>(&body(resp).await).unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_owned();
    let ok = get(Some(format!("other=1; feature_ui_session={id}")))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(body(ok).await.contains("\"key\":\"beta\""));

    let post = |header: Option<&str>| {
        let mut b = Request::post("/ui/api/v1/flags/beta/disable")
            .header("cookie", format!("feature_ui_session={id}"))
            .header("if-match", "*");
        if let Some(h) = header {
            b = b.header("x-csrf-token", h);
        }
        app.clone().oneshot(b.body(Body::empty()).unwrap())
    };
    for forged in [None, Some(""), Some("0".repeat(64).as_str())] {
        let resp = post(forged).await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{forged:?}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
    }
    // with the session's token the request reaches the API (read-only here: 405 and why)
    let resp = post(Some(&csrf)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(body(resp).await.contains("flags come from memory"));

    // sign-out needs the CSRF token too, then the session is gone
    let out = |h: Option<&str>| {
        let mut b =
            Request::delete("/ui/session").header("cookie", format!("feature_ui_session={id}"));
        if let Some(h) = h {
            b = b.header("x-csrf-token", h);
        }
        app.clone().oneshot(b.body(Body::empty()).unwrap())
    };
    assert_eq!(out(None).await.unwrap().status(), StatusCode::FORBIDDEN);
    let gone = out(Some(&csrf)).await.unwrap();
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    assert!(gone.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        get(Some(format!("feature_ui_session={id}")))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_pages_are_embedded_with_a_strict_content_security_policy() {
    let (app, _, _) = ui_app(true).await;
    for (path, kind) in [
        ("/ui/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
    ] {
        let resp = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with(kind), "{path}: {ct}");
        let csp = resp.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
    }
    let missing = app
        .clone()
        .oneshot(Request::get("/ui/secret.txt").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_preview_evaluates_the_draft_in_memory_and_needs_the_csrf_token() {
    let (app, reader, _) = ui_app(true).await;
    let (id, _, resp) = sign_in(&app, &reader).await;
    let csrf = serde_json::from_str::<serde_json::Value>(&body(resp).await).unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_owned();
    let contexts: Vec<serde_json::Value> = (0..1000)
        .map(|i| serde_json::json!({"key": format!("user-{i}")}))
        .chain([serde_json::json!({"no": "key"})])
        .collect();
    let request = serde_json::json!({
        "document": {"flags": {"beta": {
            "type": "bool",
            "fallthrough": {"rollout": {"variations": [
                {"variation": 0, "weight": 75000}, {"variation": 1, "weight": 25000}]}}
        }}},
        "flag": "beta",
        "contexts": contexts,
    });
    let post = |csrf: Option<&str>| {
        let mut b = Request::post("/ui/preview")
            .header("cookie", format!("feature_ui_session={id}"))
            .header("content-type", "application/json");
        if let Some(c) = csrf {
            b = b.header("x-csrf-token", c);
        }
        app.clone()
            .oneshot(b.body(Body::from(request.to_string())).unwrap())
    };
    assert_eq!(post(None).await.unwrap().status(), StatusCode::FORBIDDEN);
    let resp = post(Some(&csrf)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body(resp).await).unwrap();
    assert_eq!(v["total"], 1001);
    let split = v["split"].as_array().unwrap();
    let on = split
        .iter()
        .find(|s| s["value"] == true)
        .expect("some contexts get true");
    let share = on["count"].as_f64().unwrap() / 1000.0;
    assert!((share - 0.25).abs() < 0.04, "{share}");
    // the stored flag (memory provider: `beta` is true for all) did not change
    let stored = app
        .clone()
        .oneshot(
            Request::post("/ui/api/v1/evaluate")
                .header("cookie", format!("feature_ui_session={id}"))
                .header("x-csrf-token", &csrf)
                .header("content-type", "application/json")
                .body(Body::from(
                    r#"{"flags":["beta"],"context":{"key":"user-1"}}"#,
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(body(stored).await.contains("\"value\":true"));
}
