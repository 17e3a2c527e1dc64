//! Bad input never panics: random flag documents (valid and broken) and random contexts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature_core::{compile, parse_document, Context, Format, ReasonKind};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        (-1000i64..1000).prop_map(|n| json!(n)),
        (-1000.0f64..1000.0).prop_map(|f| json!(f)),
        "[a-z0-9.@/~^$()*+?-]{0,8}".prop_map(Value::String),
        Just(Value::Null),
        Just(json!("1.2.3")),
        Just(json!("2024-01-01T00:00:00Z")),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn operator() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        "eq",
        "neq",
        "in",
        "notIn",
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "gt",
        "gte",
        "lt",
        "lte",
        "semver",
        "semVerEqual",
        "semVerLessThan",
        "semVerGreaterThan",
        "before",
        "after",
        "segmentMatch",
        "bogus",
        "",
    ])
    .prop_map(|s| json!(s))
}

fn attribute() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        "key",
        "name",
        "email",
        "plan",
        "groups",
        "kind",
        "anonymous",
        "/a/b",
        "/",
        "//",
        "/a~",
        "",
        "country",
        "n",
    ])
    .prop_map(|s| json!(s))
}

fn clause() -> impl Strategy<Value = Value> {
    (
        attribute(),
        operator(),
        prop::collection::vec(scalar(), 0..4),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec!["user", "org", "bad kind!"])),
    )
        .prop_map(|(a, op, values, negate, kind)| {
            let mut c = json!({"attribute": a, "operator": op, "values": values, "negate": negate});
            if let Some(k) = kind {
                c["contextKind"] = json!(k);
            }
            c
        })
}

fn rollout() -> impl Strategy<Value = Value> {
    (prop::collection::vec((-1i64..4, -10i64..120_000, any::<bool>()), 0..4), prop::option::of(any::<i32>()), any::<bool>(), prop::option::of(attribute()))
        .prop_map(|(vs, seed, exp, by)| {
            let mut r = json!({"variations": vs.iter().map(|(v, w, u)| json!({"variation": v, "weight": w, "untracked": u})).collect::<Vec<_>>()});
            if let Some(s) = seed { r["seed"] = json!(s); }
            if exp { r["kind"] = json!("experiment"); }
            if let Some(b) = by { r["bucketBy"] = b; }
            r
        })
}

fn rule() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(clause(), 0..3),
        prop::option::of(-1i64..4),
        prop::option::of(rollout()),
        prop::option::of(-10.0f64..120.0),
    )
        .prop_map(|(clauses, variation, rollout, pct)| {
            let mut r = json!({"clauses": clauses});
            if let Some(v) = variation {
                r["variation"] = json!(v);
            }
            if let Some(ro) = rollout {
                r["rollout"] = ro;
            }
            if let Some(p) = pct {
                r["percentage"] = json!(p);
            }
            r
        })
}

fn flag(keys: Vec<String>) -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(value(), 0..4),
        prop::option::of(value()),
        any::<bool>(),
        prop::collection::vec(rule(), 0..3),
        prop::collection::vec((prop::sample::select(keys), -1i64..3), 0..2),
        prop::option::of(prop::sample::select(vec!["bool", "string", "int", "float", "json", "nope"])),
        prop::option::of(-1i64..4),
        any::<bool>(),
    )
        .prop_map(|(variants, default, enabled, rules, prereqs, ty, off, typo)| {
            let mut f = json!({
                "variants": variants.into_iter().map(|v| json!({"value": v})).collect::<Vec<_>>(),
                "enabled": enabled,
                "rules": rules,
                "prerequisites": prereqs.into_iter().map(|(k, v)| json!({"key": k, "variation": v})).collect::<Vec<_>>(),
                "targets": [{"variation": 0, "values": ["u1", "u2"]}],
            });
            if let Some(d) = default { f["default"] = d; }
            if let Some(t) = ty { f["type"] = json!(t); }
            if let Some(o) = off { f["offVariation"] = json!(o); }
            if typo { f["enabledd"] = json!(true); }
            f
        })
}

fn document() -> impl Strategy<Value = Value> {
    let keys: Vec<String> = (0..4).map(|i| format!("f{i}")).collect();
    (
        prop::collection::vec(flag(keys), 1..5),
        prop::collection::vec(prop::collection::vec(clause(), 0..2), 0..2),
    )
        .prop_map(|(flags, segs)| {
            let mut fm = Map::new();
            for (i, f) in flags.into_iter().enumerate() {
                fm.insert(format!("f{i}"), f);
            }
            let mut sm = Map::new();
            for (i, clauses) in segs.into_iter().enumerate() {
                sm.insert(
                    format!("s{i}"),
                    json!({"included": ["u1"], "rules": [{"clauses": clauses, "weight": 50000}]}),
                );
            }
            json!({"flags": fm, "segments": sm})
        })
}

fn context() -> impl Strategy<Value = Value> {
    prop_oneof![
        (prop::option::of("[a-z0-9]{0,4}"), prop::collection::btree_map(prop::sample::select(vec!["plan", "email", "groups", "n", "a", "country", "name", "anonymous"]), value(), 0..4))
            .prop_map(|(key, attrs)| {
                let mut c: Map<String, Value> = attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                if let Some(k) = key { c.insert("key".into(), json!(k)); }
                Value::Object(c)
            }),
        ("[a-z]{1,4}", "[a-z]{1,4}").prop_map(|(k1, k2)| json!({"kind": "multi", "user": {"key": k1}, "org": {"key": k2, "a": {"b": 1}}})),
        value(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn random_documents_and_contexts_never_panic(doc in document(), ctxs in prop::collection::vec(context(), 1..4)) {
        for text in [serde_json::to_string(&doc).unwrap(), serde_yaml_ng::to_string(&doc).unwrap()] {
            let format = if text.starts_with('{') { Format::Json } else { Format::Yaml };
            let parsed = parse_document(&text, format).expect("generated documents are well-formed");
            let snap = parsed.compile(Some("random"));
            for d in snap.diagnostics() {
                prop_assert!(!d.to_string().is_empty());
            }
            for c in &ctxs {
                let Ok(ctx) = Context::from_json(c) else { continue };
                for i in 0..5 {
                    let key = format!("f{i}");
                    let a = snap.evaluate(&key, &ctx);
                    let b = snap.evaluate(&key, &ctx);
                    prop_assert_eq!(a.value(), b.value(), "evaluation is deterministic");
                    prop_assert_eq!(a.reason_kind(), b.reason_kind());
                    let eval = a.to_evaluation(&key, json!("default"));
                    if eval.reason.kind() == ReasonKind::Error {
                        prop_assert_eq!(eval.value, json!("default"));
                        prop_assert_eq!(eval.variation_index, None);
                    }
                }
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        for format in [Format::Yaml, Format::Json] {
            if let Ok(p) = parse_document(&text, format) {
                let _ = p.compile(None);
            }
        }
    }

    #[test]
    fn arbitrary_json_contexts_never_panic(v in value()) {
        if let Ok(ctx) = Context::from_json(&v) {
            let _ = ctx.to_json();
            let snap = compile(Default::default());
            prop_assert_eq!(snap.evaluate("x", &ctx).error_kind(), Some(feature_core::ErrorKind::FlagNotFound));
        }
    }
}

/// A flag that is nothing but its fallthrough rollout: served by evaluation's short path.
fn fallthrough_only_flag() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(value(), 0..4),
        rollout(),
        any::<bool>(),
        prop::option::of("[a-z]{0,3}"),
    )
        .prop_map(|(variants, rollout, enabled, salt)| {
            let mut f = json!({
                "variants": variants.into_iter().map(|v| json!({"value": v})).collect::<Vec<_>>(),
                "enabled": enabled,
                "fallthrough": {"rollout": rollout},
            });
            if let Some(s) = salt {
                f["salt"] = json!(s);
            }
            f
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// The short path for flags that are only a rollout serves what the whole evaluation
    /// (the traced one, which never takes it) serves: value, variation and reason.
    #[test]
    fn a_rollout_only_flag_serves_what_the_whole_evaluation_serves(
        flags in prop::collection::vec(fallthrough_only_flag(), 1..4),
        ctxs in prop::collection::vec(context(), 1..6),
    ) {
        let doc: Map<String, Value> = flags.into_iter().enumerate().map(|(i, f)| (format!("f{i}"), f)).collect();
        let text = serde_json::to_string(&json!({"flags": doc})).unwrap();
        let snap = compile(parse_document(&text, Format::Json).expect("well-formed").document);
        for c in &ctxs {
            let Ok(ctx) = Context::from_json(c) else { continue };
            for key in doc.keys() {
                let short = snap.evaluate(key, &ctx);
                let whole = snap.evaluate_traced(key, &ctx, &mut ());
                prop_assert_eq!(short.value(), whole.value(), "{}", key);
                prop_assert_eq!(short.variation_index(), whole.variation_index());
                prop_assert_eq!(short.reason(), whole.reason());
            }
        }
    }
}
