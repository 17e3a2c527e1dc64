//! Compiled segments: key lists as sets, rules with their bucketing.

use super::clause::{Clause, Kind};
use super::sets::StrSet;
use crate::attr::AttrPath;

/// A compiled segment rule.
#[derive(Debug, Clone)]
pub(crate) struct SegmentRule {
    pub(crate) clauses: Box<[Clause]>,
    pub(crate) weight: Option<i64>,
    pub(crate) bucket_by: Option<AttrPath>,
    pub(crate) kind: Kind,
}

/// A compiled segment.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub(crate) included: StrSet,
    pub(crate) excluded: StrSet,
    pub(crate) included_contexts: Box<[(Box<str>, StrSet)]>,
    pub(crate) excluded_contexts: Box<[(Box<str>, StrSet)]>,
    pub(crate) rules: Box<[SegmentRule]>,
    pub(crate) prefix: Box<[u8]>,
}
