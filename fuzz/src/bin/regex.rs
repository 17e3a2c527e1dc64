//! `matches` clauses: a flag whose rule matches a context attribute against a pattern serves
//! the rule exactly when the `regex` crate finds the pattern in the attribute. The input is the
//! pattern, a line break, then the attribute's value. The engine answers simple patterns with
//! its own matcher (and their literal end with a direct comparison), the others with the
//! `regex` crate: both must agree with it.

use feature_core::model::{Clause, Flag, FlagDocument, FlagType, Operator, Rule, Serve};
use feature_core::{compile, Context};
use serde_json::{json, Value};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let Some((pattern, haystack)) = text.split_once('\n') else {
            return;
        };
        let Ok(expected) = regex::Regex::new(pattern).map(|r| r.is_match(haystack)) else {
            return;
        };
        let mut flag = Flag::new("f");
        flag.flag_type = Some(FlagType::Bool);
        flag.rules.push(Rule {
            clauses: vec![Clause::new(
                "email",
                Operator::Matches,
                vec![Value::String(pattern.to_owned())],
            )],
            variation: Some(1),
            ..Rule::default()
        });
        flag.fallthrough = Some(Serve {
            variation: Some(0),
            rollout: None,
        });
        let mut doc = FlagDocument::default();
        doc.flags.insert("f".to_owned(), flag.into());
        let snapshot = compile(doc);
        // A pattern the engine refuses (a size limit) is reported, and is not compared.
        if !snapshot.diagnostics().is_empty() {
            return;
        }
        let ctx = Context::new("k").with_attribute("email", haystack);
        let served = snapshot.evaluate("f", &ctx);
        assert_eq!(
            served.value(),
            Some(&json!(expected)),
            "{pattern:?} on {haystack:?}: the regex crate says {expected}"
        );
    });
}
