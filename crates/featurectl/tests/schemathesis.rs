//! The OpenAPI document fuzzed endpoint by endpoint against `featurectl serve` over a real
//! Redis store (schemathesis, from PyPI; `scripts/test.sh` installs it): no 5xx, and every
//! status, content type, header and body conforms to the document, without a token and with a
//! token of each scope.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

mod common;
mod server_process;

use common::redis_url;
use serde_json::Value;
use server_process::{http, serve, BOOT};
use std::process::Command;

/// The schemathesis command, or `None` (skip) when it is not installed; a panic when `CI=true`.
fn schemathesis() -> Option<String> {
    let bin = std::env::var("FEATURE_TEST_SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".into());
    if Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some(bin);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("schemathesis is not installed (CI=true: the test must not skip; scripts/test.sh installs it)");
    }
    eprintln!("skipping: schemathesis is not installed (run scripts/test.sh)");
    None
}

#[test]
fn the_documented_api_holds_under_fuzzing_with_every_scope() {
    let Some(url) = redis_url() else {
        return;
    };
    let Some(st) = schemathesis() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("test:fuzz:{:08x}", fastrand::u32(..));
    let served = serve(dir.path(), &["--store", &url, "--prefix", &prefix]);
    let port = served.port;
    let admin = format!("Bearer {BOOT}");
    let (status, _, doc) = http(
        port,
        "GET",
        "/api/v1/openapi.json",
        &[("Authorization", &admin)],
        "",
    );
    assert_eq!(status, 200);
    let schema = dir.path().join("openapi.json");
    std::fs::write(&schema, &doc).unwrap();

    let mut tokens = vec![("none", None), ("bootstrap", Some(BOOT.to_owned()))];
    for scope in ["evaluate", "read", "write", "admin"] {
        let (status, _, body) = http(
            port,
            "POST",
            "/api/v1/tokens",
            &[
                ("Authorization", &admin),
                ("Content-Type", "application/json"),
            ],
            &format!(r#"{{"name": "fuzz-{scope}", "scope": "{scope}"}}"#),
        );
        assert_eq!(status, 201, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        tokens.push((scope, Some(v["token"].as_str().unwrap().to_owned())));
    }
    for (who, token) in &tokens {
        let mut cmd = Command::new(&st);
        cmd.arg("run")
            .arg(&schema)
            .args(["--url", &format!("http://127.0.0.1:{port}")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
            ])
            .args(["--max-examples", "10", "--seed", "1", "--no-color"])
            // The two event streams never end: fuzzing them would only wait for time-outs.
            // Their statuses, scopes and events are tested in feature-server's `sdk` and
            // `ofrep` tests.
            .args([
                "--exclude-path",
                "/sdk/v1/stream",
                "--exclude-path",
                "/ofrep/v1/events",
            ])
            .current_dir(dir.path());
        if let Some(t) = token {
            cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        let out = cmd.output().expect("schemathesis runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "schemathesis with token {who}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    drop(served);
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(&mut c)
        .unwrap();
    for k in keys {
        let _: () = redis::cmd("DEL").arg(k).query(&mut c).unwrap();
    }
}
