//! Compiled flags: variations, targets, rules, rollouts and prerequisites, with indexes in
//! place of keys.

use super::clause::{Clause, Kind};
use super::sets::StrSet;
use crate::attr::AttrPath;
use crate::model::FlagType;
use crate::packed::Outcome;
use serde_json::Value;
use std::sync::Arc;

/// A compiled rollout.
#[derive(Debug, Clone)]
pub(crate) struct Rollout {
    pub(crate) experiment: bool,
    /// `None`: invalid `bucketBy`.
    pub(crate) bucket_by: Option<AttrPath>,
    /// The context kind hashed. Kept apart from `bucket_by` (not a `Subject`): reading it
    /// through a `Subject` made a 50/50 rollout about 7 % slower for 16 bytes per rollout.
    pub(crate) kind: Kind,
    /// Hash input prefix: `"{seed}."` or `"{flagKey}.{salt}."`.
    pub(crate) prefix: Box<[u8]>,
    pub(crate) variations: Box<[WeightedVariation]>,
}

/// One weighted variation of a compiled rollout. Its weight is not kept: only the bound it
/// gives.
#[derive(Debug, Clone)]
pub(crate) struct WeightedVariation {
    pub(crate) variation: Option<u32>,
    /// The bucket this variation serves below: the sum, in `f32`, of `weight / 100000` over
    /// this variation and the ones before it (see [`WeightedVariation::set_bounds`]).
    pub(crate) bound: f32,
    pub(crate) untracked: bool,
}

impl WeightedVariation {
    /// A variation, its bound not yet set.
    pub(crate) fn new(variation: Option<u32>, untracked: bool) -> Self {
        WeightedVariation {
            variation,
            bound: 0.0,
            untracked,
        }
    }

    /// Sets the bounds of `variations` from their final `weights` (one each): the running sum
    /// evaluation used to compute per context, with the same `f32` operations in the same
    /// order, so every bucket picks the same variation.
    pub(crate) fn set_bounds(
        variations: &mut [WeightedVariation],
        weights: impl IntoIterator<Item = i64>,
    ) {
        let mut sum = 0f32;
        for (w, weight) in variations.iter_mut().zip(weights) {
            sum += weight as f32 / 100_000.0;
            w.bound = sum;
        }
    }
}

/// What a compiled rule, target or fallthrough serves.
#[derive(Debug, Clone)]
pub(crate) enum Serve {
    Variation(u32),
    Default,
    Rollout(Box<Rollout>),
    Malformed,
}

/// Most variants, rules and prerequisites a flag may have: evaluation results index them with
/// a `u16`.
pub(crate) const MAX_INDEXED: usize = u16::MAX as usize + 1;

/// A compiled rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) id: Option<Box<str>>,
    pub(crate) clauses: Box<[Clause]>,
    /// Rule percentage as a bucket threshold in `[0, 1]`, in `f32` like the bucket.
    pub(crate) percentage: Option<f32>,
    pub(crate) serve: Serve,
}

/// A compiled individual target list.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) kind: Kind,
    pub(crate) keys: StrSet,
    pub(crate) variation: Option<u32>,
}

/// A compiled prerequisite.
#[derive(Debug, Clone)]
pub(crate) struct Prerequisite {
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
    /// Shared between flags with the same values (`false`, `true` of bool flags).
    pub(crate) values: Arc<[Value]>,
    /// The flag's default value, when no variation holds it exactly (one that does is served
    /// as that variation).
    pub(crate) default: Option<Box<Value>>,
    /// The variation equal to the default, if any.
    pub(crate) default_index: Option<u32>,
    pub(crate) off: Serve,
    pub(crate) fallthrough: Serve,
    pub(crate) rules: Box<[Rule]>,
    /// Parts many flags do without, boxed together: `None` when all are empty.
    pub(crate) extras: Option<Box<Extras>>,
    /// A whole-flag compile error: every evaluation is `MALFORMED_FLAG`.
    pub(crate) broken: bool,
    /// The outcome for every context, when it does not depend on the context (an off flag, or
    /// an on flag without prerequisites, targets or rules serving a fixed variation).
    pub(crate) constant: Option<Outcome>,
}

/// The parts of a compiled flag that many flags do without.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extras {
    pub(crate) prerequisites: Box<[Prerequisite]>,
    pub(crate) targets: Box<[Target]>,
    /// Empty when no variation has a name.
    pub(crate) variant_names: Box<[Option<Box<str>>]>,
    /// `"{key}.{salt}."`: the hash prefix of rule percentages (empty when no rule has one).
    pub(crate) prefix: Box<[u8]>,
}

impl Extras {
    /// These parts, boxed; `None` when all are empty.
    pub(crate) fn boxed(self) -> Option<Box<Extras>> {
        let empty = self.prerequisites.is_empty()
            && self.targets.is_empty()
            && self.variant_names.is_empty()
            && self.prefix.is_empty();
        (!empty).then(|| Box::new(self))
    }
}

impl CompiledFlag {
    /// The flag's prerequisites.
    #[inline(always)]
    pub(crate) fn prerequisites(&self) -> &[Prerequisite] {
        match &self.extras {
            Some(e) => &e.prerequisites,
            None => &[],
        }
    }

    /// The flag's prerequisites, to rewrite their references.
    pub(crate) fn prerequisites_mut(&mut self) -> &mut [Prerequisite] {
        match &mut self.extras {
            Some(e) => &mut e.prerequisites,
            None => &mut [],
        }
    }

    /// The flag's individual targets.
    #[inline(always)]
    pub(crate) fn targets(&self) -> &[Target] {
        match &self.extras {
            Some(e) => &e.targets,
            None => &[],
        }
    }

    /// The hash prefix of rule percentages.
    #[inline]
    pub(crate) fn prefix(&self) -> &[u8] {
        match &self.extras {
            Some(e) => &e.prefix,
            None => &[],
        }
    }

    pub(crate) fn broken(key: &str) -> Self {
        CompiledFlag {
            key: key.into(),
            flag_type: FlagType::Json,
            enabled: false,
            values: Arc::new([]),
            default: None,
            default_index: None,
            off: Serve::Malformed,
            fallthrough: Serve::Malformed,
            rules: Box::default(),
            extras: None,
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
        let names = self.extras.as_ref().map_or(&[][..], |e| &e.variant_names);
        names.get(index).and_then(|n| n.as_deref())
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
