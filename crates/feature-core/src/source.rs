//! Reading flag documents from YAML or JSON text, with problems located by line and column.
//!
//! A document that is not valid YAML/JSON at all is a [`ParseError`]. A document that parses but
//! has a flag that does not fit the format (unknown field, wrong type) is read anyway: the
//! offending flag is reported as a [`Diagnostic`] and compiled as malformed, the others load.

use crate::compile::compile_with;
use crate::diagnostic::{Diagnostic, PathSeg, Severity};
use crate::locate::Locator;
use crate::model::{Flag, FlagDocument, Segment};
use crate::program::Snapshot;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
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
    pub fn compile(self, file: Option<&str>) -> Snapshot {
        let Parsed {
            document,
            diagnostics,
            locator,
        } = self;
        let mut snap = compile_with(std::sync::Arc::new(document), diagnostics);
        snap.locate(&locator, file);
        snap
    }
}

/// Refuses a YAML text whose anchors and aliases expand into more nodes than the text has
/// bytes (an "alias bomb": a few kilobytes that expand into gigabytes), with the location of
/// the alias that crosses the line. Texts without anchors (`&`), nearly all flag files, are not
/// scanned. The scan counts nodes as the aliases would expand them, without expanding them.
fn check_alias_expansion(text: &str) -> Result<(), ParseError> {
    if !text.contains('&') {
        return Ok(());
    }
    let mut counter = ExpansionCounter {
        limit: text.len().saturating_add(1024),
        ..ExpansionCounter::default()
    };
    // A text YAML cannot read is reported by the parser proper, with its own message.
    let _ = Parser::new_from_str(text).load(&mut counter, false);
    match counter.exceeded {
        None => Ok(()),
        Some(at) => Err(ParseError {
            file: None,
            line: at.line(),
            column: at.col() + 1,
            message: format!(
                "anchors and aliases expand beyond {} nodes (more than the text's size): refused",
                counter.limit
            ),
        }),
    }
}

/// Counts the nodes a YAML text stands for once its aliases are expanded.
#[derive(Default)]
struct ExpansionCounter {
    /// Nodes so far, aliases expanded.
    nodes: usize,
    limit: usize,
    /// The expanded size of each anchor, by the parser's anchor id.
    sizes: HashMap<usize, usize>,
    /// Anchored collections being read: (anchor id, nodes when it started).
    open: Vec<(usize, usize)>,
    /// Collections being read, whether anchored.
    depth: Vec<bool>,
    exceeded: Option<Marker>,
}

impl MarkedEventReceiver for ExpansionCounter {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.exceeded.is_some() {
            return;
        }
        match ev {
            Event::Scalar(_, _, anchor, _) => {
                self.nodes += 1;
                if anchor > 0 {
                    self.sizes.insert(anchor, 1);
                }
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                self.nodes += 1;
                self.depth.push(anchor > 0);
                if anchor > 0 {
                    self.open.push((anchor, self.nodes - 1));
                }
            }
            Event::SequenceEnd | Event::MappingEnd if self.depth.pop() == Some(true) => {
                if let Some((anchor, start)) = self.open.pop() {
                    self.sizes.insert(anchor, self.nodes - start);
                }
            }
            Event::Alias(anchor) => {
                let size = self.sizes.get(&anchor).copied().unwrap_or(1);
                self.nodes = self.nodes.saturating_add(size);
            }
            _ => {}
        }
        if self.nodes > self.limit {
            self.exceeded = Some(mark);
        }
    }
}

/// Reads a flag document from text.
pub fn parse_document(text: &str, format: Format) -> Result<Parsed, ParseError> {
    let top: Sections<'_> = match format {
        // JSON: each flag and segment is read from its own text, without a tree of the document.
        Format::Json => json_sections(text)?,
        Format::Yaml => {
            check_alias_expansion(text)?;
            let value: Value = serde_yaml_ng::from_str(text).map_err(|e| {
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
            match value {
                Value::Object(m) => m.into_iter().map(|(k, v)| (k, Section::Value(v))).collect(),
                Value::Null => Vec::new(),
                _ => return Err(not_a_mapping()),
            }
        }
    };
    let locator = Locator::new(text);
    let mut document = FlagDocument::default();
    let mut diagnostics = Vec::new();
    for (k, v) in top {
        match k.as_str() {
            "flags" => read_section(
                v,
                "flags",
                &mut document.flags,
                &mut diagnostics,
                |f: &mut std::sync::Arc<Flag>, k| std::sync::Arc::make_mut(f).key = k.to_owned(),
            ),
            "segments" => read_section(
                v,
                "segments",
                &mut document.segments,
                &mut diagnostics,
                |s: &mut std::sync::Arc<Segment>, k| std::sync::Arc::make_mut(s).key = k.to_owned(),
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

fn not_a_mapping() -> ParseError {
    ParseError {
        file: None,
        line: 1,
        column: 1,
        message: "a flag document must be a mapping with `flags` (and `segments`)".into(),
    }
}

/// The top-level fields of a document, in the order a JSON object's keys iterate.
type Sections<'a> = Vec<(String, Section<'a>)>;

/// A top-level field: a parsed value (YAML), or its JSON text, read item by item.
enum Section<'a> {
    Value(Value),
    Json(&'a RawValue),
}

/// Splits a JSON document into its top-level fields, checking the whole text's syntax.
fn json_sections(text: &str) -> Result<Sections<'_>, ParseError> {
    let json_error = |e: serde_json::Error| ParseError {
        file: None,
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    };
    let raw: &RawValue = serde_json::from_str(text).map_err(json_error)?;
    let body = raw.get();
    if body == "null" {
        return Ok(Vec::new());
    }
    if !body.starts_with('{') {
        return Err(not_a_mapping());
    }
    // A key given twice keeps its last value, as in a parsed JSON object.
    let fields: BTreeMap<String, &RawValue> = serde_json::from_str(body).map_err(json_error)?;
    Ok(fields
        .into_iter()
        .map(|(k, v)| (k, Section::Json(v)))
        .collect())
}

/// Reads the items of a `flags` or `segments` section.
fn read_section<T: DeserializeOwned>(
    v: Section<'_>,
    section: &str,
    out: &mut BTreeMap<String, T>,
    diags: &mut Vec<Diagnostic>,
    set_key: impl Fn(&mut T, &str),
) {
    let raw = match v {
        Section::Value(v) => return read_map(v, section, out, diags, set_key),
        Section::Json(raw) => raw,
    };
    let items: BTreeMap<String, &RawValue> = match raw.get().as_bytes().first() {
        Some(b'{') => match serde_json::from_str(raw.get()) {
            Ok(items) => items,
            // Not reachable for text that parsed; read it as a value to report it.
            Err(_) => return read_map(parse_raw(raw), section, out, diags, set_key),
        },
        _ => return read_map(parse_raw(raw), section, out, diags, set_key),
    };
    for (key, body) in items {
        // One item's tree at a time: read from a tree, as YAML items are, the model's lists
        // get their exact sizes and errors their usual messages.
        read_item(parse_raw(body), section, key, out, diags, &set_key);
    }
}

fn parse_raw(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

/// The diagnostic of an item of `section` that does not fit the format.
fn item_diagnostic(
    section: &str,
    key: String,
    at: &serde_path_to_error::Path,
    message: String,
) -> Diagnostic {
    let mut path = vec![PathSeg::key(section), PathSeg::Key(key.clone())];
    for seg in at.iter() {
        match seg {
            serde_path_to_error::Segment::Seq { index } => path.push(PathSeg::Index(*index)),
            serde_path_to_error::Segment::Map { key } => path.push(PathSeg::Key(key.clone())),
            serde_path_to_error::Segment::Enum { variant } => {
                path.push(PathSeg::Key(variant.clone()))
            }
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    Diagnostic {
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
        message,
    }
}

fn read_map<T: DeserializeOwned>(
    v: Value,
    section: &str,
    out: &mut BTreeMap<String, T>,
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
        read_item(body, section, key, out, diags, &set_key);
    }
}

/// Reads one item of `section`, or reports why it does not fit the format.
fn read_item<T: DeserializeOwned>(
    body: Value,
    section: &str,
    key: String,
    out: &mut BTreeMap<String, T>,
    diags: &mut Vec<Diagnostic>,
    set_key: &impl Fn(&mut T, &str),
) {
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
            let path = e.path().clone();
            let message = e.into_inner().to_string();
            diags.push(item_diagnostic(section, key, &path, message));
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
