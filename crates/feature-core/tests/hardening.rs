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
