//! Stored rows and how they become a snapshot: every row is read on its own, and a row that
//! cannot be used is reported with its key and left out, so one bad row never hides the others.

use feature_core::model::{Flag, FlagDocument, Segment};
use feature_core::{compile, Diagnostic, PathSeg, Severity, Snapshot};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// What a stored item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    /// A flag.
    Flag,
    /// A segment.
    Segment,
}

impl ItemKind {
    /// `flag` or `segment`.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Flag => "flag",
            ItemKind::Segment => "segment",
        }
    }

    /// Parses `flag` / `segment`.
    pub fn parse(s: &str) -> Option<ItemKind> {
        match s {
            "flag" => Some(ItemKind::Flag),
            "segment" => Some(ItemKind::Segment),
            _ => None,
        }
    }
}

impl fmt::Display for ItemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored flag or segment, as the store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Flag or segment.
    pub kind: ItemKind,
    /// The key.
    pub key: String,
    /// The definition (a flag or segment in the document format, without `key`, `version`,
    /// `createdAt` and `updatedAt`, which the store keeps itself).
    pub definition: Value,
    /// The item's version: 1 when created, +1 on every change (kept across delete and
    /// re-create).
    pub version: u64,
    /// When it was last changed (RFC 3339, UTC).
    pub updated_at: Option<String>,
    /// Who last changed it.
    pub updated_by: Option<String>,
}

/// Fields a store keeps in its own columns rather than in the stored definition.
const MANAGED: [&str; 4] = ["key", "version", "createdAt", "updatedAt"];

/// The definition to store for a flag: its document form without the store-managed fields.
pub fn flag_definition(flag: &Flag) -> Value {
    strip(serde_json::to_value(flag).unwrap_or(Value::Null))
}

/// The definition to store for a segment: its document form without `key` and `version`.
pub fn segment_definition(segment: &Segment) -> Value {
    strip(serde_json::to_value(segment).unwrap_or(Value::Null))
}

fn strip(mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        for k in MANAGED {
            m.remove(k);
        }
    }
    v
}

/// Reads a flag row; the store's key, version and time win over the definition's.
pub fn flag_from_row(row: &Row) -> Result<Flag, String> {
    let mut flag: Flag =
        serde_json::from_value(row.definition.clone()).map_err(|e| e.to_string())?;
    flag.key = row.key.clone();
    flag.version = Some(row.version);
    flag.updated_at = row.updated_at.clone();
    Ok(flag)
}

/// Reads a segment row.
pub fn segment_from_row(row: &Row) -> Result<Segment, String> {
    let mut seg: Segment =
        serde_json::from_value(row.definition.clone()).map_err(|e| e.to_string())?;
    seg.key = row.key.clone();
    seg.version = Some(row.version);
    Ok(seg)
}

#[derive(Debug, Clone)]
struct Entry<T> {
    row: Row,
    parsed: Result<T, String>,
}

/// The rows a provider last read, parsed once each; [`Rows::build`] makes the snapshot.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    flags: BTreeMap<String, Entry<Flag>>,
    segments: BTreeMap<String, Entry<Segment>>,
}

/// A snapshot built from rows, with the rows that were left out.
#[derive(Debug)]
pub struct Built {
    /// The flags and segments that could be used.
    pub snapshot: Snapshot,
    /// One error per row left out (the flag or `segment KEY` named, with the reason).
    pub skipped: Vec<Diagnostic>,
}

impl Rows {
    /// Replaces every row.
    pub fn replace_all(&mut self, rows: Vec<Row>) {
        self.flags.clear();
        self.segments.clear();
        for r in rows {
            self.put(r);
        }
    }

    /// Sets one item: `Some(row)` for its current state, `None` when it no longer exists.
    /// Returns whether that changed anything (a notice about an item as it already was,
    /// forged or repeated, changes nothing).
    pub fn apply(&mut self, kind: ItemKind, key: &str, row: Option<Row>) -> bool {
        let current = match kind {
            ItemKind::Flag => self.flags.get(key).map(|e| &e.row),
            ItemKind::Segment => self.segments.get(key).map(|e| &e.row),
        };
        match row {
            Some(r) if current == Some(&r) => false,
            Some(r) => {
                self.put(r);
                true
            }
            None => match kind {
                ItemKind::Flag => self.flags.remove(key).is_some(),
                ItemKind::Segment => self.segments.remove(key).is_some(),
            },
        }
    }

    fn put(&mut self, row: Row) {
        match row.kind {
            ItemKind::Flag => {
                let parsed = flag_from_row(&row);
                self.flags.insert(row.key.clone(), Entry { row, parsed });
            }
            ItemKind::Segment => {
                let parsed = segment_from_row(&row);
                self.segments.insert(row.key.clone(), Entry { row, parsed });
            }
        }
    }

    /// Number of rows (flags and segments), bad ones included.
    pub fn len(&self) -> usize {
        self.flags.len() + self.segments.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every row, flags first.
    pub fn rows(&self) -> impl Iterator<Item = &Row> {
        self.flags
            .values()
            .map(|e| &e.row)
            .chain(self.segments.values().map(|e| &e.row))
    }

    /// Compiles the usable rows. A row is left out, and reported, when its definition does not
    /// read as a flag (or segment) or when the flag as a whole does not compile (it would only
    /// ever evaluate to `MALFORMED_FLAG`). `origin` names the store in the diagnostics
    /// (`postgres:feature_flags`, `redis:feature`).
    pub fn build(&self, origin: &str) -> Built {
        let mut skipped = Vec::new();
        let mut doc = FlagDocument::default();
        for (k, e) in &self.segments {
            match &e.parsed {
                Ok(s) => {
                    doc.segments.insert(k.clone(), s.clone());
                }
                Err(msg) => skipped.push(bad(origin, ItemKind::Segment, k, msg)),
            }
        }
        for (k, e) in &self.flags {
            match &e.parsed {
                Ok(f) => {
                    doc.flags.insert(k.clone(), f.clone());
                }
                Err(msg) => skipped.push(bad(origin, ItemKind::Flag, k, msg)),
            }
        }
        // Removing a flag never breaks another one (a missing prerequisite fails at evaluation),
        // so one pass finds every flag that does not compile.
        let mut snapshot = compile(doc.clone());
        let broken: Vec<String> = snapshot
            .flags()
            .filter(|f| f.is_malformed())
            .map(|f| f.key().to_owned())
            .collect();
        if !broken.is_empty() {
            for key in &broken {
                let why: Vec<String> = snapshot
                    .diagnostics()
                    .iter()
                    .filter(|d| d.severity == Severity::Error && &d.flag == key)
                    .map(|d| format!("{} (at {})", d.message, d.path_string()))
                    .collect();
                skipped.push(bad(origin, ItemKind::Flag, key, &why.join("; ")));
                doc.flags.remove(key);
            }
            snapshot = compile(doc);
        }
        skipped.sort_by(|a, b| a.flag.cmp(&b.flag));
        Built { snapshot, skipped }
    }
}

fn bad(origin: &str, kind: ItemKind, key: &str, msg: &str) -> Diagnostic {
    let section = match kind {
        ItemKind::Flag => "flags",
        ItemKind::Segment => "segments",
    };
    Diagnostic {
        file: Some(origin.to_owned()),
        line: None,
        column: None,
        flag: match kind {
            ItemKind::Flag => key.to_owned(),
            ItemKind::Segment => format!("segment {key}"),
        },
        path: vec![PathSeg::key(section), PathSeg::key(key)],
        severity: Severity::Error,
        message: format!("row skipped: {msg}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(kind: ItemKind, key: &str, def: Value) -> Row {
        Row {
            kind,
            key: key.into(),
            definition: def,
            version: 3,
            updated_at: Some("2024-01-01T00:00:00.000Z".into()),
            updated_by: Some("alice".into()),
        }
    }

    #[test]
    fn bad_rows_are_reported_by_key_and_the_others_stay() {
        let mut rows = Rows::default();
        rows.replace_all(vec![
            row(
                ItemKind::Flag,
                "good",
                json!({"type": "bool", "default": true}),
            ),
            row(
                ItemKind::Flag,
                "typo",
                json!({"type": "bool", "defualt": true}),
            ),
            row(ItemKind::Flag, "not-an-object", json!(42)),
            row(
                ItemKind::Flag,
                "broken",
                json!({"type": "bool", "variants": [{"value": "yes"}], "default": true}),
            ),
            row(ItemKind::Segment, "seg", json!({"included": "not-a-list"})),
        ]);
        let built = rows.build("postgres:t");
        let keys: Vec<_> = built.snapshot.flags().map(|f| f.key().to_owned()).collect();
        assert_eq!(keys, ["good"]);
        let skipped: Vec<_> = built.skipped.iter().map(|d| d.flag.as_str()).collect();
        assert_eq!(skipped, ["broken", "not-an-object", "segment seg", "typo"]);
        for d in &built.skipped {
            let s = d.to_string();
            assert!(s.starts_with("postgres:t: "), "{s}");
            assert!(s.contains("row skipped"), "{s}");
        }
        assert!(built.skipped[3].to_string().contains("defualt"));
        // The store's version and time are carried into the document.
        let f = &built.snapshot.document().flags["good"];
        assert_eq!(f.version, Some(3));
        assert_eq!(f.key, "good");
    }

    #[test]
    fn apply_updates_and_deletes_one_item() {
        let mut rows = Rows::default();
        rows.apply(
            ItemKind::Flag,
            "a",
            Some(row(ItemKind::Flag, "a", json!({"default": 1}))),
        );
        rows.apply(
            ItemKind::Flag,
            "b",
            Some(row(ItemKind::Flag, "b", json!({"default": 2}))),
        );
        assert!(!rows.apply(
            ItemKind::Flag,
            "b",
            Some(row(ItemKind::Flag, "b", json!({"default": 2}))),
        ));
        assert!(rows.apply(ItemKind::Flag, "a", None));
        assert!(!rows.apply(ItemKind::Flag, "a", None));
        let built = rows.build("x");
        assert_eq!(built.snapshot.len(), 1);
        assert!(built.snapshot.flag("b").is_some());
        assert_eq!(rows.len(), 1);
    }

    #[test]
    fn stored_definitions_leave_out_store_managed_fields() {
        let mut f = Flag::boolean("k", true);
        f.version = Some(9);
        f.updated_at = Some("yesterday".into());
        let def = flag_definition(&f);
        assert_eq!(def, json!({"type": "bool", "default": true}));
    }
}
