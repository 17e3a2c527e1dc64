//! `featurectl` against a flag server: `push`, `history`, `validate`, `get`, `enable` and
//! `disable` with `--server`, against `featurectl serve` child processes over SQLite stores in
//! temporary directories, with tokens made by `featurectl token create`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

mod common;
mod server_process;

use common::{write, Run};
use serde_json::Value;
use server_process::{header, http, serve, Served, BOOT};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `featurectl` in `dir` with `FEATURE_TOKEN` set to `token` (or unset), and no store or
/// server taken from the environment of the test run.
fn ctl(dir: &Path, token: Option<&str>, args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_featurectl"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("FEATURE_STORE_URL")
        .env_remove("FEATURE_SERVER_URL")
        .env_remove("FEATURE_SERVER_STORE")
        .env_remove("FEATURE_TOKEN");
    if let Some(t) = token {
        cmd.env("FEATURE_TOKEN", t);
    }
    let out = cmd.output().expect("the featurectl binary runs");
    Run {
        code: out.status.code().expect("featurectl exited normally"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// A server over `dir/feature.db`, its URL, and the store URL for `featurectl token`.
fn server(dir: &Path) -> (Served, String, String) {
    let store = format!("sqlite://{}", dir.join("feature.db").display());
    let served = serve(dir, &["--store", &store]);
    let url = format!("http://127.0.0.1:{}", served.port);
    (served, url, store)
}

/// A token of `scope` named `name`, made in the server's store by `featurectl token create`.
fn token(dir: &Path, store: &str, name: &str, scope: &str) -> String {
    let r = ctl(
        dir,
        None,
        &[
            "token", "create", "--name", name, "--scope", scope, "--store", store,
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    r.stdout.trim().to_owned()
}

/// A flag as the server holds it: body and version.
fn server_flag(port: u16, token: &str, key: &str) -> (u16, Value, Option<String>) {
    let bearer = format!("Bearer {token}");
    let (status, h, body) = http(
        port,
        "GET",
        &format!("/api/v1/flags/{key}"),
        &[("Authorization", &bearer)],
        "",
    );
    let v = serde_json::from_str(&body).unwrap_or(Value::Null);
    (status, v, header(&h, "etag").map(str::to_owned))
}

/// Whether a flag's targeting is on (`enabled` is left out when it is).
fn is_enabled(flag: &Value) -> bool {
    matches!(flag["enabled"], Value::Null | Value::Bool(true))
}

const V1: &str = "\
segments:
  staff:
    included: [u1]
flags:
  beta:
    type: bool
    default: false
  theme:
    type: string
    variants:
      - {name: light, value: light}
      - {name: dark, value: dark}
    default: light
";

const V2: &str = "\
segments:
  staff:
    included: [u1]
flags:
  beta:
    type: bool
    default: true
  checkout:
    type: bool
    default: false
";

#[test]
fn push_creates_updates_and_deletes_through_the_api_in_the_name_of_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (served, url, store) = server(d);
    let ci = token(d, &store, "ci-deploy", "write");
    write(d, "v1.yaml", V1);
    write(d, "v2.yaml", V2);

    // A dry run changes nothing.
    let r = ctl(
        d,
        Some(&ci),
        &["push", "v1.yaml", "--server", &url, "--dry-run"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.lines(),
        [
            "+ segment staff",
            "+ flag beta",
            "+ flag theme",
            "dry run: would have 3 created, 0 updated, 0 deleted"
        ]
    );
    assert_eq!(server_flag(served.port, &ci, "beta").0, 404);

    let r = ctl(d, Some(&ci), &["push", "v1.yaml", "--server", &url]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.lines(),
        [
            "+ segment staff",
            "+ flag beta",
            "+ flag theme",
            "3 created, 0 updated, 0 deleted"
        ]
    );
    let (status, beta, etag) = server_flag(served.port, &ci, "beta");
    assert_eq!(status, 200);
    assert_eq!(beta["default"], false);
    assert_eq!(etag.as_deref(), Some("\"1\""));

    // The same file again: nothing to do, nothing written.
    let r = ctl(d, Some(&ci), &["push", "v1.yaml", "--server", &url]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.lines(), ["0 created, 0 updated, 0 deleted"]);
    assert_eq!(
        server_flag(served.port, &ci, "beta").2.as_deref(),
        Some("\"1\"")
    );

    let r = ctl(d, Some(&ci), &["push", "v2.yaml", "--server", &url]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.lines(),
        [
            "~ flag beta (v1): default",
            "+ flag checkout",
            "- flag theme (v1)",
            "1 created, 1 updated, 1 deleted"
        ]
    );
    assert_eq!(server_flag(served.port, &ci, "theme").0, 404);
    assert_eq!(server_flag(served.port, &ci, "beta").1["default"], true);

    // The server's audit log names the token, newest first, as a store's history does.
    let r = ctl(d, Some(&ci), &["history", "beta", "--server", &url]);
    assert_eq!(r.code, 0, "{r:?}");
    let lines = r.lines();
    assert_eq!(lines.len(), 2, "{r:?}");
    assert!(lines[0].contains("v2    update   ci-deploy"), "{lines:?}");
    assert!(lines[1].contains("v1    create   ci-deploy"), "{lines:?}");
    // Paging through `before`: one entry per page still finds both, and --limit holds.
    let r = ctl(
        d,
        Some(&ci),
        &[
            "history", "beta", "--server", &url, "--json", "--limit", "1",
        ],
    );
    assert_eq!(r.lines().len(), 1, "{r:?}");
    let e: Value = serde_json::from_str(r.lines()[0]).unwrap();
    assert_eq!(e["actor"], "ci-deploy");
    assert_eq!(e["key"], "beta");
    assert_eq!(e["before"]["default"], false);
    assert_eq!(e["after"]["default"], true);
    let r = ctl(d, Some(&ci), &["history", "theme", "--server", &url]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.lines()[0].contains("delete   ci-deploy"), "{r:?}");

    // A file with an error writes nothing, even a flag that cannot be read at all.
    write(
        d,
        "bad.yaml",
        "flags:\n  beta: {type: bool, default: false}\n  typo: {type: bool, defualt: true}\n",
    );
    let r = ctl(d, Some(&ci), &["push", "bad.yaml", "--server", &url]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("bad.yaml has 1 error(s), nothing was written; first: bad.yaml:3:"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "");
    assert_eq!(server_flag(served.port, &ci, "beta").1["default"], true);
    assert_eq!(server_flag(served.port, &ci, "checkout").0, 200);

    // The token's name is the actor: --actor has no say against a server.
    let r = ctl(
        d,
        Some(&ci),
        &["push", "v2.yaml", "--server", &url, "--actor", "someone"],
    );
    assert_eq!(r.code, 2, "{r:?}");
}

#[test]
fn history_pages_through_the_servers_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_served, url, store) = server(d);
    let ci = token(d, &store, "ci", "write");
    write(d, "v1.yaml", V1);
    ctl(d, Some(&ci), &["push", "v1.yaml", "--server", &url]);
    // 1100 switches: more than the API's largest page (1000).
    let mut disable = true;
    let bearer = format!("Bearer {ci}");
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    for _ in 0..1100 {
        let verb = if disable { "disable" } else { "enable" };
        let (status, _, body) = http(
            port,
            "POST",
            &format!("/api/v1/flags/beta/{verb}"),
            &[("Authorization", &bearer), ("If-Match", "*")],
            "",
        );
        assert_eq!(status, 200, "{body}");
        disable = !disable;
    }
    let r = ctl(
        d,
        Some(&ci),
        &["history", "beta", "--server", &url, "--limit", "5000"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let lines = r.lines();
    assert_eq!(lines.len(), 1101, "{}", r.stderr);
    assert!(lines[0].contains("v1101 enable "), "{}", lines[0]);
    assert!(lines[1100].contains("v1    create "), "{}", lines[1100]);
}

#[test]
fn get_enable_and_disable_with_versions_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (served, url, store) = server(d);
    let ci = token(d, &store, "ci", "write");
    let reader = token(d, &store, "dashboard", "read");
    write(d, "v1.yaml", V1);
    assert_eq!(
        ctl(d, Some(&ci), &["push", "v1.yaml", "--server", &url]).code,
        0
    );

    // YAML in the flag file's format, with the version: it reads back as a flag file.
    let r = ctl(d, Some(&reader), &["get", "theme", "--server", &url]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("flags:\n  theme:\n"), "{}", r.stdout);
    assert!(r.stdout.contains("    version: 1\n"), "{}", r.stdout);
    write(d, "got.yaml", &r.stdout);
    let v = ctl(d, None, &["validate", "got.yaml"]);
    assert_eq!(v.code, 0, "{v:?}");
    let r = ctl(
        d,
        Some(&reader),
        &["get", "theme", "--server", &url, "--json"],
    );
    let j: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["key"], "theme");
    assert_eq!(j["version"], 1);
    assert_eq!(j["variants"][1]["value"], "dark");
    let r = ctl(
        d,
        Some(&reader),
        &["get", "staff", "--segment", "--server", &url],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.starts_with("segments:\n  staff:\n"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("- u1"), "{}", r.stdout);
    let r = ctl(d, Some(&reader), &["get", "nope", "--server", &url]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no flag \"nope\""), "{}", r.stderr);

    let r = ctl(d, Some(&ci), &["disable", "theme", "--server", &url]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "flag theme disabled (v2)\n");
    assert!(!is_enabled(&server_flag(served.port, &ci, "theme").1));
    let r = ctl(d, Some(&ci), &["enable", "theme", "--server", &url]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "flag theme enabled (v3)\n");
    assert!(is_enabled(&server_flag(served.port, &ci, "theme").1));
    let r = ctl(d, Some(&ci), &["history", "theme", "--server", &url]);
    assert!(r.lines()[0].contains("enable   ci"), "{r:?}");
    assert!(r.lines()[1].contains("disable  ci"), "{r:?}");

    // A read token may look but not switch: exit 2, and the reason, nothing changed.
    let r = ctl(d, Some(&reader), &["disable", "theme", "--server", &url]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("the token in FEATURE_TOKEN is too weak"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("Forbidden"), "{}", r.stderr);
    assert!(is_enabled(&server_flag(served.port, &ci, "theme").1));
    // No token, and a token the server does not know.
    let r = ctl(d, None, &["enable", "theme", "--server", &url]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("no token: set FEATURE_TOKEN"),
        "{}",
        r.stderr
    );
    let r = ctl(
        d,
        Some("feat_0000000000000000_notatoken"),
        &["get", "theme", "--server", &url],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("the server refused the token in FEATURE_TOKEN"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("notatoken"), "never echo the token");
    assert_eq!(
        ctl(d, Some(&ci), &["enable", "nope", "--server", &url]).code,
        2
    );
}

#[test]
fn enable_on_a_read_only_server_reports_why() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "flags.yaml",
        "flags:\n  beta: {type: bool, default: true}\n",
    );
    let served = serve(d, &["--file", "flags.yaml"]);
    let url = format!("http://127.0.0.1:{}", served.port);
    let r = ctl(d, Some(BOOT), &["get", "beta", "--server", &url]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = ctl(d, Some(BOOT), &["disable", "beta", "--server", &url]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("the server is read-only: flags come from the file flags.yaml"),
        "{}",
        r.stderr
    );
    write(
        d,
        "more.yaml",
        "flags:\n  beta: {type: bool, default: true}\n  new: {type: bool}\n",
    );
    let r = ctl(d, Some(BOOT), &["push", "more.yaml", "--server", &url]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("+ flag new: refused"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("the server is read-only: flags come from the file flags.yaml"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("0 of 1 changes made"), "{}", r.stderr);
}

#[test]
fn validate_on_the_server_prints_what_local_validate_prints() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_served, url, store) = server(d);
    let reader = token(d, &store, "ci", "read");
    write(
        d,
        "broken.yaml",
        "\
flags:
  emails:
    type: bool
    rules:
      - clauses:
          - attribute: email
            operator: matches
            values: [\"(unclosed\"]
        variation: 0
      - clauses:
          - {attribute: plan, operator: sortOf, values: [pro]}
        variation: 1
  child:
    prerequisites:
      - {key: missing, variation: 0}
",
    );
    write(d, "unparsable.yaml", "flags:\n  a: b: c\n");
    write(
        d,
        "broken.json",
        "{\"flags\": {\"a\": {\"type\": \"bool\",}}}",
    );
    write(d, "good.yaml", V1);
    write(d, "warned.yaml", "flags:\n  a:\n    rules:\n      - clauses:\n          - {attribute: x, operator: bogus, values: [1]}\n        variation: 0\n");
    for args in [
        &["validate", "broken.yaml"][..],
        &["validate", "--verbose", "broken.yaml", "good.yaml"],
        &["validate", "unparsable.yaml", "broken.json"],
        &["validate", "good.yaml"],
        &["validate", "warned.yaml"],
        &["validate", "--allow-warnings", "--verbose", "warned.yaml"],
        &["validate", "good.yaml", "missing.yaml"],
    ] {
        let local = ctl(d, None, args);
        let mut remote_args = args.to_vec();
        remote_args.extend(["--server", &url]);
        let remote = ctl(d, Some(&reader), &remote_args);
        assert_eq!(remote.code, local.code, "{args:?}: {local:?} {remote:?}");
        assert_eq!(remote.stdout, local.stdout, "{args:?}");
        assert_eq!(remote.stderr, local.stderr, "{args:?}");
    }
    // The cases above are not vacuous: problems were found and printed.
    let broken = ctl(
        d,
        Some(&reader),
        &["validate", "broken.yaml", "--server", &url],
    );
    assert_eq!(broken.code, 1);
    assert!(
        broken
            .stdout
            .contains("broken.yaml:8:22: emails: invalid regular expression"),
        "{}",
        broken.stdout
    );
    assert!(broken.stdout.contains("warning: unknown operator"));
    assert!(
        broken.stdout.contains("child: warning: "),
        "{}",
        broken.stdout
    );
    let unparsable = ctl(
        d,
        Some(&reader),
        &["validate", "unparsable.yaml", "--server", &url],
    );
    assert!(
        unparsable.stdout.starts_with("unparsable.yaml:2:7: "),
        "{}",
        unparsable.stdout
    );
    // FEATURE_SERVER_URL does not send local validation to a server.
    let out = Command::new(env!("CARGO_BIN_EXE_featurectl"))
        .args(["validate", "good.yaml"])
        .current_dir(d)
        .env("FEATURE_SERVER_URL", "http://127.0.0.1:1")
        .env_remove("FEATURE_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Without a token the server says nothing about the file.
    let r = ctl(d, None, &["validate", "good.yaml", "--server", &url]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no token"), "{}", r.stderr);
}

#[test]
fn a_change_made_between_diff_and_apply_is_reported_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (served, url, store) = server(d);
    let ci = token(d, &store, "ci", "write");
    let other = token(d, &store, "someone-else", "write");
    let port = served.port;
    write(
        d,
        "v1.yaml",
        "flags:\n  zzz: {type: bool, default: false}\n",
    );
    assert_eq!(
        ctl(d, Some(&ci), &["push", "v1.yaml", "--server", &url]).code,
        0
    );
    // Many segments to create first (segments are written before flags), then an update of
    // `zzz` computed against version 1: while the push creates the segments, someone else
    // changes `zzz`.
    let mut file = String::from("segments:\n");
    for i in 0..400 {
        file.push_str(&format!("  s{i:03}: {{included: [u{i}]}}\n"));
    }
    file.push_str("flags:\n  zzz: {type: bool, default: true}\n");
    write(d, "v2.yaml", &file);
    let push = Command::new(env!("CARGO_BIN_EXE_featurectl"))
        .args(["push", "v2.yaml", "--server", &url])
        .current_dir(d)
        .env_remove("FEATURE_STORE_URL")
        .env_remove("FEATURE_SERVER_URL")
        .env("FEATURE_TOKEN", &ci)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bearer = format!("Bearer {other}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _, _) = http(
            port,
            "GET",
            "/api/v1/segments/s000",
            &[("Authorization", &bearer)],
            "",
        );
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the push never started writing");
        std::thread::sleep(Duration::from_millis(2));
    }
    let (status, _, body) = http(
        port,
        "PUT",
        "/api/v1/flags/zzz",
        &[
            ("Authorization", &bearer),
            ("If-Match", "\"1\""),
            ("Content-Type", "application/json"),
        ],
        r#"{"type": "bool", "default": false, "description": "mine"}"#,
    );
    assert_eq!(status, 200, "the other edit lands first: {body}");
    let out = push.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("~ flag zzz (v1): default: changed on the server since it was read"),
        "{stderr}"
    );
    assert!(stderr.contains("400 of 401 changes made"), "{stderr}");
    assert!(stderr.contains("Precondition failed"), "{stderr}");
    assert_eq!(stdout.lines().count(), 400, "the changes made are listed");
    assert_eq!(stdout.lines().last(), Some("+ segment s399"));
    // The other edit survived, and the audit log has no write of the push to `zzz`.
    let (_, zzz, etag) = server_flag(port, &ci, "zzz");
    assert_eq!(zzz["description"], "mine");
    assert_eq!(zzz["default"], false);
    assert_eq!(etag.as_deref(), Some("\"2\""));
    let r = ctl(d, Some(&ci), &["history", "zzz", "--server", &url]);
    assert_eq!(r.lines().len(), 2, "{r:?}");
    assert!(r.lines()[0].contains("update   someone-else"), "{r:?}");
    // Pushing again now applies the file over the edit the user has seen.
    let r = ctl(d, Some(&ci), &["push", "v2.yaml", "--server", &url]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.lines(),
        [
            "~ flag zzz (v2): default, description",
            "0 created, 1 updated, 0 deleted"
        ]
    );
}
