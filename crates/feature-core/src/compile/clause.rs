//! Compiling clauses: operands parsed once (patterns, versions, dates, sets).

use super::{first_line, kind_of, Compiler, Seg};
use crate::attr::AttrPath;
use crate::diagnostic::Severity;
use crate::model::{self, Operator};
use crate::ops::{parse_date, parse_version, Pattern, VersionOperand, VersionRule};
use crate::program::{Clause, Cmp, EqSet, Op, Subject};
use serde_json::Value;

impl Compiler<'_> {
    pub(super) fn clauses(&mut self, clauses: &[model::Clause]) -> Box<[Clause]> {
        (clauses.iter().enumerate())
            .map(|(i, clause)| self.at(&[Seg::key("clauses"), Seg::Index(i)], |c| c.clause(clause)))
            .collect()
    }

    fn clause(&mut self, c: &model::Clause) -> Clause {
        let attr = if c.operator == Operator::SegmentMatch {
            Some(AttrPath::Key)
        } else {
            match AttrPath::parse(&c.attribute) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.lazy(&[Seg::key("attribute")], e.to_string());
                    None
                }
            }
        };
        let mut negate = c.negate;
        let vals = &c.values;
        let strings = || -> Box<[Box<str>]> {
            vals.iter()
                .filter_map(|v| v.as_str().map(Into::into))
                .collect()
        };
        let numbers = || -> Box<[f64]> { vals.iter().filter_map(Value::as_f64).collect() };
        let op = match &c.operator {
            Operator::Eq | Operator::In => Op::In(EqSet::new(vals)),
            Operator::Neq | Operator::NotIn => {
                negate = !negate;
                Op::In(EqSet::new(vals))
            }
            Operator::StartsWith => Op::StartsWith(strings()),
            Operator::EndsWith => Op::EndsWith(strings()),
            Operator::Contains => Op::Contains(strings()),
            Operator::Matches => {
                let mut res = Vec::new();
                for (i, v) in vals.iter().enumerate() {
                    let Some(s) = v.as_str() else { continue };
                    match Pattern::new(s) {
                        Ok(r) => res.push(r),
                        Err(e) => self.report(
                            Severity::Error,
                            &[Seg::key("values"), Seg::Index(i)],
                            format!(
                                "invalid regular expression {s:?}: {}",
                                first_line(&e.to_string())
                            ),
                        ),
                    }
                }
                Op::Matches(res.into())
            }
            Operator::Gt => Op::Number(Cmp::Gt, numbers()),
            Operator::Gte => Op::Number(Cmp::Gte, numbers()),
            Operator::Lt => Op::Number(Cmp::Lt, numbers()),
            Operator::Lte => Op::Number(Cmp::Lte, numbers()),
            Operator::Before => Op::Date(Cmp::Lt, vals.iter().filter_map(parse_date).collect()),
            Operator::After => Op::Date(Cmp::Gt, vals.iter().filter_map(parse_date).collect()),
            Operator::SemVerEqual => Op::Version(Cmp::Eq, self.versions(vals)),
            Operator::SemVerLessThan => Op::Version(Cmp::Lt, self.versions(vals)),
            Operator::SemVerGreaterThan => Op::Version(Cmp::Gt, self.versions(vals)),
            Operator::SemVer => {
                let mut rules = Vec::new();
                for (i, v) in vals.iter().enumerate() {
                    let parsed = match v.as_str() {
                        Some(s) => VersionRule::parse(s),
                        None => Err(format!("{v} is not a version requirement string")),
                    };
                    match parsed {
                        Ok(r) => rules.push(r),
                        Err(m) => {
                            self.report(Severity::Error, &[Seg::key("values"), Seg::Index(i)], m)
                        }
                    }
                }
                Op::VersionRule(rules.into())
            }
            Operator::SegmentMatch => Op::Segment(
                vals.iter()
                    .map(|v| v.as_str().and_then(|s| self.segment_position(s)))
                    .collect(),
            ),
            Operator::Unknown(name) => {
                self.report(
                    Severity::Warning,
                    &[Seg::key("operator")],
                    format!("unknown operator {name:?}: the clause never matches"),
                );
                Op::Never
            }
        };
        Clause {
            subject: Subject::new(kind_of(&c.context_kind), attr),
            op,
            negate,
        }
    }

    fn versions(&mut self, vals: &[Value]) -> Box<[VersionOperand]> {
        vals.iter()
            .filter_map(|v| v.as_str().and_then(parse_version))
            .map(VersionOperand::new)
            .collect()
    }
}
