//! `featurectl push` and `history` on an SQLite file, run as child processes: another
//! process's provider sees a push within a second, and pushes racing from several processes
//! are each all or nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature_core::provider::{Provider, Sink};
use feature_sqlite::{FlagStore, ItemKind, SqliteProvider, SqliteStore};
use feature_store::testing::RecordingSink;
use serde_json::json;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn featurectl(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_featurectl"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_from_another_process_is_seen_by_a_provider_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    // A relative URL: the file is in the directory the commands run in.
    let url = format!("sqlite://{}", dir.path().join("feature.db").display());
    let provider = SqliteProvider::builder(&url).build().unwrap();
    let sink = RecordingSink::new();
    provider.start(sink.clone() as Arc<dyn Sink>).await.unwrap();
    assert!(
        sink.snapshot().is_some_and(|s| s.is_empty()),
        "a new file starts empty"
    );

    std::fs::write(
        dir.path().join("flags.yaml"),
        "flags:\n  checkout: {default: v2}\nsegments:\n  beta: {included: [u1]}\n",
    )
    .unwrap();
    let out = featurectl(
        dir.path(),
        &[
            "push",
            "flags.yaml",
            "--to",
            "sqlite://feature.db",
            "--actor",
            "ci",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let pushed = Instant::now();
    assert!(text(&out).contains("+ flag checkout"), "{}", text(&out));
    assert!(
        sink.wait_value(Duration::from_secs(1), "checkout", Some(json!("v2")))
            .await,
        "not seen within 1 s of the push"
    );
    eprintln!("seen {:?} after the push process ended", pushed.elapsed());

    let out = featurectl(
        dir.path(),
        &[
            "history",
            "checkout",
            "--from",
            "sqlite://feature.db",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let entry: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(
        (
            entry["action"].as_str(),
            entry["actor"].as_str(),
            entry["version"].as_u64()
        ),
        (Some("create"), Some("ci"), Some(1))
    );
    provider.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_racing_from_several_processes_are_each_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("feature.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    let n = 6;
    for i in 0..n {
        std::fs::write(
            dir.path().join(format!("p{i}.yaml")),
            format!("flags:\n  own-{i}: {{default: {i}}}\n  shared: {{default: {i}}}\n"),
        )
        .unwrap();
    }
    let children: Vec<_> = (0..n)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_featurectl"))
                .args([
                    "push",
                    &format!("p{i}.yaml"),
                    "--to",
                    &url,
                    "--actor",
                    &format!("ci-{i}"),
                    "--no-delete",
                ])
                .current_dir(dir.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut succeeded = Vec::new();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        if out.status.success() {
            succeeded.push(format!("ci-{i}"));
        } else {
            let t = text(&out);
            assert!(
                t.contains("nothing was written"),
                "a push failed for another reason than the race: {t}"
            );
        }
    }
    eprintln!("pushes that won the race: {succeeded:?}");
    assert!(!succeeded.is_empty(), "at least one push wins");
    // All or nothing across processes: exactly the winners' own flags exist, and the shared
    // flag's log names exactly the winners, one entry each, its version counting them.
    for i in 0..n {
        let own = store
            .row(ItemKind::Flag, &format!("own-{i}"))
            .await
            .unwrap();
        assert_eq!(
            own.is_some(),
            succeeded.contains(&format!("ci-{i}")),
            "own-{i}: {own:?}"
        );
    }
    let history = store.history(ItemKind::Flag, "shared", 100).await.unwrap();
    let mut actors: Vec<String> = history.iter().map(|e| e.actor.clone()).collect();
    actors.sort();
    assert_eq!(actors, succeeded);
    let shared = store.row(ItemKind::Flag, "shared").await.unwrap().unwrap();
    assert_eq!(shared.version, succeeded.len() as u64);
    assert_eq!(history[0].after.as_ref(), Some(&shared.definition));
    assert!(store.verify_audit().await.unwrap().is_intact());

    // `featurectl audit verify` says the same, and finds a row edited behind the store's back.
    let out = featurectl(dir.path(), &["audit", "verify", "--store", &url]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).starts_with("ok: "), "{}", text(&out));
    store.close().await;
    let tamper = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.path().join("feature.db"));
    let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&tamper)
        .await
        .unwrap();
    sqlx::raw_sql(
        "DROP TRIGGER feature_audit_no_update; \
         UPDATE feature_audit SET actor = 'mallory' WHERE id = 1",
    )
    .execute(&mut c)
    .await
    .unwrap();
    drop(c);
    let out = featurectl(dir.path(), &["audit", "verify", "--store", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("broken: "), "{}", text(&out));
    for args in [
        &["audit", "verify", "--store", "sqlite://missing.db"][..],
        &["history", "shared", "--from", "sqlite://missing.db"][..],
    ] {
        let out = featurectl(dir.path(), args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out).contains("no such file"),
            "{args:?}: {}",
            text(&out)
        );
        assert!(
            !dir.path().join("missing.db").exists(),
            "{args:?} created the file"
        );
    }
}

#[test]
fn a_flag_that_cannot_be_read_is_an_error_not_a_deletion() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("flags.yaml"),
        "flags:\n  a: {type: bool}\n  b: {type: bool}\n",
    )
    .unwrap();
    let push = |file: &str| featurectl(dir.path(), &["push", file, "--to", "sqlite://feature.db"]);
    let out = push("flags.yaml");
    assert!(out.status.success(), "{}", text(&out));
    // A typo makes `b` unreadable: the push refuses instead of deleting it.
    std::fs::write(
        dir.path().join("typo.yaml"),
        "flags:\n  a: {type: bool}\n  b: {type: bool, defualt: true}\n",
    )
    .unwrap();
    let out = push("typo.yaml");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("typo.yaml has 1 error(s), nothing was written; first: typo.yaml:3:"),
        "{}",
        text(&out)
    );
    let out = push("flags.yaml");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 created, 0 updated, 0 deleted"),
        "b is still there: {}",
        text(&out)
    );
}
