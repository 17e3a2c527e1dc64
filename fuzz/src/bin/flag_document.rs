//! Flag documents: parse (YAML, or JSON when the text starts with `{`), compile, evaluate every
//! flag for several contexts, and check the evaluation invariants (see `check_snapshot`).

use feature_core::{parse_document, Format};
use feature_fuzz::{check_snapshot, contexts};

fn main() {
    let contexts = contexts();
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let format = if text.trim_start().starts_with('{') {
            Format::Json
        } else {
            Format::Yaml
        };
        let Ok(parsed) = parse_document(text, format) else {
            return;
        };
        let snapshot = parsed.compile(Some("fuzz.yaml"));
        // Every diagnostic is located in the text it came from.
        for d in snapshot.diagnostics() {
            let _ = d.to_string();
        }
        check_snapshot(&snapshot, &contexts);
    });
}
