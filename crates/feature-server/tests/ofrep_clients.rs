//! Real OFREP clients from the registries against the server on a loopback port: Node's server
//! provider (`@openfeature/ofrep-provider`), the web provider (`@openfeature/ofrep-web-provider`,
//! bulk evaluation and the change stream) and Python's `openfeature-provider-ofrep`. The driver
//! scripts in `tests/ofrep/` evaluate and print what their SDK returned; this test checks it.
//!
//! `scripts/test.sh` installs the packages under `target/ofrep-clients` (or set
//! `FEATURE_TEST_OFREP_NODE` / `FEATURE_TEST_OFREP_PYTHON` to other directories). Missing
//! packages fail the test when `CI=true`, and skip it otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature::{Client, MemoryProvider};
use feature_server::{MemoryTokenStore, Server};
use feature_store::tokens::{create_token, Scope};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

const FLAGS: &str = include_str!("ofrep/flags.yaml");

fn here(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/ofrep")
        .join(file)
}

/// The directory of installed packages, or `None` (after failing under `CI=true`).
fn installed(var: &str, default: &str, probe: &str) -> Option<PathBuf> {
    let dir = std::env::var(var).map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(default)
    });
    if dir.join(probe).exists() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{} is not installed (CI=true: the test must not skip; scripts/test.sh installs it)",
            dir.join(probe).display()
        );
    }
    eprintln!(
        "skipping: {} is missing (run scripts/test.sh)",
        dir.join(probe).display()
    );
    None
}

/// A server on a loopback port over flags in memory, and an `evaluate` token.
async fn serve() -> (String, String, Arc<MemoryProvider>) {
    let doc = feature_core::parse_document(FLAGS, feature_core::Format::Yaml)
        .unwrap()
        .document;
    let flags = Arc::new(MemoryProvider::with_document(doc));
    let client = Client::builder()
        .shared_provider(flags.clone())
        .build()
        .await
        .unwrap();
    let tokens = Arc::new(MemoryTokenStore::new());
    let (_, token) = create_token(tokens.as_ref(), "clients", Scope::Evaluate, "setup")
        .await
        .unwrap();
    let server = Server::builder()
        .read_only("flags from memory")
        .tokens(tokens)
        .client(client)
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, server.router()).await });
    (base, token, flags)
}

async fn run(mut cmd: tokio::process::Command) -> Value {
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the driver finished within 60 s")
        .expect("the driver started");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "driver failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn check(what: &str, out: &Value, key: &str, value: Value, reason: &str, error: Value) {
    let d = &out[key];
    assert_eq!(d["value"], value, "{what} {key}: {d}");
    assert_eq!(d["reason"], reason, "{what} {key}: {d}");
    assert_eq!(d["errorCode"], error, "{what} {key}: {d}");
}

/// What every server-side client must return for the driver's evaluations.
fn check_server_side(what: &str, out: &Value) {
    check(what, out, "bool", json!(true), "STATIC", Value::Null);
    check(what, out, "string", json!("light"), "DEFAULT", Value::Null);
    check(
        what,
        out,
        "targeted",
        json!("dark"),
        "TARGETING_MATCH",
        Value::Null,
    );
    assert_eq!(out["targeted"]["variant"], "dark", "{what}");
    assert_eq!(out["targeted"]["metadata"]["ruleId"], "pro-dark", "{what}");
    check(what, out, "int", json!(10), "STATIC", Value::Null);
    check(what, out, "float", json!(0.25), "STATIC", Value::Null);
    check(
        what,
        out,
        "object",
        json!({"columns": 2, "dense": false}),
        "STATIC",
        Value::Null,
    );
    check(
        what,
        out,
        "multi",
        json!(true),
        "TARGETING_MATCH",
        Value::Null,
    );
    check(
        what,
        out,
        "missing",
        json!(true),
        "ERROR",
        json!("FLAG_NOT_FOUND"),
    );
    check(
        what,
        out,
        "mismatch",
        json!(7),
        "ERROR",
        json!("TYPE_MISMATCH"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_server_provider_evaluates_our_flags() {
    let Some(dir) = installed(
        "FEATURE_TEST_OFREP_NODE",
        "target/ofrep-clients/node",
        "node_modules/@openfeature/ofrep-provider",
    ) else {
        return;
    };
    let (base, token, _) = serve().await;
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(here("server_provider.cjs"))
        .args([&base, &token])
        .env("NODE_PATH", dir.join("node_modules"));
    let out = run(cmd).await;
    check_server_side("node", &out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_provider_evaluates_our_flags() {
    let Some(dir) = installed(
        "FEATURE_TEST_OFREP_PYTHON",
        "target/ofrep-clients/python",
        "openfeature/contrib/provider/ofrep",
    ) else {
        return;
    };
    let (base, token, _) = serve().await;
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(here("python_provider.py"))
        .args([&base, &token])
        .env("PYTHONPATH", &dir);
    let out = run(cmd).await;
    check_server_side("python", &out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_web_provider_evaluates_in_bulk_and_follows_the_change_stream() {
    let Some(dir) = installed(
        "FEATURE_TEST_OFREP_NODE",
        "target/ofrep-clients/node",
        "node_modules/@openfeature/ofrep-web-provider",
    ) else {
        return;
    };
    let (base, token, flags) = serve().await;
    let mut child = tokio::process::Command::new("node")
        .arg(here("web_provider.cjs"))
        .args([&base, &token])
        .env("NODE_PATH", dir.join("node_modules"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node started");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = next(&mut lines).await;
    let r = &ready["ready"];
    check(
        "web",
        r,
        "targeted",
        json!("dark"),
        "TARGETING_MATCH",
        Value::Null,
    );
    assert_eq!(r["targeted"]["variant"], "dark");
    check("web", r, "bool", json!(true), "STATIC", Value::Null);
    check("web", r, "ratio", json!(0.25), "STATIC", Value::Null);
    check(
        "web",
        r,
        "missing",
        json!(true),
        "ERROR",
        json!("FLAG_NOT_FOUND"),
    );
    check(
        "web",
        r,
        "mismatch",
        json!(false),
        "ERROR",
        json!("TYPE_MISMATCH"),
    );
    // A change of the flags reaches the web provider through the event stream.
    let mut doc = flags.document();
    std::sync::Arc::make_mut(doc.flags.get_mut("ratio").unwrap()).default = Some(json!(0.75));
    flags.replace(doc);
    let changed = next(&mut lines).await;
    assert_eq!(changed["changed"]["value"], 0.75, "{changed}");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

/// The driver's next line, as JSON.
async fn next(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the driver said something within 30 s")
        .unwrap()
        .expect("the driver printed a line");
    serde_json::from_str::<Value>(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
}
