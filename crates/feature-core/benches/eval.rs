//! Single-thread evaluation benchmarks, scenarios (a)–(g) of BENCHMARKS.md, and the worst case
//! the compiler's evaluation-cost bound accepts.
//!
//! Every scenario is measured twice:
//! - `snapshot`: `Snapshot::evaluate` and the typed extraction the client performs;
//! - `client-path`: the same preceded by `ArcSwap::load()`, which is what an application pays
//!   per `client.bool(..)` call. This is the headline figure.
//!
//! Contexts are built before timing. Run with `cargo bench -p feature-core --bench eval`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run
#![allow(missing_docs)] // criterion's macros generate undocumented items

mod common;

use arc_swap::ArcSwap;
use common::*;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use feature_core::{Context, Snapshot};
use serde_json::{json, Value};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

/// Benchmarks one boolean scenario on a fixed context, with and without the `ArcSwap` load.
fn bool_scenario(c: &mut Criterion, name: &str, key: &str, ctx: &Context, expected: bool) {
    let snapshot = snapshot();
    assert_eq!(bool_of(&snapshot, key, ctx, !expected), expected, "{name}");
    let shared = ArcSwap::from_pointee(snapshot.clone());
    let mut g = c.benchmark_group(name);
    g.bench_function("snapshot", |b| {
        b.iter(|| bool_of(&snapshot, black_box(key), black_box(ctx), false))
    });
    g.bench_function("client-path", |b| {
        b.iter(|| bool_of(&shared.load(), black_box(key), black_box(ctx), false))
    });
    g.finish();
}

fn scenarios_a_to_e(c: &mut Criterion) {
    let ctx = context();
    bool_scenario(c, "a_bool_no_rules", "a-bool", &ctx, true);
    bool_scenario(c, "b_three_rules", "b-rules", &ctx, true);
    bool_scenario(c, "d1_regex", "d1-regex", &ctx, true);
    bool_scenario(c, "d2_semver", "d2-semver", &ctx, true);
    bool_scenario(c, "e_prerequisite", "e-prereq", &ctx, true);
}

/// (c): a 50/50 rollout by key, cycling through 1024 distinct contexts.
fn scenario_c(c: &mut Criterion) {
    let snapshot = snapshot();
    let contexts = rollout_contexts();
    let on = contexts
        .iter()
        .filter(|ctx| bool_of(&snapshot, "c-rollout", ctx, false))
        .count();
    assert!((400..=624).contains(&on), "{on} of 1024 in the rollout");
    let shared = ArcSwap::from_pointee(snapshot.clone());
    let mut g = c.benchmark_group("c_rollout_1024_keys");
    let mut i = 0usize;
    g.bench_function("snapshot", |b| {
        b.iter(|| {
            i = (i + 1) & (ROLLOUT_KEYS - 1);
            bool_of(&snapshot, black_box("c-rollout"), &contexts[i], false)
        })
    });
    g.bench_function("client-path", |b| {
        b.iter(|| {
            i = (i + 1) & (ROLLOUT_KEYS - 1);
            bool_of(&shared.load(), black_box("c-rollout"), &contexts[i], false)
        })
    });
    g.finish();
}

/// (f): every flag of a 100-flag snapshot of mixed shapes, borrowed details and owned results.
fn scenario_f(c: &mut Criterion) {
    let snapshot = generated_snapshot(100);
    let shared = ArcSwap::from_pointee(snapshot);
    let ctx = context();
    let mut g = c.benchmark_group("f_all_flags_100");
    g.throughput(Throughput::Elements(100));
    g.bench_function("details", |b| {
        b.iter(|| {
            let snapshot = shared.load();
            let mut served = 0usize;
            for flag in snapshot.flags() {
                served += snapshot
                    .evaluate(flag.key(), black_box(&ctx))
                    .value()
                    .is_some() as usize;
            }
            served
        })
    });
    g.bench_function("owned", |b| {
        b.iter(|| {
            let snapshot = shared.load();
            snapshot
                .flags()
                .map(|flag| {
                    snapshot
                        .evaluate(flag.key(), black_box(&ctx))
                        .to_evaluation(flag.key(), Value::Null)
                })
                .collect::<Vec<_>>()
        })
    });
    g.finish();
}

/// (g): typed accessors of every kind and the detailed variant.
fn scenario_g(c: &mut Criterion) {
    let snapshot = snapshot();
    let ctx = context();
    assert_eq!(string_of(&snapshot, "g-string", &ctx, "x"), "red");
    assert_eq!(int_of(&snapshot, "g-int", &ctx, 0), 100);
    assert_eq!(float_of(&snapshot, "g-float", &ctx, 0.0), 0.75);
    let default = json!({});
    assert_eq!(
        json_of(&snapshot, "g-json", &ctx, &default),
        json!({"limit": 1000, "burst": 2000})
    );
    let detail = bool_detail(&snapshot, "b-rules", &ctx, false);
    assert_eq!(detail.variation_index, Some(1));
    assert_eq!(detail.rule_id(), Some("example-staff"));
    let shared = ArcSwap::from_pointee(snapshot);
    let s: &ArcSwap<Snapshot> = &shared;
    let mut g = c.benchmark_group("g_typed");
    g.bench_function(BenchmarkId::new("client-path", "string"), |b| {
        b.iter(|| string_of(&s.load(), black_box("g-string"), black_box(&ctx), "x"))
    });
    g.bench_function(BenchmarkId::new("client-path", "int"), |b| {
        b.iter(|| int_of(&s.load(), black_box("g-int"), black_box(&ctx), 0))
    });
    g.bench_function(BenchmarkId::new("client-path", "float"), |b| {
        b.iter(|| float_of(&s.load(), black_box("g-float"), black_box(&ctx), 0.0))
    });
    g.bench_function(BenchmarkId::new("client-path", "json"), |b| {
        b.iter(|| json_of(&s.load(), black_box("g-json"), black_box(&ctx), &default))
    });
    g.bench_function(BenchmarkId::new("client-path", "bool-detail"), |b| {
        b.iter(|| bool_detail(&s.load(), black_box("b-rules"), black_box(&ctx), false))
    });
    g.finish();
}

/// The floors the scenarios are made of: the `ArcSwap` load alone, a flag that is not found
/// (load and one map lookup), and the primitives of (c), (d1) and (d2) on their own.
fn floors(c: &mut Criterion) {
    use sha1::Digest;
    let shared: ArcSwap<Snapshot> = ArcSwap::new(Arc::new(snapshot()));
    let ctx = context();
    let mut g = c.benchmark_group("floor");
    g.bench_function("arcswap-load", |b| b.iter(|| shared.load().len()));
    g.bench_function("flag-not-found", |b| {
        b.iter(|| {
            bool_of(
                &shared.load(),
                black_box("no-such-flag"),
                black_box(&ctx),
                false,
            )
        })
    });
    // SHA-1 of a typical bucketing input ("{flagKey}.{salt}.{contextKey}", one block).
    g.bench_function("sha1-one-block", |b| {
        b.iter(|| sha1::Sha1::digest(black_box(b"c-rollout..user-0123".as_slice())))
    });
    let re = regex::Regex::new(r"^[a-z0-9.]+@example\.com$").expect("valid");
    g.bench_function("regex-is-match", |b| {
        b.iter(|| re.is_match(black_box("jo@example.com")))
    });
    g.bench_function("semver-parse", |b| {
        b.iter(|| semver::Version::parse(black_box("2.5.1")).is_ok())
    });
    g.finish();
}

/// A document of the issue's shape: segment `s{i}` lists `s{i-1}` four times, `depth` deep
/// (`s0` holds nobody), and flag `f` lists the deepest one `times` times.
fn fan_out_document(depth: usize, times: usize) -> Snapshot {
    let mut segments = serde_json::Map::new();
    segments.insert(
        "s0".into(),
        json!({"rules": [{"clauses": [{"attribute": "key", "operator": "in", "values": ["nobody"]}]}]}),
    );
    for i in 1..depth {
        segments.insert(
            format!("s{i}"),
            json!({"rules": [{"clauses": [{"attribute": "", "operator": "segmentMatch",
                                           "values": vec![format!("s{}", i - 1); 4]}]}]}),
        );
    }
    let flag = json!({"enabled": true, "default": false,
        "rules": [{"clauses": [{"attribute": "", "operator": "segmentMatch",
                                "values": vec![format!("s{}", depth - 1); times]}], "variation": 1}],
        "fallthrough": {"variation": 0}});
    let text = json!({"flags": {"f": flag}, "segments": segments}).to_string();
    feature_core::parse_document(&text, feature_core::Format::Json)
        .unwrap()
        .compile(None)
}

/// The worst case the compiler accepts: the issue's shape (a segment listed four times, nested)
/// at the largest size within the 100 000-step budget of a small document (seven levels, the
/// last listed three times: 77 823 steps; listed four times it is refused), evaluated for a
/// context in no segment, so that every reference is followed. And the compile time of the
/// issue's own document (twelve levels), which the bound refuses.
fn worst_case(c: &mut Criterion) {
    let snapshot = fan_out_document(7, 3);
    assert!(
        snapshot.diagnostics().is_empty(),
        "{:?}",
        snapshot.diagnostics()
    );
    assert!(fan_out_document(7, 4).flag("f").unwrap().is_malformed());
    let ctx = Context::new("u");
    assert!(!bool_of(&snapshot, "f", &ctx, true));
    let mut g = c.benchmark_group("worst_accepted_fan_out");
    g.bench_function("evaluate", |b| {
        b.iter(|| bool_of(&snapshot, black_box("f"), black_box(&ctx), true))
    });
    g.bench_function("parse-compile-refused-12-deep", |b| {
        b.iter(|| fan_out_document(black_box(12), 4).len())
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = floors, scenarios_a_to_e, scenario_c, scenario_f, scenario_g, worst_case
}
criterion::criterion_main!(benches);
