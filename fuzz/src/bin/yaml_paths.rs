//! YAML flag documents: a text read without error reads the same (document and diagnostics)
//! with a `%YAML 1.2` directive put before it. Documents in the plain subset of YAML are read by
//! a fast reader, and a directive is outside that subset, so this compares the fast reader with
//! the reader of the YAML parser's events; it also holds for texts both readers leave to the
//! event reader.

use feature_core::{parse_document, Format};

/// The text behind a version directive, `None` for texts a directive would change: one with a
/// byte order mark or a NUL (the parser takes a NUL for the end of a line or of the stream, so
/// `---` before one may start a document), or whose first line with content starts with a
/// directive or `...`. Neither character is in the fast reader's subset.
fn with_directive(text: &str) -> Option<String> {
    if text.contains(['\u{feff}', '\0']) {
        return None;
    }
    // `\r` ends a line too.
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

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let Ok(plain) = parse_document(text, Format::Yaml) else {
            return;
        };
        let Some(forced) = with_directive(text) else {
            return;
        };
        let behind = match parse_document(&forced, Format::Yaml) {
            Ok(p) => p,
            Err(e) => panic!("{text:?} is read, but not behind a directive: {e}"),
        };
        assert_eq!(plain.diagnostics, behind.diagnostics, "{text:?}");
        // Debug text: NaN compares equal to itself there.
        assert_eq!(
            format!("{:?}", plain.document),
            format!("{:?}", behind.document),
            "{text:?}"
        );
    });
}
