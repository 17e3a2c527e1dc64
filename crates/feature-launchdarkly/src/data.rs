//! The data set as LaunchDarkly sends it: flags and segments as JSON, each with its version,
//! and the rules for applying `put`, `patch` and `delete`.

use crate::error::LaunchDarklyError;
use crate::meta::{FlagEventMeta, FlagMetaMap};
use feature_core::launchdarkly::{import_flag, import_segment};
use feature_core::{Diagnostic, FlagDocument, PathSeg, Severity};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Flags or segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Flag,
    Segment,
}

impl Kind {
    fn plural(self) -> &'static str {
        match self {
            Kind::Flag => "flags",
            Kind::Segment => "segments",
        }
    }
}

/// One flag or segment: its JSON, or `None` once deleted (a tombstone keeps the version so
/// that a late, older patch cannot bring it back).
#[derive(Debug, Clone, PartialEq)]
struct Item {
    version: u64,
    value: Option<Value>,
}

impl Item {
    fn of(value: Value) -> Item {
        Item {
            version: version_of(&value),
            value: Some(value),
        }
    }
}

fn version_of(v: &Value) -> u64 {
    v.get("version").and_then(Value::as_u64).unwrap_or(0)
}

/// Every flag and segment held, as LaunchDarkly JSON.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct DataSet {
    flags: BTreeMap<String, Item>,
    segments: BTreeMap<String, Item>,
}

/// A document built from the data set, with the items that could not be imported.
pub(crate) struct Built {
    pub doc: FlagDocument,
    pub skipped: Vec<Diagnostic>,
    /// The event settings of every flag imported.
    pub meta: FlagMetaMap,
    /// The big segments the event settings were worked out with (see
    /// [`DataSet::item_change`]).
    pub big: BTreeMap<String, String>,
}

/// One item of the data set imported again after a `patch` or `delete`.
pub(crate) struct ItemBuilt {
    /// The change to the document.
    pub change: feature_core::Change,
    /// The flag's event settings; `None` for a segment, or a flag deleted or left out.
    pub meta: Option<FlagEventMeta>,
    /// Why the item is left out, when it is.
    pub skipped: Option<Diagnostic>,
}

impl DataSet {
    /// A full data set: `{"flags": {KEY: flag}, "segments": {KEY: segment}}`.
    pub(crate) fn from_payload(
        payload: &Value,
        what: &'static str,
    ) -> Result<DataSet, LaunchDarklyError> {
        let obj = payload.as_object().ok_or(LaunchDarklyError::Malformed {
            what,
            problem: "the data set is not a JSON object",
        })?;
        let items = |name: &str| -> Result<BTreeMap<String, Item>, LaunchDarklyError> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(BTreeMap::new()),
                Some(Value::Object(m)) => Ok(m
                    .iter()
                    .map(|(k, v)| (k.clone(), Item::of(v.clone())))
                    .collect()),
                Some(_) => Err(LaunchDarklyError::Malformed {
                    what,
                    problem: "`flags` or `segments` is not a JSON object",
                }),
            }
        };
        Ok(DataSet {
            flags: items("flags")?,
            segments: items("segments")?,
        })
    }

    fn map(&mut self, kind: Kind) -> &mut BTreeMap<String, Item> {
        match kind {
            Kind::Flag => &mut self.flags,
            Kind::Segment => &mut self.segments,
        }
    }

    /// Adds or replaces an item when its version is newer than the one held; whether it did.
    pub(crate) fn upsert(&mut self, kind: Kind, key: &str, value: Value) -> bool {
        let item = Item::of(value);
        let map = self.map(kind);
        if map
            .get(key)
            .is_some_and(|held| held.version >= item.version)
        {
            return false;
        }
        map.insert(key.to_owned(), item);
        true
    }

    /// Deletes an item when `version` is newer than the one held; whether it did.
    pub(crate) fn delete(&mut self, kind: Kind, key: &str, version: u64) -> bool {
        let map = self.map(kind);
        if map.get(key).is_some_and(|held| held.version >= version) {
            return false;
        }
        map.insert(
            key.to_owned(),
            Item {
                version,
                value: None,
            },
        );
        true
    }

    /// The version held for an item (deleted items keep theirs).
    #[cfg(test)]
    fn version(&self, kind: Kind, key: &str) -> Option<u64> {
        match kind {
            Kind::Flag => self.flags.get(key),
            Kind::Segment => self.segments.get(key),
        }
        .map(|i| i.version)
    }

    /// The big (unbounded) segments, and the segments whose rules reference one (followed
    /// to a fixpoint), each with the context kind of the big segment (`user` by default).
    fn big_segments(&self) -> BTreeMap<String, String> {
        let mut big: BTreeMap<String, String> = BTreeMap::new();
        let live: Vec<(&String, &Value)> = self
            .segments
            .iter()
            .filter_map(|(k, i)| i.value.as_ref().map(|v| (k, v)))
            .collect();
        for (k, v) in &live {
            if v.get("unbounded").and_then(Value::as_bool) == Some(true) {
                let kind = v
                    .get("unboundedContextKind")
                    .and_then(Value::as_str)
                    .unwrap_or("user");
                big.insert((*k).clone(), kind.to_owned());
            }
        }
        // Each pass adds at least one segment or stops: at most as many passes as segments.
        for _ in 0..live.len() {
            let mut added = false;
            for (k, v) in &live {
                if big.contains_key(*k) {
                    continue;
                }
                let found = v
                    .get("rules")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .flat_map(crate::meta::segment_refs)
                    .find_map(|s| big.get(s).cloned());
                if let Some(kind) = found {
                    big.insert((*k).clone(), kind);
                    added = true;
                }
            }
            if !added {
                break;
            }
        }
        big
    }

    /// Imports every live item; an item that cannot be imported is left out and reported.
    pub(crate) fn build(&self, origin: &str) -> Built {
        let mut doc = FlagDocument::default();
        let mut skipped = Vec::new();
        let mut meta = FlagMetaMap::default();
        let live = |m: &'_ BTreeMap<String, Item>| -> Vec<(String, Value)> {
            m.iter()
                .filter_map(|(k, i)| i.value.clone().map(|v| (k.clone(), v)))
                .collect()
        };
        let big = self.big_segments();
        for (key, v) in live(&self.flags) {
            match import_flag(&key, &v) {
                Ok(f) => {
                    let mut m = FlagEventMeta::of(&v);
                    m.note_big_segments(&v, &big);
                    meta.insert(key.as_str().into(), m);
                    doc.flags.insert(key, f.into());
                }
                Err(e) => skipped.push(diagnostic(origin, Kind::Flag, &key, &e.to_string())),
            }
        }
        for (key, v) in live(&self.segments) {
            match import_segment(&key, &v) {
                Ok(s) => {
                    doc.segments.insert(key, s.into());
                }
                Err(e) => skipped.push(diagnostic(origin, Kind::Segment, &key, &e.to_string())),
            }
        }
        Built {
            doc,
            skipped,
            meta,
            big,
        }
    }

    /// Item `key` imported again, as [`DataSet::build`] imports it, when only it changed
    /// since a build whose big segments were `big`. `None` when a single change is not
    /// enough: a segment whose change alters which segments are big changes the event
    /// settings of the flags that use them, so the whole set is built again.
    pub(crate) fn item_change(
        &self,
        kind: Kind,
        key: &str,
        origin: &str,
        big: &BTreeMap<String, String>,
    ) -> Option<ItemBuilt> {
        let value = match kind {
            Kind::Flag => self.flags.get(key),
            Kind::Segment => self.segments.get(key),
        }
        .and_then(|i| i.value.as_ref());
        let left_out =
            |e: &dyn std::fmt::Display| Some(diagnostic(origin, kind, key, &e.to_string()));
        let mut built = ItemBuilt {
            change: match kind {
                Kind::Flag => feature_core::Change::Flag(key.to_owned(), None),
                Kind::Segment => feature_core::Change::Segment(key.to_owned(), None),
            },
            meta: None,
            skipped: None,
        };
        match kind {
            Kind::Flag => {
                if let Some(v) = value {
                    match import_flag(key, v) {
                        Ok(f) => {
                            let mut m = FlagEventMeta::of(v);
                            m.note_big_segments(v, big);
                            built.meta = Some(m);
                            built.change =
                                feature_core::Change::Flag(key.to_owned(), Some(f.into()));
                        }
                        Err(e) => built.skipped = left_out(&e),
                    }
                }
            }
            Kind::Segment => {
                if self.big_segments() != *big {
                    return None;
                }
                if let Some(v) = value {
                    match import_segment(key, v) {
                        Ok(seg) => {
                            built.change =
                                feature_core::Change::Segment(key.to_owned(), Some(seg.into()))
                        }
                        Err(e) => built.skipped = left_out(&e),
                    }
                }
            }
        }
        Some(built)
    }
}

impl ItemBuilt {
    /// The items left out and, for a flag, the event settings once this change of item
    /// `key` is made to those of the build before it.
    pub(crate) fn apply(
        &self,
        kind: Kind,
        key: &str,
        skipped: &[Diagnostic],
        meta: &FlagMetaMap,
    ) -> (Vec<Diagnostic>, Option<FlagMetaMap>) {
        let this = |d: &Diagnostic| {
            d.path.len() == 2
                && d.path[0] == PathSeg::key(kind.plural())
                && d.path[1] == PathSeg::key(key)
        };
        let mut skipped: Vec<Diagnostic> = skipped.iter().filter(|d| !this(d)).cloned().collect();
        skipped.extend(self.skipped.clone());
        let meta = (kind == Kind::Flag).then(|| {
            let mut meta = meta.clone();
            match &self.meta {
                Some(m) => {
                    meta.insert(key.into(), m.clone());
                }
                None => {
                    meta.remove(key);
                }
            }
            meta
        });
        (skipped, meta)
    }
}

fn diagnostic(origin: &str, kind: Kind, key: &str, msg: &str) -> Diagnostic {
    Diagnostic {
        file: Some(origin.to_owned()),
        line: None,
        column: None,
        flag: match kind {
            Kind::Flag => key.to_owned(),
            Kind::Segment => format!("segment {key}"),
        },
        path: vec![PathSeg::key(kind.plural()), PathSeg::key(key)],
        severity: Severity::Error,
        message: format!("left out: {msg}"),
    }
}

/// The item a `patch` or `delete` path names: `/flags/KEY` or `/segments/KEY`.
pub(crate) fn parse_path(path: &str) -> Option<(Kind, &str)> {
    let (kind, key) = if let Some(k) = path.strip_prefix("/flags/") {
        (Kind::Flag, k)
    } else if let Some(k) = path.strip_prefix("/segments/") {
        (Kind::Segment, k)
    } else {
        return None;
    };
    (!key.is_empty()).then_some((kind, key))
}

/// A change the stream announced.
#[derive(Debug)]
pub(crate) enum Change {
    /// Replace everything.
    Put(DataSet),
    /// Add or replace one item.
    Patch(Kind, String, Value),
    /// Delete one item.
    Delete(Kind, String, u64),
    /// An event or path this provider does not use.
    Ignored,
}

fn object<'a>(
    v: &'a Value,
    what: &'static str,
) -> Result<&'a Map<String, Value>, LaunchDarklyError> {
    v.as_object().ok_or(LaunchDarklyError::Malformed {
        what,
        problem: "not a JSON object",
    })
}

/// Reads one stream event (`put`, `patch`, `delete`; others are ignored).
pub(crate) fn read_event(event: &str, data: &str) -> Result<Change, LaunchDarklyError> {
    let what = match event {
        "put" => "put event",
        "patch" => "patch event",
        "delete" => "delete event",
        _ => return Ok(Change::Ignored),
    };
    let v: Value =
        serde_json::from_str(data).map_err(|source| LaunchDarklyError::Json { what, source })?;
    let o = object(&v, what)?;
    let path = o.get("path").and_then(Value::as_str);
    match event {
        "put" => {
            if path.is_some_and(|p| p != "/") {
                return Ok(Change::Ignored);
            }
            let data = o.get("data").ok_or(LaunchDarklyError::Malformed {
                what,
                problem: "no `data`",
            })?;
            Ok(Change::Put(DataSet::from_payload(data, what)?))
        }
        "patch" => {
            let Some((kind, key)) = path.and_then(parse_path) else {
                return Ok(Change::Ignored);
            };
            let data = o.get("data").ok_or(LaunchDarklyError::Malformed {
                what,
                problem: "no `data`",
            })?;
            Ok(Change::Patch(kind, key.to_owned(), data.clone()))
        }
        _ => {
            let Some((kind, key)) = path.and_then(parse_path) else {
                return Ok(Change::Ignored);
            };
            let version =
                o.get("version")
                    .and_then(Value::as_u64)
                    .ok_or(LaunchDarklyError::Malformed {
                        what,
                        problem: "no numeric `version`",
                    })?;
            Ok(Change::Delete(kind, key.to_owned(), version))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_decide_patches_and_deletes() {
        let mut d = DataSet::from_payload(
            &json!({"flags": {"f": {"key": "f", "version": 3}}, "segments": {}}),
            "test",
        )
        .unwrap();
        assert!(!d.upsert(Kind::Flag, "f", json!({"version": 3})));
        assert!(!d.upsert(Kind::Flag, "f", json!({"version": 2})));
        assert!(d.upsert(Kind::Flag, "f", json!({"version": 4})));
        assert!(!d.delete(Kind::Flag, "f", 4));
        assert!(d.delete(Kind::Flag, "f", 5));
        assert_eq!(d.version(Kind::Flag, "f"), Some(5));
        // The tombstone keeps an older patch out.
        assert!(!d.upsert(Kind::Flag, "f", json!({"version": 5})));
        assert!(d.build("t").doc.flags.is_empty());
        assert!(d.upsert(Kind::Flag, "f", json!({"version": 6})));
        // A delete of an unknown item is remembered too.
        assert!(d.delete(Kind::Segment, "s", 2));
        assert!(!d.upsert(Kind::Segment, "s", json!({"version": 1})));
    }

    /// A LaunchDarkly flag serving `true` to the members of segment `seg`.
    fn flag_in(version: u64, seg: &str) -> Value {
        json!({"version": version, "on": true, "variations": [false, true], "offVariation": 0,
               "fallthrough": {"variation": 0}, "salt": "s", "trackEvents": version.is_multiple_of(2),
               "rules": [{"id": "r", "variation": 1, "clauses": [
                   {"attribute": "key", "op": "segmentMatch", "values": [seg], "negate": false}]}]})
    }

    fn segment(version: u64, included: &[&str]) -> Value {
        json!({"version": version, "included": included, "excluded": [], "rules": [], "salt": "t"})
    }

    /// A `patch` or `delete` compiled from the last snapshot with only its item imported
    /// again gives what building and compiling the whole data set gives: the document, every
    /// evaluation, the items left out and the event settings; a change of which segments are
    /// big asks for the whole build.
    #[test]
    fn one_item_changed_builds_what_the_whole_set_builds() {
        let mut data = DataSet::from_payload(
            &json!({
                "flags": {"a": flag_in(1, "s1"), "b": flag_in(1, "s2"), "c": flag_in(1, "big")},
                "segments": {"s1": segment(1, &["u1"]), "s2": segment(1, &["u2"]),
                             "big": {"version": 1, "unbounded": true, "included": []}}
            }),
            "test",
        )
        .unwrap();
        let first = data.build("test");
        let mut snapshot = feature_core::compile(first.doc);
        let (mut skipped, mut meta, mut big) = (first.skipped, first.meta, first.big);
        assert!(!big.is_empty());
        let steps: Vec<(Kind, &str, Option<Value>)> = vec![
            (Kind::Flag, "a", Some(flag_in(2, "s2"))),
            (Kind::Segment, "s2", Some(segment(2, &["u1", "u3"]))),
            (Kind::Flag, "b", None),
            (Kind::Flag, "new", Some(json!(42))),
            (Kind::Flag, "new", Some(flag_in(2, "s1"))),
            (Kind::Segment, "s9", Some(json!([]))),
            (Kind::Segment, "s1", None),
            (Kind::Flag, "c", Some(flag_in(2, "big"))),
            (Kind::Segment, "big", Some(segment(2, &["u1"]))),
            (Kind::Flag, "a", Some(flag_in(4, "big"))),
        ];
        let (mut incremental, mut left_out) = (0, 0);
        for (version, (kind, key, value)) in (10u64..).zip(steps) {
            let applied = match value {
                Some(v) => data.upsert(kind, key, v),
                None => data.delete(kind, key, version),
            };
            assert!(applied, "{key}");
            let whole = data.build("test");
            let whole_snapshot = feature_core::compile(whole.doc.clone());
            match data.item_change(kind, key, "test", &big) {
                Some(item) => {
                    let (s, m) = item.apply(kind, key, &skipped, &meta);
                    snapshot = feature_core::recompile(&snapshot, [item.change]).snapshot;
                    skipped = s;
                    if let Some(m) = m {
                        meta = m;
                    }
                    incremental += 1;
                }
                None => {
                    assert_eq!(
                        key, "big",
                        "only the big segment's change needs the whole build"
                    );
                    snapshot = whole_snapshot.clone();
                    (skipped, meta, big) = (whole.skipped.clone(), whole.meta.clone(), whole.big);
                }
            }
            assert_eq!(
                snapshot.document(),
                whole_snapshot.document(),
                "after {key}"
            );
            let names = |d: &[Diagnostic]| {
                let mut n: Vec<String> = d.iter().map(ToString::to_string).collect();
                n.sort();
                n
            };
            assert_eq!(names(&skipped), names(&whole.skipped), "after {key}");
            left_out += whole.skipped.len();
            assert_eq!(meta, whole.meta, "after {key}");
            for flag in ["a", "b", "c", "new"] {
                for user in ["u1", "u2", "u3", "u4"] {
                    let ctx = feature_core::Context::new(user);
                    assert_eq!(
                        format!("{:?}", snapshot.evaluate(flag, &ctx)),
                        format!("{:?}", whole_snapshot.evaluate(flag, &ctx)),
                        "{flag} for {user} after {key}"
                    );
                }
            }
        }
        assert_eq!(incremental, 9);
        assert!(left_out >= 3, "the steps leave items out");
    }

    #[test]
    fn items_that_cannot_be_imported_are_reported_and_left_out() {
        let d = DataSet::from_payload(
            &json!({"flags": {"ok": {"on": true, "variations": [true]}, "bad": 42},
                    "segments": {"s": [], "t": {"included": ["u"]}}}),
            "test",
        )
        .unwrap();
        let b = d.build("launchdarkly");
        assert_eq!(b.doc.flags.keys().collect::<Vec<_>>(), ["ok"]);
        assert_eq!(b.meta.keys().collect::<Vec<_>>(), ["ok"]);
        assert_eq!(b.doc.segments.keys().collect::<Vec<_>>(), ["t"]);
        let keys: Vec<&str> = b.skipped.iter().map(|d| d.flag.as_str()).collect();
        assert_eq!(keys, ["bad", "segment s"]);
    }

    #[test]
    fn events_are_read() {
        let put = read_event(
            "put",
            r#"{"path": "/", "data": {"flags": {"a": {"version": 1}}}}"#,
        )
        .unwrap();
        assert!(matches!(put, Change::Put(d) if d.flags.len() == 1 && d.segments.is_empty()));
        let patch = read_event(
            "patch",
            r#"{"path": "/segments/s", "data": {"version": 2}}"#,
        );
        assert!(matches!(patch, Ok(Change::Patch(Kind::Segment, k, _)) if k == "s"));
        let del = read_event("delete", r#"{"path": "/flags/a", "version": 9}"#);
        assert!(matches!(del, Ok(Change::Delete(Kind::Flag, k, 9)) if k == "a"));
        assert!(matches!(
            read_event("patch", r#"{"path": "/other/x", "data": {}}"#),
            Ok(Change::Ignored)
        ));
        assert!(matches!(
            read_event("message", "not json"),
            Ok(Change::Ignored)
        ));
        assert!(matches!(
            read_event("put", "{"),
            Err(LaunchDarklyError::Json { .. })
        ));
        assert!(matches!(
            read_event("put", r#"{"path": "/"}"#),
            Err(LaunchDarklyError::Malformed { .. })
        ));
        assert!(matches!(
            read_event("put", r#"{"data": {"flags": []}}"#),
            Err(LaunchDarklyError::Malformed { .. })
        ));
        assert!(matches!(
            read_event("delete", r#"{"path": "/flags/a"}"#),
            Err(LaunchDarklyError::Malformed { .. })
        ));
        assert!(parse_path("/flags/").is_none());
    }
}
