//! Compiled flags: variations, targets, rules, rollouts and prerequisites, with indexes in
//! place of keys.

use super::clause::{Clause, Kind};
use super::sets::StrSet;
use crate::attr::AttrPath;
use crate::bucket::least_hash_at_or_above;
use crate::model::FlagType;
use crate::packed::Outcome;
use serde_json::Value;
use std::sync::Arc;

/// A compiled rollout.
#[derive(Debug, Clone)]
pub(crate) struct Rollout {
    pub(crate) experiment: bool,
    /// `None`: invalid `bucketBy`. The key for an experiment, whatever its `bucketBy` says.
    pub(crate) bucket_by: Option<AttrPath>,
    /// The context kind hashed. Kept apart from `bucket_by` (not a `Subject`): reading it
    /// through a `Subject` made a 50/50 rollout about 7 % slower for 16 bytes per rollout.
    pub(crate) kind: Kind,
    /// Hash input prefix: `"{seed}."` or `"{flagKey}.{salt}."`.
    pub(crate) prefix: Box<[u8]>,
    pub(crate) variations: Box<[WeightedVariation]>,
}

impl Rollout {
    /// The variation a context whose bucketing hash is `hash` is served: the first whose end
    /// is above the hash, the last one when rounding left the hash above them all (`None`
    /// only when there are no variations). The ends never decrease, so that is the count of
    /// the ends at or below the hash: counted without a branch, so that the work after the
    /// rollout does not wait on a guess about the hash.
    #[inline(always)]
    pub(crate) fn pick(&self, hash: u64) -> Option<&WeightedVariation> {
        // The last variation's end is never read: the hashes past it are served the last.
        let (last, before) = self.variations.split_last()?;
        if let [first] = before {
            // Two variations, as most rollouts have: one comparison, one conditional move.
            return Some(if hash >= first.hash_end { last } else { first });
        }
        let past = before.iter().filter(|w| hash >= w.hash_end).count();
        Some(before.get(past).unwrap_or(last))
    }
}

/// One weighted variation of a compiled rollout. Its weight is not kept: only where its
/// hashes end.
#[derive(Debug, Clone)]
pub(crate) struct WeightedVariation {
    /// The least bucketing hash past this variation: a context whose hash is below it (and not
    /// below an earlier variation's) is served this variation. From the bound the weights give
    /// (see [`WeightedVariation::set_ends`]).
    pub(crate) hash_end: u64,
    /// The variation's index ([`WeightedVariation::MISSING`]: a variation the flag does not
    /// have).
    variation: u32,
    pub(crate) untracked: bool,
}

impl WeightedVariation {
    /// `variation` of a variation the flag does not have.
    const MISSING: u32 = u32::MAX;

    /// A variation (`None`: one the flag does not have), its end not yet set.
    pub(crate) fn new(variation: Option<u32>, untracked: bool) -> Self {
        WeightedVariation {
            hash_end: 0,
            variation: variation.unwrap_or(Self::MISSING),
            untracked,
        }
    }

    /// The variation's index; `None` when the flag does not have it.
    #[inline]
    pub(crate) fn variation(&self) -> Option<u32> {
        (self.variation != Self::MISSING).then_some(self.variation)
    }

    /// Sets the ends of `variations` from their final `weights` (one each). A bucket picks the
    /// first variation whose bound (the running sum of the weights, with the `f32` operations
    /// LaunchDarkly uses, in the same order) is above it; that is the first whose running
    /// largest bound is above it, so each end is the least hash whose bucket reaches the
    /// largest bound so far. The ends never decrease: a rollout counts the ends at or below
    /// a hash instead of searching for the first one above it, the same variation.
    pub(crate) fn set_ends(
        variations: &mut [WeightedVariation],
        weights: impl IntoIterator<Item = i64>,
    ) {
        let (mut sum, mut largest) = (0f32, f32::NEG_INFINITY);
        for (w, weight) in variations.iter_mut().zip(weights) {
            sum += weight as f32 / 100_000.0;
            largest = largest.max(sum);
            w.hash_end = least_hash_at_or_above(largest);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::{bucket_of_hash, HASH_END};
    use proptest::prelude::*;

    /// LaunchDarkly's choice: the running sum of the weights, in `f32`, until it is above the
    /// bucket; else the last variation.
    fn chosen_by_sum(weights: &[i64], hash: u64) -> usize {
        let bucket = bucket_of_hash(hash);
        let mut sum = 0f32;
        for (i, w) in weights.iter().enumerate() {
            sum += *w as f32 / 100_000.0;
            if bucket < sum {
                return i;
            }
        }
        weights.len() - 1
    }

    fn rollout(weights: &[i64]) -> Rollout {
        let mut variations: Vec<WeightedVariation> = (0..weights.len())
            .map(|i| WeightedVariation::new(Some(i as u32), false))
            .collect();
        WeightedVariation::set_ends(&mut variations, weights.iter().copied());
        Rollout {
            experiment: false,
            bucket_by: Some(AttrPath::Key),
            kind: Kind::User,
            prefix: Box::default(),
            variations: variations.into(),
        }
    }

    fn picked(r: &Rollout, hash: u64) -> usize {
        let w = r.pick(hash).expect("a variation");
        w.variation().expect("an index") as usize
    }

    #[test]
    fn the_hash_at_each_end_moves_to_the_next_variation() {
        let weights = [50_000, 50_000];
        let r = rollout(&weights);
        let end = r.variations[0].hash_end;
        for hash in [0, end - 1, end, end + 1, HASH_END - 1] {
            assert_eq!(picked(&r, hash), chosen_by_sum(&weights, hash), "{hash}");
        }
        assert_eq!((picked(&r, end - 1), picked(&r, end)), (0, 1));
    }

    proptest! {
        #[test]
        fn a_rollout_picks_what_the_running_sum_of_weights_picks(
            weights in prop::collection::vec(-20_000i64..120_000, 1..6),
            hashes in prop::collection::vec(0u64..HASH_END, 32),
        ) {
            // Weights need not add up to 100 000 nor be positive: a flag document may say so
            // (with a warning), and the choice stays LaunchDarkly's.
            let r = rollout(&weights);
            let ends: Vec<u64> = r.variations.iter().map(|w| w.hash_end).collect();
            let mut at = ends.clone();
            // The ends themselves and the hashes next to them, where rounding decides.
            at.extend(ends.iter().flat_map(|e| [e.saturating_sub(1), (e + 1).min(HASH_END - 1)]));
            at.retain(|h| *h < HASH_END);
            for hash in hashes.into_iter().chain(at) {
                prop_assert_eq!(picked(&r, hash), chosen_by_sum(&weights, hash), "hash {}", hash);
            }
        }
    }
}
