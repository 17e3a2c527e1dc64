//! Reading flag documents from YAML or JSON text, with problems located by line and column.
//!
//! A document that is not valid YAML/JSON at all is a [`ParseError`]. A document that parses but
//! has a flag that does not fit the format (unknown field, wrong type) is read anyway: the
//! offending flag is reported as a [`Diagnostic`] and compiled as malformed, the others load.

use crate::model::{Flag, FlagDocument, Segment};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// The text format of a flag document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML (`.yaml`, `.yml`).
    Yaml,
    /// JSON (`.json`).
    Json,
}

impl Format {
    /// The format a file name's extension implies: `.json` is JSON, anything else YAML.
    pub fn from_path(path: &std::path::Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Yaml,
        }
    }
}

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSeg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

impl PathSeg {
    /// A key step.
    pub fn key(k: &str) -> PathSeg {
        PathSeg::Key(k.to_owned())
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The flag, or the part of it that is reached, evaluates to `MALFORMED_FLAG`.
    Error,
    /// The flag works, but probably not as meant (e.g. an unknown operator never matches).
    Warning,
}

/// A problem in a flag document, located when the document's text is known.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// The file, when the document came from one.
    pub file: Option<String>,
    /// Line, from 1.
    pub line: Option<usize>,
    /// Column, from 1.
    pub column: Option<usize>,
    /// The flag (or `segment KEY`) concerned.
    pub flag: String,
    /// Where in the document.
    pub path: Vec<PathSeg>,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
}

impl Diagnostic {
    /// The path as text: `flags.my-flag.rules[0].clauses[1]`.
    pub fn path_string(&self) -> String {
        let mut s = String::new();
        for p in &self.path {
            match p {
                PathSeg::Key(k) => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                }
                PathSeg::Index(i) => s.push_str(&format!("[{i}]")),
            }
        }
        s
    }
}

impl fmt::Display for Diagnostic {
    /// `file:line:column: flag: message` (parts that are unknown are left out).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}:")?;
        }
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, "{l}:{c}:")?;
        }
        if self.file.is_some() || self.line.is_some() {
            f.write_str(" ")?;
        }
        if !self.flag.is_empty() {
            write!(f, "{}: ", self.flag)?;
        }
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        write!(f, "{} (at {})", self.message, self.path_string())
    }
}

/// The document could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{line}:{column}: {message}", file.as_deref().map(|f| format!("{f}:")).unwrap_or_default())]
pub struct ParseError {
    /// The file, when known.
    pub file: Option<String>,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl ParseError {
    /// Names the file the text came from.
    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }
}

/// A parsed document and what was wrong with parts of it.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The flags and segments that could be read.
    pub document: FlagDocument,
    /// Problems with flags that could not be read (they are compiled as malformed).
    pub diagnostics: Vec<Diagnostic>,
    /// Finds the line and column of a path in the source text.
    pub locator: Locator,
}

impl Parsed {
    /// Compiles the document, locating every diagnostic in the source and naming `file`.
    pub fn compile(self, file: Option<&str>) -> crate::Snapshot {
        let Parsed {
            document,
            diagnostics,
            locator,
        } = self;
        let mut snap = crate::compile::compile_with(std::sync::Arc::new(document), diagnostics);
        snap.locate(&locator, file);
        snap
    }
}

/// Reads a flag document from text.
pub fn parse_document(text: &str, format: Format) -> Result<Parsed, ParseError> {
    let value: Value = match format {
        Format::Json => serde_json::from_str(text).map_err(|e| ParseError {
            file: None,
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?,
        Format::Yaml => {
            let v: Value = serde_yaml_ng::from_str(text).map_err(|e| {
                let (line, column) = e
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((1, 1));
                ParseError {
                    file: None,
                    line,
                    column,
                    message: e.to_string(),
                }
            })?;
            v
        }
    };
    let locator = Locator::new(text);
    let top = match value {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        _ => {
            return Err(ParseError {
                file: None,
                line: 1,
                column: 1,
                message: "a flag document must be a mapping with `flags` (and `segments`)".into(),
            })
        }
    };
    let mut document = FlagDocument::default();
    let mut diagnostics = Vec::new();
    for (k, v) in top {
        match k.as_str() {
            "flags" => read_map(
                v,
                "flags",
                &mut document.flags,
                &mut diagnostics,
                |f: &mut Flag, k| f.key = k.to_owned(),
            ),
            "segments" => read_map(
                v,
                "segments",
                &mut document.segments,
                &mut diagnostics,
                |s: &mut Segment, k| s.key = k.to_owned(),
            ),
            "version" => {}
            other => diagnostics.push(Diagnostic {
                file: None,
                line: None,
                column: None,
                flag: String::new(),
                path: vec![PathSeg::key(other)],
                severity: Severity::Warning,
                message: format!("unknown top-level field `{other}` is ignored"),
            }),
        }
    }
    Ok(Parsed {
        document,
        diagnostics,
        locator,
    })
}

fn read_map<T: DeserializeOwned>(
    v: Value,
    section: &str,
    out: &mut std::collections::BTreeMap<String, T>,
    diags: &mut Vec<Diagnostic>,
    set_key: impl Fn(&mut T, &str),
) {
    let map = match v {
        Value::Object(m) => m,
        Value::Null => return,
        other => {
            diags.push(Diagnostic {
                file: None,
                line: None,
                column: None,
                flag: String::new(),
                path: vec![PathSeg::key(section)],
                severity: Severity::Error,
                message: format!(
                    "`{section}` must be a mapping by key, found {}",
                    kind_name(&other)
                ),
            });
            return;
        }
    };
    for (key, body) in map {
        let body = if body.is_null() {
            Value::Object(Map::new())
        } else {
            body
        };
        match serde_path_to_error::deserialize::<_, T>(body) {
            Ok(mut item) => {
                set_key(&mut item, &key);
                out.insert(key, item);
            }
            Err(e) => {
                let mut path = vec![PathSeg::key(section), PathSeg::Key(key.clone())];
                for seg in e.path().iter() {
                    match seg {
                        serde_path_to_error::Segment::Seq { index } => {
                            path.push(PathSeg::Index(*index))
                        }
                        serde_path_to_error::Segment::Map { key } => {
                            path.push(PathSeg::Key(key.clone()))
                        }
                        serde_path_to_error::Segment::Enum { variant } => {
                            path.push(PathSeg::Key(variant.clone()))
                        }
                        serde_path_to_error::Segment::Unknown => {}
                    }
                }
                diags.push(Diagnostic {
                    file: None,
                    line: None,
                    column: None,
                    flag: if section == "flags" {
                        key
                    } else {
                        format!("segment {key}")
                    },
                    path,
                    severity: Severity::Error,
                    message: e.into_inner().to_string(),
                });
            }
        }
    }
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

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

impl crate::Snapshot {
    /// Fills in line, column and file of every diagnostic.
    pub fn locate(&mut self, locator: &Locator, file: Option<&str>) {
        for d in self.diagnostics_mut() {
            if d.line.is_none() {
                if let Some((l, c)) = locator.locate(&d.path) {
                    d.line = Some(l);
                    d.column = Some(c);
                }
            }
            if let Some(f) = file {
                d.file = Some(f.to_owned());
            }
        }
    }
}
