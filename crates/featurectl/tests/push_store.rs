//! `featurectl push` into a real Redis: all or nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

mod common;

use common::redis_url;
use feature_core::model::Flag;
use feature_redis::{FlagStore, RedisStore};
use std::process::Command;

/// Deletes a test's keys when dropped.
struct Prefix(String, String);

impl Drop for Prefix {
    fn drop(&mut self) {
        if let Ok(mut c) = redis::Client::open(self.0.as_str()).and_then(|c| c.get_connection()) {
            for k in ["flags", "segments", "revs", "version", "fill", "audit"] {
                let _: Result<(), _> = redis::cmd("DEL")
                    .arg(format!("{}:{k}", self.1))
                    .query(&mut c);
            }
        }
    }
}

fn featurectl(dir: &std::path::Path, url: &str, prefix: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_featurectl"))
        .args(["push", "flags.yaml", "--prefix", prefix, "--actor", "ci"])
        .current_dir(dir)
        .env("FEATURE_STORE_URL", url)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn a_push_that_fails_half_way_leaves_the_store_as_it_was() {
    let Some(url) = redis_url() else { return };
    let px = Prefix(
        url.clone(),
        format!("test:ctlpush:{:08x}", fastrand::u32(..)),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(async { RedisStore::new(&url, &px.1).unwrap() });
    let rows = || {
        rt.block_on(async {
            let mut r = store.rows().await.unwrap();
            r.sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
            r
        })
    };
    rt.block_on(async {
        store
            .create(&Flag::boolean("a", false), "alice")
            .await
            .unwrap();
        store
            .create(&Flag::boolean("gone", true), "alice")
            .await
            .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("flags.yaml"),
        "flags:\n  a: {type: bool, default: true}\n  new: {default: 1}\n",
    )
    .unwrap();
    // The store can write items but not their audit entries.
    let mut c = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let audit = format!("{}:audit", px.1);
    let _: () = redis::cmd("DEL").arg(&audit).query(&mut c).unwrap();
    let _: () = redis::cmd("SET")
        .arg(&audit)
        .arg("not a stream")
        .query(&mut c)
        .unwrap();
    let before = rows();
    let (ok, text) = featurectl(dir.path(), &url, &px.1);
    assert!(!ok, "{text}");
    assert!(text.contains("nothing was written"), "{text}");
    assert_eq!(rows(), before, "{text}");

    let _: () = redis::cmd("DEL").arg(&audit).query(&mut c).unwrap();
    let (ok, text) = featurectl(dir.path(), &url, &px.1);
    assert!(ok, "{text}");
    assert!(text.contains("1 created, 1 updated, 1 deleted"), "{text}");
    let keys: Vec<String> = rows().into_iter().map(|r| r.key).collect();
    assert_eq!(keys, ["a", "new"]);
}
