//! Segment keys from key files (`includedFile`, `excludedFile`): the keys a file holds are
//! members (or excluded), a file that cannot be used is an error located on its field and its
//! segment matches no one, paths outside the flag file's directory are refused before anything
//! is read, and a document compiled without reading its files does not match silently.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature_core::key_file::{parse_keys, KeyFileError, MAX_KEYS};
use feature_core::{parse_document, Context, Format, Severity, Snapshot};
use serde_json::json;
use std::path::Path;

const FLAGS: &str = "flags:
  beta-only:
    type: bool
    default: false
    rules:
      - clauses: [{attribute: key, operator: segmentMatch, values: [beta]}]
        variation: 1
    fallthrough: {variation: 0}
segments:
  beta:
    included: [inline-user]
    includedFile: keys/beta.txt
    excludedFile: keys/blocked.txt
    rules:
      - clauses: [{attribute: plan, operator: eq, values: [pro]}]
";

fn on(s: &Snapshot, ctx: &Context) -> bool {
    s.evaluate("beta-only", ctx).value() == Some(&json!(true))
}

fn load(text: &str, files: &[(&str, Result<&str, ()>)]) -> (Snapshot, Vec<String>) {
    let mut parsed = parse_document(text, Format::Yaml).unwrap();
    let mut asked = Vec::new();
    parsed.resolve_key_files(|path: &Path, written: &str| {
        asked.push(written.to_owned());
        assert_eq!(path, Path::new(written));
        match files.iter().find(|(name, _)| *name == written) {
            Some((_, Ok(text))) => Ok((*text).to_owned()),
            _ => Err(KeyFileError::Io {
                path: written.to_owned(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            }),
        }
    });
    (parsed.compile(Some("flags.yaml")), asked)
}

#[test]
fn keys_of_the_files_join_the_segment() {
    let (s, asked) = load(
        FLAGS,
        &[
            ("keys/beta.txt", Ok("# beta testers\r\nu1\r\n\r\nu2\n  \n")),
            ("keys/blocked.txt", Ok("blocked-one\n")),
        ],
    );
    assert_eq!(asked, ["keys/beta.txt", "keys/blocked.txt"]);
    assert!(s.diagnostics().is_empty(), "{:?}", s.diagnostics());
    assert!(on(&s, &Context::new("u1")));
    assert!(on(&s, &Context::new("u2")));
    assert!(on(&s, &Context::new("inline-user")), "inline keys stay");
    let pro = |key: &str| Context::new(key).with_attribute("plan", "pro");
    assert!(!on(&s, &pro("blocked-one")), "excluded by its file");
    assert!(
        !on(&s, &Context::new("# beta testers")),
        "comments are not keys"
    );
    assert!(!on(&s, &Context::new("")), "blank lines are not keys");
    assert!(
        on(&s, &Context::new("x").with_attribute("plan", "pro")),
        "rules stay"
    );
    // The resolved document holds the keys, not the file names (what stores receive).
    let beta = &s.document().segments["beta"];
    assert_eq!(beta.included, ["inline-user", "u1", "u2"]);
    assert_eq!(beta.excluded, ["blocked-one"]);
    assert_eq!((&beta.included_file, &beta.excluded_file), (&None, &None));
    let written = serde_json::to_value(beta).unwrap();
    assert!(written.get("includedFile").is_none(), "{written}");
}

#[test]
fn a_file_that_cannot_be_read_is_located_and_its_segment_matches_no_one() {
    let (s, _) = load(FLAGS, &[("keys/blocked.txt", Ok("x\n"))]);
    let d = s
        .diagnostics()
        .iter()
        .find(|d| d.severity == Severity::Error)
        .expect("an error");
    assert_eq!(d.flag, "segment beta");
    assert_eq!((d.line, d.column), (Some(12), Some(19)), "{d}");
    assert_eq!(d.file.as_deref(), Some("flags.yaml"));
    assert!(
        d.message.contains("keys/beta.txt") && d.message.contains("matches no one"),
        "{d}"
    );
    assert!(
        !on(&s, &Context::new("inline-user")),
        "not even inline keys"
    );
    assert!(
        !on(&s, &Context::new("x").with_attribute("plan", "pro")),
        "nor rules"
    );
}

#[test]
fn paths_outside_the_directory_are_refused_without_being_read() {
    for path in ["/etc/passwd", "../secrets.txt", "keys/../../x.txt"] {
        let text = FLAGS.replace("keys/beta.txt", path);
        let (s, asked) = load(&text, &[(path, Ok("u1\n")), ("keys/blocked.txt", Ok(""))]);
        assert_eq!(asked, ["keys/blocked.txt"], "{path} was read");
        let d = &s.diagnostics()[0];
        assert_eq!((d.severity, d.line), (Severity::Error, Some(12)), "{d}");
        assert!(
            d.message.contains("relative to the flag file's directory"),
            "{d}"
        );
        assert!(!on(&s, &Context::new("u1")));
    }
}

#[test]
fn a_document_compiled_without_its_files_does_not_match() {
    let s = parse_document(FLAGS, Format::Yaml)
        .unwrap()
        .compile(Some("flags.yaml"));
    let d = &s.diagnostics()[0];
    assert_eq!((d.severity, d.line), (Severity::Error, Some(12)), "{d}");
    assert!(d.message.contains("was not read"), "{d}");
    assert!(!on(&s, &Context::new("inline-user")));
    assert!(!on(&s, &Context::new("x").with_attribute("plan", "pro")));
}

#[test]
fn more_keys_than_the_limit_are_refused() {
    let text = "k\n".repeat(MAX_KEYS + 1);
    assert!(matches!(
        parse_keys("big.txt", &text),
        Err(KeyFileError::TooManyKeys { .. })
    ));
    assert_eq!(parse_keys("ok.txt", &text[2..]).unwrap().len(), MAX_KEYS);
}

#[test]
fn json_documents_name_key_files_too() {
    let text = r#"{"segments": {"s": {"includedFile": "a.txt"}}, "flags": {}}"#;
    let mut parsed = parse_document(text, Format::Json).unwrap();
    assert!(parsed.has_key_files());
    parsed.resolve_key_files(|_, _| Ok("a\nb\n".to_owned()));
    assert_eq!(parsed.document.segments["s"].included, ["a", "b"]);
    assert!(!parsed.has_key_files());
}
