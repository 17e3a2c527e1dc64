//! Compiling a change: a snapshot made from the previous one and the items that changed.
//!
//! Only the changed flags and segments are compiled. Every other compiled item is shared with
//! the previous snapshot (the same allocation), its diagnostics too, and so is most of the
//! document (its maps share their chunks). Compiled items refer to flags and segments by
//! position, so when a key is added or removed the items whose references move are adjusted: a
//! reference that only shifts is rewritten in a copy of the item, and an item whose reference
//! appears or disappears (it names the added or removed key) is compiled again; the items that
//! refer to a moved key are found by key ([`Referrers`]), the others are not read.
//!
//! What depends on the whole document is kept in the snapshot and brought up to date rather
//! than worked out again: who refers to each key, the worst case of every item, the
//! document's size and the flags the cost bound refuses. A change reaches only the items that
//! refer to it, directly or not: their worst cases are worked out again over that part of the
//! graph (every other item references none of them, and costs what it did). The budget
//! depends on the size: when it moves, the flags whose worst case is over the smallest budget
//! (no other flag can be refused) are decided again. The result is the snapshot compiling the
//! whole new document gives.
//!
//! What still grows with the document: an edit copies the per-flag diagnostics list and the
//! worst cases (flat arrays) and one pointer per 64 flags; adding or removing a flag also
//! shares every flag after the first moved position again (a reference count each) and moves
//! the key table's positions in one pass over its slots.

use super::{cost, finish, unreadable, Bound, Compiler};
use crate::diagnostic::Diagnostic;
use crate::model::{self, Flag, FlagDocument, SortedMap};
use crate::program::{CompiledFlag, Flags, Op, Parts, Segment, Snapshot};
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
    // The document shares every unchanged item (and most of its map) with the previous one;
    // the references by key follow the changes.
    let mut doc = FlagDocument::clone(old_doc);
    let mut referrers = previous.parts.referrers.clone();
    for (k, f) in &flag_changes {
        referrers.flag(k, old_doc.flags.get(k).map(|f| &**f), f.as_deref());
        match f {
            Some(f) => doc.flags.insert(k.clone(), f.clone()),
            None => doc.flags.remove(k),
        };
    }
    for (k, s) in &segment_changes {
        referrers.segment(k, old_doc.segments.get(k).map(|s| &**s), s.as_deref());
        match s {
            Some(s) => doc.segments.insert(k.clone(), s.clone()),
            None => doc.segments.remove(k),
        };
    }
    let doc = Arc::new(doc);
    let kept = &previous.parts.kept;
    let mut size = kept.size;

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
    let present = |k: &str| doc.flags.contains_key(k) || unread.iter().any(|u| u == k);
    let flag_added: BTreeSet<&str> = (flag_changes.keys())
        .map(String::as_str)
        .filter(|k| previous.position(k).is_none() && present(k))
        .collect();
    let flag_moved = flag_added.len()
        + (flag_changes.keys())
            .filter(|k| previous.position(k).is_some() && !present(k))
            .count()
        > 0;
    // Where each previous flag goes (only when keys are added or removed), worked out from
    // the positions of the removed keys and where the added ones fall among the previous
    // keys, without reading the others.
    let removed_at: Vec<usize> = (flag_changes.keys())
        .filter(|k| !present(k))
        .filter_map(|k| previous.position(k))
        .map(|p| p as usize)
        .collect();
    let added_at: BTreeMap<&str, u32> = (flag_added.iter())
        .enumerate()
        .map(|(n, k)| {
            let p = insertion_point(previous, k);
            let before = removed_at.iter().filter(|&&r| r < p).count();
            (*k, (p - before + n) as u32)
        })
        .collect();
    let flag_map: Option<Vec<u32>> = flag_moved.then(|| {
        let mut points: Vec<usize> = flag_added
            .iter()
            .map(|k| insertion_point(previous, k))
            .collect();
        points.sort_unstable();
        shift_map(previous.len(), &removed_at, &points)
    });
    let new_len = previous.len() + added_at.len() - removed_at.len();
    let flag_position = |k: &str| -> Option<usize> {
        if let Some(&p) = added_at.get(k) {
            return Some(p as usize);
        }
        let p = previous.position(k)? as usize;
        match &flag_map {
            Some(map) => (map[p] != NONE).then_some(map[p] as usize),
            None => Some(p),
        }
    };
    let moves = Moves {
        flags: flag_map.as_deref(),
        segments: seg_map.as_deref(),
        flag_added: &flag_added,
        seg_added: &seg_added,
    };
    let lookup = |k: &str| flag_position(k).map(|p| p as u32);
    let mut compiler = Compiler::with_flag_lookup(&seg_keys, &lookup);
    // The flags (previous positions) whose references may have moved: those referring to a
    // key at or after the first added or removed one. No other flag needs adjusting.
    let mut moved_refs: BTreeSet<usize> = BTreeSet::new();
    let first_flag = (flag_changes.keys())
        .filter(|k| flag_added.contains(k.as_str()) || !present(k))
        .min();
    if let Some(first) = first_flag {
        referrers.referring_from(&referrers.prerequisites, first, |k| {
            moved_refs.extend(previous.position(k).map(|p| p as usize))
        });
    }
    let first_segment = (segment_changes.keys())
        .filter(|k| old_doc.segments.contains_key(*k) != doc.segments.contains_key(*k))
        .min();
    if let Some(first) = first_segment {
        referrers.referring_from(&referrers.flags_matching, first, |k| {
            moved_refs.extend(previous.position(k).map(|p| p as usize))
        });
    }
    let mut compiled_segments = 0;
    let mut compiled_flags = 0;

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
                Adjust::Recompile => true,
            },
        };
        if redo {
            if let Some(i) = old {
                size = size.saturating_sub(cost::segment_size(&previous.segments[i]));
            }
            let (seg, d) = compiler.item(|c| c.segment(k, s));
            size = size.saturating_add(cost::segment_size(&seg));
            segments.push(Arc::new(seg));
            segment_diagnostics.push(d);
            compiled_segments += 1;
        }
    }
    if let Some(map) = &seg_map {
        for (i, _) in map.iter().enumerate().filter(|(_, &j)| j == NONE) {
            size = size.saturating_sub(cost::segment_size(&previous.segments[i]));
        }
    }

    // The flag at a previous position as compiled before the cost bound (which is worked out
    // again).
    let refused_at: BTreeMap<usize, &Arc<CompiledFlag>> = (previous.parts.refused.iter())
        .filter_map(|(k, (f, _))| Some((previous.position(k)? as usize, f)))
        .collect();
    let before = |i: usize| -> &Arc<CompiledFlag> {
        match refused_at.get(&i) {
            Some(f) => f,
            None => previous.shared_flag(i),
        }
    };
    let flags: Flags;
    let mut flag_diagnostics;
    match &flag_map {
        // Every flag where it was: the previous flags, the changed ones compiled again (and
        // when segments moved, those referring to them adjusted), every other chunk shared.
        None => {
            let mut set: BTreeMap<usize, Arc<CompiledFlag>> =
                (refused_at.iter()).map(|(&p, &f)| (p, f.clone())).collect();
            flag_diagnostics = previous.parts.flag_diagnostics.clone();
            let mut redo: BTreeSet<usize> = (flag_changes.keys())
                .filter_map(|k| previous.position(k))
                .map(|p| p as usize)
                .collect();
            if seg_moved {
                for &fi in &moved_refs {
                    if redo.contains(&fi) {
                        continue;
                    }
                    let f = before(fi);
                    let model = || doc.flags.get(&*f.key).map(|f| &**f);
                    match moves.flag(f, model) {
                        Adjust::Keep => {}
                        Adjust::Rewrite => {
                            let mut g = CompiledFlag::clone(f);
                            moves.rewrite_flag(&mut g);
                            set.insert(fi, Arc::new(g));
                        }
                        Adjust::Recompile => {
                            redo.insert(fi);
                        }
                    }
                }
            }
            for fi in redo {
                size = size.saturating_sub(cost::flag_size(before(fi)));
                let k = previous.shared_flag(fi).key.clone();
                let (f, d) = compiler.item(|c| c.flag_or_broken(&k, &doc));
                size = size.saturating_add(cost::flag_size(&f));
                set.insert(fi, Arc::new(f));
                flag_diagnostics[fi] = d;
                compiled_flags += 1;
            }
            flags = previous.flags.replaced(set.into_iter().collect());
        }
        Some(map) => {
            let mut back = vec![NONE; new_len];
            for (i, &j) in map.iter().enumerate() {
                if j != NONE {
                    back[j as usize] = i as u32;
                }
            }
            let added_key: BTreeMap<u32, &str> = added_at.iter().map(|(k, &p)| (p, *k)).collect();
            let redo_old: BTreeSet<usize> = (flag_changes.keys())
                .filter_map(|k| previous.position(k))
                .map(|p| p as usize)
                .collect();
            // Positions before the first added or removed key stay: whole chunks of them are
            // shared, and only their changed, refused or re-resolved flags are looked at.
            let first = (added_at.values().map(|&p| p as usize))
                .chain(removed_at.iter().copied())
                .min()
                .unwrap_or(new_len);
            let (shared_chunks, start) = Flags::shareable(first);
            let in_prefix = (redo_old.iter())
                .chain(&moved_refs)
                .chain(refused_at.keys())
                .copied()
                .filter(|&i| i < start)
                .collect::<BTreeSet<usize>>();
            let mut list: Vec<Arc<CompiledFlag>> = Vec::with_capacity(new_len - start);
            let mut prefix: Vec<(usize, Arc<CompiledFlag>)> = Vec::new();
            flag_diagnostics = Vec::with_capacity(new_len);
            flag_diagnostics.extend_from_slice(&previous.parts.flag_diagnostics[..start]);
            for fi in in_prefix.into_iter().chain(start..new_len) {
                let i = back[fi];
                let old = (i != NONE).then_some(i as usize);
                let mut kept = |f: Arc<CompiledFlag>, i: usize| {
                    if fi < start {
                        prefix.push((fi, f));
                    } else {
                        list.push(f);
                        flag_diagnostics.push(previous.parts.flag_diagnostics[i].clone());
                    }
                };
                let redo = match old {
                    None => true,
                    Some(i) if redo_old.contains(&i) => true,
                    Some(i) if !moved_refs.contains(&i) => {
                        kept(before(i).clone(), i);
                        false
                    }
                    Some(i) => {
                        let before = before(i);
                        let model = || doc.flags.get(&*before.key).map(|f| &**f);
                        match moves.flag(before, model) {
                            Adjust::Keep => {
                                kept(before.clone(), i);
                                false
                            }
                            Adjust::Rewrite => {
                                let mut f = CompiledFlag::clone(before);
                                moves.rewrite_flag(&mut f);
                                kept(Arc::new(f), i);
                                false
                            }
                            Adjust::Recompile => true,
                        }
                    }
                };
                if redo {
                    let key: Box<str> = match old {
                        Some(i) => {
                            size = size.saturating_sub(cost::flag_size(before(i)));
                            previous.shared_flag(i).key.clone()
                        }
                        None => added_key
                            .get(&(fi as u32))
                            .copied()
                            .unwrap_or_default()
                            .into(),
                    };
                    let (f, d) = compiler.item(|c| c.flag_or_broken(&key, &doc));
                    size = size.saturating_add(cost::flag_size(&f));
                    if fi < start {
                        prefix.push((fi, Arc::new(f)));
                        flag_diagnostics[fi] = d;
                    } else {
                        list.push(Arc::new(f));
                        flag_diagnostics.push(d);
                    }
                    compiled_flags += 1;
                }
            }
            for &i in &removed_at {
                size = size.saturating_sub(cost::flag_size(before(i)));
            }
            flags = previous.flags.joined(shared_chunks, list).replaced(prefix);
        }
    }
    drop(compiler);

    // What may differ: the changed items and everything that refers to them, by key (as
    // comparing both documents finds). Their worst cases are worked out again; every other
    // item references none of them and costs what it did.
    let (changed_flags, changed_segments) = referrers.closure(
        flag_changes.keys().map(String::as_str),
        segment_changes.keys().map(String::as_str),
    );
    let nf = flags.len();
    let mut affected: Vec<usize> = (changed_flags.iter())
        .filter_map(|k| flag_position(k))
        .chain(
            (changed_segments.iter())
                .filter_map(|k| seg_keys.binary_search(&k.as_str()).ok())
                .map(|j| nf + j),
        )
        .collect();
    affected.sort_unstable();
    let (kept, refused) = rebound(
        previous,
        Rebound {
            flags: &flags,
            segments: &segments,
            segment_keys: &seg_keys,
            flag_map: flag_map.as_deref(),
            seg_map: seg_map.as_deref(),
            affected: &affected,
            size,
            removed: (flag_changes.keys())
                .filter(|k| previous.position(k).is_some() && !present(k))
                .map(String::as_str)
                .collect(),
            flag_position: &flag_position,
        },
    );
    let changed: Arc<[String]> = changed_flags.into_iter().collect();

    // The key table: the same keys share it; added and removed keys move its positions.
    let index = match &flag_map {
        None => Some(previous.index.clone()),
        Some(map) => {
            let added: Vec<(&str, u32)> = added_at.iter().map(|(k, &p)| (*k, p)).collect();
            (previous.index).shifted(map, |p| &previous.flags[p].key, &added)
        }
    };
    drop(seg_keys);
    let parts = Parts {
        base: previous.parts.base.clone(),
        segment_diagnostics,
        flag_diagnostics,
        refused: BTreeMap::new(),
        kept: cost::Kept::default(),
        referrers: Referrers::default(),
    };
    let snapshot = finish(
        doc,
        flags,
        index,
        segments,
        parts,
        Some((previous.lineage.id, changed)),
        Bound::Known {
            kept,
            refused,
            referrers,
        },
    );
    Recompiled {
        snapshot,
        compiled_flags,
        compiled_segments,
    }
}

/// What the cost bound is worked out again from.
struct Rebound<'a> {
    /// The new flags and segments, as compiled before the cost bound.
    flags: &'a Flags,
    segments: &'a [Arc<Segment>],
    segment_keys: &'a [&'a str],
    /// Where previous positions went, when keys were added or removed.
    flag_map: Option<&'a [u32]>,
    seg_map: Option<&'a [u32]>,
    /// The nodes whose worst case may differ (flag `i` is node `i`, segment `j` node
    /// `flags.len() + j`), sorted.
    affected: &'a [usize],
    /// The new document's size.
    size: u64,
    /// Keys of removed flags.
    removed: Vec<&'a str>,
    flag_position: &'a dyn Fn(&str) -> Option<usize>,
}

/// The cost bound of the new items from the previous one: the worst cases of `affected` nodes
/// worked out again (every other node keeps its own), and the flags over the budget with their
/// diagnostics, by position. A flag's diagnostic is made again when its worst case or the
/// budget changed; a change of the budget only concerns the flags over [`cost::MIN_BUDGET`].
fn rebound(previous: &Snapshot, r: Rebound<'_>) -> (cost::Kept, Vec<(usize, Diagnostic)>) {
    let old = &previous.parts.kept;
    let remap = |costs: &[u64], map: Option<&[u32]>, len: usize| -> Vec<u64> {
        match map {
            None => costs.to_vec(),
            Some(map) => {
                let mut out = vec![0; len];
                for (i, &j) in map.iter().enumerate() {
                    if j != NONE {
                        out[j as usize] = costs[i];
                    }
                }
                out
            }
        }
    };
    let mut flag_costs = remap(&old.flag_costs, r.flag_map, r.flags.len());
    let mut segment_costs = remap(&old.segment_costs, r.seg_map, r.segments.len());
    let nf = r.flags.len();
    let costs = {
        let items = cost::Items {
            flags: r.flags,
            segments: r.segments,
            segment_keys: r.segment_keys,
            flag_costs: &flag_costs,
            segment_costs: &segment_costs,
        };
        let known = |w: usize| match flag_costs.get(w) {
            Some(c) => *c,
            None => segment_costs[w - nf],
        };
        cost::Graph::part(&items, r.affected, known).costs()
    };
    for (&v, c) in r.affected.iter().zip(costs) {
        match flag_costs.get_mut(v) {
            Some(slot) => *slot = c,
            None => segment_costs[v - nf] = c,
        }
    }
    let mut heavy = (*old.heavy).clone();
    for k in &r.removed {
        heavy.remove(*k);
    }
    for &v in r.affected.iter().filter(|&&v| v < nf) {
        let key = &r.flags[v].key;
        if flag_costs[v] > cost::MIN_BUDGET {
            heavy.insert(key.clone());
        } else {
            heavy.remove(key);
        }
    }
    let kept = cost::Kept {
        flag_costs: Arc::new(flag_costs),
        segment_costs: Arc::new(segment_costs),
        size: r.size,
        heavy: Arc::new(heavy),
    };
    let limit = kept.limit();
    // The flags to decide again: those whose cost may differ, and with another budget every
    // flag it could concern.
    let mut again: BTreeSet<usize> = r.affected.iter().copied().filter(|&v| v < nf).collect();
    if limit != old.limit() {
        again.extend(kept.heavy.iter().filter_map(|k| (r.flag_position)(k)));
    }
    let mut refused: Vec<(usize, Diagnostic)> = (previous.parts.refused.iter())
        .filter_map(|(k, (_, d))| Some(((r.flag_position)(k)?, d)))
        .filter(|(p, _)| !again.contains(p))
        .map(|(p, d)| (p, d.clone()))
        .collect();
    let items = cost::Items {
        flags: r.flags,
        segments: r.segments,
        segment_keys: r.segment_keys,
        flag_costs: kept.flag_costs.as_slice(),
        segment_costs: kept.segment_costs.as_slice(),
    };
    let over = again.into_iter().filter(|&fi| kept.flag_costs[fi] > limit);
    refused.extend(cost::refusals(&items, limit, over));
    refused.sort_by_key(|(p, _)| *p);
    (kept, refused)
}

/// Who refers to each key, by key, as the document is written: the reverse of its
/// prerequisites and segment references (a key that names nothing included). It finds what
/// depends on a changed item without reading the others.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Referrers {
    /// Flag key: the flags whose prerequisites name it.
    prerequisites: SortedMap<Box<str>, Arc<[Box<str>]>>,
    /// Segment key: the flags whose segment clauses name it.
    flags_matching: SortedMap<Box<str>, Arc<[Box<str>]>>,
    /// Segment key: the segments whose segment clauses name it.
    segments_matching: SortedMap<Box<str>, Arc<[Box<str>]>>,
}

/// The segment keys clauses name.
fn matched<'c>(clauses: impl Iterator<Item = &'c model::Clause>) -> BTreeSet<&'c str> {
    clauses
        .filter(|c| c.operator == crate::Operator::SegmentMatch)
        .flat_map(|c| c.values.iter().filter_map(|v| v.as_str()))
        .collect()
}

/// The flag keys and the segment keys a flag names.
fn flag_targets(f: &Flag) -> (BTreeSet<&str>, BTreeSet<&str>) {
    let flags = f.prerequisites.iter().map(|p| p.key.as_str()).collect();
    (flags, matched(f.rules.iter().flat_map(|r| &r.clauses)))
}

/// The segment keys a segment names.
fn segment_targets(s: &model::Segment) -> BTreeSet<&str> {
    matched(s.rules.iter().flat_map(|r| &r.clauses))
}

/// A map from target to referrers of `(target, referrer)` pairs.
fn reverse(mut pairs: Vec<(&str, &str)>) -> SortedMap<Box<str>, Arc<[Box<str>]>> {
    pairs.sort_unstable();
    pairs.dedup();
    pairs
        .chunk_by(|a, b| a.0 == b.0)
        .map(|run| {
            (
                run[0].0.into(),
                run.iter().map(|(_, r)| (*r).into()).collect(),
            )
        })
        .collect()
}

/// Adds or removes `who` among the referrers of `target`.
fn set_referrer(
    map: &mut SortedMap<Box<str>, Arc<[Box<str>]>>,
    target: &str,
    who: &str,
    refers: bool,
) {
    let mut list: Vec<Box<str>> = map.get(target).map(|l| l.to_vec()).unwrap_or_default();
    match (list.binary_search_by(|k| (**k).cmp(who)), refers) {
        (Err(i), true) => list.insert(i, who.into()),
        (Ok(i), false) => {
            list.remove(i);
        }
        _ => return,
    }
    if list.is_empty() {
        map.remove(target);
    } else {
        map.insert(target.into(), list.into());
    }
}

/// Brings the referrers of the targets of `old` and `new` up to date for `who`.
fn update(
    map: &mut SortedMap<Box<str>, Arc<[Box<str>]>>,
    who: &str,
    old: &BTreeSet<&str>,
    new: &BTreeSet<&str>,
) {
    for t in old.difference(new) {
        set_referrer(map, t, who, false);
    }
    for t in new.difference(old) {
        set_referrer(map, t, who, true);
    }
}

impl Referrers {
    /// The referrers of a document's items.
    pub(crate) fn of(doc: &FlagDocument) -> Referrers {
        let mut prerequisites = Vec::new();
        let mut flags_matching = Vec::new();
        let mut segments_matching = Vec::new();
        for (k, f) in &doc.flags {
            let (flags, segments) = flag_targets(f);
            prerequisites.extend(flags.into_iter().map(|t| (t, k.as_str())));
            flags_matching.extend(segments.into_iter().map(|t| (t, k.as_str())));
        }
        for (k, s) in &doc.segments {
            segments_matching.extend(segment_targets(s).into_iter().map(|t| (t, k.as_str())));
        }
        Referrers {
            prerequisites: reverse(prerequisites),
            flags_matching: reverse(flags_matching),
            segments_matching: reverse(segments_matching),
        }
    }

    /// Calls `f` with every referrer, in `map`, of a key at or after `first`.
    fn referring_from(
        &self,
        map: &SortedMap<Box<str>, Arc<[Box<str>]>>,
        first: &str,
        mut f: impl FnMut(&str),
    ) {
        for (_, who) in map.range_from(first) {
            for w in who.iter() {
                f(w);
            }
        }
    }

    /// Flag `key` was `old` and is now `new`.
    fn flag(&mut self, key: &str, old: Option<&Flag>, new: Option<&Flag>) {
        let (of, os) = old.map(flag_targets).unwrap_or_default();
        let (nf, ns) = new.map(flag_targets).unwrap_or_default();
        update(&mut self.prerequisites, key, &of, &nf);
        update(&mut self.flags_matching, key, &os, &ns);
    }

    /// Segment `key` was `old` and is now `new`.
    fn segment(&mut self, key: &str, old: Option<&model::Segment>, new: Option<&model::Segment>) {
        let o = old.map(segment_targets).unwrap_or_default();
        let n = new.map(segment_targets).unwrap_or_default();
        update(&mut self.segments_matching, key, &o, &n);
    }

    /// `flags` and `segments` completed with what refers to them, directly or not: segments
    /// matching one of the segments, flags matching one of the segments, and flags requiring
    /// one of the flags.
    pub(crate) fn closure<'k>(
        &self,
        flags: impl Iterator<Item = &'k str>,
        segments: impl Iterator<Item = &'k str>,
    ) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut segs: BTreeSet<String> = BTreeSet::new();
        let mut todo: Vec<String> = segments.map(str::to_owned).collect();
        while let Some(s) = todo.pop() {
            if segs.contains(&s) {
                continue;
            }
            if let Some(rs) = self.segments_matching.get(s.as_str()) {
                todo.extend(
                    rs.iter()
                        .filter(|r| !segs.contains(&***r))
                        .map(|r| r.to_string()),
                );
            }
            segs.insert(s);
        }
        let mut found: BTreeSet<String> = BTreeSet::new();
        let mut todo: Vec<String> = flags.map(str::to_owned).collect();
        for s in &segs {
            if let Some(rs) = self.flags_matching.get(s.as_str()) {
                todo.extend(rs.iter().map(|r| r.to_string()));
            }
        }
        while let Some(f) = todo.pop() {
            if found.contains(&f) {
                continue;
            }
            if let Some(rs) = self.prerequisites.get(f.as_str()) {
                todo.extend(
                    rs.iter()
                        .filter(|r| !found.contains(&***r))
                        .map(|r| r.to_string()),
                );
            }
            found.insert(f);
        }
        (found, segs)
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

/// How many of `previous`'s flags have a key below `key`.
fn insertion_point(previous: &Snapshot, key: &str) -> usize {
    let (mut lo, mut hi) = (0, previous.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if &*previous.flags[mid].key < key {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The new position of each of `len` previous positions when those `removed` (sorted) go and
/// keys are added at the insertion `points` (sorted): [`NONE`] for a removed one.
fn shift_map(len: usize, removed: &[usize], points: &[usize]) -> Vec<u32> {
    let mut removed = removed.to_vec();
    removed.sort_unstable();
    let mut map = Vec::with_capacity(len);
    let (mut r, mut a) = (0, 0);
    for i in 0..len {
        while a < points.len() && points[a] <= i {
            a += 1;
        }
        if removed.get(r) == Some(&i) {
            r += 1;
            map.push(NONE);
        } else {
            map.push((i - r + a) as u32);
        }
    }
    map
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
            for p in compiled.prerequisites() {
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
            for p in f.prerequisites_mut() {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

    use super::*;
    use crate::compile;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    const FLAGS: usize = 6;
    const SEGMENTS: usize = 5;

    /// A segment clause naming segments (`SEGMENTS` names none) `times` times each.
    fn refs() -> impl Strategy<Value = Value> {
        (prop::collection::vec(0..SEGMENTS + 1, 1..3), 1..60usize).prop_map(|(segs, times)| {
            let values: Vec<String> = (0..times)
                .flat_map(|_| segs.iter().map(|s| format!("s{s}")))
                .collect();
            json!({"attribute": "", "operator": "segmentMatch", "values": values})
        })
    }

    fn flag() -> impl Strategy<Value = Option<Arc<Flag>>> {
        let some = (
            prop::bool::weighted(0.9),
            prop::collection::vec(0..FLAGS + 1, 0..3),
            prop::collection::vec(refs(), 0..3),
        )
            .prop_map(|(enabled, prerequisites, clauses)| {
                let prerequisites: Vec<Value> = (prerequisites.iter())
                    .map(|p| json!({"key": format!("f{p}"), "variation": 1}))
                    .collect();
                let rules: Vec<Value> = (clauses.into_iter())
                    .map(|c| json!({"clauses": [c], "variation": 1}))
                    .collect();
                let f: Flag = serde_json::from_value(json!({"enabled": enabled,
                    "prerequisites": prerequisites, "rules": rules, "default": false}))
                .unwrap();
                Some(Arc::new(f))
            });
        prop_oneof![5 => some, 1 => Just(None)]
    }

    fn segment() -> impl Strategy<Value = Option<Arc<model::Segment>>> {
        let some = prop::collection::vec(refs(), 1..3).prop_map(|clauses| {
            let rules: Vec<Value> = clauses
                .into_iter()
                .map(|c| json!({"clauses": [c]}))
                .collect();
            let s: model::Segment =
                serde_json::from_value(json!({"included": ["k"], "rules": rules})).unwrap();
            Some(Arc::new(s))
        });
        prop_oneof![4 => some, 1 => Just(None)]
    }

    /// A flag of `n` list values: it moves the budget by `16 n`.
    fn padding(n: usize) -> Option<Arc<Flag>> {
        let values: Vec<String> = (0..n).map(|i| format!("v{i}")).collect();
        let f: Flag = serde_json::from_value(json!({"default": false, "rules": [{"clauses": [
            {"attribute": "key", "operator": "in", "values": values}], "variation": 1}]}))
        .unwrap();
        Some(Arc::new(f))
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            4 => (0..FLAGS, flag()).prop_map(|(i, f)| Change::Flag(format!("f{i}"), f)),
            3 => (0..SEGMENTS, segment()).prop_map(|(i, s)| Change::Segment(format!("s{i}"), s)),
            2 => (0..14000usize).prop_map(|n| Change::Flag("pad".into(), padding(n))),
        ]
    }

    fn apply(doc: &mut FlagDocument, changes: &[Change]) {
        for c in changes {
            match c {
                Change::Flag(k, Some(f)) => {
                    doc.flags.insert(k.clone(), f.clone());
                }
                Change::Flag(k, None) => {
                    doc.flags.remove(k);
                }
                Change::Segment(k, Some(s)) => {
                    doc.segments.insert(k.clone(), s.clone());
                }
                Change::Segment(k, None) => {
                    doc.segments.remove(k);
                }
            }
        }
    }

    proptest! {
        /// The key table of shifted positions finds every new key at its new position and no
        /// removed or absent key.
        #[test]
        fn a_shifted_key_table_finds_the_new_keys(
            old in prop::collection::btree_set(0u16..600, 0..200),
            remove in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
            add in prop::collection::btree_set(0u16..600, 0..6),
        ) {
            let old: Vec<String> = old.iter().map(|k| format!("k{k}")).collect();
            let mut old_sorted = old.clone();
            old_sorted.sort();
            let removed: BTreeSet<usize> = if old_sorted.is_empty() {
                BTreeSet::new()
            } else {
                remove.iter().map(|i| i.index(old_sorted.len())).collect()
            };
            let added: BTreeSet<String> = (add.iter().map(|k| format!("n{k}")))
                .collect();
            let mut new: Vec<&str> = (old_sorted.iter().enumerate())
                .filter(|(i, _)| !removed.contains(i))
                .map(|(_, k)| k.as_str())
                .chain(added.iter().map(String::as_str))
                .collect();
            new.sort_unstable();
            let table = crate::program::KeyTable::new(old_sorted.iter().map(String::as_str));
            let map: Vec<u32> = (old_sorted.iter().enumerate())
                .map(|(i, k)| if removed.contains(&i) { NONE } else { new.binary_search(&k.as_str()).unwrap() as u32 })
                .collect();
            let added_at: Vec<(&str, u32)> = (added.iter())
                .map(|k| (k.as_str(), new.binary_search(&k.as_str()).unwrap() as u32))
                .collect();
            let Some(shifted) = table.shifted(&map, |p| old_sorted[p].as_str(), &added_at) else {
                return Ok(());
            };
            for (p, k) in new.iter().enumerate() {
                prop_assert_eq!(shifted.get(k, |i| new[i].as_bytes()), Some(p as u32), "{}", k);
            }
            for (i, k) in old_sorted.iter().enumerate().filter(|(i, _)| removed.contains(i)) {
                prop_assert_eq!(shifted.get(k, |i| new[i].as_bytes()), None, "{} {}", i, k);
            }
            prop_assert_eq!(shifted.get("absent", |i| new[i].as_bytes()), None);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 160, .. ProptestConfig::default() })]

        /// What an incremental compile keeps for the next one (the worst case of every item,
        /// the document's size, the heavy flags, the refused flags with their diagnostics, the
        /// references by key) is what a full compile of the same document works out, across
        /// changes that move the budget (the padding flag) and costs around it (fan-out).
        #[test]
        fn the_kept_state_is_the_full_compiles(
            start in prop::collection::vec(change(), 0..10),
            steps in prop::collection::vec(prop::collection::vec(change(), 1..3), 1..8),
        ) {
            let mut doc = FlagDocument::default();
            apply(&mut doc, &start);
            let mut snap = compile::compile(doc.clone());
            for batch in steps {
                apply(&mut doc, &batch);
                snap = recompile(&snap, batch).snapshot;
                let full = compile::compile(doc.clone());
                prop_assert_eq!(&snap.parts.kept, &full.parts.kept);
                prop_assert_eq!(&snap.parts.referrers, &full.parts.referrers);
                let refused = |s: &Snapshot| -> Vec<(Box<str>, Diagnostic)> {
                    s.parts.refused.iter().map(|(k, (_, d))| (k.clone(), d.clone())).collect()
                };
                prop_assert_eq!(refused(&snap), refused(&full));
                prop_assert_eq!(snap.diagnostics(), full.diagnostics());
                for (a, b) in snap.flags().zip(full.flags()) {
                    prop_assert_eq!((a.key(), a.is_malformed()), (b.key(), b.is_malformed()));
                }
                // The key table finds every flag at its position, and no other key.
                for (i, f) in snap.flags().enumerate() {
                    prop_assert_eq!(snap.position(f.key()), Some(i as u32));
                }
                for k in (0..=FLAGS).map(|i| format!("f{i}")).chain(["pad".into(), "x".into()]) {
                    prop_assert_eq!(snap.position(&k).is_some(), full.position(&k).is_some());
                }
            }
        }
    }
}
