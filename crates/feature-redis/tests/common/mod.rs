//! What the Redis tests share: the servers' URLs (a test fails, not skips, when a server is
//! missing and `CI=true`), key prefixes of their own, and a private `redis-server`.
#![allow(dead_code, unreachable_pub)] // each test binary uses its own part

use std::time::Duration;

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn redis_url() -> Option<String> {
    let url =
        std::env::var("FEATURE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let addr = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or("127.0.0.1:6379")
        .to_owned();
    let up = addr
        .parse()
        .ok()
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    if up {
        return Some(url);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("Redis is unreachable at {url} (CI=true: the test must not skip)");
    }
    eprintln!("skipping: Redis is unreachable at {url}");
    None
}

pub fn pg_url() -> Option<String> {
    let url = std::env::var("FEATURE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/test".into());
    let addr = url
        .rsplit('@')
        .next()
        .and_then(|h| h.split('/').next())
        .unwrap_or("127.0.0.1:5432")
        .to_owned();
    let up = addr
        .parse()
        .ok()
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    if up {
        return Some(url);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("PostgreSQL is unreachable at {addr} (CI=true: the test must not skip)");
    }
    eprintln!("skipping: PostgreSQL is unreachable at {addr}");
    None
}

/// A key prefix no other test uses; its keys are deleted when dropped.
pub struct Prefix {
    pub url: String,
    pub prefix: String,
}

impl Prefix {
    pub fn new(url: &str, tag: &str) -> Prefix {
        Prefix {
            url: url.into(),
            prefix: format!("test:{tag}:{:08x}", fastrand::u32(..)),
        }
    }

    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        if let Ok(c) = redis::Client::open(self.url.as_str()) {
            if let Ok(mut c) = c.get_connection() {
                for k in [
                    "flags",
                    "segments",
                    "revs",
                    "version",
                    "fill",
                    "audit",
                    "tokens",
                    "tokens:seq",
                ] {
                    let _: Result<(), _> = redis::cmd("DEL").arg(self.key(k)).query(&mut c);
                }
            }
        }
    }
}

/// A private `redis-server` with append-only persistence, that a test stops and restarts.
pub struct PrivateRedis {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    pub fn new() -> Option<PrivateRedis> {
        if std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("redis-server is not installed");
            }
            eprintln!("skipping: redis-server is not installed");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Some(PrivateRedis {
            dir: tempfile::tempdir().unwrap(),
            port,
            child: None,
        })
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn start(&mut self) {
        let port = self.port.to_string();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = std::time::Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "redis did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
