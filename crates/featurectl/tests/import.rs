//! `featurectl import`: LaunchDarkly JSON in, YAML out, read back unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

mod common;

use common::{featurectl, write};
use feature_core::{parse_document, Format};

const LD: &str = r#"{
  "flags": {
    "tricky": {
      "key": "tricky", "version": 3, "on": true, "salt": "true",
      "variations": ["true", "1", "null", "~", "", 1, 1.0, -0.5, {"1": [2.0, "no"]}],
      "offVariation": 2,
      "fallthrough": {"rollout": {"variations": [{"variation": 5, "weight": 50000}, {"variation": 6, "weight": 50000}]}},
      "rules": [{"id": "r1", "clauses": [{"attribute": "/plan", "op": "in", "values": ["1", 1]}], "variation": 0}],
      "targets": [{"variation": 1, "values": ["null"]}]
    },
    "seg-flag": {
      "on": true, "variations": [false, true], "offVariation": 0, "fallthrough": {"variation": 0},
      "rules": [{"clauses": [{"attribute": "", "op": "segmentMatch", "values": ["beta"]}], "variation": 1}]
    }
  },
  "segments": {"beta": {"key": "beta", "included": ["u1"], "salt": "s", "version": 1}}
}"#;

#[test]
fn writes_yaml_to_stdout_that_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "ld.json", LD);
    let r = featurectl(dir.path(), &["import", "--from", "launchdarkly", "ld.json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("flags:\n"), "{r:?}");
    assert!(r.stdout.contains("- value: 'true'\n"), "{}", r.stdout);
    let parsed = parse_document(&r.stdout, Format::Yaml).unwrap();
    let direct = feature_core::launchdarkly::import(&serde_json::from_str(LD).unwrap()).unwrap();
    assert_eq!(parsed.document, direct);
    let v = &parsed.document.flags["tricky"].variants;
    assert!(
        v[5].value.is_u64() && v[6].value.is_f64(),
        "1 and 1.0 keep their types"
    );
    assert_eq!(v[0].value, serde_json::json!("true"));
    assert_eq!(v[3].value, serde_json::json!("~"));
}

#[test]
fn writes_the_output_file_and_validates_it() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "ld.json", LD);
    let r = featurectl(
        dir.path(),
        &[
            "import",
            "--from",
            "launchdarkly",
            "ld.json",
            "-o",
            "out.yaml",
        ],
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
    let yaml = std::fs::read_to_string(dir.path().join("out.yaml")).unwrap();
    let direct = feature_core::launchdarkly::import(&serde_json::from_str(LD).unwrap()).unwrap();
    assert_eq!(yaml, featurectl::import::to_yaml(&direct).unwrap());
    let r = featurectl(dir.path(), &["validate", "out.yaml"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
    let r = featurectl(
        dir.path(),
        &[
            "eval",
            "--file",
            "out.yaml",
            "--flag",
            "seg-flag",
            "--context",
            r#"{"key":"u1"}"#,
        ],
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "true\n"), "{r:?}");
}

#[test]
fn diagnostics_of_the_written_flags_go_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "ld.json",
        r#"{"flags": {"f": {"on": true, "variations": [1, 2], "fallthrough": {"variation": 0},
            "rules": [{"clauses": [{"attribute": "x", "op": "resembles", "values": ["x"]}], "variation": 1}]}}}"#,
    );
    let r = featurectl(
        dir.path(),
        &[
            "import",
            "--from",
            "launchdarkly",
            "ld.json",
            "-o",
            "out.yaml",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.starts_with("out.yaml:"), "{r:?}");
    assert!(
        r.stderr
            .contains(": f: warning: unknown operator \"resembles\""),
        "{r:?}"
    );
}

#[test]
fn bad_input_and_usage() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "ld.json", LD);
    write(dir.path(), "broken.json", "{\"flags\": {\n  ]");
    write(dir.path(), "list.json", "[1, 2]");
    let r = featurectl(dir.path(), &["import", "--from", "unleash", "ld.json"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("launchdarkly"), "{r:?}");
    assert_eq!(featurectl(dir.path(), &["import", "ld.json"]).code, 2);
    let r = featurectl(
        dir.path(),
        &["import", "--from", "launchdarkly", "broken.json"],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("broken.json:2:"), "{r:?}");
    let r = featurectl(
        dir.path(),
        &["import", "--from", "launchdarkly", "list.json"],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("expected a LaunchDarkly payload"),
        "{r:?}"
    );
    let r = featurectl(
        dir.path(),
        &["import", "--from", "launchdarkly", "missing.json"],
    );
    assert_eq!((r.code, r.stdout.as_str()), (2, ""), "{r:?}");
}
