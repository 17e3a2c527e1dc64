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
mod segment;

use crate::attr::AttrPath;
use crate::diagnostic::{Diagnostic, PathSeg, Severity};
use crate::model::FlagDocument;
use crate::program::{CompiledFlag, Snapshot};
use rustc_hash::FxHashMap;
use std::sync::Arc;

/// Compiles a flag document into a snapshot. Never fails: problems become diagnostics.
pub fn compile(doc: FlagDocument) -> Snapshot {
    compile_with(Arc::new(doc), Vec::new())
}

/// Compiles a shared document, keeping diagnostics found earlier (e.g. while parsing).
pub fn compile_with(doc: Arc<FlagDocument>, mut diagnostics: Vec<Diagnostic>) -> Snapshot {
    let seg_index: FxHashMap<&str, u32> = doc
        .segments
        .keys()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i as u32))
        .collect();
    // Flags that could not even be read stay visible: they evaluate to MALFORMED_FLAG.
    let unreadable: Vec<String> = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error && d.path.first() == Some(&PathSeg::key("flags")))
        .filter_map(|d| match d.path.get(1) {
            Some(PathSeg::Key(k)) if !doc.flags.contains_key(k) => Some(k.clone()),
            _ => None,
        })
        .collect();
    let mut keys: Vec<&str> = doc
        .flags
        .keys()
        .map(String::as_str)
        .chain(unreadable.iter().map(String::as_str))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let flag_index: FxHashMap<&str, u32> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (*k, i as u32))
        .collect();
    let mut new_diags = Vec::new();
    let mut compiler = Compiler {
        diags: &mut new_diags,
        segs: &seg_index,
        flags: &flag_index,
        path: Vec::new(),
        flag: String::new(),
        broken: false,
    };
    let segments: Vec<crate::program::Segment> = doc
        .segments
        .iter()
        .map(|(k, s)| compiler.segment(k, s))
        .collect();
    let mut flags: Vec<CompiledFlag> = keys
        .iter()
        .map(|k| match doc.flags.get(*k) {
            Some(f) => compiler.flag(k, f),
            None => CompiledFlag::broken(k),
        })
        .collect();
    compiler.bound_cost(&mut flags, &segments, &doc);
    drop(keys);
    diagnostics.extend(new_diags);
    Snapshot::new(flags, segments, diagnostics, doc)
}

/// Compiles one document: the indexes of its keys, and where in the document it is.
struct Compiler<'a> {
    diags: &'a mut Vec<Diagnostic>,
    segs: &'a FxHashMap<&'a str, u32>,
    flags: &'a FxHashMap<&'a str, u32>,
    path: Vec<PathSeg>,
    flag: String,
    broken: bool,
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
                        (k.clone(), Flag::boolean(k, i % 2 == 0))
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
