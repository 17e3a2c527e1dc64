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
use crate::program::{
    CompiledFlag, Flags, ItemDiagnostics, KeyTable, Kind, Parts, Segment, Snapshot,
};
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
    drop(compiler);
    let (flags, flag_diagnostics) = compile_flags(&doc, &seg_keys, &keys, threads_for(keys.len()));
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

/// Documents with at least this many flags are compiled on several threads.
const PARALLEL_FLAGS: usize = 2048;

/// At most this many threads compile one document.
const MAX_THREADS: usize = 8;

/// The number of threads to compile `n` flags with.
fn threads_for(n: usize) -> usize {
    if n < PARALLEL_FLAGS {
        return 1;
    }
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, MAX_THREADS)
}

/// Compiled flags with their diagnostics, by position.
type CompiledFlags = (Vec<Arc<CompiledFlag>>, Vec<Option<ItemDiagnostics>>);

/// Compiles the flags `keys` (sorted) of `doc` on `threads` threads, each compiling a
/// consecutive run of keys with its own compiler; the runs are put back in order. A flag's
/// compile depends only on the flag and the keys it resolves against, so the result is the
/// one a single compiler gives.
fn compile_flags(
    doc: &FlagDocument,
    segs: &[&str],
    keys: &[&str],
    threads: usize,
) -> CompiledFlags {
    let run = |part: &[&str]| -> CompiledFlags {
        let mut compiler = Compiler::new(segs, keys);
        part.iter()
            .map(|k| {
                let (f, d) = compiler.item(|c| c.flag_or_broken(k, doc));
                (Arc::new(f), d)
            })
            .unzip()
    };
    if threads <= 1 || keys.len() < 2 {
        return run(keys);
    }
    let size = keys.len().div_ceil(threads);
    std::thread::scope(|s| {
        let running: Vec<_> = keys
            .chunks(size)
            .map(|part| s.spawn(move || run(part)))
            .collect();
        let mut flags = Vec::with_capacity(keys.len());
        let mut diagnostics = Vec::with_capacity(keys.len());
        for thread in running {
            match thread.join() {
                Ok((f, d)) => {
                    flags.extend(f);
                    diagnostics.extend(d);
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        (flags, diagnostics)
    })
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
    /// The section (`flags`, `segments`) and key of the item being compiled.
    item: (&'static str, String),
    /// Where in the item: names and indexes, made into a [`PathSeg`] path only for a diagnostic.
    path: Vec<Seg>,
    flag: String,
    broken: bool,
    /// The variations `false`, `true`, shared by the bool flags that have them.
    bools: Arc<[serde_json::Value]>,
}

/// A step of the path inside an item: a field name or an index.
#[derive(Debug, Clone, Copy)]
enum Seg {
    Name(&'static str),
    Index(usize),
}

impl Seg {
    /// The field `name`.
    const fn key(name: &'static str) -> Seg {
        Seg::Name(name)
    }

    fn path_seg(self) -> PathSeg {
        match self {
            Seg::Name(n) => PathSeg::key(n),
            Seg::Index(i) => PathSeg::Index(i),
        }
    }
}

impl<'a> Compiler<'a> {
    fn new(segs: &'a [&'a str], flags: &'a [&'a str]) -> Self {
        Compiler {
            diags: Vec::new(),
            segs,
            flags: FlagKeys::Sorted(flags),
            item: ("", String::new()),
            path: Vec::new(),
            flag: String::new(),
            broken: false,
            bools: Arc::new([
                serde_json::Value::Bool(false),
                serde_json::Value::Bool(true),
            ]),
        }
    }

    /// A compiler that finds the position of a flag key with `lookup`.
    fn with_flag_lookup(segs: &'a [&'a str], lookup: &'a dyn Fn(&str) -> Option<u32>) -> Self {
        let mut c = Compiler::new(segs, &[]);
        c.flags = FlagKeys::Lookup(lookup);
        c
    }

    /// Compiles one item with `f`, returning it with its diagnostics.
    fn item<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> (T, Option<ItemDiagnostics>) {
        let item = f(self);
        let diags = if self.diags.is_empty() {
            None
        } else {
            Some(Arc::new(std::mem::take(&mut self.diags)))
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
    fn report(&mut self, severity: Severity, extra: &[Seg], message: String) {
        if severity == Severity::Error {
            self.broken = true;
        }
        self.push(severity, extra, message);
    }

    fn push(&mut self, severity: Severity, extra: &[Seg], message: String) {
        let (section, key) = &self.item;
        let path = [PathSeg::key(section), PathSeg::key(key)]
            .into_iter()
            .chain(self.path.iter().chain(extra).map(|s| s.path_seg()))
            .collect();
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
    fn lazy(&mut self, extra: &[Seg], message: String) {
        self.push(Severity::Error, extra, message);
    }

    /// Starts item `key` of `section`, labelled `flag` in diagnostics.
    fn start(&mut self, section: &'static str, key: &str, flag: impl FnOnce(&mut String)) {
        self.item.0 = section;
        self.item.1.clear();
        self.item.1.push_str(key);
        self.flag.clear();
        flag(&mut self.flag);
        self.path.clear();
    }

    /// Runs `f` with `seg` appended to the current path.
    fn with<T>(&mut self, seg: Seg, f: impl FnOnce(&mut Self) -> T) -> T {
        self.at(std::slice::from_ref(&seg), f)
    }

    /// Runs `f` with `segs` appended to the current path.
    fn at<T>(&mut self, segs: &[Seg], f: impl FnOnce(&mut Self) -> T) -> T {
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
                self.lazy(&[Seg::key("bucketBy")], e.to_string());
                None
            }
        }
    }
}

/// A context kind as written, `user` when none is.
fn kind_of(k: &Option<Box<str>>) -> Kind {
    Kind::of(k.as_deref())
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

    /// A document of `n` flags of several shapes, some with errors and warnings, some
    /// referring to others and to segments, and a few keys that could not be read.
    fn varied_document(n: usize) -> (FlagDocument, Vec<Diagnostic>) {
        let flags: Vec<String> = (0..n)
            .map(|i| {
                let body = match i % 7 {
                    0 => r#"{"type":"bool","default":false}"#.to_owned(),
                    1 => format!(
                        r#"{{"type":"bool","prerequisites":[{{"key":"f{}","variation":1}},{{"key":"missing","variation":0}}],"fallthrough":{{"variation":1}}}}"#,
                        (i * 31) % n
                    ),
                    2 => r#"{"type":"string","variants":[{"value":"a","name":"A"},{"value":3}],"rules":[{"clauses":[{"attribute":"email","operator":"matches","values":["["]}],"variation":1}]}"#.to_owned(),
                    3 => format!(
                        r#"{{"type":"bool","rules":[{{"id":"r{i}","clauses":[{{"attribute":"key","operator":"segmentMatch","values":["s{}","nope"]}},{{"attribute":"plan","operator":"in","values":["pro",1,true,null,{{"a":1}}]}}],"rollout":{{"bucketBy":"/org/id","variations":[{{"variation":0,"weight":40000}},{{"variation":1,"weight":50000}}]}}}}],"fallthrough":{{"variation":7}}}}"#,
                        i % 5
                    ),
                    4 => r#"{"type":"int","variants":[{"value":1,"weight":1},{"value":2,"weight":3}],"targets":[{"variation":1,"values":["a","b","c","d","e","f","g","h","i","j"]}],"salt":"s"}"#.to_owned(),
                    5 => r#"{"enabled":false,"offVariation":1,"rules":[{"clauses":[{"attribute":"v","operator":"semver","values":[">=1.2","x.y"]},{"attribute":"","operator":"frobs","values":[]}],"variation":0,"percentage":150}]}"#.to_owned(),
                    _ => r#"{"type":"float","default":1.5,"rules":[{"clauses":[{"attribute":"n","operator":"gt","values":[1,"2"]},{"attribute":"d","operator":"before","values":["2020-01-01T00:00:00Z"]}],"rollout":{"kind":"experiment","seed":7,"variations":[{"variation":0,"weight":100000,"untracked":true}]}}]}"#.to_owned(),
                };
                format!(r#""f{i}":{body}"#)
            })
            .collect();
        let text = format!(
            r#"{{"flags":{{{},"bad1":{{"unknown":1}},"bad2":{{"rules":3}}}},"segments":{{"s0":{{"included":["a"]}},"s1":{{"rules":[{{"clauses":[{{"attribute":"x","operator":"eq","values":["y"]}}],"weight":5000}}]}}}}}}"#,
            flags.join(",")
        );
        let parsed = crate::parse_document(&text, crate::Format::Json).expect("a JSON document");
        (parsed.document, parsed.diagnostics)
    }

    #[test]
    fn flags_compiled_on_several_threads_are_those_one_thread_compiles() {
        let (doc, base) = varied_document(300);
        let doc = Arc::new(doc);
        let unreadable = unreadable(&base, &doc);
        assert_eq!(unreadable.len(), 2, "{base:?}");
        let mut keys: Vec<&str> = (doc.flags.keys().map(String::as_str))
            .chain(unreadable.iter().map(String::as_str))
            .collect();
        keys.sort_unstable();
        let segs: Vec<&str> = doc.segments.keys().map(String::as_str).collect();
        let (one, one_diags) = compile_flags(&doc, &segs, &keys, 1);
        assert!(
            one_diags.iter().flatten().count() > 100,
            "the document has problems"
        );
        for threads in [2, 3, 8, 1000] {
            let (many, many_diags) = compile_flags(&doc, &segs, &keys, threads);
            assert_eq!(format!("{many:?}"), format!("{one:?}"), "{threads} threads");
            assert_eq!(many_diags, one_diags, "{threads} threads");
        }
        // The whole compile, on as many threads as it picks, agrees too.
        let big = compile_with(doc.clone(), base.clone());
        assert_eq!(
            format!("{:?}", big.flags),
            format!("{:?}", Flags::from(one))
        );
        assert!(big.diagnostics().len() >= base.len() + one_diags.iter().flatten().count());
    }

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
