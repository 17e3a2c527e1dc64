//! The fast YAML reader against the event reader: for every text, either the fast reader gives
//! up (and leaves the document alone), or both read it and give the same document and the same
//! diagnostics; the fast reader never reads a text the event reader refuses.
//!
//! The texts: the YAML files of the repository (examples, fixtures, fuzz corpus), every string
//! literal of the crate's tests, the shape of the large benchmark documents, and generated
//! YAML-ish texts (quoting styles, escapes, the core schema's scalars, comments, CRLF, unicode,
//! deep nesting, wrong indentation and syntax errors).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use super::yaml::read_events;
use super::yaml_fast;
use crate::model::FlagDocument;
use proptest::prelude::*;
use std::path::{Path, PathBuf};

/// Reads `text` both ways and checks they agree; returns whether the fast reader read it.
fn agree(text: &str) -> bool {
    let mut slow_doc = FlagDocument::default();
    let slow = read_events(text, &mut slow_doc);
    let mut fast_doc = FlagDocument::default();
    let fast = yaml_fast::read(text, &mut fast_doc);
    // Every section of two items or more read on up to three threads: what one thread reads.
    let mut split_doc = FlagDocument::default();
    let split = yaml_fast::read_with(text, &mut split_doc, |n| n.min(3));
    assert_eq!(
        split, fast,
        "diagnostics read on threads differ for {text:?}"
    );
    assert_eq!(
        format!("{split_doc:?}"),
        format!("{fast_doc:?}"),
        "documents read on threads differ for {text:?}"
    );
    match fast {
        Some(fast) => {
            let slow = match slow {
                Ok(d) => d,
                Err(e) => {
                    panic!("the fast reader read a text the event reader refuses ({e}):\n{text:?}")
                }
            };
            assert_eq!(fast, slow, "diagnostics differ for {text:?}");
            // Debug text: equal floats compare equal, NaN included.
            assert_eq!(
                format!("{fast_doc:?}"),
                format!("{slow_doc:?}"),
                "documents differ for {text:?}"
            );
            true
        }
        None => {
            assert_eq!(
                fast_doc,
                FlagDocument::default(),
                "gave up but wrote: {text:?}"
            );
            false
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files_under(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        if p.is_dir() {
            if name != "target" && name != ".git" {
                files_under(&p, exts, out);
            }
        } else if p
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| exts.contains(&x))
        {
            out.push(p);
        }
    }
}

/// The string literals of a Rust source: raw strings as written, others with their escapes.
fn string_literals(src: &str) -> Vec<String> {
    let b: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        // Raw strings: r"..." and r#"..."#.
        if b[i] == 'r' && (i == 0 || !b[i - 1].is_alphanumeric() && b[i - 1] != '_') {
            let mut j = i + 1;
            let mut hashes = 0;
            while j < b.len() && b[j] == '#' {
                hashes += 1;
                j += 1;
            }
            if j < b.len() && b[j] == '"' {
                let close: String = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                let rest: String = b[j + 1..].iter().collect();
                if let Some(end) = rest.find(&close) {
                    out.push(rest[..end].to_owned());
                    i = j + 1 + rest[..end].chars().count() + close.chars().count();
                    continue;
                }
            }
        }
        if b[i] == '\'' {
            // A char literal ('"', '\'', 'x'), or a lifetime: skip the quote character.
            if i + 2 < b.len() && b[i + 2] == '\'' {
                i += 3;
                continue;
            }
            if i + 3 < b.len() && b[i + 1] == '\\' && b[i + 3] == '\'' {
                i += 4;
                continue;
            }
        }
        if b[i] == '/' && i + 1 < b.len() && b[i + 1] == '/' {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if b[i] == '"' {
            let mut s = String::new();
            let mut j = i + 1;
            while j < b.len() && b[j] != '"' {
                if b[j] == '\\' && j + 1 < b.len() {
                    j += 1;
                    match b[j] {
                        'n' => s.push('\n'),
                        'r' => s.push('\r'),
                        't' => s.push('\t'),
                        '0' => s.push('\0'),
                        '\n' => {
                            while j + 1 < b.len() && b[j + 1].is_whitespace() {
                                j += 1;
                            }
                        }
                        'u' => {
                            let hex: String =
                                b[j + 2..].iter().take_while(|c| **c != '}').collect();
                            if let Some(c) =
                                u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
                            {
                                s.push(c);
                            }
                            j += hex.chars().count() + 2;
                        }
                        c => s.push(c),
                    }
                } else {
                    s.push(b[j]);
                }
                j += 1;
            }
            out.push(s);
            i = j + 1;
            continue;
        }
        i += 1;
    }
    out
}

/// The texts of the repository: YAML files and the string literals of the tests.
fn corpus() -> Vec<(String, String)> {
    let root = repo_root();
    let mut texts = Vec::new();
    let mut files = Vec::new();
    files_under(&root.join("crates"), &["yaml", "yml"], &mut files);
    files_under(&root.join("fuzz/corpus"), &["yaml", "yml"], &mut files);
    for f in files {
        if let Ok(t) = std::fs::read_to_string(&f) {
            texts.push((f.display().to_string(), t));
        }
    }
    let mut sources = Vec::new();
    files_under(
        &root.join("crates/feature-core/tests"),
        &["rs"],
        &mut sources,
    );
    files_under(&root.join("crates/feature/tests"), &["rs"], &mut sources);
    files_under(
        &root.join("crates/feature-core/src/source"),
        &["rs"],
        &mut sources,
    );
    for f in sources {
        if let Ok(src) = std::fs::read_to_string(&f) {
            for (n, s) in string_literals(&src).into_iter().enumerate() {
                if s.contains(':') || s.contains('\n') {
                    texts.push((format!("{} literal {n}", f.display()), s));
                }
            }
        }
    }
    texts
}

#[test]
fn repository_texts_read_alike() {
    let texts = corpus();
    assert!(texts.len() > 200, "only {} texts found", texts.len());
    let mut fast = 0;
    for (name, text) in &texts {
        if agree(text) {
            fast += 1;
        }
        // The same with CRLF line ends, and with trailing spaces.
        agree(&text.replace('\n', "\r\n"));
        agree(&text.replace('\n', "  \n"));
        let _ = name;
    }
    // Most flag documents are in the subset: the fast reader is not giving up on everything.
    assert!(
        fast > 50,
        "the fast reader read only {fast} of {} texts",
        texts.len()
    );
}

#[test]
fn example_documents_take_the_fast_reader() {
    let root = repo_root().join("crates/feature/examples/flags");
    for name in ["basic.yaml", "ab-testing.yaml", "local-overrides.yaml"] {
        let text = std::fs::read_to_string(root.join(name)).unwrap();
        assert!(agree(&text), "{name} was left to the event reader");
    }
}

/// The shape of the large benchmark documents (flags with rules, a segment of many keys).
fn benchmark_like(flags: usize) -> String {
    let mut s = String::from("flags:\n");
    for i in 0..flags {
        s.push_str(&format!(
            "  flag-{i:06}:\n    type: bool\n    default: false\n    rules:\n      - id: r{i}\n        clauses:\n          - {{attribute: plan, operator: in, values: [pro, team-{i}]}}\n          - {{attribute: country, operator: eq, values: [DE]}}\n        rollout: {{bucketBy: key, variations: [{{variation: 0, weight: 50000}}, {{variation: 1, weight: 50000}}]}}\n    fallthrough: {{variation: 0}}\n"
        ));
    }
    s.push_str("segments:\n  big:\n    included:\n");
    for i in 0..50 {
        s.push_str(&format!("      - user-{i}\n"));
    }
    s
}

#[test]
fn benchmark_documents_take_the_fast_reader() {
    let text = benchmark_like(20);
    assert!(agree(&text));
    let mut doc = FlagDocument::default();
    yaml_fast::read(&text, &mut doc).unwrap();
    assert_eq!(doc.flags.len(), 20);
    assert_eq!(doc.segments.len(), 1);
}

#[test]
fn anchors_tags_and_block_scalars_are_left_to_the_event_reader() {
    let texts = [
        "flags:\n  a: &a {type: bool, default: true}\n  b: *a\n",
        "flags:\n  a: !!map {type: bool, default: true}\n",
        "flags:\n  a:\n    type: string\n    default: |+\n      two\n      lines\n",
        "flags:\n  a:\n    type: string\n    default: plain\n      continued\n",
        "%YAML 1.2\n---\nflags:\n  a: {type: bool}\n",
        "flags:\n  a: {type: bool}\n---\nflags: {}\n",
        "flags:\n  a: {type: bool,\n    default: true}\n",
    ];
    for text in texts {
        let mut doc = FlagDocument::default();
        assert!(yaml_fast::read(text, &mut doc).is_none(), "{text:?}");
        assert!(!agree(text));
    }
    // Through the public reader: the event reader reads them as before.
    let parsed = crate::parse_document(texts[0], crate::Format::Yaml).unwrap();
    assert_eq!(
        parsed.document.flags["b"].default,
        parsed.document.flags["a"].default
    );
    assert_eq!(parsed.document.flags["b"].key, "b");
    let parsed = crate::parse_document(texts[1], crate::Format::Yaml).unwrap();
    assert_eq!(parsed.document.flags.len(), 1);
    let parsed = crate::parse_document(texts[2], crate::Format::Yaml).unwrap();
    assert_eq!(
        parsed.document.flags["a"].default,
        Some(serde_json::json!("two\nlines\n"))
    );
    assert!(crate::parse_document(texts[5], crate::Format::Yaml).is_err());
}

/// Found by fuzzing: in a flow collection the event reader refuses a word `-` followed by a flow
/// indicator (`{name: blue -, ...}`), so the fast reader must not read it either.
#[test]
fn a_dash_word_before_a_flow_indicator_is_refused_by_both_readers() {
    for text in [
        "flags:\n  f:\n    type: string\n    variants:\n      - {name: blue  -, value: blue, weight: 34}\n",
        "flags:\n  f:\n    type: string\n    variants: [a -]\n",
        "flags:\n  f:\n    type: string\n    variants: [a -, b]\n",
    ] {
        let mut doc = FlagDocument::default();
        assert!(yaml_fast::read(text, &mut doc).is_none(), "{text:?}");
        assert!(crate::parse_document(text, crate::Format::Yaml).is_err(), "{text:?}");
    }
    // A dash inside a word, or one followed by a space, stays a plain scalar.
    assert!(agree(
        "flags:\n  f:\n    type: string\n    variants: [a-, b - c]\n"
    ));
}

/// Block scalars as a mapping's value: the common forms are read by the fast reader, the others
/// left to the event reader, and both readers give the same document every time.
#[test]
fn block_scalars_read_alike() {
    let bodies = [
        "|\n      two\n      lines\n",
        "|-\n      two\n      lines\n",
        ">\n      folded\n      text\n\n      para\n",
        ">-\n      folded\n      text\n",
        "|\n      a\n\n\n      b\n\n",
        ">\n      a\n\n\n      b\n\n",
        "|\n      keep  \n        more\n      # not a comment\n",
        ">\n      a  \n      b\n",
        "|  \n      x\n",
        "|\n      x\n    # a comment after\n",
        "|\n      x",
        "|\n      x\n\n",
        "|\n      é: ü # x\n",
        "|\n      - not: a list\n",
        // Left to the event reader.
        "|+\n      x\n",
        "|2\n        x\n",
        "| # comment\n      x\n",
        "|\n\n      x\n",
        "|\n      x\n      \n      y\n",
        ">\n      a\n        more\n      b\n",
        "|\n    x\n",
        "|\n",
        "|x\n",
        "- |\n      x\n",
    ];
    let mut fast = 0;
    for body in bodies {
        for after in [
            "",
            "    type: string\n",
            "  b:\n    type: bool\n",
            "    type: string\n  # c\nsegments: {}\n",
        ] {
            let text = format!(
                "flags:\n  a:\n    default: {body}{}{after}",
                if body.ends_with('\n') { "" } else { "\n" }
            );
            if agree(&text) {
                fast += 1;
            }
            agree(&text.replace('\n', "\r\n"));
        }
    }
    assert!(fast >= 40, "only {fast} texts read by the fast reader");
    // A top-level field, and a segment's description.
    assert!(agree("description: |\n  file\n  notes\nflags: {}\n"));
    assert!(agree(
        "segments:\n  s:\n    description: >\n      long\n      text\n    included: [a]\n"
    ));
}

/// A small deterministic generator (the property test's seed drives it).
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const PLAIN: &[&str] = &[
    "a",
    "plain text",
    "bool",
    "string",
    "int",
    "json",
    "pro",
    "DE",
    "key",
    "0",
    "1",
    "-1",
    "50000",
    "0x1F",
    "0o17",
    "0b101",
    "1e3",
    "-2.5e3",
    "1.5",
    ".5",
    "+.5",
    "5.",
    ".inf",
    "-.Inf",
    "+.INF",
    ".NaN",
    ".nan",
    "+1",
    "007",
    "-007",
    "-0",
    "0x",
    "+-1",
    "--1",
    "1_000",
    "inf",
    "nan",
    "infinity",
    "true",
    "True",
    "TRUE",
    "tRUE",
    "false",
    "False",
    "FALSE",
    "yes",
    "no",
    "on",
    "null",
    "Null",
    "NULL",
    "~",
    "x#y",
    "a:b",
    "http://x.y/z?q=1",
    "é",
    "ünïcödé",
    "日本語",
    "-x",
    "a  b",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "-9223372036854775809",
    "1e400",
    "a,b",
    "a]b",
    "a}",
    "x&y",
    "x*y",
    "x!y",
    "100%",
    "a'b",
    "a\"b",
    "---",
    "...",
    "a :b",
    "a - b",
    "a #b",
    "a -",
    "blue  -",
    "a -x",
];

/// Plain scalars that are errors or outside the subset where a value goes.
const ODD: &[&str] = &[
    "- x",
    "-",
    "?x",
    ":x",
    "&anchor",
    "*alias",
    "!tag",
    "|",
    ">",
    "%x",
    "@x",
    "`x",
    "[a",
    "{a",
    "#x",
    "a: b",
    "a:",
    "]",
    "}",
    ",",
    "'unclosed",
    "\"unclosed",
    "\"a\"b",
    "'a'b",
    "\"\\",
    "\"a \\\"",
    "\"\\q\"",
    "\"\\uD800\"",
    "\"\\x4\"",
    "&a x",
    "*a",
    "!!str x",
    "? x",
];

const QUOTED: &[&str] = &[
    "'single'",
    "''",
    "'it''s'",
    "'a: b # c'",
    "'#'",
    "\"double\"",
    "\"\"",
    "\"a\\nb\"",
    "\"\\u00e9\"",
    "\"\\x41\"",
    "\"\\\"q\\\"\"",
    "\"\\\\\"",
    "\"\\t\"",
    "\"\\/\"",
    "\"\\N\\_\\L\\P\"",
    "\"\\0\\a\\b\\v\\f\\r\\e\\ \"",
    "\"\\U0001F600\"",
    "\"a: b\"",
    "\"# not a comment\"",
    "'0x1F'",
    "\"true\"",
    "'null'",
    "\"é\"",
    "' spaced '",
    "\"\\U0010FFFF\"",
    "\"\\x80\\xff\"",
    "'a, b]'",
    "\"{a}\"",
];

const KEYS: &[&str] = &[
    "type",
    "default",
    "enabled",
    "variants",
    "rules",
    "clauses",
    "attribute",
    "operator",
    "values",
    "rollout",
    "fallthrough",
    "variation",
    "weight",
    "bucketBy",
    "name",
    "value",
    "included",
    "excluded",
    "description",
    "id",
    "x",
    "1",
    "true",
    "~",
    "a b",
    "\"a: b\"",
    "'k # c'",
    "\"\"",
    "'x''y'",
    "\"\\u00e9\"",
    "<<",
    "-k",
    "é",
];

fn scalar(g: &mut Gen) -> String {
    if g.chance(1) {
        g.pick(ODD).to_owned()
    } else if g.chance(30) {
        g.pick(QUOTED).to_owned()
    } else {
        g.pick(PLAIN).to_owned()
    }
}

fn flow(g: &mut Gen, depth: usize) -> String {
    let n = g.below(4);
    let mapping = g.chance(50);
    let mut parts = Vec::new();
    for _ in 0..n {
        let v = if depth < 3 && g.chance(20) {
            flow(g, depth + 1)
        } else {
            scalar(g)
        };
        if mapping {
            parts.push(format!("{}: {v}", g.pick(KEYS)));
        } else {
            parts.push(v);
        }
    }
    let sep = if g.chance(90) {
        ", "
    } else {
        g.pick(&[",", " , ", ",  "])
    };
    let body = parts.join(sep);
    let pad = if g.chance(20) { " " } else { "" };
    if mapping {
        format!("{{{pad}{body}{pad}}}")
    } else {
        format!("[{pad}{body}{pad}]")
    }
}

fn line_end(g: &mut Gen) -> String {
    let mut s = String::new();
    if g.chance(10) {
        s.push_str("   ");
    }
    if g.chance(10) {
        s.push_str(g.pick(&[" # comment", " #", " # a: b", " #:"]));
    } else if g.chance(1) {
        s.push_str("# not a comment");
    }
    s.push('\n');
    if g.chance(5) {
        s.push_str(g.pick(&["\n", "  # between\n", "# at 0\n", "    \n"]));
    }
    s
}

/// A value after `key:` (or `- `) of a block node at `indent`.
fn value(g: &mut Gen, out: &mut String, indent: usize, depth: usize) {
    let choice = if depth > 6 { g.below(3) } else { g.below(7) };
    match choice {
        0 | 1 => {
            out.push(' ');
            out.push_str(&scalar(g));
            out.push_str(&line_end(g));
        }
        2 => {
            out.push(' ');
            out.push_str(&flow(g, 0));
            out.push_str(&line_end(g));
        }
        3 => out.push_str(&line_end(g)),
        4 => {
            out.push_str(&line_end(g));
            let step = if g.chance(85) { 2 } else { 1 + g.below(4) };
            mapping(g, out, indent + step, depth + 1);
        }
        _ => {
            out.push_str(&line_end(g));
            let step = if g.chance(50) { 0 } else { 2 };
            sequence(g, out, indent + step, depth + 1);
        }
    }
}

fn mapping(g: &mut Gen, out: &mut String, indent: usize, depth: usize) {
    for _ in 0..1 + g.below(4) {
        out.push_str(&" ".repeat(indent));
        out.push_str(g.pick(KEYS));
        out.push(':');
        value(g, out, indent, depth);
    }
}

fn sequence(g: &mut Gen, out: &mut String, indent: usize, depth: usize) {
    for _ in 0..1 + g.below(3) {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        if g.chance(40) && depth < 8 {
            // A mapping whose first key is on the entry's line.
            out.push(' ');
            out.push_str(g.pick(KEYS));
            out.push(':');
            value(g, out, indent + 2, depth + 1);
            if g.chance(60) {
                mapping(g, out, indent + 2, depth + 1);
            }
        } else {
            value(g, out, indent, depth);
        }
    }
}

fn document(g: &mut Gen) -> String {
    let mut out = String::new();
    if g.chance(10) {
        out.push_str(g.pick(&["---\n", "--- # start\n", "# header\n\n", "\n"]));
    }
    for _ in 0..1 + g.below(3) {
        let key = g.pick(&["flags", "segments", "version", "other", "flags"]);
        out.push_str(key);
        out.push(':');
        if matches!(key, "flags" | "segments") && g.chance(80) {
            out.push_str(&line_end(g));
            let indent = if g.chance(90) { 2 } else { 4 };
            for _ in 0..1 + g.below(3) {
                out.push_str(&" ".repeat(indent));
                out.push_str(g.pick(&["a", "b", "flag-1", "\"q\"", "big"]));
                out.push(':');
                if g.chance(50) {
                    // A plausible flag or segment.
                    out.push_str(&line_end(g));
                    let inner = " ".repeat(indent + 2);
                    out.push_str(&format!(
                        "{inner}type: {}\n{inner}default: {}\n",
                        g.pick(&["bool", "string", "int", "json", "float"]),
                        scalar(g)
                    ));
                    if g.chance(50) {
                        mapping(g, &mut out, indent + 2, 3);
                    }
                } else {
                    value(g, &mut out, indent, 3);
                }
            }
        } else {
            value(g, &mut out, 0, 2);
        }
    }
    out
}

/// Breaks a text the way people do: a stray character, a lost one, a line moved.
fn mutate(g: &mut Gen, text: &str) -> String {
    let mut t = text.to_owned();
    for _ in 0..g.below(3) {
        let bounds: Vec<usize> = (0..=t.len()).filter(|i| t.is_char_boundary(*i)).collect();
        let at = bounds[g.below(bounds.len())];
        match g.below(6) {
            0 => {
                let c = g.pick(&[
                    " ", ":", "-", "#", "'", "\"", "[", "]", "{", "}", ",", "&", "*", "!", "|",
                    ">", "\t", "\r", "\n", "%", "@", "?", "\\", "é", "\u{85}", "\u{feff}", "\0",
                ]);
                t.insert_str(at, c);
            }
            1 => {
                if let Some(c) = t[at..].chars().next() {
                    t.replace_range(at..at + c.len_utf8(), "");
                }
            }
            2 => {
                // Indent the line at `at` by one more or one fewer space.
                let start = t[..at].rfind('\n').map_or(0, |i| i + 1);
                if g.chance(50) {
                    t.insert(start, ' ');
                } else if t[start..].starts_with(' ') {
                    t.remove(start);
                }
            }
            3 => t = t.replace('\n', "\r\n"),
            4 => t.push_str(g.pick(&["---\nflags: {}\n", "...\n", "- x\n", "  stray\n", "x"])),
            _ => t.insert(at, '\n'),
        }
    }
    t
}

/// Nested `depth` levels deep, in block or flow style.
fn deep(depth: usize, flow: bool) -> String {
    if flow {
        format!(
            "flags:\n  a:\n    default: {}1{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        )
    } else {
        let mut s = String::from("flags:\n  a:\n    default:\n");
        for i in 0..depth {
            s.push_str(&" ".repeat(6 + 2 * i));
            s.push_str("k:\n");
        }
        s
    }
}

#[test]
fn deep_nesting_reads_alike() {
    for depth in [1, 10, 100, 124, 125, 126, 127, 128, 129, 130, 200] {
        agree(&deep(depth, true));
        agree(&deep(depth, false));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn generated_documents_read_alike(seed in any::<u64>()) {
        let mut g = Gen(seed | 1);
        let text = document(&mut g);
        agree(&text);
        agree(&text.replace('\n', "\r\n"));
        agree(&mutate(&mut g, &text));
    }
}

/// Texts at the subset's edges, each read both ways.
#[test]
fn edge_cases_read_alike() {
    let texts = [
        "flags:\n  a  : {type: bool}\n",
        "flags:\n  a:   {type: bool}   # c\n",
        "flags:\n  a:\n    default: x#y\n    type: string\n",
        "flags:\n  a:\n    default: 'x'#y\n",
        "flags:\n  a:\n    default: x :y\n",
        "flags:\n  a:\n    default: a, b] c}\n",
        "flags:\n  a:\n    default: b: c\n",
        "flags:\n  a:#x\n",
        "flags:\n  \"a\":b\n",
        "flags:\n  \"a\" : {}\n",
        "flags:\n  a:\n    rules:\n    - id: x\n    type: bool\n",
        "flags:\n  a:\n    rules:\n    - id: x\n      clauses:\n      - {attribute: a, operator: in, values: [1]}\n    type: bool\n",
        "flags:\n  a:\n    rules:\n      - id: x\n     type: bool\n",
        "flags:\n  a:\n    rules:\n      - id: x\n         variation: 1\n",
        "flags:\n  a:\n    variants:\n    -\n    - x\n    -   # c\n      - y\n",
        "flags:\n  a:\n    default: [a, b,]\n",
        "flags:\n  a:\n    default: [a, , b]\n",
        "flags:\n  a:\n    default: {a: }\n",
        "flags:\n  a:\n    default: {a : b}\n",
        "flags:\n  a:\n    default: {\"a\":b}\n",
        "flags:\n  a:\n    default: [a: b]\n",
        "flags:\n  a:\n    default: [-, -1, -.inf]\n",
        "flags:\n  a:\n    default: [a b  , c]\n",
        "flags:\n  a:\n    default: [a] x\n",
        "flags:\n  a:\n    default: ---\n",
        "---\nflags: {}\n",
        "--- # c\nflags: {}\n",
        "--- flags: {}\n",
        "---\n---\nflags: {}\n",
        "flags: {}\n...\n",
        "flags: {}\n---\n",
        "  flags: {}\n",
        "flags: { }\n",
        "flags: {a: {type: bool}, a: {type: int}}\n",
        "flags:\n  a: {type: bool}\n  a: {type: int}\nflags:\n  b: {}\n",
        "flags: # c\n  a: {type: bool}\n",
        "flags:\n\n  # c\n\n  a: {type: bool}\n\n",
        "flags:\n  a: {type: bool}",
        "flags:\n  a:\n    type: bool\n    default: true\n   ",
        "segments:\n  s:\n    included:\n    - a\n    - \"b\"\n    - 'c'\n    - 1\n",
        "segments:\n  s:\n    included:\n      - a\n     - b\n",
        "segments:\n  s:\n    included: [a]\n    included: [b]\n",
        "flags:\n  a:\n    default: \"\\u00e9\\x41\\U0001F600\\n\\t\\/\"\n",
        "flags:\n  a:\n    default: \"multi\n      line\"\n",
        "flags:\n  a:\n    default: 'it''s'\n",
        "flags:\n  a:\n    default: \"\\q\"\n",
        "flags:\n  a:\n    default: \"a\\\n      b\"\n",
        "flags:\n  ? a\n  : {}\n",
        "flags:\n  a: {type: bool}\n- x\n",
        "flags:\n  a: {type: bool}\nx\n",
        "other: 1\nflags: []\nsegments: 3\nversion: x\n",
        "flags:\n  1: {type: bool}\n  true: {type: bool}\n  ~: {type: bool}\n  0x10: {type: bool}\n",
        "flags:\n  é:\n    type: string\n    default: 日本語\n",
        "flags:\n  a:\n    type: json\n    default: {nulls: [~, null, Null, NULL, ''], n: [0x1F, 0o17, 0b101, 1e3, .inf, -.Inf, .NaN, +1, 007, -0, 18446744073709551616]}\n",
    ];
    let mut fast = 0;
    for text in texts {
        if agree(text) {
            fast += 1;
        }
        agree(&text.replace('\n', "\r\n"));
    }
    assert!(fast > 20, "only {fast} read by the fast reader");
}

/// The same document with a `%YAML 1.2` directive before it, which the fast reader leaves to
/// the event reader (`None` for texts a directive would change: a byte order mark or a NUL,
/// which the parser takes for the end of a line or of the stream, a text starting with a
/// directive or `...`).
fn with_directive(text: &str) -> Option<String> {
    if text.contains(['\u{feff}', '\0']) {
        return None;
    }
    // The first line with content (`\r` ends a line too).
    let first = text
        .split(['\n', '\r'])
        .find(|l| {
            let t = l.trim_start_matches([' ', '\t']);
            !t.is_empty() && !t.starts_with('#')
        })
        .unwrap_or("");
    if first.starts_with('%') || first.starts_with("...") {
        return None;
    }
    let explicit = first.starts_with("---")
        && first[3..]
            .chars()
            .next()
            .is_none_or(|c| matches!(c, ' ' | '\t'));
    Some(if explicit {
        format!("%YAML 1.2\n{text}")
    } else {
        format!("%YAML 1.2\n---\n{text}")
    })
}

/// A text read without error reads the same behind a directive (the public reader, either
/// path, against the event reader).
fn directive_agrees(text: &str) {
    let Ok(plain) = crate::parse_document(text, crate::Format::Yaml) else {
        return;
    };
    let Some(forced) = with_directive(text) else {
        return;
    };
    let mut doc = FlagDocument::default();
    assert!(yaml_fast::read(&forced, &mut doc).is_none());
    let behind = crate::parse_document(&forced, crate::Format::Yaml)
        .unwrap_or_else(|e| panic!("{e} behind a directive: {text:?}"));
    assert_eq!(plain.diagnostics, behind.diagnostics, "{text:?}");
    assert_eq!(
        format!("{:?}", plain.document),
        format!("{:?}", behind.document),
        "{text:?}"
    );
}

#[test]
fn texts_read_alike_behind_a_directive() {
    const N_DIRECTIVE: u64 = 3000;
    for (_, text) in corpus() {
        directive_agrees(&text);
    }
    for seed in 0..N_DIRECTIVE {
        let mut g = Gen(seed * 2 + 1);
        let text = document(&mut g);
        directive_agrees(&text);
        directive_agrees(&mutate(&mut g, &text));
    }
}

proptest! {
    /// The word shortcut of plain scalar resolution: a scalar starting with a letter other than
    /// those of `null`, `true` and `false` is never a finite float nor an integer, so it is text.
    #[test]
    fn words_are_text(s in "[a-zA-Z][a-zA-Z0-9_.+-]{0,10}|[iI][nN][fF]([iI][nN][iI][tT][yY])?") {
        if !matches!(s.as_bytes()[0], b'n' | b'N' | b't' | b'T' | b'f' | b'F') {
            prop_assert!(s.parse::<f64>().map_or(true, |f| !f.is_finite()));
            prop_assert!(s.parse::<i128>().is_err());
            prop_assert_eq!(
                super::yaml::resolve_plain(&s),
                serde_json::Value::String(s.clone())
            );
        }
    }
}
