//! Line and column of a path in a flag document's text, for diagnostics.

use crate::diagnostic::PathSeg;
use std::collections::{BTreeMap, HashMap, HashSet};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Line and column of nodes of a YAML or JSON text, by path.
///
/// Nothing is indexed ahead of time: a document without problems never pays. A path inside a
/// flag or segment is located in that item's text alone when the item can be found by a scan of
/// the text (JSON: its value; YAML: the lines of an entry of a block mapping), so that a
/// problem in one of 100 000 flags costs the reading of one flag; any other path, and any item
/// whose text cannot be told apart or read alone, is located by reading the whole text once for
/// all of them, keeping only their positions (memory in proportion to the paths, not to the
/// document).
#[derive(Debug, Clone, Default)]
pub struct Locator {
    text: std::sync::Arc<str>,
}

/// Where an item's text is: its key's position and its value's text with the line and
/// column (from 0) it starts at.
struct ItemText<'t> {
    key_at: (usize, usize),
    value: &'t str,
    line: usize,
    column: usize,
}

/// A section and key of the document, with the paths (by index) inside that item.
type Items<'p> = BTreeMap<(&'p str, &'p str), Vec<usize>>;

impl Locator {
    /// A locator over a text. Text that YAML cannot read locates nothing.
    pub fn new(text: &str) -> Locator {
        Locator { text: text.into() }
    }

    /// The line and column (from 1) of the deepest node of `path` that exists.
    pub fn locate(&self, path: &[PathSeg]) -> Option<(usize, usize)> {
        self.locate_all(&[path]).pop().flatten()
    }

    /// [`Locator::locate`] for each of `paths`: those inside an item in its text alone when it
    /// can be found, the others in one reading of the whole text.
    pub fn locate_all(&self, paths: &[&[PathSeg]]) -> Vec<Option<(usize, usize)>> {
        let mut out = vec![None; paths.len()];
        let mut items: Items<'_> = BTreeMap::new();
        let mut whole = Vec::new();
        for (i, path) in paths.iter().enumerate() {
            match path {
                [PathSeg::Key(section), PathSeg::Key(key), ..]
                    if section == "flags" || section == "segments" =>
                {
                    items.entry((section, key)).or_default().push(i);
                }
                _ => whole.push(i),
            }
        }
        if !items.is_empty() {
            let found = item_texts(&self.text, &items);
            for ((section, key), at) in items {
                let item = found.get(&(section.to_owned(), key.to_owned()));
                let located = item.and_then(|item| {
                    let inner: Vec<&[PathSeg]> = at.iter().map(|&i| &paths[i][2..]).collect();
                    let read = read_spans(item.value, &inner)?;
                    // The item itself is where its key is, or its value when that is a scalar
                    // (as in the whole text).
                    let itself = read.root_scalar.map_or(item.key_at, |at| item.place(at));
                    Some(
                        inner
                            .iter()
                            .map(|p| {
                                (1..=p.len())
                                    .rev()
                                    .find_map(|n| read.spans.get(&p[..n]).copied())
                                    .map_or(itself, |at| item.place(at))
                            })
                            .map(Some)
                            .collect::<Vec<_>>(),
                    )
                });
                match located {
                    Some(located) => {
                        for (&i, l) in at.iter().zip(located) {
                            out[i] = l;
                        }
                    }
                    None => whole.extend(at),
                }
            }
        }
        if !whole.is_empty() {
            let asked: Vec<&[PathSeg]> = whole.iter().map(|&i| paths[i]).collect();
            let read = read_spans(&self.text, &asked);
            for (&i, path) in whole.iter().zip(asked) {
                out[i] = read.as_ref().and_then(|r| deepest(&r.spans, path));
            }
        }
        out
    }

    /// [`Locator::locate_all`] by reading the whole text, for every path.
    #[cfg(test)]
    fn locate_all_in_whole(&self, paths: &[&[PathSeg]]) -> Vec<Option<(usize, usize)>> {
        let read = read_spans(&self.text, paths);
        paths
            .iter()
            .map(|p| read.as_ref().and_then(|r| deepest(&r.spans, p)))
            .collect()
    }
}

impl ItemText<'_> {
    /// A position in the value's text as a position in the document's.
    fn place(&self, (line, column): (usize, usize)) -> (usize, usize) {
        if line == 1 {
            (self.line + 1, self.column + column)
        } else {
            (self.line + line, column)
        }
    }
}

/// The position of the deepest prefix of `path` in `spans`, if any.
fn deepest(
    spans: &HashMap<Vec<PathSeg>, (usize, usize)>,
    path: &[PathSeg],
) -> Option<(usize, usize)> {
    (0..=path.len())
        .rev()
        .find_map(|n| spans.get(&path[..n]).copied())
}

/// What reading a text found: the positions of the paths asked about and their prefixes, and
/// the position of the top node when it is a scalar.
struct Spans {
    spans: HashMap<Vec<PathSeg>, (usize, usize)>,
    root_scalar: Option<(usize, usize)>,
}

/// The positions of `paths` and their prefixes in `text`, read as YAML; `None` when it does not
/// read.
fn read_spans(text: &str, paths: &[&[PathSeg]]) -> Option<Spans> {
    let wanted: HashSet<&[PathSeg]> = paths
        .iter()
        .flat_map(|p| (0..=p.len()).map(move |n| &p[..n]))
        .collect();
    let mut r = Recorder {
        wanted,
        ..Recorder::default()
    };
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut r, false).ok()?;
    Some(Spans {
        spans: r.spans,
        root_scalar: r.root_scalar,
    })
}

/// The text of each of `items` that a scan finds once and only once. Positions count lines as
/// the YAML reader does only where every line ends in `\n` or `\r\n` and there is no byte order
/// mark; otherwise nothing is found.
fn item_texts<'t>(text: &'t str, items: &Items<'_>) -> HashMap<(String, String), ItemText<'t>> {
    let mut found = HashMap::new();
    let bytes = text.as_bytes();
    let plain_breaks = !text.starts_with('\u{feff}')
        && !bytes
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'\r' && bytes.get(i + 1) != Some(&b'\n'));
    if !plain_breaks {
        return found;
    }
    let lines = Lines::new(text);
    let wanted = |section: &str, key: &str| items.contains_key(&(section, key));
    if text.trim_start().starts_with('{') {
        let Some(sections) = crate::source::json_item_texts(text) else {
            return found;
        };
        for (section, entries) in sections {
            for (key, value) in entries {
                if !wanted(&section, &key) {
                    continue;
                }
                let start = value.as_ptr() as usize - text.as_ptr() as usize;
                let Some(key_start) = json_key_start(text, start, &key) else {
                    continue;
                };
                let (line, column) = lines.at(start);
                let key_at = lines.at(key_start);
                found.insert(
                    (section.clone(), key),
                    ItemText {
                        key_at: (key_at.0 + 1, key_at.1 + 1),
                        value,
                        line,
                        column,
                    },
                );
            }
        }
    } else {
        yaml_item_texts(text, &lines, &wanted, &mut found);
    }
    found
}

/// Where the key whose value starts at byte `value` begins (its opening quote), when it is
/// written `"key"` with no escape in it.
fn json_key_start(text: &str, value: usize, key: &str) -> Option<usize> {
    let before = text[..value].trim_end_matches([' ', '\t', '\n', '\r']);
    let before = before
        .strip_suffix(':')?
        .trim_end_matches([' ', '\t', '\n', '\r']);
    let quoted = before
        .strip_suffix('"')?
        .strip_suffix(key)?
        .strip_suffix('"')?;
    Some(quoted.len())
}

/// Line starts of a text, to turn a byte offset into a line and a column (from 0, in
/// characters).
struct Lines<'t> {
    text: &'t str,
    starts: Vec<usize>,
}

impl<'t> Lines<'t> {
    fn new(text: &'t str) -> Lines<'t> {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { text, starts }
    }

    /// Line and column, from 0, of byte `at`.
    fn at(&self, at: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|&s| s <= at) - 1;
        let column = self.text[self.starts[line]..at].chars().count();
        (line, column)
    }
}

/// The indentation of a line and whether it holds content (not blank, not only a comment).
fn content(line: &str) -> Option<usize> {
    let rest = line.trim_start_matches(' ');
    let rest = rest.trim_end_matches('\r');
    (!rest.is_empty() && !rest.starts_with('#'))
        .then(|| line.len() - line.trim_start_matches(' ').len())
}

/// The key a block mapping entry `line` (its indentation cut) starts with, and the byte after
/// its `:`; `None` for anything but a plain, or quoted without escapes, one-line key.
fn entry_key(line: &str) -> Option<(&str, usize)> {
    let (key, after) = match line.as_bytes().first()? {
        q @ (b'"' | b'\'') => {
            let q = *q as char;
            let close = line[1..].find(q)? + 1;
            let key = &line[1..close];
            if key.contains(['\\', q]) {
                return None;
            }
            (key, close + 1)
        }
        b'-' | b'?' | b'{' | b'[' | b'&' | b'*' | b'!' | b'|' | b'>' | b'%' | b'@' | b'`' => {
            return None
        }
        _ => {
            let colon = line
                .match_indices(':')
                .find(|(i, _)| matches!(line.as_bytes().get(i + 1), None | Some(b' ' | b'\r')))?
                .0;
            let key = line[..colon].trim_end_matches(' ');
            if key.contains(" #") {
                return None;
            }
            (key, colon)
        }
    };
    let rest = &line[after..];
    let colon = rest.len() - rest.trim_start_matches(' ').len();
    (rest[colon..].starts_with(':')
        && matches!(rest.as_bytes().get(colon + 1), None | Some(b' ' | b'\r')))
    .then_some((key, after + colon + 1))
}

/// The items of the block mappings `flags:` and `segments:` at the top of a YAML text: each
/// entry's lines, from the byte after its key's `:` to the next line at its indentation or less.
/// A section or key given twice, or a section that is not a block mapping, finds nothing there.
fn yaml_item_texts<'t>(
    text: &'t str,
    lines: &Lines<'t>,
    wanted: &dyn Fn(&str, &str) -> bool,
    found: &mut HashMap<(String, String), ItemText<'t>>,
) {
    let n = lines.starts.len();
    let line = |i: usize| {
        let end = lines.starts.get(i + 1).map_or(text.len(), |e| e - 1);
        &text[lines.starts[i]..end]
    };
    let mut sections: HashMap<&str, Vec<usize>> = HashMap::new();
    for i in 0..n {
        if content(line(i)) == Some(0) {
            if let Some((key, _)) = entry_key(line(i)) {
                sections.entry(key).or_default().push(i);
            }
        }
    }
    for section in ["flags", "segments"] {
        let Some(&[at]) = sections.get(section).map(Vec::as_slice) else {
            continue;
        };
        let Some((_, after)) = entry_key(line(at)) else {
            continue;
        };
        // The value of the section is on the lines below (a block mapping).
        if content(&line(at)[after..]).is_some() {
            continue;
        }
        let end = (at + 1..n)
            .find(|&i| content(line(i)) == Some(0))
            .unwrap_or(n);
        let Some(indent) = (at + 1..end).find_map(|i| content(line(i))) else {
            continue;
        };
        let entries: Vec<usize> = (at + 1..end)
            .filter(|&i| content(line(i)) == Some(indent))
            .collect();
        // An entry whose lines are not all more indented than it: not a simple block mapping.
        if (at + 1..end).any(|i| content(line(i)).is_some_and(|d| d < indent)) {
            continue;
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut unreadable = false;
        for (e, &i) in entries.iter().enumerate() {
            let Some((key, after)) = entry_key(&line(i)[indent..]) else {
                unreadable = true;
                continue;
            };
            *seen.entry(key).or_default() += 1;
            if !wanted(section, key) {
                continue;
            }
            let next = entries.get(e + 1).copied().unwrap_or(end);
            let start = lines.starts[i] + indent + after;
            let stop = lines.starts.get(next).copied().unwrap_or(text.len());
            found.insert(
                (section.to_owned(), key.to_owned()),
                ItemText {
                    key_at: (i + 1, indent + 1),
                    value: &text[start..stop],
                    line: i,
                    column: lines.at(start).1,
                },
            );
        }
        // A key given twice, or an entry the scan cannot read (its key could be any): none.
        if unreadable {
            found.retain(|(s, _), _| s != section);
        }
        found.retain(|(s, k), _| s != section || seen.get(k.as_str()) == Some(&1));
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
    /// The position of the top node, when it is a scalar.
    root_scalar: Option<(usize, usize)>,
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
                if self.stack.is_empty() {
                    self.root_scalar = Some(Self::at(&mark));
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use yaml_rust2::{Yaml, YamlLoader};

    /// Every path of a YAML tree (string keys), each with a child that does not exist.
    fn paths_of(node: &Yaml, at: &mut Vec<PathSeg>, out: &mut Vec<Vec<PathSeg>>) {
        out.push(at.clone());
        let mut missing = at.clone();
        missing.extend([PathSeg::key("nope"), PathSeg::Index(3)]);
        out.push(missing);
        match node {
            Yaml::Hash(map) => {
                for (k, v) in map {
                    if let Yaml::String(k) = k {
                        at.push(PathSeg::key(k));
                        paths_of(v, at, out);
                        at.pop();
                    }
                }
            }
            Yaml::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    at.push(PathSeg::Index(i));
                    paths_of(v, at, out);
                    at.pop();
                }
            }
            _ => {}
        }
    }

    /// Locating each path of `text` in its item gives what reading the whole text gives, path
    /// by path and all at once; returns how many items were found by the scan.
    fn agree(text: &str) -> usize {
        let locator = Locator::new(text);
        let mut paths = Vec::new();
        if let Ok(docs) = YamlLoader::load_from_str(text) {
            if let Some(doc) = docs.first() {
                paths_of(doc, &mut Vec::new(), &mut paths);
            }
        }
        for section in ["flags", "segments"] {
            paths.push(vec![PathSeg::key(section), PathSeg::key("absent")]);
        }
        let asked: Vec<&[PathSeg]> = paths.iter().map(Vec::as_slice).collect();
        let whole = locator.locate_all_in_whole(&asked);
        assert_eq!(locator.locate_all(&asked), whole, "all at once in {text:?}");
        for (path, expected) in asked.iter().zip(&whole) {
            assert_eq!(locator.locate(path), *expected, "{path:?} in {text:?}");
        }
        let mut items: Items<'_> = BTreeMap::new();
        for p in &paths {
            if let [PathSeg::Key(s), PathSeg::Key(k), ..] = p.as_slice() {
                items.entry((s.as_str(), k.as_str())).or_default().push(0);
            }
        }
        item_texts(text, &items).len()
    }

    fn flag(i: usize) -> String {
        format!(
            r#"{{"type": "bool", "default": false, "rules": [{{"id": "r{i}", "clauses": [{{"attribute": "plan", "operator": "in", "values": ["pro", "team-{i}"]}}], "variation": 1}}], "fallthrough": {{"variation": 0}}}}"#
        )
    }

    #[test]
    fn items_located_alone_are_where_the_whole_text_puts_them() {
        let json_pretty = format!(
            "{{\n  \"flags\": {{\n    \"a\": {},\n    \"b\":\n      {}\n  }},\n  \"segments\": {{\"s\": {{\"included\": [\"x\", \"y\"]}}}}\n}}\n",
            flag(1),
            flag(2)
        );
        let json_compact = format!(r#"{{"flags":{{"a":{},"b":{}}}}}"#, flag(1), flag(2));
        let yaml_block = "# flags\nflags:\n  a:\n    type: bool  # a comment\n    rules:\n      - id: r1\n        clauses:\n          - attribute: plan\n            operator: in\n            values: [pro, \"team\"]\n        variation: 1\n\n  # between\n  'b': {type: string, default: x}\n  \"c\":   {type: bool,\n     default: true}\n  d: 3\n  e: |\n    block\n    text\nsegments:\n  s:\n    included:\n    - x\n    - y\n";
        let texts = [
            json_pretty.clone(),
            json_compact,
            json_pretty.replace('\n', "\r\n"),
            yaml_block.to_owned(),
            yaml_block.replace('\n', "\r\n"),
            format!("---\n{yaml_block}...\n"),
            "flags:\n    a: {type: bool}\n    b:\n        type: bool\n".to_owned(),
            "flags: {a: {type: bool}}\n".to_owned(),
            "flags:\n  a: &x {type: bool}\n  b: *x\n".to_owned(),
            "flags:\n  a: {type: bool}\n  a: {type: string}\n".to_owned(),
            "flags:\n  a:\n  - 1\n  - 2\n  b: {type: bool}\n".to_owned(),
            "flags:\n  ? a\n  : {type: bool}\n  b: {type: bool}\n".to_owned(),
            "flags:\n  a: {type: bool}\nflags:\n  b: {type: bool}\n".to_owned(),
            "\u{feff}flags:\n  a: {type: bool}\n".to_owned(),
            "flags:\r  a: {type: bool}\r".to_owned(),
            "flags:\n  é: {type: bool, default: \"ü\"}\n  b: {type: bool, rules: [{clauses: [{attribute: x, operator: in, values: [é]}]}]}\n".to_owned(),
            r#"{"flags": {"a": {"type": "bool"}, "a": {"type": "string", "rules": [1, 2]}}}"#.to_owned(),
            r#"{"flags": {"a\"b": {"type": "bool"}, "c": 5}, "segments": []}"#.to_owned(),
            "{\"flags\": {\"a\": {\"type\": \"bool\"},\n \"b\": [1,\n 2]}}".to_owned(),
        ];
        for text in &texts {
            agree(text);
        }
        // The common shapes are found by the scan, not left to the whole text.
        assert_eq!(agree(&texts[0]), 3);
        assert_eq!(agree(&texts[1]), 2);
        assert_eq!(agree(&texts[3]), 6);
        assert_eq!(agree(&texts[4]), 6);
        // Duplicates and sections that are not block mappings are not.
        assert_eq!(agree(&texts[7]), 0);
        assert_eq!(agree(&texts[9]), 0);
    }

    #[test]
    fn repository_flag_documents_locate_alike() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut found = 0;
        for dir in [
            "feature/examples/flags",
            "featurectl/tests",
            "feature/tests",
        ] {
            let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
                if matches!(ext, "yaml" | "yml" | "json") {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    agree(&text);
                    found += 1;
                }
            }
        }
        assert!(found >= 5, "only {found} documents");
    }
}
