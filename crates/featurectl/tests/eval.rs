//! `featurectl eval`: exact output lines, contexts files, explanations, errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

mod common;

use common::{featurectl, write, Run};
use std::path::Path;

/// `hashKey` with salt `saltyA` puts `userKeyA` at bucket 0.42157587, `userKeyB` at 0.6708485
/// and `userKeyC` at 0.10343106 (LaunchDarkly's reference vectors).
const FLAGS: &str = "\
flags:
  banner:
    type: string
    variants:
      - {name: red, value: red}
      - {name: blue, value: blue}
    rules:
      - id: pro-plan
        clauses:
          - {attribute: plan, operator: eq, values: [pro]}
        variation: 1
    fallthrough: {variation: 0}
    offVariation: 0
  gated:
    type: string
    variants: [{value: closed}, {value: open}]
    prerequisites:
      - {key: banner, variation: 1}
    fallthrough: {variation: 1}
    offVariation: 0
  hashKey:
    salt: saltyA
    type: string
    variants: [{value: a}, {value: b}]
    rules:
      - id: lab
        clauses:
          - {attribute: plan, operator: eq, values: [lab]}
        rollout:
          kind: experiment
          variations:
            - {variation: 0, weight: 40000}
            - {variation: 1, weight: 60000}
    fallthrough:
      rollout:
        variations:
          - {variation: 0, weight: 40000}
          - {variation: 1, weight: 60000}
";

fn eval(dir: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["eval", "--file", "flags.yaml"];
    args.extend_from_slice(extra);
    featurectl(dir, &args)
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "flags.yaml", FLAGS);
    dir
}

/// Runs one `--json` evaluation and returns its single line.
fn json_line(dir: &Path, flag: &str, context: &str, extra: &[&str]) -> String {
    let mut args = vec!["--flag", flag, "--context", context, "--json"];
    args.extend_from_slice(extra);
    let r = eval(dir, &args);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.lines().len(), 1, "{r:?}");
    r.stdout.trim_end().to_owned()
}

#[test]
fn rule_match() {
    let dir = setup();
    assert_eq!(
        json_line(dir.path(), "banner", r#"{"key":"u1","plan":"pro"}"#, &[]),
        r#"{"key":"banner","value":"blue","variationIndex":1,"reason":"RULE_MATCH","ruleId":"pro-plan","inExperiment":false,"prerequisiteFailed":null,"errorKind":null}"#
    );
}

#[test]
fn rollout_and_experiment() {
    let dir = setup();
    assert_eq!(
        json_line(dir.path(), "hashKey", r#"{"key":"userKeyA"}"#, &[]),
        r#"{"key":"hashKey","value":"b","variationIndex":1,"reason":"FALLTHROUGH","ruleId":null,"inExperiment":false,"prerequisiteFailed":null,"errorKind":null}"#
    );
    assert_eq!(
        json_line(dir.path(), "hashKey", r#"{"key":"userKeyC"}"#, &[]),
        r#"{"key":"hashKey","value":"a","variationIndex":0,"reason":"FALLTHROUGH","ruleId":null,"inExperiment":false,"prerequisiteFailed":null,"errorKind":null}"#
    );
    assert_eq!(
        json_line(
            dir.path(),
            "hashKey",
            r#"{"key":"userKeyA","plan":"lab"}"#,
            &[]
        ),
        r#"{"key":"hashKey","value":"b","variationIndex":1,"reason":"RULE_MATCH","ruleId":"lab","inExperiment":true,"prerequisiteFailed":null,"errorKind":null}"#
    );
}

#[test]
fn prerequisite_failure() {
    let dir = setup();
    assert_eq!(
        json_line(dir.path(), "gated", r#"{"key":"u1"}"#, &[]),
        r#"{"key":"gated","value":"closed","variationIndex":0,"reason":"PREREQUISITE_FAILED","ruleId":null,"inExperiment":false,"prerequisiteFailed":"banner","errorKind":null}"#
    );
    assert_eq!(
        json_line(dir.path(), "gated", r#"{"key":"u1","plan":"pro"}"#, &[]),
        r#"{"key":"gated","value":"open","variationIndex":1,"reason":"FALLTHROUGH","ruleId":null,"inExperiment":false,"prerequisiteFailed":null,"errorKind":null}"#
    );
}

#[test]
fn unknown_flag_serves_the_default() {
    let dir = setup();
    assert_eq!(
        json_line(
            dir.path(),
            "nope",
            r#"{"key":"u1"}"#,
            &["--default", r#""fallback""#]
        ),
        r#"{"key":"nope","value":"fallback","variationIndex":null,"reason":"ERROR","ruleId":null,"inExperiment":false,"prerequisiteFailed":null,"errorKind":"FLAG_NOT_FOUND"}"#
    );
    assert_eq!(
        json_line(dir.path(), "nope", r#"{"key":"u1"}"#, &[]),
        r#"{"key":"nope","value":null,"variationIndex":null,"reason":"ERROR","ruleId":null,"inExperiment":false,"prerequisiteFailed":null,"errorKind":"FLAG_NOT_FOUND"}"#
    );
    let r = eval(
        dir.path(),
        &[
            "--flag",
            "nope",
            "--context",
            r#"{"key":"u1"}"#,
            "--default",
            "3",
        ],
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "3\n"), "{r:?}");
}

#[test]
fn wrong_typed_context() {
    let dir = setup();
    // `name` must be a string: the context is invalid, as an SDK reports it.
    let r = eval(
        dir.path(),
        &[
            "--flag",
            "banner",
            "--context",
            r#"{"key":"u1","name":42}"#,
            "--json",
            "--default",
            r#""grey""#,
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout,
        "{\"key\":\"banner\",\"value\":\"grey\",\"variationIndex\":null,\"reason\":\"ERROR\",\"ruleId\":null,\"inExperiment\":false,\"prerequisiteFailed\":null,\"errorKind\":\"USER_NOT_SPECIFIED\"}\n"
    );
    assert!(
        r.stderr.contains("--context: warning: invalid context"),
        "{r:?}"
    );
    // A custom attribute of another type than the clause's values simply does not match.
    assert_eq!(
        json_line(dir.path(), "banner", r#"{"key":"u1","plan":3}"#, &[]),
        r#"{"key":"banner","value":"red","variationIndex":0,"reason":"FALLTHROUGH","ruleId":null,"inExperiment":false,"prerequisiteFailed":null,"errorKind":null}"#
    );
    // Text that is not a JSON object is bad input.
    let r = eval(dir.path(), &["--context", "[1]"]);
    assert_eq!((r.code, r.stdout.as_str()), (2, ""), "{r:?}");
    let r = eval(dir.path(), &["--context", "{key:1}"]);
    assert_eq!((r.code, r.stdout.as_str()), (2, ""), "{r:?}");
}

#[test]
fn plain_output() {
    let dir = setup();
    let r = eval(
        dir.path(),
        &[
            "--flag",
            "banner",
            "--context",
            r#"{"key":"u1","plan":"pro"}"#,
        ],
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "\"blue\"\n"), "{r:?}");
    let r = eval(
        dir.path(),
        &["--context", r#"{"key":"userKeyC","plan":"pro"}"#],
    );
    assert_eq!(
        r.lines(),
        ["banner \"blue\"", "gated \"open\"", "hashKey \"a\""],
        "{r:?}"
    );
}

#[test]
fn contexts_file_is_context_major() {
    let dir = setup();
    write(
        dir.path(),
        "users.jsonl",
        "{\"key\":\"userKeyA\",\"plan\":\"pro\"}\n\n{\"key\":\"userKeyB\"}\n{\"kind\":\"user\",\"key\":\"userKeyC\",\"plan\":\"lab\"}\n",
    );
    let r = eval(dir.path(), &["--contexts", "users.jsonl"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.lines(),
        [
            "banner \"blue\"",
            "gated \"open\"",
            "hashKey \"b\"",
            "banner \"red\"",
            "gated \"closed\"",
            "hashKey \"b\"",
            "banner \"red\"",
            "gated \"closed\"",
            "hashKey \"a\"",
        ]
    );
    let r = eval(
        dir.path(),
        &["--contexts", "users.jsonl", "--flag", "hashKey", "--json"],
    );
    let lines = r.lines();
    assert_eq!(lines.len(), 3, "{r:?}");
    assert!(lines[2].starts_with(r#"{"key":"hashKey","value":"a","variationIndex":0,"reason":"RULE_MATCH","ruleId":"lab","inExperiment":true,"#));
}

#[test]
fn bad_context_line_is_reported_and_nothing_is_evaluated() {
    let dir = setup();
    write(
        dir.path(),
        "users.jsonl",
        "{\"key\":\"a\"}\n\n{\"key\": \n\"just a string\"\n",
    );
    let r = eval(dir.path(), &["--contexts", "users.jsonl"]);
    assert_eq!((r.code, r.stdout.as_str()), (2, ""), "{r:?}");
    assert!(
        r.stderr.contains("users.jsonl:3: invalid context JSON"),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("users.jsonl:4: a context must be a JSON object"),
        "{r:?}"
    );
}

#[test]
fn explain_names_rules_clauses_and_buckets() {
    let dir = setup();
    let r = eval(
        dir.path(),
        &[
            "--flag",
            "hashKey",
            "--context",
            r#"{"key":"userKeyA","plan":"lab"}"#,
            "--explain",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let lines = r.lines();
    assert_eq!(lines[0], "\"b\"");
    assert!(lines[1..].iter().all(|l| l.starts_with("  ")), "{r:?}");
    assert!(
        lines.iter().any(|l| l.contains("rule 0 clause 0: matched")),
        "{r:?}"
    );
    assert!(lines.iter().any(|l| l.contains("rule 0 matched")), "{r:?}");
    assert!(lines.iter().any(|l| l.contains("bucket 0.4215")), "{r:?}");

    let r = eval(
        dir.path(),
        &[
            "--flag",
            "banner",
            "--context",
            r#"{"key":"u1"}"#,
            "--explain",
            "--json",
        ],
    );
    assert_eq!(
        r.stdout,
        "{\"key\":\"banner\",\"value\":\"red\",\"variationIndex\":0,\"reason\":\"FALLTHROUGH\",\"ruleId\":null,\"inExperiment\":false,\"prerequisiteFailed\":null,\"errorKind\":null,\"explain\":[\"rule 0 clause 0: did not match\",\"no rule matched: fallthrough\"]}\n"
    );
}

#[test]
fn a_file_with_errors_still_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "flags.yaml",
        "flags:\n  bad:\n    rules:\n      - clauses: [{attribute: email, operator: matches, values: [\"(x\"]}]\n        variation: 1\n  good:\n    default: true\n  typo:\n    rulez: []\n",
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
            "--default",
            "false",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.lines(),
        [
            r#"{"key":"bad","value":false,"variationIndex":null,"reason":"ERROR","ruleId":null,"inExperiment":false,"prerequisiteFailed":null,"errorKind":"MALFORMED_FLAG"}"#,
            r#"{"key":"good","value":true,"variationIndex":1,"reason":"FALLTHROUGH","ruleId":null,"inExperiment":false,"prerequisiteFailed":null,"errorKind":null}"#,
            r#"{"key":"typo","value":false,"variationIndex":null,"reason":"ERROR","ruleId":null,"inExperiment":false,"prerequisiteFailed":null,"errorKind":"MALFORMED_FLAG"}"#,
        ]
    );
    assert!(r.stderr.contains("flags.yaml:4:"), "{r:?}");
    assert!(
        r.stderr.contains("flags.yaml:9:5: typo: unknown field"),
        "{r:?}"
    );
}

#[test]
fn usage_errors() {
    let dir = setup();
    // Neither or both of --context / --contexts.
    assert_eq!(eval(dir.path(), &[]).code, 2);
    assert_eq!(
        eval(dir.path(), &["--context", "{}", "--contexts", "x.jsonl"]).code,
        2
    );
    // --default must be JSON.
    let r = eval(dir.path(), &["--context", "{}", "--default", "blue"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--default must be JSON"), "{r:?}");
    // Missing or unparsable flag file.
    let r = featurectl(
        dir.path(),
        &["eval", "--file", "missing.yaml", "--context", "{}"],
    );
    assert_eq!(r.code, 2, "{r:?}");
    write(dir.path(), "broken.yaml", "flags:\n  a: b: c\n");
    let r = featurectl(
        dir.path(),
        &["eval", "--file", "broken.yaml", "--context", "{}"],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("broken.yaml:2:"), "{r:?}");
}
