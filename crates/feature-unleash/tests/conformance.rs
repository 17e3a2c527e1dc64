//! Unleash's client specification (`@unleash/client-specification` 6.1.0, in
//! `tests/data/unleash-client-specification`): every suite listed in its `index.json`, run
//! through [`UnleashEngine`] the way the provider drives it. Each case's context is built as a
//! toolkit [`Context`] and goes through the engine's context mapping, so the mapping is tested
//! too. `cargo test -p feature-unleash --test conformance -- --nocapture` prints the counts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature_core::provider::Engine;
use feature_core::{Context, ErrorKind, Reason, ValueKind};
use feature_unleash::{Payload, UnleashEngine, Variant};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Cases known to fail, as `(suite, description, why)`. The test fails when this list and the
/// cases that actually fail differ in either direction, so it cannot go stale.
///
/// Empty: Yggdrasil 0.21.7 applies delta-API messages (`{"events": [...]}`), so suites 19
/// (hydration) and 20 (events) load their state through the same `load_json` as full
/// responses and pass like every other suite.
const EXPECTED_FAILURES: &[(&str, &str, &str)] = &[];

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/unleash-client-specification")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "the Unleash client specification is missing: cannot read {}: {e}",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A spec context as a toolkit context: `userId` is the key, the other standard fields and
/// every property become attributes (`remoteAddress` as `ip`, to exercise that mapping).
fn context(spec: &Value) -> Context {
    let obj = spec.as_object().cloned().unwrap_or_default();
    let key = obj.get("userId").and_then(Value::as_str).unwrap_or("");
    let mut ctx = Context::new(key);
    for (name, value) in &obj {
        match name.as_str() {
            "userId" => {}
            "remoteAddress" => ctx = ctx.with_attribute("ip", value.clone()),
            "properties" => {
                for (k, v) in value.as_object().into_iter().flatten() {
                    ctx = ctx.with_attribute(k, v.clone());
                }
            }
            _ => ctx = ctx.with_attribute(name, value.clone()),
        }
    }
    ctx
}

fn expected_variant(v: &Value) -> Variant {
    Variant {
        name: v["name"].as_str().unwrap_or_default().to_owned(),
        payload: v.get("payload").filter(|p| !p.is_null()).map(|p| Payload {
            kind: p["type"].as_str().unwrap_or_default().to_owned(),
            value: p["value"].as_str().unwrap_or_default().to_owned(),
        }),
        enabled: v["enabled"].as_bool().unwrap_or_default(),
        feature_enabled: v["feature_enabled"].as_bool().unwrap_or_default(),
    }
}

/// What `evaluate(.., ValueKind::String, "<default>")` must serve for this expected variant.
fn expected_string(v: &Variant) -> Value {
    match &v.payload {
        _ if !v.enabled => json!("<default>"),
        Some(p) if p.kind == "string" || p.kind == "csv" => json!(p.value),
        // Any other payload, or none, is a type mismatch: the caller's default.
        _ => json!("<default>"),
    }
}

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: Vec<(String, String, String)>,
}

fn run_suite(file: &str, tally: &mut Tally) {
    let suite = read_json(&data_dir().join(file));
    let engine = UnleashEngine::new();
    let state = suite
        .get("state")
        .unwrap_or_else(|| panic!("{file}: no state"));
    match engine.load_json(state.to_string().as_bytes()) {
        Ok(warnings) => {
            for w in warnings {
                println!(
                    "{file}: toggle {:?} does not compile: {}",
                    w.toggle, w.message
                );
            }
        }
        Err(e) => panic!("{file}: the state does not load: {e}"),
    }
    let mut check = |description: &str, ok: bool, detail: String| {
        if ok {
            tally.passed += 1;
        } else {
            tally
                .failed
                .push((file.to_owned(), description.to_owned(), detail));
        }
    };
    for case in suite["tests"].as_array().into_iter().flatten() {
        let description = case["description"].as_str().unwrap_or_default();
        let toggle = case["toggleName"].as_str().unwrap_or_default();
        let expected = case["expectedResult"]
            .as_bool()
            .unwrap_or_else(|| panic!("{file}: {description}: expectedResult is not a bool"));
        let ctx = context(&case["context"]);
        // `false` is what Unleash's SDKs serve for an unknown toggle; evaluating again with
        // `true` shows whether the answer came from the toggle or from the default.
        let eval = engine.evaluate(toggle, &ctx, ValueKind::Bool, &json!(false));
        let again = engine.evaluate(toggle, &ctx, ValueKind::Bool, &json!(true));
        let reason_fits = match &eval.reason {
            // A strategy matched.
            Reason::TargetMatch => eval.value == json!(true),
            // Switched on but no strategy matched, or switched off.
            Reason::Fallthrough { .. } | Reason::Off => eval.value == json!(false),
            Reason::Error { error_kind } => {
                *error_kind == ErrorKind::FlagNotFound && engine.is_enabled(toggle, &ctx).is_none()
            }
            _ => false,
        };
        let default_used = eval.error_kind().is_some();
        let ok = eval.value == json!(expected)
            && reason_fits
            && (default_used || (again.value == eval.value && again.reason == eval.reason));
        check(
            description,
            ok,
            format!(
                "{toggle}: expected {expected}, got {} ({:?}), with default true {} ({:?})",
                eval.value, eval.reason, again.value, again.reason
            ),
        );
    }
    for case in suite["variantTests"].as_array().into_iter().flatten() {
        let description = case["description"].as_str().unwrap_or_default();
        let toggle = case["toggleName"].as_str().unwrap_or_default();
        let expected = expected_variant(&case["expectedResult"]);
        let ctx = context(&case["context"]);
        let actual = engine.variant(toggle, &ctx);
        let string = engine.evaluate(toggle, &ctx, ValueKind::String, &json!("<default>"));
        let ok = actual == expected && string.value == expected_string(&expected);
        check(
            description,
            ok,
            format!(
                "{toggle}: expected {expected:?} / {}, got {actual:?} / {}",
                expected_string(&expected),
                string.value
            ),
        );
    }
}

#[test]
fn every_suite_of_the_client_specification() {
    let index = read_json(&data_dir().join("index.json"));
    let suites: Vec<&str> = index
        .as_array()
        .expect("index.json lists the suites")
        .iter()
        .map(|s| s.as_str().expect("suite file name"))
        .collect();
    assert!(
        suites.len() >= 22,
        "index.json lists {} suites, expected the 22 of version 6.1.0",
        suites.len()
    );
    let mut tally = Tally::default();
    for file in &suites {
        let before = (tally.passed, tally.failed.len());
        run_suite(file, &mut tally);
        println!(
            "{file}: {} passed, {} failed",
            tally.passed - before.0,
            tally.failed.len() - before.1
        );
    }
    let expected: BTreeSet<(&str, &str)> =
        EXPECTED_FAILURES.iter().map(|(s, d, _)| (*s, *d)).collect();
    let failed: BTreeSet<(&str, &str)> = tally
        .failed
        .iter()
        .map(|(s, d, _)| (s.as_str(), d.as_str()))
        .collect();
    let unexpected: Vec<_> = tally
        .failed
        .iter()
        .filter(|(s, d, _)| !expected.contains(&(s.as_str(), d.as_str())))
        .collect();
    let fixed: Vec<_> = expected.difference(&failed).collect();
    let expected_failures = failed.intersection(&expected).count();
    println!(
        "Unleash client specification: {} suites, {} passed, {} failed, {} expected failures",
        suites.len(),
        tally.passed,
        unexpected.len(),
        expected_failures
    );
    for (suite, description, detail) in &unexpected {
        println!("FAILED {suite}: {description}: {detail}");
    }
    let ran = tally.passed + tally.failed.len();
    assert!(ran > 250, "only {ran} cases ran: is the data complete?");
    assert!(
        unexpected.is_empty(),
        "{} case(s) failed that are not expected failures (see above)",
        unexpected.len()
    );
    assert!(
        fixed.is_empty(),
        "expected failures that now pass (remove them from EXPECTED_FAILURES): {fixed:?}"
    );
}

#[test]
fn the_copied_suites_are_the_listed_ones() {
    let index = read_json(&data_dir().join("index.json"));
    for file in index.as_array().expect("a list") {
        let file = file.as_str().expect("a file name");
        assert!(
            data_dir().join(file).is_file(),
            "{file} is listed but missing"
        );
    }
    for name in ["LICENSE", "NOTICE"] {
        assert!(data_dir().join(name).is_file(), "{name} is missing");
    }
}
