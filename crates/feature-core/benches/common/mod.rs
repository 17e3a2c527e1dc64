//! Scenarios shared by the benchmarks and the allocation test: the flags, the contexts built in
//! advance, and the typed accessors the client performs on top of [`Snapshot::evaluate`].
//!
//! Not every item is used by every target that includes this module.
#![allow(dead_code)]

use feature_core::{parse_document, Context, Evaluation, Format, Snapshot, ValueKind};
use serde_json::Value;
use std::fmt::Write as _;

/// The scenario flags (a)–(e) and (g); see BENCHMARKS.md.
pub(crate) const SCENARIOS: &str = include_str!("../fixtures/scenarios.yaml");

/// Number of distinct context keys the rollout scenario cycles through (a power of two).
pub(crate) const ROLLOUT_KEYS: usize = 1024;

/// The compiled scenario flags.
pub(crate) fn snapshot() -> Snapshot {
    let parsed = parse_document(SCENARIOS, Format::Yaml).expect("the scenario file parses");
    let snapshot = parsed.compile(Some("scenarios.yaml"));
    assert!(
        snapshot.diagnostics().is_empty(),
        "{:?}",
        snapshot.diagnostics()
    );
    snapshot
}

/// The context of every scenario but the rollout: it matches the third rule of (b), the regex
/// of (d1) and the version clause of (d2).
pub(crate) fn context() -> Context {
    Context::new("user-1234")
        .with_email("jo@example.com")
        .with_country("DE")
        .with_attribute("plan", "pro")
        .with_attribute("appVersion", "2.5.1")
}

/// The key of rollout context `i`.
pub(crate) fn rollout_key(i: usize) -> String {
    format!("user-{i:04}")
}

/// [`ROLLOUT_KEYS`] distinct contexts for the rollout scenario.
pub(crate) fn rollout_contexts() -> Vec<Context> {
    (0..ROLLOUT_KEYS)
        .map(|i| Context::new(rollout_key(i)))
        .collect()
}

/// `client.bool(ctx, key, default)`.
#[inline]
pub(crate) fn bool_of(snapshot: &Snapshot, key: &str, ctx: &Context, default: bool) -> bool {
    snapshot
        .evaluate(key, ctx)
        .check_type(ValueKind::Bool)
        .value()
        .and_then(Value::as_bool)
        .unwrap_or(default)
}

/// `client.int(ctx, key, default)`: fractions are truncated toward zero.
#[inline]
pub(crate) fn int_of(snapshot: &Snapshot, key: &str, ctx: &Context, default: i64) -> i64 {
    snapshot
        .evaluate(key, ctx)
        .check_type(ValueKind::Int)
        .value()
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f.trunc() as i64)))
        .unwrap_or(default)
}

/// `client.float(ctx, key, default)`.
#[inline]
pub(crate) fn float_of(snapshot: &Snapshot, key: &str, ctx: &Context, default: f64) -> f64 {
    snapshot
        .evaluate(key, ctx)
        .check_type(ValueKind::Float)
        .value()
        .and_then(Value::as_f64)
        .unwrap_or(default)
}

/// `client.string(ctx, key, default)`: the one allocation is the returned `String`.
#[inline]
pub(crate) fn string_of(snapshot: &Snapshot, key: &str, ctx: &Context, default: &str) -> String {
    snapshot
        .evaluate(key, ctx)
        .check_type(ValueKind::String)
        .value()
        .and_then(Value::as_str)
        .unwrap_or(default)
        .to_owned()
}

/// `client.json(ctx, key, default)`: an owned copy of the value.
#[inline]
pub(crate) fn json_of(snapshot: &Snapshot, key: &str, ctx: &Context, default: &Value) -> Value {
    snapshot
        .evaluate(key, ctx)
        .value()
        .unwrap_or(default)
        .clone()
}

/// `client.bool_detail(ctx, key, default)`: value, variation index and reason, owned.
#[inline]
pub(crate) fn bool_detail(
    snapshot: &Snapshot,
    key: &str,
    ctx: &Context,
    default: bool,
) -> Evaluation {
    snapshot
        .evaluate(key, ctx)
        .check_type(ValueKind::Bool)
        .to_evaluation(key, Value::Bool(default))
}

/// Appends flag `key` of shape `i % 8` to a YAML document (`flags:` already written).
///
/// The shapes cover what real flag files hold: constant booleans, rules on strings, lists,
/// regexes and versions, rollouts, individual targets, prerequisites and multi-variant
/// strings.
fn push_flag(out: &mut String, key: &str, i: usize, previous: Option<&str>) {
    let _ = writeln!(out, "  {key}:");
    match i % 8 {
        0 => {
            let _ = writeln!(out, "    type: bool\n    default: {}", i.is_multiple_of(3));
        }
        1 => {
            let _ = writeln!(
                out,
                "    type: bool\n    default: false\n    description: Rules on plan and country.\n    rules:\n      - id: r{i}\n        clauses:\n          - {{attribute: plan, operator: eq, values: [enterprise, plan-{i}]}}\n        variation: 1\n      - clauses:\n          - {{attribute: country, operator: in, values: [AT, BE, DE, DK, ES, FI, FR, IT, NL, SE]}}\n          - {{attribute: email, operator: endsWith, values: ['@example.com']}}\n        variation: 1\n    fallthrough: {{variation: 0}}"
            );
        }
        2 => {
            let _ = writeln!(
                out,
                "    type: bool\n    default: false\n    fallthrough:\n      rollout:\n        variations:\n          - {{variation: 0, weight: {}}}\n          - {{variation: 1, weight: {}}}",
                100_000 - (i % 100) * 1000,
                (i % 100) * 1000
            );
        }
        3 => {
            let _ = writeln!(
                out,
                "    type: bool\n    default: false\n    rules:\n      - clauses:\n          - {{attribute: email, operator: matches, values: ['^[a-z]+-{i}@example\\.com$']}}\n        variation: 1\n    fallthrough: {{variation: 0}}"
            );
        }
        4 => {
            let _ = writeln!(
                out,
                "    type: bool\n    default: false\n    rules:\n      - clauses:\n          - {{attribute: appVersion, operator: semVerGreaterThan, values: ['{}.{}.0']}}\n        variation: 1\n    fallthrough: {{variation: 0}}",
                i % 5,
                i % 10
            );
        }
        5 => {
            let _ = writeln!(
                out,
                "    type: string\n    default: control\n    variants:\n      - {{name: control, value: control}}\n      - {{name: treatment-a, value: treatment-a}}\n      - {{name: treatment-b, value: treatment-b}}\n    targets:\n      - {{variation: 1, values: [user-{i}, user-{}, user-{}]}}\n    fallthrough:\n      rollout:\n        variations:\n          - {{variation: 0, weight: 34000}}\n          - {{variation: 1, weight: 33000}}\n          - {{variation: 2, weight: 33000}}",
                i + 1,
                i + 2
            );
        }
        6 => match previous {
            Some(p) => {
                let _ = writeln!(
                    out,
                    "    type: bool\n    default: true\n    offVariation: 0\n    prerequisites:\n      - {{key: {p}, variation: 1}}"
                );
            }
            None => {
                let _ = writeln!(out, "    type: bool\n    default: true");
            }
        },
        _ => {
            let _ = writeln!(
                out,
                "    type: int\n    variants:\n      - {{value: 10}}\n      - {{value: 100}}\n      - {{value: 1000}}\n    rules:\n      - clauses:\n          - {{attribute: plan, operator: in, values: [pro, enterprise]}}\n          - {{attribute: anonymous, operator: eq, values: [false]}}\n        variation: 2\n    fallthrough: {{variation: {}}}",
                i % 2
            );
        }
    }
}

/// A YAML flag document of `n` flags of mixed shapes, keys `flag-00000`, `flag-00001`, ...
pub(crate) fn generated_document(n: usize) -> String {
    let mut out = String::with_capacity(n * 400);
    out.push_str("flags:\n");
    let mut previous = None;
    for i in 0..n {
        let key = format!("flag-{i:05}");
        push_flag(&mut out, &key, i, previous.as_deref());
        previous = Some(key);
    }
    out
}

/// The compiled [`generated_document`].
pub(crate) fn generated_snapshot(n: usize) -> Snapshot {
    let text = generated_document(n);
    let snapshot = parse_document(&text, Format::Yaml)
        .expect("the generated document parses")
        .compile(None);
    assert!(!snapshot.has_errors(), "{:?}", snapshot.diagnostics());
    snapshot
}
