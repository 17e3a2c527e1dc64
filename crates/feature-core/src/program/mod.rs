//! The compiled program: what a flag document becomes once it is compiled, and what evaluation
//! reads. Everything that can be decided ahead of time is (regular expressions, versions and
//! dates parsed, `in` lists as sets, keys of prerequisites and segments as indexes), and nothing
//! here changes after compiling: a [`Snapshot`] is shared by every evaluating thread.

mod clause;
mod flag;
mod segment;
mod sets;

pub(crate) use clause::{Clause, Cmp, Op};
pub use flag::CompiledFlag;
pub(crate) use flag::{Prerequisite, Rollout, Rule, Serve, Target, WeightedVariation, MAX_INDEXED};
pub(crate) use segment::{Segment, SegmentRule};
pub(crate) use sets::{EqSet, KeyTable, StrSet};

use crate::diagnostic::{Diagnostic, PathSeg, Severity};
use crate::locate::Locator;
use crate::model::FlagDocument;
use std::collections::BTreeMap;
use std::ops::Index;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Compiled flags by position. Each flag is shared: a snapshot compiled from another by
/// changing a few items holds the very same allocation for every flag it did not recompile.
#[derive(Debug, Clone, Default)]
pub(crate) struct Flags(pub(crate) Vec<Arc<CompiledFlag>>);

impl Index<usize> for Flags {
    type Output = CompiledFlag;

    #[inline(always)]
    fn index(&self, i: usize) -> &CompiledFlag {
        &self.0[i]
    }
}

impl Flags {
    /// The flag at position `i`, if any.
    #[inline(always)]
    pub(crate) fn get(&self, i: usize) -> Option<&CompiledFlag> {
        self.0.get(i).map(|f| &**f)
    }

    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = &CompiledFlag> {
        self.0.iter().map(|f| &**f)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What an incremental compile reuses: each item's own diagnostics, by position, the form
/// flags had before the cost bound refused them, the cost bound's worst cases and the
/// references by key.
#[derive(Debug, Clone, Default)]
pub(crate) struct Parts {
    /// Diagnostics given to the compile (reading the document): they come first.
    pub(crate) base: Vec<Diagnostic>,
    /// The diagnostics of each segment, by position (`None`: none).
    pub(crate) segment_diagnostics: Vec<Option<Arc<[Diagnostic]>>>,
    /// The diagnostics of each flag, by position (those of the cost bound left out).
    pub(crate) flag_diagnostics: Vec<Option<Arc<[Diagnostic]>>>,
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
        &self.flags.0[position]
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
