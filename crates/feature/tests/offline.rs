//! `FEATURE_OFFLINE=true` means no network: a client built from configuration with a local
//! provider (file, memory) serves its flags as usual, while a remote one is not contacted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

mod common;

use common::config;
use feature::{Client, Context, ErrorKind};

#[tokio::test]
async fn offline_file_provider_serves_its_flags() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.yaml");
    std::fs::write(
        &path,
        "flags:\n  local-flag:\n    type: string\n    enabled: true\n    variants: [{value: from-file}]\n    fallthrough: {variation: 0}\n",
    )
    .unwrap();
    let path = path.to_str().unwrap();
    for offline in ["true", "false"] {
        let cfg = config(&[
            ("FEATURE_PROVIDER", "file"),
            ("FEATURE_FILE_PATH", path),
            ("FEATURE_FILE_WATCH", "false"),
            ("FEATURE_OFFLINE", offline),
        ])
        .unwrap();
        let client = Client::new(cfg).await.unwrap();
        assert_eq!(
            client.string(&Context::new("u"), "local-flag", "default"),
            "from-file",
            "offline={offline}"
        );
        client.close().await;
    }
}

#[cfg(feature = "unleash")]
#[tokio::test]
async fn offline_remote_provider_is_not_contacted() {
    // Nothing listens on this port: an online client would fail to start.
    let cfg = config(&[
        ("FEATURE_PROVIDER", "unleash"),
        ("UNLEASH_URL", "http://127.0.0.1:9/api"),
        ("UNLEASH_API_TOKEN", "t"),
        ("FEATURE_OFFLINE", "true"),
    ])
    .unwrap();
    let client = Client::new(cfg).await.unwrap();
    let e = client.variation(&Context::new("u"), "anything");
    assert_eq!(e.error_kind(), Some(ErrorKind::ClientNotReady));
    client.close().await;
}
