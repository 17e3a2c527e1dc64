//! What the fuzz targets share: the contexts flags are evaluated for, and the invariants every
//! evaluation of a compiled snapshot must keep. A broken invariant panics, which AFL records as
//! a crash (each target's `fuzz!` turns a panic into an abort).

use feature_core::{Context, ReasonKind, Snapshot};
use serde_json::Value;

/// Contexts that reach most kinds of rules: a bare user, a user with the built-in and custom
/// attributes the example documents and the LaunchDarkly contract data test, another kind, a
/// multi-kind context and an anonymous one.
pub fn contexts() -> Vec<Context> {
    let mut out = vec![
        Context::new("user-key"),
        Context::new("user-123")
            .with_name("Ann")
            .with_email("ann@example.com")
            .with_country("NZ")
            .with_ip("10.0.0.1")
            .with_group("beta")
            .with_attribute("plan", "enterprise")
            .with_attribute("age", 42)
            .with_attribute("version", "2.1.0")
            .with_attribute("created", 1_700_000_000_000_i64),
        Context::new("").with_anonymous(true),
    ];
    if let Ok(org) = Context::of_kind("org", "org-key") {
        out.push(org.clone());
        if let Ok(multi) = Context::multi([Context::new("user-key"), org]) {
            out.push(multi);
        }
    }
    out
}

/// Contexts named in the input itself (a top-level `contexts` array of context JSON, which
/// the parsers ignore), so the fuzzer varies who is evaluated as well as the flags.
pub fn contexts_in(value: &Value) -> Vec<Context> {
    value
        .get("contexts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| Context::from_json(c).ok())
        .collect()
}

/// Evaluates every flag of `snapshot` for every context and checks what callers rely on:
/// evaluation never fails loudly (errors are reasons, the caller's default is served), a
/// value served is of the flag's type and is the variation the detail names, an unknown key
/// is `FLAG_NOT_FOUND`, and the same context always gets the same answer.
pub fn check_snapshot(snapshot: &Snapshot, contexts: &[Context]) {
    let missing = snapshot.evaluate("\u{0}no-such-flag", &contexts[0]);
    if snapshot.flag("\u{0}no-such-flag").is_none() {
        assert_eq!(missing.reason_kind(), ReasonKind::Error);
        assert!(missing.value().is_none());
    }
    for flag in snapshot.flags() {
        for ctx in contexts {
            let detail = snapshot.evaluate(flag.key(), ctx);
            if flag.is_malformed() {
                assert_eq!(
                    detail.error_kind(),
                    Some(feature_core::ErrorKind::MalformedFlag),
                    "flag {:?} failed to compile but evaluated",
                    flag.key()
                );
            }
            let again = snapshot.evaluate(flag.key(), ctx);
            assert_eq!(detail.value(), again.value(), "flag {:?}", flag.key());
            assert_eq!(detail.reason(), again.reason(), "flag {:?}", flag.key());
            let Some(value) = detail.value() else {
                continue;
            };
            assert!(
                detail.error_kind().is_none(),
                "flag {:?}: a value with an error reason",
                flag.key()
            );
            assert!(
                flag.flag_type().admits(value),
                "flag {:?} of type {:?} served {value}",
                flag.key(),
                flag.flag_type()
            );
            if let Some(i) = detail.variation_index() {
                if detail.reason_kind() != ReasonKind::Override {
                    assert_eq!(
                        flag.variations().get(i),
                        Some(value),
                        "flag {:?}: variation {i} is not the value served",
                        flag.key()
                    );
                }
            }
        }
    }
}
