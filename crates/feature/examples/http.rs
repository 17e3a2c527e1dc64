//! Flags per request in an axum server.
//!
//! ```text
//! cargo run -p feature --example http --features http            # serve on 127.0.0.1:3000
//! cargo run -p feature --example http --features http -- --once  # self-test, then exit
//! ```
//!
//! The user's identity comes from headers a gateway in front of the service sets after it
//! authenticated the caller (`x-user-id`, `x-user-plan`, `x-user-groups`). That is only safe
//! when no request can reach the service without passing the gateway: see `TrustedHeaders`.
//! Try it:
//!
//! ```text
//! curl -H 'x-user-id: user-1' -H 'x-user-plan: pro' localhost:3000/
//! curl -H 'x-user-id: user-2' -H 'x-user-groups: beta-testers' localhost:3000/checkout
//! curl localhost:3000/                                      # anonymous
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use axum::body::Body;
use axum::routing::get;
use axum::{Extension, Router};
use feature::engine::{parse_document, Format};
use feature::middleware::axum_extract::Flags;
use feature::middleware::{FlagsLayer, TrustedHeaders};
use feature::{Client, MemoryProvider, RequestFlags};
use http::{HeaderName, Request};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use std::error::Error;

const FLAGS: &str = r#"
flags:
  new-dashboard:
    description: The redesigned dashboard, for the pro plan.
    type: bool
    default: false
    rules:
      - id: pro
        clauses: [{attribute: plan, operator: eq, values: [pro]}]
        variation: 1
  new-checkout:
    description: The new checkout, for beta testers first.
    type: bool
    default: false
    rules:
      - id: beta
        clauses: [{attribute: groups, operator: contains, values: [beta-testers]}]
        variation: 1
  theme:
    type: string
    default: light
    variants:
      - {name: light, value: light, weight: 50}
      - {name: dark, value: dark, weight: 50}
"#;

/// The axum extractor: `flags.bool(...)`.
async fn home(flags: Flags) -> String {
    let dashboard = if flags.bool("new-dashboard", false) {
        "new"
    } else {
        "classic"
    };
    format!(
        "hello {}: {dashboard} dashboard, {} theme\n",
        flags.context().key(),
        flags.string("theme", "light")
    )
}

/// The task-local scope: code deep inside the request needs neither client nor context.
async fn checkout() -> String {
    format!("checkout: {}\n", checkout_flow())
}

fn checkout_flow() -> &'static str {
    if feature::bool("new-checkout", false) {
        "new flow"
    } else {
        "old flow"
    }
}

/// Request extensions, as a plain tower or hyper service would read them.
async fn debug(Extension(flags): Extension<RequestFlags>) -> String {
    let all = serde_json::to_string(&flags.all_flags()).unwrap_or_default();
    format!("{} {all}\n", flags.context().key())
}

fn app(client: Client) -> Router {
    // Identity from a trusted gateway's headers; without an extractor every request would be
    // anonymous, and nothing a client sends would be read.
    let gateway = TrustedHeaders::new(HeaderName::from_static("x-user-id"))
        .attribute(HeaderName::from_static("x-user-plan"), "plan")
        .groups(HeaderName::from_static("x-user-groups"));
    Router::new()
        .route("/", get(home))
        .route("/checkout", get(checkout))
        .route("/debug", get(debug))
        .layer(FlagsLayer::new(client).context_extractor(gateway))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let once = std::env::args().any(|a| a == "--once");
    let doc = parse_document(FLAGS, Format::Yaml)?.document;
    let client = Client::builder()
        .provider(MemoryProvider::with_document(doc))
        .build()
        .await?;

    let addr = if once {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3000"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let server = axum::serve(listener, app(client.clone()));
    if !once {
        println!("listening on http://{addr}");
        server.await?;
        return Ok(());
    }

    // Self-test: a few requests as different users, then exit.
    tokio::spawn(async move { server.await });
    let http = HttpClient::builder(TokioExecutor::new()).build_http::<Body>();
    let requests: [(&str, &[(&str, &str)]); 5] = [
        ("/", &[("x-user-id", "user-1"), ("x-user-plan", "pro")]),
        ("/", &[("x-user-id", "user-2"), ("x-user-plan", "free")]),
        (
            "/checkout",
            &[("x-user-id", "user-2"), ("x-user-groups", "beta-testers")],
        ),
        ("/checkout", &[("x-user-id", "user-3")]),
        // Overrides from requests are off unless `dev_overrides` is set: this changes nothing.
        (
            "/debug",
            &[
                ("x-user-id", "user-3"),
                ("x-feature-override", "new-checkout=true"),
            ],
        ),
    ];
    for (path, headers) in requests {
        let mut request = Request::get(format!("http://{addr}{path}"));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = http.request(request.body(Body::empty())?).await?;
        let status = response.status();
        let body = axum::body::to_bytes(Body::new(response.into_body()), 1 << 16).await?;
        print!(
            "GET {path} {headers:?} -> {status} {}",
            String::from_utf8_lossy(&body)
        );
        if !status.is_success() {
            return Err(format!("{path}: {status}").into());
        }
    }
    let response = http
        .request(Request::get(format!("http://{addr}/")).body(Body::empty())?)
        .await?;
    let body = axum::body::to_bytes(Body::new(response.into_body()), 1 << 16).await?;
    print!("GET / (no identity) -> {}", String::from_utf8_lossy(&body));
    client.close().await;
    Ok(())
}
