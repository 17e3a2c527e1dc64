//! The file provider with segments whose keys are in key files: the keys are read relative to
//! the flag file, editing a key file (in a subdirectory) reloads the flags, a key file that
//! cannot be used degrades the provider and keeps the last good flags, and files too large or
//! outside the directory are refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature::engine::key_file::MAX_BYTES;
use feature::engine::{parse_document, Format, Severity};
use feature::providers::key_files::read_key_files;
use feature::{Client, Context, FileProvider, ProviderError, ProviderState};
use std::path::Path;
use std::time::{Duration, Instant};

const FLAGS: &str = "flags:
  beta-only:
    type: bool
    default: false
    rules:
      - clauses: [{attribute: key, operator: segmentMatch, values: [beta]}]
        variation: 1
    fallthrough: {variation: 0}
segments:
  beta:
    includedFile: keys/beta.txt
";

fn on(c: &Client, key: &str) -> bool {
    c.bool(&Context::new(key), "beta-only", false)
}

async fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < Duration::from_secs(3), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn project(keys: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/beta.txt"), keys).unwrap();
    std::fs::write(dir.path().join("flags.yaml"), FLAGS).unwrap();
    dir
}

async fn start(path: &Path) -> Client {
    Client::builder()
        .provider(FileProvider::new(path).debounce(Duration::from_millis(20)))
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_a_key_file_reloads_the_segment() {
    let dir = project("u1\n");
    let c = start(&dir.path().join("flags.yaml")).await;
    assert_eq!(c.provider_status().state, ProviderState::Ready);
    assert!(on(&c, "u1") && !on(&c, "u2"));
    std::fs::write(dir.path().join("keys/beta.txt"), "u1\nu2\n").unwrap();
    eventually("the new key is a member", || on(&c, "u2")).await;
    // Saved by rename, as editors do.
    std::fs::write(dir.path().join("keys/.beta.txt.tmp"), "u2\n").unwrap();
    std::fs::rename(
        dir.path().join("keys/.beta.txt.tmp"),
        dir.path().join("keys/beta.txt"),
    )
    .unwrap();
    eventually("the removed key is not", || !on(&c, "u1")).await;
    assert!(on(&c, "u2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_that_disappears_keeps_the_last_good_flags() {
    let dir = project("u1\n");
    let c = start(&dir.path().join("flags.yaml")).await;
    std::fs::remove_file(dir.path().join("keys/beta.txt")).unwrap();
    eventually("degraded", || {
        c.provider_status().state == ProviderState::Degraded
    })
    .await;
    assert!(on(&c, "u1"), "the last good flags keep serving");
    let status = c.provider_status();
    let err = &status.last_error.as_ref().unwrap().0;
    let ProviderError::Invalid(diags) = err.as_ref() else {
        panic!("{err}")
    };
    let d = &diags[0];
    assert_eq!((d.flag.as_str(), d.line), ("segment beta", Some(11)), "{d}");
    assert!(d.message.contains("keys/beta.txt"), "{d}");
    std::fs::write(dir.path().join("keys/beta.txt"), "u3\n").unwrap();
    eventually("recovered", || on(&c, "u3")).await;
    assert_eq!(c.provider_status().state, ProviderState::Ready);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_file_at_start_degrades_and_the_segment_matches_no_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("flags.yaml"),
        FLAGS.replace(
            "includedFile: keys/beta.txt",
            "included: [u1]\n    includedFile: keys/beta.txt",
        ),
    )
    .unwrap();
    let c = start(&dir.path().join("flags.yaml")).await;
    assert_eq!(c.provider_status().state, ProviderState::Degraded);
    assert!(!on(&c, "u1"), "not even the inline keys");
}

#[test]
fn files_too_large_or_outside_the_directory_are_refused() {
    let dir = project("");
    let big = std::fs::File::create(dir.path().join("keys/big.txt")).unwrap();
    big.set_len(MAX_BYTES + 1).unwrap();
    std::fs::write(
        dir.path().parent().unwrap().join("outside-keys.txt"),
        "u1\n",
    )
    .ok();
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        dir.path().parent().unwrap().join("outside-keys.txt"),
        dir.path().join("keys/link.txt"),
    )
    .unwrap();
    for (file, expect) in [
        ("keys/big.txt", "larger than"),
        ("keys/link.txt", "relative to the flag file's directory"),
        (
            "../outside-keys.txt",
            "relative to the flag file's directory",
        ),
    ] {
        let text = FLAGS.replace("keys/beta.txt", file);
        let mut parsed = parse_document(&text, Format::Yaml).unwrap();
        read_key_files(&mut parsed, &dir.path().join("flags.yaml"));
        let d = parsed
            .diagnostics
            .iter()
            .find(|d| d.severity == Severity::Error)
            .unwrap_or_else(|| panic!("{file}: no error"));
        assert!(d.message.contains(expect), "{file}: {d}");
        assert!(parsed.document.segments["beta"].included.is_empty());
    }
}
