//! Heap allocations per evaluation, counted by a global allocator: none for `bool`, `int` and
//! `float` in every benchmark scenario (rollouts over many keys and regular expressions
//! included), at most one for `string` (the returned `String`).
//!
//! Each scenario is evaluated once before counting: the first use of a regular expression on a
//! thread creates its matching cache, and the first `ArcSwap::load` on a thread registers it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

#[path = "../benches/common/mod.rs"]
mod common;

use arc_swap::ArcSwap;
use common::*;
use feature_core::{Context, FlagType, Snapshot, ValueKind};
use feature_testdata::alloc::{allocations, Counting};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Evaluations per scenario while counting.
const ROUNDS: usize = 1000;

/// Asserts that `eval` allocates nothing, after one warm-up call.
fn assert_no_allocation(what: &str, mut eval: impl FnMut()) {
    eval();
    let n = allocations(|| (0..ROUNDS).for_each(|_| eval()));
    assert_eq!(n, 0, "{what}: {n} allocations in {ROUNDS} evaluations");
}

#[test]
fn the_counter_counts() {
    assert_eq!(allocations(|| drop(std::hint::black_box(vec![1u8]))), 1);
    assert_eq!(
        allocations(|| drop(std::hint::black_box(String::from("x")))),
        1
    );
    assert_eq!(allocations(|| {}), 0);
    // An accessor that does allocate is seen to: an owned copy of a JSON value.
    let snapshot = snapshot();
    let (ctx, default) = (context(), serde_json::Value::Null);
    json_of(&snapshot, "g-json", &ctx, &default);
    assert!(allocations(|| drop(json_of(&snapshot, "g-json", &ctx, &default))) > 0);
}

#[test]
fn bool_evaluations_of_every_scenario_allocate_nothing() {
    let shared = ArcSwap::from_pointee(snapshot());
    let ctx = context();
    for key in ["a-bool", "b-rules", "d1-regex", "d2-semver", "e-prereq"] {
        assert!(bool_of(&shared.load(), key, &ctx, false), "{key}");
        assert_no_allocation(key, || {
            std::hint::black_box(bool_of(&shared.load(), key, &ctx, false));
        });
    }
    // A context that misses every rule (and the regex, and the version) walks every clause.
    let other = Context::new("user-5678")
        .with_email("jo@example.org")
        .with_country("US")
        .with_attribute("plan", "free")
        .with_attribute("appVersion", "1.9.0-beta.1");
    for key in ["b-rules", "d1-regex", "d2-semver"] {
        assert!(!bool_of(&shared.load(), key, &other, true), "{key}");
        assert_no_allocation(key, || {
            std::hint::black_box(bool_of(&shared.load(), key, &other, true));
        });
    }
}

#[test]
fn rollouts_over_many_keys_allocate_nothing() {
    let shared = ArcSwap::from_pointee(snapshot());
    let contexts = rollout_contexts();
    bool_of(&shared.load(), "c-rollout", &contexts[0], false);
    let n = allocations(|| {
        for _ in 0..4 {
            for ctx in &contexts {
                std::hint::black_box(bool_of(&shared.load(), "c-rollout", ctx, false));
            }
        }
    });
    assert_eq!(
        n,
        0,
        "{n} allocations in {} rollout evaluations",
        4 * ROLLOUT_KEYS
    );
}

#[test]
fn int_and_float_evaluations_allocate_nothing() {
    let shared = ArcSwap::from_pointee(snapshot());
    let ctx = context();
    assert_eq!(int_of(&shared.load(), "g-int", &ctx, 0), 100);
    assert_eq!(float_of(&shared.load(), "g-float", &ctx, 0.0), 0.75);
    assert_no_allocation("g-int", || {
        std::hint::black_box(int_of(&shared.load(), "g-int", &ctx, 0));
    });
    assert_no_allocation("g-float", || {
        std::hint::black_box(float_of(&shared.load(), "g-float", &ctx, 0.0));
    });
    // Asking a string flag for a number is a type mismatch: the default, and still nothing.
    assert_no_allocation("g-string as int", || {
        std::hint::black_box(int_of(&shared.load(), "g-string", &ctx, 7));
    });
}

#[test]
fn a_string_evaluation_allocates_at_most_the_returned_string() {
    let shared = ArcSwap::from_pointee(snapshot());
    let ctx = context();
    assert_eq!(string_of(&shared.load(), "g-string", &ctx, "x"), "red");
    let n = allocations(|| {
        for _ in 0..ROUNDS {
            std::hint::black_box(string_of(&shared.load(), "g-string", &ctx, "x"));
        }
    });
    assert!(
        n <= ROUNDS,
        "{n} allocations in {ROUNDS} string evaluations"
    );
}

/// Every flag of the 100-flag snapshot of mixed shapes, as the typed accessor of its type asks
/// (strings and JSON as borrowed details).
fn evaluate_all(snapshot: &Snapshot, ctx: &Context) -> usize {
    let mut served = 0;
    for flag in snapshot.flags() {
        let kind = match flag.flag_type() {
            FlagType::Bool => ValueKind::Bool,
            FlagType::Int => ValueKind::Int,
            FlagType::Float => ValueKind::Float,
            FlagType::String => ValueKind::String,
            FlagType::Json => ValueKind::Any,
        };
        served += snapshot
            .evaluate(flag.key(), ctx)
            .check_type(kind)
            .value()
            .is_some() as usize;
    }
    served
}

#[test]
fn evaluating_all_flags_allocates_nothing() {
    let shared = ArcSwap::from_pointee(generated_snapshot(100));
    let ctx = context();
    assert_eq!(evaluate_all(&shared.load(), &ctx), 100);
    assert_no_allocation("all 100 flags", || {
        std::hint::black_box(evaluate_all(&shared.load(), &ctx));
    });
}
