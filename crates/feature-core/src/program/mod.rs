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
use std::sync::Arc;

/// An immutable, compiled set of flags and segments, ready for lock-free evaluation.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub(crate) flags: Vec<CompiledFlag>,
    /// Flag positions by key.
    pub(crate) index: KeyTable,
    pub(crate) segments: Vec<Segment>,
    diagnostics: Vec<Diagnostic>,
    document: Arc<FlagDocument>,
}

impl Snapshot {
    /// A snapshot of compiled `flags` (sorted by key) and `segments` (in document order).
    pub(crate) fn new(
        flags: Vec<CompiledFlag>,
        segments: Vec<Segment>,
        diagnostics: Vec<Diagnostic>,
        document: Arc<FlagDocument>,
    ) -> Snapshot {
        let index = KeyTable::new(flags.iter().map(|f| &*f.key));
        Snapshot {
            flags,
            index,
            segments,
            diagnostics,
            document,
        }
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

    /// The document this snapshot was compiled from.
    pub fn document(&self) -> &Arc<FlagDocument> {
        &self.document
    }
}
