//! `Client::new` with the SQLite provider, configured from the environment's variables
//! (crate feature `sqlite`): a write through another store on the file is seen within a second.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run
#![cfg(feature = "sqlite")]

use feature::providers::sqlite::{FlagStore, SqliteStore};
use feature::{Client, Context, Flag};
use std::time::{Duration, Instant};

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_new_builds_the_sqlite_provider_from_config() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("feature.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    store
        .create(&Flag::boolean("from-file-db", true), "test")
        .await
        .unwrap();
    let c = Client::new(
        common::config(&[("FEATURE_PROVIDER", "sqlite"), ("FEATURE_SQLITE_URL", &url)]).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(c.provider_name(), "sqlite");
    let user = Context::new("u");
    assert!(c.bool(&user, "from-file-db", false));

    let written = Instant::now();
    store
        .update(&Flag::boolean("from-file-db", false), "test")
        .await
        .unwrap();
    while c.bool(&user, "from-file-db", false) {
        assert!(
            written.elapsed() < Duration::from_secs(1),
            "the write was not seen within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.close().await;
}

#[tokio::test]
async fn a_missing_or_in_memory_sqlite_url_is_a_configuration_error() {
    for vars in [
        &[("FEATURE_PROVIDER", "sqlite")][..],
        &[
            ("FEATURE_PROVIDER", "sqlite"),
            ("FEATURE_SQLITE_URL", "sqlite::memory:"),
        ][..],
        &[
            ("FEATURE_PROVIDER", "sqlite"),
            ("FEATURE_SQLITE_URL", "postgres://db/app"),
        ][..],
    ] {
        let e = Client::new(common::config(vars).unwrap())
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("FEATURE_SQLITE_URL"),
            "{vars:?}: {e}"
        );
    }
}
