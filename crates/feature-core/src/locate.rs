//! Line and column of a path in a flag document's text, for diagnostics.

use crate::diagnostic::PathSeg;
use std::collections::{HashMap, HashSet};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Line and column of nodes of a YAML or JSON text, by path.
///
/// Nothing is indexed ahead of time: a document without problems never pays, and locating
/// reads the text once for all the paths asked about, keeping only their positions (memory in
/// proportion to the paths, not to the document).
#[derive(Debug, Clone, Default)]
pub struct Locator {
    text: std::sync::Arc<str>,
}

impl Locator {
    /// A locator over a text. Text that YAML cannot read locates nothing.
    pub fn new(text: &str) -> Locator {
        Locator { text: text.into() }
    }

    /// The line and column (from 1) of the deepest node of `path` that exists.
    pub fn locate(&self, path: &[PathSeg]) -> Option<(usize, usize)> {
        self.locate_all(&[path]).pop().flatten()
    }

    /// [`Locator::locate`] for each of `paths`, in one reading of the text.
    pub fn locate_all(&self, paths: &[&[PathSeg]]) -> Vec<Option<(usize, usize)>> {
        let wanted: HashSet<&[PathSeg]> = paths
            .iter()
            .flat_map(|p| (0..=p.len()).map(move |n| &p[..n]))
            .collect();
        let mut r = Recorder {
            wanted,
            ..Recorder::default()
        };
        let mut parser = Parser::new_from_str(&self.text);
        if parser.load(&mut r, false).is_err() {
            return vec![None; paths.len()];
        }
        paths
            .iter()
            .map(|path| {
                (0..=path.len())
                    .rev()
                    .find_map(|n| r.spans.get(&path[..n]).copied())
            })
            .collect()
    }
}

enum Frame {
    Map { key: Option<String> },
    Seq { next: usize },
}

/// Follows the parser's events, keeping the position of the wanted paths only.
#[derive(Default)]
struct Recorder<'w> {
    stack: Vec<Frame>,
    path: Vec<PathSeg>,
    /// The paths asked about and all their prefixes.
    wanted: HashSet<&'w [PathSeg]>,
    spans: HashMap<Vec<PathSeg>, (usize, usize)>,
}

impl Recorder<'_> {
    fn at(m: &Marker) -> (usize, usize) {
        (m.line(), m.col() + 1)
    }

    /// Keeps `mark` as the position of the current path, if it is wanted (replacing an earlier
    /// one when `replace`).
    fn record(&mut self, mark: &Marker, replace: bool) {
        if !self.wanted.contains(self.path.as_slice()) {
            return;
        }
        let at = Self::at(mark);
        if replace {
            self.spans.insert(self.path.clone(), at);
        } else {
            self.spans.entry(self.path.clone()).or_insert(at);
        }
    }

    /// A node starts: returns whether it is a mapping key.
    fn node(&mut self, mark: &Marker, scalar: Option<&str>) -> bool {
        match self.stack.last_mut() {
            Some(Frame::Map { key }) if key.is_none() => {
                let k = scalar.unwrap_or("").to_owned();
                *key = Some(k.clone());
                self.path.push(PathSeg::Key(k));
                self.record(mark, false);
                self.path.pop();
                true
            }
            Some(Frame::Map { key }) => {
                let k = key.clone().unwrap_or_default();
                self.path.push(PathSeg::Key(k));
                false
            }
            Some(Frame::Seq { next }) => {
                let i = *next;
                *next += 1;
                self.path.push(PathSeg::Index(i));
                self.record(mark, true);
                false
            }
            None => false,
        }
    }

    /// A value node ended: pop its path step and let the parent map take the next key.
    fn value_done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key }) => {
                *key = None;
                self.path.pop();
            }
            Some(Frame::Seq { .. }) => {
                self.path.pop();
            }
            None => {}
        }
    }
}

impl MarkedEventReceiver for Recorder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(s, ..) => {
                let is_key = self.node(&mark, Some(&s));
                let in_map = matches!(self.stack.last(), Some(Frame::Map { .. }));
                if !is_key && in_map {
                    self.record(&mark, true);
                }
                if !is_key {
                    self.value_done();
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if self.node(&mark, None) {
                    // A complex mapping key: not used by flag documents.
                    self.stack.push(Frame::Seq { next: 0 });
                    return;
                }
                if matches!(ev, Event::MappingStart(..)) {
                    self.stack.push(Frame::Map { key: None });
                } else {
                    self.stack.push(Frame::Seq { next: 0 });
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_done();
            }
            Event::Alias(_) => {
                let is_key = self.node(&mark, None);
                if !is_key {
                    self.value_done();
                }
            }
            _ => {}
        }
    }
}
