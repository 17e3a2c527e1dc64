//! JSON documents are read flag by flag from their text (no tree of the whole document); what
//! comes out must be what reading the same text as YAML gives (JSON is YAML; the YAML reader is
//! itself checked against a whole-tree reader in `yaml_reader.rs`): the same flags and segments,
//! the same diagnostics, located at the same lines and columns.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature_core::{parse_document, Format};

const DOCUMENTS: &[&str] = &[
    r#"{"flags": {"a": {"type": "bool", "default": true}}}"#,
    r#"null"#,
    r#"{}"#,
    r#"{"flags": null, "segments": null}"#,
    r#"{"flags": [], "segments": 3}"#,
    r#"{"flags": {"a": null, "b": {"type": "bool"}}}"#,
    r#"{"version": 2, "other": 1, "flags": {"x": {"type": "int", "default": 3}}}"#,
    r#"{"flags": {"a": {"type": "bool", "default": true}}, "flags": {"b": {"type": "bool"}}}"#,
    "{\"flags\": {\n  \"bad\": {\"type\": \"bool\", \"rules\": [{\"clauses\": [{\"attribute\": \"plan\", \"operator\": \"eq\", \"values\": [\"pro\"], \"extra\": 1}]}]},\n  \"good\": {\"type\": \"bool\", \"default\": false}\n}}",
    "{\"flags\": {\"t\": {\"type\": \"bool\", \"default\": \"yes\"}, \"u\": {\"unknown\": true}}}",
    "{\"flags\": {\"s\": {\"type\": \"bool\", \"rules\": [{\"clauses\": [{\"attribute\": \"key\", \"operator\": \"segmentMatch\", \"values\": [\"beta\"]}], \"variation\": 1}]}},\n \"segments\": {\"beta\": {\"included\": [\"u1\", \"u2\"], \"rules\": [{\"clauses\": 4}]}, \"gamma\": {\"included\": [\"a\"]}}}",
    "{\"flags\": {\"r\": {\"type\": \"string\", \"variants\": [{\"value\": \"a\"}, {\"value\": 3}], \"rules\": [{\"clauses\": [{\"attribute\": \"email\", \"operator\": \"matches\", \"values\": [\"[\"]}], \"variation\": 1}]}}}",
];

#[test]
fn json_reads_as_the_same_text_read_as_yaml() {
    for text in DOCUMENTS {
        let json = parse_document(text, Format::Json).unwrap();
        let yaml = parse_document(text, Format::Yaml).unwrap();
        assert_eq!(json.document, yaml.document, "{text}");
        assert_eq!(json.diagnostics, yaml.diagnostics, "{text}");
        let (j, y) = (json.compile(Some("f")), yaml.compile(Some("f")));
        assert_eq!(j.diagnostics(), y.diagnostics(), "{text}");
    }
}

#[test]
fn json_that_is_not_a_document_is_refused_where_it_breaks() {
    let e = parse_document("[1, 2]", Format::Json).unwrap_err();
    assert_eq!((e.line, e.column), (1, 1));
    assert!(e.message.contains("must be a mapping"), "{}", e.message);
    let e = parse_document("{\"flags\": {\n  \"a\": {,}\n}}", Format::Json).unwrap_err();
    assert_eq!((e.line, e.column), (2, 9), "{e}");
    let e = parse_document("{\"flags\": {}} trailing", Format::Json).unwrap_err();
    assert_eq!(e.line, 1, "{e}");
}
