//! YAML documents are read one flag at a time from the parser's events (no tree of the whole
//! document). What comes out must be what the whole-tree reader gave: the same text read by a
//! complete YAML deserializer into one tree, written as JSON and read by the JSON path, gives the
//! same flags, segments and diagnostics. The documents exercise what users write in YAML:
//! anchors and aliases, block and folded strings, the core schema's scalars, quoted numbers,
//! repeated keys, bad flags next to good ones, and the `<<` key (not a merge: an unknown field).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature_core::{parse_document, Format};

const DOCUMENTS: &[&str] = &[
    "",
    "# only a comment\n",
    "flags: {}\n",
    "flags:\nsegments:\n",
    "flags: []\nsegments: 3\n",
    "version: 2\nother: 1\nflags:\n  x: {type: int, default: 3}\n",
    "flags:\n  a: {type: bool, default: true}\nflags:\n  b: {type: bool}\n",
    "flags:\n  a: {type: bool, default: true}\n  a: {type: bool, bogus: 1}\n  b: {type: bool}\n  b: {type: bool, default: false}\n",
    r#"
common: &common
  - {attribute: country, operator: in, values: [de, fr]}
flags:
  a:
    enabled: true
    rules:
      - clauses: *common
        variation: 1
  b: &b
    type: bool
    default: false
  c: *b
  d:
    <<: *b
    enabled: false
"#,
    r#"
flags:
  text:
    type: string
    description: |
      First line,
      second line.
    name: >
      folded
      into one
    default: "quoted: yes"
    variants:
      - {name: one, value: 'single ''quoted'''}
      - {name: two, value: plain text}
      - {name: three, value: "0x1F"}
  scalars:
    type: json
    default:
      nulls: [~, null, Null, NULL, ""]
      bools: [true, True, TRUE, false, yes, no, on, off, y, n]
      ints: [0, -0, 12, +12, -12, 0x1F, 0o17, 0b101, 012, -0x10, 18446744073709551615]
      floats: [1.5, -2.5e3, .inf, -.inf, .nan, 1e400, +.5]
      tagged: [!!str 123, !!int "42", !!float "1.5", !!bool "true", !!null "~"]
      keys: {1: a, true: b, ~: c, 0x10: d}
      empty: {}
      nested: [[1, [2, [3]]], {a: {b: {c: d}}}]
"#,
    r#"
flags:
  bad:
    type: bool
    rules:
      - clauses:
          - {attribute: plan, operator: eq, values: [pro], extra: 1}
  good: {type: bool, default: false}
  t: {type: bool, default: "yes"}
  u: {unknown: true}
  n:
segments:
  beta:
    included: [u1, u2]
    rules: [{clauses: 4}]
  gamma:
    included:
      - a
      - "b"
  broken: [1, 2]
"#,
    "flags:\n  r:\n    type: string\n    variants: [{value: a}, {value: 3}]\n    rules:\n      - clauses: [{attribute: email, operator: matches, values: ['[']}]\n        variation: 1\n",
    "{\"flags\": {\"j\": {\"type\": \"bool\", \"default\": true}}, \"segments\": {\"s\": {\"included\": [\"x\"]}}}",
    "flags: &all\n  a: {type: bool}\nsegments: *all\n",
];

/// The document as the whole-tree reader saw it: one tree, written as JSON.
fn as_json(yaml: &str) -> String {
    let tree: serde_json::Value = serde_yaml_ng::from_str(yaml).unwrap();
    serde_json::to_string(&tree).unwrap()
}

#[test]
fn yaml_reads_as_the_whole_tree_read_as_json() {
    for text in DOCUMENTS {
        let yaml = parse_document(text, Format::Yaml).unwrap_or_else(|e| panic!("{text}: {e}"));
        let json = parse_document(&as_json(text), Format::Json).unwrap();
        assert_eq!(yaml.document, json.document, "{text}");
        assert_eq!(yaml.diagnostics, json.diagnostics, "{text}");
    }
}

#[test]
fn repeated_keys_keep_the_last_value() {
    let text = DOCUMENTS[7];
    let parsed = parse_document(text, Format::Yaml).unwrap();
    assert!(
        parsed.diagnostics.iter().any(|d| d.flag == "a"),
        "{:?}",
        parsed.diagnostics
    );
    assert!(!parsed.document.flags.contains_key("a"));
    assert_eq!(
        parsed.document.flags["b"].default,
        Some(serde_json::json!(false))
    );
}

#[test]
fn located_diagnostics_point_into_the_yaml_text() {
    let parsed = parse_document(DOCUMENTS[10], Format::Yaml).unwrap();
    let snapshot = parsed.compile(Some("f.yaml"));
    let extra = snapshot
        .diagnostics()
        .iter()
        .find(|d| d.flag == "bad")
        .unwrap();
    assert_eq!((extra.line, extra.column), (Some(7), Some(67)), "{extra}");
    let unknown = snapshot
        .diagnostics()
        .iter()
        .find(|d| d.flag == "u")
        .unwrap();
    assert_eq!(unknown.line, Some(10), "{unknown}");
}

#[test]
fn text_that_is_not_a_document_is_refused_where_it_breaks() {
    let e = parse_document("flags:\n  a:\n    default: a: b\n", Format::Yaml).unwrap_err();
    assert_eq!((e.line, e.column), (3, 15), "{e}");
    assert!(
        e.message.starts_with("mapping values are not allowed"),
        "{e}"
    );
    let e = parse_document("- 1\n- 2\n", Format::Yaml).unwrap_err();
    assert!(e.message.contains("must be a mapping"), "{e}");
    let e = parse_document("flags: {}\n---\nflags: {}\n", Format::Yaml).unwrap_err();
    assert!(e.message.contains("more than one document"), "{e}");
    let e = parse_document("flags:\n  a: !custom {type: bool}\n", Format::Yaml).unwrap_err();
    assert_eq!(e.line, 2, "{e}");
    let e = parse_document("flags:\n  a: *nowhere\n", Format::Yaml).unwrap_err();
    assert_eq!(e.line, 2, "{e}");
    let deep = format!(
        "flags:\n  a:\n    default: {}{}\n",
        "[".repeat(200),
        "]".repeat(200)
    );
    let e = parse_document(&deep, Format::Yaml).unwrap_err();
    assert!(e.message.contains("recursion limit"), "{e}");
}
