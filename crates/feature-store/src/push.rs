//! Synchronising a flag document into a store: the difference between what the store holds and
//! what a file says, and applying it through the write API.

use crate::rows::{flag_definition, segment_definition, ItemKind, Row};
use crate::write::{BatchError, FlagStore, WriteError};
use feature_core::model::FlagDocument;
use feature_core::Severity;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// What happens to one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    /// Only in the document: created.
    Create,
    /// In both, with different definitions: replaced.
    Update,
    /// Only in the store: deleted (unless deletions are turned off).
    Delete,
}

/// One difference between a store and a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Create, update or delete.
    pub op: ChangeOp,
    /// Flag or segment.
    pub kind: ItemKind,
    /// The key.
    pub key: String,
    /// The stored version the change was computed against (`None` for creates); the write
    /// is refused if the item changed meanwhile.
    pub version: Option<u64>,
    /// The stored definition.
    pub before: Option<Value>,
    /// The document's definition.
    pub after: Option<Value>,
}

impl Change {
    /// Top-level fields whose value differs (for updates): `enabled`, `rules`, ...
    pub fn fields(&self) -> Vec<String> {
        let empty = serde_json::Map::new();
        let a = self
            .before
            .as_ref()
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let b = self
            .after
            .as_ref()
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let mut keys: Vec<String> = a
            .keys()
            .chain(b.keys())
            .filter(|k| a.get(*k) != b.get(*k))
            .cloned()
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

impl fmt::Display for Change {
    /// `+ flag new-checkout`, `~ flag theme (v3): default, rules`, `- segment beta (v2)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = match self.op {
            ChangeOp::Create => '+',
            ChangeOp::Update => '~',
            ChangeOp::Delete => '-',
        };
        write!(f, "{sign} {} {}", self.kind, self.key)?;
        if let Some(v) = self.version {
            write!(f, " (v{v})")?;
        }
        if self.op == ChangeOp::Update {
            let fields = self.fields();
            if fields.is_empty() {
                f.write_str(": definition")?;
            } else {
                write!(f, ": {}", fields.join(", "))?;
            }
        }
        Ok(())
    }
}

/// The changes that make the store's `rows` equal to `doc`, in the order they are applied:
/// segments are created and updated before flags (so that flags find them), and flags are
/// deleted before segments. With `delete` false, items missing from the document are kept.
///
/// Definitions are compared in their stored form, so formatting, key order and
/// store-managed fields (`version`, `updatedAt`) never count as differences. A stored row that
/// is invalid always differs from a valid definition, so pushing a file repairs bad rows.
pub fn diff(rows: &[Row], doc: &FlagDocument, delete: bool) -> Vec<Change> {
    let stored: BTreeMap<(ItemKind, &str), &Row> =
        rows.iter().map(|r| ((r.kind, r.key.as_str()), r)).collect();
    let mut wanted: BTreeMap<(ItemKind, &str), Value> = BTreeMap::new();
    for (k, s) in &doc.segments {
        wanted.insert((ItemKind::Segment, k), segment_definition(s));
    }
    for (k, f) in &doc.flags {
        wanted.insert((ItemKind::Flag, k), flag_definition(f));
    }
    let mut upserts = Vec::new();
    for ((kind, key), def) in &wanted {
        match stored.get(&(*kind, *key)) {
            None => upserts.push(Change {
                op: ChangeOp::Create,
                kind: *kind,
                key: key.to_string(),
                version: None,
                before: None,
                after: Some(def.clone()),
            }),
            Some(row) if normalized(*kind, &row.definition) != *def => upserts.push(Change {
                op: ChangeOp::Update,
                kind: *kind,
                key: key.to_string(),
                version: Some(row.version),
                before: Some(row.definition.clone()),
                after: Some(def.clone()),
            }),
            Some(_) => {}
        }
    }
    let mut deletes = Vec::new();
    if delete {
        for ((kind, key), row) in &stored {
            if !wanted.contains_key(&(*kind, *key)) {
                deletes.push(Change {
                    op: ChangeOp::Delete,
                    kind: *kind,
                    key: key.to_string(),
                    version: Some(row.version),
                    before: Some(row.definition.clone()),
                    after: None,
                });
            }
        }
    }
    // Segments are written before flags; flags are deleted before segments.
    upserts.sort_by_key(|c| (c.kind != ItemKind::Segment, c.key.clone()));
    deletes.sort_by_key(|c| (c.kind != ItemKind::Flag, c.key.clone()));
    upserts.extend(deletes);
    upserts
}

/// A stored definition in canonical form: parsed and re-serialized when it parses.
fn normalized(kind: ItemKind, v: &Value) -> Value {
    match kind {
        ItemKind::Flag => serde_json::from_value(v.clone())
            .map(|f| flag_definition(&f))
            .unwrap_or_else(|_| v.clone()),
        ItemKind::Segment => serde_json::from_value(v.clone())
            .map(|s| segment_definition(&s))
            .unwrap_or_else(|_| v.clone()),
    }
}

/// Errors of [`push`]. Whatever the error, the store was left as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The document has errors: nothing was written.
    #[error("the document has {} error(s), nothing was written; first: {}", .0.len(), .0.first().map(ToString::to_string).unwrap_or_default())]
    Invalid(Vec<feature_core::Diagnostic>),
    /// A change was refused (an item changed since it was read: [`WriteError::Conflict`],
    /// [`WriteError::AlreadyExists`], [`WriteError::NotFound`]) or the store failed: nothing
    /// was written.
    #[error("{}{source}; nothing was written", .change.as_ref().map(|c| format!("{c}: ")).unwrap_or_default())]
    Write {
        /// The change that was refused or failed, when one was.
        change: Option<Box<Change>>,
        /// Why.
        #[source]
        source: WriteError,
    },
    /// The store's contents could not be read.
    #[error("cannot read the store: {0}")]
    Read(#[source] WriteError),
}

/// Options of [`push`].
#[derive(Debug, Clone, Copy)]
pub struct PushOptions {
    /// Only compute the changes.
    pub dry_run: bool,
    /// Delete items that are in the store but not in the document (default `true`).
    pub delete: bool,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            dry_run: false,
            delete: true,
        }
    }
}

/// Makes `store` hold what `doc` says, in the name of `actor`, and returns the changes (the
/// ones that would be made, with `dry_run`). The document is checked first: with any error,
/// nothing is written. The changes are applied all or nothing with
/// [`FlagStore::apply_changes`]: every update and delete is conditional on the version the
/// diff read and every create on the item still being absent, so an item edited, created or
/// deleted by someone else meanwhile makes the whole push fail with
/// [`PushError::Write`] and the store unchanged (the other edit survives); so does any
/// failure of the store in the middle. Each change is audited as a single write would be.
pub async fn push(
    store: &dyn FlagStore,
    doc: &FlagDocument,
    actor: &str,
    options: PushOptions,
) -> Result<Vec<Change>, PushError> {
    crate::write::check_name("actor", actor).map_err(|source| PushError::Write {
        change: None,
        source,
    })?;
    let snap = feature_core::compile(doc.clone());
    let errors: Vec<_> = snap
        .diagnostics()
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .cloned()
        .collect();
    if !errors.is_empty() {
        return Err(PushError::Invalid(errors));
    }
    let rows = store.rows().await.map_err(PushError::Read)?;
    let changes = diff(&rows, doc, options.delete);
    if options.dry_run || changes.is_empty() {
        return Ok(changes);
    }
    match store.apply_changes(&changes, actor).await {
        Ok(_) => Ok(changes),
        Err(BatchError { index, source }) => Err(PushError::Write {
            change: index.and_then(|i| changes.get(i)).cloned().map(Box::new),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use feature_core::model::{Flag, Segment};
    use serde_json::json;

    fn row(kind: ItemKind, key: &str, def: Value, version: u64) -> Row {
        Row {
            kind,
            key: key.into(),
            definition: def,
            version,
            updated_at: None,
            updated_by: None,
        }
    }

    #[test]
    fn diff_finds_creates_updates_and_deletes_in_apply_order() {
        let rows = vec![
            row(
                ItemKind::Flag,
                "same",
                json!({"default": true, "type": "bool"}),
                1,
            ),
            row(
                ItemKind::Flag,
                "changed",
                json!({"type": "bool", "default": false}),
                4,
            ),
            row(ItemKind::Flag, "gone", json!({"default": 1}), 2),
            row(ItemKind::Segment, "old-seg", json!({}), 1),
            row(ItemKind::Flag, "bad", json!({"nonsense": 1}), 7),
        ];
        let mut doc = FlagDocument::default();
        let mut same = Flag::boolean("same", true);
        same.version = Some(99); // store-managed: not a difference
        doc.flags.insert("same".into(), same.into());
        doc.flags
            .insert("changed".into(), Flag::boolean("changed", true).into());
        doc.flags
            .insert("new".into(), Flag::boolean("new", true).into());
        doc.flags
            .insert("bad".into(), Flag::boolean("bad", true).into());
        doc.segments
            .insert("new-seg".into(), Segment::default().into());
        let changes = diff(&rows, &doc, true);
        let shown: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "+ segment new-seg",
                "~ flag bad (v7): default, nonsense, type",
                "~ flag changed (v4): default",
                "+ flag new",
                "- flag gone (v2)",
                "- segment old-seg (v1)",
            ]
        );
        let kept = diff(&rows, &doc, false);
        assert!(kept.iter().all(|c| c.op != ChangeOp::Delete));
        assert!(diff(&rows[..1], &doc, false)
            .iter()
            .all(|c| c.key != "same"));
    }
}
