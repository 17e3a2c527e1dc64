//! Compiling flags: variations and their type, targets, rules, rollouts, prerequisites, and the
//! ready-made outcome of flags that do not depend on the context.

use super::{kind_of, Compiler, Seg};
use crate::attr::AttrPath;
use crate::diagnostic::Severity;
use crate::model::{self, Flag, FlagType, RolloutKind};
use crate::ops::json_eq;
use crate::packed::{Outcome, ReasonCode, Served};
use crate::program::{
    CompiledFlag, Extras, Prerequisite, Rollout, Rule, Serve, StrSet, Target, WeightedVariation,
    MAX_INDEXED,
};
use serde_json::Value;

/// A flag's variations: their values, names and the flag's type.
struct Variations {
    values: Vec<Value>,
    names: Vec<Option<Box<str>>>,
    flag_type: FlagType,
}

impl Compiler<'_> {
    pub(super) fn flag(&mut self, key: &str, f: &Flag) -> CompiledFlag {
        self.start("flags", key, |label| label.push_str(key));
        self.broken = false;
        let Variations {
            values,
            names,
            flag_type,
        } = self.variations(f);
        let default_index = f
            .default
            .as_ref()
            .and_then(|d| values.iter().position(|v| json_eq(v, d)));
        // A default that a variation holds exactly is served as that variation: its value is
        // kept once, and reading it takes the path of any variation.
        let serve_default = match (&f.default, default_index) {
            (Some(d), Some(i)) if values[i] == *d => Serve::Variation(i as u32),
            _ => Serve::Default,
        };
        let default = match serve_default {
            Serve::Default => f.default.clone().map(Box::new),
            _ => None,
        };
        let default_index = default_index.map(|i| i as u32);
        let n = values.len();
        self.check_index_limits(f, n);
        let salt = f.salt.as_deref().unwrap_or("");
        let off = match f.off_variation {
            Some(i) => self.variation(n, i, &[Seg::key("offVariation")]),
            None => serve_default.clone(),
        };
        let prerequisites = self.prerequisites(f);
        let targets = self.targets(f, n);
        let rules: Vec<Rule> = (f.rules.iter().enumerate())
            .map(|(i, r)| {
                self.at(&[Seg::key("rules"), Seg::Index(i)], |c| {
                    c.rule(r, n, key, salt)
                })
            })
            .collect();
        let fallthrough = match &f.fallthrough {
            Some(s) => self.with(Seg::key("fallthrough"), |c| {
                c.serve(n, s.variation, s.rollout.as_deref(), key, salt)
            }),
            None if f.variants.iter().any(|v| v.weight.is_some()) => {
                self.variant_split(f, key, salt)
            }
            None => serve_default,
        };
        let broken = self.broken;
        let constant = if broken {
            None
        } else if !f.enabled {
            fixed_outcome(&off, ReasonCode::Off)
        } else if prerequisites.is_empty() && targets.is_empty() && rules.is_empty() {
            fixed_outcome(&fallthrough, ReasonCode::Fallthrough { experiment: false })
        } else {
            None
        };
        CompiledFlag {
            key: key.into(),
            flag_type,
            enabled: f.enabled,
            values: if *values == *self.bools {
                self.bools.clone()
            } else {
                values.into()
            },
            default,
            default_index,
            off,
            fallthrough,
            rules: rules.into(),
            extras: Extras {
                prerequisites: prerequisites.into(),
                targets: targets.into(),
                // No names: none kept.
                variant_names: if names.iter().all(Option::is_none) {
                    Box::default()
                } else {
                    names.into()
                },
                // Only rule percentages hash with it.
                prefix: if f.rules.iter().any(|r| r.percentage.is_some()) {
                    format!("{key}.{salt}.").into_bytes().into()
                } else {
                    Box::default()
                },
            }
            .boxed(),
            broken,
            constant,
        }
    }

    /// The variations (a bool flag without variants gets `false` and `true`), each checked
    /// against the declared type.
    fn variations(&mut self, f: &Flag) -> Variations {
        let mut values: Vec<Value> = f.variants.iter().map(|v| v.value.clone()).collect();
        let mut names: Vec<Option<Box<str>>> = f
            .variants
            .iter()
            .map(|v| v.name.as_deref().map(Into::into))
            .collect();
        let declared = f.flag_type;
        // Inferred: the type that holds every value and the default (a mix widens to
        // `float` or `json`, so the type never disagrees with what the flag serves).
        let inferred =
            FlagType::common(values.iter().chain(f.default.as_ref())).unwrap_or(FlagType::Bool);
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
                        &[Seg::key("variants"), Seg::Index(i), Seg::key("value")],
                        format!("value {v} is not of the flag's type {}", flag_type.as_str()),
                    );
                }
            }
            if let Some(d) = f.default.as_ref().filter(|d| !flag_type.admits(d)) {
                self.report(
                    Severity::Error,
                    &[Seg::key("default")],
                    format!(
                        "default {d} is not of the flag's type {}",
                        flag_type.as_str()
                    ),
                );
            }
        }
        Variations {
            values,
            names,
            flag_type,
        }
    }

    /// Results carry variation, rule and prerequisite indexes as `u16` (the whole result fits
    /// two registers): more than [`MAX_INDEXED`] of any is an error.
    fn check_index_limits(&mut self, f: &Flag, variations: usize) {
        for (what, len) in [
            ("variants", variations),
            ("rules", f.rules.len()),
            ("prerequisites", f.prerequisites.len()),
        ] {
            if len > MAX_INDEXED {
                self.report(
                    Severity::Error,
                    &[Seg::key(what)],
                    format!("{len} {what}: at most {MAX_INDEXED} are supported"),
                );
            }
        }
    }

    fn prerequisites(&mut self, f: &Flag) -> Vec<Prerequisite> {
        f.prerequisites
            .iter()
            .map(|p| Prerequisite {
                key: p.key.as_str().into(),
                flag: self.flag_position(&p.key),
                variation: p.variation,
            })
            .collect()
    }

    fn targets(&mut self, f: &Flag, n: usize) -> Vec<Target> {
        (f.targets.iter().enumerate())
            .map(|(i, t)| {
                let at = [Seg::key("targets"), Seg::Index(i), Seg::key("variation")];
                Target {
                    kind: kind_of(&t.context_kind),
                    keys: StrSet::new(&t.values),
                    variation: self.variation_index(n, t.variation, &at),
                }
            })
            .collect()
    }

    fn rule(&mut self, r: &model::Rule, n: usize, key: &str, salt: &str) -> Rule {
        let clauses = self.clauses(&r.clauses);
        let percentage = r.percentage.and_then(|p| {
            if (0.0..=100.0).contains(&p) {
                // Compared with the bucket in `f32`.
                Some((p / 100.0) as f32)
            } else {
                self.report(
                    Severity::Error,
                    &[Seg::key("percentage")],
                    format!("percentage {p} is not between 0 and 100"),
                );
                None
            }
        });
        Rule {
            id: r.id.as_deref().map(Into::into),
            clauses,
            percentage,
            serve: self.serve(n, r.variation, r.rollout.as_deref(), key, salt),
        }
    }

    /// Variation `i` of `n` as an index, reporting a missing one at `at`.
    fn variation_index(&mut self, n: usize, i: i64, at: &[Seg]) -> Option<u32> {
        match self.variation(n, i, at) {
            Serve::Variation(v) => Some(v),
            _ => None,
        }
    }

    /// Variant weights as an experiment over the variants, bucketed by key.
    fn variant_split(&mut self, f: &Flag, key: &str, salt: &str) -> Serve {
        let weights: Vec<f64> = f.variants.iter().map(|v| v.weight.unwrap_or(0.0)).collect();
        let total: f64 = weights.iter().sum();
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) || total <= 0.0 {
            self.report(
                Severity::Error,
                &[Seg::key("variants")],
                "variant weights must be non-negative and not all zero".to_owned(),
            );
            return Serve::Malformed;
        }
        let mut acc = 0i64;
        let mut split: Vec<i64> = weights
            .iter()
            .map(|w| {
                let weight = (w / total * 100_000.0).round() as i64;
                acc += weight;
                weight
            })
            .collect();
        if let Some(last) = split.iter_mut().rev().find(|w| **w > 0) {
            *last += 100_000 - acc;
        }
        let mut variations: Vec<WeightedVariation> = (0..split.len())
            .map(|i| WeightedVariation::new(Some(i as u32), false))
            .collect();
        WeightedVariation::set_ends(&mut variations, split);
        Serve::Rollout(Box::new(Rollout {
            experiment: true,
            bucket_by: Some(AttrPath::Key),
            kind: crate::program::Kind::User,
            prefix: format!("{key}.{salt}.").into_bytes().into(),
            variations: variations.into(),
        }))
    }

    fn variation(&mut self, n: usize, i: i64, at: &[Seg]) -> Serve {
        match u32::try_from(i) {
            Ok(v) if (v as usize) < n => Serve::Variation(v),
            _ => {
                self.lazy(
                    at,
                    format!("variation {i} does not exist (the flag has {n})"),
                );
                Serve::Malformed
            }
        }
    }

    /// What a rule or fallthrough serves: variation `variation`, else `rollout`.
    fn serve(
        &mut self,
        n: usize,
        variation: Option<i64>,
        rollout: Option<&model::Rollout>,
        key: &str,
        salt: &str,
    ) -> Serve {
        match (variation, rollout) {
            (Some(i), _) => self.variation(n, i, &[Seg::key("variation")]),
            (None, Some(r)) => self.with(Seg::key("rollout"), |c| c.rollout(n, r, key, salt)),
            (None, None) => {
                self.lazy(&[], "neither a variation nor a rollout".to_owned());
                Serve::Malformed
            }
        }
    }

    fn rollout(&mut self, n: usize, r: &model::Rollout, key: &str, salt: &str) -> Serve {
        if r.variations.is_empty() {
            self.lazy(
                &[Seg::key("variations")],
                "rollout has no variations".to_owned(),
            );
            return Serve::Malformed;
        }
        let experiment = r.kind == Some(RolloutKind::Experiment);
        let bucket_by = self.bucket_by(r.bucket_by.as_deref());
        // An experiment buckets by key whatever its `bucketBy` says (LaunchDarkly's rule;
        // an invalid one is still reported).
        let bucket_by = if experiment {
            Some(AttrPath::Key)
        } else {
            bucket_by
        };
        let mut total = Some(0i64);
        let mut variations: Vec<WeightedVariation> = r
            .variations
            .iter()
            .enumerate()
            .map(|(i, w)| {
                total = total.and_then(|t| t.checked_add(w.weight));
                let variation = self.variation_index(
                    n,
                    w.variation,
                    &[Seg::key("variations"), Seg::Index(i), Seg::key("variation")],
                );
                WeightedVariation::new(variation, w.untracked)
            })
            .collect();
        let Some(total) = total else {
            self.lazy(
                &[Seg::key("variations")],
                "rollout weights overflow: they must add up to 100000".to_owned(),
            );
            return Serve::Malformed;
        };
        if total != 100_000 {
            self.report(
                Severity::Warning,
                &[Seg::key("variations")],
                format!("rollout weights add up to {total}, not 100000; the last variation takes what is left"),
            );
        }
        WeightedVariation::set_ends(&mut variations, r.variations.iter().map(|w| w.weight));
        let prefix = match r.seed {
            Some(seed) => format!("{seed}."),
            None => format!("{key}.{salt}."),
        };
        Serve::Rollout(Box::new(Rollout {
            experiment,
            bucket_by,
            kind: kind_of(&r.context_kind),
            prefix: prefix.into_bytes().into(),
            variations: variations.into(),
        }))
    }
}

/// What a fixed serve (not a rollout) gives, for every context.
fn fixed_outcome(serve: &Serve, reason: ReasonCode) -> Option<Outcome> {
    match serve {
        Serve::Variation(v) => u16::try_from(*v)
            .ok()
            .map(|v| Outcome::new(Served::Variation(v), reason)),
        Serve::Default => Some(Outcome::new(Served::FlagDefault, reason)),
        Serve::Rollout(_) | Serve::Malformed => None,
    }
}
