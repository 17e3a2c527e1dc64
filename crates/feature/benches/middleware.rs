//! Per-request overhead of the flags middleware (extractor + extensions + scope), and the cost
//! of evaluating through the scope instead of the client.
//!
//! `cargo bench -p feature --features http,grpc --bench middleware`
//!
//! Each request goes through `poll_ready` + `call` and one poll of the response future (the
//! inner service answers at once), with a no-op waker: no runtime, no I/O, so the difference
//! with `baseline` is what the layer adds. Building the request is not timed; dropping the
//! response (and with it the request's flags) is.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use feature::engine::{parse_document, Format};
use feature::middleware::{FlagsLayer, TrustedHeaders};
use feature::{Client, Context, MemoryProvider, RequestFlags};
use http::{HeaderName, Request, Response};
use std::convert::Infallible;
use std::future::{ready, Future};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Poll, Waker};
use tower::{service_fn, Layer, Service};

const FLAGS: &str = r#"
flags:
  new-feature:
    type: bool
    default: false
    rules:
      - id: pro
        clauses: [{attribute: plan, operator: eq, values: [pro]}]
        variation: 1
"#;

fn client(rt: &tokio::runtime::Runtime) -> Client {
    let doc = parse_document(FLAGS, Format::Yaml)
        .map(|p| p.document)
        .unwrap_or_default();
    rt.block_on(
        Client::builder()
            .provider(MemoryProvider::with_document(doc))
            .build(),
    )
    .unwrap_or_else(|e| panic!("client: {e}"))
}

fn request() -> Request<()> {
    Request::get("/checkout?item=42")
        .header("x-user-id", "user-123")
        .header("x-user-plan", "pro")
        .header("x-user-groups", "beta-testers, staff")
        .header("user-agent", "bench/1.0")
        .header("accept", "*/*")
        .body(())
        .unwrap_or_default()
}

/// One request through `svc`, polled once: every service here answers at once.
fn once<S>(svc: &mut S, req: Request<()>) -> S::Response
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = std::task::Context::from_waker(Waker::noop());
    if svc.poll_ready(&mut cx).is_pending() {
        unreachable!("ready services only");
    }
    match pin!(svc.call(req)).poll(&mut cx) {
        Poll::Ready(Ok(r)) => r,
        Poll::Ready(Err(e)) => unreachable!("{e:?}"),
        Poll::Pending => unreachable!("ready services only"),
    }
}

fn inner() -> impl Service<Request<()>, Response = Response<()>, Error = Infallible> + Clone {
    service_fn(|req: Request<()>| {
        black_box(req);
        ready(Ok::<_, Infallible>(Response::new(())))
    })
}

fn gateway() -> TrustedHeaders {
    TrustedHeaders::new(HeaderName::from_static("x-user-id"))
        .attribute(HeaderName::from_static("x-user-plan"), "plan")
        .groups(HeaderName::from_static("x-user-groups"))
}

fn layer_overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let client = client(&rt);
    let mut g = c.benchmark_group("middleware");

    let mut baseline = inner();
    g.bench_function("baseline (no layer)", |b| {
        b.iter_batched(request, |r| once(&mut baseline, r), BatchSize::SmallInput)
    });

    let mut svc = FlagsLayer::new(client.clone()).layer(inner());
    g.bench_function("http/anonymous (default)", |b| {
        b.iter_batched(request, |r| once(&mut svc, r), BatchSize::SmallInput)
    });

    let mut svc = FlagsLayer::new(client.clone())
        .extractor(|_| Context::new("user-123"))
        .layer(inner());
    g.bench_function("http/closure (Context::new)", |b| {
        b.iter_batched(request, |r| once(&mut svc, r), BatchSize::SmallInput)
    });

    let mut svc = FlagsLayer::new(client.clone())
        .context_extractor(gateway())
        .layer(inner());
    g.bench_function("http/trusted headers (key, plan, 2 groups)", |b| {
        b.iter_batched(request, |r| once(&mut svc, r), BatchSize::SmallInput)
    });

    let mut svc = FlagsLayer::new(client.clone())
        .async_extractor(|_| async { Context::new("user-123") })
        .layer(inner());
    g.bench_function("http/async closure (Context::new)", |b| {
        b.iter_batched(request, |r| once(&mut svc, r), BatchSize::SmallInput)
    });

    #[cfg(feature = "grpc")]
    {
        let mut svc = FlagsLayer::new_for_grpc(client.clone())
            .context_extractor(gateway())
            .layer(inner());
        g.bench_function("grpc/trusted headers (key, plan, 2 groups)", |b| {
            b.iter_batched(request, |r| once(&mut svc, r), BatchSize::SmallInput)
        });
    }
    g.finish();
}

fn evaluation(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let client = client(&rt);
    let ctx = Context::new("user-123").with_attribute("plan", "pro");
    let flags = RequestFlags::new(client.clone(), ctx.clone());
    let mut g = c.benchmark_group("evaluate bool");
    g.bench_function("client.bool(&ctx, ..)", |b| {
        b.iter(|| client.bool(black_box(&ctx), black_box("new-feature"), false))
    });
    g.bench_function("RequestFlags::bool (extensions, Flags)", |b| {
        b.iter(|| flags.bool(black_box("new-feature"), false))
    });
    flags.clone().sync_scope(|| {
        g.bench_function("feature::bool (task-local scope)", |b| {
            b.iter(|| feature::bool(black_box("new-feature"), false))
        });
    });
    g.bench_function("feature::bool (outside a scope)", |b| {
        b.iter(|| feature::bool(black_box("new-feature"), false))
    });
    g.finish();
}

criterion_group!(benches, layer_overhead, evaluation);
criterion_main!(benches);
