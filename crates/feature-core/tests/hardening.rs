//! Bad input costs nothing but the flag it is in: overflowing rollouts are malformed flags (no
//! panic, no wrap-around), and a context with very many attributes is read in linear time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature_core::{compile, parse_document, Context, ErrorKind, Format, ReasonKind};
use serde_json::{json, Value};

fn flag_with_weights(weights: &[i64], in_rule: bool) -> String {
    let variations: Vec<Value> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| json!({"variation": i % 2, "weight": w}))
        .collect();
    let rollout = json!({"rollout": {"variations": variations}});
    let flag = if in_rule {
        json!({"enabled": true, "variants": [{"value": false}, {"value": true}],
               "rules": [{"clauses": [{"attribute": "key", "operator": "in", "values": ["u"]}],
                          "rollout": rollout["rollout"]}],
               "fallthrough": {"variation": 0}})
    } else {
        json!({"enabled": true, "variants": [{"value": false}, {"value": true}],
               "fallthrough": rollout})
    };
    json!({"flags": {"f": flag, "healthy": {"enabled": true}}}).to_string()
}

#[test]
fn overflowing_rollout_weights_are_a_malformed_flag() {
    let shapes: [&[i64]; 5] = [
        &[i64::MAX, 1],
        &[1, i64::MAX],
        &[i64::MIN, -1],
        &[i64::MAX / 2 + 1, i64::MAX / 2 + 1],
        &[50_000, i64::MAX, 50_000],
    ];
    for weights in shapes {
        for in_rule in [false, true] {
            let text = flag_with_weights(weights, in_rule);
            let snap = parse_document(&text, Format::Json).unwrap().compile(None);
            let d = snap.evaluate("f", &Context::new("u"));
            assert_eq!(
                d.error_kind(),
                Some(ErrorKind::MalformedFlag),
                "{weights:?} in_rule={in_rule}"
            );
            assert!(
                snap.diagnostics()
                    .iter()
                    .any(|d| d.message.contains("overflow") && d.path_string().contains("rollout")),
                "{weights:?}: {:?}",
                snap.diagnostics()
            );
            // The other flag keeps working.
            assert_eq!(
                snap.evaluate("healthy", &Context::new("u")).reason_kind(),
                ReasonKind::Fallthrough
            );
        }
    }
}

#[test]
fn weights_that_fit_still_serve() {
    let text = flag_with_weights(&[60_000, 40_000], false);
    let snap = parse_document(&text, Format::Json).unwrap().compile(None);
    assert!(!snap.has_errors());
    assert!(snap.evaluate("f", &Context::new("u")).value().is_some());
}

#[test]
fn a_context_with_many_attributes_reads_every_one_and_the_last_duplicate_wins() {
    for n in [1_000usize, 100_000] {
        let mut obj = serde_json::Map::new();
        obj.insert("kind".into(), json!("user"));
        obj.insert("key".into(), json!("u"));
        for i in 0..n {
            obj.insert(format!("a{i}"), json!(i));
        }
        let ctx = Context::from_json(&Value::Object(obj)).unwrap();
        assert_eq!(ctx.get("a0"), Some(&json!(0)));
        assert_eq!(ctx.get(&format!("a{}", n - 1)), Some(&json!(n - 1)));
        assert_eq!(ctx.attributes().count(), n);
    }
    // Old-style user: `custom` repeats a top-level attribute; it is held once.
    let ctx = Context::from_json(
        &json!({"key": "u", "email": "top@x", "custom": {"email": "c@x", "plan": "pro"}}),
    )
    .unwrap();
    assert_eq!(ctx.attributes().filter(|(k, _)| *k == "email").count(), 1);
    assert_eq!(ctx.get("plan"), Some(&json!("pro")));
    let _ = compile;
}

/// The shape: segment `s{i}` lists `s{i-1}` `fan` times, `depth` deep, and flag `f`
/// lists the last one `fan` times; no context is in any segment, so an evaluation without a
/// bound visits `fan^(depth+1)` segments. `near` is a flag that lists `s1` once.
fn repeated_segments(fan: usize, depth: usize) -> String {
    let mut segments = serde_json::Map::new();
    segments.insert(
        "s0".into(),
        json!({"rules": [{"clauses": [{"attribute": "key", "operator": "in", "values": ["nobody"]}]}]}),
    );
    for i in 1..depth {
        let refs = vec![format!("s{}", i - 1); fan];
        segments.insert(
            format!("s{i}"),
            json!({"rules": [{"clauses": [{"attribute": "", "operator": "segmentMatch", "values": refs}]}]}),
        );
    }
    let refs = vec![format!("s{}", depth - 1); fan];
    let rule = |refs: Vec<String>| {
        json!({"enabled": true, "default": false,
               "rules": [{"clauses": [{"attribute": "", "operator": "segmentMatch", "values": refs}],
                          "variation": 1}],
               "fallthrough": {"variation": 0}})
    };
    json!({"flags": {"f": rule(refs), "near": rule(vec!["s1".into()])}, "segments": segments})
        .to_string()
}

/// The prerequisite variant: flag `p{i}` requires `p{i-1}` `fan` times (every requirement
/// holds, so each is evaluated), and `f` requires the last one `fan` times.
fn repeated_prerequisites(fan: usize, depth: usize) -> String {
    let mut flags = serde_json::Map::new();
    flags.insert(
        "p0".into(),
        json!({"enabled": true, "default": false,
               "rules": [{"clauses": [{"attribute": "key", "operator": "in", "values": ["nobody"]}],
                          "variation": 0}],
               "fallthrough": {"variation": 1}}),
    );
    let requiring = |p: String| {
        let prerequisites: Vec<Value> = (0..fan)
            .map(|_| json!({"key": p, "variation": 1}))
            .collect();
        json!({"enabled": true, "default": false, "prerequisites": prerequisites,
               "fallthrough": {"variation": 1}})
    };
    for i in 1..depth {
        flags.insert(format!("p{i}"), requiring(format!("p{}", i - 1)));
    }
    flags.insert("f".into(), requiring(format!("p{}", depth - 1)));
    json!({"flags": flags}).to_string()
}

/// The error diagnostic of flag `key`.
fn cost_error(snap: &feature_core::Snapshot, key: &str) -> feature_core::Diagnostic {
    snap.diagnostics()
        .iter()
        .find(|d| d.flag == key && d.severity == feature_core::Severity::Error)
        .cloned()
        .unwrap_or_else(|| panic!("no error for {key}: {:?}", snap.diagnostics()))
}

#[test]
fn a_segment_listed_again_and_again_is_a_malformed_flag_located_at_the_reference() {
    // Without a bound, one evaluation of `f` visits 4^13 segments (several seconds).
    let snap = parse_document(&repeated_segments(4, 12), Format::Json)
        .unwrap()
        .compile(Some("flags.json"));
    assert!(snap.flag("f").unwrap().is_malformed());
    let d = snap.evaluate("f", &Context::new("u"));
    assert_eq!(d.error_kind(), Some(ErrorKind::MalformedFlag));
    let e = cost_error(&snap, "f");
    assert_eq!(e.path_string(), "flags.f.rules[0].clauses[0].values[0]");
    assert!(e.line.is_some() && e.column.is_some(), "{e:?}");
    assert!(e.message.contains("more than the 100000"), "{}", e.message);
    assert!(
        e.message.contains("segment `s11` here costs")
            && e.message.contains(
                "(flag `f` lists segment `s11` 4 times, segment `s11` lists segment `s10` 4 times"
            ),
        "{}",
        e.message
    );
    // A flag listing a cheap segment of the same document keeps working.
    assert!(!snap.flag("near").unwrap().is_malformed());
    assert_eq!(
        snap.evaluate("near", &Context::new("u")).reason_kind(),
        ReasonKind::Fallthrough
    );
    assert!(snap.diagnostics().iter().all(|d| d.flag != "near"));
}

#[test]
fn a_prerequisite_required_again_and_again_is_a_malformed_flag_located_at_the_reference() {
    let snap = parse_document(&repeated_prerequisites(4, 12), Format::Json)
        .unwrap()
        .compile(None);
    assert!(snap.flag("f").unwrap().is_malformed());
    let d = snap.evaluate("f", &Context::new("u"));
    assert_eq!(d.error_kind(), Some(ErrorKind::MalformedFlag));
    let e = cost_error(&snap, "f");
    assert_eq!(e.path_string(), "flags.f.prerequisites[0]");
    assert!(e.line.is_some(), "{e:?}");
    assert!(
        e.message.contains("flag `p11` here costs")
            && e.message.contains(
                "(flag `f` lists flag `p11` 4 times, flag `p11` lists flag `p10` 4 times"
            ),
        "{}",
        e.message
    );
    // Lower in the chain, where the repeats still fit the budget, flags work and serve what
    // their prerequisites give.
    for key in ["p0", "p1", "p5"] {
        assert!(!snap.flag(key).unwrap().is_malformed(), "{key}");
        let d = snap.evaluate(key, &Context::new("u"));
        assert_eq!(d.error_kind(), None, "{key}");
        assert_eq!(d.variation_index(), Some(1), "{key}");
    }
}

#[test]
fn deep_nesting_without_repeats_and_repeats_within_the_budget_are_accepted() {
    // A chain of 31 segments (the depth cap allows 32) listing each other once, and two
    // repeats five deep (2^6 visits), compile without diagnostics and evaluate as written.
    for (fan, depth) in [(1, 31), (2, 5)] {
        let text = repeated_segments(fan, depth).replace("nobody", "u");
        let snap = parse_document(&text, Format::Json).unwrap().compile(None);
        assert!(snap.diagnostics().is_empty(), "{:?}", snap.diagnostics());
        let inside = snap.evaluate("f", &Context::new("u"));
        assert_eq!(inside.reason_kind(), ReasonKind::RuleMatch, "{fan} {depth}");
        let outside = snap.evaluate("f", &Context::new("v"));
        assert_eq!(
            outside.reason_kind(),
            ReasonKind::Fallthrough,
            "{fan} {depth}"
        );
    }
}

/// A document with segment `big` (a `startsWith` clause of `values` prefixes) and flag `f`
/// listing it `times` times.
fn long_clause_listed(values: usize, times: usize) -> feature_core::Snapshot {
    let prefixes: Vec<String> = (0..values).map(|i| format!("p{i}-")).collect();
    let text = json!({
        "segments": {"big": {"rules": [{"clauses": [
            {"attribute": "key", "operator": "startsWith", "values": prefixes}]}]}},
        "flags": {"f": {"enabled": true, "default": false,
            "rules": [{"clauses": [{"attribute": "", "operator": "segmentMatch",
                                    "values": vec!["big"; times]}], "variation": 1}],
            "fallthrough": {"variation": 0}}}})
    .to_string();
    parse_document(&text, Format::Json).unwrap().compile(None)
}

#[test]
fn every_value_of_a_clause_counts_and_the_budget_grows_with_the_document() {
    // 20 000 prefixes are 20 000 comparisons for a context in none of them. The document
    // allows 16 steps per node (about 320 000 here): listed 15 times the segment fits, 17
    // times it does not.
    let fits = long_clause_listed(20_000, 15);
    assert!(fits.diagnostics().is_empty(), "{:?}", fits.diagnostics());
    assert_eq!(
        fits.evaluate("f", &Context::new("p19999-x")).reason_kind(),
        ReasonKind::RuleMatch
    );
    let over = long_clause_listed(20_000, 17);
    assert!(over.flag("f").unwrap().is_malformed());
    let e = cost_error(&over, "f");
    assert!(
        e.message.contains("segment `big` here costs 20003")
            && e.message
                .contains("(flag `f` lists segment `big` 17 times)"),
        "{}",
        e.message
    );
    // Small documents get 100 000 steps: 2 000 prefixes listed 60 times are refused
    // (counting clauses but not their values, they would be 60 × 4 steps).
    let small = long_clause_listed(2_000, 60);
    assert!(small.flag("f").unwrap().is_malformed());
}

/// Flag `p` splits its contexts over `variations` rollout variations; flag `f` requires `p`
/// `times` times.
fn long_rollout_required(variations: usize, times: usize) -> feature_core::Snapshot {
    let mut weights: Vec<Value> = (0..variations)
        .map(|i| json!({"variation": i % 2, "weight": 1}))
        .collect();
    weights.push(json!({"variation": 1, "weight": 100_000 - variations}));
    let prerequisites: Vec<Value> = (0..times)
        .map(|_| json!({"key": "p", "variation": 1}))
        .collect();
    let text = json!({"flags": {
        "p": {"enabled": true, "fallthrough": {"rollout": {"variations": weights}}},
        "f": {"enabled": true, "prerequisites": prerequisites, "fallthrough": {"variation": 1}}}})
    .to_string();
    parse_document(&text, Format::Json).unwrap().compile(None)
}

#[test]
fn every_variation_of_a_rollout_counts() {
    // About 10 000 nodes: 160 000 steps allowed; each requirement of `p` may walk its 10 001
    // variations.
    let fits = long_rollout_required(10_000, 15);
    assert!(
        !fits.flag("f").unwrap().is_malformed(),
        "{:?}",
        fits.diagnostics()
    );
    assert_eq!(fits.evaluate("f", &Context::new("u")).error_kind(), None);
    let over = long_rollout_required(10_000, 20);
    assert!(over.flag("f").unwrap().is_malformed());
    let e = cost_error(&over, "f");
    assert_eq!(e.path_string(), "flags.f.prerequisites[0]");
    assert!(
        e.message.contains("(flag `f` lists flag `p` 20 times)"),
        "{}",
        e.message
    );
}
