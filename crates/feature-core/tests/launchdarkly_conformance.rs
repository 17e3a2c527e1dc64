//! LaunchDarkly's server-side evaluation contract data (728 evaluations): every flag and
//! segment is imported, every evaluation compared on value, variation index and the whole
//! reason. Cases on `tests/data/launchdarkly/skip.txt` (one `file: case name: reason` per line)
//! are skipped; the list is empty.

use feature_core::launchdarkly::import;
use feature_core::{compile, Context, Snapshot, ValueKind};
use serde_json::{json, Value};
use std::path::PathBuf;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/launchdarkly/server-side-eval")
}

/// The caller's default the harness uses when a case gives none.
fn inferred_default(sdk: &Value, flag: &str) -> Value {
    match sdk["flags"][flag]["variations"].get(0) {
        Some(Value::Bool(_)) => json!(false),
        Some(Value::Number(_)) => json!(0),
        Some(Value::String(_)) => json!(""),
        _ => Value::Null,
    }
}

fn kind_of(t: Option<&str>) -> ValueKind {
    match t {
        Some("bool") => ValueKind::Bool,
        Some("int") => ValueKind::Int,
        Some("double") => ValueKind::Float,
        Some("string") => ValueKind::String,
        _ => ValueKind::Any,
    }
}

/// The value a typed accessor hands back.
fn typed(kind: ValueKind, v: Value) -> Value {
    match (kind, &v) {
        (ValueKind::Int, Value::Number(n)) => json!(n.as_f64().unwrap_or(0.0).trunc() as i64),
        _ => v,
    }
}

/// Evaluates one case the way an SDK's typed accessor does; returns the LaunchDarkly-shaped result.
pub fn run_case(snap: &Snapshot, sdk: &Value, case: &Value) -> Value {
    let key = case["flagKey"].as_str().unwrap_or_default();
    let default = case
        .get("default")
        .cloned()
        .unwrap_or_else(|| inferred_default(sdk, key));
    let kind = kind_of(case["valueType"].as_str());
    let eval = match Context::from_json(&case["context"]) {
        Ok(ctx) => snap
            .evaluate(key, &ctx)
            .expect(kind)
            .to_evaluation(key, default.clone()),
        Err(_) => feature_core::Evaluation::error(
            key,
            default.clone(),
            feature_core::ErrorKind::UserNotSpecified,
        ),
    };
    json!({
        "value": typed(kind, eval.value),
        "variationIndex": eval.variation_index,
        "reason": serde_json::to_value(&eval.reason).unwrap(),
    })
}

fn normalize(expect: &Value) -> Value {
    let mut e = expect.clone();
    if e.get("variationIndex").is_none() {
        e["variationIndex"] = Value::Null;
    }
    e
}

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
fn launchdarkly_contract_data() {
    let dir = data_dir();
    let skip_list =
        std::fs::read_to_string(dir.parent().unwrap().join("skip.txt")).unwrap_or_default();
    let skips: Vec<&str> = skip_list
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("conformance data is missing: tests/data/launchdarkly/server-side-eval")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 27, "expected the 27 contract data files");
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut failures = Vec::new();
    for file in &files {
        let fname = file.file_name().unwrap().to_string_lossy().to_string();
        let docs: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        for doc in &docs {
            let sdk = &doc["sdkData"];
            let snap = compile(import(sdk).expect("sdkData imports"));
            for case in doc["evaluations"].as_array().unwrap() {
                let name = format!(
                    "{} / {}",
                    doc["name"].as_str().unwrap_or(""),
                    case["name"].as_str().unwrap_or("")
                );
                if skips
                    .iter()
                    .any(|s| s.starts_with(&format!("{fname}: {name}:")))
                {
                    skipped += 1;
                    continue;
                }
                let got = run_case(&snap, sdk, case);
                let want = normalize(&case["expect"]);
                if same(&got, &want) {
                    passed += 1;
                } else {
                    failed += 1;
                    failures.push(format!(
                        "{fname}: {name}\n  context {}\n  want {want}\n  got  {got}",
                        case["context"]
                    ));
                }
            }
        }
    }
    for f in failures.iter().take(40) {
        eprintln!("{f}");
    }
    println!("launchdarkly conformance: {passed} passed, {failed} failed, {skipped} skipped");
    assert_eq!(passed + failed + skipped, 728, "expected 728 evaluations");
    assert_eq!(failed, 0, "{failed} conformance cases failed");
}
