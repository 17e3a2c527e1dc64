//! Flag keys that remember where their flag is: evaluating by a [`FlagKey`] skips hashing the
//! key and probing the key table while the snapshot is the one it last looked in.
//!
//! ```
//! use feature_core::{compile, parse_document, Context, FlagKey, Format};
//!
//! static DARK_MODE: FlagKey = FlagKey::new("dark-mode");
//!
//! let parsed = parse_document(
//!     r#"{"flags": {"dark-mode": {"type": "bool", "default": true}}}"#,
//!     Format::Json,
//! )?;
//! let snapshot = compile(parsed.document);
//! let user = Context::new("user-1");
//! // The first evaluation looks the key up and remembers the position; later ones in the same
//! // snapshot read it back.
//! for _ in 0..3 {
//!     assert_eq!(snapshot.evaluate_key(&DARK_MODE, &user).value(), Some(&serde_json::json!(true)));
//! }
//! # Ok::<(), feature_core::ParseError>(())
//! ```
//!
//! A `FlagKey` is shared freely between threads and snapshots: what it remembers is one atomic
//! word holding a snapshot's identity and the flag's position in it, read and written with
//! relaxed ordering (plain loads and stores). A key evaluated in another snapshot, or a
//! position that does not fit the word, falls back to the lookup by key, so the answer is
//! always the one [`Snapshot::evaluate`] gives.

use crate::context::Context;
use crate::detail::Detail;
use crate::program::Snapshot;
use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bits of the remembered word that hold the position plus one (0: nothing remembered).
const POSITION_BITS: u32 = 24;
const POSITION_MASK: u64 = (1 << POSITION_BITS) - 1;

/// A flag key that remembers its flag's position in the snapshot it was last evaluated in.
///
/// Declare the keys a service reads often once (`static`), or keep them in a struct, and
/// evaluate with [`Snapshot::evaluate_key`] (or the client's keyed accessors): while the
/// snapshot does not change, an evaluation reads the position back instead of hashing the key.
pub struct FlagKey {
    key: Cow<'static, str>,
    /// `snapshot identity << POSITION_BITS | (position + 1)`, or 0.
    seen: AtomicU64,
}

impl FlagKey {
    /// A key from a string known at compile time (usable in a `static`).
    pub const fn new(key: &'static str) -> FlagKey {
        FlagKey {
            key: Cow::Borrowed(key),
            seen: AtomicU64::new(0),
        }
    }

    /// A key from a string made at run time.
    pub fn owned(key: impl Into<String>) -> FlagKey {
        FlagKey {
            key: Cow::Owned(key.into()),
            seen: AtomicU64::new(0),
        }
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// The position remembered for the snapshot with identity `id`, if any.
    #[inline(always)]
    fn recall(&self, id: u64) -> Option<u32> {
        let seen = self.seen.load(Ordering::Relaxed);
        // `seen` is `id << POSITION_BITS | (position + 1)` exactly when this difference is
        // the position: the word of another identity differs by a non-zero multiple of
        // 2^POSITION_BITS (the difference is at least the mask), and 0 (nothing remembered)
        // wraps to at least the mask too. One subtraction and one comparison.
        let position = seen.wrapping_sub(id << POSITION_BITS).wrapping_sub(1);
        (position < POSITION_MASK).then_some(position as u32)
    }

    /// Remembers `position` in the snapshot with identity `id` (nothing when it does not fit).
    fn remember(&self, id: u64, position: u32) {
        let position = u64::from(position) + 1;
        if position <= POSITION_MASK {
            self.seen
                .store(id << POSITION_BITS | position, Ordering::Relaxed);
        }
    }
}

impl Clone for FlagKey {
    fn clone(&self) -> FlagKey {
        FlagKey {
            key: self.key.clone(),
            seen: AtomicU64::new(self.seen.load(Ordering::Relaxed)),
        }
    }
}

impl fmt::Debug for FlagKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FlagKey").field(&self.key).finish()
    }
}

impl fmt::Display for FlagKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

impl PartialEq for FlagKey {
    fn eq(&self, other: &FlagKey) -> bool {
        self.key == other.key
    }
}

impl Eq for FlagKey {}

impl From<String> for FlagKey {
    fn from(key: String) -> FlagKey {
        FlagKey::owned(key)
    }
}

impl From<&str> for FlagKey {
    fn from(key: &str) -> FlagKey {
        FlagKey::owned(key)
    }
}

impl AsRef<str> for FlagKey {
    fn as_ref(&self) -> &str {
        &self.key
    }
}

impl Snapshot {
    /// The position of `key`'s flag in [`Snapshot::flags`], looked up and remembered (when
    /// `key` did not last look in this snapshot or a clone of it).
    #[inline(never)]
    fn look_up(&self, key: &FlagKey) -> Option<u32> {
        let position = self.position(key.as_str())?;
        key.remember(self.lineage.id, position);
        Some(position)
    }

    /// Evaluates `key`'s flag for `ctx`: the same as [`Snapshot::evaluate`] with its string,
    /// without hashing it when `key` was last evaluated in this snapshot.
    #[inline(always)]
    pub fn evaluate_key<'s>(&'s self, key: &FlagKey, ctx: &Context) -> Detail<'s> {
        // Two calls rather than one on the merged position, so that the remembered one goes
        // straight to the flag without testing an `Option` built on both paths.
        match key.recall(self.lineage.id) {
            Some(position) => self.evaluate_at(Some(position), ctx),
            None => self.evaluate_at(self.look_up(key), ctx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{compile, parse_document, Format};

    fn snapshot(flags: &[(&str, bool)]) -> Snapshot {
        let body: Vec<String> = flags
            .iter()
            .map(|(k, v)| format!(r#""{k}": {{"type": "bool", "default": {v}}}"#))
            .collect();
        let text = format!(r#"{{"flags": {{{}}}}}"#, body.join(","));
        compile(parse_document(&text, Format::Json).unwrap().document)
    }

    fn value(s: &Snapshot, key: &FlagKey) -> Option<bool> {
        s.evaluate_key(key, &Context::new("u"))
            .value()
            .and_then(|v| v.as_bool())
    }

    #[test]
    fn a_word_is_read_back_only_under_the_identity_it_was_remembered_for() {
        let key = FlagKey::new("k");
        // Nothing remembered: no identity reads a position, 0 (the empty snapshot's) included.
        for id in [0, 1, 2, 1 << 39, (1 << 40) - 1, u64::MAX] {
            assert_eq!(key.recall(id), None, "identity {id}");
        }
        let largest = POSITION_MASK as u32 - 1;
        for id in [0u64, 1, 2, 12_345, (1 << 40) - 1, 1 << 40] {
            for position in [0, 1, 63, 64, largest] {
                key.remember(id, position);
                assert_eq!(key.recall(id), Some(position), "identity {id}, {position}");
                for other in [id.wrapping_sub(1), id + 1, id + (1 << 39), id ^ 0xFF] {
                    assert_eq!(key.recall(other), None, "{id} read as {other}");
                }
            }
        }
        // A position that does not fit is not remembered: the last word stays.
        key.remember(7, largest + 1);
        assert_eq!(key.recall(7), None);
        assert_eq!(key.recall(1 << 40), Some(largest));
    }

    #[test]
    fn a_remembered_position_is_only_used_in_its_snapshot() {
        let key = FlagKey::new("b");
        let first = snapshot(&[("a", false), ("b", true)]);
        assert_eq!(value(&first, &key), Some(true));
        assert_eq!(key.recall(first.lineage.id), Some(1));
        // In another snapshot "b" moved: the position remembered for `first` is not read.
        let second = snapshot(&[("0", false), ("a", false), ("b", false)]);
        assert_eq!(value(&second, &key), Some(false));
        assert_eq!(key.recall(second.lineage.id), Some(2));
        assert_eq!(key.recall(first.lineage.id), None);
        // Back in the first one (a reader still holding it): looked up again, right answer.
        assert_eq!(value(&first, &key), Some(true));
        // A clone holds the same flags, so it shares the position.
        let clone = first.clone();
        assert_eq!(key.recall(clone.lineage.id), Some(1));
        assert_eq!(value(&clone, &key), Some(true));
    }

    #[test]
    fn a_missing_flag_is_not_found_and_remembers_nothing() {
        let key = FlagKey::owned(String::from("missing"));
        let s = snapshot(&[("a", true)]);
        let d = s.evaluate_key(&key, &Context::new("u"));
        assert_eq!(d.value(), None);
        assert_eq!(
            d.to_evaluation("missing", serde_json::Value::Null).reason,
            s.evaluate("missing", &Context::new("u"))
                .to_evaluation("missing", serde_json::Value::Null)
                .reason
        );
        assert_eq!(key.seen.load(Ordering::Relaxed), 0);
        // The empty snapshot (identity 0) never matches the initial word.
        let empty = Snapshot::default();
        assert_eq!(value(&empty, &key), None);
    }

    #[test]
    fn a_position_too_large_for_the_word_is_looked_up_each_time() {
        let key = FlagKey::new("k");
        key.remember(7, (POSITION_MASK - 1) as u32);
        assert_eq!(key.recall(7), Some((POSITION_MASK - 1) as u32));
        key.remember(7, POSITION_MASK as u32);
        // Not stored: the earlier word stays.
        assert_eq!(key.recall(7), Some((POSITION_MASK - 1) as u32));
    }
}
