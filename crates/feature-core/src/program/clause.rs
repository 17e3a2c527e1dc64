//! Compiled clauses: an attribute, an operation with operands parsed ahead of time, negation.

use super::sets::EqSet;
use crate::attr::AttrPath;
use crate::ops::{Pattern, VersionOperand, VersionRule};

/// The context kind a clause, rollout or target reads: `user`, as most name (or leave out),
/// without a string of its own, or another kind. It reads as the kind's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    User,
    Other(Box<str>),
}

impl Kind {
    /// The kind named `name`, `user` when none is.
    pub(crate) fn of(name: Option<&str>) -> Kind {
        match name {
            None | Some(crate::context::USER_KIND) => Kind::User,
            Some(other) => Kind::Other(other.into()),
        }
    }
}

impl std::ops::Deref for Kind {
    type Target = str;

    #[inline(always)]
    fn deref(&self) -> &str {
        match self {
            Kind::User => crate::context::USER_KIND,
            Kind::Other(name) => name,
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
    StartsWith(Box<[Box<str>]>),
    EndsWith(Box<[Box<str>]>),
    Contains(Box<[Box<str>]>),
    Matches(Box<[Pattern]>),
    Number(Cmp, Box<[f64]>),
    Date(Cmp, Box<[f64]>),
    Version(Cmp, Box<[VersionOperand]>),
    VersionRule(Box<[VersionRule]>),
    Segment(Vec<Option<u32>>),
    Never,
}

/// A compiled clause.
#[derive(Debug, Clone)]
pub(crate) struct Clause {
    pub(crate) subject: Subject,
    pub(crate) op: Op,
    pub(crate) negate: bool,
}

/// What a clause reads: an attribute of the `user` context, held inline (the common case),
/// or of another context kind, boxed with its kind. A `None` attribute is an invalid
/// reference: reaching the clause is `MALFORMED_FLAG`.
#[derive(Debug, Clone)]
pub(crate) enum Subject {
    User(Option<AttrPath>),
    Other(Box<(Kind, Option<AttrPath>)>),
}

/// The `user` kind, for [`Subject::kind`].
static USER: Kind = Kind::User;

impl Subject {
    /// The target of kind `kind` and attribute `attr`.
    pub(crate) fn new(kind: Kind, attr: Option<AttrPath>) -> Subject {
        match kind {
            Kind::User => Subject::User(attr),
            other => Subject::Other(Box::new((other, attr))),
        }
    }

    /// The context kind read.
    #[inline(always)]
    pub(crate) fn kind(&self) -> &Kind {
        match self {
            Subject::User(_) => &USER,
            Subject::Other(b) => &b.0,
        }
    }

    /// The attribute read; `None` when its reference is invalid.
    #[inline(always)]
    pub(crate) fn attr(&self) -> Option<&AttrPath> {
        match self {
            Subject::User(a) => a.as_ref(),
            Subject::Other(b) => b.1.as_ref(),
        }
    }
}
