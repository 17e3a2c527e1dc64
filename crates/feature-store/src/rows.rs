//! Stored rows and how they become a snapshot: every row is read on its own, and a row that
//! cannot be used is reported with its key and left out, so one bad row never hides the others.

use feature_core::model::{Flag, FlagDocument, Segment, SortedMap};
use feature_core::{compile, recompile, Change, Diagnostic, PathSeg, Severity, Snapshot};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

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
    flag.updated_at = row.updated_at.as_deref().map(Box::from);
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
    parsed: Result<Arc<T>, String>,
}

/// The rows a provider last read, parsed once each; [`Rows::build`] makes the snapshot.
///
/// After a first build, a build compiles only what changed since the last one
/// ([`feature_core::recompile`]): the items of the rows applied, and what a change of theirs
/// requires. [`Rows::replace_all`] makes the next build a full one.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    flags: BTreeMap<String, Entry<Flag>>,
    segments: BTreeMap<String, Entry<Segment>>,
    /// Rows that do not read, with the reason.
    unreadable: BTreeMap<(ItemKind, String), String>,
    /// Items applied since the last build.
    pending: BTreeSet<(ItemKind, String)>,
    /// What the last build made.
    last: Option<Last>,
    /// Whether the next build compiles everything (every row was replaced).
    full: bool,
}

/// The last build: the snapshot of every readable row (flags that do not compile included),
/// and the one published, without them.
#[derive(Debug, Clone)]
struct Last {
    readable: Snapshot,
    published: Snapshot,
    /// Flags left out because they do not compile.
    broken: BTreeSet<String>,
}

/// A snapshot built from rows, with the rows that were left out.
#[derive(Debug)]
pub struct Built {
    /// The flags and segments that could be used.
    pub snapshot: Snapshot,
    /// One error per row left out (the flag or `segment KEY` named, with the reason).
    pub skipped: Vec<Diagnostic>,
    /// Whether the flags differ from those of the previous build (always, for the first).
    pub changed: bool,
    /// How many flags were compiled: every flag for a full build, those the changes required
    /// for a later one.
    pub compiled_flags: usize,
}

impl Rows {
    /// Replaces every row; the next build compiles everything.
    pub fn replace_all(&mut self, rows: Vec<Row>) {
        self.flags.clear();
        self.segments.clear();
        self.unreadable.clear();
        self.pending.clear();
        for r in rows {
            self.put(r);
        }
        self.full = true;
    }

    /// Sets one item: `Some(row)` for its current state, `None` when it no longer exists.
    /// Returns whether that changed anything (a notice about an item as it already was,
    /// forged or repeated, changes nothing).
    pub fn apply(&mut self, kind: ItemKind, key: &str, row: Option<Row>) -> bool {
        let current = match kind {
            ItemKind::Flag => self.flags.get(key).map(|e| &e.row),
            ItemKind::Segment => self.segments.get(key).map(|e| &e.row),
        };
        let changed = match row {
            Some(r) if current == Some(&r) => false,
            Some(r) => {
                self.put(r);
                true
            }
            None => {
                self.unreadable.remove(&(kind, key.to_owned()));
                match kind {
                    ItemKind::Flag => self.flags.remove(key).is_some(),
                    ItemKind::Segment => self.segments.remove(key).is_some(),
                }
            }
        };
        if changed {
            self.pending.insert((kind, key.to_owned()));
        }
        changed
    }

    fn put(&mut self, row: Row) {
        let id = (row.kind, row.key.clone());
        let error = match row.kind {
            ItemKind::Flag => {
                let parsed = flag_from_row(&row).map(Arc::new);
                let error = parsed.as_ref().err().cloned();
                self.flags.insert(row.key.clone(), Entry { row, parsed });
                error
            }
            ItemKind::Segment => {
                let parsed = segment_from_row(&row).map(Arc::new);
                let error = parsed.as_ref().err().cloned();
                self.segments.insert(row.key.clone(), Entry { row, parsed });
                error
            }
        };
        match error {
            Some(e) => self.unreadable.insert(id, e),
            None => self.unreadable.remove(&id),
        };
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
    ///
    /// The first build, and the first after [`Rows::replace_all`], compiles every row; a later
    /// one compiles only what the rows applied since require, and its result is the same.
    pub fn build(&mut self, origin: &str) -> Built {
        let pending = std::mem::take(&mut self.pending);
        let full = std::mem::take(&mut self.full);
        let (last, changed, compiled_flags) = match self.last.take() {
            Some(last) if !full => self.incremental(last, &pending),
            previous => {
                let (last, compiled) = self.full();
                let changed = previous.is_none_or(|p| {
                    !same_document(p.published.document(), last.published.document())
                });
                (last, changed, compiled)
            }
        };
        let skipped = self.skipped(origin, &last);
        let snapshot = last.published.clone();
        self.last = Some(last);
        Built {
            snapshot,
            skipped,
            changed,
            compiled_flags,
        }
    }

    /// Every readable row compiled; the flags that do not compile are left out (removing a
    /// flag never breaks another one, a missing prerequisite fails at evaluation, so one pass
    /// finds them all).
    fn full(&self) -> (Last, usize) {
        let mut doc = FlagDocument::default();
        for (k, e) in &self.segments {
            if let Ok(s) = &e.parsed {
                doc.segments.insert(k.clone(), s.clone());
            }
        }
        for (k, e) in &self.flags {
            if let Ok(f) = &e.parsed {
                doc.flags.insert(k.clone(), f.clone());
            }
        }
        let readable = compile(doc.clone());
        let broken: BTreeSet<String> = malformed(&readable);
        for key in &broken {
            doc.flags.remove(key);
        }
        let published = if broken.is_empty() {
            readable.clone()
        } else {
            compile(doc)
        };
        let compiled = readable.len()
            + if broken.is_empty() {
                0
            } else {
                published.len()
            };
        let last = Last {
            readable,
            published,
            broken,
        };
        (last, compiled)
    }

    /// The last build with the `pending` items changed: the readable snapshot gets their new
    /// state, the published one that too, except for flags that do not compile (those
    /// changed, and those that start or stop not compiling).
    fn incremental(
        &self,
        last: Last,
        pending: &BTreeSet<(ItemKind, String)>,
    ) -> (Last, bool, usize) {
        let state = |kind: ItemKind, key: &str| -> Change {
            match kind {
                ItemKind::Flag => Change::Flag(
                    key.to_owned(),
                    self.flags
                        .get(key)
                        .and_then(|e| e.parsed.as_ref().ok())
                        .cloned(),
                ),
                ItemKind::Segment => Change::Segment(
                    key.to_owned(),
                    self.segments
                        .get(key)
                        .and_then(|e| e.parsed.as_ref().ok())
                        .cloned(),
                ),
            }
        };
        let readable = recompile(
            &last.readable,
            pending.iter().map(|(k, key)| state(*k, key)),
        );
        let broken = malformed(&readable.snapshot);
        // The flags whose published state may differ: those changed, and those that start or
        // stop being left out.
        let mut flags: BTreeSet<&str> = (pending.iter())
            .filter(|(k, _)| *k == ItemKind::Flag)
            .map(|(_, key)| key.as_str())
            .collect();
        flags.extend(
            broken
                .symmetric_difference(&last.broken)
                .map(String::as_str),
        );
        let changes = (flags.into_iter())
            .map(|key| match broken.contains(key) {
                true => Change::Flag(key.to_owned(), None),
                false => state(ItemKind::Flag, key),
            })
            .chain(
                (pending.iter())
                    .filter(|(k, _)| *k == ItemKind::Segment)
                    .map(|(k, key)| state(*k, key)),
            );
        // Without flags left out, before and after, the published snapshot is the readable one.
        let published = if broken.is_empty() && last.broken.is_empty() {
            drop(changes);
            feature_core::Recompiled {
                snapshot: readable.snapshot.clone(),
                compiled_flags: 0,
                compiled_segments: 0,
            }
        } else {
            recompile(&last.published, changes)
        };
        let changed = !Arc::ptr_eq(published.snapshot.document(), last.published.document());
        let compiled = readable.compiled_flags + published.compiled_flags;
        let next = Last {
            readable: readable.snapshot,
            published: published.snapshot,
            broken,
        };
        (next, changed, compiled)
    }

    /// One error per row left out: rows that do not read, and flags that do not compile.
    fn skipped(&self, origin: &str, last: &Last) -> Vec<Diagnostic> {
        let mut skipped: Vec<Diagnostic> = (self.unreadable.iter())
            .map(|((kind, key), msg)| bad(origin, *kind, key, msg))
            .collect();
        if !last.broken.is_empty() {
            let mut why: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for d in last.readable.diagnostics() {
                if d.severity == Severity::Error && last.broken.contains(&d.flag) {
                    (why.entry(d.flag.as_str()).or_default()).push(format!(
                        "{} (at {})",
                        d.message,
                        d.path_string()
                    ));
                }
            }
            for key in &last.broken {
                let why = why
                    .get(key.as_str())
                    .map(|w| w.join("; "))
                    .unwrap_or_default();
                skipped.push(bad(origin, ItemKind::Flag, key, &why));
            }
        }
        skipped.sort_by(|a, b| a.flag.cmp(&b.flag));
        skipped
    }
}

/// Whether two documents hold the same items (an item both share is the same).
fn same_document(a: &FlagDocument, b: &FlagDocument) -> bool {
    fn same_items<T: PartialEq>(
        a: &SortedMap<String, Arc<T>>,
        b: &SortedMap<String, Arc<T>>,
    ) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|((ka, va), (kb, vb))| ka == kb && (Arc::ptr_eq(va, vb) || va == vb))
    }
    same_items(&a.flags, &b.flags) && same_items(&a.segments, &b.segments)
}

/// The keys of the flags of `snapshot` that do not compile.
fn malformed(snapshot: &Snapshot) -> BTreeSet<String> {
    snapshot
        .flags()
        .filter(|f| f.is_malformed())
        .map(|f| f.key().to_owned())
        .collect()
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

    /// The usable part of a build, to compare: the document, the skipped rows, and the
    /// evaluation of every flag for a few contexts.
    fn outcome(built: &Built) -> (FlagDocument, Vec<String>, Vec<String>) {
        let ctxs = ["a", "b", "in"].map(feature_core::Context::new);
        let evals = (built.snapshot.flags())
            .flat_map(|f| {
                ctxs.iter().map(|c| {
                    let d = built.snapshot.evaluate(f.key(), c);
                    format!("{}: {:?}", f.key(), d.to_evaluation(f.key(), Value::Null))
                })
            })
            .collect();
        let skipped = built.skipped.iter().map(|d| d.to_string()).collect();
        ((**built.snapshot.document()).clone(), skipped, evals)
    }

    #[test]
    fn a_build_after_changes_is_the_full_build_and_compiles_only_what_changed() {
        let flag = |key: &str, def: Value| row(ItemKind::Flag, key, def);
        let mut rows = Rows::default();
        let mut all = vec![
            flag("a", json!({"default": true})),
            flag(
                "b",
                json!({"prerequisites": [{"key": "a", "variation": 1}],
                "fallthrough": {"variation": 1}}),
            ),
            flag(
                "c",
                json!({"rules": [{"clauses": [{"attribute": "", "operator": "segmentMatch",
                "values": ["s"]}], "variation": 1}], "fallthrough": {"variation": 0}}),
            ),
            row(ItemKind::Segment, "s", json!({"included": ["in"]})),
        ];
        for i in 0..50 {
            all.push(flag(&format!("z{i:02}"), json!({"default": i % 2 == 0})));
        }
        rows.replace_all(all.clone());
        let first = rows.build("x");
        assert_eq!(first.compiled_flags, 53);
        let steps: Vec<(ItemKind, &str, Option<Value>, usize)> = vec![
            // One flag edited: one compiled.
            (ItemKind::Flag, "a", Some(json!({"default": false})), 1),
            // A flag that does not compile is left out (compiled once readable, not published).
            (
                ItemKind::Flag,
                "b",
                Some(json!({"type": "bool", "variants": [{"value": "x"}]})),
                1,
            ),
            // One that does not read.
            (ItemKind::Flag, "c", Some(json!({"defualt": 1})), 0),
            // The segment changed, then removed; a new flag, then a removed one.
            (ItemKind::Segment, "s", Some(json!({"included": ["b"]})), 0),
            (ItemKind::Flag, "b", Some(json!({"default": true})), 1),
            (ItemKind::Segment, "s", None, 0),
            (
                ItemKind::Flag,
                "new",
                Some(json!({"prerequisites": [{"key": "b", "variation": 1}]})),
                1,
            ),
            (ItemKind::Flag, "a", None, 1),
        ];
        let mut previous = first.snapshot;
        for (kind, key, def, compiled) in steps {
            let r = def.map(|d| row(kind, key, d));
            all.retain(|x| !(x.kind == kind && x.key == key));
            all.extend(r.clone());
            assert!(rows.apply(kind, key, r));
            let built = rows.build("x");
            let mut fresh = Rows::default();
            fresh.replace_all(all.clone());
            let full = fresh.build("x");
            assert_eq!(outcome(&built), outcome(&full), "{kind} {key}");
            assert!(built.changed);
            // Readable and published snapshots both count what they compiled.
            assert!(
                built.compiled_flags <= 2 * compiled + 1,
                "{kind} {key}: {}",
                built.compiled_flags
            );
            if compiled <= 1 {
                assert!(built.snapshot.shares_flag(&previous, "z25"), "{kind} {key}");
            }
            previous = built.snapshot;
        }
        // Nothing applied: nothing changed, nothing compiled.
        let again = rows.build("x");
        assert!(!again.changed);
        assert_eq!(again.compiled_flags, 0);
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
