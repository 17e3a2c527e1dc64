//! `featurectl validate`: problems located by file, line and column; exit statuses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

mod common;

use common::{featurectl, write};

const VALID: &str = "\
flags:
  checkout:
    variants:
      - {name: off, value: false}
      - {name: on, value: true}
    rules:
      - id: pro
        clauses:
          - {attribute: plan, operator: eq, values: [pro]}
        variation: 1
    fallthrough: {variation: 0}
";

#[test]
fn valid_file_exits_0_and_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "flags.yaml", VALID);
    let r = featurectl(dir.path(), &["validate", "flags.yaml"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
    let r = featurectl(dir.path(), &["validate", "--verbose", "flags.yaml"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
    assert_eq!(r.stderr, "ok: flags.yaml (1 flags)\n");
}

#[test]
fn broken_yaml_reports_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "broken.yaml",
        "flags:\n  a:\n    default: a: b\n",
    );
    let r = featurectl(dir.path(), &["validate", "broken.yaml"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.lines().len(), 1, "{r:?}");
    assert!(
        r.stdout
            .starts_with("broken.yaml:3:15: mapping values are not allowed"),
        "{r:?}"
    );
}

#[test]
fn broken_json_reports_its_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "flags.json",
        "{\n  \"flags\": {\n    \"a\": {\"enabled\": true,}\n  }\n}\n",
    );
    let r = featurectl(dir.path(), &["validate", "flags.json"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.starts_with("flags.json:3:"), "{r:?}");
}

#[test]
fn invalid_regex_points_at_the_regex_value() {
    let dir = tempfile::tempdir().unwrap();
    let text = "\
flags:
  ok-flag:
    default: true
  emails:
    rules:
      - clauses:
          - attribute: email
            operator: matches
            values:
              - \"^[a-z]+@example\\\\.com$\"
              - \"(unclosed\"
        variation: 1
";
    write(dir.path(), "flags.yaml", text);
    let r = featurectl(dir.path(), &["validate", "flags.yaml"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.lines().len(), 1, "{r:?}");
    assert!(
        r.stdout
            .starts_with("flags.yaml:11:17: emails: invalid regular expression \"(unclosed\": "),
        "{r:?}"
    );
}

#[test]
fn invalid_regex_in_a_json_file_is_located_too() {
    let dir = tempfile::tempdir().unwrap();
    let text = "{\n  \"flags\": {\n    \"a\": {\n      \"rules\": [{\"clauses\": [{\"attribute\": \"x\", \"operator\": \"matches\",\n        \"values\": [\"[z\"]}], \"variation\": 1}]\n    }\n  }\n}\n";
    write(dir.path(), "flags.json", text);
    let r = featurectl(dir.path(), &["validate", "flags.json"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout
            .starts_with("flags.json:5:20: a: invalid regular expression \"[z\""),
        "{r:?}"
    );
}

#[test]
fn unknown_operator_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let text = "\
flags:
  a:
    rules:
      - clauses:
          - {attribute: plan, operator: sortOf, values: [pro]}
        variation: 1
";
    write(dir.path(), "flags.yaml", text);
    let r = featurectl(dir.path(), &["validate", "flags.yaml"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.lines(),
        ["flags.yaml:5:41: a: warning: unknown operator \"sortOf\": the clause never matches"]
    );
    let r = featurectl(dir.path(), &["validate", "--allow-warnings", "flags.yaml"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.lines().len(), 1, "warnings are still printed: {r:?}");
}

#[test]
fn unknown_field_is_an_error_of_that_flag_only() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "flags.yaml",
        "flags:\n  good:\n    default: true\n  typo:\n    rulez: []\n",
    );
    let r = featurectl(dir.path(), &["validate", "flags.yaml"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.lines().len(), 1, "{r:?}");
    assert!(
        r.stdout
            .starts_with("flags.yaml:5:5: typo: unknown field `rulez`"),
        "{r:?}"
    );
}

#[test]
fn cyclic_prerequisites_are_reported_and_evaluate_to_malformed_flag() {
    let dir = tempfile::tempdir().unwrap();
    let text = "\
flags:
  a:
    prerequisites:
      - {key: b, variation: 1}
  b:
    prerequisites:
      - {key: a, variation: 1}
  c:
    default: true
";
    write(dir.path(), "flags.yaml", text);
    let r = featurectl(dir.path(), &["validate", "flags.yaml"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.lines(),
        [
            "flags.yaml:4:15: a: prerequisite cycle a -> b -> a: the flag evaluates to ERROR/MALFORMED_FLAG",
            "flags.yaml:7:15: b: prerequisite cycle b -> a -> b: the flag evaluates to ERROR/MALFORMED_FLAG",
        ]
    );
    let r = featurectl(
        dir.path(),
        &[
            "eval",
            "--file",
            "flags.yaml",
            "--context",
            r#"{"key":"u"}"#,
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.lines(),
        [
            r#"{"key":"a","value":null,"variationIndex":null,"reason":"ERROR","ruleId":null,"inExperiment":false,"prerequisiteFailed":null,"errorKind":"MALFORMED_FLAG"}"#,
            r#"{"key":"b","value":null,"variationIndex":null,"reason":"ERROR","ruleId":null,"inExperiment":false,"prerequisiteFailed":null,"errorKind":"MALFORMED_FLAG"}"#,
            r#"{"key":"c","value":true,"variationIndex":1,"reason":"FALLTHROUGH","ruleId":null,"inExperiment":false,"prerequisiteFailed":null,"errorKind":null}"#,
        ]
    );
    assert!(r.stderr.contains("a: prerequisite cycle"), "{r:?}");
}

#[test]
fn exit_statuses() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "good.yaml", VALID);
    write(dir.path(), "bad.yaml", "flags:\n  a:\n    enabled: maybe\n");
    let r = featurectl(dir.path(), &["validate", "good.yaml", "good.yaml"]);
    assert_eq!(r.code, 0, "{r:?}");
    // One bad file makes the run fail; every file is still checked.
    let r = featurectl(
        dir.path(),
        &["validate", "bad.yaml", "good.yaml", "bad.yaml"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.lines().len(), 2, "{r:?}");
    assert!(
        r.stdout.starts_with("bad.yaml:3:14: a: invalid type"),
        "{r:?}"
    );
    // A file that cannot be read: status 2, on stderr.
    let r = featurectl(dir.path(), &["validate", "good.yaml", "missing.yaml"]);
    assert_eq!((r.code, r.stdout.as_str()), (2, ""), "{r:?}");
    assert!(r.stderr.contains("missing.yaml"), "{r:?}");
    // Usage errors: status 2.
    assert_eq!(featurectl(dir.path(), &["validate"]).code, 2);
    assert_eq!(featurectl(dir.path(), &["frobnicate"]).code, 2);
    let help = featurectl(dir.path(), &["validate", "--help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("--allow-warnings"));
}
