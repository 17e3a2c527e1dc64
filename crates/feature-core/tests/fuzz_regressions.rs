//! Faults found by the fuzz targets in `fuzz/` (see BENCHMARKS.md, "Fuzzing"), one test each.
#![allow(clippy::unwrap_used)] // a failed assumption fails the run

use feature_core::{compile, parse_document, Context, FlagType, Format};

/// Compiles `yaml` and returns the type of flag `f` and what it serves to a context with
/// `plan: enterprise` (which the first rule matches).
fn served(yaml: &str) -> (FlagType, serde_json::Value) {
    let snapshot = compile(parse_document(yaml, Format::Yaml).unwrap().document);
    assert!(!snapshot.has_errors(), "{:?}", snapshot.diagnostics());
    let flag = snapshot.flag("f").unwrap();
    let ctx = Context::new("u").with_attribute("plan", "enterprise");
    let value = snapshot.evaluate("f", &ctx).value().cloned().unwrap();
    (flag.flag_type(), value)
}

fn doc(default: &str, values: &str) -> String {
    format!(
        "flags:\n  f:\n    default: {default}\n    variants: [{values}]\n    rules:\n      - clauses: [{{attribute: plan, operator: in, values: [enterprise]}}]\n        variation: 1\n"
    )
}

/// Found by `flag_document`: with no `type`, the type was inferred from the first value alone,
/// so a flag with variants `10` and `"010"` said `int` and served a string.
#[test]
fn an_inferred_flag_type_holds_every_value_the_flag_serves() {
    for (default, values, want) in [
        ("10", "{value: 10}, {value: \"010\"}", FlagType::Json),
        ("1", "{value: 1}, {value: 2.5}", FlagType::Float),
        ("\"a\"", "{value: true}, {value: false}", FlagType::Json),
        ("1", "{value: 1}, {value: 2}", FlagType::Int),
        ("\"a\"", "{value: a}, {value: b}", FlagType::String),
    ] {
        let (flag_type, value) = served(&doc(default, values));
        assert_eq!(flag_type, want, "{values} with default {default}");
        assert!(flag_type.admits(&value), "{flag_type:?} serves {value}");
    }
    // Without variants or a default a flag is still a boolean.
    let snapshot = compile(
        parse_document("flags: {g: {}}", Format::Yaml)
            .unwrap()
            .document,
    );
    assert_eq!(snapshot.flag("g").unwrap().flag_type(), FlagType::Bool);
}
