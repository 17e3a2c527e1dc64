//! Reading the items of a JSON document's `flags` and `segments` from their text.
//!
//! Each item is deserialized straight from its own text, with no tree in between, and its
//! lists are then trimmed to their length. An item that does not deserialize that way is read
//! again the way YAML items are, from a tree with the path of what failed, so that its
//! diagnostic is the one the YAML reader gives. Large sections are read on several threads,
//! in chunks whose results are put back in key order: the outcome is the same as reading the
//! items one by one.

use super::{parse_raw, read_item};
use crate::diagnostic::Diagnostic;
use crate::model::Shrink;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// Sections with at least this many items are read on several threads.
const PARALLEL_ITEMS: usize = 2048;

/// At most this many threads read one section.
const MAX_THREADS: usize = 8;

/// What reading some items gave: the items, in key order, and the diagnostics of those that
/// could not be read, in key order too.
type Read<T> = (Vec<(String, T)>, Vec<Diagnostic>);

/// Reads `items` (distinct keys, in order) of `section` into `out`, reporting those that do not
/// fit the format in `diags`.
pub(super) fn read_items<T, K>(
    items: Vec<(String, &RawValue)>,
    section: &str,
    out: &mut BTreeMap<String, T>,
    diags: &mut Vec<Diagnostic>,
    set_key: &K,
) where
    T: DeserializeOwned + Shrink + Send,
    K: Fn(&mut T, &str) + Sync,
{
    let threads = threads_for(items.len());
    let (read, found) = read_all(items, section, set_key, threads);
    merge(read, found, out, diags);
}

/// The number of threads to read `n` items with.
fn threads_for(n: usize) -> usize {
    if n < PARALLEL_ITEMS {
        return 1;
    }
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, MAX_THREADS)
}

/// Reads `items` on `threads` threads, each taking a consecutive chunk; the chunks' results
/// are concatenated in order.
fn read_all<T, K>(
    items: Vec<(String, &RawValue)>,
    section: &str,
    set_key: &K,
    threads: usize,
) -> Read<T>
where
    T: DeserializeOwned + Shrink + Send,
    K: Fn(&mut T, &str) + Sync,
{
    if threads <= 1 {
        return read_chunk(items, section, set_key);
    }
    let size = items.len().div_ceil(threads);
    let mut chunks: Vec<Vec<(String, &RawValue)>> = Vec::with_capacity(threads);
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
                Ok((i, d)) => {
                    items.extend(i);
                    diags.extend(d);
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        (items, diags)
    })
}

/// Reads a chunk of items, in order.
fn read_chunk<T, K>(items: Vec<(String, &RawValue)>, section: &str, set_key: &K) -> Read<T>
where
    T: DeserializeOwned + Shrink,
    K: Fn(&mut T, &str),
{
    let mut read = Vec::with_capacity(items.len());
    let mut diags = Vec::new();
    for (key, body) in items {
        match serde_json::from_str::<T>(body.get()) {
            Ok(mut item) => {
                item.shrink();
                set_key(&mut item, &key);
                read.push((key, item));
            }
            // Read again from a tree: the diagnostic, or the item (`null` is an empty item),
            // comes out as YAML's reader gives it.
            Err(_) => {
                let mut one = BTreeMap::new();
                read_item(parse_raw(body), section, key, &mut one, &mut diags, set_key);
                read.extend(one);
            }
        }
    }
    (read, diags)
}

/// Puts items read into `out`: built at once when `out` is empty (the usual case), inserted one
/// by one otherwise, a later item replacing an earlier one with the same key.
fn merge<T>(
    read: Vec<(String, T)>,
    found: Vec<Diagnostic>,
    out: &mut BTreeMap<String, T>,
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
    use std::sync::Arc;

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
        let (mut tree, mut tree_diags) = (BTreeMap::new(), Vec::new());
        for (k, v) in &raw {
            read_item(
                parse_raw(v),
                "flags",
                k.clone(),
                &mut tree,
                &mut tree_diags,
                &set_flag_key,
            );
        }
        let (mut read, mut diags) = (BTreeMap::new(), Vec::new());
        read_items(
            raw.into_iter().collect(),
            "flags",
            &mut read,
            &mut diags,
            &set_flag_key,
        );
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
        let raw: Vec<(String, &RawValue)> =
            serde_json::from_str::<BTreeMap<String, &RawValue>>(&text)
                .unwrap()
                .into_iter()
                .collect();
        let one: Read<Arc<Flag>> = read_all(raw.clone(), "flags", &set_flag_key, 1);
        assert!(one.1.len() > 100);
        for threads in [2, 3, 7, 2000] {
            let many: Read<Arc<Flag>> = read_all(raw.clone(), "flags", &set_flag_key, threads);
            assert_eq!(many, one, "{threads} threads");
        }
        let segments =
            r#"{"a":{"included":["x","y"],"rules":[{"clauses":[]}]},"b":{"included":4},"c":null}"#;
        let raw: Vec<(String, &RawValue)> =
            serde_json::from_str::<BTreeMap<String, &RawValue>>(segments)
                .unwrap()
                .into_iter()
                .collect();
        let set = |s: &mut Arc<Segment>, k: &str| Arc::make_mut(s).key = k.to_owned();
        let one: Read<Arc<Segment>> = read_all(raw.clone(), "segments", &set, 1);
        assert_eq!((one.0.len(), one.1.len()), (2, 1));
        assert_eq!(read_all(raw, "segments", &set, 2), one);
    }
}
