//! A one-flag write reaches the provider's subscribers as a snapshot compiled from the
//! previous one: every other flag is the very same compiled flag, and the snapshot names the
//! changed key without comparing documents.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature_core::model::Flag;
use feature_core::provider::{Provider, Sink};
use feature_sqlite::{FlagStore, SqliteProvider, SqliteStore};
use feature_store::testing::RecordingSink;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn a_one_flag_write_publishes_a_snapshot_sharing_every_other_flag() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("flags.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    for i in 0..50 {
        store
            .create(&Flag::constant(format!("f{i}"), json!(i)), "test")
            .await
            .unwrap();
    }
    let provider = SqliteProvider::builder(&url)
        .poll_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    let sink = RecordingSink::new();
    provider.start(sink.clone() as Arc<dyn Sink>).await.unwrap();
    let before = sink.snapshot().expect("the first load is published");
    assert_eq!(before.len(), 50);
    store
        .update(&Flag::constant("f7", json!(700)), "test")
        .await
        .unwrap();
    assert!(
        sink.wait_value(Duration::from_secs(10), "f7", Some(json!(700)))
            .await
    );
    let after = sink.snapshot().unwrap();
    for i in 0..50 {
        let key = format!("f{i}");
        assert_eq!(after.shares_flag(&before, &key), key != "f7", "{key}");
    }
    assert_eq!(after.changed_keys(&before), ["f7"]);
    provider.close().await;
    store.close().await;
}
