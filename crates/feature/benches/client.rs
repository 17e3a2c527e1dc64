//! Client-level benchmarks: scenarios (a)–(g) of BENCHMARKS.md through `feature::Client`, the
//! way applications call it (`client.bool(&ctx, key, default)` and the other accessors).
//!
//! The client is built on a `MemoryProvider` holding the scenario flags, without metrics or
//! event sinks (the default). Run with `cargo bench -p feature --bench client`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run
#![allow(missing_docs)] // criterion's macros generate undocumented items

#[path = "../../feature-core/benches/common/mod.rs"]
mod common;

use common::{context, generated_document, rollout_contexts, ROLLOUT_KEYS, SCENARIOS};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use feature::engine::{parse_document, Format};
use feature::{Client, MemoryProvider};
use std::hint::black_box;
use std::time::Duration;

fn client(rt: &tokio::runtime::Runtime, yaml: &str) -> Client {
    let document = parse_document(yaml, Format::Yaml)
        .expect("the scenario file parses")
        .document;
    rt.block_on(
        Client::builder()
            .provider(MemoryProvider::with_document(document))
            .build(),
    )
    .expect("the client starts")
}

fn scenarios(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let scenarios = client(&rt, SCENARIOS);
    let ctx = context();
    let rollout = rollout_contexts();

    let mut g = c.benchmark_group("client_bool");
    for (id, key) in [
        ("a_bool_no_rules", "a-bool"),
        ("b_three_rules", "b-rules"),
        ("d1_regex", "d1-regex"),
        ("d2_semver", "d2-semver"),
        ("e_prerequisite", "e-prereq"),
    ] {
        assert!(scenarios.bool(&ctx, key, false), "{key}");
        g.bench_function(id, |b| {
            b.iter(|| scenarios.bool(black_box(&ctx), black_box(key), false))
        });
    }
    let mut i = 0usize;
    g.bench_function("c_rollout_1024_keys", |b| {
        b.iter(|| {
            i = (i + 1) & (ROLLOUT_KEYS - 1);
            scenarios.bool(&rollout[i], black_box("c-rollout"), false)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("client_typed");
    assert_eq!(scenarios.string(&ctx, "g-string", "x"), "red");
    g.bench_function("g_string", |b| {
        b.iter(|| scenarios.string(black_box(&ctx), black_box("g-string"), "x"))
    });
    g.bench_function("g_int", |b| {
        b.iter(|| scenarios.int(black_box(&ctx), black_box("g-int"), 0))
    });
    g.bench_function("g_float", |b| {
        b.iter(|| scenarios.float(black_box(&ctx), black_box("g-float"), 0.0))
    });
    g.bench_function("g_json", |b| {
        b.iter(|| {
            scenarios.json(
                black_box(&ctx),
                black_box("g-json"),
                serde_json::Value::Null,
            )
        })
    });
    g.bench_function("g_variation_detail", |b| {
        b.iter(|| scenarios.variation(black_box(&ctx), black_box("b-rules")))
    });
    g.finish();

    let hundred = client(&rt, &generated_document(100));
    let mut g = c.benchmark_group("client_all_flags");
    g.throughput(Throughput::Elements(100));
    assert_eq!(hundred.all_flags(&ctx).len(), 100);
    g.bench_function(BenchmarkId::new("f_all_flags", 100), |b| {
        b.iter(|| hundred.all_flags(black_box(&ctx)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = scenarios
}
criterion_main!(benches);
