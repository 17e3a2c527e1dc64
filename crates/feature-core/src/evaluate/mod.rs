//! Evaluating: a compiled flag and a context give an [`Outcome`], read through [`Detail`].
//!
//! The evaluator allocates nothing, takes no lock and reads no clock. Order of decisions: a
//! malformed flag is an error; an off flag serves its off variation; a failed prerequisite
//! serves the off variation; then individual targets, rules in order, and the fallthrough.

mod chain;
mod clause;
mod rollout;
mod segment;

use crate::bucket::bucket_value;
use crate::context::{Context, USER_KIND};
use crate::detail::Detail;
use crate::explain::{Step, Tracer};
use crate::outcome::ErrorKind;
use crate::packed::{Outcome, ReasonCode, Served};
use crate::program::{CompiledFlag, Rule, Serve, Snapshot};
use chain::Visiting;
pub(crate) use chain::MAX_DEPTH;

/// Marker for an evaluation path that reached a malformed part of a flag: the evaluation
/// serves the caller's default with `ERROR`/`MALFORMED_FLAG`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MalformedPart;

impl Snapshot {
    /// Evaluates flag `key` for `ctx`.
    ///
    /// Inlined into its callers: the key lookup and a constant flag's outcome (the most common
    /// evaluations) are a few dozen instructions in place; the evaluation of a flag that
    /// depends on the context is one call away.
    #[inline(always)]
    pub fn evaluate<'s>(&'s self, key: &str, ctx: &Context) -> Detail<'s> {
        match self.find(key) {
            Some((i, flag)) => self.evaluate_found(i, flag, ctx),
            None => Detail::error(None, ErrorKind::FlagNotFound),
        }
    }

    /// Evaluates the flag at `position` (not found: `None`) for `ctx`.
    #[inline(always)]
    pub(crate) fn evaluate_at<'s>(&'s self, position: Option<u32>, ctx: &Context) -> Detail<'s> {
        let Some(i) = position else {
            return Detail::error(None, ErrorKind::FlagNotFound);
        };
        let Some(flag) = self.flags.get(i as usize) else {
            return Detail::error(None, ErrorKind::FlagNotFound);
        };
        self.evaluate_found(i, flag, ctx)
    }

    /// Evaluates `flag`, at position `i`, for `ctx`.
    #[inline(always)]
    fn evaluate_found<'s>(&'s self, i: u32, flag: &'s CompiledFlag, ctx: &Context) -> Detail<'s> {
        let outcome = match flag.constant {
            Some(outcome) => outcome,
            // A flag that is only its fallthrough rollout (a percentage rollout, nothing
            // else): served here, without the frame of the whole evaluation.
            None if flag.enabled
                && !flag.broken
                && flag.extras.is_none()
                && flag.rules.is_empty() =>
            {
                self.serve(&flag.fallthrough, ctx, &mut (), |experiment| {
                    ReasonCode::Fallthrough { experiment }
                })
                .unwrap_or(Outcome::error(ErrorKind::MalformedFlag))
            }
            None => match self.eval_flag(i, flag, ctx, None, &mut ()) {
                Ok(outcome) => outcome,
                Err(MalformedPart) => Outcome::error(ErrorKind::MalformedFlag),
            },
        };
        Detail::new(Some(flag), outcome)
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
        match self.eval_flag(i, flag, ctx, None, tracer) {
            Ok(outcome) => Detail::new(Some(flag), outcome),
            Err(MalformedPart) => Detail::error(Some(flag), ErrorKind::MalformedFlag),
        }
    }

    /// Evaluates flag `fi` inside the chain of flags that depend on it. Never inlined: it is
    /// the one call of [`Snapshot::evaluate`] for a flag that depends on the context.
    #[inline(never)]
    fn eval_flag<T: Tracer>(
        &self,
        fi: u32,
        f: &CompiledFlag,
        ctx: &Context,
        dependents: Option<&Visiting<'_>>,
        tracer: &mut T,
    ) -> Result<Outcome, MalformedPart> {
        if f.broken {
            return Err(MalformedPart);
        }
        if !f.enabled {
            tracer.step(|| Step::Off);
            return serve_fixed(&f.off, ReasonCode::Off);
        }
        if !f.prerequisites().is_empty() {
            if let Some(index) = self.failed_prerequisite(fi, f, ctx, dependents, tracer)? {
                return serve_fixed(&f.off, ReasonCode::Prerequisite { index });
            }
        }
        if let Some(outcome) = target_match(f, ctx, tracer)? {
            return Ok(outcome);
        }
        for (ri, r) in f.rules.iter().enumerate() {
            if self.rule_matches(f, ri, r, ctx, tracer)? {
                tracer.step(|| Step::Rule { rule: ri });
                return self.serve(&r.serve, ctx, tracer, |experiment| ReasonCode::Rule {
                    index: ri as u16,
                    experiment,
                });
            }
        }
        tracer.step(|| Step::Fallthrough);
        self.serve(&f.fallthrough, ctx, tracer, |experiment| {
            ReasonCode::Fallthrough { experiment }
        })
    }

    /// The index of the first prerequisite of flag `fi` that does not serve the variation it
    /// requires, if any. A cycle, too deep a chain or a prerequisite in error is malformed.
    fn failed_prerequisite<T: Tracer>(
        &self,
        fi: u32,
        f: &CompiledFlag,
        ctx: &Context,
        dependents: Option<&Visiting<'_>>,
        tracer: &mut T,
    ) -> Result<Option<u16>, MalformedPart> {
        if chain::refuses(dependents, fi) {
            return Err(MalformedPart);
        }
        let chain = Visiting::enter(fi, dependents);
        for (pi, p) in f.prerequisites().iter().enumerate() {
            let passed = match p.flag {
                None => false,
                Some(pf) => {
                    if chain::on_chain(Some(&chain), pf) {
                        return Err(MalformedPart);
                    }
                    let pflag = &self.flags[pf as usize];
                    let outcome = match pflag.constant {
                        Some(outcome) => outcome,
                        None => self.eval_flag(pf, pflag, ctx, Some(&chain), &mut ())?,
                    };
                    if outcome.is_error() {
                        return Err(MalformedPart);
                    }
                    pflag.enabled && serves_variation(pflag, outcome, p.variation)
                }
            };
            tracer.step(|| Step::Prerequisite {
                key: p.key.to_string(),
                passed,
            });
            if !passed {
                return Ok(Some(pi as u16));
            }
        }
        Ok(None)
    }

    /// Whether rule `ri` of `f` matches: every clause, then the rule's percentage.
    #[inline(always)]
    fn rule_matches<T: Tracer>(
        &self,
        f: &CompiledFlag,
        ri: usize,
        r: &Rule,
        ctx: &Context,
        tracer: &mut T,
    ) -> Result<bool, MalformedPart> {
        for (ci, c) in r.clauses.iter().enumerate() {
            let matched = self.match_clause(c, ctx, None)?;
            tracer.step(|| Step::Clause {
                rule: ri,
                clause: ci,
                matched,
            });
            if !matched {
                return Ok(false);
            }
        }
        let Some(threshold) = r.percentage else {
            return Ok(true);
        };
        let bucket = ctx
            .part(USER_KIND)
            .or(ctx.parts.first())
            .map(|p| bucket_value(f.prefix(), &p.key))
            .unwrap_or(0.0);
        let inside = bucket < threshold;
        tracer.step(|| Step::Percentage {
            rule: ri,
            bucket,
            inside,
        });
        Ok(inside)
    }

    /// What `s` serves for `ctx`, with the reason `why` makes of whether it was an experiment.
    #[inline(always)]
    fn serve<T: Tracer>(
        &self,
        s: &Serve,
        ctx: &Context,
        tracer: &mut T,
        why: impl FnOnce(bool) -> ReasonCode,
    ) -> Result<Outcome, MalformedPart> {
        match s {
            Serve::Rollout(r) => {
                let (v, experiment) = rollout::rollout(r, ctx, tracer)?;
                Ok(Outcome::new(served(v)?, why(experiment)))
            }
            other => serve_fixed(other, why(false)),
        }
    }
}

/// The individual target that lists the context's key, if any, and what it serves.
#[inline(always)]
fn target_match<T: Tracer>(
    f: &CompiledFlag,
    ctx: &Context,
    tracer: &mut T,
) -> Result<Option<Outcome>, MalformedPart> {
    for t in f.targets() {
        if let Some(part) = ctx.part_of(&t.kind) {
            if t.keys.contains(part.key_str()) {
                tracer.step(|| Step::Target {
                    kind: t.kind.to_string(),
                });
                let v = t.variation.ok_or(MalformedPart)?;
                return Ok(Some(Outcome::new(served(v)?, ReasonCode::Target)));
            }
        }
    }
    Ok(None)
}

/// Whether `outcome` of prerequisite flag `pflag` is variation `required`.
#[inline]
fn serves_variation(pflag: &CompiledFlag, outcome: Outcome, required: i64) -> bool {
    match outcome.served() {
        Served::Variation(v) => i64::from(v) == required,
        Served::FlagDefault => pflag.default_index.map(|v| v as i64) == Some(required),
        Served::Nothing => false,
    }
}

/// A variation served (compiling keeps indexes within `u16`; anything else is malformed).
#[inline(always)]
fn served(v: u32) -> Result<Served, MalformedPart> {
    u16::try_from(v)
        .map(Served::Variation)
        .map_err(|_| MalformedPart)
}

/// What a fixed serve (not a rollout) gives.
#[inline(always)]
fn serve_fixed(s: &Serve, reason: ReasonCode) -> Result<Outcome, MalformedPart> {
    match s {
        Serve::Variation(v) => Ok(Outcome::new(served(*v)?, reason)),
        Serve::Default => Ok(Outcome::new(Served::FlagDefault, reason)),
        Serve::Malformed | Serve::Rollout(_) => Err(MalformedPart),
    }
}
