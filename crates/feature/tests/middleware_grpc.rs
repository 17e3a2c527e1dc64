//! The gRPC middleware with a real tonic server and client: extensions and the task-local
//! agree with the client, server streams keep the scope, the default trusts no metadata,
//! development overrides exist only when switched on, and 1 000 concurrent calls of distinct
//! users each see their own flags.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run
#![cfg(feature = "grpc")]
// tonic handlers return `Result<_, Status>`; `Status` is large by design.
#![allow(clippy::result_large_err)]

use feature::engine::{parse_document, Format};
use feature::middleware::grpc::{FlagsExt, FlagsInterceptor};
use feature::middleware::{DevOverrides, FlagsLayer, TrustedHeaders};
use feature::{Client, Context, Evaluation, MemoryProvider, RequestFlags};
use http::uri::PathAndQuery;
use http::HeaderName;
use prost::Message;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::sync::Barrier;
use tonic::codegen::tokio_stream::{self, Stream, StreamExt};
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::Status;
use tonic_prost::ProstCodec;
use tower::{service_fn, Layer, Service, ServiceExt};

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
"#;

const KEYS: [&str; 3] = ["new-feature", "rollout", "missing"];

#[derive(Clone, PartialEq, Message)]
struct Query {
    #[prost(string, tag = "1")]
    note: String,
}

#[derive(Clone, PartialEq, Message)]
struct Report {
    #[prost(string, tag = "1")]
    json: String,
}

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
}

fn user(id: &str, plan: Option<&str>) -> Context {
    match plan {
        Some(p) => Context::new(id).with_attribute("plan", p),
        None => Context::new(id),
    }
}

fn evaluations(f: impl Fn(&str) -> Evaluation) -> BTreeMap<String, Evaluation> {
    KEYS.iter().map(|k| (k.to_string(), f(k))).collect()
}

/// What a handler sees: its extension's and its scope's context and evaluations.
fn report(ext: Option<&RequestFlags>) -> Value {
    let scope = feature::current_flags();
    json!({
        "key": {
            "extension": ext.map(|f| f.context().key()),
            "scope": scope.as_ref().map(|f| f.context().key()),
        },
        "anonymous": ext.and_then(|f| f.context().get("anonymous")),
        "extension": ext.map(|f| evaluations(|k| f.variation(k))),
        "scope": scope.map(|_| evaluations(feature::variation)),
    })
}

fn assert_agrees(report: &Value, client: &Client, ctx: &Context, paths: &[&str]) {
    for path in paths {
        assert_eq!(report["key"][path], json!(ctx.key()), "{path}: {report}");
        for k in KEYS {
            let expected = serde_json::to_value(client.variation(ctx, k)).unwrap();
            assert_eq!(report[path][k], expected, "{path} {k} for {}", ctx.key());
        }
    }
}

/// A tonic service written by hand (no code generation): `Check` (unary) and `Watch`
/// (server streaming, three messages produced lazily).
#[derive(Clone, Default)]
struct TestService {
    barrier: Option<Arc<Barrier>>,
}

impl NamedService for TestService {
    const NAME: &'static str = "feature.test.Flags";
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl TestService {
    async fn check(
        self,
        request: tonic::Request<Query>,
    ) -> Result<tonic::Response<Report>, Status> {
        let before = feature::current_context().map(|c| c.key().to_owned());
        if let Some(b) = &self.barrier {
            b.wait().await; // every other call is in flight now
        }
        tokio::task::yield_now().await;
        let mut report = report(request.flags());
        report["before"] = json!(before);
        report["after"] = json!(feature::current_context().map(|c| c.key().to_owned()));
        Ok(tonic::Response::new(Report {
            json: report.to_string(),
        }))
    }

    async fn watch(
        request: tonic::Request<Query>,
    ) -> Result<tonic::Response<impl Stream<Item = Result<Report, Status>> + Send>, Status> {
        drop(request);
        // Each message is made when the response body is polled, after this handler returned.
        let stream = tokio_stream::iter(0..3).map(|i| {
            let key = feature::current_context().map(|c| c.key().to_owned());
            Ok(Report {
                json: json!({"i": i, "key": key, "new-feature": feature::variation("new-feature")})
                    .to_string(),
            })
        });
        Ok(tonic::Response::new(stream))
    }
}

impl Service<http::Request<tonic::body::Body>> for TestService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<Report, Query>::default());
            Ok(match req.uri().path() {
                "/feature.test.Flags/Check" => {
                    grpc.unary(service_fn(move |r| this.clone().check(r)), req)
                        .await
                }
                "/feature.test.Flags/Watch" => {
                    grpc.server_streaming(service_fn(TestService::watch), req)
                        .await
                }
                _ => Status::unimplemented("no such method").into_http(),
            })
        })
    }
}

async fn listen() -> (TcpIncoming, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (TcpIncoming::from(listener), addr)
}

async fn serve(layer: FlagsLayer<tonic::Request<()>>, service: TestService) -> SocketAddr {
    let (incoming, addr) = listen().await;
    let server = Server::builder()
        .max_concurrent_streams(2000)
        .layer(layer)
        .add_service(service)
        .serve_with_incoming(incoming);
    tokio::spawn(async move { server.await.unwrap() });
    addr
}

async fn connect(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn call_request(
    id: Option<&str>,
    plan: Option<&str>,
    extra: &[(&'static str, &str)],
) -> tonic::Request<Query> {
    let mut req = tonic::Request::new(Query::default());
    let md = req.metadata_mut();
    if let Some(id) = id {
        md.insert("x-user-id", id.parse().unwrap());
    }
    if let Some(plan) = plan {
        md.insert("x-user-plan", plan.parse().unwrap());
    }
    for (k, v) in extra {
        md.append(*k, v.parse().unwrap());
    }
    req
}

async fn check(channel: &Channel, req: tonic::Request<Query>) -> Value {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let response = grpc
        .unary(
            req,
            PathAndQuery::from_static("/feature.test.Flags/Check"),
            ProstCodec::<Query, Report>::default(),
        )
        .await
        .unwrap();
    serde_json::from_str(&response.into_inner().json).unwrap()
}

#[tokio::test]
async fn oneshot_layer_gives_extensions_and_scope() {
    let client = client().await;
    let svc = FlagsLayer::new_for_grpc(client.clone())
        .context_extractor(gateway())
        .layer(TestService::default());
    // A gRPC request on the wire: a 5-byte frame header and the encoded message.
    let msg = Query::default().encode_to_vec();
    let mut body = vec![0u8];
    body.extend((msg.len() as u32).to_be_bytes());
    body.extend(msg);
    let req = http::Request::post("/feature.test.Flags/Check")
        .header("content-type", "application/grpc")
        .header("x-user-id", "user-9")
        .header("x-user-plan", "pro")
        .body(tonic::body::Body::new(axum::body::Body::from(body)))
        .unwrap();
    let response = svc.oneshot(req).await.unwrap();
    assert!(feature::current_flags().is_none());
    let bytes = axum::body::to_bytes(axum::body::Body::new(response.into_body()), 1 << 20)
        .await
        .unwrap();
    let report = Report::decode(&bytes[5..]).unwrap();
    let report: Value = serde_json::from_str(&report.json).unwrap();
    assert_agrees(
        &report,
        &client,
        &user("user-9", Some("pro")),
        &["extension", "scope"],
    );
    assert!(feature::current_flags().is_none());
}

#[tokio::test]
async fn oneshot_interceptor_puts_flags_in_extensions() {
    use tonic::service::Interceptor;
    let client = client().await;
    let mut interceptor = FlagsInterceptor::new(client.clone()).context_extractor(gateway());
    let req = interceptor
        .call(call_request(Some("user-7"), None, &[]).map(drop))
        .unwrap();
    let flags = req.flags().unwrap();
    assert_eq!(flags.context().key(), "user-7");
    let ctx = user("user-7", None);
    for k in KEYS {
        assert_eq!(flags.variation(k), client.variation(&ctx, k));
    }
    // Default: anonymous, identity metadata ignored.
    let mut interceptor = FlagsInterceptor::new(client.clone());
    let req = interceptor
        .call(
            call_request(
                Some("user-7"),
                None,
                &[("x-feature-override", "new-feature=true")],
            )
            .map(drop),
        )
        .unwrap();
    let flags = req.flags().unwrap();
    assert!(flags.context().key().starts_with("anon-"));
    assert!(!flags.bool("new-feature", false));
}

#[tokio::test]
async fn real_server_unary_and_stream_keep_each_calls_context() {
    let client = client().await;
    let addr = serve(
        FlagsLayer::new_for_grpc(client.clone()).context_extractor(gateway()),
        TestService::default(),
    )
    .await;
    let channel = connect(addr).await;
    // Sequential calls of different users on one connection: nothing carries over.
    for i in 0..30 {
        let id = format!("user-{}", i % 9);
        let plan = (i % 2 == 0).then_some("pro");
        let report = check(&channel, call_request(Some(&id), plan, &[])).await;
        assert_agrees(&report, &client, &user(&id, plan), &["extension", "scope"]);
        assert_eq!(report["before"], json!(id));
        assert_eq!(report["after"], json!(id));
    }
    // A server stream: every message sees the caller's context.
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let mut stream = grpc
        .server_streaming(
            call_request(Some("user-7"), None, &[]),
            PathAndQuery::from_static("/feature.test.Flags/Watch"),
            ProstCodec::<Query, Report>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    let expected =
        serde_json::to_value(client.variation(&user("user-7", None), "new-feature")).unwrap();
    let mut n = 0;
    while let Some(msg) = stream.message().await.unwrap() {
        let v: Value = serde_json::from_str(&msg.json).unwrap();
        assert_eq!(v["i"], json!(n));
        assert_eq!(v["key"], json!("user-7"));
        assert_eq!(v["new-feature"], expected);
        n += 1;
    }
    assert_eq!(n, 3);
    assert!(feature::current_flags().is_none());
}

#[tokio::test]
async fn real_server_default_is_anonymous_and_overrides_need_the_switch() {
    let client = client().await;
    let attempt = [("x-feature-override", "new-feature=true")];
    // Default layer: identity and override metadata are ignored.
    let channel = connect(
        serve(
            FlagsLayer::new_for_grpc(client.clone()),
            TestService::default(),
        )
        .await,
    )
    .await;
    let report = check(
        &channel,
        call_request(Some("user-7"), Some("pro"), &attempt),
    )
    .await;
    let key = report["key"]["scope"].as_str().unwrap().to_owned();
    assert!(key.starts_with("anon-"), "{key}");
    assert_eq!(report["anonymous"], json!(true));
    assert_agrees(
        &report,
        &client,
        &Context::new(key).with_anonymous(true),
        &["extension", "scope"],
    );
    assert_eq!(report["scope"]["new-feature"]["value"], json!(false));

    // Gateway identity, switch off: the override is impossible.
    let channel = connect(
        serve(
            FlagsLayer::new_for_grpc(client.clone()).context_extractor(gateway()),
            TestService::default(),
        )
        .await,
    )
    .await;
    let report = check(&channel, call_request(Some("user-10"), None, &attempt)).await;
    assert_agrees(
        &report,
        &client,
        &user("user-10", None),
        &["extension", "scope"],
    );
    assert_eq!(report["scope"]["new-feature"]["value"], json!(false));

    // Switch on: the override applies, to this call only.
    let layer = FlagsLayer::new_for_grpc(client.clone())
        .context_extractor(gateway())
        .dev_overrides(DevOverrides::new());
    let channel = connect(serve(layer, TestService::default()).await).await;
    let report = check(&channel, call_request(Some("user-10"), None, &attempt)).await;
    for path in ["extension", "scope"] {
        assert_eq!(report[path]["new-feature"]["value"], json!(true));
        assert_eq!(
            report[path]["new-feature"]["reason"]["kind"],
            json!("OVERRIDE")
        );
    }
    let report = check(&channel, call_request(Some("user-10"), None, &[])).await;
    assert_agrees(
        &report,
        &client,
        &user("user-10", None),
        &["extension", "scope"],
    );
    assert!(client.overrides().is_empty());
}

#[tokio::test]
async fn real_server_with_interceptor_gives_extensions_but_no_scope() {
    let client = client().await;
    let (incoming, addr) = listen().await;
    let service = InterceptedService::new(
        TestService::default(),
        FlagsInterceptor::new(client.clone()).context_extractor(gateway()),
    );
    tokio::spawn(
        Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming),
    );
    let channel = connect(addr).await;
    let report = check(&channel, call_request(Some("user-8"), Some("pro"), &[])).await;
    assert_agrees(
        &report,
        &client,
        &user("user-8", Some("pro")),
        &["extension"],
    );
    assert_eq!(report["key"]["scope"], Value::Null);
}

#[tokio::test]
async fn async_extractor_reads_metadata() {
    let client = client().await;
    let layer = FlagsLayer::new_for_grpc(client.clone()).async_extractor(|req| {
        let token = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        async move {
            tokio::task::yield_now().await; // e.g. a token introspection call
            match token.as_deref() {
                Some("Bearer good") => Context::new("user-7"),
                _ => feature::middleware::anonymous_context(),
            }
        }
    });
    let channel = connect(serve(layer, TestService::default()).await).await;
    let report = check(
        &channel,
        call_request(None, None, &[("authorization", "Bearer good")]),
    )
    .await;
    assert_agrees(
        &report,
        &client,
        &user("user-7", None),
        &["extension", "scope"],
    );
    let report = check(&channel, call_request(Some("user-7"), None, &[])).await;
    assert_eq!(report["anonymous"], json!(true));
}

/// 1 000 calls from distinct users over one HTTP/2 connection, all inside their handlers at
/// once (a barrier holds them): each sees its own context and flags.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_server_1000_concurrent_users_each_see_their_own_flags() {
    const N: usize = 1000;
    let client = client().await;
    let service = TestService {
        barrier: Some(Arc::new(Barrier::new(N))),
    };
    let addr = serve(
        FlagsLayer::new_for_grpc(client.clone()).context_extractor(gateway()),
        service,
    )
    .await;
    let channel = connect(addr).await;
    let run = async {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..N {
            let channel = channel.clone();
            tasks.spawn(async move {
                let id = format!("user-{i}");
                let plan = ["pro", "free", "team"][i % 3];
                let report = check(&channel, call_request(Some(&id), Some(plan), &[])).await;
                (user(&id, Some(plan)), report)
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
        .expect("1 000 calls in flight at once completed");
    assert_eq!(seen.len(), N);
    let mut values = std::collections::BTreeSet::new();
    for (ctx, report) in &seen {
        assert_eq!(report["before"], json!(ctx.key()));
        assert_eq!(report["after"], json!(ctx.key()));
        assert_agrees(report, &client, ctx, &["extension", "scope"]);
        values.insert((
            report["scope"]["new-feature"]["value"].to_string(),
            report["scope"]["rollout"]["value"].to_string(),
        ));
    }
    assert_eq!(values.len(), 4, "{values:?}");
}
