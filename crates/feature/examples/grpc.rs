//! Flags per call in a tonic server, and a tonic client calling it.
//!
//! ```text
//! cargo run -p feature --example grpc --features grpc            # serve on 127.0.0.1:50051
//! cargo run -p feature --example grpc --features grpc -- --once  # self-test, then exit
//! ```
//!
//! No code generation (and so no `protoc`): the messages are prost structs written in Rust
//! and the service is routed by hand with tonic's `Grpc` server and client APIs, exactly what
//! generated code does. With `tonic-build`, the generated server would be wrapped the same
//! way: `Server::builder().layer(FlagsLayer::new_for_grpc(client)...).add_service(GreeterServer::new(..))`.
//!
//! The caller's identity comes from metadata set by a gateway that authenticated it
//! (`x-user-id`, `x-user-plan`); that is only safe when no call can reach the service without
//! passing the gateway: see `TrustedHeaders`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature::engine::{parse_document, Format};
use feature::middleware::grpc::FlagsExt;
use feature::middleware::{FlagsLayer, TrustedHeaders};
use feature::{Client, MemoryProvider};
use http::uri::PathAndQuery;
use http::HeaderName;
use std::convert::Infallible;
use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

const FLAGS: &str = r#"
flags:
  friendly-greeting:
    type: bool
    default: false
    rules:
      - id: pro
        clauses: [{attribute: plan, operator: eq, values: [pro]}]
        variation: 1
  greeting-language:
    type: string
    default: en
    variants:
      - {name: en, value: en, weight: 50}
      - {name: fr, value: fr, weight: 50}
"#;

/// `feature.demo.HelloRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct HelloRequest {
    #[prost(string, tag = "1")]
    name: String,
}

/// `feature.demo.HelloReply`.
#[derive(Clone, PartialEq, prost::Message)]
struct HelloReply {
    #[prost(string, tag = "1")]
    message: String,
    #[prost(string, tag = "2")]
    user: String,
}

const SAY_HELLO: &str = "/feature.demo.Greeter/SayHello";

/// The handler: flags from the request's extensions and from the task-local scope.
async fn say_hello(request: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
    let flags = request
        .flags()
        .cloned()
        .ok_or_else(|| Status::internal("FlagsLayer is not installed"))?;
    let friendly = flags.bool("friendly-greeting", false);
    let name = request.into_inner().name;
    let message = match (language(), friendly) {
        ("fr", true) => format!("Bonjour {name}, ravi de vous revoir !"),
        ("fr", false) => format!("Bonjour {name}."),
        (_, true) => format!("Hello {name}, great to see you again!"),
        (_, false) => format!("Hello {name}."),
    };
    Ok(Response::new(HelloReply {
        message,
        user: flags.context().key().to_owned(),
    }))
}

/// Deep inside the call: the scope answers, no client or context passed around.
fn language() -> &'static str {
    if feature::string("greeting-language", "en") == "fr" {
        "fr"
    } else {
        "en"
    }
}

/// The `feature.demo.Greeter` service, routed by hand.
#[derive(Clone)]
struct Greeter;

impl NamedService for Greeter {
    const NAME: &'static str = "feature.demo.Greeter";
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for Greeter {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            Ok(match request.uri().path() {
                SAY_HELLO => {
                    let mut grpc =
                        tonic::server::Grpc::new(ProstCodec::<HelloReply, HelloRequest>::default());
                    grpc.unary(tower::service_fn(say_hello), request).await
                }
                _ => Status::unimplemented("no such method").into_http(),
            })
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let once = std::env::args().any(|a| a == "--once");
    let doc = parse_document(FLAGS, Format::Yaml)?.document;
    let client = Client::builder()
        .provider(MemoryProvider::with_document(doc))
        .build()
        .await?;

    let gateway = TrustedHeaders::new(HeaderName::from_static("x-user-id"))
        .attribute(HeaderName::from_static("x-user-plan"), "plan");
    let layer = FlagsLayer::new_for_grpc(client.clone()).context_extractor(gateway);

    let listener = tokio::net::TcpListener::bind(if once {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:50051"
    })
    .await?;
    let addr = listener.local_addr()?;
    let server = Server::builder()
        .layer(layer)
        .add_service(Greeter)
        .serve_with_incoming(TcpIncoming::from(listener));
    if !once {
        println!("gRPC server on {addr}: {SAY_HELLO}");
        server.await?;
        return Ok(());
    }

    // Self-test: a tonic client calls as different users, then exit.
    tokio::spawn(server);
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let calls: [(&str, &[(&str, &str)]); 4] = [
        ("Ada", &[("x-user-id", "user-1"), ("x-user-plan", "pro")]),
        ("Grace", &[("x-user-id", "user-2"), ("x-user-plan", "free")]),
        ("Linus", &[("x-user-id", "user-3")]),
        ("Anonymous", &[]),
    ];
    for (name, metadata) in calls {
        let mut request = Request::new(HelloRequest { name: name.into() });
        for (k, v) in metadata {
            request.metadata_mut().insert(*k, v.parse()?);
        }
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await?;
        let reply = grpc
            .unary(
                request,
                PathAndQuery::from_static(SAY_HELLO),
                ProstCodec::<HelloRequest, HelloReply>::default(),
            )
            .await?
            .into_inner();
        println!("{metadata:?} -> [{}] {}", reply.user, reply.message);
    }
    client.close().await;
    Ok(())
}
