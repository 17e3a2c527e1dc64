//! The write API every store implements: create, update, delete, enable and disable flags,
//! put and delete segments, each change made in the name of an actor and recorded in the
//! store's audit log.

use crate::push::{Change, ChangeOp};
use crate::rows::{flag_definition, segment_definition, ItemKind, Row};
use async_trait::async_trait;
use feature_core::model::{Flag, FlagDocument, Segment};
use feature_core::provider::BoxError;
use feature_core::{compile, Diagnostic, Severity};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Action {
    /// The item was created.
    Create,
    /// The definition was replaced.
    Update,
    /// The item was deleted.
    Delete,
    /// Targeting was switched on.
    Enable,
    /// Targeting was switched off.
    Disable,
}

impl Action {
    /// `create`, `update`, `delete`, `enable` or `disable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Enable => "enable",
            Action::Disable => "disable",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a write does when the item does not exist yet: for [`FlagStore`] implementations,
/// where `update` refuses a missing flag and `put_segment` creates the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// Fail with [`WriteError::NotFound`].
    Fail,
    /// Create the item.
    Create,
}

/// The result of a write.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// Flag or segment.
    pub kind: ItemKind,
    /// The key.
    pub key: String,
    /// The item's version after the write (for a delete: the version the deletion was
    /// recorded with, one more than the last).
    pub version: u64,
    /// Whether anything changed (enabling an enabled flag, or updating a flag to the definition
    /// it already has, changes nothing and records nothing).
    pub changed: bool,
    /// The row as stored after the write; `None` after a delete.
    pub row: Option<Row>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Position in the log (increasing).
    pub id: String,
    /// Flag or segment.
    pub kind: ItemKind,
    /// The key.
    pub key: String,
    /// What was done (`create`, `update`, `delete`, `enable`, `disable`; changes made by hand
    /// in the store show `create`/`update`/`delete`).
    pub action: String,
    /// Who did it: the actor named to the write API, or the database user for changes made by
    /// hand.
    pub actor: String,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The item's version after the change.
    pub version: u64,
    /// The definition before (`None` for a create).
    pub before: Option<Value>,
    /// The definition after (`None` for a delete).
    pub after: Option<Value>,
}

/// Errors of the write API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The item does not exist.
    #[error("{kind} {key:?} does not exist")]
    NotFound {
        /// Flag or segment.
        kind: ItemKind,
        /// The key.
        key: String,
    },
    /// The item already exists (create).
    #[error("{kind} {key:?} already exists")]
    AlreadyExists {
        /// Flag or segment.
        kind: ItemKind,
        /// The key.
        key: String,
    },
    /// The item changed since the version the caller read (optimistic concurrency).
    #[error("{kind} {key:?} is at version {actual}, not {expected}: it was changed meanwhile")]
    Conflict {
        /// Flag or segment.
        kind: ItemKind,
        /// The key.
        key: String,
        /// The version the caller expected.
        expected: u64,
        /// The version the store has.
        actual: u64,
    },
    /// The definition has errors and was not written.
    #[error("{key:?} was not written: {}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong.
        problems: Vec<Diagnostic>,
    },
    /// A key or actor name that cannot be stored (empty, too long, control characters).
    #[error("invalid {what} {value:?}: {reason}")]
    BadName {
        /// `key` or `actor`.
        what: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The store failed.
    #[error("{store}: {operation} failed: {source}")]
    Store {
        /// The store (`postgres`, `redis`).
        store: &'static str,
        /// What was being done.
        operation: &'static str,
        /// The store's error.
        #[source]
        source: BoxError,
    },
    /// The store did not answer in time.
    #[error("{store}: {operation} timed out")]
    Timeout {
        /// The store.
        store: &'static str,
        /// What was being done.
        operation: &'static str,
    },
    /// A change of a batch that cannot be applied as given (a create or update without a
    /// definition).
    #[error("{kind} {key:?}: {reason}")]
    BadChange {
        /// Flag or segment.
        kind: ItemKind,
        /// The key.
        key: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Why [`FlagStore::apply_changes`] wrote nothing.
#[derive(Debug, thiserror::Error)]
#[error("{}{source}; nothing was written", .index.map(|i| format!("change {}: ", i + 1)).unwrap_or_default())]
pub struct BatchError {
    /// The position in the batch of the change that was refused or failed; `None` when the
    /// batch as a whole failed (connection, commit, time limit).
    pub index: Option<usize>,
    /// Why.
    #[source]
    pub source: WriteError,
}

impl BatchError {
    /// The change at `index` failed.
    pub fn at(index: usize, source: WriteError) -> BatchError {
        BatchError {
            index: Some(index),
            source,
        }
    }

    /// The batch as a whole failed.
    pub fn whole(source: WriteError) -> BatchError {
        BatchError {
            index: None,
            source,
        }
    }
}

/// A store of flags that can be written: PostgreSQL, Redis, or Redis in front of PostgreSQL.
///
/// Every change names an `actor` (a person or a system: `alice@example.com`,
/// `deploy-bot`), recorded in the audit log with the time and the definitions before and after.
/// Writes are validated first: a definition that does not compile is refused with
/// [`WriteError::Invalid`], so the write API never stores a bad row.
#[async_trait]
pub trait FlagStore: Send + Sync + 'static {
    /// Short name of the store (`postgres`, `redis`).
    fn name(&self) -> &'static str;

    /// Every stored row, flags and segments, including rows whose definition is invalid.
    async fn rows(&self) -> Result<Vec<Row>, WriteError>;

    /// One stored row.
    async fn row(&self, kind: ItemKind, key: &str) -> Result<Option<Row>, WriteError>;

    /// Creates a flag (its key is `flag.key`); [`WriteError::AlreadyExists`] if it exists.
    async fn create(&self, flag: &Flag, actor: &str) -> Result<Written, WriteError>;

    /// Replaces a flag's definition. With `flag.version` set, only if the stored version is
    /// still that one ([`WriteError::Conflict`] otherwise); without, unconditionally.
    async fn update(&self, flag: &Flag, actor: &str) -> Result<Written, WriteError>;

    /// Deletes a flag.
    async fn delete(&self, key: &str, actor: &str) -> Result<Written, WriteError>;

    /// Switches a flag's targeting on (atomic: concurrent changes to other fields are kept).
    async fn enable(&self, key: &str, actor: &str) -> Result<Written, WriteError>;

    /// Switches a flag's targeting off: it serves its off variation (or default).
    async fn disable(&self, key: &str, actor: &str) -> Result<Written, WriteError>;

    /// Creates or replaces a segment (with `segment.version` set: only if still at that version).
    async fn put_segment(&self, segment: &Segment, actor: &str) -> Result<Written, WriteError>;

    /// Deletes a segment.
    async fn delete_segment(&self, key: &str, actor: &str) -> Result<Written, WriteError>;

    /// Applies a batch of changes (as [`diff`](crate::diff) computes them) all or nothing, in
    /// the name of `actor`: a create requires the item to be absent, an update or delete
    /// requires it to be at the change's `version` (when set). If any change is refused or
    /// fails, nothing is written. Each change is audited and announced as a single write
    /// would be. Returns one [`Written`] per change, in order.
    async fn apply_changes(
        &self,
        changes: &[Change],
        actor: &str,
    ) -> Result<Vec<Written>, BatchError>;

    /// The audit log of one item, newest first, at most `limit` entries.
    async fn history(
        &self,
        kind: ItemKind,
        key: &str,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, WriteError> {
        self.history_page(kind, key, limit, None).await
    }

    /// A page of the audit log of one item, newest first: at most `limit` entries older than
    /// the entry `before` (an [`HistoryEntry::id`] of an earlier page; `None` for the newest
    /// page). An id this store never issued gives [`WriteError::BadName`] (`what` = `"before"`).
    async fn history_page(
        &self,
        kind: ItemKind,
        key: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<HistoryEntry>, WriteError>;

    /// One entry of the audit log of one item, by its [`HistoryEntry::id`] (to restore the
    /// definition it recorded); `None` if the item's log has no such entry.
    async fn history_entry(
        &self,
        kind: ItemKind,
        key: &str,
        id: &str,
    ) -> Result<Option<HistoryEntry>, WriteError> {
        let mut before: Option<String> = None;
        loop {
            let page = self.history_page(kind, key, 500, before.as_deref()).await?;
            if let Some(e) = page.iter().find(|e| e.id == id) {
                return Ok(Some(e.clone()));
            }
            match page.last() {
                Some(last) if page.len() == 500 => before = Some(last.id.clone()),
                _ => return Ok(None),
            }
        }
    }
}

/// Longest key or actor name accepted.
pub const MAX_NAME_LEN: usize = 256;

/// Checks a key or actor name: not empty, at most [`MAX_NAME_LEN`] bytes, no control
/// characters.
pub fn check_name(what: &'static str, value: &str) -> Result<(), WriteError> {
    let reason = if value.trim().is_empty() {
        "it is empty"
    } else if value.len() > MAX_NAME_LEN {
        "it is longer than 256 bytes"
    } else if value.chars().any(char::is_control) {
        "it contains control characters"
    } else {
        return Ok(());
    };
    Err(WriteError::BadName {
        what,
        value: value.chars().take(80).collect(),
        reason,
    })
}

/// Checks a flag before it is written: a valid key and a definition without errors.
pub fn validate_flag(flag: &Flag) -> Result<(), WriteError> {
    check_name("key", &flag.key)?;
    let mut doc = FlagDocument::default();
    doc.flags.insert(flag.key.clone(), flag.clone().into());
    refuse_errors(&flag.key, doc)
}

/// Checks a segment before it is written.
pub fn validate_segment(segment: &Segment) -> Result<(), WriteError> {
    check_name("key", &segment.key)?;
    let mut doc = FlagDocument::default();
    doc.segments
        .insert(segment.key.clone(), segment.clone().into());
    refuse_errors(&segment.key, doc)
}

/// Checks every change of a batch ([`checked_definition`]) and that no item is named twice
/// (the stores would disagree on what a second change of one item in one batch means: it is
/// refused, with the position of the second): the definitions to store, in order.
pub fn checked_batch(changes: &[Change]) -> Result<Vec<Option<Value>>, BatchError> {
    let mut seen = std::collections::HashSet::with_capacity(changes.len());
    changes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if !seen.insert((c.kind, c.key.as_str())) {
                return Err(BatchError::at(
                    i,
                    WriteError::BadChange {
                        kind: c.kind,
                        key: c.key.clone(),
                        reason: "the batch changes this item twice",
                    },
                ));
            }
            checked_definition(c).map_err(|e| BatchError::at(i, e))
        })
        .collect()
}

/// Checks one change of a batch and returns the definition to store for it (canonical form,
/// `None` for a delete): the key must be valid and the definition must compile.
pub fn checked_definition(change: &Change) -> Result<Option<Value>, WriteError> {
    check_name("key", &change.key)?;
    if change.op == ChangeOp::Delete {
        return Ok(None);
    }
    let Some(after) = &change.after else {
        return Err(WriteError::BadChange {
            kind: change.kind,
            key: change.key.clone(),
            reason: "a create or update needs a definition",
        });
    };
    let invalid = |_| WriteError::BadChange {
        kind: change.kind,
        key: change.key.clone(),
        reason: "the definition does not read as one",
    };
    match change.kind {
        ItemKind::Flag => {
            let mut f: Flag = serde_json::from_value(after.clone()).map_err(invalid)?;
            f.key = change.key.clone();
            validate_flag(&f)?;
            Ok(Some(flag_definition(&f)))
        }
        ItemKind::Segment => {
            let mut s: Segment = serde_json::from_value(after.clone()).map_err(invalid)?;
            s.key = change.key.clone();
            validate_segment(&s)?;
            Ok(Some(segment_definition(&s)))
        }
    }
}

fn refuse_errors(key: &str, doc: FlagDocument) -> Result<(), WriteError> {
    let snap = compile(doc);
    let problems: Vec<Diagnostic> = snap
        .diagnostics()
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .cloned()
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(WriteError::Invalid {
            key: key.to_owned(),
            problems,
        })
    }
}

/// The current time as RFC 3339 UTC with milliseconds (`2024-05-01T12:00:00.123Z`).
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let ms = now.subsec_millis();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use feature_core::model::Variant;
    use serde_json::json;

    #[test]
    fn a_batch_that_changes_one_item_twice_is_refused_at_the_second() {
        let change = |op, kind, key: &str| Change {
            op,
            kind,
            key: key.to_owned(),
            version: Some(1),
            before: None,
            after: (op != ChangeOp::Delete).then(|| match kind {
                ItemKind::Flag => json!({"type": "bool", "default": true}),
                ItemKind::Segment => json!({"included": ["u"]}),
            }),
        };
        let ok = [
            change(ChangeOp::Delete, ItemKind::Flag, "x"),
            change(ChangeOp::Create, ItemKind::Segment, "x"),
        ];
        assert_eq!(
            checked_batch(&ok).unwrap().len(),
            2,
            "a flag and a segment may share a key"
        );
        let twice = [
            change(ChangeOp::Delete, ItemKind::Flag, "x"),
            change(ChangeOp::Update, ItemKind::Flag, "y"),
            change(ChangeOp::Create, ItemKind::Flag, "x"),
        ];
        let e = checked_batch(&twice).unwrap_err();
        assert_eq!(e.index, Some(2));
        assert!(matches!(e.source, WriteError::BadChange { .. }), "{e}");
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("actor", "alice").is_ok());
        for bad in ["", "  ", "a\nb"] {
            let e = check_name("actor", bad).unwrap_err();
            assert!(
                matches!(e, WriteError::BadName { what: "actor", .. }),
                "{bad:?}"
            );
        }
        assert!(check_name("key", &"k".repeat(257)).is_err());
    }

    #[test]
    fn invalid_flags_are_refused_with_their_problems() {
        let mut f = Flag::boolean("x", true);
        f.variants = vec![Variant::of(json!("not a bool"))];
        let e = validate_flag(&f).unwrap_err();
        let WriteError::Invalid { key, problems } = &e else {
            panic!("{e}")
        };
        assert_eq!(key, "x");
        assert!(!problems.is_empty());
        assert!(validate_flag(&Flag::boolean("ok", false)).is_ok());
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let s = now_rfc3339();
        assert_eq!(s.len(), 24, "{s}");
        assert!(s.ends_with('Z') && s.as_bytes()[10] == b'T', "{s}");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }
}
