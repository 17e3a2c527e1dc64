//! The compiled program: what a flag document becomes once it is compiled, and what evaluation
//! reads. Everything that can be decided ahead of time is (regular expressions, versions and
//! dates parsed, `in` lists as sets, keys of prerequisites and segments as indexes), and nothing
//! here changes after compiling: a [`Snapshot`] is shared by every evaluating thread.

mod clause;
mod flag;
mod segment;
mod sets;

pub(crate) use clause::{Clause, Cmp, Kind, Op, Subject};
pub use flag::CompiledFlag;
pub(crate) use flag::{
    Extras, Prerequisite, Rollout, Rule, Serve, Target, WeightedVariation, MAX_INDEXED,
};
pub(crate) use segment::{Segment, SegmentRule};
pub(crate) use sets::{EqSet, KeyTable, StrSet};

use crate::diagnostic::{Diagnostic, PathSeg, Severity};
use crate::locate::Locator;
use crate::model::FlagDocument;
use std::collections::BTreeMap;
use std::ops::Index;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bits of a position that give the place in a chunk of [`Flags`].
const CHUNK_BITS: usize = 6;

/// Compiled flags by position. Each flag is shared: a snapshot compiled from another by
/// changing a few items holds the very same allocation for every flag it did not recompile.
/// They are held in shared chunks of 64, so that such a snapshot also shares every chunk it did
/// not change (making it copies one pointer per chunk, not one per flag).
#[derive(Debug, Clone, Default)]
pub(crate) struct Flags {
    chunks: Arc<[Arc<[Arc<CompiledFlag>]>]>,
    len: usize,
}

impl Index<usize> for Flags {
    type Output = CompiledFlag;

    #[inline(always)]
    fn index(&self, i: usize) -> &CompiledFlag {
        &self.chunks[i >> CHUNK_BITS][i & ((1 << CHUNK_BITS) - 1)]
    }
}

impl From<Vec<Arc<CompiledFlag>>> for Flags {
    fn from(flags: Vec<Arc<CompiledFlag>>) -> Flags {
        let len = flags.len();
        let mut rest = flags.into_iter();
        let chunks = (0..len.div_ceil(1 << CHUNK_BITS))
            .map(|_| rest.by_ref().take(1 << CHUNK_BITS).collect())
            .collect();
        Flags { chunks, len }
    }
}

impl Flags {
    /// The flag at position `i`, if any.
    #[inline(always)]
    pub(crate) fn get(&self, i: usize) -> Option<&CompiledFlag> {
        self.shared(i).map(|f| &**f)
    }

    /// The flag at position `i`, shared, if any.
    #[inline(always)]
    pub(crate) fn shared(&self, i: usize) -> Option<&Arc<CompiledFlag>> {
        (self.chunks.get(i >> CHUNK_BITS)?).get(i & ((1 << CHUNK_BITS) - 1))
    }

    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = &CompiledFlag> {
        self.shared_iter().map(|f| &**f)
    }

    /// Every flag, shared, in order.
    pub(crate) fn shared_iter(&self) -> impl ExactSizeIterator<Item = &Arc<CompiledFlag>> {
        Shared {
            chunks: self.chunks.iter(),
            chunk: [].iter(),
            left: self.len,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many whole chunks lie before position `first`, and the position they end at.
    pub(crate) fn shareable(first: usize) -> (usize, usize) {
        let chunks = first >> CHUNK_BITS;
        (chunks, chunks << CHUNK_BITS)
    }

    /// The first `chunks` chunks of these flags (shared), then the flags of `rest`.
    pub(crate) fn joined(&self, chunks: usize, rest: Vec<Arc<CompiledFlag>>) -> Flags {
        let len = (chunks << CHUNK_BITS) + rest.len();
        let tail = Flags::from(rest);
        let chunks = (self.chunks[..chunks].iter().cloned())
            .chain(tail.chunks.iter().cloned())
            .collect();
        Flags { chunks, len }
    }

    /// These flags with those at the positions given (sorted, each in range) replaced: the
    /// chunks without a replacement are shared.
    pub(crate) fn replaced(&self, changes: Vec<(usize, Arc<CompiledFlag>)>) -> Flags {
        if changes.is_empty() {
            return self.clone();
        }
        let mut chunks: Vec<Arc<[Arc<CompiledFlag>]>> = self.chunks.to_vec();
        let mut changes = changes.into_iter().peekable();
        while let Some((i, f)) = changes.next() {
            let c = i >> CHUNK_BITS;
            let mut chunk = chunks[c].to_vec();
            chunk[i & ((1 << CHUNK_BITS) - 1)] = f;
            while let Some((j, g)) = changes.next_if(|(j, _)| j >> CHUNK_BITS == c) {
                chunk[j & ((1 << CHUNK_BITS) - 1)] = g;
            }
            chunks[c] = chunk.into();
        }
        Flags {
            chunks: chunks.into(),
            len: self.len,
        }
    }
}

/// The flags of [`Flags`], shared, in order.
struct Shared<'a> {
    chunks: std::slice::Iter<'a, Arc<[Arc<CompiledFlag>]>>,
    chunk: std::slice::Iter<'a, Arc<CompiledFlag>>,
    left: usize,
}

impl<'a> Iterator for Shared<'a> {
    type Item = &'a Arc<CompiledFlag>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(f) = self.chunk.next() {
                self.left -= 1;
                return Some(f);
            }
            self.chunk = self.chunks.next()?.iter();
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Shared<'_> {}

/// The diagnostics of one flag or segment: a thin pointer, so that the list of them by position
/// costs one word per item (most have none).
pub(crate) type ItemDiagnostics = Arc<Vec<Diagnostic>>;

/// What an incremental compile reuses: each item's own diagnostics, by position, the form
/// flags had before the cost bound refused them, the cost bound's worst cases and the
/// references by key.
#[derive(Debug, Clone, Default)]
pub(crate) struct Parts {
    /// Diagnostics given to the compile (reading the document): they come first.
    pub(crate) base: Vec<Diagnostic>,
    /// The diagnostics of each segment, by position (`None`: none).
    pub(crate) segment_diagnostics: Vec<Option<ItemDiagnostics>>,
    /// The diagnostics of each flag, by position (those of the cost bound left out).
    pub(crate) flag_diagnostics: Vec<Option<ItemDiagnostics>>,
    /// Flags the cost bound refused, as they were compiled before it, with the diagnostic
    /// saying why.
    pub(crate) refused: BTreeMap<Box<str>, (Arc<CompiledFlag>, Diagnostic)>,
    /// The worst case of every item, the document's size and its heavy flags.
    pub(crate) kept: crate::compile::Kept,
    /// Who refers to each key, by key.
    pub(crate) referrers: crate::compile::Referrers,
}

/// Where a snapshot came from, for [`Snapshot::changed_keys`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Lineage {
    /// This snapshot's identity (clones share it: they hold the same flags).
    pub(crate) id: u64,
    /// For a snapshot compiled incrementally: the identity of the one it was compiled from,
    /// and the flag keys whose evaluation may differ from it.
    pub(crate) from: Option<(u64, Arc<[String]>)>,
}

/// A new snapshot identity.
pub(crate) fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// An immutable, compiled set of flags and segments, ready for lock-free evaluation.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub(crate) flags: Flags,
    /// Flag positions by key.
    pub(crate) index: KeyTable,
    pub(crate) segments: Vec<Arc<Segment>>,
    diagnostics: Vec<Diagnostic>,
    document: Arc<FlagDocument>,
    pub(crate) parts: Parts,
    pub(crate) lineage: Lineage,
}

impl Snapshot {
    /// A snapshot of compiled `flags` (sorted by key) and `segments` (in document order);
    /// `index` is their key table when it is already known.
    pub(crate) fn new(
        flags: Flags,
        index: Option<KeyTable>,
        segments: Vec<Arc<Segment>>,
        diagnostics: Vec<Diagnostic>,
        document: Arc<FlagDocument>,
        parts: Parts,
        from: Option<(u64, Arc<[String]>)>,
    ) -> Snapshot {
        let index = index.unwrap_or_else(|| KeyTable::new(flags.iter().map(|f| &*f.key)));
        Snapshot {
            flags,
            index,
            segments,
            diagnostics,
            document,
            parts,
            lineage: Lineage {
                id: next_id(),
                from,
            },
        }
    }

    /// The compiled flag at `position`, shared.
    pub(crate) fn shared_flag(&self, position: usize) -> &Arc<CompiledFlag> {
        &self.flags.chunks[position >> CHUNK_BITS][position & ((1 << CHUNK_BITS) - 1)]
    }

    /// The compiled flag with this key.
    pub fn flag(&self, key: &str) -> Option<&CompiledFlag> {
        self.position(key).map(|i| &self.flags[i as usize])
    }

    /// The position of the flag with this key in [`Snapshot::flags`].
    #[inline(always)]
    pub(crate) fn position(&self, key: &str) -> Option<u32> {
        self.index.get(key, |i| self.flags[i].key.as_bytes())
    }

    /// The position of the flag with this key and the flag.
    #[inline(always)]
    pub(crate) fn find(&self, key: &str) -> Option<(u32, &CompiledFlag)> {
        self.index
            .find(key, |i| &self.flags[i], |f: &CompiledFlag| f.key.as_bytes())
    }

    /// Every compiled flag, sorted by key.
    pub fn flags(&self) -> impl ExactSizeIterator<Item = &CompiledFlag> {
        self.flags.iter()
    }

    /// Number of flags.
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    /// Whether there are no flags.
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// Number of flags whose targeting is on.
    pub fn enabled_count(&self) -> usize {
        self.flags.iter().filter(|f| f.enabled).count()
    }

    /// Problems found while compiling (errors and warnings), in document order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// Fills in line, column and file of every diagnostic (reading the text once for all of
    /// them).
    pub fn locate(&mut self, locator: &Locator, file: Option<&str>) {
        let unplaced: Vec<usize> = (self.diagnostics.iter().enumerate())
            .filter(|(_, d)| d.line.is_none())
            .map(|(i, _)| i)
            .collect();
        if !unplaced.is_empty() {
            let paths: Vec<&[PathSeg]> = unplaced
                .iter()
                .map(|&i| self.diagnostics[i].path.as_slice())
                .collect();
            let found = locator.locate_all(&paths);
            for (&i, at) in unplaced.iter().zip(found) {
                if let Some((l, c)) = at {
                    self.diagnostics[i].line = Some(l);
                    self.diagnostics[i].column = Some(c);
                }
            }
        }
        if let Some(f) = file {
            for d in &mut self.diagnostics {
                d.file = Some(f.to_owned());
            }
        }
    }

    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// Whether this snapshot and `other` hold the very same compiled flag `key`: compiled once
    /// and shared, as [`crate::recompile`] leaves every flag it did not have to compile again.
    pub fn shares_flag(&self, other: &Snapshot, key: &str) -> bool {
        match (self.position(key), other.position(key)) {
            (Some(a), Some(b)) => {
                Arc::ptr_eq(self.shared_flag(a as usize), other.shared_flag(b as usize))
            }
            _ => false,
        }
    }

    /// The document this snapshot was compiled from.
    pub fn document(&self) -> &Arc<FlagDocument> {
        &self.document
    }
}

#[cfg(test)]
mod sizes {
    use std::mem::size_of;

    /// Every flag holds these (a rule, its clauses, a rollout, the model's flag and rule), so
    /// their sizes are the held memory of large flag sets: a field that grows one of them
    /// grows a 100 000-flag snapshot by its size times the flags.
    #[test]
    fn compiled_and_model_types_stay_small() {
        assert!(size_of::<super::CompiledFlag>() <= 128);
        assert!(size_of::<super::clause::Clause>() <= 64);
        assert!(size_of::<super::clause::Subject>() <= 24);
        assert!(size_of::<super::clause::Op>() <= 32);
        assert!(size_of::<super::flag::Rule>() <= 56);
        assert!(size_of::<super::flag::Rollout>() <= 80);
        assert!(size_of::<super::flag::WeightedVariation>() <= 16);
        assert!(size_of::<Option<super::ItemDiagnostics>>() <= 8);
        assert!(size_of::<crate::model::Flag>() <= 320);
        assert!(size_of::<crate::model::Rule>() <= 96);
        assert!(size_of::<crate::model::Clause>() <= 88);
        assert!(size_of::<crate::model::Rollout>() <= 80);
        assert!(size_of::<crate::model::Serve>() <= 24);
    }
}
