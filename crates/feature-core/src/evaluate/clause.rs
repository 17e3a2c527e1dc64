//! Matching one clause against a context: the attribute's value(s) against the operation.

use super::chain::Visiting;
use super::MalformedPart;
use crate::attr::AttrPath;
use crate::context::Context;
use crate::ops::{bytes_eq, contains, parse_date, QuickVersion};
use crate::program::{Clause, Cmp, Op, Snapshot};
use serde_json::Value;

impl Snapshot {
    #[inline]
    pub(super) fn match_clause(
        &self,
        c: &Clause,
        ctx: &Context,
        segments: Option<&Visiting<'_>>,
    ) -> Result<bool, MalformedPart> {
        if let Op::Segment(segs) = &c.op {
            for s in segs.iter().flatten() {
                if self.in_segment(*s, ctx, segments)? {
                    return Ok(!c.negate);
                }
            }
            return Ok(c.negate);
        }
        let attr = c.attr.as_ref().ok_or(MalformedPart)?;
        if let AttrPath::Kind = attr {
            let any = ctx.parts.iter().any(|p| match_str(&c.op, &p.kind));
            return Ok(any != c.negate);
        }
        let Some(part) = ctx.part(&c.kind) else {
            return Ok(false);
        };
        let Some(value) = attr.get(part) else {
            return Ok(false);
        };
        let any = match value {
            Value::Null => return Ok(false),
            Value::Array(items) => items.iter().any(|v| match_value(&c.op, v)),
            v => match_value(&c.op, v),
        };
        Ok(any != c.negate)
    }
}

/// A string operand against an operation (used for strings and for context kinds).
#[inline(always)]
fn match_str(op: &Op, s: &str) -> bool {
    match op {
        Op::In(set) => set.strings.contains(s),
        Op::StartsWith(xs) => any_of(xs, |x| {
            s.len() >= x.len() && bytes_eq(&s.as_bytes()[..x.len()], x.as_bytes())
        }),
        Op::EndsWith(xs) => any_of(xs, |x| {
            s.len() >= x.len() && bytes_eq(&s.as_bytes()[s.len() - x.len()..], x.as_bytes())
        }),
        Op::Contains(xs) => any_of(xs, |x| contains(s, x)),
        Op::Matches(rs) => any_of(rs, |r| r.is_match(s)),
        Op::Version(cmp, xs) => match_version(*cmp, xs, s),
        Op::VersionRule(_) | Op::Date(..) => match_parsed_str(op, s),
        Op::Number(..) | Op::Segment(_) | Op::Never => false,
    }
}

/// A version comparison (`semVerEqual`, `semVerLessThan`, `semVerGreaterThan`).
#[inline]
fn match_version(cmp: Cmp, xs: &[semver::Version], s: &str) -> bool {
    QuickVersion::parse(s).is_some_and(|a| any_of(xs, |b| cmp.holds(a.cmp_precedence(b))))
}

/// The other operations that parse their string operand (requirements, dates), out of line so
/// that the plain string comparisons above stay small.
#[inline(never)]
fn match_parsed_str(op: &Op, s: &str) -> bool {
    match op {
        Op::Version(cmp, xs) => match_version(*cmp, xs, s),
        Op::VersionRule(rules) => {
            QuickVersion::parse(s).is_some_and(|a| any_of(rules, |r| r.matches(&a)))
        }
        Op::Date(..) => match_value(op, &Value::String(s.to_owned())),
        _ => match_str(op, s),
    }
}

#[inline(always)]
fn match_value(op: &Op, v: &Value) -> bool {
    if let Value::String(s) = v {
        if !matches!(op, Op::Date(..)) {
            return match_str(op, s);
        }
    }
    match op {
        Op::In(set) => set.contains(v),
        Op::Number(cmp, xs) => match v {
            Value::Number(n) => n.as_f64().is_some_and(|a| {
                xs.iter()
                    .any(|b| a.partial_cmp(b).is_some_and(|o| cmp.holds(o)))
            }),
            _ => false,
        },
        Op::Date(cmp, xs) => parse_date(v).is_some_and(|a| {
            xs.iter()
                .any(|b| a.partial_cmp(b).is_some_and(|o| cmp.holds(o)))
        }),
        Op::StartsWith(_)
        | Op::EndsWith(_)
        | Op::Contains(_)
        | Op::Matches(_)
        | Op::Version(..)
        | Op::VersionRule(_)
        | Op::Segment(_)
        | Op::Never => false,
    }
}

/// `xs.iter().any(f)` as a plain loop: the compiler leaves `Iterator::any` out of line, a call
/// per clause.
#[inline(always)]
fn any_of<T>(xs: &[T], mut f: impl FnMut(&T) -> bool) -> bool {
    for x in xs {
        if f(x) {
            return true;
        }
    }
    false
}
