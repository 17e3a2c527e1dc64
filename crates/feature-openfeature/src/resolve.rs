//! This toolkit's evaluation outcome → OpenFeature's resolution details.

use feature::engine::model::Flag;
use feature::{ErrorKind, Evaluation, ProviderState, Reason};
use open_feature::provider::ProviderStatus;
use open_feature::{
    EvaluationError, EvaluationErrorCode, EvaluationReason, FlagMetadata, StructValue,
};
use serde_json::Value;

/// The OpenFeature error code of an [`ErrorKind`]:
///
/// | `feature` | OpenFeature |
/// |---|---|
/// | `FLAG_NOT_FOUND` | `FLAG_NOT_FOUND` |
/// | `MALFORMED_FLAG` | `PARSE_ERROR` |
/// | `WRONG_TYPE` | `TYPE_MISMATCH` |
/// | `CLIENT_NOT_READY` | `PROVIDER_NOT_READY` |
/// | `USER_NOT_SPECIFIED` | `INVALID_CONTEXT` |
/// | `EXCEPTION` | `GENERAL` (`EXCEPTION`) |
pub fn error_code(kind: ErrorKind) -> EvaluationErrorCode {
    match kind {
        ErrorKind::FlagNotFound => EvaluationErrorCode::FlagNotFound,
        ErrorKind::MalformedFlag => EvaluationErrorCode::ParseError,
        ErrorKind::WrongType => EvaluationErrorCode::TypeMismatch,
        ErrorKind::ClientNotReady => EvaluationErrorCode::ProviderNotReady,
        ErrorKind::UserNotSpecified => EvaluationErrorCode::InvalidContext,
        other => EvaluationErrorCode::General(other.as_str().to_owned()),
    }
}

/// The OpenFeature reason of a successful evaluation; `flag` is the flag's definition when the
/// client has it (it tells a percentage rollout from a fixed variation, and a flag without
/// targeting from one whose targeting did not match):
///
/// | `feature` | OpenFeature |
/// |---|---|
/// | `OFF` | `DISABLED` |
/// | `TARGET_MATCH` | `TARGETING_MATCH` |
/// | `RULE_MATCH` | `SPLIT` when the rule serves a rollout (or an experiment), else `TARGETING_MATCH` |
/// | `FALLTHROUGH` | `SPLIT` when the fallthrough is a rollout or weighted variants (or an experiment); `STATIC` when the flag has no targets, rules or prerequisites; else `DEFAULT` |
/// | `PREREQUISITE_FAILED` | `DEFAULT` (the flag's off value; `prerequisiteKey` in the metadata) |
/// | `OVERRIDE` | `STATIC` (a local override) |
/// | `ERROR` | `ERROR` (the evaluation itself fails with [`error_code`]) |
pub fn reason_for(eval: &Evaluation, flag: Option<&Flag>) -> EvaluationReason {
    match &eval.reason {
        Reason::Off => EvaluationReason::Disabled,
        Reason::TargetMatch => EvaluationReason::TargetingMatch,
        Reason::RuleMatch {
            rule_index,
            in_experiment,
            ..
        } => {
            let rollout = flag
                .and_then(|f| f.rules.get(*rule_index))
                .is_some_and(|r| r.rollout.is_some());
            if *in_experiment || rollout {
                EvaluationReason::Split
            } else {
                EvaluationReason::TargetingMatch
            }
        }
        Reason::Fallthrough { in_experiment } => {
            let Some(f) = flag else {
                return if *in_experiment {
                    EvaluationReason::Split
                } else {
                    EvaluationReason::Default
                };
            };
            let split = match &f.fallthrough {
                Some(serve) => serve.rollout.is_some(),
                None => f.variants.iter().any(|v| v.weight.is_some()),
            };
            if *in_experiment || split {
                EvaluationReason::Split
            } else if f.rules.is_empty() && f.targets.is_empty() && f.prerequisites.is_empty() {
                EvaluationReason::Static
            } else {
                EvaluationReason::Default
            }
        }
        Reason::PrerequisiteFailed { .. } => EvaluationReason::Default,
        Reason::Override => EvaluationReason::Static,
        Reason::Error { .. } => EvaluationReason::Error,
        other => EvaluationReason::Other(other.kind().as_str().to_owned()),
    }
}

/// The flag metadata of an evaluation: `reasonKind` (this toolkit's reason: `RULE_MATCH`, ...),
/// and when they apply `variationIndex`, `ruleIndex`, `ruleId`, `inExperiment`,
/// `prerequisiteKey`, and the flag's `version`.
pub fn metadata_for(eval: &Evaluation, flag: Option<&Flag>) -> FlagMetadata {
    let mut m = FlagMetadata::default().with_value("reasonKind", eval.reason.kind().as_str());
    if let Some(i) = eval.variation_index.and_then(|i| i64::try_from(i).ok()) {
        m.add_value("variationIndex", i);
    }
    if let Some(i) = eval.rule_index().and_then(|i| i64::try_from(i).ok()) {
        m.add_value("ruleIndex", i);
    }
    if let Some(id) = eval.rule_id() {
        m.add_value("ruleId", id);
    }
    if eval.in_experiment() {
        m.add_value("inExperiment", true);
    }
    if let Some(p) = eval.prerequisite_key() {
        m.add_value("prerequisiteKey", p);
    }
    if let Some(v) = flag
        .and_then(|f| f.version)
        .and_then(|v| i64::try_from(v).ok())
    {
        m.add_value("version", v);
    }
    m
}

/// The OpenFeature provider status of a provider state: `starting` → `NOT_READY`, `ready` →
/// `READY`, `degraded` (serving the last good flags) → `STALE`, `unavailable` → `ERROR`,
/// `closed` → `NOT_READY`.
pub fn status_for(state: ProviderState) -> ProviderStatus {
    match state {
        ProviderState::Ready => ProviderStatus::Ready,
        ProviderState::Degraded => ProviderStatus::STALE,
        ProviderState::Unavailable => ProviderStatus::Error,
        ProviderState::Starting | ProviderState::Closed => ProviderStatus::NotReady,
    }
}

pub(crate) fn error(code: EvaluationErrorCode, message: String) -> EvaluationError {
    EvaluationError {
        code,
        message: Some(message),
    }
}

/// A whole number: an integer, or a number with its fraction truncated toward zero (as
/// `feature::Client::int` reads it); `None` out of `i64`'s range.
pub(crate) fn as_int(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    let f = v.as_f64()?.trunc();
    // `i64::MAX as f64` rounds up to 2^63, itself out of range.
    if f >= -(2f64.powi(63)) && f < 2f64.powi(63) {
        Some(f as i64)
    } else {
        None
    }
}

/// A JSON object as an OpenFeature structure; `None` for anything but an object, or an object
/// holding an array with `null` in it (OpenFeature's values have no null; fields holding `null`
/// are left out).
pub(crate) fn as_struct(v: &Value) -> Option<StructValue> {
    match v {
        Value::Object(m) => {
            let mut s = StructValue::default();
            for (k, v) in m {
                if !v.is_null() {
                    s.add_field(k.clone(), to_value(v)?);
                }
            }
            Some(s)
        }
        _ => None,
    }
}

fn to_value(v: &Value) -> Option<open_feature::Value> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => open_feature::Value::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => open_feature::Value::Int(i),
            None => open_feature::Value::Float(n.as_f64()?),
        },
        Value::String(s) => open_feature::Value::String(s.clone()),
        Value::Array(a) => {
            open_feature::Value::Array(a.iter().map(to_value).collect::<Option<_>>()?)
        }
        Value::Object(_) => open_feature::Value::Struct(as_struct(v)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_kind_has_an_openfeature_code() {
        let codes: Vec<String> = ErrorKind::ALL
            .iter()
            .map(|k| error_code(*k).to_string())
            .collect();
        assert_eq!(
            codes,
            [
                "FLAG_NOT_FOUND",
                "PARSE_ERROR",
                "TYPE_MISMATCH",
                "PROVIDER_NOT_READY",
                "INVALID_CONTEXT",
                "EXCEPTION"
            ]
        );
    }

    #[test]
    fn every_provider_state_has_a_status() {
        let states = [
            ProviderState::Starting,
            ProviderState::Ready,
            ProviderState::Degraded,
            ProviderState::Unavailable,
            ProviderState::Closed,
        ];
        let statuses: Vec<ProviderStatus> = states.into_iter().map(status_for).collect();
        assert_eq!(
            statuses,
            [
                ProviderStatus::NotReady,
                ProviderStatus::Ready,
                ProviderStatus::STALE,
                ProviderStatus::Error,
                ProviderStatus::NotReady
            ]
        );
    }

    #[test]
    fn whole_numbers_and_structures() {
        use serde_json::json;
        assert_eq!(as_int(&json!(7)), Some(7));
        assert_eq!(as_int(&json!(-2.9)), Some(-2));
        assert_eq!(as_int(&json!(1e300)), None);
        assert_eq!(as_int(&json!("7")), None);
        assert!(as_struct(&json!([1])).is_none());
        assert!(as_struct(&json!({"a": [1, null]})).is_none());
        let s = as_struct(&json!({"a": null, "b": {"c": 18446744073709551615u64}})).unwrap();
        assert!(!s.fields.contains_key("a"));
        assert!(matches!(
            s.fields
                .get("b")
                .and_then(|b| b.as_struct())
                .and_then(|b| b.fields.get("c")),
            Some(open_feature::Value::Float(_))
        ));
    }
}
