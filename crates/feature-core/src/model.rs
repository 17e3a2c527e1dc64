//! The flag document model: what a flag file (YAML or JSON) says, before it is compiled.
//!
//! These types are plain data with `serde` support. They are what [`crate::parse_document`]
//! produces and what [`crate::compile`] turns into an immutable [`crate::Snapshot`]. Unknown
//! fields are rejected so that a typo (`claus:` for `clauses:`) is an error, not a rule that
//! silently matches everybody.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

pub use crate::map::SortedMap;

/// A whole flag document: every flag and segment of one file or store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagDocument {
    /// Flags by key. Each flag is shared: a document made from another by changing a few
    /// items shares every other item with it, and the map's chunks without a change
    /// ([`SortedMap`]).
    #[serde(default)]
    pub flags: SortedMap<String, Arc<Flag>>,
    /// Reusable segments by key, referenced by the `segmentMatch` operator (shared like the
    /// flags).
    #[serde(default, skip_serializing_if = "SortedMap::is_empty")]
    pub segments: SortedMap<String, Arc<Segment>>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Trims the lists of an item read from text to their length (a list read without knowing
/// its length in advance keeps spare room), so that a document held by a snapshot holds no
/// more than it says.
pub(crate) trait Shrink {
    /// Trims every list of the item.
    fn shrink(&mut self);
}

impl<T: Shrink> Shrink for Arc<T> {
    fn shrink(&mut self) {
        // Only a freshly read item is trimmed: a shared one is left as it is.
        if let Some(item) = Arc::get_mut(self) {
            item.shrink();
        }
    }
}

impl<T: Shrink> Shrink for Vec<T> {
    fn shrink(&mut self) {
        self.iter_mut().for_each(Shrink::shrink);
        self.shrink_to_fit();
    }
}

impl<T: Shrink> Shrink for Box<T> {
    fn shrink(&mut self) {
        (**self).shrink();
    }
}

impl<T: Shrink> Shrink for Option<T> {
    fn shrink(&mut self) {
        if let Some(v) = self {
            v.shrink();
        }
    }
}

impl Shrink for String {
    fn shrink(&mut self) {
        self.shrink_to_fit();
    }
}

impl Shrink for Value {
    fn shrink(&mut self) {
        match self {
            Value::String(s) => s.shrink_to_fit(),
            Value::Array(items) => items.shrink(),
            Value::Object(map) => map.values_mut().for_each(Shrink::shrink),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

impl Shrink for Flag {
    fn shrink(&mut self) {
        self.tags.shrink();
        self.default.shrink();
        self.variants.shrink();
        self.targets.shrink();
        self.prerequisites.shrink();
        self.rules.shrink();
        self.fallthrough.shrink();
    }
}

impl Shrink for Variant {
    fn shrink(&mut self) {
        self.value.shrink();
    }
}

impl Shrink for Target {
    fn shrink(&mut self) {
        self.values.shrink();
    }
}

impl Shrink for Prerequisite {
    fn shrink(&mut self) {}
}

impl Shrink for Serve {
    fn shrink(&mut self) {
        self.rollout.shrink();
    }
}

impl Shrink for Rule {
    fn shrink(&mut self) {
        self.clauses.shrink();
        self.rollout.shrink();
    }
}

impl Shrink for Clause {
    fn shrink(&mut self) {
        self.values.shrink();
    }
}

impl Shrink for Rollout {
    fn shrink(&mut self) {
        self.variations.shrink_to_fit();
    }
}

impl Shrink for Segment {
    fn shrink(&mut self) {
        self.included.shrink();
        self.excluded.shrink();
        self.included_contexts.shrink();
        self.excluded_contexts.shrink();
        self.rules.shrink();
    }
}

impl Shrink for SegmentTarget {
    fn shrink(&mut self) {
        self.values.shrink();
    }
}

impl Shrink for SegmentRule {
    fn shrink(&mut self) {
        self.clauses.shrink();
    }
}

/// One feature flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Flag {
    /// The flag's key; when the flag sits in a document's `flags` map the map key is used.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Box<str>>,
    /// What the flag is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Box<str>>,
    /// Labels to find and group flags by (`checkout`, `incident`); evaluation ignores them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Value type; inferred from the variants (or the default) when absent.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub flag_type: Option<FlagType>,
    /// Value served when the flag is off (without `offVariation`) and when nothing matches
    /// (without `fallthrough`). Absent: the caller's default is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Whether targeting is on. Off flags serve `offVariation`, else `default`.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// The values the flag can serve, addressed by index. Bool flags may omit them: `[false, true]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<Variant>,
    /// Individual targeting: context keys that get a given variation (reason TARGET_MATCH).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Target>,
    /// Flags that must serve a given variation before this one is evaluated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prerequisites: Vec<Prerequisite>,
    /// Targeting rules; the first that matches decides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// What is served when no rule matches. Absent: weighted variants split the traffic when any
    /// variant has a weight, otherwise `default` is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallthrough: Option<Serve>,
    /// Variation served when the flag is off. Absent: `default` is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off_variation: Option<i64>,
    /// Salt mixed into the bucketing hash; absent means the empty string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<Box<str>>,
    /// Version of the definition, maintained by stores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// When the flag was created (free-form timestamp, kept for humans and stores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Box<str>>,
    /// When the flag was last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Box<str>>,
}

impl Flag {
    /// A new enabled flag with the given key and nothing else.
    pub fn new(key: impl Into<String>) -> Self {
        Flag {
            key: key.into(),
            name: None,
            description: None,
            tags: Vec::new(),
            flag_type: None,
            default: None,
            enabled: true,
            variants: Vec::new(),
            targets: Vec::new(),
            prerequisites: Vec::new(),
            rules: Vec::new(),
            fallthrough: None,
            off_variation: None,
            salt: None,
            version: None,
            created_at: None,
            updated_at: None,
        }
    }

    /// A boolean flag that serves `value` to everybody (variants `[false, true]`).
    pub fn boolean(key: impl Into<String>, value: bool) -> Self {
        let mut f = Flag::new(key);
        f.flag_type = Some(FlagType::Bool);
        f.default = Some(Value::Bool(value));
        f
    }

    /// A flag that serves `value` to everybody; its type is inferred from the value.
    pub fn constant(key: impl Into<String>, value: Value) -> Self {
        let mut f = Flag::new(key);
        f.flag_type = Some(FlagType::of(&value));
        f.default = Some(value);
        f
    }
}

/// The type of value a flag serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlagType {
    /// `true` / `false`.
    #[serde(alias = "boolean")]
    Bool,
    /// A string.
    String,
    /// A whole number (i64).
    #[serde(alias = "integer")]
    Int,
    /// A number (f64).
    #[serde(alias = "number", alias = "double")]
    Float,
    /// Any JSON value.
    Json,
}

impl FlagType {
    /// The narrowest type that holds `v`.
    pub fn of(v: &Value) -> FlagType {
        match v {
            Value::Bool(_) => FlagType::Bool,
            Value::String(_) => FlagType::String,
            Value::Number(n) if n.is_i64() || n.is_u64() => FlagType::Int,
            Value::Number(_) => FlagType::Float,
            _ => FlagType::Json,
        }
    }

    /// The narrowest type that holds every one of `values` (whole and fractional numbers make
    /// `float`, other mixes `json`); `None` when there are none.
    pub(crate) fn common<'a>(values: impl IntoIterator<Item = &'a Value>) -> Option<FlagType> {
        values
            .into_iter()
            .map(FlagType::of)
            .reduce(|acc, t| match (acc, t) {
                (a, b) if a == b => a,
                (FlagType::Int | FlagType::Float, FlagType::Int | FlagType::Float) => {
                    FlagType::Float
                }
                _ => FlagType::Json,
            })
    }

    /// Whether a value of this type may be served by a flag of type `self`.
    pub fn admits(self, v: &Value) -> bool {
        match self {
            FlagType::Bool => v.is_boolean(),
            FlagType::String => v.is_string(),
            FlagType::Int => v.as_f64().is_some_and(|f| f.fract() == 0.0),
            FlagType::Float => v.is_number(),
            FlagType::Json => true,
        }
    }

    /// The name used in flag files.
    pub fn as_str(self) -> &'static str {
        match self {
            FlagType::Bool => "bool",
            FlagType::String => "string",
            FlagType::Int => "int",
            FlagType::Float => "float",
            FlagType::Json => "json",
        }
    }
}

/// One value a flag can serve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Name for humans and analytics (`blue`, `on`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Box<str>>,
    /// The value served.
    pub value: Value,
    /// Relative weight for A/B splits when the flag has no explicit `fallthrough`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// What the variant means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Box<str>>,
}

impl Variant {
    /// An unnamed variant with a value.
    pub fn of(value: Value) -> Self {
        Variant {
            name: None,
            value,
            weight: None,
            description: None,
        }
    }
}

/// Individual targeting: these context keys get `variation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    /// Variation index served.
    pub variation: i64,
    /// Context keys.
    #[serde(default)]
    pub values: Vec<String>,
    /// Context kind whose key is compared; `user` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_kind: Option<Box<str>>,
}

/// A flag that must serve a given variation first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prerequisite {
    /// Key of the prerequisite flag.
    pub key: String,
    /// Variation index it must serve.
    pub variation: i64,
}

/// What to serve: one variation, or a weighted rollout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Serve {
    /// Variation index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variation: Option<i64>,
    /// Percentage rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Box<Rollout>>,
}

/// A targeting rule: when every clause matches, serve a variation or a rollout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Identifier reported as `ruleId`; the rule's index is reported as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Box<str>>,
    /// What the rule is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Box<str>>,
    /// Conditions, all of which must hold. No clauses: the rule matches every context.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clauses: Vec<Clause>,
    /// Variation index served on a match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variation: Option<i64>,
    /// Rollout served on a match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Box<Rollout>>,
    /// Only this percentage (0–100) of the contexts that satisfy the clauses match the rule,
    /// chosen by consistent bucketing on the context key; the others go on to the next rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<f64>,
}

/// One condition on a context attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Clause {
    /// Attribute name (`plan`), or a reference path starting with `/` (`/address/city`).
    #[serde(default)]
    pub attribute: Box<str>,
    /// The comparison.
    #[serde(alias = "op")]
    pub operator: Operator,
    /// Values compared against; the clause holds when any of them matches.
    #[serde(default)]
    pub values: Vec<Value>,
    /// Invert the result (a missing attribute still never matches).
    #[serde(default, skip_serializing_if = "is_false")]
    pub negate: bool,
    /// Context kind whose attribute is read; `user` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_kind: Option<Box<str>>,
}

impl Clause {
    /// A clause `attribute operator values`.
    pub fn new(attribute: impl Into<Box<str>>, operator: Operator, values: Vec<Value>) -> Self {
        Clause {
            attribute: attribute.into(),
            operator,
            values,
            negate: false,
            context_kind: None,
        }
    }
}

/// Clause operators.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operator {
    /// Equal to any value (`eq`; LaunchDarkly's `in`).
    Eq,
    /// Equal to none of the values.
    Neq,
    /// Equal to any value (same as `eq`).
    In,
    /// Equal to none of the values (same as `neq`).
    NotIn,
    /// String contains any value as a substring.
    Contains,
    /// String starts with any value.
    StartsWith,
    /// String ends with any value.
    EndsWith,
    /// String matches any regular expression.
    Matches,
    /// Number greater than any value (`gt`, `greaterThan`).
    Gt,
    /// Number greater than or equal to any value (`gte`, `greaterThanOrEqual`).
    Gte,
    /// Number less than any value (`lt`, `lessThan`).
    Lt,
    /// Number less than or equal to any value (`lte`, `lessThanOrEqual`).
    Lte,
    /// Version satisfies any requirement (`>=1.2.0, <2`, `^1.4`, or `1.2.3` for exactly that).
    SemVer,
    /// Version equal to any value.
    SemVerEqual,
    /// Version less than any value.
    SemVerLessThan,
    /// Version greater than any value.
    SemVerGreaterThan,
    /// Date (RFC 3339 string or Unix milliseconds) before any value.
    Before,
    /// Date after any value.
    After,
    /// Context is in any of the named segments.
    SegmentMatch,
    /// An operator this version does not know: the clause never matches (reported as a warning).
    Unknown(String),
}

impl Operator {
    /// The operator's name in flag files.
    pub fn as_str(&self) -> &str {
        match self {
            Operator::Eq => "eq",
            Operator::Neq => "neq",
            Operator::In => "in",
            Operator::NotIn => "notIn",
            Operator::Contains => "contains",
            Operator::StartsWith => "startsWith",
            Operator::EndsWith => "endsWith",
            Operator::Matches => "matches",
            Operator::Gt => "gt",
            Operator::Gte => "gte",
            Operator::Lt => "lt",
            Operator::Lte => "lte",
            Operator::SemVer => "semver",
            Operator::SemVerEqual => "semVerEqual",
            Operator::SemVerLessThan => "semVerLessThan",
            Operator::SemVerGreaterThan => "semVerGreaterThan",
            Operator::Before => "before",
            Operator::After => "after",
            Operator::SegmentMatch => "segmentMatch",
            Operator::Unknown(s) => s,
        }
    }

    /// Parses an operator name; LaunchDarkly's names are accepted as aliases.
    pub fn parse(s: &str) -> Operator {
        match s {
            "eq" | "equals" => Operator::Eq,
            "neq" | "notEquals" => Operator::Neq,
            "in" => Operator::In,
            "notIn" => Operator::NotIn,
            "contains" => Operator::Contains,
            "startsWith" => Operator::StartsWith,
            "endsWith" => Operator::EndsWith,
            "matches" => Operator::Matches,
            "gt" | "greaterThan" => Operator::Gt,
            "gte" | "greaterThanOrEqual" => Operator::Gte,
            "lt" | "lessThan" => Operator::Lt,
            "lte" | "lessThanOrEqual" => Operator::Lte,
            "semver" => Operator::SemVer,
            "semVerEqual" => Operator::SemVerEqual,
            "semVerLessThan" => Operator::SemVerLessThan,
            "semVerGreaterThan" => Operator::SemVerGreaterThan,
            "before" => Operator::Before,
            "after" => Operator::After,
            "segmentMatch" => Operator::SegmentMatch,
            other => Operator::Unknown(other.to_owned()),
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Operator {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Operator {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Operator::parse(&s))
    }
}

/// Rollout kind: a plain rollout, or an experiment whose evaluations are marked `inExperiment`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RolloutKind {
    /// A percentage rollout.
    #[default]
    Rollout,
    /// An experiment: tracked variations report `inExperiment: true`.
    Experiment,
}

/// A percentage rollout: variations with weights out of 100 000.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rollout {
    /// Rollout or experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<RolloutKind>,
    /// Attribute hashed for bucketing; `key` when absent (experiments always use `key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_by: Option<Box<str>>,
    /// Context kind whose attribute is hashed; `user` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_kind: Option<Box<str>>,
    /// Seed replacing `flagKey.salt` in the hash input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Variations and their weights (out of 100 000).
    #[serde(default)]
    pub variations: Vec<WeightedVariation>,
}

/// A variation and its share of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedVariation {
    /// Variation index.
    pub variation: i64,
    /// Share out of 100 000 (0.001 % precision).
    pub weight: i64,
    /// In an experiment: this variation is served but not reported as part of the experiment.
    #[serde(default, skip_serializing_if = "is_false")]
    pub untracked: bool,
}

/// A reusable set of contexts, matched with the `segmentMatch` operator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Segment {
    /// The segment's key; the map key is used when the segment sits in a document.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Box<str>>,
    /// What the segment is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Box<str>>,
    /// User keys always in the segment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub included: Vec<String>,
    /// User keys never in the segment (unless included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<String>,
    /// A plain text file of user keys always in the segment, one a line, relative to the flag
    /// file's directory (see [`crate::key_file`]). Reading the file moves its keys into
    /// `included` and clears this field; stores hold the keys, never the file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub included_file: Option<Box<str>>,
    /// A plain text file of user keys never in the segment, like `included_file`; its keys
    /// join `excluded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded_file: Option<Box<str>>,
    /// Keys of other context kinds always in the segment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub included_contexts: Vec<SegmentTarget>,
    /// Keys of other context kinds never in the segment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_contexts: Vec<SegmentTarget>,
    /// Rules: a context matching any of them is in the segment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<SegmentRule>,
    /// Salt for the segment rules' weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<Box<str>>,
    /// Version of the definition, maintained by stores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// Context keys of one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SegmentTarget {
    /// Context kind.
    pub context_kind: String,
    /// Keys.
    #[serde(default)]
    pub values: Vec<String>,
}

/// A segment rule: all clauses hold and, with a weight, the context falls in that share.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SegmentRule {
    /// Identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Box<str>>,
    /// Conditions.
    #[serde(default)]
    pub clauses: Vec<Clause>,
    /// Share out of 100 000 of matching contexts included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    /// Attribute hashed for the weight; `key` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_by: Option<Box<str>>,
    /// Context kind hashed for the weight; `user` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_context_kind: Option<Box<str>>,
}
