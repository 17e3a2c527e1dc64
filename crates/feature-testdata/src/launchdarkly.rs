//! LaunchDarkly's server-side evaluation contract data (`data/launchdarkly/server-side-eval`,
//! 27 files, 728 evaluations; source and licence in `data/launchdarkly/NOTICE`) and the harness
//! that checks an engine against it.
//!
//! [`data_sets`] loads the data as plain values: each [`DataSet`] is one document of a data
//! file, LaunchDarkly SDK data (`{"flags": {...}, "segments": {...}}`) with the [`Case`]s to
//! evaluate against it. A case's caller default is already filled in (inferred from the flag's
//! first variation when the data gives none). [`run`] hands every case to a closure that
//! evaluates it however the test under way does, compares what the closure returns with the
//! expected value, variation index and reason, and returns a [`Report`] listing every
//! mismatch.
//!
//! ```
//! use feature_testdata::launchdarkly::{data_sets, run};
//!
//! let sets = data_sets();
//! // A real test imports `set.sdk_data` into its engine (once per set) and evaluates the case
//! // there; echoing the expectation back passes trivially.
//! let report = run(&sets, |_set, case| case.expect.clone());
//! assert_eq!(report.cases, 728);
//! report.assert_all_passed();
//! ```

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};
use std::fmt;
use std::path::{Path, PathBuf};

/// How many data files the data has.
const FILES: usize = 27;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/launchdarkly/server-side-eval")
}

/// The typed accessor a case calls (`valueType` in the data; `any` when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    /// `boolVariation`.
    Bool,
    /// `intVariation`.
    Int,
    /// `doubleVariation`.
    Double,
    /// `stringVariation`.
    String,
    /// `jsonVariation`: any value.
    #[default]
    Any,
}

impl ValueType {
    /// The value this accessor hands back for `value`: `Int` truncates a number toward zero,
    /// the others return `value` as it is. (Checking the type, and serving the default with
    /// `ERROR`/`WRONG_TYPE` when it does not match, is the evaluation's job.)
    pub fn returned(self, value: Value) -> Value {
        match (self, &value) {
            (ValueType::Int, Value::Number(n)) => json!(n.as_f64().unwrap_or(0.0).trunc() as i64),
            _ => value,
        }
    }
}

/// The result of one evaluation as LaunchDarkly's SDKs report it: what a case expects, and
/// what a test's evaluation gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Outcome {
    /// The value served.
    pub value: Value,
    /// The index of the variation served; `None` when the caller's default was served.
    #[serde(default)]
    pub variation_index: Option<usize>,
    /// The reason, in LaunchDarkly's JSON form: `{"kind": "RULE_MATCH", "ruleIndex": 0,
    /// "ruleId": "..."}`, `{"kind": "ERROR", "errorKind": "WRONG_TYPE"}`, ...
    pub reason: Value,
}

impl Outcome {
    /// Whether `self` and `other` agree: the same variation index, and the same value and
    /// reason, numbers compared by value (the data writes `1` where an engine may give `1.0`).
    pub fn matches(&self, other: &Outcome) -> bool {
        self.variation_index == other.variation_index
            && same(&self.value, &other.value)
            && same(&self.reason, &other.reason)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_string(self) {
            Ok(s) => f.write_str(&s),
            Err(_) => write!(f, "{self:?}"),
        }
    }
}

/// JSON equality with numbers compared by value.
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

/// One evaluation to make.
#[derive(Debug, Clone)]
pub struct Case {
    /// The case's name (empty for a few unnamed ones).
    pub name: String,
    /// The flag to evaluate.
    pub flag_key: String,
    /// The evaluation context in LaunchDarkly's JSON form: a context with `kind` (single- or
    /// multi-kind), or an old-style user object without it.
    pub context: Value,
    /// The caller's default: as the data gives it, else inferred from the type of the flag's
    /// first variation (bool → `false`, number → `0`, string → `""`, otherwise `null`).
    pub default: Value,
    /// The typed accessor to call.
    pub value_type: ValueType,
    /// What the evaluation must give.
    pub expect: Outcome,
}

/// One document of a data file: flags and segments, and the evaluations made against them.
#[derive(Debug, Clone)]
pub struct DataSet {
    /// The position of this set in the list [`data_sets`] returns, to find what a test
    /// prepared for it.
    pub index: usize,
    /// The data file, e.g. `segment-match.json`.
    pub file: String,
    /// The document's name.
    pub name: String,
    /// LaunchDarkly server-side SDK data: `{"flags": {"<key>": <flag>}, "segments": {...}}`.
    /// Some flags omit `key`, `version` or `salt`: the key is the map key, a missing salt is
    /// `""`.
    pub sdk_data: Value,
    /// The evaluations.
    pub cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDocument {
    #[serde(default)]
    name: String,
    sdk_data: Value,
    evaluations: Vec<RawCase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawCase {
    #[serde(default)]
    name: String,
    flag_key: String,
    context: Value,
    /// `Some(Value::Null)` when the data gives `null`, `None` when it gives nothing.
    #[serde(default, deserialize_with = "present")]
    default: Option<Value>,
    #[serde(default)]
    value_type: ValueType,
    expect: Outcome,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The caller's default the harness uses when a case gives none.
fn inferred_default(sdk_data: &Value, flag: &str) -> Value {
    match sdk_data["flags"][flag]["variations"].get(0) {
        Some(Value::Bool(_)) => json!(false),
        Some(Value::Number(_)) => json!(0),
        Some(Value::String(_)) => json!(""),
        _ => Value::Null,
    }
}

/// Every data set of every data file, files in name order.
///
/// # Panics
///
/// When the data is missing, unreadable or not in the expected form, or when there are not
/// 27 data files: a conformance test must fail, not skip, without its data.
pub fn data_sets() -> Vec<DataSet> {
    let dir = data_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "LaunchDarkly contract data is missing: cannot read {}: {e}",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .map(|e| {
            e.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        FILES,
        "expected the {FILES} contract data files in {}",
        dir.display()
    );
    let mut sets = Vec::new();
    for path in &files {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let documents: Vec<RawDocument> = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not contract data: {e}", path.display()));
        for doc in documents {
            let cases = doc
                .evaluations
                .into_iter()
                .map(|c| Case {
                    default: c
                        .default
                        .unwrap_or_else(|| inferred_default(&doc.sdk_data, &c.flag_key)),
                    name: c.name,
                    flag_key: c.flag_key,
                    context: c.context,
                    value_type: c.value_type,
                    expect: c.expect,
                })
                .collect();
            sets.push(DataSet {
                index: sets.len(),
                file: file.clone(),
                name: doc.name,
                sdk_data: doc.sdk_data,
                cases,
            });
        }
    }
    sets
}

/// One case whose evaluation did not give the expected outcome.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The data file.
    pub file: String,
    /// The data set's name.
    pub data_set: String,
    /// The case's name.
    pub case: String,
    /// The case's context.
    pub context: Value,
    /// What the case expects.
    pub want: Outcome,
    /// What the evaluation gave.
    pub got: Outcome,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} / {}\n  context {}\n  want {}\n  got  {}",
            self.file, self.data_set, self.case, self.context, self.want, self.got
        )
    }
}

/// What [`run`] found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The data sets run.
    pub data_sets: usize,
    /// The cases evaluated.
    pub cases: usize,
    /// Every case that did not give its expected outcome.
    pub failures: Vec<Failure>,
}

impl Report {
    /// The cases that gave their expected outcome.
    pub fn passed(&self) -> usize {
        self.cases - self.failures.len()
    }

    /// Panics, listing every failure, unless every case passed.
    pub fn assert_all_passed(&self) {
        if self.failures.is_empty() {
            return;
        }
        let list: Vec<String> = self.failures.iter().map(ToString::to_string).collect();
        panic!(
            "{} of {} LaunchDarkly contract evaluations failed:\n{}",
            self.failures.len(),
            self.cases,
            list.join("\n")
        );
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} data sets, {} evaluations: {} passed, {} failed",
            self.data_sets,
            self.cases,
            self.passed(),
            self.failures.len()
        )
    }
}

/// Evaluates every case of `sets` with `evaluate` and compares the outcome with the expected
/// one ([`Outcome::matches`]).
pub fn run(sets: &[DataSet], mut evaluate: impl FnMut(&DataSet, &Case) -> Outcome) -> Report {
    let mut report = Report {
        data_sets: sets.len(),
        ..Report::default()
    };
    for set in sets {
        for case in &set.cases {
            report.cases += 1;
            let got = evaluate(set, case);
            if !got.matches(&case.expect) {
                report.failures.push(Failure {
                    file: set.file.clone(),
                    data_set: set.name.clone(),
                    case: case.name.clone(),
                    context: case.context.clone(),
                    want: case.expect.clone(),
                    got,
                });
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_has_728_evaluations_in_numbered_sets() {
        let sets = data_sets();
        assert_eq!(sets.iter().map(|s| s.cases.len()).sum::<usize>(), 728);
        assert!(sets.iter().enumerate().all(|(i, s)| s.index == i));
    }

    #[test]
    fn defaults_are_inferred_from_the_first_variation() {
        let sdk = json!({"flags": {
            "b": {"variations": [true, false]}, "n": {"variations": [1.5]},
            "s": {"variations": ["x"]}, "j": {"variations": [{"a": 1}]}, "none": {}
        }});
        let d = |k| inferred_default(&sdk, k);
        assert_eq!(
            [d("b"), d("n"), d("s"), d("j"), d("none"), d("missing")],
            [
                json!(false),
                json!(0),
                json!(""),
                Value::Null,
                Value::Null,
                Value::Null
            ]
        );
    }

    #[test]
    fn a_null_default_is_kept_and_a_missing_one_is_none() {
        let case = |extra: &str| -> RawCase {
            serde_json::from_str(&format!(
                r#"{{"flagKey": "f", "context": {{}}, "expect": {{"value": 1, "reason": {{}}}}{extra}}}"#
            ))
            .unwrap()
        };
        assert_eq!(case(r#", "default": null"#).default, Some(Value::Null));
        assert_eq!(case("").default, None);
        assert_eq!(case("").expect.variation_index, None);
    }

    #[test]
    fn outcomes_compare_numbers_by_value_and_everything_else_exactly() {
        let o = |value, index, reason| Outcome {
            value,
            variation_index: index,
            reason,
        };
        let want = o(
            json!(1),
            Some(0),
            json!({"kind": "RULE_MATCH", "ruleIndex": 0}),
        );
        assert!(o(
            json!(1.0),
            Some(0),
            json!({"kind": "RULE_MATCH", "ruleIndex": 0.0})
        )
        .matches(&want));
        assert!(!o(json!(1), None, want.reason.clone()).matches(&want));
        assert!(!o(json!("1"), Some(0), want.reason.clone()).matches(&want));
        assert!(!o(json!(1), Some(0), json!({"kind": "RULE_MATCH"})).matches(&want));
        assert!(!o(
            json!(1),
            Some(0),
            json!({"kind": "RULE_MATCH", "ruleIndex": 0, "inExperiment": true})
        )
        .matches(&want));
    }

    #[test]
    fn int_accessors_truncate_and_others_return_the_value() {
        assert_eq!(ValueType::Int.returned(json!(2.9)), json!(2));
        assert_eq!(ValueType::Int.returned(json!(-2.9)), json!(-2));
        assert_eq!(ValueType::Int.returned(json!("x")), json!("x"));
        assert_eq!(ValueType::Double.returned(json!(2.9)), json!(2.9));
        assert_eq!(ValueType::Any.returned(json!(2.9)), json!(2.9));
    }

    #[test]
    fn a_report_lists_every_failure() {
        let sets = data_sets();
        let report = run(&sets[..2], |_, case| Outcome {
            value: json!("wrong"),
            ..case.expect.clone()
        });
        let cases = sets[0].cases.len() + sets[1].cases.len();
        assert_eq!((report.cases, report.failures.len()), (cases, cases));
        assert_eq!(report.passed(), 0);
        let message = std::panic::catch_unwind(|| report.assert_all_passed())
            .expect_err("failures panic")
            .downcast::<String>()
            .expect("a message");
        assert!(message.starts_with(&format!("{cases} of {cases} LaunchDarkly")));
        for f in &report.failures {
            assert!(message.contains(&f.to_string()), "{f} not listed");
        }
        assert!(message.contains(r#"got  {"value":"wrong""#), "{message}");
    }
}
