//! Anchors and aliases that would expand into more nodes than the text has bytes are refused
//! with a located error, while ordinary documents of any size, including legitimate aliases,
//! read as before.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature_core::{parse_document, Format};

/// `levels` anchors, each a list of `width` aliases of the previous one: the text grows
/// linearly with `levels`, the expansion as `width ^ levels`.
fn alias_bomb(levels: usize, width: usize) -> String {
    let mut text = String::from("flags: {}\nbomb:\n  l0: &l0 [\"xxxxxxxxxxxxxxxx\"]\n");
    for level in 1..=levels {
        let aliases = vec![format!("*l{}", level - 1); width].join(", ");
        text.push_str(&format!("  l{level}: &l{level} [{aliases}]\n"));
    }
    text
}

#[test]
fn alias_expansion_beyond_the_text_is_refused_with_a_location() {
    for (levels, width) in [(9, 9), (6, 20), (30, 2)] {
        let text = alias_bomb(levels, width);
        let err = parse_document(&text, Format::Yaml)
            .err()
            .unwrap_or_else(|| panic!("{levels}x{width}: the bomb was read"));
        assert!(err.line >= 3, "{levels}x{width}: not located: {err}");
        assert!(!err.message.is_empty());
        assert!(!err.message.contains('\n'), "one-line message: {err}");
    }
}

#[test]
fn legitimate_aliases_still_read() {
    let text = r#"
common: &common
  - {attribute: country, operator: in, values: [de, fr]}
flags:
  a:
    enabled: true
    rules:
      - clauses: *common
        variation: 1
  b:
    enabled: true
    rules:
      - clauses: *common
        variation: 1
"#;
    let parsed = parse_document(text, Format::Yaml).expect("document");
    assert_eq!(parsed.document.flags.len(), 2);
    let snapshot = parsed.compile(None);
    let de = feature_core::Context::new("u").with_attribute("country", "de");
    for key in ["a", "b"] {
        assert_eq!(
            snapshot.evaluate(key, &de).value(),
            Some(&serde_json::json!(true))
        );
    }
}

#[test]
fn large_documents_are_within_the_budget() {
    // Hundreds of thousands of nodes: the limit grows with the text.
    let mut text = String::from("flags:\n");
    for i in 0..15_000 {
        text.push_str(&format!(
            "  f{i}: {{enabled: true, rules: [{{clauses: [{{attribute: plan, operator: in, values: [a, b, c]}}], variation: 1}}]}}\n"
        ));
    }
    let parsed = parse_document(&text, Format::Yaml).expect("document");
    assert_eq!(parsed.document.flags.len(), 15_000);
}

#[test]
fn only_true_and_false_are_booleans() {
    let text = "flags:\n  f:\n    type: string\n    variants: [{name: off, value: 'x'}, {name: yes, value: 'y'}]\n    enabled: true\n";
    let parsed = parse_document(text, Format::Yaml).expect("document");
    let flag = &parsed.document.flags["f"];
    let names: Vec<_> = flag.variants.iter().map(|v| v.name.as_deref()).collect();
    assert_eq!(names, [Some("off"), Some("yes")]);
}
