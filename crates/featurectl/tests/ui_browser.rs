//! The web UI in a real browser: `featurectl serve` on a loopback port over a SQLite store,
//! Chromium driven by playwright-core (`crates/feature-ui/tests/browser/e2e.mjs`), axe-core
//! scans. After each step the script asks this test (a `CHECK` line on its stdout) whether an
//! application `Client` on the same store sees the new behaviour; the answer (`ok` or why not)
//! goes back on its stdin, within 1 s.
//!
//! Needs Node 20+, the npm packages of `crates/feature-ui/tests/browser` (installed here with
//! `npm ci` when missing) and Chromium (`FEATURE_TEST_CHROMIUM`, or `chromium` on the `PATH`;
//! `scripts/test.sh` installs it). Without them the test fails: it is never skipped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature::{Client, Context};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN: &str = "ui-test-bootstrap-admin-token-0123456789";

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("FEATURE_TEST_CHROMIUM") {
        return PathBuf::from(p);
    }
    on_path("chromium").unwrap_or_else(|| {
        panic!(
            "Chromium is missing: run scripts/test.sh (installs it) or set FEATURE_TEST_CHROMIUM"
        )
    })
}

fn npm_packages(dir: &Path) {
    if dir.join("node_modules/playwright-core").is_dir()
        && dir.join("node_modules/axe-core").is_dir()
    {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .status()
        .expect("npm (Node 20+) is needed for the browser tests");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "featurectl serve did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `client` serves what `what` says: `value` for `context`, or `value` to about
/// `percent` % of 2000 contexts `user-0`..
fn serves(client: &Client, what: &Value) -> Result<(), String> {
    let flag = what["flag"].as_str().ok_or("no flag")?;
    let want = &what["value"];
    if let Some(ctx) = what.get("context") {
        let ctx = Context::from_json(ctx).map_err(|e| e.to_string())?;
        let got = client.variation(&ctx, flag).value;
        return match &got == want {
            true => Ok(()),
            false => Err(format!("{flag} serves {got}, not {want}")),
        };
    }
    let percent = what["percent"].as_f64().ok_or("no percent")?;
    let n = 2000;
    let hits = (0..n)
        .filter(|i| {
            let ctx = Context::new(format!("user-{i}"));
            client.variation(&ctx, flag).value == *want
        })
        .count();
    let share = 100.0 * hits as f64 / n as f64;
    match (share - percent).abs() <= 4.0 {
        true => Ok(()),
        false => Err(format!(
            "{flag} serves {want} to {share} %, not {percent} %"
        )),
    }
}

#[test]
fn the_web_ui_in_chromium() {
    let browser_dir = repo().join("crates/feature-ui/tests/browser");
    npm_packages(&browser_dir);
    let chromium = chromium();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("feature.db").display());
    let port = free_port();
    let _server = Killed(
        Command::new(env!("CARGO_BIN_EXE_featurectl"))
            .args([
                "serve",
                "--store",
                &url,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .env("FEATURE_SERVER_ADMIN_TOKEN", ADMIN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("featurectl serve starts"),
    );
    wait_for_port(port);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let client = rt.block_on(async {
        let provider = feature_sqlite::SqliteProvider::new(&url).expect("the provider");
        Client::builder()
            .provider(provider)
            .build()
            .await
            .expect("the application client")
    });

    // Seed the example flags the list and the debugger show (as featurectl push would).
    let status = Command::new(env!("CARGO_BIN_EXE_featurectl"))
        .arg("push")
        .arg(repo().join("crates/feature/examples/flags/examples.yaml"))
        .args(["--to", &url, "--actor", "demo"])
        .status()
        .expect("featurectl push");
    assert!(status.success(), "featurectl push failed");

    let mut node = Killed(
        Command::new("node")
            .arg(browser_dir.join("e2e.mjs"))
            .current_dir(&browser_dir)
            .env("UI_BASE", format!("http://127.0.0.1:{port}"))
            .env("ADMIN_TOKEN", ADMIN)
            .env("CHROMIUM", &chromium)
            .env("FEATURECTL", env!("CARGO_BIN_EXE_featurectl"))
            .env("SCREENSHOTS", repo().join("docs/screenshots"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node (20+) runs the browser script"),
    );
    let mut stdin = node.0.stdin.take().expect("stdin");
    let stdout = BufReader::new(node.0.stdout.take().expect("stdout"));
    let mut checks = 0;
    let mut done = None;
    for line in stdout.lines() {
        let line = line.expect("a line from the script");
        if let Some(json) = line.strip_prefix("CHECK ") {
            let what: Value = serde_json::from_str(json).expect("a CHECK line is JSON");
            let deadline = Instant::now() + Duration::from_secs(1);
            let answer = loop {
                match serves(&client, &what) {
                    Ok(()) => break "ok".to_owned(),
                    Err(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(e) => break format!("not within 1 s: {e}"),
                }
            };
            checks += 1;
            writeln!(stdin, "{answer}").expect("answer the script");
        } else if let Some(pages) = line.strip_prefix("DONE ") {
            done = Some(pages.to_owned());
        } else {
            println!("{line}");
        }
    }
    let status = node.0.wait().expect("the script ends");
    assert!(status.success(), "the browser script failed ({status})");
    let pages = done.expect("the script finished every step");
    assert!(
        checks >= 13,
        "only {checks} checks by the application client"
    );
    println!("axe scanned {pages}; {checks} client checks");
    rt.block_on(client.close());
}

/// One HTTP/1.1 request on loopback: status and body.
fn http(port: u16, request: &str) -> (u16, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(request.as_bytes()).expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn serve_demo_prints_a_token_that_signs_in() {
    let port = free_port();
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_featurectl"))
            .args(["serve", "--demo", "--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("featurectl serve --demo starts"),
    );
    let mut lines = BufReader::new(child.0.stdout.take().expect("stdout")).lines();
    let mut printed = Vec::new();
    let token = loop {
        let line = lines
            .next()
            .expect("the demo prints its token")
            .expect("a line");
        if line.starts_with("feat_") {
            break line;
        }
        printed.push(line);
    };
    let url = format!("http://127.0.0.1:{port}/ui/");
    assert!(printed.iter().any(|l| l.contains(&url)), "{printed:?}");
    let body = format!("{{\"token\":\"{token}\"}}");
    let (status, answer) = http(
        port,
        &format!(
            "POST /ui/session HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"scope\":\"admin\""), "{answer}");
    assert!(!answer.contains(&token));
    // the example flags are in the store, written by `demo`
    let (status, flags) = http(
        port,
        &format!("GET /api/v1/flags/new-checkout/history HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(status, 200, "{flags}");
    assert!(flags.contains("\"actor\":\"demo\""), "{flags}");
}
