//! The evaluation half of the LaunchDarkly conformance harness, shared by the tests of the
//! crates that depend on `feature-core` (each includes this file with `#[path]`). It cannot be
//! a function of `feature-testdata`: that crate must not depend on `feature-core`, or
//! `feature-core`'s own tests would build a second, incompatible copy of it.

use feature_core::{Context, ErrorKind, Evaluation, Snapshot, ValueKind};
use feature_testdata::launchdarkly::{Case, Outcome, ValueType};

/// One case evaluated as an SDK's typed accessor does: value, variation, reason.
pub(crate) fn evaluate(snap: &Snapshot, case: &Case) -> Outcome {
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
        reason: serde_json::to_value(&eval.reason).expect("a reason serializes"),
    }
}
