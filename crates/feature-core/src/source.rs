//! Reading flag documents from YAML or JSON text, with problems located by line and column.
//!
//! A document that is not valid YAML/JSON at all is a [`ParseError`]. A document that parses but
//! has a flag that does not fit the format (unknown field, wrong type) is read anyway: the
//! offending flag is reported as a [`Diagnostic`] and compiled as malformed, the others load.

use crate::compile::compile_with;
use crate::diagnostic::{Diagnostic, PathSeg, Severity};
use crate::locate::Locator;
use crate::model::{Flag, FlagDocument, Segment, Shrink};
use crate::program::Snapshot;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

mod json;
pub(crate) use json::item_texts as json_item_texts;
mod yaml;
#[cfg(test)]
mod yaml_diff_tests;
mod yaml_fast;

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
    /// Reads the key files its segments name (`includedFile`, `excludedFile`) with `read`,
    /// which is given each file's path (checked: relative, without `..`) and the path as
    /// written, and returns the file's text. Their keys join the segments' `included` and
    /// `excluded` lists and the file fields are cleared; a file that cannot be used becomes an
    /// error diagnostic on its field, and its segment matches no one. See [`crate::key_file`].
    pub fn resolve_key_files(
        &mut self,
        mut read: impl FnMut(&std::path::Path, &str) -> Result<String, crate::key_file::KeyFileError>,
    ) {
        let found = crate::key_file::resolve(&mut self.document, &mut read);
        self.diagnostics.extend(found);
    }

    /// Whether any segment names a key file still to be read.
    pub fn has_key_files(&self) -> bool {
        self.document
            .segments
            .values()
            .any(|s| s.included_file.is_some() || s.excluded_file.is_some())
    }

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

/// Reads a flag document from text.
pub fn parse_document(text: &str, format: Format) -> Result<Parsed, ParseError> {
    let locator = Locator::new(text);
    let mut document = FlagDocument::default();
    let mut diagnostics = Vec::new();
    match format {
        // JSON: each flag and segment is read from its own text, without a tree of the document.
        Format::Json => match json::read(text) {
            Some((read, found)) => (document, diagnostics) = (read, found),
            // Not a well-formed mapping: read section by section, to report what is wrong.
            None => {
                for (k, v) in json_sections(text)? {
                    read_field(&k, v, &mut document, &mut diagnostics);
                }
            }
        },
        // YAML: each flag and segment is read one at a time, by the fast reader of the plain
        // subset of YAML when the text is in it, else from the parser's events.
        Format::Yaml => diagnostics = yaml::read(text, &mut document)?,
    }
    Ok(Parsed {
        document,
        diagnostics,
        locator,
    })
}

/// Reads one top-level field of a document.
fn read_field(
    k: &str,
    v: Section<'_>,
    document: &mut FlagDocument,
    diagnostics: &mut Vec<Diagnostic>,
) {
    match k {
        "flags" => read_section(
            v,
            "flags",
            &mut document.flags,
            diagnostics,
            |f: &mut std::sync::Arc<Flag>, k| std::sync::Arc::make_mut(f).key = k.to_owned(),
        ),
        "segments" => read_section(
            v,
            "segments",
            &mut document.segments,
            diagnostics,
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
fn read_section<T: DeserializeOwned + Shrink + Send + Clone>(
    v: Section<'_>,
    section: &str,
    out: &mut crate::model::SortedMap<String, T>,
    diags: &mut Vec<Diagnostic>,
    set_key: impl Fn(&mut T, &str) + Sync,
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
    let items = items.into_iter().map(|(k, v)| (k, v.get())).collect();
    // Each item's text is JSON: the whole text parsed.
    let _ = json::read_items(items, section, out, diags, &set_key);
}

fn parse_raw(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

/// The diagnostic of an item of `section` that does not fit the format, at `at` in the item.
fn item_diagnostic(section: &str, key: String, at: Vec<PathSeg>, message: String) -> Diagnostic {
    let mut path = vec![PathSeg::key(section), PathSeg::Key(key.clone())];
    path.extend(at);
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

fn read_map<T: DeserializeOwned + Shrink + Clone>(
    v: Value,
    section: &str,
    out: &mut crate::model::SortedMap<String, T>,
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
fn read_item<T: DeserializeOwned + Shrink + Clone>(
    body: Value,
    section: &str,
    key: String,
    out: &mut crate::model::SortedMap<String, T>,
    diags: &mut Vec<Diagnostic>,
    set_key: &impl Fn(&mut T, &str),
) {
    if let Some(item) = read_one(body, None, section, &key, diags, set_key) {
        out.insert(key, item);
    }
}

/// One item of `section` read from its tree, or `None` with the reason in `diags`; `again`,
/// when given, builds the same tree again.
///
/// The path of what failed is only needed for an item that does not fit the format, and
/// tracking it is a third of the work of reading an item. With `again`, the item is first read
/// without it, and the tree built again to be read with it only when that fails; without
/// `again`, the path is tracked in the one reading.
fn read_one<T: DeserializeOwned + Shrink>(
    body: Value,
    again: Option<&dyn Fn() -> Option<Value>>,
    section: &str,
    key: &str,
    diags: &mut Vec<Diagnostic>,
    set_key: &impl Fn(&mut T, &str),
) -> Option<T> {
    fn or_empty(v: Value) -> Value {
        if v.is_null() {
            Value::Object(Map::new())
        } else {
            v
        }
    }
    let body = or_empty(body);
    let tracked = |tree: Value| match serde_path_to_error::deserialize::<_, T>(tree) {
        Ok(item) => Ok(item),
        Err(e) => Err((path_in_item(e.path()), e.into_inner().to_string())),
    };
    let read = match again {
        None => tracked(body),
        Some(again) => match T::deserialize(body) {
            Ok(item) => Ok(item),
            Err(e) => match again() {
                Some(tree) => tracked(or_empty(tree)),
                // Not built again (it was built once): the reason, without its path.
                None => Err((Vec::new(), e.to_string())),
            },
        },
    };
    match read {
        Ok(mut item) => {
            // Lists read from a tree grow by doubling: held items keep only what they use.
            item.shrink();
            set_key(&mut item, key);
            Some(item)
        }
        Err((path, message)) => {
            diags.push(item_diagnostic(section, key.to_owned(), path, message));
            None
        }
    }
}

/// Where in an item deserializing it failed.
fn path_in_item(at: &serde_path_to_error::Path) -> Vec<PathSeg> {
    (at.iter())
        .filter_map(|seg| match seg {
            serde_path_to_error::Segment::Seq { index } => Some(PathSeg::Index(*index)),
            serde_path_to_error::Segment::Map { key } => Some(PathSeg::Key(key.clone())),
            serde_path_to_error::Segment::Enum { variant } => Some(PathSeg::Key(variant.clone())),
            serde_path_to_error::Segment::Unknown => None,
        })
        .collect()
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
