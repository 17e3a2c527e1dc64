//! A fast reader for the subset of YAML that flag documents are written in, giving exactly what
//! the event reader ([`super::yaml`]) gives, or nothing so that the event reader reads the text.
//!
//! The subset: a document that is a block mapping at column 0, optionally after `---`; block
//! mappings and sequences laid out by indentation with spaces (a mapping's value may be a
//! sequence at the key's own indentation); plain, single-quoted and double-quoted scalars on
//! one line; literal and folded block scalars as a mapping's value (`description: |`); flow
//! sequences and mappings of those on one line (`[a, b]`, `{k: v}`, `[]`, `{}`);
//! comments and blank lines; `\n` or `\r\n` line ends. Scalars resolve as the event reader
//! resolves them (the same functions). Anything else gives up and lets the event reader read
//! the whole text: anchors, aliases, tags, block scalars other than the common forms (see
//! [`Reader::block_scalar`]), multi-line plain or quoted scalars, complex
//! keys, directives, more than one document, tabs, control characters, a key or value the
//! reader is unsure of, and every syntax error (so errors are always reported by the event
//! reader, with its messages and positions).
//!
//! Nothing is written into the caller's document until the whole text has been read: a text
//! that gives up late costs the time read so far, never a different result.
//!
//! A large `flags` or `segments` section is read on several threads: one pass finds the lines
//! where its items begin (the lines at the items' indentation that are not comments or
//! sequence entries: an item's own lines are indented further, a block scalar's included), and
//! each thread reads a run of consecutive items from the text cut at the run's end, as the
//! reader on one thread reads them. The items are then put in the document in text order, so
//! the outcome is that of reading them one by one (a later item with the same key replaces an
//! earlier one); a run that gives up gives up the whole text.

use super::yaml::{
    put_section_item, read_section_value, resolve_plain, FieldDiagnostics, SectionItem, MAX_DEPTH,
};
use crate::diagnostic::Diagnostic;
use crate::model::FlagDocument;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The text is outside the subset (or not YAML at all): the event reader reads it.
struct GiveUp;

type Fast<T> = Result<T, GiveUp>;

/// Keys longer than this are left to the event reader (YAML limits implicit keys to 1024
/// characters).
const MAX_KEY: usize = 1000;

/// Reads `text` into `document` if it is in the subset, returning the diagnostics the event
/// reader would return; `None` (and `document` untouched) when it is not.
pub(super) fn read(text: &str, document: &mut FlagDocument) -> Option<Vec<Diagnostic>> {
    read_with(text, document, super::json::threads_for)
}

/// [`read`], with `threads` giving the number of threads to read a section of `n` items with.
pub(super) fn read_with(
    text: &str,
    document: &mut FlagDocument,
    threads: fn(usize) -> usize,
) -> Option<Vec<Diagnostic>> {
    if !plain_characters(text.as_bytes()) {
        return None;
    }
    let mut local = document.clone();
    let mut r = Reader::new(text, 0, 0, threads);
    let fields = r.document(&mut local).ok()?;
    *document = local;
    Some(super::yaml::field_diagnostics(fields))
}

/// Whether the text has only the characters the subset reads: no control characters but line
/// feeds and `\r\n`, no tabs, no byte order mark, no C1 controls, no Unicode line separators or
/// non-characters.
fn plain_characters(b: &[u8]) -> bool {
    const CHUNK: usize = 64;
    let mut at = 0;
    for chunk in b.chunks(CHUNK) {
        // Printable ASCII and line feeds only: nothing to look at closer. A fold rather than
        // `all`, so that the whole chunk is tested at once (in vector registers).
        let plain = chunk.iter().fold(true, |plain, &c| {
            plain & ((c.wrapping_sub(0x20) < 0x5f) | (c == b'\n'))
        });
        if !plain {
            for i in at..at + chunk.len() {
                if !plain_character(b, i) {
                    return false;
                }
            }
        }
        at += chunk.len();
    }
    true
}

/// Whether byte `i` of `b` is one [`plain_characters`] allows (a UTF-8 sequence is judged at its
/// first byte).
fn plain_character(b: &[u8], i: usize) -> bool {
    let c = b[i];
    match c {
        b'\n' | 0x20..=0x7e => true,
        b'\r' => b.get(i + 1) == Some(&b'\n'),
        0xc2 => !matches!(b.get(i + 1), Some(0x80..=0x9f)),
        0xe2 => !(b.get(i + 1) == Some(&0x80) && matches!(b.get(i + 2), Some(0xa8 | 0xa9))),
        0xef => {
            !(b.get(i + 1) == Some(&0xbb) && b.get(i + 2) == Some(&0xbf)
                || b.get(i + 1) == Some(&0xbf) && matches!(b.get(i + 2), Some(0xbe | 0xbf)))
        }
        c => c >= 0x80,
    }
}

/// How a plain scalar in block context ended.
#[derive(PartialEq, Eq)]
enum End {
    /// At `:` followed by a space or the line's end: it is a key.
    Colon,
    /// At the end of the line, or at a comment.
    Line,
}

struct Reader<'t> {
    text: &'t str,
    b: &'t [u8],
    /// The next byte to read.
    pos: usize,
    /// Where the current line starts.
    line_start: usize,
    /// The number of threads to read a section of `n` items with (1: this thread).
    threads: fn(usize) -> usize,
}

/// An item of a section read by a thread: its key, the item (`None` when it does not fit the
/// format) and its diagnostics.
type ReadItem = (String, Option<SectionItem>, Vec<Diagnostic>);

/// Reads the items of a section at `indent` in `text[from..to]`, a run of whole items that
/// begins at the start of an item's line, as the reader on one thread reads them
/// ([`Reader::run`], on the text cut at the run's end).
fn read_run(
    text: &str,
    from: usize,
    to: usize,
    indent: usize,
    section: &str,
) -> Fast<Vec<ReadItem>> {
    let text = text.get(..to).ok_or(GiveUp)?;
    Reader::new(text, from + indent, from, |_| 1).run(section, indent)
}

impl<'t> Reader<'t> {
    /// A reader of `text` standing at `pos`, on the line that starts at `line_start`.
    fn new(text: &'t str, pos: usize, line_start: usize, threads: fn(usize) -> usize) -> Self {
        Reader {
            text,
            b: text.as_bytes(),
            pos,
            line_start,
            threads,
        }
    }

    fn at(&self, i: usize) -> u8 {
        self.b.get(i).copied().unwrap_or(0)
    }

    fn cur(&self) -> u8 {
        self.at(self.pos)
    }

    fn col(&self) -> usize {
        self.pos - self.line_start
    }

    fn slice(&self, from: usize, to: usize) -> Fast<&'t str> {
        self.text.get(from..to).ok_or(GiveUp)
    }

    /// The text from the reader on.
    fn rest(&self) -> &'t [u8] {
        self.b.get(self.pos..).unwrap_or_default()
    }

    /// Whether byte `i` ends a line (or the text).
    fn eol(&self, i: usize) -> bool {
        matches!(self.b.get(i), None | Some(b'\n' | b'\r'))
    }

    /// Whether byte `i` is a space or ends a line.
    fn blank(&self, i: usize) -> bool {
        self.at(i) == b' ' || self.eol(i)
    }

    fn skip_spaces(&mut self) {
        while self.cur() == b' ' {
            self.pos += 1;
        }
    }

    /// After a node on its line: spaces, perhaps a comment, then the line's end.
    fn end_line(&mut self) -> Fast<()> {
        let before = self.pos;
        self.skip_spaces();
        if self.cur() == b'#' && self.pos > before {
            while !self.eol(self.pos) {
                self.pos += 1;
            }
        }
        if self.eol(self.pos) {
            Ok(())
        } else {
            Err(GiveUp)
        }
    }

    /// From the end of a line, moves to the content of the next line that has any (skipping
    /// blank and comment lines); returns its indentation, or `None` at the end of the text.
    fn next_line(&mut self) -> Fast<Option<usize>> {
        loop {
            match self.b.get(self.pos) {
                Some(b'\r') => self.pos += 2,
                Some(b'\n') => self.pos += 1,
                None => return Ok(None),
                // Not at a line's end: the callers only come here at one.
                Some(_) => return Err(GiveUp),
            }
            if self.pos >= self.b.len() {
                return Ok(None);
            }
            self.line_start = self.pos;
            self.skip_spaces();
            match self.cur() {
                b'#' => {
                    while !self.eol(self.pos) {
                        self.pos += 1;
                    }
                }
                _ if self.eol(self.pos) => {}
                _ => return Ok(Some(self.col())),
            }
        }
    }

    /// Whether the line's content here is a block sequence entry (`-` then a space or the end).
    fn entry(&self) -> bool {
        self.cur() == b'-' && self.blank(self.pos + 1)
    }

    /// Whether the content here is `---` or `...` at column 0 (a document marker).
    fn marker(&self) -> bool {
        self.col() == 0
            && (self.rest().starts_with(b"---") || self.rest().starts_with(b"..."))
            && self.blank(self.pos + 3)
    }

    /// The whole text: its top-level fields read into `document` as the event reader reads
    /// them, and their diagnostics.
    fn document(
        &mut self,
        document: &mut FlagDocument,
    ) -> Fast<BTreeMap<String, FieldDiagnostics>> {
        // The first content line, at column 0 (a `---` before it is skipped).
        self.skip_spaces();
        let mut indent = if matches!(self.cur(), b'#') || self.eol(self.pos) {
            self.skip_comment();
            self.next_line()?
        } else {
            Some(self.col())
        };
        if indent == Some(0) && self.rest().starts_with(b"---") && self.blank(self.pos + 3) {
            self.pos += 3;
            self.end_line()?;
            indent = self.next_line()?;
        }
        if indent != Some(0) {
            return Err(GiveUp);
        }
        let mut fields = BTreeMap::new();
        loop {
            let key = self.block_key()?;
            fields.remove(&key);
            match key.as_str() {
                "flags" => document.flags.clear(),
                "segments" => document.segments.clear(),
                _ => {}
            }
            if matches!(key.as_str(), "flags" | "segments") {
                if let Some(items) = self.items(&key, document)? {
                    fields.insert(key, FieldDiagnostics::Items(items));
                    match self.line_indent() {
                        None => break,
                        Some(0) => continue,
                        Some(_) => return Err(GiveUp),
                    }
                }
            }
            let value = self.after_colon(0, 2)?;
            let mut diags = Vec::new();
            super::read_field(&key, super::Section::Value(value), document, &mut diags);
            fields.insert(key, FieldDiagnostics::Whole(diags));
            match self.line_indent() {
                None => break,
                Some(0) => {}
                Some(_) => return Err(GiveUp),
            }
        }
        Ok(fields)
    }

    /// Skips a comment that starts here, to the line's end.
    fn skip_comment(&mut self) {
        if self.cur() == b'#' {
            while !self.eol(self.pos) {
                self.pos += 1;
            }
        }
    }

    /// The indentation of the line the reader stands on, `None` at the end of the text.
    fn line_indent(&self) -> Option<usize> {
        (self.pos < self.b.len()).then(|| self.col())
    }

    /// The items of `flags` or `segments` (the key and its `:` read), read one at a time when
    /// they are a block mapping; `None` (nothing read) when the value is anything else.
    fn items(
        &mut self,
        section: &str,
        document: &mut FlagDocument,
    ) -> Fast<Option<BTreeMap<String, Vec<Diagnostic>>>> {
        let save = (self.pos, self.line_start);
        self.skip_spaces();
        if self.rest().starts_with(b"{}") {
            self.pos += 2;
            self.end_line()?;
            let next = self.next_line()?;
            if next.is_some_and(|i| i > 0) {
                return Err(GiveUp);
            }
            return Ok(Some(BTreeMap::new()));
        }
        if self.cur() == b'#' && self.pos > save.0 {
            self.skip_comment();
        }
        if !self.eol(self.pos) {
            (self.pos, self.line_start) = save;
            return Ok(None);
        }
        let indent = match self.next_line()? {
            Some(i) if i > 0 && !self.entry() => i,
            _ => {
                (self.pos, self.line_start) = save;
                return Ok(None);
            }
        };
        let runs = match self.items_on_threads(section, indent)? {
            Some(runs) => runs,
            None => vec![self.run(section, indent)?],
        };
        // In text order: a later item with the same key replaces an earlier one.
        let mut diags = BTreeMap::new();
        for (key, item, found) in runs.into_iter().flatten() {
            put_section_item(section, key.clone(), item, document);
            diags.insert(key, found);
        }
        Ok(Some(diags))
    }

    /// The items of a section at `indent` from the one the reader stands on to the section's
    /// end, in text order; leaves the reader on the first content line indented less, or at
    /// the end of the text.
    fn run(&mut self, section: &str, indent: usize) -> Fast<Vec<ReadItem>> {
        let mut read = Vec::new();
        loop {
            let key = self.block_key()?;
            let (item, found) = self.section_item(section, &key, indent)?;
            read.push((key, item, found));
            match self.line_indent() {
                Some(i) if i == indent => {}
                Some(i) if i > indent => return Err(GiveUp),
                _ => return Ok(read),
            }
        }
    }

    /// The items of a section at `indent`, read on several threads in runs of consecutive
    /// items when there are enough of them for [`Reader::threads`] to give more than one;
    /// `None` (nothing read) otherwise. The reader stands on the first item's content, and is
    /// left where [`Reader::run`] leaves it.
    fn items_on_threads(
        &mut self,
        section: &str,
        indent: usize,
    ) -> Fast<Option<Vec<Vec<ReadItem>>>> {
        if (self.threads)(usize::MAX) <= 1 {
            // One thread whatever the size (one core): no need to find the items first.
            return Ok(None);
        }
        let (starts, end) = self.item_lines(indent);
        let threads = (self.threads)(starts.len());
        if threads <= 1 {
            return Ok(None);
        }
        let section_end = end.map_or(self.b.len(), |(line, _)| line);
        let size = starts.len().div_ceil(threads);
        let runs: Vec<(usize, usize)> = (0..starts.len())
            .step_by(size)
            .map(|k| {
                let to = starts.get(k + size).copied().unwrap_or(section_end);
                (starts[k], to)
            })
            .collect();
        let text = self.text;
        // This thread reads the first run (its allocator's memory is warm), others the rest.
        let read: Vec<Fast<Vec<ReadItem>>> = std::thread::scope(|s| {
            let mut runs = runs.into_iter();
            let first = runs.next();
            let running: Vec<_> = runs
                .map(|(from, to)| s.spawn(move || read_run(text, from, to, indent, section)))
                .collect();
            let here = first.map(|(from, to)| read_run(text, from, to, indent, section));
            (here.into_iter())
                .chain(running.into_iter().map(|t| {
                    t.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                }))
                .collect()
        });
        let read = read.into_iter().collect::<Fast<Vec<_>>>()?;
        match end {
            Some((line, content)) => {
                self.line_start = line;
                self.pos = content;
            }
            None => self.pos = self.b.len(),
        }
        Ok(Some(read))
    }

    /// The item of `section` (a mapping at `indent`) whose key's `:` the reader stands after,
    /// read (an item that does not fit the format is read again from the text, to find where
    /// it fails; see [`read_section_value`]); leaves the reader on the next content line.
    fn section_item(
        &mut self,
        section: &str,
        key: &str,
        indent: usize,
    ) -> Fast<(Option<SectionItem>, Vec<Diagnostic>)> {
        let (text, pos, line_start, threads) = (self.text, self.pos, self.line_start, self.threads);
        let body = self.after_colon(indent, 3)?;
        let again = move || {
            let mut r = Reader::new(text, pos, line_start, threads);
            r.after_colon(indent, 3).ok()
        };
        Ok(read_section_value(section, key, body, Some(&again)))
    }

    /// From the line the reader stands on, the start of every line where an item of a section
    /// at `indent` begins (content at `indent` that is neither a comment nor a sequence entry),
    /// up to the first content line indented less: its start and where its content begins
    /// (`None` when the text ends first).
    fn item_lines(&self, indent: usize) -> (Vec<usize>, Option<(usize, usize)>) {
        let b = self.b;
        let mut starts = Vec::new();
        let mut line = self.line_start;
        while line < b.len() {
            let rest = &b[line..];
            let spaces = rest.iter().take_while(|&&c| c == b' ').count();
            let content = line + spaces;
            match b.get(content) {
                None | Some(b'\n' | b'\r' | b'#') => {}
                Some(&c) if spaces == indent => {
                    let entry = c == b'-'
                        && matches!(b.get(content + 1), None | Some(b' ' | b'\n' | b'\r'));
                    if !entry {
                        starts.push(line);
                    }
                }
                Some(_) if spaces < indent => return (starts, Some((line, content))),
                Some(_) => {}
            }
            line = match memchr::memchr(b'\n', &b[content..]) {
                Some(at) => content + at + 1,
                None => b.len(),
            };
        }
        (starts, None)
    }

    /// A block mapping's key here (at the line's content, or after `- `) and its `:`.
    fn block_key(&mut self) -> Fast<String> {
        if self.marker() {
            return Err(GiveUp);
        }
        let start = self.pos;
        let key = match self.cur() {
            b'\'' | b'"' => {
                let key = self.quoted()?;
                if self.cur() != b':' {
                    return Err(GiveUp);
                }
                key
            }
            _ => {
                let (from, to, end) = self.block_plain()?;
                if end != End::Colon || to == from {
                    return Err(GiveUp);
                }
                self.slice(from, to)?.to_owned()
            }
        };
        if self.pos - start > MAX_KEY || !self.blank(self.pos + 1) {
            return Err(GiveUp);
        }
        self.pos += 1;
        Ok(key)
    }

    /// The value after a block mapping key's `:` (of a mapping at `indent`), at `depth`; leaves
    /// the reader on the next content line.
    fn after_colon(&mut self, indent: usize, depth: usize) -> Fast<Value> {
        let before = self.pos;
        self.skip_spaces();
        if self.cur() == b'#' && self.pos > before {
            self.skip_comment();
        }
        if matches!(self.cur(), b'|' | b'>') && self.pos > before {
            return self.block_scalar(indent);
        }
        if self.eol(self.pos) {
            return match self.next_line()? {
                Some(i) if i > indent => self.block_node(i, depth),
                Some(i) if i == indent && self.entry() => self.block_sequence(i, depth),
                _ => Ok(Value::Null),
            };
        }
        if self.pos == before {
            return Err(GiveUp);
        }
        let value = self.inline(depth)?;
        self.end_line()?;
        match self.next_line()? {
            Some(i) if i > indent => Err(GiveUp),
            _ => Ok(value),
        }
    }

    /// A literal (`|`) or folded (`>`) block scalar, the value of a key of a mapping at
    /// `indent`, the reader on its indicator; leaves the reader on the next content line. Only
    /// the common forms: a final line break clipped (`|`, `>`) or stripped (`|-`, `>-`), no
    /// indentation indicator, nothing else on the header line, the indentation set by a first
    /// line with content, no line of spaces only, and, when folded, no more-indented line.
    fn block_scalar(&mut self, indent: usize) -> Fast<Value> {
        let folded = self.cur() == b'>';
        self.pos += 1;
        let strip = self.cur() == b'-';
        if strip {
            self.pos += 1;
        }
        self.skip_spaces();
        if !self.eol(self.pos) {
            return Err(GiveUp);
        }
        let mut lines: Vec<&str> = Vec::new();
        let mut block: Option<usize> = None;
        loop {
            // At a line's end (`\r` is always followed by `\n` here).
            let line_end = self.pos;
            match self.b.get(self.pos) {
                Some(b'\r') => self.pos += 2,
                Some(b'\n') => self.pos += 1,
                None => break,
                Some(_) => return Err(GiveUp),
            }
            if self.pos >= self.b.len() {
                break;
            }
            let start = self.pos;
            let mut i = start;
            while self.at(i) == b' ' {
                i += 1;
            }
            let spaces = i - start;
            if self.eol(i) {
                // An empty line inside the block; one of spaces only, or before the first
                // line with content, is left to the event reader.
                if spaces > 0 || block.is_none() {
                    return Err(GiveUp);
                }
                lines.push("");
                self.pos = i;
                continue;
            }
            let n = match block {
                Some(n) if spaces >= n => n,
                Some(_) => {
                    // Less indented: the block has ended; on to the next content line.
                    self.pos = line_end;
                    self.next_line()?;
                    break;
                }
                None if spaces > indent => {
                    block = Some(spaces);
                    spaces
                }
                None => return Err(GiveUp),
            };
            let mut end = i;
            while !self.eol(end) {
                end += 1;
            }
            let line = self.slice(start + n, end)?;
            if folded && line.starts_with(' ') {
                return Err(GiveUp);
            }
            lines.push(line);
            self.pos = end;
        }
        while lines.last() == Some(&"") {
            lines.pop();
        }
        if lines.is_empty() {
            return Err(GiveUp);
        }
        let mut text = String::new();
        if folded {
            // Lines joined by a space; an empty line stands for a line break.
            let mut breaks = 0;
            for (k, line) in lines.iter().enumerate() {
                if line.is_empty() {
                    breaks += 1;
                    continue;
                }
                if k > 0 {
                    if breaks == 0 {
                        text.push(' ');
                    }
                    text.extend(std::iter::repeat_n('\n', breaks));
                }
                breaks = 0;
                text.push_str(line);
            }
        } else {
            text = lines.join("\n");
        }
        if !strip {
            text.push('\n');
        }
        Ok(Value::String(text))
    }

    /// A block node whose first line is the current one, at `indent`.
    fn block_node(&mut self, indent: usize, depth: usize) -> Fast<Value> {
        if depth > MAX_DEPTH {
            return Err(GiveUp);
        }
        if self.entry() {
            self.block_sequence(indent, depth)
        } else {
            let key = self.block_key()?;
            self.block_mapping(indent, key, depth)
        }
    }

    /// A block mapping at `indent` whose first key (and its `:`) has been read.
    fn block_mapping(&mut self, indent: usize, first: String, depth: usize) -> Fast<Value> {
        if depth > MAX_DEPTH {
            return Err(GiveUp);
        }
        let mut map = Map::new();
        let mut key = first;
        loop {
            let value = self.after_colon(indent, depth + 1)?;
            map.insert(key, value);
            match self.line_indent() {
                Some(i) if i == indent && !self.entry() => key = self.block_key()?,
                Some(i) if i >= indent => return Err(GiveUp),
                _ => return Ok(Value::Object(map)),
            }
        }
    }

    /// A block sequence at `indent`, the reader on its first `-`.
    fn block_sequence(&mut self, indent: usize, depth: usize) -> Fast<Value> {
        if depth > MAX_DEPTH {
            return Err(GiveUp);
        }
        let mut list = Vec::new();
        loop {
            // On `-`, followed by a space or the line's end.
            self.pos += 1;
            let before = self.pos;
            self.skip_spaces();
            if self.cur() == b'#' && self.pos > before {
                self.skip_comment();
            }
            let item = if self.eol(self.pos) {
                match self.next_line()? {
                    Some(i) if i > indent => self.block_node(i, depth + 1)?,
                    _ => Value::Null,
                }
            } else if self.entry() || self.cur() == b'[' || self.cur() == b'{' {
                // `- - a` (a sequence in a sequence on one line) is left to the event reader;
                // a flow collection is a value, or a key the event reader reads.
                if self.entry() {
                    return Err(GiveUp);
                }
                let value = self.inline(depth + 1)?;
                self.end_line()?;
                match self.next_line()? {
                    Some(i) if i > indent => return Err(GiveUp),
                    _ => value,
                }
            } else {
                // A scalar, or the first key of a mapping at its column.
                let col = self.col();
                let start = self.pos;
                let scalar = match self.cur() {
                    b'\'' | b'"' => {
                        let s = self.quoted()?;
                        let key = self.cur() == b':' && self.blank(self.pos + 1);
                        (!key).then_some(Value::String(s))
                    }
                    _ => match self.block_plain()? {
                        (_, _, End::Colon) => None,
                        (from, to, End::Line) if to > from => {
                            Some(resolve_plain(self.slice(from, to)?))
                        }
                        _ => return Err(GiveUp),
                    },
                };
                match scalar {
                    None => {
                        self.pos = start;
                        let key = self.block_key()?;
                        self.block_mapping(col, key, depth + 1)?
                    }
                    Some(value) => {
                        self.end_line()?;
                        match self.next_line()? {
                            Some(i) if i > indent => return Err(GiveUp),
                            _ => value,
                        }
                    }
                }
            };
            list.push(item);
            match self.line_indent() {
                Some(i) if i == indent && self.entry() => {}
                Some(i) if i > indent => return Err(GiveUp),
                _ => return Ok(Value::Array(list)),
            }
        }
    }

    /// A scalar or a flow collection on the current line, at `depth`.
    fn inline(&mut self, depth: usize) -> Fast<Value> {
        match self.cur() {
            b'[' | b'{' => self.flow(depth),
            b'\'' | b'"' => Ok(Value::String(self.quoted()?)),
            _ => {
                let (from, to, end) = self.block_plain()?;
                if end != End::Line || to == from {
                    return Err(GiveUp);
                }
                Ok(resolve_plain(self.slice(from, to)?))
            }
        }
    }

    /// A plain scalar in block context, on one line: where it starts and ends, and how it
    /// ended. The reader stops at the `:` of a key, or after the scalar's last character.
    fn block_plain(&mut self) -> Fast<(usize, usize, End)> {
        let start = self.pos;
        match self.cur() {
            b'-' if !self.blank(self.pos + 1) => {}
            b'-' | b'?' | b':' | b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!'
            | b'|' | b'>' | b'\'' | b'"' | b'%' | b'@' | b'`' | b' ' => return Err(GiveUp),
            _ if self.eol(self.pos) => return Err(GiveUp),
            _ => {}
        }
        let b = self.b;
        let mut i = self.pos;
        let mut end = i;
        loop {
            match b.get(i) {
                None | Some(b'\n' | b'\r') => {
                    self.pos = i;
                    return Ok((start, end, End::Line));
                }
                Some(b':') if matches!(b.get(i + 1), None | Some(b' ' | b'\n' | b'\r')) => {
                    self.pos = i;
                    return Ok((start, end, End::Colon));
                }
                Some(b' ') => {
                    let mut j = i + 1;
                    while b.get(j) == Some(&b' ') {
                        j += 1;
                    }
                    if matches!(b.get(j), None | Some(b'#' | b'\n' | b'\r')) {
                        self.pos = end;
                        return Ok((start, end, End::Line));
                    }
                    i = j;
                }
                Some(_) => {
                    i += 1;
                    end = i;
                }
            }
        }
    }

    /// A quoted scalar closed on its line; the reader stops after the closing quote.
    fn quoted(&mut self) -> Fast<String> {
        let quote = self.cur();
        self.pos += 1;
        let start = self.pos;
        // Without escapes, the text between the quotes.
        loop {
            match self.cur() {
                c if c == quote => {
                    if quote == b'\'' && self.at(self.pos + 1) == b'\'' {
                        break;
                    }
                    let s = self.slice(start, self.pos)?.to_owned();
                    self.pos += 1;
                    return Ok(s);
                }
                b'\\' if quote == b'"' => break,
                _ if self.eol(self.pos) => return Err(GiveUp),
                _ => self.pos += 1,
            }
        }
        let mut out = String::new();
        let mut from = start;
        loop {
            let c = self.cur();
            if self.eol(self.pos) {
                return Err(GiveUp);
            }
            if c == quote {
                if quote == b'\'' && self.at(self.pos + 1) == b'\'' {
                    out.push_str(self.slice(from, self.pos + 1)?);
                    self.pos += 2;
                    from = self.pos;
                    continue;
                }
                out.push_str(self.slice(from, self.pos)?);
                self.pos += 1;
                out.shrink_to_fit();
                return Ok(out);
            }
            if c == b'\\' && quote == b'"' {
                out.push_str(self.slice(from, self.pos)?);
                self.pos += 1;
                out.push(self.escape()?);
                from = self.pos;
                continue;
            }
            self.pos += 1;
        }
    }

    /// The character of the escape after a `\` in a double-quoted scalar.
    fn escape(&mut self) -> Fast<char> {
        let c = self.cur();
        self.pos += 1;
        let digits = match c {
            b'0' => return Ok('\0'),
            b'a' => return Ok('\x07'),
            b'b' => return Ok('\x08'),
            b't' => return Ok('\t'),
            b'n' => return Ok('\n'),
            b'v' => return Ok('\x0b'),
            b'f' => return Ok('\x0c'),
            b'r' => return Ok('\r'),
            b'e' => return Ok('\x1b'),
            b' ' => return Ok(' '),
            b'"' => return Ok('"'),
            b'/' => return Ok('/'),
            b'\\' => return Ok('\\'),
            b'N' => return Ok('\u{85}'),
            b'_' => return Ok('\u{a0}'),
            b'L' => return Ok('\u{2028}'),
            b'P' => return Ok('\u{2029}'),
            b'x' => 2,
            b'u' => 4,
            b'U' => 8,
            _ => return Err(GiveUp),
        };
        let hex = self.slice(self.pos, self.pos + digits)?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(GiveUp);
        }
        self.pos += digits;
        u32::from_str_radix(hex, 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or(GiveUp)
    }

    /// A flow collection on the current line; the reader stops after its closing bracket.
    fn flow(&mut self, depth: usize) -> Fast<Value> {
        if depth > MAX_DEPTH {
            return Err(GiveUp);
        }
        let open = self.cur();
        self.pos += 1;
        self.skip_spaces();
        let close = if open == b'[' { b']' } else { b'}' };
        if self.cur() == close {
            self.pos += 1;
            return Ok(if open == b'[' {
                Value::Array(Vec::new())
            } else {
                Value::Object(Map::new())
            });
        }
        let mut list = Vec::new();
        let mut map = Map::new();
        loop {
            if open == b'[' {
                list.push(self.flow_node(depth + 1)?);
            } else {
                let key = match self.cur() {
                    b'\'' | b'"' => self.quoted()?,
                    _ => {
                        let (from, to) = self.flow_plain()?;
                        self.slice(from, to)?.to_owned()
                    }
                };
                // `key: value`, the colon right after the key.
                if self.cur() != b':' || self.at(self.pos + 1) != b' ' {
                    return Err(GiveUp);
                }
                self.pos += 1;
                self.skip_spaces();
                let value = self.flow_node(depth + 1)?;
                map.insert(key, value);
            }
            self.skip_spaces();
            match self.cur() {
                b',' => {
                    self.pos += 1;
                    self.skip_spaces();
                    if matches!(self.cur(), b']' | b'}' | b',') {
                        return Err(GiveUp);
                    }
                }
                c if c == close => {
                    self.pos += 1;
                    return Ok(if open == b'[' {
                        Value::Array(list)
                    } else {
                        Value::Object(map)
                    });
                }
                _ => return Err(GiveUp),
            }
        }
    }

    /// A node inside a flow collection.
    fn flow_node(&mut self, depth: usize) -> Fast<Value> {
        match self.cur() {
            b'[' | b'{' => self.flow(depth),
            b'\'' | b'"' => Ok(Value::String(self.quoted()?)),
            _ => {
                let (from, to) = self.flow_plain()?;
                let after = self.pos;
                self.skip_spaces();
                if self.cur() == b':' {
                    return Err(GiveUp);
                }
                self.pos = after;
                Ok(resolve_plain(self.slice(from, to)?))
            }
        }
    }

    /// A plain scalar in a flow collection: letters, digits and a few safe characters with
    /// spaces between words; the reader stops after its last character.
    fn flow_plain(&mut self) -> Fast<(usize, usize)> {
        let start = self.pos;
        match self.cur() {
            b'-' if !matches!(
                self.at(self.pos + 1),
                b' ' | b',' | b'[' | b']' | b'{' | b'}'
            ) && !self.eol(self.pos + 1) => {}
            b'-' | b'?' | b':' | b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!'
            | b'|' | b'>' | b'\'' | b'"' | b'%' | b'@' | b'`' | b' ' => return Err(GiveUp),
            _ if self.eol(self.pos) => return Err(GiveUp),
            _ => {}
        }
        let mut end = self.pos;
        loop {
            match self.cur() {
                b',' | b']' | b'}' | b':' => break,
                b'[' | b'{' | b'#' | b'\'' | b'"' => return Err(GiveUp),
                b' ' => {
                    self.pos += 1;
                    // The event reader refuses a word `-` followed by a flow indicator.
                    if self.cur() == b'-'
                        && matches!(self.at(self.pos + 1), b',' | b'[' | b']' | b'{' | b'}')
                    {
                        return Err(GiveUp);
                    }
                }
                _ if self.eol(self.pos) => return Err(GiveUp),
                _ => {
                    self.pos += 1;
                    end = self.pos;
                }
            }
        }
        self.pos = end;
        Ok((start, end))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A reader on the first item of the `flags` section of `text` (its key and `:` read).
    fn on_first_item(text: &str) -> Reader<'_> {
        let mut r = Reader::new(text, 0, 0, |_| 1);
        assert_eq!(r.block_key().ok().as_deref(), Some("flags"));
        r.end_line().ok().unwrap();
        assert_eq!(r.next_line().ok(), Some(Some(2)));
        r
    }

    #[test]
    fn items_begin_at_their_indentation_and_nowhere_else() {
        let text = "flags:\n  a:\n    description: |\n      # text, not a comment\n      b:\n    rules:\n  - not an item\n  -\n  # a comment\n\n  \"b\": {}\n   \n  c: 1\r\n# end of flags?\n  d: 2\nsegments: {}\n";
        let r = on_first_item(text);
        let (starts, end) = r.item_lines(2);
        let lines: Vec<&str> = starts
            .iter()
            .map(|&s| text[s..].lines().next().unwrap())
            .collect();
        assert_eq!(lines, ["  a:", "  \"b\": {}", "  c: 1", "  d: 2"]);
        let (line, content) = end.unwrap();
        assert_eq!((line, content), (text.find("segments").unwrap(), line));
        // A section that runs to the end of the text.
        let text = "flags:\n  a: 1\n  b: 2\n\n";
        let (starts, end) = on_first_item(text).item_lines(2);
        assert_eq!(starts, [7, 14]);
        assert_eq!(end, None);
    }

    #[test]
    fn a_section_read_on_threads_leaves_the_reader_where_one_thread_does() {
        let text = "flags:\n  a: {type: bool}\n  b:\n    type: int\n  c: {}\n  a: {type: string}\nsegments:\n  s: {}\n";
        let read = |threads: fn(usize) -> usize| {
            let mut r = Reader::new(text, 0, 0, threads);
            assert_eq!(r.block_key().ok().as_deref(), Some("flags"));
            let mut doc = FlagDocument::default();
            let diags = r.items("flags", &mut doc).ok().unwrap().unwrap();
            (
                diags,
                format!("{doc:?}"),
                r.pos,
                r.line_start,
                doc.flags.len(),
            )
        };
        let one = read(|_| 1);
        let many = read(|n| n);
        assert_eq!(many, one);
        assert_eq!(one.2, text.find("segments").unwrap());
        // The later `a` replaced the first, as in the text's order.
        assert_eq!(one.4, 3);
    }
}
