//! The file provider: live reload, editor-style saves, broken edits and recovery.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature::{Client, Context, ErrorKind, FileProvider, ProviderError, ProviderState};
use std::path::Path;
use std::time::{Duration, Instant};

const ON: &str = "flags:\n  beta:\n    type: bool\n    default: true\n";
const OFF: &str = "flags:\n  beta:\n    type: bool\n    default: false\n";

async fn wait_for(c: &Client, want: bool, within: Duration) -> Duration {
    let start = Instant::now();
    while start.elapsed() < within {
        if c.bool(&Context::new("u"), "beta", !want) == want {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("flag did not become {want} within {within:?}");
}

async fn start(path: &Path) -> Client {
    Client::builder()
        .provider(FileProvider::new(path))
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_edit_is_live_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("features.yaml");
    std::fs::write(&path, OFF).unwrap();
    let c = start(&path).await;
    let mut changes = c.subscribe();
    assert!(!c.bool(&Context::new("u"), "beta", true));
    std::fs::write(&path, ON).unwrap();
    let took = wait_for(&c, true, Duration::from_secs(1)).await;
    assert!(took < Duration::from_secs(1));
    assert_eq!(changes.recv().await.unwrap().keys, vec!["beta".to_string()]);
    assert_eq!(c.provider_status().state, ProviderState::Ready);
}

#[tokio::test]
async fn write_to_temp_then_rename_saves_are_seen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("features.json");
    std::fs::write(
        &path,
        r#"{"flags": {"beta": {"type": "bool", "default": false}}}"#,
    )
    .unwrap();
    let c = start(&path).await;
    for (i, want) in [true, false, true].into_iter().enumerate() {
        let tmp = dir.path().join(format!(".features.json.swp{i}"));
        std::fs::write(
            &tmp,
            format!(r#"{{"flags": {{"beta": {{"type": "bool", "default": {want}}}}}}}"#),
        )
        .unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        wait_for(&c, want, Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn a_broken_edit_keeps_the_last_good_flags_and_fixing_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("features.yaml");
    std::fs::write(&path, ON).unwrap();
    let c = start(&path).await;

    // Unreadable YAML: previous flags stay, the error names file, line and column.
    std::fs::write(
        &path,
        "flags:\n  beta:\n    type: bool\n    default: [true\n",
    )
    .unwrap();
    let status = wait_status(&c, ProviderState::Degraded).await;
    let err = status.last_error.expect("error reported").0;
    let msg = err.to_string();
    assert!(msg.contains("features.yaml:"), "{msg}");
    assert!(
        matches!(&*err, ProviderError::Parse(p) if p.line >= 4),
        "{msg}"
    );
    assert!(
        c.bool(&Context::new("u"), "beta", false),
        "previous flags still served"
    );

    // A flag-level error (invalid regex) is a broken edit too, located on the regex's line.
    std::fs::write(
        &path,
        "flags:\n  beta:\n    type: bool\n    default: false\n    rules:\n      - clauses:\n          - attribute: email\n            operator: matches\n            values: [\"(unclosed\"]\n        variation: 1\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let status = c.provider_status();
    assert_eq!(status.state, ProviderState::Degraded);
    let msg = status.last_error.unwrap().0.to_string();
    assert!(msg.contains("features.yaml:9:"), "{msg}");
    assert!(msg.contains("beta: invalid regular expression"), "{msg}");
    assert!(
        c.bool(&Context::new("u"), "beta", false),
        "previous flags still served"
    );

    // Fixing the file recovers.
    std::fs::write(&path, OFF).unwrap();
    wait_for(&c, false, Duration::from_secs(1)).await;
    let status = wait_status(&c, ProviderState::Ready).await;
    assert!(status.last_error.is_none());
}

async fn wait_status(c: &Client, want: ProviderState) -> feature::ProviderStatus {
    let start = Instant::now();
    loop {
        let s = c.provider_status();
        if s.state == want {
            return s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "state {:?}, want {want:?}",
            s.state
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_missing_or_unreadable_file_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let missing = Client::builder()
        .provider(FileProvider::new(dir.path().join("nope.yaml")))
        .build()
        .await;
    assert!(missing.is_err());
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "flags: [").unwrap();
    let err = Client::builder()
        .provider(FileProvider::new(&bad))
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bad.yaml:"), "{err}");
}

#[tokio::test]
async fn at_start_a_bad_flag_is_malformed_and_the_others_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("features.yaml");
    std::fs::write(
        &path,
        "flags:\n  good:\n    default: true\n  bad:\n    type: bool\n    rules:\n      - clauses: [{attribute: a, operator: matches, values: [\"(\"]}]\n        variation: 1\n  typo:\n    defualt: true\n  loop-a:\n    prerequisites: [{key: loop-b, variation: 1}]\n    default: true\n  loop-b:\n    prerequisites: [{key: loop-a, variation: 1}]\n    default: true\n",
    )
    .unwrap();
    let c = start(&path).await;
    let u = Context::new("u");
    assert!(c.bool(&u, "good", false));
    for key in ["bad", "typo", "loop-a", "loop-b"] {
        assert_eq!(
            c.variation(&u, key).error_kind(),
            Some(ErrorKind::MalformedFlag),
            "{key}"
        );
    }
    assert_eq!(c.provider_status().state, ProviderState::Degraded);
}

#[tokio::test]
async fn reverting_a_broken_edit_to_the_served_text_clears_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("features.yaml");
    std::fs::write(&path, ON).unwrap();
    let c = start(&path).await;
    for broken in [
        "flags: [unclosed",
        "flags:\n  beta:\n    type: bool\n    default: 3\n",
    ] {
        std::fs::write(&path, broken).unwrap();
        let start = Instant::now();
        while c.provider_status().state != ProviderState::Degraded {
            assert!(start.elapsed() < Duration::from_secs(2), "never degraded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            c.bool(&Context::new("u"), "beta", false),
            "last good flags kept"
        );
        // The editor's undo: byte for byte the text being served.
        std::fs::write(&path, ON).unwrap();
        let start = Instant::now();
        while c.provider_status().state != ProviderState::Ready {
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "still {:?} after the revert",
                c.provider_status()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(c.provider_status().last_error.is_none());
    }
}

#[tokio::test]
async fn a_write_that_loses_every_flag_is_suspect_unless_it_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("features.yaml");
    std::fs::write(&path, ON).unwrap();
    let c = start(&path).await;
    // An empty file, `> file` half-way, a document cut after its first line.
    for partial in ["", "\n", "flags:\n", "# flags of the checkout team\n"] {
        std::fs::write(&path, ON).unwrap();
        wait_for(&c, true, Duration::from_secs(2)).await;
        std::fs::write(&path, partial).unwrap();
        let start = Instant::now();
        while c.provider_status().state != ProviderState::Degraded {
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "{partial:?} taken as is"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            c.bool(&Context::new("u"), "beta", false),
            "{partial:?}: flags lost"
        );
        let why = c.provider_status().last_error.unwrap().0.to_string();
        assert!(why.contains("no flags"), "{why}");
    }
    // Said on purpose: every flag goes.
    std::fs::write(&path, "flags: {}\n").unwrap();
    let start = Instant::now();
    while c.provider_status().state != ProviderState::Ready || !c.snapshot().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            c.provider_status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!c.bool(&Context::new("u"), "beta", false));
}
