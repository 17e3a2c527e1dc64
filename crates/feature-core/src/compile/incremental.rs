//! Compiling a change: a snapshot made from the previous one and the items that changed.
//!
//! Only the changed flags and segments are compiled. Every other compiled item is shared with
//! the previous snapshot (the same allocation), its diagnostics too. Compiled items refer to
//! flags and segments by position, so when a key is added or removed the items whose
//! references move are adjusted: a reference that only shifts is rewritten in a copy of the
//! item, and an item whose reference appears or disappears (it names the added or removed key)
//! is compiled again. What depends on the whole document, the cost bound and the key table, is
//! worked out again over the compiled items (a pass over positions, no compiling). The result
//! is the snapshot compiling the whole new document gives.

use super::{finish, unreadable, Compiler};
use crate::model::{self, Flag, FlagDocument, SortedMap};
use crate::program::{CompiledFlag, Op, Parts, Segment, Snapshot};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// One changed item of a document.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Flag `key` is now the flag given, or no longer exists (`None`).
    Flag(String, Option<Arc<Flag>>),
    /// Segment `key` is now the segment given, or no longer exists (`None`).
    Segment(String, Option<Arc<model::Segment>>),
}

/// What [`recompile`] made, and how much it compiled.
#[derive(Debug)]
pub struct Recompiled {
    /// The new snapshot: the same as compiling its whole document.
    pub snapshot: Snapshot,
    /// How many flags were compiled; every other flag is shared with the previous snapshot.
    pub compiled_flags: usize,
    /// How many segments were compiled.
    pub compiled_segments: usize,
}

/// Position of each old item in the new order (`NONE`: removed).
const NONE: u32 = u32::MAX;

/// The snapshot of `previous`'s document with `changes` applied (the last change of a key
/// wins), compiling only what the changes require: the changed items, and the items whose
/// references name a key that was added or removed. Diagnostics given to the first compile
/// (reading a file) are kept; diagnostics are not placed in a file ([`Snapshot::locate`]).
pub fn recompile(previous: &Snapshot, changes: impl IntoIterator<Item = Change>) -> Recompiled {
    let old_doc = previous.document();
    let mut flag_changes: BTreeMap<String, Option<Arc<Flag>>> = BTreeMap::new();
    let mut segment_changes: BTreeMap<String, Option<Arc<model::Segment>>> = BTreeMap::new();
    for c in changes {
        match c {
            Change::Flag(k, f) => {
                flag_changes.insert(k, f);
            }
            Change::Segment(k, s) => {
                segment_changes.insert(k, s);
            }
        }
    }
    // A change to what the item already is changes nothing.
    flag_changes.retain(|k, f| !same(old_doc.flags.get(k), f.as_ref()));
    segment_changes.retain(|k, s| !same(old_doc.segments.get(k), s.as_ref()));
    if flag_changes.is_empty() && segment_changes.is_empty() {
        return Recompiled {
            snapshot: previous.clone(),
            compiled_flags: 0,
            compiled_segments: 0,
        };
    }
    let mut doc = FlagDocument::clone(old_doc);
    for (k, f) in &flag_changes {
        match f {
            Some(f) => doc.flags.insert(k.clone(), f.clone()),
            None => doc.flags.remove(k),
        };
    }
    for (k, s) in &segment_changes {
        match s {
            Some(s) => doc.segments.insert(k.clone(), s.clone()),
            None => doc.segments.remove(k),
        };
    }
    let doc = Arc::new(doc);

    // Segment positions.
    let seg_keys: Vec<&str> = doc.segments.keys().map(String::as_str).collect();
    let seg_added: BTreeSet<&str> = (segment_changes.keys())
        .filter(|k| !old_doc.segments.contains_key(*k) && doc.segments.contains_key(*k))
        .map(String::as_str)
        .collect();
    let seg_moved = seg_added.len()
        + (segment_changes.keys())
            .filter(|k| old_doc.segments.contains_key(*k) && !doc.segments.contains_key(*k))
            .count()
        > 0;
    let seg_map = seg_moved.then(|| {
        let old: Vec<&str> = old_doc.segments.keys().map(String::as_str).collect();
        positions(&old, &seg_keys)
    });

    // Flag positions: the document's keys and those of flags that could not be read.
    let unread = unreadable(&previous.parts.base, &doc);
    let mut flag_keys: Vec<&str> = doc.flags.keys().map(String::as_str).collect();
    if !unread.is_empty() {
        flag_keys.extend(unread.iter().map(String::as_str));
        flag_keys.sort_unstable();
        flag_keys.dedup();
    }
    let present = |k: &str| flag_keys.binary_search(&k).is_ok();
    let flag_added: BTreeSet<&str> = (flag_changes.keys())
        .map(String::as_str)
        .filter(|k| previous.position(k).is_none() && present(k))
        .collect();
    let flag_moved = flag_added.len()
        + (flag_changes.keys())
            .filter(|k| previous.position(k).is_some() && !present(k))
            .count()
        > 0;
    let flag_map = flag_moved.then(|| {
        let old: Vec<&str> = previous.flags.iter().map(|f| &*f.key).collect();
        positions(&old, &flag_keys)
    });
    let moves = Moves {
        flags: flag_map.as_deref(),
        segments: seg_map.as_deref(),
        flag_added: &flag_added,
        seg_added: &seg_added,
    };

    let mut compiler = Compiler::new(&seg_keys, &flag_keys);
    let mut compiled_segments = 0;
    let mut compiled_flags = 0;
    // Items compiled again because a reference of theirs appeared or disappeared.
    let mut resolved_flags: Vec<usize> = Vec::new();
    let mut resolved_segments: Vec<usize> = Vec::new();

    let old_seg_at = inverse(seg_map.as_deref(), seg_keys.len());
    let mut segments = Vec::with_capacity(seg_keys.len());
    let mut segment_diagnostics = Vec::with_capacity(seg_keys.len());
    for (j, (k, s)) in doc.segments.iter().enumerate() {
        let old = old_seg_at(j);
        let redo = match old {
            _ if segment_changes.contains_key(k) => true,
            None => true,
            Some(i) => match moves.segment(&previous.segments[i], s) {
                Adjust::Keep => {
                    segments.push(previous.segments[i].clone());
                    segment_diagnostics.push(previous.parts.segment_diagnostics[i].clone());
                    false
                }
                Adjust::Rewrite => {
                    let mut seg = Segment::clone(&previous.segments[i]);
                    moves.rewrite_segment(&mut seg);
                    segments.push(Arc::new(seg));
                    segment_diagnostics.push(previous.parts.segment_diagnostics[i].clone());
                    false
                }
                Adjust::Recompile => {
                    resolved_segments.push(j);
                    true
                }
            },
        };
        if redo {
            let (seg, d) = compiler.item(|c| c.segment(k, s));
            segments.push(Arc::new(seg));
            segment_diagnostics.push(d);
            compiled_segments += 1;
        }
    }

    let old_flag_at = inverse(flag_map.as_deref(), flag_keys.len());
    let mut flags: Vec<Arc<CompiledFlag>> = Vec::with_capacity(flag_keys.len());
    let mut flag_diagnostics = Vec::with_capacity(flag_keys.len());
    for (fi, k) in flag_keys.iter().enumerate() {
        let old = old_flag_at(fi);
        let redo = match old {
            _ if flag_changes.contains_key(*k) => true,
            None => true,
            Some(i) => {
                // The flag as compiled before the cost bound, which is worked out again.
                let before =
                    (previous.parts.refused.get(*k)).unwrap_or_else(|| previous.shared_flag(i));
                let model = || doc.flags.get(*k).map(|f| &**f);
                match moves.flag(before, model) {
                    Adjust::Keep => {
                        flags.push(before.clone());
                        flag_diagnostics.push(previous.parts.flag_diagnostics[i].clone());
                        false
                    }
                    Adjust::Rewrite => {
                        let mut f = CompiledFlag::clone(before);
                        moves.rewrite_flag(&mut f);
                        flags.push(Arc::new(f));
                        flag_diagnostics.push(previous.parts.flag_diagnostics[i].clone());
                        false
                    }
                    Adjust::Recompile => {
                        resolved_flags.push(fi);
                        true
                    }
                }
            }
        };
        if redo {
            let (f, d) = compiler.item(|c| c.flag_or_broken(k, &doc));
            flags.push(Arc::new(f));
            flag_diagnostics.push(d);
            compiled_flags += 1;
        }
    }
    drop(compiler);

    // The flags whose evaluation may differ: the changed ones, and what depends on a changed
    // or re-resolved item.
    let mut seeds: Vec<usize> = Vec::new();
    let nf = flag_keys.len();
    for k in flag_changes.keys() {
        if let Ok(p) = flag_keys.binary_search(&k.as_str()) {
            seeds.push(p);
        }
    }
    for k in segment_changes.keys() {
        if let Ok(p) = seg_keys.binary_search(&k.as_str()) {
            seeds.push(nf + p);
        }
    }
    seeds.extend(&resolved_flags);
    seeds.extend(resolved_segments.iter().map(|j| nf + j));
    let mut changed: BTreeSet<String> = flag_changes.keys().cloned().collect();
    for v in dependents(&flags, &segments, seeds) {
        changed.insert(flag_keys[v].to_owned());
    }
    let changed: Arc<[String]> = changed.into_iter().collect();

    let index = (!flag_moved).then(|| previous.index.clone());
    drop(seg_keys);
    drop(flag_keys);
    let parts = Parts {
        base: previous.parts.base.clone(),
        segment_diagnostics,
        flag_diagnostics,
        refused: BTreeMap::new(),
    };
    let snapshot = finish(
        doc,
        flags,
        index,
        segments,
        parts,
        Some((previous.lineage.id, changed)),
    );
    Recompiled {
        snapshot,
        compiled_flags,
        compiled_segments,
    }
}

/// Whether an item is what a change sets it to.
fn same<T: PartialEq>(old: Option<&Arc<T>>, new: Option<&Arc<T>>) -> bool {
    match (old, new) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
        _ => false,
    }
}

/// The position in `new` of each key of `old` (both sorted), [`NONE`] for a key `new` lacks.
fn positions(old: &[&str], new: &[&str]) -> Vec<u32> {
    let mut map = Vec::with_capacity(old.len());
    let mut j = 0;
    for k in old {
        while j < new.len() && new[j] < *k {
            j += 1;
        }
        map.push(if new.get(j) == Some(k) {
            j as u32
        } else {
            NONE
        });
    }
    map
}

/// The old position of each new position, from the old-to-new map (`None`: the same).
fn inverse(map: Option<&[u32]>, len: usize) -> impl Fn(usize) -> Option<usize> {
    let back: Option<Vec<u32>> = map.map(|m| {
        let mut back = vec![NONE; len];
        for (i, &j) in m.iter().enumerate() {
            if j != NONE {
                back[j as usize] = i as u32;
            }
        }
        back
    });
    move |j| match &back {
        None => Some(j),
        Some(b) => (b[j] != NONE).then_some(b[j] as usize),
    }
}

/// What an unchanged item needs after keys were added or removed.
enum Adjust {
    /// Nothing: its references are where they were.
    Keep,
    /// Its references moved: a copy with them rewritten.
    Rewrite,
    /// A reference appears or disappears: compiled again.
    Recompile,
}

/// How positions moved.
struct Moves<'a> {
    flags: Option<&'a [u32]>,
    segments: Option<&'a [u32]>,
    flag_added: &'a BTreeSet<&'a str>,
    seg_added: &'a BTreeSet<&'a str>,
}

impl Moves<'_> {
    /// What a compiled segment needs.
    fn segment(&self, compiled: &Segment, model: &model::Segment) -> Adjust {
        if self.segments.is_none() {
            return Adjust::Keep;
        }
        let compiled = compiled.rules.iter().map(|r| &r.clauses[..]);
        let model = model.rules.iter().map(|r| &r.clauses[..]);
        self.clauses(compiled.zip(model), Adjust::Keep)
    }

    /// What a compiled flag (`model` gives its definition, `None` for one that could not be
    /// read; asked only when segments moved) needs.
    fn flag<'m>(
        &self,
        compiled: &CompiledFlag,
        model: impl FnOnce() -> Option<&'m Flag>,
    ) -> Adjust {
        let mut adjust = Adjust::Keep;
        if let Some(map) = self.flags {
            for p in &compiled.prerequisites {
                match p.flag {
                    Some(i) if map[i as usize] == NONE => return Adjust::Recompile,
                    Some(i) if map[i as usize] != i => adjust = Adjust::Rewrite,
                    Some(_) => {}
                    None if self.flag_added.contains(&*p.key) => return Adjust::Recompile,
                    None => {}
                }
            }
        }
        if self.segments.is_none() {
            return adjust;
        }
        let Some(model) = model() else { return adjust };
        let compiled = compiled.rules.iter().map(|r| &r.clauses[..]);
        let model = model.rules.iter().map(|r| &r.clauses[..]);
        self.clauses(compiled.zip(model), adjust)
    }

    /// What segment references in clauses need (compiled clauses beside their definitions).
    fn clauses<'c>(
        &self,
        rules: impl Iterator<Item = (&'c [crate::program::Clause], &'c [model::Clause])>,
        mut adjust: Adjust,
    ) -> Adjust {
        let Some(map) = self.segments else {
            return adjust;
        };
        for (compiled, model) in rules {
            for (c, m) in compiled.iter().zip(model) {
                let Op::Segment(refs) = &c.op else { continue };
                for (r, v) in refs.iter().zip(&m.values) {
                    match r {
                        Some(i) if map[*i as usize] == NONE => return Adjust::Recompile,
                        Some(i) if map[*i as usize] != *i => adjust = Adjust::Rewrite,
                        Some(_) => {}
                        None if v.as_str().is_some_and(|s| self.seg_added.contains(s)) => {
                            return Adjust::Recompile
                        }
                        None => {}
                    }
                }
            }
        }
        adjust
    }

    fn rewrite_clauses(&self, clauses: &mut [crate::program::Clause]) {
        let Some(map) = self.segments else { return };
        for c in clauses {
            if let Op::Segment(refs) = &mut c.op {
                for r in refs.iter_mut().flatten() {
                    *r = map[*r as usize];
                }
            }
        }
    }

    /// Rewrites the references of a segment whose references only moved.
    fn rewrite_segment(&self, s: &mut Segment) {
        for r in &mut s.rules {
            self.rewrite_clauses(&mut r.clauses);
        }
    }

    /// Rewrites the references of a flag whose references only moved.
    fn rewrite_flag(&self, f: &mut CompiledFlag) {
        if let Some(map) = self.flags {
            for p in &mut f.prerequisites {
                if let Some(i) = &mut p.flag {
                    *i = map[*i as usize];
                }
            }
        }
        for r in &mut f.rules {
            self.rewrite_clauses(&mut r.clauses);
        }
    }
}

/// The segment positions a clause list refers to.
fn segment_refs(clauses: &[crate::program::Clause]) -> impl Iterator<Item = u32> + '_ {
    clauses
        .iter()
        .flat_map(|c| match &c.op {
            Op::Segment(refs) => refs.as_slice(),
            _ => &[],
        })
        .filter_map(|r| *r)
}

/// The flags (positions) that reach one of `seeds` (flag `i` is node `i`, segment `j` node
/// `flags.len() + j`) through prerequisites and segment references, the seeds included.
fn dependents(
    flags: &[Arc<CompiledFlag>],
    segments: &[Arc<Segment>],
    seeds: Vec<usize>,
) -> Vec<usize> {
    let nf = flags.len();
    let n = nf + segments.len();
    // Only segment references lead to a segment, and a segment is reached only from a segment
    // seed: without one, prerequisites are the only references to follow (and the clauses of
    // every flag need not be walked).
    let through_segments = seeds.iter().any(|&v| v >= nf);
    // Edges reversed, as lists: referenced node -> referring nodes.
    let mut edges: Vec<(u32, u32)> = Vec::new();
    for (i, f) in flags.iter().enumerate() {
        for p in &f.prerequisites {
            if let Some(t) = p.flag {
                edges.push((t, i as u32));
            }
        }
        if through_segments {
            for r in &f.rules {
                for s in segment_refs(&r.clauses) {
                    edges.push((nf as u32 + s, i as u32));
                }
            }
        }
    }
    if through_segments {
        for (j, s) in segments.iter().enumerate() {
            for r in &s.rules {
                for t in segment_refs(&r.clauses) {
                    edges.push((nf as u32 + t, (nf + j) as u32));
                }
            }
        }
    }
    let mut starts = vec![0usize; n + 1];
    for &(t, _) in &edges {
        starts[t as usize + 1] += 1;
    }
    for i in 0..n {
        starts[i + 1] += starts[i];
    }
    let mut fill = starts.clone();
    let mut from = vec![0u32; edges.len()];
    for &(t, s) in &edges {
        from[fill[t as usize]] = s;
        fill[t as usize] += 1;
    }
    let mut seen = vec![false; n];
    let mut stack = seeds;
    let mut found = Vec::new();
    while let Some(v) = stack.pop() {
        if std::mem::replace(&mut seen[v], true) {
            continue;
        }
        if v < nf {
            found.push(v);
        }
        stack.extend(from[starts[v]..starts[v + 1]].iter().map(|&w| w as usize));
    }
    found
}

impl Snapshot {
    /// The keys of flags whose definition differs between `old` and this snapshot, with the
    /// flags that depend on them (through segments, and prerequisites), sorted. A snapshot
    /// [`recompile`]d from `old` knows them already; otherwise both documents are compared.
    pub fn changed_keys(&self, old: &Snapshot) -> Vec<String> {
        if self.lineage.id == old.lineage.id {
            return Vec::new();
        }
        match &self.lineage.from {
            Some((id, keys)) if *id == old.lineage.id => keys.to_vec(),
            _ => compare(old, self),
        }
    }
}

/// Keys whose definitions differ between two snapshots, by comparing them.
pub(crate) fn compare(old: &Snapshot, new: &Snapshot) -> Vec<String> {
    let (a, b) = (old.document(), new.document());
    let mut keys = differing(&a.flags, &b.flags);
    let segments = differing(&a.segments, &b.segments);
    // Flags that could not be read at all are not in the document: compare the compiled key
    // sets too.
    for f in old.flags().chain(new.flags()) {
        if old.flag(f.key()).is_none() != new.flag(f.key()).is_none() {
            keys.insert(f.key().to_owned());
        }
    }
    with_dependents(b, keys, segments)
}

/// Keys of items that differ between two maps (an item shared by both is the same).
fn differing<T: PartialEq>(
    a: &SortedMap<String, Arc<T>>,
    b: &SortedMap<String, Arc<T>>,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let (mut x, mut y) = (a.iter().peekable(), b.iter().peekable());
    loop {
        match (x.peek(), y.peek()) {
            (None, None) => break,
            (Some((k, _)), None) => {
                out.insert((*k).clone());
                x.next();
            }
            (None, Some((k, _))) => {
                out.insert((*k).clone());
                y.next();
            }
            (Some((ka, va)), Some((kb, vb))) => match ka.cmp(kb) {
                std::cmp::Ordering::Less => {
                    out.insert((*ka).clone());
                    x.next();
                }
                std::cmp::Ordering::Greater => {
                    out.insert((*kb).clone());
                    y.next();
                }
                std::cmp::Ordering::Equal => {
                    if !(Arc::ptr_eq(va, vb) || va == vb) {
                        out.insert((*ka).clone());
                    }
                    x.next();
                    y.next();
                }
            },
        }
    }
    out
}

/// `flags` and `segments` that changed, completed with what depends on them in `doc`:
/// segments matching a changed segment, flags matching a changed segment, and flags with a
/// changed flag as prerequisite, until nothing more is added (cycles end: a key is added once).
fn with_dependents(
    doc: &FlagDocument,
    mut flags: BTreeSet<String>,
    mut segments: BTreeSet<String>,
) -> Vec<String> {
    let matches_changed = |clauses: &[model::Clause], segments: &BTreeSet<String>| {
        clauses.iter().any(|c| {
            c.operator == crate::Operator::SegmentMatch
                && c.values
                    .iter()
                    .any(|v| v.as_str().is_some_and(|s| segments.contains(s)))
        })
    };
    loop {
        let before = segments.len();
        for (k, s) in &doc.segments {
            if !segments.contains(k)
                && s.rules
                    .iter()
                    .any(|r| matches_changed(&r.clauses, &segments))
            {
                segments.insert(k.clone());
            }
        }
        if segments.len() == before {
            break;
        }
    }
    loop {
        let before = flags.len();
        for (k, f) in &doc.flags {
            if flags.contains(k) {
                continue;
            }
            let uses_segment = !segments.is_empty()
                && f.rules
                    .iter()
                    .any(|r| matches_changed(&r.clauses, &segments));
            if uses_segment || f.prerequisites.iter().any(|p| flags.contains(&p.key)) {
                flags.insert(k.clone());
            }
        }
        if flags.len() == before {
            break;
        }
    }
    flags.into_iter().collect()
}
