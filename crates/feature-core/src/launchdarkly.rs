//! Import of LaunchDarkly flag and segment JSON into this project's model.
//!
//! The model is LaunchDarkly's (variation indexes, weights out of 100 000, `bucketBy`, the same
//! reasons and the same bucketing hash), so an import keeps every context in the variation it
//! had. Differences in spelling are translated:
//!
//! - `on` → `enabled`, `variations` → `variants`, `offVariation`, `fallthrough`, `salt`, `rules`,
//!   `prerequisites` keep their meaning;
//! - `targets` and `contextTargets` become one ordered `targets` list (a user-kind entry of
//!   `contextTargets` with no values stands for the `targets` entries of its variation; they
//!   are copied at the first such entry of each variation only, as a repeat could never match
//!   first, so the list is never longer than the input);
//! - a flag with more than [`MAX_TARGET_VALUES`] target keys, or a segment with more than that
//!   many listed keys, is refused ([`ImportError::TooManyTargets`]);
//! - a clause or rollout without a valid `contextKind` names its attribute literally in
//!   LaunchDarkly; here a name starting with `/` is a reference path, so such names are escaped
//!   (`/a` → `/~1a`);
//! - a flag has no `default`: off and fallthrough serve what LaunchDarkly serves;
//! - a `matches` value that is not a valid regular expression never matches in LaunchDarkly but
//!   is an error here, so it is left out of the imported clause.
//!
//! Big ("unbounded") segments keep their members in a big-segment store, which this engine
//! does not read: LaunchDarkly's evaluator without such a store reports
//! `bigSegmentsStatus: NOT_CONFIGURED` and never matches them, whatever inline lists or rules
//! they carry. They are imported as empty segments (never matching), and the LaunchDarkly
//! provider reports the status (see `feature_launchdarkly::FlagEventMeta`).
//!
//! ```
//! use feature_core::launchdarkly::import;
//! let ld = serde_json::json!({"flags": {"f": {"on": true, "variations": [false, true],
//!     "fallthrough": {"variation": 1}, "offVariation": 0, "salt": "s"}}});
//! let doc = import(&ld).unwrap();
//! assert!(doc.flags["f"].enabled);
//! assert_eq!(doc.flags["f"].off_variation, Some(0));
//! ```

use crate::attr::escape_literal;
use crate::model::{
    Clause, Flag, FlagDocument, FlagType, Operator, Prerequisite, Rollout, RolloutKind, Rule,
    Segment, SegmentRule, SegmentTarget, Serve, Target, Variant, WeightedVariation,
};
use serde_json::{Map, Value};

/// Why LaunchDarkly data could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The input is not a JSON object with `flags` (and `segments`), nor a single flag.
    #[error("expected a LaunchDarkly payload with `flags` and `segments`, or a single flag")]
    NotAPayload,
    /// A flag or segment is not a JSON object.
    #[error("{0} is not a JSON object")]
    NotAnObject(String),
    /// A flag lists more target keys, or a segment more included and excluded keys, than
    /// [`MAX_TARGET_VALUES`].
    #[error("{item} lists {count} target keys, more than the limit of {limit}")]
    TooManyTargets {
        /// `flag KEY` or `segment KEY`.
        item: String,
        /// How many keys it lists.
        count: usize,
        /// The limit ([`MAX_TARGET_VALUES`]).
        limit: usize,
    },
}

/// The most target keys one imported flag (all its `targets` and `contextTargets` values) or
/// one segment (its included and excluded keys, of every kind) may list: 1 048 576. An item
/// over the limit is refused with [`ImportError::TooManyTargets`] rather than held in memory;
/// rules with an `in` clause on `key` are the way to target more contexts.
pub const MAX_TARGET_VALUES: usize = 1 << 20;

/// Imports a LaunchDarkly payload (`{"flags": {...}, "segments": {...}}`, as served to SDKs) or
/// a single flag (an object with `key` and `variations`).
pub fn import(payload: &Value) -> Result<FlagDocument, ImportError> {
    let obj = payload.as_object().ok_or(ImportError::NotAPayload)?;
    let mut doc = FlagDocument::default();
    if obj.contains_key("variations") && obj.contains_key("key") {
        let key = str_of(obj, "key").unwrap_or_default().to_owned();
        doc.flags
            .insert(key.clone(), import_flag(&key, payload)?.into());
        return Ok(doc);
    }
    if !obj.contains_key("flags") && !obj.contains_key("segments") {
        return Err(ImportError::NotAPayload);
    }
    for (key, f) in obj
        .get("flags")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        doc.flags.insert(key.clone(), import_flag(key, f)?.into());
    }
    for (key, s) in obj
        .get("segments")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        doc.segments
            .insert(key.clone(), import_segment(key, s)?.into());
    }
    Ok(doc)
}

/// Imports one LaunchDarkly flag.
pub fn import_flag(key: &str, v: &Value) -> Result<Flag, ImportError> {
    let o = v
        .as_object()
        .ok_or_else(|| ImportError::NotAnObject(format!("flag {key}")))?;
    let variations: Vec<Value> = arr(o, "variations").to_vec();
    let mut flag = Flag::new(key);
    flag.flag_type = Some(common_type(&variations));
    flag.variants = variations.into_iter().map(Variant::of).collect();
    flag.enabled = o.get("on").and_then(Value::as_bool).unwrap_or(false);
    flag.off_variation = o.get("offVariation").and_then(Value::as_i64);
    flag.salt = Some(str_of(o, "salt").unwrap_or("").into());
    flag.version = o.get("version").and_then(Value::as_u64);
    flag.fallthrough = Some(serve(o.get("fallthrough").unwrap_or(&Value::Null)));
    flag.prerequisites = arr(o, "prerequisites")
        .iter()
        .filter_map(Value::as_object)
        .map(|p| Prerequisite {
            key: str_of(p, "key").unwrap_or("").to_owned(),
            variation: p.get("variation").and_then(Value::as_i64).unwrap_or(-1),
        })
        .collect();
    flag.targets = targets(o);
    let count: usize = flag.targets.iter().map(|t| t.values.len()).sum();
    if count > MAX_TARGET_VALUES {
        return Err(too_many(format!("flag {key}"), count));
    }
    flag.rules = arr(o, "rules")
        .iter()
        .filter_map(Value::as_object)
        .map(|r| {
            let s = serve(&Value::Object(r.clone()));
            Rule {
                id: str_of(r, "id").filter(|s| !s.is_empty()).map(Box::from),
                description: None,
                clauses: clauses(r),
                variation: s.variation,
                rollout: s.rollout,
                percentage: None,
            }
        })
        .collect();
    Ok(flag)
}

/// Imports one LaunchDarkly segment.
pub fn import_segment(key: &str, v: &Value) -> Result<Segment, ImportError> {
    let o = v
        .as_object()
        .ok_or_else(|| ImportError::NotAnObject(format!("segment {key}")))?;
    let strings = |name: &str| -> Vec<String> {
        arr(o, name)
            .iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let ctx_targets = |name: &str| -> Vec<SegmentTarget> {
        arr(o, name)
            .iter()
            .filter_map(Value::as_object)
            .map(|t| SegmentTarget {
                context_kind: str_of(t, "contextKind").unwrap_or("user").to_owned(),
                values: arr(t, "values")
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect(),
            })
            .collect()
    };
    if o.get("unbounded").and_then(Value::as_bool) == Some(true) {
        return Ok(Segment {
            key: key.to_owned(),
            name: None,
            description: None,
            included: Vec::new(),
            excluded: Vec::new(),
            included_file: None,
            excluded_file: None,
            included_contexts: Vec::new(),
            excluded_contexts: Vec::new(),
            rules: Vec::new(),
            salt: Some(str_of(o, "salt").unwrap_or("").into()),
            version: o.get("version").and_then(Value::as_u64),
        });
    }
    let (included, excluded) = (strings("included"), strings("excluded"));
    let (included_contexts, excluded_contexts) = (
        ctx_targets("includedContexts"),
        ctx_targets("excludedContexts"),
    );
    let count = included.len()
        + excluded.len()
        + included_contexts
            .iter()
            .chain(&excluded_contexts)
            .map(|t| t.values.len())
            .sum::<usize>();
    if count > MAX_TARGET_VALUES {
        return Err(too_many(format!("segment {key}"), count));
    }
    Ok(Segment {
        key: key.to_owned(),
        name: None,
        description: None,
        included,
        excluded,
        included_file: None,
        excluded_file: None,
        included_contexts,
        excluded_contexts,
        rules: arr(o, "rules")
            .iter()
            .filter_map(Value::as_object)
            .map(|r| {
                let kind = valid_kind(r.get("rolloutContextKind"));
                SegmentRule {
                    id: str_of(r, "id").filter(|s| !s.is_empty()).map(Box::from),
                    clauses: clauses(r),
                    weight: r.get("weight").and_then(Value::as_f64).map(|w| w as i64),
                    bucket_by: str_of(r, "bucketBy").map(|b| reference(b, kind.is_some()).into()),
                    rollout_context_kind: kind,
                }
            })
            .collect(),
        salt: Some(str_of(o, "salt").unwrap_or("").into()),
        version: o.get("version").and_then(Value::as_u64),
    })
}

fn too_many(item: String, count: usize) -> ImportError {
    ImportError::TooManyTargets {
        item,
        count,
        limit: MAX_TARGET_VALUES,
    }
}

fn arr<'a>(o: &'a Map<String, Value>, name: &str) -> &'a [Value] {
    o.get(name)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn str_of<'a>(o: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    o.get(name).and_then(Value::as_str)
}

/// The context kind if present and valid (LaunchDarkly ignores an invalid one).
fn valid_kind(v: Option<&Value>) -> Option<Box<str>> {
    let k = v?.as_str()?;
    crate::context::validate_kind(k).ok()?;
    Some(k.into())
}

/// An attribute as this format reads it: a reference when the LaunchDarkly side had a valid
/// context kind, otherwise the literal name escaped.
fn reference(attr: &str, context_aware: bool) -> String {
    if context_aware {
        attr.to_owned()
    } else {
        escape_literal(attr)
    }
}

fn common_type(values: &[Value]) -> FlagType {
    FlagType::common(values).unwrap_or(FlagType::Json)
}

fn serve(v: &Value) -> Serve {
    let Some(o) = v.as_object() else {
        return Serve::default();
    };
    if let Some(i) = o.get("variation").and_then(Value::as_i64) {
        return Serve {
            variation: Some(i),
            rollout: None,
        };
    }
    let Some(r) = o.get("rollout").and_then(Value::as_object) else {
        return Serve::default();
    };
    let kind = valid_kind(r.get("contextKind"));
    let rollout_kind = match str_of(r, "kind") {
        Some("experiment") => Some(RolloutKind::Experiment),
        None | Some("rollout") => None,
        // An unknown kind makes the rollout unreadable in LaunchDarkly: malformed.
        Some(_) => return Serve::default(),
    };
    let seed = match r.get("seed") {
        None | Some(Value::Null) => None,
        Some(s) => match s.as_i64() {
            Some(i) => Some(i),
            None => return Serve::default(),
        },
    };
    Serve {
        variation: None,
        rollout: Some(Box::new(Rollout {
            kind: rollout_kind,
            bucket_by: str_of(r, "bucketBy").map(|b| reference(b, kind.is_some()).into()),
            context_kind: kind,
            seed,
            variations: arr(r, "variations")
                .iter()
                .filter_map(Value::as_object)
                .map(|w| WeightedVariation {
                    variation: w.get("variation").and_then(Value::as_i64).unwrap_or(-1),
                    weight: w.get("weight").and_then(Value::as_f64).unwrap_or(0.0) as i64,
                    untracked: w.get("untracked").and_then(Value::as_bool).unwrap_or(false),
                })
                .collect(),
        })),
    }
}

fn targets(o: &Map<String, Value>) -> Vec<Target> {
    let read = |t: &Map<String, Value>| Target {
        variation: t.get("variation").and_then(Value::as_i64).unwrap_or(-1),
        values: arr(t, "values")
            .iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect(),
        context_kind: str_of(t, "contextKind")
            .filter(|k| *k != crate::context::USER_KIND)
            .map(Box::from),
    };
    let user: Vec<Target> = arr(o, "targets")
        .iter()
        .filter_map(Value::as_object)
        .map(read)
        .collect();
    let ctx = arr(o, "contextTargets");
    if ctx.is_empty() {
        return user;
    }
    let mut out = Vec::new();
    // Variations whose `targets` entries were copied already: a later empty entry of the same
    // variation can never match first, and copying again would multiply the list (an
    // amplification: a small payload of many empty entries would expand to millions of keys).
    let mut expanded = std::collections::BTreeSet::new();
    for t in ctx.iter().filter_map(Value::as_object) {
        let t = read(t);
        if t.context_kind.is_none() && t.values.is_empty() {
            if expanded.insert(t.variation) {
                out.extend(user.iter().filter(|u| u.variation == t.variation).cloned());
            }
        } else {
            out.push(t);
        }
    }
    out
}

fn clauses(r: &Map<String, Value>) -> Vec<Clause> {
    arr(r, "clauses")
        .iter()
        .filter_map(Value::as_object)
        .map(|c| {
            let kind = valid_kind(c.get("contextKind"));
            let attribute = str_of(c, "attribute").unwrap_or("");
            let operator = ld_operator(str_of(c, "op").unwrap_or(""));
            let mut values = arr(c, "values").to_vec();
            if operator == Operator::Matches {
                // LaunchDarkly treats a value that is not a valid regular expression as one
                // that never matches; here an invalid regex is an error, so such values are
                // left out (a clause left with no values never matches, as there).
                values.retain(|v| v.as_str().is_some_and(|s| regex::Regex::new(s).is_ok()));
            }
            Clause {
                attribute: reference(attribute, kind.is_some()).into(),
                operator,
                values,
                negate: c.get("negate").and_then(Value::as_bool).unwrap_or(false),
                context_kind: kind,
            }
        })
        .collect()
}

/// LaunchDarkly's operator names; any other name is unknown there (and never matches), even
/// when it is one of this format's own names such as `eq`.
fn ld_operator(name: &str) -> Operator {
    const LD: [&str; 15] = [
        "in",
        "endsWith",
        "startsWith",
        "matches",
        "contains",
        "lessThan",
        "lessThanOrEqual",
        "greaterThan",
        "greaterThanOrEqual",
        "before",
        "after",
        "semVerEqual",
        "semVerLessThan",
        "semVerGreaterThan",
        "segmentMatch",
    ];
    if LD.contains(&name) {
        Operator::parse(name)
    } else if let Operator::Unknown(_) = Operator::parse(name) {
        Operator::Unknown(name.to_owned())
    } else {
        Operator::Unknown(format!("launchdarkly:{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{compile, Context, ReasonKind};
    use serde_json::json;

    #[test]
    fn big_segments_never_match_whatever_their_inline_lists() {
        let doc = import(&serde_json::json!({
            "flags": {"f": {"key": "f", "on": true, "variations": [false, true],
                "fallthrough": {"variation": 0}, "offVariation": 0, "salt": "s",
                "rules": [{"id": "r", "variation": 1, "clauses": [
                    {"attribute": "", "op": "segmentMatch", "values": ["big"]}]}]}},
            "segments": {"big": {"key": "big", "unbounded": true, "generation": 2,
                "included": ["u"], "version": 3}}
        }))
        .unwrap();
        assert!(doc.segments["big"].included.is_empty());
        let snap = crate::compile(doc);
        let d = snap.evaluate("f", &crate::Context::new("u"));
        assert_eq!(d.value(), Some(&serde_json::json!(false)));
    }

    #[test]
    fn invalid_regexes_never_match_as_in_launchdarkly() {
        let ld = json!({"flags": {"f": {"on": true, "variations": [false, true],
        "fallthrough": {"variation": 0},
        "rules": [
            {"id": "bad", "clauses": [{"attribute": "email", "op": "matches", "values": ["(", 3]}], "variation": 1},
            {"id": "neg", "clauses": [{"attribute": "email", "op": "matches", "values": ["("], "negate": true}], "variation": 1}
        ]}}});
        let snap = compile(import(&ld).unwrap());
        assert!(!snap.has_errors(), "{:?}", snap.diagnostics());
        let d = snap.evaluate("f", &Context::new("u").with_email("a@b"));
        assert_eq!(d.reason_kind(), ReasonKind::RuleMatch);
        assert_eq!(d.rule_id(), Some("neg"));
    }

    /// Many empty user-kind `contextTargets` entries of a variation copy its `targets` once:
    /// the imported keys are the payload's keys, each once, whatever the number of entries.
    #[test]
    fn empty_context_targets_expand_each_variation_once() {
        let keys: Vec<String> = (0..500).map(|i| format!("user-{i}")).collect();
        let mut context_targets = Vec::new();
        for _ in 0..300 {
            context_targets.push(json!({"contextKind": "user", "variation": 1, "values": []}));
            context_targets.push(json!({"variation": 0, "values": []}));
        }
        context_targets.push(json!({"contextKind": "org", "variation": 0, "values": ["o1"]}));
        let ld = json!({"flags": {"f": {"on": true, "variations": [false, true],
            "fallthrough": {"variation": 0}, "offVariation": 0, "salt": "s",
            "targets": [{"variation": 1, "values": keys}, {"variation": 0, "values": ["z"]}],
            "contextTargets": context_targets}}});
        let doc = import(&ld).unwrap();
        let targets = &doc.flags["f"].targets;
        let count: usize = targets.iter().map(|t| t.values.len()).sum();
        assert_eq!(count, 500 + 1 + 1);
        assert_eq!(targets.len(), 3);
        let snap = compile(doc);
        assert!(!snap.has_errors(), "{:?}", snap.diagnostics());
        let d = snap.evaluate("f", &Context::new("user-499"));
        assert_eq!(d.reason_kind(), ReasonKind::TargetMatch);
        assert_eq!(d.value(), Some(&json!(true)));
        assert_eq!(
            snap.evaluate("f", &Context::new("z")).value(),
            Some(&json!(false))
        );
    }

    #[test]
    fn items_over_the_target_limit_are_refused() {
        let many: Vec<String> = (0..=MAX_TARGET_VALUES).map(|i| i.to_string()).collect();
        let flag = json!({"key": "f", "variations": [true],
            "targets": [{"variation": 0, "values": many}]});
        assert!(matches!(
            import_flag("f", &flag),
            Err(ImportError::TooManyTargets { count, .. }) if count == MAX_TARGET_VALUES + 1
        ));
        let half = MAX_TARGET_VALUES / 2 + 1;
        let seg = json!({"included": many[..half], "excludedContexts":
            [{"contextKind": "org", "values": many[..half]}]});
        let err = import_segment("s", &seg).unwrap_err();
        assert!(err.to_string().contains("segment s"), "{err}");
        let ok = json!({"key": "f", "variations": [true],
            "targets": [{"variation": 0, "values": many[..MAX_TARGET_VALUES]}]});
        assert!(import_flag("f", &ok).is_ok());
    }
}
