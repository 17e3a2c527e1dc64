//! `featurectl serve` as a child process: it answers `/health` without a token and
//! authenticated requests over a real Redis store (the bootstrap token creates a token, which
//! writes a flag), serves a flag file read-only (405), and stops gracefully on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

mod common;
mod server_process;

use common::{redis_url, write};
use serde_json::Value;
use server_process::{header, http, serve, BOOT};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn serve_over_a_store_answers_health_and_authenticated_requests() {
    let Some(url) = redis_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("test:serve:{:08x}", fastrand::u32(..));
    let mut served = serve(dir.path(), &["--store", &url, "--prefix", &prefix]);
    let port = served.port;

    let (status, _, body) = http(port, "GET", "/health", &[], "");
    assert_eq!(status, 200, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["store"]["name"], "redis");
    assert_eq!(health["store"]["reachable"], true);
    assert!(!body.contains(&url), "no store URL in the health report");

    let (status, h, _) = http(port, "GET", "/api/v1/flags", &[], "");
    assert_eq!(status, 401);
    assert_eq!(header(&h, "content-type"), Some("application/problem+json"));

    let bearer = format!("Bearer {BOOT}");
    let (status, _, body) = http(
        port,
        "POST",
        "/api/v1/tokens",
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        r#"{"name": "ci", "scope": "write"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let token = serde_json::from_str::<Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bearer = format!("Bearer {token}");
    let (status, h, body) = http(
        port,
        "PUT",
        "/api/v1/flags/beta",
        &[
            ("Authorization", &bearer),
            ("If-None-Match", "*"),
            ("Content-Type", "application/json"),
        ],
        r#"{"type": "bool", "default": true}"#,
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(header(&h, "etag"), Some("\"1\""));
    let (status, _, body) = http(
        port,
        "GET",
        "/api/v1/flags/beta/history",
        &[("Authorization", &bearer)],
        "",
    );
    assert_eq!(status, 200);
    let history: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(history["items"][0]["actor"], "ci", "{body}");
    // The server's own client follows the store.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, body) = http(
            port,
            "POST",
            "/api/v1/evaluate",
            &[
                ("Authorization", &bearer),
                ("Content-Type", "application/json"),
            ],
            r#"{"flags": ["beta"], "context": {"key": "u"}}"#,
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        if v["evaluations"][0]["value"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "{body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _, metrics) = http(port, "GET", "/metrics", &[("Authorization", &bearer)], "");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("feature_server_http_requests_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("feature_flags_total"),
        "the client's metrics too: {metrics}"
    );

    // SIGTERM: a graceful stop, exit 0.
    let pid = served.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = served.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "featurectl serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    std::thread::sleep(Duration::from_millis(100));
    let logs = served.logs();
    assert!(
        logs.contains("/api/v1/flags/beta") && logs.contains("status=201"),
        "request logs: {logs}"
    );
    assert!(!logs.contains(&token[22..]), "no token in the logs");
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

#[test]
fn serve_over_a_file_is_read_only() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "flags.yaml",
        "flags:\n  beta: {type: bool, default: true}\n",
    );
    let served = serve(dir.path(), &["--file", "flags.yaml"]);
    let bearer = format!("Bearer {BOOT}");
    let (status, _, body) = http(
        served.port,
        "GET",
        "/api/v1/flags/beta",
        &[("Authorization", &bearer)],
        "",
    );
    assert_eq!(status, 200, "{body}");
    let (status, h, body) = http(
        served.port,
        "PUT",
        "/api/v1/flags/beta",
        &[("Authorization", &bearer), ("If-Match", "*")],
        r#"{"type": "bool"}"#,
    );
    assert_eq!(status, 405, "{body}");
    assert_eq!(header(&h, "content-type"), Some("application/problem+json"));
    assert!(
        body.contains("flags come from the file flags.yaml"),
        "{body}"
    );
}

#[test]
fn serve_without_a_store_or_a_file_starts_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), &[]);
    let (status, _, body) = http(served.port, "GET", "/health", &[], "");
    assert_eq!(status, 200, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["store"]["name"], "sqlite", "{body}");
    assert_eq!(health["store"]["reachable"], true, "{body}");
    assert!(dir.path().join("feature.db").exists());
    let bearer = format!("Bearer {BOOT}");
    let (status, h, body) = http(
        served.port,
        "PUT",
        "/api/v1/flags/beta",
        &[("Authorization", &bearer), ("If-None-Match", "*")],
        r#"{"type": "bool", "default": true}"#,
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(header(&h, "etag"), Some("\"1\""));
}
