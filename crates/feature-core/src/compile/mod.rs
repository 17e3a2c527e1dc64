//! Compiling: a [`FlagDocument`] becomes an immutable [`Snapshot`] once, when flags load.
//!
//! Everything that can be decided ahead of time is: regular expressions, versions, dates and
//! numbers are parsed, `in` lists become sets, attribute references are resolved, prerequisite
//! and segment keys become indexes, and the bucketing hash prefix is prepared. A problem is
//! recorded as a [`Diagnostic`] with the path of the offending node; the part of the flag it
//! affects evaluates to the caller's default with `ERROR`/`MALFORMED_FLAG`, and every other flag
//! keeps working.

mod clause;
mod cost;
mod flag;
mod incremental;
mod segment;

pub(crate) use cost::Kept;
pub(crate) use incremental::Referrers;
pub use incremental::{recompile, Change, Recompiled};

use crate::attr::AttrPath;
use crate::diagnostic::{Diagnostic, PathSeg, Severity};
use crate::model::FlagDocument;
use crate::program::{CompiledFlag, Flags, KeyTable, Parts, Segment, Snapshot};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Compiles a flag document into a snapshot. Never fails: problems become diagnostics.
pub fn compile(doc: FlagDocument) -> Snapshot {
    compile_with(Arc::new(doc), Vec::new())
}

/// Compiles a shared document, keeping diagnostics found earlier (e.g. while parsing).
pub fn compile_with(doc: Arc<FlagDocument>, base: Vec<Diagnostic>) -> Snapshot {
    let unreadable = unreadable(&base, &doc);
    let mut keys: Vec<&str> = doc
        .flags
        .keys()
        .map(String::as_str)
        .chain(unreadable.iter().map(String::as_str))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let seg_keys: Vec<&str> = doc.segments.keys().map(String::as_str).collect();
    let mut compiler = Compiler::new(&seg_keys, &keys);
    let (segments, segment_diagnostics): (Vec<_>, Vec<_>) = doc
        .segments
        .iter()
        .map(|(k, s)| {
            let (seg, d) = compiler.item(|c| c.segment(k, s));
            (Arc::new(seg), d)
        })
        .unzip();
    let (flags, flag_diagnostics): (Vec<Arc<CompiledFlag>>, Vec<_>) = keys
        .iter()
        .map(|k| {
            let (f, d) = compiler.item(|c| c.flag_or_broken(k, &doc));
            (Arc::new(f), d)
        })
        .unzip();
    drop(compiler);
    drop(seg_keys);
    drop(keys);
    let parts = Parts {
        base,
        segment_diagnostics,
        flag_diagnostics,
        refused: BTreeMap::new(),
        kept: Kept::default(),
        referrers: Referrers::default(),
    };
    finish(doc, flags.into(), None, segments, parts, None, Bound::Whole)
}

/// Keys of flags that diagnostics say could not be read and that the document does not have:
/// they stay visible, evaluating to `MALFORMED_FLAG`.
fn unreadable(base: &[Diagnostic], doc: &FlagDocument) -> Vec<String> {
    base.iter()
        .filter(|d| d.severity == Severity::Error && d.path.first() == Some(&PathSeg::key("flags")))
        .filter_map(|d| match d.path.get(1) {
            Some(PathSeg::Key(k)) if !doc.flags.contains_key(k) => Some(k.clone()),
            _ => None,
        })
        .collect()
}

/// How [`finish`] comes by the cost bound.
enum Bound {
    /// Worked out over every item.
    Whole,
    /// Worked out by an incremental compile: what it keeps, the flags over budget by position
    /// (in order) with their diagnostics, and the references by key.
    Known {
        kept: Kept,
        refused: Vec<(usize, Diagnostic)>,
        referrers: Referrers,
    },
}

/// The snapshot of compiled items: the cost bound refuses the flags whose worst case is over
/// the document's budget, and the diagnostics are put together in document order (those given,
/// segments, flags, then the cost bound's).
fn finish(
    doc: Arc<FlagDocument>,
    compiled: Flags,
    index: Option<KeyTable>,
    segments: Vec<Arc<Segment>>,
    mut parts: Parts,
    from: Option<(u64, Arc<[String]>)>,
    bound: Bound,
) -> Snapshot {
    let (refused, kept, referrers) = match bound {
        Bound::Whole => {
            let seg_keys: Vec<&str> = doc.segments.keys().map(String::as_str).collect();
            let (kept, refused) = cost::refuse_costly(&compiled, &segments, &seg_keys);
            (refused, kept, Referrers::of(&doc))
        }
        Bound::Known {
            kept,
            refused,
            referrers,
        } => (refused, kept, referrers),
    };
    parts.kept = kept;
    parts.referrers = referrers;
    let mut bound = Vec::with_capacity(refused.len());
    let mut malformed = Vec::with_capacity(refused.len());
    parts.refused.clear();
    for (fi, diagnostic) in refused {
        let Some(before) = compiled.shared(fi) else {
            continue;
        };
        let mut f = CompiledFlag::clone(before);
        f.broken = true;
        f.constant = None;
        malformed.push((fi, Arc::new(f)));
        parts
            .refused
            .insert(before.key.clone(), (before.clone(), diagnostic.clone()));
        bound.push(diagnostic);
    }
    let flags = compiled.replaced(malformed);
    let own = (parts.segment_diagnostics.iter())
        .chain(&parts.flag_diagnostics)
        .flatten()
        .flat_map(|d| d.iter().cloned());
    let diagnostics: Vec<Diagnostic> = (parts.base.iter().cloned())
        .chain(own)
        .chain(bound)
        .collect();
    Snapshot::new(flags, index, segments, diagnostics, doc, parts, from)
}

/// The flag keys a compile resolves prerequisites against.
#[derive(Clone, Copy)]
enum FlagKeys<'a> {
    /// Sorted keys.
    Sorted(&'a [&'a str]),
    /// A lookup (an incremental compile, from the previous snapshot's positions).
    Lookup(&'a dyn Fn(&str) -> Option<u32>),
}

/// Compiles one document: the keys it resolves references against, and where in the document
/// it is.
struct Compiler<'a> {
    diags: Vec<Diagnostic>,
    /// Segment keys, sorted: a reference is a position in it.
    segs: &'a [&'a str],
    /// Flag keys: a reference is a position among them.
    flags: FlagKeys<'a>,
    path: Vec<PathSeg>,
    flag: String,
    broken: bool,
}

impl<'a> Compiler<'a> {
    fn new(segs: &'a [&'a str], flags: &'a [&'a str]) -> Self {
        Compiler {
            diags: Vec::new(),
            segs,
            flags: FlagKeys::Sorted(flags),
            path: Vec::new(),
            flag: String::new(),
            broken: false,
        }
    }

    /// A compiler that finds the position of a flag key with `lookup`.
    fn with_flag_lookup(segs: &'a [&'a str], lookup: &'a dyn Fn(&str) -> Option<u32>) -> Self {
        let mut c = Compiler::new(segs, &[]);
        c.flags = FlagKeys::Lookup(lookup);
        c
    }

    /// Compiles one item with `f`, returning it with its diagnostics.
    fn item<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> (T, Option<Arc<[Diagnostic]>>) {
        let item = f(self);
        let diags = if self.diags.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.diags).into())
        };
        (item, diags)
    }

    /// The position of segment `key`.
    fn segment_position(&self, key: &str) -> Option<u32> {
        self.segs.binary_search(&key).ok().map(|i| i as u32)
    }

    /// The position of flag `key`.
    fn flag_position(&self, key: &str) -> Option<u32> {
        match self.flags {
            FlagKeys::Sorted(keys) => keys.binary_search(&key).ok().map(|i| i as u32),
            FlagKeys::Lookup(lookup) => lookup(key),
        }
    }

    /// Flag `key` of `doc` compiled; a key the document does not have is a flag that could not
    /// be read.
    fn flag_or_broken(&mut self, key: &str, doc: &FlagDocument) -> CompiledFlag {
        match doc.flags.get(key) {
            Some(f) => self.flag(key, f),
            None => CompiledFlag::broken(key),
        }
    }
}

impl Compiler<'_> {
    /// Records a problem; an error breaks the whole flag.
    fn report(&mut self, severity: Severity, extra: &[PathSeg], message: String) {
        if severity == Severity::Error {
            self.broken = true;
        }
        self.push(severity, extra, message);
    }

    fn push(&mut self, severity: Severity, extra: &[PathSeg], message: String) {
        let mut path = self.path.clone();
        path.extend_from_slice(extra);
        self.diags.push(Diagnostic {
            flag: self.flag.clone(),
            path,
            severity,
            message,
            line: None,
            column: None,
            file: None,
        });
    }

    /// An error that only affects one evaluation path (LaunchDarkly's lazy `MALFORMED_FLAG`).
    fn lazy(&mut self, extra: &[PathSeg], message: String) {
        self.push(Severity::Error, extra, message);
    }

    /// Runs `f` with `seg` appended to the current path.
    fn with<T>(&mut self, seg: PathSeg, f: impl FnOnce(&mut Self) -> T) -> T {
        self.at(std::slice::from_ref(&seg), f)
    }

    /// Runs `f` with `segs` appended to the current path.
    fn at<T>(&mut self, segs: &[PathSeg], f: impl FnOnce(&mut Self) -> T) -> T {
        let depth = self.path.len();
        self.path.extend_from_slice(segs);
        let r = f(self);
        self.path.truncate(depth);
        r
    }

    /// The attribute a rollout buckets by (the key when none is named); an invalid reference
    /// is reported and makes that rollout malformed.
    fn bucket_by(&mut self, by: Option<&str>) -> Option<AttrPath> {
        let Some(by) = by else {
            return Some(AttrPath::Key);
        };
        match AttrPath::parse(by) {
            Ok(p) => Some(p),
            Err(e) => {
                self.lazy(&[PathSeg::key("bucketBy")], e.to_string());
                None
            }
        }
    }
}

/// A context kind as written, `user` when none is.
fn kind_of(k: &Option<String>) -> Box<str> {
    k.as_deref().unwrap_or(crate::context::USER_KIND).into()
}

/// A multi-line message on one line.
fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Flag;

    #[test]
    fn the_flag_index_finds_every_key_and_only_those() {
        for n in [0usize, 1, 2, 7, 8, 9, 100, 1000] {
            let doc = FlagDocument {
                flags: (0..n)
                    .map(|i| {
                        let k = format!("flag-{i}");
                        (k.clone(), Arc::new(Flag::boolean(k, i % 2 == 0)))
                    })
                    .collect(),
                ..FlagDocument::default()
            };
            let snap = compile(doc);
            for i in 0..n {
                let key = format!("flag-{i}");
                assert_eq!(snap.flag(&key).map(|f| f.key()), Some(key.as_str()));
            }
            for absent in ["", "flag-", "flag-x", "flag-1000000", "FLAG-1"] {
                assert!(snap.flag(absent).is_none(), "{absent}");
            }
        }
        assert!(Snapshot::default().flag("x").is_none());
    }
}
