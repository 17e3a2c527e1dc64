//! Round trip of LaunchDarkly's contract data through `featurectl import`: for every document
//! of every server-side evaluation file, the imported flags are written as YAML exactly as the
//! binary writes them, read back, compiled, and every one of the 728 evaluations must give the
//! same value, variation index and reason as the direct import and as the file expects. The
//! binary itself imports every document too, and must write the same YAML.

mod common;

use feature_core::launchdarkly::import;
use feature_core::{
    compile, parse_document, Context, ErrorKind, Evaluation, Format, Snapshot, ValueKind,
};
use serde_json::{json, Value};
use std::path::PathBuf;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../feature-core/tests/data/launchdarkly/server-side-eval")
}

/// The caller's default when a case gives none: from the type of the flag's first variation.
fn inferred_default(sdk: &Value, flag: &str) -> Value {
    match sdk["flags"][flag]["variations"].get(0) {
        Some(Value::Bool(_)) => json!(false),
        Some(Value::Number(_)) => json!(0),
        Some(Value::String(_)) => json!(""),
        _ => Value::Null,
    }
}

/// The typed accessor a case names.
fn value_kind(t: Option<&str>) -> ValueKind {
    match t {
        Some("bool") => ValueKind::Bool,
        Some("int") => ValueKind::Int,
        Some("double") => ValueKind::Float,
        Some("string") => ValueKind::String,
        _ => ValueKind::Any,
    }
}

/// One case evaluated as an SDK's typed accessor does it, LaunchDarkly-shaped.
fn run_case(snap: &Snapshot, sdk: &Value, case: &Value) -> Value {
    let key = case["flagKey"].as_str().unwrap_or_default();
    let default = case
        .get("default")
        .cloned()
        .unwrap_or_else(|| inferred_default(sdk, key));
    let kind = value_kind(case["valueType"].as_str());
    let eval = match Context::from_json(&case["context"]) {
        Ok(ctx) => snap
            .evaluate(key, &ctx)
            .expect(kind)
            .to_evaluation(key, default),
        Err(_) => Evaluation::error(key, default, ErrorKind::UserNotSpecified),
    };
    let value = match (kind, &eval.value) {
        (ValueKind::Int, Value::Number(n)) => json!(n.as_f64().unwrap_or(0.0).trunc() as i64),
        _ => eval.value,
    };
    json!({
        "value": value,
        "variationIndex": eval.variation_index,
        "reason": serde_json::to_value(&eval.reason).unwrap(),
    })
}

/// Equality with numbers compared by value (the data writes `1` where an SDK returns `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        _ => a == b,
    }
}

#[test]
fn launchdarkly_contract_data_round_trips_through_yaml() {
    let dir = data_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "LaunchDarkly contract data is missing at {}: {e}",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        27,
        "expected the 27 contract data files in {}",
        dir.display()
    );

    let work = tempfile::tempdir().unwrap();
    let (mut passed, mut failed, mut documents) = (0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    for file in &files {
        let fname = file.file_name().unwrap().to_string_lossy().to_string();
        let docs: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        for (di, doc) in docs.iter().enumerate() {
            documents += 1;
            let sdk = &doc["sdkData"];
            let direct_doc = import(sdk).expect("sdkData imports");
            let yaml = featurectl::import::to_yaml(&direct_doc).expect("YAML is written");

            // The binary writes the very same YAML.
            let input = common::write(work.path(), &format!("{fname}.{di}.json"), &sdk.to_string());
            let out = work.path().join(format!("{fname}.{di}.yaml"));
            let r = common::featurectl(
                work.path(),
                &[
                    "import",
                    "--from",
                    "launchdarkly",
                    input.to_str().unwrap(),
                    "-o",
                    out.to_str().unwrap(),
                ],
            );
            assert_eq!(r.code, 0, "{fname} #{di}: {r:?}");
            assert_eq!(
                std::fs::read_to_string(&out).unwrap(),
                yaml,
                "{fname} #{di}"
            );

            let parsed = parse_document(&yaml, Format::Yaml)
                .unwrap_or_else(|e| panic!("{fname} #{di}: YAML does not parse: {e}\n{yaml}"));
            assert_eq!(
                parsed.document, direct_doc,
                "{fname} #{di}: the YAML reads back differently"
            );
            let from_yaml = parsed.compile(Some("imported.yaml"));
            let direct = compile(direct_doc);

            for case in doc["evaluations"].as_array().unwrap() {
                let name = format!(
                    "{fname}: {} / {}",
                    doc["name"].as_str().unwrap_or(""),
                    case["name"].as_str().unwrap_or("")
                );
                let got_yaml = run_case(&from_yaml, sdk, case);
                let got_direct = run_case(&direct, sdk, case);
                let mut want = case["expect"].clone();
                if want.get("variationIndex").is_none() {
                    want["variationIndex"] = Value::Null;
                }
                // Identical (types included) to the direct import; equal by value to the data.
                if got_yaml == got_direct && same(&got_yaml, &want) {
                    passed += 1;
                } else {
                    failed += 1;
                    failures.push(format!(
                        "{name}\n  want   {want}\n  direct {got_direct}\n  yaml   {got_yaml}"
                    ));
                }
            }
        }
    }
    for f in failures.iter().take(30) {
        eprintln!("{f}");
    }
    println!("round trip of {documents} documents: {passed} passed, {failed} failed");
    assert_eq!(passed + failed, 728, "expected 728 evaluations");
    assert_eq!(
        failed, 0,
        "{failed} evaluations differ after the YAML round trip"
    );
}
