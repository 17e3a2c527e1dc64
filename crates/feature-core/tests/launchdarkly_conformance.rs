//! LaunchDarkly's server-side evaluation contract data (728 evaluations, from
//! `feature-testdata`): every flag and segment is imported, every evaluation compared on value,
//! variation index and the whole reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature_core::launchdarkly::import;
use feature_core::{compile, Context, ErrorKind, Evaluation, Snapshot, ValueKind};
use feature_testdata::launchdarkly::{data_sets, run, Case, Outcome, ValueType};

/// Evaluates one case the way an SDK's typed accessor does.
fn evaluate(snap: &Snapshot, case: &Case) -> Outcome {
    let key = case.flag_key.as_str();
    let kind = match case.value_type {
        ValueType::Bool => ValueKind::Bool,
        ValueType::Int => ValueKind::Int,
        ValueType::Double => ValueKind::Float,
        ValueType::String => ValueKind::String,
        ValueType::Any => ValueKind::Any,
    };
    let eval = match Context::from_json(&case.context) {
        Ok(ctx) => snap
            .evaluate(key, &ctx)
            .check_type(kind)
            .to_evaluation(key, case.default.clone()),
        Err(_) => Evaluation::error(key, case.default.clone(), ErrorKind::UserNotSpecified),
    };
    Outcome {
        value: case.value_type.returned(eval.value),
        variation_index: eval.variation_index,
        reason: serde_json::to_value(&eval.reason).unwrap(),
    }
}

#[test]
fn launchdarkly_contract_data() {
    let sets = data_sets();
    let snapshots: Vec<Snapshot> = sets
        .iter()
        .map(|set| compile(import(&set.sdk_data).expect("sdkData imports")))
        .collect();
    let report = run(&sets, |set, case| evaluate(&snapshots[set.index], case));
    println!("launchdarkly conformance: {report}");
    assert_eq!(report.cases, 728, "expected 728 evaluations");
    report.assert_all_passed();
}
