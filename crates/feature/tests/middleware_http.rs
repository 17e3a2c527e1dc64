//! The HTTP middleware: the three access paths agree with the client, the default trusts
//! nothing, development overrides exist only when switched on, and a real server under
//! 1 000 concurrent users keeps every request's context to itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run
#![cfg(feature = "http")]

use axum::body::Body;
use axum::routing::get;
use axum::{Extension, Router};
use feature::engine::{parse_document, Format};
use feature::middleware::axum_extract::Flags;
use feature::middleware::{DevOverrides, FlagsLayer, TrustedHeaders};
use feature::{Client, Context, Evaluation, MemoryProvider, Reason, RequestFlags};
use http::{HeaderName, Request, Response, StatusCode};
use http_body::{Body as _, Frame};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::sync::Barrier;
use tower::{service_fn, Layer, ServiceExt};

const FLAGS: &str = r#"
flags:
  new-feature:
    type: bool
    default: false
    targets: [{variation: 1, values: [user-7]}]
    rules:
      - id: pro
        clauses: [{attribute: plan, operator: eq, values: [pro]}]
        variation: 1
  rollout:
    type: string
    default: control
    variants:
      - {name: control, value: control, weight: 50}
      - {name: treatment, value: treatment, weight: 50}
  theme:
    type: string
    default: light
    variants: [{value: light}, {value: dark}]
    rules:
      - id: beta
        clauses: [{attribute: groups, operator: contains, values: [beta]}]
        variation: 1
  limit:
    type: int
    default: 10
"#;

const KEYS: [&str; 5] = ["new-feature", "rollout", "theme", "limit", "missing"];

async fn client() -> Client {
    let doc = parse_document(FLAGS, Format::Yaml).unwrap().document;
    Client::builder()
        .provider(MemoryProvider::with_document(doc))
        .build()
        .await
        .unwrap()
}

fn gateway() -> TrustedHeaders {
    TrustedHeaders::new(HeaderName::from_static("x-user-id"))
        .attribute(HeaderName::from_static("x-user-plan"), "plan")
        .groups(HeaderName::from_static("x-user-groups"))
}

/// The context the gateway headers describe, built by hand.
fn user(id: &str, plan: Option<&str>, groups: &[&str]) -> Context {
    let mut ctx = Context::new(id);
    if let Some(plan) = plan {
        ctx = ctx.with_attribute("plan", plan);
    }
    for g in groups {
        ctx = ctx.with_group(*g);
    }
    ctx
}

fn request(uri: &str, id: Option<&str>, plan: Option<&str>, groups: &[&str]) -> Request<Body> {
    let mut b = Request::get(uri);
    if let Some(id) = id {
        b = b.header("x-user-id", id);
    }
    if let Some(plan) = plan {
        b = b.header("x-user-plan", plan);
    }
    if !groups.is_empty() {
        b = b.header("x-user-groups", groups.join(","));
    }
    b.body(Body::empty()).unwrap()
}

/// Every key's evaluation by one access path.
fn evaluations(f: impl Fn(&str) -> Evaluation) -> BTreeMap<String, Evaluation> {
    KEYS.iter().map(|k| (k.to_string(), f(k))).collect()
}

/// What the handlers answer: the context each path sees and every evaluation by each path.
fn report(flags: &RequestFlags, extension: &RequestFlags) -> Value {
    let scope = feature::current_flags().expect("inside the request's scope");
    json!({
        "key": {
            "extractor": flags.context().key(),
            "extension": extension.context().key(),
            "scope": scope.context().key(),
        },
        "anonymous": flags.context().get("anonymous"),
        "extractor": evaluations(|k| flags.variation(k)),
        "extension": evaluations(|k| extension.variation(k)),
        "scope": evaluations(feature::variation),
        "typed": {
            "extractor": [flags.bool("new-feature", false), flags.string("theme", "?") == "dark", flags.int("limit", 0) == 10],
            "scope": [feature::bool("new-feature", false), feature::string("theme", "?") == "dark", feature::int("limit", 0) == 10],
        },
    })
}

async fn report_handler(flags: Flags, Extension(ext): Extension<RequestFlags>) -> String {
    report(&flags, &ext).to_string()
}

fn app(layer: FlagsLayer) -> Router {
    Router::new().route("/", get(report_handler)).layer(layer)
}

async fn body_json(response: Response<Body>) -> Value {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)))
}

/// Checks that the three paths saw `ctx` and agree with `client.variation` for it.
fn assert_agrees(report: &Value, client: &Client, ctx: &Context) {
    for path in ["extractor", "extension", "scope"] {
        assert_eq!(report["key"][path], json!(ctx.key()), "{path}: {report}");
        for k in KEYS {
            let expected = serde_json::to_value(client.variation(ctx, k)).unwrap();
            assert_eq!(report[path][k], expected, "{path} {k} for {}", ctx.key());
        }
    }
    let typed = json!([
        client.bool(ctx, "new-feature", false),
        client.string(ctx, "theme", "?") == "dark",
        client.int(ctx, "limit", 0) == 10
    ]);
    assert_eq!(report["typed"]["extractor"], typed);
    assert_eq!(report["typed"]["scope"], typed);
}

#[tokio::test]
async fn oneshot_axum_three_paths_agree_with_the_client() {
    let client = client().await;
    let app = app(FlagsLayer::new(client.clone()).context_extractor(gateway()));
    let cases = [
        user("user-7", None, &[]),
        user("user-8", Some("pro"), &[]),
        user("user-9", Some("free"), &["beta", "staff"]),
        user("user-10", None, &[]),
    ];
    for ctx in &cases {
        let plan = ctx.get("plan").and_then(Value::as_str);
        let groups: Vec<&str> = ctx
            .get("groups")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let response = app
            .clone()
            .oneshot(request("/", Some(ctx.key()), plan, &groups))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_agrees(&body_json(response).await, &client, ctx);
    }
    // The cases cover more than one answer, so agreement means something.
    assert!(client.bool(&cases[0], "new-feature", false));
    assert!(client.bool(&cases[1], "new-feature", false));
    assert!(!client.bool(&cases[3], "new-feature", false));
    assert_eq!(client.string(&cases[2], "theme", "?"), "dark");
}

#[tokio::test]
async fn oneshot_plain_tower_service_gets_extensions_and_scope() {
    let client = client().await;
    let svc = FlagsLayer::new(client.clone())
        .context_extractor(gateway())
        .layer(service_fn(|req: Request<String>| async move {
            let ext = req.extensions().get::<RequestFlags>().cloned().unwrap();
            Ok::<_, Infallible>(Response::new(report(&ext, &ext).to_string()))
        }));
    let req = Request::get("/")
        .header("x-user-id", "user-8")
        .header("x-user-plan", "pro")
        .body(String::new())
        .unwrap();
    let response = svc.oneshot(req).await.unwrap();
    let mut body = response.into_body();
    let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
        .await
        .unwrap()
        .unwrap();
    let report: Value = serde_json::from_slice(&frame.into_data().unwrap()).unwrap();
    assert_agrees(&report, &client, &user("user-8", Some("pro"), &[]));
}

#[tokio::test]
async fn async_extractor_builds_the_context() {
    let client = client().await;
    let layer = FlagsLayer::new(client.clone()).async_extractor(|parts| {
        let id = parts
            .headers
            .get("x-session")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        async move {
            tokio::task::yield_now().await; // e.g. a session store lookup
            match id.as_deref() {
                Some("s-1") => Context::new("user-8").with_attribute("plan", "pro"),
                _ => feature::middleware::anonymous_context(),
            }
        }
    });
    let app = app(layer);
    let req = Request::get("/")
        .header("x-session", "s-1")
        .body(Body::empty())
        .unwrap();
    let report = body_json(app.clone().oneshot(req).await.unwrap()).await;
    assert_agrees(&report, &client, &user("user-8", Some("pro"), &[]));
    let report = body_json(app.oneshot(request("/", None, None, &[])).await.unwrap()).await;
    assert_eq!(report["anonymous"], json!(true));
}

#[tokio::test]
async fn default_extractor_is_anonymous_and_trusts_no_header() {
    let client = client().await;
    let app = app(FlagsLayer::new(client.clone()));
    let mut keys = Vec::new();
    for _ in 0..3 {
        // Identity headers a client made up, which a gateway extractor would have read.
        let response = app
            .clone()
            .oneshot(request("/", Some("user-7"), Some("pro"), &["beta"]))
            .await
            .unwrap();
        let report = body_json(response).await;
        let key = report["key"]["scope"].as_str().unwrap().to_owned();
        assert!(key.starts_with("anon-"), "{key}");
        assert_eq!(report["anonymous"], json!(true));
        let anon = Context::new(key.clone()).with_anonymous(true);
        assert_agrees(&report, &client, &anon);
        // Not user-7's targeted value, not the pro or beta rule's.
        assert_eq!(report["scope"]["new-feature"]["value"], json!(false));
        assert_eq!(report["scope"]["theme"]["value"], json!("light"));
        keys.push(key);
    }
    keys.dedup();
    assert_eq!(keys.len(), 3, "a fresh key per request");
}

/// Every way a request could try to override a flag.
fn override_attempts(id: &str) -> Vec<Request<Body>> {
    let with = |uri: &str, header: Option<(&str, &str)>| {
        let mut b = Request::get(uri).header("x-user-id", id);
        if let Some((k, v)) = header {
            b = b.header(k, v);
        }
        b.body(Body::empty()).unwrap()
    };
    vec![
        with("/", Some(("x-feature-override", "new-feature=true"))),
        with("/", Some(("x-feature-override", "theme=\"dark\""))),
        with("/?feature-override=new-feature=true", None),
        with(
            "/?feature-override=new-feature%3Dtrue&feature-override=theme%3Ddark",
            None,
        ),
        with("/", Some(("x-flag", "new-feature=true"))),
    ]
}

#[tokio::test]
async fn overrides_from_requests_are_impossible_when_the_switch_is_off() {
    let client = client().await;
    let app = app(FlagsLayer::new(client.clone()).context_extractor(gateway()));
    let ctx = user("user-10", None, &[]);
    for req in override_attempts("user-10") {
        let uri = req.uri().clone();
        let report = body_json(app.clone().oneshot(req).await.unwrap()).await;
        assert_agrees(&report, &client, &ctx);
        for path in ["extractor", "extension", "scope"] {
            assert_eq!(report[path]["new-feature"]["value"], json!(false), "{uri}");
            assert_eq!(report[path]["theme"]["value"], json!("light"), "{uri}");
            assert_ne!(
                report[path]["new-feature"]["reason"]["kind"],
                json!("OVERRIDE")
            );
        }
    }
    assert!(client.overrides().is_empty());
}

#[tokio::test]
async fn overrides_from_requests_work_when_the_switch_is_on() {
    let client = client().await;
    let app = app(FlagsLayer::new(client.clone())
        .context_extractor(gateway())
        .dev_overrides(DevOverrides::new()));
    let ctx = user("user-10", None, &[]);
    let attempts = override_attempts("user-10");
    // The first four use the default names; the last a header the switch does not name.
    for (i, req) in attempts.into_iter().enumerate() {
        let report = body_json(app.clone().oneshot(req).await.unwrap()).await;
        for path in ["extractor", "extension", "scope"] {
            let nf = &report[path]["new-feature"];
            let theme = &report[path]["theme"];
            match i {
                0 | 2 => {
                    assert_eq!(nf["value"], json!(true), "{i} {path}");
                    assert_eq!(
                        nf["reason"],
                        serde_json::to_value(Reason::Override).unwrap()
                    );
                    assert_eq!(nf["variationIndex"], json!(1));
                }
                1 => assert_eq!(theme["value"], json!("dark")),
                3 => {
                    assert_eq!(nf["value"], json!(true));
                    assert_eq!(theme["value"], json!("dark"));
                }
                _ => assert_eq!(nf["value"], json!(false)),
            }
        }
        assert_eq!(report["typed"]["extractor"], report["typed"]["scope"]);
    }
    // Per request only: the next request and the client are untouched.
    let report = body_json(
        app.oneshot(request("/", Some("user-10"), None, &[]))
            .await
            .unwrap(),
    )
    .await;
    assert_agrees(&report, &client, &ctx);
    assert!(client.overrides().is_empty());
    assert!(!client.bool(&ctx, "new-feature", false));
}

#[tokio::test]
async fn flags_extractor_without_the_layer_is_a_server_error() {
    let app = Router::new()
        .route("/", get(|_: Flags| async { "unreachable" }))
        .route(
            "/optional",
            get(|f: Option<Flags>| async move { format!("{}", f.is_some()) }),
        );
    let response = app
        .clone()
        .oneshot(request("/", None, None, &[]))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&body).contains("FlagsLayer"));
    let response = app
        .oneshot(request("/optional", None, None, &[]))
        .await
        .unwrap();
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(body, "false");
}

/// A body that reads the scope each time it is polled: 3 frames, then the end.
struct LazyBody {
    left: u32,
}

impl http_body::Body for LazyBody {
    type Data = axum::body::Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Frame<axum::body::Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        let key = feature::current_context()
            .map(|c| c.key().to_owned())
            .unwrap_or_default();
        Poll::Ready(Some(Ok(Frame::data(format!("{key};").into()))))
    }
}

#[tokio::test]
async fn the_scope_covers_the_body_and_is_gone_after_the_response() {
    let client = client().await;
    let app = Router::new()
        .route("/stream", get(|| async { Body::new(LazyBody { left: 3 }) }))
        .route(
            "/spawn",
            get(|| async {
                let spawned = tokio::spawn(async { feature::current_flags().is_some() });
                let carried = feature::current_flags()
                    .unwrap()
                    .scope(async { feature::current_context().unwrap().key().to_owned() });
                let carried = tokio::spawn(carried);
                format!("{} {}", spawned.await.unwrap(), carried.await.unwrap())
            }),
        )
        .layer(FlagsLayer::new(client.clone()).context_extractor(gateway()));
    let response = app
        .clone()
        .oneshot(request("/stream", Some("user-1"), None, &[]))
        .await
        .unwrap();
    // The response future is done, the body not read yet: no scope here.
    assert!(feature::current_flags().is_none());
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(body, "user-1;user-1;user-1;");
    assert!(feature::current_flags().is_none());
    assert!(!feature::bool("new-feature", false));

    // Spawned tasks start outside the scope unless it is carried along.
    let response = app
        .oneshot(request("/spawn", Some("user-2"), None, &[]))
        .await
        .unwrap();
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(body, "false user-2");
}

async fn serve(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// 1 000 requests from distinct users, all inside their handlers at the same time (a barrier
/// holds them), each sees its own context and flags on every path.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_server_1000_concurrent_users_each_see_their_own_flags() {
    const N: usize = 1000;
    let client = client().await;
    let barrier = Arc::new(Barrier::new(N));
    let app = Router::new()
        .route(
            "/",
            get(
                move |flags: Flags, Extension(ext): Extension<RequestFlags>| {
                    let barrier = barrier.clone();
                    async move {
                        let before = feature::current_context().unwrap().key().to_owned();
                        barrier.wait().await; // every other request is in flight now
                        tokio::task::yield_now().await;
                        let after = feature::current_context().unwrap().key().to_owned();
                        let mut report = report(&flags, &ext);
                        report["before"] = json!(before);
                        report["after"] = json!(after);
                        report.to_string()
                    }
                },
            ),
        )
        .layer(FlagsLayer::new(client.clone()).context_extractor(gateway()));
    let addr = serve(app).await;
    let http = HttpClient::builder(TokioExecutor::new()).build_http::<Body>();

    let run = async {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..N {
            let http = http.clone();
            let id = format!("user-{i}");
            let plan = ["pro", "free", "team"][i % 3];
            let groups: &[&str] = if i % 4 == 0 { &["beta"] } else { &[] };
            let req = request(&format!("http://{addr}/"), Some(&id), Some(plan), groups);
            tasks.spawn(async move {
                let response = http.request(req).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                let report = body_json(response.map(Body::new)).await;
                (user(&id, Some(plan), groups), report)
            });
        }
        let mut seen = Vec::with_capacity(N);
        while let Some(done) = tasks.join_next().await {
            seen.push(done.unwrap());
        }
        seen
    };
    let seen = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("1 000 requests in flight at once completed");
    assert_eq!(seen.len(), N);
    let mut values = std::collections::BTreeSet::new();
    for (ctx, report) in &seen {
        assert_eq!(report["before"], json!(ctx.key()));
        assert_eq!(report["after"], json!(ctx.key()));
        assert_agrees(report, &client, ctx);
        values.insert((
            report["scope"]["new-feature"]["value"].to_string(),
            report["scope"]["rollout"]["value"].to_string(),
        ));
    }
    // Users really differ: both rollout arms and both new-feature answers occur.
    assert_eq!(values.len(), 4, "{values:?}");
}

/// Sequential requests of different users (and anonymous ones) on one keep-alive connection.
#[tokio::test]
async fn no_context_leaks_between_requests_on_one_connection() {
    let client = client().await;
    let addr = serve(app(
        FlagsLayer::new(client.clone()).context_extractor(gateway())
    ))
    .await;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Body>(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut anonymous = Vec::new();
    for i in 0..60 {
        let id = format!("user-{}", i % 7);
        let (id, ctx) = match i % 3 {
            0 => (None, None),
            1 => (Some(id.clone()), Some(user(&id, Some("pro"), &[]))),
            _ => (Some(id.clone()), Some(user(&id, None, &[]))),
        };
        let plan = ctx
            .as_ref()
            .and_then(|c| c.get("plan"))
            .and_then(Value::as_str);
        let req = request(&format!("http://{addr}/"), id.as_deref(), plan, &[]);
        sender.ready().await.unwrap();
        let report = body_json(sender.send_request(req).await.unwrap().map(Body::new)).await;
        match ctx {
            Some(ctx) => assert_agrees(&report, &client, &ctx),
            None => {
                assert_eq!(report["anonymous"], json!(true));
                anonymous.push(report["key"]["scope"].as_str().unwrap().to_owned());
            }
        }
    }
    let n = anonymous.len();
    anonymous.sort();
    anonymous.dedup();
    assert_eq!(anonymous.len(), n, "anonymous keys are never reused");
}
