//! [`Detail`]: the borrowed, allocation-free result of an evaluation, which reads the value,
//! variation and reason out of the compiled flag on demand.

use crate::outcome::{ErrorKind, Evaluation, Reason, ReasonKind, ValueKind};
use crate::packed::{Outcome, ReasonCode, Served};
use crate::program::CompiledFlag;
use serde_json::Value;

/// The borrowed, allocation-free result of an evaluation.
#[derive(Debug, Clone, Copy)]
pub struct Detail<'s> {
    flag: Option<&'s CompiledFlag>,
    /// What was served and why (see [`crate::packed`]).
    outcome: Outcome,
}

impl<'s> Detail<'s> {
    /// The result `outcome` for `flag`.
    #[inline(always)]
    pub(crate) fn new(flag: Option<&'s CompiledFlag>, outcome: Outcome) -> Self {
        Detail { flag, outcome }
    }

    #[inline]
    pub(crate) fn error(flag: Option<&'s CompiledFlag>, kind: ErrorKind) -> Self {
        Detail::new(flag, Outcome::error(kind))
    }

    /// What was served.
    #[inline(always)]
    fn served(&self) -> Served {
        self.outcome.served()
    }

    /// Why.
    #[inline(always)]
    fn reason_code(&self) -> ReasonCode {
        self.outcome.reason()
    }

    /// The flag evaluated, if it exists.
    pub fn flag(&self) -> Option<&'s CompiledFlag> {
        self.flag
    }

    /// The value served, or `None` when the caller's default applies.
    #[inline]
    pub fn value(&self) -> Option<&'s Value> {
        let f = self.flag?;
        match f.values.get(self.outcome.variation_slot()) {
            Some(v) => Some(v),
            None => match self.served() {
                Served::FlagDefault => f.default.as_deref(),
                Served::Variation(_) | Served::Nothing => None,
            },
        }
    }

    /// The index of the variation served.
    #[inline]
    pub fn variation_index(&self) -> Option<usize> {
        match self.served() {
            Served::Variation(i) => Some(i as usize),
            Served::FlagDefault => self.flag.and_then(|f| f.default_index).map(|i| i as usize),
            Served::Nothing => None,
        }
    }

    /// The name of the variation served, when it has one.
    pub fn variation_name(&self) -> Option<&'s str> {
        let f = self.flag?;
        f.variation_name(self.variation_index()?)
    }

    /// The kind of reason.
    #[inline]
    pub fn reason_kind(&self) -> ReasonKind {
        match self.reason_code() {
            ReasonCode::Off => ReasonKind::Off,
            ReasonCode::Target => ReasonKind::TargetMatch,
            ReasonCode::Rule { .. } => ReasonKind::RuleMatch,
            ReasonCode::Fallthrough { .. } => ReasonKind::Fallthrough,
            ReasonCode::Prerequisite { .. } => ReasonKind::PrerequisiteFailed,
            ReasonCode::Error(_) => ReasonKind::Error,
        }
    }

    /// The error kind, when evaluation failed.
    #[inline]
    pub fn error_kind(&self) -> Option<ErrorKind> {
        match self.reason_code() {
            ReasonCode::Error(k) => Some(k),
            _ => None,
        }
    }

    /// Whether the context is part of an experiment.
    #[inline]
    pub fn in_experiment(&self) -> bool {
        matches!(
            self.reason_code(),
            ReasonCode::Rule {
                experiment: true,
                ..
            } | ReasonCode::Fallthrough { experiment: true }
        )
    }

    /// The index of the rule that matched.
    #[inline]
    pub fn rule_index(&self) -> Option<usize> {
        match self.reason_code() {
            ReasonCode::Rule { index, .. } => Some(index as usize),
            _ => None,
        }
    }

    /// The id of the rule that matched.
    pub fn rule_id(&self) -> Option<&'s str> {
        let f = self.flag?;
        f.rule_id(self.rule_index()?)
    }

    /// The key of the prerequisite that failed.
    pub fn prerequisite_key(&self) -> Option<&'s str> {
        match self.reason_code() {
            ReasonCode::Prerequisite { index } => self
                .flag
                .and_then(|f| f.prerequisites().get(index as usize))
                .map(|p| &*p.key),
            _ => None,
        }
    }

    /// The owned reason.
    pub fn reason(&self) -> Reason {
        match self.reason_code() {
            ReasonCode::Off => Reason::Off,
            ReasonCode::Target => Reason::TargetMatch,
            ReasonCode::Rule { index, experiment } => Reason::RuleMatch {
                rule_index: index as usize,
                rule_id: self.rule_id().map(str::to_owned),
                in_experiment: experiment,
            },
            ReasonCode::Fallthrough { experiment } => Reason::Fallthrough {
                in_experiment: experiment,
            },
            ReasonCode::Prerequisite { .. } => Reason::PrerequisiteFailed {
                prerequisite_key: self.prerequisite_key().unwrap_or_default().to_owned(),
            },
            ReasonCode::Error(error_kind) => Reason::Error { error_kind },
        }
    }

    /// Checks the served value against the type the caller asked for: a value of another type
    /// becomes `ERROR`/`WRONG_TYPE` (and the caller's default is served).
    #[inline]
    pub fn check_type(self, kind: ValueKind) -> Self {
        match self.value() {
            Some(v) if !kind.admits(v) => self.wrong_type(),
            _ => self,
        }
    }

    /// Marks the result a type mismatch: the caller's default will be served.
    pub fn wrong_type(self) -> Self {
        Detail::error(self.flag, ErrorKind::WrongType)
    }

    /// The owned evaluation, with `default` as the value when nothing was served.
    pub fn to_evaluation(&self, key: &str, default: Value) -> Evaluation {
        let value = self.value().cloned();
        let served = value.is_some();
        Evaluation {
            key: key.to_owned(),
            variation_index: self.variation_index().filter(|_| served),
            variation_name: self.variation_name().filter(|_| served).map(str::to_owned),
            value: value.unwrap_or(default),
            reason: self.reason(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_fits_two_registers() {
        // A larger result goes through memory, and reading it back whole stalls the caller.
        assert_eq!(std::mem::size_of::<Detail<'_>>(), 16);
    }
}
