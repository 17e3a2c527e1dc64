//! The flag format's semantics, as documented in the README's format reference.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature_core::{
    compile, parse_document, Context, ErrorKind, Format, ReasonKind, Severity, Snapshot,
};
use serde_json::{json, Value};

fn load(yaml: &str) -> Snapshot {
    parse_document(yaml, Format::Yaml)
        .expect("parses")
        .compile(Some("flags.yaml"))
}

fn value(s: &Snapshot, key: &str, ctx: &Context) -> Option<Value> {
    s.evaluate(key, ctx).value().cloned()
}

fn clause_flag(clause: &str) -> Snapshot {
    load(&format!(
        "flags:\n  f:\n    type: bool\n    default: false\n    rules:\n      - clauses: [{clause}]\n        variation: 1\n"
    ))
}

fn matches(clause: &str, ctx: &Context) -> bool {
    let s = clause_flag(clause);
    assert!(!s.has_errors(), "{:?}", s.diagnostics());
    s.evaluate("f", ctx).reason_kind() == ReasonKind::RuleMatch
}

#[test]
fn equality_operators_and_their_negations() {
    let pro = Context::new("u").with_attribute("plan", "pro");
    assert!(matches(
        "{attribute: plan, operator: eq, values: [pro, team]}",
        &pro
    ));
    assert!(!matches(
        "{attribute: plan, operator: neq, values: [pro, team]}",
        &pro
    ));
    assert!(matches(
        "{attribute: plan, operator: neq, values: [free]}",
        &pro
    ));
    assert!(matches(
        "{attribute: plan, operator: in, values: [pro]}",
        &pro
    ));
    assert!(!matches(
        "{attribute: plan, operator: notIn, values: [pro]}",
        &pro
    ));
    assert!(!matches(
        "{attribute: plan, operator: eq, values: [pro], negate: true}",
        &pro
    ));
    // A missing attribute never matches, negated or not.
    let none = Context::new("u");
    assert!(!matches(
        "{attribute: plan, operator: eq, values: [pro]}",
        &none
    ));
    assert!(!matches(
        "{attribute: plan, operator: neq, values: [pro]}",
        &none
    ));
    assert!(!matches(
        "{attribute: plan, operator: notIn, values: [pro]}",
        &none
    ));
    // Types are not conflated.
    let n = Context::new("u").with_attribute("n", 1);
    assert!(matches("{attribute: n, operator: eq, values: [1.0]}", &n));
    assert!(!matches(
        "{attribute: n, operator: eq, values: [\"1\"]}",
        &n
    ));
    assert!(!matches("{attribute: n, operator: eq, values: [true]}", &n));
}

#[test]
fn list_attributes_match_any_element() {
    let u = Context::new("u")
        .with_group("beta-testers")
        .with_group("staff");
    assert!(matches(
        "{attribute: groups, operator: contains, values: [beta-testers]}",
        &u
    ));
    assert!(matches(
        "{attribute: groups, operator: in, values: [staff]}",
        &u
    ));
    assert!(!matches(
        "{attribute: groups, operator: in, values: [admins]}",
        &u
    ));
    assert!(!matches(
        "{attribute: groups, operator: notIn, values: [staff]}",
        &u
    ));
    assert!(matches(
        "{attribute: groups, operator: startsWith, values: [beta]}",
        &u
    ));
}

#[test]
fn string_number_date_and_version_operators() {
    let u = Context::new("u")
        .with_email("jo@example.com")
        .with_attribute("age", 30)
        .with_attribute("signup", "2024-03-01T00:00:00Z")
        .with_attribute("app", "2.4.1");
    assert!(matches(
        "{attribute: email, operator: endsWith, values: [\"@example.com\"]}",
        &u
    ));
    assert!(matches(
        "{attribute: email, operator: startsWith, values: [jo]}",
        &u
    ));
    assert!(matches(
        "{attribute: email, operator: contains, values: [\"@\"]}",
        &u
    ));
    assert!(matches(
        "{attribute: email, operator: matches, values: [\"^[a-z]+@\"]}",
        &u
    ));
    assert!(matches("{attribute: age, operator: gt, values: [18]}", &u));
    assert!(matches("{attribute: age, operator: gte, values: [30]}", &u));
    assert!(!matches("{attribute: age, operator: lt, values: [30]}", &u));
    assert!(matches("{attribute: age, operator: lte, values: [30]}", &u));
    assert!(!matches(
        "{attribute: email, operator: gt, values: [1]}",
        &u
    ));
    assert!(matches(
        "{attribute: signup, operator: after, values: [\"2024-01-01T00:00:00Z\"]}",
        &u
    ));
    assert!(matches(
        "{attribute: signup, operator: before, values: [1893456000000]}",
        &u
    ));
    assert!(matches(
        "{attribute: app, operator: semver, values: [\">=2.4.0, <3\"]}",
        &u
    ));
    assert!(matches(
        "{attribute: app, operator: semver, values: [\"2.4.1\"]}",
        &u
    ));
    assert!(!matches(
        "{attribute: app, operator: semver, values: [\"2.4\"]}",
        &u
    ));
    assert!(matches(
        "{attribute: app, operator: semver, values: [\"^2\"]}",
        &u
    ));
    assert!(matches(
        "{attribute: app, operator: semVerGreaterThan, values: [\"2.4\"]}",
        &u
    ));
    assert!(matches(
        "{attribute: app, operator: semVerLessThan, values: [\"10.0.0\"]}",
        &u
    ));
}

#[test]
fn attribute_reference_paths() {
    let u = Context::new("u").with_attribute("address", json!({"city": "Paris", "a/b": 1}));
    assert!(matches(
        "{attribute: /address/city, operator: eq, values: [Paris]}",
        &u
    ));
    assert!(matches(
        "{attribute: /address/a~1b, operator: eq, values: [1]}",
        &u
    ));
    assert!(!matches(
        "{attribute: /address/zip, operator: eq, values: [Paris]}",
        &u
    ));
}

#[test]
fn context_kinds() {
    let s = load(
        "flags:\n  f:\n    default: false\n    targets:\n      - {variation: 1, contextKind: org, values: [acme]}\n    rules:\n      - clauses: [{attribute: tier, contextKind: org, operator: eq, values: [gold]}]\n        variation: 1\n",
    );
    let org = Context::of_kind("org", "acme").unwrap();
    assert_eq!(s.evaluate("f", &org).reason_kind(), ReasonKind::TargetMatch);
    let multi = Context::multi([
        Context::new("u1"),
        Context::of_kind("org", "other")
            .unwrap()
            .with_attribute("tier", "gold"),
    ])
    .unwrap();
    assert_eq!(s.evaluate("f", &multi).reason_kind(), ReasonKind::RuleMatch);
    assert_eq!(value(&s, "f", &Context::new("acme")), Some(json!(false)));
}

#[test]
fn off_default_and_fallthrough() {
    let s = load(
        "flags:\n  off-default:\n    type: string\n    enabled: false\n    default: b\n    variants: [{value: a}, {value: b}]\n  off-variation:\n    enabled: false\n    offVariation: 0\n    default: b\n    variants: [{value: a}, {value: b}]\n  fall:\n    default: z\n    fallthrough: {variation: 0}\n    variants: [{value: a}]\n  no-default:\n    variants: [{value: a}]\n",
    );
    let u = Context::new("u");
    let d = s.evaluate("off-default", &u);
    assert_eq!(
        (d.value().cloned(), d.variation_index(), d.reason_kind()),
        (Some(json!("b")), Some(1), ReasonKind::Off)
    );
    assert_eq!(value(&s, "off-variation", &u), Some(json!("a")));
    assert_eq!(value(&s, "fall", &u), Some(json!("a")));
    let d = s.evaluate("no-default", &u);
    assert_eq!(
        (d.value(), d.reason_kind()),
        (None, ReasonKind::Fallthrough)
    );
}

#[test]
fn rule_percentage_is_consistent_and_monotonic() {
    let pct = |p: u32| {
        load(&format!(
            "flags:\n  f:\n    default: false\n    rules:\n      - clauses: [{{attribute: plan, operator: eq, values: [pro]}}]\n        percentage: {p}\n        variation: 1\n"
        ))
    };
    let (s20, s50) = (pct(20), pct(50));
    let mut n20 = 0;
    for i in 0..20_000 {
        let u = Context::new(format!("u{i}")).with_attribute("plan", "pro");
        let a = s20.evaluate("f", &u).value() == Some(&json!(true));
        let b = s50.evaluate("f", &u).value() == Some(&json!(true));
        assert!(!a || b, "a user inside 20 % is inside 50 %");
        n20 += a as usize;
    }
    assert!((n20 as f64 / 20_000.0 - 0.2).abs() < 0.015);
    let free = Context::new("u1").with_attribute("plan", "free");
    assert_eq!(
        pct(100).evaluate("f", &free).reason_kind(),
        ReasonKind::Fallthrough
    );
}

#[test]
fn prerequisites_fail_and_cycles_are_errors() {
    let s = load(
        "flags:\n  base:\n    enabled: false\n  child:\n    default: false\n    prerequisites: [{key: base, variation: 1}]\n    rules: [{variation: 1}]\n  a:\n    prerequisites: [{key: b, variation: 1}]\n    default: true\n  b:\n    prerequisites: [{key: a, variation: 1}]\n    default: true\n  self:\n    prerequisites: [{key: self, variation: 1}]\n    default: true\n  missing:\n    prerequisites: [{key: nope, variation: 1}]\n    default: true\n",
    );
    let u = Context::new("u");
    let d = s.evaluate("child", &u);
    assert_eq!(d.reason_kind(), ReasonKind::PrerequisiteFailed);
    assert_eq!(d.prerequisite_key(), Some("base"));
    assert_eq!(d.value(), Some(&json!(false)));
    for k in ["a", "b", "self"] {
        assert_eq!(
            s.evaluate(k, &u).error_kind(),
            Some(ErrorKind::MalformedFlag),
            "{k}"
        );
    }
    assert_eq!(s.evaluate("missing", &u).prerequisite_key(), Some("nope"));
}

#[test]
fn problems_are_reported_with_their_location() {
    let text = "flags:\n  good:\n    default: true\n  bad-regex:\n    rules:\n      - clauses:\n          - attribute: email\n            operator: matches\n            values: [\"(open\"]\n        variation: 1\n  bad-op:\n    rules:\n      - clauses: [{attribute: a, operator: resembles, values: [x]}]\n        variation: 1\n  typo:\n    rulez: []\n  wrong-type:\n    type: int\n    variants: [{value: \"seven\"}]\n  bad-index:\n    rules: [{variation: 5}]\n";
    let s = parse_document(text, Format::Yaml)
        .unwrap()
        .compile(Some("f.yaml"));
    let lines: Vec<String> = s.diagnostics().iter().map(ToString::to_string).collect();
    let find = |flag: &str| {
        lines
            .iter()
            .find(|l| l.contains(&format!(" {flag}: ")))
            .unwrap_or_else(|| panic!("no diagnostic for {flag}: {lines:#?}"))
            .clone()
    };
    assert!(
        find("bad-regex").starts_with("f.yaml:9:22: bad-regex: invalid regular expression"),
        "{lines:#?}"
    );
    assert!(
        find("bad-op").contains("warning: unknown operator \"resembles\""),
        "{lines:#?}"
    );
    assert!(find("typo").contains("unknown field `rulez`"), "{lines:#?}");
    assert!(
        find("wrong-type").contains("not of the flag's type int"),
        "{lines:#?}"
    );
    assert!(
        find("bad-index").contains("variation 5 does not exist"),
        "{lines:#?}"
    );
    let u = Context::new("u");
    assert_eq!(value(&s, "good", &u), Some(json!(true)));
    for k in ["bad-regex", "typo", "wrong-type", "bad-index"] {
        assert_eq!(
            s.evaluate(k, &u).error_kind(),
            Some(ErrorKind::MalformedFlag),
            "{k}"
        );
    }
    // An unknown operator is a warning: the clause never matches, the flag works.
    assert_eq!(
        s.evaluate("bad-op", &u).reason_kind(),
        ReasonKind::Fallthrough
    );
    assert_eq!(
        s.diagnostics()
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count(),
        1
    );
}

#[test]
fn unreadable_documents_are_parse_errors_with_a_location() {
    let e = parse_document("flags:\n  a:\n    default: [1,\n", Format::Yaml).unwrap_err();
    assert!(e.line >= 3, "{e}");
    let e = parse_document("{\"flags\": {\"a\": }}", Format::Json).unwrap_err();
    assert_eq!((e.line, e.column), (1, 17));
    assert!(parse_document("- 1\n- 2\n", Format::Yaml).is_err());
}

#[test]
fn json_documents_are_located_too() {
    let text = "{\n  \"flags\": {\n    \"f\": {\n      \"rules\": [{\"clauses\": [{\"attribute\": \"a\", \"operator\": \"matches\", \"values\": [\"[\"]}], \"variation\": 1}]\n    }\n  }\n}\n";
    let s = parse_document(text, Format::Json).unwrap().compile(None);
    let d = &s.diagnostics()[0];
    assert_eq!(d.line, Some(4), "{d}");
}

#[test]
fn compiled_documents_round_trip_through_serde() {
    let s = load(include_str!(
        "../../feature/examples/flags/user-targeting.yaml"
    ));
    let yaml = serde_yaml_ng::to_string(&**s.document()).unwrap();
    let again = compile(parse_document(&yaml, Format::Yaml).unwrap().document);
    assert_eq!(again.document(), s.document());
}

#[test]
fn flags_with_more_than_65536_rules_are_malformed_not_misread() {
    let rule = json!({"clauses": [{"attribute": "key", "operator": "in", "values": ["u"]}], "variation": 1});
    let rules: Vec<Value> = std::iter::repeat_n(rule, 65_537).collect();
    let doc = json!({"flags": {"big": {"type": "bool", "default": false, "rules": rules}}});
    let s = parse_document(&doc.to_string(), Format::Json)
        .unwrap()
        .compile(None);
    let d = s.evaluate("big", &Context::new("u"));
    assert_eq!(d.error_kind(), Some(ErrorKind::MalformedFlag));
    assert!(
        s.diagnostics()
            .iter()
            .any(|d| d.to_string().contains("65537 rules: at most 65536")),
        "{:?}",
        s.diagnostics()
    );
    // At the limit, the last rule is still told apart.
    let mut rules: Vec<Value> = vec![
        json!({"clauses": [{"attribute": "key", "operator": "in", "values": ["nobody"]}], "variation": 0});
        65_535
    ];
    rules.push(json!({"id": "last", "clauses": [{"attribute": "key", "operator": "in", "values": ["u"]}], "variation": 1}));
    let doc = json!({"flags": {"big": {"type": "bool", "default": false, "rules": rules}}});
    let s = parse_document(&doc.to_string(), Format::Json)
        .unwrap()
        .compile(None);
    let d = s.evaluate("big", &Context::new("u"));
    assert_eq!(d.value(), Some(&json!(true)));
    assert_eq!((d.rule_index(), d.rule_id()), (Some(65_535), Some("last")));
}
