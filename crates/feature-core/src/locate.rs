//! Line and column of a path in a flag document's text, for diagnostics.

use crate::diagnostic::PathSeg;
use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Line and column of every node of a YAML or JSON text, by path.
///
/// The index is built on the first [`Locator::locate`]: a document without problems never pays
/// for it (it costs more than parsing the document itself).
#[derive(Debug, Clone, Default)]
pub struct Locator {
    text: std::sync::Arc<str>,
    spans: std::sync::OnceLock<HashMap<Vec<PathSeg>, (usize, usize)>>,
}

impl Locator {
    /// A locator over a text. Text that YAML cannot read locates nothing.
    pub fn new(text: &str) -> Locator {
        Locator {
            text: text.into(),
            spans: std::sync::OnceLock::new(),
        }
    }

    fn spans(&self) -> &HashMap<Vec<PathSeg>, (usize, usize)> {
        self.spans.get_or_init(|| {
            let mut r = Recorder::default();
            let mut parser = Parser::new_from_str(&self.text);
            if parser.load(&mut r, false).is_err() {
                return HashMap::new();
            }
            r.spans
        })
    }

    /// The line and column (from 1) of the deepest node of `path` that exists.
    pub fn locate(&self, path: &[PathSeg]) -> Option<(usize, usize)> {
        let spans = self.spans();
        (0..=path.len())
            .rev()
            .find_map(|n| spans.get(&path[..n]).copied())
    }
}

enum Frame {
    Map { key: Option<String> },
    Seq { next: usize },
}

#[derive(Default)]
struct Recorder {
    stack: Vec<Frame>,
    path: Vec<PathSeg>,
    spans: HashMap<Vec<PathSeg>, (usize, usize)>,
}

impl Recorder {
    fn at(m: &Marker) -> (usize, usize) {
        (m.line(), m.col() + 1)
    }

    /// A node starts: returns whether it is a mapping key.
    fn node(&mut self, mark: &Marker, scalar: Option<&str>) -> bool {
        match self.stack.last_mut() {
            Some(Frame::Map { key }) if key.is_none() => {
                let k = scalar.unwrap_or("").to_owned();
                let mut p = self.path.clone();
                p.push(PathSeg::Key(k.clone()));
                self.spans.entry(p).or_insert(Self::at(mark));
                *key = Some(k);
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
                self.spans.insert(self.path.clone(), Self::at(mark));
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

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(s, ..) => {
                let is_key = self.node(&mark, Some(&s));
                let in_map = matches!(self.stack.last(), Some(Frame::Map { .. }));
                if !is_key && in_map {
                    self.spans.insert(self.path.clone(), Self::at(&mark));
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
