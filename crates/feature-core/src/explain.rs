//! Explanations: every decision an evaluation took, for `featurectl eval --explain` and debugging.
//!
//! The evaluator reports to a [`Tracer`]. The unit type `()` is the tracer of ordinary
//! evaluations: it records nothing and compiles away. [`Explanation`] records every [`Step`].
//!
//! ```
//! use feature_core::{compile, parse_document, Context, Explanation, Format};
//! let doc = parse_document("flags:\n  f:\n    rules:\n      - clauses: [{attribute: plan, operator: eq, values: [pro]}]\n        variation: 1\n", Format::Yaml).unwrap();
//! let snap = compile(doc.document);
//! let mut why = Explanation::default();
//! let d = snap.evaluate_traced("f", &Context::new("u").with_attribute("plan", "pro"), &mut why);
//! assert_eq!(d.value(), Some(&serde_json::json!(true)));
//! assert!(why.to_string().contains("rule 0 clause 0: matched"));
//! ```

use std::fmt;

/// One decision of an evaluation.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Step {
    /// The flag is off.
    Off,
    /// A prerequisite was checked.
    Prerequisite {
        /// Its key.
        key: String,
        /// Whether it served the required variation.
        passed: bool,
    },
    /// The context's key of this kind is individually targeted.
    Target {
        /// The context kind.
        kind: String,
    },
    /// A clause was evaluated.
    Clause {
        /// Rule index.
        rule: usize,
        /// Clause index within the rule.
        clause: usize,
        /// Whether it held.
        matched: bool,
    },
    /// A rule's percentage was checked.
    Percentage {
        /// Rule index.
        rule: usize,
        /// The context's bucket in `[0, 1]`.
        bucket: f32,
        /// Whether the bucket is inside the percentage.
        inside: bool,
    },
    /// A rule matched.
    Rule {
        /// Rule index.
        rule: usize,
    },
    /// No rule matched.
    Fallthrough,
    /// A rollout placed the context.
    Bucket {
        /// The context's bucket in `[0, 1]`.
        bucket: f32,
        /// The variation it landed in.
        variation: usize,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Off => write!(f, "flag is off"),
            Step::Prerequisite { key, passed } => write!(
                f,
                "prerequisite {key}: {}",
                if *passed { "passed" } else { "failed" }
            ),
            Step::Target { kind } => write!(f, "{kind} key is individually targeted"),
            Step::Clause {
                rule,
                clause,
                matched,
            } => write!(
                f,
                "rule {rule} clause {clause}: {}",
                if *matched { "matched" } else { "did not match" }
            ),
            Step::Percentage {
                rule,
                bucket,
                inside,
            } => write!(
                f,
                "rule {rule} percentage: bucket {bucket:.6} is {}",
                if *inside { "inside" } else { "outside" }
            ),
            Step::Rule { rule } => write!(f, "rule {rule} matched"),
            Step::Fallthrough => write!(f, "no rule matched: fallthrough"),
            Step::Bucket { bucket, variation } => {
                write!(f, "rollout bucket {bucket:.6} -> variation {variation}")
            }
        }
    }
}

/// Receives the decisions of an evaluation.
pub trait Tracer {
    /// Records a step; `step` is only called when the tracer keeps steps.
    fn step(&mut self, step: impl FnOnce() -> Step);
}

impl Tracer for () {
    #[inline(always)]
    fn step(&mut self, _: impl FnOnce() -> Step) {}
}

/// A tracer that keeps every step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Explanation {
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl Tracer for Explanation {
    fn step(&mut self, step: impl FnOnce() -> Step) {
        self.steps.push(step());
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.steps.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}
