//! Checks across flags that the compiler does not make, because they concern references
//! between flags and segments rather than one flag alone:
//!
//! - **prerequisite cycles** (`a` requires `b`, `b` requires `a`): evaluating any flag of the
//!   cycle gives `ERROR`/`MALFORMED_FLAG`. An error when every flag of the cycle is enabled
//!   (the only case in which the cycle is reached); a warning otherwise, since turning the
//!   other flags on would break them.
//! - **a prerequisite naming a flag that does not exist**: the prerequisite never passes
//!   (warning);
//! - **`segmentMatch` naming a segment that does not exist**: the clause never matches that
//!   segment (warning).

use feature_core::model::{Clause, FlagDocument, Operator};
use feature_core::{Diagnostic, Locator, PathSeg, Severity, Snapshot};
use std::collections::{BTreeSet, HashMap, VecDeque};

/// Lints the document a snapshot was compiled from; diagnostics are located with `locator`
/// and name `file`.
pub fn check(snapshot: &Snapshot, locator: &Locator, file: Option<&str>) -> Vec<Diagnostic> {
    let doc: &FlagDocument = snapshot.document();
    let mut out = Vec::new();
    let mut push = |flag: String, path: Vec<PathSeg>, severity: Severity, message: String| {
        let at = locator.locate(&path);
        out.push(Diagnostic {
            file: file.map(str::to_owned),
            line: at.map(|a| a.0),
            column: at.map(|a| a.1),
            flag,
            path,
            severity,
            message,
        });
    };
    // Segments that could not be read were already reported by the parser.
    let unreadable_segments: BTreeSet<&str> = snapshot
        .diagnostics()
        .iter()
        .filter_map(|d| match d.path.as_slice() {
            [PathSeg::Key(s), PathSeg::Key(k), ..] if s == "segments" => Some(k.as_str()),
            _ => None,
        })
        .collect();

    for (key, flag) in &doc.flags {
        let base = || vec![PathSeg::key("flags"), PathSeg::key(key)];
        let mut cycle_reported = false;
        for (i, p) in flag.prerequisites.iter().enumerate() {
            let mut path = base();
            path.extend([
                PathSeg::key("prerequisites"),
                PathSeg::Index(i),
                PathSeg::key("key"),
            ]);
            if snapshot.flag(&p.key).is_none() {
                push(
                    key.clone(),
                    path,
                    Severity::Warning,
                    format!(
                        "prerequisite flag `{}` does not exist: the prerequisite never passes",
                        p.key
                    ),
                );
                continue;
            }
            if cycle_reported {
                continue;
            }
            if let Some(cycle) = cycle_through(doc, key, &p.key) {
                cycle_reported = true;
                let shown = cycle.join(" -> ");
                match cycle.iter().find(|k| doc.flags.get(k.as_str()).is_some_and(|f| !f.enabled)) {
                    None => push(
                        key.clone(),
                        path,
                        Severity::Error,
                        format!("prerequisite cycle {shown}: the flag evaluates to ERROR/MALFORMED_FLAG"),
                    ),
                    Some(off) => push(
                        key.clone(),
                        path,
                        Severity::Warning,
                        format!("prerequisite cycle {shown} (harmless only while `{off}` is off)"),
                    ),
                }
            }
        }
        for (r, rule) in flag.rules.iter().enumerate() {
            let mut path = base();
            path.extend([PathSeg::key("rules"), PathSeg::Index(r)]);
            segment_refs(doc, &unreadable_segments, &rule.clauses, &path, |p, m| {
                push(key.clone(), p, Severity::Warning, m)
            });
        }
    }
    for (key, segment) in &doc.segments {
        for (r, rule) in segment.rules.iter().enumerate() {
            let path = vec![
                PathSeg::key("segments"),
                PathSeg::key(key),
                PathSeg::key("rules"),
                PathSeg::Index(r),
            ];
            segment_refs(doc, &unreadable_segments, &rule.clauses, &path, |p, m| {
                push(format!("segment {key}"), p, Severity::Warning, m)
            });
        }
    }
    out
}

/// Reports `segmentMatch` values that name no segment.
fn segment_refs(
    doc: &FlagDocument,
    unreadable: &BTreeSet<&str>,
    clauses: &[Clause],
    at: &[PathSeg],
    mut report: impl FnMut(Vec<PathSeg>, String),
) {
    for (c, clause) in clauses.iter().enumerate() {
        if clause.operator != Operator::SegmentMatch {
            continue;
        }
        for (v, value) in clause.values.iter().enumerate() {
            let mut path = at.to_vec();
            path.extend([
                PathSeg::key("clauses"),
                PathSeg::Index(c),
                PathSeg::key("values"),
                PathSeg::Index(v),
            ]);
            match value.as_str() {
                Some(s) if doc.segments.contains_key(s) || unreadable.contains(s) => {}
                Some(s) => report(
                    path,
                    format!("segment `{s}` does not exist: it matches nobody"),
                ),
                None => report(
                    path,
                    format!("segment reference {value} is not a string: it matches nobody"),
                ),
            }
        }
    }
}

/// The shortest prerequisite path `from -> first -> ... -> from`, if `first` leads back.
fn cycle_through(doc: &FlagDocument, from: &str, first: &str) -> Option<Vec<String>> {
    if first == from {
        return Some(vec![from.to_owned(), from.to_owned()]);
    }
    let mut parent: HashMap<&str, &str> = HashMap::new();
    let mut queue = VecDeque::from([first]);
    parent.insert(first, "");
    while let Some(k) = queue.pop_front() {
        let Some(f) = doc.flags.get(k) else { continue };
        for p in &f.prerequisites {
            let next = p.key.as_str();
            if next == from {
                let mut chain = vec![k];
                let mut at = k;
                while let Some(&up) = parent.get(at).filter(|u| !u.is_empty()) {
                    chain.push(up);
                    at = up;
                }
                chain.reverse();
                let mut cycle = vec![from.to_owned()];
                cycle.extend(chain.into_iter().map(str::to_owned));
                cycle.push(from.to_owned());
                return Some(cycle);
            }
            if !parent.contains_key(next) && doc.flags.contains_key(next) {
                parent.insert(next, k);
                queue.push_back(next);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use feature_core::{parse_document, Format};

    fn lint(text: &str) -> Vec<String> {
        let parsed = parse_document(text, Format::Yaml).unwrap();
        let locator = parsed.locator.clone();
        let snap = parsed.compile(None);
        check(&snap, &locator, None)
            .iter()
            .map(|d| crate::load::format_diagnostic(d, false))
            .collect()
    }

    #[test]
    fn finds_cycles() {
        let text = "flags:\n  a:\n    prerequisites: [{key: b, variation: 1}]\n  b:\n    prerequisites: [{key: c, variation: 1}]\n  c:\n    prerequisites: [{key: a, variation: 1}]\n";
        let got = lint(text);
        assert_eq!(
            got,
            [
                "3:27: a: prerequisite cycle a -> b -> c -> a: the flag evaluates to ERROR/MALFORMED_FLAG",
                "5:27: b: prerequisite cycle b -> c -> a -> b: the flag evaluates to ERROR/MALFORMED_FLAG",
                "7:27: c: prerequisite cycle c -> a -> b -> c: the flag evaluates to ERROR/MALFORMED_FLAG",
            ]
        );
    }

    #[test]
    fn self_cycle_and_off_flags() {
        let got =
            lint("flags:\n  a:\n    enabled: false\n    prerequisites: [{key: a, variation: 1}]\n");
        assert_eq!(got.len(), 1);
        assert!(got[0]
            .contains("a: warning: prerequisite cycle a -> a (harmless only while `a` is off)"));
    }

    #[test]
    fn missing_references() {
        let text = "flags:\n  a:\n    prerequisites: [{key: nope, variation: 1}]\n    rules:\n      - clauses: [{operator: segmentMatch, values: [ghost]}]\n        variation: 1\n";
        let got = lint(text);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].contains("a: warning: prerequisite flag `nope` does not exist"));
        assert!(got[1].starts_with("5:") && got[1].contains("segment `ghost` does not exist"));
    }
}
