//! Matching one clause against a context: the attribute's value(s) against the operation.

use super::chain::Visiting;
use super::MalformedPart;
use crate::attr::AttrPath;
use crate::context::Context;
use crate::ops::{
    bytes_eq, contains, parse_date, parse_version, release_triple, QuickVersion, VersionOperand,
};
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
        let attr = c.subject.attr().ok_or(MalformedPart)?;
        if let AttrPath::Kind = attr {
            let any = ctx.parts.iter().any(|p| match_str(&c.op, &p.kind));
            return Ok(any != c.negate);
        }
        let Some(part) = ctx.part_of(c.subject.kind()) else {
            return Ok(false);
        };
        let Some(value) = attr.get(part) else {
            return Ok(false);
        };
        let any = match value {
            // The common case first: a string against anything but a date.
            Value::String(s) if !matches!(c.op, Op::Date(..)) => match_str(&c.op, s),
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

/// A version comparison (`semVerEqual`, `semVerLessThan`, `semVerGreaterThan`). A plain
/// release (`2.5.1`, the common case) is read into three numbers and compared against the
/// operands' numbers; anything else takes the general parser, out of line.
#[inline(always)]
fn match_version(cmp: Cmp, xs: &[VersionOperand], s: &str) -> bool {
    match release_triple(s.as_bytes()) {
        Some(t) => {
            // A plain loop: the closure of `any_of` is left out of line here.
            for b in xs {
                if cmp.holds(b.release_cmp(t)) {
                    return true;
                }
            }
            false
        }
        None => match_full_version(cmp, xs, s),
    }
}

/// [`match_version`] through [`parse_version`] and [`semver::Version`] precedence.
#[inline(never)]
fn match_full_version(cmp: Cmp, xs: &[VersionOperand], s: &str) -> bool {
    parse_version(s).is_some_and(|a| any_of(xs, |b| cmp.holds(a.cmp_precedence(b.version()))))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path of [`match_version`] answers as [`parse_version`] and
    /// [`semver::Version::cmp_precedence`] on a grid of version strings: leading zeros, `v`
    /// prefixes, one to four parts, pre-releases, build metadata, numbers at and past `u64`.
    #[test]
    fn version_comparisons_agree_with_the_general_parser() {
        let numbers = [
            "0",
            "1",
            "2",
            "9",
            "10",
            "00",
            "01",
            "007",
            "1234567890123456789",
            "9999999999999999999",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
            "",
            "x",
        ];
        let prefixes = ["", "v", " "];
        let suffixes = [
            "", "-0", "-alpha", "-alpha.1", "-01", "-", "+b", "+001", "+", "-rc.1+b", " ", ".",
        ];
        let operands: Vec<VersionOperand> = [
            "0.0.0",
            "1.0.0",
            "2.0.0",
            "2.0.0-rc.1",
            "1.2.3",
            "1.2.3-alpha",
            "10.0.0",
            "0.1.0+build",
            "9999999999999999999.0.0",
            "18446744073709551615.18446744073709551615.18446744073709551615",
            "1.2.3-0",
        ]
        .iter()
        .map(|s| VersionOperand::new(parse_version(s).unwrap()))
        .collect();
        let cmps = [Cmp::Lt, Cmp::Lte, Cmp::Gt, Cmp::Gte, Cmp::Eq];
        let mut strings = Vec::new();
        for a in numbers {
            strings.push(a.to_owned());
            for b in numbers {
                strings.push(format!("{a}.{b}"));
                for c in ["0", "1", "3", "01", "18446744073709551616", ""] {
                    strings.push(format!("{a}.{b}.{c}"));
                    strings.push(format!("{a}.{b}.{c}.4"));
                }
            }
        }
        let mut checked = 0;
        let mut fast = 0;
        for core in &strings {
            for p in prefixes {
                for x in suffixes {
                    let s = format!("{p}{core}{x}");
                    let general = parse_version(&s);
                    if release_triple(s.as_bytes()).is_some() {
                        fast += 1;
                    }
                    for o in &operands {
                        for cmp in cmps {
                            let expected = general
                                .as_ref()
                                .is_some_and(|a| cmp.holds(a.cmp_precedence(o.version())));
                            let got = match_version(cmp, std::slice::from_ref(o), &s);
                            assert_eq!(got, expected, "{s:?} {cmp:?} {}", o.version());
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(fast > 150, "only {fast} strings took the fast path");
        assert!(checked > 100_000);
    }
}
