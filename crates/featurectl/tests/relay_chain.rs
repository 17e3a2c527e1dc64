//! Relay chaining with the binary: a central `featurectl serve` over SQLite, a regional
//! `featurectl serve --upstream` following it, and a `RelayProvider` client of the regional
//! one seeing a write made on the central one within 1 s.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature::{Client, Context};
use feature_relay::RelayProvider;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CENTRAL_TOKEN: &str = "central-admin-token-0123456789";
const REGIONAL_TOKEN: &str = "regional-admin-token-0123456789";

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `featurectl serve` on a free port with `args` and `env`, once it answers `/health`.
fn serve(args: &[&str], env: &[(&str, &str)]) -> (Served, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_featurectl"));
    cmd.args(["serve", "--listen", &listen])
        .args(args)
        .env_remove("FEATURE_SERVER_STORE")
        .env_remove("FEATURE_SERVER_FILE")
        .env_remove("FEATURE_SERVER_UPSTREAM")
        .env_remove("FEATURE_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let served = Served(cmd.spawn().expect("featurectl serve started"));
    let start = Instant::now();
    while http(&listen, "GET", "/health", "", "").0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{listen} never came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (served, listen)
}

/// A request: the status (0 when the server cannot be reached).
fn http(addr: &str, method: &str, path: &str, extra: &str, body: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_the_central_server_reaches_a_client_of_a_regional_relay_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("flags.db").display());
    let (_central, central) = serve(
        &["--store", &store],
        &[("FEATURE_SERVER_ADMIN_TOKEN", CENTRAL_TOKEN)],
    );
    let auth = format!("Authorization: Bearer {CENTRAL_TOKEN}\r\n");
    let put = |value: &str, pre: &str| {
        http(
            &central,
            "PUT",
            "/api/v1/flags/banner",
            &format!("{auth}{pre}\r\n"),
            &json!({"default": value}).to_string(),
        )
        .0
    };
    assert_eq!(put("v1", "If-None-Match: *"), 201);
    let upstream = format!("http://{central}");
    let (_regional, regional) = serve(
        &["--upstream", &upstream],
        &[
            ("FEATURE_TOKEN", CENTRAL_TOKEN),
            ("FEATURE_SERVER_ADMIN_TOKEN", REGIONAL_TOKEN),
        ],
    );
    // The regional server is read-only.
    let (status, _) = http(
        &regional,
        "PUT",
        "/api/v1/flags/banner",
        &format!("Authorization: Bearer {REGIONAL_TOKEN}\r\nIf-Match: *\r\n"),
        "{}",
    );
    assert_eq!(status, 405);
    let client = Client::builder()
        .provider(
            RelayProvider::builder(format!("http://{regional}"))
                .token(REGIONAL_TOKEN)
                .build()
                .unwrap(),
        )
        .build()
        .await
        .unwrap();
    let user = Context::new("u-1");
    let seen = |want: &str, limit: Duration| {
        let client = client.clone();
        let user = user.clone();
        let want = json!(want);
        async move {
            let start = Instant::now();
            while start.elapsed() < limit {
                if client.variation(&user, "banner").value == want {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            false
        }
    };
    assert!(seen("v1", Duration::from_secs(10)).await, "the first state");
    for v in ["v2", "v3"] {
        assert_eq!(put(v, "If-Match: *"), 200);
        assert!(
            seen(v, Duration::from_secs(1)).await,
            "{v}: central → regional → client within 1 s"
        );
    }
    client.close().await;
}
