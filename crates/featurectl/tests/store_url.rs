//! The store URL (and its password) can come from `FEATURE_STORE_URL` instead of the command
//! line, where every user of the machine sees it; it is never printed back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use std::process::Command;

const SECRET: &str = "s3cr3t-pw";

fn featurectl(args: &[&str], store_url: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flags.yaml"), "flags: {}\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_featurectl"))
        .args(args)
        .current_dir(dir.path())
        .env("FEATURE_STORE_URL", store_url)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap(), text)
}

#[test]
fn store_commands_read_the_store_url_from_the_environment_and_never_print_it() {
    // A URL that cannot work: the command gets as far as using it, which shows it was read.
    let url = format!("postgres://app:{SECRET}@127.0.0.1:notaport/flags");
    for args in [
        &["push", "flags.yaml", "--dry-run"][..],
        &["history", "some-flag"][..],
        &["migrate"][..],
        &["audit", "verify"][..],
    ] {
        let (code, text) = featurectl(args, &url);
        assert_ne!(code, 0, "{args:?}: {text}");
        assert!(
            !text.contains("--to <URL>")
                && !text.contains("--from <URL>")
                && !text.contains("--store <URL>"),
            "{args:?} did not read the variable: {text}"
        );
        assert!(
            !text.contains(SECRET),
            "{args:?} printed the password: {text}"
        );
    }
    let (_, help) = featurectl(&["push", "--help"], &url);
    assert!(help.contains("FEATURE_STORE_URL"), "{help}");
    assert!(!help.contains(SECRET), "{help}");
}
