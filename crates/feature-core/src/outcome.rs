//! The outcome of an evaluation as callers see it: the value served, the variation, and the
//! reason ([`Reason`], [`ReasonKind`], [`ErrorKind`]), owned in [`Evaluation`].

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::fmt;

/// Why an evaluation failed; the caller's default is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No flag has this key.
    FlagNotFound,
    /// The flag (or the part of it that was reached) is invalid.
    MalformedFlag,
    /// The flag's value is not of the type asked for.
    WrongType,
    /// The client has no flags yet (its provider has not delivered any).
    ClientNotReady,
    /// The context is invalid.
    UserNotSpecified,
    /// An unexpected failure inside a foreign engine.
    Exception,
}

impl ErrorKind {
    /// Every error kind (for pre-creating metric series, tables indexed by kind).
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::FlagNotFound,
        ErrorKind::MalformedFlag,
        ErrorKind::WrongType,
        ErrorKind::ClientNotReady,
        ErrorKind::UserNotSpecified,
        ErrorKind::Exception,
    ];

    /// The name used in reasons (`FLAG_NOT_FOUND`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::FlagNotFound => "FLAG_NOT_FOUND",
            ErrorKind::MalformedFlag => "MALFORMED_FLAG",
            ErrorKind::WrongType => "WRONG_TYPE",
            ErrorKind::ClientNotReady => "CLIENT_NOT_READY",
            ErrorKind::UserNotSpecified => "USER_NOT_SPECIFIED",
            ErrorKind::Exception => "EXCEPTION",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of reason, without its details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReasonKind {
    /// The flag is off.
    Off,
    /// The context key is individually targeted.
    TargetMatch,
    /// A rule matched.
    RuleMatch,
    /// No rule matched.
    Fallthrough,
    /// A prerequisite did not serve the required variation.
    PrerequisiteFailed,
    /// A local override decided.
    Override,
    /// Evaluation failed; the caller's default is served.
    Error,
}

impl ReasonKind {
    /// Every reason kind (for tables indexed by reason).
    pub const ALL: [ReasonKind; 7] = [
        ReasonKind::Off,
        ReasonKind::TargetMatch,
        ReasonKind::RuleMatch,
        ReasonKind::Fallthrough,
        ReasonKind::PrerequisiteFailed,
        ReasonKind::Override,
        ReasonKind::Error,
    ];

    /// The position in [`ReasonKind::ALL`] (for arrays of counters).
    #[inline]
    pub fn index(self) -> usize {
        match self {
            ReasonKind::Off => 0,
            ReasonKind::TargetMatch => 1,
            ReasonKind::RuleMatch => 2,
            ReasonKind::Fallthrough => 3,
            ReasonKind::PrerequisiteFailed => 4,
            ReasonKind::Override => 5,
            ReasonKind::Error => 6,
        }
    }

    /// The name used in reasons (`OFF`, `RULE_MATCH`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonKind::Off => "OFF",
            ReasonKind::TargetMatch => "TARGET_MATCH",
            ReasonKind::RuleMatch => "RULE_MATCH",
            ReasonKind::Fallthrough => "FALLTHROUGH",
            ReasonKind::PrerequisiteFailed => "PREREQUISITE_FAILED",
            ReasonKind::Override => "OVERRIDE",
            ReasonKind::Error => "ERROR",
        }
    }
}

impl fmt::Display for ReasonKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a value was served.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The flag is off.
    Off,
    /// The context key is individually targeted.
    TargetMatch,
    /// Rule `rule_index` matched.
    RuleMatch {
        /// Index of the rule.
        rule_index: usize,
        /// The rule's id, when it has one.
        rule_id: Option<String>,
        /// Whether the context is part of an experiment.
        in_experiment: bool,
    },
    /// No rule matched.
    Fallthrough {
        /// Whether the context is part of an experiment.
        in_experiment: bool,
    },
    /// A prerequisite did not serve the required variation.
    PrerequisiteFailed {
        /// The prerequisite's key.
        prerequisite_key: String,
    },
    /// A local override decided.
    Override,
    /// Evaluation failed; the caller's default was served.
    Error {
        /// What failed.
        error_kind: ErrorKind,
    },
}

impl Reason {
    /// The kind of reason.
    pub fn kind(&self) -> ReasonKind {
        match self {
            Reason::Off => ReasonKind::Off,
            Reason::TargetMatch => ReasonKind::TargetMatch,
            Reason::RuleMatch { .. } => ReasonKind::RuleMatch,
            Reason::Fallthrough { .. } => ReasonKind::Fallthrough,
            Reason::PrerequisiteFailed { .. } => ReasonKind::PrerequisiteFailed,
            Reason::Override => ReasonKind::Override,
            Reason::Error { .. } => ReasonKind::Error,
        }
    }

    /// Whether the evaluation is part of an experiment.
    #[inline]
    pub fn in_experiment(&self) -> bool {
        matches!(
            self,
            Reason::RuleMatch {
                in_experiment: true,
                ..
            } | Reason::Fallthrough {
                in_experiment: true
            }
        )
    }

    /// The error kind of an `ERROR` reason.
    #[inline]
    pub fn error_kind(&self) -> Option<ErrorKind> {
        match self {
            Reason::Error { error_kind } => Some(*error_kind),
            _ => None,
        }
    }
}

impl Serialize for Reason {
    /// LaunchDarkly's reason shape: `{"kind": "RULE_MATCH", "ruleIndex": 0, "ruleId": "x"}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("kind", self.kind().as_str())?;
        match self {
            Reason::RuleMatch {
                rule_index,
                rule_id,
                in_experiment,
            } => {
                m.serialize_entry("ruleIndex", rule_index)?;
                if let Some(id) = rule_id {
                    m.serialize_entry("ruleId", id)?;
                }
                if *in_experiment {
                    m.serialize_entry("inExperiment", &true)?;
                }
            }
            Reason::Fallthrough {
                in_experiment: true,
            } => m.serialize_entry("inExperiment", &true)?,
            Reason::PrerequisiteFailed { prerequisite_key } => {
                m.serialize_entry("prerequisiteKey", prerequisite_key)?
            }
            Reason::Error { error_kind } => m.serialize_entry("errorKind", error_kind.as_str())?,
            _ => {}
        }
        m.end()
    }
}

/// The owned result of an evaluation.
///
/// What the evaluation produced is in fields (`key`, `value`, `variation_index`,
/// `variation_name`, `reason`); what its reason says is read with methods named as on
/// [`Detail`](crate::Detail) (`rule_index()`, `rule_id()`, `in_experiment()`,
/// `prerequisite_key()`, `error_kind()`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
    /// The flag's key.
    pub key: String,
    /// The value served (the caller's default when nothing else was).
    pub value: Value,
    /// Index of the variation served; `None` when a default was served.
    pub variation_index: Option<usize>,
    /// The name of the variation served, when the flag names its variants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variation_name: Option<String>,
    /// Why.
    pub reason: Reason,
}

impl Evaluation {
    /// An evaluation that served the caller's default because of an error.
    pub fn error(key: &str, default: Value, error_kind: ErrorKind) -> Self {
        Evaluation {
            key: key.to_owned(),
            value: default,
            variation_index: None,
            variation_name: None,
            reason: Reason::Error { error_kind },
        }
    }

    /// The index of the rule that matched.
    pub fn rule_index(&self) -> Option<usize> {
        match &self.reason {
            Reason::RuleMatch { rule_index, .. } => Some(*rule_index),
            _ => None,
        }
    }

    /// The id of the rule that matched.
    pub fn rule_id(&self) -> Option<&str> {
        match &self.reason {
            Reason::RuleMatch { rule_id, .. } => rule_id.as_deref(),
            _ => None,
        }
    }

    /// Whether the evaluation is part of an experiment.
    #[inline]
    pub fn in_experiment(&self) -> bool {
        self.reason.in_experiment()
    }

    /// The key of the prerequisite that failed.
    pub fn prerequisite_key(&self) -> Option<&str> {
        match &self.reason {
            Reason::PrerequisiteFailed { prerequisite_key } => Some(prerequisite_key),
            _ => None,
        }
    }

    /// The error kind, when the evaluation failed.
    #[inline]
    pub fn error_kind(&self) -> Option<ErrorKind> {
        self.reason.error_kind()
    }

    /// Whether the evaluation failed (the caller's default was served).
    #[inline]
    pub fn is_error(&self) -> bool {
        self.error_kind().is_some()
    }
}

/// The type of value a caller asks for (the typed accessors `bool`, `int`, `float`, `string`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// A boolean.
    Bool,
    /// A number, read as a whole number (fractions are truncated toward zero).
    Int,
    /// A number.
    Float,
    /// A string.
    String,
    /// Any JSON value.
    Any,
}

impl ValueKind {
    /// Whether `v` is of this kind.
    #[inline]
    pub fn admits(self, v: &Value) -> bool {
        match self {
            ValueKind::Bool => v.is_boolean(),
            ValueKind::Int | ValueKind::Float => v.is_number(),
            ValueKind::String => v.is_string(),
            ValueKind::Any => true,
        }
    }
}
