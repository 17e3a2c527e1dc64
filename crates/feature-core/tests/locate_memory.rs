//! Locating diagnostics costs memory in proportion to the diagnostics, not to the document: a
//! large document with one problem is located without indexing every node (which took
//! hundreds of times the text's size).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run
#![allow(unsafe_code)] // a counting global allocator

use feature_core::{compile_with, parse_document, Format};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

/// The system allocator, following the bytes the current thread holds and their peak.
struct Measuring;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn grow(n: usize) {
    LIVE.with(|l| {
        let now = l.get() + n as isize;
        l.set(now);
        PEAK.with(|p| p.set(p.get().max(now)));
    });
}

fn shrink(n: usize) {
    LIVE.with(|l| l.set(l.get() - n as isize));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the accounting touches
// only const-initialised thread-local `Cell`s, which never allocate.
unsafe impl GlobalAlloc for Measuring {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrink(layout.size());
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        shrink(layout.size());
        grow(new_size);
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Measuring = Measuring;

/// The most bytes `f` held at once beyond what was held when it started.
fn peak_extra(f: impl FnOnce()) -> isize {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    f();
    PEAK.with(Cell::get) - base
}

/// A document of `n` flags, each with a rule of two clauses; flag `broken` has an unknown key.
fn document(n: usize, broken: usize) -> String {
    let mut text = String::from("flags:\n");
    for i in 0..n {
        text.push_str(&format!(
            "  flag-{i}:\n    enabled: true\n    rules:\n      - clauses:\n          - {{attribute: plan, operator: in, values: [pro, team]}}\n          - {{attribute: country, operator: in, values: [de, fr]}}\n        variation: 1\n"
        ));
        if i == broken {
            text.push_str("    colour: red\n");
        }
    }
    text
}

#[test]
fn one_diagnostic_in_a_large_document_is_located_without_indexing_it() {
    for (n, broken) in [(2_000, 1_999), (2_000, 0), (500, 250)] {
        let text = document(n, broken);
        let parsed = parse_document(&text, Format::Yaml).unwrap();
        let mut snap = compile_with(Arc::new(parsed.document), parsed.diagnostics);
        let extra = peak_extra(|| snap.locate(&parsed.locator, Some("flags.yaml")));
        let d = snap
            .diagnostics()
            .iter()
            .find(|d| d.message.contains("colour"))
            .unwrap_or_else(|| panic!("{:?}", snap.diagnostics()));
        // The unknown key is on the line after the flag's 7 lines.
        assert_eq!(d.line, Some(1 + broken * 7 + 8), "{d}");
        assert_eq!(d.file.as_deref(), Some("flags.yaml"));
        assert!(
            extra < text.len() as isize,
            "{n} flags: locating held {extra} bytes at its peak, the text is {} bytes",
            text.len()
        );
    }
}

/// The same document in JSON, a flag a line.
fn json_document(n: usize, broken: usize) -> String {
    let flags: Vec<String> = (0..n)
        .map(|i| {
            let extra = if i == broken { r#","colour":"red""# } else { "" };
            format!(
                r#""flag-{i}":{{"enabled":true,"rules":[{{"clauses":[{{"attribute":"plan","operator":"in","values":["pro","team"]}},{{"attribute":"country","operator":"in","values":["de","fr"]}}],"variation":1}}]{extra}}}"#
            )
        })
        .collect();
    format!("{{\"flags\":{{\n{}\n}}}}\n", flags.join(",\n"))
}

/// A JSON document is read by the YAML parser when located as a whole, which holds many times
/// its text: one item's text is read instead.
#[test]
fn one_diagnostic_in_a_large_json_document_is_located_in_its_item() {
    for (n, broken) in [(2_000, 1_999), (2_000, 0), (500, 250)] {
        let text = json_document(n, broken);
        let parsed = parse_document(&text, Format::Json).unwrap();
        let mut snap = compile_with(Arc::new(parsed.document), parsed.diagnostics);
        let extra = peak_extra(|| snap.locate(&parsed.locator, Some("flags.json")));
        let d = snap
            .diagnostics()
            .iter()
            .find(|d| d.message.contains("colour"))
            .unwrap_or_else(|| panic!("{:?}", snap.diagnostics()));
        // Flag `broken` is on line `broken + 2`; the unknown field's value after its rules.
        let line = text.lines().nth(broken + 1).unwrap();
        let column = line.find("\"red\"").unwrap() + 1;
        assert_eq!((d.line, d.column), (Some(broken + 2), Some(column)), "{d}");
        assert!(
            extra < text.len() as isize,
            "{n} flags: locating held {extra} bytes at its peak, the text is {} bytes",
            text.len()
        );
    }
}
