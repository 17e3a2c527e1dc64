//! Reading the items of a JSON document's `flags` and `segments` from their text.
//!
//! One pass over the text finds the top-level fields and, in the mappings, where each item's
//! text begins and ends; nothing is built but the keys. Text that is not a well-formed mapping
//! is left to the reader that parses the whole text first, which reports where it breaks.
//! Each item is deserialized straight from its own text, with no tree in between, and its
//! lists are then trimmed to their length. An item that does not deserialize that way is read
//! again the way YAML items are, from a tree with the path of what failed, so that its
//! diagnostic is the one the YAML reader gives. Large sections are read on several threads,
//! in chunks whose results are put back in key order: the outcome is the same as reading the
//! items one by one.

use super::{read_field, read_item, Section};
use crate::diagnostic::Diagnostic;
use crate::model::SortedMap;
use crate::model::{Flag, FlagDocument, Segment, Shrink};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Sections with at least this many items are read on several threads.
const PARALLEL_ITEMS: usize = 2048;

/// At most this many threads read one section.
const MAX_THREADS: usize = 8;

/// What reading some items gave: the items, in key order, and the diagnostics of those that
/// could not be read, in key order too; `Err` when an item is not even JSON.
type Read<T> = Result<(Vec<(String, T)>, Vec<Diagnostic>), NotJson>;

/// An item's text is not JSON: the document is read again to report where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NotJson;

/// Reads `items` (distinct keys, in order, each its JSON text) of `section` into `out`,
/// reporting those that do not fit the format in `diags`.
pub(super) fn read_items<T, K>(
    items: Vec<(String, &str)>,
    section: &str,
    out: &mut SortedMap<String, T>,
    diags: &mut Vec<Diagnostic>,
    set_key: &K,
) -> Result<(), NotJson>
where
    T: DeserializeOwned + Shrink + Send + Clone,
    K: Fn(&mut T, &str) + Sync,
{
    let threads = threads_for(items.len());
    let (read, found) = read_all(items, section, set_key, threads)?;
    merge(read, found, out, diags);
    Ok(())
}

/// Reads a JSON document from its text, split into its sections and their items without a
/// tree; `None` when the text is anything but a well-formed mapping (read the usual way then,
/// to report what is wrong where).
pub(super) fn read(text: &str) -> Option<(FlagDocument, Vec<Diagnostic>)> {
    let fields = split(text)?;
    let mut document = FlagDocument::default();
    let mut diags = Vec::new();
    for (key, part) in fields {
        match (key.as_str(), part) {
            ("flags", Part::Items(items)) => read_items(
                items,
                "flags",
                &mut document.flags,
                &mut diags,
                &|f: &mut Arc<Flag>, k: &str| Arc::make_mut(f).key = k.to_owned(),
            )
            .ok()?,
            ("segments", Part::Items(items)) => read_items(
                items,
                "segments",
                &mut document.segments,
                &mut diags,
                &|s: &mut Arc<Segment>, k: &str| Arc::make_mut(s).key = k.to_owned(),
            )
            .ok()?,
            (_, part @ Part::Items(_)) => {
                part.check()?;
                read_field(&key, Section::Value(Value::Null), &mut document, &mut diags);
            }
            (_, Part::Value(v)) => {
                let value: Value = serde_json::from_str(v).ok()?;
                read_field(&key, Section::Value(value), &mut document, &mut diags);
            }
        }
    }
    Some((document, diags))
}

/// The items of a mapping, in key order: each key and its value's text.
pub(crate) type Items<'t> = Vec<(String, &'t str)>;

/// The items of each mapping at the top of a JSON document, each as its key and its value's
/// text (a key given twice: its last value); `None` when the text is not a well-formed
/// mapping. Used to locate a diagnostic in one item's text instead of the whole document's.
pub(crate) fn item_texts(text: &str) -> Option<Vec<(String, Items<'_>)>> {
    let fields = split(text)?;
    Some(
        fields
            .into_iter()
            .filter_map(|(k, part)| match part {
                Part::Items(items) => Some((k, items)),
                Part::Value(_) => None,
            })
            .collect(),
    )
}

/// A top-level field: the items of a mapping, or another value's text.
enum Part<'a> {
    Items(Vec<(String, &'a str)>),
    Value(&'a str),
}

impl Part<'_> {
    /// Checks that the part is JSON, when it is not going to be read.
    fn check(&self) -> Option<()> {
        match self {
            Part::Items(items) => items.iter().try_for_each(|(_, v)| check(v)),
            Part::Value(v) => check(v),
        }
    }
}

/// Checks that `text` is one JSON value.
fn check(text: &str) -> Option<()> {
    serde_json::from_str::<IgnoredAny>(text).ok().map(drop)
}

/// The top-level fields of a document (a key given twice keeps its last value, as in a parsed
/// JSON object), the mappings split into their items, each as its text. `None` when the text
/// is not a mapping or its structure is not well-formed JSON; the items' own text is checked
/// when they are read.
fn split(text: &str) -> Option<BTreeMap<String, Part<'_>>> {
    let mut s = Scan { text, at: 0 };
    let mut fields = BTreeMap::new();
    s.space();
    s.eat(b'{')?;
    s.space();
    if s.eat(b'}').is_none() {
        loop {
            s.space();
            let key = s.key()?;
            s.space();
            s.eat(b':')?;
            s.space();
            let part = if s.peek() == Some(b'{') {
                Part::Items(s.items()?)
            } else {
                let v = s.value()?;
                // Not a mapping of items: checked here.
                check(v)?;
                Part::Value(v)
            };
            // A field given again: the first value is not read, but must be JSON.
            if let Some(earlier) = fields.insert(key, part) {
                earlier.check()?;
            }
            s.space();
            if s.eat(b'}').is_some() {
                break;
            }
            s.eat(b',')?;
        }
    }
    s.space();
    (s.at == text.len()).then_some(fields)
}

/// A cursor over JSON text that finds where keys and values begin and end.
struct Scan<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek() == Some(b)).then(|| self.at += 1)
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// A string's text, quotes included.
    fn string(&mut self) -> Option<&'a str> {
        let start = self.at;
        self.eat(b'"')?;
        let bytes = self.text.as_bytes();
        loop {
            match bytes.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return self.text.get(start..self.at);
                }
                b'\\' => self.at += 2,
                _ => self.at += 1,
            }
        }
    }

    /// A key, unescaped.
    fn key(&mut self) -> Option<String> {
        let raw = self.string()?;
        let inner = &raw[1..raw.len() - 1];
        if inner.bytes().all(|b| b >= 0x20 && b != b'\\') {
            Some(inner.to_owned())
        } else {
            serde_json::from_str(raw).ok()
        }
    }

    /// A value's text: a string, a mapping or list (up to its matching bracket), or a scalar.
    fn value(&mut self) -> Option<&'a str> {
        let start = self.at;
        let bytes = self.text.as_bytes();
        match self.peek()? {
            b'"' => return self.string(),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match bytes.get(self.at)? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    self.at += 1;
                }
            }
            _ => {
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                ) {
                    self.at += 1;
                }
            }
        }
        self.text.get(start..self.at).filter(|v| !v.is_empty())
    }

    /// The items of a mapping.
    fn items(&mut self) -> Option<Vec<(String, &'a str)>> {
        // A key given twice keeps its last value; the items come out in key order.
        let mut items = BTreeMap::new();
        self.eat(b'{')?;
        self.space();
        if self.eat(b'}').is_some() {
            return Some(Vec::new());
        }
        loop {
            self.space();
            let key = self.key()?;
            self.space();
            self.eat(b':')?;
            self.space();
            // An item given again: the first is not read, but must be JSON.
            if let Some(earlier) = items.insert(key, self.value()?) {
                check(earlier)?;
            }
            self.space();
            if self.eat(b'}').is_some() {
                return Some(items.into_iter().collect());
            }
            self.eat(b',')?;
        }
    }
}

/// The number of threads to read `n` items with (one for fewer than [`PARALLEL_ITEMS`]).
pub(super) fn threads_for(n: usize) -> usize {
    if n < PARALLEL_ITEMS {
        return 1;
    }
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, MAX_THREADS)
}

/// Reads `items` on `threads` threads, each taking a consecutive chunk; the chunks' results
/// are concatenated in order.
fn read_all<T, K>(items: Vec<(String, &str)>, section: &str, set_key: &K, threads: usize) -> Read<T>
where
    T: DeserializeOwned + Shrink + Send + Clone,
    K: Fn(&mut T, &str) + Sync,
{
    if threads <= 1 {
        return read_chunk(items, section, set_key);
    }
    let size = items.len().div_ceil(threads);
    let mut chunks: Vec<Vec<(String, &str)>> = Vec::with_capacity(threads);
    let mut rest = items.into_iter();
    loop {
        let chunk: Vec<_> = rest.by_ref().take(size).collect();
        if chunk.is_empty() {
            break;
        }
        chunks.push(chunk);
    }
    std::thread::scope(|s| {
        let running: Vec<_> = chunks
            .into_iter()
            .map(|chunk| s.spawn(move || read_chunk(chunk, section, set_key)))
            .collect();
        let mut items = Vec::new();
        let mut diags = Vec::new();
        for thread in running {
            match thread.join() {
                Ok(read) => {
                    let (i, d) = read?;
                    items.extend(i);
                    diags.extend(d);
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Ok((items, diags))
    })
}

/// Reads a chunk of items, in order.
fn read_chunk<T, K>(items: Vec<(String, &str)>, section: &str, set_key: &K) -> Read<T>
where
    T: DeserializeOwned + Shrink + Clone,
    K: Fn(&mut T, &str),
{
    let mut read = Vec::with_capacity(items.len());
    let mut diags = Vec::new();
    for (key, body) in items {
        match serde_json::from_str::<T>(body) {
            Ok(mut item) => {
                item.shrink();
                set_key(&mut item, &key);
                read.push((key, item));
            }
            // Read again from a tree: the diagnostic, or the item (`null` is an empty item),
            // comes out as YAML's reader gives it.
            Err(_) => {
                let tree: Value = serde_json::from_str(body).map_err(|_| NotJson)?;
                let mut one = SortedMap::new();
                read_item(tree, section, key, &mut one, &mut diags, set_key);
                read.extend(one);
            }
        }
    }
    Ok((read, diags))
}

/// Puts items read into `out`: built at once when `out` is empty (the usual case), inserted one
/// by one otherwise, a later item replacing an earlier one with the same key.
fn merge<T: Clone>(
    read: Vec<(String, T)>,
    found: Vec<Diagnostic>,
    out: &mut SortedMap<String, T>,
    diags: &mut Vec<Diagnostic>,
) {
    if out.is_empty() {
        *out = read.into_iter().collect();
    } else {
        out.extend(read);
    }
    diags.extend(found);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Flag, Segment};
    use serde_json::value::RawValue;

    fn set_flag_key(f: &mut Arc<Flag>, k: &str) {
        Arc::make_mut(f).key = k.to_owned();
    }

    /// Item texts of every kind: plain, full, `null`, ones that do not fit the format (unknown
    /// field, wrong type, a field given twice), and values with nested arrays and objects.
    const FLAGS: &[&str] = &[
        r#"{"type":"bool","default":false}"#,
        r#"null"#,
        r#"{}"#,
        r#"{"type":"bool","rules":[{"id":"r","clauses":[{"attribute":"plan","operator":"in","values":["pro","team",1,true,null,[1,[2]],{"a":{"b":[3]}}]},{"attribute":"country","op":"eq","values":["DE"]}],"rollout":{"bucketBy":"key","variations":[{"variation":0,"weight":50000},{"variation":1,"weight":50000}]}}],"fallthrough":{"variation":0}}"#,
        r#"{"type":"json","variants":[{"value":{"x":[1,2,3]},"name":"n","weight":1.5},{"value":[]}],"targets":[{"variation":0,"values":["a","b"],"contextKind":"org"}],"prerequisites":[{"key":"p","variation":1}],"tags":["a","b","c"],"salt":"s","version":3,"createdAt":"t"}"#,
        r#"{"type":"bool","unknown":1}"#,
        r#"{"type":"bool","rules":[{"clauses":[{"attribute":"a","operator":"eq","values":["x"],"extra":1}]}]}"#,
        r#"{"type":"bool","default":true,"default":false}"#,
        r#"{"rules":[{"clauses":[{"attribute":"a","op":"eq","operator":"eq","values":[]}]}]}"#,
        r#"{"version":-1}"#,
        r#"{"type":"boolean","offVariation":1.5}"#,
        r#"[1,2]"#,
        r#""text""#,
    ];

    fn items(n: usize) -> String {
        let body: Vec<String> = (0..n)
            .map(|i| format!(r#""k{i:05}":{}"#, FLAGS[i % FLAGS.len()]))
            .collect();
        format!("{{{}}}", body.join(","))
    }

    #[test]
    fn items_read_from_their_text_are_those_read_from_a_tree() {
        let text = items(FLAGS.len() * 3);
        let raw: BTreeMap<String, &RawValue> = serde_json::from_str(&text).unwrap();
        let (mut tree, mut tree_diags) = (SortedMap::new(), Vec::new());
        for (k, v) in &raw {
            read_item(
                serde_json::from_str(v.get()).unwrap(),
                "flags",
                k.clone(),
                &mut tree,
                &mut tree_diags,
                &set_flag_key,
            );
        }
        let (mut read, mut diags) = (SortedMap::new(), Vec::new());
        let raw = raw.into_iter().map(|(k, v)| (k, v.get())).collect();
        read_items(raw, "flags", &mut read, &mut diags, &set_flag_key).unwrap();
        assert_eq!(read, tree);
        assert_eq!(diags, tree_diags);
        assert!(diags.len() >= 3 * 6, "{diags:?}");
        // Lists hold no spare room.
        for f in read.values() {
            assert_eq!(f.rules.capacity(), f.rules.len());
            for r in &f.rules {
                assert_eq!(r.clauses.capacity(), r.clauses.len());
                for c in &r.clauses {
                    assert_eq!(c.values.capacity(), c.values.len());
                }
            }
            assert_eq!(f.tags.capacity(), f.tags.len());
        }
    }

    #[test]
    fn items_read_on_several_threads_are_those_read_on_one() {
        let text = items(1000);
        let raw: Vec<(String, &str)> = serde_json::from_str::<BTreeMap<String, &RawValue>>(&text)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.get()))
            .collect();
        let one = read_all::<Arc<Flag>, _>(raw.clone(), "flags", &set_flag_key, 1).unwrap();
        assert!(one.1.len() > 100);
        for threads in [2, 3, 7, 2000] {
            let many = read_all::<Arc<Flag>, _>(raw.clone(), "flags", &set_flag_key, threads);
            let many = many.unwrap();
            assert_eq!(many, one, "{threads} threads");
        }
        let segments =
            r#"{"a":{"included":["x","y"],"rules":[{"clauses":[]}]},"b":{"included":4},"c":null}"#;
        let raw: Vec<(String, &str)> =
            serde_json::from_str::<BTreeMap<String, &RawValue>>(segments)
                .unwrap()
                .into_iter()
                .map(|(k, v)| (k, v.get()))
                .collect();
        let set = |s: &mut Arc<Segment>, k: &str| Arc::make_mut(s).key = k.to_owned();
        let one = read_all::<Arc<Segment>, _>(raw.clone(), "segments", &set, 1).unwrap();
        assert_eq!((one.0.len(), one.1.len()), (2, 1));
        assert_eq!(read_all(raw, "segments", &set, 2), Ok(one));
        // An item that is not JSON at all is refused, whichever thread reads it.
        let bad = vec![("a".to_owned(), "{}"), ("b".to_owned(), "{]")];
        for threads in [1, 2] {
            let read = read_all::<Arc<Segment>, _>(bad.clone(), "segments", &set, threads);
            assert_eq!(read, Err(NotJson));
        }
    }

    /// The document as the reader that checks the whole text first reads it.
    fn read_checked(text: &str) -> Option<(FlagDocument, Vec<Diagnostic>)> {
        let mut document = FlagDocument::default();
        let mut diags = Vec::new();
        for (k, v) in super::super::json_sections(text).ok()? {
            read_field(&k, v, &mut document, &mut diags);
        }
        Some((document, diags))
    }

    /// Texts around every branch of the splitter: escapes, brackets and quotes inside strings,
    /// keys given twice, values of every kind where sections go, and text that is not JSON.
    const TEXTS: &[&str] = &[
        r#"{"flags":{"a":{"type":"bool","default":true}}}"#,
        " \n\t{ \"flags\" : { \"a\" : { } , \"b\":null } , \"version\" : 2 } \r\n",
        r#"{"flags":{"a\"}{[":{"type":"string","default":"x\"}]{\\","tags":["[","{","\\\""]},"\u0062":{}}}"#,
        r#"{"flags":{"a":{"type":"bool"},"a":{"type":"int"}},"flags":{"b":{}},"segments":{"s":{"included":["x"]},"s":null}}"#,
        r#"{"flags":[],"segments":3,"other":{"x":[1,{"y":"}"}]},"version":"2"}"#,
        r#"{"flags":null,"segments":"x","version":null}"#,
        r#"{"flags":{"a":3,"b":"s","c":[1,2],"d":true,"e":-1.5e3}}"#,
        r#"{"flags":{"a":{"unknown":1},"b":{"rules":[{"clauses":[{"attribute":"x","op":"eq","values":[[],{},"]"]}]}]}}}"#,
        r#"{}"#,
        r#"  {  }  "#,
        r#"null"#,
        r#"[1]"#,
        r#""flags""#,
        r#"{"flags":{"a":{}}"#,
        r#"{"flags":{"a":{}}}}"#,
        r#"{"flags":{"a":{}},}"#,
        r#"{"flags":{"a":{},}}"#,
        r#"{"flags":{"a" {}}}"#,
        r#"{"flags":{"a":{]}}"#,
        r#"{"flags":{"a":{"x":1x}}}"#,
        r#"{"flags":{"a":tru}}"#,
        r#"{"flags":{"a":{}},"flags":{"b":[}}"#,
        r#"{"flags":{"a":[},"a":{}}}"#,
        r#"{"other":{"a":[}}}"#,
        r#"{"other":{"a":1,"a":[}}"#,
        r#"{"version":01}"#,
        "{\"flags\":{\"a\tb\":{}}}",
        r#"{"flags":{"a":{"default":"\x"}}}"#,
        r#"{"flags":{"\x":{}}}"#,
        r#"{"flags":{}} x"#,
        "{\"flags\":{}}\u{a0}",
        r#"{"flags":{"a":"#,
        r#"{"fl"#,
        "",
    ];

    /// Read from split text, a document is the one read from checked text; a text that is not
    /// a JSON mapping is left to the checked reader, which reports it.
    fn agrees(text: &str) {
        match read(text) {
            Some(split) => assert_eq!(Some(split), read_checked(text), "{text:?}"),
            None => assert!(
                super::super::json_sections(text).is_err() || !text.trim_start().starts_with('{'),
                "{text:?} was not split"
            ),
        }
    }

    #[test]
    fn split_text_reads_as_checked_text() {
        for text in TEXTS {
            agrees(text);
        }
        assert!(read(TEXTS[0]).is_some() && read(TEXTS[3]).is_some() && read(TEXTS[4]).is_some());
    }

    #[test]
    fn split_text_with_a_byte_changed_reads_as_checked_text() {
        let base = items(FLAGS.len());
        let text = format!(
            r#"{{"version":1,"segments":{{"s":{{"included":["a","b\"c"]}}}},"flags":{base}}}"#
        );
        let bytes = text.as_bytes();
        let replacements = b"{}[]\",: \\0an-e";
        // A small deterministic generator: every run checks the same texts.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut split, mut refused) = (0, 0);
        for _ in 0..3000 {
            let at = (next() % bytes.len() as u64) as usize;
            let mut changed = bytes.to_vec();
            match next() % 3 {
                0 => {
                    changed.remove(at);
                }
                1 => changed.insert(
                    at,
                    replacements[(next() % replacements.len() as u64) as usize],
                ),
                _ => changed[at] = replacements[(next() % replacements.len() as u64) as usize],
            }
            if let Ok(changed) = String::from_utf8(changed) {
                agrees(&changed);
                split += usize::from(read(&changed).is_some());
                refused += usize::from(super::super::json_sections(&changed).is_err());
            }
        }
        // Both kinds are met: texts still JSON, and texts that are not.
        assert!(
            split > 500 && refused > 500,
            "{split} split, {refused} refused"
        );
    }
}
