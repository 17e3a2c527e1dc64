//! # feature-core
//!
//! The pure heart of the `feature` toolkit: the flag model, the evaluation context, the
//! compiler that turns flag documents into immutable snapshots, and the evaluator. No I/O, no
//! async runtime, no global state; evaluation allocates nothing for booleans and numbers.
//!
//! Most applications use the `feature` crate, which adds the client, providers and
//! integrations. Use this crate directly to embed the engine or to test flag files.
//!
//! | module | what it holds |
//! |---|---|
//! | [`model`] | the flag document (`Flag`, `Rule`, `Clause`, `Operator`, `Rollout`, `Segment`, ...) |
//! | [`Context`] | who a flag is evaluated for: user or other kinds, multi-kind, attributes |
//! | [`parse_document`], [`compile`] | text → document → compiled [`Snapshot`], with located [`Diagnostic`]s |
//! | [`Snapshot::evaluate`] | evaluation → [`Detail`] (borrowed) → [`Evaluation`] (owned) |
//! | [`bucket`] | LaunchDarkly-compatible consistent bucketing |
//! | [`explain`] | a trace of every decision an evaluation took |
//! | [`launchdarkly`] | import of LaunchDarkly flag and segment JSON |
//! | [`provider`], [`metrics`] | the contracts backends and metrics implement (no I/O here) |
//!
//! ## Quick start
//!
//! ```
//! use feature_core::{compile, parse_document, Context, Format, ReasonKind};
//!
//! let yaml = r#"
//! flags:
//!   new-checkout:
//!     type: bool
//!     default: false
//!     enabled: true
//!     rules:
//!       - rollout:
//!           bucketBy: key
//!           variations:
//!             - {variation: 0, weight: 80000}
//!             - {variation: 1, weight: 20000}
//!     variants:
//!       - {name: off, value: false}
//!       - {name: on, value: true}
//! "#;
//! let snapshot = compile(parse_document(yaml, Format::Yaml)?.document);
//! let user = Context::new("user-123");
//! let detail = snapshot.evaluate("new-checkout", &user);
//! assert_eq!(detail.reason_kind(), ReasonKind::RuleMatch);
//! let on = detail.value().and_then(|v| v.as_bool()).unwrap_or(false);
//! // The same user always gets the same answer.
//! assert_eq!(snapshot.evaluate("new-checkout", &user).value().and_then(|v| v.as_bool()), Some(on));
//! # Ok::<(), feature_core::ParseError>(())
//! ```
#![deny(missing_docs)]

// Modules depend downwards only: vocabulary (model, context, diagnostics, outcomes) first,
// then the compiled program, then compiling and evaluating it.
mod attr;
pub mod bucket;
mod compile;
mod context;
mod detail;
mod diagnostic;
mod evaluate;
pub mod explain;
mod flag_key;
pub mod key_file;
pub mod launchdarkly;
mod locate;
mod map;
pub mod metrics;
pub mod model;
mod ops;
mod outcome;
mod packed;
mod program;
pub mod provider;
mod source;

pub use attr::escape_literal;
pub use compile::{compile, compile_with, recompile, Change, Recompiled};
pub use context::{Context, ContextError, USER_KIND};
pub use detail::Detail;
pub use diagnostic::{Diagnostic, PathSeg, Severity};
pub use explain::{Explanation, Step, Tracer};
pub use flag_key::FlagKey;
pub use locate::Locator;
pub use model::{Flag, FlagDocument, FlagType, Operator};
pub use outcome::{ErrorKind, Evaluation, Reason, ReasonKind, ValueKind};
pub use program::{CompiledFlag, Snapshot};
pub use source::{parse_document, Format, ParseError, Parsed};
