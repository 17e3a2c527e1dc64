//! # feature-testdata
//!
//! Third-party conformance data the toolkit is tested against, kept in one place, with the
//! harness that runs it. Every crate that checks itself against the same data uses this crate
//! as a dev-dependency instead of carrying its own copy and its own loader.
//!
//! | module | data | used by |
//! |---|---|---|
//! | [`alloc`] | a global allocator counting each thread's allocations (not data: the one copy the allocation tests share) | `feature-core`, `feature` |
//! | [`launchdarkly`] | LaunchDarkly's server-side evaluation contract data, 728 evaluations (`data/launchdarkly`, see its NOTICE) | `feature-core` (the engine), `feature-launchdarkly` (through the provider), `featurectl` (through the YAML import) |
//!
//! The data is read from this crate's directory when a test runs. Missing or unreadable data
//! is a test failure, never a skip.
//!
//! This crate depends on serde alone: the crates tested with it must not be its dependencies
//! (a dev-dependency cycle would build a second, incompatible copy of them).
#![allow(clippy::panic)] // test data: missing or malformed data must fail the test, never skip it
#![deny(missing_docs)]

pub mod alloc;
pub mod launchdarkly;
