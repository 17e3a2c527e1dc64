//! Helpers of the PostgreSQL tests: the shared server, unique tables, and private throwaway
//! servers that a test may stop and start.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The shared test server's URL, or `None` (with a notice) when it is unreachable outside CI.
pub(crate) fn shared_url() -> Option<String> {
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
    eprintln!("skipping: PostgreSQL is unreachable at {addr} (run scripts/test.sh to start it)");
    None
}

/// A table name no other test uses.
pub(crate) fn unique_table(tag: &str) -> String {
    format!("t_{tag}_{:08x}", fastrand::u32(..))
}

/// Drops every object of a test's table when dropped, even when the test failed.
pub(crate) struct DropTables {
    pub url: String,
    pub table: String,
}

impl Drop for DropTables {
    fn drop(&mut self) {
        let (url, t) = (self.url.clone(), self.table.clone());
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                use sqlx::Connection;
                let Ok(mut c) = sqlx::PgConnection::connect(&url).await else {
                    return;
                };
                let sql = format!(
                    "DROP TABLE IF EXISTS {t}, {t}_segments, {t}_audit, {t}_audit_head, {t}_tokens, {t}_migrations CASCADE; \
                     DROP FUNCTION IF EXISTS {t}_changed() CASCADE; \
                     DROP FUNCTION IF EXISTS {t}_truncated(), {t}_audit_chain(), {t}_audit_guard(), {t}_audit_commit() CASCADE;"
                );
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut c)
                    .await;
            });
        })
        .join();
    }
}

/// A free port on the loopback interface.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A private PostgreSQL server on a free loopback port, in a temporary directory, that the test
/// can stop and start. Stopped and removed when dropped.
pub(crate) struct PrivatePg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    root: bool,
}

impl PrivatePg {
    /// Creates the cluster (not started). `None` when the server binaries are not installed
    /// (a failure under CI).
    pub(crate) fn init() -> Option<PrivatePg> {
        let Some(bin) = bin_dir() else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("PostgreSQL server binaries not found under /usr/lib/postgresql");
            }
            eprintln!("skipping: PostgreSQL server binaries not found");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("feature-pg-")
            .tempdir()
            .expect("tempdir");
        let root = is_root();
        let pg = PrivatePg {
            dir,
            bin,
            port: free_port(),
            root,
        };
        if root {
            run(Command::new("chmod").arg("755").arg(pg.dir.path()));
            std::fs::create_dir(pg.data()).expect("mkdir");
            run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(pg.data()));
        }
        pg.pg(
            "initdb",
            &[
                "-D",
                &pg.data_str(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn data_str(&self) -> String {
        self.data().display().to_string()
    }

    fn pg(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = if self.root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args).current_dir(self.dir.path());
        run(&mut cmd);
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub(crate) fn start(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.data_str()
        );
        let log = self.data().join("server.log").display().to_string();
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data_str(),
                "-o",
                &opts,
                "-l",
                &log,
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
    }

    /// Stops the server the hard way (like a crash): connections are cut.
    pub(crate) fn kill(&self) {
        self.pg(
            "pg_ctl",
            &["-D", &self.data_str(), "-m", "immediate", "-w", "stop"],
        );
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let exe = self.bin.join("pg_ctl");
        let data = self.data_str();
        let mut cmd = if self.root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let _ = cmd
            .args(["-D", &data, "-m", "immediate", "stop"])
            .current_dir(self.dir.path())
            .output();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("cannot run a PostgreSQL tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn exists(p: &Path) -> bool {
    p.exists()
}
