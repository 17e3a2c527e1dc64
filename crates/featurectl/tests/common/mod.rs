//! Helpers shared by the tests that run the real `featurectl` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// What a run of the binary gave.
#[derive(Debug)]
pub(crate) struct Run {
    /// Exit status.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Stdout's lines.
    pub(crate) fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// Runs `featurectl` with `args` in `dir`.
pub(crate) fn featurectl(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_featurectl"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the featurectl binary runs");
    Run {
        code: out.status.code().expect("featurectl exited normally"),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// Writes `text` to `dir/name` and returns the path.
pub(crate) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("the test file is written");
    p
}

/// The test Redis (`FEATURE_TEST_REDIS_URL`, default the local one); `None` (skip) when it is
/// unreachable, a panic when `CI=true`.
/// The shared PostgreSQL test server's URL, or `None` (with a notice) when it is unreachable
/// outside CI; unreachable under `CI=true` fails the test.
pub(crate) fn postgres_url() -> Option<String> {
    let url = std::env::var("FEATURE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/test".into());
    let addr = url.rsplit('@').next()?.split('/').next()?.to_owned();
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

pub(crate) fn redis_url() -> Option<String> {
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
