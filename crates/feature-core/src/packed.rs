//! The packed outcome: what an evaluation served and why, in one `u64`.
//!
//! A pointer and an integer come back from a call in two registers, where a larger or mixed
//! result goes through memory and reading it back whole can stall the caller. So the evaluator
//! returns an [`Outcome`] (beside the flag it concerns), and compiled flags whose outcome does
//! not depend on the context keep it ready-made.

use crate::outcome::ErrorKind;

/// What was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Served {
    /// A variation, by index: `u16` (at most `MAX_INDEXED` variants, checked when compiling)
    /// keeps the outcome in one register.
    Variation(u16),
    /// The flag's own default value.
    FlagDefault,
    /// Nothing: the caller's default applies.
    Nothing,
}

/// The reason, in compact form: indexes into the flag instead of strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReasonCode {
    Off,
    Target,
    Rule { index: u16, experiment: bool },
    Fallthrough { experiment: bool },
    Prerequisite { index: u16 },
    Error(ErrorKind),
}

/// What was served and why, packed: bits 0-15 the variation, 16-17 what was served, 32-39 the
/// reason's tag, 40 the experiment flag, 48-63 the rule or prerequisite index or the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub(crate) struct Outcome(u64);

const SERVED_DEFAULT: u64 = 1 << 16;
const SERVED_NOTHING: u64 = 2 << 16;
const SERVED_MASK: u64 = 3 << 16;
const REASON_SHIFT: u32 = 32;
const EXPERIMENT: u64 = 1 << 40;
const INDEX_SHIFT: u32 = 48;
/// The tag of [`ReasonCode::Error`] in bits 32-39.
const ERROR_TAG: u8 = 5;

impl Outcome {
    /// Packs what was served and why.
    #[inline(always)]
    pub(crate) fn new(served: Served, reason: ReasonCode) -> Outcome {
        let s = match served {
            Served::Variation(i) => u64::from(i),
            Served::FlagDefault => SERVED_DEFAULT,
            Served::Nothing => SERVED_NOTHING,
        };
        let (tag, experiment, index): (u64, bool, u64) = match reason {
            ReasonCode::Off => (0, false, 0),
            ReasonCode::Target => (1, false, 0),
            ReasonCode::Rule { index, experiment } => (2, experiment, u64::from(index)),
            ReasonCode::Fallthrough { experiment } => (3, experiment, 0),
            ReasonCode::Prerequisite { index } => (4, false, u64::from(index)),
            ReasonCode::Error(k) => (u64::from(ERROR_TAG), false, error_code(k)),
        };
        Outcome(
            s | tag << REASON_SHIFT
                | if experiment { EXPERIMENT } else { 0 }
                | index << INDEX_SHIFT,
        )
    }

    /// An error: nothing served.
    #[inline(always)]
    pub(crate) fn error(kind: ErrorKind) -> Outcome {
        Outcome::new(Served::Nothing, ReasonCode::Error(kind))
    }

    /// What was served.
    #[inline(always)]
    pub(crate) fn served(self) -> Served {
        match self.0 & SERVED_MASK {
            0 => Served::Variation(self.0 as u16),
            SERVED_DEFAULT => Served::FlagDefault,
            _ => Served::Nothing,
        }
    }

    /// The index of the variation served, where no flag has a variation when the flag's
    /// default or nothing is served (2^16 and above; a flag has at most 2^16 variations): a
    /// variation's value is read with one bounds check, the other cases are its miss.
    #[inline(always)]
    pub(crate) fn variation_slot(self) -> usize {
        (self.0 & (SERVED_MASK | 0xFFFF)) as usize
    }

    /// Whether the outcome is an error.
    #[inline(always)]
    pub(crate) fn is_error(self) -> bool {
        (self.0 >> REASON_SHIFT) as u8 == ERROR_TAG
    }

    /// Why.
    #[inline(always)]
    pub(crate) fn reason(self) -> ReasonCode {
        let index = (self.0 >> INDEX_SHIFT) as u16;
        let experiment = self.0 & EXPERIMENT != 0;
        match (self.0 >> REASON_SHIFT) as u8 {
            0 => ReasonCode::Off,
            1 => ReasonCode::Target,
            2 => ReasonCode::Rule { index, experiment },
            3 => ReasonCode::Fallthrough { experiment },
            4 => ReasonCode::Prerequisite { index },
            _ => ReasonCode::Error(error_of(u64::from(index))),
        }
    }
}

#[inline(always)]
fn error_code(k: ErrorKind) -> u64 {
    match k {
        ErrorKind::FlagNotFound => 0,
        ErrorKind::MalformedFlag => 1,
        ErrorKind::WrongType => 2,
        ErrorKind::ClientNotReady => 3,
        ErrorKind::UserNotSpecified => 4,
        ErrorKind::Exception => 5,
    }
}

#[inline(always)]
fn error_of(code: u64) -> ErrorKind {
    match code {
        0 => ErrorKind::FlagNotFound,
        1 => ErrorKind::MalformedFlag,
        2 => ErrorKind::WrongType,
        3 => ErrorKind::ClientNotReady,
        4 => ErrorKind::UserNotSpecified,
        _ => ErrorKind::Exception,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_survive_packing() {
        let served = [
            Served::Variation(0),
            Served::Variation(u16::MAX),
            Served::FlagDefault,
            Served::Nothing,
        ];
        let mut reasons = vec![ReasonCode::Off, ReasonCode::Target];
        for index in [0, 7, u16::MAX] {
            for experiment in [false, true] {
                reasons.push(ReasonCode::Rule { index, experiment });
            }
            reasons.push(ReasonCode::Prerequisite { index });
        }
        reasons.push(ReasonCode::Fallthrough { experiment: false });
        reasons.push(ReasonCode::Fallthrough { experiment: true });
        reasons.extend(ErrorKind::ALL.map(ReasonCode::Error));
        for s in served {
            for &r in &reasons {
                let o = Outcome::new(s, r);
                assert_eq!((o.served(), o.reason()), (s, r));
                assert_eq!(o.is_error(), matches!(r, ReasonCode::Error(_)));
                // The slot is the variation's index, or one past any flag's variations.
                match s {
                    Served::Variation(i) => assert_eq!(o.variation_slot(), usize::from(i)),
                    _ => assert!(o.variation_slot() >= crate::program::MAX_INDEXED),
                }
            }
        }
    }
}
