//! Segment keys from plain text files (`includedFile`, `excludedFile`): `validate` reads them
//! relative to the flag file and reports a file it cannot use on the segment's line; `push`
//! writes the keys themselves into SQLite, PostgreSQL and Redis stores (200 000 keys each),
//! never the file's name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

mod common;

use common::{featurectl, postgres_url, redis_url, write};
use feature_store::{FlagStore, ItemKind};
use std::path::Path;

const KEYS: usize = 200_000;

fn flag_file(included: &str) -> String {
    format!(
        "flags:\n  beta-only:\n    type: bool\n    default: false\n    rules:\n      - clauses: [{{attribute: key, operator: segmentMatch, values: [big]}}]\n        variation: 1\n    fallthrough: {{variation: 0}}\nsegments:\n  big:\n    includedFile: {included}\n    excludedFile: keys/excluded.txt\n"
    )
}

/// A directory with `flags.yaml`, `keys/big.txt` (KEYS keys, a comment, CRLF line ends) and
/// `keys/excluded.txt`.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    let mut text = String::from("# the big segment\r\n\r\n");
    for i in 0..KEYS {
        text.push_str(&format!("user-{i:08}\r\n"));
    }
    write(dir.path(), "keys/big.txt", &text);
    write(dir.path(), "keys/excluded.txt", "user-99999999\n");
    write(dir.path(), "flags.yaml", &flag_file("keys/big.txt"));
    dir
}

#[test]
fn validate_reads_key_files_relative_to_the_flag_file() {
    let dir = project();
    // Run from elsewhere: the files are found beside the flag file, not in the current directory.
    let flags = dir.path().join("flags.yaml");
    let r = featurectl(
        Path::new("/"),
        &["validate", "--verbose", flags.to_str().unwrap()],
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
    let eval = |key: &str| {
        let context = format!("{{\"key\": \"{key}\"}}");
        let r = featurectl(
            dir.path(),
            &[
                "eval",
                "--file",
                "flags.yaml",
                "--flag",
                "beta-only",
                "--context",
                &context,
                "--json",
            ],
        );
        assert_eq!(r.code, 0, "{r:?}");
        let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
        v["value"].clone()
    };
    assert_eq!(
        eval("user-00000042"),
        serde_json::json!(true),
        "in the file"
    );
    assert_eq!(
        eval(&format!("user-{:08}", KEYS - 1)),
        serde_json::json!(true),
        "last line"
    );
    assert_eq!(eval("nobody"), serde_json::json!(false));
}

#[test]
fn key_files_that_cannot_be_used_are_errors_on_the_segment_line() {
    let dir = project();
    write(dir.path().parent().unwrap(), "outside.txt", "user-1\n");
    for (path, expect) in [
        (
            "keys/missing.txt",
            "cannot read the key file `keys/missing.txt`",
        ),
        (
            "../outside.txt",
            "must be a path relative to the flag file's directory",
        ),
        (
            "/etc/hostname",
            "must be a path relative to the flag file's directory",
        ),
    ] {
        write(dir.path(), "flags.yaml", &flag_file(path));
        let r = featurectl(dir.path(), &["validate", "flags.yaml"]);
        assert_eq!(r.code, 1, "{path}: {r:?}");
        let line = r
            .lines()
            .into_iter()
            .find(|l| l.contains(expect))
            .unwrap_or_else(|| panic!("{path}: {r:?}"));
        assert!(
            line.starts_with("flags.yaml:11:") && line.contains("segment big"),
            "{path}: located on the includedFile line: {line}"
        );
    }
    // A symbolic link leading out of the directory is refused too.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("keys/link.txt")).unwrap();
        write(dir.path(), "flags.yaml", &flag_file("keys/link.txt"));
        let r = featurectl(dir.path(), &["validate", "flags.yaml"]);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.stdout.contains("must be a path relative"), "{r:?}");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Pushes the project into the store at `url` and checks the segment's row: the keys, in order,
/// without the file names.
fn push_and_read_back(
    rt: &tokio::runtime::Runtime,
    url: &str,
    extra: &[&str],
    store: &dyn FlagStore,
) {
    let dir = project();
    let mut args = vec!["push", "flags.yaml", "--to", url, "--actor", "ci"];
    args.extend_from_slice(extra);
    let r = featurectl(dir.path(), &args);
    assert_eq!(r.code, 0, "{r:?}");
    let row = rt
        .block_on(store.row(ItemKind::Segment, "big"))
        .unwrap()
        .expect("the segment is in the store");
    let included = row.definition["included"].as_array().unwrap();
    assert_eq!(included.len(), KEYS);
    assert_eq!(included[0], "user-00000000");
    assert_eq!(included[KEYS - 1], format!("user-{:08}", KEYS - 1));
    assert_eq!(
        row.definition["excluded"],
        serde_json::json!(["user-99999999"])
    );
    assert!(
        row.definition.get("includedFile").is_none(),
        "{:?}",
        row.definition.get("includedFile")
    );
    assert!(row.definition.get("excludedFile").is_none());
}

#[test]
fn push_stores_the_keys_in_sqlite() {
    let db = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", db.path().join("feature.db").display());
    let rt = runtime();
    let _in = rt.enter();
    let store = feature_sqlite::SqliteStore::lazy(&url).unwrap();
    push_and_read_back(&rt, &url, &[], &store);
}

#[test]
fn push_stores_the_keys_in_redis() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("test:keyfiles:{:08x}", fastrand::u32(..));
    let rt = runtime();
    let _in = rt.enter();
    let store = feature_redis::RedisStore::new(&url, &prefix).unwrap();
    push_and_read_back(&rt, &url, &["--prefix", &prefix], &store);
    if let Ok(mut c) = redis::Client::open(url.as_str()).and_then(|c| c.get_connection()) {
        for k in ["flags", "segments", "revs", "version", "fill", "audit"] {
            let _: Result<(), _> = redis::cmd("DEL").arg(format!("{prefix}:{k}")).query(&mut c);
        }
    }
}

#[test]
fn push_stores_the_keys_in_postgres() {
    let Some(url) = postgres_url() else { return };
    let table = format!("t_keyfiles_{:08x}", fastrand::u32(..));
    let dir = tempfile::tempdir().unwrap();
    let r = featurectl(dir.path(), &["migrate", "--table", &table, "--store", &url]);
    let rt = runtime();
    let _in = rt.enter();
    let store = feature_postgres::PostgresStore::lazy(&url, &table).unwrap();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert_eq!(r.code, 0, "{r:?}");
        push_and_read_back(&rt, &url, &["--table", &table], &store);
    }));
    let t = &table;
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        let drop = format!(
            "DROP TABLE IF EXISTS {t}, {t}_segments, {t}_audit, {t}_audit_head, {t}_tokens, {t}_migrations CASCADE; \
             DROP FUNCTION IF EXISTS {t}_changed(), {t}_truncated(), {t}_audit_chain(), {t}_audit_guard(), {t}_audit_commit() CASCADE"
        );
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&mut c).await;
    });
    if let Err(e) = outcome {
        std::panic::resume_unwind(e);
    }
}
