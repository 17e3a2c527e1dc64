//! Evaluation: a compiled flag and a context give a value, a variation and a reason.
//!
//! The evaluator allocates nothing, takes no lock and reads no clock. Its result, [`Detail`],
//! borrows from the [`Snapshot`]; [`Detail::to_evaluation`] makes the owned [`Evaluation`].

use crate::attr::AttrPath;
use crate::bucket::bucket_value;
use crate::compile::{CClause, CRollout, CServe, Cmp, CompiledFlag, Op, Snapshot};
use crate::context::{Context, Part};
use crate::explain::{Step, Tracer};
use crate::ops::{bytes_eq, contains, QuickVersion};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::fmt;

/// Why an evaluation failed; the caller's default is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No flag has this key.
    FlagNotFound,
    /// The flag (or the part of it that was reached) is invalid.
    MalformedFlag,
    /// The flag's value is not of the type asked for.
    WrongType,
    /// The client has no flags yet (its provider has not delivered any).
    ClientNotReady,
    /// The context is invalid.
    UserNotSpecified,
    /// An unexpected failure inside a foreign engine.
    Exception,
}

impl ErrorKind {
    /// Every error kind (for pre-creating metric series, tables indexed by kind).
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::FlagNotFound,
        ErrorKind::MalformedFlag,
        ErrorKind::WrongType,
        ErrorKind::ClientNotReady,
        ErrorKind::UserNotSpecified,
        ErrorKind::Exception,
    ];

    /// The name used in reasons (`FLAG_NOT_FOUND`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::FlagNotFound => "FLAG_NOT_FOUND",
            ErrorKind::MalformedFlag => "MALFORMED_FLAG",
            ErrorKind::WrongType => "WRONG_TYPE",
            ErrorKind::ClientNotReady => "CLIENT_NOT_READY",
            ErrorKind::UserNotSpecified => "USER_NOT_SPECIFIED",
            ErrorKind::Exception => "EXCEPTION",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of reason, without its details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReasonKind {
    /// The flag is off.
    Off,
    /// The context key is individually targeted.
    TargetMatch,
    /// A rule matched.
    RuleMatch,
    /// No rule matched.
    Fallthrough,
    /// A prerequisite did not serve the required variation.
    PrerequisiteFailed,
    /// A local override decided.
    Override,
    /// Evaluation failed; the caller's default is served.
    Error,
}

impl ReasonKind {
    /// Every reason kind (for tables indexed by reason).
    pub const ALL: [ReasonKind; 7] = [
        ReasonKind::Off,
        ReasonKind::TargetMatch,
        ReasonKind::RuleMatch,
        ReasonKind::Fallthrough,
        ReasonKind::PrerequisiteFailed,
        ReasonKind::Override,
        ReasonKind::Error,
    ];

    /// The position in [`ReasonKind::ALL`] (for arrays of counters).
    #[inline]
    pub fn index(self) -> usize {
        match self {
            ReasonKind::Off => 0,
            ReasonKind::TargetMatch => 1,
            ReasonKind::RuleMatch => 2,
            ReasonKind::Fallthrough => 3,
            ReasonKind::PrerequisiteFailed => 4,
            ReasonKind::Override => 5,
            ReasonKind::Error => 6,
        }
    }

    /// The name used in reasons (`OFF`, `RULE_MATCH`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonKind::Off => "OFF",
            ReasonKind::TargetMatch => "TARGET_MATCH",
            ReasonKind::RuleMatch => "RULE_MATCH",
            ReasonKind::Fallthrough => "FALLTHROUGH",
            ReasonKind::PrerequisiteFailed => "PREREQUISITE_FAILED",
            ReasonKind::Override => "OVERRIDE",
            ReasonKind::Error => "ERROR",
        }
    }
}

impl fmt::Display for ReasonKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a value was served.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The flag is off.
    Off,
    /// The context key is individually targeted.
    TargetMatch,
    /// Rule `rule_index` matched.
    RuleMatch {
        /// Index of the rule.
        rule_index: usize,
        /// The rule's id, when it has one.
        rule_id: Option<String>,
        /// Whether the context is part of an experiment.
        in_experiment: bool,
    },
    /// No rule matched.
    Fallthrough {
        /// Whether the context is part of an experiment.
        in_experiment: bool,
    },
    /// A prerequisite did not serve the required variation.
    PrerequisiteFailed {
        /// The prerequisite's key.
        prerequisite_key: String,
    },
    /// A local override decided.
    Override,
    /// Evaluation failed; the caller's default was served.
    Error {
        /// What failed.
        error_kind: ErrorKind,
    },
}

impl Reason {
    /// The kind of reason.
    pub fn kind(&self) -> ReasonKind {
        match self {
            Reason::Off => ReasonKind::Off,
            Reason::TargetMatch => ReasonKind::TargetMatch,
            Reason::RuleMatch { .. } => ReasonKind::RuleMatch,
            Reason::Fallthrough { .. } => ReasonKind::Fallthrough,
            Reason::PrerequisiteFailed { .. } => ReasonKind::PrerequisiteFailed,
            Reason::Override => ReasonKind::Override,
            Reason::Error { .. } => ReasonKind::Error,
        }
    }

    /// Whether the evaluation is part of an experiment.
    #[inline]
    pub fn in_experiment(&self) -> bool {
        matches!(
            self,
            Reason::RuleMatch {
                in_experiment: true,
                ..
            } | Reason::Fallthrough {
                in_experiment: true
            }
        )
    }

    /// The error kind of an `ERROR` reason.
    #[inline]
    pub fn error_kind(&self) -> Option<ErrorKind> {
        match self {
            Reason::Error { error_kind } => Some(*error_kind),
            _ => None,
        }
    }
}

impl Serialize for Reason {
    /// LaunchDarkly's reason shape: `{"kind": "RULE_MATCH", "ruleIndex": 0, "ruleId": "x"}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("kind", self.kind().as_str())?;
        match self {
            Reason::RuleMatch {
                rule_index,
                rule_id,
                in_experiment,
            } => {
                m.serialize_entry("ruleIndex", rule_index)?;
                if let Some(id) = rule_id {
                    m.serialize_entry("ruleId", id)?;
                }
                if *in_experiment {
                    m.serialize_entry("inExperiment", &true)?;
                }
            }
            Reason::Fallthrough {
                in_experiment: true,
            } => m.serialize_entry("inExperiment", &true)?,
            Reason::PrerequisiteFailed { prerequisite_key } => {
                m.serialize_entry("prerequisiteKey", prerequisite_key)?
            }
            Reason::Error { error_kind } => m.serialize_entry("errorKind", error_kind.as_str())?,
            _ => {}
        }
        m.end()
    }
}

/// The owned result of an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
    /// The flag's key.
    pub key: String,
    /// The value served (the caller's default when nothing else was).
    pub value: Value,
    /// Index of the variation served; `None` when a default was served.
    pub variation_index: Option<usize>,
    /// Why.
    pub reason: Reason,
}

impl Evaluation {
    /// An evaluation that served the caller's default because of an error.
    pub fn error(key: &str, default: Value, error_kind: ErrorKind) -> Self {
        Evaluation {
            key: key.to_owned(),
            value: default,
            variation_index: None,
            reason: Reason::Error { error_kind },
        }
    }

    /// The id of the rule that matched.
    pub fn rule_id(&self) -> Option<&str> {
        match &self.reason {
            Reason::RuleMatch { rule_id, .. } => rule_id.as_deref(),
            _ => None,
        }
    }

    /// Whether the evaluation is part of an experiment.
    #[inline]
    pub fn in_experiment(&self) -> bool {
        self.reason.in_experiment()
    }

    /// The key of the prerequisite that failed.
    pub fn prerequisite_failed(&self) -> Option<&str> {
        match &self.reason {
            Reason::PrerequisiteFailed { prerequisite_key } => Some(prerequisite_key),
            _ => None,
        }
    }

    /// The error kind, when the evaluation failed.
    #[inline]
    pub fn error_kind(&self) -> Option<ErrorKind> {
        self.reason.error_kind()
    }
}

/// The type of value a caller asks for (the typed accessors `bool`, `int`, `float`, `string`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// A boolean.
    Bool,
    /// A number, read as a whole number (fractions are truncated toward zero).
    Int,
    /// A number.
    Float,
    /// A string.
    String,
    /// Any JSON value.
    Any,
}

impl ValueKind {
    /// Whether `v` is of this kind.
    #[inline]
    pub fn admits(self, v: &Value) -> bool {
        match self {
            ValueKind::Bool => v.is_boolean(),
            ValueKind::Int | ValueKind::Float => v.is_number(),
            ValueKind::String => v.is_string(),
            ValueKind::Any => true,
        }
    }
}

/// What was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Served {
    /// A variation, by index: `u16` (at most `MAX_INDEXED` variants, checked when compiling)
    /// keeps [`Detail`] at 16 bytes, returned in two registers rather than through memory.
    Variation(u16),
    FlagDefault,
    Nothing,
}

/// Why, in compact form (indexes into the flag instead of strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    Off,
    Target,
    Rule { index: u16, experiment: bool },
    Fallthrough { experiment: bool },
    Prereq { index: u16 },
    Error(ErrorKind),
}

/// The borrowed, allocation-free result of an evaluation.
#[derive(Debug, Clone, Copy)]
pub struct Detail<'s> {
    flag: Option<&'s CompiledFlag>,
    /// What was served and why, packed (see [`pack`]): a pointer and an integer come back
    /// from a call in two registers, where a larger or mixed result goes through memory and
    /// reading it back whole can stall the caller.
    packed: u64,
}

const SERVED_DEFAULT: u64 = 1 << 16;
const SERVED_NOTHING: u64 = 2 << 16;
const SERVED_MASK: u64 = 3 << 16;
const WHY_SHIFT: u32 = 32;
const EXPERIMENT: u64 = 1 << 40;
const INDEX_SHIFT: u32 = 48;
/// The tag of [`Why::Error`] in bits 32-39.
const ERROR_TAG: u8 = 5;

/// Packs an outcome: bits 0-15 the variation, 16-17 what was served, 32-39 why, 40 the
/// experiment flag, 48-63 the rule or prerequisite index or the error.
#[inline(always)]
pub(crate) fn pack(served: Served, why: Why) -> u64 {
    let s = match served {
        Served::Variation(i) => u64::from(i),
        Served::FlagDefault => SERVED_DEFAULT,
        Served::Nothing => SERVED_NOTHING,
    };
    let (tag, experiment, index): (u64, bool, u64) = match why {
        Why::Off => (0, false, 0),
        Why::Target => (1, false, 0),
        Why::Rule { index, experiment } => (2, experiment, u64::from(index)),
        Why::Fallthrough { experiment } => (3, experiment, 0),
        Why::Prereq { index } => (4, false, u64::from(index)),
        Why::Error(k) => (ERROR_TAG as u64, false, error_code(k)),
    };
    s | tag << WHY_SHIFT | if experiment { EXPERIMENT } else { 0 } | index << INDEX_SHIFT
}

/// What was served, from a [`pack`]ed outcome.
#[inline(always)]
fn served_of(packed: u64) -> Served {
    match packed & SERVED_MASK {
        0 => Served::Variation(packed as u16),
        SERVED_DEFAULT => Served::FlagDefault,
        _ => Served::Nothing,
    }
}

/// Whether a [`pack`]ed outcome is an error.
#[inline(always)]
fn is_error(packed: u64) -> bool {
    (packed >> WHY_SHIFT) as u8 == ERROR_TAG
}

/// Why, from a [`pack`]ed outcome.
#[inline(always)]
fn why_of(packed: u64) -> Why {
    let index = (packed >> INDEX_SHIFT) as u16;
    let experiment = packed & EXPERIMENT != 0;
    match (packed >> WHY_SHIFT) as u8 {
        0 => Why::Off,
        1 => Why::Target,
        2 => Why::Rule { index, experiment },
        3 => Why::Fallthrough { experiment },
        4 => Why::Prereq { index },
        _ => Why::Error(error_of(u64::from(index))),
    }
}

#[inline(always)]
fn error_code(k: ErrorKind) -> u64 {
    match k {
        ErrorKind::FlagNotFound => 0,
        ErrorKind::MalformedFlag => 1,
        ErrorKind::WrongType => 2,
        ErrorKind::ClientNotReady => 3,
        ErrorKind::UserNotSpecified => 4,
        ErrorKind::Exception => 5,
    }
}

#[inline(always)]
fn error_of(code: u64) -> ErrorKind {
    match code {
        0 => ErrorKind::FlagNotFound,
        1 => ErrorKind::MalformedFlag,
        2 => ErrorKind::WrongType,
        3 => ErrorKind::ClientNotReady,
        4 => ErrorKind::UserNotSpecified,
        _ => ErrorKind::Exception,
    }
}

impl<'s> Detail<'s> {
    #[inline(always)]
    pub(crate) fn new(flag: Option<&'s CompiledFlag>, served: Served, why: Why) -> Self {
        Detail {
            flag,
            packed: pack(served, why),
        }
    }

    pub(crate) fn error(flag: Option<&'s CompiledFlag>, kind: ErrorKind) -> Self {
        Detail::new(flag, Served::Nothing, Why::Error(kind))
    }

    /// What was served.
    #[inline(always)]
    fn served(&self) -> Served {
        served_of(self.packed)
    }

    /// Why.
    #[inline(always)]
    fn why(&self) -> Why {
        why_of(self.packed)
    }

    /// The flag evaluated, if it exists.
    pub fn flag(&self) -> Option<&'s CompiledFlag> {
        self.flag
    }

    /// The value served, or `None` when the caller's default applies.
    #[inline]
    pub fn value(&self) -> Option<&'s Value> {
        let f = self.flag?;
        match self.served() {
            Served::Variation(i) => f.values.get(i as usize),
            Served::FlagDefault => f.default.as_ref(),
            Served::Nothing => None,
        }
    }

    /// The index of the variation served.
    #[inline]
    pub fn variation_index(&self) -> Option<usize> {
        match self.served() {
            Served::Variation(i) => Some(i as usize),
            Served::FlagDefault => self.flag.and_then(|f| f.default_index),
            Served::Nothing => None,
        }
    }

    /// The name of the variation served, when it has one.
    pub fn variation_name(&self) -> Option<&'s str> {
        let f = self.flag?;
        f.variation_name(self.variation_index()?)
    }

    /// The kind of reason.
    #[inline]
    pub fn reason_kind(&self) -> ReasonKind {
        match self.why() {
            Why::Off => ReasonKind::Off,
            Why::Target => ReasonKind::TargetMatch,
            Why::Rule { .. } => ReasonKind::RuleMatch,
            Why::Fallthrough { .. } => ReasonKind::Fallthrough,
            Why::Prereq { .. } => ReasonKind::PrerequisiteFailed,
            Why::Error(_) => ReasonKind::Error,
        }
    }

    /// The error kind, when evaluation failed.
    #[inline]
    pub fn error_kind(&self) -> Option<ErrorKind> {
        match self.why() {
            Why::Error(k) => Some(k),
            _ => None,
        }
    }

    /// Whether the context is part of an experiment.
    #[inline]
    pub fn in_experiment(&self) -> bool {
        matches!(
            self.why(),
            Why::Rule {
                experiment: true,
                ..
            } | Why::Fallthrough { experiment: true }
        )
    }

    /// The index of the rule that matched.
    #[inline]
    pub fn rule_index(&self) -> Option<usize> {
        match self.why() {
            Why::Rule { index, .. } => Some(index as usize),
            _ => None,
        }
    }

    /// The id of the rule that matched.
    pub fn rule_id(&self) -> Option<&'s str> {
        let f = self.flag?;
        f.rule_id(self.rule_index()?)
    }

    /// The key of the prerequisite that failed.
    pub fn prerequisite_key(&self) -> Option<&'s str> {
        match self.why() {
            Why::Prereq { index } => self
                .flag
                .and_then(|f| f.prerequisites.get(index as usize))
                .map(|p| &*p.key),
            _ => None,
        }
    }

    /// The owned reason.
    pub fn reason(&self) -> Reason {
        match self.why() {
            Why::Off => Reason::Off,
            Why::Target => Reason::TargetMatch,
            Why::Rule { index, experiment } => Reason::RuleMatch {
                rule_index: index as usize,
                rule_id: self.rule_id().map(str::to_owned),
                in_experiment: experiment,
            },
            Why::Fallthrough { experiment } => Reason::Fallthrough {
                in_experiment: experiment,
            },
            Why::Prereq { .. } => Reason::PrerequisiteFailed {
                prerequisite_key: self.prerequisite_key().unwrap_or_default().to_owned(),
            },
            Why::Error(error_kind) => Reason::Error { error_kind },
        }
    }

    /// Checks the served value against the type the caller asked for: a value of another type
    /// becomes `ERROR`/`WRONG_TYPE` (and the caller's default is served).
    #[inline]
    pub fn expect(self, kind: ValueKind) -> Self {
        match self.value() {
            Some(v) if !kind.admits(v) => self.wrong_type(),
            _ => self,
        }
    }

    /// Marks the result a type mismatch: the caller's default will be served.
    pub fn wrong_type(self) -> Self {
        Detail::error(self.flag, ErrorKind::WrongType)
    }

    /// The owned evaluation, with `default` as the value when nothing was served.
    pub fn to_evaluation(&self, key: &str, default: Value) -> Evaluation {
        let value = self.value().cloned();
        Evaluation {
            key: key.to_owned(),
            variation_index: value.as_ref().and(self.variation_index()),
            value: value.unwrap_or(default),
            reason: self.reason(),
        }
    }
}

/// Marker for an evaluation path that reached a malformed part of a flag.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Malformed;

/// How deeply prerequisites, and segments referring to segments, may nest.
const MAX_DEPTH: usize = 32;

/// The flags (or segments) being evaluated further up the call stack, innermost first, for cycle
/// detection. Each level lives in its caller's stack frame, so an evaluation without
/// prerequisites or segments pays nothing for it.
#[derive(Debug, Clone, Copy)]
struct Visiting<'a> {
    index: u32,
    depth: usize,
    outer: Option<&'a Visiting<'a>>,
}

impl<'a> Visiting<'a> {
    /// `index` entered inside `outer`.
    fn enter(index: u32, outer: Option<&'a Visiting<'a>>) -> Self {
        Visiting {
            index,
            depth: depth(outer) + 1,
            outer,
        }
    }
}

/// How many levels `chain` holds.
fn depth(chain: Option<&Visiting<'_>>) -> usize {
    chain.map_or(0, |v| v.depth)
}

/// Whether `index` is on `chain`.
fn on_chain(mut chain: Option<&Visiting<'_>>, index: u32) -> bool {
    while let Some(v) = chain {
        if v.index == index {
            return true;
        }
        chain = v.outer;
    }
    false
}

impl Snapshot {
    /// Evaluates flag `key` for `ctx`.
    #[inline]
    pub fn evaluate<'s>(&'s self, key: &str, ctx: &Context) -> Detail<'s> {
        let Some(i) = self.position(key) else {
            return Detail::error(None, ErrorKind::FlagNotFound);
        };
        let flag = &self.flags[i as usize];
        match flag.constant {
            Some(packed) => Detail {
                flag: Some(flag),
                packed,
            },
            None => self.evaluate_index(i, ctx, &mut ()),
        }
    }

    /// Evaluates flag `key`, reporting every decision to `tracer` (see [`crate::explain`]).
    pub fn evaluate_traced<'s, T: Tracer>(
        &'s self,
        key: &str,
        ctx: &Context,
        tracer: &mut T,
    ) -> Detail<'s> {
        match self.position(key) {
            Some(i) => self.evaluate_index(i, ctx, tracer),
            None => Detail::error(None, ErrorKind::FlagNotFound),
        }
    }

    /// Evaluates the flag at position `i` of [`Snapshot::flags`].
    #[inline]
    pub(crate) fn evaluate_index<'s, T: Tracer>(
        &'s self,
        i: u32,
        ctx: &Context,
        tracer: &mut T,
    ) -> Detail<'s> {
        let flag = &self.flags[i as usize];
        match self.eval_flag(i, ctx, None, tracer) {
            Ok(packed) => Detail {
                flag: Some(flag),
                packed,
            },
            Err(Malformed) => Detail::error(Some(flag), ErrorKind::MalformedFlag),
        }
    }

    fn eval_flag<T: Tracer>(
        &self,
        fi: u32,
        ctx: &Context,
        dependents: Option<&Visiting<'_>>,
        tracer: &mut T,
    ) -> Result<u64, Malformed> {
        let f = &self.flags[fi as usize];
        if f.broken {
            return Err(Malformed);
        }
        if !f.enabled {
            tracer.step(|| Step::Off);
            return serve_fixed(&f.off, Why::Off);
        }
        if !f.prerequisites.is_empty() {
            if on_chain(dependents, fi) || depth(dependents) == MAX_DEPTH {
                return Err(Malformed);
            }
            let chain = Visiting::enter(fi, dependents);
            for (pi, p) in f.prerequisites.iter().enumerate() {
                let ok = match p.flag {
                    None => false,
                    Some(pf) => {
                        if on_chain(Some(&chain), pf) {
                            return Err(Malformed);
                        }
                        let pflag = &self.flags[pf as usize];
                        let packed = match pflag.constant {
                            Some(packed) => packed,
                            None => self.eval_flag(pf, ctx, Some(&chain), &mut ())?,
                        };
                        if is_error(packed) {
                            return Err(Malformed);
                        }
                        pflag.enabled
                            && match served_of(packed) {
                                Served::Variation(v) => v as i64 == p.variation,
                                Served::FlagDefault => {
                                    pflag.default_index.map(|v| v as i64) == Some(p.variation)
                                }
                                Served::Nothing => false,
                            }
                    }
                };
                tracer.step(|| Step::Prerequisite {
                    key: p.key.to_string(),
                    passed: ok,
                });
                if !ok {
                    return serve_fixed(&f.off, Why::Prereq { index: pi as u16 });
                }
            }
        }
        for t in &f.targets {
            if let Some(part) = ctx.part(&t.kind) {
                if t.keys.contains(part.key_str()) {
                    tracer.step(|| Step::Target {
                        kind: t.kind.to_string(),
                    });
                    return match t.variation {
                        Some(v) => Ok(pack(served(v)?, Why::Target)),
                        None => Err(Malformed),
                    };
                }
            }
        }
        for (ri, r) in f.rules.iter().enumerate() {
            let mut matched = true;
            for (ci, c) in r.clauses.iter().enumerate() {
                let m = self.match_clause(c, ctx, None)?;
                tracer.step(|| Step::Clause {
                    rule: ri,
                    clause: ci,
                    matched: m,
                });
                if !m {
                    matched = false;
                    break;
                }
            }
            if matched {
                if let Some(threshold) = r.percentage {
                    let b = ctx
                        .part(crate::context::USER_KIND)
                        .or(ctx.parts.first())
                        .map(|p| bucket_value(&f.prefix, &p.key))
                        .unwrap_or(0.0);
                    let inside = b < threshold as f32;
                    tracer.step(|| Step::Percentage {
                        rule: ri,
                        bucket: b,
                        inside,
                    });
                    if !inside {
                        continue;
                    }
                }
                tracer.step(|| Step::Rule { rule: ri });
                return self.serve(&r.serve, ctx, tracer, |experiment| Why::Rule {
                    index: ri as u16,
                    experiment,
                });
            }
        }
        tracer.step(|| Step::Fallthrough);
        self.serve(&f.fallthrough, ctx, tracer, |experiment| Why::Fallthrough {
            experiment,
        })
    }

    fn serve<T: Tracer>(
        &self,
        s: &CServe,
        ctx: &Context,
        tracer: &mut T,
        why: impl FnOnce(bool) -> Why,
    ) -> Result<u64, Malformed> {
        match s {
            CServe::Rollout(r) => {
                let (v, experiment) = rollout(r, ctx, tracer)?;
                Ok(pack(served(v)?, why(experiment)))
            }
            other => serve_fixed(other, why(false)),
        }
    }

    #[inline]
    fn match_clause(
        &self,
        c: &CClause,
        ctx: &Context,
        segments: Option<&Visiting<'_>>,
    ) -> Result<bool, Malformed> {
        if let Op::Segment(segs) = &c.op {
            for s in segs.iter().flatten() {
                if self.in_segment(*s, ctx, segments)? {
                    return Ok(!c.negate);
                }
            }
            return Ok(c.negate);
        }
        let attr = c.attr.as_ref().ok_or(Malformed)?;
        if let AttrPath::Kind = attr {
            let any = ctx.parts.iter().any(|p| match_str(&c.op, &p.kind));
            return Ok(any != c.negate);
        }
        let Some(part) = ctx.part(&c.kind) else {
            return Ok(false);
        };
        let Some(value) = attr.get(part) else {
            return Ok(false);
        };
        let any = match value {
            Value::Null => return Ok(false),
            Value::Array(items) => items.iter().any(|v| match_value(&c.op, v)),
            v => match_value(&c.op, v),
        };
        Ok(any != c.negate)
    }

    fn in_segment(
        &self,
        si: u32,
        ctx: &Context,
        outer: Option<&Visiting<'_>>,
    ) -> Result<bool, Malformed> {
        if on_chain(outer, si) || depth(outer) == MAX_DEPTH {
            return Err(Malformed);
        }
        let s = &self.segments[si as usize];
        let keyed = |list: &[(Box<str>, crate::compile::StrSet)]| {
            list.iter()
                .any(|(kind, keys)| ctx.part(kind).is_some_and(|p| keys.contains(p.key_str())))
        };
        let user = ctx.part(crate::context::USER_KIND);
        if keyed(&s.included_contexts) || user.is_some_and(|p| s.included.contains(p.key_str())) {
            return Ok(true);
        }
        if keyed(&s.excluded_contexts) || user.is_some_and(|p| s.excluded.contains(p.key_str())) {
            return Ok(false);
        }
        let chain = Visiting::enter(si, outer);
        for r in &s.rules {
            let mut all = true;
            for c in &r.clauses {
                if !self.match_clause(c, ctx, Some(&chain))? {
                    all = false;
                    break;
                }
            }
            if !all {
                continue;
            }
            if let Some(w) = r.weight.filter(|w| *w >= 0) {
                let by = r.bucket_by.as_ref().ok_or(Malformed)?;
                let b = bucket_of(ctx.part(&r.kind), by, &s.prefix);
                if b >= w as f32 / 100_000.0 {
                    continue;
                }
            }
            return Ok(true);
        }
        Ok(false)
    }
}

/// A variation served (compiling keeps indexes within `u16`; anything else is malformed).
#[inline(always)]
fn served(v: u32) -> Result<Served, Malformed> {
    u16::try_from(v)
        .map(Served::Variation)
        .map_err(|_| Malformed)
}

#[inline(always)]
fn serve_fixed(s: &CServe, why: Why) -> Result<u64, Malformed> {
    match s {
        CServe::Variation(v) => Ok(pack(served(*v)?, why)),
        CServe::Default => Ok(pack(Served::FlagDefault, why)),
        CServe::Malformed | CServe::Rollout(_) => Err(Malformed),
    }
}

#[inline]
fn bucket_of(part: Option<&Part>, by: &AttrPath, prefix: &[u8]) -> f32 {
    match part.and_then(|p| by.get(p)) {
        Some(v) => bucket_value(prefix, v),
        None => 0.0,
    }
}

fn rollout<T: Tracer>(
    r: &CRollout,
    ctx: &Context,
    tracer: &mut T,
) -> Result<(u32, bool), Malformed> {
    let part = ctx.part(&r.kind);
    let by = if r.experiment {
        &AttrPath::Key
    } else {
        r.bucket_by.as_ref().ok_or(Malformed)?
    };
    let bucket = bucket_of(part, by, &r.prefix);
    let mut sum = 0f32;
    let mut chosen = None;
    for w in &r.variations {
        sum += w.weight as f32 / 100_000.0;
        if bucket < sum {
            chosen = Some(w);
            break;
        }
    }
    let w = chosen.or(r.variations.last()).ok_or(Malformed)?;
    let v = w.variation.ok_or(Malformed)?;
    tracer.step(|| Step::Bucket {
        bucket,
        variation: v as usize,
    });
    Ok((v, r.experiment && part.is_some() && !w.untracked))
}

/// A string operand against an operation (used for strings and for context kinds).
#[inline(always)]
fn match_str(op: &Op, s: &str) -> bool {
    match op {
        Op::In(set) => set.strings.contains(s),
        Op::StartsWith(xs) => xs
            .iter()
            .any(|x| s.len() >= x.len() && bytes_eq(&s.as_bytes()[..x.len()], x.as_bytes())),
        Op::EndsWith(xs) => xs.iter().any(|x| {
            s.len() >= x.len() && bytes_eq(&s.as_bytes()[s.len() - x.len()..], x.as_bytes())
        }),
        Op::Contains(xs) => xs.iter().any(|x| contains(s, x)),
        Op::Matches(rs) => rs.iter().any(|r| r.is_match(s)),
        Op::Version(cmp, xs) => match_version(*cmp, xs, s),
        Op::VersionRule(_) | Op::Date(..) => match_parsed_str(op, s),
        Op::Number(..) | Op::Segment(_) | Op::Never => false,
    }
}

/// A version comparison (`semVerEqual`, `semVerLessThan`, `semVerGreaterThan`).
#[inline]
fn match_version(cmp: Cmp, xs: &[semver::Version], s: &str) -> bool {
    QuickVersion::parse(s).is_some_and(|a| xs.iter().any(|b| cmp.holds(a.cmp_precedence(b))))
}

/// The other operations that parse their string operand (requirements, dates), out of line so
/// that the plain string comparisons above stay small.
#[inline(never)]
fn match_parsed_str(op: &Op, s: &str) -> bool {
    match op {
        Op::Version(cmp, xs) => match_version(*cmp, xs, s),
        Op::VersionRule(rules) => {
            QuickVersion::parse(s).is_some_and(|a| rules.iter().any(|r| r.matches(&a)))
        }
        Op::Date(..) => match_value(op, &Value::String(s.to_owned())),
        _ => match_str(op, s),
    }
}

#[inline(always)]
fn match_value(op: &Op, v: &Value) -> bool {
    if let Value::String(s) = v {
        if !matches!(op, Op::Date(..)) {
            return match_str(op, s);
        }
    }
    match op {
        Op::In(set) => set.contains(v),
        Op::Number(cmp, xs) => match v {
            Value::Number(n) => n.as_f64().is_some_and(|a| {
                xs.iter()
                    .any(|b| a.partial_cmp(b).is_some_and(|o| cmp.holds(o)))
            }),
            _ => false,
        },
        Op::Date(cmp, xs) => crate::ops::parse_date(v).is_some_and(|a| {
            xs.iter()
                .any(|b| a.partial_cmp(b).is_some_and(|o| cmp.holds(o)))
        }),
        Op::StartsWith(_)
        | Op::EndsWith(_)
        | Op::Contains(_)
        | Op::Matches(_)
        | Op::Version(..)
        | Op::VersionRule(_)
        | Op::Segment(_)
        | Op::Never => false,
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    #[test]
    fn detail_fits_two_registers() {
        // A larger result goes through memory, and reading it back whole stalls the caller.
        assert_eq!(std::mem::size_of::<Detail<'_>>(), 16);
    }

    #[test]
    fn outcomes_survive_packing() {
        let served = [
            Served::Variation(0),
            Served::Variation(u16::MAX),
            Served::FlagDefault,
            Served::Nothing,
        ];
        let mut whys = vec![Why::Off, Why::Target];
        for index in [0, 7, u16::MAX] {
            for experiment in [false, true] {
                whys.push(Why::Rule { index, experiment });
            }
            whys.push(Why::Prereq { index });
        }
        whys.push(Why::Fallthrough { experiment: false });
        whys.push(Why::Fallthrough { experiment: true });
        whys.extend(ErrorKind::ALL.map(Why::Error));
        for s in served {
            for &w in &whys {
                let d = Detail::new(None, s, w);
                assert_eq!((d.served(), d.why()), (s, w));
                assert_eq!(is_error(d.packed), matches!(w, Why::Error(_)));
            }
        }
    }
}
