//! Reading a YAML flag document one flag (or segment) at a time from the parser's events.
//!
//! The document is never held as a tree: each item of `flags` and `segments` is built into a
//! small tree, read into the model and dropped before the next one is read. Everything else
//! (top-level fields that are not mappings of items, anchored sections) is built whole, as it
//! is small. Scalars resolve as in the YAML 1.2 core schema (only `true`/`false` are booleans;
//! `null`, `~` and the empty scalar are null; decimal, `0x`, `0o`, `0b` integers; `.inf`,
//! `.nan` and decimal floats), anchors and aliases expand, and `<<` is an ordinary key.
//!
//! A text in the plain subset of YAML that flag documents are written in is read by a faster
//! reader ([`super::yaml_fast`]) that gives the same document and diagnostics; any other text,
//! and every text with an error, is read here.

use super::{read_field, ParseError};
use crate::diagnostic::Diagnostic;
use crate::model::{Flag, FlagDocument, Segment};
use serde_json::{Map, Number, Value};
use std::collections::{BTreeMap, HashMap};
use std::str::Chars;
use std::sync::Arc;
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Collections nested deeper than this are refused (the recursion limit of common YAML
/// readers; a flag document needs fewer than ten levels).
pub(super) const MAX_DEPTH: usize = 128;

/// The standard tags' prefix (`!!int` is `tag:yaml.org,2002:int`).
const CORE: &str = "tag:yaml.org,2002:";

/// The diagnostics of a top-level field: all of them, or by item for `flags` and `segments`
/// read one item at a time.
pub(super) enum FieldDiagnostics {
    Whole(Vec<Diagnostic>),
    Items(BTreeMap<String, Vec<Diagnostic>>),
}

/// Reads a YAML document into `document`, returning the diagnostics of the items that do not
/// fit the format, in the order a parsed mapping's keys iterate (sorted; a repeated key keeps
/// its last value).
pub(super) fn read(text: &str, document: &mut FlagDocument) -> Result<Vec<Diagnostic>, ParseError> {
    match super::yaml_fast::read(text, document) {
        Some(diagnostics) => Ok(diagnostics),
        None => read_events(text, document),
    }
}

/// [`read`] from the parser's events, for any text.
pub(super) fn read_events(
    text: &str,
    document: &mut FlagDocument,
) -> Result<Vec<Diagnostic>, ParseError> {
    let mut r = Reader {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        nodes: 0,
        // Texts without anchors have no aliases to expand: nothing to count.
        limit: text.contains('&').then(|| text.len().saturating_add(1024)),
    };
    let mut fields: BTreeMap<String, FieldDiagnostics> = BTreeMap::new();
    // StreamStart, then DocumentStart or StreamEnd (an empty text is an empty document).
    r.next()?;
    let (ev, _) = r.next()?;
    if ev == Event::StreamEnd {
        return Ok(Vec::new());
    }
    let (ev, mark) = r.next()?;
    match ev {
        Event::MappingStart(0, None) => loop {
            let (ev, mark) = r.next()?;
            let key = match ev {
                Event::MappingEnd => break,
                ev => r.key(ev, mark)?,
            };
            // A repeated field replaces the earlier one.
            fields.remove(&key);
            match key.as_str() {
                "flags" => document.flags.clear(),
                "segments" => document.segments.clear(),
                _ => {}
            }
            let streamed = matches!(key.as_str(), "flags" | "segments")
                && matches!(r.peek()?, Event::MappingStart(0, None));
            if streamed {
                r.next()?;
                let items = r.items(&key, document)?;
                fields.insert(key, FieldDiagnostics::Items(items));
            } else {
                let (ev, mark) = r.next()?;
                let (value, _) = r.value(ev, mark, 2)?;
                let mut diags = Vec::new();
                read_field(&key, super::Section::Value(value), document, &mut diags);
                fields.insert(key, FieldDiagnostics::Whole(diags));
            }
        },
        ev => {
            let (value, _) = r.value(ev, mark, 1)?;
            match value {
                Value::Object(m) => {
                    for (key, value) in m {
                        let mut diags = Vec::new();
                        read_field(&key, super::Section::Value(value), document, &mut diags);
                        fields.insert(key, FieldDiagnostics::Whole(diags));
                    }
                }
                Value::Null => {}
                _ => return Err(super::not_a_mapping()),
            }
        }
    }
    // DocumentEnd, then the end of the stream: a second document is refused.
    r.next()?;
    let (ev, mark) = r.next()?;
    if ev != Event::StreamEnd {
        return Err(error(
            mark,
            "deserializing from YAML containing more than one document is not supported".into(),
        ));
    }
    Ok(field_diagnostics(fields))
}

/// The diagnostics of the top-level fields, in the order of their keys.
pub(super) fn field_diagnostics(fields: BTreeMap<String, FieldDiagnostics>) -> Vec<Diagnostic> {
    fields
        .into_values()
        .flat_map(|f| match f {
            FieldDiagnostics::Whole(d) => d,
            FieldDiagnostics::Items(items) => items.into_values().flatten().collect(),
        })
        .collect()
}

struct Reader<'t> {
    parser: Parser<Chars<'t>>,
    /// Anchored nodes by the parser's anchor id: their value and their size in nodes.
    anchors: HashMap<usize, (Value, usize)>,
    /// Nodes read so far, aliases counted as the nodes they stand for.
    nodes: usize,
    /// The most nodes the text may stand for (an "alias bomb" crosses it).
    limit: Option<usize>,
}

fn error(mark: Marker, message: String) -> ParseError {
    ParseError {
        file: None,
        line: mark.line(),
        column: mark.col() + 1,
        message,
    }
}

fn scan_error(e: yaml_rust2::ScanError) -> ParseError {
    let m = *e.marker();
    let message = format!("{} at line {} column {}", e.info(), m.line(), m.col() + 1);
    error(m, message)
}

impl Reader<'_> {
    fn peek(&mut self) -> Result<&Event, ParseError> {
        self.parser.peek().map(|(ev, _)| ev).map_err(scan_error)
    }

    /// The next event, counted against the expansion limit.
    fn next(&mut self) -> Result<(Event, Marker), ParseError> {
        let (ev, mark) = self.parser.next_token().map_err(scan_error)?;
        let Some(limit) = self.limit else {
            return Ok((ev, mark));
        };
        match &ev {
            Event::Scalar(..) | Event::SequenceStart(..) | Event::MappingStart(..) => {
                self.nodes += 1
            }
            Event::Alias(id) => {
                let size = self.anchors.get(id).map_or(1, |(_, n)| *n);
                self.nodes = self.nodes.saturating_add(size);
            }
            _ => {}
        }
        if self.nodes > limit {
            return Err(error(
                mark,
                format!(
                    "anchors and aliases expand beyond {limit} nodes (more than the text's size): refused"
                ),
            ));
        }
        Ok((ev, mark))
    }

    /// A mapping key starting with `ev`: its text.
    fn key(&mut self, ev: Event, mark: Marker) -> Result<String, ParseError> {
        match ev {
            Event::Scalar(s, _, anchor, _) => {
                if anchor > 0 {
                    self.anchors.insert(anchor, (Value::String(s.clone()), 1));
                }
                Ok(exact(s))
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some((Value::String(s), _)) => Ok(s.clone()),
                Some((v @ (Value::Number(_) | Value::Bool(_)), _)) => Ok(v.to_string()),
                Some((Value::Null, _)) => Ok(String::new()),
                _ => Err(error(mark, "a mapping key must be a string".into())),
            },
            _ => Err(error(mark, "a mapping key must be a string".into())),
        }
    }

    /// Reads the items of a `flags` or `segments` mapping (its start already read) one at a
    /// time into `document`; returns their diagnostics by item.
    fn items(
        &mut self,
        section: &str,
        document: &mut FlagDocument,
    ) -> Result<BTreeMap<String, Vec<Diagnostic>>, ParseError> {
        let mut diags: BTreeMap<String, Vec<Diagnostic>> = BTreeMap::new();
        loop {
            let (ev, mark) = self.next()?;
            let key = match ev {
                Event::MappingEnd => return Ok(diags),
                ev => self.key(ev, mark)?,
            };
            let (ev, mark) = self.next()?;
            let (body, _) = self.value(ev, mark, 3)?;
            let found = read_section_item(section, &key, body, document);
            diags.insert(key, found);
        }
    }

    /// The value of the node that starts with `ev`, at nesting `depth`, and its size in nodes.
    fn value(
        &mut self,
        ev: Event,
        mark: Marker,
        depth: usize,
    ) -> Result<(Value, usize), ParseError> {
        let start = self.nodes.saturating_sub(1);
        let is_list = matches!(ev, Event::SequenceStart(..));
        let (value, anchor) = match ev {
            Event::Scalar(s, style, anchor, tag) => (scalar(s, style, tag, mark)?, anchor),
            Event::Alias(id) => {
                return match self.anchors.get(&id) {
                    Some((v, n)) => Ok((v.clone(), *n)),
                    None => Err(error(mark, "unknown anchor".into())),
                }
            }
            Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag) => {
                local_tag(tag.as_ref(), mark)?;
                if depth > MAX_DEPTH {
                    return Err(error(mark, "recursion limit exceeded".into()));
                }
                let value = if is_list {
                    let mut list = Vec::new();
                    loop {
                        let (ev, mark) = self.next()?;
                        if ev == Event::SequenceEnd {
                            break;
                        }
                        list.push(self.value(ev, mark, depth + 1)?.0);
                    }
                    Value::Array(list)
                } else {
                    let mut map = Map::new();
                    loop {
                        let (ev, mark) = self.next()?;
                        if ev == Event::MappingEnd {
                            break;
                        }
                        let key = self.key(ev, mark)?;
                        let (ev, mark) = self.next()?;
                        let value = self.value(ev, mark, depth + 1)?.0;
                        map.insert(key, value);
                    }
                    Value::Object(map)
                };
                (value, anchor)
            }
            _ => return Err(error(mark, "unexpected YAML event".into())),
        };
        let size = self.nodes.saturating_sub(start).max(1);
        if anchor > 0 {
            self.anchors.insert(anchor, (value.clone(), size));
        }
        Ok((value, size))
    }
}

/// Refuses application tags (`!thing`): a flag document has no use for them.
fn local_tag(tag: Option<&Tag>, mark: Marker) -> Result<(), ParseError> {
    match tag {
        Some(t) if t.handle != CORE => Err(error(
            mark,
            format!("unsupported YAML tag `{}{}`", t.handle, t.suffix),
        )),
        _ => Ok(()),
    }
}

/// A scalar's value: plain scalars resolve to null, booleans and numbers; quoted and block
/// scalars are strings; `!!str`, `!!int`, `!!float`, `!!bool`, `!!null` say which.
fn scalar(
    s: String,
    style: TScalarStyle,
    tag: Option<Tag>,
    mark: Marker,
) -> Result<Value, ParseError> {
    let invalid = |what: &str, s: &str| {
        error(
            mark,
            format!("invalid value: string {s:?}, expected {what}"),
        )
    };
    if let Some(tag) = &tag {
        local_tag(Some(tag), mark)?;
        return match tag.suffix.as_str() {
            "bool" => bool_of(&s)
                .map(Value::Bool)
                .ok_or_else(|| invalid("a boolean", &s)),
            "int" => int_of(&s).ok_or_else(|| invalid("an integer", &s)),
            "float" => float_of(&s)
                .map(float_value)
                .ok_or_else(|| invalid("a float", &s)),
            "null" if null_of(&s) => Ok(Value::Null),
            "null" => Err(invalid("null", &s)),
            // `!!str` and the other standard tags (`!!timestamp`, `!!binary`): the text.
            _ => Ok(Value::String(exact(s))),
        };
    }
    if style == TScalarStyle::Plain {
        Ok(resolve_plain(&s))
    } else {
        Ok(Value::String(exact(s)))
    }
}

/// The parser's strings have room to spare; the model keeps them, so they are cut to size.
fn exact(mut s: String) -> String {
    s.shrink_to_fit();
    s
}

/// A plain scalar's value: null, a boolean, a number, or else the text.
pub(super) fn resolve_plain(s: &str) -> Value {
    match s.as_bytes().first() {
        // Most plain scalars are words: a letter other than those of `null`, `true` and
        // `false` starts no number but `inf`, `infinity` and `nan` in any case, which are not
        // finite (so not numbers here).
        Some(c)
            if c.is_ascii_alphabetic() && !matches!(c, b'n' | b'N' | b't' | b'T' | b'f' | b'F') =>
        {
            return Value::String(s.to_owned())
        }
        None => return Value::Null,
        _ => {}
    }
    if null_of(s) {
        return Value::Null;
    }
    if let Some(b) = bool_of(s) {
        return Value::Bool(b);
    }
    if let Some(n) = int_of(s) {
        return n;
    }
    if !digits_but_not_number(s) {
        if let Some(f) = float_of(s) {
            return float_value(f);
        }
    }
    Value::String(s.to_owned())
}

fn null_of(s: &str) -> bool {
    matches!(s, "null" | "Null" | "NULL" | "~")
}

fn bool_of(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn float_value(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// Leading zeros followed by digits: a string in YAML 1.2 (`0123`).
fn digits_but_not_number(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    s.len() > 1 && s.starts_with('0') && s[1..].bytes().all(|b| b.is_ascii_digit())
}

/// An integer: decimal, or `0x`/`0o`/`0b` with an optional sign.
fn int_of(s: &str) -> Option<Value> {
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.starts_with(['+', '-']) {
        return None;
    }
    let (radix, body) = if let Some(r) = digits.strip_prefix("0x") {
        (16, r)
    } else if let Some(r) = digits.strip_prefix("0o") {
        (8, r)
    } else if let Some(r) = digits.strip_prefix("0b") {
        (2, r)
    } else {
        if digits_but_not_number(s) {
            return None;
        }
        (10, digits)
    };
    if body.is_empty() || body.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = u128::from_str_radix(body, radix).ok()?;
    if negative {
        let n = 0i128.checked_sub_unsigned(magnitude)?;
        if n == 0 {
            return Some(Value::Number(0u64.into()));
        }
        i64::try_from(n).ok().map(|n| Value::Number(n.into()))
    } else {
        u64::try_from(magnitude)
            .ok()
            .map(|n| Value::Number(n.into()))
    }
}

fn float_of(s: &str) -> Option<f64> {
    let unsigned = match s.strip_prefix('+') {
        Some(u) if u.starts_with(['+', '-']) => return None,
        Some(u) => u,
        None => s,
    };
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        return Some(f64::INFINITY);
    }
    if matches!(s, "-.inf" | "-.Inf" | "-.INF") {
        return Some(f64::NEG_INFINITY);
    }
    if matches!(s, ".nan" | ".NaN" | ".NAN") {
        return Some(f64::NAN);
    }
    unsigned.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Reads one item of `section` (`flags` or `segments`) into `document`, replacing an earlier
/// item with the same key; returns its diagnostics. Shared by both YAML readers.
pub(super) fn read_section_item(
    section: &str,
    key: &str,
    body: Value,
    document: &mut FlagDocument,
) -> Vec<Diagnostic> {
    let (item, found) = read_section_value(section, key, body, None);
    put_section_item(section, key.to_owned(), item, document);
    found
}

/// An item of `flags` or `segments`, read but not yet put in a document.
pub(super) enum SectionItem {
    /// An item of `flags`.
    Flag(Arc<Flag>),
    /// An item of `segments`.
    Segment(Arc<Segment>),
}

/// One item of `section` read from its tree (`None` when it does not fit the format), and its
/// diagnostics: the part of [`read_section_item`] that needs no document. `again`, when given,
/// builds the same tree again, for an item that does not fit the format: the item is then
/// first read without tracking where it fails (see `read_one`).
pub(super) fn read_section_value(
    section: &str,
    key: &str,
    body: Value,
    again: Option<&dyn Fn() -> Option<Value>>,
) -> (Option<SectionItem>, Vec<Diagnostic>) {
    let mut found = Vec::new();
    let item = if section == "flags" {
        let set_key = |f: &mut Arc<Flag>, k: &str| Arc::make_mut(f).key = k.to_owned();
        super::read_one(body, again, section, key, &mut found, &set_key).map(SectionItem::Flag)
    } else {
        let set_key = |s: &mut Arc<Segment>, k: &str| Arc::make_mut(s).key = k.to_owned();
        super::read_one(body, again, section, key, &mut found, &set_key).map(SectionItem::Segment)
    };
    (item, found)
}

/// Puts an item read by [`read_section_value`] in `document`, replacing an earlier item of
/// `section` with the same key (removing it when the new one could not be read).
pub(super) fn put_section_item(
    section: &str,
    key: String,
    item: Option<SectionItem>,
    document: &mut FlagDocument,
) {
    match item {
        Some(SectionItem::Flag(f)) => {
            document.flags.insert(key, f);
        }
        Some(SectionItem::Segment(s)) => {
            document.segments.insert(key, s);
        }
        None if section == "flags" => {
            document.flags.remove(&key);
        }
        None => {
            document.segments.remove(&key);
        }
    }
}
