//! Compilation: a [`FlagDocument`] becomes an immutable [`Snapshot`] once, when flags load.
//!
//! Everything that can be decided ahead of time is: regular expressions, versions, dates and
//! numbers are parsed, `in` lists become sets, attribute references are resolved, prerequisite
//! and segment keys become indexes, and the bucketing hash prefix is prepared. A problem is
//! recorded as a [`Diagnostic`] with the path of the offending node; the part of the flag it
//! affects evaluates to the caller's default with `ERROR`/`MALFORMED_FLAG`, and every other flag
//! keeps working.

use crate::attr::AttrPath;
use crate::eval::{Served, Why};
use crate::model::{
    Clause, Flag, FlagDocument, FlagType, Operator, Rollout, RolloutKind, Segment, Serve,
};
use crate::ops::{json_eq, parse_date, parse_version, str_eq, Pattern, VersionRule};
use crate::source::{Diagnostic, PathSeg, Severity};
use rustc_hash::FxHashMap;
use serde_json::Value;
use std::sync::Arc;

/// A set of strings: a short list scanned linearly, a longer one hashed.
#[derive(Debug, Clone)]
pub(crate) enum StrSet {
    Small(Vec<Box<str>>),
    Large(Box<[Box<str>]>, KeyTable),
}

impl StrSet {
    fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> StrSet {
        let mut v: Vec<Box<str>> = items.into_iter().map(|s| s.as_ref().into()).collect();
        if v.len() <= 8 {
            StrSet::Small(v)
        } else {
            v.sort_unstable();
            v.dedup();
            let table = KeyTable::new(v.iter().map(|s| &**s));
            StrSet::Large(v.into_boxed_slice(), table)
        }
    }

    #[inline(always)]
    pub(crate) fn contains(&self, s: &str) -> bool {
        match self {
            StrSet::Small(v) => v.iter().any(|x| str_eq(x, s)),
            StrSet::Large(keys, table) => table.contains(s, keys),
        }
    }
}

/// Distinct strings by position: an open-addressing table of `(hash tag, position)` pairs,
/// probed linearly, at most half full. A lookup hashes the key once, usually reads one slot, and
/// compares the key inline ([`str_eq`]) only when the 32-bit tags agree: cheaper than a
/// general-purpose map for the lookups evaluation makes (flag keys, `in` lists, targets).
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyTable {
    /// `(tag, position + 1)`; `(_, 0)` is an empty slot.
    slots: Box<[(u32, u32)]>,
}

impl KeyTable {
    /// Indexes `keys`, which must be distinct, by position.
    fn new<'k>(keys: impl ExactSizeIterator<Item = &'k str>) -> KeyTable {
        let capacity = (keys.len() * 2).next_power_of_two().max(8);
        let mut slots = vec![(0u32, 0u32); capacity].into_boxed_slice();
        let mask = capacity - 1;
        for (position, key) in keys.enumerate() {
            let (tag, mut i) = KeyTable::locate(key, mask);
            while slots[i].1 != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = (tag, position as u32 + 1);
        }
        KeyTable { slots }
    }

    /// The tag of `key` and its home slot.
    #[inline]
    fn locate(key: &str, mask: usize) -> (u32, usize) {
        let mut h = rustc_hash::FxHasher::default();
        std::hash::Hasher::write(&mut h, key.as_bytes());
        let h = std::hash::Hasher::finish(&h);
        ((h >> 32) as u32, h as usize & mask)
    }

    /// Whether `key` is one of `keys` (the keys the table was built from).
    #[inline(never)]
    fn contains(&self, key: &str, keys: &[Box<str>]) -> bool {
        self.get(key, |i| &keys[i]).is_some()
    }

    /// The position of `key`, where `key_at` gives the key at a position.
    #[inline]
    pub(crate) fn get<'k>(&self, key: &str, key_at: impl Fn(usize) -> &'k str) -> Option<u32> {
        let mask = self.slots.len().checked_sub(1)?;
        let (tag, mut i) = KeyTable::locate(key, mask);
        loop {
            let (t, p) = self.slots[i];
            if p == 0 {
                return None;
            }
            if t == tag && str_eq(key_at(p as usize - 1), key) {
                return Some(p - 1);
            }
            i = (i + 1) & mask;
        }
    }
}

/// The equality operand of `eq` / `in`, split by type.
#[derive(Debug, Clone)]
pub(crate) struct EqSet {
    pub(crate) strings: StrSet,
    pub(crate) numbers: Vec<f64>,
    pub(crate) bools: [bool; 2],
    pub(crate) others: Vec<Value>,
}

impl EqSet {
    fn new(values: &[Value]) -> EqSet {
        let mut strings = Vec::new();
        let mut numbers = Vec::new();
        let mut bools = [false; 2];
        let mut others = Vec::new();
        for v in values {
            match v {
                Value::String(s) => strings.push(s.as_str()),
                Value::Number(n) => numbers.extend(n.as_f64()),
                Value::Bool(b) => bools[*b as usize] = true,
                Value::Null => {}
                other => others.push(other.clone()),
            }
        }
        EqSet {
            strings: StrSet::new(strings),
            numbers,
            bools,
            others,
        }
    }

    #[inline]
    pub(crate) fn contains(&self, v: &Value) -> bool {
        match v {
            Value::String(s) => self.strings.contains(s),
            Value::Number(n) => n.as_f64().is_some_and(|f| self.numbers.contains(&f)),
            Value::Bool(b) => self.bools[*b as usize],
            Value::Null => false,
            other => self.others.iter().any(|o| json_eq(o, other)),
        }
    }
}

/// A comparison direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Lt,
    Lte,
    Gt,
    Gte,
    Eq,
}

impl Cmp {
    #[inline]
    pub(crate) fn holds(self, o: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Cmp::Lt => o == Less,
            Cmp::Lte => o != Greater,
            Cmp::Gt => o == Greater,
            Cmp::Gte => o != Less,
            Cmp::Eq => o == Equal,
        }
    }
}

/// A compiled clause operation.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    In(EqSet),
    StartsWith(Vec<Box<str>>),
    EndsWith(Vec<Box<str>>),
    Contains(Vec<Box<str>>),
    Matches(Vec<Pattern>),
    Number(Cmp, Vec<f64>),
    Date(Cmp, Vec<f64>),
    Version(Cmp, Vec<semver::Version>),
    VersionRule(Vec<VersionRule>),
    Segment(Vec<Option<u32>>),
    Never,
}

/// A compiled clause.
#[derive(Debug, Clone)]
pub(crate) struct CClause {
    pub(crate) kind: Box<str>,
    /// `None`: the attribute reference is invalid; reaching the clause is `MALFORMED_FLAG`.
    pub(crate) attr: Option<AttrPath>,
    pub(crate) op: Op,
    pub(crate) negate: bool,
}

/// A compiled rollout.
#[derive(Debug, Clone)]
pub(crate) struct CRollout {
    pub(crate) experiment: bool,
    /// `None`: invalid `bucketBy`.
    pub(crate) bucket_by: Option<AttrPath>,
    pub(crate) kind: Box<str>,
    /// Hash input prefix: `"{seed}."` or `"{flagKey}.{salt}."`.
    pub(crate) prefix: Box<[u8]>,
    pub(crate) variations: Vec<CWeighted>,
}

/// One weighted variation of a compiled rollout.
#[derive(Debug, Clone)]
pub(crate) struct CWeighted {
    pub(crate) variation: Option<u32>,
    pub(crate) weight: i64,
    pub(crate) untracked: bool,
}

/// What a compiled rule, target or fallthrough serves.
#[derive(Debug, Clone)]
pub(crate) enum CServe {
    Variation(u32),
    Default,
    Rollout(Box<CRollout>),
    Malformed,
}

/// Most variants, rules and prerequisites a flag may have: evaluation results index them with
/// a `u16`.
pub(crate) const MAX_INDEXED: usize = u16::MAX as usize + 1;

/// A compiled rule.
#[derive(Debug, Clone)]
pub(crate) struct CRule {
    pub(crate) id: Option<Box<str>>,
    pub(crate) clauses: Vec<CClause>,
    /// Rule percentage as a bucket threshold in `[0, 1]`, with the hash prefix it uses.
    pub(crate) percentage: Option<f64>,
    pub(crate) serve: CServe,
}

/// A compiled individual target list.
#[derive(Debug, Clone)]
pub(crate) struct CTarget {
    pub(crate) kind: Box<str>,
    pub(crate) keys: StrSet,
    pub(crate) variation: Option<u32>,
}

/// A compiled prerequisite.
#[derive(Debug, Clone)]
pub(crate) struct CPrereq {
    pub(crate) key: Box<str>,
    pub(crate) flag: Option<u32>,
    pub(crate) variation: i64,
}

/// A flag compiled for evaluation.
#[derive(Debug, Clone)]
pub struct CompiledFlag {
    pub(crate) key: Box<str>,
    pub(crate) flag_type: FlagType,
    pub(crate) enabled: bool,
    pub(crate) values: Vec<Value>,
    pub(crate) variant_names: Vec<Option<Box<str>>>,
    pub(crate) default: Option<Value>,
    pub(crate) default_index: Option<usize>,
    pub(crate) off: CServe,
    pub(crate) fallthrough: CServe,
    pub(crate) prerequisites: Vec<CPrereq>,
    pub(crate) targets: Vec<CTarget>,
    pub(crate) rules: Vec<CRule>,
    /// `"{key}.{salt}."`: the hash prefix of rule percentages.
    pub(crate) prefix: Box<[u8]>,
    /// A whole-flag compile error: every evaluation is `MALFORMED_FLAG`.
    pub(crate) broken: bool,
    /// The outcome for every context, when it does not depend on the context (an off flag, or
    /// an on flag without prerequisites, targets or rules serving a fixed variation).
    /// Packed as [`crate::Detail`] carries it (`eval::pack`).
    pub(crate) constant: Option<u64>,
}

impl CompiledFlag {
    fn broken(key: &str) -> Self {
        CompiledFlag {
            key: key.into(),
            flag_type: FlagType::Json,
            enabled: false,
            values: Vec::new(),
            variant_names: Vec::new(),
            default: None,
            default_index: None,
            off: CServe::Malformed,
            fallthrough: CServe::Malformed,
            prerequisites: Vec::new(),
            targets: Vec::new(),
            rules: Vec::new(),
            prefix: Box::default(),
            broken: true,
            constant: None,
        }
    }

    /// The flag's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The flag's value type.
    pub fn flag_type(&self) -> FlagType {
        self.flag_type
    }

    /// Whether targeting is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The values of the flag's variations, by index.
    pub fn variations(&self) -> &[Value] {
        &self.values
    }

    /// The name of variation `index`, when it has one.
    pub fn variation_name(&self, index: usize) -> Option<&str> {
        self.variant_names.get(index).and_then(|n| n.as_deref())
    }

    /// Whether the flag failed to compile as a whole (it evaluates to `MALFORMED_FLAG`).
    pub fn is_malformed(&self) -> bool {
        self.broken
    }

    /// The rule id of rule `index`, when it has one.
    pub fn rule_id(&self, index: usize) -> Option<&str> {
        self.rules.get(index).and_then(|r| r.id.as_deref())
    }
}

/// A compiled segment rule.
#[derive(Debug, Clone)]
pub(crate) struct CSegmentRule {
    pub(crate) clauses: Vec<CClause>,
    pub(crate) weight: Option<i64>,
    pub(crate) bucket_by: Option<AttrPath>,
    pub(crate) kind: Box<str>,
}

/// A compiled segment.
#[derive(Debug, Clone)]
pub(crate) struct CSegment {
    pub(crate) included: StrSet,
    pub(crate) excluded: StrSet,
    pub(crate) included_contexts: Vec<(Box<str>, StrSet)>,
    pub(crate) excluded_contexts: Vec<(Box<str>, StrSet)>,
    pub(crate) rules: Vec<CSegmentRule>,
    pub(crate) prefix: Box<[u8]>,
}

/// An immutable, compiled set of flags and segments, ready for lock-free evaluation.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub(crate) flags: Vec<CompiledFlag>,
    /// Flag positions by key.
    pub(crate) index: KeyTable,
    pub(crate) segments: Vec<CSegment>,
    diagnostics: Vec<Diagnostic>,
    document: Arc<FlagDocument>,
}

impl Snapshot {
    /// The compiled flag with this key.
    pub fn flag(&self, key: &str) -> Option<&CompiledFlag> {
        self.position(key).map(|i| &self.flags[i as usize])
    }

    /// The position of the flag with this key in [`Snapshot::flags`].
    #[inline]
    pub(crate) fn position(&self, key: &str) -> Option<u32> {
        self.index.get(key, |i| &self.flags[i].key)
    }

    /// Every compiled flag, sorted by key.
    pub fn flags(&self) -> impl ExactSizeIterator<Item = &CompiledFlag> {
        self.flags.iter()
    }

    /// Number of flags.
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    /// Whether there are no flags.
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// Number of flags whose targeting is on.
    pub fn enabled_count(&self) -> usize {
        self.flags.iter().filter(|f| f.enabled).count()
    }

    /// Problems found while compiling (errors and warnings), in document order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    pub(crate) fn diagnostics_mut(&mut self) -> &mut [Diagnostic] {
        &mut self.diagnostics
    }

    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// The document this snapshot was compiled from.
    pub fn document(&self) -> &Arc<FlagDocument> {
        &self.document
    }
}

/// Compiles a flag document into a snapshot. Never fails: problems become diagnostics.
pub fn compile(doc: FlagDocument) -> Snapshot {
    compile_with(Arc::new(doc), Vec::new())
}

/// Compiles a shared document, keeping diagnostics found earlier (e.g. while parsing).
pub fn compile_with(doc: Arc<FlagDocument>, mut diagnostics: Vec<Diagnostic>) -> Snapshot {
    let seg_index: FxHashMap<&str, u32> = doc
        .segments
        .keys()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i as u32))
        .collect();
    // Flags that could not even be read stay visible: they evaluate to MALFORMED_FLAG.
    let unreadable: Vec<String> = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error && d.path.first() == Some(&PathSeg::key("flags")))
        .filter_map(|d| match d.path.get(1) {
            Some(PathSeg::Key(k)) if !doc.flags.contains_key(k) => Some(k.clone()),
            _ => None,
        })
        .collect();
    let mut keys: Vec<&str> = doc
        .flags
        .keys()
        .map(String::as_str)
        .chain(unreadable.iter().map(String::as_str))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let flag_index: FxHashMap<&str, u32> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (*k, i as u32))
        .collect();
    let mut new_diags = Vec::new();
    let mut cx = Cx {
        diags: &mut new_diags,
        segs: &seg_index,
        flags: &flag_index,
        path: Vec::new(),
        flag: String::new(),
        broken: false,
    };
    let segments = doc.segments.iter().map(|(k, s)| cx.segment(k, s)).collect();
    let flags: Vec<CompiledFlag> = keys
        .iter()
        .map(|k| match doc.flags.get(*k) {
            Some(f) => cx.flag(k, f),
            None => CompiledFlag::broken(k),
        })
        .collect();
    drop(keys);
    diagnostics.extend(new_diags);
    let index = KeyTable::new(flags.iter().map(|f| &*f.key));
    Snapshot {
        flags,
        index,
        segments,
        diagnostics,
        document: doc,
    }
}

struct Cx<'a> {
    diags: &'a mut Vec<Diagnostic>,
    segs: &'a FxHashMap<&'a str, u32>,
    flags: &'a FxHashMap<&'a str, u32>,
    path: Vec<PathSeg>,
    flag: String,
    broken: bool,
}

impl Cx<'_> {
    /// Records a problem; an error breaks the whole flag.
    fn report(&mut self, severity: Severity, extra: &[PathSeg], message: String) {
        if severity == Severity::Error {
            self.broken = true;
        }
        self.push(severity, extra, message);
    }

    fn push(&mut self, severity: Severity, extra: &[PathSeg], message: String) {
        let mut path = self.path.clone();
        path.extend_from_slice(extra);
        self.diags.push(Diagnostic {
            flag: self.flag.clone(),
            path,
            severity,
            message,
            line: None,
            column: None,
            file: None,
        });
    }

    /// An error that only affects one evaluation path (LaunchDarkly's lazy `MALFORMED_FLAG`).
    fn lazy(&mut self, extra: &[PathSeg], message: String) {
        self.push(Severity::Error, extra, message);
    }

    fn with<T>(&mut self, seg: PathSeg, f: impl FnOnce(&mut Self) -> T) -> T {
        self.path.push(seg);
        let r = f(self);
        self.path.pop();
        r
    }

    fn flag(&mut self, key: &str, f: &Flag) -> CompiledFlag {
        self.flag = key.to_owned();
        self.broken = false;
        self.path = vec![PathSeg::key("flags"), PathSeg::key(key)];
        let mut values: Vec<Value> = f.variants.iter().map(|v| v.value.clone()).collect();
        let mut names: Vec<Option<Box<str>>> = f
            .variants
            .iter()
            .map(|v| v.name.as_deref().map(Into::into))
            .collect();
        let declared = f.flag_type;
        let inferred = values
            .first()
            .or(f.default.as_ref())
            .map(FlagType::of)
            .unwrap_or(FlagType::Bool);
        let flag_type = declared.unwrap_or(inferred);
        if values.is_empty() && flag_type == FlagType::Bool {
            values = vec![Value::Bool(false), Value::Bool(true)];
            names = vec![None, None];
        }
        if declared.is_some() {
            for (i, v) in values.iter().enumerate() {
                if !flag_type.admits(v) {
                    self.report(
                        Severity::Error,
                        &[
                            PathSeg::key("variants"),
                            PathSeg::Index(i),
                            PathSeg::key("value"),
                        ],
                        format!("value {v} is not of the flag's type {}", flag_type.as_str()),
                    );
                }
            }
            if let Some(d) = &f.default {
                if !flag_type.admits(d) {
                    self.report(
                        Severity::Error,
                        &[PathSeg::key("default")],
                        format!(
                            "default {d} is not of the flag's type {}",
                            flag_type.as_str()
                        ),
                    );
                }
            }
        }
        let default_index = f
            .default
            .as_ref()
            .and_then(|d| values.iter().position(|v| json_eq(v, d)));
        let n = values.len();
        // Results carry these indexes as `u16` (two registers for the whole result).
        for (what, len) in [
            ("variants", n),
            ("rules", f.rules.len()),
            ("prerequisites", f.prerequisites.len()),
        ] {
            if len > MAX_INDEXED {
                self.report(
                    Severity::Error,
                    &[PathSeg::key(what)],
                    format!("{len} {what}: at most {MAX_INDEXED} are supported"),
                );
            }
        }
        let salt = f.salt.as_deref().unwrap_or("");
        let prefix: Box<[u8]> = format!("{key}.{salt}.").into_bytes().into();

        let off = match f.off_variation {
            Some(i) => self.variation(n, i, &[PathSeg::key("offVariation")]),
            None => CServe::Default,
        };
        let prerequisites: Vec<CPrereq> = f
            .prerequisites
            .iter()
            .map(|p| CPrereq {
                key: p.key.as_str().into(),
                flag: self.flags.get(p.key.as_str()).copied(),
                variation: p.variation,
            })
            .collect();
        let targets: Vec<CTarget> = f
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let variation = match self.variation(
                    n,
                    t.variation,
                    &[
                        PathSeg::key("targets"),
                        PathSeg::Index(i),
                        PathSeg::key("variation"),
                    ],
                ) {
                    CServe::Variation(v) => Some(v),
                    _ => None,
                };
                CTarget {
                    kind: kind_of(&t.context_kind),
                    keys: StrSet::new(&t.values),
                    variation,
                }
            })
            .collect();
        let rules: Vec<CRule> = f
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                self.with(PathSeg::key("rules"), |cx| {
                    cx.with(PathSeg::Index(i), |cx| {
                        let clauses = cx.clauses(&r.clauses);
                        let percentage = r.percentage.and_then(|p| {
                            if (0.0..=100.0).contains(&p) {
                                Some(p / 100.0)
                            } else {
                                cx.report(
                                    Severity::Error,
                                    &[PathSeg::key("percentage")],
                                    format!("percentage {p} is not between 0 and 100"),
                                );
                                None
                            }
                        });
                        let serve = cx.serve(
                            n,
                            &Serve {
                                variation: r.variation,
                                rollout: r.rollout.clone(),
                            },
                            key,
                            salt,
                        );
                        CRule {
                            id: r.id.as_deref().map(Into::into),
                            clauses,
                            percentage,
                            serve,
                        }
                    })
                })
            })
            .collect();
        let fallthrough = match &f.fallthrough {
            Some(s) => self.with(PathSeg::key("fallthrough"), |cx| cx.serve(n, s, key, salt)),
            None if f.variants.iter().any(|v| v.weight.is_some()) => {
                self.variant_split(f, key, salt)
            }
            None => CServe::Default,
        };
        let broken = self.broken;
        let constant = if broken {
            None
        } else if !f.enabled {
            fixed_outcome(&off, Why::Off)
        } else if prerequisites.is_empty() && targets.is_empty() && rules.is_empty() {
            fixed_outcome(&fallthrough, Why::Fallthrough { experiment: false })
        } else {
            None
        };
        CompiledFlag {
            key: key.into(),
            flag_type,
            enabled: f.enabled,
            values,
            variant_names: names,
            default: f.default.clone(),
            default_index,
            off,
            fallthrough,
            prerequisites,
            targets,
            rules,
            prefix,
            broken,
            constant: constant.map(|(s, w)| crate::eval::pack(s, w)),
        }
    }

    /// Variant weights as an experiment over the variants, bucketed by key.
    fn variant_split(&mut self, f: &Flag, key: &str, salt: &str) -> CServe {
        let weights: Vec<f64> = f.variants.iter().map(|v| v.weight.unwrap_or(0.0)).collect();
        let total: f64 = weights.iter().sum();
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) || total <= 0.0 {
            self.report(
                Severity::Error,
                &[PathSeg::key("variants")],
                "variant weights must be non-negative and not all zero".to_owned(),
            );
            return CServe::Malformed;
        }
        let mut acc = 0i64;
        let mut variations: Vec<CWeighted> = weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let weight = (w / total * 100_000.0).round() as i64;
                acc += weight;
                CWeighted {
                    variation: Some(i as u32),
                    weight,
                    untracked: false,
                }
            })
            .collect();
        if let Some(last) = variations.iter_mut().rev().find(|v| v.weight > 0) {
            last.weight += 100_000 - acc;
        }
        CServe::Rollout(Box::new(CRollout {
            experiment: true,
            bucket_by: Some(AttrPath::Key),
            kind: crate::context::USER_KIND.into(),
            prefix: format!("{key}.{salt}.").into_bytes().into(),
            variations,
        }))
    }

    fn variation(&mut self, n: usize, i: i64, at: &[PathSeg]) -> CServe {
        match u32::try_from(i) {
            Ok(v) if (v as usize) < n => CServe::Variation(v),
            _ => {
                self.lazy(
                    at,
                    format!("variation {i} does not exist (the flag has {n})"),
                );
                CServe::Malformed
            }
        }
    }

    fn serve(&mut self, n: usize, s: &Serve, key: &str, salt: &str) -> CServe {
        match (&s.variation, &s.rollout) {
            (Some(i), _) => self.variation(n, *i, &[PathSeg::key("variation")]),
            (None, Some(r)) => self.with(PathSeg::key("rollout"), |cx| cx.rollout(n, r, key, salt)),
            (None, None) => {
                self.lazy(&[], "neither a variation nor a rollout".to_owned());
                CServe::Malformed
            }
        }
    }

    fn rollout(&mut self, n: usize, r: &Rollout, key: &str, salt: &str) -> CServe {
        if r.variations.is_empty() {
            self.lazy(
                &[PathSeg::key("variations")],
                "rollout has no variations".to_owned(),
            );
            return CServe::Malformed;
        }
        let experiment = r.kind == Some(RolloutKind::Experiment);
        let bucket_by = match r.bucket_by.as_deref() {
            None => Some(AttrPath::Key),
            Some(b) => match AttrPath::parse(b) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.lazy(&[PathSeg::key("bucketBy")], e.to_string());
                    None
                }
            },
        };
        let mut total = 0i64;
        let variations = r
            .variations
            .iter()
            .enumerate()
            .map(|(i, w)| {
                total += w.weight;
                let variation = match self.variation(
                    n,
                    w.variation,
                    &[
                        PathSeg::key("variations"),
                        PathSeg::Index(i),
                        PathSeg::key("variation"),
                    ],
                ) {
                    CServe::Variation(v) => Some(v),
                    _ => None,
                };
                CWeighted {
                    variation,
                    weight: w.weight,
                    untracked: w.untracked,
                }
            })
            .collect();
        if total != 100_000 {
            self.report(
                Severity::Warning,
                &[PathSeg::key("variations")],
                format!("rollout weights add up to {total}, not 100000; the last variation takes what is left"),
            );
        }
        let prefix = match r.seed {
            Some(seed) => format!("{seed}."),
            None => format!("{key}.{salt}."),
        };
        CServe::Rollout(Box::new(CRollout {
            experiment,
            bucket_by,
            kind: kind_of(&r.context_kind),
            prefix: prefix.into_bytes().into(),
            variations,
        }))
    }

    fn clauses(&mut self, clauses: &[Clause]) -> Vec<CClause> {
        clauses
            .iter()
            .enumerate()
            .map(|(i, c)| {
                self.with(PathSeg::key("clauses"), |cx| {
                    cx.with(PathSeg::Index(i), |cx| cx.clause(c))
                })
            })
            .collect()
    }

    fn clause(&mut self, c: &Clause) -> CClause {
        let attr = if c.operator == Operator::SegmentMatch {
            Some(AttrPath::Key)
        } else {
            match AttrPath::parse(&c.attribute) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.lazy(&[PathSeg::key("attribute")], e.to_string());
                    None
                }
            }
        };
        let mut negate = c.negate;
        let vals = &c.values;
        let strings = || -> Vec<Box<str>> {
            vals.iter()
                .filter_map(|v| v.as_str().map(Into::into))
                .collect()
        };
        let numbers = || -> Vec<f64> { vals.iter().filter_map(Value::as_f64).collect() };
        let op = match &c.operator {
            Operator::Eq | Operator::In => Op::In(EqSet::new(vals)),
            Operator::Neq | Operator::NotIn => {
                negate = !negate;
                Op::In(EqSet::new(vals))
            }
            Operator::StartsWith => Op::StartsWith(strings()),
            Operator::EndsWith => Op::EndsWith(strings()),
            Operator::Contains => Op::Contains(strings()),
            Operator::Matches => {
                let mut res = Vec::new();
                for (i, v) in vals.iter().enumerate() {
                    let Some(s) = v.as_str() else { continue };
                    match Pattern::new(s) {
                        Ok(r) => res.push(r),
                        Err(e) => self.report(
                            Severity::Error,
                            &[PathSeg::key("values"), PathSeg::Index(i)],
                            format!(
                                "invalid regular expression {s:?}: {}",
                                first_line(&e.to_string())
                            ),
                        ),
                    }
                }
                Op::Matches(res)
            }
            Operator::Gt => Op::Number(Cmp::Gt, numbers()),
            Operator::Gte => Op::Number(Cmp::Gte, numbers()),
            Operator::Lt => Op::Number(Cmp::Lt, numbers()),
            Operator::Lte => Op::Number(Cmp::Lte, numbers()),
            Operator::Before => Op::Date(Cmp::Lt, vals.iter().filter_map(parse_date).collect()),
            Operator::After => Op::Date(Cmp::Gt, vals.iter().filter_map(parse_date).collect()),
            Operator::SemVerEqual => Op::Version(Cmp::Eq, self.versions(vals)),
            Operator::SemVerLessThan => Op::Version(Cmp::Lt, self.versions(vals)),
            Operator::SemVerGreaterThan => Op::Version(Cmp::Gt, self.versions(vals)),
            Operator::SemVer => {
                let mut rules = Vec::new();
                for (i, v) in vals.iter().enumerate() {
                    let parsed = match v.as_str() {
                        Some(s) => VersionRule::parse(s),
                        None => Err(format!("{v} is not a version requirement string")),
                    };
                    match parsed {
                        Ok(r) => rules.push(r),
                        Err(m) => self.report(
                            Severity::Error,
                            &[PathSeg::key("values"), PathSeg::Index(i)],
                            m,
                        ),
                    }
                }
                Op::VersionRule(rules)
            }
            Operator::SegmentMatch => Op::Segment(
                vals.iter()
                    .map(|v| v.as_str().and_then(|s| self.segs.get(s).copied()))
                    .collect(),
            ),
            Operator::Unknown(name) => {
                self.report(
                    Severity::Warning,
                    &[PathSeg::key("operator")],
                    format!("unknown operator {name:?}: the clause never matches"),
                );
                Op::Never
            }
        };
        CClause {
            kind: kind_of(&c.context_kind),
            attr,
            op,
            negate,
        }
    }

    fn versions(&mut self, vals: &[Value]) -> Vec<semver::Version> {
        vals.iter()
            .filter_map(|v| v.as_str().and_then(parse_version))
            .collect()
    }

    fn segment(&mut self, key: &str, s: &Segment) -> CSegment {
        self.flag = format!("segment {key}");
        self.path = vec![PathSeg::key("segments"), PathSeg::key(key)];
        let rules = s
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                self.with(PathSeg::key("rules"), |cx| {
                    cx.with(PathSeg::Index(i), |cx| {
                        let bucket_by = match r.bucket_by.as_deref() {
                            None => Some(AttrPath::Key),
                            Some(b) => match AttrPath::parse(b) {
                                Ok(p) => Some(p),
                                Err(e) => {
                                    cx.lazy(&[PathSeg::key("bucketBy")], e.to_string());
                                    None
                                }
                            },
                        };
                        CSegmentRule {
                            clauses: cx.clauses(&r.clauses),
                            weight: r.weight,
                            bucket_by,
                            kind: kind_of(&r.rollout_context_kind),
                        }
                    })
                })
            })
            .collect();
        let targets = |list: &[crate::model::SegmentTarget]| {
            list.iter()
                .map(|t| (t.context_kind.as_str().into(), StrSet::new(&t.values)))
                .collect()
        };
        let salt = s.salt.as_deref().unwrap_or("");
        CSegment {
            included: StrSet::new(&s.included),
            excluded: StrSet::new(&s.excluded),
            included_contexts: targets(&s.included_contexts),
            excluded_contexts: targets(&s.excluded_contexts),
            rules,
            prefix: format!("{key}.{salt}.").into_bytes().into(),
        }
    }
}

/// What a fixed serve (not a rollout) gives, for every context.
fn fixed_outcome(serve: &CServe, why: Why) -> Option<(Served, Why)> {
    match serve {
        CServe::Variation(v) => u16::try_from(*v).ok().map(|v| (Served::Variation(v), why)),
        CServe::Default => Some((Served::FlagDefault, why)),
        CServe::Rollout(_) | CServe::Malformed => None,
    }
}

fn kind_of(k: &Option<String>) -> Box<str> {
    k.as_deref().unwrap_or(crate::context::USER_KIND).into()
}

fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_string_sets_hold_exactly_their_members() {
        let members: Vec<String> = (0..50)
            .map(|i| format!("m{i}"))
            .chain(["m1".into()])
            .collect();
        let set = StrSet::new(&members);
        assert!(matches!(set, StrSet::Large(..)));
        for m in &members {
            assert!(set.contains(m));
        }
        for other in ["", "m", "m50", "M1", "m1 "] {
            assert!(!set.contains(other), "{other}");
        }
    }

    #[test]
    fn the_flag_index_finds_every_key_and_only_those() {
        for n in [0usize, 1, 2, 7, 8, 9, 100, 1000] {
            let doc = FlagDocument {
                flags: (0..n)
                    .map(|i| {
                        let k = format!("flag-{i}");
                        (k.clone(), Flag::boolean(k, i % 2 == 0))
                    })
                    .collect(),
                ..FlagDocument::default()
            };
            let snap = compile(doc);
            for i in 0..n {
                let key = format!("flag-{i}");
                assert_eq!(snap.flag(&key).map(|f| f.key()), Some(key.as_str()));
            }
            for absent in ["", "flag-", "flag-x", "flag-1000000", "FLAG-1"] {
                assert!(snap.flag(absent).is_none(), "{absent}");
            }
        }
        assert!(Snapshot::default().flag("x").is_none());
    }
}
